//! The kernel cache: `<cache>/kernels/<source-version>-<config-hash>/` holding
//! `bzImage`, `vmlinux`, `.config`, `identity.toml` and `build.log`. A build
//! happens in a `.tmp-*` sibling and is renamed into place only when complete.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::patches::Patch;

/// How the fragment is applied; part of the config hash so a change of method rebuilds.
pub const BASE_METHOD: &str = "ARCH=x86_64 allnoconfig KCONFIG_ALLCONFIG=<fragment>, olddefconfig";

/// The artifacts a complete cache entry holds.
pub const ARTIFACTS: &[&str] = &["bzImage", "vmlinux", ".config", IDENTITY];
pub const IDENTITY: &str = "identity.toml";

/// What a cached kernel was built from, written as `identity.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Where the source came from: `debian:linux-source-6.12` or `src:<path>`.
    pub origin: String,
    /// The cache key's version part (Debian package version, or kernel version + git id).
    pub source_version: String,
    /// `make kernelversion`.
    pub kernel_version: String,
    /// [`config_hash`] of the fragment and the patches.
    pub config_hash: String,
    /// Kernel patches applied to the source (file names; only the Debian tree's).
    #[serde(default)]
    pub patches: Vec<String>,
    pub base_method: String,
    /// RFC 3339, UTC.
    pub built_at: String,
    pub build_secs: u64,
    /// kbuild steps the compile printed (the next build's progress estimate).
    #[serde(default)]
    pub build_steps: Option<u64>,
}

/// `$XDG_CACHE_HOME/schedtape`, else `~/.cache/schedtape`.
pub fn root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("schedtape"));
    }
    let home =
        std::env::var_os("HOME").context("HOME is not set; cannot place the kernel cache")?;
    Ok(PathBuf::from(home).join(".cache/schedtape"))
}

pub fn kernels_dir(root: &Path) -> PathBuf {
    root.join("kernels")
}

/// First 16 hex digits of sha256 over the base method, the fragment's bytes
/// and the patches applied to the source (none: the hash of the fragment alone).
pub fn config_hash(fragment: &[u8], patches: &[Patch]) -> String {
    let mut h = Sha256::new();
    h.update(b"schedtape kernel config v1\n");
    h.update(BASE_METHOD.as_bytes());
    h.update(b"\n");
    h.update(fragment);
    for p in patches {
        h.update(b"\npatch ");
        h.update(p.name.as_bytes());
        h.update(b"\n");
        h.update(&p.text);
    }
    hex(&h.finalize()[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps a version usable as a directory name.
pub fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn entry_name(source_version: &str, config_hash: &str) -> String {
    format!("{}-{config_hash}", sanitize(source_version))
}

/// Reads a cache entry's identity if every artifact is there.
pub fn load_entry(dir: &Path) -> Option<Identity> {
    if !ARTIFACTS.iter().all(|a| dir.join(a).is_file()) {
        return None;
    }
    toml::from_str(&fs::read_to_string(dir.join(IDENTITY)).ok()?).ok()
}

/// The newest complete entry built from `origin` with `config_hash`.
pub fn find(kernels: &Path, origin: &str, config_hash: &str) -> Option<(PathBuf, Identity)> {
    entries(kernels)
        .into_iter()
        .filter(|(_, id)| id.origin == origin && id.config_hash == config_hash)
        .max_by(|(_, a), (_, b)| a.built_at.cmp(&b.built_at))
}

/// Removes `.tmp-…-<pid>` directories in `dir` (builds, unpacks, removals)
/// left by a process that died.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".tmp-")
            .and_then(|r| r.rsplit('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            eprintln!(
                "kernel: removing what an interrupted run left: {}",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Every complete entry in `kernels`.
pub fn entries(kernels: &Path) -> Vec<(PathBuf, Identity)> {
    let Ok(dirs) = fs::read_dir(kernels) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| load_entry(&e.path()).map(|id| (e.path(), id)))
        .collect()
}

/// The entries no build of the current recipe can use again: built with another
/// config or patch series than the one for their kind of source (`debian_hash`
/// for `debian_origin`, `src_hash` for a user's tree), and Debian builds older
/// than the newest one of the current recipe. A user's tree at another commit
/// keeps its entry (a bisect may come back to it).
pub fn superseded(
    entries: &[(PathBuf, Identity)],
    debian_origin: &str,
    debian_hash: &str,
    src_hash: &str,
) -> Vec<PathBuf> {
    let newest_debian = entries
        .iter()
        .filter(|(_, id)| id.origin == debian_origin && id.config_hash == debian_hash)
        .map(|(_, id)| id.built_at.as_str())
        .max();
    entries
        .iter()
        .filter(|(_, id)| {
            if id.origin == debian_origin {
                id.config_hash != debian_hash || Some(id.built_at.as_str()) < newest_debian
            } else {
                id.config_hash != src_hash
            }
        })
        .map(|(dir, _)| dir.clone())
        .collect()
}

/// The temp directory a build of `name` works in (unique to this process).
pub fn temp_dir(kernels: &Path, name: &str) -> PathBuf {
    kernels.join(format!(".tmp-{name}-{}", std::process::id()))
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(origin: &str, built_at: &str) -> Identity {
        Identity {
            origin: origin.into(),
            source_version: "6.12.1-1".into(),
            kernel_version: "6.12.1".into(),
            config_hash: "00112233aabbccdd".into(),
            patches: Vec::new(),
            base_method: BASE_METHOD.into(),
            built_at: built_at.into(),
            build_secs: 1,
            build_steps: None,
        }
    }

    fn write_entry(kernels: &Path, name: &str, id: &Identity) -> PathBuf {
        let dir = kernels.join(name);
        fs::create_dir_all(&dir).unwrap();
        for a in ["bzImage", "vmlinux", ".config"] {
            fs::write(dir.join(a), b"x").unwrap();
        }
        fs::write(dir.join(IDENTITY), toml::to_string(id).unwrap()).unwrap();
        dir
    }

    #[test]
    fn superseded_entries_are_other_recipes_and_older_debian_builds() {
        let entry = |name: &str, origin: &str, hash: &str, built_at: &str| {
            let mut id = identity(origin, built_at);
            id.config_hash = hash.into();
            (PathBuf::from(name), id)
        };
        let entries = [
            entry("deb-current", "debian:x", "d", "2026-01-02T00:00:00Z"),
            entry("deb-older-source", "debian:x", "d", "2026-01-01T00:00:00Z"),
            entry("deb-old-recipe", "debian:x", "old", "2026-01-03T00:00:00Z"),
            entry("src-commit-a", "src:/k", "s", "2026-01-01T00:00:00Z"),
            entry("src-commit-b", "src:/k", "s", "2026-01-02T00:00:00Z"),
            entry("src-old-fragment", "src:/k", "old", "2026-01-03T00:00:00Z"),
        ];
        let gone = superseded(&entries, "debian:x", "d", "s");
        assert_eq!(
            gone,
            ["deb-older-source", "deb-old-recipe", "src-old-fragment"].map(PathBuf::from)
        );
    }

    #[test]
    fn hash_is_stable_and_short() {
        let a = config_hash(b"CONFIG_A=y\n", &[]);
        // Pinned: without patches the hash is the one earlier versions computed,
        // so their cache entries (and users' `--src` builds) stay valid.
        assert_eq!(a, "f0a41dc17477c5b0");
        assert_eq!(a, config_hash(b"CONFIG_A=y\n", &[]));
        assert_ne!(a, config_hash(b"CONFIG_A=n\n", &[]));
        let patch = Patch {
            name: "1.patch".into(),
            text: b"--- a/x\n".to_vec(),
        };
        assert_ne!(a, config_hash(b"CONFIG_A=y\n", &[patch]));
    }

    #[test]
    fn entry_names_are_path_safe() {
        assert_eq!(
            entry_name("6.12.117-1~deb12u1", "abcd"),
            "6.12.117-1_deb12u1-abcd"
        );
    }

    #[test]
    fn finds_newest_complete_entry_of_origin() {
        let tmp = tempfile::tempdir().unwrap();
        let k = tmp.path();
        let h = "00112233aabbccdd";
        write_entry(
            k,
            &format!("old-{h}"),
            &identity("debian:x", "2024-01-01T00:00:00Z"),
        );
        let new = write_entry(
            k,
            &format!("new-{h}"),
            &identity("debian:x", "2025-01-01T00:00:00Z"),
        );
        write_entry(
            k,
            &format!("other-{h}"),
            &identity("src:/y", "2026-01-01T00:00:00Z"),
        );
        let partial = write_entry(
            k,
            &format!("partial-{h}"),
            &identity("debian:x", "2027-01-01T00:00:00Z"),
        );
        fs::remove_file(partial.join("vmlinux")).unwrap();
        write_entry(
            k,
            &format!(".tmp-x-{h}"),
            &identity("debian:x", "2028-01-01T00:00:00Z"),
        );
        let (dir, id) = find(k, "debian:x", h).unwrap();
        assert_eq!(dir, new);
        assert_eq!(id.built_at, "2025-01-01T00:00:00Z");
        assert!(find(k, "debian:x", "ffffffffffffffff").is_none());
    }
}
