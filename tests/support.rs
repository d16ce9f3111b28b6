//! Helpers for the end-to-end tests: run `cargo xtask run scenario` and read the trace.
pub mod expect;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trace_format::file::Trace;
use trace_format::meta::Meta;
use trace_format::record::{Record, Timed};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A finished `cargo xtask run scenario` invocation.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    pub trace: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Run {
    /// A run that happened elsewhere (the nested lane's L1): `dir/name.trace`
    /// with its `.stdout`, `.stderr` and `.code` (the exit status) beside it.
    pub fn from_files(dir: &Path, name: &str) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap_or_default();
        let code: i32 = String::from_utf8_lossy(&read("code"))
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no exit code for {name} in {}", dir.display()));
        Run {
            output: Output {
                status: std::process::ExitStatus::from_raw(code << 8),
                stdout: read("stdout"),
                stderr: read("stderr"),
            },
            trace: dir.join(format!("{name}.trace")),
            _dir: None,
        }
    }

    /// Exit status of the run command.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Both streams, for assertion messages: results and verdicts are on
    /// stdout, progress and diagnostics on stderr.
    pub fn log(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// stdout of the run command: its results (trace closed, verdicts, outcome).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stderr of the run command: progress and diagnostics.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The trace's meta; panics when the trace is unreadable.
    pub fn meta(&self) -> Meta {
        let bytes = std::fs::read(&self.trace).unwrap_or_else(|e| {
            panic!("no trace {}: {e}\n{}", self.trace.display(), self.stderr())
        });
        Trace::open(&bytes).expect("trace opens").meta().clone()
    }

    /// The kernel command line the run noted in its trace.
    pub fn kernel_cmdline(&self) -> String {
        let meta = self.meta();
        meta.notes
            .iter()
            .find_map(|n| n.strip_prefix("kernel command line: "))
            .unwrap_or_else(|| panic!("no kernel command line in {:?}", meta.notes))
            .to_string()
    }

    /// Every record of the trace, in order; panics when the trace is unreadable.
    pub fn records(&self) -> Vec<Timed> {
        let bytes = std::fs::read(&self.trace).unwrap_or_else(|e| {
            panic!("no trace {}: {e}\n{}", self.trace.display(), self.stderr())
        });
        let trace = Trace::open(&bytes).expect("trace opens");
        let integrity = trace.integrity();
        assert!(!integrity.is_damaged(), "trace damaged: {integrity:?}");
        trace
            .records()
            .map(|r| r.expect("record decodes"))
            .collect()
    }
}

/// Runs `cargo xtask ARGS…` in the workspace root.
pub fn xtask<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> std::process::Output {
    Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["run", "--quiet", "-p", "xtask", "--"])
        .args(args)
        .output()
        .expect("cargo runs")
}

/// Runs `cargo xtask run scenario <scenario> <extra…>` writing a trace in a temp dir.
pub fn run_scenario(scenario: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("run.trace");
    let mut args: Vec<std::ffi::OsString> = ["run", "scenario", scenario, "-o"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(trace.clone().into());
    args.extend(extra.iter().map(Into::into));
    let output = xtask(args);
    Run {
        output,
        trace,
        _dir: Some(dir),
    }
}

/// Records of one kind, by a projection.
pub fn pick<T>(records: &[Timed], f: impl Fn(&Record) -> Option<T>) -> Vec<T> {
    records.iter().filter_map(|t| f(&t.record)).collect()
}

/// The cached project kernel's directory (`cargo xtask kernel path`), which
/// `cargo xtask test` builds before the end-to-end tests run.
pub fn project_kernel_dir() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["run", "--quiet", "-p", "xtask", "--", "kernel", "path"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "no cached kernel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
