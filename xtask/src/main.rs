//! `cargo xtask`: project automation that needs more than `cargo`.
mod guest;
mod identity;
mod initramfs;
mod kernel;
mod scenario_run;

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "schedtape project automation")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the whole test suite: formatting check, clippy, and every workspace test.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Build, locate and check the guest kernel.
    Kernel {
        #[command(subcommand)]
        cmd: kernel::KernelCmd,
    },
    /// Run something in a VM and record a trace.
    Run {
        #[command(subcommand)]
        what: RunWhat,
    },
}

#[derive(Debug, Subcommand)]
enum RunWhat {
    /// Boot the kernel, run a scenario, write its trace.
    ///
    /// Exit status: 0 ran and completed, 2 bad input (nothing ran),
    /// 3 infrastructure failure (no kernel, VM died, guest did not finish).
    Scenario(scenario_run::RunArgs),
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
        Cmd::Run { what: RunWhat::Scenario(args) } => Ok(scenario_run::run(&args)),
        Cmd::Test { no_lint } => {
            let mut steps: Vec<(&str, Vec<&str>)> = Vec::new();
            if !no_lint {
                steps.push(("format", vec!["fmt", "--all", "--", "--check"]));
                steps.push((
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
            steps.push(("tests", vec!["test", "--workspace"]));
            for (name, cargo_args) in steps {
                eprintln!("xtask test: {name}: cargo {}", cargo_args.join(" "));
                let status = Command::new(cargo())
                    .args(&cargo_args)
                    .status()
                    .with_context(|| format!("cannot run cargo for {name}"))?;
                if !status.success() {
                    eprintln!("xtask test: {name} failed");
                    return Ok(ExitCode::FAILURE);
                }
            }
            eprintln!("xtask test: all passed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The workspace this xtask belongs to.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that invoked us, so toolchain overrides carry through.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}
