//! What a command that boots needs from the host, settled before anything is
//! built: QEMU for its backend, the kernel build's packages when the kernel is
//! not cached, the BPF build's for schedtape's own scheduler, and every payload
//! program (found and stageable, or installed from the Debian package that
//! ships it). Bad input is found here, not after a ten-minute kernel build.
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use trace_format::scenario::{PayloadSpec, Scenario};

use crate::kernel::ResolveOpts;
use crate::kernel::deps::{self, NotInstalled, Prerequisites};

/// The Debian package of QEMU's x86-64 system emulator.
const QEMU_PACKAGE: &str = "qemu-system-x86";

/// Payload programs and the Debian package that ships each, so a scenario
/// naming one gets it installed rather than a "not on PATH" error.
const PAYLOAD_PACKAGES: &[(&str, &str)] = &[
    ("stress-ng", "stress-ng"),
    ("stress", "stress"),
    ("hackbench", "rt-tests"),
    ("cyclictest", "rt-tests"),
    ("fio", "fio"),
    ("sysbench", "sysbench"),
    ("perf", "linux-perf"),
    ("iperf3", "iperf3"),
    ("busybox", "busybox-static"),
];

/// The Debian package that ships `program` (a bare name), if we know one.
pub fn package_of(program: &str) -> Option<&'static str> {
    PAYLOAD_PACKAGES
        .iter()
        .find(|(p, _)| *p == program)
        .map(|(_, pkg)| *pkg)
}

/// Why a command cannot start: its input is bad (exit 2) or the host lacks
/// something only an administrator can install (exit 3).
#[derive(Debug)]
pub enum Refusal {
    BadInput(anyhow::Error),
    Host(anyhow::Error),
}

/// A payload's host program, or the package that will provide it.
enum PayloadProgram {
    Found,
    FromPackage(&'static str),
}

/// Checks every payload's program (found, a regular x86-64 ELF) and adds the
/// packages of missing known ones to `needs`; returns those payloads.
fn payload_needs<'a>(
    payloads: &'a [PayloadSpec],
    needs: &mut Prerequisites,
) -> Result<Vec<&'a PayloadSpec>> {
    let mut missing = Vec::new();
    for p in payloads {
        if let PayloadProgram::FromPackage(pkg) = payload_program(p, crate::stage::find_program)? {
            needs.need(&[pkg], &format!("payload {:?} ({})", p.name, p.path));
            missing.push(p);
        }
    }
    Ok(missing)
}

/// Looks `p` up with `find` (a program name on PATH, or a path).
fn payload_program(
    p: &PayloadSpec,
    find: impl Fn(&str) -> Result<PathBuf>,
) -> Result<PayloadProgram> {
    let what = || format!("payload {:?}: path {:?}", p.name, p.path);
    match find(&p.path) {
        Ok(host) => {
            crate::stage::check_stageable(&host).map_err(|e| anyhow!("{}: {e:#}", what()))?;
            Ok(PayloadProgram::Found)
        }
        Err(_) if !p.path.contains('/') => match package_of(&p.path) {
            Some(pkg) => Ok(PayloadProgram::FromPackage(pkg)),
            None => Err(anyhow!(
                "{}: no such program on PATH (install it, or give a path to an x86-64 ELF)",
                what()
            )),
        },
        Err(e) => Err(anyhow!("{}: {e:#}", what())),
    }
}

/// What a run of `scenario` needs: checks its payloads (bad input when one is
/// missing and no package provides it, or is not a program we can stage), then
/// installs or names every missing package at once; afterwards the payloads
/// that were missing must be found.
pub fn for_run(scenario: &Scenario, qemu: bool, kernel: &ResolveOpts) -> Result<(), Refusal> {
    let mut needs = for_tools(qemu, kernel);
    if crate::scheduler::uses_own(scenario) && crate::scheduler::prebuilt().is_none() {
        crate::scheduler::need_build_packages(&mut needs);
    }
    let missing = payload_needs(&scenario.payloads, &mut needs).map_err(Refusal::BadInput)?;
    ensure(&needs)?;
    for p in missing {
        let found = payload_program(p, crate::stage::find_program).map_err(Refusal::BadInput)?;
        if let PayloadProgram::FromPackage(pkg) = found {
            return Err(Refusal::Host(anyhow!(
                "payload {:?}: {pkg} is installed but {} is still not on PATH",
                p.name,
                p.path
            )));
        }
    }
    Ok(())
}

/// What every command that boots or builds needs: QEMU when it boots with
/// QEMU, the kernel build's packages when `kernel` would build. Callers add
/// their own and [`Prerequisites::ensure`] before anything is built.
pub fn for_tools(qemu: bool, kernel: &ResolveOpts) -> Prerequisites {
    let mut needs = Prerequisites::default();
    if qemu {
        needs.need(&[QEMU_PACKAGE], "the QEMU backend");
    }
    if crate::kernel::image::needs_build(kernel) {
        needs.need(deps::BUILD_PACKAGES, "the kernel build");
    }
    needs
}

/// Installs `needs`; a non-root user missing a payload's package gets exit 2
/// (the scenario cannot run as written), missing tools exit 3.
pub fn ensure(needs: &Prerequisites) -> Result<(), Refusal> {
    needs
        .ensure()
        .map_err(|e| match e.downcast_ref::<NotInstalled>() {
            Some(n) if n.purposes.iter().any(|p| p.starts_with("payload ")) => Refusal::BadInput(e),
            _ => Refusal::Host(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(path: &str) -> PayloadSpec {
        PayloadSpec {
            name: "p".into(),
            path: path.into(),
            args: Vec::new(),
            cgroup: None,
        }
    }

    fn needs_of(path: &str, find: impl Fn(&str) -> Result<PathBuf>) -> Result<Vec<String>> {
        let mut needs = Prerequisites::default();
        let program = payload_program(&payload(path), find)?;
        if let PayloadProgram::FromPackage(pkg) = program {
            needs.need(&[pkg], "payload");
        }
        Ok(needs.packages().map(str::to_string).collect())
    }

    #[test]
    fn a_found_program_needs_nothing() {
        assert!(
            needs_of("sh", crate::stage::find_program)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_missing_known_program_needs_its_package() {
        let nowhere = |name: &str| Err(anyhow!("{name} is not on PATH"));
        assert_eq!(needs_of("stress-ng", nowhere).unwrap(), ["stress-ng"]);
        assert_eq!(needs_of("hackbench", nowhere).unwrap(), ["rt-tests"]);
        let err = needs_of("my-bench", nowhere).unwrap_err().to_string();
        assert!(err.contains("no such program on PATH"), "{err}");
    }

    #[test]
    fn missing_files_directories_and_non_programs_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let cases = [
            ("no-such-program-xyz".to_string(), "no such program on PATH"),
            (
                dir.path().join("absent").display().to_string(),
                "no such file",
            ),
            (dir.path().display().to_string(), "is a directory"),
            (text.display().to_string(), "not an x86-64 ELF program"),
        ];
        for (path, want) in cases {
            let err = needs_of(&path, crate::stage::find_program)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("payload \"p\": path "), "{err}");
            assert!(err.contains(want), "{path}: {err}");
        }
    }
}
