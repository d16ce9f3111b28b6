//! Host packages the kernel build needs: found with `dpkg-query`, installed with
//! `apt-get` when we are root, else named in the exact command to run.
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Debian packages for building the kernel (`dwarves` is pahole, for BTF;
/// `lz4` compresses the bzImage).
pub const BUILD_PACKAGES: &[&str] = &[
    "make",
    "gcc",
    "libc6-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "cpio",
    "xz-utils",
    "patch",
    "lz4",
];

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The packages of `wanted` that dpkg does not list as installed; `None` without dpkg.
pub fn missing(wanted: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\\n"])
        .args(wanted)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the rest.
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    Some(
        wanted
            .iter()
            .filter(|p| !installed.contains(p))
            .map(|p| (*p).to_string())
            .collect(),
    )
}

/// Makes sure `wanted` are installed, installing them as root; `purpose` goes in messages.
pub fn ensure(wanted: &[&str], purpose: &str) -> Result<()> {
    let Some(missing) = missing(wanted) else {
        eprintln!(
            "kernel: no dpkg here; assuming {purpose} packages are present ({})",
            wanted.join(" ")
        );
        return Ok(());
    };
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!(
            "missing packages for {purpose}: {}\ninstall them with:\n  sudo {line}",
            missing.join(" ")
        );
    }
    eprintln!("kernel: installing {purpose} packages: {line}");
    if apt(&["install", "-y", "--no-install-recommends"], &missing).is_err() {
        eprintln!("kernel: install failed; running apt-get update and retrying");
        apt(&["update"], &[])?;
        apt(&["install", "-y", "--no-install-recommends"], &missing)?;
    }
    Ok(())
}

/// Runs `apt-get ARGS PKGS` non-interactively, its output shown.
pub fn apt(args: &[&str], pkgs: &[String]) -> Result<()> {
    let status = Command::new("apt-get")
        .arg("-q")
        .args(args)
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!(
            "apt-get {} {} failed ({status})",
            args.join(" "),
            pkgs.join(" ")
        );
    }
    Ok(())
}
