//! Fuzzes the trace reader: open arbitrary bytes, iterate every record,
//! compute metrics, verify and check integrity. Each input is tried twice: as given, and with
//! its meta/chunk/index/trailer CRCs recomputed, so mutations reach the record
//! decoders instead of stopping at a CRC mismatch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trace_format::crc32c;
use trace_format::file::{
    CHUNK_HEADER_LEN, CHUNK_SYNC, FILE_HEADER_LEN, FileHeader, INDEX_SYNC, TRAILER_LEN, Trace,
};

fn exercise(data: &[u8]) {
    let Ok(trace) = Trace::open(data) else { return };
    let _ = trace.meta();
    let mut ok = 0usize;
    for r in trace.records() {
        ok += usize::from(r.is_ok());
    }
    let _ = trace.metrics();
    let _ = trace.kind_counts();
    let rec = trace.verify();
    assert!(rec.chunks_recovered <= trace.chunks().len());
    let integrity = trace.integrity();
    assert_eq!(
        integrity.recovery, rec,
        "integrity() and verify() disagree on bytes"
    );
    assert!(!integrity.is_intact() || rec.is_clean());
    let mut again = 0usize;
    for i in 0..trace.chunks().len() {
        again += trace
            .chunk_records(i)
            .map(|it| it.filter(Result::is_ok).count())
            .unwrap_or(0);
    }
    assert_eq!(ok, again, "records() and chunk_records() disagree");
}

fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((usize::try_from(v).ok()?, i + 1));
        }
    }
    None
}

/// Rewrites the CRC of a `varint len ‖ body ‖ crc` frame at `at`, covering
/// `covered` bytes before the body too; returns its end.
fn fix_frame(d: &mut [u8], at: usize, covered: &[u8]) -> Option<usize> {
    let (len, n) = varint(d.get(at..)?)?;
    let body = at.checked_add(n)?;
    let end = body.checked_add(len)?;
    let mut bytes = covered.to_vec();
    bytes.extend_from_slice(d.get(body..end)?);
    let crc = crc32c(&bytes);
    d.get_mut(end..end.checked_add(4)?)?
        .copy_from_slice(&crc.to_le_bytes());
    Some(end + 4)
}

fn fix_crcs(d: &mut [u8]) {
    // From minor 1 on the meta CRC covers the file header as well.
    let header = d.get(..FILE_HEADER_LEN).unwrap_or_default().to_vec();
    let covered = match FileHeader::decode(&header) {
        Some(h) if h.is_protected() => header,
        _ => Vec::new(),
    };
    let Some(mut p) = fix_frame(d, FILE_HEADER_LEN, &covered) else {
        return;
    };
    while p + 4 <= d.len() {
        let sync = u32::from_le_bytes(d[p..p + 4].try_into().unwrap());
        if sync == CHUNK_SYNC && p + CHUNK_HEADER_LEN <= d.len() {
            let len = u32::from_le_bytes(d[p + 8..p + 12].try_into().unwrap()) as usize;
            let end = p + CHUNK_HEADER_LEN + len;
            if end <= d.len() {
                let mut covered = d[p..p + 16].to_vec();
                covered.extend_from_slice(&d[p + 20..end]);
                let crc = crc32c(&covered);
                d[p + 16..p + 20].copy_from_slice(&crc.to_le_bytes());
                p = end;
                continue;
            }
        } else if sync == INDEX_SYNC {
            if let Some(end) = fix_frame(d, p + 4, &[]) {
                p = end;
                continue;
            }
        }
        p += 1;
    }
    if d.len() >= TRAILER_LEN {
        let t = d.len() - TRAILER_LEN;
        let crc = crc32c(&d[t..t + 12]);
        d[t + 12..t + 16].copy_from_slice(&crc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut fixed = data.to_vec();
    fix_crcs(&mut fixed);
    exercise(&fixed);
});
