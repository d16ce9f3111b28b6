//! Kernel introspection: reading the guest kernel's state from the host.
//!
//! - [`load`] resolves a vmlinux once (symbols via goblin, struct member
//!   offsets via gimli) and caches the result by GNU build-id and the shape
//!   of the sections read ([`source::SourceKey`]).
//! - [`Kernel::attach`] finds the running kernel through the page tables
//!   (KASLR or not) and refuses a vmlinux of another build.
//! - [`snapshot`] reads per-CPU run-queue rows and kernel variables.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod cache;
mod dwarf;
pub mod elf;
pub mod layout;
pub mod live;
pub mod phys;
pub mod snapshot;
pub mod source;
pub mod translate;

pub use layout::{Field, Layout, Member, Symbol};
pub use phys::{GuestMemory, MemError, Region};
pub use translate::{AttachError, Kernel};

/// Resolution failures.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    /// The vmlinux could not be read.
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not a usable ELF.
    #[error("bad vmlinux ELF: {0}")]
    Elf(String),
    /// Without a build-id the cache and the running-kernel check cannot work.
    #[error("the vmlinux has no GNU build-id note")]
    NoBuildId,
}

/// A resolved layout and how it was obtained.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub layout: Arc<Layout>,
    /// Served from the cache.
    pub cached: bool,
    pub elapsed: Duration,
    /// Where the cache file is (or would be); `None` without a cache
    /// directory or for a vmlinux without DWARF, which is never cached.
    pub cache_file: Option<PathBuf>,
}

/// Resolves `vmlinux`, through the cache in `cache_dir` when given.
pub fn load(vmlinux: &Path, cache_dir: Option<&Path>) -> Result<Resolution, IntrospectError> {
    let start = Instant::now();
    let key = source::read_key(vmlinux)?;
    let cache_file = cache_dir
        .filter(|_| key.has_dwarf)
        .map(|d| cache::path_for(d, &key));
    if let Some(dir) = cache_dir
        && let Some(layout) = cache::load(dir, &key)
    {
        return Ok(Resolution {
            layout: Arc::new(layout),
            cached: true,
            elapsed: start.elapsed(),
            cache_file,
        });
    }
    let layout = resolve_file(vmlinux)?;
    if let Some(dir) = cache_dir {
        // A cache that cannot be written only costs time on the next run.
        let _ = cache::store(dir, &key, &layout);
    }
    Ok(Resolution {
        layout: Arc::new(layout),
        cached: false,
        elapsed: start.elapsed(),
        cache_file,
    })
}

/// Resolves `vmlinux` without the cache.
pub fn resolve_file(vmlinux: &Path) -> Result<Layout, IntrospectError> {
    let io = |e| IntrospectError::Io(vmlinux.display().to_string(), e);
    let file = std::fs::File::open(vmlinux).map_err(io)?;
    // SAFETY: the file is only read; a concurrent writer could change what we
    // parse, and every parser here tolerates arbitrary bytes.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    resolve_bytes(&map)
}

/// Resolves a vmlinux already in memory.
pub fn resolve_bytes(bytes: &[u8]) -> Result<Layout, IntrospectError> {
    let elf = elf::Vmlinux::parse(bytes)?;
    let build_id = elf.build_id().ok_or(IntrospectError::NoBuildId)?;
    let symbols = elf.symbols();
    let find = |name: &str| {
        symbols
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| symbols[i].clone())
    };
    let (fields, snapshots_off) = match dwarf::resolve(&elf, find) {
        Ok(f) => (f, None),
        Err(why) => (vec![None; Field::ALL.len()], Some(why)),
    };
    let mut layout = Layout {
        build_id,
        symbols,
        fields,
        snapshots_off,
        notes: Vec::new(),
    };
    layout.notes = notes_for(&layout);
    Ok(layout)
}

/// Meta notes: what snapshots lack on this kernel, and why.
fn notes_for(layout: &Layout) -> Vec<String> {
    if let Some(why) = &layout.snapshots_off {
        return vec![format!("run-queue snapshots are off: {why}")];
    }
    let mut notes = Vec::new();
    for f in Field::ALL {
        if layout.field(f).is_none() {
            let (outer, paths) = f.candidates();
            notes.push(format!(
                "kernel lacks {outer}.{}: snapshot rows omit it",
                paths.join(" / ")
            ));
        }
    }
    for s in ["runqueues", "__per_cpu_offset", "_text", "__start_notes"] {
        if layout.symbol(s).is_none() {
            notes.push(format!(
                "the vmlinux has no symbol {s}: introspection is limited"
            ));
        }
    }
    notes
}
