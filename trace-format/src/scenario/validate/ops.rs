//! Checks of ops: the cgroups, payloads and schedulers they refer to, and their fields.

use alloc::format;

use super::{MAX_SNAPSHOT_WATCHES, Problem, Validator, range_err};
use crate::scenario::op::{IrqSelector, KernelRead, KernelWrite, Op, SpawnPlacement};

impl Validator<'_> {
    pub(super) fn op(&mut self, at: &str, op: &Op, in_step: bool) {
        let topo = self.sc.topology;
        match op {
            Op::AddCgroup { name } => self.declare(at, "name", name, None),
            Op::AddCgroupDef(def) => self.def(&format!("{at}, cgroup {:?}", def.name), def),
            Op::RemoveCgroup { cgroup } | Op::StopCgroup { cgroup } => {
                if let Some((_, backdrop)) = self.known(at, "cgroup", cgroup) {
                    if backdrop && in_step {
                        self.backdrop_owned(at, "cgroup", cgroup);
                    } else if matches!(op, Op::RemoveCgroup { .. }) {
                        self.scope.step.remove(cgroup);
                        self.scope.backdrop.remove(cgroup);
                    }
                }
            }
            Op::SetCpuset { cgroup, cpuset } => {
                let cpus = self.cpuset(at, "cpuset", cpuset);
                if self.known(at, "cgroup", cgroup).is_some()
                    && let Some(l) = self.scope.get_mut(cgroup)
                {
                    l.cpus = cpus;
                }
            }
            Op::ClearCpuset { cgroup } => {
                if self.known(at, "cgroup", cgroup).is_some()
                    && let Some(l) = self.scope.get_mut(cgroup)
                {
                    l.cpus = None;
                }
            }
            Op::SwapCpusets { a, b } => {
                let la = self.known(at, "a", a);
                let lb = self.known(at, "b", b);
                if a == b {
                    self.invalid(
                        at,
                        "b",
                        format!("= {b:?} is the same cgroup as a; swap two different cgroups"),
                    );
                } else if let (Some((la, _)), Some((lb, _))) = (la, lb) {
                    if let Some(l) = self.scope.get_mut(a) {
                        l.cpus = lb.cpus;
                    }
                    if let Some(l) = self.scope.get_mut(b) {
                        l.cpus = la.cpus;
                    }
                }
            }
            Op::Spawn { placement, work } => match placement {
                SpawnPlacement::Cgroup(cg) => {
                    if let Some((live, _)) = self.known(at, "placement", cg) {
                        let n = live
                            .cpus
                            .as_ref()
                            .map_or(topo.cpus(), |c| u32::try_from(c.len()).unwrap_or(u32::MAX));
                        self.work(&format!("{at}, work"), work, Some(n), live.cpus.as_ref());
                    }
                }
                SpawnPlacement::Runner => self.work(&format!("{at}, work"), work, None, None),
            },
            Op::SetAffinity { cgroup, affinity } => {
                if let Some((live, _)) = self.known(at, "cgroup", cgroup) {
                    self.affinity(at, "affinity", affinity, live.cpus.as_ref());
                }
            }
            Op::MoveAllTasks { from, to } => {
                let f = self.known(at, "from", from);
                self.known(at, "to", to);
                if from == to {
                    self.invalid(at, "to", format!("= {to:?} is the same cgroup as from"));
                } else if matches!(f, Some((_, true))) && in_step {
                    self.backdrop_owned(at, "from", from);
                }
            }
            Op::RunPayload {
                payload, cgroup, ..
            } => {
                let Some(spec) = self.sc.payload(payload) else {
                    return self.unknown_payload(at, payload);
                };
                if let Some(cg) = cgroup.as_ref().or(spec.cgroup.as_ref())
                    && !cg.is_empty()
                {
                    self.known(at, "cgroup", cg);
                }
                let set = if self.scope.in_backdrop {
                    &mut self.scope.backdrop_payloads
                } else {
                    &mut self.scope.step_payloads
                };
                set.insert(payload.clone());
            }
            Op::WaitPayload { payload, cgroup } | Op::KillPayload { payload, cgroup } => {
                if self.sc.payload(payload).is_none() {
                    return self.unknown_payload(at, payload);
                }
                if !self.scope.step_payloads.contains(payload)
                    && !self.scope.backdrop_payloads.contains(payload)
                {
                    self.invalid(at, "payload", format!("= {payload:?} is not running here; start it with run_payload earlier in this step or in the backdrop"));
                }
                if let Some(cg) = cgroup
                    && !cg.is_empty()
                {
                    self.known(at, "cgroup", cg);
                }
            }
            Op::FreezeCgroup { cgroup } | Op::UnfreezeCgroup { cgroup } => {
                self.known(at, "cgroup", cgroup);
            }
            Op::CaptureSnapshot { name } => self.non_empty(
                at,
                "name",
                name,
                "name the snapshot so it can be found in the trace",
            ),
            Op::WatchSnapshot { symbol } => {
                self.non_empty(at, "symbol", symbol, "name the kernel symbol to watch");
                self.watches += 1;
                if self.watches == MAX_SNAPSHOT_WATCHES + 1 {
                    self.invalid(at, "symbol", format!("is watch number {}; a scenario may hold at most {MAX_SNAPSHOT_WATCHES}", self.watches));
                }
            }
            Op::ReadKernelHot(KernelRead {
                symbol, cpu, width, ..
            })
            | Op::ReadKernelCold(KernelRead {
                symbol, cpu, width, ..
            }) => {
                self.kernel_access(at, symbol, *cpu, *width, None);
            }
            Op::WriteKernelHot(KernelWrite {
                symbol,
                cpu,
                width,
                value,
                ..
            })
            | Op::WriteKernelCold(KernelWrite {
                symbol,
                cpu,
                width,
                value,
                ..
            }) => {
                self.kernel_access(at, symbol, *cpu, *width, Some(*value));
            }
            Op::AttachScheduler { scheduler } | Op::ReplaceScheduler { scheduler } => {
                if self.sc.staged_scheduler(scheduler).is_none() {
                    let hint = "; declare it under [[staged_schedulers]]".into();
                    self.err(
                        at,
                        "scheduler",
                        Problem::Unknown {
                            name: scheduler.clone(),
                            what: "staged scheduler",
                            hint,
                        },
                    );
                }
            }
            Op::DetachScheduler | Op::RestartScheduler => {}
            Op::PinBpfMap { name } => self.non_empty(at, "name", name, "name the BPF map to pin"),
            Op::CaptureCgroupProcs { tag, cgroup } => {
                self.non_empty(
                    at,
                    "tag",
                    tag,
                    "tag the capture so it can be found in the trace",
                );
                if !tag.is_empty() && !self.tags.insert(tag.clone()) {
                    self.invalid(at, "tag", format!("= {tag:?} is used by an earlier capture_cgroup_procs; tags must be unique"));
                }
                self.known(at, "cgroup", cgroup);
            }
            Op::SteerIrq { irq, cpu } => {
                if let IrqSelector::Label(l) = irq {
                    self.non_empty(
                        at,
                        "irq",
                        l,
                        "give the /proc/interrupts label or use a number",
                    );
                }
                self.cpu_in_range(at, "cpu", *cpu);
            }
        }
    }

    pub(super) fn backdrop_owned(&mut self, at: &str, field: &str, name: &str) {
        self.invalid(
            at,
            field,
            format!(
                "= {name:?} belongs to the backdrop; only backdrop ops may stop, empty or remove it"
            ),
        );
    }

    pub(super) fn unknown_payload(&mut self, at: &str, name: &str) {
        let hint = "; declare it under [[payloads]]".into();
        self.err(
            at,
            "payload",
            Problem::Unknown {
                name: name.into(),
                what: "payload",
                hint,
            },
        );
    }

    pub(super) fn non_empty(&mut self, at: &str, field: &str, v: &str, hint: &'static str) {
        if v.is_empty() {
            self.err(at, field, Problem::Empty { hint });
        }
    }

    pub(super) fn cpu_in_range(&mut self, at: &str, field: &str, cpu: u32) {
        let n = self.sc.topology.cpus();
        if self.topo_ok && cpu >= n {
            self.err(at, field, range_err(cpu, 0, n - 1));
        }
    }

    pub(super) fn kernel_access(
        &mut self,
        at: &str,
        symbol: &str,
        cpu: Option<u32>,
        width: u8,
        value: Option<u64>,
    ) {
        self.non_empty(at, "symbol", symbol, "name the kernel symbol");
        if !matches!(width, 1 | 2 | 4 | 8) {
            self.invalid(at, "width", format!("= {width} is not 1, 2, 4 or 8 bytes"));
        } else if let Some(v) = value
            && width < 8
            && v >> (u32::from(width) * 8) != 0
        {
            self.invalid(
                at,
                "value",
                format!("= {v} does not fit in {width} byte(s)"),
            );
        }
        if let Some(cpu) = cpu {
            self.cpu_in_range(at, "cpu", cpu);
        }
    }
}
