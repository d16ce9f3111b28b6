//! The vmlinux ELF: GNU build-id, the symbol table, and section bytes (goblin).
use goblin::elf::{Elf, section_header::SHT_NOBITS, sym};

use super::IntrospectError;
use super::layout::Symbol;

/// A parsed vmlinux borrowing the file's bytes.
pub struct Vmlinux<'a> {
    bytes: &'a [u8],
    elf: Elf<'a>,
}

impl std::fmt::Debug for Vmlinux<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vmlinux")
            .field("sections", &self.elf.section_headers.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Vmlinux<'a> {
    /// Parses headers, sections and the symbol table of an x86-64 ELF.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, IntrospectError> {
        let elf = Elf::parse(bytes).map_err(|e| IntrospectError::Elf(e.to_string()))?;
        if !elf.is_64 || elf.header.e_machine != goblin::elf::header::EM_X86_64 {
            return Err(IntrospectError::Elf("not an x86-64 ELF".into()));
        }
        Ok(Vmlinux { bytes, elf })
    }

    /// The GNU build-id note, if any.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        build_id_of(&self.elf, self.bytes)
    }

    /// The file bytes of a section by name (`None` when absent or NOBITS).
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let sh = self
            .elf
            .section_headers
            .iter()
            .find(|s| self.elf.shdr_strtab.get_at(s.sh_name) == Some(name))?;
        if sh.sh_type == SHT_NOBITS {
            return None;
        }
        let start = usize::try_from(sh.sh_offset).ok()?;
        let len = usize::try_from(sh.sh_size).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }

    /// Data and function symbols (plus untyped linker symbols), sorted by name.
    /// Symbols in `.data..percpu` are flagged per-CPU.
    pub fn symbols(&self) -> Vec<Symbol> {
        let percpu = self
            .elf
            .section_headers
            .iter()
            .position(|s| self.elf.shdr_strtab.get_at(s.sh_name) == Some(".data..percpu"));
        let mut out: Vec<Symbol> = self
            .elf
            .syms
            .iter()
            .filter(|s| {
                matches!(
                    s.st_type(),
                    sym::STT_OBJECT | sym::STT_FUNC | sym::STT_NOTYPE
                ) && s.st_shndx != 0
            })
            .filter_map(|s| {
                let name = self.elf.strtab.get_at(s.st_name)?;
                if name.is_empty() || name.starts_with("__pfx_") || name.starts_with("__cfi_") {
                    return None;
                }
                Some(Symbol {
                    name: name.to_string(),
                    addr: s.st_value,
                    size: s.st_size,
                    percpu: percpu == Some(s.st_shndx),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.addr.cmp(&b.addr)));
        // Local statics can share a name; keep the first of each.
        out.dedup_by(|b, a| a.name == b.name);
        out
    }
}

fn build_id_of(elf: &Elf<'_>, bytes: &[u8]) -> Option<Vec<u8>> {
    let notes = elf
        .iter_note_headers(bytes)
        .or_else(|| elf.iter_note_sections(bytes, None))?;
    notes
        .flatten()
        .find(|n| n.n_type == goblin::elf::note::NT_GNU_BUILD_ID && n.name == "GNU")
        .map(|n| n.desc.to_vec())
}

/// Reads the GNU build-id of an ELF file from its program headers only
/// (a few KiB of I/O, however large the file).
pub fn read_build_id(path: &std::path::Path) -> Result<Vec<u8>, IntrospectError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| IntrospectError::Io(path.display().to_string(), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh).map_err(io)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 {
        return Err(IntrospectError::Elf("not a 64-bit ELF".into()));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let (phoff, phentsize, phnum) = (u64_at(&eh, 0x20), u16_at(&eh, 0x36), u16_at(&eh, 0x38));
    if phentsize < 56 {
        return Err(IntrospectError::Elf("bad program header size".into()));
    }
    for i in 0..u64::from(phnum) {
        let mut ph = [0u8; 56];
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))
            .map_err(io)?;
        f.read_exact(&mut ph).map_err(io)?;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) != 4 {
            continue; // not PT_NOTE
        }
        let size = usize::try_from(u64_at(&ph, 0x20).min(1 << 16)).unwrap_or(0);
        let mut notes = vec![0u8; size];
        f.seek(SeekFrom::Start(u64_at(&ph, 0x08))).map_err(io)?;
        f.read_exact(&mut notes).map_err(io)?;
        if let Some(id) = find_build_id_note(&notes) {
            return Ok(id.to_vec());
        }
    }
    Err(IntrospectError::NoBuildId)
}

/// Walks a buffer of ELF notes and returns the GNU build-id descriptor.
pub fn find_build_id_note(mut notes: &[u8]) -> Option<&[u8]> {
    let word = |b: &[u8], o: usize| -> Option<usize> {
        let w = b.get(o..o + 4)?;
        usize::try_from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])).ok()
    };
    let align = |n: usize| n.checked_add(3).map(|v| v & !3);
    while notes.len() >= 12 {
        let (namesz, descsz, ty) = (word(notes, 0)?, word(notes, 4)?, word(notes, 8)?);
        let name_end = 12usize.checked_add(align(namesz)?)?;
        let end = name_end.checked_add(align(descsz)?)?;
        if end > notes.len() {
            return None;
        }
        if ty == 3 && notes.get(12..12 + namesz) == Some(b"GNU\0") {
            return notes.get(name_end..name_end + descsz);
        }
        notes = &notes[end..];
    }
    None
}
