//! Kernel virtual → guest-physical translation: the page-table walk from CR3,
//! the kernel-text and direct-map shortcuts, per-CPU addresses, and finding a
//! (possibly KASLR-relocated) kernel and checking it is the vmlinux's build.
use std::sync::Arc;

use super::elf::find_build_id_note;
use super::layout::{Layout, hex};
use super::phys::GuestMemory;

/// `__START_KERNEL_map`: where x86-64 maps the kernel image (before KASLR's slide).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Size of the kernel-image mapping (`KERNEL_IMAGE_SIZE` with KASLR).
const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// The direct map's base without memory randomisation, 4- and 5-level.
const PAGE_OFFSET_L4: u64 = 0xffff_8880_0000_0000;
const PAGE_OFFSET_L5: u64 = 0xff11_0000_0000_0000;
/// Largest direct map we accept (`MAX_PHYSMEM_BITS` = 46 with 4 levels).
const DIRECT_MAP_SIZE: u64 = 1 << 46;
const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const MB2: u64 = 2 << 20;

/// Walks the page tables rooted at `root` (a CR3 value) for `va`.
pub fn walk(mem: &GuestMemory, root: u64, levels: u8, va: u64) -> Result<u64, String> {
    let mut table = root & ADDR_MASK;
    let top = if levels == 5 { 48 } else { 39 };
    let mut shift = top;
    loop {
        let index = (va >> shift) & 0x1ff;
        let entry = mem
            .read_u64(table + index * 8)
            .map_err(|e| format!("page walk for {va:#x}: {e}"))?;
        if entry & PRESENT == 0 {
            return Err(format!("{va:#x} is not mapped"));
        }
        let page = 1u64 << shift;
        if shift == 12 || ((shift == 21 || shift == 30) && entry & HUGE != 0) {
            return Ok((entry & ADDR_MASK & !(page - 1)) | (va & (page - 1)));
        }
        table = entry & ADDR_MASK;
        shift -= 9;
    }
}

/// Present 2 MiB slots of the kernel-image mapping, lowest first.
fn kernel_map_slots(mem: &GuestMemory, root: u64, levels: u8) -> Vec<u64> {
    // The page directory covering START_KERNEL_MAP: walk to its PDPT entry.
    let mut table = root & ADDR_MASK;
    let mut shift = if levels == 5 { 48 } else { 39 };
    while shift > 21 {
        let index = (START_KERNEL_MAP >> shift) & 0x1ff;
        let Ok(entry) = mem.read_u64(table + index * 8) else {
            return Vec::new();
        };
        if entry & PRESENT == 0 || (shift == 30 && entry & HUGE != 0) {
            return Vec::new();
        }
        table = entry & ADDR_MASK;
        shift -= 9;
    }
    (0..512u64)
        .filter(|i| mem.read_u64(table + i * 8).is_ok_and(|e| e & PRESENT != 0))
        .map(|i| START_KERNEL_MAP + i * MB2)
        .take(8)
        .collect()
}

/// Why a kernel could not be attached to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The running kernel is another build than the vmlinux.
    #[error(
        "the vmlinux (build-id {expected}) is not the running kernel (build-id {found}); pass the vmlinux of the kernel being booted"
    )]
    WrongVmlinux { expected: String, found: String },
    /// No kernel matching the vmlinux was found through the page tables.
    #[error("cannot find the kernel in guest memory: {0}")]
    NotFound(String),
    /// The vmlinux lacks a symbol introspection cannot do without.
    #[error("the vmlinux has no symbol {0}")]
    MissingSymbol(&'static str),
}

/// A running kernel located in guest memory.
#[derive(Debug, Clone)]
pub struct Kernel {
    layout: Arc<Layout>,
    mem: GuestMemory,
    root: u64,
    levels: u8,
    /// KASLR's virtual slide: runtime address minus link address of kernel text.
    slide: u64,
    phys_base: u64,
    page_offset: Option<u64>,
    per_cpu: Vec<u64>,
}

impl Kernel {
    /// Finds the kernel through the page tables at `cr3`, checks its build-id
    /// against the vmlinux's, and reads the per-CPU offsets.
    pub fn attach(layout: Arc<Layout>, mem: GuestMemory, cr3: u64) -> Result<Kernel, AttachError> {
        let sym = |n: &'static str| layout.symbol(n).ok_or(AttachError::MissingSymbol(n));
        let text = sym("_text")?.addr;
        let mut mismatch = None;
        let mut tried = Vec::new();
        for root in [cr3 & ADDR_MASK, cr3 & ADDR_MASK & !0x1fff] {
            for levels in [4u8, 5] {
                if tried.contains(&(root, levels)) {
                    continue;
                }
                tried.push((root, levels));
                for va in kernel_map_slots(&mem, root, levels) {
                    let slide = va.wrapping_sub(text & !(MB2 - 1));
                    let k = Kernel {
                        layout: Arc::clone(&layout),
                        mem: mem.clone(),
                        root,
                        levels,
                        slide,
                        phys_base: 0,
                        page_offset: None,
                        per_cpu: Vec::new(),
                    };
                    match k.check_identity() {
                        Identity::Match => return k.finish(),
                        Identity::Differs(found) => mismatch = mismatch.or(Some(found)),
                        Identity::Unknown => {}
                    }
                }
            }
        }
        if let Some(found) = mismatch {
            return Err(AttachError::WrongVmlinux {
                expected: layout.build_id_hex(),
                found,
            });
        }
        Err(match running_build_id(&mem) {
            Some(found) if found != layout.build_id => AttachError::WrongVmlinux {
                expected: layout.build_id_hex(),
                found: hex(&found),
            },
            _ => AttachError::NotFound(format!(
                "no mapping of the vmlinux's text under CR3 {cr3:#x} carries its build-id"
            )),
        })
    }

    /// Compares the build-id note at the slid `__start_notes` with the vmlinux's.
    fn check_identity(&self) -> Identity {
        let (Some(start), Some(stop)) = (
            self.layout.symbol("__start_notes"),
            self.layout.symbol("__stop_notes"),
        ) else {
            return Identity::Unknown;
        };
        let len = usize::try_from(stop.addr.saturating_sub(start.addr).min(4096)).unwrap_or(0);
        let mut buf = vec![0u8; len];
        if self
            .read_walked(start.addr.wrapping_add(self.slide), &mut buf)
            .is_err()
        {
            return Identity::Unknown;
        }
        match find_build_id_note(&buf) {
            Some(id) if id == self.layout.build_id.as_slice() => Identity::Match,
            Some(id) => Identity::Differs(hex(id)),
            None => Identity::Unknown,
        }
    }

    /// Reads `phys_base`, the direct map's base and the per-CPU offsets.
    fn finish(mut self) -> Result<Kernel, AttachError> {
        let text = self.layout.symbol("_text").map_or(0, |s| s.addr);
        let text_va = text.wrapping_add(self.slide);
        let text_pa =
            walk(&self.mem, self.root, self.levels, text_va).map_err(AttachError::NotFound)?;
        self.phys_base = text_pa.wrapping_sub(text_va.wrapping_sub(START_KERNEL_MAP));
        let po = match self.layout.symbol("page_offset_base") {
            Some(s) => self.read_u64(s.addr.wrapping_add(self.slide)).ok(),
            None if self.levels == 5 => Some(PAGE_OFFSET_L5),
            None => Some(PAGE_OFFSET_L4),
        };
        // Trust the direct map's base only when the walk agrees with it, and
        // only a base the whole direct map fits above (guest memory says it).
        self.page_offset = po.filter(|&po| {
            po.checked_add(DIRECT_MAP_SIZE).is_some()
                && walk(&self.mem, self.root, self.levels, po.wrapping_add(text_pa)) == Ok(text_pa)
        });
        let offsets = self
            .layout
            .symbol("__per_cpu_offset")
            .ok_or(AttachError::MissingSymbol("__per_cpu_offset"))?
            .clone();
        let max = usize::try_from(offsets.size / 8).unwrap_or(0).max(1);
        let nr = self
            .layout
            .symbol("nr_cpu_ids")
            .and_then(|s| self.read_uint(s.addr.wrapping_add(self.slide), 4).ok())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1)
            .clamp(1, max);
        let base = offsets.addr.wrapping_add(self.slide);
        self.per_cpu = (0..nr)
            .map(|i| self.read_u64(base.wrapping_add(8 * i as u64)))
            .collect::<Result<_, _>>()
            .map_err(AttachError::NotFound)?;
        Ok(self)
    }

    /// A kernel at a known placement without a page-table walk (`root` 0):
    /// for tests and benchmarks over synthetic guest memory.
    pub fn from_parts(
        layout: Arc<Layout>,
        mem: GuestMemory,
        phys_base: u64,
        page_offset: u64,
        per_cpu: Vec<u64>,
    ) -> Kernel {
        Kernel {
            layout,
            mem,
            root: 0,
            levels: 4,
            slide: 0,
            phys_base,
            page_offset: Some(page_offset),
            per_cpu,
        }
    }

    /// The resolved layout this kernel was checked against.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Number of possible CPUs (`nr_cpu_ids`).
    pub fn cpus(&self) -> usize {
        self.per_cpu.len()
    }

    /// KASLR's virtual slide (0 without KASLR).
    pub fn slide(&self) -> u64 {
        self.slide
    }

    /// `phys_base`: where the kernel image sits physically, minus its link offset.
    pub fn phys_base(&self) -> u64 {
        self.phys_base
    }

    /// The direct map's base, when known.
    pub fn page_offset(&self) -> Option<u64> {
        self.page_offset
    }

    /// The runtime address of a symbol (per-CPU symbols need `cpu`).
    pub fn symbol_addr(&self, name: &str, cpu: Option<u32>) -> Result<u64, String> {
        let s = self
            .layout
            .symbol(name)
            .ok_or_else(|| format!("no symbol {name:?} in the vmlinux"))?;
        match (s.percpu, cpu) {
            (true, Some(c)) => {
                let off = usize::try_from(c)
                    .ok()
                    .and_then(|c| self.per_cpu.get(c))
                    .ok_or_else(|| format!("cpu {c} is beyond nr_cpu_ids ({})", self.cpus()))?;
                Ok(s.addr.wrapping_add(*off))
            }
            (true, None) => Err(format!("{name} is per-CPU: name a cpu")),
            (false, Some(_)) => Err(format!("{name} is not a per-CPU symbol")),
            (false, None) => Ok(s.addr.wrapping_add(self.slide)),
        }
    }

    /// The per-CPU address of `sym` (a link-time per-CPU offset) on `cpu`.
    pub fn per_cpu_addr(&self, sym: u64, cpu: usize) -> Option<u64> {
        self.per_cpu.get(cpu).map(|o| sym.wrapping_add(*o))
    }

    /// Translates a kernel virtual address: kernel text, direct map, else a walk.
    pub fn translate(&self, kva: u64) -> Result<u64, String> {
        if (START_KERNEL_MAP..START_KERNEL_MAP + (KERNEL_IMAGE_SIZE - 1)).contains(&kva) {
            return Ok((kva - START_KERNEL_MAP).wrapping_add(self.phys_base));
        }
        if let Some(off) = self
            .page_offset
            .and_then(|po| kva.checked_sub(po))
            .filter(|&off| off < DIRECT_MAP_SIZE)
        {
            return Ok(off);
        }
        walk(&self.mem, self.root, self.levels, kva)
    }

    /// Reads kernel memory at `kva`, page by page.
    pub fn read(&self, kva: u64, buf: &mut [u8]) -> Result<(), String> {
        self.each_page(kva, buf.len(), |pa, range| {
            self.mem
                .read(pa, &mut buf[range])
                .map_err(|e| e.to_string())
        })
    }

    /// Writes kernel memory at `kva`, page by page.
    pub fn write(&self, kva: u64, data: &[u8]) -> Result<(), String> {
        self.each_page(kva, data.len(), |pa, range| {
            self.mem.write(pa, &data[range]).map_err(|e| e.to_string())
        })
    }

    /// An unsigned little-endian value of `width` (1, 2, 4, 8) bytes.
    pub fn read_uint(&self, kva: u64, width: usize) -> Result<u64, String> {
        let mut b = [0u8; 8];
        let part = b.get_mut(..width).ok_or("width over 8 bytes")?;
        self.read(kva, part)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A u64 at `kva`.
    pub fn read_u64(&self, kva: u64) -> Result<u64, String> {
        self.read_uint(kva, 8)
    }

    fn each_page(
        &self,
        kva: u64,
        len: usize,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut done = 0usize;
        while done < len {
            let va = kva.wrapping_add(done as u64);
            let in_page = usize::try_from(4096 - (va & 0xfff)).unwrap_or(4096);
            let n = in_page.min(len - done);
            f(self.translate(va)?, done..done + n)?;
            done += n;
        }
        Ok(())
    }

    /// Reads through the page tables only (before `phys_base` is known).
    fn read_walked(&self, kva: u64, buf: &mut [u8]) -> Result<(), String> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = kva.wrapping_add(done as u64);
            let n = usize::try_from(4096 - (va & 0xfff))
                .unwrap_or(4096)
                .min(buf.len() - done);
            let pa = walk(&self.mem, self.root, self.levels, va)?;
            self.mem
                .read(pa, &mut buf[done..done + n])
                .map_err(|e| e.to_string())?;
            done += n;
        }
        Ok(())
    }
}

enum Identity {
    Match,
    Differs(String),
    Unknown,
}

/// The build-id of whichever kernel is in guest RAM, found by scanning for the
/// GNU note beside the kernel's `Linux` notes (only on the error path).
fn running_build_id(mem: &GuestMemory) -> Option<Vec<u8>> {
    const HEAD: &[u8] = b"\x04\0\0\0\x14\0\0\0\x03\0\0\0GNU\0";
    let mut found = None;
    mem.scan(1 << 20, 64, |_, chunk| {
        let finder = memchr::memmem::Finder::new(HEAD);
        for at in finder.find_iter(chunk) {
            let note = &chunk[at..];
            // The kernel's .notes: the build-id is followed by "Linux" notes.
            if note.len() >= 64 && memchr::memmem::find(&note[32..64], b"Linux").is_some() {
                found = Some(note[16..36].to_vec());
                return true;
            }
        }
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::super::phys::tests::anon;
    use super::*;

    /// Builds 4-level tables at 0x1000.. mapping `va` → `pa` with a 4 KiB page
    /// and `va2` → `pa2` with a 2 MiB page.
    fn tables(mem: &GuestMemory, va: u64, pa: u64, va2: u64, pa2: u64) -> u64 {
        let mut next = 0x2000u64;
        let root = 0x1000u64;
        let mut alloc = || {
            let t = next;
            next += 0x1000;
            t
        };
        let mut map = |va: u64, pa: u64, leaf_shift: u32| {
            let mut table = root;
            let mut shift = 39;
            while shift > leaf_shift {
                let slot = table + ((va >> shift) & 0x1ff) * 8;
                let e = mem.read_u64(slot).unwrap();
                table = if e & PRESENT != 0 {
                    e & ADDR_MASK
                } else {
                    let t = alloc();
                    mem.write(slot, &(t | 3).to_le_bytes()).unwrap();
                    t
                };
                shift -= 9;
            }
            let huge = if leaf_shift == 21 { HUGE } else { 0 };
            let slot = table + ((va >> leaf_shift) & 0x1ff) * 8;
            mem.write(slot, &(pa | 3 | huge).to_le_bytes()).unwrap();
        };
        map(va, pa, 12);
        map(va2, pa2, 21);
        root
    }

    #[test]
    fn walks_4k_and_2m_pages() {
        let mem = anon(1 << 20);
        let va = 0xffff_c900_0012_3000;
        let va2 = START_KERNEL_MAP + 0x100_0000;
        let root = tables(&mem, va, 0x8000, va2, 0x20_0000);
        assert_eq!(walk(&mem, root, 4, va + 0x45), Ok(0x8045));
        assert_eq!(walk(&mem, root, 4, va2 + 0x1234), Ok(0x20_1234));
        assert!(walk(&mem, root, 4, va + 0x1000).is_err());
        assert_eq!(kernel_map_slots(&mem, root, 4), vec![va2]);
        // Hostile tables pointing outside RAM fail cleanly.
        mem.write(root, &(0xdead_0000_0003u64).to_le_bytes())
            .unwrap();
        assert!(walk(&mem, root, 4, 0x1000).is_err());
        assert!(walk(&mem, u64::MAX, 5, va).is_err());
    }

    fn layout() -> Arc<Layout> {
        use super::super::layout::Symbol;
        let sym = |name: &str, addr: u64, percpu: bool| Symbol {
            name: name.into(),
            addr,
            size: 8,
            percpu,
        };
        let mut symbols = vec![
            sym("_text", START_KERNEL_MAP + 0x100_0000, false),
            sym("__start_notes", START_KERNEL_MAP + 0x100_0000, false),
            sym("__stop_notes", START_KERNEL_MAP + 0x100_0040, false),
            sym("__per_cpu_offset", START_KERNEL_MAP + 0x100_0100, false),
            sym("runqueues", 0x2000, true),
        ];
        symbols.sort_by(|a, b| a.name.cmp(&b.name));
        Arc::new(Layout {
            build_id: vec![7; 20],
            symbols,
            fields: vec![None; 10],
            snapshots_off: None,
            notes: Vec::new(),
        })
    }

    #[test]
    fn attach_finds_a_slid_kernel_and_refuses_another_build() {
        let mem = anon(8 << 20);
        let slide = 0x20_0000 * 3;
        let text_va = START_KERNEL_MAP + 0x100_0000 + slide;
        let root = tables(&mem, 0xffff_c900_0000_0000, 0x1000, text_va, 0x40_0000);
        // The build-id note, then a per-CPU offset for one CPU.
        let mut note = vec![4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
        note.extend([7u8; 20]);
        mem.write(0x40_0000, &note).unwrap();
        mem.write(0x40_0100, &0x1234u64.to_le_bytes()).unwrap();
        let k = Kernel::attach(layout(), mem.clone(), root | 0x8000_0000_0000_0000).unwrap();
        assert_eq!(k.slide(), slide);
        assert_eq!(k.cpus(), 1);
        assert_eq!(k.translate(text_va + 0x10), Ok(0x40_0010));
        assert_eq!(k.symbol_addr("runqueues", Some(0)), Ok(0x2000 + 0x1234));
        assert!(k.symbol_addr("runqueues", None).is_err());
        assert!(k.symbol_addr("runqueues", Some(1)).is_err());
        assert!(k.symbol_addr("_text", Some(0)).is_err());
        // Another build's note at the same place.
        mem.write(0x40_0010, &[8u8; 20]).unwrap();
        let err = Kernel::attach(layout(), mem, root).unwrap_err();
        assert!(matches!(err, AttachError::WrongVmlinux { .. }), "{err}");
    }

    #[test]
    fn attach_survives_garbage_memory() {
        let mem = anon(4 << 20);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut page = vec![0u8; 4 << 20];
        for b in page.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x.to_le_bytes()[0] | 1; // present bits everywhere
        }
        mem.write(0, &page).unwrap();
        for cr3 in [0u64, 0x1000, 0x3f_f000, u64::MAX, 0x1234_5678_9abc] {
            assert!(Kernel::attach(layout(), mem.clone(), cr3).is_err());
        }
    }

    #[test]
    fn a_direct_map_base_that_wraps_is_refused() {
        use super::super::layout::Symbol;
        let mem = anon(8 << 20);
        let text_va = START_KERNEL_MAP + 0x100_0000;
        let text_pa = 0x40_0000u64;
        // A hostile page_offset_base with po + text_pa == 0 (mod 2^64), and a
        // mapping of va 0 that makes the walk agree with it.
        let po = 0u64.wrapping_sub(text_pa);
        let root = tables(&mem, 0, text_pa, text_va, text_pa);
        let mut note = vec![4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
        note.extend([7u8; 20]);
        mem.write(text_pa, &note).unwrap();
        mem.write(text_pa + 0x100, &0x1234u64.to_le_bytes())
            .unwrap();
        mem.write(text_pa + 0x200, &po.to_le_bytes()).unwrap();
        let mut l = (*layout()).clone();
        l.symbols.push(Symbol {
            name: "page_offset_base".into(),
            addr: text_va + 0x200,
            size: 8,
            percpu: false,
        });
        l.symbols.sort_by(|a, b| a.name.cmp(&b.name));
        let k = Kernel::attach(Arc::new(l), mem.clone(), root).unwrap();
        assert_eq!(k.page_offset(), None);
        // Addresses below such a base translate by walking, without a panic.
        assert!(k.translate(0x1000).is_err());
        let k = Kernel::from_parts(layout(), mem, 0, po, vec![0]);
        assert!(k.translate(0x1000).is_err());
    }
}
