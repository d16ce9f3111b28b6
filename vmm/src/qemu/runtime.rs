//! The runtime files of QEMU guests (`schedtape-<pid>-<n>.qmp`, `.ram<N>`):
//! named after the recording process, so that what a process left behind
//! when it was killed can be found and removed, by a forced exit or by the
//! next launch.
use std::path::Path;

/// The name stem of one guest's runtime files.
pub(super) fn tag(unique: u64) -> String {
    format!("schedtape-{}-{unique}", std::process::id())
}

/// The process that made a runtime file, from its name.
fn owner(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix("schedtape-")?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unique = rest.split('.').next()?;
    (digits(pid) && digits(unique)).then(|| pid.parse().ok())?
}

/// Whether process `pid` exists (in any user's hands).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the files in `dir` whose owner `gone` says is gone; returns how many.
fn remove_where(dir: &Path, gone: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().and_then(owner).is_some_and(&gone))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Removes this process's runtime files in `dir` (for an exit that skips
/// destructors, such as a forced exit on a second signal).
pub fn remove_own(dir: &Path) -> usize {
    let me = std::process::id();
    remove_where(dir, |pid| pid == me)
}

/// Removes runtime files in `dir` left by processes that no longer exist
/// (killed with SIGKILL while starting a guest).
pub fn remove_stale(dir: &Path) -> usize {
    let me = std::process::id();
    remove_where(dir, |pid| pid != me && !alive(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_come_from_our_names_only() {
        assert_eq!(owner("schedtape-123-0.qmp"), Some(123));
        assert_eq!(owner("schedtape-123-4.ram1"), Some(123));
        assert_eq!(owner("schedtape-bench-vmm-5-2.qmp"), None);
        assert_eq!(owner("schedtape-12x-0.qmp"), None);
        assert_eq!(owner("other-123-0.qmp"), None);
        assert_eq!(owner(&format!("{}.qmp", tag(7))), Some(std::process::id()));
    }

    #[test]
    fn stale_files_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) never exists.
        let stale = dir.path().join("schedtape-99999999-0.qmp");
        let live = dir.path().join("schedtape-1-0.ram0");
        let own = dir.path().join(format!("{}.qmp", tag(0)));
        let foreign = dir.path().join("notes.txt");
        for p in [&stale, &live, &own, &foreign] {
            std::fs::write(p, b"").unwrap();
        }
        assert_eq!(remove_stale(dir.path()), 1);
        assert!(!stale.exists() && live.exists() && own.exists());
        assert_eq!(remove_own(dir.path()), 1);
        assert!(!own.exists() && live.exists() && foreign.exists());
    }
}
