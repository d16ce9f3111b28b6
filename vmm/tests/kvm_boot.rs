//! KVM backend with the tiny test guest: SMP bring-up by INIT/SIPI, CPUID
//! topology and APIC IDs per vCPU, serial output, and i8042 reset.
mod kvm_support;

use std::time::Duration;

use kvm_support::*;
use trace_format::scenario::Topology;
use vmm::backend::Vm;
use vmm::kvm::VmExit;
use vmm::kvm::arch::cpuid::CpuTopology;

/// Boots `topology` through the PVH entry, checks every vCPU's report, then
/// resets through the i8042.
fn boot_and_check(topology: Topology) {
    boot_variant_and_check(topology, true);
}

/// [`boot_and_check`] through the PVH entry (`pvh`) or the 64-bit entry.
fn boot_variant_and_check(topology: Topology, pvh: bool) {
    if !kvm_available() {
        return;
    }
    let s = syms_of(pvh);
    let cpus = topology.cpus();
    let mut vm = launch_variant(topology, pvh);
    wait_all_up(&vm, s, cpus);
    let topo = CpuTopology::new(topology);
    let reports = vm.reports();
    assert_eq!(
        reports.len(),
        cpus as usize,
        "reports from {:?}",
        reports.keys()
    );
    let mut honoured = true;
    // The guest numbers CPUs in the order they arrive, not by vCPU.
    let mut guest_ids = Vec::new();
    for (&vcpu, words) in &reports {
        let r = parse_report(words)
            .unwrap_or_else(|| panic!("vCPU {vcpu}: malformed report {words:x?}"));
        guest_ids.push(r.cpu);
        if std::env::var_os("SCHEDTAPE_DUMP_CPUID").is_some() {
            eprintln!(
                "vCPU {vcpu} (guest cpu {}, LAPIC ID {}):",
                r.cpu, r.lapic_id
            );
            for ((leaf, sub), regs) in &r.cpuid {
                eprintln!("  {leaf:#010x}.{sub}: {regs:08x?}");
            }
        }
        let apic = topo.apic_id(vcpu);
        assert_eq!(r.lapic_id, apic, "vCPU {vcpu}: LAPIC ID register");
        let l1 = r.cpuid[&(1, 0)];
        let x2 = r.cpuid[&(0xb, 0)][3];
        if x2 != apic || l1[1] >> 24 != apic {
            honoured = false;
            eprintln!(
                "vCPU {vcpu}: guest CPUID does not show the installed topology: leaf 1 APIC {} / leaf 0xB x2APIC {x2} (expected {apic})",
                l1[1] >> 24
            );
            continue;
        }
        assert_eq!(
            r.cpuid[&(0xb, 0)],
            [topo.smt_bits, topology.threads_per_core.into(), 0x100, apic]
        );
        assert_eq!(r.cpuid[&(0xb, 1)][0], topo.package_shift());
        assert_eq!(r.cpuid[&(0xb, 1)][1], topo.cpus_per_package());
        assert_eq!(r.cpuid[&(0x1f, 1)][0], topo.llc_shift());
        let l3 = r.cpuid[&(4, 3)][0];
        assert_eq!(
            ((l3 >> 14) & 0xfff) + 1,
            1 << topo.llc_shift(),
            "L3 sharing"
        );
        // What Linux needs to find KVM (kvmclock, PV features): the
        // hypervisor bit and the signature leaf; and no invariant TSC, so
        // kvm-clock stays its clocksource across freezes.
        assert_ne!(l1[2] & (1 << 31), 0, "vCPU {vcpu}: hypervisor bit");
        let sig = r.cpuid[&(0x4000_0000, 0)];
        assert_eq!(
            [sig[1], sig[2], sig[3]],
            [0x4b4d_564b, 0x564b_4d56, 0x4d],
            "vCPU {vcpu}: KVMKVMKVM"
        );
        assert_ne!(r.cpuid[&(0x4000_0001, 0)][0] & (1 << 3), 0, "kvmclock");
        assert_eq!(r.cpuid[&(0x8000_0007, 0)][3] & (1 << 8), 0, "invariant TSC");
    }
    guest_ids.sort_unstable();
    assert_eq!(guest_ids, (0..cpus).collect::<Vec<_>>());
    if !honoured {
        // Emulated KVM (PVM) shows the guest the host's CPUID: the topology
        // and KVM leaves are then checked by unit tests only.
        vmm::test_skip::skip(
            vmm::test_skip::Need::Cpuid,
            "guest CPUID does not follow KVM_SET_CPUID2 on this /dev/kvm; CPUID topology and KVM-leaf assertions not run",
        );
    }

    let lines = console(&mut vm);
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("testguest: {cpus} cpus")),
        "console: {lines:?}"
    );
    for cpu in 0..cpus {
        let want = format!(" up apic {}", topo.apic_id(cpu));
        assert!(
            lines.iter().any(|l| l.ends_with(&want)),
            "missing {want:?} in {lines:?}"
        );
    }
    assert_eq!(
        vm.boot_marks().first().map(|m| m.0),
        Some(1),
        "boot-timer port"
    );

    command(&vm, s, 2);
    let exit = vm.wait_exit(Duration::from_secs(20));
    assert_eq!(exit, Some(VmExit::Reset));
    assert!(vm.has_exited());
    let lines = console(&mut vm);
    assert!(
        lines.iter().any(|l| l == "testguest: reset"),
        "console: {lines:?}"
    );
}

#[test]
fn one_vcpu() {
    boot_and_check(Topology::new(1, 1, 1, 1));
}

#[test]
fn two_vcpus_through_the_64bit_boot_protocol_entry() {
    boot_variant_and_check(Topology::new(1, 1, 2, 1), false);
}

#[test]
fn two_vcpus() {
    boot_and_check(Topology::new(1, 1, 2, 1));
}

#[test]
fn eight_vcpus_two_llcs_smt() {
    boot_and_check(Topology::new(1, 2, 2, 2));
}

#[test]
fn apic_id_gaps_follow_the_topology() {
    // 2 LLCs x 3 cores: APIC IDs 0,1,2,4,5,6.
    boot_and_check(Topology::new(1, 2, 3, 1));
}

#[test]
fn a_triple_fault_ends_the_run() {
    // Linux's `reboot=t`: an empty IDT, then an exception -> KVM_EXIT_SHUTDOWN.
    if !kvm_available() {
        return;
    }
    let s = syms();
    let mut vm = launch(Topology::new(1, 1, 2, 1));
    wait_all_up(&vm, s, 2);
    command(&vm, s, 5);
    let exit = vm.wait_exit(Duration::from_secs(20));
    assert!(
        matches!(exit, Some(VmExit::TripleFault { .. })),
        "exit: {exit:?}"
    );
    assert!(vm.has_exited());
    // The reason names the vCPU and its registers at the fault.
    let why = vm.exit_reason().unwrap_or_default();
    assert!(
        why.starts_with("vCPU ")
            && why.contains("triple-faulted (RIP 0x")
            && why.contains("CR3 0x"),
        "{why}"
    );
    let lines = console(&mut vm);
    assert!(
        lines.iter().any(|l| l == "testguest: triple fault"),
        "console: {lines:?}"
    );
}
