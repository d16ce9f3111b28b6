//! Chained constructors for scenarios and steps.
//!
//! ```
//! use trace_format::scenario::*;
//! let sc = Scenario::builder("smoke")
//!     .topology(Topology::parse("1n1l2c1t").unwrap())
//!     .duration_ms(4_000)
//!     .step(Step::new().cgroup(CgroupDef::new("a").weight(200).work(WorkSpec::new(WorkType::SpinWait).workers(2))).hold_frac(0.5))
//!     .step(Step::new().hold_frac(0.5))
//!     .build();
//! sc.validate().unwrap();
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use super::cgroup::CgroupDef;
use super::op::Op;
use super::topology::Topology;
use super::units::{NS_PER_MS, NS_PER_SEC};
use super::validate::ScenarioError;
use super::{
    Backdrop, HoldSpec, PayloadSpec, Scenario, SchedulerSpec, StagedScheduler, Step, ThresholdsSpec,
};

/// Builds a [`Scenario`]; start with [`Scenario::builder`].
#[derive(Debug, Clone)]
#[must_use = "call build() to get the scenario"]
pub struct ScenarioBuilder {
    sc: Scenario,
}

impl ScenarioBuilder {
    /// A 10 s scenario on the default topology.
    pub fn new(name: impl Into<String>) -> Self {
        ScenarioBuilder {
            sc: Scenario::new(name, 10 * NS_PER_SEC),
        }
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.sc.description = text.into();
        self
    }

    pub fn topology(mut self, topology: Topology) -> Self {
        self.sc.topology = topology;
        self
    }

    pub fn duration_ns(mut self, ns: u64) -> Self {
        self.sc.duration_ns = ns;
        self
    }

    pub fn duration_ms(self, ms: u64) -> Self {
        self.duration_ns(ms.saturating_mul(NS_PER_MS))
    }

    pub fn settle_ms(mut self, ms: u64) -> Self {
        self.sc.settle_ns = ms.saturating_mul(NS_PER_MS);
        self
    }

    pub fn sample_interval_ms(mut self, ms: u64) -> Self {
        self.sc.sample_interval_ns = ms.saturating_mul(NS_PER_MS);
        self
    }

    /// Periodic host snapshots; 0 turns them off.
    pub fn snapshot_interval_ms(mut self, ms: u64) -> Self {
        self.sc.snapshot_interval_ns = ms.saturating_mul(NS_PER_MS);
        self
    }

    pub fn scheduler(mut self, spec: SchedulerSpec) -> Self {
        self.sc.scheduler = spec;
        self
    }

    /// Packs a scheduler for attach/replace ops.
    pub fn stage_scheduler(
        mut self,
        name: impl Into<String>,
        path: impl Into<String>,
        args: Vec<String>,
    ) -> Self {
        self.sc.staged_schedulers.push(StagedScheduler {
            name: name.into(),
            path: path.into(),
            args,
        });
        self
    }

    pub fn payload(mut self, payload: PayloadSpec) -> Self {
        self.sc.payloads.push(payload);
        self
    }

    pub fn backdrop(mut self, backdrop: Backdrop) -> Self {
        self.sc.backdrop = backdrop;
        self
    }

    pub fn backdrop_cgroup(mut self, def: CgroupDef) -> Self {
        self.sc.backdrop.cgroups.push(def);
        self
    }

    pub fn backdrop_op(mut self, op: Op) -> Self {
        self.sc.backdrop.ops.push(op);
        self
    }

    pub fn step(mut self, step: Step) -> Self {
        self.sc.steps.push(step);
        self
    }

    /// Judging thresholds over replay's defaults.
    pub fn thresholds(mut self, spec: ThresholdsSpec) -> Self {
        self.sc.thresholds = Some(spec);
        self
    }

    /// The scenario as built, not validated.
    pub fn build(self) -> Scenario {
        self.sc
    }

    /// The scenario, validated.
    pub fn try_build(self) -> Result<Scenario, ScenarioError> {
        self.sc.validate()?;
        Ok(self.sc)
    }
}

impl Step {
    /// An empty step holding for the whole duration.
    pub fn new() -> Self {
        Step::default()
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a step-local cgroup.
    pub fn cgroup(mut self, def: CgroupDef) -> Self {
        self.setup.push(def);
        self
    }

    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Appends several ops.
    pub fn ops(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.ops.extend(ops);
        self
    }

    pub fn hold(mut self, hold: HoldSpec) -> Self {
        self.hold = hold;
        self
    }

    /// Holds for a fraction of the duration (see [`HoldSpec::frac`]).
    pub fn hold_frac(self, f: f64) -> Self {
        self.hold(HoldSpec::frac(f))
    }

    pub fn hold_ms(self, ms: u64) -> Self {
        self.hold(HoldSpec::fixed_ms(ms))
    }

    /// Repeats the ops every `ms` until the duration is used up.
    pub fn loop_every_ms(self, ms: u64) -> Self {
        self.hold(HoldSpec::loop_every_ms(ms))
    }
}
