//! H_LOGICAL_CI_LOAD is one access of the given size (audit finding 14): vCPU 1
//! keeps storing two doublewords whose halves differ while vCPU 0 reads the
//! location through the hcall; a byte copy could return a mix of the two.
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use paprika_guest_rt::*;
const A: u64 = 0x0000_0000_ffff_ffff;
const B: u64 = 0xffff_ffff_0000_0000;
/// About 1 s of the 512 MHz timebase.
const RUN_TB: u64 = 512_000_000;

#[repr(C, align(128))]
struct Line(u64);
static mut WORD: Line = Line(A);
static STOP: AtomicBool = AtomicBool::new(false);
static RUNNING: AtomicU32 = AtomicU32::new(0);

fn word() -> *mut u64 {
    (&raw mut WORD) as *mut u64
}

fn writer() -> ! {
    RUNNING.store(1, Ordering::Release);
    while !STOP.load(Ordering::Acquire) {
        // SAFETY: our own static, aligned; each store is one 8-byte access.
        unsafe {
            core::ptr::write_volatile(word(), B);
            core::ptr::write_volatile(word(), A);
        }
    }
    stop_self()
}

/// Runs on vCPU 0 with vCPU 1 stopped; `start` starts vCPU 1 at a function.
pub fn checks(start: impl FnOnce(fn() -> !) -> bool) {
    let started = start(writer);
    let t = mftb();
    while RUNNING.load(Ordering::Acquire) == 0 && mftb().wrapping_sub(t) < RUN_TB {
        core::hint::spin_loop();
    }
    let (mut reads, mut torn, mut seen_b) = (0u32, None, 0u32);
    let t = mftb();
    while started && mftb().wrapping_sub(t) < RUN_TB {
        let (rc, out) = hcall(H_LOGICAL_CI_LOAD, &[8, word() as u64]);
        reads += 1;
        // The hcall returns the doubleword big-endian; our stores are native.
        let v = if cfg!(target_endian = "little") {
            out[0].swap_bytes()
        } else {
            out[0]
        };
        if rc != H_SUCCESS || (v != A && v != B) {
            torn = Some((rc, v));
            break;
        }
        seen_b += u32::from(v == B);
    }
    STOP.store(true, Ordering::Release);
    check(
        "ci-load-single-copy",
        started && torn.is_none(),
        format_args!(
            "after {} reads: rc {} value {:#x}",
            reads,
            torn.unwrap_or((0, 0)).0,
            torn.unwrap_or((0, 0)).1
        ),
    );
    println!(
        "ci: {} H_LOGICAL_CI_LOAD reads racing vCPU 1's stores, {} saw its second value",
        reads, seen_b
    );
}
