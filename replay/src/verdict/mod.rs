//! Verdicts over one run: pass, fail or inconclusive, with the numbers
//! behind each. The live verdict at the end of `cargo xtask run` and
//! `replay judge` call the same [`judge`].
mod checks;
mod health;
pub mod timing;
mod walk;

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use trace_format::file::Trace;
use trace_format::record::{Record, RecordKind, Timed, Verdict, VerdictOutcome};

use crate::load::LoadedTrace;
use crate::text::table;
use crate::thresholds::{Thresholds, VerdictThresholds};

/// Every verdict, in evaluation order (the names a scenario's `skip` takes).
pub const NAMES: [&str; 9] = trace_format::scenario::VERDICT_NAMES;

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
        health::no_oom_kill(&ev.health),
        health::no_op_errors(&ev.health),
    ];
    timing::apply(&mut out, trace.meta().acceleration);
    out.retain(|v| !t.skip.contains(&v.name));
    if ev.decode_errors > 0 || trace.integrity().is_damaged() {
        for v in &mut out {
            v.detail
                .push_str(" [damaged trace: recovered records only]");
        }
    }
    out
}

/// Opens `path` and judges it with its scenario's thresholds, overridden
/// by the file `thresholds` when given.
pub fn judge_file(path: &Path, thresholds: Option<&Path>) -> Result<Vec<Verdict>> {
    Ok(judge_file_recorded(path, thresholds)?.verdicts)
}

/// What `replay judge` shows for one trace.
#[derive(Debug)]
pub struct Judged {
    /// Recomputed now.
    pub verdicts: Vec<Verdict>,
    /// Recorded in the trace at run time.
    pub recorded: Vec<Verdict>,
    /// How the system under test failed, if it did ([`crate::failure`]).
    pub failure: Option<String>,
}

/// [`judge_file`], plus the verdicts recorded at run time and whether the
/// system under test failed, from one read of the trace.
pub fn judge_file_recorded(path: &Path, thresholds: Option<&Path>) -> Result<Judged> {
    let loaded = LoadedTrace::open(path)?;
    let trace = loaded.trace()?;
    let t = Thresholds::resolve(trace.meta().scenario.thresholds.as_ref(), thresholds)?;
    Ok(Judged {
        verdicts: judge_with(&trace, &t.verdicts),
        recorded: recorded(&trace),
        failure: crate::failure::under_test_failure(&trace),
    })
}

/// The `Verdict` records a trace holds (written at the end of the run).
pub fn recorded(trace: &Trace<'_>) -> Vec<Verdict> {
    let counts = trace.kind_counts();
    if counts.get(RecordKind::Verdict.index()) == Some(&0) {
        return Vec::new();
    }
    trace
        .records()
        .filter_map(|r| match r {
            Ok(Timed {
                record: Record::Verdict(v),
                ..
            }) => Some(v),
            _ => None,
        })
        .collect()
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
    render_with_recorded(out, verdicts, &[], json)
}

/// Prints recomputed verdicts beside those `recorded` at run time: a
/// "recorded at run time" column (JSON: `recorded`, null when absent) and a
/// `skipped` row for a recorded verdict that was not recomputed. Without
/// recorded verdicts this is [`render`].
pub fn render_with_recorded(
    out: &mut impl Write,
    verdicts: &[Verdict],
    recorded: &[Verdict],
    json: bool,
) -> Result<()> {
    let at_run = |name: &str| recorded.iter().find(|r| r.name == name);
    let mut rows: Vec<(&str, &str, Option<&Verdict>, &str)> = verdicts
        .iter()
        .map(|v| {
            let word = outcome_word(v.outcome);
            (v.name.as_str(), word, at_run(&v.name), v.detail.as_str())
        })
        .collect();
    for r in recorded {
        if !verdicts.iter().any(|v| v.name == r.name) {
            rows.push((r.name.as_str(), "skipped", Some(r), r.detail.as_str()));
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, outcome, rec, detail)| {
                let mut row = serde_json::json!({
                    "name": name,
                    "outcome": outcome.to_lowercase(),
                    "detail": detail,
                });
                if !recorded.is_empty() {
                    row["recorded"] = rec.map(|r| outcome_word(r.outcome).to_lowercase()).into();
                }
                row
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if recorded.is_empty() {
        let mut t = table(&["verdict", "outcome", "detail"]);
        for (name, outcome, _, detail) in rows {
            t.add_row(vec![name, outcome, detail]);
        }
        writeln!(out, "{t}")?;
        return Ok(());
    }
    let mut t = table(&["verdict", "outcome", "recorded at run time", "detail"]);
    for (name, outcome, rec, detail) in rows {
        let then = rec.map_or("-", |r| outcome_word(r.outcome));
        t.add_row(vec![name, outcome, then, detail]);
    }
    writeln!(out, "{t}")?;
    let differ = verdicts
        .iter()
        .filter(|v| at_run(&v.name).is_some_and(|r| r.outcome != v.outcome))
        .count();
    if differ > 0 {
        writeln!(
            out,
            "{differ} verdict(s) differ from the run-time outcome (thresholds changed?)"
        )?;
    }
    Ok(())
}
