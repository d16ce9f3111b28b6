//! The work behind the `replay` binary: loading traces, extracting metrics,
//! and rendering `show`, `stats`, `diff` and `validate`.
pub mod args;
pub mod diff;
pub mod load;
pub mod metric;
pub mod runqueue;
pub mod show;
pub mod stats;
pub mod text;
pub mod validate;

use std::process::ExitCode;

use args::{Args, Command};

/// Exit status for "the tool itself failed" (unreadable file, bad arguments).
pub const EXIT_ERROR: u8 = 2;

/// Runs one `replay` command and returns its exit status.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
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
        Command::Diff { a, b, json, all } => {
            let a = load::LoadedTrace::open(a)?;
            let b = load::LoadedTrace::open(b)?;
            diff::diff(
                &mut out,
                &a,
                &b,
                diff::DiffOptions {
                    json: *json,
                    all: *all,
                },
            )?;
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
