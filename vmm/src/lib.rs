//! Host side of schedtape: VM backends, the guest transport, and recording a
//! run into a trace file.
//!
//! - [`backend`]: the interface every hypervisor backend provides.
//! - [`child`]: child processes (QEMU) that die with this process.
//! - [`qemu`]: the QEMU backend (TCG here, KVM where hardware allows).
//! - [`run`]: boots a guest, drains its ring into a trace, enforces the watchdog.
pub mod backend;
pub mod child;
pub mod console;
pub mod host;
pub mod introspect;
pub mod kvm;
pub mod numa;
pub mod qemu;
pub mod run;
