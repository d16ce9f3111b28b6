//! `replay stats`: per step and cgroup, the numbers a scheduler developer reads first.
use std::io::Write;

use anyhow::Result;

use trace_format::record::Record;

use crate::load::LoadedTrace;
use crate::metric::{Metric, cgroup_label, extract, step_label};
use crate::runqueue::RunQueues;
use crate::text::{number, secs, table};

/// Prints one table row per (step, cgroup), or every value as JSON.
pub fn stats(out: &mut impl Write, loaded: &LoadedTrace, json: bool) -> Result<()> {
    let trace = loaded.trace()?;
    let run = trace.metrics();
    if json {
        serde_json::to_writer_pretty(&mut *out, &extract(&run))?;
        writeln!(out)?;
        return Ok(());
    }
    let mut header = vec!["step", "span", "cgroup"];
    header.extend(Metric::ALL.iter().map(|m| m.name()));
    let mut t = table(&header);
    // Samples outside any step (final samples after the last step ends) cover
    // too little time for rates to mean anything; `--json` still has them.
    for step in run.steps.iter().filter(|s| s.step.is_some()) {
        for group in &step.groups {
            let mut row = vec![
                step_label(step),
                format!("{}–{}", secs(step.begin_ns), secs(step.end_ns)),
                cgroup_label(group),
            ];
            row.extend(Metric::ALL.iter().map(|m| number(m.value(step, group))));
            t.add_row(row);
        }
    }
    if run.steps.iter().all(|s| s.groups.is_empty()) {
        writeln!(out, "no worker samples in {}", loaded.path.display())?;
    } else {
        writeln!(out, "{t}")?;
    }
    let mut run_queues = RunQueues::default();
    for timed in trace.records().flatten() {
        if let Record::Snapshot(s) = &timed.record {
            run_queues.push(s);
        }
    }
    run_queues.write(out)?;
    if trace.integrity().is_damaged() {
        writeln!(
            out,
            "note: the trace is damaged; figures cover the recovered chunks only"
        )?;
    }
    Ok(())
}
