//! Host side of schedtape: VM backends, the guest transport, and recording a
//! run into a trace file.
//!
//! - [`backend`]: the interface every hypervisor backend provides.
//! - [`child`]: child processes (QEMU) that die with this process.
//! - [`qemu`]: the QEMU backend (TCG here, KVM where hardware allows).
//! - [`run`]: boots a guest, drains its ring into a trace, enforces the watchdog.
//! - [`test_skip`]: how tests skip for a missing prerequisite, for `cargo xtask test`.
pub mod backend;
pub mod child;
pub mod console;
pub mod host;
pub mod introspect;
pub mod kvm;
pub mod linux_run;
pub mod numa;
pub mod qemu;
pub mod run;
pub mod test_init;
pub mod test_skip;
