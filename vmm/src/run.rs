//! Recording a run: boot through a backend, drain the guest's ring into a
//! trace, watch the console and the clock, and close the trace on every path.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trace_format::file::{Trace, TraceWriter, WriteError};
use trace_format::meta::Meta;
use trace_format::proto::{GuestMsg, HostMsg, HostRequest, PROTOCOL_VERSION};
use trace_format::record::{
    AccessKind, ConsoleLine, ConsoleSource, DropReport, KernelAccess, Record, RunOutcome,
    SnapshotTrigger, StepRef, TOPOLOGY_MISMATCH, Verdict,
};
use trace_format::ring::{
    self, Consumer, Direction, Geometry, MAX_FRAME, Popped, Producer, RingError,
};

mod guard;
mod judge;
mod kernel;
mod stop;

use guard::{MAX_GUEST_LEAD_NS, contained, guest_may_send};
use judge::judge_before_end;
use stop::host_outcome_wins;
pub use stop::{StopRequest, signal_name};

use crate::backend::{BackendError, ConsoleEvent, GuestWindow, Vm, WatchHit, WatchId};
use crate::console::{ConsoleSignal, ConsoleTail};
use crate::introspect::Layout;
use crate::introspect::live::{Access, Live};

/// Longest wait between ring polls when the guest is quiet; the console,
/// watchdog and stop requests are checked at least this often.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// The same where the backend wakes the recorder at every guest event (KVM
/// with its doorbell): the wait then only bounds how late the watchdog, a
/// stop request or a guest that forgot to ring is noticed, and a periodic
/// snapshot shortens it.
const IDLE_WAIT: Duration = Duration::from_millis(25);

/// What to record and when to give up.
#[derive(Debug)]
pub struct RunOptions {
    pub output: PathBuf,
    /// Written as the trace's meta; `backend` is filled in from the VM.
    pub meta: Meta,
    /// Limit for the whole run, from launch.
    pub watchdog: Duration,
    /// Made (e.g. by Ctrl-C or SIGTERM) to ask the guest to stop.
    pub stop: Arc<StopRequest>,
    /// Grace period for the guest to stop after a request, before it is killed.
    pub stop_grace: Duration,
}

/// Kernel introspection for a run: snapshots and kernel variable access.
#[derive(Debug, Clone)]
pub struct IntrospectOptions {
    /// The resolved vmlinux, or why there is none (requests then get this error).
    pub layout: Result<Arc<Layout>, String>,
    /// Periodic snapshots on the host clock; zero turns them off.
    pub snapshot_interval: Duration,
}

/// Milestones reported while a run is in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The guest executor said hello.
    InitReached { after: Duration },
    /// A step began (its index, or the backdrop).
    Step(String),
    /// Something the user should know, e.g. the guest sees another CPU topology.
    Warning(String),
    /// The run is over.
    Finished { outcome: String },
}

/// How a recorded run went.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: RunOutcome,
    pub time_to_init: Option<Duration>,
    pub time_to_closed: Duration,
    pub records: u64,
    pub bytes: u64,
    /// Frames lost in transport (dropped by the guest or failing checks).
    pub dropped: u64,
    pub console_tail: String,
    /// What the [`Judge`] returned, as recorded before `End`.
    pub verdicts: Vec<Verdict>,
    /// Why the run could not be judged, when a judge was given.
    pub judge_error: Option<String>,
}

/// Judges a finished run before its `End` is written. It sees the trace as
/// written so far (every record but `End`, read as a cleanly closed file) and
/// the outcome; the verdicts it returns become `Verdict` records just before
/// `End`. The recorder never judges itself: the caller brings the rules.
pub type Judge<'a> = Box<dyn FnOnce(&Trace<'_>, &RunOutcome) -> Vec<Verdict> + 'a>;

/// Failures that leave no usable trace.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The trace file could not be created or written.
    #[error("cannot write trace {path}: {source}")]
    Trace { path: String, source: WriteError },
}

/// Initialises the transport window before the guest boots.
pub fn prepare_window(window: &GuestWindow) -> Result<(), RingError> {
    ring::init_window(window, Geometry::for_window(ring::SharedMem::len(window))?)
}

/// Opens the trace, launches the VM, and records until the guest is done.
///
/// The trace is closed with an `End` record on every path: guest finished,
/// kernel panic, watchdog, stop request, launch failure or transport damage.
pub fn record<V: Vm>(
    launch: impl FnOnce() -> Result<V, BackendError>,
    options: RunOptions,
    progress: impl FnMut(Progress),
) -> Result<RunReport, RunError> {
    record_with(launch, options, None, progress)
}

/// [`record`], with kernel introspection when `introspect` is given.
pub fn record_with<V: Vm>(
    launch: impl FnOnce() -> Result<V, BackendError>,
    options: RunOptions,
    introspect: Option<IntrospectOptions>,
    progress: impl FnMut(Progress),
) -> Result<RunReport, RunError> {
    record_judged(launch, options, introspect, None, progress)
}

/// [`record_with`], and when `judge` is given its verdicts are written into
/// the trace just before `End` (see [`Judge`]).
pub fn record_judged<V: Vm>(
    launch: impl FnOnce() -> Result<V, BackendError>,
    options: RunOptions,
    introspect: Option<IntrospectOptions>,
    judge: Option<Judge<'_>>,
    mut progress: impl FnMut(Progress),
) -> Result<RunReport, RunError> {
    let path = options.output.display().to_string();
    let trace_err = |source| RunError::Trace {
        path: path.clone(),
        source,
    };
    let launched = Instant::now();
    let mut meta = options.meta.clone();
    let vm = launch();
    if let Ok(vm) = &vm {
        meta.backend = vm.describe();
        meta.acceleration = vm.acceleration();
        if let Some(cmdline) = vm.kernel_cmdline() {
            meta.notes.push(format!("kernel command line: {cmdline}"));
        }
    }
    let mut writer = TraceWriter::create(&options.output, &meta).map_err(trace_err)?;
    let mut session = match vm {
        Ok(vm) => Session::new(vm, launched, introspect),
        Err(e) => {
            let outcome = RunOutcome::HostError {
                message: format!("cannot start the VM: {e}"),
            };
            writer
                .append(0, &Record::End(outcome.clone()))
                .map_err(trace_err)?;
            let records = writer.records_written();
            let bytes = writer.bytes_written();
            writer.finish().map_err(trace_err)?;
            progress(Progress::Finished {
                outcome: outcome.label().to_string(),
            });
            return Ok(RunReport {
                outcome,
                time_to_init: None,
                time_to_closed: launched.elapsed(),
                records,
                bytes,
                dropped: 0,
                console_tail: String::new(),
                verdicts: Vec::new(),
                judge_error: None,
            });
        }
    };
    // A bug reachable from guest bytes must not cost the trace its End: a
    // panic while recording ends the run as a host error, like a write error.
    let result = contained(|| session.drive(&mut writer, &options, &mut progress));
    session.vm.kill();
    if matches!(result, Ok(Ok(()))) && session.doorbell_wakeups > 0 {
        // Evidence that records arrived by the doorbell, not by polling alone.
        let line = format!(
            "ring doorbell: the guest woke the recorder {} times",
            session.doorbell_wakeups
        );
        let _ = session.note(&mut writer, &line);
    }
    // Whatever happened above, the trace gets its End and index.
    let outcome = match result {
        Ok(Ok(())) => session.final_outcome(),
        Ok(Err(e)) => RunOutcome::HostError {
            message: format!("trace write failed: {e}"),
        },
        Err(panic) => RunOutcome::HostError {
            message: format!("the recorder panicked: {panic}"),
        },
    };
    let ts = session
        .guest_end
        .as_ref()
        .map_or(0, |(ts, _)| *ts)
        .max(session.host_ts());
    let (verdicts, judge_error) = match judge {
        None => (Vec::new(), None),
        Some(judge) => match judge_before_end(&mut writer, &options.output, &outcome, judge) {
            Ok(verdicts) => (verdicts, None),
            Err(e) => {
                let message = format!("cannot judge the run: {e}");
                let _ = session.note(&mut writer, &message);
                (Vec::new(), Some(message))
            }
        },
    };
    for v in &verdicts {
        let _ = writer.append(ts, &Record::Verdict(v.clone()));
    }
    let _ = writer.append(ts, &Record::End(outcome.clone()));
    let records = writer.records_written();
    let bytes = writer.bytes_written();
    writer.finish().map_err(trace_err)?;
    progress(Progress::Finished {
        outcome: outcome.label().to_string(),
    });
    Ok(RunReport {
        outcome,
        time_to_init: session.time_to_init,
        time_to_closed: launched.elapsed(),
        records,
        bytes,
        dropped: session.dropped,
        console_tail: session.tail.text(),
        verdicts,
        judge_error,
    })
}

/// State of one recording in progress.
struct Session<V> {
    vm: V,
    launched: Instant,
    up: Option<Consumer<GuestWindow>>,
    down: Option<Producer<GuestWindow>>,
    /// Host instant matching guest time 0 (set by the hello).
    anchor: Option<Instant>,
    time_to_init: Option<Duration>,
    /// The guest's own `End`: its timestamp and outcome.
    guest_end: Option<(u64, RunOutcome)>,
    host_outcome: Option<RunOutcome>,
    /// How the VM ended, as the backend tells it (once it has).
    vm_exit: Option<String>,
    tail: ConsoleTail,
    dropped: u64,
    guest_drops_seen: u64,
    stop_sent: Option<Instant>,
    live: Live,
    snapshot_interval: Duration,
    next_snapshot: Option<Instant>,
    /// Cold writes waiting to share one freeze: (request id, step, op, access).
    cold_writes: Vec<(u32, StepRef, u16, Access)>,
    /// Periodic snapshot failures already noted (noted once).
    snapshot_failed: bool,
    /// Active watchpoints and the op that asked for each.
    watches: Vec<(WatchId, StepRef, u16)>,
    watch_hits: Vec<WatchHit>,
    /// Set when the run must end now (a wrong vmlinux).
    abort: bool,
    /// Times the guest's doorbell woke the recorder (0 where there is none).
    doorbell_wakeups: u64,
}

impl<V: Vm> Session<V> {
    fn new(vm: V, launched: Instant, introspect: Option<IntrospectOptions>) -> Self {
        let (live, snapshot_interval) = match introspect {
            Some(o) => (Live::new(o.layout), o.snapshot_interval),
            None => (
                Live::new(Err("no vmlinux was given for this run".into())),
                Duration::ZERO,
            ),
        };
        let window = vm.window();
        let up = Consumer::attach(window.clone(), Direction::Up).ok();
        let down = Producer::attach(window, Direction::Down).ok();
        Session {
            vm,
            launched,
            up,
            down,
            anchor: None,
            time_to_init: None,
            guest_end: None,
            host_outcome: None,
            vm_exit: None,
            tail: ConsoleTail::new(200),
            dropped: 0,
            guest_drops_seen: 0,
            stop_sent: None,
            live,
            snapshot_interval,
            next_snapshot: None,
            cold_writes: Vec::new(),
            snapshot_failed: false,
            watches: Vec::new(),
            watch_hits: Vec::new(),
            abort: false,
            doorbell_wakeups: 0,
        }
    }

    /// Host time on the guest's time base: ns since the executor started.
    fn host_ts(&self) -> u64 {
        self.anchor.map_or(0, |a| {
            u64::try_from(a.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
    }

    fn drive<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        options: &RunOptions,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), WriteError> {
        let mut frame = vec![0u8; MAX_FRAME];
        let mut console = Vec::new();
        if self.up.is_none() {
            self.note(
                writer,
                "transport window is unusable; recording console only",
            )?;
        }
        loop {
            let exited = self.vm.has_exited();
            let busy = self.drain_ring(writer, &mut frame, progress)?;
            console.clear();
            self.vm.poll_console(&mut console);
            for event in console.drain(..) {
                self.console_line(writer, event)?;
            }
            self.watch_snapshots(writer)?;
            writer.tick(self.host_ts())?;
            if self.abort {
                return Ok(());
            }
            // Nothing is judged once the guest has said it is done (it is
            // rebooting), so no more freezes then.
            if !exited && self.guest_end.is_none() {
                self.periodic_snapshot(writer)?;
            }
            if exited {
                // One more pass: frames written just before the guest went down.
                self.drain_ring(writer, &mut frame, progress)?;
                self.vm_exit = self.vm.exit_reason();
                if let Some(why) = self.vm_exit.clone() {
                    self.note(writer, &format!("VM ended: {why}"))?;
                }
                return Ok(());
            }
            if self.launched.elapsed() > options.watchdog {
                let after_ns = u64::try_from(options.watchdog.as_nanos()).unwrap_or(u64::MAX);
                self.host_outcome
                    .get_or_insert(RunOutcome::Timeout { after_ns });
                self.note(
                    writer,
                    &format!(
                        "watchdog: no end after {:?}; killing the VM",
                        options.watchdog
                    ),
                )?;
                for line in self.vm.stall_report() {
                    self.note(writer, &line)?;
                }
                return Ok(());
            }
            if let Some(outcome) = options.stop.outcome() {
                match self.stop_sent {
                    None => {
                        self.stop_sent = Some(Instant::now());
                        self.host_outcome.get_or_insert(outcome);
                        let reason = options.stop.reason();
                        self.send(&HostMsg::Stop { reason });
                    }
                    Some(at) if at.elapsed() > options.stop_grace => {
                        self.note(writer, "guest did not stop in time; killing the VM")?;
                        return Ok(());
                    }
                    Some(_) => {}
                }
            }
            if !busy {
                // Returns early when the guest rings the doorbell (KVM), else
                // sleeps the whole poll interval.
                if self.vm.wait_for_guest(self.idle_wait()) {
                    self.doorbell_wakeups += 1;
                }
            }
        }
    }

    /// How long the loop may sleep when nothing is pending.
    fn idle_wait(&self) -> Duration {
        if !self.vm.wakes_on_guest_events() {
            return POLL_INTERVAL;
        }
        let until_snapshot = self
            .next_snapshot
            .filter(|_| self.guest_end.is_none())
            .map_or(IDLE_WAIT, |due| {
                due.saturating_duration_since(Instant::now())
            });
        IDLE_WAIT.min(until_snapshot)
    }

    /// Moves every published frame into the trace; true when any arrived.
    fn drain_ring<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        frame: &mut [u8],
        progress: &mut impl FnMut(Progress),
    ) -> Result<bool, WriteError> {
        let mut busy = false;
        let mut waited = false;
        for _ in 0..4096 {
            let Some(up) = self.up.as_mut() else {
                break;
            };
            let popped = match up.pop(frame) {
                Ok(p) => p,
                Err(e) => {
                    self.up = None;
                    self.dropped = self.dropped.saturating_add(1);
                    self.note(
                        writer,
                        &format!("transport ring damaged, no longer read: {e}"),
                    )?;
                    return Ok(busy);
                }
            };
            match popped {
                // Cold writes sent back to back share a freeze: give the rest
                // of a batch a moment to arrive before applying it.
                Popped::Empty if !self.cold_writes.is_empty() && !waited => {
                    waited = true;
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Popped::Empty => break,
                Popped::BadCrc => self.lost(writer, 1, "a transport frame failed its CRC")?,
                Popped::Frame(len) => {
                    match frame.get(..len).map(postcard::from_bytes::<GuestMsg>) {
                        Some(Ok(msg)) => self.handle(writer, msg, progress)?,
                        _ => self.lost(writer, 1, "a transport frame did not decode")?,
                    }
                }
            }
            busy = true;
        }
        self.flush_cold_writes(writer)?;
        let guest_drops = self
            .up
            .as_ref()
            .map_or(self.guest_drops_seen, Consumer::drops);
        if guest_drops > self.guest_drops_seen {
            let n = guest_drops - self.guest_drops_seen;
            self.guest_drops_seen = guest_drops;
            self.lost(writer, n, "the guest found the ring full")?;
        }
        Ok(busy)
    }

    fn handle<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        msg: GuestMsg,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), WriteError> {
        let cold_write = matches!(
            &msg,
            GuestMsg::Request {
                request: HostRequest::KernelAccess {
                    kind: AccessKind::WriteCold,
                    ..
                },
                ..
            }
        );
        if !cold_write {
            self.flush_cold_writes(writer)?;
        }
        match msg {
            GuestMsg::Hello {
                protocol,
                boot_to_init_ns,
                kernel_release,
            } => {
                let after = self.launched.elapsed();
                self.anchor = Some(Instant::now());
                self.time_to_init = Some(after);
                progress(Progress::InitReached { after });
                self.note(
                    writer,
                    &format!(
                        "guest executor up after {after:?} (kernel {kernel_release}, {} ms since guest boot)",
                        boot_to_init_ns / 1_000_000
                    ),
                )?;
                if protocol != PROTOCOL_VERSION {
                    self.note(
                        writer,
                        &format!("guest speaks protocol {protocol}, host {PROTOCOL_VERSION}"),
                    )?;
                }
                self.attach(writer)?;
            }
            GuestMsg::Record { record, .. } if !guest_may_send(&record) => {
                self.lost(writer, 1, "the guest sent a record only the host writes")?;
            }
            GuestMsg::Record { ts_ns, record } => {
                let ts_ns = ts_ns.min(self.host_ts().saturating_add(MAX_GUEST_LEAD_NS));
                match record {
                    // Held back and written last, after the console lines of the
                    // guest's shutdown, so `End` stays the final record.
                    Record::End(outcome) => self.guest_end = Some((ts_ns, outcome)),
                    record => {
                        match &record {
                            Record::StepBegin { step } => {
                                progress(Progress::Step(step.to_string()));
                            }
                            Record::Console(ConsoleLine {
                                source: ConsoleSource::Executor,
                                line,
                            }) if line.starts_with(TOPOLOGY_MISMATCH) => {
                                progress(Progress::Warning(line.clone()));
                            }
                            Record::MemoryEvents(m) if m.oom_kill > 0 => {
                                progress(Progress::Warning(m.to_string()));
                            }
                            _ => {}
                        }
                        writer.append(ts_ns, &record)?;
                    }
                }
            }
            GuestMsg::Request { id, request } => self.request(writer, id, request)?,
            GuestMsg::Goodbye => {}
        }
        Ok(())
    }

    /// Finds the guest kernel after the hello; a wrong vmlinux ends the run.
    fn attach<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
    ) -> Result<(), WriteError> {
        let t = Instant::now();
        match self.live.attach(&mut self.vm) {
            Ok(()) => {
                if let Some(k) = self.live.kernel() {
                    let line = format!(
                        "kernel found in guest memory in {:?}: KASLR slide {:#x}, phys_base {:#x}, {} CPUs",
                        t.elapsed(),
                        k.slide(),
                        k.phys_base(),
                        k.cpus()
                    );
                    self.note(writer, &line)?;
                    if self.snapshot_interval > Duration::ZERO && self.live.can_snapshot() {
                        self.next_snapshot = Some(Instant::now() + self.snapshot_interval);
                    }
                }
                Ok(())
            }
            Err(e) => {
                let message = format!("refusing the vmlinux: {e}");
                self.note(writer, &message)?;
                self.host_outcome = Some(RunOutcome::HostError { message });
                self.abort = true;
                Ok(())
            }
        }
    }

    fn console_line<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        event: ConsoleEvent,
    ) -> Result<(), WriteError> {
        let (source, line) = match event {
            ConsoleEvent::Serial(line) => (ConsoleSource::Kernel, line),
            ConsoleEvent::Hypervisor(line) => (ConsoleSource::Host, line),
        };
        if let Some(ConsoleSignal::Panic(message)) = self.tail.push(&line) {
            self.host_outcome
                .get_or_insert(RunOutcome::KernelPanic { message });
        }
        writer.append(
            self.host_ts(),
            &Record::Console(ConsoleLine { source, line }),
        )
    }

    fn note<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        line: &str,
    ) -> Result<(), WriteError> {
        self.tail.push(&format!("schedtape: {line}"));
        let record = Record::Console(ConsoleLine {
            source: ConsoleSource::Host,
            line: line.to_string(),
        });
        writer.append(self.host_ts(), &record)
    }

    fn lost<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        records: u64,
        reason: &str,
    ) -> Result<(), WriteError> {
        self.dropped = self.dropped.saturating_add(records);
        let record = Record::Drop(DropReport {
            records,
            reason: reason.to_string(),
        });
        writer.append(self.host_ts(), &record)
    }

    fn send(&mut self, msg: &HostMsg) {
        if let (Some(down), Ok(bytes)) = (self.down.as_mut(), postcard::to_allocvec(msg)) {
            // A full down ring means the guest is not listening; the watchdog covers that.
            let _ = down.push(&bytes);
        }
    }

    /// The run's outcome: the guest's own when it finished, else what the host saw.
    fn final_outcome(&self) -> RunOutcome {
        if let Some(o) = &self.host_outcome
            && host_outcome_wins(o, self.guest_end.as_ref().map(|(_, g)| g))
        {
            return o.clone();
        }
        self.guest_end
            .as_ref()
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| RunOutcome::HostError {
                message: match &self.vm_exit {
                    Some(why) => format!("the VM exited before the guest executor finished: {why}"),
                    None => "the VM exited before the guest executor finished".to_string(),
                },
            })
    }
}
