//! Named metrics per step and cgroup, extracted from a trace's summaries.
//!
//! This is the one place that turns [`RunMetrics`] into comparable numbers;
//! `stats`, `diff` and later statistical judgement all read it.

use serde::{Deserialize, Serialize};
use trace_format::metrics::{GroupMetrics, RunMetrics, StepMetrics};
use trace_format::record::StepRef;

/// Whether a larger value of a metric is better, worse, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Polarity {
    HigherIsBetter,
    LowerIsBetter,
    Neutral,
}

/// A metric of one cgroup in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Distinct workers that reported samples.
    Workers,
    /// Work-type iterations per second of step time. Moves with the host's
    /// speed (under TCG ±27 % between identical runs): shown, not judged by default.
    IterationsPerS,
    /// The cgroup's iter/s divided by the step's iterations per CPU-second
    /// over all workers of the same run, in CPUs: how many CPUs' worth of work
    /// it did at the run's own pace. A host that runs everything k times
    /// faster multiplies both the cgroup's iterations and the step's
    /// iterations per CPU-second by k, so k cancels within the run; with one
    /// work type everywhere this is `cpus used` times the cgroup's efficiency
    /// relative to the others. Across work types the reference mixes their
    /// iterations (still k-free, but one cgroup's change moves the pace).
    NormIterationsPerS,
    /// The cgroup's share of all worker CPU time in the step, percent.
    CpuSharePct,
    /// Average CPUs used by the cgroup.
    CpuUtil,
    /// Time runnable-but-waiting as a percentage of time runnable.
    WaitPct,
    /// CPU migrations per second.
    MigrationsPerS,
    /// Involuntary context switches per second.
    PreemptionsPerS,
    /// Wake-up latency median (log2 bucket upper bound), µs.
    WakeP50Us,
    /// Wake-up latency 99th percentile (log2 bucket upper bound), µs.
    WakeP99Us,
    /// Voluntary context switches (the worker blocked) per second.
    VoluntaryPerS,
    /// Timeslices run (schedstat) per second.
    TimeslicesPerS,
}

impl Metric {
    /// Every metric, in display order.
    pub const ALL: [Metric; 12] = [
        Metric::Workers,
        Metric::IterationsPerS,
        Metric::NormIterationsPerS,
        Metric::CpuSharePct,
        Metric::CpuUtil,
        Metric::WaitPct,
        Metric::MigrationsPerS,
        Metric::PreemptionsPerS,
        Metric::WakeP50Us,
        Metric::WakeP99Us,
        Metric::VoluntaryPerS,
        Metric::TimeslicesPerS,
    ];

    /// Short column name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Workers => "workers",
            Metric::IterationsPerS => "iter/s",
            Metric::NormIterationsPerS => "norm iter/s",
            Metric::CpuSharePct => "cpu share %",
            Metric::CpuUtil => "cpus used",
            Metric::WaitPct => "wait %",
            Metric::MigrationsPerS => "migr/s",
            Metric::PreemptionsPerS => "preempt/s",
            Metric::WakeP50Us => "wake p50 µs",
            Metric::WakeP99Us => "wake p99 µs",
            Metric::VoluntaryPerS => "sleeps/s",
            Metric::TimeslicesPerS => "slices/s",
        }
    }

    /// Which direction is an improvement. More CPU for a cgroup (`cpus used`,
    /// under a cap included: a capped cgroup getting less is worse) and more
    /// work done are better; waiting, migrating, preemption and wake-up latency
    /// are worse. A cgroup's share of all CPU is zero-sum between cgroups, and
    /// switch and slice rates are neither good nor bad: those have none and can
    /// only be shown, never judged.
    pub fn polarity(self) -> Polarity {
        match self {
            Metric::Workers
            | Metric::CpuSharePct
            | Metric::VoluntaryPerS
            | Metric::TimeslicesPerS => Polarity::Neutral,
            Metric::IterationsPerS | Metric::NormIterationsPerS | Metric::CpuUtil => {
                Polarity::HigherIsBetter
            }
            Metric::WaitPct
            | Metric::MigrationsPerS
            | Metric::PreemptionsPerS
            | Metric::WakeP50Us
            | Metric::WakeP99Us => Polarity::LowerIsBetter,
        }
    }

    /// True when a uniform change of the host's speed leaves the metric
    /// unchanged: it is a ratio of times measured in the same run (CPU time
    /// over step time, waiting over runnable time) or a rate over a reference
    /// of the same run. The default primary metrics are these (with a polarity).
    pub fn speed_robust(self) -> bool {
        matches!(
            self,
            Metric::Workers
                | Metric::NormIterationsPerS
                | Metric::CpuSharePct
                | Metric::CpuUtil
                | Metric::WaitPct
        )
    }

    /// The metric a thresholds file names: its column name (`"cpus used"`) or
    /// its id (`"cpu-util"`, as in `replay stats --json`).
    pub fn from_name(name: &str) -> Option<Metric> {
        use serde::de::IntoDeserializer;
        let by_id = |s: &str| {
            let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                s.into_deserializer();
            Metric::deserialize(d).ok()
        };
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .or_else(|| by_id(name))
    }

    /// This metric's value for a group, or `None` when it cannot be computed.
    pub fn value(self, step: &StepMetrics, group: &GroupMetrics) -> Option<f64> {
        let ns = step.duration_ns();
        match self {
            Metric::Workers => Some(group.workers.len() as f64),
            Metric::IterationsPerS => group.iterations_per_s(ns),
            Metric::NormIterationsPerS => {
                let (iterations, run_ns) = step.groups.iter().fold((0u64, 0u64), |(i, r), g| {
                    (i.saturating_add(g.iterations), r.saturating_add(g.run_ns))
                });
                // (cgroup's iterations / step time) / (all iterations / all CPU time)
                (ns > 0 && iterations > 0 && run_ns > 0).then(|| {
                    group.iterations as f64 / ns as f64 * run_ns as f64 / iterations as f64
                })
            }
            Metric::CpuSharePct => {
                let total = step.total_run_ns();
                (total > 0).then(|| 100.0 * group.run_ns as f64 / total as f64)
            }
            Metric::CpuUtil => group.cpu_utilisation(ns),
            Metric::WaitPct => group.wait_fraction().map(|f| 100.0 * f),
            Metric::MigrationsPerS => group.migrations_per_s(ns),
            Metric::PreemptionsPerS => {
                (ns > 0).then(|| group.involuntary_switches as f64 * 1e9 / ns as f64)
            }
            Metric::WakeP50Us => group.wake_quantile_ns(0.5).map(|v| v as f64 / 1e3),
            Metric::WakeP99Us => group.wake_quantile_ns(0.99).map(|v| v as f64 / 1e3),
            Metric::VoluntaryPerS => {
                (ns > 0).then(|| group.voluntary_switches as f64 * 1e9 / ns as f64)
            }
            Metric::TimeslicesPerS => (ns > 0).then(|| group.timeslices as f64 * 1e9 / ns as f64),
        }
    }
}

/// Label of a step for display and matching: `step 0`, `backdrop`, or `outside steps`.
pub fn step_label(step: &StepMetrics) -> String {
    StepLabeler::default().next(step.step)
}

/// Label of a cgroup: its name, or `(root)`.
pub fn cgroup_label(group: &GroupMetrics) -> String {
    if group.cgroup.is_empty() {
        "(root)".to_string()
    } else {
        group.cgroup.clone()
    }
}

/// Where a metric value belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MetricKey {
    pub step: String,
    pub cgroup: String,
    pub metric: Metric,
}

/// One extracted value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricValue {
    #[serde(flatten)]
    pub key: MetricKey,
    pub value: f64,
}

/// Gives each step segment its display label, in trace order.
///
/// A label that repeats (it cannot, in a well-formed trace) gets `#n` appended
/// so keys stay unique; `extract` and the interval series share this.
#[derive(Debug, Default)]
pub struct StepLabeler {
    seen: Vec<String>,
}

impl StepLabeler {
    /// The label of the next segment, whose step is `step`.
    pub fn next(&mut self, step: Option<StepRef>) -> String {
        let label = match step {
            Some(s) => s.to_string(),
            None => "outside steps".to_string(),
        };
        let repeats = self.seen.iter().filter(|s| **s == label).count();
        self.seen.push(label.clone());
        if repeats > 0 {
            format!("{label} #{}", repeats + 1)
        } else {
            label
        }
    }
}

/// Per-metric judging defaults: the smallest absolute difference that counts,
/// and the smallest relative noise band (percent) the metric's resolution allows.
pub fn default_floor(metric: Metric) -> f64 {
    match metric {
        Metric::Workers => 0.5,
        Metric::IterationsPerS => 0.0,
        Metric::NormIterationsPerS => 0.01,
        Metric::CpuSharePct => 1.0,
        Metric::CpuUtil => 0.01,
        Metric::WaitPct => 2.0,
        Metric::MigrationsPerS => 5.0,
        // Under emulation a throttled or spinning worker's switch rate wanders by
        // 10–15/s between identical runs (seen in the A/A runs); 25/s is signal.
        Metric::PreemptionsPerS | Metric::VoluntaryPerS | Metric::TimeslicesPerS => 25.0,
        Metric::WakeP50Us | Metric::WakeP99Us => 50.0,
    }
}

/// Wake quantiles are log2 buckets: anything under one bucket (×2) is resolution.
pub fn min_band_pct(metric: Metric) -> f64 {
    match metric {
        Metric::WakeP50Us | Metric::WakeP99Us => 100.0,
        _ => 0.0,
    }
}

/// Labels of the segments worth judging: real steps that ran to their end.
///
/// The backdrop segment (only its setup samples, spanning the whole run),
/// samples outside steps, and steps cut short or failed are shown but not judged.
pub fn judged_steps(run: &RunMetrics) -> std::collections::BTreeSet<String> {
    let mut labeler = StepLabeler::default();
    run.steps
        .iter()
        .map(|s| (labeler.next(s.step), s))
        .filter(|(_, s)| s.ended && !s.failed && s.step.is_some_and(|r| !r.is_backdrop()))
        .map(|(label, _)| label)
        .collect()
}

/// Every computable metric of every cgroup in every step, in trace order.
pub fn extract(run: &RunMetrics) -> Vec<MetricValue> {
    let mut out = Vec::new();
    let mut labeler = StepLabeler::default();
    for step in &run.steps {
        let label = labeler.next(step.step);
        for group in &step.groups {
            for metric in Metric::ALL {
                if let Some(value) = metric.value(step, group) {
                    let key = MetricKey {
                        step: label.clone(),
                        cgroup: cgroup_label(group),
                        metric,
                    };
                    out.push(MetricValue { key, value });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::metrics::WorkerTotals;

    fn group(name: &str, run_ns: u64, iterations: u64) -> GroupMetrics {
        GroupMetrics {
            cgroup: name.to_string(),
            iterations,
            run_ns,
            wait_ns: run_ns,
            workers: vec![WorkerTotals {
                worker: 0,
                iterations,
                run_ns,
                wait_ns: run_ns,
            }],
            ..GroupMetrics::default()
        }
    }

    #[test]
    fn shares_and_rates() {
        let step = StepMetrics {
            step: Some(StepRef(0)),
            begin_ns: 0,
            end_ns: 2_000_000_000,
            ended: true,
            failed: false,
            groups: vec![group("a", 3_000_000_000, 100), group("", 1_000_000_000, 10)],
        };
        let run = RunMetrics {
            steps: vec![step.clone(), step],
        };
        let values = extract(&run);
        let get = |step: &str, cg: &str, m: Metric| {
            values
                .iter()
                .find(|v| v.key.step == step && v.key.cgroup == cg && v.key.metric == m)
                .map(|v| v.value)
        };
        assert_eq!(get("step 0", "a", Metric::CpuSharePct), Some(75.0));
        assert_eq!(get("step 0", "a", Metric::IterationsPerS), Some(50.0));
        assert_eq!(get("step 0", "a", Metric::CpuUtil), Some(1.5));
        assert_eq!(get("step 0", "(root)", Metric::WaitPct), Some(50.0));
        assert_eq!(get("step 0", "a", Metric::WakeP99Us), None);
        assert_eq!(get("step 0 #2", "a", Metric::Workers), Some(1.0));
        // 100 of 110 iterations at 4 CPU-seconds over 2 s: 100/2 ÷ (110/4).
        let norm = get("step 0", "a", Metric::NormIterationsPerS).unwrap();
        assert!((norm - 100.0 / 2.0 / (110.0 / 4.0)).abs() < 1e-12, "{norm}");
    }

    /// A host k times slower scales every iteration count by k: iter/s moves,
    /// the normalised throughput, CPU and waiting do not.
    #[test]
    fn normalised_throughput_cancels_the_host_speed() {
        // `k` iterations per unit of work: 2 is a host twice as fast.
        let step = |k: u64| StepMetrics {
            step: Some(StepRef(0)),
            begin_ns: 0,
            end_ns: 1_000_000_000,
            ended: true,
            failed: false,
            groups: vec![
                group("a", 600_000_000, 3000 * k),
                group("b", 300_000_000, 1000 * k),
            ],
        };
        let at = |k: u64, m: Metric| m.value(&step(k), &step(k).groups[1]).unwrap();
        assert_eq!(at(2, Metric::IterationsPerS), 2000.0);
        assert_eq!(at(1, Metric::IterationsPerS), 1000.0);
        for m in Metric::ALL.into_iter().filter(|m| m.speed_robust()) {
            let (fast, slow) = (at(2, m), at(1, m));
            assert!(
                (fast - slow).abs() < 1e-12,
                "{}: {fast} vs {slow}",
                m.name()
            );
        }
        // b runs at 2000/0.3 per CPU-second against a pace of 8000/0.9.
        let norm = at(2, Metric::NormIterationsPerS);
        assert!((norm - 2000.0 / (8000.0 / 0.9)).abs() < 1e-12, "{norm}");
    }

    #[test]
    fn names_and_ids_resolve() {
        assert_eq!(Metric::from_name("cpus used"), Some(Metric::CpuUtil));
        assert_eq!(Metric::from_name("wait-pct"), Some(Metric::WaitPct));
        assert_eq!(
            Metric::from_name("norm iter/s"),
            Some(Metric::NormIterationsPerS)
        );
        assert_eq!(Metric::from_name("iter/sec"), None);
    }
}
