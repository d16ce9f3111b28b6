//! `Trace::integrity`: the one notion of "intact" every replay command uses.
//! A CRC-valid index that disagrees with the chunks or records, a trailer
//! pointing anywhere but at the index, a missing `End`, and any single
//! flipped bit (header included) make a trace not intact.

#![allow(clippy::cast_possible_truncation)] // test sizes are small

mod support;

use std::path::PathBuf;

use support::*;
use trace_format::file::{
    ChunkLimits, DamageReason, INDEX_SYNC, Index, IntegrityFault, TRAILER_LEN, TRAILER_MAGIC, Trace,
};
use trace_format::record::{Record, RecordKind, Timed};

fn golden(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden");
    std::fs::read(dir.join(name)).unwrap()
}

/// A small closed trace ending with `End`.
fn closed() -> Vec<u8> {
    write_trace(
        &realistic_stream(2, 4, 6),
        ChunkLimits {
            max_payload: 300,
            max_span_ns: 200_000_000,
        },
    )
}

/// Where the index frame starts (from the trailer).
fn index_at(bytes: &[u8]) -> usize {
    let t = &bytes[bytes.len() - TRAILER_LEN..];
    u64::from_le_bytes(t[..8].try_into().unwrap()) as usize
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `bytes` with its index replaced by `index` (CRC-valid) and a trailer
/// saying `(offset, len)`, or pointing at the new index when `None`.
fn with_index(bytes: &[u8], index: &Index, trailer: Option<(u64, u32)>) -> Vec<u8> {
    let at = index_at(bytes);
    let mut out = bytes[..at].to_vec();
    let body = postcard::to_allocvec(index).unwrap();
    out.extend_from_slice(&INDEX_SYNC.to_le_bytes());
    varint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out.extend_from_slice(&trace_format::crc32c(&body).to_le_bytes());
    let (offset, len) = trailer.unwrap_or((at as u64, (out.len() - at) as u32));
    let mut t = Vec::new();
    t.extend_from_slice(&offset.to_le_bytes());
    t.extend_from_slice(&len.to_le_bytes());
    let crc = trace_format::crc32c(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&TRAILER_MAGIC);
    out.extend_from_slice(&t);
    out
}

/// A change made to an index.
type IndexEdit = Box<dyn Fn(&mut Index)>;

fn index_of(bytes: &[u8]) -> Index {
    Trace::open(bytes).unwrap().index().unwrap().clone()
}

#[test]
fn clean_traces_are_intact_old_and_new() {
    let t = closed();
    let i = Trace::open(&t).unwrap().integrity();
    assert!(i.is_intact(), "{i:?}");
    assert!(i.header_protected);
    let new = golden("small.trace");
    let i = Trace::open(&new).unwrap().integrity();
    assert!(i.is_intact() && i.header_protected, "{i:?}");
    // Format 1.0: intact, its header reported as unprotected.
    let old = golden("small-v1.0.trace");
    let i = Trace::open(&old).unwrap().integrity();
    assert!(i.is_intact() && !i.header_protected, "{i:?}");
}

#[test]
fn index_listing_other_chunks_is_damage() {
    let t = closed();
    let mut index = index_of(&t);
    index.chunks[1].records += 1;
    let bad = with_index(&t, &index, None);
    let trace = Trace::open(&bad).unwrap();
    // Both the byte-level check (what `validate` used) and the full one.
    let rec = trace.verify();
    assert!(!rec.is_clean(), "{rec:?}");
    assert_eq!(rec.damaged.len(), 1);
    assert_eq!(rec.damaged[0].reason, DamageReason::IndexMismatch);
    assert!(trace.integrity().is_damaged());
}

#[test]
fn index_summary_disagreeing_with_records_is_damage() {
    let t = closed();
    let cases: Vec<(&str, IndexEdit)> = vec![
        (
            "per-kind record counts",
            Box::new(|ix| ix.kind_counts[RecordKind::WorkerSample.index()] += 1),
        ),
        ("outcome", Box::new(|ix| ix.outcome = None)),
        ("drop counts", Box::new(|ix| ix.drops += 1)),
    ];
    for (field, change) in cases {
        let mut index = index_of(&t);
        change(&mut index);
        let bad = with_index(&t, &index, None);
        let trace = Trace::open(&bad).unwrap();
        let i = trace.integrity();
        assert!(i.is_damaged() && !i.is_intact(), "{field}: {i:?}");
        assert!(
            i.faults.contains(&IntegrityFault::IndexSummary { field }),
            "{field}: {:?}",
            i.faults
        );
    }
    let mut index = index_of(&t);
    index.chunks[0].last_ts += 1;
    let i = Trace::open(&with_index(&t, &index, None))
        .unwrap()
        .integrity();
    assert!(
        matches!(i.faults[..], [IntegrityFault::IndexLastTs { chunk: 0, .. }]),
        "{i:?}"
    );
}

#[test]
fn trailer_pointing_elsewhere_is_damage() {
    let t = closed();
    let index = index_of(&t);
    let at = index_at(&t) as u64;
    let len = (t.len() - TRAILER_LEN) as u64 - at;
    for (offset, frame_len) in [
        (u64::MAX / 2, len as u32),
        (at + 1, len as u32 - 1),
        (at, 7),
    ] {
        let bad = with_index(&t, &index, Some((offset, frame_len)));
        let trace = Trace::open(&bad).unwrap();
        let rec = trace.verify();
        assert!(!rec.is_clean(), "trailer → {offset}: {rec:?}");
        assert_eq!(rec.damaged.last().unwrap().reason, DamageReason::BadTrailer);
        assert!(!trace.integrity().is_intact());
        // Every record is still there.
        assert_eq!(trace.records().filter(Result::is_ok).count(), {
            let good = Trace::open(&t).unwrap();
            good.records().count()
        });
    }
}

#[test]
fn a_run_without_end_is_complete_only_when_ended() {
    let records: Vec<(u64, Record)> = realistic_stream(2, 4, 3)
        .into_iter()
        .filter(|(_, r)| !matches!(r, Record::End(_)))
        .collect();
    let t = write_trace(&records, ChunkLimits::default());
    let i = Trace::open(&t).unwrap().integrity();
    assert!(!i.is_damaged(), "{i:?}");
    assert!(!i.is_intact());
    assert_eq!(i.faults, vec![IntegrityFault::NoEnd]);
    let t = write_trace(&realistic_stream(2, 4, 3), ChunkLimits::default());
    assert!(Trace::open(&t).unwrap().integrity().is_intact());
}

/// Every bit of every byte of a small trace, flipped alone: the flip is
/// caught (open fails or the trace is not intact) or changes nothing read.
#[test]
fn every_single_bit_flip_is_detected_or_harmless() {
    let bytes = golden("small.trace");
    assert!(
        bytes.len() < 4096,
        "keep this trace small: {} B",
        bytes.len()
    );
    let good = Trace::open(&bytes).unwrap();
    let want: Vec<Timed> = good.records().collect::<Result<_, _>>().unwrap();
    let mut undetected = Vec::new();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut data = bytes.clone();
            data[at] ^= 1 << bit;
            let Ok(t) = Trace::open(&data) else { continue };
            if !t.integrity().is_intact() {
                continue;
            }
            let got: Result<Vec<Timed>, _> = t.records().collect();
            let same =
                got.as_ref() == Ok(&want) && t.meta() == good.meta() && t.header() == good.header();
            if !same {
                undetected.push((at, bit));
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "undetected flips (byte, bit): {undetected:?}"
    );
}
