//! Command-line arguments.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Show, summarise, compare and validate schedtape trace files.
#[derive(Debug, Parser)]
#[command(name = "replay", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
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
    /// Compare two traces: metadata first, then every metric per step and cgroup.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show metrics that did not change too.
        #[arg(long)]
        all: bool,
    },
    /// Check every chunk; exit 0 when the trace is intact, 1 otherwise.
    Validate { trace: PathBuf },
}
