//! `cargo xtask run scenario NAME|FILE`: validate, build, pack, boot, record.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use clap::{Args, ValueEnum};
use replay::thresholds::Thresholds;
use trace_format::meta::{Backend, Meta, SCHEMA_VERSION};
use trace_format::record::{RunOutcome, printable};
use trace_format::scenario::{Scenario, Topology};
use vmm::backend::BackendError;
use vmm::introspect;
use vmm::kvm::{KvmConfig, KvmVm};
use vmm::qemu::{Accel, QemuConfig, QemuVm, SmpLayout, detect_accel, takes_lapic_timer_hz};
use vmm::run::{IntrospectOptions, Judge, Progress, RunOptions, prepare_window, record_judged};

use crate::kernel::{BuildOpts, KernelImage, ResolveOpts, resolve};
use crate::limits::BackendKind;
use crate::prereq::Refusal;
use crate::run_checks::{
    check_input_paths, check_kernel_cpus, check_memory, check_outputs, kernel_hz,
};
use crate::scenario_pack::pack_initramfs;
use crate::{guest, workspace_root};

/// Exit status: ran and passed.
pub const EXIT_PASS: u8 = 0;
/// Exit status: ran, and a verdict failed or the system under test did (the
/// kernel panicked during the scenario, or sched_ext ejected the scheduler).
pub const EXIT_VERDICT_FAILED: u8 = 1;
/// Exit status: the input (scenario, options) is bad; nothing ran.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status: the infrastructure failed (no kernel, VM died).
pub const EXIT_INFRA: u8 = 3;

/// Which hypervisor runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Hardware KVM with our VMM when available, else QEMU.
    Auto,
    /// QEMU (KVM-accelerated where the CPU has hardware virtualisation, else TCG).
    Qemu,
    /// Our KVM VMM, even where /dev/kvm is emulated (with a warning).
    Kvm,
}

/// Options of `run scenario`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario name from fixtures/scenarios, or a path to a TOML file.
    #[arg(required_unless_present = "from")]
    pub scenario: Option<String>,
    /// Re-run the scenario, topology and settings archived in this trace (with
    /// `--kernel`/`--scheduler` to change those); the new trace notes what changed.
    #[arg(long, conflicts_with = "scenario")]
    pub from: Option<PathBuf>,
    /// Run this many times; traces get `-1`, `-2`, … before their extension.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// With `--from`: run again until `replay check` against the archived
    /// trace is decided or `--max-runs` is spent; exits as `replay check`
    /// (0 no regression, 1 regression, 125 cannot judge).
    #[arg(long, requires = "from", conflicts_with = "repeat")]
    pub until_decided: bool,
    /// Most new runs of `--until-decided` (2..=20).
    #[arg(long, default_value_t = 5, requires = "until_decided",
          value_parser = clap::value_parser!(u32).range(2..=20))]
    pub max_runs: u32,
    /// With `--until-decided`: the baseline's kernel, booted in base runs
    /// alternating with the new ones (ABAB) so both sides see the same host.
    #[arg(long, requires = "until_decided")]
    pub base_kernel: Option<PathBuf>,
    /// Kernel to boot: a bzImage, a vmlinux, or a directory holding them (default: the cached build).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Kernel source tree to build the cached kernel from (default: Debian's linux-source).
    #[arg(long)]
    pub kernel_src: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Override the scenario's topology: `NnLlCcTt` (e.g. `1n2l4c2t`) or a preset name.
    #[arg(long)]
    pub topology: Option<String>,
    /// Trace file to write (default: `<scenario>.trace` in the current directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Guest memory in MiB, 64..=65536 and at most the host's RAM.
    #[arg(long, default_value_t = 512, value_parser = crate::limits::memory_mib)]
    pub memory: u64,
    /// Seconds allowed for boot and teardown on top of the scenario's own length (3..=3600).
    #[arg(long, default_value_t = 60, value_parser = crate::limits::margin_secs)]
    pub margin: u64,
    /// Boot this program as /init instead of the guest executor (for debugging).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Verdict thresholds (TOML, as `replay judge --thresholds`), over the
    /// scenario's `[thresholds]` and the built-in defaults.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Boot without KASLR (the vmlinux through PVH, `nokaslr`); default: the
    /// bzImage with KASLR on.
    #[arg(long)]
    pub no_kaslr: bool,
    /// The vmlinux to read symbols and types from (default: the one beside the kernel).
    #[arg(long)]
    pub vmlinux: Option<PathBuf>,
    #[command(flatten)]
    pub sched: crate::scheduler::SchedulerArgs,
}

/// Runs the command and maps every failure to the documented exit status.
pub fn run(args: &RunArgs) -> ExitCode {
    let result = run_inner(args);
    // Stopped by a signal: the trace is closed; exit as the signal would.
    if let Some(signal) = crate::signals::received() {
        if let Err(Failure::BadInput(e) | Failure::Infra(e)) = &result {
            eprintln!("error: {e:#}");
        }
        return ExitCode::from(crate::signals::exit_status(signal));
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure::BadInput(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(Failure::Infra(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INFRA)
        }
    }
}

/// Why a run did not happen: bad input (exit 2) or broken infrastructure (exit 3).
pub(crate) enum Failure {
    BadInput(anyhow::Error),
    Infra(anyhow::Error),
}

fn infra(e: anyhow::Error) -> Failure {
    Failure::Infra(e)
}

fn run_inner(args: &RunArgs) -> Result<u8, Failure> {
    // Clap's `requires` does not reach `run scenario NAME`'s flags.
    if args.until_decided && args.from.is_none() {
        return Err(Failure::BadInput(anyhow!(
            "--until-decided needs --from BASE.trace (the baseline the new runs are checked against)"
        )));
    }
    let new = prepare(args, args.kernel.clone())?;
    if args.until_decided {
        let base = match &args.base_kernel {
            Some(k) => Some(prepare(args, Some(k.clone()))?),
            None => None,
        };
        return crate::decide::until_decided(args, &new, base.as_ref());
    }
    let mut worst = EXIT_PASS;
    for round in (1..=args.repeat).take_while(|_| crate::signals::received().is_none()) {
        let output = if args.repeat == 1 {
            new.output.clone()
        } else {
            numbered(&new.output, round)
        };
        if args.repeat > 1 {
            eprintln!("run {round} of {}", args.repeat);
        }
        worst = worst.max(record(args, &new, output, round == 1)?);
    }
    Ok(worst)
}

/// Everything a run needs, settled before anything boots: each run of an
/// `--until-decided` series (or `--repeat`) reuses it.
pub(crate) struct Prepared {
    scenario: Scenario,
    thresholds: Thresholds,
    /// The trace to write (numbered per run where there are several).
    pub(crate) output: PathBuf,
    backend: Chosen,
    kernel: KernelImage,
    boot: BootPlan,
    intro: Introspection,
    initrd: crate::scenario_pack::PackedInitramfs,
    /// The scenario's meta archived in `--from`'s trace.
    archived: Option<Meta>,
}

impl Prepared {
    pub(crate) fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }
}

/// Validates the input and builds what a run boots, with `kernel` (a path,
/// or the cached build) as the kernel.
fn prepare(args: &RunArgs, kernel: Option<PathBuf>) -> Result<Prepared, Failure> {
    let root = workspace_root();
    check_input_paths(args).map_err(Failure::BadInput)?;
    let archived = match &args.from {
        Some(path) => Some(crate::rerun::archived(path).map_err(Failure::BadInput)?),
        None => None,
    };
    let mut scenario = load_scenario(&root, args, archived.as_ref()).map_err(Failure::BadInput)?;
    crate::scheduler::apply(&mut scenario, &args.sched).map_err(Failure::BadInput)?;
    // Checked before anything boots: a bad thresholds file is bad input.
    let thresholds = Thresholds::resolve(scenario.thresholds.as_ref(), args.thresholds.as_deref())
        .map_err(Failure::BadInput)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.trace", scenario.name)));
    check_outputs(args, &output).map_err(Failure::BadInput)?;

    // Everything the host needs is settled before anything is built; the
    // backend is probed once, and its limits apply.
    let backend = choose_backend(args.backend);
    let kind = match backend {
        Chosen::Kvm => BackendKind::Kvm,
        Chosen::Qemu(_) => BackendKind::Qemu,
    };
    check_memory(args.memory, &scenario, kind).map_err(Failure::BadInput)?;
    let named = kernel.is_some();
    let resolve_opts = ResolveOpts {
        kernel,
        build: BuildOpts {
            src: args.kernel_src.clone(),
            ..Default::default()
        },
        build_if_missing: true,
    };
    let qemu = matches!(backend, Chosen::Qemu(_));
    crate::prereq::for_run(&scenario, qemu, &resolve_opts).map_err(|r| match r {
        Refusal::BadInput(e) => Failure::BadInput(e),
        Refusal::Host(e) => Failure::Infra(e),
    })?;

    // A kernel the user named that cannot be booted is bad input; the
    // cached one failing to build is the infrastructure's.
    let mut kernel = resolve(&resolve_opts).map_err(|e| match named {
        true => Failure::BadInput(e),
        false => infra(e),
    })?;
    kernel.require_options().map_err(Failure::BadInput)?;
    check_kernel_cpus(&kernel, &scenario.topology).map_err(Failure::BadInput)?;
    if let Some(v) = &args.vmlinux {
        kernel.vmlinux = Some(v.clone());
    }
    let boot = boot_plan(&kernel, !args.no_kaslr);
    let init = match &args.init {
        Some(path) => path.clone(),
        None => guest::build(&root).map_err(infra)?,
    };
    let initrd = pack_initramfs(&root, &init, &scenario).map_err(infra)?;
    let intro = load_introspection(&kernel, &scenario);
    Ok(Prepared {
        scenario,
        thresholds,
        output,
        backend,
        kernel,
        boot,
        intro,
        initrd,
        archived,
    })
}

/// One run of `p` into `output`; `say_changes` prints what differs from
/// `--from`'s trace (once per series). Returns the exit status.
pub(crate) fn record(
    args: &RunArgs,
    p: &Prepared,
    output: PathBuf,
    say_changes: bool,
) -> Result<u8, Failure> {
    let mut meta = build_meta(&p.scenario, &p.kernel, &p.intro, &p.boot);
    if let (Some(old), Some(path)) = (&p.archived, &args.from) {
        let notes = crate::rerun::notes(path, old, &meta);
        if say_changes {
            for n in &notes {
                eprintln!("{n}");
            }
        }
        meta.notes.extend(notes);
    }
    record_one(
        args,
        p.backend,
        &p.scenario,
        &p.thresholds,
        &p.kernel,
        &p.boot,
        &p.intro,
        p.initrd.path.clone(),
        meta,
        output,
    )
}

/// `out.trace` → `out-3.trace`.
pub(crate) fn numbered(path: &Path, round: u32) -> PathBuf {
    suffixed(path, &round.to_string())
}

/// `out.trace` → `out-<suffix>.trace`.
pub(crate) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{suffix}.{ext}"),
        None => format!("{stem}-{suffix}"),
    };
    path.with_file_name(name)
}

/// Boots once, records `output`, judges it; returns the exit status.
#[allow(clippy::too_many_arguments, reason = "the pieces one run is made of")]
fn record_one(
    args: &RunArgs,
    backend: Chosen,
    scenario: &Scenario,
    thresholds: &Thresholds,
    kernel: &KernelImage,
    boot: &BootPlan,
    intro: &Introspection,
    initrd: PathBuf,
    meta: Meta,
    output: PathBuf,
) -> Result<u8, Failure> {
    let topo = scenario.topology;
    let scenario_ns = scenario.duration_ns.saturating_add(scenario.settle_ns);
    let stop = crate::signals::stop_request();
    // Recorded beside the output and renamed onto it once closed: a run that
    // fails leaves an earlier trace of the same name whole.
    let partial = crate::outputs::partial_path(&output);
    let options = RunOptions {
        output: partial.clone(),
        meta,
        watchdog: Duration::from_nanos(scenario_ns) + Duration::from_secs(args.margin),
        stop,
        stop_grace: Duration::from_secs(10),
    };
    eprintln!(
        "running {} on {} ({} CPUs), kernel {}",
        scenario.name,
        topo,
        topo.cpus(),
        boot.image.display()
    );
    eprintln!("  {}", boot.note);
    let progress = |p: Progress| match p {
        Progress::InitReached { after } => eprintln!("  /init reached after {}", secs(after)),
        Progress::Step(step) => eprintln!("  {step}"),
        Progress::Warning(line) => eprintln!("  warning: {}", printable(&line)),
        Progress::Finished { outcome } => eprintln!("  finished: {outcome}"),
    };
    // A window that cannot be initialised leaves the guest without transport;
    // the recorder notes it and the run still produces a trace.
    let prepare = |w: &vmm::backend::GuestWindow| {
        let _ = prepare_window(w);
    };
    // Completed runs are judged before `End`, so the verdicts go into the trace.
    let judge: Judge<'_> = Box::new(|trace, outcome| match outcome {
        RunOutcome::Completed => replay::verdict::judge_with(trace, &thresholds.verdicts),
        _ => Vec::new(),
    });
    let report = match backend {
        Chosen::Qemu(accel) => {
            let config = QemuConfig {
                binary: PathBuf::from("qemu-system-x86_64"),
                kernel: boot.image.clone(),
                initrd,
                cmdline: boot.cmdline.clone(),
                smp: smp_layout(topo),
                memory_mib: args.memory,
                accel,
                runtime_dir: runtime_dir(),
                kernel_hz: kernel_hz(kernel),
                lapic_timer_hz_param: intro
                    .options
                    .layout
                    .as_ref()
                    .is_ok_and(|l| takes_lapic_timer_hz(l)),
            };
            let launch =
                || QemuVm::launch(&config, prepare).map_err(|e| BackendError(e.to_string()));
            record_judged(
                launch,
                options,
                Some(intro.options.clone()),
                Some(judge),
                progress,
            )
        }
        Chosen::Kvm => {
            let config = kvm_config(boot, initrd, topo, args.memory);
            let launch =
                || KvmVm::launch(&config, prepare).map_err(|e| BackendError(e.to_string()));
            record_judged(
                launch,
                options,
                Some(intro.options.clone()),
                Some(judge),
                progress,
            )
        }
    };
    // Whatever the recording's result, what it wrote takes the output's name
    // (a truncated trace stays readable).
    let renamed = std::fs::rename(&partial, &output);
    let report = report.map_err(|e| infra(e.into()))?;
    renamed.map_err(|e| {
        infra(anyhow!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            output.display()
        ))
    })?;

    // The result goes to stdout; progress and diagnostics went to stderr.
    println!(
        "trace {} closed: {} records, {} bytes; time to /init {}, to trace closed {}",
        output.display(),
        report.records,
        report.bytes,
        report
            .time_to_init
            .map_or_else(|| "never".to_string(), secs),
        secs(report.time_to_closed)
    );
    if report.dropped > 0 {
        eprintln!("warning: {} frames were lost in transport", report.dropped);
    }
    match &report.outcome {
        RunOutcome::Completed => Ok(verdict_status(&output, &report)),
        other => {
            println!("run did not complete: {}", describe(other));
            let tail: Vec<&str> = report.console_tail.lines().rev().take(15).collect();
            eprintln!("console tail:");
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
            match under_test_failure(&output) {
                Some(why) => {
                    println!("the system under test failed: {why}");
                    Ok(EXIT_VERDICT_FAILED)
                }
                None => Ok(EXIT_INFRA),
            }
        }
    }
}

/// Why an incomplete run counts as the system under test failing rather than
/// the harness, read back from the trace as `replay check` does
/// ([`replay::failure::under_test_failure`]).
fn under_test_failure(trace: &Path) -> Option<String> {
    let loaded = replay::load::LoadedTrace::open(trace).ok()?;
    replay::failure::under_test_failure(&loaded.trace().ok()?)
}

/// The hypervisor chosen for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    /// Our own VMM on /dev/kvm.
    Kvm,
    Qemu(Accel),
}

/// Resolves `--backend`, saying in one line which backend runs and why.
fn choose_backend(choice: BackendChoice) -> Chosen {
    let qemu = |reason: &str| {
        let (accel, why) = detect_accel();
        eprintln!("backend: qemu ({}) — {reason}{why}", accel.name());
        Chosen::Qemu(accel)
    };
    match choice {
        BackendChoice::Qemu => qemu(""),
        BackendChoice::Auto => match vmm::kvm::kind::hardware_backed() {
            Ok(p) => {
                eprintln!("backend: kvm (our VMM) — /dev/kvm is {p}");
                Chosen::Kvm
            }
            Err(why) => qemu(&format!("no hardware-backed KVM for our VMM ({why}); ")),
        },
        BackendChoice::Kvm => {
            match vmm::kvm::kind::hardware_backed() {
                Ok(p) => eprintln!("backend: kvm (our VMM) — /dev/kvm is {p}"),
                Err(why) => eprintln!(
                    "backend: kvm (our VMM), as asked — warning: {why}; a Linux guest runs very \
                     slowly or fails under emulation (the KVM backend is verified only with test \
                     guests there)"
                ),
            }
            Chosen::Kvm
        }
    }
}

/// Our VMM's launch configuration for `boot`: the console on COM1, reset
/// through the i8042 as the end of the run; the VMM appends the ring window
/// (its own memory slot, reserved in e820).
fn kvm_config(boot: &BootPlan, initrd: PathBuf, topology: Topology, memory_mib: u64) -> KvmConfig {
    let args = boot
        .cmdline
        .split_whitespace()
        .map(|a| {
            if a.starts_with("schedtape.backend=") {
                "schedtape.backend=kvm"
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    KvmConfig {
        kernel: boot.image.clone(),
        initrd: Some(initrd),
        // earlyprintk: a failure before the 8250 driver registers (the first boots
        // on a new host) still reaches the console, and the panic detector.
        cmdline: format!("console=ttyS0 earlyprintk=serial,ttyS0,115200 reboot=k panic=-1 {args}"),
        topology,
        memory_mib,
        stop_at_boot_mark: false,
    }
}

/// Prints the verdicts judged before `End` (the same code as `replay judge`,
/// and now in the trace) and maps them to the exit status.
fn verdict_status(trace: &Path, report: &vmm::run::RunReport) -> u8 {
    if let Some(e) = &report.judge_error {
        eprintln!("warning: {} was not judged: {e}", trace.display());
        return EXIT_PASS;
    }
    let _ = replay::verdict::render(&mut std::io::stdout(), &report.verdicts, false);
    if replay::verdict::any_failed(&report.verdicts) {
        EXIT_VERDICT_FAILED
    } else {
        EXIT_PASS
    }
}

fn describe(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::KernelPanic { message } => format!("kernel panic: {message}"),
        RunOutcome::Timeout { after_ns } => format!(
            "watchdog fired after {}",
            secs(Duration::from_nanos(*after_ns))
        ),
        RunOutcome::GuestError { message } => format!("guest error: {message}"),
        RunOutcome::HostError { message } => format!("host error: {message}"),
        RunOutcome::Terminated { signal } => format!("terminated by {signal}"),
        other => other.label().to_string(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Loads `NAME` from fixtures/scenarios or a path, applies overrides, validates.
/// With `--from`, the archived trace's scenario is used as is.
fn load_scenario(root: &Path, args: &RunArgs, archived: Option<&Meta>) -> Result<Scenario> {
    let (mut scenario, path) = match (archived, &args.scenario) {
        (Some(meta), _) => (meta.scenario.clone(), args.from.clone().unwrap_or_default()),
        (None, Some(name)) => {
            let path = scenario_path(root, name)?;
            (Scenario::load(&path).map_err(|e| anyhow!("{e}"))?, path)
        }
        (None, None) => return Err(anyhow!("give a scenario name or file, or --from TRACE")),
    };
    if let Some(t) = &args.topology {
        scenario.topology = t
            .parse::<Topology>()
            .map_err(|e| anyhow!("--topology {t:?}: {e}"))?;
    }
    if let Err(e) = scenario.validate() {
        return Err(anyhow!("scenario {} is invalid: {e}", path.display()));
    }
    Ok(scenario)
}

/// `NAME` in fixtures/scenarios, or a path.
pub(crate) fn scenario_path(root: &Path, name: &str) -> Result<PathBuf> {
    let as_path = PathBuf::from(name);
    let path = if as_path.extension().is_some() || as_path.components().count() > 1 {
        as_path
    } else {
        root.join("fixtures/scenarios").join(format!("{name}.toml"))
    };
    if !path.is_file() {
        let known = known_scenarios(root).join(", ");
        return Err(anyhow!(
            "no scenario {name:?} (looked for {}); known: {known}",
            path.display()
        ));
    }
    Ok(path)
}

fn known_scenarios(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("fixtures/scenarios"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".toml")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Which image boots, with which command line, and what that means for KASLR.
#[derive(Debug, Clone)]
pub(crate) struct BootPlan {
    pub(crate) image: PathBuf,
    pub(crate) cmdline: String,
    note: String,
}

/// KASLR on: the bzImage (its decompressor randomises the kernel); off: the
/// vmlinux through PVH with `nokaslr`. Falls back to whichever image exists.
pub(crate) fn boot_plan(kernel: &KernelImage, kaslr: bool) -> BootPlan {
    let base = "quiet schedtape.backend=qemu";
    let pvh = kernel.pvh_image.as_ref().filter(|_| kernel.pvh);
    match (kaslr, &kernel.bzimage, pvh) {
        (true, Some(bz), _) => BootPlan {
            image: bz.clone(),
            cmdline: base.to_string(),
            note: "KASLR on (bzImage); --no-kaslr boots the vmlinux directly".into(),
        },
        (true, None, _) => BootPlan {
            image: kernel.boot_image().to_path_buf(),
            cmdline: format!("{base} nokaslr"),
            note: "KASLR off: no bzImage to randomise (a vmlinux boots unrelocated)".into(),
        },
        (false, _, Some(v)) => BootPlan {
            image: v.clone(),
            cmdline: format!("{base} nokaslr"),
            note: "KASLR off (vmlinux via PVH, nokaslr)".into(),
        },
        (false, _, None) => BootPlan {
            image: kernel.boot_image().to_path_buf(),
            cmdline: format!("{base} nokaslr"),
            note: "KASLR off (nokaslr)".into(),
        },
    }
}

/// The resolved vmlinux (or why there is none) and the meta notes it implies.
struct Introspection {
    options: IntrospectOptions,
    notes: Vec<String>,
    snapshot_interval_ns: u64,
}

fn load_introspection(kernel: &KernelImage, scenario: &Scenario) -> Introspection {
    let layout = match &kernel.vmlinux {
        None => {
            Err("no vmlinux beside the kernel: kernel introspection is unavailable".to_string())
        }
        Some(v) => introspect::load(v, introspect::cache::default_dir().as_deref())
            .map(|r| {
                eprintln!(
                    "  introspection: {} resolved in {:.1} ms{}",
                    v.display(),
                    r.elapsed.as_secs_f64() * 1e3,
                    if r.cached { " (cached)" } else { "" }
                );
                r.layout
            })
            .map_err(|e| format!("kernel introspection is unavailable: {e}")),
    };
    let mut notes = Vec::new();
    let snapshots_on = match &layout {
        Ok(l) => {
            notes.extend(l.notes.iter().cloned());
            l.snapshots_off.is_none()
        }
        Err(why) => {
            notes.push(why.clone());
            false
        }
    };
    let snapshot_interval_ns = if snapshots_on {
        scenario.snapshot_interval_ns
    } else {
        0
    };
    Introspection {
        options: IntrospectOptions {
            layout,
            snapshot_interval: Duration::from_nanos(snapshot_interval_ns),
        },
        notes,
        snapshot_interval_ns,
    }
}

fn build_meta(
    scenario: &Scenario,
    kernel: &KernelImage,
    intro: &Introspection,
    boot: &BootPlan,
) -> Meta {
    let started_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut notes = intro.notes.clone();
    notes.push(boot.note.clone());
    Meta {
        schema_version: SCHEMA_VERSION,
        writer: format!("schedtape {}", env!("CARGO_PKG_VERSION")),
        run_id: vmm::host::random_id(),
        started_unix_ns,
        scenario: scenario.clone(),
        kernel: crate::identity::of(kernel),
        scheduler: crate::scheduler::identity(&workspace_root(), scenario),
        topology: scenario.topology,
        backend: Backend::Synthetic,
        host: vmm::host::fingerprint(),
        sample_interval_ns: scenario.sample_interval_ns,
        snapshot_interval_ns: intro.snapshot_interval_ns,
        notes,
        acceleration: None,
    }
}

pub(crate) fn smp_layout(t: Topology) -> SmpLayout {
    SmpLayout {
        sockets: u32::from(t.nodes),
        dies: u32::from(t.llcs_per_node),
        cores: u32::from(t.cores_per_llc),
        threads: u32::from(t.threads_per_core),
    }
}

pub(crate) fn runtime_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

#[cfg(test)]
mod backend_tests {
    use super::*;

    #[test]
    fn kvm_runs_get_the_kvm_console_reset_and_backend_arguments() {
        let plan = BootPlan {
            image: PathBuf::from("/k/bzImage"),
            cmdline: "quiet schedtape.backend=qemu nokaslr".into(),
            note: String::new(),
        };
        let c = kvm_config(
            &plan,
            PathBuf::from("/i.cpio"),
            Topology::new(2, 1, 2, 1),
            512,
        );
        assert_eq!(
            c.cmdline,
            "console=ttyS0 earlyprintk=serial,ttyS0,115200 reboot=k panic=-1 quiet \
             schedtape.backend=kvm nokaslr"
        );
        assert_eq!(c.kernel, PathBuf::from("/k/bzImage"));
        assert_eq!(c.initrd.as_deref(), Some(Path::new("/i.cpio")));
        assert_eq!((c.topology.cpus(), c.memory_mib), (4, 512));
        assert!(!c.stop_at_boot_mark);
    }
}
