//! The scenario model: topology maths, cpuset and affinity resolution, op kinds,
//! fixed-point units, and a postcard round trip of a scenario using every variant.

use trace_format::scenario::*;

fn cpus(v: &[u32]) -> CpuList {
    CpuList::new(v.iter().copied())
}

#[test]
fn topology_parse_display_and_presets() {
    let t = Topology::parse("1n2l4c2t").unwrap();
    assert_eq!(t, Topology::new(1, 2, 4, 2));
    assert_eq!(t.to_string(), "1n2l4c2t");
    assert_eq!(t.cpus(), 16);
    assert_eq!(
        "tiny".parse::<Topology>().unwrap(),
        Topology::new(1, 1, 2, 1)
    );
    assert_eq!(Topology::parse("smt").unwrap(), Topology::new(1, 1, 2, 2));
    assert_eq!(Topology::parse("numa2").unwrap(), Topology::new(2, 1, 2, 1));
    assert_eq!(Topology::parse("llc2").unwrap(), Topology::new(1, 2, 2, 1));
    for (name, t) in Topology::PRESETS {
        assert_eq!(Topology::parse(name).unwrap(), *t);
        assert_eq!(Topology::parse(&t.to_string()).unwrap(), *t);
    }
    for bad in ["", "1n2l4c", "1n2l4c2t3", "xn1l1c1t", "1l1n1c1t", "big"] {
        let e = Topology::parse(bad).unwrap_err();
        assert!(e.to_string().contains("preset"), "{e}");
    }
}

#[test]
fn topology_cpu_helpers() {
    let t = Topology::parse("2n2l2c2t").unwrap(); // 16 CPUs
    assert_eq!(t.llcs(), 4);
    assert_eq!(t.cores(), 8);
    assert_eq!(t.node_cpus(1), cpus(&[8, 9, 10, 11, 12, 13, 14, 15]));
    assert_eq!(t.llc_cpus(1), cpus(&[4, 5, 6, 7]));
    assert_eq!(t.core_cpus(3), cpus(&[6, 7]));
    assert_eq!(t.siblings(7), cpus(&[6, 7]));
    assert_eq!(
        t.locate(13),
        Some(CpuLocation {
            node: 1,
            llc: 3,
            core: 6,
            thread: 1
        })
    );
    assert_eq!(t.locate(16), None);
    assert!(t.node_cpus(2).is_empty());
    assert!(t.siblings(99).is_empty());
    assert_eq!(t.all_cpus().len(), 16);
}

#[test]
fn cpu_list_display() {
    assert_eq!(cpus(&[3, 0, 1, 2, 6, 8, 9]).to_string(), "0-3,6,8-9");
    assert_eq!(CpuList::default().to_string(), "");
    assert_eq!(cpus(&[0, 1, 2]).intersect(&cpus(&[1, 2, 5])), cpus(&[1, 2]));
}

#[test]
fn cpuset_resolution() {
    let t = Topology::parse("2n2l2c1t").unwrap(); // 8 CPUs, 4 LLCs of 2
    let r = |s: CpusetSpec| s.resolve(&t);
    assert_eq!(r(CpusetSpec::Llc(3)).unwrap(), cpus(&[6, 7]));
    assert_eq!(r(CpusetSpec::Node(1)).unwrap(), cpus(&[4, 5, 6, 7]));
    assert_eq!(
        r(CpusetSpec::range(0.25, 0.75)).unwrap(),
        cpus(&[2, 3, 4, 5])
    );
    assert_eq!(
        r(CpusetSpec::Disjoint { index: 2, of: 4 }).unwrap(),
        cpus(&[4, 5])
    );
    assert_eq!(
        r(CpusetSpec::Disjoint { index: 1, of: 3 }).unwrap(),
        cpus(&[2, 3, 4])
    );
    let half = Fraction::from_f64(0.5).unwrap();
    assert_eq!(
        r(CpusetSpec::Overlap {
            index: 0,
            of: 2,
            overlap: half
        })
        .unwrap(),
        cpus(&[0, 1, 2, 3, 4, 5])
    );
    assert_eq!(
        r(CpusetSpec::Overlap {
            index: 1,
            of: 2,
            overlap: half
        })
        .unwrap(),
        cpus(&[2, 3, 4, 5, 6, 7])
    );
    assert_eq!(r(CpusetSpec::exact([5, 1, 1])).unwrap(), cpus(&[1, 5]));
    assert!(matches!(
        r(CpusetSpec::Llc(4)),
        Err(CpusetError::NoSuchLlc {
            index: 4,
            count: 4,
            ..
        })
    ));
    assert!(matches!(
        r(CpusetSpec::range(0.0, 0.1)),
        Err(CpusetError::Empty { .. })
    ));
    assert!(matches!(
        r(CpusetSpec::range(0.6, 0.2)),
        Err(CpusetError::BadRange { .. })
    ));
    assert!(matches!(
        r(CpusetSpec::Overlap {
            index: 0,
            of: 2,
            overlap: Fraction::from_ppm(2_000_000)
        }),
        Err(CpusetError::OverlapAboveOne(_))
    ));
}

#[test]
fn affinity_resolution() {
    let t = Topology::parse("1n2l2c1t").unwrap();
    let cg = cpus(&[1, 2, 3]);
    let r = |a: AffinityIntent, w| a.resolve(&t, Some(&cg), w);
    assert_eq!(r(AffinityIntent::Inherit, 0).unwrap(), None);
    assert_eq!(r(AffinityIntent::SingleCpu, 4).unwrap(), Some(cpus(&[2])));
    assert_eq!(r(AffinityIntent::Llc, 0).unwrap(), Some(cpus(&[1])));
    assert_eq!(r(AffinityIntent::Llc, 1).unwrap(), Some(cpus(&[2, 3])));
    assert_eq!(r(AffinityIntent::Node, 0).unwrap(), Some(cpus(&[1, 2, 3])));
    assert_eq!(
        r(AffinityIntent::Cpus(cpus(&[0, 1])), 0).unwrap(),
        Some(cpus(&[1]))
    );
    assert_eq!(
        r(AffinityIntent::CrossCgroup, 0).unwrap(),
        Some(cpus(&[0, 1, 2, 3]))
    );
    assert!(matches!(
        r(AffinityIntent::Cpus(cpus(&[0])), 0),
        Err(AffinityError::Disjoint { .. })
    ));
    assert!(matches!(
        r(AffinityIntent::Cpus(cpus(&[4])), 0),
        Err(AffinityError::NoSuchCpu { cpu: 4, .. })
    ));
}

#[test]
fn workers_pct_rounds_up() {
    let w = WorkSpec::new(WorkType::SpinWait).workers_pct(50);
    assert_eq!(w.resolve_workers(3), 2);
    assert_eq!(w.resolve_workers(1), 1);
    assert_eq!(
        WorkSpec::new(WorkType::SpinWait)
            .workers(7)
            .resolve_workers(3),
        7
    );
}

#[test]
fn op_kinds_are_contiguous_and_named_like_serde() {
    for (i, k) in OpKind::ALL.iter().enumerate() {
        assert_eq!(k.index() as usize, i);
        // The serde name of an OpKind is its TOML name.
        #[derive(serde::Serialize)]
        struct W {
            k: OpKind,
        }
        assert_eq!(
            toml::to_string(&W { k: *k }).unwrap().trim(),
            format!("k = \"{}\"", k.name())
        );
    }
    for op in every_op() {
        let text = toml::to_string(&StepOps {
            ops: vec![op.clone()],
        })
        .unwrap();
        assert!(text.contains(op.name()), "{text}");
    }
    let mut names: Vec<&str> = OpKind::ALL.iter().map(|k| k.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 28);
    assert_eq!(
        every_op().iter().map(Op::kind).collect::<Vec<_>>(),
        OpKind::ALL
    );
}

#[derive(serde::Serialize)]
struct StepOps {
    ops: Vec<Op>,
}

#[test]
fn fractions_and_units() {
    assert_eq!(
        Fraction::from_f64(0.5).unwrap(),
        Fraction::from_ppm(500_000)
    );
    assert_eq!(Fraction::from_f64(1.0).unwrap(), Fraction::ONE);
    assert_eq!(Fraction::from_f64(1.5), Err(FractionError::AboveOne));
    assert_eq!(
        Fraction::from_f64(f64::INFINITY),
        Err(FractionError::NotFinite)
    );
    assert_eq!(Fraction::from_f64_lossy(f64::NAN), Fraction::ZERO);
    assert_eq!(Fraction::from_ppm(250_000).to_string(), "0.25");
    assert_eq!(
        Fraction::from_ppm(250_000).of_u64(4 * NS_PER_SEC),
        NS_PER_SEC
    );
    assert_eq!(parse_duration("2.5s").unwrap(), 2_500 * NS_PER_MS);
    assert_eq!(parse_duration("100us").unwrap(), 100 * NS_PER_US);
    assert_eq!(parse_duration("1m").unwrap(), 60 * NS_PER_SEC);
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("-1s").is_err());
    assert_eq!(format_duration(2_500 * NS_PER_MS), "2500ms");
    assert_eq!(format_duration(120 * NS_PER_SEC), "2m");
    assert_eq!(format_duration(0), "0s");
    assert_eq!(parse_bytes("1.5K").unwrap(), 1536);
    assert_eq!(parse_bytes("4GiB").unwrap(), 4 << 30);
    assert!(parse_bytes("4X").is_err());
}

fn spin(n: u32) -> WorkSpec {
    WorkSpec::new(WorkType::SpinWait).workers(n)
}

/// One op of every kind, in `OpKind::ALL` order, valid against `full()`.
fn every_op() -> Vec<Op> {
    vec![
        Op::add_cgroup("tmp"),
        Op::remove_cgroup("tmp"),
        Op::AddCgroupDef(
            CgroupDef::new("late")
                .cpuset(CpusetSpec::Node(0))
                .work(spin(1)),
        ),
        Op::set_cpuset("x", CpusetSpec::Disjoint { index: 0, of: 2 }),
        Op::clear_cpuset("x"),
        Op::swap_cpusets("x", "late"),
        Op::spawn("sink", WorkSpec::new(WorkType::ForkExit).workers_pct(25)),
        Op::stop_cgroup("late"),
        Op::set_affinity("x", AffinityIntent::Llc),
        Op::move_all_tasks("late", "sink"),
        Op::RunPayload {
            payload: "p".into(),
            args: vec!["-v".into()],
            cgroup: Some("sink".into()),
        },
        Op::WaitPayload {
            payload: "p".into(),
            cgroup: Some("sink".into()),
        },
        Op::kill_payload("p"),
        Op::freeze_cgroup("x"),
        Op::unfreeze_cgroup("x"),
        Op::capture_snapshot("snap"),
        Op::watch_snapshot("scx_watchdog_timestamp"),
        Op::ReadKernelHot(KernelRead::new("jiffies", 8)),
        Op::ReadKernelCold(KernelRead::new("runqueues", 4).on_cpu(1)),
        Op::WriteKernelHot(KernelWrite::new("sysctl_sched_base_slice", 4, 3_000_000)),
        Op::WriteKernelCold(KernelWrite {
            symbol: "runqueues".into(),
            offset: 16,
            cpu: Some(0),
            width: 2,
            value: 7,
        }),
        Op::attach_scheduler("alt"),
        Op::DetachScheduler,
        Op::RestartScheduler,
        Op::replace_scheduler("alt"),
        Op::pin_bpf_map("task_ctx"),
        Op::capture_cgroup_procs("procs", "x"),
        Op::steer_irq(IrqSelector::Number(11), 1),
    ]
}

/// A scenario that uses every op, work type, cpuset form and hold kind.
fn full() -> Scenario {
    let works = [
        WorkType::SpinWait,
        WorkType::YieldHeavy,
        WorkType::Mixed,
        WorkType::IoSleep { sleep_us: 100 },
        WorkType::Bursty {
            burst_us: 50,
            sleep_us: 50,
        },
        WorkType::FutexPingPong,
        WorkType::PipeIo,
        WorkType::CachePressure { kib: 256 },
        WorkType::ForkExit,
        WorkType::AffinityChurn,
        WorkType::PolicyChurn,
        WorkType::NiceSweep,
        WorkType::PageFaultChurn,
        WorkType::FutexFanOut { fan: 3 },
        WorkType::MutexContention { holders: 1 },
        WorkType::Sequence(vec![WorkPhase {
            work: WorkType::Mixed,
            duration_ns: 5 * NS_PER_MS,
        }]),
    ];
    let mut big = CgroupDef::new("big")
        .cpuset(CpusetSpec::range(0.0, 1.0))
        .mems([0])
        .weight(300)
        .cpu_max(50_000, 100_000)
        .memory_max(1 << 30)
        .memory_high(1 << 29)
        .memory_low(1 << 20)
        .memory_swap_max(0)
        .io_weight(500)
        .pids_max(1000);
    for w in works {
        big = big.work(
            WorkSpec::new(w)
                .workers(4)
                .policy(SchedPolicy::Batch)
                .nice(3)
                .comm("w"),
        );
    }
    let mut payload = PayloadSpec::new("p", "/usr/bin/stress-ng");
    payload.args = vec!["--cpu".into(), "1".into()];
    Scenario::builder("full")
        .description("every variant")
        .topology(Topology::parse("1n2l2c1t").unwrap())
        .duration_ms(10_000)
        .settle_ms(250)
        .sample_interval_ms(20)
        .snapshot_interval_ms(500)
        .scheduler(SchedulerSpec::Named {
            name: "scx_simple".into(),
            args: vec!["-v".into()],
        })
        .stage_scheduler("alt", "/opt/scx_alt", vec![])
        .payload(payload)
        .backdrop_cgroup(
            CgroupDef::new("x")
                .cpuset(CpusetSpec::Overlap {
                    index: 1,
                    of: 2,
                    overlap: Fraction::from_ppm(100_000),
                })
                .work(spin(1)),
        )
        .backdrop_cgroup(
            CgroupDef::new("gone")
                .cpuset(CpusetSpec::exact([0, 3]))
                .work(
                    spin(1)
                        .policy(SchedPolicy::Fifo(5))
                        .affinity(AffinityIntent::Cpus(CpuList::new([3]))),
                ),
        )
        .backdrop_op(Op::remove_cgroup("gone"))
        .backdrop_op(Op::add_cgroup("sink"))
        .step(Step::new().named("setup").cgroup(big).hold_frac(0.25))
        .step(Step::new().named("ops").ops(every_op()).hold_ms(2_000))
        .step(
            Step::new()
                .op(Op::capture_snapshot("tick"))
                .loop_every_ms(100),
        )
        .step(
            Step::new()
                .cgroup(
                    CgroupDef::new("rr").cpuset(CpusetSpec::Llc(1)).work(
                        spin(2)
                            .policy(SchedPolicy::RoundRobin(50))
                            .affinity(AffinityIntent::CrossCgroup),
                    ),
                )
                .hold_frac(0.1),
        )
        .build()
}

#[test]
fn full_scenario_is_valid() {
    let sc = full();
    assert_eq!(sc.validate_all(), vec![]);
}

#[test]
fn full_scenario_postcard_round_trip() {
    let sc = full();
    let bytes = postcard::to_allocvec(&sc).unwrap();
    let back: Scenario = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, sc);
}

#[test]
fn full_scenario_toml_round_trip() {
    let sc = full();
    let text = sc.to_toml_string().unwrap();
    assert_eq!(
        Scenario::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}")),
        sc
    );
}

#[test]
fn topology_postcard_matches_a_plain_struct() {
    #[derive(serde::Serialize)]
    struct Plain {
        a: u16,
        b: u16,
        c: u16,
        d: u16,
    }
    let t = Topology::new(2, 3, 4, 300);
    let plain = Plain {
        a: 2,
        b: 3,
        c: 4,
        d: 300,
    };
    assert_eq!(
        postcard::to_allocvec(&t).unwrap(),
        postcard::to_allocvec(&plain).unwrap()
    );
}

#[test]
fn hold_durations() {
    let sc = full();
    assert_eq!(sc.hold_ns(0), Some(2_500 * NS_PER_MS));
    assert_eq!(sc.hold_ns(1), Some(2 * NS_PER_SEC));
    assert_eq!(sc.hold_ns(2), None);
    assert_eq!(sc.hold_ns(9), None);
}

#[test]
fn try_build_validates() {
    let err = Scenario::builder("bad")
        .duration_ms(0)
        .step(Step::new())
        .try_build()
        .unwrap_err();
    assert_eq!(err.field, "duration");
    assert!(
        Scenario::builder("ok")
            .step(Step::new())
            .try_build()
            .is_ok()
    );
}
