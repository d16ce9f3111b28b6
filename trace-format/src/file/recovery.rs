//! Finding the chunks of a file: via the trailer and index when the file was
//! closed cleanly, else by scanning, and reporting exactly what was lost.
//!
//! The scan walks from the end of the meta frame expecting a chunk header at
//! each position. A chunk is accepted when its header is sane and its CRC
//! matches. On anything else the bytes are skipped up to the next position
//! where a whole, CRC-valid chunk or index frame starts and recorded as
//! [`ChunkDamage`]. Bytes at the end that are merely incomplete (a torn
//! write) count as truncation instead. The search is linear in the file
//! size whatever the bytes ([`super::finder`]).

use alloc::vec::Vec;

use super::codec::RecordFault;
use super::finder::{Finder, Found, ScanWork, damage_reason};
use super::index::Index;
use super::layout::{
    CHUNK_HEADER_LEN, ChunkHeader, INDEX_SYNC, TRAILER_LEN, Trailer, codec_supported, le_u32,
    take_frame, to_u64, to_usize,
};

/// A chunk the reader can decode, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkInfo {
    /// File offset of the chunk header.
    pub offset: u64,
    pub seq: u32,
    pub payload_len: u32,
    pub records: u32,
    pub first_ts: u64,
    /// Known from the index; `None` for chunks found by scanning.
    pub last_ts: Option<u64>,
    /// The chunk codec from the header (a supported one).
    pub(crate) codec: u8,
    /// The CRC was already checked (by the scan); index-listed chunks are
    /// checked when decoded.
    pub(crate) crc_checked: bool,
}

impl ChunkInfo {
    /// Bytes the chunk occupies, header included.
    pub fn total_len(&self) -> u64 {
        u64::from(self.payload_len).saturating_add(to_u64(CHUNK_HEADER_LEN))
    }
}

/// What the reader found and what it had to skip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// A CRC-valid index frame was found (via the trailer or the scan).
    pub index_found: bool,
    /// Chunks available for decoding.
    pub chunks_recovered: usize,
    /// Skipped byte ranges in the middle of the file, in file order.
    pub damaged: Vec<ChunkDamage>,
    /// Bytes in no recovered structure: damaged ranges plus a torn tail.
    pub bytes_unaccounted: u64,
    /// The file does not end with a valid trailer: the writer did not finish.
    pub truncated: bool,
}

impl Recovery {
    /// True for a cleanly closed file with nothing lost.
    pub fn is_clean(&self) -> bool {
        self.index_found
            && !self.truncated
            && self.damaged.is_empty()
            && self.bytes_unaccounted == 0
    }
}

/// A byte range the reader could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDamage {
    pub offset: u64,
    pub len: u64,
    pub reason: DamageReason,
}

/// Why a byte range was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DamageReason {
    /// No sync word where a chunk should start.
    #[error("no chunk sync word")]
    NoSync,
    /// The chunk header or payload runs past the end of the data.
    #[error("chunk runs past the end of the data")]
    Incomplete,
    /// Reserved header bytes are set.
    #[error("malformed chunk header")]
    BadHeader,
    /// Header or payload does not match the chunk CRC.
    #[error("chunk CRC mismatch")]
    Crc,
    /// The chunk uses a codec this reader does not know.
    #[error("unsupported chunk codec {0}")]
    UnsupportedCodec(u8),
    /// An index frame that fails its CRC or does not decode.
    #[error("corrupt index frame")]
    BadIndex,
    /// Bytes after the index that are not a valid trailer, or a valid
    /// trailer that does not point at the index frame.
    #[error("corrupt trailer, or a trailer not pointing at the index")]
    BadTrailer,
    /// A CRC-valid index frame whose chunk list differs from the chunks
    /// in the file (offsets, lengths, sequence numbers, counts, times).
    #[error("index disagrees with the chunks in the file")]
    IndexMismatch,
    /// The chunk's CRC is fine but its records do not decode.
    #[error("records do not decode: {0}")]
    Records(RecordFault),
}

/// Chunks, index and recovery report for a file.
pub(crate) struct Layout {
    pub chunks: Vec<ChunkInfo>,
    /// Only when it agrees with `chunks`.
    pub index: Option<Index>,
    pub recovery: Recovery,
    /// What the scan cost; zero when the index was used.
    pub work: ScanWork,
}

/// Locates the chunks of `bytes`, whose meta frame ends at `start`.
pub(crate) fn locate(bytes: &[u8], start: usize) -> Layout {
    match via_index(bytes, start) {
        Ok(layout) => layout,
        Err(trailer) => scan(bytes, start, trailer),
    }
}

/// The O(1) path: trailer → index → chunk list, checking each listed chunk
/// header against its entry (payloads are CRC-checked when decoded). `Err`
/// carries the trailer if it was valid, for the scan.
fn via_index(bytes: &[u8], start: usize) -> Result<Layout, Option<Trailer>> {
    let trailer = Trailer::decode_at_end(bytes).ok_or(None)?;
    let fail = Err(Some(trailer));
    let trailer_at = bytes.len().saturating_sub(TRAILER_LEN);
    let index_at = to_usize(trailer.index_offset);
    let index_end = index_at.checked_add(to_usize(u64::from(trailer.index_len)));
    if index_at < start || index_end != Some(trailer_at) {
        return fail;
    }
    let body = bytes.get(..trailer_at).unwrap_or_default();
    let index = match index_frame(body.get(index_at..).unwrap_or_default()) {
        Some((index, len)) if index_at.checked_add(len) == Some(trailer_at) => index,
        _ => return fail,
    };
    let mut chunks = Vec::with_capacity(index.chunks.len());
    let mut expect = start;
    for e in &index.chunks {
        let Some(h) = bytes.get(expect..).and_then(ChunkHeader::decode) else {
            return fail;
        };
        let end = expect
            .checked_add(CHUNK_HEADER_LEN)
            .and_then(|p| p.checked_add(to_usize(u64::from(h.payload_len))));
        let agrees = to_usize(e.offset) == expect
            && (h.seq, h.payload_len, h.records, h.first_ts)
                == (e.seq, e.len, e.records, e.first_ts)
            && codec_supported(h.codec)
            && end.is_some_and(|end| end <= index_at);
        let (true, Some(end)) = (agrees, end) else {
            return fail;
        };
        chunks.push(ChunkInfo {
            offset: e.offset,
            seq: e.seq,
            payload_len: e.len,
            records: e.records,
            first_ts: e.first_ts,
            last_ts: Some(e.last_ts),
            codec: h.codec,
            crc_checked: false,
        });
        expect = end;
    }
    if expect != index_at {
        return fail;
    }
    let recovery = Recovery {
        index_found: true,
        chunks_recovered: chunks.len(),
        ..Recovery::default()
    };
    Ok(Layout {
        chunks,
        index: Some(index),
        recovery,
        work: ScanWork::default(),
    })
}

/// The recovery path; see the module docs.
fn scan(bytes: &[u8], start: usize, trailer: Option<Trailer>) -> Layout {
    // A valid trailer marks a cleanly closed file: scan only up to it.
    let end = if trailer.is_some() {
        bytes.len().saturating_sub(TRAILER_LEN)
    } else {
        bytes.len()
    };
    let data = bytes.get(..end).unwrap_or_default();
    let mut chunks = Vec::new();
    let mut damaged = Vec::new();
    let mut index = None;
    let mut torn = 0usize;
    let mut pos = start;
    let mut index_span = None;
    let mut finder = Finder::new(data);
    while pos < end {
        let Some((at, found, next)) = finder.first_valid(pos) else {
            let reason = damage_reason(data, pos);
            if reason == DamageReason::Incomplete && trailer.is_none() {
                torn = end - pos;
            } else {
                damaged.push(damage(pos, end, reason));
            }
            pos = end;
            break;
        };
        if at > pos {
            damaged.push(damage(pos, at, damage_reason(data, pos)));
        }
        pos = next;
        match found {
            Found::Chunk(c) => chunks.push(c),
            Found::Index(ix) => {
                index = Some(ix);
                index_span = Some((at, next));
                break;
            }
        }
    }
    if pos < end {
        // Bytes after the index frame: a torn or corrupt trailer.
        if trailer.is_none() && end - pos < TRAILER_LEN {
            torn = end - pos;
        } else {
            damaged.push(damage(pos, end, DamageReason::BadTrailer));
        }
    }
    let index_found = index.is_some();
    let index = index.filter(|ix| agrees(ix, &chunks));
    // An index that disagrees with undamaged chunks is damage of its own
    // (after lost chunks the disagreement is already explained).
    if let (None, Some((from, to)), true) = (&index, index_span, damaged.is_empty()) {
        damaged.push(damage(from, to, DamageReason::IndexMismatch));
    }
    // A valid trailer must point at the index frame the scan found.
    if let (Some(t), Some((from, to))) = (trailer, index_span) {
        let points_at = to_usize(t.index_offset) == from
            && to_usize(u64::from(t.index_len)) == to.saturating_sub(from);
        if !points_at {
            damaged.push(damage(end, bytes.len(), DamageReason::BadTrailer));
        }
    }
    damaged.sort_by_key(|d| d.offset);
    if let Some(ix) = &index {
        for (c, e) in chunks.iter_mut().zip(&ix.chunks) {
            c.last_ts = Some(e.last_ts);
        }
    }
    let lost = damaged
        .iter()
        .fold(to_u64(torn), |acc: u64, d: &ChunkDamage| {
            acc.saturating_add(d.len)
        });
    let recovery = Recovery {
        index_found,
        chunks_recovered: chunks.len(),
        damaged,
        bytes_unaccounted: lost,
        truncated: trailer.is_none(),
    };
    Layout {
        chunks,
        index,
        recovery,
        work: finder.work(),
    }
}

fn damage(from: usize, to: usize, reason: DamageReason) -> ChunkDamage {
    ChunkDamage {
        offset: to_u64(from),
        len: to_u64(to.saturating_sub(from)),
        reason,
    }
}

/// True when the index lists exactly these chunks.
fn agrees(index: &Index, chunks: &[ChunkInfo]) -> bool {
    index.chunks.len() == chunks.len()
        && index.chunks.iter().zip(chunks).all(|(e, c)| {
            (e.offset, e.len, e.seq, e.records, e.first_ts)
                == (c.offset, c.payload_len, c.seq, c.records, c.first_ts)
        })
}

/// The index frame at the front of `b` and its length, if CRC-valid and
/// decodable.
fn index_frame(b: &[u8]) -> Option<(Index, usize)> {
    if le_u32(b, 0)? != INDEX_SYNC {
        return None;
    }
    let (body, used) = take_frame(b.get(4..)?).ok()?;
    let index = postcard::from_bytes::<Index>(body).ok()?;
    Some((index, used.checked_add(4)?))
}
