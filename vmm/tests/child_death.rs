//! Children spawned with `vmm::child::spawn_tied` (QEMU) die with the process
//! that spawned them, even when it is killed with SIGKILL, and not before.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmm::child::spawn_tied;

/// Set in the environment of this test binary re-run as the parent to kill.
const PARENT_ROLE: &str = "SCHEDTAPE_TEST_TIED_PARENT";

fn sleeper() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Whether `pid` is gone: no such process, or a zombie nobody reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits (up to a generous bound, not a timing assertion) for `pid` to go.
fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn kill(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) };
}

/// The parent's role: spawn a tied sleeper, print its pid, wait to be killed.
#[test]
fn tied_parent_role() {
    if std::env::var_os(PARENT_ROLE).is_none() {
        return;
    }
    let mut child = spawn_tied(sleeper()).unwrap();
    println!("child-pid {}", child.id());
    std::thread::sleep(Duration::from_secs(600));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_tied_child_dies_when_its_parent_is_killed_hard() {
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tied_parent_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PARENT_ROLE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(parent.stdout.take().unwrap());
    // libtest prints `test tied_parent_role ... ` before the test's own output.
    let pid: u32 = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("child-pid ")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("the parent prints its child's pid");
    assert!(!gone(pid), "the child runs while its parent does");
    parent.kill().unwrap(); // SIGKILL: no destructor, no handler runs
    parent.wait().unwrap();
    let died = wait_gone(pid);
    if !died {
        kill(pid, libc::SIGKILL);
    }
    assert!(
        died,
        "child {pid} outlived its parent, which was killed with SIGKILL"
    );
}

#[test]
fn a_tied_child_outlives_the_thread_that_spawned_it() {
    // PR_SET_PDEATHSIG fires when the forking thread exits: spawn_tied forks
    // from a thread that lives as long as the process.
    let mut child = std::thread::spawn(|| spawn_tied(sleeper()).unwrap())
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        alive,
        "the child died with the short-lived thread that asked for it"
    );
}
