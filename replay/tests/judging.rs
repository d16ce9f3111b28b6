//! `replay judge`, `diff` with statistics, `check` exit codes, `bisect`,
//! `plot` and `export`, on traces made by the real writer.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{CPUSET_SCENARIO, Synth, replay, s, stdout, trace};
use trace_format::record::RunOutcome;

fn cpuset_synth() -> Synth {
    Synth {
        scenario: Some(CPUSET_SCENARIO.to_string()),
        b_cpus: [0b11, 0b10],
        ..Synth::default()
    }
}

/// Outcome of each verdict from `replay judge --json`.
fn verdicts(o: &Output) -> Vec<(String, String, String)> {
    let v: Value = serde_json::from_slice(&o.stdout).expect("judge JSON");
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["outcome"].as_str().unwrap().to_string(),
                x["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome<'a>(v: &'a [(String, String, String)], name: &str) -> &'a str {
    &v.iter()
        .find(|x| x.0 == name)
        .unwrap_or_else(|| panic!("{name} in {v:?}"))
        .1
}

#[test]
fn judge_passes_a_healthy_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "ok.trace", cpuset_synth());
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = verdicts(&o);
    assert_eq!(outcome(&v, "not-starved"), "pass");
    assert_eq!(outcome(&v, "cpuset-isolation"), "pass", "{v:?}");
    assert_eq!(outcome(&v, "fairness-spread"), "pass");
    assert_eq!(outcome(&v, "weight-share"), "pass", "{v:?}");
    assert_eq!(outcome(&v, "max-sched-gap"), "pass");
    assert_eq!(outcome(&v, "wake-latency-p99"), "inconclusive");
    assert_eq!(outcome(&v, "runqueue-stall"), "inconclusive");
    let iso = v.iter().find(|x| x.0 == "cpuset-isolation").unwrap();
    assert!(
        iso.2.contains("straddling"),
        "first sample after the op is skipped: {iso:?}"
    );
    let ws = v.iter().find(|x| x.0 == "weight-share").unwrap();
    assert!(ws.2.contains("expected 66.7%"), "{ws:?}");
    let table = stdout(&replay(&["judge", s(&t)]));
    assert!(
        table.contains("not-starved") && table.contains("pass"),
        "{table}"
    );
}

#[test]
fn judge_fails_starvation_isolation_and_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "bad.trace",
        Synth {
            starve: true,
            b_cpus: [0b11, 0b11],
            snapshots: true,
            stall: true,
            ..cpuset_synth()
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = verdicts(&o);
    assert_eq!(outcome(&v, "not-starved"), "fail", "{v:?}");
    assert_eq!(outcome(&v, "cpuset-isolation"), "fail", "{v:?}");
    assert_eq!(outcome(&v, "runqueue-stall"), "fail", "{v:?}");
    let iso = v.iter().find(|x| x.0 == "cpuset-isolation").unwrap();
    assert!(iso.2.contains("allowed 1"), "{iso:?}");

    let ok = trace(
        dir.path(),
        "snap.trace",
        Synth {
            snapshots: true,
            ..cpuset_synth()
        },
    );
    let v = verdicts(&replay(&["judge", "--json", s(&ok)]));
    assert_eq!(outcome(&v, "runqueue-stall"), "pass", "{v:?}");
}

#[test]
fn judge_thresholds_file_overrides_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "ok.trace",
        Synth {
            noise: 0.3,
            ..cpuset_synth()
        },
    );
    let th = dir.path().join("t.toml");
    std::fs::write(
        &th,
        "[verdicts]\nfairness_max_ratio = 1.0001\nweight_share_tolerance_pct = 0.01\nskip = [\"runqueue-stall\"]\n",
    )
    .unwrap();
    let o = replay(&["judge", "--json", "--thresholds", s(&th), s(&t)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = verdicts(&o);
    assert_eq!(outcome(&v, "fairness-spread"), "fail", "{v:?}");
    assert_eq!(outcome(&v, "weight-share"), "fail", "{v:?}");
    assert!(v.iter().all(|x| x.0 != "runqueue-stall"));
    std::fs::write(&th, "[verdicts]\nno_such_key = 1\n").unwrap();
    let o = replay(&["judge", "--thresholds", s(&th), s(&t)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no_such_key"));
}

/// The scenario's own `[thresholds]` change a verdict; `--thresholds` keys
/// override them and leave the rest in force.
#[test]
fn judge_uses_scenario_thresholds_and_the_file_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    let noisy = Synth {
        noise: 0.3,
        ..cpuset_synth()
    };
    let plain = trace(dir.path(), "plain.trace", noisy.clone());
    let v = verdicts(&replay(&["judge", "--json", s(&plain)]));
    assert_eq!(outcome(&v, "fairness-spread"), "pass", "{v:?}");

    let strict = format!(
        "{CPUSET_SCENARIO}\n[thresholds.verdicts]\nfairness_max_ratio = 1.0001\nskip = [\"runqueue-stall\"]\n"
    );
    let t = trace(
        dir.path(),
        "strict.trace",
        Synth {
            scenario: Some(strict),
            ..noisy
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = verdicts(&o);
    assert_eq!(outcome(&v, "fairness-spread"), "fail", "{v:?}");
    assert!(v.iter().all(|x| x.0 != "runqueue-stall"), "{v:?}");

    let th = dir.path().join("t.toml");
    std::fs::write(&th, "[verdicts]\nfairness_max_ratio = 10.0\n").unwrap();
    let o = replay(&["judge", "--json", "--thresholds", s(&th), s(&t)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = verdicts(&o);
    assert_eq!(outcome(&v, "fairness-spread"), "pass", "{v:?}");
    assert!(
        v.iter().all(|x| x.0 != "runqueue-stall"),
        "the scenario's skip stays: {v:?}"
    );
}

/// `check` (and `diff`, `bisect`) take the baseline's scenario thresholds.
#[test]
fn check_uses_the_baseline_scenario_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = include_str!("../../fixtures/scenarios/smoke.toml");
    let picky = format!("{smoke}\n[thresholds.diff]\nmin_intervals = 100\n");
    let base = trace(
        dir.path(),
        "base.trace",
        Synth {
            noise: 0.02,
            scenario: Some(picky),
            ..Synth::default()
        },
    );
    let good = trace(
        dir.path(),
        "good.trace",
        Synth {
            noise: 0.02,
            seed: 9,
            ..Synth::default()
        },
    );
    let o = replay(&["check", "--baseline", s(&base), s(&good)]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    let th = dir.path().join("t.toml");
    std::fs::write(&th, "[diff]\nmin_intervals = 5\n").unwrap();
    let o = replay(&[
        "check",
        "--thresholds",
        s(&th),
        "--baseline",
        s(&base),
        s(&good),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

/// Verdicts recorded at run time are shown beside the recomputed ones.
#[test]
fn judge_shows_verdicts_recorded_at_run_time() {
    use trace_format::record::{Verdict, VerdictOutcome};
    let dir = tempfile::tempdir().unwrap();
    let at_run = |name: &str, outcome| Verdict {
        name: name.into(),
        outcome,
        detail: "at run time".into(),
    };
    let t = trace(
        dir.path(),
        "rec.trace",
        Synth {
            recorded: vec![
                at_run("not-starved", VerdictOutcome::Pass),
                at_run("fairness-spread", VerdictOutcome::Fail),
            ],
            ..cpuset_synth()
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {rows}"))
    };
    assert_eq!(row("not-starved")["recorded"], "pass");
    assert_eq!(row("fairness-spread")["outcome"], "pass");
    assert_eq!(row("fairness-spread")["recorded"], "fail");
    assert_eq!(row("weight-share")["recorded"], Value::Null);
    let text = stdout(&replay(&["judge", s(&t)]));
    assert!(text.contains("recorded at run time"), "{text}");
    assert!(text.contains("1 verdict(s) differ"), "{text}");
    let shown = stdout(&replay(&["show", s(&t)]));
    assert!(shown.contains("verdict fairness-spread: FAIL"), "{shown}");

    // Without recorded verdicts the output is as before.
    let plain = trace(dir.path(), "plain.trace", cpuset_synth());
    let o = replay(&["judge", "--json", s(&plain)]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rows[0].get("recorded").is_none(), "{rows}");
}

/// Writes `n` runs with jitter, cgroup `b` getting `b_run` of its CPU;
/// returns their paths.
fn runs(dir: &Path, prefix: &str, n: u64, b_run: f64) -> Vec<PathBuf> {
    let salt = u64::try_from(prefix.len() * 1000 + prefix.bytes().map(usize::from).sum::<usize>())
        .unwrap_or(0);
    (0..n)
        .map(|i| {
            trace(
                dir,
                &format!("{prefix}{i}.trace"),
                Synth {
                    b_run,
                    noise: 0.05,
                    seed: i + 1 + salt,
                    ..Synth::default()
                },
            )
        })
        .collect()
}

fn strs(v: &[PathBuf]) -> Vec<&str> {
    v.iter().map(|p| s(p)).collect()
}

#[test]
fn diff_with_repeated_runs_uses_runs_as_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let a = runs(dir.path(), "a", 5, 1.0);
    let b = runs(dir.path(), "b", 5, 0.7);
    let mut args = vec!["diff", "--json"];
    args.extend(strs(&a));
    args.push("--");
    args.extend(strs(&b));
    let o = replay(&args);
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["unit"], "runs");
    let rows = |metric: &str, cgroup: &str| -> Vec<&Value> {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["metric"] == metric && m["cgroup"] == cgroup)
            .collect()
    };
    let used = rows("cpu-util", "b");
    assert_eq!(used.len(), 2);
    for m in used {
        assert_eq!(m["call"], "worse", "{m}");
        assert_eq!(m["n_a"], 5);
        assert!(m["p_adj"].as_f64().unwrap() < 0.05, "{m}");
        assert!(m["ci_high_pct"].as_f64().unwrap() < -1.0, "{m}");
    }
    for m in rows("cpu-util", "a") {
        assert_ne!(m["call"], "worse", "{m}");
    }
    for m in rows("iterations-per-s", "b") {
        assert_eq!(m["call"], "info", "not primary: {m}");
    }
    // Same runs as A and B: nothing is flagged.
    let c = runs(dir.path(), "c", 5, 1.0001);
    let mut args = vec!["diff", "--json", "--a"];
    args.extend(strs(&a));
    args.push("--b");
    args.extend(strs(&c));
    let v: Value = serde_json::from_slice(&replay(&args).stdout).unwrap();
    assert_eq!(v["summary"]["worse"], 0, "{v}");
    assert_eq!(v["summary"]["better"], 0, "{v}");
    // Too few runs for runs as the unit: intervals, judged against a wider band.
    let o = replay(&["diff", s(&a[0]), s(&b[0])]);
    let text = stdout(&o);
    assert!(text.contains("sample intervals of 1 vs 1 run(s)"), "{text}");
    assert!(text.contains("worse"), "{text}");
}

#[test]
fn diff_colours_only_when_asked_or_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let a = runs(dir.path(), "a", 5, 1.0);
    let b = runs(dir.path(), "b", 5, 0.5);
    let mut args = vec!["diff", "--color", "always"];
    args.extend(strs(&a));
    args.push("--");
    args.extend(strs(&b));
    let text = stdout(&replay(&args));
    assert!(text.contains("\x1b[31m"), "worse rows are red: {text}");
    args[2] = "auto";
    let text = stdout(&replay(&args));
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text}");
}

#[test]
fn check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let base = trace(
        dir.path(),
        "base.trace",
        Synth {
            noise: 0.02,
            ..Synth::default()
        },
    );
    let good = trace(
        dir.path(),
        "good.trace",
        Synth {
            noise: 0.02,
            seed: 9,
            ..Synth::default()
        },
    );
    let bad = trace(
        dir.path(),
        "bad.trace",
        Synth {
            b_run: 0.5,
            noise: 0.02,
            ..Synth::default()
        },
    );
    let code = |args: &[&str]| replay(args).status.code();
    assert_eq!(code(&["check", "--baseline", s(&base), s(&good)]), Some(0));
    let o = replay(&["check", "--baseline", s(&base), s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("/ b / cpus used"), "{}", stdout(&o));
    // The worse rows are tabled under the evidence.
    assert!(
        stdout(&o).contains("p adj") && stdout(&o).contains("worse"),
        "{}",
        stdout(&o)
    );

    let len = std::fs::metadata(&good).unwrap().len();
    let cut = usize::try_from(len * 2 / 3).unwrap();
    let truncated = trace(
        dir.path(),
        "cut.trace",
        Synth {
            truncate_to: Some(cut),
            ..Synth::default()
        },
    );
    let o = replay(&["check", "--baseline", s(&base), s(&truncated)]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    assert!(stdout(&o).contains("truncated"), "{}", stdout(&o));
    // A chunk that fails its CRC behind an intact index: the regression it
    // would hide or invent cannot be judged.
    let mut bytes = std::fs::read(&bad).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x10;
    let damaged = dir.path().join("damaged.trace");
    std::fs::write(&damaged, &bytes).unwrap();
    assert_eq!(code(&["validate", s(&damaged)]), Some(1), "damaged");
    let o = replay(&["check", "--baseline", s(&base), s(&damaged)]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    assert_eq!(
        code(&["check", "--baseline", s(&damaged), s(&good)]),
        Some(125)
    );
    // Runs of a scenario with other steps are not compared.
    let other = trace(
        dir.path(),
        "other.trace",
        Synth {
            scenario: Some(
                include_str!("../../fixtures/scenarios/smoke.toml")
                    .replace("name = \"smoke\"", "name = \"other\"")
                    .replace("name = \"both\"", "name = \"together\""),
            ),
            ..Synth::default()
        },
    );
    let o = replay(&["check", "--baseline", s(&base), s(&other)]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("do not run the same steps"),
        "{}",
        stdout(&o)
    );
    // Thresholds out of range are bad arguments, from a file or a flag.
    assert_eq!(
        code(&["check", "--alpha", "2", "--baseline", s(&base), s(&good)]),
        Some(125)
    );
    let empty = dir.path().join("empty.trace");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        code(&["check", "--baseline", s(&base), s(&empty)]),
        Some(125)
    );
    let garbage = dir.path().join("garbage.trace");
    std::fs::write(&garbage, b"\x8eSTP not really a trace at all").unwrap();
    assert_eq!(
        code(&["check", "--baseline", s(&base), s(&garbage)]),
        Some(125)
    );
    assert_eq!(
        code(&["check", "--baseline", s(&garbage), s(&good)]),
        Some(125)
    );
    assert_eq!(
        code(&["check", "--baseline", s(&base), "/nonexistent.trace"]),
        Some(125)
    );
    assert_eq!(
        code(&["check", "--baseline", s(&base)]),
        Some(125),
        "missing argument"
    );
    assert_eq!(code(&["check", "--bogus-flag"]), Some(125));
    // A trace without enough samples in any judged step cannot be judged.
    let th = dir.path().join("t.toml");
    std::fs::write(&th, "[diff]\nmin_intervals = 100\n").unwrap();
    let o = replay(&[
        "check",
        "--thresholds",
        s(&th),
        "--baseline",
        s(&base),
        s(&good),
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    // A verdict that newly fails is a regression too.
    let cb = trace(dir.path(), "cb.trace", cpuset_synth());
    let cs = trace(
        dir.path(),
        "cs.trace",
        Synth {
            starve: true,
            ..cpuset_synth()
        },
    );
    let o = replay(&["check", "--json", "--baseline", s(&cb), s(&cs)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["evidence"]
            .to_string()
            .contains("verdict not-starved fails (passes in the baseline)"),
        "{v}"
    );
    // One the baseline could not judge is named as such.
    let stalled = trace(
        dir.path(),
        "stalled.trace",
        Synth {
            snapshots: true,
            stall: true,
            ..cpuset_synth()
        },
    );
    let o = replay(&["check", "--json", "--baseline", s(&cb), s(&stalled)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["evidence"]
            .to_string()
            .contains("verdict runqueue-stall fails (is inconclusive in the baseline)"),
        "{v}"
    );
}

#[test]
fn check_and_judge_tell_the_system_under_test_failing_from_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let synth = |name: &str, ends| {
        let synth = Synth {
            noise: 0.02,
            ends,
            ..Synth::default()
        };
        trace(dir.path(), name, synth)
    };
    let base = synth("base.trace", None);
    let code = |args: &[&str]| replay(args).status.code();
    // A scheduler that sched_ext ejects is a regression, not "cannot judge";
    // an ejected baseline cannot be judged against; judge fails it too.
    let ejected = synth("ejected.trace", support::ejected());
    let o = replay(&["check", "--baseline", s(&base), s(&ejected)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o)
            .contains(r#"scheduler "schedtape-scx" ejected (error_stall): runnable task stall"#),
        "{}",
        stdout(&o)
    );
    let o = replay(&["check", "--baseline", s(&ejected), s(&base)]);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("did not complete (guest-error)"),
        "{}",
        stdout(&o)
    );
    let o = replay(&["judge", s(&ejected)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the system under test failed"));
    let sut_failed = |t: &Path| {
        String::from_utf8_lossy(&replay(&["judge", s(t)]).stderr)
            .contains("the system under test failed")
    };
    assert!(!sut_failed(&base));
    // A scheduler that never started, or any other guest error: the harness's.
    let message = "replace_scheduler failed: died on start-up".to_string();
    let startup = synth(
        "startup.trace",
        Some((Some("startup"), RunOutcome::GuestError { message })),
    );
    assert_eq!(
        code(&["check", "--baseline", s(&base), s(&startup)]),
        Some(125)
    );
    assert!(!sut_failed(&startup));
    // A kernel panic during the scenario is a regression; PID 1 dying is not.
    let panic = |message: &str| {
        Some((
            None,
            RunOutcome::KernelPanic {
                message: message.into(),
            },
        ))
    };
    let oops = synth(
        "oops.trace",
        panic("Kernel panic - not syncing: Fatal exception"),
    );
    assert_eq!(code(&["check", "--baseline", s(&base), s(&oops)]), Some(1));
    let init = synth(
        "init.trace",
        panic("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009"),
    );
    assert_eq!(
        code(&["check", "--baseline", s(&base), s(&init)]),
        Some(125)
    );
}

#[test]
fn git_bisect_run_with_replay_check_finds_the_regressing_commit() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("git not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs");
        assert!(o.status.success(), "git {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    // Each commit carries the trace its scenario setting produces: the
    // setting (cgroup b's CPU) regresses at commit 5 of 8.
    let base = repo.join("base.trace");
    support::write(
        &base,
        Synth {
            noise: 0.02,
            ..Synth::default()
        },
    );
    let mut shas = Vec::new();
    for i in 0..8u64 {
        let b_run = if i >= 5 { 0.55 } else { 1.0 };
        std::fs::write(repo.join("setting.txt"), format!("b_run = {b_run}\n")).unwrap();
        support::write(
            &repo.join("run.trace"),
            Synth {
                b_run,
                noise: 0.02,
                seed: i + 2,
                ..Synth::default()
            },
        );
        git(&["add", "setting.txt", "run.trace"]);
        git(&["commit", "-q", "-m", &format!("commit {i}")]);
        shas.push(git(&["rev-parse", "HEAD"]));
    }
    git(&["bisect", "start", &shas[7], &shas[0]]);
    let script = format!(
        "{} check --baseline {} run.trace",
        env!("CARGO_BIN_EXE_replay"),
        s(&base)
    );
    let out = git(&["bisect", "run", "sh", "-c", &script]);
    assert!(
        out.contains(&format!("{} is the first bad commit", shas[5])),
        "{out}"
    );
}

#[test]
fn plot_draws_heatmap_throughput_and_step_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let a = trace(
        dir.path(),
        "a.trace",
        Synth {
            snapshots: true,
            ..cpuset_synth()
        },
    );
    let b = trace(
        dir.path(),
        "b.trace",
        Synth {
            speed: 0.5,
            ..cpuset_synth()
        },
    );
    let svg = dir.path().join("out.svg");
    let o = replay(&["plot", s(&a), s(&b), "-o", s(&svg)]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{text}");
    assert!(
        text.contains(r#"id="heatmap-A" class="heatmap""#),
        "A has snapshots"
    );
    assert!(text.contains(r#"data-cpu="1""#));
    assert!(
        text.contains(r#"id="heatmap-B" class="heatmap empty""#),
        "B has none"
    );
    for side in ["A", "B"] {
        for cg in ["a", "b"] {
            assert!(
                text.contains(&format!(
                    r#"class="series" data-trace="{side}" data-cgroup="{cg}""#
                )),
                "series {side}/{cg} missing"
            );
        }
    }
    assert_eq!(
        text.matches(r#"class="step-boundary" data-trace="A""#)
            .count(),
        2
    );
    assert!(text.contains("step 1 move"));
    assert!(text.trim_end().ends_with("</svg>"));
}

#[test]
fn perfetto_export_is_chrome_trace_json() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "a.trace",
        Synth {
            snapshots: true,
            ..cpuset_synth()
        },
    );
    let out = dir.path().join("t.json");
    let o = replay(&["export", "--perfetto", s(&t), "-o", s(&out)]);
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    let count = |f: &dyn Fn(&Value) -> bool| ev.iter().filter(|e| f(e)).count();
    assert_eq!(
        count(&|e| e["ph"] == "X" && e["cat"] == "step"),
        3,
        "backdrop and 2 steps"
    );
    assert!(count(&|e| e["ph"] == "X" && e["name"] == "step 1 move") == 1);
    assert_eq!(count(&|e| e["ph"] == "i" && e["name"] == "set_cpuset"), 1);
    assert_eq!(
        count(&|e| e["ph"] == "C" && e["pid"] == 2),
        80,
        "worker counters"
    );
    assert_eq!(
        count(&|e| e["ph"] == "C" && e["name"] == "cpu 1 nr_running"),
        10
    );
    assert!(count(&|e| e["ph"] == "M") >= 4);
    for e in ev.iter().filter(|e| e["ph"] != "M") {
        assert!(e["ts"].is_number(), "{e}");
    }
}

#[test]
fn check_needs_runs_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let run = trace(dir.path(), "run.trace", Synth::default());
    let t = replay::thresholds::Thresholds::default();
    let one = std::slice::from_ref(&run);
    for (baseline, traces) in [(one, &[][..]), (&[][..], one)] {
        let r = replay::check::check(baseline, traces, &t);
        assert_eq!(r.code, 125, "{}", r.summary);
        assert!(
            r.summary.contains("need a baseline and a trace"),
            "{}",
            r.summary
        );
    }
}
