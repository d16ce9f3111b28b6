//! `replay`: read schedtape traces offline.
use std::process::ExitCode;

use clap::Parser;

/// Commands whose exit status is a `git bisect run` answer: errors are 125.
fn is_predicate(argv: &[String]) -> bool {
    argv.iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| a == "check")
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let failure = if is_predicate(&argv) {
        replay::check::EXIT_SKIP
    } else {
        replay::EXIT_ERROR
    };
    let args = match replay::args::Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(failure);
        }
    };
    match std::panic::catch_unwind(|| replay::run(&args)) {
        Ok(Ok(code)) => code,
        // `replay show … | head`: the reader went away, nothing is wrong.
        Ok(Err(err)) if broken_pipe(&err) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("replay: {err:#}");
            ExitCode::from(failure)
        }
        Err(_) => ExitCode::from(failure),
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
