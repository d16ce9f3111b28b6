//! Patches schedtape applies to the kernel source it builds by default:
//! `fixtures/kernel/patches/*.patch`, in name order, each `patch -p1` input
//! (text before the first `---` line is its description). A user's tree
//! (`--src`) is never patched.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::cache::hex;

/// One patch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The file name, e.g. `0001-x86-apic-lapic_timer_hz.patch`.
    pub name: String,
    pub text: Vec<u8>,
}

/// `fixtures/kernel/patches` in this workspace.
pub fn dir() -> PathBuf {
    crate::workspace_root().join("fixtures/kernel/patches")
}

/// Every `*.patch` in `dir`, sorted by name; none when the directory is absent.
pub fn load(dir: &Path) -> Result<Vec<Patch>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut patches = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || path.extension().is_none_or(|e| e != "patch") {
            continue; // editors' lock and backup files among them
        }
        let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        patches.push(Patch { name, text });
    }
    patches.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(patches)
}

/// Eight hex digits naming the series, for the patched source directory.
pub fn series_id(patches: &[Patch]) -> String {
    let mut h = Sha256::new();
    for p in patches {
        h.update(p.name.as_bytes());
        h.update(b"\n");
        h.update(&p.text);
    }
    hex(&h.finalize()[..4])
}

/// Applies `patches` to the tree at `dir` (unpacked from `source`), failing on
/// the first that does not apply exactly (no fuzz); a hunk that lands at an
/// offset is reported.
pub fn apply(dir: &Path, source: &str, patches: &[Patch]) -> Result<()> {
    for p in patches {
        let file = dir.join(format!(".schedtape-{}", p.name));
        fs::write(&file, &p.text).with_context(|| format!("cannot write {}", file.display()))?;
        let out = Command::new("patch")
            .args(["-p1", "--forward", "--batch", "--no-backup-if-mismatch"])
            .args(["--fuzz=0", "--reject-file=-", "-d"])
            .arg(dir)
            .arg("-i")
            .arg(&file)
            .output()
            .context("cannot run patch (install the `patch` package)");
        let _ = fs::remove_file(&file);
        let out = out?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "kernel patch {} does not apply to {source}:\n{stdout}{}",
                p.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!("kernel: applied {}", p.name);
        for line in stdout.lines().filter(|l| l.contains("offset")) {
            eprintln!("kernel:   {line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "line one\nline two\nline three\n";
    const PATCH: &str = "Describes the change.\n\n--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,4 @@\n line one\n+inserted\n line two\n line three\n";

    #[test]
    fn loads_patch_files_in_name_order_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["2-b.patch", "1-a.patch", ".#1-a.patch", "notes.txt"] {
            fs::write(tmp.path().join(name), name).unwrap();
        }
        let names: Vec<String> = load(tmp.path())
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["1-a.patch", "2-b.patch"]);
    }

    #[test]
    fn the_projects_patches_load() {
        let patches = load(&dir()).unwrap();
        assert!(patches.iter().any(|p| p.name.contains("lapic_timer_hz")));
    }

    #[test]
    fn a_missing_directory_is_no_patches() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(&tmp.path().join("none")).unwrap(), Vec::new());
    }

    #[test]
    fn the_series_id_changes_with_any_byte() {
        let a = vec![Patch {
            name: "1.patch".into(),
            text: PATCH.into(),
        }];
        let mut b = a.clone();
        b[0].text.push(b'\n');
        assert_eq!(series_id(&a).len(), 8);
        assert_ne!(series_id(&a), series_id(&b));
        assert_ne!(series_id(&a), series_id(&[]));
    }

    #[test]
    fn applies_cleanly_once_and_refuses_a_second_time() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f.txt"), FILE).unwrap();
        let patches = [Patch {
            name: "1.patch".into(),
            text: PATCH.into(),
        }];
        apply(tmp.path(), "f 1.0", &patches).unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("f.txt")).unwrap(),
            "line one\ninserted\nline two\nline three\n"
        );
        let err = apply(tmp.path(), "f 1.0", &patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1.patch does not apply to f 1.0"), "{err}");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no patch file or backup left behind"
        );
    }
}
