//! Small formatting helpers shared by the renderers.
use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets};

/// Seconds with millisecond precision, e.g. `12.345s`.
pub fn secs(ns: u64) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
}

/// A duration in the most readable unit: `850ns`, `12.3µs`, `4.56ms`, `1.234s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

/// An errno from the guest, e.g. `EAGAIN (Resource temporarily unavailable, errno 11)`.
pub fn errno(n: u32) -> String {
    let name = match n {
        1 => "EPERM",
        4 => "EINTR",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        22 => "EINVAL",
        _ => "errno",
    };
    let text = i32::try_from(n).map_or_else(
        |_| "unknown".to_string(),
        |n| {
            let s = std::io::Error::from_raw_os_error(n).to_string();
            s.split(" (os error").next().unwrap_or_default().to_string()
        },
    );
    format!("{name} ({text}, errno {n})")
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A float with a sensible number of significant digits, or `-` when absent.
pub fn number(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if !v.is_finite() => v.to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// Whether and how to colour table rows: green better, red worse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paint {
    pub enabled: bool,
}

impl Paint {
    /// Colour for `choice`: `auto` colours only a terminal without `NO_COLOR`.
    pub fn for_stdout(choice: crate::args::ColorChoice) -> Self {
        use crate::args::ColorChoice;
        use std::io::IsTerminal;
        let enabled = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Paint { enabled }
    }

    /// `line` wrapped in the colour of `call`, when enabled.
    pub fn line(&self, line: &str, call: Option<crate::compare::Call>) -> String {
        use crate::compare::Call;
        let code = match call {
            Some(Call::Better) => "32",
            Some(Call::Worse) => "31",
            Some(Call::Inconclusive) => "33",
            _ => return line.to_string(),
        };
        if self.enabled {
            format!("\x1b[{code}m{line}\x1b[0m")
        } else {
            line.to_string()
        }
    }
}

/// A table with the house style: no borders, aligned columns.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(secs(12_345_678_901), "12.345s");
        assert_eq!(duration(999), "999ns");
        assert_eq!(duration(12_345), "12.3µs");
        assert_eq!(duration(4_560_000), "4.56ms");
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
        assert_eq!(number(None), "-");
        assert_eq!(number(Some(1234.5)), "1234");
        assert_eq!(number(Some(0.5)), "0.500");
    }
}
