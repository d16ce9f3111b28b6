//! What a resolved layout is derived from, as the cache key: the GNU build-id
//! and a fingerprint of the sections the resolver reads. A vmlinux and its
//! debug-stripped copy share a build-id but not a key, so a layout worked out
//! without DWARF is never served for the file that has it.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::IntrospectError;
use super::layout::hex;

/// Sections whose presence and shape decide what resolution finds: the
/// symbol table, the per-CPU section, and every `.debug_*` section.
fn read_by_resolver(name: &[u8]) -> bool {
    matches!(name, b".symtab" | b".strtab" | b".data..percpu") || name.starts_with(b".debug_")
}

/// Section headers read at most (vmlinux has ~50; more is not a kernel).
const MAX_SECTIONS: usize = 1 << 14;
/// Section-name table bytes read at most.
const MAX_SHSTRTAB: u64 = 1 << 20;
const SHT_NOBITS: u32 = 8;

/// The cache key of one vmlinux file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceKey {
    pub build_id: Vec<u8>,
    /// FNV-1a of the name, type, flags and size of each section the resolver reads.
    pub fingerprint: u64,
    /// `.debug_info` is present and not empty: struct offsets can be resolved.
    pub has_dwarf: bool,
}

impl SourceKey {
    /// The cache file name stem: hex build-id, then the fingerprint.
    pub fn stem(&self) -> String {
        format!("{}-{:016x}", hex(&self.build_id), self.fingerprint)
    }
}

/// Reads the key of `path` from its ELF headers (a few KiB of I/O, however
/// large the file).
pub fn read_key(path: &Path) -> Result<SourceKey, IntrospectError> {
    let build_id = super::elf::read_build_id(path)?;
    let io = |e: std::io::Error| IntrospectError::Io(path.display().to_string(), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh).map_err(io)?;
    let shoff = u64_at(&eh, 0x28);
    let (shentsize, shnum, shstrndx) = (
        usize::from(u16_at(&eh, 0x3a)),
        usize::from(u16_at(&eh, 0x3c)),
        usize::from(u16_at(&eh, 0x3e)),
    );
    if shnum == 0 {
        return Ok(key_of(build_id, &[], &[]));
    }
    if !(64..=256).contains(&shentsize) || shnum > MAX_SECTIONS || shstrndx >= shnum {
        return Err(IntrospectError::Elf("bad section header table".into()));
    }
    let mut table = vec![0u8; shentsize * shnum];
    f.seek(SeekFrom::Start(shoff)).map_err(io)?;
    f.read_exact(&mut table).map_err(io)?;
    let headers: Vec<&[u8]> = table.chunks_exact(shentsize).collect();
    let names_hdr = headers[shstrndx];
    let names_len = u64_at(names_hdr, 0x20);
    if names_len > MAX_SHSTRTAB {
        return Err(IntrospectError::Elf("section name table too large".into()));
    }
    let mut names = vec![0u8; usize::try_from(names_len).unwrap_or(0)];
    f.seek(SeekFrom::Start(u64_at(names_hdr, 0x18)))
        .map_err(io)?;
    f.read_exact(&mut names).map_err(io)?;
    Ok(key_of(build_id, &headers, &names))
}

/// The key from raw 64-byte section headers and the section-name table.
fn key_of(build_id: Vec<u8>, headers: &[&[u8]], names: &[u8]) -> SourceKey {
    let mut hash = Fnv::new();
    let mut has_dwarf = false;
    for h in headers {
        let start = usize::try_from(u32_at(h, 0)).unwrap_or(usize::MAX);
        let name = names
            .get(start..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .unwrap_or(&[]);
        if !read_by_resolver(name) {
            continue;
        }
        let (ty, flags, size) = (u32_at(h, 4), u64_at(h, 8), u64_at(h, 0x20));
        if name == b".debug_info" && ty != SHT_NOBITS && size > 0 {
            has_dwarf = true;
        }
        hash.eat(name);
        hash.eat(&[0]);
        hash.eat(&ty.to_le_bytes());
        hash.eat(&flags.to_le_bytes());
        hash.eat(&size.to_le_bytes());
    }
    SourceKey {
        build_id,
        fingerprint: hash.0,
        has_dwarf,
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

/// 64-bit FNV-1a: stable across builds and platforms (the key is on disk).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
