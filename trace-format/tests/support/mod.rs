//! Shared test data: a deterministic meta, one populated value per `Record`
//! variant, and a realistic record stream. Also used by the bench and the
//! fuzz seed writer, so scenario/meta shape changes are fixed in one place.
#![allow(dead_code)]

use trace_format::meta::{
    Acceleration, Backend, HostFingerprint, KernelIdentity, Meta, SCHEMA_VERSION, SchedulerIdentity,
};
use trace_format::record::*;
use trace_format::scenario::{DiffLimits, Ppm, Scenario, ThresholdsSpec, Topology, VerdictLimits};

/// The scenario stored in test metas. Fix here when `Scenario` changes.
/// Its thresholds pin the on-wire form of that section in `small.trace`.
pub fn test_scenario() -> Scenario {
    Scenario {
        thresholds: Some(ThresholdsSpec {
            verdicts: VerdictLimits {
                fairness_max_ratio: Some(Ppm(1_500_000)),
                max_gap_ns: Some(250_000_000),
                skip: vec!["runqueue-stall".into()],
                ..VerdictLimits::default()
            },
            diff: DiffLimits {
                noise_pct: Some(Ppm(2_000_000)),
                min_runs: Some(4),
                ..DiffLimits::default()
            },
        }),
        ..Scenario::default()
    }
}

/// The topology stored in test metas.
pub fn test_topology() -> Topology {
    Topology::default()
}

/// A fully deterministic meta.
pub fn test_meta() -> Meta {
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: "schedtape-test 0.0.0".into(),
        run_id: [
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
            0xFF, 0x00,
        ],
        started_unix_ns: 1_700_000_000_123_456_789,
        scenario: test_scenario(),
        kernel: KernelIdentity {
            release: "6.12.0-schedtape".into(),
            build_id: vec![0xAB; 20],
            config_hash: "0123456789abcdef".into(),
        },
        scheduler: Some(SchedulerIdentity {
            name: "scx_test".into(),
            sha256: [0x5A; 32],
            args: vec!["--slice-us".into(), "5000".into()],
        }),
        topology: test_topology(),
        backend: Backend::Synthetic,
        host: HostFingerprint {
            hostname: "testhost".into(),
            cpu_model: "Test CPU @ 3.0GHz".into(),
            cpus: 16,
            memory_mib: 65536,
            os: "6.8.0-host".into(),
        },
        sample_interval_ns: 100_000_000,
        snapshot_interval_ns: 100_000_000,
        notes: vec!["synthetic test trace".into()],
        acceleration: Some(Acceleration::KvmNested),
    }
}

fn hist(values: &[u64]) -> Log2Hist {
    let mut h = Log2Hist::default();
    for &v in values {
        h.record(v);
    }
    h
}

/// A `cpus`-row snapshot with realistic values at `tick` (100 ms apart).
pub fn snapshot_rows(cpus: usize, tick: u64) -> Vec<CpuRow> {
    (0..cpus)
        .map(|c| {
            let c64 = c as u64;
            CpuRow {
                nr_running: ((c64 + tick) % 4) as u32,
                cfs_nr_running: ((c64 + tick) % 3) as u32,
                scx_nr_running: ((c64 * 7 + tick) % 2) as u32,
                curr_pid: ((c64 * 13 + tick * 7) % 1000) as u32,
                // A guest up for a minute: clocks ~6e10 ns, counters in the millions.
                clock: 60_000_000_000 + tick * 100_000_000 + c64 * 1_234,
                nr_switches: 1_000_000 + tick * (800 + c64 * 3),
                run_delay_ns: 1_000_000_000 + tick * (900_000 + c64 * 1_000),
                pcount: 500_000 + tick * (700 + c64),
            }
        })
        .collect()
}

/// A realistic worker sample (100 ms of SpinWait) seen on `cpu`.
pub fn spin_sample(worker: u32, cpu: usize, tick: u64) -> WorkerSample {
    let mut cpus_seen = vec![0u64; cpu / 64 + 1];
    if let Some(w) = cpus_seen.last_mut() {
        *w = 1 << (cpu % 64);
    }
    WorkerSample {
        worker,
        iterations: 30_000 + (tick * 37 + u64::from(worker) * 11) % 500,
        run_ns: 95_000_000 + (tick * 7_919 + u64::from(worker) * 104_729) % 1_000_000,
        wait_ns: 3_000_000 + (tick * 1_237 + u64::from(worker) * 7_777) % 500_000,
        timeslices: 25 + ((tick + u64::from(worker)) % 5) as u32,
        migrations: ((tick + u64::from(worker)) % 2) as u32,
        voluntary_switches: 1,
        involuntary_switches: 24,
        cpus_seen,
        wake: None,
    }
}

/// One fully populated value per `Record` variant, with a file-name stem,
/// in variant order.
pub fn all_variants() -> Vec<(&'static str, Record)> {
    vec![
        ("step_begin", Record::StepBegin { step: StepRef(3) }),
        (
            "step_end",
            Record::StepEnd {
                step: StepRef(3),
                outcome: StepOutcome::EndedEarly {
                    reason: "scheduler exited".into(),
                },
            },
        ),
        (
            "op_applied",
            Record::OpApplied(OpApplied {
                step: StepRef(1),
                op: 4,
                round: 2,
                duration_ns: 1_234_567,
                outcome: OpOutcome::Pids(vec![101, 102, 65_000]),
            }),
        ),
        (
            "snapshot",
            Record::Snapshot(Snapshot {
                trigger: SnapshotTrigger::Op {
                    step: StepRef(2),
                    op: 1,
                },
                rendezvous_ns: 48_000,
                frozen_ns: 120_000,
                fields: RowFields::ALL,
                rows: snapshot_rows(4, 3),
            }),
        ),
        (
            "worker_spawned",
            Record::WorkerSpawned(WorkerSpawned {
                worker: 7,
                pid: 4242,
                step: StepRef::BACKDROP,
                cgroup: "batch/low".into(),
                work: "SpinWait".into(),
            }),
        ),
        (
            "worker_sample",
            Record::WorkerSample(WorkerSample {
                wake: Some(WakeStats {
                    max_ns: 750_000,
                    hist: hist(&[900, 20_000, 750_000]),
                }),
                cpus_seen: vec![0b1010, 1 << 63],
                ..spin_sample(7, 3, 1)
            }),
        ),
        (
            "kernel_access",
            Record::KernelAccess(KernelAccess {
                step: StepRef(0),
                op: 2,
                kind: AccessKind::WriteCold,
                symbol: "sysctl_sched_migration_cost".into(),
                cpu: Some(5),
                width: 4,
                value: 500_000,
                error: Some("EPERM".into()),
            }),
        ),
        (
            "scheduler_event",
            Record::SchedulerEvent(SchedulerEvent {
                scheduler: "scx_test".into(),
                event: SchedulerEventKind::Counters(vec![
                    ("dispatched".into(), 12_345),
                    ("stalls".into(), 0),
                ]),
            }),
        ),
        (
            "console",
            Record::Console(ConsoleLine {
                source: ConsoleSource::PayloadStderr,
                line: "hello, wörld".into(),
            }),
        ),
        (
            "drop",
            Record::Drop(DropReport {
                records: 17,
                reason: "ring full".into(),
            }),
        ),
        (
            "verdict",
            Record::Verdict(Verdict {
                name: "fairness".into(),
                outcome: VerdictOutcome::Inconclusive,
                detail: "share 0.48 vs 0.52".into(),
            }),
        ),
        (
            "end",
            Record::End(RunOutcome::Timeout {
                after_ns: 60_000_000_000,
            }),
        ),
        (
            "worker_exited",
            Record::WorkerExited(WorkerExited {
                worker: 7,
                pid: 4242,
                cgroup: "mem/small".into(),
                how: ExitHow::Killed { signal: SIGKILL },
            }),
        ),
        (
            "worker_errors",
            Record::WorkerErrors(WorkerErrors {
                worker: 7,
                failed: 1_234,
                op: "fork".into(),
                errno: 11,
            }),
        ),
        (
            "memory_events",
            Record::MemoryEvents(MemoryEvents {
                cgroup: "mem/small".into(),
                oom: 3,
                oom_kill: 2,
                oom_group_kill: 0,
            }),
        ),
    ]
}

/// Other sub-variants, for round-trip coverage beyond [`all_variants`].
pub fn more_variants() -> Vec<Record> {
    vec![
        Record::StepEnd {
            step: StepRef(0),
            outcome: StepOutcome::Completed,
        },
        Record::StepEnd {
            step: StepRef(1),
            outcome: StepOutcome::Failed {
                error: "EINVAL".into(),
            },
        },
        Record::OpApplied(OpApplied {
            step: StepRef(0),
            op: 0,
            round: 0,
            duration_ns: 0,
            outcome: OpOutcome::Done,
        }),
        Record::OpApplied(OpApplied {
            step: StepRef(0),
            op: 1,
            round: 9,
            duration_ns: u64::MAX,
            outcome: OpOutcome::Value(u64::MAX),
        }),
        Record::OpApplied(OpApplied {
            step: StepRef::BACKDROP,
            op: u16::MAX,
            round: u32::MAX,
            duration_ns: 5,
            outcome: OpOutcome::Failed {
                error: "nope".into(),
            },
        }),
        Record::Snapshot(Snapshot {
            trigger: SnapshotTrigger::Periodic,
            rendezvous_ns: 0,
            frozen_ns: 0,
            fields: RowFields(RowFields::NR_RUNNING | RowFields::CLOCK),
            rows: vec![],
        }),
        Record::KernelAccess(KernelAccess {
            step: StepRef(0),
            op: 0,
            kind: AccessKind::ReadHot,
            symbol: "jiffies".into(),
            cpu: None,
            width: 8,
            value: u64::MAX,
            error: None,
        }),
        Record::SchedulerEvent(SchedulerEvent {
            scheduler: "s".into(),
            event: SchedulerEventKind::Attached,
        }),
        Record::SchedulerEvent(SchedulerEvent {
            scheduler: "s".into(),
            event: SchedulerEventKind::Detached,
        }),
        Record::SchedulerEvent(SchedulerEvent {
            scheduler: "s".into(),
            event: SchedulerEventKind::Exited {
                kind: "error".into(),
                reason: "stall".into(),
            },
        }),
        Record::SchedulerEvent(SchedulerEvent {
            scheduler: "s".into(),
            event: SchedulerEventKind::DumpLine("CPU 0: nr_run=1".into()),
        }),
        Record::Console(ConsoleLine {
            source: ConsoleSource::Kernel,
            line: String::new(),
        }),
        Record::Console(ConsoleLine {
            source: ConsoleSource::Executor,
            line: "x".repeat(300),
        }),
        Record::Console(ConsoleLine {
            source: ConsoleSource::PayloadStdout,
            line: "out".into(),
        }),
        Record::Verdict(Verdict {
            name: "a".into(),
            outcome: VerdictOutcome::Pass,
            detail: String::new(),
        }),
        Record::Verdict(Verdict {
            name: "b".into(),
            outcome: VerdictOutcome::Fail,
            detail: "d".into(),
        }),
        Record::End(RunOutcome::Completed),
        Record::End(RunOutcome::KernelPanic {
            message: "Oops".into(),
        }),
        Record::End(RunOutcome::Interrupted),
        Record::End(RunOutcome::GuestError {
            message: "g".into(),
        }),
        Record::End(RunOutcome::HostError {
            message: "h".into(),
        }),
        Record::WorkerExited(WorkerExited {
            worker: 0,
            pid: u32::MAX,
            cgroup: String::new(),
            how: ExitHow::Exited { code: 255 },
        }),
        Record::MemoryEvents(MemoryEvents::default()),
    ]
}

/// A realistic run: one step with `workers` SpinWait workers sampled and a
/// `cpus`-CPU snapshot taken every 100 ms, for `ticks` ticks, then `End`.
pub fn realistic_stream(workers: u32, cpus: usize, ticks: u64) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    out.push((0, Record::StepBegin { step: StepRef(0) }));
    for w in 0..workers {
        out.push((
            1_000 + u64::from(w),
            Record::WorkerSpawned(WorkerSpawned {
                worker: w,
                pid: 200 + w,
                step: StepRef(0),
                cgroup: if w % 2 == 0 { "a".into() } else { "b".into() },
                work: "SpinWait".into(),
            }),
        ));
    }
    for tick in 1..=ticks {
        let ts = tick * 100_000_000;
        out.push((
            ts,
            Record::Snapshot(Snapshot {
                trigger: SnapshotTrigger::Periodic,
                rendezvous_ns: 40_000 + tick % 1000,
                frozen_ns: 90_000 + tick % 777,
                fields: RowFields::ALL,
                rows: snapshot_rows(cpus, tick),
            }),
        ));
        for w in 0..workers {
            let cpu = usize::try_from(w).unwrap_or(0) % cpus.max(1);
            out.push((ts + 50_000, Record::WorkerSample(spin_sample(w, cpu, tick))));
        }
    }
    let end = (ticks + 1) * 100_000_000;
    out.push((
        end,
        Record::StepEnd {
            step: StepRef(0),
            outcome: StepOutcome::Completed,
        },
    ));
    out.push((
        end,
        Record::Drop(DropReport {
            records: 3,
            reason: "test".into(),
        }),
    ));
    out.push((end + 1, Record::End(RunOutcome::Completed)));
    out
}

/// Writes `records` into an in-memory trace with `limits`.
pub fn write_trace(records: &[(u64, Record)], limits: trace_format::file::ChunkLimits) -> Vec<u8> {
    let mut w = trace_format::file::TraceWriter::with_limits(Vec::new(), &test_meta(), limits)
        .expect("header");
    for (ts, r) in records {
        w.append(*ts, r).expect("append");
    }
    w.finish().expect("finish")
}

/// A damaged trace built to make a naive recovery scan quadratic: after the
/// header and meta, fake chunk headers every 32 bytes (and a fake index frame
/// every 8th slot), each sane and claiming a payload that runs to the last
/// chunk, all with wrong CRCs, then one genuine chunk and no trailer. About
/// `len` bytes. Returns the bytes and the genuine chunk's offset.
#[allow(clippy::cast_possible_truncation)] // test sizes are small
pub fn crafted_resync_trace(len: usize) -> (Vec<u8>, usize) {
    use trace_format::file::{CHUNK_SYNC, INDEX_SYNC, Trace};
    let full = write_trace(
        &[(5, Record::End(RunOutcome::Completed))],
        trace_format::file::ChunkLimits::default(),
    );
    let trace = Trace::open(&full).expect("open");
    let chunk = &trace.chunks()[0];
    let chunk_at = chunk.offset as usize;
    let real = full[chunk_at..chunk_at + chunk.total_len() as usize].to_vec();
    let mut out = full[..chunk_at].to_vec();
    let slots = len.saturating_sub(out.len() + real.len()) / 32;
    let real_at = out.len() + slots * 32;
    for i in 0..slots {
        let at = out.len();
        if i % 8 == 7 {
            // INDEX_SYNC, a 5-byte varint length reaching the genuine chunk.
            let body_len = (real_at - (at + 9)) as u64;
            out.extend_from_slice(&INDEX_SYNC.to_le_bytes());
            let mut v = body_len;
            for _ in 0..4 {
                out.push((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
            out.extend_from_slice(&[0xEE; 23]);
        } else {
            let payload = (real_at - (at + 32)) as u32;
            out.extend_from_slice(&CHUNK_SYNC.to_le_bytes());
            out.extend_from_slice(&(i as u32).to_le_bytes()); // seq
            out.extend_from_slice(&payload.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes()); // records
            out.extend_from_slice(&0xBAD0_C0DEu32.to_le_bytes()); // crc
            out.extend_from_slice(&[2, 0, 0, 0]); // codec, reserved
            out.extend_from_slice(&0u64.to_le_bytes()); // first ts
        }
    }
    out.extend_from_slice(&real);
    (out, real_at)
}
