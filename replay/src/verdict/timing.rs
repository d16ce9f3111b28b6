//! Verdicts held to absolute times are not judged where the run's clock
//! cannot be trusted: under nested KVM a vCPU simply does not run while the
//! outer hypervisor runs something else, and PVM emulates every instruction.
//! QEMU TCG is judged (the default thresholds hold there).
use trace_format::meta::Acceleration;
use trace_format::record::{Verdict, VerdictOutcome};

/// The verdicts whose thresholds are absolute times.
pub const TIMING_VERDICTS: [&str; 3] = ["max-sched-gap", "wake-latency-p99", "runqueue-stall"];

/// Why timing is not judged on a run that ran under `acceleration`, or
/// `None` when it is (hardware KVM, TCG, unknown).
pub fn not_judged(acceleration: Option<Acceleration>) -> Option<String> {
    let a = acceleration.filter(|a| a.timing_untrusted())?;
    Some(format!("timing not judged: guest ran under {a}"))
}

/// Makes every failed timing verdict inconclusive, keeping what it measured,
/// when the run's acceleration makes its times untrustworthy. A pass stands:
/// nesting and emulation only add delay, so a limit met there is met.
pub fn apply(verdicts: &mut [Verdict], acceleration: Option<Acceleration>) {
    let Some(reason) = not_judged(acceleration) else {
        return;
    };
    for v in verdicts
        .iter_mut()
        .filter(|v| TIMING_VERDICTS.contains(&v.name.as_str()))
        .filter(|v| v.outcome == VerdictOutcome::Fail)
    {
        v.outcome = VerdictOutcome::Inconclusive;
        v.detail = format!("{reason}; measured: {}", v.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nested_and_emulated_kvm_leave_timing_unjudged() {
        assert_eq!(not_judged(None), None);
        assert_eq!(not_judged(Some(Acceleration::Tcg)), None);
        assert_eq!(not_judged(Some(Acceleration::KvmHardware)), None);
        assert_eq!(
            not_judged(Some(Acceleration::KvmNested)).as_deref(),
            Some("timing not judged: guest ran under nested KVM")
        );
        assert_eq!(
            not_judged(Some(Acceleration::KvmEmulated)).as_deref(),
            Some("timing not judged: guest ran under emulated KVM")
        );
    }

    #[test]
    fn every_timing_verdict_is_a_verdict_name() {
        for name in TIMING_VERDICTS {
            assert!(super::super::NAMES.contains(&name), "{name}");
        }
    }
}
