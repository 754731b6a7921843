//! XICS emulation (PAPR 14.5.4.6, "Interrupt Support" hcalls) for kernels that do
//! not use XIVE: one presentation controller (ICP) per vCPU with its CPPR, MFRR
//! (inter-processor interrupts) and the source being presented. Partitions have no
//! device interrupt sources yet, so the only source is the IPI (XISR 2).
//!
//! Priorities: 0 is most favoured, 0xff least; an interrupt is presented when its
//! priority is more favoured (numerically lower) than the CPPR.

/// The XISR value of an inter-processor interrupt (Linux's XICS_IPI).
pub const XICS_IPI: u32 = 2;

/// One vCPU's presentation controller, packed in a u32 so it can live in an atomic:
/// bits 0-7 CPPR, 8-15 MFRR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icp {
    pub cppr: u8,
    pub mfrr: u8,
}

impl Icp {
    /// Reset state: everything masked, no IPI.
    pub const RESET: Icp = Icp {
        cppr: 0,
        mfrr: 0xff,
    };

    pub const fn pack(self) -> u32 {
        (self.cppr as u32) | ((self.mfrr as u32) << 8)
    }

    pub const fn unpack(v: u32) -> Icp {
        Icp {
            cppr: v as u8,
            mfrr: (v >> 8) as u8,
        }
    }

    /// An interrupt is waiting to be presented.
    pub const fn pending(self) -> bool {
        self.mfrr < self.cppr
    }

    /// H_XIRR: accept the pending interrupt, if any. Returns the new state and the
    /// XIRR value for the guest (old CPPR in the top byte, source below).
    pub const fn accept(self) -> (Icp, u32) {
        let xirr_hi = (self.cppr as u32) << 24;
        if self.pending() {
            (
                Icp {
                    cppr: self.mfrr,
                    mfrr: self.mfrr,
                },
                xirr_hi | XICS_IPI,
            )
        } else {
            (self, xirr_hi)
        }
    }

    /// H_IPOLL: what H_XIRR would return, without accepting.
    pub const fn poll(self) -> u32 {
        let xirr_hi = (self.cppr as u32) << 24;
        if self.pending() {
            xirr_hi | XICS_IPI
        } else {
            xirr_hi
        }
    }

    /// H_EOI: end of interrupt `xirr`; the CPPR returns to its top byte. An IPI's
    /// MFRR stays as set (the guest clears it with H_IPI 0xff first, as Linux does).
    pub const fn eoi(self, xirr: u32) -> Icp {
        Icp {
            cppr: (xirr >> 24) as u8,
            mfrr: self.mfrr,
        }
    }
}

/// Whether `source` (the low 24 bits of an XIRR) names a source that exists.
pub const fn valid_source(source: u32) -> bool {
    source == XICS_IPI || source == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipi_is_presented_accepted_and_eoid() {
        let mut icp = Icp::RESET;
        assert!(!icp.pending());
        icp.cppr = 0xff; // H_CPPR(0xff): accept everything
        icp.mfrr = 5; // H_IPI(self, 5)
        assert!(icp.pending());
        assert_eq!(icp.poll(), 0xff00_0002);
        let (after, xirr) = icp.accept();
        assert_eq!(xirr, 0xff00_0002);
        assert_eq!(after.cppr, 5);
        assert!(!after.pending());
        let cleared = Icp {
            mfrr: 0xff,
            ..after
        }; // H_IPI(self, 0xff)
        let done = cleared.eoi(xirr);
        assert_eq!(
            done,
            Icp {
                cppr: 0xff,
                mfrr: 0xff
            }
        );
        assert!(!done.pending());
    }

    #[test]
    fn masked_cppr_holds_interrupts_back() {
        let icp = Icp { cppr: 4, mfrr: 5 };
        assert!(!icp.pending());
        assert_eq!(icp.accept(), (icp, 0x0400_0000));
        assert!(Icp { cppr: 6, mfrr: 5 }.pending());
    }

    #[test]
    fn packing_round_trips() {
        for cppr in [0u8, 5, 0xff] {
            for mfrr in [0u8, 7, 0xff] {
                let i = Icp { cppr, mfrr };
                assert_eq!(Icp::unpack(i.pack()), i);
            }
        }
        assert!(valid_source(2));
        assert!(!valid_source(0x1000));
    }
}
