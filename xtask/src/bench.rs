//! `cargo xtask bench …`: measurements the issues ask for.
//!
//! `bench boot` times QEMU from spawn to the guest executor's first console
//! line, for our launch path (the run command's [`QemuConfig`] through
//! [`QemuVm::launch`]) and for plain `qemu-system-x86_64` defaults, with the
//! same kernel and initramfs, interleaved round by round so that load on the
//! host hits every side alike.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use trace_format::scenario::Scenario;
use vmm::backend::{ConsoleEvent, Vm};
use vmm::introspect;
use vmm::qemu::{
    Accel, BootTuning, Machine, QemuConfig, QemuVm, detect_accel, takes_lapic_timer_hz,
};

use crate::kernel::{BuildOpts, KernelImage, ResolveOpts, resolve};
use crate::run_checks::kernel_hz;
use crate::scenario_pack::pack_initramfs;
use crate::scenario_run::{boot_plan, runtime_dir, smp_layout};
use crate::{guest, workspace_root};

/// What the executor prints first, on the console, when it has no ring: its Hello.
const FIRST_LINE: &str = "schedtape-init:";
const QEMU: &str = "qemu-system-x86_64";

/// Which of our boot paths to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ours {
    /// The vmlinux through PVH (`run scenario --no-kaslr`).
    Pvh,
    /// The bzImage with KASLR (`run scenario` by default).
    Bzimage,
    /// Both, each against the peer.
    Both,
}

/// Options of `bench boot`.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// Timed rounds; each boots every side once, in turn (after one untimed warm-up round).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Our boot paths to time against the peer.
    #[arg(long, value_enum, default_value_t = Ours::Both)]
    pub ours: Ours,
    /// Scenario packed into the initramfs with the executor (it is stopped at its first line).
    #[arg(long, default_value = "smoke")]
    pub scenario: String,
    /// Kernel: a bzImage, a vmlinux, or a directory holding them (default: the cached build).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB, both sides (64..=65536, at most the host's RAM).
    #[arg(long, default_value_t = 512, value_parser = crate::limits::memory_mib)]
    pub memory: u64,
    /// Seconds one boot may take.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// One way of booting the guest.
enum Side {
    Ours {
        tag: &'static str,
        label: String,
        config: QemuConfig,
    },
    Peer {
        label: String,
        args: Vec<String>,
    },
}

impl Side {
    fn label(&self) -> &str {
        match self {
            Side::Ours { label, .. } | Side::Peer { label, .. } => label,
        }
    }

    /// A short name for progress lines.
    fn tag(&self) -> &'static str {
        match self {
            Side::Ours { tag, .. } => tag,
            Side::Peer { .. } => "peer",
        }
    }

    /// Boots once; the time from spawn to the executor's first console line.
    fn time_to_init(&self, timeout: Duration) -> Result<Duration> {
        match self {
            Side::Ours { config, .. } => time_ours(config, timeout),
            Side::Peer { args, .. } => time_peer(args, timeout),
        }
    }
}

/// Runs `bench boot` and prints its table.
pub fn boot(args: &BootArgs) -> Result<ExitCode> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let root = workspace_root();
    let opts = ResolveOpts {
        kernel: args.kernel.clone(),
        build: BuildOpts::default(),
        build_if_missing: true,
    };
    crate::prereq::for_tools(true, &opts).ensure()?;
    let (accel, why) = detect_accel();
    let kernel = resolve(&opts)?;
    let scenario = load_scenario(&root, &args.scenario)?;
    let init = guest::build(&root)?;
    let packed = pack_initramfs(&root, &init, &scenario)?;
    let initrd = packed.path.as_path();
    let sides = sides(args, &kernel, &scenario, initrd, accel)?;
    let timeout = Duration::from_secs(args.timeout);

    print_header(args, &kernel, &scenario, initrd, accel, &why, &sides)?;
    eprintln!("warm-up round (not counted)…");
    for side in &sides {
        side.time_to_init(timeout)
            .with_context(|| format!("warm-up boot of {}", side.label()))?;
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for round in 1..=args.rounds {
        let mut line = format!("round {round}/{}:", args.rounds);
        for (side, t) in sides.iter().zip(&mut times) {
            let d = side
                .time_to_init(timeout)
                .with_context(|| format!("round {round}, {}", side.label()))?;
            t.push(d.as_secs_f64());
            line.push_str(&format!("  {} {:.3}s", side.tag(), d.as_secs_f64()));
        }
        eprintln!("{line}");
    }
    print_table(&sides, &times);
    println!("host load average after: {}", load_average());
    Ok(ExitCode::SUCCESS)
}

/// Our sides (deduplicated: a kernel without a bzImage has one path) and the peer.
fn sides(
    args: &BootArgs,
    kernel: &KernelImage,
    scenario: &Scenario,
    initrd: &Path,
    accel: Accel,
) -> Result<Vec<Side>> {
    let bzimage = kernel
        .bzimage
        .clone()
        .ok_or_else(|| anyhow!("the peer boots a bzImage, and the kernel has none beside it"))?;
    let kaslr = match args.ours {
        Ours::Pvh => vec![false],
        Ours::Bzimage => vec![true],
        Ours::Both => vec![false, true],
    };
    // The layout is cached per build-id, so this costs little after the first run.
    let lapic_timer_hz_param = kernel
        .vmlinux
        .as_deref()
        .and_then(|v| introspect::load(v, introspect::cache::default_dir().as_deref()).ok())
        .is_some_and(|r| takes_lapic_timer_hz(&r.layout));
    let mut sides: Vec<Side> = Vec::new();
    for kaslr in kaslr {
        let plan = boot_plan(kernel, kaslr);
        let config = QemuConfig {
            binary: PathBuf::from(QEMU),
            kernel: plan.image.clone(),
            initrd: initrd.to_path_buf(),
            cmdline: plan.cmdline.clone(),
            smp: smp_layout(scenario.topology),
            memory_mib: args.memory,
            accel,
            runtime_dir: runtime_dir(),
            kernel_hz: kernel_hz(kernel),
            lapic_timer_hz_param,
        };
        let dup = sides.iter().any(|s| match s {
            Side::Ours { config: c, .. } => {
                c.kernel == config.kernel && c.cmdline == config.cmdline
            }
            Side::Peer { .. } => false,
        });
        if !dup {
            let image = plan
                .image
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let (tag, how) = if plan.cmdline.split(' ').any(|a| a == "nokaslr") {
                ("nokaslr", "nokaslr")
            } else {
                ("kaslr", "KASLR")
            };
            let via = if kernel.pvh && Some(&plan.image) == kernel.pvh_image.as_ref() {
                " via PVH"
            } else {
                ""
            };
            let label = format!("ours: {image}{via}, {how}");
            sides.push(Side::Ours { tag, label, config });
        }
    }
    let peer_args = peer_args(
        &bzimage,
        initrd,
        args.memory,
        scenario.topology.cpus(),
        accel,
    );
    sides.push(Side::Peer {
        label: "peer: plain qemu -kernel bzImage -initrd".to_string(),
        args: peer_args,
    });
    Ok(sides)
}

/// Plain QEMU: default machine, devices and firmware (SeaBIOS), bzImage.
fn peer_args(bzimage: &Path, initrd: &Path, memory: u64, cpus: u32, accel: Accel) -> Vec<String> {
    [
        "-kernel",
        &bzimage.display().to_string(),
        "-initrd",
        &initrd.display().to_string(),
        "-append",
        "console=ttyS0",
        "-nographic",
        "-m",
        &memory.to_string(),
        "-smp",
        &cpus.to_string(),
        "-accel",
        accel.name(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Our launch path, left without a ring (the window stays blank) so that the
/// executor prints its Hello on the console as it does for the peer.
fn time_ours(config: &QemuConfig, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut vm = QemuVm::launch(config, |_| {}).context("cannot launch QEMU")?;
    let mut events = Vec::new();
    let mut tail = Vec::new();
    loop {
        events.clear();
        vm.poll_console(&mut events);
        for event in events.drain(..) {
            let (ConsoleEvent::Serial(line) | ConsoleEvent::Hypervisor(line)) = event;
            if line.contains(FIRST_LINE) {
                let at = start.elapsed();
                vm.kill();
                return Ok(at);
            }
            keep_tail(&mut tail, line);
        }
        if vm.has_exited() || start.elapsed() > timeout {
            vm.kill();
            return Err(no_init(start.elapsed(), &tail));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The peer, with the same console detection (lines polled every millisecond).
fn time_peer(args: &[String], timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut cmd = Command::new(QEMU);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = vmm::child::spawn_tied(cmd).with_context(|| format!("cannot start {QEMU}"))?;
    let lines = read_lines(&mut child);
    let mut tail = Vec::new();
    let result = 'wait: loop {
        for line in lines.try_iter() {
            if line.contains(FIRST_LINE) {
                break 'wait Ok(start.elapsed());
            }
            keep_tail(&mut tail, line);
        }
        if child.try_wait().ok().flatten().is_some() || start.elapsed() > timeout {
            break Err(no_init(start.elapsed(), &tail));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Lines from the child's stdout and stderr, as they arrive.
pub(crate) fn read_lines(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out: Option<Box<dyn Read + Send>> = child.stdout.take().map(|s| Box::new(s) as _);
    let err: Option<Box<dyn Read + Send>> = child.stderr.take().map(|s| Box::new(s) as _);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                buf.clear();
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

fn keep_tail(tail: &mut Vec<String>, line: String) {
    if tail.len() == 20 {
        tail.remove(0);
    }
    tail.push(line);
}

fn no_init(after: Duration, tail: &[String]) -> anyhow::Error {
    anyhow!(
        "no line from /init after {:.1}s; console tail:\n  | {}",
        after.as_secs_f64(),
        tail.join("\n  | ")
    )
}

fn load_scenario(root: &Path, name: &str) -> Result<Scenario> {
    let as_path = PathBuf::from(name);
    let path = if as_path.extension().is_some() || as_path.components().count() > 1 {
        as_path
    } else {
        root.join("fixtures/scenarios").join(format!("{name}.toml"))
    };
    let scenario = Scenario::load(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    scenario
        .validate()
        .map_err(|e| anyhow!("scenario {} is invalid: {e}", path.display()))?;
    Ok(scenario)
}

fn print_header(
    args: &BootArgs,
    kernel: &KernelImage,
    scenario: &Scenario,
    initrd: &Path,
    accel: Accel,
    why: &str,
    sides: &[Side],
) -> Result<()> {
    let release = crate::identity::of(kernel).release;
    let images: Vec<String> = [&kernel.vmlinux, &kernel.bzimage]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    let initrd_kb = std::fs::metadata(initrd).map_or(0, |m| m.len() / 1024);
    println!(
        "bench boot: spawn to the executor's first console line; {} interleaved rounds after one warm-up",
        args.rounds
    );
    println!(
        "kernel:  {} ({})",
        if release.is_empty() {
            "unknown release"
        } else {
            &release
        },
        images.join(", ")
    );
    println!("qemu:    {}", qemu_version()?);
    println!(
        "guest:   {} vCPUs, {} MiB, accel {} ({why}); initramfs {} ({initrd_kb} KiB, scenario {})",
        scenario.topology.cpus(),
        args.memory,
        accel.name(),
        initrd.display(),
        scenario.name
    );
    println!("host:    load average before: {}", load_average());
    for side in sides {
        match side {
            Side::Ours { label, config, .. } => {
                let t = BootTuning::for_config(config);
                let bios = t.bios.as_ref().map_or_else(
                    || "SeaBIOS (no qboot.rom)".to_string(),
                    |b| b.display().to_string(),
                );
                println!(
                    "{label}: -M {} -nodefaults -bios {bios}; kernel args +\"{} {}\"",
                    Machine::for_layout(&config.smp).name(),
                    t.cmdline(),
                    config.cmdline
                );
            }
            Side::Peer { label, args } => println!("{label}: {QEMU} {}", args.join(" ")),
        }
    }
    println!();
    Ok(())
}

fn print_table(sides: &[Side], times: &[Vec<f64>]) {
    let width = sides.iter().map(|s| s.label().len()).max().unwrap_or(4);
    println!();
    println!(
        "{:width$}  {:>8}  {:>8}  {:>8}",
        "side", "median", "p10", "p90"
    );
    let mut medians = Vec::new();
    for (side, t) in sides.iter().zip(times) {
        let (m, lo, hi) = (
            percentile(t, 50.0),
            percentile(t, 10.0),
            percentile(t, 90.0),
        );
        medians.push(m);
        println!(
            "{:width$}  {:>7.3}s  {:>7.3}s  {:>7.3}s",
            side.label(),
            m,
            lo,
            hi
        );
    }
    let (Some((&peer, ours)), Some((peer_times, our_times))) =
        (medians.split_last(), times.split_last())
    else {
        return;
    };
    println!();
    for ((side, m), t) in sides.iter().zip(ours).zip(our_times) {
        let ratio = peer / m;
        println!(
            "peer / {} (medians): {ratio:.2}x  (goal >= 2x: {})",
            side.label(),
            if ratio >= 2.0 { "met" } else { "not met" }
        );
        // Each round boots both sides back to back, so load that drifts over
        // the run shows less in the ratio within a round.
        let rounds = per_round_ratios(peer_times, t);
        println!(
            "  per round: median {:.2}x, p10 {:.2}x, p90 {:.2}x",
            percentile(&rounds, 50.0),
            percentile(&rounds, 10.0),
            percentile(&rounds, 90.0)
        );
    }
}

/// The peer's time over ours, round by round.
fn per_round_ratios(peer: &[f64], ours: &[f64]) -> Vec<f64> {
    peer.iter().zip(ours).map(|(p, o)| p / o).collect()
}

/// The `p`th percentile (0–100) of `values`, interpolating between order statistics.
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let frac = rank.fract();
            // The lower order statistic: the last index not above `rank` (0..=n-1).
            let lo = (0..n).rev().find(|&i| i as f64 <= rank).unwrap_or(0);
            let hi = (lo + 1).min(n - 1);
            v[lo] + (v[hi] - v[lo]) * frac
        }
    }
}

fn qemu_version() -> Result<String> {
    let out = Command::new(QEMU)
        .arg("--version")
        .output()
        .with_context(|| {
            format!("cannot run {QEMU} (install it with `apt-get install qemu-system-x86`)")
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("unknown")
        .to_string())
}

/// The host's 1, 5 and 15 minute load averages, for bench headers.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_each_round() {
        assert_eq!(per_round_ratios(&[2.0, 3.0], &[1.0, 2.0]), [2.0, 1.5]);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert!((percentile(&v, 10.0) - 1.4).abs() < 1e-9);
        assert!((percentile(&[1.0, 2.0], 50.0) - 1.5).abs() < 1e-9);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn peer_uses_plain_defaults() {
        let args = peer_args(
            Path::new("/k/bzImage"),
            Path::new("/i.cpio"),
            512,
            2,
            Accel::Tcg,
        );
        assert_eq!(
            args.join(" "),
            "-kernel /k/bzImage -initrd /i.cpio -append console=ttyS0 -nographic -m 512 -smp 2 -accel tcg"
        );
    }
}
