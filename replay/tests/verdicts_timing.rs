//! Timing verdicts where the run's clock cannot be trusted: under nested or
//! emulated KVM (as the meta records) their failures are inconclusive with the reason;
//! snapshots taken after the run's last step (the guest tearing down and
//! rebooting) are not judged. Synthetic traces by the real writer.
mod support;

use support::{Synth, bytes, records, replay, s, stdout, trace};
use trace_format::file::{ChunkLimits, Trace, TraceWriter};
use trace_format::meta::Acceleration;
use trace_format::record::{Record, Verdict, VerdictOutcome};

use replay::verdict::judge;
use replay::verdict::timing::TIMING_VERDICTS;

fn verdicts_of(bytes: &[u8]) -> Vec<Verdict> {
    judge(&Trace::open(bytes).expect("synthetic trace opens"))
}

fn find<'a>(v: &'a [Verdict], name: &str) -> &'a Verdict {
    v.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

/// CPU 1's run queue stops while it has tasks queued, in step 1.
fn stalled(acceleration: Option<Acceleration>) -> Vec<Verdict> {
    verdicts_of(&bytes(&Synth {
        snapshots: true,
        stall: true,
        acceleration,
        ..Synth::default()
    }))
}

#[test]
fn timing_is_judged_under_tcg_and_hardware_kvm() {
    for a in [
        None,
        Some(Acceleration::Tcg),
        Some(Acceleration::KvmHardware),
    ] {
        let v = stalled(a);
        let stall = find(&v, "runqueue-stall");
        assert_eq!(stall.outcome, VerdictOutcome::Fail, "{a:?}: {stall:?}");
        assert!(!stall.detail.contains("not judged"), "{a:?}: {stall:?}");
    }
}

#[test]
fn timing_verdicts_are_inconclusive_under_nested_and_emulated_kvm() {
    let judged = stalled(None);
    for (a, words) in [
        (Acceleration::KvmNested, "nested KVM"),
        (Acceleration::KvmEmulated, "emulated KVM"),
    ] {
        let v = stalled(Some(a));
        let mut failed = 0;
        for name in TIMING_VERDICTS {
            let (got, was) = (find(&v, name), find(&judged, name));
            if was.outcome != VerdictOutcome::Fail {
                // A limit met under added delay is met: a pass stands.
                assert_eq!(got, was, "{a:?}");
                continue;
            }
            failed += 1;
            let want = format!("timing not judged: guest ran under {words}; measured: ");
            assert_eq!(got.outcome, VerdictOutcome::Inconclusive, "{got:?}");
            // The reason, then what was measured, so the numbers stay visible.
            assert_eq!(got.detail, format!("{want}{}", was.detail), "{a:?}");
        }
        assert!(
            failed > 0,
            "the stalled run fails a timing verdict when judged"
        );
        // Verdicts that hold no absolute time are judged as before.
        for other in v
            .iter()
            .filter(|x| !TIMING_VERDICTS.contains(&x.name.as_str()))
        {
            assert_eq!(other, find(&judged, &other.name), "{a:?}");
        }
    }
}

/// The guest's last step ended, then its CPUs stop one by one as it reboots:
/// the snapshots taken then show frozen run queues that are no stall.
#[test]
fn snapshots_after_the_last_step_are_not_judged() {
    let synth = Synth {
        snapshots: true,
        reboot_snapshots: true,
        ..Synth::default()
    };
    let v = verdicts_of(&bytes(&synth));
    let stall = find(&v, "runqueue-stall");
    assert_eq!(stall.outcome, VerdictOutcome::Pass, "{stall:?}");
    assert!(
        stall
            .detail
            .ends_with("; 2 snapshot(s) after the last step (teardown, shutdown) not judged"),
        "{stall:?}"
    );

    // While a step is still open (a hung guest, no StepEnd), they are judged.
    let mut recs = records(&synth);
    let last_end = recs
        .iter()
        .rposition(|(_, r)| matches!(r, Record::StepEnd { .. }))
        .expect("a StepEnd");
    recs.remove(last_end);
    let meta = support::meta(None);
    let mut w = TraceWriter::with_limits(Vec::new(), &meta, ChunkLimits::default()).unwrap();
    for (ts, r) in &recs {
        w.append(*ts, r).unwrap();
    }
    let v = verdicts_of(&w.finish().unwrap());
    let stall = find(&v, "runqueue-stall");
    assert_eq!(stall.outcome, VerdictOutcome::Fail, "{stall:?}");
    assert!(stall.detail.contains("CPU 1"), "{stall:?}");
}

#[test]
fn show_prints_how_the_guest_ran() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = trace(dir.path(), "old.trace", Synth::default());
    let text = stdout(&replay(&["show", s(&unknown)]));
    assert!(text.contains("\naccel      unknown\n"), "{text}");
    let nested = trace(
        dir.path(),
        "nested.trace",
        Synth {
            acceleration: Some(Acceleration::KvmNested),
            ..Synth::default()
        },
    );
    let text = stdout(&replay(&["show", s(&nested)]));
    assert!(
        text.contains("\naccel      nested KVM (hardware-backed KVM inside a guest)\n"),
        "{text}"
    );
}
