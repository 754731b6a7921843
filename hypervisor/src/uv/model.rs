//! A model ultravisor for host tests: the UV side of the protocol, with the
//! rules the open-power ultravisor and `Documentation/powerpc/ultravisor.rst`
//! give (argument checks with their U_* codes, page ownership), and a record of
//! every ucall and of every rule the hypervisor broke.
//!
//! Memory is modelled as one tag (a `u64` "content") per 64 KiB page: `hv_mem`
//! for the hypervisor's pages by host real address, and per-SVM secure copies.
//! Secure memory itself lives at addresses with bit 15 set (UV_SECURE_MEM_BIT,
//! `PPC_BIT(15)`); the hypervisor naming such an address is a violation (on
//! hardware, a machine check).
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::svm::SecureVm;
use super::{Ultravisor, UvError, SVM_PAGE_SHIFT, SVM_PAGE_SIZE};
use crate::papr::hcall as h;

/// Secure memory: UV_SECURE_MEM_BIT = IBM bit 15.
pub const SECURE_MEM_BIT: u64 = 1 << 48;
/// What a page paged out of a secure SVM looks like to the hypervisor
/// (the model's "encryption").
pub const ENCRYPT: u64 = 0x5ec0_5ec0_5ec0_5ec0;
const MAX_LPID: u32 = 4095;

/// A rule the hypervisor broke, as the model saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A hypervisor ucall named a real address in secure memory.
    SecureAddress { ucall: u64, addr: u64 },
    /// The hypervisor read or wrote a page the SVM holds in secure memory.
    TouchedSecurePage { lpid: u32, gpa: u64 },
    /// UV_PAGE_IN of a page already in secure memory.
    DoublePageIn { lpid: u32, gpa: u64 },
    /// UV_PAGE_OUT of a page the UV does not hold.
    PageOutNotSecure { lpid: u32, gpa: u64 },
    /// A per-SVM ucall for an LPID that is not (becoming) an SVM.
    NotAnSvm { ucall: u64, lpid: u32 },
}

/// One ucall the model received (for order checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    WritePate(u32, u64, u64),
    RegisterMemSlot(u32, u64, u64, u16),
    UnregisterMemSlot(u32, u16),
    PageIn(u32, u64, u64),
    PageOut(u32, u64, u64),
    PageInval(u32, u64),
    SvmTerminate(u32),
    RestrictedSprWrite(u32, u64),
    RestrictedSprRead(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UvPage {
    Secure(u64),
    Shared(u64),
}

#[derive(Debug, Default)]
struct Svm {
    secure: bool,
    slots: BTreeMap<u16, (u64, u64)>,
    pages: BTreeMap<u64, UvPage>,
    share_pending: BTreeSet<u64>,
}

/// The model ultravisor.
#[derive(Debug, Default)]
pub struct ModelUv {
    pub calls: Vec<Call>,
    pub violations: Vec<Violation>,
    /// The UV's partition table: (dw0, dw1) per LPID.
    pub pate: BTreeMap<u32, (u64, u64)>,
    /// The hypervisor's memory, one tag per 64 KiB page by host real address.
    pub hv_mem: BTreeMap<u64, u64>,
    /// The ultravisor-owned registers the hypervisor wrote through it.
    pub restricted_sprs: BTreeMap<u32, u64>,
    svms: BTreeMap<u32, Svm>,
}

impl ModelUv {
    pub fn new() -> ModelUv {
        ModelUv::default()
    }

    pub fn is_svm(&self, lpid: u32) -> bool {
        self.svms.get(&lpid).is_some_and(|s| s.secure)
    }

    pub fn knows(&self, lpid: u32) -> bool {
        self.svms.contains_key(&lpid)
    }

    /// The registered slots of `lpid`: (id, start gpa, bytes).
    pub fn slots(&self, lpid: u32) -> Vec<(u16, u64, u64)> {
        self.svms
            .get(&lpid)
            .map(|s| s.slots.iter().map(|(&id, &(a, n))| (id, a, n)).collect())
            .unwrap_or_default()
    }

    fn svm(&mut self, ucall: u64, lpid: u32) -> Result<&mut Svm, UvError> {
        if !self.svms.contains_key(&lpid) {
            self.violations.push(Violation::NotAnSvm { ucall, lpid });
            return Err(UvError::Parameter);
        }
        Ok(self.svms.get_mut(&lpid).expect("checked"))
    }

    fn check_hv_page(&mut self, ucall: u64, addr: u64) -> Result<(), UvError> {
        if addr & SECURE_MEM_BIT != 0 {
            self.violations
                .push(Violation::SecureAddress { ucall, addr });
            return Err(UvError::P2);
        }
        if !addr.is_multiple_of(SVM_PAGE_SIZE) {
            return Err(UvError::P2);
        }
        Ok(())
    }

    fn check_gpa(svm: &Svm, gpa: u64) -> Result<u64, UvError> {
        let inside = svm
            .slots
            .values()
            .any(|&(start, len)| gpa >= start && gpa - start < len);
        if !gpa.is_multiple_of(SVM_PAGE_SIZE) || !inside {
            return Err(UvError::P3);
        }
        Ok(gpa >> SVM_PAGE_SHIFT)
    }

    /// The first step of UV_ESM alone: the UV creates its state for `lpid`
    /// (what it does before issuing H_SVM_INIT_START).
    pub fn begin_for_test(&mut self, lpid: u32) {
        self.svms.insert(lpid, Svm::default());
    }

    // ----- The guest's side, driven by the test: what the UV does for an SVM. -----

    /// The guest's UV_ESM, as the UV runs it: H_SVM_INIT_START, H_SVM_PAGE_IN of
    /// `early` pages (the UV faulting the kernel in), H_SVM_INIT_DONE; on a
    /// failure after START, H_SVM_INIT_ABORT (reflected with SRR1[S] = 0). The
    /// result is what the guest's `sc 2` returns: 0 (it is secure) or an hcall code.
    pub fn esm(&mut self, hv: &mut impl Hv, early: &[u64]) -> i64 {
        let lpid = hv.lpid();
        if self.svms.contains_key(&lpid) {
            // Already (becoming) an SVM: the UV refuses without asking the
            // hypervisor anything.
            return UvError::State.code();
        }
        self.svms.insert(lpid, Svm::default());
        let rc = hv.reflect(self, true, h::H_SVM_INIT_START, &[]);
        if rc != 0 {
            self.svms.remove(&lpid);
            return rc;
        }
        for &gpa in early {
            let rc = hv.reflect(self, true, h::H_SVM_PAGE_IN, &[gpa, 0, 16]);
            if rc != 0 {
                return hv.reflect(self, false, h::H_SVM_INIT_ABORT, &[]);
            }
        }
        let rc = hv.reflect(self, true, h::H_SVM_INIT_DONE, &[]);
        if rc != 0 {
            return hv.reflect(self, false, h::H_SVM_INIT_ABORT, &[]);
        }
        self.svms.get_mut(&lpid).expect("created above").secure = true;
        0
    }

    /// The SVM's UV_SHARE_PAGE of one page: the UV asks the hypervisor for it
    /// with H_SVM_PAGE_IN(H_PAGE_IN_SHARED).
    pub fn share(&mut self, hv: &mut impl Hv, gpa: u64) -> i64 {
        let lpid = hv.lpid();
        if let Some(s) = self.svms.get_mut(&lpid) {
            s.share_pending.insert(gpa >> SVM_PAGE_SHIFT);
        }
        let rc = hv.reflect(
            self,
            true,
            h::H_SVM_PAGE_IN,
            &[gpa, h::H_PAGE_IN_SHARED, 16],
        );
        if let Some(s) = self.svms.get_mut(&lpid) {
            s.share_pending.remove(&(gpa >> SVM_PAGE_SHIFT));
        }
        rc
    }

    /// The SVM's UV_UNSHARE_PAGE: the page goes back to secure memory.
    pub fn unshare(&mut self, hv: &mut impl Hv, gpa: u64) -> i64 {
        hv.reflect(self, true, h::H_SVM_PAGE_IN, &[gpa, 0, 16])
    }

    /// The UV evicting a secure page to the hypervisor (H_SVM_PAGE_OUT).
    pub fn evict(&mut self, hv: &mut impl Hv, gpa: u64) -> i64 {
        hv.reflect(self, true, h::H_SVM_PAGE_OUT, &[gpa, 0, 16])
    }

    /// What the SVM reads at `gpa`: its secure copy, or the shared hypervisor
    /// page; `None` if the UV has no mapping (it would fault and page in).
    pub fn guest_read(&self, lpid: u32, gpa: u64) -> Option<u64> {
        match self.svms.get(&lpid)?.pages.get(&(gpa >> SVM_PAGE_SHIFT))? {
            UvPage::Secure(tag) => Some(*tag),
            UvPage::Shared(hv_page) => self.hv_mem.get(hv_page).copied(),
        }
    }

    /// The SVM writes its (secure or shared) page.
    pub fn guest_write(&mut self, lpid: u32, gpa: u64, tag: u64) {
        let Some(s) = self.svms.get_mut(&lpid) else {
            return;
        };
        match s.pages.get_mut(&(gpa >> SVM_PAGE_SHIFT)) {
            Some(UvPage::Secure(t)) => *t = tag,
            Some(UvPage::Shared(p)) => {
                let p = *p;
                self.hv_mem.insert(p, tag);
            }
            None => {}
        }
    }

    /// The hypervisor touches partition memory at `gpa` (an hcall buffer, say):
    /// a violation if the UV holds that page in secure memory.
    pub fn hv_touch(&mut self, lpid: u32, gpa: u64) {
        let secure = self
            .svms
            .get(&lpid)
            .and_then(|s| s.pages.get(&(gpa >> SVM_PAGE_SHIFT)))
            .is_some_and(|p| matches!(p, UvPage::Secure(_)));
        if secure {
            self.violations.push(Violation::TouchedSecurePage {
                lpid,
                gpa: gpa & !(SVM_PAGE_SIZE - 1),
            });
        }
    }
}

/// The hypervisor as the model UV reaches it: an H_SVM_* hcall reflected with
/// SRR1[S] = `secure`, answered with its return code (what UV_RETURN's r0
/// carries back).
pub trait Hv {
    fn lpid(&self) -> u32;
    fn reflect(&mut self, uv: &mut ModelUv, secure: bool, op: u64, args: &[u64]) -> i64;
}

/// The secure-VM state machine alone.
impl Hv for SecureVm {
    fn lpid(&self) -> u32 {
        self.config().lpid
    }

    fn reflect(&mut self, uv: &mut ModelUv, secure: bool, op: u64, args: &[u64]) -> i64 {
        code(self.hcall(uv, secure, op, args))
    }
}

pub fn code(r: Option<crate::papr::hcall::HcallResult>) -> i64 {
    match r {
        Some(Ok(_)) => 0,
        Some(Err(e)) => e.code(),
        None => h::HcallError::Function.code(),
    }
}

impl Ultravisor for ModelUv {
    fn write_pate(&mut self, lpid: u32, dw0: u64, dw1: u64) -> Result<(), UvError> {
        self.calls.push(Call::WritePate(lpid, dw0, dw1));
        if lpid > MAX_LPID {
            return Err(UvError::Parameter);
        }
        // For an SVM the UV keeps its own secure partition-scoped tree (dw0) and
        // takes only the process table (dw1), as svm_setup_partition_table does.
        let secure_dw0 = self.is_svm(lpid).then(|| self.pate.get(&lpid).map(|e| e.0));
        let dw0 = match secure_dw0 {
            Some(Some(own)) => own,
            _ => dw0,
        };
        self.pate.insert(lpid, (dw0, dw1));
        Ok(())
    }

    fn register_mem_slot(
        &mut self,
        lpid: u32,
        start_gpa: u64,
        nbytes: u64,
        flags: u64,
        slot: u16,
    ) -> Result<(), UvError> {
        self.calls
            .push(Call::RegisterMemSlot(lpid, start_gpa, nbytes, slot));
        let s = self.svm(super::UV_REGISTER_MEM_SLOT, lpid)?;
        if !start_gpa.is_multiple_of(SVM_PAGE_SIZE) {
            return Err(UvError::P2);
        }
        if nbytes == 0 || !nbytes.is_multiple_of(SVM_PAGE_SIZE) {
            return Err(UvError::P3);
        }
        if flags != 0 {
            return Err(UvError::P4);
        }
        if s.slots.contains_key(&slot) {
            return Err(UvError::P5);
        }
        let end = start_gpa.checked_add(nbytes).ok_or(UvError::P3)?;
        if s.slots.values().any(|&(a, n)| start_gpa < a + n && a < end) {
            // Overlaps a registered slot.
            return Err(UvError::P2);
        }
        s.slots.insert(slot, (start_gpa, nbytes));
        Ok(())
    }

    fn unregister_mem_slot(&mut self, lpid: u32, slot: u16) -> Result<(), UvError> {
        self.calls.push(Call::UnregisterMemSlot(lpid, slot));
        let s = self.svm(super::UV_UNREGISTER_MEM_SLOT, lpid)?;
        match s.slots.remove(&slot) {
            Some(_) => Ok(()),
            None => Err(UvError::P2),
        }
    }

    fn page_in(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError> {
        self.calls.push(Call::PageIn(lpid, hv_page, gpa));
        self.check_hv_page(super::UV_PAGE_IN, hv_page)?;
        let tag = self.hv_mem.get(&hv_page).copied().unwrap_or(0);
        let s = self.svm(super::UV_PAGE_IN, lpid)?;
        let gfn = Self::check_gpa(s, gpa)?;
        if flags != 0 {
            return Err(UvError::P4);
        }
        if shift != SVM_PAGE_SHIFT {
            return Err(UvError::P5);
        }
        if s.share_pending.contains(&gfn) {
            // UV_SHARE_PAGE: the hypervisor's page is mapped; the UV zeroes it
            // first so no secure contents leak into shared memory.
            s.pages.insert(gfn, UvPage::Shared(hv_page));
            self.hv_mem.insert(hv_page, 0);
            return Ok(());
        }
        if matches!(s.pages.get(&gfn), Some(UvPage::Secure(_))) {
            self.violations.push(Violation::DoublePageIn { lpid, gpa });
            return Err(UvError::Parameter);
        }
        s.pages.insert(gfn, UvPage::Secure(tag));
        Ok(())
    }

    fn page_out(
        &mut self,
        lpid: u32,
        hv_page: u64,
        gpa: u64,
        flags: u64,
        shift: u32,
    ) -> Result<(), UvError> {
        self.calls.push(Call::PageOut(lpid, hv_page, gpa));
        self.check_hv_page(super::UV_PAGE_OUT, hv_page)?;
        let s = self.svm(super::UV_PAGE_OUT, lpid)?;
        let gfn = Self::check_gpa(s, gpa)?;
        if flags != 0 {
            return Err(UvError::P4);
        }
        if shift != SVM_PAGE_SHIFT {
            return Err(UvError::P5);
        }
        let Some(UvPage::Secure(tag)) = s.pages.get(&gfn).copied() else {
            self.violations
                .push(Violation::PageOutNotSecure { lpid, gpa });
            return Err(UvError::P3);
        };
        let out = if s.secure { tag ^ ENCRYPT } else { tag };
        s.pages.remove(&gfn);
        self.hv_mem.insert(hv_page, out);
        Ok(())
    }

    fn page_inval(&mut self, lpid: u32, gpa: u64, shift: u32) -> Result<(), UvError> {
        self.calls.push(Call::PageInval(lpid, gpa));
        let s = self.svm(super::UV_PAGE_INVAL, lpid)?;
        let gfn = Self::check_gpa(s, gpa).map_err(|_| UvError::P2)?;
        if shift != SVM_PAGE_SHIFT {
            return Err(UvError::P3);
        }
        if !matches!(s.pages.get(&gfn), Some(UvPage::Shared(_))) {
            return Err(UvError::P2);
        }
        s.pages.remove(&gfn);
        Ok(())
    }

    fn svm_terminate(&mut self, lpid: u32) -> Result<(), UvError> {
        self.calls.push(Call::SvmTerminate(lpid));
        self.svm(super::UV_SVM_TERMINATE, lpid)?;
        self.svms.remove(&lpid);
        Ok(())
    }

    fn restricted_spr_write(&mut self, spr: u32, value: u64) -> Result<(), UvError> {
        self.calls.push(Call::RestrictedSprWrite(spr, value));
        // The open-power UV's list: DAWR0, DAWRX0, CIABR, and LDBAR and IMC,
        // which the model refuses: a hypervisor on a UV machine skips them
        // (as Linux does), so a test notices one that asks.
        match spr {
            super::host::SPR_DAWR0 | super::host::SPR_DAWRX0 | super::host::SPR_CIABR => {
                self.restricted_sprs.insert(spr, value);
                Ok(())
            }
            _ => Err(UvError::Parameter),
        }
    }

    fn restricted_spr_read(&mut self, spr: u32) -> Result<u64, UvError> {
        self.calls.push(Call::RestrictedSprRead(spr));
        match spr {
            super::host::SPR_DAWR0 | super::host::SPR_DAWRX0 | super::host::SPR_CIABR => {
                Ok(self.restricted_sprs.get(&spr).copied().unwrap_or(0))
            }
            _ => Err(UvError::Parameter),
        }
    }
}
