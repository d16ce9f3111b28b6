//! COM1 raises ISA IRQ 4 through the in-kernel IOAPIC: the test guest routes
//! pin 4 to a vector, enables the THRE interrupt and writes each byte of a
//! line only from a THRE interrupt, as Linux's 8250 driver does once
//! userspace writes to /dev/console (without the interrupt that write hangs).
mod kvm_support;

use std::time::Duration;

use kvm_support::*;
use trace_format::scenario::Topology;
use vm_memory::{Bytes, GuestAddress};
use vmm::kvm::VmExit;

fn check(pvh: bool) {
    if !kvm_available() {
        return;
    }
    let s = syms_of(pvh);
    let irq = symbol(pvh, "serial_irq");
    let mut vm = launch_variant(Topology::new(1, 1, 2, 1), pvh);
    wait_all_up(&vm, s, 2);
    command(&vm, s, 4);
    let done = wait_until(Duration::from_secs(60), || pending_command(&vm, s) == 0);
    let word = |off: u64| -> u32 { vm.ram().read_obj(GuestAddress(irq + off)).unwrap() };
    let (count, last_iir, sent, timeouts) = (word(0), word(4), word(8), word(12));
    assert!(
        done,
        "the guest did not finish: {count} interrupts, {sent} bytes sent, exit {:?}",
        vm.exit_status()
    );
    let line = "testguest: serial irq ok\n";
    assert_eq!(timeouts, 0, "a THRE interrupt never came ({count} came)");
    assert_eq!(sent as usize, line.len());
    // One interrupt when THRI is enabled, then one per byte.
    assert_eq!(count as usize, line.len() + 1);
    assert_eq!(last_iir & 0x0f, 0x02, "IIR said THRE");
    let lines = console(&mut vm);
    assert!(
        lines.iter().any(|l| l == line.trim_end()),
        "console: {lines:?}"
    );
    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}

#[test]
fn thre_interrupts_drive_com1_transmit() {
    check(true);
}

#[test]
fn thre_interrupts_drive_com1_transmit_after_the_64bit_entry() {
    check(false);
}
