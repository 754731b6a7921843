//! Random SPR writes. Supervisor SPRs a guest owns get random values (and those
//! the hypervisor must switch are checked to survive an hcall); the performance
//! monitor, DPDES/msgsndp and the hypervisor-privileged or facility-controlled
//! SPRs are classes of their own, because a hypervisor that does not manage
//! them is attacked through them (audit findings 1 and 3). A write that traps
//! (program, facility unavailable) is skipped; SPRs that would change this
//! guest's own MSR or interrupt routing are not written.
use core::arch::asm;

use crate::env::Class;
use crate::fuzz::Fuzz;
use crate::trap;

macro_rules! sprs {
    ($($n:literal),* $(,)?) => {
        /// `mtspr n, v` for the SPR numbers listed; others do nothing.
        pub fn mtspr(n: u32, v: u64) {
            match n {
                $($n => {
                    // SAFETY: an SPR of the lists below; a trap is skipped by the
                    // caller's `may_fault`.
                    unsafe { asm!(concat!("mtspr ", stringify!($n), ", {0}"), in(reg) v, options(nostack)) }
                })*
                _ => {}
            }
        }

        /// `mfspr n` for the SPR numbers listed; others read 0.
        pub fn mfspr(n: u32) -> u64 {
            let mut v: u64 = 0;
            match n {
                $($n => {
                    // SAFETY: as `mtspr`.
                    unsafe { asm!(concat!("mfspr {0}, ", stringify!($n)), out(reg) v, options(nostack)) }
                })*
                _ => {}
            }
            v
        }
    };
}

sprs!(
    13, 17, 18, 19, 22, 26, 27, 28, 48, 61, 144, 152, 153, 157, 159, 256, 272, 273, 274, 275, 815,
    823, 896, 784, 785, 786, 787, 788, 789, 790, 791, 792, 795, 796, 797, 798, 752, 753, 754, 176,
    93, 128, 129, 130, 180, 187, 188, 190, 304, 305, 310, 313, 314, 315, 318, 319, 336, 464, 804,
    805, 806, 855, 1023,
);

/// Supervisor SPRs the guest owns: AMR, DSCR, DSISR, DAR, DEC, SRR0/1, CFAR,
/// PIDR, IAMR, TIDR, CTRL, FSCR, UAMOR, PSPB, VRSAVE, SPRG0-3, TAR, PSSCR, PPR.
const GUEST: &[u32] = &[
    13, 17, 18, 19, 22, 26, 27, 28, 48, 61, 144, 152, 153, 157, 159, 256, 272, 273, 274, 275, 815,
    823, 896,
];
/// SIER, MMCR2, MMCRA, PMC1-6, MMCR0, SIAR, SDAR, MMCR1; Power10 SIER2, SIER3, MMCR3.
const PMU: &[u32] = &[
    784, 785, 786, 787, 788, 789, 790, 791, 792, 795, 796, 797, 798, 752, 753, 754,
];
/// Hypervisor-privileged, or behind facilities a partition may not be given:
/// AMOR, TFHAR/TFIAR/TEXASR, DAWR0, CIABR, DAWRX0, HFSCR, HSPRG0/1, HDEC, HRMOR,
/// HSRR0/1, LPCR, LPIDR, HMER, PTCR, PSSCR (hypervisor), PIR.
///
/// Not EBBHR/EBBRR/BESCR: the hypervisor grants EBB (HFSCR[EBB], as KVM-HV),
/// and QEMU 10.0 aborts the whole emulator ("longjmp causes uninitialized
/// stack frame") when a PMU overflow timer raises an event-based branch
/// (random BESCR[PME] and MMCR0[EBE]) while FSCR[EBB] is clear: its timer
/// callback takes the facility-unavailable exit outside the CPU loop. That is
/// an emulator bug hardware does not have; docs/partitions.md notes it.
const HV: &[u32] = &[
    93, 128, 129, 130, 180, 187, 188, 190, 304, 305, 310, 313, 314, 315, 318, 319, 336, 464, 855,
    1023,
];

/// SPRs whose value must survive an exit, with the bits that are implemented:
/// SPRG0-3, DAR, DSISR (32 bits), TAR (word-aligned), VRSAVE (32 bits).
const KEPT: &[(u32, u64)] = &[
    (272, u64::MAX),
    (273, u64::MAX),
    (274, u64::MAX),
    (275, u64::MAX),
    (19, u64::MAX),
    (18, 0xffff_ffff),
    (256, 0xffff_ffff),
];

/// MMCR0 bits: FC (freeze counters), PMAE (alert enable), PMAO (alert occurred).
pub const MMCR0_FC: u64 = 0x8000_0000;
pub const MMCR0_PMAE: u64 = 0x0400_0000;
pub const MMCR0_PMAO: u64 = 0x80;

/// `msgsndp` of a directed privileged doorbell to thread `tid` of this core.
pub fn msgsndp(tid: u64) {
    msgsndp_r3((5u64 << 27) | tid);
}

/// `msgsndp r3` as the function's first instruction. Not inlined on purpose:
/// QEMU (10.0) reports the Hypervisor Facility Unavailable interrupt of
/// `msgsndp` with HSRR0 at the start of the translation block rather than at
/// the instruction, so the instruction must begin one (a call does) for the
/// trap handler's skip (SRR0 + 4) to land after it. Hardware reports the
/// instruction itself.
/// Naked, so no prologue comes before it.
#[unsafe(naked)]
extern "C" fn msgsndp_r3(_rb: u64) {
    // A doorbell; the trap handler clears one that arrives, or skips the
    // instruction if the facility is not granted. (`msgsndp r3`, encoded: the
    // assembler does not know the mnemonic.)
    core::arch::naked_asm!(".long 0x7c00191c", "blr")
}

impl Fuzz<'_> {
    /// One random SPR write of an enabled class.
    pub fn spr(&mut self) {
        let e = self.env;
        let v = self.rng.next();
        match self.rng.below(10) {
            0..=4 if e.on(Class::Spr) => {
                let n = self.rng.pick(GUEST);
                // DEC: keep it from firing at once in a loop (the handler re-arms).
                trap::may_fault(|| mtspr(n, v));
            }
            5 if e.on(Class::Spr) => self.kept(),
            6 | 7 if e.on(Class::Pmu) => {
                let n = self.rng.pick(PMU);
                let v = if n == 795 {
                    // MMCR0 with the alert bits often set.
                    (v & !MMCR0_FC) | self.rng.pick(&[MMCR0_PMAO, MMCR0_PMAE | MMCR0_PMAO, 0])
                } else {
                    v
                };
                trap::may_fault(|| mtspr(n, v));
            }
            8 if e.on(Class::Dpdes) => {
                if self.rng.chance(1, 2) {
                    trap::may_fault(|| mtspr(176, v & 0xff));
                } else {
                    let tid = self.rng.below(8);
                    trap::may_fault(|| msgsndp(tid));
                }
            }
            9 if e.on(Class::HvSpr) => {
                let n = self.rng.pick(HV);
                if !trap::may_fault(|| mtspr(n, v)) {
                    // The write did not trap: it must not have reached a
                    // hypervisor register either (PIR, LPCR... read back).
                    self.hv_write_took(n, v);
                }
            }
            _ => {}
        }
    }

    fn hv_write_took(&mut self, n: u32, v: u64) {
        // Facility SPRs (TM, EBB) may legitimately be granted to the guest;
        // hypervisor ones never.
        let hv_only = matches!(
            n,
            93 | 190 | 304 | 305 | 310 | 313 | 314 | 315 | 318 | 319 | 336 | 464 | 855 | 1023
        );
        if !hv_only {
            return;
        }
        let mut got = 0;
        let faulted = trap::may_fault(|| got = mfspr(n));
        if !faulted && got == v {
            self.report(
                0,
                &[u64::from(n), v],
                format_args!("hypervisor SPR {} took a guest write", n),
            );
        }
    }

    /// An SPR the hypervisor must preserve: write, exit (full hcall or the fast
    /// path), read back.
    fn kept(&mut self) {
        let (n, mask) = self.rng.pick(KEPT);
        let v = self.rng.next();
        mtspr(n, v);
        if self.rng.chance(1, 2) {
            self.call(0x1c8, &[], crate::fuzz::Want::Is(0));
        } else {
            let me = self.cpu as u64;
            self.call(0xe8, &[me], crate::fuzz::Want::Is(0));
        }
        let got = mfspr(n);
        if got & mask != v & mask {
            self.report(
                0,
                &[u64::from(n), v],
                format_args!("SPR {} was {:#x} after an hcall, set {:#x}", n, got, v),
            );
        }
    }

    /// What a vCPU leaves behind before it stops: a performance monitor alert
    /// (MMCR0[PMAO] with PMAE) and its doorbell bit, with interrupts off.
    pub fn leave_pending(&mut self) {
        if self.env.on(Class::Pmu) {
            trap::may_fault(|| mtspr(795, MMCR0_PMAE | MMCR0_PMAO));
        }
        if self.env.on(Class::Dpdes) {
            trap::may_fault(|| mtspr(176, 0xff));
            trap::may_fault(|| msgsndp(0));
        }
    }
}
