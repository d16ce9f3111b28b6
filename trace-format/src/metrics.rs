//! Per-step, per-cgroup summaries of worker telemetry.
//!
//! [`MetricsBuilder`] folds a record stream into [`RunMetrics`]: integer sums
//! only, so the trace writer can store them in the index and `replay` can diff
//! many traces without decoding them. Derived rates (iterations/s, shares) are
//! computed by [`GroupMetrics`] accessors from these sums.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::record::{Log2Hist, Record, StepOutcome, StepRef, Timed, WorkerSample};

/// Summaries of a whole run, one entry per step that started.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunMetrics {
    pub steps: Vec<StepMetrics>,
}

/// One step's time span and its cgroups' telemetry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: Option<StepRef>,
    pub begin_ns: u64,
    /// End of the step; the last record's time when the step never ended.
    pub end_ns: u64,
    /// False when the trace ended before the step's `StepEnd`.
    pub ended: bool,
    pub failed: bool,
    pub groups: Vec<GroupMetrics>,
}

impl StepMetrics {
    /// Length of the step in ns.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.begin_ns)
    }

    /// Sum of every group's run time in this step.
    pub fn total_run_ns(&self) -> u64 {
        self.groups.iter().map(|g| g.run_ns).sum()
    }
}

/// Telemetry summed over the workers of one cgroup during one step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Cgroup name; empty for workers in the root cgroup.
    pub cgroup: String,
    pub samples: u64,
    pub iterations: u64,
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
    pub migrations: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub wake: Log2Hist,
    pub wake_max_ns: u64,
    /// Per-worker totals, ascending by worker number.
    pub workers: Vec<WorkerTotals>,
}

/// One worker's sums within a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerTotals {
    pub worker: u32,
    pub iterations: u64,
    pub run_ns: u64,
    pub wait_ns: u64,
}

impl GroupMetrics {
    /// Adds one worker sample's counters (not the per-worker totals).
    pub fn add_sample(&mut self, s: &WorkerSample) {
        self.samples += 1;
        self.iterations = self.iterations.saturating_add(s.iterations);
        self.run_ns = self.run_ns.saturating_add(s.run_ns);
        self.wait_ns = self.wait_ns.saturating_add(s.wait_ns);
        self.timeslices = self.timeslices.saturating_add(u64::from(s.timeslices));
        self.migrations = self.migrations.saturating_add(u64::from(s.migrations));
        self.voluntary_switches = self
            .voluntary_switches
            .saturating_add(u64::from(s.voluntary_switches));
        self.involuntary_switches = self
            .involuntary_switches
            .saturating_add(u64::from(s.involuntary_switches));
        if let Some(w) = &s.wake {
            self.wake.merge(&w.hist);
            self.wake_max_ns = self.wake_max_ns.max(w.max_ns);
        }
    }

    /// Iterations per second of step time.
    pub fn iterations_per_s(&self, step_ns: u64) -> Option<f64> {
        per_second(self.iterations as f64, step_ns)
    }

    /// Average CPUs used: run time over step time.
    pub fn cpu_utilisation(&self, step_ns: u64) -> Option<f64> {
        (step_ns > 0).then(|| self.run_ns as f64 / step_ns as f64)
    }

    /// Fraction of time runnable-but-waiting over time runnable.
    pub fn wait_fraction(&self) -> Option<f64> {
        let total = self.run_ns.saturating_add(self.wait_ns);
        (total > 0).then(|| self.wait_ns as f64 / total as f64)
    }

    /// Migrations per second of step time.
    pub fn migrations_per_s(&self, step_ns: u64) -> Option<f64> {
        per_second(self.migrations as f64, step_ns)
    }

    /// Wake-up latency quantile (bucket upper bound), ns.
    pub fn wake_quantile_ns(&self, q: f64) -> Option<u64> {
        self.wake.quantile_upper_ns(q)
    }
}

fn per_second(value: f64, step_ns: u64) -> Option<f64> {
    (step_ns > 0).then(|| value * 1e9 / step_ns as f64)
}

/// Folds records, in file order, into [`RunMetrics`].
#[derive(Debug, Default)]
pub struct MetricsBuilder {
    /// Worker number → cgroup name.
    workers: BTreeMap<u32, String>,
    steps: Vec<StepAcc>,
    last_ts: u64,
}

#[derive(Debug)]
struct StepAcc {
    metrics: StepMetrics,
    groups: BTreeMap<String, (GroupMetrics, BTreeMap<u32, WorkerTotals>)>,
}

impl StepAcc {
    fn new(step: Option<StepRef>, begin_ns: u64) -> Self {
        StepAcc {
            metrics: StepMetrics {
                step,
                begin_ns,
                end_ns: begin_ns,
                ..StepMetrics::default()
            },
            groups: BTreeMap::new(),
        }
    }
}

impl MetricsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one record. Records must arrive in file order.
    pub fn observe(&mut self, timed: &Timed) {
        self.observe_parts(timed.ts_ns, &timed.record);
    }

    /// Like [`MetricsBuilder::observe`], for a record and timestamp held apart.
    pub fn observe_parts(&mut self, ts_ns: u64, record: &Record) {
        self.last_ts = self.last_ts.max(ts_ns);
        match record {
            Record::StepBegin { step } => {
                self.close_open_step(ts_ns);
                self.steps.push(StepAcc::new(Some(*step), ts_ns));
            }
            Record::StepEnd { step, outcome } => {
                if let Some(acc) = self.steps.last_mut()
                    && acc.metrics.step == Some(*step)
                    && !acc.metrics.ended
                {
                    acc.metrics.end_ns = ts_ns;
                    acc.metrics.ended = true;
                    acc.metrics.failed = matches!(outcome, StepOutcome::Failed { .. });
                }
            }
            Record::WorkerSpawned(w) => {
                self.workers.insert(w.worker, w.cgroup.clone());
            }
            Record::WorkerSample(s) => {
                let cgroup = self.workers.get(&s.worker).cloned().unwrap_or_default();
                if self.steps.last().is_none_or(|a| a.metrics.ended) {
                    // Samples outside any step (e.g. before the first) form their own span.
                    self.steps.push(StepAcc::new(None, ts_ns));
                }
                let acc = self.steps.last_mut().expect("pushed above");
                let (g, per_worker) = acc.groups.entry(cgroup.clone()).or_insert_with(|| {
                    (
                        GroupMetrics {
                            cgroup,
                            ..GroupMetrics::default()
                        },
                        BTreeMap::new(),
                    )
                });
                g.add_sample(s);
                let t = per_worker.entry(s.worker).or_insert_with(|| WorkerTotals {
                    worker: s.worker,
                    ..WorkerTotals::default()
                });
                t.iterations = t.iterations.saturating_add(s.iterations);
                t.run_ns = t.run_ns.saturating_add(s.run_ns);
                t.wait_ns = t.wait_ns.saturating_add(s.wait_ns);
            }
            _ => {}
        }
    }

    fn close_open_step(&mut self, ts_ns: u64) {
        if let Some(acc) = self.steps.last_mut()
            && !acc.metrics.ended
        {
            acc.metrics.end_ns = ts_ns.max(acc.metrics.begin_ns);
        }
    }

    /// The summaries so far; steps still open end at the last record seen.
    pub fn snapshot(&self) -> RunMetrics {
        let steps = self
            .steps
            .iter()
            .map(|acc| {
                let mut m = acc.metrics.clone();
                if !m.ended {
                    m.end_ns = m.end_ns.max(self.last_ts);
                }
                m.groups = acc
                    .groups
                    .values()
                    .map(|(g, per_worker)| {
                        let mut g = g.clone();
                        g.workers = per_worker.values().copied().collect();
                        g
                    })
                    .collect();
                m
            })
            .collect();
        RunMetrics { steps }
    }

    /// Consumes the builder and returns the summaries.
    pub fn finish(self) -> RunMetrics {
        self.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{WakeStats, WorkerSample, WorkerSpawned};
    use alloc::string::ToString;
    use alloc::vec;

    fn spawn(worker: u32, cgroup: &str) -> Record {
        Record::WorkerSpawned(WorkerSpawned {
            worker,
            pid: 100 + worker,
            step: StepRef(0),
            cgroup: cgroup.to_string(),
            work: "SpinWait".to_string(),
        })
    }

    fn sample(worker: u32, iterations: u64, run_ns: u64) -> Record {
        Record::WorkerSample(WorkerSample {
            worker,
            iterations,
            run_ns,
            wait_ns: run_ns / 4,
            ..Default::default()
        })
    }

    #[test]
    fn samples_are_grouped_by_step_and_cgroup() {
        let mut b = MetricsBuilder::new();
        let recs = [
            (0, Record::StepBegin { step: StepRef(0) }),
            (1, spawn(0, "a")),
            (2, spawn(1, "a")),
            (3, spawn(2, "b")),
            (100, sample(0, 10, 1000)),
            (100, sample(1, 20, 1000)),
            (100, sample(2, 5, 500)),
            (
                1_000_000_000,
                Record::StepEnd {
                    step: StepRef(0),
                    outcome: StepOutcome::Completed,
                },
            ),
            (1_000_000_001, Record::StepBegin { step: StepRef(1) }),
            (1_500_000_000, sample(2, 7, 700)),
        ];
        for (ts, r) in &recs {
            b.observe_parts(*ts, r);
        }
        let m = b.finish();
        assert_eq!(m.steps.len(), 2);
        let s0 = &m.steps[0];
        assert!(s0.ended);
        assert_eq!(s0.duration_ns(), 1_000_000_000);
        assert_eq!(s0.groups.len(), 2);
        assert_eq!(s0.groups[0].cgroup, "a");
        assert_eq!(s0.groups[0].iterations, 30);
        assert_eq!(s0.groups[0].workers.len(), 2);
        assert_eq!(s0.groups[0].iterations_per_s(s0.duration_ns()), Some(30.0));
        assert_eq!(s0.total_run_ns(), 2500);
        let s1 = &m.steps[1];
        assert!(!s1.ended);
        assert_eq!(s1.end_ns, 1_500_000_000);
        assert_eq!(s1.groups[0].cgroup, "b");
        assert_eq!(s1.groups[0].iterations, 7);
    }

    #[test]
    fn wake_latency_merges_across_samples() {
        let mut b = MetricsBuilder::new();
        b.observe_parts(0, &Record::StepBegin { step: StepRef(0) });
        b.observe_parts(0, &spawn(0, "ping"));
        for max in [1000u64, 5000] {
            let mut hist = Log2Hist::default();
            hist.record(max);
            let s = WorkerSample {
                worker: 0,
                wake: Some(WakeStats { max_ns: max, hist }),
                ..Default::default()
            };
            b.observe_parts(10, &Record::WorkerSample(s));
        }
        let m = b.finish();
        let g = &m.steps[0].groups[0];
        assert_eq!(g.wake.count(), 2);
        assert_eq!(g.wake_max_ns, 5000);
        assert_eq!(g.wake_quantile_ns(0.99), Some(8192));
        assert_eq!(vec![g.samples], vec![2]);
    }
}
