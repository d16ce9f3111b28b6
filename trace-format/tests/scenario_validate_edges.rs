//! Every validation range at both edges: the value at a limit is accepted,
//! one past it is refused with the field named. Catches `..=` turned into
//! `..`, a limit moved by one, or a bound dropped.

use trace_format::scenario::limits::*;
use trace_format::scenario::*;

mod validate_common;
use validate_common::*;

/// `ok` raises no problem with `field`; `bad` is refused naming it.
#[track_caller]
fn edge(field: &str, ok: &Scenario, bad: &Scenario) {
    let ok_errs: Vec<String> = ok.validate_all().iter().map(ToString::to_string).collect();
    assert!(
        !ok_errs.iter().any(|e| e.contains(field)),
        "{field}: value at the limit refused:\n{}",
        ok_errs.join("\n")
    );
    assert_err(bad, &[field]);
}

/// A range `lo..=hi` for `field`, through `make(value)`.
#[track_caller]
fn range<T: Copy>(field: &str, lo: T, hi: T, below: T, above: T, make: impl Fn(T) -> Scenario) {
    edge(field, &make(lo), &make(below));
    edge(field, &make(hi), &make(above));
}

fn def(d: CgroupDef) -> Scenario {
    with_def(d.work(spin(1)))
}

#[test]
fn cgroup_ranges() {
    let w = |f: fn(CgroupDef, u32) -> CgroupDef| move |v| def(f(CgroupDef::new("a"), v));
    range("cpu.weight =", 1, 10_000, 0, 10_001, w(CgroupDef::weight));
    range("io.weight =", 1, 10_000, 0, 10_001, w(CgroupDef::io_weight));
    range(
        "pids.max",
        1,
        MAX_PIDS,
        0,
        MAX_PIDS + 1,
        w(CgroupDef::pids_max),
    );
    let period = CpuMax::PERIOD_RANGE_US;
    range(
        "cpu.max period_us",
        *period.start(),
        *period.end(),
        period.start() - 1,
        period.end() + 1,
        |p| def(CgroupDef::new("a").cpu_max(1_000, p)),
    );
    range(
        "cpu.max quota_us",
        CpuMax::MIN_QUOTA_US,
        MAX_QUOTA_US,
        CpuMax::MIN_QUOTA_US - 1,
        MAX_QUOTA_US + 1,
        |q| def(CgroupDef::new("a").cpu_max(q, 100_000)),
    );
}

#[test]
fn worker_ranges() {
    range("workers_pct", 1, 100, 0, 101, |p| {
        with_work(WorkSpec::new(WorkType::SpinWait).workers_pct(p))
    });
    edge("workers", &with_work(spin(1)), &with_work(spin(0)));
    edge(
        "workers =",
        &with_work(spin(MAX_WORKERS)),
        &with_work(spin(MAX_WORKERS + 1)),
    );
    range("nice", -20, 19, -21, 20, |n| with_work(spin(1).nice(n)));
    range("policy priority", 1, 99, 0, 100, |p| {
        with_work(spin(1).policy(SchedPolicy::Fifo(p)))
    });
    range("policy priority", 1, 99, 0, 100, |p| {
        with_work(spin(1).policy(SchedPolicy::RoundRobin(p)))
    });
    edge(
        "comm",
        &with_work(spin(1).comm("x".repeat(MAX_COMM_LEN))),
        &with_work(spin(1).comm("x".repeat(MAX_COMM_LEN + 1))),
    );
}

#[test]
fn work_parameter_ranges() {
    let work = |t: WorkType| with_work(WorkSpec::new(t).workers(1));
    range("work.sleep_us", 1, MAX_WORK_US, 0, MAX_WORK_US + 1, |v| {
        work(WorkType::IoSleep { sleep_us: v })
    });
    range("work.burst_us", 1, MAX_WORK_US, 0, MAX_WORK_US + 1, |v| {
        work(WorkType::Bursty {
            burst_us: v,
            sleep_us: 1,
        })
    });
    range("work.sleep_us", 1, MAX_WORK_US, 0, MAX_WORK_US + 1, |v| {
        work(WorkType::Bursty {
            burst_us: 1,
            sleep_us: v,
        })
    });
    range("work.kib", 1, MAX_CACHE_KIB, 0, MAX_CACHE_KIB + 1, |v| {
        work(WorkType::CachePressure { kib: v })
    });
    range("work.fan", 1, MAX_WORKERS - 1, 0, MAX_WORKERS, |v| {
        work(WorkType::FutexFanOut { fan: v })
    });
    let phases = |n: usize, ns: u64| {
        work(WorkType::Sequence(vec![
            WorkPhase {
                duration_ns: ns,
                work: WorkType::SpinWait,
            };
            n
        ]))
    };
    range(
        "duration",
        MIN_PHASE_NS,
        MAX_DURATION_NS,
        MIN_PHASE_NS - 1,
        MAX_DURATION_NS + 1,
        |ns| phases(1, ns),
    );
    edge(
        "phases",
        &phases(MAX_PHASES, MIN_PHASE_NS),
        &phases(MAX_PHASES + 1, MIN_PHASE_NS),
    );
}

#[test]
fn scenario_time_ranges() {
    let with = |f: &dyn Fn(&mut Scenario)| {
        let mut sc = base();
        f(&mut sc);
        sc
    };
    edge(
        "duration",
        &with(&|sc| sc.duration_ns = MAX_DURATION_NS),
        &with(&|sc| sc.duration_ns = MAX_DURATION_NS + 1),
    );
    edge(
        "settle",
        &with(&|sc| sc.settle_ns = MAX_SETTLE_NS),
        &with(&|sc| sc.settle_ns = MAX_SETTLE_NS + 1),
    );
    edge(
        "sample_interval",
        &with(&|sc| sc.sample_interval_ns = MIN_SAMPLE_INTERVAL_NS),
        &with(&|sc| sc.sample_interval_ns = MIN_SAMPLE_INTERVAL_NS - 1),
    );
    edge(
        "sample_interval",
        &with(&|sc| sc.sample_interval_ns = sc.duration_ns),
        &with(&|sc| sc.sample_interval_ns = sc.duration_ns + 1),
    );
    edge(
        "snapshot_interval",
        &with(&|sc| sc.snapshot_interval_ns = MIN_SNAPSHOT_INTERVAL_NS),
        &with(&|sc| sc.snapshot_interval_ns = MIN_SNAPSHOT_INTERVAL_NS - 1),
    );
    edge(
        "snapshot_interval",
        &with(&|sc| sc.snapshot_interval_ns = MAX_DURATION_NS),
        &with(&|sc| sc.snapshot_interval_ns = MAX_DURATION_NS + 1),
    );
    let looping = |ns: u64| {
        with(&|sc| {
            sc.steps[1].hold = HoldSpec::Loop { interval_ns: ns };
            sc.steps[1].ops = vec![Op::FreezeCgroup {
                cgroup: "bg".into(),
            }];
        })
    };
    range(
        "hold.loop",
        MIN_LOOP_INTERVAL_NS,
        MAX_DURATION_NS,
        MIN_LOOP_INTERVAL_NS - 1,
        MAX_DURATION_NS + 1,
        looping,
    );
}

#[test]
fn size_limits() {
    let with = |f: &dyn Fn(&mut Scenario)| {
        let mut sc = base();
        f(&mut sc);
        sc
    };
    edge(
        "name",
        &with(&|sc| sc.name = "n".repeat(MAX_NAME_BYTES)),
        &with(&|sc| sc.name = "n".repeat(MAX_NAME_BYTES + 1)),
    );
    edge(
        "description",
        &with(&|sc| sc.description = "d".repeat(MAX_DESCRIPTION_BYTES)),
        &with(&|sc| sc.description = "d".repeat(MAX_DESCRIPTION_BYTES + 1)),
    );
}

#[test]
fn topology_cpu_limit() {
    let with = |t: &str| {
        let mut sc = base();
        sc.topology = Topology::parse(t).unwrap();
        sc
    };
    let max = MAX_CPUS;
    edge(
        "CPUs; at most",
        &with(&format!("1n1l{max}c1t")),
        &with(&format!("1n1l{}c1t", max + 1)),
    );
}

#[test]
fn cgroup_name_length() {
    let named = |n: usize| def(CgroupDef::new("c".repeat(n)));
    edge("longer than 255 bytes", &named(255), &named(256));
    assert_err(&named(300), &["longer than 255 bytes"]);
}

#[test]
fn memory_limits_may_be_equal() {
    let m = 64 << 20;
    let lo_hi = |lo: u64| def(CgroupDef::new("a").memory_low(lo).memory_high(m));
    edge("memory.low", &lo_hi(m), &lo_hi(m + 1));
    let hi_max = |hi: u64| def(CgroupDef::new("a").memory_high(hi).memory_max(m));
    edge("memory.high", &hi_max(m), &hi_max(m + 1));
}
