//! `steer_irq`: route an IRQ to one CPU through `/proc/irq/<n>/smp_affinity_list`.
//!
//! The affinity is system-wide (not scoped to any cpuset). The op checks the
//! CPU is online, resolves a label through `/proc/interrupts`, writes the
//! affinity, and returns the affinity the kernel accepted as a CPU bitmask.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use trace_format::scenario::IrqSelector;

use super::sys;
use crate::errno;
use crate::irq::{Lookup, find};
use crate::procfs::parse_cpu_list;

fn read(path: &str) -> Result<Vec<u8>, String> {
    sys::read_all(path)
        .map_err(|e| format!("cannot read {path}: {}", errno::describe(e.raw_os_error())))
}

/// The IRQ number `irq` names.
fn resolve(irq: &IrqSelector) -> Result<u32, String> {
    let label = match irq {
        IrqSelector::Number(n) => return Ok(*n),
        IrqSelector::Label(l) => l,
    };
    let text = read("/proc/interrupts")?;
    find(&text, label).map_err(|e| match e {
        Lookup::NotFound => format!("no IRQ in /proc/interrupts is labelled {label:?}"),
        Lookup::NotNumbered => {
            format!("{label:?} names a per-CPU interrupt (no number), which cannot be steered")
        }
        Lookup::Ambiguous(ns) => {
            format!("{label:?} labels several IRQs ({ns:?}); use the number instead")
        }
    })
}

/// Steers `irq` to `cpu`; returns the accepted affinity mask (CPUs 0..64).
pub fn steer(irq: &IrqSelector, cpu: u32) -> Result<u64, String> {
    let online = parse_cpu_list(&read("/sys/devices/system/cpu/online")?)
        .ok_or("cannot parse /sys/devices/system/cpu/online")?;
    if !online.contains(cpu) {
        return Err(format!("CPU {cpu} is not online (online CPUs: {online})"));
    }
    let n = resolve(irq)?;
    let file = format!("/proc/irq/{n}/smp_affinity_list");
    sys::write_file(&file, format!("{cpu}").as_bytes()).map_err(|e| match e {
        rustix::io::Errno::NOENT => format!("IRQ {n} does not exist (no {file})"),
        e => format!(
            "the kernel refused to steer IRQ {n} to CPU {cpu} (writing {file}): {}",
            errno::describe(e.raw_os_error())
        ),
    })?;
    // The effective affinity follows only at the IRQ's next interrupt, so
    // report what the kernel accepted.
    let cpus = parse_cpu_list(&read(&file)?).unwrap_or_default();
    Ok(cpus.iter().filter(|&c| c < 64).fold(0, |m, c| m | 1 << c))
}
