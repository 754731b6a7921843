//! The host XIVE through OPAL, as far as pass-through MSIs need it
//! (docs/passthrough.md "MSI"): exploitation mode (`OPAL_XIVE_RESET`), where
//! a global interrupt's ESB pages are (`OPAL_XIVE_GET_IRQ_INFO`), and the ESB
//! loads the hypervisor polls a source with. skiboot `hw/xive.c` (POWER9),
//! `hw/xive2.c` (Power10); token numbers from `include/opal-api.h`.
//!
//! The sources stay masked in their EAS (reset masks them all) and are held at
//! PQ 10: a device's MSI then only sets Q and never reaches an event queue, so
//! the hypervisor takes no host interrupt; it finds the event by polling the
//! ESB (`vphb::esb_fired`).

use super::{call, real, OpalError};
use crate::be::{Be32, Be64};

const OPAL_XIVE_RESET: u64 = 128;
const OPAL_XIVE_GET_IRQ_INFO: u64 = 129;
/// `OPAL_XIVE_RESET` mode: exploitation (POWER9's skiboot starts in XICS
/// emulation, where the other OPAL_XIVE calls answer OPAL_WRONG_STATE;
/// Power10's has only exploitation).
const OPAL_XIVE_MODE_EXPL: u64 = 1;
/// `OPAL_XIVE_GET_IRQ_INFO` flags.
pub const IRQ_STORE_EOI: u64 = 0x2;
pub const IRQ_LSI: u64 = 0x4;

/// Switches the host XIVE to exploitation mode, masking every source.
pub fn reset_exploitation() -> Result<(), OpalError> {
    loop {
        match call(OPAL_XIVE_RESET, &[OPAL_XIVE_MODE_EXPL]) {
            Err(OpalError::Busy) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// Where global interrupt `girq`'s ESB is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqInfo {
    pub flags: u64,
    /// Real address of the management (EOI) page.
    pub eoi_page: u64,
    /// Real address of the trigger page, 0 if the source has none.
    pub trigger_page: u64,
    /// log2 of the ESB page size.
    pub shift: u32,
}

pub fn irq_info(girq: u32) -> Result<IrqInfo, OpalError> {
    let flags = Be64::ZERO;
    let eoi = Be64::ZERO;
    let trig = Be64::ZERO;
    let shift = Be32::new(0);
    let chip = Be32::new(0);
    call(
        OPAL_XIVE_GET_IRQ_INFO,
        &[
            u64::from(girq),
            real(&flags),
            real(&eoi),
            real(&trig),
            real(&shift),
            real(&chip),
        ],
    )?;
    // SAFETY: OPAL wrote the values through the real addresses; read them
    // volatile so the compiler does not assume they are still zero.
    let read64 = |v: &Be64| unsafe { core::ptr::read_volatile(v) }.get();
    // SAFETY: as above.
    let read32 = |v: &Be32| unsafe { core::ptr::read_volatile(v) }.get();
    Ok(IrqInfo {
        flags: read64(&flags),
        eoi_page: read64(&eoi),
        trigger_page: read64(&trig),
        shift: read32(&shift),
    })
}

/// An 8-byte ESB load at `offset` (0x800 reads PQ, 0xC00..0xF00 set PQ to
/// 00..11) on the management page at real `page`; returns the old PQ.
///
/// The page must be one [`irq_info`] gave for a source the hypervisor owns:
/// `init` maps every pass-through-capable PHB's MSI ESB pages caching-inhibited
/// and guarded (`mm::LINEAR_BASE` + real).
pub fn esb_load(page: u64, offset: u64) -> u64 {
    let va = crate::mm::LINEAR_BASE | (page + (offset & 0xff8));
    // SAFETY: `page` is an ESB management page mapped as device memory for
    // the hypervisor's life (see above); an ESB load has no effect beyond the
    // source's PQ bits, which the hypervisor owns.
    u64::from_be(unsafe { core::ptr::read_volatile(va as *const u64) })
}
