//! Hand-written decoders for the two hot record kinds (worker samples and
//! snapshots), reading postcard's wire format directly.
//!
//! They exist for speed only (serde's generic visitors dominate decode time)
//! and accept exactly what postcard accepts: same varint limits, same field
//! order. On anything unusual they return `None`, leaving the delta state
//! untouched, and the caller falls back to [`decode_slow`](super::codec::decode_slow),
//! which then decides (and produces the error). Golden bytes, the round-trip
//! tests and the differential test below pin the equivalence.

use alloc::vec::Vec;

use super::codec::{DeltaState, SNAPSHOT_TAG, WORKER_SAMPLE_TAG, unzigzag_add};
use crate::record::{
    CpuRow, Log2Hist, Record, RowFields, Snapshot, SnapshotTrigger, StepRef, WakeStats,
    WorkerSample,
};

/// A read cursor with postcard's varint rules.
struct Cur<'a>(&'a [u8]);

impl Cur<'_> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// LEB128 of at most `max_bytes`, whose last byte is at most `max_last`.
    #[inline(always)]
    fn varint(&mut self, max_bytes: usize, max_last: u8) -> Option<u64> {
        let (&first, rest) = self.0.split_first()?;
        if first < 0x80 {
            self.0 = rest;
            return Some(u64::from(first));
        }
        let mut out = u64::from(first & 0x7f);
        let mut shift = 7u32;
        for (i, &b) in rest.iter().take(max_bytes - 1).enumerate() {
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                self.0 = rest.get(i + 1..)?;
                return (i + 2 < max_bytes || b <= max_last).then_some(out);
            }
            shift += 7;
        }
        None
    }

    #[inline(always)]
    fn u16(&mut self) -> Option<u16> {
        u16::try_from(self.varint(3, 0x03)?).ok()
    }

    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint(5, 0x0f)?).ok()
    }

    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        self.varint(10, 0x01)
    }

    /// A sequence length and a safe capacity for elements of at least
    /// `min_elem` bytes, so a lying length cannot allocate beyond the input.
    #[inline(always)]
    fn len(&mut self, min_elem: usize) -> Option<(usize, usize)> {
        let n = usize::try_from(self.u64()?).ok()?;
        Some((n, n.min(self.0.len() / min_elem)))
    }
}

/// Decodes a snapshot or worker sample body (after the timestamp), or
/// `None` to defer to postcard. Deltas are undone against `state`, which is
/// updated only on success.
#[inline]
pub(crate) fn decode_hot(body: &[u8], state: &mut DeltaState) -> Option<Record> {
    let mut c = Cur(body);
    match c.byte()? {
        WORKER_SAMPLE_TAG => worker_sample(&mut c, state).map(Record::WorkerSample),
        SNAPSHOT_TAG => snapshot(&mut c, &mut state.rows).map(Record::Snapshot),
        _ => None,
    }
}

fn worker_sample(c: &mut Cur<'_>, state: &mut DeltaState) -> Option<WorkerSample> {
    let worker = c.u32()?;
    let iterations = c.u64()?;
    let run_ns = c.u64()?;
    let wait_ns = c.u64()?;
    let timeslices = c.u32()?;
    let migrations = c.u32()?;
    let voluntary_switches = c.u32()?;
    let involuntary_switches = c.u32()?;
    let (n, cap) = c.len(1)?;
    let mut wire_cpus = Vec::with_capacity(cap);
    for _ in 0..n {
        wire_cpus.push(c.u64()?);
    }
    let wake = match c.byte()? {
        0 => None,
        1 => {
            let max_ns = c.u64()?;
            let (n, cap) = c.len(1)?;
            let mut buckets = Vec::with_capacity(cap);
            for _ in 0..n {
                buckets.push(c.u32()?);
            }
            Some(WakeStats {
                max_ns,
                hist: Log2Hist { buckets },
            })
        }
        _ => return None,
    };
    let cpus_seen = state.restore_cpus(worker, wire_cpus);
    Some(WorkerSample {
        worker,
        iterations,
        run_ns,
        wait_ns,
        timeslices,
        migrations,
        voluntary_switches,
        involuntary_switches,
        cpus_seen,
        wake,
    })
}

fn snapshot(c: &mut Cur<'_>, prev_rows: &mut Vec<CpuRow>) -> Option<Snapshot> {
    let trigger = match c.u32()? {
        0 => SnapshotTrigger::Periodic,
        1 => SnapshotTrigger::Op {
            step: StepRef(c.u16()?),
            op: c.u16()?,
        },
        _ => return None,
    };
    let rendezvous_ns = c.u64()?;
    let frozen_ns = c.u64()?;
    let fields = RowFields(c.u16()?);
    let (n, cap) = c.len(8)?;
    let mut rows = Vec::with_capacity(cap);
    let zero = CpuRow::default();
    for i in 0..n {
        let prev = prev_rows.get(i).unwrap_or(&zero);
        rows.push(CpuRow {
            nr_running: c.u32()?,
            cfs_nr_running: c.u32()?,
            scx_nr_running: c.u32()?,
            curr_pid: c.u32()?,
            clock: unzigzag_add(c.u64()?, prev.clock),
            nr_switches: unzigzag_add(c.u64()?, prev.nr_switches),
            run_delay_ns: unzigzag_add(c.u64()?, prev.run_delay_ns),
            pcount: unzigzag_add(c.u64()?, prev.pcount),
        });
    }
    prev_rows.clear();
    prev_rows.extend_from_slice(&rows);
    Some(Snapshot {
        trigger,
        rendezvous_ns,
        frozen_ns,
        fields,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::super::codec::{Masks, decode_slow};
    use super::*;
    use alloc::vec;

    /// On every input the fast path accepts, it must produce the record and
    /// the next delta state that postcard plus the slow un-delta produce;
    /// when it declines, the state must be untouched. Returns whether the
    /// fast path accepted `body`.
    fn agrees(body: &[u8], state: &DeltaState) -> bool {
        let mut fast_state = state.clone();
        let Some(fast) = decode_hot(body, &mut fast_state) else {
            assert_eq!(&fast_state, state, "declined but changed the state");
            return false;
        };
        let mut slow_state = state.clone();
        let slow =
            decode_slow(body, &mut slow_state).expect("fast path accepted what postcard rejects");
        assert_eq!(fast, slow);
        assert_eq!(fast_state, slow_state);
        true
    }

    /// Start states: V1 and V2 chunks, empty and holding earlier records.
    fn states() -> Vec<DeltaState> {
        let mut masks = Masks::default();
        masks.set(u32::MAX, &[1 << 63, 0, 9]);
        masks.set(7, &[2]);
        masks.set(0, &[0, 0]);
        let rows = vec![
            CpuRow {
                clock: 1 << 40,
                pcount: u64::MAX,
                ..CpuRow::default()
            };
            3
        ];
        let mut out = Vec::new();
        for xor_cpus in [false, true] {
            out.push(DeltaState {
                xor_cpus,
                ..DeltaState::default()
            });
            out.push(DeltaState {
                rows: rows.clone(),
                masks: masks.clone(),
                xor_cpus,
            });
        }
        out
    }

    /// The fast path exists to take every hot record off postcard's slow
    /// path: it must accept each value the writer can produce, at every
    /// varint length (1 to 10 bytes for u64, 1 to 5 for u32, 1 to 3 for
    /// u16), not only the short ones.
    #[test]
    fn fast_path_accepts_every_varint_length() {
        let states = states();
        for bits in 0..64u32 {
            // The smallest and the largest value needing `bits + 1` bits.
            for v in [1u64 << bits, u64::MAX >> (63 - bits)] {
                let v32 = u32::try_from(v).unwrap_or(u32::MAX);
                let v16 = u16::try_from(v).unwrap_or(u16::MAX);
                let records = [
                    Record::WorkerSample(WorkerSample {
                        worker: v32,
                        iterations: v,
                        run_ns: v,
                        wait_ns: v,
                        timeslices: v32,
                        migrations: v32,
                        voluntary_switches: v32,
                        involuntary_switches: v32,
                        cpus_seen: vec![v, v],
                        wake: Some(WakeStats {
                            max_ns: v,
                            hist: Log2Hist {
                                buckets: vec![v32, 1],
                            },
                        }),
                    }),
                    Record::Snapshot(Snapshot {
                        trigger: SnapshotTrigger::Op {
                            step: StepRef(v16),
                            op: v16,
                        },
                        rendezvous_ns: v,
                        frozen_ns: v,
                        fields: RowFields(v16),
                        rows: vec![CpuRow {
                            nr_running: v32,
                            clock: v,
                            pcount: v,
                            ..CpuRow::default()
                        }],
                    }),
                ];
                for record in &records {
                    let body = postcard::to_allocvec(record).unwrap();
                    for state in &states {
                        assert!(agrees(&body, state), "fast path declined {record:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_path_matches_postcard_on_mutations() {
        let mut hist = Log2Hist::default();
        hist.record(12_345);
        let sample = WorkerSample {
            worker: u32::MAX,
            iterations: u64::MAX,
            run_ns: 95_000_000,
            wait_ns: 1,
            timeslices: 25,
            migrations: 1,
            voluntary_switches: 70_000,
            involuntary_switches: 0,
            cpus_seen: vec![1 << 63, 5],
            wake: Some(WakeStats {
                max_ns: 1 << 40,
                hist,
            }),
        };
        let samples = [
            Record::WorkerSample(sample.clone()),
            // Wire masks with trailing zero words, empty, and for a known worker.
            Record::WorkerSample(WorkerSample {
                worker: 7,
                cpus_seen: vec![0, 3, 0, 0],
                wake: None,
                ..sample.clone()
            }),
            Record::WorkerSample(WorkerSample {
                worker: 0,
                cpus_seen: vec![],
                ..sample
            }),
            Record::Snapshot(Snapshot {
                trigger: SnapshotTrigger::Op {
                    step: StepRef(u16::MAX),
                    op: 300,
                },
                rendezvous_ns: 1 << 33,
                frozen_ns: 7,
                fields: RowFields(0xffff),
                rows: vec![
                    CpuRow {
                        nr_running: u32::MAX,
                        clock: u64::MAX,
                        pcount: 200,
                        ..CpuRow::default()
                    },
                    CpuRow::default(),
                ],
            }),
        ];
        let states = states();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for record in &samples {
            let good = postcard::to_allocvec(record).unwrap();
            for state in &states {
                // A fast path that always declines would agree vacuously.
                assert!(agrees(&good, state), "fast path declined {record:?}");
                for cut in 0..good.len() {
                    agrees(&good[..cut], state);
                }
            }
            let mut accepted = 0u32;
            for round in 0..20_000 {
                let mut b = good.clone();
                for _ in 0..1 + seed % 3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = usize::try_from(seed % (b.len() as u64)).unwrap();
                    b[at] = seed.to_le_bytes()[3];
                }
                if let Some(first) = b.first_mut() {
                    *first = good[0];
                }
                accepted += u32::from(agrees(&b, &states[round % states.len()]));
            }
            // Most one- to three-byte mutations stay decodable: the comparison
            // must have exercised the fast path, not only its refusals.
            assert!(
                accepted > 1000,
                "fast path accepted {accepted} of 20000 mutants"
            );
        }
        // Non-canonical varints and over-long values.
        for state in &states {
            agrees(&[5, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0], state);
            agrees(
                &[5, 0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                state,
            );
            agrees(
                &[5, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                state,
            );
        }
    }
}
