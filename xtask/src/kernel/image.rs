//! Kernel images: telling a vmlinux (ELF) from a bzImage, finding each one's
//! partner and config, and [`resolve`], which the run command calls.
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::build::{self, BuildOpts};
use super::check::{self, MissingOption};

/// What the file at a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// An x86-64 ELF kernel; `pvh` when it carries the PVH entry note (bootable directly).
    Vmlinux { pvh: bool },
    /// A boot-protocol image (`HdrS` setup header).
    BzImage,
}

/// Where the kernel's config was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A `.config` file beside the kernel (or at the root of its build tree).
    File(PathBuf),
    /// The copy embedded with `CONFIG_IKCONFIG` in this image.
    Ikconfig(PathBuf),
    /// Neither was found: the options cannot be checked.
    Unknown,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Ikconfig(p) => write!(f, "IKCONFIG in {}", p.display()),
            ConfigSource::Unknown => {
                f.write_str("unknown (no .config beside the kernel, no IKCONFIG)")
            }
        }
    }
}

/// A kernel ready to boot. At least one of `bzimage` and `vmlinux` is set; the
/// cache always has both.
#[derive(Debug, Clone)]
pub struct KernelImage {
    pub bzimage: Option<PathBuf>,
    /// The ELF kernel: symbols and DWARF for introspection, and the PVH boot path.
    pub vmlinux: Option<PathBuf>,
    /// The vmlinux has a PVH entry note.
    pub pvh: bool,
    /// What boots through PVH: for the cache, a copy of the vmlinux without
    /// debug info (QEMU reads ~20 MB per launch instead of ~110 MB); else the vmlinux.
    pub pvh_image: Option<PathBuf>,
    pub config: ConfigSource,
    /// Required options the config lacks (empty when the config is unknown).
    pub missing: Vec<MissingOption>,
    /// The cache entry it came from, if any.
    pub cache_dir: Option<PathBuf>,
}

impl KernelImage {
    /// The image to boot: the vmlinux through PVH (no decompression) when it can, else the bzImage.
    pub fn boot_image(&self) -> &Path {
        match (&self.pvh_image, &self.bzimage) {
            (Some(v), _) if self.pvh => v,
            (_, Some(b)) => b,
            (Some(v), None) => v,
            (None, None) => self
                .vmlinux
                .as_deref()
                .expect("a KernelImage always has an image"),
        }
    }

    /// Fails naming every required option the kernel lacks.
    pub fn require_options(&self) -> Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = self.missing.iter().map(|m| format!("  {m}")).collect();
        bail!(
            "the kernel lacks options schedtape needs (config: {}):\n{}",
            self.config,
            lines.join("\n")
        )
    }
}

/// How to find the kernel.
#[derive(Debug, Clone, Default)]
pub struct ResolveOpts {
    /// `--kernel PATH`: a user's bzImage, vmlinux, or a directory holding them.
    pub kernel: Option<PathBuf>,
    /// Build settings for the cached kernel (`--kernel-src`, `--jobs`).
    pub build: BuildOpts,
    /// Build the cached kernel when it is missing (else fail, naming the command).
    pub build_if_missing: bool,
}

/// Whether [`resolve`] would build a kernel: no `--kernel`, building allowed,
/// and nothing cached for the recipe (an unreadable recipe counts as a build).
pub fn needs_build(opts: &ResolveOpts) -> bool {
    opts.kernel.is_none()
        && opts.build_if_missing
        && build::Fragment::load()
            .and_then(|frag| build::cached(&opts.build, &frag))
            .map_or(true, |hit| hit.is_none())
}

/// Finds the kernel to run: the user's `--kernel`, else the cache (built if allowed).
pub fn resolve(opts: &ResolveOpts) -> Result<KernelImage> {
    if let Some(path) = &opts.kernel {
        return from_user_path(path);
    }
    let dir = if opts.build_if_missing {
        build::ensure(&opts.build)?
    } else {
        let frag = build::Fragment::load()?;
        match build::cached(&opts.build, &frag)? {
            Some((dir, _)) => dir,
            None => bail!(
                "no cached kernel for {} (cache hash {}); run `cargo xtask kernel build{}`",
                frag.path.display(),
                frag.hash_for(opts.build.src.as_deref()),
                opts.build
                    .src
                    .as_ref()
                    .map(|s| format!(" --src {}", s.display()))
                    .unwrap_or_default()
            ),
        }
    };
    let mut image = from_parts(Some(dir.join("bzImage")), Some(dir.join("vmlinux")))?;
    if image.pvh {
        image.pvh_image = Some(stripped_copy(&dir));
    }
    image.cache_dir = Some(dir);
    Ok(image)
}

/// `vmlinux.pvh` in a cache entry: the vmlinux as QEMU loads it through PVH,
/// made once with `objcopy --strip-all`: no debug info (~20 MB read per launch
/// instead of ~120 MB) and no symbol table (QEMU would read and sort every
/// symbol, ~10 ms a launch). Symbols and DWARF are read from the full vmlinux.
/// Falls back to the vmlinux.
fn stripped_copy(dir: &Path) -> PathBuf {
    let full = dir.join("vmlinux");
    let boot = dir.join("vmlinux.pvh");
    if boot.is_file() {
        return boot;
    }
    let tmp = dir.join(format!("vmlinux.pvh.{}", std::process::id()));
    let made = objcopy("--strip-all", &full, &tmp).is_ok()
        && matches!(detect(&tmp), Ok(ImageKind::Vmlinux { pvh: true }))
        && fs::rename(&tmp, &boot).is_ok();
    if made {
        boot
    } else {
        let _ = fs::remove_file(&tmp);
        eprintln!(
            "note: could not strip {} (objcopy from binutils); booting it whole",
            full.display()
        );
        full
    }
}

/// `objcopy --strip-debug FROM TO`: the same program or kernel without debug
/// sections (symbols kept).
pub fn strip_debug(from: &Path, to: &Path) -> Result<()> {
    objcopy("--strip-debug", from, to)
}

/// `objcopy FLAG FROM TO`.
fn objcopy(flag: &str, from: &Path, to: &Path) -> Result<()> {
    let status = std::process::Command::new("objcopy")
        .arg(flag)
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run objcopy (install binutils)")?;
    if !status.success() {
        bail!("objcopy {flag} {} failed: {status}", from.display());
    }
    Ok(())
}

/// A user's kernel: a bzImage or vmlinux file, or a directory (build tree or cache entry).
pub fn from_user_path(path: &Path) -> Result<KernelImage> {
    if path.is_dir() {
        let vmlinux = Some(path.join("vmlinux")).filter(|p| p.is_file());
        let bzimage = ["bzImage", "arch/x86/boot/bzImage"]
            .iter()
            .map(|p| path.join(p))
            .find(|p| p.is_file());
        if vmlinux.is_none() && bzimage.is_none() {
            bail!("{} holds no vmlinux or bzImage", path.display());
        }
        return from_parts(bzimage, vmlinux);
    }
    match detect(path)? {
        ImageKind::BzImage => from_parts(Some(path.to_path_buf()), vmlinux_beside(path)),
        ImageKind::Vmlinux { .. } => from_parts(bzimage_beside(path), Some(path.to_path_buf())),
    }
}

/// Builds a [`KernelImage`] from the two paths, checking each and reading the config.
fn from_parts(bzimage: Option<PathBuf>, vmlinux: Option<PathBuf>) -> Result<KernelImage> {
    if let Some(b) = &bzimage
        && detect(b)? != ImageKind::BzImage
    {
        bail!("{} is not a bzImage", b.display());
    }
    let pvh = match &vmlinux {
        Some(v) => match detect(v)? {
            ImageKind::Vmlinux { pvh } => pvh,
            ImageKind::BzImage => bail!("{} is a bzImage, not a vmlinux", v.display()),
        },
        None => false,
    };
    let (config, text) = read_config(bzimage.as_deref(), vmlinux.as_deref())?;
    let missing = text.as_deref().map(check::check_config).unwrap_or_default();
    Ok(KernelImage {
        bzimage,
        pvh_image: vmlinux.clone().filter(|_| pvh),
        vmlinux,
        pvh,
        config,
        missing,
        cache_dir: None,
    })
}

/// Reads the kernel's config: a `.config` beside either image (or at the root of a
/// build tree), else IKCONFIG from the vmlinux, else from the bzImage.
fn read_config(
    bzimage: Option<&Path>,
    vmlinux: Option<&Path>,
) -> Result<(ConfigSource, Option<String>)> {
    let mut candidates = Vec::new();
    for image in [vmlinux, bzimage].into_iter().flatten() {
        let dir = image.parent().unwrap_or(Path::new("."));
        candidates.push(dir.join(".config"));
        if let Some(root) = build_tree_root(image) {
            candidates.push(root.join(".config"));
        }
    }
    if let Some(file) = candidates.into_iter().find(|p| p.is_file()) {
        let text =
            fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        return Ok((ConfigSource::File(file), Some(text)));
    }
    for image in [vmlinux, bzimage].into_iter().flatten() {
        let data = fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
        if let Some(text) = check::extract_ikconfig(&data)
            .with_context(|| format!("reading IKCONFIG of {}", image.display()))?
        {
            return Ok((ConfigSource::Ikconfig(image.to_path_buf()), Some(text)));
        }
    }
    Ok((ConfigSource::Unknown, None))
}

/// `<tree>` for an image at `<tree>/arch/<arch>/boot/bzImage`.
fn build_tree_root(image: &Path) -> Option<PathBuf> {
    let boot = image.parent()?;
    let arch = boot.parent()?;
    let tree = arch.parent()?;
    (boot.file_name()? == "boot" && tree.file_name()? == "arch")
        .then(|| tree.parent().map(Path::to_path_buf))?
}

/// The vmlinux that goes with a bzImage: in its directory, or at its build tree's root.
fn vmlinux_beside(bzimage: &Path) -> Option<PathBuf> {
    let dir = bzimage.parent()?;
    [
        Some(dir.join("vmlinux")),
        build_tree_root(bzimage).map(|r| r.join("vmlinux")),
    ]
    .into_iter()
    .flatten()
    .find(|p| matches!(detect(p), Ok(ImageKind::Vmlinux { .. })))
}

/// The bzImage that goes with a vmlinux: in its directory, or under its build tree.
fn bzimage_beside(vmlinux: &Path) -> Option<PathBuf> {
    let dir = vmlinux.parent()?;
    ["bzImage", "arch/x86/boot/bzImage"]
        .iter()
        .map(|p| dir.join(p))
        .find(|p| matches!(detect(p), Ok(ImageKind::BzImage)))
}

/// Reads just enough of a file to tell a vmlinux from a bzImage.
pub fn detect(path: &Path) -> Result<ImageKind> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = vec![0u8; 0x210];
    let n = read_up_to(&mut file, &mut head)?;
    head.truncate(n);
    if head.starts_with(b"\x7fELF") {
        if head.get(4) != Some(&2)
            || head.get(5) != Some(&1)
            || head.get(0x12..0x14) != Some(&[0x3e, 0][..])
        {
            bail!(
                "{} is an ELF file but not a little-endian x86-64 one",
                path.display()
            );
        }
        return Ok(ImageKind::Vmlinux {
            pvh: has_pvh_note(&mut file)?,
        });
    }
    if head.get(0x202..0x206) == Some(b"HdrS") {
        return Ok(ImageKind::BzImage);
    }
    bail!(
        "{} is neither a vmlinux (ELF) nor a bzImage",
        path.display()
    )
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the PVH entry point note.
const PVH_NOTE_TYPE: u32 = 18;

/// Scans the ELF's PT_NOTE segments for the `Xen` PVH entry note.
fn has_pvh_note(file: &mut File) -> Result<bool> {
    let mut eh = [0u8; 64];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut eh)?;
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = (u64_at(&eh, 0x20), u16_at(&eh, 0x36), u16_at(&eh, 0x38));
    if usize::from(phentsize) < 56 {
        return Ok(false);
    }
    for i in 0..u64::from(phnum) {
        let mut ph = [0u8; 56];
        file.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        file.read_exact(&mut ph)?;
        if u32_at(&ph, 0) != 4 {
            continue; // not PT_NOTE
        }
        let (offset, size) = (u64_at(&ph, 0x08), u64_at(&ph, 0x20).min(1 << 20));
        let mut notes = vec![0u8; usize::try_from(size)?];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut notes)?;
        if notes_have(&notes, b"Xen\0", PVH_NOTE_TYPE) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Walks ELF notes (`namesz`, `descsz`, `type`, name, desc; 4-byte aligned).
fn notes_have(mut notes: &[u8], name: &[u8], kind: u32) -> bool {
    let align = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let word = |o: usize| {
            usize::try_from(u32::from_le_bytes(
                notes[o..o + 4].try_into().expect("4 bytes"),
            ))
            .unwrap_or(usize::MAX)
        };
        let (namesz, descsz, ty) = (word(0), word(4), word(8));
        let Some(end) = align(namesz)
            .checked_add(align(descsz))
            .and_then(|n| n.checked_add(12))
        else {
            return false;
        };
        if end > notes.len() {
            return false;
        }
        if ty == usize::try_from(kind).unwrap_or(usize::MAX)
            && notes.get(12..12 + namesz) == Some(name)
        {
            return true;
        }
        notes = &notes[end..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::check::tests::{GOOD, fake_bzimage, fake_vmlinux, gzip};
    use super::*;

    /// A minimal x86-64 ELF with one PT_NOTE segment, optionally holding the PVH note.
    fn fake_elf(pvh: bool, tail: &[u8]) -> Vec<u8> {
        let mut notes = Vec::new();
        for (name, ty) in [
            (&b"GNU\0"[..], 3u32),
            (&b"Xen\0"[..], if pvh { PVH_NOTE_TYPE } else { 6 }),
        ] {
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&ty.to_le_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(&[1, 2, 3, 4]);
        }
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x12] = 0x3e;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&4u32.to_le_bytes());
        elf[72..80].copy_from_slice(&120u64.to_le_bytes());
        elf[96..104].copy_from_slice(&u64::try_from(notes.len()).unwrap().to_le_bytes());
        elf.extend(notes);
        elf.extend_from_slice(tail);
        elf
    }

    #[test]
    fn detects_kinds_and_pvh() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c, d) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
            tmp.path().join("d"),
        );
        fs::write(&a, fake_elf(true, b"")).unwrap();
        fs::write(&b, fake_elf(false, b"")).unwrap();
        fs::write(&c, fake_bzimage(b"payload")).unwrap();
        fs::write(&d, b"#!/bin/sh\n").unwrap();
        assert_eq!(detect(&a).unwrap(), ImageKind::Vmlinux { pvh: true });
        assert_eq!(detect(&b).unwrap(), ImageKind::Vmlinux { pvh: false });
        assert_eq!(detect(&c).unwrap(), ImageKind::BzImage);
        assert!(detect(&d).unwrap_err().to_string().contains("neither"));
    }

    #[test]
    fn bzimage_in_build_tree_finds_vmlinux_and_config() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path();
        fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        fs::write(tree.join("arch/x86/boot/bzImage"), fake_bzimage(b"x")).unwrap();
        fs::write(tree.join("vmlinux"), fake_elf(true, b"")).unwrap();
        fs::write(
            tree.join(".config"),
            GOOD.replace("CONFIG_NET=y", "# CONFIG_NET is not set"),
        )
        .unwrap();
        let img = from_user_path(&tree.join("arch/x86/boot/bzImage")).unwrap();
        assert_eq!(img.vmlinux.as_deref(), Some(tree.join("vmlinux").as_path()));
        assert!(img.pvh);
        assert_eq!(img.boot_image(), tree.join("vmlinux"));
        assert_eq!(img.config, ConfigSource::File(tree.join(".config")));
        assert_eq!(
            img.missing.iter().map(|m| m.name).collect::<Vec<_>>(),
            ["NET"]
        );
        assert!(
            img.require_options()
                .unwrap_err()
                .to_string()
                .contains("CONFIG_NET")
        );
        // And from the vmlinux side, the bzImage under the tree.
        let img = from_user_path(&tree.join("vmlinux")).unwrap();
        assert_eq!(
            img.bzimage.as_deref(),
            Some(tree.join("arch/x86/boot/bzImage").as_path())
        );
    }

    #[test]
    fn lone_images_fall_back_to_ikconfig() {
        let tmp = tempfile::tempdir().unwrap();
        let bz = tmp.path().join("bzImage");
        fs::write(&bz, fake_bzimage(&gzip(&fake_vmlinux(GOOD)))).unwrap();
        let img = from_user_path(&bz).unwrap();
        assert_eq!(img.vmlinux, None);
        assert_eq!(img.config, ConfigSource::Ikconfig(bz.clone()));
        assert!(img.missing.is_empty());
        assert_eq!(img.boot_image(), bz);

        let v = tmp.path().join("sub/vmlinux");
        fs::create_dir_all(v.parent().unwrap()).unwrap();
        let tail = fake_vmlinux(&GOOD.replace("CONFIG_DEVTMPFS=y\n", ""));
        fs::write(&v, fake_elf(false, &tail)).unwrap();
        let img = from_user_path(&v).unwrap();
        assert!(!img.pvh);
        assert_eq!(img.config, ConfigSource::Ikconfig(v.clone()));
        assert_eq!(
            img.missing.iter().map(|m| m.name).collect::<Vec<_>>(),
            ["DEVTMPFS"]
        );
    }
}
