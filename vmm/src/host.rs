//! Facts about the host machine, recorded so traces from different hosts can be told apart.
use trace_format::meta::HostFingerprint;

/// Reads hostname, CPU model, CPU count, memory and kernel release from /proc.
pub fn fingerprint() -> HostFingerprint {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map_or(0, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    HostFingerprint {
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        cpu_model,
        cpus,
        memory_mib,
        os: read("/proc/sys/kernel/osrelease").trim().to_string(),
    }
}

/// 16 random bytes from the kernel, for run ids.
pub fn random_id() -> [u8; 16] {
    use std::io::Read;
    let mut id = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut id));
    if filled.is_err() {
        // Fall back to time and pid: unique enough to tell runs apart.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        id[..8].copy_from_slice(&now.as_nanos().to_le_bytes()[..8]);
        id[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_reads_this_machine() {
        let f = super::fingerprint();
        assert!(f.cpus >= 1);
        assert!(f.memory_mib > 0);
        assert!(!f.os.is_empty());
        assert_ne!(super::random_id(), super::random_id());
    }
}
