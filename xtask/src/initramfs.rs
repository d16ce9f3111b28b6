//! A deterministic initramfs writer (cpio "newc").
//!
//! The same entries always give the same bytes: entries are sorted by path,
//! inode numbers follow that order, and owners and times are zero. Parent
//! directories are added implicitly, and `/dev/console` always exists so the
//! kernel can give `/init` a console before devtmpfs is mounted. Symbolic
//! links are stored as newc does: mode `S_IFLNK`, the target as the data.

use std::collections::BTreeMap;
use std::fmt::Write as _;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const S_IFLNK: u32 = 0o120000;

/// Errors building an archive.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// Paths must be relative, normalised and free of `..`.
    #[error("invalid initramfs path {0:?}: use a relative path without '.', '..' or empty parts")]
    BadPath(String),
    /// Two different entries claim one path.
    #[error("initramfs path {0:?} is added twice with different contents")]
    Conflict(String),
    /// A file is larger than newc can describe (4 GiB).
    #[error("initramfs file {0:?} is too large for cpio newc")]
    TooLarge(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    CharDev { major: u32, minor: u32 },
    Symlink { target: String },
}

/// An archive being assembled.
#[derive(Debug, Clone)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Default for Initramfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Initramfs {
    /// An archive with `dev/console` and the usual mount points.
    pub fn new() -> Self {
        let mut fs = Initramfs {
            entries: BTreeMap::new(),
        };
        for dir in ["dev", "proc", "sys", "tmp", "run"] {
            fs.entries.insert(dir.to_string(), Entry::Dir);
        }
        fs.entries.insert(
            "dev/console".to_string(),
            Entry::CharDev { major: 5, minor: 1 },
        );
        fs
    }

    /// Adds a regular file with permission bits `mode` (e.g. `0o755`).
    pub fn add_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), InitramfsError> {
        if u32::try_from(data.len()).is_err() {
            return Err(InitramfsError::TooLarge(path.to_string()));
        }
        self.insert(
            path,
            Entry::File {
                data,
                mode: mode & 0o7777,
            },
        )
    }

    /// Adds a symbolic link at `path` pointing at `target` (absolute or relative).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), InitramfsError> {
        if target.is_empty() {
            return Err(InitramfsError::BadPath(format!("{path} -> (empty target)")));
        }
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// True when `path` (with or without a leading `/`) is in the archive.
    #[cfg(test)]
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_start_matches('/'))
    }

    /// The target of the symbolic link at `path`, if it is one.
    #[cfg(test)]
    pub fn symlink_target(&self, path: &str) -> Option<&str> {
        match self.entries.get(path.trim_start_matches('/')) {
            Some(Entry::Symlink { target }) => Some(target),
            _ => None,
        }
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), InitramfsError> {
        let path = path.trim_start_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        if path.is_empty()
            || parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(InitramfsError::BadPath(path.to_string()));
        }
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            match self.entries.get(&parent) {
                None => {
                    self.entries.insert(parent, Entry::Dir);
                }
                Some(Entry::Dir) => {}
                Some(_) => return Err(InitramfsError::Conflict(parent)),
            }
        }
        match self.entries.get(path) {
            Some(existing) if *existing != entry => Err(InitramfsError::Conflict(path.to_string())),
            _ => {
                self.entries.insert(path.to_string(), entry);
                Ok(())
            }
        }
    }

    /// The archive bytes, identical for identical entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir => (S_IFDIR | 0o755, &[], (0, 0)),
                Entry::File { data, mode } => (S_IFREG | mode, data, (0, 0)),
                Entry::CharDev { major, minor } => (S_IFCHR | 0o600, &[], (*major, *minor)),
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
            };
            let nlink = if matches!(entry, Entry::Dir) { 2 } else { 1 };
            // Inode numbers start at 1; there are far fewer than 2^32 entries.
            let ino = u32::try_from(ino + 1).unwrap_or(u32::MAX);
            write_entry(&mut out, path, ino, mode, nlink, data, rdev);
        }
        write_entry(&mut out, "TRAILER!!!", 0, 0, 1, &[], (0, 0));
        out
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    // Sizes were checked on insertion to fit in u32.
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    let mut header = String::with_capacity(110);
    header.push_str("070701");
    for f in fields {
        let _ = write!(header, "{f:08x}");
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal newc parser: (name, mode, data) per entry.
    fn parse(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let hdr = std::str::from_utf8(&bytes[at..at + 110]).unwrap();
            assert_eq!(&hdr[..6], "070701");
            let field = |i: usize| usize::from_str_radix(&hdr[6 + i * 8..14 + i * 8], 16).unwrap();
            let (mode, size, namesize) = (field(1), field(6), field(11));
            let name = std::str::from_utf8(&bytes[at + 110..at + 110 + namesize - 1])
                .unwrap()
                .to_string();
            at = (at + 110 + namesize).next_multiple_of(4);
            let data = bytes[at..at + size].to_vec();
            at = (at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name, u32::try_from(mode).unwrap(), data));
        }
    }

    #[test]
    fn deterministic_and_order_independent() {
        let mut a = Initramfs::new();
        a.add_file("init", b"#!init".to_vec(), 0o755).unwrap();
        a.add_file("lib/x86_64-linux-gnu/libc.so.6", vec![1; 1001], 0o644)
            .unwrap();
        let mut b = Initramfs::new();
        b.add_file("/lib/x86_64-linux-gnu/libc.so.6", vec![1; 1001], 0o644)
            .unwrap();
        b.add_file("init", b"#!init".to_vec(), 0o755).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(a.to_bytes().len() % 4, 0);
    }

    #[test]
    fn entries_parse_back_with_parents_and_console() {
        let mut fs = Initramfs::new();
        fs.add_file("bin/payload", b"ELF".to_vec(), 0o755).unwrap();
        let entries = parse(&fs.to_bytes());
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("bin").1, S_IFDIR | 0o755);
        assert_eq!(find("bin/payload").1, S_IFREG | 0o755);
        assert_eq!(find("bin/payload").2, b"ELF");
        assert_eq!(find("dev/console").1, S_IFCHR | 0o600);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn bad_paths_and_conflicts_are_errors() {
        let mut fs = Initramfs::new();
        assert!(matches!(
            fs.add_file("../etc", vec![], 0o644),
            Err(InitramfsError::BadPath(_))
        ));
        assert!(matches!(
            fs.add_file("a//b", vec![], 0o644),
            Err(InitramfsError::BadPath(_))
        ));
        fs.add_file("a", vec![1], 0o644).unwrap();
        fs.add_file("a", vec![1], 0o644).unwrap();
        assert!(matches!(
            fs.add_file("a", vec![2], 0o644),
            Err(InitramfsError::Conflict(_))
        ));
        assert!(matches!(
            fs.add_file("a/b", vec![], 0o644),
            Err(InitramfsError::Conflict(_))
        ));
    }

    #[test]
    fn symlinks_store_their_target() {
        let mut fs = Initramfs::new();
        fs.add_symlink("lib64/ld.so", "/usr/lib/ld.so").unwrap();
        fs.add_symlink("lib64/ld.so", "/usr/lib/ld.so").unwrap();
        assert!(matches!(
            fs.add_symlink("lib64/ld.so", "/elsewhere"),
            Err(InitramfsError::Conflict(_))
        ));
        assert_eq!(fs.symlink_target("/lib64/ld.so"), Some("/usr/lib/ld.so"));
        assert!(fs.contains("lib64") && fs.symlink_target("lib64").is_none());
        let entries = parse(&fs.to_bytes());
        let link = entries.iter().find(|e| e.0 == "lib64/ld.so").unwrap();
        assert_eq!(
            (link.1, link.2.as_slice()),
            (S_IFLNK | 0o777, &b"/usr/lib/ld.so"[..])
        );
    }
}
