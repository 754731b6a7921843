//! Logical partitions: the manifest that describes them, and (on POWER) the LPARs
//! themselves with their vCPUs.
//!
//! Lock order: a partition's `console_line` lock, then the log lock, then
//! `console::lines::STATE`, then the console ring. A partition's console share
//! (`lpar::Partition::console_admit`) is taken alone, and nothing waits for the
//! console while holding any of these (`console::settle`). Console input
//! routing only try-locks a partition's XIVE and XICS (`lpar::vty_input`). vCPU registers are
//! only touched by the hardware thread the vCPU is pinned to; other threads talk to a
//! vCPU through its atomics (state, start request, prod) and a doorbell.
pub mod demand;
pub mod emulate;
pub mod exit_stats;
pub mod facility;
pub mod host_clock;
pub mod host_eq;
pub mod idle;
pub mod manifest;
pub mod snapshot;
pub mod teardown;
pub mod tlb;

#[cfg(target_arch = "powerpc64")]
pub mod hash;
#[cfg(target_arch = "powerpc64")]
pub mod hcall_fast;
#[cfg(target_arch = "powerpc64")]
pub mod hcalls;
#[cfg(target_arch = "powerpc64")]
pub mod hcalls_misc;
#[cfg(target_arch = "powerpc64")]
pub mod host_irq;
#[cfg(target_arch = "powerpc64")]
pub mod lpar;
#[cfg(target_arch = "powerpc64")]
pub mod mmio;
#[cfg(target_arch = "powerpc64")]
pub mod nested;
#[cfg(target_arch = "powerpc64")]
pub mod nvram_host;
#[cfg(target_arch = "powerpc64")]
pub mod passthrough;
#[cfg(target_arch = "powerpc64")]
pub mod pef;
#[cfg(target_arch = "powerpc64")]
pub mod rtas_calls;
#[cfg(target_arch = "powerpc64")]
pub mod tpm;
#[cfg(target_arch = "powerpc64")]
pub mod vcpu;
#[cfg(target_arch = "powerpc64")]
pub mod vio;
#[cfg(target_arch = "powerpc64")]
pub mod xics;
