//! Codec figures: bytes per worker-sample frame (steady, changing CPU, first
//! in chunk) and per 64-CPU snapshot frame, and decode/encode throughput over
//! a ~1M-record trace.
//!
//! `cargo bench -p trace-format --bench codec`. Sizes and a quick throughput
//! estimate are printed before the criterion groups run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::*;
use trace_format::file::{ChunkLimits, Trace, TraceWriter};
use trace_format::record::{Record, RowFields, Snapshot, SnapshotTrigger};

/// Total payload bytes of a trace of `records`, all in one chunk.
fn payload_of(records: &[(u64, Record)]) -> usize {
    let limits = ChunkLimits {
        max_payload: usize::MAX,
        max_span_ns: u64::MAX,
    };
    let bytes = write_trace(records, limits);
    let trace = Trace::open(&bytes).unwrap();
    trace.chunks().iter().map(|c| c.payload_len as usize).sum()
}

fn snapshot(tick: u64) -> Record {
    Record::Snapshot(Snapshot {
        trigger: SnapshotTrigger::Periodic,
        rendezvous_ns: 45_000,
        frozen_ns: 95_000,
        fields: RowFields::ALL,
        rows: snapshot_rows(64, tick),
    })
}

/// Average frame bytes of a worker sample over `ticks` rounds of 64 workers,
/// worker `w` seen on CPU `cpu(w, tick)`, all in one chunk; the first round
/// (masks stored against nothing) is left out.
fn sample_frame(ticks: u64, cpu: impl Fn(u32, u64) -> usize) -> f64 {
    let round = |tick: u64| -> Vec<(u64, Record)> {
        (0..64u32)
            .map(|w| {
                let sample = spin_sample(w, cpu(w, tick), tick);
                (tick * 100_000_000, Record::WorkerSample(sample))
            })
            .collect()
    };
    let first = round(1);
    let all: Vec<(u64, Record)> = (1..=ticks).flat_map(round).collect();
    (payload_of(&all) - payload_of(&first)) as f64 / (64 * (ticks - 1)) as f64
}

fn print_sizes() {
    let ts = 1_000_000_000;
    // First in chunk: the whole mask is stored, so its size grows with the CPU.
    let first_in_chunk = payload_of(
        &(0..64u32)
            .map(|w| (ts, Record::WorkerSample(spin_sample(w, w as usize, 7))))
            .collect::<Vec<_>>(),
    ) as f64
        / 64.0;
    let steady = sample_frame(10, |w, _| w as usize);
    let changing = sample_frame(10, |w, tick| {
        usize::try_from((u64::from(w) + tick) % 64).unwrap()
    });
    let one_snap = payload_of(&[(ts, snapshot(10))]);
    let two_snaps = payload_of(&[(ts, snapshot(10)), (ts + 100_000_000, snapshot(11))]);
    let raw = postcard::to_allocvec(&snapshot(11)).unwrap().len();
    println!(
        "worker sample frame: {steady:.1} B steady (same CPU, avg over CPUs 0..64)  [target ≤ 24 B]"
    );
    println!(
        "  {changing:.1} B changing CPU every sample, {first_in_chunk:.1} B first of its worker in a chunk (avg over CPUs 0..64)"
    );
    println!(
        "64-CPU snapshot frame: {} B steady state (first in chunk {one_snap} B, raw postcard {raw} B)  [target ≤ 1200 B]",
        two_snaps - one_snap
    );
}

/// ~1M records: 64 workers + one 64-CPU snapshot per 100 ms tick.
fn big_trace() -> (Vec<u8>, u64) {
    let stream = realistic_stream(64, 64, 15_400);
    let records = stream.len() as u64;
    (write_trace(&stream, ChunkLimits::default()), records)
}

fn decode_all(trace: &Trace<'_>) -> u64 {
    let mut n = 0u64;
    for r in trace.records() {
        black_box(r.unwrap());
        n += 1;
    }
    n
}

fn quick_estimate(bytes: &[u8], records: u64) {
    let trace = Trace::open(bytes).unwrap();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(decode_all(&trace), records);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "decode: {} records, {:.1} MB in {:.1} ms → {:.0} MB/s, {:.1} M records/s  [target ≥ 500 MB/s, ≥ 10 M/s]",
        records,
        bytes.len() as f64 / 1e6,
        best * 1e3,
        bytes.len() as f64 / best / 1e6,
        records as f64 / best / 1e6
    );
}

fn benches(c: &mut Criterion) {
    print_sizes();
    let (bytes, records) = big_trace();
    quick_estimate(&bytes, records);
    let stream = realistic_stream(64, 64, 1_540);

    let mut g = c.benchmark_group("decode");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| decode_all(&Trace::open(black_box(&bytes)).unwrap()));
    });
    g.throughput(Throughput::Elements(records));
    g.bench_function("records", |b| {
        b.iter(|| decode_all(&Trace::open(black_box(&bytes)).unwrap()));
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(stream.len() as u64));
    g.bench_function("records", |b| {
        b.iter(|| {
            let mut w = TraceWriter::new(Vec::with_capacity(8 << 20), &test_meta()).unwrap();
            for (ts, r) in &stream {
                w.append(*ts, r).unwrap();
            }
            w.finish().unwrap().len()
        });
    });
    g.finish();

    c.bench_function("open_with_index", |b| {
        b.iter(|| Trace::open(black_box(&bytes)).unwrap().chunks().len())
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
