//! The guest console: a bounded tail for reports, and crash detection.
use std::collections::VecDeque;

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

    /// Stores a line and reports whether it signals a crash.
    pub fn push(&mut self, line: &str) -> Option<ConsoleSignal> {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
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

/// Recognises the kernel's panic line.
pub fn classify(line: &str) -> Option<ConsoleSignal> {
    let at = line.find("Kernel panic - not syncing")?;
    Some(ConsoleSignal::Panic(line[at..].trim_end().to_string()))
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
    }
}
