//! What the run loop needs from a VM, whichever hypervisor runs it.
use std::sync::Arc;
use std::time::Duration;

use memmap2::MmapRaw;
use trace_format::ring::{RawMem, SharedMem};

pub use crate::introspect::GuestMemory;

/// Output from the VM, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// A line from the guest's serial console.
    Serial(String),
    /// A line the hypervisor itself printed (e.g. QEMU's stderr).
    Hypervisor(String),
}

/// Backend failures the run loop reports.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A hardware write watchpoint set with [`Vm::watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u32);

/// A guest write that triggered a watchpoint (the write has happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchHit {
    pub id: WatchId,
    /// Logical CPU (vCPU index) that wrote.
    pub cpu: u32,
    /// Guest RIP after the writing instruction.
    pub rip: u64,
}

/// A running guest.
pub trait Vm {
    /// The transport window, shared with the guest.
    fn window(&self) -> GuestWindow;
    /// Stops every vCPU; returns the rendezvous latency.
    fn freeze(&mut self) -> Result<Duration, BackendError>;
    /// Resumes every vCPU; returns how long the guest was frozen.
    fn thaw(&mut self) -> Result<Duration, BackendError>;
    /// Appends console output received since the last call.
    fn poll_console(&mut self, out: &mut Vec<ConsoleEvent>);
    /// True once the guest has shut down and the hypervisor has exited.
    fn has_exited(&mut self) -> bool;
    /// How the VM ended, once [`Vm::has_exited`] said it had: for the trace
    /// when the guest executor did not finish. `None` when unknown.
    fn exit_reason(&mut self) -> Option<String> {
        None
    }
    /// What the VM is doing when the host gives up on it (the watchdog):
    /// lines for the trace, e.g. where each vCPU is and why it may be stuck.
    /// Empty where the backend cannot tell.
    fn stall_report(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Ends the VM now.
    fn kill(&mut self);
    /// The kernel command line the guest booted with, tuning included (the
    /// run records it among the trace's notes); `None` when unknown.
    fn kernel_cmdline(&self) -> Option<&str> {
        None
    }
    /// The backend as recorded in the trace.
    fn describe(&self) -> trace_format::meta::Backend;
    /// How the guest's instructions run, as recorded in the trace; `None`
    /// when unknown.
    fn acceleration(&self) -> Option<trace_format::meta::Acceleration> {
        None
    }
    /// Waits up to `timeout` for the guest to signal that records are waiting
    /// (the ring doorbell); true when it did. Backends without a doorbell
    /// just sleep `timeout`, so callers keep polling the ring either way.
    fn wait_for_guest(&mut self, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
    /// True when [`Vm::wait_for_guest`] returns as soon as anything arrives
    /// (ring records, a console line, a watchpoint hit, the VM's end), so a
    /// caller may wait long; false when it only sleeps.
    fn wakes_on_guest_events(&self) -> bool {
        false
    }
    /// Guest-physical RAM, for kernel introspection; `None` where the backend
    /// cannot share it.
    fn guest_memory(&self) -> Option<GuestMemory> {
        None
    }
    /// CR3 of vCPU `cpu` (the root of its page tables).
    fn cr3(&mut self, cpu: u32) -> Result<u64, BackendError> {
        let _ = cpu;
        Err(BackendError(
            "reading vCPU registers is not supported by this backend".into(),
        ))
    }
    /// Sets a hardware write watchpoint on the 4 bytes at guest-virtual
    /// (linear) address `gva`, which must be 4-byte aligned. Hits arrive
    /// through [`Vm::poll_watch_hits`]; the guest keeps running.
    fn watch(&mut self, gva: u64) -> Result<WatchId, BackendError> {
        let _ = gva;
        Err(BackendError(
            "write watchpoints are not supported by this backend (they need hardware \
             debug registers: use the KVM backend)"
                .into(),
        ))
    }
    /// Removes a watchpoint set by [`Vm::watch`].
    fn unwatch(&mut self, id: WatchId) -> Result<(), BackendError> {
        Err(BackendError(format!(
            "no watchpoint {}: this backend has none",
            id.0
        )))
    }
    /// Appends watchpoint hits since the last call, oldest first.
    fn poll_watch_hits(&mut self, out: &mut Vec<WatchHit>) {
        let _ = out;
    }
}

/// A window of a host mapping of guest memory; keeps the mapping alive.
#[derive(Debug, Clone)]
pub struct GuestWindow {
    map: Arc<MmapRaw>,
    offset: usize,
    len: usize,
}

impl GuestWindow {
    /// The `len` bytes at `offset` of `map`; `None` when out of range or misaligned.
    pub fn new(map: Arc<MmapRaw>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= map.len() && offset.is_multiple_of(8)).then_some(GuestWindow { map, offset, len })
    }

    fn raw(&self) -> RawMem {
        // SAFETY: the range was checked against the mapping in `new`, the mapping
        // is page-aligned and `offset` is 8-aligned, and `self.map` keeps it alive
        // for as long as the returned RawMem is used (only within these methods).
        unsafe { RawMem::new(self.map.as_mut_ptr().add(self.offset), self.len) }
    }
}

impl SharedMem for GuestWindow {
    fn len(&self) -> usize {
        self.len
    }
    fn load_u64(&self, off: usize) -> u64 {
        self.raw().load_u64(off)
    }
    fn store_u64(&self, off: usize, value: u64) {
        self.raw().store_u64(off, value)
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        self.raw().read(off, buf)
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.raw().write(off, data)
    }
}
