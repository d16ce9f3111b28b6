//! Introspection against the project kernel: every DWARF offset we use must
//! match `pahole` (an independent reader), and a vmlinux stripped of DWARF
//! must resolve with snapshots off and a note saying why.
//!
//! They use the kernel the run uses (`cargo xtask kernel path`). Without a
//! cached kernel (or pahole) they report a skip, which fails where `cargo
//! xtask test` found one (see `vmm::test_skip`).
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use vmm::introspect::{self, Field};
use vmm::test_skip::{self, Need};

/// The run's cached project vmlinux; skips (or fails where the run requires
/// the kernel) when there is none.
fn project_vmlinux() -> Option<PathBuf> {
    let found = test_skip::project_kernel_dir()
        .map(|d| d.join("vmlinux"))
        .filter(|p| p.is_file());
    if found.is_none() {
        test_skip::skip(
            Need::Kernel,
            "no cached project kernel (cargo xtask kernel build)",
        );
    }
    found
}

/// One member line of `pahole -C`: (type text, offset, size).
fn pahole_member(text: &str, name: &str) -> Option<(String, u64, u64)> {
    text.lines().find_map(|line| {
        let (decl, comment) = line.split_once("/*")?;
        let decl = decl.trim().strip_suffix(';')?;
        // `cfs __attribute__((__aligned__(64)))`: the attribute is not the name.
        let decl = decl.split(" __attribute__").next()?;
        let (ty, member) = decl.rsplit_once(|c: char| c.is_whitespace() || c == '*')?;
        let member = member.split('[').next()?.split(':').next()?;
        if member != name {
            return None;
        }
        let mut nums = comment
            .trim_end_matches("*/")
            .split_whitespace()
            .map(|n| n.split(':').next().unwrap_or(n).parse::<u64>());
        let (off, size) = (nums.next()?.ok()?, nums.next()?.ok()?);
        Some((ty.trim().to_string(), off, size))
    })
}

#[test]
fn dwarf_offsets_match_pahole() {
    let Some(vmlinux) = project_vmlinux() else {
        return;
    };
    if Command::new("pahole").arg("--version").output().is_err() {
        return test_skip::skip(
            Need::Pahole,
            "pahole is not installed (apt-get install dwarves)",
        );
    }
    let layout = introspect::resolve_file(&vmlinux).expect("resolves");
    let mut cache: HashMap<String, String> = HashMap::new();
    let mut pahole = |st: &str| -> String {
        cache
            .entry(st.to_string())
            .or_insert_with(|| {
                let out = Command::new("pahole")
                    .args(["-C", st])
                    .arg(&vmlinux)
                    .output()
                    .expect("pahole runs");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .clone()
    };
    for f in Field::ALL {
        let r = layout.fields[f.index()]
            .as_ref()
            .unwrap_or_else(|| panic!("{f:?} unresolved on the project kernel"));
        let mut parts = r.path.split('.');
        let mut st = parts.next().unwrap().to_string();
        let (mut offset, mut size) = (0u64, 0u64);
        for member in parts {
            let text = pahole(&st);
            let (ty, off, sz) = pahole_member(&text, member)
                .unwrap_or_else(|| panic!("pahole -C {st} has no member {member}:\n{text}"));
            offset += off;
            size = sz;
            st = ty.strip_prefix("struct ").unwrap_or(&ty).to_string();
        }
        assert_eq!(
            (u64::from(r.member.offset), u64::from(r.member.size)),
            (offset, size),
            "{f:?} ({}) differs from pahole",
            r.path
        );
    }
}

#[test]
fn stripped_vmlinux_turns_snapshots_off() {
    let Some(vmlinux) = project_vmlinux() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stripped = dir.path().join("vmlinux");
    // binutils is a build prerequisite (the test guests link with ld).
    let ok = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&vmlinux)
        .arg(&stripped)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "objcopy --strip-debug {} failed", vmlinux.display());
    let layout = introspect::resolve_file(&stripped).expect("resolves without DWARF");
    assert!(
        layout
            .snapshots_off
            .as_deref()
            .is_some_and(|w| w.contains("no DWARF"))
    );
    assert!(layout.notes.iter().any(|n| n.contains("snapshots are off")));
    assert!(layout.fields.iter().all(Option::is_none));
    assert!(layout.symbol("runqueues").is_some_and(|s| s.percpu));
    assert!(layout.symbol("sysctl_sched_base_slice").is_some());
}

#[test]
fn pahole_lines_parse() {
    let text = "struct rq {\n\tunsigned int               nr_running;           /*     4     4 */\n\
                \t\tstruct task_struct * curr;               /*  2872     8 */\n\
                \tchar                       comm[16];             /*  1976    16 */\n\
                \tstruct cfs_rq              cfs __attribute__((__aligned__(64))); /*    64   512 */\n";
    assert_eq!(
        pahole_member(text, "nr_running"),
        Some(("unsigned int".into(), 4, 4))
    );
    assert_eq!(
        pahole_member(text, "curr").map(|m| (m.1, m.2)),
        Some((2872, 8))
    );
    assert_eq!(
        pahole_member(text, "comm").map(|m| (m.1, m.2)),
        Some((1976, 16))
    );
    assert_eq!(
        pahole_member(text, "cfs").map(|m| m.0),
        Some("struct cfs_rq".into())
    );
    assert_eq!(pahole_member(text, "cfs").map(|m| m.1), Some(64));
    assert_eq!(pahole_member(text, "missing"), None);
}
