//! XICS emulation (PAPR 14.5.4.6, "Interrupt Support" hcalls; the RTAS calls of
//! PAPR 7.3.10 ibm,set-xive and friends) for kernels that do not use XIVE. One
//! partition has one [`Xics`]: a presentation controller (ICP) per vCPU, with its
//! CPPR and MFRR (inter-processor interrupts), and an interrupt source controller
//! (ICS) holding the partition's device sources (the vty, `lpar::VTY_LISN`).
//!
//! Priorities: 0 is most favoured, 0xff least (and, for a source, masked); an
//! interrupt is presented when its priority is more favoured (numerically lower)
//! than the CPPR.
//!
//! Sources are message-signalled (edge), like QEMU's vty: a trigger makes the
//! source pending; H_XIRR accepting it clears that (one presentation per
//! trigger, triggers in between coalesce) and puts it in service until H_EOI; a
//! trigger meanwhile makes it pending again, so it is presented again once the
//! CPPR allows.
//!
//! What a vCPU is presented is computed from this state, not latched: the most
//! favoured of its IPI (MFRR < CPPR) and the pending sources routed to it with a
//! priority below the CPPR; at equal priority the IPI wins (as KVM's XICS-on-XIVE
//! does), then the source listed first. This gives QEMU's `icp_reject` /
//! `ics_resend` behaviour (hw/intc/xics.c) without their bookkeeping: a source
//! displaced by a more favoured IPI, or held back by a more favoured CPPR, simply
//! stays pending and is presented again when the CPPR is lowered (H_CPPR, H_EOI).
//! Unlike QEMU, a masked source that was rejected earlier is not lost: it is
//! presented when unmasked, as one that triggered while masked is in QEMU.
//!
//! Portable (host-tested); never panics on guest input, every value a guest can
//! pass is checked.
use alloc::vec::Vec;

/// The XISR value of an inter-processor interrupt (Linux's XICS_IPI).
pub const XICS_IPI: u32 = 2;
/// The priority that masks a source, and the least favoured CPPR.
pub const MASKED: u8 = 0xff;

/// One vCPU's presentation controller: its current processor priority and its
/// IPI register.
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

    /// Its IPI is presentable.
    pub const fn ipi_pending(self) -> bool {
        self.mfrr < self.cppr
    }
}

/// One interrupt source of the ICS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its number (the XISR value presented, the `interrupts` cell in the tree).
    pub nr: u32,
    /// The server (vCPU id) it is routed to.
    pub server: u32,
    /// Its priority; `MASKED` (0xff) holds it back.
    pub priority: u8,
    /// The priority ibm,int-on restores (set by ibm,set-xive and ibm,int-off).
    pub saved_priority: u8,
    /// Triggered and not accepted yet.
    pub pending: bool,
    /// Accepted (H_XIRR) and not ended (H_EOI) yet.
    pub in_service: bool,
}

impl Source {
    const fn reset(nr: u32) -> Source {
        Source {
            nr,
            server: 0,
            priority: MASKED,
            saved_priority: MASKED,
            pending: false,
            in_service: false,
        }
    }
}

/// Why a guest's request was refused: the hcalls answer H_PARAMETER, RTAS -3
/// (as QEMU's xics_spapr.c does for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XicsError {
    /// No such server (vCPU id).
    Server,
    /// No such source number.
    Source,
    /// A priority, MFRR or XIRR out of range.
    Value,
}

/// A partition's XICS: one ICP per server (vCPU id `0..servers`) and the ICS.
#[derive(Clone, Debug)]
pub struct Xics {
    icps: Vec<Icp>,
    sources: Vec<Source>,
}

impl Xics {
    /// `servers` ICPs and one source per number in `sources` (the IPI's number,
    /// 0 and repeats are skipped: they cannot be sources).
    pub fn new(servers: u32, sources: &[u32]) -> Xics {
        let mut list: Vec<Source> = Vec::new();
        for &nr in sources {
            if nr != 0 && nr != XICS_IPI && nr <= XISR_MASK && !list.iter().any(|s| s.nr == nr) {
                list.push(Source::reset(nr));
            }
        }
        Xics {
            icps: (0..servers).map(|_| Icp::RESET).collect(),
            sources: list,
        }
    }

    /// Back to the reset state (system-reboot): CPPR 0, no IPI, every source
    /// masked, routed to server 0, nothing pending.
    pub fn reset(&mut self) {
        self.icps.fill(Icp::RESET);
        for s in &mut self.sources {
            *s = Source::reset(s.nr);
        }
    }

    pub fn servers(&self) -> u32 {
        self.icps.len() as u32
    }

    pub fn icp(&self, server: u32) -> Option<Icp> {
        self.icps.get(server as usize).copied()
    }

    pub fn source(&self, nr: u32) -> Option<Source> {
        self.sources.iter().find(|s| s.nr == nr).copied()
    }

    fn source_mut(&mut self, nr: u32) -> Result<&mut Source, XicsError> {
        self.sources
            .iter_mut()
            .find(|s| s.nr == nr)
            .ok_or(XicsError::Source)
    }

    fn icp_mut(&mut self, server: u32) -> Result<&mut Icp, XicsError> {
        self.icps.get_mut(server as usize).ok_or(XicsError::Server)
    }

    /// What `server` is presented: (XISR, priority), if anything.
    pub fn presented(&self, server: u32) -> Option<(u32, u8)> {
        let icp = self.icp(server)?;
        let mut best = icp.ipi_pending().then_some((XICS_IPI, icp.mfrr));
        for s in &self.sources {
            if s.server == server
                && s.pending
                && s.priority < icp.cppr
                && best.is_none_or(|(_, p)| s.priority < p)
            {
                best = Some((s.nr, s.priority));
            }
        }
        best
    }

    /// `server` has an interrupt to take (an external interrupt is due).
    pub fn pending(&self, server: u32) -> bool {
        self.presented(server).is_some()
    }

    /// H_XIRR: accepts what `server` is presented. Returns the XIRR for the guest
    /// (the CPPR before, in the top byte; the source below, 0 if none); the CPPR
    /// becomes the interrupt's priority. With nothing presented the CPPR stays.
    pub fn accept(&mut self, server: u32) -> Result<u32, XicsError> {
        let presented = self.presented(server);
        let icp = self.icp_mut(server)?;
        let hi = u32::from(icp.cppr) << 24;
        let Some((xisr, priority)) = presented else {
            return Ok(hi);
        };
        icp.cppr = priority;
        if xisr != XICS_IPI {
            let s = self.source_mut(xisr)?;
            s.pending = false;
            s.in_service = true;
        }
        Ok(hi | xisr)
    }

    /// H_IPOLL: what H_XIRR would return, without accepting, and the MFRR.
    pub fn poll(&self, server: u32) -> Result<(u32, u8), XicsError> {
        let icp = self.icp(server).ok_or(XicsError::Server)?;
        let hi = u32::from(icp.cppr) << 24;
        Ok((
            hi | self.presented(server).map_or(0, |(xisr, _)| xisr),
            icp.mfrr,
        ))
    }

    /// Whether `xisr` names the IPI, a source, or nothing (0): what H_EOI takes.
    pub fn valid_xisr(&self, xisr: u32) -> bool {
        xisr == 0 || xisr == XICS_IPI || self.source(xisr).is_some()
    }

    /// H_EOI: ends interrupt `xirr`; the CPPR returns to its top byte, which may
    /// let a pending interrupt through. An IPI's MFRR stays as set (the guest
    /// clears it with H_IPI 0xff first, as Linux does).
    pub fn eoi(&mut self, server: u32, xirr: u64) -> Result<(), XicsError> {
        let xirr = u32::try_from(xirr).map_err(|_| XicsError::Value)?;
        let xisr = xirr & XISR_MASK;
        if !self.valid_xisr(xisr) {
            return Err(XicsError::Value);
        }
        self.icp_mut(server)?.cppr = (xirr >> 24) as u8;
        if let Ok(s) = self.source_mut(xisr) {
            s.in_service = false;
        }
        Ok(())
    }

    /// H_CPPR: a more favoured CPPR holds back what no longer passes it (it stays
    /// pending); a less favoured one lets pending interrupts through.
    pub fn set_cppr(&mut self, server: u32, cppr: u64) -> Result<(), XicsError> {
        let cppr = u8::try_from(cppr).map_err(|_| XicsError::Value)?;
        self.icp_mut(server)?.cppr = cppr;
        Ok(())
    }

    /// H_IPI: sets `server`'s MFRR.
    pub fn set_mfrr(&mut self, server: u32, mfrr: u64) -> Result<(), XicsError> {
        let icp = self.icp_mut(server)?;
        icp.mfrr = u8::try_from(mfrr).map_err(|_| XicsError::Value)?;
        Ok(())
    }

    /// Source `nr` fires (an edge): pending until accepted. A masked source stays
    /// pending and is presented once unmasked.
    pub fn trigger(&mut self, nr: u32) -> Result<(), XicsError> {
        self.source_mut(nr)?.pending = true;
        Ok(())
    }

    /// ibm,set-xive: routes source `nr` to `server` at `priority` (0xff masks);
    /// int-on will restore that priority.
    pub fn set_xive(&mut self, nr: u32, server: u32, priority: u32) -> Result<(), XicsError> {
        if self.source(nr).is_none() {
            return Err(XicsError::Source);
        }
        if self.icp(server).is_none() {
            return Err(XicsError::Server);
        }
        let priority = u8::try_from(priority).map_err(|_| XicsError::Value)?;
        let s = self.source_mut(nr)?;
        s.server = server;
        s.priority = priority;
        s.saved_priority = priority;
        Ok(())
    }

    /// ibm,get-xive: source `nr`'s server and priority.
    pub fn get_xive(&self, nr: u32) -> Result<(u32, u8), XicsError> {
        let s = self.source(nr).ok_or(XicsError::Source)?;
        Ok((s.server, s.priority))
    }

    /// ibm,int-off: masks source `nr`, saving its priority for int-on. As in
    /// QEMU and KVM, the priority saved is the current one, so a second int-off
    /// saves the mask (Linux sets the priority again before int-on).
    pub fn int_off(&mut self, nr: u32) -> Result<(), XicsError> {
        let s = self.source_mut(nr)?;
        s.saved_priority = s.priority;
        s.priority = MASKED;
        Ok(())
    }

    /// ibm,int-on: restores source `nr`'s saved priority.
    pub fn int_on(&mut self, nr: u32) -> Result<(), XicsError> {
        let s = self.source_mut(nr)?;
        s.priority = s.saved_priority;
        Ok(())
    }
}

/// The source field of an XIRR (its low 24 bits).
pub const XISR_MASK: u32 = 0x00ff_ffff;

#[cfg(test)]
mod tests;
