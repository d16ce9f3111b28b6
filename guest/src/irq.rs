//! Finding an IRQ by its `/proc/interrupts` label.
//!
//! A row is `<id>: <count per CPU…> <chip> <hwirq-type> <action names>`; the
//! label matches one of the words after the counts (names of a shared IRQ are
//! comma-separated). Only numbered rows can be steered.

use alloc::vec::Vec;

/// Why a label names no single steerable IRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No row carries the label.
    NotFound,
    /// Several numbered rows carry it.
    Ambiguous(Vec<u32>),
    /// Only an unnumbered row (e.g. `LOC`, `NMI`) matches; it has no affinity file.
    NotNumbered,
}

/// The IRQ number whose row in `text` (`/proc/interrupts`) carries `label`.
pub fn find(text: &[u8], label: &str) -> Result<u32, Lookup> {
    let label = label.as_bytes();
    let mut hits = Vec::new();
    let mut unnumbered = false;
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let id = trim(&line[..colon]);
        let mut words = line[colon + 1..]
            .split(|&b| b.is_ascii_whitespace() || b == b',')
            .filter(|w| !w.is_empty())
            .skip_while(|w| w.iter().all(u8::is_ascii_digit));
        let matches = id == label || words.any(|w| w == label);
        if !matches {
            continue;
        }
        match crate::procfs::number(id).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => hits.push(n),
            None => unnumbered = true,
        }
    }
    match hits.as_slice() {
        [n] => Ok(*n),
        [] if unnumbered => Err(Lookup::NotNumbered),
        [] => Err(Lookup::NotFound),
        _ => Err(Lookup::Ambiguous(hits)),
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"           CPU0       CPU1       \n  0:         49          0   IO-APIC   2-edge      timer\n  4:        310         12   IO-APIC   4-edge      ttyS0\n  9:          0          0   IO-APIC   9-fasteoi   acpi, virtio0\n 24:          0          0   PCI-MSI 1-edge      virtio0-config\nNMI:          0          0   Non-maskable interrupts\nLOC:       2145       1986   Local timer interrupts\n";

    #[test]
    fn finds_labels_and_numbers() {
        assert_eq!(find(TEXT, "ttyS0"), Ok(4));
        assert_eq!(find(TEXT, "timer"), Ok(0));
        assert_eq!(find(TEXT, "acpi"), Ok(9));
        assert_eq!(find(TEXT, "virtio0"), Ok(9));
        assert_eq!(find(TEXT, "virtio0-config"), Ok(24));
        assert_eq!(find(TEXT, "24"), Ok(24));
    }

    #[test]
    fn explains_misses() {
        assert_eq!(find(TEXT, "eth0"), Err(Lookup::NotFound));
        assert_eq!(find(TEXT, "LOC"), Err(Lookup::NotNumbered));
        assert_eq!(
            find(TEXT, "IO-APIC"),
            Err(Lookup::Ambiguous(alloc::vec![0, 4, 9]))
        );
        // Counts never match as labels.
        assert_eq!(find(TEXT, "310"), Err(Lookup::NotFound));
    }
}
