//! What each vCPU thread last saw come back from `KVM_RUN`, kept in atomics
//! the run loop updates on every guest exit, so that a VM which never ends can
//! be described (see [`crate::kvm::stall`]) without stopping it first. Kicks
//! (EINTR, the freeze's own signal) are not guest exits and are not counted.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A guest exit to the VMM, as the run loop classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    IoOut(u16),
    IoIn(u16),
    MmioRead(u64),
    MmioWrite(u64),
    Hlt,
    Debug,
    Shutdown,
    InternalError,
    /// Interrupt window, `KVM_EXIT_INTR` and any other exit.
    Other,
}

impl ExitKind {
    fn encode(self) -> (u32, u64) {
        match self {
            ExitKind::IoOut(p) => (1, u64::from(p)),
            ExitKind::IoIn(p) => (2, u64::from(p)),
            ExitKind::MmioRead(a) => (3, a),
            ExitKind::MmioWrite(a) => (4, a),
            ExitKind::Hlt => (5, 0),
            ExitKind::Debug => (6, 0),
            ExitKind::Shutdown => (7, 0),
            ExitKind::InternalError => (8, 0),
            ExitKind::Other => (9, 0),
        }
    }

    fn decode(code: u32, arg: u64) -> Option<ExitKind> {
        let port = u16::try_from(arg).unwrap_or(u16::MAX);
        Some(match code {
            1 => ExitKind::IoOut(port),
            2 => ExitKind::IoIn(port),
            3 => ExitKind::MmioRead(arg),
            4 => ExitKind::MmioWrite(arg),
            5 => ExitKind::Hlt,
            6 => ExitKind::Debug,
            7 => ExitKind::Shutdown,
            8 => ExitKind::InternalError,
            9 => ExitKind::Other,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::IoOut(p) => write!(f, "I/O write to port {p:#x}"),
            ExitKind::IoIn(p) => write!(f, "I/O read of port {p:#x}"),
            ExitKind::MmioRead(a) => write!(f, "MMIO read at {a:#x}"),
            ExitKind::MmioWrite(a) => write!(f, "MMIO write at {a:#x}"),
            ExitKind::Hlt => f.write_str("HLT"),
            ExitKind::Debug => f.write_str("debug exit"),
            ExitKind::Shutdown => f.write_str("shutdown (triple fault)"),
            ExitKind::InternalError => f.write_str("KVM internal error"),
            ExitKind::Other => f.write_str("interrupt window or signal"),
        }
    }
}

/// One vCPU's exits so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub exits: u64,
    /// The latest exit and how long before the read it happened.
    pub last: Option<(ExitKind, Duration)>,
}

#[derive(Debug, Default)]
struct Slot {
    exits: AtomicU64,
    code: AtomicU32,
    arg: AtomicU64,
    at_ns: AtomicU64,
}

/// Exit counters of every vCPU of one VM.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    slots: Vec<Slot>,
}

impl Activity {
    pub fn new(vcpus: usize) -> Self {
        Activity {
            start: Instant::now(),
            slots: (0..vcpus).map(|_| Slot::default()).collect(),
        }
    }

    /// Notes a guest exit of vCPU `index` (called by its own thread).
    pub fn exit(&self, index: usize, kind: ExitKind) {
        let Some(s) = self.slots.get(index) else {
            return;
        };
        let (code, arg) = kind.encode();
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: a report may pair one exit's kind with a neighbour's time;
        // it is a diagnosis, not an account.
        s.arg.store(arg, Ordering::Relaxed);
        s.code.store(code, Ordering::Relaxed);
        s.at_ns.store(now, Ordering::Relaxed);
        s.exits.fetch_add(1, Ordering::Relaxed);
    }

    /// What every vCPU has done so far, by index.
    pub fn seen(&self) -> Vec<Seen> {
        let now = self.start.elapsed();
        self.slots
            .iter()
            .map(|s| {
                let kind = ExitKind::decode(
                    s.code.load(Ordering::Relaxed),
                    s.arg.load(Ordering::Relaxed),
                );
                let at = Duration::from_nanos(s.at_ns.load(Ordering::Relaxed));
                Seen {
                    exits: s.exits.load(Ordering::Relaxed),
                    last: kind.map(|k| (k, now.saturating_sub(at))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_counted_and_the_last_one_kept() {
        let a = Activity::new(2);
        assert_eq!(
            a.seen()[1],
            Seen {
                exits: 0,
                last: None
            }
        );
        a.exit(1, ExitKind::IoOut(0x3f8));
        a.exit(1, ExitKind::MmioRead(0xfee0_0000));
        a.exit(7, ExitKind::Hlt); // no such vCPU: ignored
        let seen = a.seen();
        assert_eq!(seen[0].exits, 0);
        assert_eq!(seen[1].exits, 2);
        assert_eq!(
            seen[1].last.map(|l| l.0),
            Some(ExitKind::MmioRead(0xfee0_0000))
        );
        for k in [
            ExitKind::IoOut(1),
            ExitKind::IoIn(0xffff),
            ExitKind::MmioWrite(u64::MAX),
            ExitKind::Hlt,
            ExitKind::Debug,
            ExitKind::Shutdown,
            ExitKind::InternalError,
            ExitKind::Other,
        ] {
            let (c, arg) = k.encode();
            assert_eq!(ExitKind::decode(c, arg), Some(k));
        }
        assert_eq!(
            ExitKind::IoOut(0x3f8).to_string(),
            "I/O write to port 0x3f8"
        );
    }
}
