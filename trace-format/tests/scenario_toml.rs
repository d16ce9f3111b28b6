//! TOML: every fixture loads and round-trips; parse errors carry line and column.

use std::path::PathBuf;

use trace_format::scenario::*;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/scenarios")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_loads_and_validates() {
    let files = fixtures();
    for name in ["smoke.toml", "cpuset-churn.toml", "weight-fairness.toml"] {
        assert!(
            files.iter().any(|p| p.ends_with(name)),
            "missing fixture {name}"
        );
    }
    for path in files {
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sc.validate_all(), vec![], "{}", path.display());
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(sc.name, stem, "scenario name should match its file name");
    }
}

#[test]
fn every_fixture_round_trips_through_toml_and_postcard() {
    for path in fixtures() {
        let sc = Scenario::load(&path).unwrap();
        let text = sc.to_toml_string().unwrap();
        let back = Scenario::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        assert_eq!(back, sc, "{}", path.display());
        let bytes = postcard::to_allocvec(&sc).unwrap();
        assert_eq!(postcard::from_bytes::<Scenario>(&bytes).unwrap(), sc);
    }
}

#[test]
fn smoke_fixture_shape() {
    let sc = Scenario::load(fixtures_dir().join("smoke.toml")).unwrap();
    assert_eq!(sc.topology.to_string(), "1n1l2c1t");
    assert_eq!(sc.duration_ns, 4 * NS_PER_SEC);
    assert_eq!(sc.settle_ns, 500 * NS_PER_MS);
    assert_eq!(sc.steps[0].setup.len(), 2);
    assert_eq!(
        sc.steps[0].hold,
        HoldSpec::Frac(Fraction::from_ppm(500_000))
    );
    assert_eq!(
        sc.steps[0].setup[0].works[0],
        WorkSpec::new(WorkType::SpinWait).workers(2)
    );
}

#[test]
fn weight_fairness_fixture_shape() {
    let sc = Scenario::load(fixtures_dir().join("weight-fairness.toml")).unwrap();
    let [heavy, light] = &sc.backdrop.cgroups[..] else {
        panic!("two cgroups expected")
    };
    assert_eq!((heavy.cpu_weight, light.cpu_weight), (Some(200), Some(100)));
    let cpus = |d: &CgroupDef| d.cpuset.as_ref().unwrap().resolve(&sc.topology).unwrap();
    assert_eq!(cpus(heavy), cpus(light));
}

const MINIMAL: &str = r#"
name = "t"
duration = "1s"

[[steps]]
"#;

fn parse_err(text: &str) -> (usize, usize, String) {
    match Scenario::from_toml_str(text) {
        Err(ScenarioFileError::Parse {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn minimal_scenario_gets_defaults() {
    let sc = Scenario::from_toml_str(MINIMAL).unwrap();
    assert_eq!(sc.topology, Topology::default());
    assert_eq!(sc.sample_interval_ns, Scenario::DEFAULT_SAMPLE_INTERVAL_NS);
    assert_eq!(sc.scheduler, SchedulerSpec::Eevdf);
    assert_eq!(sc.steps, vec![Step::new()]);
}

#[test]
fn unknown_field_is_rejected_with_position() {
    let text = "name = \"t\"\nduration = \"1s\"\n\n[[steps]]\n[[steps.setup]]\nname = \"a\"\ncpu_wieght = 200\n";
    let (line, column, message) = parse_err(text);
    assert_eq!((line, column), (7, 1), "{message}");
    assert!(message.contains("unknown field `cpu_wieght`"), "{message}");
}

#[test]
fn nan_hold_is_rejected_with_position() {
    let text = format!("{MINIMAL}hold = {{ frac = nan }}\n");
    let (line, _, message) = parse_err(&text);
    assert_eq!(line, 6);
    assert!(
        message.contains("hold.frac = NaN is not a finite number"),
        "{message}"
    );
}

#[test]
fn negative_hold_is_rejected() {
    let (_, _, message) = parse_err(&format!("{MINIMAL}hold = {{ frac = -0.5 }}\n"));
    assert!(
        message.contains("hold.frac = -0.5 is negative"),
        "{message}"
    );
}

#[test]
fn hold_above_one_is_rejected() {
    let (_, _, message) = parse_err(&format!("{MINIMAL}hold = {{ frac = 1.5 }}\n"));
    assert!(message.contains("hold.frac = 1.5 is above 1"), "{message}");
}

#[test]
fn zero_hold_is_a_validation_error_naming_the_step() {
    let err = Scenario::from_toml_str(&format!(
        "{MINIMAL}name = \"only\"\nhold = {{ frac = 0.0 }}\n"
    ))
    .unwrap_err();
    assert!(matches!(err, ScenarioFileError::Invalid { .. }));
    assert!(
        err.to_string()
            .starts_with("step 0 (\"only\"): hold.frac = 0"),
        "{err}"
    );
}

#[test]
fn hold_forms() {
    let hold = |h: &str| {
        Scenario::from_toml_str(&format!("{MINIMAL}hold = {h}\n")).map(|s| s.steps[0].hold)
    };
    assert_eq!(hold("\"500ms\"").unwrap(), HoldSpec::Fixed(500 * NS_PER_MS));
    assert_eq!(
        hold("{ fixed = \"0.25s\" }").unwrap(),
        HoldSpec::Fixed(250 * NS_PER_MS)
    );
    assert_eq!(hold("{ frac = 1 }").unwrap(), HoldSpec::FULL);
    assert!(
        matches!(
            hold("{ loop = \"100ms\" }"),
            Err(ScenarioFileError::Invalid { .. })
        ),
        "a loop without ops is invalid"
    );
    assert!(hold("{ frac = 0.5, fixed = \"1s\" }").is_err());
    assert!(hold("{ every = \"1s\" }").is_err());
}

#[test]
fn duration_without_unit_is_rejected() {
    let (line, _, message) = parse_err("name = \"t\"\nduration = 10\n[[steps]]\n");
    assert_eq!(line, 2);
    assert!(message.contains("needs a unit"), "{message}");
}

#[test]
fn duration_with_unknown_unit_is_rejected() {
    let (_, _, message) = parse_err("name = \"t\"\nduration = \"10 parsecs\"\n[[steps]]\n");
    assert!(message.contains("unknown unit"), "{message}");
}

#[test]
fn topology_forms() {
    let topo =
        |t: &str| Scenario::parse_toml(&format!("topology = {t}\n{MINIMAL}")).map(|s| s.topology);
    assert_eq!(topo("\"numa2\"").unwrap(), Topology::new(2, 1, 2, 1));
    assert_eq!(topo("\"1n2l4c2t\"").unwrap(), Topology::new(1, 2, 4, 2));
    assert_eq!(
        topo("{ nodes = 1, llcs_per_node = 1, cores_per_llc = 4, threads_per_core = 1 }").unwrap(),
        Topology::new(1, 1, 4, 1)
    );
    let Err(ScenarioFileError::Parse { line, message, .. }) = topo("\"bogus\"") else {
        panic!()
    };
    assert_eq!(line, 1);
    assert!(
        message.contains("preset") && message.contains("tiny"),
        "{message}"
    );
}

#[test]
fn memory_sizes_accept_units() {
    let text = format!(
        "{MINIMAL}[[steps.setup]]\nname = \"a\"\nmemory_max = \"512M\"\nmemory_high = 1048576\n"
    );
    let sc = Scenario::parse_toml(&text).unwrap();
    assert_eq!(sc.steps[0].setup[0].memory_max, Some(512 << 20));
    assert_eq!(sc.steps[0].setup[0].memory_high, Some(1 << 20));
}

#[test]
fn validation_errors_come_through_from_toml() {
    let text = format!("{MINIMAL}[[steps.setup]]\nname = \"a\"\ncpu_weight = 0\n");
    let err = Scenario::from_toml_str(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "step 0, cgroup \"a\": cpu.weight = 0 is out of range 1..=10000; use a value between 1 and 10000"
    );
}

#[test]
fn load_reports_missing_file_and_names_the_path() {
    let err = Scenario::load("/nonexistent/x.toml").unwrap_err();
    assert!(matches!(err, ScenarioFileError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/x.toml"));

    let dir = std::env::temp_dir().join(format!("schedtape-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "name = \"t\"\nduration = 5\n[[steps]]\n").unwrap();
    let err = Scenario::load(&file).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.starts_with(&format!("{}: line 2, column", file.display())),
        "{err}"
    );
}

#[test]
fn ops_in_toml() {
    let text = r#"
name = "ops"
duration = "2s"
staged_schedulers = [{ name = "scx_alt" }]
payloads = [{ name = "stress", path = "/usr/bin/stress-ng", args = ["--cpu", "1"] }]

[[backdrop.cgroups]]
name = "a"
[[backdrop.cgroups.works]]
work = "spin_wait"
workers = 1

[[steps]]
hold = "1s"
ops = [
    { add_cgroup = { name = "sink" } },
    { run_payload = { payload = "stress", cgroup = "sink" } },
    { read_kernel_cold = { symbol = "jiffies", width = 8 } },
    { write_kernel_hot = { symbol = "sysctl_sched_base_slice", width = 4, value = 3000000 } },
    { attach_scheduler = { scheduler = "scx_alt" } },
    "detach_scheduler",
    { steer_irq = { irq = { label = "virtio0" }, cpu = 1 } },
    { spawn = { placement = "runner", work = { work = "yield_heavy", workers = 1 } } },
    { kill_payload = { payload = "stress" } },
]
"#;
    let sc = Scenario::from_toml_str(text).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = sc.steps[0].ops.iter().map(Op::name).collect();
    assert_eq!(
        kinds,
        [
            "add_cgroup",
            "run_payload",
            "read_kernel_cold",
            "write_kernel_hot",
            "attach_scheduler",
            "detach_scheduler",
            "steer_irq",
            "spawn",
            "kill_payload"
        ]
    );
    assert_eq!(
        Scenario::from_toml_str(&sc.to_toml_string().unwrap()).unwrap(),
        sc
    );
}
