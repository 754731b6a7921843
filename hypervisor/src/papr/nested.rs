//! Nested virtualization, KVM-HV's API v1: the L0 (Paprika) side of the hcalls a
//! partition running a hypervisor (the L1: Linux `kvm-hv`, or a test guest) uses
//! to run its own guests (L2s): H_SET_PARTITION_TABLE, H_ENTER_NESTED,
//! H_TLB_INVALIDATE, H_COPY_TOFROM_GUEST and the NESTED form of
//! H_RPT_INVALIDATE.
//!
//! Reference: Linux `arch/powerpc/kvm/book3s_hv_nested.c` (the only hardware L0
//! of the API; QEMU's `hw/ppc/spapr_nested.c` is a TCG-only L0 that keeps no
//! shadow tables), `arch/powerpc/include/asm/hvcall.h` for the structures.
//!
//! Portable: this file decodes and validates what the L1 passes (the
//! `hv_guest_state` and `pt_regs` buffers, in the L1's byte order; the PTCR;
//! tlbie fields) and decides what an L2 exit means. Guest memory is reached by
//! the caller (`partition::nested`); the shadow partition-scoped translation is
//! in `mm::nested`.
use super::hcall::HcallError;

pub const H_SET_PARTITION_TABLE: u64 = 0xf800;
pub const H_ENTER_NESTED: u64 = 0xf804;
pub const H_TLB_INVALIDATE: u64 = 0xf808;
pub const H_COPY_TOFROM_GUEST: u64 = 0xf80c;

/// Byte order of the L1's structures: KVM byte-swaps them when the caller's
/// MSR\[LE\] differs from its own (`kvmppc_need_byteswap`), so they are in the
/// byte order the L1 ran in when it made the hcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Big,
    Little,
}

impl ByteOrder {
    /// The byte order of a caller whose MSR (SRR1 of the `sc`) is `msr`.
    pub const fn of_msr(msr: u64) -> Self {
        if msr & 1 != 0 {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        }
    }

    fn get64(self, b: &[u8], off: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[off..off + 8]);
        match self {
            ByteOrder::Big => u64::from_be_bytes(w),
            ByteOrder::Little => u64::from_le_bytes(w),
        }
    }

    fn get32(self, b: &[u8], off: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[off..off + 4]);
        match self {
            ByteOrder::Big => u32::from_be_bytes(w),
            ByteOrder::Little => u32::from_le_bytes(w),
        }
    }

    fn put64(self, b: &mut [u8], off: usize, v: u64) {
        let w = match self {
            ByteOrder::Big => v.to_be_bytes(),
            ByteOrder::Little => v.to_le_bytes(),
        };
        b[off..off + 8].copy_from_slice(&w);
    }

    fn put32(self, b: &mut [u8], off: usize, v: u32) {
        let w = match self {
            ByteOrder::Big => v.to_be_bytes(),
            ByteOrder::Little => v.to_le_bytes(),
        };
        b[off..off + 4].copy_from_slice(&w);
    }
}

/// `struct hv_guest_state` (hvcall.h): version 1 ends after `ppr`, version 2
/// adds DAWR1/DAWRX1.
pub const HV_GUEST_STATE_V1_SIZE: usize = 232;
pub const HV_GUEST_STATE_V2_SIZE: usize = 248;
/// `pt_regs` as the API carries it (QEMU's `kvmppc_pt_regs`): gpr\[32\], nip,
/// msr, orig_gpr3, ctr, link, xer, ccr, softe, trap, dar, dsisr, result. Linux
/// copies its own, longer `struct pt_regs`; the fields up to here are the same.
pub const PT_REGS_SIZE: usize = 352;

/// Size of an `hv_guest_state` of `version`, or `None` for a version this L0
/// does not know (KVM: `hv_guest_state_size` fails, H_PARAMETER).
pub const fn hv_guest_state_size(version: u64) -> Option<usize> {
    match version {
        1 => Some(HV_GUEST_STATE_V1_SIZE),
        2 => Some(HV_GUEST_STATE_V2_SIZE),
        _ => None,
    }
}

// Byte offsets in `struct hv_guest_state`.
const HV_VERSION: usize = 0;
const HV_LPID: usize = 8;
const HV_VCPU_TOKEN: usize = 12;
/// The u64 fields from `lpcr` to `ppr` are contiguous from here, in the order of
/// [`HvGuestState::u64_fields`].
const HV_LPCR: usize = 16;
const HV_DAWR1: usize = 232;
const HV_DAWRX1: usize = 240;

/// The L2's hypervisor-visible state the L1 passes to H_ENTER_NESTED and gets
/// back updated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HvGuestState {
    pub version: u64,
    /// The L1's number for the L2 (its index in the L1's partition table).
    pub lpid: u32,
    /// Which of the L1's vCPUs of that L2 this is.
    pub vcpu_token: u32,
    pub lpcr: u64,
    pub pcr: u64,
    pub amor: u64,
    pub dpdes: u64,
    pub hfscr: u64,
    pub tb_offset: u64,
    pub dawr0: u64,
    pub dawrx0: u64,
    pub ciabr: u64,
    /// Timebase value (in the L1's time) at which the L2 must stop.
    pub hdec_expiry: u64,
    pub purr: u64,
    pub spurr: u64,
    pub ic: u64,
    pub vtb: u64,
    pub hdar: u64,
    pub hdsisr: u64,
    pub heir: u64,
    pub asdr: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub sprg: [u64; 4],
    pub pidr: u64,
    pub cfar: u64,
    pub ppr: u64,
    pub dawr1: u64,
    pub dawrx1: u64,
}

impl HvGuestState {
    /// Reads the version field from the first 8 bytes.
    pub fn version_of(first: &[u8; 8], order: ByteOrder) -> u64 {
        order.get64(first, HV_VERSION)
    }

    /// Decodes a buffer that holds at least the size its version names.
    /// H_PARAMETER for an unknown version or a short buffer.
    pub fn decode(buf: &[u8], order: ByteOrder) -> Result<Self, HcallError> {
        if buf.len() < 8 {
            return Err(HcallError::Parameter);
        }
        let version = order.get64(buf, HV_VERSION);
        let size = hv_guest_state_size(version).ok_or(HcallError::Parameter)?;
        if buf.len() < size {
            return Err(HcallError::Parameter);
        }
        let mut s = HvGuestState {
            version,
            lpid: order.get32(buf, HV_LPID),
            vcpu_token: order.get32(buf, HV_VCPU_TOKEN),
            ..Default::default()
        };
        for (i, f) in s.u64_fields().into_iter().enumerate() {
            *f = order.get64(buf, HV_LPCR + 8 * i);
        }
        if version >= 2 {
            s.dawr1 = order.get64(buf, HV_DAWR1);
            s.dawrx1 = order.get64(buf, HV_DAWRX1);
        }
        Ok(s)
    }

    /// Encodes into `buf` (at least [`hv_guest_state_size`] of `self.version`
    /// bytes, else nothing is written and `false` is returned).
    pub fn encode(&self, buf: &mut [u8], order: ByteOrder) -> bool {
        let Some(size) = hv_guest_state_size(self.version) else {
            return false;
        };
        if buf.len() < size {
            return false;
        }
        order.put64(buf, HV_VERSION, self.version);
        order.put32(buf, HV_LPID, self.lpid);
        order.put32(buf, HV_VCPU_TOKEN, self.vcpu_token);
        let mut copy = self.clone();
        for (i, f) in copy.u64_fields().into_iter().enumerate() {
            order.put64(buf, HV_LPCR + 8 * i, *f);
        }
        if self.version >= 2 {
            order.put64(buf, HV_DAWR1, self.dawr1);
            order.put64(buf, HV_DAWRX1, self.dawrx1);
        }
        true
    }

    fn u64_fields(&mut self) -> [&mut u64; 27] {
        let [s0, s1, s2, s3] = &mut self.sprg;
        [
            &mut self.lpcr,
            &mut self.pcr,
            &mut self.amor,
            &mut self.dpdes,
            &mut self.hfscr,
            &mut self.tb_offset,
            &mut self.dawr0,
            &mut self.dawrx0,
            &mut self.ciabr,
            &mut self.hdec_expiry,
            &mut self.purr,
            &mut self.spurr,
            &mut self.ic,
            &mut self.vtb,
            &mut self.hdar,
            &mut self.hdsisr,
            &mut self.heir,
            &mut self.asdr,
            &mut self.srr0,
            &mut self.srr1,
            s0,
            s1,
            s2,
            s3,
            &mut self.pidr,
            &mut self.cfar,
            &mut self.ppr,
        ]
    }
}

/// The L2's problem-state registers (`pt_regs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtRegs {
    pub gpr: [u64; 32],
    pub nip: u64,
    pub msr: u64,
    pub orig_gpr3: u64,
    pub ctr: u64,
    pub link: u64,
    pub xer: u64,
    pub ccr: u64,
    pub softe: u64,
    pub trap: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub result: u64,
}

impl PtRegs {
    /// H_PARAMETER for a buffer shorter than [`PT_REGS_SIZE`].
    pub fn decode(buf: &[u8], order: ByteOrder) -> Result<Self, HcallError> {
        if buf.len() < PT_REGS_SIZE {
            return Err(HcallError::Parameter);
        }
        let mut r = PtRegs::default();
        for (i, g) in r.gpr.iter_mut().enumerate() {
            *g = order.get64(buf, 8 * i);
        }
        for (i, f) in r.tail().into_iter().enumerate() {
            *f = order.get64(buf, 256 + 8 * i);
        }
        Ok(r)
    }

    /// Encodes into the first [`PT_REGS_SIZE`] bytes of `buf` (false if shorter).
    pub fn encode(&self, buf: &mut [u8], order: ByteOrder) -> bool {
        if buf.len() < PT_REGS_SIZE {
            return false;
        }
        for (i, g) in self.gpr.iter().enumerate() {
            order.put64(buf, 8 * i, *g);
        }
        let mut copy = self.clone();
        for (i, f) in copy.tail().into_iter().enumerate() {
            order.put64(buf, 256 + 8 * i, *f);
        }
        true
    }

    fn tail(&mut self) -> [&mut u64; 12] {
        [
            &mut self.nip,
            &mut self.msr,
            &mut self.orig_gpr3,
            &mut self.ctr,
            &mut self.link,
            &mut self.xer,
            &mut self.ccr,
            &mut self.softe,
            &mut self.trap,
            &mut self.dar,
            &mut self.dsisr,
            &mut self.result,
        ]
    }
}

/// Largest PATS an L1 may register: 2^(12 + 4) bytes = 4096 entries, KVM's
/// `KVM_MAX_NESTED_GUESTS_SHIFT` (12).
pub const MAX_L1_PATS: u64 = 4;
/// PTCR: partition table base, ISA bits 4:51.
const PTCR_BASE_MASK: u64 = 0x0FFF_FFFF_FFFF_F000;
/// PTCR: partition table size, bits 59:63.
const PTCR_PATS_MASK: u64 = 0x1F;

/// The partition table an L1 registered with H_SET_PARTITION_TABLE: guest real
/// address (of the L1) and size field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1PartitionTable {
    pub base: u64,
    pub pats: u8,
}

impl L1PartitionTable {
    pub const fn bytes(&self) -> u64 {
        1 << (12 + self.pats as u32)
    }

    pub const fn entries(&self) -> u64 {
        self.bytes() / 16
    }

    /// L1 guest real address of the entry of L2 `lpid`. H_PARAMETER for LPID 0
    /// (QEMU: the L1's own) or beyond the table (KVM).
    pub fn entry_addr(&self, lpid: u32) -> Result<u64, HcallError> {
        let lpid = u64::from(lpid);
        if lpid == 0 || lpid >= self.entries() {
            return Err(HcallError::Parameter);
        }
        Ok(self.base + 16 * lpid)
    }
}

/// Checks H_SET_PARTITION_TABLE(ptcr) of an L1 with `mem_size` bytes. `Ok(None)`
/// for 0 (Linux deregisters so when kvm-hv unloads). H_PARAMETER when the table
/// is larger than 4096 entries (KVM), or (stricter than KVM, which checks its
/// first page only) when the reserved bits are set, it is not aligned to its
/// size as the ISA requires of a PTCR, or it is not entirely inside the L1's
/// memory.
pub fn decode_ptcr(ptcr: u64, mem_size: u64) -> Result<Option<L1PartitionTable>, HcallError> {
    if ptcr == 0 {
        return Ok(None);
    }
    let pats = ptcr & PTCR_PATS_MASK;
    if pats > MAX_L1_PATS || ptcr & !(PTCR_BASE_MASK | PTCR_PATS_MASK) != 0 {
        return Err(HcallError::Parameter);
    }
    let t = L1PartitionTable {
        base: ptcr & PTCR_BASE_MASK,
        pats: pats as u8,
    };
    if !t.base.is_multiple_of(t.bytes())
        || t.base.checked_add(t.bytes()).is_none_or(|e| e > mem_size)
    {
        return Err(HcallError::Parameter);
    }
    Ok(Some(t))
}

/// A checked H_TLB_INVALIDATE(instruction, RS, RB): the L1's partition-scoped
/// `tlbie` (KVM `kvmhv_emulate_priv_tlbie`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbInvalidate {
    /// IS = 0: the translation of one L2 guest real page of `1 << shift` bytes.
    Page { lpid: u32, addr: u64, shift: u32 },
    /// IS = 2: everything of one L2 (RIC 2 also reloads its table entry).
    Lpid { lpid: u32, ric: u8 },
    /// IS = 3: every L2 of the caller.
    All { ric: u8 },
}

/// Page size of a tlbie AP field (ISA v3.0 Book III, "tlbie": 0 4 KiB,
/// 5 64 KiB, 1 2 MiB, 2 1 GiB).
pub const fn ap_shift(ap: u64) -> Option<u32> {
    match ap {
        0 => Some(12),
        5 => Some(16),
        1 => Some(21),
        2 => Some(30),
        _ => None,
    }
}

/// Decodes H_TLB_INVALIDATE as KVM: RIC = instruction bits 12:13 (>> 18),
/// PRS bit 14 (>> 17), R bit 15 (>> 16) (`H_TLBIE_P1_ENC`); LPID = RS low 32
/// bits; IS = RB bits 52:53, AP 56:58, EPN 0:51. H_PARAMETER for R = 0 (hash),
/// PRS = 1 (process-scoped: not the hypervisor's), RIC = 3, IS = 1, IS = 0 with
/// RIC 1 or 2, and an unknown page size.
pub fn decode_tlb_invalidate(instr: u64, rs: u64, rb: u64) -> Result<TlbInvalidate, HcallError> {
    let ric = ((instr >> 18) & 3) as u8;
    let prs = (instr >> 17) & 1;
    let r = (instr >> 16) & 1;
    let lpid = rs as u32;
    let is = (rb >> 10) & 3;
    if r == 0 || prs == 1 || ric == 3 || is == 1 || (is == 0 && ric != 0) {
        return Err(HcallError::Parameter);
    }
    Ok(match is {
        0 => {
            let shift = ap_shift((rb >> 5) & 7).ok_or(HcallError::Parameter)?;
            let addr = (rb >> 12) << 12;
            TlbInvalidate::Page {
                lpid,
                addr: addr & !((1u64 << shift) - 1),
                shift,
            }
        }
        2 => TlbInvalidate::Lpid { lpid, ric },
        _ => TlbInvalidate::All { ric },
    })
}

/// H_RPT_INVALIDATE target: the caller's MMU (CMMU), the only one KVM takes for
/// a NESTED request.
pub const H_RPTI_TARGET_CMMU: u64 = 0x1;
/// H_RPT_INVALIDATE page sizes (Linux `H_RPTI_PAGE_*`).
pub const H_RPTI_PAGE_ALL: u64 = 0xf;
/// NESTED | TLB | PWC | PRT: everything (KVM `H_RPTI_TYPE_NESTED_ALL`).
const RPTI_NESTED_ALL: u64 = 0xf;
/// At most this many bytes are invalidated page by page; a larger range drops
/// everything of the L2 (KVM: `tlb_range_flush_page_ceiling` pages).
pub const RPT_RANGE_CEILING: u64 = 33 << 16;

/// What a NESTED H_RPT_INVALIDATE asks (KVM `do_h_rpt_invalidate_pat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RptNested {
    /// Everything of the L2.
    All,
    /// The partition-scoped translations of `[start, end)` (L2 guest real).
    Range { start: u64, end: u64 },
    /// Nothing to do (no TLB type, no page size).
    Nothing,
}

/// Decodes H_RPT_INVALIDATE(lpid, target, type, page_sizes, start, end) with
/// type NESTED (the caller checked `end >= start`, H_P5, first): H_P2 unless
/// the target is the caller's MMU.
pub fn decode_rpt_nested(
    target: u64,
    kind: u64,
    pg_sizes: u64,
    start: u64,
    end: u64,
) -> Result<RptNested, HcallError> {
    if target != H_RPTI_TARGET_CMMU {
        return Err(HcallError::P2);
    }
    if kind & RPTI_NESTED_ALL == RPTI_NESTED_ALL || (start == 0 && end == u64::MAX) {
        return Ok(RptNested::All);
    }
    if kind & super::hcall::H_RPTI_TYPE_TLB == 0 || pg_sizes & H_RPTI_PAGE_ALL == 0 {
        return Ok(RptNested::Nothing);
    }
    if end - start > RPT_RANGE_CEILING {
        return Ok(RptNested::All);
    }
    Ok(RptNested::Range { start, end })
}

/// Largest H_COPY_TOFROM_GUEST this L0 copies in one call (KVM allocates a
/// buffer of the size and answers H_NO_MEM when it cannot; Linux copies at
/// most a page or an instruction at a time).
pub const COPY_MAX: u64 = 64 << 10;

/// A checked H_COPY_TOFROM_GUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyRequest {
    pub lpid: u32,
    pub pid: u32,
    /// L2 effective address without quadrant bits (PID 0: the L2's kernel).
    pub eaddr: u64,
    /// True: from the L2 into the L1 at `l1_gra`; false: the other way.
    pub from_l2: bool,
    pub l1_gra: u64,
    pub len: u64,
}

/// Checks H_COPY_TOFROM_GUEST(lpid, pid, eaddr, to, from, n) for an L1 of
/// `mem_size` bytes: exactly one of `to`/`from` non-zero (KVM: H_PARAMETER),
/// EA bits 0:11 clear (KVM: H_PARAMETER), the L1 buffer inside its memory and
/// at most [`COPY_MAX`] bytes (H_PARAMETER; KVM answers H_NO_MEM only when its
/// allocation fails).
pub fn decode_copy(
    lpid: u64,
    pid: u64,
    eaddr: u64,
    to: u64,
    from: u64,
    n: u64,
    mem_size: u64,
) -> Result<CopyRequest, HcallError> {
    if (to == 0) == (from == 0) || eaddr & (0xFFF << 52) != 0 || n > COPY_MAX {
        return Err(HcallError::Parameter);
    }
    let l1_gra = if to != 0 { to } else { from };
    if l1_gra.checked_add(n).is_none_or(|e| e > mem_size) {
        return Err(HcallError::Parameter);
    }
    Ok(CopyRequest {
        lpid: lpid as u32,
        pid: pid as u32,
        eaddr,
        from_l2: to != 0,
        l1_gra,
        len: n,
    })
}

// LPCR bits an L1 chooses for its L2 (KVM `kvmhv_update_lpcr`'s mask):
// DPFD (bits 9:11), ILE (38), TC (54), AIL (39:40), LD (46), MER (52).
const LPCR_DPFD: u64 = 7 << (63 - 11);
const LPCR_ILE: u64 = 1 << (63 - 38);
const LPCR_TC: u64 = 1 << (63 - 54);
const LPCR_AIL: u64 = 3 << (63 - 40);
const LPCR_LD: u64 = 1 << (63 - 46);
const LPCR_MER: u64 = 1 << (63 - 52);
pub const L2_LPCR_MASK: u64 = LPCR_DPFD | LPCR_ILE | LPCR_TC | LPCR_AIL | LPCR_LD | LPCR_MER;

/// The L2's LPCR: the L1's own (what this L0 runs the L1 with) except the bits
/// in [`L2_LPCR_MASK`], which come from the L1's `hv_guest_state`.
pub const fn l2_lpcr(l1_lpcr: u64, requested: u64) -> u64 {
    (l1_lpcr & !L2_LPCR_MASK) | (requested & L2_LPCR_MASK)
}

/// HFSCR\[IC\], bits 0:7: the cause of a Hypervisor Facility Unavailable
/// interrupt.
pub const HFSCR_IC: u64 = 0xFF << 56;

/// The L2's HFSCR: what the L1 asks, limited to what this L0 grants the L1
/// (KVM: `hfscr & (HFSCR_INTR_CAUSE | hfscr_permitted)`).
pub const fn l2_hfscr(requested: u64, granted_to_l1: u64) -> u64 {
    requested & (HFSCR_IC | granted_to_l1)
}

/// DAWRX\[HYP\] (bit 61): matching in hypervisor state, never for a guest.
pub const DAWRX_HYP: u64 = 0x4;
/// CIABR\[PRIV\] (bits 62:63); 3 = hypervisor.
pub const CIABR_PRIV: u64 = 0x3;

/// DAWRX0/1 for the L2 (KVM: `&= ~DAWRX_HYP`).
pub const fn l2_dawrx(v: u64) -> u64 {
    v & !DAWRX_HYP
}

/// CIABR for the L2 (KVM: a hypervisor-privilege match is dropped).
pub const fn l2_ciabr(v: u64) -> u64 {
    if v & CIABR_PRIV == CIABR_PRIV {
        v & !CIABR_PRIV
    } else {
        v
    }
}

/// MSR\[HV\] (bit 3), \[S\] (bit 41), \[ME\] (bit 51).
const MSR_HV: u64 = 1 << 60;
const MSR_S: u64 = 1 << 22;
const MSR_ME: u64 = 1 << 12;

/// The MSR the L2 runs with: the L1's choice with machine checks on and never
/// hypervisor or secure state (KVM: `(msr | MSR_ME) & ~MSR_HV`).
pub const fn l2_msr(msr: u64) -> u64 {
    (msr | MSR_ME) & !(MSR_HV | MSR_S)
}

/// What the L0 does with an exit of the L2 (KVM `kvmppc_handle_nested_exit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Exit {
    /// The L0's own business (its time slice, a doorbell, an interrupt of its
    /// own, an HMI): handle it, then resume the L2 unless the L1 has something
    /// pending.
    L0,
    /// A partition-scoped fault (HDSI 0xe00, HISI 0xe20): fill the shadow tree
    /// or reflect it.
    PageFault,
    /// Give the L1 this trap as H_ENTER_NESTED's return value.
    ToL1(u64),
}

/// Classifies an L2 exit by vector.
pub const fn classify_exit(vector: u64) -> L2Exit {
    match vector {
        // HDEC (the L1's deadline is checked by the caller), hypervisor
        // doorbell, hypervisor virtualization interrupt, HMI.
        0x980 | 0xe80 | 0xea0 | 0xe60 | 0xa00 => L2Exit::L0,
        // An external interrupt (routed to the hypervisor, LPES = 0) goes to
        // the L1, as KVM returns it: it is how the L2's LPCR[MER], which the
        // L1 sets when it has an interrupt for the L2, reaches the L1.
        0xe00 | 0xe20 => L2Exit::PageFault,
        // hcalls, machine checks, emulation assists, facility unavailable and
        // anything else: the L1's to handle.
        v => L2Exit::ToL1(v),
    }
}

/// Trap value that tells the L1 "nothing happened, look again" (an
/// interrupt of its own is pending; KVM returns 0 the same way).
pub const TRAP_NONE: u64 = 0;
/// Trap for "the L1's HDEC deadline passed".
pub const TRAP_HDEC: u64 = 0x980;

/// HDEC ticks the L2 may run: until the L1's deadline (in the L0's timebase,
/// `hdec_expiry - tb_offset of the L1`), at most `slice`. `None` when the
/// deadline has passed (the L2 is not entered; the L1 gets 0x980).
pub const fn l2_hdec(now: u64, expiry: u64, slice: u64) -> Option<u64> {
    if expiry <= now {
        None
    } else {
        let left = expiry - now;
        Some(if left < slice { left } else { slice })
    }
}

/// Fault-reason bits the L0 reports to the L1 in HDSISR (and SRR1 for an ISI),
/// as KVM (`asm/reg.h`).
pub const DSISR_NOHPTE: u64 = 0x4000_0000;
pub const DSISR_PROTFAULT: u64 = 0x0800_0000;
pub const DSISR_ISSTORE: u64 = 0x0200_0000;
pub const DSISR_BADACCESS: u64 = 0x0000_4000;
pub const DSISR_UNSUPP_MMU: u64 = 0x0008_0000;
pub const DSISR_SET_RC: u64 = 0x0004_0000;
pub const DSISR_PRTABLE_FAULT: u64 = 0x0002_0000;
/// SRR1 for an instruction fetch without execute permission (bit 35).
pub const SRR1_ISI_N_G_OR_CIP: u64 = 0x1000_0000;
/// SRR1 bits an ISI reports (33:36, 42:47); the rest is the MSR.
pub const SRR1_ISI_BITS: u64 = 0x783f_0000;

/// Shadow LPIDs: the L0 runs every L2 under an LPID of its own, taken from the
/// top half of its 4096-entry partition table (partitions use 1, 2, ...).
pub const SHADOW_LPID_BASE: u32 = 2048;
pub const SHADOW_LPID_END: u32 = 4096;
const SHADOW_WORDS: usize = ((SHADOW_LPID_END - SHADOW_LPID_BASE) / 64) as usize;

/// Allocator of shadow LPIDs.
#[derive(Clone, Debug)]
pub struct ShadowLpids {
    used: [u64; SHADOW_WORDS],
}

impl Default for ShadowLpids {
    fn default() -> Self {
        Self::new()
    }
}

impl ShadowLpids {
    pub const fn new() -> Self {
        Self {
            used: [0; SHADOW_WORDS],
        }
    }

    /// A free shadow LPID, now taken; `None` when all are in use.
    pub fn alloc(&mut self) -> Option<u32> {
        for (w, word) in self.used.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros();
                *word |= 1 << bit;
                return Some(SHADOW_LPID_BASE + 64 * w as u32 + bit);
            }
        }
        None
    }

    /// Returns `lpid` (ignored unless a taken shadow LPID).
    pub fn free(&mut self, lpid: u32) {
        if (SHADOW_LPID_BASE..SHADOW_LPID_END).contains(&lpid) {
            let i = (lpid - SHADOW_LPID_BASE) as usize;
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }

    pub fn in_use(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn sample() -> HvGuestState {
        let mut s = HvGuestState {
            version: 2,
            lpid: 7,
            vcpu_token: 3,
            ..Default::default()
        };
        for (i, f) in s.u64_fields().into_iter().enumerate() {
            *f = 0x1000 + i as u64;
        }
        s.dawr1 = 0xd1;
        s.dawrx1 = 0xd2;
        s
    }

    #[test]
    fn hv_guest_state_offsets_both_orders() {
        let s = sample();
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut buf = vec![0u8; HV_GUEST_STATE_V2_SIZE];
            assert!(s.encode(&mut buf, order));
            // Offsets of hvcall.h: lpid 8, vcpu_token 12, lpcr 16, tb_offset 56,
            // hdec_expiry 88, hdar 128, asdr 152, srr0 160, sprg[3] 200,
            // ppr 224, dawr1 232, dawrx1 240.
            let at = |o: usize| order.get64(&buf, o);
            assert_eq!(order.get32(&buf, 8), 7);
            assert_eq!(order.get32(&buf, 12), 3);
            assert_eq!(at(16), s.lpcr);
            assert_eq!(at(56), s.tb_offset);
            assert_eq!(at(88), s.hdec_expiry);
            assert_eq!(at(128), s.hdar);
            assert_eq!(at(152), s.asdr);
            assert_eq!(at(160), s.srr0);
            assert_eq!(at(200), s.sprg[3]);
            assert_eq!(at(208), s.pidr);
            assert_eq!(at(224), s.ppr);
            assert_eq!(at(232), 0xd1);
            assert_eq!(at(240), 0xd2);
            assert_eq!(HvGuestState::decode(&buf, order), Ok(s.clone()));
            let first: [u8; 8] = buf[..8].try_into().unwrap();
            assert_eq!(HvGuestState::version_of(&first, order), 2);
        }
        // Big-endian means the version's last byte is at offset 7.
        let mut buf = vec![0u8; HV_GUEST_STATE_V2_SIZE];
        s.encode(&mut buf, ByteOrder::Big);
        assert_eq!(buf[7], 2);
        s.encode(&mut buf, ByteOrder::Little);
        assert_eq!(buf[0], 2);
    }

    #[test]
    fn hv_guest_state_versions() {
        let mut v1 = sample();
        v1.version = 1;
        let mut buf = vec![0xaau8; HV_GUEST_STATE_V1_SIZE];
        assert!(v1.encode(&mut buf, ByteOrder::Big));
        let back = HvGuestState::decode(&buf, ByteOrder::Big).unwrap();
        // Version 1 carries no DAWR1/DAWRX1.
        assert_eq!(back.dawr1, 0);
        assert_eq!(back.ppr, v1.ppr);
        // A version-2 state does not fit in a version-1 buffer.
        let v2 = sample();
        assert!(!v2.encode(&mut buf, ByteOrder::Big));
        for bad in [0u64, 3, u64::MAX] {
            let mut s = sample();
            s.version = bad;
            let mut b = vec![0u8; HV_GUEST_STATE_V2_SIZE];
            ByteOrder::Little.put64(&mut b, 0, bad);
            assert_eq!(
                HvGuestState::decode(&b, ByteOrder::Little),
                Err(HcallError::Parameter)
            );
            assert!(!s.encode(&mut b, ByteOrder::Little));
        }
        // A buffer shorter than its version says.
        let mut b = vec![0u8; HV_GUEST_STATE_V1_SIZE];
        ByteOrder::Big.put64(&mut b, 0, 2);
        assert_eq!(
            HvGuestState::decode(&b, ByteOrder::Big),
            Err(HcallError::Parameter)
        );
        // The wrong byte order reads version 1 as 2^56: refused.
        ByteOrder::Big.put64(&mut b, 0, 1);
        assert_eq!(
            HvGuestState::decode(&b, ByteOrder::Little),
            Err(HcallError::Parameter)
        );
    }

    #[test]
    fn pt_regs_layout() {
        let mut r = PtRegs::default();
        for (i, g) in r.gpr.iter_mut().enumerate() {
            *g = i as u64;
        }
        r.nip = 0x100;
        r.msr = 0x200;
        r.ctr = 0x300;
        r.link = 0x400;
        r.xer = 0x500;
        r.ccr = 0x600;
        r.trap = 0xc00;
        r.result = 0x700;
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut buf = vec![0u8; PT_REGS_SIZE];
            assert!(r.encode(&mut buf, order));
            assert_eq!(order.get64(&buf, 31 * 8), 31);
            assert_eq!(order.get64(&buf, 256), 0x100);
            assert_eq!(order.get64(&buf, 264), 0x200);
            assert_eq!(order.get64(&buf, 280), 0x300);
            assert_eq!(order.get64(&buf, 288), 0x400);
            assert_eq!(order.get64(&buf, 296), 0x500);
            assert_eq!(order.get64(&buf, 304), 0x600);
            assert_eq!(order.get64(&buf, 320), 0xc00);
            assert_eq!(order.get64(&buf, 344), 0x700);
            assert_eq!(PtRegs::decode(&buf, order), Ok(r.clone()));
        }
        assert_eq!(
            PtRegs::decode(&[0u8; PT_REGS_SIZE - 1], ByteOrder::Big),
            Err(HcallError::Parameter)
        );
        assert!(!r.encode(&mut [0u8; 8], ByteOrder::Big));
    }

    #[test]
    fn ptcr_checks() {
        let mem = 256 << 20;
        // Linux: a 64 KiB table (PATS 4) from kmalloc, naturally aligned.
        assert_eq!(
            decode_ptcr(0x0123_0000 | 4, mem),
            Ok(Some(L1PartitionTable {
                base: 0x0123_0000,
                pats: 4
            }))
        );
        assert_eq!(decode_ptcr(0, mem), Ok(None));
        // Too many entries (KVM's bound), misaligned, outside memory, reserved bits.
        assert_eq!(
            decode_ptcr(0x0123_0000 | 5, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_ptcr(0x0123_1000 | 4, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_ptcr(0x0123_1000, mem),
            Ok(Some(L1PartitionTable {
                base: 0x0123_1000,
                pats: 0
            }))
        );
        assert_eq!(decode_ptcr(mem | 4, mem), Err(HcallError::Parameter));
        assert_eq!(
            decode_ptcr((mem - 0x8000) | 4, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_ptcr((mem - 0x10000) | 4, mem),
            Ok(Some(L1PartitionTable {
                base: mem - 0x10000,
                pats: 4
            }))
        );
        assert_eq!(
            decode_ptcr(0x0123_0000 | 0x20, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_ptcr((1 << 63) | 0x0123_0000, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_ptcr(0x0FFF_FFFF_FFFF_0000 | 4, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(decode_ptcr(u64::MAX, mem), Err(HcallError::Parameter));
        let t = decode_ptcr(0x1_0000 | 4, mem).unwrap().unwrap();
        assert_eq!(t.entries(), 4096);
        assert_eq!(t.entry_addr(1), Ok(0x1_0010));
        assert_eq!(t.entry_addr(4095), Ok(0x1_0000 + 16 * 4095));
        assert_eq!(t.entry_addr(4096), Err(HcallError::Parameter));
        assert_eq!(t.entry_addr(0), Err(HcallError::Parameter));
        let small = decode_ptcr(0x1_0000, mem).unwrap().unwrap();
        assert_eq!(small.entry_addr(255), Ok(0x1_0000 + 16 * 255));
        assert_eq!(small.entry_addr(256), Err(HcallError::Parameter));
    }

    /// Linux `H_TLBIE_P1_ENC(ric, prs, r)`.
    fn p1(ric: u64, prs: u64, r: u64) -> u64 {
        (ric << 18) | (prs << 17) | (r << 16)
    }

    #[test]
    fn tlb_invalidate_as_kvm() {
        let rb = |epn: u64, is: u64, ap: u64| (epn << 12) | (is << 10) | (ap << 5);
        // The forms Linux's kvm-hv sends (book3s_64_mmu_radix.c
        // kvmppc_radix_tlbie_page and kvmhv_flush_lpid).
        assert_eq!(
            decode_tlb_invalidate(p1(0, 0, 1), 5, rb(0x1234, 0, 5)),
            Ok(TlbInvalidate::Page {
                lpid: 5,
                addr: 0x123_0000,
                shift: 16
            })
        );
        assert_eq!(
            decode_tlb_invalidate(p1(0, 0, 1), 5, rb(0x1234, 0, 0)),
            Ok(TlbInvalidate::Page {
                lpid: 5,
                addr: 0x123_4000,
                shift: 12
            })
        );
        assert_eq!(
            decode_tlb_invalidate(p1(2, 0, 1), 9, rb(0, 2, 0)),
            Ok(TlbInvalidate::Lpid { lpid: 9, ric: 2 })
        );
        assert_eq!(
            decode_tlb_invalidate(p1(1, 0, 1), 0x1_0000_0009, rb(0, 2, 0)),
            Ok(TlbInvalidate::Lpid { lpid: 9, ric: 1 })
        );
        assert_eq!(
            decode_tlb_invalidate(p1(2, 0, 1), 0, rb(0, 3, 0)),
            Ok(TlbInvalidate::All { ric: 2 })
        );
        let bad = Err(HcallError::Parameter);
        assert_eq!(decode_tlb_invalidate(p1(0, 0, 0), 5, rb(1, 2, 0)), bad); // hash
        assert_eq!(decode_tlb_invalidate(p1(0, 1, 1), 5, rb(1, 2, 0)), bad); // PRS
        assert_eq!(decode_tlb_invalidate(p1(3, 0, 1), 5, rb(1, 2, 0)), bad); // RIC 3
        assert_eq!(decode_tlb_invalidate(p1(0, 0, 1), 5, rb(1, 1, 0)), bad); // IS 1
        assert_eq!(decode_tlb_invalidate(p1(1, 0, 1), 5, rb(1, 0, 0)), bad);
        assert_eq!(decode_tlb_invalidate(p1(2, 0, 1), 5, rb(1, 0, 0)), bad);
        assert_eq!(decode_tlb_invalidate(p1(0, 0, 1), 5, rb(1, 0, 3)), bad); // AP
    }

    #[test]
    fn rpt_nested_as_kvm() {
        use crate::papr::hcall::{H_RPTI_TYPE_NESTED as N, H_RPTI_TYPE_TLB as T};
        assert_eq!(
            decode_rpt_nested(2, N | T, 1, 0, 0x1000),
            Err(HcallError::P2)
        );
        assert_eq!(decode_rpt_nested(1, 0xf, 1, 0, 0x1000), Ok(RptNested::All));
        assert_eq!(
            decode_rpt_nested(1, N | T, 1, 0, u64::MAX),
            Ok(RptNested::All)
        );
        assert_eq!(
            decode_rpt_nested(1, N | T, 2, 0x10000, 0x30000),
            Ok(RptNested::Range {
                start: 0x10000,
                end: 0x30000
            })
        );
        assert_eq!(
            decode_rpt_nested(1, N | T, 0, 0, 0x1000),
            Ok(RptNested::Nothing)
        );
        assert_eq!(
            decode_rpt_nested(1, N | 4, 1, 0, 0x1000),
            Ok(RptNested::Nothing)
        );
        assert_eq!(
            decode_rpt_nested(1, N | T, 1, 0, 1 << 40),
            Ok(RptNested::All)
        );
    }

    #[test]
    fn copy_bounds() {
        let mem = 64 << 20;
        let ok = decode_copy(3, 0, 0x1000, 0x2000, 0, 8, mem).unwrap();
        assert!(ok.from_l2);
        assert_eq!(ok.l1_gra, 0x2000);
        let ok = decode_copy(3, 0, 0x000f_ffff_ffff_f000, 0, 0x2000, 8, mem).unwrap();
        assert!(!ok.from_l2);
        let bad = Err(HcallError::Parameter);
        assert_eq!(decode_copy(3, 0, 0x1000, 0x2000, 0x3000, 8, mem), bad);
        assert_eq!(decode_copy(3, 0, 0x1000, 0, 0, 8, mem), bad);
        assert_eq!(
            decode_copy(3, 0, 0xc010_0000_0000_0000, 0x2000, 0, 8, mem),
            bad
        );
        assert_eq!(decode_copy(3, 0, 0, mem - 4, 0, 8, mem), bad);
        assert_eq!(decode_copy(3, 0, 0, u64::MAX - 3, 0, 8, mem), bad);
        assert_eq!(decode_copy(3, 0, 0, 0x2000, 0, COPY_MAX + 1, mem), bad);
    }

    #[test]
    fn register_filters() {
        // LPCR: HR/UPRT/LPES... from the L0's value for the L1, ILE/AIL/MER from
        // the L1's request.
        let l1 = (1 << (63 - 43)) | (1 << (63 - 41)) | LPCR_ILE;
        let req = LPCR_MER | LPCR_AIL | (1 << (63 - 43)) | (3 << (63 - 61));
        let l2 = l2_lpcr(l1, req);
        assert_eq!(l2 & LPCR_ILE, 0);
        assert_eq!(l2 & (LPCR_MER | LPCR_AIL), LPCR_MER | LPCR_AIL);
        assert_eq!(l2 & (3 << (63 - 61)), 0, "LPES stays the L0's");
        assert_ne!(l2 & (1 << (63 - 43)), 0);
        // HFSCR: only what the L1 itself has, plus the cause field.
        assert_eq!(l2_hfscr(u64::MAX, 0x0f), HFSCR_IC | 0x0f);
        assert_eq!(l2_dawrx(0x7), 0x3);
        assert_eq!(l2_ciabr(0x1003), 0x1000);
        assert_eq!(l2_ciabr(0x1002), 0x1002);
        assert_eq!(l2_msr(MSR_HV | MSR_S | 1), MSR_ME | 1);
    }

    #[test]
    fn exits_and_hdec() {
        assert_eq!(classify_exit(0xc00), L2Exit::ToL1(0xc00));
        assert_eq!(classify_exit(0xe00), L2Exit::PageFault);
        assert_eq!(classify_exit(0xe20), L2Exit::PageFault);
        assert_eq!(classify_exit(0x980), L2Exit::L0);
        assert_eq!(classify_exit(0xe80), L2Exit::L0);
        assert_eq!(classify_exit(0x500), L2Exit::ToL1(0x500));
        assert_eq!(classify_exit(0xe40), L2Exit::ToL1(0xe40));
        assert_eq!(classify_exit(0x200), L2Exit::ToL1(0x200));
        assert_eq!(l2_hdec(100, 50, 1000), None);
        assert_eq!(l2_hdec(100, 100, 1000), None);
        assert_eq!(l2_hdec(100, 150, 1000), Some(50));
        assert_eq!(l2_hdec(100, u64::MAX, 1000), Some(1000));
    }

    #[test]
    fn shadow_lpids() {
        let mut a = ShadowLpids::new();
        let x = a.alloc().unwrap();
        let y = a.alloc().unwrap();
        assert_eq!((x, y), (SHADOW_LPID_BASE, SHADOW_LPID_BASE + 1));
        a.free(x);
        assert_eq!(a.alloc(), Some(x));
        a.free(5); // not a shadow LPID: ignored
        let mut n = a.in_use();
        while a.alloc().is_some() {
            n += 1;
        }
        assert_eq!(n, SHADOW_LPID_END - SHADOW_LPID_BASE);
        a.free(SHADOW_LPID_END - 1);
        assert_eq!(a.alloc(), Some(SHADOW_LPID_END - 1));
    }
}
