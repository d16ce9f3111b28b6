//! Our KVM VMM running real Linux: the nested lane. One `cargo xtask nested
//! run` boots an L1 Linux under QEMU TCG with an emulated AMD CPU (SVM + NPT)
//! and runs every check in it with `--backend kvm`; each test here judges one
//! check's trace with the assertions the QEMU tests use (`e2e::expect`).
//!
//! Timing verdicts cannot be trusted under nesting (a vCPU of L2 is a thread
//! of an emulated CPU), so a check may exit 1 when only those failed; every
//! other verdict, and the trace's contents, must hold.
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use e2e::{Run, expect, root};
use trace_format::meta::Acceleration;
use trace_format::record::{ConsoleSource, Record, RunOutcome, VerdictOutcome};

/// Exit status of `nested run` on a host where the lane cannot run.
const EXIT_CANNOT_RUN: i32 = 4;

/// How the lane went: its results folder (with why the lane failed, when it
/// did after running some checks), or why it cannot run here.
enum Lane {
    Ran(PathBuf, Option<String>),
    CannotRun(String),
}

/// The lane's results: `$SCHEDTAPE_NESTED_RESULTS` when set (a lane run
/// earlier), else one `cargo xtask nested run` for every test of this file.
fn lane() -> &'static Lane {
    static LANE: OnceLock<Result<Lane, String>> = OnceLock::new();
    let result = LANE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SCHEDTAPE_NESTED_RESULTS") {
            return Ok(Lane::Ran(PathBuf::from(dir), None));
        }
        let out = root().join("target/nested-e2e");
        let run = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["run", "--quiet", "-p", "xtask", "--", "nested", "run", "--out"])
            .arg(&out)
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        eprintln!("{stderr}");
        match run.status.code() {
            Some(0) => Ok(Lane::Ran(out, None)),
            Some(EXIT_CANNOT_RUN) => Ok(Lane::CannotRun(
                stderr
                    .lines()
                    .find_map(|l| l.strip_prefix("nested: cannot run here: "))
                    .unwrap_or("no reason given")
                    .to_string(),
            )),
            // L1 died in some check twice, or ran out of boots: the other
            // checks are still judged, and each test says what L1 did to its own.
            _ if ran_any(&out) => Ok(Lane::Ran(
                out,
                Some(
                    stderr
                        .lines()
                        .filter(|l| l.contains("lane failure") || l.contains("L1 died"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            )),
            _ => Err(format!(
                "the nested lane did not run its checks ({}); see its stderr above and {}/l1-console.log",
                run.status,
                out.display()
            )),
        }
    });
    result.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// Whether L1 finished any check into `dir`.
fn ran_any(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".code"))
    })
}

/// One check's run, read from the lane's results; `None` (a logged skip)
/// where the lane cannot run. A check L1 died in twice fails as a lane
/// failure with L1's oops; one L1 died in once was run again and is judged
/// on that run (said on stderr).
fn check(name: &str) -> Option<Run> {
    match lane() {
        Lane::Ran(dir, failure) => {
            let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}")));
            if let Ok(why) = read("l1-failed") {
                if why.contains("L1 rebooted itself to run it again") {
                    panic!(
                        "{name}: L2 failed with the emulator's signature on two fresh L1s (our VMM or the emulated \
                         SVM; L1's KVM exits before the fault are in {name}.suspect.ktrace): {why}"
                    );
                }
                panic!("lane failure (L1, not our VMM) in {name}: {why}");
            }
            if let Ok(retries) = read("l1-retries") {
                eprintln!("{name} ran again after L1 died: {retries}");
            }
            if read("ktrace").is_ok() {
                eprintln!(
                    "{name} failed in L1: L1's last KVM exits and injections are in {}",
                    dir.join(format!("{name}.ktrace")).display()
                );
            }
            if read("code").is_err() {
                panic!(
                    "L1 did not run {name}: {}",
                    failure.as_deref().unwrap_or("see the lane's stderr")
                );
            }
            Some(Run::from_files(dir, name))
        }
        Lane::CannotRun(why) => {
            vmm::test_skip::skip(vmm::test_skip::Need::NestedL1, why);
            None
        }
    }
}

/// Exit 0 with no verdict failed, and the trace says our VMM ran it. Timing
/// verdicts that nesting distorts (seen: gaps of 536 ms, wake p99 of
/// 67–268 ms, a run queue "stalled" while its vCPU did not run) are
/// inconclusive there, not failed, because the trace records nested KVM.
fn passed(run: &Run) {
    let failed: Vec<String> = e2e::pick(&run.records(), |r| match r {
        Record::Verdict(v) if v.outcome == VerdictOutcome::Fail => {
            Some(format!("{}: {}", v.name, v.detail))
        }
        _ => None,
    });
    assert_eq!(
        run.code(),
        Some(0),
        "verdicts failed: {failed:?}\n{}",
        run.log()
    );
    assert!(failed.is_empty(), "{failed:?}");
    ran_on_our_vmm_in_l1(run);
}

/// The trace says our VMM ran it on nested KVM, and the kernel's console
/// has none of the complaints Linux used to log on our VMM.
fn ran_on_our_vmm_in_l1(run: &Run) {
    let meta = run.meta();
    assert_eq!(meta.backend.to_string(), "kvm", "{}", run.log());
    assert_eq!(
        meta.acceleration,
        Some(Acceleration::KvmNested),
        "{}",
        run.log()
    );
    expect::no_firmware_complaints(&run.records());
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn smoke_runs_every_step_on_our_vmm() {
    let Some(run) = check("smoke") else { return };
    passed(&run);
    assert!(
        run.stderr().contains("/init reached after"),
        "{}",
        run.stderr()
    );
    expect::smoke_trace(&run);
    let shown = expect::replay(&["show", &run.trace.display().to_string()]);
    assert!(
        shown.contains("accel      nested KVM (hardware-backed KVM inside a guest)"),
        "{shown}"
    );
    // The guest was given the ring doorbell's port (registered as an
    // ioeventfd), and its rings woke the recorder.
    let cmdline = run.kernel_cmdline();
    assert!(cmdline.contains("schedtape.doorbell=0x"), "{cmdline}");
    assert!(cmdline.contains("schedtape.ring="), "{cmdline}");
    let wakeups: Vec<u64> = e2e::pick(&run.records(), |r| match r {
        Record::Console(c) if c.source == ConsoleSource::Host => c
            .line
            .strip_prefix("ring doorbell: the guest woke the recorder ")
            .and_then(|n| n.strip_suffix(" times"))
            .and_then(|n| n.parse().ok()),
        _ => None,
    });
    assert!(
        matches!(wakeups[..], [n] if n > 0),
        "no doorbell wake-ups noted: {wakeups:?}\n{}",
        run.log()
    );
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn the_guest_sees_the_topology_our_vmm_gives_it() {
    // SMT, two LLCs, two NUMA nodes (our CPUID, MADT and SRAT), and four cores.
    for topology in ["1n2l2c2t", "2n1l2c1t", "2n2l1c2t", "1n1l4c1t"] {
        let Some(run) = check(&format!("topology-{topology}")) else {
            return;
        };
        passed(&run);
        expect::topology_run(&run, topology);
        let lines = expect::topology_lines(&run.records());
        assert!(lines[0].contains("as asked"), "{topology}: {lines:?}");
    }
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn kaslr_snapshots_freezes_and_kernel_access_work_on_our_vmm() {
    let Some(run) = check("introspect-kaslr") else {
        return;
    };
    passed(&run);
    // Snapshots of every CPU with vCPUs frozen and thawed, hot and cold
    // reads and writes (each write read back, and changing preemption).
    let (slide, phys_base) = expect::introspect_run(&run);
    assert!(slide != 0 || phys_base != 0, "the kernel was not relocated");
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn no_kaslr_snapshots_freezes_and_kernel_access_work_on_our_vmm() {
    let Some(run) = check("introspect-no-kaslr") else {
        return;
    };
    passed(&run);
    assert_eq!(expect::introspect_run(&run), (0, 0));
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn our_scheduler_attaches_replaces_and_detaches_on_our_vmm() {
    let Some(run) = check("sched-lifecycle") else {
        return;
    };
    passed(&run);
    expect::sched_lifecycle(&run);
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn a_kernel_panic_closes_the_trace_with_the_reason_on_our_vmm() {
    let Some(run) = check("panic") else { return };
    assert_eq!(run.code(), Some(3), "{}", run.log());
    expect::ends_in_kernel_panic(&run);
    ran_on_our_vmm_in_l1(&run);
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn a_hung_guest_hits_the_watchdog_on_our_vmm() {
    let Some(run) = check("hang") else { return };
    assert_eq!(run.code(), Some(3), "{}", run.log());
    expect::ends_in_timeout(&run);
    ran_on_our_vmm_in_l1(&run);
}

#[test]
#[ignore = "boots L1 under TCG and our VMM in it: run through `cargo xtask test --nested`"]
fn cgroup_freeze_and_thaw_work_on_our_vmm() {
    let Some(run) = check("ops-cgroups") else {
        return;
    };
    passed(&run);
    assert_eq!(expect::end(&run), RunOutcome::Completed);
    expect::cgroup_freeze_thaw(&run.records());
}
