//! Fixed limits on a scenario's size, counts and times, and an estimate of
//! the guest memory it needs. README.md ("Limits") gives the reason for each.
//!
//! Validation refuses a scenario past any limit; the guest checks the size
//! and counts again before it acts on one (its heap is a fixed 16 MiB).

use super::units::{NS_PER_MS, NS_PER_SEC};
use super::work::WorkType;
use super::{Op, Scenario, Step};

/// Most bytes of the encoded (postcard) scenario: the guest reads and decodes
/// it into its fixed heap (see the `worst_case_scenario_fits_the_guest_heap` test).
pub const MAX_SCENARIO_BYTES: usize = 64 << 10;
/// Longest `description`: it is copied into every trace's metadata.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Longest scenario name: it is the default trace file name (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;
/// Most `[[steps]]`.
pub const MAX_STEPS: usize = 1024;
/// Most cgroup declarations in all (backdrop, step setups, add_cgroup ops).
pub const MAX_CGROUP_DEFS: usize = 1024;
/// Most ops in all (backdrop and every step).
pub const MAX_OPS: usize = 4096;
/// Most worker groups (`works` entries and spawn ops) in all.
pub const MAX_WORK_SPECS: usize = 1024;
/// Most phases in one sequence work type.
pub const MAX_PHASES: usize = 64;
/// Most `[[payloads]]`.
pub const MAX_PAYLOADS: usize = 64;
/// Most `[[staged_schedulers]]`.
pub const MAX_STAGED_SCHEDULERS: usize = 16;
/// Most workers alive at once: the guest's telemetry slots.
pub const MAX_LIVE_WORKERS: u64 = 4096;

/// The guest executor's heap (a fixed arena; `guest/src/main.rs` uses this).
pub const GUEST_HEAP_BYTES: usize = 16 << 20;
/// The part of [`GUEST_HEAP_BYTES`] a decoded scenario may take at worst; the
/// rest is for the run (ring buffers, worker and cgroup tables).
pub const GUEST_SCENARIO_HEAP_BYTES: usize = 8 << 20;
const _: () = assert!(GUEST_SCENARIO_HEAP_BYTES <= GUEST_HEAP_BYTES / 2);

/// Longest `duration`.
pub const MAX_DURATION_NS: u64 = 24 * 3600 * NS_PER_SEC;
/// Longest `settle`.
pub const MAX_SETTLE_NS: u64 = 3600 * NS_PER_SEC;
/// Shortest `sample_interval`: 2.5 timer ticks at HZ=250.
pub const MIN_SAMPLE_INTERVAL_NS: u64 = 10 * NS_PER_MS;
/// Shortest `snapshot_interval` (when not 0): each snapshot stops every vCPU.
pub const MIN_SNAPSHOT_INTERVAL_NS: u64 = 100 * NS_PER_MS;
/// Shortest `hold.loop` interval: each repeat writes cgroupfs files.
pub const MIN_LOOP_INTERVAL_NS: u64 = NS_PER_MS;
/// Shortest sequence phase.
pub const MIN_PHASE_NS: u64 = NS_PER_MS;
/// Longest `burst_us` / `sleep_us` (10 s): one iteration must fit in a sample.
pub const MAX_WORK_US: u32 = 10_000_000;
/// Largest `cache_pressure.kib` (1 GiB, above any real LLC).
pub const MAX_CACHE_KIB: u32 = 1 << 20;
/// Largest `pids.max` the kernel takes (PID_MAX_LIMIT on 64-bit).
pub const MAX_PIDS: u32 = 4 << 20;
/// Largest `cpu.max` quota: every CPU for the longest period; more means "max".
pub const MAX_QUOTA_US: u64 = 256 * 1_000_000;

/// Guest memory estimate: the kernel, the executor's heap and the initramfs.
pub const GUEST_BASE_BYTES: u64 = 48 << 20;
/// Guest memory estimate: kernel per-CPU areas and run queues, per CPU.
pub const GUEST_PER_CPU_BYTES: u64 = 256 << 10;
/// Guest memory estimate: one worker process (kernel stack, task, page
/// tables, copied pages); about twice what a fork of the executor takes.
pub const GUEST_PER_WORKER_BYTES: u64 = 256 << 10;
/// Guest memory estimate: one cgroup's fixed part (kernfs files, controllers).
pub const GUEST_PER_CGROUP_BYTES: u64 = 32 << 10;
/// Guest memory estimate: one cgroup's per-CPU part (memcg and cpu statistics).
pub const GUEST_PER_CGROUP_CPU_BYTES: u64 = 4 << 10;

/// How many of each limited thing a scenario holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub steps: usize,
    pub cgroup_defs: usize,
    pub ops: usize,
    pub work_specs: usize,
    pub payloads: usize,
    pub staged_schedulers: usize,
}

impl Counts {
    pub fn of(sc: &Scenario) -> Counts {
        let mut c = Counts {
            steps: sc.steps.len(),
            payloads: sc.payloads.len(),
            staged_schedulers: sc.staged_schedulers.len(),
            ..Counts::default()
        };
        let defs = sc
            .backdrop
            .cgroups
            .iter()
            .chain(sc.steps.iter().flat_map(|s| s.setup.iter()));
        for d in defs {
            c.cgroup_defs += 1;
            c.work_specs += d.works.len();
        }
        let ops = sc
            .backdrop
            .ops
            .iter()
            .chain(sc.steps.iter().flat_map(|s| s.ops.iter()));
        for op in ops {
            c.ops += 1;
            match op {
                Op::AddCgroup { .. } => c.cgroup_defs += 1,
                Op::AddCgroupDef(d) => {
                    c.cgroup_defs += 1;
                    c.work_specs += d.works.len();
                }
                Op::Spawn { .. } => c.work_specs += 1,
                _ => {}
            }
        }
        c
    }

    /// The first count past its limit: (field, count, limit).
    pub fn excess(&self) -> Option<(&'static str, usize, usize)> {
        [
            ("steps", self.steps, MAX_STEPS),
            (
                "cgroups (declared in all)",
                self.cgroup_defs,
                MAX_CGROUP_DEFS,
            ),
            ("ops (in all)", self.ops, MAX_OPS),
            ("worker groups (in all)", self.work_specs, MAX_WORK_SPECS),
            ("payloads", self.payloads, MAX_PAYLOADS),
            (
                "staged_schedulers",
                self.staged_schedulers,
                MAX_STAGED_SCHEDULERS,
            ),
        ]
        .into_iter()
        .find(|(_, n, max)| n > max)
    }
}

/// What is alive in the guest at the busiest point of a run: the backdrop's
/// cgroups and workers plus the largest step's (an upper bound: removals are
/// not subtracted, and a loop step's ops are counted once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeakLoad {
    pub workers: u64,
    pub cgroups: u64,
    /// Memory the workers' loops allocate (cache_pressure buffers, page_fault_churn regions).
    pub work_bytes: u64,
}

impl PeakLoad {
    pub fn of(sc: &Scenario) -> PeakLoad {
        let cpus = sc.topology.cpus();
        let backdrop = Self::part(cpus, &sc.backdrop.cgroups, &sc.backdrop.ops);
        let step = sc
            .steps
            .iter()
            .map(|s: &Step| Self::part(cpus, &s.setup, &s.ops))
            .fold(PeakLoad::default(), |a, b| PeakLoad {
                workers: a.workers.max(b.workers),
                cgroups: a.cgroups.max(b.cgroups),
                work_bytes: a.work_bytes.max(b.work_bytes),
            });
        PeakLoad {
            workers: backdrop.workers.saturating_add(step.workers),
            cgroups: backdrop.cgroups.saturating_add(step.cgroups),
            work_bytes: backdrop.work_bytes.saturating_add(step.work_bytes),
        }
    }

    fn part(cpus: u32, defs: &[super::CgroupDef], ops: &[Op]) -> PeakLoad {
        let mut load = PeakLoad::default();
        let mut add = |w: &super::WorkSpec| {
            let n = u64::from(w.resolve_workers(cpus));
            load.workers = load.workers.saturating_add(n);
            load.work_bytes = load
                .work_bytes
                .saturating_add(n.saturating_mul(work_bytes(&w.work)));
        };
        let mut cgroups = 0u64;
        for d in defs {
            cgroups += 1;
            d.works.iter().for_each(&mut add);
        }
        for op in ops {
            match op {
                Op::AddCgroup { .. } => cgroups += 1,
                Op::AddCgroupDef(d) => {
                    cgroups += 1;
                    d.works.iter().for_each(&mut add);
                }
                Op::Spawn { work, .. } => add(work),
                _ => {}
            }
        }
        load.cgroups = cgroups;
        load
    }

    /// Estimated guest memory for this load on `cpus` CPUs, in bytes.
    pub fn guest_bytes(&self, cpus: u32) -> u64 {
        let cpus = u64::from(cpus);
        let per_cgroup =
            GUEST_PER_CGROUP_BYTES.saturating_add(GUEST_PER_CGROUP_CPU_BYTES.saturating_mul(cpus));
        GUEST_BASE_BYTES
            .saturating_add(GUEST_PER_CPU_BYTES.saturating_mul(cpus))
            .saturating_add(GUEST_PER_WORKER_BYTES.saturating_mul(self.workers))
            .saturating_add(per_cgroup.saturating_mul(self.cgroups))
            .saturating_add(self.work_bytes)
    }
}

/// Bytes one worker of this type allocates for its loop.
fn work_bytes(t: &WorkType) -> u64 {
    match t {
        WorkType::CachePressure { kib } => u64::from(*kib) << 10,
        WorkType::PageFaultChurn => 1 << 20,
        WorkType::Sequence(phases) => phases
            .iter()
            .map(|p| work_bytes(&p.work))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

impl Scenario {
    /// The size of the encoded (postcard) scenario, as packed for the guest.
    pub fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(self).unwrap_or(usize::MAX)
    }

    /// The guest's own check of a decoded scenario: the counts it can hold.
    /// The host validated everything; this catches a scenario.bin packed by
    /// other means before it exhausts the guest's heap.
    pub fn guest_capacity_error(&self) -> Option<alloc::string::String> {
        let c = Counts::of(self);
        let (field, n, max) = c.excess().or_else(|| {
            let p = self.phases_max();
            (p > MAX_PHASES).then_some(("phases of one sequence", p, MAX_PHASES))
        })?;
        Some(alloc::format!(
            "the scenario has {n} {field}; the guest holds at most {max}"
        ))
    }

    /// The most phases of any one sequence.
    pub(crate) fn phases_max(&self) -> usize {
        fn of(t: &WorkType) -> usize {
            match t {
                WorkType::Sequence(p) => p.len(),
                _ => 0,
            }
        }
        let defs = self
            .backdrop
            .cgroups
            .iter()
            .chain(self.steps.iter().flat_map(|s| s.setup.iter()));
        let ops = self
            .backdrop
            .ops
            .iter()
            .chain(self.steps.iter().flat_map(|s| s.ops.iter()));
        let from_defs = defs.flat_map(|d| d.works.iter()).map(|w| of(&w.work));
        let from_ops = ops.flat_map(|op| match op {
            Op::Spawn { work, .. } => alloc::vec![of(&work.work)],
            Op::AddCgroupDef(d) => d.works.iter().map(|w| of(&w.work)).collect(),
            _ => alloc::vec::Vec::new(),
        });
        from_defs.chain(from_ops).max().unwrap_or(0)
    }
}
