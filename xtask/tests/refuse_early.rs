//! Bad input to `run scenario` is refused (exit 2, one line) before anything
//! is built or installed: with an empty kernel cache, no kernel build starts.
use std::path::Path;
use std::process::{Command, Output};

const SCENARIO: &str = r#"
name = "early"
topology = "1n1l2c1t"
duration = "1s"

[[steps]]
name = "only"
hold = { frac = 1.0 }

[[steps.setup]]
name = "a"

[[steps.setup.works]]
work = "spin_wait"
workers = 1
"#;

/// Runs `xtask run scenario FILE ARGS…` with an empty kernel cache.
fn run(dir: &Path, scenario: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .args(["run", "scenario"])
        .arg(scenario)
        .args(args)
        .output()
        .expect("xtask runs")
}

/// Exit 2 with one `error:` line naming `want`, and nothing built or installed.
fn assert_refused(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(want), "wanted {want:?}: {err}");
    assert!(!err.contains("kernel:"), "a kernel build started: {err}");
    assert!(
        !err.contains("prerequisites:"),
        "packages were installed: {err}"
    );
}

fn scenario_with_payload(dir: &Path, path: &str) -> std::path::PathBuf {
    let file = dir.join("early.toml");
    let text = format!("{SCENARIO}\n[[payloads]]\nname = \"p\"\npath = {path:?}\n");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn unusable_payloads_are_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a program").unwrap();
    let missing = dir.path().join("absent");
    let cases = [
        (missing.display().to_string(), "no such file"),
        (dir.path().display().to_string(), "is a directory"),
        (text.display().to_string(), "is not an x86-64 ELF program"),
        ("no-such-program-xyz".to_string(), "no such program on PATH"),
    ];
    for (path, want) in cases {
        let scenario = scenario_with_payload(dir.path(), &path);
        let out = run(dir.path(), &scenario, &[]);
        assert_refused(&out, want);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("payload \"p\""),
            "names the payload"
        );
    }
}

#[test]
fn outputs_that_cannot_be_written_or_are_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("early.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = run(dir.path(), &scenario, &["-o", "nodir/x.trace"]);
    assert_refused(&out, "-o nodir/x.trace: directory nodir does not exist");

    let out = run(dir.path(), &scenario, &["-o", "early.toml"]);
    assert_refused(&out, "is the scenario file");
    let link = dir.path().join("link.trace");
    std::os::unix::fs::symlink(&scenario, &link).unwrap();
    let out = run(dir.path(), &scenario, &["-o", "link.trace"]);
    assert_refused(&out, "is the scenario file");
    assert_eq!(std::fs::read_to_string(&scenario).unwrap(), SCENARIO);

    let out = run(dir.path(), &scenario, &["-o", "."]);
    assert_refused(&out, "is not a regular file");
}

#[test]
fn input_paths_of_the_wrong_kind_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("early.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let cases = [
        (vec!["--kernel", fifo], "--kernel"),
        (
            vec!["--kernel", "/dev/null"],
            "not a regular file or a directory",
        ),
        (vec!["--kernel-src", fifo], "--kernel-src"),
        (vec!["--vmlinux", fifo], "--vmlinux"),
        (vec!["--init", dir_s], "--init"),
        (vec!["--thresholds", fifo], "not a regular file"),
    ];
    for (args, want) in cases {
        let out = run(dir.path(), &scenario, &args);
        assert_refused(&out, want);
    }
    // `--from` a FIFO or a device: refused, not read forever.
    for from in [fifo, "/dev/zero"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(dir.path())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .args(["run", "--from", from, "-o", "x.trace"])
            .output()
            .unwrap();
        assert_refused(&out, "is not a regular file");
    }
}

#[test]
fn until_decided_is_refused_without_its_baseline_or_with_bad_limits() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("early.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    // Adaptive repeats compare against a baseline trace: --from is required.
    let out = run(dir.path(), &scenario, &["--until-decided"]);
    assert_refused(&out, "--from");
    let from = dir.path().join("base.trace");
    std::fs::write(&from, b"not yet read").unwrap();
    let from = from.to_str().unwrap();
    let series = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(dir.path())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .args(["run", "--from", from, "-o", "new.trace"])
            .args(extra)
            .output()
            .unwrap()
    };
    // Usage errors (clap's: the flag may be on the line after `error:`).
    for (extra, want) in [
        (&["--until-decided", "--max-runs", "1"][..], "--max-runs"),
        (&["--until-decided", "--max-runs", "21"][..], "--max-runs"),
        (&["--max-runs", "3"][..], "--until-decided"),
        (&["--base-kernel", "/nonexistent"][..], "--until-decided"),
        (&["--until-decided", "--repeat", "2"][..], "--repeat"),
    ] {
        let out = series(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: wanted {want:?}: {err}");
    }
    assert_refused(
        &series(&["--until-decided", "--base-kernel", "/nonexistent"]),
        "--base-kernel /nonexistent",
    );
}
