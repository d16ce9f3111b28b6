//! Every op family under QEMU, each checked from the trace: the op's record,
//! and its effect on the workers' samples (or on payload output). One boot
//! per scenario file; each groups several families.
use std::collections::{BTreeMap, BTreeSet};

use e2e::{Run, pick, run_scenario};
use trace_format::record::{
    ConsoleSource, OpApplied, OpOutcome, Record, RunOutcome, StepOutcome, StepRef, Timed,
    WorkerSample,
};

/// Verdict thresholds for scenarios whose workers live for different spans
/// inside one step (see the file); the test checks their progress itself.
const MIXED_LIFETIMES: &str = include_str!("../fixtures/thresholds/mixed-lifetimes.toml");

/// Runs `scenario` with verdict thresholds `thresholds` (TOML) when given.
fn run(scenario: &str, thresholds: Option<&str>) -> (Run, Vec<Timed>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thresholds.toml");
    let mut extra = Vec::new();
    if let Some(t) = thresholds {
        std::fs::write(&file, t).unwrap();
        extra = vec!["--thresholds", file.to_str().unwrap()];
    }
    let started = std::time::Instant::now();
    let run = run_scenario(scenario, &extra);
    eprintln!(
        "{scenario}: boot and run took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let records = run.records();
    (run, records)
}

/// A worker: its spawn record's step, cgroup and PID.
#[derive(Debug, Clone)]
struct Spawned {
    pid: u32,
    step: StepRef,
    cgroup: String,
}

/// The parts of a trace the checks look at.
struct View {
    records: Vec<Timed>,
    workers: BTreeMap<u32, Spawned>,
}

impl View {
    fn new(records: Vec<Timed>) -> View {
        let workers = pick(&records, |r| match r {
            Record::WorkerSpawned(w) => Some((
                w.worker,
                Spawned {
                    pid: w.pid,
                    step: w.step,
                    cgroup: w.cgroup.clone(),
                },
            )),
            _ => None,
        })
        .into_iter()
        .collect();
        View { records, workers }
    }

    /// Every application of op `op` of `step`: (time, record), by round.
    fn op(&self, step: u16, op: u16) -> Vec<(u64, OpApplied)> {
        self.records
            .iter()
            .filter_map(|t| match &t.record {
                Record::OpApplied(o) if o.step == StepRef(step) && o.op == op => {
                    Some((t.ts_ns, o.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The first application of op `op` of `step`, which must have succeeded.
    fn ok(&self, step: u16, op: u16) -> (u64, OpOutcome) {
        let (ts, o) = self
            .op(step, op)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("step {step} op {op} was never applied"));
        assert!(o.outcome.is_ok(), "step {step} op {op}: {:?}", o.outcome);
        (ts, o.outcome)
    }

    /// `(begin, end)` of a step.
    fn span(&self, step: u16) -> (u64, u64) {
        let at = |want: fn(&Record, StepRef) -> bool| {
            self.records
                .iter()
                .find(|t| want(&t.record, StepRef(step)))
                .map(|t| t.ts_ns)
                .unwrap_or_else(|| panic!("step {step} has no begin/end"))
        };
        (
            at(|r, s| matches!(r, Record::StepBegin { step } if *step == s)),
            at(|r, s| matches!(r, Record::StepEnd { step, .. } if *step == s)),
        )
    }

    /// Workers by PID.
    fn by_pid(&self, pid: u32) -> u32 {
        *self
            .workers
            .iter()
            .find(|(_, s)| s.pid == pid)
            .unwrap_or_else(|| panic!("no worker with pid {pid}"))
            .0
    }

    /// Worker numbers spawned into `cgroup` (by the given step, when set).
    fn in_cgroup(&self, cgroup: &str, step: Option<StepRef>) -> Vec<u32> {
        self.workers
            .iter()
            .filter(|(_, s)| s.cgroup == cgroup && step.is_none_or(|st| s.step == st))
            .map(|(w, _)| *w)
            .collect()
    }

    /// Samples of `worker` as (interval start, end, sample); the first
    /// interval starts at 0.
    fn samples(&self, worker: u32) -> Vec<(u64, u64, WorkerSample)> {
        let mut prev = 0;
        let mut out = Vec::new();
        for t in &self.records {
            if let Record::WorkerSample(s) = &t.record
                && s.worker == worker
            {
                out.push((prev, t.ts_ns, s.clone()));
                prev = t.ts_ns;
            }
        }
        out
    }

    /// CPUs `workers` were seen on in intervals that lie within `[from, to]`,
    /// and how many such intervals there were.
    fn cpus_between(&self, workers: &[u32], from: u64, to: u64) -> (BTreeSet<usize>, usize) {
        let mut cpus = BTreeSet::new();
        let mut n = 0;
        for &w in workers {
            for (start, end, s) in self.samples(w) {
                if start >= from && end <= to {
                    n += 1;
                    cpus.extend(s.cpus());
                }
            }
        }
        (cpus, n)
    }

    /// Iterations of `worker` in intervals within `[from, to]`, one entry per interval.
    fn iterations_between(&self, worker: u32, from: u64, to: u64) -> Vec<u64> {
        self.samples(worker)
            .into_iter()
            .filter(|(start, end, _)| *start >= from && *end <= to)
            .map(|(_, _, s)| s.iterations)
            .collect()
    }

    /// Console lines from `source`, in order.
    fn console(&self, source: ConsoleSource) -> Vec<(u64, String)> {
        self.records
            .iter()
            .filter_map(|t| match &t.record {
                Record::Console(c) if c.source == source => Some((t.ts_ns, c.line.clone())),
                _ => None,
            })
            .collect()
    }

    fn end(&self) -> &RunOutcome {
        match self.records.last().map(|t| &t.record) {
            Some(Record::End(o)) => o,
            other => panic!("the trace does not end with End: {other:?}"),
        }
    }
}

fn pids(o: &OpOutcome) -> BTreeSet<u32> {
    match o {
        OpOutcome::Pids(p) => p.iter().copied().collect(),
        other => panic!("expected pids, got {other:?}"),
    }
}

fn value(o: &OpOutcome) -> u64 {
    match o {
        OpOutcome::Value(v) => *v,
        other => panic!("expected a value, got {other:?}"),
    }
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn cgroup_cpuset_spawn_affinity_move_freeze_and_capture_ops_take_effect() {
    let (run, records) = run("ops-cgroups", Some(MIXED_LIFETIMES));
    assert_eq!(run.code(), Some(0), "{}", run.log());
    let v = View::new(records);
    assert_eq!(v.end(), &RunOutcome::Completed);
    let a = v.in_cgroup("a", Some(StepRef::BACKDROP));
    let b = v.in_cgroup("b", Some(StepRef::BACKDROP));
    assert_eq!(
        (a.len(), b.len()),
        (1, 1),
        "one backdrop worker each in a and b"
    );

    // Step 0: capture procs, then swap: a's worker moves to CPU 1, b's to CPU 0.
    let (_, procs_a) = v.ok(0, 0);
    let (_, procs_b) = v.ok(0, 1);
    assert_eq!(pids(&procs_a), BTreeSet::from([v.workers[&a[0]].pid]));
    assert_eq!(pids(&procs_b), BTreeSet::from([v.workers[&b[0]].pid]));
    let (swap_ts, _) = v.ok(0, 2);
    let (_, end0) = v.span(0);
    let (before_a, _) = v.cpus_between(&a, 0, swap_ts);
    assert_eq!(
        before_a,
        BTreeSet::from([0]),
        "a ran on CPU 0 before the swap"
    );
    let (cpus, n) = v.cpus_between(&a, swap_ts, end0);
    assert!(n >= 3, "a was sampled after the swap");
    assert_eq!(cpus, BTreeSet::from([1]), "a runs on b's former CPU");
    let (cpus, _) = v.cpus_between(&b, swap_ts, end0);
    assert_eq!(cpus, BTreeSet::from([0]), "b runs on a's former CPU");

    // Step 1: clear a's cpuset, then spawn two spinners pinned one per CPU of
    // it: each runs on its CPU, which the kernel allows only if a has both
    // again; b is narrowed to CPU 1 by a range cpuset.
    let (_, spawned) = v.ok(1, 2);
    let mut new: Vec<u32> = pids(&spawned).iter().map(|&p| v.by_pid(p)).collect();
    new.sort_unstable();
    assert_eq!(new.len(), 2);
    for w in &new {
        assert_eq!(v.workers[w].cgroup, "a");
        assert_eq!(v.workers[w].step, StepRef(1));
    }
    let (_, runner) = v.ok(1, 3);
    let runner = v.by_pid(*pids(&runner).first().unwrap());
    assert_eq!(
        v.workers[&runner].cgroup, "",
        "runner placement is the root cgroup"
    );
    let (ops_done, _) = v.ok(1, 3);
    let (_, end1) = v.span(1);
    for (k, w) in new.iter().enumerate() {
        let (cpus, n) = v.cpus_between(&[*w], ops_done, end1);
        assert!(n >= 3, "worker {w} was sampled");
        assert_eq!(cpus, BTreeSet::from([k]), "a's worker {k} runs on CPU {k}");
    }
    let (cpus, _) = v.cpus_between(&b, ops_done, end1);
    assert_eq!(cpus, BTreeSet::from([1]), "b's range cpuset is CPU 1");
    for w in new.iter().chain([&runner]) {
        let it: u64 = v.iterations_between(*w, ops_done, end1).iter().sum();
        assert!(it > 0, "spawned worker {w} made progress");
        assert!(
            v.samples(*w).iter().all(|(_, end, _)| *end <= end1),
            "step 1's worker {w} is gone after its step"
        );
    }

    // Step 2: two unconstrained spinners pinned to CPU 0 by set_affinity.
    let pin = v.in_cgroup("pin", Some(StepRef(2)));
    assert_eq!(pin.len(), 2);
    let (aff_ts, aff) = v.ok(2, 1);
    assert_eq!(pids(&aff).len(), 2);
    let (_, end2) = v.span(2);
    let (cpus, n) = v.cpus_between(&pin, aff_ts, end2);
    assert!(n >= 4, "pin was sampled");
    assert_eq!(
        cpus,
        BTreeSet::from([0]),
        "set_affinity pinned pin's workers"
    );

    // Step 3: move src's spinners into dst (CPU 1); captures see the move.
    let src = v.in_cgroup("src", Some(StepRef(3)));
    let src_pids: BTreeSet<u32> = src.iter().map(|w| v.workers[w].pid).collect();
    let (move_ts, moved) = v.ok(3, 3);
    assert_eq!(pids(&moved), src_pids, "move_all_tasks moved src's workers");
    assert!(
        pids(&v.ok(3, 4).1).is_empty(),
        "src is empty after the move"
    );
    assert_eq!(pids(&v.ok(3, 5).1), src_pids, "dst holds the moved workers");
    let (_, end3) = v.span(3);
    let (cpus, _) = v.cpus_between(&src, 0, move_ts);
    assert!(
        cpus.is_subset(&BTreeSet::from([0])),
        "src ran on CPU 0 before"
    );
    let (cpus, n) = v.cpus_between(&src, move_ts, end3);
    assert!(n >= 4);
    assert_eq!(
        cpus,
        BTreeSet::from([1]),
        "moved workers follow dst's cpuset"
    );

    // Steps 4 and 5: b's worker makes no progress while frozen, then resumes.
    e2e::expect::cgroup_freeze_thaw(&v.records);

    // Step 6 loops: each round stops the worker the previous round spawned into
    // pool, removes doomed (killing its worker) and creates it again.
    let stops = v.op(6, 0);
    let spawns = v.op(6, 2);
    let removes = v.op(6, 3);
    let re_adds = v.op(6, 4);
    assert!(stops.len() >= 4, "the loop ran {} rounds", stops.len());
    assert_eq!(
        stops.iter().map(|(_, o)| o.round).collect::<Vec<_>>(),
        (0..u32::try_from(stops.len()).unwrap()).collect::<Vec<_>>()
    );
    for (_, capture) in v.op(6, 1) {
        assert!(
            pids(&capture.outcome).is_empty(),
            "pool is empty after a stop"
        );
    }
    for r in 1..stops.len() {
        let stopped = pids(&stops[r].1.outcome);
        assert_eq!(
            stopped,
            pids(&spawns[r - 1].1.outcome),
            "round {r} stops round {}'s worker",
            r - 1
        );
        let removed = pids(&removes[r].1.outcome);
        assert_eq!(
            removed,
            pids(&re_adds[r - 1].1.outcome),
            "round {r} removes doomed's worker"
        );
        for pid in stopped.iter().chain(&removed) {
            let w = v.by_pid(*pid);
            let done = v.samples(w);
            assert!(done.iter().map(|(_, _, s)| s.iterations).sum::<u64>() > 0);
            assert!(
                done.iter()
                    .all(|(_, end, _)| *end <= stops[r].0.max(removes[r].0)),
                "worker {w} was sampled after it was stopped"
            );
        }
    }
    for (_, o) in v.op(6, 5) {
        assert!(o.outcome.is_ok(), "looping swap: {:?}", o.outcome);
    }
}

/// `(CPU0, CPU1)` interrupt counts of ttyS0 in each `/proc/interrupts` dump.
fn ttys0_counts(v: &View) -> Vec<(u64, u64)> {
    v.console(ConsoleSource::PayloadStdout)
        .iter()
        .filter(|(_, l)| l.starts_with("cat: ") && l.ends_with("ttyS0"))
        .map(|(_, l)| {
            let n: Vec<u64> = l
                .split_whitespace()
                .skip(2)
                .take(2)
                .map(|x| x.parse().unwrap())
                .collect();
            (n[0], n[1])
        })
        .collect()
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn payloads_and_irq_steering_take_effect() {
    let (run, records) = run("ops-payloads", None);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    assert!(
        run.stderr()
            .contains("payload stress: /usr/bin/stress-ng (sha256 "),
        "{}",
        run.stderr()
    );
    let v = View::new(records);
    assert_eq!(v.end(), &RunOutcome::Completed);
    let stderr = v.console(ConsoleSource::PayloadStderr);
    let stdout = v.console(ConsoleSource::PayloadStdout);
    let executor = v.console(ConsoleSource::Executor);

    // The backdrop's stress-ng lives across every step and dies at teardown.
    let bg = *pids(&v.op(u16::MAX, 0)[0].1.outcome).first().unwrap();
    let (_, last_end) = v.span(3);
    let killed = executor
        .iter()
        .find(|(_, l)| l.contains(&format!("(pid {bg}) was killed by signal 9")))
        .unwrap_or_else(|| panic!("backdrop payload not torn down: {executor:?}"));
    assert!(killed.0 > last_end, "it outlived the steps");

    // Step 0: the second copy, in pa, is told apart by its cgroup; its output
    // and exit status are in the trace.
    let (_, started) = v.ok(0, 0);
    let step_copy = *pids(&started).first().unwrap();
    assert_ne!(step_copy, bg);
    let (_, status) = v.ok(0, 1);
    assert_eq!(value(&status), 0, "stress-ng exited 0");
    let ours = format!("stress: stress-ng: info:  [{step_copy}] successful run completed");
    assert!(
        stderr.iter().any(|(_, l)| l.starts_with(&ours)),
        "{stderr:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|(_, l)| l.contains(&format!("[{bg}] dispatching hogs")))
    );

    // Step 1: output on both streams, exit status 3, placement before exec,
    // and two copies killed one by one (by cgroup, then the last by name).
    assert_eq!(value(&v.ok(1, 1).1), 3 << 8, "wait(2) status of `exit 3`");
    assert!(stdout.iter().any(|(_, l)| l == "sh: out"), "{stdout:?}");
    assert!(stderr.iter().any(|(_, l)| l == "sh: err"), "{stderr:?}");
    assert_eq!(value(&v.ok(1, 3).1), 0);
    assert!(
        stdout.iter().any(|(_, l)| l == "cat: 0::/schedtape/pb"),
        "cat ran in pb: {stdout:?}"
    );
    let in_pa = *pids(&v.ok(1, 4).1).first().unwrap();
    let in_pb = *pids(&v.ok(1, 5).1).first().unwrap();
    assert_eq!(value(&v.ok(1, 6).1), 9, "SIGKILLed");
    assert_eq!(value(&v.ok(1, 7).1), 9, "SIGKILLed");
    let order: Vec<usize> = [in_pb, in_pa]
        .iter()
        .map(|p| {
            executor
                .iter()
                .position(|(_, l)| l.contains(&format!("(pid {p}) was killed")))
                .unwrap_or_else(|| panic!("no exit line for {p}"))
        })
        .collect();
    assert!(order[0] < order[1], "the copy in pb died first");

    // Steps 2 and 3: the steer op reports the accepted CPU, and ttyS0's
    // interrupts between two dumps land only there.
    assert_eq!(value(&v.ok(2, 0).1), 0b10);
    assert_eq!(value(&v.ok(3, 0).1), 0b01);
    let counts = ttys0_counts(&v);
    assert_eq!(counts.len(), 4, "four /proc/interrupts dumps: {stdout:?}");
    let delta = |i: usize| (counts[i + 1].0 - counts[i].0, counts[i + 1].1 - counts[i].1);
    let (cpu0, cpu1) = delta(0);
    assert!(
        cpu0 == 0 && cpu1 > 0,
        "steered to CPU 1, got +{cpu0}/+{cpu1}: {counts:?}"
    );
    let (cpu0, cpu1) = delta(2);
    assert!(
        cpu0 > 0 && cpu1 == 0,
        "steered to CPU 0, got +{cpu0}/+{cpu1}: {counts:?}"
    );
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn failing_op_fails_its_step_tears_down_and_closes_the_trace() {
    let (run, records) = run("ops-fail", None);
    assert_ne!(
        run.code(),
        Some(0),
        "a failed step fails the run: {}",
        run.log()
    );
    let v = View::new(records);
    let want = "ops[0] (add_cgroup): cgroup \"dup\" already exists";
    let rounds = v.op(1, 0);
    assert_eq!(rounds.len(), 2, "round 0 succeeds, round 1 fails");
    assert!(rounds[0].1.outcome.is_ok());
    match &rounds[1].1.outcome {
        OpOutcome::Failed { error } => assert!(error.contains("already exists"), "{error}"),
        other => panic!("round 1: {other:?}"),
    }
    let ends = pick(&v.records, |r| match r {
        Record::StepEnd { step, outcome } => Some((*step, outcome.clone())),
        _ => None,
    });
    assert_eq!(
        ends.len(),
        3,
        "steps 0, 1 and the backdrop end; step 2 never begins: {ends:?}"
    );
    assert_eq!(ends[0], (StepRef(0), StepOutcome::Completed));
    match &ends[1] {
        (StepRef(1), StepOutcome::Failed { error }) => assert!(error.starts_with(want), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ends[2].0, StepRef::BACKDROP);
    match v.end() {
        RunOutcome::GuestError { message } => {
            assert!(
                message.starts_with(&format!("step 1 (\"dup\"): {want}")),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Torn down: no worker is sampled after the backdrop ended.
    let backdrop_end = v
        .records
        .iter()
        .find(|t| matches!(t.record, Record::StepEnd { step, .. } if step == StepRef::BACKDROP))
        .unwrap()
        .ts_ns;
    assert!(
        v.records
            .iter()
            .all(|t| !matches!(t.record, Record::WorkerSample(_)) || t.ts_ns <= backdrop_end)
    );
    let (_, end1) = v.span(1);
    for w in v.in_cgroup("local", Some(StepRef(1))) {
        assert!(v.samples(w).iter().all(|(_, end, _)| *end <= end1));
    }
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn work_mix_runs_every_work_type() {
    let (run, records) = run("work-mix", None);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    let v = View::new(records);
    assert_eq!(v.end(), &RunOutcome::Completed);
    let spawned = pick(&v.records, |r| match r {
        Record::WorkerSpawned(w) => Some((w.worker, w.work.clone())),
        _ => None,
    });
    let kinds: BTreeSet<&str> = spawned.iter().map(|(_, k)| k.as_str()).collect();
    for k in [
        "pipe_io",
        "cache_pressure",
        "fork_exit",
        "affinity_churn",
        "policy_churn",
        "nice_sweep",
        "page_fault_churn",
        "futex_fan_out",
        "mutex_contention",
        "sequence",
        "futex_ping_pong",
        "io_sleep",
    ] {
        assert!(kinds.contains(k), "no {k} worker in {kinds:?}");
    }
    for (w, kind) in &spawned {
        let samples = v.samples(*w);
        let it: u64 = samples.iter().map(|(_, _, s)| s.iterations).sum();
        assert!(it > 0, "worker {w} ({kind}) made no progress");
        let wakes: u64 = samples
            .iter()
            .filter_map(|(_, _, s)| s.wake.as_ref().map(|x| x.hist.count()))
            .sum();
        let measures = matches!(
            kind.as_str(),
            "pipe_io" | "futex_fan_out" | "mutex_contention" | "futex_ping_pong"
        );
        assert_eq!(
            wakes > 0,
            measures,
            "worker {w} ({kind}) recorded {wakes} wake-ups"
        );
        if kind == "affinity_churn" {
            let cpus: BTreeSet<usize> = samples.iter().flat_map(|(_, _, s)| s.cpus()).collect();
            let migrations: u64 = samples
                .iter()
                .map(|(_, _, s)| u64::from(s.migrations))
                .sum();
            assert!(
                cpus.len() >= 2 && migrations > 10,
                "churned over {cpus:?}, {migrations} migrations"
            );
            assert!(
                cpus.is_subset(&BTreeSet::from([0, 1, 2])),
                "stayed in its cpuset: {cpus:?}"
            );
        }
    }
    let rounds = v.op(1, 0);
    assert!(
        rounds.len() >= 4,
        "the loop step swapped {} times",
        rounds.len()
    );
    assert!(rounds.iter().all(|(_, o)| o.outcome.is_ok()));
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn cpuset_churn_follows_every_cpuset_change() {
    let (run, records) = run("cpuset-churn", None);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    let v = View::new(records);
    assert_eq!(v.end(), &RunOutcome::Completed);
    let left = v.in_cgroup("left", Some(StepRef::BACKDROP));
    let right = v.in_cgroup("right", Some(StepRef::BACKDROP));
    assert_eq!((left.len(), right.len()), (3, 2));
    // (step, op after which to look, left's CPUs, right's CPUs).
    type Phase = (u16, Option<u16>, &'static [usize], &'static [usize]);
    let phases: [Phase; 4] = [
        (0, None, &[0, 1], &[2, 3]),
        (1, Some(1), &[0], &[3]),
        (2, Some(0), &[3], &[0]),
        (3, Some(1), &[0, 1], &[0, 1, 2, 3]),
    ];
    for (step, op, want_left, want_right) in phases {
        let want_left: BTreeSet<usize> = want_left.iter().copied().collect();
        let want_right: BTreeSet<usize> = want_right.iter().copied().collect();
        let (begin, end) = v.span(step);
        let from = op.map_or(begin, |o| v.ok(step, o).0);
        let (l, n) = v.cpus_between(&left, from, end);
        assert!(n >= 10, "step {step}: left sampled {n} times");
        assert!(
            !l.is_empty() && l.is_subset(&want_left),
            "step {step}: left on {l:?}, allowed {want_left:?}"
        );
        let (r, _) = v.cpus_between(&right, from, end);
        assert!(
            !r.is_empty() && r.is_subset(&want_right),
            "step {step}: right on {r:?}, allowed {want_right:?}"
        );
        if step == 2 {
            assert_eq!(
                (l, r),
                (want_left, want_right),
                "after the swap each runs on the other's CPU"
            );
        }
    }
}
