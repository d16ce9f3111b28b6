//! Re-running an archived trace: its scenario exactly, with notes on what changed.
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;
use trace_format::file::Trace;
use trace_format::meta::Meta;
use trace_format::scenario::Scenario;

/// The meta of the trace at `path` (scenario, kernel, scheduler, host).
pub fn archived(path: &Path) -> Result<Meta> {
    // A regular file only: a FIFO or device would hang or never end.
    let bytes =
        replay::input::read_regular(path).with_context(|| format!("--from {}", path.display()))?;
    let trace = Trace::open(&bytes)
        .with_context(|| format!("{} is not a readable trace", path.display()))?;
    Ok(trace.meta().clone())
}

/// Lines for the new trace's notes: where it came from and every input that differs.
pub fn notes(path: &Path, old: &Meta, new: &Meta) -> Vec<String> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut notes = vec![format!(
        "re-run of run {} from {}",
        hex(&old.run_id),
        path.display()
    )];
    let mut differs = |what: &str, a: String, b: String| {
        if a != b {
            notes.push(format!("re-run changed {what}: {a} → {b}"));
        }
    };
    differs(
        "kernel release",
        old.kernel.release.clone(),
        new.kernel.release.clone(),
    );
    differs(
        "kernel build-id",
        hex(&old.kernel.build_id),
        hex(&new.kernel.build_id),
    );
    differs(
        "kernel config",
        old.kernel.config_hash.clone(),
        new.kernel.config_hash.clone(),
    );
    let sched = |m: &Meta| {
        m.scheduler.as_ref().map_or("EEVDF".to_string(), |s| {
            format!(
                "{} {} (sha256 {})",
                s.name,
                s.args.join(" "),
                hex(&s.sha256[..6])
            )
        })
    };
    differs("scheduler", sched(old), sched(new));
    differs(
        "topology",
        old.topology.to_string(),
        new.topology.to_string(),
    );
    differs("host", old.host.hostname.clone(), new.host.hostname.clone());
    notes.extend(
        scenario_changes(&old.scenario, &new.scenario)
            .into_iter()
            .map(|c| format!("re-run changed scenario {c}")),
    );
    notes
}

/// At most this many scenario fields are listed; the rest are counted.
const MAX_SCENARIO_CHANGES: usize = 12;
/// Values longer than this are cut, so one changed list stays one short line.
const MAX_VALUE_CHARS: usize = 60;

/// `field.path: old → new` for each scenario field that differs (as the
/// scenario serialises), capped at [`MAX_SCENARIO_CHANGES`] lines.
fn scenario_changes(old: &Scenario, new: &Scenario) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec!["(cannot compare: not serialisable)".into()];
    };
    let mut changes = Vec::new();
    diff_values("", &a, &b, &mut changes);
    if changes.len() > MAX_SCENARIO_CHANGES {
        let rest = changes.len() - MAX_SCENARIO_CHANGES + 1;
        changes.truncate(MAX_SCENARIO_CHANGES - 1);
        changes.push(format!("… and {rest} more fields"));
    }
    changes
}

fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let field = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff_values(&field(k), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {} → {}", short(a), short(b))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::meta::{Backend, HostFingerprint, KernelIdentity, SCHEMA_VERSION};
    use trace_format::scenario::Scenario;

    fn meta(release: &str) -> Meta {
        let scenario = Scenario::default();
        Meta {
            schema_version: SCHEMA_VERSION,
            writer: "t".into(),
            run_id: [1; 16],
            started_unix_ns: 0,
            topology: scenario.topology,
            scenario,
            kernel: KernelIdentity {
                release: release.into(),
                build_id: vec![1],
                config_hash: "c".into(),
            },
            scheduler: None,
            backend: Backend::Synthetic,
            host: HostFingerprint::default(),
            sample_interval_ns: 1,
            snapshot_interval_ns: 0,
            notes: vec![],
            acceleration: None,
        }
    }

    #[test]
    fn names_what_changed_and_only_that() {
        let same = notes(Path::new("b.trace"), &meta("6.12"), &meta("6.12"));
        assert_eq!(same.len(), 1);
        assert!(same[0].starts_with("re-run of run 0101"));
        let changed = notes(Path::new("b.trace"), &meta("6.12"), &meta("6.13"));
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[1], "re-run changed kernel release: 6.12 → 6.13");
    }

    #[test]
    fn scenario_changes_are_named_field_by_field_and_capped() {
        let old = meta("6.12");
        let mut new = meta("6.12");
        new.scenario.duration_ns += 1_000_000_000;
        new.scenario.name = "x".repeat(200);
        let notes = notes(Path::new("b.trace"), &old, &new);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert_eq!(
            notes[1],
            "re-run changed scenario duration: \"10s\" → \"11s\""
        );
        assert!(
            notes[2].starts_with("re-run changed scenario name: "),
            "{notes:?}"
        );
        assert!(notes.iter().all(|n| n.len() < 200), "{notes:?}");
        let mut many = Scenario {
            description: "d".into(),
            ..Default::default()
        };
        for i in 0..30 {
            many.payloads.push(trace_format::scenario::PayloadSpec {
                name: format!("p{i}"),
                path: "sh".into(),
                args: vec![],
                cgroup: None,
            });
        }
        let mut other = many.clone();
        for p in &mut other.payloads {
            p.path = "cat".into();
        }
        let changes = scenario_changes(&many, &other);
        assert_eq!(changes.len(), MAX_SCENARIO_CHANGES);
        assert_eq!(changes.last().unwrap(), "… and 19 more fields");
    }
}
