//! Judging thresholds: defaults in code, overridable by a TOML file
//! (`--thresholds FILE`). Every field is optional in the file.
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
//! ```
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trace_format::scenario::{NS_PER_MS, format_duration, parse_duration};

use crate::metric::{Metric, default_floor};

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
}

impl Thresholds {
    /// Reads a thresholds file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read thresholds {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("thresholds {}", path.display()))
    }

    /// Parses thresholds from TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        let t: Thresholds = toml::from_str(text)?;
        let d = &t.diff;
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
        Ok(t)
    }

    /// Loads `path` when given, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
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
        assert!(Thresholds::parse("[verdicts]\nbogus = 1\n").is_err());
        assert!(Thresholds::parse("[diff]\nalpha = 2.0\n").is_err());
        let round = toml::to_string(&Thresholds::default()).unwrap();
        assert_eq!(Thresholds::parse(&round).unwrap(), Thresholds::default());
    }
}
