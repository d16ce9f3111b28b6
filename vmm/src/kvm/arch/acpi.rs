//! ACPI tables for the guest kernel: RSDP → XSDT → FADT (→ FACS, DSDT), MADT
//! and SRAT, written to the reserved range at [`ACPI_START`].
//!
//! The MADT lists the same APIC IDs as the CPUID leaves and the MP table; the
//! SRAT puts each APIC ID and a share of RAM in its NUMA node. The FADT is a
//! full (not hardware-reduced) one, so Linux keeps the legacy PIC and PIT the
//! VMM emulates; it points at a tiny PM1 register block the VMM answers
//! ([`crate::kvm::devices::pm1`]: always in ACPI mode, enable bits kept, no events)
//! and at an empty DSDT, which is all the ACPI interpreter needs to start.
use super::layout::{IOAPIC_ADDR, LAPIC_ADDR, ram_ranges};
use super::mptable::checksum;
use crate::kvm::devices::{I8042_COMMAND, PM1A_CNT_BLK, PM1A_EVT_BLK};

/// Where the RSDP goes (16-byte aligned, inside the BIOS area Linux scans);
/// the other tables follow it.
pub const ACPI_START: u64 = 0xe_0000;
/// End of the area the tables may fill.
pub const ACPI_END: u64 = 0x10_0000;
/// ISA IRQ of the ACPI system control interrupt.
pub const SCI_IRQ: u8 = 9;

const OEM_ID: &[u8; 6] = b"SCHEDT";
const OEM_TABLE_ID: &[u8; 8] = b"SCHEDTAP";
const CREATOR_ID: &[u8; 4] = b"STVM";
/// Size of the common table header.
const HEADER: usize = 36;
/// Processor and memory affinity entries are "enabled".
const ENABLED: u32 = 1;

/// Why the tables could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcpiError {
    #[error("ACPI tables need at least one CPU")]
    NoCpus,
    /// More APIC IDs than the IOAPIC ID space leaves room for.
    #[error("no free 8-bit IOAPIC ID above APIC ID {0}")]
    NoIoapicId(u32),
    #[error("{0} bytes of ACPI tables do not fit below 1 MiB")]
    TooLarge(u64),
    #[error("node {node} would get no memory ({mem_mib} MiB over {nodes} nodes)")]
    NodeWithoutMemory { node: u32, nodes: u32, mem_mib: u64 },
}

/// One logical CPU as the tables describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiCpu {
    pub apic_id: u32,
    /// NUMA node (SRAT proximity domain).
    pub node: u32,
}

/// A RAM range of one NUMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryAffinity {
    pub base: u64,
    pub len: u64,
    pub node: u32,
}

/// The tables and where each goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    /// What to tell the kernel (boot_params `acpi_rsdp_addr`, PVH `rsdp_paddr`).
    pub rsdp_addr: u64,
    /// `(gpa, bytes)` for every table, the RSDP first.
    pub blobs: Vec<(u64, Vec<u8>)>,
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A system description table: the 36-byte header, `body`, checksum.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; HEADER];
    t[..4].copy_from_slice(signature);
    let len = u32::try_from(HEADER + body.len()).expect("tables are small");
    put_u32(&mut t, 4, len);
    t[8] = revision;
    t[10..16].copy_from_slice(OEM_ID);
    t[16..24].copy_from_slice(OEM_TABLE_ID);
    put_u32(&mut t, 24, 1); // OEM revision
    t[28..32].copy_from_slice(CREATOR_ID);
    put_u32(&mut t, 32, 1); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// Root System Description Pointer (ACPI 2.0+, 36 bytes) naming the XSDT.
pub fn rsdp(xsdt: u64) -> Vec<u8> {
    let mut r = vec![0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    r[15] = 2; // revision: XSDT present
    put_u32(&mut r, 20, 36);
    put_u64(&mut r, 24, xsdt);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Extended System Description Table: 64-bit pointers to `tables`.
pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|a| a.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

/// A Generic Address Structure for an I/O port register.
fn gas_io(bits: u8, access_size: u8, port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O space
    g[1] = bits;
    g[3] = access_size; // 1 byte, 2 word, 3 dword
    put_u64(&mut g, 4, u64::from(port));
    g
}

/// FADT boot architecture flags: legacy devices, 8042, no VGA, no MSI, no CMOS RTC.
pub const IAPC_BOOT_ARCH: u16 = 0x1 | 0x2 | 0x4 | 0x8 | 0x20;
/// FADT feature flags: WBINVD, C1 on all CPUs, no fixed power/sleep button, reset register.
pub const FADT_FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 10);

/// Fixed ACPI Description Table (revision 6, 276 bytes).
pub fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut b = vec![0u8; 276 - HEADER];
    // Offsets below are from the start of the table; `b` starts after the header.
    let at = |off: usize| off - HEADER;
    let low = |a: u64| u32::try_from(a).expect("tables live below 1 MiB");
    put_u32(&mut b, at(36), low(facs)); // FIRMWARE_CTRL
    put_u32(&mut b, at(40), low(dsdt)); // DSDT
    put_u16(&mut b, at(46), u16::from(SCI_IRQ)); // SCI_INT
    // SMI_CMD stays 0: no SMM, the platform is always in ACPI mode.
    put_u32(&mut b, at(56), u32::from(PM1A_EVT_BLK));
    put_u32(&mut b, at(64), u32::from(PM1A_CNT_BLK));
    b[at(88)] = 4; // PM1_EVT_LEN
    b[at(89)] = 2; // PM1_CNT_LEN
    put_u16(&mut b, at(96), 101); // P_LVL2_LAT > 100: no C2
    put_u16(&mut b, at(98), 1001); // P_LVL3_LAT > 1000: no C3
    put_u16(&mut b, at(109), IAPC_BOOT_ARCH);
    put_u32(&mut b, at(112), FADT_FLAGS);
    // Reset through the i8042, the same line `reboot=k` uses.
    b[at(116)..at(128)].copy_from_slice(&gas_io(8, 1, I8042_COMMAND));
    b[at(128)] = 0xfe; // RESET_VALUE
    b[at(131)] = 5; // FADT minor version (6.5)
    // X_FIRMWARE_CTRL stays 0: it must be when FIRMWARE_CTRL is set (else
    // Linux installs the FACS twice).
    put_u64(&mut b, at(140), dsdt); // X_DSDT
    b[at(148)..at(160)].copy_from_slice(&gas_io(32, 2, PM1A_EVT_BLK));
    b[at(172)..at(184)].copy_from_slice(&gas_io(16, 2, PM1A_CNT_BLK));
    sdt(b"FACP", 6, &b)
}

/// Firmware ACPI Control Structure (64 bytes, no checksum; 64-byte aligned).
pub fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"FACS");
    put_u32(&mut f, 4, 64);
    f[32] = 2; // version
    f
}

/// An empty Differentiated System Description Table (no AML: the VMM has no
/// devices to describe beyond what the FADT and MADT say).
pub fn dsdt() -> Vec<u8> {
    sdt(b"DSDT", 2, &[])
}

/// The IOAPIC's ID: one above the highest APIC ID (as in the MP table).
pub fn ioapic_id(cpus: &[AcpiCpu]) -> Result<u8, AcpiError> {
    let max = cpus
        .iter()
        .map(|c| c.apic_id)
        .max()
        .ok_or(AcpiError::NoCpus)?;
    max.checked_add(1)
        .and_then(|id| u8::try_from(id).ok())
        .filter(|&id| id < 0xff)
        .ok_or(AcpiError::NoIoapicId(max))
}

/// Multiple APIC Description Table: a local APIC (or x2APIC for IDs ≥ 255)
/// per CPU in logical-CPU order, the IOAPIC at GSI 0, the SCI override, and
/// LINT1 as NMI.
pub fn madt(cpus: &[AcpiCpu], ioapic: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: 8259 PICs present
    let mut x2 = false;
    for (uid, c) in (0u32..).zip(cpus) {
        match (u8::try_from(c.apic_id), u8::try_from(uid)) {
            (Ok(id), Ok(uid)) if id < 0xff => {
                b.extend_from_slice(&[0, 8, uid, id]);
                b.extend_from_slice(&ENABLED.to_le_bytes());
            }
            _ => {
                x2 = true;
                b.extend_from_slice(&[9, 16, 0, 0]);
                b.extend_from_slice(&c.apic_id.to_le_bytes());
                b.extend_from_slice(&ENABLED.to_le_bytes());
                b.extend_from_slice(&uid.to_le_bytes());
            }
        }
    }
    b.extend_from_slice(&[1, 12, ioapic, 0]);
    b.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // GSI base
    // SCI: ISA IRQ 9 -> GSI 9, active high, level triggered. ISA IRQs 0-15
    // otherwise map 1:1 (KVM's default routing), so no other override.
    b.extend_from_slice(&[2, 10, 0, SCI_IRQ]);
    b.extend_from_slice(&u32::from(SCI_IRQ).to_le_bytes());
    b.extend_from_slice(&0x000du16.to_le_bytes());
    // LINT1 is NMI on every local APIC (processor UID 0xff / 0xffffffff: all).
    b.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    if x2 {
        b.extend_from_slice(&[0x0a, 12, 0, 0]);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0]);
    }
    sdt(b"APIC", 5, &b)
}

/// System Resource Affinity Table: each APIC ID and RAM range in its node.
pub fn srat(cpus: &[AcpiCpu], memory: &[MemoryAffinity]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes()); // reserved, 1 for compatibility
    b.extend_from_slice(&[0; 8]);
    for c in cpus {
        let node = c.node.to_le_bytes();
        match u8::try_from(c.apic_id) {
            Ok(id) if id < 0xff => {
                b.extend_from_slice(&[0, 16, node[0], id]);
                b.extend_from_slice(&ENABLED.to_le_bytes());
                b.extend_from_slice(&[0, node[1], node[2], node[3]]);
                b.extend_from_slice(&0u32.to_le_bytes()); // clock domain
            }
            _ => {
                b.extend_from_slice(&[2, 24, 0, 0]);
                b.extend_from_slice(&node);
                b.extend_from_slice(&c.apic_id.to_le_bytes());
                b.extend_from_slice(&ENABLED.to_le_bytes());
                b.extend_from_slice(&[0; 8]); // clock domain, reserved
            }
        }
    }
    for m in memory {
        b.extend_from_slice(&[1, 40]);
        b.extend_from_slice(&m.node.to_le_bytes());
        b.extend_from_slice(&[0; 2]);
        b.extend_from_slice(&m.base.to_le_bytes());
        b.extend_from_slice(&m.len.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&ENABLED.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
    }
    sdt(b"SRAT", 3, &b)
}

/// Splits the RAM of a `mem_size`-byte guest among `nodes` nodes as
/// [`crate::numa::node_shares`] does, in address order; a share that spans
/// the MMIO gap becomes two ranges.
pub fn numa_memory(mem_size: u64, nodes: u32) -> Result<Vec<MemoryAffinity>, AcpiError> {
    let nodes = nodes.max(1);
    let shares = crate::numa::node_shares(mem_size, nodes);
    let mut out = Vec::new();
    let mut node = 0u32;
    let mut left = shares[0];
    for (mut base, mut len) in ram_ranges(mem_size) {
        while len > 0 {
            let take = if node + 1 == nodes {
                len
            } else {
                len.min(left)
            };
            if take > 0 {
                out.push(MemoryAffinity {
                    base,
                    len: take,
                    node,
                });
            }
            base += take;
            len -= take;
            left -= take.min(left);
            if left == 0 && node + 1 < nodes {
                node += 1;
                left = shares[node as usize];
            }
        }
    }
    for n in 0..nodes {
        if !out.iter().any(|m| m.node == n && m.len > 0) {
            return Err(AcpiError::NodeWithoutMemory {
                node: n,
                nodes,
                mem_mib: mem_size >> 20,
            });
        }
    }
    Ok(out)
}

/// Every table, laid out from [`ACPI_START`] (each 64-byte aligned).
pub fn tables(cpus: &[AcpiCpu], memory: &[MemoryAffinity]) -> Result<AcpiTables, AcpiError> {
    let ioapic = ioapic_id(cpus)?;
    let mut next = ACPI_START;
    let mut place = |len: usize| {
        let at = next;
        next = (next + len as u64).next_multiple_of(64);
        at
    };
    let rsdp_addr = place(36);
    // The XSDT's size is known up front: three pointers.
    let xsdt_addr = place(HEADER + 3 * 8);
    let facs_addr = place(64);
    let dsdt_bytes = dsdt();
    let dsdt_addr = place(dsdt_bytes.len());
    let fadt_bytes = fadt(facs_addr, dsdt_addr);
    let fadt_addr = place(fadt_bytes.len());
    let madt_bytes = madt(cpus, ioapic);
    let madt_addr = place(madt_bytes.len());
    let srat_bytes = srat(cpus, memory);
    let srat_addr = place(srat_bytes.len());
    if next > ACPI_END {
        return Err(AcpiError::TooLarge(next - ACPI_START));
    }
    Ok(AcpiTables {
        rsdp_addr,
        blobs: vec![
            (rsdp_addr, rsdp(xsdt_addr)),
            (xsdt_addr, xsdt(&[fadt_addr, madt_addr, srat_addr])),
            (facs_addr, facs()),
            (dsdt_addr, dsdt_bytes),
            (fadt_addr, fadt_bytes),
            (madt_addr, madt_bytes),
            (srat_addr, srat_bytes),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvm::arch::cpuid::CpuTopology;
    use trace_format::scenario::Topology;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }
    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// Logical CPUs of `t` as the builder describes them.
    fn cpus_of(t: Topology) -> Vec<AcpiCpu> {
        let topo = CpuTopology::new(t);
        (0..topo.cpus())
            .map(|c| AcpiCpu {
                apic_id: topo.apic_id(c),
                node: t.locate(c).unwrap().node,
            })
            .collect()
    }

    /// The table at `gpa` among `t`'s blobs.
    fn at(t: &AcpiTables, gpa: u64) -> &[u8] {
        &t.blobs.iter().find(|(a, _)| *a == gpa).expect("table").1
    }

    /// Checks the common header; returns the body.
    fn body<'a>(table: &'a [u8], sig: &[u8; 4]) -> &'a [u8] {
        assert_eq!(&table[..4], sig);
        assert_eq!(u32_at(table, 4) as usize, table.len(), "{sig:?} length");
        assert_eq!(sum(table), 0, "{sig:?} checksum");
        assert_eq!(&table[10..16], OEM_ID);
        &table[HEADER..]
    }

    /// Splits a MADT/SRAT entry list into (type, bytes).
    fn entries(mut b: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = usize::from(b[1]);
            assert!(len >= 2 && len <= b.len(), "bad entry length {len}");
            out.push((b[0], &b[..len]));
            b = &b[len..];
        }
        out
    }

    #[test]
    fn rsdp_xsdt_and_fadt_chain_with_valid_checksums() {
        let cpus = cpus_of(Topology::new(1, 1, 2, 1));
        let mem = numa_memory(256 << 20, 1).unwrap();
        let t = tables(&cpus, &mem).unwrap();
        assert_eq!(t.rsdp_addr, ACPI_START);
        let r = at(&t, t.rsdp_addr);
        assert_eq!(r.len(), 36);
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(sum(&r[..20]), 0);
        assert_eq!(sum(r), 0);
        assert_eq!((r[15], u32_at(r, 16), u32_at(r, 20)), (2, 0, 36));
        let x = body(at(&t, u64_at(r, 24)), b"XSDT");
        let ptrs: Vec<u64> = x.chunks(8).map(|c| u64_at(c, 0)).collect();
        let sigs: Vec<&[u8]> = ptrs.iter().map(|&p| &at(&t, p)[..4]).collect();
        assert_eq!(sigs, [b"FACP", b"APIC", b"SRAT"]);
        for (gpa, bytes) in &t.blobs {
            assert!(*gpa >= ACPI_START && gpa + bytes.len() as u64 <= ACPI_END);
            assert_eq!(gpa % 16, 0);
        }

        let fadt = at(&t, ptrs[0]);
        body(fadt, b"FACP");
        assert_eq!((fadt.len(), fadt[8], fadt[131]), (276, 6, 5));
        let (facs, dsdt) = (u64::from(u32_at(fadt, 36)), u64::from(u32_at(fadt, 40)));
        assert_eq!((u64_at(fadt, 132), u64_at(fadt, 140)), (0, dsdt));
        assert_eq!(facs % 64, 0, "FACS alignment");
        let f = at(&t, facs);
        assert_eq!((&f[..4], u32_at(f, 4), f[32]), (&b"FACS"[..], 64, 2));
        assert!(body(at(&t, dsdt), b"DSDT").is_empty());
        assert_eq!(u16_at(fadt, 46), 9, "SCI_INT");
        assert_eq!(u32_at(fadt, 48), 0, "no SMI command port");
        assert_eq!(u32_at(fadt, 56), 0x600);
        assert_eq!(u32_at(fadt, 64), 0x604);
        assert_eq!((fadt[88], fadt[89]), (4, 2));
        assert_eq!(u16_at(fadt, 109), IAPC_BOOT_ARCH);
        assert_eq!(u32_at(fadt, 112) & (1 << 20), 0, "not hardware-reduced");
        // Reset register: I/O port 0x64, 8 bits, value 0xfe.
        assert_eq!((fadt[116], fadt[117], u64_at(fadt, 120)), (1, 8, 0x64));
        assert_eq!(fadt[128], 0xfe);
        // X_PM1a_EVT_BLK / X_PM1a_CNT_BLK agree with the 32-bit fields.
        assert_eq!((fadt[148], fadt[149], u64_at(fadt, 152)), (1, 32, 0x600));
        assert_eq!((fadt[172], fadt[173], u64_at(fadt, 176)), (1, 16, 0x604));
    }

    #[test]
    fn madt_lists_the_topology_apic_ids_and_the_ioapic() {
        // 2 LLCs x 3 cores: APIC IDs 0,1,2,4,5,6 (gaps), as CPUID and the MP table say.
        let cpus = cpus_of(Topology::new(1, 2, 3, 1));
        let ids: Vec<u32> = cpus.iter().map(|c| c.apic_id).collect();
        assert_eq!(ids, [0, 1, 2, 4, 5, 6]);
        let t = madt(&cpus, ioapic_id(&cpus).unwrap());
        let b = body(&t, b"APIC");
        assert_eq!(t[8], 5);
        assert_eq!((u32_at(b, 0), u32_at(b, 4)), (0xfee0_0000, 1));
        let e = entries(&b[8..]);
        let lapics: Vec<(u8, u8, u32)> = e
            .iter()
            .filter(|(k, _)| *k == 0)
            .map(|(_, x)| (x[2], x[3], u32_at(x, 4)))
            .collect();
        assert_eq!(
            lapics,
            vec![
                (0, 0, 1),
                (1, 1, 1),
                (2, 2, 1),
                (3, 4, 1),
                (4, 5, 1),
                (5, 6, 1)
            ]
        );
        let io = e.iter().find(|(k, _)| *k == 1).unwrap().1;
        assert_eq!(io.len(), 12);
        assert_eq!((io[2], u32_at(io, 4), u32_at(io, 8)), (7, 0xfec0_0000, 0));
        let iso: Vec<&[u8]> = e.iter().filter(|(k, _)| *k == 2).map(|e| e.1).collect();
        assert_eq!(iso.len(), 1);
        assert_eq!(
            (iso[0][3], u32_at(iso[0], 4), u16_at(iso[0], 8)),
            (9, 9, 0xd)
        );
        let nmi = e.iter().find(|(k, _)| *k == 4).unwrap().1;
        assert_eq!(nmi, &[4, 6, 0xff, 0, 0, 1]);
        assert!(!e.iter().any(|(k, _)| *k == 9 || *k == 0xa));
    }

    #[test]
    fn large_apic_ids_use_x2apic_entries() {
        let cpus = [
            AcpiCpu {
                apic_id: 0,
                node: 0,
            },
            AcpiCpu {
                apic_id: 300,
                node: 1,
            },
        ];
        let t = madt(&cpus, 1);
        let e = entries(&body(&t, b"APIC")[8..]);
        let x2 = e.iter().find(|(k, _)| *k == 9).unwrap().1;
        assert_eq!((x2.len(), u32_at(x2, 4), u32_at(x2, 12)), (16, 300, 1));
        assert!(e.iter().any(|(k, _)| *k == 0xa), "x2APIC NMI");
        let s = srat(&cpus, &[]);
        let e = entries(&body(&s, b"SRAT")[12..]);
        let x2 = e[1].1;
        assert_eq!(
            (e[1].0, x2.len(), u32_at(x2, 4), u32_at(x2, 8)),
            (2, 24, 1, 300)
        );
        assert!(ioapic_id(&cpus).is_err(), "no 8-bit IOAPIC ID above 300");
    }

    #[test]
    fn srat_puts_cpus_and_memory_in_their_nodes() {
        // 2 nodes x 2 cores x 2 threads: APIC IDs 0-3 in node 0, 4-7 in node 1.
        let cpus = cpus_of(Topology::new(2, 1, 2, 2));
        let mem = numa_memory(1 << 30, 2).unwrap();
        let t = srat(&cpus, &mem);
        let b = body(&t, b"SRAT");
        assert_eq!(t[8], 3);
        assert_eq!(u32_at(b, 0), 1);
        let e = entries(&b[12..]);
        let procs: Vec<(u32, u32)> = e
            .iter()
            .filter(|(k, _)| *k == 0)
            .map(|(_, x)| {
                assert_eq!((x.len(), u32_at(x, 4)), (16, 1));
                let node = u32::from(x[2]) | (u32::from(x[9]) << 8);
                (u32::from(x[3]), node)
            })
            .collect();
        assert_eq!(
            procs,
            vec![
                (0, 0),
                (1, 0),
                (2, 0),
                (3, 0),
                (4, 1),
                (5, 1),
                (6, 1),
                (7, 1)
            ]
        );
        let mems: Vec<(u32, u64, u64)> = e
            .iter()
            .filter(|(k, _)| *k == 1)
            .map(|(_, x)| {
                assert_eq!((x.len(), u32_at(x, 28)), (40, 1));
                (u32_at(x, 2), u64_at(x, 8), u64_at(x, 16))
            })
            .collect();
        assert_eq!(mems, vec![(0, 0, 512 << 20), (1, 512 << 20, 512 << 20)]);
    }

    #[test]
    fn numa_shares_split_around_the_mmio_gap() {
        let one = numa_memory(256 << 20, 1).unwrap();
        assert_eq!(
            one,
            vec![MemoryAffinity {
                base: 0,
                len: 256 << 20,
                node: 0
            }]
        );
        // 4 GiB over 2 nodes: 2 GiB each; RAM is 0-3 GiB and 4-5 GiB.
        let m = numa_memory(4 << 30, 2).unwrap();
        let got: Vec<(u64, u64, u32)> = m.iter().map(|m| (m.base, m.len, m.node)).collect();
        assert_eq!(
            got,
            vec![
                (0, 2 << 30, 0),
                (2 << 30, 1 << 30, 1),
                (4 << 30, 1 << 30, 1)
            ]
        );
        let total: u64 = numa_memory(1000 << 20, 3)
            .unwrap()
            .iter()
            .map(|m| m.len)
            .sum();
        assert_eq!(total, 1000 << 20);
        assert!(numa_memory(2 << 20, 4).is_err());
    }
}
