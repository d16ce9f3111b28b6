//! Ops: the actions a step (or the backdrop) applies, in order.
//!
//! Cgroup names are relative to the scenario's parent cgroup. Payloads and
//! staged schedulers are referenced by the names declared on the scenario.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::cgroup::{CgroupDef, CpusetSpec};
use super::work::{AffinityIntent, WorkSpec};

/// One action. Append-only: postcard encodes the variant index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create an empty cgroup (e.g. a move target).
    AddCgroup { name: String },
    /// Stop the cgroup's workers, then remove it.
    RemoveCgroup { cgroup: String },
    /// Create, configure and populate a cgroup, as a step's setup would.
    AddCgroupDef(CgroupDef),
    /// Write `cpuset.cpus`.
    SetCpuset { cgroup: String, cpuset: CpusetSpec },
    /// Empty `cpuset.cpus`, so the cgroup inherits all of its parent's CPUs.
    ClearCpuset { cgroup: String },
    /// Exchange the cpusets of two cgroups.
    SwapCpusets { a: String, b: String },
    /// Fork more workers.
    Spawn {
        placement: SpawnPlacement,
        work: WorkSpec,
    },
    /// Stop every worker of the cgroup (the cgroup stays).
    StopCgroup { cgroup: String },
    /// Apply an affinity intent to every worker of the cgroup.
    SetAffinity {
        cgroup: String,
        affinity: AffinityIntent,
    },
    /// Move every task of `from` into `to`.
    MoveAllTasks { from: String, to: String },
    /// Start a declared payload in the background; `args` are appended to its own.
    RunPayload {
        payload: String,
        #[serde(default)]
        args: Vec<String>,
        /// Overrides the payload's own cgroup; `None` keeps it, `""` is the runner's.
        #[serde(default)]
        cgroup: Option<String>,
    },
    /// Wait for a running payload to exit; `cgroup` picks one of several copies
    /// (`""`: the copy in the runner's cgroup).
    WaitPayload {
        payload: String,
        #[serde(default)]
        cgroup: Option<String>,
    },
    /// SIGKILL a running payload; `cgroup` picks one of several copies.
    KillPayload {
        payload: String,
        #[serde(default)]
        cgroup: Option<String>,
    },
    /// Write 1 to `cgroup.freeze`.
    FreezeCgroup { cgroup: String },
    /// Write 0 to `cgroup.freeze`.
    UnfreezeCgroup { cgroup: String },
    /// Ask the host for a run-queue snapshot, recorded under `name`.
    CaptureSnapshot { name: String },
    /// Ask the host to snapshot whenever the kernel writes `symbol`.
    WatchSnapshot { symbol: String },
    /// Read kernel memory while the vCPUs run.
    ReadKernelHot(KernelRead),
    /// Read kernel memory with every vCPU frozen.
    ReadKernelCold(KernelRead),
    /// Write kernel memory while the vCPUs run.
    WriteKernelHot(KernelWrite),
    /// Write kernel memory with every vCPU frozen.
    WriteKernelCold(KernelWrite),
    /// Start a staged sched_ext scheduler (none may be attached).
    AttachScheduler { scheduler: String },
    /// Stop the attached scheduler; a no-op under EEVDF.
    DetachScheduler,
    /// Stop the attached scheduler and start it again with the same arguments.
    RestartScheduler,
    /// Stop the attached scheduler and start a different staged one.
    ReplaceScheduler { scheduler: String },
    /// Hold a reference to a BPF map of the scheduler so it outlives a replace.
    PinBpfMap { name: String },
    /// Record the PIDs in `cgroup.procs` under `tag`.
    CaptureCgroupProcs { tag: String, cgroup: String },
    /// Route an IRQ to `cpu` through `/proc/irq/<n>/smp_affinity_list`.
    SteerIrq { irq: IrqSelector, cpu: u32 },
}

/// Where `Op::Spawn` puts its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnPlacement {
    /// A scenario cgroup, by name.
    Cgroup(String),
    /// The runner's own cgroup, outside every scenario cgroup.
    Runner,
}

/// A kernel variable to read: `symbol + offset`, per-CPU when `cpu` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRead {
    pub symbol: String,
    #[serde(default)]
    pub offset: u32,
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
}

/// A kernel variable to overwrite with `value` (which must fit in `width` bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelWrite {
    pub symbol: String,
    #[serde(default)]
    pub offset: u32,
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    pub value: u64,
}

/// An IRQ by number or by its `/proc/interrupts` label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IrqSelector {
    Number(u32),
    Label(String),
}

/// The kind of an [`Op`], without its data. Indices are stable (bitmask bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    AddCgroup,
    RemoveCgroup,
    AddCgroupDef,
    SetCpuset,
    ClearCpuset,
    SwapCpusets,
    Spawn,
    StopCgroup,
    SetAffinity,
    MoveAllTasks,
    RunPayload,
    WaitPayload,
    KillPayload,
    FreezeCgroup,
    UnfreezeCgroup,
    CaptureSnapshot,
    WatchSnapshot,
    ReadKernelHot,
    ReadKernelCold,
    WriteKernelHot,
    WriteKernelCold,
    AttachScheduler,
    DetachScheduler,
    RestartScheduler,
    ReplaceScheduler,
    PinBpfMap,
    CaptureCgroupProcs,
    SteerIrq,
}

impl OpKind {
    /// Every kind, in index order.
    pub const ALL: [OpKind; 28] = [
        OpKind::AddCgroup,
        OpKind::RemoveCgroup,
        OpKind::AddCgroupDef,
        OpKind::SetCpuset,
        OpKind::ClearCpuset,
        OpKind::SwapCpusets,
        OpKind::Spawn,
        OpKind::StopCgroup,
        OpKind::SetAffinity,
        OpKind::MoveAllTasks,
        OpKind::RunPayload,
        OpKind::WaitPayload,
        OpKind::KillPayload,
        OpKind::FreezeCgroup,
        OpKind::UnfreezeCgroup,
        OpKind::CaptureSnapshot,
        OpKind::WatchSnapshot,
        OpKind::ReadKernelHot,
        OpKind::ReadKernelCold,
        OpKind::WriteKernelHot,
        OpKind::WriteKernelCold,
        OpKind::AttachScheduler,
        OpKind::DetachScheduler,
        OpKind::RestartScheduler,
        OpKind::ReplaceScheduler,
        OpKind::PinBpfMap,
        OpKind::CaptureCgroupProcs,
        OpKind::SteerIrq,
    ];

    /// Stable index, also the bit in an op-kind bitmask.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// Snake-case name, as written in TOML.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::AddCgroup => "add_cgroup",
            OpKind::RemoveCgroup => "remove_cgroup",
            OpKind::AddCgroupDef => "add_cgroup_def",
            OpKind::SetCpuset => "set_cpuset",
            OpKind::ClearCpuset => "clear_cpuset",
            OpKind::SwapCpusets => "swap_cpusets",
            OpKind::Spawn => "spawn",
            OpKind::StopCgroup => "stop_cgroup",
            OpKind::SetAffinity => "set_affinity",
            OpKind::MoveAllTasks => "move_all_tasks",
            OpKind::RunPayload => "run_payload",
            OpKind::WaitPayload => "wait_payload",
            OpKind::KillPayload => "kill_payload",
            OpKind::FreezeCgroup => "freeze_cgroup",
            OpKind::UnfreezeCgroup => "unfreeze_cgroup",
            OpKind::CaptureSnapshot => "capture_snapshot",
            OpKind::WatchSnapshot => "watch_snapshot",
            OpKind::ReadKernelHot => "read_kernel_hot",
            OpKind::ReadKernelCold => "read_kernel_cold",
            OpKind::WriteKernelHot => "write_kernel_hot",
            OpKind::WriteKernelCold => "write_kernel_cold",
            OpKind::AttachScheduler => "attach_scheduler",
            OpKind::DetachScheduler => "detach_scheduler",
            OpKind::RestartScheduler => "restart_scheduler",
            OpKind::ReplaceScheduler => "replace_scheduler",
            OpKind::PinBpfMap => "pin_bpf_map",
            OpKind::CaptureCgroupProcs => "capture_cgroup_procs",
            OpKind::SteerIrq => "steer_irq",
        }
    }
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::AddCgroup { .. } => OpKind::AddCgroup,
            Op::RemoveCgroup { .. } => OpKind::RemoveCgroup,
            Op::AddCgroupDef(_) => OpKind::AddCgroupDef,
            Op::SetCpuset { .. } => OpKind::SetCpuset,
            Op::ClearCpuset { .. } => OpKind::ClearCpuset,
            Op::SwapCpusets { .. } => OpKind::SwapCpusets,
            Op::Spawn { .. } => OpKind::Spawn,
            Op::StopCgroup { .. } => OpKind::StopCgroup,
            Op::SetAffinity { .. } => OpKind::SetAffinity,
            Op::MoveAllTasks { .. } => OpKind::MoveAllTasks,
            Op::RunPayload { .. } => OpKind::RunPayload,
            Op::WaitPayload { .. } => OpKind::WaitPayload,
            Op::KillPayload { .. } => OpKind::KillPayload,
            Op::FreezeCgroup { .. } => OpKind::FreezeCgroup,
            Op::UnfreezeCgroup { .. } => OpKind::UnfreezeCgroup,
            Op::CaptureSnapshot { .. } => OpKind::CaptureSnapshot,
            Op::WatchSnapshot { .. } => OpKind::WatchSnapshot,
            Op::ReadKernelHot(_) => OpKind::ReadKernelHot,
            Op::ReadKernelCold(_) => OpKind::ReadKernelCold,
            Op::WriteKernelHot(_) => OpKind::WriteKernelHot,
            Op::WriteKernelCold(_) => OpKind::WriteKernelCold,
            Op::AttachScheduler { .. } => OpKind::AttachScheduler,
            Op::DetachScheduler => OpKind::DetachScheduler,
            Op::RestartScheduler => OpKind::RestartScheduler,
            Op::ReplaceScheduler { .. } => OpKind::ReplaceScheduler,
            Op::PinBpfMap { .. } => OpKind::PinBpfMap,
            Op::CaptureCgroupProcs { .. } => OpKind::CaptureCgroupProcs,
            Op::SteerIrq { .. } => OpKind::SteerIrq,
        }
    }

    /// Snake-case name of the op's kind.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    pub fn add_cgroup(name: impl Into<String>) -> Self {
        Op::AddCgroup { name: name.into() }
    }

    pub fn remove_cgroup(cgroup: impl Into<String>) -> Self {
        Op::RemoveCgroup {
            cgroup: cgroup.into(),
        }
    }

    pub fn set_cpuset(cgroup: impl Into<String>, cpuset: CpusetSpec) -> Self {
        Op::SetCpuset {
            cgroup: cgroup.into(),
            cpuset,
        }
    }

    pub fn clear_cpuset(cgroup: impl Into<String>) -> Self {
        Op::ClearCpuset {
            cgroup: cgroup.into(),
        }
    }

    pub fn swap_cpusets(a: impl Into<String>, b: impl Into<String>) -> Self {
        Op::SwapCpusets {
            a: a.into(),
            b: b.into(),
        }
    }

    /// Spawn workers into a scenario cgroup.
    pub fn spawn(cgroup: impl Into<String>, work: WorkSpec) -> Self {
        Op::Spawn {
            placement: SpawnPlacement::Cgroup(cgroup.into()),
            work,
        }
    }

    /// Spawn workers into the runner's own cgroup.
    pub fn spawn_in_runner(work: WorkSpec) -> Self {
        Op::Spawn {
            placement: SpawnPlacement::Runner,
            work,
        }
    }

    pub fn stop_cgroup(cgroup: impl Into<String>) -> Self {
        Op::StopCgroup {
            cgroup: cgroup.into(),
        }
    }

    pub fn set_affinity(cgroup: impl Into<String>, affinity: AffinityIntent) -> Self {
        Op::SetAffinity {
            cgroup: cgroup.into(),
            affinity,
        }
    }

    pub fn move_all_tasks(from: impl Into<String>, to: impl Into<String>) -> Self {
        Op::MoveAllTasks {
            from: from.into(),
            to: to.into(),
        }
    }

    pub fn run_payload(payload: impl Into<String>) -> Self {
        Op::RunPayload {
            payload: payload.into(),
            args: Vec::new(),
            cgroup: None,
        }
    }

    pub fn wait_payload(payload: impl Into<String>) -> Self {
        Op::WaitPayload {
            payload: payload.into(),
            cgroup: None,
        }
    }

    pub fn kill_payload(payload: impl Into<String>) -> Self {
        Op::KillPayload {
            payload: payload.into(),
            cgroup: None,
        }
    }

    pub fn freeze_cgroup(cgroup: impl Into<String>) -> Self {
        Op::FreezeCgroup {
            cgroup: cgroup.into(),
        }
    }

    pub fn unfreeze_cgroup(cgroup: impl Into<String>) -> Self {
        Op::UnfreezeCgroup {
            cgroup: cgroup.into(),
        }
    }

    pub fn capture_snapshot(name: impl Into<String>) -> Self {
        Op::CaptureSnapshot { name: name.into() }
    }

    pub fn watch_snapshot(symbol: impl Into<String>) -> Self {
        Op::WatchSnapshot {
            symbol: symbol.into(),
        }
    }

    pub fn attach_scheduler(scheduler: impl Into<String>) -> Self {
        Op::AttachScheduler {
            scheduler: scheduler.into(),
        }
    }

    pub fn replace_scheduler(scheduler: impl Into<String>) -> Self {
        Op::ReplaceScheduler {
            scheduler: scheduler.into(),
        }
    }

    pub fn pin_bpf_map(name: impl Into<String>) -> Self {
        Op::PinBpfMap { name: name.into() }
    }

    pub fn capture_cgroup_procs(tag: impl Into<String>, cgroup: impl Into<String>) -> Self {
        Op::CaptureCgroupProcs {
            tag: tag.into(),
            cgroup: cgroup.into(),
        }
    }

    pub fn steer_irq(irq: IrqSelector, cpu: u32) -> Self {
        Op::SteerIrq { irq, cpu }
    }
}

impl KernelRead {
    pub fn new(symbol: impl Into<String>, width: u8) -> Self {
        KernelRead {
            symbol: symbol.into(),
            offset: 0,
            cpu: None,
            width,
        }
    }

    /// Reads the per-CPU instance on `cpu`.
    pub fn on_cpu(mut self, cpu: u32) -> Self {
        self.cpu = Some(cpu);
        self
    }
}

impl KernelWrite {
    pub fn new(symbol: impl Into<String>, width: u8, value: u64) -> Self {
        KernelWrite {
            symbol: symbol.into(),
            offset: 0,
            cpu: None,
            width,
            value,
        }
    }

    /// Writes the per-CPU instance on `cpu`.
    pub fn on_cpu(mut self, cpu: u32) -> Self {
        self.cpu = Some(cpu);
        self
    }
}
