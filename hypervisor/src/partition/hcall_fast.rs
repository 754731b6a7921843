//! The hcall fast path: the hottest hcalls served straight from the exit vector.
//!
//! Under emulation every guest exit is expensive mostly because of what the
//! emulator does at mode switches (each `hrfid` and each interrupt takes QEMU's
//! global lock; each HDEC write re-arms a host timer), not because of the
//! instructions themselves. The full exit (`arch::ppc64::guest`) switches to the
//! host's translated context with one `hrfid`, saves and reloads the guest SPRs,
//! re-arms HDEC and enters the guest with a second `hrfid`. For `sc 1` with
//! H_PUT_TERM_CHAR or H_PROD in r3, the exit code instead saves only the registers
//! the ELFv2 ABI lets a callee clobber, and calls [`paprika_hcall_fast`] in real
//! mode on the host stack; if it handles the call, the guest resumes with one
//! `hrfid`.
//!
//! Conditions (all must hold; otherwise it returns 0 having changed nothing, and the
//! full exit runs as before):
//! - the thread serves a vCPU whose partition is running, the vCPU is runnable and
//!   has no XICS or XIVE interrupt to present (so `deliver_external` has nothing
//!   to do) and its partition no system reset to deliver; all of these are atomics,
//!   read without taking a lock (`vcpu::external_pending`);
//! - the call completes without waiting: H_PROD always does; H_PUT_TERM_CHAR when
//!   its arguments are valid and `Partition::console_put_nowait` can queue the
//!   output (console locks free - the partition's line, the log lock and the
//!   shared line state of `console::lines` - room in the ring, another thread
//!   draining it); it runs the same `console::lines` logic as the full path, so
//!   an open (shown) unfinished line is continued the same way.
//!   Invalid arguments take the full path, which returns the error code.
//!
//! What it relies on:
//! - Real mode with HV set ignores LPIDR, LPCR's translation fields and PIDR, so
//!   the guest's stay loaded; hypervisor data is reached through the linear map,
//!   whose top address bits real mode ignores. (When QEMU relocates the interrupt
//!   with the partition's AIL, the same code runs translated at the linked address
//!   in quadrant 3, which uses LPID 0 / PID 0 whatever LPIDR/PIDR hold, as the
//!   full exit path already relies on.) No SPR is read or written except
//!   HSRR0/1 (from SRR0/1, which `sc` set and the full path would also restore), so
//!   SRR0/1, SPRG0-3, DAR/DSISR, DEC, HDEC and the lazily switched registers are
//!   what the full path would have left too. HDEC keeps counting: the 10 ms slice
//!   still ends in an exit that polls OPAL.
//! - Interrupts stay off (MSR[EE] = 0): a doorbell (prod, stop, start) or HDEC that
//!   arrives meanwhile stays pending and exits the guest right after the resume.
//! - While it runs, `PerCpu::in_guest` is clear, so a fault here is reported as a
//!   hypervisor fault rather than taken for a guest exit.
//! - Results are those of `hcalls::dispatch`: r3 = status, r4-r7 = 0 on success;
//!   the partition's hcall count is incremented.
use crate::sync::LoadAcquire;
use core::sync::atomic::Ordering;

use super::hcalls;
use super::vcpu::{self, VcpuState};
use crate::arch::ppc64::guest::GuestRegs;
use crate::arch::ppc64::percpu;
use crate::papr::hcall as h;

/// Called by the exit path (`paprika_hcall_fast_entry`) in real mode, interrupts
/// off, with the exit's `GuestRegs` (r0-r12 saved). Returns 1 when the hcall was
/// served and the guest resumes, 0 when nothing was done.
#[no_mangle]
extern "C" fn paprika_hcall_fast(regs: *mut GuestRegs) -> u64 {
    u64::from(serve(regs).is_some())
}

fn serve(regs: *mut GuestRegs) -> Option<()> {
    let me = percpu::current()?;
    // An L2's `sc 1` is for its L1 (H_ENTER_NESTED returns it), never served here.
    if super::nested::in_l2(me.index) {
        return None;
    }
    let (p, v) = vcpu::assigned_to(me.index)?;
    // Anything the full entry path would deliver first: an XICS or XIVE
    // interrupt, a system reset (H_SIGNAL_SYS_RESET).
    if !p.is_running()
        || v.state() != VcpuState::Runnable
        || vcpu::external_pending(p, v)
        || p.sreset_pending.load_acquire() != 0
    {
        return None;
    }
    // SAFETY: `regs` is the vCPU context's `GuestRegs` this thread passed to
    // `paprika_guest_enter`; the thread is inside that call, so nothing else
    // uses it.
    let g = unsafe { &mut (*regs).gpr };
    let result = match g[3] {
        h::H_PUT_TERM_CHAR => {
            hcalls::check_term(g[4]).ok()?;
            let (buf, n) = h::unpack_term_chars(g[5], g[6], g[7]).ok()?;
            p.console_put_nowait(&buf[..n], me.index)?;
            [0; 4]
        }
        h::H_PROD => hcalls::prod(p, g[4]).ok()?,
        _ => return None,
    };
    p.hcalls.fetch_add(1, Ordering::Relaxed);
    g[3] = h::H_SUCCESS as u64;
    g[4..8].copy_from_slice(&result);
    Some(())
}
