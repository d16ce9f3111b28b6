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
    let mut checked = 0;
    let mut since = std::collections::BTreeMap::new();
    let mut rates: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for t in &records {
        match &t.record {
            Record::WorkerSpawned(w) => {
                since.insert(w.worker, t.ts_ns);
            }
            Record::WorkerSample(s) => {
                let prev = since.insert(s.worker, t.ts_ns).expect("spawned first");
                let interval = t.ts_ns.saturating_sub(prev);
                // Intervals of a few ms (a tick right after the spawn, a step's
                // end) hold too few iterations to compare.
                if interval >= 10_000_000 {
                    rates
                        .entry(s.worker)
                        .or_default()
                        .push(s.iterations as f64 * 1e9 / interval as f64);
                }
            }
            _ => {}
        }
    }
    for (w, r) in &rates {
        if r.len() < 4 {
            continue;
        }
        let m = median(r[1..].to_vec());
        checked += 1;
        assert!(
            r[0] <= 3.0 * m,
            "worker {w}: first interval {:.0} iter/s vs median {m:.0}: {r:?}",
            r[0]
        );
    }
    assert!(checked >= 2, "{rates:?}");

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
