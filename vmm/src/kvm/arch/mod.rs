//! x86_64 layout constants and pure writers (no KVM needed to test them).
pub mod acpi;
pub mod boot;
pub mod cpuid;
pub mod layout;
pub mod mptable;
pub mod regs;
