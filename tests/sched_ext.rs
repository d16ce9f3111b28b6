//! sched_ext schedulers under QEMU: schedtape's own BPF scheduler attached,
//! replaced, restarted, detached, stalled into ejection, a broken one, and a
//! comparison with EEVDF.
use e2e::expect::{end, events, replay};
use e2e::{pick, run_scenario};
use trace_format::file::Trace;
use trace_format::record::{OpOutcome, Record, RunOutcome, SchedulerEventKind, StepOutcome};

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn attach_replace_restart_detach_are_all_recorded() {
    let run = run_scenario("sched-lifecycle", &[]);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    e2e::expect::sched_lifecycle(&run);
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn a_stalling_scheduler_is_ejected_and_ends_the_hold_early() {
    let run = run_scenario("sched-hold", &["--", "--stall-after", "1"]);
    let records = run.records();
    let begin = records
        .iter()
        .find(|t| matches!(t.record, Record::StepBegin { .. }))
        .expect("step begins");
    let (end_ts, outcome) = records
        .iter()
        .find_map(|t| match &t.record {
            Record::StepEnd { outcome, .. } => Some((t.ts_ns, outcome.clone())),
            _ => None,
        })
        .expect("step ends");
    let held = (end_ts - begin.ts_ns) as f64 / 1e9;
    assert!(
        held < 12.0,
        "the 15 s hold ran {held:.1} s despite the stall"
    );
    assert!(
        matches!(&outcome, StepOutcome::EndedEarly { reason } if reason.contains("error_stall")),
        "{outcome:?}"
    );
    let evs = events(&run);
    assert!(
        evs.iter().any(|e| matches!(&e.event,
            SchedulerEventKind::Exited { kind, .. } if kind == "error_stall")),
        "no stall exit in {evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(&e.event, SchedulerEventKind::DumpLine(l) if l.contains("runnable task stall"))),
        "no sched_ext dump in the trace"
    );
    assert!(
        matches!(end(&run), RunOutcome::GuestError { message } if message.contains("error_stall"))
    );
    // The scheduler under test failed: exit 1, as for a failed verdict.
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert!(
        run.stdout().contains(
            "the system under test failed: scheduler \"schedtape-scx\" ejected (error_stall)"
        ),
        "{}",
        run.stderr()
    );
    let bytes = std::fs::read(&run.trace).expect("trace");
    let trace = Trace::open(&bytes).expect("trace opens");
    let id = trace.meta().scheduler.clone().expect("scheduler identity");
    assert_eq!(id.name, "schedtape-scx");
    assert_eq!(id.args, ["--stall-after", "1"]);
    assert_ne!(id.sha256, [0; 32]);
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn a_scheduler_ejected_while_attaching_is_the_scheduler_failing() {
    // ops.init raises scx_bpf_error: the kernel ejects it before it attaches.
    let run = run_scenario("sched-hold", &["--", "--fail-init"]);
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert!(
        run.stdout().contains(
            r#"the system under test failed: scheduler "schedtape-scx" ejected (error_bpf)"#
        ),
        "{}",
        run.stderr()
    );
    let evs = events(&run);
    assert!(
        evs.iter().any(|e| matches!(&e.event,
            SchedulerEventKind::Exited { kind, reason } if kind == "error_bpf" && reason.contains("--fail-init"))),
        "{evs:?}"
    );
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn a_program_that_is_no_scheduler_dies_on_start_up() {
    let run = run_scenario("sched-broken", &[]);
    let ops = pick(&run.records(), |r| match r {
        Record::OpApplied(o) => Some(o.outcome.clone()),
        _ => None,
    });
    assert!(
        matches!(ops.as_slice(), [OpOutcome::Failed { error }] if error.contains("died on start-up")),
        "{ops:?}"
    );
    assert!(matches!(end(&run), RunOutcome::GuestError { .. }));
    // A scheduler that never started is no ejection: the harness's status 3.
    assert_eq!(run.code(), Some(3), "{}", run.log());
    let evs = events(&run);
    assert!(
        evs.iter().any(
            |e| e.scheduler == "broken" && matches!(e.event, SchedulerEventKind::Exited { .. })
        ),
        "{evs:?}"
    );
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn replay_diff_shows_per_cgroup_differences_from_eevdf() {
    let eevdf = run_scenario("sched-compare", &[]);
    assert_eq!(end(&eevdf), RunOutcome::Completed, "{}", eevdf.stderr());
    let scx = run_scenario("sched-compare", &["--scheduler", "schedtape-scx"]);
    assert_eq!(end(&scx), RunOutcome::Completed, "{}", scx.stderr());
    let diff = replay(&[
        "diff",
        &eevdf.trace.display().to_string(),
        &scx.trace.display().to_string(),
    ]);
    assert!(diff.contains("schedtape-scx"), "{diff}");
    for cgroup in ["heavy", "light"] {
        assert!(
            diff.lines()
                .any(|l| l.contains(cgroup) && l.contains("cpu share")),
            "no cpu share row for {cgroup}:\n{diff}"
        );
    }
}
