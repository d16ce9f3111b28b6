//! Worker telemetry under QEMU: an OOM-killed worker is recorded and named
//! by a verdict, failed forks under `pids.max` are counted as failures (not
//! iterations), and first samples give rates like the steady state.
//! Run: `SCHEDTAPE_E2E=1 cargo test -p e2e --test telemetry -- --ignored --test-threads=1`.
use std::path::PathBuf;

use e2e::{Run, pick, run_scenario};
use trace_format::file::Trace;
use trace_format::record::{ExitHow, Record, SIGKILL, VerdictOutcome};

/// Writes `toml` as a scenario file and runs it.
fn run_toml(name: &str, toml: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("write scenario");
    let run = run_scenario(path.to_str().expect("utf-8 path"), &[]);
    drop(dir);
    run
}

/// The recorded verdict `name`: (outcome, detail).
fn verdict(run: &Run, name: &str) -> (VerdictOutcome, String) {
    pick(&run.records(), |r| match r {
        Record::Verdict(v) if v.name == name => Some((v.outcome, v.detail.clone())),
        _ => None,
    })
    .pop()
    .unwrap_or_else(|| panic!("no verdict {name}\n{}", run.stderr()))
}

const OOM: &str = r#"
name = "oom-kill"
topology = "1n1l2c1t"
duration = "3s"
sample_interval = "100ms"

[[steps]]
name = "squeeze"
hold = { frac = 1.0 }

[[steps.setup]]
name = "mem"
memory_max = "16M"

[[steps.setup.works]]
work = { cache_pressure = { kib = 65536 } }
workers = 1

[[steps.setup]]
name = "calm"

[[steps.setup.works]]
work = "spin_wait"
workers = 1
"#;

#[test]
#[ignore = "boots a VM: SCHEDTAPE_E2E=1 cargo test -p e2e --test telemetry -- --ignored"]
fn an_oom_killed_worker_is_recorded_and_named() {
    let run = run_toml("oom-kill", OOM);
    let records = run.records();
    let oom_kills: u64 = pick(&records, |r| match r {
        Record::MemoryEvents(m) if m.cgroup == "mem" => Some(m.oom_kill),
        _ => None,
    })
    .iter()
    .sum();
    assert!(oom_kills >= 1, "no OOM kill recorded\n{}", run.stderr());
    let killed = pick(&records, |r| match r {
        Record::WorkerExited(w) if w.cgroup == "mem" => Some(w.how),
        _ => None,
    });
    assert_eq!(
        killed,
        [ExitHow::Killed { signal: SIGKILL }],
        "{}",
        run.stderr()
    );
    let (outcome, detail) = verdict(&run, "no-oom-kill");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(
        detail.contains("cgroup mem: 1 worker(s) OOM-killed"),
        "{detail}"
    );
    let (outcome, detail) = verdict(&run, "not-starved");
    assert_ne!(outcome, VerdictOutcome::Fail, "{detail}");
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("the OOM killer killed"),
        "{}",
        run.stderr()
    );
}

const PIDS: &str = r#"
name = "pids-exhausted"
topology = "1n1l2c1t"
duration = "3s"
sample_interval = "100ms"

[[steps]]
name = "fork"
hold = { frac = 1.0 }

[[steps.setup]]
name = "limited"
pids_max = 1

[[steps.setup.works]]
work = "fork_exit"
workers = 1

[[steps.setup]]
name = "free"

[[steps.setup.works]]
work = "fork_exit"
workers = 1
"#;

#[test]
#[ignore = "boots a VM: SCHEDTAPE_E2E=1 cargo test -p e2e --test telemetry -- --ignored"]
fn failed_forks_are_errors_not_iterations() {
    let run = run_toml("pids-exhausted", PIDS);
    let records = run.records();
    let worker_of = |cg: &str| {
        pick(&records, |r| match r {
            Record::WorkerSpawned(w) if w.cgroup == cg => Some(w.worker),
            _ => None,
        })[0]
    };
    let (limited, free) = (worker_of("limited"), worker_of("free"));
    let iterations = |w: u32| -> u64 {
        pick(&records, |r| match r {
            Record::WorkerSample(s) if s.worker == w => Some(s.iterations),
            _ => None,
        })
        .iter()
        .sum()
    };
    assert_eq!(iterations(limited), 0, "every fork failed: no work");
    assert!(iterations(free) > 0, "{}", run.stderr());
    let errors = pick(&records, |r| match r {
        Record::WorkerErrors(e) => Some(e.clone()),
        _ => None,
    });
    assert!(!errors.is_empty(), "{}", run.stderr());
    assert!(
        errors
            .iter()
            .all(|e| e.worker == limited && e.op == "fork" && e.errno == 11)
    );
    let failed: u64 = errors.iter().map(|e| e.failed).sum();
    assert!(failed > 10, "failed forks: {failed}");
    let (outcome, detail) = verdict(&run, "no-op-errors");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(
        detail.contains("cgroup limited: 1 worker(s) had")
            && detail.contains("failed fork (EAGAIN"),
        "{detail}"
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "boots a VM: SCHEDTAPE_E2E=1 cargo test -p e2e --test telemetry -- --ignored"]
fn first_samples_rate_like_the_steady_state() {
    let run = run_scenario("smoke", &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let records = run.records();
    let mut since = std::collections::BTreeMap::new();
    // Worker → (iterations, run ns, interval ns) of each sample, in order.
    type Sample = (u64, u64, u64);
    let mut samples: std::collections::BTreeMap<u32, Vec<Sample>> = Default::default();
    for t in &records {
        match &t.record {
            Record::WorkerSpawned(w) => {
                since.insert(w.worker, t.ts_ns);
            }
            Record::WorkerSample(s) => {
                let prev = since.insert(s.worker, t.ts_ns).expect("spawned first");
                let interval = t.ts_ns.saturating_sub(prev);
                samples
                    .entry(s.worker)
                    .or_default()
                    .push((s.iterations, s.run_ns, interval));
            }
            _ => {}
        }
    }
    let mut checked = 0;
    for (w, v) in &samples {
        // Steady iterations per second of CPU time, from later samples.
        let per_cpu_s: Vec<f64> = v[1..]
            .iter()
            .filter(|(_, run, _)| *run >= 10_000_000)
            .map(|&(it, run, _)| it as f64 * 1e9 / run as f64)
            .collect();
        if per_cpu_s.len() < 4 {
            continue;
        }
        let k = median(per_cpu_s);
        let (first, _, ns) = v[0];
        // One worker runs at most the whole interval: however short the
        // first one, its iterations fit its length at the steady per-CPU
        // rate (5×: emulated CPUs change speed up to ~3× with the host's
        // load; plus a few for rounding). Counting from fork instead gave
        // 866 iterations in 188 µs (60× the steady rate).
        let bound = 5.0 * k * ns as f64 / 1e9 + 20.0;
        checked += 1;
        assert!(
            first as f64 <= bound,
            "worker {w}: {first} iterations in its first {ns} ns, steady {k:.0} per CPU-s: {v:?}"
        );
    }
    assert!(checked >= 4, "{samples:?}");

    let bytes = std::fs::read(&run.trace).expect("trace");
    let trace = Trace::open(&bytes).expect("trace opens");
    let json: serde_json::Value =
        serde_json::from_str(&replay::perfetto::export(&trace).expect("export")).expect("json");
    for e in json["traceEvents"].as_array().expect("events") {
        for k in ["run %", "wait %"] {
            if let Some(v) = e["args"][k].as_f64() {
                assert!(v <= 100.0, "{k} {v} in {e}");
            }
        }
    }
}
