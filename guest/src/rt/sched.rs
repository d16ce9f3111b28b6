//! sched_ext schedulers: start, watch and stop them; pin their BPF maps.
//!
//! A scheduler is a program packed at `/schedulers/boot/<name>` (the
//! scenario's own) or `/schedulers/staged/<name>`. It is forked with stdout
//! and stderr going to files under `/tmp/schedtape` (never blocking it), and
//! counts as attached once `/sys/kernel/sched_ext/state` reads `enabled` with
//! a new `enable_seq`. Its output is read as [`crate::schedlog`] describes.
//! Stopping sends SIGINT (SIGKILL after 5 s) and waits for `disabled`.
//! [`watch`] notices a scheduler that died or that the kernel ejected, records
//! why (its own `exit` line, else the kernel log), and ends the hold.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use rustix::fd::{AsFd, FromRawFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::process::{Signal, WaitOptions};
use trace_format::record::{
    ConsoleLine, ConsoleSource, OpOutcome, Record, SchedulerEvent, SchedulerEventKind,
};
use trace_format::scenario::{Scenario, SchedulerSpec, StagedScheduler};

use super::executor::Executor;
use super::sys;
use super::sys::{cstr, pid_of, pointers};
use super::transport::Transport;
use crate::errno;
use crate::lines::LineBuf;
use crate::schedlog::{Kmsg, Line, Parser, kind_of_reason, kmsg_text, parse_kmsg};

const STATE: &str = "/sys/kernel/sched_ext/state";
const ROOT_OPS: &str = "/sys/kernel/sched_ext/root/ops";
const ENABLE_SEQ: &str = "/sys/kernel/sched_ext/enable_seq";
const LOG_DIR: &str = "/tmp/schedtape";
const ENV: [&str; 3] = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "TMPDIR=/tmp"];

const MS: u64 = 1_000_000;
/// How long a scheduler may take from exec to `enabled`.
const ATTACH_TIMEOUT_NS: u64 = 20_000 * MS;
/// How long a scheduler may take to exit after SIGINT.
const STOP_GRACE_NS: u64 = 5_000 * MS;
/// How long sched_ext may take to reach `disabled`.
const DISABLE_TIMEOUT_NS: u64 = 10_000 * MS;
/// After an ejection, how long the scheduler gets to report and exit.
const GONE_GRACE_NS: u64 = 2_000 * MS;
const POLL_NS: u64 = 5 * MS;

/// Where xtask packs the scenario's scheduler (`name` as the scenario gives it).
pub fn boot_path(name: &str) -> String {
    format!("/schedulers/boot/{}", basename(name))
}

/// Where xtask packs the staged scheduler `name`.
pub fn staged_path(name: &str) -> String {
    format!("/schedulers/staged/{name}")
}

fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Why a scheduler op failed.
#[derive(Debug)]
pub enum SchedError {
    /// No `[[staged_schedulers]]` entry of that name.
    NotStaged(String),
    /// The op needs a running scheduler and there is none.
    NoneAttached,
    /// Attach needs sched_ext idle, and it is not.
    Busy { what: String },
    /// The kernel has no sched_ext.
    NoSchedExt,
    /// Setting up or forking the process failed.
    Spawn {
        name: String,
        what: String,
        errno: i32,
    },
    /// The process exited before sched_ext enabled it.
    StartupDied {
        name: String,
        how: String,
        output: String,
    },
    /// The process ran, but sched_ext never enabled it.
    NotAttached { name: String, state: String },
    /// sched_ext stayed enabled after the scheduler stopped.
    StuckEnabled { name: String, state: String },
    /// The host asked to stop while the op waited.
    Stopped,
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::NotStaged(n) => write!(f, "no staged scheduler {n:?}"),
            SchedError::NoneAttached => f.write_str("no scheduler is attached (EEVDF runs)"),
            SchedError::Busy { what } => {
                write!(f, "{what}; detach it first or use replace_scheduler")
            }
            SchedError::NoSchedExt => {
                write!(f, "this kernel has no sched_ext ({STATE} is missing)")
            }
            SchedError::Spawn { name, what, errno } => write!(
                f,
                "scheduler {name:?}: {what} failed: {}",
                errno::describe(*errno)
            ),
            SchedError::StartupDied { name, how, output } => {
                write!(
                    f,
                    "scheduler {name:?} died on start-up ({how}) before sched_ext enabled it"
                )?;
                if !output.is_empty() {
                    write!(f, "; last output: {output}")?;
                }
                Ok(())
            }
            SchedError::NotAttached { name, state } => write!(
                f,
                "scheduler {name:?} did not attach within {} s (sched_ext state {state:?})",
                ATTACH_TIMEOUT_NS / 1_000_000_000
            ),
            SchedError::StuckEnabled { name, state } => write!(
                f,
                "sched_ext still reads {state:?} {} s after scheduler {name:?} stopped",
                DISABLE_TIMEOUT_NS / 1_000_000_000
            ),
            SchedError::Stopped => f.write_str("the host asked to stop"),
        }
    }
}

/// A scheduler program with its arguments.
#[derive(Debug, Clone)]
struct Launch {
    name: String,
    path: String,
    args: Vec<String>,
}

/// One output file of a running scheduler, read from `offset` on.
#[derive(Debug)]
struct Stream {
    fd: OwnedFd,
    offset: u64,
    lines: LineBuf,
    parser: Parser,
    source: ConsoleSource,
    /// The last few text lines, for start-up errors.
    tail: Vec<String>,
}

#[derive(Debug)]
struct Running {
    launch: Launch,
    pid: u32,
    /// Raw wait(2) status once reaped; `Some(-1)` when reaped elsewhere.
    status: Option<i32>,
    streams: [Stream; 2],
    /// `(kind, reason)` from the scheduler's own `exit` line.
    exit: Option<(String, String)>,
}

/// The scheduler state of a run.
#[derive(Debug, Default)]
pub struct Scheds {
    boot: Option<Launch>,
    staged: Vec<StagedScheduler>,
    current: Option<Running>,
    kmsg: Option<OwnedFd>,
    pins: Vec<(String, u32, OwnedFd)>,
    started: u32,
}

impl Scheds {
    pub fn new(sc: &Scenario) -> Scheds {
        let boot = match &sc.scheduler {
            SchedulerSpec::Eevdf => None,
            SchedulerSpec::Named { name, args } => Some(Launch {
                name: basename(name).to_string(),
                path: boot_path(name),
                args: args.clone(),
            }),
        };
        Scheds {
            boot,
            staged: sc.staged_schedulers.clone(),
            ..Scheds::default()
        }
    }

    /// Records a child's exit when it is the scheduler's (the executor's reaper
    /// calls this); returns whether it was.
    pub fn on_exit(&mut self, pid: u32, status: i32) -> bool {
        match &mut self.current {
            Some(r) if r.pid == pid && r.status.is_none() => {
                r.status = Some(status);
                true
            }
            _ => false,
        }
    }

    fn staged(&self, name: &str) -> Result<Launch, SchedError> {
        let s = self
            .staged
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SchedError::NotStaged(name.to_string()))?;
        Ok(Launch {
            name: s.name.clone(),
            path: staged_path(&s.name),
            args: s.args.clone(),
        })
    }
}

/// Starts the scenario's own scheduler, if it names one.
pub fn start_boot(ex: &mut Executor<'_>) -> Result<(), String> {
    match ex.sched.boot.clone() {
        Some(l) => start(ex, l).map(drop).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// `attach_scheduler`: starts staged `name` (none may run); gives its PID.
pub fn attach(ex: &mut Executor<'_>, name: &str) -> Result<OpOutcome, String> {
    started((|| {
        let launch = ex.sched.staged(name)?;
        if let Some(r) = &ex.sched.current {
            return Err(SchedError::Busy {
                what: format!("scheduler {:?} is attached", r.launch.name),
            });
        }
        start(ex, launch)
    })())
}

/// `detach_scheduler`: stops the running scheduler; nothing under EEVDF.
pub fn detach(ex: &mut Executor<'_>) -> Result<OpOutcome, String> {
    stop(ex)
        .map(|()| OpOutcome::Done)
        .map_err(|e| e.to_string())
}

/// `restart_scheduler`: stops the running scheduler and starts it again.
pub fn restart(ex: &mut Executor<'_>) -> Result<OpOutcome, String> {
    started((|| {
        let launch = match &ex.sched.current {
            Some(r) => r.launch.clone(),
            None => return Err(SchedError::NoneAttached),
        };
        stop(ex)?;
        start(ex, launch)
    })())
}

/// `replace_scheduler`: stops the running scheduler (if any), starts staged `name`.
pub fn replace(ex: &mut Executor<'_>, name: &str) -> Result<OpOutcome, String> {
    started((|| {
        let launch = ex.sched.staged(name)?;
        stop(ex)?;
        start(ex, launch)
    })())
}

/// An op that started a scheduler reports its PID.
fn started(r: Result<u32, SchedError>) -> Result<OpOutcome, String> {
    r.map(|pid| OpOutcome::Pids(vec![pid]))
        .map_err(|e| e.to_string())
}

/// Stops the scheduler at the end of the run, noting any failure.
pub fn shutdown(ex: &mut Executor<'_>) {
    if let Err(e) = stop(ex) {
        ex.tx
            .console(format!("stopping the scheduler at the end: {e}"));
    }
}

fn event(tx: &mut Transport, scheduler: &str, event: SchedulerEventKind) {
    tx.record(&Record::SchedulerEvent(SchedulerEvent {
        scheduler: scheduler.to_string(),
        event,
    }));
}

fn secs(ns: u64) -> String {
    format!("{}.{:03} s", ns / 1_000_000_000, ns % 1_000_000_000 / MS)
}

/// sched_ext's state (`enabled`, `disabled`, …); `None` without sched_ext.
fn state() -> Option<String> {
    let mut buf = [0u8; 32];
    let n = sys::read_into(STATE, &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

fn read_trimmed(path: &str) -> String {
    let mut buf = [0u8; 160];
    let n = sys::read_into(path, &mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// Waits until sched_ext reads `disabled`; returns the last state otherwise.
fn wait_disabled(timeout_ns: u64) -> Result<(), String> {
    let deadline = sys::now_ns() + timeout_ns;
    loop {
        match state() {
            None => return Ok(()),
            Some(s) if s == "disabled" => return Ok(()),
            Some(s) if sys::now_ns() >= deadline => return Err(s),
            Some(_) => sys::sleep_ns(POLL_NS),
        }
    }
}

/// Forks and execs `l`, then waits until sched_ext runs it; returns its PID.
fn start(ex: &mut Executor<'_>, l: Launch) -> Result<u32, SchedError> {
    match state() {
        None => return Err(SchedError::NoSchedExt),
        Some(s) if s == "disabled" => {}
        Some(_) => {
            if let Err(s) = wait_disabled(DISABLE_TIMEOUT_NS) {
                return Err(SchedError::Busy {
                    what: format!("sched_ext is {s:?} (another scheduler runs)"),
                });
            }
        }
    }
    open_kmsg(&mut ex.sched);
    kernel_messages(&mut ex.sched); // only messages from now on matter
    let seq0 = read_trimmed(ENABLE_SEQ).parse::<u64>().unwrap_or(0);
    ex.sched.started += 1;
    let mut run = spawn(&l, ex.sched.started)?;
    let t0 = sys::now_ns();
    loop {
        drain(&mut run, ex.tx);
        if !alive(&mut run) {
            finish(&mut run, ex.tx);
            let how = run.status.filter(|&s| s >= 0).map_or_else(
                || "exited".to_string(),
                |s| errno::describe_wait(s).to_string(),
            );
            let output = run.streams.iter().flat_map(|s| s.tail.iter()).cloned();
            // Ejected while attaching (an error in ops.init, say) is the
            // scheduler failing, not merely failing to start: keep that kind.
            let (kind, reason) = match exit_reason(&mut ex.sched, &run) {
                (kind, reason) if kind.starts_with("error") => (kind, reason),
                _ => ("startup".to_string(), format!("died on start-up ({how})")),
            };
            let exited = SchedulerEventKind::Exited { kind, reason };
            event(ex.tx, &l.name, exited);
            return Err(SchedError::StartupDied {
                name: l.name,
                how,
                output: output.collect::<Vec<_>>().join(" | "),
            });
        }
        let st = state().unwrap_or_default();
        if st == "enabled" && read_trimmed(ENABLE_SEQ).parse::<u64>().unwrap_or(0) > seq0 {
            break;
        }
        if sys::now_ns() - t0 > ATTACH_TIMEOUT_NS || ex.tx.poll().is_some() {
            kill(&mut run);
            finish(&mut run, ex.tx);
            let _ = wait_disabled(DISABLE_TIMEOUT_NS);
            if ex.tx.poll().is_some() {
                return Err(SchedError::Stopped);
            }
            let exited = SchedulerEventKind::Exited {
                kind: "startup".into(),
                reason: format!("not attached after {}; killed", secs(ATTACH_TIMEOUT_NS)),
            };
            event(ex.tx, &l.name, exited);
            return Err(SchedError::NotAttached {
                name: l.name,
                state: st,
            });
        }
        sys::sleep_ns(POLL_NS);
    }
    let took = sys::now_ns() - t0;
    let pid = run.pid;
    event(ex.tx, &l.name, SchedulerEventKind::Attached);
    ex.tx.console(format!(
        "scheduler {:?} (pid {pid}) attached as sched_ext ops {:?} {} after exec",
        l.name,
        read_trimmed(ROOT_OPS),
        secs(took)
    ));
    ex.sched.current = Some(run);
    Ok(pid)
}

fn spawn(l: &Launch, n: u32) -> Result<Running, SchedError> {
    let fail = |what: &str, e: Errno| SchedError::Spawn {
        name: l.name.clone(),
        what: what.to_string(),
        errno: e.raw_os_error(),
    };
    let _ = sys::mkdir(LOG_DIR);
    let open = |suffix: &str| {
        let path = format!("{LOG_DIR}/{n}-{}.{suffix}", l.name);
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::APPEND | OFlags::CLOEXEC;
        rustix::fs::openat(CWD, &path, flags, Mode::from_raw_mode(0o644))
            .map_err(|e| fail(&format!("creating {path}"), e))
    };
    let (out, err) = (open("out")?, open("err")?);
    let null = rustix::fs::openat(
        CWD,
        "/dev/null",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("opening /dev/null", e))?;
    let args: Vec<Vec<u8>> = core::iter::once(l.name.as_str())
        .chain(l.args.iter().map(String::as_str))
        .map(cstr)
        .collect();
    let env: Vec<Vec<u8>> = ENV.iter().map(|e| cstr(e)).collect();
    let (path, argv, envp) = (cstr(&l.path), pointers(&args), pointers(&env));
    let pid = match sys::fork() {
        Ok(None) => child([&null, &out, &err], &path, &argv, &envp, &l.path),
        Ok(Some(pid)) => pid,
        Err(e) => return Err(fail("fork", e)),
    };
    let stream = |fd, source| Stream {
        fd,
        offset: 0,
        lines: LineBuf::default(),
        parser: Parser::default(),
        source,
        tail: Vec::new(),
    };
    Ok(Running {
        launch: l.clone(),
        pid,
        status: None,
        streams: [
            stream(out, ConsoleSource::PayloadStdout),
            stream(err, ConsoleSource::PayloadStderr),
        ],
        exit: None,
    })
}

/// The forked scheduler: stdio to the log files, then exec. On failure it
/// says why on stderr and exits 127.
fn child(
    stdio: [&OwnedFd; 3],
    path: &[u8],
    argv: &[*const u8],
    envp: &[*const u8],
    shown: &str,
) -> ! {
    let dups = [
        rustix::stdio::dup2_stdin(stdio[0].as_fd()),
        rustix::stdio::dup2_stdout(stdio[1].as_fd()),
        rustix::stdio::dup2_stderr(stdio[2].as_fd()),
    ];
    if dups.iter().any(Result::is_err) {
        sys::exit(127)
    }
    let e = sys::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    let msg = format!(
        "schedtape: cannot exec {shown}: {}\n",
        errno::describe(e.raw_os_error())
    );
    let _ = rustix::io::write(stdio[2], msg.as_bytes());
    sys::exit(127)
}

/// Whether the process still runs (reaps it when it exited).
fn alive(run: &mut Running) -> bool {
    if run.status.is_some() {
        return false;
    }
    let Some(pid) = pid_of(run.pid) else {
        return false;
    };
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(None) => true,
        Ok(Some((_, st))) => {
            run.status = Some(st.as_raw());
            false
        }
        // Reaped by someone else: gone, status unknown.
        Err(_) => {
            run.status = Some(-1);
            false
        }
    }
}

/// SIGKILLs and reaps the process if it still runs.
fn kill(run: &mut Running) {
    if alive(run)
        && let Some(pid) = pid_of(run.pid)
    {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        run.status = Some(
            match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
                Ok(Some((_, st))) => st.as_raw(),
                _ => -1,
            },
        );
    }
}

/// Reads new output and records it: counters and dump lines as scheduler
/// events, other lines as console lines `<name>: <line>`.
fn drain(run: &mut Running, tx: &mut Transport) {
    for i in 0..run.streams.len() {
        let mut lines = Vec::new();
        let s = &mut run.streams[i];
        let mut buf = [0u8; 4096];
        while let Ok(n) = rustix::io::pread(&s.fd, &mut buf, s.offset) {
            if n == 0 {
                break;
            }
            s.offset += n as u64;
            s.lines.push(&buf[..n], |l| {
                lines.push(String::from_utf8_lossy(l).into_owned())
            });
        }
        record_lines(run, i, lines, tx);
    }
}

/// Drains the output one last time, including unterminated last lines.
fn finish(run: &mut Running, tx: &mut Transport) {
    drain(run, tx);
    for i in 0..run.streams.len() {
        let mut lines = Vec::new();
        run.streams[i]
            .lines
            .flush(|l| lines.push(String::from_utf8_lossy(l).into_owned()));
        record_lines(run, i, lines, tx);
    }
}

fn record_lines(run: &mut Running, i: usize, lines: Vec<String>, tx: &mut Transport) {
    let name = &run.launch.name;
    for line in lines {
        let s = &mut run.streams[i];
        match s.parser.line(&line) {
            Line::Counters(c) => event(tx, name, SchedulerEventKind::Counters(c)),
            Line::Dump(d) => event(tx, name, SchedulerEventKind::DumpLine(d)),
            Line::Exit { kind, reason } => run.exit = Some((kind, reason)),
            Line::Text(t) => {
                if s.tail.len() == 3 {
                    s.tail.remove(0);
                }
                s.tail.push(t.clone());
                tx.record(&Record::Console(ConsoleLine {
                    source: s.source,
                    line: format!("{name}: {t}"),
                }));
            }
        }
    }
}

/// Stops the running scheduler (SIGINT, then SIGKILL) and waits for
/// sched_ext to disable it. Nothing to do under EEVDF.
fn stop(ex: &mut Executor<'_>) -> Result<(), SchedError> {
    let Some(mut run) = ex.sched.current.take() else {
        return Ok(());
    };
    let t0 = sys::now_ns();
    if alive(&mut run)
        && let Some(pid) = pid_of(run.pid)
    {
        let _ = rustix::process::kill_process(pid, Signal::INT);
        while alive(&mut run) && sys::now_ns() - t0 < STOP_GRACE_NS {
            drain(&mut run, ex.tx);
            sys::sleep_ns(POLL_NS);
        }
    }
    let forced = alive(&mut run);
    kill(&mut run);
    finish(&mut run, ex.tx);
    let name = run.launch.name.clone();
    if let Err(state) = wait_disabled(DISABLE_TIMEOUT_NS) {
        return Err(SchedError::StuckEnabled { name, state });
    }
    let took = sys::now_ns() - t0;
    event(ex.tx, &name, SchedulerEventKind::Detached);
    let how = match run.status {
        Some(s) if s >= 0 => errno::describe_wait(s).to_string(),
        _ => "exited".to_string(),
    };
    let forced = if forced { " after SIGKILL" } else { "" };
    ex.tx.console(format!(
        "scheduler {name:?} detached{forced} in {} (process {how})",
        secs(took)
    ));
    Ok(())
}

/// Called between the executor's other work: records the scheduler's output,
/// and when it died or sched_ext dropped it, why; then returns the reason
/// the run's current phase must end.
pub fn watch(ex: &mut Executor<'_>) -> Option<String> {
    let run = ex.sched.current.as_mut()?;
    drain(run, ex.tx);
    let mut running = alive(run);
    if running && state().as_deref() == Some("enabled") {
        return None;
    }
    let mut run = ex.sched.current.take()?;
    let deadline = sys::now_ns() + GONE_GRACE_NS;
    while running && sys::now_ns() < deadline {
        drain(&mut run, ex.tx);
        sys::sleep_ns(10 * MS);
        running = alive(&mut run);
    }
    kill(&mut run);
    finish(&mut run, ex.tx);
    let _ = wait_disabled(DISABLE_TIMEOUT_NS);
    let (kind, mut reason) = exit_reason(&mut ex.sched, &run);
    if let Some(s) = run.status.filter(|&s| s >= 0) {
        reason = format!("{reason} (process {})", errno::describe_wait(s));
    }
    let name = run.launch.name.clone();
    event(
        ex.tx,
        &name,
        SchedulerEventKind::Exited {
            kind: kind.clone(),
            reason: reason.clone(),
        },
    );
    Some(format!("scheduler {name:?} exited ({kind}): {reason}"))
}

/// Why the scheduler ended: its own `exit` line, else the kernel log, else
/// what happened to its process.
fn exit_reason(s: &mut Scheds, run: &Running) -> (String, String) {
    let mut disabled = None;
    let mut details = Vec::new();
    for m in kernel_messages(s) {
        match m {
            Kmsg::Disabled { reason, .. } => disabled = Some(reason),
            Kmsg::Other(text) if disabled.is_some() => details.push(text),
            _ => {}
        }
    }
    if let Some(e) = &run.exit {
        return e.clone();
    }
    if let Some(reason) = disabled {
        let kind = kind_of_reason(&reason).to_string();
        let mut text = reason;
        for d in details {
            // `OPS: message` after an error exit.
            text.push_str(": ");
            text.push_str(d.split_once(": ").map_or(d.as_str(), |(_, m)| m));
        }
        return (kind, text);
    }
    ("died".into(), "the scheduler process ended".into())
}

fn open_kmsg(s: &mut Scheds) {
    if s.kmsg.is_some() {
        return;
    }
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if let Ok(fd) = rustix::fs::openat(CWD, "/dev/kmsg", flags, Mode::empty()) {
        let _ = rustix::fs::seek(&fd, SeekFrom::End(0));
        s.kmsg = Some(fd);
    }
}

/// The sched_ext messages logged since the last call.
fn kernel_messages(s: &mut Scheds) -> Vec<Kmsg> {
    let mut out = Vec::new();
    let Some(fd) = &s.kmsg else {
        return out;
    };
    let mut buf = [0u8; 8192];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(Errno::AGAIN) => break,
            Ok(n) => {
                if let Some(m) = kmsg_text(&buf[..n]).as_deref().and_then(parse_kmsg) {
                    out.push(m);
                }
            }
            // EPIPE: records were overwritten; the next read resumes.
            Err(Errno::PIPE | Errno::INTR) => {}
            Err(_) => break,
        }
    }
    out
}

// --- BPF map pinning -------------------------------------------------------

const SYS_BPF: usize = 321;
const BPF_MAP_GET_NEXT_ID: usize = 12;
const BPF_MAP_GET_FD_BY_ID: usize = 14;
const BPF_OBJ_GET_INFO_BY_FD: usize = 15;
/// Kernel map names keep 15 bytes.
const BPF_NAME_MAX: usize = 15;

/// `bpf(cmd, attr, sizeof attr)`; `attr` is a zeroed `union bpf_attr` prefix.
fn bpf(cmd: usize, attr: &mut [u32; 16]) -> Result<u32, Errno> {
    let raw: isize;
    // SAFETY: `attr` is a live, writable 64-byte buffer and we pass its size;
    // the commands used here only read it and write into it.
    unsafe {
        asm!("syscall",
            inlateout("rax") SYS_BPF as isize => raw,
            in("rdi") cmd, in("rsi") attr.as_mut_ptr(), in("rdx") 64usize,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    if (-4095..0).contains(&raw) {
        Err(Errno::from_raw_os_error(i32::try_from(-raw).unwrap_or(22)))
    } else {
        Ok(u32::try_from(raw).unwrap_or(0))
    }
}

/// `(id, name)` of the map behind `fd`.
fn map_info(fd: &OwnedFd) -> Result<(u32, String), Errno> {
    use rustix::fd::AsRawFd;
    // struct bpf_map_info up to and including `name[16]` (40 bytes).
    let mut info = [0u32; 10];
    let mut attr = [0u32; 16];
    attr[0] = u32::try_from(fd.as_raw_fd()).unwrap_or(0);
    attr[1] = 40;
    let ptr = info.as_mut_ptr() as u64;
    attr[2] = u32::try_from(ptr & 0xffff_ffff).unwrap_or(0);
    attr[3] = u32::try_from(ptr >> 32).unwrap_or(0);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let name: Vec<u8> = info[6..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok((info[1], String::from_utf8_lossy(&name[..end]).into_owned()))
}

/// `pin_bpf_map`: holds an fd of the newest loaded BPF map called `name` for
/// the rest of the run, so the map outlives its scheduler. Re-pinning a name
/// is a no-op. Returns the map's id.
pub fn pin_map(ex: &mut Executor<'_>, name: &str) -> Result<u64, String> {
    if let Some((_, id, _)) = ex.sched.pins.iter().find(|p| p.0 == name) {
        return Ok(u64::from(*id));
    }
    let want = &name.as_bytes()[..name.len().min(BPF_NAME_MAX)];
    let mut best: Option<(u32, OwnedFd)> = None;
    let mut seen = Vec::new();
    let mut id = 0u32;
    loop {
        let mut attr = [0u32; 16];
        attr[0] = id;
        match bpf(BPF_MAP_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr[1],
            Err(Errno::NOENT) => break,
            Err(e) => {
                return Err(format!(
                    "listing BPF maps: {}",
                    errno::describe(e.raw_os_error())
                ));
            }
        }
        let mut attr = [0u32; 16];
        attr[0] = id;
        let Ok(raw) = bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) else {
            continue; // freed meanwhile
        };
        // SAFETY: the kernel just returned this new fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(raw).unwrap_or(-1)) };
        let Ok((map_id, map_name)) = map_info(&fd) else {
            continue;
        };
        if map_name.as_bytes() == want {
            best = Some((map_id, fd));
        } else if seen.len() < 16 {
            seen.push(map_name);
        }
    }
    let Some((map_id, fd)) = best else {
        let known = if seen.is_empty() {
            "none are loaded".to_string()
        } else {
            format!("loaded: {}", seen.join(", "))
        };
        return Err(format!("no BPF map named {name:?} ({known})"));
    };
    ex.sched.pins.push((name.to_string(), map_id, fd));
    Ok(u64::from(map_id))
}
