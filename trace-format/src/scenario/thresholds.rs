//! Judging thresholds a scenario carries: `[thresholds.verdicts]` and
//! `[thresholds.diff]` in TOML, with the keys of replay's thresholds file.
//!
//! Every field is optional: an unset one keeps replay's built-in default, and a
//! `--thresholds FILE` on the command line overrides both. In the binary form
//! numbers are fixed point ([`Ppm`]) and durations integer ns.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::opt_duration;

/// Every verdict replay evaluates, in evaluation order; `skip` takes these.
pub const VERDICT_NAMES: [&str; 7] = [
    "not-starved",
    "cpuset-isolation",
    "fairness-spread",
    "weight-share",
    "max-sched-gap",
    "wake-latency-p99",
    "runqueue-stall",
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

/// A non-negative decimal in parts per million (`2.5` is `Ppm(2_500_000)`):
/// an integer in the binary form, a number in TOML. No NaN can exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u32);

impl Ppm {
    /// Largest value: 4294.967295.
    pub const MAX: Ppm = Ppm(u32::MAX);

    /// `f` rounded to the nearest ppm; `None` when negative, not finite or above [`Ppm::MAX`].
    pub fn from_f64(f: f64) -> Option<Ppm> {
        if !f.is_finite() || f < 0.0 || f > Self::MAX.as_f64() {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // f is in 0.0..=4294.967295, so the rounded product fits in u32.
        let ppm = (f * 1e6 + 0.5).min(f64::from(u32::MAX)) as u32;
        Some(Ppm(ppm))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1e6
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if frac == 0 {
            return write!(f, "{int}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{int}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Ppm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_f64(self.as_f64())
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Ppm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return u32::deserialize(d).map(Ppm);
        }
        struct V;
        impl Visitor<'_> for V {
            type Value = Ppm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number, e.g. 1.5")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ppm, E> {
                Ppm::from_f64(v).ok_or_else(|| {
                    E::custom(format!(
                        "{v} is out of range 0..={}; use e.g. 1.5",
                        Ppm::MAX
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ppm, E> {
                #[allow(clippy::cast_precision_loss)] // only range-checked
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ppm, E> {
                #[allow(clippy::cast_precision_loss)] // only range-checked
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}
