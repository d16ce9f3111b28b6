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
    match build_into(&tree, &frag, &tmp, jobs, started) {
        Ok(()) => {}
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
    }
    let id = Identity {
        origin: tree.origin.clone(),
        source_version: tree.version.clone(),
        kernel_version: tree.kernel_version.clone(),
        config_hash: hash.to_string(),
        patches: tree.patches.clone(),
        base_method: cache::BASE_METHOD.to_string(),
        built_at: cache::now_rfc3339(),
        build_secs: started.elapsed().as_secs(),
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

/// Configures, verifies, compiles in `tmp/obj`, and leaves the artifacts in `tmp`.
fn build_into(
    tree: &SourceTree,
    frag: &Fragment,
    tmp: &Path,
    jobs: usize,
    started: Instant,
) -> Result<()> {
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

    phase(started, &format!("compile (make -j{jobs} bzImage vmlinux)"));
    let bar = progress_bar(started);
    let result = run_logged(
        &mut make(&[format!("-j{jobs}"), "bzImage".into(), "vmlinux".into()]),
        &mut log,
        Some(&bar),
    );
    bar.finish_and_clear();
    result?;

    for (from, to) in [
        ("arch/x86/boot/bzImage", "bzImage"),
        ("vmlinux", "vmlinux"),
        (".config", ".config"),
    ] {
        fs::rename(obj.join(from), tmp.join(to))
            .with_context(|| format!("the build produced no {from}"))?;
    }
    phase(started, "compiled; removing the object tree");
    fs::remove_dir_all(&obj)?;
    Ok(())
}

fn phase(started: Instant, what: &str) {
    eprintln!("kernel: [{}] {what}", elapsed(started));
}

fn elapsed(started: Instant) -> String {
    let s = started.elapsed().as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

/// A spinner with the elapsed time and make's latest step; hidden when stderr is no terminal.
fn progress_bar(started: Instant) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {pos} steps · {wide_msg}")
            .expect("valid template"),
    );
    bar.set_position(0);
    bar.enable_steady_tick(Duration::from_millis(200));
    // Keep the spinner's clock in line with the phase lines.
    bar.set_elapsed(started.elapsed());
    bar
}

/// Runs `cmd`, writing all its output to `log`. With `bar`, counts kbuild's step
/// lines (`  CC      kernel/fork.o`) into it, or prints a heartbeat line every 30 s
/// when the bar is hidden. On failure shows the last lines of output.
fn run_logged(cmd: &mut Command, log: &mut File, bar: Option<&ProgressBar>) -> Result<()> {
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
    let mut steps = 0u64;
    let mut last_beat = Instant::now();
    for line in rx {
        writeln!(log, "{line}")?;
        if let Some(bar) = bar
            && let Some(step) = kbuild_step(&line)
        {
            steps += 1;
            bar.set_position(steps);
            bar.set_message(step.to_string());
            if bar.is_hidden() && last_beat.elapsed() >= Duration::from_secs(30) {
                last_beat = Instant::now();
                eprintln!("kernel: [{}] {steps} steps, at {step}", elapsed_of(bar));
            }
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
    Ok(())
}

fn elapsed_of(bar: &ProgressBar) -> String {
    let s = bar.elapsed().as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
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
