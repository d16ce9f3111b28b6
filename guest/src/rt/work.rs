//! What a worker process runs: its settings, then its work type until killed.
//!
//! One iteration per work type (see `WorkType` for the full list):
//! SpinWait, a fixed chunk of integer work; YieldHeavy, one `sched_yield`;
//! Mixed, ~1 ms spin then ~100 µs sleep; IoSleep, one sleep; Bursty, one
//! burst and one sleep; the paired and group types in [`super::work_sync`];
//! the churn types in [`super::work_churn`]; Sequence runs each phase for its
//! duration and repeats. After each iteration the worker notes its CPU in the
//! telemetry page. Loops never allocate: buffers are mapped once per worker.

use core::hint::black_box;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use rustix::thread::futex;
use trace_format::scenario::{CpuList, SchedPolicy, WorkType};

use super::sys;
use crate::telemetry::{
    CPU_WORDS, STAGE_AFFINITY, STAGE_COMM, STAGE_NICE, STAGE_POLICY, STATE_FAILED, STATE_RUNNING,
    Slot,
};

const SCHED_NORMAL: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;

/// A deadline that never comes: run until killed.
pub const FOREVER: u64 = u64::MAX;

/// Everything a freshly forked worker needs.
#[derive(Debug)]
pub struct Child<'a> {
    pub slot: &'a Slot,
    /// Slots of every worker of the spawn, in order (pairs and groups share them).
    pub group: &'a [&'a Slot],
    /// This worker's index in `group`.
    pub k: usize,
    /// PipeIo: (write end to the partner, read end from it), as raw fds.
    pub pipe: Option<(i32, i32)>,
    /// NUL-padded `comm`.
    pub comm: &'a [u8; 16],
    pub nice: i8,
    pub policy: SchedPolicy,
    pub mask: Option<&'a CpuList>,
}

fn fail(slot: &Slot, stage: u32, e: rustix::io::Errno) -> ! {
    slot.stage.store(stage, Relaxed);
    slot.error
        .store(u32::try_from(e.raw_os_error()).unwrap_or(0), Relaxed);
    slot.state.store(STATE_FAILED, Release);
    let _ = futex::wake(&slot.state, futex::Flags::empty(), 1);
    sys::exit(1)
}

/// The worker's life: name, wait for placement, settings, work.
pub fn child_main(c: &Child<'_>, work: &WorkType) -> ! {
    let slot = c.slot;
    if let Ok(name) = core::ffi::CStr::from_bytes_until_nul(c.comm)
        && let Err(e) = rustix::thread::set_name(name)
    {
        fail(slot, STAGE_COMM, e);
    }
    while slot.gate.load(Acquire) == 0 {
        let _ = futex::wait(&slot.gate, futex::Flags::empty(), 0, None);
    }
    let (policy, prio) = match c.policy {
        SchedPolicy::Normal => (SCHED_NORMAL, 0),
        SchedPolicy::Batch => (SCHED_BATCH, 0),
        SchedPolicy::Idle => (SCHED_IDLE, 0),
        SchedPolicy::Fifo(p) => (SCHED_FIFO, u32::from(p)),
        SchedPolicy::RoundRobin(p) => (SCHED_RR, u32::from(p)),
    };
    if c.nice != 0
        && matches!(c.policy, SchedPolicy::Normal | SchedPolicy::Batch)
        && let Err(e) = rustix::process::setpriority_process(None, i32::from(c.nice))
    {
        fail(slot, STAGE_NICE, e);
    }
    if policy != SCHED_NORMAL
        && let Err(e) = sys::sched_setscheduler(0, policy, prio)
    {
        fail(slot, STAGE_POLICY, e);
    }
    if let Some(mask) = c.mask {
        let mut set = rustix::thread::CpuSet::new();
        mask.iter().for_each(|cpu| set.set(cpu as usize));
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            fail(slot, STAGE_AFFINITY, e);
        }
    }
    slot.state.store(STATE_RUNNING, Release);
    let _ = futex::wake(&slot.state, futex::Flags::empty(), 1);
    let mut r = Runner::new(c);
    r.run(work, FOREVER);
    sys::exit(0)
}

/// A fixed amount of integer work that the optimiser cannot remove.
pub(super) fn spin_chunk() {
    let mut x: u64 = black_box(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000u64 {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    black_box(x);
}

/// True while `until` has not passed.
pub(super) fn before(until: u64) -> bool {
    until == FOREVER || sys::now_ns() < until
}

/// Waits on `a` while it holds `val`, at most until `until`; false once `until` passed.
pub(super) fn wait_while(a: &AtomicU32, val: u32, until: u64) -> bool {
    if until == FOREVER {
        let _ = futex::wait(a, futex::Flags::empty(), val, None);
        return true;
    }
    let now = sys::now_ns();
    if now >= until {
        return false;
    }
    let left = until - now;
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(left / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: i64::try_from(left % 1_000_000_000).unwrap_or(0),
    };
    let _ = futex::wait(a, futex::Flags::empty(), val, Some(&ts));
    true
}

/// A worker's running state: telemetry, and buffers kept across iterations.
pub(super) struct Runner<'a> {
    pub(super) c: &'a Child<'a>,
    pub(super) slot: &'a Slot,
    cpu: usize,
    /// Iterations of the current churn or sweep type (drives its sequence).
    pub(super) step: u64,
    pub(super) rng: u64,
    pub(super) nice_floor: i32,
    /// Fan-out: the last round this waiter saw.
    pub(super) fan_seen: u32,
    /// AffinityChurn: the CPUs it may pick from.
    pub(super) allowed: Option<[u64; CPU_WORDS]>,
    /// CachePressure buffer and PageFaultChurn region: (address, length).
    pub(super) cache: Option<(usize, usize)>,
    pub(super) pages: Option<(usize, usize)>,
}

impl<'a> Runner<'a> {
    fn new(c: &'a Child<'a>) -> Self {
        let seed = (c.k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ sys::now_ns();
        Runner {
            c,
            slot: c.slot,
            cpu: usize::MAX,
            step: 0,
            rng: seed | 1,
            nice_floor: crate::workplan::NICE_MIN,
            fan_seen: 0,
            allowed: None,
            cache: None,
            pages: None,
        }
    }

    /// Runs `work` until `until` (or forever).
    pub(super) fn run(&mut self, work: &WorkType, until: u64) {
        match *work {
            WorkType::SpinWait => self.each(until, spin_chunk),
            WorkType::YieldHeavy => self.each(until, rustix::thread::sched_yield),
            WorkType::Mixed => {
                while before(until) {
                    self.spin_for(1_000_000);
                    sys::sleep_ns(100_000);
                    self.iteration();
                }
            }
            WorkType::IoSleep { sleep_us } => {
                self.each(until, || sys::sleep_ns(u64::from(sleep_us) * 1000));
            }
            WorkType::Bursty { burst_us, sleep_us } => {
                while before(until) {
                    self.spin_for(u64::from(burst_us) * 1000);
                    sys::sleep_ns(u64::from(sleep_us) * 1000);
                    self.iteration();
                }
            }
            WorkType::FutexPingPong => self.ping_pong(until),
            WorkType::PipeIo => self.pipe_io(until),
            WorkType::FutexFanOut { fan } => self.fan_out(fan, until),
            WorkType::MutexContention { holders } => self.mutex(holders, until),
            WorkType::CachePressure { kib } => self.cache_pressure(kib, until),
            WorkType::ForkExit => self.fork_exit(until),
            WorkType::AffinityChurn => self.affinity_churn(until),
            WorkType::PolicyChurn => self.policy_churn(until),
            WorkType::NiceSweep => self.nice_sweep(until),
            WorkType::PageFaultChurn => self.page_fault(until),
            WorkType::Sequence(ref phases) => loop {
                for p in phases {
                    let end = sys::now_ns().saturating_add(p.duration_ns).min(until);
                    self.step = 0;
                    self.run(&p.work, end);
                }
                if !before(until) || phases.is_empty() {
                    return;
                }
            },
        }
    }

    /// Calls `body` once per iteration until `until`.
    fn each(&mut self, until: u64, mut body: impl FnMut()) {
        while before(until) {
            body();
            self.iteration();
        }
    }

    /// Counts an iteration and notes the CPU.
    pub(super) fn iteration(&mut self) {
        self.slot.iterations.fetch_add(1, Relaxed);
        self.step = self.step.wrapping_add(1);
        self.note_cpu();
    }

    fn note_cpu(&mut self) {
        let cpu = rustix::thread::sched_getcpu();
        if cpu != self.cpu {
            if self.cpu != usize::MAX {
                self.slot.cpu_changes.fetch_add(1, Relaxed);
            }
            self.cpu = cpu;
        }
        // A move between reading the CPU and marking it could put the mark in a
        // later sample interval than the visit: take such a fresh mark back.
        if self.slot.note_cpu(cpu) && rustix::thread::sched_getcpu() != cpu {
            self.slot.unnote_cpu(cpu);
        }
    }

    /// Spins for `ns` of wall time, noting the CPU as it goes.
    fn spin_for(&mut self, ns: u64) {
        let end = sys::now_ns().saturating_add(ns);
        while sys::now_ns() < end {
            for _ in 0..256 {
                black_box(0u64);
            }
            self.note_cpu();
        }
    }

    /// Sleeps out a phase this worker cannot take part in (no partner).
    pub(super) fn idle_until(&mut self, until: u64) {
        if until == FOREVER {
            sys::exit(0);
        }
        while before(until) {
            sys::sleep_ns(10_000_000);
        }
    }
}
