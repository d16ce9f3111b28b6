//! The on-disk cache of resolved layouts, one file per [`SourceKey`]: the
//! vmlinux build-id and a fingerprint of the sections resolution reads, so a
//! debug-stripped copy (same build-id) never shares an entry with the full file.
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::source::SourceKey;

/// Bumped whenever [`Layout`], the key or the resolution rules change.
const FORMAT: u32 = 2;
const MAGIC: &[u8; 4] = b"STIN";

/// `~/.cache/schedtape/introspect` (or `$XDG_CACHE_HOME/schedtape/introspect`).
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("schedtape").join("introspect"))
}

/// The cache file for a key.
pub fn path_for(dir: &Path, key: &SourceKey) -> PathBuf {
    dir.join(format!("{}.bin", key.stem()))
}

/// The cached layout for `key`, if a valid one exists.
pub fn load(dir: &Path, key: &SourceKey) -> Option<Layout> {
    if !key.has_dwarf {
        return None;
    }
    let bytes = std::fs::read(path_for(dir, key)).ok()?;
    let body = bytes.strip_prefix(MAGIC)?;
    let (version, body) = body.split_at_checked(4)?;
    let (fingerprint, body) = body.split_at_checked(8)?;
    if version != FORMAT.to_le_bytes() || fingerprint != key.fingerprint.to_le_bytes() {
        return None;
    }
    let layout: Layout = postcard::from_bytes(body).ok()?;
    (layout.build_id == key.build_id).then_some(layout)
}

/// Writes `layout` resolved from the file keyed `key`, atomically; failures
/// only cost a later cold resolution. A file without DWARF is not cached:
/// its layout lacks every struct offset, and resolving its symbols alone is
/// cheap.
pub fn store(dir: &Path, key: &SourceKey, layout: &Layout) -> std::io::Result<()> {
    if !key.has_dwarf || layout.build_id != key.build_id {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&key.fingerprint.to_le_bytes());
    bytes.extend(postcard::to_allocvec(layout).map_err(std::io::Error::other)?);
    let path = path_for(dir, key);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
