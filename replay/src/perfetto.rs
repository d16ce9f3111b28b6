//! `replay export --perfetto`: Chrome trace-event JSON that ui.perfetto.dev
//! (and chrome://tracing) open. Steps are slices, ops and verdicts instants,
//! worker telemetry and per-CPU run-queue lengths counters.
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};
use trace_format::file::Trace;
use trace_format::record::{OpOutcome, Record, StepOutcome, StepRef};
use trace_format::scenario::Scenario;

/// Process ids of the exported tracks.
const PID_RUN: u32 = 1;
const PID_WORKERS: u32 = 2;
const PID_CPUS: u32 = 3;
/// Thread ids under the run process.
const TID_STEPS: u32 = 1;
const TID_OPS: u32 = 2;
const TID_EVENTS: u32 = 3;

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn name_of(sc: &Scenario, step: StepRef) -> String {
    let name = (!step.is_backdrop())
        .then(|| sc.steps.get(usize::from(step.0)))
        .flatten()
        .and_then(|s| s.name.clone());
    match name {
        Some(n) => format!("{step} {n}"),
        None => step.to_string(),
    }
}

fn op_name(sc: &Scenario, step: StepRef, op: u16) -> String {
    let ops = if step.is_backdrop() {
        Some(&sc.backdrop.ops)
    } else {
        sc.steps.get(usize::from(step.0)).map(|s| &s.ops)
    };
    ops.and_then(|o| o.get(usize::from(op)))
        .map_or_else(|| format!("op {op}"), |o| o.name().to_string())
}

fn meta_event(pid: u32, tid: Option<u32>, what: &str, name: &str) -> Value {
    let mut e = json!({"ph": "M", "pid": pid, "name": what, "args": {"name": name}});
    if let Some(t) = tid {
        e["tid"] = json!(t);
    }
    e
}

/// The whole trace as a Chrome trace-event JSON document.
pub fn export(trace: &Trace<'_>) -> Result<String> {
    let meta = trace.meta();
    let sc = &meta.scenario;
    let mut ev: Vec<Value> = vec![
        meta_event(PID_RUN, None, "process_name", &format!("run {}", sc.name)),
        meta_event(PID_RUN, Some(TID_STEPS), "thread_name", "steps"),
        meta_event(PID_RUN, Some(TID_OPS), "thread_name", "ops"),
        meta_event(PID_RUN, Some(TID_EVENTS), "thread_name", "events"),
        meta_event(PID_WORKERS, None, "process_name", "workers"),
        meta_event(PID_CPUS, None, "process_name", "run queues"),
    ];
    let mut open: BTreeMap<StepRef, u64> = BTreeMap::new();
    let mut workers: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    let mut last_ts = 0;
    for t in trace.records().flatten() {
        let ts = t.ts_ns;
        last_ts = last_ts.max(ts);
        match &t.record {
            Record::StepBegin { step } => {
                open.insert(*step, ts);
            }
            Record::StepEnd { step, outcome } => {
                let begin = open.remove(step).unwrap_or(ts);
                let how = match outcome {
                    StepOutcome::Completed => "completed".to_string(),
                    StepOutcome::EndedEarly { reason } => format!("ended early: {reason}"),
                    StepOutcome::Failed { error } => format!("failed: {error}"),
                };
                ev.push(json!({
                    "ph": "X", "pid": PID_RUN, "tid": TID_STEPS, "cat": "step",
                    "name": name_of(sc, *step), "ts": us(begin), "dur": us(ts.saturating_sub(begin)),
                    "args": {"outcome": how},
                }));
            }
            Record::OpApplied(op) => {
                let result = match &op.outcome {
                    OpOutcome::Done => "ok".to_string(),
                    OpOutcome::Pids(p) => format!("ok, {} pids", p.len()),
                    OpOutcome::Value(v) => format!("ok, value {v}"),
                    OpOutcome::Failed { error } => format!("failed: {error}"),
                };
                ev.push(json!({
                    "ph": "i", "s": "t", "pid": PID_RUN, "tid": TID_OPS, "cat": "op",
                    "name": op_name(sc, op.step, op.op), "ts": us(ts),
                    "args": {"step": op.step.to_string(), "op": op.op, "round": op.round,
                             "duration_us": us(op.duration_ns), "result": result},
                }));
            }
            Record::WorkerSpawned(w) => {
                let cg = if w.cgroup.is_empty() {
                    "(root)"
                } else {
                    &w.cgroup
                };
                workers.insert(
                    w.worker,
                    (format!("worker {} {} {}", w.worker, cg, w.work), ts),
                );
            }
            Record::WorkerSample(s) => {
                let entry = workers
                    .entry(s.worker)
                    .or_insert_with(|| (format!("worker {}", s.worker), ts));
                let interval = ts.saturating_sub(entry.1);
                entry.1 = ts;
                if interval == 0 {
                    continue;
                }
                let secs = interval as f64 / 1e9;
                // One worker runs or waits at most the whole interval.
                let share = |ns: u64| (100.0 * ns as f64 / interval as f64).min(100.0);
                ev.push(json!({
                    "ph": "C", "pid": PID_WORKERS, "name": entry.0, "ts": us(ts),
                    "args": {
                        "iterations/s": s.iterations as f64 / secs,
                        "run %": share(s.run_ns),
                        "wait %": share(s.wait_ns),
                    },
                }));
            }
            Record::Snapshot(s) => {
                for (cpu, row) in s.rows.iter().enumerate() {
                    ev.push(json!({
                        "ph": "C", "pid": PID_CPUS, "name": format!("cpu {cpu} nr_running"),
                        "ts": us(ts), "args": {"nr_running": row.nr_running},
                    }));
                }
            }
            Record::Verdict(v) => ev.push(json!({
                "ph": "i", "s": "g", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "verdict",
                "name": format!("verdict {}: {:?}", v.name, v.outcome), "ts": us(ts),
                "args": {"detail": v.detail},
            })),
            Record::Drop(d) => ev.push(json!({
                "ph": "i", "s": "g", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "drop",
                "name": format!("dropped {} records", d.records), "ts": us(ts),
                "args": {"reason": d.reason},
            })),
            Record::SchedulerEvent(e) => ev.push(json!({
                "ph": "i", "s": "p", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "scheduler",
                "name": format!("scheduler {}", e.scheduler), "ts": us(ts),
                "args": {"event": format!("{:?}", e.event)},
            })),
            Record::End(o) => ev.push(json!({
                "ph": "i", "s": "g", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "end",
                "name": format!("end: {}", o.label()), "ts": us(ts),
            })),
            Record::MemoryEvents(m) => ev.push(json!({
                "ph": "i", "s": "g", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "oom",
                "name": m.to_string(), "ts": us(ts),
            })),
            Record::WorkerExited(w) => ev.push(json!({
                "ph": "i", "s": "p", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "worker",
                "name": format!("worker {} {}", w.worker, w.how), "ts": us(ts),
                "args": {"pid": w.pid, "cgroup": w.cgroup},
            })),
            Record::WorkerErrors(e) => ev.push(json!({
                "ph": "i", "s": "p", "pid": PID_RUN, "tid": TID_EVENTS, "cat": "worker",
                "name": format!("worker {}: {} failed {}", e.worker, e.failed, e.op),
                "ts": us(ts), "args": {"errno": e.errno},
            })),
            _ => {}
        }
    }
    // Steps the trace never closed run to its last record.
    for (step, begin) in open {
        ev.push(json!({
            "ph": "X", "pid": PID_RUN, "tid": TID_STEPS, "cat": "step",
            "name": name_of(sc, step), "ts": us(begin), "dur": us(last_ts.saturating_sub(begin)),
            "args": {"outcome": "not ended"},
        }));
    }
    let doc = json!({
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "otherData": {
            "scenario": sc.name,
            "kernel": meta.kernel.release,
            "backend": meta.backend.to_string(),
            "acceleration": meta.acceleration.map(|a| a.to_string()),
            "topology": meta.topology.to_string(),
        },
    });
    Ok(serde_json::to_string(&doc)?)
}
