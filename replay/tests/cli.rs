//! The `replay` binary on traces made by the real writer.
mod support;

use support::{Synth, replay, s, stdout, trace};

#[test]
fn show_lists_meta_steps_ops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let o = replay(&["show", s(&t)]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    for needle in [
        "scenario   smoke",
        "kernel     6.12.0-test",
        "scheduler  EEVDF",
        "backend    synthetic",
        "outcome    completed",
        "step 0",
        "step 1",
        "completed",
        "op 0",
        "WorkerSample",
        "80 samples, 80 with progress",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("recovery"),
        "clean trace reported damage:\n{text}"
    );
}

#[test]
fn show_reports_recovery_for_a_truncated_trace() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::metadata(trace(dir.path(), "full.trace", Synth::default()))
        .unwrap()
        .len();
    let cut = usize::try_from(full * 2 / 3).unwrap();
    let t = trace(
        dir.path(),
        "cut.trace",
        Synth {
            truncate_to: Some(cut),
            ..Synth::default()
        },
    );
    let o = replay(&["show", s(&t)]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("recovery"), "{text}");
    assert!(text.contains("no valid index"), "{text}");
    assert!(text.contains("outcome    unknown"), "{text}");
}

#[test]
fn a_chunk_failing_its_crc_behind_an_intact_index_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let mut bytes = std::fs::read(&t).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x10;
    let damaged = dir.path().join("damaged.trace");
    std::fs::write(&damaged, &bytes).unwrap();
    let text = stdout(&replay(&["show", s(&damaged)]));
    assert!(text.contains("chunk CRC mismatch"), "{text}");
    let text = stdout(&replay(&["stats", s(&damaged)]));
    assert!(text.contains("the trace is damaged"), "{text}");
    let text = stdout(&replay(&["diff", s(&t), s(&damaged)]));
    assert!(text.contains("damaged: recovered chunks only"), "{text}");
}

#[test]
fn a_directory_is_not_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let o = replay(&["show", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn stats_shows_per_cgroup_shares() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let o = replay(&["stats", "--json", s(&t)]);
    assert!(o.status.success(), "{o:?}");
    let values: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let share = |cg: &str| {
        values
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["step"] == "step 0" && v["cgroup"] == cg && v["metric"] == "cpu-share-pct")
            .map(|v| v["value"].as_f64().unwrap())
            .unwrap()
    };
    assert!((share("a") - 66.67).abs() < 0.1, "{}", share("a"));
    assert!((share("b") - 33.33).abs() < 0.1);
    let table = stdout(&replay(&["stats", s(&t)]));
    assert!(
        table.contains("iter/s") && table.contains("wake p99"),
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("step 0") || l.contains("step 1"))
            .count(),
        4,
        "{table}"
    );
}

#[test]
fn diff_with_itself_reports_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let o = replay(&["diff", s(&t), s(&t)]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("metadata: same"), "{text}");
    assert!(text.contains("no change: all"), "{text}");
}

/// Every worker twice as slow (the host's speed, as far as a run can tell):
/// iter/s halves and is shown, but it is not a primary metric, so nothing is
/// called worse; the speed-robust metrics stay put.
#[test]
fn diff_shows_throughput_change_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let a = trace(dir.path(), "a.trace", Synth::default());
    let b = trace(
        dir.path(),
        "b.trace",
        Synth {
            speed: 0.5,
            ..Synth::default()
        },
    );
    let text = stdout(&replay(&["diff", s(&a), s(&b)]));
    assert!(text.contains("iter/s"), "{text}");
    assert!(text.contains("-50.0") && text.contains("info"), "{text}");
    assert!(text.contains("0 worse"), "{text}");
    assert!(
        text.contains("judged (primary): norm iter/s, cpus used, wait %"),
        "{text}"
    );
    let o = replay(&["diff", "--json", s(&a), s(&b)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = |metric: &str| -> Vec<serde_json::Value> {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["metric"] == metric)
            .cloned()
            .collect()
    };
    let changed = rows("iterations-per-s");
    assert_eq!(changed.len(), 4);
    for m in &changed {
        assert!(
            (m["delta_pct"].as_f64().unwrap() + 50.0).abs() < 0.01,
            "{m}"
        );
        assert_eq!(m["call"], "info", "{m}");
        assert_eq!(m["primary"], false, "{m}");
    }
    for m in rows("norm-iterations-per-s") {
        // Equal but for the rounding of iteration counts.
        assert!(m["delta_pct"].as_f64().unwrap().abs() < 0.01, "{m}");
        assert_eq!(m["primary"], true, "{m}");
        assert_eq!(m["call"], "same", "{m}");
    }
    assert_eq!(v["summary"]["worse"], 0, "{v}");
}

#[test]
fn validate_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = trace(dir.path(), "good.trace", Synth::default());
    assert_eq!(replay(&["validate", s(&good)]).status.code(), Some(0));

    let len = std::fs::metadata(&good).unwrap().len();
    let cut = usize::try_from(len - 10).unwrap();
    let torn = trace(
        dir.path(),
        "torn.trace",
        Synth {
            truncate_to: Some(cut),
            ..Synth::default()
        },
    );
    let o = replay(&["validate", s(&torn)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let flipped = dir.path().join("flipped.trace");
    std::fs::write(&flipped, bytes).unwrap();
    let o = replay(&["validate", s(&flipped)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).to_lowercase().contains("damaged"),
        "{}",
        stdout(&o)
    );

    let garbage = dir.path().join("garbage.trace");
    std::fs::write(&garbage, b"not a trace at all").unwrap();
    let o = replay(&["validate", s(&garbage)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a readable trace"));
    assert_eq!(
        replay(&["show", "/nonexistent/x.trace"]).status.code(),
        Some(2)
    );
}
