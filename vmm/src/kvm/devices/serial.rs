//! A 16550A UART with instant transmit: enough for Linux's 8250 driver (polled
//! console and THRE interrupts) and for tiny guests. No receive path.

/// Base port of COM1.
pub const COM1: u16 = 0x3f8;
/// Base port of COM2.
pub const COM2: u16 = 0x2f8;

const IER_THRI: u8 = 0x02;
const LCR_DLAB: u8 = 0x80;
const MCR_LOOP: u8 = 0x10;
const IIR_NONE: u8 = 0x01;
const IIR_THRI: u8 = 0x02;
const IIR_FIFO: u8 = 0xc0;
const LSR_THRE_TEMT: u8 = 0x60;
const MSR_DCD_DSR_CTS: u8 = 0xb0;

/// The modem status in loopback: the modem outputs drive the inputs
/// (DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD), no deltas.
fn loopback_msr(mcr: u8) -> u8 {
    ((mcr & 0x01) << 5) | ((mcr & 0x02) << 3) | ((mcr & 0x0c) << 4)
}

/// One UART; `irq` pulses its interrupt line.
pub struct Serial {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    divisor: u16,
    thre_pending: bool,
    irq: Box<dyn FnMut() + Send>,
    /// Bytes the guest transmitted, not yet taken (at most [`MAX_OUTPUT`];
    /// COM1's are taken every few milliseconds, COM2's only by tests).
    pub output: Vec<u8>,
}

/// Untaken output kept before further bytes are dropped.
pub const MAX_OUTPUT: usize = 1 << 20;

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serial")
            .field("ier", &self.ier)
            .field("lcr", &self.lcr)
            .field("pending_output", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl Serial {
    pub fn new(irq: Box<dyn FnMut() + Send>) -> Self {
        Serial {
            ier: 0,
            lcr: 0x03,
            mcr: 0x08,
            scr: 0,
            fcr: 0,
            divisor: 12,
            thre_pending: false,
            irq,
            output: Vec::new(),
        }
    }

    fn raise_thre(&mut self) {
        self.thre_pending = true;
        if self.ier & IER_THRI != 0 {
            (self.irq)();
        }
    }

    /// A write to register `offset` (0..8).
    pub fn write(&mut self, offset: u16, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            0 => {
                if self.mcr & MCR_LOOP == 0 && self.output.len() < MAX_OUTPUT {
                    self.output.push(value);
                }
                self.raise_thre();
            }
            1 if dlab => self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8),
            1 => {
                let was = self.ier & IER_THRI;
                self.ier = value & 0x0f;
                if was == 0 && self.ier & IER_THRI != 0 {
                    self.raise_thre();
                }
            }
            2 => self.fcr = value,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
    }

    /// A read of register `offset` (0..8).
    pub fn read(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.divisor.to_le_bytes()[0],
            1 if dlab => self.divisor.to_le_bytes()[1],
            0 => 0,
            1 => self.ier,
            2 => {
                let fifo = if self.fcr & 1 != 0 { IIR_FIFO } else { 0 };
                if self.thre_pending && self.ier & IER_THRI != 0 {
                    self.thre_pending = false;
                    fifo | IIR_THRI
                } else {
                    fifo | IIR_NONE
                }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => LSR_THRE_TEMT,
            6 if self.mcr & MCR_LOOP != 0 => loopback_msr(self.mcr),
            6 => MSR_DCD_DSR_CTS,
            7 => self.scr,
            _ => 0xff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn transmits_and_signals_thre() {
        let pulses = Arc::new(AtomicU32::new(0));
        let p = Arc::clone(&pulses);
        let mut s = Serial::new(Box::new(move || {
            p.fetch_add(1, Ordering::Relaxed);
        }));
        s.write(3, LCR_DLAB);
        s.write(0, 1);
        s.write(1, 0);
        s.write(3, 0x03);
        assert_eq!(s.divisor, 1);
        s.write(0, b'h');
        assert_eq!(pulses.load(Ordering::Relaxed), 0);
        assert_eq!(s.read(5), 0x60);
        s.write(1, IER_THRI);
        assert_eq!(pulses.load(Ordering::Relaxed), 1);
        assert_eq!(s.read(2), IIR_THRI);
        assert_eq!(s.read(2), IIR_NONE);
        s.write(0, b'i');
        assert_eq!(pulses.load(Ordering::Relaxed), 2);
        assert_eq!(s.output, b"hi");
    }

    #[test]
    fn loopback_maps_modem_outputs_to_inputs() {
        let mut s = Serial::new(Box::new(|| {}));
        // Linux's 8250 loopback check: RTS|OUT2 must read back as DCD|CTS.
        s.write(4, MCR_LOOP | 0x0a);
        assert_eq!(s.read(6) & 0xf0, 0x90);
        s.write(4, MCR_LOOP | 0x01); // DTR -> DSR
        assert_eq!(s.read(6), 0x20);
        s.write(4, MCR_LOOP | 0x04); // OUT1 -> RI
        assert_eq!(s.read(6), 0x40);
        // Nothing is transmitted in loopback.
        s.write(0, b'x');
        assert!(s.output.is_empty());
        s.write(4, 0x08);
        assert_eq!(s.read(6), MSR_DCD_DSR_CTS);
    }

    #[test]
    fn linux_8250_startup_sees_a_working_thre_interrupt() {
        // serial8250_do_startup's two THRE tests (UART_BUG_THRE, UART_BUG_TXEN)
        // and then a transmit that ends with the driver masking THRI.
        let pulses = Arc::new(AtomicU32::new(0));
        let p = Arc::clone(&pulses);
        let mut s = Serial::new(Box::new(move || {
            p.fetch_add(1, Ordering::Relaxed);
        }));
        s.write(2, 0x01); // FIFO on
        s.write(1, IER_THRI);
        let iir1 = s.read(2);
        s.write(1, 0);
        s.write(1, IER_THRI);
        let iir = s.read(2);
        s.write(1, 0);
        assert_eq!((iir1 & IIR_NONE, iir & IIR_NONE), (0, 0), "THRE reasserts");
        assert_eq!(iir1 & 0x0f, IIR_THRI);
        s.write(1, IER_THRI);
        let lsr = s.read(5);
        let iir = s.read(2);
        s.write(1, 0);
        assert!(lsr & 0x40 != 0 && iir & IIR_NONE == 0, "no TXEN bug");
        assert_eq!(pulses.load(Ordering::Relaxed), 3);
        // uart_start_tx: enable THRI -> interrupt -> IIR says THRE -> write -> again.
        s.write(1, 0x05); // RDI | RLSI ...
        s.write(1, 0x07); // ... | THRI
        assert_eq!(pulses.load(Ordering::Relaxed), 4);
        assert_eq!(s.read(2), IIR_FIFO | IIR_THRI);
        s.write(0, b'a');
        assert_eq!(pulses.load(Ordering::Relaxed), 5);
        assert_eq!(s.read(2), IIR_FIFO | IIR_THRI);
        s.write(1, 0x05); // buffer empty: THRI off
        assert_eq!(s.read(2), IIR_FIFO | IIR_NONE);
        assert_eq!(s.output, b"a");
    }
}
