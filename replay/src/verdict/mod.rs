//! Verdicts over one run: pass, fail or inconclusive, with the numbers
//! behind each. The live verdict at the end of `cargo xtask run` and
//! `replay judge` call the same [`judge`].
mod checks;
mod walk;

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use trace_format::file::Trace;
use trace_format::record::{Verdict, VerdictOutcome};

use crate::load::LoadedTrace;
use crate::text::table;
use crate::thresholds::{Thresholds, VerdictThresholds};

/// Every verdict, in evaluation order.
pub const NAMES: [&str; 7] = [
    "not-starved",
    "cpuset-isolation",
    "fairness-spread",
    "weight-share",
    "max-sched-gap",
    "wake-latency-p99",
    "runqueue-stall",
];

/// Judges a run with the default thresholds.
pub fn judge(trace: &Trace<'_>) -> Vec<Verdict> {
    judge_with(trace, &VerdictThresholds::default())
}

/// Judges a run; verdicts named in `t.skip` are left out.
pub fn judge_with(trace: &Trace<'_>, t: &VerdictThresholds) -> Vec<Verdict> {
    let ev = walk::walk(trace, t.stall_min_interval);
    let all = trace.meta().topology.all_cpus();
    let run = trace.metrics();
    let mut out = vec![
        checks::not_starved(&ev),
        checks::cpuset_isolation(&ev),
        checks::fairness_spread(&ev, t),
        checks::weight_share(&ev, t, &all),
        checks::max_sched_gap(&ev, t),
        checks::wake_p99(&run, t),
        checks::runqueue_stall(&ev, t),
    ];
    out.retain(|v| !t.skip.contains(&v.name));
    if ev.decode_errors > 0 || !trace.recovery().is_clean() {
        for v in &mut out {
            v.detail
                .push_str(" [damaged trace: recovered records only]");
        }
    }
    out
}

/// Opens `path` and judges it, with thresholds from `thresholds` when given.
/// This is the one call `cargo xtask run` needs after closing a trace.
pub fn judge_file(path: &Path, thresholds: Option<&Path>) -> Result<Vec<Verdict>> {
    let t = Thresholds::load_or_default(thresholds)?;
    let loaded = LoadedTrace::open(path)?;
    Ok(judge_with(&loaded.trace()?, &t.verdicts))
}

/// True when any verdict failed.
pub fn any_failed(verdicts: &[Verdict]) -> bool {
    verdicts.iter().any(|v| v.outcome == VerdictOutcome::Fail)
}

/// Lowercase outcome word.
pub fn outcome_word(o: VerdictOutcome) -> &'static str {
    match o {
        VerdictOutcome::Pass => "pass",
        VerdictOutcome::Fail => "FAIL",
        VerdictOutcome::Inconclusive => "inconclusive",
    }
}

/// Prints verdicts as a table (or JSON lines of name, outcome, detail).
pub fn render(out: &mut impl Write, verdicts: &[Verdict], json: bool) -> Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = verdicts
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "outcome": outcome_word(v.outcome).to_lowercase(),
                    "detail": v.detail,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut t = table(&["verdict", "outcome", "detail"]);
    for v in verdicts {
        t.add_row(vec![
            v.name.clone(),
            outcome_word(v.outcome).to_string(),
            v.detail.clone(),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(())
}
