//! sched_ext schedulers for a run: the `--scheduler` option, building
//! schedtape's own scheduler (`bpf/`), staging scheduler programs into the
//! initramfs, and the scheduler identity recorded in the trace.
//!
//! A scheduler is named `eevdf` (none), `schedtape-scx` (built from `bpf/`),
//! a program on `PATH`, or a path. The guest finds the scenario's scheduler at
//! `/schedulers/boot/<file name>` and staged ones at `/schedulers/staged/<name>`.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use trace_format::meta::SchedulerIdentity;
use trace_format::scenario::{Scenario, SchedulerSpec};

use crate::guest::GUEST_TARGET;
use crate::initramfs::Initramfs;
use crate::kernel::deps;
use crate::stage;

/// schedtape's own scheduler, built from `bpf/` when a run names it.
pub const OWN: &str = "schedtape-scx";

/// Debian packages the BPF build needs: autotools for libbpf-sys's vendored
/// libelf and zlib, and the libraries its build script links.
const BUILD_PACKAGES: &[&str] = &[
    "autoconf",
    "automake",
    "autopoint",
    "gettext",
    "libtool",
    "m4",
    "pkg-config",
    "flex",
    "bison",
    "gawk",
    "make",
    "gcc",
    "libelf-dev",
    "zlib1g-dev",
];
/// Installed when no clang is on `PATH`.
const CLANG_PACKAGE: &str = "clang-16";
const CLANGS: [&str; 5] = ["clang-19", "clang-18", "clang-17", "clang-16", "clang"];

/// The scheduler options of `run scenario`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Run under this sched_ext scheduler instead of the scenario's: `eevdf`,
    /// `schedtape-scx`, a program on PATH, or a path. Its arguments follow `--`.
    #[arg(long, value_name = "NAME|PATH")]
    pub scheduler: Option<String>,
    /// Arguments for the --scheduler program (or else the scenario's own scheduler).
    #[arg(last = true, value_name = "ARGS")]
    pub scheduler_args: Vec<String>,
}

/// Applies `--scheduler` to the scenario and checks every scheduler it names
/// can be found (bad input otherwise).
pub fn apply(scenario: &mut Scenario, args: &SchedulerArgs) -> Result<()> {
    match &args.scheduler {
        Some(s) if s.eq_ignore_ascii_case("eevdf") => {
            if !args.scheduler_args.is_empty() {
                bail!("--scheduler eevdf takes no arguments");
            }
            scenario.scheduler = SchedulerSpec::Eevdf;
        }
        Some(s) if s.is_empty() => bail!("--scheduler needs a name or a path"),
        Some(s) => {
            scenario.scheduler = SchedulerSpec::Named {
                name: s.clone(),
                args: args.scheduler_args.clone(),
            }
        }
        None if args.scheduler_args.is_empty() => {}
        None => match &mut scenario.scheduler {
            SchedulerSpec::Named { args: a, .. } => a.clone_from(&args.scheduler_args),
            SchedulerSpec::Eevdf => bail!(
                "arguments after `--` are for a scheduler, but the scenario runs EEVDF; \
                 name one with --scheduler"
            ),
        },
    }
    if let SchedulerSpec::Named { name, .. } = &scenario.scheduler {
        check(name, "").with_context(|| format!("scheduler {name:?}"))?;
    }
    for s in &scenario.staged_schedulers {
        if s.name.contains('/') || s.name.starts_with('.') {
            bail!(
                "staged scheduler {:?}: a name may not contain '/' or start with '.'",
                s.name
            );
        }
        check(&s.name, &s.path).with_context(|| format!("staged scheduler {:?}", s.name))?;
    }
    Ok(())
}

/// Checks a scheduler can be found, without building anything.
fn check(name: &str, path: &str) -> Result<()> {
    match program(name, path) {
        OWN => Ok(()),
        prog => host_path(prog).map(drop),
    }
}

/// What to run for a scheduler: its `path` (a path or a program name) when
/// given, else its name.
fn program<'a>(name: &'a str, path: &'a str) -> &'a str {
    if path.is_empty() { name } else { path }
}

/// The host program for a scheduler; schedtape's own is built.
fn resolve(root: &Path, name: &str, path: &str) -> Result<PathBuf> {
    match program(name, path) {
        OWN => build(root),
        prog => host_path(prog),
    }
}

/// A program on PATH, or a path (relative ones also from the workspace root).
fn host_path(prog: &str) -> Result<PathBuf> {
    let p = Path::new(prog);
    let in_root = crate::workspace_root().join(p);
    if prog.contains('/') && p.is_relative() && !p.is_file() && in_root.is_file() {
        return Ok(in_root);
    }
    stage::find_program(prog)
}

fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Packs the scenario's scheduler and every staged one, with their libraries.
pub fn stage(fs: &mut Initramfs, root: &Path, scenario: &Scenario) -> Result<()> {
    if let SchedulerSpec::Named { name, .. } = &scenario.scheduler {
        let host = resolve(root, name, "").with_context(|| format!("scheduler {name:?}"))?;
        let guest = format!("schedulers/boot/{}", basename(name));
        pack(fs, &host, &guest, name)?;
    }
    for s in &scenario.staged_schedulers {
        let host = resolve(root, &s.name, &s.path)
            .with_context(|| format!("staged scheduler {:?}", s.name))?;
        pack(fs, &host, &format!("schedulers/staged/{}", s.name), &s.name)?;
    }
    Ok(())
}

fn pack(fs: &mut Initramfs, host: &Path, guest: &str, name: &str) -> Result<()> {
    let staged =
        stage::stage_binary(fs, host, guest).with_context(|| format!("scheduler {name:?}"))?;
    eprintln!(
        "  scheduler {name}: {} (sha256 {}…, {} libraries)",
        host.display(),
        &staged.sha256[..12],
        staged.libraries.len()
    );
    Ok(())
}

/// Name, arguments and program hash of the scenario's scheduler; `None` for EEVDF.
pub fn identity(root: &Path, scenario: &Scenario) -> Option<SchedulerIdentity> {
    let SchedulerSpec::Named { name, args } = &scenario.scheduler else {
        return None;
    };
    let sha256 = resolve(root, name, "")
        .and_then(|p| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display())))
        .map(|bytes| Sha256::digest(bytes).into())
        .unwrap_or_else(|e| {
            eprintln!("warning: scheduler {name:?}: no hash for the trace: {e:#}");
            [0; 32]
        });
    Some(SchedulerIdentity {
        name: basename(name).to_string(),
        sha256,
        args: args.clone(),
    })
}

/// Builds `schedtape-scx` (once per process) and returns the binary.
///
/// Like the guest it needs its own flags: a static-pie (`+crt-static`) with an
/// explicit target, in its own target directory. Missing build packages are
/// installed when running as root.
pub fn build(root: &Path) -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_once(root).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_once(root: &Path) -> Result<PathBuf> {
    if let Some(binary) = prebuilt() {
        if !binary.is_file() {
            bail!("{PREBUILT_VAR}={}: no such file", binary.display());
        }
        return Ok(binary);
    }
    ensure_build_packages()?;
    let target_dir = root.join("target").join("bpf");
    let t0 = std::time::Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--quiet", "-p", OWN, "--bin", OWN])
        .args([
            "--features",
            "loader",
            "--release",
            "--target",
            GUEST_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .status()
        .context("cannot run cargo to build the BPF scheduler")?;
    if !status.success() {
        bail!("building {OWN} failed (see cargo's output above)");
    }
    let binary = target_dir.join(GUEST_TARGET).join("release").join(OWN);
    if !binary.is_file() {
        bail!("the {OWN} build produced no binary at {}", binary.display());
    }
    let secs = t0.elapsed().as_secs_f64();
    if secs > 2.0 {
        eprintln!("  built {OWN} in {secs:.1}s");
    }
    Ok(binary)
}

/// Names a ready `schedtape-scx` to use instead of building one (where
/// there is no cargo, such as inside the nested lane's L1).
pub const PREBUILT_VAR: &str = "SCHEDTAPE_SCX";

/// The ready `schedtape-scx` that `$SCHEDTAPE_SCX` names, if set.
pub fn prebuilt() -> Option<PathBuf> {
    std::env::var_os(PREBUILT_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Installs what the BPF build needs (clang, autotools) when missing.
fn ensure_build_packages() -> Result<()> {
    let mut needs = deps::Prerequisites::default();
    need_build_packages(&mut needs);
    needs.ensure()
}

/// Adds the BPF build's packages (and clang when none is found) to `needs`.
pub fn need_build_packages(needs: &mut deps::Prerequisites) {
    needs.need(BUILD_PACKAGES, "the BPF scheduler build");
    if std::env::var_os("CLANG").is_none() && !clang_on_path() {
        needs.need(&[CLANG_PACKAGE], "the BPF scheduler build");
    }
}

/// Whether the run builds schedtape's own scheduler (as its scheduler or a staged one).
pub fn uses_own(scenario: &Scenario) -> bool {
    let boot = matches!(&scenario.scheduler, SchedulerSpec::Named { name, .. } if name == OWN);
    boot || scenario
        .staged_schedulers
        .iter()
        .any(|s| program(&s.name, &s.path) == OWN)
}

fn clang_on_path() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| CLANGS.iter().any(|c| d.join(c).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(scheduler: Option<&str>, rest: &[&str]) -> SchedulerArgs {
        SchedulerArgs {
            scheduler: scheduler.map(String::from),
            scheduler_args: rest.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scheduler_option_overrides_the_scenario() {
        let mut sc = Scenario::new("t", 1_000_000_000);
        apply(&mut sc, &args(Some(OWN), &["--stall-after", "1"])).unwrap();
        assert_eq!(
            sc.scheduler,
            SchedulerSpec::Named {
                name: OWN.into(),
                args: vec!["--stall-after".into(), "1".into()]
            }
        );
        apply(&mut sc, &args(None, &["-v"])).unwrap();
        assert!(matches!(&sc.scheduler, SchedulerSpec::Named { args, .. } if args == &["-v"]));
        apply(&mut sc, &args(Some("EEVDF"), &[])).unwrap();
        assert_eq!(sc.scheduler, SchedulerSpec::Eevdf);
    }

    #[test]
    fn bad_scheduler_options_are_rejected() {
        let mut sc = Scenario::new("t", 1_000_000_000);
        assert!(
            apply(&mut sc, &args(None, &["--x"])).is_err(),
            "EEVDF takes no args"
        );
        assert!(apply(&mut sc, &args(Some("eevdf"), &["--x"])).is_err());
        let e = apply(&mut sc, &args(Some("/no/such/scheduler"), &[])).unwrap_err();
        assert!(format!("{e:#}").contains("no such file"), "{e:#}");
        sc.scheduler = SchedulerSpec::Eevdf;
        sc.staged_schedulers
            .push(trace_format::scenario::StagedScheduler {
                name: "alt".into(),
                path: OWN.into(),
                args: Vec::new(),
            });
        apply(&mut sc, &args(None, &[])).unwrap();
        let e = apply(&mut sc, &args(Some("no-such-scheduler-here"), &[])).unwrap_err();
        assert!(format!("{e:#}").contains("not on PATH"), "{e:#}");
    }

    #[test]
    fn identity_hashes_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("scx_mine");
        std::fs::write(&prog, b"not really a program").unwrap();
        let mut sc = Scenario::new("t", 1_000_000_000);
        assert_eq!(identity(dir.path(), &sc), None);
        sc.scheduler = SchedulerSpec::Named {
            name: prog.display().to_string(),
            args: vec!["-v".into()],
        };
        let id = identity(dir.path(), &sc).unwrap();
        assert_eq!(id.name, "scx_mine");
        assert_eq!(id.args, ["-v"]);
        assert_eq!(
            id.sha256,
            <[u8; 32]>::from(Sha256::digest(b"not really a program"))
        );
    }
}
