//! Intel MultiProcessor Specification 1.4 tables: the floating pointer and a
//! configuration table listing each vCPU's APIC ID, the ISA bus and one IOAPIC.
use super::layout::{IOAPIC_ADDR, LAPIC_ADDR};

/// Why the MP table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    /// MP tables hold 8-bit APIC IDs; 0xff is the broadcast ID.
    #[error("APIC ID {0} does not fit an MP table (max 254)")]
    ApicIdTooLarge(u32),
    /// No CPUs.
    #[error("an MP table needs at least one CPU")]
    NoCpus,
}

const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// ISA IRQs routed through the IOAPIC.
const ISA_IRQS: u8 = 16;

/// The byte that makes `bytes` sum to zero (MP and ACPI tables).
pub(super) fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// The MP floating pointer followed by the configuration table, for placement
/// at `addr`; `apic_ids[0]` is the boot CPU.
pub fn mptable(addr: u32, apic_ids: &[u32]) -> Result<Vec<u8>, MpTableError> {
    if apic_ids.is_empty() {
        return Err(MpTableError::NoCpus);
    }
    let ids: Vec<u8> = apic_ids
        .iter()
        .map(|&id| {
            u8::try_from(id)
                .ok()
                .filter(|&i| i < 0xff)
                .ok_or(MpTableError::ApicIdTooLarge(id))
        })
        .collect::<Result<_, _>>()?;
    let ioapic_id = ids.iter().max().copied().unwrap_or(0).checked_add(1);
    let ioapic_id = ioapic_id
        .filter(|&i| i < 0xff)
        .ok_or(MpTableError::ApicIdTooLarge(0xff))?;

    let mut entries = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let flags = if i == 0 { 0x3 } else { 0x1 }; // enabled, boot processor
        entries.extend_from_slice(&[0, id, LAPIC_VERSION, flags]);
        entries.extend_from_slice(&0x600u32.to_le_bytes()); // signature: family 6
        entries.extend_from_slice(&0x201u32.to_le_bytes()); // features: FPU, APIC
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[1, 0]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    for irq in 0..ISA_IRQS {
        // I/O interrupt: INT, conforming polarity/trigger, ISA bus IRQ -> IOAPIC pin.
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
    }
    // Local interrupts: LINT0 ExtINT and LINT1 NMI on every local APIC.
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    let entry_count = ids.len() + 1 + 1 + usize::from(ISA_IRQS) + 2;

    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    let len = u16::try_from(44 + entries.len()).map_err(|_| MpTableError::ApicIdTooLarge(0xff))?;
    table.extend_from_slice(&len.to_le_bytes());
    table.push(4); // spec revision 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"SCHEDTAP");
    table.extend_from_slice(b"KVM VMM     ");
    table.extend_from_slice(&[0; 4]); // OEM table pointer
    table.extend_from_slice(&[0; 2]); // OEM table size
    let count = u16::try_from(entry_count).map_err(|_| MpTableError::ApicIdTooLarge(0xff))?;
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    table.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16 + table.len());
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(addr + 16).to_le_bytes());
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    fp[10] = checksum(&fp[..16]);
    fp.extend_from_slice(&table);
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn tables_checksum_and_list_every_cpu() {
        let ids = [0, 1, 2, 3, 4, 5, 8, 9];
        let t = mptable(0x9fc00, &ids).unwrap();
        assert_eq!(&t[..4], b"_MP_");
        assert_eq!(u32::from_le_bytes(t[4..8].try_into().unwrap()), 0x9fc10);
        assert_eq!(sum(&t[..16]), 0);
        let cfg = &t[16..];
        assert_eq!(&cfg[..4], b"PCMP");
        let len = usize::from(u16::from_le_bytes([cfg[4], cfg[5]]));
        assert_eq!(len, cfg.len());
        assert_eq!(sum(cfg), 0);
        assert_eq!(u16::from_le_bytes([cfg[34], cfg[35]]), 8 + 1 + 1 + 16 + 2);
        assert_eq!(
            u32::from_le_bytes(cfg[36..40].try_into().unwrap()),
            0xfee0_0000
        );
        for (i, id) in ids.iter().enumerate() {
            let p = &cfg[44 + 20 * i..];
            assert_eq!(p[0], 0);
            assert_eq!(u32::from(p[1]), *id);
            assert_eq!(p[3], if i == 0 { 3 } else { 1 });
        }
        let bus = &cfg[44 + 160..];
        assert_eq!(&bus[..8], b"\x01\x00ISA   ");
        let ioapic = &bus[8..];
        assert_eq!(&ioapic[..4], &[2, 10, 0x11, 1]);
        assert_eq!(
            u32::from_le_bytes(ioapic[4..8].try_into().unwrap()),
            0xfec0_0000
        );
        let irq4 = &ioapic[8 + 4 * 8..];
        assert_eq!(irq4[..8], [3, 0, 0, 0, 0, 4, 10, 4]);
    }

    #[test]
    fn rejects_unrepresentable_ids() {
        assert!(mptable(0, &[]).is_err());
        assert!(mptable(0, &[0, 255]).is_err());
    }
}
