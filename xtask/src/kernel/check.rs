//! Does a kernel have what schedtape needs? Reads its config (a `.config`, or the
//! copy the kernel embeds with `CONFIG_IKCONFIG`) and names each missing option.
use std::fmt;
use std::io::Read;

use anyhow::{Result, bail};
use flate2::read::GzDecoder;
use memchr::memmem;

use super::fragment::{self, Value};

/// An option schedtape needs built in, and what breaks without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Required {
    pub name: &'static str,
    pub why: &'static str,
}

/// The options a guest kernel must have built in (`=y`).
pub const REQUIRED: &[Required] = &[
    Required {
        name: "SCHED_CLASS_EXT",
        why: "sched_ext schedulers",
    },
    Required {
        name: "BPF_SYSCALL",
        why: "loading BPF schedulers",
    },
    Required {
        name: "BPF_EVENTS",
        why: "bpf_probe_read_kernel_str and bpf_printk, which sched_ext schedulers call",
    },
    Required {
        name: "DEBUG_INFO_BTF",
        why: "sched_ext and libbpf need kernel BTF",
    },
    Required {
        name: "CGROUPS",
        why: "scenario cgroups",
    },
    Required {
        name: "CPUSETS",
        why: "cpuset ops",
    },
    Required {
        name: "DEVMEM",
        why: "the guest maps the ring window through /dev/mem",
    },
    Required {
        name: "SERIAL_8250_CONSOLE",
        why: "the console on COM1",
    },
    Required {
        name: "NET",
        why: "libbpf feature probes and the common kfunc set",
    },
    Required {
        name: "DEBUG_FS",
        why: "sched_ext dumps and scheduler debug files",
    },
    Required {
        name: "SCHEDSTATS",
        why: "run-delay statistics",
    },
    Required {
        name: "BLK_DEV_INITRD",
        why: "the guest runs from an initramfs",
    },
    Required {
        name: "DEVTMPFS",
        why: "the guest mounts devtmpfs",
    },
];

/// A required option the kernel lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingOption {
    pub name: &'static str,
    pub why: &'static str,
    /// What the config has instead (`None`: absent).
    pub found: Option<Value>,
}

impl fmt::Display for MissingOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found = match &self.found {
            None => "absent".to_string(),
            Some(Value::Module) => "a module (schedtape loads none)".to_string(),
            Some(v) => v.to_string(),
        };
        write!(f, "CONFIG_{} ({}): {found}", self.name, self.why)
    }
}

/// Names each option of [`REQUIRED`] that `config_text` (a `.config`) does not set to `y`.
pub fn check_config(config_text: &str) -> Vec<MissingOption> {
    let config = fragment::parse_config(config_text);
    REQUIRED
        .iter()
        .filter_map(|r| {
            let found = config.get(r.name);
            (found != Some(&Value::Yes)).then(|| MissingOption {
                name: r.name,
                why: r.why,
                found: found.cloned(),
            })
        })
        .collect()
}

const IKCFG_START: &[u8] = b"IKCFG_ST";
const IKCFG_END: &[u8] = b"IKCFG_ED";
/// The most we decompress from one stream: an x86 vmlinux payload is tens of MB.
const INFLATE_LIMIT: u64 = 512 << 20;
/// The most a config can inflate to.
const CONFIG_LIMIT: u64 = 4 << 20;

/// The config a kernel embeds with `CONFIG_IKCONFIG`: `IKCFG_ST`, a gzip stream,
/// `IKCFG_ED`. Finds it in a vmlinux directly and in a gzip-compressed bzImage's
/// payload; `Ok(None)` when the image has none.
pub fn extract_ikconfig(image: &[u8]) -> Result<Option<String>> {
    if let Some(text) = ikconfig_in(image) {
        return Ok(Some(text));
    }
    let Some(payload) = bzimage_payload(image) else {
        return Ok(None);
    };
    let Some(kind) = compression(payload) else {
        return Ok(None);
    };
    if kind != "gzip" {
        bail!(
            "the bzImage payload is {kind}-compressed; only gzip is read here (give the vmlinux or a .config)"
        );
    }
    let mut inflated = Vec::new();
    GzDecoder::new(payload)
        .take(INFLATE_LIMIT)
        .read_to_end(&mut inflated)?;
    Ok(ikconfig_in(&inflated))
}

/// Finds `IKCFG_ST` followed by a gzip stream that inflates to text.
fn ikconfig_in(data: &[u8]) -> Option<String> {
    for start in memmem::find_iter(data, IKCFG_START) {
        let gz = &data[start + IKCFG_START.len()..];
        if !gz.starts_with(&[0x1f, 0x8b]) {
            continue;
        }
        let mut text = String::new();
        if GzDecoder::new(gz)
            .take(CONFIG_LIMIT)
            .read_to_string(&mut text)
            .is_ok()
            && !text.is_empty()
        {
            return Some(text);
        }
    }
    // A config stored uncompressed between the markers (never seen from kbuild, but cheap to accept).
    let start = memmem::find(data, IKCFG_START)? + IKCFG_START.len();
    let len = memmem::find(&data[start..], IKCFG_END)?;
    String::from_utf8(data[start..start + len].to_vec())
        .ok()
        .filter(|t| t.contains("CONFIG_"))
}

/// The compressed kernel inside a bzImage, per the boot protocol's setup header.
pub fn bzimage_payload(image: &[u8]) -> Option<&[u8]> {
    let u32_at = |off: usize| {
        image
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let version = u16::from_le_bytes([*image.get(0x206)?, *image.get(0x207)?]);
    if version < 0x208 {
        return None; // payload_offset/length arrived with protocol 2.08
    }
    let setup_sects = match *image.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let code = (setup_sects + 1) * 512;
    let offset = usize::try_from(u32_at(0x248)?).ok()?;
    let length = usize::try_from(u32_at(0x24c)?).ok()?;
    image.get(code + offset..code + offset + length)
}

/// Names the compression of a kernel payload by its magic.
fn compression(payload: &[u8]) -> Option<&'static str> {
    const MAGICS: &[(&[u8], &str)] = &[
        (&[0x1f, 0x8b], "gzip"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"BZh", "bzip2"),
        (&[0x5d, 0, 0], "lzma"),
        (&[0x89, b'L', b'Z', b'O'], "lzo"),
        (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| payload.starts_with(m))
        .map(|(_, name)| *name)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    pub(crate) const GOOD: &str = "CONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_BPF_EVENTS=y\nCONFIG_DEBUG_INFO_BTF=y\n\
        CONFIG_CGROUPS=y\nCONFIG_CPUSETS=y\nCONFIG_DEVMEM=y\nCONFIG_SERIAL_8250_CONSOLE=y\nCONFIG_NET=y\n\
        CONFIG_DEBUG_FS=y\nCONFIG_SCHEDSTATS=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_DEVTMPFS=y\n";

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A fake vmlinux: junk, then the IKCONFIG blob as kbuild lays it out.
    pub(crate) fn fake_vmlinux(config: &str) -> Vec<u8> {
        let mut blob = b"\x7fELF junk IKCFG_ST but no gzip here ".to_vec();
        blob.extend_from_slice(IKCFG_START);
        blob.extend(gzip(config.as_bytes()));
        blob.extend_from_slice(IKCFG_END);
        blob.extend_from_slice(&[0u8; 64]);
        blob
    }

    /// A fake bzImage: a setup header (protocol 2.15, one setup sector) and a payload.
    pub(crate) fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 1024];
        img[0x1f1] = 1;
        img[0x1fe] = 0x55;
        img[0x1ff] = 0xaa;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        img.extend_from_slice(&[0xcc; 16]);
        img.extend_from_slice(payload);
        img.extend_from_slice(&[0u8; 8]);
        img
    }

    #[test]
    fn complete_config_has_nothing_missing() {
        assert_eq!(check_config(GOOD), vec![]);
    }

    #[test]
    fn names_each_missing_option() {
        let text = GOOD
            .replace("CONFIG_NET=y\n", "# CONFIG_NET is not set\n")
            .replace("CONFIG_SCHED_CLASS_EXT=y\n", "")
            .replace("CONFIG_DEVMEM=y", "CONFIG_DEVMEM=m");
        let missing = check_config(&text);
        let names: Vec<&str> = missing.iter().map(|m| m.name).collect();
        assert_eq!(names, ["SCHED_CLASS_EXT", "DEVMEM", "NET"]);
        assert_eq!(
            missing[0].to_string(),
            "CONFIG_SCHED_CLASS_EXT (sched_ext schedulers): absent"
        );
        assert!(missing[1].to_string().contains("a module"));
        assert!(missing[2].to_string().ends_with("not set"));
    }

    #[test]
    fn ikconfig_from_vmlinux() {
        assert_eq!(
            extract_ikconfig(&fake_vmlinux(GOOD)).unwrap().as_deref(),
            Some(GOOD)
        );
    }

    #[test]
    fn ikconfig_from_gzip_bzimage() {
        let img = fake_bzimage(&gzip(&fake_vmlinux(GOOD)));
        assert_eq!(extract_ikconfig(&img).unwrap().as_deref(), Some(GOOD));
    }

    #[test]
    fn ikconfig_absent_or_unreadable() {
        assert_eq!(extract_ikconfig(b"\x7fELF nothing here").unwrap(), None);
        assert_eq!(
            extract_ikconfig(&fake_bzimage(&gzip(b"no config"))).unwrap(),
            None
        );
        let xz = fake_bzimage(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2]);
        assert!(
            extract_ikconfig(&xz)
                .unwrap_err()
                .to_string()
                .contains("xz")
        );
    }
}
