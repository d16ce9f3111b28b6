//! Resuming the lane after L1 dies: which checks the next L1 boot runs. The
//! check L1 died in is retried once; a check L1 died in twice is a lane
//! failure; a lane boots L1 at most [`MAX_BOOTS`] times.
use std::collections::BTreeMap;

use super::root::MARK;

/// How a death says L1 rebooted itself after a check failed with the
/// emulator's signature (see root.rs's `suspect_why`).
pub const SUSPECT_RERUN: &str = "L1 rebooted itself to run it again";

/// L1 boots per lane run, the first included. L1 dies in about one lane run
/// of three under QEMU 7.2's TCG (its own kernel stack found corrupted, a
/// stale int3, a silent reset); five boots make running out rare.
pub const MAX_BOOTS: u32 = 5;

/// How an L1 boot that did not finish died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// The check that was running, if one was.
    pub during: Option<String>,
    /// L1's oops/panic lines (or how QEMU exited when it left none).
    pub oops: String,
}

/// The checks still to run and what went wrong so far.
#[derive(Debug)]
pub struct Resume {
    pending: Vec<String>,
    deaths: BTreeMap<String, Vec<String>>,
    failed: Vec<(String, String)>,
    boots: u32,
}

impl Resume {
    /// A lane that will run `checks`, in this order.
    pub fn new(checks: Vec<String>) -> Resume {
        Resume {
            pending: checks,
            deaths: BTreeMap::new(),
            failed: Vec::new(),
            boots: 0,
        }
    }

    /// The checks the next boot runs; `None` when all are done or the lane
    /// is out of boots.
    pub fn next(&self) -> Option<&[String]> {
        (!self.pending.is_empty() && self.boots < MAX_BOOTS).then_some(&self.pending[..])
    }

    /// Boots so far.
    pub fn boots(&self) -> u32 {
        self.boots
    }

    /// One boot ran `ended` to their end, then finished or died (`death`).
    pub fn boot_ended(&mut self, ended: &[String], death: Option<&Death>) {
        self.boots += 1;
        self.pending.retain(|c| !ended.contains(c));
        let Some(Death {
            during: Some(check),
            oops,
        }) = death
        else {
            return;
        };
        let deaths = self.deaths.entry(check.clone()).or_default();
        deaths.push(oops.clone());
        if deaths.len() >= 2 {
            self.pending.retain(|c| c != check);
            self.failed.push((check.clone(), oops.clone()));
        }
    }

    /// The oops lines of each death during `check`.
    #[cfg(test)]
    pub fn deaths(&self, check: &str) -> &[String] {
        self.deaths.get(check).map_or(&[], Vec::as_slice)
    }

    /// Checks L1 died in twice, with the second oops.
    pub fn failed(&self) -> &[(String, String)] {
        &self.failed
    }

    /// Checks never finished because the lane ran out of boots.
    pub fn not_run(&self) -> &[String] {
        if self.next().is_none() {
            &self.pending
        } else {
            &[]
        }
    }
}

/// The lines of L1's console that say how it died: the first oops/BUG/panic
/// line and the kernel RIP after it, without printk timestamps; `exit` (how QEMU
/// exited) when the console shows none.
pub fn death_lines(console: &str, exit: &str) -> String {
    const FIRST: [&str; 6] = [
        "BUG:",
        "Oops:",
        "int3:",
        "general protection fault",
        "Kernel panic",
        "kernel BUG",
    ];
    let lines: Vec<&str> = console.lines().map(strip_timestamp).collect();
    // L1 rebooted itself after L2 triple-faulted (see root.rs).
    if let Some(why) = lines.iter().find_map(|l| {
        l.strip_prefix(MARK)
            .and_then(|m| m.trim().strip_prefix("check "))
            .and_then(|m| m.split_once(" suspect: "))
            .map(|(_, why)| why)
    }) {
        return format!("{why} ({SUSPECT_RERUN})");
    }
    let Some(at) = lines
        .iter()
        .position(|l| FIRST.iter().any(|k| l.contains(k)))
    else {
        return format!("no oops on L1's console; QEMU exited ({exit})");
    };
    let mut picked = vec![lines[at]];
    if let Some(rip) = lines[at..].iter().find(|l| l.starts_with("RIP: 0010:")) {
        picked.push(rip);
    }
    if let Some(panic) = lines[at + 1..]
        .iter()
        .find(|l| l.starts_with("Kernel panic"))
    {
        picked.push(panic);
    }
    picked.join(" | ")
}

/// `[   12.345678] text` → `text`.
fn strip_timestamp(line: &str) -> &str {
    let t = line.trim();
    match t.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((stamp, rest)) if stamp.trim().parse::<f64>().is_ok() => rest.trim(),
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn died(during: Option<&str>) -> Death {
        Death {
            during: during.map(str::to_string),
            oops: format!("oops in {during:?}"),
        }
    }

    #[test]
    fn a_lane_without_deaths_boots_once() {
        let mut r = Resume::new(names(&["a", "b"]));
        assert_eq!(r.next().unwrap(), names(&["a", "b"]));
        r.boot_ended(&names(&["a", "b"]), None);
        assert_eq!(r.next(), None);
        assert_eq!(r.boots(), 1);
        assert!(r.failed().is_empty() && r.not_run().is_empty());
    }

    #[test]
    fn the_check_l1_died_in_runs_again_first_with_the_rest() {
        let mut r = Resume::new(names(&["a", "b", "c"]));
        r.boot_ended(&names(&["a"]), Some(&died(Some("b"))));
        assert_eq!(r.next().unwrap(), names(&["b", "c"]));
        assert_eq!(r.deaths("b"), ["oops in Some(\"b\")"]);
        assert!(r.deaths("a").is_empty());
        r.boot_ended(&names(&["b", "c"]), None);
        assert_eq!(r.next(), None);
        assert!(r.failed().is_empty() && r.not_run().is_empty());
    }

    #[test]
    fn a_check_l1_died_in_twice_is_a_lane_failure_and_the_rest_go_on() {
        let mut r = Resume::new(names(&["a", "b", "c"]));
        r.boot_ended(&[], Some(&died(Some("a"))));
        r.boot_ended(&[], Some(&died(Some("a"))));
        assert_eq!(
            r.failed(),
            [("a".to_string(), "oops in Some(\"a\")".into())]
        );
        assert_eq!(r.next().unwrap(), names(&["b", "c"]), "a third boot");
        r.boot_ended(&names(&["b", "c"]), None);
        assert_eq!(r.next(), None);
        assert!(r.not_run().is_empty());
    }

    #[test]
    fn boots_are_capped_and_what_is_left_is_not_run() {
        let m = MAX_BOOTS as usize;
        let all: Vec<String> = (0..m + 2).map(|i| format!("c{i}")).collect();
        let mut r = Resume::new(all.clone());
        // Each boot but the last finishes one check and dies in the next.
        for b in 0..m - 1 {
            assert_eq!(r.next().unwrap()[0], all[b]);
            r.boot_ended(&all[b..=b], Some(&died(Some(&all[b + 1]))));
        }
        assert!(r.not_run().is_empty(), "one boot is left");
        r.boot_ended(&[], Some(&died(None)));
        assert_eq!(r.boots(), MAX_BOOTS);
        assert_eq!(r.next(), None);
        assert_eq!(r.not_run(), &all[m - 1..]);
        assert!(r.failed().is_empty(), "no check died twice");
    }

    #[test]
    fn a_death_between_checks_retries_nothing_but_costs_a_boot() {
        let mut r = Resume::new(names(&["a", "b"]));
        r.boot_ended(&names(&["a"]), Some(&died(None)));
        assert_eq!(r.next().unwrap(), names(&["b"]));
        assert!(r.deaths("b").is_empty());
        assert_eq!(r.boots(), 1);
    }

    #[test]
    fn the_oops_line_the_rip_and_the_panic_come_from_the_console() {
        let log = "[    1.0] random\n\
                   [  100.123456] int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                   [  100.2] CPU: 1 PID: 9 Comm: vcpu\n\
                   [  100.3] RIP: 0010:apic_has_pending_timer+0x11/0x30 [kvm]\n\
                   [  100.4] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(
            death_lines(log, "exit status: 0"),
            "int3: 0000 [#1] PREEMPT SMP NOPTI | RIP: 0010:apic_has_pending_timer+0x11/0x30 [kvm] \
             | Kernel panic - not syncing: Fatal exception"
        );
        assert_eq!(
            death_lines("[ 1.0] quiet\n", "signal: 9"),
            "no oops on L1's console; QEMU exited (signal: 9)"
        );
        assert_eq!(strip_timestamp("[x] y"), "[x] y");
    }

    #[test]
    fn a_soft_lockup_names_the_stuck_thread_and_where() {
        let log = "[  128.5] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [vcpu2:209]\n\
                   [  128.6] CPU: 1 UID: 0 PID: 209 Comm: vcpu2\n\
                   [  128.7] RIP: 0010:svm_vcpu_run+0x1f/0x2a0 [kvm_amd]\n\
                   [  128.9] Kernel panic - not syncing: softlockup: hung tasks\n";
        assert_eq!(
            death_lines(log, "exit status: 0"),
            "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [vcpu2:209] | \
             RIP: 0010:svm_vcpu_run+0x1f/0x2a0 [kvm_amd] | Kernel panic - not syncing: softlockup: hung tasks"
        );
    }

    #[test]
    fn a_reboot_after_an_l2_triple_fault_says_so() {
        let log = format!(
            "{MARK} check smoke started\n\
             {MARK} check smoke suspect: vCPU 1 triple-faulted in L2\n\
             [   9.1] reboot: Restarting system\n"
        );
        assert_eq!(
            death_lines(&log, "exit status: 0"),
            "vCPU 1 triple-faulted in L2 (L1 rebooted itself to run it again)"
        );
    }
}
