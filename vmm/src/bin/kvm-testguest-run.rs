//! Boots a test guest (fixtures/testguest) on schedtape's KVM VMM and exits at
//! the guest's first boot-timer port write, so that `cargo xtask bench vmm`
//! can time and measure the VMM as a process of its own.
//!
//! Usage: `kvm-testguest-run GUEST.elf [CPUS] [MEMORY_MIB]`. Prints
//! `boot-mark M after N ns, peak RSS K KiB` (from `main` to the port write;
//! the process's own `VmHWM`, which a parent's `wait4` would overstate by the
//! parent's RSS inherited across `exec`) and exits 0; exits 1 with the reason
//! when the guest stops otherwise.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use trace_format::scenario::Topology;
use vmm::kvm::{KvmConfig, KvmVm, VmExit};

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(elf) = args.first() else {
        eprintln!("usage: kvm-testguest-run GUEST.elf [CPUS] [MEMORY_MIB]");
        return ExitCode::from(2);
    };
    let number = |i: usize, default: u64| -> Option<u64> {
        args.get(i).map_or(Some(default), |a| a.parse().ok())
    };
    let (Some(cpus), Some(memory_mib)) = (number(1, 1), number(2, 64)) else {
        eprintln!("kvm-testguest-run: CPUS and MEMORY_MIB must be numbers");
        return ExitCode::from(2);
    };
    let Ok(cores) = u16::try_from(cpus) else {
        eprintln!("kvm-testguest-run: {cpus} CPUs is too many");
        return ExitCode::from(2);
    };
    let config = KvmConfig {
        kernel: elf.into(),
        initrd: None,
        cmdline: format!("ncpus={cpus}"),
        topology: Topology::new(1, 1, cores, 1),
        memory_mib,
        stop_at_boot_mark: true,
    };
    let vm = match KvmVm::launch(&config, |_| {}) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("kvm-testguest-run: {e}");
            return ExitCode::FAILURE;
        }
    };
    match vm.wait_stop(Duration::from_secs(30)) {
        Some(VmExit::BootMark(mark)) => {
            // Boot marks are stamped from the VMM's start; shift to main()'s.
            let vmm_start = started.elapsed().saturating_sub(vm.uptime());
            let at = vm
                .boot_marks()
                .first()
                .map_or(started.elapsed(), |m| m.1 + vmm_start);
            println!(
                "boot-mark {mark} after {} ns, peak RSS {} KiB",
                at.as_nanos(),
                peak_rss_kib().map_or_else(|| "unknown".into(), |k| k.to_string())
            );
            // Like QEMU's isa-debug-exit: leave at once, without tearing the VM down.
            std::process::exit(0);
        }
        other => {
            eprintln!("kvm-testguest-run: the guest stopped without a boot mark: {other:?}");
            ExitCode::FAILURE
        }
    }
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
