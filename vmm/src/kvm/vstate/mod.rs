//! Thin KVM wrappers: the VM and the vCPU threads with their freeze rendezvous.
pub mod vcpu;
pub mod vm;
