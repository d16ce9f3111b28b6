//! `cargo xtask nested run`: our KVM VMM boots real Linux inside an L1 Linux
//! that runs under QEMU TCG with an emulated AMD CPU (SVM + NPT), on hosts
//! whose own /dev/kvm cannot boot Linux. L1 runs each check (one `xtask run
//! scenario … --backend kvm`) and leaves traces, logs and exit codes in a
//! folder that the e2e tests (tests/nested.rs) judge.
pub mod bench;
mod boot;
pub mod checks;
mod fetch;
mod hold;
mod resume;
mod root;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::kernel::{BuildOpts, ResolveOpts, resolve};

#[derive(Debug, Subcommand)]
pub enum NestedCmd {
    /// Boot L1 once and run the lane's checks in it with our VMM.
    ///
    /// When L1 dies (oops, panic) before every check ran, L1 boots again
    /// for the rest, the interrupted check first (retried once; at most 5
    /// boots); DIR/<check>.l1-retries says why, DIR/<check>.l1-failed marks a
    /// check L1 died in twice.
    ///
    /// Exit status: 0 L1 ran every check (each check's own exit code is in
    /// DIR/<check>.code), 2 bad options, 3 the lane failed (L1 did not boot,
    /// no /dev/kvm in it, died twice in a check, timed out), 4 it cannot run
    /// on this host (no QEMU, no L1 from Debian), said in one `nested: cannot
    /// run here:` line.
    Run(RunArgs),
    /// Inside L1: hold kvm's APIC static keys for the lane (see nested/hold.rs).
    #[command(hide = true)]
    HoldApicKeys,
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
    /// Crash L1 (sysrq) during this check on the first boot, to exercise
    /// resuming the lane.
    #[arg(long, value_name = "NAME", hide = true)]
    pub crash_l1_in: Option<String>,
}

/// Exit status of `nested run` when the lane cannot run on this host (no
/// QEMU, no L1 to be had): the tests skip on it, with the reason.
pub const EXIT_CANNOT_RUN: u8 = 4;

/// Whether L1 can be had here (for `cargo xtask test`'s probe).
pub fn l1_available() -> Result<(), String> {
    fetch::available()
}

pub fn run(cmd: &NestedCmd) -> Result<ExitCode> {
    let args = match cmd {
        NestedCmd::Run(args) => args,
        NestedCmd::HoldApicKeys => {
            hold::hold_apic_keys()?;
            return Ok(ExitCode::SUCCESS);
        }
    };
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

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let names: Vec<String> = checks.iter().map(|c| c.name.to_string()).collect();
    let mut resume = resume::Resume::new(names);
    let mut gave_up = None;
    while let Some(pending) = resume.next() {
        let n = resume.boots() + 1;
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            gave_up = Some(format!("L1 did not finish within {} s", args.timeout));
            break;
        };
        let console_log = out.join(console_log_name(n));
        let outcome = boot::run(&boot::Boot {
            vmlinuz: ingredients.vmlinuz.clone(),
            initrd: initrd.clone(),
            inputs_disk: inputs_disk.clone(),
            results_disk: results_disk.clone(),
            console_log: console_log.clone(),
            timeout: left,
            checks: pending.to_vec(),
            crash: args.crash_l1_in.clone().filter(|_| n == 1),
        })?;
        let death = match outcome.ending {
            boot::Ending::Done => None,
            boot::Ending::Exited(status) => {
                let console = std::fs::read_to_string(&console_log).unwrap_or_default();
                let qemu =
                    std::fs::read_to_string(boot::qemu_log(&console_log)).unwrap_or_default();
                let status = match boot::triple_fault(&qemu) {
                    Some(how) => format!("{status}; {how}"),
                    None => status,
                };
                Some(resume::Death {
                    during: outcome.running.clone(),
                    oops: resume::death_lines(&console, &status),
                })
            }
            boot::Ending::CheckHung(ran) => Some(resume::Death {
                during: outcome.running.clone(),
                oops: format!("no end after {} s (hung; L1 killed)", ran.as_secs()),
            }),
            boot::Ending::Failed(why) => {
                gave_up = Some(format!("L1 gave up: {why}"));
                break;
            }
            boot::Ending::TimedOut => {
                gave_up = Some(format!("L1 did not finish within {} s", args.timeout));
                break;
            }
        };
        resume.boot_ended(&outcome.ended, death.as_ref());
        if let Some(d) = &death {
            record_death(&out, n, d, &resume)?;
            say_death(d, &resume);
        }
    }
    // Whatever L1 finished is kept, even when it did not finish everything.
    let copied = root::read_results(&results_disk, &out);
    let _ = std::fs::remove_dir_all(&work);
    copied?;
    eprintln!(
        "nested: results in {} ({:.1} s, {} L1 boot(s) in all)",
        out.display(),
        started.elapsed().as_secs_f64(),
        resume.boots()
    );
    if let Some(why) = gave_up {
        bail!("{why} (see {}/l1-console*.log)", out.display());
    }
    let mut failures: Vec<String> = resume
        .failed()
        .iter()
        .map(|(check, oops)| {
            if oops.contains(resume::SUSPECT_RERUN) {
                format!(
                    "{check}: L2 failed with the emulator's signature on two L1 boots ({oops}); our VMM or the \
                     emulated SVM, see {check}.suspect.*"
                )
            } else {
                format!("L1 died twice during {check} (L1, not our VMM; oops: {oops})")
            }
        })
        .collect();
    if !resume.not_run().is_empty() {
        failures.push(format!(
            "out of L1 boots ({}); not run: {}",
            resume::MAX_BOOTS,
            resume.not_run().join(", ")
        ));
    }
    if !failures.is_empty() {
        bail!("lane failure: {}", failures.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// L1's console log of boot `n` (from 1): `l1-console.log`, then `l1-console-N.log`.
fn console_log_name(n: u32) -> String {
    if n == 1 {
        "l1-console.log".into()
    } else {
        format!("l1-console-{n}.log")
    }
}

/// Appends L1's death to `out/<check>.l1-retries` (and writes
/// `<check>.l1-failed` when it was the second), for the tests to report.
fn record_death(out: &Path, boot: u32, death: &resume::Death, r: &resume::Resume) -> Result<()> {
    let Some(check) = &death.during else {
        return Ok(());
    };
    let line = format!("boot {boot}: L1 died during {check}: {}\n", death.oops);
    let retries = out.join(format!("{check}.l1-retries"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&retries)
        .with_context(|| format!("cannot write {}", retries.display()))?;
    std::io::Write::write_all(&mut file, line.as_bytes())?;
    if r.failed().iter().any(|(c, _)| c == check) {
        std::fs::write(out.join(format!("{check}.l1-failed")), line)?;
    }
    Ok(())
}

/// The progress line after L1 died.
fn say_death(death: &resume::Death, r: &resume::Resume) {
    let during = death
        .during
        .as_ref()
        .map_or("between checks".to_string(), |c| {
            format!("during check {c}")
        });
    let next = match r.next() {
        Some(left) => format!("booting L1 again for {} remaining checks", left.len()),
        None if r.not_run().is_empty() => "no checks left".to_string(),
        None => format!("out of L1 boots ({})", resume::MAX_BOOTS),
    };
    let verdict = match &death.during {
        Some(c) if r.failed().iter().any(|(f, _)| f == c) => {
            format!("; {c} is a lane failure (L1 died in it twice)")
        }
        Some(c) => format!("; {c} runs again first"),
        None => String::new(),
    };
    eprintln!(
        "nested: L1 died {during} (oops: {}){verdict}; {next}",
        death.oops
    );
}

/// Creates `out` and removes the previous lane's results from it.
fn prepare_out(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = [
            ".trace",
            ".stdout",
            ".stderr",
            ".code",
            ".log",
            ".l1-retries",
            ".l1-failed",
        ]
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
