//! PLACEHOLDER (being replaced by the scenario helper): the scenario model.
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A whole test: topology, timing, scheduler and steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Scenario {
    pub name: String,
    pub topology: Topology,
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Step {}

/// Guest CPU topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub nodes: u16,
    pub llcs_per_node: u16,
    pub cores_per_llc: u16,
    pub threads_per_core: u16,
}

impl Default for Topology {
    fn default() -> Self {
        Topology { nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 }
    }
}

impl Topology {
    /// Total logical CPUs.
    pub fn cpus(&self) -> u32 {
        u32::from(self.nodes) * u32::from(self.llcs_per_node) * u32::from(self.cores_per_llc) * u32::from(self.threads_per_core)
    }
}

impl core::fmt::Display for Topology {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}n{}l{}c{}t", self.nodes, self.llcs_per_node, self.cores_per_llc, self.threads_per_core)
    }
}
