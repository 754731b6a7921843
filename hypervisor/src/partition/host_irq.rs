//! Each hardware thread's host event queue for pass-through MSIs
//! (docs/passthrough.md "MSI"): set up on the thread the first time it runs a
//! vCPU of a partition with devices (`OPAL_XIVE_SET_QUEUE_INFO` for its PIR at
//! priority 7, 64 KiB of hypervisor memory), its physical ring's CPPR opened
//! through the TIMA; serviced only by that thread ([`service`]): acknowledge,
//! drain (`host_eq::EqCursor`), CPPR open again. Nothing here knows about
//! partitions: `passthrough::take_host_irqs` turns the events into guest
//! interrupts.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::host_eq::{self, Ack, EqCursor};
use crate::arch::ppc64::{percpu, smp};
use crate::platform::opal::xive as opal_xive;
use crate::{info, warn};

/// One hardware thread's queue. `page` and `pir` are published (Release on
/// `ready`) for the threads routing sources to it; `index`/`toggle` belong to
/// the thread alone.
struct ThreadEq {
    ready: AtomicBool,
    /// Setting it up failed: not tried again.
    failed: AtomicBool,
    page: AtomicU64,
    pir: AtomicU32,
    /// The consumer position: index | toggle << 31.
    cursor: AtomicU32,
    /// Physical-ring acknowledges that found a signal (debug).
    acks: AtomicU64,
}

static THREADS: [ThreadEq; smp::MAX_CPUS] = [const {
    ThreadEq {
        ready: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        page: AtomicU64::new(0),
        pir: AtomicU32::new(0),
        cursor: AtomicU32::new(0),
        acks: AtomicU64::new(0),
    }
}; smp::MAX_CPUS];

/// The host XIVE is in exploitation mode with its TIMA mapped (set by
/// `passthrough::prepare_msi`).
static HOST_XIVE: AtomicBool = AtomicBool::new(false);

pub fn set_available() {
    HOST_XIVE.store(true, Ordering::Release);
}

pub fn available() -> bool {
    HOST_XIVE.load(Ordering::Acquire) && opal_xive::tima_ready()
}

/// On the calling thread: makes sure it has its host queue and an open
/// physical ring. Whether it does.
#[inline(never)]
#[cold]
pub fn thread_init() -> bool {
    let Some(me) = percpu::current() else {
        return false;
    };
    let Some(t) = THREADS.get(me.index as usize) else {
        return false;
    };
    if t.ready.load(Ordering::Acquire) {
        return true;
    }
    if t.failed.load(Ordering::Relaxed) || !available() {
        return false;
    }
    let size = 1u64 << host_eq::QUEUE_SHIFT;
    let page = match crate::mm::alloc_frames(size, size) {
        Ok(pa) => pa,
        Err(e) => {
            warn!(
                "host-irq: thread {}: no memory for its queue ({e:?})",
                me.index
            );
            t.failed.store(true, Ordering::Relaxed);
            return false;
        }
    };
    crate::mm::zero_phys(page, size);
    if let Err(e) = opal_xive::set_queue_info(
        me.pir,
        host_eq::HOST_PRIORITY,
        page,
        host_eq::QUEUE_SHIFT,
        opal_xive::EQ_ENABLED | opal_xive::EQ_ALWAYS_NOTIFY,
    ) {
        warn!(
            "host-irq: thread {} (PIR {:#x}): OPAL_XIVE_SET_QUEUE_INFO failed ({e:?}): its MSIs are polled",
            me.index, me.pir
        );
        t.failed.store(true, Ordering::Relaxed);
        return false;
    }
    t.page.store(page, Ordering::Relaxed);
    t.pir.store(me.pir, Ordering::Relaxed);
    t.cursor.store(0, Ordering::Relaxed);
    t.ready.store(true, Ordering::Release);
    // Open the physical ring last: an event already queued signals now.
    opal_xive::tima_set_phys_cppr(0xff);
    info!(
        "PAPRIKA host-irq: thread {} (PIR {:#x}) queue at {:#x}, priority {}",
        me.index,
        me.pir,
        page,
        host_eq::HOST_PRIORITY
    );
    true
}

/// The PIR (host VP) of thread `index` if its queue is set up.
pub fn thread_vp(index: u32) -> Option<u32> {
    let t = THREADS.get(index as usize)?;
    t.ready
        .load(Ordering::Acquire)
        .then(|| t.pir.load(Ordering::Relaxed))
}

/// This thread has a queue (cheap: one load).
#[inline]
pub fn here() -> bool {
    this().is_some()
}

fn this() -> Option<&'static ThreadEq> {
    let t = THREADS.get(percpu::cpu_index() as usize)?;
    t.ready.load(Ordering::Acquire).then_some(t)
}

fn word(page: u64, i: u32) -> u32 {
    let va = crate::mm::LINEAR_BASE | (page + 4 * u64::from(i));
    // SAFETY: `page` is this thread's queue, hypervisor memory it owns for
    // ever (`thread_init`); the XIVE writes whole aligned entries.
    u32::from_be(unsafe { core::ptr::read_volatile(va as *const u32) })
}

fn cursor(raw: u32) -> EqCursor {
    EqCursor::at(raw & 0x7fff_ffff, raw >> 31 != 0, host_eq::QUEUE_ENTRIES)
}

fn raw(c: &EqCursor) -> u32 {
    c.index() | (u32::from(c.toggle()) << 31)
}

/// An event waits in this thread's queue (a memory load, no MMIO).
#[inline]
pub fn pending_here() -> bool {
    let Some(t) = this() else { return false };
    let c = cursor(t.cursor.load(Ordering::Relaxed));
    c.is_new(word(t.page.load(Ordering::Relaxed), c.index()))
}

/// On the calling thread: acknowledges its physical ring, hands every queued
/// event's data (the host interrupt number) to `event`, and opens the ring
/// again (an event queued after the drain signals again then: its IPB bit
/// stayed set). How many events there were.
///
/// The caller is the thread's run loop or idle loop, never an interrupt
/// handler (the hypervisor's LPCR has no HVICE), so the queue has one
/// consumer and no re-entry.
pub fn service(mut event: impl FnMut(u32)) -> u32 {
    let Some(t) = this() else {
        // No queue here, so no ring Paprika opened: a signal (none is
        // expected) is acknowledged, which leaves the CPPR closed to it.
        let _ = opal_xive::tima_ack_phys();
        return 0;
    };
    let ack = opal_xive::tima_ack_phys();
    match host_eq::decode_ack(ack) {
        Ack::None => {}
        Ack::Phys(_) => {
            t.acks.fetch_add(1, Ordering::Relaxed);
        }
        Ack::Other(he) => {
            crate::debug!("host-irq: unexpected physical-ring signal HE={he} ({ack:#x})");
        }
    }
    let page = t.page.load(Ordering::Relaxed);
    let mut c = cursor(t.cursor.load(Ordering::Relaxed));
    let n = c.drain(|i| word(page, i), &mut event);
    t.cursor.store(raw(&c), Ordering::Relaxed);
    opal_xive::tima_set_phys_cppr(0xff);
    n
}
