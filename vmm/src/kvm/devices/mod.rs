//! Port-mapped devices: two 16550 UARTs, the i8042 reset line, the boot-timer
//! port, a report port for test guests, the ring doorbell, the ACPI PM1
//! registers, an empty PCI bus, and the queue of hardware watchpoint hits.
pub mod bell;
pub mod doorbell;
pub mod pm1;
pub mod serial;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bell::HostBell;
use pm1::Pm1;
use serial::{COM1, COM2, Serial};

/// i8042 data port.
pub const I8042_DATA: u16 = 0x60;
/// i8042 command/status port; writing 0xfe pulses the CPU reset line.
pub const I8042_COMMAND: u16 = 0x64;
/// Boot-timer port: the guest writes a marker byte; the host logs the time since start.
pub const BOOT_TIMER_PORT: u16 = 0x440;
/// Report port: 32-bit writes are logged per vCPU (test guests report CPUID here).
pub const REPORT_PORT: u16 = 0x444;
/// Ring doorbell: a guest write of any width and value tells the host that
/// records are waiting. Served in the kernel by an ioeventfd
/// ([`doorbell::Doorbell`]); writes that still exit (registration failed) are
/// counted and otherwise ignored, and the host polls.
pub const DOORBELL_PORT: u16 = 0x448;

/// ACPI PM1a event block (status, enable: 2 bytes each), as the FADT says.
pub const PM1A_EVT_BLK: u16 = 0x600;
/// ACPI PM1a control block (2 bytes).
pub const PM1A_CNT_BLK: u16 = 0x604;
/// PCI configuration mechanism #1 address register (32-bit). It holds what
/// is written, and the data ports after it read all ones: a PCI bus with no
/// device, so that Linux (told `pci=conf1` by the builder) has a config space
/// access method instead of logging "PCI: Fatal: No config space access
/// function found".
pub const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
/// Bits of [`PCI_CONFIG_ADDRESS`] that hold: enable, bus, device, function,
/// dword register (bits 30–24 and 1–0 are reserved, read as zero).
const PCI_ADDRESS_KEPT: u32 = 0x80ff_fffc;

/// Hits kept before the oldest are dropped (the owner polls them).
const MAX_PENDING_HITS: usize = 4096;
/// Boot-timer markers and report words kept per run (per CPU for reports):
/// the recorder never reads them, so a guest writing these ports in a loop
/// must not grow them without bound.
const MAX_LOGGED: usize = 4096;

/// What a port write asks of the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAction {
    None,
    /// The guest pulsed the reset line through the i8042.
    Reset,
    /// The guest wrote this boot-timer marker and the VM stops at the first one.
    Stop(u8),
}

/// A guest write caught by a hardware watchpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchHit {
    /// The watch, as returned when it was set.
    pub id: u32,
    /// Logical CPU that wrote.
    pub cpu: u32,
    /// Guest RIP after the writing instruction.
    pub rip: u64,
    /// Time since the VMM started.
    pub at: Duration,
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
    /// Stop the VM at the first boot-timer marker (start-up benchmarks).
    pub stop_at_boot_mark: bool,
    /// Watch id loaded in each debug register (DR0–DR3).
    pub watch_ids: [Option<u32>; 4],
    /// Hits not yet polled, oldest first.
    pub watch_hits: std::collections::VecDeque<WatchHit>,
    /// Hits dropped because nobody polled.
    pub watch_hits_dropped: u64,
    /// Doorbell writes that exited to userspace (none while the ioeventfd is registered).
    pub doorbell_exits: u64,
    /// The ACPI PM1a status, enable and control registers.
    pub pm1: Pm1,
    /// The PCI config address latch ([`PCI_CONFIG_ADDRESS`]).
    pub pci_address: u32,
    /// Rung at each complete COM1 line and each watchpoint hit.
    pub bell: Option<HostBell>,
}

impl Devices {
    pub fn new(start: Instant, com1: Serial, com2: Serial) -> Self {
        Devices {
            com1,
            com2,
            start,
            boot_marks: Vec::new(),
            reports: BTreeMap::new(),
            stop_at_boot_mark: false,
            watch_ids: [None; 4],
            watch_hits: std::collections::VecDeque::new(),
            watch_hits_dropped: 0,
            doorbell_exits: 0,
            pm1: Pm1::default(),
            pci_address: 0,
            bell: None,
        }
    }

    /// A `KVM_EXIT_DEBUG` on `cpu`: queues a hit per triggered watchpoint.
    /// False when it was not a watchpoint of ours (exception other than #DB,
    /// or no DR6 bit of a loaded register).
    pub fn watch_hit(&mut self, cpu: u32, exception: u32, dr6: u64, rip: u64) -> bool {
        const DB_VECTOR: u32 = 1;
        if exception != DB_VECTOR {
            return false;
        }
        let at = self.start.elapsed();
        let mut any = false;
        for (i, id) in self.watch_ids.iter().enumerate() {
            if dr6 & (1 << i) == 0 {
                continue;
            }
            let Some(id) = *id else { continue };
            any = true;
            if self.watch_hits.len() == MAX_PENDING_HITS {
                self.watch_hits.pop_front();
                self.watch_hits_dropped += 1;
            }
            self.watch_hits.push_back(WatchHit { id, cpu, rip, at });
        }
        if any {
            self.ring();
        }
        any
    }

    /// A guest `out` to `port` from logical CPU `cpu`.
    pub fn io_out(&mut self, cpu: u32, port: u16, data: &[u8]) -> PortAction {
        let byte = data.first().copied().unwrap_or(0);
        match port {
            p if (COM1..COM1 + 8).contains(&p) => {
                let before = self.com1.output.len();
                self.com1.write(p - COM1, byte);
                if byte == b'\n' && self.com1.output.len() > before {
                    self.ring();
                }
            }
            p if (COM2..COM2 + 8).contains(&p) => self.com2.write(p - COM2, byte),
            I8042_COMMAND if byte == 0xfe => return PortAction::Reset,
            BOOT_TIMER_PORT => {
                if self.boot_marks.len() < MAX_LOGGED {
                    self.boot_marks.push((byte, self.start.elapsed()));
                }
                if self.stop_at_boot_mark {
                    return PortAction::Stop(byte);
                }
            }
            REPORT_PORT if data.len() == 4 => {
                let word = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let words = self.reports.entry(cpu).or_default();
                if words.len() < MAX_LOGGED {
                    words.push(word);
                }
            }
            DOORBELL_PORT => self.doorbell_exits += 1,
            p if (PM1A_EVT_BLK..PM1A_EVT_BLK + pm1::LEN).contains(&p) => {
                self.pm1.write(p - PM1A_EVT_BLK, data);
            }
            PCI_CONFIG_ADDRESS if data.len() == 4 => {
                let word = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.pci_address = word & PCI_ADDRESS_KEPT;
            }
            _ => {}
        }
        PortAction::None
    }

    fn ring(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }

    /// A guest `in` from `port`; unknown ports read as all ones.
    pub fn io_in(&mut self, port: u16, data: &mut [u8]) {
        if (PM1A_EVT_BLK..PM1A_EVT_BLK + pm1::LEN).contains(&port) {
            self.pm1.read(port - PM1A_EVT_BLK, data);
            return;
        }
        if port == PCI_CONFIG_ADDRESS && data.len() == 4 {
            data.copy_from_slice(&self.pci_address.to_le_bytes());
            return;
        }
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
    fn the_host_bell_rings_at_each_complete_console_line_and_watch_hit() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        let bell = HostBell::new().unwrap();
        d.bell = Some(bell.try_clone().unwrap());
        d.io_out(0, COM1, b"a");
        d.io_out(0, COM2, b"\n");
        assert!(!bell.drain(), "no line on COM1 yet");
        d.io_out(0, COM1, b"\n");
        assert!(bell.drain());
        // A newline written as the divisor latch is no output.
        d.io_out(0, COM1 + 3, &[0x80]);
        d.io_out(0, COM1, b"\n");
        assert!(!bell.drain());
        d.io_out(0, COM1 + 3, &[0x03]);
        d.watch_ids[0] = Some(7);
        assert!(d.watch_hit(0, 1, 0b1, 0x1000));
        assert!(bell.drain());
    }

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
        assert_eq!(d.io_out(1, DOORBELL_PORT, &[1]), PortAction::None);
        assert_eq!(
            d.io_out(0, DOORBELL_PORT, &1u32.to_le_bytes()),
            PortAction::None
        );
        assert_eq!(d.doorbell_exits, 2);
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
        let mut w = [0xaau8; 2];
        d.io_in(PM1A_CNT_BLK, &mut w);
        assert_eq!(w, [1, 0]);
        d.io_in(PM1A_EVT_BLK, &mut w);
        assert_eq!(w, [0, 0]);
    }

    #[test]
    fn pm1_ports_keep_what_the_guest_writes() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        // ACPICA enabling the global-lock event: GBL_EN (bit 5) at PM1_EN.
        d.io_out(0, PM1A_EVT_BLK + 2, &0x20u16.to_le_bytes());
        let mut w = [0u8; 2];
        d.io_in(PM1A_EVT_BLK + 2, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x20);
        // SLP_TYP is kept, SCI_EN stays set.
        d.io_out(0, PM1A_CNT_BLK, &(0b11u16 << 10).to_le_bytes());
        d.io_in(PM1A_CNT_BLK, &mut w);
        assert_eq!(u16::from_le_bytes(w), (0b11 << 10) | pm1::SCI_EN);
    }

    #[test]
    fn pci_config_address_latches_and_the_bus_is_empty() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        // Linux's pci_check_type1: a byte to 0xcfb, then the dword latch.
        d.io_out(0, 0xcfb, &[1]);
        d.io_out(0, PCI_CONFIG_ADDRESS, &0x8000_0000u32.to_le_bytes());
        let mut dw = [0u8; 4];
        d.io_in(PCI_CONFIG_ADDRESS, &mut dw);
        assert_eq!(u32::from_le_bytes(dw), 0x8000_0000);
        d.io_out(0, PCI_CONFIG_ADDRESS, &0xffff_ffffu32.to_le_bytes());
        d.io_in(PCI_CONFIG_ADDRESS, &mut dw);
        assert_eq!(u32::from_le_bytes(dw), 0x80ff_fffc);
        // No device: vendor ID reads all ones.
        d.io_in(0xcfc, &mut dw);
        assert_eq!(dw, [0xff; 4]);
    }

    #[test]
    fn boot_mark_stops_when_asked() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        assert_eq!(d.io_out(0, BOOT_TIMER_PORT, &[1]), PortAction::None);
        d.stop_at_boot_mark = true;
        assert_eq!(d.io_out(0, BOOT_TIMER_PORT, &[2]), PortAction::Stop(2));
    }

    #[test]
    fn watch_hits_map_dr6_bits_to_ids() {
        let mut d = Devices::new(
            Instant::now(),
            Serial::new(Box::new(|| {})),
            Serial::new(Box::new(|| {})),
        );
        d.watch_ids = [Some(7), None, Some(9), None];
        assert!(!d.watch_hit(0, 3, 1, 0x10), "#BP is not a watch hit");
        assert!(!d.watch_hit(0, 1, 0b10, 0x10), "DR1 is not loaded");
        assert!(d.watch_hit(2, 1, 0b101 | 0x4000, 0x20));
        let ids: Vec<(u32, u32)> = d.watch_hits.iter().map(|h| (h.id, h.cpu)).collect();
        assert_eq!(ids, vec![(7, 2), (9, 2)]);
    }
}
