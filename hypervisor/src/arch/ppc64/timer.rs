//! Decrementer (DEC) and hypervisor decrementer (HDEC).
//!
//! Both are 32-bit down-counters at timebase frequency here (LPCR[LD] clear); an
//! interrupt is pending while the value is negative, so handlers must write a
//! positive value (Book III 6.1). HDEC needs LPCR[HDICE]; in hypervisor state it is
//! taken when MSR[EE] is set.
use core::sync::atomic::{AtomicU64, Ordering};

use super::instr;
use super::percpu;
use super::spr;

/// Timebase ticks per microsecond (512 MHz on POWER9/Power10; from the FDT).
static TB_PER_US: AtomicU64 = AtomicU64::new(512);
/// Timebase at hypervisor entry.
static TB_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Ticks of the self-test's interrupts on every thread.
pub const SELFTEST_TICKS: u64 = 3;
const QUIET: u64 = 0x7fff_ffff;

pub fn set_frequency(hz: u64) {
    if hz >= 1_000_000 {
        TB_PER_US.store(hz / 1_000_000, Ordering::Relaxed);
    }
}

pub fn mark_entry(tb: u64) {
    TB_AT_ENTRY.store(tb, Ordering::Relaxed);
}

pub fn ticks_per_us() -> u64 {
    TB_PER_US.load(Ordering::Relaxed)
}

pub fn entry_tb() -> u64 {
    TB_AT_ENTRY.load(Ordering::Relaxed)
}

/// Microseconds since the hypervisor was entered.
pub fn uptime_us() -> u64 {
    instr::mftb().wrapping_sub(entry_tb()) / ticks_per_us()
}

pub fn us_to_ticks(us: u64) -> u64 {
    us.saturating_mul(ticks_per_us())
}

fn set_dec(ticks: u64) {
    // SAFETY: the decrementer only raises an interrupt this module handles.
    unsafe { spr::dec::write(ticks.min(QUIET)) };
}

fn set_hdec(ticks: u64) {
    // SAFETY: as for DEC; no guest runs yet, so HDEC is the hypervisor's own.
    unsafe { spr::hdec::write(ticks.min(QUIET)) };
}

/// Makes the decrementer wake this thread (from `stop`) in about `us`
/// microseconds; the interrupt handler silences it again.
pub fn wake_after_us(us: u64) {
    set_dec(us_to_ticks(us).max(1));
}

/// Silences both decrementers on this thread.
pub fn quiesce() {
    set_dec(QUIET);
    set_hdec(QUIET);
}

pub fn on_decrementer() {
    let n = percpu::current().map(|pc| pc.dec_ticks.fetch_add(1, Ordering::Relaxed) + 1);
    if n.unwrap_or(SELFTEST_TICKS) < SELFTEST_TICKS {
        set_dec(us_to_ticks(100));
    } else {
        set_dec(QUIET);
    }
}

pub fn on_hdecrementer() {
    let n = percpu::current().map(|pc| pc.hdec_ticks.fetch_add(1, Ordering::Relaxed) + 1);
    if n.unwrap_or(SELFTEST_TICKS) < SELFTEST_TICKS {
        set_hdec(us_to_ticks(100));
    } else {
        set_hdec(QUIET);
    }
}

/// Arms both decrementers and waits, with interrupts enabled, until each has fired
/// [`SELFTEST_TICKS`] times on this thread. Returns whether they did within
/// `timeout_us`.
pub fn selftest(timeout_us: u64) -> bool {
    let Some(pc) = percpu::current() else {
        return false;
    };
    let done = || {
        pc.dec_ticks.load(Ordering::Relaxed) >= SELFTEST_TICKS
            && pc.hdec_ticks.load(Ordering::Relaxed) >= SELFTEST_TICKS
    };
    let deadline = instr::mftb().wrapping_add(us_to_ticks(timeout_us));
    set_dec(us_to_ticks(50));
    set_hdec(us_to_ticks(70));
    instr::set_ee(true);
    while !done() && instr::mftb() < deadline {
        instr::hmt_low();
        core::hint::spin_loop();
    }
    instr::hmt_medium();
    instr::set_ee(false);
    quiesce();
    done()
}
