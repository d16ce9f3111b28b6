//! Golden bytes: the postcard encoding of every `Record` variant and a whole
//! small trace are pinned in `fixtures/golden/`; older files of the same
//! records (`small-v1.0.trace`, `small-schema1.trace`, `small-schema2.trace`) must keep reading. A difference means the wire
//! format changed; if intended, re-bless with
//! `SCHEDTAPE_BLESS=1 cargo test -p trace-format --test golden`.

mod support;

use std::path::PathBuf;

use support::*;
use trace_format::file::{ChunkLimits, Trace};
use trace_format::record::{Record, RecordKind, RunOutcome, Timed, WorkerSample};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden")
}

fn blessing() -> bool {
    std::env::var_os("SCHEDTAPE_BLESS").is_some_and(|v| v == "1")
}

/// Compares `bytes` with the committed file `name`, or writes it when
/// blessing. Returns a failure message instead of panicking so all files
/// are checked in one run.
fn check(name: &str, bytes: &[u8]) -> Option<String> {
    let path = golden_dir().join(name);
    if blessing() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        return None;
    }
    let hint = "if the format change is intended (Record is append-only: never reorder \
                or remove variants/fields), re-bless with \
                `SCHEDTAPE_BLESS=1 cargo test -p trace-format --test golden`";
    match std::fs::read(&path) {
        Err(e) => Some(format!("{}: cannot read ({e}); {hint}", path.display())),
        Ok(old) if old == bytes => None,
        Ok(old) => {
            let at = old
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(old.len().min(bytes.len()));
            Some(format!(
                "{}: differs from the committed golden file at byte {at} (committed {} B, now {} B); {hint}",
                path.display(),
                old.len(),
                bytes.len()
            ))
        }
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "golden mismatch:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn every_record_variant_has_golden_bytes() {
    let variants = all_variants();
    let kinds: Vec<RecordKind> = variants.iter().map(|(_, r)| r.kind()).collect();
    assert_eq!(
        kinds,
        RecordKind::ALL,
        "all_variants() must list every variant, in order"
    );
    let mut failures = Vec::new();
    for (stem, record) in &variants {
        let bytes = postcard::to_allocvec(record).unwrap();
        let name = format!("record_{stem}.bin");
        failures.extend(check(&name, &bytes));
        // Old bytes must still decode to the same value.
        if let Ok(old) = std::fs::read(golden_dir().join(&name)) {
            match postcard::from_bytes::<Record>(&old) {
                Ok(decoded) if &decoded == record => {}
                other => failures.push(format!("{name}: decodes to {other:?}")),
            }
        }
    }
    report(failures);
}

/// One `End` per run outcome, in variant order. The `match` fails to compile
/// when a variant is added without being listed here.
fn every_outcome() -> Vec<RunOutcome> {
    let all = vec![
        RunOutcome::Completed,
        RunOutcome::KernelPanic {
            message: "Oops".into(),
        },
        RunOutcome::Timeout { after_ns: 7 },
        RunOutcome::Interrupted,
        RunOutcome::GuestError {
            message: "g".into(),
        },
        RunOutcome::HostError {
            message: "h".into(),
        },
        RunOutcome::Terminated {
            signal: "SIGTERM".into(),
        },
    ];
    for (i, o) in all.iter().enumerate() {
        let index = match o {
            RunOutcome::Completed => 0,
            RunOutcome::KernelPanic { .. } => 1,
            RunOutcome::Timeout { .. } => 2,
            RunOutcome::Interrupted => 3,
            RunOutcome::GuestError { .. } => 4,
            RunOutcome::HostError { .. } => 5,
            RunOutcome::Terminated { .. } => 6,
        };
        assert_eq!(
            i, index,
            "every_outcome() lists the outcomes in variant order"
        );
    }
    all
}

/// `RunOutcome` is append-only too: each outcome's `End` bytes are pinned.
#[test]
fn every_run_outcome_has_golden_bytes() {
    let mut failures = Vec::new();
    for outcome in every_outcome() {
        let record = Record::End(outcome);
        let bytes = postcard::to_allocvec(&record).unwrap();
        let name = format!("end_{}.bin", record_label(&record));
        failures.extend(check(&name, &bytes));
        if let Ok(old) = std::fs::read(golden_dir().join(&name)) {
            match postcard::from_bytes::<Record>(&old) {
                Ok(decoded) if decoded == record => {}
                other => failures.push(format!("{name}: decodes to {other:?}")),
            }
        }
    }
    report(failures);
}

fn record_label(record: &Record) -> &'static str {
    match record {
        Record::End(o) => o.label(),
        _ => "other",
    }
}

/// Every variant, spread over several chunks, with two snapshots sharing a
/// chunk so the snapshot deltas are pinned too.
fn variants_and_snapshots() -> Vec<(u64, Record)> {
    let mut out: Vec<(u64, Record)> = Vec::new();
    // `small.trace` pins the variants that existed when it was blessed; later
    // ones are pinned by their `record_*.bin` and round-tripped elsewhere.
    const SMALL_TRACE_VARIANTS: usize = 12;
    for (i, (_, r)) in all_variants()
        .into_iter()
        .take(SMALL_TRACE_VARIANTS)
        .enumerate()
    {
        out.push((i as u64 * 150_000_000, r));
    }
    let snaps: Vec<(u64, Record)> = realistic_stream(2, 4, 2)
        .into_iter()
        .filter(|(_, r)| matches!(r, Record::Snapshot(_)))
        .collect();
    out.extend(snaps.into_iter().map(|(ts, r)| (ts + 2_000_000_000, r)));
    out
}

/// The records of `small.trace`: [`variants_and_snapshots`], then worker
/// samples sharing that last chunk so the `cpus_seen` XOR coding is pinned:
/// a steady mask, and one worker whose mask stays, moves (keeping a trailing
/// zero word), grows and empties.
fn small_trace_records() -> Vec<(u64, Record)> {
    let mut out = variants_and_snapshots();
    let ts = 2_250_000_000;
    for (i, cpus_seen) in [vec![1 << 5], vec![1 << 5], vec![4, 0], vec![1, 1], vec![]]
        .into_iter()
        .enumerate()
    {
        let steady = spin_sample(0, 60, 1);
        out.push((ts + i as u64, Record::WorkerSample(steady)));
        let moving = WorkerSample {
            cpus_seen,
            ..spin_sample(9, 0, 1)
        };
        out.push((ts + i as u64, Record::WorkerSample(moving)));
    }
    out
}

#[test]
fn small_trace_is_byte_identical() {
    let records = small_trace_records();
    let bytes = write_trace(
        &records,
        ChunkLimits {
            max_payload: 512,
            max_span_ns: 500_000_000,
        },
    );
    let trace = Trace::open(&bytes).unwrap();
    assert!(trace.chunks().len() >= 3);
    let moving_in_chunk = |i| {
        let records = trace.decode_chunk(i).unwrap();
        records
            .iter()
            .filter(|t| matches!(&t.record, Record::WorkerSample(s) if s.worker == 9))
            .count()
    };
    let most = (0..trace.chunks().len()).map(moving_in_chunk).max();
    assert!(most >= Some(5), "XOR-coded samples must share a chunk");
    let mut failures = Vec::new();
    failures.extend(check("small.trace", &bytes));
    // The committed file must still read back completely (reader compatibility).
    if let Ok(old) = std::fs::read(golden_dir().join("small.trace")) {
        match Trace::open(&old) {
            Ok(t) => {
                if !t.recovery().is_clean() {
                    failures.push(format!("small.trace: not clean: {:?}", t.recovery()));
                }
                let got: Result<Vec<Timed>, _> = t.records().collect();
                let want: Vec<Timed> = records
                    .iter()
                    .map(|(ts_ns, r)| Timed {
                        ts_ns: *ts_ns,
                        record: r.clone(),
                    })
                    .collect();
                if got.as_ref() != Ok(&want) {
                    failures.push("small.trace: records differ from small_trace_records()".into());
                }
            }
            Err(e) => failures.push(format!(
                "small.trace: does not open: {e} (meta/scenario shape changed?)"
            )),
        }
    }
    report(failures);
}

/// `small-schema1.trace` is `small.trace` as written before schema 2 (no
/// scenario thresholds). It must keep opening, with every record intact.
#[test]
fn schema_1_trace_still_reads() {
    let old = std::fs::read(golden_dir().join("small-schema1.trace")).unwrap();
    let t = Trace::open(&old).unwrap_or_else(|e| panic!("schema 1 trace does not open: {e}"));
    assert!(t.recovery().is_clean(), "{:?}", t.recovery());
    let meta = t.meta();
    assert_eq!(meta.schema_version, 1);
    assert_eq!(meta.scenario.thresholds, None);
    let want = trace_format::scenario::Scenario {
        thresholds: None,
        ..test_scenario()
    };
    assert_eq!(meta.scenario, want);
    assert_eq!(meta.writer, test_meta().writer);
    assert_eq!(meta.notes, test_meta().notes);
    assert_holds_small_trace_records(&t);
}

/// `t` decodes to exactly the records `small.trace` was written from.
fn assert_holds_small_trace_records(t: &Trace<'_>) {
    let got: Vec<Timed> = t.records().collect::<Result<_, _>>().unwrap();
    let want: Vec<Timed> = small_trace_records()
        .into_iter()
        .map(|(ts_ns, record)| Timed { ts_ns, record })
        .collect();
    assert_eq!(got, want);
}

/// `small-schema2.trace` is `small.trace` as written before schema 3 (no
/// acceleration): it opens with the acceleration unknown and every other
/// meta field and record intact.
#[test]
fn schema_2_trace_still_reads() {
    let old = std::fs::read(golden_dir().join("small-schema2.trace")).unwrap();
    let t = Trace::open(&old).unwrap_or_else(|e| panic!("schema 2 trace does not open: {e}"));
    assert!(t.recovery().is_clean(), "{:?}", t.recovery());
    let meta = t.meta();
    assert_eq!(meta.schema_version, 2);
    assert_eq!(meta.acceleration, None);
    let want = trace_format::meta::Meta {
        schema_version: 2,
        acceleration: None,
        ..test_meta()
    };
    assert_eq!(*meta, want);
    assert_holds_small_trace_records(&t);
}

/// `small-v1.0.trace` is `small.trace` as format 1.0 wrote it: the same
/// bytes but minor version 0 and a meta CRC that leaves the header out. It
/// must keep reading, reported as having an unprotected header.
#[test]
fn format_1_0_trace_still_reads() {
    let old = std::fs::read(golden_dir().join("small-v1.0.trace")).unwrap();
    let t = Trace::open(&old).unwrap_or_else(|e| panic!("format 1.0 trace does not open: {e}"));
    assert_eq!((t.header().major, t.header().minor), (1, 0));
    assert!(!t.header().is_protected());
    assert!(t.recovery().is_clean(), "{:?}", t.recovery());
    assert_holds_small_trace_records(&t);
    // What this writer produces now covers the header.
    let new = std::fs::read(golden_dir().join("small.trace")).unwrap();
    let t = Trace::open(&new).unwrap();
    assert_eq!(t.header().minor, trace_format::file::FORMAT_MINOR);
    assert!(t.header().is_protected());
}

/// A meta declaring a schema this reader does not know is a clear error.
#[test]
fn unknown_schema_is_a_clear_error() {
    let mut meta = test_meta();
    meta.schema_version = trace_format::meta::SCHEMA_VERSION + 1;
    let bytes = trace_format::file::TraceWriter::new(Vec::new(), &meta)
        .unwrap()
        .finish()
        .unwrap();
    let err = Trace::open(&bytes).unwrap_err();
    assert_eq!(
        err,
        trace_format::file::ReadError::UnsupportedSchema {
            schema: trace_format::meta::SCHEMA_VERSION + 1
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("schema 4") && text.contains("1 to 3"),
        "{text}"
    );
}
