//! The QEMU backend: launch `qemu-system-x86_64` with guest RAM in a shared
//! file the host maps too, freeze through QMP, and capture the serial console.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use std::sync::Arc;

use memmap2::MmapRaw;

pub mod qmp;

use crate::backend::{BackendError, ConsoleEvent, GuestWindow, Vm};
use qmp::{Qmp, QmpError};

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's instruction translator.
    Tcg,
}

impl Accel {
    /// The name QEMU uses, as recorded in traces.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// CPU layout passed to `-smp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpLayout {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

impl SmpLayout {
    /// Logical CPUs in total.
    pub fn cpus(&self) -> u32 {
        self.sockets * self.dies * self.cores * self.threads
    }
}

/// Where the transport window sits in guest-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub gpa: u64,
    pub size: u64,
}

/// Everything needed to start a guest.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub binary: PathBuf,
    /// An uncompressed vmlinux (booted through its PVH note) or a bzImage.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Extra kernel arguments; console, memmap and ring arguments are added.
    pub cmdline: String,
    pub smp: SmpLayout,
    pub memory_mib: u64,
    pub accel: Accel,
    /// Directory for the RAM file (normally /dev/shm) and the QMP socket.
    pub runtime_dir: PathBuf,
}

/// QEMU backend failures.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The guest RAM file could not be created or mapped.
    #[error("cannot set up guest RAM file {path}: {source}")]
    Ram {
        path: String,
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {binary}: {source} (install it with `apt-get install qemu-system-x86`)")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    /// QEMU exited before its QMP socket came up.
    #[error("QEMU exited during start-up: {0}")]
    EarlyExit(String),
    /// The memory size leaves no room for the ring window.
    #[error("guest memory of {0} MiB is too small (need at least 64 MiB)")]
    TooLittleMemory(u64),
    #[error(transparent)]
    Qmp(#[from] QmpError),
}

/// A running QEMU guest.
#[derive(Debug)]
pub struct QemuVm {
    child: Child,
    qmp: Qmp,
    ram: Arc<MmapRaw>,
    ram_path: PathBuf,
    qmp_path: PathBuf,
    window: Window,
    accel: Accel,
    console: Receiver<ConsoleEvent>,
    frozen_at: Option<Instant>,
    exited: bool,
}

/// Size of the transport window.
pub const WINDOW_SIZE: u64 = 4 << 20;
/// Gap between the window and the top of RAM, where QEMU puts its ACPI tables.
const TOP_GAP: u64 = 4 << 20;

impl QemuVm {
    /// Creates the RAM file, lets `prepare` initialise the window, then starts QEMU.
    pub fn launch(
        config: &QemuConfig,
        prepare: impl FnOnce(&GuestWindow),
    ) -> Result<Self, QemuError> {
        if config.memory_mib < 64 {
            return Err(QemuError::TooLittleMemory(config.memory_mib));
        }
        let mem_bytes = config.memory_mib << 20;
        let window = Window {
            gpa: mem_bytes - TOP_GAP - WINDOW_SIZE,
            size: WINDOW_SIZE,
        };
        let tag = format!("schedtape-{}-{}", std::process::id(), unique());
        let ram_path = config.runtime_dir.join(format!("{tag}.ram"));
        let qmp_path = config.runtime_dir.join(format!("{tag}.qmp"));
        let ram_err = |source| QemuError::Ram {
            path: ram_path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&ram_path)
            .map_err(ram_err)?;
        file.set_len(mem_bytes).map_err(ram_err)?;
        let ram = Arc::new(MmapRaw::map_raw(&file).map_err(ram_err)?);
        let guest_window =
            window_of(&ram, window).ok_or(QemuError::TooLittleMemory(config.memory_mib))?;
        prepare(&guest_window);
        let args = qemu_args(config, &ram_path, &qmp_path, window);
        let mut child = Command::new(&config.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| QemuError::Spawn {
                binary: config.binary.display().to_string(),
                source,
            })?;
        let console = spawn_line_reader(child.stdout.take(), child.stderr.take());
        let qmp = match Qmp::connect(&qmp_path, Duration::from_secs(10)) {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let output: Vec<String> = console
                    .try_iter()
                    .map(|e| match e {
                        ConsoleEvent::Serial(l) | ConsoleEvent::Hypervisor(l) => l,
                    })
                    .collect();
                let _ = std::fs::remove_file(&ram_path);
                return Err(if output.is_empty() {
                    e.into()
                } else {
                    QemuError::EarlyExit(output.join("\n"))
                });
            }
        };
        drop(file);
        Ok(QemuVm {
            child,
            qmp,
            ram,
            ram_path,
            qmp_path,
            window,
            accel: config.accel,
            console,
            frozen_at: None,
            exited: false,
        })
    }

    /// Where the transport window is in guest-physical memory.
    pub fn window_location(&self) -> Window {
        self.window
    }

    /// QEMU's exit status once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.exited |= status.is_some();
        status
    }
}

fn window_of(ram: &Arc<MmapRaw>, window: Window) -> Option<GuestWindow> {
    GuestWindow::new(
        Arc::clone(ram),
        usize::try_from(window.gpa).ok()?,
        usize::try_from(window.size).ok()?,
    )
}

impl Vm for QemuVm {
    fn window(&self) -> GuestWindow {
        // The window was checked against the mapping at launch.
        window_of(&self.ram, self.window).expect("window checked at launch")
    }

    fn freeze(&mut self) -> Result<Duration, BackendError> {
        let start = Instant::now();
        self.qmp
            .execute("stop", None)
            .map_err(|e| BackendError(e.to_string()))?;
        self.frozen_at = Some(Instant::now());
        Ok(start.elapsed())
    }

    fn thaw(&mut self) -> Result<Duration, BackendError> {
        self.qmp
            .execute("cont", None)
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(self
            .frozen_at
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default())
    }

    fn poll_console(&mut self, out: &mut Vec<ConsoleEvent>) {
        out.extend(self.console.try_iter());
    }

    fn has_exited(&mut self) -> bool {
        self.exited || self.try_wait().is_some()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
    }

    fn describe(&self) -> trace_format::meta::Backend {
        trace_format::meta::Backend::Qemu {
            accel: self.accel.name().to_string(),
        }
    }
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ram_path);
        let _ = std::fs::remove_file(&self.qmp_path);
    }
}

fn qemu_args(config: &QemuConfig, ram: &Path, qmp: &Path, window: Window) -> Vec<String> {
    let smp = config.smp;
    let mem = config.memory_mib;
    let cmdline = format!(
        "console=ttyS0 reboot=t panic=-1 memmap={}K${}K schedtape.ring={:#x},{:#x} {}",
        window.size >> 10,
        window.gpa >> 10,
        window.gpa,
        window.size,
        config.cmdline
    );
    let mut args: Vec<String> = vec![
        "-M".into(),
        "pc,memory-backend=ram".into(),
        "-accel".into(),
        config.accel.name().into(),
        "-object".into(),
        format!(
            "memory-backend-file,id=ram,size={mem}M,mem-path={},share=on",
            ram.display()
        ),
        "-m".into(),
        format!("{mem}M"),
        "-smp".into(),
        format!(
            "cpus={},sockets={},dies={},cores={},threads={}",
            smp.cpus(),
            smp.sockets,
            smp.dies,
            smp.cores,
            smp.threads
        ),
        "-kernel".into(),
        config.kernel.display().to_string(),
        "-initrd".into(),
        config.initrd.display().to_string(),
        "-append".into(),
        cmdline,
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ];
    if config.accel == Accel::Kvm {
        args.extend(["-cpu".into(), "host".into()]);
    } else {
        args.extend(["-cpu".into(), "max".into()]);
    }
    args
}

/// Forwards serial (stdout) and QEMU's own (stderr) lines into one channel.
fn spawn_line_reader(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
) -> Receiver<ConsoleEvent> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = stdout {
        let tx = tx.clone();
        std::thread::spawn(move || forward_lines(BufReader::new(out), &tx, ConsoleEvent::Serial));
    }
    if let Some(err) = stderr {
        std::thread::spawn(move || {
            forward_lines(BufReader::new(err), &tx, ConsoleEvent::Hypervisor)
        });
    }
    rx
}

fn forward_lines(
    mut reader: impl BufRead,
    tx: &mpsc::Sender<ConsoleEvent>,
    wrap: fn(String) -> ConsoleEvent,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                if tx.send(wrap(line)).is_err() {
                    return;
                }
            }
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The accelerator this machine supports: KVM when /dev/kvm opens and the CPU
/// advertises hardware virtualisation, else TCG. Returns the reason too.
pub fn detect_accel() -> (Accel, String) {
    let kvm = File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    match (kvm, hw) {
        (true, true) => (Accel::Kvm, "hardware KVM available".to_string()),
        (true, false) => (
            Accel::Tcg,
            "/dev/kvm has no hardware virtualisation (no vmx/svm flag): using TCG".to_string(),
        ),
        (false, _) => (Accel::Tcg, "/dev/kvm is not usable: using TCG".to_string()),
    }
}
