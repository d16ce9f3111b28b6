//! One compact console line per record, for runs without a ring (debug mode).

use core::fmt::{self, Write};
use trace_format::record::{OpOutcome, Record, WorkerSample};

/// Writes `[   1.234567] <record>` (no newline).
pub fn line(out: &mut impl Write, ts_ns: u64, record: &Record) -> fmt::Result {
    write!(
        out,
        "[{:4}.{:06}] ",
        ts_ns / 1_000_000_000,
        ts_ns % 1_000_000_000 / 1000
    )?;
    match record {
        Record::StepBegin { step } => write!(out, "{step} begins"),
        Record::StepEnd { step, outcome } => write!(out, "{step} ends: {outcome:?}"),
        Record::OpApplied(op) => {
            write!(
                out,
                "{} op {} round {} took {}us: ",
                op.step,
                op.op,
                op.round,
                op.duration_ns / 1000
            )?;
            match &op.outcome {
                OpOutcome::Done => out.write_str("done"),
                OpOutcome::Pids(p) => write!(out, "pids {p:?}"),
                OpOutcome::Value(v) => write!(out, "value {v}"),
                OpOutcome::Failed { error } => write!(out, "FAILED: {error}"),
            }
        }
        Record::WorkerSpawned(w) => write!(
            out,
            "worker {} pid {} spawned in {:?} ({}) by {}",
            w.worker, w.pid, w.cgroup, w.work, w.step
        ),
        Record::WorkerSample(s) => sample(out, s),
        Record::Console(c) => write!(out, "{:?}: {}", c.source, c.line),
        Record::Drop(d) => write!(out, "DROPPED {} records: {}", d.records, d.reason),
        Record::End(o) => write!(out, "END {o:?}"),
        other => write!(out, "{other:?}"),
    }
}

fn sample(out: &mut impl Write, s: &WorkerSample) -> fmt::Result {
    write!(
        out,
        "sample w{} it={} run={}us wait={}us slices={} mig={} vcs={} ics={} cpus=",
        s.worker,
        s.iterations,
        s.run_ns / 1000,
        s.wait_ns / 1000,
        s.timeslices,
        s.migrations,
        s.voluntary_switches,
        s.involuntary_switches
    )?;
    let mut first = true;
    for cpu in s.cpus() {
        write!(out, "{}{cpu}", if first { "" } else { "," })?;
        first = false;
    }
    if let Some(w) = &s.wake {
        write!(out, " wakes={} max={}us", w.hist.count(), w.max_ns / 1000)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn sample_line() {
        let mut s = String::new();
        let r = Record::WorkerSample(WorkerSample {
            worker: 2,
            iterations: 10,
            run_ns: 5_000_000,
            cpus_seen: vec![0b101],
            ..WorkerSample::default()
        });
        line(&mut s, 1_500_000_000, &r).unwrap();
        assert_eq!(
            s,
            "[   1.500000] sample w2 it=10 run=5000us wait=0us slices=0 mig=0 vcs=0 ics=0 cpus=0,2"
        );
    }
}
