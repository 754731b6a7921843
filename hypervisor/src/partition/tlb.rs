//! Which threads an invalidation of a partition's process-scoped translations
//! (H_RPT_INVALIDATE) must reach, and how: portable, so the host tests the
//! protocol.
//!
//! Paprika does not offer the guest GTSE (docs/partitions.md, "TLB
//! invalidation"): a radix Linux then invalidates through H_RPT_INVALIDATE,
//! one hcall where it would have issued a broadcast `tlbie` (three of them on
//! POWER9, whose errata workarounds Linux applies to every broadcast). The
//! hypervisor knows where the partition's vCPUs are, and a broadcast is only
//! needed while another of them runs guest code:
//!
//! - **Another vCPU is in the guest**: a broadcast `tlbie` for the partition's
//!   LPID, which every thread takes at once.
//! - **No other vCPU is in the guest** (they are ceded, handling an exit, or
//!   not started, as during Linux's early boot): a `tlbiel` on this thread, and
//!   every other vCPU of the partition is marked to invalidate its own
//!   thread's translations of the LPID before it next enters the guest.
//!
//! Under QEMU's TCG each broadcast `tlbie` stops every emulated thread, idle
//! ones included (an "exclusive" section), so the local case is where the
//! 4-vCPU boot's time went (docs/benchmarks.md). On hardware the local case
//! saves the broadcast's fabric traffic and `tlbsync` wait.
//!
//! The protocol is a Dekker-style handshake over two masks with one bit per
//! vCPU (index below 64, `manifest::MAX_VCPUS`):
//!
//! - **entry**: set own bit in `in_guest`, full barrier, then read and clear
//!   own bit in `pending`; if it was set, invalidate this thread's process-
//!   scoped translations of the LPID before entering.
//! - **exit**: clear own bit in `in_guest`.
//! - **invalidation**: set every other vCPU's bit in `pending`, full barrier,
//!   then read `in_guest`: any other bit set means broadcast, else local.
//!
//! Both sides write, fence, then read the other's mask (sequentially
//! consistent read-modify-writes and loads: `sync` on POWER), so at least one
//! sees the other's write: either the invalidator broadcasts (and reaches the
//! vCPU in the guest), or the entering vCPU sees its pending bit and flushes
//! after the guest's page-table update (which precedes the hcall). A vCPU
//! that sees its bit without needing it (the invalidator broadcast anyway)
//! flushes once more than needed, never less. The hcall fast path stays in
//! the guest as far as this is concerned (its bit stays set): it never
//! touches translations.

use core::sync::atomic::{AtomicU64, Ordering};

/// Whether an invalidation must be broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// `tlbiel` on this thread; the others flush before their next entry.
    Local,
    /// Another vCPU of the partition is in the guest: `tlbie`.
    Broadcast,
}

/// Per partition: which vCPUs are in the guest and which must flush before
/// their next entry, plus counters for the exit profile.
#[derive(Debug, Default)]
pub struct Shootdown {
    in_guest: AtomicU64,
    pending: AtomicU64,
    /// Invalidations served by `tlbiel` on the calling thread.
    pub local: AtomicU64,
    /// Invalidations served by a broadcast `tlbie`.
    pub broadcast: AtomicU64,
    /// Entries that flushed their thread's translations first.
    pub entry_flushes: AtomicU64,
}

fn bit(vcpu: usize) -> u64 {
    debug_assert!(vcpu < 64);
    1u64 << (vcpu & 63)
}

impl Shootdown {
    pub const fn new() -> Self {
        Self {
            in_guest: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            local: AtomicU64::new(0),
            broadcast: AtomicU64::new(0),
            entry_flushes: AtomicU64::new(0),
        }
    }

    /// vCPU `vcpu` of a partition of `vcpus` is about to enter the guest.
    /// `true`: it must first invalidate its thread's process-scoped
    /// translations of the LPID. A partition of one vCPU has no one to
    /// coordinate with (nothing reads or sets the masks): no atomic at all on
    /// its entries and exits.
    #[inline(always)]
    pub fn enter(&self, vcpu: usize, vcpus: usize) -> bool {
        vcpus > 1 && self.enter_shared(vcpu)
    }

    /// [`Self::enter`] of a partition with more than one vCPU (out of line: the
    /// full exit path of a one-vCPU partition pays one compare).
    #[inline(never)]
    fn enter_shared(&self, vcpu: usize) -> bool {
        let b = bit(vcpu);
        self.in_guest.fetch_or(b, Ordering::SeqCst);
        if self.pending.load(Ordering::SeqCst) & b == 0 {
            return false;
        }
        self.pending.fetch_and(!b, Ordering::SeqCst);
        self.entry_flushes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// vCPU `vcpu` of a partition of `vcpus` left the guest (a full exit).
    #[inline(always)]
    pub fn exit(&self, vcpu: usize, vcpus: usize) {
        if vcpus <= 1 {
            return;
        }
        self.in_guest.fetch_and(!bit(vcpu), Ordering::Release);
    }

    /// vCPU `vcpu` (not in the guest: it is serving the hcall) invalidates
    /// translations of the partition, whose vCPUs are `0..vcpus`: how far the
    /// invalidation must reach. The others are marked to flush on entry
    /// either way.
    pub fn invalidate(&self, vcpu: usize, vcpus: usize) -> Reach {
        let all = if vcpus >= 64 {
            u64::MAX
        } else {
            (1u64 << vcpus) - 1
        };
        let others = all & !bit(vcpu);
        if others == 0 {
            self.local.fetch_add(1, Ordering::Relaxed);
            return Reach::Local;
        }
        self.pending.fetch_or(others, Ordering::SeqCst);
        if self.in_guest.load(Ordering::SeqCst) & others != 0 {
            self.broadcast.fetch_add(1, Ordering::Relaxed);
            Reach::Broadcast
        } else {
            self.local.fetch_add(1, Ordering::Relaxed);
            Reach::Local
        }
    }
}

/// The POWER9 broadcast-`tlbie` errata workarounds a processor with this PVR
/// needs (as Linux's `update_tlbie_feature_flag` decides for itself):
/// (ERAT: every POWER9, an extra `tlbie` of LPID 0; store ordering: Nimbus
/// before DD2.3 and Cumulus before DD1.3, the same `tlbie` repeated). On any
/// other processor neither. Local `tlbiel` needs neither.
pub fn p9_tlbie_fixups(pvr: u32) -> (bool, bool) {
    if pvr >> 16 != 0x004e {
        return (false, false);
    }
    let stq = if pvr & 0xe000 == 0 {
        pvr & 0xfff < 0x203
    } else if pvr & 0xc000 == 0 {
        pvr & 0xfff < 0x103
    } else {
        true
    };
    (true, stq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn alone_is_local_and_never_pending() {
        let s = Shootdown::new();
        assert!(!s.enter(0, 1));
        s.exit(0, 1);
        assert_eq!(s.invalidate(0, 1), Reach::Local);
        assert!(!s.enter(0, 1));
    }

    #[test]
    fn idle_others_flush_on_entry_once() {
        let s = Shootdown::new();
        // vCPU 0 serves an invalidation while 1-3 are ceded or not started.
        assert_eq!(s.invalidate(0, 4), Reach::Local);
        // The caller itself is not marked; each other flushes on its next
        // entry, once.
        assert!(!s.enter(0, 4));
        for v in 1..4 {
            assert!(s.enter(v, 4));
            assert!(!s.enter(v, 4));
        }
        assert_eq!(s.entry_flushes.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn another_in_guest_broadcasts() {
        let s = Shootdown::new();
        assert!(!s.enter(2, 4));
        assert_eq!(s.invalidate(0, 4), Reach::Broadcast);
        // Leaving and coming back: flushed once more than needed, never less.
        s.exit(2, 4);
        assert!(s.enter(2, 4));
        s.exit(2, 4);
        assert_eq!(s.invalidate(0, 4), Reach::Local);
        // Its own bit in the guest does not make the caller broadcast.
        assert!(!s.enter(0, 4));
        assert_eq!(s.invalidate(0, 1), Reach::Local);
        assert_eq!(s.broadcast.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn sixty_four_vcpus() {
        let s = Shootdown::new();
        assert!(!s.enter(63, 64));
        assert_eq!(s.invalidate(0, 64), Reach::Broadcast);
        s.exit(63, 64);
        assert!(s.enter(63, 64));
    }

    /// Two threads race an entry against an invalidation many times: the
    /// entering vCPU either flushes or the invalidation broadcasts (never
    /// neither), whatever the interleaving.
    #[test]
    fn entry_and_invalidation_race_never_miss() {
        for _ in 0..2000 {
            let s = Arc::new(Shootdown::new());
            let go = Arc::new(std::sync::Barrier::new(2));
            let (s2, go2) = (s.clone(), go.clone());
            let enterer = std::thread::spawn(move || {
                go2.wait();
                s2.enter(1, 2)
            });
            go.wait();
            let reach = s.invalidate(0, 2);
            let flushed = enterer.join().unwrap();
            assert!(flushed || reach == Reach::Broadcast);
        }
    }

    #[test]
    fn power9_errata_by_pvr() {
        // QEMU's POWER9 (Nimbus DD2.2): both workarounds.
        assert_eq!(p9_tlbie_fixups(0x004e_1202), (true, true));
        // Nimbus DD2.3: ERAT only; Cumulus DD1.2 / DD1.3.
        assert_eq!(p9_tlbie_fixups(0x004e_1203), (true, false));
        assert_eq!(p9_tlbie_fixups(0x004e_2102), (true, true));
        assert_eq!(p9_tlbie_fixups(0x004e_2103), (true, false));
        // Power10 (and anything else): none.
        assert_eq!(p9_tlbie_fixups(0x0080_0200), (false, false));
    }
}
