//! Opening a trace file: read into memory, parsed once.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use trace_format::file::Trace;

/// A trace file's bytes.
#[derive(Debug)]
pub struct LoadedTrace {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

impl LoadedTrace {
    /// Reads `path` (a regular file, see [`crate::input`]) and checks that its header and meta are readable. The
    /// file is read, not mapped: a run re-recording the same path truncates
    /// it, which would fault a mapping.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = crate::input::read_regular(path)?;
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
