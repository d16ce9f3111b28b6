//! Judging thresholds a scenario carries: `[thresholds.verdicts]` and
//! `[thresholds.diff]` in TOML, with the keys of replay's thresholds file.
//!
//! Every field is optional: an unset one keeps replay's built-in default, and a
//! `--thresholds FILE` on the command line overrides both. In the binary form
//! numbers are fixed point ([`Ppm`]) and durations integer ns.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::units::{Ppm, opt_duration};

/// Every verdict replay evaluates, in evaluation order; `skip` takes these.
pub const VERDICT_NAMES: [&str; 9] = [
    "not-starved",
    "cpuset-isolation",
    "fairness-spread",
    "weight-share",
    "max-sched-gap",
    "wake-latency-p99",
    "runqueue-stall",
    "no-oom-kill",
    "no-op-errors",
];

/// Thresholds for judging runs of this scenario; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThresholdsSpec {
    pub verdicts: VerdictLimits,
    pub diff: DiffLimits,
}

/// Limits of the per-run verdicts (`replay judge`, the live verdict).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictLimits {
    /// Largest max/min ratio of per-worker run time within a work group (≥ 1).
    pub fairness_max_ratio: Option<Ppm>,
    /// Samples each worker needs before fairness is judged.
    pub fairness_min_samples: Option<u32>,
    /// Largest relative error of a cgroup's CPU share against its weight share, percent.
    pub weight_share_tolerance_pct: Option<Ppm>,
    /// Longest a runnable worker may go without running, ns.
    #[serde(rename = "max_gap", with = "opt_duration")]
    pub max_gap_ns: Option<u64>,
    /// Ceiling for each cgroup's wake-up latency p99, ns.
    #[serde(rename = "wake_p99_max", with = "opt_duration")]
    pub wake_p99_max_ns: Option<u64>,
    /// Wake-ups a cgroup needs before its p99 is judged.
    pub wake_min_count: Option<u64>,
    /// Shortest time between two snapshots over which a run queue must advance, ns.
    #[serde(rename = "stall_min_interval", with = "opt_duration")]
    pub stall_min_interval_ns: Option<u64>,
    /// Verdicts not to evaluate, by name (see [`VERDICT_NAMES`]).
    pub skip: Vec<String>,
}

/// Knobs of the statistical comparison (`replay diff`, `check`, `bisect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffLimits {
    /// Significance level after correction, in (0, 1).
    pub alpha: Option<Ppm>,
    /// Noise band (± percent) when runs are the unit.
    pub noise_pct: Option<Ppm>,
    /// Noise band (± percent) when sample intervals of single runs are the unit.
    pub interval_noise_pct: Option<Ppm>,
    /// Runs per side needed to use runs as the unit.
    pub min_runs: Option<u32>,
    /// Intervals per side needed to judge a metric from single runs.
    pub min_intervals: Option<u32>,
}

impl ThresholdsSpec {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == ThresholdsSpec::default()
    }
}
