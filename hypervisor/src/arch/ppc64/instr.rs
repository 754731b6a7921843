//! Thin wrappers for the POWER instructions the hypervisor uses. Every `asm!` in the
//! hypervisor outside the entry paths lives here.
use core::arch::asm;

use super::regs::{Msr, DBELL_TYPE_HYP};

/// Time base (Book II 5.2).
#[inline(always)]
pub fn mftb() -> u64 {
    let v: u64;
    // SAFETY: reading the time base has no side effects.
    unsafe { asm!("mftb {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

#[inline(always)]
pub fn mfmsr() -> Msr {
    let v: u64;
    // SAFETY: reading the MSR has no side effects.
    unsafe { asm!("mfmsr {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    Msr::from_bits_retain(v)
}

/// Writes the MSR (`mtmsrd L=0`, so every bit this instruction may change).
///
/// # Safety
/// Changing translation, endianness or interrupt enables under running code must be
/// something the caller has prepared for.
#[inline(always)]
pub unsafe fn mtmsrd(msr: Msr) {
    // SAFETY: the caller vouches for the new MSR value.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr.bits(), options(nostack)) };
}

/// Writes the whole MSR through HSRR1 and `hrfid`, continuing at the next
/// instruction. Unlike `mtmsrd`, this can change MSR[ME] (skiboot enters the payload
/// with machine checks disabled) and MSR[HV]-class bits.
///
/// # Safety
/// As for [`mtmsrd`]; also clobbers HSRR0/1, so not for use while they hold live state.
#[inline(always)]
pub unsafe fn set_msr_hrfid(msr: Msr) {
    // SAFETY: the caller vouches for the MSR value; HSRR0 points just past `hrfid`.
    unsafe {
        asm!(
            "bcl 20, 31, 1f",
            "1: mflr {t}",
            "addi {t}, {t}, 20",
            "mtspr 314, {t}",
            "mtspr 315, {m}",
            "hrfid",
            t = out(reg_nonzero) _,
            m = in(reg) msr.bits(),
            out("lr") _,
            options(nostack)
        )
    };
}

/// Enables (`true`) or disables external-class interrupts (EE), `mtmsrd L=1`.
#[inline(always)]
pub fn set_ee(on: bool) {
    let v = if on {
        Msr::EE.bits() | Msr::RI.bits()
    } else {
        Msr::RI.bits()
    };
    // SAFETY: `mtmsrd 1` changes only EE and RI; interrupt handlers are installed
    // before anything calls this.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) v, options(nostack)) };
}

#[inline(always)]
pub fn isync() {
    // SAFETY: a context-synchronising barrier.
    unsafe { asm!("isync", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn sync() {
    // SAFETY: a memory barrier.
    unsafe { asm!("sync", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn eieio() {
    // SAFETY: an I/O ordering barrier.
    unsafe { asm!("eieio", options(nostack, preserves_flags)) };
}

/// Orders page-table updates before later translations (Book III 5.10.1).
#[inline(always)]
pub fn ptesync() {
    // SAFETY: a barrier.
    unsafe { asm!("ptesync", options(nostack, preserves_flags)) };
}

/// `tlbie RB,RS,RIC,PRS,R` encoded by hand (X-form, opcode 31, XO 306) because not
/// every assembler takes the five-operand ISA v3.0 form. RB in r4, RS in r5.
macro_rules! tlbie_enc {
    ($xo:literal, $ric:literal, $prs:literal, $r:literal) => {
        0x7c00_0000u32
            | (5 << 21)
            | ($ric << 18)
            | ($prs << 17)
            | ($r << 16)
            | (4 << 11)
            | ($xo << 1)
    };
}

const TLBIE_RIC2_PRS0: u32 = tlbie_enc!(306, 2, 0, 1);
const TLBIE_RIC2_PRS1: u32 = tlbie_enc!(306, 2, 1, 1);
const TLBIEL_RIC2_PRS0: u32 = tlbie_enc!(274, 2, 0, 1);
const TLBIEL_RIC2_PRS1: u32 = tlbie_enc!(274, 2, 1, 1);
const TLBIEL_RIC0_PRS0: u32 = tlbie_enc!(274, 0, 0, 1);
const TLBIEL_RIC0_PRS1: u32 = tlbie_enc!(274, 0, 1, 1);

/// Invalidates every radix translation, page-walk cache and table-entry cache on all
/// threads of the system (IS=3, RIC=2, both partition- and process-scoped), with the
/// global completion sequence `ptesync; tlbie; eieio; tlbsync; ptesync`.
pub fn tlbie_all() {
    tlbie_ric2(3 << 10, 0); // IS = 3: everything
}

/// Invalidates every translation (partition- and process-scoped, TLB and walk
/// caches) of one LPID on all threads (IS=2, RS = LPID), after its PATE or
/// partition-scoped tree changed.
pub fn tlbie_lpid(lpid: u32) {
    tlbie_ric2(2 << 10, u64::from(lpid));
}

/// `tlbie` RIC = 2 of both scopes (PRS = 0, then 1) with RB = `rb` (IS and
/// the rest), RS = `rs`, in the global completion sequence.
#[inline(always)]
fn tlbie_ric2(rb: u64, rs: u64) {
    // SAFETY: invalidating translations is always safe; the tables are current.
    unsafe {
        asm!(
            "ptesync",
            ".long {a}",
            ".long {b}",
            "eieio",
            "tlbsync",
            "ptesync",
            a = const TLBIE_RIC2_PRS0,
            b = const TLBIE_RIC2_PRS1,
            in("r4") rb, in("r5") rs,
            options(nostack)
        )
    };
}

// Process-scoped (PRS = 1) radix invalidations of a partition's translations,
// for H_RPT_INVALIDATE (`partition::tlb`): tlbie (XO 306) and tlbiel (XO 274)
// with RIC 0/1/2. RB: EPN (bits 0:51), IS (52:53), AP (56:58); for tlbiel the
// set number (40:51). RS: PID (bits 0:31) and, for tlbie, LPID (32:63); tlbiel
// takes the LPID from LPIDR (Power ISA v3.0B Book III 6.7.5.3-4).
const TLBIE_P_RIC0: u32 = tlbie_enc!(306, 0, 1, 1);
const TLBIE_P_RIC1: u32 = tlbie_enc!(306, 1, 1, 1);
const TLBIE_P_RIC2: u32 = tlbie_enc!(306, 2, 1, 1);
const TLBIE_PART_RIC0: u32 = tlbie_enc!(306, 0, 0, 1);
const TLBIEL_P_RIC0: u32 = tlbie_enc!(274, 0, 1, 1);
const TLBIEL_P_RIC1: u32 = tlbie_enc!(274, 1, 1, 1);
const TLBIEL_P_RIC2: u32 = tlbie_enc!(274, 2, 1, 1);

/// RB's IS field: by address (0), by PID (1), by LPID (2).
const IS_VA: u64 = 0;
const IS_PID: u64 = 1 << 10;
const IS_LPID: u64 = 2 << 10;

/// One `tlbie` (`local` false) or `tlbiel` of process-scoped radix entries with
/// RIC `ric` (0, 1 or 2). No barrier: callers bracket a batch.
#[inline(always)]
fn tlbi_p(local: bool, ric: u8, rb: u64, rs: u64) {
    // SAFETY: invalidating translations is always safe; the instruction has no
    // other effect.
    unsafe {
        match (local, ric) {
            (false, 0) => {
                asm!(".long {a}", a = const TLBIE_P_RIC0, in("r4") rb, in("r5") rs, options(nostack))
            }
            (false, 1) => {
                asm!(".long {a}", a = const TLBIE_P_RIC1, in("r4") rb, in("r5") rs, options(nostack))
            }
            (false, _) => {
                asm!(".long {a}", a = const TLBIE_P_RIC2, in("r4") rb, in("r5") rs, options(nostack))
            }
            (true, 0) => {
                asm!(".long {a}", a = const TLBIEL_P_RIC0, in("r4") rb, in("r5") rs, options(nostack))
            }
            (true, 1) => {
                asm!(".long {a}", a = const TLBIEL_P_RIC1, in("r4") rb, in("r5") rs, options(nostack))
            }
            (true, _) => {
                asm!(".long {a}", a = const TLBIEL_P_RIC2, in("r4") rb, in("r5") rs, options(nostack))
            }
        }
    }
}

/// One process-scoped radix invalidation of a partition's translations
/// (`partition::tlb`): by PID or by page, on this thread (`tlbiel`) or on all
/// (`tlbie`).
#[derive(Clone, Copy, Debug)]
pub enum ProcInval {
    /// Everything of `pid` that RIC `ric` (0 TLB, 1 walk cache, 2 all) names.
    Pid { pid: u32, ric: u8 },
    /// The TLB entry of `pid` for the page at `va` of size code `ap`.
    Page { pid: u32, va: u64, ap: u8 },
}

/// Process-scoped invalidations of LPID `lpid` on this thread only, each
/// `tlbiel` followed by the sets a by-PID `tlbiel` must also visit (`sets`: the
/// TLB's congruence classes, RIC 0 in sets 1.. as Linux's `_tlbiel_pid`), then
/// `ptesync`. LPIDR must hold `lpid` (the caller serves an exit of that
/// partition, whose LPIDR `switch_in` loaded).
pub fn tlbiel_proc(ops: impl Iterator<Item = ProcInval>, sets: u32) {
    ptesync();
    for op in ops {
        match op {
            ProcInval::Pid { pid, ric } => {
                let rs = u64::from(pid) << 32;
                tlbi_p(true, ric, IS_PID, rs);
                if ric != 1 {
                    for set in 1..u64::from(sets) {
                        tlbi_p(true, 0, (set << 12) | IS_PID, rs);
                    }
                }
            }
            ProcInval::Page { pid, va, ap } => {
                let rb = (va & !0xfff) | (u64::from(ap & 7) << 5) | IS_VA;
                tlbi_p(true, 0, rb, u64::from(pid) << 32);
            }
        }
    }
    ptesync();
}

/// Every process-scoped translation of LPID `lpid` on this thread (IS = 2,
/// RIC = 2 then RIC = 0 over the other sets, as Linux's
/// `_tlbiel_lpid_guest`): what a vCPU does before entering when another
/// thread invalidated while it was out of the guest. LPIDR must hold `lpid`.
pub fn tlbiel_lpid_proc(lpid: u32, sets: u32) {
    let rs = u64::from(lpid);
    ptesync();
    tlbi_p(true, 2, IS_LPID, rs);
    for set in 1..u64::from(sets) {
        tlbi_p(true, 0, (set << 12) | IS_LPID, rs);
    }
    ptesync();
}

/// Process-scoped invalidations of LPID `lpid` on every thread (`tlbie`), with
/// the global completion sequence, and on POWER9 the errata workarounds
/// `partition::tlb::p9_tlbie_fixups` names (`erat`, `stq`) after the last one:
/// a `tlbie` of LPID 0 and the last `tlbie` repeated, each after a `ptesync`,
/// on an address nothing uses (2^52 - 64 KiB, AP 64 KiB), as Linux's
/// `fixup_tlbie_pid_lpid`.
pub fn tlbie_proc(lpid: u32, ops: impl Iterator<Item = ProcInval>, erat: bool, stq: bool) {
    let mut last_pid = 0u32;
    ptesync();
    for op in ops {
        match op {
            ProcInval::Pid { pid, ric } => {
                tlbi_p(false, ric, IS_PID, (u64::from(pid) << 32) | u64::from(lpid));
                last_pid = pid;
            }
            ProcInval::Page { pid, va, ap } => {
                let rb = (va & !0xfff) | (u64::from(ap & 7) << 5) | IS_VA;
                tlbi_p(false, 0, rb, (u64::from(pid) << 32) | u64::from(lpid));
                last_pid = pid;
            }
        }
    }
    let unused = ((1u64 << 52) - (1 << 16)) | (5 << 5);
    if erat {
        ptesync();
        // SAFETY: an invalidation of LPID 0 at an unused address.
        unsafe {
            asm!(".long {a}", a = const TLBIE_PART_RIC0, in("r4") unused, in("r5") 0u64,
                options(nostack))
        };
    }
    if stq {
        ptesync();
        tlbi_p(
            false,
            0,
            unused,
            (u64::from(last_pid) << 32) | u64::from(lpid),
        );
    }
    // SAFETY: the completion sequence of a global invalidation.
    unsafe { asm!("eieio", "tlbsync", "ptesync", options(nostack)) };
}

/// tlbie of hashed-page-table translations (R = 0): RIC = 0, PRS = 0.
const TLBIE_HPT: u32 = tlbie_enc!(306, 0, 0, 0);

/// Invalidates every hashed-page-table translation of one LPID on all threads
/// (IS = 2, RS = LPID, R = 0), after an HPTE of that partition was made invalid
/// or changed (H_REMOVE, H_PROTECT, H_BULK_REMOVE, H_CLEAR_*): the global
/// sequence `ptesync; tlbie; eieio; tlbsync; ptesync` of KVM-HV's `do_tlbies`,
/// for the whole LPID rather than one entry.
pub fn tlbie_lpid_hpt(lpid: u32) {
    let rb: u64 = 2 << 10;
    let rs: u64 = u64::from(lpid);
    // SAFETY: invalidating translations is always safe.
    unsafe {
        asm!(
            "ptesync",
            ".long {a}",
            "eieio",
            "tlbsync",
            "ptesync",
            a = const TLBIE_HPT,
            in("r4") rb, in("r5") rs,
            options(nostack)
        )
    };
}

/// Empties this thread's SLB (a hash guest's segments): `slbmte` of an invalid
/// entry 0, then `slbia` (IH = 0: every other entry), as Linux's
/// `slb_flush_all_realmode`. The radix hypervisor never uses the SLB.
pub fn slb_clear() {
    // SAFETY: only the SLB changes, which nothing in the hypervisor uses.
    unsafe {
        asm!(
            // slbmte r5, r5 (r5 = 0: entry 0, invalid)
            ".long 0x7ca02b24",
            // slbia 0
            ".long 0x7c0003e4",
            "isync",
            in("r5") 0u64,
            options(nostack)
        )
    };
}

/// A 64-bit conditioned random number (`darn RT,1`, ISA v3.0), or `None` when the
/// hardware reports failure (all ones).
pub fn darn() -> Option<u64> {
    let v: u64;
    // SAFETY: `darn` only writes its target register (encoded by hand: XO 755,
    // RT = r3, L = 1).
    unsafe { asm!(".long 0x7c6105e6", out("r3") v, options(nomem, nostack, preserves_flags)) };
    (v != u64::MAX).then_some(v)
}

/// Invalidates this thread's radix TLB: set 0 with RIC=2 (also the walk caches),
/// every other congruence class with RIC=0 (as Book III 6.10.3.2 prescribes for a
/// local full flush).
pub fn tlbiel_all(sets: u32) {
    // SAFETY: local invalidation is always safe.
    unsafe {
        asm!("ptesync", ".long {a}", ".long {b}",
            a = const TLBIEL_RIC2_PRS0, b = const TLBIEL_RIC2_PRS1,
            in("r4") 3u64 << 10, in("r5") 0u64, options(nostack));
    }
    for set in 1..u64::from(sets) {
        let rb = (set << 12) | (3 << 10);
        // SAFETY: as above.
        unsafe {
            asm!(".long {a}", ".long {b}",
                a = const TLBIEL_RIC0_PRS0, b = const TLBIEL_RIC0_PRS1,
                in("r4") rb, in("r5") 0u64, options(nostack));
        }
    }
    ptesync();
}

/// Sends a directed hypervisor doorbell to the thread with this PIR (`msgsnd`,
/// X-form XO 206, RB in r3).
pub fn msgsnd_hyp(pir: u32) {
    let rb = DBELL_TYPE_HYP | u64::from(pir & 0xfffff);
    // SAFETY: a doorbell only raises an interrupt condition on the target thread.
    unsafe { asm!("sync", ".long 0x7c00199c", in("r3") rb, options(nostack)) };
}

/// Clears this thread's pending hypervisor doorbell (`msgclr`, XO 238, RB in r3).
pub fn msgclr_hyp() {
    // SAFETY: clears only this thread's doorbell condition.
    unsafe { asm!(".long 0x7c0019dc", in("r3") DBELL_TYPE_HYP, options(nostack)) };
}

/// Clears this thread's pending directed privileged doorbell (`msgclrp`, XO 174,
/// RB in r3), which a guest's `msgsndp` may have left; only this thread's bit
/// of DPDES changes.
pub fn msgclrp() {
    // SAFETY: clears only this thread's privileged doorbell condition.
    unsafe { asm!(".long 0x7c00195c", in("r3") DBELL_TYPE_HYP, options(nostack)) };
}

/// Zeroes this thread's floating-point, vector and VSX state: VSR 0-63 (which
/// hold FPR 0-31 and VR 0-31), FPSCR and VSCR, so a vCPU starting on this thread
/// sees none of what ran there before (the hypervisor is soft-float and never
/// touches them otherwise). Enables MSR[FP|VEC|VSX] around the sequence. The
/// instructions are encoded by hand since the hypervisor's target has no
/// floating-point or vector features: `xxlxor vsN,vsN,vsN` (XX3-form, opcode
/// 60, XO 154, the sixth bit of each register number in TX/AX/BX),
/// `mtfsf 0xff,f0` and `mtvscr v0`.
pub fn zero_fp_vector_state() {
    /// MSR bits 38 (VEC), 40 (VSX) and 50 (FP).
    const FP_VEC_VSX: u64 = (1 << (63 - 38)) | (1 << (63 - 40)) | (1 << (63 - 50));
    let msr = mfmsr().bits();
    // SAFETY: only the FP/vector facility bits of the MSR change, and back; the
    // registers cleared are no hypervisor state (the hypervisor is soft-float).
    unsafe {
        asm!(
            "mtmsrd {on}",
            "isync",
            ".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63",
            ".long (60 << 26) | ((\\i & 31) << 21) | ((\\i & 31) << 16) | ((\\i & 31) << 11) | (154 << 3) | ((\\i >> 5) << 2) | ((\\i >> 5) << 1) | (\\i >> 5)",
            ".endr",
            ".long 0xfdfe058e",
            ".long 0x10000644",
            "mtmsrd {off}",
            "isync",
            on = in(reg) msr | FP_VEC_VSX,
            off = in(reg) msr,
            options(nostack)
        )
    };
}

/// Zeroes the 128-byte cache block at `addr` (`dcbz`; POWER9 and Power10 blocks
/// are 128 bytes).
///
/// # Safety
/// The block must be memory the caller may overwrite.
#[inline(always)]
pub unsafe fn dcbz(addr: u64) {
    // SAFETY: the caller owns the block.
    unsafe { asm!("dcbz 0, {0}", in(reg_nonzero) addr, options(nostack, preserves_flags)) };
}

/// Lowers this thread's SMT priority while spinning (`or 1,1,1`) and restores it.
#[inline(always)]
pub fn hmt_low() {
    // SAFETY: a priority hint.
    unsafe { asm!("or 1,1,1", options(nomem, nostack, preserves_flags)) };
}

#[inline(always)]
pub fn hmt_medium() {
    // SAFETY: a priority hint.
    unsafe { asm!("or 2,2,2", options(nomem, nostack, preserves_flags)) };
}

/// `stop` with PSSCR = 0 (EC=0, level 0): the thread halts until a wake-up event the
/// LPCR exit-enable bits allow, then continues with the next instruction; the
/// interrupt itself is taken once MSR[EE] allows (Book III 7.3.2.1).
pub fn stop_lite() {
    // SAFETY: writing PSSCR = 0 selects the lightest stop state, which loses no
    // state; `stop` then resumes in place.
    unsafe {
        super::spr::psscr::write(0);
        asm!("sync", "stop", options(nostack));
    }
}

/// Makes stores to `[addr, addr + len)` visible to instruction fetch: `dcbst`
/// each line, `sync`, `icbi` each line, `sync; isync` (Book II 1.6.2,
/// "Instruction Storage"). `addr` is a hypervisor (linear map) address.
pub fn sync_icache_range(addr: u64, len: u64) {
    let mut a = addr & !(CACHE_LINE - 1);
    while a < addr.saturating_add(len) {
        // SAFETY: dcbst writes a cache line back; it never changes memory contents
        // and the caller names mapped memory.
        unsafe { asm!("dcbst 0, {0}", in(reg_nonzero) a, options(nostack, preserves_flags)) };
        a += CACHE_LINE;
    }
    sync();
    invalidate_icache_range(addr, len);
}

/// Drops `[addr, addr + len)` from the instruction cache: `icbi` each line, then
/// `sync; isync`.
pub fn invalidate_icache_range(addr: u64, len: u64) {
    let mut a = addr & !(CACHE_LINE - 1);
    while a < addr.saturating_add(len) {
        // SAFETY: icbi only invalidates instruction cache blocks.
        unsafe { asm!("icbi 0, {0}", in(reg_nonzero) a, options(nostack, preserves_flags)) };
        a += CACHE_LINE;
    }
    sync();
    isync();
}

/// Data and instruction cache block size on POWER9 and Power10.
const CACHE_LINE: u64 = 128;
