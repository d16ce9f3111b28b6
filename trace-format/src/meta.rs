//! Run metadata written once at the start of every trace file.
//!
//! The meta frame carries everything needed to understand and repeat a run: the
//! full scenario, the kernel and scheduler identities, the topology and backend.
//! New fields go at the end of a struct, and `schema_version` is bumped; the
//! old shape is kept (as in [`v1`]) so older traces still open.
//!
//! Schema 2 added `Scenario::thresholds`; schema 3 added `Meta::acceleration`.

mod v1;
mod v2;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::file::ReadError;
use crate::scenario::{Scenario, Topology};

/// Version of the meta and record schema this crate writes.
pub const SCHEMA_VERSION: u16 = 3;
/// Oldest schema this crate reads.
pub const OLDEST_SCHEMA_VERSION: u16 = 1;

/// Everything known about a run before its first record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub schema_version: u16,
    /// The program that wrote the trace, e.g. `schedtape 0.1.0`.
    pub writer: String,
    /// Random identifier of this run.
    pub run_id: [u8; 16],
    /// Wall-clock start, ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// The scenario exactly as run.
    pub scenario: Scenario,
    pub kernel: KernelIdentity,
    /// `None` means the kernel's own scheduler (EEVDF).
    pub scheduler: Option<SchedulerIdentity>,
    pub topology: Topology,
    pub backend: Backend,
    pub host: HostFingerprint,
    /// Worker sampling interval, ns.
    pub sample_interval_ns: u64,
    /// Host snapshot interval, ns; 0 when snapshots are off.
    pub snapshot_interval_ns: u64,
    /// Things the reader should know, e.g. which snapshot fields this kernel lacks.
    pub notes: Vec<String>,
    /// How the guest's instructions ran; `None` when unknown (schema 1 and 2
    /// traces, synthetic runs).
    pub acceleration: Option<Acceleration>,
}

impl Meta {
    /// Decodes a meta frame body of any schema from [`OLDEST_SCHEMA_VERSION`]
    /// to [`SCHEMA_VERSION`]; `schema_version` keeps the number in the file.
    pub fn decode(body: &[u8]) -> Result<Meta, ReadError> {
        // The schema version is the first field, whatever the schema.
        let (schema, _) = postcard::take_from_bytes::<u16>(body).map_err(ReadError::MetaDecode)?;
        match schema {
            1 => postcard::from_bytes::<v1::MetaV1>(body).map(Meta::from),
            2 => postcard::from_bytes::<v2::MetaV2>(body).map(Meta::from),
            SCHEMA_VERSION => postcard::from_bytes::<Meta>(body),
            _ => return Err(ReadError::UnsupportedSchema { schema }),
        }
        .map_err(ReadError::MetaDecode)
    }
}

/// Which guest kernel ran.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KernelIdentity {
    /// `uname -r` of the guest kernel.
    pub release: String,
    /// GNU build-id of the vmlinux, empty when unknown.
    pub build_id: Vec<u8>,
    /// Hash of the kernel `.config`, hex, empty when unknown.
    pub config_hash: String,
}

/// Which sched_ext scheduler ran at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerIdentity {
    pub name: String,
    pub sha256: [u8; 32],
    pub args: Vec<String>,
}

/// The hypervisor backend that ran the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// schedtape's own KVM VMM.
    Kvm,
    /// QEMU with the named accelerator (`kvm` or `tcg`).
    Qemu { accel: String },
    /// Not a VM run: synthesized by a test or tool.
    Synthetic,
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Backend::Kvm => f.write_str("kvm"),
            Backend::Qemu { accel } => write!(f, "qemu ({accel})"),
            Backend::Synthetic => f.write_str("synthetic"),
        }
    }
}

/// How the guest's instructions ran: what a timing measurement of the run
/// can be trusted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acceleration {
    /// QEMU TCG: every guest instruction translated (slow, yet evenly so:
    /// the default timing thresholds hold under it and are judged).
    Tcg,
    /// KVM on the host CPU's own virtualisation extensions.
    KvmHardware,
    /// Hardware-backed KVM inside a guest (nested virtualisation): vCPUs
    /// stall whenever the outer hypervisor does not run them.
    KvmNested,
    /// KVM that emulates guest instructions (PVM).
    KvmEmulated,
}

impl Acceleration {
    /// True when the run's absolute times cannot be held to the timing
    /// thresholds (nested or emulated KVM).
    pub fn timing_untrusted(self) -> bool {
        matches!(self, Acceleration::KvmNested | Acceleration::KvmEmulated)
    }

    /// How the guest ran, in words (`replay show`).
    pub fn describe(self) -> &'static str {
        match self {
            Acceleration::Tcg => "QEMU TCG (instruction emulation)",
            Acceleration::KvmHardware => "KVM on the CPU's virtualisation extensions",
            Acceleration::KvmNested => "nested KVM (hardware-backed KVM inside a guest)",
            Acceleration::KvmEmulated => "emulated KVM (PVM)",
        }
    }
}

impl core::fmt::Display for Acceleration {
    /// The short name: `QEMU TCG`, `hardware KVM`, `nested KVM`, `emulated KVM`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Acceleration::Tcg => "QEMU TCG",
            Acceleration::KvmHardware => "hardware KVM",
            Acceleration::KvmNested => "nested KVM",
            Acceleration::KvmEmulated => "emulated KVM",
        })
    }
}

/// The host that ran the VM, for judging whether two traces are comparable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostFingerprint {
    pub hostname: String,
    pub cpu_model: String,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Host kernel release.
    pub os: String,
}
