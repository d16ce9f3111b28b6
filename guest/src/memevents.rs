//! A cgroup's `memory.events` OOM counters, and what changed since the
//! executor last recorded them (records carry deltas, like samples).

use crate::procfs::number;

/// The OOM counters of `memory.events` (cumulative since the cgroup was made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomCounts {
    pub oom: u64,
    pub oom_kill: u64,
    pub oom_group_kill: u64,
}

impl OomCounts {
    /// Parses `memory.events` (`key value` lines); missing keys read as 0.
    pub fn parse(text: &[u8]) -> OomCounts {
        let mut c = OomCounts::default();
        for line in text.split(|&b| b == b'\n') {
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(value) = number(value) else { continue };
            match key {
                b"oom" => c.oom = value,
                b"oom_kill" => c.oom_kill = value,
                b"oom_group_kill" => c.oom_group_kill = value,
                _ => {}
            }
        }
        c
    }

    /// New events since `prev` (a counter that went back counts as 0).
    pub fn since(&self, prev: &OomCounts) -> OomCounts {
        OomCounts {
            oom: self.oom.saturating_sub(prev.oom),
            oom_kill: self.oom_kill.saturating_sub(prev.oom_kill),
            oom_group_kill: self.oom_group_kill.saturating_sub(prev.oom_group_kill),
        }
    }

    /// True when no counter is set.
    pub fn is_zero(&self) -> bool {
        *self == OomCounts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_diffs() {
        let text = b"low 0\nhigh 4\nmax 17\noom 3\noom_kill 2\noom_group_kill 0\n";
        let now = OomCounts::parse(text);
        assert_eq!((now.oom, now.oom_kill, now.oom_group_kill), (3, 2, 0));
        let prev = OomCounts {
            oom: 1,
            oom_kill: 2,
            oom_group_kill: 5,
        };
        let d = now.since(&prev);
        assert_eq!((d.oom, d.oom_kill, d.oom_group_kill), (2, 0, 0));
        assert!(now.since(&now).is_zero());
        // Older kernels lack oom_group_kill; junk lines are skipped.
        assert_eq!(
            OomCounts::parse(b"oom x\noom_kill 4\nnonsense\n"),
            OomCounts {
                oom_kill: 4,
                ..OomCounts::default()
            }
        );
    }
}
