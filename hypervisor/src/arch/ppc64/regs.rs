//! Register field definitions. Bit numbers in comments are IBM numbering (bit 0 is
//! the most significant of 64), Power ISA v3.0B Book III.
use bitflags::bitflags;

/// IBM bit `n` of a 64-bit register.
pub const fn ibm_bit(n: u32) -> u64 {
    1 << (63 - n)
}

bitflags! {
    /// Machine State Register (Book III 4.2.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Msr: u64 {
        /// bit 0: 64-bit mode.
        const SF = ibm_bit(0);
        /// bit 3: hypervisor state.
        const HV = ibm_bit(3);
        /// bit 41: secure state (ultravisor).
        const S = ibm_bit(41);
        /// bit 48: external interrupt enable.
        const EE = ibm_bit(48);
        /// bit 49: problem state.
        const PR = ibm_bit(49);
        /// bit 50: floating-point available.
        const FP = ibm_bit(50);
        /// bit 51: machine check interrupt enable.
        const ME = ibm_bit(51);
        /// bit 58: instruction relocate.
        const IR = ibm_bit(58);
        /// bit 59: data relocate.
        const DR = ibm_bit(59);
        /// bit 62: recoverable interrupt.
        const RI = ibm_bit(62);
        /// bit 63: little-endian mode.
        const LE = ibm_bit(63);
    }
}

bitflags! {
    /// Logical Partitioning Control Register (Book III 2.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Lpcr: u64 {
        /// bit 1: virtualized partition memory 1: with a hashed page table, a virtual-mode
        /// translation miss goes to the hypervisor (HDSI/HISI), not the guest.
        const VPM1 = ibm_bit(1);
        /// bit 17: hypervisor virtualization exit enable (wake from stop).
        const HVEE = ibm_bit(17);
        /// bit 37: hypervisor AIL (Power10).
        const HAIL = ibm_bit(37);
        /// bit 38: interrupt little-endian (guest).
        const ILE = ibm_bit(38);
        /// bits 39:40: alternate interrupt location.
        const AIL = ibm_bit(39) | ibm_bit(40);
        /// bit 41: use process table (radix/segment tables).
        const UPRT = ibm_bit(41);
        /// bit 43: host radix.
        const HR = ibm_bit(43);
        /// bit 45: online.
        const ONL = ibm_bit(45);
        /// bit 46: large decrementer.
        const LD = ibm_bit(46);
        /// bit 47: directed privileged doorbell exit enable.
        const PDEE = ibm_bit(47);
        /// bit 48: directed hypervisor doorbell exit enable.
        const HDEE = ibm_bit(48);
        /// bit 49: external exit enable.
        const EEE = ibm_bit(49);
        /// bit 50: decrementer exit enable.
        const DEE = ibm_bit(50);
        /// bit 51: other exit enable (machine check, HMI, HDEC).
        const OEE = ibm_bit(51);
        /// bit 52: mediated external request.
        const MER = ibm_bit(52);
        /// bit 53: guest translation shootdown enable.
        const GTSE = ibm_bit(53);
        /// bit 59: hypervisor emulation assistance interrupt control.
        const HEIC = ibm_bit(59);
        /// bits 60:61: logical partitioning environment selector.
        const LPES = ibm_bit(60) | ibm_bit(61);
        /// bit 62: hypervisor virtualization interrupt conditionally enable.
        const HVICE = ibm_bit(62);
        /// bit 63: hypervisor decrementer interrupt conditionally enable.
        const HDICE = ibm_bit(63);
    }
}

/// Doorbell message type for a directed hypervisor doorbell (`msgsnd`, RB bits
/// 32:36 = 5), Book III 5.9.2.
pub const DBELL_TYPE_HYP: u64 = 5 << (63 - 36);
