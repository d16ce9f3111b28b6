//! Checks of cgroup definitions, cpusets, worker groups and work types.

use alloc::format;

use super::{Problem, Validator, range_err};
use crate::scenario::cgroup::{CgroupDef, CpuMax, CpusetError, CpusetSpec};
use crate::scenario::limits::{MAX_CACHE_KIB, MAX_PHASES, MAX_PIDS, MAX_QUOTA_US, MAX_WORK_US};
use crate::scenario::topology::CpuList;
use crate::scenario::work::{
    AffinityIntent, MAX_COMM_LEN, MAX_WORKERS, SchedPolicy, WorkSpec, WorkType,
};

impl Validator<'_> {
    pub(super) fn cpuset(&mut self, at: &str, field: &str, spec: &CpusetSpec) -> Option<CpuList> {
        if !self.topo_ok {
            return None;
        }
        match spec.resolve(&self.sc.topology) {
            Ok(list) => Some(list),
            Err(e) => {
                self.err(at, field, Problem::Cpuset(e));
                None
            }
        }
    }

    pub(super) fn def(&mut self, at: &str, def: &CgroupDef) {
        let cpus = def
            .cpuset
            .as_ref()
            .and_then(|s| self.cpuset(at, "cpuset", s));
        if let Some(spec) = &def.cpuset
            && self.topo_ok
            && matches!(
                spec.resolve(&self.sc.topology),
                Err(CpusetError::Empty { .. })
            )
        {
            // A percentage of no CPUs is no workers: say so, not just "empty cpuset".
            for (i, w) in def.works.iter().enumerate() {
                if let (None, Some(p)) = (w.workers, w.workers_pct) {
                    self.invalid(
                        &format!("{at}, works[{i}]"),
                        "workers_pct",
                        format!("= {p} of a cpuset with no CPUs would start no workers; widen the cpuset or set workers"),
                    );
                }
            }
        }
        if let Some(mems) = &def.cpuset_mems {
            if mems.is_empty() {
                self.err(
                    at,
                    "cpuset.mems",
                    Problem::Empty {
                        hint: "list NUMA nodes, or leave cpuset_mems out to inherit",
                    },
                );
            }
            let (nodes, ok) = (self.sc.topology.nodes, self.topo_ok);
            for &m in mems.iter().filter(|m| ok && **m >= nodes) {
                self.err(at, "cpuset.mems", range_err(m, 0, nodes - 1));
            }
        }
        for (field, w) in [("cpu.weight", def.cpu_weight), ("io.weight", def.io_weight)] {
            if let Some(w) = w
                && !(1..=10_000).contains(&w)
            {
                self.err(at, field, range_err(w, 1, 10_000));
            }
        }
        if let Some(max) = def.cpu_max {
            self.cpu_max(at, max);
        }
        self.memory(at, def);
        if let Some(max) = def.pids_max
            && max > MAX_PIDS
        {
            self.err(at, "pids.max", range_err(max, 1, MAX_PIDS));
        }
        if def.pids_max == Some(0) {
            self.err(
                at,
                "pids.max",
                Problem::Zero {
                    hint: "no task could fork; leave pids_max out for no limit",
                },
            );
        }
        let declared: u32 = def
            .works
            .iter()
            .filter_map(|w| w.workers)
            .fold(0, u32::saturating_add);
        if let Some(max) = def.pids_max
            && max != 0
            && declared > max
        {
            self.invalid(
                at,
                "pids.max",
                format!("= {max} is below the {declared} workers declared; raise pids.max"),
            );
        }
        let ncpus = cpus.as_ref().map_or(self.sc.topology.cpus(), |c| {
            u32::try_from(c.len()).unwrap_or(u32::MAX)
        });
        for (i, w) in def.works.iter().enumerate() {
            self.work(&format!("{at}, works[{i}]"), w, Some(ncpus), cpus.as_ref());
        }
        self.declare(at, "name", &def.name, cpus);
    }

    pub(super) fn cpu_max(&mut self, at: &str, max: CpuMax) {
        if !CpuMax::PERIOD_RANGE_US.contains(&max.period_us) {
            self.err(
                at,
                "cpu.max period_us",
                range_err(
                    max.period_us,
                    *CpuMax::PERIOD_RANGE_US.start(),
                    *CpuMax::PERIOD_RANGE_US.end(),
                ),
            );
        }
        match max.quota_us {
            Some(0) => self.err(
                at,
                "cpu.max quota_us",
                Problem::Zero {
                    hint: "the cgroup could never run; leave quota_us out for \"max\"",
                },
            ),
            Some(q) if q > MAX_QUOTA_US => self.err(
                at,
                "cpu.max quota_us",
                range_err(q, CpuMax::MIN_QUOTA_US, MAX_QUOTA_US),
            ),
            Some(q) if q < CpuMax::MIN_QUOTA_US => self.invalid(
                at,
                "cpu.max quota_us",
                format!(
                    "= {q} is below the kernel minimum of {} µs",
                    CpuMax::MIN_QUOTA_US
                ),
            ),
            _ => {}
        }
    }

    pub(super) fn memory(&mut self, at: &str, def: &CgroupDef) {
        for (field, v) in [
            ("memory.max", def.memory_max),
            ("memory.high", def.memory_high),
        ] {
            if v == Some(0) {
                self.err(
                    at,
                    field,
                    Problem::Zero {
                        hint: "the cgroup could not allocate at all; leave it out for no limit",
                    },
                );
            }
        }
        let pairs = [
            ("memory.high", def.memory_high, "memory.max", def.memory_max),
            ("memory.low", def.memory_low, "memory.max", def.memory_max),
            ("memory.low", def.memory_low, "memory.high", def.memory_high),
        ];
        for (lf, lo, hf, hi) in pairs {
            if let (Some(lo), Some(hi)) = (lo, hi)
                && hi != 0
                && lo > hi
            {
                self.invalid(
                    at,
                    lf,
                    format!(
                        "= {lo} is above {hf} = {hi}; keep memory.low <= memory.high <= memory.max"
                    ),
                );
            }
        }
    }

    /// `cpus`: CPU count of the target cgroup (`None`: runner placement).
    pub(super) fn work(
        &mut self,
        at: &str,
        w: &WorkSpec,
        cpus: Option<u32>,
        cpuset: Option<&CpuList>,
    ) {
        match (w.workers, w.workers_pct) {
            (Some(n), Some(p)) => {
                self.invalid(at, "workers", format!("= {n} and workers_pct = {p} are both set; keep exactly one"))
            }
            (None, None) => self.invalid(at, "workers", "is not set; set workers (a count) or workers_pct (% of the cgroup's CPUs)".into()),
            (Some(0), None) => self.err(at, "workers", Problem::Zero { hint: "a worker group needs at least 1 worker" }),
            (Some(n), None) if n > MAX_WORKERS => self.err(at, "workers", range_err(n, 1, MAX_WORKERS)),
            (None, Some(p)) if p == 0 || p > 100 => self.err(at, "workers_pct", range_err(p, 1, 100)),
            (None, Some(_)) if cpus.is_none() => {
                self.invalid(at, "workers_pct", "needs a cgroup's CPUs to scale against; the runner placement has none, use workers".into())
            }
            _ => {}
        }
        if let Some(n) = w.workers {
            let g = w.work.group_size();
            if n != 0 && g > 1 && n % g != 0 {
                self.invalid(
                    at,
                    "workers",
                    format!(
                        "= {n} is not a multiple of {g}; {} workers come in groups of {g}",
                        w.work.name()
                    ),
                );
            }
        }
        if !(-20..=19).contains(&w.nice) {
            self.err(at, "nice", range_err(w.nice, -20, 19));
        }
        if let SchedPolicy::Fifo(p) | SchedPolicy::RoundRobin(p) = w.policy
            && !(1..=99).contains(&p)
        {
            self.err(at, "policy priority", range_err(p, 1, 99));
        }
        if let Some(comm) = &w.comm {
            if comm.is_empty() {
                self.err(
                    at,
                    "comm",
                    Problem::Empty {
                        hint: "leave comm out for the default name",
                    },
                );
            } else if comm.len() > MAX_COMM_LEN {
                self.err(
                    at,
                    "comm",
                    Problem::TooLong {
                        len: comm.len(),
                        max: MAX_COMM_LEN,
                    },
                );
            } else if comm.contains('\0') {
                self.invalid(at, "comm", format!("= {comm:?} contains a NUL byte"));
            }
        }
        self.affinity(at, "affinity", &w.affinity, cpuset);
        self.work_type(at, "work", &w.work, w.workers, false);
    }

    pub(super) fn affinity(
        &mut self,
        at: &str,
        field: &str,
        a: &AffinityIntent,
        cpuset: Option<&CpuList>,
    ) {
        if let AffinityIntent::Cpus(list) = a {
            if list.is_empty() {
                self.err(
                    at,
                    field,
                    Problem::Empty {
                        hint: "list at least one CPU, or use inherit",
                    },
                );
            } else if self.topo_ok
                && let Err(e) = a.resolve(&self.sc.topology, cpuset, 0)
            {
                self.invalid(at, field, format!("is unusable: {e}"));
            }
        }
    }

    pub(super) fn work_type(
        &mut self,
        at: &str,
        field: &str,
        t: &WorkType,
        workers: Option<u32>,
        nested: bool,
    ) {
        let zero = |v: &mut Self, f: &str, x: u32| {
            if x == 0 {
                v.err(
                    at,
                    &format!("{field}.{f}"),
                    Problem::Zero {
                        hint: "this work type needs a positive value",
                    },
                );
            }
        };
        let at_most = |v: &mut Self, f: &str, x: u32, max: u32| {
            v.at_most(at, &format!("{field}.{f}"), x, max);
        };
        match t {
            WorkType::IoSleep { sleep_us } => {
                zero(self, "sleep_us", *sleep_us);
                at_most(self, "sleep_us", *sleep_us, MAX_WORK_US);
            }
            WorkType::Bursty { burst_us, sleep_us } => {
                zero(self, "burst_us", *burst_us);
                zero(self, "sleep_us", *sleep_us);
                at_most(self, "burst_us", *burst_us, MAX_WORK_US);
                at_most(self, "sleep_us", *sleep_us, MAX_WORK_US);
            }
            WorkType::CachePressure { kib } => {
                zero(self, "kib", *kib);
                at_most(self, "kib", *kib, MAX_CACHE_KIB);
            }
            WorkType::FutexFanOut { fan } => {
                zero(self, "fan", *fan);
                at_most(self, "fan", *fan, MAX_WORKERS - 1);
            }
            WorkType::MutexContention { holders } => {
                zero(self, "holders", *holders);
                if let Some(n) = workers
                    && *holders != 0
                    && *holders >= n
                {
                    self.invalid(
                        at,
                        &format!("{field}.holders"),
                        format!(
                            "= {holders} is not below workers = {n}; nobody would wait for the lock"
                        ),
                    );
                }
            }
            WorkType::Sequence(phases) => {
                if nested {
                    self.invalid(
                        at,
                        field,
                        "nests a sequence inside a sequence; flatten the phases".into(),
                    );
                }
                if phases.is_empty() {
                    self.err(
                        at,
                        field,
                        Problem::Empty {
                            hint: "a sequence needs at least one phase",
                        },
                    );
                }
                self.phase_limits(at, field, phases.len());
                for (i, p) in phases.iter().enumerate().take(MAX_PHASES) {
                    let f = format!("{field}.phases[{i}]");
                    self.phase_duration(at, &format!("{f}.duration"), p.duration_ns);
                    if p.duration_ns == 0 {
                        self.err(
                            at,
                            &format!("{f}.duration"),
                            Problem::Zero {
                                hint: "each phase needs a duration, e.g. \"100ms\"",
                            },
                        );
                    }
                    self.work_type(at, &f, &p.work, workers, true);
                }
            }
            _ => {}
        }
    }
}
