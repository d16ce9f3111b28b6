//! Host-side kernel introspection under QEMU: snapshots of pinned workers,
//! hot/cold kernel access, KASLR on and off, and refusing a wrong vmlinux.
use std::collections::BTreeSet;

use e2e::{pick, project_kernel_dir, run_scenario};
use trace_format::record::{
    AccessKind, KernelAccess, OpOutcome, Record, RunOutcome, Snapshot, SnapshotTrigger, StepRef,
    Timed,
};

fn snapshots(records: &[Timed]) -> Vec<Snapshot> {
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

/// Checks snapshots of the `introspect` scenario; returns the KASLR placement.
fn check_introspect_run(extra: &[&str]) -> (u64, u64) {
    let run = run_scenario("introspect", extra);
    assert_eq!(run.code(), Some(0), "{}", run.log());
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
    let slices: Vec<u64> = access
        .iter()
        .filter(|a| a.kind == AccessKind::ReadHot && a.symbol == "sysctl_sched_base_slice")
        .map(|a| a.value)
        .collect();
    assert_eq!(
        slices, [200_000_000; 2],
        "read back at once and after the step"
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
    assert_eq!(values.len(), 5, "every read returns a value");

    // The guest lives with the longer slice: its spinners on CPU 1 are
    // preempted far less often (involuntary switches, read inside the guest;
    // both steps hold 2 s with two such workers, so totals compare directly).
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
    let (before, after) = (preemptions("pair"), preemptions("pair2"));
    eprintln!("CPU 1 pair preemptions: {before} with the default slice, {after} with 200 ms");
    assert!(
        after * 4 < before * 3,
        "base_slice 200 ms should cut preemptions: {before} before, {after} after"
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

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn kaslr_snapshots_and_kernel_access_work() {
    let (slide, phys_base) = check_introspect_run(&[]);
    // KASLR randomises both; both staying at zero is a ~1 in 10^5 event.
    assert!(slide != 0 || phys_base != 0, "the kernel was not relocated");
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn no_kaslr_snapshots_and_kernel_access_work() {
    let (slide, phys_base) = check_introspect_run(&["--no-kaslr"]);
    assert_eq!((slide, phys_base), (0, 0));
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn wrong_vmlinux_is_refused() {
    let vmlinux = project_kernel_dir().join("vmlinux");
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&vmlinux).unwrap();
    let id = vmm::introspect::elf::read_build_id(&vmlinux).unwrap();
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .expect("build-id bytes in the file");
    bytes[at] ^= 0xff;
    let wrong = dir.path().join("vmlinux");
    std::fs::write(&wrong, &bytes).unwrap();
    drop(bytes);
    let wrong_key = vmm::introspect::source::read_key(&wrong).unwrap();
    let run = run_scenario("smoke", &["--vmlinux", wrong.to_str().unwrap()]);
    // The junk layout must not linger in the cache.
    if let Some(cache) = vmm::introspect::cache::default_dir() {
        let _ = std::fs::remove_file(vmm::introspect::cache::path_for(&cache, &wrong_key));
    }
    assert_eq!(run.code(), Some(3), "{}", run.log());
    assert!(
        run.stderr().contains("is not the running kernel"),
        "{}",
        run.stderr()
    );
    let records = run.records();
    let Some(Record::End(RunOutcome::HostError { message })) = records.last().map(|t| &t.record)
    else {
        panic!("run did not end with a host error: {:?}", records.last());
    };
    assert!(message.contains("refusing the vmlinux"), "{message}");
    assert!(
        snapshots(&records).is_empty(),
        "no snapshot from a wrong vmlinux"
    );
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn watch_snapshot_is_a_clear_error_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("watch.toml");
    std::fs::write(
        &scenario,
        "name = \"watch\"\ndescription = \"watch_snapshot on QEMU\"\ntopology = \"1n1l1c1t\"\n\
         duration = \"200ms\"\n\n[[steps]]\nhold = \"200ms\"\n\
         ops = [{ watch_snapshot = { symbol = \"sysctl_sched_base_slice\" } }]\n",
    )
    .unwrap();
    let run = run_scenario(scenario.to_str().unwrap(), &[]);
    assert_eq!(run.code(), Some(3), "{}", run.log());
    let records = run.records();
    let errors = pick(&records, |r| match r {
        Record::OpApplied(o) => match &o.outcome {
            OpOutcome::Failed { error } => Some(error.clone()),
            _ => None,
        },
        _ => None,
    });
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unsupported on the QEMU backend")),
        "{errors:?}"
    );
}
