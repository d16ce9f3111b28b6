//! Crash tolerance: cut at every byte, flipped bits, garbage. The reader must
//! never panic, must recover exactly the intact chunks, and report the rest.

mod support;

use support::*;
use trace_format::file::{ChunkLimits, DamageReason, ReadError, Trace};
use trace_format::record::Timed;

/// A trace of ≥ 5 chunks, its records, and (offset, end) of each chunk.
fn multi_chunk() -> (Vec<u8>, Vec<Timed>, Vec<(usize, usize)>) {
    let stream = realistic_stream(4, 4, 12);
    let bytes = write_trace(
        &stream,
        ChunkLimits {
            max_payload: 400,
            max_span_ns: 250_000_000,
        },
    );
    let trace = Trace::open(&bytes).unwrap();
    assert!(trace.recovery().is_clean());
    let spans: Vec<(usize, usize)> = trace
        .chunks()
        .iter()
        .map(|c| (us(c.offset), us(c.offset + c.total_len())))
        .collect();
    assert!(spans.len() >= 5, "only {} chunks", spans.len());
    let records = stream
        .into_iter()
        .map(|(ts_ns, record)| Timed { ts_ns, record })
        .collect();
    (bytes, records, spans)
}

/// Records of the chunks in `spans[..n]`, from the full record list.
fn records_of(all: &[Timed], trace_full: &Trace<'_>, keep: &[bool]) -> Vec<Timed> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for (i, c) in trace_full.chunks().iter().enumerate() {
        let n = c.records as usize;
        if keep[i] {
            out.extend_from_slice(&all[at..at + n]);
        }
        at += n;
    }
    out
}

/// `u64` → `usize` for offsets in small test files.
fn us(v: u64) -> usize {
    usize::try_from(v).unwrap()
}

fn index_offset(bytes: &[u8]) -> usize {
    let t = &bytes[bytes.len() - 24..];
    us(u64::from_le_bytes(t[..8].try_into().unwrap()))
}

#[test]
fn cut_at_every_offset() {
    let (bytes, all, spans) = multi_chunk();
    let full = Trace::open(&bytes).unwrap();
    let meta_end = spans[0].0;
    let index_at = index_offset(&bytes);
    let index_end = bytes.len() - 24;
    for cut in 0..=bytes.len() {
        let data = &bytes[..cut];
        let trace = match Trace::open(data) {
            Ok(t) => t,
            Err(e) => {
                assert!(cut < meta_end, "cut {cut}: unexpected {e}");
                continue;
            }
        };
        assert!(cut >= meta_end, "cut {cut} inside header/meta opened");
        assert_eq!(trace.meta(), &test_meta());
        let keep: Vec<bool> = spans.iter().map(|&(_, end)| end <= cut).collect();
        let n = keep.iter().filter(|&&k| k).count();
        let rec = trace.recovery();
        assert_eq!(trace.chunks().len(), n, "cut {cut}");
        assert_eq!(rec.chunks_recovered, n);
        assert!(rec.damaged.is_empty(), "cut {cut}: {:?}", rec.damaged);
        assert_eq!(rec.truncated, cut != bytes.len(), "cut {cut}");
        assert_eq!(rec.index_found, cut >= index_end, "cut {cut}");
        let last_whole = if cut == bytes.len() {
            cut
        } else if cut >= index_end {
            index_end
        } else if n > 0 {
            spans[n - 1].1
        } else {
            meta_end
        };
        assert!(cut < index_end || index_at == spans[spans.len() - 1].1);
        assert_eq!(
            rec.bytes_unaccounted,
            (cut - last_whole) as u64,
            "cut {cut}"
        );
        let got: Vec<Timed> = trace.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, records_of(&all, &full, &keep), "cut {cut}");
        if cut == bytes.len() {
            assert!(rec.is_clean());
        }
        let _ = trace.metrics();
        let _ = trace.kind_counts();
    }
}

#[test]
fn flipped_bit_in_every_byte() {
    let (bytes, all, spans) = multi_chunk();
    let full = Trace::open(&bytes).unwrap();
    let meta_end = spans[0].0;
    let index_at = index_offset(&bytes);
    let trailer_at = bytes.len() - 24;
    for at in 0..bytes.len() {
        let mut data = bytes.clone();
        data[at] ^= 1 << (at % 8);
        let opened = Trace::open(&data);
        if at < 8 {
            assert_eq!(opened.unwrap_err(), ReadError::BadMagic, "byte {at}");
            continue;
        }
        if at < 10 {
            assert!(
                matches!(opened, Err(ReadError::UnsupportedVersion { .. })),
                "byte {at}"
            );
            continue;
        }
        // The meta CRC covers the header's minor version and flags too.
        if (10..meta_end).contains(&at) {
            assert!(
                opened.is_err(),
                "byte {at}: header/meta damage not detected"
            );
            continue;
        }
        let trace = opened.unwrap_or_else(|e| panic!("byte {at}: {e}"));
        let rec = trace.verify();
        if let Some(i) = spans.iter().position(|&(s, e)| (s..e).contains(&at)) {
            // Exactly chunk i is lost; every other chunk decodes.
            assert_eq!(rec.damaged.len(), 1, "byte {at}: {:?}", rec.damaged);
            let d = &rec.damaged[0];
            assert_eq!(
                (us(d.offset), us(d.offset + d.len)),
                spans[i],
                "byte {at}: {d:?}"
            );
            assert_eq!(rec.chunks_recovered, spans.len() - 1);
            assert_eq!(rec.bytes_unaccounted, d.len);
            let keep: Vec<bool> = (0..spans.len()).map(|k| k != i).collect();
            let got: Vec<Timed> = trace.records().filter_map(Result::ok).collect();
            assert_eq!(got, records_of(&all, &full, &keep), "byte {at}");
            assert_eq!(
                trace.records().filter(Result::is_err).count(),
                usize::from(trace.index().is_some())
            );
            continue;
        }
        // Index frame or trailer: every chunk survives.
        assert_eq!(rec.chunks_recovered, spans.len(), "byte {at}");
        let got: Vec<Timed> = trace.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, all, "byte {at}");
        assert_eq!(trace.metrics(), full.metrics(), "byte {at}");
        if (index_at..trailer_at).contains(&at) {
            assert!(trace.index().is_none(), "byte {at}");
            assert_eq!(rec.damaged.len(), 1);
            let d = &rec.damaged[0];
            assert_eq!((us(d.offset), us(d.offset + d.len)), (index_at, trailer_at));
            assert!(matches!(
                d.reason,
                DamageReason::BadIndex | DamageReason::NoSync | DamageReason::Incomplete
            ));
            assert!(!rec.truncated, "the trailer is intact");
        } else {
            assert!(trace.index().is_some(), "byte {at}: index found by scan");
            assert!(rec.truncated);
            assert_eq!(rec.damaged.len(), 1);
            assert_eq!(rec.damaged[0].reason, DamageReason::BadTrailer);
        }
    }
}

#[test]
fn flips_without_index_are_found_by_scan() {
    let (bytes, _, spans) = multi_chunk();
    let data_end = spans[spans.len() - 1].1;
    for (i, &(s, e)) in spans.iter().enumerate() {
        for at in [
            s,
            s + 5,
            s + 9,
            s + 13,
            s + 17,
            s + 20,
            s + 22,
            s + 27,
            (s + e) / 2,
            e - 1,
        ] {
            let mut data = bytes[..data_end].to_vec();
            data[at] ^= 0x10;
            let trace = Trace::open(&data).unwrap();
            let rec = trace.recovery();
            assert_eq!(rec.chunks_recovered, spans.len() - 1, "chunk {i} byte {at}");
            assert_eq!(us(rec.bytes_unaccounted), e - s);
            if i + 1 < spans.len() || !rec.damaged.is_empty() {
                assert_eq!(rec.damaged.len(), 1, "chunk {i} byte {at}");
                assert_eq!(us(rec.damaged[0].offset), s);
                assert_eq!(us(rec.damaged[0].len), e - s);
            } // else: a last chunk whose length grew reads as a torn tail.
            assert!(!rec.index_found && rec.truncated);
            assert!(trace.records().all(|r| r.is_ok()));
        }
    }
}

/// xorshift64*, deterministic.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn exercise(data: &[u8]) {
    if let Ok(trace) = Trace::open(data) {
        for r in trace.records() {
            let _ = r;
        }
        let _ = trace.metrics();
        let _ = trace.kind_counts();
        let _ = trace.verify();
        for i in 0..trace.chunks().len() + 1 {
            let _ = trace.decode_chunk(i);
        }
    }
}

#[test]
fn garbage_and_zeros_never_panic() {
    let mut next = rng(0x5EED);
    for len in [0usize, 1, 7, 15, 16, 17, 31, 64, 100, 1000, 70_000] {
        exercise(&vec![0u8; len]);
        exercise(&vec![0xFFu8; len]);
        exercise(&vec![0xC7u8; len]);
        let random: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        exercise(&random);
    }
    // A valid header and meta followed by garbage, sync words and lies.
    let (bytes, _, spans) = multi_chunk();
    let head = &bytes[..spans[0].0];
    let mut liar = head.to_vec();
    for claim in [u32::MAX, 1 << 31, 100, 0] {
        liar.extend_from_slice(&0x5A4B43C7u32.to_le_bytes()); // chunk sync
        liar.extend_from_slice(&[0; 4]);
        liar.extend_from_slice(&claim.to_le_bytes());
        liar.extend_from_slice(&claim.to_le_bytes());
        liar.extend_from_slice(&[0; 16]);
        liar.extend_from_slice(&0x5A5849C7u32.to_le_bytes()); // index sync
        liar.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]); // 4 GB frame
    }
    exercise(&liar);
    for _ in 0..300 {
        let mut data = head.to_vec();
        let n = us(next() % 3000);
        data.extend((0..n).map(|_| next().to_le_bytes()[0]));
        exercise(&data);
        // Real chunks with random splices.
        let mut spliced = bytes.clone();
        for _ in 0..(next() % 8) {
            let at = us(next() % spliced.len() as u64);
            spliced[at] = next().to_le_bytes()[0];
        }
        let cut = us(next() % (spliced.len() as u64 + 1));
        exercise(&spliced[..cut]);
    }
    // Chunks shuffled and duplicated still decode one by one.
    let mut dup = head.to_vec();
    for &(s, e) in spans.iter().rev().chain(spans.iter()) {
        dup.extend_from_slice(&bytes[s..e]);
    }
    let t = Trace::open(&dup).unwrap();
    assert_eq!(t.chunks().len(), spans.len() * 2);
    assert!(t.records().all(|r| r.is_ok()));
}

#[test]
fn garbage_between_chunks_is_reported_exactly() {
    let (bytes, _, spans) = multi_chunk();
    let mut data = bytes[..spans[2].0].to_vec();
    let junk = b"\xC7CK\x5Ajunk that is not a chunk \xC7\xC7\xC7";
    data.extend_from_slice(junk);
    data.extend_from_slice(&bytes[spans[2].0..spans[spans.len() - 1].1]);
    let t = Trace::open(&data).unwrap();
    let rec = t.recovery();
    assert_eq!(rec.chunks_recovered, spans.len());
    assert_eq!(rec.damaged.len(), 1);
    assert_eq!(us(rec.damaged[0].offset), spans[2].0);
    assert_eq!(us(rec.damaged[0].len), junk.len());
    assert_eq!(us(rec.bytes_unaccounted), junk.len());
}

/// Sets byte `at` of the chunk header at `s` and gives the chunk a matching
/// CRC (header bytes 0..16 and 20..32, then the payload up to `e`).
fn rewrite_header(data: &mut [u8], s: usize, e: usize, at: usize, value: u8) {
    data[s + at] = value;
    let mut covered = data[s..s + 16].to_vec();
    covered.extend_from_slice(&data[s + 20..e]);
    let crc = trace_format::crc32c(&covered);
    data[s + 16..s + 20].copy_from_slice(&crc.to_le_bytes());
}

/// A chunk whose CRC matches but whose header is not one this reader
/// writes (reserved bytes set, or an unknown codec) is skipped and named,
/// not decoded; its neighbours are recovered.
#[test]
fn crc_valid_chunk_with_bad_header_is_skipped() {
    let (bytes, records, spans) = multi_chunk();
    let full = Trace::open(&bytes).unwrap();
    let data_end = spans[spans.len() - 1].1;
    let (s, e) = spans[2];
    // Header byte 20 is the codec, 21..24 are reserved.
    let cases = [
        (21, 1, DamageReason::BadHeader),
        (23, 0x80, DamageReason::BadHeader),
        (20, 9, DamageReason::UnsupportedCodec(9)),
    ];
    for (at, value, reason) in cases {
        let mut data = bytes[..data_end].to_vec();
        rewrite_header(&mut data, s, e, at, value);
        let trace = Trace::open(&data).unwrap();
        let rec = trace.recovery();
        assert_eq!(rec.chunks_recovered, spans.len() - 1, "{reason:?}: {rec:?}");
        assert_eq!(rec.damaged.len(), 1, "{rec:?}");
        assert_eq!(us(rec.damaged[0].offset), s);
        assert_eq!(us(rec.damaged[0].len), e - s);
        assert_eq!(rec.damaged[0].reason, reason);
        assert_eq!(us(rec.bytes_unaccounted), e - s);
        let mut keep = vec![true; spans.len()];
        keep[2] = false;
        let got: Vec<Timed> = trace.records().map(Result::unwrap).collect();
        assert_eq!(got, records_of(&records, &full, &keep), "{reason:?}");
    }
}

/// A last chunk that is whole but fails its CRC is damage, not a torn
/// write: it ends exactly at the end of the data, nothing is missing.
#[test]
fn corrupt_last_chunk_that_is_whole_is_damage_not_a_torn_tail() {
    let (bytes, _, spans) = multi_chunk();
    let (s, e) = spans[spans.len() - 1];
    for at in [s + 4, s + 40, e - 1] {
        let mut data = bytes[..e].to_vec();
        data[at] ^= 0x01;
        let trace = Trace::open(&data).unwrap();
        let rec = trace.recovery();
        assert_eq!(rec.chunks_recovered, spans.len() - 1, "byte {at}");
        assert_eq!(rec.damaged.len(), 1, "byte {at}: {rec:?}");
        assert_eq!(us(rec.damaged[0].offset), s);
        assert_eq!(us(rec.damaged[0].len), e - s);
        assert_eq!(rec.damaged[0].reason, DamageReason::Crc);
        assert_eq!(us(rec.bytes_unaccounted), e - s);
        assert!(rec.truncated);
    }
    // The same chunk one byte short is a torn write.
    let trace = Trace::open(&bytes[..e - 1]).unwrap();
    let rec = trace.recovery();
    assert!(rec.damaged.is_empty(), "{rec:?}");
    assert_eq!(us(rec.bytes_unaccounted), e - 1 - s);
}

/// A valid trailer whose index length also covers junk after the index
/// frame does not make the file clean: the index frame must end exactly
/// where the trailer starts.
#[test]
fn trailer_covering_junk_after_the_index_is_damage() {
    let (bytes, records, spans) = multi_chunk();
    let ix = index_offset(&bytes);
    let trailer_at = bytes.len() - trace_format::file::TRAILER_LEN;
    let junk = [0u8; 9];
    let mut data = bytes[..trailer_at].to_vec();
    data.extend_from_slice(&junk);
    let mut trailer = (ix as u64).to_le_bytes().to_vec();
    let index_len = u32::try_from(trailer_at - ix + junk.len()).unwrap();
    trailer.extend_from_slice(&index_len.to_le_bytes());
    let crc = trace_format::crc32c(&trailer);
    trailer.extend_from_slice(&crc.to_le_bytes());
    trailer.extend_from_slice(&trace_format::file::TRAILER_MAGIC);
    data.extend_from_slice(&trailer);
    let trace = Trace::open(&data).unwrap();
    let rec = trace.recovery();
    assert!(!rec.is_clean(), "{rec:?}");
    assert!(rec.index_found && !rec.truncated);
    assert_eq!(rec.chunks_recovered, spans.len());
    assert!(!rec.damaged.is_empty());
    assert_eq!(us(rec.damaged[0].offset), trailer_at);
    assert_eq!(us(rec.damaged[0].len), junk.len());
    assert!(
        rec.damaged
            .iter()
            .all(|d| d.reason == DamageReason::BadTrailer),
        "{rec:?}"
    );
    let got: Vec<Timed> = trace.records().map(Result::unwrap).collect();
    assert_eq!(got, records);
}

/// Replaces the index frame and trailer of `bytes` with ones for `index`.
fn with_index(bytes: &[u8], index: &trace_format::file::Index) -> Vec<u8> {
    let ix = index_offset(bytes);
    let body = postcard::to_allocvec(index).unwrap();
    let mut out = bytes[..ix].to_vec();
    out.extend_from_slice(&trace_format::file::INDEX_SYNC.to_le_bytes());
    let mut v = body.len();
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap());
    out.extend_from_slice(&body);
    out.extend_from_slice(&trace_format::crc32c(&body).to_le_bytes());
    let mut trailer = (ix as u64).to_le_bytes().to_vec();
    trailer.extend_from_slice(&u32::try_from(out.len() - ix).unwrap().to_le_bytes());
    let crc = trace_format::crc32c(&trailer);
    trailer.extend_from_slice(&crc.to_le_bytes());
    trailer.extend_from_slice(&trace_format::file::TRAILER_MAGIC);
    out.extend_from_slice(&trailer);
    out
}

/// A CRC-valid index whose chunk offsets are all wrong (every other field
/// right) is not used: the chunks are found by scanning, at their real
/// offsets, and the disagreement is reported.
#[test]
fn index_with_wrong_chunk_offsets_is_not_trusted() {
    let (bytes, records, spans) = multi_chunk();
    let full = Trace::open(&bytes).unwrap();
    // The rewritten frame is a faithful copy when nothing is changed.
    let same = with_index(&bytes, full.index().unwrap());
    assert_eq!(same, bytes);
    let mut lie = full.index().unwrap().clone();
    for e in &mut lie.chunks {
        e.offset += 1;
    }
    let data = with_index(&bytes, &lie);
    let trace = Trace::open(&data).unwrap();
    let rec = trace.recovery();
    assert!(!rec.is_clean(), "{rec:?}");
    assert!(rec.index_found && !rec.truncated);
    assert_eq!(rec.damaged.len(), 1, "{rec:?}");
    assert_eq!(rec.damaged[0].reason, DamageReason::IndexMismatch);
    assert_eq!(us(rec.damaged[0].offset), index_offset(&data));
    assert!(trace.index().is_none());
    let offsets: Vec<usize> = trace.chunks().iter().map(|c| us(c.offset)).collect();
    let real: Vec<usize> = spans.iter().map(|s| s.0).collect();
    assert_eq!(offsets, real);
    let got: Vec<Timed> = trace.records().map(Result::unwrap).collect();
    assert_eq!(got, records);
}

/// A valid trailer pointing at a byte that is no index frame: the file is
/// not clean, whatever the trailer says.
#[test]
fn trailer_pointing_at_no_index_frame_is_damage() {
    let empty = write_trace(&[], ChunkLimits::default());
    let meta_end = index_offset(&empty);
    for filler in [&[0u8][..], &[0xC7], &[0xC7, b'I', b'X', 0x5A, 0]] {
        let mut data = empty[..meta_end].to_vec();
        data.extend_from_slice(filler);
        let mut trailer = (meta_end as u64).to_le_bytes().to_vec();
        trailer.extend_from_slice(&u32::try_from(filler.len()).unwrap().to_le_bytes());
        let crc = trace_format::crc32c(&trailer);
        trailer.extend_from_slice(&crc.to_le_bytes());
        trailer.extend_from_slice(&trace_format::file::TRAILER_MAGIC);
        data.extend_from_slice(&trailer);
        let trace = Trace::open(&data).unwrap();
        let rec = trace.recovery();
        assert!(!rec.is_clean() && !rec.index_found, "{filler:?}: {rec:?}");
        assert!(trace.index().is_none() && trace.chunks().is_empty());
        assert_eq!(us(rec.bytes_unaccounted), filler.len(), "{rec:?}");
    }
}
