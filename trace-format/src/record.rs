//! Trace records: everything that happens during a run, one enum.
//!
//! `Record` is append-only: variants and fields are never reordered or removed,
//! because postcard encodes the variant index and field order. Golden bytes in
//! `fixtures/golden/` pin every variant's encoding. All values are integers:
//! times in nanoseconds, counters in worker samples are deltas since the previous
//! sample of the same worker. The record timestamp lives outside the record (see
//! [`crate::file`]), so records here carry no clock of their own.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

mod health;
pub use health::{ExitHow, MemoryEvents, SIGKILL, WorkerErrors, WorkerExited};

/// Index of a step in the scenario, or [`StepRef::BACKDROP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepRef(pub u16);

impl StepRef {
    /// The backdrop: cgroups and ops that persist across all steps.
    pub const BACKDROP: StepRef = StepRef(u16::MAX);

    /// True for the backdrop pseudo-step.
    pub fn is_backdrop(self) -> bool {
        self == Self::BACKDROP
    }
}

impl core::fmt::Display for StepRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_backdrop() {
            f.write_str("backdrop")
        } else {
            write!(f, "step {}", self.0)
        }
    }
}

/// One event of a run. Append-only: add new variants at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A step (or the backdrop) starts its ops and setup.
    StepBegin { step: StepRef },
    /// A step's hold ended.
    StepEnd { step: StepRef, outcome: StepOutcome },
    /// An op of a step was applied; `op` indexes the step's `ops`.
    OpApplied(OpApplied),
    /// Per-CPU run-queue state read from the frozen guest kernel.
    Snapshot(Snapshot),
    /// A worker process was forked and placed.
    WorkerSpawned(WorkerSpawned),
    /// Worker telemetry since the previous sample of the same worker.
    WorkerSample(WorkerSample),
    /// A read or write of a kernel variable by symbol.
    KernelAccess(KernelAccess),
    /// A sched_ext scheduler changed state or reported counters.
    SchedulerEvent(SchedulerEvent),
    /// One line of guest console output (or payload output).
    Console(ConsoleLine),
    /// Records were lost between guest and host.
    Drop(DropReport),
    /// A judgement over the run.
    Verdict(Verdict),
    /// The run is over; nothing follows.
    End(RunOutcome),
    /// A worker ended on its own (exited, or killed, e.g. by the OOM killer).
    WorkerExited(WorkerExited),
    /// A worker's operations failed (e.g. `fork` under `pids.max`).
    WorkerErrors(WorkerErrors),
    /// New OOM events of a cgroup.
    MemoryEvents(MemoryEvents),
}

/// How a step's hold finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepOutcome {
    /// The hold ran its full length.
    Completed,
    /// The hold ended early, e.g. because the scheduler died.
    EndedEarly { reason: String },
    /// An op or the setup failed; the step was torn down.
    Failed { error: String },
}

/// The result of applying one op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpApplied {
    pub step: StepRef,
    /// Index of the op within its step's op list.
    pub op: u16,
    /// Which application of the op (Loop holds re-apply ops); 0 for the first.
    pub round: u32,
    /// How long applying the op took.
    pub duration_ns: u64,
    pub outcome: OpOutcome,
}

/// What an op produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    /// Applied, nothing to report.
    Done,
    /// Applied; the PIDs it affected or captured.
    Pids(Vec<u32>),
    /// Applied; a value it read.
    Value(u64),
    /// Failed with this message.
    Failed { error: String },
}

impl OpOutcome {
    /// True unless the op failed.
    pub fn is_ok(&self) -> bool {
        !matches!(self, OpOutcome::Failed { .. })
    }
}

/// What caused a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotTrigger {
    /// The host's snapshot timer.
    Periodic,
    /// A `CaptureSnapshot` op of this step.
    Op { step: StepRef, op: u16 },
}

/// Which optional [`CpuRow`] fields the kernel provided (bit per field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RowFields(pub u16);

impl RowFields {
    pub const NR_RUNNING: u16 = 1 << 0;
    pub const CLOCK: u16 = 1 << 1;
    pub const NR_SWITCHES: u16 = 1 << 2;
    pub const CURR_PID: u16 = 1 << 3;
    pub const CFS_NR_RUNNING: u16 = 1 << 4;
    pub const SCX_NR_RUNNING: u16 = 1 << 5;
    pub const RUN_DELAY: u16 = 1 << 6;
    pub const PCOUNT: u16 = 1 << 7;
    pub const ALL: RowFields = RowFields(0xff);

    /// True when every bit of `field` is present.
    pub fn has(self, field: u16) -> bool {
        self.0 & field == field
    }
}

/// Run-queue state of all CPUs at one frozen instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub trigger: SnapshotTrigger,
    /// Time from the freeze request until every vCPU was parked.
    pub rendezvous_ns: u64,
    /// Time the guest stayed frozen for this snapshot.
    pub frozen_ns: u64,
    /// Fields present in every row; absent fields read as zero.
    pub fields: RowFields,
    /// One row per CPU, indexed by CPU number.
    pub rows: Vec<CpuRow>,
}

/// One CPU's run queue. Counters are absolute kernel values; the file codec
/// delta-encodes them against the previous snapshot in the same chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuRow {
    pub nr_running: u32,
    pub cfs_nr_running: u32,
    pub scx_nr_running: u32,
    pub curr_pid: u32,
    /// `rq->clock` in ns.
    pub clock: u64,
    pub nr_switches: u64,
    /// schedstat: total time tasks waited on this run queue, ns.
    pub run_delay_ns: u64,
    /// schedstat: number of tasks run on this CPU.
    pub pcount: u64,
}

/// Identity of a worker, fixed for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSpawned {
    /// Run-unique worker number; samples refer to it.
    pub worker: u32,
    pub pid: u32,
    pub step: StepRef,
    /// The cgroup the worker was placed in; empty for the root.
    pub cgroup: String,
    /// The work type's name as written in scenario files, e.g. `spin_wait`.
    pub work: String,
}

/// A log2 histogram: bucket `i` counts values in `[2^i, 2^(i+1))` ns
/// (bucket 0 also holds 0). Trailing empty buckets are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Log2Hist {
    pub buckets: Vec<u32>,
}

impl Log2Hist {
    /// Number of buckets needed to cover any `u64`.
    pub const MAX_BUCKETS: usize = 64;

    /// The bucket a value falls into.
    pub fn bucket_of(value: u64) -> usize {
        (value.max(1).ilog2()) as usize
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        let b = Self::bucket_of(value);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] = self.buckets[b].saturating_add(1);
    }

    /// Adds another histogram's counts into this one.
    pub fn merge(&mut self, other: &Log2Hist) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a = a.saturating_add(*b);
        }
    }

    /// Total number of values counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&c| u64::from(c)).sum()
    }

    /// Upper bound (exclusive) of the bucket holding quantile `q` (0..=1), in ns;
    /// `None` when empty.
    pub fn quantile_upper_ns(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // Rank of the wanted value, 1-based; ceil without std's f64::ceil.
        let exact = q * total as f64;
        // `exact` is within 0..=total, so the conversion cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let mut rank = exact as u64;
        if (rank as f64) < exact {
            rank += 1;
        }
        let rank = rank.max(1);
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let shift = u32::try_from(i + 1).unwrap_or(u32::MAX);
                return Some(1u64.checked_shl(shift).unwrap_or(u64::MAX));
            }
        }
        None
    }
}

/// Wake-up latency seen by a worker during the sample interval.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WakeStats {
    pub max_ns: u64,
    pub hist: Log2Hist,
}

/// Worker telemetry; every counter is a delta since the worker's previous sample.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerSample {
    pub worker: u32,
    /// Work-type iterations completed.
    pub iterations: u64,
    /// Time on CPU (schedstat field 1), ns.
    pub run_ns: u64,
    /// Time runnable but waiting (schedstat field 2), ns.
    pub wait_ns: u64,
    /// Timeslices run (schedstat field 3).
    pub timeslices: u32,
    pub migrations: u32,
    pub voluntary_switches: u32,
    pub involuntary_switches: u32,
    /// Bitmask of CPUs the worker ran on during the interval (word 0 = CPUs 0..64).
    pub cpus_seen: Vec<u64>,
    /// Present for work types that measure wake-ups.
    pub wake: Option<WakeStats>,
}

impl WorkerSample {
    /// True when the worker was seen on `cpu`.
    pub fn saw_cpu(&self, cpu: usize) -> bool {
        self.cpus_seen
            .get(cpu / 64)
            .is_some_and(|w| w & (1u64 << (cpu % 64)) != 0)
    }

    /// CPU numbers the worker was seen on, ascending.
    pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
        self.cpus_seen.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| i * 64 + b)
        })
    }
}

/// Direction and freeze mode of a kernel variable access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKind {
    ReadHot,
    ReadCold,
    WriteHot,
    WriteCold,
}

/// A kernel variable read or written by symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelAccess {
    pub step: StepRef,
    pub op: u16,
    pub kind: AccessKind,
    pub symbol: String,
    /// Per-CPU instance, when the symbol is per-CPU.
    pub cpu: Option<u16>,
    /// Width in bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// The value read, or the value written.
    pub value: u64,
    pub error: Option<String>,
}

/// What a scheduler did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedulerEventKind {
    /// sched_ext reports the scheduler enabled.
    Attached,
    /// The scheduler was detached on request.
    Detached,
    /// The scheduler exited on its own (error, stall, crash).
    Exited { kind: String, reason: String },
    /// Counters the scheduler exports, as (name, value) pairs.
    Counters(Vec<(String, u64)>),
    /// The kernel's sched_ext debug dump, one line per event.
    DumpLine(String),
}

/// A scheduler lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerEvent {
    pub scheduler: String,
    pub event: SchedulerEventKind,
}

/// Where a console line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsoleSource {
    /// The guest kernel console (COM1).
    Kernel,
    /// The guest executor's own log.
    Executor,
    /// A payload's stdout.
    PayloadStdout,
    /// A payload's stderr.
    PayloadStderr,
    /// The hypervisor or the host-side recorder.
    Host,
}

/// `line` with its control characters other than tab escaped (`\u{1b}`), for
/// showing guest text on a terminal: it must not move the cursor or recolour
/// what follows.
pub fn printable(line: &str) -> alloc::borrow::Cow<'_, str> {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return alloc::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&alloc::format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    alloc::borrow::Cow::Owned(out)
}

/// Starts an executor console line saying the guest kernel sees a CPU topology
/// other than the scenario's (the host shows these as warnings).
pub const TOPOLOGY_MISMATCH: &str = "topology mismatch: ";

/// One line of text output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleLine {
    pub source: ConsoleSource,
    pub line: String,
}

/// Records lost in transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropReport {
    /// Records lost since the previous report.
    pub records: u64,
    pub reason: String,
}

/// A three-way judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerdictOutcome {
    Pass,
    Fail,
    Inconclusive,
}

/// One verdict with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    pub outcome: VerdictOutcome,
    pub detail: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// The guest ran every step and wrote `End`.
    Completed,
    /// The guest kernel panicked.
    KernelPanic { message: String },
    /// The watchdog fired.
    Timeout { after_ns: u64 },
    /// The user interrupted the run.
    Interrupted,
    /// The guest executor reported a fatal error.
    GuestError { message: String },
    /// The host failed (VM died, I/O error).
    HostError { message: String },
    /// The host was told to stop by a signal other than SIGINT (which is
    /// `Interrupted`), e.g. `SIGTERM` from `timeout` or systemd; its name.
    Terminated { signal: String },
}

impl RunOutcome {
    /// A short lowercase name, e.g. `completed` or `kernel-panic`.
    pub fn label(&self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::KernelPanic { .. } => "kernel-panic",
            RunOutcome::Timeout { .. } => "timeout",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::GuestError { .. } => "guest-error",
            RunOutcome::HostError { .. } => "host-error",
            RunOutcome::Terminated { .. } => "terminated",
        }
    }
}

/// The kinds of [`Record`], in variant order; used for per-kind counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    StepBegin,
    StepEnd,
    OpApplied,
    Snapshot,
    WorkerSpawned,
    WorkerSample,
    KernelAccess,
    SchedulerEvent,
    Console,
    Drop,
    Verdict,
    End,
    WorkerExited,
    WorkerErrors,
    MemoryEvents,
}

impl RecordKind {
    /// Every kind, in variant order.
    pub const ALL: [RecordKind; 15] = [
        RecordKind::StepBegin,
        RecordKind::StepEnd,
        RecordKind::OpApplied,
        RecordKind::Snapshot,
        RecordKind::WorkerSpawned,
        RecordKind::WorkerSample,
        RecordKind::KernelAccess,
        RecordKind::SchedulerEvent,
        RecordKind::Console,
        RecordKind::Drop,
        RecordKind::Verdict,
        RecordKind::End,
        RecordKind::WorkerExited,
        RecordKind::WorkerErrors,
        RecordKind::MemoryEvents,
    ];

    /// Position in [`RecordKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Record {
    /// This record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::StepBegin { .. } => RecordKind::StepBegin,
            Record::StepEnd { .. } => RecordKind::StepEnd,
            Record::OpApplied(_) => RecordKind::OpApplied,
            Record::Snapshot(_) => RecordKind::Snapshot,
            Record::WorkerSpawned(_) => RecordKind::WorkerSpawned,
            Record::WorkerSample(_) => RecordKind::WorkerSample,
            Record::KernelAccess(_) => RecordKind::KernelAccess,
            Record::SchedulerEvent(_) => RecordKind::SchedulerEvent,
            Record::Console(_) => RecordKind::Console,
            Record::Drop(_) => RecordKind::Drop,
            Record::Verdict(_) => RecordKind::Verdict,
            Record::End(_) => RecordKind::End,
            Record::WorkerExited(_) => RecordKind::WorkerExited,
            Record::WorkerErrors(_) => RecordKind::WorkerErrors,
            Record::MemoryEvents(_) => RecordKind::MemoryEvents,
        }
    }
}

/// A record with its timestamp, ns since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    pub ts_ns: u64,
    pub record: Record,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_but_tabs() {
        assert!(matches!(
            printable("plain\ttext"),
            alloc::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(printable("a\u{1b}[2Jb\rc"), "a\\u{1b}[2Jb\\u{d}c");
    }

    #[test]
    fn log2_hist_quantiles() {
        let mut h = Log2Hist::default();
        for v in [0u64, 1, 3, 1000, 1500, 1_000_000] {
            h.record(v);
        }
        assert_eq!(h.count(), 6);
        assert_eq!(Log2Hist::bucket_of(0), 0);
        assert_eq!(Log2Hist::bucket_of(1023), 9);
        assert_eq!(Log2Hist::bucket_of(1024), 10);
        assert_eq!(h.quantile_upper_ns(0.5), Some(4));
        assert_eq!(h.quantile_upper_ns(1.0), Some(1 << 20));
        assert_eq!(Log2Hist::default().quantile_upper_ns(0.5), None);
    }

    #[test]
    fn cpus_seen_bits() {
        let s = WorkerSample {
            cpus_seen: alloc::vec![0b101, 1],
            ..Default::default()
        };
        assert!(s.saw_cpu(0) && !s.saw_cpu(1) && s.saw_cpu(2) && s.saw_cpu(64));
        assert!(!s.saw_cpu(500));
        assert_eq!(s.cpus().collect::<Vec<_>>(), alloc::vec![0, 2, 64]);
    }

    #[test]
    fn kinds_match_variant_order() {
        for (i, k) in RecordKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
