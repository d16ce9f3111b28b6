//! Assertions on traces shared by the QEMU tests and the nested lane's
//! (tests/nested.rs): each takes a finished [`Run`] and checks what its
//! scenario must show, whichever backend recorded it. Exit codes are the
//! callers' (a nested run may fail a timing verdict and still be judged here).
use std::collections::BTreeSet;
use std::process::Command;

use trace_format::record::{
    AccessKind, ConsoleSource, KernelAccess, OpOutcome, Record, RunOutcome, SchedulerEvent,
    SchedulerEventKind, Snapshot, SnapshotTrigger, StepOutcome, StepRef, Timed, WorkerSample,
};

use crate::{Run, pick, root};

pub fn snapshots(records: &[Timed]) -> Vec<Snapshot> {
    pick(records, |r| match r {
        Record::Snapshot(s) => Some(s.clone()),
        _ => None,
    })
}

fn host_notes(records: &[Timed]) -> Vec<String> {
    pick(records, |r| match r {
        Record::Console(c) if c.source == trace_format::record::ConsoleSource::Host => {
            Some(c.line.clone())
        }
        _ => None,
    })
}

/// (slide, phys_base) from the recorder's "kernel found" note.
fn placement(records: &[Timed]) -> (u64, u64) {
    let notes = host_notes(records);
    let line = notes
        .iter()
        .find(|l| l.starts_with("kernel found in guest memory"))
        .unwrap_or_else(|| panic!("no kernel-found note in {notes:?}"));
    let hex_after = |key: &str| {
        let at = line.find(key).expect(key) + key.len();
        let digits: String = line[at..]
            .trim_start_matches("0x")
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        u64::from_str_radix(&digits, 16).expect("hex")
    };
    (hex_after("KASLR slide "), hex_after("phys_base "))
}

/// Timestamps of step `i`'s begin and end records.
fn step_span(records: &[Timed], i: usize) -> (u64, u64) {
    let step = StepRef(u16::try_from(i).unwrap());
    let at = |begin: bool| {
        records
            .iter()
            .find(|t| match &t.record {
                Record::StepBegin { step: s } => begin && *s == step,
                Record::StepEnd { step: s, .. } => !begin && *s == step,
                _ => false,
            })
            .map(|t| t.ts_ns)
            .expect("step begins and ends")
    };
    (at(true), at(false))
}

/// Checks the trace of an `introspect` scenario run; returns the KASLR placement.
pub fn introspect_run(run: &Run) -> (u64, u64) {
    let records = run.records();
    let bytes = std::fs::read(&run.trace).unwrap();
    let trace = trace_format::file::Trace::open(&bytes).unwrap();
    let meta = trace.meta();
    assert_eq!(meta.snapshot_interval_ns, 100_000_000);
    assert!(
        !meta.notes.iter().any(|n| n.contains("not recorded")),
        "{:?}",
        meta.notes
    );

    let pids: BTreeSet<u32> = pick(&records, |r| match r {
        Record::WorkerSpawned(w) => Some(w.pid),
        _ => None,
    })
    .into_iter()
    .collect();
    let snaps = snapshots(&records);
    let periodic = snaps
        .iter()
        .filter(|s| s.trigger == SnapshotTrigger::Periodic)
        .count();
    assert!(periodic >= 10, "only {periodic} periodic snapshots");
    // The recorder stops snapshotting once the guest has said it is done,
    // so none is taken while the kernel reboots.
    if let Some(reboot) = records.iter().find(|t| {
        matches!(&t.record, Record::Console(c)
            if c.source == ConsoleSource::Kernel && c.line.contains("reboot: Restarting system"))
    }) {
        let late: Vec<u64> = records
            .iter()
            .filter(|t| matches!(t.record, Record::Snapshot(_)) && t.ts_ns > reboot.ts_ns)
            .map(|t| t.ts_ns)
            .collect();
        assert!(
            late.is_empty(),
            "snapshots at {late:?} ns, after the kernel began to reboot at {} ns",
            reboot.ts_ns
        );
    }
    let on_op: Vec<_> = snaps
        .iter()
        .filter_map(|s| match s.trigger {
            SnapshotTrigger::Op { step, op } => Some((step, op)),
            SnapshotTrigger::Periodic => None,
        })
        .collect();
    assert_eq!(on_op, vec![(StepRef(0), 0), (StepRef(1), 4)]);

    // Every CPU runs one of our spinners in most snapshots.
    let good = snaps
        .iter()
        .filter(|s| {
            s.rows.len() == 2
                && s.rows
                    .iter()
                    .all(|r| r.nr_running >= 1 && pids.contains(&r.curr_pid))
        })
        .count();
    eprintln!(
        "snapshots with our workers on every CPU: {good} of {}",
        snaps.len()
    );
    // Measured on a shared 2-core host: 50 of 57 and 54 of 61 (88 %); a
    // kworker or the idle task caught at a freeze explains the rest. Half
    // leaves ~40 points of margin; a snapshot reading the wrong rq gets ~0.
    assert!(
        good * 2 >= snaps.len(),
        "{good} of {} snapshots show our workers running on every CPU: {:?}",
        snaps.len(),
        snaps.iter().map(|s| &s.rows).collect::<Vec<_>>()
    );
    // rq.clock never goes back, and advances between almost all snapshots
    // (a CPU that took no tick between two close snapshots may not; measured:
    // every pair of 56 and 60 on both CPUs, so 90 % is a wide margin).
    for cpu in 0..2 {
        let clocks: Vec<u64> = snaps.iter().map(|s| s.rows[cpu].clock).collect();
        assert!(
            clocks.windows(2).all(|w| w[1] >= w[0]),
            "cpu {cpu} clock went back: {clocks:?}"
        );
        let rising = clocks.windows(2).filter(|w| w[1] > w[0]).count();
        eprintln!(
            "cpu {cpu}: rq.clock rose between {rising} of {} snapshot pairs",
            clocks.len() - 1
        );
        assert!(
            rising * 10 >= (clocks.len() - 1) * 9,
            "cpu {cpu} clock did not advance: {clocks:?}"
        );
    }
    for s in &snaps {
        assert!(s.rendezvous_ns > 0 && s.frozen_ns > 0);
    }

    // Kernel access: values and the guest-visible effect of the cold writes.
    let access: Vec<KernelAccess> = pick(&records, |r| match r {
        Record::KernelAccess(k) => Some(k.clone()),
        _ => None,
    });
    for a in &access {
        assert_eq!(a.error, None, "{a:?}");
    }
    let value = |kind: AccessKind, symbol: &str| {
        access
            .iter()
            .find(|a| a.kind == kind && a.symbol == symbol)
            .unwrap_or_else(|| panic!("no {kind:?} of {symbol} in {access:?}"))
            .value
    };
    assert!(
        value(AccessKind::ReadHot, "runqueues+4") >= 1,
        "CPU 1 runs our workers"
    );
    assert!(
        value(AccessKind::ReadCold, "runqueues+4") >= 1,
        "CPU 0 runs our worker"
    );
    assert_eq!(
        value(AccessKind::WriteCold, "sysctl_sched_base_slice"),
        200_000_000
    );
    assert_eq!(
        value(AccessKind::WriteHot, "sysctl_sched_base_slice"),
        3_000_000
    );
    let slices: Vec<u64> = access
        .iter()
        .filter(|a| a.kind == AccessKind::ReadHot && a.symbol == "sysctl_sched_base_slice")
        .map(|a| a.value)
        .collect();
    assert_eq!(
        slices,
        [200_000_000, 3_000_000, 3_000_000],
        "each write read back at once, the hot one also after its step"
    );
    assert_eq!(
        value(AccessKind::ReadHot, "sysctl_sched_rt_runtime"),
        900_000
    );
    let values = pick(&records, |r| match r {
        Record::OpApplied(o) if matches!(o.outcome, OpOutcome::Value(_)) => Some(o.op),
        Record::OpApplied(o) => {
            assert!(o.outcome.is_ok(), "{o:?}");
            None
        }
        _ => None,
    });
    assert_eq!(values.len(), 6, "every read returns a value");

    // The guest lives with the slice written last: its spinners on CPU 1 are
    // preempted far less often with 200 ms, and often again with 3 ms
    // (involuntary switches, read inside the guest; the three steps hold 2 s
    // with two such workers each, so totals compare directly).
    let preemptions = |cgroup: &str| -> u64 {
        let workers: BTreeSet<u32> = pick(&records, |r| match r {
            Record::WorkerSpawned(w) if w.cgroup == cgroup => Some(w.worker),
            _ => None,
        })
        .into_iter()
        .collect();
        pick(&records, |r| match r {
            Record::WorkerSample(s) if workers.contains(&s.worker) => {
                Some(u64::from(s.involuntary_switches))
            }
            _ => None,
        })
        .iter()
        .sum()
    };
    // EEVDF still preempts on wake-ups and reweights, so the cut varies from
    // run to run (seen: 1.75x to 27x; on a loaded shared host 10x and 1.83x);
    // demand a clear one (1.33x, under the smallest seen), not a fixed size.
    let (before, after, hot) = (
        preemptions("pair"),
        preemptions("pair2"),
        preemptions("pair3"),
    );
    eprintln!(
        "CPU 1 pair preemptions: {before} with the default slice, {after} with 200 ms (cold write), {hot} with 3 ms (hot write)"
    );
    assert!(
        after * 4 < before * 3,
        "base_slice 200 ms should cut preemptions: {before} before, {after} after"
    );
    assert!(
        after * 4 < hot * 3,
        "base_slice 3 ms (hot write) should bring preemptions back: {after} with 200 ms, {hot} after"
    );
    // The host reads a live rq.nr_switches: it never goes back, and CPU 1
    // (a spinner and a ping-pong pair) switches within each step. Its rate
    // before and after is not compared: on a loaded host the medians were
    // seen both 124 -> 22 and 106 -> 126 switches/s.
    for step in 0..2 {
        let (from, to) = step_span(&records, step);
        let switches: Vec<u64> = records
            .iter()
            .filter(|t| (from..to).contains(&t.ts_ns))
            .filter_map(|t| match &t.record {
                Record::Snapshot(s) => Some(s.rows[1].nr_switches),
                _ => None,
            })
            .collect();
        assert!(
            switches.windows(2).all(|w| w[1] >= w[0]),
            "step {step}: CPU 1 nr_switches went back: {switches:?}"
        );
        assert!(
            switches.last() > switches.first(),
            "step {step}: CPU 1 nr_switches did not move: {switches:?}"
        );
    }
    placement(&records)
}

/// The scheduler events of a run.
pub fn events(run: &Run) -> Vec<SchedulerEvent> {
    pick(&run.records(), |r| match r {
        Record::SchedulerEvent(e) => Some(e.clone()),
        _ => None,
    })
}

/// `replay ARGS…`: its stdout, after checking it succeeded.
pub fn replay(args: &[&str]) -> String {
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

pub fn end(run: &Run) -> RunOutcome {
    match run.records().last().map(|t| &t.record) {
        Some(Record::End(o)) => o.clone(),
        other => panic!(
            "the trace does not end with End: {other:?}\n{}",
            run.stderr()
        ),
    }
}

/// Checks a `sched-lifecycle` run: attach, replace, restart and detach recorded.
pub fn sched_lifecycle(run: &Run) {
    assert_eq!(end(run), RunOutcome::Completed);
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
    let evs = events(run);
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

/// The executor's console lines about the topology sysfs shows.
pub fn topology_lines(records: &[Timed]) -> Vec<String> {
    pick(records, |r| match r {
        Record::Console(c)
            if c.source == ConsoleSource::Executor && c.line.starts_with("topology") =>
        {
            Some(c.line.clone())
        }
        _ => None,
    })
}

/// Checks a `smoke` run's trace: both steps completed, every worker made
/// progress, the guest saw 1n1l2c1t, the live verdicts and `End(Completed)` closed it.
pub fn smoke_trace(run: &Run) {
    let records = run.records();
    let begins = pick(&records, |r| match r {
        Record::StepBegin { step } => Some(*step),
        _ => None,
    });
    let ends = pick(&records, |r| match r {
        Record::StepEnd { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(begins.len(), 2, "both steps begin");
    assert_eq!(ends, vec![StepOutcome::Completed, StepOutcome::Completed]);
    let spawned = pick(&records, |r| match r {
        Record::WorkerSpawned(w) => Some(w.worker),
        _ => None,
    });
    assert_eq!(spawned.len(), 6, "4 workers in step 0, 2 in step 1");
    let mut progress: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for s in pick(&records, |r| match r {
        Record::WorkerSample(s) => Some(s.clone()),
        _ => None,
    }) {
        *progress.entry(s.worker).or_default() += s.iterations;
    }
    for w in &spawned {
        assert!(
            progress.get(w).copied().unwrap_or(0) > 0,
            "worker {w} made no progress: {progress:?}"
        );
    }
    let topology = topology_lines(&records);
    assert!(
        topology.len() == 1 && topology[0].starts_with("topology: the guest sees 1n1l2c1t "),
        "{topology:?}"
    );
    // The live verdicts are recorded too, just before End.
    let verdicts = pick(&records, |r| match r {
        Record::Verdict(v) => Some(v.name.clone()),
        _ => None,
    });
    assert_eq!(verdicts, replay::verdict::NAMES, "{}", run.stderr());
    assert!(matches!(
        records.iter().rev().nth(1).map(|t| &t.record),
        Some(Record::Verdict(_))
    ));
    assert!(matches!(
        records.last().map(|t| &t.record),
        Some(Record::End(RunOutcome::Completed))
    ));
}

/// Checks a run asked for `topology`: the guest saw it, and every CPU's run queue was read.
pub fn topology_run(run: &Run, topology: &str) {
    assert!(
        !run.stderr().contains("topology mismatch"),
        "{}",
        run.stderr()
    );
    let records = run.records();
    let lines = topology_lines(&records);
    assert_eq!(lines.len(), 1, "{topology}: {lines:?}");
    assert!(
        lines[0].starts_with(&format!("topology: the guest sees {topology} ")),
        "{lines:?}"
    );
    // Every CPU's run queue was read, wherever its node's memory sits in
    // the host mapping (under QEMU, one RAM file per node).
    let snapshots = pick(&records, |r| match r {
        Record::Snapshot(s) => Some(s.rows.clone()),
        _ => None,
    });
    assert!(!snapshots.is_empty(), "{topology}: no snapshots");
    for rows in &snapshots {
        let cpus = u32::try_from(rows.len()).unwrap();
        assert_eq!(
            cpus,
            trace_format::scenario::Topology::parse(topology)
                .unwrap()
                .cpus()
        );
        assert!(
            rows.iter().all(|r| r.clock > 0 && r.nr_switches > 0),
            "{rows:?}"
        );
    }
}

/// Checks a run whose kernel panicked: `End(KernelPanic)` with the reason, the console tail kept.
pub fn ends_in_kernel_panic(run: &Run) {
    let records = run.records();
    let Some(Record::End(RunOutcome::KernelPanic { message })) = records.last().map(|t| &t.record)
    else {
        panic!("last record is not a kernel panic: {:?}", records.last());
    };
    assert!(message.contains("Kernel panic"), "{message}");
    let console = pick(&records, |r| match r {
        Record::Console(c) if c.source == ConsoleSource::Kernel => Some(c.line.clone()),
        _ => None,
    });
    assert!(
        console.iter().any(|l| l.contains("Kernel panic")),
        "console tail is in the trace"
    );
}

/// Checks a run of a hung guest: the watchdog closed the trace with `End(Timeout)`.
pub fn ends_in_timeout(run: &Run) {
    let records = run.records();
    assert!(
        matches!(
            records.last().map(|t| &t.record),
            Some(Record::End(RunOutcome::Timeout { .. }))
        ),
        "{:?}",
        records.last()
    );
    assert!(!pick(&records, |r| matches!(r, Record::Console(_)).then_some(())).is_empty());
}

/// Checks an `ops-cgroups` run's freeze and thaw (steps 4 and 5): b's
/// backdrop worker makes no progress while its cgroup is frozen and resumes
/// after the thaw, while a's keeps running.
pub fn cgroup_freeze_thaw(records: &[Timed]) {
    let backdrop = |cgroup: &str| -> u32 {
        let w = pick(records, |r| match r {
            Record::WorkerSpawned(w) if w.cgroup == cgroup && w.step == StepRef::BACKDROP => {
                Some(w.worker)
            }
            _ => None,
        });
        assert_eq!(w.len(), 1, "one backdrop worker in {cgroup}: {w:?}");
        w[0]
    };
    let (a, b) = (backdrop("a"), backdrop("b"));
    let applied = |step: u16| -> u64 {
        records
            .iter()
            .find_map(|t| match &t.record {
                Record::OpApplied(o) if o.step == StepRef(step) && o.op == 0 => {
                    assert!(o.outcome.is_ok(), "step {step}: {:?}", o.outcome);
                    Some(t.ts_ns)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("step {step}'s op 0 was never applied"))
    };
    let (freeze_ts, thaw_ts) = (applied(4), applied(5));
    let (_, end5) = step_span(records, 5);
    let frozen = iterations_between(records, b, freeze_ts, thaw_ts);
    assert!(frozen.len() >= 4, "b was sampled while frozen: {frozen:?}");
    assert!(
        frozen.iter().all(|&i| i == 0),
        "frozen b progressed: {frozen:?}"
    );
    let thawed = iterations_between(records, b, thaw_ts, end5);
    assert!(
        thawed.len() >= 4 && thawed.iter().all(|&i| i > 0),
        "b resumed: {thawed:?}"
    );
    let running = iterations_between(records, a, freeze_ts, thaw_ts);
    assert!(
        running.len() >= 4 && running.iter().all(|&i| i > 0),
        "a kept running while b was frozen: {running:?}"
    );
}

/// Iterations of `worker` in each sample interval that lies within
/// `[from, to]` (the first interval starts at 0).
fn iterations_between(records: &[Timed], worker: u32, from: u64, to: u64) -> Vec<u64> {
    let mut prev = 0;
    let mut out = Vec::new();
    for t in records {
        if let Record::WorkerSample(WorkerSample {
            worker: w,
            iterations,
            ..
        }) = &t.record
            && *w == worker
        {
            if prev >= from && t.ts_ns <= to {
                out.push(*iterations);
            }
            prev = t.ts_ns;
        }
    }
    out
}

/// Lines Linux logged on our KVM VMM before its ACPI PM1 block kept what the
/// guest wrote and before it offered PCI config mechanism #1: neither may
/// come back.
pub const FIRMWARE_COMPLAINTS: [&str; 2] = [
    "ACPI Error: Could not enable GlobalLock event",
    "PCI: Fatal: No config space access function found",
];

/// Checks that the kernel's console, recorded from its first line, has none
/// of [`FIRMWARE_COMPLAINTS`].
pub fn no_firmware_complaints(records: &[Timed]) {
    let console = pick(records, |r| match r {
        Record::Console(c) if c.source == ConsoleSource::Kernel => Some(c.line.clone()),
        _ => None,
    });
    assert!(
        console.iter().any(|l| l.contains("Linux version")),
        "the kernel's boot is not on its recorded console: {console:?}"
    );
    for complaint in FIRMWARE_COMPLAINTS {
        assert!(
            !console.iter().any(|l| l.contains(complaint)),
            "the kernel logged {complaint:?}: {console:?}"
        );
    }
}
