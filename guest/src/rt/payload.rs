//! Payloads: programs packed at `/payloads/<name>` that ops start, wait for
//! and kill.
//!
//! A payload is forked, made its own process group, placed in its cgroup and
//! given pipes for stdout and stderr before it execs, so it starts where it
//! belongs. The executor reads the pipes without blocking (polling them while
//! it idles) and records each line as `Console` (`PayloadStdout`/`Stderr`,
//! prefixed `<name>: `). Exits are recorded as executor console lines; wait
//! and kill ops return the raw wait(2) status. Killing hits the whole group.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{Signal, WaitOptions};
use trace_format::record::{ConsoleLine, ConsoleSource, Record, StepRef};
use trace_format::scenario::PayloadSpec;

use super::sys::{cstr, pid_of, pointers};
use super::transport::Transport;
use super::{cgroupfs, sys};
use crate::errno;
use crate::lines::LineBuf;
use crate::payload_pick::{self, place};

/// Where payload binaries are packed.
pub const DIR: &str = "/payloads";
const ENV: [&str; 3] = [
    "PATH=/payloads:/usr/local/bin:/usr/bin:/bin",
    "HOME=/",
    "TMPDIR=/tmp",
];

/// Start-up stages a payload child reports on failure.
const STAGE_PGID: u32 = 1;
const STAGE_CGROUP: u32 = 2;
const STAGE_STDIO: u32 = 3;
const STAGE_EXEC: u32 = 4;

/// One output pipe of a payload.
#[derive(Debug)]
struct Stream {
    fd: Option<OwnedFd>,
    lines: LineBuf,
    source: ConsoleSource,
}

/// One started payload.
#[derive(Debug)]
pub struct Payload {
    pub name: String,
    /// Its cgroup (followed across moves); `None`: the runner's cgroup.
    pub cgroup: Option<String>,
    pub owner: StepRef,
    pub pid: u32,
    /// Raw wait(2) status, set once it exited and was reaped.
    pub status: Option<i32>,
    /// Waited for or killed by an op; no longer found by name.
    pub claimed: bool,
    streams: [Stream; 2],
}

/// Every payload with a live process or an open output pipe.
#[derive(Debug, Default)]
pub struct Payloads {
    pub list: Vec<Payload>,
}

impl Payloads {
    /// Starts `spec` with `extra` arguments in `cgroup`; returns its PID.
    pub fn spawn(
        &mut self,
        spec: &PayloadSpec,
        extra: &[String],
        cgroup: Option<&str>,
        owner: StepRef,
    ) -> Result<u32, String> {
        let name = &spec.name;
        if let Some(i) = payload_pick::running_in(&self.copies(), name, cgroup) {
            let p = &self.list[i];
            return Err(format!(
                "payload {name:?} is already running in {} (pid {}, started by {}); kill or wait for it first, or start the copy in another cgroup",
                place(cgroup),
                p.pid,
                p.owner
            ));
        }
        let path = format!("{DIR}/{name}");
        let args: Vec<Vec<u8>> = core::iter::once(name.as_str())
            .chain(spec.args.iter().map(String::as_str))
            .chain(extra.iter().map(String::as_str))
            .map(cstr)
            .collect();
        let env: Vec<Vec<u8>> = ENV.iter().map(|e| cstr(e)).collect();
        let (c_path, argv, envp) = (cstr(&path), pointers(&args), pointers(&env));
        let io_err = |what: &str, e: Errno| {
            format!(
                "payload {name:?}: {what} failed: {}",
                errno::describe(e.raw_os_error())
            )
        };
        let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC);
        let (out_r, out_w) = pipe().map_err(|e| io_err("pipe", e))?;
        let (err_r, err_w) = pipe().map_err(|e| io_err("pipe", e))?;
        let (st_r, st_w) = pipe().map_err(|e| io_err("pipe", e))?;
        let null = rustix::fs::openat(
            rustix::fs::CWD,
            "/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| io_err("opening /dev/null", e))?;
        let pid = match sys::fork() {
            Ok(None) => child(
                cgroup,
                [&null, &out_w, &err_w],
                &st_w,
                &c_path,
                &argv,
                &envp,
            ),
            Ok(Some(pid)) => pid,
            Err(e) => return Err(io_err("fork", e)),
        };
        drop((out_w, err_w, st_w, null));
        let mut report = [0u8; 8];
        let got = read_full(&st_r, &mut report);
        if got == report.len() {
            let stage = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
            let err = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
            if let Some(p) = pid_of(pid) {
                let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
            }
            let what = match stage {
                STAGE_PGID => "setpgid".to_string(),
                STAGE_CGROUP => format!("joining {}", place(cgroup)),
                STAGE_STDIO => "redirecting stdio".to_string(),
                _ => format!("execve {path}"),
            };
            return Err(format!(
                "payload {name:?}: {what} failed: {}",
                errno::describe(err)
            ));
        }
        for fd in [&out_r, &err_r] {
            let _ = rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK);
        }
        let stream = |fd, source| Stream {
            fd: Some(fd),
            lines: LineBuf::default(),
            source,
        };
        self.list.push(Payload {
            name: name.clone(),
            cgroup: cgroup.map(String::from),
            owner,
            pid,
            status: None,
            claimed: false,
            streams: [
                stream(out_r, ConsoleSource::PayloadStdout),
                stream(err_r, ConsoleSource::PayloadStderr),
            ],
        });
        Ok(pid)
    }

    /// The one unclaimed payload `name` (in `cgroup` when given; `""` is the
    /// runner's cgroup), running or exited but not yet waited for.
    pub fn find(&self, name: &str, cgroup: Option<&str>) -> Result<usize, String> {
        payload_pick::find(&self.copies(), name, cgroup)
    }

    fn copies(&self) -> Vec<payload_pick::Copy<'_>> {
        self.list
            .iter()
            .map(|p| payload_pick::Copy {
                name: &p.name,
                cgroup: p.cgroup.as_deref(),
                claimed: p.claimed,
                running: p.status.is_none(),
            })
            .collect()
    }

    /// Records a reaped payload's exit; false when `pid` is no payload.
    pub fn on_exit(&mut self, pid: u32, status: i32, tx: &mut Transport) -> bool {
        let Some(p) = self
            .list
            .iter_mut()
            .find(|p| p.pid == pid && p.status.is_none())
        else {
            return false;
        };
        p.status = Some(status);
        p.drain(tx);
        tx.console(format!(
            "payload {:?} (pid {pid}) {}",
            p.name,
            errno::describe_wait(status)
        ));
        true
    }

    /// SIGKILLs payload `i`'s process group (when still running), reaps it and
    /// returns its status.
    pub fn kill(&mut self, i: usize, tx: &mut Transport) -> i32 {
        let p = &mut self.list[i];
        if let Some(status) = p.status {
            return status;
        }
        if let Some(pid) = pid_of(p.pid) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            if let Ok(Some((_, status))) = rustix::process::waitpid(Some(pid), WaitOptions::empty())
            {
                self.on_exit(self.list[i].pid, status.as_raw(), tx);
            }
        }
        // A status is always set here unless waitpid failed; treat that as SIGKILL.
        let p = &mut self.list[i];
        *p.status.get_or_insert(9)
    }

    /// Kills every matching payload still running and closes its pipes (after
    /// a last read); removes them from the list.
    pub fn kill_where(&mut self, pred: impl Fn(&Payload) -> bool, tx: &mut Transport) {
        let mut i = 0;
        while i < self.list.len() {
            if pred(&self.list[i]) {
                self.kill(i, tx);
                let mut p = self.list.remove(i);
                p.finish(tx);
            } else {
                i += 1;
            }
        }
    }

    /// Reads whatever output is waiting; forgets claimed payloads whose pipes closed.
    pub fn drain(&mut self, tx: &mut Transport) {
        for p in &mut self.list {
            p.drain(tx);
        }
        self.list.retain(|p| {
            !(p.claimed && p.status.is_some() && p.streams.iter().all(|s| s.fd.is_none()))
        });
    }

    /// Waits up to `ns` for output on any payload pipe (or just sleeps).
    pub fn idle(&self, ns: u64) {
        use rustix::event::{PollFd, PollFlags, poll};
        let fds: Vec<&OwnedFd> = self
            .list
            .iter()
            .flat_map(|p| p.streams.iter().filter_map(|s| s.fd.as_ref()))
            .collect();
        if fds.is_empty() {
            return sys::sleep_ns(ns);
        }
        let mut polls: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::IN))
            .collect();
        let ts = rustix::time::Timespec {
            tv_sec: i64::try_from(ns / 1_000_000_000).unwrap_or(0),
            tv_nsec: i64::try_from(ns % 1_000_000_000).unwrap_or(0),
        };
        let _ = poll(&mut polls, Some(&ts));
    }
}

impl Payload {
    /// Reads each pipe until it would block; records complete lines.
    fn drain(&mut self, tx: &mut Transport) {
        let mut chunk = [0u8; 4096];
        for s in &mut self.streams {
            while let Some(fd) = &s.fd {
                let eof = match rustix::io::read(fd, &mut chunk) {
                    Ok(0) => true,
                    Ok(n) => {
                        s.lines
                            .push(&chunk[..n], |l| emit(tx, s.source, &self.name, l));
                        false
                    }
                    Err(Errno::INTR) => false,
                    Err(Errno::AGAIN) => break,
                    Err(_) => true,
                };
                if eof {
                    s.lines.flush(|l| emit(tx, s.source, &self.name, l));
                    s.fd = None;
                }
            }
        }
    }

    /// Last read (waiting up to 100 ms for the pipes to close), then closes them.
    fn finish(&mut self, tx: &mut Transport) {
        let deadline = sys::now_ns() + 100_000_000;
        loop {
            self.drain(tx);
            if self.streams.iter().all(|s| s.fd.is_none()) || sys::now_ns() >= deadline {
                break;
            }
            sys::sleep_ns(2_000_000);
        }
        for s in &mut self.streams {
            s.lines.flush(|l| emit(tx, s.source, &self.name, l));
            s.fd = None;
        }
    }
}

fn emit(tx: &mut Transport, source: ConsoleSource, name: &str, line: &[u8]) {
    tx.record(&Record::Console(ConsoleLine {
        source,
        line: format!("{name}: {}", String::from_utf8_lossy(line)),
    }));
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(_) => break,
        }
    }
    got
}

/// The forked payload: own group, cgroup, stdio, exec. Reports a failed stage
/// through `status` (closed on a successful exec) and exits 127.
fn child(
    cgroup: Option<&str>,
    stdio: [&OwnedFd; 3],
    status: &OwnedFd,
    path: &[u8],
    argv: &[*const u8],
    envp: &[*const u8],
) -> ! {
    let fail = |stage: u32, e: i32| -> ! {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&stage.to_ne_bytes());
        msg[4..].copy_from_slice(&e.to_ne_bytes());
        let _ = rustix::io::write(status, &msg);
        sys::exit(127)
    };
    if let Err(e) = rustix::process::setpgid(None, None) {
        fail(STAGE_PGID, e.raw_os_error());
    }
    if let Some(cg) = cgroup {
        let me = format!("{}", rustix::process::getpid().as_raw_nonzero());
        if let Err(e) = sys::write_file(&cgroupfs::path(cg, "cgroup.procs"), me.as_bytes()) {
            fail(STAGE_CGROUP, e.raw_os_error());
        }
    }
    let dups = [
        rustix::stdio::dup2_stdin(stdio[0].as_fd()),
        rustix::stdio::dup2_stdout(stdio[1].as_fd()),
        rustix::stdio::dup2_stderr(stdio[2].as_fd()),
    ];
    if let Some(Err(e)) = dups.into_iter().find(Result::is_err) {
        fail(STAGE_STDIO, e.raw_os_error());
    }
    let e = sys::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(STAGE_EXEC, e.raw_os_error())
}
