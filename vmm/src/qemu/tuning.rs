//! Boot-time tuning the launcher adds to QEMU's command line under TCG: qboot,
//! TSC rate and delay-loop presets (each found by profiling a TCG boot).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Accel, QemuConfig};
use crate::introspect::Layout;

/// Boot-time savings the launcher applies on top of the plain launch, found by
/// profiling a boot under TCG (`cargo xtask bench boot` measures the whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTuning {
    /// qboot (`-bios`), when QEMU ships it: boots straight to the kernel and
    /// leaves ACPI tables below 1 MiB (microvm's default; named for clarity).
    pub bios: Option<PathBuf>,
    /// The TSC rate in kHz (`tsc_early_khz=`): a TCG guest reads the host's
    /// TSC, and its own PIT calibration of it fails under host load, falling
    /// back to a slower one; `None` when the host's rate is unknown.
    pub tsc_khz: Option<u64>,
    /// Preset `loops_per_jiffy`: TCG guests read the host's TSC but see no
    /// invariant-TSC flag, so each secondary CPU would measure its delay loop
    /// again (~60 ms of boot); `None` when the kernel's HZ or the TSC rate is unknown.
    pub lpj: Option<u64>,
    /// Under TCG every vCPU reads the one host TSC, so it is synchronised.
    pub tsc_reliable: bool,
    /// The local APIC timer's rate (`lapic_timer_hz=`): TCG has no TSC-deadline
    /// timer, so Linux would measure it for 100 ms or more; `None`
    /// unless the kernel takes the parameter ([`QemuConfig::lapic_timer_hz_param`]).
    pub lapic_timer_hz: Option<u64>,
}

/// Whether `layout`'s kernel takes `lapic_timer_hz=`: schedtape's patch adds
/// the parameter's parse function, which stays in the symbol table.
pub fn takes_lapic_timer_hz(layout: &Layout) -> bool {
    layout.symbol("parse_lapic_timer_hz").is_some()
}

/// QEMU's emulated local APIC (without KVM) counts its timer at one tick per
/// nanosecond of virtual time (an end-to-end test checks it against Linux's
/// own calibration).
pub const TCG_APIC_TIMER_HZ: u64 = 1_000_000_000;

impl BootTuning {
    /// The tuning for a launch of `config` on this host.
    pub fn for_config(config: &QemuConfig) -> Self {
        let tcg = config.accel == Accel::Tcg;
        let tsc_hz = if tcg { host_tsc_hz() } else { None };
        BootTuning {
            bios: find_firmware(&config.binary, "qboot.rom"),
            tsc_khz: tsc_hz.map(|f| f / 1000),
            lpj: config
                .kernel_hz
                .filter(|&hz| hz > 0)
                .zip(tsc_hz)
                .map(|(hz, tsc)| lpj_for(tsc, hz)),
            tsc_reliable: tcg,
            lapic_timer_hz: (tcg && config.lapic_timer_hz_param).then_some(TCG_APIC_TIMER_HZ),
        }
    }

    /// Kernel arguments for this tuning (each with its reason).
    pub fn cmdline(&self) -> String {
        let mut args = vec![
            // QEMU's IO-APIC timer routing works; skip checking it (~20 ms).
            "no_timer_check".to_string(),
            // Only ttyS0 exists (`-nodefaults`); do not probe three absent UARTs.
            "8250.nr_uarts=1".to_string(),
        ];
        if self.tsc_reliable {
            // Skips the TSC warp test per CPU (up to 60 ms each) and, with several
            // sockets, keeps the TSC clocksource Linux would otherwise distrust.
            args.push("tsc=reliable".to_string());
        }
        if let Some(khz) = self.tsc_khz {
            args.push(format!("tsc_early_khz={khz}"));
        }
        if let Some(lpj) = self.lpj {
            args.push(format!("lpj={lpj}"));
        }
        if let Some(hz) = self.lapic_timer_hz {
            args.push(format!("lapic_timer_hz={hz}"));
        }
        args.join(" ")
    }
}

/// `loops_per_jiffy` for a TSC delay loop: TSC ticks per jiffy, rounded down
/// to a thousand (the measurement is no finer).
fn lpj_for(tsc_hz: u64, kernel_hz: u32) -> u64 {
    (tsc_hz / u64::from(kernel_hz)) / 1000 * 1000
}

/// The host's TSC rate, measured once per process over a few milliseconds;
/// `None` off x86-64 or when the TSC is not constant-rate.
fn host_tsc_hz() -> Option<u64> {
    static RATE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *RATE.get_or_init(measure_tsc_hz)
}

#[cfg(target_arch = "x86_64")]
fn measure_tsc_hz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let constant = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "constant_tsc"));
    if !constant {
        return None;
    }
    // SAFETY: RDTSC has no preconditions on x86-64 (user mode may execute it
    // unless the kernel sets CR4.TSD, which Linux does not by default).
    let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
    // A clock reading bracketed by two TSC reads close together (not preempted).
    let stamp = || {
        (0..20).find_map(|_| {
            let (a, t, b) = (tsc(), Instant::now(), tsc());
            (b.wrapping_sub(a) < 20_000).then_some((a / 2 + b / 2, t))
        })
    };
    let (c0, t0) = stamp()?;
    std::thread::sleep(Duration::from_millis(5));
    let (c1, t1) = stamp()?;
    let ns = u64::try_from(t1.duration_since(t0).as_nanos())
        .ok()
        .filter(|&n| n > 0)?;
    let rate = u128::from(c1.checked_sub(c0)?) * 1_000_000_000 / u128::from(ns);
    u64::try_from(rate).ok().filter(|&r| r > 0)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure_tsc_hz() -> Option<u64> {
    None
}

/// A firmware file from QEMU's data directory (beside the binary, or the
/// usual system prefixes), so a QEMU without it falls back to its default.
fn find_firmware(binary: &Path, name: &str) -> Option<PathBuf> {
    let resolved = if binary.components().count() > 1 {
        Some(binary.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(binary))
                .find(|p| p.is_file())
        })
    };
    let beside = resolved
        .and_then(|b| b.parent().map(|d| d.join("../share/qemu")))
        .into_iter();
    beside
        .chain(["/usr/share/qemu", "/usr/local/share/qemu"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpj_is_tsc_ticks_per_jiffy() {
        assert_eq!(lpj_for(2_596_099_000, 250), 10_384_000);
        assert_eq!(lpj_for(3_000_000_000, 1000), 3_000_000);
    }
    #[test]
    fn tsc_rate_measurements_agree() {
        let (Some(a), Some(b)) = (measure_tsc_hz(), measure_tsc_hz()) else {
            return; // no constant-rate TSC here: the guest calibrates for itself
        };
        assert!((100_000_000..20_000_000_000).contains(&a), "{a} Hz");
        assert!(a.abs_diff(b) < a / 500, "{a} vs {b}");
    }
    #[test]
    fn tsc_and_lpj_presets_are_for_tcg_only() {
        let kvm = BootTuning::for_config(&super::super::test_config(Accel::Kvm, Some(250)));
        assert_eq!(
            (kvm.tsc_khz, kvm.lpj, kvm.tsc_reliable),
            (None, None, false)
        );
        let unknown_hz = BootTuning::for_config(&super::super::test_config(Accel::Tcg, None));
        assert_eq!((unknown_hz.lpj, unknown_hz.tsc_reliable), (None, true));
    }
    #[test]
    fn the_apic_timer_rate_goes_only_to_tcg_kernels_that_take_it() {
        let mut config = super::super::test_config(Accel::Tcg, Some(250));
        assert_eq!(
            BootTuning::for_config(&config).lapic_timer_hz,
            Some(1_000_000_000)
        );
        config.lapic_timer_hz_param = false;
        assert_eq!(BootTuning::for_config(&config).lapic_timer_hz, None);
        let kvm = super::super::test_config(Accel::Kvm, Some(250));
        assert_eq!(BootTuning::for_config(&kvm).lapic_timer_hz, None);
    }
}
