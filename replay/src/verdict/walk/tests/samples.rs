//! What the walk makes of single samples: gap and wait streaks, samples
//! without CPUs, pinned workers.
use super::*;

fn gap(ev: &Evidence, max_gap: u64) -> (VerdictOutcome, String) {
    let t = VerdictThresholds {
        max_gap,
        ..VerdictThresholds::default()
    };
    let v = checks::max_sched_gap(ev, &t);
    (v.outcome, v.detail)
}

/// A sample in which the worker neither ran nor waited (it slept) is no
/// scheduling gap, and it ends a streak of runnable-never-ran samples.
#[test]
fn a_sleeping_sample_is_no_gap_and_ends_a_streak() {
    let m = meta(B_ON_1, "[]");
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .sample_ns(100 * MS, 1, CPU1, 0, 0)
        .sample_ns(200 * MS, 1, CPU1, 0, 0)
        .walk(&m, 200 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.starts_with("no sample was runnable"), "{detail}");

    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .sample(100 * MS, 1, CPU1, 0)
        .sample_ns(200 * MS, 1, CPU1, 0, 0)
        .sample(300 * MS, 1, CPU1, 0)
        .walk(&m, 300 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.contains("streak 100.00ms (worker 1, b, ending 0.100s)"),
        "{detail}"
    );
}

/// Of two equally long streaks, max-sched-gap names the first.
#[test]
fn max_sched_gap_names_the_first_of_equal_streaks() {
    let m = meta(A_AND_B, "[]");
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "b")
        .rounds(1, 2, &[(0, CPU0, 100), (1, CPU1, 100)])
        .rounds(2, 3, &[(0, CPU0, 0), (1, CPU1, 100)])
        .rounds(3, 4, &[(0, CPU0, 100), (1, CPU1, 0)])
        .rounds(4, 5, &[(0, CPU0, 100), (1, CPU1, 100)])
        .walk(&m, 400 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.contains("streak 100.00ms (worker 0, a, ending 0.200s)"),
        "{detail}"
    );
}

/// The largest wait share counts whole intervals only: not a worker's first
/// sample (it may include waiting before the spawn was recorded), nor one
/// shorter than half the sample interval.
#[test]
fn the_largest_wait_share_counts_whole_intervals_only() {
    let m = meta(B_ON_1, "[]");
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .sample_ns(100 * MS, 1, CPU1, 10 * MS, 90 * MS)
        .sample_ns(200 * MS, 1, CPU1, 80 * MS, 20 * MS)
        .sample_ns(210 * MS, 1, CPU1, 5 * MS, 5 * MS)
        .sample_ns(300 * MS, 1, CPU1, 60 * MS, 30 * MS)
        .walk(&m, 300 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.ends_with("largest wait in one interval 33% (worker 1)"),
        "{detail}"
    );
}

/// Even where the meta gives no sample interval, two samples at the same
/// instant make no interval to share waiting over.
#[test]
fn a_zero_length_interval_has_no_wait_share() {
    let mut m = meta(B_ON_1, "[]");
    m.sample_interval_ns = 0;
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .sample_ns(100 * MS, 1, CPU1, 90 * MS, 10 * MS)
        .sample_ns(200 * MS, 1, CPU1, 80 * MS, 20 * MS)
        .sample_ns(200 * MS, 1, CPU1, 0, 0)
        .walk(&m, 200 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.ends_with("largest wait in one interval 20% (worker 1)"),
        "{detail}"
    );
}

/// A sample that reports no CPUs says nothing about isolation.
#[test]
fn a_sample_without_cpus_is_not_judged_for_isolation() {
    let m = meta(B_ON_1, "[]");
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .rounds(1, 3, &[(1, 0, 100)])
        .walk(&m, 200 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
    assert_eq!(detail, "no sample reported the CPUs it ran on");
    // Among checked samples, the unchecked ones are counted in the detail.
    let ev = Run::begin()
        .spawn(MS, 1, "b")
        .rounds(1, 4, &[(1, 0b10, 100)])
        .sample(400 * MS, 1, 0, 100)
        .walk(&m, 500 * MS);
    let (outcome, detail) = isolation(&ev);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.ends_with(", 1 sample(s) without CPU information"),
        "{detail}"
    );
}

/// Of two equal largest wait shares, max-sched-gap names the first.
#[test]
fn the_first_of_equal_wait_shares_is_named() {
    let m = meta(A_AND_B, "[]");
    let ev = Run::begin()
        .spawn(MS, 0, "a")
        .spawn(MS, 1, "b")
        .rounds(1, 2, &[(0, CPU0, 100), (1, CPU1, 100)])
        .rounds(2, 3, &[(0, CPU0, 70), (1, CPU1, 90)])
        .rounds(3, 4, &[(0, CPU0, 90), (1, CPU1, 70)])
        .walk(&m, 300 * MS);
    let (outcome, detail) = gap(&ev, 150 * MS);
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(
        detail.ends_with("largest wait in one interval 30% (worker 0)"),
        "{detail}"
    );
}

/// Pinned workers are placed by their pinning, not by the cgroup: fairness
/// does not compare them, however unequal their run times.
#[test]
fn pinned_workers_are_not_judged_for_fairness() {
    let m = meta(
        r#"{ name = "p", works = [{ work = "spin_wait", workers = 2, affinity = "single_cpu" }] }"#,
        "[]",
    );
    let ev = Run::begin()
        .spawn(MS, 0, "p")
        .spawn(MS, 1, "p")
        .rounds(1, 5, &[(0, CPU0, 90), (1, CPU1, 10)])
        .walk(&m, 400 * MS);
    let (outcome, detail) = fairness(&ev);
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
}
