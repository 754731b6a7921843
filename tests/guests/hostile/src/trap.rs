//! The hostile guest's interrupt handling. Whatever the fuzzer provokes in its
//! own vCPU must be survivable: system resets (H_SIGNAL_SYS_RESET), external
//! interrupts (its own XIVE/XICS configuration), decrementer, watchpoint and
//! breakpoint hits (its own DAWR/CIABR), performance monitor alerts, doorbells,
//! and the faults it provokes on purpose (refused MMIO, trapped SPR writes,
//! garbage translations), which are skipped. Anything else is a failure (the
//! runtime prints `GUEST-FAIL trap: ...`).
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use paprika_guest_rt::*;

/// Index of the vCPU running this code: vCPU 1 runs on its own static stack.
pub fn cpu() -> usize {
    let sp: u64;
    // SAFETY: reads r1.
    unsafe { asm!("mr {0}, 1", out(reg) sp, options(nomem, nostack)) };
    let (lo, hi) = crate::secondary_stack();
    usize::from(sp >= lo && sp < hi)
}

/// Per vCPU: the next fault is provoked on purpose; skip the instruction.
static SKIP: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
/// Per vCPU and kind: interrupts taken (sreset, dsi, dabr, program, facility,
/// external, dec, trace, pmi, doorbell, align, other).
pub static TAKEN: [[AtomicU64; 12]; 2] = [const { [const { AtomicU64::new(0) }; 12] }; 2];
pub static TIMA_OS: AtomicU64 = AtomicU64::new(0);

fn count(kind: usize) {
    TAKEN[cpu()][kind].fetch_add(1, Ordering::Relaxed);
}

pub fn taken(cpu: usize, kind: usize) -> u64 {
    TAKEN[cpu][kind].load(Ordering::Relaxed)
}

/// Runs `f` expecting it may fault once (DSI, program, alignment or facility
/// unavailable): the faulting instruction is skipped. Returns whether it did.
pub fn may_fault(f: impl FnOnce()) -> bool {
    let c = cpu();
    SKIP[c].store(1, Ordering::SeqCst);
    f();
    SKIP[c].swap(0, Ordering::SeqCst) == 2
}

fn skip(srr0: &mut u64, kind: usize) -> bool {
    let c = cpu();
    if SKIP[c].load(Ordering::SeqCst) == 1 {
        SKIP[c].store(2, Ordering::SeqCst);
        *srr0 += 4;
        count(kind);
        true
    } else {
        false
    }
}

/// Turns off what the fuzzer may have left armed that keeps interrupting:
/// watchpoint, breakpoint, interrupt priorities.
fn quiesce_interrupts() {
    hcall(0x68, &[0]); // H_CPPR 0: XICS presents nothing
    let os = TIMA_OS.load(Ordering::Relaxed);
    if os != 0 {
        // XIVE OS ring CPPR = 0 (byte 0x11 of QW1).
        crate::mmio::store(os + 0x11, 1, 0, false);
    }
}

fn on_trap(vector: u64, srr0: &mut u64) -> bool {
    match vector {
        0x100 => {
            count(0);
            true
        }
        0x300 => {
            // DSISR bit 41 (IBM; 0x0040_0000): DAWR/DABR match.
            if mfspr_dsisr() & 0x0040_0000 != 0 {
                count(2);
                hcall(0x31c, &[0, 2, 0, 0]);
                hcall(0x28, &[0]);
                return true;
            }
            skip(srr0, 1)
        }
        // Data/instruction segment: a translated access beyond the radix tree's
        // effective address range (its garbage translation).
        0x380 | 0x480 => skip(srr0, 1),
        // A machine check for an access outside its memory (what PowerVM and
        // KVM give; a DSI before that was changed): provoked, skipped.
        0x200 => skip(srr0, 1),
        0x600 => skip(srr0, 10),
        0x700 => skip(srr0, 3),
        0xf20 | 0xf40 | 0xf60 | 0x800 => skip(srr0, 4),
        0x500 => {
            count(5);
            quiesce_interrupts();
            true
        }
        0x900 => {
            count(6);
            set_dec(0x7fff_ffff);
            true
        }
        0xd00 => {
            count(7);
            hcall(0x31c, &[0, 1, 0, 0]);
            true
        }
        0xf00 => {
            count(8);
            // Freeze the counters and clear the alert (MMCR0 = FC).
            may_fault(|| {
                // SAFETY: the guest's own performance monitor.
                unsafe { asm!("mtspr 795, {0}", in(reg) 0x8000_0000u64, options(nostack)) }
            });
            true
        }
        0xa00 => {
            count(9);
            // A directed privileged doorbell: clear it (a hypervisor that
            // emulates the doorbell may trap msgclrp too: skipped).
            may_fault(|| {
                // SAFETY: clears this thread's doorbell (`msgclrp r5`, RB = type
                // 5, encoded).
                unsafe { asm!(".long 0x7c00295c", in("r5") 5u64 << 27, options(nostack)) }
            });
            true
        }
        _ => false,
    }
}

pub fn install() {
    set_trap_handler(on_trap);
}
