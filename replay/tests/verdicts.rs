//! Each verdict made to fail (and held at its edges) on small synthetic
//! traces written by the real writer and judged through the library, so a
//! verdict that could no longer fail is noticed.
mod support;

use trace_format::file::{CHUNK_HEADER_LEN, ChunkLimits, Trace, TraceWriter};
use trace_format::record::*;
use trace_format::scenario::NS_PER_MS;

use replay::thresholds::VerdictThresholds;
use replay::verdict::{NAMES, judge, judge_file, judge_with, render, render_with_recorded};

/// One step, two CPUs: cgroup `a` may use CPUs 0-1, cgroup `b` only CPU 1;
/// one spinning worker each (worker 0 in `a`, worker 1 in `b`).
const TWO_CGROUPS: &str = r#"
name = "verdict-synth"
topology = "1n1l2c1t"
duration = "2s"
sample_interval = "100ms"

[[steps]]
name = "main"
setup = [
  { name = "a", cpuset = { exact = [0, 1] }, works = [{ work = "spin_wait", workers = 1 }] },
  { name = "b", cpuset = { exact = [1] }, works = [{ work = "spin_wait", workers = 1 }] },
]
# A loop hold, so the op runs after the setup cgroups exist.
hold = { loop = "1s" }
ops = [{ move_all_tasks = { from = "a", to = "b" } }]
"#;

const MS: u64 = NS_PER_MS;

/// What one worker reports in one 100 ms round.
#[derive(Debug, Clone)]
struct Round {
    run_ns: u64,
    wait_ns: u64,
    cpus: u64,
    wake: Option<WakeStats>,
}

impl Round {
    fn running(cpus: u64) -> Self {
        Round {
            run_ns: 100 * MS,
            wait_ns: 0,
            cpus,
            wake: None,
        }
    }

    /// Runnable the whole round, never ran.
    fn waiting(cpus: u64) -> Self {
        Round {
            run_ns: 0,
            wait_ns: 100 * MS,
            cpus,
            wake: None,
        }
    }
}

/// Step 0 with workers 0 (`a`) and 1 (`b`) reporting `rounds[k]` at
/// (k + 1) × 100 ms; the move op is applied just before round `move_at`.
fn trace(rounds: &[[Round; 2]], move_at: Option<usize>) -> Vec<u8> {
    let mut recs = vec![(0, Record::StepBegin { step: StepRef(0) })];
    for (worker, cgroup) in [(0u32, "a"), (1, "b")] {
        recs.push((
            0,
            Record::WorkerSpawned(WorkerSpawned {
                worker,
                pid: 100 + worker,
                step: StepRef(0),
                cgroup: cgroup.into(),
                work: "spin_wait".into(),
            }),
        ));
    }
    let mut t = 0;
    for (k, pair) in rounds.iter().enumerate() {
        if move_at == Some(k) {
            recs.push((
                t + 50 * MS,
                Record::OpApplied(OpApplied {
                    step: StepRef(0),
                    op: 0,
                    round: 0,
                    duration_ns: 12_000,
                    outcome: OpOutcome::Done,
                }),
            ));
        }
        t += 100 * MS;
        for (worker, r) in (0u32..).zip(pair) {
            recs.push((
                t,
                Record::WorkerSample(WorkerSample {
                    worker,
                    iterations: r.run_ns / 1000,
                    run_ns: r.run_ns,
                    wait_ns: r.wait_ns,
                    timeslices: 25,
                    migrations: 0,
                    voluntary_switches: 0,
                    involuntary_switches: 24,
                    cpus_seen: vec![r.cpus],
                    wake: r.wake.clone(),
                }),
            ));
        }
    }
    recs.push((
        t,
        Record::StepEnd {
            step: StepRef(0),
            outcome: StepOutcome::Completed,
        },
    ));
    recs.push((t, Record::End(RunOutcome::Completed)));
    let meta = support::meta(Some(TWO_CGROUPS));
    let mut w =
        TraceWriter::with_limits(Vec::new(), &meta, ChunkLimits::default()).expect("writer");
    for (ts, r) in &recs {
        w.append(*ts, r).expect("append");
    }
    w.finish().expect("finish")
}

/// The named verdict's outcome and detail.
fn judged(bytes: &[u8], t: &VerdictThresholds, name: &str) -> (VerdictOutcome, String) {
    let trace = Trace::open(bytes).expect("synthetic trace opens");
    let v = judge_with(&trace, t)
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no {name} verdict"));
    (v.outcome, v.detail)
}

/// Ten healthy rounds: `a` on both CPUs, `b` on CPU 1.
fn healthy() -> Vec<[Round; 2]> {
    vec![[Round::running(0b11), Round::running(0b10)]; 10]
}

#[test]
fn cpuset_isolation_fails_on_a_single_violation() {
    let t = VerdictThresholds::default();
    let (ok, detail) = judged(&trace(&healthy(), None), &t, "cpuset-isolation");
    assert_eq!(ok, VerdictOutcome::Pass, "{detail}");

    let mut rounds = healthy();
    rounds[5][1].cpus = 0b01; // `b` seen once on CPU 0
    let (outcome, detail) = judged(&trace(&rounds, None), &t, "cpuset-isolation");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.starts_with("1 of "), "{detail}");
    assert!(detail.contains("worker 1 (b)"), "{detail}");
    assert!(detail.contains("allowed 1"), "{detail}");
}

/// Worker 0 moves from `a` (CPUs 0-1) to `b` (CPU 1) between rounds 4 and 5:
/// its round-5 sample still shows CPU 0 from before the move and is skipped;
/// the same sample one round later is a violation.
#[test]
fn cpuset_isolation_skips_the_sample_that_straddles_a_move() {
    let t = VerdictThresholds::default();
    let mut rounds = healthy();
    for r in &mut rounds[5..] {
        r[0].cpus = 0b10;
    }
    rounds[5][0].cpus = 0b11;
    let (outcome, detail) = judged(&trace(&rounds, Some(5)), &t, "cpuset-isolation");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("straddling"), "{detail}");

    rounds[6][0].cpus = 0b11;
    let (outcome, detail) = judged(&trace(&rounds, Some(5)), &t, "cpuset-isolation");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.starts_with("1 of "), "{detail}");
    assert!(detail.contains("worker 0 (b)"), "{detail}");
}

/// A streak of runnable-never-ran rounds is summed; the limit itself passes,
/// one round past it fails, and a round that ran ends the streak.
#[test]
fn max_sched_gap_fails_past_the_limit() {
    let t = VerdictThresholds {
        max_gap: 300 * MS,
        ..VerdictThresholds::default()
    };
    let with_waits = |waits: &[usize]| {
        let mut rounds = healthy();
        for &k in waits {
            rounds[k][1] = Round::waiting(0b10);
        }
        trace(&rounds, None)
    };
    let (outcome, detail) = judged(&with_waits(&[2, 3, 4]), &t, "max-sched-gap");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("streak 300.00ms"), "{detail}");

    let (outcome, detail) = judged(&with_waits(&[2, 3, 4, 5]), &t, "max-sched-gap");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.contains("streak 400.00ms (worker 1, b"), "{detail}");

    let (outcome, detail) = judged(&with_waits(&[2, 3, 5, 6]), &t, "max-sched-gap");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("streak 200.00ms"), "{detail}");

    let (outcome, detail) = judged(&trace(&healthy(), None), &t, "max-sched-gap");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("no sample was runnable"), "{detail}");
}

/// Every wake-up of cgroup `b` took `latency_ns`: 200 of them per round.
fn wakes(latency_ns: u64) -> Vec<u8> {
    let mut hist = Log2Hist::default();
    for _ in 0..200 {
        hist.record(latency_ns);
    }
    let mut rounds = healthy();
    for r in &mut rounds {
        r[1].wake = Some(WakeStats {
            max_ns: latency_ns,
            hist: hist.clone(),
        });
    }
    trace(&rounds, None)
}

/// p99 is known only to its log2 bucket [2^k, 2^(k+1)): it passes when the
/// ceiling is at or above the bucket's top, fails when at or below its bottom,
/// and is inconclusive in between.
#[test]
fn wake_latency_p99_fails_above_the_ceiling() {
    let latency = 50 * MS; // bucket [2^25, 2^26) ns
    let (low, high) = (1u64 << 25, 1u64 << 26);
    let bytes = wakes(latency);
    let with = |ceiling: u64| VerdictThresholds {
        wake_p99_max: ceiling,
        ..VerdictThresholds::default()
    };
    let (outcome, detail) = judged(&bytes, &with(20 * MS), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    assert!(detail.contains("over 2000 wake-ups"), "{detail}");
    let (outcome, detail) = judged(&bytes, &with(low), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    let (outcome, detail) = judged(&bytes, &with(low + 1), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
    let (outcome, detail) = judged(&bytes, &with(high - 1), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
    let (outcome, detail) = judged(&bytes, &with(high), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");

    // Too few wake-ups are not judged at all.
    let few = VerdictThresholds {
        wake_min_count: 2001,
        ..with(20 * MS)
    };
    let (outcome, detail) = judged(&bytes, &few, "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Inconclusive, "{detail}");
    let (outcome, _) = judged(&wakes(MS), &with(20 * MS), "wake-latency-p99");
    assert_eq!(outcome, VerdictOutcome::Pass);
}

/// `judge` is `judge_with` at the default thresholds: every verdict, in
/// evaluation order; `skip` leaves the named ones out.
#[test]
fn judge_gives_every_verdict_and_skip_leaves_some_out() {
    let bytes = trace(&healthy(), None);
    let trace = Trace::open(&bytes).expect("synthetic trace opens");
    let names = |vs: &[Verdict]| vs.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    let all = judge(&trace);
    assert_eq!(names(&all), NAMES.map(String::from).to_vec());
    assert_eq!(
        names(&all),
        names(&judge_with(&trace, &VerdictThresholds::default()))
    );

    let t = VerdictThresholds {
        skip: vec!["cpuset-isolation".into(), "no-op-errors".into()],
        ..VerdictThresholds::default()
    };
    let left = names(&judge_with(&trace, &t));
    let expected: Vec<String> = NAMES
        .iter()
        .filter(|n| !t.skip.iter().any(|s| s == *n))
        .map(|n| String::from(*n))
        .collect();
    assert_eq!(left, expected);
}

/// Verdicts over a damaged trace say they saw recovered records only; an
/// intact trace's do not.
#[test]
fn verdicts_over_a_damaged_trace_say_so() {
    const MARK: &str = "[damaged trace: recovered records only]";
    let t = VerdictThresholds::default();
    let bytes = trace(&healthy(), None);
    let intact = Trace::open(&bytes).expect("synthetic trace opens");
    for v in judge_with(&intact, &t) {
        assert!(!v.detail.contains(MARK), "{}: {}", v.name, v.detail);
    }
    let cut = &bytes[..bytes.len() - 8];
    let damaged = Trace::open(cut).expect("truncated trace opens");
    assert!(damaged.integrity().is_damaged());
    let verdicts = judge_with(&damaged, &t);
    assert_eq!(verdicts.len(), NAMES.len());
    for v in verdicts {
        assert!(v.detail.ends_with(MARK), "{}: {}", v.name, v.detail);
    }
}

/// A chunk that fails its CRC (the index still lists it) is read as a
/// decode error: its records are lost, the verdicts judge what is left and
/// each says the trace is damaged.
#[test]
fn verdicts_over_a_trace_with_a_corrupt_chunk_say_so() {
    const MARK: &str = "[damaged trace: recovered records only]";
    let t = VerdictThresholds::default();
    let mut bytes = trace(&healthy(), None);
    let (at, len) = {
        let intact = Trace::open(&bytes).expect("synthetic trace opens");
        let c = &intact.chunks()[0];
        (
            usize::try_from(c.offset).expect("small file") + CHUNK_HEADER_LEN,
            usize::try_from(c.payload_len).expect("small chunk"),
        )
    };
    bytes[at + len / 2] ^= 0xff;
    let damaged = Trace::open(&bytes).expect("trace opens by its index");
    assert!(damaged.records().any(|r| r.is_err()), "no decode error");
    let verdicts = judge_with(&damaged, &t);
    assert_eq!(verdicts.len(), NAMES.len());
    for v in verdicts {
        assert!(v.detail.ends_with(MARK), "{}: {}", v.name, v.detail);
    }
}

/// `judge_file` reads and judges a file as `judge` does; `render` writes a
/// row per verdict, and JSON carries `recorded` only beside recorded verdicts.
#[test]
fn judge_file_and_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.trace");
    let bytes = trace(&healthy(), None);
    std::fs::write(&path, &bytes).expect("write trace");
    let from_file = judge_file(&path, None).expect("judge_file");
    let trace = Trace::open(&bytes).expect("synthetic trace opens");
    assert_eq!(from_file, judge(&trace));

    let mut text = Vec::new();
    render(&mut text, &from_file, false).expect("render");
    let text = String::from_utf8(text).expect("utf-8");
    for name in NAMES {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }

    let json_of = |recorded: &[Verdict]| {
        let mut out = Vec::new();
        render_with_recorded(&mut out, &from_file, recorded, true).expect("render");
        let rows: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        rows.as_array().expect("array").clone()
    };
    let plain = json_of(&[]);
    assert_eq!(plain.len(), NAMES.len());
    assert!(
        plain.iter().all(|r| r.get("recorded").is_none()),
        "{plain:?}"
    );
    let beside = json_of(&from_file[..1]);
    assert_eq!(beside.len(), NAMES.len(), "{beside:?}");
    assert_eq!(beside[0]["recorded"], "pass", "{beside:?}");
    assert!(beside[1]["recorded"].is_null(), "{beside:?}");
    // A recorded verdict that was not recomputed is a `skipped` row.
    let mut gone = from_file[0].clone();
    gone.name = "gone".into();
    let rows = json_of(&[gone]);
    assert_eq!(rows.len(), NAMES.len() + 1, "{rows:?}");
    assert_eq!(rows[NAMES.len()]["outcome"], "skipped", "{rows:?}");

    // The text table counts the verdicts whose outcome changed, if any.
    let text_with = |recorded: &[Verdict]| {
        let mut out = Vec::new();
        render_with_recorded(&mut out, &from_file, recorded, false).expect("render");
        String::from_utf8(out).expect("utf-8")
    };
    let same = text_with(&from_file);
    assert!(!same.contains("differ"), "{same}");
    let mut changed = from_file.clone();
    changed[0].outcome = VerdictOutcome::Fail;
    let text = text_with(&changed);
    assert!(text.contains("1 verdict(s) differ"), "{text}");
}

/// The detail lists the violations one after another, each once.
#[test]
fn cpuset_isolation_detail_lists_each_violation_once() {
    let t = VerdictThresholds::default();
    let mut rounds = healthy();
    rounds[3][1].cpus = 0b01;
    rounds[5][1].cpus = 0b01;
    let (outcome, detail) = judged(&trace(&rounds, None), &t, "cpuset-isolation");
    assert_eq!(outcome, VerdictOutcome::Fail, "{detail}");
    let (_, list) = detail.split_once(": ").expect("a list after the count");
    let entries: Vec<&str> = list.split("; ").collect();
    assert_eq!(entries.len(), 2, "{detail}");
    assert!(
        entries.iter().all(|e| e.starts_with("worker 1 (b) at ")),
        "{detail}"
    );
}

/// not-starved names the worker with the fewest iterations (the first of
/// equals when they tie).
#[test]
fn not_starved_names_the_least_progressing_worker() {
    let t = VerdictThresholds::default();
    let (outcome, detail) = judged(&trace(&healthy(), None), &t, "not-starved");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("least: worker 0 "), "{detail}");

    let mut rounds = healthy();
    for r in &mut rounds {
        r[1].run_ns = 40 * MS;
    }
    let (outcome, detail) = judged(&trace(&rounds, None), &t, "not-starved");
    assert_eq!(outcome, VerdictOutcome::Pass, "{detail}");
    assert!(detail.contains("least: worker 1 "), "{detail}");
    assert!(detail.ends_with("with 400000 iterations"), "{detail}");
}
