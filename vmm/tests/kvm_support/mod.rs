//! Shared helpers for the KVM backend tests: building the test guest, finding
//! its symbols, and launching it.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use trace_format::scenario::Topology;
use vm_memory::{Bytes, GuestAddress};
use vmm::backend::{ConsoleEvent, Vm};
use vmm::kvm::{KvmConfig, KvmVm};
use vmm::test_skip::Need;

/// True when /dev/kvm can be used; otherwise skips, or fails where the run
/// requires KVM (`SCHEDTAPE_REQUIRE_KVM=1`, see [`vmm::test_skip`]).
pub fn kvm_available() -> bool {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    match opened {
        Ok(_) => true,
        Err(e) => {
            vmm::test_skip::skip(Need::Kvm, &format!("/dev/kvm cannot be opened: {e}"));
            false
        }
    }
}

/// Builds fixtures/testguest once per test binary (with or without its PVH
/// note); returns the ELF path.
pub fn test_guest_variant(pvh: bool) -> &'static Path {
    static ELF: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    ELF[usize::from(pvh)].get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/testguest");
        let tag = if pvh { "pvh" } else { "64" };
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("testguest-{tag}-{}.elf", std::process::id()));
        let status = Command::new("sh")
            .arg(root.join("build.sh"))
            .arg(&out)
            .env("PVH", if pvh { "1" } else { "0" })
            .status()
            .expect("run build.sh");
        assert!(
            status.success(),
            "building the test guest failed (needs cc and ld)"
        );
        out
    })
}

/// The test guest as shipped (PVH note: both VMMs enter at `pvh_start`).
pub fn test_guest() -> &'static Path {
    test_guest_variant(true)
}

/// Addresses of the test guest's shared symbols, read from its ELF symtab.
#[derive(Debug, Clone, Copy)]
pub struct Syms {
    pub percpu_counters: u64,
    pub guest_ctl: u64,
    /// The page-table root the PVH entry builds for itself.
    pub pvh_pml4: u64,
}

/// Size of one `struct percpu` in the guest.
pub const PERCPU_STRIDE: u64 = 64;

pub fn syms() -> Syms {
    syms_of(true)
}

pub fn syms_of(pvh: bool) -> Syms {
    Syms {
        percpu_counters: symbol(pvh, "percpu_counters"),
        guest_ctl: symbol(pvh, "guest_ctl"),
        pvh_pml4: symbol(pvh, "pvh_pml4"),
    }
}

/// Address of the test guest's symbol `name` (with or without the PVH note).
pub fn symbol(pvh: bool, name: &str) -> u64 {
    let bytes = std::fs::read(test_guest_variant(pvh)).expect("read test guest");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse test guest");
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .map(|s| s.st_value)
        .unwrap_or_else(|| panic!("symbol {name} missing from the test guest"))
}

/// Launches the test guest with `topology` (all its CPUs brought up).
pub fn launch(topology: Topology) -> KvmVm {
    launch_variant(topology, true)
}

/// [`launch`] with the PVH entry (`pvh`) or the 64-bit boot-protocol entry.
pub fn launch_variant(topology: Topology, pvh: bool) -> KvmVm {
    KvmVm::launch(&config(topology, pvh), |_| {}).expect("launch the test guest")
}

/// [`launch`] without the doorbell's ioeventfd (the polling fallback).
pub fn launch_polling(topology: Topology) -> KvmVm {
    KvmVm::launch_polling(&config(topology, true), |_| {}).expect("launch the test guest")
}

fn config(topology: Topology, pvh: bool) -> KvmConfig {
    KvmConfig {
        kernel: test_guest_variant(pvh).to_path_buf(),
        initrd: None,
        cmdline: format!("ncpus={}", topology.cpus()),
        topology,
        memory_mib: 64,
        stop_at_boot_mark: false,
    }
}

pub fn counter(vm: &KvmVm, s: Syms, cpu: u32) -> u64 {
    vm.ram()
        .read_obj(GuestAddress(
            s.percpu_counters + u64::from(cpu) * PERCPU_STRIDE,
        ))
        .expect("read counter")
}

pub fn counters(vm: &KvmVm, s: Syms, cpus: u32) -> Vec<u64> {
    (0..cpus).map(|c| counter(vm, s, c)).collect()
}

pub fn cpus_up(vm: &KvmVm, s: Syms) -> u32 {
    vm.ram()
        .read_obj(GuestAddress(s.guest_ctl + 4))
        .expect("read cpus_up")
}

/// Sets `guest_ctl.command` (1: halt, 2: reset, 3: ring the doorbell once,
/// 4: transmit a COM1 line driven by THRE interrupts).
pub fn command(vm: &KvmVm, s: Syms, cmd: u32) {
    vm.ram()
        .write_obj(cmd, GuestAddress(s.guest_ctl))
        .expect("write command");
}

/// `guest_ctl.command` as the guest left it (a ring resets 3 to 0).
pub fn pending_command(vm: &KvmVm, s: Syms) -> u32 {
    vm.ram()
        .read_obj(GuestAddress(s.guest_ctl))
        .expect("read command")
}

/// `guest_ctl.rings`: how often the guest rang the doorbell.
pub fn rings(vm: &KvmVm, s: Syms) -> u32 {
    vm.ram()
        .read_obj(GuestAddress(s.guest_ctl + 12))
        .expect("read rings")
}

/// Polls `f` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for every CPU of the guest to report in.
pub fn wait_all_up(vm: &KvmVm, s: Syms, cpus: u32) {
    let ok = wait_until(Duration::from_secs(30), || cpus_up(vm, s) == cpus);
    assert!(
        ok,
        "only {} of {cpus} vCPUs came up; exit: {:?}",
        cpus_up(vm, s),
        vm.exit_status()
    );
}

/// Console lines received so far.
pub fn console(vm: &mut KvmVm) -> Vec<String> {
    let mut ev = Vec::new();
    vm.poll_console(&mut ev);
    ev.into_iter()
        .map(|e| match e {
            ConsoleEvent::Serial(l) | ConsoleEvent::Hypervisor(l) => l,
        })
        .collect()
}

/// One CPUID result as the guest saw it: (leaf, subleaf) -> [eax, ebx, ecx, edx].
pub type Seen = std::collections::BTreeMap<(u32, u32), [u32; 4]>;

/// What one vCPU reported: its index, LAPIC ID and CPUID results.
#[derive(Debug, Clone)]
pub struct Report {
    pub cpu: u32,
    pub lapic_id: u32,
    pub cpuid: Seen,
}

/// Decodes the report-port words of one vCPU.
pub fn parse_report(words: &[u32]) -> Option<Report> {
    let (&first, rest) = words.split_first()?;
    if first & 0xffff_0000 != 0xc0de_0000 {
        return None;
    }
    let (&lapic_id, mut rest) = rest.split_first()?;
    let mut cpuid = Seen::new();
    while let [leaf, sub, a, b, c, d, tail @ ..] = rest {
        cpuid.insert((*leaf, *sub), [*a, *b, *c, *d]);
        rest = tail;
    }
    (rest == [0xc0de_ffff]).then_some(Report {
        cpu: first & 0xffff,
        lapic_id,
        cpuid,
    })
}
