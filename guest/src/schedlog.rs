//! What the executor reads from a sched_ext scheduler: its output lines and
//! the kernel's `sched_ext:` log messages (pure, host-tested).
//!
//! Scheduler stdout lines that start with `schedtape: ` follow the protocol of
//! `bpf/src/lib.rs` (`counters`, `exit`, `dump`); an scx-style `DEBUG DUMP`
//! block (as the scx tools print on exit) is taken as dump lines too.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Longest line kept; longer ones are cut.
pub const MAX_LINE: usize = 2048;

/// One scheduler output line, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `schedtape: counters a=1 b=2`: running totals.
    Counters(Vec<(String, u64)>),
    /// `schedtape: exit kind=K code=N reason=TEXT`: why the kernel ended it.
    Exit { kind: String, reason: String },
    /// One line of the kernel's sched_ext debug dump.
    Dump(String),
    /// Anything else.
    Text(String),
}

/// Classifies lines, remembering whether a `DEBUG DUMP` block is open.
#[derive(Debug, Default, Clone)]
pub struct Parser {
    in_dump: bool,
}

impl Parser {
    pub fn line(&mut self, line: &str) -> Line {
        if let Some(rest) = line.strip_prefix("schedtape: ") {
            return protocol(rest).unwrap_or_else(|| Line::Text(line.to_string()));
        }
        if line.trim() == "DEBUG DUMP" {
            self.in_dump = true;
            return Line::Text(line.to_string());
        }
        if self.in_dump {
            if line.starts_with("EXIT:") {
                self.in_dump = false;
                return Line::Text(line.to_string());
            }
            if !line.trim().is_empty() && !line.bytes().all(|b| b == b'=') {
                return Line::Dump(line.to_string());
            }
        }
        Line::Text(line.to_string())
    }
}

fn protocol(rest: &str) -> Option<Line> {
    let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
    match verb {
        "counters" => {
            let pairs = args
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Line::Counters(pairs))
        }
        "exit" => {
            let (head, reason) = args.split_once("reason=").unwrap_or((args, ""));
            let kind = head
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("kind="))
                .unwrap_or("unknown");
            Some(Line::Exit {
                kind: kind.to_string(),
                reason: reason.trim().to_string(),
            })
        }
        "dump" => Some(Line::Dump(args.to_string())),
        _ => None,
    }
}

/// Splits a byte stream into lines (lossy UTF-8, at most [`MAX_LINE`] bytes).
#[derive(Debug, Default, Clone)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Appends `bytes`; every completed line goes to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for &b in bytes {
            if b == b'\n' {
                out.push(self.take());
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    /// Emits an unterminated last line, if any.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            out.push(self.take());
        }
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .to_string();
        self.partial.clear();
        line
    }
}

/// A sched_ext message from the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kmsg {
    /// `BPF scheduler "OPS" enabled`.
    Enabled { ops: String },
    /// `BPF scheduler "OPS" disabled (REASON)`.
    Disabled { ops: String, reason: String },
    /// Any other `sched_ext: …` line, e.g. the error message after a disable.
    Other(String),
}

/// The message text of one `/dev/kmsg` record (`prio,seq,ts,flags;text`).
pub fn kmsg_text(record: &[u8]) -> Option<String> {
    let start = record.iter().position(|&b| b == b';')? + 1;
    let body = &record[start..];
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

/// Parses a kernel log message; `None` unless it is a sched_ext one.
pub fn parse_kmsg(text: &str) -> Option<Kmsg> {
    let rest = text.strip_prefix("sched_ext: ")?;
    if let Some(s) = rest.strip_prefix("BPF scheduler \"")
        && let Some((ops, tail)) = s.split_once('"')
    {
        let ops = ops.to_string();
        let tail = tail.trim();
        if tail == "enabled" {
            return Some(Kmsg::Enabled { ops });
        }
        if let Some(r) = tail.strip_prefix("disabled (") {
            let reason = r.strip_suffix(')').unwrap_or(r).to_string();
            return Some(Kmsg::Disabled { ops, reason });
        }
    }
    Some(Kmsg::Other(rest.to_string()))
}

/// The exit kind behind one of the kernel's exit reason texts.
pub fn kind_of_reason(reason: &str) -> &'static str {
    match reason {
        "unregistered from user space" => "unreg",
        "unregistered from BPF" => "unreg_bpf",
        "unregistered from the main kernel" => "unreg_kern",
        "disabled by sysrq-S" => "sysrq",
        "runtime error" => "error",
        "scx_bpf_error" => "error_bpf",
        "runnable task stall" => "error_stall",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn protocol_lines() {
        let mut p = Parser::default();
        assert_eq!(
            p.line("schedtape: counters enqueued=3 dispatched=10"),
            Line::Counters(vec![("enqueued".into(), 3), ("dispatched".into(), 10)])
        );
        assert_eq!(
            p.line("schedtape: exit kind=error_stall code=0 reason=runnable task stall: x=1"),
            Line::Exit {
                kind: "error_stall".into(),
                reason: "runnable task stall: x=1".into()
            }
        );
        assert_eq!(p.line("schedtape: dump   a b"), Line::Dump("  a b".into()));
        assert!(matches!(p.line("schedtape: counters x=y"), Line::Text(_)));
        assert!(matches!(p.line("hello"), Line::Text(_)));
    }

    #[test]
    fn scx_debug_dump_block() {
        let mut p = Parser::default();
        let kinds: Vec<Line> = ["DEBUG DUMP", "=====", "", "CPU 0", "EXIT: stall", "after"]
            .iter()
            .map(|l| p.line(l))
            .collect();
        assert!(matches!(kinds[0], Line::Text(_)));
        assert!(matches!(kinds[1], Line::Text(_)));
        assert_eq!(kinds[3], Line::Dump("CPU 0".into()));
        assert!(matches!(kinds[4], Line::Text(_)));
        assert!(matches!(kinds[5], Line::Text(_)));
    }

    #[test]
    fn splits_lines() {
        let mut l = Lines::default();
        let mut out = Vec::new();
        l.push(b"ab\ncd", &mut out);
        assert_eq!(out, ["ab"]);
        l.push(b"e\r\n", &mut out);
        l.push(b"tail", &mut out);
        l.finish(&mut out);
        assert_eq!(out, ["ab", "cde", "tail"]);
    }

    #[test]
    fn kernel_messages() {
        let rec =
            b"3,812,7119464,-;sched_ext: BPF scheduler \"fifo\" disabled (runnable task stall)\n";
        let text = kmsg_text(rec).unwrap();
        assert_eq!(
            parse_kmsg(&text),
            Some(Kmsg::Disabled {
                ops: "fifo".into(),
                reason: "runnable task stall".into()
            })
        );
        assert_eq!(
            parse_kmsg("sched_ext: BPF scheduler \"fifo\" enabled"),
            Some(Kmsg::Enabled { ops: "fifo".into() })
        );
        assert_eq!(
            parse_kmsg("sched_ext: fifo: watchdog failed"),
            Some(Kmsg::Other("fifo: watchdog failed".into()))
        );
        assert_eq!(parse_kmsg("random: crng init done"), None);
        assert_eq!(kind_of_reason("runnable task stall"), "error_stall");
    }
}
