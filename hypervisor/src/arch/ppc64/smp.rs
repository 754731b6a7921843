//! Bringing up every hardware thread, and inter-thread doorbells.
//!
//! The boot thread allocates a `PerCpu` and stacks for every thread the device tree
//! lists, publishes (PIR, PerCpu) pairs in `PAPRIKA_CPU_BOOT_TABLE`, and starts each
//! thread with `OPAL_START_CPU` at `paprika_secondary_entry`. The entry stub finds its
//! row by PIR, takes its stack and calls [`paprika_secondary_main`], which turns the
//! MMU on, reports online, runs the timer self-test and idles in `stop`, woken by
//! doorbells.
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::instr;
use super::percpu::{self, PerCpu};
use crate::info;

/// Most hardware threads Paprika manages (matches the host FDT parser's limit).
pub const MAX_CPUS: usize = crate::fdt::host::MAX_THREADS;

/// One row of the table the secondary entry stub searches: PIR, then the `PerCpu`.
#[repr(C)]
pub struct BootSlot {
    pub pir: AtomicU64,
    pub percpu: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise the table
const EMPTY_SLOT: BootSlot = BootSlot {
    pir: AtomicU64::new(u64::MAX),
    percpu: AtomicU64::new(0),
};

#[no_mangle]
pub static PAPRIKA_CPU_BOOT_TABLE: [BootSlot; MAX_CPUS] = [EMPTY_SLOT; MAX_CPUS];

/// Every thread's `PerCpu`, by logical index, published once bring-up starts.
static CPUS: spin::Once<alloc::vec::Vec<&'static PerCpu>> = spin::Once::new();

/// Set when the hypervisor is about to power off; idle threads stop waking up.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Threads that finished their timer self-test, and how many passed.
static TIMER_DONE: AtomicU32 = AtomicU32::new(0);
static TIMER_OK: AtomicU32 = AtomicU32::new(0);

/// Doorbell ping-pong state: the initiator's and responder's logical indices and the
/// replies received.
static PING_FROM: AtomicU32 = AtomicU32::new(u32::MAX);
static PING_TO: AtomicU32 = AtomicU32::new(u32::MAX);
static PONGS: AtomicU64 = AtomicU64::new(0);

/// Work an idle thread looks for each time it wakes (running its vCPU).
static IDLE_WORK: spin::Once<fn()> = spin::Once::new();

pub fn set_idle_work(f: fn()) {
    IDLE_WORK.call_once(|| f);
}

pub fn publish(cpus: alloc::vec::Vec<&'static PerCpu>) {
    CPUS.call_once(|| cpus);
}

pub fn cpus() -> &'static [&'static PerCpu] {
    CPUS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

pub fn online_count() -> usize {
    cpus().iter().filter(|c| c.is_online()).count()
}

pub fn timer_results() -> (u32, u32) {
    (
        TIMER_DONE.load(Ordering::Acquire),
        TIMER_OK.load(Ordering::Acquire),
    )
}

pub fn record_timer_result(ok: bool) {
    if ok {
        TIMER_OK.fetch_add(1, Ordering::AcqRel);
    }
    TIMER_DONE.fetch_add(1, Ordering::AcqRel);
}

pub fn begin_shutdown() {
    SHUTDOWN.store(true, Ordering::Release);
}

extern "C" {
    fn paprika_secondary_entry();
}

/// Real address OPAL_START_CPU should start threads at.
pub fn secondary_entry_real() -> u64 {
    crate::platform::opal::real(paprika_secondary_entry as *const u8)
}

/// Records `pc` in the boot table so the entry stub can find it by PIR.
pub fn register_boot_slot(slot: usize, pc: &'static PerCpu) -> bool {
    let Some(s) = PAPRIKA_CPU_BOOT_TABLE.get(slot) else {
        return false;
    };
    s.percpu
        .store(pc as *const PerCpu as u64, Ordering::Relaxed);
    s.pir.store(u64::from(pc.pir), Ordering::Release);
    true
}

/// Hypervisor doorbell (0xe80): clear it, count it, and take part in the ping-pong.
pub fn on_hyp_doorbell() {
    instr::msgclr_hyp();
    let Some(pc) = percpu::current() else { return };
    pc.doorbells.fetch_add(1, Ordering::Relaxed);
    if pc.index == PING_TO.load(Ordering::Acquire) {
        let from = PING_FROM.load(Ordering::Acquire);
        if let Some(peer) = cpus().get(from as usize) {
            instr::msgsnd_hyp(peer.pir);
        }
    } else if pc.index == PING_FROM.load(Ordering::Acquire) {
        PONGS.fetch_add(1, Ordering::AcqRel);
    }
}

/// Bounces `rounds` doorbells between this thread and `peer`, waiting up to
/// `timeout_us` for each reply. Returns the round trips completed and the total
/// timebase ticks they took.
pub fn doorbell_ping_pong(peer: &PerCpu, rounds: u64, timeout_us: u64) -> (u64, u64) {
    let Some(me) = percpu::current() else {
        return (0, 0);
    };
    PONGS.store(0, Ordering::Release);
    PING_FROM.store(me.index, Ordering::Release);
    PING_TO.store(peer.index, Ordering::Release);
    let start = instr::mftb();
    let mut done = 0;
    instr::set_ee(true);
    for round in 1..=rounds {
        instr::msgsnd_hyp(peer.pir);
        let deadline = instr::mftb().wrapping_add(super::timer::us_to_ticks(timeout_us));
        while PONGS.load(Ordering::Acquire) < round && instr::mftb() < deadline {
            core::hint::spin_loop();
        }
        if PONGS.load(Ordering::Acquire) < round {
            break;
        }
        done = round;
    }
    instr::set_ee(false);
    let ticks = instr::mftb().wrapping_sub(start);
    PING_TO.store(u32::MAX, Ordering::Release);
    PING_FROM.store(u32::MAX, Ordering::Release);
    (done, ticks)
}

/// Idles until shutdown: `stop` with interrupts masked, then a short window with
/// MSR[EE] set so whatever woke the thread (a doorbell) is handled. Waking on a
/// pending interrupt while EE is clear avoids the lost-wakeup race of enabling
/// interrupts before `stop`.
pub fn idle_loop() -> ! {
    loop {
        if let Some(work) = IDLE_WORK.get() {
            work();
        }
        if SHUTDOWN.load(Ordering::Acquire) {
            // A decrementer armed to wake this thread (console input polling)
            // would stay pending and keep `stop` from stopping.
            super::timer::quiesce();
            loop {
                instr::stop_lite();
            }
        }
        instr::stop_lite();
        instr::set_ee(true);
        instr::set_ee(false);
    }
}

/// Rust entry of a secondary thread (called by the stub with its `PerCpu`, real mode,
/// little-endian, on its own stack).
#[no_mangle]
extern "C" fn paprika_secondary_main(pc: &'static PerCpu) -> ! {
    // SAFETY: `pc` was allocated for this thread by the boot thread and lives forever.
    unsafe { percpu::install(pc) };
    super::timer::quiesce();
    super::mmu::enable_this_thread(pc);
    pc.online.store(true, Ordering::Release);
    let ok = super::timer::selftest(2_000_000);
    record_timer_result(ok);
    info!(
        "thread online: pir {:#x} (PIR register {:#x}) core {} thread {}, timer self-test {}",
        pc.pir,
        super::spr::pir::read(),
        pc.core,
        pc.thread,
        if ok { "ok" } else { "FAILED" }
    );
    idle_loop()
}
