//! Timing probe: runs a tiny real-mode loop on /dev/kvm to tell hardware
//! virtualisation from instruction emulation.
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Above this, the 200k-instruction loop is emulated, not run natively.
pub const ACCELERATED_LIMIT: Duration = Duration::from_millis(20);

/// `mov ecx, 100000; 1: dec ecx; jnz 1b; hlt` in real mode at 0x1000.
const LOOP: [u8; 11] = [
    0x66, 0xb9, 0xa0, 0x86, 0x01, 0x00, 0x66, 0x49, 0x75, 0xfc, 0xf4,
];

/// Time to run [`LOOP`] (100k iterations) from the first KVM_RUN to its HLT.
pub fn time_guest_loop() -> Result<Duration, String> {
    let err = |what: &str, e: kvm_ioctls::Error| format!("KVM probe: {what}: {e}");
    let kvm = Kvm::new().map_err(|e| err("open /dev/kvm", e))?;
    let vm = kvm.create_vm().map_err(|e| err("create VM", e))?;
    let mut mem =
        memmap2::MmapMut::map_anon(0x2000).map_err(|e| format!("KVM probe: memory: {e}"))?;
    mem[0x1000..0x1000 + LOOP.len()].copy_from_slice(&LOOP);
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 0x2000,
        userspace_addr: mem.as_mut_ptr() as u64,
    };
    // SAFETY: `mem` outlives `vm` (declared before it is dropped at return).
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| err("map memory", e))?;
    let mut vcpu = vm.create_vcpu(0).map_err(|e| err("create vCPU", e))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| err("get sregs", e))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(|e| err("set sregs", e))?;
    let mut regs = vcpu.get_regs().map_err(|e| err("get regs", e))?;
    regs.rip = 0x1000;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| err("set regs", e))?;
    let start = Instant::now();
    loop {
        match vcpu.run() {
            Ok(VcpuExit::Hlt) => return Ok(start.elapsed()),
            Ok(other) => return Err(format!("KVM probe: unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => return Err(err("run", e)),
        }
        if start.elapsed() > Duration::from_secs(5) {
            return Err("KVM probe: guest loop did not finish in 5 s".into());
        }
    }
}
