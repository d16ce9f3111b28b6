//! Applying one scenario op inside the guest.
//!
//! [`apply`] is the single dispatch point: each supported op maps to a small
//! function that returns its outcome or an error text; every other op fails
//! with "<op> is not supported by this build yet", never silently. Snapshots
//! and kernel reads/writes are requests to the host: the op returns only once
//! the host has answered (and recorded) them. Outcomes: cgroup ops return the
//! PIDs they touched, `run_payload` the payload's PID, `wait_payload` and
//! `kill_payload` its raw wait(2) status, `steer_irq` the effective CPU mask.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use trace_format::proto::HostRequest;
use trace_format::record::{AccessKind, OpOutcome, StepRef};
use trace_format::scenario::{
    AffinityIntent, CpuList, KernelRead, KernelWrite, Op, SpawnPlacement,
};

use super::executor::Executor;
use super::{cgroupfs, irq, sched, sys};
use crate::errno;

/// The error for an op this build cannot run.
pub fn unsupported(op: &Op) -> String {
    format!("{} is not supported by this build yet", op.name())
}

/// Applies `op`, number `index` of `owner`'s list (the backdrop or a step).
pub fn apply(
    ex: &mut Executor<'_>,
    owner: StepRef,
    index: u16,
    op: &Op,
) -> Result<OpOutcome, String> {
    use OpOutcome::{Done, Pids, Value};
    match op {
        Op::CaptureSnapshot { .. } => ex
            .tx
            .request(HostRequest::Snapshot {
                step: owner,
                op: index,
            })
            .map(|_| Done),
        Op::WatchSnapshot { symbol } => match watch_unsupported() {
            Some(why) => Err(why),
            None => ex
                .tx
                .request(HostRequest::Watch {
                    step: owner,
                    op: index,
                    symbol: symbol.clone(),
                })
                .map(Value),
        },
        Op::ReadKernelHot(r) => read_request(owner, index, AccessKind::ReadHot, r)
            .and_then(|req| ex.tx.request(req))
            .map(Value),
        Op::ReadKernelCold(r) => read_request(owner, index, AccessKind::ReadCold, r)
            .and_then(|req| ex.tx.request(req))
            .map(Value),
        Op::WriteKernelHot(w) => write_request(owner, index, AccessKind::WriteHot, w)
            .and_then(|req| ex.tx.request(req))
            .map(|_| Done),
        Op::WriteKernelCold(_) => cold_writes(ex, owner, index, core::slice::from_ref(op))
            .pop()
            .unwrap_or_else(|| Err("no result".into())),
        Op::AddCgroup { name } => ex.add_cgroup(name, owner).map(|()| Done),
        Op::AddCgroupDef(def) => ex.create_def(def, owner).map(Pids),
        Op::RemoveCgroup { cgroup } => {
            ex.cgroups.require(cgroup)?;
            ex.record_oom(cgroup);
            let here = |c: &Option<String>| c.as_deref() == Some(cgroup.as_str());
            ex.payloads.kill_where(|p| here(&p.cgroup), ex.tx);
            let pids = ex.stop_workers(|w| here(&w.cgroup));
            cgroupfs::remove(cgroup)?;
            ex.cgroups.remove(cgroup);
            Ok(Pids(pids))
        }
        Op::SetCpuset { cgroup, cpuset } => {
            ex.cgroups.require(cgroup)?;
            let cpus = cpuset
                .resolve(&ex.topo)
                .map_err(|e| format!("cgroup {cgroup:?}: cpuset is unusable: {e}"))?;
            cgroupfs::write(cgroup, "cpuset.cpus", &cpus.to_string())?;
            set_cpuset(ex, cgroup, Some(cpus));
            Ok(Done)
        }
        Op::ClearCpuset { cgroup } => {
            ex.cgroups.require(cgroup)?;
            cgroupfs::write(
                cgroup,
                "cpuset.cpus",
                &cgroupfs::inherited_cpus(&ex.topo.all_cpus().to_string()),
            )?;
            set_cpuset(ex, cgroup, None);
            Ok(Done)
        }
        Op::SwapCpusets { a, b } => {
            let ca = ex.cgroups.require(a)?.cpuset.clone();
            let cb = ex.cgroups.require(b)?.cpuset.clone();
            let all = cgroupfs::inherited_cpus(&ex.topo.all_cpus().to_string());
            let text =
                |c: &Option<CpuList>| c.as_ref().map_or_else(|| all.clone(), |c| c.to_string());
            cgroupfs::write(a, "cpuset.cpus", &text(&cb))?;
            cgroupfs::write(b, "cpuset.cpus", &text(&ca))?;
            set_cpuset(ex, a, cb);
            set_cpuset(ex, b, ca);
            Ok(Done)
        }
        Op::Spawn { placement, work } => {
            let cgroup = match placement {
                SpawnPlacement::Cgroup(c) => Some(ex.cgroups.require(c)?.name.clone()),
                SpawnPlacement::Runner => None,
            };
            ex.spawn(cgroup.as_deref(), owner, work).map(Pids)
        }
        Op::StopCgroup { cgroup } => {
            ex.cgroups.require(cgroup)?;
            Ok(Pids(ex.stop_workers(|w| {
                w.cgroup.as_deref() == Some(cgroup.as_str())
            })))
        }
        Op::SetAffinity { cgroup, affinity } => set_affinity(ex, cgroup, affinity).map(Pids),
        Op::MoveAllTasks { from, to } => move_all(ex, from, to).map(Pids),
        Op::FreezeCgroup { cgroup } | Op::UnfreezeCgroup { cgroup } => {
            ex.cgroups.require(cgroup)?;
            cgroupfs::set_frozen(cgroup, matches!(op, Op::FreezeCgroup { .. }))?;
            Ok(Done)
        }
        Op::CaptureCgroupProcs { cgroup, .. } => {
            ex.cgroups.require(cgroup)?;
            let mut pids = Vec::new();
            cgroupfs::procs(Some(cgroup), &mut pids)?;
            Ok(Pids(pids))
        }
        Op::RunPayload {
            payload,
            args,
            cgroup,
        } => run_payload(ex, owner, payload, args, cgroup.as_deref()).map(|pid| Pids(vec![pid])),
        Op::WaitPayload { payload, cgroup } => {
            let i = ex.payloads.find(payload, cgroup.as_deref())?;
            let pid = ex.payloads.list[i].pid;
            let status = ex.wait_payload(pid)?;
            claim(ex, pid);
            Ok(Value(wait_value(status)))
        }
        Op::KillPayload { payload, cgroup } => {
            let i = ex.payloads.find(payload, cgroup.as_deref())?;
            let pid = ex.payloads.list[i].pid;
            let status = ex.payloads.kill(i, ex.tx);
            claim(ex, pid);
            Ok(Value(wait_value(status)))
        }
        Op::SteerIrq { irq, cpu } => irq::steer(irq, *cpu).map(Value),
        Op::AttachScheduler { scheduler } => sched::attach(ex, scheduler),
        Op::DetachScheduler => sched::detach(ex),
        Op::RestartScheduler => sched::restart(ex),
        Op::ReplaceScheduler { scheduler } => sched::replace(ex, scheduler),
        Op::PinBpfMap { name } => sched::pin_map(ex, name).map(Value),
    }
}

/// Starts declared payload `name` in `cgroup` (default: its declared one).
fn run_payload(
    ex: &mut Executor<'_>,
    owner: StepRef,
    name: &str,
    args: &[String],
    cgroup: Option<&str>,
) -> Result<u32, String> {
    let spec = ex
        .payload_specs
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("payload {name:?} is not declared"))?
        .clone();
    let cgroup = cgroup.or(spec.cgroup.as_deref()).filter(|c| !c.is_empty());
    if let Some(c) = cgroup {
        ex.cgroups.require(c)?;
    }
    ex.payloads.spawn(&spec, args, cgroup, owner)
}

/// A payload that was waited for or killed is done with: ops no longer find it.
fn claim(ex: &mut Executor<'_>, pid: u32) {
    if let Some(p) = ex.payloads.list.iter_mut().find(|p| p.pid == pid) {
        p.claimed = true;
    }
}

/// The raw wait(2) status as an op value (`code << 8`, or the signal number).
fn wait_value(status: i32) -> u64 {
    u64::from(status.cast_unsigned())
}

/// Applies consecutive `WriteKernelCold` ops (`first` is the first one's index)
/// as one batch: the host lands them all inside a single freeze.
pub fn cold_writes(
    ex: &mut Executor<'_>,
    owner: StepRef,
    first: u16,
    ops: &[Op],
) -> Vec<Result<OpOutcome, String>> {
    let built: Vec<Result<HostRequest, String>> = (first..)
        .zip(ops)
        .map(|(i, op)| match op {
            Op::WriteKernelCold(w) => write_request(owner, i, AccessKind::WriteCold, w),
            other => Err(format!("{} is not a cold write", other.name())),
        })
        .collect();
    let requests: Vec<HostRequest> = built.iter().filter_map(|r| r.clone().ok()).collect();
    let mut replies = ex.tx.requests(&requests).into_iter();
    built
        .into_iter()
        .map(|b| match b {
            Ok(_) => replies
                .next()
                .unwrap_or_else(|| Err("no reply".into()))
                .map(|_| OpOutcome::Done),
            Err(e) => Err(e),
        })
        .collect()
}

/// `symbol` or `symbol+offset`, as the host parses it.
fn target(symbol: &str, offset: u32) -> String {
    if offset == 0 {
        symbol.to_string()
    } else {
        format!("{symbol}+{offset}")
    }
}

fn cpu16(cpu: Option<u32>) -> Result<Option<u16>, String> {
    cpu.map(|c| u16::try_from(c).map_err(|_| format!("cpu {c} is out of range")))
        .transpose()
}

fn read_request(
    owner: StepRef,
    op: u16,
    kind: AccessKind,
    r: &KernelRead,
) -> Result<HostRequest, String> {
    Ok(HostRequest::KernelAccess {
        step: owner,
        op,
        kind,
        symbol: target(&r.symbol, r.offset),
        cpu: cpu16(r.cpu)?,
        width: r.width,
        value: 0,
    })
}

fn write_request(
    owner: StepRef,
    op: u16,
    kind: AccessKind,
    w: &KernelWrite,
) -> Result<HostRequest, String> {
    Ok(HostRequest::KernelAccess {
        step: owner,
        op,
        kind,
        symbol: target(&w.symbol, w.offset),
        cpu: cpu16(w.cpu)?,
        width: w.width,
        value: w.value,
    })
}

/// Why `watch_snapshot` cannot run here, if it cannot: QEMU gives us no
/// hardware debug registers. Other backends are asked (and may still refuse).
fn watch_unsupported() -> Option<String> {
    let cmdline = sys::read_all("/proc/cmdline").unwrap_or_default();
    let cmdline = core::str::from_utf8(&cmdline).unwrap_or("");
    (crate::cmdline::param(cmdline, "schedtape.backend") == Some("qemu")).then(|| {
        "watch_snapshot is unsupported on the QEMU backend (it needs hardware debug \
         registers; use the KVM backend)"
            .into()
    })
}

fn set_cpuset(ex: &mut Executor<'_>, cgroup: &str, cpus: Option<CpuList>) {
    if let Some(c) = ex.cgroups.get_mut(cgroup) {
        c.cpuset = cpus;
    }
}

/// Re-resolves `affinity` for each worker of the cgroup (in spawn order) and
/// applies it; `Inherit` widens the mask to every CPU so the cpuset decides.
fn set_affinity(
    ex: &mut Executor<'_>,
    cgroup: &str,
    affinity: &AffinityIntent,
) -> Result<Vec<u32>, String> {
    let allowed = ex.cgroups.require(cgroup)?.cpuset.clone();
    let mut pids = Vec::new();
    let members = ex
        .workers
        .list
        .iter()
        .filter(|w| w.cgroup.as_deref() == Some(cgroup));
    for (k, w) in (0u32..).zip(members) {
        let mask = affinity
            .resolve(&ex.topo, allowed.as_ref(), k)
            .map_err(|e| format!("cgroup {cgroup:?}: affinity for worker {}: {e}", w.id))?
            .unwrap_or_else(|| ex.topo.all_cpus());
        let mut set = rustix::thread::CpuSet::new();
        mask.iter().for_each(|c| set.set(c as usize));
        let pid = rustix::process::Pid::from_raw(i32::try_from(w.pid).unwrap_or(0));
        if let Err(e) = rustix::thread::sched_setaffinity(pid, &set) {
            return Err(format!(
                "worker {} (pid {}): sched_setaffinity({mask}) failed: {}",
                w.id,
                w.pid,
                errno::describe(e.raw_os_error())
            ));
        }
        pids.push(w.pid);
    }
    Ok(pids)
}

/// Moves every process of `from` into `to`; tracked workers follow.
fn move_all(ex: &mut Executor<'_>, from: &str, to: &str) -> Result<Vec<u32>, String> {
    ex.cgroups.require(from)?;
    ex.cgroups.require(to)?;
    let mut pids = Vec::new();
    cgroupfs::procs(Some(from), &mut pids)?;
    for &pid in &pids {
        cgroupfs::add_pid(to, pid)?;
        if let Some(w) = ex.workers.list.iter_mut().find(|w| w.pid == pid) {
            w.cgroup = Some(to.to_string());
        }
        if let Some(p) = ex.payloads.list.iter_mut().find(|p| p.pid == pid) {
            p.cgroup = Some(to.to_string());
        }
    }
    Ok(pids)
}
