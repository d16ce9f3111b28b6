//! Side inputs (`--thresholds`, `commits.txt`, `<trace>.commit`) that are not
//! small regular files are prompt errors, never a hang or a silent fallback;
//! and `bisect` with nothing it can judge says so (125), not "no regression".
mod support;

use std::path::{Path, PathBuf};

use support::{Synth, mkfifo, replay, replay_within, s, stderr, stdout, trace};

/// Seconds a command that must fail at once may take before it counts as hung.
const PROMPT: u64 = 20;

/// A bisect directory of three commits, one trace each, with sidecars.
fn bisect_dir(dir: &Path) -> Vec<PathBuf> {
    ["c0", "c1", "c2"]
        .iter()
        .map(|c| trace(dir, &format!("{c}.trace"), Synth::default()))
        .collect()
}

fn assert_error(o: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}\n{}", stdout(o));
    assert!(err.contains(needle), "missing {needle:?} in: {err}");
}

#[test]
fn a_fifo_as_thresholds_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let fifo = dir.path().join("thresholds.toml");
    mkfifo(&fifo);
    let o = replay_within(PROMPT, &["judge", s(&t), "--thresholds", s(&fifo)]);
    assert_error(&o, 2, "is not a regular file (it is a FIFO)");
    let o = replay_within(PROMPT, &["diff", s(&t), s(&t), "--thresholds", s(&fifo)]);
    assert_error(&o, 2, "is not a regular file (it is a FIFO)");
    // `check` is a `git bisect run` predicate: its errors are "cannot judge".
    let args = [
        "check",
        "--baseline",
        s(&t),
        s(&t),
        "--thresholds",
        s(&fifo),
    ];
    assert_error(&replay_within(PROMPT, &args), 125, "a FIFO");
}

#[test]
fn a_fifo_commits_txt_or_sidecar_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    bisect_dir(dir.path());
    let commits = dir.path().join("commits.txt");
    mkfifo(&commits);
    let o = replay_within(PROMPT, &["bisect", s(dir.path())]);
    assert_error(&o, 2, "commits.txt is not a regular file (it is a FIFO)");

    std::fs::remove_file(&commits).unwrap();
    mkfifo(&dir.path().join("c1.trace.commit"));
    let o = replay_within(PROMPT, &["bisect", s(dir.path())]);
    assert_error(&o, 2, "c1.trace.commit is not a regular file");
    // Traces given one by one read their sidecars too.
    let traces: Vec<String> = ["c0", "c1", "c2"]
        .iter()
        .map(|c| s(&dir.path().join(format!("{c}.trace"))).to_string())
        .collect();
    let mut args = vec!["bisect"];
    args.extend(traces.iter().map(String::as_str));
    assert_error(&replay_within(PROMPT, &args), 2, "c1.trace.commit");
}

#[test]
fn commits_txt_linked_to_dev_zero_or_too_large_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    bisect_dir(dir.path());
    let commits = dir.path().join("commits.txt");
    std::os::unix::fs::symlink("/dev/zero", &commits).unwrap();
    let o = replay_within(PROMPT, &["bisect", s(dir.path())]);
    assert_error(
        &o,
        2,
        "commits.txt is not a regular file (it is a character device)",
    );

    std::fs::remove_file(&commits).unwrap();
    let mut big = "c0\nc1\nc2\n".to_string();
    big.push_str(&"#".repeat(2 << 20));
    std::fs::write(&commits, big).unwrap();
    let o = replay_within(PROMPT, &["bisect", s(dir.path())]);
    assert_error(&o, 2, "side files may be at most 1048576 bytes");

    std::fs::remove_file(&commits).unwrap();
    std::fs::write(dir.path().join("c2.trace.commit"), "").unwrap();
    let o = replay_within(PROMPT, &["bisect", s(dir.path())]);
    assert_error(&o, 2, "c2.trace.commit names no commit");
}

#[test]
fn bisect_with_an_empty_baseline_cannot_judge() {
    let dir = tempfile::tempdir().unwrap();
    let traces = bisect_dir(dir.path());
    let empty = dir.path().join("base.trace");
    std::fs::write(&empty, b"").unwrap();
    let o = replay(&[
        "bisect",
        "--baseline",
        s(&empty),
        s(&traces[1]),
        s(&traces[2]),
    ]);
    assert_error(&o, 125, "cannot judge: no commit could be judged");
    let text = stdout(&o);
    assert!(!text.contains("no commit regressed"), "{text}");
    assert!(text.contains("cannot judge"), "{text}");
    // The oldest commit (by `commits.txt`) as the implied baseline, empty.
    let dir = tempfile::tempdir().unwrap();
    let traces = bisect_dir(dir.path());
    std::fs::write(&traces[0], b"").unwrap();
    std::fs::write(dir.path().join("commits.txt"), "c0\nc1\nc2\n").unwrap();
    let o = replay(&["bisect", "--json", s(dir.path())]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["cannot_judge"].is_string(), "{v}");
}

#[test]
fn bisect_with_every_candidate_unreadable_cannot_judge() {
    let dir = tempfile::tempdir().unwrap();
    let traces = bisect_dir(dir.path());
    std::fs::write(&traces[1], b"not a trace").unwrap();
    std::fs::write(&traces[2], b"").unwrap();
    let o = replay(&["bisect", s(dir.path())]);
    assert_error(&o, 125, "cannot judge");
    assert!(
        !stdout(&o).contains("no commit regressed"),
        "{}",
        stdout(&o)
    );
    // One judged commit is enough to answer; the others are named.
    let good = trace(dir.path(), "c1.trace", Synth::default());
    let o = replay(&["bisect", s(&traces[0]), s(&good), s(&traces[2])]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("no commit regressed"), "{text}");
    assert!(text.contains("note: could not judge c2"), "{text}");
}
