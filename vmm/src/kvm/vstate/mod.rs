//! Thin KVM wrappers: the VM and the vCPU threads with their freeze rendezvous.
pub mod activity;
pub mod vcpu;
pub mod vm;
