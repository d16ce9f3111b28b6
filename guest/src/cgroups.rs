//! Scenario cgroups as the executor tracks them, and the controller writes a
//! [`CgroupDef`] turns into.
//!
//! Names are relative to the executor's parent cgroup. Each cgroup belongs to
//! the backdrop or to one step ([`StepRef`]) and is removed when its owner ends.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use trace_format::record::StepRef;

use crate::memevents::OomCounts;
use trace_format::scenario::{CgroupDef, CpuList, CpuMax, MAX_COMM_LEN, Topology, WorkSpec};

/// A live scenario cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub name: String,
    pub owner: StepRef,
    /// The cpuset written to `cpuset.cpus`; `None` inherits the parent's CPUs.
    pub cpuset: Option<CpuList>,
    /// `memory.events` OOM counters as last recorded.
    pub oom: OomCounts,
}

/// Every live scenario cgroup, in creation order.
#[derive(Debug, Clone, Default)]
pub struct CgroupTable {
    list: Vec<Cgroup>,
}

impl CgroupTable {
    /// Registers a new cgroup; fails on a name that is already live.
    pub fn add(&mut self, name: &str, owner: StepRef) -> Result<(), String> {
        if let Some(c) = self.get(name) {
            return Err(format!(
                "cgroup {name:?} already exists (created by {})",
                c.owner
            ));
        }
        self.list.push(Cgroup {
            name: name.to_string(),
            owner,
            cpuset: None,
            oom: OomCounts::default(),
        });
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Cgroup> {
        self.list.iter().find(|c| c.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Cgroup> {
        self.list.iter_mut().find(|c| c.name == name)
    }

    /// The cgroup, or an error naming the unknown name.
    pub fn require(&self, name: &str) -> Result<&Cgroup, String> {
        self.get(name)
            .ok_or_else(|| format!("cgroup {name:?} does not exist"))
    }

    pub fn remove(&mut self, name: &str) -> Option<Cgroup> {
        let i = self.list.iter().position(|c| c.name == name)?;
        Some(self.list.remove(i))
    }

    /// Names of the cgroups `owner` created, newest first (teardown order).
    pub fn owned_by(&self, owner: StepRef) -> Vec<String> {
        self.list
            .iter()
            .rev()
            .filter(|c| c.owner == owner)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Number of CPUs a cgroup may use (`topo`'s count when it inherits).
    pub fn cpu_count(&self, name: Option<&str>, topo: &Topology) -> u32 {
        name.and_then(|n| self.get(n))
            .and_then(|c| c.cpuset.as_ref())
            .map_or(topo.cpus(), |c| u32::try_from(c.len()).unwrap_or(u32::MAX))
    }
}

/// One controller file write, in application order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: &'static str,
    pub value: String,
}

/// The writes that configure `def`, in the order the kernel wants them:
/// cpuset, cpuset.mems, cpu.weight, cpu.max, memory (max, high, low,
/// swap.max), io.weight, pids.max. Also returns the resolved cpuset.
pub fn def_writes(
    def: &CgroupDef,
    topo: &Topology,
) -> Result<(Option<CpuList>, Vec<Write>), String> {
    let mut w = Vec::new();
    let mut put = |file: &'static str, value: String| w.push(Write { file, value });
    let cpuset = match &def.cpuset {
        Some(spec) => {
            let cpus = spec
                .resolve(topo)
                .map_err(|e| format!("cgroup {:?}: cpuset is unusable: {e}", def.name))?;
            put("cpuset.cpus", cpus.to_string());
            Some(cpus)
        }
        None => None,
    };
    if let Some(nodes) = &def.cpuset_mems {
        put(
            "cpuset.mems",
            CpuList::new(nodes.iter().map(|&n| u32::from(n))).to_string(),
        );
    }
    if let Some(weight) = def.cpu_weight {
        put("cpu.weight", weight.to_string());
    }
    if let Some(max) = def.cpu_max {
        put("cpu.max", cpu_max_value(max));
    }
    let bytes = [
        ("memory.max", def.memory_max),
        ("memory.high", def.memory_high),
        ("memory.low", def.memory_low),
        ("memory.swap.max", def.memory_swap_max),
    ];
    for (file, v) in bytes {
        if let Some(v) = v {
            put(file, v.to_string());
        }
    }
    if let Some(weight) = def.io_weight {
        put("io.weight", format!("default {weight}"));
    }
    if let Some(max) = def.pids_max {
        put("pids.max", max.to_string());
    }
    Ok((cpuset, w))
}

/// `cpu.max` text: `"<quota|max> <period>"` in µs.
pub fn cpu_max_value(max: CpuMax) -> String {
    match max.quota_us {
        Some(q) => format!("{q} {}", max.period_us),
        None => format!("max {}", max.period_us),
    }
}

/// The worker's `comm`: the spec's, else `st-<cgroup>` (`st-runner` outside
/// scenario cgroups), cut to the kernel's 15 bytes on a character boundary.
pub fn comm(spec: &WorkSpec, cgroup: Option<&str>) -> String {
    let mut s = match (&spec.comm, cgroup) {
        (Some(c), _) => c.clone(),
        (None, Some(cg)) => format!("st-{cg}"),
        (None, None) => "st-runner".to_string(),
    };
    let mut end = s.len().min(MAX_COMM_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::scenario::{CpusetSpec, WorkType};

    #[test]
    fn table_tracks_owners() {
        let mut t = CgroupTable::default();
        t.add("a", StepRef::BACKDROP).unwrap();
        t.add("b", StepRef(0)).unwrap();
        t.add("c", StepRef(0)).unwrap();
        assert!(t.add("a", StepRef(1)).unwrap_err().contains("backdrop"));
        assert_eq!(t.owned_by(StepRef(0)), ["c", "b"]);
        assert!(t.require("zz").unwrap_err().contains("\"zz\""));
        t.get_mut("a").unwrap().cpuset = Some(CpuList::new([0, 1, 2]));
        let topo = Topology::new(1, 1, 4, 1);
        assert_eq!(t.cpu_count(Some("a"), &topo), 3);
        assert_eq!(t.cpu_count(Some("b"), &topo), 4);
        assert_eq!(t.cpu_count(None, &topo), 4);
        assert!(t.remove("b").is_some() && t.get("b").is_none());
    }

    #[test]
    fn writes_in_kernel_order() {
        let topo = Topology::new(1, 2, 2, 1);
        let def = CgroupDef::new("a")
            .pids_max(10)
            .io_weight(50)
            .memory_low(1)
            .memory_max(1 << 20)
            .cpu_max(50_000, 100_000)
            .weight(200)
            .mems([0])
            .cpuset(CpusetSpec::Llc(1));
        let (cpus, w) = def_writes(&def, &topo).unwrap();
        assert_eq!(cpus.unwrap().0, [2, 3]);
        let got: Vec<(&str, &str)> = w.iter().map(|w| (w.file, w.value.as_str())).collect();
        assert_eq!(
            got,
            [
                ("cpuset.cpus", "2-3"),
                ("cpuset.mems", "0"),
                ("cpu.weight", "200"),
                ("cpu.max", "50000 100000"),
                ("memory.max", "1048576"),
                ("memory.low", "1"),
                ("io.weight", "default 50"),
                ("pids.max", "10"),
            ]
        );
        let bad = CgroupDef::new("x").cpuset(CpusetSpec::Llc(7));
        assert!(
            def_writes(&bad, &topo)
                .unwrap_err()
                .starts_with("cgroup \"x\": cpuset")
        );
        assert_eq!(cpu_max_value(CpuMax::unlimited(1000)), "max 1000");
    }

    #[test]
    fn comm_defaults_and_truncation() {
        let spec = WorkSpec::new(WorkType::SpinWait);
        assert_eq!(comm(&spec, Some("a")), "st-a");
        assert_eq!(comm(&spec, None), "st-runner");
        assert_eq!(comm(&spec, Some("a-very-long-cgroup")), "st-a-very-long-");
        let spec = spec.comm("ééééééééé");
        assert_eq!(comm(&spec, None).len(), 14);
    }
}
