//! `cargo xtask nested run`: our KVM VMM boots real Linux inside an L1 Linux
//! that runs under QEMU TCG with an emulated AMD CPU (SVM + NPT), on hosts
//! whose own /dev/kvm cannot boot Linux. L1 runs each check (one `xtask run
//! scenario … --backend kvm`) and leaves traces, logs and exit codes in a
//! folder that the e2e tests (tests/nested.rs) judge.
pub mod bench;
mod boot;
pub mod checks;
mod fetch;
mod root;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::kernel::{BuildOpts, ResolveOpts, resolve};

#[derive(Debug, Subcommand)]
pub enum NestedCmd {
    /// Boot L1 once and run the lane's checks in it with our VMM.
    ///
    /// Exit status: 0 L1 ran every check (each check's own exit code is in
    /// DIR/<check>.code), 2 bad options, 3 the lane failed (L1 did not boot,
    /// no /dev/kvm in it, timed out), 4 it cannot run on this host (no QEMU,
    /// no L1 from Debian), said in one `nested: cannot run here:` line.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run only this check (repeatable; default: all).
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
    /// Folder for traces, stdout/stderr, exit codes and L1's console log.
    #[arg(long, default_value = "target/nested")]
    pub out: PathBuf,
    /// Seconds before L1 is killed (the whole lane).
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
}

/// Exit status of `nested run` when the lane cannot run on this host (no
/// QEMU, no L1 to be had): the tests skip on it, with the reason.
pub const EXIT_CANNOT_RUN: u8 = 4;

/// Whether L1 can be had here (for `cargo xtask test`'s probe).
pub fn l1_available() -> Result<(), String> {
    fetch::available()
}

pub fn run(cmd: &NestedCmd) -> Result<ExitCode> {
    let NestedCmd::Run(args) = cmd;
    let checks = match checks::select(&args.checks) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let started = Instant::now();
    let root = crate::workspace_root();
    let out = root.join(&args.out);
    prepare_out(&out)?;

    let opts = ResolveOpts {
        kernel: None,
        build: BuildOpts::default(),
        build_if_missing: true,
    };
    let mut needs = crate::prereq::for_tools(true, &opts);
    needs.need(&["e2fsprogs", "xz-utils", "binutils"], "the nested lane");
    let ready = needs.ensure().and_then(|()| fetch::ensure());
    let ingredients = match ready {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "nested: cannot run here: {}",
                format!("{e:#}").replace('\n', " ")
            );
            return Ok(ExitCode::from(EXIT_CANNOT_RUN));
        }
    };
    let kernel = resolve(&opts)?;
    let full = kernel
        .vmlinux
        .clone()
        .context("the project kernel has no vmlinux")?;
    let scheduler = checks
        .iter()
        .any(|c| c.scenario.starts_with("sched-"))
        .then(|| crate::scheduler::build(&root))
        .transpose()?;
    let inputs = root::Inputs {
        kernel: &kernel,
        guest_init: crate::guest::build(&root)?,
        scheduler,
        workspace: root.clone(),
    };

    let work = tempdir()?;
    let initrd = work.join("l1.cpio");
    std::fs::write(
        &initrd,
        root::l1_initramfs(&ingredients, &checks, &work, &full)?,
    )
    .context("cannot write L1's initramfs")?;
    let inputs_disk = work.join("inputs.img");
    root::inputs_disk(&inputs, &work.join("inputs"), &inputs_disk)?;
    let results_disk = work.join("results.img");
    root::results_disk(&results_disk)?;
    eprintln!(
        "nested: L1 = {}, {} checks, prepared in {:.1} s",
        ingredients.kernel_package,
        checks.len(),
        started.elapsed().as_secs_f64()
    );

    let ending = boot::run(&boot::Boot {
        vmlinuz: ingredients.vmlinuz.clone(),
        initrd,
        inputs_disk,
        results_disk: results_disk.clone(),
        console_log: out.join("l1-console.log"),
        timeout: Duration::from_secs(args.timeout),
        checks: checks.len(),
    })?;
    // Whatever L1 finished is kept, even when it did not finish everything.
    let copied = root::read_results(&results_disk, &out);
    let _ = std::fs::remove_dir_all(&work);
    copied?;
    eprintln!(
        "nested: results in {} ({:.1} s in all)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    match ending {
        boot::Ending::Done => Ok(ExitCode::SUCCESS),
        boot::Ending::Failed(why) => {
            bail!("L1 gave up: {why} (see {}/l1-console.log)", out.display())
        }
        boot::Ending::TimedOut => bail!(
            "L1 did not finish within {} s (see {}/l1-console.log)",
            args.timeout,
            out.display()
        ),
        boot::Ending::Exited(status) => bail!(
            "L1's QEMU exited ({status}) before /init finished (see {}/l1-console.log)",
            out.display()
        ),
    }
}

/// Creates `out` and removes the previous lane's results from it.
fn prepare_out(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = [".trace", ".stdout", ".stderr", ".code", ".log"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if ours && entry.path().is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A fresh work folder for L1's initramfs and disks (a few hundred MB).
fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("schedtape-nested-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
