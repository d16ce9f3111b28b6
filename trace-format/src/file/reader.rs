//! [`Trace`]: a read-only view of a trace file held in memory (or mmapped).
//!
//! Opening checks the header and meta, then locates chunks (see
//! [`super::recovery`]). Records decode lazily, chunk by chunk, straight from
//! the borrowed bytes. Nothing here panics on malformed input.

use alloc::vec::Vec;

use super::codec::{Decoder, RecordFault};
use super::finder::ScanWork;
use super::index::{Index, Summary};
use super::integrity::record_damage;
use super::layout::{
    CHUNK_HEADER_LEN, ChunkHeader, FILE_HEADER_LEN, FORMAT_MAJOR, FileHeader, FrameError,
    take_frame_covering, to_usize,
};
use super::recovery::{ChunkInfo, Recovery, locate};
use crate::meta::{Meta, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::metrics::RunMetrics;
use crate::record::{RecordKind, Timed};

/// Why a trace (or part of one) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Shorter than the file header.
    #[error("not a schedtape trace: {len} bytes is too short for the header")]
    TooShort { len: usize },
    /// The magic number is wrong.
    #[error("not a schedtape trace (bad magic)")]
    BadMagic,
    /// A format major version this reader does not know.
    #[error("unsupported trace format {major}.{minor}; this reader reads {FORMAT_MAJOR}.x")]
    UnsupportedVersion { major: u16, minor: u16 },
    /// The file ends inside the meta frame.
    #[error("meta frame is truncated")]
    MetaTruncated,
    /// The meta frame fails its CRC or has a malformed length.
    #[error("meta frame is corrupt")]
    MetaCorrupt,
    /// The meta frame is intact but does not decode (schema mismatch).
    #[error("meta does not decode: {0}")]
    MetaDecode(postcard::Error),
    /// The meta declares a schema this reader does not know.
    #[error(
        "trace schema {schema} is not readable here (this reader reads schemas \
         {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}; a newer schedtape may read it)"
    )]
    UnsupportedSchema { schema: u16 },
    /// No chunk with this number.
    #[error("no chunk {0}")]
    NoSuchChunk(usize),
    /// A listed chunk lies outside the file or its header disagrees.
    #[error("chunk at offset {offset} is missing or malformed")]
    ChunkBounds { offset: u64 },
    /// A chunk fails its CRC.
    #[error("chunk at offset {offset}: CRC mismatch")]
    ChunkCrc { offset: u64 },
    /// A record of a CRC-valid chunk does not decode.
    #[error("chunk at offset {offset}, record {record}: {fault}")]
    Record {
        offset: u64,
        record: u32,
        fault: RecordFault,
    },
}

/// An opened trace file. See the module docs.
#[derive(Debug)]
pub struct Trace<'a> {
    bytes: &'a [u8],
    header: FileHeader,
    meta: Meta,
    index: Option<Index>,
    chunks: Vec<ChunkInfo>,
    recovery: Recovery,
    scan_work: ScanWork,
}

impl<'a> Trace<'a> {
    /// Opens a trace. Fails only when the header or meta is unreadable;
    /// damage after the meta is reported by [`Trace::recovery`]. With a
    /// valid trailer this reads no chunk payloads (O(chunks) header checks).
    pub fn open(bytes: &'a [u8]) -> Result<Trace<'a>, ReadError> {
        let header = FileHeader::decode(bytes).ok_or(if bytes.len() < FILE_HEADER_LEN {
            ReadError::TooShort { len: bytes.len() }
        } else {
            ReadError::BadMagic
        })?;
        if header.major != FORMAT_MAJOR {
            return Err(ReadError::UnsupportedVersion {
                major: header.major,
                minor: header.minor,
            });
        }
        // From minor 1 on the meta CRC covers the header as well.
        let covered = if header.is_protected() {
            bytes.get(..FILE_HEADER_LEN).unwrap_or_default()
        } else {
            &[]
        };
        let frame = bytes.get(FILE_HEADER_LEN..).unwrap_or_default();
        let (body, used) = take_frame_covering(frame, covered).map_err(|e| match e {
            FrameError::Incomplete => ReadError::MetaTruncated,
            FrameError::BadLength | FrameError::Crc => ReadError::MetaCorrupt,
        })?;
        let meta = Meta::decode(body)?;
        let layout = locate(bytes, FILE_HEADER_LEN.saturating_add(used));
        Ok(Trace {
            bytes,
            header,
            meta,
            index: layout.index,
            chunks: layout.chunks,
            recovery: layout.recovery,
            scan_work: layout.work,
        })
    }

    /// Format version and flags.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The run's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The index, when one was found and agrees with the chunks.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// What was found and lost while opening. Payload damage in chunks
    /// listed by a valid index shows up only when decoding; see [`Trace::verify`].
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// What the recovery scan cost while opening (zero when the index was
    /// used): lets tests pin the scan's work to the file size.
    pub fn scan_work(&self) -> ScanWork {
        self.scan_work
    }

    /// The decodable chunks, in file order.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// The raw file bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Lazily decodes chunk `i`; fails up front if its CRC does not match.
    pub fn chunk_records(&self, i: usize) -> Result<ChunkRecords<'a>, ReadError> {
        let info = self.chunks.get(i).ok_or(ReadError::NoSuchChunk(i))?;
        open_chunk(self.bytes, info, Decoder::default())
    }

    /// Decodes all records of chunk `i`.
    pub fn decode_chunk(&self, i: usize) -> Result<Vec<Timed>, ReadError> {
        self.chunk_records(i)?.collect()
    }

    /// Every record of every chunk, in file order. A damaged chunk yields one
    /// `Err` and iteration continues with the next chunk.
    pub fn records(&self) -> Records<'_> {
        Records {
            bytes: self.bytes,
            chunks: &self.chunks,
            next: 0,
            current: None,
            spare: Some(Decoder::default()),
        }
    }

    /// Per-step summaries: from the index when present, else recomputed by
    /// decoding every good chunk (undecodable records are skipped).
    pub fn metrics(&self) -> RunMetrics {
        match &self.index {
            Some(ix) => ix.metrics.clone(),
            None => self.summarise().metrics(),
        }
    }

    /// Records per kind, indexed by [`RecordKind::index`]: from the index
    /// when present, else by decoding.
    pub fn kind_counts(&self) -> Vec<u64> {
        match &self.index {
            Some(ix) => {
                let mut counts = ix.kind_counts.clone();
                if counts.len() < RecordKind::ALL.len() {
                    counts.resize(RecordKind::ALL.len(), 0);
                }
                counts
            }
            None => self.summarise().kind_counts(),
        }
    }

    /// Decodes everything and returns [`Trace::recovery`] extended with
    /// every chunk that fails its CRC or does not decode: the byte-level
    /// part of [`Trace::integrity`], the full check.
    pub fn verify(&self) -> Recovery {
        let mut rec = self.recovery.clone();
        for (i, info) in self.chunks.iter().enumerate() {
            let failure = match self.chunk_records(i) {
                Err(e) => Some(e),
                Ok(mut it) => it.find_map(Result::err),
            };
            if let Some(err) = failure {
                record_damage(&mut rec, info, err);
            }
        }
        rec.damaged.sort_by_key(|d| d.offset);
        rec
    }

    fn summarise(&self) -> Summary {
        let mut summary = Summary::default();
        for t in self.records().flatten() {
            summary.observe(t.ts_ns, &t.record);
        }
        summary
    }
}

/// Opens `bytes` and fully verifies it: shorthand for
/// `Trace::open(bytes)?.verify()`.
pub fn validate(bytes: &[u8]) -> Result<Recovery, ReadError> {
    Ok(Trace::open(bytes)?.verify())
}

/// Checks chunk `info` (bounds, and CRC unless the scan did) and returns
/// an iterator over its records.
fn open_chunk<'a>(
    bytes: &'a [u8],
    info: &ChunkInfo,
    mut decoder: Decoder,
) -> Result<ChunkRecords<'a>, ReadError> {
    let offset = info.offset;
    let at = to_usize(offset);
    let start = at.saturating_add(CHUNK_HEADER_LEN);
    let payload = bytes
        .get(start..start.saturating_add(to_usize(u64::from(info.payload_len))))
        .ok_or(ReadError::ChunkBounds { offset })?;
    if !info.crc_checked {
        let h = bytes
            .get(at..)
            .and_then(ChunkHeader::decode)
            .ok_or(ReadError::ChunkBounds { offset })?;
        if h.compute_crc(payload) != h.crc {
            return Err(ReadError::ChunkCrc { offset });
        }
    }
    decoder.reset(info.first_ts, info.codec);
    Ok(ChunkRecords {
        payload,
        decoder,
        offset,
        expected: info.records,
        decoded: 0,
        done: false,
    })
}

/// Iterator over one chunk's records.
#[derive(Debug)]
pub struct ChunkRecords<'a> {
    payload: &'a [u8],
    decoder: Decoder,
    offset: u64,
    expected: u32,
    decoded: u32,
    done: bool,
}

impl ChunkRecords<'_> {
    fn fail(&mut self, fault: RecordFault) -> Option<Result<Timed, ReadError>> {
        self.done = true;
        Some(Err(ReadError::Record {
            offset: self.offset,
            record: self.decoded,
            fault,
        }))
    }
}

impl Iterator for ChunkRecords<'_> {
    type Item = Result<Timed, ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.payload.is_empty() || self.decoded == self.expected {
            if self.payload.is_empty() && self.decoded == self.expected {
                self.done = true;
                return None;
            }
            let found = if self.payload.is_empty() {
                self.decoded
            } else {
                self.decoded.saturating_add(1)
            };
            return self.fail(RecordFault::Count {
                expected: self.expected,
                found,
            });
        }
        match self.decoder.decode_next(self.payload) {
            Ok((timed, rest)) => {
                self.payload = rest;
                self.decoded += 1;
                Some(Ok(timed))
            }
            Err(fault) => self.fail(fault),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.done {
            0
        } else {
            to_usize(u64::from(self.expected.saturating_sub(self.decoded)))
        };
        (0, Some(left.saturating_add(1)))
    }
}

/// Iterator over all records of a [`Trace`]; see [`Trace::records`].
#[derive(Debug)]
pub struct Records<'t> {
    bytes: &'t [u8],
    chunks: &'t [ChunkInfo],
    next: usize,
    current: Option<ChunkRecords<'t>>,
    /// Decoder kept between chunks so its buffers are reused.
    spare: Option<Decoder>,
}

impl Iterator for Records<'_> {
    type Item = Result<Timed, ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(cur) = &mut self.current {
                if let Some(item) = cur.next() {
                    return Some(item);
                }
                self.spare = self.current.take().map(|c| c.decoder);
            }
            let info = self.chunks.get(self.next)?;
            self.next += 1;
            match open_chunk(self.bytes, info, self.spare.take().unwrap_or_default()) {
                Ok(records) => self.current = Some(records),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
