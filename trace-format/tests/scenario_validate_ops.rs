//! One test per op validation rule (references, payloads, kernel ops, ...); see scenario_validate.rs.

use trace_format::scenario::*;

mod validate_common;
use validate_common::*;

// ---- ops and references ----

#[test]
fn op_unknown_cgroup() {
    let sc = with_ops(vec![Op::freeze_cgroup("nope")]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (freeze_cgroup)",
            "cgroup = \"nope\" names no cgroup",
        ],
    );
}

#[test]
fn op_cannot_see_previous_steps_cgroups() {
    let sc = with_ops(vec![Op::set_cpuset("a", CpusetSpec::Llc(0))]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (set_cpuset)",
            "cgroup = \"a\" names no cgroup",
        ],
    );
}

#[test]
fn op_runs_before_its_steps_setup() {
    let mut sc = base();
    sc.steps[0].ops.push(Op::freeze_cgroup("a"));
    assert_err(
        &sc,
        &[
            "step 0 (\"main\"), ops[0] (freeze_cgroup)",
            "\"a\"",
            "ops run before its setup cgroups",
        ],
    );
}

#[test]
fn loop_step_ops_see_setup() {
    let mut sc = base();
    sc.steps[0]
        .ops
        .push(Op::set_affinity("a", AffinityIntent::SingleCpu));
    sc.steps[0].hold = HoldSpec::loop_every_ms(100);
    sc.steps.truncate(1);
    sc.validate().unwrap();
}

#[test]
fn op_uses_cgroup_after_removal() {
    let sc = with_ops(vec![
        Op::add_cgroup("t"),
        Op::remove_cgroup("t"),
        Op::freeze_cgroup("t"),
    ]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[2] (freeze_cgroup)",
            "cgroup = \"t\" names no cgroup",
        ],
    );
}

#[test]
fn backdrop_op_cgroups_visible_in_steps() {
    let mut sc = base();
    sc.backdrop.ops.push(Op::add_cgroup("sink"));
    sc.steps[1].ops.push(Op::move_all_tasks("bg", "sink"));
    // Moving out of a backdrop cgroup is reserved to backdrop ops.
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (move_all_tasks)",
            "from = \"bg\" belongs to the backdrop",
        ],
    );
    sc.steps[1].ops[0] = Op::freeze_cgroup("sink");
    sc.validate().unwrap();
}

#[test]
fn step_cannot_remove_backdrop_cgroup() {
    let sc = with_ops(vec![Op::remove_cgroup("bg")]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (remove_cgroup)",
            "cgroup = \"bg\" belongs to the backdrop",
        ],
    );
}

#[test]
fn step_cannot_stop_backdrop_cgroup() {
    let sc = with_ops(vec![Op::stop_cgroup("bg")]);
    assert_err(
        &sc,
        &[
            "ops[0] (stop_cgroup)",
            "cgroup = \"bg\" belongs to the backdrop",
        ],
    );
}

#[test]
fn swap_cpusets_same_cgroup() {
    let sc = with_ops(vec![Op::swap_cpusets("bg", "bg")]);
    assert_err(
        &sc,
        &[
            "ops[0] (swap_cpusets)",
            "b = \"bg\" is the same cgroup as a",
        ],
    );
}

#[test]
fn move_all_tasks_same_cgroup() {
    let sc = with_ops(vec![Op::add_cgroup("t"), Op::move_all_tasks("t", "t")]);
    assert_err(
        &sc,
        &[
            "ops[1] (move_all_tasks)",
            "to = \"t\" is the same cgroup as from",
        ],
    );
}

#[test]
fn spawn_into_unknown_cgroup() {
    let sc = with_ops(vec![Op::spawn("ghost", spin(1))]);
    assert_err(
        &sc,
        &["ops[0] (spawn)", "placement = \"ghost\" names no cgroup"],
    );
}

#[test]
fn add_cgroup_def_checked_like_setup() {
    let sc = with_ops(vec![Op::AddCgroupDef(
        CgroupDef::new("x").weight(0).work(spin(1)),
    )]);
    assert_err(
        &sc,
        &[
            "step 1 (\"second\"), ops[0] (add_cgroup_def), cgroup \"x\"",
            "cpu.weight = 0",
        ],
    );
}

#[test]
fn payload_not_declared() {
    let sc = with_ops(vec![Op::run_payload("stress")]);
    assert_err(
        &sc,
        &[
            "ops[0] (run_payload)",
            "payload = \"stress\" names no payload",
            "[[payloads]]",
        ],
    );
}

#[test]
fn payload_waited_but_never_started() {
    let mut sc = with_ops(vec![Op::wait_payload("p")]);
    sc.payloads.push(PayloadSpec::new("p", "/bin/true"));
    assert_err(
        &sc,
        &[
            "ops[0] (wait_payload)",
            "payload = \"p\" is not running here",
        ],
    );
}

#[test]
fn payload_in_unknown_cgroup() {
    let mut sc = with_ops(vec![Op::run_payload("p")]);
    let mut p = PayloadSpec::new("p", "/bin/true");
    p.cgroup = Some("ghost".into());
    sc.payloads.push(p);
    assert_err(
        &sc,
        &["ops[0] (run_payload)", "cgroup = \"ghost\" names no cgroup"],
    );
}

#[test]
fn attach_unknown_scheduler() {
    let sc = with_ops(vec![Op::attach_scheduler("scx_nope")]);
    assert_err(
        &sc,
        &[
            "ops[0] (attach_scheduler)",
            "scheduler = \"scx_nope\" names no staged scheduler",
        ],
    );
}

#[test]
fn kernel_op_bad_width() {
    let sc = with_ops(vec![Op::ReadKernelHot(KernelRead::new("jiffies", 3))]);
    assert_err(
        &sc,
        &["ops[0] (read_kernel_hot)", "width = 3 is not 1, 2, 4 or 8"],
    );
}

#[test]
fn kernel_op_empty_symbol() {
    let sc = with_ops(vec![Op::ReadKernelCold(KernelRead::new("", 8))]);
    assert_err(&sc, &["ops[0] (read_kernel_cold)", "symbol is empty"]);
}

#[test]
fn kernel_write_value_too_wide() {
    let sc = with_ops(vec![Op::WriteKernelCold(KernelWrite::new(
        "sysctl_x", 1, 256,
    ))]);
    assert_err(
        &sc,
        &[
            "ops[0] (write_kernel_cold)",
            "value = 256 does not fit in 1 byte(s)",
        ],
    );
}

#[test]
fn kernel_op_cpu_out_of_range() {
    let sc = with_ops(vec![Op::WriteKernelHot(
        KernelWrite::new("runqueues", 4, 1).on_cpu(4),
    )]);
    assert_err(
        &sc,
        &["ops[0] (write_kernel_hot)", "cpu = 4 is out of range 0..=3"],
    );
}

#[test]
fn too_many_snapshot_watches() {
    let sc = with_ops(
        (0..4)
            .map(|i| Op::watch_snapshot(format!("sym{i}")))
            .collect(),
    );
    assert_err(&sc, &["ops[3] (watch_snapshot)", "at most 3"]);
}

#[test]
fn watch_snapshot_empty_symbol() {
    assert_err(
        &with_ops(vec![Op::watch_snapshot("")]),
        &["ops[0] (watch_snapshot)", "symbol is empty"],
    );
}

#[test]
fn capture_snapshot_empty_name() {
    assert_err(
        &with_ops(vec![Op::capture_snapshot("")]),
        &["ops[0] (capture_snapshot)", "name is empty"],
    );
}

#[test]
fn pin_bpf_map_empty_name() {
    assert_err(
        &with_ops(vec![Op::pin_bpf_map("")]),
        &["ops[0] (pin_bpf_map)", "name is empty"],
    );
}

#[test]
fn capture_cgroup_procs_duplicate_tag() {
    let sc = with_ops(vec![
        Op::capture_cgroup_procs("t", "bg"),
        Op::capture_cgroup_procs("t", "bg"),
    ]);
    assert_err(
        &sc,
        &[
            "ops[1] (capture_cgroup_procs)",
            "tag = \"t\" is used by an earlier",
        ],
    );
}

#[test]
fn steer_irq_cpu_out_of_range() {
    let sc = with_ops(vec![Op::steer_irq(IrqSelector::Number(4), 9)]);
    assert_err(
        &sc,
        &["ops[0] (steer_irq)", "cpu = 9 is out of range 0..=3"],
    );
}

#[test]
fn steer_irq_empty_label() {
    let sc = with_ops(vec![Op::steer_irq(IrqSelector::Label(String::new()), 0)]);
    assert_err(&sc, &["ops[0] (steer_irq)", "irq is empty"]);
}

#[test]
fn backdrop_errors_name_the_backdrop() {
    let mut sc = base();
    sc.backdrop.cgroups[0].cpu_weight = Some(0);
    assert_err(&sc, &["backdrop, cgroup \"bg\"", "cpu.weight = 0"]);
}

#[test]
fn empty_payload_cgroup_means_the_runners() {
    let mut sc = base();
    sc.payloads.push(PayloadSpec::new("p", "/bin/true"));
    sc.steps[0].ops = vec![
        Op::RunPayload {
            payload: "p".into(),
            args: vec![],
            cgroup: Some(String::new()),
        },
        Op::WaitPayload {
            payload: "p".into(),
            cgroup: Some(String::new()),
        },
        Op::KillPayload {
            payload: "p".into(),
            cgroup: Some(String::new()),
        },
    ];
    sc.validate().unwrap();
}

/// `set_cpuset` changes what later ops of the step see as the cgroup's CPUs:
/// an affinity outside the new cpuset is refused.
#[test]
fn ops_see_a_cpuset_set_earlier() {
    let affinity_to_cpu1 = Op::set_affinity("t", AffinityIntent::Cpus(CpuList::new([1])));
    let ok = with_ops(vec![Op::add_cgroup("t"), affinity_to_cpu1.clone()]);
    ok.validate().unwrap();
    let cpu0 = Op::set_cpuset("t", CpusetSpec::Exact(CpuList::new([0])));
    let sc = with_ops(vec![Op::add_cgroup("t"), cpu0, affinity_to_cpu1]);
    assert_err(&sc, &["ops[2] (set_affinity)", "affinity is unusable"]);
}

#[test]
fn kernel_write_values_fill_their_width() {
    // Every value fits 8 bytes; the widest value of each width is allowed.
    for (width, max) in [(1, 0xff), (2, 0xffff), (4, 0xffff_ffff), (8, u64::MAX)] {
        let sc = with_ops(vec![Op::WriteKernelHot(KernelWrite::new(
            "sysctl_x", width, max,
        ))]);
        let errs: Vec<String> = sc.validate_all().iter().map(ToString::to_string).collect();
        assert!(errs.is_empty(), "width {width}: {errs:?}");
    }
}
