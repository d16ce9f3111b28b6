//! Whether a run that did not complete failed in the system under test rather
//! than in the harness: sched_ext ejected the scheduler with an error exit (a
//! BPF error, a runnable-task stall, a runtime error), or the kernel panicked
//! while the scenario ran. `cargo xtask run` exits 1 for these, `replay check`
//! counts them as regressions and `replay judge` fails; other incomplete runs
//! (no `/init`, the executor dying, a scheduler that never started, a failed
//! op, a timeout) are the harness's: status 3, "cannot judge" (125).
use trace_format::file::Trace;
use trace_format::record::{Record, RecordKind, RunOutcome, SchedulerEventKind};

/// First sched_ext exit kind that means an error (`SCX_EXIT_ERROR`); the
/// named ones are `error`, `error_bpf` and `error_stall`, newer ones `kind_N`.
const SCX_EXIT_ERROR: u64 = 1024;

/// True for a sched_ext exit kind that means the scheduler failed.
pub fn is_error_exit(kind: &str) -> bool {
    kind.starts_with("error")
        || kind
            .strip_prefix("kind_")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= SCX_EXIT_ERROR)
}

/// How the system under test failed in `trace`, described; `None` when the
/// run completed or ended for a reason of the harness's.
pub fn under_test_failure(trace: &Trace<'_>) -> Option<String> {
    let outcome = trace
        .index()
        .and_then(|ix| ix.outcome.clone())
        .or_else(|| end_of(trace))?;
    let counts = trace.kind_counts();
    let seen = |kind: RecordKind| counts.get(kind.index()).copied().unwrap_or(0) > 0;
    match outcome {
        // The scenario was running (a step began), and not because PID 1,
        // the executor, died: that panic is the harness's.
        RunOutcome::KernelPanic { message }
            if seen(RecordKind::StepBegin) && !message.contains("Attempted to kill init") =>
        {
            Some(format!("the kernel panicked: {message}"))
        }
        RunOutcome::GuestError { .. } if seen(RecordKind::SchedulerEvent) => ejection(trace),
        _ => None,
    }
}

/// The first error exit of a scheduler in `trace`, described.
fn ejection(trace: &Trace<'_>) -> Option<String> {
    trace.records().flatten().find_map(|t| match t.record {
        Record::SchedulerEvent(e) => match e.event {
            SchedulerEventKind::Exited { kind, reason } if is_error_exit(&kind) => Some(format!(
                "scheduler {:?} ejected ({kind}): {reason}",
                e.scheduler
            )),
            _ => None,
        },
        _ => None,
    })
}

/// The `End` record's outcome, for a trace without an index.
fn end_of(trace: &Trace<'_>) -> Option<RunOutcome> {
    trace.records().flatten().find_map(|t| match t.record {
        Record::End(o) => Some(o),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_exit_kinds() {
        for kind in ["error", "error_bpf", "error_stall", "kind_1027"] {
            assert!(is_error_exit(kind), "{kind}");
        }
        for kind in [
            "unreg",
            "unreg_bpf",
            "sysrq",
            "startup",
            "died",
            "kind_65",
            "unknown",
        ] {
            assert!(!is_error_exit(kind), "{kind}");
        }
    }
}
