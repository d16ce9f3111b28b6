//! Guest-physical layout used by the KVM backend (Firecracker-like low memory map).

/// Boot GDT (4 descriptors).
pub const GDT_ADDR: u64 = 0x500;
/// Empty boot IDT, right after the GDT.
pub const IDT_ADDR: u64 = 0x520;
/// PVH `hvm_start_info`.
pub const PVH_INFO_ADDR: u64 = 0x6000;
/// PVH module list (the initramfs), after the start info.
pub const PVH_MODLIST_ADDR: u64 = 0x6040;
/// PVH memory map, after the module list, up to the zero page.
pub const PVH_MEMMAP_ADDR: u64 = 0x6060;
/// Linux boot protocol zero page (`boot_params`).
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Identity page tables: PML4, one PDPT, then four page directories (4 GiB in 2 MiB pages).
pub const PML4_ADDR: u64 = 0x9000;
/// The page-directory-pointer table.
pub const PDPT_ADDR: u64 = 0xa000;
/// First of the four page directories.
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Room for the command line, terminating NUL included.
pub const CMDLINE_MAX: usize = 4096;
/// Start of the EBDA, where the MP table goes (Linux scans this KiB).
pub const EBDA_START: u64 = 0x9fc00;
/// First byte of high memory (where kernels load).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap; RAM above it continues at 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO gap.
pub const MMIO_GAP_END: u64 = 1 << 32;
/// IOAPIC MMIO base.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Local APIC MMIO base.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// Three pages KVM needs for the TSS on Intel.
pub const TSS_ADDR: u64 = 0xfffb_d000;
/// One page KVM needs for the real-mode identity map on Intel.
pub const IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// Size of the transport window.
pub const WINDOW_SIZE: u64 = 4 << 20;
/// Alignment of the transport window.
pub const WINDOW_ALIGN: u64 = 2 << 20;

/// Guest RAM ranges `(gpa, len)` for `mem_size` bytes, split around the MMIO gap.
pub fn ram_ranges(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= MMIO_GAP_START {
        vec![(0, mem_size)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, mem_size - MMIO_GAP_START),
        ]
    }
}

/// Where the transport window goes: right above the last RAM byte, 2 MiB aligned.
pub fn window_gpa(mem_size: u64) -> u64 {
    let end = ram_ranges(mem_size)
        .last()
        .map_or(0, |&(gpa, len)| gpa + len);
    end.next_multiple_of(WINDOW_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_splits_around_the_mmio_gap() {
        assert_eq!(ram_ranges(256 << 20), vec![(0, 256 << 20)]);
        assert_eq!(ram_ranges(4 << 30), vec![(0, 3 << 30), (4 << 30, 1 << 30)]);
        assert_eq!(window_gpa(255 << 20), 256 << 20);
        assert_eq!(window_gpa(4 << 30), 5 << 30);
    }
}
