//! Freeze rendezvous on the KVM backend: while frozen no per-CPU counter of the
//! test guest moves (two reads 10 ms apart); after thaw every one moves again.
mod kvm_support;

use std::time::{Duration, Instant};

use kvm_support::*;
use trace_format::scenario::Topology;
use vmm::backend::Vm;
use vmm::kvm::VmExit;

/// The `pct`th percentile (0..=100) of a sorted, non-empty list.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() - 1) * pct / 100]
}

/// Runs `cycles` freeze/check/thaw cycles; prints rendezvous latency p50/p99.
fn freeze_cycles(topology: Topology, cycles: usize) {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let cpus = topology.cpus();
    let mut vm = launch(topology);
    wait_all_up(&vm, s, cpus);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(cycles);
    let mut frozen_total = Duration::ZERO;
    for cycle in 0..cycles {
        latencies.push(
            vm.freeze()
                .unwrap_or_else(|e| panic!("cycle {cycle}: freeze failed: {e}")),
        );
        let before = counters(&vm, s, cpus);
        std::thread::sleep(Duration::from_millis(10));
        let after = counters(&vm, s, cpus);
        assert_eq!(before, after, "cycle {cycle}: counters moved while frozen");
        frozen_total += vm
            .thaw()
            .unwrap_or_else(|e| panic!("cycle {cycle}: thaw failed: {e}"));
        let resumed = wait_until(Duration::from_secs(10), || {
            counters(&vm, s, cpus)
                .iter()
                .zip(&after)
                .all(|(now, then)| now > then)
        });
        let now = counters(&vm, s, cpus);
        assert!(
            resumed,
            "cycle {cycle}: not every vCPU resumed: {after:?} -> {now:?}"
        );
    }
    let total = started.elapsed();
    latencies.sort_unstable();
    eprintln!(
        "{cpus} vCPUs: {cycles} freeze cycles in {total:.2?}; rendezvous p50 {:?} p99 {:?} max {:?}; frozen {frozen_total:.2?} in all",
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies[latencies.len() - 1],
    );
    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}

#[test]
fn freeze_one_vcpu() {
    freeze_cycles(Topology::new(1, 1, 1, 1), 100);
}

#[test]
fn freeze_two_vcpus() {
    freeze_cycles(Topology::new(1, 1, 2, 1), 100);
}

#[test]
fn freeze_eight_vcpus() {
    freeze_cycles(Topology::new(1, 2, 2, 2), 100);
}

/// The acceptance run: 1,000 cycles on 8 vCPUs (~50 s on this PVM host; run with `--ignored`).
#[test]
#[ignore = "slow: 1,000 freeze cycles; run with --ignored"]
fn freeze_eight_vcpus_1000_cycles() {
    freeze_cycles(Topology::new(1, 2, 2, 2), 1000);
}

/// A halted guest (every vCPU in HLT inside KVM) still freezes and thaws.
#[test]
fn freeze_halted_guest() {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let mut vm = launch(Topology::new(1, 1, 2, 1));
    wait_all_up(&vm, s, 2);
    command(&vm, s, 1);
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..10 {
        vm.freeze().expect("freeze halted guest");
        vm.thaw().expect("thaw halted guest");
    }
    assert!(vm.exit_status().is_none());
    vm.kill();
    assert_eq!(vm.exit_status(), Some(VmExit::Killed));
    assert!(vm.has_exited());
}
