//! Builds realistic traces with the real writer for the CLI tests.
#![allow(
    clippy::cast_possible_truncation,
    reason = "synthetic test values are small"
)]
#![allow(dead_code, reason = "each test binary uses a different part")]
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use trace_format::file::{ChunkLimits, TraceWriter};
use trace_format::meta::{
    Acceleration, Backend, HostFingerprint, KernelIdentity, Meta, SCHEMA_VERSION,
};
use trace_format::record::*;
use trace_format::scenario::Scenario;

pub mod groups;

/// Shape of a synthetic run.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Multiplies every worker's iteration rate: the host's speed, as far as
    /// the speed-robust metrics can tell.
    pub speed: f64,
    /// Multiplies the CPU time of cgroup `b`'s workers (the rest of each
    /// interval they wait, and iterations follow CPU time): a scheduler
    /// giving `b` less CPU, as a lower cpu.max does.
    pub b_run: f64,
    /// Cgroup `b`'s first worker runs 1.5× its share and the second 0.5×:
    /// the cgroup's totals stay, `fairness-spread` fails.
    pub b_unfair: bool,
    /// Keep only this many leading bytes of the file, as a crashed writer would.
    pub truncate_to: Option<usize>,
    /// Relative jitter of every sample's iterations and run time (0 = none).
    pub noise: f64,
    pub seed: u64,
    /// Scenario TOML; `None` is fixtures/scenarios/smoke.toml.
    pub scenario: Option<String>,
    /// CPUs cgroup `b`'s workers are seen on, per step (bitmask).
    pub b_cpus: [u64; 2],
    /// Worker 0 makes no progress in step 1.
    pub starve: bool,
    /// The first worker of step 1 is OOM-killed before its first sample.
    pub oom: bool,
    /// The second worker of step 0 reports 50 failed forks per sample.
    pub fork_errors: bool,
    /// The first worker's second sample of step 0 waited 3 intervals long
    /// (schedstat credits a wait when it ends).
    pub wait_burst: bool,
    /// Write run-queue snapshots every 200 ms; CPU 1's clock stops when `stall`.
    pub snapshots: bool,
    pub stall: bool,
    /// Two more snapshots after the last step, as the guest reboots: CPU 1
    /// has stopped (its clock frozen with tasks queued).
    pub reboot_snapshots: bool,
    /// How the guest ran, as the meta records it.
    pub acceleration: Option<Acceleration>,
    /// Verdict records written just before `End`, as a live run writes them.
    pub recorded: Vec<Verdict>,
    /// How the run ends instead of completing: the exit kind of a scheduler
    /// that exits after the last step (if any), then this outcome.
    pub ends: Option<(Option<&'static str>, RunOutcome)>,
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            speed: 1.0,
            b_run: 1.0,
            b_unfair: false,
            truncate_to: None,
            noise: 0.0,
            seed: 1,
            scenario: None,
            b_cpus: [0b11, 0b11],
            starve: false,
            oom: false,
            fork_errors: false,
            wait_burst: false,
            snapshots: false,
            stall: false,
            reboot_snapshots: false,
            acceleration: None,
            recorded: Vec::new(),
            ends: None,
        }
    }
}

/// Backdrop cgroups `a` (weight 200) and `b` (weight 100) on two CPUs, as
/// `records` writes them; step 1 moves `b` to CPU 1 with an op.
pub const CPUSET_SCENARIO: &str = r#"
name = "judge-synth"
topology = "1n1l2c1t"
duration = "2s"
sample_interval = "100ms"

[[backdrop.cgroups]]
name = "a"
cpuset = { exact = [0, 1] }
cpu_weight = 200
works = [{ work = "spin_wait", workers = 2 }]

[[backdrop.cgroups]]
name = "b"
cpuset = { exact = [0, 1] }
cpu_weight = 100
works = [{ work = "spin_wait", workers = 2 }]

[[steps]]
name = "both"
hold = { frac = 0.5 }

[[steps]]
name = "move"
hold = { frac = 0.5 }
ops = [{ set_cpuset = { cgroup = "b", cpuset = { exact = [1] } } }]
"#;

pub fn scenario(toml: Option<&str>) -> Scenario {
    let text = toml.unwrap_or(include_str!("../../../fixtures/scenarios/smoke.toml"));
    Scenario::from_toml_str(text).expect("scenario parses")
}

pub fn meta(toml: Option<&str>) -> Meta {
    let scenario = scenario(toml);
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
        acceleration: None,
    }
}

/// A jitter factor in `1 ± noise` from a xorshift stream.
fn jitter(state: &mut u64, noise: f64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let u = (*state >> 11) as f64 / (1u64 << 53) as f64;
    1.0 + noise * (2.0 * u - 1.0)
}

/// Two steps, cgroups `a` (weight 200) and `b`, two workers each, 10 samples per step.
pub fn records(s: &Synth) -> Vec<(u64, Record)> {
    let mut rng = s.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut worker = 0u32;
    let mut clock = [0u64; 2];
    let backdrop = !scenario(s.scenario.as_deref()).backdrop.cgroups.is_empty();
    if backdrop {
        out.push((
            t,
            Record::StepBegin {
                step: StepRef::BACKDROP,
            },
        ));
    }
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
        if backdrop && step > 0 {
            // Backdrop workers live on across steps.
            worker -= 4;
        }
        let mut ids = Vec::new();
        for cg in ["a", "b"] {
            for _ in 0..2 {
                if backdrop && step > 0 {
                    ids.push((worker, cg));
                    worker += 1;
                    continue;
                }
                out.push((
                    t,
                    Record::WorkerSpawned(WorkerSpawned {
                        worker,
                        pid: 100 + worker,
                        step: StepRef(step),
                        cgroup: cg.into(),
                        work: "spin_wait".into(),
                    }),
                ));
                ids.push((worker, cg));
                worker += 1;
            }
        }
        let oom_killed = (s.oom && step == 1).then(|| ids[0]);
        if let Some((w, cg)) = oom_killed {
            out.push((
                t + 1_000_000,
                Record::MemoryEvents(MemoryEvents {
                    cgroup: cg.into(),
                    oom: 1,
                    oom_kill: 1,
                    oom_group_kill: 0,
                }),
            ));
            out.push((
                t + 1_000_000,
                Record::WorkerExited(WorkerExited {
                    worker: w,
                    pid: 100 + w,
                    cgroup: cg.into(),
                    how: ExitHow::Killed { signal: SIGKILL },
                }),
            ));
        }
        for round in 0..10 {
            t += 100_000_000;
            for &(w, cg) in &ids {
                if oom_killed.is_some_and(|k| k.0 == w) {
                    continue;
                }
                let mut share = if cg == "a" { 2.0 / 3.0 } else { s.b_run / 3.0 };
                if s.b_unfair && cg == "b" {
                    share *= if ids.iter().position(|i| i.0 == w) == Some(2) {
                        1.5
                    } else {
                        0.5
                    };
                }
                let run_ns = (100_000_000.0 * share * jitter(&mut rng, s.noise)) as u64;
                let starved = s.starve && step == 1 && w == ids[0].0;
                let iterations = if starved {
                    0
                } else {
                    (run_ns as f64 / 1000.0 * s.speed * jitter(&mut rng, s.noise)) as u64
                };
                let cpus = if cg == "b" {
                    // The first sample after step 1's cpuset op may still show the old CPUs.
                    if step == 1 && round == 0 {
                        0b11
                    } else {
                        s.b_cpus[usize::from(step)]
                    }
                } else {
                    0b11
                };
                out.push((
                    t,
                    Record::WorkerSample(WorkerSample {
                        worker: w,
                        iterations,
                        run_ns,
                        wait_ns: if s.wait_burst && step == 0 && round == 1 && w == ids[0].0 {
                            300_000_000
                        } else {
                            100_000_000 - run_ns
                        },
                        timeslices: 25,
                        migrations: 1,
                        voluntary_switches: 0,
                        involuntary_switches: 24,
                        cpus_seen: vec![cpus],
                        wake: None,
                    }),
                ));
                if s.fork_errors && step == 0 && w == ids[1].0 {
                    out.push((
                        t,
                        Record::WorkerErrors(WorkerErrors {
                            worker: w,
                            failed: 50,
                            op: "fork".into(),
                            errno: 11,
                        }),
                    ));
                }
            }
            if s.snapshots && round % 2 == 1 {
                for (cpu, c) in clock.iter_mut().enumerate() {
                    if !(s.stall && cpu == 1 && step == 1) {
                        *c += 200_000_000;
                    }
                }
                out.push((t, snapshot(&clock)));
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
    if backdrop {
        out.push((
            t,
            Record::StepEnd {
                step: StepRef::BACKDROP,
                outcome: StepOutcome::Completed,
            },
        ));
    }
    if s.reboot_snapshots {
        for _ in 0..2 {
            t += 200_000_000;
            clock[0] += 200_000_000;
            out.push((t, snapshot(&clock)));
        }
    }
    for v in &s.recorded {
        out.push((t, Record::Verdict(v.clone())));
    }
    let Some((exit, outcome)) = &s.ends else {
        out.push((t, Record::End(RunOutcome::Completed)));
        return out;
    };
    if let Some(kind) = exit {
        out.push((
            t,
            Record::SchedulerEvent(SchedulerEvent {
                scheduler: "schedtape-scx".into(),
                event: SchedulerEventKind::Exited {
                    kind: (*kind).into(),
                    reason: "runnable task stall (kworker/0:1[12] failed to run for 30.1s)".into(),
                },
            }),
        ));
    }
    out.push((t, Record::End(outcome.clone())));
    out
}

/// A periodic snapshot: both CPUs with two runnable tasks at these clocks.
fn snapshot(clock: &[u64; 2]) -> Record {
    let rows = clock
        .iter()
        .map(|&c| CpuRow {
            nr_running: 2,
            clock: c,
            nr_switches: c / 1_000_000,
            ..CpuRow::default()
        })
        .collect();
    Record::Snapshot(Snapshot {
        trigger: SnapshotTrigger::Periodic,
        rendezvous_ns: 5_000,
        frozen_ns: 20_000,
        fields: RowFields(RowFields::NR_RUNNING | RowFields::CLOCK | RowFields::NR_SWITCHES),
        rows,
    })
}

/// A run that sched_ext's watchdog ended by ejecting the scheduler.
pub fn ejected() -> Option<(Option<&'static str>, RunOutcome)> {
    let message = "scheduler \"schedtape-scx\" exited (error_stall): runnable task stall".into();
    Some((Some("error_stall"), RunOutcome::GuestError { message }))
}

/// The bytes of a synthetic trace, with small chunks so there are many of them.
pub fn bytes(synth: &Synth) -> Vec<u8> {
    let limits = ChunkLimits {
        max_payload: 512,
        max_span_ns: 1_000_000_000,
    };
    let mut meta = meta(synth.scenario.as_deref());
    meta.acceleration = synth.acceleration;
    let mut w = TraceWriter::with_limits(Vec::new(), &meta, limits).expect("writer");
    for (ts, r) in &records(synth) {
        w.append(*ts, r).expect("append");
    }
    let mut bytes = w.finish().expect("finish");
    if let Some(n) = synth.truncate_to {
        bytes.truncate(n);
    }
    bytes
}

/// Writes a synthetic trace to `path`.
pub fn write(path: &Path, synth: Synth) {
    std::fs::write(path, bytes(&synth)).expect("write trace");
}

/// Runs the `replay` binary of the test build.
pub fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .output()
        .expect("run replay")
}

/// Runs `replay` like [`replay`], but kills it and fails the test when it has
/// not exited within `secs` seconds: for inputs that used to hang it.
pub fn replay_within(secs: u64, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run replay");
    // Drained on threads, so a full pipe cannot stall the child.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("read replay's output");
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for replay") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill replay");
            let _ = child.wait();
            panic!("replay {args:?} still running after {secs} s: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout thread"),
        stderr: err.join().expect("stderr thread"),
    }
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes `synth` as `dir/name` and returns the path.
pub fn trace(dir: &Path, name: &str, synth: Synth) -> PathBuf {
    let path = dir.join(name);
    write(&path, synth);
    path
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
