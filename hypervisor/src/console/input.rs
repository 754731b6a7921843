//! The machine console's input router.
//!
//! One place reads the machine console (OPAL console 0) and decides which
//! partition each byte is for; every partition then reads only its own bytes from
//! its own bounded ring (H_GET_TERM_CHAR). The router keeps one *input target*,
//! a running partition with a console, and understands an escape prefix like
//! QEMU's character-device multiplexer:
//!
//! | keys | effect |
//! | --- | --- |
//! | Ctrl-A c (or n) | input goes to the next running partition with a console |
//! | Ctrl-A x | stops every partition and powers the machine off (status 0) |
//! | Ctrl-A d | dumps every partition's vCPUs: state, PC, MSR, LR, last exit |
//! | Ctrl-A h (or ?) | prints this help |
//! | Ctrl-A Ctrl-A | one literal Ctrl-A (0x01) for the target |
//! | Ctrl-A other | ignored (both bytes dropped) |
//!
//! When the target stops, the next byte that is not an escape moves the input
//! to the next eligible partition (and says so).
//!
//! Where input is polled (machine side, `poll`/`poll_due`): the idle thread that
//! drains console output (woken every [`POLL_US`] for it), every vCPU thread once
//! per guest entry and while it naps in H_CEDE (rate-limited to [`POLL_US`]),
//! and H_GET_TERM_CHAR. Only one thread reads OPAL at a time (`POLLING`); the
//! others skip.
//!
//! For the vty interrupt: [`pending`] says whether a partition's ring holds input
//! and [`generation`] counts the bytes ever delivered to it (both lock-free, by
//! partition index); a function given to [`set_notify`] is called with the
//! partition's index, outside every lock, each time new bytes reach its ring.
//!
//! Lock order: `POLLING`, then `ROUTER`; the log lock is never taken under
//! `ROUTER`.

use alloc::vec::Vec;

use super::ByteRing;

/// The escape prefix, Ctrl-A.
pub const ESCAPE: u8 = 0x01;
/// Bytes each partition's input ring holds; more are dropped (and counted).
pub const RING_CAPACITY: usize = 4096;
/// How often input is polled when nothing asks (idle thread, vCPU threads).
pub const POLL_US: u64 = 20_000;

/// What a byte of console input means after the escape prefix is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A byte for the input target.
    Byte(u8),
    /// Ctrl-A c / n: next partition.
    Next,
    /// Ctrl-A x: power off.
    Quit,
    /// Ctrl-A h / ?: help.
    Help,
    /// Ctrl-A d: dump the vCPUs.
    Dump,
    /// Ctrl-A followed by a key that means nothing.
    Unknown(u8),
}

/// The Ctrl-A prefix decoder.
#[derive(Debug, Default, Clone, Copy)]
pub struct Escape {
    armed: bool,
}

impl Escape {
    /// Takes one byte; `None` while a prefix waits for its key.
    pub fn feed(&mut self, b: u8) -> Option<Key> {
        if !self.armed {
            if b == ESCAPE {
                self.armed = true;
                return None;
            }
            return Some(Key::Byte(b));
        }
        self.armed = false;
        Some(match b {
            ESCAPE => Key::Byte(ESCAPE),
            b'c' | b'C' | b'n' | b'N' => Key::Next,
            b'x' | b'X' => Key::Quit,
            b'h' | b'H' | b'?' => Key::Help,
            b'd' | b'D' => Key::Dump,
            other => Key::Unknown(other),
        })
    }

    /// Whether a Ctrl-A waits for its key.
    pub fn armed(&self) -> bool {
        self.armed
    }
}

/// What the machine side must do after feeding input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The input target changed (or was confirmed, for Ctrl-A c with one
    /// partition); `to` is `None` when no partition can take input.
    Switched {
        to: Option<usize>,
    },
    PowerOff,
    Help,
    Dump,
    Unknown(u8),
}

/// Per-partition input state.
#[derive(Debug)]
struct Slot {
    ring: ByteRing,
    /// Bytes ever put in the ring.
    delivered: u64,
    /// Bytes dropped because the ring was full.
    dropped: u64,
}

/// Routes console input to partitions by index (portable: the caller says which
/// partitions may take input).
#[derive(Debug)]
pub struct Router {
    escape: Escape,
    target: Option<usize>,
    slots: Vec<Slot>,
    /// Bytes that found no partition to take them.
    discarded: u64,
}

impl Router {
    /// A router for `partitions` partitions with input first going to `target`.
    pub fn new(partitions: usize, target: Option<usize>, capacity: usize) -> Self {
        Router {
            escape: Escape::default(),
            target: target.filter(|&t| t < partitions),
            slots: (0..partitions)
                .map(|_| Slot {
                    ring: ByteRing::new(capacity),
                    delivered: 0,
                    dropped: 0,
                })
                .collect(),
            discarded: 0,
        }
    }

    pub fn target(&self) -> Option<usize> {
        self.target
    }

    pub fn partitions(&self) -> usize {
        self.slots.len()
    }

    /// The first eligible partition after the target, wrapping around (the target
    /// itself last); `None` when none is eligible.
    pub fn next_eligible(&self, eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.slots.len();
        let start = self.target.map(|t| t + 1).unwrap_or(0);
        (0..n).map(|k| (start + k) % n).find(|&i| eligible(i))
    }

    /// Feeds console input; `eligible(i)` says whether partition `i` may take
    /// input now (running, console on). `event` is called for each escape
    /// command and target change, in order.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        eligible: &dyn Fn(usize) -> bool,
        event: &mut dyn FnMut(Event),
    ) {
        for &b in bytes {
            match self.escape.feed(b) {
                None => {}
                Some(Key::Byte(b)) => {
                    if !self.target.is_some_and(eligible) {
                        let to = self.next_eligible(eligible);
                        if to != self.target {
                            self.target = to;
                            event(Event::Switched { to });
                        }
                    }
                    match self.target {
                        Some(t) if eligible(t) => {
                            let slot = &mut self.slots[t];
                            if slot.ring.push(&[b]) == 1 {
                                slot.delivered += 1;
                            } else {
                                slot.dropped += 1;
                            }
                        }
                        _ => self.discarded += 1,
                    }
                }
                Some(Key::Next) => {
                    self.target = self.next_eligible(eligible);
                    event(Event::Switched { to: self.target });
                }
                Some(Key::Quit) => event(Event::PowerOff),
                Some(Key::Help) => event(Event::Help),
                Some(Key::Dump) => event(Event::Dump),
                Some(Key::Unknown(k)) => event(Event::Unknown(k)),
            }
        }
    }

    /// Takes up to `out.len()` bytes of partition `index`'s input.
    pub fn read(&mut self, index: usize, out: &mut [u8]) -> usize {
        self.slots.get_mut(index).map_or(0, |s| s.ring.pop(out))
    }

    /// Bytes waiting for partition `index`.
    pub fn pending(&self, index: usize) -> usize {
        self.slots.get(index).map_or(0, |s| s.ring.len())
    }

    /// Bytes ever delivered to partition `index`'s ring.
    pub fn delivered(&self, index: usize) -> u64 {
        self.slots.get(index).map_or(0, |s| s.delivered)
    }

    /// Bytes dropped for partition `index` because its ring was full.
    pub fn dropped(&self, index: usize) -> u64 {
        self.slots.get(index).map_or(0, |s| s.dropped)
    }

    /// Bytes that no partition could take.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }
}

/// Work for partitions (by index, below 64) that could not be done at once
/// because it needs a lock of theirs that was busy, kept for a retry: console
/// input routing runs on whichever thread polled (often a vCPU of another
/// partition), which must not spin on the target partition's interrupt
/// controller locks (audit finding 8). Lock-free.
#[derive(Debug, Default)]
pub struct Deferred {
    bits: core::sync::atomic::AtomicU64,
}

impl Deferred {
    pub const fn new() -> Self {
        Deferred {
            bits: core::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Tries `attempt(index)` (which must not wait; false: busy); remembers
    /// `index` when it did not go through (only indices below 64 can be).
    pub fn run(&self, index: usize, attempt: &mut dyn FnMut(usize) -> bool) {
        if !attempt(index) && index < 64 {
            self.bits
                .fetch_or(1 << index, core::sync::atomic::Ordering::AcqRel);
        }
    }

    /// Tries again everything remembered (cheap when nothing is).
    pub fn retry(&self, attempt: &mut dyn FnMut(usize) -> bool) {
        use core::sync::atomic::Ordering;
        // The early-out needs no ordering (the swap below orders what it
        // takes), and every full exit runs it: no isync there.
        if self.bits.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut bits = self.bits.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.run(i, attempt);
        }
    }

    /// Whether work for `index` waits.
    pub fn waiting(&self, index: usize) -> bool {
        index < 64 && self.bits.load(core::sync::atomic::Ordering::Acquire) & (1 << index) != 0
    }
}

/// The help text of Ctrl-A h, one line per entry.
pub const HELP: &[&str] = &[
    "Ctrl-A c   input to the next partition (also Ctrl-A n)",
    "Ctrl-A x   stop every partition and power the machine off",
    "Ctrl-A d   dump every vCPU: state, PC, MSR, LR, last exit",
    "Ctrl-A h   this help",
    "Ctrl-A Ctrl-A   send Ctrl-A to the partition",
];

#[cfg(target_arch = "powerpc64")]
mod machine {
    use super::{Event, Router, HELP, POLL_US, RING_CAPACITY};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use crate::arch::ppc64::{instr, smp, timer};
    use crate::partition::lpar::{self, Partition, StopReason};
    use crate::platform::opal;
    use crate::{info, warn};

    /// Held by the thread reading OPAL, so bytes are routed in the order typed.
    static POLLING: spin::Mutex<()> = spin::Mutex::new(());
    static ROUTER: spin::Mutex<Option<Router>> = spin::Mutex::new(None);
    /// Lock-free view of each partition's input, by index.
    static SLOTS: spin::Once<Vec<Published>> = spin::Once::new();
    static NOTIFY: spin::Once<fn(usize)> = spin::Once::new();
    /// Timebase of the next rate-limited poll.
    static NEXT_POLL_TB: AtomicU64 = AtomicU64::new(0);
    /// The router's input target (index), `usize::MAX` for none; lock-free copy.
    static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Warnings about full rings printed so far (rate limit).
    static DROP_WARNINGS: AtomicU64 = AtomicU64::new(0);
    const MAX_DROP_WARNINGS: u64 = 16;

    struct Published {
        generation: AtomicU64,
        pending: AtomicU64,
        dropped_reported: AtomicU64,
    }

    /// Registers the function called (with the partition's index) when new input
    /// reaches a partition's ring, e.g. to raise its vty interrupt. Called outside
    /// every lock of this module, on whichever thread polled.
    pub fn set_notify(f: fn(usize)) {
        NOTIFY.call_once(|| f);
    }

    /// Whether partition `index` has console input waiting.
    pub fn pending(index: usize) -> bool {
        SLOTS
            .get()
            .and_then(|s| s.get(index))
            .is_some_and(|s| s.pending.load(Ordering::Acquire) > 0)
    }

    /// Bytes ever delivered to partition `index` (changes whenever new input
    /// arrives; compare with a saved value to see whether something came).
    pub fn generation(index: usize) -> u64 {
        SLOTS
            .get()
            .and_then(|s| s.get(index))
            .map_or(0, |s| s.generation.load(Ordering::Acquire))
    }

    /// The partition that takes input now (index, as [`pending`]), read
    /// lock-free.
    pub fn target() -> Option<usize> {
        match TARGET.load(Ordering::Acquire) {
            usize::MAX => None,
            i => Some(i),
        }
    }

    fn publish_target(router: &Router) {
        TARGET.store(router.target().unwrap_or(usize::MAX), Ordering::Release);
    }

    /// The index of `p` among [`lpar::partitions`] (the router's numbering).
    pub fn index_of(p: &Partition) -> Option<usize> {
        lpar::partitions().iter().position(|q| core::ptr::eq(q, p))
    }

    fn eligible(i: usize) -> bool {
        lpar::partitions()
            .get(i)
            .is_some_and(|p| p.console && p.is_running())
    }

    /// Creates the router once the partitions exist; the manifest's
    /// `console_input` partition takes input first.
    fn ensure_router() -> bool {
        let parts = lpar::partitions();
        if parts.is_empty() {
            return false;
        }
        let mut r = ROUTER.lock();
        if r.is_some() {
            return true;
        }
        let first = parts.iter().position(|p| p.console_input && p.console);
        let router = Router::new(parts.len(), first, RING_CAPACITY);
        publish_target(&router);
        *r = Some(router);
        SLOTS.call_once(|| {
            parts
                .iter()
                .map(|_| Published {
                    generation: AtomicU64::new(0),
                    pending: AtomicU64::new(0),
                    dropped_reported: AtomicU64::new(0),
                })
                .collect()
        });
        drop(r);
        if let Some(p) = first.and_then(|i| parts.get(i)) {
            let others = parts.iter().filter(|q| q.console).count() > 1;
            info!(
                "PAPRIKA console: input -> {} (Ctrl-A h: help{})",
                p.name,
                if others {
                    ", Ctrl-A c: next partition"
                } else {
                    ""
                }
            );
        }
        true
    }

    /// Reads whatever the machine console has and routes it. Returns at once if
    /// another thread is reading.
    pub fn poll() {
        let Some(_polling) = POLLING.try_lock() else {
            return;
        };
        NEXT_POLL_TB.store(
            instr::mftb().wrapping_add(timer::us_to_ticks(POLL_US)),
            Ordering::Relaxed,
        );
        if !ensure_router() {
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            let n = opal::console_read(0, &mut buf);
            if n == 0 {
                return;
            }
            route(&buf[..n]);
            if n < buf.len() {
                return;
            }
        }
    }

    /// [`poll`], at most every [`POLL_US`].
    pub fn poll_due() {
        if instr::mftb() >= NEXT_POLL_TB.load(Ordering::Relaxed) {
            poll();
        }
    }

    /// For the idle loop: the thread that drains console output also polls input,
    /// and asks its decrementer to wake it for the next poll.
    pub fn idle_poll() {
        if !super::super::is_drainer() {
            return;
        }
        poll_due();
        timer::wake_after_us(POLL_US);
    }

    /// H_GET_TERM_CHAR: polls, then takes up to `out.len()` bytes of partition
    /// `index`'s input.
    pub fn read(index: usize, out: &mut [u8]) -> usize {
        poll_due();
        let mut r = ROUTER.lock();
        let Some(router) = r.as_mut() else { return 0 };
        let n = router.read(index, out);
        publish(router, index);
        n
    }

    fn publish(router: &Router, i: usize) {
        if let Some(s) = SLOTS.get().and_then(|s| s.get(i)) {
            s.generation.store(router.delivered(i), Ordering::Release);
            s.pending.store(router.pending(i) as u64, Ordering::Release);
        }
    }

    fn route(bytes: &[u8]) {
        let mut events: heapless::Vec<Event, 16> = heapless::Vec::new();
        let mut fresh: heapless::Vec<usize, 8> = heapless::Vec::new();
        let mut dropped: heapless::Vec<(usize, u64), 8> = heapless::Vec::new();
        {
            let mut r = ROUTER.lock();
            let Some(router) = r.as_mut() else { return };
            let before: heapless::Vec<u64, 64> = (0..router.partitions().min(64))
                .map(|i| router.delivered(i))
                .collect();
            router.feed(bytes, &eligible, &mut |e| {
                let _ = events.push(e);
            });
            publish_target(router);
            for i in 0..router.partitions() {
                publish(router, i);
                if before.get(i).is_none_or(|&b| b != router.delivered(i)) {
                    let _ = fresh.push(i);
                }
                let d = router.dropped(i);
                if let Some(s) = SLOTS.get().and_then(|s| s.get(i)) {
                    let old = s.dropped_reported.swap(d, Ordering::Relaxed);
                    if d > old {
                        let _ = dropped.push((i, d - old));
                    }
                }
            }
        }
        let parts = lpar::partitions();
        let name = |i: usize| parts.get(i).map_or("?", |p| p.name.as_str());
        for (i, n) in dropped {
            if DROP_WARNINGS.fetch_add(1, Ordering::Relaxed) < MAX_DROP_WARNINGS {
                warn!(
                    "console input for {}: ring full ({} bytes), {} byte(s) dropped",
                    name(i),
                    RING_CAPACITY,
                    n
                );
            }
        }
        if let Some(f) = NOTIFY.get() {
            for &i in &fresh {
                f(i);
            }
        }
        for e in events {
            match e {
                Event::Switched { to: Some(i) } => info!("PAPRIKA console: input -> {}", name(i)),
                Event::Switched { to: None } => {
                    info!("PAPRIKA console: input -> nobody (no running partition has a console)")
                }
                Event::Help => {
                    let target = ROUTER.lock().as_ref().and_then(|r| r.target());
                    info!(
                        "PAPRIKA console: input goes to {}; keys:",
                        target.map_or("nobody", name)
                    );
                    for line in HELP {
                        info!("PAPRIKA console:   {line}");
                    }
                }
                Event::Unknown(_) => {}
                Event::Dump => {
                    info!("PAPRIKA console: Ctrl-A d: vCPU dump");
                    for p in lpar::partitions() {
                        crate::partition::vcpu::dump(p);
                    }
                }
                Event::PowerOff => power_off(),
            }
        }
    }

    /// Ctrl-A x: every partition stops as if it had powered off, which powers the
    /// machine off through the usual path (`PAPRIKA partitions: ...`, then OPAL).
    fn power_off() {
        info!("PAPRIKA console: Ctrl-A x: stopping every partition and powering off");
        lpar::request_power_off();
        let mut stopped = false;
        for p in lpar::partitions() {
            if p.is_running() {
                p.stop(StopReason::PowerOff);
                stopped = true;
            }
        }
        if stopped {
            // The last stopped partition's teardown powers the machine off
            // (`PAPRIKA partitions: ...`, then OPAL) once its vCPUs have left
            // their run loops, this thread's included.
            return;
        }
        // Nothing was running (power_off_when_idle = false kept the machine up
        // after the last partition stopped).
        smp::begin_shutdown();
        info!("PAPRIKA power-off: success");
        opal::power_down()
    }
}

#[cfg(target_arch = "powerpc64")]
pub use machine::*;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn keys(input: &[u8]) -> Vec<Key> {
        let mut e = Escape::default();
        input.iter().filter_map(|&b| e.feed(b)).collect()
    }

    #[test]
    fn escape_prefix() {
        assert_eq!(keys(b"ab"), vec![Key::Byte(b'a'), Key::Byte(b'b')]);
        assert_eq!(keys(b"\x01c\x01n\x01C"), vec![Key::Next; 3]);
        assert_eq!(keys(b"\x01x"), vec![Key::Quit]);
        assert_eq!(keys(b"\x01X"), vec![Key::Quit]);
        assert_eq!(keys(b"\x01h\x01?"), vec![Key::Help, Key::Help]);
        assert_eq!(keys(b"\x01d\x01D"), vec![Key::Dump, Key::Dump]);
        assert_eq!(keys(b"\x01\x01a"), vec![Key::Byte(1), Key::Byte(b'a')]);
        assert_eq!(keys(b"\x01zq"), vec![Key::Unknown(b'z'), Key::Byte(b'q')]);
        // A prefix split across reads waits for its key.
        let mut e = Escape::default();
        assert_eq!(e.feed(ESCAPE), None);
        assert!(e.armed());
        assert_eq!(e.feed(b'x'), Some(Key::Quit));
        assert!(!e.armed());
    }

    fn read_all(r: &mut Router, i: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            let n = r.read(i, &mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn each_partition_sees_only_its_bytes() {
        let all = |_: usize| true;
        let mut r = Router::new(3, Some(0), 64);
        let mut ev = Vec::new();
        r.feed(b"to-a\x01cto-b\x01", &all, &mut |e| ev.push(e));
        // The prefix straddles two reads.
        r.feed(b"nto-c\x01\x01!", &all, &mut |e| ev.push(e));
        assert_eq!(
            ev,
            vec![
                Event::Switched { to: Some(1) },
                Event::Switched { to: Some(2) }
            ]
        );
        assert_eq!(read_all(&mut r, 0), b"to-a");
        assert_eq!(read_all(&mut r, 1), b"to-b");
        assert_eq!(read_all(&mut r, 2), b"to-c\x01!");
        assert_eq!(r.delivered(2), 6);
        assert_eq!(r.pending(2), 0);
        // Wraps around.
        r.feed(b"\x01c", &all, &mut |e| ev.push(e));
        assert_eq!(r.target(), Some(0));
    }

    #[test]
    fn switching_skips_ineligible_partitions() {
        // 1 has no console, 3 stopped.
        let ok = |i: usize| i == 0 || i == 2;
        let mut r = Router::new(4, Some(0), 64);
        let mut ev = Vec::new();
        r.feed(b"\x01c", &ok, &mut |e| ev.push(e));
        assert_eq!(r.target(), Some(2));
        r.feed(b"\x01c", &ok, &mut |e| ev.push(e));
        assert_eq!(r.target(), Some(0));
        // Only one eligible: Ctrl-A c confirms it.
        let only0 = |i: usize| i == 0;
        r.feed(b"\x01c", &only0, &mut |e| ev.push(e));
        assert_eq!(ev.last(), Some(&Event::Switched { to: Some(0) }));
        // None eligible.
        let none = |_: usize| false;
        r.feed(b"\x01cz", &none, &mut |e| ev.push(e));
        assert_eq!(ev.last(), Some(&Event::Switched { to: None }));
        assert_eq!(r.discarded(), 1);
        assert_eq!(read_all(&mut r, 0), b"");
    }

    #[test]
    fn stopped_target_moves_input_on() {
        let mut r = Router::new(2, Some(0), 64);
        let mut ev = Vec::new();
        let only1 = |i: usize| i == 1;
        r.feed(b"hi", &only1, &mut |e| ev.push(e));
        assert_eq!(ev, vec![Event::Switched { to: Some(1) }]);
        assert_eq!(read_all(&mut r, 1), b"hi");
        // No initial target: the first byte picks one.
        let mut r = Router::new(2, None, 64);
        let mut ev = Vec::new();
        r.feed(b"x", &|_| true, &mut |e| ev.push(e));
        assert_eq!(ev, vec![Event::Switched { to: Some(0) }]);
        assert_eq!(Router::new(2, Some(5), 8).target(), None);
    }

    #[test]
    fn commands_are_reported_in_order() {
        let mut r = Router::new(1, Some(0), 64);
        let mut ev = Vec::new();
        r.feed(b"a\x01hb\x01qc\x01d\x01x", &|_| true, &mut |e| ev.push(e));
        assert_eq!(
            ev,
            vec![
                Event::Help,
                Event::Unknown(b'q'),
                Event::Dump,
                Event::PowerOff
            ]
        );
        assert_eq!(read_all(&mut r, 0), b"abc");
    }

    #[test]
    fn busy_targets_are_deferred_not_waited_for() {
        let d = Deferred::new();
        let mut busy = [false, true, false];
        let mut done = vec![];
        // Partition 1's lock is busy: nothing waits, it is remembered.
        for i in 0..3 {
            d.run(i, &mut |i| {
                if busy[i] {
                    return false;
                }
                done.push(i);
                true
            });
        }
        assert_eq!(done, vec![0, 2]);
        assert!(d.waiting(1) && !d.waiting(0));
        // Still busy: kept.
        d.retry(&mut |i| !busy[i]);
        assert!(d.waiting(1));
        busy[1] = false;
        d.retry(&mut |i| {
            done.push(i);
            !busy[i]
        });
        assert_eq!(done, vec![0, 2, 1]);
        assert!(!d.waiting(1));
        // Nothing waits: retry does nothing.
        d.retry(&mut |_| panic!("nothing to retry"));
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let mut r = Router::new(2, Some(0), 4);
        let mut ev = Vec::new();
        r.feed(b"abcdef", &|_| true, &mut |e| ev.push(e));
        assert_eq!(r.pending(0), 4);
        assert_eq!(r.dropped(0), 2);
        assert_eq!(r.delivered(0), 4);
        let mut buf = [0u8; 2];
        assert_eq!(r.read(0, &mut buf), 2);
        assert_eq!(&buf, b"ab");
        r.feed(b"gh", &|_| true, &mut |e| ev.push(e));
        assert_eq!(read_all(&mut r, 0), b"cdgh");
        assert_eq!(r.dropped(1), 0);
        assert!(ev.is_empty());
        // Out-of-range indices read nothing.
        assert_eq!(r.read(7, &mut buf), 0);
        assert_eq!(r.pending(7), 0);
    }
}
