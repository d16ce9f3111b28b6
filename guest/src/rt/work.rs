//! What a worker process runs: its settings, then its work type forever.
//!
//! One iteration per work type: SpinWait, a fixed chunk of integer work;
//! YieldHeavy, one `sched_yield`; Mixed, ~1 ms spin then ~100 µs sleep;
//! IoSleep, one sleep; Bursty, one burst and one sleep; FutexPingPong, one
//! round trip with the paired worker. After each iteration (and during long
//! spins) the worker notes its CPU in the telemetry page.

use core::hint::black_box;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use rustix::thread::futex;
use trace_format::scenario::{CpuList, SchedPolicy, WorkType};

use super::sys;
use crate::telemetry::{
    STAGE_AFFINITY, STAGE_COMM, STAGE_NICE, STAGE_POLICY, STATE_FAILED, STATE_RUNNING, Slot,
};

const SCHED_NORMAL: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;

/// Whether this build can run `work`.
pub fn supported(work: &WorkType) -> bool {
    matches!(
        work,
        WorkType::SpinWait
            | WorkType::YieldHeavy
            | WorkType::Mixed
            | WorkType::IoSleep { .. }
            | WorkType::Bursty { .. }
            | WorkType::FutexPingPong
    )
}

/// Everything a freshly forked worker needs.
#[derive(Debug)]
pub struct Child<'a> {
    pub slot: &'a Slot,
    /// Ping-pong: the pair's shared slot and this worker's side (0 or 1).
    pub pair: Option<(&'a Slot, u32)>,
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
    let mut w = Runner {
        slot,
        cpu: usize::MAX,
    };
    match *work {
        WorkType::SpinWait => loop {
            spin_chunk();
            w.iteration();
        },
        WorkType::YieldHeavy => loop {
            rustix::thread::sched_yield();
            w.iteration();
        },
        WorkType::Mixed => loop {
            w.spin_for(1_000_000);
            sys::sleep_ns(100_000);
            w.iteration();
        },
        WorkType::IoSleep { sleep_us } => loop {
            sys::sleep_ns(u64::from(sleep_us) * 1000);
            w.iteration();
        },
        WorkType::Bursty { burst_us, sleep_us } => loop {
            w.spin_for(u64::from(burst_us) * 1000);
            sys::sleep_ns(u64::from(sleep_us) * 1000);
            w.iteration();
        },
        WorkType::FutexPingPong => match c.pair {
            Some((pair, side)) => w.ping_pong(pair, side),
            None => sys::exit(2),
        },
        _ => sys::exit(2),
    }
}

/// A fixed amount of integer work that the optimiser cannot remove.
fn spin_chunk() {
    let mut x: u64 = black_box(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000u64 {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    black_box(x);
}

struct Runner<'a> {
    slot: &'a Slot,
    cpu: usize,
}

impl Runner<'_> {
    /// Counts an iteration and notes the CPU.
    fn iteration(&mut self) {
        self.slot.iterations.fetch_add(1, Relaxed);
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
        self.slot.note_cpu(cpu);
    }

    /// Spins for `ns` of wall time, noting the CPU as it goes.
    fn spin_for(&mut self, ns: u64) {
        let end = sys::now_ns().saturating_add(ns);
        while sys::now_ns() < end {
            for _ in 0..16 {
                black_box(0u64);
            }
            self.note_cpu();
        }
    }

    /// Alternates with the paired worker through the pair slot's `turn` futex;
    /// each side measures the time from the other's wake call to running.
    fn ping_pong(&mut self, pair: &Slot, side: u32) -> ! {
        let other = side ^ 1;
        let mut first = true;
        loop {
            while pair.turn.load(Acquire) != side {
                let _ = futex::wait(&pair.turn, futex::Flags::empty(), other, None);
            }
            let now = sys::now_ns();
            let woken_at = pair.woken_at_ns.load(Acquire);
            // The first hand-over includes start-up skew; skip it.
            if !first && woken_at != 0 {
                self.slot.record_wake(now.saturating_sub(woken_at));
            }
            first = false;
            self.iteration();
            pair.woken_at_ns.store(sys::now_ns(), Release);
            pair.turn.store(other, Release);
            let _ = futex::wake(&pair.turn, futex::Flags::empty(), 1);
        }
    }
}
