//! The index frame written on clean close, and the summary that fills it.
//!
//! The index lets a reader find every chunk and answer "what happened"
//! (counts, outcome, drops, metrics) without decoding any record. The same
//! [`Summary`] fold recomputes these figures when a file has no index.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::metrics::{MetricsBuilder, RunMetrics};
use crate::record::{Record, RecordKind, RunOutcome};

/// Contents of the index frame. Append-only: new fields go at the end.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Index {
    /// Every chunk, in file order.
    pub chunks: Vec<ChunkEntry>,
    /// Records per kind, indexed by [`RecordKind::index`].
    pub kind_counts: Vec<u64>,
    /// From the `End` record, if one was written.
    pub outcome: Option<RunOutcome>,
    /// Sum of all `Drop` records' counts.
    pub drops: u64,
    /// Per-step summaries of the whole run.
    pub metrics: RunMetrics,
}

/// Where one chunk is and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// File offset of the chunk header.
    pub offset: u64,
    /// Payload length (the chunk occupies 32 + `len` bytes).
    pub len: u32,
    pub seq: u32,
    pub records: u32,
    pub first_ts: u64,
    pub last_ts: u64,
}

/// Running totals over a record stream: everything in [`Index`] but the
/// chunk list.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    kind_counts: [u64; RecordKind::ALL.len()],
    outcome: Option<RunOutcome>,
    drops: u64,
    metrics: MetricsBuilder,
}

impl Summary {
    /// Folds one record, in file order.
    pub fn observe(&mut self, ts_ns: u64, record: &Record) {
        if let Some(c) = self.kind_counts.get_mut(record.kind().index()) {
            *c = c.saturating_add(1);
        }
        match record {
            Record::Drop(d) => self.drops = self.drops.saturating_add(d.records),
            Record::End(outcome) => self.outcome = Some(outcome.clone()),
            _ => {}
        }
        self.metrics.observe_parts(ts_ns, record);
    }

    /// Per-kind counts so far.
    pub fn kind_counts(&self) -> Vec<u64> {
        self.kind_counts.to_vec()
    }

    /// The `End` record's outcome, if one was seen.
    pub fn outcome(&self) -> Option<RunOutcome> {
        self.outcome.clone()
    }

    /// Sum of the `Drop` records' counts so far.
    pub fn drops(&self) -> u64 {
        self.drops
    }

    /// Metrics so far.
    pub fn metrics(&self) -> RunMetrics {
        self.metrics.snapshot()
    }

    /// The index for a file with these chunks.
    pub fn into_index(self, chunks: Vec<ChunkEntry>) -> Index {
        Index {
            chunks,
            kind_counts: trimmed(&self.kind_counts),
            outcome: self.outcome,
            drops: self.drops,
            metrics: self.metrics.finish(),
        }
    }

    /// [`Summary::into_index`] of the records so far, keeping the summary.
    pub fn to_index(&self, chunks: Vec<ChunkEntry>) -> Index {
        Index {
            chunks,
            kind_counts: trimmed(&self.kind_counts),
            outcome: self.outcome.clone(),
            drops: self.drops,
            metrics: self.metrics.snapshot(),
        }
    }
}

/// Counts without trailing zeros: a kind added later that a run never wrote
/// leaves the index as an older writer made it (readers pad with zeros).
fn trimmed(counts: &[u64]) -> Vec<u64> {
    let used = counts.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    counts[..used].to_vec()
}
