//! sched_ext schedulers under QEMU: schedtape's own BPF scheduler attached,
//! replaced, restarted, detached, stalled into ejection, a broken one, and a
//! comparison with EEVDF.
use std::process::Command;

use e2e::{Run, pick, root, run_scenario};
use trace_format::file::Trace;
use trace_format::record::{
    OpOutcome, Record, RunOutcome, SchedulerEvent, SchedulerEventKind, StepOutcome,
};

fn events(run: &Run) -> Vec<SchedulerEvent> {
    pick(&run.records(), |r| match r {
        Record::SchedulerEvent(e) => Some(e.clone()),
        _ => None,
    })
}

/// `replay ARGS…`: its stdout, after checking it succeeded.
fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["run", "--quiet", "-p", "replay", "--"])
        .args(args)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn end(run: &Run) -> RunOutcome {
    match run.records().last().map(|t| &t.record) {
        Some(Record::End(o)) => o.clone(),
        other => panic!(
            "the trace does not end with End: {other:?}\n{}",
            run.stderr()
        ),
    }
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn attach_replace_restart_detach_are_all_recorded() {
    let run = run_scenario("sched-lifecycle", &[]);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    assert_eq!(end(&run), RunOutcome::Completed);
    let records = run.records();
    let ops = pick(&records, |r| match r {
        Record::OpApplied(o) => Some(o.outcome.clone()),
        _ => None,
    });
    assert_eq!(ops.len(), 5, "{ops:?}");
    assert!(
        ops.iter().all(|o| !matches!(o, OpOutcome::Failed { .. })),
        "{ops:?}"
    );
    let evs = events(&run);
    let transitions: Vec<(String, &str)> = evs
        .iter()
        .filter_map(|e| match e.event {
            SchedulerEventKind::Attached => Some((e.scheduler.clone(), "attached")),
            SchedulerEventKind::Detached => Some((e.scheduler.clone(), "detached")),
            SchedulerEventKind::Exited { .. } => Some((e.scheduler.clone(), "exited")),
            _ => None,
        })
        .collect();
    let want = [
        ("fifo", "attached"),
        ("fifo", "detached"),
        ("fifo-short", "attached"),
        ("fifo-short", "detached"),
        ("fifo-short", "attached"),
        ("fifo-short", "detached"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(s, e)| (s.to_string(), *e)).collect();
    assert_eq!(transitions, want);
    // The first instance's dispatch counter rises while it runs.
    let dispatched: Vec<u64> = evs
        .iter()
        .filter(|e| e.scheduler == "fifo")
        .filter_map(|e| match &e.event {
            SchedulerEventKind::Counters(c) => {
                c.iter().find(|(k, _)| k == "dispatched").map(|(_, v)| *v)
            }
            _ => None,
        })
        .collect();
    assert!(dispatched.len() >= 2, "counters: {dispatched:?}");
    assert!(
        dispatched.windows(2).all(|w| w[1] >= w[0]) && dispatched.last() > dispatched.first(),
        "dispatch counter does not rise: {dispatched:?}"
    );
    let shown = replay(&["show", &run.trace.display().to_string()]);
    for line in [
        "scheduler fifo attached",
        "scheduler fifo detached",
        "scheduler fifo-short attached",
        "scheduler fifo-short detached",
        "op 0 pin_bpf_map: ok",
        "op 1 replace_scheduler: ok",
        "op 0 restart_scheduler: ok",
        "op 0 detach_scheduler: ok",
    ] {
        assert!(shown.contains(line), "replay show lacks {line:?}:\n{shown}");
    }
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
