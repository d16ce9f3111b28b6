//! Byte layout: magic numbers, the fixed-size file header, chunk header and
//! trailer, LEB128 varints, CRC32C and `varint len ‖ body ‖ crc` frames.
//!
//! Everything here is pure and bounds-checked: decoders take untrusted bytes
//! and return `None`/errors, never panic.

use alloc::vec::Vec;

use crate::checksum::{crc32c, crc32c_digest};

/// First 8 bytes of every trace: a high-bit byte (catches 7-bit transfers),
/// the tag `STP`, then `\r\n\x1a\n` (catches newline mangling), as in PNG.
pub const FILE_MAGIC: [u8; 8] = [0x8E, b'S', b'T', b'P', b'\r', b'\n', 0x1A, b'\n'];
/// Major format version; readers reject other majors.
pub const FORMAT_MAJOR: u16 = 1;
/// Minor format version; bumped for compatible additions. Minor 1: the
/// meta frame's CRC also covers the 16 header bytes (minor 0 left the
/// minor version and flags unprotected; such files still read).
pub const FORMAT_MINOR: u16 = 1;
/// The first minor version whose meta CRC covers the file header.
pub const HEADER_COVERED_MINOR: u16 = 1;
/// Size of the file header: magic, major, minor, flags.
pub const FILE_HEADER_LEN: usize = 16;
/// Sync word starting every chunk header (bytes `C7 'C' 'K' 5A`).
pub const CHUNK_SYNC: u32 = u32::from_le_bytes([0xC7, b'C', b'K', 0x5A]);
/// Sync word starting the index frame (bytes `C7 'I' 'X' 5A`).
pub const INDEX_SYNC: u32 = u32::from_le_bytes([0xC7, b'I', b'X', 0x5A]);
/// First byte shared by both sync words; resync searches for it.
pub(crate) const SYNC_FIRST_BYTE: u8 = 0xC7;
/// Size of a chunk header.
pub const CHUNK_HEADER_LEN: usize = 32;
/// Size of the trailer at the very end of a cleanly closed file.
pub const TRAILER_LEN: usize = 24;
/// Last 8 bytes of a cleanly closed file.
pub const TRAILER_MAGIC: [u8; 8] = [b'S', b'T', b'P', b'I', b'N', b'D', b'X', 0x8E];
/// Chunk codec: records as `varint len ‖ varint ts delta ‖ postcard(Record)`
/// with snapshot counters delta-encoded (see [`super::codec`]). Read only.
pub const CODEC_DELTA_V1: u8 = 1;
/// [`CODEC_DELTA_V1`] plus worker-sample `cpus_seen` XORed with the same
/// worker's previous mask. What this crate writes.
pub const CODEC_DELTA_V2: u8 = 2;

/// True for the chunk codecs this reader decodes.
pub(crate) fn codec_supported(codec: u8) -> bool {
    matches!(codec, CODEC_DELTA_V1 | CODEC_DELTA_V2)
}

/// Little-endian `u16` at `at`, if in bounds.
pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Little-endian `u32` at `at`, if in bounds.
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Little-endian `u64` at `at`, if in bounds.
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `u64` → `usize`, saturating (lengths from a file are compared to its size,
/// so a saturated value simply fails the bounds check).
pub(crate) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `usize` → `u64` (lossless on every supported target).
pub(crate) fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Appends `v` as an LEB128 varint (postcard's integer encoding).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v.to_le_bytes()[0] | 0x80);
        v >>= 7;
    }
    out.push(v.to_le_bytes()[0]);
}

/// Bytes [`put_varint`] uses for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 significant bits; 0 needs one byte.
    let bits = u64::BITS - (v | 1).leading_zeros();
    to_usize(u64::from(bits.div_ceil(7)))
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Incomplete,
    /// More than 64 bits.
    Overflow,
}

/// Reads an LEB128 `u64` from the front of `b`; returns it and the rest.
#[inline]
pub(crate) fn take_varint(b: &[u8]) -> Result<(u64, &[u8]), VarintError> {
    let mut v = 0u64;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate() {
        let part = u64::from(byte & 0x7f);
        if shift == 63 && part > 1 {
            return Err(VarintError::Overflow);
        }
        v |= part << shift;
        if byte & 0x80 == 0 {
            return Ok((v, b.get(i + 1..).unwrap_or_default()));
        }
        shift += 7;
        if shift > 63 {
            return Err(VarintError::Overflow);
        }
    }
    Err(VarintError::Incomplete)
}

/// The 16-byte file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    /// No flags are defined yet; readers ignore unknown bits.
    pub flags: u32,
}

impl FileHeader {
    /// The header this crate writes.
    pub const CURRENT: FileHeader = FileHeader {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        flags: 0,
    };

    /// True when the meta frame's CRC covers this header (minor ≥ 1), so a
    /// flipped minor version or flag bit is caught.
    pub fn is_protected(&self) -> bool {
        self.minor >= HEADER_COVERED_MINOR
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        b[..8].copy_from_slice(&FILE_MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    /// Parses a header; `None` when too short or the magic is wrong.
    pub fn decode(b: &[u8]) -> Option<FileHeader> {
        if b.get(..8)? != FILE_MAGIC {
            return None;
        }
        Some(FileHeader {
            major: le_u16(b, 8)?,
            minor: le_u16(b, 10)?,
            flags: le_u32(b, 12)?,
        })
    }
}

/// The fixed part of a chunk: sync, seq, payload length, record count, CRC,
/// codec, 3 reserved zero bytes and the first record's timestamp.
///
/// The CRC covers the header's other 28 bytes and the payload, so a flipped
/// header bit (seq, first_ts, count) is caught like a payload bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub seq: u32,
    pub payload_len: u32,
    pub records: u32,
    pub crc: u32,
    pub codec: u8,
    pub reserved: [u8; 3],
    pub first_ts: u64,
}

impl ChunkHeader {
    /// The header's bytes, including the sync word.
    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(&CHUNK_SYNC.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.records.to_le_bytes());
        b[16..20].copy_from_slice(&self.crc.to_le_bytes());
        b[20] = self.codec;
        b[21..24].copy_from_slice(&self.reserved);
        b[24..32].copy_from_slice(&self.first_ts.to_le_bytes());
        b
    }

    /// Parses a header at the front of `b`; `None` when short or unsynced.
    pub fn decode(b: &[u8]) -> Option<ChunkHeader> {
        if le_u32(b, 0)? != CHUNK_SYNC {
            return None;
        }
        Some(ChunkHeader {
            seq: le_u32(b, 4)?,
            payload_len: le_u32(b, 8)?,
            records: le_u32(b, 12)?,
            crc: le_u32(b, 16)?,
            codec: *b.get(20)?,
            reserved: b.get(21..24)?.try_into().ok()?,
            first_ts: le_u64(b, 24)?,
        })
    }

    /// The CRC this header and `payload` should carry.
    pub fn compute_crc(&self, payload: &[u8]) -> u32 {
        let bytes = self.encode();
        let mut d = crc32c_digest();
        d.update(&bytes[..16]);
        d.update(&bytes[20..]);
        d.update(payload);
        d.finalize()
    }
}

/// The 24-byte trailer: where the index frame is, CRC-protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub index_offset: u64,
    pub index_len: u32,
}

impl Trailer {
    /// The trailer's bytes.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[0..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.index_len.to_le_bytes());
        let crc = crc32c(&b[..12]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b[16..24].copy_from_slice(&TRAILER_MAGIC);
        b
    }

    /// Parses the last [`TRAILER_LEN`] bytes of `file`; `None` unless the
    /// magic and CRC check out.
    pub fn decode_at_end(file: &[u8]) -> Option<Trailer> {
        let b = file.get(file.len().checked_sub(TRAILER_LEN)?..)?;
        if b.get(16..24)? != TRAILER_MAGIC || le_u32(b, 12)? != crc32c(b.get(..12)?) {
            return None;
        }
        Some(Trailer {
            index_offset: le_u64(b, 0)?,
            index_len: le_u32(b, 8)?,
        })
    }
}

/// Appends a frame: `varint len ‖ body ‖ crc32c(body) LE`.
pub(crate) fn put_frame(out: &mut Vec<u8>, body: &[u8]) {
    put_frame_covering(out, &[], body);
}

/// [`put_frame`] whose CRC also covers `covered` (bytes written before the
/// frame, e.g. the file header): `crc32c(covered ‖ body)`.
pub(crate) fn put_frame_covering(out: &mut Vec<u8>, covered: &[u8], body: &[u8]) {
    put_varint(out, to_u64(body.len()));
    out.extend_from_slice(body);
    out.extend_from_slice(&crc_covering(covered, body).to_le_bytes());
}

fn crc_covering(covered: &[u8], body: &[u8]) -> u32 {
    let mut d = crc32c_digest();
    d.update(covered);
    d.update(body);
    d.finalize()
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The input ends inside the frame.
    Incomplete,
    /// The length varint is malformed.
    BadLength,
    /// The body does not match its CRC.
    Crc,
}

/// Reads a frame from the front of `b`; returns the body and the total
/// number of bytes the frame occupies.
pub(crate) fn take_frame(b: &[u8]) -> Result<(&[u8], usize), FrameError> {
    take_frame_covering(b, &[])
}

/// [`take_frame`] for a frame written by [`put_frame_covering`].
pub(crate) fn take_frame_covering<'b>(
    b: &'b [u8],
    covered: &[u8],
) -> Result<(&'b [u8], usize), FrameError> {
    let (len, rest) = take_varint(b).map_err(|e| match e {
        VarintError::Incomplete => FrameError::Incomplete,
        VarintError::Overflow => FrameError::BadLength,
    })?;
    let len = to_usize(len);
    let prefix = b.len() - rest.len();
    let body = rest.get(..len).ok_or(FrameError::Incomplete)?;
    let crc = le_u32(rest, len).ok_or(FrameError::Incomplete)?;
    if crc != crc_covering(covered, body) {
        return Err(FrameError::Crc);
    }
    // prefix + len + 4 ≤ b.len(), so this cannot overflow.
    Ok((body, prefix + len + 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn varint_round_trip_and_limits() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len());
            out.push(0xAA);
            let (got, rest) = take_varint(&out).unwrap();
            assert_eq!((got, rest), (v, &[0xAA][..]));
            // Matches postcard's own encoding.
            assert_eq!(
                &out[..out.len() - 1],
                &postcard::to_allocvec(&v).unwrap()[..]
            );
        }
        assert_eq!(take_varint(&[0x80, 0x80]), Err(VarintError::Incomplete));
        assert_eq!(take_varint(&[0xFF; 10]), Err(VarintError::Overflow));
        assert_eq!(
            take_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
            Err(VarintError::Overflow)
        );
    }

    #[test]
    fn headers_round_trip() {
        let h = FileHeader::CURRENT;
        assert_eq!(FileHeader::decode(&h.encode()), Some(h));
        assert_eq!(FileHeader::decode(&h.encode()[..15]), None);
        let c = ChunkHeader {
            seq: 7,
            payload_len: 99,
            records: 3,
            crc: 5,
            codec: CODEC_DELTA_V2,
            reserved: [0; 3],
            first_ts: 1 << 40,
        };
        assert_eq!(ChunkHeader::decode(&c.encode()), Some(c));
        let t = Trailer {
            index_offset: 1234,
            index_len: 56,
        };
        let mut file = vec![0u8; 10];
        file.extend_from_slice(&t.encode());
        assert_eq!(Trailer::decode_at_end(&file), Some(t));
        file[12] ^= 1;
        assert_eq!(Trailer::decode_at_end(&file), None);
    }

    #[test]
    fn frames_check_crc_and_length() {
        let mut out = Vec::new();
        put_frame(&mut out, b"hello");
        assert_eq!(take_frame(&out), Ok((&b"hello"[..], out.len())));
        assert_eq!(
            take_frame(&out[..out.len() - 1]),
            Err(FrameError::Incomplete)
        );
        out[2] ^= 1;
        assert_eq!(take_frame(&out), Err(FrameError::Crc));
        let mut covered = Vec::new();
        put_frame_covering(&mut covered, b"head", b"hello");
        assert_eq!(
            take_frame_covering(&covered, b"head").map(|f| f.0),
            Ok(&b"hello"[..])
        );
        assert_eq!(take_frame_covering(&covered, b"heaD"), Err(FrameError::Crc));
        assert_eq!(take_frame(&covered), Err(FrameError::Crc));
        // A huge claimed length in a tiny input is just incomplete.
        assert_eq!(
            take_frame(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2]),
            Err(FrameError::Incomplete)
        );
    }
}
