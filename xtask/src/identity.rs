//! What a kernel image says about itself: release, GNU build-id, config hash.
use sha2::{Digest, Sha256};
use trace_format::meta::KernelIdentity;

use crate::kernel::KernelImage;

/// Reads what can be read; unknown parts stay empty.
pub fn of(kernel: &KernelImage) -> KernelIdentity {
    let vmlinux = kernel
        .vmlinux
        .as_deref()
        .and_then(|p| std::fs::read(p).ok());
    let release = vmlinux.as_deref().and_then(release_in).unwrap_or_default();
    let build_id = vmlinux.as_deref().and_then(build_id_in).unwrap_or_default();
    let config = [
        kernel.cache_dir.as_ref().map(|d| d.join(".config")),
        config_file(kernel),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file());
    let config_hash = config
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| sha256_hex16(&b))
        .unwrap_or_default();
    KernelIdentity {
        release,
        build_id,
        config_hash,
    }
}

fn config_file(kernel: &KernelImage) -> Option<std::path::PathBuf> {
    match &kernel.config {
        crate::kernel::image::ConfigSource::File(p) => Some(p.clone()),
        _ => None,
    }
}

/// The release from the kernel's `Linux version X ...` banner.
pub fn release_in(image: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = memchr::memmem::find(image, BANNER)? + BANNER.len();
    let rest = image.get(at..at + 128.min(image.len() - at))?;
    let end = rest.iter().position(|&b| b == b' ' || b == 0)?;
    String::from_utf8(rest[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}

/// The GNU build-id note of an ELF file.
pub fn build_id_in(elf: &[u8]) -> Option<Vec<u8>> {
    let parsed = goblin::elf::Elf::parse(elf).ok()?;
    let notes = parsed.iter_note_sections(elf, None)?;
    notes
        .flatten()
        .find(|n| n.n_type == goblin::elf::note::NT_GNU_BUILD_ID && n.name == "GNU")
        .map(|n| n.desc.to_vec())
}

pub(crate) fn sha256_hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_from_banner() {
        let image = b"\0\0Linux version 6.12.43-schedtape (root@h) #1 SMP\0";
        assert_eq!(release_in(image).as_deref(), Some("6.12.43-schedtape"));
        assert_eq!(release_in(b"nothing here"), None);
        assert_eq!(release_in(b"Linux version "), None);
    }

    #[test]
    fn build_id_of_this_test_binary() {
        // Rust test binaries on Linux carry a GNU build-id note.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let id = build_id_in(&me).expect("build-id");
        assert!(id.len() >= 8);
        assert_eq!(build_id_in(b"not an elf"), None);
    }
}
