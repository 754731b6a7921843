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
}
