//! The runtime (feature `executor`): everything that makes system calls.
//!
//! - [`sys`]: raw syscalls rustix keeps private, clocks, whole-file I/O.
//! - [`transport`]: the ring to the host (or the console in debug mode).
//! - [`cgroupfs`]: cgroup v2 directories and controller files.
//! - [`worker`] and [`work`]: forking workers and what they run.
//! - [`sampler`]: per-worker samples from /proc and the telemetry page.
//! - [`ops`]: applying scenario ops; [`executor`]: the whole run.

pub mod cgroupfs;
pub mod executor;
pub mod ops;
pub mod sampler;
pub mod sys;
pub mod transport;
pub mod work;
pub mod worker;
