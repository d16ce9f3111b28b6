//! `replay diff`: what differs between two sets of runs, metadata first,
//! then every metric with its statistics (see [`crate::compare`]).
use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use trace_format::meta::Meta;

use crate::compare::{Call, Report, Row, Unit};
use crate::text::{Paint, duration, hex, number, table};

/// How to render a diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    pub json: bool,
    /// Include unchanged metrics in the table.
    pub all: bool,
    pub paint: Paint,
}

/// A metadata field whose value differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaChange {
    pub field: &'static str,
    pub a: String,
    pub b: String,
}

/// The JSON shape of a diff.
#[derive(Serialize)]
struct JsonDiff<'r> {
    a: &'r [std::path::PathBuf],
    b: &'r [std::path::PathBuf],
    meta: &'r [MetaChange],
    unit: Unit,
    alpha: f64,
    noise_pct: f64,
    primary: &'r [String],
    summary: Summary,
    metrics: &'r [Row],
}

/// Counts of calls over the judged metrics.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub worse: usize,
    pub better: usize,
    pub changed: usize,
    pub same: usize,
    pub inconclusive: usize,
    /// Rows of metrics that are not primary: shown, not judged.
    pub info: usize,
}

impl Summary {
    pub fn of(r: &Report) -> Self {
        Summary {
            worse: r.count(Call::Worse),
            better: r.count(Call::Better),
            changed: r.count(Call::Changed),
            same: r.count(Call::Same),
            inconclusive: r.count(Call::Inconclusive),
            info: r.count(Call::Info),
        }
    }
}

/// Renders a comparison.
pub fn render(out: &mut impl Write, report: &Report, opts: DiffOptions) -> Result<()> {
    if opts.json {
        let j = JsonDiff {
            a: &report.a,
            b: &report.b,
            meta: &report.meta,
            unit: report.unit,
            alpha: report.alpha,
            noise_pct: report.noise_pct,
            primary: &report.primary,
            summary: Summary::of(report),
            metrics: &report.rows,
        };
        serde_json::to_writer_pretty(&mut *out, &j)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "A: {}", side(&report.a))?;
    writeln!(out, "B: {}", side(&report.b))?;
    write_meta(out, &report.meta)?;
    writeln!(out)?;
    let changed = report.rows.iter().filter(|r| r.changed()).count();
    if changed == 0 {
        writeln!(
            out,
            "no change: all {} metrics are identical",
            report.rows.len()
        )?;
        if !opts.all {
            return Ok(());
        }
    }
    let unit = match report.unit {
        Unit::Runs => format!("runs ({} vs {})", report.a.len(), report.b.len()),
        Unit::Intervals => format!(
            "sample intervals of {} vs {} run(s): within-run noise only, so the band is wider",
            report.a.len(),
            report.b.len()
        ),
    };
    writeln!(
        out,
        "statistics over {unit}; Mann–Whitney U, Benjamini–Hochberg α {} within each primary metric, noise band ±{}%",
        report.alpha, report.noise_pct
    )?;
    writeln!(
        out,
        "judged (primary): {}; the other metrics are informational",
        report.primary.join(", ")
    )?;
    let s = Summary::of(report);
    writeln!(
        out,
        "{changed} of {} metrics changed: {} worse, {} better, {} changed (neutral), {} same, {} inconclusive, {} info",
        report.rows.len(),
        s.worse,
        s.better,
        s.changed,
        s.same,
        s.inconclusive,
        s.info
    )?;
    let mut t = table(&[
        "step", "cgroup", "metric", "A", "B", "Δ%", "95% CI", "p adj", "call",
    ]);
    let shown: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| opts.all || (r.changed() && r.call != Call::NotJudged))
        .collect();
    let hidden = report
        .rows
        .iter()
        .filter(|r| r.changed() && r.call == Call::NotJudged)
        .count();
    if hidden > 0 && !opts.all {
        writeln!(
            out,
            "({hidden} changed value(s) of the backdrop, partial steps or one side only are not judged; --all shows them)"
        )?;
    }
    for r in &shown {
        t.add_row(cells(r));
    }
    let text = t.to_string();
    for (i, line) in text.lines().enumerate() {
        let call = i.checked_sub(1).and_then(|j| shown.get(j)).map(|r| r.call);
        writeln!(out, "{}", opts.paint.line(line.trim_end(), call))?;
    }
    Ok(())
}

/// Table cells of one row.
pub fn cells(r: &Row) -> Vec<String> {
    let delta = match r.delta_pct {
        Some(d) => format!("{d:+.1}"),
        None if r.a.is_none() => "only B".to_string(),
        None if r.b.is_none() => "only A".to_string(),
        None => "new".to_string(),
    };
    let ci = match (r.ci_low_pct, r.ci_high_pct) {
        (Some(l), Some(h)) => format!("{l:+.1}…{h:+.1}"),
        _ => "-".to_string(),
    };
    let p = r
        .p_adj
        .or(r.p)
        .map_or("-".to_string(), |p| format!("{p:.3}"));
    let call = match r.call {
        Call::Inconclusive if r.n_a < 2 || r.n_b < 2 => "inconclusive (n)".to_string(),
        c => c.word().to_string(),
    };
    vec![
        r.key.step.clone(),
        r.key.cgroup.clone(),
        r.key.metric.name().to_string(),
        number(r.a),
        number(r.b),
        delta,
        ci,
        p,
        call,
    ]
}

fn side(paths: &[std::path::PathBuf]) -> String {
    match paths {
        [one] => one.display().to_string(),
        many => format!(
            "{} runs: {}",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Prints metadata differences, or that there are none.
pub fn write_meta(out: &mut impl Write, meta: &[MetaChange]) -> Result<()> {
    if meta.is_empty() {
        writeln!(
            out,
            "\nmetadata: same scenario, kernel, scheduler, topology and backend"
        )?;
    } else {
        writeln!(out, "\nmetadata differences")?;
        let mut t = table(&["field", "A", "B"]);
        for m in meta {
            t.add_row(vec![m.field.to_string(), m.a.clone(), m.b.clone()]);
        }
        writeln!(out, "{t}")?;
    }
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
