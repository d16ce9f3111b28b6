//! Port-mapped devices: two 16550 UARTs, the i8042 reset line, the boot-timer
//! port and a report port for test guests.
pub mod serial;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serial::{COM1, COM2, Serial};

/// i8042 data port.
pub const I8042_DATA: u16 = 0x60;
/// i8042 command/status port; writing 0xfe pulses the CPU reset line.
pub const I8042_COMMAND: u16 = 0x64;
/// Boot-timer port: the guest writes a marker byte; the host logs the time since start.
pub const BOOT_TIMER_PORT: u16 = 0x440;
/// Report port: 32-bit writes are logged per vCPU (test guests report CPUID here).
pub const REPORT_PORT: u16 = 0x444;

/// What a port write asks of the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAction {
    None,
    /// The guest pulsed the reset line through the i8042.
    Reset,
}

/// Every port device of one VM, behind one lock.
#[derive(Debug)]
pub struct Devices {
    pub com1: Serial,
    pub com2: Serial,
    start: Instant,
    /// Boot-timer markers with their time since VMM start.
    pub boot_marks: Vec<(u8, Duration)>,
    /// Report-port words by logical CPU index.
    pub reports: BTreeMap<u32, Vec<u32>>,
}

impl Devices {
    pub fn new(start: Instant, com1: Serial, com2: Serial) -> Self {
        Devices {
            com1,
            com2,
            start,
            boot_marks: Vec::new(),
            reports: BTreeMap::new(),
        }
    }

    /// A guest `out` to `port` from logical CPU `cpu`.
    pub fn io_out(&mut self, cpu: u32, port: u16, data: &[u8]) -> PortAction {
        let byte = data.first().copied().unwrap_or(0);
        match port {
            p if (COM1..COM1 + 8).contains(&p) => self.com1.write(p - COM1, byte),
            p if (COM2..COM2 + 8).contains(&p) => self.com2.write(p - COM2, byte),
            I8042_COMMAND if byte == 0xfe => return PortAction::Reset,
            BOOT_TIMER_PORT => self.boot_marks.push((byte, self.start.elapsed())),
            REPORT_PORT if data.len() == 4 => {
                let word = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.reports.entry(cpu).or_default().push(word);
            }
            _ => {}
        }
        PortAction::None
    }

    /// A guest `in` from `port`; unknown ports read as all ones.
    pub fn io_in(&mut self, port: u16, data: &mut [u8]) {
        let value = match port {
            p if (COM1..COM1 + 8).contains(&p) => self.com1.read(p - COM1),
            p if (COM2..COM2 + 8).contains(&p) => self.com2.read(p - COM2),
            I8042_COMMAND | I8042_DATA => 0,
            _ => 0xff,
        };
        data.fill(0xff);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_route_to_devices() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        assert_eq!(d.io_out(0, COM1, b"x"), PortAction::None);
        assert_eq!(d.io_out(1, COM2, b"y"), PortAction::None);
        assert_eq!(d.io_out(0, I8042_COMMAND, &[0xfe]), PortAction::Reset);
        d.io_out(3, REPORT_PORT, &7u32.to_le_bytes());
        d.io_out(0, BOOT_TIMER_PORT, &[1]);
        assert_eq!(
            (d.com1.output.as_slice(), d.com2.output.as_slice()),
            (&b"x"[..], &b"y"[..])
        );
        assert_eq!(d.reports[&3], vec![7]);
        assert_eq!(d.boot_marks[0].0, 1);
        let mut b = [0u8; 1];
        d.io_in(I8042_COMMAND, &mut b);
        assert_eq!(b, [0]);
        d.io_in(0x1234, &mut b);
        assert_eq!(b, [0xff]);
    }
}
