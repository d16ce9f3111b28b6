//! `replay plot`: an SVG with, per trace, a per-CPU run-queue heatmap (from
//! snapshots) and per-cgroup throughput over time with step boundaries.
//! Written by hand: no fonts or system libraries needed, and every series is
//! an element with `class`/`data-*` attributes that tests and scripts can find.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use trace_format::file::Trace;
use trace_format::record::{Record, StepRef};

mod ticks;

use crate::load::LoadedTrace;
use crate::metric::Metric;
use crate::series::segments;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 160.0;
const PANEL_H: f64 = 200.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Everything drawn from one trace.
#[derive(Debug, Clone)]
pub struct PlotData {
    pub name: String,
    /// (time, nr_running per CPU).
    pub snapshots: Vec<(u64, Vec<u32>)>,
    /// (begin time, label) of each real step.
    pub steps: Vec<(u64, String)>,
    /// Cgroup → (time, iterations/s) per sample round.
    pub throughput: Vec<(String, Vec<(u64, f64)>)>,
    pub end_ns: u64,
}

impl PlotData {
    /// Gathers the plot's data from a trace.
    pub fn from_trace(name: &str, trace: &Trace<'_>) -> Self {
        let mut snapshots = Vec::new();
        let mut steps = Vec::new();
        let mut end_ns = 0;
        let scenario = &trace.meta().scenario;
        for t in trace.records().flatten() {
            end_ns = end_ns.max(t.ts_ns);
            match &t.record {
                Record::Snapshot(s) => {
                    snapshots.push((t.ts_ns, s.rows.iter().map(|r| r.nr_running).collect()))
                }
                Record::StepBegin { step } if !step.is_backdrop() => {
                    steps.push((t.ts_ns, step_name(scenario, *step)))
                }
                _ => {}
            }
        }
        let mut throughput: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
        for seg in segments(trace) {
            for cg in seg.cgroups() {
                let points = seg.values(&cg, Metric::IterationsPerS);
                match throughput.iter_mut().find(|(n, _)| *n == cg) {
                    Some((_, v)) => v.extend(points),
                    None => throughput.push((cg, points)),
                }
            }
        }
        for (_, v) in &mut throughput {
            v.sort_by_key(|p| p.0);
        }
        PlotData {
            name: name.to_string(),
            snapshots,
            steps,
            throughput,
            end_ns,
        }
    }
}

fn step_name(sc: &trace_format::scenario::Scenario, step: StepRef) -> String {
    match sc
        .steps
        .get(usize::from(step.0))
        .and_then(|s| s.name.clone())
    {
        Some(n) => format!("{step} {n}"),
        None => step.to_string(),
    }
}

/// Plots the traces at `paths` (one or two) into an SVG document.
pub fn plot_files(paths: &[PathBuf]) -> Result<String> {
    let mut data = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let loaded = LoadedTrace::open(p)?;
        let name = format!("{} {}", side_name(i), file_name(p));
        data.push(PlotData::from_trace(&name, &loaded.trace()?));
    }
    Ok(svg(&data))
}

fn side_name(i: usize) -> &'static str {
    if i == 0 { "A" } else { "B" }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps times to x coordinates of the plot area.
struct TimeAxis {
    end_ns: u64,
}

impl TimeAxis {
    fn x(&self, ns: u64) -> f64 {
        let w = WIDTH - LEFT - RIGHT;
        LEFT + w * (ns as f64 / self.end_ns.max(1) as f64)
    }

    fn ticks(&self, s: &mut String, top: f64, bottom: f64) {
        let secs = self.end_ns as f64 / 1e9;
        for t in ticks::ticks(secs, 12)
            .into_iter()
            .filter(|t| *t <= secs + 1e-9)
        {
            let x = self.x(crate::stat::to_index(t * 1e9) as u64);
            let _ = write!(
                s,
                r##"<line class="x-tick" x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}s</text>"##,
                bottom + 4.0,
                bottom + 15.0,
                ticks::label(t)
            );
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#eee"/>"##
            );
        }
    }
}

/// Renders the SVG document.
pub fn svg(data: &[PlotData]) -> String {
    let axis = TimeAxis {
        end_ns: data.iter().map(|d| d.end_ns).max().unwrap_or(1),
    };
    let mut body = String::new();
    let mut y = 30.0;
    let _ = write!(
        body,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">schedtape: {}</text>"#,
        esc(&data
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(" vs "))
    );
    for (i, d) in data.iter().enumerate() {
        y = heatmap(&mut body, d, side_name(i), &axis, y) + 40.0;
    }
    y = throughput(&mut body, data, &axis, y) + 30.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y:.0}" viewBox="0 0 {WIDTH} {y:.0}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{body}</svg>
"#
    )
}

/// Draws one trace's run-queue heatmap at `top`; returns the bottom.
fn heatmap(s: &mut String, d: &PlotData, side: &str, axis: &TimeAxis, top: f64) -> f64 {
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{:.1}" font-size="12">{} — run queue length per CPU</text>"#,
        top + 10.0,
        esc(&d.name)
    );
    let top = top + 18.0;
    if d.snapshots.is_empty() {
        let _ = write!(
            s,
            r##"<g id="heatmap-{side}" class="heatmap empty"><text x="{LEFT}" y="{:.1}" font-size="11" fill="#777">no run-queue snapshots in this trace</text></g>"##,
            top + 14.0
        );
        return top + 20.0;
    }
    let cpus = d.snapshots.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    let row_h = (PANEL_H / cpus.max(1) as f64).clamp(4.0, 24.0);
    let max_nr = d
        .snapshots
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let _ = write!(
        s,
        r#"<g id="heatmap-{side}" class="heatmap" data-cpus="{cpus}">"#
    );
    for (k, (ts, rows)) in d.snapshots.iter().enumerate() {
        let next = d.snapshots.get(k + 1).map_or(d.end_ns, |n| n.0);
        let (x0, x1) = (axis.x(*ts), axis.x(next.max(*ts)));
        for (cpu, &nr) in rows.iter().enumerate() {
            let shade = 1.0 - 0.85 * (f64::from(nr) / f64::from(max_nr));
            let c = crate::stat::to_index(255.0 * shade);
            let _ = write!(
                s,
                r#"<rect class="rq" data-cpu="{cpu}" data-nr="{nr}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{row_h:.1}" fill="rgb({c},{c},255)"/>"#,
                top + cpu as f64 * row_h,
                (x1 - x0).max(0.5)
            );
        }
    }
    for cpu in 0..cpus {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">cpu {cpu}</text>"#,
            LEFT - 6.0,
            top + (cpu as f64 + 0.7) * row_h
        );
    }
    let bottom = top + cpus as f64 * row_h;
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="10">darkest = {max_nr} runnable</text></g>"#,
        WIDTH - RIGHT + 8.0,
        top + 10.0
    );
    axis.ticks(s, top, bottom);
    bottom + 16.0
}

/// Draws every trace's per-cgroup throughput in one panel; returns the bottom.
fn throughput(s: &mut String, data: &[PlotData], axis: &TimeAxis, top: f64) -> f64 {
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{:.1}" font-size="12">throughput per cgroup (iterations/s per sample interval){}</text>"#,
        top + 10.0,
        if data.len() > 1 { "; B dashed" } else { "" }
    );
    let top = top + 18.0;
    let bottom = top + PANEL_H;
    let highest = data
        .iter()
        .flat_map(|d| d.throughput.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let y_ticks = ticks::ticks(highest, 5);
    let ymax = y_ticks.last().copied().unwrap_or(highest);
    let yy = |v: f64| bottom - PANEL_H * (v / ymax);
    let _ = write!(s, r#"<g id="throughput">"#);
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#333"/><line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{bottom:.1}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
    for v in y_ticks {
        let y = yy(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#f2f2f2"/><text class="y-tick" data-value="{v}" x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 3.0,
            ticks::label(v)
        );
    }
    axis.ticks(s, top, bottom);
    for (i, d) in data.iter().enumerate() {
        let side = side_name(i);
        for (ts, label) in &d.steps {
            let x = axis.x(*ts);
            let _ = write!(
                s,
                r##"<line class="step-boundary" data-trace="{side}" x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#555" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
                x + 3.0,
                top + 10.0 + 12.0 * i as f64,
                esc(label)
            );
        }
    }
    let mut names: Vec<&str> = data
        .iter()
        .flat_map(|d| d.throughput.iter().map(|(n, _)| n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    for (i, d) in data.iter().enumerate() {
        let side = side_name(i);
        let dash = if i > 0 {
            r#" stroke-dasharray="6,3""#
        } else {
            ""
        };
        for (cg, points) in &d.throughput {
            if points.is_empty() {
                continue;
            }
            let colour = PALETTE[names.iter().position(|n| n == cg).unwrap_or(0) % PALETTE.len()];
            let mut path = String::new();
            for (k, (ts, v)) in points.iter().enumerate() {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1}",
                    if k == 0 { "M" } else { " L" },
                    axis.x(*ts),
                    yy(*v)
                );
            }
            let _ = write!(
                s,
                r#"<path class="series" data-trace="{side}" data-cgroup="{}" data-points="{}" d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>"#,
                esc(cg),
                points.len()
            );
        }
    }
    for (i, n) in names.iter().enumerate() {
        let ly = top + 12.0 + 14.0 * i as f64;
        let lx = WIDTH - RIGHT + 10.0;
        let _ = write!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            lx + 18.0,
            PALETTE[i % PALETTE.len()],
            lx + 22.0,
            ly + 4.0,
            esc(n)
        );
    }
    let _ = write!(s, "</g>");
    bottom + 16.0
}
