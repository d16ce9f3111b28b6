//! Recovery scan throughput on the input built to make a naive scan
//! quadratic (`crafted_resync_trace`: a fake chunk header every 32 bytes,
//! each claiming a payload to the end of the file), as a ratio against one
//! CRC32C pass over the same bytes measured in the same run.
//!
//! `cargo bench -p trace-format --bench recovery`. Target: ≥ 100 MB/s, i.e.
//! the ratio printed first stays a small constant as the input grows.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::crafted_resync_trace;
use trace_format::crc32c;
use trace_format::file::Trace;

/// Best of a few timed runs of `f`, in seconds.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn print_ratios() {
    for mib in [1usize, 4] {
        let (bytes, _) = crafted_resync_trace(mib << 20);
        let mb = bytes.len() as f64 / 1e6;
        let scan = best_of(5, || {
            let t = Trace::open(black_box(&bytes)).unwrap();
            assert_eq!(t.recovery().chunks_recovered, 1);
        });
        let crc = best_of(5, || {
            black_box(crc32c(black_box(&bytes)));
        });
        println!(
            "recovery scan, crafted {mib} MiB: {:.0} MB/s; one CRC32C pass: {:.0} MB/s; \
             scan takes {:.1}× a CRC pass",
            mb / scan,
            mb / crc,
            scan / crc
        );
    }
}

fn bench(c: &mut Criterion) {
    print_ratios();
    let (bytes, _) = crafted_resync_trace(4 << 20);
    let mut g = c.benchmark_group("recovery");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(10);
    g.bench_function("scan crafted 4 MiB", |b| {
        b.iter(|| Trace::open(black_box(&bytes)).unwrap().chunks().len())
    });
    g.bench_function("crc32c pass 4 MiB", |b| {
        b.iter(|| crc32c(black_box(&bytes)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
