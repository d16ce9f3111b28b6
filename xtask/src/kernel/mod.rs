//! Kernel provisioning: build Debian's (or a user's) kernel with schedtape's config
//! fragment, cache it, and resolve the kernel a run boots.
mod build;
mod cache;
pub mod check;
pub mod deps;
mod fragment;
pub mod image;
mod patches;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

pub use build::BuildOpts;
#[allow(unused_imports, reason = "entry points for the run command")]
pub use check::{MissingOption, check_config};
#[allow(unused_imports, reason = "entry points for the run command")]
pub use image::ConfigSource;
pub use image::{KernelImage, ResolveOpts, resolve};

/// `cargo xtask kernel …`
#[derive(Debug, Subcommand)]
pub enum KernelCmd {
    /// Build the guest kernel into the cache (Debian's linux-source-6.12 unless --src).
    Build {
        /// A kernel source tree to build instead (built out of tree; the tree is not touched).
        #[arg(long)]
        src: Option<PathBuf>,
        /// Parallel make jobs (default: every CPU).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Print the cached kernel's directory.
    Path {
        /// The source tree the kernel was built from (default: Debian's).
        #[arg(long)]
        src: Option<PathBuf>,
    },
    /// Remove cached kernels no build of the current recipe can use again
    /// (other configs or patch series, older Debian builds).
    Prune {
        /// List what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show which kernel a run would boot and check its config for what schedtape needs.
    Check {
        /// A bzImage, vmlinux, or directory holding them (default: the cached kernel).
        kernel: Option<PathBuf>,
    },
}

/// Runs one `kernel` subcommand.
pub fn run(cmd: KernelCmd) -> Result<ExitCode> {
    match cmd {
        KernelCmd::Build { src, jobs } => {
            let dir = build::ensure(&BuildOpts { src, jobs })?;
            println!("{}", dir.display());
        }
        KernelCmd::Path { src } => {
            let opts = ResolveOpts {
                build: BuildOpts { src, jobs: None },
                ..ResolveOpts::default()
            };
            let image = resolve(&opts)?;
            println!("{}", image.cache_dir.unwrap_or_default().display());
        }
        KernelCmd::Prune { dry_run } => build::prune(dry_run)?,
        KernelCmd::Check { kernel } => {
            let image = resolve(&ResolveOpts {
                kernel,
                ..ResolveOpts::default()
            })?;
            print_image(&image);
            if let Err(err) = image.require_options() {
                println!("{err:#}");
                return Ok(ExitCode::FAILURE);
            }
            match image.config {
                image::ConfigSource::Unknown => {
                    println!("options not checked: the config is unknown")
                }
                _ => println!("all {} required options present", check::REQUIRED.len()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_image(image: &KernelImage) {
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string())
    };
    if let Some(dir) = &image.cache_dir {
        println!("cache:   {}", dir.display());
        if let Some(id) = cache::load_entry(dir) {
            let patches = match id.patches.is_empty() {
                true => "none".to_string(),
                false => id.patches.join(", "),
            };
            println!("patches: {patches}");
        }
    }
    println!("bzImage: {}", show(&image.bzimage));
    println!(
        "vmlinux: {}{}",
        show(&image.vmlinux),
        if image.pvh { " (PVH entry)" } else { "" }
    );
    println!("boot:    {}", image.boot_image().display());
    println!("config:  {}", image.config);
}

/// `fixtures/kernel/schedtape.config` in this workspace.
pub fn fragment_path() -> PathBuf {
    crate::workspace_root().join("fixtures/kernel/schedtape.config")
}
