//! When chunks close: at 64 KiB of payload, at 1 s of span, on `tick`.

mod support;

use support::*;
use trace_format::file::{ChunkLimits, Trace, TraceWriter};
use trace_format::record::{ConsoleLine, ConsoleSource, Record, StepRef};

#[test]
fn chunks_close_at_64_kib() {
    let limits = ChunkLimits::default();
    assert_eq!(
        limits,
        ChunkLimits {
            max_payload: 65_536,
            max_span_ns: 1_000_000_000
        }
    );
    let sample = Record::WorkerSample(spin_sample(1, 3, 1));
    let mut w = TraceWriter::new(Vec::new(), &test_meta()).unwrap();
    for i in 0..20_000u64 {
        w.append(i, &sample).unwrap(); // 20 µs in total: only size closes chunks
    }
    let bytes = w.finish().unwrap();
    let trace = Trace::open(&bytes).unwrap();
    let chunks = trace.chunks();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    for c in &chunks[..chunks.len() - 1] {
        assert!(c.payload_len as usize <= 65_536);
        assert!(
            c.payload_len as usize > 65_536 - 40,
            "closed early at {}",
            c.payload_len
        );
    }
    assert_eq!(trace.records().count(), 20_000);
}

#[test]
fn chunks_close_at_one_second_span() {
    let r = Record::StepBegin { step: StepRef(0) };
    let ts = [
        0u64,
        500_000_000,
        999_999_999,
        1_000_000_000,
        1_999_999_999,
        2_000_000_000,
        9_000_000_000,
    ];
    let stream: Vec<(u64, Record)> = ts.iter().map(|&t| (t, r.clone())).collect();
    let bytes = write_trace(&stream, ChunkLimits::default());
    let trace = Trace::open(&bytes).unwrap();
    let spans: Vec<(u64, u32)> = trace
        .chunks()
        .iter()
        .map(|c| (c.first_ts, c.records))
        .collect();
    assert_eq!(
        spans,
        vec![
            (0, 3),
            (1_000_000_000, 2),
            (2_000_000_000, 1),
            (9_000_000_000, 1)
        ]
    );
    for c in trace.chunks() {
        assert!(c.last_ts.unwrap() - c.first_ts < 1_000_000_000);
    }
}

#[test]
fn tick_closes_a_stale_chunk() {
    let mut w = TraceWriter::new(Vec::new(), &test_meta()).unwrap();
    let head = w.bytes_written();
    w.append(100, &Record::StepBegin { step: StepRef(0) })
        .unwrap();
    w.tick(500_000_000).unwrap();
    assert_eq!(w.bytes_written(), head, "fresh chunk stays open");
    w.tick(1_000_000_100).unwrap();
    assert!(w.bytes_written() > head, "stale chunk closed");
    // The closed chunk is readable from the sink before finish.
    let mid = Trace::open(w.sink()).unwrap();
    assert_eq!(mid.chunks().len(), 1);
    assert_eq!(mid.records().count(), 1);
    assert!(mid.recovery().truncated && mid.recovery().bytes_unaccounted == 0);
    let written = w.bytes_written();
    w.tick(5_000_000_000).unwrap(); // nothing open: no-op
    assert_eq!(w.bytes_written(), written);
    w.finish().unwrap();
}

#[test]
fn oversized_record_gets_its_own_chunk() {
    let big = Record::Console(ConsoleLine {
        source: ConsoleSource::Kernel,
        line: "x".repeat(100_000),
    });
    let small = Record::StepBegin { step: StepRef(0) };
    let stream = vec![(0, small.clone()), (1, big.clone()), (2, small.clone())];
    let bytes = write_trace(&stream, ChunkLimits::default());
    let trace = Trace::open(&bytes).unwrap();
    let counts: Vec<u32> = trace.chunks().iter().map(|c| c.records).collect();
    assert_eq!(counts, vec![1, 1, 1]);
    let got: Vec<Record> = trace.records().map(|r| r.unwrap().record).collect();
    assert_eq!(got, vec![small.clone(), big, small]);
}
