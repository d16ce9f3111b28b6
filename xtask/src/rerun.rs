//! Re-running an archived trace: its scenario exactly, with notes on what changed.
use std::path::Path;

use anyhow::{Context, Result};
use trace_format::file::Trace;
use trace_format::meta::Meta;

/// The meta of the trace at `path` (scenario, kernel, scheduler, host).
pub fn archived(path: &Path) -> Result<Meta> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
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
    differs(
        "scenario",
        format!("{:?}", old.scenario),
        format!("{:?}", new.scenario),
    );
    notes
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
}
