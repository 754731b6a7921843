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
    /// UV_RETURN whose cookie (r31, or the start-cpu cookie in r0) the UV
    /// never gave out for this LPID (the real UV asserts).
    BadCookie { lpid: u32, cookie: u64 },
    /// UV_RETURN without r3 = UV_RETURN (the UV would take another ucall).
    NotUvReturn { lpid: u32, r3: u64 },
    /// The hypervisor entered a vCPU of a secure VM with `hrfid`, which cannot
    /// set MSR[S]: the vCPU would run non-secure over secure memory.
    HrfidIntoSvm { lpid: u32 },
}

/// The open-power UV's `MAX_EXCEPTION`: an interrupt the hypervisor
/// synthesizes must have its vector below it; the UV's cookies are at or
/// above it.
pub const MAX_EXCEPTION: u64 = 0x2000;

/// A vCPU of a secure VM as the UV resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvmVcpu {
    pub pc: u64,
    pub msr: u64,
    pub srr0: u64,
    pub srr1: u64,
    /// r3: the hcall's result after a reflected hcall, start-cpu's argument
    /// for a started vCPU.
    pub r3: u64,
}

/// What a cookie the UV handed to the hypervisor stands for.
#[derive(Clone, Copy, Debug)]
enum Cookie {
    /// A reflected interrupt of a vCPU at `pc` with `msr` (in r31, HSRR0, SRR0).
    Reflected { lpid: u32, pc: u64, msr: u64 },
    /// An RTAS start-cpu: the r3 argument it replaced (`rtas_start_cpu_begin`).
    StartCpu { lpid: u32, start_here: u64, r3: u64 },
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
    /// Cookies given to the hypervisor and not returned yet.
    cookies: BTreeMap<u64, Cookie>,
    next_cookie: u64,
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

    fn cookie(&mut self, c: Cookie) -> u64 {
        // Fits the 32-bit RTAS argument start-cpu carries it in; never below
        // MAX_EXCEPTION, so it is never taken for a vector.
        self.next_cookie += 1;
        let cookie = MAX_EXCEPTION + ((self.next_cookie * 0x9e37_79b1) & 0x7fff_ffe0);
        self.cookies.insert(cookie, c);
        cookie
    }

    /// Cookies of `lpid` the hypervisor still holds.
    pub fn outstanding_cookies(&self, lpid: u32) -> usize {
        self.cookies
            .values()
            .filter(|c| match c {
                Cookie::Reflected { lpid: l, .. } | Cookie::StartCpu { lpid: l, .. } => *l == lpid,
            })
            .count()
    }

    /// The UV reflects an interrupt (or hcall) a vCPU of SVM `lpid` took at
    /// `pc` with `msr` (`fixup_regs_for_hv_entry`): the hypervisor sees a
    /// cookie in HSRR0 and SRR0 (its "PC") and r31, and the SVM's MSR with S
    /// as SRR1/HSRR1. Returns (exit PC, exit MSR, r31).
    pub fn reflect_interrupt(&mut self, lpid: u32, pc: u64, msr: u64) -> (u64, u64, u64) {
        let cookie = self.cookie(Cookie::Reflected { lpid, pc, msr });
        (cookie, msr | super::partition::MSR_S, cookie)
    }

    /// RTAS start-cpu(cpu, start_here, r3) of SVM `lpid`, as the UV passes it
    /// on in H_RTAS: r3 replaced by a start-cpu cookie (`rtas_start_cpu_begin`).
    /// Returns the three arguments the hypervisor sees.
    pub fn start_cpu(&mut self, lpid: u32, cpu: u64, start_here: u64, r3: u64) -> [u64; 3] {
        let cookie = self.cookie(Cookie::StartCpu {
            lpid,
            start_here,
            r3,
        });
        [cpu, start_here, cookie]
    }

    /// UV_RETURN of a vCPU of `lpid`: `frame` as `guest::enter_uv` builds it,
    /// `hsrr0`/`hsrr1` what it loaded (the vCPU's PC and MSR in the
    /// hypervisor's view). As the open-power UV's `uv_return`: a start-cpu
    /// cookie in r0 starts the vCPU secure at its start address with start-cpu's
    /// r3 (releasing a stop-self cookie in r31, `rtas_start_cpu_end`);
    /// otherwise r31 must be a reflection cookie, and an HSRR0 other than it
    /// that is a vector below [`MAX_EXCEPTION`], 32-byte aligned, is an
    /// interrupt the hypervisor synthesized (`valid_vector`,
    /// `exception_svm_reflect_prep`); any other HSRR0 resumes the vCPU where
    /// it was.
    pub fn uv_return(
        &mut self,
        lpid: u32,
        frame: &super::UvReturn,
        hsrr0: u64,
        hsrr1: u64,
    ) -> Result<SvmVcpu, Violation> {
        const SF: u64 = 1 << 63;
        const ME: u64 = 0x1000;
        const LE: u64 = 1;
        let s = super::partition::MSR_S;
        let bad = |v: Violation, me: &mut ModelUv| {
            me.violations.push(v);
            Err(v)
        };
        if frame.r3 != super::UV_RETURN {
            return bad(Violation::NotUvReturn { lpid, r3: frame.r3 }, self);
        }
        // The UV moves r0 into r3 first.
        if frame.r0 >= MAX_EXCEPTION {
            if let Some(Cookie::StartCpu {
                lpid: l,
                start_here,
                r3,
            }) = self.cookies.get(&frame.r0).copied()
            {
                if l != lpid {
                    return bad(
                        Violation::BadCookie {
                            lpid,
                            cookie: frame.r0,
                        },
                        self,
                    );
                }
                self.cookies.remove(&frame.r0);
                if matches!(self.cookies.get(&frame.r31), Some(Cookie::Reflected { lpid: l, .. }) if *l == lpid)
                {
                    self.cookies.remove(&frame.r31);
                }
                return Ok(SvmVcpu {
                    pc: start_here,
                    msr: SF | ME | s,
                    srr0: 0,
                    srr1: 0,
                    r3,
                });
            }
        }
        // A reflection cookie of this partition, or none at all.
        let Some(Cookie::Reflected { pc, msr, .. }) = self
            .cookies
            .get(&frame.r31)
            .copied()
            .filter(|c| matches!(c, Cookie::Reflected { lpid: l, .. } if *l == lpid))
        else {
            return bad(
                Violation::BadCookie {
                    lpid,
                    cookie: frame.r31,
                },
                self,
            );
        };
        self.cookies.remove(&frame.r31);
        let synthesized = hsrr0 != frame.r31 && hsrr0 < MAX_EXCEPTION && hsrr0 & 0x1f == 0;
        Ok(if synthesized {
            let status = super::partition::SRR1_INT_BITS;
            SvmVcpu {
                pc: hsrr0,
                msr: SF | s | ME | (hsrr1 & LE),
                srr0: pc,
                srr1: (msr & !status) | (frame.r2 & status),
                r3: frame.r0,
            }
        } else {
            SvmVcpu {
                pc,
                msr,
                srr0: 0,
                srr1: 0,
                r3: frame.r0,
            }
        })
    }

    /// The hypervisor entered a vCPU of `lpid` with `hrfid`: a violation once
    /// the LPID is a secure VM.
    pub fn hrfid(&mut self, lpid: u32) {
        if self.is_svm(lpid) {
            self.violations.push(Violation::HrfidIntoSvm { lpid });
        }
    }

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
