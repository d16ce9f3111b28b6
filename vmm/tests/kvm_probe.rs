//! The `auto` backend probe: says in one line whether /dev/kvm is hardware accelerated.
mod kvm_support;

use kvm_support::kvm_available;

#[test]
fn probe_gives_a_one_line_answer() {
    match vmm::kvm::probe() {
        Ok(()) => eprintln!("probe: hardware-accelerated KVM"),
        Err(reason) => {
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
            eprintln!("probe: {reason}");
        }
    }
}

#[test]
fn timed_guest_loop_runs() {
    if !kvm_available() {
        return;
    }
    let t = vmm::kvm::probe::time_guest_loop().expect("probe loop");
    eprintln!("200k-instruction probe loop: {t:?}");
}
