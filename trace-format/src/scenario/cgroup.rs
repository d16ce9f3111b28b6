//! Cgroup definitions and topology-relative cpusets.
//!
//! The guest applies a [`CgroupDef`] in a fixed order: cpuset, cpuset.mems,
//! cpu (weight, max), memory (max, high, low, swap.max), io.weight, pids.max,
//! then forks the workers of each [`WorkSpec`] into the cgroup.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::topology::{CpuList, Topology};
use super::units::{Fraction, opt_bytes};
use super::work::WorkSpec;

/// One cgroup v2 directory under the scenario's parent cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgroupDef {
    /// Directory name: non-empty, no `/`, no `..`, no whitespace.
    pub name: String,
    /// `cpuset.cpus`; `None` inherits the parent's CPUs.
    pub cpuset: Option<CpusetSpec>,
    /// `cpuset.mems` as NUMA node ids; `None` inherits.
    pub cpuset_mems: Option<Vec<u16>>,
    /// `cpu.weight`, 1..=10000 (kernel default 100).
    pub cpu_weight: Option<u32>,
    /// `cpu.max` bandwidth limit.
    pub cpu_max: Option<CpuMax>,
    /// `memory.max`, bytes.
    #[serde(with = "opt_bytes")]
    pub memory_max: Option<u64>,
    /// `memory.high`, bytes.
    #[serde(with = "opt_bytes")]
    pub memory_high: Option<u64>,
    /// `memory.low`, bytes.
    #[serde(with = "opt_bytes")]
    pub memory_low: Option<u64>,
    /// `memory.swap.max`, bytes; written only when set (needs CONFIG_SWAP).
    #[serde(with = "opt_bytes")]
    pub memory_swap_max: Option<u64>,
    /// `io.weight`, 1..=10000.
    pub io_weight: Option<u32>,
    /// `pids.max`; must be > 0 when set.
    pub pids_max: Option<u32>,
    /// Worker groups forked into this cgroup, in order.
    pub works: Vec<WorkSpec>,
}

/// `cpu.max`: `quota_us` per `period_us`; no quota means `max` (unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMax {
    #[serde(default)]
    pub quota_us: Option<u64>,
    #[serde(default = "CpuMax::default_period")]
    pub period_us: u64,
}

impl CpuMax {
    /// The kernel's default period, 100 ms.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;
    /// Kernel bounds for the period (1 ms ..= 1 s), µs.
    pub const PERIOD_RANGE_US: core::ops::RangeInclusive<u64> = 1_000..=1_000_000;
    /// Smallest quota the kernel accepts, µs.
    pub const MIN_QUOTA_US: u64 = 1_000;

    fn default_period() -> u64 {
        Self::DEFAULT_PERIOD_US
    }

    pub fn limited(quota_us: u64, period_us: u64) -> Self {
        CpuMax {
            quota_us: Some(quota_us),
            period_us,
        }
    }

    pub fn unlimited(period_us: u64) -> Self {
        CpuMax {
            quota_us: None,
            period_us,
        }
    }
}

impl CgroupDef {
    pub fn new(name: impl Into<String>) -> Self {
        CgroupDef {
            name: name.into(),
            ..CgroupDef::default()
        }
    }

    pub fn cpuset(mut self, spec: CpusetSpec) -> Self {
        self.cpuset = Some(spec);
        self
    }

    pub fn mems(mut self, nodes: impl IntoIterator<Item = u16>) -> Self {
        self.cpuset_mems = Some(nodes.into_iter().collect());
        self
    }

    /// Sets `cpu.weight`.
    pub fn weight(mut self, weight: u32) -> Self {
        self.cpu_weight = Some(weight);
        self
    }

    /// Sets `cpu.max` to `quota_us` per `period_us`.
    pub fn cpu_max(mut self, quota_us: u64, period_us: u64) -> Self {
        self.cpu_max = Some(CpuMax::limited(quota_us, period_us));
        self
    }

    pub fn memory_max(mut self, bytes: u64) -> Self {
        self.memory_max = Some(bytes);
        self
    }

    pub fn memory_high(mut self, bytes: u64) -> Self {
        self.memory_high = Some(bytes);
        self
    }

    pub fn memory_low(mut self, bytes: u64) -> Self {
        self.memory_low = Some(bytes);
        self
    }

    pub fn memory_swap_max(mut self, bytes: u64) -> Self {
        self.memory_swap_max = Some(bytes);
        self
    }

    pub fn io_weight(mut self, weight: u32) -> Self {
        self.io_weight = Some(weight);
        self
    }

    pub fn pids_max(mut self, max: u32) -> Self {
        self.pids_max = Some(max);
        self
    }

    pub fn work(mut self, work: WorkSpec) -> Self {
        self.works.push(work);
        self
    }
}

/// A cpuset expressed relative to the topology, resolved by [`CpusetSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpusetSpec {
    /// Every CPU of global LLC `i`.
    Llc(u16),
    /// Every CPU of NUMA node `i`.
    Node(u16),
    /// CPUs `[start × n, end × n)` of all `n` CPUs, rounded down.
    Range { start: Fraction, end: Fraction },
    /// Part `index` of all CPUs split into `of` equal, disjoint parts.
    Disjoint { index: u16, of: u16 },
    /// Like `Disjoint`, but each part also takes `overlap` × its size of CPUs
    /// from its next neighbour (the last part from its previous one).
    Overlap {
        index: u16,
        of: u16,
        overlap: Fraction,
    },
    /// Exactly these CPUs.
    Exact(CpuList),
}

/// Why a [`CpusetSpec`] has no CPUs on a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpusetError {
    #[error("LLC {index} does not exist; topology {topology} has {count} LLC(s) (0..{count})")]
    NoSuchLlc {
        index: u16,
        count: u32,
        topology: Topology,
    },
    #[error("node {index} does not exist; topology {topology} has {count} node(s) (0..{count})")]
    NoSuchNode {
        index: u16,
        count: u32,
        topology: Topology,
    },
    #[error("range start {start} must be below end {end}, both between 0 and 1")]
    BadRange { start: Fraction, end: Fraction },
    #[error("`of` = 0 parts; use at least 1")]
    ZeroParts,
    #[error("part index {index} is not below the part count {of}")]
    NoSuchPart { index: u16, of: u16 },
    #[error("overlap {0} is above 1")]
    OverlapAboveOne(Fraction),
    #[error("CPU {cpu} does not exist; topology {topology} has {count} CPU(s) (0..{count})")]
    NoSuchCpu {
        cpu: u32,
        count: u32,
        topology: Topology,
    },
    #[error("it resolves to no CPUs on topology {topology} ({cpus} CPU(s)); widen the spec")]
    Empty { topology: Topology, cpus: u32 },
}

impl CpusetSpec {
    /// Range of all CPUs between two fractions (see [`Fraction::from_f64_lossy`]).
    pub fn range(start: f64, end: f64) -> Self {
        CpusetSpec::Range {
            start: Fraction::from_f64_lossy(start),
            end: Fraction::from_f64_lossy(end),
        }
    }

    pub fn exact(cpus: impl IntoIterator<Item = u32>) -> Self {
        CpusetSpec::Exact(CpuList::new(cpus))
    }

    /// The CPUs this spec names on `topo`; never empty on success.
    pub fn resolve(&self, topo: &Topology) -> Result<CpuList, CpusetError> {
        let n = topo.cpus();
        let list = match *self {
            CpusetSpec::Llc(i) => {
                if u32::from(i) >= topo.llcs() {
                    return Err(CpusetError::NoSuchLlc {
                        index: i,
                        count: topo.llcs(),
                        topology: *topo,
                    });
                }
                topo.llc_cpus(u32::from(i))
            }
            CpusetSpec::Node(i) => {
                if i >= topo.nodes {
                    return Err(CpusetError::NoSuchNode {
                        index: i,
                        count: u32::from(topo.nodes),
                        topology: *topo,
                    });
                }
                topo.node_cpus(u32::from(i))
            }
            CpusetSpec::Range { start, end } => {
                if start >= end || end > Fraction::ONE {
                    return Err(CpusetError::BadRange { start, end });
                }
                CpuList((start.of_u32(n)..end.of_u32(n)).collect())
            }
            CpusetSpec::Disjoint { index, of } => {
                let (lo, hi) = Self::part(n, index, of)?;
                CpuList((lo..hi).collect())
            }
            CpusetSpec::Overlap { index, of, overlap } => {
                if overlap > Fraction::ONE {
                    return Err(CpusetError::OverlapAboveOne(overlap));
                }
                let (lo, hi) = Self::part(n, index, of)?;
                // Round the shared CPUs up so any non-zero overlap shares at least one.
                let shared = (u64::from(overlap.ppm()) * u64::from(hi - lo)).div_ceil(1_000_000);
                let extra = u32::try_from(shared).unwrap_or(u32::MAX);
                if index + 1 < of {
                    CpuList((lo..(hi + extra).min(n)).collect())
                } else {
                    CpuList((lo.saturating_sub(extra)..hi).collect())
                }
            }
            CpusetSpec::Exact(ref cpus) => {
                if let Some(cpu) = cpus.iter().find(|c| *c >= n) {
                    return Err(CpusetError::NoSuchCpu {
                        cpu,
                        count: n,
                        topology: *topo,
                    });
                }
                CpuList::new(cpus.iter())
            }
        };
        if list.is_empty() {
            return Err(CpusetError::Empty {
                topology: *topo,
                cpus: n,
            });
        }
        Ok(list)
    }

    fn part(n: u32, index: u16, of: u16) -> Result<(u32, u32), CpusetError> {
        if of == 0 {
            return Err(CpusetError::ZeroParts);
        }
        if index >= of {
            return Err(CpusetError::NoSuchPart { index, of });
        }
        let (i, of) = (u64::from(index), u64::from(of));
        let at = |k: u64| u32::try_from(k * u64::from(n) / of).unwrap_or(u32::MAX);
        Ok((at(i), at(i + 1)))
    }
}
