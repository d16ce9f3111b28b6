//! `replay diff` of two 1 M-record traces: end to end (open, decode every
//! record into sample intervals, statistics) and index-only (run-level
//! metrics straight from the footer index). Also prints the peak heap of one
//! diff, measured by a counting allocator.
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use replay::compare::{Run, Sided, compare};
use replay::thresholds::DiffThresholds;
use trace_format::file::TraceWriter;
use trace_format::meta::{Backend, HostFingerprint, KernelIdentity, Meta, SCHEMA_VERSION};
use trace_format::record::*;
use trace_format::scenario::Scenario;

/// Counts live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WORKERS: u32 = 64;
const STEPS: u16 = 4;
/// Sample rounds per step: 64 workers × 3900 rounds × 4 steps ≈ 1 M samples.
const ROUNDS: u64 = 3900;

fn meta() -> Meta {
    let mut scenario = Scenario::new("bench", 10_000_000_000);
    scenario.steps = vec![Default::default(); usize::from(STEPS)];
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: "replay-bench".into(),
        run_id: [1; 16],
        started_unix_ns: 0,
        topology: scenario.topology,
        scenario,
        kernel: KernelIdentity::default(),
        scheduler: None,
        backend: Backend::Synthetic,
        host: HostFingerprint::default(),
        sample_interval_ns: 100_000_000,
        snapshot_interval_ns: 0,
        notes: vec![],
        acceleration: None,
    }
}

/// Writes a ~1 M-record trace; `speed` scales iterations.
fn write_trace(path: &Path, speed: u64) -> u64 {
    let mut w = TraceWriter::create(path, &meta()).expect("create trace");
    let mut t = 0u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for step in 0..STEPS {
        w.append(
            t,
            &Record::StepBegin {
                step: StepRef(step),
            },
        )
        .unwrap();
        for worker in 0..WORKERS {
            let spawned = WorkerSpawned {
                worker: u32::from(step) * WORKERS + worker,
                pid: 1000 + worker,
                step: StepRef(step),
                cgroup: format!("cg{}", worker % 4),
                work: "spin_wait".into(),
            };
            w.append(t, &Record::WorkerSpawned(spawned)).unwrap();
        }
        for _ in 0..ROUNDS {
            t += 100_000_000;
            for worker in 0..WORKERS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let run_ns = 30_000_000 + x % 10_000_000;
                let s = WorkerSample {
                    worker: u32::from(step) * WORKERS + worker,
                    iterations: run_ns / 1000 * speed / 100,
                    run_ns,
                    wait_ns: 100_000_000 - run_ns,
                    timeslices: 20,
                    migrations: u32::try_from(x % 3).unwrap_or(0),
                    voluntary_switches: 0,
                    involuntary_switches: 19,
                    cpus_seen: vec![0b11],
                    wake: None,
                };
                w.append(t, &Record::WorkerSample(s)).unwrap();
            }
        }
        let end = Record::StepEnd {
            step: StepRef(step),
            outcome: StepOutcome::Completed,
        };
        w.append(t, &end).unwrap();
    }
    w.append(t, &Record::End(RunOutcome::Completed)).unwrap();
    let records = w.records_written();
    w.finish().expect("finish");
    records
}

fn diff(a: &Path, b: &Path, intervals: bool) -> usize {
    let t = DiffThresholds {
        min_runs: if intervals { 5 } else { 1 },
        ..DiffThresholds::default()
    };
    let ra = Run::load(a, intervals).expect("load A");
    let rb = Run::load(b, intervals).expect("load B");
    compare(&[ra], &[rb], &t, Sided::Both).rows.len()
}

fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a.trace"), dir.path().join("b.trace"));
    let records = write_trace(&a, 100);
    write_trace(&b, 90);
    let size = std::fs::metadata(&a).map(|m| m.len()).unwrap_or(0);
    let mib = |n: usize| n as f64 / (1024.0 * 1024.0);
    let full = peak_of(|| {
        diff(&a, &b, true);
    });
    let index = peak_of(|| {
        diff(&a, &b, false);
    });
    eprintln!(
        "traces: {records} records, {:.1} MiB each (memory-mapped); peak heap of one diff: \
         {:.1} MiB decoding every record, {:.2} MiB from the index",
        size as f64 / (1024.0 * 1024.0),
        mib(full),
        mib(index)
    );
    let mut g = c.benchmark_group("diff 1M-record traces");
    g.sample_size(10);
    g.bench_function("1 vs 1, every record decoded", |bn| {
        bn.iter(|| diff(&a, &b, true))
    });
    g.bench_function("from the index", |bn| bn.iter(|| diff(&a, &b, false)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
