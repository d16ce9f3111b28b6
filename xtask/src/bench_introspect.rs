//! `cargo xtask bench introspect`: cold and cached vmlinux resolution and
//! snapshot read cost per CPU (runs `vmm`'s `introspect` bench).
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;

/// Options of `bench introspect`.
#[derive(Debug, Args)]
pub struct IntrospectArgs {
    /// The vmlinux to resolve (default: the cached project kernel's).
    pub vmlinux: Option<PathBuf>,
}

/// Runs the bench in release mode and passes its exit status on.
pub fn run(args: &IntrospectArgs) -> Result<ExitCode> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate::workspace_root()).args([
        "bench",
        "-q",
        "-p",
        "vmm",
        "--bench",
        "introspect",
        "--",
    ]);
    if let Some(v) = &args.vmlinux {
        cmd.arg(v);
    }
    let status = cmd.status().context("cannot run cargo bench")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
