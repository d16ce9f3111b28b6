//! One test per validation rule: each asserts the message names the place and field.

use trace_format::scenario::*;

mod validate_common;
use validate_common::*;

#[test]
fn base_is_valid() {
    assert_eq!(base().validate_all(), vec![]);
}

#[test]
fn collects_every_error() {
    let mut sc = with_def(CgroupDef::new("a").weight(0).io_weight(0).work(spin(2)));
    sc.duration_ns = 0;
    assert!(sc.validate_all().len() >= 3);
}

#[test]
fn error_display_matches_the_documented_shape() {
    let sc = with_def(CgroupDef::new("a").weight(0).work(spin(1)));
    assert_eq!(
        sc.validate().unwrap_err().to_string(),
        "step 0 (\"main\"), cgroup \"a\": cpu.weight = 0 is out of range 1..=10000; use a value between 1 and 10000"
    );
}

// ---- scenario level ----

#[test]
fn scenario_name_empty() {
    let mut sc = base();
    sc.name.clear();
    assert_err(&sc, &["scenario", "name", "empty"]);
}

#[test]
fn scenario_name_bad_characters() {
    let mut sc = base();
    sc.name = "my run".into();
    assert_err(&sc, &["scenario", "name", "letters, digits"]);
}

#[test]
fn topology_zero_dimension() {
    let mut sc = base();
    sc.topology.cores_per_llc = 0;
    assert_err(&sc, &["scenario", "topology.cores_per_llc = 0"]);
}

#[test]
fn topology_too_many_cpus() {
    let mut sc = base();
    sc.topology = Topology::parse("4n4l8c4t").unwrap();
    assert_err(&sc, &["scenario", "topology = 4n4l8c4t", "512 CPUs", "256"]);
}

#[test]
fn duration_zero() {
    let mut sc = base();
    sc.duration_ns = 0;
    assert_err(&sc, &["scenario", "duration = 0"]);
}

#[test]
fn sample_interval_zero() {
    let mut sc = base();
    sc.sample_interval_ns = 0;
    assert_err(&sc, &["scenario", "sample_interval = 0"]);
}

#[test]
fn sample_interval_longer_than_duration() {
    let mut sc = base();
    sc.sample_interval_ns = 5 * NS_PER_SEC;
    assert_err(&sc, &["scenario", "sample_interval = 5s", "duration = 4s"]);
}

#[test]
fn no_steps() {
    let mut sc = base();
    sc.steps.clear();
    assert_err(&sc, &["scenario", "steps is empty"]);
}

#[test]
fn named_scheduler_without_name() {
    let mut sc = base();
    sc.scheduler = SchedulerSpec::Named {
        name: String::new(),
        args: vec![],
    };
    assert_err(&sc, &["scenario", "scheduler.name is empty"]);
}

#[test]
fn staged_scheduler_name_empty() {
    let mut sc = base();
    sc.staged_schedulers.push(StagedScheduler {
        name: String::new(),
        path: "/x".into(),
        args: vec![],
    });
    assert_err(&sc, &["staged_schedulers[0]", "name is empty"]);
}

#[test]
fn staged_scheduler_duplicate() {
    let mut sc = base();
    for _ in 0..2 {
        sc.staged_schedulers.push(StagedScheduler {
            name: "scx_a".into(),
            path: String::new(),
            args: vec![],
        });
    }
    assert_err(
        &sc,
        &[
            "staged_schedulers[1]",
            "name = \"scx_a\"",
            "already declared at staged_schedulers[0]",
        ],
    );
}

#[test]
fn payload_name_empty() {
    let mut sc = base();
    sc.payloads.push(PayloadSpec::new("", "/bin/true"));
    assert_err(&sc, &["payloads[0]", "name is empty"]);
}

#[test]
fn payload_duplicate() {
    let mut sc = base();
    sc.payloads.push(PayloadSpec::new("p", "/bin/true"));
    sc.payloads.push(PayloadSpec::new("p", "/bin/false"));
    assert_err(
        &sc,
        &[
            "payloads[1]",
            "name = \"p\"",
            "already declared at payloads[0]",
        ],
    );
}

#[test]
fn payload_path_empty() {
    let mut sc = base();
    sc.payloads.push(PayloadSpec::new("p", ""));
    assert_err(&sc, &["payloads[0]", "path is empty"]);
}

// ---- holds ----

#[test]
fn hold_frac_zero() {
    let mut sc = base();
    sc.steps[1].hold = HoldSpec::Frac(Fraction::ZERO);
    assert_err(&sc, &["step 1 (\"second\")", "hold.frac = 0"]);
}

#[test]
fn hold_frac_nan() {
    let mut sc = base();
    sc.steps[1] = Step::new().named("second").hold_frac(f64::NAN);
    assert_err(&sc, &["step 1 (\"second\")", "hold.frac = 0", "NaN"]);
    assert_eq!(Fraction::from_f64(f64::NAN), Err(FractionError::NotFinite));
}

#[test]
fn hold_frac_negative() {
    let mut sc = base();
    sc.steps[1] = Step::new().named("second").hold_frac(-0.5);
    assert_err(&sc, &["step 1 (\"second\")", "hold.frac = 0", "negative"]);
    assert_eq!(Fraction::from_f64(-0.5), Err(FractionError::Negative));
}

#[test]
fn hold_frac_above_one() {
    let mut sc = base();
    sc.steps[1] = Step::new().named("second").hold_frac(1.5);
    assert_err(&sc, &["step 1 (\"second\")", "hold.frac = 1.5 is above 1"]);
}

#[test]
fn hold_fixed_zero() {
    let mut sc = base();
    sc.steps[1].hold = HoldSpec::Fixed(0);
    assert_err(&sc, &["step 1 (\"second\")", "hold.fixed = 0"]);
}

#[test]
fn hold_loop_zero_interval() {
    let mut sc = with_ops(vec![Op::capture_snapshot("s")]);
    sc.steps[1].hold = HoldSpec::Loop { interval_ns: 0 };
    assert_err(&sc, &["step 1 (\"second\")", "hold.loop = 0"]);
}

#[test]
fn loop_step_without_ops() {
    let mut sc = base();
    sc.steps[1].hold = HoldSpec::loop_every_ms(100);
    assert_err(&sc, &["step 1 (\"second\")", "ops is empty", "hold.loop"]);
}

#[test]
fn holds_exceed_duration() {
    let mut sc = base();
    sc.steps[1].hold = HoldSpec::fixed_ms(3_000);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\")",
            "hold brings the steps to 5s",
            "duration = 4s",
        ],
    );
}

// ---- cgroup controllers ----

#[test]
fn cpu_weight_zero() {
    assert_err(
        &with_def(CgroupDef::new("a").weight(0).work(spin(1))),
        &[STEP0, "cpu.weight = 0 is out of range 1..=10000"],
    );
}

#[test]
fn cpu_weight_too_high() {
    assert_err(
        &with_def(CgroupDef::new("a").weight(12_000).work(spin(1))),
        &[STEP0, "cpu.weight = 12000"],
    );
}

#[test]
fn io_weight_out_of_range() {
    assert_err(
        &with_def(CgroupDef::new("a").io_weight(0).work(spin(1))),
        &[STEP0, "io.weight = 0 is out of range 1..=10000"],
    );
}

#[test]
fn cpu_max_zero_quota() {
    assert_err(
        &with_def(CgroupDef::new("a").cpu_max(0, 100_000).work(spin(1))),
        &[STEP0, "cpu.max quota_us = 0", "could never run"],
    );
}

#[test]
fn cpu_max_quota_below_kernel_minimum() {
    assert_err(
        &with_def(CgroupDef::new("a").cpu_max(500, 100_000).work(spin(1))),
        &[STEP0, "cpu.max quota_us = 500", "minimum"],
    );
}

#[test]
fn cpu_max_period_too_short() {
    assert_err(
        &with_def(CgroupDef::new("a").cpu_max(50_000, 0).work(spin(1))),
        &[
            STEP0,
            "cpu.max period_us = 0 is out of range 1000..=1000000",
        ],
    );
}

#[test]
fn cpu_max_period_too_long() {
    assert_err(
        &with_def(CgroupDef::new("a").cpu_max(50_000, 2_000_000).work(spin(1))),
        &[STEP0, "cpu.max period_us = 2000000"],
    );
}

#[test]
fn pids_max_zero() {
    assert_err(
        &with_def(CgroupDef::new("a").pids_max(0).work(spin(1))),
        &[STEP0, "pids.max = 0"],
    );
}

#[test]
fn pids_max_below_workers() {
    assert_err(
        &with_def(CgroupDef::new("a").pids_max(2).work(spin(3))),
        &[STEP0, "pids.max = 2 is below the 3 workers"],
    );
}

#[test]
fn memory_max_zero() {
    assert_err(
        &with_def(CgroupDef::new("a").memory_max(0).work(spin(1))),
        &[STEP0, "memory.max = 0"],
    );
}

#[test]
fn memory_high_zero() {
    assert_err(
        &with_def(CgroupDef::new("a").memory_high(0).work(spin(1))),
        &[STEP0, "memory.high = 0"],
    );
}

#[test]
fn memory_high_above_max() {
    let def = CgroupDef::new("a")
        .memory_max(1 << 20)
        .memory_high(2 << 20)
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "memory.high = 2097152 is above memory.max = 1048576"],
    );
}

#[test]
fn memory_low_above_high() {
    let def = CgroupDef::new("a")
        .memory_high(1 << 20)
        .memory_low(2 << 20)
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "memory.low = 2097152 is above memory.high"],
    );
}

#[test]
fn cpuset_mems_empty() {
    assert_err(
        &with_def(CgroupDef::new("a").mems([]).work(spin(1))),
        &[STEP0, "cpuset.mems is empty"],
    );
}

#[test]
fn cpuset_mems_node_out_of_range() {
    assert_err(
        &with_def(CgroupDef::new("a").mems([1]).work(spin(1))),
        &[STEP0, "cpuset.mems = 1 is out of range 0..=0"],
    );
}

// ---- cpusets ----

#[test]
fn cpuset_llc_out_of_range() {
    let def = CgroupDef::new("a").cpuset(CpusetSpec::Llc(3)).work(spin(1));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "cpuset is unusable: LLC 3 does not exist",
            "1n2l2c1t has 2 LLC(s)",
        ],
    );
}

#[test]
fn cpuset_node_out_of_range() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::Node(1))
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "cpuset is unusable: node 1 does not exist"],
    );
}

#[test]
fn cpuset_range_start_not_below_end() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::range(0.5, 0.5))
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "cpuset is unusable: range start 0.5 must be below end 0.5",
        ],
    );
}

#[test]
fn cpuset_range_resolves_empty() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::range(0.0, 0.1))
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "cpuset is unusable: it resolves to no CPUs on topology 1n2l2c1t",
        ],
    );
}

#[test]
fn workers_pct_on_a_cpuset_with_no_cpus() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::range(0.0, 0.1))
        .work(WorkSpec::new(WorkType::SpinWait).workers_pct(50));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "works[0]: workers_pct = 50 of a cpuset with no CPUs would start no workers",
        ],
    );
}

#[test]
fn workers_and_pct_both_set_on_a_cpuset_with_no_cpus() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::range(0.0, 0.1))
        .work(spin(2).workers_pct(50));
    let sc = with_def(def);
    assert_err(
        &sc,
        &[STEP0, "workers = 2 and workers_pct = 50 are both set"],
    );
    assert_err(&sc, &[STEP0, "cpuset is unusable: it resolves to no CPUs"]);
}

#[test]
fn cpuset_disjoint_zero_parts() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::Disjoint { index: 0, of: 0 })
        .work(spin(1));
    assert_err(&with_def(def), &[STEP0, "cpuset is unusable: `of` = 0"]);
}

#[test]
fn cpuset_disjoint_index_out_of_range() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::Disjoint { index: 2, of: 2 })
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[
            STEP0,
            "cpuset is unusable: part index 2 is not below the part count 2",
        ],
    );
}

#[test]
fn cpuset_disjoint_more_parts_than_cpus() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::Disjoint { index: 0, of: 8 })
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "cpuset is unusable: it resolves to no CPUs"],
    );
}

#[test]
fn cpuset_exact_cpu_out_of_range() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::exact([1, 7]))
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "cpuset is unusable: CPU 7 does not exist"],
    );
}

#[test]
fn cpuset_exact_empty() {
    let def = CgroupDef::new("a")
        .cpuset(CpusetSpec::exact([]))
        .work(spin(1));
    assert_err(
        &with_def(def),
        &[STEP0, "cpuset is unusable: it resolves to no CPUs"],
    );
}

#[test]
fn set_cpuset_op_with_unusable_spec() {
    let sc = with_ops(vec![Op::set_cpuset("bg", CpusetSpec::Llc(2))]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (set_cpuset)",
            "cpuset is unusable: LLC 2",
        ],
    );
}

// ---- cgroup names ----

#[test]
fn cgroup_name_empty() {
    assert_err(
        &with_def(CgroupDef::new("").work(spin(1))),
        &[
            "step 0 (\"main\")",
            "name = \"\" is not a valid cgroup name: it is empty",
        ],
    );
}

#[test]
fn cgroup_name_with_slash() {
    assert_err(
        &with_def(CgroupDef::new("a/b").work(spin(1))),
        &["step 0 (\"main\")", "it contains '/'"],
    );
}

#[test]
fn cgroup_name_with_dotdot() {
    assert_err(
        &with_def(CgroupDef::new("..").work(spin(1))),
        &["step 0 (\"main\")", "\"..\""],
    );
}

#[test]
fn cgroup_name_with_whitespace() {
    assert_err(
        &with_def(CgroupDef::new("a b").work(spin(1))),
        &["step 0 (\"main\")", "whitespace"],
    );
}

#[test]
fn duplicate_cgroup_within_step() {
    let mut sc = base();
    sc.steps[0].setup.push(CgroupDef::new("a").work(spin(1)));
    assert_err(
        &sc,
        &[
            STEP0,
            "name = \"a\" is already declared at step 0 (\"main\"), cgroup \"a\"",
        ],
    );
}

#[test]
fn duplicate_cgroup_backdrop_and_step() {
    let sc = with_def(CgroupDef::new("bg").work(spin(1)));
    assert_err(
        &sc,
        &[
            "step 0 (\"main\"), cgroup \"bg\"",
            "name = \"bg\" is already declared at backdrop",
        ],
    );
}

#[test]
fn duplicate_cgroup_via_add_cgroup() {
    let sc = with_ops(vec![Op::add_cgroup("bg")]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (add_cgroup)",
            "name = \"bg\" is already declared",
        ],
    );
}

#[test]
fn step_local_cgroups_may_reuse_names_across_steps() {
    let mut sc = base();
    sc.steps[1].setup.push(CgroupDef::new("a").work(spin(1)));
    sc.validate().unwrap();
}
