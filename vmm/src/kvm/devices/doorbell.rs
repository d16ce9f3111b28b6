//! The ring doorbell: an eventfd KVM signals in the kernel when the guest
//! writes [`DOORBELL_PORT`](super::DOORBELL_PORT), so the recorder can sleep
//! until records arrive instead of polling, at no userspace exit per batch.
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::bell::HostBell;

/// An ioeventfd on one I/O port, or why there is none (then the host polls).
#[derive(Debug)]
pub struct Doorbell {
    port: u16,
    fd: Result<EventFd, String>,
}

impl Doorbell {
    /// Registers an eventfd for guest writes of any width to `port`.
    pub fn register(vm: &VmFd, port: u16) -> Self {
        let fd = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| format!("eventfd: {e}"))
            .and_then(|fd| {
                vm.register_ioevent(&fd, &IoEventAddress::Pio(u64::from(port)), NoDatamatch)
                    .map(|()| fd)
                    .map_err(|e| format!("KVM_IOEVENTFD on port {port:#x}: {e}"))
            });
        Doorbell { port, fd }
    }

    /// A doorbell that is not registered (the polling fallback), saying why.
    pub fn unregistered(port: u16, why: impl Into<String>) -> Self {
        Doorbell {
            port,
            fd: Err(why.into()),
        }
    }

    /// The port, when guest writes to it signal the eventfd in the kernel.
    pub fn port(&self) -> Option<u16> {
        self.fd.is_ok().then_some(self.port)
    }

    /// Why there is no in-kernel doorbell, if there is none.
    pub fn error(&self) -> Option<&str> {
        self.fd.as_ref().err().map(String::as_str)
    }

    /// True when the guest has rung since the last drain (does not drain).
    pub fn pending(&self) -> bool {
        self.fd
            .as_ref()
            .is_ok_and(|fd| poll_in(&[fd.as_raw_fd()], Duration::ZERO)[0])
    }

    /// Waits up to `timeout` for a ring of the doorbell or of `bell` (the
    /// host bell), draining both; true when the guest rang the doorbell.
    /// With neither to wait on it sleeps `timeout`.
    pub fn wait(&self, bell: Option<&HostBell>, timeout: Duration) -> bool {
        let ring = self.fd.as_ref().ok();
        let mut fds = Vec::with_capacity(2);
        fds.extend(ring.map(AsRawFd::as_raw_fd));
        fds.extend(bell.map(AsRawFd::as_raw_fd));
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return false;
        }
        let ready = poll_in(&fds, timeout);
        if let Some(bell) = bell
            && ready[fds.len() - 1]
        {
            bell.drain();
        }
        // Non-blocking: EAGAIN means another reader drained it first.
        ring.is_some_and(|fd| ready[0] && fd.read().is_ok())
    }
}

/// ppoll(2) for readability of each of `fds` (at most two), with `timeout`
/// at nanosecond resolution; all false on timeout, error or interruption
/// (callers loop).
fn poll_in(fds: &[RawFd], timeout: Duration) -> [bool; 2] {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
    }
    let n = fds.len().min(2);
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `pfds` and `ts` are live locals for the call, `n` is at most
    // their length, and a null sigmask keeps the thread's mask; the fds stay
    // open while their owners are borrowed by the caller.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
    let mut ready = [false; 2];
    if rc > 0 {
        for (r, p) in ready.iter_mut().zip(&pfds[..n]) {
            *r = p.revents & libc::POLLIN != 0;
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn local() -> (Doorbell, EventFd) {
        let fd = EventFd::new(EFD_NONBLOCK).unwrap();
        let writer = fd.try_clone().unwrap();
        (
            Doorbell {
                port: 0x448,
                fd: Ok(fd),
            },
            writer,
        )
    }

    #[test]
    fn wait_returns_at_a_ring_and_drains() {
        let (bell, writer) = local();
        assert!(!bell.pending());
        writer.write(1).unwrap();
        writer.write(1).unwrap();
        assert!(bell.pending());
        let t = Instant::now();
        assert!(bell.wait(None, Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Both rings were drained by the one wait.
        assert!(!bell.pending());
        let t = Instant::now();
        assert!(!bell.wait(None, Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_ring_from_another_thread_wakes_a_waiter() {
        let (bell, writer) = local();
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.write(1).unwrap();
        });
        let t = Instant::now();
        assert!(bell.wait(None, Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        ringer.join().unwrap();
    }

    #[test]
    fn the_host_bell_wakes_a_waiter_without_counting_as_a_guest_ring() {
        let (doorbell, writer) = local();
        let host = HostBell::new().unwrap();
        let ringer = host.try_clone().unwrap();
        let t = Instant::now();
        let far = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            ringer.ring();
        });
        assert!(!doorbell.wait(Some(&host), Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        far.join().unwrap();
        // Drained: the next wait sleeps its whole timeout.
        let t = Instant::now();
        assert!(!doorbell.wait(Some(&host), Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        // Both at once: the guest's ring is reported and both are drained.
        host.ring();
        writer.write(1).unwrap();
        assert!(doorbell.wait(Some(&host), Duration::from_secs(5)));
        assert!(!doorbell.pending() && !host.drain());
        // Without a registered doorbell the host bell still wakes it.
        let polling = Doorbell::unregistered(0x448, "test");
        host.ring();
        let t = Instant::now();
        assert!(!polling.wait(Some(&host), Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn unregistered_sleeps_the_whole_timeout() {
        let bell = Doorbell::unregistered(0x448, "test");
        assert_eq!((bell.port(), bell.error()), (None, Some("test")));
        assert!(!bell.pending());
        let t = Instant::now();
        assert!(!bell.wait(None, Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
