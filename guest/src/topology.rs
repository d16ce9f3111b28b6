//! Checks the CPU topology the guest kernel reports in sysfs against the one
//! the scenario asked for: per CPU its SMT siblings, the CPUs sharing its
//! last-level cache and its package, and per NUMA node its CPUs. Both backends
//! model a node as one package (socket) and an LLC as one die.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use trace_format::record::TOPOLOGY_MISMATCH;
use trace_format::scenario::{CpuList, Topology};

use crate::procfs::{number, parse_cpu_list};

const CPU_DIR: &str = "/sys/devices/system/cpu";
const NODE_DIR: &str = "/sys/devices/system/node";
/// Mismatch lines reported before the rest are only counted.
const MAX_REPORTED: usize = 8;
/// Cache `indexN` directories looked at per CPU (x86 has 4: L1d, L1i, L2, L3).
const MAX_CACHE_INDEX: u32 = 8;

/// The result of [`check`]: a one-line summary when everything matches, else
/// one line per mismatch, each starting with [`TOPOLOGY_MISMATCH`].
pub type Checked = Result<String, Vec<String>>;

/// Compares sysfs, read through `read` (a path to the file's bytes, `None`
/// when absent), with `topo`.
pub fn check(topo: &Topology, mut read: impl FnMut(&str) -> Option<Vec<u8>>) -> Checked {
    let mut problems = Vec::new();
    let mut list = |path: &str| read(path).and_then(|b| parse_cpu_list(&b));
    for cpu in 0..topo.cpus() {
        let Some(at) = topo.locate(cpu) else { break };
        let base = format!("{CPU_DIR}/cpu{cpu}");
        let expected = [
            (
                "SMT siblings",
                "topology/thread_siblings_list",
                topo.siblings(cpu),
            ),
            (
                "package",
                "topology/package_cpus_list",
                topo.node_cpus(at.node),
            ),
        ];
        for (what, file, want) in expected {
            compare(
                &mut problems,
                &format!("cpu{cpu} {what}"),
                list(&format!("{base}/{file}")),
                &want,
            );
        }
    }
    // The LLC is the cache index with the highest level; found per CPU.
    for cpu in 0..topo.cpus() {
        let Some(at) = topo.locate(cpu) else { break };
        let llc = last_level_cache(&format!("{CPU_DIR}/cpu{cpu}/cache"), &mut read);
        compare(
            &mut problems,
            &format!("cpu{cpu} LLC"),
            llc,
            &topo.llc_cpus(at.llc),
        );
    }
    for node in 0..u32::from(topo.nodes) {
        let mut list = |path: &str| read(path).and_then(|b| parse_cpu_list(&b));
        let seen = list(&format!("{NODE_DIR}/node{node}/cpulist"));
        compare(
            &mut problems,
            &format!("node{node}"),
            seen,
            &topo.node_cpus(node),
        );
    }
    if problems.is_empty() {
        return Ok(format!(
            "topology: the guest sees {topo} ({} CPUs; SMT siblings, LLCs, packages and NUMA nodes as asked)",
            topo.cpus()
        ));
    }
    let extra = problems.len().saturating_sub(MAX_REPORTED);
    problems.truncate(MAX_REPORTED);
    if extra > 0 {
        problems.push(format!("{TOPOLOGY_MISMATCH}and {extra} more"));
    }
    Err(problems)
}

fn compare(problems: &mut Vec<String>, what: &str, seen: Option<CpuList>, want: &CpuList) {
    match seen {
        Some(seen) if seen == *want => {}
        Some(seen) => problems.push(format!("{TOPOLOGY_MISMATCH}{what} {seen}, expected {want}")),
        None => problems.push(format!(
            "{TOPOLOGY_MISMATCH}{what} not reported by sysfs, expected {want}"
        )),
    }
}

/// `shared_cpu_list` of the highest-level cache under `dir`.
fn last_level_cache(dir: &str, read: &mut impl FnMut(&str) -> Option<Vec<u8>>) -> Option<CpuList> {
    let mut best: Option<(u64, u32)> = None;
    for index in 0..MAX_CACHE_INDEX {
        let Some(level) = read(&format!("{dir}/index{index}/level")) else {
            continue;
        };
        let Some(level) = number(level.trim_ascii()) else {
            continue;
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, index));
        }
    }
    let (_, index) = best?;
    read(&format!("{dir}/index{index}/shared_cpu_list")).and_then(|b| parse_cpu_list(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    /// A sysfs tree as Linux lays it out for `topo` (package = node, LLC = L3).
    fn sysfs(topo: &Topology) -> BTreeMap<String, String> {
        let mut fs = BTreeMap::new();
        for cpu in 0..topo.cpus() {
            let at = topo.locate(cpu).unwrap();
            let base = format!("{CPU_DIR}/cpu{cpu}");
            fs.insert(
                format!("{base}/topology/thread_siblings_list"),
                topo.siblings(cpu).to_string(),
            );
            fs.insert(
                format!("{base}/topology/package_cpus_list"),
                topo.node_cpus(at.node).to_string(),
            );
            for (index, level, shared) in [
                (0, 1, topo.siblings(cpu)),
                (1, 1, topo.siblings(cpu)),
                (2, 2, topo.siblings(cpu)),
                (3, 3, topo.llc_cpus(at.llc)),
            ] {
                fs.insert(
                    format!("{base}/cache/index{index}/level"),
                    format!("{level}\n"),
                );
                fs.insert(
                    format!("{base}/cache/index{index}/shared_cpu_list"),
                    format!("{shared}\n"),
                );
            }
        }
        for node in 0..u32::from(topo.nodes) {
            fs.insert(
                format!("{NODE_DIR}/node{node}/cpulist"),
                format!("{}\n", topo.node_cpus(node)),
            );
        }
        fs
    }

    fn run(topo: &Topology, fs: &BTreeMap<String, String>) -> Checked {
        check(topo, |p| fs.get(p).map(|s| s.as_bytes().to_vec()))
    }

    #[test]
    fn a_faithful_sysfs_matches() {
        for t in ["1n1l2c1t", "1n2l4c2t", "2n2l2c2t", "1n1l1c1t"] {
            let topo = Topology::parse(t).unwrap();
            let summary = run(&topo, &sysfs(&topo)).unwrap();
            assert!(summary.contains(t), "{summary}");
        }
    }

    #[test]
    fn one_shared_llc_where_two_were_asked_is_named() {
        let topo = Topology::parse("1n2l2c1t").unwrap();
        let mut fs = sysfs(&topo);
        for cpu in 0..4 {
            fs.insert(
                format!("{CPU_DIR}/cpu{cpu}/cache/index3/shared_cpu_list"),
                "0-3\n".into(),
            );
        }
        let problems = run(&topo, &fs).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(problems[0], "topology mismatch: cpu0 LLC 0-3, expected 0-1");
    }

    #[test]
    fn nodes_seen_as_one_are_reported_per_node() {
        let topo = Topology::parse("2n1l2c1t").unwrap();
        let mut fs = sysfs(&topo);
        fs.insert(format!("{NODE_DIR}/node0/cpulist"), "0-3\n".into());
        fs.remove(&format!("{NODE_DIR}/node1/cpulist"));
        let problems = run(&topo, &fs).unwrap_err();
        assert_eq!(
            problems,
            [
                "topology mismatch: node0 0-3, expected 0-1",
                "topology mismatch: node1 not reported by sysfs, expected 2-3",
            ]
        );
    }

    #[test]
    fn the_llc_is_the_highest_cache_level_in_any_index_order() {
        let topo = Topology::parse("1n2l1c2t").unwrap();
        let mut fs = sysfs(&topo);
        for cpu in 0..4 {
            let base = format!("{CPU_DIR}/cpu{cpu}/cache");
            fs.insert(format!("{base}/index0/level"), "3\n".into());
            fs.insert(
                format!("{base}/index0/shared_cpu_list"),
                topo.llc_cpus(cpu / 2).to_string(),
            );
            fs.insert(format!("{base}/index3/level"), "1\n".into());
            fs.insert(format!("{base}/index3/shared_cpu_list"), format!("{cpu}"));
        }
        assert!(run(&topo, &fs).is_ok());
    }

    #[test]
    fn many_mismatches_are_capped_with_a_count() {
        let topo = Topology::parse("1n1l8c1t").unwrap();
        let fs = BTreeMap::new();
        let problems = run(&topo, &fs).unwrap_err();
        assert_eq!(problems.len(), MAX_REPORTED + 1);
        // 8 CPUs × (SMT, package, LLC) + one node = 25 problems.
        assert_eq!(problems[MAX_REPORTED], "topology mismatch: and 17 more");
    }
}
