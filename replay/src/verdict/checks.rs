//! The verdicts themselves: each turns the walk's evidence into pass, fail or
//! inconclusive with the numbers behind it.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use trace_format::metrics::RunMetrics;
use trace_format::record::{Verdict, VerdictOutcome};
use trace_format::scenario::CpuList;

use super::walk::{Evidence, RoundGroup, SegmentEvidence};
use crate::metric::{StepLabeler, cgroup_label};
use crate::text::duration;
use crate::thresholds::VerdictThresholds;

fn verdict(name: &str, outcome: VerdictOutcome, detail: String) -> Verdict {
    Verdict {
        name: name.to_string(),
        outcome,
        detail,
    }
}

fn cg(name: &str) -> &str {
    if name.is_empty() { "(root)" } else { name }
}

/// Every worker made progress in every judged step. A worker that ended on
/// its own (OOM-killed, crashed) is named with how it ended, and does not
/// count as starved by the scheduler.
pub fn not_starved(ev: &Evidence) -> Verdict {
    const NAME: &str = "not-starved";
    let mut checked = 0usize;
    let mut least: Option<(u64, u32, String)> = None;
    let mut starved = Vec::new();
    let mut dead = Vec::new();
    for seg in ev.segments.iter().filter(|s| s.judged()) {
        for (w, t) in seg.workers.iter().filter(|(_, t)| !t.frozen) {
            checked += 1;
            if t.iterations == 0 {
                let who = format!(
                    "worker {w} ({}, {}) in {}",
                    cg(&t.cgroup),
                    t.work,
                    seg.label
                );
                match ev.health.death(*w).filter(|_| t.died) {
                    Some(how) => dead.push(format!("{who} {how}")),
                    None => starved.push(who),
                }
            } else if least.as_ref().is_none_or(|l| t.iterations < l.0) {
                least = Some((t.iterations, *w, seg.label.clone()));
            }
        }
    }
    if checked == 0 {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            "no worker samples in any completed step".into(),
        );
    }
    let listed = |mut v: Vec<String>| {
        let n = v.len();
        v.truncate(5);
        (n, v.join("; "))
    };
    let died = if dead.is_empty() {
        String::new()
    } else {
        let (n, list) = listed(dead.clone());
        format!("{n} worker-step(s) made no progress because the worker died: {list}")
    };
    if !starved.is_empty() {
        let (n, list) = listed(starved);
        let died = if died.is_empty() {
            died
        } else {
            format!("; {died}")
        };
        return verdict(
            NAME,
            VerdictOutcome::Fail,
            format!("{n} of {checked} worker-steps made no progress: {list}{died}"),
        );
    }
    if !dead.is_empty() {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            format!("{died}; starvation cannot be judged for them"),
        );
    }
    let (it, w, step) = least.unwrap_or_default();
    verdict(
        NAME,
        VerdictOutcome::Pass,
        format!(
            "{checked} worker-steps all progressed; least: worker {w} in {step} with {it} iterations"
        ),
    )
}

/// No worker was seen on a CPU outside its cgroup's cpuset.
pub fn cpuset_isolation(ev: &Evidence) -> Verdict {
    const NAME: &str = "cpuset-isolation";
    let mut skipped = if ev.isolation_skipped > 0 {
        format!(
            ", {} sample(s) straddling a cpuset change skipped",
            ev.isolation_skipped
        )
    } else {
        String::new()
    };
    if ev.no_cpu_info > 0 {
        let _ = write!(
            skipped,
            ", {} sample(s) without CPU information",
            ev.no_cpu_info
        );
    }
    if !ev.violations.is_empty() {
        let mut d = format!(
            "{} of {} samples ran outside their cpuset{skipped}: ",
            ev.violations.len(),
            ev.isolation_checked
        );
        for (i, v) in ev.violations.iter().take(3).enumerate() {
            let sep = if i > 0 { "; " } else { "" };
            let _ = write!(
                d,
                "{sep}worker {} ({}) at {} on CPUs {} but allowed {}",
                v.worker,
                cg(&v.cgroup),
                crate::text::secs(v.ts_ns),
                v.seen,
                v.allowed
            );
        }
        return verdict(NAME, VerdictOutcome::Fail, d);
    }
    if ev.isolation_checked == 0 {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            "no sample reported the CPUs it ran on".into(),
        );
    }
    if ev.restricted_cgroups.is_empty() {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            format!(
                "no sampled cgroup restricts its CPUs ({} samples){skipped}",
                ev.isolation_checked
            ),
        );
    }
    let names: Vec<&str> = ev.restricted_cgroups.iter().map(|s| cg(s)).collect();
    verdict(
        NAME,
        VerdictOutcome::Pass,
        format!(
            "{} samples within their cpusets (restricted: {}){skipped}",
            ev.isolation_checked,
            names.join(", ")
        ),
    )
}

/// Within each cgroup, workers of the same work get similar CPU time.
pub fn fairness_spread(ev: &Evidence, t: &VerdictThresholds) -> Verdict {
    const NAME: &str = "fairness-spread";
    let mut worst: Option<(f64, String)> = None;
    let mut failures = Vec::new();
    let mut groups = 0usize;
    for seg in ev.segments.iter().filter(|s| s.judged()) {
        let mut by_group: BTreeMap<(&str, &str), Vec<(u32, u64)>> = BTreeMap::new();
        for (w, tally) in &seg.workers {
            if tally.samples >= t.fairness_min_samples
                && !tally.frozen
                && tally.unpinned
                && !tally.died
            {
                by_group
                    .entry((tally.cgroup.as_str(), tally.work.as_str()))
                    .or_default()
                    .push((*w, tally.run_ns));
            }
        }
        for ((cgroup, work), runs) in by_group {
            if runs.len() < 2 {
                continue;
            }
            groups += 1;
            let (min_w, min) = runs.iter().copied().min_by_key(|r| r.1).unwrap_or_default();
            let (max_w, max) = runs.iter().copied().max_by_key(|r| r.1).unwrap_or_default();
            let ratio = if min == 0 {
                f64::INFINITY
            } else {
                max as f64 / min as f64
            };
            let what = format!(
                "{} {} {work} ×{}: max/min run {ratio:.2} (worker {max_w} {} vs worker {min_w} {})",
                seg.label,
                cg(cgroup),
                runs.len(),
                duration(max),
                duration(min)
            );
            if ratio > t.fairness_max_ratio {
                failures.push(what.clone());
            }
            if worst.as_ref().is_none_or(|w| ratio > w.0) {
                worst = Some((ratio, what));
            }
        }
    }
    let limit = t.fairness_max_ratio;
    match worst {
        None => verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            "no cgroup has two or more unpinned workers of the same work in a completed step"
                .into(),
        ),
        Some(_) if !failures.is_empty() => verdict(
            NAME,
            VerdictOutcome::Fail,
            format!(
                "{} of {groups} group(s) above {limit:.2}: {}",
                failures.len(),
                failures.join("; ")
            ),
        ),
        Some((_, what)) => verdict(
            NAME,
            VerdictOutcome::Pass,
            format!("{groups} group(s) within max/min {limit:.2}; widest: {what}"),
        ),
    }
}

/// Cgroups contending for the same CPUs share them in proportion to cpu.weight.
pub fn weight_share(ev: &Evidence, t: &VerdictThresholds, topo_cpus: &CpuList) -> Verdict {
    const NAME: &str = "weight-share";
    let mut judged = Vec::new();
    let mut failures = Vec::new();
    for seg in ev.segments.iter().filter(|s| s.judged()) {
        for part in partitions(seg, topo_cpus) {
            let expected = water_fill(&part.groups, part.cpus);
            let total_run: u64 = part.groups.iter().map(|g| g.run_ns).sum();
            let total_exp: f64 = expected.iter().sum();
            if total_run == 0 || total_exp <= 0.0 {
                continue;
            }
            let mut parts = Vec::new();
            let mut bad = false;
            for (g, exp) in part.groups.iter().zip(&expected) {
                let obs = g.run_ns as f64 / total_run as f64;
                let exp = exp / total_exp;
                let err = 100.0 * (obs / exp - 1.0);
                bad |= err.abs() > t.weight_share_tolerance_pct;
                parts.push(format!(
                    "{} w{} {:.1}% (expected {:.1}%, {err:+.1}%)",
                    cg(&g.name),
                    g.weight,
                    100.0 * obs,
                    100.0 * exp
                ));
            }
            let line = format!(
                "{} CPUs {} over {} rounds: {}",
                seg.label,
                part.cpu_list,
                part.rounds,
                parts.join(", ")
            );
            if bad {
                failures.push(line.clone());
            }
            judged.push(line);
        }
    }
    let tol = t.weight_share_tolerance_pct;
    if judged.is_empty() {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            "no cgroups of unlimited CPU-bound workers contend alone on the same CPUs".into(),
        );
    }
    if failures.is_empty() {
        verdict(
            NAME,
            VerdictOutcome::Pass,
            format!("within ±{tol:.0}%: {}", judged.join("; ")),
        )
    } else {
        verdict(
            NAME,
            VerdictOutcome::Fail,
            format!("off by more than ±{tol:.0}%: {}", failures.join("; ")),
        )
    }
}

/// One cgroup's totals within a contended CPU set.
#[derive(Debug)]
struct ShareGroup {
    name: String,
    weight: u32,
    workers: u32,
    run_ns: u64,
}

#[derive(Debug)]
struct Partition {
    cpu_list: CpuList,
    cpus: u32,
    rounds: usize,
    groups: Vec<ShareGroup>,
}

/// Sets of cgroups with identical cpusets, only CPU-bound unlimited workers,
/// and nobody else on those CPUs, summed over the rounds where all are clean.
fn partitions(seg: &SegmentEvidence, all: &CpuList) -> Vec<Partition> {
    let inner = match seg.rounds.len() {
        0..=2 => return Vec::new(),
        n => &seg.rounds[1..n - 1],
    };
    let cpus_of = |g: &RoundGroup| g.cpus.clone().unwrap_or_else(|| all.clone());
    // Candidate sets: every distinct cpuset of a saturating group.
    let mut sets: Vec<CpuList> = inner
        .iter()
        .flat_map(|r| r.values().filter(|g| g.saturating).map(cpus_of))
        .collect();
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    sets.dedup();
    let mut out = Vec::new();
    for set in sets {
        let mut sums: BTreeMap<&str, ShareGroup> = BTreeMap::new();
        let mut rounds = 0usize;
        for r in inner {
            let members: Vec<(&String, &RoundGroup)> = r
                .iter()
                .filter(|(_, g)| !cpus_of(g).intersect(&set).is_empty())
                .collect();
            let usable = members.len() >= 2
                && members
                    .iter()
                    .all(|(_, g)| g.saturating && g.clean && cpus_of(g) == set);
            if !usable {
                continue;
            }
            rounds += 1;
            for (name, g) in members {
                let s = sums.entry(name.as_str()).or_insert_with(|| ShareGroup {
                    name: name.clone(),
                    weight: g.weight,
                    workers: g.workers,
                    run_ns: 0,
                });
                s.run_ns = s.run_ns.saturating_add(g.run_ns);
            }
        }
        let cpus = u32::try_from(set.len()).unwrap_or(u32::MAX);
        let demand: u32 = sums.values().map(|g| g.workers.min(cpus)).sum();
        // Weights only matter when the groups together want more than the CPUs.
        if rounds >= 3 && sums.len() >= 2 && demand > cpus {
            out.push(Partition {
                cpu_list: set,
                cpus,
                rounds,
                groups: sums.into_values().collect(),
            });
        }
    }
    out
}

/// Weighted max-min fair allocation of `cpus` CPUs: each group gets
/// weight × λ, capped at one CPU per worker.
fn water_fill(groups: &[ShareGroup], cpus: u32) -> Vec<f64> {
    let caps: Vec<f64> = groups
        .iter()
        .map(|g| f64::from(g.workers.min(cpus)))
        .collect();
    let mut alloc = vec![0.0; groups.len()];
    let mut active: Vec<usize> = (0..groups.len()).collect();
    let mut left = f64::from(cpus);
    while !active.is_empty() && left > 1e-12 {
        let wsum: f64 = active.iter().map(|&i| f64::from(groups[i].weight)).sum();
        if wsum <= 0.0 {
            break;
        }
        let lambda = left / wsum;
        let capped: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| f64::from(groups[i].weight) * lambda >= caps[i])
            .collect();
        if capped.is_empty() {
            for &i in &active {
                alloc[i] = f64::from(groups[i].weight) * lambda;
            }
            break;
        }
        for &i in &capped {
            alloc[i] = caps[i];
            left -= caps[i];
        }
        active.retain(|i| !capped.contains(i));
    }
    alloc
}

/// No runnable worker went longer than the limit without running.
pub fn max_sched_gap(ev: &Evidence, t: &VerdictThresholds) -> Verdict {
    const NAME: &str = "max-sched-gap";
    if ev.samples == 0 {
        return verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            "no worker samples".into(),
        );
    }
    let wait = ev
        .max_wait_fraction
        .map(|(f, w, _)| {
            format!(
                "; largest wait in one interval {:.0}% (worker {w})",
                100.0 * f
            )
        })
        .unwrap_or_default();
    match &ev.max_gap {
        None => verdict(
            NAME,
            VerdictOutcome::Pass,
            format!(
                "no sample was runnable without running (limit {}){wait}",
                duration(t.max_gap)
            ),
        ),
        Some((gap, w, cgroup, at)) => {
            let d = format!(
                "longest runnable-without-running streak {} (worker {w}, {}, ending {}), limit {}{wait}",
                duration(*gap),
                cg(cgroup),
                crate::text::secs(*at),
                duration(t.max_gap)
            );
            let outcome = if *gap > t.max_gap {
                VerdictOutcome::Fail
            } else {
                VerdictOutcome::Pass
            };
            verdict(NAME, outcome, d)
        }
    }
}

/// Each cgroup's wake-up latency p99 stays under the ceiling.
pub fn wake_p99(run: &RunMetrics, t: &VerdictThresholds) -> Verdict {
    const NAME: &str = "wake-latency-p99";
    let ceiling = t.wake_p99_max;
    let mut labeler = StepLabeler::default();
    let (mut pass, mut fail, mut unsure) = (Vec::new(), Vec::new(), Vec::new());
    for step in &run.steps {
        let label = labeler.next(step.step);
        if !(step.ended && !step.failed && step.step.is_some_and(|s| !s.is_backdrop())) {
            continue;
        }
        for g in &step.groups {
            if g.wake.count() < t.wake_min_count {
                continue;
            }
            let Some(upper) = g.wake_quantile_ns(0.99) else {
                continue;
            };
            let lower = upper / 2;
            let line = format!(
                "{label} {}: p99 in [{}, {}) over {} wake-ups",
                cgroup_label(g),
                duration(lower),
                duration(upper),
                g.wake.count()
            );
            if upper <= ceiling {
                pass.push(line);
            } else if lower >= ceiling {
                fail.push(line);
            } else {
                unsure.push(line);
            }
        }
    }
    let limit = duration(ceiling);
    if !fail.is_empty() {
        verdict(
            NAME,
            VerdictOutcome::Fail,
            format!("above {limit}: {}", fail.join("; ")),
        )
    } else if !unsure.is_empty() {
        verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            format!(
                "{limit} falls inside the log2 bucket of: {}",
                unsure.join("; ")
            ),
        )
    } else if pass.is_empty() {
        verdict(
            NAME,
            VerdictOutcome::Inconclusive,
            format!(
                "no cgroup recorded {} or more wake-ups in a completed step",
                t.wake_min_count
            ),
        )
    } else {
        verdict(
            NAME,
            VerdictOutcome::Pass,
            format!("under {limit}: {}", pass.join("; ")),
        )
    }
}

/// No CPU with runnable tasks kept a frozen clock or switch count.
pub fn runqueue_stall(ev: &Evidence, t: &VerdictThresholds) -> Verdict {
    use trace_format::record::RowFields;
    const NAME: &str = "runqueue-stall";
    let after = match ev.snapshots_after_run {
        0 => String::new(),
        n => format!("; {n} snapshot(s) after the last step (teardown, shutdown) not judged"),
    };
    let verdict = |outcome, detail: String| verdict(NAME, outcome, format!("{detail}{after}"));
    if ev.snapshot_pairs == 0 {
        return verdict(
            VerdictOutcome::Inconclusive,
            format!(
                "{} run-queue snapshot(s): need two at least {} apart",
                ev.snapshots,
                duration(t.stall_min_interval)
            ),
        );
    }
    let f = ev.snapshot_fields;
    if !f.has(RowFields::NR_RUNNING) || !(f.has(RowFields::CLOCK) || f.has(RowFields::NR_SWITCHES))
    {
        return verdict(
            VerdictOutcome::Inconclusive,
            "snapshots lack nr_running, or both rq.clock and nr_switches".into(),
        );
    }
    if ev.stalls.is_empty() {
        return verdict(
            VerdictOutcome::Pass,
            format!(
                "{} snapshot pairs: every busy run queue advanced",
                ev.snapshot_pairs
            ),
        );
    }
    let list: Vec<String> = ev
        .stalls
        .iter()
        .take(5)
        .map(|s| {
            format!(
                "CPU {} {}–{} with {} runnable: {} did not advance",
                s.cpu,
                crate::text::secs(s.from_ns),
                crate::text::secs(s.to_ns),
                s.nr_running,
                s.what
            )
        })
        .collect();
    verdict(
        VerdictOutcome::Fail,
        format!(
            "{} stall(s) in {} snapshot pairs: {}",
            ev.stalls.len(),
            ev.snapshot_pairs,
            list.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests;
