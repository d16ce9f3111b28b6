//! schedtape's own sched_ext scheduler: options and the stdout line protocol.
//!
//! The loader (`src/loader.rs`, feature `loader`) attaches the BPF program in
//! `src/bpf/fifo.bpf.c` and talks to the guest executor through stdout lines
//! that start with [`PREFIX`]; any scheduler binary may print them:
//!
//! - `schedtape: attached ops=NAME …` once sched_ext runs it,
//! - `schedtape: counters NAME=VALUE …` periodically (running totals),
//! - `schedtape: exit kind=KIND code=N reason=TEXT` when the kernel ends it,
//! - `schedtape: dump TEXT`, one per line of the kernel's debug dump.

use std::fmt::Write as _;
use std::time::Duration;

/// The start of every protocol line.
pub const PREFIX: &str = "schedtape: ";

/// Counter names, in the order of the BPF program's `enum stat`.
pub const COUNTERS: [&str; 4] = ["enqueued", "dispatched", "direct", "fallbacks"];

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time slice given to every dispatched task.
    pub slice: Duration,
    /// Stop dispatching this long after attaching (the watchdog then ejects us).
    pub stall_after: Option<Duration>,
    /// Raise `scx_bpf_error` in `ops.init`: the kernel ejects us while attaching.
    pub fail_init: bool,
    /// sched_ext watchdog timeout for runnable tasks.
    pub timeout: Duration,
    /// How often counters are printed.
    pub stats_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            slice: Duration::from_millis(20),
            stall_after: None,
            fail_init: false,
            timeout: Duration::from_secs(5),
            stats_interval: Duration::from_millis(500),
        }
    }
}

/// The `--help` text.
pub const USAGE: &str = "\
usage: schedtape-scx [OPTIONS]

A global FIFO sched_ext scheduler for schedtape tests. Runs until SIGINT or
SIGTERM (then detaches) or until the kernel ejects it (then reports why).

options:
  --slice-us N       time slice in microseconds (default 20000)
  --stall-after S    stop dispatching S seconds after attaching (e.g. 1, 0.5)
  --fail-init        raise scx_bpf_error in ops.init (ejected while attaching)
  --timeout-ms N     sched_ext watchdog timeout (default 5000, at most 30000)
  --stats-ms N       print counters every N ms (default 500)
  -h, --help         show this text";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut o = Options::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        if flag == "--fail-init" && inline.is_none() {
            o.fail_init = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--slice-us" => o.slice = Duration::from_micros(positive(&flag, &value()?)?),
            "--stall-after" => o.stall_after = Some(seconds(&flag, &value()?)?),
            "--timeout-ms" => {
                let ms = positive(&flag, &value()?)?;
                if ms > 30_000 {
                    return Err(format!("{flag} {ms}: sched_ext allows at most 30000"));
                }
                o.timeout = Duration::from_millis(ms);
            }
            "--stats-ms" => o.stats_interval = Duration::from_millis(positive(&flag, &value()?)?),
            _ => return Err(format!("unknown option {arg:?} (see --help)")),
        }
    }
    Ok(Command::Run(o))
}

fn positive(flag: &str, v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} {v:?}: expected a positive integer")),
    }
}

fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} {v:?}: expected seconds, e.g. 1 or 0.5"))
}

/// The name of a sched_ext exit kind (`enum scx_exit_kind`).
pub fn exit_kind_name(kind: i64) -> String {
    match kind {
        0 => "none".into(),
        1 => "done".into(),
        64 => "unreg".into(),
        65 => "unreg_bpf".into(),
        66 => "unreg_kern".into(),
        67 => "sysrq".into(),
        1024 => "error".into(),
        1025 => "error_bpf".into(),
        1026 => "error_stall".into(),
        k => format!("kind_{k}"),
    }
}

/// Whether an exit kind is an error (the kernel ejected the scheduler).
pub fn is_error_kind(kind: i64) -> bool {
    kind >= 1024
}

/// A `counters` line from values in [`COUNTERS`] order.
pub fn counters_line(values: &[u64]) -> String {
    let mut line = format!("{PREFIX}counters");
    for (name, v) in COUNTERS.iter().zip(values) {
        let _ = write!(line, " {name}={v}");
    }
    line
}

/// The `exit` line, then one `dump` line per non-empty dump line.
pub fn exit_lines(kind: i64, code: i64, reason: &str, msg: &str, dump: &str) -> Vec<String> {
    let mut text = reason.to_string();
    if !msg.is_empty() {
        let _ = write!(text, ": {msg}");
    }
    let mut lines = vec![format!(
        "{PREFIX}exit kind={} code={code} reason={}",
        exit_kind_name(kind),
        one_line(&text)
    )];
    lines.extend(
        dump.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{PREFIX}dump {l}")),
    );
    lines
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A NUL-terminated C string from a fixed buffer, lossily as UTF-8.
pub fn c_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options() {
        let Command::Run(o) =
            parse_args(args("--slice-us 5000 --stall-after 1.5 --timeout-ms=3000")).unwrap()
        else {
            panic!("not a run");
        };
        assert_eq!(o.slice, Duration::from_millis(5));
        assert_eq!(o.stall_after, Some(Duration::from_millis(1500)));
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert!(!o.fail_init);
        let Command::Run(f) = parse_args(args("--fail-init --stats-ms 100")).unwrap() else {
            panic!("not a run");
        };
        assert!(f.fail_init);
        assert_eq!(f.stats_interval, Duration::from_millis(100));
        assert_eq!(o.stats_interval, Options::default().stats_interval);
        assert_eq!(
            parse_args(args("")).unwrap(),
            Command::Run(Options::default())
        );
        assert_eq!(parse_args(args("-h")).unwrap(), Command::Help);
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            "--slice-us 0",
            "--slice-us",
            "--stall-after -1",
            "--stall-after x",
            "--timeout-ms 40000",
            "--frobnicate",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn formats_protocol_lines() {
        assert_eq!(
            counters_line(&[1, 2, 3, 4]),
            "schedtape: counters enqueued=1 dispatched=2 direct=3 fallbacks=4"
        );
        let lines = exit_lines(1026, 0, "runnable task stall", "a\nb", "x\n\ny\n");
        assert_eq!(
            lines,
            [
                "schedtape: exit kind=error_stall code=0 reason=runnable task stall: a b",
                "schedtape: dump x",
                "schedtape: dump y",
            ]
        );
        assert!(is_error_kind(1026) && !is_error_kind(64));
        assert_eq!(c_text(b"abc\0def"), "abc");
    }
}
