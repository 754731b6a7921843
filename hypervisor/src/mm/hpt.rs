//! Hashed page table (HPT) of a hash-MMU partition and the PAPR hcalls that
//! edit it (PAPR 14.5.4.1 "Page Frame Table Access": H_ENTER, H_REMOVE, H_READ,
//! H_PROTECT, H_BULK_REMOVE, H_CLEAR_MOD, H_CLEAR_REF).
//!
//! Portable: the table is reached through [`HpteStore`] and the partition's
//! memory through [`GuestMemory`], so the host tests run it over a vector with
//! guest memory at non-identity host addresses.
//!
//! Invariants:
//! - The HPT lives in hypervisor memory, never mapped to the guest. Hardware walks
//!   it with the guest's LPID, so every valid HPTE holds a **host** real page
//!   number: H_ENTER translates the guest's RPN (the whole page must lie in the
//!   partition's memory, in one host extent) and refuses anything else with
//!   H_PARAMETER; H_READ and H_REMOVE hand the guest RPN back ([`GuestMemory::guest_of`]).
//! - Entries are stored in the ISA v3.0 format (segment size B in the second
//!   doubleword, bits 58:59 LSB-numbered; the AVPN trimmed to
//!   [`HPTE_V_COMMON_BITS`]); guests speak the older format the hcalls define
//!   (B in the first doubleword), as KVM-HV converts on POWER9 (`hpte_old_to_new_*`).
//! - Argument checks and return codes are QEMU's (`hw/ppc/spapr_softmmu.c`,
//!   `spapr_hcall.c`) and KVM-HV's (`book3s_hv_rm_mmu.c`): H_PARAMETER for a bad
//!   index, page-size encoding or WIMG, H_PTEG_FULL, H_NOT_FOUND.
//! - The caller serialises all edits of one HPT (one lock per partition) and
//!   does the TLB invalidation through the `flush` callbacks, which are called
//!   after an entry was made invalid and before it is made valid again.
use crate::mm::extent::ExtentMap;
use crate::papr::hcall::HcallError;

/// First doubleword (both formats).
pub const HPTE_V_VALID: u64 = 0x1;
pub const HPTE_V_SECONDARY: u64 = 0x2;
pub const HPTE_V_LARGE: u64 = 0x4;
pub const HPTE_V_BOLTED: u64 = 0x10;
/// Software bits hardware ignores, which QEMU (HPTE_DIRTY 0x40) and KVM (HVLOCK
/// 0x40, ABSENT 0x20) use: never taken from the guest.
pub const HPTE_V_SOFTWARE: u64 = 0x60;
/// Old format: segment size B in bits 0:1 (IBM), 1 = 1 TiB.
pub const HPTE_V_SSIZE_SHIFT: u32 = 62;
pub const HPTE_V_1TB_SEG: u64 = 1 << HPTE_V_SSIZE_SHIFT;
/// What the ISA v3.0 first doubleword keeps of the old one.
pub const HPTE_V_COMMON_BITS: u64 = 0x000f_ffff_ffff_ffff;
/// The bits an AVPN compare looks at (H_AVPN: all but the low 7).
const HPTE_V_AVPN_COMPARE: u64 = !0x7f;

/// Second doubleword.
pub const HPTE_R_PP0: u64 = 1 << 63;
pub const HPTE_R_KEY_HI: u64 = 0x3000_0000_0000_0000;
/// ISA v3.0: segment size B moved here.
pub const HPTE_R_3_0_SSIZE_SHIFT: u32 = 58;
pub const HPTE_R_3_0_SSIZE_MASK: u64 = 3 << HPTE_R_3_0_SSIZE_SHIFT;
pub const HPTE_R_RPN: u64 = 0x0fff_ffff_ffff_f000;
pub const HPTE_R_KEY_LO: u64 = 0xe00;
pub const HPTE_R_R: u64 = 0x100;
pub const HPTE_R_C: u64 = 0x80;
pub const HPTE_R_W: u64 = 0x40;
pub const HPTE_R_I: u64 = 0x20;
pub const HPTE_R_M: u64 = 0x10;
pub const HPTE_R_G: u64 = 0x08;
pub const HPTE_R_WIMG: u64 = HPTE_R_W | HPTE_R_I | HPTE_R_M | HPTE_R_G;
pub const HPTE_R_N: u64 = 0x4;
pub const HPTE_R_PP: u64 = 0x3;

/// hcall flags (PAPR; Linux `hvcall.h`), IBM bit numbers of a 64-bit register.
pub const H_EXACT: u64 = 1 << (63 - 24);
pub const H_R_XLATE: u64 = 1 << (63 - 25);
pub const H_READ_4: u64 = 1 << (63 - 26);
pub const H_AVPN: u64 = 1 << (63 - 32);
pub const H_ANDCOND: u64 = 1 << (63 - 33);

/// H_BULK_REMOVE translation specifier high word (QEMU `spapr_softmmu.c`).
pub const H_BULK_REMOVE_TYPE: u64 = 0xc000_0000_0000_0000;
pub const H_BULK_REMOVE_REQUEST: u64 = 0x4000_0000_0000_0000;
pub const H_BULK_REMOVE_RESPONSE: u64 = 0x8000_0000_0000_0000;
pub const H_BULK_REMOVE_END: u64 = 0xc000_0000_0000_0000;
pub const H_BULK_REMOVE_CODE_SHIFT: u32 = 60;
pub const H_BULK_REMOVE_RC_SHIFT: u32 = 43;
pub const H_BULK_REMOVE_FLAGS: u64 = 0x0300_0000_0000_0000;
pub const H_BULK_REMOVE_ANDCOND: u64 = 0x0100_0000_0000_0000;
pub const H_BULK_REMOVE_AVPN: u64 = 0x0200_0000_0000_0000;
pub const H_BULK_REMOVE_PTEX: u64 = 0x00ff_ffff_ffff_ffff;
pub const H_BULK_REMOVE_MAX_BATCH: usize = 4;

/// HPTEs per group (PTEG), 16 bytes each.
pub const HPTES_PER_GROUP: u64 = 8;
pub const HPTE_BYTES: u64 = 16;
/// Architected HPT sizes (Linux `PPC_MIN/MAX_HPT_ORDER`).
pub const MIN_HPT_SHIFT: u32 = 18;
pub const MAX_HPT_SHIFT: u32 = 46;

/// The virtual real-mode area (ISA v3.0 Book III 5.7.3.3, "VRMA"): guest real
/// mode is translated through the HPT with this VSID in a 1 TiB segment, with
/// the base page size the PATE's PS field names; the hypervisor pre-inserts the
/// entries (KVM-HV `kvmppc_map_vrma`).
pub const VRMA_VSID: u64 = 0x1ff_ffff;
/// VRMA page: 64 KiB (PATE PS = L||LP = 0b101: L = 1, LP = 01).
pub const VRMA_PAGE_SHIFT: u32 = 16;
pub const VRMA_PS: u64 = 0b101;

/// The HPT's entries, each two big-endian doublewords in hardware; this trait
/// sees them as native values (the first doubleword, then the second).
pub trait HpteStore {
    /// Number of HPTEs: a power of two, at least one group.
    fn entries(&self) -> u64;
    fn load(&self, ptex: u64) -> (u64, u64);
    /// Stores the first doubleword (the valid bit), after what was stored before
    /// (the implementation orders it).
    fn store_v(&mut self, ptex: u64, v: u64);
    fn store_r(&mut self, ptex: u64, r: u64);
}

/// The partition's memory as H_ENTER needs it: guest real page -> host real page
/// and back.
pub trait GuestMemory {
    /// Host real address of `[gra, gra + len)` when it lies in the partition's
    /// memory and in one host-contiguous piece.
    fn host_of(&self, gra: u64, len: u64) -> Option<u64>;
    /// Guest real address of host real `hpa` when it is the partition's.
    fn guest_of(&self, hpa: u64) -> Option<u64>;
}

impl GuestMemory for ExtentMap {
    fn host_of(&self, gra: u64, len: u64) -> Option<u64> {
        self.contiguous(gra, len)
    }
    fn guest_of(&self, hpa: u64) -> Option<u64> {
        self.extents()
            .iter()
            .find(|e| hpa >= e.pa && hpa - e.pa < e.len)
            .map(|e| e.gra + (hpa - e.pa))
    }
}

/// log2 of the HPT size QEMU's pseries gives `ram` bytes of memory: 1/128 of
/// it rounded up to a power of two, within [`MIN_HPT_SHIFT`]..=[`MAX_HPT_SHIFT`]
/// (`spapr_hpt_shift_for_ramsize`).
pub fn hpt_shift_for_ram(ram: u64) -> u32 {
    let pow2 = ram.max(1).checked_next_power_of_two().unwrap_or(1 << 63);
    (pow2.trailing_zeros().saturating_sub(7)).clamp(MIN_HPT_SHIFT, MAX_HPT_SHIFT)
}

/// First doubleword of a hash partition's PATE (ISA v3.0 Book III 5.7.6.1):
/// HR = 0, HTABORG (bits 4:45, the table's real address), PS (bits 56:58, VRMA
/// base page size as L||LP), HTABSIZE (bits 59:63, log2(bytes) - 18).
pub fn pate_dw0(htab: u64, shift: u32, ps: u64) -> u64 {
    (htab & 0x0fff_ffff_fffc_0000) | ((ps & 7) << 5) | u64::from(shift - MIN_HPT_SHIFT)
}

/// Old (hcall) format -> ISA v3.0 format (KVM `hpte_old_to_new_v/r`).
pub fn old_to_new(v: u64, r: u64) -> (u64, u64) {
    (
        v & HPTE_V_COMMON_BITS,
        (r & !HPTE_R_3_0_SSIZE_MASK) | ((v >> HPTE_V_SSIZE_SHIFT) << HPTE_R_3_0_SSIZE_SHIFT),
    )
}

/// ISA v3.0 format -> old (hcall) format (KVM `hpte_new_to_old_v/r`).
pub fn new_to_old(v: u64, r: u64) -> (u64, u64) {
    (
        (v & HPTE_V_COMMON_BITS)
            | ((r & HPTE_R_3_0_SSIZE_MASK) << (HPTE_V_SSIZE_SHIFT - HPTE_R_3_0_SSIZE_SHIFT)),
        r & !HPTE_R_3_0_SSIZE_MASK,
    )
}

/// Page size (log2) of an HPTE in the old format, among those the partition is
/// offered (`ibm,segment-page-sizes`): 4 KiB (L = 0), 64 KiB in a 4 KiB segment
/// (LP 0x7) or in a 64 KiB segment (LP 0x1), as QEMU's
/// `ppc_hash64_hpte_page_shift_noslb` decodes them. `None`: bad or unoffered
/// encoding (16 MiB and 16 GiB pages are not offered: a partition's host
/// extents are only 2 MiB aligned).
pub fn page_shift(v: u64, r: u64) -> Option<u32> {
    if v & HPTE_V_LARGE == 0 {
        return Some(12);
    }
    match (r >> 12) & 0xf {
        0x7 | 0x1 => Some(16),
        _ => None,
    }
}

/// Why a `flush` callback is called: an entry was made invalid (or its
/// permissions are about to change) and the TLB may still hold it.
pub type Flush<'a> = &'a mut dyn FnMut(u64, u64, u64);

/// Translates the second doubleword of a valid entry (new or old format) back
/// to the guest's view: its RPN as a guest real address (zero when the page is
/// not the partition's, which only a hypervisor bug could cause).
fn guest_r(mem: &dyn GuestMemory, v_old: u64, r: u64) -> u64 {
    let shift = page_shift(v_old, r).unwrap_or(12);
    let rpn_mask = HPTE_R_RPN & !((1u64 << shift) - 1);
    let hpa = r & rpn_mask;
    let gra = if v_old & HPTE_V_VALID != 0 {
        mem.guest_of(hpa).unwrap_or(0)
    } else {
        0
    };
    (r & !rpn_mask) | (gra & rpn_mask)
}

fn check_ptex(store: &dyn HpteStore, ptex: u64) -> Result<(), HcallError> {
    if ptex < store.entries() {
        Ok(())
    } else {
        Err(HcallError::Parameter)
    }
}

/// H_ENTER(flags, ptex, pteh, ptel): inserts an entry in group `ptex / 8` (the
/// first free slot) or, with H_EXACT, at `ptex`. Returns the index used.
pub fn enter(
    store: &mut dyn HpteStore,
    mem: &dyn GuestMemory,
    flags: u64,
    ptex: u64,
    pteh: u64,
    ptel: u64,
) -> Result<u64, HcallError> {
    let shift = page_shift(pteh, ptel).ok_or(HcallError::Parameter)?;
    let size = 1u64 << shift;
    let rpn_mask = HPTE_R_RPN & !(size - 1);
    let gra = ptel & rpn_mask;
    // Memory must be mapped WIMG = 0010 (QEMU's rule for RAM); a partition has
    // no I/O a hash guest may map, so anything outside its memory is refused.
    if ptel & HPTE_R_WIMG != HPTE_R_M {
        return Err(HcallError::Parameter);
    }
    let hpa = mem.host_of(gra, size).ok_or(HcallError::Parameter)?;
    check_ptex(store, ptex)?;
    let slot = if flags & H_EXACT == 0 {
        let group = ptex & !(HPTES_PER_GROUP - 1);
        (group..group + HPTES_PER_GROUP)
            .find(|&i| store.load(i).0 & HPTE_V_VALID == 0)
            .ok_or(HcallError::PtegFull)?
    } else {
        if store.load(ptex).0 & HPTE_V_VALID != 0 {
            return Err(HcallError::PtegFull);
        }
        ptex
    };
    let v = (pteh & !HPTE_V_SOFTWARE) | HPTE_V_VALID;
    let r = (ptel & !rpn_mask) | hpa;
    let (v, r) = old_to_new(v, r);
    store.store_r(slot, r);
    store.store_v(slot, v);
    Ok(slot)
}

/// What H_REMOVE (and each H_BULK_REMOVE request) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The entry's doublewords as the guest sees them (old format, guest RPN).
    pub v: u64,
    pub r: u64,
}

/// H_REMOVE(flags, ptex, avpn): invalidates the entry if it is valid and passes
/// the H_AVPN / H_ANDCOND test.
pub fn remove(
    store: &mut dyn HpteStore,
    mem: &dyn GuestMemory,
    flags: u64,
    ptex: u64,
    avpn: u64,
    flush: Flush,
) -> Result<Removed, HcallError> {
    check_ptex(store, ptex)?;
    let (nv, nr) = store.load(ptex);
    let (v, r) = new_to_old(nv, nr);
    if v & HPTE_V_VALID == 0
        || (flags & H_AVPN != 0 && v & HPTE_V_AVPN_COMPARE != avpn)
        || (flags & H_ANDCOND != 0 && v & avpn != 0)
    {
        return Err(HcallError::NotFound);
    }
    let out = Removed {
        v,
        r: guest_r(mem, v, r),
    };
    store.store_v(ptex, 0);
    flush(ptex, nv, nr);
    store.store_r(ptex, 0);
    Ok(out)
}

/// H_READ(flags, ptex): one entry, or with H_READ_4 the four from `ptex & !3`,
/// as (v, r) pairs in the old format with guest RPNs.
pub fn read(
    store: &dyn HpteStore,
    mem: &dyn GuestMemory,
    flags: u64,
    ptex: u64,
) -> Result<([u64; 8], usize), HcallError> {
    check_ptex(store, ptex)?;
    let (first, n) = if flags & H_READ_4 != 0 {
        (ptex & !3, 4)
    } else {
        (ptex, 1)
    };
    let mut out = [0u64; 8];
    for i in 0..n {
        let (nv, nr) = store.load(first + i as u64);
        let (v, r) = new_to_old(nv, nr);
        out[2 * i] = v;
        out[2 * i + 1] = guest_r(mem, v, r);
    }
    Ok((out, 2 * n))
}

/// H_PROTECT(flags, ptex, avpn): sets the entry's PP0/PP, N and key from
/// `flags` (QEMU's bit placement), invalidating it around the change.
pub fn protect(
    store: &mut dyn HpteStore,
    flags: u64,
    ptex: u64,
    avpn: u64,
    flush: Flush,
) -> Result<(), HcallError> {
    check_ptex(store, ptex)?;
    let (nv, nr) = store.load(ptex);
    let (v, _) = new_to_old(nv, nr);
    if v & HPTE_V_VALID == 0 || (flags & H_AVPN != 0 && v & HPTE_V_AVPN_COMPARE != avpn) {
        return Err(HcallError::NotFound);
    }
    let mut r = nr & !(HPTE_R_PP0 | HPTE_R_PP | HPTE_R_N | HPTE_R_KEY_HI | HPTE_R_KEY_LO);
    r |= (flags << 55) & HPTE_R_PP0;
    r |= (flags << 48) & HPTE_R_KEY_HI;
    r |= flags & (HPTE_R_PP | HPTE_R_N | HPTE_R_KEY_LO);
    store.store_v(ptex, nv & !HPTE_V_VALID);
    flush(ptex, nv, nr);
    store.store_r(ptex, r);
    store.store_v(ptex, nv);
    Ok(())
}

/// H_BULK_REMOVE: up to four (translation specifier high, low) pairs in `args`
/// (r4-r11), each high word rewritten in place with its response (QEMU
/// `h_bulk_remove`). Stops at an END specifier; a bad type, or AVPN and ANDCOND
/// both set, is H_PARAMETER (with the responses so far written back).
pub fn bulk_remove(
    store: &mut dyn HpteStore,
    mem: &dyn GuestMemory,
    args: &mut [u64; 8],
    flush: Flush,
) -> Result<(), HcallError> {
    for i in 0..H_BULK_REMOVE_MAX_BATCH {
        let tsh = args[2 * i];
        let tsl = args[2 * i + 1];
        match tsh & H_BULK_REMOVE_TYPE {
            H_BULK_REMOVE_END => break,
            H_BULK_REMOVE_REQUEST => {}
            _ => return Err(HcallError::Parameter),
        }
        let mut resp = (tsh & (H_BULK_REMOVE_PTEX | H_BULK_REMOVE_FLAGS)) | H_BULK_REMOVE_RESPONSE;
        if tsh & H_BULK_REMOVE_ANDCOND != 0 && tsh & H_BULK_REMOVE_AVPN != 0 {
            args[2 * i] = resp | (2 << H_BULK_REMOVE_CODE_SHIFT);
            return Err(HcallError::Parameter);
        }
        let flags = (tsh & H_BULK_REMOVE_FLAGS) >> 26;
        let ptex = tsh & H_BULK_REMOVE_PTEX;
        let result = remove(store, mem, flags, ptex, tsl, &mut *flush);
        match result {
            Ok(rm) => {
                resp |= (rm.r & (HPTE_R_C | HPTE_R_R)) << H_BULK_REMOVE_RC_SHIFT;
                args[2 * i] = resp;
            }
            Err(HcallError::NotFound) => {
                args[2 * i] = resp | (1 << H_BULK_REMOVE_CODE_SHIFT);
            }
            Err(e) => {
                args[2 * i] = resp | (2 << H_BULK_REMOVE_CODE_SHIFT);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// H_CLEAR_REF(flags, ptex) / H_CLEAR_MOD(flags, ptex): returns the entry's
/// second doubleword as the guest sees it, with R and C as they were, and
/// clears R (or C) in the entry (KVM-HV `kvmppc_h_clear_ref/mod`; QEMU under TCG
/// has neither). `modified` selects H_CLEAR_MOD.
pub fn clear_rc(
    store: &mut dyn HpteStore,
    mem: &dyn GuestMemory,
    ptex: u64,
    modified: bool,
    flush: Flush,
) -> Result<u64, HcallError> {
    check_ptex(store, ptex)?;
    let (nv, nr) = store.load(ptex);
    let (v, r) = new_to_old(nv, nr);
    if v & HPTE_V_VALID == 0 {
        return Err(HcallError::NotFound);
    }
    let out = guest_r(mem, v, r);
    let bit = if modified { HPTE_R_C } else { HPTE_R_R };
    if nr & bit != 0 {
        // Invalid while the bit changes, so hardware cannot set it again from
        // a stale translation between the flush and the store.
        store.store_v(ptex, nv & !HPTE_V_VALID);
        flush(ptex, nv, nr);
        store.store_r(ptex, nr & !bit);
        store.store_v(ptex, nv);
    }
    Ok(out)
}

/// Inserts the bolted VRMA entries for guest real `[0, min(memory, 1 TiB))`,
/// one 64 KiB page per group, at most one per group (KVM-HV `kvmppc_map_vrma`):
/// entry 7 of group `(i ^ (VSID ^ (VSID << 25))) & mask`. Returns how many
/// bytes of guest real memory real mode reaches.
pub fn insert_vrma(
    store: &mut dyn HpteStore,
    mem: &dyn GuestMemory,
    mem_size: u64,
) -> Result<u64, HcallError> {
    let groups = store.entries() / HPTES_PER_GROUP;
    let mask = groups - 1;
    let pages = (mem_size.min(1 << 40) >> VRMA_PAGE_SHIFT).min(groups);
    let v0 = HPTE_V_1TB_SEG | (VRMA_VSID << (40 - 16)) | HPTE_V_BOLTED | HPTE_V_LARGE;
    // LP = 0x1 (64 KiB page in a 64 KiB segment), referenced and changed preset,
    // memory coherent, PP 0 (read/write for the kernel).
    let r0 = (0x1 << 12) | HPTE_R_R | HPTE_R_C | HPTE_R_M;
    for i in 0..pages {
        let addr = i << VRMA_PAGE_SHIFT;
        let hash = (i ^ (VRMA_VSID ^ (VRMA_VSID << 25))) & mask;
        let ptex = hash * HPTES_PER_GROUP + 7;
        enter(
            store,
            mem,
            H_EXACT,
            ptex,
            v0 | ((addr >> 16) & !0x7f),
            r0 | addr,
        )?;
    }
    Ok(pages << VRMA_PAGE_SHIFT)
}

/// Primary hash of a virtual page (ISA v3.0 Book III 5.7.7.3): VSID xor page
/// number in a 256 MiB segment; in a 1 TiB segment also xor VSID << 25. `ea` is
/// the offset in the segment.
pub fn primary_hash(vsid: u64, ea: u64, shift: u32, seg_1t: bool) -> u64 {
    let (mask, extra) = if seg_1t {
        ((1u64 << 40) - 1, vsid << 25)
    } else {
        ((1u64 << 28) - 1, 0)
    };
    vsid ^ extra ^ ((ea & mask) >> shift)
}

/// What H_RESIZE_HPT_PREPARE asks of the caller, once its arguments passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizePrepare {
    /// Shift 0: drop any prepared table, nothing more (H_SUCCESS).
    Cancel,
    /// A table of this size is already prepared: answer what its preparation
    /// answered (H_SUCCESS here, where preparing is synchronous).
    Prepared,
    /// Drop any prepared table of another size, allocate and zero one of
    /// 2^shift bytes, answer H_SUCCESS (or H_NO_MEM if there is no memory).
    Allocate(u32),
}

/// The largest HPT a partition of `ram` bytes may resize to: one order above
/// what it is given at creation (QEMU: "to stop a small guest claiming a huge
/// chunk of resources in the HPT"; more is H_RESOURCE).
pub fn max_resize_shift(ram: u64) -> u32 {
    hpt_shift_for_ram(ram) + 1
}

/// H_RESIZE_HPT_PREPARE(flags, shift) of a partition with `ram` bytes whose
/// prepared table (if any) has `pending` as its shift, with QEMU's checks
/// (`h_resize_hpt_prepare`, `softmmu_resize_hpt_prepare`): flags other than 0
/// and a shift outside [`MIN_HPT_SHIFT`]..=[`MAX_HPT_SHIFT`] (0 excepted) are
/// H_PARAMETER, a shift above [`max_resize_shift`] is H_RESOURCE. The caller
/// checks first that the partition runs with an HPT (else H_NOT_AVAILABLE).
pub fn resize_prepare(
    flags: u64,
    shift: u64,
    ram: u64,
    pending: Option<u32>,
) -> Result<ResizePrepare, HcallError> {
    if flags != 0 {
        return Err(HcallError::Parameter);
    }
    if shift != 0 && !(u64::from(MIN_HPT_SHIFT)..=u64::from(MAX_HPT_SHIFT)).contains(&shift) {
        return Err(HcallError::Parameter);
    }
    if shift > u64::from(max_resize_shift(ram)) {
        return Err(HcallError::Resource);
    }
    let shift = shift as u32;
    Ok(match (shift, pending) {
        (s, Some(p)) if s == p => ResizePrepare::Prepared,
        (0, _) => ResizePrepare::Cancel,
        (s, _) => ResizePrepare::Allocate(s),
    })
}

/// H_RESIZE_HPT_COMMIT(flags, shift) against the prepared table's shift
/// (QEMU `softmmu_resize_hpt_commit`): flags other than 0 are H_PARAMETER; no
/// prepared table, or one of another size, is H_CLOSED. On success the caller
/// runs [`rehash`] into the prepared table and switches to it; whatever the
/// outcome of the rehash, the prepared table is consumed.
pub fn resize_commit(flags: u64, shift: u64, pending: Option<u32>) -> Result<(), HcallError> {
    if flags != 0 {
        return Err(HcallError::Parameter);
    }
    match pending {
        Some(p) if u64::from(p) == shift => Ok(()),
        _ => Err(HcallError::Closed),
    }
}

/// The primary hash an entry was inserted under, recovered from the entry
/// (AVPN: the virtual address above bit 23) and the group it sits in (the
/// page-number bits below 23), as QEMU's `rehash_hpte` and KVM's
/// `resize_hpt_rehash_hpte` do. `v`/`r` in the old (hcall) format; `group` the
/// entry's group in a table of `old_mask + 1` groups. `None` for an entry no
/// hcall could have made (bad page size or segment size).
fn entry_hash(v: u64, r: u64, group: u64, old_mask: u64) -> Option<u64> {
    let shift = page_shift(v, r)?;
    let avpn = (v & 0x3fff_ffff_ffff_ff80) >> 7;
    let group = if v & HPTE_V_SECONDARY != 0 {
        !group
    } else {
        group
    };
    match v >> HPTE_V_SSIZE_SHIFT {
        // 256 MiB segment: 5 bits of the offset in the AVPN.
        0 => {
            let vsid = avpn >> 5;
            let offset = ((avpn & 0x1f) << 23) | (((vsid ^ group) & old_mask) << shift);
            Some(vsid ^ (offset >> shift))
        }
        // 1 TiB segment: 17 bits of the offset in the AVPN.
        1 => {
            let vsid = avpn >> 17;
            let offset =
                ((avpn & 0x1_ffff) << 23) | (((vsid ^ (vsid << 25) ^ group) & old_mask) << shift);
            Some(vsid ^ (vsid << 25) ^ (offset >> shift))
        }
        _ => None,
    }
}

/// H_RESIZE_HPT_COMMIT's rehash: every valid entry of `old` goes to the same
/// slot of the group its hash selects in `new` (zeroed; any size). A collision
/// keeps a bolted entry over a non-bolted one and drops the other (the guest
/// faults the page in again); two bolted entries colliding is H_PTEG_FULL
/// (QEMU's "bolted collision"), and `new` must then be thrown away. Entries
/// keep their host RPNs. Returns how many entries were moved.
pub fn rehash(old: &dyn HpteStore, new: &mut dyn HpteStore) -> Result<u64, HcallError> {
    let old_mask = old.entries() / HPTES_PER_GROUP - 1;
    let new_mask = new.entries() / HPTES_PER_GROUP - 1;
    let mut moved = 0;
    for ptex in 0..old.entries() {
        let (nv, nr) = old.load(ptex);
        if nv & HPTE_V_VALID == 0 {
            continue;
        }
        let (v, r) = new_to_old(nv, nr);
        let Some(hash) = entry_hash(v, r, ptex / HPTES_PER_GROUP, old_mask) else {
            // Only a hypervisor bug could have stored it; it is not carried over.
            continue;
        };
        let group = if v & HPTE_V_SECONDARY != 0 {
            !hash & new_mask
        } else {
            hash & new_mask
        };
        let to = group * HPTES_PER_GROUP + ptex % HPTES_PER_GROUP;
        let (there, _) = new.load(to);
        if there & HPTE_V_VALID != 0 {
            match (there & HPTE_V_BOLTED != 0, v & HPTE_V_BOLTED != 0) {
                (true, true) => return Err(HcallError::PtegFull),
                (true, false) | (false, false) => continue,
                (false, true) => moved -= 1,
            }
        }
        new.store_r(to, nr);
        new.store_v(to, nv);
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// An HPT of `n` entries in a vector, counting flushes.
    struct Table {
        e: Vec<(u64, u64)>,
    }

    impl HpteStore for Table {
        fn entries(&self) -> u64 {
            self.e.len() as u64
        }
        fn load(&self, ptex: u64) -> (u64, u64) {
            self.e[ptex as usize]
        }
        fn store_v(&mut self, ptex: u64, v: u64) {
            self.e[ptex as usize].0 = v;
        }
        fn store_r(&mut self, ptex: u64, r: u64) {
            self.e[ptex as usize].1 = r;
        }
    }

    fn table(shift: u32) -> Table {
        Table {
            e: vec![(0, 0); (1usize << shift) / 16],
        }
    }

    /// 64 MiB of guest memory in two extents at odd host places: guest
    /// [0, 32M) at host 0x4_0000_0000, [32M, 64M) at host 0x1_0000_0000.
    fn mem() -> ExtentMap {
        ExtentMap::new(&[(0x4_0000_0000, 32 << 20), (0x1_0000_0000, 32 << 20)]).unwrap()
    }

    const MEM_SIZE: u64 = 64 << 20;
    /// A 4 KiB page, 256 MiB segment, VSID 0x123, EA page 5.
    const V4K: u64 = (0x123 << 12) | HPTE_V_VALID;

    fn nop() -> impl FnMut(u64, u64, u64) {
        |_, _, _| {}
    }

    #[test]
    fn sizes_as_qemu() {
        assert_eq!(hpt_shift_for_ram(512 << 20), 22);
        assert_eq!(hpt_shift_for_ram(1 << 30), 23);
        assert_eq!(hpt_shift_for_ram(384 << 20), 22);
        assert_eq!(hpt_shift_for_ram(16 << 20), 18);
        assert_eq!(hpt_shift_for_ram(1 << 62), 46);
    }

    #[test]
    fn pate_encoding() {
        // HTABORG, PS 64K (0b101), HTABSIZE 22 - 18 = 4; HR (bit 0) clear.
        assert_eq!(
            pate_dw0(0x1_0040_0000, 22, VRMA_PS),
            0x1_0040_0000 | 0xa0 | 4
        );
        assert_eq!(pate_dw0(0x1_0040_0000, 22, VRMA_PS) >> 63, 0);
    }

    #[test]
    fn format_conversion_round_trips() {
        let v = HPTE_V_1TB_SEG | 0x000a_bcde_f000_0015;
        let r = 0x0000_0001_2345_6190;
        let (nv, nr) = old_to_new(v, r);
        assert_eq!(nv, 0x000a_bcde_f000_0015);
        assert_eq!(nr, r | (1 << 58));
        assert_eq!(new_to_old(nv, nr), (v, r));
    }

    #[test]
    fn page_size_encodings() {
        assert_eq!(page_shift(V4K, 0x1000), Some(12));
        assert_eq!(page_shift(V4K | HPTE_V_LARGE, 0x1_0000 | 0x1000), Some(16));
        assert_eq!(page_shift(V4K | HPTE_V_LARGE, 0x1_0000 | 0x7000), Some(16));
        // 16 MiB (LP 0) and 16 GiB (LP 3) are not offered; nor junk.
        assert_eq!(page_shift(V4K | HPTE_V_LARGE, 0x100_0000), None);
        assert_eq!(page_shift(V4K | HPTE_V_LARGE, 0x3000), None);
        assert_eq!(page_shift(V4K | HPTE_V_LARGE, 0x2000), None);
    }

    #[test]
    fn enter_translates_and_read_returns_guest_rpn() {
        let (mut t, m) = (table(18), mem());
        // Guest page 33 MiB + 4K: second extent, host 0x1_0010_1000.
        let gra = (33 << 20) + 0x1000;
        let ptel = gra | HPTE_R_M | HPTE_R_PP;
        let slot = enter(&mut t, &m, 0, 16 + 3, V4K | 0x40, ptel).unwrap();
        assert_eq!(slot, 16, "first free slot of group 2");
        let (hv, hr) = t.load(16);
        assert_eq!(hr & HPTE_R_RPN, 0x1_0010_1000, "host RPN stored");
        assert_eq!(hv & HPTE_V_SOFTWARE, 0, "software bits not taken");
        let (out, n) = read(&t, &m, 0, 16).unwrap();
        assert_eq!(n, 2);
        assert_eq!(out[0], V4K);
        assert_eq!(out[1], ptel, "guest RPN handed back");
        // Next insert in the same group takes the next slot.
        assert_eq!(enter(&mut t, &m, 0, 17, V4K, ptel).unwrap(), 17);
        let (out, n) = read(&t, &m, H_READ_4, 19).unwrap();
        assert_eq!(n, 8);
        assert_eq!((out[0], out[2], out[4]), (V4K, V4K, 0));
    }

    #[test]
    fn enter_refuses_outside_memory_bad_wimg_and_bad_index() {
        let (mut t, m) = (table(18), mem());
        let n = t.entries();
        let p = HcallError::Parameter;
        // Past the end, straddling it, far away.
        assert_eq!(enter(&mut t, &m, 0, 0, V4K, MEM_SIZE | HPTE_R_M), Err(p));
        assert_eq!(
            enter(&mut t, &m, 0, 0, V4K, 0x0fff_ffff_ffff_f000 | HPTE_R_M),
            Err(p)
        );
        let big = V4K | HPTE_V_LARGE;
        assert_eq!(
            enter(
                &mut t,
                &m,
                0,
                0,
                big,
                (MEM_SIZE - 0x1_0000) | 0x1000 | HPTE_R_M
            ),
            Ok(0),
            "the last 64K page is inside"
        );
        assert_eq!(
            enter(&mut t, &m, 0, 8, big, MEM_SIZE | 0x1000 | HPTE_R_M),
            Err(p)
        );
        // WIMG: RAM must be M only.
        for wimg in [
            0,
            HPTE_R_I,
            HPTE_R_I | HPTE_R_M,
            HPTE_R_M | HPTE_R_G,
            HPTE_R_W | HPTE_R_M,
        ] {
            assert_eq!(
                enter(&mut t, &m, 0, 0, V4K, 0x2000 | wimg),
                Err(p),
                "{wimg:#x}"
            );
        }
        // Bad page size, bad index.
        assert_eq!(enter(&mut t, &m, 0, 0, big, 0x2000 | HPTE_R_M), Err(p));
        assert_eq!(enter(&mut t, &m, 0, n, V4K, 0x2000 | HPTE_R_M), Err(p));
        assert!(
            t.e.iter().skip(1).all(|e| *e == (0, 0)),
            "nothing else written"
        );
    }

    #[test]
    fn full_group_and_exact() {
        let (mut t, m) = (table(18), mem());
        for i in 0..8 {
            assert_eq!(enter(&mut t, &m, 0, 8, V4K, 0x1000 | HPTE_R_M), Ok(8 + i));
        }
        assert_eq!(
            enter(&mut t, &m, 0, 8, V4K, 0x1000 | HPTE_R_M),
            Err(HcallError::PtegFull)
        );
        assert_eq!(
            enter(&mut t, &m, H_EXACT, 13, V4K, 0x1000 | HPTE_R_M),
            Err(HcallError::PtegFull)
        );
        assert_eq!(
            enter(&mut t, &m, H_EXACT, 21, V4K, 0x1000 | HPTE_R_M),
            Ok(21)
        );
    }

    #[test]
    fn remove_with_avpn_and_andcond() {
        let (mut t, m) = (table(18), mem());
        let ptel = 0x5000 | HPTE_R_M;
        enter(&mut t, &m, H_EXACT, 40, V4K | HPTE_V_BOLTED, ptel).unwrap();
        let mut flushed = Vec::new();
        let mut f = |p: u64, _: u64, _: u64| flushed.push(p);
        let avpn = V4K & !0x7f;
        assert_eq!(
            remove(&mut t, &m, H_AVPN, 40, avpn + 0x80, &mut f),
            Err(HcallError::NotFound)
        );
        assert_eq!(
            remove(&mut t, &m, H_ANDCOND, 40, HPTE_V_BOLTED, &mut f),
            Err(HcallError::NotFound),
            "bolted entries survive an ANDCOND on the bolted bit"
        );
        assert_eq!(
            remove(&mut t, &m, H_AVPN, 40, avpn, &mut f),
            Ok(Removed {
                v: V4K | HPTE_V_BOLTED,
                r: ptel
            })
        );
        assert_eq!(t.load(40), (0, 0), "nothing of the host page left");
        assert_eq!(
            remove(&mut t, &m, 0, 40, 0, &mut f),
            Err(HcallError::NotFound)
        );
        assert_eq!(
            remove(&mut t, &m, 0, 1 << 20, 0, &mut f),
            Err(HcallError::Parameter)
        );
        assert_eq!(flushed, [40]);
    }

    #[test]
    fn protect_sets_pp_n_key_and_flushes() {
        let (mut t, m) = (table(18), mem());
        enter(&mut t, &m, H_EXACT, 3, V4K, 0x7000 | HPTE_R_M | HPTE_R_R).unwrap();
        let mut n = 0;
        let mut f = |_: u64, _: u64, _: u64| n += 1;
        // PP0 (flags 0x100), key hi (0x3000), PP 0x3, N, key lo 0xe00.
        protect(&mut t, 0x100 | 0x1000 | 0x3 | 0x4 | 0x200, 3, 0, &mut f).unwrap();
        let (out, _) = read(&t, &m, 0, 3).unwrap();
        assert_eq!(
            out[1],
            HPTE_R_PP0 | 0x1000_0000_0000_0000 | 0x7000 | HPTE_R_M | HPTE_R_R | 0x200 | 0x4 | 0x3
        );
        assert_eq!(out[0], V4K, "valid again");
        assert_eq!(
            protect(&mut t, H_AVPN, 3, 0x80, &mut f),
            Err(HcallError::NotFound)
        );
        assert_eq!(protect(&mut t, 0, 4, 0, &mut f), Err(HcallError::NotFound));
        assert_eq!(
            protect(&mut t, 0, u64::MAX, 0, &mut f),
            Err(HcallError::Parameter)
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn bulk_remove_responses_as_qemu() {
        let (mut t, m) = (table(18), mem());
        enter(
            &mut t,
            &m,
            H_EXACT,
            1,
            V4K,
            0x1000 | HPTE_R_M | HPTE_R_R | HPTE_R_C,
        )
        .unwrap();
        enter(&mut t, &m, H_EXACT, 2, V4K, 0x2000 | HPTE_R_M).unwrap();
        let mut args = [
            H_BULK_REMOVE_REQUEST | 1,
            0,
            H_BULK_REMOVE_REQUEST | 5,
            0,
            H_BULK_REMOVE_REQUEST | H_BULK_REMOVE_AVPN | 2,
            V4K & !0x7f,
            H_BULK_REMOVE_END,
            0,
        ];
        bulk_remove(&mut t, &m, &mut args, &mut nop()).unwrap();
        assert_eq!(
            args[0],
            H_BULK_REMOVE_RESPONSE | 1 | ((HPTE_R_R | HPTE_R_C) << 43)
        );
        assert_eq!(args[2], H_BULK_REMOVE_RESPONSE | (1 << 60) | 5, "not found");
        assert_eq!(args[4], H_BULK_REMOVE_RESPONSE | H_BULK_REMOVE_AVPN | 2);
        assert_eq!(t.load(1).0 | t.load(2).0, 0);
        // A bad type, and AVPN with ANDCOND, are H_PARAMETER.
        let mut bad = [0u64; 8];
        assert_eq!(
            bulk_remove(&mut t, &m, &mut bad, &mut nop()),
            Err(HcallError::Parameter)
        );
        let mut both = [
            H_BULK_REMOVE_REQUEST | H_BULK_REMOVE_FLAGS | 1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            bulk_remove(&mut t, &m, &mut both, &mut nop()),
            Err(HcallError::Parameter)
        );
        assert_eq!(both[0] >> 60 & 3, 2, "response code PARM");
        // An index out of range is H_PARAMETER too.
        let mut far = [H_BULK_REMOVE_REQUEST | 0xff_ffff, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            bulk_remove(&mut t, &m, &mut far, &mut nop()),
            Err(HcallError::Parameter)
        );
    }

    #[test]
    fn clear_ref_and_mod() {
        let (mut t, m) = (table(18), mem());
        let ptel = 0x9000 | HPTE_R_M | HPTE_R_R | HPTE_R_C;
        enter(&mut t, &m, H_EXACT, 9, V4K, ptel).unwrap();
        let mut n = 0;
        let mut f = |_: u64, _: u64, _: u64| n += 1;
        assert_eq!(clear_rc(&mut t, &m, 9, false, &mut f), Ok(ptel));
        assert_eq!(clear_rc(&mut t, &m, 9, false, &mut f), Ok(ptel & !HPTE_R_R));
        assert_eq!(clear_rc(&mut t, &m, 9, true, &mut f), Ok(ptel & !HPTE_R_R));
        assert_eq!(clear_rc(&mut t, &m, 9, true, &mut f), Ok(0x9000 | HPTE_R_M));
        assert_eq!(
            clear_rc(&mut t, &m, 10, true, &mut f),
            Err(HcallError::NotFound)
        );
        assert_eq!(
            clear_rc(&mut t, &m, 1 << 30, true, &mut f),
            Err(HcallError::Parameter)
        );
        assert_eq!(n, 2, "a flush only when a bit was set");
        assert_eq!(t.load(9).0 & HPTE_V_VALID, 1);
    }

    #[test]
    fn vrma_entries_where_hardware_looks() {
        let (mut t, m) = (table(18), mem());
        let reach = insert_vrma(&mut t, &m, MEM_SIZE).unwrap();
        assert_eq!(reach, MEM_SIZE, "2048 groups cover 64 MiB of 64K pages");
        let mask = t.entries() / 8 - 1;
        for gra in [0u64, 0x1_0000, (32 << 20) + 0x5_0000, MEM_SIZE - 0x1_0000] {
            // The lookup hardware does for real-mode address `gra`.
            let hash = primary_hash(VRMA_VSID, gra, 16, true) & mask;
            let (v, r) = t.load(hash * 8 + 7);
            let (ov, or) = new_to_old(v, r);
            assert_eq!(ov & HPTE_V_VALID | ov & HPTE_V_BOLTED, 0x11);
            // AVPN: VSID and the page's high bits, 1 TiB segment.
            assert_eq!(ov >> 62, 1);
            assert_eq!(
                (ov & 0x3fff_ffff_ffff_ff80) >> 7,
                (VRMA_VSID << 17) | (gra >> 23)
            );
            assert_eq!(or & HPTE_R_RPN & !0xffff, m.translate(gra).unwrap());
            assert_eq!(page_shift(ov, or), Some(16));
        }
        let used = t.e.iter().filter(|e| e.0 & HPTE_V_VALID != 0).count() as u64;
        assert_eq!(used, MEM_SIZE >> 16);
        // A small table covers one page per group.
        let mut small = table(18);
        let big = ExtentMap::new(&[(0x8000_0000, 1 << 30)]).unwrap();
        assert_eq!(insert_vrma(&mut small, &big, 1 << 30).unwrap(), 2048 << 16);
    }

    #[test]
    fn resize_prepare_checks_as_qemu() {
        let ram = 32 << 20; // default shift 18, at most 19
        let p = HcallError::Parameter;
        assert_eq!(max_resize_shift(ram), 19);
        assert_eq!(resize_prepare(1, 19, ram, None), Err(p), "flags");
        assert_eq!(resize_prepare(0, 17, ram, None), Err(p), "below 2^18");
        assert_eq!(resize_prepare(0, 47, ram, None), Err(p), "above 2^46");
        assert_eq!(resize_prepare(0, 1 << 40, ram, None), Err(p));
        assert_eq!(
            resize_prepare(0, 20, ram, None),
            Err(HcallError::Resource),
            "two orders above the default"
        );
        assert_eq!(
            resize_prepare(0, 19, ram, None),
            Ok(ResizePrepare::Allocate(19))
        );
        assert_eq!(
            resize_prepare(0, 19, ram, Some(19)),
            Ok(ResizePrepare::Prepared),
            "asked again while prepared"
        );
        assert_eq!(
            resize_prepare(0, 18, ram, Some(19)),
            Ok(ResizePrepare::Allocate(18)),
            "another size replaces it"
        );
        assert_eq!(
            resize_prepare(0, 0, ram, Some(19)),
            Ok(ResizePrepare::Cancel)
        );
        assert_eq!(resize_prepare(0, 0, ram, None), Ok(ResizePrepare::Cancel));
        // A 1 GiB partition (default 2^23) may go to 2^24.
        assert_eq!(
            resize_prepare(0, 24, 1 << 30, None),
            Ok(ResizePrepare::Allocate(24))
        );
    }

    #[test]
    fn resize_commit_checks_as_qemu() {
        assert_eq!(resize_commit(0, 19, Some(19)), Ok(()));
        assert_eq!(resize_commit(2, 19, Some(19)), Err(HcallError::Parameter));
        assert_eq!(resize_commit(0, 19, None), Err(HcallError::Closed));
        assert_eq!(resize_commit(0, 20, Some(19)), Err(HcallError::Closed));
        assert_eq!(HcallError::Closed.code(), 2, "H_CLOSED in hvcall.h");
    }

    /// Where hardware looks for the entry of virtual page `(vsid, ea)` in
    /// `t`: the primary group, or the secondary one.
    fn lookup(t: &Table, vsid: u64, ea: u64, shift: u32, seg_1t: bool) -> Option<(u64, u64)> {
        let mask = t.entries() / 8 - 1;
        let hash = primary_hash(vsid, ea, shift, seg_1t);
        for (group, sec) in [(hash & mask, 0), (!hash & mask, HPTE_V_SECONDARY)] {
            for slot in 0..8 {
                let (v, r) = t.load(group * 8 + slot);
                let (ov, or) = new_to_old(v, r);
                let seg = if seg_1t { 40 } else { 28 };
                let want = (vsid << (seg - 23)) | ((ea & ((1 << seg) - 1)) >> 23);
                let avpn = (ov & 0x3fff_ffff_ffff_ff80) >> 7;
                if ov & HPTE_V_VALID != 0
                    && ov & HPTE_V_SECONDARY == sec
                    && avpn == want
                    && (ov >> 62 == 1) == seg_1t
                {
                    return Some((ov, or));
                }
            }
        }
        None
    }

    /// An old-format entry for `(vsid, ea)`, as a guest computes it.
    fn hpte(vsid: u64, ea: u64, shift: u32, seg_1t: bool) -> u64 {
        let (seg, b) = if seg_1t {
            (40, HPTE_V_1TB_SEG)
        } else {
            (28, 0)
        };
        // The AVPN: the virtual address (VSID || offset) above bit 23.
        let avpn = (vsid << (seg - 23)) | ((ea & ((1 << seg) - 1)) >> 23);
        let large = if shift > 12 { HPTE_V_LARGE } else { 0 };
        b | (avpn << 7) | large | HPTE_V_VALID
    }

    #[test]
    fn rehash_moves_entries_where_hardware_looks() {
        let m = mem();
        for (from, to) in [(18, 20), (20, 18), (19, 19)] {
            let mut old = table(from);
            let reach = insert_vrma(&mut old, &m, MEM_SIZE).unwrap();
            // 4K and 64K pages in 256M and 1T segments, primary and secondary
            // groups, bolted and not, some with page-number bits below 23 that
            // only the group index holds.
            let mut pages = Vec::new();
            for (i, &(vsid, seg_1t, shift)) in [
                (0x123u64, false, 12u32),
                (0x4_5678, false, 16),
                (0x9_abcd, true, 12),
                (0x77, true, 16),
            ]
            .iter()
            .enumerate()
            {
                for k in 0..6u64 {
                    let ea = (k * 0x13_5000 + (i as u64) * 0x40_0000) & !((1 << shift) - 1);
                    let v = hpte(vsid, ea, shift, seg_1t);
                    let gra = 0x20_0000 + ((i as u64 * 6 + k) << 16);
                    let lp = if shift == 16 { 0x1000 } else { 0 };
                    let ptel = gra | lp | HPTE_R_M;
                    let hash = primary_hash(vsid, ea, shift, seg_1t);
                    let mask = old.entries() / 8 - 1;
                    let (group, sec) = if k % 3 == 2 {
                        (!hash & mask, HPTE_V_SECONDARY)
                    } else {
                        (hash & mask, 0)
                    };
                    let bolted = if k % 2 == 0 { HPTE_V_BOLTED } else { 0 };
                    enter(&mut old, &m, 0, group * 8, v | sec | bolted, ptel).unwrap();
                    pages.push((vsid, ea, shift, seg_1t, v | sec | bolted, ptel));
                }
            }
            let valid = old.e.iter().filter(|e| e.0 & HPTE_V_VALID != 0).count() as u64;
            let mut new = table(to);
            assert_eq!(rehash(&old, &mut new), Ok(valid), "{from} -> {to}");
            for &(vsid, ea, shift, seg_1t, v, ptel) in &pages {
                let (ov, or) = lookup(&new, vsid, ea, shift, seg_1t)
                    .unwrap_or_else(|| panic!("{from}->{to} {vsid:#x} {ea:#x} lost"));
                assert_eq!(ov, v);
                // Host RPN kept: read back through the new table as the guest's.
                assert_eq!(guest_r(&m, ov, or), ptel);
            }
            // Guest real mode still reaches all it reached.
            for gra in (0..reach).step_by(1 << 16) {
                let (ov, _) = lookup(&new, VRMA_VSID, gra, 16, true).expect("VRMA entry");
                assert_ne!(ov & HPTE_V_BOLTED, 0);
            }
        }
    }

    #[test]
    fn rehash_collisions() {
        let m = mem();
        // Two bolted entries of one slot in groups that merge when halving.
        let mut old = table(19);
        let groups = old.entries() / 8;
        let (a, b) = (5u64, 5 + groups / 2);
        for (vsid, bolted) in [(a, HPTE_V_BOLTED), (b, HPTE_V_BOLTED)] {
            enter(
                &mut old,
                &m,
                H_EXACT,
                vsid * 8 + 3,
                hpte(vsid, 0, 12, false) | bolted,
                0x1000 | HPTE_R_M,
            )
            .unwrap();
        }
        let mut new = table(18);
        assert_eq!(rehash(&old, &mut new), Err(HcallError::PtegFull));
        // A bolted one wins over a non-bolted one, in either order.
        for first_bolted in [true, false] {
            let mut old = table(19);
            let (fb, sb) = if first_bolted {
                (HPTE_V_BOLTED, 0)
            } else {
                (0, HPTE_V_BOLTED)
            };
            enter(
                &mut old,
                &m,
                H_EXACT,
                a * 8 + 3,
                hpte(a, 0, 12, false) | fb,
                0x1000 | HPTE_R_M,
            )
            .unwrap();
            enter(
                &mut old,
                &m,
                H_EXACT,
                b * 8 + 3,
                hpte(b, 0, 12, false) | sb,
                0x2000 | HPTE_R_M,
            )
            .unwrap();
            let mut new = table(18);
            assert_eq!(rehash(&old, &mut new), Ok(1));
            let (v, _) = new_to_old(new.load(a * 8 + 3).0, new.load(a * 8 + 3).1);
            assert_ne!(v & HPTE_V_BOLTED, 0, "bolted kept");
            assert_eq!(new.e.iter().filter(|e| e.0 & HPTE_V_VALID != 0).count(), 1);
        }
    }

    #[test]
    fn extent_reverse_map() {
        let m = mem();
        assert_eq!(m.guest_of(0x1_0000_0000 + 5), Some((32 << 20) + 5));
        assert_eq!(m.guest_of(0x4_0000_1000), Some(0x1000));
        assert_eq!(m.guest_of(0x4_0200_0000), None);
        assert_eq!(
            m.host_of((32 << 20) - 0x1000, 0x2000),
            None,
            "straddles extents"
        );
    }
}
