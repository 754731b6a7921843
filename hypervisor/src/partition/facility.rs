//! Which processor facilities a partition gets, what a guest that reaches
//! for one it does not get receives, and the machine check for an access to
//! a real address outside its memory: the Hypervisor Facility Status and Control
//! Register (HFSCR) value written on every guest entry, the decision on a
//! Hypervisor Facility Unavailable exit (0xf80), the performance monitor's
//! frozen state while the hypervisor holds the thread, and the POWER9 DAWR
//! erratum. Portable: `partition::vcpu` commits what this decides.
//!
//! HFSCR and FSCR share their layout (Power ISA v3.1 Book III 4.2.9/4.2.10): the
//! facility enable bits 48:63 (below as shifts from the least significant end,
//! Linux's `FSCR_*_LG`) and the interrupt cause (IC) in bits 0:7, which the
//! processor sets to the shift of the facility a Hypervisor Facility
//! Unavailable interrupt was for.

/// HFSCR facility bits, as shifts from bit 63 (IBM bit 63 - n).
pub const FAC_FP: u32 = 0;
pub const FAC_VECVSX: u32 = 1;
pub const FAC_DSCR: u32 = 2;
pub const FAC_PM: u32 = 3;
pub const FAC_BHRB: u32 = 4;
pub const FAC_TM: u32 = 5;
pub const FAC_EBB: u32 = 7;
pub const FAC_TAR: u32 = 8;
pub const FAC_MSGP: u32 = 10;
pub const FAC_PREFIX: u32 = 13;

/// HFSCR[IC], bits 0:7.
const IC_SHIFT: u32 = 56;

const fn bit(fac: u32) -> u64 {
    1 << fac
}

/// What a radix partition may use without the hypervisor's help: what KVM-HV
/// grants (its `kvmppc_core_vcpu_create_hv`): floating point, VMX/VSX, DSCR, TAR,
/// event-based branches, the performance monitor and the branch history
/// buffer, plus prefixed instructions on ISA v3.1. Not granted:
/// - TM: its checkpointed state is not switched (and Power10 has none);
/// - MSGP (`msgsndp`, `msgclrp`, DPDES): privileged doorbells reach the other
///   threads of the core, which may belong to another partition or be idle
///   hypervisor threads; the device tree does not offer msgsndp
///   (`ibm,pi-features`), so a guest that uses it anyway gets a program
///   interrupt (see [`hfac_action`]).
pub const fn guest_hfscr(isa_v31: bool) -> u64 {
    let base = bit(FAC_FP)
        | bit(FAC_VECVSX)
        | bit(FAC_DSCR)
        | bit(FAC_PM)
        | bit(FAC_BHRB)
        | bit(FAC_EBB)
        | bit(FAC_TAR);
    if isa_v31 {
        base | bit(FAC_PREFIX)
    } else {
        base
    }
}

/// The facility a Hypervisor Facility Unavailable interrupt was for: HFSCR[IC]
/// as the processor left it.
pub const fn hfac_cause(hfscr: u64) -> u32 {
    (hfscr >> IC_SHIFT) as u32
}

/// The human name of a facility number, for the guest's warning.
pub const fn facility_name(fac: u32) -> &'static str {
    match fac {
        FAC_FP => "FP",
        FAC_VECVSX => "VMX/VSX",
        FAC_DSCR => "DSCR",
        FAC_PM => "performance monitor",
        FAC_BHRB => "BHRB",
        FAC_TM => "transactional memory",
        FAC_EBB => "EBB",
        FAC_TAR => "TAR",
        FAC_MSGP => "msgsndp/msgclrp/DPDES",
        FAC_PREFIX => "prefixed instructions",
        _ => "unknown facility",
    }
}

/// What the hypervisor does about a Hypervisor Facility Unavailable exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfacAction {
    /// The facility is granted (the exit raced a change of HFSCR, or the
    /// firmware's value was in force): enter again with the partition's HFSCR
    /// and retry the instruction, as KVM's lazy enabling does.
    Retry,
    /// Not granted: a program interrupt, illegal instruction (SRR1 bit 44),
    /// the answer KVM-HV gives for every facility it does not emulate. (On
    /// POWER9 KVM emulates msgsndp to present a multi-threaded virtual core;
    /// every Paprika vCPU is alone in its virtual core and the device tree says
    /// msgsndp is absent, so it is refused like the rest.)
    ProgramIllegal,
}

/// Decides a Hypervisor Facility Unavailable exit taken with `hfscr` (IC set by
/// the processor) while the partition was granted `granted`.
pub const fn hfac_action(hfscr: u64, granted: u64) -> HfacAction {
    let cause = hfac_cause(hfscr);
    if cause < 56 && granted & bit(cause) != 0 {
        HfacAction::Retry
    } else {
        HfacAction::ProgramIllegal
    }
}

/// MMCR0 bits (Power ISA v3.1 Book III 9.4.4; Linux `asm/reg.h`).
pub const MMCR0_FC: u64 = 1 << 31;
/// Performance monitor alert enable / occurred, and the other conditions that
/// raise or enable a Performance Monitor interrupt or an EBB.
pub const MMCR0_PMAE: u64 = 1 << 26;
pub const MMCR0_PMAO: u64 = 1 << 7;
/// PMC counting extension (ISA v3.1): set when frozen, as KVM does.
pub const MMCR0_PMCCEXT: u64 = 1 << 9;
/// MMCRA BHRB disable (ISA v3.1).
pub const MMCRA_BHRB_DISABLE: u64 = 1 << 37;

/// MMCR0 and MMCRA while the hypervisor holds the thread (KVM-HV's
/// `freeze_pmu`): every counter frozen, no alert pending or enabled (a pending
/// MMCR0[PMAO] is a standing Performance Monitor exception that the hypervisor
/// would take at 0xf00 as soon as it enables interrupts), no sampling, and on
/// ISA v3.1 the BHRB off.
pub const fn frozen_pmu(isa_v31: bool) -> (u64, u64) {
    if isa_v31 {
        (MMCR0_FC | MMCR0_PMCCEXT, MMCRA_BHRB_DISABLE)
    } else {
        (MMCR0_FC, 0)
    }
}

/// PVR version of POWER9 (Power ISA: PVR bits 0:15).
pub const PVR_POWER9: u32 = 0x004e;

/// The POWER9 DAWR erratum: before DD2.3, a DAWR match on a cache-inhibited
/// access checkstops the chip (Linux Documentation/arch/powerpc/dawr-power9.rst).
/// A guest chooses both its watchpoint and its CI mappings, so the DAWR is not
/// offered there: H_SET_MODE(DAWR0) answers H_P2 and H_SET_DABR/XDABR
/// H_HARDWARE, as KVM-HV does without `dawr_enable_dangerous`. The revision is
/// PVR bits 48:63 with the major level in bits 52:55 and the minor level in
/// 56:63 (bit 51 tells chip variants apart, as Linux's `0xffffefff` masks
/// show: DD2.2 is 0x0202 or 0x1202).
pub const fn dawr_erratum(pvr: u64) -> bool {
    if (pvr >> 16) as u32 & 0xffff != PVR_POWER9 {
        return false;
    }
    let major = (pvr >> 8) & 0xf;
    let minor = pvr & 0xff;
    major < 2 || (major == 2 && minor < 3)
}

/// How a guest reached a real address with nothing behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unassigned {
    Load,
    Store,
    Fetch,
}

/// The machine check (0x200) a guest gets for an access to a real address
/// outside its memory (and not an emulated device), as on PowerVM and KVM,
/// with the registers QEMU sets for an access to unassigned memory on POWER9
/// and Power10 (target/ppc `ppc_cpu_do_transaction_failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineCheck {
    /// SRR1 bits 33:36 and 42:47 describing the cause.
    pub srr1: u64,
    /// DAR gets the effective address (loads and stores).
    pub sets_dar: bool,
    /// DSISR, when the cause sets it (loads).
    pub dsisr: Option<u64>,
}

const fn ibm(n: u32) -> u64 {
    1 << (63 - n)
}

pub const fn unassigned_access(kind: Unassigned) -> MachineCheck {
    match kind {
        // SRR1[42]: a load/store caused it; DSISR[57]: the load's cause.
        Unassigned::Load => MachineCheck {
            srr1: ibm(42),
            sets_dar: true,
            dsisr: Some(ibm(57)),
        },
        Unassigned::Store => MachineCheck {
            srr1: ibm(36) | ibm(42) | ibm(43) | ibm(45),
            sets_dar: true,
            dsisr: None,
        },
        // Bit 42 stays clear for fetches.
        Unassigned::Fetch => MachineCheck {
            srr1: ibm(36) | ibm(44) | ibm(45),
            sets_dar: false,
            dsisr: None,
        },
    }
}

/// DSISR/HDSISR bit 33 (and SRR1/HSRR1 bit 33 for instruction fetches): no
/// translation was found. Only such a fault is a first touch of guest memory
/// that mapping the chunk resolves; any other cause on memory that is mapped
/// would come back at once, forever.
pub const FAULT_NO_TRANSLATION: u64 = ibm(33);
/// HDSISR bit 38: the access was a store.
pub const HDSISR_STORE: u64 = ibm(38);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unassigned_access_bits_as_qemu() {
        let l = unassigned_access(Unassigned::Load);
        assert_eq!((l.srr1, l.dsisr), (0x20_0000, Some(0x40)));
        assert!(l.sets_dar);
        let s = unassigned_access(Unassigned::Store);
        assert_eq!(s.srr1, 0x0800_0000 | 0x20_0000 | 0x10_0000 | 0x4_0000);
        assert_eq!(s.dsisr, None);
        let f = unassigned_access(Unassigned::Fetch);
        assert_eq!(f.srr1, 0x0800_0000 | 0x8_0000 | 0x4_0000);
        assert!(!f.sets_dar);
        // All inside the SRR1 bits an interrupt sets (33:36, 42:47).
        for m in [l, s, f] {
            assert_eq!(m.srr1 & !0x783f_0000, 0);
        }
        assert_eq!(FAULT_NO_TRANSLATION, 0x4000_0000);
        assert_eq!(HDSISR_STORE, 0x0200_0000);
    }

    #[test]
    fn hfscr_grants_what_kvm_does() {
        // FP 63, VECVSX 62, DSCR 61, PM 60, BHRB 59, EBB 56, TAR 55: 0x19f.
        assert_eq!(guest_hfscr(false), 0x19f);
        // Power10 adds PREFIX (bit 50).
        assert_eq!(guest_hfscr(true), 0x219f);
        for v31 in [false, true] {
            let h = guest_hfscr(v31);
            assert_eq!(h & bit(FAC_MSGP), 0, "no msgsndp");
            assert_eq!(h & bit(FAC_TM), 0, "no TM");
            assert_eq!(hfac_cause(h), 0, "IC clear");
        }
    }

    #[test]
    fn hfac_cause_is_the_top_byte() {
        assert_eq!(hfac_cause(0x0a00_0000_0000_019f), FAC_MSGP);
        assert_eq!(hfac_cause(0x0500_0000_0000_0000), FAC_TM);
        assert_eq!(hfac_cause(0xff00_0000_0000_0000), 0xff);
        assert_eq!(facility_name(FAC_MSGP), "msgsndp/msgclrp/DPDES");
        assert_eq!(facility_name(99), "unknown facility");
    }

    #[test]
    fn refused_facilities_get_a_program_interrupt() {
        let g = guest_hfscr(false);
        let with_ic = |fac: u64| (fac << 56) | g;
        assert_eq!(hfac_action(with_ic(10), g), HfacAction::ProgramIllegal);
        assert_eq!(hfac_action(with_ic(5), g), HfacAction::ProgramIllegal);
        assert_eq!(hfac_action(with_ic(13), g), HfacAction::ProgramIllegal);
        assert_eq!(
            hfac_action(with_ic(13), guest_hfscr(true)),
            HfacAction::Retry
        );
        assert_eq!(hfac_action(with_ic(3), g), HfacAction::Retry);
        // Causes that name no facility bit (reserved, >= 56) never retry.
        assert_eq!(
            hfac_action(with_ic(60), u64::MAX),
            HfacAction::ProgramIllegal
        );
        assert_eq!(
            hfac_action(with_ic(0xff), u64::MAX),
            HfacAction::ProgramIllegal
        );
    }

    #[test]
    fn frozen_pmu_has_no_alert() {
        for v31 in [false, true] {
            let (mmcr0, mmcra) = frozen_pmu(v31);
            assert_ne!(mmcr0 & MMCR0_FC, 0);
            assert_eq!(mmcr0 & (MMCR0_PMAE | MMCR0_PMAO), 0);
            assert_eq!(mmcra & 1, 0, "sampling off");
        }
        assert_eq!(frozen_pmu(false), (0x8000_0000, 0));
        assert_eq!(frozen_pmu(true), (0x8000_0200, 0x20_0000_0000));
    }

    #[test]
    fn dawr_erratum_by_pvr() {
        // POWER9 DD1.0, DD2.0, DD2.1, DD2.2 (both variants; QEMU's powernv9
        // is power9_v2.2, PVR 0x004e1202): refused.
        for pvr in [
            0x004e_0100,
            0x004e_1200,
            0x004e_0201,
            0x004e_0202,
            0x004e_1202,
        ] {
            assert!(dawr_erratum(pvr), "{pvr:#x}");
        }
        // POWER9 DD2.3 and later, Power10 (0x0080), POWER8 (0x004d): fine.
        for pvr in [
            0x004e_0203,
            0x004e_1203,
            0x004e_1300,
            0x0080_0200,
            0x0080_1100,
            0x004d_0200,
        ] {
            assert!(!dawr_erratum(pvr), "{pvr:#x}");
        }
        // Upper PVR bits above the version are ignored.
        assert!(dawr_erratum(0xffff_ffff_004e_1202));
    }
}
