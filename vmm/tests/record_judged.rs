//! The recorder with a judge, against a scripted VM (no hypervisor): the
//! judge sees the finished run without `End`, and its verdicts land in the
//! trace just before `End`.
use trace_format::file::Trace;
use trace_format::meta::Acceleration;
use trace_format::proto::{GuestMsg, PROTOCOL_VERSION};
use trace_format::record::{
    Record, RecordKind, RunOutcome, StepOutcome, StepRef, Verdict, VerdictOutcome,
};
use vmm::run::{Judge, record_judged, record_with};

mod scripted;
use scripted::{ScriptedVm, options};

fn guest_run(outcome: RunOutcome) -> Vec<GuestMsg> {
    let rec = |ts_ns, record| GuestMsg::Record { ts_ns, record };
    vec![
        GuestMsg::Hello {
            protocol: PROTOCOL_VERSION,
            boot_to_init_ns: 1,
            kernel_release: "6.12-test".into(),
        },
        rec(10, Record::StepBegin { step: StepRef(0) }),
        rec(
            20,
            Record::StepEnd {
                step: StepRef(0),
                outcome: StepOutcome::Completed,
            },
        ),
        rec(30, Record::End(outcome)),
        GuestMsg::Goodbye,
    ]
}

fn kinds(bytes: &[u8]) -> Vec<RecordKind> {
    let t = Trace::open(bytes).unwrap();
    assert!(t.recovery().is_clean(), "{:?}", t.recovery());
    t.records().map(|r| r.unwrap().record.kind()).collect()
}

#[test]
fn verdicts_are_recorded_before_end() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let path = opts.output.clone();
    let mut seen = None;
    let judge: Judge<'_> = Box::new(|trace: &Trace<'_>, outcome: &RunOutcome| {
        let kinds: Vec<RecordKind> = trace.records().map(|r| r.unwrap().record.kind()).collect();
        seen = Some((trace.recovery().is_clean(), kinds, outcome.clone()));
        vec![Verdict {
            name: "not-starved".into(),
            outcome: VerdictOutcome::Pass,
            detail: "scripted".into(),
        }]
    });
    let report = record_judged(
        || ScriptedVm::launch(&guest_run(RunOutcome::Completed)),
        opts,
        None,
        Some(judge),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(report.judge_error, None);
    assert_eq!(report.verdicts.len(), 1);

    let (clean, judged, outcome) = seen.expect("the judge ran");
    assert!(clean, "the judge sees a cleanly closed trace");
    assert!(!judged.contains(&RecordKind::End), "{judged:?}");
    assert!(judged.contains(&RecordKind::StepEnd));
    assert_eq!(outcome, RunOutcome::Completed);

    let bytes = std::fs::read(&path).unwrap();
    let all = kinds(&bytes);
    assert_eq!(
        all[all.len() - 2..],
        [RecordKind::Verdict, RecordKind::End],
        "{all:?}"
    );
    let t = Trace::open(&bytes).unwrap();
    let counts = t.kind_counts();
    assert_eq!(counts[RecordKind::Verdict.index()], 1);
    assert_eq!(
        t.index().and_then(|i| i.outcome.clone()),
        Some(RunOutcome::Completed)
    );

    // Cut before the index: every chunk, verdicts included, is still recovered.
    let cut = &bytes[..bytes.len() - 40];
    let t = Trace::open(cut).unwrap();
    assert!(t.recovery().truncated);
    let recovered: Vec<RecordKind> = t.records().map(|r| r.unwrap().record.kind()).collect();
    assert!(recovered.contains(&RecordKind::Verdict), "{recovered:?}");
}

/// The backend's acceleration goes into the meta, where the run-time judge
/// (and later `replay judge`) reads it.
#[test]
fn the_meta_records_how_the_guest_ran() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let path = opts.output.clone();
    let mut seen = None;
    let judge: Judge<'_> = Box::new(|trace: &Trace<'_>, _: &RunOutcome| {
        seen = Some(trace.meta().acceleration);
        Vec::new()
    });
    let launch = || {
        ScriptedVm::launch(&guest_run(RunOutcome::Completed))
            .map(|vm| vm.with_acceleration(Acceleration::KvmNested))
    };
    record_judged(launch, opts, None, Some(judge), |_| {}).unwrap();
    assert_eq!(seen, Some(Some(Acceleration::KvmNested)));
    let bytes = std::fs::read(&path).unwrap();
    let meta = Trace::open(&bytes).unwrap().meta().clone();
    assert_eq!(meta.acceleration, Some(Acceleration::KvmNested));
}

#[test]
fn without_a_judge_or_verdicts_end_is_last() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let path = opts.output.clone();
    let report = record_with(
        || ScriptedVm::launch(&guest_run(RunOutcome::Completed)),
        opts,
        None,
        |_| {},
    )
    .unwrap();
    assert!(report.verdicts.is_empty());
    let all = kinds(&std::fs::read(&path).unwrap());
    assert!(!all.contains(&RecordKind::Verdict));
    assert_eq!(all.last(), Some(&RecordKind::End));

    // A judge that declines (an incomplete run) adds nothing.
    let opts = options(&dir);
    let outcome = RunOutcome::GuestError {
        message: "boom".into(),
    };
    let report = record_judged(
        || ScriptedVm::launch(&guest_run(outcome.clone())),
        opts,
        None,
        Some(Box::new(|_: &Trace<'_>, o: &RunOutcome| {
            assert_eq!(o.label(), "guest-error");
            Vec::new()
        })),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, outcome);
    let all = kinds(&std::fs::read(&path).unwrap());
    assert!(!all.contains(&RecordKind::Verdict));
    assert_eq!(all.last(), Some(&RecordKind::End));
}
