//! The KVM backend: schedtape's own VMM on kvm-ioctls, vm-memory and linux-loader.
//!
//! - [`arch`]: layout constants and pure writers (boot params, e820, page tables,
//!   GDT, MP table, ACPI MADT/SRAT/FADT, CPUID topology), testable without KVM.
//! - [`vstate`]: the VM and the vCPU threads with the freeze rendezvous.
//! - [`devices`]: 16550 UARTs, i8042 reset, boot-timer, report and doorbell ports,
//!   ACPI PM1 registers and an empty PCI bus.
//! - [`stall`]: what a VM that does not end is doing (for the run's watchdog).
//! - [`builder`]: composes them into a running [`KvmVm`].
//! - [`kind`](mod@kind): what backs /dev/kvm (hardware, nested or emulated),
//!   from the vendor module and CPU flags, for `--backend auto` and the trace.
//! - [`probe`](mod@probe): whether guest CPUID and hardware write watchpoints
//!   are honoured, each on a throwaway guest.
//!
//! Introspection goes through the [`Vm`] trait: guest RAM is one host mapping
//! ([`Vm::guest_memory`]); register reads and debug-register loads are requests
//! that the parked vCPU threads serve on their own fds during a freeze.
pub mod arch;
pub mod builder;
pub mod devices;
pub mod kind;
pub mod probe;
pub mod stall;
pub mod vstate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_clock_data;
use kvm_ioctls::VmFd;
use memmap2::MmapRaw;
use trace_format::scenario::Topology;
use vm_memory::GuestMemoryMmap;

use crate::backend::{BackendError, ConsoleEvent, GuestWindow, Vm, WatchHit, WatchId};
use crate::introspect::{GuestMemory, Region};
use devices::Devices;
use devices::bell::HostBell;
use devices::doorbell::Doorbell;
pub use kind::{KvmKind, KvmProbe, kind};
pub use vstate::vcpu::VmExit;
use vstate::vcpu::{Control, HwWatch, VcpuReply, VcpuRequest};
use vstate::vm::KvmIoctlError;

/// How long a freeze may take before the missing vCPUs are reported.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a parked vCPU may take to answer a register request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Hardware write watchpoints one VM may hold (DR3 stays spare).
pub const MAX_WATCHES: usize = 3;

/// Everything needed to start a guest.
#[derive(Debug, Clone)]
pub struct KvmConfig {
    /// An ELF vmlinux (PVH note, else 64-bit `e_entry`) or a bzImage.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Kernel arguments; the ring argument is appended.
    pub cmdline: String,
    pub topology: Topology,
    pub memory_mib: u64,
    /// End the VM at the guest's first boot-timer marker ([`VmExit::BootMark`]);
    /// for start-up benchmarks.
    pub stop_at_boot_mark: bool,
}

/// KVM backend failures.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm could not be used.
    #[error("cannot use /dev/kvm: {0}")]
    Open(String),
    /// A KVM ioctl failed while building the VM.
    #[error(transparent)]
    Ioctl(#[from] KvmIoctlError),
    /// The kernel image could not be loaded.
    #[error("cannot load kernel {0}: {1}")]
    Kernel(String, String),
    /// The initramfs could not be loaded.
    #[error("cannot load initramfs {0}: {1}")]
    Initrd(String, String),
    /// The command line is invalid or too long.
    #[error("bad kernel command line: {0}")]
    Cmdline(String),
    /// A vCPU thread could not be started.
    #[error("cannot start a vCPU thread: {0}")]
    Thread(String),
    /// The host bell's eventfd could not be made.
    #[error("cannot make the host bell (eventfd): {0}")]
    Bell(#[source] std::io::Error),
    /// Guest memory or boot tables could not be laid out.
    #[error("guest memory layout: {0}")]
    Layout(String),
}

/// A running guest on our own VMM.
pub struct KvmVm {
    vm: Arc<VmFd>,
    mem: GuestMemoryMmap,
    /// The one host mapping behind every RAM region of `mem`.
    ram: Arc<MmapRaw>,
    ram_regions: Vec<Region>,
    window_map: Arc<MmapRaw>,
    window_gpa: u64,
    devices: Arc<Mutex<Devices>>,
    control: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
    apic_ids: Vec<u32>,
    start: Instant,
    frozen: Option<(Instant, kvm_clock_data)>,
    console_line: Vec<u8>,
    /// Loaded watchpoints: address per debug register.
    watches: HwWatch,
    next_watch: u32,
    /// The ring doorbell's ioeventfd, or why there is none.
    doorbell: Doorbell,
    /// Rung by the vCPU threads at console lines, watchpoint hits and the end.
    bell: HostBell,
    /// The kernel command line as loaded into guest memory.
    cmdline: String,
    /// How long each stage of building the VM took (vm, memory, kernel,
    /// tables, vcpus, threads).
    build_stages: Vec<(&'static str, Duration)>,
}

impl std::fmt::Debug for KvmVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmVm")
            .field("vcpus", &self.apic_ids.len())
            .field("window_gpa", &self.window_gpa)
            .field("exit", &self.control.exit())
            .finish_non_exhaustive()
    }
}

impl KvmVm {
    /// Builds the VM, lets `prepare` initialise the window, then starts the vCPUs.
    /// The ring doorbell is registered where KVM allows (else the host polls).
    pub fn launch(
        config: &KvmConfig,
        prepare: impl FnOnce(&GuestWindow),
    ) -> Result<Self, KvmError> {
        builder::build(config, true, prepare)
    }

    /// [`KvmVm::launch`] without the doorbell's ioeventfd: the polling fallback
    /// taken when registration fails (guest doorbell writes exit and are ignored).
    pub fn launch_polling(
        config: &KvmConfig,
        prepare: impl FnOnce(&GuestWindow),
    ) -> Result<Self, KvmError> {
        builder::build(config, false, prepare)
    }

    /// Guest RAM as vm-memory sees it (tests and loaders); introspection uses
    /// [`Vm::guest_memory`].
    pub fn ram(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Guest-physical address of the transport window.
    pub fn window_gpa(&self) -> u64 {
        self.window_gpa
    }

    /// APIC ID of each logical CPU.
    pub fn apic_ids(&self) -> &[u32] {
        &self.apic_ids
    }

    /// Why the guest stopped, once it has.
    pub fn exit_status(&self) -> Option<VmExit> {
        self.control.exit()
    }

    /// Waits up to `timeout` for the guest to stop; returns at once, without
    /// joining the vCPU threads (see [`KvmVm::wait_exit`]).
    pub fn wait_stop(&self, timeout: Duration) -> Option<VmExit> {
        self.control.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the guest to stop and its vCPU threads to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<VmExit> {
        let until = Instant::now() + timeout;
        self.control.wait_exit(timeout)?;
        while Instant::now() < until {
            if self.has_exited() {
                return self.exit_status();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// Words written to the report port, by logical CPU.
    pub fn reports(&self) -> BTreeMap<u32, Vec<u32>> {
        self.devices().reports.clone()
    }

    /// Boot-timer markers with their time since the VMM started.
    pub fn boot_marks(&self) -> Vec<(u8, Duration)> {
        self.devices().boot_marks.clone()
    }

    /// Bytes written to COM2 so far (drained).
    pub fn take_com2(&self) -> Vec<u8> {
        std::mem::take(&mut self.devices().com2.output)
    }

    /// How long each stage of building the VM took, in order.
    pub fn build_stages(&self) -> &[(&'static str, Duration)] {
        &self.build_stages
    }

    /// Time since the VMM started building the VM.
    pub fn uptime(&self) -> Duration {
        self.start.elapsed()
    }

    /// The doorbell port, when guest writes to it signal the host in the kernel.
    pub fn doorbell_port(&self) -> Option<u16> {
        self.doorbell.port()
    }

    /// Why there is no in-kernel doorbell (the host then polls the ring).
    pub fn doorbell_error(&self) -> Option<&str> {
        self.doorbell.error()
    }

    /// True when the guest rang the doorbell since the last
    /// [`Vm::wait_for_guest`] (which drains it); does not drain.
    pub fn doorbell_pending(&self) -> bool {
        self.doorbell.pending()
    }

    /// Doorbell writes that exited to userspace (zero while the ioeventfd serves them).
    pub fn doorbell_exits(&self) -> u64 {
        self.devices().doorbell_exits
    }

    /// Hardware watchpoint hits dropped because they were not polled in time.
    pub fn watch_hits_dropped(&self) -> u64 {
        self.devices().watch_hits_dropped
    }

    /// [`Vm::watch`] without first checking that this /dev/kvm reports hits:
    /// loads DR0–DR2 on every vCPU (freezing around it unless frozen).
    pub fn watch_unprobed(&mut self, gva: u64) -> Result<WatchId, BackendError> {
        if !gva.is_multiple_of(4) {
            return Err(BackendError(format!(
                "watch address {gva:#x} is not 4-byte aligned"
            )));
        }
        let used = self.watches.addrs[..MAX_WATCHES]
            .iter()
            .filter(|a| a.is_some())
            .count();
        let Some(slot) = self.watches.addrs[..MAX_WATCHES]
            .iter()
            .position(Option::is_none)
        else {
            return Err(BackendError(format!(
                "at most {MAX_WATCHES} watchpoints ({used} set)"
            )));
        };
        let mut next = self.watches;
        next.addrs[slot] = Some(gva);
        let id = self.next_watch;
        // The id goes in first so that a hit right after loading is attributed.
        self.devices().watch_ids[slot] = Some(id);
        if let Err(e) = self.load_watches(next) {
            self.devices().watch_ids[slot] = None;
            // Put every vCPU back to the previous set (best effort).
            let _ = self.load_watches(self.watches);
            return Err(e);
        }
        self.watches = next;
        self.next_watch += 1;
        Ok(WatchId(id))
    }

    /// Runs `request` on every vCPU, freezing around it unless already frozen.
    fn on_every_vcpu(&mut self, request: VcpuRequest) -> Result<Vec<VcpuReply>, BackendError> {
        let was_frozen = self.frozen.is_some();
        if !was_frozen {
            self.freeze()?;
        }
        let replies: Result<Vec<_>, _> = (0..self.apic_ids.len())
            .map(|i| self.control.request(i, request, REQUEST_TIMEOUT))
            .collect();
        if !was_frozen {
            self.thaw()?;
        }
        replies.map_err(BackendError)
    }

    /// Loads `watches` into every vCPU's debug registers.
    fn load_watches(&mut self, watches: HwWatch) -> Result<(), BackendError> {
        self.on_every_vcpu(VcpuRequest::Debug(watches))
            .map_err(|e| {
                BackendError(format!(
                    "cannot load hardware watchpoints (KVM_SET_GUEST_DEBUG): {e}"
                ))
            })
            .map(drop)
    }

    fn devices(&self) -> std::sync::MutexGuard<'_, Devices> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where each vCPU is (RIP and MP state, read during a short freeze).
    fn places(&mut self) -> Vec<stall::Place> {
        let n = self.apic_ids.len();
        let was_frozen = self.frozen.is_some();
        if !was_frozen && let Err(e) = self.freeze() {
            return vec![Err(e.to_string()); n];
        }
        let places = (0..n)
            .map(
                |i| match self.control.request(i, VcpuRequest::Where, REQUEST_TIMEOUT) {
                    Ok(VcpuReply::Where { rip, mp_state }) => Ok((rip, mp_state)),
                    Ok(_) => Err("answered without registers".into()),
                    Err(e) => Err(e),
                },
            )
            .collect();
        if !was_frozen {
            let _ = self.thaw();
        }
        places
    }

    fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Vm for KvmVm {
    fn kernel_cmdline(&self) -> Option<&str> {
        Some(&self.cmdline)
    }

    fn window(&self) -> GuestWindow {
        let len = self.window_map.len();
        GuestWindow::new(Arc::clone(&self.window_map), 0, len)
            .expect("whole mapping is a valid window")
    }

    fn freeze(&mut self) -> Result<Duration, BackendError> {
        if self.frozen.is_some() {
            return Err(BackendError("already frozen".into()));
        }
        let latency = match self.control.freeze(FREEZE_TIMEOUT) {
            Ok(l) => l,
            Err(e) => {
                self.control.thaw();
                return Err(BackendError(e.to_string()));
            }
        };
        let clock = match vstate::vm::get_clock(&self.vm) {
            Ok(c) => c,
            Err(e) => {
                self.control.thaw();
                return Err(BackendError(e.to_string()));
            }
        };
        self.frozen = Some((Instant::now(), clock));
        Ok(latency)
    }

    fn thaw(&mut self) -> Result<Duration, BackendError> {
        let (at, clock) = self
            .frozen
            .take()
            .ok_or_else(|| BackendError("not frozen".into()))?;
        let frozen_for = at.elapsed();
        let restored = vstate::vm::set_clock(&self.vm, &clock);
        self.control.thaw();
        restored.map_err(|e| BackendError(e.to_string()))?;
        Ok(frozen_for)
    }

    fn poll_console(&mut self, out: &mut Vec<ConsoleEvent>) {
        let bytes = std::mem::take(&mut self.devices().com1.output);
        self.console_line.extend_from_slice(&bytes);
        while let Some(line) = crate::console::split_line(&mut self.console_line) {
            out.push(ConsoleEvent::Serial(line));
        }
        if self.control.exit().is_some() && !self.console_line.is_empty() {
            let text = String::from_utf8_lossy(&self.console_line).into_owned();
            self.console_line.clear();
            out.push(ConsoleEvent::Serial(text));
        }
    }

    fn has_exited(&mut self) -> bool {
        if self.control.exit().is_some() && self.control.all_exited() {
            self.join();
            true
        } else {
            false
        }
    }

    fn exit_reason(&mut self) -> Option<String> {
        self.exit_status().map(|e| e.to_string())
    }

    /// Each vCPU's exits (read before the freeze, whose kicks are no guest
    /// exits) and RIP, and why Linux stalls where /dev/kvm is emulated.
    fn stall_report(&mut self) -> Vec<String> {
        let seen = self.control.activity.seen();
        let places = self.places();
        stall::lines(&seen, &places, kind::hardware_backed().err().as_deref())
    }

    fn kill(&mut self) {
        self.control.finish(VmExit::Killed);
        self.join();
    }

    fn describe(&self) -> trace_format::meta::Backend {
        trace_format::meta::Backend::Kvm
    }

    fn acceleration(&self) -> Option<trace_format::meta::Acceleration> {
        kind().ok().map(|p| p.kind.acceleration())
    }

    /// Only with the doorbell: without it, ring records arrive unannounced.
    fn wakes_on_guest_events(&self) -> bool {
        self.doorbell.port().is_some()
    }

    /// Sleeps on the doorbell's eventfd and the host bell (both drained on
    /// wake-up): a guest record batch, a console line, a watchpoint hit or
    /// the VM's end wakes it.
    fn wait_for_guest(&mut self, timeout: Duration) -> bool {
        self.doorbell.wait(Some(&self.bell), timeout)
    }

    fn guest_memory(&self) -> Option<GuestMemory> {
        GuestMemory::from_mmap(Arc::clone(&self.ram), self.ram_regions.clone())
    }

    /// Asks the (parked) vCPU thread for its special registers; freezes
    /// around the request unless the VM is frozen already.
    fn cr3(&mut self, cpu: u32) -> Result<u64, BackendError> {
        let index = usize::try_from(cpu).map_err(|e| BackendError(e.to_string()))?;
        if index >= self.apic_ids.len() {
            return Err(BackendError(format!(
                "no vCPU {cpu} (the VM has {})",
                self.apic_ids.len()
            )));
        }
        let was_frozen = self.frozen.is_some();
        if !was_frozen {
            self.freeze()?;
        }
        let reply = self
            .control
            .request(index, VcpuRequest::Sregs, REQUEST_TIMEOUT);
        if !was_frozen {
            self.thaw()?;
        }
        match reply.map_err(BackendError)? {
            VcpuReply::Sregs(s) => Ok(s.cr3),
            _ => Err(BackendError("vCPU answered without registers".into())),
        }
    }

    /// Refused where /dev/kvm would accept the watchpoint but never report a
    /// hit ([`probe::data_watchpoints`]), so a watch is never silently dead.
    fn watch(&mut self, gva: u64) -> Result<WatchId, BackendError> {
        probe::data_watchpoints()
            .map_err(|e| BackendError(format!("write watchpoints are unavailable: {e}")))?;
        self.watch_unprobed(gva)
    }

    fn unwatch(&mut self, id: WatchId) -> Result<(), BackendError> {
        let slot = self
            .devices()
            .watch_ids
            .iter()
            .position(|w| *w == Some(id.0))
            .ok_or_else(|| BackendError(format!("no watchpoint {}", id.0)))?;
        let mut next = self.watches;
        next.addrs[slot] = None;
        self.load_watches(next)?;
        self.watches = next;
        self.devices().watch_ids[slot] = None;
        Ok(())
    }

    fn poll_watch_hits(&mut self, out: &mut Vec<WatchHit>) {
        out.extend(self.devices().watch_hits.drain(..).map(|h| WatchHit {
            id: WatchId(h.id),
            cpu: h.cpu,
            rip: h.rip,
        }));
    }
}

impl Drop for KvmVm {
    fn drop(&mut self) {
        self.kill();
    }
}
