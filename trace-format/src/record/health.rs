//! Worker and cgroup health: how a worker ended on its own, operations it
//! failed, and a cgroup's OOM events. Appended to [`super::Record`] after the
//! original variants; counters are deltas since the previous record of the
//! same worker or cgroup, like worker samples.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// `SIGKILL`: what the OOM killer sends.
pub const SIGKILL: u32 = 9;

/// How a worker process ended, from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitHow {
    /// It called `exit` with this status.
    Exited { code: u32 },
    /// A signal killed it (the OOM killer sends `SIGKILL`).
    Killed { signal: u32 },
}

impl ExitHow {
    /// Decodes a raw wait(2) status; `None` for a stopped or continued child.
    pub fn from_wait_status(status: i32) -> Option<ExitHow> {
        let sig = status & 0x7f;
        match sig {
            0 => Some(ExitHow::Exited {
                code: u32::try_from((status >> 8) & 0xff).unwrap_or(0),
            }),
            0x7f => None,
            _ => Some(ExitHow::Killed {
                signal: u32::try_from(sig).unwrap_or(0),
            }),
        }
    }
}

impl core::fmt::Display for ExitHow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ExitHow::Exited { code } => write!(f, "exited with status {code}"),
            ExitHow::Killed { signal: SIGKILL } => f.write_str("was killed by SIGKILL"),
            ExitHow::Killed { signal } => write!(f, "was killed by signal {signal}"),
        }
    }
}

/// A worker ended on its own, before the executor stopped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerExited {
    pub worker: u32,
    pub pid: u32,
    /// The cgroup it ran in; empty for the root.
    pub cgroup: String,
    pub how: ExitHow,
}

/// Operations of a worker's work type that failed since its previous
/// `WorkerErrors` record (failed operations are not counted as iterations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerErrors {
    pub worker: u32,
    /// Failed operations in the interval.
    pub failed: u64,
    /// What failed, e.g. `fork`.
    pub op: String,
    /// Errno of the latest failure.
    pub errno: u32,
}

/// New OOM events of a cgroup (its `memory.events`, which counts its
/// descendants too) since the previous `MemoryEvents` of the same cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryEvents {
    /// The cgroup; empty for the root.
    pub cgroup: String,
    /// Times the cgroup hit its limit and the OOM killer was invoked.
    pub oom: u64,
    /// Processes the OOM killer killed in the cgroup.
    pub oom_kill: u64,
    /// Group OOM kills (`memory.oom.group`).
    pub oom_group_kill: u64,
}

impl core::fmt::Display for MemoryEvents {
    /// `cgroup "mem": the OOM killer killed 2 process(es) (3 OOM event(s))`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = if self.cgroup.is_empty() {
            "(root)"
        } else {
            &self.cgroup
        };
        write!(
            f,
            "cgroup {name:?}: the OOM killer killed {} process(es) ({} OOM event(s)",
            self.oom_kill, self.oom
        )?;
        if self.oom_group_kill > 0 {
            write!(f, ", {} group kill(s)", self.oom_group_kill)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn wait_status_decodes() {
        assert_eq!(
            ExitHow::from_wait_status(3 << 8),
            Some(ExitHow::Exited { code: 3 })
        );
        let killed = ExitHow::from_wait_status(9).unwrap();
        assert_eq!(killed, ExitHow::Killed { signal: SIGKILL });
        assert_eq!(format!("{killed}"), "was killed by SIGKILL");
        // Core-dump bit set: still the signal.
        assert_eq!(
            ExitHow::from_wait_status(0x80 | 11),
            Some(ExitHow::Killed { signal: 11 })
        );
        assert_eq!(ExitHow::from_wait_status(0x137f), None);
    }

    #[test]
    fn memory_events_name_the_cgroup_and_kills() {
        let m = MemoryEvents {
            cgroup: "mem".into(),
            oom: 3,
            oom_kill: 2,
            oom_group_kill: 0,
        };
        assert_eq!(
            format!("{m}"),
            "cgroup \"mem\": the OOM killer killed 2 process(es) (3 OOM event(s))"
        );
    }
}
