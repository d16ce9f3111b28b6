//! `replay`: read schedtape traces offline.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = replay::args::Args::parse();
    match replay::run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("replay: {err:#}");
            ExitCode::from(replay::EXIT_ERROR)
        }
    }
}
