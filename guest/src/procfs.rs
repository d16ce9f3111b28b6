//! Parsers for the /proc, sysfs and cgroupfs text the executor reads.
//!
//! They take raw bytes (a file read into a stack buffer) and never allocate,
//! except [`parse_pids`] which fills a caller-owned vector.

use alloc::vec::Vec;
use trace_format::scenario::CpuList;

/// `/proc/<pid>/schedstat`: time on CPU, time waiting (ns), timeslices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
}

/// Parses `"<run> <wait> <slices>\n"`.
pub fn parse_schedstat(text: &[u8]) -> Option<SchedStat> {
    let mut it = words(text);
    Some(SchedStat {
        run_ns: number(it.next()?)?,
        wait_ns: number(it.next()?)?,
        timeslices: number(it.next()?)?,
    })
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` from `/proc/<pid>/status`.
pub fn parse_ctxt_switches(text: &[u8]) -> Option<(u64, u64)> {
    let vol = field(text, b"voluntary_ctxt_switches")?;
    let invol = field(text, b"nonvoluntary_ctxt_switches")?;
    Some((vol, invol))
}

/// `se.nr_migrations` from `/proc/<pid>/sched` (needs `CONFIG_SCHED_DEBUG`).
pub fn parse_nr_migrations(text: &[u8]) -> Option<u64> {
    field(text, b"se.nr_migrations")
}

/// The number after `<key> :` or `<key>:` on a line that starts with `key`.
pub fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    for line in text.split(|&b| b == b'\n') {
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        let rest = trim(rest);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        return number(trim(rest));
    }
    None
}

/// PIDs from `cgroup.procs` (one per line) appended to `out`.
pub fn parse_pids(text: &[u8], out: &mut Vec<u32>) {
    for w in words(text) {
        if let Some(pid) = number(w).and_then(|n| u32::try_from(n).ok()) {
            out.push(pid);
        }
    }
}

/// A kernel CPU list such as `0-3,6` (sysfs `online`, `cpuset.cpus.effective`).
pub fn parse_cpu_list(text: &[u8]) -> Option<CpuList> {
    let text = trim(text);
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Some(CpuList(cpus));
    }
    for part in text.split(|&b| b == b',') {
        let part = trim(part);
        let (lo, hi) = match part.iter().position(|&b| b == b'-') {
            Some(i) => (number(&part[..i])?, number(&part[i + 1..])?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if lo > hi || hi >= 4096 {
            return None;
        }
        for c in lo..=hi {
            cpus.push(u32::try_from(c).ok()?);
        }
    }
    Some(CpuList::new(cpus))
}

/// `frozen` from `cgroup.events`: `Some(true)` once the cgroup is frozen.
pub fn parse_frozen(text: &[u8]) -> Option<bool> {
    for line in text.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"frozen ") {
            return Some(number(trim(v))? != 0);
        }
    }
    None
}

fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !last.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}

/// A decimal `u64`; `None` for empty or non-digit input.
pub fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat() {
        let s = parse_schedstat(b"123456 789 42\n").unwrap();
        assert_eq!((s.run_ns, s.wait_ns, s.timeslices), (123456, 789, 42));
        assert_eq!(parse_schedstat(b"1 2"), None);
        assert_eq!(parse_schedstat(b""), None);
    }

    #[test]
    fn status_switches() {
        let text = b"Name:\tst-a\nState:\tR (running)\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t1234\n";
        assert_eq!(parse_ctxt_switches(text), Some((7, 1234)));
        assert_eq!(parse_ctxt_switches(b"Name: x\n"), None);
    }

    #[test]
    fn sched_migrations() {
        let text = b"st-a (77, #threads: 1)\n-------------------------------------------------------------------\nse.exec_start                                :          1234.567890\nse.nr_migrations                             :                   19\nnr_switches                                  :                  100\n";
        assert_eq!(parse_nr_migrations(text), Some(19));
        assert_eq!(field(text, b"nr_switches"), Some(100));
        assert_eq!(parse_nr_migrations(b"se.exec_start : 1.0\n"), None);
    }

    #[test]
    fn pids_and_cpu_lists() {
        let mut v = Vec::new();
        parse_pids(b"12\n345\n\n", &mut v);
        assert_eq!(v, [12, 345]);
        assert_eq!(parse_cpu_list(b"0-3,6\n").unwrap().0, [0, 1, 2, 3, 6]);
        assert_eq!(parse_cpu_list(b"\n").unwrap().0, [] as [u32; 0]);
        assert_eq!(parse_cpu_list(b"3-1"), None);
        assert_eq!(parse_cpu_list(b"x"), None);
    }

    #[test]
    fn frozen() {
        assert_eq!(parse_frozen(b"populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(parse_frozen(b"populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_frozen(b"populated 0\n"), None);
    }
}
