//! A VMM's own cost, read from `/proc` at the `/init` moment the same way for
//! both VMMs: its guest RAM mapping's resident part (`smaps`), to leave out
//! of its RSS, and the CPU time of its vCPU threads (`task/*/stat`), to leave
//! out of its CPU time.

/// One mapping of `/proc/PID/smaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    /// What backs it: a path, `[heap]`, `[anon:…]`, or empty (anonymous).
    pub path: String,
    pub size_kib: u64,
    pub rss_kib: u64,
}

impl std::fmt::Display for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(anonymous)"
        } else {
            &self.path
        };
        write!(
            f,
            "{:#x} {path}: {} kB, {} kB resident",
            self.start, self.size_kib, self.rss_kib
        )
    }
}

/// The mappings in `/proc/PID/smaps` text; `None` when a header or a `Size`
/// or `Rss` line cannot be read.
pub fn parse_smaps(text: &str) -> Option<Vec<Mapping>> {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some((start, path)) = header(line) {
            maps.push(Mapping {
                start,
                path,
                size_kib: 0,
                rss_kib: 0,
            });
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key != "Size" && key != "Rss" {
            continue;
        }
        let kib = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        let map = maps.last_mut()?;
        if key == "Size" {
            map.size_kib = kib;
        } else {
            map.rss_kib = kib;
        }
    }
    Some(maps)
}

/// `start-end perms offset dev inode [path]`: the start and the path (which
/// may hold spaces, e.g. `/memfd:ram (deleted)`).
fn header(line: &str) -> Option<(u64, String)> {
    let mut rest = line;
    let mut fields = [""; 5];
    for f in &mut fields {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        (*f, rest) = rest.split_at(end);
    }
    let (start, end) = fields[0].split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    u64::from_str_radix(end, 16).ok()?;
    (fields[1].len() == 4 && !fields[4].is_empty()).then(|| (start, rest.trim().to_string()))
}

/// Whether `path` names memory no file backs: anonymous, named anonymous,
/// a memfd or shared anonymous memory (`/dev/zero (deleted)`).
fn anonymous(path: &str) -> bool {
    path.is_empty()
        || path.starts_with("[anon:")
        || path.starts_with("/memfd:")
        || path == "/dev/zero (deleted)"
}

/// The resident KiB of the guest RAM: the one anonymous mapping of exactly
/// `memory_mib`. Other mappings (ROMs, the ring window, heaps) are the VMM's.
pub fn guest_ram_rss_kib(maps: &[Mapping], memory_mib: u64) -> Result<u64, String> {
    let size = memory_mib * 1024;
    let ram: Vec<&Mapping> = maps
        .iter()
        .filter(|m| m.size_kib == size && anonymous(&m.path))
        .collect();
    match ram.as_slice() {
        [one] => Ok(one.rss_kib),
        [] => Err(format!("no anonymous mapping of {size} kB (the guest RAM)")),
        many => Err(format!(
            "{} anonymous mappings of {size} kB, at {}: which is the guest RAM?",
            many.len(),
            many.iter()
                .map(|m| format!("{:#x}", m.start))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The resident KiB of every mapping (the process's RSS now).
pub fn total_rss_kib(maps: &[Mapping]) -> u64 {
    maps.iter().map(|m| m.rss_kib).sum()
}

/// A thread's name and CPU ticks from `/proc/PID/task/TID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTicks {
    pub name: String,
    /// utime + stime.
    pub ticks: u64,
}

/// The name (between the first `(` and the last `)`) and utime + stime.
pub fn parse_thread_stat(stat: &str) -> Option<ThreadTicks> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15.
    let at = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ThreadTicks {
        name,
        ticks: at(14)? + at(15)?,
    })
}

/// A vCPU thread: ours are `vcpuN`, QEMU's `CPU N/KVM`.
pub fn is_vcpu_thread(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("vcpu").is_some_and(digits)
        || name
            .strip_prefix("CPU ")
            .and_then(|s| s.strip_suffix("/KVM"))
            .is_some_and(digits)
}

/// How many of `threads` are vCPUs and their ticks together.
pub fn vcpu_ticks(threads: &[ThreadTicks]) -> (usize, u64) {
    threads
        .iter()
        .filter(|t| is_vcpu_thread(&t.name))
        .fold((0, 0), |(n, sum), t| (n + 1, sum + t.ticks))
}

/// Every live thread of `pid` (threads that end while being read are skipped).
pub fn read_threads(pid: u32) -> std::io::Result<Vec<ThreadTicks>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(entry?.path().join("stat")).unwrap_or_default();
        out.extend(parse_thread_stat(&stat));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields of one smaps entry after its header, as Linux prints them.
    fn entry(header: &str, size: u64, rss: u64) -> String {
        format!(
            "{header}\nSize:           {size:>8} kB\nKernelPageSize:        4 kB\n\
             Rss:            {rss:>8} kB\nPss:            {rss:>8} kB\n\
             AnonHugePages:         0 kB\nVmFlags: rd wr mr mw me ac sd\n"
        )
    }

    fn sample() -> String {
        [
            entry(
                "55d0c0a00000-55d0c0b00000 r-xp 00000000 00:1f 1234            /usr/bin/qemu-system-x86_64",
                1024,
                900,
            ),
            entry(
                "7f0d94c00000-7f0da4c00000 rw-p 00000000 00:00 0 ",
                262_144,
                81_920,
            ),
            // A ROM of the same size would be file-backed: not the RAM.
            entry(
                "7f0e00000000-7f0e10000000 r--p 00000000 00:1f 99               /share/rom (deleted)",
                262_144,
                4,
            ),
            entry(
                "7f0f00000000-7f0f00040000 rw-p 00000000 00:00 0                [anon:microvm.rom]",
                256,
                256,
            ),
            entry(
                "7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]",
                132,
                20,
            ),
        ]
        .concat()
    }

    #[test]
    fn smaps_entries_keep_their_size_rss_and_path() {
        let maps = parse_smaps(&sample()).unwrap();
        assert_eq!(maps.len(), 5);
        assert_eq!(maps[0].path, "/usr/bin/qemu-system-x86_64");
        assert_eq!(maps[1].path, "");
        assert_eq!((maps[1].size_kib, maps[1].rss_kib), (262_144, 81_920));
        assert_eq!(maps[1].start, 0x7f0d_94c0_0000);
        assert_eq!(maps[2].path, "/share/rom (deleted)");
        assert_eq!(maps[3].path, "[anon:microvm.rom]");
        assert_eq!(
            maps[1].to_string(),
            "0x7f0d94c00000 (anonymous): 262144 kB, 81920 kB resident"
        );
        assert_eq!(total_rss_kib(&maps), 900 + 81_920 + 4 + 256 + 20);
        // A Size or Rss line that is not "N kB", or fields before any header.
        assert_eq!(parse_smaps("7f-80 rw-p 0 00:00 0\nRss: many kB\n"), None);
        assert_eq!(parse_smaps("Rss: 4 kB\n"), None);
        assert_eq!(parse_smaps(""), Some(Vec::new()));
    }

    #[test]
    fn the_guest_ram_is_the_one_anonymous_mapping_of_its_size() {
        let maps = parse_smaps(&sample()).unwrap();
        assert_eq!(guest_ram_rss_kib(&maps, 256), Ok(81_920));
        let none = guest_ram_rss_kib(&maps, 512).unwrap_err();
        assert!(none.contains("no anonymous mapping of 524288 kB"), "{none}");
        // A memfd counts as anonymous; two candidates are an error, not a guess.
        let memfd = entry(
            "7f1000000000-7f1010000000 rw-s 00000000 00:01 7 /memfd:pc.ram (deleted)",
            262_144,
            1,
        );
        let both = parse_smaps(&(sample() + &memfd)).unwrap();
        let two = guest_ram_rss_kib(&both, 256).unwrap_err();
        assert!(
            two.starts_with("2 anonymous mappings of 262144 kB"),
            "{two}"
        );
        let only = parse_smaps(&memfd).unwrap();
        assert_eq!(guest_ram_rss_kib(&only, 256), Ok(1));
    }

    /// A task stat line with `name`, utime 14 and stime 15 replaced.
    fn stat(name: &str, utime: u64, stime: u64) -> String {
        let mut f: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        f[0] = "S".into();
        f[14 - 3] = utime.to_string();
        f[15 - 3] = stime.to_string();
        format!("4242 ({name}) {}", f.join(" "))
    }

    #[test]
    fn thread_stat_gives_the_name_and_user_plus_system_ticks() {
        let t = parse_thread_stat(&stat("CPU 0/KVM", 120, 30)).unwrap();
        assert_eq!((t.name.as_str(), t.ticks), ("CPU 0/KVM", 150));
        // A name with ')' in it: the fields follow the last one.
        let odd = parse_thread_stat(&stat("a) (b", 1, 2)).unwrap();
        assert_eq!((odd.name.as_str(), odd.ticks), ("a) (b", 3));
        assert_eq!(parse_thread_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_thread_stat("no name"), None);
    }

    #[test]
    fn vcpu_threads_are_ours_and_qemus_by_name() {
        for name in ["vcpu0", "vcpu63", "CPU 0/KVM", "CPU 12/KVM"] {
            assert!(is_vcpu_thread(name), "{name}");
        }
        for name in [
            "vcpu",
            "vcpux",
            "xtask",
            "CPU /KVM",
            "CPU 1/TCG",
            "qemu-system-x86",
            "IO mon_iothread",
        ] {
            assert!(!is_vcpu_thread(name), "{name}");
        }
        let threads: Vec<ThreadTicks> = [
            stat("qemu-system-x86", 40, 10),
            stat("CPU 0/KVM", 300, 100),
            stat("CPU 1/KVM", 200, 50),
            stat("worker", 1, 1),
        ]
        .iter()
        .map(|s| parse_thread_stat(s).unwrap())
        .collect();
        assert_eq!(vcpu_ticks(&threads), (2, 650));
    }
}
