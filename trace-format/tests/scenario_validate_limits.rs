//! Size, count and range limits: huge topologies, absurd times, scenarios the
//! guest could not hold. Each test names the field and the limit in the message.

use std::mem::size_of;

use trace_format::scenario::limits::*;
use trace_format::scenario::*;

mod validate_common;
use validate_common::*;

fn from_toml(extra: &str) -> Scenario {
    let text = format!(
        "name = \"t\"\nduration = \"4s\"\n{extra}\n[[steps]]\nsetup = [{{ name = \"a\", works = [{{ work = \"spin_wait\", workers = 1 }}] }}]\n"
    );
    Scenario::parse_toml(&text).expect("parses")
}

// ---- topology: checked arithmetic ----

#[test]
fn topology_past_u32_is_refused_with_its_exact_cpu_count() {
    for (topo, cpus) in [
        ("999n999l999c999t", "996005996001 CPUs"),
        ("256n256l256c256t", "4294967296 CPUs"),
    ] {
        let mut sc = base();
        sc.topology = Topology::parse(topo).unwrap();
        assert_err(
            &sc,
            &["scenario", &format!("topology = {topo}"), cpus, "256"],
        );
    }
}

#[test]
fn topology_sizes_never_overflow() {
    let t = Topology::parse("65535n65535l65535c65535t").unwrap();
    assert_eq!(t.cpus_u64(), 65535u64.pow(4));
    assert_eq!(t.cpus(), u32::MAX, "saturates");
    assert_eq!(t.cores(), u32::MAX);
    assert!(
        t.llc_cpus(t.llcs() - 1).is_empty(),
        "span past u32 is empty"
    );
    assert!(t.locate(7).is_some());
}

// ---- times ----

#[test]
fn duration_longer_than_a_day() {
    let sc = from_toml("");
    let mut sc = sc;
    sc.duration_ns = parse_duration("1000000m").unwrap();
    sc.steps[0].hold = HoldSpec::FULL;
    assert_err(
        &sc,
        &["scenario", "duration = 1000000m is out of range", "1440m"],
    );
    sc.duration_ns = MAX_DURATION_NS;
    assert_eq!(sc.validate_all(), vec![]);
}

#[test]
fn settle_longer_than_an_hour() {
    let mut sc = base();
    sc.settle_ns = MAX_SETTLE_NS + 1;
    assert_err(&sc, &["scenario", "settle = ", "out of range 0s..=60m"]);
}

#[test]
fn sample_interval_below_ten_ms() {
    let sc = from_toml("sample_interval = \"1ns\"");
    assert_err(
        &sc,
        &["scenario", "sample_interval = 1ns", "minimum of 10ms"],
    );
    let ok = from_toml("sample_interval = \"10ms\"");
    assert_eq!(ok.validate_all(), vec![]);
}

#[test]
fn snapshot_interval_below_100_ms() {
    let sc = from_toml("snapshot_interval = \"1ns\"");
    assert_err(
        &sc,
        &[
            "scenario",
            "snapshot_interval = 1ns",
            "minimum of 100ms",
            "0 to turn",
        ],
    );
    assert_eq!(
        from_toml("snapshot_interval = \"100ms\"").validate_all(),
        vec![]
    );
    assert_eq!(
        from_toml("snapshot_interval = \"0s\"").validate_all(),
        vec![]
    );
}

#[test]
fn loop_interval_below_a_millisecond() {
    let mut sc = with_ops(vec![Op::AddCgroup { name: "x".into() }]);
    sc.steps[1].hold = HoldSpec::Loop { interval_ns: 1 };
    assert_err(
        &sc,
        &[
            "step 1 (\"second\")",
            "hold.loop = 1ns is out of range 1ms..=1440m",
        ],
    );
}

#[test]
fn phase_shorter_than_a_millisecond() {
    let phases = vec![WorkPhase {
        work: WorkType::SpinWait,
        duration_ns: 1,
    }];
    let sc = with_work(WorkSpec::new(WorkType::Sequence(phases)).workers(1));
    assert_err(
        &sc,
        &[
            STEP0,
            "work.phases[0].duration = 1ns is out of range 1ms..=1440m",
        ],
    );
}

#[test]
fn too_many_phases() {
    let phase = WorkPhase {
        work: WorkType::SpinWait,
        duration_ns: NS_PER_MS,
    };
    let sc = with_work(WorkSpec::new(WorkType::Sequence(vec![phase; 65])).workers(1));
    assert_err(&sc, &[STEP0, "work has 65 phases; at most 64"]);
    assert!(sc.guest_capacity_error().unwrap().contains("65 phases"));
}

// ---- work and cgroup values ----

#[test]
fn work_parameters_have_upper_bounds() {
    let cases = [
        (
            WorkType::IoSleep {
                sleep_us: MAX_WORK_US + 1,
            },
            "work.sleep_us = 10000001 is out of range 1..=10000000",
        ),
        (
            WorkType::Bursty {
                burst_us: MAX_WORK_US + 1,
                sleep_us: 1,
            },
            "work.burst_us = 10000001",
        ),
        (
            WorkType::CachePressure {
                kib: MAX_CACHE_KIB + 1,
            },
            "work.kib = 1048577 is out of range 1..=1048576",
        ),
        (
            WorkType::FutexFanOut { fan: 4096 },
            "work.fan = 4096 is out of range 1..=4095",
        ),
    ];
    for (work, text) in cases {
        let sc = with_work(WorkSpec::new(work).workers(1));
        assert_err(&sc, &[STEP0, text]);
    }
}

#[test]
fn pids_max_and_quota_have_kernel_bounds() {
    let mut def = CgroupDef::new("a").work(spin(1));
    def.pids_max = Some(MAX_PIDS + 1);
    assert_err(
        &with_def(def),
        &[STEP0, "pids.max = 4194305 is out of range 1..=4194304"],
    );
    let mut def = CgroupDef::new("a").work(spin(1));
    def.cpu_max = Some(CpuMax::limited(MAX_QUOTA_US + 1, 100_000));
    assert_err(
        &with_def(def),
        &[STEP0, "cpu.max quota_us = 256000001 is out of range"],
    );
}

// ---- sizes and counts ----

#[test]
fn long_description_and_name() {
    let mut sc = base();
    sc.description = "x".repeat(50_000_000);
    assert_err(
        &sc,
        &[
            "scenario",
            "description is 50000000 bytes long; at most 4096",
        ],
    );
    let mut sc = base();
    sc.name = "n".repeat(256);
    assert_err(&sc, &["scenario", "name is 256 bytes long; at most 255"]);
}

#[test]
fn sixty_thousand_cgroups_are_refused_by_host_and_guest() {
    let mut sc = base();
    sc.steps[1].setup = (0..60_000)
        .map(|i| CgroupDef::new(format!("c{i}")))
        .collect();
    assert_err(
        &sc,
        &["scenario", "cgroups (declared in all) number 60002", "1024"],
    );
    let msg = sc.guest_capacity_error().expect("the guest refuses it too");
    assert!(msg.contains("60002 cgroups"), "{msg}");
    assert_eq!(base().guest_capacity_error(), None);
}

#[test]
fn counts_of_steps_ops_groups_payloads_schedulers() {
    let mut sc = base();
    sc.steps = vec![Step::new().hold_ms(1); MAX_STEPS + 1];
    assert_err(&sc, &["scenario", "steps number 1025", "1024"]);

    let ops = vec![Op::DetachScheduler; MAX_OPS + 1];
    assert_err(
        &with_ops(ops),
        &["scenario", "ops (in all) number 4097", "4096"],
    );

    let works = vec![spin(1); MAX_WORK_SPECS + 1];
    let mut def = CgroupDef::new("a");
    def.works = works;
    assert_err(
        &with_def(def),
        &["scenario", "worker groups (in all) number"],
    );

    let mut sc = base();
    sc.payloads = (0..=MAX_PAYLOADS)
        .map(|i| PayloadSpec::new(format!("p{i}"), "/bin/true"))
        .collect();
    assert_err(&sc, &["scenario", "payloads number 65", "64"]);
}

#[test]
fn encoded_size_is_limited() {
    let mut sc = base();
    let mut p = PayloadSpec::new("p", "/bin/true");
    p.args = vec!["a".repeat(1000); 70];
    sc.payloads.push(p);
    assert!(sc.encoded_len() > MAX_SCENARIO_BYTES);
    assert_err(&sc, &["scenario", "size is", "bytes encoded", "65536"]);
}

// ---- the guest's view ----

#[test]
fn peak_load_counts_backdrop_and_the_largest_step() {
    let mut sc = base();
    sc.steps[1].ops = vec![Op::Spawn {
        placement: SpawnPlacement::Runner,
        work: WorkSpec::new(WorkType::CachePressure { kib: 1024 }).workers(3),
    }];
    let load = PeakLoad::of(&sc);
    // backdrop: "bg" with 1 worker; step 0: "a" with 2; step 1: 3 runner workers.
    assert_eq!(load.workers, 1 + 3);
    assert_eq!(load.cgroups, 1 + 1);
    assert_eq!(load.work_bytes, 3 << 20);
    let cpus = sc.topology.cpus();
    assert_eq!(
        load.guest_bytes(cpus),
        GUEST_BASE_BYTES
            + 4 * GUEST_PER_CPU_BYTES
            + 4 * GUEST_PER_WORKER_BYTES
            + 2 * (GUEST_PER_CGROUP_BYTES + 4 * GUEST_PER_CGROUP_CPU_BYTES)
            + (3 << 20)
    );
}

#[test]
fn workers_pct_counts_against_all_cpus() {
    let sc = with_work(WorkSpec::new(WorkType::SpinWait).workers_pct(100));
    assert_eq!(PeakLoad::of(&sc).workers, 1 + 4);
}

/// The decoded scenario's worst case in the guest's heap, from the limits:
/// every count-limited element at its limit, and every other byte of the
/// encoding spent on the element type that grows the most when decoded.
#[test]
fn worst_case_scenario_fits_the_guest_heap() {
    let counted = MAX_STEPS * size_of::<Step>()
        + MAX_CGROUP_DEFS * size_of::<CgroupDef>()
        + MAX_OPS * size_of::<Op>()
        + MAX_WORK_SPECS * size_of::<WorkSpec>()
        + MAX_PAYLOADS * size_of::<PayloadSpec>()
        + MAX_STAGED_SCHEDULERS * size_of::<StagedScheduler>();
    // Elements only the byte limit bounds; each takes >= 1 encoded byte
    // (a phase >= 2: its work type and its duration).
    let per_byte = [
        size_of::<String>(),
        size_of::<u32>(),
        size_of::<u16>(),
        size_of::<WorkPhase>() / 2,
    ]
    .into_iter()
    .max()
    .unwrap();
    let uncounted = MAX_SCENARIO_BYTES * per_byte;
    // Vec growth may double capacity; string bytes; the raw file while it
    // decodes (read in doubling chunks); one allocator header per allocation.
    let worst = 2 * (counted + uncounted)
        + MAX_SCENARIO_BYTES
        + 2 * MAX_SCENARIO_BYTES
        + MAX_SCENARIO_BYTES / 2 * 32;
    println!("worst case decoded scenario: {worst} bytes (counted {counted}, per byte {per_byte})");
    assert!(
        worst <= GUEST_SCENARIO_HEAP_BYTES,
        "{worst} > {GUEST_SCENARIO_HEAP_BYTES}"
    );
}

#[test]
fn encoded_size_limit_is_inclusive() {
    // Pad a payload's last argument until the scenario encodes to exactly
    // the limit (its length prefix takes 2 bytes in this range).
    let with_last = |len: usize| {
        let mut sc = base();
        let mut p = PayloadSpec::new("p", "/bin/true");
        p.args = vec!["a".repeat(1000); 60];
        p.args.push("b".repeat(len));
        sc.payloads.push(p);
        sc
    };
    let fixed = with_last(0).encoded_len() - 1;
    let len = MAX_SCENARIO_BYTES - fixed - 2;
    assert!((128..16_384).contains(&len), "{len}");
    let at = with_last(len);
    assert_eq!(at.encoded_len(), MAX_SCENARIO_BYTES);
    let errs: Vec<String> = at.validate_all().iter().map(ToString::to_string).collect();
    assert!(
        !errs.iter().any(|e| e.contains("bytes encoded")),
        "{errs:?}"
    );
    assert_err(&with_last(len + 1), &["scenario", "size is 65537 bytes"]);
}
