//! Opening the files replay reads: traces and the small side files beside
//! them (`--thresholds`, a bisect directory's `commits.txt`, `<trace>.commit`).
//!
//! Every one must be a regular file: a FIFO would block the open forever and
//! `/dev/zero` never ends. The check is made on the path before opening and
//! again on the open file (opened non-blocking, so a FIFO swapped in between
//! cannot hang it). Side files are capped at [`SIDE_FILE_MAX`].
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest side file read: 1 MiB, far above any real thresholds file or
/// commit list (a commit list of 10,000 full hashes is 410 KB).
pub const SIDE_FILE_MAX: u64 = 1 << 20;

/// Why a file replay reads cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a regular file (it is {kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is {size} bytes; side files may be at most {max} bytes", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
}

impl InputError {
    /// True when the path does not exist (an optional side file is absent).
    pub fn is_missing(&self) -> bool {
        matches!(self, InputError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What kind of file `meta` describes, for messages.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn regular(path: &Path, meta: &Metadata) -> Result<(), InputError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(meta),
        })
    }
}

/// Opens `path` for reading when it is a regular file (symlinks followed),
/// with its metadata from the open file.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), InputError> {
    let open_err = |source| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    regular(path, &std::fs::metadata(path).map_err(open_err)?)?;
    // Non-blocking: a FIFO put in place after the check opens at once
    // instead of waiting for a writer; on a regular file the flag is inert.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    regular(path, &meta)?;
    Ok((file, meta))
}

/// Reads the whole regular file `path` (a trace: no cap).
pub fn read_regular(path: &Path) -> Result<Vec<u8>, InputError> {
    let (mut file, meta) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Reads the side file `path` as text: a regular file of at most
/// [`SIDE_FILE_MAX`] bytes (checked again while reading: it may grow).
pub fn read_side_file(path: &Path) -> Result<String, InputError> {
    let (file, meta) = open_regular(path)?;
    let too_large = |size| InputError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: SIDE_FILE_MAX,
    };
    if meta.len() > SIDE_FILE_MAX {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(SIDE_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > SIDE_FILE_MAX {
        return Err(too_large(read));
    }
    String::from_utf8(bytes).map_err(|_| InputError::NotText {
        path: path.to_path_buf(),
    })
}

/// Like [`read_side_file`], but `None` when `path` does not exist.
pub fn read_optional_side_file(path: &Path) -> Result<Option<String>, InputError> {
    match read_side_file(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn side_files_are_capped_regular_text() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "c1\n").unwrap();
        assert_eq!(read_side_file(&ok).unwrap(), "c1\n");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 1 << 20]).unwrap();
        assert!(read_side_file(&big).is_ok(), "exactly the cap is allowed");
        std::fs::write(&big, vec![b'a'; (1 << 20) + 1]).unwrap();
        assert!(matches!(
            read_side_file(&big),
            Err(InputError::TooLarge { .. })
        ));

        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let err = read_side_file(&fifo).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not a regular file (it is a FIFO)"),
            "{err}"
        );

        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_side_file(&zero).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");

        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_side_file(&binary),
            Err(InputError::NotText { .. })
        ));

        assert!(
            read_optional_side_file(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
        assert!(
            read_optional_side_file(dir.path()).is_err(),
            "a directory is an error"
        );
    }
}
