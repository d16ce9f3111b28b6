//! Sample intervals: per step segment, the k-th sample round of every worker
//! folded into one [`StepMetrics`], so [`crate::metric`] computes interval
//! values with the same formulas as whole-step values. Rounds keep only their
//! sums while reading and only their values afterwards.
//!
//! This is the unit of within-run statistics (one run per side) and the
//! x-axis of throughput plots. It needs every record decoded, so it streams:
//! memory grows with sample rounds, not with records.
use std::collections::BTreeMap;

use trace_format::file::Trace;
use trace_format::metrics::{GroupMetrics, StepMetrics, WorkerTotals};
use trace_format::record::{Record, StepRef};

use crate::metric::{Metric, MetricKey, StepLabeler};

/// One step segment cut into sample rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub label: String,
    pub step: Option<StepRef>,
    pub begin_ns: u64,
    pub end_ns: u64,
    pub ended: bool,
    pub failed: bool,
    /// Cgroup labels; rounds refer to them by index.
    pub cgroups: Vec<String>,
    pub rounds: Vec<Round>,
}

/// One sample round of a segment: every metric of every cgroup sampled in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// Time of the latest sample in the round.
    pub ts_ns: u64,
    /// (cgroup index, value per [`Metric::ALL`] entry; NaN when not computable).
    pub values: Vec<(u32, [f64; Metric::ALL.len()])>,
}

impl Segment {
    /// True for a real step that ran to its end (see [`crate::metric::judged_steps`]).
    pub fn judged(&self) -> bool {
        self.ended && !self.failed && self.step.is_some_and(|s| !s.is_backdrop())
    }

    /// Values of `metric` for `cgroup`, one per round that has them.
    pub fn values(&self, cgroup: &str, metric: Metric) -> Vec<(u64, f64)> {
        let Some(id) = self.cgroups.iter().position(|c| c == cgroup) else {
            return Vec::new();
        };
        let m = metric_index(metric);
        self.rounds
            .iter()
            .filter_map(|r| {
                let (_, v) = r.values.iter().find(|(c, _)| *c as usize == id)?;
                (!v[m].is_nan()).then_some((r.ts_ns, v[m]))
            })
            .collect()
    }

    /// Cgroup labels with samples in this segment, sorted.
    pub fn cgroups(&self) -> Vec<String> {
        let mut used: Vec<String> = self
            .cgroups
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                self.rounds
                    .iter()
                    .any(|r| r.values.iter().any(|(c, _)| *c as usize == *i))
            })
            .map(|(_, n)| n.clone())
            .collect();
        used.sort();
        used
    }
}

fn metric_index(metric: Metric) -> usize {
    Metric::ALL.iter().position(|m| *m == metric).unwrap_or(0)
}

/// Every segment of a trace, cut into rounds.
pub fn segments(trace: &Trace<'_>) -> Vec<Segment> {
    let mut b = Builder::default();
    for t in trace.records().flatten() {
        b.observe(t.ts_ns, &t.record);
    }
    b.finish()
}

/// Interval values per metric key, for the segments worth judging, with the
/// first and last round of each segment dropped (they cover partial intervals).
pub fn unit_values(segments: &[Segment]) -> BTreeMap<MetricKey, Vec<f64>> {
    let mut out: BTreeMap<MetricKey, Vec<f64>> = BTreeMap::new();
    for seg in segments.iter().filter(|s| s.judged()) {
        let inner = match seg.rounds.len() {
            0..=2 => continue,
            n => &seg.rounds[1..n - 1],
        };
        for r in inner {
            for (c, values) in &r.values {
                let Some(cgroup) = seg.cgroups.get(*c as usize) else {
                    continue;
                };
                for (metric, v) in Metric::ALL.iter().zip(values) {
                    if v.is_nan() {
                        continue;
                    }
                    let key = MetricKey {
                        step: seg.label.clone(),
                        cgroup: cgroup.clone(),
                        metric: *metric,
                    };
                    out.entry(key).or_default().push(*v);
                }
            }
        }
    }
    out
}

/// Averages consecutive values into at most `max` batch means (fewer, less
/// autocorrelated units; bounded cost for the bootstrap).
pub fn batch_means(values: &[f64], max: usize) -> Vec<f64> {
    if values.len() <= max || max == 0 {
        return values.to_vec();
    }
    let n = values.len();
    (0..max)
        .map(|i| {
            let (lo, hi) = (i * n / max, (i + 1) * n / max);
            values[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
        })
        .collect()
}

#[derive(Debug, Default)]
struct Builder {
    workers: BTreeMap<u32, WorkerState>,
    /// Interned cgroup labels.
    cgroups: Vec<String>,
    segs: Vec<SegAcc>,
    labeler: StepLabeler,
    last_ts: u64,
}

#[derive(Debug, Default)]
struct WorkerState {
    cgroup: u32,
    seen_at: u64,
    segment: Option<usize>,
    round: usize,
}

#[derive(Debug)]
struct SegAcc {
    seg: Segment,
    rounds: Vec<RoundAcc>,
}

/// Sums of one round: compact, one entry per cgroup sampled.
#[derive(Debug, Default)]
struct RoundAcc {
    ts_ns: u64,
    span_sum: u64,
    spans: u64,
    groups: Vec<(u32, GroupMetrics)>,
}

impl Builder {
    fn intern(&mut self, cgroup: &str) -> u32 {
        let label = if cgroup.is_empty() { "(root)" } else { cgroup };
        let i = match self.cgroups.iter().position(|c| c == label) {
            Some(i) => i,
            None => {
                self.cgroups.push(label.to_string());
                self.cgroups.len() - 1
            }
        };
        u32::try_from(i).unwrap_or(u32::MAX)
    }

    fn open(&mut self, step: Option<StepRef>, ts: u64) {
        if let Some(acc) = self.segs.last_mut()
            && !acc.seg.ended
        {
            acc.seg.end_ns = ts.max(acc.seg.begin_ns);
        }
        let label = self.labeler.next(step);
        self.segs.push(SegAcc {
            seg: Segment {
                label,
                step,
                begin_ns: ts,
                end_ns: ts,
                ended: false,
                failed: false,
                cgroups: Vec::new(),
                rounds: Vec::new(),
            },
            rounds: Vec::new(),
        });
    }

    fn observe(&mut self, ts: u64, record: &Record) {
        self.last_ts = self.last_ts.max(ts);
        match record {
            Record::StepBegin { step } => self.open(Some(*step), ts),
            Record::StepEnd { step, outcome } => {
                if let Some(acc) = self.segs.last_mut()
                    && acc.seg.step == Some(*step)
                    && !acc.seg.ended
                {
                    acc.seg.end_ns = ts;
                    acc.seg.ended = true;
                    acc.seg.failed =
                        matches!(outcome, trace_format::record::StepOutcome::Failed { .. });
                }
            }
            Record::WorkerSpawned(w) => {
                let cgroup = self.intern(&w.cgroup);
                let st = self.workers.entry(w.worker).or_default();
                st.cgroup = cgroup;
                st.seen_at = ts;
            }
            Record::WorkerSample(s) => self.sample(ts, s),
            _ => {}
        }
    }

    fn sample(&mut self, ts: u64, s: &trace_format::record::WorkerSample) {
        if self.segs.last().is_none_or(|a| a.seg.ended) {
            self.open(None, ts);
        }
        if !self.workers.contains_key(&s.worker) {
            let root = self.intern("");
            self.workers.insert(
                s.worker,
                WorkerState {
                    cgroup: root,
                    ..WorkerState::default()
                },
            );
        }
        let seg_index = self.segs.len() - 1;
        let Some(st) = self.workers.get_mut(&s.worker) else {
            return;
        };
        let round = if st.segment == Some(seg_index) {
            st.round + 1
        } else {
            0
        };
        let span = ts.saturating_sub(st.seen_at);
        st.segment = Some(seg_index);
        st.round = round;
        st.seen_at = ts;
        let cgroup = st.cgroup;
        let acc = &mut self.segs[seg_index];
        if acc.rounds.len() <= round {
            acc.rounds.resize_with(round + 1, RoundAcc::default);
        }
        let r = &mut acc.rounds[round];
        r.ts_ns = r.ts_ns.max(ts);
        r.span_sum = r.span_sum.saturating_add(span);
        r.spans += 1;
        let at = match r.groups.iter().position(|(c, _)| *c == cgroup) {
            Some(i) => i,
            None => {
                r.groups.push((cgroup, GroupMetrics::default()));
                r.groups.len() - 1
            }
        };
        r.groups[at].1.add_sample(s);
    }

    fn finish(self) -> Vec<Segment> {
        let last_ts = self.last_ts;
        let names = self.cgroups;
        self.segs
            .into_iter()
            .map(|acc| {
                let mut seg = acc.seg;
                if !seg.ended {
                    seg.end_ns = seg.end_ns.max(last_ts);
                }
                seg.cgroups = names.clone();
                seg.rounds = acc
                    .rounds
                    .into_iter()
                    .map(|r| finish_round(seg.step, r))
                    .collect();
                seg
            })
            .collect()
    }
}

/// Computes a round's metric values with [`Metric::value`]: the round is a
/// step whose span is the mean sample interval of its workers.
fn finish_round(step: Option<StepRef>, r: RoundAcc) -> Round {
    let span = r.span_sum.checked_div(r.spans).unwrap_or(0);
    let ids: Vec<u32> = r.groups.iter().map(|(c, _)| *c).collect();
    let groups = r
        .groups
        .into_iter()
        .map(|(_, mut g)| {
            // Each worker appears once per round, so samples = workers.
            g.workers = vec![WorkerTotals::default(); usize::try_from(g.samples).unwrap_or(0)];
            g
        })
        .collect();
    let metrics = StepMetrics {
        step,
        begin_ns: 0,
        end_ns: span,
        ended: true,
        failed: false,
        groups,
    };
    let values = ids
        .into_iter()
        .zip(&metrics.groups)
        .map(|(c, g)| {
            let mut v = [f64::NAN; Metric::ALL.len()];
            for (slot, m) in v.iter_mut().zip(Metric::ALL) {
                if let Some(x) = m.value(&metrics, g) {
                    *slot = x;
                }
            }
            (c, v)
        })
        .collect();
    Round {
        ts_ns: r.ts_ns,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_average_neighbours() {
        assert_eq!(batch_means(&[1.0, 2.0, 3.0], 5), vec![1.0, 2.0, 3.0]);
        assert_eq!(batch_means(&[1.0, 3.0, 5.0, 7.0], 2), vec![2.0, 6.0]);
        assert_eq!(batch_means(&[1.0, 2.0, 3.0, 4.0, 5.0], 2).len(), 2);
    }
}
