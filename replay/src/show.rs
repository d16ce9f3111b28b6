//! `replay show`: what a trace holds, for a human.
use std::io::Write;

use anyhow::Result;
use trace_format::meta::Meta;
use trace_format::record::{
    ConsoleSource, OpOutcome, Record, RecordKind, SchedulerEventKind, StepOutcome, StepRef,
    printable,
};
use trace_format::scenario::Scenario;

use crate::load::LoadedTrace;
use crate::runqueue::RunQueues;
use crate::text::{duration, hex, secs, table};
use crate::validate::write_integrity;

/// Prints meta, record counts, the step/op timeline, a worker summary and any damage.
pub fn show(out: &mut impl Write, loaded: &LoadedTrace, all_records: bool) -> Result<()> {
    let trace = loaded.trace()?;
    let meta = trace.meta();
    let header = trace.header();
    writeln!(
        out,
        "trace      {} ({} bytes, format {}.{})",
        loaded.path.display(),
        loaded.bytes().len(),
        header.major,
        header.minor
    )?;
    write_meta(out, meta)?;

    let mut timeline = Vec::new();
    let mut samples = 0u64;
    let mut samples_with_progress = 0u64;
    let mut workers = 0u64;
    let mut snapshots = 0u64;
    let mut rendezvous_total = 0u64;
    let mut run_queues = RunQueues::default();
    let mut last_ts = 0u64;
    let mut outcome = None;
    let mut decode_errors = 0u64;
    for item in trace.records() {
        let timed = match item {
            Ok(t) => t,
            Err(_) => {
                decode_errors += 1;
                continue;
            }
        };
        last_ts = last_ts.max(timed.ts_ns);
        let at = secs(timed.ts_ns);
        match &timed.record {
            Record::StepBegin { step } => timeline.push(format!(
                "{at}  {} begins",
                step_title(&meta.scenario, *step)
            )),
            Record::StepEnd { step, outcome } => {
                let how = match outcome {
                    StepOutcome::Completed => "completed".to_string(),
                    StepOutcome::EndedEarly { reason } => format!("ended early: {reason}"),
                    StepOutcome::Failed { error } => format!("FAILED: {error}"),
                };
                timeline.push(format!("{at}  {} {how}", step_title(&meta.scenario, *step)));
            }
            Record::OpApplied(op) => {
                let name = op_name(&meta.scenario, op.step, op.op);
                let round = if op.round > 0 {
                    format!(" (round {})", op.round)
                } else {
                    String::new()
                };
                let result = match &op.outcome {
                    OpOutcome::Done => "ok".to_string(),
                    OpOutcome::Pids(p) => format!("ok, {} pids", p.len()),
                    OpOutcome::Value(v) => format!("ok, value {v} ({v:#x})"),
                    OpOutcome::Failed { error } => format!("FAILED: {error}"),
                };
                timeline.push(format!(
                    "{at}    op {} {name}{round}: {result} in {}",
                    op.op,
                    duration(op.duration_ns)
                ));
            }
            Record::WorkerSpawned(w) => {
                workers += 1;
                if all_records {
                    timeline.push(format!(
                        "{at}    worker {} pid {} {} in {}",
                        w.worker,
                        w.pid,
                        w.work,
                        cgroup_name(&w.cgroup)
                    ));
                }
            }
            Record::WorkerSample(s) => {
                samples += 1;
                if s.iterations > 0 {
                    samples_with_progress += 1;
                }
                if all_records {
                    timeline.push(format!(
                        "{at}      sample worker {} iterations {} run {} wait {} migrations {}",
                        s.worker,
                        s.iterations,
                        duration(s.run_ns),
                        duration(s.wait_ns),
                        s.migrations
                    ));
                }
            }
            Record::Snapshot(s) => {
                snapshots += 1;
                rendezvous_total = rendezvous_total.saturating_add(s.rendezvous_ns);
                run_queues.push(s);
                if all_records {
                    let queue: Vec<String> =
                        s.rows.iter().map(|r| r.nr_running.to_string()).collect();
                    timeline.push(format!(
                        "{at}      snapshot nr_running [{}]",
                        queue.join(" ")
                    ));
                }
            }
            Record::KernelAccess(k) => {
                let cpu = k.cpu.map(|c| format!(" cpu {c}")).unwrap_or_default();
                let result = match &k.error {
                    Some(e) => format!("FAILED: {e}"),
                    None => format!("{} ({:#x})", k.value, k.value),
                };
                timeline.push(format!("{at}    {:?} {}{cpu}: {result}", k.kind, k.symbol));
            }
            Record::SchedulerEvent(e) => {
                let what = match &e.event {
                    SchedulerEventKind::Attached => "attached".to_string(),
                    SchedulerEventKind::Detached => "detached".to_string(),
                    SchedulerEventKind::Exited { kind, reason } => {
                        format!("exited ({kind}): {reason}")
                    }
                    SchedulerEventKind::Counters(c) => {
                        if !all_records {
                            continue;
                        }
                        let parts: Vec<String> =
                            c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!("counters {}", parts.join(" "))
                    }
                    SchedulerEventKind::DumpLine(l) => format!("dump: {l}"),
                };
                timeline.push(format!("{at}    scheduler {} {what}", e.scheduler));
            }
            Record::Console(c) => {
                if all_records || matches!(c.source, ConsoleSource::PayloadStderr) {
                    timeline.push(format!("{at}      [{:?}] {}", c.source, c.line));
                }
            }
            Record::Drop(d) => timeline.push(format!(
                "{at}    DROPPED {} records: {}",
                d.records, d.reason
            )),
            Record::Verdict(v) => timeline.push(format!(
                "{at}  verdict {}: {} — {}",
                v.name,
                crate::verdict::outcome_word(v.outcome),
                v.detail
            )),
            Record::End(o) => {
                outcome = Some(o.clone());
                timeline.push(format!("{at}  end: {}", o.label()));
            }
            Record::WorkerExited(w) => timeline.push(format!(
                "{at}    worker {} (pid {}, {}) {}",
                w.worker,
                w.pid,
                cgroup_name(&w.cgroup),
                w.how
            )),
            Record::WorkerErrors(e) => timeline.push(format!(
                "{at}    worker {}: {} failed {} (last {})",
                e.worker,
                e.failed,
                e.op,
                crate::text::errno(e.errno)
            )),
            Record::MemoryEvents(m) => timeline.push(format!("{at}    {m}")),
        }
    }

    writeln!(out, "duration   {}", secs(last_ts))?;
    match &outcome {
        Some(o) => writeln!(out, "outcome    {} {}", o.label(), outcome_detail(o))?,
        None => writeln!(out, "outcome    unknown (no End record)")?,
    }

    writeln!(out, "\nrecords")?;
    let counts = trace.kind_counts();
    let mut t = table(&["kind", "count"]);
    for kind in RecordKind::ALL {
        let n = counts.get(kind.index()).copied().unwrap_or(0);
        if n > 0 {
            t.add_row(vec![format!("{kind:?}"), n.to_string()]);
        }
    }
    writeln!(out, "{t}")?;

    writeln!(out, "\ntimeline")?;
    // Console lines, dumps and op errors are guest text: escape what would
    // drive the terminal.
    for line in &timeline {
        writeln!(out, "  {}", printable(line))?;
    }

    writeln!(
        out,
        "\nworkers    {workers} spawned, {samples} samples, {samples_with_progress} with progress"
    )?;
    if let Some(mean) = rendezvous_total.checked_div(snapshots) {
        writeln!(
            out,
            "snapshots  {snapshots}, mean rendezvous {}",
            duration(mean)
        )?;
    }
    run_queues.write(out)?;
    if decode_errors > 0 {
        writeln!(out, "decode     {decode_errors} chunk(s) failed to decode")?;
    }
    write_integrity(out, &trace.integrity())?;
    Ok(())
}

fn write_meta(out: &mut impl Write, meta: &Meta) -> Result<()> {
    let sc = &meta.scenario;
    writeln!(out, "scenario   {}", sc.name)?;
    writeln!(out, "run        {} by {}", hex(&meta.run_id), meta.writer)?;
    writeln!(out, "started    {}", unix_time(meta.started_unix_ns))?;
    let k = &meta.kernel;
    let build_id = if k.build_id.is_empty() {
        "unknown".to_string()
    } else {
        hex(&k.build_id)
    };
    let release = if k.release.is_empty() {
        "unknown"
    } else {
        &k.release
    };
    writeln!(
        out,
        "kernel     {release} (build-id {build_id}, config {})",
        or_unknown(&k.config_hash)
    )?;
    match &meta.scheduler {
        None => writeln!(out, "scheduler  EEVDF (kernel default)")?,
        Some(s) => writeln!(
            out,
            "scheduler  {} {} (sha256 {})",
            s.name,
            s.args.join(" "),
            hex(&s.sha256)
        )?,
    }
    writeln!(
        out,
        "topology   {} ({} CPUs)",
        meta.topology,
        meta.topology.cpus()
    )?;
    writeln!(out, "backend    {}", meta.backend)?;
    match meta.acceleration {
        Some(a) => writeln!(out, "accel      {}", a.describe())?,
        None => writeln!(out, "accel      unknown")?,
    }
    let h = &meta.host;
    writeln!(
        out,
        "host       {} ({}, {} CPUs, {} MiB, {})",
        or_unknown(&h.hostname),
        or_unknown(&h.cpu_model),
        h.cpus,
        h.memory_mib,
        or_unknown(&h.os)
    )?;
    writeln!(
        out,
        "sampling   every {}",
        duration(meta.sample_interval_ns)
    )?;
    if meta.snapshot_interval_ns > 0 {
        writeln!(
            out,
            "snapshots  every {}",
            duration(meta.snapshot_interval_ns)
        )?;
    }
    for note in &meta.notes {
        writeln!(out, "note       {}", printable(note))?;
    }
    Ok(())
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

fn outcome_detail(o: &trace_format::record::RunOutcome) -> String {
    use trace_format::record::RunOutcome;
    match o {
        RunOutcome::Completed | RunOutcome::Interrupted => String::new(),
        RunOutcome::KernelPanic { message }
        | RunOutcome::GuestError { message }
        | RunOutcome::HostError { message } => format!("— {message}"),
        RunOutcome::Timeout { after_ns } => format!("after {}", duration(*after_ns)),
        RunOutcome::Terminated { signal } => format!("by {}", printable(signal)),
    }
}

fn unix_time(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `step 2 "shrink"` when the step has a name, else `step 2`.
fn step_title(scenario: &Scenario, step: StepRef) -> String {
    let name = (!step.is_backdrop())
        .then(|| scenario.steps.get(usize::from(step.0)))
        .flatten()
        .and_then(|s| s.name.clone());
    match name {
        Some(n) => format!("{step} \"{n}\""),
        None => step.to_string(),
    }
}

/// The op's name from the archived scenario, or `op?` when the index is out of range.
fn op_name(scenario: &Scenario, step: StepRef, op: u16) -> String {
    let ops = if step.is_backdrop() {
        Some(&scenario.backdrop.ops)
    } else {
        scenario.steps.get(usize::from(step.0)).map(|s| &s.ops)
    };
    ops.and_then(|ops| ops.get(usize::from(op)))
        .map(|o| o.name().to_string())
        .unwrap_or_else(|| "op?".to_string())
}

/// A cgroup's name, or `(root)`.
fn cgroup_name(cgroup: &str) -> &str {
    if cgroup.is_empty() { "(root)" } else { cgroup }
}
