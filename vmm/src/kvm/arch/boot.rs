//! Boot information for the kernel: the e820 map (with the transport window as a
//! reserved hole), the Linux zero page, and the PVH start info.
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

use super::layout::{EBDA_START, HIMEM_START, PVH_MEMMAP_ADDR, ram_ranges};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved ranges.
pub const E820_RESERVED: u32 = 2;

/// One e820 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The memory map for `mem_size` bytes of RAM and the window at `window`.
pub fn e820_map(mem_size: u64, window: (u64, u64)) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    for (gpa, len) in ram_ranges(mem_size) {
        let start = gpa.max(HIMEM_START);
        if gpa + len > start {
            map.push(E820Entry {
                addr: start,
                size: gpa + len - start,
                kind: E820_RAM,
            });
        }
    }
    map.push(E820Entry {
        addr: window.0,
        size: window.1,
        kind: E820_RESERVED,
    });
    map
}

/// The `kernel_alignment` the zero page gives a relocatable bzImage (16 MiB,
/// as Firecracker does; at least what any x86-64 kernel asks for).
pub const KERNEL_ALIGNMENT: u32 = 0x0100_0000;

/// First byte above what a bzImage loaded at `hdr.code32_start` (ending at
/// `loaded_end`) uses before it has picked its final place: its 64-bit entry
/// copies the compressed kernel into a buffer of `init_size` bytes starting
/// at the load address rounded up to [`KERNEL_ALIGNMENT`], or at the
/// preferred address (`LOAD_PHYSICAL_ADDR`) if that is higher, and
/// decompresses there when KASLR is off. Only the later KASLR choice avoids
/// the initramfs, so the initramfs must start above this.
pub fn bzimage_end(hdr: &setup_header, loaded_end: u64) -> u64 {
    let load = u64::from(hdr.code32_start);
    let aligned = load.next_multiple_of(u64::from(KERNEL_ALIGNMENT));
    let buffer = aligned.max(hdr.pref_address);
    loaded_end.max(buffer + u64::from(hdr.init_size))
}

/// Kernel-specific inputs of the zero page.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroPageInputs {
    /// The bzImage's own setup header, if booting one.
    pub setup_header: Option<setup_header>,
    pub cmdline_addr: u32,
    /// Length of the command line without its NUL.
    pub cmdline_len: u32,
    /// Initramfs `(gpa, size)`.
    pub initrd: Option<(u32, u32)>,
    /// Where the ACPI RSDP is (`boot_params.acpi_rsdp_addr`).
    pub acpi_rsdp: Option<u64>,
}

/// Why boot information could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Too many e820 entries for the zero page.
    #[error("too many e820 entries ({0})")]
    TooManyE820(usize),
}

/// The Linux zero page (`struct boot_params`).
pub fn zero_page(inputs: &ZeroPageInputs, e820: &[E820Entry]) -> Result<boot_params, BootError> {
    let mut params = boot_params::default();
    if let Some(hdr) = inputs.setup_header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = 0xff; // "undefined" boot loader
    params.hdr.boot_flag = 0xaa55;
    params.hdr.header = 0x5372_6448; // "HdrS"
    params.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    params.hdr.cmd_line_ptr = inputs.cmdline_addr;
    params.hdr.cmdline_size = inputs.cmdline_len;
    if let Some((addr, size)) = inputs.initrd {
        params.hdr.ramdisk_image = addr;
        params.hdr.ramdisk_size = size;
    }
    params.acpi_rsdp_addr = inputs.acpi_rsdp.unwrap_or(0);
    if e820.len() > params.e820_table.len() {
        return Err(BootError::TooManyE820(e820.len()));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries =
        u8::try_from(e820.len()).map_err(|_| BootError::TooManyE820(e820.len()))?;
    Ok(params)
}

/// PVH `hvm_start_info` magic ("xEn3" with the high bit set).
pub const PVH_MAGIC: u32 = 0x336e_c578;

/// The PVH start info (56 bytes, version 1) followed by nothing; the memory map
/// goes to [`PVH_MEMMAP_ADDR`] (see [`pvh_memmap`]); `rsdp` is the ACPI RSDP (0: none).
pub fn pvh_start_info(
    cmdline_addr: u64,
    initrd: Option<(u64, u64)>,
    modlist_addr: u64,
    e820_len: u32,
    rsdp: u64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(56);
    b.extend_from_slice(&PVH_MAGIC.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // version
    b.extend_from_slice(&0u32.to_le_bytes()); // flags
    b.extend_from_slice(&u32::from(initrd.is_some()).to_le_bytes()); // nr_modules
    b.extend_from_slice(&modlist_addr.to_le_bytes());
    b.extend_from_slice(&cmdline_addr.to_le_bytes());
    b.extend_from_slice(&rsdp.to_le_bytes()); // rsdp_paddr
    b.extend_from_slice(&PVH_MEMMAP_ADDR.to_le_bytes());
    b.extend_from_slice(&e820_len.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// PVH module list entry for the initramfs (32 bytes).
pub fn pvh_module(initrd: (u64, u64)) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    for v in [initrd.0, initrd.1, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// The PVH memory map: 24-byte `hvm_memmap_table_entry` records.
pub fn pvh_memmap(e820: &[E820Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(e820.len() * 24);
    for e in e820 {
        b.extend_from_slice(&e.addr.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&e.kind.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvm::arch::layout::{WINDOW_SIZE, window_gpa};
    use vm_memory::ByteValued;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn e820_has_the_window_as_a_reserved_hole() {
        let mem = 256 << 20;
        let map = e820_map(mem, (window_gpa(mem), WINDOW_SIZE));
        assert_eq!(
            map,
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9fc00,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: 0x9fc00,
                    size: 0x60400,
                    kind: E820_RESERVED
                },
                E820Entry {
                    addr: 0x10_0000,
                    size: mem - 0x10_0000,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: mem,
                    size: 4 << 20,
                    kind: E820_RESERVED
                },
            ]
        );
        // Above the MMIO gap RAM continues at 4 GiB; the window follows it.
        let big = e820_map(5 << 30, (window_gpa(5 << 30), WINDOW_SIZE));
        assert_eq!(
            big[3],
            E820Entry {
                addr: 4 << 30,
                size: 2 << 30,
                kind: E820_RAM
            }
        );
        assert_eq!(big[4].addr, 6 << 30);
    }

    #[test]
    fn zero_page_bytes_follow_the_boot_protocol() {
        let mem = 128 << 20;
        let map = e820_map(mem, (window_gpa(mem), WINDOW_SIZE));
        let inputs = ZeroPageInputs {
            setup_header: None,
            cmdline_addr: 0x20000,
            cmdline_len: 42,
            initrd: Some((0x0700_0000, 0x1234)),
            acpi_rsdp: Some(0xe_0000),
        };
        let params = zero_page(&inputs, &map).unwrap();
        let b = params.as_slice();
        assert_eq!(b.len(), 4096);
        assert_eq!(b[0x1e8], 4); // e820_entries
        assert_eq!(u64_at(b, 0x70), 0xe_0000); // acpi_rsdp_addr
        assert_eq!(u16::from_le_bytes([b[0x1fe], b[0x1ff]]), 0xaa55);
        assert_eq!(&b[0x202..0x206], b"HdrS");
        assert_eq!(b[0x210], 0xff); // type_of_loader
        assert_eq!(u32_at(b, 0x218), 0x0700_0000); // ramdisk_image
        assert_eq!(u32_at(b, 0x21c), 0x1234); // ramdisk_size
        assert_eq!(u32_at(b, 0x228), 0x20000); // cmd_line_ptr
        assert_eq!(u32_at(b, 0x238), 42); // cmdline_size
        // e820_table at 0x2d0, 20 bytes per entry.
        assert_eq!(u64_at(b, 0x2d0 + 2 * 20), 0x10_0000);
        assert_eq!(u64_at(b, 0x2d0 + 2 * 20 + 8), mem - 0x10_0000);
        assert_eq!(u32_at(b, 0x2d0 + 3 * 20 + 16), E820_RESERVED);
        assert_eq!(u64_at(b, 0x2d0 + 3 * 20), mem);
    }

    #[test]
    fn pvh_structures_have_the_abi_layout() {
        let map = e820_map(64 << 20, (64 << 20, WINDOW_SIZE));
        let info = pvh_start_info(0x20000, Some((0x10_0000, 0x20)), 0x6038, 4, 0xe_0000);
        assert_eq!(info.len(), 56);
        assert_eq!(u32_at(&info, 0), PVH_MAGIC);
        assert_eq!(u32_at(&info, 12), 1); // nr_modules
        assert_eq!(u64_at(&info, 24), 0x20000); // cmdline_paddr
        assert_eq!(u64_at(&info, 32), 0xe_0000); // rsdp_paddr
        assert_eq!(u64_at(&info, 40), PVH_MEMMAP_ADDR);
        assert_eq!(u32_at(&info, 48), 4);
        let mm = pvh_memmap(&map);
        assert_eq!(mm.len(), 4 * 24);
        assert_eq!(u64_at(&mm, 48), 0x10_0000);
        assert_eq!(u32_at(&mm, 72 + 16), E820_RESERVED);
        assert_eq!(pvh_module((1, 2)).len(), 32);
    }

    #[test]
    fn bzimage_end_covers_the_decompression_buffer() {
        // The project kernel's header: loaded at 1 MiB, 16 MiB preferred, 20 MiB init_size.
        let hdr = setup_header {
            code32_start: 0x10_0000,
            pref_address: 0x100_0000,
            init_size: 0x143_c000,
            ..Default::default()
        };
        assert_eq!(bzimage_end(&hdr, 0x53_0000), 0x100_0000 + 0x143_c000);
        // A compressed image reaching past the buffer keeps its own end.
        assert_eq!(bzimage_end(&hdr, 0x300_0000), 0x300_0000);
        // Without a preferred address the buffer starts at the aligned load address.
        let low = setup_header {
            code32_start: 0x10_0000,
            init_size: 0x10_0000,
            ..Default::default()
        };
        assert_eq!(bzimage_end(&low, 0x20_0000), 0x110_0000);
    }
}
