//! The trace file: chunked, CRC-checked, footer-indexed, crash-tolerant.
//!
//! ```text
//! [FileHeader 16 B][Meta frame]([Chunk])*[Index frame][Trailer 24 B]
//! ```
//!
//! - File header: [`FILE_MAGIC`], major, minor, flags (little endian).
//! - Meta frame: `varint len ‖ postcard(Meta) ‖ crc32c`: the CRC of the file
//!   header and the postcard bytes (minor ≥ 1; minor 0 covered the postcard
//!   bytes only).
//! - Chunk: 32-byte header (sync, seq, payload len, record count, CRC32C of
//!   header and payload, codec, 3 reserved bytes, first timestamp) and a
//!   payload of `varint len ‖ varint ts delta ‖ postcard(Record)` records;
//!   snapshot counters and worker CPU masks are delta-encoded within the
//!   chunk ([`codec`]).
//! - Index frame: [`INDEX_SYNC`] `‖ varint len ‖ postcard(Index) ‖ crc32c`.
//! - Trailer: index offset u64, index frame length u32, CRC32C of those 12
//!   bytes, [`TRAILER_MAGIC`].
//!
//! [`TraceWriter`] produces files; [`Trace`] reads them, using the index when
//! the file was closed cleanly and scanning for chunks otherwise.
//! [`validate`] (= `Trace::open` + [`Trace::verify`]) checks the bytes;
//! [`Trace::integrity`] is the full check every `replay` command uses.

mod codec;
mod end_queue;
mod fast;
mod finder;
mod index;
mod integrity;
mod layout;
mod reader;
mod recovery;
mod span_crc;
mod writer;

pub use codec::RecordFault;
pub use finder::ScanWork;
pub use index::{ChunkEntry, Index};
pub use integrity::{Integrity, IntegrityFault};
pub use layout::{
    CHUNK_HEADER_LEN, CHUNK_SYNC, CODEC_DELTA_V1, CODEC_DELTA_V2, FILE_HEADER_LEN, FILE_MAGIC,
    FORMAT_MAJOR, FORMAT_MINOR, FileHeader, HEADER_COVERED_MINOR, INDEX_SYNC, TRAILER_LEN,
    TRAILER_MAGIC,
};
pub use reader::{ChunkRecords, ReadError, Records, Trace, validate};
pub use recovery::{ChunkDamage, ChunkInfo, DamageReason, Recovery};
#[cfg(feature = "std")]
pub use writer::IoSink;
pub use writer::{ChunkLimits, Sink, SinkError, TraceWriter, WriteError};
