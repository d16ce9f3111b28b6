//! `cargo xtask bench vmm`: our KVM VMM against `qemu-system-x86_64 -M microvm`
//! with the same tiny test guest (fixtures/testguest, which both boot through
//! its PVH note).
//!
//! - Start-up: each VMM is a process of its own (ours: the `kvm-testguest-run`
//!   binary; QEMU with `isa-debug-exit` on the boot-timer port), which exits at
//!   the guest's first port write; we time spawn → exit and read the child's
//!   CPU time from `wait4`. Rounds interleave the two, alternating which goes
//!   first, so host load hits both alike.
//! - Peak RSS is each process's own `VmHWM` (`wait4`'s `ru_maxrss` would
//!   include our RSS, inherited across the child's `exec`): ours reports it at
//!   the port write; QEMU's is read from /proc once the guest's first console
//!   line arrives (a few hundred guest instructions later).
//! - Freeze: rendezvous latency of our `freeze()` (kick → last vCPU parked) and
//!   the whole freeze/thaw calls, for 1, 2 and 8 vCPUs, against QMP `stop` and
//!   `cont` round trips on QEMU with the same guest and vCPU count.
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use trace_format::scenario::Topology;
use vmm::backend::Vm;
use vmm::kvm::{KvmConfig, KvmVm};
use vmm::qemu::qmp::Qmp;

use crate::workspace_root;

/// The boot-timer port the test guest writes first.
const BOOT_TIMER_PORT: u16 = 0x440;
/// QEMU's exit status when the guest writes 1 to `isa-debug-exit`: (1 << 1) | 1.
const QEMU_DEBUG_EXIT_STATUS: i32 = 3;
/// Firecracker's published start-up bar (CPU time) and memory overhead bar.
const FC_START_CPU_MS: f64 = 8.0;
const FC_OVERHEAD_MIB: f64 = 5.0;

/// How QEMU runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QemuAccel {
    /// KVM when QEMU can run the test guest on /dev/kvm, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// Options of `bench vmm`.
#[derive(Debug, Args)]
pub struct VmmArgs {
    /// Timed start-up rounds; each starts both VMMs once (after one untimed warm-up round).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Freeze/thaw cycles per vCPU count and VMM.
    #[arg(long, default_value_t = 200)]
    pub freezes: usize,
    /// vCPU counts for the freeze comparison.
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    pub cpus: Vec<u16>,
    /// Guest memory in MiB, both VMMs.
    #[arg(long, default_value_t = 64)]
    pub memory: u64,
    #[arg(long, value_enum, default_value_t = QemuAccel::Auto)]
    pub qemu_accel: QemuAccel,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
}

/// One start-up: spawn → exit and the child's CPU time, plus what our
/// runner reports (main → port write, peak RSS).
#[derive(Debug, Clone, Copy)]
struct Start {
    wall: Duration,
    cpu: Duration,
    internal: Option<Duration>,
    rss_kib: Option<u64>,
}

/// QEMU launches whose peak RSS is read.
const QEMU_RSS_SAMPLES: usize = 3;

/// Runs `bench vmm` and prints its tables.
pub fn run(args: &VmmArgs) -> Result<ExitCode> {
    if args.rounds == 0 || args.freezes == 0 {
        bail!("--rounds and --freezes must be at least 1");
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        bail!("/dev/kvm cannot be opened: our VMM needs it (the bench compares KVM VMMs)");
    }
    let root = workspace_root();
    if args.qemu == Path::new("qemu-system-x86_64") {
        crate::prereq::for_tools(true, &crate::kernel::ResolveOpts::default()).ensure()?;
    }
    let guest = build_test_guest(&root)?;
    let runner = build_runner(&root)?;
    let (accel, why) = qemu_accel(args, &guest)?;
    println!("bench vmm: test guest {}", guest.display());
    println!("  ours: {} (release build), KVM VMM", runner.display());
    println!(
        "  peer: {} -M microvm -accel {accel} ({why})",
        args.qemu.display()
    );
    match vmm::kvm::kind() {
        Ok(p) => println!("  /dev/kvm: {p}"),
        Err(why) => println!("  /dev/kvm: {why}"),
    }
    println!(
        "  host: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::bench::load_average()
    );

    let ours = |_: ()| -> Result<Start> {
        let mut cmd = Command::new(&runner);
        cmd.arg(&guest).arg("1").arg(args.memory.to_string());
        let (mut start, out) = measure(cmd, |s| s.code() == Some(0))?;
        (start.internal, start.rss_kib) = parse_runner(&out)
            .ok_or_else(|| anyhow!("unexpected output from kvm-testguest-run: {out:?}"))?;
        Ok(start)
    };
    let peer = |_: ()| -> Result<Start> {
        let mut cmd = Command::new(&args.qemu);
        cmd.args(qemu_args(&guest, accel, args.memory, 1, None))
            .args([
                "-device",
                &format!("isa-debug-exit,iobase={BOOT_TIMER_PORT:#x},iosize=4"),
            ]);
        measure(cmd, |s| s.code() == Some(QEMU_DEBUG_EXIT_STATUS)).map(|r| r.0)
    };
    eprintln!("warm-up round (not counted)…");
    ours(()).context("warm-up start of our VMM")?;
    peer(()).context("warm-up start of QEMU")?;
    let mut ours_starts = Vec::new();
    let mut peer_starts = Vec::new();
    for round in 0..args.rounds {
        // Alternate which goes first so neither always runs on a warmer host.
        if round % 2 == 0 {
            ours_starts.push(ours(())?);
            peer_starts.push(peer(())?);
        } else {
            peer_starts.push(peer(())?);
            ours_starts.push(ours(())?);
        }
        eprintln!(
            "round {}/{}: ours {:.1} ms, qemu {:.1} ms",
            round + 1,
            args.rounds,
            ms(ours_starts[round].wall),
            ms(peer_starts[round].wall)
        );
    }
    let mut qemu_rss = Vec::new();
    for _ in 0..QEMU_RSS_SAMPLES {
        qemu_rss.push(qemu_peak_rss(&guest, accel, args)?);
    }
    print_startup(args, accel, &ours_starts, &peer_starts, &qemu_rss);

    let syms = guest_syms(&guest)?;
    let mut rows = Vec::new();
    for &cpus in &args.cpus {
        eprintln!("freeze cycles with {cpus} vCPUs…");
        let ours = freeze_ours(&guest, syms, cpus, args)
            .with_context(|| format!("freezing our VMM with {cpus} vCPUs"))?;
        let peer = freeze_qemu(&guest, accel, cpus, args)
            .with_context(|| format!("QMP stop/cont with {cpus} vCPUs"))?;
        rows.push((cpus, ours, peer));
    }
    print_freeze(args, accel, &rows);
    println!("host load average after: {}", crate::bench::load_average());
    Ok(ExitCode::SUCCESS)
}

/// Builds fixtures/testguest (with its PVH note) under target/schedtape.
fn build_test_guest(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/schedtape");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join("testguest.elf");
    let status = Command::new("sh")
        .arg(root.join("fixtures/testguest/build.sh"))
        .arg(&out)
        .status()
        .context("cannot run fixtures/testguest/build.sh")?;
    if !status.success() {
        bail!("building the test guest failed (it needs cc and ld)");
    }
    Ok(out)
}

/// Builds the stand-alone VMM runner in release mode.
fn build_runner(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-q",
            "--release",
            "-p",
            "vmm",
            "--bin",
            "kvm-testguest-run",
        ])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cannot build the kvm-testguest-run binary");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release/kvm-testguest-run"))
}

/// QEMU's arguments for the test guest; `qmp` adds a QMP socket.
fn qemu_args(guest: &Path, accel: &str, memory: u64, cpus: u16, qmp: Option<&Path>) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "microvm",
        "-accel",
        accel,
        "-m",
        &format!("{memory}M"),
        "-smp",
        &cpus.to_string(),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        &guest.display().to_string(),
        "-append",
        &format!("ncpus={cpus}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(q) = qmp {
        a.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", q.display()),
        ]);
    }
    a
}

/// The accelerator for QEMU and why: `auto` tries one KVM start first.
fn qemu_accel(args: &VmmArgs, guest: &Path) -> Result<(&'static str, String)> {
    match args.qemu_accel {
        QemuAccel::Kvm => Ok(("kvm", "asked for".into())),
        QemuAccel::Tcg => Ok(("tcg", "asked for".into())),
        QemuAccel::Auto => {
            let mut cmd = Command::new(&args.qemu);
            cmd.args(qemu_args(guest, "kvm", args.memory, 1, None))
                .args([
                    "-device",
                    &format!("isa-debug-exit,iobase={BOOT_TIMER_PORT:#x},iosize=4"),
                ]);
            match measure(cmd, |s| s.code() == Some(QEMU_DEBUG_EXIT_STATUS)) {
                Ok(_) => Ok((
                    "kvm",
                    "QEMU runs the test guest on /dev/kvm here, like our VMM".into(),
                )),
                Err(e) => Ok(("tcg", format!("QEMU cannot use /dev/kvm here ({e:#}): TCG"))),
            }
        }
    }
}

/// `(main → port write, peak RSS KiB)` from the runner's line.
fn parse_runner(out: &str) -> Option<(Option<Duration>, Option<u64>)> {
    let rest = out.trim().strip_prefix("boot-mark ")?;
    let ns = rest
        .split(" after ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let rss = rest
        .split("peak RSS ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|k| k.parse().ok());
    Some((Some(Duration::from_nanos(ns)), rss))
}

/// Spawns `cmd` and reaps it with `wait4`; returns the measurement and stdout.
fn measure(
    mut cmd: Command,
    ok: impl Fn(std::process::ExitStatus) -> bool,
) -> Result<(Start, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let program = cmd.get_program().to_owned();
    let start = Instant::now();
    let mut child =
        vmm::child::spawn_tied(cmd).with_context(|| format!("cannot start {program:?}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unreaped child; both pointers are valid for writes.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let status = std::process::ExitStatus::from_raw(status);
    let mut out = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        // The child has exited: this reads what it left in the pipe.
        let _ = std::io::Read::read_to_string(&mut pipe, &mut out);
    }
    if !ok(status) {
        bail!("{program:?} ended with {status}");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    let start = Start {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        internal: None,
        rss_kib: None,
    };
    Ok((start, out))
}

/// QEMU's `VmHWM` (KiB) once the guest's first console line has arrived.
fn qemu_peak_rss(guest: &Path, accel: &str, args: &VmmArgs) -> Result<u64> {
    let mut cmd = Command::new(&args.qemu);
    cmd.args(qemu_args(guest, accel, args.memory, 1, None))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = vmm::child::spawn_tied(cmd)
        .with_context(|| format!("cannot start {}", args.qemu.display()))?;
    let result = (|| {
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading QEMU's console")?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM for QEMU"))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Addresses of `guest_ctl` in the test guest (identity mapped: gpa = address).
#[derive(Debug, Clone, Copy)]
struct GuestSyms {
    guest_ctl: u64,
}

fn guest_syms(guest: &Path) -> Result<GuestSyms> {
    let bytes = std::fs::read(guest).with_context(|| format!("cannot read {}", guest.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes).context("cannot parse the test guest")?;
    let find = |name: &str| {
        elf.syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
            .map(|s| s.st_value)
            .ok_or_else(|| anyhow!("the test guest has no symbol {name}"))
    };
    Ok(GuestSyms {
        guest_ctl: find("guest_ctl")?,
    })
}

/// Latencies of one VMM's freeze cycles.
#[derive(Debug, Default)]
struct Freezes {
    /// Ours only: kick → last vCPU parked, as `freeze()` reports it.
    rendezvous: Vec<Duration>,
    /// The whole stop call (ours: `freeze()`, QEMU: QMP `stop`).
    stop: Vec<Duration>,
    /// The whole resume call (ours: `thaw()`, QEMU: QMP `cont`).
    resume: Vec<Duration>,
}

/// Pause between cycles so that the guest runs in between.
const BETWEEN: Duration = Duration::from_millis(1);

fn freeze_ours(guest: &Path, syms: GuestSyms, cpus: u16, args: &VmmArgs) -> Result<Freezes> {
    let config = KvmConfig {
        kernel: guest.to_path_buf(),
        initrd: None,
        cmdline: format!("ncpus={cpus}"),
        topology: Topology::new(1, 1, cpus, 1),
        memory_mib: args.memory,
        stop_at_boot_mark: false,
    };
    let mut vm = KvmVm::launch(&config, |_| {}).map_err(|e| anyhow!("{e}"))?;
    let mem = vm
        .guest_memory()
        .ok_or_else(|| anyhow!("no guest memory"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while mem.read_uint(syms.guest_ctl + 4, 4).unwrap_or(0) < u64::from(cpus) {
        if Instant::now() > deadline || vm.exit_status().is_some() {
            bail!(
                "only {} of {cpus} vCPUs came up (exit {:?})",
                mem.read_uint(syms.guest_ctl + 4, 4).unwrap_or(0),
                vm.exit_status()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut f = Freezes::default();
    for _ in 0..args.freezes {
        let t = Instant::now();
        let rendezvous = vm.freeze().map_err(|e| anyhow!("freeze: {e}"))?;
        f.stop.push(t.elapsed());
        f.rendezvous.push(rendezvous);
        let t = Instant::now();
        vm.thaw().map_err(|e| anyhow!("thaw: {e}"))?;
        f.resume.push(t.elapsed());
        std::thread::sleep(BETWEEN);
    }
    vm.kill();
    Ok(f)
}

fn freeze_qemu(guest: &Path, accel: &str, cpus: u16, args: &VmmArgs) -> Result<Freezes> {
    let qmp_path = std::env::temp_dir().join(format!(
        "schedtape-bench-vmm-{}-{cpus}.qmp",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&qmp_path);
    let mut cmd = Command::new(&args.qemu);
    cmd.args(qemu_args(guest, accel, args.memory, cpus, Some(&qmp_path)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = vmm::child::spawn_tied(cmd)
        .with_context(|| format!("cannot start {}", args.qemu.display()))?;
    let result = (|| {
        // The guest prints one "cpu N up apic M" line per vCPU.
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut up = 0;
        while up < cpus {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .map_err(|_| anyhow!("only {up} of {cpus} vCPUs came up under QEMU"))?;
            if line.contains(" up apic ") {
                up += 1;
            }
        }
        let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(10))?;
        let mut f = Freezes::default();
        for _ in 0..args.freezes {
            let t = Instant::now();
            qmp.execute("stop", None)?;
            f.stop.push(t.elapsed());
            let t = Instant::now();
            qmp.execute("cont", None)?;
            f.resume.push(t.elapsed());
            std::thread::sleep(BETWEEN);
        }
        Ok(f)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&qmp_path);
    result
}

/// The `p`th percentile (0..=100) of `values`, nearest rank.
fn pct(values: &[Duration], p: usize) -> Duration {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get((v.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

fn print_startup(args: &VmmArgs, accel: &str, ours: &[Start], peer: &[Start], qemu_rss: &[u64]) {
    let wall = |s: &[Start], p| pct(&s.iter().map(|x| x.wall).collect::<Vec<_>>(), p);
    let cpu = |s: &[Start], p| pct(&s.iter().map(|x| x.cpu).collect::<Vec<_>>(), p);
    let median_mib = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2)
            .map_or(0.0, |&k| k as f64 / 1024.0)
    };
    println!();
    println!(
        "start-up: spawn → exit at the guest's first port write; {} rounds, interleaved; {} MiB, 1 vCPU",
        args.rounds, args.memory
    );
    println!(
        "{:<26} {:>16} {:>22} {:>12}",
        "",
        "ours (KVM VMM)",
        format!("qemu microvm ({accel})"),
        "ours/qemu"
    );
    for (label, p) in [("wall p50 (ms)", 50), ("wall p90 (ms)", 90)] {
        let (a, b) = (ms(wall(ours, p)), ms(wall(peer, p)));
        println!("{label:<26} {a:>16.2} {b:>22.2} {:>12}", ratio(a, b));
    }
    for (label, p) in [("CPU user+sys p50 (ms)", 50), ("CPU user+sys p90 (ms)", 90)] {
        let (a, b) = (ms(cpu(ours, p)), ms(cpu(peer, p)));
        println!("{label:<26} {a:>16.2} {b:>22.2} {:>12}", ratio(a, b));
    }
    let a = median_mib(ours.iter().filter_map(|s| s.rss_kib).collect());
    let b = median_mib(qemu_rss.to_vec());
    println!(
        "{:<26} {a:>16.2} {b:>22.2} {:>12}",
        "peak RSS p50 (MiB)",
        ratio(a, b)
    );
    let internal: Vec<Duration> = ours.iter().filter_map(|s| s.internal).collect();
    println!(
        "ours, main() → port write (inside the runner): p50 {:.2} ms, p90 {:.2} ms",
        ms(pct(&internal, 50)),
        ms(pct(&internal, 90))
    );
    let cpu50 = ms(cpu(ours, 50));
    println!(
        "Firecracker's bar: ≤ {FC_START_CPU_MS} CPU ms to start, ≤ {FC_OVERHEAD_MIB} MiB overhead → ours: {cpu50:.2} CPU ms ({}), {a:.2} MiB peak RSS with the guest's touched pages ({})",
        if cpu50 <= FC_START_CPU_MS {
            "within"
        } else {
            "over"
        },
        if a <= FC_OVERHEAD_MIB {
            "within"
        } else {
            "over"
        },
    );
}

fn print_freeze(args: &VmmArgs, accel: &str, rows: &[(u16, Freezes, Freezes)]) {
    println!();
    println!(
        "freeze: {} cycles per row (p50 / p99, µs); ours: freeze() = kick → last vCPU parked + KVM_GET_CLOCK, thaw() = KVM_SET_CLOCK + wake; qemu ({accel}): QMP stop / cont round trips",
        args.freezes
    );
    println!(
        "{:>5} {:>20} {:>20} {:>20} {:>20} {:>20} {:>14}",
        "vCPUs",
        "ours rendezvous",
        "ours freeze()",
        "ours thaw()",
        "QMP stop",
        "QMP cont",
        "stop p50 ratio"
    );
    let pair = |v: &[Duration]| format!("{:.0} / {:.0}", us(pct(v, 50)), us(pct(v, 99)));
    for (cpus, ours, peer) in rows {
        println!(
            "{cpus:>5} {:>20} {:>20} {:>20} {:>20} {:>20} {:>14}",
            pair(&ours.rendezvous),
            pair(&ours.stop),
            pair(&ours.resume),
            pair(&peer.stop),
            pair(&peer.resume),
            ratio(us(pct(&ours.stop, 50)), us(pct(&peer.stop, 50)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(pct(&v, 50), Duration::from_micros(50));
        assert_eq!(pct(&v, 99), Duration::from_micros(99));
        assert_eq!(pct(&[], 50), Duration::ZERO);
    }

    #[test]
    fn runner_line_parses() {
        let (t, rss) = parse_runner("boot-mark 1 after 5991471 ns, peak RSS 2444 KiB\n").unwrap();
        assert_eq!(t, Some(Duration::from_nanos(5_991_471)));
        assert_eq!(rss, Some(2444));
        assert!(parse_runner("garbage").is_none());
    }

    #[test]
    fn qemu_boots_the_guest_as_a_pvh_kernel_on_microvm() {
        let a = qemu_args(Path::new("/g.elf"), "tcg", 64, 2, Some(Path::new("/q")));
        let s = a.join(" ");
        assert!(s.starts_with("-M microvm -accel tcg -m 64M -smp 2"), "{s}");
        assert!(s.contains("-kernel /g.elf -append ncpus=2"), "{s}");
        assert!(s.ends_with("-qmp unix:/q,server=on,wait=off"), "{s}");
    }
}
