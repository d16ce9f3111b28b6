//! Our VMM as a process of its own booting Linux, for `cargo xtask bench
//! nested` (the `vmm-linux-run` binary): the smallest host of the VMM, as
//! QEMU is its own binary. It boots the kernel, prints [`STARTED_LINE`] once
//! the vCPUs run, echoes the serial console until a line holds the `until`
//! text, waits for a line on stdin, then runs the freeze cycles and prints one
//! `freeze <rendezvous ns> <freeze() ns> <thaw() ns>` line each, then
//! [`FREEZES_DONE`].
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use trace_format::scenario::Topology;

use crate::backend::{BackendError, ConsoleEvent, Vm};
use crate::kvm::{KvmConfig, KvmError, KvmVm, VmExit};

/// Why a run of [`run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Launch(#[from] KvmError),
    #[error("the guest did not print {until:?} (exit {exit:?})")]
    NoUntil { until: String, exit: Option<VmExit> },
    #[error("freeze: {0}")]
    Freeze(#[source] BackendError),
    #[error("thaw: {0}")]
    Thaw(#[source] BackendError),
    #[error("stdin or stdout: {0}")]
    Io(#[from] std::io::Error),
}

/// Printed once the VM is built and its vCPU threads run.
pub const STARTED_LINE: &str = "schedtape-bench: vCPUs started";
/// Starts the line that says how long each stage of building the VM took.
pub const BUILT_PREFIX: &str = "schedtape-bench: built in";

/// `schedtape-bench: built in vm 1.2 ms, memory 0.4 ms, …`.
fn built_line(stages: &[(&str, Duration)]) -> String {
    let parts: Vec<String> = stages
        .iter()
        .map(|(name, d)| format!("{name} {:.1} ms", d.as_secs_f64() * 1e3))
        .collect();
    format!("{BUILT_PREFIX} {}", parts.join(", "))
}

/// Printed after the last freeze cycle.
pub const FREEZES_DONE: &str = "freezes done";
/// The guest runs this long between two freeze cycles.
pub const BETWEEN: Duration = Duration::from_millis(2);
/// Longest sleep of the console loop between wake-ups (each console line and
/// the VM's end wake it at once, as in `xtask run`).
const IDLE: Duration = Duration::from_millis(25);

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub cpus: u16,
    pub memory_mib: u64,
    pub freezes: usize,
    pub timeout: Duration,
    /// The console text that ends the boot.
    pub until: String,
}

impl Options {
    /// From `KERNEL INITRD CPUS MEMORY_MIB FREEZES TIMEOUT_S CMDLINE UNTIL`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let [
            kernel,
            initrd,
            cpus,
            memory,
            freezes,
            timeout,
            cmdline,
            until,
        ] = args
        else {
            return Err(
                "usage: vmm-linux-run KERNEL INITRD CPUS MEMORY_MIB FREEZES TIMEOUT_S CMDLINE UNTIL"
                    .into(),
            );
        };
        let number = |what: &str, s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("{what} {s:?} is not a number: {e}"))
        };
        Ok(Options {
            kernel: kernel.into(),
            initrd: initrd.into(),
            cmdline: cmdline.clone(),
            cpus: u16::try_from(number("CPUS", cpus)?)
                .map_err(|_| format!("CPUS {cpus} is too large"))?,
            memory_mib: number("MEMORY_MIB", memory)?,
            freezes: usize::try_from(number("FREEZES", freezes)?)
                .map_err(|_| format!("FREEZES {freezes} is too large"))?,
            timeout: Duration::from_secs(number("TIMEOUT_S", timeout)?),
            until: until.clone(),
        })
    }

    /// The arguments [`Options::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            self.kernel.display().to_string(),
            self.initrd.display().to_string(),
            self.cpus.to_string(),
            self.memory_mib.to_string(),
            self.freezes.to_string(),
            self.timeout.as_secs().to_string(),
            self.cmdline.clone(),
            self.until.clone(),
        ]
    }
}

/// Runs the protocol above on stdin/stdout.
pub fn run(o: &Options) -> Result<(), RunError> {
    let config = KvmConfig {
        kernel: o.kernel.clone(),
        initrd: Some(o.initrd.clone()),
        cmdline: o.cmdline.clone(),
        topology: Topology::new(1, 1, o.cpus, 1),
        memory_mib: o.memory_mib,
        stop_at_boot_mark: false,
    };
    let mut vm = KvmVm::launch(&config, |_| {})?;
    let deadline = Instant::now() + o.timeout;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", built_line(vm.build_stages()))?;
    writeln!(out, "{STARTED_LINE}")?;
    out.flush()?;
    let mut events = Vec::new();
    'boot: loop {
        events.clear();
        vm.poll_console(&mut events);
        for event in events.drain(..) {
            let (ConsoleEvent::Serial(line) | ConsoleEvent::Hypervisor(line)) = event;
            writeln!(out, "{line}")?;
            out.flush()?;
            if line.contains(&o.until) {
                break 'boot;
            }
        }
        if vm.has_exited() || Instant::now() > deadline {
            vm.kill();
            return Err(RunError::NoUntil {
                until: o.until.clone(),
                exit: vm.exit_status(),
            });
        }
        vm.wait_for_guest(IDLE);
    }
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    for _ in 0..o.freezes {
        let t = Instant::now();
        let rendezvous = vm.freeze().map_err(RunError::Freeze)?;
        let call = t.elapsed();
        let t = Instant::now();
        vm.thaw().map_err(RunError::Thaw)?;
        let thaw = t.elapsed();
        writeln!(
            out,
            "freeze {} {} {}",
            rendezvous.as_nanos(),
            call.as_nanos(),
            thaw.as_nanos()
        )?;
        std::thread::sleep(BETWEEN);
    }
    writeln!(out, "{FREEZES_DONE}")?;
    out.flush()?;
    vm.kill();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_line_names_each_stage() {
        let stages = [
            ("vm", Duration::from_micros(1200)),
            ("kernel", Duration::from_millis(12)),
        ];
        assert_eq!(
            built_line(&stages),
            "schedtape-bench: built in vm 1.2 ms, kernel 12.0 ms"
        );
    }

    #[test]
    fn options_round_trip_and_bad_numbers_are_named() {
        let o = Options {
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0 quiet".into(),
            cpus: 8,
            memory_mib: 256,
            freezes: 20,
            timeout: Duration::from_secs(180),
            until: "/init reached".into(),
        };
        let back = Options::parse(&o.to_args()).unwrap();
        assert_eq!(back.to_args(), o.to_args());
        let mut bad = o.to_args();
        bad[2] = "eight".into();
        let e = Options::parse(&bad).unwrap_err();
        assert!(e.starts_with("CPUS \"eight\" is not a number"), "{e}");
        assert!(Options::parse(&bad[..3]).unwrap_err().starts_with("usage:"));
    }
}
