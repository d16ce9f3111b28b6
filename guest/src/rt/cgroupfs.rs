//! cgroup v2 file-system operations on the executor's cgroups.
//!
//! Scenario cgroups live under [`PARENT`]; the executor itself stays in the
//! root cgroup (which is exempt from the no-internal-process rule). Every
//! error names the cgroup, the file and the value.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rustix::io::Errno;

use super::sys;
use crate::errno;
use crate::procfs;

/// The cgroup2 mount.
pub const ROOT: &str = "/sys/fs/cgroup";
/// The parent of every scenario cgroup.
pub const PARENT: &str = "/sys/fs/cgroup/schedtape";
/// Controllers the executor enables, in this order.
pub const CONTROLLERS: [&str; 5] = ["cpuset", "cpu", "memory", "io", "pids"];

/// `PARENT/<name>/<file>` (or `PARENT/<name>` for an empty file).
pub fn path(name: &str, file: &str) -> String {
    if file.is_empty() {
        format!("{PARENT}/{name}")
    } else {
        format!("{PARENT}/{name}/{file}")
    }
}

fn describe(e: Errno) -> impl core::fmt::Display {
    errno::describe(e.raw_os_error())
}

/// Enables the controllers in the root and creates [`PARENT`] with them.
/// Returns one line per controller that could not be enabled.
pub fn setup_parent() -> Vec<String> {
    let mut problems = Vec::new();
    let mut enabled = Vec::new();
    let root_ctl = format!("{ROOT}/cgroup.subtree_control");
    for c in CONTROLLERS {
        match sys::write_file(&root_ctl, format!("+{c}").as_bytes()) {
            Ok(()) => enabled.push(c),
            Err(e) => problems.push(format!("controller {c} unavailable: {}", describe(e))),
        }
    }
    match sys::mkdir(PARENT) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => problems.push(format!("cannot create {PARENT}: {}", describe(e))),
    }
    let ctl = format!("{PARENT}/cgroup.subtree_control");
    for c in enabled {
        if let Err(e) = sys::write_file(&ctl, format!("+{c}").as_bytes()) {
            problems.push(format!(
                "controller {c} not enabled under {PARENT}: {}",
                describe(e)
            ));
        }
    }
    problems
}

/// Creates cgroup `name` (it must not exist yet).
pub fn create(name: &str) -> Result<(), String> {
    sys::mkdir(&path(name, ""))
        .map_err(|e| format!("cgroup {name:?}: mkdir failed: {}", describe(e)))
}

/// Writes `value` to `<name>/<file>`.
pub fn write(name: &str, file: &str, value: &str) -> Result<(), String> {
    let data = if value.is_empty() { "\n" } else { value };
    sys::write_file(&path(name, file), data.as_bytes()).map_err(|e| {
        format!(
            "cgroup {name:?}: writing {value:?} to {file} failed: {}",
            describe(e)
        )
    })
}

/// The CPUs a scenario cgroup gets when it "inherits": [`PARENT`]'s effective
/// cpuset. (The kernel refuses an empty `cpuset.cpus` on a populated cgroup.)
pub fn inherited_cpus(fallback: &str) -> String {
    let mut buf = [0u8; 512];
    match sys::read_into(&format!("{PARENT}/cpuset.cpus.effective"), &mut buf) {
        Ok(n) if n > 1 => String::from(core::str::from_utf8(&buf[..n]).unwrap_or(fallback).trim()),
        _ => String::from(fallback),
    }
}

/// Appends the PIDs in `cgroup.procs` of `name` (root cgroup for `None`) to `out`.
pub fn procs(name: Option<&str>, out: &mut Vec<u32>) -> Result<(), String> {
    let p = match name {
        Some(n) => path(n, "cgroup.procs"),
        None => format!("{ROOT}/cgroup.procs"),
    };
    let text = sys::read_all(&p).map_err(|e| {
        format!(
            "cgroup {:?}: reading cgroup.procs failed: {}",
            name.unwrap_or(""),
            describe(e)
        )
    })?;
    procfs::parse_pids(&text, out);
    Ok(())
}

/// Moves one process into `name`.
pub fn add_pid(name: &str, pid: u32) -> Result<(), String> {
    write(name, "cgroup.procs", &format!("{pid}"))
}

/// Writes `cgroup.freeze` and waits (up to 2 s) until `cgroup.events` agrees.
pub fn set_frozen(name: &str, frozen: bool) -> Result<(), String> {
    write(name, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let events = path(name, "cgroup.events");
    let deadline = sys::now_ns() + 2_000_000_000;
    let mut buf = [0u8; 256];
    loop {
        let n = sys::read_into(&events, &mut buf).unwrap_or(0);
        if procfs::parse_frozen(&buf[..n]) == Some(frozen) {
            return Ok(());
        }
        if sys::now_ns() > deadline {
            return Err(format!(
                "cgroup {name:?}: cgroup.events did not report frozen {} within 2 s",
                u8::from(frozen)
            ));
        }
        sys::sleep_ns(1_000_000);
    }
}

/// Removes cgroup `name`, first killing whatever still runs in it.
pub fn remove(name: &str) -> Result<(), String> {
    let dir = path(name, "");
    let mut pids = Vec::new();
    for attempt in 0..400 {
        match sys::rmdir(&dir) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::BUSY) if attempt < 399 => {}
            Err(e) => return Err(format!("cgroup {name:?}: rmdir failed: {}", describe(e))),
        }
        if attempt == 0 {
            // A frozen cgroup's tasks still die from SIGKILL, but thaw it anyway.
            let _ = sys::write_file(&path(name, "cgroup.freeze"), b"0");
        }
        pids.clear();
        let _ = procs(Some(name), &mut pids);
        for &pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        sys::sleep_ns(5_000_000);
    }
    Err(format!("cgroup {name:?}: still busy after 2 s"))
}
