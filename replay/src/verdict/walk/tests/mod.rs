//! Unit tests of what the walk concludes about a cgroup's workers.
use super::*;
use trace_format::scenario::{AffinityIntent, CgroupDef, SchedPolicy, WorkSpec, WorkType};

fn state(def: CgroupDef) -> CgroupState {
    CgroupState::from_def(&def, &Topology::parse("1n1l2c1t").unwrap(), 0)
}

fn spin() -> WorkSpec {
    WorkSpec::new(WorkType::SpinWait).workers(1)
}

#[test]
fn saturating_means_cpu_bound_unlimited_and_unpinned() {
    assert!(state(CgroupDef::new("a").work(spin())).saturating("spin_wait"));
    // Another work's settings do not matter to this one.
    let mixed = CgroupDef::new("a").work(spin()).work(
        WorkSpec::new(WorkType::IoSleep { sleep_us: 100 })
            .workers(1)
            .nice(5),
    );
    assert!(state(mixed).saturating("spin_wait"));
    let not = [
        (
            "blocking work",
            CgroupDef::new("a").work(spin()),
            "io_sleep",
        ),
        (
            "quota",
            CgroupDef::new("a").cpu_max(50_000, 100_000).work(spin()),
            "spin_wait",
        ),
        (
            "nice",
            CgroupDef::new("a").work(spin().nice(5)),
            "spin_wait",
        ),
        (
            "policy",
            CgroupDef::new("a").work(spin().policy(SchedPolicy::Fifo(1))),
            "spin_wait",
        ),
        (
            "pinned",
            CgroupDef::new("a").work(spin().affinity(AffinityIntent::SingleCpu)),
            "spin_wait",
        ),
    ];
    for (what, def, work) in not {
        assert!(!state(def).saturating(work), "{what}");
    }
}

#[test]
fn unpinned_needs_every_spec_of_the_work_placed_alike() {
    assert!(state(CgroupDef::new("a").work(spin()).work(spin())).unpinned("spin_wait"));
    let pinned = CgroupDef::new("a").work(spin().affinity(AffinityIntent::SingleCpu));
    assert!(!state(pinned).unpinned("spin_wait"));
    let mixed_nice = CgroupDef::new("a").work(spin()).work(spin().nice(3));
    assert!(!state(mixed_nice).unpinned("spin_wait"));
}

// ---- The walk over records: what the verdicts conclude when ops change cgroups.

use super::super::checks;
use crate::thresholds::VerdictThresholds;
use trace_format::meta::{Backend, HostFingerprint, KernelIdentity, SCHEMA_VERSION};
use trace_format::record::{
    ExitHow, OpApplied, SIGKILL, StepOutcome, VerdictOutcome, WorkerExited, WorkerSpawned,
};
use trace_format::scenario::Scenario;

const MS: u64 = 1_000_000;

/// A one-step run on two CPUs (`1n1l2c1t`, 100 ms samples) whose step sets up
/// `setup` (TOML cgroup tables) and applies `ops` (a TOML array).
fn meta(setup: &str, ops: &str) -> Meta {
    // A loop hold runs the ops after the setup; without ops, a plain hold.
    let hold = if ops == "[]" {
        "{ frac = 1.0 }"
    } else {
        r#"{ loop = "1s" }"#
    };
    let text = format!(
        r#"
name = "walk-unit"
topology = "1n1l2c1t"
duration = "2s"
sample_interval = "100ms"

[[steps]]
name = "main"
setup = [{setup}]
hold = {hold}
ops = {ops}
"#
    );
    let scenario = Scenario::from_toml_str(&text).expect("scenario parses");
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: "walk-tests".into(),
        run_id: [7; 16],
        started_unix_ns: 0,
        topology: scenario.topology,
        scenario,
        kernel: KernelIdentity {
            release: "6.12.0-test".into(),
            build_id: vec![0xab; 20],
            config_hash: "c0ffee".into(),
        },
        scheduler: None,
        backend: Backend::Synthetic,
        host: HostFingerprint {
            hostname: "test".into(),
            cpu_model: "synthetic".into(),
            cpus: 2,
            memory_mib: 1024,
            os: "linux".into(),
        },
        sample_interval_ns: 100 * MS,
        snapshot_interval_ns: 0,
        notes: vec![],
        acceleration: None,
    }
}

/// Records of step 0, in order.
struct Run(Vec<(u64, Record)>);

impl Run {
    /// Step 0 begins at 0 (its setup cgroups are created then).
    fn begin() -> Self {
        Run(vec![(0, Record::StepBegin { step: StepRef(0) })])
    }

    fn spawn(mut self, ts: u64, worker: u32, cgroup: &str) -> Self {
        self.0.push((
            ts,
            Record::WorkerSpawned(WorkerSpawned {
                worker,
                pid: 100 + worker,
                step: StepRef(0),
                cgroup: cgroup.into(),
                work: "spin_wait".into(),
            }),
        ));
        self
    }

    /// Op `index` of step 0 applied at `ts`, or failed there.
    fn op(mut self, ts: u64, index: u16, ok: bool) -> Self {
        let outcome = if ok {
            OpOutcome::Done
        } else {
            OpOutcome::Failed {
                error: "EINVAL".into(),
            }
        };
        self.0.push((
            ts,
            Record::OpApplied(OpApplied {
                step: StepRef(0),
                op: index,
                round: 0,
                duration_ns: 12_000,
                outcome,
            }),
        ));
        self
    }

    /// `worker` ran `run_ms` of the last 100 ms on the CPUs of mask `cpus`
    /// (1000 iterations per ms run), waiting the rest.
    fn sample(self, ts: u64, worker: u32, cpus: u64, run_ms: u64) -> Self {
        self.sample_ns(ts, worker, cpus, run_ms * MS, (100 - run_ms) * MS)
    }

    /// `worker` ran `run_ns` and waited `wait_ns` since its last sample.
    fn sample_ns(mut self, ts: u64, worker: u32, cpus: u64, run_ns: u64, wait_ns: u64) -> Self {
        self.0.push((
            ts,
            Record::WorkerSample(WorkerSample {
                worker,
                iterations: run_ns / 1000,
                run_ns,
                wait_ns,
                timeslices: 25,
                migrations: 0,
                voluntary_switches: 0,
                involuntary_switches: 24,
                cpus_seen: vec![cpus],
                wake: None,
            }),
        ));
        self
    }

    /// Rounds at 100 ms × `from..to`: each `(worker, cpus, run_ms)` sampled.
    fn rounds(mut self, from: u64, to: u64, each: &[(u32, u64, u64)]) -> Self {
        for k in from..to {
            for &(w, cpus, run_ms) in each {
                self = self.sample(k * 100 * MS, w, cpus, run_ms);
            }
        }
        self
    }

    fn exited(mut self, ts: u64, worker: u32, cgroup: &str) -> Self {
        self.0.push((
            ts,
            Record::WorkerExited(WorkerExited {
                worker,
                pid: 100 + worker,
                cgroup: cgroup.into(),
                how: ExitHow::Killed { signal: SIGKILL },
            }),
        ));
        self
    }

    fn end(mut self, ts: u64, outcome: StepOutcome) -> Self {
        self.0.push((
            ts,
            Record::StepEnd {
                step: StepRef(0),
                outcome,
            },
        ));
        self
    }

    /// Ends the step as completed at `ts` and walks the records.
    fn walk(self, meta: &Meta, ts: u64) -> Evidence {
        self.end(ts, StepOutcome::Completed).walk_open(meta)
    }

    /// Walks the records as they are.
    fn walk_open(self, meta: &Meta) -> Evidence {
        let mut w = Walker::new(meta, 100 * MS);
        for (ts, r) in &self.0 {
            w.observe(*ts, r);
        }
        w.finish()
    }
}

fn isolation(ev: &Evidence) -> (VerdictOutcome, String) {
    let v = checks::cpuset_isolation(ev);
    (v.outcome, v.detail)
}

fn starved(ev: &Evidence) -> (VerdictOutcome, String) {
    let v = checks::not_starved(ev);
    (v.outcome, v.detail)
}

fn fairness(ev: &Evidence) -> (VerdictOutcome, String) {
    let v = checks::fairness_spread(ev, &VerdictThresholds::default());
    (v.outcome, v.detail)
}

fn weight(ev: &Evidence, meta: &Meta) -> (VerdictOutcome, String) {
    let all = meta.topology.all_cpus();
    let v = checks::weight_share(ev, &VerdictThresholds::default(), &all);
    (v.outcome, v.detail)
}

const CPU0: u64 = 0b01;
const CPU1: u64 = 0b10;

/// Cgroups `a` and `b` on every CPU, one spinner each.
const A_AND_B: &str = r#"{ name = "a", works = [{ work = "spin_wait", workers = 1 }] },
    { name = "b", works = [{ work = "spin_wait", workers = 1 }] }"#;

/// Cgroup `b` may use CPU 1 only, and holds worker 1 (spawned at 1 ms).
const B_ON_1: &str =
    r#"{ name = "b", cpuset = { exact = [1] }, works = [{ work = "spin_wait", workers = 1 }] }"#;

/// A set_cpuset that failed leaves the old cpuset in force: worker 1 staying
/// on CPU 1 is within it. Had it been applied, CPU 1 would be a violation.
#[test]
fn a_failed_op_leaves_the_old_cpuset_in_force() {
    let m = meta(
        B_ON_1,
        r#"[{ set_cpuset = { cgroup = "b", cpuset = { exact = [0] } } }]"#,
    );
    let run = |ok| {
        Run::begin()
            .spawn(MS, 1, "b")
            .rounds(1, 3, &[(1, CPU1, 100)])
            .op(250 * MS, 0, ok)
            .rounds(3, 6, &[(1, CPU1, 100)])
            .walk(&m, 500 * MS)
    };
    let (outcome, detail) = isolation(&run(false));
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("5 samples within"), "{detail}");
    assert!(!detail.contains("straddling"), "{detail}");

    let (outcome, detail) = isolation(&run(true));
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    // The sample spanning the op is skipped; the two after it are outside.
    assert!(detail.starts_with("2 of 4 samples"), "{detail}");
    assert!(detail.contains("1 sample(s) straddling"), "{detail}");
    assert!(detail.contains("allowed 0"), "{detail}");
}

/// A worker's first sample counts from its spawn: one spawned after its
/// cgroup got its cpuset is held to it from the first sample on.
#[test]
fn a_workers_first_sample_is_checked_against_its_cpuset() {
    let m = meta(B_ON_1, "[]");
    let ev = Run::begin()
        .spawn(10 * MS, 1, "b")
        .sample(100 * MS, 1, CPU0, 100)
        .walk(&m, 100 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.starts_with("1 of 1 samples"), "{detail}");
    assert!(!detail.contains("straddling"), "{detail}");
}

/// After swap_cpusets each cgroup's workers belong on the other's old CPUs:
/// there they pass, on their own old ones they fail.
#[test]
fn swap_cpusets_exchanges_where_each_cgroup_may_run() {
    let m = meta(
        r#"{ name = "a", cpuset = { exact = [0] }, works = [{ work = "spin_wait", workers = 1 }] },
           { name = "b", cpuset = { exact = [1] }, works = [{ work = "spin_wait", workers = 1 }] }"#,
        r#"[{ swap_cpusets = { a = "a", b = "b" } }]"#,
    );
    let run = |a_after: u64| {
        Run::begin()
            .spawn(MS, 0, "a")
            .spawn(MS, 1, "b")
            .rounds(1, 3, &[(0, CPU0, 100), (1, CPU1, 100)])
            .op(250 * MS, 0, true)
            .rounds(3, 6, &[(0, a_after, 100), (1, CPU0, 100)])
            .walk(&m, 500 * MS)
    };
    let (outcome, detail) = isolation(&run(CPU1));
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("restricted: a, b"), "{detail}");
    assert!(detail.contains("2 sample(s) straddling"), "{detail}");

    let (outcome, detail) = isolation(&run(CPU0));
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.starts_with("2 of 8 samples"), "{detail}");
    assert!(detail.contains("worker 0 (a)"), "{detail}");
    assert!(detail.contains("allowed 1"), "{detail}");
    assert!(!detail.contains("worker 1 (b)"), "{detail}");
}

/// After clear_cpuset the cgroup inherits every CPU: CPU 0 is no violation.
#[test]
fn clear_cpuset_allows_every_cpu() {
    let m = meta(B_ON_1, r#"[{ clear_cpuset = { cgroup = "b" } }]"#);
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .rounds(1, 3, &[(1, CPU1, 100)])
        .op(250 * MS, 0, true)
        .rounds(3, 6, &[(1, CPU0, 100)])
        .walk(&m, 500 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("4 samples within"), "{detail}");
}

/// After remove_cgroup nothing holds a sample still reported under the
/// removed cgroup's name to its old cpuset.
#[test]
fn a_removed_cgroup_restricts_nothing() {
    let m = meta(B_ON_1, r#"[{ remove_cgroup = { cgroup = "b" } }]"#);
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .rounds(1, 3, &[(1, CPU1, 100)])
        .op(250 * MS, 0, true)
        .rounds(3, 5, &[(1, CPU0, 100)])
        .walk(&m, 400 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("4 samples within"), "{detail}");
}

/// A cgroup made by add_cgroup_def takes the def's cpuset: its workers are
/// held to it (after the sample that spans its creation).
#[test]
fn add_cgroup_def_brings_its_cpuset() {
    let m = meta(
        "",
        r#"[{ add_cgroup_def = { name = "c", cpuset = { exact = [1] }, works = [{ work = "spin_wait", workers = 1 }] } }]"#,
    );
    let run = |cpus| {
        Run::begin()
            .spawn(50 * MS, 2, "c")
            .op(50 * MS, 0, true)
            .rounds(1, 4, &[(2, cpus, 100)])
            .walk(&m, 300 * MS)
    };
    let (outcome, detail) = isolation(&run(CPU1));
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("restricted: c"), "{detail}");
    let (outcome, detail) = isolation(&run(CPU0));
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.starts_with("2 of 2 samples"), "{detail}");
    assert!(detail.contains("worker 2 (c)"), "{detail}");
}

/// A cgroup removed and made again by add_cgroup starts afresh at the op:
/// no cpuset, so any CPU is allowed after it, and the sample spanning it is
/// not judged (a worker still reported under the name is not held to the
/// old cpuset).
#[test]
fn a_cgroup_made_again_by_add_cgroup_starts_afresh() {
    let m = meta(
        B_ON_1,
        r#"[{ remove_cgroup = { cgroup = "b" } }, { add_cgroup = { name = "b" } }]"#,
    );
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .rounds(1, 3, &[(1, CPU1, 100)])
        .op(250 * MS, 0, true)
        .op(250 * MS, 1, true)
        .rounds(3, 6, &[(1, CPU0, 100)])
        .walk(&m, 500 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("4 samples within"), "{detail}");
    assert!(detail.contains("1 sample(s) straddling"), "{detail}");
}

/// A cgroup made by add_cgroup has the default weight 100 and no limits:
/// when src's spinners are moved into it, it contends with `a` (also
/// weight 100) for the two CPUs, and equal shares pass weight-share.
#[test]
fn an_added_cgroup_contends_at_the_default_weight() {
    let m = meta(
        r#"{ name = "a", works = [{ work = "spin_wait", workers = 2 }] },
           { name = "src", works = [{ work = "spin_wait", workers = 2 }] }"#,
        r#"[{ add_cgroup = { name = "dst" } }, { move_all_tasks = { from = "src", to = "dst" } }]"#,
    );
    let ev = Run::begin()
        .spawn(0, 0, "a")
        .spawn(0, 1, "a")
        .spawn(0, 2, "src")
        .spawn(0, 3, "src")
        .op(10 * MS, 0, true)
        .op(10 * MS, 1, true)
        .rounds(
            1,
            8,
            &[(0, 0b11, 50), (1, 0b11, 50), (2, 0b11, 50), (3, 0b11, 50)],
        )
        .walk(&m, 700 * MS);
    let (outcome, detail) = weight(&ev, &m);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("a w100 50.0% (expected 50.0%"), "{detail}");
    assert!(
        detail.contains("dst w100 50.0% (expected 50.0%"),
        "{detail}"
    );
}

/// Workers of a frozen cgroup are not judged for starvation.
#[test]
fn a_frozen_cgroup_is_not_judged_for_starvation() {
    let m = meta(A_AND_B, r#"[{ freeze_cgroup = { cgroup = "b" } }]"#);
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "b")
        .op(50 * MS, 0, true)
        .rounds(1, 4, &[(0, 0b11, 100), (1, 0b11, 0)])
        .walk(&m, 300 * MS);
    let (outcome, detail) = starved(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.starts_with("1 worker-steps all progressed"),
        "{detail}"
    );
}

/// A cgroup frozen and thawed between two samples still had its workers'
/// run times disturbed: fairness leaves its workers out and judges only the
/// other cgroup's.
#[test]
fn a_cgroup_frozen_between_samples_is_not_judged_for_fairness() {
    let m = meta(
        r#"{ name = "a", works = [{ work = "spin_wait", workers = 2 }] },
           { name = "b", works = [{ work = "spin_wait", workers = 2 }] }"#,
        r#"[{ freeze_cgroup = { cgroup = "b" } }, { unfreeze_cgroup = { cgroup = "b" } }]"#,
    );
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "a")
        .spawn(MS, 2, "b")
        .spawn(MS, 3, "b")
        .rounds(
            1,
            3,
            &[(0, 0b11, 50), (1, 0b11, 50), (2, 0b11, 50), (3, 0b11, 50)],
        )
        .op(250 * MS, 0, true)
        .op(280 * MS, 1, true)
        .rounds(
            3,
            6,
            &[(0, 0b11, 50), (1, 0b11, 50), (2, 0b11, 80), (3, 0b11, 10)],
        )
        .walk(&m, 500 * MS);
    let (outcome, detail) = fairness(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("1 group(s) within"), "{detail}");
    assert!(detail.contains(" a spin_wait ×2"), "{detail}");
}

/// Only a real step that ran to its end is judged: worker 1's lack of
/// progress fails not-starved there, but not in a step that failed or
/// never ended.
#[test]
fn only_steps_that_ended_well_are_judged() {
    let m = meta(B_ON_1, "[]");
    let run = || Run::begin().spawn(MS, 1, "b").rounds(1, 4, &[(1, CPU1, 0)]);
    let (outcome, detail) = starved(&run().walk(&m, 300 * MS));
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.contains("worker 1 (b, spin_wait)"), "{detail}");

    let failed = StepOutcome::Failed {
        error: "op failed".into(),
    };
    for (what, ev) in [
        ("failed", run().end(300 * MS, failed).walk_open(&m)),
        ("never ended", run().walk_open(&m)),
    ] {
        let (outcome, detail) = starved(&ev);
        assert_eq!(outcome, VerdictOutcome::Inconclusive, "{what}: {detail}");
        assert!(detail.starts_with("no worker samples"), "{what}: {detail}");
    }
}

/// A worker killed before its first sample is named, with its cgroup and
/// work, as having made no progress because it died (not as starved).
#[test]
fn a_worker_that_died_before_its_first_sample_is_named_as_dead() {
    let m = meta(A_AND_B, "[]");
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "b")
        .exited(20 * MS, 1, "b")
        .rounds(1, 4, &[(0, 0b11, 100)])
        .walk(&m, 300 * MS);
    let (outcome, detail) = starved(&ev);
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
    assert!(
        detail.starts_with(
            "1 worker-step(s) made no progress because the worker died: worker 1 (b, spin_wait) in "
        ),
        "{detail}"
    );
}

/// Cgroups `a` and `dst` (spinners moved in from `src`) share both CPUs at
/// equal weights, `dst`'s workers running `dst_run[k]` ms of round k + 1;
/// `dst` is frozen around the sample of round `frozen`, if any.
fn contend(dst_run: &[u64], frozen: Option<u64>) -> Evidence {
    let m = meta(
        r#"{ name = "a", works = [{ work = "spin_wait", workers = 2 }] },
           { name = "src", works = [{ work = "spin_wait", workers = 2 }] }"#,
        r#"[{ add_cgroup = { name = "dst" } }, { move_all_tasks = { from = "src", to = "dst" } },
            { freeze_cgroup = { cgroup = "dst" } }, { unfreeze_cgroup = { cgroup = "dst" } }]"#,
    );
    let mut run = Run::begin()
        .spawn(0, 0, "a")
        .spawn(0, 1, "a")
        .spawn(0, 2, "src")
        .spawn(0, 3, "src")
        .op(10 * MS, 0, true)
        .op(10 * MS, 1, true);
    for (k, &d) in (1u64..).zip(dst_run) {
        if frozen == Some(k) {
            run = run.op(k * 100 * MS - 50 * MS, 2, true);
        }
        let a = 100 - d;
        run = run.rounds(
            k,
            k + 1,
            &[(0, 0b11, a), (1, 0b11, a), (2, 0b11, d), (3, 0b11, d)],
        );
        if frozen == Some(k) {
            run = run.op(k * 100 * MS + 50 * MS, 3, true);
        }
    }
    let n = u64::try_from(dst_run.len()).expect("few rounds");
    run.walk(&m, n * 100 * MS)
}

/// A round in which a cgroup was frozen is left out of weight-share (its
/// workers could not compete): the remaining rounds show equal shares.
#[test]
fn weight_share_leaves_out_rounds_with_a_frozen_cgroup() {
    let m = meta(B_ON_1, "[]");
    let ev = contend(&[50, 50, 50, 0, 50, 50, 50, 50], Some(4));
    let (outcome, detail) = weight(&ev, &m);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("over 5 rounds"), "{detail}");
}

/// A cgroup under a cpu.max quota does not saturate its CPUs: weights say
/// nothing about its share, so weight-share has nothing to judge.
#[test]
fn a_capped_cgroup_is_not_judged_for_weight_share() {
    let m = meta(
        r#"{ name = "a", works = [{ work = "spin_wait", workers = 2 }] },
           { name = "b", cpu_max = { quota_us = 20000, period_us = 100000 }, works = [{ work = "spin_wait", workers = 2 }] }"#,
        "[]",
    );
    let ev = Run::begin()
        .spawn(0, 0, "a")
        .spawn(0, 1, "a")
        .spawn(0, 2, "b")
        .spawn(0, 3, "b")
        .rounds(
            1,
            8,
            &[(0, 0b11, 80), (1, 0b11, 80), (2, 0b11, 20), (3, 0b11, 20)],
        )
        .walk(&m, 700 * MS);
    let (outcome, detail) = weight(&ev, &m);
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
}

/// Cgroups on disjoint cpusets do not contend: weight-share has nothing to
/// judge, whatever their weights.
#[test]
fn cgroups_on_disjoint_cpusets_are_not_judged_for_weight_share() {
    let m = meta(
        r#"{ name = "a", cpuset = { exact = [0] }, cpu_weight = 200, works = [{ work = "spin_wait", workers = 2 }] },
           { name = "b", cpuset = { exact = [1] }, works = [{ work = "spin_wait", workers = 2 }] }"#,
        "[]",
    );
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "a")
        .spawn(MS, 2, "b")
        .spawn(MS, 3, "b")
        .rounds(
            1,
            8,
            &[(0, CPU0, 50), (1, CPU0, 50), (2, CPU1, 50), (3, CPU1, 50)],
        )
        .walk(&m, 700 * MS);
    let (outcome, detail) = weight(&ev, &m);
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
}

mod samples;
mod snapshots;
