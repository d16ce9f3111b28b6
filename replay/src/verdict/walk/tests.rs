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
