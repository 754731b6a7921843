//! The Protected Execution Facility (PEF): the hypervisor's side of the
//! ultravisor protocol.
//!
//! On a PEF machine the ultravisor (UV) runs above the hypervisor (MSR[S] = 1 in
//! ultravisor mode and in secure guests). It owns the partition table, secure
//! memory and every secure VM (SVM); the hypervisor asks it for things through
//! *ucalls* (`sc 2`, r3 = the UV_* number, arguments r4 onwards; Linux
//! `asm/ultravisor-api.h`, `Documentation/powerpc/ultravisor.rst`), and the UV asks
//! the hypervisor for memory through reflected H_SVM_* hcalls.
//!
//! This module is portable: it decides, and `Ultravisor` (the trait) commits. On
//! POWER the real trait object is `arch::ppc64::ucall` (`sc 2`); on the host the
//! tests use `model::ModelUv`, which enforces the ultravisor's rules and reports a
//! hypervisor that breaks them. Nothing here touches an SPR or guest memory.
//!
//! - [`svm::SecureVm`]: one partition's secure-VM state (H_SVM_INIT_START/DONE/ABORT,
//!   H_SVM_PAGE_IN/OUT, page states normal/secure/shared, termination).
//! - [`host`]: what changes for the hypervisor itself when an ultravisor exists
//!   (partition-table entries through UV_WRITE_PATE, no PTCR writes, the
//!   ultravisor-owned debug and trace registers).
//! - [`partition::PartitionUv`]: the state every partition carries, as the
//!   partition code drives it (hcall routing, UV_RETURN or `hrfid`, guest memory
//!   access, teardown at stop and reboot).
//! - [`UvReturn`]: the register frame of UV_RETURN.
//! - [`tpm`]: H_TPM_COMM, the host TPM proxy a secure VM's ESM needs, and
//!   [`tis_i2c`], the TCG I2C TPM interface it reaches the TPM with.
//!
//! Invariant: after H_SVM_INIT_DONE the hypervisor touches a secure partition's
//! memory only in pages the partition shared ([`svm::SecureVm::hv_may_access`]).

pub mod host;
pub mod partition;
pub mod svm;
pub mod tis_i2c;
pub mod tpm;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
pub mod model;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod tests;

/// Ultracall numbers (`asm/ultravisor-api.h`; the open-power ultravisor's
/// `include/uapi_uvcall.h` has the same values).
pub const UV_WRITE_PATE: u64 = 0xf104;
pub const UV_RESTRICTED_SPR_WRITE: u64 = 0xf108;
pub const UV_RESTRICTED_SPR_READ: u64 = 0xf10c;
pub const UV_ESM: u64 = 0xf110;
pub const UV_RETURN: u64 = 0xf11c;
pub const UV_REGISTER_MEM_SLOT: u64 = 0xf120;
pub const UV_UNREGISTER_MEM_SLOT: u64 = 0xf124;
pub const UV_PAGE_IN: u64 = 0xf128;
pub const UV_PAGE_OUT: u64 = 0xf12c;
pub const UV_SHARE_PAGE: u64 = 0xf130;
pub const UV_UNSHARE_PAGE: u64 = 0xf134;
pub const UV_PAGE_INVAL: u64 = 0xf138;
pub const UV_SVM_TERMINATE: u64 = 0xf13c;
pub const UV_UNSHARE_ALL_PAGES: u64 = 0xf140;

/// Page shift of the secure-memory protocol: the 64 KiB pages of a 64K-page
/// kernel (KVM insists on its PAGE_SHIFT, 16 on POWER distributions; anything
/// else is H_P3).
pub const SVM_PAGE_SHIFT: u32 = 16;
pub const SVM_PAGE_SIZE: u64 = 1 << SVM_PAGE_SHIFT;

/// Ultracall return codes (`asm/ultravisor-api.h`), one-to-one with their values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum UvError {
    Function = -2,
    Parameter = -4,
    Retry = -5,
    Permission = -11,
    P2 = -55,
    P3 = -56,
    P4 = -57,
    P5 = -58,
    BadMode = -59,
    State = -75,
}

impl UvError {
    pub const fn code(self) -> i64 {
        self as i64
    }

    /// The error for an r3 value a ucall returned (0 is success, not an error).
    pub const fn from_code(rc: i64) -> Option<Result<(), UvError>> {
        Some(Err(match rc {
            0 => return Some(Ok(())),
            -2 => UvError::Function,
            -4 => UvError::Parameter,
            -5 => UvError::Retry,
            -11 => UvError::Permission,
            -55 => UvError::P2,
            -56 => UvError::P3,
            -57 => UvError::P4,
            -58 => UvError::P5,
            -59 => UvError::BadMode,
            -75 => UvError::State,
            _ => return None,
        }))
    }
}

/// The ucalls the hypervisor makes. Implemented by the `sc 2` wrapper on POWER
/// (only when the host device tree has `ibm,ultravisor`) and by the model on the
/// host. Arguments are as the ultravisor takes them in r4 onwards.
pub trait Ultravisor {
    /// UV_WRITE_PATE(r4 lpid, r5 dw0, r6 dw1): the partition-table entry of `lpid`,
    /// LPID 0 (the hypervisor's own) included. The UV keeps the table.
    fn write_pate(&mut self, lpid: u32, dw0: u64, dw1: u64) -> Result<(), UvError>;
    /// UV_REGISTER_MEM_SLOT(r4 lpid, r5 start gpa, r6 bytes, r7 flags, r8 slot id).
    fn register_mem_slot(
        &mut self,
        lpid: u32,
        start_gpa: u64,
        nbytes: u64,
        flags: u64,
        slot: u16,
    ) -> Result<(), UvError>;
    /// UV_UNREGISTER_MEM_SLOT(r4 lpid, r5 slot id).
    fn unregister_mem_slot(&mut self, lpid: u32, slot: u16) -> Result<(), UvError>;
    /// UV_PAGE_IN(r4 lpid, r5 hypervisor page (real address), r6 gpa, r7 flags,
    /// r8 page shift): the UV takes the contents of the hypervisor's page for `gpa`
    /// (into secure memory, or maps the page shared if the SVM asked to share it).
    fn page_in(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError>;
    /// UV_PAGE_OUT(same registers): the UV gives `gpa` back into the hypervisor's
    /// page (encrypted once the SVM is secure).
    fn page_out(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError>;
    /// UV_PAGE_INVAL(r4 lpid, r5 gpa, r6 page shift): the hypervisor is unmapping a
    /// shared page; the UV drops its partition-scoped mapping of it.
    fn page_inval(&mut self, lpid: u32, gpa: u64, shift: u32) -> Result<(), UvError>;
    /// UV_SVM_TERMINATE(r4 lpid): the SVM's secure state is destroyed.
    fn svm_terminate(&mut self, lpid: u32) -> Result<(), UvError>;
    /// UV_RESTRICTED_SPR_WRITE(r4 SPR number, r5 value): a register the
    /// ultravisor owns (CIABR, DAWR0, DAWRX0; [`host::spr_route`]).
    fn restricted_spr_write(&mut self, spr: u32, value: u64) -> Result<(), UvError>;
    /// UV_RESTRICTED_SPR_READ(r4 SPR number): its value (in r5 on return, as the
    /// open-power UV's `uv_restricted_spr_read` stores it).
    fn restricted_spr_read(&mut self, spr: u32) -> Result<u64, UvError>;
}

/// The registers of UV_RETURN, the `sc 2` that resumes a secure guest after the
/// hypervisor handled an interrupt the UV reflected to it (the open-power UV's
/// `doc/reflecting-exceptions.rst`): r0 = the hcall's return value, r2 = the SRR1
/// to present, r3 = UV_RETURN, r4-r12 = the hcall's outputs, and r31 = the cookie
/// the UV put there on reflection, untouched (a changed cookie is fatal in the UV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UvReturn {
    pub r0: u64,
    pub r2: u64,
    pub r3: u64,
    pub r4_r12: [u64; 9],
    pub r31: u64,
}

impl UvReturn {
    /// The frame that returns `rc` and `outputs` of a reflected hcall. `srr1` is
    /// what the UV reflected (S set), `cookie` the reflected r31.
    pub fn for_hcall(rc: i64, outputs: &[u64], srr1: u64, cookie: u64) -> UvReturn {
        let mut r4_r12 = [0u64; 9];
        let n = outputs.len().min(9);
        r4_r12[..n].copy_from_slice(&outputs[..n]);
        UvReturn {
            r0: rc as u64,
            r2: srr1,
            r3: UV_RETURN,
            r4_r12,
            r31: cookie,
        }
    }

    /// The frame `arch::ppc64::guest::enter_uv` makes from a vCPU's GPRs and
    /// the SRR1 it enters with: r0 = its r3 (where `hcalls::dispatch` put the
    /// status), r2 = `srr1`, r3 = UV_RETURN, r4-r12 = its r4-r12 (the outputs
    /// of an hcall), r31 = its r31 (the cookie, never written by the
    /// hypervisor). The assembly follows this exactly.
    pub fn from_vcpu(gpr: &[u64; 32], srr1: u64) -> UvReturn {
        let mut r4_r12 = [0u64; 9];
        r4_r12.copy_from_slice(&gpr[4..13]);
        UvReturn {
            r0: gpr[3],
            r2: srr1,
            r3: UV_RETURN,
            r4_r12,
            r31: gpr[31],
        }
    }
}
