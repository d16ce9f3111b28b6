//! Building the guest executor: a static, no_std binary with its own flags.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The only target the guest is built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `/init` for the guest (incrementally) and returns its path.
///
/// The guest needs `panic=abort` and static linking, which differ from the
/// workspace profile, so it gets its own target directory and RUSTFLAGS.
pub fn build(workspace: &Path) -> Result<PathBuf> {
    let target_dir = workspace.join("target").join("guest");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "guest",
            "--bin",
            "schedtape-init",
            "--features",
            "executor",
        ])
        .args(["--release", "--target", GUEST_TARGET, "--target-dir"])
        .arg(&target_dir)
        .env(
            "RUSTFLAGS",
            "-C panic=abort -C target-feature=+crt-static -C relocation-model=static",
        )
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .status()
        .context("cannot run cargo to build the guest")?;
    if !status.success() {
        bail!("building the guest executor failed (see cargo's output above)");
    }
    let binary = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join("schedtape-init");
    if !binary.is_file() {
        bail!("the guest build produced no binary at {}", binary.display());
    }
    Ok(binary)
}
