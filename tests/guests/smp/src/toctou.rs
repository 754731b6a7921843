//! The MMIO emulation's instruction re-fetch (audit finding 9): Paprika decodes
//! the instruction behind an HDSI by reading it again from guest memory, so
//! another vCPU can rewrite it between the access and the fetch. vCPU 1 keeps
//! flipping the word at L between `lbz r3,0(r4)` and `stb r3,0(r5)` while vCPU 0
//! runs L with r4 = LISN 0's ESB trigger page and r5 = ordinary memory. A load
//! from a trigger page changes nothing (it reads all ones); a store triggers the
//! source, PQ 00 -> 10. vCPU 0 only ever stores to memory, so PQ must stay 00:
//! a hypervisor that emulated the fetched `stb` for the faulting load (HDSISR
//! says load) would set P. A refused access comes back as a data storage
//! interrupt, which vCPU 0 counts and steps over.
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use paprika_guest_rt::mmio::in_be64;
use paprika_guest_rt::*;
const ESB_GET: u64 = 0x800;
const ESB_SET_PQ_00: u64 = 0xc00;
/// `lbz r3,0(r4)` and `stb r3,0(r5)`, then `blr`.
const LBZ: u32 = 0x8864_0000;
const STB: u32 = 0x9865_0000;
const BLR: u32 = 0x4e80_0020;
/// About 3 s of the 512 MHz timebase.
const RUN_TB: u64 = 1_536_000_000;

#[repr(C, align(4096))]
struct Code([u32; 1024]);
/// L: the flipped word, then `blr` (BSS; real mode runs it as code).
static mut CODE: Code = Code([0; 1024]);
static mut SCRATCH: u64 = 0;

static STOP: AtomicBool = AtomicBool::new(false);
static FLIPS: AtomicU32 = AtomicU32::new(0);
static DSIS: AtomicU32 = AtomicU32::new(0);

fn code() -> *mut u32 {
    (&raw mut CODE) as *mut u32
}

/// Stores `word` at L and makes it visible to instruction fetch (Book II 1.6).
fn put_insn(word: u32) {
    let at = code();
    // SAFETY: L is our own static; the sequence is the architected one for
    // modified instructions.
    unsafe {
        core::ptr::write_volatile(at, word);
        core::arch::asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", "isync",
            in(reg) at as u64, options(nostack));
    }
}

fn flipper() -> ! {
    while !STOP.load(Ordering::Acquire) {
        put_insn(STB);
        put_insn(LBZ);
        FLIPS.fetch_add(1, Ordering::Relaxed);
    }
    stop_self()
}

/// A refused access at L: count it and go on after it.
fn on_trap(vector: u64, srr0: &mut u64) -> bool {
    if vector != 0x300 || *srr0 != code() as u64 {
        return false;
    }
    DSIS.fetch_add(1, Ordering::AcqRel);
    *srr0 += 4;
    true
}

/// Runs on vCPU 0 with vCPU 1 stopped; `start` starts vCPU 1 at a function.
pub fn checks(start: impl FnOnce(fn() -> !) -> bool) {
    let (rc, info) = hcall(H_INT_GET_SOURCE_INFO, &[0, 0]);
    let (mgmt, trig) = (info[1], info[2]);
    // PQ 00 (the reset state is 01, off): a trigger would set P.
    in_be64(mgmt + ESB_SET_PQ_00);
    let pq0 = in_be64(mgmt + ESB_GET) & 3;
    check(
        "toctou-setup",
        rc == H_SUCCESS && pq0 == 0,
        format_args!("rc {} PQ {:#x}", rc, pq0),
    );
    put_insn(LBZ);
    // SAFETY: as in `put_insn`.
    unsafe { core::ptr::write_volatile(code().wrapping_add(1), BLR) };
    put_insn(LBZ);
    set_trap_handler(on_trap);
    let started = start(flipper);
    check(
        "toctou-start-flipper",
        started,
        format_args!("start-cpu failed"),
    );
    // SAFETY: L holds `lbz r3,0(r4)` or `stb r3,0(r5)` then `blr` (ELFv2: a
    // plain code address; r3-r5 are the arguments).
    let l: extern "C" fn(u64, u64, u64) -> u64 = unsafe {
        core::mem::transmute::<usize, extern "C" fn(u64, u64, u64) -> u64>(code() as usize)
    };
    let scratch = (&raw mut SCRATCH) as u64;
    let t0 = mftb();
    let mut runs = 0u32;
    let mut changed = None;
    while started && mftb().wrapping_sub(t0) < RUN_TB {
        l(0, trig, scratch);
        runs += 1;
        let pq = in_be64(mgmt + ESB_GET) & 3;
        if pq != 0 {
            changed = Some(pq);
            break;
        }
    }
    STOP.store(true, Ordering::Release);
    check(
        "toctou-no-fake-store",
        changed.is_none(),
        format_args!(
            "PQ became {:#x} after {} runs of L ({} flips, {} refused)",
            changed.unwrap_or(0),
            runs,
            FLIPS.load(Ordering::Relaxed),
            DSIS.load(Ordering::Relaxed)
        ),
    );
    println!(
        "toctou: {} runs of L, {} flips by vCPU 1, {} accesses refused (DSI)",
        runs,
        FLIPS.load(Ordering::Relaxed),
        DSIS.load(Ordering::Relaxed)
    );
    let stopped = {
        let t = mftb();
        loop {
            let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
            if q[0] == 0 && q[1] == 0 {
                break true;
            }
            if mftb().wrapping_sub(t) > RUN_TB {
                break false;
            }
        }
    };
    check(
        "toctou-flipper-stopped",
        stopped,
        format_args!("vCPU 1 still running"),
    );
}
