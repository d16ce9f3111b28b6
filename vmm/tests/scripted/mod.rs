//! A scripted "guest" for recorder tests (no hypervisor): everything it will
//! ever say is in the ring before the run starts, and it has already exited.
#![allow(dead_code, reason = "each test file uses a different part")]
use std::sync::Arc;
use std::time::Duration;
use vmm::run::StopRequest;

use memmap2::{MmapOptions, MmapRaw};
use trace_format::meta::{
    Acceleration, Backend, HostFingerprint, KernelIdentity, Meta, SCHEMA_VERSION,
};
use trace_format::proto::GuestMsg;
use trace_format::ring::{Direction, Producer};
use trace_format::scenario::Scenario;
use vmm::backend::{BackendError, ConsoleEvent, GuestWindow, Vm};
use vmm::run::{RunOptions, prepare_window};

pub struct ScriptedVm {
    window: GuestWindow,
    console: Vec<String>,
    /// Keeps running until killed (else it has exited from the start).
    running: bool,
    /// How the backend says the guest ran.
    acceleration: Option<Acceleration>,
}

impl ScriptedVm {
    /// A guest that sent `messages`.
    pub fn launch(messages: &[GuestMsg]) -> Result<Self, BackendError> {
        let frames: Vec<Vec<u8>> = messages
            .iter()
            .map(|m| postcard::to_allocvec(m).expect("encodes"))
            .collect();
        Self::launch_raw(&frames, |_| {})
    }

    /// A guest that sent these raw frames, then wrote over its window with `poke`.
    pub fn launch_raw(
        frames: &[Vec<u8>],
        poke: impl FnOnce(&GuestWindow),
    ) -> Result<Self, BackendError> {
        let map = MmapOptions::new()
            .len(1 << 20)
            .map_anon()
            .map_err(|e| BackendError(e.to_string()))?;
        let window = GuestWindow::new(Arc::new(MmapRaw::from(map)), 0, 1 << 20)
            .ok_or_else(|| BackendError("window".into()))?;
        prepare_window(&window).map_err(|e| BackendError(e.to_string()))?;
        let mut up = Producer::attach(window.clone(), Direction::Up)
            .map_err(|e| BackendError(e.to_string()))?;
        for f in frames {
            up.push(f).map_err(|e| BackendError(e.to_string()))?;
        }
        poke(&window);
        Ok(ScriptedVm {
            window,
            console: Vec::new(),
            running: false,
            acceleration: None,
        })
    }

    /// The VM keeps running (saying nothing more) until it is killed.
    pub fn still_running(mut self) -> Self {
        self.running = true;
        self
    }

    /// The backend reports that the guest ran under `a`.
    pub fn with_acceleration(mut self, a: Acceleration) -> Self {
        self.acceleration = Some(a);
        self
    }

    /// The guest also printed these serial console lines.
    pub fn with_console(mut self, lines: &[&str]) -> Self {
        self.console = lines.iter().map(|l| l.to_string()).collect();
        self
    }
}

impl Vm for ScriptedVm {
    fn window(&self) -> GuestWindow {
        self.window.clone()
    }
    fn freeze(&mut self) -> Result<Duration, BackendError> {
        Ok(Duration::ZERO)
    }
    fn thaw(&mut self) -> Result<Duration, BackendError> {
        Ok(Duration::ZERO)
    }
    fn poll_console(&mut self, out: &mut Vec<ConsoleEvent>) {
        out.extend(self.console.drain(..).map(ConsoleEvent::Serial));
    }
    fn has_exited(&mut self) -> bool {
        !self.running
    }
    fn kill(&mut self) {
        self.running = false;
    }
    fn describe(&self) -> Backend {
        Backend::Synthetic
    }
    fn acceleration(&self) -> Option<Acceleration> {
        self.acceleration
    }
}

pub fn meta() -> Meta {
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: "vmm-tests".into(),
        run_id: [3; 16],
        started_unix_ns: 0,
        scenario: Scenario::new("scripted", 1_000_000_000),
        kernel: KernelIdentity::default(),
        scheduler: None,
        topology: Default::default(),
        backend: Backend::Synthetic,
        host: HostFingerprint::default(),
        sample_interval_ns: 100_000_000,
        snapshot_interval_ns: 0,
        notes: vec![],
        acceleration: None,
    }
}

pub fn options(dir: &tempfile::TempDir) -> RunOptions {
    RunOptions {
        output: dir.path().join("run.trace"),
        meta: meta(),
        watchdog: Duration::from_secs(30),
        stop: Arc::new(StopRequest::new()),
        stop_grace: Duration::from_secs(1),
    }
}
