//! The ring doorbell: an eventfd KVM signals in the kernel when the guest
//! writes [`DOORBELL_PORT`](super::DOORBELL_PORT), so the recorder can sleep
//! until records arrive instead of polling, at no userspace exit per batch.
use std::os::fd::AsRawFd;
use std::time::Duration;

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

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
        self.fd.as_ref().is_ok_and(|fd| poll_in(fd, Duration::ZERO))
    }

    /// Waits up to `timeout` for a ring and drains the eventfd; true when the
    /// guest rang. Without a registered eventfd it sleeps `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let Ok(fd) = &self.fd else {
            std::thread::sleep(timeout);
            return false;
        };
        if !poll_in(fd, timeout) {
            return false;
        }
        // Non-blocking: EAGAIN means another reader drained it first.
        fd.read().is_ok()
    }
}

/// poll(2) for readability, with `timeout` at nanosecond resolution; false on
/// timeout, error or interruption (callers loop).
fn poll_in(fd: &EventFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `pfd` and `ts` are live locals for the call, the count is 1, and
    // a null sigmask keeps the thread's mask; `fd` stays open while borrowed.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    n == 1 && pfd.revents & libc::POLLIN != 0
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
        assert!(bell.wait(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Both rings were drained by the one wait.
        assert!(!bell.pending());
        let t = Instant::now();
        assert!(!bell.wait(Duration::from_millis(20)));
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
        assert!(bell.wait(Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        ringer.join().unwrap();
    }

    #[test]
    fn unregistered_sleeps_the_whole_timeout() {
        let bell = Doorbell::unregistered(0x448, "test");
        assert_eq!((bell.port(), bell.error()), (None, Some("test")));
        assert!(!bell.pending());
        let t = Instant::now();
        assert!(!bell.wait(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
