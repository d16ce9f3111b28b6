//! The ACPI PM1a event and control registers the FADT points at
//! ([`super::PM1A_EVT_BLK`], [`super::PM1A_CNT_BLK`]), 16 bits each:
//! status, enable, control. There is no SMM (the FADT's SMI_CMD is 0), so
//! the platform is always in ACPI mode: SCI_EN reads 1 whatever is written
//! (the spec makes it hardware-owned; OSPM preserves it). Status bits are
//! write-1-to-clear and the VMM raises none. Enable bits keep what the guest
//! writes: ACPICA enables the global-lock event (GBL_EN) and reads it back,
//! logging "Could not enable GlobalLock event" when it does not stick.
//! Control keeps BM_RLD and SLP_TYP; GBL_RLS and SLP_EN are write-only.

/// PM1 control: SCI_EN, "events raise an SCI" (ACPI mode).
pub const SCI_EN: u16 = 1 << 0;
/// PM1 control bits that hold what is written: BM_RLD and SLP_TYPx.
const CNT_KEPT: u16 = (1 << 1) | (0b111 << 10);
/// Bytes of the block: status, enable (the event block), then control.
pub const LEN: u16 = 6;

/// The PM1a register block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pm1 {
    status: u16,
    enable: u16,
    control: u16,
}

impl Default for Pm1 {
    fn default() -> Self {
        Pm1 {
            status: 0,
            enable: 0,
            control: SCI_EN,
        }
    }
}

impl Pm1 {
    /// PM1 status, enable and control as the guest reads them.
    pub fn registers(&self) -> [u16; 3] {
        [self.status, self.enable, self.control | SCI_EN]
    }

    /// A read of `data.len()` bytes at `offset` into the block (any width;
    /// bytes past the block read as all ones).
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        let regs = self.registers();
        for (i, b) in data.iter_mut().enumerate() {
            *b = match byte_at(offset, i) {
                Some(at) => regs[usize::from(at / 2)].to_le_bytes()[usize::from(at % 2)],
                None => 0xff,
            };
        }
    }

    /// A write of `data` at `offset` into the block, byte by byte.
    pub fn write(&mut self, offset: u16, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let Some(at) = byte_at(offset, i) else {
                continue;
            };
            let shift = 8 * (at % 2);
            let bits = u16::from(b) << shift;
            let lane = 0xffu16 << shift;
            match at / 2 {
                0 => self.status &= !bits,
                1 => self.enable = (self.enable & !lane) | bits,
                _ => self.control = (self.control & !(lane & CNT_KEPT)) | (bits & CNT_KEPT),
            }
        }
    }
}

/// The block byte the `i`th byte of an access at `offset` touches.
fn byte_at(offset: u16, i: usize) -> Option<u16> {
    let at = offset.checked_add(u16::try_from(i).ok()?)?;
    (at < LEN).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GBL_EN: u16 = 1 << 5;

    #[test]
    fn enable_keeps_what_is_written_at_every_width() {
        let mut p = Pm1::default();
        p.write(2, &GBL_EN.to_le_bytes());
        let mut w = [0u8; 2];
        p.read(2, &mut w);
        assert_eq!(u16::from_le_bytes(w), GBL_EN, "GBL_EN sticks");
        // The high byte alone, then a dword read of status and enable.
        p.write(3, &[0x01]);
        let mut d = [0u8; 4];
        p.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::from(GBL_EN | 0x100) << 16);
        p.write(2, &[0, 0]);
        assert_eq!(p.registers()[1], 0);
    }

    #[test]
    fn sci_en_always_reads_set_and_write_only_bits_read_zero() {
        let mut p = Pm1::default();
        let mut w = [0u8; 2];
        p.read(4, &mut w);
        assert_eq!(u16::from_le_bytes(w), SCI_EN);
        // Clearing SCI_EN does not leave ACPI mode; GBL_RLS (2) and SLP_EN (13)
        // are not kept; BM_RLD (1) and SLP_TYP (10..12) are.
        let written: u16 = (1 << 1) | (1 << 2) | (0b101 << 10) | (1 << 13);
        p.write(4, &written.to_le_bytes());
        p.read(4, &mut w);
        assert_eq!(u16::from_le_bytes(w), SCI_EN | (1 << 1) | (0b101 << 10));
    }

    #[test]
    fn status_is_write_one_to_clear_and_stays_clear() {
        let mut p = Pm1::default();
        p.write(0, &[0xff, 0xff]);
        assert_eq!(p.registers()[0], 0);
        // An access straddling the end: the control high byte keeps SLP_TYP
        // (0x1c); the byte past the block is ignored and reads all ones.
        p.write(5, &[0xff, 0xff]);
        let mut w = [0u8; 2];
        p.read(5, &mut w);
        assert_eq!(w, [0x1c, 0xff]);
    }
}
