//! Opening a trace file: memory-mapped, parsed once.
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use memmap2::Mmap;
use trace_format::file::Trace;

/// A trace file mapped into memory.
#[derive(Debug)]
pub struct LoadedTrace {
    pub path: PathBuf,
    map: Mmap,
}

impl LoadedTrace {
    /// Maps `path` and checks that its header and meta are readable.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only and private to this process; a trace being
        // appended to concurrently only grows, and the reader bounds-checks every
        // access against the length taken at map time.
        let map = unsafe { Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        let loaded = LoadedTrace {
            path: path.to_path_buf(),
            map,
        };
        loaded.trace()?;
        Ok(loaded)
    }

    /// The raw bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parses the trace (header, meta, index or chunk scan).
    pub fn trace(&self) -> Result<Trace<'_>> {
        Trace::open(&self.map)
            .with_context(|| format!("{} is not a readable trace", self.path.display()))
    }
}
