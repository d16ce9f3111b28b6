//! What introspection needs to know about one kernel build: its symbols and
//! the offsets of the struct members snapshots read. Resolved once per build-id
//! and cached (see [`super::cache`]).
use serde::{Deserialize, Serialize};

/// One ELF symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    pub name: String,
    /// Link-time address; for per-CPU symbols, the offset in the per-CPU area.
    pub addr: u64,
    pub size: u64,
    /// Lives in `.data..percpu`: add `__per_cpu_offset[cpu]`.
    pub percpu: bool,
}

/// A struct member: byte offset from the start of its outer struct, and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub offset: u32,
    pub size: u32,
}

/// The struct members snapshots read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    RqNrRunning,
    RqClock,
    RqNrSwitches,
    RqCurr,
    RqCfsNrRunning,
    RqScxNrRunning,
    RqRunDelay,
    RqPcount,
    TaskPid,
    TaskComm,
}

impl Field {
    /// Every field, in index order.
    pub const ALL: [Field; 10] = [
        Field::RqNrRunning,
        Field::RqClock,
        Field::RqNrSwitches,
        Field::RqCurr,
        Field::RqCfsNrRunning,
        Field::RqScxNrRunning,
        Field::RqRunDelay,
        Field::RqPcount,
        Field::TaskPid,
        Field::TaskComm,
    ];

    /// Position in [`Field::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The outer struct and the member paths to try, best first (names change
    /// across kernel versions).
    pub fn candidates(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Field::RqNrRunning => ("rq", &["nr_running"]),
            Field::RqClock => ("rq", &["clock"]),
            Field::RqNrSwitches => ("rq", &["nr_switches"]),
            Field::RqCurr => ("rq", &["curr"]),
            Field::RqCfsNrRunning => (
                "rq",
                &[
                    "cfs.h_nr_running",
                    "cfs.h_nr_queued",
                    "cfs.nr_running",
                    "cfs.nr_queued",
                ],
            ),
            Field::RqScxNrRunning => ("rq", &["scx.nr_running"]),
            Field::RqRunDelay => ("rq", &["rq_sched_info.run_delay"]),
            Field::RqPcount => ("rq", &["rq_sched_info.pcount"]),
            Field::TaskPid => ("task_struct", &["pid"]),
            Field::TaskComm => ("task_struct", &["comm"]),
        }
    }
}

/// A member resolved from DWARF, with the path that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub path: String,
    pub member: Member,
}

/// Everything resolved about one kernel build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The vmlinux GNU build-id (the cache key).
    pub build_id: Vec<u8>,
    /// Symbols sorted by name.
    pub symbols: Vec<Symbol>,
    /// Indexed by [`Field::index`]; `None` where the kernel lacks the member
    /// (or the vmlinux has no DWARF).
    pub fields: Vec<Option<Resolved>>,
    /// Why snapshots are impossible (no DWARF, no `struct rq`), if they are.
    pub snapshots_off: Option<String>,
    /// One line per degraded field, for the trace meta.
    pub notes: Vec<String>,
}

impl Layout {
    /// A symbol by exact name.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.symbols[i])
    }

    /// A resolved member.
    pub fn field(&self, f: Field) -> Option<Member> {
        self.fields
            .get(f.index())
            .and_then(|r| r.as_ref())
            .map(|r| r.member)
    }

    /// Hex build-id.
    pub fn build_id_hex(&self) -> String {
        hex(&self.build_id)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
