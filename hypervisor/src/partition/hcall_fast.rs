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
//! `hrfid`. H_RPT_INVALIDATE of a radix partition is served here too: a radix
//! Linux makes one per page-table change it must make visible (every code
//! patch at boot: about 34,000), and `partition::tlb` usually serves it with a
//! `tlbiel` on this thread.
//!
//! Conditions (all must hold; otherwise it returns 0 having changed nothing, and the
//! full exit runs as before):
//! - the thread serves a vCPU whose partition is running, the vCPU is runnable and
//!   has no XICS or XIVE interrupt to present (so `deliver_external` has nothing
//!   to do) and its partition no system reset to deliver; all of these are atomics,
//!   read without taking a lock (`vcpu::external_pending`);
//! - the call was not reflected by an ultravisor (SRR1[S] clear; read only when
//!   one is present): a secure VM's hcalls are answered through UV_RETURN, which
//!   only the full path does (`guest::enter_uv`);
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
//!   what the full path would have left too (H_RPT_INVALIDATE also reads the
//!   PVR when it broadcasts, and its `tlbiel` takes the guest's LPID from
//!   LPIDR). HDEC keeps counting: the 10 ms slice still ends in an exit that
//!   polls OPAL.
//! - Interrupts stay off (MSR[EE] = 0): a doorbell (prod, stop, start) or HDEC that
//!   arrives meanwhile stays pending and exits the guest right after the resume.
//! - While it runs, `PerCpu::in_guest` is clear, so a fault here is reported as a
//!   hypervisor fault rather than taken for a guest exit.
//! - Results are those of `hcalls::dispatch`: r3 = status, r4-r7 = 0 on success.
use core::sync::atomic::{fence, Ordering};

use super::hcalls;
use super::vcpu;
use crate::arch::ppc64::guest::GuestRegs;
use crate::arch::ppc64::percpu;
use crate::papr::hcall as h;

/// Called by the exit path (`paprika_hcall_fast_entry`) in real mode, interrupts
/// off, with the exit's `GuestRegs` (r0-r10 saved; r11, r12 and CR are in
/// `me`'s spill slots) and this thread's `PerCpu` (the exit path's r13). Returns
/// 1 when the hcall was served, and the exit path resumes the guest with
/// H_SUCCESS in r3 and r4-r7 = 0; 0 when nothing was done.
#[no_mangle]
extern "C" fn paprika_hcall_fast(regs: *mut GuestRegs, me: &'static percpu::PerCpu) -> u64 {
    u64::from(serve(regs, me).is_some())
}

/// Kept lean (issue 16: under 150 hypervisor instructions per null hcall,
/// counted by `cargo xtask bench` under QEMU `-icount`): the checks are relaxed
/// loads ordered by one acquire fence, H_PROD is served inline (prodding itself,
/// Linux's usual case, needs no doorbell), the console call and the doorbell are
/// out of line, and the results (always H_SUCCESS, no return values) are set by
/// the exit path.
#[inline(always)]
fn serve(regs: *mut GuestRegs, me: &percpu::PerCpu) -> Option<()> {
    // An L2's `sc 1` is for its L1 (H_ENTER_NESTED returns it), never served here.
    if super::nested::in_l2(me) {
        return None;
    }
    let (p, v) = vcpu::assigned_to(me.index)?;
    // Anything the full entry path would deliver first: an XICS or XIVE
    // interrupt, a system reset (H_SIGNAL_SYS_RESET). Relaxed loads, then one
    // acquire fence: the ordering of `is_running`, `state`, `external_pending`
    // and the acquire load of `sreset_pending`, with one `lwsync`.
    if !p.is_running_relaxed()
        || !v.runnable_relaxed()
        || v.xics_pending.load(Ordering::Relaxed)
        || p.xive.pending_relaxed(v.id)
        || p.sreset_pending.load(Ordering::Relaxed) != 0
        // A call the ultravisor reflected goes back through UV_RETURN (full path).
        || (p.uv.with_ultravisor()
            && crate::arch::ppc64::spr::srr1::read() & crate::uv::partition::MSR_S != 0)
    {
        return None;
    }
    fence(Ordering::Acquire);
    // SAFETY: `regs` is the vCPU context's `GuestRegs` this thread passed to
    // `paprika_guest_enter`; the thread is inside that call, so nothing else
    // uses it.
    let g = unsafe { &(*regs).gpr };
    match g[3] {
        h::H_PUT_TERM_CHAR => put_term_char(p, me.index, g)?,
        h::H_PROD => {
            // As `hcalls::prod`; an unknown target takes the full path, which
            // returns H_PARAMETER. Prodding itself (the caller runs on this
            // thread, which alone reads its own flag) needs no ordering and no
            // doorbell.
            if g[4] == u64::from(v.id) {
                v.prodded.store(true, Ordering::Relaxed);
            } else {
                let t = p.vcpus.iter().find(|t| u64::from(t.id) == g[4])?;
                t.prodded.store(true, Ordering::Release);
                if t.thread != me.index {
                    kick(t);
                }
            }
        }
        h::H_RPT_INVALIDATE => rpt_invalidate(p, v, g)?,
        _ => return None,
    }
    Some(())
}

/// H_RPT_INVALIDATE of a radix partition's own translations, as
/// `hcalls::rpt_invalidate` serves it (`hcalls::serve_rpt`). A NESTED request,
/// a hash partition and any argument error take the full path. In real mode
/// the local invalidation does not cost the hypervisor its own translations
/// (under QEMU a by-PID `tlbiel` empties the thread's whole software TLB,
/// which the full path, running translated, then refills entry by entry).
#[inline(never)]
fn rpt_invalidate(p: &super::lpar::Partition, v: &vcpu::Vcpu, g: &[u64; 32]) -> Option<()> {
    if g[6] & h::H_RPTI_TYPE_NESTED != 0 || p.hash_active() {
        return None;
    }
    let what = h::decode_rpt_invalidate(g[4], g[5], g[6], g[7], g[8], g[9]).ok()?;
    hcalls::serve_rpt(p, v, what);
    Some(())
}

#[inline(never)]
fn put_term_char(p: &super::lpar::Partition, thread: u32, g: &[u64; 32]) -> Option<()> {
    hcalls::check_term(g[4]).ok()?;
    let (buf, n) = h::unpack_term_chars(g[5], g[6], g[7]).ok()?;
    p.console_put_nowait(&buf[..n], thread)
}

#[cold]
#[inline(never)]
fn kick(t: &vcpu::Vcpu) {
    t.kick();
}
