//! `cargo xtask test`: lints, the kernel, a probe of the machine, every
//! workspace test, then the VM suites; ends with a table of what ran and skipped.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};
use clap::Args;

use vmm::test_skip::{self, Need};

use crate::kernel::{self, BuildOpts, ResolveOpts};
use crate::test_probe::Machine;
use crate::test_summary::{self, Counts, Expectations, Phase};

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
    /// Run only the nested-virtualisation lane (our VMM inside an L1 under QEMU TCG).
    #[arg(long, conflicts_with_all = ["no_e2e", "e2e_only", "only"])]
    pub nested: bool,
    /// Run only these phases (format, clippy, tests, kvm-long, e2e, nested).
    #[arg(long, value_delimiter = ',', value_parser = PHASES)]
    pub only: Vec<String>,
    /// Require NEED even where the probe finds it absent, so that its tests
    /// must run (kvm, cpuid, guest-debug, kvm-linux-boot, kernel, qemu, pahole, nested-l1):
    /// for a CI runner known to have it.
    #[arg(long, value_delimiter = ',', value_parser = parse_need)]
    pub require: Vec<Need>,
}

/// Environment variables for a phase's cargo.
type Env = [(String, String)];

/// Every phase, in the order they run.
const PHASES: [&str; 6] = ["format", "clippy", "tests", "kvm-long", "e2e", "nested"];

/// The e2e test target of the nested lane, which runs as its own phase.
const NESTED_TARGET: &str = "nested";

fn parse_need(name: &str) -> Result<Need, String> {
    Need::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Need::ALL.iter().map(|n| n.name()).collect();
        format!(
            "{name:?} is no prerequisite; use one of {}",
            names.join(", ")
        )
    })
}

impl TestArgs {
    fn selected(&self, phase: &str) -> bool {
        if self.nested {
            return phase == "nested";
        }
        if !self.only.is_empty() {
            return self.only.iter().any(|p| p == phase);
        }
        match phase {
            "format" | "clippy" => !self.no_lint && !self.e2e_only,
            "tests" => !self.e2e_only,
            _ => !self.no_e2e,
        }
    }
}

/// Runs each phase in order, stops at the first failure, and ends with the
/// summary table; an unexpected skip fails the run.
pub fn run(args: &TestArgs) -> Result<ExitCode> {
    let mut done: Vec<Phase> = Vec::new();
    let lint: [(&str, &[&str]); 2] = [
        ("format", &["fmt", "--all", "--", "--check"]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    for (name, cargo_args) in lint {
        if args.selected(name) {
            done.push(cargo(name, cargo_args, &[], None)?);
            if !done.last().is_some_and(|p| p.ok) {
                return finish(&done, &Expectations::default());
            }
        }
    }
    // The kernel is built before any test runs, so that no test needing it skips.
    if args.selected("e2e") || args.selected("nested") {
        prepare_e2e()?;
    }
    let machine = Machine::probe();
    let mut exp = Expectations::default();
    for need in Need::ALL {
        if machine.has(need).is_ok() || args.require.contains(&need) || need.required() {
            exp.required.insert(need);
        }
    }
    eprintln!(
        "xtask test: this machine (tests needing what is present or required must run):\n{}",
        machine.describe(&exp.required)
    );
    let log_dir = target_dir().join("schedtape-skips");
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let mut env: Vec<(String, String)> = exp
        .required
        .iter()
        .map(|n| (n.require_env().to_string(), "1".to_string()))
        .collect();
    if let Some(dir) = &machine.kernel_dir {
        env.push((test_skip::KERNEL_DIR_ENV.into(), dir.display().to_string()));
    }
    let mut e2e_env = env.clone();
    // Kernel-dependent e2e tests fail instead of skipping.
    e2e_env.push(("SCHEDTAPE_E2E".into(), "1".into()));
    // Linux's early boot from the bzImage runs even where /dev/kvm emulates
    // instructions (~3 min of decompression there): no skip for slowness.
    let mut kvm_long_env = e2e_env.clone();
    kvm_long_env.push(("SCHEDTAPE_BZIMAGE_EARLY_BOOT".into(), "1".into()));
    let mut e2e_args = vec!["test", "-p", "e2e"];
    let targets = e2e_targets()?;
    for t in targets.iter().filter(|t| *t != NESTED_TARGET) {
        e2e_args.extend(["--test", t.as_str()]);
    }
    e2e_args.extend(["--", "--ignored", "--test-threads=1"]);
    let nested_args = [
        "test",
        "-p",
        "e2e",
        "--test",
        NESTED_TARGET,
        "--",
        "--ignored",
        "--test-threads=1",
    ];
    let tests: [(&str, &[&str], &Env); 4] = [
        ("tests", &["test", "--workspace"], &env),
        // After the kernel build: 1,000 freeze/thaw cycles of 8 vCPUs, and
        // Linux reading our ACPI tables on the KVM backend.
        (
            "kvm-long",
            &[
                "test",
                "-p",
                "vmm",
                "--test",
                "kvm_freeze",
                "--test",
                "kvm_linux_acpi",
                "--",
                "--ignored",
            ],
            &kvm_long_env,
        ),
        // The QEMU lane, then the nested one (one L1 boot for all its checks).
        ("e2e", &e2e_args, &e2e_env),
        ("nested", &nested_args, &e2e_env),
    ];
    for (name, cargo_args, env) in tests {
        if args.selected(name) {
            done.push(cargo(name, cargo_args, env, Some(&log_dir))?);
            if !done.last().is_some_and(|p| p.ok) {
                break;
            }
        }
    }
    finish(&done, &exp)
}

/// Prints the summary table; fails on a failed phase or an unexpected skip.
fn finish(done: &[Phase], exp: &Expectations) -> Result<ExitCode> {
    let (table, unexpected) = test_summary::table(done, exp);
    eprintln!("\nxtask test: summary\n{table}");
    if let Some(p) = done.iter().find(|p| !p.ok) {
        eprintln!("xtask test: {} failed", p.name);
        return Ok(ExitCode::FAILURE);
    }
    if unexpected > 0 {
        eprintln!(
            "xtask test: {unexpected} unexpected skip(s): a prerequisite this run requires was reported missing"
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("xtask test: all passed");
    Ok(ExitCode::SUCCESS)
}

/// The `[[test]]` targets of the e2e crate (tests/Cargo.toml).
fn e2e_targets() -> Result<Vec<String>> {
    let path = crate::workspace_root().join("tests/Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    Ok(test_names(&manifest))
}

fn test_names(manifest: &toml::Value) -> Vec<String> {
    manifest
        .get("test")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
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
    let mut needs = crate::prereq::for_tools(true, &opts);
    // The payload tests pack Debian's stress-ng into the guest.
    needs.need(&["stress-ng"], "the payload tests");
    // The sched_ext tests run schedtape's own BPF scheduler (clang, autotools).
    crate::scheduler::need_build_packages(&mut needs);
    needs.ensure()?;
    let scx = crate::scheduler::build(&crate::workspace_root())?;
    eprintln!("xtask test: BPF scheduler {}", scx.display());
    let image = kernel::resolve(&opts)?;
    image.require_options()?;
    eprintln!("xtask test: kernel {}", image.boot_image().display());
    Ok(())
}

/// Runs one cargo phase with `env`, echoing its output and counting its
/// tests; with `log_dir` the tests log their skips to `<log_dir>/<phase>.log`.
fn cargo(phase: &str, args: &[&str], env: &Env, log_dir: Option<&Path>) -> Result<Phase> {
    eprintln!("xtask test: {phase}: cargo {}", args.join(" "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.args(args).stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = log_dir.map(|d| d.join(format!("{phase}.log")));
    if let Some(log) = &log {
        let _ = std::fs::remove_file(log);
        cmd.env(test_skip::LOG_ENV, log);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run cargo for {phase}"))?;
    let mut counts = Counts::default();
    let stdout = child.stdout.take().context("cargo's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.with_context(|| format!("reading cargo's output for {phase}"))?;
        println!("{line}");
        counts.add_line(&line);
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for cargo ({phase})"))?;
    let skips = log
        .and_then(|l| std::fs::read_to_string(l).ok())
        .map(|text| test_summary::parse_log(&text))
        .unwrap_or_default();
    Ok(Phase {
        name: phase.to_string(),
        ok: status.success(),
        counts,
        skips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> TestArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            test: TestArgs,
        }
        let mut argv = vec!["test"];
        argv.extend(line);
        <Cli as clap::Parser>::parse_from(argv).test
    }

    #[test]
    fn nested_runs_by_default_and_alone_when_asked() {
        let only_nested = args(&["--nested"]);
        let picked: Vec<&str> = PHASES
            .into_iter()
            .filter(|p| only_nested.selected(p))
            .collect();
        assert_eq!(picked, ["nested"]);
        let all = args(&[]);
        let picked: Vec<&str> = PHASES.into_iter().filter(|p| all.selected(p)).collect();
        assert_eq!(picked, PHASES);
        assert!(args(&["--only", "e2e,nested"]).selected("nested"));
        assert!(!args(&["--no-e2e"]).selected("nested"));
    }

    #[test]
    fn the_e2e_targets_include_the_nested_lane_to_leave_out() {
        let names = e2e_targets().unwrap();
        assert!(names.iter().any(|n| n == "qemu"), "{names:?}");
        assert!(names.iter().any(|n| n == NESTED_TARGET), "{names:?}");
    }
}
