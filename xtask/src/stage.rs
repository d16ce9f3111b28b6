//! Staging host programs into the initramfs with their shared-library closure.
//!
//! [`stage_binary`] packs an ELF at a guest path, then its interpreter
//! (`PT_INTERP`) and every `DT_NEEDED` library, recursively, resolved as the
//! host's `ld.so` would: `DT_RPATH` (without `DT_RUNPATH`), `DT_RUNPATH`, the
//! `ld.so.conf.d` directories, then the system directories. Libraries keep
//! their host paths in the guest (symlinked names point at the real file), so
//! the packed `ld.so` finds them in its own system directories.
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use goblin::elf::Elf;
use goblin::elf::header::{ELFCLASS64, EM_X86_64};
use sha2::{Digest, Sha256};

use crate::initramfs::Initramfs;

/// Directories the dynamic loader searches without a cache, most specific first.
pub const SYSTEM_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// A program packed into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBinary {
    /// Where the program is in the guest (absolute).
    pub guest_path: String,
    /// Hex SHA-256 of the program's bytes.
    pub sha256: String,
    /// Guest paths of the interpreter and libraries packed with it.
    pub libraries: Vec<String>,
}

/// Finds `name` on `PATH` when it has no `/`; otherwise returns it as a path.
pub fn find_program(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        if p.is_dir() {
            bail!("{name} is a directory, not a program");
        }
        if !p.is_file() {
            bail!("{name}: no such file");
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not on PATH"))
}

/// Packs the ELF at `host_path` as `guest_path`, with its interpreter and libraries.
pub fn stage_binary(
    fs: &mut Initramfs,
    host_path: &Path,
    guest_path: &str,
) -> Result<StagedBinary> {
    let bytes =
        std::fs::read(host_path).with_context(|| format!("cannot read {}", host_path.display()))?;
    let elf = parse(&bytes, host_path)?;
    let guest_path = format!("/{}", guest_path.trim_start_matches('/'));
    fs.add_file(&guest_path, bytes.clone(), 0o755)?;
    let mut libraries = Vec::new();
    if let Some(interp) = elf.interpreter {
        stage_file(fs, Path::new(interp), interp)
            .with_context(|| format!("{}: interpreter {interp}", host_path.display()))?;
        libraries.push(interp.to_string());
    }
    let resolver = Resolver::host();
    let origin = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let guest_origin = origin(Path::new(&guest_path));
    let mut queue = VecDeque::from([Needs::of(&elf, origin(host_path), guest_origin)]);
    let mut seen = BTreeSet::new();
    while let Some(needs) = queue.pop_front() {
        for soname in &needs.needed {
            if !seen.insert(soname.clone()) {
                continue;
            }
            let (host, guest) = resolver.find(soname, &needs).with_context(|| {
                format!(
                    "{}: library {soname} not found (searched {})",
                    host_path.display(),
                    resolver.describe(&needs)
                )
            })?;
            let lib =
                std::fs::read(&host).with_context(|| format!("cannot read {}", host.display()))?;
            let lib_elf = parse(&lib, &host)?;
            stage_file(fs, &host, &guest)?;
            if !resolver.is_system(&guest) {
                // Found through ld.so.conf or a foreign RUNPATH: also reachable by soname.
                let system = format!("{}/{soname}", resolver.system_dir());
                if system != guest {
                    fs.add_symlink(&system, &guest)?;
                }
            }
            libraries.push(guest.clone());
            let guest_dir = origin(Path::new(&guest));
            queue.push_back(Needs::of(&lib_elf, origin(&host), guest_dir));
        }
    }
    Ok(StagedBinary {
        guest_path,
        sha256: hex(&Sha256::digest(&bytes)),
        libraries,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<Elf<'a>> {
    let elf =
        Elf::parse(bytes).with_context(|| format!("{} is not an ELF program", path.display()))?;
    if elf.header.e_machine != EM_X86_64 || elf.header.e_ident[4] != ELFCLASS64 {
        bail!("{} is not an x86-64 ELF", path.display());
    }
    Ok(elf)
}

/// Packs the host file `host` at guest path `guest`. When `guest` mirrors a
/// host path that is a symlink, the real file is packed at its own path and
/// `guest` becomes a link to it (so each library is packed once).
fn stage_file(fs: &mut Initramfs, host: &Path, guest: &str) -> Result<()> {
    let real = std::fs::canonicalize(host)
        .with_context(|| format!("cannot resolve {}", host.display()))?;
    let data = std::fs::read(&real).with_context(|| format!("cannot read {}", real.display()))?;
    let real_str = real.to_string_lossy();
    if Path::new(guest) == host && real != host {
        fs.add_file(&real_str, data, 0o755)?;
        fs.add_symlink(guest, &real_str)?;
    } else {
        fs.add_file(guest, data, 0o755)?;
    }
    Ok(())
}

/// What one object needs and where it may look (host and guest views).
#[derive(Debug)]
struct Needs {
    needed: Vec<String>,
    /// (host dir, guest dir) pairs from DT_RPATH (only without DT_RUNPATH).
    rpath: Vec<(PathBuf, String)>,
    /// (host dir, guest dir) pairs from DT_RUNPATH.
    runpath: Vec<(PathBuf, String)>,
}

impl Needs {
    fn of(elf: &Elf<'_>, host_origin: PathBuf, guest_origin: PathBuf) -> Needs {
        let dirs = |list: &[&str]| -> Vec<(PathBuf, String)> {
            list.iter()
                .flat_map(|s| s.split(':'))
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let sub = |o: &Path| {
                        d.replace("${ORIGIN}", &o.to_string_lossy())
                            .replace("$ORIGIN", &o.to_string_lossy())
                    };
                    (PathBuf::from(sub(&host_origin)), sub(&guest_origin))
                })
                .collect()
        };
        let runpath = dirs(&elf.runpaths);
        let rpath = if runpath.is_empty() {
            dirs(&elf.rpaths)
        } else {
            Vec::new()
        };
        Needs {
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath,
            runpath,
        }
    }
}

/// The host's library search directories.
#[derive(Debug)]
struct Resolver {
    conf: Vec<PathBuf>,
}

impl Resolver {
    /// Reads `/etc/ld.so.conf.d/*.conf` (plain directory lines).
    fn host() -> Resolver {
        let mut conf = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/etc/ld.so.conf.d") {
            let mut files: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
            files.sort();
            for f in files
                .iter()
                .filter(|f| f.extension().is_some_and(|x| x == "conf"))
            {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                conf.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| l.starts_with('/'))
                        .map(PathBuf::from),
                );
            }
        }
        Resolver { conf }
    }

    /// Candidate (host dir, guest dir) pairs, in the loader's order.
    fn dirs(&self, needs: &Needs) -> Vec<(PathBuf, String)> {
        let same = |p: &Path| (p.to_path_buf(), p.to_string_lossy().into_owned());
        let mut out: Vec<(PathBuf, String)> = needs.rpath.clone();
        out.extend(needs.runpath.iter().cloned());
        out.extend(self.conf.iter().map(|p| same(p)));
        out.extend(SYSTEM_DIRS.iter().map(|d| same(Path::new(d))));
        out
    }

    /// The host file and guest path of library `soname`.
    fn find(&self, soname: &str, needs: &Needs) -> Option<(PathBuf, String)> {
        self.dirs(needs).into_iter().find_map(|(host, guest)| {
            let p = host.join(soname);
            is_x86_64_elf(&p).then(|| (p, format!("{}/{soname}", guest.trim_end_matches('/'))))
        })
    }

    fn describe(&self, needs: &Needs) -> String {
        let dirs: Vec<String> = self
            .dirs(needs)
            .iter()
            .map(|(h, _)| h.display().to_string())
            .collect();
        dirs.join(", ")
    }

    fn is_system(&self, guest: &str) -> bool {
        Path::new(guest)
            .parent()
            .is_some_and(|d| SYSTEM_DIRS.iter().any(|s| Path::new(s) == d))
    }

    /// The system directory holding the host's libc (searched by every loader).
    fn system_dir(&self) -> &'static str {
        SYSTEM_DIRS
            .iter()
            .find(|d| Path::new(d).join("libc.so.6").exists())
            .copied()
            .unwrap_or(SYSTEM_DIRS[0])
    }
}

/// Fails unless `path` is a regular file holding a 64-bit x86-64 ELF, the only
/// programs [`stage_binary`] packs (a script would need its interpreter staged).
pub fn check_stageable(path: &Path) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if !is_x86_64_elf(path) {
        bail!("{} is not an x86-64 ELF program", path.display());
    }
    Ok(())
}

/// True for a readable 64-bit x86-64 ELF (skips 32-bit libraries of the same name).
fn is_x86_64_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    let ok = std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut head));
    ok.is_ok()
        && head[..4] == *b"\x7fELF"
        && head[4] == ELFCLASS64
        && u16::from_le_bytes([head[18], head[19]]) == EM_X86_64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_a_dynamic_program_with_its_closure() {
        let sh = find_program("sh").unwrap();
        let mut fs = Initramfs::new();
        let staged = stage_binary(&mut fs, &sh, "payloads/sh").unwrap();
        assert_eq!(staged.guest_path, "/payloads/sh");
        assert!(fs.contains("payloads/sh"));
        assert_eq!(staged.sha256.len(), 64);
        let bytes = std::fs::read(std::fs::canonicalize(&sh).unwrap()).unwrap();
        assert_eq!(staged.sha256, hex(&Sha256::digest(&bytes)));
        let libc = staged
            .libraries
            .iter()
            .find(|l| l.ends_with("/libc.so.6"))
            .expect("libc staged");
        assert!(fs.contains(libc));
        let interp = &staged.libraries[0];
        assert!(interp.contains("ld-linux"), "{staged:?}");
        assert!(fs.contains(interp));
        if let Some(target) = fs.symlink_target(interp) {
            assert!(fs.contains(target), "{interp} -> {target} is packed");
        }
    }

    #[test]
    fn rejects_what_it_cannot_stage() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("script");
        std::fs::write(&text, "#!/bin/sh\necho hi\n").unwrap();
        let mut fs = Initramfs::new();
        let err = stage_binary(&mut fs, &text, "payloads/x").unwrap_err();
        assert!(
            format!("{err:#}").contains("is not an ELF program"),
            "{err:#}"
        );
        assert!(find_program("no-such-program-here").is_err());
        assert!(find_program("/no/such/file").is_err());
    }

    #[test]
    fn search_order_follows_the_loader() {
        let needs = Needs {
            needed: vec![],
            rpath: vec![(PathBuf::from("/r"), "/r".into())],
            runpath: vec![(PathBuf::from("/host/lib"), "/payloads/lib".into())],
        };
        let r = Resolver {
            conf: vec![PathBuf::from("/etc-dir")],
        };
        let dirs: Vec<String> = r.dirs(&needs).into_iter().map(|(_, g)| g).collect();
        assert_eq!(
            &dirs[..4],
            ["/r", "/payloads/lib", "/etc-dir", SYSTEM_DIRS[0]]
        );
        assert!(r.is_system("/usr/lib/x86_64-linux-gnu/libz.so.1"));
        assert!(!r.is_system("/opt/x/libz.so.1"));
    }
}
