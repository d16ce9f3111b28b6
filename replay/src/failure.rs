//! Whether a run that did not complete failed in the system under test rather
//! than in the harness: sched_ext ejected the scheduler with an error exit
//! (a BPF error, a runnable-task stall, a runtime error). `cargo xtask run`
//! exits 1 for it and `replay check` counts it as a regression, where other
//! incomplete runs are infrastructure (3) or cannot be judged (125).
use trace_format::file::Trace;
use trace_format::record::{Record, RunOutcome, SchedulerEventKind};

/// The sched_ext exit kinds that mean the scheduler failed.
pub const ERROR_EXIT_KINDS: [&str; 3] = ["error", "error_bpf", "error_stall"];

/// The first error exit of a scheduler in `trace`, described; `None` when
/// none failed (or the trace did not end in a guest error, which is how such
/// an exit ends a run). Records that do not decode are skipped.
pub fn scheduler_failure(trace: &Trace<'_>) -> Option<String> {
    let ended_in_error = trace
        .index()
        .is_none_or(|ix| matches!(ix.outcome, Some(RunOutcome::GuestError { .. }) | None));
    if !ended_in_error {
        return None;
    }
    trace.records().flatten().find_map(|t| match t.record {
        Record::SchedulerEvent(e) => match e.event {
            SchedulerEventKind::Exited { kind, reason }
                if ERROR_EXIT_KINDS.contains(&kind.as_str()) =>
            {
                Some(format!(
                    "scheduler {:?} ejected ({kind}): {reason}",
                    e.scheduler
                ))
            }
            _ => None,
        },
        _ => None,
    })
}
