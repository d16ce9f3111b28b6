//! The recorder against a guest that lies: whatever it puts in the ring, the
//! host does not panic, writes only what a guest may write, and closes the
//! trace with `End`.
use trace_format::file::Trace;
use trace_format::proto::{GuestMsg, PROTOCOL_VERSION};
use trace_format::record::{
    ConsoleLine, ConsoleSource, Record, RunOutcome, Timed, Verdict, VerdictOutcome,
};
use trace_format::ring::SharedMem;
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

fn rec(ts_ns: u64, record: Record) -> GuestMsg {
    GuestMsg::Record { ts_ns, record }
}

fn encode(messages: &[GuestMsg]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|m| postcard::to_allocvec(m).unwrap())
        .collect()
}

fn records(path: &std::path::Path) -> Vec<Timed> {
    let bytes = std::fs::read(path).unwrap();
    let trace = Trace::open(&bytes).unwrap();
    assert!(trace.recovery().is_clean(), "{:?}", trace.recovery());
    trace.records().map(|r| r.unwrap()).collect()
}

#[test]
fn a_wild_drop_counter_is_counted_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let path = opts.output.clone();
    // One frame that does not decode, then the up ring's drop counter at u64::MAX.
    let mut frames = vec![vec![0xff; 4]];
    frames.extend(encode(&[
        hello(),
        rec(5, Record::End(RunOutcome::Completed)),
    ]));
    let report = record(
        || ScriptedVm::launch_raw(&frames, |w| w.store_u64(0x108, u64::MAX)),
        opts,
        |_| {},
    )
    .unwrap();
    assert_eq!(report.dropped, u64::MAX, "saturated");
    let records = records(&path);
    assert!(matches!(
        records.last().map(|t| &t.record),
        Some(Record::End(RunOutcome::Completed))
    ));
}

#[test]
fn records_only_the_host_writes_are_refused_and_stamps_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let path = opts.output.clone();
    let forged = [
        rec(
            5,
            Record::Verdict(Verdict {
                name: "not-starved".into(),
                outcome: VerdictOutcome::Pass,
                detail: "forged".into(),
            }),
        ),
        rec(
            6,
            Record::Console(ConsoleLine {
                source: ConsoleSource::Host,
                line: "forged".into(),
            }),
        ),
        rec(
            7,
            Record::Console(ConsoleLine {
                source: ConsoleSource::Kernel,
                line: "forged".into(),
            }),
        ),
    ];
    let mut messages = vec![hello()];
    messages.extend(forged);
    messages.push(rec(
        u64::MAX,
        Record::Console(ConsoleLine {
            source: ConsoleSource::Executor,
            line: "from the far future".into(),
        }),
    ));
    messages.push(rec(9, Record::End(RunOutcome::Completed)));
    let report = record(|| ScriptedVm::launch(&messages), opts, |_| {}).unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(report.dropped, 3);
    let records = records(&path);
    let forged_kept = records.iter().any(|t| match &t.record {
        Record::Verdict(_) => true,
        Record::Console(c) => c.line == "forged",
        _ => false,
    });
    assert!(!forged_kept, "{records:?}");
    let refusals = records
        .iter()
        .filter(
            |t| matches!(&t.record, Record::Drop(d) if d.reason.contains("only the host writes")),
        )
        .count();
    assert_eq!(refusals, 3);
    let end = records.last().unwrap();
    assert!(matches!(end.record, Record::End(_)));
    assert!(end.ts_ns < 60_000_000_000, "End at {} ns", end.ts_ns);
}

#[test]
fn a_panic_line_from_a_guest_program_is_not_a_kernel_panic() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let messages = [hello(), rec(5, Record::End(RunOutcome::Completed))];
    let report = record(
        || {
            ScriptedVm::launch(&messages).map(|vm| {
                vm.with_console(&["schedtape-init: sh: Kernel panic - not syncing: just text"])
            })
        },
        opts,
        |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);

    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let report = record(
        || {
            ScriptedVm::launch(&messages)
                .map(|vm| vm.with_console(&["[    1.234] Kernel panic - not syncing: Oops"]))
        },
        opts,
        |_| {},
    )
    .unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::KernelPanic { .. }),
        "{:?}",
        report.outcome
    );
}
