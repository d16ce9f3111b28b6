//! A run stopped from the host (a signal) closes its trace with an `End` that
//! names the signal: SIGINT is `Interrupted`, SIGTERM and SIGHUP `Terminated`.
use std::time::Duration;

use trace_format::file::Trace;
use trace_format::proto::{GuestMsg, PROTOCOL_VERSION};
use trace_format::record::{Record, RunOutcome};
use vmm::run::record;

mod scripted;
use scripted::{ScriptedVm, options};

fn hello() -> GuestMsg {
    GuestMsg::Hello {
        protocol: PROTOCOL_VERSION,
        boot_to_init_ns: 1,
        kernel_release: "6.12-test".into(),
    }
}

/// Records a still-running guest that sent `messages`, with a stop already
/// requested by `signal`; returns the report's outcome and the trace's Ends.
fn stopped_by(signal: i32, messages: &[GuestMsg]) -> (RunOutcome, Vec<RunOutcome>) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir);
    opts.stop_grace = Duration::ZERO;
    assert!(opts.stop.request(signal));
    let path = opts.output.clone();
    let report = record(
        || Ok(ScriptedVm::launch(messages)?.still_running()),
        opts,
        |_| {},
    )
    .unwrap();
    let bytes = std::fs::read(path).unwrap();
    let trace = Trace::open(&bytes).unwrap();
    assert!(trace.recovery().is_clean(), "{:?}", trace.recovery());
    let ends = trace
        .records()
        .filter_map(|r| match r.unwrap().record {
            Record::End(o) => Some(o),
            _ => None,
        })
        .collect();
    (report.outcome, ends)
}

fn terminated(signal: &str) -> RunOutcome {
    RunOutcome::Terminated {
        signal: signal.into(),
    }
}

#[test]
fn sigterm_ends_a_silent_guest_as_terminated() {
    let (outcome, ends) = stopped_by(libc::SIGTERM, &[hello()]);
    assert_eq!(outcome, terminated("SIGTERM"));
    assert_eq!(ends, vec![terminated("SIGTERM")]);
}

#[test]
fn the_guests_interrupted_end_gives_way_to_the_signal() {
    // The guest obeyed the stop and wrote its own End(Interrupted).
    let guest_end = GuestMsg::Record {
        ts_ns: 30,
        record: Record::End(RunOutcome::Interrupted),
    };
    let (outcome, ends) = stopped_by(libc::SIGHUP, &[hello(), guest_end, GuestMsg::Goodbye]);
    assert_eq!(outcome, terminated("SIGHUP"));
    assert_eq!(ends, vec![terminated("SIGHUP")]);
}

#[test]
fn sigint_stays_interrupted() {
    let (outcome, ends) = stopped_by(libc::SIGINT, &[hello()]);
    assert_eq!(outcome, RunOutcome::Interrupted);
    assert_eq!(ends, vec![RunOutcome::Interrupted]);
}
