//! `cargo xtask bundle`: what a run needs on a machine without a Rust toolchain
//! (a lent hardware-KVM box, say), small enough to carry: this program without
//! debug info, the guest `/init`, and the kernel (bzImage, the vmlinux without
//! DWARF, its .config). Run it there from a copy of the source tree, which holds
//! the scenarios and the kernel fragment.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::kernel::image::strip_debug;
use crate::kernel::{BuildOpts, ConfigSource, ResolveOpts, resolve};
use crate::{guest, workspace_root};

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Directory to fill (created; files in it are replaced).
    #[arg(short, long, default_value = "target/bundle")]
    pub output: PathBuf,
    /// Kernel to bundle: a bzImage, a vmlinux, or a directory holding them (default: the cached build).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
}

pub fn run(args: &BundleArgs) -> Result<()> {
    let root = workspace_root();
    let out = root.join(&args.output);
    let kdir = out.join("kernel");
    fs::create_dir_all(&kdir).with_context(|| format!("cannot create {}", kdir.display()))?;

    let opts = ResolveOpts {
        kernel: args.kernel.clone(),
        build: BuildOpts::default(),
        build_if_missing: true,
    };
    // The bundle boots elsewhere (our VMM); here it needs the kernel build's
    // packages and objcopy (binutils) for stripping.
    let mut needs = crate::prereq::for_tools(false, &opts);
    needs.need(&["binutils"], "stripping debug info");
    needs.ensure()?;
    let kernel = resolve(&opts)?;
    if let Some(bz) = &kernel.bzimage {
        copy(bz, &kdir.join("bzImage"))?;
    }
    // Without debug info (~100 MB) but with its symbols, which introspection
    // needs (the cache's PVH copy has none).
    if let Some(full) = &kernel.vmlinux {
        strip_debug(full, &kdir.join("vmlinux"))?;
    }
    if let ConfigSource::File(config) = &kernel.config {
        copy(config, &kdir.join(".config"))?;
    }
    let init = guest::build(&root)?;
    copy(&init, &out.join("schedtape-init"))?;
    let me = std::env::current_exe().context("cannot find this program")?;
    strip_debug(&me, &out.join("xtask"))?;

    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    eprintln!(
        "bundle in {} ({:.1} MB):",
        out.display(),
        crate::dir_bytes(&out) as f64 / 1e6
    );
    eprintln!(
        "  on the other machine, from a copy of this tree:\n  \
         {0}/xtask run scenario smoke --init {0}/schedtape-init --kernel {0}/kernel --backend kvm",
        rel(&out)
    );
    eprintln!(
        "  (its vmlinux has no DWARF: run-queue snapshots are off; add the full vmlinux with --vmlinux for them)"
    );
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}
