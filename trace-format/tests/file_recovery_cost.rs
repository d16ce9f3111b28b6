//! The recovery scan's cost is linear in the file size on the input built to
//! make it quadratic (many overlapping fake chunks, see
//! `crafted_resync_trace`). Counts work, not time; the throughput is in
//! `benches/recovery.rs`.

#![allow(clippy::cast_possible_truncation)] // test sizes are small

mod support;

use support::*;
use trace_format::file::{DamageReason, ScanWork, TRAILER_LEN, Trace};

#[test]
fn crafted_input_costs_linear_work_and_still_finds_the_real_chunk() {
    for len in [64 * 1024, 256 * 1024] {
        let (bytes, real_at) = crafted_resync_trace(len);
        let trace = Trace::open(&bytes).unwrap();
        let rec = trace.recovery();
        assert_eq!(rec.chunks_recovered, 1, "{rec:?}");
        assert_eq!(trace.chunks()[0].offset, real_at as u64);
        assert_eq!(rec.damaged.len(), 1);
        assert_eq!(rec.damaged[0].reason, DamageReason::Crc);
        assert!(rec.truncated);
        let n = bytes.len() as u64;
        let work = trace.scan_work();
        // One sweep plus 28 header bytes per 32-byte slot: < 2 bytes of CRC
        // per file byte. A scan re-reading each claimed payload does ~n²/64.
        assert!(
            work.crc_bytes <= 2 * n,
            "{len}: {} CRC bytes for a {n}-byte file",
            work.crc_bytes
        );
        assert!(work.candidates <= n / 4, "{work:?}");
        assert_eq!(work.index_bytes_decoded, 0);
    }
}

/// A CRC-valid index frame that does not decode, repeated nested inside
/// itself, is decoded once, not once per nesting level.
#[test]
fn nested_undecodable_index_frames_are_decoded_once() {
    let (head, _) = crafted_resync_trace(0);
    let real = &head[..]; // header + meta + one chunk
    let trace = Trace::open(real).unwrap();
    let meta_end = trace.chunks()[0].offset as usize;
    // Innermost first: each frame's body is 0xFF filler then the next frame.
    let mut frame: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut body = vec![0xFF; 16];
        body.extend_from_slice(&frame);
        let mut f = trace_format::file::INDEX_SYNC.to_le_bytes().to_vec();
        let mut v = body.len() as u64;
        while v >= 0x80 {
            f.push(v as u8 | 0x80);
            v >>= 7;
        }
        f.push(v as u8);
        f.extend_from_slice(&body);
        f.extend_from_slice(&trace_format::crc32c(&body).to_le_bytes());
        frame = f;
    }
    let mut bytes = real[..meta_end].to_vec();
    bytes.extend_from_slice(&frame);
    bytes.extend_from_slice(&real[meta_end..]);
    let t = Trace::open(&bytes).unwrap();
    assert_eq!(t.recovery().chunks_recovered, 1, "{:?}", t.recovery());
    let work = t.scan_work();
    assert!(
        work.index_bytes_decoded <= frame.len() as u64,
        "decoded {} bytes of a {}-byte nest",
        work.index_bytes_decoded,
        frame.len()
    );
}

/// The index path reads no chunk bytes: a cleanly closed file, with chunks
/// or with none, costs no scan. Without its index the file is scanned, and
/// the counters account for what the scan did: every chunk's bytes through
/// the CRC, every chunk's sync word examined, an index body decoded only
/// when the scan reaches one.
#[test]
fn scan_work_counts_the_scan_and_only_the_scan() {
    let stream = realistic_stream(4, 4, 12);
    let limits = trace_format::file::ChunkLimits {
        max_payload: 400,
        max_span_ns: 250_000_000,
    };
    let bytes = write_trace(&stream, limits);
    let clean = Trace::open(&bytes).unwrap();
    assert!(clean.recovery().is_clean());
    assert_eq!(clean.scan_work(), ScanWork::default());

    // A finished trace with no chunks: the index sits right after the meta.
    let empty = write_trace(&[], limits);
    let t = Trace::open(&empty).unwrap();
    assert!(t.recovery().is_clean(), "{:?}", t.recovery());
    assert!(t.chunks().is_empty() && t.index().is_some());
    assert_eq!(t.scan_work(), ScanWork::default());

    // No index: the chunks are found by the scan.
    let chunks = clean.chunks();
    let index_at = usize::try_from(chunks[chunks.len() - 1].offset).unwrap()
        + usize::try_from(chunks[chunks.len() - 1].total_len()).unwrap();
    let t = Trace::open(&bytes[..index_at]).unwrap();
    assert_eq!(t.recovery().chunks_recovered, chunks.len());
    let work = t.scan_work();
    let payload: u64 = chunks.iter().map(|c| u64::from(c.payload_len)).sum();
    assert!(
        work.crc_bytes >= payload,
        "{work:?}, {payload} payload bytes"
    );
    assert!(work.crc_bytes <= 2 * index_at as u64, "{work:?}");
    assert!(work.candidates >= chunks.len() as u64, "{work:?}");
    assert_eq!(work.index_bytes_decoded, 0);

    // A broken trailer: the scan finds the index and decodes its body once.
    let mut broken = bytes.clone();
    let last = broken.len() - 1;
    broken[last] ^= 0xFF;
    let t = Trace::open(&broken).unwrap();
    assert!(t.recovery().index_found);
    let work = t.scan_work();
    let frame = (bytes.len() - TRAILER_LEN - index_at) as u64;
    assert!(
        (1..frame).contains(&work.index_bytes_decoded),
        "{work:?}, {frame}-byte index frame"
    );
    assert!(work.candidates > chunks.len() as u64, "{work:?}");
}
