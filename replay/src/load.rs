//! Opening a trace file: read into memory, parsed once.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use trace_format::file::Trace;

/// A trace file's bytes.
#[derive(Debug)]
pub struct LoadedTrace {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

impl LoadedTrace {
    /// Reads `path` and checks that its header and meta are readable. The
    /// file is read, not mapped: a run re-recording the same path truncates
    /// it, which would fault a mapping.
    pub fn open(path: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let loaded = LoadedTrace {
            path: path.to_path_buf(),
            bytes,
        };
        loaded.trace()?;
        Ok(loaded)
    }

    /// The raw bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parses the trace (header, meta, index or chunk scan).
    pub fn trace(&self) -> Result<Trace<'_>> {
        Trace::open(&self.bytes)
            .with_context(|| format!("{} is not a readable trace", self.path.display()))
    }
}
