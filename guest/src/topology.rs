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
/// one line per mismatch (at most [`MAX_REPORTED`] and a count of the rest),
/// each starting with [`TOPOLOGY_MISMATCH`].
pub type Checked = Result<String, Vec<String>>;

/// Compares sysfs, read through `read` (a path to the file's bytes, `None`
/// when absent), with `topo`.
pub fn check(topo: &Topology, read: impl FnMut(&str) -> Option<Vec<u8>>) -> Checked {
    let mut fs = Sysfs(read);
    let mut problems = Vec::new();
    let nodes = u32::from(topo.nodes);
    let mut expect = |what: &str, seen: Seen, want: &CpuList| {
        if let Some(p) = seen.differs_from(want) {
            problems.push(format!("{TOPOLOGY_MISMATCH}{what} {p}"));
        }
    };
    expect(
        "online CPUs",
        fs.list(&format!("{CPU_DIR}/online")),
        &topo.all_cpus(),
    );
    let all_nodes = CpuList::new(0..nodes);
    expect(
        "online nodes",
        fs.list(&format!("{NODE_DIR}/online")),
        &all_nodes,
    );
    for (cpu, at) in (0..topo.cpus()).filter_map(|c| Some((c, topo.locate(c)?))) {
        let base = format!("{CPU_DIR}/cpu{cpu}");
        let smt = fs.list(&format!("{base}/topology/thread_siblings_list"));
        expect(&format!("cpu{cpu} SMT siblings"), smt, &topo.siblings(cpu));
        let package = fs.list(&format!("{base}/topology/package_cpus_list"));
        expect(
            &format!("cpu{cpu} package"),
            package,
            &topo.node_cpus(at.node),
        );
        let llc = fs.last_level_cache(&format!("{base}/cache"));
        expect(&format!("cpu{cpu} LLC"), llc, &topo.llc_cpus(at.llc));
    }
    for node in 0..nodes {
        let seen = fs.list(&format!("{NODE_DIR}/node{node}/cpulist"));
        expect(&format!("node{node}"), seen, &topo.node_cpus(node));
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

/// What sysfs said for one CPU list.
enum Seen {
    List(CpuList),
    Absent,
    Unparsable,
}

impl Seen {
    /// How this differs from `want`, if it does.
    fn differs_from(&self, want: &CpuList) -> Option<String> {
        match self {
            Seen::List(seen) if seen == want => None,
            Seen::List(seen) => Some(format!("{seen}, expected {want}")),
            Seen::Absent => Some(format!("not reported by sysfs, expected {want}")),
            Seen::Unparsable => Some(format!("unparsable in sysfs, expected {want}")),
        }
    }
}

/// sysfs through a reader of whole files.
struct Sysfs<R>(R);

impl<R: FnMut(&str) -> Option<Vec<u8>>> Sysfs<R> {
    fn list(&mut self, path: &str) -> Seen {
        match (self.0)(path) {
            None => Seen::Absent,
            Some(bytes) => parse_cpu_list(&bytes).map_or(Seen::Unparsable, Seen::List),
        }
    }

    /// `shared_cpu_list` of the highest-level cache under `dir`.
    fn last_level_cache(&mut self, dir: &str) -> Seen {
        let mut best: Option<(u64, u32)> = None;
        for index in 0..MAX_CACHE_INDEX {
            let level =
                (self.0)(&format!("{dir}/index{index}/level")).and_then(|b| number(b.trim_ascii()));
            if let Some(level) = level
                && best.is_none_or(|(l, _)| level > l)
            {
                best = Some((level, index));
            }
        }
        match best {
            Some((_, index)) => self.list(&format!("{dir}/index{index}/shared_cpu_list")),
            None => Seen::Absent,
        }
    }
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
        fs.insert(
            format!("{CPU_DIR}/online"),
            format!("{}\n", topo.all_cpus()),
        );
        fs.insert(
            format!("{NODE_DIR}/online"),
            format!("0-{}\n", topo.nodes - 1),
        );
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
        // Online CPUs and nodes, 8 CPUs × (SMT, package, LLC), one node: 27.
        assert_eq!(problems[MAX_REPORTED], "topology mismatch: and 19 more");
    }

    /// What Linux shows for 1n2l2c2t (8 CPUs, 2 LLCs of 2 cores of 2 threads),
    /// written out rather than derived from the model under test.
    fn literal_1n2l2c2t() -> BTreeMap<String, String> {
        let mut fs = BTreeMap::new();
        let mut put = |path: String, text: &str| fs.insert(path, format!("{text}\n"));
        put(format!("{CPU_DIR}/online"), "0-7");
        put(format!("{NODE_DIR}/online"), "0");
        put(format!("{NODE_DIR}/node0/cpulist"), "0-7");
        let smt = ["0-1", "0-1", "2-3", "2-3", "4-5", "4-5", "6-7", "6-7"];
        let llc = ["0-3", "0-3", "0-3", "0-3", "4-7", "4-7", "4-7", "4-7"];
        for cpu in 0..8 {
            let base = format!("{CPU_DIR}/cpu{cpu}");
            put(format!("{base}/topology/thread_siblings_list"), smt[cpu]);
            put(format!("{base}/topology/package_cpus_list"), "0-7");
            for (index, level) in [(0, "1"), (1, "1"), (2, "2"), (3, "3")] {
                put(format!("{base}/cache/index{index}/level"), level);
                let shared = if index == 3 { llc[cpu] } else { smt[cpu] };
                put(format!("{base}/cache/index{index}/shared_cpu_list"), shared);
            }
        }
        fs
    }

    #[test]
    fn linux_s_view_of_two_llcs_with_smt_matches() {
        let topo = Topology::parse("1n2l2c2t").unwrap();
        assert!(run(&topo, &literal_1n2l2c2t()).is_ok());
        // The same sysfs is not 1n1l4c2t (one LLC) nor 2n1l2c2t (two nodes).
        let one_llc = run(&Topology::parse("1n1l4c2t").unwrap(), &literal_1n2l2c2t());
        assert_eq!(one_llc.unwrap_err().len(), 8, "one LLC line per CPU");
        let two_nodes = run(&Topology::parse("2n1l2c2t").unwrap(), &literal_1n2l2c2t());
        assert!(
            two_nodes
                .unwrap_err()
                .iter()
                .any(|p| p == "topology mismatch: online nodes 0, expected 0-1")
        );
    }

    #[test]
    fn missing_cpus_and_garbled_files_are_named() {
        let topo = Topology::parse("1n2l2c2t").unwrap();
        let mut fs = literal_1n2l2c2t();
        fs.insert(format!("{CPU_DIR}/online"), "0-5\n".into());
        fs.insert(
            format!("{CPU_DIR}/cpu0/topology/thread_siblings_list"),
            "zero\n".into(),
        );
        let problems = run(&topo, &fs).unwrap_err();
        assert_eq!(
            problems,
            [
                "topology mismatch: online CPUs 0-5, expected 0-7",
                "topology mismatch: cpu0 SMT siblings unparsable in sysfs, expected 0-1",
            ]
        );
    }
}
