//! Statistical comparison of two sets of runs, metric by metric.
//!
//! The unit is a run when both sides have at least `min_runs` traces; with
//! fewer, it falls back to sample intervals within the runs (batch means),
//! which shows within-run noise only, so it uses a wider noise band. Only the
//! primary metrics (`diff.primary`) are judged: a metric is flagged better or
//! worse only when the Mann–Whitney test is significant after
//! Benjamini–Hochberg correction within its family (one primary metric over
//! every judged step and cgroup), the bootstrap CI of the change lies wholly
//! outside the noise band, and the difference exceeds the metric's absolute
//! floor. Anything short of that is "same" or, plainly, "inconclusive"; the
//! other metrics are shown as "info".
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use trace_format::file::Trace;
use trace_format::meta::Meta;
use trace_format::record::RunOutcome;

use crate::diff::{MetaChange, meta_changes};
use crate::load::LoadedTrace;
use crate::metric::{MetricKey, MetricValue, Polarity, extract, judged_steps, min_band_pct};
use crate::series::{batch_means, segments, unit_values};
use crate::stat::{
    Alternative, Interval, benjamini_hochberg, mann_whitney, median, ratio_of_medians_ci,
};
use crate::thresholds::DiffThresholds;

/// What one trace contributes to a comparison.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: PathBuf,
    pub meta: Meta,
    /// Nothing lost or contradicted (`Integrity::is_damaged` is false); a
    /// run without `End` is clean but has no outcome.
    pub clean: bool,
    /// From the index; `None` when the trace has none.
    pub outcome: Option<RunOutcome>,
    /// Whole-step values from the index.
    pub values: Vec<MetricValue>,
    /// Step labels worth judging.
    pub judged: BTreeSet<String>,
    /// Per-interval values; present when loaded with intervals.
    pub intervals: Option<BTreeMap<MetricKey, Vec<f64>>>,
}

impl Run {
    /// Loads a trace; `intervals` decodes every record for within-run units.
    pub fn load(path: &Path, intervals: bool) -> Result<Run> {
        let loaded = LoadedTrace::open(path)?;
        let trace = loaded.trace()?;
        Ok(Run::from_trace(path, &trace, intervals))
    }

    /// Builds a run from an opened trace.
    pub fn from_trace(path: &Path, trace: &Trace<'_>, intervals: bool) -> Run {
        let metrics = trace.metrics();
        Run {
            path: path.to_path_buf(),
            meta: trace.meta().clone(),
            clean: !trace.integrity().is_damaged(),
            outcome: trace.index().and_then(|ix| ix.outcome.clone()),
            values: extract(&metrics),
            judged: judged_steps(&metrics),
            intervals: intervals.then(|| unit_values(&segments(trace))),
        }
    }
}

/// What the statistics were computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Runs,
    Intervals,
}

/// Which differences to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sided {
    /// Better or worse (diff).
    Both,
    /// Only worse, one-sided (check: is this a regression?).
    WorseOnly,
}

/// The call on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Better,
    Worse,
    /// A neutral metric that changed significantly.
    Changed,
    Same,
    Inconclusive,
    /// Shown only: a partial or backdrop step, or a metric on one side only.
    NotJudged,
    /// Not a primary metric: shown with its statistics, never called.
    Info,
}

impl Call {
    /// The word shown in tables.
    pub fn word(self) -> &'static str {
        match self {
            Call::Better => "better",
            Call::Worse => "worse",
            Call::Changed => "changed",
            Call::Same => "same",
            Call::Inconclusive => "inconclusive",
            Call::NotJudged => "",
            Call::Info => "info",
        }
    }
}

/// One metric compared across both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub key: MetricKey,
    /// Median of the runs' whole-step values.
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// Relative change of `b` over `a`, percent.
    pub delta_pct: Option<f64>,
    pub polarity: Polarity,
    /// A primary metric: judged, and in the correction family of its metric.
    pub primary: bool,
    pub n_a: usize,
    pub n_b: usize,
    pub ci_low_pct: Option<f64>,
    pub ci_high_pct: Option<f64>,
    pub p: Option<f64>,
    pub p_adj: Option<f64>,
    pub call: Call,
    pub reason: String,
    /// Enough units on both sides for the test to be able to reach significance.
    pub testable: bool,
}

impl Row {
    /// True when the two sides' values are not exactly equal.
    pub fn changed(&self) -> bool {
        self.a != self.b
    }
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub a: Vec<PathBuf>,
    pub b: Vec<PathBuf>,
    pub meta: Vec<MetaChange>,
    pub unit: Unit,
    pub alpha: f64,
    pub noise_pct: f64,
    /// Names of the primary metrics: the judged ones.
    pub primary: Vec<String>,
    pub rows: Vec<Row>,
}

impl Report {
    /// Rows with this call.
    pub fn count(&self, call: Call) -> usize {
        self.rows.iter().filter(|r| r.call == call).count()
    }

    /// Primary rows whose test could reach significance.
    pub fn judged(&self) -> usize {
        self.rows.iter().filter(|r| r.testable && r.primary).count()
    }
}

/// True when `a` and `b` need per-interval values to be compared.
pub fn needs_intervals(n_a: usize, n_b: usize, t: &DiffThresholds) -> bool {
    n_a < t.min_runs || n_b < t.min_runs
}

/// Compares runs `a` with runs `b`.
pub fn compare(a: &[Run], b: &[Run], t: &DiffThresholds, sided: Sided) -> Report {
    let unit = if needs_intervals(a.len(), b.len(), t) {
        Unit::Intervals
    } else {
        Unit::Runs
    };
    let band = match unit {
        Unit::Runs => t.noise_pct,
        Unit::Intervals => t.interval_noise_pct,
    };
    let mut meta = match (a.first(), b.first()) {
        (Some(x), Some(y)) => meta_changes(&x.meta, &y.meta),
        _ => Vec::new(),
    };
    let damaged = |runs: &[Run]| -> Vec<String> {
        runs.iter()
            .filter(|r| !r.clean)
            .map(|r| r.path.display().to_string())
            .collect()
    };
    let (da, db) = (damaged(a), damaged(b));
    if !da.is_empty() || !db.is_empty() {
        let list = |d: Vec<String>| {
            if d.is_empty() {
                "-".to_string()
            } else {
                d.join(", ")
            }
        };
        meta.insert(
            0,
            MetaChange {
                field: "damaged: recovered chunks only",
                a: list(da),
                b: list(db),
            },
        );
    }
    // Only the first run of each side is compared field by field; a run of
    // another scenario anywhere is worth a line of its own.
    if let Some(first) = a.first() {
        let name = &first.meta.scenario.name;
        let others: BTreeSet<&str> = a
            .iter()
            .chain(b)
            .map(|r| r.meta.scenario.name.as_str())
            .filter(|n| n != name)
            .collect();
        if !others.is_empty() {
            meta.insert(
                0,
                MetaChange {
                    field: "scenarios of the runs",
                    a: name.clone(),
                    b: format!("also {}", others.into_iter().collect::<Vec<_>>().join(", ")),
                },
            );
        }
    }
    let mut keys: Vec<&MetricKey> = Vec::new();
    let mut seen = BTreeSet::new();
    for run in a.iter().chain(b) {
        for v in &run.values {
            if seen.insert(&v.key) {
                keys.push(&v.key);
            }
        }
    }
    let mut rows: Vec<Row> = keys
        .into_iter()
        .map(|key| row(key, a, b, unit, t, sided))
        .collect();
    // One family per primary metric: its rows over every step and cgroup.
    for metric in t.primary_metrics() {
        let family: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.p.filter(|_| r.primary && r.key.metric == metric))
            .collect();
        for (r, adj) in rows.iter_mut().zip(benjamini_hochberg(&family)) {
            if adj.is_some() {
                r.p_adj = adj;
            }
        }
    }
    for r in &mut rows {
        decide(r, t, band);
    }
    Report {
        a: a.iter().map(|r| r.path.clone()).collect(),
        b: b.iter().map(|r| r.path.clone()).collect(),
        meta,
        unit,
        alpha: t.alpha,
        noise_pct: band,
        primary: t
            .primary_metrics()
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
        rows,
    }
}

fn side_values(runs: &[Run], key: &MetricKey, unit: Unit, t: &DiffThresholds) -> Vec<f64> {
    match unit {
        Unit::Runs => runs
            .iter()
            .filter(|r| r.judged.contains(&key.step))
            .filter_map(|r| r.values.iter().find(|v| v.key == *key).map(|v| v.value))
            .collect(),
        Unit::Intervals => runs
            .iter()
            .filter_map(|r| r.intervals.as_ref()?.get(key))
            .flat_map(|v| batch_means(v, t.max_batches))
            .collect(),
    }
}

fn whole_step(runs: &[Run], key: &MetricKey) -> Option<f64> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.values.iter().find(|v| v.key == *key).map(|v| v.value))
        .collect();
    median(&v)
}

fn seed_of(key: &MetricKey) -> u64 {
    let text = format!("{}/{}/{:?}", key.step, key.cgroup, key.metric);
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn row(key: &MetricKey, a: &[Run], b: &[Run], unit: Unit, t: &DiffThresholds, sided: Sided) -> Row {
    let (va, vb) = (whole_step(a, key), whole_step(b, key));
    let delta_pct = match (va, vb) {
        (Some(x), Some(y)) if x == y => Some(0.0),
        (Some(x), Some(y)) if x != 0.0 => Some(100.0 * (y - x) / x.abs()),
        _ => None,
    };
    let polarity = key.metric.polarity();
    let primary = t.is_primary(key.metric);
    let judged = a.iter().chain(b).all(|r| r.judged.contains(&key.step));
    let (ua, ub) = if judged {
        (side_values(a, key, unit, t), side_values(b, key, unit, t))
    } else {
        (Vec::new(), Vec::new())
    };
    let need = match unit {
        Unit::Runs => t.min_runs,
        Unit::Intervals => t.min_intervals,
    };
    let enough = ua.len() >= need && ub.len() >= need;
    let alt = match (sided, polarity) {
        (Sided::WorseOnly, Polarity::HigherIsBetter) => Alternative::Less,
        (Sided::WorseOnly, Polarity::LowerIsBetter) => Alternative::Greater,
        _ => Alternative::TwoSided,
    };
    let p = enough
        .then(|| mann_whitney(&ua, &ub, alt))
        .flatten()
        .map(|m| m.p);
    let ci: Option<Interval> = enough
        .then(|| ratio_of_medians_ci(&ua, &ub, t.alpha, t.resamples, seed_of(key)))
        .flatten();
    let reachable = enough && smallest_p(ua.len(), ub.len(), alt) < t.alpha;
    let reason = if !judged {
        "not judged: backdrop, partial or failed step".to_string()
    } else if va.is_none() || vb.is_none() {
        format!("only in {}", if va.is_some() { "A" } else { "B" })
    } else if !enough {
        let what = match unit {
            Unit::Runs => "runs",
            Unit::Intervals => "intervals",
        };
        format!(
            "n = {} vs {} {what}; need {need} per side",
            ua.len(),
            ub.len()
        )
    } else if !reachable {
        format!(
            "n = {} vs {} cannot reach significance: the smallest possible p is {:.3}",
            ua.len(),
            ub.len(),
            smallest_p(ua.len(), ub.len(), alt)
        )
    } else {
        String::new()
    };
    Row {
        key: key.clone(),
        a: va,
        b: vb,
        delta_pct,
        polarity,
        primary,
        n_a: ua.len(),
        n_b: ub.len(),
        ci_low_pct: ci.map(|c| c.low),
        ci_high_pct: ci.map(|c| c.high),
        p,
        p_adj: None,
        call: if judged && va.is_some() && vb.is_some() {
            Call::Inconclusive
        } else {
            Call::NotJudged
        },
        reason,
        testable: reachable && va.is_some() && vb.is_some(),
    }
}

/// The smallest p-value a rank test on samples of `n` and `m` can give:
/// one arrangement in C(n + m, n), doubled when two-sided.
pub fn smallest_p(n: usize, m: usize, alt: Alternative) -> f64 {
    let k = n.min(m);
    let mut c = 1.0f64;
    for i in 0..k {
        c = c * (n + m - i) as f64 / (i + 1) as f64;
    }
    let one = 1.0 / c;
    match alt {
        Alternative::TwoSided => (2.0 * one).min(1.0),
        _ => one,
    }
}

/// Sets the call of a row whose p-values are known; a metric that is not
/// primary gets "info", its reason saying what the call would have been.
fn decide(r: &mut Row, t: &DiffThresholds, band_pct: f64) {
    call(r, t, band_pct);
    if !r.primary && r.call != Call::NotJudged {
        let would = r.call.word();
        r.reason = if r.reason.is_empty() {
            format!("informational (not a primary metric): {would}")
        } else {
            format!(
                "informational (not a primary metric): {would}; {}",
                r.reason
            )
        };
        r.call = Call::Info;
    }
}

/// The call of a row as if it were primary (raw p when it is not).
fn call(r: &mut Row, t: &DiffThresholds, band_pct: f64) {
    if r.call == Call::NotJudged || !r.reason.is_empty() {
        return;
    }
    let (Some(a), Some(b)) = (r.a, r.b) else {
        return;
    };
    let floor = t.floor(r.key.metric);
    let band = band_pct.max(min_band_pct(r.key.metric));
    if (b - a).abs() <= floor && floor > 0.0 || a == b {
        r.call = Call::Same;
        r.reason = format!("difference within the floor of {floor}");
        return;
    }
    let ci = r
        .ci_low_pct
        .zip(r.ci_high_pct)
        .map(|(low, high)| Interval { low, high });
    if ci.is_some_and(|c| c.within(band)) {
        r.call = Call::Same;
        r.reason = format!("CI inside the ±{band}% noise band");
        return;
    }
    let p = if r.primary { r.p_adj } else { r.p };
    let Some(p) = p else { return };
    if p >= t.alpha {
        r.call = Call::Inconclusive;
        r.reason = format!(
            "not significant (p = {p:.3}) yet the CI is not inside ±{band}%: more runs needed"
        );
        return;
    }
    let up = match ci {
        Some(c) if c.low > band => Some(true),
        Some(c) if c.high < -band => Some(false),
        Some(_) => None,
        // No ratio around a zero baseline: the change is from nothing, and p decides.
        None if a == 0.0 => Some(b > a),
        None => {
            r.call = Call::Inconclusive;
            r.reason =
                format!("significant (p = {p:.3}) but no confidence interval could be formed");
            return;
        }
    };
    let Some(up) = up else {
        r.call = Call::Inconclusive;
        r.reason = format!("significant (p = {p:.3}) but the CI reaches into the ±{band}% band");
        return;
    };
    r.call = match (r.polarity, up) {
        (Polarity::HigherIsBetter, true) | (Polarity::LowerIsBetter, false) => Call::Better,
        (Polarity::HigherIsBetter, false) | (Polarity::LowerIsBetter, true) => Call::Worse,
        (Polarity::Neutral, _) => Call::Changed,
    };
    r.reason = format!("p = {p:.3}, CI outside ±{band}%");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Metric, MetricKey};

    fn row(a: f64, b: f64, ci: Option<(f64, f64)>) -> Row {
        Row {
            key: MetricKey {
                step: "step 0".into(),
                cgroup: "a".into(),
                metric: Metric::IterationsPerS,
            },
            a: Some(a),
            b: Some(b),
            delta_pct: None,
            polarity: Polarity::HigherIsBetter,
            primary: true,
            n_a: 5,
            n_b: 5,
            ci_low_pct: ci.map(|c| c.0),
            ci_high_pct: ci.map(|c| c.1),
            p: Some(0.001),
            p_adj: Some(0.001),
            call: Call::Inconclusive,
            reason: String::new(),
            testable: true,
        }
    }

    fn call(mut r: Row) -> Call {
        decide(&mut r, &DiffThresholds::default(), 1.0);
        r.call
    }

    #[test]
    fn without_an_interval_only_a_change_from_zero_is_called() {
        assert_eq!(call(row(0.0, 50.0, None)), Call::Better);
        assert_eq!(call(row(100.0, 150.0, None)), Call::Inconclusive);
        assert_eq!(call(row(100.0, 150.0, Some((40.0, 60.0)))), Call::Better);
        assert_eq!(call(row(100.0, 50.0, Some((-60.0, -40.0)))), Call::Worse);
    }
}
