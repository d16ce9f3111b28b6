//! What the walk makes of run-queue snapshots: which fields every snapshot
//! has, and which pairs are far enough apart to call a run queue stalled.
use super::*;
use trace_format::record::{CpuRow, Snapshot, SnapshotTrigger};

/// CPU 0 with `nr_running` tasks, its clock and switch count at `tick`
/// (each frozen when asked); CPU 1 idle.
fn snap(
    fields: u16,
    nr_running: u32,
    tick: u64,
    clock_frozen: bool,
    switches_frozen: bool,
) -> Record {
    let busy = CpuRow {
        nr_running,
        clock: if clock_frozen { 5 } else { 5 + tick },
        nr_switches: if switches_frozen { 9 } else { 9 + tick },
        ..CpuRow::default()
    };
    Record::Snapshot(Snapshot {
        trigger: SnapshotTrigger::Periodic,
        rendezvous_ns: 1_000,
        frozen_ns: 2_000,
        fields: RowFields(fields),
        rows: vec![busy, CpuRow::default()],
    })
}

impl Run {
    fn push(mut self, ts: u64, r: Record) -> Self {
        self.0.push((ts, r));
        self
    }
}

fn stall(ev: &Evidence) -> (VerdictOutcome, String) {
    let v = checks::runqueue_stall(ev, &VerdictThresholds::default());
    (v.outcome, v.detail)
}

#[test]
fn only_fields_every_snapshot_has_are_judged() {
    let all = RowFields::ALL.0;
    let m = meta("", "[]");
    // The first lacks nr_running: the run cannot be judged, whatever follows.
    let ev = Run::begin()
        .push(0, snap(RowFields::CLOCK, 1, 0, false, false))
        .push(200 * MS, snap(all, 1, 1, false, false))
        .push(400 * MS, snap(all, 1, 2, false, false))
        .walk(&m, 500 * MS);
    assert_eq!(ev.snapshot_fields, RowFields(RowFields::CLOCK));
    assert_eq!(
        stall(&ev).0,
        VerdictOutcome::Inconclusive,
        "{:?}",
        stall(&ev)
    );
    let ev = Run::begin()
        .push(0, snap(all, 1, 0, false, false))
        .push(
            200 * MS,
            snap(RowFields::NR_RUNNING | RowFields::CLOCK, 1, 1, false, false),
        )
        .walk(&m, 500 * MS);
    assert_eq!(
        ev.snapshot_fields,
        RowFields(RowFields::NR_RUNNING | RowFields::CLOCK)
    );
}

#[test]
fn switch_counts_stall_only_over_a_second_with_two_runnable() {
    let all = RowFields::ALL.0;
    let m = meta("", "[]");
    // Snapshots every 200 ms for 1.6 s; CPU 0's clock moves, its switch
    // count does not.
    let run = |nr_running| {
        let mut r = Run::begin();
        for k in 0..9 {
            r = r.push(k * 200 * MS, snap(all, nr_running, k, false, true));
        }
        r.walk(&m, 1_700 * MS)
    };
    let (outcome, detail) = stall(&run(2));
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.contains("nr_switches"), "{detail}");
    // One runnable task may keep the CPU: no switch is owed.
    assert_eq!(
        stall(&run(1)).0,
        VerdictOutcome::Pass,
        "{:?}",
        stall(&run(1))
    );
    // Under a second apart, switches are not compared at all.
    let mut r = Run::begin();
    for k in 0..5 {
        r = r.push(k * 200 * MS, snap(all, 2, k, false, true));
    }
    let ev = r.walk(&m, 900 * MS);
    assert_eq!(stall(&ev).0, VerdictOutcome::Pass, "{:?}", stall(&ev));
}
