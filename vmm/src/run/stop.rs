//! A request to end a run early, made from outside the recorder (a signal
//! handler's thread): which signal asked, so the trace's `End` can say so.
use std::sync::atomic::{AtomicI32, Ordering};

use trace_format::record::RunOutcome;

/// The signal that asked the run to stop, or none yet. The first request
/// wins; later ones do not change it.
#[derive(Debug, Default)]
pub struct StopRequest(AtomicI32);

impl StopRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `signal` asked to stop; true for the first request.
    /// Signal numbers are positive: anything else counts as SIGINT.
    pub fn request(&self, signal: i32) -> bool {
        let signal = if signal > 0 { signal } else { libc::SIGINT };
        self.0
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The signal of the first request, once one was made.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// What the guest is told: `interrupted on the host`, `SIGTERM on the host`.
    pub fn reason(&self) -> String {
        match self.signal() {
            None | Some(libc::SIGINT) => "interrupted on the host".into(),
            Some(s) => format!("{} on the host", signal_name(s)),
        }
    }

    /// How a run stopped by this request ends: SIGINT is the user's
    /// interrupt, any other signal terminated the run.
    pub fn outcome(&self) -> Option<RunOutcome> {
        self.signal().map(|s| match s {
            libc::SIGINT => RunOutcome::Interrupted,
            s => RunOutcome::Terminated {
                signal: signal_name(s),
            },
        })
    }
}

/// Whether what the host saw (`host`) ends the run rather than the guest's
/// own `End`: when the guest wrote none, when the kernel panicked, and when a
/// signal stopped the guest (it says `Interrupted`; the host knows which).
pub(super) fn host_outcome_wins(host: &RunOutcome, guest: Option<&RunOutcome>) -> bool {
    matches!(
        (host, guest),
        (_, None)
            | (RunOutcome::KernelPanic { .. }, _)
            | (RunOutcome::Terminated { .. }, Some(RunOutcome::Interrupted))
    )
}

/// `SIGTERM` for 15: the names of the signals that commonly end a process.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_decides_the_outcome() {
        let stop = StopRequest::new();
        assert_eq!(stop.outcome(), None);
        assert!(stop.request(libc::SIGTERM));
        assert!(!stop.request(libc::SIGINT));
        assert_eq!(stop.signal(), Some(libc::SIGTERM));
        assert_eq!(
            stop.outcome(),
            Some(RunOutcome::Terminated {
                signal: "SIGTERM".into()
            })
        );
        let int = StopRequest::new();
        int.request(libc::SIGINT);
        assert_eq!(int.outcome(), Some(RunOutcome::Interrupted));
        let odd = StopRequest::new();
        odd.request(0);
        assert_eq!(odd.outcome(), Some(RunOutcome::Interrupted));
        assert_eq!(stop.reason(), "SIGTERM on the host");
        assert_eq!(int.reason(), "interrupted on the host");
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
        assert_eq!(signal_name(40), "signal 40");
    }

    #[test]
    fn a_signal_outranks_the_guests_interrupted_only() {
        let term = RunOutcome::Terminated {
            signal: "SIGTERM".into(),
        };
        assert!(host_outcome_wins(&term, None));
        assert!(host_outcome_wins(&term, Some(&RunOutcome::Interrupted)));
        assert!(!host_outcome_wins(&term, Some(&RunOutcome::Completed)));
        assert!(!host_outcome_wins(
            &RunOutcome::Interrupted,
            Some(&RunOutcome::GuestError {
                message: "g".into()
            })
        ));
    }
}
