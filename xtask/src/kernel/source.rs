//! Kernel source trees: Debian's `linux-source-6.12` (downloaded and unpacked once
//! into the cache) or a user's tree (`--src`), each with the version that keys the cache.
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::cache::{self, hex, sanitize};
use super::deps;
use super::patches::{self, Patch};

/// The Debian source package schedtape builds by default.
pub const DEBIAN_PACKAGE: &str = "linux-source-6.12";
/// Cache-entry origin for kernels built from [`DEBIAN_PACKAGE`].
pub const DEBIAN_ORIGIN: &str = "debian:linux-source-6.12";

/// A kernel source tree ready to configure.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub dir: PathBuf,
    /// `debian:…` or `src:<path>`.
    pub origin: String,
    /// The version part of the cache key.
    pub version: String,
    /// `make kernelversion`.
    pub kernel_version: String,
    /// The patches applied to it (only ever to the Debian tree).
    pub patches: Vec<String>,
    /// For the Debian tree: a shared lock on it, held while the tree is in
    /// use, so that no other build removes it as superseded.
    _lock: Option<Arc<File>>,
}

/// Downloads (if needed) and unpacks Debian's kernel source under `<root>/src`,
/// with `patches` applied (the directory name carries the series).
pub fn debian(root: &Path, patches: &[Patch]) -> Result<SourceTree> {
    let deb = download(&root.join("downloads"))?;
    let version = run_capture(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Version"),
    )
    .with_context(|| format!("cannot read the version of {}", deb.display()))?;
    let src_root = root.join("src");
    let mut name = format!("{DEBIAN_PACKAGE}_{}", sanitize(&version));
    if !patches.is_empty() {
        name.push_str(&format!("+p{}", patches::series_id(patches)));
    }
    let dir = src_root.join(&name);
    fs::create_dir_all(&src_root)?;
    let lock = tree_lock(&src_root, &name)?;
    lock.lock_shared()
        .with_context(|| format!("cannot lock the source tree {}", dir.display()))?;
    cache::remove_stale_temps(&src_root);
    if !dir.join("Makefile").is_file() {
        let source = format!("{DEBIAN_PACKAGE} {version}");
        unpack(&deb, &src_root, &dir, &source, patches)?;
    }
    remove_unused_trees(&src_root, &dir);
    let kernel_version = kernel_version(&dir)?;
    Ok(SourceTree {
        dir,
        origin: DEBIAN_ORIGIN.to_string(),
        version,
        kernel_version,
        patches: patches.iter().map(|p| p.name.clone()).collect(),
        _lock: Some(Arc::new(lock)),
    })
}

/// The lock file of the unpacked tree `name` (beside it, hidden).
fn tree_lock(src_root: &Path, name: &str) -> Result<File> {
    let path = src_root.join(format!(".{name}.lock"));
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Removes unpacked Debian trees other than `keep` (another version or patch
/// series, ~1.7 GB each) that no build holds: each is renamed aside first, so
/// that a removal cut short never looks like a complete tree.
fn remove_unused_trees(src_root: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(src_root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{DEBIAN_PACKAGE}_")) || path == keep || !path.is_dir() {
            continue;
        }
        let Ok(lock) = tree_lock(src_root, &name) else {
            continue;
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue, // a build is using it
            Err(TryLockError::Error(_)) => continue,
        }
        let aside = src_root.join(format!(".tmp-remove-{name}-{}", std::process::id()));
        if fs::rename(&path, &aside).is_ok() {
            eprintln!("kernel: removing the superseded source {}", path.display());
            let _ = fs::remove_dir_all(&aside);
        }
        let _ = fs::remove_file(src_root.join(format!(".{name}.lock")));
    }
}

/// `apt-get download` into `downloads`; falls back to a .deb fetched earlier.
fn download(downloads: &Path) -> Result<PathBuf> {
    fs::create_dir_all(downloads)?;
    let fetch = || {
        let mut cmd = Command::new("apt-get");
        cmd.arg("-q");
        if deps::is_root() {
            // apt's `_apt` sandbox user cannot write into root's cache directory.
            cmd.args(["-o", "APT::Sandbox::User=root"]);
        }
        cmd.args(["download", DEBIAN_PACKAGE])
            .current_dir(downloads)
            .stdout(std::io::stderr())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    eprintln!(
        "kernel: apt-get download {DEBIAN_PACKAGE} (into {})",
        downloads.display()
    );
    let mut ok = fetch();
    if !ok && deps::is_root() {
        eprintln!("kernel: download failed; running apt-get update and retrying");
        ok = deps::apt(&["update"], &[]).is_ok() && fetch();
    }
    let newest = fs::read_dir(downloads)?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{DEBIAN_PACKAGE}_")) && n.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    match newest {
        Some(deb) => {
            if !ok {
                eprintln!("kernel: download failed; using {}", deb.display());
            }
            Ok(deb)
        }
        None => bail!(
            "cannot download {DEBIAN_PACKAGE} with apt-get (is a Debian bookworm/trixie source configured?); \
             or build your own tree with `cargo xtask kernel build --src DIR`"
        ),
    }
}

/// `dpkg-deb -x`, then the inner tarball, then `patches`, into a temp dir
/// renamed to `dir` at the end (`source` names the package in errors).
fn unpack(deb: &Path, src_root: &Path, dir: &Path, source: &str, patches: &[Patch]) -> Result<()> {
    let tmp = src_root.join(format!(".tmp-unpack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("tree"))?;
    let started = std::time::Instant::now();
    eprintln!("kernel: unpacking {}", deb.display());
    let result = (|| -> Result<()> {
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(tmp.join("deb")))?;
        let tarball = tmp
            .join("deb/usr/src")
            .join(format!("{DEBIAN_PACKAGE}.tar.xz"));
        if !tarball.is_file() {
            bail!("{} has no usr/src/{DEBIAN_PACKAGE}.tar.xz", deb.display());
        }
        run(Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(tmp.join("tree")))?;
        let inner = tmp.join("tree").join(DEBIAN_PACKAGE);
        if !inner.join("Makefile").is_file() {
            bail!(
                "the tarball in {} has no {DEBIAN_PACKAGE}/Makefile",
                deb.display()
            );
        }
        patches::apply(&inner, source, patches)?;
        match fs::rename(&inner, dir) {
            Ok(()) => Ok(()),
            // Another build unpacked the same tree first.
            Err(_) if dir.join("Makefile").is_file() => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("cannot move the source into {}", dir.display()))
            }
        }
    })();
    let _ = fs::remove_dir_all(&tmp);
    result?;
    eprintln!(
        "kernel: unpacked into {} in {:.0?}",
        dir.display(),
        started.elapsed()
    );
    Ok(())
}

/// A user's tree: keyed by kernel version plus git commit (and a hash of local
/// changes), or by its path when it is not a git checkout.
pub fn user(dir: &Path) -> Result<SourceTree> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no kernel source at {}", dir.display()))?;
    if !dir.join("Makefile").is_file() || !dir.join("Kconfig").is_file() {
        bail!(
            "{} is not a kernel source tree (no Makefile and Kconfig)",
            dir.display()
        );
    }
    let kernel_version = kernel_version(&dir)?;
    let git = |args: &[&str]| run_capture(Command::new("git").arg("-C").arg(&dir).args(args)).ok();
    // Only the tree's own checkout counts, not a repository it happens to sit inside.
    let own_checkout =
        git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| Path::new(&top) == dir);
    let version = match git(&["rev-parse", "--short=12", "HEAD"]).filter(|_| own_checkout) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            match dirty {
                true => {
                    let diff = Command::new("git")
                        .arg("-C")
                        .arg(&dir)
                        .args(["diff", "HEAD"])
                        .output()?
                        .stdout;
                    format!(
                        "{kernel_version}-g{commit}-dirty{}",
                        hex(&Sha256::digest(&diff)[..4])
                    )
                }
                false => format!("{kernel_version}-g{commit}"),
            }
        }
        None => {
            eprintln!(
                "kernel: {} is not a git checkout; its cache entry is keyed by path only",
                dir.display()
            );
            let path_hash = hex(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..4]);
            format!("{kernel_version}-src{path_hash}")
        }
    };
    Ok(SourceTree {
        origin: format!("src:{}", dir.display()),
        dir,
        version,
        kernel_version,
        patches: Vec::new(),
        _lock: None,
    })
}

/// `make -s kernelversion`.
fn kernel_version(dir: &Path) -> Result<String> {
    run_capture(
        Command::new("make")
            .args(["-s", "--no-print-directory", "-C"])
            .arg(dir)
            .arg("kernelversion"),
    )
    .with_context(|| format!("cannot read the kernel version of {}", dir.display()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its trimmed stdout; fails on a non-zero exit.
fn run_capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
