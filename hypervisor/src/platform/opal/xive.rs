//! The host XIVE through OPAL, as far as pass-through MSIs need it
//! (docs/passthrough.md "MSI"): exploitation mode (`OPAL_XIVE_RESET`), where
//! a global interrupt's ESB pages are (`OPAL_XIVE_GET_IRQ_INFO`), and the ESB
//! loads the hypervisor polls a source with. skiboot `hw/xive.c` (POWER9),
//! `hw/xive2.c` (Power10); token numbers from `include/opal-api.h`.
//!
//! A programmed vector's source is routed (`OPAL_XIVE_SET_IRQ_CONFIG`) to a
//! host event queue of the hardware thread running the vCPU its guest source
//! targets (`OPAL_XIVE_SET_QUEUE_INFO`, one queue per such thread at priority
//! 7), and the thread's physical ring takes it: CPPR opened through the TIMA's
//! HV page, acknowledged there (`partition::host_irq`). A source that cannot be
//! routed is held at PQ 10 instead: an MSI only sets Q, which the hypervisor
//! polls (`vphb::esb_fired`).

use super::{call, real, OpalError};
use crate::be::{Be32, Be64};
use core::sync::atomic::{AtomicU64, Ordering};

const OPAL_XIVE_RESET: u64 = 128;
const OPAL_XIVE_GET_IRQ_INFO: u64 = 129;
const OPAL_XIVE_SET_IRQ_CONFIG: u64 = 131;
const OPAL_XIVE_SET_QUEUE_INFO: u64 = 133;
/// `OPAL_XIVE_SET_QUEUE_INFO` flags.
pub const EQ_ENABLED: u64 = 0x1;
pub const EQ_ALWAYS_NOTIFY: u64 = 0x2;
/// `OPAL_XIVE_SET_IRQ_CONFIG` priority that masks the source's EAS.
pub const PRIO_MASKED: u64 = 0xff;
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

/// Enables (or with `log2_size` 0, disables) the event queue of host VP `vp`
/// (a hardware thread: its PIR) at `priority`, at real `page` (zeroed,
/// aligned to its size, `log2_size` bytes). Enabling resets the queue's
/// generation to 1 and its index to 0.
pub fn set_queue_info(
    vp: u32,
    priority: u8,
    page: u64,
    log2_size: u32,
    flags: u64,
) -> Result<(), OpalError> {
    loop {
        match call(
            OPAL_XIVE_SET_QUEUE_INFO,
            &[
                u64::from(vp),
                u64::from(priority),
                page,
                u64::from(log2_size),
                flags,
            ],
        ) {
            Err(OpalError::Busy) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// Routes global interrupt `girq` to host VP `vp`'s queue at `priority`
/// (`PRIO_MASKED`: masked in its EAS), its events carrying `eisn`. OPAL
/// synchronises the source, so an event already on its way lands before the
/// change.
pub fn set_irq_config(girq: u32, vp: u32, priority: u64, eisn: u32) -> Result<(), OpalError> {
    loop {
        match call(
            OPAL_XIVE_SET_IRQ_CONFIG,
            &[u64::from(girq), u64::from(vp), priority, u64::from(eisn)],
        ) {
            Err(OpalError::Busy) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// Real address of the TIMA's HV page (skiboot's `ibm,opal-xive-pe` `reg`
/// entry 1), mapped caching-inhibited and guarded for the hypervisor by
/// `init`; 0 until [`set_tima_hv`].
static TIMA_HV: AtomicU64 = AtomicU64::new(0);

/// Records where the HV TIMA page is (`init` maps it).
pub fn set_tima_hv(page: u64) {
    TIMA_HV.store(page, Ordering::Release);
}

/// The HV TIMA page is known and mapped.
pub fn tima_ready() -> bool {
    TIMA_HV.load(Ordering::Acquire) != 0
}

/// TIMA HV page offsets: the physical ring (QW3) CPPR byte and the 16-bit
/// acknowledge register (NSR, CPPR).
const TM_QW3_CPPR: u64 = 0x31;
const TM_SPC_ACK_HV_REG: u64 = 0x830;

/// Sets this thread's physical-ring CPPR (0xff: every priority may signal;
/// 0: none).
pub fn tima_set_phys_cppr(cppr: u8) {
    let page = TIMA_HV.load(Ordering::Acquire);
    if page == 0 {
        return;
    }
    let va = crate::mm::LINEAR_BASE | (page + TM_QW3_CPPR);
    // SAFETY: the HV TIMA page is mapped as device memory for the hypervisor's
    // life (`set_tima_hv`); every thread sees its own rings there, and a CPPR
    // store only changes which priorities signal this thread.
    unsafe { core::ptr::write_volatile(va as *mut u8, cppr) };
    crate::arch::ppc64::instr::sync();
}

/// Acknowledges this thread's physical ring: returns (NSR << 8) | CPPR as the
/// TIMA gives it (the CPPR becomes the signalled priority, the signal drops).
pub fn tima_ack_phys() -> u16 {
    let page = TIMA_HV.load(Ordering::Acquire);
    if page == 0 {
        return 0;
    }
    let va = crate::mm::LINEAR_BASE | (page + TM_SPC_ACK_HV_REG);
    // SAFETY: as for `tima_set_phys_cppr`; the acknowledge load has no effect
    // beyond this thread's physical ring.
    let v = u16::from_be(unsafe { core::ptr::read_volatile(va as *const u16) });
    // Queue reads after the acknowledge see what the END wrote before it.
    crate::arch::ppc64::instr::sync();
    v
}
