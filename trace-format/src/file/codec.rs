//! Per-chunk record codec ([`CODEC_DELTA_V2`](super::layout::CODEC_DELTA_V2),
//! and [`CODEC_DELTA_V1`](super::layout::CODEC_DELTA_V1) for reading).
//!
//! A record body is `varint(ts − previous ts) ‖ postcard(Record)`; the first
//! record of a chunk is relative to the chunk's `first_ts`. Two kinds are
//! stored against earlier records of the same chunk:
//!
//! - Snapshots: the monotonic per-CPU counters (`clock`, `nr_switches`,
//!   `run_delay_ns`, `pcount`) are zigzag deltas against the same CPU's row in
//!   the previous snapshot (zero for the first snapshot or new rows), which
//!   turns 8-byte clocks into 3–4 byte varints.
//! - Worker samples (V2 only): `cpus_seen` is XORed with the same worker's
//!   previous mask (see [`xor_mask`]), so a worker that stays on its CPUs
//!   stores an empty mask, whatever the CPU numbers.
//!
//! All state resets per chunk, so every chunk decodes on its own.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use serde::Serialize;

use super::layout::{CODEC_DELTA_V2, VarintError, put_varint, take_varint};
use crate::record::{CpuRow, Record, Snapshot, Timed, WakeStats, WorkerSample};

/// postcard variant index of `Record::Snapshot`.
pub(crate) const SNAPSHOT_TAG: u8 = 3;
/// postcard variant index of `Record::WorkerSample`.
pub(crate) const WORKER_SAMPLE_TAG: u8 = 5;

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

/// Rewrites `words` as `trim(words XOR prev) ‖ z zero words`, where `z` is
/// the number of zero words `words` ended with and `trim` drops trailing
/// zero words (`prev` and `words` are zero-extended to equal length).
///
/// Mask → wire and wire → mask are the same map: the wire form ends with
/// exactly the mask's trailing zero words, so the original length comes
/// back. An unchanged mask without trailing zeros becomes empty.
#[inline]
pub(crate) fn xor_mask(words: &mut Vec<u64>, prev: &[u64]) {
    let zeros = words.iter().rev().take_while(|&&w| w == 0).count();
    words.truncate(words.len() - zeros);
    if words.len() < prev.len() {
        words.resize(prev.len(), 0);
    }
    for (w, p) in words.iter_mut().zip(prev) {
        *w ^= p;
    }
    let used = trimmed(words).len();
    words.truncate(used);
    words.resize(used + zeros, 0);
}

/// `mask` without its trailing zero words.
fn trimmed(mask: &[u64]) -> &[u64] {
    let used = mask.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    &mask[..used]
}

/// Workers with a smaller id keep their mask in a table indexed by id.
const DENSE_WORKERS: usize = 1024;

/// Each worker's `cpus_seen` from its previous sample in the chunk, without
/// trailing zero words (which do not change an XOR); empty when none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    /// Workers `0..DENSE_WORKERS` by id, grown on demand (worker ids are
    /// handed out from 0, so this is where they normally are).
    dense: Vec<Vec<u64>>,
    /// Workers with larger ids.
    sparse: BTreeMap<u32, Vec<u64>>,
}

impl Masks {
    /// Forgets every mask, keeping the table's allocations.
    fn clear(&mut self) {
        self.dense.iter_mut().for_each(Vec::clear);
        self.sparse.clear();
    }

    /// The worker's previous mask; empty if none in this chunk.
    #[inline]
    pub fn get(&self, worker: u32) -> &[u64] {
        match usize::try_from(worker) {
            Ok(i) if i < DENSE_WORKERS => self.dense.get(i).map_or(&[], Vec::as_slice),
            _ => self.sparse.get(&worker).map_or(&[], Vec::as_slice),
        }
    }

    /// Remembers `mask` (trimmed) as the worker's previous mask.
    #[inline]
    pub fn set(&mut self, worker: u32, mask: &[u64]) {
        let slot = match usize::try_from(worker) {
            Ok(i) if i < DENSE_WORKERS => {
                if self.dense.len() <= i {
                    self.dense.resize_with(i + 1, Vec::new);
                }
                &mut self.dense[i]
            }
            _ => self.sparse.entry(worker).or_default(),
        };
        slot.clear();
        slot.extend_from_slice(trimmed(mask));
    }
}

/// Reader-side delta state of one chunk, shared by the fast and postcard paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeltaState {
    /// Absolute rows of the previous snapshot.
    pub rows: Vec<CpuRow>,
    /// Absolute masks of each worker's previous sample.
    pub masks: Masks,
    /// Whether `cpus_seen` is XOR-coded (codec V2).
    pub xor_cpus: bool,
}

impl DeltaState {
    /// Empties the state for a chunk of codec `codec`.
    fn reset(&mut self, codec: u8) {
        self.rows.clear();
        self.masks.clear();
        self.xor_cpus = codec >= CODEC_DELTA_V2;
    }

    /// Turns a sample's wire mask into the absolute one and remembers it.
    #[inline(always)]
    pub fn restore_cpus(&mut self, worker: u32, wire: Vec<u64>) -> Vec<u64> {
        if !self.xor_cpus {
            return wire;
        }
        if wire.is_empty() {
            // Unchanged (the common case): the stored mask is already trimmed.
            return self.masks.get(worker).to_vec();
        }
        self.changed_cpus(worker, wire)
    }

    /// [`DeltaState::restore_cpus`] for a mask that changed.
    #[inline(never)]
    fn changed_cpus(&mut self, worker: u32, mut wire: Vec<u64>) -> Vec<u64> {
        xor_mask(&mut wire, self.masks.get(worker));
        self.masks.set(worker, &wire);
        wire
    }
}

/// `Record::WorkerSample` as postcard lays it out (after the variant tag),
/// borrowing the sample and holding the wire form of `cpus_seen`.
#[derive(Serialize)]
struct WireSample<'a> {
    worker: u32,
    iterations: u64,
    run_ns: u64,
    wait_ns: u64,
    timeslices: u32,
    migrations: u32,
    voluntary_switches: u32,
    involuntary_switches: u32,
    cpus_seen: &'a [u64],
    wake: &'a Option<WakeStats>,
}

/// Writer-side delta state for one chunk.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    prev_ts: u64,
    /// Absolute rows of the previous snapshot in this chunk.
    prev_rows: Vec<CpuRow>,
    /// Reused buffer for the delta-encoded rows.
    scratch_rows: Vec<CpuRow>,
    /// Absolute masks of each worker's previous sample in this chunk.
    masks: Masks,
    /// Reused buffer for a wire mask.
    scratch_mask: Vec<u64>,
}

impl Encoder {
    /// Starts a new chunk whose first record has time `first_ts`.
    pub fn reset(&mut self, first_ts: u64) {
        self.prev_ts = first_ts;
        self.prev_rows.clear();
        self.masks.clear();
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
        match record {
            Record::Snapshot(snap) => self.encode_snapshot(snap, out),
            Record::WorkerSample(s) => self.encode_sample(s, out),
            _ => serialize_into(record, out),
        }
    }

    fn encode_snapshot(&mut self, snap: &Snapshot, out: &mut Vec<u8>) -> postcard::Result<()> {
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

    fn encode_sample(&mut self, s: &WorkerSample, out: &mut Vec<u8>) -> postcard::Result<()> {
        self.scratch_mask.clone_from(&s.cpus_seen);
        xor_mask(&mut self.scratch_mask, self.masks.get(s.worker));
        out.push(WORKER_SAMPLE_TAG);
        let wire = WireSample {
            worker: s.worker,
            iterations: s.iterations,
            run_ns: s.run_ns,
            wait_ns: s.wait_ns,
            timeslices: s.timeslices,
            migrations: s.migrations,
            voluntary_switches: s.voluntary_switches,
            involuntary_switches: s.involuntary_switches,
            cpus_seen: &self.scratch_mask,
            wake: &s.wake,
        };
        postcard::serialize_with_flavor(&wire, VecFlavor(out))
    }

    /// Advances the delta state past a record that was written.
    pub fn commit(&mut self, ts: u64, record: &Record) {
        self.prev_ts = ts;
        match record {
            Record::Snapshot(snap) => {
                self.prev_rows.clear();
                self.prev_rows.extend_from_slice(&snap.rows);
            }
            Record::WorkerSample(s) => self.masks.set(s.worker, &s.cpus_seen),
            _ => {}
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

/// Decodes a record (after the timestamp) with postcard and undoes the
/// chunk deltas; the reference the fast path is checked against. `state`
/// changes only on success.
pub(crate) fn decode_slow(body: &[u8], state: &mut DeltaState) -> postcard::Result<Record> {
    let (mut record, _) = postcard::take_from_bytes::<Record>(body)?;
    match &mut record {
        Record::Snapshot(snap) => {
            let zero = CpuRow::default();
            for (i, row) in snap.rows.iter_mut().enumerate() {
                let prev = state.rows.get(i).unwrap_or(&zero);
                *row = map_counters(row, prev, unzigzag_add);
            }
            state.rows.clear();
            state.rows.extend_from_slice(&snap.rows);
        }
        Record::WorkerSample(s) => {
            s.cpus_seen = state.restore_cpus(s.worker, core::mem::take(&mut s.cpus_seen));
        }
        _ => {}
    }
    Ok(record)
}

/// Reader-side delta state for one chunk.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    prev_ts: u64,
    state: DeltaState,
}

impl Decoder {
    /// Starts a chunk whose header says `first_ts` and `codec` (supported).
    pub fn reset(&mut self, first_ts: u64, codec: u8) {
        self.prev_ts = first_ts;
        self.state.reset(codec);
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
        let record = match super::fast::decode_hot(body, &mut self.state) {
            Some(record) => record,
            None => decode_slow(body, &mut self.state).map_err(RecordFault::Postcard)?,
        };
        Ok(Timed { ts_ns: ts, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

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

    #[test]
    fn xor_mask_is_its_own_inverse() {
        let masks: [&[u64]; 9] = [
            &[],
            &[0],
            &[0, 0],
            &[8],
            &[8, 0],
            &[1 << 63],
            &[0, 5],
            &[3, 0, 0, 7, 0],
            &[u64::MAX; 4],
        ];
        for m in masks {
            for p in masks {
                let mut w = m.to_vec();
                xor_mask(&mut w, p);
                // Never longer than needed: no zero word before the kept tail.
                let zeros = m.iter().rev().take_while(|&&x| x == 0).count();
                assert!(w.len() <= m.len().max(p.len()) + zeros, "{m:?} vs {p:?}");
                xor_mask(&mut w, p);
                assert_eq!(w, m, "{m:?} vs {p:?}");
            }
        }
        let mut same = vec![1u64 << 63];
        xor_mask(&mut same, &[1 << 63]);
        assert!(same.is_empty(), "an unchanged mask is empty on the wire");
        let mut first = vec![0, 4, 0];
        xor_mask(&mut first, &[]);
        assert_eq!(
            first,
            [0, 4, 0],
            "against nothing the wire form is the mask"
        );
    }

    /// The borrowed wire struct must lay out exactly like `Record::WorkerSample`.
    #[test]
    fn first_sample_in_chunk_is_plain_postcard() {
        let mut hist = crate::record::Log2Hist::default();
        hist.record(5_000);
        for wake in [None, Some(WakeStats { max_ns: 9, hist })] {
            let record = Record::WorkerSample(WorkerSample {
                worker: 300,
                iterations: 1,
                run_ns: 2,
                wait_ns: 3,
                timeslices: 4,
                migrations: 5,
                voluntary_switches: 6,
                involuntary_switches: 7,
                cpus_seen: vec![0, 1 << 40, 0],
                wake,
            });
            let mut out = Vec::new();
            Encoder::default().encode(0, &record, &mut out).unwrap();
            assert_eq!(out[0], 0, "ts delta");
            assert_eq!(out[1..], postcard::to_allocvec(&record).unwrap());
            assert_eq!(out[1], WORKER_SAMPLE_TAG);
        }
        let snap = Record::Snapshot(Snapshot {
            trigger: crate::record::SnapshotTrigger::Periodic,
            rendezvous_ns: 0,
            frozen_ns: 0,
            fields: crate::record::RowFields::ALL,
            rows: vec![],
        });
        assert_eq!(postcard::to_allocvec(&snap).unwrap()[0], SNAPSHOT_TAG);
    }
}
