//! Worker and cgroup health: OOM kills (`MemoryEvents`), workers that ended
//! on their own (`WorkerExited`) and failed work operations (`WorkerErrors`),
//! gathered in the walk, and the verdicts over them.
use std::collections::{BTreeMap, BTreeSet};

use trace_format::record::{ExitHow, MemoryEvents, Record, SIGKILL, Verdict, VerdictOutcome};

use crate::text::errno;

/// Failed operations of one cgroup's workers.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    pub workers: BTreeSet<u32>,
    /// (operation, errno) → failures.
    pub kinds: BTreeMap<(String, u32), u64>,
}

/// Health evidence of one run.
#[derive(Debug, Default)]
pub struct Health {
    /// Cgroup → its OOM events, summed (the key names the cgroup).
    pub oom: BTreeMap<String, MemoryEvents>,
    /// Worker → (cgroup, how it ended on its own).
    pub exits: BTreeMap<u32, (String, ExitHow)>,
    /// Cgroup → failed operations of its workers.
    pub errors: BTreeMap<String, ErrorTally>,
}

impl Health {
    /// Folds one health record; `cgroup_of` names a worker's cgroup.
    pub fn observe(&mut self, record: &Record, cgroup_of: impl Fn(u32) -> Option<String>) {
        match record {
            Record::MemoryEvents(m) => {
                // The key names the cgroup; the sum's own `cgroup` stays empty.
                let sum = self.oom.entry(m.cgroup.clone()).or_default();
                sum.oom = sum.oom.saturating_add(m.oom);
                sum.oom_kill = sum.oom_kill.saturating_add(m.oom_kill);
                sum.oom_group_kill = sum.oom_group_kill.saturating_add(m.oom_group_kill);
            }
            Record::WorkerExited(w) => {
                self.exits.insert(w.worker, (w.cgroup.clone(), w.how));
            }
            Record::WorkerErrors(e) => {
                let cgroup = cgroup_of(e.worker).unwrap_or_default();
                let t = self.errors.entry(cgroup).or_default();
                t.workers.insert(e.worker);
                let n = t.kinds.entry((e.op.clone(), e.errno)).or_default();
                *n = n.saturating_add(e.failed);
            }
            _ => {}
        }
    }

    /// OOM kills recorded for `cgroup` or any cgroup above it.
    fn oom_kills_over(&self, cgroup: &str) -> u64 {
        self.oom
            .iter()
            .filter(|(name, _)| within(cgroup, name))
            .map(|(_, m)| m.oom_kill)
            .sum()
    }

    /// True when `worker` died of SIGKILL where the OOM killer killed.
    pub fn oom_killed(&self, worker: u32) -> bool {
        self.exits.get(&worker).is_some_and(|(cg, how)| {
            *how == ExitHow::Killed { signal: SIGKILL } && self.oom_kills_over(cg) > 0
        })
    }

    /// How `worker` ended on its own, in words (`None` if it did not).
    pub fn death(&self, worker: u32) -> Option<String> {
        if self.oom_killed(worker) {
            return Some("was OOM-killed".into());
        }
        self.exits.get(&worker).map(|(_, how)| how.to_string())
    }
}

/// True when `cgroup` is `ancestor` or lies below it (`""` is the root).
fn within(cgroup: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || cgroup == ancestor
        || cgroup
            .strip_prefix(ancestor)
            .is_some_and(|r| r.starts_with('/'))
}

fn cg(name: &str) -> &str {
    if name.is_empty() { "(root)" } else { name }
}

/// No process of a scenario cgroup was killed by the OOM killer.
pub fn no_oom_kill(h: &Health) -> Verdict {
    const NAME: &str = "no-oom-kill";
    let mut findings = Vec::new();
    for (name, m) in h.oom.iter().filter(|(_, m)| m.oom_kill > 0) {
        let workers = h
            .exits
            .iter()
            .filter(|(w, (c, _))| within(c, name) && h.oom_killed(**w))
            .count();
        let killed = if workers > 0 {
            format!("{workers} worker(s) OOM-killed; ")
        } else {
            String::new()
        };
        findings.push(format!(
            "cgroup {}: {killed}the OOM killer killed {} process(es) ({} OOM event(s))",
            cg(name),
            m.oom_kill,
            m.oom
        ));
    }
    from_findings(
        NAME,
        &findings,
        "no process was OOM-killed in any scenario cgroup",
    )
}

/// No worker's work operation failed (a failed fork is not work).
pub fn no_op_errors(h: &Health) -> Verdict {
    const NAME: &str = "no-op-errors";
    let mut findings = Vec::new();
    for (name, t) in &h.errors {
        let kinds: Vec<String> = t
            .kinds
            .iter()
            .map(|((op, e), n)| format!("{n} failed {op} ({})", errno(*e)))
            .collect();
        findings.push(format!(
            "cgroup {}: {} worker(s) had {}",
            cg(name),
            t.workers.len(),
            kinds.join(", ")
        ));
    }
    from_findings(NAME, &findings, "no worker reported a failed operation")
}

/// Passes with `clean` when there are no findings, else fails listing them.
fn from_findings(name: &str, findings: &[String], clean: &str) -> Verdict {
    let (outcome, detail) = if findings.is_empty() {
        (VerdictOutcome::Pass, clean.to_string())
    } else {
        (VerdictOutcome::Fail, findings.join("; "))
    };
    Verdict {
        name: name.into(),
        outcome,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::record::WorkerExited;

    fn killed(worker: u32, cgroup: &str, signal: u32) -> Record {
        Record::WorkerExited(WorkerExited {
            worker,
            pid: 100 + worker,
            cgroup: cgroup.into(),
            how: ExitHow::Killed { signal },
        })
    }

    #[test]
    fn oom_kills_are_matched_to_the_cgroup_or_one_above() {
        let mut h = Health::default();
        for r in [
            killed(1, "jail/inner", SIGKILL),
            killed(2, "jailbreak", SIGKILL),
            killed(3, "jail", 11),
            Record::MemoryEvents(MemoryEvents {
                cgroup: "jail".into(),
                oom: 1,
                oom_kill: 1,
                oom_group_kill: 0,
            }),
        ] {
            h.observe(&r, |_| None);
        }
        assert!(h.oom_killed(1), "the limit of the parent killed it");
        assert!(!h.oom_killed(2), "a name prefix is not a parent");
        assert!(!h.oom_killed(3), "SIGSEGV is no OOM kill");
        assert_eq!(h.death(3).as_deref(), Some("was killed by signal 11"));
        assert_eq!(h.death(4), None);
        let v = no_oom_kill(&h);
        assert_eq!(v.outcome, VerdictOutcome::Fail);
        assert!(
            v.detail
                .starts_with("cgroup jail: 1 worker(s) OOM-killed; the OOM killer killed 1"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn oom_events_without_kills_pass_and_kills_without_workers_name_none() {
        let events = |oom, oom_kill| {
            Record::MemoryEvents(MemoryEvents {
                cgroup: "jail".into(),
                oom,
                oom_kill,
                oom_group_kill: 0,
            })
        };
        let mut h = Health::default();
        h.observe(&events(3, 0), |_| None);
        assert_eq!(no_oom_kill(&h).outcome, VerdictOutcome::Pass);
        // A kill of a process that is none of our workers.
        h.observe(&events(1, 1), |_| None);
        let v = no_oom_kill(&h);
        assert_eq!(v.outcome, VerdictOutcome::Fail);
        assert!(
            v.detail
                .starts_with("cgroup jail: the OOM killer killed 1 process(es) (4 OOM event(s))"),
            "{}",
            v.detail
        );
    }
}
