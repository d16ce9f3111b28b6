//! The per-worker telemetry page, shared between a worker and the executor.
//!
//! One [`Slot`] (one page) per worker lives in a `MAP_SHARED` anonymous mapping
//! made before any fork, so every worker and the executor see the same bytes.
//! The worker only increments or sets bits; the executor reads cumulative
//! counters (and computes deltas) or swaps per-interval fields back to zero.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use trace_format::record::Log2Hist;
use trace_format::scenario::MAX_CPUS;

/// Words of the CPUs-seen bitmask (one bit per possible CPU).
pub const CPU_WORDS: usize = MAX_CPUS as usize / 64;
/// Buckets of the wake-latency histogram, as in [`Log2Hist`].
pub const HIST_BUCKETS: usize = Log2Hist::MAX_BUCKETS;

/// Worker start-up state in [`Slot::state`].
pub const STATE_STARTING: u32 = 0;
/// The worker applied its settings and runs its work.
pub const STATE_RUNNING: u32 = 1;
/// The worker failed to apply a setting; see [`Slot::stage`] and [`Slot::error`].
pub const STATE_FAILED: u32 = 2;

/// One worker's shared page.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Slot {
    /// Executor → worker: 1 once the worker sits in its cgroup and may start.
    pub gate: AtomicU32,
    /// Worker → executor: one of the `STATE_*` values.
    pub state: AtomicU32,
    /// Errno of a failed setting.
    pub error: AtomicU32,
    /// Which setting failed (see [`stage_name`]).
    pub stage: AtomicU32,
    /// Work-type iterations completed (cumulative).
    pub iterations: AtomicU64,
    /// Times the worker found itself on a different CPU (cumulative).
    pub cpu_changes: AtomicU64,
    /// CPUs seen since the executor last took the mask.
    pub cpus_seen: [AtomicU64; CPU_WORDS],
    /// Largest wake latency since the executor last took it, ns.
    pub wake_max_ns: AtomicU64,
    /// Wake latencies, log2 buckets of ns (cumulative).
    pub wake_hist: [AtomicU32; HIST_BUCKETS],
    /// Ping-pong: whose turn it is (0 or 1); used in the pair's first slot.
    pub turn: AtomicU32,
    /// Paired and group work: when the waker passed the turn, ns (`CLOCK_MONOTONIC`).
    pub woken_at_ns: AtomicU64,
    /// Fan-out: the waker's round number; used in the group leader's slot.
    pub seq: AtomicU32,
    /// Fan-out: waiters that saw the current round.
    pub acks: AtomicU32,
    /// Mutex contention: workers holding the lock; used in the group's first slot.
    pub held: AtomicU32,
    /// Operations of the work type that failed (cumulative); never iterations.
    pub failed: AtomicU64,
    /// Errno of the latest failed operation.
    pub failed_errno: AtomicU32,
    /// Which operation failed last (see [`op_name`]).
    pub failed_op: AtomicU32,
}

/// Setting stages a worker reports on failure.
pub const STAGE_COMM: u32 = 1;
pub const STAGE_NICE: u32 = 2;
pub const STAGE_POLICY: u32 = 3;
pub const STAGE_AFFINITY: u32 = 4;

/// Work operations a worker reports as failed.
pub const OP_FORK: u32 = 1;
pub const OP_WAIT: u32 = 2;
pub const OP_MAP: u32 = 3;

/// The name of a failed work operation, as recorded in `WorkerErrors`.
pub fn op_name(op: u32) -> &'static str {
    match op {
        OP_FORK => "fork",
        OP_WAIT => "waitpid",
        OP_MAP => "mmap",
        _ => "operation",
    }
}

/// What a failed stage was doing.
pub fn stage_name(stage: u32) -> &'static str {
    match stage {
        STAGE_COMM => "prctl(PR_SET_NAME)",
        STAGE_NICE => "setpriority (nice)",
        STAGE_POLICY => "sched_setscheduler",
        STAGE_AFFINITY => "sched_setaffinity",
        _ => "setup",
    }
}

impl Slot {
    /// Zeroes every field before the slot is given to a new worker.
    pub fn reset(&self) {
        for a in [
            &self.gate,
            &self.state,
            &self.error,
            &self.stage,
            &self.turn,
            &self.seq,
            &self.acks,
            &self.held,
            &self.failed_errno,
            &self.failed_op,
        ] {
            a.store(0, Relaxed);
        }
        for a in [
            &self.iterations,
            &self.cpu_changes,
            &self.wake_max_ns,
            &self.woken_at_ns,
            &self.failed,
        ] {
            a.store(0, Relaxed);
        }
        self.cpus_seen.iter().for_each(|w| w.store(0, Relaxed));
        self.wake_hist.iter().for_each(|b| b.store(0, Relaxed));
    }

    /// Marks `cpu` as seen (cheap when already marked); true when newly marked.
    pub fn note_cpu(&self, cpu: usize) -> bool {
        let Some(word) = self.cpus_seen.get(cpu / 64) else {
            return false;
        };
        let bit = 1u64 << (cpu % 64);
        word.load(Relaxed) & bit == 0 && word.fetch_or(bit, Relaxed) & bit == 0
    }

    /// Takes back a mark [`Slot::note_cpu`] just made (the worker moved meanwhile).
    pub fn unnote_cpu(&self, cpu: usize) {
        if let Some(word) = self.cpus_seen.get(cpu / 64) {
            word.fetch_and(!(1u64 << (cpu % 64)), Relaxed);
        }
    }

    /// Counts one failed work operation: `op` (an `OP_*`) with `errno`.
    pub fn note_failure(&self, op: u32, errno: i32) {
        self.failed_errno
            .store(u32::try_from(errno).unwrap_or(0), Relaxed);
        self.failed_op.store(op, Relaxed);
        self.failed.fetch_add(1, Relaxed);
    }

    /// Counts one wake-up that took `ns`.
    pub fn record_wake(&self, ns: u64) {
        self.wake_hist[Log2Hist::bucket_of(ns)].fetch_add(1, Relaxed);
        self.wake_max_ns.fetch_max(ns, Relaxed);
    }

    /// Takes the CPUs-seen mask, leaving it empty for the next interval.
    pub fn take_cpus(&self, out: &mut [u64; CPU_WORDS]) {
        for (o, w) in out.iter_mut().zip(&self.cpus_seen) {
            *o = w.swap(0, Relaxed);
        }
    }

    /// Takes the largest wake latency of the interval.
    pub fn take_wake_max(&self) -> u64 {
        self.wake_max_ns.swap(0, Relaxed)
    }

    /// Copies the cumulative wake histogram.
    pub fn wake_hist(&self, out: &mut [u32; HIST_BUCKETS]) {
        for (o, b) in out.iter_mut().zip(&self.wake_hist) {
            *o = b.load(Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    fn slot() -> Box<Slot> {
        // SAFETY: every field is an atomic integer, for which all-zero is valid.
        unsafe { Box::new_zeroed().assume_init() }
    }

    #[test]
    fn one_page_per_worker() {
        assert_eq!(core::mem::size_of::<Slot>(), 4096);
    }

    #[test]
    fn cpus_and_wakes() {
        let s = slot();
        assert!(s.note_cpu(1));
        assert!(!s.note_cpu(1));
        assert!(s.note_cpu(65) && s.note_cpu(3));
        assert!(!s.note_cpu(100_000));
        s.unnote_cpu(3);
        let mut m = [0; CPU_WORDS];
        s.take_cpus(&mut m);
        assert_eq!(m[..2], [0b10, 0b10]);
        s.take_cpus(&mut m);
        assert_eq!(m, [0; CPU_WORDS]);

        s.record_wake(0);
        s.record_wake(1500);
        s.record_wake(1000);
        let mut h = [0; HIST_BUCKETS];
        s.wake_hist(&mut h);
        assert_eq!((h[0], h[9], h[10]), (1, 1, 1));
        assert_eq!(s.take_wake_max(), 1500);
        assert_eq!(s.take_wake_max(), 0);
        s.reset();
        s.wake_hist(&mut h);
        assert_eq!(h, [0; HIST_BUCKETS]);
    }

    #[test]
    fn failures_count_apart_from_iterations() {
        let s = slot();
        s.note_failure(OP_FORK, 11);
        s.note_failure(OP_FORK, 11);
        assert_eq!(s.failed.load(Relaxed), 2);
        assert_eq!(s.iterations.load(Relaxed), 0);
        assert_eq!(op_name(s.failed_op.load(Relaxed)), "fork");
        assert_eq!(s.failed_errno.load(Relaxed), 11);
        s.reset();
        assert_eq!((s.failed.load(Relaxed), s.failed_op.load(Relaxed)), (0, 0));
    }
}
