//! Virtual I/O (VIO) devices: the transports and device models behind the
//! `/vdevice` nodes of a partition.
pub mod crq;
pub mod vscsi;
