//! Writer → reader round trips: every record variant, snapshot deltas,
//! worker CPU masks, timestamps, the index, the V1 codec and the std file sink.

mod support;

use support::*;
use trace_format::file::{
    CODEC_DELTA_V1, CODEC_DELTA_V2, ChunkLimits, Trace, TraceWriter, validate,
};
use trace_format::metrics::MetricsBuilder;
use trace_format::record::*;

fn read_all(bytes: &[u8]) -> Vec<Timed> {
    let trace = Trace::open(bytes).expect("open");
    assert!(trace.recovery().is_clean(), "{:?}", trace.recovery());
    trace
        .records()
        .collect::<Result<Vec<_>, _>>()
        .expect("decode")
}

#[test]
fn every_variant_round_trips() {
    let mut input: Vec<(u64, Record)> = Vec::new();
    let mut ts = 10;
    for (_, r) in all_variants() {
        input.push((ts, r));
        ts += 1_000;
    }
    for r in more_variants() {
        input.push((ts, r));
        ts += 3;
    }
    for limits in [
        ChunkLimits::default(),
        ChunkLimits {
            max_payload: 1,
            max_span_ns: 1,
        },
    ] {
        let bytes = write_trace(&input, limits);
        let trace = Trace::open(&bytes).unwrap();
        assert_eq!(trace.meta(), &test_meta());
        let got = read_all(&bytes);
        let want: Vec<Timed> = input
            .iter()
            .map(|(t, r)| Timed {
                ts_ns: *t,
                record: r.clone(),
            })
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn snapshot_deltas_round_trip_backwards_and_resized() {
    let snap = |rows: Vec<CpuRow>| {
        Record::Snapshot(Snapshot {
            trigger: SnapshotTrigger::Periodic,
            rendezvous_ns: 1,
            frozen_ns: 2,
            fields: RowFields::ALL,
            rows,
        })
    };
    let row = |clock: u64, sw: u64, delay: u64, pc: u64| CpuRow {
        nr_running: 1,
        cfs_nr_running: 2,
        scx_nr_running: 3,
        curr_pid: 4,
        clock,
        nr_switches: sw,
        run_delay_ns: delay,
        pcount: pc,
    };
    let input = vec![
        (0, snap(vec![row(100, 5, 7, 9), row(u64::MAX, 0, 1, 2)])),
        // Counters going backwards (e.g. CPU hotplug reset) and wrapping.
        (
            1,
            snap(vec![
                row(50, 4, 0, 9),
                row(0, u64::MAX, 1, 1),
                row(1 << 63, 3, 3, 3),
            ]),
        ),
        // Fewer rows, then more again.
        (2, snap(vec![row(60, 6, 6, 6)])),
        (3, snap(vec![])),
        (
            4,
            snap(vec![
                row(70, 7, 7, 7),
                row(1, 1, 1, 1),
                row(2, 2, 2, 2),
                row(3, 3, 3, u64::MAX),
            ]),
        ),
        (5, Record::StepBegin { step: StepRef(0) }),
        (
            6,
            snap(vec![
                row(80, 8, 8, 8),
                row(1, 1, 1, 1),
                row(2, 2, 2, 2),
                row(3, 3, 3, 0),
            ]),
        ),
    ];
    for limits in [
        ChunkLimits::default(),
        ChunkLimits {
            max_payload: 60,
            max_span_ns: u64::MAX,
        },
    ] {
        let bytes = write_trace(&input, limits);
        let got = read_all(&bytes);
        let want: Vec<Timed> = input
            .iter()
            .map(|(t, r)| Timed {
                ts_ns: *t,
                record: r.clone(),
            })
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn steady_snapshots_are_smaller_than_raw() {
    let first = Record::Snapshot(Snapshot {
        trigger: SnapshotTrigger::Periodic,
        rendezvous_ns: 40_000,
        frozen_ns: 90_000,
        fields: RowFields::ALL,
        rows: snapshot_rows(64, 1),
    });
    let second = Record::Snapshot(Snapshot {
        rows: snapshot_rows(64, 2),
        ..match &first {
            Record::Snapshot(s) => s.clone(),
            _ => unreachable!(),
        }
    });
    let one = write_trace(&[(0, first.clone())], ChunkLimits::default());
    let two = write_trace(
        &[(0, first), (100_000_000, second.clone())],
        ChunkLimits::default(),
    );
    let raw = postcard::to_allocvec(&second).unwrap().len();
    let delta = two.len() - one.len();
    assert!(
        delta * 4 < raw * 3,
        "delta-coded snapshot {delta} B vs raw {raw} B"
    );
}

#[test]
fn timestamps_clamp_and_cross_chunks() {
    let r = Record::StepBegin { step: StepRef(1) };
    let input = [
        (5u64, r.clone()),
        (3, r.clone()),
        (u64::MAX, r.clone()),
        (7, r.clone()),
    ];
    let bytes = write_trace(
        &input,
        ChunkLimits {
            max_payload: 1 << 20,
            max_span_ns: 10,
        },
    );
    let got: Vec<u64> = read_all(&bytes).iter().map(|t| t.ts_ns).collect();
    assert_eq!(got, vec![5, 5, u64::MAX, u64::MAX]);
}

#[test]
fn index_summaries_match_recomputation() {
    let stream = realistic_stream(8, 8, 40);
    let bytes = write_trace(
        &stream,
        ChunkLimits {
            max_payload: 4096,
            max_span_ns: 1_000_000_000,
        },
    );
    let trace = Trace::open(&bytes).unwrap();
    let index = trace.index().expect("index");
    assert!(trace.chunks().len() >= 5);
    let mut builder = MetricsBuilder::new();
    let mut counts = vec![0u64; RecordKind::ALL.len()];
    for t in trace.records() {
        let t = t.unwrap();
        counts[t.record.kind().index()] += 1;
        builder.observe(&t);
    }
    let recomputed = builder.finish();
    assert_eq!(trace.metrics(), recomputed);
    assert_eq!(index.metrics, recomputed);
    assert_eq!(trace.kind_counts(), counts);
    assert_eq!(index.outcome, Some(RunOutcome::Completed));
    assert_eq!(index.drops, 3);
    assert_eq!(index.chunks.len(), trace.chunks().len());
    let total: u64 = index.chunks.iter().map(|c| u64::from(c.records)).sum();
    assert_eq!(total, stream.len() as u64);
    // Each chunk's last_ts is its last record's.
    for (i, c) in trace.chunks().iter().enumerate() {
        let recs = trace.decode_chunk(i).unwrap();
        assert_eq!(u32::try_from(recs.len()).unwrap(), c.records);
        assert_eq!(Some(recs.last().unwrap().ts_ns), c.last_ts);
        assert_eq!(recs[0].ts_ns, c.first_ts);
    }
    assert!(validate(&bytes).unwrap().is_clean());

    // Without the trailer the same figures are recomputed by decoding.
    let cut = &bytes[..bytes.len() - 1];
    let t2 = Trace::open(cut).unwrap();
    assert_eq!(t2.metrics(), recomputed);
    assert_eq!(t2.kind_counts(), counts);
}

#[test]
fn writer_counters_and_empty_trace() {
    let mut w = TraceWriter::new(Vec::new(), &test_meta()).unwrap();
    let head = w.bytes_written();
    assert_eq!(head, w.sink().len() as u64);
    w.append(1, &Record::StepBegin { step: StepRef(0) })
        .unwrap();
    assert_eq!(w.records_written(), 1);
    assert_eq!(w.bytes_written(), head, "open chunk is not written yet");
    w.flush_chunk().unwrap();
    assert!(w.bytes_written() > head);
    w.flush_chunk().unwrap(); // no-op
    let bytes = w.finish().unwrap();
    assert_eq!(read_all(&bytes).len(), 1);

    let empty = TraceWriter::new(Vec::new(), &test_meta())
        .unwrap()
        .finish()
        .unwrap();
    let t = Trace::open(&empty).unwrap();
    assert!(t.recovery().is_clean());
    assert!(t.chunks().is_empty());
    assert_eq!(t.records().count(), 0);
    assert_eq!(t.kind_counts(), vec![0; RecordKind::ALL.len()]);
}

#[test]
fn file_sink_flushes_each_chunk() {
    let path =
        std::env::temp_dir().join(format!("schedtape-file-sink-{}.trace", std::process::id()));
    let mut w = TraceWriter::create(&path, &test_meta()).unwrap();
    w.append(0, &Record::StepBegin { step: StepRef(0) })
        .unwrap();
    w.flush_chunk().unwrap();
    // The closed chunk is on disk before finish (crash loses only the open chunk).
    let mid = std::fs::read(&path).unwrap();
    assert_eq!(mid.len() as u64, w.bytes_written());
    let t = Trace::open(&mid).unwrap();
    assert_eq!(t.chunks().len(), 1);
    assert!(t.recovery().truncated);
    w.append(5, &Record::End(RunOutcome::Completed)).unwrap();
    drop(w.finish().unwrap());
    let done = std::fs::read(&path).unwrap();
    assert_eq!(read_all(&done).len(), 2);
    std::fs::remove_file(&path).ok();
}

/// xorshift64, for reproducible test data.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// `cpus_seen` masks that grow, shrink, go empty, repeat and carry trailing
/// zero words, interleaved over several workers and split across chunks.
#[test]
fn cpu_masks_round_trip_across_chunks() {
    let shapes: [&[u64]; 10] = [
        &[],
        &[0],
        &[1 << 3],
        &[1 << 63],
        &[1 << 3, 0],
        &[0, 1],
        &[u64::MAX, 5, 1 << 40],
        &[0, 0, 0],
        &[2, 0, 9],
        &[1 << 3, 0, 0, 0],
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut input = Vec::new();
    let mut ts = 0;
    for round in 0..400u64 {
        ts += next(&mut seed) % 1_000;
        let worker = u32::try_from(next(&mut seed) % 6).unwrap();
        // Workers mostly repeat their mask (the common case) or pick a shape.
        let cpus_seen = if next(&mut seed).is_multiple_of(3) {
            let prev = input.iter().rev().find_map(|(_, r)| match r {
                Record::WorkerSample(s) if s.worker == worker => Some(s.cpus_seen.clone()),
                _ => None,
            });
            prev.unwrap_or_default()
        } else {
            let shape = shapes[usize::try_from(next(&mut seed) % 10).unwrap()];
            shape.to_vec()
        };
        input.push((
            ts,
            Record::WorkerSample(WorkerSample {
                cpus_seen,
                ..spin_sample(worker, 0, round)
            }),
        ));
        if round.is_multiple_of(37) {
            input.push((ts, Record::StepBegin { step: StepRef(1) }));
        }
    }
    for limits in [
        ChunkLimits::default(),
        ChunkLimits {
            max_payload: 200,
            max_span_ns: u64::MAX,
        },
        ChunkLimits {
            max_payload: usize::MAX,
            max_span_ns: 5_000,
        },
        ChunkLimits {
            max_payload: 1,
            max_span_ns: 1,
        },
    ] {
        let bytes = write_trace(&input, limits);
        let want: Vec<Timed> = input
            .iter()
            .map(|(t, r)| Timed {
                ts_ns: *t,
                record: r.clone(),
            })
            .collect();
        assert_eq!(read_all(&bytes), want);
        // Each chunk decodes on its own, in any order.
        let trace = Trace::open(&bytes).unwrap();
        let mut got: Vec<Vec<Timed>> = (0..trace.chunks().len())
            .rev()
            .map(|i| trace.decode_chunk(i).unwrap())
            .collect();
        got.reverse();
        assert_eq!(got.concat(), want);
    }
}

/// A repeated mask costs one byte (an empty wire mask), whatever the CPU.
#[test]
fn steady_cpu_masks_cost_one_byte() {
    let payload = |records: &[(u64, Record)]| -> u32 {
        let bytes = write_trace(records, ChunkLimits::default());
        let trace = Trace::open(&bytes).unwrap();
        trace.chunks().iter().map(|c| c.payload_len).sum()
    };
    // Worker ids below the codec's dense table's end (1024), at it and far
    // above it (kept apart) remember their previous mask alike.
    for worker in [1, 1023, 1024, 70_000] {
        let frames: Vec<u32> = [0, 63, 64, 200]
            .into_iter()
            .map(|cpu| {
                let s = |tick| (tick, Record::WorkerSample(spin_sample(worker, cpu, 5)));
                payload(&[s(0), s(1)]) - payload(&[s(0)])
            })
            .collect();
        let sample = Record::WorkerSample(spin_sample(worker, 0, 5));
        let mut plain = postcard::to_allocvec(&sample).unwrap();
        // Length and ts delta (1 B each) plus the body with a 1-word mask
        // (2 B) replaced by an empty one (1 B).
        plain.pop();
        let want = u32::try_from(plain.len() + 2).unwrap();
        assert_eq!(frames, vec![want; 4], "worker {worker}");
    }
}

/// Chunks marked with codec V1 (written before `cpus_seen` was XOR-coded)
/// still read, their masks taken as stored.
#[test]
fn codec_v1_chunks_read_masks_as_stored() {
    let sample = |cpus_seen: Vec<u64>| {
        Record::WorkerSample(WorkerSample {
            cpus_seen,
            ..spin_sample(1, 0, 1)
        })
    };
    let input = [
        (0, sample(vec![8])),
        (1, sample(vec![8])),
        (2, sample(vec![0, 2])),
    ];
    let mut bytes = write_trace(&input, ChunkLimits::default());
    let trace = Trace::open(&bytes).unwrap();
    assert_eq!(trace.chunks().len(), 1);
    let at = usize::try_from(trace.chunks()[0].offset).unwrap();
    let end = at + usize::try_from(trace.chunks()[0].total_len()).unwrap();
    assert_eq!(bytes[at + 20], CODEC_DELTA_V2);
    bytes[at + 20] = CODEC_DELTA_V1;
    let mut covered = bytes[at..at + 16].to_vec();
    covered.extend_from_slice(&bytes[at + 20..end]);
    let crc = trace_format::crc32c(&covered);
    bytes[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    let masks: Vec<Vec<u64>> = read_all(&bytes)
        .into_iter()
        .map(|t| match t.record {
            Record::WorkerSample(s) => s.cpus_seen,
            other => panic!("{other:?}"),
        })
        .collect();
    // The V2 wire forms: as is, unchanged → empty, then [0, 2] XOR [8].
    assert_eq!(masks, vec![vec![8], vec![], vec![8, 2]]);
}

/// `closing_tail` mid-stream: the bytes so far plus the tail are a clean
/// trace of the records so far, and the writer carries on to the same file
/// `finish` alone would have produced.
#[test]
fn closing_tail_previews_a_clean_trace() {
    let records = realistic_stream(3, 4, 2);
    let (head, rest) = records.split_at(records.len() / 2);
    let mut w = TraceWriter::new(Vec::new(), &test_meta()).unwrap();
    for (ts, r) in head {
        w.append(*ts, r).unwrap();
    }
    // The tail first: it flushes the open chunk into the sink.
    let tail = w.closing_tail().unwrap();
    let mut preview = w.sink().clone();
    preview.extend(tail);
    let trace = Trace::open(&preview).unwrap();
    assert!(trace.recovery().is_clean(), "{:?}", trace.recovery());
    assert_eq!(read_all(&preview).len(), head.len());
    let mut expected = MetricsBuilder::new();
    for (ts, r) in head {
        expected.observe_parts(*ts, r);
    }
    assert_eq!(trace.metrics(), expected.finish());
    for (ts, r) in rest {
        w.append(*ts, r).unwrap();
    }
    let bytes = w.finish().unwrap();
    assert_eq!(read_all(&bytes).len(), records.len());
}

/// Worker ids on both sides of the codec's dense table (ids below 1024) and
/// far above it keep their own previous mask within a chunk.
#[test]
fn cpu_masks_round_trip_for_large_worker_ids() {
    let mut records = Vec::new();
    for (tick, cpu) in [(0u64, 3usize), (1, 70), (2, 3)] {
        for worker in [1023u32, 1024, 1025, 70_000, u32::MAX] {
            let s = spin_sample(worker, cpu + (worker % 5) as usize, tick);
            records.push((tick * 10 + u64::from(worker % 7), Record::WorkerSample(s)));
        }
    }
    let bytes = write_trace(&records, ChunkLimits::default());
    let got: Vec<Record> = read_all(&bytes).into_iter().map(|t| t.record).collect();
    let want: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, want);
}
