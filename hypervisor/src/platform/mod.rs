//! Platform layer: the firmware and devices of a PowerNV machine.
pub mod mmio;
pub mod opal;
pub mod virtio_console;
