//! `cargo xtask mutants`: mutation testing of the core modules with
//! cargo-mutants, installed when missing. Too slow for every CI run; see
//! docs/mutants.md for how often it runs and the last figures.
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;

/// The modules whose every mutant some test should catch, per crate.
const CORE: [(&str, &[&str]); 2] = [
    (
        "trace-format",
        &[
            "trace-format/src/scenario/validate/*.rs",
            "trace-format/src/file/codec.rs",
            "trace-format/src/file/fast.rs",
            "trace-format/src/file/recovery.rs",
            "trace-format/src/file/finder.rs",
            "trace-format/src/file/span_crc.rs",
            "trace-format/src/file/end_queue.rs",
        ],
    ),
    (
        "replay",
        &[
            "replay/src/stat/*.rs",
            "replay/src/verdict/*.rs",
            "replay/src/check.rs",
        ],
    ),
];

#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// Only this crate's core modules (trace-format or replay).
    #[arg(long = "crate", value_name = "C")]
    krate: Option<String>,
    /// Mutate only these files (globs from the workspace root) instead of the core modules.
    #[arg(long = "file", value_name = "GLOB")]
    files: Vec<String>,
    /// Mutants built and tested at once (each in its own copy of the tree).
    #[arg(long, default_value_t = 1)]
    jobs: u32,
    /// Test timeout per mutant, seconds (default: cargo-mutants' own, from the baseline).
    #[arg(long)]
    timeout: Option<u32>,
    /// Retest only the mutants the previous run in the same output did not catch.
    #[arg(long)]
    iterate: bool,
    /// List the mutants without testing them.
    #[arg(long)]
    list: bool,
    /// Further arguments for cargo-mutants, e.g. `-- --cargo-arg=--lib`.
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Runs cargo-mutants over the chosen crates, one after the other.
/// Exit status: 0 all caught, 1 some missed or timed out, 2 bad arguments.
pub fn run(args: &MutantsArgs, root: &Path) -> Result<ExitCode> {
    let crates = match selection(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask mutants: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    ensure_installed()?;
    let mut failed = false;
    for (krate, files) in &crates {
        let out = root
            .join("target/mutants")
            .join(krate.as_deref().unwrap_or("files"));
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root).arg("mutants");
        if let Some(k) = krate {
            cmd.args(["--package", k]);
        }
        for f in files {
            cmd.args(["--file", f]);
        }
        cmd.arg(format!("--jobs={}", args.jobs));
        if let Some(t) = args.timeout {
            cmd.arg(format!("--timeout={t}"));
        }
        if args.iterate {
            cmd.arg("--iterate");
        }
        if args.list {
            cmd.arg("--list");
        } else {
            // cargo-mutants makes `mutants.out` but not the folders above it.
            std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
            cmd.arg("--output").arg(&out);
        }
        cmd.args(&args.extra);
        eprintln!(
            "mutants: {} ({} file pattern(s)){}",
            krate.as_deref().unwrap_or("selected files"),
            files.len(),
            if args.list {
                String::new()
            } else {
                format!(", results in {}", out.join("mutants.out").display())
            }
        );
        let status = cmd.status().context("run cargo mutants")?;
        // cargo-mutants exits 2 when mutants were missed, 3 on timeouts.
        failed |= !status.success();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// (crate, file globs) to run: the core modules, narrowed by `--crate`, or
/// the `--file` globs (each in the crate of its first path component).
fn selection(args: &MutantsArgs) -> Result<Vec<(Option<String>, Vec<String>)>> {
    if let Some(k) = &args.krate
        && !CORE.iter().any(|(c, _)| c == k)
    {
        let known: Vec<&str> = CORE.iter().map(|(c, _)| *c).collect();
        bail!(
            "--crate {k}: no core modules there; use one of {}",
            known.join(", ")
        );
    }
    if !args.files.is_empty() {
        let mut out: Vec<(Option<String>, Vec<String>)> = Vec::new();
        for f in &args.files {
            let first = f.split('/').next().unwrap_or_default();
            let krate = args.krate.clone().or_else(|| {
                CORE.iter()
                    .any(|(c, _)| *c == first)
                    .then(|| first.to_string())
            });
            match out.iter_mut().find(|(k, _)| *k == krate) {
                Some((_, files)) => files.push(f.clone()),
                None => out.push((krate, vec![f.clone()])),
            }
        }
        return Ok(out);
    }
    Ok(CORE
        .iter()
        .filter(|(c, _)| args.krate.as_deref().is_none_or(|k| k == *c))
        .map(|(c, files)| {
            (
                Some((*c).to_string()),
                files.iter().map(|f| (*f).to_string()).collect(),
            )
        })
        .collect())
}

/// Installs cargo-mutants with `cargo install --locked` unless `cargo mutants` runs.
fn ensure_installed() -> Result<()> {
    let present = Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "mutants: cargo-mutants not found; installing it with `cargo install cargo-mutants --locked` (a few minutes)…"
    );
    let status = Command::new("cargo")
        .args(["install", "cargo-mutants", "--locked"])
        .status()
        .context("run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-mutants --locked failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(krate: Option<&str>, files: &[&str]) -> MutantsArgs {
        MutantsArgs {
            krate: krate.map(String::from),
            files: files.iter().map(|f| (*f).to_string()).collect(),
            jobs: 1,
            timeout: None,
            iterate: false,
            list: false,
            extra: Vec::new(),
        }
    }

    #[test]
    fn default_is_every_core_module() {
        let s = selection(&args(None, &[])).unwrap();
        let crates: Vec<_> = s.iter().map(|(k, _)| k.as_deref().unwrap()).collect();
        assert_eq!(crates, ["trace-format", "replay"]);
        assert!(
            s[0].1
                .contains(&"trace-format/src/scenario/validate/*.rs".into())
        );
        assert!(s[1].1.contains(&"replay/src/check.rs".into()));
    }

    #[test]
    fn crate_and_files_narrow_the_run() {
        let s = selection(&args(Some("replay"), &[])).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0.as_deref(), Some("replay"));
        let s = selection(&args(
            None,
            &[
                "replay/src/stat/mwu.rs",
                "trace-format/src/file/codec.rs",
                "replay/src/check.rs",
            ],
        ))
        .unwrap();
        assert_eq!(
            s,
            [
                (
                    Some("replay".into()),
                    vec![
                        "replay/src/stat/mwu.rs".into(),
                        "replay/src/check.rs".into()
                    ]
                ),
                (
                    Some("trace-format".into()),
                    vec!["trace-format/src/file/codec.rs".into()]
                ),
            ]
        );
        let err = selection(&args(Some("vmm"), &[])).unwrap_err().to_string();
        assert!(
            err.contains("--crate vmm") && err.contains("replay"),
            "{err}"
        );
    }
}
