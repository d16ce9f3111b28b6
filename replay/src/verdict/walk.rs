//! One pass over a trace's records that tracks what each cgroup is allowed
//! (cpuset, weight, quota, freeze) from the archived scenario and the ops
//! applied, and gathers the evidence every verdict needs.
use std::collections::{BTreeMap, BTreeSet};

use trace_format::file::Trace;
use trace_format::meta::Meta;
use trace_format::record::{CpuRow, OpOutcome, Record, RowFields, Snapshot, StepRef, WorkerSample};
use trace_format::scenario::{
    AffinityIntent, CgroupDef, CpuList, Op, SchedPolicy, Topology, WorkSpec,
};

use super::health::Health;
use crate::metric::StepLabeler;

/// What the scenario says about one cgroup right now.
#[derive(Debug, Clone, Default)]
pub struct CgroupState {
    /// Resolved `cpuset.cpus`; `None` inherits every CPU.
    pub cpus: Option<CpuList>,
    pub weight: u32,
    /// A `cpu.max` quota is set.
    pub capped: bool,
    pub frozen: bool,
    /// Time of the last cpuset change (or creation).
    pub changed_at: u64,
    pub works: Vec<WorkSpec>,
}

impl CgroupState {
    fn from_def(def: &CgroupDef, topo: &Topology, ts: u64) -> Self {
        CgroupState {
            cpus: def.cpuset.as_ref().and_then(|c| c.resolve(topo).ok()),
            weight: def.cpu_weight.unwrap_or(100),
            capped: def.cpu_max.is_some_and(|m| m.quota_us.is_some()),
            frozen: false,
            changed_at: ts,
            works: def.works.clone(),
        }
    }

    /// True when workers of `work` here compete for CPU without limits:
    /// never-blocking work, normal policy, nice 0, no pinning, no quota.
    pub fn saturating(&self, work: &str) -> bool {
        let cpu_bound = matches!(work, "spin_wait" | "cache_pressure");
        cpu_bound
            && !self.capped
            && self
                .works
                .iter()
                .filter(|w| w.work.name() == work)
                .all(|w| {
                    w.policy == SchedPolicy::Normal
                        && w.nice == 0
                        && matches!(w.affinity, AffinityIntent::Inherit)
                })
    }

    /// True when every spec of `work` here leaves placement to the cgroup.
    pub fn unpinned(&self, work: &str) -> bool {
        let specs: Vec<&WorkSpec> = self
            .works
            .iter()
            .filter(|w| w.work.name() == work)
            .collect();
        specs.iter().all(|w| {
            matches!(
                w.affinity,
                AffinityIntent::Inherit | AffinityIntent::CrossCgroup
            ) && w.policy == specs[0].policy
                && w.nice == specs[0].nice
        })
    }
}

/// A worker as spawned, plus its running state.
#[derive(Debug, Clone, Default)]
pub struct WorkerInfo {
    pub cgroup: String,
    pub work: String,
    /// Time of the previous sample (or the spawn).
    pub last_ts: u64,
    /// Time the worker was moved to another cgroup, if ever.
    pub moved_at: u64,
    /// Current streak of samples runnable but never run: summed wait, ns.
    pub gap_ns: u64,
    /// Samples seen so far.
    pub samples: u64,
}

/// A cpuset violation: a worker seen on CPUs outside its cgroup's set.
#[derive(Debug, Clone)]
pub struct Violation {
    pub ts_ns: u64,
    pub worker: u32,
    pub cgroup: String,
    pub seen: CpuList,
    pub allowed: CpuList,
}

/// Per-worker sums within one segment.
#[derive(Debug, Clone, Default)]
pub struct WorkerTally {
    pub cgroup: String,
    pub work: String,
    pub samples: u32,
    pub iterations: u64,
    pub run_ns: u64,
    /// The worker's cgroup was frozen at some point in the segment.
    pub frozen: bool,
    /// Placement was left to the cgroup (no pinning, one policy and nice).
    pub unpinned: bool,
    /// The worker ended on its own during the segment (see [`Health`]).
    pub died: bool,
}

/// One cgroup within one sample round, for weight shares.
#[derive(Debug, Clone, Default)]
pub struct RoundGroup {
    pub run_ns: u64,
    /// Every sample of the round came after the last cpuset change.
    pub clean: bool,
    pub cpus: Option<CpuList>,
    pub weight: u32,
    /// Workers sampled, and whether all of them saturate a CPU.
    pub workers: u32,
    pub saturating: bool,
}

/// A step segment as the verdicts see it.
#[derive(Debug, Clone)]
pub struct SegmentEvidence {
    pub label: String,
    pub step: Option<StepRef>,
    pub ended: bool,
    pub failed: bool,
    pub workers: BTreeMap<u32, WorkerTally>,
    /// Round k of every worker → cgroup → tally.
    pub rounds: Vec<BTreeMap<String, RoundGroup>>,
}

impl SegmentEvidence {
    /// A real step that ran to its end.
    pub fn judged(&self) -> bool {
        self.ended && !self.failed && self.step.is_some_and(|s| !s.is_backdrop())
    }
}

/// A run queue that did not advance between two snapshots.
#[derive(Debug, Clone)]
pub struct Stall {
    pub cpu: usize,
    pub from_ns: u64,
    pub to_ns: u64,
    pub nr_running: u32,
    pub what: &'static str,
    /// Position of the later snapshot among the trace's records.
    pub at: u64,
}

/// Everything gathered in one pass.
#[derive(Debug, Default)]
pub struct Evidence {
    pub segments: Vec<SegmentEvidence>,
    pub samples: u64,
    pub isolation_checked: u64,
    pub isolation_skipped: u64,
    /// Samples that report no CPU at all.
    pub no_cpu_info: u64,
    pub restricted_cgroups: BTreeSet<String>,
    pub violations: Vec<Violation>,
    /// Longest runnable-without-running streak: (ns, worker, cgroup, ending ts).
    pub max_gap: Option<(u64, u32, String, u64)>,
    /// Largest wait within one sample, as a fraction of the sample's interval.
    pub max_wait_fraction: Option<(f64, u32, u64)>,
    pub snapshots: u64,
    pub snapshot_pairs: u64,
    pub snapshot_fields: RowFields,
    pub stalls: Vec<Stall>,
    /// Snapshots taken after the run's last step ended (teardown, then the
    /// guest's shutdown and reboot): they are not judged.
    pub snapshots_after_run: u64,
    pub decode_errors: u64,
    /// OOM kills, workers that ended on their own, failed operations.
    pub health: Health,
}

/// Shortest span over which a busy CPU must have switched tasks at least once.
const SWITCH_STALL_MIN_NS: u64 = 1_000_000_000;

/// Walks every record of `trace`.
pub fn walk(trace: &Trace<'_>, stall_min_interval: u64) -> Evidence {
    let mut w = Walker::new(trace.meta(), stall_min_interval);
    for item in trace.records() {
        match item {
            Ok(t) => w.observe(t.ts_ns, &t.record),
            Err(_) => w.ev.decode_errors += 1,
        }
    }
    w.finish()
}

struct Walker<'m> {
    meta: &'m Meta,
    topo: Topology,
    all: CpuList,
    stall_min_interval: u64,
    cgroups: BTreeMap<String, CgroupState>,
    workers: BTreeMap<u32, WorkerInfo>,
    /// Worker → (segment index, round) of its last sample.
    rounds: BTreeMap<u32, (usize, usize)>,
    labeler: StepLabeler,
    prev_snapshot: Option<(u64, Vec<CpuRow>)>,
    /// The snapshot switch counts are compared against (at least 1 s back).
    prev_switch_snapshot: Option<(u64, Vec<CpuRow>)>,
    /// Records observed so far: the position of the current one.
    index: u64,
    /// Steps (and the backdrop) begun and not yet ended.
    open_steps: BTreeSet<StepRef>,
    /// Position of the `StepEnd` that left no step open, until another begins.
    run_over_at: Option<u64>,
    /// Positions of every snapshot, and of the later snapshot of every pair.
    snapshot_at: Vec<u64>,
    pair_at: Vec<u64>,
    ev: Evidence,
}

impl<'m> Walker<'m> {
    fn new(meta: &'m Meta, stall_min_interval: u64) -> Self {
        Walker {
            meta,
            topo: meta.topology,
            all: meta.topology.all_cpus(),
            stall_min_interval,
            cgroups: BTreeMap::new(),
            workers: BTreeMap::new(),
            rounds: BTreeMap::new(),
            labeler: StepLabeler::default(),
            prev_snapshot: None,
            prev_switch_snapshot: None,
            index: 0,
            open_steps: BTreeSet::new(),
            run_over_at: None,
            snapshot_at: Vec::new(),
            pair_at: Vec::new(),
            ev: Evidence::default(),
        }
    }

    fn open_segment(&mut self, step: Option<StepRef>) {
        let label = self.labeler.next(step);
        self.ev.segments.push(SegmentEvidence {
            label,
            step,
            ended: false,
            failed: false,
            workers: BTreeMap::new(),
            rounds: Vec::new(),
        });
    }

    /// Leaves out what snapshots taken after the run's last step showed:
    /// the guest was tearing down and rebooting (its CPUs stop one by one).
    fn finish(mut self) -> Evidence {
        if let Some(cut) = self.run_over_at {
            self.ev.stalls.retain(|s| s.at < cut);
            let count = |at: &[u64], keep: &dyn Fn(u64) -> bool| {
                u64::try_from(at.iter().filter(|&&i| keep(i)).count()).unwrap_or(u64::MAX)
            };
            self.ev.snapshot_pairs = count(&self.pair_at, &|i| i < cut);
            self.ev.snapshots_after_run = count(&self.snapshot_at, &|i| i > cut);
        }
        self.ev
    }

    fn observe(&mut self, ts: u64, record: &Record) {
        self.index += 1;
        match record {
            Record::StepBegin { step } => {
                self.open_steps.insert(*step);
                self.run_over_at = None;
                self.open_segment(Some(*step));
                self.create_cgroups(*step, ts);
            }
            Record::StepEnd { step, outcome } => {
                if self.open_steps.remove(step) && self.open_steps.is_empty() {
                    self.run_over_at = Some(self.index);
                }
                if let Some(seg) = self.ev.segments.last_mut()
                    && seg.step == Some(*step)
                    && !seg.ended
                {
                    seg.ended = true;
                    seg.failed =
                        matches!(outcome, trace_format::record::StepOutcome::Failed { .. });
                }
            }
            Record::OpApplied(op) if op.outcome.is_ok() => {
                if let Some(o) = self.op(op.step, op.op).cloned() {
                    self.apply(&o, ts, &op.outcome);
                }
            }
            Record::WorkerSpawned(s) => {
                self.workers.insert(
                    s.worker,
                    WorkerInfo {
                        cgroup: s.cgroup.clone(),
                        work: s.work.clone(),
                        last_ts: ts,
                        ..WorkerInfo::default()
                    },
                );
            }
            Record::WorkerSample(s) => self.sample(ts, s),
            Record::Snapshot(s) => self.snapshot(ts, s),
            Record::WorkerExited(x) => {
                self.exited(x.worker);
                self.ev.health.observe(record, |_| None);
            }
            Record::WorkerErrors(_) | Record::MemoryEvents(_) => {
                let workers = &self.workers;
                self.ev
                    .health
                    .observe(record, |w| workers.get(&w).map(|i| i.cgroup.clone()));
            }
            _ => {}
        }
    }

    /// Marks a worker that ended on its own in the latest segment (its death
    /// may be reaped just after the step ended); in an open segment also one
    /// that died before its first sample (it made no progress there).
    fn exited(&mut self, worker: u32) {
        let Some(info) = self.workers.get(&worker) else {
            return;
        };
        let Some(seg) = self.ev.segments.last_mut() else {
            return;
        };
        if let Some(t) = seg.workers.get_mut(&worker) {
            t.died = true;
        } else if !seg.ended {
            let tally = WorkerTally {
                cgroup: info.cgroup.clone(),
                work: info.work.clone(),
                unpinned: true,
                died: true,
                ..WorkerTally::default()
            };
            seg.workers.insert(worker, tally);
        }
    }

    fn op(&self, step: StepRef, index: u16) -> Option<&Op> {
        let sc = &self.meta.scenario;
        let ops = if step.is_backdrop() {
            &sc.backdrop.ops
        } else {
            &sc.steps.get(usize::from(step.0))?.ops
        };
        ops.get(usize::from(index))
    }

    fn create_cgroups(&mut self, step: StepRef, ts: u64) {
        let sc = &self.meta.scenario;
        let defs = if step.is_backdrop() {
            &sc.backdrop.cgroups
        } else {
            match sc.steps.get(usize::from(step.0)) {
                Some(s) => &s.setup,
                None => return,
            }
        };
        for def in defs {
            let state = CgroupState::from_def(def, &self.topo, ts);
            self.cgroups.insert(def.name.clone(), state);
        }
    }

    fn apply(&mut self, op: &Op, ts: u64, _outcome: &OpOutcome) {
        let topo = self.topo;
        match op {
            Op::AddCgroup { name } => {
                let state = CgroupState {
                    weight: 100,
                    changed_at: ts,
                    ..CgroupState::default()
                };
                self.cgroups.insert(name.clone(), state);
            }
            Op::AddCgroupDef(def) => {
                let state = CgroupState::from_def(def, &topo, ts);
                self.cgroups.insert(def.name.clone(), state);
            }
            Op::RemoveCgroup { cgroup } => {
                self.cgroups.remove(cgroup);
            }
            Op::SetCpuset { cgroup, cpuset } => {
                let cg = self.cgroups.entry(cgroup.clone()).or_default();
                cg.cpus = cpuset.resolve(&topo).ok();
                cg.changed_at = ts;
            }
            Op::ClearCpuset { cgroup } => {
                let cg = self.cgroups.entry(cgroup.clone()).or_default();
                cg.cpus = None;
                cg.changed_at = ts;
            }
            Op::SwapCpusets { a, b } => {
                let ca = self.cgroups.get(a).and_then(|c| c.cpus.clone());
                let cb = self.cgroups.get(b).and_then(|c| c.cpus.clone());
                for (name, cpus) in [(a, cb), (b, ca)] {
                    let cg = self.cgroups.entry(name.clone()).or_default();
                    cg.cpus = cpus;
                    cg.changed_at = ts;
                }
            }
            Op::MoveAllTasks { from, to } => {
                for w in self.workers.values_mut().filter(|w| w.cgroup == *from) {
                    w.cgroup = to.clone();
                    w.moved_at = ts;
                }
            }
            Op::FreezeCgroup { cgroup } | Op::UnfreezeCgroup { cgroup } => {
                let frozen = matches!(op, Op::FreezeCgroup { .. });
                self.cgroups.entry(cgroup.clone()).or_default().frozen = frozen;
                if frozen {
                    self.mark_frozen(cgroup);
                }
            }
            _ => {}
        }
    }

    fn mark_frozen(&mut self, cgroup: &str) {
        if let Some(seg) = self.ev.segments.last_mut() {
            for t in seg.workers.values_mut().filter(|t| t.cgroup == cgroup) {
                t.frozen = true;
            }
        }
    }

    fn sample(&mut self, ts: u64, s: &WorkerSample) {
        self.ev.samples += 1;
        if self.ev.segments.last().is_none_or(|seg| seg.ended) {
            self.open_segment(None);
        }
        let seg_index = self.ev.segments.len() - 1;
        let info = self.workers.entry(s.worker).or_default();
        let interval = ts.saturating_sub(info.last_ts);
        let prev_ts = info.last_ts;
        info.last_ts = ts;
        let cgroup = info.cgroup.clone();
        let work = info.work.clone();
        let state = self.cgroups.get(&cgroup);
        let allowed = state.and_then(|c| c.cpus.clone());
        let straddles = state.is_some_and(|c| c.changed_at >= prev_ts) || info.moved_at >= prev_ts;

        // Scheduling gap: consecutive samples runnable but never run.
        if s.run_ns == 0 && s.wait_ns > 0 {
            info.gap_ns = info.gap_ns.saturating_add(s.wait_ns);
            if self.ev.max_gap.as_ref().is_none_or(|g| info.gap_ns > g.0) {
                self.ev.max_gap = Some((info.gap_ns, s.worker, cgroup.clone(), ts));
            }
        } else {
            info.gap_ns = 0;
        }
        // Only whole intervals: a worker's first sample may include waiting before its spawn record.
        let first = info.samples == 0;
        info.samples += 1;
        if !first && interval >= self.meta.sample_interval_ns / 2 && interval > 0 {
            // schedstat credits a wait when it ends, so one interval can hold
            // more than its own length of waiting: a share is at most 100 %.
            let frac = (s.wait_ns as f64 / interval as f64).min(1.0);
            if self.ev.max_wait_fraction.is_none_or(|m| frac > m.0) {
                self.ev.max_wait_fraction = Some((frac, s.worker, ts));
            }
        }

        // Cpuset isolation.
        let seen = CpuList::new(s.cpus().filter_map(|c| u32::try_from(c).ok()));
        if seen.is_empty() {
            self.ev.no_cpu_info += 1;
        } else if straddles {
            self.ev.isolation_skipped += 1;
        } else {
            let allowed_list = allowed.clone().unwrap_or_else(|| self.all.clone());
            if allowed.is_some() {
                self.ev.restricted_cgroups.insert(cgroup.clone());
            }
            self.ev.isolation_checked += 1;
            let outside: Vec<u32> = seen.iter().filter(|c| !allowed_list.contains(*c)).collect();
            if !outside.is_empty() {
                self.ev.violations.push(Violation {
                    ts_ns: ts,
                    worker: s.worker,
                    cgroup: cgroup.clone(),
                    seen,
                    allowed: allowed_list,
                });
            }
        }

        // Per-segment tallies and rounds.
        let frozen = state.is_some_and(|c| c.frozen);
        let weight = state.map_or(100, |c| c.weight);
        let saturating = state.is_some_and(|c| c.saturating(&work));
        let unpinned = state.is_none_or(|c| c.unpinned(&work));
        let round = match self.rounds.get(&s.worker) {
            Some(&(seg, r)) if seg == seg_index => r + 1,
            _ => 0,
        };
        self.rounds.insert(s.worker, (seg_index, round));
        let seg = &mut self.ev.segments[seg_index];
        let tally = seg.workers.entry(s.worker).or_insert_with(|| WorkerTally {
            cgroup: cgroup.clone(),
            work,
            unpinned: true,
            ..WorkerTally::default()
        });
        tally.unpinned &= unpinned;
        tally.samples += 1;
        tally.iterations = tally.iterations.saturating_add(s.iterations);
        tally.run_ns = tally.run_ns.saturating_add(s.run_ns);
        tally.frozen |= frozen;
        if seg.rounds.len() <= round {
            seg.rounds.resize_with(round + 1, BTreeMap::new);
        }
        let g = seg.rounds[round]
            .entry(cgroup)
            .or_insert_with(|| RoundGroup {
                clean: true,
                cpus: allowed,
                weight,
                saturating: true,
                ..RoundGroup::default()
            });
        g.run_ns = g.run_ns.saturating_add(s.run_ns);
        g.clean &= !straddles && !frozen;
        g.workers += 1;
        g.saturating &= saturating;
    }

    fn snapshot(&mut self, ts: u64, s: &Snapshot) {
        self.ev.snapshots += 1;
        self.snapshot_at.push(self.index);
        self.ev.snapshot_fields = if self.ev.snapshots == 1 {
            s.fields
        } else {
            RowFields(self.ev.snapshot_fields.0 & s.fields.0)
        };
        // rq.clock must move between any two snapshots of a busy CPU.
        if let Some((prev_ts, prev)) = &self.prev_snapshot
            && ts.saturating_sub(*prev_ts) >= self.stall_min_interval
        {
            self.ev.snapshot_pairs += 1;
            self.pair_at.push(self.index);
            for (cpu, (a, b)) in prev.iter().zip(&s.rows).enumerate() {
                let busy = a.nr_running.min(b.nr_running);
                if s.fields.has(RowFields::CLOCK) && busy >= 1 && a.clock == b.clock {
                    self.ev.stalls.push(Stall {
                        cpu,
                        from_ns: *prev_ts,
                        to_ns: ts,
                        nr_running: busy,
                        what: "rq.clock",
                        at: self.index,
                    });
                }
            }
        }
        // A CPU with two runnable tasks may legitimately run one for a whole
        // (possibly long) slice, so switches are checked over a longer span.
        if let Some((prev_ts, prev)) = &self.prev_switch_snapshot
            && ts.saturating_sub(*prev_ts) >= SWITCH_STALL_MIN_NS.max(self.stall_min_interval)
        {
            for (cpu, (a, b)) in prev.iter().zip(&s.rows).enumerate() {
                let busy = a.nr_running.min(b.nr_running);
                if s.fields.has(RowFields::NR_SWITCHES)
                    && busy >= 2
                    && a.nr_switches == b.nr_switches
                {
                    self.ev.stalls.push(Stall {
                        cpu,
                        from_ns: *prev_ts,
                        to_ns: ts,
                        nr_running: busy,
                        what: "nr_switches",
                        at: self.index,
                    });
                }
            }
        }
        if self
            .prev_snapshot
            .as_ref()
            .is_none_or(|(p, _)| ts.saturating_sub(*p) >= self.stall_min_interval)
        {
            self.prev_snapshot = Some((ts, s.rows.clone()));
        }
        if self.prev_switch_snapshot.as_ref().is_none_or(|(p, _)| {
            ts.saturating_sub(*p) >= SWITCH_STALL_MIN_NS.max(self.stall_min_interval)
        }) {
            self.prev_switch_snapshot = Some((ts, s.rows.clone()));
        }
    }
}

#[cfg(test)]
mod tests;
