//! Pass-through MSIs taken through the host XIVE (docs/passthrough.md "MSI"),
//! the portable part: walking a hardware thread's host event queue with its
//! generation bit, decoding the physical ring's acknowledge, and the table of
//! routes (host interrupt -> guest source and the hardware thread its events
//! are queued on). `partition::host_irq` does the OPAL calls and the TIMA,
//! ESB and queue accesses around them.

use alloc::vec::Vec;

/// The priority of the hypervisor's host queues (Linux hosts use 7 too; the
/// guest's own priorities never reach the host XIVE).
pub const HOST_PRIORITY: u8 = 7;
/// log2 of a host queue's size in bytes: 64 KiB, 16384 entries (one per
/// source at most is outstanding: a source stays at P = 1 until the
/// hypervisor EOIs it, so the queue cannot overflow).
pub const QUEUE_SHIFT: u32 = 16;
/// Entries in a host queue.
pub const QUEUE_ENTRIES: u32 = 1 << (QUEUE_SHIFT - 2);

/// A consumer's position in an event queue of big-endian 32-bit entries
/// whose top bit is the generation: an entry is new when its generation
/// differs from `toggle`; the producer starts with generation 1 on a zeroed
/// queue and flips it on each wrap, so the consumer flips `toggle` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EqCursor {
    index: u32,
    toggle: bool,
    entries: u32,
}

impl EqCursor {
    /// A freshly enabled queue of `entries` (a power of two) entries.
    pub const fn new(entries: u32) -> EqCursor {
        EqCursor {
            index: 0,
            toggle: false,
            entries,
        }
    }

    /// A position saved with [`Self::index`] and [`Self::toggle`].
    pub const fn at(index: u32, toggle: bool, entries: u32) -> EqCursor {
        EqCursor {
            index: index & (entries - 1),
            toggle,
            entries,
        }
    }

    /// The generation an old entry has.
    pub fn toggle(&self) -> bool {
        self.toggle
    }

    /// Index of the entry to look at next.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether `word` (the entry at [`Self::index`], in host order) is a new
    /// event.
    pub fn is_new(&self, word: u32) -> bool {
        (word >> 31 != 0) != self.toggle
    }

    /// Consumes the entry at [`Self::index`] if it is new: its data (the
    /// 31-bit EISN the source was configured with).
    pub fn take(&mut self, word: u32) -> Option<u32> {
        if !self.is_new(word) {
            return None;
        }
        self.index += 1;
        if self.index == self.entries {
            self.index = 0;
            self.toggle = !self.toggle;
        }
        Some(word & 0x7fff_ffff)
    }

    /// Consumes every new entry, reading entry `i` with `read` and handing
    /// each event's data to `event`; returns how many there were (at most one
    /// lap, so a producer racing ahead cannot keep the caller forever).
    pub fn drain(&mut self, mut read: impl FnMut(u32) -> u32, mut event: impl FnMut(u32)) -> u32 {
        let mut n = 0;
        while n < self.entries {
            match self.take(read(self.index)) {
                Some(d) => {
                    event(d);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

/// What the physical ring's acknowledge (16-bit load at TIMA HV page 0x830:
/// NSR, CPPR) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Nothing was signalled.
    None,
    /// A physical-thread interrupt at this priority (now the CPPR).
    Phys(u8),
    /// A pool or legacy LSI interrupt: never configured by Paprika.
    Other(u8),
}

/// Decodes the acknowledge value (NSR's HE field, bits 7-6 of the high byte:
/// 0 none, 1 pool, 2 physical, 3 LSI).
pub fn decode_ack(ack: u16) -> Ack {
    let he = (ack >> 14) & 3;
    let cppr = ack as u8;
    match he {
        0 => Ack::None,
        2 => Ack::Phys(cppr),
        x => Ack::Other(x as u8),
    }
}

/// One pass-through vector taken through the host XIVE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Host global interrupt number (also the EISN its events carry).
    pub girq: u32,
    /// The guest's source it fires.
    pub lisn: u32,
    /// Real address of its ESB management page.
    pub esb: u64,
    /// The guest vCPU its guest source targets, and the hardware thread
    /// (logical index) that runs it, whose queue the host events go to.
    pub vcpu: u32,
    pub thread: u32,
}

/// What the caller must do to the host XIVE after a table change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reroute {
    /// Nothing (same thread, or an unknown source).
    None,
    /// Aim `girq`'s host EAS at `thread`'s queue (it was on `from`).
    Move { girq: u32, from: u32, thread: u32 },
}

/// A partition's routes, keyed by host interrupt and by guest source.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable { routes: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Adds (or replaces) the route of `r.girq`.
    pub fn insert(&mut self, r: Route) {
        match self.routes.iter_mut().find(|x| x.girq == r.girq) {
            Some(x) => *x = r,
            None => self.routes.push(r),
        }
    }

    /// Removes the route of `girq` (the vector was released).
    pub fn remove(&mut self, girq: u32) -> Option<Route> {
        let i = self.routes.iter().position(|x| x.girq == girq)?;
        Some(self.routes.swap_remove(i))
    }

    /// The route of an event's data (its host interrupt).
    pub fn by_girq(&self, girq: u32) -> Option<Route> {
        self.routes.iter().copied().find(|x| x.girq == girq)
    }

    /// The route feeding guest source `lisn`.
    pub fn by_lisn(&self, lisn: u32) -> Option<Route> {
        self.routes.iter().copied().find(|x| x.lisn == lisn)
    }

    /// The guest aimed source `lisn` at `vcpu`, run by hardware thread
    /// `thread`: the route follows it. The entry is changed in place, never
    /// removed, so an event still in the old thread's queue finds it there.
    pub fn retarget(&mut self, lisn: u32, vcpu: u32, thread: u32) -> Reroute {
        let Some(r) = self.routes.iter_mut().find(|x| x.lisn == lisn) else {
            return Reroute::None;
        };
        r.vcpu = vcpu;
        if r.thread == thread {
            return Reroute::None;
        }
        let from = r.thread;
        r.thread = thread;
        Reroute::Move {
            girq: r.girq,
            from,
            thread,
        }
    }

    /// Routes whose events go to `thread` (for a debug dump).
    pub fn on_thread(&self, thread: u32) -> usize {
        self.routes.iter().filter(|x| x.thread == thread).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer as the XIVE END writes: generation starts at 1, flips on wrap.
    struct Producer {
        q: Vec<u32>,
        at: usize,
        gen: u32,
    }

    impl Producer {
        fn new(n: usize) -> Producer {
            Producer {
                q: alloc::vec![0; n],
                at: 0,
                gen: 1,
            }
        }
        fn push(&mut self, data: u32) {
            self.q[self.at] = (self.gen << 31) | data;
            self.at += 1;
            if self.at == self.q.len() {
                self.at = 0;
                self.gen ^= 1;
            }
        }
    }

    #[test]
    fn empty_queue_has_nothing() {
        let q = [0u32; 8];
        let mut c = EqCursor::new(8);
        let n = c.drain(|i| q[i as usize], |_| panic!("no event"));
        assert_eq!(n, 0);
        assert_eq!(c.index(), 0);
    }

    #[test]
    fn drains_in_order_and_stops() {
        let mut p = Producer::new(8);
        let mut c = EqCursor::new(8);
        for d in [5, 6, 7] {
            p.push(d);
        }
        let mut got = Vec::new();
        assert_eq!(c.drain(|i| p.q[i as usize], |d| got.push(d)), 3);
        assert_eq!(got, [5, 6, 7]);
        // Nothing new: the old entries are not taken again.
        assert_eq!(c.drain(|i| p.q[i as usize], |_| panic!("stale")), 0);
    }

    #[test]
    fn generation_flips_on_wrap_many_laps() {
        let mut p = Producer::new(4);
        let mut c = EqCursor::new(4);
        let mut next = 0u32;
        let mut expect = 0u32;
        // Uneven batches across many laps, never more than a lap ahead.
        for round in 0..50u32 {
            for _ in 0..(round % 4) + 1 {
                p.push(next);
                next += 1;
            }
            c.drain(
                |i| p.q[i as usize],
                |d| {
                    assert_eq!(d, expect);
                    expect += 1;
                },
            );
            assert_eq!(expect, next);
        }
    }

    #[test]
    fn full_lap_is_drained_once() {
        let mut p = Producer::new(4);
        let mut c = EqCursor::new(4);
        for d in 0..4 {
            p.push(d);
        }
        assert_eq!(c.drain(|i| p.q[i as usize], |_| {}), 4);
        assert_eq!(c.drain(|i| p.q[i as usize], |_| panic!("stale")), 0);
        p.push(9);
        let mut got = Vec::new();
        c.drain(|i| p.q[i as usize], |d| got.push(d));
        assert_eq!(got, [9]);
    }

    #[test]
    fn saved_position_resumes() {
        let mut p = Producer::new(4);
        let mut c = EqCursor::new(4);
        for d in 0..6 {
            p.push(d);
            if d == 3 {
                assert_eq!(c.drain(|i| p.q[i as usize], |_| {}), 4);
            }
        }
        let mut r = EqCursor::at(c.index(), c.toggle(), 4);
        assert_eq!(r, c);
        let mut got = Vec::new();
        r.drain(|i| p.q[i as usize], |d| got.push(d));
        assert_eq!(got, [4, 5]);
    }

    #[test]
    fn data_is_31_bits() {
        let mut c = EqCursor::new(2);
        assert_eq!(c.take(0xffff_ffff), Some(0x7fff_ffff));
        assert_eq!(c.take(0x8000_0000), Some(0));
        // Wrapped: toggle is now 1, so generation 1 entries are old.
        assert_eq!(c.take(0x8000_0001), None);
        assert_eq!(c.take(0x0000_0001), Some(1));
    }

    #[test]
    fn ack_decoding() {
        assert_eq!(decode_ack(0x00ff), Ack::None);
        assert_eq!(decode_ack(0x8007), Ack::Phys(7));
        assert_eq!(decode_ack(0x4007), Ack::Other(1));
        assert_eq!(decode_ack(0xc0ff), Ack::Other(3));
    }

    fn route(girq: u32, lisn: u32, thread: u32) -> Route {
        Route {
            girq,
            lisn,
            esb: 0x1000 * u64::from(girq),
            vcpu: 0,
            thread,
        }
    }

    #[test]
    fn routes_follow_retarget_in_place() {
        let mut t = RouteTable::new();
        t.insert(route(100, 0x2000, 1));
        t.insert(route(101, 0x2001, 1));
        assert_eq!(t.retarget(0x2000, 1, 1), Reroute::None);
        assert_eq!(
            t.retarget(0x2001, 1, 2),
            Reroute::Move {
                girq: 101,
                from: 1,
                thread: 2
            }
        );
        // An event already queued on thread 1 still finds its route.
        let r = t.by_girq(101).unwrap();
        assert_eq!((r.lisn, r.thread, r.vcpu), (0x2001, 2, 1));
        assert_eq!(t.on_thread(1), 1);
        assert_eq!(t.retarget(0x3000, 0, 0), Reroute::None);
        // Moving back is a move too.
        assert_eq!(
            t.retarget(0x2001, 0, 1),
            Reroute::Move {
                girq: 101,
                from: 2,
                thread: 1
            }
        );
    }

    #[test]
    fn insert_replaces_and_remove_forgets() {
        let mut t = RouteTable::new();
        t.insert(route(7, 0x2000, 0));
        t.insert(route(7, 0x2005, 3));
        assert_eq!(t.len(), 1);
        assert_eq!(t.by_lisn(0x2005).unwrap().thread, 3);
        assert!(t.by_lisn(0x2000).is_none());
        assert_eq!(t.remove(7).unwrap().lisn, 0x2005);
        assert!(t.remove(7).is_none());
        assert!(t.by_girq(7).is_none());
        assert!(t.is_empty());
    }
}
