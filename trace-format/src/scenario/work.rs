//! What workers do: work types, worker groups, policies and affinity intents.
//!
//! Naming: `*Churn` types change a setting to a random value every iteration,
//! `*Sweep` types walk an ordered range so every value gets equal time.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::topology::{CpuList, Topology};
use super::units::duration;

/// Most workers one [`WorkSpec`] may fork.
pub const MAX_WORKERS: u32 = 4096;
/// Longest `comm` the kernel keeps (TASK_COMM_LEN - 1).
pub const MAX_COMM_LEN: usize = 15;

/// The loop a worker runs; each variant says what one iteration is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    /// Spin on the CPU for a short fixed amount of work, never blocking.
    SpinWait,
    /// Call `sched_yield()` once.
    YieldHeavy,
    /// Spin ~1 ms, then sleep ~100 µs.
    Mixed,
    /// Sleep `sleep_us`, as if waiting for I/O.
    IoSleep { sleep_us: u32 },
    /// Spin for `burst_us`, then sleep for `sleep_us`.
    Bursty { burst_us: u32, sleep_us: u32 },
    /// Wake the paired worker through a futex and wait to be woken back (workers pair up).
    FutexPingPong,
    /// Write one byte to the paired worker's pipe and read its reply (workers pair up).
    PipeIo,
    /// Walk a `kib`-KiB buffer one cache line at a time.
    CachePressure { kib: u32 },
    /// Fork a child that exits at once, then reap it.
    ForkExit,
    /// Move to a random CPU of the allowed set with `sched_setaffinity`.
    AffinityChurn,
    /// Switch to the next of normal, batch, idle, in order.
    PolicyChurn,
    /// Set the next nice value of -20..=19 (clamped to what is allowed), in order.
    NiceSweep,
    /// Touch every page of a 1 MiB region, then drop it with `MADV_DONTNEED`.
    PageFaultChurn,
    /// One waker in each group of `fan + 1` workers wakes its `fan` waiters.
    FutexFanOut { fan: u32 },
    /// Take a shared lock that at most `holders` workers hold at once, spin, release.
    MutexContention { holders: u32 },
    /// Run the phases in order, each for its duration, and repeat.
    Sequence(Vec<WorkPhase>),
}

impl WorkType {
    /// Snake-case name, as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            WorkType::SpinWait => "spin_wait",
            WorkType::YieldHeavy => "yield_heavy",
            WorkType::Mixed => "mixed",
            WorkType::IoSleep { .. } => "io_sleep",
            WorkType::Bursty { .. } => "bursty",
            WorkType::FutexPingPong => "futex_ping_pong",
            WorkType::PipeIo => "pipe_io",
            WorkType::CachePressure { .. } => "cache_pressure",
            WorkType::ForkExit => "fork_exit",
            WorkType::AffinityChurn => "affinity_churn",
            WorkType::PolicyChurn => "policy_churn",
            WorkType::NiceSweep => "nice_sweep",
            WorkType::PageFaultChurn => "page_fault_churn",
            WorkType::FutexFanOut { .. } => "futex_fan_out",
            WorkType::MutexContention { .. } => "mutex_contention",
            WorkType::Sequence(_) => "sequence",
        }
    }

    /// Workers of this type must come in groups of this size.
    pub fn group_size(&self) -> u32 {
        match self {
            WorkType::FutexPingPong | WorkType::PipeIo => 2,
            WorkType::FutexFanOut { fan } => fan.saturating_add(1),
            _ => 1,
        }
    }
}

/// One phase of a [`WorkType::Sequence`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkPhase {
    pub work: WorkType,
    #[serde(rename = "duration", with = "duration")]
    pub duration_ns: u64,
}

/// Linux scheduling policy of a worker; RT variants carry their priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedPolicy {
    #[default]
    Normal,
    Batch,
    Idle,
    /// `SCHED_FIFO` with priority 1..=99.
    Fifo(u8),
    /// `SCHED_RR` with priority 1..=99.
    RoundRobin(u8),
}

/// Where a worker may run, before it is resolved against topology and cpuset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AffinityIntent {
    /// No `sched_setaffinity`: the cgroup's cpuset decides.
    #[default]
    Inherit,
    /// Worker `k` is pinned to the `k`-th CPU of its cgroup's CPUs (wrapping).
    SingleCpu,
    /// Worker `k` may use the LLC of that CPU (within the cgroup's CPUs).
    Llc,
    /// Worker `k` may use the NUMA node of that CPU (within the cgroup's CPUs).
    Node,
    /// Exactly these CPUs, intersected with the cgroup's CPUs.
    Cpus(CpuList),
    /// Every CPU of the topology, deliberately ignoring the cgroup's cpuset.
    CrossCgroup,
}

/// Why an affinity intent leaves a worker no CPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AffinityError {
    #[error("CPU {cpu} does not exist; topology {topology} has {count} CPU(s)")]
    NoSuchCpu {
        cpu: u32,
        count: u32,
        topology: Topology,
    },
    #[error("none of CPUs {wanted} is in the cgroup's cpuset {allowed}")]
    Disjoint { wanted: CpuList, allowed: CpuList },
    #[error("the cgroup has no CPUs to choose from")]
    NoCpus,
}

impl AffinityIntent {
    /// The mask for worker `worker`, or `None` to leave affinity alone.
    /// `allowed` is the cgroup's cpuset (`None`: all CPUs of `topo`).
    pub fn resolve(
        &self,
        topo: &Topology,
        allowed: Option<&CpuList>,
        worker: u32,
    ) -> Result<Option<CpuList>, AffinityError> {
        let all = topo.all_cpus();
        let allowed = allowed.unwrap_or(&all);
        let nth = || -> Result<u32, AffinityError> {
            let len = u32::try_from(allowed.len()).unwrap_or(u32::MAX);
            if len == 0 {
                return Err(AffinityError::NoCpus);
            }
            let idx = usize::try_from(worker % len).unwrap_or(0);
            Ok(allowed.0[idx])
        };
        let loc = |cpu: u32| {
            topo.locate(cpu).ok_or(AffinityError::NoSuchCpu {
                cpu,
                count: topo.cpus(),
                topology: *topo,
            })
        };
        Ok(match self {
            AffinityIntent::Inherit => None,
            AffinityIntent::SingleCpu => Some(CpuList(alloc::vec![nth()?])),
            AffinityIntent::Llc => Some(topo.llc_cpus(loc(nth()?)?.llc).intersect(allowed)),
            AffinityIntent::Node => Some(topo.node_cpus(loc(nth()?)?.node).intersect(allowed)),
            AffinityIntent::Cpus(cpus) => {
                if let Some(cpu) = cpus.iter().find(|c| *c >= topo.cpus()) {
                    return Err(AffinityError::NoSuchCpu {
                        cpu,
                        count: topo.cpus(),
                        topology: *topo,
                    });
                }
                let mask = cpus.intersect(allowed);
                if mask.is_empty() {
                    return Err(AffinityError::Disjoint {
                        wanted: cpus.clone(),
                        allowed: allowed.clone(),
                    });
                }
                Some(mask)
            }
            AffinityIntent::CrossCgroup => Some(all),
        })
    }
}

/// A group of identical workers in one cgroup.
///
/// Exactly one of `workers` (a count) and `workers_pct` (a percentage of the
/// cgroup's CPUs, rounded up) must be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSpec {
    pub work: WorkType,
    #[serde(default)]
    pub workers: Option<u32>,
    #[serde(default)]
    pub workers_pct: Option<u32>,
    #[serde(default)]
    pub policy: SchedPolicy,
    /// -20..=19; applies to normal and batch policies.
    #[serde(default)]
    pub nice: i8,
    #[serde(default)]
    pub affinity: AffinityIntent,
    /// Task name (`comm`), at most 15 bytes; default `st-<cgroup>`.
    #[serde(default)]
    pub comm: Option<String>,
}

impl WorkSpec {
    /// A spec with no worker count yet; set one with `workers` or `workers_pct`.
    pub fn new(work: WorkType) -> Self {
        WorkSpec {
            work,
            workers: None,
            workers_pct: None,
            policy: SchedPolicy::Normal,
            nice: 0,
            affinity: AffinityIntent::Inherit,
            comm: None,
        }
    }

    pub fn workers(mut self, n: u32) -> Self {
        self.workers = Some(n);
        self
    }

    pub fn workers_pct(mut self, pct: u32) -> Self {
        self.workers_pct = Some(pct);
        self
    }

    pub fn policy(mut self, policy: SchedPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn nice(mut self, nice: i8) -> Self {
        self.nice = nice;
        self
    }

    pub fn affinity(mut self, affinity: AffinityIntent) -> Self {
        self.affinity = affinity;
        self
    }

    pub fn comm(mut self, comm: impl Into<String>) -> Self {
        self.comm = Some(comm.into());
        self
    }

    /// Worker count for a cgroup with `cpus` CPUs; `workers_pct` rounds up.
    pub fn resolve_workers(&self, cpus: u32) -> u32 {
        match (self.workers, self.workers_pct) {
            (Some(n), _) => n,
            (None, Some(pct)) => {
                u32::try_from((u64::from(cpus) * u64::from(pct)).div_ceil(100)).unwrap_or(u32::MAX)
            }
            (None, None) => 0,
        }
    }
}
