//! `replay diff`: what differs between two traces, metadata first.
//!
//! This compares one run with one run and reports raw relative changes;
//! statistical judgement over repeated runs builds on [`compare`].
use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use trace_format::meta::Meta;

use crate::load::LoadedTrace;
use crate::metric::{MetricKey, Polarity, extract};
use crate::text::{duration, hex, number, table};

/// How to render a diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    pub json: bool,
    /// Include unchanged metrics in the table.
    pub all: bool,
}

/// A metadata field whose value differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaChange {
    pub field: &'static str,
    pub a: String,
    pub b: String,
}

/// One metric on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    #[serde(flatten)]
    pub key: MetricKey,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// Relative change in percent; `None` when a side is missing or A is zero and B is not.
    pub delta_pct: Option<f64>,
    pub polarity: Polarity,
}

impl MetricChange {
    /// True when the two sides are not exactly equal.
    pub fn changed(&self) -> bool {
        self.a != self.b
    }

    /// `better`, `worse` or empty, by the metric's polarity.
    pub fn direction(&self) -> &'static str {
        let (Some(a), Some(b)) = (self.a, self.b) else {
            return "";
        };
        match (self.polarity, b.partial_cmp(&a)) {
            (Polarity::HigherIsBetter, Some(std::cmp::Ordering::Greater))
            | (Polarity::LowerIsBetter, Some(std::cmp::Ordering::Less)) => "better",
            (Polarity::HigherIsBetter, Some(std::cmp::Ordering::Less))
            | (Polarity::LowerIsBetter, Some(std::cmp::Ordering::Greater)) => "worse",
            _ => "",
        }
    }
}

/// The full comparison of two traces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub meta: Vec<MetaChange>,
    pub metrics: Vec<MetricChange>,
}

impl Comparison {
    /// Number of metrics whose values differ.
    pub fn changed(&self) -> usize {
        self.metrics.iter().filter(|m| m.changed()).count()
    }
}

/// Compares metadata and every metric of `a` and `b`.
pub fn compare(a: &LoadedTrace, b: &LoadedTrace) -> Result<Comparison> {
    let (ta, tb) = (a.trace()?, b.trace()?);
    let meta = meta_changes(ta.meta(), tb.meta());
    let va = extract(&ta.metrics());
    let vb = extract(&tb.metrics());
    let b_values: BTreeMap<&MetricKey, f64> = vb.iter().map(|v| (&v.key, v.value)).collect();
    let mut metrics: Vec<MetricChange> = va
        .iter()
        .map(|v| change(v.key.clone(), Some(v.value), b_values.get(&v.key).copied()))
        .collect();
    let a_keys: BTreeMap<&MetricKey, ()> = va.iter().map(|v| (&v.key, ())).collect();
    metrics.extend(
        vb.iter()
            .filter(|v| !a_keys.contains_key(&v.key))
            .map(|v| change(v.key.clone(), None, Some(v.value))),
    );
    Ok(Comparison { meta, metrics })
}

fn change(key: MetricKey, a: Option<f64>, b: Option<f64>) -> MetricChange {
    let delta_pct = match (a, b) {
        (Some(a), Some(b)) if a == b => Some(0.0),
        (Some(a), Some(b)) if a != 0.0 => Some(100.0 * (b - a) / a.abs()),
        _ => None,
    };
    let polarity = key.metric.polarity();
    MetricChange {
        key,
        a,
        b,
        delta_pct,
        polarity,
    }
}

/// Renders the comparison of `a` and `b`.
pub fn diff(
    out: &mut impl Write,
    a: &LoadedTrace,
    b: &LoadedTrace,
    opts: DiffOptions,
) -> Result<()> {
    let cmp = compare(a, b)?;
    if opts.json {
        serde_json::to_writer_pretty(&mut *out, &cmp)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "A: {}\nB: {}", a.path.display(), b.path.display())?;
    if cmp.meta.is_empty() {
        writeln!(
            out,
            "\nmetadata: same scenario, kernel, scheduler, topology and backend"
        )?;
    } else {
        writeln!(out, "\nmetadata differences")?;
        let mut t = table(&["field", "A", "B"]);
        for m in &cmp.meta {
            t.add_row(vec![m.field.to_string(), m.a.clone(), m.b.clone()]);
        }
        writeln!(out, "{t}")?;
    }
    let changed = cmp.changed();
    writeln!(out)?;
    if changed == 0 {
        writeln!(
            out,
            "no change: all {} metrics are identical",
            cmp.metrics.len()
        )?;
        if !opts.all {
            return Ok(());
        }
    } else {
        writeln!(out, "{changed} of {} metrics changed", cmp.metrics.len())?;
    }
    let mut t = table(&["step", "cgroup", "metric", "A", "B", "Δ%", ""]);
    for m in cmp.metrics.iter().filter(|m| opts.all || m.changed()) {
        let delta = match m.delta_pct {
            Some(d) => format!("{d:+.1}"),
            None if m.a.is_none() => "only B".to_string(),
            None if m.b.is_none() => "only A".to_string(),
            None => "new".to_string(),
        };
        t.add_row(vec![
            m.key.step.clone(),
            m.key.cgroup.clone(),
            m.key.metric.name().to_string(),
            number(m.a),
            number(m.b),
            delta,
            m.direction().to_string(),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(())
}

/// Metadata fields that differ between two runs, in a fixed order.
pub fn meta_changes(a: &Meta, b: &Meta) -> Vec<MetaChange> {
    let fa = meta_fields(a);
    let fb = meta_fields(b);
    let mut changes: Vec<MetaChange> = fa
        .into_iter()
        .zip(fb)
        .filter(|((_, va), (_, vb))| va != vb)
        .map(|((field, a), (_, b))| MetaChange { field, a, b })
        .collect();
    if a.scenario != b.scenario {
        let (sa, sb) = (&a.scenario, &b.scenario);
        changes.insert(
            0,
            MetaChange {
                field: "scenario definition",
                a: format!("{} ({} steps)", sa.name, sa.steps.len()),
                b: format!("{} ({} steps), differs", sb.name, sb.steps.len()),
            },
        );
    }
    changes
}

fn meta_fields(m: &Meta) -> Vec<(&'static str, String)> {
    let scheduler = match &m.scheduler {
        None => "EEVDF".to_string(),
        Some(s) => format!(
            "{} {} (sha256 {})",
            s.name,
            s.args.join(" "),
            &hex(&s.sha256)[..12]
        ),
    };
    vec![
        ("kernel release", m.kernel.release.clone()),
        ("kernel build-id", hex(&m.kernel.build_id)),
        ("kernel config", m.kernel.config_hash.clone()),
        ("scheduler", scheduler),
        ("topology", m.topology.to_string()),
        ("backend", m.backend.to_string()),
        (
            "host",
            format!(
                "{} / {} / {} CPUs",
                m.host.hostname, m.host.cpu_model, m.host.cpus
            ),
        ),
        ("sample interval", duration(m.sample_interval_ns)),
        ("snapshot interval", duration(m.snapshot_interval_ns)),
        ("schema", m.schema_version.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;

    fn key(metric: Metric) -> MetricKey {
        MetricKey {
            step: "step 0".into(),
            cgroup: "a".into(),
            metric,
        }
    }

    #[test]
    fn direction_follows_polarity() {
        let up = change(key(Metric::IterationsPerS), Some(100.0), Some(110.0));
        assert_eq!(up.delta_pct, Some(10.0));
        assert_eq!(up.direction(), "better");
        let wait = change(key(Metric::WaitPct), Some(10.0), Some(20.0));
        assert_eq!(wait.direction(), "worse");
        let share = change(key(Metric::CpuSharePct), Some(10.0), Some(20.0));
        assert_eq!(share.direction(), "");
        let missing = change(key(Metric::WaitPct), None, Some(1.0));
        assert_eq!(missing.delta_pct, None);
        assert!(missing.changed());
        let zero = change(key(Metric::MigrationsPerS), Some(0.0), Some(0.0));
        assert_eq!(zero.delta_pct, Some(0.0));
        assert!(!zero.changed());
    }
}
