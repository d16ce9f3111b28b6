//! One test per validation rule for workers and work-type parameters; see
//! scenario_validate.rs.

use trace_format::scenario::*;

mod validate_common;
use validate_common::*;

// ---- workers ----

#[test]
fn workers_and_pct_both_set() {
    assert_err(
        &with_work(spin(2).workers_pct(50)),
        &[
            STEP0,
            "works[0]",
            "workers = 2 and workers_pct = 50 are both set",
        ],
    );
}

#[test]
fn workers_neither_set() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::SpinWait)),
        &[STEP0, "works[0]", "workers is not set"],
    );
}

#[test]
fn workers_zero() {
    assert_err(&with_work(spin(0)), &[STEP0, "works[0]", "workers = 0"]);
}

#[test]
fn workers_too_many() {
    assert_err(
        &with_work(spin(MAX_WORKERS + 1)),
        &[STEP0, "works[0]", "workers = 4097 is out of range 1..=4096"],
    );
}

#[test]
fn workers_pct_zero() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::SpinWait).workers_pct(0)),
        &[STEP0, "workers_pct = 0 is out of range 1..=100"],
    );
}

#[test]
fn workers_pct_above_100() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::SpinWait).workers_pct(150)),
        &[STEP0, "workers_pct = 150 is out of range 1..=100"],
    );
}

#[test]
fn workers_pct_in_runner_cgroup() {
    let sc = with_ops(vec![Op::spawn_in_runner(
        WorkSpec::new(WorkType::SpinWait).workers_pct(50),
    )]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (spawn), work",
            "workers_pct needs a cgroup",
        ],
    );
}

#[test]
fn paired_work_needs_even_workers() {
    let w = WorkSpec::new(WorkType::FutexPingPong).workers(3);
    assert_err(
        &with_work(w),
        &[
            STEP0,
            "workers = 3 is not a multiple of 2",
            "futex_ping_pong",
        ],
    );
}

#[test]
fn nice_out_of_range() {
    assert_err(
        &with_work(spin(1).nice(20)),
        &[STEP0, "nice = 20 is out of range -20..=19"],
    );
}

#[test]
fn rt_priority_zero() {
    assert_err(
        &with_work(spin(1).policy(SchedPolicy::Fifo(0))),
        &[STEP0, "policy priority = 0 is out of range 1..=99"],
    );
}

#[test]
fn rt_priority_too_high() {
    assert_err(
        &with_work(spin(1).policy(SchedPolicy::RoundRobin(100))),
        &[STEP0, "policy priority = 100"],
    );
}

#[test]
fn comm_too_long() {
    assert_err(
        &with_work(spin(1).comm("a-very-long-comm-name")),
        &[STEP0, "comm is 21 bytes long; at most 15"],
    );
}

#[test]
fn comm_empty() {
    assert_err(&with_work(spin(1).comm("")), &[STEP0, "comm is empty"]);
}

#[test]
fn affinity_cpu_out_of_range() {
    let w = spin(1).affinity(AffinityIntent::Cpus(CpuList::new([9])));
    assert_err(
        &with_work(w),
        &[STEP0, "affinity is unusable: CPU 9 does not exist"],
    );
}

#[test]
fn affinity_outside_cgroup_cpuset() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::Llc(0))
        .work(spin(1).affinity(AffinityIntent::Cpus(CpuList::new([3]))));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "affinity is unusable: none of CPUs 3 is in the cgroup's cpuset 0-1",
        ],
    );
}

#[test]
fn affinity_cpus_empty() {
    assert_err(
        &with_work(spin(1).affinity(AffinityIntent::Cpus(CpuList::default()))),
        &[STEP0, "affinity is empty"],
    );
}

#[test]
fn set_affinity_op_outside_cpuset() {
    let mut sc = with_ops(vec![Op::set_affinity(
        "bg",
        AffinityIntent::Cpus(CpuList::new([0])),
    )]);
    sc.backdrop.cgroups[0].cpuset = Some(CpusetSpec::Llc(1));
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (set_affinity)",
            "affinity is unusable: none of CPUs 0",
        ],
    );
}

// ---- work type parameters ----

#[test]
fn io_sleep_zero() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::IoSleep { sleep_us: 0 }).workers(1)),
        &[STEP0, "work.sleep_us = 0"],
    );
}

#[test]
fn bursty_zero_burst() {
    assert_err(
        &with_work(
            WorkSpec::new(WorkType::Bursty {
                burst_us: 0,
                sleep_us: 10,
            })
            .workers(1),
        ),
        &[STEP0, "work.burst_us = 0"],
    );
}

#[test]
fn cache_pressure_zero() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::CachePressure { kib: 0 }).workers(1)),
        &[STEP0, "work.kib = 0"],
    );
}

#[test]
fn fan_out_zero() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::FutexFanOut { fan: 0 }).workers(1)),
        &[STEP0, "work.fan = 0"],
    );
}

#[test]
fn mutex_holders_zero() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::MutexContention { holders: 0 }).workers(2)),
        &[STEP0, "work.holders = 0"],
    );
}

#[test]
fn mutex_holders_not_below_workers() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::MutexContention { holders: 2 }).workers(2)),
        &[STEP0, "work.holders = 2 is not below workers = 2"],
    );
}

#[test]
fn sequence_empty() {
    assert_err(
        &with_work(WorkSpec::new(WorkType::Sequence(vec![])).workers(1)),
        &[STEP0, "work is empty"],
    );
}

#[test]
fn sequence_phase_zero_duration() {
    let seq = WorkType::Sequence(vec![WorkPhase {
        work: WorkType::SpinWait,
        duration_ns: 0,
    }]);
    assert_err(
        &with_work(WorkSpec::new(seq).workers(1)),
        &[STEP0, "work.phases[0].duration = 0"],
    );
}

#[test]
fn sequence_nested() {
    let inner = WorkType::Sequence(vec![WorkPhase {
        work: WorkType::SpinWait,
        duration_ns: 1,
    }]);
    let seq = WorkType::Sequence(vec![WorkPhase {
        work: inner,
        duration_ns: 1_000,
    }]);
    assert_err(
        &with_work(WorkSpec::new(seq).workers(1)),
        &[STEP0, "work.phases[0] nests a sequence"],
    );
}

#[test]
fn sequence_phase_parameters_checked() {
    let seq = WorkType::Sequence(vec![WorkPhase {
        work: WorkType::IoSleep { sleep_us: 0 },
        duration_ns: 1_000,
    }]);
    assert_err(
        &with_work(WorkSpec::new(seq).workers(1)),
        &[STEP0, "work.phases[0].sleep_us = 0"],
    );
}
