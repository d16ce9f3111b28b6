//! How a test whose prerequisite is absent skips, so that `cargo xtask test`
//! can tell an expected skip from a broken machine or a broken probe.
//!
//! `cargo xtask test` probes the machine once and sets
//! `SCHEDTAPE_REQUIRE_<NEED>=1` for every prerequisite it found; [`skip`] then
//! fails the test instead of skipping. Every skip is also printed as one
//! `SCHEDTAPE-SKIP` line and appended to the file named by [`LOG_ENV`], which
//! xtask reads back for its summary.
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The file skips are appended to (one [`Skip`] line each), when set.
pub const LOG_ENV: &str = "SCHEDTAPE_SKIP_LOG";
/// The cached kernel directory the run uses (set by `cargo xtask test`).
pub const KERNEL_DIR_ENV: &str = "SCHEDTAPE_KERNEL_DIR";
/// What starts each skip line.
pub const TAG: &str = "SCHEDTAPE-SKIP";

/// A prerequisite a test may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// /dev/kvm opens.
    Kvm,
    /// Guest CPUID follows KVM_SET_CPUID2 (hardware KVM; emulated KVM such as
    /// PVM reports the host's CPUID).
    Cpuid,
    /// Hardware data watchpoints are reported (KVM_SET_GUEST_DEBUG).
    GuestDebug,
    /// Linux boots in reasonable time on the KVM backend (hardware KVM).
    KvmLinuxBoot,
    /// The project kernel is cached.
    Kernel,
    /// `qemu-system-x86_64` is on PATH.
    Qemu,
    /// `pahole` is on PATH (DWARF cross-checks).
    Pahole,
    /// The nested lane's L1 (Debian's 6.12 cloud kernel and busybox-static)
    /// is cached or apt offers it.
    NestedL1,
}

impl Need {
    pub const ALL: [Need; 8] = [
        Need::Kvm,
        Need::Cpuid,
        Need::GuestDebug,
        Need::KvmLinuxBoot,
        Need::Kernel,
        Need::Qemu,
        Need::Pahole,
        Need::NestedL1,
    ];

    /// The name in skip lines and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Need::Kvm => "kvm",
            Need::Cpuid => "cpuid",
            Need::GuestDebug => "guest-debug",
            Need::KvmLinuxBoot => "kvm-linux-boot",
            Need::Kernel => "kernel",
            Need::Qemu => "qemu",
            Need::Pahole => "pahole",
            Need::NestedL1 => "nested-l1",
        }
    }

    /// The variable that makes a skip for this need a failure.
    pub fn require_env(self) -> &'static str {
        match self {
            Need::Kvm => "SCHEDTAPE_REQUIRE_KVM",
            Need::Cpuid => "SCHEDTAPE_REQUIRE_CPUID",
            Need::GuestDebug => "SCHEDTAPE_REQUIRE_GUEST_DEBUG",
            Need::KvmLinuxBoot => "SCHEDTAPE_REQUIRE_KVM_LINUX_BOOT",
            Need::Kernel => "SCHEDTAPE_REQUIRE_KERNEL",
            Need::Qemu => "SCHEDTAPE_REQUIRE_QEMU",
            Need::Pahole => "SCHEDTAPE_REQUIRE_PAHOLE",
            Need::NestedL1 => "SCHEDTAPE_REQUIRE_NESTED_L1",
        }
    }

    pub fn from_name(name: &str) -> Option<Need> {
        Need::ALL.into_iter().find(|n| n.name() == name)
    }

    /// Whether this run requires the need (its variable is set to 1).
    pub fn required(self) -> bool {
        std::env::var(self.require_env()).is_ok_and(|v| v == "1")
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One recorded skip: `SCHEDTAPE-SKIP <test> <need> <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// `<test binary>::<test name>`.
    pub test: String,
    pub need: Need,
    pub reason: String,
}

impl Skip {
    /// The line as printed and logged (one line: newlines in the reason become spaces).
    pub fn line(&self) -> String {
        let reason = self.reason.replace(['\n', '\r'], " ");
        format!("{TAG} {} {} {reason}", self.test, self.need)
    }

    /// Parses [`Skip::line`]'s output; `None` for any other line.
    pub fn parse(line: &str) -> Option<Skip> {
        let rest = line.trim_end().strip_prefix(TAG)?.strip_prefix(' ')?;
        let (test, rest) = rest.split_once(' ')?;
        let (need, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Skip {
            test: test.to_string(),
            need: Need::from_name(need)?,
            reason: reason.to_string(),
        })
    }
}

/// Skips the calling test for lack of `need`: records the skip, then fails
/// the test if the run requires `need` (the probe said it is there).
pub fn skip(need: Need, reason: &str) {
    let skip = Skip {
        test: current_test(),
        need,
        reason: reason.to_string(),
    };
    let line = skip.line();
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(LOG_ENV) {
        // One short O_APPEND write per line: lines from parallel tests do not interleave.
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = logged {
            eprintln!(
                "cannot log the skip to {}: {e}",
                PathBuf::from(path).display()
            );
        }
    }
    assert!(
        !need.required(),
        "{}: {reason}, yet {}=1 says this machine has {need}",
        skip.test,
        need.require_env()
    );
}

/// `<binary>::<test>`: the test binary without cargo's hash, and the test
/// thread's name (libtest names each test's thread after the test).
fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let binary = match binary.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => binary,
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("{binary}::{}", test.replace(' ', "_"))
}

/// The cached project kernel the run uses: [`KERNEL_DIR_ENV`], else what
/// `cargo xtask kernel path` prints; `None` when no kernel is cached.
pub fn project_kernel_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(KERNEL_DIR_ENV) {
        return Some(dir.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["run", "--quiet", "-p", "xtask", "--", "kernel", "path"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.is_dir()).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_line_round_trips_with_spaces_in_the_reason() {
        let s = Skip {
            test: "kvm_boot::two_vcpus".into(),
            need: Need::Cpuid,
            reason: "this KVM does not\nhonour CPUID".into(),
        };
        let line = s.line();
        assert_eq!(
            line,
            "SCHEDTAPE-SKIP kvm_boot::two_vcpus cpuid this KVM does not honour CPUID"
        );
        let back = Skip::parse(&line).unwrap();
        assert_eq!(back.reason, "this KVM does not honour CPUID");
        assert_eq!((back.test, back.need), (s.test, s.need));
    }

    #[test]
    fn other_lines_and_unknown_needs_are_not_skips() {
        assert_eq!(Skip::parse("test foo ... ok"), None);
        assert_eq!(Skip::parse("SCHEDTAPE-SKIP t gpu no GPU"), None);
        assert_eq!(Skip::parse("SCHEDTAPE-SKIPPED t kvm x"), None);
    }

    #[test]
    fn every_need_has_a_distinct_name_and_variable() {
        for n in Need::ALL {
            assert_eq!(Need::from_name(n.name()), Some(n));
            assert!(n.require_env().starts_with("SCHEDTAPE_REQUIRE_"));
        }
        let vars: std::collections::BTreeSet<_> =
            Need::ALL.iter().map(|n| n.require_env()).collect();
        assert_eq!(vars.len(), Need::ALL.len());
    }
}
