//! vCPU set-up and threads. Each vCPU runs `KVM_RUN` on its own thread; a VM-wide
//! [`Control`] parks them all for a freeze (kick signal + `immediate_exit`, then
//! an ack per vCPU) and stops them at exit.
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use kvm_bindings::{
    CpuId, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP, Msrs, kvm_cpuid_entry2, kvm_guest_debug,
    kvm_guest_debug_arch, kvm_msr_entry, kvm_run, kvm_sregs,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use super::activity::{Activity, ExitKind};
use super::vm::{KvmIoctlError, ioctl};
use crate::kvm::arch::regs::{boot_regs, boot_sregs};
use crate::kvm::devices::bell::HostBell;
use crate::kvm::devices::{Devices, PortAction};

/// How the boot vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEntry {
    pub entry: u64,
    /// 64-bit entry with the zero page in RSI; otherwise PVH 32-bit with the start info in EBX.
    pub long_mode: bool,
    pub pvh_info: u64,
}

/// Why the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// Reset through the i8042 (the normal end of a run).
    Reset,
    /// Triple fault (`KVM_EXIT_SHUTDOWN`), with the vCPU's state at that point.
    TripleFault { cpu: u32, state: String },
    /// `KVM_EXIT_SYSTEM_EVENT` of the given type.
    SystemEvent(u32),
    /// A vCPU executed HLT with nothing to wake it (no in-kernel irqchip exit).
    Halted { cpu: u32 },
    /// The host ended the VM.
    Killed,
    /// The guest wrote the boot-timer port and the VM was set to stop there
    /// ([`crate::kvm::KvmConfig::stop_at_boot_mark`]).
    BootMark(u8),
    /// A vCPU failed; the message says how.
    Error(String),
}

/// IA32_MISC_ENABLE.
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
/// IA32_MISC_ENABLE bit 0: fast string operations (`rep movs`/`stos`).
pub const MISC_ENABLE_FAST_STRING: u64 = 1;
/// IA32_MTRR_DEF_TYPE.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// MTRRdefType: MTRRs enabled (E, bit 11), fixed ranges off, default type
/// write-back (6), no variable ranges. Linux checks PAT requests for non-RAM
/// mappings such as the ring window against the MTRRs (with MTRRs disabled or
/// an uncached default they become UC-, which AMD's nested paging honours),
/// and with an uncached default on Intel it trims RAM no MTRR covers as WB.
pub const MTRR_DEF_TYPE_WB_ENABLED: u64 = (1 << 11) | 6;

/// One MSR the boot state sets, and the error op when KVM refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMsr {
    pub index: u32,
    pub data: u64,
    pub refused: &'static str,
}

/// The MSRs every vCPU starts with, given KVM's reset IA32_MISC_ENABLE:
/// fast strings on, KVM's other bits (BTS/PEBS unavailable, which describe
/// the virtual PMU) kept as they are, and write-back MTRRs. The rest
/// (SYSENTER, STAR/LSTAR/CSTAR, KERNEL_GS_BASE, SYSCALL_MASK) are already
/// zero after KVM_CREATE_VCPU, and KVM synchronises the vCPUs' TSCs itself.
pub fn boot_msrs(misc_enable: u64) -> [BootMsr; 2] {
    [
        BootMsr {
            index: MSR_IA32_MISC_ENABLE,
            data: misc_enable | MISC_ENABLE_FAST_STRING,
            refused: "KVM_SET_MSRS refused IA32_MISC_ENABLE",
        },
        BootMsr {
            index: MSR_MTRR_DEF_TYPE,
            data: MTRR_DEF_TYPE_WB_ENABLED,
            refused: "KVM_SET_MSRS refused IA32_MTRR_DEF_TYPE",
        },
    ]
}
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 4;
const APIC_MODE_EXTINT: u32 = 7;

fn set_lvt_mode(regs: &mut [std::os::raw::c_char], offset: usize, mode: u32) {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(&regs[offset..offset + 4]) {
        *d = s.to_ne_bytes()[0];
    }
    let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
    for (d, s) in regs[offset..offset + 4].iter_mut().zip(v.to_le_bytes()) {
        *d = std::os::raw::c_char::from_ne_bytes([s]);
    }
}

/// Creates vCPU `apic_id` and sets its CPUID, MSRs, FPU and LAPIC LINT0/LINT1;
/// the boot vCPU also gets its entry registers. Other vCPUs wait for INIT/SIPI.
pub fn create(
    vm: &VmFd,
    apic_id: u32,
    cpuid: &[kvm_cpuid_entry2],
    boot: Option<BootEntry>,
) -> Result<VcpuFd, KvmIoctlError> {
    let vcpu = ioctl("KVM_CREATE_VCPU", vm.create_vcpu(u64::from(apic_id)))?;
    let cpuid = CpuId::from_entries(cpuid).map_err(|_| KvmIoctlError {
        op: "CPUID table too large",
        source: kvm_ioctls::Error::new(libc::E2BIG),
    })?;
    ioctl("KVM_SET_CPUID2", vcpu.set_cpuid2(&cpuid))?;
    let mut misc = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_MISC_ENABLE,
        ..Default::default()
    }])
    .expect("one MSR fits");
    let read = ioctl("KVM_GET_MSRS", vcpu.get_msrs(&mut misc))?;
    let misc_enable = misc
        .as_slice()
        .first()
        .filter(|_| read == 1)
        .map(|e| e.data);
    let wanted = boot_msrs(misc_enable.unwrap_or(0));
    let entries: Vec<kvm_msr_entry> = wanted
        .iter()
        .map(|m| kvm_msr_entry {
            index: m.index,
            data: m.data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).expect("two MSRs fit");
    // KVM_SET_MSRS stops at the first MSR it refuses and returns how many it set.
    let set = ioctl("KVM_SET_MSRS", vcpu.set_msrs(&msrs))?;
    if let Some(refused) = wanted.get(set) {
        return Err(KvmIoctlError {
            op: refused.refused,
            source: kvm_ioctls::Error::new(libc::EINVAL),
        });
    }
    // FCW as after FNINIT. KVM_SET_FPU ignores `mxcsr`; KVM's reset state
    // already holds 0x1f80 there, and it is set here only for clarity.
    let mut fpu = ioctl("KVM_GET_FPU", vcpu.get_fpu())?;
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    ioctl("KVM_SET_FPU", vcpu.set_fpu(&fpu))?;
    let mut lapic = ioctl("KVM_GET_LAPIC", vcpu.get_lapic())?;
    set_lvt_mode(&mut lapic.regs, APIC_LVT_LINT0, APIC_MODE_EXTINT);
    set_lvt_mode(&mut lapic.regs, APIC_LVT_LINT1, APIC_MODE_NMI);
    ioctl("KVM_SET_LAPIC", vcpu.set_lapic(&lapic))?;
    if let Some(b) = boot {
        let mut sregs = ioctl("KVM_GET_SREGS", vcpu.get_sregs())?;
        boot_sregs(&mut sregs, b.long_mode);
        ioctl("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
        ioctl(
            "KVM_SET_REGS",
            vcpu.set_regs(&boot_regs(b.entry, b.long_mode, b.pvh_info)),
        )?;
    }
    Ok(vcpu)
}

thread_local! {
    /// This thread's `kvm_run`, for the kick handler; null outside the run loop.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_signal: libc::c_int) {
    let _ = KVM_RUN.try_with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: the pointer is this thread's live kvm_run mapping (set and
            // cleared by the run loop around the VcpuFd's use); a byte store is
            // async-signal-safe, and KVM polls the flag at KVM_RUN entry.
            unsafe { std::ptr::write_volatile(&raw mut (*run).immediate_exit, 1) };
        }
    });
}

/// The real-time signal that kicks vCPU threads out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; we fill handler and mask before use.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa` is a valid sigaction; the handler only touches a thread-local.
        let rc = unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut())
        };
        assert_eq!(rc, 0, "cannot install the vCPU kick handler");
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Starting,
    Running,
    Parked,
    Exited,
}

/// Work a parked vCPU thread does on its own fd for the VM owner (the fd
/// belongs to the thread, so other threads ask instead of sharing it).
#[derive(Debug, Clone, Copy)]
pub enum VcpuRequest {
    /// Read the special registers (CR3 among them).
    Sregs,
    /// Load hardware watchpoints (see [`HwWatch`]).
    Debug(HwWatch),
    /// Where the vCPU is: RIP and its multiprocessing state.
    Where,
}

/// A parked vCPU's answer to a [`VcpuRequest`].
#[derive(Debug, Clone)]
pub enum VcpuReply {
    Sregs(Box<kvm_sregs>),
    /// RIP and `KVM_GET_MP_STATE` (0 runnable, 1 uninitialised, 2 waiting
    /// for INIT, 3 halted, 4 waiting for SIPI).
    Where {
        rip: u64,
        mp_state: u32,
    },
    Done,
}

/// Up to four hardware write watchpoints (DR0–DR3), 4 bytes each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HwWatch {
    /// Linear address per debug register, or `None` when unused.
    pub addrs: [Option<u64>; 4],
}

impl HwWatch {
    /// DR7: local enable, break on data writes, length 4, for each used register.
    pub fn dr7(&self) -> u64 {
        let mut dr7 = 0;
        for (i, a) in self.addrs.iter().enumerate() {
            if a.is_some() {
                dr7 |= 1 << (2 * i); // L<i>
                dr7 |= 0b01 << (16 + 4 * i); // R/W<i>: data writes
                dr7 |= 0b11 << (18 + 4 * i); // LEN<i>: 4 bytes
            }
        }
        dr7
    }

    /// The `KVM_SET_GUEST_DEBUG` argument: hardware breakpoints when any is
    /// set, guest debugging off otherwise.
    pub fn guest_debug(&self) -> kvm_guest_debug {
        let mut debugreg = [0u64; 8];
        for (slot, a) in debugreg.iter_mut().zip(self.addrs) {
            *slot = a.unwrap_or(0);
        }
        debugreg[7] = self.dr7();
        let control = if self.addrs.iter().any(Option::is_some) {
            KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP
        } else {
            0
        };
        kvm_guest_debug {
            control,
            pad: 0,
            arch: kvm_guest_debug_arch { debugreg },
        }
    }
}

#[derive(Debug)]
struct State {
    status: Vec<Status>,
    threads: Vec<Option<libc::pthread_t>>,
    exit: Option<VmExit>,
    requests: Vec<Option<VcpuRequest>>,
    replies: Vec<Option<Result<VcpuReply, String>>>,
}

/// Rendezvous point shared by the VM owner and its vCPU threads.
#[derive(Debug)]
pub struct Control {
    /// Each vCPU's guest exits, for the report on a VM that does not end.
    pub activity: Activity,
    pause: AtomicBool,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Where the VM owner waits: a vCPU parked or exited, a reply, the end.
    owner_cv: Condvar,
    /// Where parked vCPU threads wait: a thaw, a request, the end. Apart
    /// from `owner_cv` so that each vCPU parking wakes only the owner, not
    /// every vCPU parked before it.
    vcpu_cv: Condvar,
    /// Rung when the VM ends, so that a host asleep on it notices at once.
    bell: HostBell,
}

/// A freeze that did not complete: the vCPUs that never acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("vCPUs {0:?} did not stop within the freeze timeout")]
pub struct FreezeTimeout(pub Vec<usize>);

impl Control {
    pub fn new(vcpus: usize, bell: HostBell) -> Arc<Self> {
        install_kick_handler();
        Arc::new(Control {
            activity: Activity::new(vcpus),
            pause: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                status: vec![Status::Starting; vcpus],
                threads: vec![None; vcpus],
                exit: None,
                requests: vec![None; vcpus],
                replies: vec![None; vcpus],
            }),
            owner_cv: Condvar::new(),
            vcpu_cv: Condvar::new(),
            bell,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals every live vCPU thread; the caller holds the lock, so none is joined meanwhile.
    fn kick_all(st: &State) {
        for (t, s) in st.threads.iter().zip(&st.status) {
            if let (Some(t), false) = (t, *s == Status::Exited) {
                // SAFETY: the thread has not exited its run loop (status under the
                // lock), so it has not been joined and its pthread_t is valid.
                unsafe { libc::pthread_kill(*t, kick_signal()) };
            }
        }
    }

    /// Parks every vCPU; returns the rendezvous latency (kick to last ack).
    pub fn freeze(&self, timeout: Duration) -> Result<Duration, FreezeTimeout> {
        let start = Instant::now();
        self.pause.store(true, Ordering::SeqCst);
        let mut st = self.lock();
        Self::kick_all(&st);
        loop {
            let waiting: Vec<usize> = (0..st.status.len())
                .filter(|&i| matches!(st.status[i], Status::Running | Status::Starting))
                .collect();
            if waiting.is_empty() {
                return Ok(start.elapsed());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(FreezeTimeout(waiting));
            }
            st = self
                .owner_cv
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lets every parked vCPU run again.
    pub fn thaw(&self) {
        let _st = self.lock();
        self.pause.store(false, Ordering::SeqCst);
        self.vcpu_cv.notify_all();
    }

    /// Records why the VM ended (first reason wins) and stops every vCPU.
    pub fn finish(&self, exit: VmExit) {
        let mut st = self.lock();
        st.exit.get_or_insert(exit);
        self.stop.store(true, Ordering::SeqCst);
        Self::kick_all(&st);
        self.owner_cv.notify_all();
        self.vcpu_cv.notify_all();
        self.bell.ring();
    }

    /// Why the VM ended, once it has.
    pub fn exit(&self) -> Option<VmExit> {
        self.lock().exit.clone()
    }

    /// Waits up to `timeout` for the VM to end (woken by [`Control::finish`]).
    pub fn wait_exit(&self, timeout: Duration) -> Option<VmExit> {
        let start = Instant::now();
        let mut st = self.lock();
        loop {
            if st.exit.is_some() {
                return st.exit.clone();
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return None;
            }
            st = self
                .owner_cv
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// True once every vCPU thread has left its run loop.
    pub fn all_exited(&self) -> bool {
        self.lock().status.iter().all(|s| *s == Status::Exited)
    }

    /// Has parked vCPU `index` run `request` on its fd; fails when the vCPU is
    /// not parked (freeze first) or does not answer within `timeout`.
    pub fn request(
        &self,
        index: usize,
        request: VcpuRequest,
        timeout: Duration,
    ) -> Result<VcpuReply, String> {
        let start = Instant::now();
        let mut st = self.lock();
        match st.status.get(index) {
            None => return Err(format!("no vCPU {index}")),
            Some(Status::Parked) if self.pause.load(Ordering::SeqCst) => {}
            Some(s) => return Err(format!("vCPU {index} is not frozen ({s:?})")),
        }
        st.replies[index] = None;
        st.requests[index] = Some(request);
        self.vcpu_cv.notify_all();
        loop {
            if let Some(reply) = st.replies[index].take() {
                return reply;
            }
            if st.status[index] != Status::Parked || self.stop.load(Ordering::SeqCst) {
                st.requests[index] = None;
                return Err(format!("vCPU {index} left its parked state"));
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                st.requests[index] = None;
                return Err(format!("vCPU {index} did not answer within {timeout:?}"));
            }
            st = self
                .owner_cv
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn park(&self, index: usize, vcpu: &VcpuFd) {
        let mut st = self.lock();
        st.status[index] = Status::Parked;
        self.owner_cv.notify_all();
        while self.pause.load(Ordering::SeqCst) && !self.stop.load(Ordering::SeqCst) {
            if let Some(request) = st.requests[index].take() {
                st.replies[index] = Some(serve(vcpu, request));
                self.owner_cv.notify_all();
                continue;
            }
            st = self.vcpu_cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.status[index] = Status::Running;
    }

    fn set_status(&self, index: usize, status: Status) {
        self.lock().status[index] = status;
        self.owner_cv.notify_all();
    }
}

/// Runs `request` on this thread's vCPU (which is outside `KVM_RUN`).
fn serve(vcpu: &VcpuFd, request: VcpuRequest) -> Result<VcpuReply, String> {
    match request {
        VcpuRequest::Sregs => vcpu
            .get_sregs()
            .map(|s| VcpuReply::Sregs(Box::new(s)))
            .map_err(|e| format!("KVM_GET_SREGS: {e}")),
        VcpuRequest::Debug(watch) => vcpu
            .set_guest_debug(&watch.guest_debug())
            .map(|()| VcpuReply::Done)
            .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}")),
        VcpuRequest::Where => {
            let rip = vcpu
                .get_regs()
                .map_err(|e| format!("KVM_GET_REGS: {e}"))?
                .rip;
            let mp_state = vcpu
                .get_mp_state()
                .map_err(|e| format!("KVM_GET_MP_STATE: {e}"))?
                .mp_state;
            Ok(VcpuReply::Where { rip, mp_state })
        }
    }
}

/// Starts the vCPU threads (vCPU `i` is logical CPU `i`) and registers them.
pub fn spawn_all(
    vcpus: Vec<VcpuFd>,
    ctl: &Arc<Control>,
    devices: &Arc<Mutex<Devices>>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    use std::os::unix::thread::JoinHandleExt;
    // Threads block on this lock until every one is registered, so a kick never misses one.
    let mut st = ctl.lock();
    let mut handles = Vec::new();
    for (index, vcpu) in vcpus.into_iter().enumerate() {
        let thread_ctl = Arc::clone(ctl);
        let devices = Arc::clone(devices);
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || run_loop(vcpu, index, &thread_ctl, &devices));
        match handle {
            Ok(h) => {
                st.threads[index] = Some(h.as_pthread_t());
                handles.push(h);
            }
            Err(e) => {
                // Threads already started see `stop` once the lock is released.
                ctl.stop.store(true, Ordering::SeqCst);
                drop(st);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
    }
    Ok(handles)
}

fn run_loop(mut vcpu: VcpuFd, index: usize, ctl: &Control, devices: &Mutex<Devices>) {
    let cpu = u32::try_from(index).expect("vCPU index fits u32");
    KVM_RUN.set(vcpu.get_kvm_run());
    ctl.set_status(index, Status::Running);
    while !ctl.stop.load(Ordering::SeqCst) {
        if ctl.pause.load(Ordering::SeqCst) {
            ctl.park(index, &vcpu);
            continue;
        }
        let result = vcpu.run();
        if let Ok(exit) = &result {
            ctl.activity.exit(index, exit_kind(exit));
        }
        let outcome = match result {
            Ok(VcpuExit::IoOut(port, data)) => {
                let action = devices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .io_out(cpu, port, data);
                match action {
                    PortAction::None => None,
                    PortAction::Reset => Some(VmExit::Reset),
                    PortAction::Stop(mark) => Some(VmExit::BootMark(mark)),
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                devices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .io_in(port, data);
                None
            }
            Ok(VcpuExit::MmioRead(_, data)) => {
                data.fill(0xff);
                None
            }
            Ok(VcpuExit::MmioWrite(..) | VcpuExit::Intr | VcpuExit::IrqWindowOpen) => None,
            Ok(VcpuExit::Debug(arch)) => {
                let mut d = devices.lock().unwrap_or_else(|e| e.into_inner());
                if d.watch_hit(cpu, arch.exception, arch.dr6, arch.pc) {
                    None
                } else {
                    Some(VmExit::Error(format!(
                        "vCPU {cpu}: debug exit (exception {}, DR6 {:#x}, RIP {:#x}) with no watchpoint",
                        arch.exception, arch.dr6, arch.pc
                    )))
                }
            }
            Ok(VcpuExit::Hlt) => Some(VmExit::Halted { cpu }),
            Ok(VcpuExit::Shutdown) => Some(VmExit::TripleFault {
                cpu,
                state: fault_state(&vcpu),
            }),
            Ok(VcpuExit::SystemEvent(kind, _)) => Some(VmExit::SystemEvent(kind)),
            Ok(VcpuExit::InternalError) => Some(VmExit::Error(internal_error(&mut vcpu, cpu))),
            Ok(VcpuExit::FailEntry(reason, host_cpu)) => Some(VmExit::Error(format!(
                "vCPU {cpu}: entry failed (reason {reason:#x}, host CPU {host_cpu})"
            ))),
            Ok(other) => Some(VmExit::Error(format!(
                "vCPU {cpu}: unhandled exit {other:?}"
            ))),
            Err(e) if e.errno() == libc::EINTR => {
                vcpu.set_kvm_immediate_exit(0);
                None
            }
            // An AP woken by INIT returns EAGAIN once; run it again.
            Err(e) if e.errno() == libc::EAGAIN => None,
            Err(e) => Some(VmExit::Error(format!("vCPU {cpu}: KVM_RUN failed: {e}"))),
        };
        if let Some(exit) = outcome {
            ctl.finish(exit);
        }
    }
    KVM_RUN.set(std::ptr::null_mut());
    ctl.set_status(index, Status::Exited);
}

/// How [`Activity`] files a guest exit.
fn exit_kind(exit: &VcpuExit<'_>) -> ExitKind {
    match exit {
        VcpuExit::IoOut(port, _) => ExitKind::IoOut(*port),
        VcpuExit::IoIn(port, _) => ExitKind::IoIn(*port),
        VcpuExit::MmioRead(addr, _) => ExitKind::MmioRead(*addr),
        VcpuExit::MmioWrite(addr, _) => ExitKind::MmioWrite(*addr),
        VcpuExit::Hlt => ExitKind::Hlt,
        VcpuExit::Debug(_) => ExitKind::Debug,
        VcpuExit::Shutdown => ExitKind::Shutdown,
        VcpuExit::InternalError => ExitKind::InternalError,
        _ => ExitKind::Other,
    }
}

/// RIP, RSP and the control registers of a vCPU that stopped on a fault.
fn fault_state(vcpu: &VcpuFd) -> String {
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => format!(
            "RIP {:#x} RSP {:#x} CR0 {:#x} CR2 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
            r.rip, r.rsp, s.cr0, s.cr2, s.cr3, s.cr4, s.efer
        ),
        (Err(e), _) | (_, Err(e)) => format!("registers unreadable: {e}"),
    }
}

/// KVM's account of `KVM_EXIT_INTERNAL_ERROR`: the suberror, the instruction
/// bytes of a failed emulation (or the raw data words otherwise) and the
/// vCPU's state.
fn internal_error(vcpu: &mut VcpuFd, cpu: u32) -> String {
    let run = vcpu.get_kvm_run();
    // SAFETY: on KVM_EXIT_INTERNAL_ERROR, KVM fills the `internal` member of
    // the exit union; it is plain data (integers only).
    let internal = unsafe { run.__bindgen_anon_1.internal };
    // SAFETY: `emulation_failure` overlays `internal` (same suberror and ndata
    // header, then the data words) and is plain data too; it is read only
    // when KVM flags it as carrying the instruction bytes.
    let failure = unsafe { run.__bindgen_anon_1.emulation_failure };
    let what = match internal.suberror {
        kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => "instruction emulation failed",
        kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => "exception while delivering an exception",
        kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => "event delivery failed",
        kvm_bindings::KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected exit reason",
        _ => "unknown suberror",
    };
    let has_bytes = internal.suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION
        && internal.ndata >= 1
        && failure.flags
            & u64::from(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)
            != 0;
    let detail = if has_bytes {
        // SAFETY: as above; the union holds only the size and the bytes.
        let insn = unsafe { failure.__bindgen_anon_1.__bindgen_anon_1 };
        let n = usize::from(insn.insn_size).min(insn.insn_bytes.len());
        let bytes: Vec<String> = insn.insn_bytes[..n]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("instruction bytes {}", bytes.join(" "))
    } else {
        let n = usize::try_from(internal.ndata).map_or(0, |n| n.min(internal.data.len()));
        let data: Vec<String> = internal.data[..n]
            .iter()
            .map(|d| format!("{d:#x}"))
            .collect();
        format!("data [{}]", data.join(", "))
    };
    format!(
        "vCPU {cpu}: KVM internal error {} ({what}; {detail}); {}",
        internal.suberror,
        fault_state(vcpu)
    )
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::Reset => f.write_str("the guest reset the machine (i8042)"),
            VmExit::TripleFault { cpu, state } => write!(f, "vCPU {cpu} triple-faulted ({state})"),
            VmExit::SystemEvent(kind) => write!(f, "KVM system event {kind}"),
            VmExit::Halted { cpu } => write!(f, "vCPU {cpu} halted with nothing to wake it"),
            VmExit::Killed => f.write_str("the host ended the VM"),
            VmExit::BootMark(mark) => write!(f, "stopped at boot marker {mark:#x}"),
            VmExit::Error(e) => f.write_str(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_msrs_keep_kvms_misc_enable_bits_and_enable_wb_mtrrs() {
        // KVM's reset value: BTS and PEBS unavailable (bits 11 and 12).
        let m = boot_msrs(0x1800);
        assert_eq!((m[0].index, m[0].data), (0x1a0, 0x1801));
        assert_eq!((m[1].index, m[1].data), (0x2ff, 0x806));
        // E set, FE clear, default type WB.
        assert_eq!(m[1].data & (1 << 11), 1 << 11);
        assert_eq!(m[1].data & (1 << 10), 0);
        assert_eq!(m[1].data & 0xff, 6);
        assert_eq!(boot_msrs(0)[0].data, 1);
    }

    #[test]
    fn watch_registers_encode_write_only_four_byte_breakpoints() {
        let none = HwWatch::default();
        assert_eq!((none.dr7(), none.guest_debug().control), (0, 0));
        let w = HwWatch {
            addrs: [Some(0x1000), None, Some(0x2004), None],
        };
        // DR0: L0, RW0=01, LEN0=11; DR2: L2, RW2=01, LEN2=11.
        assert_eq!(w.dr7(), 0x1 | 0xd_0000 | 0x10 | 0xd00_0000);
        let d = w.guest_debug();
        assert_eq!(d.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP);
        assert_eq!(d.arch.debugreg[..4], [0x1000, 0, 0x2004, 0]);
        assert_eq!(d.arch.debugreg[7], w.dr7());
    }
}
