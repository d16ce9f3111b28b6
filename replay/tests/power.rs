//! Judging with power and without false alarms: a lone real change is
//! callable with 5 runs a side, the host's speed is not a regression, and a
//! verdict that fails once is not one either (bisect's side: tests/bisect.rs).
mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::groups::{Four, write};
use support::{Synth, replay, s, stdout, trace};

fn strs(v: &[PathBuf]) -> Vec<&str> {
    v.iter().map(|p| s(p)).collect()
}

fn check_json(base: &[PathBuf], new: &[PathBuf]) -> (Option<i32>, Value) {
    let mut args = vec!["check", "--json"];
    for b in base {
        args.extend(["--baseline", s(b)]);
    }
    args.extend(strs(new));
    let o = replay(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{o:?}"));
    (o.status.code(), v)
}

/// Four cgroups, two steps: 8 cells per primary metric. Only cgroup `d`'s
/// waiting in step `second` changes (+6 % relative, every run separated);
/// its CPU, pace and everything else stay (the step is labelled `step 1`). One-sided, the smallest p is
/// 1/252 and its family holds 8 cells: adjusted 8/252 ≈ 0.032 < 0.05.
/// (Benjamini–Hochberg over every metric with a polarity made it 32/252.)
#[test]
fn a_lone_perfectly_separated_change_of_5_v_5_runs_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let side = |prefix: &str, d_wait: f64, seed: u64| -> Vec<PathBuf> {
        (0..5u64)
            .map(|i| {
                let mut f = Four {
                    seed: seed + i,
                    ..Four::default()
                };
                f.wait[1][3] = d_wait;
                write(dir.path(), &format!("{prefix}{i}.trace"), &f)
            })
            .collect()
    };
    let base = side("base", 0.8, 10);
    let new = side("new", 1.0, 50);
    let (code, v) = check_json(&base, &new);
    assert_eq!(code, Some(1), "{v:#}");
    let evidence = v["evidence"].to_string();
    assert!(evidence.contains("step 1 / d / wait %"), "{v:#}");
    assert!(!evidence.contains("step 0 /"), "{v:#}");
    let row = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["step"] == "step 1" && m["cgroup"] == "d" && m["metric"] == "wait-pct")
        .unwrap();
    let p_adj = row["p_adj"].as_f64().unwrap();
    assert!(p_adj <= 8.0 / 252.0 + 1e-9, "{row}");
    assert_eq!(row["call"], "worse", "{row}");
    // Nothing else was judged worse, and iter/s is informational.
    let worse: Vec<&Value> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["call"] == "worse")
        .collect();
    assert_eq!(worse.len(), 1, "{worse:?}");
    // The same runs with the sides swapped: waiting fell, no regression.
    let (code, v) = check_json(&new, &base);
    assert_eq!(code, Some(0), "{v:#}");
}

/// One run a side, every cgroup's iter/s 40–60 % lower at once (the host's
/// speed under TCG), CPU and waiting unchanged: not a regression.
#[test]
fn the_host_speed_is_not_a_regression_with_one_run_a_side() {
    let dir = tempfile::tempdir().unwrap();
    let base = trace(
        dir.path(),
        "base.trace",
        Synth {
            noise: 0.02,
            ..Synth::default()
        },
    );
    for (i, speed) in [0.4, 0.5, 0.6].into_iter().enumerate() {
        let slow = trace(
            dir.path(),
            &format!("slow{i}.trace"),
            Synth {
                speed,
                noise: 0.02,
                seed: 7 + i as u64,
                ..Synth::default()
            },
        );
        let (code, v) = check_json(std::slice::from_ref(&base), &[slow]);
        assert_eq!(code, Some(0), "speed {speed}: {v:#}");
        let iters: Vec<&Value> = v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["metric"] == "iterations-per-s")
            .collect();
        assert_eq!(iters.len(), 4, "{v:#}");
        for m in iters {
            assert!(m["delta_pct"].as_f64().unwrap() < -35.0, "{m}");
            assert_eq!(m["call"], "info", "{m}");
        }
    }
    // The same four runs four times over in four cgroups, slower still.
    let four = write(dir.path(), "four.trace", &Four::default());
    let slow = write(
        dir.path(),
        "four-slow.trace",
        &Four {
            speed: 0.45,
            seed: 3,
            ..Four::default()
        },
    );
    let (code, v) = check_json(&[four], &[slow]);
    assert_eq!(code, Some(0), "{v:#}");
}

fn cpuset(extra: Synth) -> Synth {
    Synth {
        scenario: Some(support::CPUSET_SCENARIO.to_string()),
        b_cpus: [0b11, 0b10],
        ..extra
    }
}

/// `fairness-spread` compares a ratio with a tolerance: failing in one run
/// of the new side while passing in the baseline is a note, not a
/// regression; failing again is one.
#[test]
fn a_verdict_that_fails_once_is_not_a_regression_until_it_fails_again() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, unfair: bool, seed: u64| {
        trace(
            dir.path(),
            name,
            cpuset(Synth {
                b_unfair: unfair,
                seed,
                ..Synth::default()
            }),
        )
    };
    let base = run("base.trace", false, 1);
    let unfair = run("unfair.trace", true, 2);
    let unfair2 = run("unfair2.trace", true, 3);
    let fair = run("fair.trace", false, 4);
    let o = replay(&["judge", "--json", s(&unfair)]);
    assert_eq!(o.status.code(), Some(1), "fairness-spread fails alone");

    let o = replay(&["check", "--baseline", s(&base), s(&unfair)]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("verdict fairness-spread failed once; not repeated"),
        "{text}"
    );
    let (code, v) = check_json(std::slice::from_ref(&base), &[fair.clone(), unfair.clone()]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["decided"], false, "more runs could decide: {v:#}");
    assert!(
        v["notes"].to_string().contains("1 of 2 new run(s)"),
        "{v:#}"
    );

    let (code, v) = check_json(std::slice::from_ref(&base), &[unfair, unfair2]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(
        v["evidence"]
            .to_string()
            .contains("verdict fairness-spread fails (passes in the baseline) in 2 of 2 runs"),
        "{v:#}"
    );
}
