//! A scenario's initramfs: the guest `/init`, the encoded scenario, its
//! payloads and scheduler, packed under target/schedtape in a file named for
//! its contents and held for as long as runs boot from it.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use trace_format::scenario::Scenario;

use crate::initramfs::Initramfs;

/// A packed initramfs, held (a shared lock on the file) for as long as runs
/// may boot from it, so that another run's pruning leaves it alone.
#[derive(Debug)]
pub(crate) struct PackedInitramfs {
    pub path: PathBuf,
    _held: std::fs::File,
}

/// `/init` and `/scenario.bin`, packed deterministically under target/ in a
/// file named for its contents, so runs of the same scenario with different
/// settings (topology, scheduler) at the same time do not share one.
pub(crate) fn pack_initramfs(
    root: &Path,
    init: &Path,
    scenario: &Scenario,
) -> Result<PackedInitramfs> {
    let mut fs = Initramfs::new();
    let init_bytes =
        std::fs::read(init).with_context(|| format!("cannot read {}", init.display()))?;
    fs.add_file("init", init_bytes, 0o755)?;
    let encoded = postcard::to_allocvec(scenario).context("cannot encode the scenario")?;
    fs.add_file("scenario.bin", encoded, 0o644)?;
    stage_payloads(&mut fs, scenario)?;
    crate::scheduler::stage(&mut fs, root, scenario)?;
    let dir = root.join("target/schedtape");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bytes = fs.to_bytes();
    let path = dir.join(format!(
        "{}-{}.cpio",
        scenario.name,
        crate::identity::sha256_hex16(&bytes)
    ));
    // Written aside and renamed: a concurrent run of the same bytes sees
    // either no file or the whole one.
    let partial = dir.join(format!(".{}.{}.partial", scenario.name, std::process::id()));
    let written = std::fs::write(&partial, &bytes).and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    let held = std::fs::File::open(&path)
        .and_then(|f| f.lock_shared().map(|()| f))
        .with_context(|| format!("cannot open {}", path.display()))?;
    prune_initramfs(&dir, &scenario.name, &path);
    Ok(PackedInitramfs { path, _held: held })
}

/// Other packings of scenario `name` that no run holds and that are older
/// than a few minutes (so not just written by a run about to lock them);
/// keeps target/schedtape from growing with every variant of a scenario.
fn prune_initramfs(dir: &Path, name: &str, keep: &Path) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // `<name>-<16 hex>.cpio`, or `<name>.cpio` as packed before hashing.
        let is_packing = file == format!("{name}.cpio")
            || file
                .strip_prefix(name)
                .and_then(|f| f.strip_prefix('-')?.strip_suffix(".cpio"))
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE));
        if !is_packing || !stale || path == keep {
            continue;
        }
        let unheld = std::fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if unheld {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Packs each declared payload at `/payloads/<name>` with its libraries.
fn stage_payloads(fs: &mut Initramfs, scenario: &Scenario) -> Result<()> {
    for p in &scenario.payloads {
        let host = crate::stage::find_program(&p.path)
            .with_context(|| format!("payload {:?}: cannot find its program", p.name))?;
        let staged = crate::stage::stage_binary(fs, &host, &format!("payloads/{}", p.name))
            .with_context(|| format!("payload {:?}", p.name))?;
        eprintln!(
            "  payload {}: {} (sha256 {}…, {} libraries)",
            p.name,
            host.display(),
            &staged.sha256[..12],
            staged.libraries.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prune_initramfs;
    use std::time::{Duration, SystemTime};

    #[test]
    fn only_stale_packings_of_the_same_scenario_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let hex = |c: char| c.to_string().repeat(16);
        let make = |name: &str, age_secs: u64| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
                .unwrap();
            path
        };
        let stale = make(&format!("smoke-{}.cpio", hex('a')), 3600);
        let fresh = make(&format!("smoke-{}.cpio", hex('b')), 0);
        let kept = make(&format!("smoke-{}.cpio", hex('c')), 3600);
        let other = make(&format!("smoke-big-{}.cpio", hex('d')), 3600);
        let not_ours = make("smoke-notes.cpio", 3600);
        let unhashed = make("smoke.cpio", 3600);
        let held = make(&format!("smoke-{}.cpio", hex('e')), 3600);
        let lock = std::fs::File::open(&held).unwrap();
        lock.lock_shared().unwrap();
        prune_initramfs(dir.path(), "smoke", &kept);
        assert!(!stale.exists());
        assert!(!unhashed.exists());
        for p in [fresh, kept, other, not_ours, held] {
            assert!(p.exists(), "{} was removed", p.display());
        }
    }
}
