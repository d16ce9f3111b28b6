//! What this machine offers the tests, probed once per `cargo xtask test`:
//! /dev/kvm and its kind (hardware or emulated), guest debugging, the cached
//! kernel, QEMU and pahole. Every prerequisite found is required of the tests.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use vmm::test_skip::Need;

use crate::kernel::{self, ResolveOpts};
use crate::stage::find_program;

/// Per need: present, or the reason it is absent.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    found: BTreeMap<Need, Result<(), String>>,
    /// The kernel directory the run uses, when one is cached.
    pub kernel_dir: Option<PathBuf>,
}

impl Machine {
    /// Probes everything (a fraction of a second: two tiny KVM guests).
    pub fn probe() -> Machine {
        let mut m = Machine::default();
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
            .map_err(|e| format!("/dev/kvm cannot be opened: {e}"));
        // Emulated KVM (PVM) may show guests the host's CPUID, ignores data
        // breakpoints and boots Linux ~1000x slower (DESIGN.md): each is probed.
        let hardware = match &kvm {
            Ok(()) => vmm::kvm::kind::hardware_backed().map(drop),
            Err(e) => Err(e.clone()),
        };
        let cpuid = match &kvm {
            Ok(()) => vmm::kvm::probe::cpuid_honoured(),
            Err(e) => Err(e.clone()),
        };
        let debug = match &kvm {
            Ok(()) => vmm::kvm::probe::data_watchpoints(),
            Err(e) => Err(e.clone()),
        };
        m.found.insert(Need::Kvm, kvm);
        m.found.insert(Need::Cpuid, cpuid);
        m.found.insert(Need::KvmLinuxBoot, hardware);
        m.found.insert(Need::GuestDebug, debug);
        let image = kernel::resolve(&ResolveOpts::default());
        m.kernel_dir = image.as_ref().ok().and_then(|i| i.cache_dir.clone());
        let kernel = match (&image, &m.kernel_dir) {
            (Ok(_), Some(_)) => Ok(()),
            (Ok(_), None) => Err("the kernel is not from the cache".to_string()),
            (Err(e), _) => Err(format!("{e:#}")),
        };
        m.found.insert(Need::Kernel, kernel);
        m.found.insert(Need::Qemu, on_path("qemu-system-x86_64"));
        m.found.insert(Need::Pahole, on_path("pahole"));
        m.found
            .insert(Need::NestedL1, crate::nested::l1_available());
        m
    }

    /// Present, or why not.
    pub fn has(&self, need: Need) -> Result<(), String> {
        self.found
            .get(&need)
            .cloned()
            .unwrap_or_else(|| Err("not probed".into()))
    }

    /// One line per need, for the start of the run (`required`: what the
    /// tests must have, the probe's finds and `--require`).
    pub fn describe(&self, required: &BTreeSet<Need>) -> String {
        Need::ALL
            .iter()
            .map(|&n| match (self.has(n), required.contains(&n)) {
                (Ok(()), _) => format!("  {n:<15} present: required"),
                (Err(why), true) => format!("  {n:<15} REQUIRED, yet absent: {why}"),
                (Err(why), false) => format!("  {n:<15} absent: {why}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn on_path(program: &str) -> Result<(), String> {
    find_program(program).map(drop).map_err(|e| e.to_string())
}
