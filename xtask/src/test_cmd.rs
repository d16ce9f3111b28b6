//! `cargo xtask test`: lints, every workspace test, then the end-to-end suite.
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;

use crate::kernel::{self, BuildOpts, ResolveOpts};

/// Options of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Skip the end-to-end tests that boot VMs.
    #[arg(long, conflicts_with = "e2e_only")]
    pub no_e2e: bool,
    /// Run only the end-to-end tests.
    #[arg(long)]
    pub e2e_only: bool,
}

/// Runs each phase in order and stops at the first failure.
pub fn run(args: &TestArgs) -> Result<ExitCode> {
    let mut phases: Vec<(&str, Vec<&str>)> = Vec::new();
    if !args.e2e_only {
        if !args.no_lint {
            phases.push(("format", vec!["fmt", "--all", "--", "--check"]));
            phases.push((
                "clippy",
                vec![
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            ));
        }
        phases.push(("tests", vec!["test", "--workspace"]));
    }
    for (name, cargo_args) in phases {
        if !cargo(name, &cargo_args, false)? {
            return Ok(ExitCode::FAILURE);
        }
    }
    if !args.no_e2e {
        prepare_e2e()?;
        // The kernel is cached now: introspection tests must not skip.
        let offsets = ["test", "-p", "vmm", "--test", "introspect_kernel"];
        // The long KVM freeze test: 1,000 freeze/thaw cycles of 8 vCPUs.
        let freeze = [
            "test",
            "-p",
            "vmm",
            "--test",
            "kvm_freeze",
            "--",
            "--ignored",
        ];
        let e2e = ["test", "-p", "e2e", "--", "--ignored", "--test-threads=1"];
        if !cargo("introspection offsets", &offsets, true)?
            || !cargo("KVM freeze cycles", &freeze, true)?
            || !cargo("end-to-end", &e2e, true)?
        {
            return Ok(ExitCode::FAILURE);
        }
    }
    eprintln!("xtask test: all passed");
    Ok(ExitCode::SUCCESS)
}

/// Installs every package the VM tests need in one go (QEMU, stress-ng, the
/// BPF and kernel build packages), then builds the BPF scheduler and (or
/// finds) the cached kernel the VM tests boot.
fn prepare_e2e() -> Result<()> {
    eprintln!("xtask test: preparing end-to-end tests (QEMU, stress-ng, cached kernel)");
    let opts = ResolveOpts {
        kernel: None,
        build: BuildOpts::default(),
        build_if_missing: true,
    };
    let mut needs = kernel::deps::Prerequisites::default();
    needs.need(&[crate::prereq::QEMU_PACKAGE], "the QEMU backend");
    // The payload tests pack Debian's stress-ng into the guest.
    needs.need(&["stress-ng"], "the payload tests");
    // The sched_ext tests run schedtape's own BPF scheduler (clang, autotools).
    crate::scheduler::need_build_packages(&mut needs);
    if kernel::image::needs_build(&opts) {
        needs.need(kernel::deps::BUILD_PACKAGES, "the kernel build");
    }
    needs.ensure()?;
    let scx = crate::scheduler::build(&crate::workspace_root())?;
    eprintln!("xtask test: BPF scheduler {}", scx.display());
    let image = kernel::resolve(&opts)?;
    image.require_options()?;
    eprintln!("xtask test: kernel {}", image.boot_image().display());
    Ok(())
}

/// Runs one cargo phase; `e2e` sets SCHEDTAPE_E2E=1 so kernel-dependent tests
/// fail instead of skipping.
fn cargo(phase: &str, args: &[&str], e2e: bool) -> Result<bool> {
    eprintln!("xtask test: {phase}: cargo {}", args.join(" "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    if e2e {
        cmd.env("SCHEDTAPE_E2E", "1");
    }
    let status = cmd
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo for {phase}"))?;
    if !status.success() {
        eprintln!("xtask test: {phase} failed");
    }
    Ok(status.success())
}
