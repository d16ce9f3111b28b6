//! The layout cache keys on what a layout was derived from: a vmlinux and its
//! debug-stripped copy share a build-id, yet the stripped one's layout (no
//! struct offsets) must never be served for the full file, and is not cached.
//!
//! Uses a tiny kernel-like ELF built with cc (a `struct rq` in
//! `kernel/sched/core.c`) and `objcopy --strip-debug`, as the test guest
//! build does; no VM and no project kernel.
use std::path::{Path, PathBuf};
use std::process::Command;

use vmm::introspect::{self, Field, source};

const CORE_C: &str = r#"
struct task_struct { int pid; char comm[16]; };
struct cfs_rq { unsigned int h_nr_running; };
struct rq {
    unsigned int nr_running;
    unsigned long nr_switches;
    struct cfs_rq cfs;
    struct task_struct *curr;
    unsigned long long clock;
};
struct rq runqueues;
struct task_struct init_task;
void sched_fork(void) { runqueues.nr_running++; init_task.pid = 1; }
void _start(void) { sched_fork(); for (;;) {} }
"#;

/// Builds `dir/vmlinux` (with DWARF and a build-id) and `dir/stripped`.
fn build(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("kernel/sched/core.c");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, CORE_C).unwrap();
    let full = dir.join("vmlinux");
    let ok = Command::new("cc")
        .current_dir(dir)
        .args(["-g", "-O0", "-nostdlib", "-static", "-fno-pie", "-no-pie"])
        .args(["-Wl,--build-id=sha1", "-o"])
        .arg(&full)
        .arg("kernel/sched/core.c")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cc could not build the tiny vmlinux (needs cc and ld)");
    let stripped = dir.join("stripped");
    let ok = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&full)
        .arg(&stripped)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "objcopy --strip-debug failed");
    (full, stripped)
}

#[test]
fn a_stripped_copy_never_shares_the_full_files_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (full, stripped) = build(dir.path());
    let cache = dir.path().join("cache");
    let (kf, ks) = (
        source::read_key(&full).unwrap(),
        source::read_key(&stripped).unwrap(),
    );
    assert_eq!(kf.build_id, ks.build_id, "objcopy keeps the build-id");
    assert!(kf.has_dwarf && !ks.has_dwarf);
    assert_ne!(kf.stem(), ks.stem());

    // The DWARF-less copy first (as `cargo xtask bundle` makes it): resolved,
    // snapshots off, and not cached.
    for _ in 0..2 {
        let r = introspect::load(&stripped, Some(&cache)).unwrap();
        assert!(!r.cached, "a layout without DWARF is never cached");
        assert!(r.cache_file.is_none());
        let off = r.layout.snapshots_off.as_deref().unwrap_or_default();
        assert!(off.contains("no DWARF"), "{off:?}");
    }
    assert!(
        !cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none(),
        "nothing cached for the stripped copy"
    );

    // Then the full file: resolved from its own DWARF, then from the cache.
    let cold = introspect::load(&full, Some(&cache)).unwrap();
    assert!(!cold.cached);
    assert_eq!(cold.layout.snapshots_off, None, "{:?}", cold.layout.notes);
    let nr = cold
        .layout
        .field(Field::RqNrRunning)
        .expect("rq.nr_running");
    assert_eq!((nr.offset, nr.size), (0, 4));
    assert_eq!(cold.layout.field(Field::RqCurr).map(|m| m.size), Some(8));
    let warm = introspect::load(&full, Some(&cache)).unwrap();
    assert!(warm.cached);
    assert_eq!(*warm.layout, *cold.layout);
    assert!(warm.cache_file.as_ref().is_some_and(|p| p.is_file()));

    // And the stripped copy still gets no struct offsets from that entry.
    let again = introspect::load(&stripped, Some(&cache)).unwrap();
    assert!(!again.cached);
    assert!(again.layout.fields.iter().all(Option::is_none));
}

#[test]
fn the_key_changes_with_the_debug_sections_only() {
    let dir = tempfile::tempdir().unwrap();
    let (full, _) = build(dir.path());
    let copy = dir.path().join("copy");
    std::fs::copy(&full, &copy).unwrap();
    assert_eq!(
        source::read_key(&full).unwrap(),
        source::read_key(&copy).unwrap()
    );
    // Junk that is not an ELF is an error, not a panic.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not an elf").unwrap();
    assert!(source::read_key(&junk).is_err());
}
