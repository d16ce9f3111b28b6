//! Probes of what /dev/kvm can do, each on a throwaway real-mode guest:
//! whether guest CPUID follows KVM_SET_CPUID2 and whether hardware data
//! watchpoints are delivered. What backs /dev/kvm is [`super::kind`].
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kvm_bindings::{
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP, kvm_guest_debug, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

/// `mov cx, 1000; 1: mov [0x2000], ax; inc ax; loop 1b; hlt` at 0x1000.
const WRITE_LOOP: [u8; 10] = [0xb9, 0xe8, 0x03, 0xa3, 0x00, 0x20, 0x40, 0xe2, 0xfa, 0xf4];
/// The address [`WRITE_LOOP`] writes.
const WRITTEN: u64 = 0x2000;

/// `mov eax, 0x40000000; cpuid; mov [0x2000], ebx; hlt` at 0x1000 (EBX lands at 0x2000).
const CPUID_READ: [u8; 14] = [
    0x66, 0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2, 0x66, 0x89, 0x1e, 0x00, 0x20, 0xf4,
];
/// What the probe installs as leaf 0x4000_0000's EBX ("stcp").
const CPUID_MARK: u32 = 0x7063_7473;

/// A one-vCPU real-mode guest with `code` at 0x1000; the mapping is returned
/// so that it outlives the VM.
struct Tiny {
    vcpu: VcpuFd,
    _vm: VmFd,
    _mem: memmap2::MmapMut,
}

fn tiny(code: &[u8]) -> Result<Tiny, String> {
    let err = |what: &str, e: kvm_ioctls::Error| format!("KVM probe: {what}: {e}");
    let kvm = Kvm::new().map_err(|e| err("open /dev/kvm", e))?;
    let vm = kvm.create_vm().map_err(|e| err("create VM", e))?;
    let mut mem =
        memmap2::MmapMut::map_anon(0x3000).map_err(|e| format!("KVM probe: memory: {e}"))?;
    mem[0x1000..0x1000 + code.len()].copy_from_slice(code);
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 0x3000,
        userspace_addr: mem.as_mut_ptr() as u64,
    };
    // SAFETY: `mem` is kept in the returned Tiny, dropped after the VM fd
    // (fields drop in declaration order: vcpu, vm, then mem).
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| err("map memory", e))?;
    let vcpu = vm.create_vcpu(0).map_err(|e| err("create vCPU", e))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| err("get sregs", e))?;
    for seg in [&mut sregs.cs, &mut sregs.ds] {
        seg.base = 0;
        seg.selector = 0;
    }
    vcpu.set_sregs(&sregs).map_err(|e| err("set sregs", e))?;
    let mut regs = vcpu.get_regs().map_err(|e| err("get regs", e))?;
    regs.rip = 0x1000;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| err("set regs", e))?;
    Ok(Tiny {
        vcpu,
        _vm: vm,
        _mem: mem,
    })
}

/// Runs until an exit other than EINTR/EAGAIN, for at most `limit`.
fn run_once(vcpu: &mut VcpuFd, limit: Duration) -> Result<String, String> {
    let start = Instant::now();
    loop {
        match vcpu.run() {
            Ok(VcpuExit::Hlt) => return Ok("hlt".into()),
            Ok(VcpuExit::Debug(a)) => return Ok(format!("debug:{}:{:#x}", a.exception, a.dr6)),
            Ok(other) => return Err(format!("KVM probe: unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => return Err(format!("KVM probe: run: {e}")),
        }
        if start.elapsed() > limit {
            return Err(format!("KVM probe: guest did not finish in {limit:?}"));
        }
    }
}

/// Whether a hardware write watchpoint set with `KVM_SET_GUEST_DEBUG` is
/// reported (`KVM_EXIT_DEBUG`) when the guest writes the address. Emulated
/// KVM (PVM here) accepts the request but its instruction emulator never
/// checks data breakpoints. Probed once per process.
pub fn data_watchpoints() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(probe_data_watchpoints).clone()
}

fn probe_data_watchpoints() -> Result<(), String> {
    let mut t = tiny(&WRITE_LOOP)?;
    let mut debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
        ..Default::default()
    };
    debug.arch.debugreg[0] = WRITTEN;
    debug.arch.debugreg[7] = 1 | (0b01 << 16) | (0b11 << 18); // L0, data write, 4 bytes
    t.vcpu
        .set_guest_debug(&debug)
        .map_err(|e| format!("KVM_SET_GUEST_DEBUG failed: {e}"))?;
    let exit = run_once(&mut t.vcpu, Duration::from_secs(5))?;
    if exit.starts_with("debug:1:") {
        Ok(())
    } else {
        Err(format!(
            "this /dev/kvm accepts hardware watchpoints but does not report guest writes \
             (a write loop ran to its end: {exit}); emulated KVM such as PVM does not check \
             data breakpoints"
        ))
    }
}

/// Whether the guest's CPUID shows what KVM_SET_CPUID2 installed (a marked
/// leaf 0x4000_0000), so that topology and KVM leaves reach the guest.
/// Probed once per process.
pub fn cpuid_honoured() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(probe_cpuid).clone()
}

fn probe_cpuid() -> Result<(), String> {
    let kvm = Kvm::new().map_err(|e| format!("KVM probe: open /dev/kvm: {e}"))?;
    let mut cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM probe: supported CPUID: {e}"))?;
    let mut marked = false;
    for e in cpuid.as_mut_slice() {
        if e.function == 0x4000_0000 {
            e.ebx = CPUID_MARK;
            marked = true;
        }
    }
    if !marked {
        cpuid
            .push(kvm_bindings::kvm_cpuid_entry2 {
                function: 0x4000_0000,
                ebx: CPUID_MARK,
                ..Default::default()
            })
            .map_err(|e| format!("KVM probe: CPUID entry: {e:?}"))?;
    }
    let mut t = tiny(&CPUID_READ)?;
    t.vcpu
        .set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2 failed: {e}"))?;
    let exit = run_once(&mut t.vcpu, Duration::from_secs(5))?;
    let seen = u32::from_le_bytes(t._mem[0x2000..0x2004].try_into().expect("4 bytes"));
    if exit == "hlt" && seen == CPUID_MARK {
        Ok(())
    } else {
        Err(format!(
            "guest CPUID does not follow KVM_SET_CPUID2 (leaf 0x40000000 EBX {seen:#x}, \
             installed {CPUID_MARK:#x}; exit {exit}): emulated KVM such as PVM may show the host's CPUID"
        ))
    }
}
