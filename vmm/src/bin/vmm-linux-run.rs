//! Our VMM booting Linux as a process of its own, for `cargo xtask bench
//! nested` (see `vmm::linux_run` for the protocol on stdin and stdout).
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match vmm::linux_run::Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vmm-linux-run: {e}");
            return ExitCode::from(2);
        }
    };
    match vmm::linux_run::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmm-linux-run: {e}");
            ExitCode::FAILURE
        }
    }
}
