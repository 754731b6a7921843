//! The machine console's output buffer.
//!
//! Every byte for the console (log lines and partitions' vty lines) goes through
//! one ring, so their order is kept. A thread that has nothing else to do (the
//! "drainer") copies the ring to the sink; producers only copy into it, so a
//! guest's H_PUT_TERM_CHAR does not wait for the (slow) UART unless the ring is
//! full. Before the ring exists, or without an idle drainer, writers drain
//! synchronously.
//!
//! The sink is the OPAL console, or a virtio console when the machine has one
//! ([`set_virtio`]; docs/console.md): 16 KiB per notify instead of one UART
//! access per byte. Input always comes from OPAL.
//!
//! Lock order: `DRAIN` before `VIRTIO` before `RING`; `RING` is only held for
//! copies.
//!
//! Input (the keyboard side of the same console) is routed to partitions by
//! [`input`].

use alloc::vec::Vec;

pub mod input;
pub mod lines;

/// `dst.copy_from_slice(src)`, inline for the short pieces of a console line
/// (a prefix, one hcall's 16 bytes): fixed-size steps without a loop, so the
/// compiler emits plain loads and stores instead of calls to the library
/// `memcpy` (a loop would be turned back into one), which cost more than the
/// copy itself under emulation.
#[inline(always)]
fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 32 || dst.len() != n {
        dst.copy_from_slice(src);
        return;
    }
    let mut at = 0;
    macro_rules! step {
        ($k:literal) => {
            if n - at >= $k {
                dst[at..at + $k].copy_from_slice(&src[at..at + $k]);
                at += $k;
            }
        };
    }
    step!(16);
    step!(16);
    step!(8);
    step!(4);
    step!(2);
    step!(1);
    debug_assert_eq!(at, n);
}

/// A byte FIFO over a fixed buffer.
///
/// The buffer is reserved whole but initialised only as the first pass through
/// it reaches each part, [`ByteRing::GROW`] bytes at a time: the console's ring
/// is megabytes, and zeroing it at boot cost tens of milliseconds under
/// emulation (host page faults on untouched RAM) before any thread came online.
#[derive(Debug)]
pub struct ByteRing {
    /// The initialised part; grows to `cap` during the first pass, then stays.
    buf: Vec<u8>,
    cap: usize,
    head: usize,
    len: usize,
}

impl ByteRing {
    /// Bytes initialised at a time as the first pass reaches them: pushes stay
    /// the short fixed-step copies of the hot path, not one `memcpy` each.
    pub const GROW: usize = 64 << 10;

    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(1);
        ByteRing {
            buf: Vec::with_capacity(cap),
            cap,
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Writes `src` at `pos` (`pos + src.len() <= cap`), first initialising the
    /// buffer up to there if the first pass has not reached it.
    #[inline]
    fn write_at(&mut self, pos: usize, src: &[u8]) {
        let end = pos + src.len();
        if end > self.buf.len() {
            self.grow_to(end);
        }
        copy(&mut self.buf[pos..end], src);
    }

    #[cold]
    fn grow_to(&mut self, end: usize) {
        let want = end.max(self.buf.len() + Self::GROW).min(self.cap);
        self.buf.resize(want, 0);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.cap - self.len
    }

    /// Appends as much of `data` as fits; returns how much.
    #[inline]
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let cap = self.cap;
        // No division: this runs on the hcall fast path.
        let mut tail = self.head + self.len;
        if tail >= cap {
            tail -= cap;
        }
        let first = n.min(cap - tail);
        self.write_at(tail, &data[..first]);
        // Usually nothing wraps: skip the second copy.
        if first < n {
            self.write_at(0, &data[first..n]);
        }
        self.len += n;
        n
    }

    /// Copies up to `out.len()` of the oldest bytes out and removes them.
    /// (Draining copies kilobytes: the library copy is right there.)
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        let cap = self.cap;
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head += n;
        if self.head >= cap {
            self.head -= cap;
        }
        self.len -= n;
        n
    }
}

/// A partition's share of the console's output (a token bucket): `burst`
/// bytes at once, `rate` bytes a second after that. A partition within its
/// share may fill the ring up to the high-water mark; one beyond it waits (its
/// own vCPU, holding no lock) until the ring is down to a low mark, so a
/// flooding guest gets the console's bandwidth that others leave, not more,
/// and never delays anyone else's output (audit finding 4; docs/console.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct Share {
    /// Bytes of credit, times `hz` (so refills need no division per tick).
    credit: u64,
    /// Time (caller's unit, `hz` per second) of the last refill.
    last: u64,
}

impl Share {
    pub const fn new() -> Self {
        Share { credit: 0, last: 0 }
    }

    /// Takes `n` bytes of credit at `now` (`hz` ticks a second), refilled at
    /// `rate` bytes a second up to `burst`. False, leaving the credit at 0,
    /// when there was not enough: the caller is beyond its share.
    pub fn take(&mut self, now: u64, n: usize, hz: u64, rate: u64, burst: u64) -> bool {
        let cap = burst.saturating_mul(hz);
        if self.last == 0 {
            // First use: a full bucket.
            self.credit = cap;
        } else {
            let elapsed = now.saturating_sub(self.last).min(cap / rate.max(1));
            self.credit = self.credit.saturating_add(elapsed * rate).min(cap);
        }
        self.last = now.max(1);
        let want = (n as u64).saturating_mul(hz);
        if self.credit >= want {
            self.credit -= want;
            true
        } else {
            self.credit = 0;
            false
        }
    }
}

#[cfg(target_arch = "powerpc64")]
mod machine {
    use super::ByteRing;
    use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use crate::arch::ppc64::{instr, percpu};
    use crate::platform::mmio::MmioRegion;
    use crate::platform::opal;
    use crate::sync::LoadAcquire;
    use crate::virtio::VirtioConsole;

    static RING: spin::Mutex<Option<ByteRing>> = spin::Mutex::new(None);
    /// Held by whoever copies the ring to OPAL, so chunks go out in order.
    /// The buffer one drain step copies through (too big for a stack).
    static DRAIN: spin::Mutex<[u8; CHUNK]> = spin::Mutex::new([0; CHUNK]);
    /// PIR + 1 of the idle thread that drains (0: none, write synchronously).
    static DRAINER: AtomicU64 = AtomicU64::new(0);

    /// The virtio console, when output goes there.
    static VIRTIO: spin::Mutex<Option<VirtioConsole<MmioRegion>>> = spin::Mutex::new(None);

    /// Bumped as the sink takes bytes (each OPAL write, and while a slow UART
    /// paces one): a thread waiting in [`flush`] while another drains a chunk
    /// (16 KiB take 1.4 s at 115200 baud, more on a loaded host) sees progress
    /// although the ring's length only moves between chunks.
    static SINK_PROGRESS: AtomicU64 = AtomicU64::new(0);

    /// Bytes in the ring, mirrored under its lock so the drainer can watch it
    /// without taking the lock from producers.
    static QUEUED: AtomicUsize = AtomicUsize::new(0);
    /// The drainer is awake (in [`serve`]) and will see what is queued without
    /// a doorbell. Producers push, then (after a full barrier) send a doorbell
    /// only if this is false; the drainer clears it, then (after a full
    /// barrier) looks at the ring once more, so no output is left behind.
    static DRAINER_AWAKE: AtomicBool = AtomicBool::new(false);

    /// How long the drainer lets output gather before sending less than a
    /// buffer, and how long it stays awake once the ring is empty (microseconds).
    const BATCH_US: u64 = 1000;
    const LINGER_US: u64 = 200;
    /// How often the awake drainer looks at the ring.
    const POLL_US: u64 = 5;
    /// Longest the drainer serves output before returning to its other idle work.
    const SERVE_US: u64 = 10_000;

    /// One virtio buffer; OPAL takes as much per call.
    const CHUNK: usize = crate::virtio::queue::SLOT;
    /// Most bytes producers may leave queued (see `throttle`); the emulated UART
    /// drains some tens of KiB a second under load.
    const HIGH_WATER: usize = 64 << 10;

    /// Creates the ring (after the heap exists).
    pub fn init(capacity: usize) {
        *RING.lock() = Some(ByteRing::new(capacity));
    }

    /// Output is being held in the ring (boot, until every thread is online).
    static HOLD: AtomicBool = AtomicBool::new(false);

    /// Holds output in the ring rather than draining it after each line (`true`),
    /// or lets it go again (`false`; the next [`settle`] or [`flush`] drains).
    /// The boot thread holds its log lines from the ring's creation until every
    /// thread is online: each line drained to the OPAL UART costs about 0.3 ms
    /// under emulation, and bring-up prints some twenty. A fault still flushes
    /// them (`fatal`), and more than the high-water mark is drained anyway.
    pub fn hold_output(on: bool) {
        HOLD.store(on, Ordering::Release);
    }

    /// Names the thread that drains; `None` makes writers drain themselves.
    pub fn set_drainer(pir: Option<u32>) {
        DRAINER.store(
            pir.map(|p| u64::from(p) + 1).unwrap_or(0),
            Ordering::Release,
        );
    }

    /// Whether this thread is the idle drainer.
    pub fn is_drainer() -> bool {
        drainer().is_some() && drainer() == percpu::current().map(|p| p.pir)
    }

    fn drainer() -> Option<u32> {
        match DRAINER.load_acquire() {
            0 => None,
            v => Some((v - 1) as u32),
        }
    }

    /// Bytes lost because the ring was full (it holds megabytes: only a sink
    /// that stopped taking output fills it).
    static LOST: AtomicUsize = AtomicUsize::new(0);

    /// Queues bytes for the console. Never waits: this runs under the log's
    /// line lock (`log`), which every partition's console output and every log
    /// line takes, so waiting here for the (slow) sink would stall them all
    /// (audit finding 4). What does not fit in the ring is dropped and
    /// counted; [`settle`], called once the lock is released, wakes the
    /// drainer or drains, and keeps producers from running far ahead.
    pub fn write(bytes: &[u8]) {
        let mut r = RING.lock();
        let Some(ring) = r.as_mut() else {
            drop(r);
            // Before the heap: straight to OPAL (one thread runs).
            opal::console_write(0, bytes);
            return;
        };
        let n = ring.push(bytes);
        QUEUED.store(ring.len(), Ordering::Relaxed);
        drop(r);
        if n < bytes.len() {
            LOST.fetch_add(bytes.len() - n, Ordering::Relaxed);
        }
    }

    /// After [`write`]s, with no lock held: wakes the drainer (or drains, when
    /// there is none or this is it), then waits, helping to drain, while more
    /// than `HIGH_WATER` bytes are queued, so a producer faster than the
    /// console cannot run seconds ahead of it (what is queued must still come
    /// out when the machine powers off). Gives up when nothing moved for two
    /// seconds, as `flush` does.
    pub fn settle() {
        if !HOLD.load(Ordering::Acquire) {
            kick();
        }
        // A log line from the drain itself (a failing sink) must not wait for it.
        if DRAIN_OWNER.load(Ordering::Relaxed) == my_id() {
            return;
        }
        wait_below(HIGH_WATER, &|| true);
    }

    /// PIR + 1 of the thread holding `DRAIN` (0: none).
    static DRAIN_OWNER: AtomicU64 = AtomicU64::new(0);

    fn my_id() -> u64 {
        percpu::current().map_or(u64::MAX, |p| u64::from(p.pir) + 1)
    }

    /// Gets what is queued moving: the drainer's doorbell, or a drain on this
    /// thread when there is no other drainer.
    fn kick() {
        if QUEUED.load(Ordering::Relaxed) == 0 {
            return;
        }
        let me = percpu::current().map(|p| p.pir);
        match drainer() {
            Some(d) if Some(d) != me => wake(d),
            _ => drain(),
        }
    }

    /// Bytes queued now.
    pub fn queued() -> usize {
        QUEUED.load(Ordering::Relaxed)
    }

    /// Waits, helping to drain, until at most `limit` bytes are queued, while
    /// `go_on` holds. False when it gave up: the sink made no progress for two
    /// seconds, or `go_on` turned false.
    pub fn wait_below(limit: usize, go_on: &dyn Fn() -> bool) -> bool {
        let mut ok = true;
        until_done_or_stalled(|| {
            let left = QUEUED.load(Ordering::Relaxed);
            if left <= limit {
                return None;
            }
            if !go_on() {
                ok = false;
                return None;
            }
            kick();
            Some((left, SINK_PROGRESS.load(Ordering::Relaxed)))
        });
        ok && QUEUED.load(Ordering::Relaxed) <= limit
    }

    /// Bytes dropped because the ring was full, since boot.
    pub fn lost() -> usize {
        LOST.load(Ordering::Relaxed)
    }

    /// Calls `step` until it returns `None` (done), keeping OPAL's heartbeat;
    /// gives up when what it returns (what is left) stayed the same for
    /// [`stall_limit`], rather than hang on a wedged console.
    fn until_done_or_stalled<T: PartialEq + Copy>(mut step: impl FnMut() -> Option<T>) {
        let mut last: Option<T> = None;
        let mut since = instr::mftb();
        while let Some(left) = step() {
            if last != Some(left) {
                last = Some(left);
                since = instr::mftb();
            } else if instr::mftb().wrapping_sub(since) > stall_limit() {
                return;
            }
            opal::heartbeat();
            core::hint::spin_loop();
        }
    }

    /// Queues up to `need` bytes that `fill` produces (through the pusher it is
    /// given), as one unit, but only if that needs no waiting: the ring has `need`
    /// bytes free and another thread drains it. Never calls OPAL, so it is safe in
    /// real mode with a guest's partition registers loaded (the hcall fast path).
    /// Returns false, having queued nothing and not called `fill`, otherwise.
    pub fn try_queue(need: usize, fill: impl FnOnce(&mut dyn FnMut(&[u8]))) -> bool {
        try_queue_with(need, |ring| {
            let mut room = need;
            fill(&mut |b: &[u8]| {
                // `need` is the caller's bound; never queue beyond it.
                let n = b.len().min(room);
                room -= ring.push(&b[..n]);
            });
        })
    }

    /// [`try_queue`] of bytes already at hand (e.g. a prefix and a line), with
    /// no callback in between: the hcall fast path's common case.
    pub fn try_queue_parts(parts: &[&[u8]]) -> bool {
        let need = parts.iter().map(|p| p.len()).sum();
        try_queue_with(need, |ring| {
            for p in parts {
                ring.push(p);
            }
        })
    }

    #[inline(always)]
    fn try_queue_with(need: usize, fill: impl FnOnce(&mut ByteRing)) -> bool {
        let Some(d) = drainer() else { return false };
        if percpu::current().map(|p| p.pir) == Some(d) {
            return false;
        }
        {
            let mut r = RING.lock();
            let Some(ring) = r.as_mut() else { return false };
            if ring.free() < need || ring.len() + need > HIGH_WATER {
                return false;
            }
            fill(ring);
            QUEUED.store(ring.len(), Ordering::Relaxed);
        }
        wake(d);
        true
    }

    /// Sends console output to `con` from now on.
    pub fn set_virtio(con: VirtioConsole<MmioRegion>) {
        let _d = DRAIN.lock();
        *VIRTIO.lock() = Some(con);
    }

    /// Whether output goes to a virtio console.
    pub fn on_virtio() -> bool {
        VIRTIO.lock().is_some()
    }

    /// Two seconds of timebase: how long a sink may make no progress before it
    /// is given up.
    fn stall_limit() -> u64 {
        crate::arch::ppc64::timer::ticks_per_us() * 2_000_000
    }

    /// Writes a chunk to the sink. Called with `DRAIN` held. A virtio console
    /// that takes nothing for two seconds is reset and abandoned: the rest (and
    /// everything after) goes to OPAL.
    fn sink_write(bytes: &[u8]) {
        let mut v = VIRTIO.lock();
        let Some(con) = v.as_mut() else {
            drop(v);
            opal::console_write(0, bytes);
            SINK_PROGRESS.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "test-hooks")]
            slow_uart(bytes.len());
            return;
        };
        // One chunk needs one buffer, so this waits for one to come back at most.
        let since = instr::mftb();
        let done = con.write_all(bytes, &mut || {
            opal::heartbeat();
            core::hint::spin_loop();
            instr::mftb().wrapping_sub(since) < stall_limit()
        });
        if done == bytes.len() {
            return;
        }
        let state = con.check();
        con.reset();
        *v = None;
        drop(v);
        opal::console_write(0, &bytes[done..]);
        crate::warn!(
            "virtio console stopped taking output ({state:?}); console output back on OPAL"
        );
    }

    /// A `test-hooks` build's OPAL console drains like a real BMC UART at
    /// 115200 baud (11520 bytes a second; the emulated one is much faster), so
    /// the scenarios see what a slow console does to everyone else
    /// (lpar-console-p9).
    #[cfg(feature = "test-hooks")]
    fn slow_uart(bytes: usize) {
        let until = instr::mftb().wrapping_add(crate::arch::ppc64::timer::us_to_ticks(
            bytes as u64 * 1_000_000 / 11_520,
        ));
        let step = crate::arch::ppc64::timer::us_to_ticks(100_000);
        let mut next = instr::mftb().wrapping_add(step);
        while instr::mftb() < until {
            if instr::mftb() >= next {
                SINK_PROGRESS.fetch_add(1, Ordering::Relaxed);
                next = next.wrapping_add(step);
            }
            opal::heartbeat();
            core::hint::spin_loop();
        }
    }

    /// Waits (two seconds at most without progress) until the virtio console has
    /// sent every buffer it was given. Called with `DRAIN` held.
    fn sink_settle() {
        let mut v = VIRTIO.lock();
        let Some(con) = v.as_mut() else { return };
        until_done_or_stalled(|| {
            con.reclaim();
            let left = con.in_flight();
            (left > 0).then_some(usize::from(left))
        });
    }

    /// After queuing: rings the drainer's doorbell unless it is awake.
    fn wake(drainer: u32) {
        fence(Ordering::SeqCst);
        if !DRAINER_AWAKE.load(Ordering::Relaxed) {
            instr::msgsnd_hyp(drainer);
        }
    }

    /// The drainer's idle work: drains in batches (a buffer's worth, or what
    /// gathered in `BATCH_US`) and stays awake `LINGER_US` after the ring
    /// empties, so a guest printing line after line neither rings a doorbell
    /// per line nor costs a device notify per line. Other threads just drain.
    pub fn serve() {
        if !is_drainer() {
            // Only when nobody else is the drainer: an idle thread about to run
            // its vCPU must not spend seconds feeding a slow console.
            if drainer().is_none() {
                drain();
            }
            return;
        }
        let us = crate::arch::ppc64::timer::ticks_per_us();
        let start = instr::mftb();
        DRAINER_AWAKE.store(true, Ordering::SeqCst);
        let mut idle_since = start;
        let mut pending_since: Option<u64> = None;
        loop {
            let now = instr::mftb();
            let queued = QUEUED.load(Ordering::Relaxed);
            if queued == 0 {
                pending_since = None;
                if now.wrapping_sub(idle_since) > LINGER_US * us {
                    break;
                }
            } else {
                let since = *pending_since.get_or_insert(now);
                if queued >= CHUNK || now.wrapping_sub(since) >= BATCH_US * us {
                    drain();
                    pending_since = None;
                    idle_since = instr::mftb();
                }
            }
            if now.wrapping_sub(start) > SERVE_US * us {
                break;
            }
            opal::heartbeat();
            // Look again only after a while: polling the producers' cache lines
            // non-stop would slow every store they make to them.
            while instr::mftb().wrapping_sub(now) < POLL_US * us {
                core::hint::spin_loop();
            }
        }
        DRAINER_AWAKE.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Whatever was queued before producers could see the flag clear; later
        // output rings the doorbell, which wakes the thread from `stop`.
        drain();
    }

    /// Copies everything queued to the sink, unless another thread is at it
    /// (which then also takes what this thread queued: it looks at the ring
    /// again after letting go of `DRAIN`).
    ///
    /// At most what was queued when it started, plus one chunk: producers that
    /// keep up with the sink cannot keep a thread draining for ever (whatever
    /// they add later is theirs to get moving, `settle`, or the drainer's).
    pub fn drain() {
        let mut budget = QUEUED.load(Ordering::Relaxed) + CHUNK;
        loop {
            let Some(mut guard) = DRAIN.try_lock() else {
                return;
            };
            DRAIN_OWNER.store(my_id(), Ordering::Relaxed);
            let chunk = &mut *guard;
            while budget > 0 {
                let n = match RING.lock().as_mut() {
                    Some(r) => {
                        let n = r.pop(chunk);
                        QUEUED.store(r.len(), Ordering::Relaxed);
                        n
                    }
                    None => 0,
                };
                if n == 0 {
                    break;
                }
                budget = budget.saturating_sub(n);
                sink_write(&chunk[..n]);
            }
            DRAIN_OWNER.store(0, Ordering::Relaxed);
            drop(guard);
            fence(Ordering::SeqCst);
            if budget == 0 || QUEUED.load(Ordering::Relaxed) == 0 {
                return;
            }
        }
    }

    /// Drains everything, waiting for another drainer to finish (power-off and the
    /// fault path). Gives up only when nothing moved for two seconds (neither the
    /// ring nor the sink, which may be in the middle of a long chunk on another
    /// thread), rather than hang on a wedged console.
    pub fn flush() {
        let mut left = usize::MAX;
        until_done_or_stalled(|| {
            drain();
            // Another thread holding the ring counts as no progress.
            if let Some(r) = RING.try_lock() {
                left = r.as_ref().map(|r| r.len()).unwrap_or(0);
            }
            if left == 0 {
                if let Some(_d) = DRAIN.try_lock() {
                    sink_settle();
                }
                return None;
            }
            Some((left, SINK_PROGRESS.load(Ordering::Relaxed)))
        });
    }

    /// Whether output is waiting.
    pub fn pending() -> bool {
        RING.try_lock()
            .is_some_and(|r| r.as_ref().is_some_and(|r| !r.is_empty()))
    }
}

#[cfg(target_arch = "powerpc64")]
pub use machine::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_copies_copy_every_length() {
        for n in 0..=40usize {
            let src: alloc::vec::Vec<u8> = (0..n as u8).map(|b| b ^ 0x5a).collect();
            let mut dst = alloc::vec![0u8; n];
            copy(&mut dst, &src);
            assert_eq!(dst, src, "length {n}");
        }
    }

    #[test]
    fn share_gives_a_burst_then_its_rate() {
        // 1000 ticks a second, 100 bytes a second, 300 at once.
        let (hz, rate, burst) = (1000, 100, 300);
        let mut s = Share::new();
        assert!(s.take(1, 200, hz, rate, burst));
        assert!(s.take(1, 100, hz, rate, burst));
        // The burst is spent: beyond the share, and the credit is gone.
        assert!(!s.take(1, 1, hz, rate, burst));
        // 100 ms later: 10 bytes of credit.
        assert!(!s.take(101, 11, hz, rate, burst));
        assert!(s.take(201, 10, hz, rate, burst));
        // A long pause refills no more than the burst.
        assert!(!s.take(1_000_000, 301, hz, rate, burst));
        assert!(s.take(2_000_000, 300, hz, rate, burst));
        // A steady sender at its rate stays within it.
        let mut s = Share::new();
        let mut now = 10;
        assert!(s.take(now, 300, hz, rate, burst));
        for _ in 0..100 {
            now += 100;
            assert!(s.take(now, 10, hz, rate, burst));
        }
    }

    #[test]
    fn fifo_order_and_wrap() {
        let mut r = ByteRing::new(8);
        assert_eq!(r.push(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(r.pop(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(r.push(b"ghijklmn"), 6); // wraps, 2 bytes did not fit
        assert_eq!(r.len(), 8);
        assert_eq!(r.free(), 0);
        let mut all = [0u8; 16];
        let n = r.pop(&mut all);
        assert_eq!(&all[..n], b"efghijkl");
        assert!(r.is_empty());
        assert_eq!(r.pop(&mut all), 0);
    }

    /// A big ring initialises nothing when created, and only what the first
    /// pass through it writes (boot time: the console's ring is megabytes).
    #[test]
    fn buffer_initialised_only_as_written() {
        let mut r = ByteRing::new(4 << 20);
        assert_eq!(r.capacity(), 4 << 20);
        assert_eq!(r.free(), 4 << 20);
        assert_eq!(r.buf.len(), 0);
        assert_eq!(r.push(b"hello"), 5);
        assert_eq!(r.buf.len(), ByteRing::GROW);
        let mut out = [0u8; 5];
        assert_eq!(r.pop(&mut out), 5);
        assert_eq!(&out, b"hello");
        assert_eq!(r.buf.len(), ByteRing::GROW);
        // A push across the initialised part's end initialises the next step.
        let big = [7u8; 40 << 10];
        assert_eq!(r.push(&big), big.len());
        assert_eq!(r.push(&big), big.len());
        assert_eq!(r.buf.len(), 2 * ByteRing::GROW);
        // Around the end: the first pass completes, then bytes are reused.
        let mut r = ByteRing::new(8);
        assert_eq!(r.push(b"abc"), 3);
        assert_eq!(r.pop(&mut [0u8; 3]), 3);
        assert_eq!(r.push(b"defghij"), 7);
        assert_eq!(r.buf.len(), 8);
        let mut all = [0u8; 8];
        let n = r.pop(&mut all);
        assert_eq!(&all[..n], b"defghij");
    }

    #[test]
    fn random_traffic_keeps_every_byte_in_order() {
        let mut r = ByteRing::new(37);
        let mut next_in = 0u8;
        let mut next_out = 0u8;
        let mut rng = crate::testutil::XorShift::new(0x1234_5678);
        for _ in 0..10_000 {
            let x = (rng.next_u64() >> 32) as u32;
            let mut data = [0u8; 20];
            let k = (x % 20) as usize;
            for b in data.iter_mut().take(k) {
                *b = next_in;
                next_in = next_in.wrapping_add(1);
            }
            let pushed = r.push(&data[..k]);
            next_in = next_in.wrapping_sub((k - pushed) as u8);
            let mut out = [0u8; 16];
            let n = r.pop(&mut out[..(x >> 8) as usize % 16]);
            for b in &out[..n] {
                assert_eq!(*b, next_out);
                next_out = next_out.wrapping_add(1);
            }
        }
    }
}
