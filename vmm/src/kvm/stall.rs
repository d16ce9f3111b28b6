//! The report on a VM that does not end (the run's watchdog fired): where each
//! vCPU is, what it last asked of the VMM, and, where /dev/kvm emulates guest
//! instructions (PVM), why Linux will not get far there.
use std::time::Duration;

use super::vstate::activity::Seen;

/// Where a vCPU was found: RIP and its `KVM_GET_MP_STATE`, or why not.
pub type Place = Result<(u64, u32), String>;

/// One line per vCPU, then the explanation when `emulated` says why /dev/kvm
/// is not hardware accelerated.
pub fn lines(seen: &[Seen], places: &[Place], emulated: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = seen
        .iter()
        .zip(places)
        .enumerate()
        .map(|(cpu, (seen, place))| {
            let at = match place {
                Ok((rip, mp)) => format!("RIP {rip:#x} ({})", mp_state_name(*mp)),
                Err(why) => format!("registers unread ({why})"),
            };
            let exits = match seen.last {
                None => "no exit to the VMM since it started".to_string(),
                Some((kind, ago)) => format!(
                    "{} exits to the VMM, last {kind} {} ago",
                    seen.exits,
                    secs(ago)
                ),
            };
            format!("vCPU {cpu}: {at}; {exits}")
        })
        .collect();
    if let Some(why) = emulated {
        out.push(format!(
            "this host's /dev/kvm emulates guest instructions ({why}); Linux cannot boot to \
             /init on it (the bzImage decompressor alone takes minutes, then the emulator \
             fails on the kernel's instructions): use --backend qemu"
        ));
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `KVM_MP_STATE_*` as words (x86 uses 0–4).
fn mp_state_name(mp: u32) -> &'static str {
    match mp {
        0 => "runnable",
        1 => "not started",
        2 => "waiting for SIPI",
        3 => "halted",
        4 => "starting from SIPI",
        _ => "unknown state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvm::vstate::activity::ExitKind;

    #[test]
    fn a_line_per_vcpu_then_the_emulation_hint() {
        let seen = [
            Seen {
                exits: 12,
                last: Some((ExitKind::IoOut(0x3f8), Duration::from_millis(61_500))),
            },
            Seen {
                exits: 0,
                last: None,
            },
            Seen {
                exits: 1,
                last: Some((ExitKind::Hlt, Duration::ZERO)),
            },
        ];
        let places = [
            Ok((0xffff_ffff_8100_0000, 0)),
            Ok((0, 2)),
            Err("did not stop".into()),
        ];
        let l = lines(&seen, &places, Some("no vmx/svm"));
        assert_eq!(
            l[0],
            "vCPU 0: RIP 0xffffffff81000000 (runnable); 12 exits to the VMM, last \
             I/O write to port 0x3f8 61.5s ago"
        );
        assert_eq!(
            l[1],
            "vCPU 1: RIP 0x0 (waiting for SIPI); no exit to the VMM since it started"
        );
        assert_eq!(
            l[2],
            "vCPU 2: registers unread (did not stop); 1 exits to the VMM, last HLT 0.0s ago"
        );
        assert!(l[3].contains("no vmx/svm") && l[3].contains("--backend qemu"));
        assert_eq!(lines(&seen, &places, None).len(), 3);
    }
}
