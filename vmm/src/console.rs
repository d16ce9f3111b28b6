//! The guest console: line splitting with a length cap, a bounded tail for
//! reports, and crash detection.
use std::collections::VecDeque;

use trace_format::record::printable;

/// Longest console line kept whole; longer output is split, so a guest that
/// never prints a newline cannot grow a line (or the host's memory) unbounded.
pub const MAX_LINE: usize = 4096;

/// Takes the next line out of `buf`: up to a newline, or [`MAX_LINE`] bytes of
/// a longer one; `None` while the line is still incomplete.
pub fn split_line(buf: &mut Vec<u8>) -> Option<String> {
    let end = match buf.iter().take(MAX_LINE).position(|&b| b == b'\n') {
        Some(nl) => nl + 1,
        None if buf.len() >= MAX_LINE => MAX_LINE,
        None => return None,
    };
    let line: Vec<u8> = buf.drain(..end).collect();
    Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    )
}

/// How a console line changes the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleSignal {
    /// The kernel panicked; the message is the panic line.
    Panic(String),
}

/// The last lines of console output.
#[derive(Debug)]
pub struct ConsoleTail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl ConsoleTail {
    /// Keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        ConsoleTail {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Stores a line (escaped for a terminal) and reports whether it signals a crash.
    pub fn push(&mut self, line: &str) -> Option<ConsoleSignal> {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(printable(line).into_owned());
        classify(line)
    }

    /// The stored lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// The stored lines joined with newlines.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Recognises the kernel's panic line: it starts with "Kernel panic - not
/// syncing" after printk's bracketed prefixes (time, caller), so a guest
/// program that prints those words does not end the run as a panic.
pub fn classify(line: &str) -> Option<ConsoleSignal> {
    let mut rest = line.trim_start();
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else { break };
        rest = inner[close + 1..].trim_start();
    }
    rest.starts_with("Kernel panic - not syncing")
        .then(|| ConsoleSignal::Panic(rest.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_spots_panics() {
        let mut tail = ConsoleTail::new(3);
        for i in 0..5 {
            assert_eq!(tail.push(&format!("line {i}")), None);
        }
        assert_eq!(
            tail.lines().collect::<Vec<_>>(),
            ["line 2", "line 3", "line 4"]
        );
        let signal = tail.push("[    1.234] Kernel panic - not syncing: Attempted to kill init!");
        assert_eq!(
            signal,
            Some(ConsoleSignal::Panic(
                "Kernel panic - not syncing: Attempted to kill init!".into()
            ))
        );
        assert!(tail.text().ends_with("kill init!"));
        assert_eq!(
            classify("Kernel panic - not syncing: VFS"),
            Some(ConsoleSignal::Panic(
                "Kernel panic - not syncing: VFS".into()
            ))
        );
        assert_eq!(
            classify("schedtape-init: sh: Kernel panic - not syncing: x"),
            None
        );
        tail.push("colour \u{1b}[31mred");
        assert!(
            tail.text().ends_with("colour \\u{1b}[31mred"),
            "{}",
            tail.text()
        );
    }

    #[test]
    fn lines_split_at_newlines_and_at_the_cap() {
        let mut buf = b"one\r\ntwo\npart".to_vec();
        assert_eq!(split_line(&mut buf).as_deref(), Some("one"));
        assert_eq!(split_line(&mut buf).as_deref(), Some("two"));
        assert_eq!(split_line(&mut buf), None);
        assert_eq!(buf, b"part");
        let mut long = vec![b'x'; MAX_LINE * 2 + 3];
        assert_eq!(split_line(&mut long).map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(split_line(&mut long).map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(split_line(&mut long), None);
        assert_eq!(long.len(), 3);
    }
}
