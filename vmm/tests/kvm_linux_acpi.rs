//! Linux reads our ACPI tables: boots the cached project vmlinux (PVH entry)
//! with 2 NUMA nodes × 2 cores until the kernel reports its SMP configuration,
//! and checks what it says about the RSDP, the SRAT nodes and the CPUs. A
//! second test does the same through the bzImage's 64-bit entry (the default
//! `run scenario` path: zero page, decompressor).
//!
//! Slow where KVM is emulated (~15 s on PVM for the vmlinux, which then dies
//! emulating the kernel further on; ~3 min for the bzImage, whose decompressor
//! runs emulated too), so both are ignored by plain `cargo test`; `cargo xtask
//! test` runs them once the kernel is built. The bzImage one is a reported
//! skip on emulated KVM unless `SCHEDTAPE_BZIMAGE_EARLY_BOOT=1`. `SCHEDTAPE_VMLINUX` / `SCHEDTAPE_BZIMAGE`
//! pick other kernels.
mod kvm_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvm_support::kvm_available;
use trace_format::scenario::Topology;
use vmm::backend::{ConsoleEvent, Vm};
use vmm::kvm::{KvmConfig, KvmVm};
use vmm::test_skip::{self, Need};

/// `$env`, else the run's cached project kernel's `name`; skips (or fails
/// where the run requires the kernel) when there is none.
fn kernel(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    let found = test_skip::project_kernel_dir()
        .map(|d| d.join(name))
        .filter(|p| p.exists());
    if found.is_none() {
        test_skip::skip(
            Need::Kernel,
            &format!("no cached {name} (set {env} or run cargo xtask kernel build)"),
        );
    }
    found
}

#[test]
#[ignore = "boots Linux: ~15 s under emulated KVM; cargo xtask test runs it"]
fn linux_takes_cpus_and_numa_nodes_from_madt_and_srat() {
    if !kvm_available() {
        return;
    }
    let Some(kernel) = kernel("SCHEDTAPE_VMLINUX", "vmlinux") else {
        return;
    };
    boot_until_smp_config(kernel, Duration::from_secs(120));
}

#[test]
#[ignore = "boots Linux from a bzImage: ~3 min under emulated KVM; cargo xtask test runs it"]
fn a_bzimage_through_the_64bit_entry_reads_the_same_tables() {
    if !kvm_available() {
        return;
    }
    if let Err(why) = vmm::kvm::kind::hardware_backed()
        && std::env::var_os("SCHEDTAPE_BZIMAGE_EARLY_BOOT").is_none()
    {
        // The decompressor alone runs ~3 min under instruction emulation.
        test_skip::skip(
            Need::KvmLinuxBoot,
            &format!(
                "{why}; the bzImage decompressor takes ~3 min emulated (SCHEDTAPE_BZIMAGE_EARLY_BOOT=1 waits for it)"
            ),
        );
        return;
    }
    let Some(kernel) = kernel("SCHEDTAPE_BZIMAGE", "bzImage") else {
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
