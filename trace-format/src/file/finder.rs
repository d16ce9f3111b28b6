//! The recovery scan's search for valid structures, in linear time.
//!
//! A crafted file can hold a sync word every few bytes, each claiming a
//! payload that runs to the end of the file: checking every candidate's CRC
//! directly re-reads megabytes per candidate (quadratic). Instead one sweep
//! walks the bytes once, keeping the CRC register `G(p)` of everything so
//! far; each candidate records `G` where its checked bytes start and is
//! decided when the sweep reaches where they end ([`super::span_crc`]).
//! Every byte is swept once, every candidate header read once, and every
//! index body decoded at most once (a CRC-valid index that does not decode
//! is skipped whole), whatever the input.

use alloc::collections::VecDeque;

use super::end_queue::EndQueue;
use super::index::Index;
use super::layout::{
    CHUNK_HEADER_LEN, CHUNK_SYNC, ChunkHeader, INDEX_SYNC, SYNC_FIRST_BYTE, VarintError,
    codec_supported, le_u32, take_varint, to_u64, to_usize,
};
use super::recovery::{ChunkInfo, DamageReason};
use super::span_crc::ZeroShift;
use crate::checksum::crc32c_advance;

/// A structure found at some offset.
pub(crate) enum Found {
    Chunk(ChunkInfo),
    Index(Index),
}

/// What the scan did, for tests that pin its cost to the input size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanWork {
    /// Bytes fed to a CRC register (the sweep and candidate headers).
    pub crc_bytes: u64,
    /// Sync words examined as possible chunk or index starts.
    pub candidates: u64,
    /// Index bodies handed to the decoder.
    pub index_bytes_decoded: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the sweep; `reg` is the header register, then
    /// `header ⊕ G(body start)` once the sweep passed the body start.
    Pending {
        reg: u32,
    },
    Valid,
    Invalid,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chunk,
    Index,
}

/// A sync word whose structure fits in the data, its CRC not yet decided.
struct Candidate {
    at: usize,
    kind: Kind,
    /// CRC-checked bytes after the header: `body..body_end`.
    body: usize,
    body_end: usize,
    /// Offset just past the structure.
    end: usize,
    /// The register the checked bytes must end with (`!crc`).
    target: u32,
    state: State,
}

/// Finds, for increasing offsets, the first valid chunk or index at or
/// after each. See the module docs.
pub(crate) struct Finder<'a> {
    data: &'a [u8],
    /// Candidates from `first_seq` on, in file order.
    live: VecDeque<Candidate>,
    first_seq: u64,
    /// Candidates (by sequence number) waiting for the sweep to reach their
    /// body start (in file order) or body end.
    starts: VecDeque<(usize, u64)>,
    ends: EndQueue,
    /// The sweep: `reg` is the register of `data[origin..sweep_at]`.
    sweep_at: usize,
    reg: u32,
    /// Where the next sync word search starts, and its cached result.
    search_at: usize,
    next_sync: Option<Option<usize>>,
    /// Candidates before this are ignored (inside a skipped index frame).
    skip_before: usize,
    shift: ZeroShift,
    work: ScanWork,
}

impl<'a> Finder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Finder {
            data,
            live: VecDeque::new(),
            first_seq: 0,
            starts: VecDeque::new(),
            ends: EndQueue::default(),
            sweep_at: 0,
            reg: 0,
            search_at: 0,
            next_sync: None,
            skip_before: 0,
            shift: ZeroShift::default(),
            work: ScanWork::default(),
        }
    }

    /// What the search cost so far.
    pub fn work(&self) -> ScanWork {
        self.work
    }

    /// The first offset ≥ `from` where a whole, CRC-valid chunk or a
    /// decodable index frame starts: the offset, the structure, and the
    /// offset just past it. Calls must not decrease `from`.
    pub fn first_valid(&mut self, from: usize) -> Option<(usize, Found, usize)> {
        let from = from.max(self.skip_before);
        if self.search_at < from {
            self.search_at = from;
            self.next_sync = None;
        }
        loop {
            while let Some(c) = self.live.front() {
                if c.at >= from.max(self.skip_before) && c.state != State::Invalid {
                    break;
                }
                self.live.pop_front();
                self.first_seq += 1;
            }
            match self.live.front().map(|c| (c.state, c.at, c.kind, c.end)) {
                Some((State::Valid, at, kind, end)) => {
                    if let Some(found) = self.build(at, kind, end) {
                        return Some(found);
                    }
                    // A CRC-valid index that does not decode: skip it whole,
                    // so no byte is decoded twice.
                    self.skip_before = end;
                }
                Some(_) => self.step(),
                None => {
                    // Nothing pending: the sweep may restart at the next sync.
                    // (Entries left in `ends` belong to dropped candidates.)
                    self.starts.clear();
                    let next = self.peek_sync()?;
                    self.sweep_at = next;
                    self.reg = 0;
                    self.step();
                }
            }
        }
    }

    /// Advances the sweep to the next event (a sync word, a body start or a
    /// body end) and handles every event at that offset.
    fn step(&mut self) {
        let sync = self.peek_sync();
        let start = self.starts.front().map(|&(p, _)| p);
        let end = self.ends.next_stop();
        let Some(to) = [sync, start, end].into_iter().flatten().min() else {
            // Unreachable while a candidate is pending; drop them all.
            self.live.clear();
            return;
        };
        if to > self.sweep_at {
            let bytes = self.data.get(self.sweep_at..to).unwrap_or_default();
            self.reg = crc32c_advance(self.reg, bytes);
            self.work.crc_bytes = self.work.crc_bytes.saturating_add(to_u64(bytes.len()));
            self.sweep_at = to;
        }
        if sync == Some(to) {
            self.search_at = to.saturating_add(1);
            self.next_sync = None;
            self.enumerate(to);
        }
        while let Some(&(p, seq)) = self.starts.front() {
            if p != to {
                break;
            }
            self.starts.pop_front();
            let g_start = self.reg;
            if let Some(c) = self.get(seq)
                && let State::Pending { reg } = c.state
            {
                c.state = State::Pending { reg: reg ^ g_start };
                let body_end = c.body_end;
                self.ends.push(body_end, seq);
            }
        }
        while let Some(seq) = self.ends.pop_at(to) {
            let g_end = self.reg;
            let Some(c) = self.get(seq) else { continue };
            let State::Pending { reg } = c.state else {
                continue;
            };
            let len = to_u64(c.body_end.saturating_sub(c.body));
            let target = c.target;
            let valid = self.shift.shift(reg, len) ^ g_end == target;
            if let Some(c) = self.get(seq) {
                c.state = if valid { State::Valid } else { State::Invalid };
            }
        }
    }

    fn get(&mut self, seq: u64) -> Option<&mut Candidate> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.live.get_mut(i)
    }

    /// The next sync-word start ≥ `search_at`, if any.
    fn peek_sync(&mut self) -> Option<usize> {
        if let Some(cached) = self.next_sync {
            return cached;
        }
        let mut q = self.search_at;
        let found = loop {
            let Some(rest) = self.data.get(q..) else {
                break None;
            };
            let Some(skip) = rest.iter().position(|&b| b == SYNC_FIRST_BYTE) else {
                break None;
            };
            q = q.saturating_add(skip);
            if matches!(le_u32(self.data, q), Some(CHUNK_SYNC | INDEX_SYNC)) {
                break Some(q);
            }
            q = q.saturating_add(1);
        };
        self.next_sync = Some(found);
        found
    }

    /// Records the candidate at `at` (the sweep is at `at`).
    fn enumerate(&mut self, at: usize) {
        self.work.candidates = self.work.candidates.saturating_add(1);
        let Some(mut c) = shape(self.data, at) else {
            return;
        };
        let seq = self.first_seq.saturating_add(to_u64(self.live.len()));
        let header_reg = match c.kind {
            Kind::Index => !0,
            Kind::Chunk => {
                let h = self.data.get(at..at.saturating_add(CHUNK_HEADER_LEN));
                let h = h.unwrap_or_default();
                let covered = [h.get(..16), h.get(20..)];
                let mut reg = !0;
                for part in covered.into_iter().flatten() {
                    reg = crc32c_advance(reg, part);
                }
                self.work.crc_bytes = self.work.crc_bytes.saturating_add(28);
                reg
            }
        };
        c.state = State::Pending { reg: header_reg };
        self.starts.push_back((c.body, seq));
        self.live.push_back(c);
    }

    /// The structure of a CRC-valid candidate; `None` for an index frame
    /// that does not decode.
    fn build(&mut self, at: usize, kind: Kind, end: usize) -> Option<(usize, Found, usize)> {
        let rest = self.data.get(at..end)?;
        let found = match kind {
            Kind::Chunk => {
                let h = ChunkHeader::decode(rest)?;
                Found::Chunk(ChunkInfo {
                    offset: to_u64(at),
                    seq: h.seq,
                    payload_len: h.payload_len,
                    records: h.records,
                    first_ts: h.first_ts,
                    last_ts: None,
                    codec: h.codec,
                    crc_checked: true,
                })
            }
            Kind::Index => {
                let (len, tail) = take_varint(rest.get(4..)?).ok()?;
                let body = tail.get(..to_usize(len))?;
                self.work.index_bytes_decoded = self
                    .work
                    .index_bytes_decoded
                    .saturating_add(to_u64(body.len()));
                Found::Index(postcard::from_bytes::<Index>(body).ok()?)
            }
        };
        Some((at, found, end))
    }
}

/// The candidate at `at` when its header is sane and it fits in `data`
/// (CRC not checked); `None` otherwise.
fn shape(data: &[u8], at: usize) -> Option<Candidate> {
    let rest = data.get(at..)?;
    match le_u32(rest, 0)? {
        CHUNK_SYNC => {
            let h = ChunkHeader::decode(rest)?;
            let body = at.checked_add(CHUNK_HEADER_LEN)?;
            let body_end = body.checked_add(to_usize(u64::from(h.payload_len)))?;
            let sane = codec_supported(h.codec) && h.reserved == [0; 3];
            (sane && body_end <= data.len()).then_some(Candidate {
                at,
                kind: Kind::Chunk,
                body,
                body_end,
                end: body_end,
                target: !h.crc,
                state: State::Invalid,
            })
        }
        INDEX_SYNC => {
            let frame = rest.get(4..)?;
            let (len, tail) = take_varint(frame).ok()?;
            let body = at.checked_add(4 + frame.len() - tail.len())?;
            let body_end = body.checked_add(to_usize(len))?;
            let crc = le_u32(data, body_end)?;
            Some(Candidate {
                at,
                kind: Kind::Index,
                body,
                body_end,
                end: body_end.checked_add(4)?,
                target: !crc,
                state: State::Invalid,
            })
        }
        _ => None,
    }
}

/// Why the bytes at `at` are not a valid structure, given that they are
/// not (the finder said so): the cheap checks, else a CRC mismatch.
pub(crate) fn damage_reason(data: &[u8], at: usize) -> DamageReason {
    let rest = data.get(at..).unwrap_or_default();
    let Some(sync) = le_u32(rest, 0) else {
        let prefix_of = |s: u32| s.to_le_bytes().starts_with(rest);
        return if prefix_of(CHUNK_SYNC) || prefix_of(INDEX_SYNC) {
            DamageReason::Incomplete
        } else {
            DamageReason::NoSync
        };
    };
    match sync {
        CHUNK_SYNC => {
            let Some(h) = ChunkHeader::decode(rest) else {
                return DamageReason::Incomplete;
            };
            let len = CHUNK_HEADER_LEN.saturating_add(to_usize(u64::from(h.payload_len)));
            if len > rest.len() {
                DamageReason::Incomplete
            } else if !codec_supported(h.codec) {
                DamageReason::UnsupportedCodec(h.codec)
            } else if h.reserved != [0; 3] {
                DamageReason::BadHeader
            } else {
                DamageReason::Crc
            }
        }
        INDEX_SYNC => match take_varint(rest.get(4..).unwrap_or_default()) {
            Err(VarintError::Incomplete) => DamageReason::Incomplete,
            Err(VarintError::Overflow) => DamageReason::BadIndex,
            Ok((len, tail)) => {
                let need = to_usize(len).saturating_add(4);
                if tail.len() < need {
                    DamageReason::Incomplete
                } else {
                    DamageReason::BadIndex
                }
            }
        },
        _ => DamageReason::NoSync,
    }
}
