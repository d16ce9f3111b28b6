//! SIGINT, SIGTERM and SIGHUP end a run alike: the first asks the guest to
//! stop, and the trace closes with an `End` naming the signal (SIGINT is
//! `interrupted`, the others `terminated`); a second one exits at once.
//! QEMU dies with this process however it ends (see `vmm::child`).
//!
//! The handler only writes the signal number into a pipe (async-signal-safe);
//! a thread reads it and does the rest.
use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use vmm::run::{StopRequest, signal_name};

/// The signals that stop a run.
const STOPPING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The pipe's write end, for the handler.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The process's stop request, once the handlers are installed.
static STOP: OnceLock<Arc<StopRequest>> = OnceLock::new();

/// The stop request the stopping signals make; installs the handlers on the
/// first call (later calls share the same request).
pub fn stop_request() -> Arc<StopRequest> {
    Arc::clone(STOP.get_or_init(|| {
        let stop = Arc::new(StopRequest::new());
        if let Err(e) = install(Arc::clone(&stop)) {
            eprintln!("warning: cannot handle SIGINT/SIGTERM/SIGHUP: {e}");
        }
        stop
    }))
}

/// The signal that asked this process to stop, if one did.
pub fn received() -> Option<i32> {
    STOP.get().and_then(|s| s.signal())
}

/// The exit status for a process ended by `signal`: 128 + its number.
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the
    // interrupted code's view intact. write(2) is async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let byte = u8::try_from(signal).unwrap_or(0);
        let fd = PIPE_WRITE.load(Ordering::Relaxed);
        let _ = libc::write(fd, (&raw const byte).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

fn install(stop: Arc<StopRequest>) -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The read end blocks: the watcher waits on it.
    // SAFETY: fds[0] is the pipe's read end, just opened and owned here.
    let reader = unsafe {
        libc::fcntl(fds[0], libc::F_SETFL, 0);
        File::from_raw_fd(fds[0])
    };
    PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || watch(reader, &stop))?;
    for signal in STOPPING {
        // SAFETY: a zeroed sigaction with a handler, an empty mask and
        // SA_RESTART is valid; the handler is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Reads signals from the pipe: the first requests a stop, the next forces
/// an exit.
fn watch(mut reader: File, stop: &StopRequest) {
    let mut byte = [0u8];
    while let Ok(1) = reader.read(&mut byte) {
        let signal = i32::from(byte[0]);
        if stop.request(signal) {
            let (what, again) = match signal {
                libc::SIGINT => ("interrupted".to_string(), "Ctrl-C"),
                _ => (signal_name(signal), "send it"),
            };
            eprintln!(
                "\n{what}: stopping the guest and closing the trace ({again} again to force)"
            );
        } else {
            force_exit(signal);
        }
    }
}

/// Exits now: QEMU dies with us (PR_SET_PDEATHSIG); its runtime files are
/// removed here, as no destructor runs. The trace stays unclosed (replay
/// recovers it).
fn force_exit(signal: i32) -> ! {
    vmm::qemu::runtime::remove_own(&crate::scenario_run::runtime_dir());
    eprintln!("{}: exiting without closing the trace", signal_name(signal));
    std::process::exit(i32::from(exit_status(signal)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before this module only SIGINT was handled: SIGTERM killed the
    /// process (and this test binary) outright.
    #[test]
    fn sigterm_requests_a_stop_naming_it() {
        let stop = stop_request();
        assert_eq!(received(), None);
        // SAFETY: raise has no preconditions; the handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        // The watcher thread records it; wait for that (no timing asserted).
        for _ in 0..10_000 {
            if stop.signal().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(received(), Some(libc::SIGTERM));
        assert_eq!(
            stop.outcome(),
            Some(trace_format::record::RunOutcome::Terminated {
                signal: "SIGTERM".into()
            })
        );
        assert!(
            Arc::ptr_eq(&stop, &stop_request()),
            "one request per process"
        );
        assert_eq!(exit_status(libc::SIGTERM), 143);
        assert_eq!(exit_status(libc::SIGINT), 130);
    }
}
