//! The KVM VM: memory slots, in-kernel irqchip and PIT, and the guest clock.
use kvm_bindings::{
    KVM_PIT_SPEAKER_DUMMY, kvm_clock_data, kvm_pit_config, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VmFd};

use crate::kvm::arch::layout::{IDENTITY_MAP_ADDR, TSS_ADDR};

/// A KVM ioctl failed; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct KvmIoctlError {
    pub op: &'static str,
    pub source: kvm_ioctls::Error,
}

/// Tags an ioctl error with the operation.
pub fn ioctl<T>(op: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, KvmIoctlError> {
    r.map_err(|source| KvmIoctlError { op, source })
}

/// Creates a VM with the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd, KvmIoctlError> {
    let vm = ioctl("KVM_CREATE_VM", kvm.create_vm())?;
    ioctl(
        "KVM_SET_TSS_ADDR",
        vm.set_tss_address(usize::try_from(TSS_ADDR).expect("64-bit host")),
    )?;
    ioctl(
        "KVM_SET_IDENTITY_MAP_ADDR",
        vm.set_identity_map_address(IDENTITY_MAP_ADDR),
    )?;
    ioctl("KVM_CREATE_IRQCHIP", vm.create_irq_chip())?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    ioctl("KVM_CREATE_PIT2", vm.create_pit2(pit))?;
    Ok(vm)
}

/// Maps `len` bytes at host address `host` to guest-physical `gpa` as `slot`.
///
/// # Safety
/// `host..host+len` must stay mapped and writable for the VM's lifetime.
pub unsafe fn map_slot(
    vm: &VmFd,
    slot: u32,
    gpa: u64,
    host: *mut u8,
    len: u64,
) -> Result<(), KvmIoctlError> {
    let region = kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: len,
        userspace_addr: host as u64,
    };
    // SAFETY: the caller guarantees the host range outlives the VM.
    ioctl("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })
}

/// The guest's kvmclock, saved at freeze and restored at thaw.
pub fn get_clock(vm: &VmFd) -> Result<kvm_clock_data, KvmIoctlError> {
    ioctl("KVM_GET_CLOCK", vm.get_clock())
}

/// Sets the guest's kvmclock back to `saved` (flags cleared: only the value counts).
pub fn set_clock(vm: &VmFd, saved: &kvm_clock_data) -> Result<(), KvmIoctlError> {
    let data = kvm_clock_data {
        clock: saved.clock,
        ..Default::default()
    };
    ioctl("KVM_SET_CLOCK", vm.set_clock(&data))
}
