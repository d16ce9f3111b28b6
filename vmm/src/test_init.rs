//! Tiny static x86-64 programs to run as a guest's `/init` where a test needs
//! Linux to misbehave on purpose (hang, reboot without the executor's `End`):
//! the end-to-end tests and the nested lane share them.

/// Where the single load segment sits; the entry follows the ELF and
/// program headers.
const BASE: u64 = 0x40_0000;
const HEADERS: u64 = 64 + 56;

/// A static ELF of one R+X segment holding `code`, entered at its start
/// (`BASE + 0x78`).
pub fn static_elf(code: &[u8]) -> Vec<u8> {
    let entry = BASE + HEADERS;
    let size = HEADERS + code.len() as u64;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(elf.len() as u64, HEADERS);
    elf.extend_from_slice(code);
    elf
}

/// `loop { pause() }`: a guest that hangs.
pub fn hanging() -> Vec<u8> {
    // mov eax,34 (pause); syscall; jmp back
    static_elf(&[0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7])
}

/// Reboots at once: the VM ends without the executor's `End`.
pub fn rebooting() -> Vec<u8> {
    let mut code = vec![0xb8, 169, 0, 0, 0]; // mov eax, SYS_reboot
    code.extend([0xbf, 0xad, 0xde, 0xe1, 0xfe]); // mov edi, LINUX_REBOOT_MAGIC1
    code.extend([0xbe, 0x69, 0x19, 0x12, 0x28]); // mov esi, LINUX_REBOOT_MAGIC2
    code.extend([0xba, 0x67, 0x45, 0x23, 0x01]); // mov edx, LINUX_REBOOT_CMD_RESTART
    code.extend([0x0f, 0x05, 0xeb, 0xfe]); // syscall; loop
    static_elf(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_load_segment_entered_after_the_headers() {
        for elf in [hanging(), rebooting()] {
            let parsed = goblin::elf::Elf::parse(&elf).unwrap();
            assert_eq!(parsed.entry, 0x40_0078);
            assert_eq!(parsed.program_headers.len(), 1);
            let load = &parsed.program_headers[0];
            assert_eq!((load.p_vaddr, load.p_filesz), (BASE, elf.len() as u64));
            assert!(load.is_executable() && !load.is_write());
        }
        assert_eq!(
            &hanging()[0x78..],
            [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]
        );
    }
}
