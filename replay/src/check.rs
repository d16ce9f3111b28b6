//! `replay check`: the `git bisect run` predicate. Exit 0 no regression,
//! 1 regression (including the system under test failing, see
//! [`crate::failure`]), 125 cannot judge. Errors and panics never come out as 1.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use trace_format::record::{RunOutcome, Verdict, VerdictOutcome};

use crate::compare::{Call, Report, Run, Sided, compare, needs_intervals};
use crate::diff::{Summary, cells, write_meta};
use crate::load::LoadedTrace;
use crate::text::table;
use crate::thresholds::Thresholds;
use crate::{failure, verdict};

/// No regression.
pub const EXIT_GOOD: u8 = 0;
/// A regression.
pub const EXIT_BAD: u8 = 1;
/// Cannot judge: `git bisect run` skips the commit.
pub const EXIT_SKIP: u8 = 125;

/// The answer of one check, with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// 0, 1 or 125.
    pub code: u8,
    /// One line: why this code.
    pub summary: String,
    /// Metric regressions, verdicts newly failing, or why nothing could be judged.
    pub evidence: Vec<String>,
    /// Findings too thin to be a regression (a verdict that failed once).
    pub notes: Vec<String>,
    /// False when more runs could change the answer: a primary metric is
    /// inconclusive, or a verdict failed once and was not repeated.
    pub decided: bool,
    #[serde(skip)]
    pub report: Option<Report>,
}

impl CheckResult {
    fn skip(summary: String) -> Self {
        CheckResult {
            code: EXIT_SKIP,
            summary,
            evidence: Vec::new(),
            notes: Vec::new(),
            decided: false,
            report: None,
        }
    }
}

/// Verdicts that compare a measurement with a tolerance: on thin evidence
/// (a second of samples, a host hiccup) they fail now and then in healthy
/// runs, so one failure that the new side does not repeat is not a
/// regression. The others report a fact that never happens in a healthy
/// run (a starved worker, a task on a CPU outside its cpuset, a stalled run
/// queue, an OOM kill, failing operations): once is enough.
pub const NEEDS_REPEATING: [&str; 4] = [
    "fairness-spread",
    "weight-share",
    "max-sched-gap",
    "wake-latency-p99",
];

/// What a verdict's failures on each side amount to.
fn verdict_finding(
    name: &str,
    base: &[Vec<Verdict>],
    new: &[Vec<Verdict>],
) -> Option<(bool, String)> {
    let fails = |vs: &[Vec<Verdict>]| -> Vec<Verdict> {
        vs.iter()
            .flatten()
            .filter(|v| v.name == name && v.outcome == VerdictOutcome::Fail)
            .cloned()
            .collect()
    };
    let failed = fails(new);
    let v = failed.first()?;
    if !fails(base).is_empty() {
        return None;
    }
    let passed = base
        .iter()
        .flatten()
        .any(|v| v.name == name && v.outcome == VerdictOutcome::Pass);
    let before = if passed { "passes" } else { "is inconclusive" };
    if failed.len() == 1 && NEEDS_REPEATING.contains(&name) {
        return Some((
            false,
            format!(
                "verdict {name} failed once; not repeated (1 of {} new run(s); {before} in all {} baseline run(s)): {}",
                new.len(),
                base.len(),
                v.detail
            ),
        ));
    }
    let times = if new.len() > 1 {
        format!(" in {} of {} runs", failed.len(), new.len())
    } else {
        String::new()
    };
    Some((
        true,
        format!(
            "verdict {name} fails ({before} in the baseline){times}: {}",
            v.detail
        ),
    ))
}

/// Opened and vetted traces of one side, with their verdicts and, for runs
/// that did not complete, how the system under test failed (if it did).
struct Side {
    runs: Vec<Run>,
    verdicts: Vec<Vec<Verdict>>,
    failures: Vec<Option<String>>,
}

/// Opens every trace of one side; `Err` says why one cannot take part.
fn load_side(paths: &[PathBuf], t: &Thresholds, intervals: bool) -> Result<Side, String> {
    let mut side = Side {
        runs: Vec::new(),
        verdicts: Vec::new(),
        failures: Vec::new(),
    };
    for path in paths {
        let loaded = LoadedTrace::open(path).map_err(|e| format!("cannot judge: {e:#}"))?;
        let trace = loaded.trace().map_err(|e| format!("cannot judge: {e:#}"))?;
        // `clean` is the full check: an intact index can still front a chunk
        // that fails its CRC, and judging what is left would judge another run.
        let run = Run::from_trace(path, &trace, intervals);
        if !run.clean {
            return Err(format!(
                "cannot judge: {} is truncated or damaged (run `replay validate`)",
                path.display()
            ));
        }
        side.verdicts.push(verdict::judge_with(&trace, &t.verdicts));
        side.failures.push(failure::under_test_failure(&trace));
        side.runs.push(run);
    }
    Ok(side)
}

fn outcome_of(run: &Run) -> String {
    run.outcome
        .as_ref()
        .map_or("no outcome".to_string(), |o| o.label().to_string())
}

/// Judges `traces` against `baseline`.
pub fn check(baseline: &[PathBuf], traces: &[PathBuf], t: &Thresholds) -> CheckResult {
    if baseline.is_empty() || traces.is_empty() {
        return CheckResult::skip("cannot judge: need a baseline and a trace".into());
    }
    let intervals = needs_intervals(baseline.len(), traces.len(), &t.diff);
    let base = match load_side(baseline, t, intervals) {
        Ok(s) => s,
        Err(e) => return CheckResult::skip(e),
    };
    let new = match load_side(traces, t, intervals) {
        Ok(s) => s,
        Err(e) => return CheckResult::skip(e),
    };
    // Steps are matched by name: runs of scenarios with other steps have
    // nothing to compare (a variant of the baseline's scenario, say with
    // another cpu.max, does).
    let steps = |r: &Run| -> Vec<String> {
        let all = r.meta.scenario.steps.iter().enumerate();
        all.map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("#{i}")))
            .collect()
    };
    let base_steps = steps(&base.runs[0]);
    if let Some(r) = base
        .runs
        .iter()
        .chain(&new.runs)
        .find(|r| steps(r) != base_steps)
    {
        return CheckResult::skip(format!(
            "cannot judge: {} (scenario {:?}, steps {:?}) and the baseline {} (scenario {:?}, steps {base_steps:?}) do not run the same steps",
            r.path.display(),
            r.meta.scenario.name,
            steps(r),
            base.runs[0].path.display(),
            base.runs[0].meta.scenario.name,
        ));
    }
    if let Some(r) = base
        .runs
        .iter()
        .find(|r| r.outcome != Some(RunOutcome::Completed))
    {
        return CheckResult::skip(format!(
            "cannot judge: baseline {} did not complete ({})",
            r.path.display(),
            outcome_of(r)
        ));
    }
    let mut evidence = Vec::new();
    for (r, failed) in new.runs.iter().zip(&new.failures) {
        match (&r.outcome, failed) {
            (Some(RunOutcome::Completed), _) => {}
            (_, Some(why)) => evidence.push(format!("{}: {why}", r.path.display())),
            _ => {
                return CheckResult::skip(format!(
                    "cannot judge: {} did not complete ({})",
                    r.path.display(),
                    outcome_of(r)
                ));
            }
        }
    }
    let report = compare(&base.runs, &new.runs, &t.diff, Sided::WorseOnly);
    for r in report.rows.iter().filter(|r| r.call == Call::Worse) {
        evidence.push(format!(
            "{} / {} / {}: {} → {} ({}), 95% CI {}, p adj {}",
            r.key.step,
            r.key.cgroup,
            r.key.metric.name(),
            crate::text::number(r.a),
            crate::text::number(r.b),
            r.delta_pct.map_or("-".into(), |d| format!("{d:+.1}%")),
            match (r.ci_low_pct, r.ci_high_pct) {
                (Some(l), Some(h)) => format!("{l:+.1}%…{h:+.1}%"),
                _ => "-".into(),
            },
            r.p_adj.map_or("-".into(), |p| format!("{p:.4}")),
        ));
    }
    let mut notes = Vec::new();
    for name in verdict::NAMES {
        match verdict_finding(name, &base.verdicts, &new.verdicts) {
            Some((true, line)) => evidence.push(line),
            Some((false, line)) => notes.push(line),
            None => {}
        }
    }
    let judged = report.judged();
    let s = Summary::of(&report);
    let (code, summary) = if !evidence.is_empty() {
        (
            EXIT_BAD,
            format!("regression: {} finding(s)", evidence.len()),
        )
    } else if judged == 0 {
        (
            EXIT_SKIP,
            "cannot judge: no metric has enough samples on both sides".to_string(),
        )
    } else {
        let verdicts = if notes.is_empty() {
            "no verdict newly failing"
        } else {
            "no verdict failing repeatedly"
        };
        (
            EXIT_GOOD,
            format!(
                "no regression: {judged} metric(s) checked ({} same, {} inconclusive), {verdicts}",
                s.same, s.inconclusive
            ),
        )
    };
    let decided =
        code != EXIT_SKIP && (code == EXIT_BAD || (notes.is_empty() && s.inconclusive == 0));
    CheckResult {
        code,
        summary,
        evidence,
        notes,
        decided,
        report: Some(report),
    }
}

/// Prints a check result: summary, evidence, then the compared metrics.
pub fn render(out: &mut impl Write, r: &CheckResult, json: bool) -> Result<()> {
    if json {
        let rows = r.report.as_ref().map(|rep| &rep.rows);
        let j = serde_json::json!({
            "code": r.code,
            "summary": r.summary,
            "evidence": r.evidence,
            "notes": r.notes,
            "decided": r.decided,
            "metrics": rows,
        });
        serde_json::to_writer_pretty(&mut *out, &j)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{}", r.summary)?;
    for e in &r.evidence {
        writeln!(out, "  {e}")?;
    }
    for n in &r.notes {
        writeln!(out, "  note: {n}")?;
    }
    if let Some(rep) = &r.report {
        write_meta(out, &rep.meta)?;
        let noteworthy: Vec<_> = rep
            .rows
            .iter()
            .filter(|x| matches!(x.call, Call::Worse | Call::Inconclusive))
            .collect();
        if !noteworthy.is_empty() {
            let mut t = table(&[
                "step", "cgroup", "metric", "base", "new", "Δ%", "95% CI", "p adj", "call",
            ]);
            for x in noteworthy {
                t.add_row(cells(x));
            }
            writeln!(out, "\n{t}")?;
        }
    }
    Ok(())
}

/// `replay check`: prints the result and returns the exit code, turning any
/// panic inside into 125.
pub fn run(
    out: &mut impl Write,
    baseline: &[PathBuf],
    traces: &[PathBuf],
    t: &Thresholds,
    json: bool,
) -> u8 {
    let result = std::panic::catch_unwind(|| check(baseline, traces, t)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        CheckResult::skip(format!("cannot judge: internal error: {what}"))
    });
    // A closed pipe (`| head`) must not change the answer.
    let _ = render(out, &result, json);
    result.code
}

/// True when `path` looks like a trace by its extension.
pub fn is_trace(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "trace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_that_need_repeating_exist() {
        for name in NEEDS_REPEATING {
            assert!(verdict::NAMES.contains(&name), "{name}");
        }
    }

    /// One failure of a tolerance verdict is a note; of a fact verdict, or a
    /// second failure, a regression; a failure the baseline shares, nothing.
    #[test]
    fn failures_and_repeats() {
        let v = |name: &str, outcome| Verdict {
            name: name.into(),
            outcome,
            detail: "d".into(),
        };
        let pass = |n: &str| vec![v(n, VerdictOutcome::Pass)];
        let fail = |n: &str| vec![v(n, VerdictOutcome::Fail)];
        let once = verdict_finding(
            "weight-share",
            &[pass("weight-share")],
            &[fail("weight-share"), pass("weight-share")],
        );
        assert!(
            matches!(once, Some((false, ref s)) if s.contains("failed once; not repeated")),
            "{once:?}"
        );
        let twice = verdict_finding(
            "weight-share",
            &[pass("weight-share")],
            &[fail("weight-share"), fail("weight-share")],
        );
        assert!(
            matches!(twice, Some((true, ref s)) if s.contains("in 2 of 2 runs")),
            "{twice:?}"
        );
        let fact = verdict_finding(
            "not-starved",
            &[pass("not-starved")],
            &[fail("not-starved")],
        );
        assert!(matches!(fact, Some((true, _))), "{fact:?}");
        let shared = verdict_finding(
            "not-starved",
            &[fail("not-starved")],
            &[fail("not-starved")],
        );
        assert_eq!(shared, None);
    }
}
