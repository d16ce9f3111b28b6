//! A run whose guest never ends (the test guest spins and sends nothing) is
//! ended by the watchdog, and the trace then says where every vCPU was and
//! what it last asked of the VMM; where /dev/kvm is emulated (PVM) it also
//! says that Linux cannot boot there and points at `--backend qemu`.
mod kvm_support;
mod scripted;

use std::time::Duration;

use kvm_support::*;
use trace_format::file::Trace;
use trace_format::record::{ConsoleSource, Record, RunOutcome};
use trace_format::scenario::Topology;
use vmm::run::record;

#[test]
fn the_watchdog_reports_each_vcpus_rip_and_last_exit() {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = scripted::options(&dir);
    opts.watchdog = Duration::from_secs(4);
    let path = opts.output.clone();
    let report = record(
        || {
            let vm = launch(Topology::new(1, 1, 2, 1));
            wait_all_up(&vm, s, 2);
            Ok(vm)
        },
        opts,
        |_| {},
    )
    .unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::Timeout { .. }),
        "{:?}",
        report.outcome
    );
    let bytes = std::fs::read(path).unwrap();
    let trace = Trace::open(&bytes).unwrap();
    let notes: Vec<String> = trace
        .records()
        .filter_map(|r| match r.unwrap().record {
            Record::Console(c) if c.source == ConsoleSource::Host => Some(c.line),
            _ => None,
        })
        .collect();
    let all = notes.join("\n");
    let watchdog = notes
        .iter()
        .position(|n| n.starts_with("watchdog:"))
        .unwrap_or_else(|| panic!("no watchdog note:\n{all}"));
    for cpu in 0..2 {
        let prefix = format!("vCPU {cpu}: RIP 0x");
        let line = notes[watchdog..]
            .iter()
            .find(|n| n.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no report for vCPU {cpu}:\n{all}"));
        let hex = line[prefix.len()..].split(' ').next().unwrap();
        let rip = u64::from_str_radix(hex, 16).unwrap();
        // Spinning in cpu_main: inside .text (0x200000), below the data.
        assert!(
            (0x20_0000..s.percpu_counters).contains(&rip),
            "vCPU {cpu} RIP {rip:#x} is not in the guest's code: {line}"
        );
        assert!(line.contains("(runnable)"), "{line}");
        assert!(line.contains("exits to the VMM"), "{line}");
    }
    let hint = notes.iter().any(|n| n.contains("--backend qemu"));
    assert_eq!(
        hint,
        vmm::kvm::kind::hardware_backed().is_err(),
        "the emulation hint appears exactly where /dev/kvm is emulated:\n{all}"
    );
}
