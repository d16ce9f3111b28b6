//! `cargo xtask`: project automation that needs more than `cargo`.
mod bench;
mod bench_introspect;
mod bench_vmm;
mod bundle;
mod decide;
mod guest;
mod identity;
mod initramfs;
mod kernel;
mod limits;
mod mutants;
mod nested;
mod outputs;
mod prereq;
mod rerun;
mod run_checks;
mod scenario_pack;
mod scenario_run;
mod scheduler;
mod signals;
mod stage;
mod test_cmd;
mod test_probe;
mod test_summary;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "schedtape project automation")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the whole test suite: lints, workspace tests, end-to-end VM tests.
    Test(test_cmd::TestArgs),
    /// Build, locate and check the guest kernel.
    Kernel {
        #[command(subcommand)]
        cmd: kernel::KernelCmd,
    },
    /// Run something in a VM and record a trace.
    ///
    /// `cargo xtask run --from B.trace [options]` re-runs an archived trace.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Run {
        #[command(subcommand)]
        what: Option<RunWhat>,
        #[command(flatten)]
        args: Box<scenario_run::RunArgs>,
    },
    /// Gather what a run needs on a machine without Rust (this program, /init, the kernel).
    Bundle(bundle::BundleArgs),
    /// Measure the project against its goals.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Mutation testing of the core modules with cargo-mutants (installed when missing).
    ///
    /// Slow (minutes per module): run it nightly or weekly, not on every CI run.
    /// Exit status: 0 every viable mutant caught, 1 some missed or timed out.
    Mutants(mutants::MutantsArgs),
    /// The nested-virtualisation lane: our KVM VMM inside an L1 Linux under QEMU TCG.
    Nested {
        #[command(subcommand)]
        cmd: nested::NestedCmd,
    },
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Time to /init: our QEMU launch path against plain QEMU, interleaved, as a ratio.
    Boot(bench::BootArgs),
    /// Kernel introspection: cold/cached vmlinux resolution, snapshot read cost per CPU.
    Introspect(bench_introspect::IntrospectArgs),
    /// Our KVM VMM vs QEMU microvm with the test guest: start-up time, RSS, freeze latency.
    Vmm(bench_vmm::VmmArgs),
    /// Inside the nested lane's L1: our KVM VMM vs QEMU -accel kvm on Linux, as ratios.
    Nested(nested::bench::BenchArgs),
    /// (inside L1) The rounds of `bench nested`.
    #[command(hide = true)]
    NestedL1(nested::bench::l1::L1Args),
}

#[derive(Debug, Subcommand)]
enum RunWhat {
    /// Boot the kernel, run a scenario, write its trace.
    ///
    /// Exit status: 0 ran and every verdict passed, 1 a verdict failed, 2 bad input
    /// (nothing ran), 3 infrastructure failure (no kernel, VM died, guest did not finish).
    Scenario(Box<scenario_run::RunArgs>),
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::from(3)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Cmd::Kernel { cmd } => kernel::run(cmd),
        Cmd::Run {
            what: Some(RunWhat::Scenario(args)),
            ..
        } => Ok(scenario_run::run(&args)),
        Cmd::Run { what: None, args } => Ok(scenario_run::run(&args)),
        Cmd::Test(args) => test_cmd::run(&args),
        Cmd::Bundle(args) => bundle::run(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Bench {
            what: BenchWhat::Boot(args),
        } => bench::boot(&args),
        Cmd::Bench {
            what: BenchWhat::Introspect(args),
        } => bench_introspect::run(&args),
        Cmd::Bench {
            what: BenchWhat::Vmm(args),
        } => bench_vmm::run(&args),
        Cmd::Bench {
            what: BenchWhat::Nested(args),
        } => nested::bench::run(&args),
        Cmd::Bench {
            what: BenchWhat::NestedL1(args),
        } => nested::bench::l1::run(&args),
        Cmd::Mutants(args) => mutants::run(&args, &workspace_root()),
        Cmd::Nested { cmd } => nested::run(&cmd),
    }
}

/// Bytes of the files under `dir`, recursively (0 for what cannot be read).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// The workspace this xtask belongs to: `$SCHEDTAPE_ROOT`, else the tree it
/// was built in, else (a binary carried to another machine) the current directory.
fn workspace_root() -> std::path::PathBuf {
    let built_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let built_in = built_in.parent().unwrap_or(built_in).to_path_buf();
    std::env::var_os("SCHEDTAPE_ROOT")
        .map(std::path::PathBuf::from)
        .or_else(|| (!built_in.join("fixtures").is_dir()).then(|| std::env::current_dir().ok())?)
        .unwrap_or(built_in)
}
