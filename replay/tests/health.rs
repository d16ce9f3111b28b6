//! Worker health in `replay judge`, `show` and `export`: OOM kills, failed
//! work operations, and per-interval shares that never exceed 100 %.
mod support;

use serde_json::Value;
use support::{Synth, replay, s, stdout, trace};

/// (outcome, detail) of verdict `name` from `replay judge --json`.
fn verdict(o: &std::process::Output, name: &str) -> (String, String) {
    let v: Value = serde_json::from_slice(&o.stdout).expect("judge JSON");
    let x = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {v}"));
    (
        x["outcome"].as_str().unwrap().to_string(),
        x["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn an_oom_kill_fails_its_verdict_and_is_named_where_progress_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "oom.trace",
        Synth {
            oom: true,
            ..Synth::default()
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let (outcome, detail) = verdict(&o, "no-oom-kill");
    assert_eq!(outcome, "fail");
    assert!(
        detail.contains("cgroup a: 1 worker(s) OOM-killed"),
        "{detail}"
    );
    let (outcome, detail) = verdict(&o, "not-starved");
    assert_eq!(outcome, "inconclusive", "{detail}");
    assert!(detail.contains("was OOM-killed"), "{detail}");
    assert!(!detail.contains("starved"), "{detail}");

    let show = replay(&["show", s(&t)]);
    let text = stdout(&show);
    assert!(text.contains("was killed by SIGKILL"), "{text}");
    assert!(
        text.contains("the OOM killer killed 1 process(es)"),
        "{text}"
    );
}

#[test]
fn a_healthy_run_passes_the_health_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "ok.trace", Synth::default());
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(verdict(&o, "no-oom-kill").0, "pass");
    assert_eq!(verdict(&o, "no-op-errors").0, "pass");
}

#[test]
fn failed_operations_fail_a_verdict_naming_cgroup_and_errno() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "forks.trace",
        Synth {
            fork_errors: true,
            ..Synth::default()
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let (outcome, detail) = verdict(&o, "no-op-errors");
    assert_eq!(outcome, "fail");
    assert!(
        detail.contains("cgroup a: 1 worker(s) had 500 failed fork (EAGAIN"),
        "{detail}"
    );
}

#[test]
fn a_late_credited_wait_is_at_most_the_whole_interval() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(
        dir.path(),
        "wait.trace",
        Synth {
            wait_burst: true,
            ..Synth::default()
        },
    );
    let o = replay(&["judge", "--json", s(&t)]);
    let (_, detail) = verdict(&o, "max-sched-gap");
    assert!(
        detail.contains("largest wait in one interval 100%"),
        "{detail}"
    );

    let out = dir.path().join("t.json");
    let o = replay(&["export", "--perfetto", s(&t), "-o", s(&out)]);
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let shares: Vec<f64> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "C" && e["pid"] == 2)
        .flat_map(|e| [e["args"]["run %"].as_f64(), e["args"]["wait %"].as_f64()])
        .map(Option::unwrap)
        .collect();
    assert!(!shares.is_empty());
    let max = shares.iter().copied().fold(0.0, f64::max);
    assert_eq!(max, 100.0, "the 300 % wait is clamped, nothing above");
}

#[test]
fn plot_axes_have_round_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(dir.path(), "a.trace", Synth::default());
    let svg = dir.path().join("out.svg");
    let o = replay(&["plot", s(&t), "-o", s(&svg)]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let values: Vec<f64> = text
        .split(r#"class="y-tick" data-value=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert!(values.len() >= 3, "{values:?}");
    let step = values[1] - values[0];
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
        "step {step} of {values:?}"
    );
    for (i, v) in values.iter().enumerate() {
        assert!((v - step * i as f64).abs() < 1e-6 * step, "{values:?}");
    }
}
