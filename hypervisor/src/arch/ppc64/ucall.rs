//! Ultracalls: `sc 2` with r3 = the UV_* number, arguments in r4 onwards, the
//! U_* status back in r3 (Linux `asm/ultravisor.h` `ucall_norets`,
//! `Documentation/powerpc/ultravisor.rst`). Used only when the host device tree
//! has `ibm,ultravisor` ([`set_present`], from `fdt::host`): on a machine without
//! one a hypervisor's `sc 2` is not an ultracall (hardware without PEF takes it as
//! `sc 1`, a system call to itself; QEMU's TCG as `sc 0`).
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::uv::{self, Ultravisor, UvError};

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Records whether an ultravisor runs (the host tree's `ibm,ultravisor`), once,
/// before the MMU is built.
pub fn set_present(yes: bool) {
    PRESENT.store(yes, Ordering::Release);
}

pub fn present() -> bool {
    PRESENT.load(Ordering::Acquire)
}

/// The ultravisor through `sc 2`. Only handed out when one is present.
#[derive(Debug)]
pub struct Ucall(());

impl Ucall {
    pub fn get() -> Option<Ucall> {
        present().then_some(Ucall(()))
    }
}

/// One ultracall with up to six arguments; r3 after it.
fn ucall(op: u64, a: [u64; 6]) -> i64 {
    let r3: u64;
    // SAFETY: only reached with an ultravisor present (`Ucall::get`), where
    // `sc 2` from hypervisor state is the ultracall instruction; the UV returns
    // with the status in r3 and may clobber the volatile registers, all declared.
    unsafe {
        asm!("sc 2",
            inlateout("r3") op => r3,
            inlateout("r4") a[0] => _, inlateout("r5") a[1] => _,
            inlateout("r6") a[2] => _, inlateout("r7") a[3] => _,
            inlateout("r8") a[4] => _, inlateout("r9") a[5] => _,
            out("r10") _, out("r11") _, out("r12") _, out("r0") _,
            out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack));
    }
    r3 as i64
}

/// One ultracall returning a value in r5 (UV_RESTRICTED_SPR_READ: the
/// open-power UV stores the register into the caller's r5): (r3, r5).
fn ucall_ret1(op: u64, a0: u64) -> (i64, u64) {
    let (r3, r5): (u64, u64);
    // SAFETY: as `ucall`.
    unsafe {
        asm!("sc 2",
            inlateout("r3") op => r3,
            inlateout("r4") a0 => _,
            out("r5") r5, out("r6") _, out("r7") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _, out("r12") _, out("r0") _,
            out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack));
    }
    (r3 as i64, r5)
}

/// The guest's debug registers as a vCPU's lazy registers are loaded:
/// `mtspr` without an ultravisor, UV_RESTRICTED_SPR_WRITE with one
/// (`uv::host::write_debug_sprs`).
pub fn write_debug_sprs(ciabr: u64, dawr0: u64, dawrx0: u64) {
    use crate::uv::host;
    write_debug(&[
        (host::SPR_CIABR, ciabr),
        (host::SPR_DAWR0, dawr0),
        (host::SPR_DAWRX0, dawrx0),
    ]);
}

/// Writes guest debug registers `values` ((SPR number, value): CIABR, DAWR0,
/// DAWRX0 only), through the ultravisor when there is one.
pub fn write_debug(values: &[(u32, u64)]) {
    use crate::uv::host;
    let mut uc = Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn Ultravisor);
    let r = host::write_debug_sprs(uv, values, |spr, v| {
        // SAFETY: guest-owned watchpoints; they match guest addresses only
        // (the values were checked by H_SET_MODE, as KVM-HV checks them).
        unsafe {
            match spr {
                host::SPR_CIABR => super::spr::ciabr::write(v),
                host::SPR_DAWR0 => super::spr::dawr0::write(v),
                _ => super::spr::dawrx0::write(v),
            }
        }
    });
    if let Err(e) = r {
        crate::warn!("UV_RESTRICTED_SPR_WRITE refused: {:?}", e.error);
    }
}

/// The guest's debug registers as a vCPU's lazy registers are saved: (CIABR,
/// DAWR0, DAWRX0), through the ultravisor when there is one.
pub fn read_debug_sprs() -> (u64, u64, u64) {
    use crate::uv::host;
    let mut uc = Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn Ultravisor);
    let [c, d, x] = host::read_debug_sprs(
        uv,
        [host::SPR_CIABR, host::SPR_DAWR0, host::SPR_DAWRX0],
        |spr| match spr {
            host::SPR_CIABR => super::spr::ciabr::read(),
            host::SPR_DAWR0 => super::spr::dawr0::read(),
            _ => super::spr::dawrx0::read(),
        },
    );
    (c, d, x)
}

fn status(rc: i64) -> Result<(), UvError> {
    // An undocumented status is treated as a refusal of the arguments.
    UvError::from_code(rc).unwrap_or(Err(UvError::Parameter))
}

impl Ultravisor for Ucall {
    fn write_pate(&mut self, lpid: u32, dw0: u64, dw1: u64) -> Result<(), UvError> {
        status(ucall(
            uv::UV_WRITE_PATE,
            [u64::from(lpid), dw0, dw1, 0, 0, 0],
        ))
    }

    fn register_mem_slot(
        &mut self,
        lpid: u32,
        start_gpa: u64,
        nbytes: u64,
        flags: u64,
        slot: u16,
    ) -> Result<(), UvError> {
        status(ucall(
            uv::UV_REGISTER_MEM_SLOT,
            [
                u64::from(lpid),
                start_gpa,
                nbytes,
                flags,
                u64::from(slot),
                0,
            ],
        ))
    }

    fn unregister_mem_slot(&mut self, lpid: u32, slot: u16) -> Result<(), UvError> {
        status(ucall(
            uv::UV_UNREGISTER_MEM_SLOT,
            [u64::from(lpid), u64::from(slot), 0, 0, 0, 0],
        ))
    }

    fn page_in(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError> {
        status(ucall(
            uv::UV_PAGE_IN,
            [u64::from(lpid), hv_page, gpa, flags, u64::from(shift), 0],
        ))
    }

    fn page_out(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError> {
        status(ucall(
            uv::UV_PAGE_OUT,
            [u64::from(lpid), hv_page, gpa, flags, u64::from(shift), 0],
        ))
    }

    fn page_inval(&mut self, lpid: u32, gpa: u64, shift: u32) -> Result<(), UvError> {
        status(ucall(
            uv::UV_PAGE_INVAL,
            [u64::from(lpid), gpa, u64::from(shift), 0, 0, 0],
        ))
    }

    fn svm_terminate(&mut self, lpid: u32) -> Result<(), UvError> {
        status(ucall(
            uv::UV_SVM_TERMINATE,
            [u64::from(lpid), 0, 0, 0, 0, 0],
        ))
    }

    fn restricted_spr_write(&mut self, spr: u32, value: u64) -> Result<(), UvError> {
        status(ucall(
            uv::UV_RESTRICTED_SPR_WRITE,
            [u64::from(spr), value, 0, 0, 0, 0],
        ))
    }

    fn restricted_spr_read(&mut self, spr: u32) -> Result<u64, UvError> {
        let (rc, value) = ucall_ret1(uv::UV_RESTRICTED_SPR_READ, u64::from(spr));
        status(rc).map(|()| value)
    }
}
