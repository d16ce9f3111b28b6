//! CPUID entries that describe the synthetic topology: leaves 1, 4, 0xB and 0x1F
//! (and AMD's 0x8000_0008/1D/1E), with APIC IDs derived the same way everywhere,
//! plus the feature bits that `KVM_GET_SUPPORTED_CPUID` leaves to userspace
//! ([`CpuidFeatures`]).
use kvm_bindings::{KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};
use trace_format::scenario::Topology;

/// How logical CPUs map onto x2APIC IDs: thread, core-in-LLC, LLC-in-node and
/// node bit fields, each as wide as needed (so IDs may have gaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    pub topology: Topology,
    pub smt_bits: u32,
    pub core_bits: u32,
    pub llc_bits: u32,
}

/// Bits needed to number `n` things.
fn order(n: u16) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - u32::from(n - 1).leading_zeros()
    }
}

impl CpuTopology {
    pub fn new(topology: Topology) -> Self {
        CpuTopology {
            topology,
            smt_bits: order(topology.threads_per_core),
            core_bits: order(topology.cores_per_llc),
            llc_bits: order(topology.llcs_per_node),
        }
    }

    /// Logical CPUs in total.
    pub fn cpus(&self) -> u32 {
        self.topology.cpus()
    }

    /// APIC ID shift of the core level (threads below it).
    pub fn core_shift(&self) -> u32 {
        self.smt_bits
    }

    /// APIC ID shift of the LLC level (cores and threads below it).
    pub fn llc_shift(&self) -> u32 {
        self.smt_bits + self.core_bits
    }

    /// APIC ID shift of the package (= NUMA node) level.
    pub fn package_shift(&self) -> u32 {
        self.smt_bits + self.core_bits + self.llc_bits
    }

    /// Logical CPUs per package (node).
    pub fn cpus_per_package(&self) -> u32 {
        self.cpus() / u32::from(self.topology.nodes)
    }

    /// The x2APIC ID (also the KVM vCPU id) of logical CPU `cpu`.
    pub fn apic_id(&self, cpu: u32) -> u32 {
        let t = self.topology;
        let loc = t.locate(cpu).expect("cpu index within topology");
        let llc = loc.llc % u32::from(t.llcs_per_node);
        let core = loc.core % u32::from(t.cores_per_llc);
        (loc.node << self.package_shift())
            | (llc << self.llc_shift())
            | (core << self.core_shift())
            | loc.thread
    }
}

/// CPU vendor, which decides the extended topology leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Other,
}

impl Vendor {
    /// The vendor named by leaf 0 of `entries`.
    pub fn of(entries: &[kvm_cpuid_entry2]) -> Vendor {
        match find(entries, 0, 0) {
            Some(e) if (e.ebx, e.edx, e.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => {
                Vendor::Intel
            }
            Some(e) if (e.ebx, e.edx, e.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163) => {
                Vendor::Amd
            }
            _ => Vendor::Other,
        }
    }
}

/// The entry for `function`/`index`, if present.
pub fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == function && e.index == index)
}

fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
        ..Default::default()
    }
}

/// Synthetic cache geometry: (type, level, size in KiB, ways); 64-byte lines.
const CACHES: [(u32, u32, u32, u32); 4] = [
    (1, 1, 32, 8),     // L1 data, per core
    (2, 1, 32, 8),     // L1 instruction, per core
    (3, 2, 1024, 16),  // L2 unified, per core
    (3, 3, 16384, 16), // L3 unified, per LLC
];
const LINE: u32 = 64;

/// Deterministic cache leaves (leaf 4 layout; `with_cores` adds Intel's EAX[31:26]).
fn cache_leaves(topo: &CpuTopology, function: u32, with_cores: bool) -> Vec<kvm_cpuid_entry2> {
    let mut out = Vec::new();
    for (i, &(kind, level, kib, ways)) in (0u32..).zip(CACHES.iter()) {
        let sharing_bits = if level == 3 {
            topo.llc_shift()
        } else {
            topo.smt_bits
        };
        let cores = if with_cores {
            ((1u32 << (topo.core_bits + topo.llc_bits)) - 1) << 26
        } else {
            0
        };
        let eax = kind | (level << 5) | (1 << 8) | (((1u32 << sharing_bits) - 1) << 14) | cores;
        let sets = kib * 1024 / (ways * LINE);
        let ebx = ((ways - 1) << 22) | (LINE - 1);
        out.push(entry(function, i, [eax, ebx, sets - 1, 0]));
    }
    let end = u32::try_from(CACHES.len()).expect("four caches");
    out.push(entry(function, end, [0; 4]));
    out
}

/// Leaf 0xB (legacy extended topology): SMT and core levels.
fn leaf_0b(topo: &CpuTopology, apic: u32) -> Vec<kvm_cpuid_entry2> {
    let t = topo.topology;
    vec![
        entry(
            0xb,
            0,
            [topo.smt_bits, t.threads_per_core.into(), 1 << 8, apic],
        ),
        entry(
            0xb,
            1,
            [
                topo.package_shift(),
                topo.cpus_per_package(),
                (2 << 8) | 1,
                apic,
            ],
        ),
        entry(0xb, 2, [0, 0, 2, apic]),
    ]
}

/// Leaf 0x1F (V2 extended topology): SMT, core, and die (= LLC) when there are several.
fn leaf_1f(topo: &CpuTopology, apic: u32) -> Vec<kvm_cpuid_entry2> {
    let t = topo.topology;
    let per_llc = u32::from(t.threads_per_core) * u32::from(t.cores_per_llc);
    let mut out = vec![
        entry(
            0x1f,
            0,
            [topo.smt_bits, t.threads_per_core.into(), 1 << 8, apic],
        ),
        entry(0x1f, 1, [topo.llc_shift(), per_llc, (2 << 8) | 1, apic]),
    ];
    if t.llcs_per_node > 1 {
        let sub = (5 << 8) | 2;
        out.push(entry(
            0x1f,
            2,
            [topo.package_shift(), topo.cpus_per_package(), sub, apic],
        ));
    }
    let last = u32::try_from(out.len()).expect("few levels");
    out.push(entry(0x1f, last, [0, 0, last, apic]));
    out
}

/// Leaf 1 ECX: the TSC-deadline mode of the LAPIC timer.
pub const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 ECX: "running under a hypervisor". Linux looks for the KVM signature
/// leaves (0x4000_0000/1, so kvmclock and the PV features) only when it is set.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 0x8000_0007 EDX: invariant TSC.
pub const LEAF_80000007_EDX_INVTSC: u32 = 1 << 8;

/// What the host offers beyond `KVM_GET_SUPPORTED_CPUID`, which by design
/// reports neither the hypervisor bit nor TSC-deadline (see the kernel's
/// Documentation/virt/kvm/api.rst, "KVM_GET_SUPPORTED_CPUID issues").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidFeatures {
    /// `KVM_CAP_TSC_DEADLINE_TIMER` (with the in-kernel LAPIC): advertise
    /// TSC-deadline, so Linux need not calibrate the LAPIC timer against the PIT.
    pub tsc_deadline: bool,
}

/// The CPUID table for logical CPU `cpu`: `base` (KVM's supported set) with the
/// topology leaves replaced and these feature bits fixed up:
/// - leaf 1 ECX: hypervisor bit set (without it Linux never reads the KVM
///   signature leaves: no kvmclock, no PV features, TSC calibrated against
///   the PIT); TSC-deadline set exactly when `features` says KVM emulates it;
/// - leaf 0x8000_0007 EDX: invariant TSC cleared, so the guest keeps kvm-clock
///   as its clocksource (Linux prefers the raw TSC over kvm-clock when it is
///   invariant, and the TSC runs on while the VM is frozen: only kvm-clock is
///   restored at thaw, see [`crate::kvm::vstate::vm::set_clock`]). QEMU hides
///   it by default for the same reason (it is not migratable).
pub fn vcpu_entries(
    base: &[kvm_cpuid_entry2],
    topo: &CpuTopology,
    cpu: u32,
    features: CpuidFeatures,
) -> Vec<kvm_cpuid_entry2> {
    let vendor = Vendor::of(base);
    let apic = topo.apic_id(cpu);
    let synthetic = [4, 0xb, 0x1f, 0x8000_001d, 0x8000_001e];
    let mut out: Vec<kvm_cpuid_entry2> = base
        .iter()
        .filter(|e| !synthetic.contains(&e.function))
        .copied()
        .collect();
    let ext_max = find(base, 0x8000_0000, 0).map_or(0, |e| e.eax);
    let per_pkg_addressable = (1u32 << topo.package_shift()).min(255);
    for e in &mut out {
        match e.function {
            0 => e.eax = e.eax.max(0x1f),
            1 => {
                e.ebx = (e.ebx & 0xffff) | (per_pkg_addressable << 16) | ((apic & 0xff) << 24);
                e.edx |= 1 << 28; // HTT: the package has several logical CPUs
                e.ecx |= LEAF1_ECX_HYPERVISOR;
                if features.tsc_deadline {
                    e.ecx |= LEAF1_ECX_TSC_DEADLINE;
                } else {
                    e.ecx &= !LEAF1_ECX_TSC_DEADLINE;
                }
            }
            0x8000_0007 => e.edx &= !LEAF_80000007_EDX_INVTSC,
            0x8000_0008 if vendor == Vendor::Amd => {
                e.ecx = (e.ecx & !0xf0ff)
                    | (topo.package_shift() << 12)
                    | (topo.cpus_per_package() - 1).min(255);
            }
            _ => {}
        }
    }
    out.extend(cache_leaves(topo, 4, true));
    out.extend(leaf_0b(topo, apic));
    out.extend(leaf_1f(topo, apic));
    if vendor == Vendor::Amd && ext_max >= 0x8000_001e {
        out.extend(cache_leaves(topo, 0x8000_001d, false));
        let t = topo.topology;
        let core_id = (apic >> topo.smt_bits) & 0xff;
        let node = t.locate(cpu).map_or(0, |l| l.node);
        let ebx = ((u32::from(t.threads_per_core) - 1) << 8) | core_id;
        let mut e = entry(0x8000_001e, 0, [apic, ebx, node, 0]);
        e.flags = 0;
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(vendor: [u32; 3]) -> Vec<kvm_cpuid_entry2> {
        let mut e0 = entry(0, 0, [0xd, vendor[0], vendor[2], vendor[1]]);
        e0.flags = 0;
        let mut e1 = entry(1, 0, [0x806f8, 0x0000_0800, 0, 0]);
        e1.flags = 0;
        let mut ext = entry(0x8000_0000, 0, [0x8000_0021, 0, 0, 0]);
        ext.flags = 0;
        let mut e8 = entry(0x8000_0008, 0, [0x3030, 0, 0x7007, 0]);
        e8.flags = 0;
        // As mainline KVM reports them: no hypervisor or TSC-deadline bit in
        // leaf 1, invariant TSC in 0x8000_0007, the KVM signature leaves.
        let mut e7 = entry(0x8000_0007, 0, [0, 0, 0, 0x100]);
        e7.flags = 0;
        let mut sig = entry(
            0x4000_0000,
            0,
            [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d],
        );
        sig.flags = 0;
        let mut kvm = entry(0x4000_0001, 0, [0x0100_7efb, 0, 0, 0]);
        kvm.flags = 0;
        vec![
            e0,
            e1,
            ext,
            e7,
            e8,
            sig,
            kvm,
            entry(4, 0, [0x1234, 0, 0, 0]),
        ]
    }
    const AMD: [u32; 3] = [0x6874_7541, 0x6974_6e65, 0x444d_4163];
    const INTEL: [u32; 3] = [0x756e_6547, 0x4965_6e69, 0x6c65_746e];

    fn regs(e: &[kvm_cpuid_entry2], f: u32, i: u32) -> [u32; 4] {
        let e = find(e, f, i).unwrap_or_else(|| panic!("leaf {f:#x}.{i} missing"));
        [e.eax, e.ebx, e.ecx, e.edx]
    }

    #[test]
    fn apic_ids_pack_fields_with_gaps() {
        // 2 nodes x 2 LLCs x 3 cores x 2 threads: core field needs 2 bits.
        let topo = CpuTopology::new(Topology::new(2, 2, 3, 2));
        assert_eq!((topo.smt_bits, topo.core_bits, topo.llc_bits), (1, 2, 1));
        let ids: Vec<u32> = (0..topo.cpus()).map(|c| topo.apic_id(c)).collect();
        assert_eq!(&ids[..8], &[0, 1, 2, 3, 4, 5, 8, 9]);
        assert_eq!(ids[12], 16); // first CPU of node 1
        let mut sorted = ids.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn topology_leaves_encode_1n2l4c2t() {
        let topo = CpuTopology::new(Topology::new(1, 2, 4, 2));
        let cpu = 11; // LLC 1, core 5 (1 in its LLC), thread 1
        let e = vcpu_entries(&base(INTEL), &topo, cpu, CpuidFeatures::default());
        let apic = topo.apic_id(cpu);
        assert_eq!(apic, 0b1011); // LLC 1, core 1, thread 1
        assert_eq!(regs(&e, 0, 0)[0], 0x1f);
        let l1 = regs(&e, 1, 0);
        assert_eq!(l1[1], (apic << 24) | (16 << 16) | 0x0800);
        assert_ne!(l1[3] & (1 << 28), 0);
        assert_eq!(regs(&e, 0xb, 0), [1, 2, 0x100, apic]);
        assert_eq!(regs(&e, 0xb, 1), [4, 16, 0x201, apic]);
        assert_eq!(regs(&e, 0xb, 2), [0, 0, 2, apic]);
        assert_eq!(regs(&e, 0x1f, 0), [1, 2, 0x100, apic]);
        assert_eq!(regs(&e, 0x1f, 1), [3, 8, 0x201, apic]);
        assert_eq!(regs(&e, 0x1f, 2), [4, 16, 0x502, apic]);
        assert_eq!(regs(&e, 0x1f, 3), [0, 0, 3, apic]);
        // L1d: type 1, level 1, self-init, 2 threads share, 8 addressable cores.
        let l1d = regs(&e, 4, 0);
        assert_eq!(l1d[0], 1 | (1 << 5) | (1 << 8) | (1 << 14) | (7 << 26));
        assert_eq!(l1d[1], (7 << 22) | 63);
        assert_eq!(l1d[2], 63);
        // L3: shared by the 8 logical CPUs of one LLC.
        let l3 = regs(&e, 4, 3);
        assert_eq!(l3[0] & 0x3ff_ffff, 3 | (3 << 5) | (1 << 8) | (7 << 14));
        assert_eq!(regs(&e, 4, 4), [0; 4]);
        // The host's own leaf 4 is gone; significant-index flags set.
        assert_eq!(e.iter().filter(|x| x.function == 4).count(), 5);
        assert!(e.iter().filter(|x| x.function == 0xb).all(|x| x.flags == 1));
        assert!(find(&e, 0x8000_001e, 0).is_none());
    }

    #[test]
    fn single_llc_has_no_die_level_and_amd_leaves_follow() {
        let topo = CpuTopology::new(Topology::new(1, 1, 4, 1));
        let e = vcpu_entries(&base(AMD), &topo, 3, CpuidFeatures::default());
        assert_eq!(regs(&e, 0x1f, 1), [2, 4, 0x201, 3]);
        assert_eq!(regs(&e, 0x1f, 2), [0, 0, 2, 3]);
        // ApicIdCoreIdSize (bits 15:12) and NC (7:0) replace the host's values.
        assert_eq!(regs(&e, 0x8000_0008, 0)[2], (2 << 12) | 3);
        assert_eq!(regs(&e, 0x8000_001e, 0), [3, 3, 0, 0]);
        let l3 = regs(&e, 0x8000_001d, 3);
        assert_eq!(l3[0], 3 | (3 << 5) | (1 << 8) | (3 << 14));
    }

    #[test]
    fn llc_groups_from_cpuid_match_the_topology() {
        let t = Topology::new(2, 2, 2, 2);
        let topo = CpuTopology::new(t);
        for cpu in 0..topo.cpus() {
            let e = vcpu_entries(&base(INTEL), &topo, cpu, CpuidFeatures::default());
            let apic = regs(&e, 0xb, 0)[3];
            let sharing = ((regs(&e, 4, 3)[0] >> 14) & 0xfff) + 1;
            let llc_of = |a: u32| a >> sharing.trailing_zeros();
            let peers: Vec<u32> = (0..topo.cpus())
                .filter(|&c| llc_of(topo.apic_id(c)) == llc_of(apic))
                .collect();
            let loc = t.locate(cpu).unwrap();
            assert_eq!(peers, t.llc_cpus(loc.llc).0);
        }
    }

    #[test]
    fn feature_bits_let_linux_find_kvm_and_keep_kvmclock() {
        let topo = CpuTopology::new(Topology::new(1, 1, 2, 1));
        for vendor in [INTEL, AMD] {
            let plain = vcpu_entries(&base(vendor), &topo, 1, CpuidFeatures::default());
            let l1 = regs(&plain, 1, 0);
            assert_ne!(l1[2] & LEAF1_ECX_HYPERVISOR, 0, "hypervisor bit");
            assert_eq!(
                l1[2] & LEAF1_ECX_TSC_DEADLINE,
                0,
                "TSC-deadline without the cap"
            );
            // Everything else in leaf 1 ECX is KVM's.
            assert_eq!(l1[2] & !LEAF1_ECX_HYPERVISOR, 0);
            // The KVM signature and PV feature leaves pass through untouched.
            assert_eq!(
                regs(&plain, 0x4000_0000, 0),
                [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d]
            );
            let sig: Vec<u8> = regs(&plain, 0x4000_0000, 0)[1..]
                .iter()
                .flat_map(|r| r.to_le_bytes())
                .collect();
            assert_eq!(&sig, b"KVMKVMKVM\0\0\0");
            assert_eq!(regs(&plain, 0x4000_0001, 0)[0], 0x0100_7efb);
            // Invariant TSC hidden: kvm-clock stays the clocksource.
            assert_eq!(
                regs(&plain, 0x8000_0007, 0)[3] & LEAF_80000007_EDX_INVTSC,
                0
            );

            let deadline = CpuidFeatures { tsc_deadline: true };
            let with = vcpu_entries(&base(vendor), &topo, 1, deadline);
            let ecx = regs(&with, 1, 0)[2];
            assert_eq!(
                ecx & (LEAF1_ECX_HYPERVISOR | LEAF1_ECX_TSC_DEADLINE),
                LEAF1_ECX_HYPERVISOR | LEAF1_ECX_TSC_DEADLINE
            );
        }
        // A host that reports TSC-deadline without the cap does not get it.
        let mut odd = base(INTEL);
        odd[1].ecx |= LEAF1_ECX_TSC_DEADLINE;
        let e = vcpu_entries(&odd, &topo, 0, CpuidFeatures::default());
        assert_eq!(regs(&e, 1, 0)[2] & LEAF1_ECX_TSC_DEADLINE, 0);
    }
}
