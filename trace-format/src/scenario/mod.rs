//! The scenario model: what one run does, built in Rust or read from TOML.
//!
//! A run settles for `settle`, applies the [`Backdrop`] (cgroups and ops that
//! live for the whole run), then runs each [`Step`] in order until `duration`
//! is used up. [`Scenario::validate`] checks everything that can be checked
//! before a VM starts. Times are integer ns; fractions are parts per million.

mod builder;
mod cgroup;
pub mod limits;
mod op;
mod thresholds;
#[cfg(feature = "std")]
mod toml;
mod topology;
mod units;
mod validate;
mod work;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use builder::ScenarioBuilder;
pub use cgroup::{CgroupDef, CpuMax, CpusetError, CpusetSpec};
pub use op::{IrqSelector, KernelRead, KernelWrite, Op, OpKind, SpawnPlacement};
pub use thresholds::{DiffLimits, ThresholdsSpec, VERDICT_NAMES, VerdictLimits};
#[cfg(feature = "std")]
pub use toml::{MAX_SCENARIO_FILE_BYTES, ScenarioFileError};
pub use topology::{CpuList, CpuLocation, MAX_CPUS, Topology, TopologyParseError};
pub use units::{
    Fraction, FractionError, NS_PER_MS, NS_PER_SEC, NS_PER_US, Ppm, format_duration, parse_bytes,
    parse_duration,
};
pub use validate::{MAX_SNAPSHOT_WATCHES, Problem, ScenarioError};
pub use work::{
    AffinityError, AffinityIntent, MAX_COMM_LEN, MAX_WORKERS, SchedPolicy, WorkPhase, WorkSpec,
    WorkType,
};

use units::duration;

/// A whole test: topology, timing, scheduler, payloads, backdrop and steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub topology: Topology,
    /// Cap on the time all steps take together.
    #[serde(rename = "duration", with = "duration")]
    pub duration_ns: u64,
    /// Quiet time after boot, before the backdrop; not part of `duration`.
    #[serde(rename = "settle", with = "duration", default)]
    pub settle_ns: u64,
    /// How often the guest samples every worker.
    #[serde(
        rename = "sample_interval",
        with = "duration",
        default = "Scenario::default_sample_interval"
    )]
    pub sample_interval_ns: u64,
    /// How often the host takes a run-queue snapshot; 0 turns periodic snapshots off.
    #[serde(rename = "snapshot_interval", with = "duration", default)]
    pub snapshot_interval_ns: u64,
    /// The scheduler running when the first step starts.
    #[serde(default)]
    pub scheduler: SchedulerSpec,
    /// Schedulers packed into the guest for attach/replace ops, by name.
    #[serde(default)]
    pub staged_schedulers: Vec<StagedScheduler>,
    /// Programs packed into the guest for payload ops, by name.
    #[serde(default)]
    pub payloads: Vec<PayloadSpec>,
    #[serde(default)]
    pub backdrop: Backdrop,
    pub steps: Vec<Step>,
    /// Judging thresholds over replay's defaults (`[thresholds]`; new in schema 2).
    #[serde(default)]
    pub thresholds: Option<ThresholdsSpec>,
}

impl Scenario {
    /// Default worker sampling interval: 100 ms.
    pub const DEFAULT_SAMPLE_INTERVAL_NS: u64 = 100 * NS_PER_MS;

    fn default_sample_interval() -> u64 {
        Self::DEFAULT_SAMPLE_INTERVAL_NS
    }

    /// A scenario of `duration_ns` on the default topology with no steps.
    pub fn new(name: impl Into<String>, duration_ns: u64) -> Self {
        Scenario {
            name: name.into(),
            description: String::new(),
            topology: Topology::default(),
            duration_ns,
            settle_ns: 0,
            sample_interval_ns: Self::DEFAULT_SAMPLE_INTERVAL_NS,
            snapshot_interval_ns: 0,
            scheduler: SchedulerSpec::Eevdf,
            staged_schedulers: Vec::new(),
            payloads: Vec::new(),
            backdrop: Backdrop::default(),
            steps: Vec::new(),
            thresholds: None,
        }
    }

    pub fn builder(name: impl Into<String>) -> ScenarioBuilder {
        ScenarioBuilder::new(name)
    }

    /// The payload declared under `name`.
    pub fn payload(&self, name: &str) -> Option<&PayloadSpec> {
        self.payloads.iter().find(|p| p.name == name)
    }

    /// The staged scheduler declared under `name`.
    pub fn staged_scheduler(&self, name: &str) -> Option<&StagedScheduler> {
        self.staged_schedulers.iter().find(|s| s.name == name)
    }

    /// Wall-clock hold of step `index` (ns) when it is a `Frac` or `Fixed` step.
    pub fn hold_ns(&self, index: usize) -> Option<u64> {
        self.steps.get(index)?.hold.duration_ns(self.duration_ns)
    }
}

/// An unnamed 10 s scenario with no steps (not valid until filled in).
impl Default for Scenario {
    fn default() -> Self {
        Scenario::new(String::new(), 10 * NS_PER_SEC)
    }
}

/// Which scheduler runs at the start of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerSpec {
    /// The kernel's own fair scheduler; no sched_ext scheduler attached.
    #[default]
    Eevdf,
    /// A sched_ext scheduler binary given to the run by name, with its arguments.
    Named {
        name: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

/// A sched_ext scheduler packed into the guest for later attach/replace ops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedScheduler {
    pub name: String,
    /// Host path of the binary; empty when xtask resolves it from `name`.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// A program packed into the guest and started by `Op::RunPayload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSpec {
    pub name: String,
    /// Host path of the binary; xtask packs it with its shared libraries.
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Cgroup it starts in; `None` is the runner's cgroup.
    #[serde(default)]
    pub cgroup: Option<String>,
}

impl PayloadSpec {
    pub fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        PayloadSpec {
            name: name.into(),
            path: path.into(),
            args: Vec::new(),
            cgroup: None,
        }
    }
}

/// Cgroups and ops set up once before the first step and kept until the end.
///
/// Cgroups are created in declaration order, then the ops run in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backdrop {
    pub cgroups: Vec<CgroupDef>,
    pub ops: Vec<Op>,
}

impl Backdrop {
    pub fn new() -> Self {
        Backdrop::default()
    }

    pub fn cgroup(mut self, def: CgroupDef) -> Self {
        self.cgroups.push(def);
        self
    }

    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }
}

/// One phase of a run: ops, step-local cgroups, then a hold.
///
/// For `Frac` and `Fixed` holds the ops run first, then the `setup` cgroups are
/// created; for `Loop` the setup runs once and the ops repeat every interval.
/// Step-local cgroups (from `setup` or step ops) are removed when the step ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub setup: Vec<CgroupDef>,
    #[serde(default)]
    pub ops: Vec<Op>,
    #[serde(default)]
    pub hold: HoldSpec,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            name: None,
            setup: Vec::new(),
            ops: Vec::new(),
            hold: HoldSpec::FULL,
        }
    }
}

/// How long a step lasts after its ops (or how its ops repeat).
///
/// TOML: `hold = "2s"`, `hold = { frac = 0.5 }`, `hold = { fixed = "2s" }`,
/// `hold = { loop = "100ms" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldSpec {
    /// A fraction of the scenario's `duration`, in (0, 1].
    Frac(Fraction),
    /// A fixed time, ns (> 0).
    Fixed(u64),
    /// Re-apply the step's ops every `interval_ns` until the duration is used up.
    Loop { interval_ns: u64 },
}

impl Default for HoldSpec {
    fn default() -> Self {
        HoldSpec::FULL
    }
}

impl HoldSpec {
    /// The whole scenario duration.
    pub const FULL: HoldSpec = HoldSpec::Frac(Fraction::ONE);

    /// A fraction of the duration; invalid floats are caught by validation.
    pub fn frac(f: f64) -> Self {
        HoldSpec::Frac(Fraction::from_f64_lossy(f))
    }

    pub fn fixed_ms(ms: u64) -> Self {
        HoldSpec::Fixed(ms.saturating_mul(NS_PER_MS))
    }

    pub fn loop_every_ms(ms: u64) -> Self {
        HoldSpec::Loop {
            interval_ns: ms.saturating_mul(NS_PER_MS),
        }
    }

    /// The hold in ns for a scenario of `total_ns`; `None` for loops.
    pub fn duration_ns(&self, total_ns: u64) -> Option<u64> {
        match *self {
            HoldSpec::Frac(f) => Some(f.of_u64(total_ns)),
            HoldSpec::Fixed(ns) => Some(ns),
            HoldSpec::Loop { .. } => None,
        }
    }
}

/// The binary (postcard) shape of [`HoldSpec`].
#[derive(Serialize, Deserialize)]
#[serde(rename = "HoldSpec")]
enum HoldFields {
    Frac(Fraction),
    Fixed(u64),
    Loop { interval_ns: u64 },
}

impl Serialize for HoldSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return match *self {
                HoldSpec::Frac(f) => HoldFields::Frac(f),
                HoldSpec::Fixed(ns) => HoldFields::Fixed(ns),
                HoldSpec::Loop { interval_ns } => HoldFields::Loop { interval_ns },
            }
            .serialize(s);
        }
        match *self {
            HoldSpec::Fixed(ns) => s.serialize_str(&format_duration(ns)),
            HoldSpec::Frac(f) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("frac", &f)?;
                m.end()
            }
            HoldSpec::Loop { interval_ns } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("loop", &format_duration(interval_ns))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for HoldSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Ok(match HoldFields::deserialize(d)? {
                HoldFields::Frac(f) => HoldSpec::Frac(f),
                HoldFields::Fixed(ns) => HoldSpec::Fixed(ns),
                HoldFields::Loop { interval_ns } => HoldSpec::Loop { interval_ns },
            });
        }
        d.deserialize_any(HoldVisitor)
    }
}

struct HoldVisitor;

impl<'de> Visitor<'de> for HoldVisitor {
    type Value = HoldSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"2s\", or a table with one of frac, fixed, loop")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HoldSpec, E> {
        parse_duration(v).map(HoldSpec::Fixed).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HoldSpec, A::Error> {
        let key: String = map
            .next_key()?
            .ok_or_else(|| de::Error::custom("hold table is empty; use frac, fixed or loop"))?;
        let hold = match key.as_str() {
            "frac" => {
                let v: f64 = map.next_value()?;
                HoldSpec::Frac(Fraction::from_f64(v).map_err(|e| {
                    de::Error::custom(alloc::format!(
                        "hold.frac = {v} {e}; use a fraction in (0, 1], e.g. 0.5"
                    ))
                })?)
            }
            "fixed" => HoldSpec::Fixed(
                parse_duration(&map.next_value::<String>()?).map_err(de::Error::custom)?,
            ),
            "loop" => HoldSpec::Loop {
                interval_ns: parse_duration(&map.next_value::<String>()?)
                    .map_err(de::Error::custom)?,
            },
            other => return Err(de::Error::unknown_field(other, &["frac", "fixed", "loop"])),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(alloc::format!(
                "hold takes exactly one of frac, fixed, loop; found also {extra:?}"
            )));
        }
        Ok(hold)
    }
}
