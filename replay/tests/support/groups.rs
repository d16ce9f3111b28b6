//! Synthetic runs of four cgroups (`a`..`d`, two spinners each) over two
//! steps, for judging with many cells: each cgroup's CPU, waiting and pace
//! can be set per step.
use std::path::{Path, PathBuf};

use trace_format::file::TraceWriter;
use trace_format::record::*;

/// The scenario: steps `first` and `second`, cgroups `a`..`d` in both.
pub fn scenario_toml() -> String {
    let mut text = String::from(
        "name = \"four\"\ntopology = \"1n1l2c1t\"\nduration = \"2s\"\nsample_interval = \"100ms\"\n",
    );
    for step in ["first", "second"] {
        text.push_str(&format!(
            "\n[[steps]]\nname = \"{step}\"\nhold = {{ frac = 0.5 }}\n"
        ));
        for cg in NAMES {
            text.push_str(&format!(
                "\n[[steps.setup]]\nname = \"{cg}\"\n\n[[steps.setup.works]]\nwork = \"spin_wait\"\nworkers = 2\n"
            ));
        }
    }
    text
}

pub const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// One run's shape.
#[derive(Debug, Clone)]
pub struct Four {
    pub seed: u64,
    /// Relative jitter of run time, waiting and iterations (0 = none).
    pub noise: f64,
    /// Iterations per CPU-µs of every worker: the host's speed.
    pub speed: f64,
    /// Per step and cgroup: the fraction of each interval a worker runs.
    pub run: [[f64; 4]; 2],
    /// Per step and cgroup: the fraction of the rest of the interval it waits.
    pub wait: [[f64; 4]; 2],
}

impl Default for Four {
    fn default() -> Self {
        Four {
            seed: 1,
            noise: 0.02,
            speed: 1.0,
            run: [[0.25; 4]; 2],
            wait: [[0.8; 4]; 2],
        }
    }
}

fn jitter(state: &mut u64, noise: f64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let u = (*state >> 11) as f64 / (1u64 << 53) as f64;
    1.0 + noise * (2.0 * u - 1.0)
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "synthetic values are small and positive"
)]
fn records(f: &Four) -> Vec<(u64, Record)> {
    let mut rng = f.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut worker = 0u32;
    for step in 0..2usize {
        let sref = StepRef(u16::try_from(step).unwrap_or(0));
        out.push((t, Record::StepBegin { step: sref }));
        let mut ids = Vec::new();
        for (g, cg) in NAMES.iter().enumerate() {
            for _ in 0..2 {
                out.push((
                    t,
                    Record::WorkerSpawned(WorkerSpawned {
                        worker,
                        pid: 100 + worker,
                        step: sref,
                        cgroup: (*cg).into(),
                        work: "spin_wait".into(),
                    }),
                ));
                ids.push((worker, g));
                worker += 1;
            }
        }
        for _ in 0..10 {
            t += 100_000_000;
            for &(w, g) in &ids {
                let run_ns = (1e8 * f.run[step][g] * jitter(&mut rng, f.noise)) as u64;
                let rest = 100_000_000u64.saturating_sub(run_ns) as f64;
                let wait_ns = (rest * f.wait[step][g] * jitter(&mut rng, f.noise)) as u64;
                let iterations =
                    (run_ns as f64 / 1000.0 * f.speed * jitter(&mut rng, f.noise)) as u64;
                out.push((
                    t,
                    Record::WorkerSample(WorkerSample {
                        worker: w,
                        iterations,
                        run_ns,
                        wait_ns,
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
                step: sref,
                outcome: StepOutcome::Completed,
            },
        ));
    }
    out.push((t, Record::End(RunOutcome::Completed)));
    out
}

/// Writes one run to `dir/name`.
pub fn write(dir: &Path, name: &str, f: &Four) -> PathBuf {
    let path = dir.join(name);
    let meta = super::meta(Some(&scenario_toml()));
    let mut w = TraceWriter::new(Vec::new(), &meta).expect("writer");
    for (ts, r) in &records(f) {
        w.append(*ts, r).expect("append");
    }
    std::fs::write(&path, w.finish().expect("finish")).expect("write trace");
    path
}
