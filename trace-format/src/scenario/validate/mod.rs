//! Scenario validation: every mistake that can be caught before a VM boots.
//!
//! Each error names where it is (`step 2 ("shrink"), cgroup "a"`), the field
//! (`cpu.weight`) and what to do. Step indices are 0-based, as in traces.

mod cgroup;
mod limits;
mod ops;
mod thresholds;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::cgroup::CpusetError;
use super::topology::{CpuList, MAX_CPUS};
use super::units::{Fraction, format_duration};
use super::{HoldSpec, Scenario, SchedulerSpec, Step};

/// Most `watch_snapshot` ops a scenario may hold (the host has few watch slots).
pub const MAX_SNAPSHOT_WATCHES: usize = 3;

/// A scenario mistake: where, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {field} {problem}")]
pub struct ScenarioError {
    /// E.g. `step 2 ("shrink"), cgroup "a"`, or `scenario`.
    pub at: String,
    /// E.g. `cpu.weight`, `hold.frac`, `workers`.
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a field; the text follows the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("= {value} is out of range {min}..={max}; use a value between {min} and {max}")]
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    #[error("= 0 is not allowed; {hint}")]
    Zero { hint: &'static str },
    #[error("is empty; {hint}")]
    Empty { hint: &'static str },
    #[error("is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("= {name:?} is not a valid cgroup name: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("= {name:?} is already declared at {first}; use a different name")]
    Duplicate { name: String, first: String },
    #[error("= {name:?} names no {what} known here{hint}")]
    Unknown {
        name: String,
        what: &'static str,
        hint: String,
    },
    #[error("is unusable: {0}")]
    Cpuset(CpusetError),
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Checks the scenario; returns the first mistake found.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        match self.validate_all().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Checks the scenario and returns every mistake found, in file order.
    pub fn validate_all(&self) -> Vec<ScenarioError> {
        let mut v = Validator {
            sc: self,
            errors: Vec::new(),
            topo_ok: true,
            scope: Scope::default(),
            watches: 0,
            tags: BTreeSet::new(),
        };
        v.scenario();
        v.errors
    }
}

fn range_err<T: ToString>(value: T, min: T, max: T) -> Problem {
    Problem::OutOfRange {
        value: value.to_string(),
        min: min.to_string(),
        max: max.to_string(),
    }
}

/// A live cgroup: where it was declared and its cpuset when statically known.
#[derive(Clone)]
struct Live {
    at: String,
    cpus: Option<CpuList>,
}

/// Cgroups and payloads alive at the current point of the walk.
#[derive(Default)]
struct Scope {
    backdrop: BTreeMap<String, Live>,
    step: BTreeMap<String, Live>,
    backdrop_payloads: BTreeSet<String>,
    step_payloads: BTreeSet<String>,
    in_backdrop: bool,
    /// Names of the current step's setup cgroups not yet created (ops run first).
    pending_setup: BTreeSet<String>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<(&Live, bool)> {
        self.step
            .get(name)
            .map(|l| (l, false))
            .or_else(|| self.backdrop.get(name).map(|l| (l, true)))
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Live> {
        match self.step.get_mut(name) {
            Some(l) => Some(l),
            None => self.backdrop.get_mut(name),
        }
    }

    fn insert(&mut self, name: &str, live: Live) {
        let map = if self.in_backdrop {
            &mut self.backdrop
        } else {
            &mut self.step
        };
        map.insert(name.into(), live);
    }
}

struct Validator<'a> {
    sc: &'a Scenario,
    errors: Vec<ScenarioError>,
    topo_ok: bool,
    scope: Scope,
    watches: usize,
    tags: BTreeSet<String>,
}

impl Validator<'_> {
    fn err(&mut self, at: &str, field: &str, problem: Problem) {
        self.errors.push(ScenarioError {
            at: at.into(),
            field: field.into(),
            problem,
        });
    }

    fn invalid(&mut self, at: &str, field: &str, text: String) {
        self.err(at, field, Problem::Invalid(text));
    }

    fn scenario(&mut self) {
        let sc = self.sc;
        let at = "scenario";
        if sc.name.is_empty() {
            self.err(
                at,
                "name",
                Problem::Empty {
                    hint: "give the scenario a name",
                },
            );
        } else if !sc
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.invalid(
                at,
                "name",
                format!(
                    "= {:?} may only contain letters, digits, '-', '_' and '.'",
                    sc.name
                ),
            );
        }
        self.topology();
        self.times();
        self.sizes();
        if let SchedulerSpec::Named { name, .. } = &sc.scheduler
            && name.is_empty()
        {
            self.err(
                at,
                "scheduler.name",
                Problem::Empty {
                    hint: "name the scheduler binary, or use \"eevdf\"",
                },
            );
        }
        self.declarations();
        if sc.steps.is_empty() {
            self.err(
                at,
                "steps",
                Problem::Empty {
                    hint: "add at least one [[steps]]",
                },
            );
        }
        self.backdrop();
        let mut used: u64 = 0;
        let mut over = false;
        for (i, step) in sc.steps.iter().enumerate() {
            let at = step_at(i, step);
            self.step(&at, step);
            if let Some(ns) = step.hold.duration_ns(sc.duration_ns) {
                used = used.saturating_add(ns);
                if !over && sc.duration_ns != 0 && used > sc.duration_ns {
                    over = true;
                    self.invalid(
                        &at,
                        "hold",
                        format!(
                            "brings the steps to {}, past duration = {}; shorten the holds or raise duration",
                            format_duration(used),
                            format_duration(sc.duration_ns)
                        ),
                    );
                }
            }
        }
        self.thresholds();
    }

    fn topology(&mut self) {
        let t = self.sc.topology;
        let dims = [
            ("topology.nodes", t.nodes),
            ("topology.llcs_per_node", t.llcs_per_node),
            ("topology.cores_per_llc", t.cores_per_llc),
            ("topology.threads_per_core", t.threads_per_core),
        ];
        for (field, v) in dims {
            if v == 0 {
                self.topo_ok = false;
                self.err(
                    "scenario",
                    field,
                    Problem::Zero {
                        hint: "every topology dimension needs at least 1",
                    },
                );
            }
        }
        if self.topo_ok && t.cpus_u64() > u64::from(MAX_CPUS) {
            self.topo_ok = false;
            self.invalid(
                "scenario",
                "topology",
                format!(
                    "= {t} has {} CPUs; at most {MAX_CPUS} are supported (the guest's CPU masks hold {MAX_CPUS})",
                    t.cpus_u64()
                ),
            );
        }
    }

    fn declarations(&mut self) {
        let sc = self.sc;
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (i, s) in sc.staged_schedulers.iter().enumerate() {
            let at = format!("staged_schedulers[{i}]");
            if s.name.is_empty() {
                self.err(
                    &at,
                    "name",
                    Problem::Empty {
                        hint: "name the staged scheduler",
                    },
                );
            } else if let Some(first) = seen.insert(&s.name, at.clone()) {
                self.err(
                    &at,
                    "name",
                    Problem::Duplicate {
                        name: s.name.clone(),
                        first,
                    },
                );
            }
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (i, p) in sc.payloads.iter().enumerate() {
            let at = format!("payloads[{i}]");
            if p.name.is_empty() {
                self.err(
                    &at,
                    "name",
                    Problem::Empty {
                        hint: "name the payload so ops can refer to it",
                    },
                );
            } else if let Some(first) = seen.insert(&p.name, at.clone()) {
                self.err(
                    &at,
                    "name",
                    Problem::Duplicate {
                        name: p.name.clone(),
                        first,
                    },
                );
            }
            if p.path.is_empty() {
                self.err(
                    &at,
                    "path",
                    Problem::Empty {
                        hint: "give the host path of the payload binary",
                    },
                );
            }
            if let Some(cg) = &p.cgroup {
                self.name_syntax(&at, "cgroup", cg);
            }
        }
    }

    fn backdrop(&mut self) {
        self.scope.in_backdrop = true;
        for def in &self.sc.backdrop.cgroups {
            let at = format!("backdrop, cgroup {:?}", def.name);
            self.def(&at, def);
        }
        for (i, op) in self.sc.backdrop.ops.iter().enumerate() {
            let at = format!("backdrop, ops[{i}] ({})", op.name());
            self.op(&at, op, false);
        }
        self.scope.in_backdrop = false;
    }

    fn step(&mut self, at: &str, step: &Step) {
        self.scope.step.clear();
        self.scope.step_payloads.clear();
        self.hold(at, &step.hold, step.ops.is_empty());
        let looping = matches!(step.hold, HoldSpec::Loop { .. });
        let setup = |v: &mut Self| {
            for def in &step.setup {
                v.scope.pending_setup.remove(&def.name);
                v.def(&format!("{at}, cgroup {:?}", def.name), def);
            }
        };
        if looping {
            setup(self);
        } else {
            self.scope.pending_setup = step.setup.iter().map(|d| d.name.clone()).collect();
        }
        for (i, op) in step.ops.iter().enumerate() {
            self.op(&format!("{at}, ops[{i}] ({})", op.name()), op, true);
        }
        if !looping {
            setup(self);
        }
        self.scope.pending_setup.clear();
    }

    fn hold(&mut self, at: &str, hold: &HoldSpec, no_ops: bool) {
        match *hold {
            HoldSpec::Frac(f) if f == Fraction::ZERO => {
                self.err(at, "hold.frac", Problem::Zero { hint: "NaN, negative and zero fractions hold for no time; use a fraction in (0, 1], e.g. 0.5" })
            }
            HoldSpec::Frac(f) if f > Fraction::ONE => {
                self.invalid(at, "hold.frac", format!("= {f} is above 1; a step holds at most the whole duration"))
            }
            HoldSpec::Fixed(0) => self.err(at, "hold.fixed", Problem::Zero { hint: "give the step a hold time, e.g. \"1s\"" }),
            HoldSpec::Loop { interval_ns: 0 } => {
                self.err(at, "hold.loop", Problem::Zero { hint: "a zero interval would busy-spin; use e.g. \"100ms\"" })
            }
            HoldSpec::Loop { .. } if no_ops => {
                self.invalid(at, "ops", "is empty, but hold.loop repeats the ops; add ops or use a frac/fixed hold".into())
            }
            HoldSpec::Loop { interval_ns } => self.loop_interval(at, interval_ns),
            _ => {}
        }
    }

    fn name_syntax(&mut self, at: &str, field: &str, name: &str) -> bool {
        let reason = if name.is_empty() {
            "it is empty"
        } else if name.contains('/') {
            "it contains '/'"
        } else if name.contains("..") || name == "." {
            "it contains \"..\" or is \".\""
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            "it contains whitespace or control characters"
        } else if name.len() > 255 {
            "it is longer than 255 bytes"
        } else {
            return true;
        };
        self.err(
            at,
            field,
            Problem::BadName {
                name: name.into(),
                reason,
            },
        );
        false
    }

    /// Declares a new cgroup in the current scope, reporting bad and duplicate names.
    fn declare(&mut self, at: &str, field: &str, name: &str, cpus: Option<CpuList>) {
        if !self.name_syntax(at, field, name) {
            return;
        }
        if let Some((live, _)) = self.scope.get(name) {
            let first = live.at.clone();
            self.err(
                at,
                field,
                Problem::Duplicate {
                    name: name.into(),
                    first,
                },
            );
            return;
        }
        self.scope.insert(
            name,
            Live {
                at: at.into(),
                cpus,
            },
        );
    }

    /// Looks up a cgroup an op refers to; reports it when unknown.
    fn known(&mut self, at: &str, field: &str, name: &str) -> Option<(Live, bool)> {
        if let Some((live, backdrop)) = self.scope.get(name) {
            return Some((live.clone(), backdrop));
        }
        let hint = if self.scope.pending_setup.contains(name) {
            "; this step's ops run before its setup cgroups exist (use add_cgroup_def in ops, or a loop hold)".into()
        } else {
            "; declare it in the backdrop, this step's setup, or an earlier add_cgroup op".into()
        };
        self.err(
            at,
            field,
            Problem::Unknown {
                name: name.into(),
                what: "cgroup",
                hint,
            },
        );
        None
    }
}

/// `step 2 ("shrink")`, or `step 2` for an unnamed step.
fn step_at(i: usize, step: &Step) -> String {
    match &step.name {
        Some(n) => format!("step {i} ({n:?})"),
        None => format!("step {i}"),
    }
}
