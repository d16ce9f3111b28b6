//! A run ended by a signal: SIGTERM (what `timeout`, CI and systemd send)
//! stops the guest and closes the trace with `End(Terminated)`; SIGKILL
//! cannot be handled, but QEMU still dies with the recorder. Neither leaves
//! QEMU running or runtime files in /dev/shm behind.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use e2e::root;
use trace_format::record::{Record, RunOutcome};

/// A long scenario: the signal always arrives while the guest is running.
const LONG_SCENARIO: &str = r#"
name = "long-spin"
topology = "1n1l2c1t"
duration = "300s"
sample_interval = "100ms"

[[steps]]
name = "spin"

[[steps.setup]]
name = "a"

[[steps.setup.works]]
work = "spin_wait"
workers = 2
"#;

/// A recorder in progress, its stderr lines and where its trace goes.
struct Recording {
    xtask: Child,
    stderr: Receiver<String>,
    trace: PathBuf,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Starts `cargo xtask run scenario` on [`LONG_SCENARIO`] under QEMU and
/// waits for the guest's /init. `cargo run` execs xtask: the child's pid is
/// the recorder's.
fn start() -> Recording {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long-spin.toml");
    std::fs::write(&scenario, LONG_SCENARIO).unwrap();
    let trace = dir.path().join("run.trace");
    let mut xtask = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["run", "--quiet", "-p", "xtask", "--", "run", "scenario"])
        .arg(&scenario)
        .args(["--backend", "qemu", "-o"])
        .arg(&trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stderr) = mpsc::channel();
    let pipe = xtask.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut rec = Recording {
        xtask,
        stderr,
        trace,
        seen: Vec::new(),
        _dir: dir,
    };
    // Builds (guest, initramfs) come first: a generous bound, not a timing.
    rec.wait_for("/init reached", Duration::from_secs(900));
    rec
}

impl Recording {
    fn pid(&self) -> u32 {
        self.xtask.id()
    }

    /// Collects stderr until a line contains `needle`; panics after `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no {needle:?} in stderr:\n{}", self.seen.join("\n"));
    }

    /// The recorder's exit status (`None`: killed by a signal), waiting up to `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.xtask.try_wait().unwrap() {
                self.seen.extend(self.stderr.try_iter());
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.xtask.kill();
        panic!(
            "the recorder did not exit within {limit:?}:\n{}",
            self.seen.join("\n")
        );
    }
}

/// Children of `pid` whose command is QEMU.
fn qemu_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            stat(p).is_some_and(|(comm, _, ppid)| ppid == pid && comm.starts_with("qemu-system"))
        })
        .collect()
}

/// `(comm, state, ppid)` from /proc/PID/stat.
fn stat(pid: u32) -> Option<(String, char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = text.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// Waits (a bound, not a timing) until `pid` is gone or a zombie.
fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if stat(pid).is_none_or(|(_, state, _)| matches!(state, 'Z' | 'X')) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The runtime files (RAM, QMP socket) process `pid` made in /dev/shm or the temp dir.
fn runtime_files(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("schedtape-{pid}-");
    [PathBuf::from("/dev/shm"), std::env::temp_dir()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: sending a signal has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Kills a leftover QEMU so a failing test does not leave one behind.
fn reap(qemu: u32) {
    if !gone_within(qemu, Duration::ZERO) {
        signal(qemu, libc::SIGKILL);
    }
}

fn last_end(trace: &Path) -> (Option<RunOutcome>, bool) {
    let loaded = replay::load::LoadedTrace::open(trace).unwrap();
    let trace = loaded.trace().unwrap();
    let clean = trace.recovery().is_clean();
    let end = trace
        .records()
        .filter_map(Result::ok)
        .last()
        .and_then(|t| match t.record {
            Record::End(o) => Some(o),
            _ => None,
        });
    (end, clean)
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn sigterm_stops_the_guest_closes_the_trace_and_leaves_nothing_running() {
    let mut rec = start();
    let pid = rec.pid();
    let qemu = qemu_children(pid);
    assert_eq!(qemu.len(), 1, "one QEMU runs the guest: {qemu:?}");
    signal(pid, libc::SIGTERM);
    // The guest gets 10 s to stop before it is killed: well inside this bound.
    let code = rec.exit_within(Duration::from_secs(60));
    let qemu_gone = gone_within(qemu[0], Duration::from_secs(10));
    reap(qemu[0]);
    let log = rec.seen.join("\n");
    assert_eq!(code, Some(128 + libc::SIGTERM), "{log}");
    assert!(qemu_gone, "QEMU {} outlived the recorder:\n{log}", qemu[0]);
    assert_eq!(runtime_files(pid), Vec::<PathBuf>::new(), "{log}");
    let (end, clean) = last_end(&rec.trace);
    assert!(clean, "the trace is closed cleanly:\n{log}");
    assert_eq!(
        end,
        Some(RunOutcome::Terminated {
            signal: "SIGTERM".into()
        }),
        "{log}"
    );
    assert!(log.contains("SIGTERM: stopping the guest"), "{log}");
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn sigkill_of_the_recorder_kills_qemu_too() {
    let mut rec = start();
    let pid = rec.pid();
    let qemu = qemu_children(pid);
    assert_eq!(qemu.len(), 1, "one QEMU runs the guest: {qemu:?}");
    rec.xtask.kill().unwrap(); // SIGKILL: no handler, no destructor runs
    assert_eq!(rec.exit_within(Duration::from_secs(10)), None);
    let qemu_gone = gone_within(qemu[0], Duration::from_secs(10));
    reap(qemu[0]);
    assert!(qemu_gone, "QEMU {} outlived the recorder", qemu[0]);
    // QEMU's RAM files and QMP socket are unlinked once it is up.
    assert_eq!(runtime_files(pid), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn a_second_signal_exits_at_once_and_still_kills_qemu() {
    let mut rec = start();
    let pid = rec.pid();
    let qemu = qemu_children(pid);
    assert_eq!(qemu.len(), 1, "one QEMU runs the guest: {qemu:?}");
    // Two different signals: a second pending SIGTERM would merge with the first.
    signal(pid, libc::SIGTERM);
    signal(pid, libc::SIGHUP);
    let code = rec.exit_within(Duration::from_secs(10));
    let qemu_gone = gone_within(qemu[0], Duration::from_secs(10));
    reap(qemu[0]);
    let log = rec.seen.join("\n");
    // The kernel delivers the lower-numbered pending signal first.
    assert!(
        [128 + libc::SIGTERM, 128 + libc::SIGHUP]
            .map(Some)
            .contains(&code),
        "exit {code:?}:\n{log}"
    );
    assert!(log.contains("exiting without closing the trace"), "{log}");
    assert!(qemu_gone, "QEMU {} outlived the recorder:\n{log}", qemu[0]);
    assert_eq!(runtime_files(pid), Vec::<PathBuf>::new(), "{log}");
}
