//! The boot state our VMM leaves in KVM for each vCPU, read back through KVM
//! before any guest code runs: the CPUID feature bits Linux needs to find KVM
//! (kvmclock, PV features, TSC-deadline), the MSRs (fast strings, write-back
//! MTRRs), FPU control words, LAPIC LINT0/LINT1 and the 64-bit entry registers.
//! Runs wherever /dev/kvm opens (emulated KVM stores these values too, even
//! where it does not honour them in the guest).
mod kvm_support;

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, Msrs, kvm_msr_entry};
use kvm_ioctls::{Cap, Kvm, VcpuFd};
use kvm_support::kvm_available;
use trace_format::scenario::Topology;
use vmm::kvm::arch::cpuid::{
    CpuTopology, CpuidFeatures, LEAF_80000007_EDX_INVTSC, LEAF1_ECX_HYPERVISOR,
    LEAF1_ECX_TSC_DEADLINE, find, vcpu_entries,
};
use vmm::kvm::arch::layout::{PML4_ADDR, ZERO_PAGE_ADDR};
use vmm::kvm::vstate::vcpu::{
    self, BootEntry, MISC_ENABLE_FAST_STRING, MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE,
    MTRR_DEF_TYPE_WB_ENABLED,
};
use vmm::kvm::vstate::vm;

fn msr(fd: &VcpuFd, index: u32) -> u64 {
    let mut m = Msrs::from_entries(&[kvm_msr_entry {
        index,
        ..Default::default()
    }])
    .unwrap();
    assert_eq!(fd.get_msrs(&mut m).unwrap(), 1, "MSR {index:#x} unreadable");
    m.as_slice()[0].data
}

fn lvt_mode(fd: &VcpuFd, offset: usize) -> u32 {
    let lapic = fd.get_lapic().unwrap();
    let b: Vec<u8> = lapic.regs[offset..offset + 4]
        .iter()
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    (u32::from_le_bytes(b.try_into().unwrap()) >> 8) & 7
}

#[test]
fn vcpus_start_with_the_state_linux_expects() {
    if !kvm_available() {
        return;
    }
    let kvm = Kvm::new().unwrap();
    let vmfd = vm::create_vm(&kvm).unwrap();
    let supported = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    let topo = CpuTopology::new(Topology::new(1, 1, 2, 1));
    let features = CpuidFeatures {
        tsc_deadline: kvm.check_extension(Cap::TscDeadlineTimer),
    };
    let boot = BootEntry {
        entry: 0x10_0200,
        long_mode: true,
        pvh_info: 0,
    };
    let bsp = vcpu::create(
        &vmfd,
        topo.apic_id(0),
        &vcpu_entries(supported.as_slice(), &topo, 0, features),
        Some(boot),
    )
    .unwrap();
    let ap = vcpu::create(
        &vmfd,
        topo.apic_id(1),
        &vcpu_entries(supported.as_slice(), &topo, 1, features),
        None,
    )
    .unwrap();

    for (name, fd) in [("BSP", &bsp), ("AP", &ap)] {
        let cpuid = fd.get_cpuid2(KVM_MAX_CPUID_ENTRIES).unwrap();
        let e = cpuid.as_slice();
        let l1 = find(e, 1, 0).expect("leaf 1");
        assert_ne!(l1.ecx & LEAF1_ECX_HYPERVISOR, 0, "{name}: hypervisor bit");
        assert_eq!(
            l1.ecx & LEAF1_ECX_TSC_DEADLINE != 0,
            features.tsc_deadline,
            "{name}: TSC-deadline as KVM_CAP_TSC_DEADLINE_TIMER says"
        );
        let sig = find(e, 0x4000_0000, 0).expect("KVM signature leaf");
        let text: Vec<u8> = [sig.ebx, sig.ecx, sig.edx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        assert_eq!(&text, b"KVMKVMKVM\0\0\0", "{name}");
        assert!(sig.eax >= 0x4000_0001, "{name}: max hypervisor leaf");
        let pv = find(e, 0x4000_0001, 0).expect("KVM feature leaf");
        assert_ne!(pv.eax & (1 << 3), 0, "{name}: KVM_FEATURE_CLOCKSOURCE2");
        if let Some(apm) = find(e, 0x8000_0007, 0) {
            assert_eq!(
                apm.edx & LEAF_80000007_EDX_INVTSC,
                0,
                "{name}: invariant TSC hidden"
            );
        }

        let misc = msr(fd, MSR_IA32_MISC_ENABLE);
        assert_ne!(misc & MISC_ENABLE_FAST_STRING, 0, "{name}: fast strings");
        assert_eq!(
            msr(fd, MSR_MTRR_DEF_TYPE),
            MTRR_DEF_TYPE_WB_ENABLED,
            "{name}: MTRRs on, write-back default"
        );
        // KVM_GET_FPU/KVM_SET_FPU carry FCW but not MXCSR (KVM's reset
        // fpstate already holds 0x1f80; only KVM_SET_XSAVE could change it).
        assert_eq!(fd.get_fpu().unwrap().fcw, 0x37f, "{name}: FPU control word");
        assert_eq!(lvt_mode(fd, 0x350), 7, "{name}: LINT0 ExtINT");
        assert_eq!(lvt_mode(fd, 0x360), 4, "{name}: LINT1 NMI");
    }

    let regs = bsp.get_regs().unwrap();
    assert_eq!(
        (regs.rip, regs.rsi, regs.rflags),
        (0x10_0200, ZERO_PAGE_ADDR, 2)
    );
    let s = bsp.get_sregs().unwrap();
    assert_eq!(s.cr0 & 0x8000_0001, 0x8000_0001, "CR0.PG|PE");
    assert_eq!(s.cr0 & 0x6000_0000, 0, "CR0.CD|NW clear");
    assert_ne!(s.cr4 & (1 << 5), 0, "CR4.PAE");
    assert_eq!(s.efer & 0x500, 0x500, "EFER.LME|LMA");
    assert_eq!(s.cr3, PML4_ADDR);
    assert_eq!((s.cs.l, s.cs.db, s.cs.selector), (1, 0, 0x08));
}
