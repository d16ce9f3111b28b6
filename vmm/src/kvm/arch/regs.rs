//! Boot CPU state: GDT, identity page tables, and the register values for a
//! 64-bit (Linux boot protocol) or 32-bit (PVH) entry.
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use super::layout::{
    BOOT_STACK, GDT_ADDR, IDT_ADDR, PD_ADDR, PDPT_ADDR, PML4_ADDR, ZERO_PAGE_ADDR,
};

/// Builds a GDT descriptor from flags (access byte and granularity nibble, as in
/// Linux's `GDT_ENTRY`), base and limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
        | ((limit & 0x000f_0000) << 32)
        | ((flags & 0xf0ff) << 40)
}

/// Selector of the code segment.
pub const CODE_SEL: u16 = 0x08;
/// Selector of the data segments.
pub const DATA_SEL: u16 = 0x10;
/// Selector of the TSS.
pub const TSS_SEL: u16 = 0x18;

/// The boot GDT: null, code (64-bit, or 32-bit for PVH), data, TSS. The PVH
/// ABI asks for a busy 32-bit TSS with base 0 and limit 0x67.
pub fn gdt(long_mode: bool) -> [u64; 4] {
    let (code, tss) = if long_mode {
        (0xa09b, gdt_entry(0x808b, 0, 0xfffff))
    } else {
        (0xc09b, gdt_entry(0x008b, 0, 0x67))
    };
    [
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
        tss,
    ]
}

/// The `kvm_segment` that loading `selector` from a GDT holding `entry` produces.
pub fn segment(selector: u16, entry: u64) -> kvm_segment {
    let bit = |n: u32| u8::from((entry >> n) & 1 == 1);
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit = (entry & 0xffff) | ((entry >> 32) & 0xf_0000);
    let g = bit(55);
    kvm_segment {
        base,
        limit: u32::try_from(if g == 1 { (limit << 12) | 0xfff } else { limit })
            .expect("20-bit limit scaled by 4 KiB fits in 32 bits"),
        selector,
        type_: u8::try_from((entry >> 40) & 0xf).expect("4 bits"),
        present: bit(47),
        dpl: u8::try_from((entry >> 45) & 3).expect("2 bits"),
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g,
        avl: bit(52),
        unusable: u8::from(bit(47) == 0),
        padding: 0,
    }
}

/// Page-table pages mapping the low 4 GiB 1:1 with 2 MiB pages: `(gpa, page)`.
pub fn identity_page_tables() -> Vec<(u64, Vec<u8>)> {
    const PRESENT_RW: u64 = 0x3;
    const HUGE: u64 = 0x80;
    let mut pml4 = vec![0u8; 4096];
    pml4[..8].copy_from_slice(&(PDPT_ADDR | PRESENT_RW).to_le_bytes());
    let mut pdpt = vec![0u8; 4096];
    let mut pages = Vec::new();
    for dir in 0..4u64 {
        let pd_addr = PD_ADDR + dir * 4096;
        let off = usize::try_from(dir * 8).expect("small");
        pdpt[off..off + 8].copy_from_slice(&(pd_addr | PRESENT_RW).to_le_bytes());
        let mut pd = vec![0u8; 4096];
        for (i, slot) in (0u64..).zip(pd.chunks_exact_mut(8)) {
            let addr = ((dir << 9) + i) << 21;
            slot.copy_from_slice(&(addr | PRESENT_RW | HUGE).to_le_bytes());
        }
        pages.push((pd_addr, pd));
    }
    let mut out = vec![(PML4_ADDR, pml4), (PDPT_ADDR, pdpt)];
    out.extend(pages);
    out
}

/// The GDT and (empty) IDT as bytes: `(gpa, bytes)`.
pub fn descriptor_tables(long_mode: bool) -> Vec<(u64, Vec<u8>)> {
    let gdt_bytes = gdt(long_mode)
        .iter()
        .flat_map(|e| e.to_le_bytes())
        .collect();
    vec![(GDT_ADDR, gdt_bytes), (IDT_ADDR, vec![0u8; 8])]
}

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Sets segments, descriptor tables and control registers for the entry mode.
pub fn boot_sregs(sregs: &mut kvm_sregs, long_mode: bool) {
    let table = gdt(long_mode);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 7;
    sregs.cs = segment(CODE_SEL, table[1]);
    let data = segment(DATA_SEL, table[2]);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(TSS_SEL, table[3]);
    // Protected mode and nothing else: KVM's reset value also has CD and NW
    // (caches off), which the PVH ABI wants cleared ("all other writable bits").
    sregs.cr0 = CR0_PE | CR0_ET;
    if long_mode {
        sregs.cr3 = PML4_ADDR;
        sregs.cr4 |= CR4_PAE;
        sregs.cr0 |= CR0_PG;
        sregs.efer |= EFER_LME | EFER_LMA;
    } else {
        sregs.cr4 = 0;
        sregs.efer = 0;
    }
}

/// General registers at entry: 64-bit gets the zero page in RSI, PVH the start
/// info in RBX.
pub fn boot_regs(entry: u64, long_mode: bool, pvh_info: u64) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    if long_mode {
        regs.rsp = BOOT_STACK;
        regs.rbp = BOOT_STACK;
        regs.rsi = ZERO_PAGE_ADDR;
    } else {
        regs.rbx = pvh_info;
    }
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_match_linux_encodings() {
        let g = gdt(true);
        assert_eq!(g[1], 0x00af_9b00_0000_ffff);
        assert_eq!(g[2], 0x00cf_9300_0000_ffff);
        assert_eq!(g[3], 0x008f_8b00_0000_ffff);
        assert_eq!(gdt(false)[1], 0x00cf_9b00_0000_ffff);
        let cs = segment(CODE_SEL, g[1]);
        assert_eq!(
            (cs.l, cs.db, cs.g, cs.present, cs.s, cs.type_),
            (1, 0, 1, 1, 1, 0xb)
        );
        assert_eq!((cs.base, cs.limit), (0, 0xffff_ffff));
        let tss = segment(TSS_SEL, g[3]);
        assert_eq!((tss.s, tss.type_), (0, 0xb));
    }

    #[test]
    fn page_tables_identity_map_4gib() {
        let pages = identity_page_tables();
        assert_eq!(pages.len(), 6);
        let entry =
            |page: &[u8], i: usize| u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!(entry(&pages[0].1, 0), PDPT_ADDR | 3);
        assert_eq!(entry(&pages[1].1, 3), (PD_ADDR + 3 * 4096) | 3);
        assert_eq!(entry(&pages[2].1, 1), (2 << 20) | 0x83);
        // The LAPIC page (0xfee00000) sits in the last directory.
        let (gpa, pd3) = &pages[5];
        assert_eq!(*gpa, PD_ADDR + 3 * 4096);
        assert_eq!(entry(pd3, 0x1f7), 0xfee0_0000 | 0x83);
    }

    #[test]
    fn entry_sregs_follow_the_boot_protocols() {
        // Starting from KVM's reset CR0 (CD|NW|ET): caches end up enabled.
        let reset = || kvm_sregs {
            cr0: 0x6000_0010,
            ..Default::default()
        };
        let mut s = reset();
        boot_sregs(&mut s, true);
        assert_eq!(s.cr0, CR0_PG | CR0_ET | CR0_PE);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cr4 & CR4_PAE, CR4_PAE);
        assert_eq!(s.cr3, PML4_ADDR);
        assert_eq!((s.cs.l, s.cs.db, s.cs.selector), (1, 0, CODE_SEL));
        assert_eq!(boot_regs(0x1000, true, 0).rsi, ZERO_PAGE_ADDR);

        let mut p = reset();
        boot_sregs(&mut p, false);
        assert_eq!(p.cr0, CR0_PE | CR0_ET, "PVH: PE, other writable bits clear");
        assert_eq!((p.cr4, p.efer), (0, 0));
        assert_eq!((p.cs.db, p.cs.l), (1, 0));
        assert_eq!((p.cs.base, p.cs.limit), (0, 0xffff_ffff));
        assert_eq!((p.ds.db, p.ds.base, p.ds.limit), (1, 0, 0xffff_ffff));
        // PVH: a busy 32-bit TSS, base 0, limit 0x67.
        assert_eq!(
            (
                p.tr.type_,
                p.tr.s,
                p.tr.present,
                p.tr.base,
                p.tr.limit,
                p.tr.g
            ),
            (0xb, 0, 1, 0, 0x67, 0)
        );
        let r = boot_regs(0x1000, false, 0x6000);
        assert_eq!((r.rbx, r.rip, r.rflags), (0x6000, 0x1000, 2));
    }
}
