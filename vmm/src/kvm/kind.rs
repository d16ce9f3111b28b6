//! What backs /dev/kvm — the CPU's virtualisation extensions, the same inside
//! a guest (nested), or instruction emulation (PVM) — told from the loaded
//! KVM vendor module and the CPU flags, without timing anything.
//!
//! The evidence is parsed by pure functions ([`classify`]); [`kind`] reads
//! it from `/dev/kvm`, `/sys/module` and `/proc/cpuinfo` once per process.
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use trace_format::meta::Acceleration;

/// The KVM vendor modules that can back /dev/kvm.
pub const VENDOR_MODULES: [&str; 3] = ["kvm_intel", "kvm_amd", "kvm_pvm"];

/// What executes a KVM guest's instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmKind {
    /// The host CPU's VMX/SVM on bare metal.
    Hardware,
    /// VMX/SVM offered to this host by an outer hypervisor (we are a guest).
    Nested,
    /// KVM that emulates guest instructions (PVM): ~1000× slower.
    Emulated,
}

impl KvmKind {
    /// True when guest code runs on the CPU (hardware or nested): Linux
    /// boots in reasonable time, so `--backend auto` picks our VMM.
    pub fn hardware_backed(self) -> bool {
        matches!(self, KvmKind::Hardware | KvmKind::Nested)
    }

    /// As recorded in the trace's meta.
    pub fn acceleration(self) -> Acceleration {
        match self {
            KvmKind::Hardware => Acceleration::KvmHardware,
            KvmKind::Nested => Acceleration::KvmNested,
            KvmKind::Emulated => Acceleration::KvmEmulated,
        }
    }
}

impl fmt::Display for KvmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvmKind::Hardware => "hardware KVM",
            KvmKind::Nested => "nested KVM",
            KvmKind::Emulated => "emulated KVM",
        })
    }
}

/// The kind of /dev/kvm and the evidence for it, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    pub kind: KvmKind,
    /// One line, e.g. "kvm_amd is loaded and the CPU has svm and hypervisor".
    pub evidence: String,
}

impl fmt::Display for KvmProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.evidence)
    }
}

/// The host's evidence about /dev/kvm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// /dev/kvm exists.
    pub dev_kvm: bool,
    /// Which of [`VENDOR_MODULES`] are loaded (`/sys/module/<name>` exists).
    pub modules: BTreeSet<String>,
    /// The CPU flags of the first `flags` line of `/proc/cpuinfo`.
    pub flags: BTreeSet<String>,
}

impl Evidence {
    /// From the text of `/proc/cpuinfo` and the loaded vendor modules.
    pub fn new(dev_kvm: bool, modules: &[&str], cpuinfo: &str) -> Evidence {
        Evidence {
            dev_kvm,
            modules: modules.iter().map(|m| m.to_string()).collect(),
            flags: cpu_flags(cpuinfo),
        }
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    fn has_module(&self, module: &str) -> bool {
        self.modules.contains(module)
    }
}

/// The flags of the first CPU in `/proc/cpuinfo` (x86: the `flags` line).
pub fn cpu_flags(cpuinfo: &str) -> BTreeSet<String> {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "flags").then_some(value)
        })
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Tells what backs /dev/kvm from `ev`; `Err` (one line) when there is no
/// /dev/kvm at all. PVM wins over a hardware module (it emulates whatever
/// else is loaded), and a hardware module counts only with its CPU flag.
pub fn classify(ev: &Evidence) -> Result<KvmProbe, String> {
    let ext = ["vmx", "svm"].into_iter().find(|f| ev.has_flag(f));
    if !ev.dev_kvm {
        return Err(match ext {
            Some(f) => format!("no /dev/kvm (the CPU has {f}: is the kvm module loaded?)"),
            None => "no /dev/kvm and no vmx/svm CPU flag".into(),
        });
    }
    let ext_words = ext.map_or("has no vmx/svm".to_string(), |f| format!("has {f}"));
    if ev.has_module("kvm_pvm") {
        return Ok(KvmProbe {
            kind: KvmKind::Emulated,
            evidence: format!(
                "kvm_pvm backs /dev/kvm and the CPU {ext_words}: PVM emulates guest \
                 instructions (~1000x slower)"
            ),
        });
    }
    let vendor = [("kvm_intel", "vmx"), ("kvm_amd", "svm")]
        .into_iter()
        .find(|(m, _)| ev.has_module(m));
    let (source, flag) = match (vendor, ext) {
        (Some((module, flag)), _) if ev.has_flag(flag) => (format!("{module} is loaded"), flag),
        (Some((module, flag)), _) => {
            return Ok(KvmProbe {
                kind: KvmKind::Emulated,
                evidence: format!(
                    "{module} is loaded but the CPU has no {flag} flag: hardware backing \
                     cannot be confirmed"
                ),
            });
        }
        (None, Some(flag)) => ("no KVM vendor module is listed in /sys/module".into(), flag),
        (None, None) => {
            return Ok(KvmProbe {
                kind: KvmKind::Emulated,
                evidence: "/dev/kvm is present but no kvm_intel/kvm_amd module is loaded and \
                           the CPU has no vmx/svm (emulated KVM such as PVM)"
                    .into(),
            });
        }
    };
    let (kind, guest) = if ev.has_flag("hypervisor") {
        (
            KvmKind::Nested,
            " and hypervisor (this host is itself a guest)",
        )
    } else {
        (KvmKind::Hardware, ", no hypervisor flag")
    };
    Ok(KvmProbe {
        kind,
        evidence: format!("{source}; the CPU has {flag}{guest}"),
    })
}

/// Reads this machine's evidence now.
pub fn read_evidence() -> Evidence {
    let modules: Vec<&str> = VENDOR_MODULES
        .into_iter()
        .filter(|m| Path::new("/sys/module").join(m).exists())
        .collect();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Evidence::new(Path::new("/dev/kvm").exists(), &modules, &cpuinfo)
}

/// What backs this machine's /dev/kvm, or why there is none. Probed once
/// per process.
pub fn kind() -> Result<KvmProbe, String> {
    static RESULT: OnceLock<Result<KvmProbe, String>> = OnceLock::new();
    RESULT.get_or_init(|| classify(&read_evidence())).clone()
}

/// [`kind`] when it is hardware-backed (hardware or nested), else why not
/// in one line: what `--backend auto` and the Linux-boot tests ask.
pub fn hardware_backed() -> Result<KvmProbe, String> {
    match kind()? {
        p if p.kind.hardware_backed() => Ok(p),
        p => Err(format!("/dev/kvm is {p}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cpuinfo excerpt whose first CPU has `flags`.
    fn cpuinfo(flags: &str) -> String {
        format!(
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\nbugs\t\t: \n\n\
             processor\t: 1\nflags\t\t: fpu vmx svm\n"
        )
    }

    fn probe(dev_kvm: bool, modules: &[&str], flags: &str) -> Result<KvmProbe, String> {
        classify(&Evidence::new(dev_kvm, modules, &cpuinfo(flags)))
    }

    #[test]
    fn flags_come_from_the_first_cpu_only() {
        let f = cpu_flags(&cpuinfo("fpu sse2 hypervisor"));
        assert!(f.contains("hypervisor") && f.contains("sse2"));
        assert!(!f.contains("vmx"), "{f:?}");
        assert!(cpu_flags("processor : 0\n").is_empty());
        // "flags" must be the key, not a prefix of one.
        assert!(cpu_flags("flagsy\t: vmx\n").is_empty());
    }

    #[test]
    fn a_pvm_host_is_emulated() {
        // This workplace: kvm + kvm_pvm, no vmx/svm, hypervisor flag.
        let p = probe(true, &["kvm_pvm"], "fpu sse2 hypervisor").unwrap();
        assert_eq!(p.kind, KvmKind::Emulated);
        assert!(
            p.evidence.contains("kvm_pvm") && p.evidence.contains("no vmx/svm"),
            "{}",
            p.evidence
        );
        // PVM stays emulated whatever else is loaded.
        let p = probe(true, &["kvm_intel", "kvm_pvm"], "vmx").unwrap();
        assert_eq!(p.kind, KvmKind::Emulated, "{}", p.evidence);
    }

    #[test]
    fn a_bare_metal_host_is_hardware() {
        let p = probe(true, &["kvm_intel"], "fpu vmx sse2").unwrap();
        assert_eq!(p.kind, KvmKind::Hardware);
        assert_eq!(
            p.evidence,
            "kvm_intel is loaded; the CPU has vmx, no hypervisor flag"
        );
        assert!(p.kind.hardware_backed());
        assert_eq!(p.kind.acceleration(), Acceleration::KvmHardware);
    }

    #[test]
    fn an_l1_guest_with_kvm_amd_is_nested() {
        // The nested lane's L1: QEMU TCG `-cpu max` shows svm and hypervisor.
        let p = probe(true, &["kvm_amd"], "fpu svm npt hypervisor").unwrap();
        assert_eq!(p.kind, KvmKind::Nested);
        assert!(p.evidence.contains("kvm_amd") && p.evidence.contains("hypervisor"));
        assert!(p.kind.hardware_backed());
        assert_eq!(p.kind.acceleration(), Acceleration::KvmNested);
    }

    #[test]
    fn a_vendor_module_needs_its_flag() {
        let p = probe(true, &["kvm_amd"], "fpu vmx").unwrap();
        assert_eq!(p.kind, KvmKind::Emulated, "{}", p.evidence);
        assert!(p.evidence.contains("no svm flag"), "{}", p.evidence);
    }

    #[test]
    fn without_sysfs_modules_the_flags_decide() {
        assert_eq!(probe(true, &[], "vmx").unwrap().kind, KvmKind::Hardware);
        assert_eq!(
            probe(true, &[], "svm hypervisor").unwrap().kind,
            KvmKind::Nested
        );
        let p = probe(true, &[], "fpu").unwrap();
        assert_eq!(p.kind, KvmKind::Emulated);
        assert!(!p.kind.hardware_backed());
    }

    #[test]
    fn no_dev_kvm_is_an_error_in_one_line() {
        let e = probe(false, &[], "fpu").unwrap_err();
        assert_eq!(e, "no /dev/kvm and no vmx/svm CPU flag");
        let e = probe(false, &["kvm_intel"], "vmx").unwrap_err();
        assert!(e.contains("no /dev/kvm") && e.contains("vmx"), "{e}");
        assert!(!e.contains('\n'));
    }
}
