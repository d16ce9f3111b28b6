//! The guest executor: a static, no_std PID 1 that runs a scenario inside the
//! VM, forks and samples workers, and streams records to the host.
//!
//! The top-level modules are pure logic, unit-tested on the host. The [`rt`]
//! module (feature `executor`) is the runtime: raw syscalls, cgroupfs, workers,
//! the ring transport and the executor loop; `src/main.rs` is its `_start`.
#![no_std]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cgroups;
pub mod cmdline;
pub mod errno;
pub mod irq;
pub mod lines;
pub mod memevents;
pub mod payload_pick;
pub mod procfs;
pub mod sample;
pub mod schedlog;
pub mod stackfmt;
pub mod telemetry;
pub mod text;
pub mod timeline;
pub mod topology;
pub mod wire;
pub mod workplan;

#[cfg(feature = "executor")]
pub mod rt;
