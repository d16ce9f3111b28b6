//! `schedtape-scx`: attach schedtape's FIFO sched_ext scheduler until told to stop.
#[cfg(feature = "loader")]
mod loader;

use std::process::ExitCode;

use schedtape_scx::{Command, USAGE, parse_args};

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("schedtape-scx: {e}");
            return ExitCode::from(2);
        }
    };
    run(&opts)
}

#[cfg(feature = "loader")]
fn run(opts: &schedtape_scx::Options) -> ExitCode {
    match loader::run(opts) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("schedtape-scx: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "loader"))]
fn run(_: &schedtape_scx::Options) -> ExitCode {
    eprintln!(
        "schedtape-scx: built without the `loader` feature (no BPF program); \
         build it with `cargo xtask` or `--features loader`"
    );
    ExitCode::from(1)
}
