//! The executor: boot-time setup, then settle, backdrop, steps, teardown, End.
//!
//! Message order on the wire: `Hello`, executor `Console` notes, then for the
//! backdrop and each step `StepBegin`, `OpApplied` / `WorkerSpawned` as they
//! happen, `WorkerSample` batches, `StepEnd`; finally `End` and `Goodbye`.
//! A failed op or setup fails its step and ends the run (later steps are
//! skipped; the backdrop is still torn down); `End` then carries
//! `GuestError` with the step's error. A host `Stop` ends the current step
//! early and the run with `Interrupted`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use rustix::mount::MountFlags;
use trace_format::record::{
    ExitHow, MemoryEvents, OpApplied, OpOutcome, Record, RunOutcome, StepOutcome, StepRef,
    WorkerExited, WorkerSpawned,
};
use trace_format::scenario::limits::MAX_SCENARIO_BYTES;
use trace_format::scenario::{CgroupDef, Op, PayloadSpec, Scenario, Topology, WorkSpec};

use super::payload::Payloads;
use super::sampler::Sampler;
use super::sched::{self, Scheds};
use super::transport::Transport;
use super::worker::{Group, Worker, Workers};
use super::{cgroupfs, ops, sys};
use crate::cgroups::{self, CgroupTable};
use crate::memevents::OomCounts;
use crate::timeline::{Hold, Ticker, sleep_for};

/// Where the host packs the scenario.
pub const SCENARIO_PATH: &str = "/scenario.bin";

/// Why a phase stopped before its end.
#[derive(Debug)]
enum Halt {
    /// An op or setup failed.
    Fail(String),
    /// The host asked to stop.
    Stop(String),
    /// The sched_ext scheduler died or was ejected.
    Sched(String),
}

/// The executor's state while a scenario runs.
#[derive(Debug)]
pub struct Executor<'t> {
    pub tx: &'t mut Transport,
    pub topo: Topology,
    pub cgroups: CgroupTable,
    pub workers: Workers,
    pub payloads: Payloads,
    pub sched: Scheds,
    /// The scenario's payload declarations.
    pub payload_specs: Vec<PayloadSpec>,
    /// When the run's time is up (executor clock); bounds `wait_payload`.
    pub time_up_ns: u64,
    sampler: Sampler,
    sample_tick: Ticker,
}

/// PID 1's life after `_start`. Never returns: it ends in a reboot.
pub fn main() -> ! {
    let start = sys::now_ns();
    let notes = mount_all();
    ensure_console();
    let (mut tx, ring_notes) = Transport::open(start);
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    tx.hello(release);
    for n in ring_notes.into_iter().chain(notes) {
        tx.console(n);
    }
    let outcome = match load_scenario() {
        Ok(sc) => run(&mut tx, &sc),
        Err(message) => {
            tx.console(message.clone());
            RunOutcome::GuestError { message }
        }
    };
    tx.record(&Record::End(outcome));
    tx.goodbye();
    sys::reboot()
}

fn mount_all() -> Vec<String> {
    let mounts = [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("cgroup2", cgroupfs::ROOT, "cgroup2"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
    ];
    let mut notes = Vec::new();
    for (source, target, fs) in mounts {
        let _ = sys::mkdir(target);
        match rustix::mount::mount(source, target, fs, MountFlags::empty(), None) {
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => notes.push(format!(
                "mounting {fs} on {target} failed: {}",
                crate::errno::describe(e.raw_os_error())
            )),
        }
    }
    notes
}

/// Opens `/dev/console` as fds 0, 1 and 2 where the kernel did not.
fn ensure_console() {
    use rustix::fd::IntoRawFd;
    use rustix::fs::{CWD, Mode, OFlags};
    for _ in 0..3 {
        let Ok(fd) = rustix::fs::openat(
            CWD,
            "/dev/console",
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        ) else {
            return;
        };
        if rustix::fd::AsRawFd::as_raw_fd(&fd) > 2 {
            return;
        }
        let _ = fd.into_raw_fd();
    }
}

fn load_scenario() -> Result<Scenario, String> {
    let cannot = |e: rustix::io::Errno| {
        format!(
            "cannot read {SCENARIO_PATH}: {}",
            crate::errno::describe(e.raw_os_error())
        )
    };
    // Sized before it is read: the heap is a fixed arena that a huge file
    // would exhaust (a panic, and no End record).
    let size = rustix::fs::stat(SCENARIO_PATH).map_err(cannot)?.st_size;
    if u64::try_from(size).unwrap_or(u64::MAX) > MAX_SCENARIO_BYTES as u64 {
        return Err(format!(
            "{SCENARIO_PATH} is {size} bytes; the guest takes at most {MAX_SCENARIO_BYTES}"
        ));
    }
    let bytes = sys::read_all(SCENARIO_PATH).map_err(cannot)?;
    // The host validated the scenario before packing it (xtask, pack-scenario);
    // validating again here would double the binary's share of scenario code,
    // so only what the guest's heap must hold is checked again.
    let sc: Scenario = postcard::from_bytes(&bytes)
        .map_err(|e| format!("{SCENARIO_PATH} is not a scenario of this version: {e}"))?;
    match sc.guest_capacity_error() {
        Some(e) => Err(format!("{SCENARIO_PATH}: {e}")),
        None => Ok(sc),
    }
}

fn run(tx: &mut Transport, sc: &Scenario) -> RunOutcome {
    for p in cgroupfs::setup_parent() {
        tx.console(p);
    }
    match crate::topology::check(&sc.topology, |path| sys::read_all(path).ok()) {
        Ok(summary) => tx.console(summary),
        Err(problems) => problems.into_iter().for_each(|p| tx.console(p)),
    }
    let workers = match Workers::new() {
        Ok(w) => w,
        Err(message) => return RunOutcome::GuestError { message },
    };
    let now = tx.now();
    let mut ex = Executor {
        tx,
        topo: sc.topology,
        cgroups: CgroupTable::default(),
        workers,
        payloads: Payloads::default(),
        sched: Scheds::new(sc),
        payload_specs: sc.payloads.clone(),
        time_up_ns: now
            .saturating_add(sc.settle_ns)
            .saturating_add(sc.duration_ns),
        sampler: Sampler::default(),
        sample_tick: Ticker::new(now, sc.sample_interval_ns),
    };
    ex.run(sc)
}

impl Executor<'_> {
    fn run(&mut self, sc: &Scenario) -> RunOutcome {
        if let Err(message) = sched::start_boot(self) {
            return RunOutcome::GuestError { message };
        }
        let settle_end = self.tx.now().saturating_add(sc.settle_ns);
        let mut halt = self.wait_until(settle_end).err();
        self.sample_tick = Ticker::new(self.tx.now(), sc.sample_interval_ns);
        let backdrop = !sc.backdrop.cgroups.is_empty() || !sc.backdrop.ops.is_empty();
        let mut backdrop_error = None;
        if backdrop && halt.is_none() {
            self.tx.record(&Record::StepBegin {
                step: StepRef::BACKDROP,
            });
            if let Err(h) = self
                .setup(&sc.backdrop.cgroups, StepRef::BACKDROP)
                .and_then(|()| self.ops(StepRef::BACKDROP, &sc.backdrop.ops, 0))
            {
                if let Halt::Fail(e) = &h {
                    backdrop_error = Some(e.clone());
                }
                halt = Some(h);
            }
        }
        let steps_start = self.tx.now();
        self.time_up_ns = steps_start.saturating_add(sc.duration_ns);
        let mut failure = backdrop_error
            .as_ref()
            .map(|e| format!("backdrop failed: {e}"));
        for i in 0..sc.steps.len() {
            if halt.is_some() {
                self.tx
                    .console(format!("steps {i}..{} skipped", sc.steps.len()));
                break;
            }
            if let Err(h) = self.run_step(sc, i, steps_start) {
                if let Halt::Fail(e) | Halt::Sched(e) = &h {
                    failure = Some(format!("{}: {e}", step_at(sc, i)));
                }
                halt = Some(h);
            }
        }
        if backdrop {
            self.sample_where(|w| w.owner == StepRef::BACKDROP);
            let outcome = match (&backdrop_error, &halt) {
                (Some(error), _) => StepOutcome::Failed {
                    error: error.clone(),
                },
                (None, Some(Halt::Stop(reason))) => StepOutcome::EndedEarly {
                    reason: format!("host asked to stop: {reason}"),
                },
                (None, Some(Halt::Sched(reason))) => StepOutcome::EndedEarly {
                    reason: reason.clone(),
                },
                _ => StepOutcome::Completed,
            };
            self.tx.record(&Record::StepEnd {
                step: StepRef::BACKDROP,
                outcome,
            });
            self.teardown(StepRef::BACKDROP);
        }
        // Anything left (should be nothing) dies before the reboot.
        self.payloads.kill_where(|_| true, self.tx);
        self.workers.kill_where(|_| true);
        sched::shutdown(self);
        match (failure, halt) {
            (Some(message), _) | (None, Some(Halt::Sched(message))) => {
                RunOutcome::GuestError { message }
            }
            (None, Some(Halt::Stop(reason))) => {
                self.tx.console(format!("stopped by the host: {reason}"));
                RunOutcome::Interrupted
            }
            _ => RunOutcome::Completed,
        }
    }

    fn run_step(&mut self, sc: &Scenario, i: usize, steps_start: u64) -> Result<(), Halt> {
        let step = StepRef(u16::try_from(i).unwrap_or(u16::MAX - 1));
        // Close the running interval so no sample straddles the step boundary.
        self.sample_where(|_| true);
        self.tx.record(&Record::StepBegin { step });
        let res = self.step_body(sc, i, step, steps_start);
        self.sample_where(|w| w.owner == step);
        let outcome = match &res {
            Ok(()) => StepOutcome::Completed,
            Err(Halt::Fail(error)) => StepOutcome::Failed {
                error: error.clone(),
            },
            Err(Halt::Stop(reason)) => StepOutcome::EndedEarly {
                reason: format!("host asked to stop: {reason}"),
            },
            Err(Halt::Sched(reason)) => StepOutcome::EndedEarly {
                reason: reason.clone(),
            },
        };
        self.tx.record(&Record::StepEnd { step, outcome });
        self.teardown(step);
        res
    }

    fn step_body(
        &mut self,
        sc: &Scenario,
        i: usize,
        step: StepRef,
        steps_start: u64,
    ) -> Result<(), Halt> {
        let s = &sc.steps[i];
        let hold = Hold::of(sc, i);
        if hold.setup_first() {
            self.setup(&s.setup, step)?;
            self.ops(step, &s.ops, 0)?;
        } else {
            self.ops(step, &s.ops, 0)?;
            self.setup(&s.setup, step)?;
        }
        let start = self.tx.now();
        let end = hold.end(start, steps_start, sc.duration_ns);
        let mut rounds = match hold {
            Hold::Loop { interval_ns } => Some(Ticker::new(start, interval_ns)),
            Hold::For(_) => None,
        };
        let mut round = 1;
        loop {
            let now = self.tx.now();
            if now >= end {
                return Ok(());
            }
            self.check_stop()?;
            if self.sample_tick.due(now) {
                self.sample_where(|_| true);
            }
            if let Some(t) = &mut rounds
                && t.due(now)
            {
                self.ops(step, &s.ops, round)?;
                round += 1;
            }
            self.service();
            let next_round = rounds.map_or(u64::MAX, |t| t.next);
            let now = self.tx.now();
            self.tx.flush();
            self.payloads
                .idle(sleep_for(now, &[end, self.sample_tick.next, next_round]));
        }
    }

    /// Sleeps until `deadline` (executor time), watching for a host stop.
    fn wait_until(&mut self, deadline: u64) -> Result<(), Halt> {
        loop {
            self.check_stop()?;
            self.service();
            let now = self.tx.now();
            if now >= deadline {
                return Ok(());
            }
            self.tx.flush();
            self.payloads.idle(sleep_for(now, &[deadline]));
        }
    }

    /// Ends the current phase when the host asks to, or when the sched_ext
    /// scheduler died or was ejected.
    fn check_stop(&mut self) -> Result<(), Halt> {
        if let Some(reason) = self.tx.poll() {
            return Err(Halt::Stop(reason.to_string()));
        }
        match sched::watch(self) {
            Some(reason) => Err(Halt::Sched(reason)),
            None => Ok(()),
        }
    }

    fn setup(&mut self, defs: &[CgroupDef], owner: StepRef) -> Result<(), Halt> {
        for def in defs {
            self.create_def(def, owner).map_err(Halt::Fail)?;
        }
        Ok(())
    }

    /// Applies `ops` in order, recording each; stops at the first failure.
    /// Adjacent `WriteKernelCold` ops go to the host as one batch (one freeze).
    fn ops(&mut self, step: StepRef, list: &[Op], round: u32) -> Result<(), Halt> {
        let mut j = 0;
        while j < list.len() {
            self.check_stop()?;
            let index = u16::try_from(j).unwrap_or(u16::MAX);
            let t0 = sys::now_ns();
            let results = if matches!(list[j], Op::WriteKernelCold(_)) {
                let n = list[j..]
                    .iter()
                    .take_while(|o| matches!(o, Op::WriteKernelCold(_)))
                    .count();
                ops::cold_writes(self, step, index, &list[j..j + n])
            } else {
                alloc::vec![ops::apply(self, step, index, &list[j])]
            };
            let duration_ns = sys::now_ns().saturating_sub(t0);
            for res in results {
                let op = &list[j];
                let (outcome, failed) = match res {
                    Ok(o) => (o, None),
                    Err(error) => (
                        OpOutcome::Failed {
                            error: error.clone(),
                        },
                        Some(error),
                    ),
                };
                self.tx.record(&Record::OpApplied(OpApplied {
                    step,
                    op: u16::try_from(j).unwrap_or(u16::MAX),
                    round,
                    duration_ns,
                    outcome,
                }));
                if let Some(e) = failed {
                    // An op cut short by a host stop ends the step early, not as a failure.
                    if let Some(reason) = self.tx.poll() {
                        return Err(Halt::Stop(reason.to_string()));
                    }
                    return Err(Halt::Fail(format!("ops[{j}] ({}): {e}", op.name())));
                }
                j += 1;
            }
        }
        Ok(())
    }

    /// Creates a cgroup directory and tracks it for `owner`.
    pub fn add_cgroup(&mut self, name: &str, owner: StepRef) -> Result<(), String> {
        self.cgroups.add(name, owner)?;
        cgroupfs::create(name).inspect_err(|_| {
            self.cgroups.remove(name);
        })
    }

    /// Creates, configures and populates a cgroup; returns the new workers' PIDs.
    pub fn create_def(&mut self, def: &CgroupDef, owner: StepRef) -> Result<Vec<u32>, String> {
        let (cpus, writes) = cgroups::def_writes(def, &self.topo)?;
        self.add_cgroup(&def.name, owner)?;
        for w in &writes {
            cgroupfs::write(&def.name, w.file, &w.value)?;
        }
        if let Some(c) = self.cgroups.get_mut(&def.name) {
            c.cpuset = cpus;
        }
        let mut pids = Vec::new();
        for spec in &def.works {
            pids.extend(self.spawn(Some(&def.name), owner, spec)?);
        }
        Ok(pids)
    }

    /// Forks the workers of `spec` into `cgroup` (`None`: the runner's cgroup).
    pub fn spawn(
        &mut self,
        cgroup: Option<&str>,
        owner: StepRef,
        spec: &WorkSpec,
    ) -> Result<Vec<u32>, String> {
        let n = spec.resolve_workers(self.cgroups.cpu_count(cgroup, &self.topo));
        let allowed = cgroup
            .and_then(|c| self.cgroups.get(c))
            .and_then(|c| c.cpuset.clone());
        let masks = (0..n)
            .map(|k| spec.affinity.resolve(&self.topo, allowed.as_ref(), k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cgroup {:?}: affinity: {e}", cgroup.unwrap_or("")))?;
        let comm = cgroups::comm(spec, cgroup);
        let group = Group {
            cgroup,
            owner,
            spec,
            comm: &comm,
            masks,
        };
        let range = self.workers.spawn(&group).map_err(|e| match cgroup {
            Some(c) => format!("cgroup {c:?}: {e}"),
            None => e,
        })?;
        // Each worker's first sample interval starts at its baseline reading,
        // taken at the instant its spawn record is stamped.
        let mut pids = Vec::with_capacity(range.len());
        for i in range {
            let w = &mut self.workers.list[i];
            let ts = self.tx.now();
            self.sampler.baseline(w, &self.workers.pool);
            pids.push(w.pid);
            let record = Record::WorkerSpawned(WorkerSpawned {
                worker: w.id,
                pid: w.pid,
                step: owner,
                cgroup: cgroup.unwrap_or("").into(),
                work: spec.work.name().into(),
            });
            self.tx.record_at(ts, &record);
        }
        Ok(pids)
    }

    /// Takes a last sample of the matching workers, then kills them.
    pub fn stop_workers(&mut self, pred: impl Fn(&Worker) -> bool) -> Vec<u32> {
        self.sample_where(&pred);
        self.workers.kill_where(pred)
    }

    /// Samples the matching workers, each stamped with the instant its
    /// counters are read (reading one takes milliseconds under emulation, so
    /// one stamp for a batch would skew short intervals).
    fn sample_where(&mut self, pred: impl Fn(&Worker) -> bool) {
        for w in self.workers.list.iter_mut().filter(|w| pred(w)) {
            let ts = self.tx.now();
            if let Some((sample, errors)) = self.sampler.sample(w, &self.workers.pool) {
                self.tx.record_at(ts, sample);
                if let Some(errors) = errors {
                    self.tx.record_at(ts, errors);
                }
            }
        }
    }

    /// Reads payload output and reaps children that exited on their own.
    fn service(&mut self) {
        self.payloads.drain(self.tx);
        self.reap();
    }

    fn reap(&mut self) {
        use rustix::process::WaitOptions;
        // wait(), not waitpid(None): the latter only sees our own process
        // group, and payloads run in their own.
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            let pid = u32::try_from(pid.as_raw_nonzero().get()).unwrap_or(0);
            let status = status.as_raw();
            if let Some(w) = self.workers.on_exit(pid) {
                self.worker_ended(w, status);
            } else if !self.sched.on_exit(pid, status) {
                // Payloads record their own line; anything else is an orphan.
                self.payloads.on_exit(pid, status, self.tx);
            }
        }
    }

    /// Records a worker that ended on its own; a kill also records its
    /// cgroup's OOM events, so the trace says whether the OOM killer did it.
    fn worker_ended(&mut self, w: Worker, status: i32) {
        let how = ExitHow::from_wait_status(status);
        let oom_kills = match (&how, &w.cgroup) {
            (Some(ExitHow::Killed { .. }), Some(cg)) => self.record_oom(cg),
            _ => 0,
        };
        let cause = if oom_kills > 0 {
            format!(
                " (cgroup {:?} OOM-killed {oom_kills})",
                w.cgroup.as_deref().unwrap_or("")
            )
        } else {
            String::new()
        };
        self.tx.console(format!(
            "worker {} (pid {}) {}{cause}",
            w.id,
            w.pid,
            crate::errno::describe_wait(status)
        ));
        if let Some(how) = how {
            self.tx.record(&Record::WorkerExited(WorkerExited {
                worker: w.id,
                pid: w.pid,
                cgroup: w.cgroup.unwrap_or_default(),
                how,
            }));
        }
    }

    /// Records cgroup `name`'s OOM events that are new since its last
    /// `MemoryEvents` record; returns the new OOM kills.
    pub fn record_oom(&mut self, name: &str) -> u64 {
        let Ok(text) = sys::read_all(&cgroupfs::path(name, "memory.events")) else {
            return 0;
        };
        let now = OomCounts::parse(&text);
        let Some(c) = self.cgroups.get_mut(name) else {
            return 0;
        };
        let new = now.since(&c.oom);
        c.oom = now;
        if new.is_zero() {
            return 0;
        }
        self.tx.record(&Record::MemoryEvents(MemoryEvents {
            cgroup: name.into(),
            oom: new.oom,
            oom_kill: new.oom_kill,
            oom_group_kill: new.oom_group_kill,
        }));
        new.oom_kill
    }

    /// Waits until the payload with `pid` exits, sampling and reading output
    /// meanwhile; returns its raw wait status.
    pub fn wait_payload(&mut self, pid: u32) -> Result<i32, String> {
        loop {
            self.service();
            let Some(p) = self.payloads.list.iter().find(|p| p.pid == pid) else {
                return Err(format!("payload pid {pid} vanished"));
            };
            if let Some(status) = p.status {
                return Ok(status);
            }
            let now = self.tx.now();
            if now >= self.time_up_ns {
                return Err(format!(
                    "payload {:?} (pid {pid}) still runs when the scenario's time is up",
                    p.name
                ));
            }
            if let Some(reason) = self.tx.poll() {
                return Err(format!("the host asked to stop: {reason}"));
            }
            if self.sample_tick.due(now) {
                self.sample_where(|_| true);
            }
            let now = self.tx.now();
            self.tx.flush();
            self.payloads
                .idle(sleep_for(now, &[self.time_up_ns, self.sample_tick.next]));
        }
    }

    /// Kills `owner`'s payloads and workers and removes its cgroups, newest first.
    fn teardown(&mut self, owner: StepRef) {
        // Reap workers that died on their own first, so their ends are recorded.
        self.reap();
        self.payloads.kill_where(|p| p.owner == owner, self.tx);
        self.workers.kill_where(|w| w.owner == owner);
        for name in self.cgroups.owned_by(owner) {
            self.record_oom(&name);
            let here = |c: &Option<String>| c.as_deref() == Some(name.as_str());
            self.payloads.kill_where(|p| here(&p.cgroup), self.tx);
            self.workers.kill_where(|w| here(&w.cgroup));
            if let Err(e) = cgroupfs::remove(&name) {
                self.tx.console(e);
            }
            self.cgroups.remove(&name);
        }
        self.reap();
    }
}

fn step_at(sc: &Scenario, i: usize) -> String {
    match sc.steps.get(i).and_then(|s| s.name.as_ref()) {
        Some(n) => format!("step {i} ({n:?})"),
        None => format!("step {i}"),
    }
}
