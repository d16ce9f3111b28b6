//! Checks of the scenario's size, counts and time ranges (see `scenario::limits`).

use alloc::format;

use super::{Problem, Validator, range_err};
use crate::scenario::limits::{
    Counts, MAX_DESCRIPTION_BYTES, MAX_DURATION_NS, MAX_NAME_BYTES, MAX_PHASES, MAX_SCENARIO_BYTES,
    MAX_SETTLE_NS, MIN_LOOP_INTERVAL_NS, MIN_PHASE_NS, MIN_SAMPLE_INTERVAL_NS,
    MIN_SNAPSHOT_INTERVAL_NS,
};
use crate::scenario::units::format_duration;

const AT: &str = "scenario";

/// `min..=max` of durations as an out-of-range problem, written as durations.
fn duration_range(value: u64, min: u64, max: u64) -> Problem {
    Problem::OutOfRange {
        value: format_duration(value),
        min: format_duration(min),
        max: format_duration(max),
    }
}

impl Validator<'_> {
    /// Size and count limits: the encoded scenario, strings, and counts.
    pub(super) fn sizes(&mut self) {
        let sc = self.sc;
        for (field, len, max) in [
            ("name", sc.name.len(), MAX_NAME_BYTES),
            ("description", sc.description.len(), MAX_DESCRIPTION_BYTES),
        ] {
            if len > max {
                self.err(AT, field, Problem::TooLong { len, max });
            }
        }
        if let Some((field, n, max)) = Counts::of(sc).excess() {
            self.invalid(
                AT,
                field,
                format!("number {n} is above the limit of {max}; the guest holds at most {max}"),
            );
        }
        let bytes = sc.encoded_len();
        if bytes > MAX_SCENARIO_BYTES {
            self.invalid(
                AT,
                "size",
                format!(
                    "is {bytes} bytes encoded; the guest takes at most {MAX_SCENARIO_BYTES} (shorten strings or use fewer cgroups, ops and steps)"
                ),
            );
        }
    }

    /// Ranges of the scenario-level times.
    pub(super) fn times(&mut self) {
        let sc = self.sc;
        if sc.duration_ns == 0 {
            self.err(
                AT,
                "duration",
                Problem::Zero {
                    hint: "give the run a total time, e.g. \"10s\"",
                },
            );
        } else if sc.duration_ns > MAX_DURATION_NS {
            self.err(
                AT,
                "duration",
                duration_range(sc.duration_ns, 1, MAX_DURATION_NS),
            );
        }
        if sc.settle_ns > MAX_SETTLE_NS {
            self.err(AT, "settle", duration_range(sc.settle_ns, 0, MAX_SETTLE_NS));
        }
        if sc.sample_interval_ns == 0 {
            self.err(
                AT,
                "sample_interval",
                Problem::Zero {
                    hint: "sample at least every few hundred ms, e.g. \"100ms\"",
                },
            );
        } else if sc.sample_interval_ns < MIN_SAMPLE_INTERVAL_NS {
            self.invalid(
                AT,
                "sample_interval",
                format!(
                    "= {} is below the minimum of {}: shorter intervals are shorter than a few timer ticks and the guest's /proc reads, so rates and shares would be noise",
                    format_duration(sc.sample_interval_ns),
                    format_duration(MIN_SAMPLE_INTERVAL_NS)
                ),
            );
        } else if sc.duration_ns != 0 && sc.sample_interval_ns > sc.duration_ns {
            self.invalid(
                AT,
                "sample_interval",
                format!(
                    "= {} is longer than duration = {}; no sample would be taken",
                    format_duration(sc.sample_interval_ns),
                    format_duration(sc.duration_ns)
                ),
            );
        }
        let snap = sc.snapshot_interval_ns;
        if snap != 0 && snap < MIN_SNAPSHOT_INTERVAL_NS {
            self.invalid(
                AT,
                "snapshot_interval",
                format!(
                    "= {} is below the minimum of {}: every snapshot stops all vCPUs, so shorter intervals would keep the guest frozen; use 0 to turn snapshots off",
                    format_duration(snap),
                    format_duration(MIN_SNAPSHOT_INTERVAL_NS)
                ),
            );
        } else if snap > MAX_DURATION_NS {
            self.err(
                AT,
                "snapshot_interval",
                duration_range(snap, MIN_SNAPSHOT_INTERVAL_NS, MAX_DURATION_NS),
            );
        }
    }

    /// `hold.loop` interval range; zero is reported by `hold`.
    pub(super) fn loop_interval(&mut self, at: &str, interval_ns: u64) {
        if interval_ns != 0 && !(MIN_LOOP_INTERVAL_NS..=MAX_DURATION_NS).contains(&interval_ns) {
            self.err(
                at,
                "hold.loop",
                duration_range(interval_ns, MIN_LOOP_INTERVAL_NS, MAX_DURATION_NS),
            );
        }
    }

    /// A sequence's phase count and one phase's duration range (zero is reported apart).
    pub(super) fn phase_limits(&mut self, at: &str, field: &str, phases: usize) {
        if phases > MAX_PHASES {
            self.invalid(
                at,
                field,
                format!("has {phases} phases; at most {MAX_PHASES} are allowed"),
            );
        }
    }

    pub(super) fn phase_duration(&mut self, at: &str, field: &str, ns: u64) {
        if ns != 0 && !(MIN_PHASE_NS..=MAX_DURATION_NS).contains(&ns) {
            self.err(at, field, duration_range(ns, MIN_PHASE_NS, MAX_DURATION_NS));
        }
    }

    /// A `u32` work parameter with an upper bound (zero is reported apart).
    pub(super) fn at_most(&mut self, at: &str, field: &str, value: u32, max: u32) {
        if value > max {
            self.err(at, field, range_err(value, 1, max));
        }
    }
}
