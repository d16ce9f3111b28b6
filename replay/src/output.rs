//! Writing an output file without ever losing an input or a half-written file.
//!
//! [`check_not_an_input`] refuses an output that is one of the inputs under
//! any spelling (`./T`, a symlink, a hard link). [`AtomicOutput`] writes to a
//! temporary file in the target's directory and renames it into place on
//! [`AtomicOutput::commit`]: a failure leaves the old file untouched and no
//! partial output. An existing output that is not a regular file (`/dev/null`,
//! a FIFO) is written directly: there is nothing to replace.
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why an output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output {} is the input {}: refusing to overwrite it", output.display(), input.display())]
    IsAnInput { output: PathBuf, input: PathBuf },
    #[error("output {} is a directory", path.display())]
    IsADirectory { path: PathBuf },
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        // Not a `#[source]`: the message already carries it once.
        cause: std::io::Error,
    },
    #[error("cannot write {}: directory {} does not exist", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
}

/// `path` with its directory resolved (symlinks, `.`, `..`) when it does not
/// exist yet, else the file it resolves to; `None` when its directory does
/// not exist either (then it names no input).
fn resolve(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

/// Fails when `output` names the same file as one of `inputs`: the same
/// resolved path, or (when `output` exists) the same device and inode.
pub fn check_not_an_input<P: AsRef<Path>>(output: &Path, inputs: &[P]) -> Result<(), OutputError> {
    let resolved = resolve(output);
    let identity = std::fs::metadata(output).ok().map(|m| (m.dev(), m.ino()));
    for input in inputs.iter().map(AsRef::as_ref) {
        let same_path = resolved.is_some() && resolve(input) == resolved;
        let same_inode = identity.is_some()
            && std::fs::metadata(input).ok().map(|m| (m.dev(), m.ino())) == identity;
        if same_path || same_inode {
            return Err(OutputError::IsAnInput {
                output: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Where the bytes go until [`AtomicOutput::commit`].
#[derive(Debug)]
enum Sink {
    /// A temporary file beside `target`, renamed onto it at commit.
    Temp {
        file: tempfile::NamedTempFile,
        target: PathBuf,
    },
    /// An existing special file (`/dev/null`, a FIFO), written directly.
    Direct(File),
}

/// An output file that appears, whole, only when committed.
#[derive(Debug)]
pub struct AtomicOutput {
    path: PathBuf,
    sink: Sink,
}

impl AtomicOutput {
    /// Starts writing `path`. When it exists and is a symlink, the file it
    /// points to is replaced (not the link), keeping that file's mode.
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let io = |cause| OutputError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let existing = std::fs::metadata(path).ok();
        if let Some(meta) = &existing {
            if meta.is_dir() {
                return Err(OutputError::IsADirectory {
                    path: path.to_path_buf(),
                });
            }
            if !meta.is_file() {
                let file = File::options().write(true).open(path).map_err(io)?;
                return Ok(AtomicOutput {
                    path: path.to_path_buf(),
                    sink: Sink::Direct(file),
                });
            }
        }
        let target = match &existing {
            Some(_) => std::fs::canonicalize(path).map_err(io)?,
            None => path.to_path_buf(),
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
            });
        }
        let mode = existing.as_ref().map_or(0o666, |m| m.permissions().mode());
        // tempfile's errors name the temporary path; ours names the output.
        let io = |e: std::io::Error| io(std::io::Error::from(e.kind()));
        let file = tempfile::Builder::new()
            .prefix(".replay-")
            .suffix(".tmp")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)
            .map_err(io)?;
        if existing.is_some() {
            // The mode given at creation was narrowed by the umask; an
            // existing file keeps exactly its own.
            file.as_file()
                .set_permissions(Permissions::from_mode(mode))
                .map_err(io)?;
        }
        Ok(AtomicOutput {
            path: path.to_path_buf(),
            sink: Sink::Temp { file, target },
        })
    }

    /// The open file the bytes go to.
    pub fn file(&mut self) -> &mut File {
        match &mut self.sink {
            Sink::Temp { file, .. } => file.as_file_mut(),
            Sink::Direct(file) => file,
        }
    }

    /// Flushes the bytes to disk and puts the file in place. Dropping an
    /// uncommitted output removes the temporary file.
    pub fn commit(self) -> Result<(), OutputError> {
        let io = |cause| OutputError::Io {
            path: self.path.clone(),
            cause,
        };
        match self.sink {
            Sink::Direct(mut file) => file.flush().map_err(io),
            Sink::Temp { file, target } => {
                file.as_file().sync_all().map_err(io)?;
                file.persist(&target).map_err(|e| io(e.error))?;
                Ok(())
            }
        }
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicOutput`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = AtomicOutput::create(path)?;
    out.write_all(bytes).map_err(|cause| OutputError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("t.trace");
        std::fs::write(&input, b"trace").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let link = dir.path().join("link.svg");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = dir.path().join("hard.svg");
        std::fs::hard_link(&input, &hard).unwrap();
        let dotted = sub.join("../t.trace");
        for out in [&input, &link, &hard, &dotted] {
            let err = check_not_an_input(out, &[&input]).unwrap_err();
            assert!(matches!(err, OutputError::IsAnInput { .. }), "{out:?}");
        }
        // The input named through a symlink, the output plainly.
        assert!(check_not_an_input(&input, &[&link]).is_err());
        let other = dir.path().join("out.svg");
        check_not_an_input(&other, &[&input]).unwrap();
        check_not_an_input(Path::new("/nonexistent/x.svg"), &[&input]).unwrap();
    }

    #[test]
    fn an_uncommitted_output_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.svg");
        std::fs::write(&path, b"old").unwrap();
        {
            let mut out = AtomicOutput::create(&path).unwrap();
            out.write_all(b"half").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"old");
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp removed"
        );
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlinked_output_replaces_its_target_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.svg");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.svg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        write_atomic(Path::new("/dev/null"), b"x").unwrap();
        assert!(matches!(
            write_atomic(dir.path(), b"x"),
            Err(OutputError::IsADirectory { .. })
        ));
    }
}
