//! Reading one worker's counters and turning them into a `WorkerSample`.
//!
//! Per worker and sample: `/proc/<pid>/schedstat` (run, wait, timeslices),
//! `/proc/<pid>/status` (context switches), `/proc/<pid>/sched`
//! (`se.nr_migrations`, when present) and the telemetry page. Files are read
//! into one reused buffer and the record is reused too: no allocation once
//! its vectors have grown.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use trace_format::record::{Record, WorkerErrors, WorkerSample};

use super::sys;
use super::worker::{Pool, Worker};
use crate::procfs;
use crate::sample::{Delta, Reading};
use crate::stack_format;
use crate::telemetry::{CPU_WORDS, op_name};

/// Reusable buffers for sampling.
#[derive(Debug)]
pub struct Sampler {
    buf: Vec<u8>,
    record: Record,
    /// The latest sample's failed operations, if any.
    errors: Option<Record>,
    /// `/proc/<pid>/sched` does not exist (kernel without SCHED_DEBUG).
    no_sched_file: bool,
}

impl Default for Sampler {
    /// Buffers sized for `/proc/<pid>/sched`; probes whether that file exists.
    fn default() -> Self {
        let mut buf = vec![0; 16 * 1024];
        let no_sched_file = sys::read_into("/proc/self/sched", &mut buf).is_err();
        Sampler {
            buf,
            record: Record::WorkerSample(WorkerSample {
                cpus_seen: Vec::with_capacity(CPU_WORDS),
                ..WorkerSample::default()
            }),
            errors: None,
            no_sched_file,
        }
    }
}

impl Sampler {
    /// Reads `w`'s cumulative counters; `None` when its process is gone.
    fn read(&mut self, w: &Worker, pool: &Pool) -> Option<Reading> {
        let slot = pool.slot(w.slot);
        let path = stack_format!(48, "/proc/{}/schedstat", w.pid)?;
        let n = sys::read_into(&path, &mut self.buf).ok()?;
        let stat = procfs::parse_schedstat(&self.buf[..n])?;
        let mut r = Reading {
            iterations: slot.iterations.load(Relaxed),
            run_ns: stat.run_ns,
            wait_ns: stat.wait_ns,
            timeslices: stat.timeslices,
            cpu_changes: slot.cpu_changes.load(Relaxed),
            failed: slot.failed.load(Relaxed),
            ..Reading::default()
        };
        let path = stack_format!(48, "/proc/{}/status", w.pid)?;
        if let Ok(n) = sys::read_into(&path, &mut self.buf)
            && let Some((vol, invol)) = procfs::parse_ctxt_switches(&self.buf[..n])
        {
            r.voluntary = vol;
            r.involuntary = invol;
        }
        if !self.no_sched_file {
            let path = stack_format!(48, "/proc/{}/sched", w.pid)?;
            if let Ok(n) = sys::read_into(&path, &mut self.buf) {
                r.migrations = procfs::parse_nr_migrations(&self.buf[..n]);
            }
        }
        if w.wakes {
            slot.wake_hist(&mut r.wake_hist);
        }
        Some(r)
    }

    /// Starts `w`'s first sample interval now: call it at the instant its
    /// spawn record is stamped. Clears the interval fields of its page.
    pub fn baseline(&mut self, w: &mut Worker, pool: &Pool) {
        if let Some(r) = self.read(w, pool) {
            let slot = pool.slot(w.slot);
            let _ = slot.take_wake_max();
            slot.take_cpus(&mut [0u64; CPU_WORDS]);
            w.sample.baseline(&r);
        }
    }

    /// Samples `w`: its sample, and a `WorkerErrors` record when its
    /// operations failed in the interval. `None` when its process is gone or
    /// the reading only set its baseline.
    pub fn sample(&mut self, w: &mut Worker, pool: &Pool) -> Option<(&Record, Option<&Record>)> {
        let r = self.read(w, pool)?;
        let slot = pool.slot(w.slot);
        let wake_max = w.wakes.then(|| slot.take_wake_max());
        let mut cpus = [0u64; CPU_WORDS];
        slot.take_cpus(&mut cpus);
        let Record::WorkerSample(out) = &mut self.record else {
            return None;
        };
        out.worker = w.id;
        let Delta::Sample { failed } = w.sample.delta(&r, &cpus, wake_max, out) else {
            return None;
        };
        self.errors = (failed > 0).then(|| {
            Record::WorkerErrors(WorkerErrors {
                worker: w.id,
                failed,
                op: op_name(slot.failed_op.load(Relaxed)).into(),
                errno: slot.failed_errno.load(Relaxed),
            })
        });
        Some((&self.record, self.errors.as_ref()))
    }
}
