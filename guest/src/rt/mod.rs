//! The runtime (feature `executor`): everything that makes system calls.
//!
//! - [`sys`]: raw syscalls rustix keeps private, clocks, whole-file I/O.
//! - [`transport`]: the ring to the host (or the console in debug mode).
//! - [`cgroupfs`]: cgroup v2 directories and controller files.
//! - [`worker`] and [`work`] (with [`work_sync`], [`work_churn`]): forking
//!   workers and what they run.
//! - [`payload`]: staged programs started by ops; [`irq`]: IRQ steering.
//! - [`sched`]: sched_ext schedulers (start, watch, stop) and BPF map pins.
//! - [`sampler`]: per-worker samples from /proc and the telemetry page.
//! - [`ops`]: applying scenario ops; [`executor`]: the whole run.

pub mod cgroupfs;
pub mod executor;
pub mod irq;
pub mod ops;
pub mod payload;
pub mod sampler;
pub mod sched;
pub mod sys;
pub mod transport;
pub mod work;
pub mod work_churn;
pub mod work_sync;
pub mod worker;
