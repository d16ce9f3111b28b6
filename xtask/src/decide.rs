//! `run --from BASE --until-decided`: repeat when unsure. New runs (and, with
//! `--base-kernel`, base runs alternating with them, so both sides see the
//! same host conditions) are added one round at a time until `replay check`
//! against the baseline is decided, or `--max-runs` is spent.
use std::path::{Path, PathBuf};

use crate::scenario_run::{Failure, Prepared, RunArgs, numbered, record, suffixed};

/// Runs the series; returns `replay check`'s answer on everything recorded:
/// 0 no regression, 1 regression, 125 cannot judge.
pub(crate) fn until_decided(
    args: &RunArgs,
    new: &Prepared,
    base: Option<&Prepared>,
) -> Result<u8, Failure> {
    let Some(from) = &args.from else {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "--until-decided needs --from BASE.trace"
        )));
    };
    let mut bases = vec![from.clone()];
    let mut news = Vec::new();
    let mut last = None;
    for round in 1..=args.max_runs {
        if crate::signals::received().is_some() {
            break;
        }
        // B, then A B A B …: the archived baseline stands for the first A.
        if let (Some(base), true) = (base, round > 1) {
            let output = base_output(&new.output, round - 1);
            eprintln!("until decided: base run {} (--base-kernel)", round - 1);
            record(args, base, output.clone(), false)?;
            bases.push(output);
        }
        let output = numbered(&new.output, round);
        eprintln!(
            "until decided: new run {round} of at most {}",
            args.max_runs
        );
        record(args, new, output.clone(), round == 1)?;
        news.push(output);
        let result = replay::check::check(&bases, &news, new.thresholds());
        eprintln!(
            "until decided: after {} base and {} new run(s): {} ({})",
            bases.len(),
            news.len(),
            result.summary,
            if result.decided {
                "decided"
            } else {
                "not decided"
            }
        );
        let decided = result.decided;
        last = Some(result);
        if decided {
            break;
        }
    }
    let Some(result) = last else {
        return Ok(replay::check::EXIT_SKIP);
    };
    if !result.decided {
        eprintln!(
            "until decided: {} new run(s) spent without a decision; answering as replay check does",
            news.len()
        );
    }
    let mut out = std::io::stdout().lock();
    let _ = replay::check::render(&mut out, &result, false);
    Ok(result.code)
}

/// `out.trace` → `out-base-2.trace`.
pub(crate) fn base_output(path: &Path, round: u32) -> PathBuf {
    suffixed(path, &format!("base-{round}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let argv = std::iter::once("run").chain(line.iter().copied());
        <Cli as clap::Parser>::parse_from(argv).run
    }

    #[test]
    fn every_trace_a_series_may_write_is_checked_against_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.trace");
        let check = |baseline: &str| {
            let base = dir.path().join(baseline);
            std::fs::write(&base, b"the baseline").unwrap();
            let from = base.to_str().unwrap();
            let a = args(&["--from", from, "--until-decided", "--max-runs", "3"]);
            let result = crate::run_checks::check_outputs(&a, &out);
            std::fs::remove_file(&base).unwrap();
            result
        };
        // New run 3 of `-o x.trace` is x-3.trace; base run 2 is x-base-2.trace.
        for taken in ["x-3.trace", "x-base-2.trace"] {
            let err = check(taken).unwrap_err();
            assert!(format!("{err:#}").contains("--from"), "{err:#}");
        }
        check("x-4.trace").unwrap();
    }

    #[test]
    fn base_runs_are_named_apart_from_new_ones() {
        assert_eq!(
            base_output(Path::new("/t/new.trace"), 2),
            Path::new("/t/new-base-2.trace")
        );
        assert_eq!(base_output(Path::new("n"), 1), Path::new("n-base-1"));
        assert_ne!(
            base_output(Path::new("/t/new.trace"), 1),
            numbered(Path::new("/t/new.trace"), 1)
        );
    }
}
