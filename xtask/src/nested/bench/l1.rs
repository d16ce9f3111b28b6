//! The part of `bench nested` that runs inside L1 (a hidden subcommand of the
//! staged `/xtask`): `bench nested-l1` boots L2 with our VMM (the staged
//! [`OUR_VMM`], a process of its own, so that its CPU time and RSS are its
//! own) and with QEMU in interleaved rounds and writes a [`Raw`] as JSON.
//!
//! Both VMMs are measured alike: spawn → the guest's `/init` line on the VMM's
//! stdout (QEMU: `-serial stdio`; ours: COM1 forwarded line by line, woken
//! by each line like `xtask run`), then at once `/proc/PID/task/*/stat` (the
//! vCPU threads' CPU), `stat`, `status` and `smaps` (the guest RAM's part of
//! the RSS): see [`super::procfs`].
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use vmm::linux_run::{self, BETWEEN, BUILT_PREFIX, STARTED_LINE};
use vmm::qemu::qmp::Qmp;

use super::procfs;
use super::report::{Boot, Raw, Vmm};

/// What L2's `/init` prints first (see [`super::marker_init`]).
pub const INIT_LINE: &str = "schedtape-bench: /init reached";
/// L2's kernel arguments, the same for both VMMs (ours appends its ring's).
pub const L2_CMDLINE: &str =
    "console=ttyS0 reboot=t panic=-1 quiet nokaslr no_timer_check 8250.nr_uarts=1";
/// Pause between two boots: measured, a boot right after the other VMM's
/// exit took up to 2.5x as long to reach /init (its teardown still running).
const SETTLE: Duration = Duration::from_secs(1);
/// Our VMM's own program, beside this one in L1 (see [`vmm::linux_run`]).
pub const OUR_VMM: &str = "vmm-linux-run";
/// Prefix of progress lines on L1's console (the host echoes them).
pub const PROGRESS: &str = "bench-nested:";
const QEMU: &str = "qemu-system-x86_64";

/// QEMU's machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    /// microvm, or pc when microvm does not boot L2 in L1.
    Auto,
    Microvm,
    Pc,
}

/// Options of the in-L1 driver.
#[derive(Debug, Args)]
pub struct L1Args {
    /// L2's kernel (a PVH vmlinux).
    #[arg(long)]
    pub kernel: PathBuf,
    #[arg(long)]
    pub initrd: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    pub cpus: Vec<u16>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 20)]
    pub freezes: usize,
    #[arg(long, default_value_t = 256)]
    pub memory: u64,
    #[arg(long, value_enum, default_value_t = Machine::Auto)]
    pub machine: Machine,
    /// Seconds one boot may take to reach /init.
    #[arg(long, default_value_t = 180)]
    pub boot_timeout: u64,
    /// Where the JSON goes (rewritten after every boot).
    #[arg(long)]
    pub out: PathBuf,
}

/// `(rendezvous, freeze(), thaw())` in µs from our child's line.
pub fn parse_freeze(line: &str) -> Option<(f64, f64, f64)> {
    let mut it = line.strip_prefix("freeze ")?.split(' ');
    let mut next = || -> Option<f64> { Some(it.next()?.parse::<u64>().ok()? as f64 / 1e3) };
    let v = (next()?, next()?, next()?);
    it.next().is_none().then_some(v)
}

/// CPU ticks from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// User time; Linux counts guest time in it too.
    pub user: u64,
    pub system: u64,
    pub guest: u64,
}

/// The [`Ticks`] in `/proc/PID/stat`.
pub fn parse_stat(stat: &str) -> Option<Ticks> {
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime 14, stime 15, guest_time 43.
    let at = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Ticks {
        user: at(14)?,
        system: at(15)?,
        guest: at(43)?,
    })
}

/// Field `name` (e.g. `VmHWM`) in KiB from `/proc/PID/status`.
pub fn parse_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// QEMU's arguments: the fastest launch of the PVH vmlinux on KVM.
pub fn qemu_args(
    machine: Machine,
    kernel: &Path,
    initrd: &Path,
    cpus: u16,
    memory: u64,
    qmp: &Path,
) -> Vec<String> {
    let m = match machine {
        // The project's microvm (vmm/src/qemu): legacy PIT, PIC, RTC and COM1.
        Machine::Microvm | Machine::Auto => "microvm,pit=on,pic=on,rtc=on,isa-serial=on,acpi=on",
        Machine::Pc => "pc",
    };
    let mut a: Vec<String> = ["-M", m, "-accel", "kvm", "-cpu", "host", "-m"]
        .map(String::from)
        .to_vec();
    a.extend([
        format!("{memory}M"),
        "-smp".into(),
        format!("cpus={cpus},sockets=1,cores={cpus},threads=1"),
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        L2_CMDLINE.into(),
    ]);
    a.extend(
        [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            // Names its vCPU threads "CPU N/KVM" (see procfs::is_vcpu_thread).
            "-name",
            "debug-threads=on",
            "-qmp",
        ]
        .map(String::from),
    );
    a.push(format!("unix:{},server=on,wait=off", qmp.display()));
    a
}

/// A VMM process booting L2, read from its stdout and stderr.
struct Running {
    child: std::process::Child,
    lines: Receiver<String>,
    tail: Vec<String>,
    /// When our VMM child said its vCPUs run ([`STARTED_LINE`]).
    started: Option<Instant>,
    /// Our VMM's account of how long each stage of building the VM took.
    built: Option<String>,
}

impl Running {
    /// Whether the VMM has exited, and what it printed last (for errors).
    fn gone(&mut self) -> String {
        // Lines that arrived after the one waited for belong in the tail.
        while let Ok(line) = self.lines.try_recv() {
            self.tail.push(line);
        }
        let start = self.tail.len().saturating_sub(12);
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("the VMM exited: {s}"),
            _ => "the VMM still runs".into(),
        };
        format!(
            "{status}; last lines:\n  | {}",
            self.tail[start..].join("\n  | ")
        )
    }

    /// Waits for a line containing `want`; the time of its arrival.
    fn wait_for(&mut self, want: &str, deadline: Instant) -> Result<Instant> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(want) => return Ok(Instant::now()),
                Ok(line) if line == STARTED_LINE => self.started = Some(Instant::now()),
                Ok(line) if line.starts_with(BUILT_PREFIX) => self.built = Some(line),
                Ok(line) => {
                    if self.tail.len() == 12 {
                        self.tail.remove(0);
                    }
                    self.tail.push(line);
                }
                Err(_) => bail!("no {want:?} line in time ({})", self.gone()),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One boot: time to /init, CPU and RSS at that moment, then the freezes.
fn boot_once(args: &L1Args, machine: Machine, vmm: Vmm, cpus: u16, round: usize) -> Result<Boot> {
    let qmp =
        std::env::temp_dir().join(format!("schedtape-bench-{}-{cpus}.qmp", std::process::id()));
    let _ = std::fs::remove_file(&qmp);
    let mut cmd = match vmm {
        Vmm::Ours => {
            let me = std::env::current_exe().context("this program's path")?;
            let mut c = Command::new(me.with_file_name(OUR_VMM));
            c.args(
                linux_run::Options {
                    kernel: args.kernel.clone(),
                    initrd: args.initrd.clone(),
                    cmdline: L2_CMDLINE.to_string(),
                    cpus,
                    memory_mib: args.memory,
                    freezes: args.freezes,
                    timeout: Duration::from_secs(args.boot_timeout),
                    until: INIT_LINE.to_string(),
                }
                .to_args(),
            );
            c
        }
        Vmm::Qemu => {
            let mut c = Command::new(QEMU);
            c.args(qemu_args(
                machine,
                &args.kernel,
                &args.initrd,
                cpus,
                args.memory,
                &qmp,
            ));
            c
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = vmm::child::spawn_tied(cmd).context("cannot start the VMM")?;
    let lines = crate::bench::read_lines(&mut child);
    let mut run = Running {
        child,
        lines,
        tail: Vec::new(),
        started: None,
        built: None,
    };
    let deadline = start + Duration::from_secs(args.boot_timeout);
    let at = run.wait_for(INIT_LINE, deadline)?;
    let pid = run.child.id();
    // The threads first: vCPU time that accrues meanwhile counts as the VMM's.
    let threads = procfs::read_threads(pid).with_context(|| format!("/proc/{pid}/task"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let ticks = parse_stat(&stat).ok_or_else(|| anyhow!("cannot parse /proc/{pid}/stat"))?;
    // A process that has already exited (a zombie) has no memory lines.
    let missing = match parse_kib(&status, "VmHWM") {
        None => run.gone(),
        Some(_) => String::new(),
    };
    let kib = |name| {
        parse_kib(&status, name)
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status ({missing})"))
    };
    let maps =
        procfs::parse_smaps(&smaps).ok_or_else(|| anyhow!("cannot parse /proc/{pid}/smaps"))?;
    let mut notes = Vec::new();
    // Where our VMM's start went (its stages vary between rounds in L1).
    notes.extend(run.built.take());
    let guest_ram_kib = procfs::guest_ram_rss_kib(&maps, args.memory)
        .map_err(|e| notes.push(format!("/proc/{pid}/smaps: {e}")))
        .ok();
    if round == 0 {
        // Warm-ups show what the guest RAM was told apart from.
        notes.extend(
            maps.iter()
                .filter(|m| m.size_kib >= 1024)
                .map(|m| format!("mapping {m}")),
        );
    }
    let (vcpu_threads, vcpu_ticks) = procfs::vcpu_ticks(&threads);
    if vcpu_threads != usize::from(cpus) {
        let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
        notes.push(format!(
            "{vcpu_threads} vCPU threads, not {cpus}, among {names:?}"
        ));
    }
    let tick_ms = 1e3 / clock_ticks_per_second();
    let mut boot = Boot {
        vmm,
        cpus,
        round,
        init_ms: (at - start).as_secs_f64() * 1e3,
        started_ms: run.started.map(|t| (t - start).as_secs_f64() * 1e3),
        cpu_ms: (ticks.user + ticks.system) as f64 * tick_ms,
        user_ms: ticks.user as f64 * tick_ms,
        guest_ms: ticks.guest as f64 * tick_ms,
        vcpu_threads,
        vcpu_cpu_ms: vcpu_ticks as f64 * tick_ms,
        rss_kib: kib("VmHWM")?,
        rss_file_kib: kib("RssFile")?,
        rss_now_kib: procfs::total_rss_kib(&maps),
        guest_ram_kib,
        notes,
        freeze_us: Vec::new(),
        stop_call_us: Vec::new(),
        resume_us: Vec::new(),
    };
    let freeze_deadline = Instant::now() + Duration::from_secs(args.boot_timeout);
    match vmm {
        Vmm::Ours => {
            let mut stdin = run.child.stdin.take().context("the VMM's stdin")?;
            stdin.write_all(b"go\n")?;
            while boot.freeze_us.len() < args.freezes {
                let left = freeze_deadline.saturating_duration_since(Instant::now());
                let line = run.lines.recv_timeout(left).map_err(|_| {
                    anyhow!(
                        "freeze {} of {} did not end",
                        boot.freeze_us.len() + 1,
                        args.freezes
                    )
                })?;
                if let Some((r, f, t)) = parse_freeze(&line) {
                    boot.freeze_us.push(r);
                    boot.stop_call_us.push(f);
                    boot.resume_us.push(t);
                }
            }
        }
        Vmm::Qemu => {
            let mut q = Qmp::connect(&qmp, Duration::from_secs(30))?;
            for _ in 0..args.freezes {
                let t = Instant::now();
                q.execute("stop", None)?;
                let stop = t.elapsed().as_secs_f64() * 1e6;
                let t = Instant::now();
                q.execute("cont", None)?;
                boot.freeze_us.push(stop);
                boot.stop_call_us.push(stop);
                boot.resume_us.push(t.elapsed().as_secs_f64() * 1e6);
                std::thread::sleep(BETWEEN);
            }
        }
    }
    drop(run);
    let _ = std::fs::remove_file(&qmp);
    Ok(boot)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

fn progress(msg: &str) {
    eprintln!("{PROGRESS} {msg}");
}

/// The order of the two VMMs in one slot: alternates so neither always goes first.
pub fn order(slot: usize) -> [Vmm; 2] {
    if slot.is_multiple_of(2) {
        [Vmm::Ours, Vmm::Qemu]
    } else {
        [Vmm::Qemu, Vmm::Ours]
    }
}

/// The driver: a warm-up boot of each (choosing QEMU's machine), then the rounds.
pub fn run(args: &L1Args) -> Result<ExitCode> {
    let version = Command::new(QEMU)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("cannot run {QEMU}: {e}"));
    let mut raw = Raw {
        qemu_version: version,
        l1_kvm: vmm::kvm::kind().map_or_else(|e| e, |k| k.to_string()),
        memory_mib: args.memory,
        freezes: args.freezes,
        rounds: args.rounds,
        cmdline: L2_CMDLINE.to_string(),
        ..Raw::default()
    };
    let save = |raw: &Raw| -> Result<()> {
        std::fs::write(&args.out, serde_json::to_vec_pretty(raw)?)
            .with_context(|| format!("cannot write {}", args.out.display()))
    };
    progress("warm-up: our VMM, 1 vCPU (not counted)");
    let warm = boot_once(args, Machine::Pc, Vmm::Ours, 1, 0).context("warm-up boot of our VMM")?;
    progress(&format!(
        "warm-up: ours reached /init in {:.0} ms",
        warm.init_ms
    ));
    warm.notes
        .iter()
        .for_each(|n| progress(&format!("warm-up, ours: {n}")));
    let mut machine = match args.machine {
        Machine::Auto => Machine::Microvm,
        m => m,
    };
    loop {
        let name = if machine == Machine::Pc {
            "pc"
        } else {
            "microvm"
        };
        progress(&format!("warm-up: QEMU -M {name}, 1 vCPU (not counted)"));
        match boot_once(args, machine, Vmm::Qemu, 1, 0) {
            Ok(b) => {
                progress(&format!(
                    "warm-up: QEMU reached /init in {:.0} ms",
                    b.init_ms
                ));
                b.notes
                    .iter()
                    .for_each(|n| progress(&format!("warm-up, QEMU: {n}")));
                raw.qemu_machine = name.to_string();
                break;
            }
            Err(e) if args.machine == Machine::Auto && machine == Machine::Microvm => {
                let note = format!("QEMU -M microvm failed in L1, timed -M pc instead: {e:#}");
                progress(&note);
                raw.notes.push(note);
                machine = Machine::Pc;
            }
            Err(e) => {
                raw.notes
                    .push(format!("QEMU -M {name} failed in L1: {e:#}"));
                save(&raw)?;
                return Err(e.context(format!("warm-up boot of QEMU -M {name}")));
            }
        }
    }
    save(&raw)?;
    let mut slot = 0;
    for round in 1..=args.rounds {
        for &cpus in &args.cpus {
            for vmm in order(slot) {
                let who = if vmm == Vmm::Ours { "ours" } else { "qemu" };
                match boot_once(args, machine, vmm, cpus, round) {
                    Ok(mut b) => {
                        progress(&format!(
                            "round {round}/{}, {cpus} vCPUs, {who}: /init {:.0} ms, CPU {:.0} ms (vCPU threads {:.0}), RSS {:.1} MiB (guest RAM {}), freeze p50 {:.0} µs",
                            args.rounds,
                            b.init_ms,
                            b.cpu_ms,
                            b.vcpu_cpu_ms,
                            b.rss_now_kib as f64 / 1024.0,
                            b.guest_ram_kib
                                .map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                            crate::bench::percentile(&b.freeze_us, 50.0)
                        ));
                        for n in b.notes.drain(..) {
                            let note = format!("round {round}, {cpus} vCPUs, {who}: {n}");
                            progress(&note);
                            raw.notes.push(note);
                        }
                        raw.boots.push(b);
                    }
                    Err(e) => {
                        let note = format!("round {round}, {cpus} vCPUs, {who} failed: {e:#}");
                        progress(&note);
                        raw.notes.push(note);
                    }
                }
                save(&raw)?;
                // The previous VMM's teardown (its memory, L1's VM) must not
                // land on the next one's start.
                std::thread::sleep(SETTLE);
            }
            slot += 1;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        // A command name with a space and ')' (fields 3..=44 after it).
        let mut fields: Vec<String> = (3..=44).map(|n| n.to_string()).collect();
        fields[0] = "S".into();
        let stat = format!("42 (qemu) x) {}", fields.join(" "));
        // utime 14 + stime 15, guest_time 43.
        let t = Ticks {
            user: 14,
            system: 15,
            guest: 43,
        };
        assert_eq!(parse_stat(&stat), Some(t));
        assert_eq!(parse_stat("42 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn hwm_is_read_in_kib() {
        let status = "Name:\tqemu\nVmPeak:\t  9 kB\nVmHWM:\t   20480 kB\nRssFile:\t 1 kB\n";
        assert_eq!(parse_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_kib(status, "RssFile"), Some(1));
        assert_eq!(parse_kib(status, "Vm"), None);
        assert_eq!(parse_kib("VmRSS: 1 kB", "VmHWM"), None);
    }

    #[test]
    fn freeze_lines_are_three_nanosecond_counts() {
        assert_eq!(parse_freeze("freeze 1500 2000 3000"), Some((1.5, 2.0, 3.0)));
        assert_eq!(parse_freeze("freeze 1 2"), None);
        assert_eq!(parse_freeze("freeze 1 2 3 4"), None);
        assert_eq!(parse_freeze("freeze -1 2 3"), None);
        assert_eq!(parse_freeze("[ 1.0] freeze 1 2 3"), None);
    }

    #[test]
    fn qemu_boots_the_pvh_vmlinux_on_kvm_with_the_same_kernel_args() {
        let a = qemu_args(
            Machine::Auto,
            Path::new("/k"),
            Path::new("/i"),
            8,
            256,
            Path::new("/q"),
        );
        let s = a.join(" ");
        assert!(
            s.starts_with(
                "-M microvm,pit=on,pic=on,rtc=on,isa-serial=on,acpi=on -accel kvm -cpu host -m 256M"
            ),
            "{s}"
        );
        assert!(
            s.contains("-smp cpus=8,sockets=1,cores=8,threads=1 -kernel /k -initrd /i"),
            "{s}"
        );
        let at = a.iter().position(|x| x == "-append").unwrap();
        assert_eq!(a[at + 1], L2_CMDLINE);
        assert!(
            s.ends_with("-no-reboot -name debug-threads=on -qmp unix:/q,server=on,wait=off"),
            "{s}"
        );
        let pc = qemu_args(
            Machine::Pc,
            Path::new("/k"),
            Path::new("/i"),
            1,
            64,
            Path::new("/q"),
        );
        assert_eq!(&pc[..2], ["-M", "pc"]);
    }

    #[test]
    fn the_first_vmm_alternates() {
        assert_eq!(order(0), [Vmm::Ours, Vmm::Qemu]);
        assert_eq!(order(1), [Vmm::Qemu, Vmm::Ours]);
        assert_eq!(order(2), order(0));
    }
}
