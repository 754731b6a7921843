//! The hvterm1 console as a VIO device: unit address 0x71000000 (the first on
//! the bus), LISN 0x1000, no DMA window (H_PUT_TERM_CHAR / H_GET_TERM_CHAR carry
//! the bytes in registers, `papr::hcall`).
//!
//! Its interrupt fires when console input arrives. H_VIO_SIGNAL can turn it off
//! and on like any VIO device's; it starts on, since QEMU's vty pulses its
//! interrupt whatever the signal state and Linux's hvc_vio never enables it.
use alloc::vec::Vec;

use super::{VioDeviceSpec, VioKind, SIGNAL_IRQ};

/// The vty's bus entry.
pub fn spec() -> VioDeviceSpec {
    VioDeviceSpec {
        kind: VioKind::Vty,
        dma_window: None,
        signal_mask: SIGNAL_IRQ,
        signal_reset: SIGNAL_IRQ,
        props: Vec::new(),
    }
}

/// H_PUT_TERM_CHAR / H_GET_TERM_CHAR `term`: the vty's unit address, or 0
/// (Linux's early console uses 0).
pub fn is_vty_term(term: u64) -> bool {
    term == u64::from(super::VIO_REG_BASE) || term == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_numbers() {
        assert!(is_vty_term(0x7100_0000));
        assert!(is_vty_term(0));
        assert!(!is_vty_term(0x7100_0001));
        assert_eq!(spec().kind.dt_name(), "vty");
    }
}
