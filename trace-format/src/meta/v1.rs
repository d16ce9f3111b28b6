//! The schema 1 meta frame, read so that traces written before schema 2 open.
//!
//! Postcard is positional: schema 2 added `Scenario::thresholds`, so schema 1
//! bytes decode only through these copies of the old shapes.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::{Backend, HostFingerprint, KernelIdentity, Meta, SchedulerIdentity};
use crate::scenario::{
    Backdrop, PayloadSpec, Scenario, SchedulerSpec, StagedScheduler, Step, Topology,
};

/// `Scenario` as of schema 1 (no thresholds).
#[derive(Deserialize)]
struct ScenarioV1 {
    name: String,
    description: String,
    topology: Topology,
    duration_ns: u64,
    settle_ns: u64,
    sample_interval_ns: u64,
    snapshot_interval_ns: u64,
    scheduler: SchedulerSpec,
    staged_schedulers: Vec<StagedScheduler>,
    payloads: Vec<PayloadSpec>,
    backdrop: Backdrop,
    steps: Vec<Step>,
}

/// `Meta` as of schema 1.
#[derive(Deserialize)]
pub(super) struct MetaV1 {
    schema_version: u16,
    writer: String,
    run_id: [u8; 16],
    started_unix_ns: u64,
    scenario: ScenarioV1,
    kernel: KernelIdentity,
    scheduler: Option<SchedulerIdentity>,
    topology: Topology,
    backend: Backend,
    host: HostFingerprint,
    sample_interval_ns: u64,
    snapshot_interval_ns: u64,
    notes: Vec<String>,
}

impl From<MetaV1> for Meta {
    /// The same run; `schema_version` stays 1 so readers can tell.
    fn from(m: MetaV1) -> Meta {
        let s = m.scenario;
        Meta {
            schema_version: m.schema_version,
            writer: m.writer,
            run_id: m.run_id,
            started_unix_ns: m.started_unix_ns,
            scenario: Scenario {
                name: s.name,
                description: s.description,
                topology: s.topology,
                duration_ns: s.duration_ns,
                settle_ns: s.settle_ns,
                sample_interval_ns: s.sample_interval_ns,
                snapshot_interval_ns: s.snapshot_interval_ns,
                scheduler: s.scheduler,
                staged_schedulers: s.staged_schedulers,
                payloads: s.payloads,
                backdrop: s.backdrop,
                steps: s.steps,
                thresholds: None,
            },
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
