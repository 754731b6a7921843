//! The sPAPR platform partitions see: hcalls, RTAS, the guest device tree.
pub mod guest_fdt;
pub mod hcall;
pub mod hcall_misc;
pub mod nested;
pub mod nvram;
pub mod rtas;
pub mod sysparm;
pub mod vio;
pub mod vphb;
pub mod xics;
