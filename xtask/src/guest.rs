//! Building the guest executor: a static, no_std binary with its own flags.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The only target the guest is built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// A guest build slower than this is announced (an up-to-date one is not).
const SLOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds `/init` for the guest (incrementally) and returns its path.
///
/// The guest needs `panic=abort` and static linking, which differ from the
/// workspace profile, so it gets its own target directory and RUSTFLAGS.
pub fn build(workspace: &Path) -> Result<PathBuf> {
    let target_dir = workspace.join("target").join("guest");
    let started = std::time::Instant::now();
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
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
        .spawn()
        .context("cannot run cargo to build the guest")?;
    // An up-to-date guest takes a fraction of a second; say so when it builds.
    let mut announced = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !announced && started.elapsed() >= SLOW {
            eprintln!(
                "guest: building /init (static, no_std, LTO; the first build takes a minute)"
            );
            announced = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if announced {
        eprintln!(
            "guest: built /init in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
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
