//! What the recorder does not take on trust: the records a guest may send,
//! how far ahead of the host its timestamps may run, and the text of a panic
//! caught while recording or judging.
use trace_format::record::{ConsoleSource, Record};

/// Runs `f`, turning a panic into its message: a bug reachable from guest
/// bytes must not unwind past the code that closes the trace.
pub(super) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Whether the guest may send `record`: what its executor writes. Snapshots,
/// kernel accesses, verdicts and host or kernel console lines are the host's.
pub(super) fn guest_may_send(record: &Record) -> bool {
    match record {
        Record::StepBegin { .. }
        | Record::StepEnd { .. }
        | Record::OpApplied(_)
        | Record::WorkerSpawned(_)
        | Record::WorkerSample(_)
        | Record::SchedulerEvent(_)
        | Record::Drop(_)
        | Record::End(_)
        | Record::WorkerExited(_)
        | Record::WorkerErrors(_)
        | Record::MemoryEvents(_) => true,
        Record::Console(c) => matches!(
            c.source,
            ConsoleSource::Executor | ConsoleSource::PayloadStdout | ConsoleSource::PayloadStderr
        ),
        Record::Snapshot(_) | Record::KernelAccess(_) | Record::Verdict(_) => false,
    }
}

/// How far ahead of the host's clock a guest timestamp may run (records are
/// clamped to it, so one wild stamp cannot push every later record, `End`
/// included, to the end of time).
pub(super) const MAX_GUEST_LEAD_NS: u64 = 5_000_000_000;
