//! system-reboot races (audit finding 10), over [`ROUNDS`] reboots of this
//! partition. The boot number survives a reboot in the partition's time of day
//! (the RTC is not reset by system-reboot): year 2090 + the reboots done.
//!
//! - Odd rounds: vCPU 1 loops RTAS start-cpu(0) while vCPU 0 calls system-reboot.
//!   A start that lands after the reboot stopped vCPU 0 names the old image: the
//!   hypervisor must drop it, so the next boot starts normally at the entry point
//!   (a hypervisor that kept it would start vCPU 0 in the secondary entry, or run
//!   it while the image is reloaded).
//! - Even rounds: both vCPUs call system-reboot at once; one reboot follows (the
//!   scenario forbids the hypervisor's `rebooting (boot ROUNDS + 2)` line).
//!
//! After each reboot: only vCPU 0 runs (vCPU 1 stays stopped) and a canary area
//! filled before the reboot, outside the image, reads zero.
use core::sync::atomic::{AtomicU32, Ordering};

use paprika_guest_rt::*;

/// Reboots done before the final boot: the scenario expects `rebooting (boot
/// ROUNDS + 1)` and forbids `(boot ROUNDS + 2)`.
pub const ROUNDS: i32 = 4;
const YEAR_BASE: i32 = 2090;
/// 1 MiB at 48 MiB: above the guest image, inside the 64 MiB partition.
const CANARY: u64 = 48 << 20;
const CANARY_LEN: u64 = 1 << 20;
/// About 0.3 s of the 512 MHz timebase.
const SETTLE_TB: u64 = 153_600_000;

static STARTER_RUNNING: AtomicU32 = AtomicU32::new(0);
static GO: AtomicU32 = AtomicU32::new(0);
static STACK_TOP: AtomicU32 = AtomicU32::new(0);

/// The reboots done so far, from the time of day (0 on the first boot).
pub fn reboots_done() -> i32 {
    let tod = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
    if tod[0] == 0 && (YEAR_BASE + 1..=YEAR_BASE + ROUNDS).contains(&tod[1]) {
        tod[1] - YEAR_BASE
    } else {
        0
    }
}

/// system-reboot with this vCPU's own argument buffer (the shared one's lock may
/// be held by the other vCPU, which never returns from its own RTAS call).
fn system_reboot(buf: *mut [u32; 4]) -> ! {
    let token = rtas_token("system-reboot").unwrap_or(0);
    // SAFETY: `buf` is a static only this vCPU uses.
    unsafe {
        (*buf)[0] = token.to_be();
        (*buf)[1] = 0;
        (*buf)[2] = 1u32.to_be();
    }
    loop {
        hcall(0xf000, &[buf as u64]);
    }
}

static mut BUF0: [u32; 4] = [0; 4];
static mut BUF1: [u32; 4] = [0; 4];
static mut START_BUF: [u32; 8] = [0; 8];

/// vCPU 1, odd rounds: start-cpu(0) at the secondary entry, over and over
/// (fails while vCPU 0 runs), with its own buffer.
fn starter() -> ! {
    let token = rtas_token("start-cpu").unwrap_or(0);
    let buf = &raw mut START_BUF;
    STARTER_RUNNING.store(1, Ordering::Release);
    loop {
        // SAFETY: only this vCPU uses START_BUF.
        unsafe {
            (*buf)[0] = token.to_be();
            (*buf)[1] = 3u32.to_be();
            (*buf)[2] = 1u32.to_be();
            (*buf)[3] = 0;
            (*buf)[4] = secondary_entry().to_be();
            (*buf)[5] = STACK_TOP.load(Ordering::Relaxed).to_be();
        }
        hcall(0xf000, &[buf as u64]);
    }
}

/// vCPU 1, even rounds: system-reboot together with vCPU 0.
fn rebooter() -> ! {
    STARTER_RUNNING.store(1, Ordering::Release);
    while GO.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    system_reboot(&raw mut BUF1)
}

fn vcpu1_stopped() -> bool {
    let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
    q[0] == 0 && q[1] == 0
}

/// Starts reboot round `round` (1-based) from vCPU 0; `start` starts vCPU 1 at
/// a function with the given stack top. Never returns (the partition reboots).
pub fn race(round: i32, stack_top: u32, start: impl FnOnce(fn() -> !) -> bool) -> ! {
    let set = rtas_call(
        "set-time-of-day",
        &[(YEAR_BASE + round) as u32, 1, 1, 0, 0, 0, 0],
        1,
    )
    .unwrap_or([-99; 8]);
    check(
        "reboot-mark-boot",
        set[0] == 0,
        format_args!("set-time-of-day status {}", set[0]),
    );
    for a in (CANARY..CANARY + CANARY_LEN).step_by(8) {
        // SAFETY: guest memory outside the image, used by nothing else.
        unsafe { core::ptr::write_volatile(a as *mut u64, 0xa5a5_5a5a_a5a5_5a5a) };
    }
    STACK_TOP.store(stack_top, Ordering::Relaxed);
    let concurrent = round % 2 == 0;
    let f: fn() -> ! = if concurrent { rebooter } else { starter };
    let started = start(f);
    let t = mftb();
    while STARTER_RUNNING.load(Ordering::Acquire) == 0 && mftb().wrapping_sub(t) < 4 * SETTLE_TB {
        core::hint::spin_loop();
    }
    check(
        if concurrent {
            "reboot-concurrent-start"
        } else {
            "reboot-start-cpu-race-start"
        },
        started && STARTER_RUNNING.load(Ordering::Acquire) == 1,
        format_args!("vCPU 1 did not start"),
    );
    println!("reboot round {}: rebooting", round);
    // Let vCPU 1 spin up its start-cpu loop (or reach GO), then reboot.
    let t = mftb();
    while mftb().wrapping_sub(t) < SETTLE_TB / 10 {
        core::hint::spin_loop();
    }
    GO.store(1, Ordering::Release);
    system_reboot(&raw mut BUF0)
}

/// Checks on the boot after reboot `round`: vCPU 0 started at the entry point
/// (we are here), vCPU 1 stays stopped, the canary reads zero.
pub fn after(round: i32) {
    println!("reboot round {}: boot {}", round, round + 1);
    let t = mftb();
    let mut stopped = true;
    while mftb().wrapping_sub(t) < SETTLE_TB {
        stopped &= vcpu1_stopped();
    }
    check(
        "reboot-only-vcpu0-runs",
        stopped,
        format_args!("vCPU 1 ran after reboot round {}", round),
    );
    let dirty = (CANARY..CANARY + CANARY_LEN)
        .step_by(8)
        // SAFETY: guest memory outside the image.
        .find(|&a| unsafe { core::ptr::read_volatile(a as *const u64) } != 0);
    check(
        "reboot-memory-scrubbed",
        dirty.is_none(),
        format_args!(
            "{:#x} not zero after reboot round {}",
            dirty.unwrap_or(0),
            round
        ),
    );
}
