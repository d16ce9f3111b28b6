//! The ring doorbell on the KVM backend, with the tiny test guest: a guest
//! `out` to the doorbell port signals the ioeventfd in the kernel (no exit to
//! our VMM) and wakes [`Vm::wait_for_guest`] early; without the ioeventfd the
//! write exits, is ignored, and the host polls.
mod kvm_support;

use std::time::{Duration, Instant};

use kvm_support::*;
use trace_format::scenario::Topology;
use vm_memory::{Bytes, GuestAddress};
use vmm::backend::Vm;
use vmm::kvm::arch::layout::CMDLINE_ADDR;
use vmm::kvm::devices::DOORBELL_PORT;
use vmm::kvm::{KvmVm, VmExit};

/// Rings measured for the wake-up latency figures.
const ROUNDS: u32 = 50;

/// The kernel command line the VMM wrote into guest memory.
fn cmdline(vm: &KvmVm) -> String {
    let mut buf = [0u8; 512];
    vm.ram()
        .read_slice(&mut buf, GuestAddress(CMDLINE_ADDR))
        .expect("read the command line");
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Has the guest ring once (command 3) after its previous ring completed.
fn ring(vm: &KvmVm, s: Syms) {
    let ready = wait_until(Duration::from_secs(10), || pending_command(vm, s) == 0);
    assert!(ready, "the guest did not finish its previous ring");
    command(vm, s, 3);
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    format!(
        "p50 {:?}, p99 {:?}, max {:?} over {}",
        at(50),
        at(99),
        v[v.len() - 1],
        v.len()
    )
}

#[test]
fn a_guest_ring_wakes_the_host_without_a_userspace_exit() {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let mut vm = launch(Topology::new(1, 1, 1, 1));
    wait_all_up(&vm, s, 1);
    assert_eq!(
        vm.doorbell_port(),
        Some(DOORBELL_PORT),
        "ioeventfd registration failed: {:?}",
        vm.doorbell_error()
    );
    assert!(vm.wakes_on_guest_events());
    let line = cmdline(&vm);
    assert!(
        line.split(' ')
            .any(|a| a == format!("schedtape.doorbell={DOORBELL_PORT:#x}")),
        "the command line names no doorbell: {line:?}"
    );
    assert!(!vm.doorbell_pending(), "nobody rang yet");

    // The eventfd becomes readable once the guest rings.
    ring(&vm, s);
    assert!(
        wait_until(Duration::from_secs(10), || vm.doorbell_pending()),
        "the eventfd never became readable (guest rings: {}, exit {:?})",
        rings(&vm, s),
        vm.exit_status()
    );
    assert!(wait_until(Duration::from_secs(10), || rings(&vm, s) == 1));
    // A pending ring is reported (no further ring comes: `true` can only be
    // this one), and the wait drains it. How fast is the benchmark's business.
    assert!(vm.wait_for_guest(Duration::from_secs(10)));
    assert!(!vm.doorbell_pending(), "wait_for_guest drains the eventfd");
    // A quiet guest: the whole timeout passes and no ring is reported.
    let t = Instant::now();
    assert!(!vm.wait_for_guest(Duration::from_millis(100)));
    assert!(t.elapsed() >= Duration::from_millis(100));

    // Host command -> guest ring -> host awake by the ring, not the timeout
    // (`true`); the latencies are printed, not asserted (a busy host stretches them).
    let timeout = Duration::from_secs(5);
    let mut took = Vec::new();
    for i in 0..ROUNDS {
        ring(&vm, s);
        let t = Instant::now();
        let rang = vm.wait_for_guest(timeout);
        let dt = t.elapsed();
        assert!(rang, "round {i}: no ring within {timeout:?}");
        took.push(dt);
    }
    assert!(wait_until(Duration::from_secs(10), || rings(&vm, s) == ROUNDS + 1));
    eprintln!(
        "doorbell: host command to host wake-up (ioeventfd): {}",
        percentiles(took)
    );
    assert_eq!(
        vm.doorbell_exits(),
        0,
        "doorbell writes exited to userspace although the ioeventfd is registered"
    );

    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}

#[test]
fn without_the_ioeventfd_a_ring_exits_is_ignored_and_the_host_polls() {
    if !kvm_available() {
        return;
    }
    let s = syms();
    let mut vm = launch_polling(Topology::new(1, 1, 1, 1));
    wait_all_up(&vm, s, 1);
    assert_eq!(vm.doorbell_port(), None);
    assert!(vm.doorbell_error().is_some());
    let line = cmdline(&vm);
    assert!(
        !line.contains("schedtape.doorbell="),
        "a guest must not be told of a doorbell nobody listens to: {line:?}"
    );

    ring(&vm, s);
    assert!(wait_until(Duration::from_secs(10), || rings(&vm, s) == 1));
    assert!(wait_until(Duration::from_secs(10), || vm.doorbell_exits() == 1));
    assert_eq!(
        vm.exit_status(),
        None,
        "a doorbell exit must not end the VM"
    );
    assert!(!vm.doorbell_pending());
    assert!(!vm.wakes_on_guest_events(), "records arrive unannounced");
    // Console lines so far rang the host bell; with that drained, a quiet
    // guest lets the wait run its whole timeout.
    vm.wait_for_guest(Duration::ZERO);
    let t = Instant::now();
    assert!(!vm.wait_for_guest(Duration::from_millis(50)));
    assert!(t.elapsed() >= Duration::from_millis(50));

    // The recorder's fallback: poll, waiting 2 ms between polls.
    let mut took = Vec::new();
    for i in 0..ROUNDS {
        let before = rings(&vm, s);
        ring(&vm, s);
        let t = Instant::now();
        while rings(&vm, s) == before {
            assert!(t.elapsed() < Duration::from_secs(5), "round {i}: no ring");
            vm.wait_for_guest(Duration::from_millis(2));
        }
        took.push(t.elapsed());
    }
    eprintln!(
        "doorbell: host command to host noticing (2 ms polling): {}",
        percentiles(took)
    );
    assert_eq!(vm.doorbell_exits(), u64::from(ROUNDS) + 1);

    command(&vm, s, 2);
    assert_eq!(vm.wait_exit(Duration::from_secs(20)), Some(VmExit::Reset));
}
