//! Scenario builders and the error assertion shared by the validation tests.
#![allow(dead_code)] // each test file uses a different subset

use trace_format::scenario::*;

/// A valid scenario: 4 CPUs in 2 LLCs, a backdrop cgroup "bg", two steps.
pub fn base() -> Scenario {
    Scenario::builder("base")
        .topology(Topology::parse("1n2l2c1t").unwrap())
        .duration_ms(4_000)
        .backdrop_cgroup(CgroupDef::new("bg").work(spin(1)))
        .step(
            Step::new()
                .named("main")
                .cgroup(CgroupDef::new("a").work(spin(2)))
                .hold_frac(0.5),
        )
        .step(Step::new().named("second").hold_frac(0.5))
        .build()
}

pub fn spin(n: u32) -> WorkSpec {
    WorkSpec::new(WorkType::SpinWait).workers(n)
}

/// `base()` with step 0's cgroup "a" replaced by `def`.
pub fn with_def(def: CgroupDef) -> Scenario {
    let mut sc = base();
    sc.steps[0].setup = vec![def];
    sc
}

/// `base()` with a work spec in step 0's cgroup "a".
pub fn with_work(work: WorkSpec) -> Scenario {
    with_def(CgroupDef::new("a").work(work))
}

/// `base()` with `ops` on step 1 ("second").
pub fn with_ops(ops: Vec<Op>) -> Scenario {
    let mut sc = base();
    sc.steps[1].ops = ops;
    sc
}

/// Asserts validation fails with an error whose text contains every part.
#[track_caller]
pub fn assert_err(sc: &Scenario, parts: &[&str]) {
    let first = sc.validate().expect_err("scenario should be rejected");
    let all: Vec<String> = sc.validate_all().iter().map(ToString::to_string).collect();
    assert!(all.contains(&first.to_string()));
    assert!(
        all.iter().any(|e| parts.iter().all(|p| e.contains(p))),
        "no error contains all of {parts:?}; got:\n{}",
        all.join("\n")
    );
}

/// Where step 0's cgroup "a" is named in messages.
pub const STEP0: &str = "step 0 (\"main\"), cgroup \"a\"";
