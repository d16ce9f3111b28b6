//! Per-chunk record codec ([`CODEC_DELTA_V1`](super::layout::CODEC_DELTA_V1)).
//!
//! A record body is `varint(ts − previous ts) ‖ postcard(Record)`; the first
//! record of a chunk is relative to the chunk's `first_ts`. In snapshots the
//! monotonic per-CPU counters (`clock`, `nr_switches`, `run_delay_ns`,
//! `pcount`) are stored as zigzag deltas against the same CPU's row in the
//! previous snapshot of the chunk (zero for the first snapshot or new rows),
//! which turns 8-byte clocks into 3–4 byte varints. State resets per chunk.

use alloc::vec::Vec;

use super::layout::{VarintError, put_varint, take_varint};
use crate::record::{CpuRow, Record, Snapshot, Timed};

/// Zigzag-encodes the wrapping difference `value − prev`.
#[inline]
fn zigzag_delta(value: u64, prev: u64) -> u64 {
    let d = value.wrapping_sub(prev).cast_signed();
    ((d << 1) ^ (d >> 63)).cast_unsigned()
}

/// Inverse of [`zigzag_delta`].
#[inline]
pub(crate) fn unzigzag_add(zz: u64, prev: u64) -> u64 {
    let d = (zz >> 1).cast_signed() ^ -((zz & 1).cast_signed());
    prev.wrapping_add(d.cast_unsigned())
}

/// Maps a row's counters through `f(value, prev)`.
#[inline]
fn map_counters(row: &CpuRow, prev: &CpuRow, f: fn(u64, u64) -> u64) -> CpuRow {
    CpuRow {
        clock: f(row.clock, prev.clock),
        nr_switches: f(row.nr_switches, prev.nr_switches),
        run_delay_ns: f(row.run_delay_ns, prev.run_delay_ns),
        pcount: f(row.pcount, prev.pcount),
        ..*row
    }
}

/// Writer-side delta state for one chunk.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    prev_ts: u64,
    /// Absolute rows of the previous snapshot in this chunk.
    prev_rows: Vec<CpuRow>,
    /// Reused buffer for the delta-encoded rows.
    scratch_rows: Vec<CpuRow>,
}

impl Encoder {
    /// Starts a new chunk whose first record has time `first_ts`.
    pub fn reset(&mut self, first_ts: u64) {
        self.prev_ts = first_ts;
        self.prev_rows.clear();
    }

    /// Appends the body (`varint ts delta ‖ postcard record`) of one record
    /// to `out` without changing the delta state; [`Encoder::commit`] does
    /// that once the body is known to go into this chunk.
    pub fn encode(
        &mut self,
        ts: u64,
        record: &Record,
        out: &mut Vec<u8>,
    ) -> Result<(), postcard::Error> {
        put_varint(out, ts.saturating_sub(self.prev_ts));
        let Record::Snapshot(snap) = record else {
            return serialize_into(record, out);
        };
        self.scratch_rows.clear();
        let zero = CpuRow::default();
        for (i, row) in snap.rows.iter().enumerate() {
            let prev = self.prev_rows.get(i).unwrap_or(&zero);
            self.scratch_rows
                .push(map_counters(row, prev, zigzag_delta));
        }
        let wire = Record::Snapshot(Snapshot {
            trigger: snap.trigger,
            rendezvous_ns: snap.rendezvous_ns,
            frozen_ns: snap.frozen_ns,
            fields: snap.fields,
            rows: core::mem::take(&mut self.scratch_rows),
        });
        let result = serialize_into(&wire, out);
        if let Record::Snapshot(s) = wire {
            self.scratch_rows = s.rows;
        }
        result
    }

    /// Advances the delta state past a record that was written.
    pub fn commit(&mut self, ts: u64, record: &Record) {
        self.prev_ts = ts;
        if let Record::Snapshot(snap) = record {
            self.prev_rows.clear();
            self.prev_rows.extend_from_slice(&snap.rows);
        }
    }
}

/// postcard output flavor appending to a borrowed `Vec` (no ownership dance,
/// slices copied with `extend_from_slice`).
struct VecFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for VecFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `postcard(record)` to `out`.
fn serialize_into(record: &Record, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(record, VecFlavor(out))
}

/// Why one record body did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// The length prefix is malformed or runs past the payload.
    #[error("bad record length")]
    Length,
    /// The timestamp delta is malformed or overflows.
    #[error("bad timestamp delta")]
    Timestamp,
    /// postcard rejected the body.
    #[error("postcard: {0}")]
    Postcard(postcard::Error),
    /// The payload held a different number of records than the header says.
    #[error("header says {expected} records, payload holds {found}")]
    Count { expected: u32, found: u32 },
}

/// Reader-side delta state for one chunk.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    prev_ts: u64,
    prev_rows: Vec<CpuRow>,
}

impl Decoder {
    /// Starts a chunk whose header says `first_ts`.
    pub fn reset(&mut self, first_ts: u64) {
        self.prev_ts = first_ts;
        self.prev_rows.clear();
    }

    /// Decodes the next `varint len ‖ body` frame from the front of
    /// `payload`; returns the record and the rest of the payload.
    #[inline]
    pub fn decode_next<'p>(&mut self, payload: &'p [u8]) -> Result<(Timed, &'p [u8]), RecordFault> {
        let (len, rest) = take_varint(payload).map_err(|_| RecordFault::Length)?;
        let len = usize::try_from(len).map_err(|_| RecordFault::Length)?;
        let (body, rest) = rest.split_at_checked(len).ok_or(RecordFault::Length)?;
        Ok((self.decode_body(body)?, rest))
    }

    /// Decodes one record body. Bytes after the record inside its frame are
    /// ignored, so a newer writer may append fields to a variant's last struct.
    fn decode_body(&mut self, body: &[u8]) -> Result<Timed, RecordFault> {
        let (delta, body) = take_varint(body).map_err(|e| match e {
            VarintError::Incomplete | VarintError::Overflow => RecordFault::Timestamp,
        })?;
        let ts = self
            .prev_ts
            .checked_add(delta)
            .ok_or(RecordFault::Timestamp)?;
        self.prev_ts = ts;
        if let Some(record) = super::fast::decode_hot(body, &mut self.prev_rows) {
            return Ok(Timed { ts_ns: ts, record });
        }
        let (mut record, _) =
            postcard::take_from_bytes::<Record>(body).map_err(RecordFault::Postcard)?;
        if let Record::Snapshot(snap) = &mut record {
            let zero = CpuRow::default();
            for (i, row) in snap.rows.iter_mut().enumerate() {
                let prev = self.prev_rows.get(i).unwrap_or(&zero);
                *row = map_counters(row, prev, unzigzag_add);
            }
            self.prev_rows.clear();
            self.prev_rows.extend_from_slice(&snap.rows);
        }
        Ok(Timed { ts_ns: ts, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_inverts() {
        for (v, p) in [
            (0u64, 0u64),
            (5, 3),
            (3, 5),
            (u64::MAX, 0),
            (0, u64::MAX),
            (1 << 63, 1),
        ] {
            assert_eq!(unzigzag_add(zigzag_delta(v, p), p), v);
        }
        assert_eq!(zigzag_delta(4, 5), 1);
        assert_eq!(zigzag_delta(6, 5), 2);
    }
}
