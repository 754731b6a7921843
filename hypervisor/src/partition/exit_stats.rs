//! Per-vCPU exit profile: how many full exits of each kind a vCPU took and the
//! timebase ticks the hypervisor spent handling them (exit to the next entry's
//! decision), printed when its partition stops (`PAPRIKA lpar-exits:`), to see
//! where an SMP Linux boot spends its time (docs/benchmarks.md).
//!
//! Only the vCPU's own hardware thread records (relaxed load and store, no
//! read-modify-write); readers see a recent value. The hcall fast path
//! (H_PROD, H_PUT_TERM_CHAR served from the exit vector) does not count.

use alloc::string::String;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::papr::hcall as h;

/// The kinds, in the order they are printed. `hdsi` is a first touch of
/// partition memory (demand mapping, HDSI or HISI) or any other storage exit;
/// `mmio_tima` and `mmio_esb` are emulated accesses to the XIVE thread
/// interrupt management area and to event-source pages (or MSI-X table pages),
/// which [`refine_storage`] tells apart.
pub const KINDS: [&str; 15] = [
    "cede",
    "prod",
    "ipi",
    "rpt_inval",
    "xive_hcall",
    "term",
    "hcall_other",
    "hdec",
    "doorbell",
    "hdsi",
    "mmio_tima",
    "mmio_esb",
    "emul",
    "host_irq",
    "other",
];

/// The kind of a full exit at `vector` with r3 = `r3` (the hcall number for
/// `sc 1`).
pub fn kind(vector: u64, r3: u64) -> usize {
    match vector {
        0xc00 => match r3 {
            h::H_CEDE => 0,
            h::H_PROD => 1,
            h::H_IPI | h::H_EOI | h::H_CPPR | h::H_XIRR => 2,
            h::H_RPT_INVALIDATE => 3,
            0x3a8..=0x3d0 => 4,
            h::H_PUT_TERM_CHAR | h::H_GET_TERM_CHAR => 5,
            _ => 6,
        },
        0x980 => 7,
        0xe80 => 8,
        0xe00 | 0xe20 => HDSI,
        0xe40 => 12,
        0xea0 => 13,
        _ => 14,
    }
}

/// Index of `hdsi` in [`KINDS`].
pub const HDSI: usize = 9;
/// Index of `mmio_tima` in [`KINDS`].
pub const MMIO_TIMA: usize = 10;
/// Index of `mmio_esb` in [`KINDS`].
pub const MMIO_ESB: usize = 11;

/// What an emulated-device storage exit touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Tima,
    /// An event-source page or anything else emulated (MSI-X table pages).
    Other,
}

impl Device {
    /// The device of a XIVE page `partition::mmio` emulated an access to.
    pub fn of_xive(t: &crate::xive::MmioTarget) -> Device {
        use crate::xive::MmioTarget as T;
        match t {
            T::TimaOs { .. } | T::TimaUser { .. } => Device::Tima,
            T::EsbTrigger { .. } | T::EsbMgmt { .. } => Device::Other,
        }
    }
}

/// Refines `kind` for an HDSI: `device` says what emulated device the exit's
/// handling touched (`partition::mmio::Target::device`; `None` for partition
/// memory or nothing emulated).
pub fn refine_storage(kind: usize, device: Option<Device>) -> usize {
    match (kind, device) {
        (HDSI, Some(Device::Tima)) => MMIO_TIMA,
        (HDSI, Some(Device::Other)) => MMIO_ESB,
        (k, _) => k,
    }
}

#[derive(Debug)]
pub struct ExitStats {
    count: [AtomicU64; KINDS.len()],
    ticks: [AtomicU64; KINDS.len()],
}

impl Default for ExitStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitStats {
    pub const fn new() -> Self {
        ExitStats {
            count: [const { AtomicU64::new(0) }; KINDS.len()],
            ticks: [const { AtomicU64::new(0) }; KINDS.len()],
        }
    }

    /// One exit of `kind` that took `ticks`; only the vCPU's thread calls this.
    #[inline]
    pub fn record(&self, kind: usize, ticks: u64) {
        if let (Some(c), Some(t)) = (self.count.get(kind), self.ticks.get(kind)) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            t.store(
                t.load(Ordering::Relaxed).wrapping_add(ticks),
                Ordering::Relaxed,
            );
        }
    }

    /// `total=<n> <kind>=<count>/<us>us ...` for the kinds that occurred, with
    /// `ticks_per_us` to convert.
    pub fn line(&self, ticks_per_us: u64) -> String {
        let mut total = 0u64;
        let mut parts = String::new();
        for (i, name) in KINDS.iter().enumerate() {
            let n = self.count[i].load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            total = total.wrapping_add(n);
            let us = self.ticks[i].load(Ordering::Relaxed) / ticks_per_us.max(1);
            let _ = write!(parts, " {name}={n}/{us}us");
        }
        alloc::format!("total={total}{parts}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xive_pages_name_their_device() {
        use crate::xive::MmioTarget as T;
        let of = |t| Device::of_xive(&t);
        assert_eq!(of(T::TimaOs { offset: 0 }), Device::Tima);
        assert_eq!(of(T::TimaUser { offset: 0x10 }), Device::Tima);
        let trigger = T::EsbTrigger { lisn: 3, offset: 0 };
        assert_eq!(of(trigger), Device::Other);
        let mgmt = T::EsbMgmt {
            lisn: 3,
            offset: 0xc00,
        };
        assert_eq!(of(mgmt), Device::Other);
        assert_eq!(KINDS[refine_storage(HDSI, Some(of(trigger)))], "mmio_esb");
    }

    #[test]
    fn kinds_and_line() {
        assert_eq!(KINDS[kind(0xc00, h::H_CEDE)], "cede");
        assert_eq!(KINDS[kind(0xc00, h::H_RPT_INVALIDATE)], "rpt_inval");
        assert_eq!(KINDS[kind(0xc00, h::H_INT_ESB)], "xive_hcall");
        assert_eq!(KINDS[kind(0xc00, 0x1234)], "hcall_other");
        assert_eq!(KINDS[kind(0x980, 0)], "hdec");
        assert_eq!(KINDS[kind(0xe80, 0)], "doorbell");
        assert_eq!(KINDS[kind(0xe00, 0)], "hdsi");
        assert_eq!(KINDS[kind(0xe40, 0)], "emul");
        let tima = refine_storage(kind(0xe00, 0), Some(Device::Tima));
        assert_eq!(KINDS[tima], "mmio_tima");
        let esb = refine_storage(kind(0xe00, 0), Some(Device::Other));
        assert_eq!(KINDS[esb], "mmio_esb");
        assert_eq!(KINDS[refine_storage(kind(0xe00, 0), None)], "hdsi");
        assert_eq!(
            KINDS[refine_storage(kind(0xc00, h::H_CEDE), Some(Device::Tima))],
            "cede"
        );
        assert_eq!(KINDS[kind(0x500, 0)], "other");
        assert_eq!(KINDS[kind(0xea0, 0)], "host_irq");
        let s = ExitStats::new();
        assert_eq!(s.line(512), "total=0");
        s.record(kind(0xc00, h::H_CEDE), 5120);
        s.record(kind(0xc00, h::H_CEDE), 512);
        s.record(kind(0x980, 0), 100);
        s.record(99, 1); // out of range: ignored
        assert_eq!(s.line(512), "total=3 cede=2/11us hdec=1/0us");
    }
}
