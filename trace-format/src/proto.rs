//! Messages carried by the ring: guest→host on the up ring, host→guest on the down ring.
//!
//! Each ring frame holds one postcard-encoded message. Like [`crate::record::Record`],
//! both enums are append-only. Guest timestamps are ns since the executor started
//! (its `CLOCK_MONOTONIC` minus the value in [`GuestMsg::Hello`]); the host places
//! its own records on the same time base using the hello as the anchor.

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::record::{AccessKind, Record, StepRef};

/// Protocol version carried in the hello; the host refuses others.
pub const PROTOCOL_VERSION: u16 = 1;

/// Guest → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GuestMsg {
    /// First message: the executor is running.
    Hello {
        protocol: u16,
        /// Guest `CLOCK_MONOTONIC` at executor start, ns (time since kernel boot).
        boot_to_init_ns: u64,
        /// `uname -r` inside the guest.
        kernel_release: String,
    },
    /// A record for the trace, stamped in guest time.
    Record { ts_ns: u64, record: Record },
    /// Something only the host can do; answered by [`HostMsg::Reply`] with the same id.
    Request { id: u32, request: HostRequest },
    /// The executor wrote `End` and is about to reboot.
    Goodbye,
}

/// Work the guest asks of the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HostRequest {
    /// Freeze, read every CPU's run queue, thaw, and record a snapshot.
    Snapshot { step: StepRef, op: u16 },
    /// Read or write a kernel variable by symbol.
    KernelAccess {
        step: StepRef,
        op: u16,
        kind: AccessKind,
        symbol: String,
        cpu: Option<u16>,
        width: u8,
        value: u64,
    },
    /// Snapshot whenever the kernel writes `symbol` (a hardware write watchpoint);
    /// the reply carries the watch id.
    Watch {
        step: StepRef,
        op: u16,
        symbol: String,
    },
}

/// Host → guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HostMsg {
    /// The answer to request `id`: a value (0 when there is none) or an error.
    Reply {
        id: u32,
        result: Result<u64, String>,
    },
    /// Stop the scenario now (watchdog, Ctrl-C): tear down, write `End`, reboot.
    Stop { reason: String },
}
