//! L1's ingredients from Debian: the 6.12 cloud kernel (its `vmlinuz` and the
//! modules the lane loads) and `busybox-static`, fetched with `apt-get download`
//! (no root needed), extracted with `dpkg-deb -x` and cached under
//! `~/.cache/schedtape/nested/<kernel package version>/` (a marker written last).
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The kernel package pinned for L1 (what apt offered when the lane was written).
pub const PINNED_KERNEL: &str = "linux-image-6.12.118+deb12-cloud-amd64-unsigned";
/// L1's userland.
const BUSYBOX: &str = "busybox-static";
/// Modules L1 loads, in load order: `kvm-amd` needs `kvm` needs `irqbypass`;
/// `virtio_blk` carries the lane's disks (virtio-pci and ext4 are built in).
pub const MODULES: [&str; 4] = ["irqbypass", "kvm", "kvm-amd", "virtio_blk"];
/// Written last into a cache entry: its presence means the entry is whole.
const MARKER: &str = "complete";

/// A cached, extracted set of L1 ingredients.
#[derive(Debug, Clone)]
pub struct Ingredients {
    /// The kernel package these came from (`name=version`).
    pub kernel_package: String,
    pub vmlinuz: PathBuf,
    pub busybox: PathBuf,
    /// Decompressed modules, in [`MODULES`] order.
    pub modules: Vec<PathBuf>,
}

/// The cache entry's directory for one kernel package version.
fn cache_dir(version: &str) -> Result<PathBuf> {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set: no place for the nested lane's cache")?;
    Ok(home.join("schedtape").join("nested").join(version))
}

/// Whether L1 can be had here: a whole cache entry, or a 6.12 cloud kernel
/// that apt offers (network access is not probed); else why not.
pub fn available() -> Result<(), String> {
    let cached = cache_dir("")
        .ok()
        .and_then(|base| std::fs::read_dir(base).ok())
        .is_some_and(|entries| entries.flatten().any(|e| e.path().join(MARKER).is_file()));
    if cached {
        return Ok(());
    }
    choose_kernel_quietly()
        .map(drop)
        .map_err(|e| format!("{e:#}"))
}

/// The cached ingredients, fetched first when missing.
pub fn ensure() -> Result<Ingredients> {
    let (package, version) = choose_kernel()?;
    let dir = cache_dir(&version)?;
    let ingredients = layout(&dir, &package, &version);
    if dir.join(MARKER).is_file() {
        return Ok(ingredients);
    }
    eprintln!("nested: fetching {package} {version} and {BUSYBOX} from Debian");
    fetch_into(&dir, &package)?;
    std::fs::write(dir.join(MARKER), format!("{package}={version}\n"))
        .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(ingredients)
}

fn layout(dir: &Path, package: &str, version: &str) -> Ingredients {
    Ingredients {
        kernel_package: format!("{package}={version}"),
        vmlinuz: dir.join("vmlinuz"),
        busybox: dir.join("busybox"),
        modules: MODULES
            .iter()
            .map(|m| dir.join(format!("{m}.ko")))
            .collect(),
    }
}

/// The pinned kernel package when apt still offers it, else the newest 6.12
/// cloud image it offers (said on stderr); with its candidate version.
fn choose_kernel() -> Result<(String, String)> {
    let (package, version) = choose_kernel_quietly()?;
    let why = if package == PINNED_KERNEL {
        "pinned".to_string()
    } else {
        format!("the pinned {PINNED_KERNEL} is gone; newest 6.12 cloud image")
    };
    eprintln!("nested: L1 kernel {package} {version} ({why})");
    Ok((package, version))
}

fn choose_kernel_quietly() -> Result<(String, String)> {
    if let Some(v) = candidate(PINNED_KERNEL)? {
        return Ok((PINNED_KERNEL.to_string(), v));
    }
    let names = output(Command::new("apt-cache").args(["pkgnames", "linux-image-6.12."]))?;
    let mut offered = Vec::new();
    for name in names.lines().filter(|n| is_cloud_image(n)) {
        if let Some(v) = candidate(name)? {
            offered.push((name.to_string(), v));
        }
    }
    offered
        .into_iter()
        .max_by(|a, b| compare_versions(&a.1, &b.1))
        .with_context(|| {
            format!(
                "apt offers neither {PINNED_KERNEL} nor any other 6.12 cloud kernel \
                 (run `apt-get update`, or check the bookworm-security source)"
            )
        })
}

/// `linux-image-6.12.N+deb12-cloud-amd64-unsigned`.
fn is_cloud_image(name: &str) -> bool {
    name.starts_with("linux-image-6.12.") && name.ends_with("-cloud-amd64-unsigned")
}

/// apt's candidate version of `package`, if it has one.
fn candidate(package: &str) -> Result<Option<String>> {
    let text = output(Command::new("apt-cache").args(["policy", package]))?;
    Ok(text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string))
}

/// Orders Debian versions with `dpkg --compare-versions`.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let gt = Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success());
    if gt {
        std::cmp::Ordering::Greater
    } else if a == b {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    }
}

/// Downloads both packages into a temp dir, extracts them, and keeps what L1 needs in `dir`.
fn fetch_into(dir: &Path, kernel_package: &str) -> Result<()> {
    let tmp = tempfile_dir()?;
    let status = Command::new("apt-get")
        .current_dir(&tmp)
        .args(["download", "-q", kernel_package, BUSYBOX])
        .status()
        .context("cannot run apt-get (the nested lane fetches L1 from Debian)")?;
    if !status.success() {
        bail!("apt-get download {kernel_package} {BUSYBOX} failed: {status}");
    }
    let tree = tmp.join("tree");
    for deb in debs(&tmp)? {
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&tree)
            .status()
            .context("cannot run dpkg-deb")?;
        if !status.success() {
            bail!("dpkg-deb -x {} failed: {status}", deb.display());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let vmlinuz = find_one(&tree.join("boot"), |n| n.starts_with("vmlinuz-"))?;
    copy(&vmlinuz, &dir.join("vmlinuz"))?;
    copy(&tree.join("bin/busybox"), &dir.join("busybox"))?;
    let modules = find_one(&tree.join("lib/modules"), |_| true)?;
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    for m in MODULES {
        let file = format!("{m}.ko.xz");
        let Some(found) = find_file(&modules, &file) else {
            if builtin.lines().any(|l| l.ends_with(&format!("/{m}.ko"))) {
                bail!("{m} is built into this kernel; the lane expects it as a module");
            }
            bail!("{file} is not in {kernel_package}");
        };
        let out = Command::new("xz")
            .arg("-dc")
            .arg(&found)
            .output()
            .context("cannot run xz (install xz-utils)")?;
        if !out.status.success() {
            bail!("xz -dc {} failed", found.display());
        }
        std::fs::write(dir.join(format!("{m}.ko")), out.stdout)
            .with_context(|| format!("cannot write {m}.ko"))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// A fresh directory under the system temp dir (apt-get writes the .debs there).
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("schedtape-nested-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    out.sort();
    if out.len() != 2 {
        bail!("apt-get download left {} packages, expected 2", out.len());
    }
    Ok(out)
}

/// The one entry of `dir` whose name passes `keep`.
fn find_one(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one match in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}

/// The first file named `name` under `dir`, recursively.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(p) = find_file(&path, name) {
                return Some(p);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// Command output as text; a failing command is an error.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_6_12_cloud_images_are_fallbacks() {
        assert!(is_cloud_image(PINNED_KERNEL));
        assert!(is_cloud_image(
            "linux-image-6.12.200+deb12-cloud-amd64-unsigned"
        ));
        assert!(!is_cloud_image("linux-image-6.12.118+deb12-amd64-unsigned"));
        assert!(!is_cloud_image(
            "linux-image-6.12.118+deb12-cloud-amd64-dbg"
        ));
        assert!(!is_cloud_image("linux-image-6.1.0-30-cloud-amd64-unsigned"));
    }

    #[test]
    fn the_cache_entry_holds_the_modules_in_load_order() {
        let i = layout(Path::new("/c"), "k", "1.0");
        assert_eq!(i.kernel_package, "k=1.0");
        let names: Vec<_> = i.modules.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["irqbypass.ko", "kvm.ko", "kvm-amd.ko", "virtio_blk.ko"]
        );
    }
}
