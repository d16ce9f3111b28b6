//! The scenario's `[thresholds]` section: TOML, validation, round trips.

use trace_format::scenario::*;

const BASE: &str = r#"
name = "t"
duration = "2s"

[[steps]]
hold = "1s"
"#;

fn with(section: &str) -> String {
    format!("{BASE}\n{section}")
}

fn error_of(section: &str) -> String {
    match Scenario::from_toml_str(&with(section)) {
        Ok(_) => panic!("accepted:\n{section}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn absent_section_is_none() {
    let sc = Scenario::from_toml_str(BASE).unwrap();
    assert_eq!(sc.thresholds, None);
    assert!(!sc.to_toml_string().unwrap().contains("thresholds"));
}

#[test]
fn toml_section_parses_with_units() {
    let sc = Scenario::from_toml_str(&with(
        r#"
[thresholds.verdicts]
fairness_max_ratio = 1.5
fairness_min_samples = 4
weight_share_tolerance_pct = 10
max_gap = "250ms"
wake_p99_max = "5ms"
wake_min_count = 50
stall_min_interval = "100ms"
skip = ["runqueue-stall", "wake-latency-p99"]

[thresholds.diff]
alpha = 0.01
noise_pct = 2.5
interval_noise_pct = 30.0
min_runs = 3
min_intervals = 8
"#,
    ))
    .unwrap();
    let t = sc.thresholds.unwrap();
    let v = &t.verdicts;
    assert_eq!(v.fairness_max_ratio, Some(Ppm(1_500_000)));
    assert_eq!(v.fairness_min_samples, Some(4));
    assert_eq!(v.weight_share_tolerance_pct, Some(Ppm(10_000_000)));
    assert_eq!(v.max_gap_ns, Some(250 * NS_PER_MS));
    assert_eq!(v.wake_p99_max_ns, Some(5 * NS_PER_MS));
    assert_eq!(v.wake_min_count, Some(50));
    assert_eq!(v.stall_min_interval_ns, Some(100 * NS_PER_MS));
    assert_eq!(v.skip, ["runqueue-stall", "wake-latency-p99"]);
    let d = &t.diff;
    assert_eq!(d.alpha, Some(Ppm(10_000)));
    assert_eq!(d.noise_pct, Some(Ppm(2_500_000)));
    assert_eq!(d.interval_noise_pct, Some(Ppm(30_000_000)));
    assert_eq!((d.min_runs, d.min_intervals), (Some(3), Some(8)));
}

#[test]
fn partial_section_leaves_the_rest_unset() {
    let sc = Scenario::from_toml_str(&with("[thresholds.verdicts]\nmax_gap = \"1s\"\n")).unwrap();
    let t = sc.thresholds.unwrap();
    assert_eq!(t.verdicts.max_gap_ns, Some(NS_PER_SEC));
    assert_eq!(t.verdicts.fairness_max_ratio, None);
    assert!(t.verdicts.skip.is_empty());
    assert_eq!(t.diff, DiffLimits::default());
}

#[test]
fn parse_errors_name_the_key() {
    let e = error_of("[thresholds.verdicts]\nbogus = 1\n");
    assert!(e.contains("bogus"), "{e}");
    let e = error_of("[thresholds.verdicts]\nmax_gap = 250\n");
    assert!(e.contains("needs a unit"), "{e}");
    let e = error_of("[thresholds.verdicts]\nfairness_max_ratio = -1.0\n");
    assert!(e.contains("-1") && e.contains("line"), "{e}");
    let e = error_of("[thresholds]\nmax_gap = \"1s\"\n");
    assert!(e.contains("max_gap"), "{e}");
}

#[test]
fn validation_errors_name_the_field_and_rule() {
    let cases: [(&str, &str, &str); 9] = [
        (
            "[thresholds.verdicts]\nfairness_max_ratio = 0.5\n",
            "thresholds.verdicts.fairness_max_ratio",
            "below 1",
        ),
        (
            "[thresholds.verdicts]\nmax_gap = \"0s\"\n",
            "thresholds.verdicts.max_gap",
            "= 0 is not allowed",
        ),
        (
            "[thresholds.verdicts]\nwake_min_count = 0\n",
            "thresholds.verdicts.wake_min_count",
            "= 0 is not allowed",
        ),
        (
            "[thresholds.verdicts]\nweight_share_tolerance_pct = 0\n",
            "thresholds.verdicts.weight_share_tolerance_pct",
            "= 0 is not allowed",
        ),
        (
            "[thresholds.verdicts]\nskip = [\"no-such-verdict\"]\n",
            "thresholds.verdicts.skip[0]",
            "names no verdict known here; use one of not-starved",
        ),
        (
            "[thresholds.verdicts]\nskip = [\"fairness-spread\", \"fairness-spread\"]\n",
            "thresholds.verdicts.skip[1]",
            "already declared at thresholds.verdicts.skip[0]",
        ),
        (
            "[thresholds.diff]\nalpha = 0\n",
            "thresholds.diff.alpha",
            "= 0 is not allowed",
        ),
        (
            "[thresholds.diff]\nalpha = 1.0\n",
            "thresholds.diff.alpha",
            "not below 1",
        ),
        (
            "[thresholds.diff]\nmin_runs = 0\n",
            "thresholds.diff.min_runs",
            "= 0 is not allowed",
        ),
    ];
    for (section, field, rule) in cases {
        let e = error_of(section);
        assert!(
            e.starts_with(&format!("scenario: {field} ")) && e.contains(rule),
            "{section}: {e}"
        );
    }
}

#[test]
fn every_verdict_name_may_be_skipped() {
    let list: Vec<String> = VERDICT_NAMES.iter().map(|n| format!("{n:?}")).collect();
    let sc = Scenario::from_toml_str(&with(&format!(
        "[thresholds.verdicts]\nskip = [{}]\n",
        list.join(", ")
    )))
    .unwrap();
    assert_eq!(
        sc.thresholds.unwrap().verdicts.skip.len(),
        VERDICT_NAMES.len()
    );
}

#[test]
fn builder_sets_and_validates_thresholds() {
    let step = Step::new().hold_ms(1_000);
    let spec = ThresholdsSpec {
        verdicts: VerdictLimits {
            max_gap_ns: Some(0),
            ..VerdictLimits::default()
        },
        ..ThresholdsSpec::default()
    };
    let err = Scenario::builder("b")
        .step(step.clone())
        .thresholds(spec)
        .try_build()
        .unwrap_err();
    assert_eq!(err.field, "thresholds.verdicts.max_gap");
    let ok = Scenario::builder("b")
        .step(step)
        .thresholds(ThresholdsSpec::default())
        .try_build()
        .unwrap();
    assert!(ok.thresholds.unwrap().is_empty());
}

#[test]
fn round_trips_through_toml_and_postcard() {
    let text = with(
        r#"
[thresholds.verdicts]
fairness_max_ratio = 1.25
max_gap = "2.5ms"
skip = ["runqueue-stall"]

[thresholds.diff]
alpha = 0.01
min_intervals = 3
"#,
    );
    let sc = Scenario::from_toml_str(&text).unwrap();
    let toml = sc.to_toml_string().unwrap();
    assert!(toml.contains("max_gap = \"2500us\""), "{toml}");
    assert_eq!(Scenario::from_toml_str(&toml).unwrap(), sc, "{toml}");
    let bytes = postcard::to_allocvec(&sc).unwrap();
    assert_eq!(postcard::from_bytes::<Scenario>(&bytes).unwrap(), sc);
    // Unset fields cost one byte each on the wire.
    let unset = Scenario {
        thresholds: Some(ThresholdsSpec::default()),
        ..sc.clone()
    };
    let none = Scenario {
        thresholds: None,
        ..sc
    };
    let len = |s: &Scenario| postcard::to_allocvec(s).unwrap().len();
    assert_eq!(len(&unset), len(&none) + 13);
}

#[test]
fn ppm_converts_and_displays() {
    assert_eq!(Ppm::from_f64(1.5), Some(Ppm(1_500_000)));
    assert_eq!(Ppm::from_f64(-0.1), None);
    assert_eq!(Ppm::from_f64(f64::NAN), None);
    assert_eq!(Ppm::from_f64(5000.0), None);
    assert_eq!(Ppm(2_500_000).to_string(), "2.5");
    assert_eq!(Ppm(20_000_000).to_string(), "20");
}

#[test]
fn weight_fairness_fixture_carries_thresholds() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/scenarios/weight-fairness.toml");
    let t = Scenario::load(path).unwrap().thresholds.unwrap();
    assert_eq!(t.verdicts.fairness_max_ratio, Some(Ppm(1_500_000)));
    assert_eq!(t.verdicts.skip, ["wake-latency-p99"]);
    assert_eq!(t.diff, DiffLimits::default());
}

#[test]
fn a_fairness_ratio_of_exactly_one_is_allowed() {
    let sc = Scenario::from_toml_str(&with("[thresholds.verdicts]\nfairness_max_ratio = 1.0\n"))
        .expect("1.0 parses");
    let errs: Vec<String> = sc.validate_all().iter().map(ToString::to_string).collect();
    assert!(errs.is_empty(), "{errs:?}");
    assert!(error_of("[thresholds.verdicts]\nfairness_max_ratio = 0.999999\n").contains("below 1"));
}
