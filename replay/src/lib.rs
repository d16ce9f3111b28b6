//! The work behind the `replay` binary: loading traces, extracting metrics,
//! judging runs and comparing them, and rendering every command.
//!
//! [`verdict::judge_with`] is the live verdict `cargo xtask run` calls at the
//! end of a run (and records in the trace); `replay judge` recomputes the
//! same verdicts offline.
pub mod args;
pub mod bisect;
pub mod check;
pub mod compare;
pub mod diff;
pub mod failure;
pub mod input;
pub mod load;
pub mod metric;
pub mod output;
pub mod perfetto;
pub mod plot;
pub mod runqueue;
pub mod series;
pub mod show;
pub mod stat;
pub mod stats;
pub mod text;
pub mod thresholds;
pub mod validate;
pub mod verdict;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use args::{Args, Command, Knobs};
use compare::{Run, Sided};
use thresholds::Thresholds;
use trace_format::scenario::ThresholdsSpec;

/// Exit status for "the tool itself failed" (unreadable file, bad arguments).
pub const EXIT_ERROR: u8 = 2;

/// Thresholds for a comparison: the defaults, then those archived in the
/// scenario of `reference` (the baseline, so both sides are judged alike),
/// then `--thresholds FILE`, then the command-line knobs.
pub fn thresholds(k: &Knobs, reference: Option<&Path>) -> Result<Thresholds> {
    let spec = reference.and_then(scenario_thresholds);
    let mut t = Thresholds::resolve(spec.as_ref(), k.thresholds.as_deref())?;
    if let Some(v) = k.noise {
        t.diff.noise_pct = v;
    }
    if let Some(v) = k.interval_noise {
        t.diff.interval_noise_pct = v;
    }
    if let Some(v) = k.alpha {
        t.diff.alpha = v;
    }
    if let Some(v) = k.min_runs {
        t.diff.min_runs = v.max(1);
    }
    t.check()?;
    Ok(t)
}

/// The thresholds archived in a trace's scenario; `None` when it sets none
/// or cannot be read (the command then reports the unreadable trace itself).
pub fn scenario_thresholds(path: &Path) -> Option<ThresholdsSpec> {
    let loaded = load::LoadedTrace::open(path).ok()?;
    let trace = loaded.trace().ok()?;
    trace.meta().scenario.thresholds.clone()
}

/// The two sides of `replay diff` from its three spellings.
pub fn diff_sides(
    traces: &[PathBuf],
    after: &[PathBuf],
    a: &[PathBuf],
    b: &[PathBuf],
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    if !a.is_empty() || !b.is_empty() {
        if a.is_empty() || b.is_empty() {
            bail!("give both --a and --b");
        }
        return Ok((a.to_vec(), b.to_vec()));
    }
    if !after.is_empty() {
        if traces.is_empty() {
            bail!("no traces before `--` for side A");
        }
        return Ok((traces.to_vec(), after.to_vec()));
    }
    match traces {
        [x, y] => Ok((vec![x.clone()], vec![y.clone()])),
        _ => bail!("give two traces, or `A… -- B…`, or `--a A… --b B…`"),
    }
}

/// Runs one `replay` command and returns its exit status.
pub fn run(args: &Args) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        Command::Show { trace, records } => {
            let loaded = load::LoadedTrace::open(trace)?;
            show::show(&mut out, &loaded, *records)?;
        }
        Command::Stats { trace, json } => {
            let loaded = load::LoadedTrace::open(trace)?;
            stats::stats(&mut out, &loaded, *json)?;
        }
        Command::Diff {
            traces,
            after,
            side_a,
            side_b,
            json,
            all,
            knobs,
            color,
        } => {
            let (a, b) = diff_sides(traces, after, side_a, side_b)?;
            let t = thresholds(knobs, a.first().map(PathBuf::as_path))?;
            let intervals = compare::needs_intervals(a.len(), b.len(), &t.diff);
            let load = |paths: &[PathBuf]| -> Result<Vec<Run>> {
                paths.iter().map(|p| Run::load(p, intervals)).collect()
            };
            let report = compare::compare(&load(&a)?, &load(&b)?, &t.diff, Sided::Both);
            let opts = diff::DiffOptions {
                json: *json,
                all: *all,
                paint: text::Paint::for_stdout(*color),
            };
            diff::render(&mut out, &report, opts)?;
        }
        Command::Check {
            baseline,
            traces,
            json,
            knobs,
        } => {
            let code = match thresholds(knobs, baseline.first().map(PathBuf::as_path)) {
                Ok(t) => check::run(&mut out, baseline, traces, &t, *json),
                Err(e) => {
                    eprintln!("replay: cannot judge: {e:#}");
                    check::EXIT_SKIP
                }
            };
            return Ok(ExitCode::from(code));
        }
        Command::Bisect {
            inputs,
            baseline,
            json,
            knobs,
        } => {
            let candidates = bisect::candidates(inputs)?;
            let reference = baseline
                .first()
                .or_else(|| candidates.first().and_then(|c| c.traces.first()));
            let t = thresholds(knobs, reference.map(PathBuf::as_path))?;
            let b = bisect::bisect(candidates, baseline, &t)?;
            bisect::render(&mut out, &b, *json)?;
            if let Some(why) = &b.cannot_judge {
                eprintln!("replay: cannot judge: {why}");
            }
            return Ok(ExitCode::from(b.code()));
        }
        Command::Judge {
            trace,
            thresholds,
            json,
        } => {
            let judged = verdict::judge_file_recorded(trace, thresholds.as_deref())?;
            verdict::render_with_recorded(&mut out, &judged.verdicts, &judged.recorded, *json)?;
            if let Some(why) = &judged.failure {
                eprintln!("the system under test failed: {why}");
            }
            if verdict::any_failed(&judged.verdicts) || judged.failure.is_some() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Plot {
            trace,
            other,
            output,
        } => {
            let mut paths = vec![trace.clone()];
            paths.extend(other.iter().cloned());
            crate::output::check_not_an_input(output, &paths)?;
            let svg = plot::plot_files(&paths)?;
            crate::output::write_atomic(output, svg.as_bytes())?;
        }
        Command::Export {
            trace,
            perfetto: _,
            output,
        } => {
            if let Some(p) = output {
                crate::output::check_not_an_input(p, &[trace])?;
            }
            let loaded = load::LoadedTrace::open(trace)?;
            let json = perfetto::export(&loaded.trace()?)?;
            match output {
                Some(p) => crate::output::write_atomic(p, json.as_bytes())?,
                None => {
                    use std::io::Write;
                    out.write_all(json.as_bytes())?;
                }
            }
        }
        Command::Validate { trace } => {
            let loaded = load::LoadedTrace::open(trace)?;
            let intact = validate::validate(&mut out, &loaded)?;
            return Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
