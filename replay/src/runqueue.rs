//! Run-queue length over time, from snapshot records: per CPU min/mean/max
//! `nr_running`, switches per second, and a sparkline.
use std::io::Write;

use trace_format::record::{RowFields, Snapshot};

use crate::text::{duration, table};

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Widest sparkline; longer series are averaged into this many columns.
const WIDTH: usize = 60;

/// One CPU's `(rq.clock, rq.nr_switches)` in a snapshot.
type Mark = (u64, u64);

/// Snapshot rows gathered while reading a trace.
#[derive(Debug, Default)]
pub struct RunQueues {
    snapshots: u64,
    rendezvous_ns: u64,
    frozen_ns: u64,
    fields: Option<RowFields>,
    /// Per CPU: `nr_running` in snapshot order.
    queue: Vec<Vec<u32>>,
    /// Per CPU: first and last (clock, nr_switches) seen.
    switches: Vec<Option<(Mark, Mark)>>,
}

impl RunQueues {
    /// Adds one snapshot.
    pub fn push(&mut self, s: &Snapshot) {
        self.snapshots += 1;
        self.rendezvous_ns = self.rendezvous_ns.saturating_add(s.rendezvous_ns);
        self.frozen_ns = self.frozen_ns.saturating_add(s.frozen_ns);
        self.fields = Some(RowFields(
            self.fields.map_or(s.fields.0, |f| f.0 & s.fields.0),
        ));
        if self.queue.len() < s.rows.len() {
            self.queue.resize(s.rows.len(), Vec::new());
            self.switches.resize(s.rows.len(), None);
        }
        for (cpu, row) in s.rows.iter().enumerate() {
            self.queue[cpu].push(row.nr_running);
            let now = (row.clock, row.nr_switches);
            let slot = &mut self.switches[cpu];
            *slot = Some(slot.map_or((now, now), |(first, _)| (first, now)));
        }
    }

    /// Writes the section; nothing when there were no snapshots.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let Some(n) = self.snapshots.checked_sub(1).map(|k| k + 1) else {
            return Ok(());
        };
        writeln!(
            out,
            "\nrun queues ({n} snapshots; mean rendezvous {}, mean frozen {})",
            duration(self.rendezvous_ns / n),
            duration(self.frozen_ns / n)
        )?;
        let fields = self.fields.unwrap_or_default();
        if !fields.has(RowFields::NR_RUNNING) {
            writeln!(out, "  this kernel's snapshots carry no nr_running")?;
            return Ok(());
        }
        let switches = fields.has(RowFields::NR_SWITCHES) && fields.has(RowFields::CLOCK);
        let mut t = table(&[
            "cpu",
            "min",
            "mean",
            "max",
            "switches/s",
            "nr_running over time",
        ]);
        for (cpu, q) in self.queue.iter().enumerate() {
            let (min, max) = (
                q.iter().min().copied().unwrap_or(0),
                q.iter().max().copied().unwrap_or(0),
            );
            let mean = q.iter().map(|&v| f64::from(v)).sum::<f64>() / q.len().max(1) as f64;
            let rate = match self.switches[cpu] {
                Some(((c0, s0), (c1, s1))) if switches && c1 > c0 => {
                    format!(
                        "{:.0}",
                        s1.saturating_sub(s0) as f64 * 1e9 / (c1 - c0) as f64
                    )
                }
                _ => "-".to_string(),
            };
            t.add_row(vec![
                cpu.to_string(),
                min.to_string(),
                format!("{mean:.2}"),
                max.to_string(),
                rate,
                sparkline(q, max),
            ]);
        }
        writeln!(out, "{t}")
    }
}

/// One character per column, scaled to `max`.
fn sparkline(values: &[u32], max: u32) -> String {
    if values.is_empty() {
        return String::new();
    }
    let cols = values.len().min(WIDTH);
    (0..cols)
        .map(|c| {
            let (a, b) = (
                c * values.len() / cols,
                ((c + 1) * values.len() / cols).max(c * values.len() / cols + 1),
            );
            let chunk = &values[a..b];
            let avg = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / chunk.len() as f64;
            if max == 0 {
                return SPARK[0];
            }
            let level = (avg / f64::from(max) * 7.0).round().clamp(0.0, 7.0);
            // `level` is within 0..=7 after the clamp.
            #[allow(clippy::cast_possible_truncation)]
            SPARK[level as usize]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::record::{CpuRow, SnapshotTrigger};

    fn snap(queues: &[u32], t: u64) -> Snapshot {
        Snapshot {
            trigger: SnapshotTrigger::Periodic,
            rendezvous_ns: 1000,
            frozen_ns: 2000,
            fields: RowFields::ALL,
            rows: queues
                .iter()
                .map(|&q| CpuRow {
                    nr_running: q,
                    clock: t * 1_000_000_000,
                    nr_switches: t * 100,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn summarises_per_cpu() {
        let mut rq = RunQueues::default();
        for (t, q) in [[1, 0], [2, 0], [3, 1]].iter().enumerate() {
            rq.push(&snap(q, t as u64));
        }
        let mut out = Vec::new();
        rq.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("3 snapshots"), "{text}");
        assert!(text.contains("2.00"), "{text}");
        assert!(text.contains("100"), "{text}");
        assert!(text.contains('█'), "{text}");
        let mut empty = Vec::new();
        RunQueues::default().write(&mut empty).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn sparkline_scales_and_squeezes() {
        assert_eq!(sparkline(&[0, 7], 7), "▁█");
        assert_eq!(sparkline(&vec![1; 500], 1).chars().count(), WIDTH);
        assert_eq!(sparkline(&[], 0), "");
    }
}
