//! The schedtape schema shared by the guest, the VMM and `replay`.
//!
//! - [`scenario`]: what a run does (steps, cgroups, workers, ops), with validation.
//! - [`record`]: what happened, as an append-only enum of integer-only records.
//! - [`meta`]: the run's identity, written once at the start of a trace.
//! - [`metrics`]: per-step, per-cgroup summaries computed from records.
//! - [`file`]: the chunked, CRC-checked, crash-tolerant trace file.
//! - [`ring`] and [`proto`]: the guest↔host transport and its messages.
//! - [`crc32c`]: the checksum both the transport and the file use.
#![no_std]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod checksum;
pub mod file;
pub mod meta;
pub mod metrics;
pub mod proto;
pub mod record;
pub mod ring;
pub mod scenario;

pub use checksum::crc32c;
