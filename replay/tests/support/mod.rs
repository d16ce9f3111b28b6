//! Builds realistic traces with the real writer for the CLI tests.
#![allow(
    clippy::cast_possible_truncation,
    reason = "synthetic test values are small"
)]
use std::path::Path;

use trace_format::file::{ChunkLimits, TraceWriter};
use trace_format::meta::{Backend, HostFingerprint, KernelIdentity, Meta, SCHEMA_VERSION};
use trace_format::record::*;
use trace_format::scenario::Scenario;

/// Shape of a synthetic run.
#[derive(Debug, Clone, Copy)]
pub struct Synth {
    /// Multiplies every worker's iteration rate.
    pub speed: f64,
    /// Keep only this many leading bytes of the file, as a crashed writer would.
    pub truncate_to: Option<usize>,
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            speed: 1.0,
            truncate_to: None,
        }
    }
}

pub fn scenario() -> Scenario {
    let text = include_str!("../../../fixtures/scenarios/smoke.toml");
    Scenario::from_toml_str(text).expect("smoke scenario parses")
}

pub fn meta() -> Meta {
    let scenario = scenario();
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: "replay-tests".into(),
        run_id: [7; 16],
        started_unix_ns: 1_790_000_000_000_000_000,
        topology: scenario.topology,
        scenario,
        kernel: KernelIdentity {
            release: "6.12.0-test".into(),
            build_id: vec![0xab; 20],
            config_hash: "c0ffee".into(),
        },
        scheduler: None,
        backend: Backend::Synthetic,
        host: HostFingerprint {
            hostname: "test".into(),
            cpu_model: "synthetic".into(),
            cpus: 2,
            memory_mib: 1024,
            os: "linux".into(),
        },
        sample_interval_ns: 100_000_000,
        snapshot_interval_ns: 0,
        notes: vec![],
    }
}

/// Two steps, cgroups `a` (weight 200) and `b`, two workers each, 10 samples per step.
pub fn records(speed: f64) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut worker = 0u32;
    for step in 0..2u16 {
        out.push((
            t,
            Record::StepBegin {
                step: StepRef(step),
            },
        ));
        out.push((
            t,
            Record::OpApplied(OpApplied {
                step: StepRef(step),
                op: 0,
                round: 0,
                duration_ns: 12_000,
                outcome: OpOutcome::Done,
            }),
        ));
        let mut ids = Vec::new();
        for cg in ["a", "b"] {
            for _ in 0..2 {
                out.push((
                    t,
                    Record::WorkerSpawned(WorkerSpawned {
                        worker,
                        pid: 100 + worker,
                        step: StepRef(step),
                        cgroup: cg.into(),
                        work: "SpinWait".into(),
                    }),
                ));
                ids.push((worker, cg));
                worker += 1;
            }
        }
        for _ in 0..10 {
            t += 100_000_000;
            for &(w, cg) in &ids {
                let share = if cg == "a" { 2.0 / 3.0 } else { 1.0 / 3.0 };
                let run_ns = (100_000_000.0 * share) as u64;
                out.push((
                    t,
                    Record::WorkerSample(WorkerSample {
                        worker: w,
                        iterations: (run_ns as f64 / 1000.0 * speed) as u64,
                        run_ns,
                        wait_ns: 100_000_000 - run_ns,
                        timeslices: 25,
                        migrations: 1,
                        voluntary_switches: 0,
                        involuntary_switches: 24,
                        cpus_seen: vec![0b11],
                        wake: None,
                    }),
                ));
            }
        }
        out.push((
            t,
            Record::StepEnd {
                step: StepRef(step),
                outcome: StepOutcome::Completed,
            },
        ));
    }
    out.push((t, Record::End(RunOutcome::Completed)));
    out
}

/// Writes a synthetic trace to `path` with small chunks so there are many of them.
pub fn write(path: &Path, synth: Synth) {
    let limits = ChunkLimits {
        max_payload: 512,
        max_span_ns: 1_000_000_000,
    };
    let mut w = TraceWriter::with_limits(Vec::new(), &meta(), limits).expect("writer");
    for (ts, r) in &records(synth.speed) {
        w.append(*ts, r).expect("append");
    }
    let mut bytes = w.finish().expect("finish");
    if let Some(n) = synth.truncate_to {
        bytes.truncate(n);
    }
    std::fs::write(path, bytes).expect("write trace");
}
