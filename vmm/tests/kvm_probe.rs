//! The live answer of what backs /dev/kvm (`vmm::kvm::kind`), checked
//! against this machine's own evidence: on a PVM host it is emulated, with a
//! hardware vendor module it is hardware-backed (nested inside a guest).
//! Where /dev/kvm exists, a missing answer is a failure, not a skip.
use std::path::Path;

use vmm::kvm::KvmKind;
use vmm::kvm::kind::{cpu_flags, kind};
use vmm::test_skip::{Need, skip};

fn module_loaded(name: &str) -> bool {
    Path::new("/sys/module").join(name).exists()
}

#[test]
fn the_live_answer_matches_the_loaded_kvm_module() {
    if !Path::new("/dev/kvm").exists() {
        let why = kind().expect_err("no /dev/kvm, yet a KVM kind");
        assert!(!why.contains('\n'), "{why:?}");
        skip(Need::Kvm, &why);
        return;
    }
    let p = kind().unwrap_or_else(|why| panic!("/dev/kvm exists, yet no kind: {why}"));
    eprintln!("/dev/kvm: {p}");
    assert!(
        !p.evidence.is_empty() && !p.evidence.contains('\n'),
        "{p:?}"
    );
    let guest =
        cpu_flags(&std::fs::read_to_string("/proc/cpuinfo").unwrap()).contains("hypervisor");
    if module_loaded("kvm_pvm") {
        // This workplace: PVM emulates the guest, whatever the flags say.
        assert_eq!(p.kind, KvmKind::Emulated, "{p}");
        assert!(p.evidence.contains("kvm_pvm"), "{p}");
    } else if module_loaded("kvm_intel") || module_loaded("kvm_amd") {
        let want = if guest {
            KvmKind::Nested
        } else {
            KvmKind::Hardware
        };
        assert_eq!(p.kind, want, "{p}");
    }
    // Asked twice, the answer is the same (probed once per process).
    assert_eq!(kind(), Ok(p));
}
