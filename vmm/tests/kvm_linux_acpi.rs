//! Linux reads our ACPI tables: boots the cached project vmlinux (PVH entry)
//! with 2 NUMA nodes × 2 cores until the kernel reports its SMP configuration,
//! and checks what it says about the RSDP, the SRAT nodes and the CPUs. A
//! second test does the same through the bzImage's 64-bit entry (the default
//! `run scenario` path: zero page, decompressor).
//!
//! Slow where KVM is emulated (~10 s on PVM for the vmlinux, which then dies
//! emulating the kernel further on; ~3 min for the bzImage, whose decompressor
//! runs emulated too), so both are ignored by default: run with `--ignored`.
//! The bzImage one is skipped on emulated KVM unless
//! `SCHEDTAPE_BZIMAGE_EARLY_BOOT=1`. `SCHEDTAPE_VMLINUX` / `SCHEDTAPE_BZIMAGE`
//! pick other kernels.
mod kvm_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvm_support::kvm_available;
use trace_format::scenario::Topology;
use vmm::backend::{ConsoleEvent, Vm};
use vmm::kvm::{KvmConfig, KvmVm};

/// `$env`, else the cached project kernel's `name`.
fn kernel(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    let dir = PathBuf::from(std::env::var_os("HOME")?).join(".cache/schedtape/kernels");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join(name))
        .find(|p| p.exists())
}

#[test]
#[ignore = "boots Linux: ~10 s under emulated KVM; run with --ignored"]
fn linux_takes_cpus_and_numa_nodes_from_madt_and_srat() {
    if !kvm_available() {
        return;
    }
    let Some(kernel) = kernel("SCHEDTAPE_VMLINUX", "vmlinux") else {
        eprintln!("skipped: no vmlinux (set SCHEDTAPE_VMLINUX or build the project kernel)");
        return;
    };
    boot_until_smp_config(kernel, Duration::from_secs(120));
}

#[test]
#[ignore = "boots Linux from a bzImage: ~3 min under emulated KVM; run with --ignored"]
fn a_bzimage_through_the_64bit_entry_reads_the_same_tables() {
    if !kvm_available() {
        return;
    }
    if let Err(why) = vmm::kvm::probe()
        && std::env::var_os("SCHEDTAPE_BZIMAGE_EARLY_BOOT").is_none()
    {
        eprintln!("skipped: {why} (set SCHEDTAPE_BZIMAGE_EARLY_BOOT=1 to wait ~3 min for it)");
        return;
    }
    let Some(kernel) = kernel("SCHEDTAPE_BZIMAGE", "bzImage") else {
        eprintln!("skipped: no bzImage (set SCHEDTAPE_BZIMAGE or build the project kernel)");
        return;
    };
    boot_until_smp_config(kernel, Duration::from_secs(400));
}

/// Boots `kernel` (2 nodes × 2 cores) until it prints its CPU count, then
/// checks what it said about our ACPI tables.
fn boot_until_smp_config(kernel: PathBuf, timeout: Duration) {
    let config = KvmConfig {
        kernel,
        initrd: None,
        // noxsave: PVM cannot emulate XRSTOR; harmless on hardware.
        cmdline:
            "console=ttyS0 earlyprintk=serial,ttyS0 loglevel=8 nokaslr noxsave reboot=k panic=-1"
                .into(),
        topology: Topology::new(2, 1, 2, 1),
        memory_mib: 512,
        stop_at_boot_mark: false,
    };
    let mut vm = KvmVm::launch(&config, |_| {}).expect("launch");
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut events = Vec::new();
    let done = |lines: &[String]| lines.iter().any(|l| l.contains("present CPUs"));
    while !done(&lines) && start.elapsed() < timeout && !vm.has_exited() {
        vm.poll_console(&mut events);
        lines.extend(events.drain(..).map(|e| match e {
            ConsoleEvent::Serial(l) | ConsoleEvent::Hypervisor(l) => l,
        }));
        std::thread::sleep(Duration::from_millis(20));
    }
    vm.kill();
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    for want in [
        "ACPI: RSDP 0x00000000000E0000",
        "ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x0fffffff]",
        "ACPI: SRAT: Node 1 PXM 1 [mem 0x10000000-0x1fffffff]",
        "ACPI: Using ACPI (MADT) for SMP configuration information",
        "Allowing 4 present CPUs",
    ] {
        assert!(has(want), "missing {want:?}; console tail:\n{tail}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ACPI") && l.contains("BIOS")),
        "the kernel complained about the tables:\n{}",
        lines.join("\n")
    );
}
