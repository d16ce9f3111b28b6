//! SIGINT, SIGTERM and SIGHUP end a run alike: the first asks the guest to
//! stop, and the trace closes with an `End` naming the signal (SIGINT is
//! `interrupted`, the others `terminated`); a second one exits at once.
//! QEMU dies with this process however it ends (see `vmm::child`).
//!
//! signal-hook's handler only wakes an iterator (async-signal-safe); a
//! thread takes each signal from it and does the rest.
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vmm::run::{StopRequest, signal_name};

/// The signals that stop a run.
const STOPPING: [libc::c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

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

fn install(stop: Arc<StopRequest>) -> std::io::Result<()> {
    let signals = Signals::new(STOPPING)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || watch(signals, &stop))?;
    Ok(())
}

/// Takes signals as they come: the first requests a stop, the next forces
/// an exit.
fn watch(mut signals: Signals, stop: &StopRequest) {
    for signal in signals.forever() {
        if stop.request(signal) {
            let (what, again) = match signal {
                SIGINT => ("interrupted".to_string(), "Ctrl-C"),
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
