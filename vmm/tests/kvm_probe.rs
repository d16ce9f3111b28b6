//! The `auto` backend probe: says in one line whether /dev/kvm is hardware
//! accelerated, and its answer agrees with the CPU flags and the timed loop.
mod kvm_support;

use kvm_support::kvm_available;
use vmm::kvm::probe::{ACCELERATED_LIMIT, time_guest_loop};

/// Whether the CPU advertises hardware virtualisation (vmx or svm).
fn cpu_has_vmx_or_svm() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(str::split_whitespace)
        .any(|f| f == "vmx" || f == "svm")
}

#[test]
fn probe_answers_in_one_line_and_agrees_with_the_cpu_flags() {
    let answer = vmm::kvm::probe();
    eprintln!("probe: {answer:?}");
    if let Err(reason) = &answer {
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
    }
    if !cpu_has_vmx_or_svm() {
        // Without vmx/svm KVM can only be emulated (PVM): never "accelerated".
        let reason = answer.expect_err("no vmx/svm, yet the probe says hardware KVM");
        assert!(reason.contains("vmx/svm"), "{reason}");
    } else if let Err(reason) = answer {
        // With the flags, only a missing /dev/kvm or a slow loop says no.
        assert!(
            reason.contains("/dev/kvm") || reason.contains("KVM probe"),
            "{reason}"
        );
    }
}

#[test]
fn timed_guest_loop_runs_and_is_slow_only_when_emulated() {
    if !kvm_available() {
        return;
    }
    let t = time_guest_loop().expect("probe loop");
    eprintln!("200k-instruction probe loop: {t:?}");
    assert!(!t.is_zero());
    if !cpu_has_vmx_or_svm() {
        // Emulation takes ~10x the limit here (~270 ms); a busy host only
        // makes it slower, so this bound cannot flake.
        assert!(t > ACCELERATED_LIMIT, "an emulated loop took only {t:?}");
    }
}
