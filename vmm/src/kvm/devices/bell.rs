//! The host bell: an eventfd the vCPU threads write when the recorder has
//! something to look at that is not a ring record (a complete console line,
//! a watchpoint hit, the end of the VM), so that it can sleep on the bell and
//! the ring doorbell together instead of waking every few milliseconds.
use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// One bell; clones share the eventfd.
#[derive(Debug)]
pub struct HostBell(EventFd);

impl HostBell {
    pub fn new() -> std::io::Result<Self> {
        EventFd::new(EFD_NONBLOCK).map(HostBell)
    }

    /// Another handle on the same eventfd.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        self.0.try_clone().map(HostBell)
    }

    /// Wakes whoever sleeps on the bell (or makes the next sleep return).
    pub fn ring(&self) {
        // A full counter (2^64 - 2 unread rings) still wakes the sleeper.
        let _ = self.0.write(1);
    }

    /// Clears the rings so far (non-blocking); true when there were any.
    pub fn drain(&self) -> bool {
        self.0.read().is_ok()
    }
}

impl AsRawFd for HostBell {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
