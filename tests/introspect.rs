//! Host-side kernel introspection under QEMU: snapshots of pinned workers,
//! hot/cold kernel access, KASLR on and off, and refusing a wrong vmlinux.
use e2e::expect::snapshots;
use e2e::{pick, project_kernel_dir, run_scenario};
use trace_format::record::{OpOutcome, Record, RunOutcome};

/// Runs the `introspect` scenario and checks its trace; returns the KASLR placement.
fn check_introspect_run(extra: &[&str]) -> (u64, u64) {
    let run = run_scenario("introspect", extra);
    assert_eq!(run.code(), Some(0), "{}", run.log());
    e2e::expect::introspect_run(&run)
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn kaslr_snapshots_and_kernel_access_work() {
    let (slide, phys_base) = check_introspect_run(&[]);
    // KASLR randomises both; both staying at zero is a ~1 in 10^5 event.
    assert!(slide != 0 || phys_base != 0, "the kernel was not relocated");
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn no_kaslr_snapshots_and_kernel_access_work() {
    let (slide, phys_base) = check_introspect_run(&["--no-kaslr"]);
    assert_eq!((slide, phys_base), (0, 0));
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn wrong_vmlinux_is_refused() {
    let vmlinux = project_kernel_dir().join("vmlinux");
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&vmlinux).unwrap();
    let id = vmm::introspect::elf::read_build_id(&vmlinux).unwrap();
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .expect("build-id bytes in the file");
    bytes[at] ^= 0xff;
    let wrong = dir.path().join("vmlinux");
    std::fs::write(&wrong, &bytes).unwrap();
    drop(bytes);
    let wrong_key = vmm::introspect::source::read_key(&wrong).unwrap();
    let run = run_scenario("smoke", &["--vmlinux", wrong.to_str().unwrap()]);
    // The junk layout must not linger in the cache.
    if let Some(cache) = vmm::introspect::cache::default_dir() {
        let _ = std::fs::remove_file(vmm::introspect::cache::path_for(&cache, &wrong_key));
    }
    assert_eq!(run.code(), Some(3), "{}", run.log());
    assert!(
        run.stderr().contains("is not the running kernel"),
        "{}",
        run.stderr()
    );
    let records = run.records();
    let Some(Record::End(RunOutcome::HostError { message })) = records.last().map(|t| &t.record)
    else {
        panic!("run did not end with a host error: {:?}", records.last());
    };
    assert!(message.contains("refusing the vmlinux"), "{message}");
    assert!(
        snapshots(&records).is_empty(),
        "no snapshot from a wrong vmlinux"
    );
}

#[test]
#[ignore = "boots a VM: run through `cargo xtask test`"]
fn watch_snapshot_is_a_clear_error_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("watch.toml");
    std::fs::write(
        &scenario,
        "name = \"watch\"\ndescription = \"watch_snapshot on QEMU\"\ntopology = \"1n1l1c1t\"\n\
         duration = \"200ms\"\n\n[[steps]]\nhold = \"200ms\"\n\
         ops = [{ watch_snapshot = { symbol = \"sysctl_sched_base_slice\" } }]\n",
    )
    .unwrap();
    let run = run_scenario(scenario.to_str().unwrap(), &[]);
    assert_eq!(run.code(), Some(3), "{}", run.log());
    let records = run.records();
    let errors = pick(&records, |r| match r {
        Record::OpApplied(o) => match &o.outcome {
            OpOutcome::Failed { error } => Some(error.clone()),
            _ => None,
        },
        _ => None,
    });
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unsupported on the QEMU backend")),
        "{errors:?}"
    );
}
