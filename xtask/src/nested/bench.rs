//! `cargo xtask bench nested`: inside one L1 (the nested lane's: QEMU TCG with
//! an emulated AMD CPU, `kvm_amd` loaded), our VMM against `qemu-system-x86_64
//! -accel kvm` booting the same PVH vmlinux and initramfs, in interleaved
//! rounds. The host stages QEMU (with its libraries and firmware) and this
//! program into L1's initramfs, L1 runs [`l1::run`] and leaves a [`Raw`] on
//! the results disk, and the host prints the table and ratios and writes
//! `target/bench/nested.json`.
pub mod l1;
pub mod procfs;
pub mod report;

use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::fetch::{self, Ingredients, MODULES};
use super::{boot, root};
use crate::initramfs::Initramfs;
use crate::kernel::{BuildOpts, ResolveOpts, resolve};
use l1::Machine;
use report::{Raw, Report};

/// Options of `bench nested`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed rounds; each boots L2 once per vCPU count with each VMM, in turn.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// vCPU counts of L2 (1..=64).
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    pub cpus: Vec<u16>,
    /// Freeze cycles per boot (ours: freeze()/thaw(); QEMU: QMP stop/cont).
    #[arg(long, default_value_t = 20)]
    pub freezes: usize,
    /// L2's memory in MiB, both VMMs (64..=2048).
    #[arg(long, default_value_t = 256)]
    pub memory: u64,
    /// QEMU's machine (auto: microvm, else pc when microvm fails in L1).
    #[arg(long, value_enum, default_value_t = Machine::Auto)]
    pub machine: Machine,
    /// Seconds before L1 is killed (the whole bench).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Where the report goes as JSON.
    #[arg(long, default_value = "target/bench/nested.json")]
    pub json: PathBuf,
}

/// Where L2's kernel and initramfs are inside L1.
const L2_KERNEL: &str = "/inputs/vmlinux";
const L2_INITRD: &str = "/inputs/l2.cpio";
const RAW: &str = "nested-raw.json";
/// QEMU's firmware a microvm or pc boot of a PVH kernel may load.
const QEMU_FIRMWARE: [&str; 8] = [
    "qboot.rom",
    "bios-microvm.bin",
    "kvmvapic.bin",
    "linuxboot.bin",
    "linuxboot_dma.bin",
    "pvh.bin",
    "multiboot.bin",
    "multiboot_dma.bin",
];
const SEABIOS: [&str; 2] = ["bios-256k.bin", "bios.bin"];

/// Bad options, as the one-line error of exit status 2.
pub fn check_args(args: &BenchArgs) -> Result<(), String> {
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    if args.freezes == 0 {
        return Err("--freezes must be at least 1".into());
    }
    if args.cpus.is_empty() || args.cpus.iter().any(|&c| c == 0 || c > 64) {
        return Err(format!("--cpus {:?}: each count must be 1..=64", args.cpus));
    }
    if !(64..=2048).contains(&args.memory) {
        return Err(format!("--memory {}: must be 64..=2048 MiB", args.memory));
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if let Err(e) = check_args(args) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    let started = Instant::now();
    let root = crate::workspace_root();
    let opts = ResolveOpts {
        kernel: None,
        build: BuildOpts::default(),
        build_if_missing: true,
    };
    let mut needs = crate::prereq::for_tools(true, &opts);
    needs.need(&["e2fsprogs", "xz-utils", "binutils"], "bench nested");
    let ingredients = match needs.ensure().and_then(|()| fetch::ensure()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "bench nested: cannot run here: {}",
                format!("{e:#}").replace('\n', " ")
            );
            return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
        }
    };
    let kernel = resolve(&opts)?;
    let pvh = kernel
        .pvh_image
        .clone()
        .filter(|_| kernel.pvh)
        .context("the project kernel has no PVH vmlinux (QEMU microvm boots only that)")?;

    let work = super::tempdir()?;
    let inputs = work.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    std::fs::copy(&pvh, inputs.join("vmlinux"))
        .with_context(|| format!("cannot copy {}", pvh.display()))?;
    let mut l2 = Initramfs::new();
    l2.add_file("init", marker_init(), 0o755)?;
    std::fs::write(inputs.join("l2.cpio"), l2.to_bytes())?;
    let inputs_disk = work.join("inputs.img");
    let mib = crate::dir_bytes(&inputs) / (1 << 20) * 5 / 4 + 32;
    root::mkfs(&inputs_disk, &format!("{mib}M"), Some(&inputs))?;
    let results_disk = work.join("results.img");
    root::results_disk(&results_disk)?;
    let initrd = work.join("l1.cpio");
    std::fs::write(&initrd, l1_initramfs(&ingredients, &work, args)?)
        .context("cannot write L1's initramfs")?;

    let out = root.join("target/bench/nested-l1");
    std::fs::create_dir_all(&out)?;
    let _ = std::fs::remove_file(out.join(RAW));
    let console_log = out.join("l1-console.log");
    eprintln!(
        "bench nested: L1 = {}, prepared in {:.1} s; {} rounds × {:?} vCPUs × 2 VMMs (progress below)",
        ingredients.kernel_package,
        started.elapsed().as_secs_f64(),
        args.rounds,
        args.cpus
    );
    let _ = std::fs::File::create(&console_log);
    let echo = Echo::start(console_log.clone());
    let ending = boot::run(&boot::Boot {
        vmlinuz: ingredients.vmlinuz.clone(),
        initrd,
        inputs_disk,
        results_disk: results_disk.clone(),
        console_log: console_log.clone(),
        timeout: Duration::from_secs(args.timeout),
        checks: vec!["bench".into()],
        crash: None,
    })
    .map(|outcome| outcome.ending);
    echo.stop();
    let copied = root::read_results(&results_disk, &out);
    let _ = std::fs::remove_dir_all(&work);
    let ending = ending?;
    copied?;
    let raw_path = out.join(RAW);
    let Ok(text) = std::fs::read_to_string(&raw_path) else {
        bail!(
            "L1 left no {RAW} ({ending:?}); see {}",
            console_log.display()
        );
    };
    let raw: Raw =
        serde_json::from_str(&text).with_context(|| format!("{}", raw_path.display()))?;
    let report = Report::new(raw);
    println!("{}", report.text());
    let json = root.join(&args.json);
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!(
        "report: {} (L1's console: {}; {:.0} s in all)",
        json.display(),
        console_log.display(),
        started.elapsed().as_secs_f64()
    );
    match ending {
        boot::Ending::Done if !report.rows.is_empty() => Ok(ExitCode::SUCCESS),
        other => bail!(
            "the bench did not finish: {other:?} (see {})",
            console_log.display()
        ),
    }
}

/// This program and our VMM's own ([`l1::OUR_VMM`]), built with
/// optimisation as QEMU is: a dev build spends several times the CPU before
/// its vCPUs run and maps a larger binary, which would charge the build
/// profile to our VMM. Built (incrementally) every time, so that both match
/// the tree.
fn optimised_programs() -> Result<(PathBuf, PathBuf)> {
    let root = crate::workspace_root();
    eprintln!(
        "bench nested: building xtask and {} with the release profile for L1",
        l1::OUR_VMM
    );
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "xtask",
                "--bin",
                "xtask",
            ])
            .args(["-p", "vmm", "--bin", l1::OUR_VMM])
            .status()
            .context("cannot run cargo build --release")?;
    if !status.success() {
        bail!(
            "cargo build --release of xtask and {} failed ({status})",
            l1::OUR_VMM
        );
    }
    let release = root.join("target/release");
    Ok((release.join("xtask"), release.join(l1::OUR_VMM)))
}

/// L1's initramfs: busybox, the KVM modules, `/init`, this program and QEMU
/// with their libraries, and QEMU's firmware.
fn l1_initramfs(ing: &Ingredients, work: &Path, args: &BenchArgs) -> Result<Vec<u8>> {
    let (xtask, our_vmm) = optimised_programs()?;
    let mut fs = root::l1_base(ing, &init_script(args), work, &xtask)?;
    let stripped = work.join(l1::OUR_VMM);
    crate::kernel::image::strip_debug(&our_vmm, &stripped)?;
    crate::stage::stage_binary(&mut fs, &stripped, l1::OUR_VMM)?;
    let qemu = crate::stage::find_program("qemu-system-x86_64")?;
    crate::stage::stage_binary(&mut fs, &qemu, "usr/bin/qemu-system-x86_64")?;
    for (dir, names) in [
        ("usr/share/qemu", &QEMU_FIRMWARE[..]),
        ("usr/share/seabios", &SEABIOS[..]),
    ] {
        for name in names {
            let host = Path::new("/").join(dir).join(name);
            // Missing firmware only matters to the machine that needs it.
            if let Ok(bytes) = std::fs::read(&host) {
                fs.add_file(&format!("{dir}/{name}"), bytes, 0o644)?;
            }
        }
    }
    Ok(fs.to_bytes())
}

/// L1's `/init`: modules, `/dev/kvm`, the disks, the in-L1 driver, power off.
pub fn init_script(args: &BenchArgs) -> String {
    let cpus: Vec<String> = args.cpus.iter().map(u16::to_string).collect();
    let machine = match args.machine {
        Machine::Auto => "auto",
        Machine::Microvm => "microvm",
        Machine::Pc => "pc",
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
say() {{ echo "{mark} $*"; }}
fail() {{ say "failed: $*"; sync; reboot -f; }}
say "L1 up"
for m in {modules}; do insmod /modules/$m.ko || fail "insmod $m"; done
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm_amd"
mkdir -p /inputs /results
mount -o ro /dev/vda /inputs || fail "cannot mount the inputs disk"
mount /dev/vdb /results || fail "cannot mount the results disk"
{hold}
say "ready"
say "check bench started"
/xtask bench nested-l1 --kernel {kernel} --initrd {initrd} --cpus {cpus} --rounds {rounds} --freezes {freezes} --memory {memory} --machine {machine} --out /results/{raw} >/results/bench.stdout
code=$?
echo $code >/results/bench.code
sync
say "check bench ended $code"
umount /results
sync
say done
reboot -f
"#,
        mark = root::MARK,
        hold = root::hold_apic_keys(),
        modules = MODULES.join(" "),
        kernel = L2_KERNEL,
        initrd = L2_INITRD,
        cpus = cpus.join(","),
        rounds = args.rounds,
        freezes = args.freezes,
        memory = args.memory,
        raw = RAW,
    )
}

/// L2's `/init`: a static x86-64 ELF that writes [`l1::INIT_LINE`] to its
/// console (fd 1) and then pauses forever, so that L2 stays up for the freezes.
pub fn marker_init() -> Vec<u8> {
    let msg = format!("{}\n", l1::INIT_LINE);
    let len = u8::try_from(msg.len()).expect("a short line");
    let mut code = vec![
        0xb8, 1, 0, 0, 0, // mov eax, 1 (write)
        0xbf, 1, 0, 0, 0, // mov edi, 1
        0x48, 0x8d, 0x35, 16, 0, 0, 0, // lea rsi, [rip + 16] (the message)
        0xba, len, 0, 0, 0, // mov edx, len
        0x0f, 0x05, // syscall
        0xb8, 34, 0, 0, 0, // mov eax, 34 (pause)
        0x0f, 0x05, // syscall
        0xeb, 0xf7, // jmp back to the pause
    ];
    code.extend_from_slice(msg.as_bytes());
    vmm::test_init::static_elf(&code)
}

/// Echoes the in-L1 driver's progress lines from the console log as L1 writes it.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Echo {
    fn start(log: PathBuf) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut at = 0;
            loop {
                let last = flag.load(Ordering::Relaxed);
                at = echo_new_lines(&log, at);
                if last {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Echo { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Prints the progress lines of `log` after byte `at`; the new offset.
fn echo_new_lines(log: &Path, at: u64) -> u64 {
    let Ok(mut f) = std::fs::File::open(log) else {
        return at;
    };
    if f.seek(std::io::SeekFrom::Start(at)).is_err() {
        return at;
    }
    let mut reader = BufReader::new(f);
    let mut line = String::new();
    let mut pos = at;
    while let Ok(n) = reader.read_line(&mut line) {
        // Only whole lines: a partial one is read again next time.
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Some(p) = progress_line(&line) {
            eprintln!("{p}");
        }
        line.clear();
    }
    pos
}

/// The progress line within a console line, if it is one.
fn progress_line(line: &str) -> Option<&str> {
    let at = line.find(l1::PROGRESS)?;
    Some(line[at..].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("x").chain(extra.iter().copied())).args
    }

    #[test]
    fn bad_options_are_refused_with_the_rule() {
        assert_eq!(check_args(&args(&[])), Ok(()));
        let err = |a: &[&str]| check_args(&args(a)).unwrap_err();
        assert_eq!(err(&["--rounds", "0"]), "--rounds must be at least 1");
        assert_eq!(err(&["--freezes", "0"]), "--freezes must be at least 1");
        assert!(err(&["--cpus", "1,0"]).contains("1..=64"));
        assert!(err(&["--cpus", "65"]).contains("1..=64"));
        assert!(err(&["--memory", "32"]).contains("64..=2048"));
    }

    #[test]
    fn l1_runs_the_driver_with_the_options_and_powers_off() {
        let s = init_script(&args(&[
            "--rounds",
            "2",
            "--cpus",
            "1,8",
            "--machine",
            "pc",
        ]));
        assert!(
            s.contains("/xtask bench nested-l1 --kernel /inputs/vmlinux --initrd /inputs/l2.cpio --cpus 1,8 --rounds 2 --freezes 20 --memory 256 --machine pc --out /results/nested-raw.json"),
            "{s}"
        );
        assert!(
            s.contains("for m in irqbypass kvm kvm-amd virtio_blk;"),
            "{s}"
        );
        assert!(
            s.contains(&format!("say() {{ echo \"{} $*\"; }}", root::MARK)),
            "{s}"
        );
        // L2 VMs come and go: L1's kvm must not patch its text meanwhile.
        let hold = s.find("/xtask nested hold-apic-keys").expect("holder");
        assert!(hold < s.find("/xtask bench nested-l1").unwrap(), "{s}");
        assert!(s.trim_end().ends_with("reboot -f"), "{s}");
    }

    #[test]
    fn the_marker_init_writes_its_line_then_pauses() {
        let elf = marker_init();
        let parsed = goblin::elf::Elf::parse(&elf).unwrap();
        assert_eq!(parsed.entry, 0x40_0078);
        let ph = &parsed.program_headers[0];
        assert_eq!(ph.p_filesz, elf.len() as u64);
        let code = &elf[0x78..];
        // lea rsi, [rip + disp]: the message starts disp bytes after the lea.
        let lea = code
            .windows(3)
            .position(|w| w == [0x48, 0x8d, 0x35])
            .unwrap();
        let disp = code[lea + 3] as usize;
        let msg = &code[lea + 7 + disp..];
        assert_eq!(msg, format!("{}\n", l1::INIT_LINE).as_bytes());
        // mov edx, len matches the message.
        let mov = code.iter().position(|&b| b == 0xba).unwrap();
        assert_eq!(code[mov + 1] as usize, msg.len());
        // The jmp lands on the pause: mov eax, 34.
        let jmp = code.len() - msg.len() - 2;
        assert_eq!(code[jmp], 0xeb);
        let target = (jmp + 2) as isize + (code[jmp + 1] as i8) as isize;
        assert_eq!(&code[target as usize..target as usize + 2], [0xb8, 34]);
    }

    #[test]
    fn progress_lines_are_echoed_whole_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "kernel line\n[ 9.1] bench-nested: round 1\nbench-nested: par",
        )
        .unwrap();
        let at = echo_new_lines(&log, 0);
        assert_eq!(
            at,
            "kernel line\n[ 9.1] bench-nested: round 1\n".len() as u64
        );
        assert_eq!(
            progress_line("[ 9.1] bench-nested: round 1\n"),
            Some("bench-nested: round 1")
        );
        assert_eq!(progress_line("kernel line"), None);
    }
}
