//! `cargo xtask kernel build`: configure with the fragment, verify the result,
//! compile with a one-line progress display, and install into the cache atomically.
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::cache::{self, Identity};
use super::fragment;
use super::patches::{self, Patch};
use super::source::{self, SourceTree};
use super::{deps, fragment_path};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOpts {
    /// A kernel source tree; `None` builds Debian's `linux-source-6.12`.
    pub src: Option<PathBuf>,
    /// `make -j`; `None` uses every CPU.
    pub jobs: Option<usize>,
}

/// The build recipe: the config fragment and the patches for Debian's source,
/// with the cache hash of each kind of tree.
pub struct Fragment {
    pub path: PathBuf,
    pub options: Vec<(String, fragment::Value)>,
    /// Applied to Debian's source only.
    pub patches: Vec<Patch>,
    /// The cache hash of a build of a user's tree (the fragment alone).
    pub hash: String,
    /// The cache hash of a build of Debian's tree (the fragment and the patches).
    pub debian_hash: String,
}

impl Fragment {
    pub fn load() -> Result<Self> {
        let path = fragment_path();
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let options =
            fragment::parse_fragment(&text).with_context(|| format!("in {}", path.display()))?;
        let patches = patches::load(&patches::dir())?;
        Ok(Fragment {
            path,
            options,
            hash: cache::config_hash(text.as_bytes(), &[]),
            debian_hash: cache::config_hash(text.as_bytes(), &patches),
            patches,
        })
    }

    /// The cache hash for a build from `src` (`None`: Debian's source).
    pub fn hash_for(&self, src: Option<&Path>) -> &str {
        match src {
            None => &self.debian_hash,
            Some(_) => &self.hash,
        }
    }
}

/// The cache entry for `opts` if one is complete, without building.
pub fn cached(opts: &BuildOpts, frag: &Fragment) -> Result<Option<(PathBuf, Identity)>> {
    let kernels = cache::kernels_dir(&cache::root()?);
    match &opts.src {
        None => Ok(cache::find(
            &kernels,
            source::DEBIAN_ORIGIN,
            &frag.debian_hash,
        )),
        Some(src) => {
            let tree = source::user(src)?;
            let dir = kernels.join(cache::entry_name(&tree.version, &frag.hash));
            Ok(cache::load_entry(&dir).map(|id| (dir, id)))
        }
    }
}

/// `kernel prune`: removes (or with `dry_run` lists) the cache entries
/// [`cache::superseded`] names, with their sizes.
pub fn prune(dry_run: bool) -> Result<()> {
    let frag = Fragment::load()?;
    let kernels = cache::kernels_dir(&cache::root()?);
    let entries = cache::entries(&kernels);
    let gone = cache::superseded(
        &entries,
        source::DEBIAN_ORIGIN,
        &frag.debian_hash,
        &frag.hash,
    );
    let mut freed = 0u64;
    for dir in &gone {
        let size = crate::dir_bytes(dir);
        freed += size;
        eprintln!(
            "kernel: {} {} ({:.0} MB)",
            if dry_run { "would remove" } else { "removing" },
            dir.display(),
            size as f64 / 1e6
        );
        if !dry_run {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    eprintln!(
        "kernel: {} {} of {} cached kernels, {:.0} MB",
        if dry_run { "would prune" } else { "pruned" },
        gone.len(),
        entries.len(),
        freed as f64 / 1e6
    );
    Ok(())
}

/// Returns the cache entry for `opts`, building it first when it is missing.
pub fn ensure(opts: &BuildOpts) -> Result<PathBuf> {
    let frag = Fragment::load()?;
    if let Some((dir, _)) = cached(opts, &frag)? {
        eprintln!("cached: {}", dir.display());
        return Ok(dir);
    }
    let root = cache::root()?;
    let kernels = cache::kernels_dir(&root);
    fs::create_dir_all(&kernels).with_context(|| format!("cannot create {}", kernels.display()))?;
    deps::ensure(deps::BUILD_PACKAGES, "the kernel build")?;
    let started = Instant::now();
    let tree = match &opts.src {
        None => source::debian(&root, &frag.patches)?,
        Some(src) => source::user(src)?,
    };
    let hash = frag.hash_for(opts.src.as_deref());
    let name = cache::entry_name(&tree.version, hash);
    let dest = kernels.join(&name);
    // One build per entry at a time: a second run waits and uses the first's.
    let _building = lock_entry(&kernels, &name)?;
    if cache::load_entry(&dest).is_some() {
        eprintln!("cached: {}", dest.display());
        return Ok(dest);
    }
    cache::remove_stale_temps(&kernels);
    let tmp = cache::temp_dir(&kernels, &name);
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    eprintln!(
        "kernel: building {} ({}) with {jobs} jobs into {}",
        tree.kernel_version,
        tree.origin,
        dest.display()
    );
    let estimate = estimate_steps(&kernels, hash);
    let steps = match build_into(&tree, &frag, &tmp, jobs, started, estimate) {
        Ok(steps) => steps,
        Err(err) => {
            let log = kernels.join(format!("{name}.failed.log"));
            let kept = fs::rename(tmp.join("build.log"), &log).is_ok();
            let _ = fs::remove_dir_all(&tmp);
            if kept {
                return Err(
                    err.context(format!("kernel build failed; full log: {}", log.display()))
                );
            }
            return Err(err.context("kernel build failed"));
        }
    };
    let id = Identity {
        origin: tree.origin.clone(),
        source_version: tree.version.clone(),
        kernel_version: tree.kernel_version.clone(),
        config_hash: hash.to_string(),
        patches: tree.patches.clone(),
        base_method: cache::BASE_METHOD.to_string(),
        built_at: cache::now_rfc3339(),
        build_secs: started.elapsed().as_secs(),
        build_steps: Some(steps),
    };
    fs::write(tmp.join(cache::IDENTITY), toml::to_string(&id)?)?;
    if let Err(err) = fs::rename(&tmp, &dest) {
        // Another build finished first: keep its entry.
        let _ = fs::remove_dir_all(&tmp);
        if cache::load_entry(&dest).is_none() {
            return Err(err)
                .with_context(|| format!("cannot move the build into {}", dest.display()));
        }
    }
    let size = |f: &str| {
        fs::metadata(dest.join(f))
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0)
    };
    eprintln!(
        "kernel: built {} in {} (bzImage {:.1} MB, vmlinux {:.1} MB)",
        dest.display(),
        elapsed(started),
        size("bzImage"),
        size("vmlinux")
    );
    Ok(dest)
}

/// Holds `kernels/.<name>.lock` exclusively, waiting (and saying so) while
/// another process builds the same entry.
fn lock_entry(kernels: &Path, name: &str) -> Result<File> {
    let path = kernels.join(format!(".{name}.lock"));
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!("kernel: another process is building {name}; waiting for it");
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(file)
}

/// Configures, verifies, compiles in `tmp/obj`, and leaves the artifacts in
/// `tmp`; returns the compile's kbuild step count.
fn build_into(
    tree: &SourceTree,
    frag: &Fragment,
    tmp: &Path,
    jobs: usize,
    started: Instant,
    estimate: Option<Estimate>,
) -> Result<u64> {
    let obj = tmp.join("obj");
    fs::create_dir_all(&obj)?;
    if tree.dir.join(".config").exists() {
        eprintln!(
            "kernel: note: {} has an in-tree .config; if make refuses, run `make mrproper` there",
            tree.dir.display()
        );
    }
    let mut log = File::create(tmp.join("build.log"))?;
    let fragment_abs = frag.path.canonicalize()?;
    let make = |args: &[String]| {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&tree.dir)
            .arg(format!("O={}", obj.display()))
            .arg("ARCH=x86_64")
            .args(args);
        cmd
    };

    phase(started, "configure (allnoconfig + fragment, olddefconfig)");
    let alloc = format!("KCONFIG_ALLCONFIG={}", fragment_abs.display());
    run_logged(&mut make(&["allnoconfig".into(), alloc]), &mut log, None)?;
    run_logged(&mut make(&["olddefconfig".into()]), &mut log, None)?;
    let config_text = fs::read_to_string(obj.join(".config"))?;
    let unmet = fragment::unmet(&frag.options, &fragment::parse_config(&config_text));
    if !unmet.is_empty() {
        let lines: Vec<String> = unmet.iter().map(|u| format!("  {u}")).collect();
        let hint = if unmet.iter().any(|u| u.name == "DEBUG_INFO_BTF") {
            "\n(DEBUG_INFO_BTF needs pahole >= 1.21: the `dwarves` package)"
        } else {
            ""
        };
        bail!(
            "{} option(s) of {} did not survive olddefconfig (unmet dependencies or unknown symbols):\n{}{hint}",
            unmet.len(),
            frag.path.display(),
            lines.join("\n")
        );
    }
    phase(
        started,
        &format!(
            "config verified: all {} fragment options hold",
            frag.options.len()
        ),
    );

    match &estimate {
        Some(e) => phase(
            started,
            &format!(
                "compile (make -j{jobs} bzImage vmlinux): about {} steps ({})",
                e.steps, e.from
            ),
        ),
        None => phase(started, &format!("compile (make -j{jobs} bzImage vmlinux)")),
    }
    let mut progress = Progress::new(started, estimate);
    let result = run_logged(
        &mut make(&[format!("-j{jobs}"), "bzImage".into(), "vmlinux".into()]),
        &mut log,
        Some(&mut progress),
    );
    progress.bar.finish_and_clear();
    let steps = result?;

    for (from, to) in [
        ("arch/x86/boot/bzImage", "bzImage"),
        ("vmlinux", "vmlinux"),
        (".config", ".config"),
    ] {
        fs::rename(obj.join(from), tmp.join(to))
            .with_context(|| format!("the build produced no {from}"))?;
    }
    phase(
        started,
        &format!("compiled in {steps} steps; removing the object tree"),
    );
    fs::remove_dir_all(&obj)?;
    Ok(steps)
}

fn phase(started: Instant, what: &str) {
    eprintln!("kernel: [{}] {what}", elapsed(started));
}

fn elapsed(started: Instant) -> String {
    let s = started.elapsed().as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

/// The compile's expected step count and where that figure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub steps: u64,
    pub from: String,
}

/// kbuild steps of the project kernel's compile (Debian 6.12 with the
/// fragment), the estimate before any build of a config has been cached.
const PROJECT_KERNEL_STEPS: u64 = 1850;

/// The step count to expect for a build of `config_hash`: the newest cached
/// build of the same config (its recorded count, or the steps in its log),
/// else the project kernel's measured count when that is what is built.
fn estimate_steps(kernels: &Path, config_hash: &str) -> Option<Estimate> {
    let previous = cache::entries(kernels)
        .into_iter()
        .filter(|(_, id)| id.config_hash == config_hash)
        .max_by(|(_, a), (_, b)| a.built_at.cmp(&b.built_at));
    if let Some((dir, id)) = previous {
        let steps = id.build_steps.or_else(|| {
            let log = fs::read_to_string(dir.join("build.log")).ok()?;
            Some(log.lines().filter(|l| kbuild_step(l).is_some()).count() as u64)
        });
        if let Some(steps) = steps.filter(|&n| n > 0) {
            return Some(Estimate {
                steps,
                from: format!("the previous build of this config, {}", id.built_at),
            });
        }
    }
    let frag = Fragment::load().ok()?;
    (config_hash == frag.debian_hash).then(|| Estimate {
        steps: PROJECT_KERNEL_STEPS,
        from: "the project kernel's usual count".into(),
    })
}

/// The compile's progress: a bar (fraction and time left) on a terminal,
/// else a line every 30 s.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    compile_started: Instant,
    estimate: Option<Estimate>,
    steps: u64,
    last_beat: Instant,
}

impl Progress {
    fn new(started: Instant, estimate: Option<Estimate>) -> Self {
        let template = if estimate.is_some() {
            "{spinner} [{elapsed}] {pos}/{len} steps ({percent}%, {msg}"
        } else {
            "{spinner} [{elapsed}] {pos} steps · {wide_msg}"
        };
        let bar = ProgressBar::new(estimate.as_ref().map_or(0, |e| e.steps));
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        // Keep the bar's clock in line with the phase lines.
        bar.set_elapsed(started.elapsed());
        Progress {
            bar,
            started,
            compile_started: Instant::now(),
            estimate,
            steps: 0,
            last_beat: Instant::now(),
        }
    }

    fn step(&mut self, step: &str) {
        self.steps += 1;
        let status = self.status(step);
        if let Some(e) = &self.estimate {
            // A bigger build than expected: let the bar grow instead of overflow.
            self.bar.set_length(e.steps.max(self.steps + 1));
        }
        self.bar.set_position(self.steps);
        self.bar.set_message(match &self.estimate {
            Some(_) => status.clone(),
            None => step.to_string(),
        });
        if self.bar.is_hidden() && self.last_beat.elapsed() >= Duration::from_secs(30) {
            self.last_beat = Instant::now();
            eprintln!("kernel: [{}] {}", elapsed(self.started), self.line(step));
        }
    }

    /// `left ~4m10s) · CC kernel/fork.o` after the bar's `pos/len (pct%, `.
    fn status(&self, step: &str) -> String {
        match remaining(
            self.steps,
            self.estimate.as_ref(),
            self.compile_started.elapsed(),
        ) {
            Some(left) => format!("~{} left) · {step}", mins(left)),
            None => format!("finishing) · {step}"),
        }
    }

    /// The heartbeat line: `315/2900 steps (10 %, ~25m10s left), at CC …`.
    fn line(&self, step: &str) -> String {
        match &self.estimate {
            Some(e) => {
                let pct = (self.steps * 100 / e.steps.max(1)).min(99);
                let left = remaining(self.steps, Some(e), self.compile_started.elapsed())
                    .map_or_else(|| "finishing".to_string(), |d| format!("~{} left", mins(d)));
                format!(
                    "{}/{} steps ({pct} %, {left}), at {step}",
                    self.steps, e.steps
                )
            }
            None => format!("{} steps, at {step}", self.steps),
        }
    }
}

/// Time left at the pace so far: `None` once past the estimate (or before
/// there is a pace to go by).
fn remaining(steps: u64, estimate: Option<&Estimate>, spent: Duration) -> Option<Duration> {
    let total = estimate?.steps;
    if steps == 0 || steps >= total {
        return None;
    }
    let per_step = spent.as_secs_f64() / steps as f64;
    Some(Duration::from_secs_f64(per_step * (total - steps) as f64))
}

fn mins(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

/// Runs `cmd`, writing all its output to `log`. With `progress`, counts
/// kbuild's step lines (`  CC      kernel/fork.o`) into it. On failure shows
/// the last lines of output. Returns the steps counted.
fn run_logged(
    cmd: &mut Command,
    log: &mut File,
    mut progress: Option<&mut Progress>,
) -> Result<u64> {
    writeln!(log, "$ {cmd:?}")?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(40);
    for line in rx {
        writeln!(log, "{line}")?;
        if let Some(p) = progress.as_deref_mut()
            && let Some(step) = kbuild_step(&line)
        {
            p.step(step);
        }
        if tail.len() == 40 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    if !status.success() {
        eprintln!("--- last lines of make output ---");
        for line in &tail {
            eprintln!("{line}");
        }
        bail!("{cmd:?} failed ({status})");
    }
    Ok(progress.map_or(0, |p| p.steps))
}

/// `"CC      kernel/fork.o"` from kbuild's quiet output, else `None`.
fn kbuild_step(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("  ")?;
    let tag = rest.split_whitespace().next()?;
    (tag.len() <= 8
        && tag
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
    .then_some(rest.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kernels: &Path, name: &str, hash: &str, steps: Option<u64>, log: &str) {
        let dir = kernels.join(name);
        fs::create_dir_all(&dir).unwrap();
        for a in ["bzImage", "vmlinux", ".config", "build.log"] {
            fs::write(dir.join(a), b"x").unwrap();
        }
        fs::write(dir.join("build.log"), log).unwrap();
        let id = Identity {
            origin: "src:/k".into(),
            source_version: name.into(),
            kernel_version: "6.12".into(),
            config_hash: hash.into(),
            patches: Vec::new(),
            base_method: cache::BASE_METHOD.into(),
            built_at: format!("2026-01-0{}T00:00:00Z", name.len() % 9),
            build_secs: 1,
            build_steps: steps,
        };
        fs::write(dir.join(cache::IDENTITY), toml::to_string(&id).unwrap()).unwrap();
    }

    #[test]
    fn a_second_build_of_an_entry_waits_for_the_first() {
        let kernels = tempfile::tempdir().unwrap();
        let first = lock_entry(kernels.path(), "k").unwrap();
        let (tx, rx) = mpsc::channel();
        let dir = kernels.path().to_path_buf();
        let second = std::thread::spawn(move || {
            let held = lock_entry(&dir, "k").unwrap();
            tx.send(()).unwrap();
            drop(held);
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "the second build did not wait");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second build goes on once the first is done");
        second.join().unwrap();
        // Another entry is not held up.
        let _other = lock_entry(kernels.path(), "other").unwrap();
    }

    #[test]
    fn estimates_come_from_the_previous_build_of_the_config() {
        let kernels = tempfile::tempdir().unwrap();
        let k = kernels.path();
        assert_eq!(estimate_steps(k, "abc"), None);
        entry(k, "a", "abc", Some(1234), "");
        entry(k, "bb", "other", Some(99), "");
        let e = estimate_steps(k, "abc").unwrap();
        assert_eq!(e.steps, 1234);
        assert!(
            e.from.starts_with("the previous build of this config"),
            "{}",
            e.from
        );
        // Built before counts were recorded: the log's step lines.
        entry(
            k,
            "ccc",
            "old",
            None,
            "  CC      a.o\nwarning\n  LD      vmlinux\n",
        );
        assert_eq!(estimate_steps(k, "old").map(|e| e.steps), Some(2));
        let frag = Fragment::load().unwrap();
        let project = estimate_steps(k, &frag.debian_hash).unwrap();
        assert_eq!(project.steps, PROJECT_KERNEL_STEPS);
    }

    #[test]
    fn progress_gives_a_fraction_and_the_time_left() {
        let estimate = Estimate {
            steps: 400,
            from: "t".into(),
        };
        let left = remaining(100, Some(&estimate), Duration::from_secs(60)).unwrap();
        assert_eq!(left.as_secs(), 180);
        assert_eq!(remaining(0, Some(&estimate), Duration::from_secs(9)), None);
        assert_eq!(
            remaining(400, Some(&estimate), Duration::from_secs(9)),
            None
        );
        assert_eq!(remaining(5, None, Duration::from_secs(9)), None);
        let mut p = Progress::new(Instant::now(), Some(estimate));
        p.bar
            .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        p.compile_started = Instant::now() - Duration::from_secs(60);
        p.steps = 99;
        p.step("CC      kernel/fork.o");
        let line = p.line("CC      kernel/fork.o");
        assert!(line.starts_with("100/400 steps (25 %, ~3m0"), "{line}");
        assert!(line.ends_with("left), at CC      kernel/fork.o"), "{line}");
        p.steps = 450;
        assert_eq!(p.line("LD x"), "450/400 steps (99 %, finishing), at LD x");
    }

    #[test]
    fn recognises_kbuild_steps() {
        assert_eq!(
            kbuild_step("  CC      kernel/fork.o"),
            Some("CC      kernel/fork.o")
        );
        assert_eq!(
            kbuild_step("  BTF     .btf.vmlinux.bin.o"),
            Some("BTF     .btf.vmlinux.bin.o")
        );
        assert_eq!(kbuild_step("kernel/fork.c:12: warning: x"), None);
        assert_eq!(kbuild_step("  in function foo"), None);
    }
}
