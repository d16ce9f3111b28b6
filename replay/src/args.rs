//! Command-line arguments.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Show, summarise, compare, judge and validate schedtape trace files.
#[derive(Debug, Parser)]
#[command(name = "replay", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run metadata, record counts, steps with their ops, and damage found.
    Show {
        trace: PathBuf,
        /// Also list every worker sample and console line.
        #[arg(long)]
        records: bool,
    },
    /// Per step and cgroup: workers, throughput, CPU share, waiting, migrations, wake latency.
    Stats {
        trace: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare runs: metadata first, then every metric with statistics.
    ///
    /// `replay diff A B`, `replay diff A1 A2 A3 -- B1 B2 B3`, or `--a A… --b B…`.
    /// With at least `min_runs` (5) traces per side the unit is a run; with fewer,
    /// sample intervals within the runs, judged against a wider noise band.
    Diff {
        /// Side A, then side B after `--`; or exactly two traces.
        traces: Vec<PathBuf>,
        #[arg(last = true, hide = true)]
        after: Vec<PathBuf>,
        /// Traces of side A.
        #[arg(long = "a", num_args = 1.., conflicts_with = "traces")]
        side_a: Vec<PathBuf>,
        /// Traces of side B.
        #[arg(long = "b", num_args = 1.., conflicts_with = "traces")]
        side_b: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show metrics that did not change too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        knobs: Knobs,
        #[arg(long, value_enum, default_value_t)]
        color: ColorChoice,
    },
    /// Regression check for `git bisect run`: exit 0 no regression, 1 regression
    /// (a worse metric, a newly failing verdict, a kernel panic or an ejected
    /// scheduler), 125 cannot judge (unreadable, truncated or damaged trace, a
    /// run that failed for the harness's reasons, too few samples).
    Check {
        /// Baseline trace; repeat for several runs.
        #[arg(long, required = true)]
        baseline: Vec<PathBuf>,
        /// Traces of the run(s) to judge.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        knobs: Knobs,
    },
    /// Find the first bad commit among traces ordered by commit.
    ///
    /// Give trace files oldest first, or a directory: each trace's commit comes
    /// from a `<trace>.commit` sidecar (else its file stem), and the order from
    /// `commits.txt` in the directory (oldest first; else recording time).
    /// Traces of the same commit are repeated runs of it. Exit 0 when it could
    /// judge, 125 when it could judge no commit, 2 on an error.
    Bisect {
        /// Trace files in commit order, or one directory.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Known-good traces (default: the oldest commit's traces).
        #[arg(long)]
        baseline: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        knobs: Knobs,
    },
    /// Verdicts over one run: starvation, cpuset isolation, fairness, weight
    /// share, scheduling gap, wake latency, run-queue stalls. Exit 1 when one fails.
    Judge {
        trace: PathBuf,
        /// TOML file overriding the default thresholds.
        #[arg(long)]
        thresholds: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// SVG: per-CPU run-queue heatmap and per-cgroup throughput over time.
    Plot {
        trace: PathBuf,
        /// A second trace drawn beside the first.
        other: Option<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Export a trace for other tools.
    Export {
        trace: PathBuf,
        /// Chrome trace-event JSON, as ui.perfetto.dev opens.
        #[arg(long, required = true)]
        perfetto: bool,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check every chunk; exit 0 when the trace is intact, 1 otherwise.
    Validate { trace: PathBuf },
}

/// Thresholds shared by `diff`, `check` and `bisect`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Knobs {
    /// TOML file with thresholds (see `replay judge --help`).
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Noise band in percent when runs are the unit (default 1).
    #[arg(long)]
    pub noise: Option<f64>,
    /// Noise band in percent when single runs are compared by interval (default 20).
    #[arg(long)]
    pub interval_noise: Option<f64>,
    /// Significance level after correction (default 0.05).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Runs per side needed to use runs as the unit (default 5).
    #[arg(long)]
    pub min_runs: Option<usize>,
}
