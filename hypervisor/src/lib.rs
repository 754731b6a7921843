//! Paprika: a type-1 hypervisor for IBM POWER9 and Power10 in PowerNV mode.
//!
//! Portable logic (device-tree parsing, frame allocation, radix page-table building,
//! formatting of the fault report) compiles and is unit-tested on the host. Only
//! `arch::ppc64` and `platform::opal` touch instructions, SPRs, MMIO and firmware; they
//! are compiled for `target_arch = "powerpc64"` only.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod be;
pub mod bundle;
pub mod console;
pub mod fault;
pub mod fdt;
pub mod loader;
pub mod log;
pub mod mm;
pub mod papr;
pub mod partition;
pub mod pci;
pub mod sync;
pub mod uv;
pub mod virtio;
pub mod xive;

#[cfg(test)]
mod testutil;

#[cfg(target_arch = "powerpc64")]
pub mod arch;
#[cfg(target_arch = "powerpc64")]
pub mod init;
#[cfg(target_arch = "powerpc64")]
pub mod platform;
