//! `nested hold-apic-keys`, run by L1's `/init` before the checks: one idle
//! KVM VM whose single vCPU never enables its local APIC, kept for the whole
//! lane.
//!
//! Why: L1's kvm tests `apic_sw_disabled`, a deferred static key that counts
//! vCPUs with a software-disabled APIC. Without a holder it goes 0 → 1 when a
//! check creates its vCPUs and back to 0 a second after L2 enables them, and
//! each flip live-patches kvm's text with int3 breakpoints. Under QEMU TCG a
//! vCPU of L1 sometimes still executes such a breakpoint after the patch
//! finished (`int3` oops at `apic_has_pending_timer+0x11 [kvm]`). With this
//! vCPU the count never returns to 0, so kvm's text is patched once, here,
//! before any L2 runs, and never again.
use anyhow::{Context, Result};

/// Creates the VM and its vCPU, says `HELD` on stdout, and sleeps forever.
pub fn hold_apic_keys() -> Result<()> {
    let kvm = kvm_ioctls::Kvm::new().context("cannot open /dev/kvm")?;
    let vm = vmm::kvm::vstate::vm::create_vm(&kvm)?;
    let _vcpu = vm
        .create_vcpu(0)
        .context("KVM_CREATE_VCPU of the APIC-key holder")?;
    println!("{HELD}");
    loop {
        std::thread::park();
    }
}

/// What the holder prints once its vCPU exists.
pub const HELD: &str = "apic keys held";
