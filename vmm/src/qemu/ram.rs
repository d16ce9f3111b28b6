//! Guest RAM for the QEMU backend: one shared file per NUMA node, which QEMU
//! maps as that node's memory and the host maps back to back into one range,
//! in the order QEMU lays the nodes out in guest memory (node 0 first).
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapRaw};

/// The RAM files of one guest and the host's view of all of them; the files
/// are removed on drop.
#[derive(Debug)]
pub struct RamFiles {
    paths: Paths,
    sizes: Vec<u64>,
    /// Every file, back to back: offset `x` is byte `x` of QEMU's RAM.
    pub map: Arc<MmapRaw>,
}

/// Files removed on drop.
#[derive(Debug, Default)]
struct Paths(Vec<PathBuf>);

impl Drop for Paths {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl RamFiles {
    /// Creates `dir/<tag>.ram<N>` for each size in `sizes` and maps them.
    /// Every size but the last must be a whole number of pages. Nothing is
    /// left behind on an error, which names the file (or directory) at fault.
    pub fn create(dir: &Path, tag: &str, sizes: &[u64]) -> Result<Self, (PathBuf, io::Error)> {
        let page = 4096;
        if sizes.iter().rev().skip(1).any(|s| s % page != 0) {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "node RAM not page-aligned");
            return Err((dir.to_path_buf(), e));
        }
        let mut paths = Paths::default();
        let mut files = Vec::new();
        for (node, &size) in sizes.iter().enumerate() {
            let path = dir.join(format!("{tag}.ram{node}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| (path.clone(), e))?;
            paths.0.push(path.clone());
            file.set_len(size).map_err(|e| (path, e))?;
            files.push((file, size));
        }
        let map = map_back_to_back(&files).map_err(|e| (dir.to_path_buf(), e))?;
        Ok(RamFiles {
            paths,
            sizes: sizes.to_vec(),
            map: Arc::new(map),
        })
    }

    /// Each file with its size, in node order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.paths
            .0
            .iter()
            .map(PathBuf::as_path)
            .zip(self.sizes.iter().copied())
    }

    /// Removes the files now (the mappings stay valid: QEMU and we hold them).
    pub fn unlink(&mut self) {
        drop(std::mem::take(&mut self.paths));
    }
}

/// One host range holding every file in turn.
fn map_back_to_back(files: &[(File, u64)]) -> io::Result<MmapRaw> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "guest RAM too large to map");
    let total = files
        .iter()
        .try_fold(0u64, |sum, (_, len)| sum.checked_add(*len))
        .and_then(|t| usize::try_from(t).ok())
        .ok_or_else(too_big)?;
    // Reserve the whole range, then put each file over its part of it.
    let range = MmapRaw::from(MmapMut::map_anon(total)?);
    let mut offset = 0usize;
    for (file, len) in files {
        let len = usize::try_from(*len).map_err(|_| too_big())?;
        if len == 0 {
            continue;
        }
        // SAFETY: [offset, offset + len) lies inside `range` (the lengths sum to
        // its size), which this function owns and nothing references yet;
        // MAP_FIXED replaces those anonymous pages with the file's, and the
        // range's own munmap on drop unmaps them again. (`offset` is
        // page-aligned, as `create` checked; were it not, mmap would fail.)
        let p = unsafe {
            libc::mmap(
                range.as_mut_ptr().add(offset).cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        offset += len;
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_one_range_in_node_order() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = crate::numa::node_shares(6 << 20, 3);
        let ram = RamFiles::create(dir.path(), "t", &sizes).unwrap();
        assert_eq!(ram.map.len(), 6 << 20);
        // A write through the range lands in the second file, at its offset.
        let at = (2 << 20) + 4096 + 7;
        // SAFETY: `at` is inside the 6 MiB mapping, which `ram` keeps alive.
        unsafe { ram.map.as_mut_ptr().add(at).write(0xa5) };
        let second = std::fs::read(ram.files().nth(1).unwrap().0).unwrap();
        assert_eq!(second.len(), 2 << 20);
        assert_eq!(second[4096 + 7], 0xa5);
        assert!(
            std::fs::read(ram.files().next().unwrap().0)
                .unwrap()
                .iter()
                .all(|&b| b == 0)
        );
        let paths: Vec<PathBuf> = ram.files().map(|(p, _)| p.to_path_buf()).collect();
        drop(ram);
        assert!(paths.iter().all(|p| !p.exists()), "files removed on drop");
    }

    #[test]
    fn unaligned_node_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = RamFiles::create(dir.path(), "t", &[4097, 4096]).unwrap_err();
        assert_eq!(err.1.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_failure_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.ram1"), b"taken").unwrap();
        let err = RamFiles::create(dir.path(), "t", &[1 << 20, 1 << 20]).unwrap_err();
        assert_eq!(err.0, dir.path().join("t.ram1"));
        assert!(!dir.path().join("t.ram0").exists());
    }
}
