//! What `bench nested` measured in L1 ([`Raw`], written there as JSON) and
//! what the host makes of it: medians per vCPU count, ours/QEMU ratios, the
//! issue's goals, a table and `target/bench/nested.json`.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::bench::percentile;

/// Which VMM booted L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vmm {
    Ours,
    Qemu,
}

/// One boot of one VMM inside L1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    pub vmm: Vmm,
    pub cpus: u16,
    pub round: usize,
    /// Spawn → the guest's marker line on the VMM's stdout.
    pub init_ms: f64,
    /// Ours: spawn → its vCPU threads run (the VM built, its line read).
    #[serde(default)]
    pub started_ms: Option<f64>,
    /// user+sys of the VMM process at that moment (all its threads, ended
    /// ones included).
    pub cpu_ms: f64,
    /// Of `cpu_ms`, user time (which includes guest time).
    pub user_ms: f64,
    /// The part of `cpu_ms` its vCPUs spent in guest mode (`guest_time`).
    pub guest_ms: f64,
    /// Threads named as vCPUs (ours `vcpuN`, QEMU's `CPU N/KVM`).
    pub vcpu_threads: usize,
    /// Their user+sys: guest time, in-kernel exits and the VMM's device
    /// emulation on them. `cpu_ms` less this is the VMM's own start CPU.
    pub vcpu_cpu_ms: f64,
    /// Peak RSS (`VmHWM`) at that moment.
    pub rss_kib: u64,
    /// Of the RSS then, the file-backed part (`RssFile`): in L1 only files
    /// mapped from its disks (QEMU maps its `-kernel` image), as programs and
    /// libraries sit on the tmpfs root (shmem).
    pub rss_file_kib: u64,
    /// RSS then: every mapping's `Rss` in `smaps`.
    pub rss_now_kib: u64,
    /// Of that, the guest RAM mapping's (None: it was not found, see the notes).
    pub guest_ram_kib: Option<u64>,
    /// What L1 noticed about this boot (moved into [`Raw::notes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Ours: `freeze()`'s rendezvous (kick → last vCPU parked); QEMU: QMP
    /// `stop` (sent → reply), µs.
    pub freeze_us: Vec<f64>,
    /// Ours: the whole `freeze()` call (+ KVM_GET_CLOCK); QEMU: as `freeze_us`.
    pub stop_call_us: Vec<f64>,
    /// Ours: `thaw()`; QEMU: QMP `cont`, µs.
    pub resume_us: Vec<f64>,
}

/// Everything L1 reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    /// QEMU's `-M` value that was timed (microvm, or pc when microvm failed).
    pub qemu_machine: String,
    pub qemu_version: String,
    /// What backs /dev/kvm in L1.
    pub l1_kvm: String,
    pub memory_mib: u64,
    pub freezes: usize,
    pub rounds: usize,
    /// The L2 kernel command line (the same for both VMMs).
    pub cmdline: String,
    /// Fallbacks and boots that failed (each left out of the statistics).
    pub notes: Vec<String>,
    pub boots: Vec<Boot>,
}

/// Medians of one VMM at one vCPU count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Side {
    pub boots: usize,
    pub init_ms: f64,
    /// Ours: spawn → vCPUs running; NaN for QEMU.
    pub started_ms: f64,
    pub cpu_ms: f64,
    /// user+sys of the threads that are not vCPUs: the VMM's own start CPU.
    pub vmm_cpu_ms: f64,
    /// Peak RSS (`VmHWM`), guest RAM included.
    pub rss_mib: f64,
    pub rss_file_mib: f64,
    /// The guest RAM mapping's resident part at /init.
    pub guest_ram_mib: f64,
    /// RSS at /init less the guest RAM's resident part: the VMM's own memory.
    pub vmm_rss_mib: f64,
    pub freeze_p50_us: f64,
    pub freeze_p99_us: f64,
    pub stop_call_p50_us: f64,
    pub resume_p50_us: f64,
}

/// ours / QEMU of each median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    pub init: f64,
    pub cpu: f64,
    pub vmm_cpu: f64,
    pub rss: f64,
    pub vmm_rss: f64,
    pub freeze_p50: f64,
    pub freeze_p99: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    pub cpus: u16,
    pub ours: Side,
    pub qemu: Side,
    pub ratios: Ratios,
}

/// One of the goals and whether the run met it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub what: String,
    /// The worst ratio over the rows it covers.
    pub ratio: f64,
    pub limit: f64,
    pub met: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    pub raw: Raw,
}

/// /init at least 1.5× sooner, so ours/QEMU ≤ 1/1.5.
const INIT_LIMIT: f64 = 1.0 / 1.5;
const CPU_RSS_LIMIT: f64 = 0.1;
const FREEZE_LIMIT: f64 = 0.2;
/// The vCPU count the freeze goal is about.
const FREEZE_GOAL_CPUS: u16 = 8;

fn side(boots: &[&Boot]) -> Side {
    let med = |f: &dyn Fn(&Boot) -> f64| {
        percentile(&boots.iter().map(|b| f(b)).collect::<Vec<_>>(), 50.0)
    };
    let all = |f: &dyn Fn(&Boot) -> &Vec<f64>| -> Vec<f64> {
        boots.iter().flat_map(|b| f(b).iter().copied()).collect()
    };
    // Medians over the boots that have the value (NaN when none has).
    let some = |f: &dyn Fn(&Boot) -> Option<f64>| {
        let v: Vec<f64> = boots.iter().filter_map(|b| f(b)).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            percentile(&v, 50.0)
        }
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let freeze = all(&|b| &b.freeze_us);
    Side {
        boots: boots.len(),
        init_ms: med(&|b| b.init_ms),
        started_ms: some(&|b| b.started_ms),
        cpu_ms: med(&|b| b.cpu_ms),
        vmm_cpu_ms: med(&|b| (b.cpu_ms - b.vcpu_cpu_ms).max(0.0)),
        rss_mib: med(&|b| mib(b.rss_kib)),
        rss_file_mib: med(&|b| mib(b.rss_file_kib)),
        guest_ram_mib: some(&|b| b.guest_ram_kib.map(mib)),
        vmm_rss_mib: some(&|b| {
            b.guest_ram_kib
                .map(|g| mib(b.rss_now_kib.saturating_sub(g)))
        }),
        freeze_p50_us: percentile(&freeze, 50.0),
        freeze_p99_us: percentile(&freeze, 99.0),
        stop_call_p50_us: percentile(&all(&|b| &b.stop_call_us), 50.0),
        resume_p50_us: percentile(&all(&|b| &b.resume_us), 50.0),
    }
}

fn ratio(ours: f64, qemu: f64) -> f64 {
    if qemu > 0.0 { ours / qemu } else { f64::NAN }
}

impl Report {
    /// Rows for every vCPU count both VMMs booted at, in the order first seen.
    pub fn new(raw: Raw) -> Report {
        let mut counts: Vec<u16> = Vec::new();
        for b in &raw.boots {
            if !counts.contains(&b.cpus) {
                counts.push(b.cpus);
            }
        }
        let rows: Vec<Row> = counts
            .into_iter()
            .filter_map(|cpus| {
                let of = |vmm| -> Vec<&Boot> {
                    raw.boots
                        .iter()
                        .filter(|b| b.cpus == cpus && b.vmm == vmm)
                        .collect()
                };
                let (o, q) = (of(Vmm::Ours), of(Vmm::Qemu));
                if o.is_empty() || q.is_empty() {
                    return None;
                }
                let (ours, qemu) = (side(&o), side(&q));
                let ratios = Ratios {
                    init: ratio(ours.init_ms, qemu.init_ms),
                    cpu: ratio(ours.cpu_ms, qemu.cpu_ms),
                    vmm_cpu: ratio(ours.vmm_cpu_ms, qemu.vmm_cpu_ms),
                    rss: ratio(ours.rss_mib, qemu.rss_mib),
                    vmm_rss: ratio(ours.vmm_rss_mib, qemu.vmm_rss_mib),
                    freeze_p50: ratio(ours.freeze_p50_us, qemu.freeze_p50_us),
                    freeze_p99: ratio(ours.freeze_p99_us, qemu.freeze_p99_us),
                };
                Some(Row {
                    cpus,
                    ours,
                    qemu,
                    ratios,
                })
            })
            .collect();
        let goals = goals(&rows);
        Report { rows, goals, raw }
    }

    /// The table, ratios and goals as printed.
    pub fn text(&self) -> String {
        let r = &self.raw;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bench nested: our VMM vs qemu-system-x86_64 -accel kvm -M {} ({}), inside one L1 \
             (QEMU TCG, emulated AMD SVM+NPT; L1 /dev/kvm: {})",
            r.qemu_machine, r.qemu_version, r.l1_kvm
        );
        let _ = writeln!(
            s,
            "L2: the project kernel's PVH vmlinux, an initramfs whose /init prints a line and pauses; \
             {} MiB; kernel args \"{}\"; {} rounds, interleaved; {} freeze cycles per boot",
            r.memory_mib, r.cmdline, r.rounds, r.freezes
        );
        let _ = writeln!(
            s,
            "/init = spawn → the /init line on the VMM's stdout (its serial console); CPU and RSS \
             read from /proc at that moment; medians over rounds; freezes pooled over rounds"
        );
        let _ = writeln!(
            s,
            "\n{:>5} {:>5} {:>9} {:>9} {:>10} {:>22} {:>9} {:>18} {:>11} {:>10}",
            "vCPUs",
            "VMM",
            "/init ms",
            "CPU ms",
            "VMM CPU",
            "RSS / guest RAM MiB",
            "VMM RSS",
            "freeze p50/p99 µs",
            "call p50 µs",
            "resume p50"
        );
        for row in &self.rows {
            for (name, v) in [("ours", &row.ours), ("qemu", &row.qemu)] {
                let _ = writeln!(
                    s,
                    "{:>5} {name:>5} {:>9.0} {:>9.0} {:>10.1} {:>22} {:>9.1} {:>18} {:>11.0} {:>10.0}",
                    row.cpus,
                    v.init_ms,
                    v.cpu_ms,
                    v.vmm_cpu_ms,
                    format!("{:.1} / {:.1}", v.rss_mib, v.guest_ram_mib),
                    v.vmm_rss_mib,
                    format!("{:.0} / {:.0}", v.freeze_p50_us, v.freeze_p99_us),
                    v.stop_call_p50_us,
                    v.resume_p50_us
                );
            }
            let x = &row.ratios;
            let _ = writeln!(
                s,
                "{:>5} {:>5} {:>8.2}× {:>8.2}× {:>9.2}× {:>21} {:>8.2}× {:>18}",
                row.cpus,
                "o/q",
                x.init,
                x.cpu,
                x.vmm_cpu,
                format!("{:.2}×", x.rss),
                x.vmm_rss,
                format!("{:.2}× / {:.2}×", x.freeze_p50, x.freeze_p99)
            );
        }
        let _ = writeln!(
            s,
            "\nCPU ms = user+sys of the whole VMM process (vCPU threads: guest time and exits \
             included); VMM CPU = of that, the threads not named as vCPUs (ours vcpuN, QEMU \
             \"CPU N/KVM\"; ended threads count as the VMM's). RSS = peak (VmHWM); guest RAM = \
             the resident part of the anonymous mapping of the guest's memory size (smaps) at \
             /init; VMM RSS = RSS at /init (smaps) less that: heaps, stacks, code, ROMs and \
             mapped files. freeze: ours = rendezvous (kick → last vCPU parked), QEMU = QMP \
             stop sent → reply; call = ours' whole freeze() (+KVM_GET_CLOCK) / QMP stop; resume = \
             thaw() / QMP cont."
        );
        for row in self.rows.iter().filter(|r| !r.ours.started_ms.is_nan()) {
            let _ = writeln!(
                s,
                "{} vCPUs: ours' vCPUs ran {:.0} ms after spawn (VM built), /init {:.0} ms later",
                row.cpus,
                row.ours.started_ms,
                row.ours.init_ms - row.ours.started_ms
            );
        }
        for g in &self.goals {
            let _ = writeln!(
                s,
                "goal: {}: {:.2}× (limit {:.2}×): {}",
                g.what,
                g.ratio,
                g.limit,
                if g.met { "met" } else { "not met" }
            );
        }
        for n in &r.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// The goals over the rows (the worst row counts).
fn goals(rows: &[Row]) -> Vec<Goal> {
    let worst = |f: &dyn Fn(&Row) -> f64, only: Option<u16>| {
        rows.iter()
            .filter(|r| only.is_none_or(|c| r.cpus == c))
            .map(f)
            .fold(None, |acc: Option<f64>, v| {
                Some(match acc {
                    Some(a) if a.is_nan() || a >= v => a,
                    _ => v,
                })
            })
    };
    let mut out = Vec::new();
    let mut push = |what: &str, ratio: Option<f64>, limit: f64| {
        if let Some(ratio) = ratio {
            out.push(Goal {
                what: what.to_string(),
                ratio,
                limit,
                met: ratio <= limit,
            });
        }
    };
    push(
        "/init at least 1.5× sooner (ours/QEMU, every vCPU count)",
        worst(&|r| r.ratios.init, None),
        INIT_LIMIT,
    );
    push(
        "VMM start CPU ≤ 0.1× (user+sys of the non-vCPU threads until /init)",
        worst(&|r| r.ratios.vmm_cpu, None),
        CPU_RSS_LIMIT,
    );
    push(
        "VMM RSS ≤ 0.1× (RSS at /init less the guest RAM's resident part)",
        worst(&|r| r.ratios.vmm_rss, None),
        CPU_RSS_LIMIT,
    );
    push(
        "freeze of 8 vCPUs ≤ 0.2× a QMP stop (p50)",
        worst(&|r| r.ratios.freeze_p50, Some(FREEZE_GOAL_CPUS)),
        FREEZE_LIMIT,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(vmm: Vmm, cpus: u16, round: usize, init_ms: f64, freeze: &[f64]) -> Boot {
        Boot {
            vmm,
            cpus,
            round,
            init_ms,
            started_ms: (vmm == Vmm::Ours).then_some(init_ms / 10.0),
            cpu_ms: init_ms * 2.0,
            user_ms: init_ms * 1.5,
            guest_ms: init_ms,
            vcpu_threads: usize::from(cpus),
            vcpu_cpu_ms: init_ms * 1.5,
            rss_kib: 10 * 1024,
            rss_file_kib: 1024,
            rss_now_kib: 9 * 1024,
            guest_ram_kib: Some(8 * 1024),
            notes: Vec::new(),
            freeze_us: freeze.to_vec(),
            stop_call_us: freeze.iter().map(|f| f + 1.0).collect(),
            resume_us: vec![5.0],
        }
    }

    fn raw(boots: Vec<Boot>) -> Raw {
        Raw {
            qemu_machine: "microvm".into(),
            boots,
            ..Raw::default()
        }
    }

    #[test]
    fn rows_take_medians_and_ratios_per_vcpu_count() {
        let r = Report::new(raw(vec![
            boot(Vmm::Ours, 8, 1, 100.0, &[10.0, 30.0]),
            boot(Vmm::Qemu, 8, 1, 400.0, &[100.0]),
            boot(Vmm::Ours, 8, 2, 300.0, &[20.0]),
            boot(Vmm::Qemu, 8, 2, 200.0, &[100.0]),
            boot(Vmm::Ours, 8, 3, 200.0, &[]),
            boot(Vmm::Qemu, 8, 3, 600.0, &[100.0]),
            // Only one side at 2 vCPUs: no row.
            boot(Vmm::Ours, 2, 1, 1.0, &[]),
        ]));
        assert_eq!(r.rows.len(), 1);
        let row = r.rows[0];
        assert_eq!(row.cpus, 8);
        assert_eq!(row.ours.boots, 3);
        assert_eq!(row.ours.init_ms, 200.0);
        assert_eq!(row.qemu.init_ms, 400.0);
        assert_eq!(row.ratios.init, 0.5);
        // cpu = 2 × init, vCPU threads 1.5 × init: the VMM's own part is 0.5 × init.
        assert_eq!(row.ours.cpu_ms, 400.0);
        assert_eq!(row.ours.vmm_cpu_ms, 100.0);
        assert_eq!(row.ours.started_ms, 20.0);
        assert!(row.qemu.started_ms.is_nan());
        assert_eq!(row.ours.rss_file_mib, 1.0);
        assert_eq!(row.ratios.rss, 1.0);
        // RSS at /init 9 MiB, of which guest RAM 8: the VMM's own is 1.
        assert_eq!(row.ours.guest_ram_mib, 8.0);
        assert_eq!(row.ours.vmm_rss_mib, 1.0);
        assert_eq!(row.ratios.vmm_rss, 1.0);
        // Freezes pool over rounds: 10, 20, 30 → p50 20.
        assert_eq!(row.ours.freeze_p50_us, 20.0);
        assert_eq!(row.ratios.freeze_p50, 0.2);
        assert_eq!(row.ours.stop_call_p50_us, 21.0);
    }

    #[test]
    fn goals_judge_the_worst_row_and_freeze_only_at_8_vcpus() {
        let r = Report::new(raw(vec![
            boot(Vmm::Ours, 1, 1, 100.0, &[50.0]),
            boot(Vmm::Qemu, 1, 1, 200.0, &[50.0]),
            boot(Vmm::Ours, 8, 1, 100.0, &[10.0]),
            boot(Vmm::Qemu, 8, 1, 140.0, &[100.0]),
        ]));
        let goal = |prefix: &str| r.goals.iter().find(|g| g.what.starts_with(prefix)).unwrap();
        // 1 vCPU: 0.5; 8 vCPUs: 0.714 > 0.667 → not met.
        let init = goal("/init");
        assert!((init.ratio - 100.0 / 140.0).abs() < 1e-9, "{init:?}");
        assert!(!init.met);
        // 1 vCPU freezes as slowly as QEMU, but the goal is about 8 vCPUs: 0.1.
        let freeze = goal("freeze");
        assert!((freeze.ratio - 0.1).abs() < 1e-9);
        assert!(freeze.met);
        assert!(!goal("VMM RSS").met);
        assert!(!goal("VMM start CPU").met);
        let text = r.text();
        assert!(text.contains("goal: freeze of 8 vCPUs"), "{text}");
        assert!(text.contains("not met"), "{text}");
    }

    #[test]
    fn a_row_without_qemu_numbers_is_not_a_ratio_of_zero() {
        assert!(ratio(1.0, 0.0).is_nan());
        let r = Report::new(raw(vec![
            boot(Vmm::Ours, 1, 1, 100.0, &[]),
            boot(Vmm::Qemu, 1, 1, 100.0, &[]),
        ]));
        // No freeze samples on either side: NaN, and a NaN goal is not met.
        let g = r.goals.iter().find(|g| g.what.starts_with("freeze"));
        assert!(g.is_none(), "no 8-vCPU row, no freeze goal: {g:?}");
        assert!(r.rows[0].ratios.freeze_p50.is_nan());
    }

    #[test]
    fn vmm_rss_leaves_out_the_guest_ram_and_skips_boots_without_it() {
        let mut ours = boot(Vmm::Ours, 1, 1, 100.0, &[]);
        ours.rss_now_kib = 300 * 1024;
        ours.guest_ram_kib = Some(290 * 1024);
        let mut lost = boot(Vmm::Ours, 1, 2, 100.0, &[]);
        lost.guest_ram_kib = None;
        let mut qemu = boot(Vmm::Qemu, 1, 1, 100.0, &[]);
        qemu.rss_now_kib = 400 * 1024;
        qemu.guest_ram_kib = Some(300 * 1024);
        let r = Report::new(raw(vec![ours, lost, qemu]));
        let row = r.rows[0];
        // The boot whose guest RAM was not found is not a VMM RSS of its total.
        assert_eq!(row.ours.vmm_rss_mib, 10.0);
        assert_eq!(row.qemu.vmm_rss_mib, 100.0);
        assert!((row.ratios.vmm_rss - 0.1).abs() < 1e-12);
        let g = r
            .goals
            .iter()
            .find(|g| g.what.starts_with("VMM RSS"))
            .unwrap();
        assert!(g.met, "{g:?}");
        // No boot with it at all: NaN, not a ratio of totals.
        let mut alone = boot(Vmm::Ours, 2, 1, 1.0, &[]);
        alone.guest_ram_kib = None;
        let r = Report::new(raw(vec![alone, boot(Vmm::Qemu, 2, 1, 1.0, &[])]));
        assert!(r.rows[0].ratios.vmm_rss.is_nan());
    }

    #[test]
    fn raw_round_trips_through_json() {
        let r = raw(vec![boot(Vmm::Qemu, 2, 1, 5.0, &[1.0])]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"vmm\":\"qemu\""), "{text}");
        assert_eq!(serde_json::from_str::<Raw>(&text).unwrap(), r);
    }
}
