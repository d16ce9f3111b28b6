//! Checks of the scenario's judging thresholds.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;

use super::{Problem, Validator};
use crate::scenario::thresholds::{DiffLimits, VERDICT_NAMES, VerdictLimits};
use crate::scenario::units::Ppm;

const AT: &str = "scenario";

impl Validator<'_> {
    pub(super) fn thresholds(&mut self) {
        if let Some(spec) = &self.sc.thresholds {
            self.verdict_limits(&spec.verdicts);
            self.diff_limits(&spec.diff);
        }
    }

    fn verdict_limits(&mut self, v: &VerdictLimits) {
        let f = |name: &str| format!("thresholds.verdicts.{name}");
        if let Some(r) = v.fairness_max_ratio
            && r < Ppm(1_000_000)
        {
            self.invalid(
                AT,
                &f("fairness_max_ratio"),
                format!("= {r} is below 1; max/min of run times is at least 1, use e.g. 1.5"),
            );
        }
        let zeros: [(&str, bool, &'static str); 6] = [
            (
                "fairness_min_samples",
                v.fairness_min_samples == Some(0),
                "a worker needs at least 1 sample to be judged",
            ),
            (
                "weight_share_tolerance_pct",
                v.weight_share_tolerance_pct == Some(Ppm(0)),
                "no measured share is exact; use e.g. 15",
            ),
            (
                "max_gap",
                v.max_gap_ns == Some(0),
                "every gap would fail; use e.g. \"500ms\"",
            ),
            (
                "wake_p99_max",
                v.wake_p99_max_ns == Some(0),
                "every wake-up would fail; use e.g. \"20ms\"",
            ),
            (
                "wake_min_count",
                v.wake_min_count == Some(0),
                "a p99 needs wake-ups; use e.g. 100",
            ),
            (
                "stall_min_interval",
                v.stall_min_interval_ns == Some(0),
                "snapshots this close say nothing about progress; use e.g. \"50ms\"",
            ),
        ];
        for (name, zero, hint) in zeros {
            if zero {
                self.err(AT, &f(name), Problem::Zero { hint });
            }
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (i, name) in v.skip.iter().enumerate() {
            let field = f(&format!("skip[{i}]"));
            if !VERDICT_NAMES.contains(&name.as_str()) {
                self.err(
                    AT,
                    &field,
                    Problem::Unknown {
                        name: name.clone(),
                        what: "verdict",
                        hint: format!("; use one of {}", VERDICT_NAMES.join(", ")),
                    },
                );
            } else if let Some(first) = seen.insert(name, field.clone()) {
                self.err(
                    AT,
                    &field,
                    Problem::Duplicate {
                        name: name.clone(),
                        first,
                    },
                );
            }
        }
    }

    fn diff_limits(&mut self, d: &DiffLimits) {
        let f = |name: &str| format!("thresholds.diff.{name}");
        match d.alpha {
            Some(Ppm(0)) => self.err(
                AT,
                &f("alpha"),
                Problem::Zero {
                    hint: "nothing would ever be significant; use e.g. 0.05",
                },
            ),
            Some(a) if a >= Ppm(1_000_000) => self.invalid(
                AT,
                &f("alpha"),
                format!("= {a} is not below 1; use a significance level in (0, 1), e.g. 0.05"),
            ),
            _ => {}
        }
        let hint = "a side needs at least 1; use e.g. 5";
        if d.min_runs == Some(0) {
            self.err(AT, &f("min_runs"), Problem::Zero { hint });
        }
        if d.min_intervals == Some(0) {
            self.err(AT, &f("min_intervals"), Problem::Zero { hint });
        }
    }
}
