//! Host-side limits checked before anything is built: `--memory`, `--margin`,
//! the topology each backend can boot, and the guest memory a scenario needs.
//! README.md ("Limits") gives the reason for each.
use anyhow::{Result, bail};
use trace_format::scenario::limits::PeakLoad;
use trace_format::scenario::{Scenario, Topology};
use vmm::kvm::arch::cpuid::CpuTopology;

/// Smallest `--memory`: the kernel, the executor and the transport window.
pub const MIN_MEMORY_MIB: u64 = 64;
/// Largest `--memory` whatever the host has (64 GiB).
pub const MAX_MEMORY_MIB: u64 = 64 << 10;
/// `--margin` range, seconds: boot alone takes 1-3 s under TCG; past an hour a
/// hung guest is no longer caught in useful time.
pub const MARGIN_SECS: std::ops::RangeInclusive<u64> = 3..=3600;
/// Highest APIC ID QEMU boots without x2APIC interrupt remapping (an IOMMU
/// with `intremap=on,eim=on`, which schedtape does not add); 255 is broadcast.
pub const QEMU_MAX_APIC_ID: u32 = 254;
/// Highest APIC ID (= KVM vCPU id) our VMM uses: KVM_MAX_VCPU_ID is 1023
/// on hosts older than Linux 5.15.
pub const KVM_MAX_APIC_ID: u32 = 1022;

/// Clap parser for `--memory`: MiB within [`MIN_MEMORY_MIB`]..= the smaller
/// of [`MAX_MEMORY_MIB`] and the host's RAM.
pub fn memory_mib(s: &str) -> Result<u64, String> {
    memory_mib_on(s, host_ram_mib())
}

fn memory_mib_on(s: &str, host_mib: Option<u64>) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of MiB"))?;
    let max = host_mib.map_or(MAX_MEMORY_MIB, |h| h.min(MAX_MEMORY_MIB));
    if !(MIN_MEMORY_MIB..=max).contains(&v) {
        let why = match host_mib {
            Some(h) if h < MAX_MEMORY_MIB => format!("this host has {h} MiB of RAM"),
            _ => format!("{MAX_MEMORY_MIB} MiB is the fixed maximum"),
        };
        return Err(format!(
            "{v} MiB is out of range {MIN_MEMORY_MIB}..={max} ({why})"
        ));
    }
    Ok(v)
}

/// Clap parser for `--margin`: whole seconds in [`MARGIN_SECS`].
pub fn margin_secs(s: &str) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of seconds"))?;
    if !MARGIN_SECS.contains(&v) {
        return Err(format!(
            "{v} s is out of range {}..={} (boot alone takes 1-3 s under TCG)",
            MARGIN_SECS.start(),
            MARGIN_SECS.end()
        ));
    }
    Ok(v)
}

/// `MemTotal` of /proc/meminfo in MiB; `None` when unreadable.
fn host_ram_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib >> 10)
}

/// Which limits apply: those of the backend the run chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Qemu,
    Kvm,
}

/// The highest APIC ID of `t` as both backends number them: thread, core,
/// LLC (die) and node fields, each as wide as its count needs.
pub fn highest_apic_id(t: Topology) -> u32 {
    CpuTopology::new(t).apic_id(t.cpus() - 1)
}

/// Refuses a (validated) topology the backend cannot boot.
pub fn check_topology(t: Topology, backend: BackendKind) -> Result<()> {
    let id = highest_apic_id(t);
    let (name, max, why) = match backend {
        BackendKind::Qemu => (
            "the QEMU backend",
            QEMU_MAX_APIC_ID,
            "QEMU needs x2APIC interrupt remapping above it, which schedtape does not configure",
        ),
        BackendKind::Kvm => (
            "the KVM backend",
            KVM_MAX_APIC_ID,
            "KVM before Linux 5.15 takes no higher vCPU id",
        ),
    };
    if id > max {
        bail!(
            "topology = {t}: its highest APIC ID is {id}, and {name} takes at most {max} ({why}); \
             each topology field is rounded up to a power of two in the APIC ID, so use \
             power-of-two counts or fewer CPUs"
        );
    }
    Ok(())
}

/// `--memory` must hold the transport window, give every NUMA node its share
/// (the backends split RAM by [`vmm::numa::node_shares`]), and hold what the
/// scenario keeps alive at its busiest (see [`PeakLoad`]).
pub fn check_memory(memory_mib: u64, scenario: &Scenario) -> Result<()> {
    let topology = scenario.topology;
    if memory_mib < MIN_MEMORY_MIB {
        bail!("--memory {memory_mib}: the guest needs at least {MIN_MEMORY_MIB} MiB");
    }
    let Some(bytes) = memory_mib.checked_mul(1 << 20) else {
        bail!("--memory {memory_mib}: at most {MAX_MEMORY_MIB} MiB");
    };
    let nodes = u32::from(topology.nodes);
    let per_node = vmm::numa::SHARE_ALIGN >> 20;
    if vmm::numa::node_shares(bytes, nodes).contains(&0) {
        bail!(
            "--memory {memory_mib}: topology {topology} has {nodes} NUMA nodes, which need at least {} MiB ({per_node} MiB each)",
            u64::from(nodes) * per_node
        );
    }
    let load = PeakLoad::of(scenario);
    let need = load.guest_bytes(topology.cpus());
    if need > bytes {
        bail!(
            "--memory {memory_mib}: scenario {} needs about {} MiB in the guest ({} workers and {} cgroups alive at once on {} CPUs, {} MiB of work buffers); raise --memory or use fewer workers",
            scenario.name,
            need.div_ceil(1 << 20),
            load.workers,
            load.cgroups,
            topology.cpus(),
            load.work_bytes >> 20
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::scenario::{CgroupDef, Step, WorkSpec, WorkType};

    fn scenario(topo: &str, workers: u32) -> Scenario {
        Scenario::builder("m")
            .topology(Topology::parse(topo).unwrap())
            .duration_ms(1000)
            .step(Step::new().cgroup(
                CgroupDef::new("a").work(WorkSpec::new(WorkType::SpinWait).workers(workers)),
            ))
            .build()
    }

    #[test]
    fn memory_must_fit_the_window_and_every_node() {
        assert!(check_memory(512, &scenario("40n1l1c1t", 1)).is_ok());
        assert_eq!(
            check_memory(64, &scenario("40n1l1c1t", 1))
                .unwrap_err()
                .to_string(),
            "--memory 64: topology 40n1l1c1t has 40 NUMA nodes, which need at least 80 MiB (2 MiB each)"
        );
        let err = check_memory(32, &scenario("tiny", 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--memory 32: the guest needs at least 64 MiB"
        );
    }

    #[test]
    fn memory_must_hold_the_workers_alive_at_once() {
        assert!(check_memory(512, &scenario("tiny", 64)).is_ok());
        let err = check_memory(512, &scenario("tiny", 4096))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--memory 512: scenario m needs about 1073 MiB")
                && err.contains("4096 workers and 1 cgroups"),
            "{err}"
        );
    }

    #[test]
    fn memory_option_has_a_range_and_the_host_caps_it() {
        assert_eq!(memory_mib_on("512", Some(24_000)), Ok(512));
        assert_eq!(
            memory_mib_on("99999999", Some(24_000)).unwrap_err(),
            "99999999 MiB is out of range 64..=24000 (this host has 24000 MiB of RAM)"
        );
        assert_eq!(
            memory_mib_on("99999999", None).unwrap_err(),
            "99999999 MiB is out of range 64..=65536 (65536 MiB is the fixed maximum)"
        );
        assert!(
            memory_mib_on("18446744073709551615", Some(1 << 20))
                .unwrap_err()
                .contains("out of range 64..=65536")
        );
        assert!(
            memory_mib_on("18446744073709551616", None)
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(memory_mib_on("63", None).is_err());
    }

    #[test]
    fn margin_has_a_range() {
        assert_eq!(margin_secs("60"), Ok(60));
        assert_eq!(margin_secs("3"), Ok(3));
        assert_eq!(
            margin_secs("0").unwrap_err(),
            "0 s is out of range 3..=3600 (boot alone takes 1-3 s under TCG)"
        );
        assert!(margin_secs("18446744073709551615").is_err());
    }

    #[test]
    fn apic_ids_round_each_field_up_to_a_power_of_two() {
        let t = |s: &str| Topology::parse(s).unwrap();
        assert_eq!(highest_apic_id(t("1n1l4c1t")), 3);
        assert_eq!(highest_apic_id(t("1n1l3c3t")), 0b1010); // core 2, thread 2
        assert_eq!(highest_apic_id(t("2n1l2c1t")), 3);
    }

    #[test]
    fn qemu_refuses_apic_ids_past_254_and_kvm_takes_them() {
        let t = |s: &str| Topology::parse(s).unwrap();
        assert!(check_topology(t("1n1l255c1t"), BackendKind::Qemu).is_ok());
        let err = check_topology(t("8n1l32c1t"), BackendKind::Qemu)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("topology = 8n1l32c1t: its highest APIC ID is 255, and the QEMU backend takes at most 254"),
            "{err}"
        );
        // 243 CPUs, but 3 is rounded up to 4 in every field.
        assert!(check_topology(t("3n3l3c9t"), BackendKind::Qemu).is_err());
        assert!(check_topology(t("8n1l32c1t"), BackendKind::Kvm).is_ok());
        assert!(check_topology(t("3n3l3c9t"), BackendKind::Kvm).is_ok());
    }

    #[test]
    fn every_fixture_fits_the_default_memory_and_both_backends() {
        let dir = crate::workspace_root().join("fixtures/scenarios");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let sc = Scenario::load(&path).unwrap();
            let name = path.display();
            check_memory(512, &sc).unwrap_or_else(|e| panic!("{name}: {e}"));
            for b in [BackendKind::Qemu, BackendKind::Kvm] {
                check_topology(sc.topology, b).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}
