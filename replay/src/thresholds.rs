//! Judging thresholds: built-in defaults, then the thresholds a scenario
//! carries (archived in its traces), then a TOML file (`--thresholds FILE`).
//! Each layer replaces only the keys it sets; every key is optional.
//!
//! ```toml
//! [verdicts]
//! fairness_max_ratio = 1.5
//! max_gap = "250ms"
//! wake_p99_max = "5ms"
//! skip = ["runqueue-stall"]
//!
//! [diff]
//! noise_pct = 2.0
//! floors = { wait-pct = 5.0 }
//! primary = ["cpus used", "wait %"]
//! ```
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trace_format::scenario::{
    NS_PER_MS, ThresholdsSpec, VERDICT_NAMES, format_duration, parse_duration,
};

use crate::metric::{Metric, Polarity, default_floor};

/// All thresholds used by `judge`, `diff`, `check` and `bisect`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub verdicts: VerdictThresholds,
    pub diff: DiffThresholds,
}

/// Limits for the per-run verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictThresholds {
    /// Largest max/min ratio of per-worker run time within a cgroup's work group.
    pub fairness_max_ratio: f64,
    /// Samples each worker needs before fairness is judged.
    pub fairness_min_samples: u32,
    /// Largest relative error of a cgroup's CPU share against its weight share, percent.
    pub weight_share_tolerance_pct: f64,
    /// Longest a runnable worker may go without running.
    #[serde(with = "dur")]
    pub max_gap: u64,
    /// Ceiling for each cgroup's wake-up latency p99.
    #[serde(with = "dur")]
    pub wake_p99_max: u64,
    /// Wake-ups a cgroup needs before its p99 is judged.
    pub wake_min_count: u64,
    /// Shortest time between two snapshots over which a run queue must advance.
    #[serde(with = "dur")]
    pub stall_min_interval: u64,
    /// Verdict names not to evaluate.
    pub skip: Vec<String>,
}

impl Default for VerdictThresholds {
    fn default() -> Self {
        VerdictThresholds {
            fairness_max_ratio: 2.0,
            fairness_min_samples: 3,
            weight_share_tolerance_pct: 15.0,
            max_gap: 500 * NS_PER_MS,
            wake_p99_max: 20 * NS_PER_MS,
            wake_min_count: 100,
            stall_min_interval: 50 * NS_PER_MS,
            skip: Vec::new(),
        }
    }
}

/// Knobs of the statistical comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffThresholds {
    /// Significance level after Benjamini–Hochberg correction across metrics.
    pub alpha: f64,
    /// Noise band (±percent) when runs are the unit.
    pub noise_pct: f64,
    /// Noise band (±percent) when sample intervals of single runs are the unit:
    /// wider, because one run per side cannot show run-to-run noise.
    pub interval_noise_pct: f64,
    /// Runs per side needed to use runs as the unit. Mann–Whitney cannot reach
    /// p < 0.05 two-sided below 4 per side; 5 leaves room for the correction.
    pub min_runs: usize,
    /// Intervals per side needed to judge a metric from single runs.
    pub min_intervals: usize,
    /// Intervals are averaged into at most this many batch means per run:
    /// neighbouring intervals are correlated (host hiccups last several), so
    /// fewer, longer batches keep the test honest.
    pub max_batches: usize,
    /// Bootstrap resamples for the confidence interval.
    pub resamples: usize,
    /// Per-metric absolute floors overriding the defaults, by metric id.
    pub floors: BTreeMap<Metric, f64>,
    /// The metrics that are judged (column names or ids): only these enter
    /// the multiple-testing correction and can be called better or worse;
    /// the others are shown as informational. Default: the speed-robust
    /// metrics with a polarity ([`default_primary`]).
    pub primary: Vec<String>,
}

/// The default primary metrics: those that do not move with the host's
/// speed and have a direction (`cpus used`, `wait %`, `norm iter/s`).
pub fn default_primary() -> Vec<Metric> {
    Metric::ALL
        .into_iter()
        .filter(|m| m.speed_robust() && m.polarity() != Polarity::Neutral)
        .collect()
}

impl Default for DiffThresholds {
    fn default() -> Self {
        DiffThresholds {
            alpha: 0.05,
            noise_pct: 1.0,
            interval_noise_pct: 20.0,
            min_runs: 5,
            min_intervals: 5,
            max_batches: 6,
            resamples: 2000,
            floors: BTreeMap::new(),
            primary: default_primary()
                .into_iter()
                .map(|m| m.name().to_string())
                .collect(),
        }
    }
}

impl DiffThresholds {
    /// The absolute floor for `metric`.
    pub fn floor(&self, metric: Metric) -> f64 {
        self.floors
            .get(&metric)
            .copied()
            .unwrap_or_else(|| default_floor(metric))
    }

    /// The primary metrics; names [`Thresholds::check`] refused are left out.
    pub fn primary_metrics(&self) -> Vec<Metric> {
        self.primary
            .iter()
            .filter_map(|n| Metric::from_name(n))
            .collect()
    }

    /// True when `metric` is judged.
    pub fn is_primary(&self, metric: Metric) -> bool {
        self.primary_metrics().contains(&metric)
    }

    /// Checks `primary`: every name a metric with a polarity, at least one.
    fn check_primary(&self) -> Result<()> {
        anyhow::ensure!(
            !self.primary.is_empty(),
            "diff.primary is empty: name at least one metric to judge"
        );
        for name in &self.primary {
            let Some(m) = Metric::from_name(name) else {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                anyhow::bail!(
                    "diff.primary: {name:?} names no metric; use one of {}",
                    names.join(", ")
                );
            };
            anyhow::ensure!(
                m.polarity() != Polarity::Neutral,
                "diff.primary: {name:?} has no direction (neither higher nor lower is better), so it cannot be judged"
            );
        }
        Ok(())
    }
}

impl Thresholds {
    /// Reads a thresholds file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::input::read_side_file(path).context("cannot read thresholds")?;
        Self::parse(&text).with_context(|| format!("thresholds {}", path.display()))
    }

    /// Parses thresholds from TOML text (over the built-in defaults).
    pub fn parse(text: &str) -> Result<Self> {
        let t: Thresholds = toml::from_str(text)?;
        t.check()?;
        Ok(t)
    }

    /// Checks the values a file can get wrong.
    /// Fails naming the first value out of its range.
    pub fn check(&self) -> Result<()> {
        for name in &self.verdicts.skip {
            anyhow::ensure!(
                VERDICT_NAMES.contains(&name.as_str()),
                "verdicts.skip: {name:?} names no verdict; use one of {}",
                VERDICT_NAMES.join(", ")
            );
        }
        let d = &self.diff;
        anyhow::ensure!(
            d.alpha > 0.0 && d.alpha < 1.0,
            "diff.alpha = {} must be in (0, 1)",
            d.alpha
        );
        anyhow::ensure!(
            d.noise_pct >= 0.0 && d.interval_noise_pct >= 0.0,
            "noise bands must not be negative"
        );
        anyhow::ensure!(
            d.min_runs >= 1 && d.min_intervals >= 1,
            "minimum sample counts must be at least 1"
        );
        anyhow::ensure!(
            (100..=1_000_000).contains(&d.resamples),
            "diff.resamples = {} must be in 100..=1000000",
            d.resamples
        );
        anyhow::ensure!(
            (1..=10_000).contains(&d.max_batches),
            "diff.max_batches = {} must be in 1..=10000",
            d.max_batches
        );
        anyhow::ensure!(
            d.floors.values().all(|f| f.is_finite() && *f >= 0.0),
            "diff.floors must be finite and not negative"
        );
        d.check_primary()?;
        let v = &self.verdicts;
        anyhow::ensure!(
            v.fairness_max_ratio.is_finite() && v.fairness_max_ratio >= 1.0,
            "verdicts.fairness_max_ratio = {} must be a number >= 1",
            v.fairness_max_ratio
        );
        anyhow::ensure!(
            v.weight_share_tolerance_pct.is_finite() && v.weight_share_tolerance_pct >= 0.0,
            "verdicts.weight_share_tolerance_pct = {} must be a number >= 0",
            v.weight_share_tolerance_pct
        );
        Ok(())
    }

    /// Loads `path` when given, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self> {
        Self::resolve(None, path)
    }

    /// Defaults, then `scenario`'s thresholds, then the keys set in the
    /// thresholds file `file`: the precedence every judging command uses.
    pub fn resolve(scenario: Option<&ThresholdsSpec>, file: Option<&Path>) -> Result<Self> {
        let mut t = Thresholds::default();
        if let Some(spec) = scenario {
            t.apply(spec);
        }
        let Some(path) = file else {
            return Ok(t);
        };
        let text = crate::input::read_side_file(path).context("cannot read thresholds")?;
        t.overlay(&text)
            .with_context(|| format!("thresholds {}", path.display()))
    }

    /// These thresholds with every key a scenario sets replaced.
    pub fn apply(&mut self, spec: &ThresholdsSpec) {
        let (s, v) = (&spec.verdicts, &mut self.verdicts);
        let set = |to: &mut f64, from: Option<trace_format::scenario::Ppm>| {
            if let Some(x) = from {
                *to = x.as_f64();
            }
        };
        set(&mut v.fairness_max_ratio, s.fairness_max_ratio);
        set(
            &mut v.weight_share_tolerance_pct,
            s.weight_share_tolerance_pct,
        );
        v.fairness_min_samples = s.fairness_min_samples.unwrap_or(v.fairness_min_samples);
        v.max_gap = s.max_gap_ns.unwrap_or(v.max_gap);
        v.wake_p99_max = s.wake_p99_max_ns.unwrap_or(v.wake_p99_max);
        v.wake_min_count = s.wake_min_count.unwrap_or(v.wake_min_count);
        v.stall_min_interval = s.stall_min_interval_ns.unwrap_or(v.stall_min_interval);
        if !s.skip.is_empty() {
            v.skip.clone_from(&s.skip);
        }
        let (s, d) = (&spec.diff, &mut self.diff);
        set(&mut d.alpha, s.alpha);
        set(&mut d.noise_pct, s.noise_pct);
        set(&mut d.interval_noise_pct, s.interval_noise_pct);
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        d.min_runs = s.min_runs.map_or(d.min_runs, count);
        d.min_intervals = s.min_intervals.map_or(d.min_intervals, count);
    }

    /// These thresholds with the keys that thresholds-file `text` sets
    /// replaced (tables merge key by key; a list such as `skip` replaces).
    pub fn overlay(&self, text: &str) -> Result<Self> {
        // Parsed alone first: errors then carry the file's line and column.
        Self::parse(text)?;
        let file: toml::Table = toml::from_str(text)?;
        let mut merged = match toml::Value::try_from(self)? {
            toml::Value::Table(t) => t,
            _ => anyhow::bail!("thresholds do not serialize as a table"),
        };
        merge(&mut merged, file);
        let t: Thresholds = toml::Value::Table(merged).try_into()?;
        t.check()?;
        Ok(t)
    }
}

/// Copies every key of `over` into `base`, recursing into tables both have.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Durations written as strings such as `"250ms"`.
mod dur {
    use super::*;

    pub fn serialize<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*ns))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let t = Thresholds::parse(
            "[verdicts]\nmax_gap = \"250ms\"\nskip = [\"runqueue-stall\"]\n\
             [diff]\nnoise_pct = 2.5\nfloors = { wait-pct = 5.0 }\n",
        )
        .unwrap();
        assert_eq!(t.verdicts.max_gap, 250 * NS_PER_MS);
        assert_eq!(t.verdicts.fairness_max_ratio, 2.0);
        assert_eq!(t.diff.noise_pct, 2.5);
        assert_eq!(t.diff.floor(Metric::WaitPct), 5.0);
        assert_eq!(t.diff.floor(Metric::MigrationsPerS), 5.0);
        assert_eq!(
            t.diff.primary_metrics(),
            [Metric::NormIterationsPerS, Metric::CpuUtil, Metric::WaitPct]
        );
        let p = Thresholds::parse("[diff]\nprimary = [\"cpus used\", \"wake-p99-us\"]\n").unwrap();
        assert_eq!(
            p.diff.primary_metrics(),
            [Metric::CpuUtil, Metric::WakeP99Us]
        );
        assert!(Thresholds::parse("[verdicts]\nbogus = 1\n").is_err());
        assert!(Thresholds::parse("[diff]\nalpha = 2.0\n").is_err());
        let round = toml::to_string(&Thresholds::default()).unwrap();
        assert_eq!(Thresholds::parse(&round).unwrap(), Thresholds::default());
        let e = Thresholds::parse("[verdicts]\nskip = [\"nope\"]\n").unwrap_err();
        assert!(e.to_string().contains("\"nope\" names no verdict"), "{e}");
    }

    #[test]
    fn values_out_of_range_are_refused() {
        for (text, names) in [
            ("[diff]\nresamples = 1000000000000\n", "diff.resamples"),
            ("[diff]\nmax_batches = 0\n", "diff.max_batches"),
            (
                "[verdicts]\nfairness_max_ratio = nan\n",
                "fairness_max_ratio",
            ),
            (
                "[verdicts]\nfairness_max_ratio = 0.5\n",
                "fairness_max_ratio",
            ),
            (
                "[verdicts]\nweight_share_tolerance_pct = -5.0\n",
                "weight_share",
            ),
            ("[diff]\nalpha = 1.0\n", "diff.alpha"),
            (
                "[diff]\nprimary = [\"iter/sec\"]\n",
                "diff.primary: \"iter/sec\" names no metric",
            ),
            (
                "[diff]\nprimary = [\"cpu share %\"]\n",
                "diff.primary: \"cpu share %\" has no direction",
            ),
            ("[diff]\nprimary = []\n", "diff.primary is empty"),
        ] {
            let err = Thresholds::parse(text).unwrap_err().to_string();
            assert!(err.contains(names), "{text}: {err}");
        }
    }

    #[test]
    fn scenario_then_file_precedence() {
        use trace_format::scenario::{DiffLimits, Ppm, VerdictLimits};
        let spec = ThresholdsSpec {
            verdicts: VerdictLimits {
                fairness_max_ratio: Some(Ppm(1_500_000)),
                max_gap_ns: Some(250 * NS_PER_MS),
                skip: vec!["runqueue-stall".into()],
                ..VerdictLimits::default()
            },
            diff: DiffLimits {
                alpha: Some(Ppm(10_000)),
                min_runs: Some(3),
                ..DiffLimits::default()
            },
        };
        let mut t = Thresholds::default();
        t.apply(&spec);
        assert_eq!(t.verdicts.fairness_max_ratio, 1.5);
        assert_eq!(t.verdicts.max_gap, 250 * NS_PER_MS);
        assert_eq!(t.verdicts.skip, ["runqueue-stall"]);
        assert_eq!(t.verdicts.wake_p99_max, 20 * NS_PER_MS);
        assert_eq!((t.diff.alpha, t.diff.min_runs), (0.01, 3));
        assert_eq!(t.diff.noise_pct, 1.0);

        let file = "[verdicts]\nmax_gap = \"1s\"\nskip = []\n[diff]\nfloors = { wait-pct = 4.0 }\n";
        let o = t.overlay(file).unwrap();
        assert_eq!(o.verdicts.max_gap, 1_000 * NS_PER_MS, "the file wins");
        assert_eq!(o.verdicts.fairness_max_ratio, 1.5, "unset in the file");
        assert!(o.verdicts.skip.is_empty(), "a list replaces");
        assert_eq!(o.diff.alpha, 0.01);
        assert_eq!(o.diff.floor(Metric::WaitPct), 4.0);
        assert_eq!(o.diff.floor(Metric::MigrationsPerS), 5.0);
        let e = t.overlay("[verdicts]\nbogus = 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("bogus"), "{e:#}");
        // An empty file changes nothing.
        assert_eq!(t.overlay("").unwrap(), t);
    }
}
