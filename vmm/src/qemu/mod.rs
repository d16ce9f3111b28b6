//! The QEMU backend: launch `qemu-system-x86_64` with guest RAM in a shared
//! file the host maps too, freeze through QMP, and capture the serial console.
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use std::sync::Arc;

use memmap2::MmapRaw;

mod args;
pub mod qmp;
mod ram;
pub mod runtime;
mod tuning;

pub use tuning::{BootTuning, TCG_APIC_TIMER_HZ, takes_lapic_timer_hz};

use args::{kernel_cmdline, qemu_args};
use ram::RamFiles;

use crate::numa::node_shares;

use crate::backend::{BackendError, ConsoleEvent, GuestWindow, Vm};
use crate::introspect::{GuestMemory, Region};
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
    /// Sockets, each its own NUMA node with an equal share of the RAM.
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

/// The QEMU machine type a launch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `microvm`: no PCI and a few lines of ACPI (no AML device tree for the
    /// guest to interpret), ~70 ms faster to boot than `pc` under TCG. The
    /// legacy PIT, PIC, RTC and COM1 stay on: without them the kernel has no
    /// clock events before its LAPIC timer and loses ~1 s waiting for an RTC.
    Microvm,
    /// `pc`: for topologies microvm cannot model: several dies (LLCs) per
    /// socket, or several NUMA nodes (microvm has no SRAT).
    Pc,
}

impl Machine {
    /// The fastest machine that models `smp`.
    pub fn for_layout(smp: &SmpLayout) -> Self {
        if smp.dies > 1 || smp.sockets > 1 {
            Machine::Pc
        } else {
            Machine::Microvm
        }
    }

    /// QEMU's name for the machine type.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
        }
    }

    /// The `-M` argument, without its RAM (see [`qemu_args`]).
    fn arg(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm,pit=on,pic=on,rtc=on,isa-serial=on,acpi=on",
            Machine::Pc => "pc",
        }
    }

    /// Guest-physical RAM for `size` bytes, laid out back to back in the RAM
    /// file: microvm puts up to 3 GiB below 4 GiB; `pc` does the same only from
    /// 3.5 GiB of RAM on (below that all of it sits low). The rest starts at 4 GiB.
    pub fn ram_regions(self, size: u64) -> Vec<Region> {
        let low = match self {
            Machine::Microvm => size.min(0xc000_0000),
            Machine::Pc if size >= 0xe000_0000 => 0xc000_0000,
            Machine::Pc => size,
        };
        let mut regions = vec![Region {
            gpa: 0,
            len: low,
            offset: 0,
        }];
        if size > low {
            regions.push(Region {
                gpa: 1 << 32,
                len: size - low,
                offset: low,
            });
        }
        regions
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
    /// The guest kernel's `CONFIG_HZ` when known; under TCG it lets the
    /// launcher preset the delay-loop calibration (`lpj=`, see [`BootTuning`]).
    pub kernel_hz: Option<u32>,
    /// The guest kernel takes `lapic_timer_hz=` (schedtape's kernel patch, see
    /// `fixtures/kernel/patches`): under TCG the launcher then gives it QEMU's
    /// APIC timer rate instead of letting it calibrate for 100 ms.
    pub lapic_timer_hz_param: bool,
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
    /// Some NUMA node would get no memory.
    #[error("guest memory of {mib} MiB is too small for {nodes} NUMA nodes (each needs 2 MiB)")]
    TooLittleMemoryForNodes { mib: u64, nodes: u32 },
    #[error(transparent)]
    Qmp(#[from] QmpError),
}

/// A running QEMU guest.
#[derive(Debug)]
pub struct QemuVm {
    child: Child,
    qmp: Qmp,
    ram: RamFiles,
    qmp_path: PathBuf,
    window: Window,
    accel: Accel,
    machine: Machine,
    console: Receiver<ConsoleEvent>,
    frozen_at: Option<Instant>,
    /// Set once QEMU has exited (or was killed and reaped).
    status: Option<ExitStatus>,
    /// The kernel command line QEMU was given (`-append`).
    cmdline: String,
}

/// Size of the transport window.
pub const WINDOW_SIZE: u64 = 4 << 20;
/// Gap kept between the window and the top of RAM (the `pc` machine puts its
/// ACPI tables there; microvm does not, but the margin costs nothing).
const TOP_GAP: u64 = 4 << 20;

/// The window: below the ACPI gap and below the initrd, which QEMU loads at
/// the top of RAM (a large initrd would otherwise overwrite the ring).
fn window_for(mem_bytes: u64, initrd_len: u64) -> Option<Window> {
    let above = TOP_GAP.max(initrd_len.next_multiple_of(1 << 20) + (1 << 20));
    let gpa = mem_bytes.checked_sub(above + WINDOW_SIZE)?;
    (gpa >= 32 << 20).then_some(Window {
        gpa,
        size: WINDOW_SIZE,
    })
}

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
        let initrd_len = std::fs::metadata(&config.initrd).map_or(0, |m| m.len());
        let window = window_for(mem_bytes, initrd_len)
            .ok_or(QemuError::TooLittleMemory(config.memory_mib))?;
        runtime::remove_stale(&config.runtime_dir);
        let tag = runtime::tag(unique());
        let qmp_path = config.runtime_dir.join(format!("{tag}.qmp"));
        let sizes = node_shares(mem_bytes, config.smp.sockets);
        if sizes.contains(&0) {
            return Err(QemuError::TooLittleMemoryForNodes {
                mib: config.memory_mib,
                nodes: config.smp.sockets,
            });
        }
        let mut ram =
            RamFiles::create(&config.runtime_dir, &tag, &sizes).map_err(|(path, source)| {
                QemuError::Ram {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        let guest_window =
            window_of(&ram.map, window).ok_or(QemuError::TooLittleMemory(config.memory_mib))?;
        prepare(&guest_window);
        let tuning = BootTuning::for_config(config);
        let cmdline = kernel_cmdline(config, window, &tuning);
        let args = qemu_args(
            config,
            &ram.files().collect::<Vec<_>>(),
            &qmp_path,
            window,
            &tuning,
        );
        let mut command = Command::new(&config.binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal (or `timeout`
            // signalling our group) reaches only the recorder, which stops the
            // guest cleanly; QEMU dies with us however we end (spawn_tied).
            .process_group(0);
        let mut child = crate::child::spawn_tied(command).map_err(|source| QemuError::Spawn {
            binary: config.binary.display().to_string(),
            source,
        })?;
        let console = spawn_line_reader(child.stdout.take(), child.stderr.take());
        let qmp = match Qmp::connect(&qmp_path, Duration::from_secs(10)) {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&qmp_path);
                let output: Vec<String> = console
                    .try_iter()
                    .map(|e| match e {
                        ConsoleEvent::Serial(l) | ConsoleEvent::Hypervisor(l) => l,
                    })
                    .collect();
                return Err(if output.is_empty() {
                    e.into()
                } else {
                    QemuError::EarlyExit(output.join("\n"))
                });
            }
        };
        // QEMU has opened and mapped the RAM files by the time QMP answers,
        // and the socket is no longer needed once connected; unlinking them
        // now means a killed run never leaves guest RAM or a socket behind.
        ram.unlink();
        let _ = std::fs::remove_file(&qmp_path);
        Ok(QemuVm {
            child,
            qmp,
            ram,
            qmp_path,
            window,
            accel: config.accel,
            machine: Machine::for_layout(&config.smp),
            console,
            frozen_at: None,
            status: None,
            cmdline,
        })
    }

    /// Where the transport window is in guest-physical memory.
    pub fn window_location(&self) -> Window {
        self.window
    }

    /// QEMU's exit status once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
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
        window_of(&self.ram.map, self.window).expect("window checked at launch")
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
        self.try_wait().is_some()
    }

    /// QEMU exits 0 on a guest reset or triple fault alike (`-no-reboot`);
    /// its own errors are in the console lines it printed.
    fn exit_reason(&mut self) -> Option<String> {
        self.status.map(|s| format!("QEMU exited ({s})"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = self.status.or(self.child.wait().ok());
    }

    fn kernel_cmdline(&self) -> Option<&str> {
        Some(&self.cmdline)
    }

    fn describe(&self) -> trace_format::meta::Backend {
        trace_format::meta::Backend::Qemu {
            accel: self.accel.name().to_string(),
        }
    }

    /// TCG, or the kind of the /dev/kvm QEMU runs on.
    fn acceleration(&self) -> Option<trace_format::meta::Acceleration> {
        match self.accel {
            Accel::Tcg => Some(trace_format::meta::Acceleration::Tcg),
            Accel::Kvm => crate::kvm::kind().ok().map(|p| p.kind.acceleration()),
        }
    }

    fn guest_memory(&self) -> Option<GuestMemory> {
        let size = u64::try_from(self.ram.map.len()).ok()?;
        GuestMemory::from_mmap(Arc::clone(&self.ram.map), self.machine.ram_regions(size))
    }

    fn cr3(&mut self, cpu: u32) -> Result<u64, BackendError> {
        let text = self
            .qmp
            .execute(
                "human-monitor-command",
                Some(serde_json::json!({ "command-line": "info registers -a" })),
            )
            .map_err(|e| BackendError(e.to_string()))?;
        let text = text.as_str().unwrap_or_default();
        cr3_of(text, cpu)
            .ok_or_else(|| BackendError(format!("no CR3 for vCPU {cpu} in QEMU's register dump")))
    }
}

/// CR3 of `cpu` from HMP's `info registers -a` output.
fn cr3_of(dump: &str, cpu: u32) -> Option<u64> {
    let header = format!("CPU#{cpu}");
    let block = if dump.contains("CPU#") {
        let start = dump.find(&header)?;
        let rest = &dump[start + header.len()..];
        &rest[..rest.find("CPU#").unwrap_or(rest.len())]
    } else if cpu == 0 {
        dump
    } else {
        return None;
    };
    let at = block.find("CR3=")? + 4;
    let hex: String = block[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&hex, 16).ok()
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.qmp_path);
    }
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
        // A line longer than the cap arrives in pieces (see console::MAX_LINE).
        let limit = crate::console::MAX_LINE as u64;
        match std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut buf) {
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
        .map(drop);
    match (kvm, crate::kvm::kind()) {
        (Ok(()), Ok(p)) if p.kind.hardware_backed() => (Accel::Kvm, format!("{p}")),
        (Ok(()), Ok(p)) => (Accel::Tcg, format!("/dev/kvm is {p}: using TCG")),
        (Ok(()), Err(why)) => (Accel::Tcg, format!("{why}: using TCG")),
        (Err(e), _) => (
            Accel::Tcg,
            format!("/dev/kvm is not usable ({e}): using TCG"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_layouts_split_below_4g() {
        for m in [Machine::Microvm, Machine::Pc] {
            assert_eq!(m.ram_regions(512 << 20).len(), 1);
            let r = m.ram_regions(4 << 30);
            assert_eq!(r[0].len, 0xc000_0000);
            assert_eq!(
                (r[1].gpa, r[1].len, r[1].offset),
                (1 << 32, 1 << 30, 0xc000_0000)
            );
        }
        let r = Machine::Microvm.ram_regions(3328 << 20);
        assert_eq!(
            (r[0].len, r[1].gpa, r[1].len),
            (0xc000_0000, 1 << 32, 256 << 20)
        );
        assert_eq!(Machine::Pc.ram_regions(3328 << 20).len(), 1);
    }

    #[test]
    fn microvm_unless_the_layout_has_dies_or_nodes() {
        let smp = |sockets, dies| SmpLayout {
            sockets,
            dies,
            cores: 2,
            threads: 2,
        };
        assert_eq!(Machine::for_layout(&smp(1, 1)), Machine::Microvm);
        assert_eq!(Machine::for_layout(&smp(1, 2)), Machine::Pc);
        assert_eq!(Machine::for_layout(&smp(2, 1)), Machine::Pc);
    }

    #[test]
    fn cr3_from_register_dump() {
        let dump = "CPU#0\nRAX=0\nCR0=80050033 CR2=0 CR3=0000000002a0c000 CR4=00350ef0\n\
                    CPU#1\nCR0=80050033 CR2=0 CR3=0000000004b0d000 CR4=00350ef0\n";
        assert_eq!(cr3_of(dump, 0), Some(0x2a0c000));
        assert_eq!(cr3_of(dump, 1), Some(0x4b0d000));
        assert_eq!(cr3_of(dump, 2), None);
        assert_eq!(cr3_of("CR3=00000000000ff000 CR4=0", 0), Some(0xff000));
        assert_eq!(cr3_of("garbage", 0), None);
    }
}

/// A launch configuration for unit tests (nothing here is started).
#[cfg(test)]
fn test_config(accel: Accel, kernel_hz: Option<u32>) -> QemuConfig {
    QemuConfig {
        binary: PathBuf::from("/nonexistent/bin/qemu-system-x86_64"),
        kernel: PathBuf::from("vmlinux"),
        initrd: PathBuf::from("initrd.cpio"),
        cmdline: "quiet".into(),
        smp: SmpLayout {
            sockets: 1,
            dies: 1,
            cores: 2,
            threads: 1,
        },
        memory_mib: 512,
        accel,
        runtime_dir: PathBuf::from("/tmp"),
        kernel_hz,
        lapic_timer_hz_param: true,
    }
}

#[cfg(test)]
mod launch_tests {
    use super::*;

    #[test]
    fn window_stays_below_a_large_initrd() {
        let mem = 512 << 20;
        assert_eq!(
            window_for(mem, 300 << 10).unwrap().gpa,
            mem - TOP_GAP - WINDOW_SIZE
        );
        let big = 33_750_196;
        let w = window_for(mem, big).unwrap();
        assert!(w.gpa + w.size <= mem - big - (128 << 10));
        assert!(window_for(64 << 20, 60 << 20).is_none());
    }
}
