//! Unit tests of the verdict checks over hand-built evidence.
use super::*;
use crate::verdict::walk::WorkerTally;
use trace_format::metrics::{GroupMetrics, StepMetrics};
use trace_format::record::{Log2Hist, StepRef};

fn tally(run_ns: u64, died: bool) -> WorkerTally {
    WorkerTally {
        cgroup: "cg".into(),
        work: "spin".into(),
        samples: 10,
        iterations: 1,
        run_ns,
        frozen: false,
        unpinned: true,
        died,
    }
}

fn step_with(workers: &[(u32, WorkerTally)]) -> Evidence {
    Evidence {
        segments: vec![SegmentEvidence {
            label: "step 0".into(),
            step: Some(StepRef(0)),
            ended: true,
            failed: false,
            workers: workers.iter().cloned().collect(),
            rounds: Vec::new(),
        }],
        ..Evidence::default()
    }
}

#[test]
fn fairness_spread_leaves_out_a_worker_that_died() {
    let t = VerdictThresholds::default();
    // A worker that ended early ran less: that is not unfairness.
    let ev = step_with(&[(1, tally(1_000_000, false)), (2, tally(100_000, true))]);
    let v = fairness_spread(&ev, &t);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive, "{}", v.detail);
    // The same spread between two live workers fails.
    let ev = step_with(&[(1, tally(1_000_000, false)), (2, tally(100_000, false))]);
    assert_eq!(fairness_spread(&ev, &t).outcome, VerdictOutcome::Fail);
}

#[test]
fn cpuset_isolation_mentions_skips_only_when_there_were_some() {
    let mut ev = Evidence {
        isolation_checked: 5,
        ..Evidence::default()
    };
    ev.restricted_cgroups.insert("cg".into());
    let v = cpuset_isolation(&ev);
    assert_eq!(v.outcome, VerdictOutcome::Pass);
    assert!(!v.detail.contains("skipped"), "{}", v.detail);
    ev.isolation_skipped = 2;
    let v = cpuset_isolation(&ev);
    assert!(v.detail.contains("2 sample(s) straddling"), "{}", v.detail);
    assert!(!v.detail.contains("without CPU"), "{}", v.detail);
    // Samples that could not be checked are said, not hidden.
    ev.no_cpu_info = 3;
    let v = cpuset_isolation(&ev);
    assert!(
        v.detail.ends_with(", 3 sample(s) without CPU information"),
        "{}",
        v.detail
    );
}

fn g(weight: u32, workers: u32) -> ShareGroup {
    ShareGroup {
        name: String::new(),
        weight,
        workers,
        run_ns: 0,
    }
}

#[test]
fn water_fill_respects_weights_and_caps() {
    let a = water_fill(&[g(200, 2), g(100, 2)], 1);
    assert!(
        (a[0] - 2.0 / 3.0).abs() < 1e-9 && (a[1] - 1.0 / 3.0).abs() < 1e-9,
        "{a:?}"
    );
    // One worker can use one CPU at most: the light group takes the rest.
    let a = water_fill(&[g(1000, 1), g(100, 4)], 2);
    assert!(
        (a[0] - 1.0).abs() < 1e-9 && (a[1] - 1.0).abs() < 1e-9,
        "{a:?}"
    );
}

fn worker(cgroup: &str, run_ns: u64) -> WorkerTally {
    WorkerTally {
        cgroup: cgroup.into(),
        ..tally(run_ns, false)
    }
}

#[test]
fn fairness_spread_leaves_out_frozen_pinned_and_barely_sampled_workers() {
    let t = VerdictThresholds::default();
    let excluded = [
        WorkerTally {
            frozen: true,
            ..tally(100_000, false)
        },
        WorkerTally {
            unpinned: false,
            ..tally(100_000, false)
        },
        WorkerTally {
            samples: t.fairness_min_samples - 1,
            ..tally(100_000, false)
        },
    ];
    for other in excluded {
        let ev = step_with(&[(1, tally(1_000_000, false)), (2, other.clone())]);
        let v = fairness_spread(&ev, &t);
        assert_eq!(v.outcome, VerdictOutcome::Inconclusive, "{other:?}: {v:?}");
    }
}

#[test]
fn fairness_spread_judges_every_group_of_two_or_more() {
    let t = VerdictThresholds::default();
    // Three workers, one far behind: the group is judged and fails.
    let ev = step_with(&[
        (1, tally(1_000_000, false)),
        (2, tally(1_000_000, false)),
        (3, tally(100_000, false)),
    ]);
    let v = fairness_spread(&ev, &t);
    assert_eq!(v.outcome, VerdictOutcome::Fail, "{v:?}");
    assert!(v.detail.starts_with("1 of 1 group(s) above"), "{v:?}");
    // A ratio exactly at the limit passes.
    let ev = step_with(&[(1, tally(2_000_000, false)), (2, tally(1_000_000, false))]);
    let v = fairness_spread(&ev, &t);
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    assert!(v.detail.starts_with("1 group(s) within"), "{v:?}");
}

#[test]
fn fairness_spread_names_the_widest_group_first_seen_on_ties() {
    let t = VerdictThresholds::default();
    let ev = step_with(&[
        (1, worker("a", 1_200_000)),
        (2, worker("a", 1_000_000)),
        (3, worker("b", 1_800_000)),
        (4, worker("b", 1_000_000)),
        (5, worker("c", 1_100_000)),
        (6, worker("c", 1_000_000)),
    ]);
    let v = fairness_spread(&ev, &t);
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    assert!(v.detail.contains("widest: step 0 b spin"), "{v:?}");
    // Equal ratios: the first group (by name) stays the widest.
    let ev = step_with(&[
        (1, worker("a", 1_500_000)),
        (2, worker("a", 1_000_000)),
        (3, worker("b", 1_500_000)),
        (4, worker("b", 1_000_000)),
    ]);
    let v = fairness_spread(&ev, &t);
    assert!(v.detail.contains("widest: step 0 a spin"), "{v:?}");
}

/// A round where cgroups `a` (weight 200) and `b` (weight 100), one
/// saturating worker each, share CPU 0, with these run times.
fn round(a: u64, b: u64, clean: bool) -> BTreeMap<String, RoundGroup> {
    let g = |run_ns, weight| RoundGroup {
        run_ns,
        clean,
        cpus: Some(CpuList(vec![0])),
        weight,
        workers: 1,
        saturating: true,
    };
    BTreeMap::from([("a".to_string(), g(a, 200)), ("b".to_string(), g(b, 100))])
}

fn shares(rounds: Vec<BTreeMap<String, RoundGroup>>, tol: f64) -> Verdict {
    let mut ev = step_with(&[]);
    ev.segments[0].rounds = rounds;
    let t = VerdictThresholds {
        weight_share_tolerance_pct: tol,
        ..VerdictThresholds::default()
    };
    weight_share(&ev, &t, &CpuList(vec![0, 1]))
}

#[test]
fn weight_share_sums_inner_clean_rounds_only() {
    let even = || round(2_000, 1_000, true);
    let v = shares(vec![even(), even(), even(), even(), even()], 15.0);
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    assert!(v.detail.contains("over 3 rounds"), "{v:?}");
    // The first and last rounds are partial: a skewed one is not judged.
    let skewed = || round(100, 100_000, true);
    let v = shares(vec![skewed(), even(), even(), even(), skewed()], 15.0);
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    // Nor is a round straddling a cpuset change.
    let v = shares(
        vec![
            even(),
            even(),
            round(100, 100_000, false),
            even(),
            even(),
            even(),
        ],
        15.0,
    );
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    assert!(v.detail.contains("over 3 rounds"), "{v:?}");
    // A skewed inner round is.
    let v = shares(vec![even(), even(), skewed(), even(), even()], 15.0);
    assert_eq!(v.outcome, VerdictOutcome::Fail, "{v:?}");
}

#[test]
fn weight_share_tolerance_is_inclusive_and_idle_groups_are_not_judged() {
    // a gets 63.25 % where 2/3 is expected; the larger error is the limit,
    // computed as weight_share does.
    let exp = water_fill(&[g(200, 1), g(100, 1)], 1);
    let err = |obs: f64, e: f64| (100.0 * (obs / (e / (exp[0] + exp[1])) - 1.0)).abs();
    let limit = err(2_530.0 / 4_000.0, exp[0]).max(err(1_470.0 / 4_000.0, exp[1]));
    let r = || round(2_530, 1_470, true);
    let v = shares(vec![r(), r(), r(), r(), r()], limit);
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{v:?}");
    let v = shares(vec![r(), r(), r(), r(), r()], limit * 0.99);
    assert_eq!(v.outcome, VerdictOutcome::Fail, "{v:?}");
    // Saturating groups that never ran have no share to judge.
    let idle = || round(0, 0, true);
    let v = shares(vec![idle(), idle(), idle(), idle(), idle()], 15.0);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive, "{v:?}");
}

#[test]
fn weight_share_needs_more_demand_than_cpus() {
    // One worker each on two CPUs: each has a CPU of its own, weights do
    // not matter, and the split is not judged.
    let r = || {
        let mut r = round(1_000, 3_000, true);
        for g in r.values_mut() {
            g.cpus = Some(CpuList(vec![0, 1]));
        }
        r
    };
    let v = shares(vec![r(), r(), r(), r(), r()], 15.0);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive, "{v:?}");
}

/// A step whose cgroup "w" recorded `n` wake-ups of 100 ms each.
fn woken(step: Option<StepRef>, ended: bool, failed: bool, n: u64) -> StepMetrics {
    let mut wake = Log2Hist::default();
    for _ in 0..n {
        wake.record(100_000_000);
    }
    StepMetrics {
        step,
        ended,
        failed,
        groups: vec![GroupMetrics {
            cgroup: "w".into(),
            wake,
            ..GroupMetrics::default()
        }],
        ..StepMetrics::default()
    }
}

#[test]
fn wake_p99_judges_completed_real_steps_with_enough_wake_ups() {
    let t = VerdictThresholds::default();
    let judge = |s: StepMetrics| wake_p99(&RunMetrics { steps: vec![s] }, &t);
    let n = t.wake_min_count;
    let step = Some(StepRef(0));
    assert_eq!(
        judge(woken(step, true, false, n)).outcome,
        VerdictOutcome::Fail
    );
    for (what, s) in [
        ("one short", woken(step, true, false, n - 1)),
        ("not ended", woken(step, false, false, n)),
        ("failed", woken(step, true, true, n)),
        ("backdrop", woken(Some(StepRef::BACKDROP), true, false, n)),
        ("no step", woken(None, true, false, n)),
    ] {
        let v = judge(s);
        assert_eq!(v.outcome, VerdictOutcome::Inconclusive, "{what}: {v:?}");
    }
}

#[test]
fn runqueue_stall_needs_nr_running_and_a_clock_or_switch_count() {
    use trace_format::record::RowFields as F;
    let t = VerdictThresholds::default();
    let judge = |fields: u16| {
        let ev = Evidence {
            snapshots: 4,
            snapshot_pairs: 3,
            snapshot_fields: F(fields),
            ..Evidence::default()
        };
        runqueue_stall(&ev, &t).outcome
    };
    assert_eq!(judge(F::NR_RUNNING | F::CLOCK), VerdictOutcome::Pass);
    assert_eq!(judge(F::NR_RUNNING | F::NR_SWITCHES), VerdictOutcome::Pass);
    assert_eq!(judge(F::NR_RUNNING), VerdictOutcome::Inconclusive);
    assert_eq!(
        judge(F::CLOCK | F::NR_SWITCHES),
        VerdictOutcome::Inconclusive
    );
}
