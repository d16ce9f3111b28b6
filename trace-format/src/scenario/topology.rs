//! Guest CPU topology and CPU lists.
//!
//! CPUs are numbered thread-fastest, as QEMU and our VMM enumerate them:
//! `cpu = ((node * llcs_per_node + llc) * cores_per_llc + core) * threads_per_core + thread`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most logical CPUs a scenario may ask for.
pub const MAX_CPUS: u32 = 256;

/// Guest CPU topology: nodes × LLCs per node × cores per LLC × threads per core.
///
/// In TOML it is written as a string, either `"1n2l4c2t"` or a preset name
/// (see [`Topology::PRESETS`]); a table with the four fields also works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topology {
    pub nodes: u16,
    pub llcs_per_node: u16,
    pub cores_per_llc: u16,
    pub threads_per_core: u16,
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new(1, 1, 2, 1)
    }
}

/// Where one CPU sits in the topology; LLC and core indices are global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLocation {
    pub node: u32,
    pub llc: u32,
    pub core: u32,
    pub thread: u32,
}

impl Topology {
    /// Named presets accepted by [`Topology::parse`].
    pub const PRESETS: &'static [(&'static str, Topology)] = &[
        ("tiny", Topology::new(1, 1, 2, 1)),
        ("smt", Topology::new(1, 1, 2, 2)),
        ("quad", Topology::new(1, 1, 4, 1)),
        ("llc2", Topology::new(1, 2, 2, 1)),
        ("numa2", Topology::new(2, 1, 2, 1)),
        ("numa2-smt", Topology::new(2, 2, 2, 2)),
    ];

    pub const fn new(
        nodes: u16,
        llcs_per_node: u16,
        cores_per_llc: u16,
        threads_per_core: u16,
    ) -> Self {
        Topology {
            nodes,
            llcs_per_node,
            cores_per_llc,
            threads_per_core,
        }
    }

    /// Parses `"1n2l4c2t"` or a preset name.
    pub fn parse(s: &str) -> Result<Topology, TopologyParseError> {
        s.parse()
    }

    /// The preset with this name, if any.
    pub fn preset(name: &str) -> Option<Topology> {
        Self::PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// Total logical CPUs, exact: four `u16` factors always fit in a `u64`.
    pub fn cpus_u64(&self) -> u64 {
        u64::from(self.nodes)
            * u64::from(self.llcs_per_node)
            * u64::from(self.cores_per_llc)
            * u64::from(self.threads_per_core)
    }

    /// Total logical CPUs; saturates at `u32::MAX` for topologies that
    /// validation refuses (more than [`MAX_CPUS`]).
    pub fn cpus(&self) -> u32 {
        u32::try_from(self.cpus_u64()).unwrap_or(u32::MAX)
    }

    /// Total LLCs (across all nodes).
    pub fn llcs(&self) -> u32 {
        u32::from(self.nodes) * u32::from(self.llcs_per_node)
    }

    /// Total physical cores (saturating, like [`Topology::cpus`]).
    pub fn cores(&self) -> u32 {
        self.llcs().saturating_mul(u32::from(self.cores_per_llc))
    }

    fn cpus_per_llc(&self) -> u32 {
        u32::from(self.cores_per_llc) * u32::from(self.threads_per_core)
    }

    fn cpus_per_node(&self) -> u32 {
        u32::from(self.llcs_per_node).saturating_mul(self.cpus_per_llc())
    }

    /// Every CPU id, `0..cpus()`.
    pub fn all_cpus(&self) -> CpuList {
        CpuList((0..self.cpus()).collect())
    }

    /// CPUs of NUMA node `node`; empty when out of range.
    pub fn node_cpus(&self, node: u32) -> CpuList {
        Self::span(node, self.cpus_per_node(), u32::from(self.nodes))
    }

    /// CPUs sharing global LLC `llc`; empty when out of range.
    pub fn llc_cpus(&self, llc: u32) -> CpuList {
        Self::span(llc, self.cpus_per_llc(), self.llcs())
    }

    /// Hardware threads of global core `core`; empty when out of range.
    pub fn core_cpus(&self, core: u32) -> CpuList {
        Self::span(core, u32::from(self.threads_per_core), self.cores())
    }

    /// SMT siblings of `cpu`, including `cpu` itself.
    pub fn siblings(&self, cpu: u32) -> CpuList {
        match self.locate(cpu) {
            Some(loc) => self.core_cpus(loc.core),
            None => CpuList::default(),
        }
    }

    /// Where `cpu` sits, or `None` when it is out of range.
    pub fn locate(&self, cpu: u32) -> Option<CpuLocation> {
        if cpu >= self.cpus() {
            return None;
        }
        let threads = u32::from(self.threads_per_core);
        Some(CpuLocation {
            node: cpu / self.cpus_per_node(),
            llc: cpu / self.cpus_per_llc(),
            core: cpu / threads,
            thread: cpu % threads,
        })
    }

    fn span(index: u32, width: u32, count: u32) -> CpuList {
        if index >= count {
            return CpuList::default();
        }
        // index < count <= u32::MAX, so index + 1 cannot overflow.
        match (index.checked_mul(width), (index + 1).checked_mul(width)) {
            (Some(start), Some(end)) => CpuList((start..end).collect()),
            _ => CpuList::default(),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}n{}l{}c{}t",
            self.nodes, self.llcs_per_node, self.cores_per_llc, self.threads_per_core
        )
    }
}

/// Why a topology string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "topology {input:?} is neither `<N>n<L>l<C>c<T>t` (e.g. \"1n2l4c2t\") nor a preset ({presets})"
)]
pub struct TopologyParseError {
    pub input: String,
    pub presets: String,
}

impl FromStr for Topology {
    type Err = TopologyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = Self::preset(s) {
            return Ok(t);
        }
        let err = || TopologyParseError {
            input: s.into(),
            presets: Self::PRESETS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut dims = [0u16; 4];
        let mut rest = s;
        for (dim, suffix) in dims.iter_mut().zip(['n', 'l', 'c', 't']) {
            let end = rest.find(suffix).ok_or_else(err)?;
            *dim = rest[..end].parse().map_err(|_| err())?;
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            return Err(err());
        }
        Ok(Topology::new(dims[0], dims[1], dims[2], dims[3]))
    }
}

/// The binary (postcard) shape of [`Topology`].
#[derive(Serialize, Deserialize)]
#[serde(rename = "Topology", deny_unknown_fields)]
struct TopologyFields {
    nodes: u16,
    llcs_per_node: u16,
    cores_per_llc: u16,
    threads_per_core: u16,
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.collect_str(self);
        }
        TopologyFields {
            nodes: self.nodes,
            llcs_per_node: self.llcs_per_node,
            cores_per_llc: self.cores_per_llc,
            threads_per_core: self.threads_per_core,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let from_fields = |f: TopologyFields| {
            Topology::new(
                f.nodes,
                f.llcs_per_node,
                f.cores_per_llc,
                f.threads_per_core,
            )
        };
        if !d.is_human_readable() {
            return TopologyFields::deserialize(d).map(from_fields);
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Topology;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topology such as \"1n2l4c2t\", a preset name, or a table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Topology, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Topology, A::Error> {
                let f =
                    TopologyFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Topology::new(
                    f.nodes,
                    f.llcs_per_node,
                    f.cores_per_llc,
                    f.threads_per_core,
                ))
            }
        }
        d.deserialize_any(V)
    }
}

/// A sorted, duplicate-free list of CPU ids; displayed as ranges (`0-3,6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<u32>);

impl CpuList {
    /// Builds a list from any ids, sorting and removing duplicates.
    pub fn new(cpus: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = cpus.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        CpuList(v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// CPUs present in both lists.
    pub fn intersect(&self, other: &CpuList) -> CpuList {
        CpuList(self.iter().filter(|c| other.contains(*c)).collect())
    }
}

impl FromIterator<u32> for CpuList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuList::new(iter)
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let mut first = true;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}
