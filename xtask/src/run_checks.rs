//! What `run scenario` checks before anything is built or booted, and once
//! the kernel is known: input and output paths, memory and topology limits,
//! and the kernel's own CPU limit. Every failure here is bad input (exit 2).
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use trace_format::scenario::{Scenario, Topology};

use crate::kernel::KernelImage;
use crate::scenario_run::{RunArgs, numbered, scenario_path};
use crate::workspace_root;

/// Refuses, before anything is built, input paths of the wrong kind: a FIFO
/// or device would hang a read, a directory is no program.
pub(crate) fn check_input_paths(args: &RunArgs) -> Result<()> {
    let kind = |flag: &str, p: &Path, want_dir: bool| -> Result<()> {
        let meta = std::fs::metadata(p).map_err(|e| anyhow!("{flag} {}: {e}", p.display()))?;
        let ok = if want_dir {
            meta.is_dir()
        } else {
            meta.is_file()
        };
        if !ok {
            let what = if want_dir {
                "a directory"
            } else {
                "a regular file"
            };
            bail!("{flag} {}: not {what}", p.display());
        }
        Ok(())
    };
    for (flag, k) in [
        ("--kernel", &args.kernel),
        ("--base-kernel", &args.base_kernel),
    ] {
        let Some(k) = k else { continue };
        let meta = std::fs::metadata(k).map_err(|e| anyhow!("{flag} {}: {e}", k.display()))?;
        if !meta.is_file() && !meta.is_dir() {
            bail!("{flag} {}: not a regular file or a directory", k.display());
        }
    }
    if let Some(src) = &args.kernel_src {
        kind("--kernel-src", src, true)?;
    }
    if let Some(v) = &args.vmlinux {
        kind("--vmlinux", v, false)?;
    }
    // Any regular file: booting a non-program as /init is how a kernel panic
    // is provoked on purpose.
    if let Some(init) = &args.init {
        kind("--init", init, false)?;
    }
    Ok(())
}

/// Refuses, before anything is built, trace paths that cannot be written or
/// would overwrite an input (the scenario file, `--from`, `--thresholds`, …).
pub(crate) fn check_outputs(args: &RunArgs, output: &Path) -> Result<()> {
    let scenario_file = args
        .scenario
        .as_deref()
        .map(|name| scenario_path(&workspace_root(), name))
        .transpose()?;
    let inputs: Vec<(&str, &Path)> = [
        ("the scenario file", scenario_file.as_deref()),
        ("--from", args.from.as_deref()),
        ("--thresholds", args.thresholds.as_deref()),
        ("--kernel", args.kernel.as_deref()),
        ("--base-kernel", args.base_kernel.as_deref()),
        ("--init", args.init.as_deref()),
        ("--vmlinux", args.vmlinux.as_deref()),
    ]
    .into_iter()
    .filter_map(|(what, p)| Some((what, p?)))
    .collect();
    let rounds: Vec<PathBuf> = if args.until_decided {
        // Every trace the series may write: new runs, and base runs with
        // --base-kernel.
        (1..=args.max_runs)
            .map(|r| numbered(output, r))
            .chain((1..args.max_runs).map(|r| crate::decide::base_output(output, r)))
            .collect()
    } else if args.repeat == 1 {
        vec![output.to_path_buf()]
    } else {
        (1..=args.repeat).map(|r| numbered(output, r)).collect()
    };
    for out in &rounds {
        crate::outputs::check_writable(out, &inputs).map_err(|e| anyhow!("-o {e}"))?;
    }
    Ok(())
}

/// `--memory` against the scenario, and the topology against the backend
/// that will boot it (see [`crate::limits`]).
pub(crate) fn check_memory(
    memory_mib: u64,
    scenario: &Scenario,
    backend: crate::limits::BackendKind,
) -> Result<()> {
    crate::limits::check_memory(memory_mib, scenario)?;
    crate::limits::check_topology(scenario.topology, backend)
}

/// The kernel's `CONFIG_HZ`, from its `.config` or IKCONFIG (`None` when unknown).
pub(crate) fn kernel_hz(kernel: &KernelImage) -> Option<u32> {
    kernel_config_number(kernel, "CONFIG_HZ")
}

/// A numeric option of the kernel's `.config` or IKCONFIG (`None` when unknown).
fn kernel_config_number(kernel: &KernelImage, option: &str) -> Option<u32> {
    use crate::kernel::ConfigSource;
    let text = match &kernel.config {
        ConfigSource::File(p) => std::fs::read_to_string(p).ok()?,
        ConfigSource::Ikconfig(image) => {
            crate::kernel::check::extract_ikconfig(&std::fs::read(image).ok()?).ok()??
        }
        ConfigSource::Unknown => return None,
    };
    text.lines()
        .find_map(|l| l.strip_prefix(option)?.strip_prefix('='))
        .and_then(|v| v.trim().parse().ok())
}

/// A topology the kernel cannot bring up in full (`CONFIG_NR_CPUS`) is bad
/// input: the guest would run on fewer CPUs than the scenario asks for.
pub(crate) fn check_kernel_cpus(kernel: &KernelImage, topology: &Topology) -> Result<()> {
    let Some(max) = kernel_config_number(kernel, "CONFIG_NR_CPUS") else {
        return Ok(());
    };
    let cpus = topology.cpus_u64();
    if cpus > u64::from(max) {
        bail!(
            "topology {topology} has {cpus} CPUs; the kernel supports at most {max} (CONFIG_NR_CPUS={max})"
        );
    }
    Ok(())
}

#[cfg(test)]
mod kernel_cpu_tests {
    use super::*;
    use crate::kernel::ConfigSource;
    use trace_format::scenario::Topology;

    #[test]
    fn topologies_beyond_the_kernels_nr_cpus_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(".config");
        std::fs::write(&config, "CONFIG_HZ=250\nCONFIG_NR_CPUS=64\n").unwrap();
        let kernel = KernelImage {
            bzimage: None,
            vmlinux: Some(dir.path().join("vmlinux")),
            pvh: false,
            pvh_image: None,
            config: ConfigSource::File(config),
            missing: Vec::new(),
            cache_dir: None,
        };
        assert_eq!(kernel_hz(&kernel), Some(250));
        assert!(check_kernel_cpus(&kernel, &Topology::parse("1n2l16c2t").unwrap()).is_ok());
        let err = check_kernel_cpus(&kernel, &Topology::parse("2n2l16c2t").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "topology 2n2l16c2t has 128 CPUs; the kernel supports at most 64 (CONFIG_NR_CPUS=64)"
        );
    }
}
