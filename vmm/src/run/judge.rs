//! Judging a run just before its `End`: the verdicts go into the trace.
use trace_format::file::{Sink, Trace, TraceWriter};
use trace_format::record::{RunOutcome, Verdict};

use super::Judge;
use super::guard::contained;

/// Runs `judge` over the trace so far: the file as written (after flushing
/// the open chunk) plus the index and trailer the writer would close it with.
pub(super) fn judge_before_end<S: Sink>(
    writer: &mut TraceWriter<S>,
    path: &std::path::Path,
    outcome: &RunOutcome,
    judge: Judge<'_>,
) -> Result<Vec<Verdict>, String> {
    let tail = writer.closing_tail().map_err(|e| e.to_string())?;
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    bytes.extend_from_slice(&tail);
    let trace = Trace::open(&bytes).map_err(|e| e.to_string())?;
    // The verdicts read guest-written records: a panic there is a judging failure.
    contained(|| judge(&trace, outcome)).map_err(|panic| format!("the judge panicked: {panic}"))
}
