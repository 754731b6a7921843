//! The vty on the partition's VIO bus (`papr::vio::vty`): console input raises
//! its interrupt (device 0, LISN 0x1000) while its H_VIO_SIGNAL state allows.
//! H_PUT_TERM_CHAR / H_GET_TERM_CHAR are in `partition::hcalls`.
use super::super::lpar::{partitions, GuestRam};
use crate::papr::vio::VIO_LISN_BASE;

/// The vty's bus index and interrupt source.
pub const VTY_INDEX: usize = 0;
pub const VTY_LISN: u32 = VIO_LISN_BASE;

/// Console input reached partition `index` (`console::input`): its vty source
/// fires (while its H_VIO_SIGNAL state allows it, see `papr::vio::vty`), as
/// QEMU's vty pulses its interrupt when input arrives. Linux's hvc
/// driver then reads it with H_GET_TERM_CHAR. The source fires in both
/// controllers: the kernel configured only the one it uses; the other's source
/// is unconfigured (XIVE: PQ off, ignored; XICS: masked, only kept pending).
///
/// Routing runs on whichever thread polled the console, often a vCPU of another
/// partition: it only try-locks the target's XIVE and XICS, and a busy one is
/// retried later (`vty_input_retry`, from `console_tick`) rather than waited
/// for (audit finding 8).
pub fn vty_input(index: usize) {
    VTY_XIVE.run(index, &mut vty_xive);
    VTY_XICS.run(index, &mut vty_xics);
}

static VTY_XIVE: crate::console::input::Deferred = crate::console::input::Deferred::new();
static VTY_XICS: crate::console::input::Deferred = crate::console::input::Deferred::new();

fn vty_xive(index: usize) -> bool {
    let Some(p) = partitions().get(index) else {
        return true;
    };
    if !p.vio.bus.irq_enabled(VTY_INDEX) {
        return true;
    }
    match p.xive.try_with(|x| x.trigger(&mut GuestRam(p), VTY_LISN)) {
        None => false,
        Some(kick) => {
            if let Some(k) = kick {
                super::super::hcalls::kick_vcpu(p, k.vcpu);
            }
            true
        }
    }
}

fn vty_xics(index: usize) -> bool {
    partitions().get(index).is_none_or(|p| {
        !p.vio.bus.irq_enabled(VTY_INDEX)
            || super::super::xics::try_with_xics(p, |x| {
                let _ = x.trigger(VTY_LISN);
            })
            .is_some()
    })
}

/// Delivers the vty interrupts `vty_input` had to defer.
pub fn vty_input_retry() {
    VTY_XIVE.retry(&mut vty_xive);
    VTY_XICS.retry(&mut vty_xics);
}
