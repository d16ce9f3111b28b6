//! The schema 2 meta frame, read so that traces written before schema 3 open.
//!
//! Postcard is positional: schema 3 appended `Meta::acceleration`, so schema 2
//! bytes decode only through this copy of the old shape.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::{Backend, HostFingerprint, KernelIdentity, Meta, SchedulerIdentity};
use crate::scenario::{Scenario, Topology};

/// `Meta` as of schema 2 (no acceleration).
#[derive(Deserialize)]
pub(super) struct MetaV2 {
    schema_version: u16,
    writer: String,
    run_id: [u8; 16],
    started_unix_ns: u64,
    scenario: Scenario,
    kernel: KernelIdentity,
    scheduler: Option<SchedulerIdentity>,
    topology: Topology,
    backend: Backend,
    host: HostFingerprint,
    sample_interval_ns: u64,
    snapshot_interval_ns: u64,
    notes: Vec<String>,
}

impl From<MetaV2> for Meta {
    /// The same run, acceleration unknown; `schema_version` stays 2.
    fn from(m: MetaV2) -> Meta {
        Meta {
            schema_version: m.schema_version,
            writer: m.writer,
            run_id: m.run_id,
            started_unix_ns: m.started_unix_ns,
            scenario: m.scenario,
            kernel: m.kernel,
            scheduler: m.scheduler,
            topology: m.topology,
            backend: m.backend,
            host: m.host,
            sample_interval_ns: m.sample_interval_ns,
            snapshot_interval_ns: m.snapshot_interval_ns,
            notes: m.notes,
            acceleration: None,
        }
    }
}
