//! XIVE exploitation mode for one partition, emulated in the hypervisor.
//!
//! A pSeries guest that picks XIVE at CAS drives its interrupts through the
//! `H_INT_*` hcalls (PAPR 14.5.4.7; QEMU `hw/intc/spapr_xive.c` is the reference
//! implementation Linux is tested against), through ESB pages (one trigger and one
//! management page per logical interrupt source, LISN) and through the OS view of
//! the thread interrupt management area (TIMA). This module is that guest view, as
//! pure logic: it decides, the caller commits (kicks a vCPU, injects 0x500).
//!
//! # Why emulation and not the host XIVE
//!
//! KVM backs each guest source with an OPAL IPI and lets the hardware route into
//! guest queues, relying on END escalation to wake a vCPU that is not on a thread.
//! QEMU 10.0's powernv XIVE (our development machine) has no ESB escalation, and its
//! END queue-size handling and IPB merge on context push are wrong (fixed only in
//! 10.1). Routing guest interrupts through the host XIVE would therefore lose or
//! misplace interrupts on the platform we test on, so the hypervisor emulates the
//! whole guest-visible controller precisely and delivers the result as an external
//! interrupt (HV-virtualisation of 0x500) when [`Xive::pending`] says so.
//!
//! # Model
//!
//! * Sources: LISNs `0..nr_ipis` are IPIs (advertised as `ibm,xive-lisn-ranges =
//!   <0 nr_ipis>`), plus device sources given at construction. Each has an ESB PQ
//!   pair (reset `01` = off), an EAS (target vCPU, priority, EISN, masked) and, for
//!   LSIs, the level of its line.
//! * Event queues: one per (vCPU, priority 0..=6), in guest memory, of 4 KiB or
//!   64 KiB (`ibm,xive-eq-sizes = <12 16>`). Entries are big-endian
//!   `generation << 31 | EISN`; the generation starts at 1 when a queue is enabled
//!   and flips on each wrap (Linux starts its toggle at 0 and accepts an entry whose
//!   top bit differs from it).
//! * Presenters: one OS ring (TIMA QW1) per vCPU: NSR, CPPR, IPB, PIPR and the CAM
//!   word. An event sets `IPB |= 0x80 >> prio`; NSR\[EO\] is set iff PIPR < CPPR.
//!   Priority 7 is reserved for the hypervisor (`ibm,plat-res-int-priorities =
//!   <7 0xf8>`), as on QEMU/KVM.
//!
//! # Decisions where QEMU or Linux leave a choice
//!
//! * MSI EOI (load 0x000 / StoreEOI 0x400) follows the hardware ESB rule: `00`->`00`,
//!   `01`->`01` (an EOI does not switch an off source on), `10`->`00`, `11`->`10` and
//!   the event is forwarded again. The load returns 1 if it forwarded, else 0 (QEMU).
//! * LSIs have no Q: a trigger only moves `00`->`10`. After every PQ change of an LSI
//!   (EOI, SET_PQ) the line is re-sampled: asserted with PQ `00` fires again. This is
//!   what level-sensitive hardware does, and it means unmasking (SET_PQ_00) an
//!   asserted LSI cannot lose it.
//! * StoreEOI (management page 0x400..0x7FF) is implemented although never advertised
//!   (no flag 0x1 in H_INT_GET_SOURCE_INFO, as QEMU): it costs nothing and is the same
//!   transition as the load EOI.
//! * ESB offsets are decoded as QEMU does: the operation is selected by the offset
//!   within 4 KiB (aliased through the 64 KiB page); management-page stores at
//!   0x000..0x3FF trigger, 0x800..0xBFF are undefined ([`XiveError::EsbUnsupported`]).
//!   Loads on a trigger page are invalid ([`XiveError::EsbTriggerLoad`]).
//! * An event routed to a disabled queue (or an unwritable queue page) is dropped and
//!   the presenter is not notified, as QEMU does for an invalid END. The source stays
//!   at P=1 until the guest EOIs or resets its PQ.
//! * Notification is always immediate: the END "unconditional notify" flag
//!   (H_INT_SET_QUEUE_CONFIG flag 0x1, which Linux always sets) is stored and reported
//!   but not needed, since there is no END ESn ESB to coalesce through.
//! * H_INT_GET_SOURCE_INFO for an LSI returns flags `LSI | H_INT_ESB` and -1 for both
//!   pages, as QEMU: the guest must use H_INT_ESB so the hypervisor sees every EOI
//!   (the pages still work if the guest touches them).
//! * H_INT_GET_QUEUE_INFO returns address 0 (no END ESB "notification page" is
//!   emulated; Linux only records it in `q->eoi_phys`) and 16, the largest queue
//!   size (also the ESB page shift).
//! * H_INT_GET_QUEUE_CONFIG with the debug flag reports the generation in PAPR bit 62
//!   (0x2), as its specification says; QEMU shifts it by 62 instead.
//! * H_INT_GET_SOURCE_CONFIG reports the EAS priority (QEMU reads it from the END,
//!   which is 0 until a queue is configured); 0xff while masked. EISNs are 31 bits.
//! * Priorities above 0xff are reserved (QEMU truncates them to 8 bits), and
//!   H_INT_ESB offsets must be below 64 KiB (QEMU also accepts exactly 64 KiB, which
//!   would reach the next source's trigger page).
//! * H_INT_RESET masks every EAS (EISN 0), sets every PQ to `01`, disables every
//!   queue and clears IPB/PIPR/NSR, keeping each CPPR (QEMU leaves the thread
//!   contexts alone; clearing the pending bits avoids presenting events whose queues
//!   are gone). [`Xive::reset`] (partition reboot) also resets CPPR to 0. Neither
//!   changes an LSI's line level: that is the device's state.
//! * The TIMA QW1 bytes LSMFB, ACK_CNT and AGE read 0xff and INC 0 (QEMU's reset
//!   values); word 2 is `VO | vcpu id`.
//!
//! Whether the partition chose XIVE at CAS (H_FUNCTION otherwise) is the caller's
//! decision, as is the logging of a [`XiveError`] (a rate-limited warning: it is
//! always the guest's doing).
//!
//! # Invariants and locking
//!
//! The caller keeps one [`Xive`] per partition in a [`SharedXive`]: the model
//! behind a `spin::Mutex`, plus each vCPU's NSR\[EO\] mirrored in an atomic that
//! the guest entry path reads without the lock (see `shared`). Nothing here
//! takes another lock; [`GuestMemory`] implementations must not take this one. For
//! every presenter `PIPR == ipb_to_pipr(IPB)` and `NSR[EO] == (PIPR < CPPR)`; every
//! enabled queue's index is below its entry count. No input can make it panic.
#![deny(clippy::indexing_slicing)]

use alloc::vec::Vec;

use crate::papr::hcall::{self, HcallError, HcallResult};

mod shared;
pub use shared::SharedXive;

/// log2 of an ESB page (each LISN has a trigger page and a management page).
pub const ESB_SHIFT: u32 = 16;
/// Size of one ESB page.
pub const ESB_PAGE_SIZE: u64 = 1 << ESB_SHIFT;
/// Size of one TIMA page.
pub const TIMA_PAGE_SIZE: u64 = 0x1_0000;
/// Guest address of the user TIMA page (`reg[0]` of the `ibm,power-ivpe` node).
pub const TIMA_USER_GPA: u64 = 0x0006_0302_0318_0000;
/// Guest address of the OS TIMA page (`reg[1]`, the one Linux maps).
pub const TIMA_OS_GPA: u64 = TIMA_USER_GPA + TIMA_PAGE_SIZE;
/// Guest address of LISN 0's trigger page; LISN n's pages are at
/// `ESB_BASE_GPA + 2 * n * ESB_PAGE_SIZE` (trigger) and the next page (management).
pub const ESB_BASE_GPA: u64 = 0x0006_0302_0000_0000;

/// The LISN whose two ESB pages would be the two TIMA pages; it cannot exist.
pub const TIMA_LISN: u64 = (TIMA_USER_GPA - ESB_BASE_GPA) >> (ESB_SHIFT + 1);
const _: () = assert!((TIMA_USER_GPA - ESB_BASE_GPA).is_multiple_of(2 * ESB_PAGE_SIZE));

/// Most favoured..least favoured priorities a guest may use (7 is the hypervisor's).
pub const MAX_GUEST_PRIORITY: u8 = 6;
const NR_GUEST_PRIORITIES: usize = MAX_GUEST_PRIORITY as usize + 1;
/// Priority value that masks (SET_SOURCE_CONFIG) or is reported for a masked source.
pub const PRIORITY_MASKED: u8 = 0xff;
/// `ibm,plat-res-int-priorities`: (start, count) of the priorities the guest must not use.
pub const PLAT_RES_INT_PRIORITIES: [u32; 2] = [7, 0xf8];
/// `ibm,xive-eq-sizes`: supported log2 event-queue sizes.
pub const EQ_SIZES: [u32; 2] = [12, 16];
/// Largest supported event-queue size (log2).
pub const MAX_EQ_SHIFT: u64 = 16;
/// Most vCPUs (targets) one partition may have.
pub const MAX_VCPUS: u32 = 4096;
/// An EISN is 31 bits (the queue entry's top bit is the generation).
pub const EISN_MASK: u32 = 0x7fff_ffff;

/// ESB PQ bits, as returned by the management-page loads (`P << 1 | Q`).
pub const ESB_VAL_P: u8 = 0b10;
pub const ESB_VAL_Q: u8 = 0b01;
/// PQ `01`: the source is off (reset state).
pub const PQ_OFF: u8 = ESB_VAL_Q;

/// Management-page offsets (Linux `asm/xive-regs.h`).
pub const ESB_LOAD_EOI: u64 = 0x000;
pub const ESB_STORE_EOI: u64 = 0x400;
pub const ESB_GET: u64 = 0x800;
pub const ESB_SET_PQ_00: u64 = 0xc00;
pub const ESB_SET_PQ_01: u64 = 0xd00;
pub const ESB_SET_PQ_10: u64 = 0xe00;
pub const ESB_SET_PQ_11: u64 = 0xf00;

/// TIMA: offset of the OS ring (QW1) and of its bytes within it.
pub const TM_QW1_OS: u64 = 0x10;
pub const TM_NSR: u64 = 0;
pub const TM_CPPR: u64 = 1;
pub const TM_IPB: u64 = 2;
pub const TM_LSMFB: u64 = 3;
pub const TM_ACK_CNT: u64 = 4;
pub const TM_INC: u64 = 5;
pub const TM_AGE: u64 = 6;
pub const TM_PIPR: u64 = 7;
pub const TM_WORD2: u64 = 8;
/// 2-byte load: acknowledge the OS interrupt, returns `NSR << 8 | CPPR`.
pub const TM_SPC_ACK_OS_REG: u64 = 0x810;
/// 1-byte store: set a priority's bit in the OS IPB.
pub const TM_SPC_SET_OS_PENDING: u64 = 0x812;
/// NSR bit: an OS (external) exception is pending.
pub const TM_QW1_NSR_EO: u8 = 0x80;
/// Word 2 bit: the context (CAM line) is valid.
pub const TM_QW1W2_VO: u32 = 0x8000_0000;

/// hcall flag bits (PAPR numbers bits from the MSB: bit 63 is 0x1).
pub const SRC_INFO_STORE_EOI: u64 = 0x1;
pub const SRC_INFO_TRIGGER: u64 = 0x2;
pub const SRC_INFO_LSI: u64 = 0x4;
pub const SRC_INFO_H_INT_ESB: u64 = 0x8;
pub const SRC_CFG_MASK: u64 = 0x1;
pub const SRC_CFG_SET_EISN: u64 = 0x2;
pub const EQ_ALWAYS_NOTIFY: u64 = 0x1;
pub const EQ_DEBUG: u64 = 0x1;
pub const EQ_GENERATION: u64 = 0x2;
pub const ESB_HCALL_STORE: u64 = 0x1;

/// Writes into guest real memory, for event-queue entries. Implemented by the
/// partition over its guest-real-to-host mapping.
pub trait GuestMemory {
    /// Stores `value` big-endian at guest real address `gpa` (4-byte aligned);
    /// returns false, writing nothing, if that is not writable guest RAM.
    fn write_be32(&mut self, gpa: u64, value: u32) -> bool;
    /// Whether `[gpa, gpa + len)` is all guest RAM.
    fn contains(&self, gpa: u64, len: u64) -> bool;
}

/// A vCPU that now has an external interrupt pending ([`Xive::pending`]) and must
/// be kicked (IPI to its thread, or woken from H_CEDE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kick {
    pub vcpu: u32,
}

/// Which TIMA page an access went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimaPage {
    User,
    Os,
}

/// Which of a source's two ESB pages an access went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsbPage {
    Trigger,
    Mgmt,
}

/// What a guest address in the XIVE windows is; offsets are within the 64K page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioTarget {
    TimaOs { offset: u64 },
    TimaUser { offset: u64 },
    EsbTrigger { lisn: u32, offset: u64 },
    EsbMgmt { lisn: u32, offset: u64 },
}

/// A guest access that is not emulated. The caller logs it (rate-limited warning
/// naming the partition), returns all ones for a load and ignores a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XiveError {
    /// The accessing or targeted vCPU id does not exist.
    NoSuchVcpu,
    /// The LISN is not a configured source.
    NoSuchSource,
    /// [`Xive::set_lsi_level`] on a source that is not an LSI.
    NotLsi,
    /// The address is in no XIVE window (or names an unconfigured LISN).
    Unmapped,
    /// Size not 1, 2, 4 or 8, not naturally aligned, or crossing the page.
    BadAccess,
    /// An OS TIMA offset/size/direction that is not emulated.
    TimaUnsupported,
    /// Any access to the user TIMA page (the guest has no user-level contexts).
    TimaUserPage,
    /// A load from an ESB trigger page.
    EsbTriggerLoad,
    /// A management-page store at 0x800..0xBFF (undefined).
    EsbUnsupported,
}

/// Why [`Xive::new`] refused a configuration (a hypervisor or manifest bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NoVcpus,
    TooManyVcpus,
    /// The IPI range would reach [`TIMA_LISN`].
    TooManyIpis,
    /// A device LISN repeats, or lies in the IPI range.
    DuplicateLisn(u32),
    /// A device LISN equal to [`TIMA_LISN`].
    LisnOverlapsTima(u32),
}

/// Event assignment (routing) of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eas {
    pub masked: bool,
    pub target: u32,
    /// 0..=6 (meaningful only while not masked).
    pub priority: u8,
    pub eisn: u32,
}

impl Eas {
    /// Reset / "priority 0xff" state, as QEMU: masked, EISN 0, target 0.
    pub const RESET: Eas = Eas {
        masked: true,
        target: 0,
        priority: 0,
        eisn: 0,
    };
}

#[derive(Clone, Copy, Debug)]
struct Source {
    lisn: u32,
    lsi: bool,
    asserted: bool,
    pq: u8,
    eas: Eas,
}

impl Source {
    fn new(lisn: u32, lsi: bool) -> Source {
        Source {
            lisn,
            lsi,
            asserted: false,
            pq: PQ_OFF,
            eas: Eas::RESET,
        }
    }

    /// An event from the source: returns whether it must be forwarded.
    fn trigger(&mut self) -> bool {
        if self.lsi {
            // No Q for LSIs: the level is re-sampled at EOI instead.
            if self.pq == 0 {
                self.pq = ESB_VAL_P;
                return true;
            }
            return false;
        }
        match self.pq & 3 {
            0b00 => {
                self.pq = ESB_VAL_P;
                true
            }
            0b01 => false,
            _ => {
                self.pq = ESB_VAL_P | ESB_VAL_Q;
                false
            }
        }
    }

    /// EOI: returns whether an event must be forwarded again.
    fn eoi(&mut self) -> bool {
        if self.lsi {
            if self.pq == PQ_OFF {
                return false;
            }
            self.pq = 0;
            return self.resample();
        }
        match self.pq & 3 {
            0b11 => {
                self.pq = ESB_VAL_P;
                true
            }
            0b10 => {
                self.pq = 0;
                false
            }
            _ => false,
        }
    }

    /// Sets PQ, returning the old value and whether an (LSI) event must be forwarded.
    fn set_pq(&mut self, pq: u8) -> (u8, bool) {
        let old = self.pq;
        self.pq = pq & 3;
        (old, self.resample())
    }

    /// An asserted LSI with PQ 00 fires (level-sensitive).
    fn resample(&mut self) -> bool {
        if self.lsi && self.asserted && self.pq == 0 {
            self.pq = ESB_VAL_P;
            return true;
        }
        false
    }
}

/// One (vCPU, priority) event queue; `qshift == 0` means disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queue {
    qpage: u64,
    qshift: u8,
    index: u32,
    generation: u8,
    always_notify: bool,
}

impl Queue {
    const DISABLED: Queue = Queue {
        qpage: 0,
        qshift: 0,
        index: 0,
        generation: 0,
        always_notify: false,
    };

    /// Number of 4-byte entries; 0 when disabled.
    fn entries(&self) -> u32 {
        if self.qshift < 2 {
            return 0;
        }
        1u32.checked_shl(u32::from(self.qshift) - 2).unwrap_or(0)
    }
}

/// The OS ring (QW1) of one vCPU's thread context, plus its queues.
#[derive(Clone, Copy, Debug)]
struct Presenter {
    nsr: u8,
    cppr: u8,
    ipb: u8,
    pipr: u8,
    queues: [Queue; NR_GUEST_PRIORITIES],
}

fn ipb_to_pipr(ipb: u8) -> u8 {
    if ipb == 0 {
        0xff
    } else {
        ipb.leading_zeros() as u8
    }
}

/// The IPB bit of a priority; 0 for priorities above 7.
fn priority_to_ipb(prio: u8) -> u8 {
    0x80u8.checked_shr(u32::from(prio)).unwrap_or(0)
}

impl Presenter {
    const RESET: Presenter = Presenter {
        nsr: 0,
        cppr: 0,
        ipb: 0,
        pipr: 0xff,
        queues: [Queue::DISABLED; NR_GUEST_PRIORITIES],
    };

    fn update(&mut self) {
        self.pipr = ipb_to_pipr(self.ipb);
        if self.pipr < self.cppr {
            self.nsr |= TM_QW1_NSR_EO;
        } else {
            self.nsr &= !TM_QW1_NSR_EO;
        }
    }

    fn pending(&self) -> bool {
        self.nsr & TM_QW1_NSR_EO != 0
    }

    fn set_cppr(&mut self, cppr: u8) {
        // As QEMU: anything beyond the 8 priorities means "all open".
        self.cppr = if cppr > 7 { 0xff } else { cppr };
        self.update();
    }

    /// Acknowledge: returns the NSR before and the CPPR after.
    fn ack(&mut self) -> u16 {
        let nsr = self.nsr;
        if nsr & TM_QW1_NSR_EO != 0 {
            self.cppr = self.pipr;
            self.ipb &= !priority_to_ipb(self.pipr);
            self.nsr = 0;
            self.update();
        }
        (u16::from(nsr) << 8) | u16::from(self.cppr)
    }

    /// The 16 bytes of QW1 as the guest reads them.
    fn qw1(&self, vcpu: u32) -> [u8; 16] {
        let w2 = (TM_QW1W2_VO | vcpu).to_be_bytes();
        let [a, b, c, d] = w2;
        [
            self.nsr, self.cppr, self.ipb, 0xff, 0xff, 0, 0xff, self.pipr, a, b, c, d, 0, 0, 0, 0,
        ]
    }
}

/// Checks a 1/2/4/8-byte naturally aligned access inside a 64K page.
fn check_access(offset: u64, size: u64) -> Result<(), XiveError> {
    if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(size) {
        return Err(XiveError::BadAccess);
    }
    match offset.checked_add(size) {
        Some(end) if end <= ESB_PAGE_SIZE => Ok(()),
        _ => Err(XiveError::BadAccess),
    }
}

/// The low `size` bytes of `v`.
fn truncate(v: u64, size: u64) -> u64 {
    match size {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

/// A guest priority (0..=6) from a raw hcall argument.
fn guest_priority(p: u64) -> Option<u8> {
    u8::try_from(p).ok().filter(|&p| p <= MAX_GUEST_PRIORITY)
}

/// The guest-visible interrupt controller of one partition.
#[derive(Debug)]
pub struct Xive {
    nr_ipis: u32,
    /// IPIs at index = LISN, then device sources sorted by LISN.
    sources: Vec<Source>,
    presenters: Vec<Presenter>,
}

impl Xive {
    /// A controller for `nr_vcpus` vCPUs (targets 0..nr_vcpus), IPIs `0..nr_ipis`
    /// and the device sources `(lisn, is_lsi)`, all reset.
    pub fn new(nr_vcpus: u32, nr_ipis: u32, devices: &[(u32, bool)]) -> Result<Xive, ConfigError> {
        if nr_vcpus == 0 {
            return Err(ConfigError::NoVcpus);
        }
        if nr_vcpus > MAX_VCPUS {
            return Err(ConfigError::TooManyVcpus);
        }
        if u64::from(nr_ipis) > TIMA_LISN {
            return Err(ConfigError::TooManyIpis);
        }
        let mut devs: Vec<Source> = Vec::with_capacity(devices.len());
        for &(lisn, lsi) in devices {
            if u64::from(lisn) == TIMA_LISN {
                return Err(ConfigError::LisnOverlapsTima(lisn));
            }
            if lisn < nr_ipis || devs.iter().any(|s| s.lisn == lisn) {
                return Err(ConfigError::DuplicateLisn(lisn));
            }
            devs.push(Source::new(lisn, lsi));
        }
        devs.sort_unstable_by_key(|s| s.lisn);
        let mut sources: Vec<Source> = (0..nr_ipis).map(|l| Source::new(l, false)).collect();
        sources.extend(devs);
        let presenters = (0..nr_vcpus).map(|_| Presenter::RESET).collect();
        Ok(Xive {
            nr_ipis,
            sources,
            presenters,
        })
    }

    pub fn nr_vcpus(&self) -> u32 {
        self.presenters.len() as u32
    }

    /// `ibm,xive-lisn-ranges`: one (base, count) range of IPIs.
    pub fn lisn_ranges(&self) -> [u32; 2] {
        [0, self.nr_ipis]
    }

    /// Guest address range `[start, end)` holding every configured source's ESB
    /// pages (it may contain the TIMA pages and unconfigured LISNs' pages:
    /// [`Xive::classify`] sorts them out).
    pub fn esb_window(&self) -> (u64, u64) {
        let top = self.sources.last().map_or(0, |s| u64::from(s.lisn) + 1);
        (ESB_BASE_GPA, ESB_BASE_GPA + top * 2 * ESB_PAGE_SIZE)
    }

    /// Trigger-page and management-page addresses of a LISN (configured or not).
    pub fn esb_pages(lisn: u32) -> (u64, u64) {
        let trig = ESB_BASE_GPA + u64::from(lisn) * 2 * ESB_PAGE_SIZE;
        (trig, trig + ESB_PAGE_SIZE)
    }

    fn source_index(&self, lisn: u64) -> Option<usize> {
        if lisn < u64::from(self.nr_ipis) {
            return usize::try_from(lisn).ok();
        }
        let lisn = u32::try_from(lisn).ok()?;
        let ipis = self.nr_ipis as usize;
        let devs = self.sources.get(ipis..)?;
        let i = devs.binary_search_by_key(&lisn, |s| s.lisn).ok()?;
        ipis.checked_add(i)
    }

    /// What the guest address `gpa` is, or None if it is not in a XIVE window or
    /// names an unconfigured LISN.
    pub fn classify(&self, gpa: u64) -> Option<MmioTarget> {
        if (TIMA_USER_GPA..TIMA_USER_GPA + TIMA_PAGE_SIZE).contains(&gpa) {
            return Some(MmioTarget::TimaUser {
                offset: gpa - TIMA_USER_GPA,
            });
        }
        if (TIMA_OS_GPA..TIMA_OS_GPA + TIMA_PAGE_SIZE).contains(&gpa) {
            return Some(MmioTarget::TimaOs {
                offset: gpa - TIMA_OS_GPA,
            });
        }
        let rel = gpa.checked_sub(ESB_BASE_GPA)?;
        let page = rel >> ESB_SHIFT;
        let offset = rel & (ESB_PAGE_SIZE - 1);
        let lisn64 = page >> 1;
        self.source_index(lisn64)?;
        let lisn = u32::try_from(lisn64).ok()?;
        Some(if page & 1 == 0 {
            MmioTarget::EsbTrigger { lisn, offset }
        } else {
            MmioTarget::EsbMgmt { lisn, offset }
        })
    }

    /// Whether the vCPU has an external interrupt to take (NSR\[EO\]). Guest
    /// entry and H_CEDE read it lock-free, through [`SharedXive::pending`].
    #[inline]
    pub fn pending(&self, vcpu: u32) -> bool {
        self.presenters
            .get(vcpu as usize)
            .is_some_and(Presenter::pending)
    }

    /// The ESB PQ of a source (`P << 1 | Q`).
    pub fn source_pq(&self, lisn: u32) -> Option<u8> {
        let i = self.source_index(u64::from(lisn))?;
        self.sources.get(i).map(|s| s.pq)
    }

    /// The routing of a source.
    pub fn eas(&self, lisn: u32) -> Option<Eas> {
        let i = self.source_index(u64::from(lisn))?;
        self.sources.get(i).map(|s| s.eas)
    }

    /// The 16 bytes of a vCPU's QW1 (NSR, CPPR, IPB, LSMFB, ACK_CNT, INC, AGE,
    /// PIPR, word 2, word 3), e.g. for a debug dump.
    pub fn qw1(&self, vcpu: u32) -> Option<[u8; 16]> {
        self.presenters.get(vcpu as usize).map(|p| p.qw1(vcpu))
    }

    /// Partition reboot: every source off and masked, every queue disabled, every
    /// presenter reset (CPPR 0). LSI line levels are kept.
    pub fn reset(&mut self) {
        self.int_reset();
        for p in &mut self.presenters {
            *p = Presenter::RESET;
        }
    }

    /// H_INT_RESET's effect (see the module docs).
    fn int_reset(&mut self) {
        for s in &mut self.sources {
            s.pq = PQ_OFF;
            s.eas = Eas::RESET;
        }
        for p in &mut self.presenters {
            p.queues = [Queue::DISABLED; NR_GUEST_PRIORITIES];
            p.ipb = 0;
            p.nsr = 0;
            p.update();
        }
    }

    /// Routes one event from source `idx` (whose P was just set): writes the queue
    /// entry and notifies the presenter.
    fn route<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, idx: usize) -> Option<Kick> {
        let eas = self.sources.get(idx)?.eas;
        if eas.masked {
            return None;
        }
        let p = self.presenters.get_mut(eas.target as usize)?;
        let q = p.queues.get_mut(usize::from(eas.priority))?;
        let entries = q.entries();
        if entries == 0 {
            return None;
        }
        let gpa = q.qpage.checked_add(u64::from(q.index) * 4)?;
        let entry = (u32::from(q.generation & 1) << 31) | (eas.eisn & EISN_MASK);
        if !mem.write_be32(gpa, entry) {
            return None;
        }
        q.index = q.index.wrapping_add(1);
        if q.index >= entries {
            q.index = 0;
            q.generation ^= 1;
        }
        p.ipb |= priority_to_ipb(eas.priority);
        p.update();
        p.pending().then_some(Kick { vcpu: eas.target })
    }

    fn trigger_index<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, idx: usize) -> Option<Kick> {
        let fwd = self.sources.get_mut(idx)?.trigger();
        if fwd {
            self.route(mem, idx)
        } else {
            None
        }
    }

    /// An event from a source: an IPI trigger-page store, or a device (e.g. vty
    /// input). Returns the vCPU to kick, if any. Unknown LISNs are ignored.
    pub fn trigger<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, lisn: u32) -> Option<Kick> {
        let idx = self.source_index(u64::from(lisn))?;
        self.trigger_index(mem, idx)
    }

    /// Sets the line level of an LSI; a rising level with PQ `00` fires.
    pub fn set_lsi_level<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        lisn: u32,
        asserted: bool,
    ) -> Result<Option<Kick>, XiveError> {
        let idx = self
            .source_index(u64::from(lisn))
            .ok_or(XiveError::NoSuchSource)?;
        let src = self.sources.get_mut(idx).ok_or(XiveError::NoSuchSource)?;
        if !src.lsi {
            return Err(XiveError::NotLsi);
        }
        src.asserted = asserted;
        if src.resample() {
            return Ok(self.route(mem, idx));
        }
        Ok(None)
    }

    /// A load from a source's ESB page at `offset` (< 64K) within it. Returns the
    /// value and the vCPU to kick (an EOI may forward an event).
    pub fn esb_load<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        lisn: u32,
        page: EsbPage,
        offset: u64,
    ) -> Result<(u64, Option<Kick>), XiveError> {
        let idx = self
            .source_index(u64::from(lisn))
            .ok_or(XiveError::NoSuchSource)?;
        if offset >= ESB_PAGE_SIZE {
            return Err(XiveError::BadAccess);
        }
        if page == EsbPage::Trigger {
            return Err(XiveError::EsbTriggerLoad);
        }
        let src = self.sources.get_mut(idx).ok_or(XiveError::NoSuchSource)?;
        let op = offset & 0xfff;
        let (value, fwd) = match op {
            0x000..=0x7ff => {
                let fwd = src.eoi();
                (u64::from(fwd), fwd)
            }
            0x800..=0xbff => (u64::from(src.pq), false),
            _ => {
                let (old, fwd) = src.set_pq(((op >> 8) & 3) as u8);
                (u64::from(old), fwd)
            }
        };
        let kick = if fwd { self.route(mem, idx) } else { None };
        Ok((value, kick))
    }

    /// A store to a source's ESB page at `offset` (< 64K) within it.
    pub fn esb_store<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        lisn: u32,
        page: EsbPage,
        offset: u64,
        _value: u64,
    ) -> Result<Option<Kick>, XiveError> {
        let idx = self
            .source_index(u64::from(lisn))
            .ok_or(XiveError::NoSuchSource)?;
        if offset >= ESB_PAGE_SIZE {
            return Err(XiveError::BadAccess);
        }
        let src = self.sources.get_mut(idx).ok_or(XiveError::NoSuchSource)?;
        let fwd = match (page, offset & 0xfff) {
            (EsbPage::Trigger, _) | (EsbPage::Mgmt, 0x000..=0x3ff) => src.trigger(),
            (EsbPage::Mgmt, 0x400..=0x7ff) => src.eoi(),
            (EsbPage::Mgmt, 0x800..=0xbff) => return Err(XiveError::EsbUnsupported),
            (EsbPage::Mgmt, op) => src.set_pq(((op >> 8) & 3) as u8).1,
        };
        Ok(if fwd { self.route(mem, idx) } else { None })
    }

    /// The presenter a TIMA access by `vcpu` reaches, once the access is checked:
    /// an existing vCPU, a naturally aligned 1/2/4/8-byte access inside the page,
    /// and the OS page (the user page is not emulated). In that order of errors.
    fn tima_presenter(
        &mut self,
        vcpu: u32,
        page: TimaPage,
        offset: u64,
        size: u64,
    ) -> Result<&mut Presenter, XiveError> {
        let p = self
            .presenters
            .get_mut(vcpu as usize)
            .ok_or(XiveError::NoSuchVcpu)?;
        check_access(offset, size)?;
        if page == TimaPage::User {
            return Err(XiveError::TimaUserPage);
        }
        Ok(p)
    }

    /// A load of `size` bytes at `offset` in a TIMA page by `vcpu` (the TIMA shows
    /// the accessing thread's context).
    pub fn tima_load(
        &mut self,
        vcpu: u32,
        page: TimaPage,
        offset: u64,
        size: u64,
    ) -> Result<u64, XiveError> {
        let p = self.tima_presenter(vcpu, page, offset, size)?;
        let end = offset + size;
        if end <= TM_QW1_OS + 16 {
            // QW0 (user ring) reads as zeros, QW1 is the OS ring.
            let mut image = [0u8; 32];
            if let Some(qw1) = image.get_mut(16..32) {
                qw1.copy_from_slice(&p.qw1(vcpu));
            }
            let bytes = image
                .get(offset as usize..end as usize)
                .ok_or(XiveError::BadAccess)?;
            return Ok(bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)));
        }
        if offset == TM_SPC_ACK_OS_REG && size == 2 {
            return Ok(u64::from(p.ack()));
        }
        Err(XiveError::TimaUnsupported)
    }

    /// A store of `size` bytes at `offset` in a TIMA page by `vcpu`. Returns a kick
    /// of `vcpu` itself if it now has an interrupt pending.
    pub fn tima_store(
        &mut self,
        vcpu: u32,
        page: TimaPage,
        offset: u64,
        size: u64,
        value: u64,
    ) -> Result<Option<Kick>, XiveError> {
        let p = self.tima_presenter(vcpu, page, offset, size)?;
        match (offset, size) {
            (o, 1) if o == TM_QW1_OS + TM_CPPR => p.set_cppr(value as u8),
            (TM_SPC_SET_OS_PENDING, 1) => {
                p.ipb |= priority_to_ipb(value as u8);
                p.update();
            }
            _ => return Err(XiveError::TimaUnsupported),
        }
        Ok(p.pending().then_some(Kick { vcpu }))
    }

    /// A guest load of `size` bytes at `gpa` (HDSI emulation). On `Err` the guest
    /// reads all ones.
    pub fn mmio_load<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        vcpu: u32,
        gpa: u64,
        size: u64,
    ) -> Result<(u64, Option<Kick>), XiveError> {
        match self.classify(gpa).ok_or(XiveError::Unmapped)? {
            MmioTarget::TimaOs { offset } => {
                Ok((self.tima_load(vcpu, TimaPage::Os, offset, size)?, None))
            }
            MmioTarget::TimaUser { offset } => {
                Ok((self.tima_load(vcpu, TimaPage::User, offset, size)?, None))
            }
            MmioTarget::EsbTrigger { lisn, offset } => {
                check_access(offset, size)?;
                let (v, k) = self.esb_load(mem, lisn, EsbPage::Trigger, offset)?;
                Ok((truncate(v, size), k))
            }
            MmioTarget::EsbMgmt { lisn, offset } => {
                check_access(offset, size)?;
                let (v, k) = self.esb_load(mem, lisn, EsbPage::Mgmt, offset)?;
                Ok((truncate(v, size), k))
            }
        }
    }

    /// A guest store of `size` bytes at `gpa` (HDSI emulation). On `Err` nothing
    /// changed.
    pub fn mmio_store<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        vcpu: u32,
        gpa: u64,
        size: u64,
        value: u64,
    ) -> Result<Option<Kick>, XiveError> {
        match self.classify(gpa).ok_or(XiveError::Unmapped)? {
            MmioTarget::TimaOs { offset } => {
                self.tima_store(vcpu, TimaPage::Os, offset, size, value)
            }
            MmioTarget::TimaUser { offset } => {
                self.tima_store(vcpu, TimaPage::User, offset, size, value)
            }
            MmioTarget::EsbTrigger { lisn, offset } => {
                check_access(offset, size)?;
                self.esb_store(mem, lisn, EsbPage::Trigger, offset, value)
            }
            MmioTarget::EsbMgmt { lisn, offset } => {
                check_access(offset, size)?;
                self.esb_store(mem, lisn, EsbPage::Mgmt, offset, value)
            }
        }
    }

    fn target(&self, target: u64) -> Option<usize> {
        usize::try_from(target)
            .ok()
            .filter(|&t| t < self.presenters.len())
    }

    fn queue(&self, target: usize, prio: u8) -> Option<&Queue> {
        self.presenters.get(target)?.queues.get(usize::from(prio))
    }

    // ---- hcalls (r4.. in, r4..r7 out) ----

    /// H_INT_GET_SOURCE_INFO(flags, lisn) -> (flags, EOI page, trigger page, shift).
    pub fn h_int_get_source_info(&self, flags: u64, lisn: u64) -> HcallResult {
        if flags != 0 {
            return Err(HcallError::Parameter);
        }
        let idx = self.source_index(lisn).ok_or(HcallError::P2)?;
        let src = self.sources.get(idx).ok_or(HcallError::P2)?;
        if src.lsi {
            return Ok([
                SRC_INFO_LSI | SRC_INFO_H_INT_ESB,
                u64::MAX,
                u64::MAX,
                u64::from(ESB_SHIFT),
            ]);
        }
        let (trig, mgmt) = Self::esb_pages(src.lisn);
        Ok([0, mgmt, trig, u64::from(ESB_SHIFT)])
    }

    /// H_INT_SET_SOURCE_CONFIG(flags, lisn, target, priority, eisn).
    pub fn h_int_set_source_config(
        &mut self,
        flags: u64,
        lisn: u64,
        target: u64,
        priority: u64,
        eisn: u64,
    ) -> HcallResult {
        if flags & !(SRC_CFG_MASK | SRC_CFG_SET_EISN) != 0 {
            return Err(HcallError::Parameter);
        }
        let idx = self.source_index(lisn).ok_or(HcallError::P2)?;
        let new = if priority == u64::from(PRIORITY_MASKED) {
            Eas::RESET
        } else {
            let prio = guest_priority(priority).ok_or(HcallError::P4)?;
            let target = self.target(target).ok_or(HcallError::P3)?;
            let old = self.sources.get(idx).ok_or(HcallError::P2)?.eas;
            Eas {
                masked: flags & SRC_CFG_MASK != 0,
                target: target as u32,
                priority: prio,
                eisn: if flags & SRC_CFG_SET_EISN != 0 {
                    (eisn & u64::from(EISN_MASK)) as u32
                } else {
                    old.eisn
                },
            }
        };
        self.sources.get_mut(idx).ok_or(HcallError::P2)?.eas = new;
        Ok([0; 4])
    }

    /// H_INT_GET_SOURCE_CONFIG(flags, lisn) -> (target, priority or 0xff, eisn).
    pub fn h_int_get_source_config(&self, flags: u64, lisn: u64) -> HcallResult {
        if flags != 0 {
            return Err(HcallError::Parameter);
        }
        let idx = self.source_index(lisn).ok_or(HcallError::P2)?;
        let eas = self.sources.get(idx).ok_or(HcallError::P2)?.eas;
        let prio = if eas.masked {
            PRIORITY_MASKED
        } else {
            eas.priority
        };
        Ok([
            u64::from(eas.target),
            u64::from(prio),
            u64::from(eas.eisn),
            0,
        ])
    }

    /// H_INT_GET_QUEUE_INFO(flags, target, priority) -> (notification page 0, 16).
    pub fn h_int_get_queue_info(&self, flags: u64, target: u64, priority: u64) -> HcallResult {
        if flags != 0 {
            return Err(HcallError::Parameter);
        }
        guest_priority(priority).ok_or(HcallError::P3)?;
        self.target(target).ok_or(HcallError::P2)?;
        Ok([0, MAX_EQ_SHIFT, 0, 0])
    }

    /// H_INT_SET_QUEUE_CONFIG(flags, target, priority, qpage, qsize); qsize 0
    /// disables the queue.
    pub fn h_int_set_queue_config<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        flags: u64,
        target: u64,
        priority: u64,
        qpage: u64,
        qsize: u64,
    ) -> HcallResult {
        if flags & !EQ_ALWAYS_NOTIFY != 0 {
            return Err(HcallError::Parameter);
        }
        let prio = guest_priority(priority).ok_or(HcallError::P3)?;
        let target = self.target(target).ok_or(HcallError::P2)?;
        let new = match qsize {
            0 => Queue::DISABLED,
            12 | 16 => {
                let len = 1u64 << qsize;
                if qpage & (len - 1) != 0 || !mem.contains(qpage, len) {
                    return Err(HcallError::P4);
                }
                Queue {
                    qpage,
                    qshift: qsize as u8,
                    index: 0,
                    generation: 1,
                    always_notify: flags & EQ_ALWAYS_NOTIFY != 0,
                }
            }
            _ => return Err(HcallError::P5),
        };
        let q = self
            .presenters
            .get_mut(target)
            .and_then(|p| p.queues.get_mut(usize::from(prio)))
            .ok_or(HcallError::P2)?;
        *q = new;
        Ok([0; 4])
    }

    /// H_INT_GET_QUEUE_CONFIG(flags, target, priority) -> (flags, qpage, qsize,
    /// index if debug).
    pub fn h_int_get_queue_config(&self, flags: u64, target: u64, priority: u64) -> HcallResult {
        if flags & !EQ_DEBUG != 0 {
            return Err(HcallError::Parameter);
        }
        let prio = guest_priority(priority).ok_or(HcallError::P3)?;
        let target = self.target(target).ok_or(HcallError::P2)?;
        let q = self.queue(target, prio).ok_or(HcallError::P2)?;
        let mut out_flags = if q.always_notify { EQ_ALWAYS_NOTIFY } else { 0 };
        let mut index = 0;
        if flags & EQ_DEBUG != 0 {
            if q.generation & 1 != 0 {
                out_flags |= EQ_GENERATION;
            }
            index = u64::from(q.index);
        }
        Ok([out_flags, q.qpage, u64::from(q.qshift), index])
    }

    /// H_INT_SET_OS_REPORTING_LINE: not supported (QEMU neither).
    pub fn h_int_set_os_reporting_line(&self, _flags: u64, _line: u64) -> HcallResult {
        Err(HcallError::Function)
    }

    /// H_INT_GET_OS_REPORTING_LINE: not supported (QEMU neither).
    pub fn h_int_get_os_reporting_line(
        &self,
        _flags: u64,
        _target: u64,
        _line: u64,
    ) -> HcallResult {
        Err(HcallError::Function)
    }

    /// H_INT_ESB(flags, lisn, offset, data): a management-page load (r4 = value)
    /// or store (flags 0x1; r4 = -1). Undefined offsets give -1. Unlike the other
    /// hcalls it can forward an event, hence the kick.
    pub fn h_int_esb<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        flags: u64,
        lisn: u64,
        offset: u64,
        data: u64,
    ) -> Result<([u64; 4], Option<Kick>), HcallError> {
        if flags & !ESB_HCALL_STORE != 0 {
            return Err(HcallError::Parameter);
        }
        self.source_index(lisn).ok_or(HcallError::P2)?;
        let lisn = u32::try_from(lisn).map_err(|_| HcallError::P2)?;
        if offset >= ESB_PAGE_SIZE {
            return Err(HcallError::P3);
        }
        if flags & ESB_HCALL_STORE != 0 {
            let kick = self
                .esb_store(mem, lisn, EsbPage::Mgmt, offset, data)
                .unwrap_or(None);
            Ok(([u64::MAX, 0, 0, 0], kick))
        } else {
            let (v, kick) = self
                .esb_load(mem, lisn, EsbPage::Mgmt, offset)
                .unwrap_or((u64::MAX, None));
            Ok(([v, 0, 0, 0], kick))
        }
    }

    /// H_INT_SYNC(flags, lisn): events are routed synchronously, nothing in flight.
    pub fn h_int_sync(&self, flags: u64, lisn: u64) -> HcallResult {
        if flags != 0 {
            return Err(HcallError::Parameter);
        }
        self.source_index(lisn).ok_or(HcallError::P2)?;
        Ok([0; 4])
    }

    /// H_INT_RESET(flags).
    pub fn h_int_reset(&mut self, flags: u64) -> HcallResult {
        if flags != 0 {
            return Err(HcallError::Parameter);
        }
        self.int_reset();
        Ok([0; 4])
    }

    /// Dispatches an `H_INT_*` hcall; `args` are r4 onwards (missing ones read 0).
    /// None if `opcode` is not one of them.
    pub fn hcall<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        opcode: u64,
        args: &[u64],
    ) -> Option<(HcallResult, Option<Kick>)> {
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        let r = match opcode {
            hcall::H_INT_GET_SOURCE_INFO => self.h_int_get_source_info(a(0), a(1)),
            hcall::H_INT_SET_SOURCE_CONFIG => {
                self.h_int_set_source_config(a(0), a(1), a(2), a(3), a(4))
            }
            hcall::H_INT_GET_SOURCE_CONFIG => self.h_int_get_source_config(a(0), a(1)),
            hcall::H_INT_GET_QUEUE_INFO => self.h_int_get_queue_info(a(0), a(1), a(2)),
            hcall::H_INT_SET_QUEUE_CONFIG => {
                self.h_int_set_queue_config(mem, a(0), a(1), a(2), a(3), a(4))
            }
            hcall::H_INT_GET_QUEUE_CONFIG => self.h_int_get_queue_config(a(0), a(1), a(2)),
            hcall::H_INT_SET_OS_REPORTING_LINE => self.h_int_set_os_reporting_line(a(0), a(1)),
            hcall::H_INT_GET_OS_REPORTING_LINE => {
                self.h_int_get_os_reporting_line(a(0), a(1), a(2))
            }
            hcall::H_INT_ESB => {
                return Some(match self.h_int_esb(mem, a(0), a(1), a(2), a(3)) {
                    Ok((r, k)) => (Ok(r), k),
                    Err(e) => (Err(e), None),
                })
            }
            hcall::H_INT_SYNC => self.h_int_sync(a(0), a(1)),
            hcall::H_INT_RESET => self.h_int_reset(a(0)),
            _ => return None,
        };
        Some((r, None))
    }
}

#[cfg(test)]
mod tests;
