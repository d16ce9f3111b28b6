//! Hand-written decoders for the two hot record kinds (worker samples and
//! snapshots), reading postcard's wire format directly.
//!
//! They exist for speed only (serde's generic visitors dominate decode time)
//! and accept exactly what postcard accepts: same varint limits, same field
//! order. On anything unusual they return `None` and the caller falls back to
//! postcard, which then decides (and produces the error). Golden bytes and the
//! round-trip tests pin the equivalence.

use alloc::vec::Vec;

use crate::record::{
    CpuRow, Log2Hist, Record, RowFields, Snapshot, SnapshotTrigger, StepRef, WakeStats,
    WorkerSample,
};

/// postcard variant index of `Record::Snapshot`.
const SNAPSHOT: u8 = 3;
/// postcard variant index of `Record::WorkerSample`.
const WORKER_SAMPLE: u8 = 5;

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
/// `None` to defer to postcard. Snapshot rows are un-deltaed against
/// `prev_rows`, which is updated only on success.
#[inline]
pub(crate) fn decode_hot(body: &[u8], prev_rows: &mut Vec<CpuRow>) -> Option<Record> {
    let mut c = Cur(body);
    match c.byte()? {
        WORKER_SAMPLE => worker_sample(&mut c).map(Record::WorkerSample),
        SNAPSHOT => snapshot(&mut c, prev_rows).map(Record::Snapshot),
        _ => None,
    }
}

fn worker_sample(c: &mut Cur<'_>) -> Option<WorkerSample> {
    let worker = c.u32()?;
    let iterations = c.u64()?;
    let run_ns = c.u64()?;
    let wait_ns = c.u64()?;
    let timeslices = c.u32()?;
    let migrations = c.u32()?;
    let voluntary_switches = c.u32()?;
    let involuntary_switches = c.u32()?;
    let (n, cap) = c.len(1)?;
    let mut cpus_seen = Vec::with_capacity(cap);
    for _ in 0..n {
        cpus_seen.push(c.u64()?);
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
            clock: super::codec::unzigzag_add(c.u64()?, prev.clock),
            nr_switches: super::codec::unzigzag_add(c.u64()?, prev.nr_switches),
            run_delay_ns: super::codec::unzigzag_add(c.u64()?, prev.run_delay_ns),
            pcount: super::codec::unzigzag_add(c.u64()?, prev.pcount),
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
    use super::*;
    use alloc::vec;

    /// The fast path must agree with postcard on every input it accepts.
    fn agrees(body: &[u8]) {
        let mut prev = Vec::new();
        let Some(fast) = decode_hot(body, &mut prev) else {
            return;
        };
        let (mut slow, _) = postcard::take_from_bytes::<Record>(body)
            .expect("fast path accepted what postcard rejects");
        if let Record::Snapshot(s) = &mut slow {
            for r in &mut s.rows {
                r.clock = super::super::codec::unzigzag_add(r.clock, 0);
                r.nr_switches = super::super::codec::unzigzag_add(r.nr_switches, 0);
                r.run_delay_ns = super::super::codec::unzigzag_add(r.run_delay_ns, 0);
                r.pcount = super::super::codec::unzigzag_add(r.pcount, 0);
            }
        }
        assert_eq!(fast, slow);
    }

    #[test]
    fn fast_path_matches_postcard_on_mutations() {
        let mut hist = Log2Hist::default();
        hist.record(12_345);
        let samples = [
            Record::WorkerSample(WorkerSample {
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
        let mut seed = 0x1234_5678_9abc_def0u64;
        for record in &samples {
            let good = postcard::to_allocvec(record).unwrap();
            agrees(&good);
            for cut in 0..good.len() {
                agrees(&good[..cut]);
            }
            for _ in 0..20_000 {
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
                agrees(&b);
            }
        }
        // Non-canonical varints and over-long values.
        agrees(&[5, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        agrees(&[5, 0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        agrees(&[5, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
