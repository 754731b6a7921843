//! Platform layer: the firmware and devices of a PowerNV machine.
pub mod opal;
