//! Forking workers, placing them in their cgroup, and stopping them.
//!
//! Spawning is two-phase so a worker's work starts inside its cgroup: fork
//! every worker of a group (each sets its `comm` and waits on its slot's gate
//! futex), write the PIDs to `cgroup.procs`, open the gates, then wait until
//! each worker applied nice, policy and affinity and reports it runs.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::process::{Signal, WaitOptions};
use rustix::thread::futex;
use trace_format::record::StepRef;
use trace_format::scenario::{CpuList, WorkSpec, WorkType};

use super::sys::pid_of;
use super::{cgroupfs, sys, work};
use crate::sample::SampleState;
use crate::telemetry::{STATE_FAILED, STATE_RUNNING, STATE_STARTING, Slot, stage_name};
use crate::{errno, workplan};

/// Telemetry slots mapped before any fork (workers alive at once, at most).
pub const SLOTS: u32 = 4096;
/// How long a worker may take to start before the spawn fails.
const START_TIMEOUT_NS: u64 = 5_000_000_000;

/// The shared telemetry pages: one [`Slot`] per live worker.
#[derive(Debug)]
pub struct Pool {
    base: NonNull<Slot>,
    free: Vec<u32>,
}

impl Pool {
    /// Maps [`SLOTS`] pages shared with every future child (touched lazily).
    pub fn new() -> Result<Pool, String> {
        let len = SLOTS as usize * core::mem::size_of::<Slot>();
        // SAFETY: a fresh anonymous mapping that nothing else refers to.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| {
            format!(
                "cannot map worker telemetry: {}",
                errno::describe(e.raw_os_error())
            )
        })?;
        let base = NonNull::new(ptr.cast::<Slot>()).ok_or("telemetry mapped at address 0")?;
        Ok(Pool {
            base,
            free: (0..SLOTS).rev().collect(),
        })
    }

    /// A zeroed slot, or `None` when every slot is in use.
    pub fn alloc(&mut self) -> Option<u32> {
        let i = self.free.pop()?;
        self.slot(i).reset();
        Some(i)
    }

    pub fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    pub fn slot(&self, i: u32) -> &Slot {
        assert!(i < SLOTS, "telemetry slot {i} out of range");
        // SAFETY: `i` is in bounds of the mapping, which lives as long as the
        // process; a Slot is all atomics, so shared access is sound.
        unsafe { &*self.base.as_ptr().add(i as usize) }
    }
}

/// One live worker process.
#[derive(Debug)]
pub struct Worker {
    /// Run-unique number (`WorkerSpawned::worker`).
    pub id: u32,
    pub pid: u32,
    pub slot: u32,
    /// Scenario cgroup it runs in; `None` for the runner's own cgroup.
    pub cgroup: Option<String>,
    /// The backdrop or step that spawned it; it dies when that ends.
    pub owner: StepRef,
    /// Whether it measures wake-ups (its samples carry `wake`).
    pub wakes: bool,
    pub sample: SampleState,
}

/// A group of identical workers to start.
#[derive(Debug)]
pub struct Group<'a> {
    pub cgroup: Option<&'a str>,
    pub owner: StepRef,
    pub spec: &'a WorkSpec,
    pub comm: &'a str,
    /// One affinity mask per worker (`None`: leave it to the cpuset).
    pub masks: Vec<Option<CpuList>>,
}

/// Every live worker.
#[derive(Debug)]
pub struct Workers {
    pub pool: Pool,
    pub list: Vec<Worker>,
    next_id: u32,
}

impl Workers {
    pub fn new() -> Result<Workers, String> {
        Ok(Workers {
            pool: Pool::new()?,
            list: Vec::new(),
            next_id: 0,
        })
    }

    /// Starts a group; returns the indices of the new workers in `list`.
    pub fn spawn(&mut self, g: &Group<'_>) -> Result<core::ops::Range<usize>, String> {
        let n = g.masks.len();
        let first = self.list.len();
        let mut comm = [0u8; 16];
        let len = g.comm.len().min(15);
        comm[..len].copy_from_slice(&g.comm.as_bytes()[..len]);
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            match self.pool.alloc() {
                Some(s) => slots.push(s),
                None => {
                    slots.into_iter().for_each(|s| self.pool.release(s));
                    return Err(format!("more than {SLOTS} live workers"));
                }
            }
        }
        let pipes = match pair_pipes(&g.spec.work, n) {
            Ok(p) => p,
            Err(e) => {
                slots.into_iter().for_each(|s| self.pool.release(s));
                return Err(e);
            }
        };
        let wakes = workplan::measures_wakes(&g.spec.work);
        for (k, mask) in g.masks.iter().enumerate() {
            let slot = slots[k];
            match sys::fork() {
                Ok(None) => {
                    let group: Vec<&Slot> = slots.iter().map(|&s| self.pool.slot(s)).collect();
                    let child = work::Child {
                        slot: self.pool.slot(slot),
                        group: &group,
                        k,
                        pipe: pipes.get(k).copied().flatten(),
                        comm: &comm,
                        nice: g.spec.nice,
                        policy: g.spec.policy,
                        mask: mask.as_ref(),
                    };
                    work::child_main(&child, &g.spec.work)
                }
                Ok(Some(pid)) => {
                    self.list.push(Worker {
                        id: self.next_id,
                        pid,
                        slot,
                        cgroup: g.cgroup.map(String::from),
                        owner: g.owner,
                        wakes,
                        sample: SampleState::default(),
                    });
                    self.next_id += 1;
                }
                Err(e) => {
                    slots[k..].iter().for_each(|&s| self.pool.release(s));
                    self.kill_range(first..self.list.len());
                    close_pipes(&pipes);
                    return Err(format!(
                        "fork failed: {}",
                        errno::describe(e.raw_os_error())
                    ));
                }
            }
        }
        close_pipes(&pipes);
        let range = first..self.list.len();
        if let Err(e) = self.start(range.clone(), g.cgroup) {
            self.kill_range(range);
            return Err(e);
        }
        Ok(range)
    }

    /// Places the new workers, opens their gates and waits until they run.
    fn start(&self, range: core::ops::Range<usize>, cgroup: Option<&str>) -> Result<(), String> {
        let workers = &self.list[range];
        if let Some(cg) = cgroup {
            for w in workers {
                cgroupfs::add_pid(cg, w.pid)?;
            }
        }
        for w in workers {
            let s = self.pool.slot(w.slot);
            s.gate.store(1, Ordering::Release);
            let _ = futex::wake(&s.gate, futex::Flags::empty(), 1);
        }
        let deadline = sys::now_ns() + START_TIMEOUT_NS;
        for w in workers {
            let s = self.pool.slot(w.slot);
            loop {
                match s.state.load(Ordering::Acquire) {
                    STATE_RUNNING => break,
                    STATE_FAILED => {
                        return Err(format!(
                            "worker {} (pid {}): {} failed: {}",
                            w.id,
                            w.pid,
                            stage_name(s.stage.load(Ordering::Relaxed)),
                            errno::describe(
                                i32::try_from(s.error.load(Ordering::Relaxed)).unwrap_or(0)
                            )
                        ));
                    }
                    _ if sys::now_ns() > deadline => {
                        return Err(format!(
                            "worker {} (pid {}) did not start within 5 s",
                            w.id, w.pid
                        ));
                    }
                    _ => {
                        let ts = rustix::time::Timespec {
                            tv_sec: 0,
                            tv_nsec: 10_000_000,
                        };
                        let _ =
                            futex::wait(&s.state, futex::Flags::empty(), STATE_STARTING, Some(&ts));
                    }
                }
            }
        }
        Ok(())
    }

    /// SIGKILLs and reaps the workers for which `pred` holds; returns their PIDs.
    pub fn kill_where(&mut self, pred: impl Fn(&Worker) -> bool) -> Vec<u32> {
        let doomed: Vec<usize> = (0..self.list.len())
            .filter(|&i| pred(&self.list[i]))
            .collect();
        for &i in &doomed {
            if let Some(pid) = pid_of(self.list[i].pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        let mut pids = Vec::with_capacity(doomed.len());
        for &i in doomed.iter().rev() {
            let w = self.list.remove(i);
            if let Some(pid) = pid_of(w.pid) {
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
            }
            self.pool.release(w.slot);
            pids.push(w.pid);
        }
        pids.reverse();
        pids
    }

    fn kill_range(&mut self, range: core::ops::Range<usize>) {
        let ids: Vec<u32> = self.list[range].iter().map(|w| w.id).collect();
        self.kill_where(|w| ids.contains(&w.id));
    }

    /// Forgets worker `pid` after it ended on its own; returns it, or `None`
    /// when `pid` is no worker.
    pub fn on_exit(&mut self, pid: u32) -> Option<Worker> {
        let i = self.list.iter().position(|w| w.pid == pid)?;
        let w = self.list.remove(i);
        self.pool.release(w.slot);
        Some(w)
    }
}

/// For PipeIo: per worker, (write end, read end) of the pipes to its partner;
/// `None` for a worker without one. The executor closes its copies after the
/// fork with [`close_pipes`].
fn pair_pipes(work: &WorkType, n: usize) -> Result<Vec<Option<(i32, i32)>>, String> {
    use rustix::fd::IntoRawFd;
    let mut out = alloc::vec![None; n];
    if !workplan::needs_pipes(work) {
        return Ok(out);
    }
    for k in (0..n.saturating_sub(1)).step_by(2) {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
                close_pipes(&out);
                format!("pipe failed: {}", errno::describe(e.raw_os_error()))
            })
        };
        let (ab_r, ab_w) = pipe()?;
        let (ba_r, ba_w) = match pipe() {
            Ok(p) => p,
            Err(e) => {
                drop((ab_r, ab_w));
                return Err(e);
            }
        };
        out[k] = Some((ab_w.into_raw_fd(), ba_r.into_raw_fd()));
        out[k + 1] = Some((ba_w.into_raw_fd(), ab_r.into_raw_fd()));
    }
    Ok(out)
}

fn close_pipes(pipes: &[Option<(i32, i32)>]) {
    use rustix::fd::{FromRawFd, OwnedFd};
    for (w, r) in pipes.iter().flatten() {
        // SAFETY: these fds were made by `pair_pipes` and are closed only here.
        unsafe { drop((OwnedFd::from_raw_fd(*w), OwnedFd::from_raw_fd(*r))) };
    }
}
