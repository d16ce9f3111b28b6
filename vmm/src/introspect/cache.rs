//! The on-disk cache of resolved layouts, one file per vmlinux build-id.
use std::path::{Path, PathBuf};

use super::layout::{Layout, hex};

/// Bumped whenever [`Layout`] or the resolution rules change.
const FORMAT: u32 = 1;
const MAGIC: &[u8; 4] = b"STIN";

/// `~/.cache/schedtape/introspect` (or `$XDG_CACHE_HOME/schedtape/introspect`).
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("schedtape").join("introspect"))
}

/// The cache file for a build-id.
pub fn path_for(dir: &Path, build_id: &[u8]) -> PathBuf {
    dir.join(format!("{}.bin", hex(build_id)))
}

/// The cached layout for `build_id`, if a valid one exists.
pub fn load(dir: &Path, build_id: &[u8]) -> Option<Layout> {
    let bytes = std::fs::read(path_for(dir, build_id)).ok()?;
    let body = bytes.strip_prefix(MAGIC)?;
    let (version, body) = body.split_at_checked(4)?;
    if version != FORMAT.to_le_bytes() {
        return None;
    }
    let layout: Layout = postcard::from_bytes(body).ok()?;
    (layout.build_id == build_id).then_some(layout)
}

/// Writes `layout` atomically; failures only cost a later cold resolution.
pub fn store(dir: &Path, layout: &Layout) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend(postcard::to_allocvec(layout).map_err(std::io::Error::other)?);
    let path = path_for(dir, &layout.build_id);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
