//! A split virtqueue (virtio 1.x, 2.6) that only sends: the transmit queue of the
//! virtio console.
//!
//! The rings are plain memory the device reads and writes by DMA; every field is
//! an atomic so no `unsafe` is needed to share it, and the orderings below are the
//! barriers the spec asks for (descriptor before the available index, available
//! index before the notify, used index before the used element). Each descriptor
//! owns one fixed buffer slot, so a posted buffer never moves.

use alloc::boxed::Box;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// Descriptors in the queue (a power of two, as split queues require).
pub const QUEUE_SIZE: usize = 8;
/// Bytes per buffer slot.
pub const SLOT: usize = 16 << 10;

#[repr(C)]
#[derive(Default)]
pub struct Desc {
    pub addr: AtomicU64,
    pub len: AtomicU32,
    pub flags: AtomicU16,
    pub next: AtomicU16,
}

#[repr(C)]
#[derive(Default)]
pub struct Avail {
    pub flags: AtomicU16,
    pub idx: AtomicU16,
    pub ring: [AtomicU16; QUEUE_SIZE],
    pub used_event: AtomicU16,
}

#[repr(C)]
#[derive(Default)]
pub struct UsedElem {
    pub id: AtomicU32,
    pub len: AtomicU32,
}

#[repr(C)]
#[derive(Default)]
pub struct Used {
    pub flags: AtomicU16,
    pub idx: AtomicU16,
    pub ring: [UsedElem; QUEUE_SIZE],
    pub avail_event: AtomicU16,
}

/// The three rings, in one page: descriptors (16-byte aligned), the driver area
/// (2-byte) and the device area (4-byte), all within 4 KiB.
#[repr(C, align(4096))]
#[derive(Default)]
pub struct Rings {
    pub desc: [Desc; QUEUE_SIZE],
    pub avail: Avail,
    pub used: Used,
}

static_assertions::const_assert!(core::mem::size_of::<Rings>() <= 4096);
static_assertions::const_assert_eq!(core::mem::offset_of!(Rings, desc) % 16, 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(Rings, used) % 4, 0);
static_assertions::const_assert!(QUEUE_SIZE.is_power_of_two() && QUEUE_SIZE <= 32);

/// Bus addresses of the three areas, for the transport's queue registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingAddrs {
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

/// Physical address of a hypervisor address (the linear map on the machine,
/// identity in tests).
pub type ToPhys = fn(usize) -> u64;

#[repr(C, align(4096))]
struct Slot([u8; SLOT]);

pub struct TxQueue {
    rings: Box<Rings>,
    slots: Box<[Slot]>,
    /// Negotiated queue size (a power of two, at most `QUEUE_SIZE`).
    size: u16,
    /// Bit `i` set: descriptor `i` (and its slot) is free.
    free: u32,
    next_avail: u16,
    last_used: u16,
    to_phys: ToPhys,
    /// Added to physical addresses to make bus addresses: 0 when the device
    /// reaches memory directly (no VIRTIO_F_ACCESS_PLATFORM), the PHB's
    /// untranslated DMA window otherwise.
    bus_offset: u64,
    /// Used elements naming a descriptor that was not posted (a broken device).
    pub bogus_used: u32,
}

impl TxQueue {
    pub fn new(size: u16, to_phys: ToPhys, bus_offset: u64) -> Self {
        let size = size.clamp(1, QUEUE_SIZE as u16);
        debug_assert!(size.is_power_of_two());
        let slots = (0..size).map(|_| Slot([0; SLOT])).collect();
        TxQueue {
            rings: Box::default(),
            slots,
            size,
            free: if size == 32 { !0 } else { (1u32 << size) - 1 },
            next_avail: 0,
            last_used: 0,
            to_phys,
            bus_offset,
            bogus_used: 0,
        }
    }

    fn to_bus(&self, a: usize) -> u64 {
        (self.to_phys)(a) | self.bus_offset
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn addrs(&self) -> RingAddrs {
        let base = &*self.rings as *const Rings as usize;
        RingAddrs {
            desc: self.to_bus(base + core::mem::offset_of!(Rings, desc)),
            driver: self.to_bus(base + core::mem::offset_of!(Rings, avail)),
            device: self.to_bus(base + core::mem::offset_of!(Rings, used)),
        }
    }

    /// The rings, for a test's fake device.
    #[cfg(test)]
    pub fn rings(&self) -> &Rings {
        &self.rings
    }

    /// Buffers posted and not yet returned.
    pub fn in_flight(&self) -> u16 {
        self.next_avail.wrapping_sub(self.last_used)
    }

    /// Takes back what the device has finished with; returns how many.
    pub fn reclaim(&mut self) -> usize {
        let used = u16::from_le(self.rings.used.idx.load(Ordering::Acquire));
        let mut n = 0;
        // A device cannot return more than was posted; stop at that.
        while self.last_used != used && self.in_flight() > 0 {
            let e = &self.rings.used.ring[usize::from(self.last_used % self.size)];
            let id = u32::from_le(e.id.load(Ordering::Relaxed));
            if id < u32::from(self.size) && self.free & (1 << id) == 0 {
                self.free |= 1 << id;
            } else {
                self.bogus_used += 1;
            }
            self.last_used = self.last_used.wrapping_add(1);
            n += 1;
        }
        n
    }

    /// Copies up to one slot of `data` into a free buffer and makes it available
    /// to the device; returns the bytes taken (0: every buffer is in flight).
    /// The caller notifies the device afterwards.
    pub fn push(&mut self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        if self.free == 0 {
            self.reclaim();
        }
        if self.free == 0 {
            return 0;
        }
        let id = self.free.trailing_zeros() as usize;
        self.free &= !(1 << id);
        let n = data.len().min(SLOT);
        self.slots[id].0[..n].copy_from_slice(&data[..n]);
        let slot = &self.slots[id].0;
        let d = &self.rings.desc[id];
        let addr = self.to_bus(slot.as_ptr() as usize);
        d.addr.store(addr.to_le(), Ordering::Relaxed);
        d.len.store((n as u32).to_le(), Ordering::Relaxed);
        d.flags.store(0, Ordering::Relaxed);
        d.next.store(0, Ordering::Relaxed);
        self.rings.avail.ring[usize::from(self.next_avail % self.size)]
            .store((id as u16).to_le(), Ordering::Relaxed);
        self.next_avail = self.next_avail.wrapping_add(1);
        // The descriptor and ring entry are visible before the index that
        // publishes them.
        self.rings
            .avail
            .idx
            .store(self.next_avail.to_le(), Ordering::Release);
        // And the index before the (caching-inhibited) notify store: on POWER only
        // a full `sync` orders cacheable stores before I/O stores.
        fence(Ordering::SeqCst);
        n
    }
}

#[cfg(test)]
pub mod fake {
    //! A device that consumes what a [`TxQueue`] posts, as QEMU's would.
    use super::*;

    #[derive(Default)]
    pub struct FakeTxDevice {
        pub last_avail: u16,
        pub used_idx: u16,
        pub received: std::vec::Vec<u8>,
    }

    impl FakeTxDevice {
        /// Consumes up to `max` available buffers (bus address = pointer here),
        /// optionally completing them in reverse order.
        pub fn consume(&mut self, q: &TxQueue, max: usize, reverse: bool) -> usize {
            let r = q.rings();
            let size = q.size();
            let avail = u16::from_le(r.avail.idx.load(Ordering::Acquire));
            let mut ids = std::vec::Vec::new();
            while self.last_avail != avail && ids.len() < max {
                let id = u16::from_le(
                    r.avail.ring[usize::from(self.last_avail % size)].load(Ordering::Relaxed),
                );
                let d = &r.desc[usize::from(id)];
                let addr = u64::from_le(d.addr.load(Ordering::Relaxed)) as usize;
                let len = u32::from_le(d.len.load(Ordering::Relaxed)) as usize;
                // SAFETY: test only: the queue's bus addresses are its own
                // pointers (identity `to_bus`) into slots it keeps alive.
                let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
                self.received.extend_from_slice(bytes);
                ids.push(id);
                self.last_avail = self.last_avail.wrapping_add(1);
            }
            if reverse {
                ids.reverse();
            }
            for id in &ids {
                let e = &r.used.ring[usize::from(self.used_idx % size)];
                e.id.store(u32::from(*id), Ordering::Relaxed);
                e.len.store(0, Ordering::Relaxed);
                self.used_idx = self.used_idx.wrapping_add(1);
            }
            r.used.idx.store(self.used_idx, Ordering::Release);
            ids.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeTxDevice;
    use super::*;

    fn identity(a: usize) -> u64 {
        a as u64
    }

    #[test]
    fn layout_fits_one_page_with_required_alignment() {
        let q = TxQueue::new(QUEUE_SIZE as u16, identity, 0);
        let a = q.addrs();
        let n = QUEUE_SIZE as u64;
        assert_eq!(a.desc % 4096, 0);
        assert_eq!(a.driver - a.desc, 16 * n);
        assert_eq!(a.device % 4, 0);
        assert!(a.device + 6 + 8 * n <= a.desc + 4096);
    }

    #[test]
    fn bytes_arrive_in_order_across_wraps_and_out_of_order_completion() {
        let mut q = TxQueue::new(8, identity, 0);
        let mut dev = FakeTxDevice::default();
        let mut sent = std::vec::Vec::new();
        let mut x = 7u32;
        for round in 0..2000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x as usize) % (2 * SLOT) + 1;
            let data: std::vec::Vec<u8> = (0..len).map(|i| (i as u32 ^ round) as u8).collect();
            let mut off = 0;
            while off < data.len() {
                let n = q.push(&data[off..]);
                if n == 0 {
                    assert_eq!(q.in_flight(), 8, "busy only when every buffer is out");
                    dev.consume(&q, (x as usize >> 8) % 8 + 1, round % 3 == 0);
                    continue;
                }
                assert!(n <= SLOT);
                off += n;
            }
            sent.extend_from_slice(&data);
            if x.is_multiple_of(4) {
                dev.consume(&q, 8, x.is_multiple_of(8));
            }
        }
        while dev.consume(&q, 8, false) > 0 {}
        assert_eq!(dev.received, sent);
        q.reclaim();
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.bogus_used, 0);
    }

    #[test]
    fn a_device_returning_unknown_ids_cannot_free_busy_slots() {
        let mut q = TxQueue::new(4, identity, 0);
        assert_eq!(q.push(b"abc"), 3);
        // The device claims descriptor 3 (never posted) and 9 (out of range).
        let r = q.rings();
        r.used.ring[0].id.store(3, Ordering::Relaxed);
        r.used.ring[1].id.store(9, Ordering::Relaxed);
        r.used.idx.store(2, Ordering::Release);
        q.reclaim();
        // Only one element can be accepted (one buffer was posted) and it named
        // a free descriptor: counted, and descriptor 0 stays busy.
        assert_eq!(q.bogus_used, 1);
        for _ in 0..3 {
            assert!(q.push(b"x") > 0);
        }
        assert_eq!(q.push(b"y"), 0, "descriptor 0 was never returned");
    }
}
