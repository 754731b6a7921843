//! One partition's secure-VM state, as the hypervisor keeps it, and the H_SVM_*
//! hcalls the ultravisor makes on the partition's behalf.
//!
//! Semantics and return codes follow Linux KVM-HV (`book3s_hv.c` hcall dispatch,
//! `book3s_hv_uvmem.c`), which is what the open-power ultravisor was written
//! against; where Paprika is stricter it says so:
//!
//! | call | before INIT_START | during init | after INIT_DONE |
//! | --- | --- | --- | --- |
//! | any but ABORT with SRR1[S] = 0 | H_UNSUPPORTED | H_UNSUPPORTED | H_UNSUPPORTED |
//! | INIT_START | registers one memory slot per host extent (a refused one undoes the others, H_PARAMETER); H_AUTHORITY if the manifest did not allow `secure` | H_STATE (Paprika; KVM re-registers) | H_STATE (Paprika) |
//! | PAGE_IN / PAGE_OUT | H_UNSUPPORTED | UV_PAGE_IN / UV_PAGE_OUT | same |
//! | INIT_DONE | H_UNSUPPORTED | pages in every page still normal, H_STATE if one fails | H_STATE (Paprika; KVM: success) |
//! | INIT_ABORT | H_UNSUPPORTED | pages out, UV_SVM_TERMINATE, then **H_PARAMETER** (what the guest's UV_ESM returns) | H_STATE |
//!
//! PAGE_IN/OUT arguments: r4 gpa, r5 flags, r6 page shift. Page shift other than
//! 16 → H_P3; flags other than H_PAGE_IN_SHARED (PAGE_IN) or 0 (PAGE_OUT) → H_P2;
//! a gpa outside the partition or not 64 KiB aligned → H_PARAMETER (KVM rounds an
//! unaligned gpa down; Paprika refuses it); paging in a page already secure →
//! H_PARAMETER (as KVM); paging out a page that is not secure is a no-op success (as KVM).
//!
//! A Paprika partition's memory is a list of host extents from guest real 0
//! (`mm::extent`); each extent is one UV memory slot (id = its index, as KVM
//! registers each memslot), and the hypervisor page of `gpa` is the extent
//! map's translation of it.
use alloc::vec;
use alloc::vec::Vec;

use crate::mm::extent::ExtentMap;

use super::{Ultravisor, UvError, SVM_PAGE_SHIFT, SVM_PAGE_SIZE};
use crate::papr::hcall::{self as h, HcallError, HcallResult};

/// Where a partition is in the secure-VM protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// An ordinary partition (before INIT_START, after ABORT or termination).
    Normal,
    /// Between H_SVM_INIT_START and H_SVM_INIT_DONE: the UV is paging the
    /// partition in (KVM's KVMPPC_SECURE_INIT_START).
    Initialising,
    /// After H_SVM_INIT_DONE: a secure VM.
    Secure,
}

/// Who holds a 64 KiB page of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// In the hypervisor's memory (the partition block), readable by it.
    Normal,
    /// Paged into secure memory by UV_PAGE_IN; the hypervisor's copy is stale and
    /// must not be used.
    Secure,
    /// Shared by the SVM (UV_SHARE_PAGE): the UV maps the hypervisor's page into
    /// the SVM; both may access it.
    Shared,
}

/// How a partition's memory is laid out, and whether it may become secure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvmConfig {
    pub lpid: u32,
    /// The manifest's `secure = true` (QEMU's `confidential-guest-support=pef`).
    pub secure_allowed: bool,
    /// Guest real 0.. and the host extents behind it (2 MiB aligned, so every
    /// 64 KiB page lies in one extent).
    pub memory: ExtentMap,
}

/// Why the hypervisor itself failed a step (not the guest's fault): the UV
/// refused a ucall the hypervisor made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UcallFailed {
    pub ucall: u64,
    pub error: UvError,
}

/// One partition's secure-VM state.
#[derive(Debug)]
pub struct SecureVm {
    cfg: SvmConfig,
    phase: Phase,
    pages: Vec<PageState>,
}

impl SecureVm {
    pub fn new(cfg: SvmConfig) -> SecureVm {
        let n = (cfg.memory.size() >> SVM_PAGE_SHIFT) as usize;
        SecureVm {
            cfg,
            phase: Phase::Normal,
            pages: vec![PageState::Normal; n],
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn config(&self) -> &SvmConfig {
        &self.cfg
    }

    /// The state of the page holding `gpa`, if it is partition memory.
    pub fn page(&self, gpa: u64) -> Option<PageState> {
        self.pages.get((gpa >> SVM_PAGE_SHIFT) as usize).copied()
    }

    /// Whether the hypervisor may read or write `len` bytes at `gpa` (an hcall
    /// buffer, the VPA, console output): always for a normal partition; for a
    /// secure one only inside pages it is sharing; during initialisation, pages
    /// not yet paged in.
    pub fn hv_may_access(&self, gpa: u64, len: u64) -> bool {
        if self.phase == Phase::Normal {
            return true;
        }
        let Some(end) = gpa.checked_add(len.max(1)) else {
            return false;
        };
        if end > self.cfg.memory.size() {
            return false;
        }
        let first = (gpa >> SVM_PAGE_SHIFT) as usize;
        let last = ((end - 1) >> SVM_PAGE_SHIFT) as usize;
        self.pages[first..=last].iter().all(|s| match s {
            PageState::Shared => true,
            PageState::Normal => self.phase == Phase::Initialising,
            PageState::Secure => false,
        })
    }

    /// The hypervisor's page behind `gpa` (inside memory: every caller
    /// checked; 0, which the UV refuses, otherwise).
    fn hv_page(&self, gpa: u64) -> u64 {
        self.cfg.memory.translate(gpa).unwrap_or(0)
    }

    /// The page index of a guest-supplied gpa: inside the partition and aligned,
    /// else H_PARAMETER.
    fn index(&self, gpa: u64) -> Result<usize, HcallError> {
        if !gpa.is_multiple_of(SVM_PAGE_SIZE) || gpa >= self.cfg.memory.size() {
            return Err(HcallError::Parameter);
        }
        Ok((gpa >> SVM_PAGE_SHIFT) as usize)
    }

    /// Serves H_SVM_* hcall `op` (r4.. in `args`) reflected by the ultravisor;
    /// `caller_secure` is SRR1[S] of the call. `None` if `op` is not one of them.
    pub fn hcall(
        &mut self,
        uv: &mut dyn Ultravisor,
        caller_secure: bool,
        op: u64,
        args: &[u64],
    ) -> Option<HcallResult> {
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        // KVM answers these only for a caller in secure state (a normal partition
        // cannot pretend to be the UV); INIT_ABORT arrives with S clear (the UV
        // presents the guest's state from before UV_ESM) and is checked by phase.
        let needs_secure = matches!(
            op,
            h::H_SVM_PAGE_IN | h::H_SVM_PAGE_OUT | h::H_SVM_INIT_START | h::H_SVM_INIT_DONE
        );
        if needs_secure && !caller_secure {
            return Some(Err(HcallError::Unsupported));
        }
        Some(match op {
            h::H_SVM_INIT_START => self.init_start(uv),
            h::H_SVM_INIT_DONE => self.init_done(uv),
            h::H_SVM_INIT_ABORT => self.init_abort(uv),
            h::H_SVM_PAGE_IN => self.page_in(uv, a(0), a(1), a(2)),
            h::H_SVM_PAGE_OUT => self.page_out(uv, a(0), a(1), a(2)),
            _ => return None,
        })
    }

    fn init_start(&mut self, uv: &mut dyn Ultravisor) -> HcallResult {
        if self.phase != Phase::Normal {
            return Err(HcallError::State);
        }
        if !self.cfg.secure_allowed {
            return Err(HcallError::Authority);
        }
        // One slot per host extent; if the UV refuses one, the ones already
        // registered are dropped again (as KVM undoes its memslots).
        let lpid = self.cfg.lpid;
        let extents = self.cfg.memory.extents();
        for (i, e) in extents.iter().enumerate() {
            if uv
                .register_mem_slot(lpid, e.gra, e.len, 0, i as u16)
                .is_err()
            {
                for j in 0..i {
                    let _ = uv.unregister_mem_slot(lpid, j as u16);
                }
                return Err(HcallError::Parameter);
            }
        }
        self.phase = Phase::Initialising;
        self.pages.fill(PageState::Normal);
        Ok([0; 4])
    }

    fn init_done(&mut self, uv: &mut dyn Ultravisor) -> HcallResult {
        match self.phase {
            Phase::Normal => return Err(HcallError::Unsupported),
            Phase::Secure => return Err(HcallError::State),
            Phase::Initialising => {}
        }
        // Every page the UV did not ask for yet becomes secure now (KVM's
        // kvmppc_uv_migrate_mem_slot); shared pages stay shared.
        for i in 0..self.pages.len() {
            if self.pages[i] == PageState::Normal {
                let gpa = (i as u64) << SVM_PAGE_SHIFT;
                uv.page_in(self.cfg.lpid, self.hv_page(gpa), gpa, 0, SVM_PAGE_SHIFT)
                    .map_err(|_| HcallError::State)?;
                self.pages[i] = PageState::Secure;
            }
        }
        self.phase = Phase::Secure;
        Ok([0; 4])
    }

    fn init_abort(&mut self, uv: &mut dyn Ultravisor) -> HcallResult {
        match self.phase {
            Phase::Normal => return Err(HcallError::Unsupported),
            Phase::Secure => return Err(HcallError::State),
            Phase::Initialising => {}
        }
        // The partition goes on as a normal one: its memory comes back
        // (KVM's kvmppc_uvmem_drop_pages with page-out), then the UV forgets it.
        for i in 0..self.pages.len() {
            if self.pages[i] == PageState::Secure {
                let gpa = (i as u64) << SVM_PAGE_SHIFT;
                // A page the UV will not give back is lost to the partition
                // either way; the UV is terminating the SVM next.
                let _ = uv.page_out(self.cfg.lpid, self.hv_page(gpa), gpa, 0, SVM_PAGE_SHIFT);
            }
        }
        let _ = uv.svm_terminate(self.cfg.lpid);
        self.phase = Phase::Normal;
        self.pages.fill(PageState::Normal);
        // As KVM: the abort "fails", and that is the guest's UV_ESM result.
        Err(HcallError::Parameter)
    }

    fn check_page_args(&self, flags: u64, allowed: u64, shift: u64) -> Result<(), HcallError> {
        if self.phase == Phase::Normal {
            return Err(HcallError::Unsupported);
        }
        if shift != u64::from(SVM_PAGE_SHIFT) {
            return Err(HcallError::P3);
        }
        if flags & !allowed != 0 {
            return Err(HcallError::P2);
        }
        Ok(())
    }

    fn page_in(
        &mut self,
        uv: &mut dyn Ultravisor,
        gpa: u64,
        flags: u64,
        shift: u64,
    ) -> HcallResult {
        self.check_page_args(flags, h::H_PAGE_IN_SHARED, shift)?;
        let i = self.index(gpa)?;
        let share = flags & h::H_PAGE_IN_SHARED != 0;
        let new = if share {
            PageState::Shared
        } else {
            PageState::Secure
        };
        match (self.pages[i], share) {
            // Double page-in (KVM: H_PARAMETER); sharing a shared page is
            // idempotent.
            (PageState::Secure, false) => return Err(HcallError::Parameter),
            (PageState::Shared, true) => return Ok([0; 4]),
            _ => {}
        }
        // Sharing a secure page drops the secure copy (the UV zeroes what it
        // shares) and maps the hypervisor's page; unsharing or paging in hands the
        // UV the hypervisor's page contents.
        uv.page_in(self.cfg.lpid, self.hv_page(gpa), gpa, 0, SVM_PAGE_SHIFT)
            .map_err(|_| HcallError::Parameter)?;
        self.pages[i] = new;
        Ok([0; 4])
    }

    fn page_out(
        &mut self,
        uv: &mut dyn Ultravisor,
        gpa: u64,
        flags: u64,
        shift: u64,
    ) -> HcallResult {
        self.check_page_args(flags, 0, shift)?;
        let i = self.index(gpa)?;
        if self.pages[i] != PageState::Secure {
            return Ok([0; 4]);
        }
        uv.page_out(self.cfg.lpid, self.hv_page(gpa), gpa, 0, SVM_PAGE_SHIFT)
            .map_err(|_| HcallError::Parameter)?;
        self.pages[i] = PageState::Normal;
        Ok([0; 4])
    }

    /// The hypervisor takes a shared page away from the SVM (it must not be
    /// reused while the UV still maps it): UV_PAGE_INVAL, then the page is the
    /// hypervisor's again. `Err` if `gpa` is not a shared page.
    pub fn unmap_shared(&mut self, uv: &mut dyn Ultravisor, gpa: u64) -> Result<(), UcallFailed> {
        let i = self.index(gpa).map_err(|_| UcallFailed {
            ucall: super::UV_PAGE_INVAL,
            error: UvError::P2,
        })?;
        if self.pages[i] != PageState::Shared {
            return Err(UcallFailed {
                ucall: super::UV_PAGE_INVAL,
                error: UvError::P2,
            });
        }
        uv.page_inval(self.cfg.lpid, gpa, SVM_PAGE_SHIFT)
            .map_err(|error| UcallFailed {
                ucall: super::UV_PAGE_INVAL,
                error,
            })?;
        self.pages[i] = PageState::Normal;
        Ok(())
    }

    /// The partition stops or reboots: secure pages are dropped without paging
    /// out (their contents die with the SVM), every memory slot is unregistered and
    /// the UV destroys the SVM. Nothing to do for a normal partition. Every step
    /// is attempted; the first failure is returned.
    pub fn terminate(&mut self, uv: &mut dyn Ultravisor) -> Result<(), UcallFailed> {
        if self.phase == Phase::Normal {
            return Ok(());
        }
        let lpid = self.cfg.lpid;
        let mut r1 = Ok(());
        for i in 0..self.cfg.memory.extents().len() {
            let r = uv
                .unregister_mem_slot(lpid, i as u16)
                .map_err(|error| UcallFailed {
                    ucall: super::UV_UNREGISTER_MEM_SLOT,
                    error,
                });
            r1 = r1.and(r);
        }
        let r2 = uv.svm_terminate(lpid).map_err(|error| UcallFailed {
            ucall: super::UV_SVM_TERMINATE,
            error,
        });
        self.phase = Phase::Normal;
        self.pages.fill(PageState::Normal);
        r1.and(r2)
    }
}

/// The answer to an H_SVM_* hcall on a machine without an ultravisor, as KVM-HV
/// gives it there: the caller cannot be in secure state, so H_UNSUPPORTED (also
/// for INIT_ABORT: nothing was started). H_TPM_COMM: H_FUNCTION here, the
/// answer for a partition not allowed the TPM proxy; `partition::pef` sends it
/// to `uv::tpm` before it gets here. `None` if `op` is not one of them.
pub fn hcall_without_uv(op: u64) -> Option<HcallError> {
    match op {
        h::H_SVM_PAGE_IN
        | h::H_SVM_PAGE_OUT
        | h::H_SVM_INIT_START
        | h::H_SVM_INIT_DONE
        | h::H_SVM_INIT_ABORT => Some(HcallError::Unsupported),
        h::H_TPM_COMM => Some(HcallError::Function),
        _ => None,
    }
}
