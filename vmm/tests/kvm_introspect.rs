//! The introspection interface of the KVM backend with the test guest:
//! guest memory by symbol, CR3 of every vCPU, and hardware write watchpoints.
mod kvm_support;

use std::time::{Duration, Instant};

use kvm_support::*;
use trace_format::scenario::Topology;
use vmm::backend::{Vm, WatchHit};
use vmm::kvm::VmExit;
use vmm::kvm::arch::layout::PML4_ADDR;

#[test]
fn counters_read_through_guest_memory_and_cr3_is_the_boot_root() {
    if !kvm_available() {
        return;
    }
    for pvh in [false, true] {
        let s = syms_of(pvh);
        let topology = Topology::new(1, 1, 2, 1);
        let mut vm = launch_variant(topology, pvh);
        wait_all_up(&vm, s, 2);
        let mem = vm.guest_memory().expect("KVM shares guest memory");
        // The test guest is identity mapped: its link address is its gpa.
        let read = |cpu: u64| {
            mem.read_u64(s.percpu_counters + cpu * PERCPU_STRIDE)
                .expect("counter inside guest RAM")
        };
        vm.freeze().expect("freeze");
        let frozen = [read(0), read(1)];
        assert_eq!(
            frozen.to_vec(),
            counters(&vm, s, 2),
            "guest_memory() and vm-memory disagree"
        );
        assert!(frozen.iter().all(|&c| c > 0), "counters {frozen:?}");
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!([read(0), read(1)], frozen, "counters moved while frozen");
        // Inside a freeze the request goes straight to the parked vCPUs.
        let root = if pvh { s.pvh_pml4 } else { PML4_ADDR };
        for cpu in 0..2 {
            assert_eq!(vm.cr3(cpu).expect("cr3"), root, "vCPU {cpu} (pvh {pvh})");
        }
        assert!(vm.cr3(2).is_err(), "no third vCPU");
        vm.thaw().expect("thaw");
        // Outside a freeze cr3() freezes by itself and leaves the VM running.
        assert_eq!(vm.cr3(1).expect("cr3 while running"), root);
        let after = read(0);
        assert!(
            wait_until(Duration::from_secs(10), || read(0) > after),
            "the guest did not run on after cr3()"
        );
        // Out-of-RAM reads fail instead of touching host memory.
        assert!(mem.read_u64(64 << 20).is_err());
        command(&vm, s, 2);
        assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
    }
}

#[test]
fn watch_rejects_bad_addresses_and_a_fourth_watch() {
    if !kvm_available() {
        return;
    }
    // Without the hit probe, so that loading DR0-DR2 on every (parked) vCPU
    // is exercised even where hits never arrive.
    let s = syms();
    let mut vm = launch(Topology::new(1, 1, 2, 1));
    wait_all_up(&vm, s, 2);
    let misaligned = vm.watch_unprobed(s.percpu_counters + 2).unwrap_err();
    assert!(misaligned.0.contains("aligned"), "{misaligned}");
    let ids: Vec<_> = (0..3)
        .map(|i| vm.watch_unprobed(s.guest_ctl + 16 + 4 * i).expect("watch"))
        .collect();
    let fourth = vm.watch_unprobed(s.guest_ctl + 28).unwrap_err();
    assert!(fourth.0.contains("at most 3"), "{fourth}");
    vm.unwatch(ids[1]).expect("unwatch");
    assert!(vm.unwatch(ids[1]).is_err(), "already removed");
    let again = vm
        .watch_unprobed(s.guest_ctl + 28)
        .expect("a freed slot is reused");
    assert!(!ids.contains(&again), "ids are not reused");
    // The guest still runs with debug registers loaded, and resets cleanly.
    let before = counters(&vm, s, 2);
    assert!(wait_until(Duration::from_secs(10), || {
        counters(&vm, s, 2).iter().zip(&before).all(|(a, b)| a > b)
    }));
    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}

#[test]
fn write_watchpoint_reports_hits_with_the_writing_vcpu() {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let mut vm = launch(Topology::new(1, 1, 2, 1));
    wait_all_up(&vm, s, 2);
    // Low half of percpu_counters[0].count: only CPU 0 writes it.
    let id = match (
        vm.watch(s.percpu_counters),
        vmm::kvm::probe::data_watchpoints(),
    ) {
        (Ok(id), _) => id,
        (Err(e), Err(why)) => {
            // The backend must refuse, naming the reason, rather than accept a dead watch.
            assert!(
                e.0.contains(&why),
                "refusal {e:?} does not carry the probe's reason"
            );
            unsupported(&e.0);
            vm.kill();
            return;
        }
        (Err(e), Ok(())) => panic!("watch refused although the probe saw hits: {e}"),
    };
    let mut hits: Vec<WatchHit> = Vec::new();
    let start = Instant::now();
    while hits.len() < 20 && start.elapsed() < Duration::from_secs(5) {
        vm.poll_watch_hits(&mut hits);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        !hits.is_empty(),
        "the watchpoint was accepted but no hit arrived in 5 s (counter now {}, exit {:?})",
        counter(&vm, s, 0),
        vm.exit_status()
    );
    assert!(
        hits.iter().all(|h| h.id == id && h.cpu == 0),
        "hits from the wrong watch or vCPU: {:?}",
        &hits[..hits.len().min(8)]
    );
    eprintln!(
        "{} watchpoint hits in {:?}, first at RIP {:#x}",
        hits.len(),
        start.elapsed(),
        hits[0].rip
    );
    // After unwatch the guest runs on without hits.
    vm.unwatch(id).expect("unwatch");
    hits.clear();
    vm.poll_watch_hits(&mut hits);
    let before = counter(&vm, s, 0);
    std::thread::sleep(Duration::from_millis(50));
    hits.clear();
    vm.poll_watch_hits(&mut hits);
    assert!(hits.is_empty(), "hits after unwatch: {}", hits.len());
    assert!(counter(&vm, s, 0) > before, "guest stopped after unwatch");
    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}

/// This /dev/kvm lacks guest debugging: a reported skip, or a failure where
/// the run requires it (`SCHEDTAPE_REQUIRE_GUEST_DEBUG=1`, hardware KVM).
fn unsupported(why: &str) {
    vmm::test_skip::skip(
        vmm::test_skip::Need::GuestDebug,
        &format!("hardware watchpoints do not work on this /dev/kvm: {why}"),
    );
}
