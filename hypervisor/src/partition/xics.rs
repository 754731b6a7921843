//! The partition's XICS (`papr::xics`): the H_XIRR/H_EOI/H_CPPR/H_IPI/H_IPOLL
//! hcalls, the ibm,set-xive/get-xive/int-off/int-on RTAS calls and source
//! triggers, applied to the model under `Partition::xics`.
//!
//! Every vCPU entry asks whether an external interrupt is due
//! (`vcpu::external_pending`, also from the hcall fast path), so that answer is
//! kept per vCPU in `Vcpu::xics_pending` and read without the lock: each change
//! to the model goes through [`with_xics`], which refreshes the flags before the
//! lock is released and kicks each vCPU that now has an interrupt to take. Lock
//! order: the XICS lock is never held with another partition lock.
use core::sync::atomic::Ordering;

use super::hcalls::vcpu_by_id;
use super::lpar::Partition;
use super::vcpu::Vcpu;
use crate::arch::ppc64::instr;
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::rtas::{self as r, RtasArgs, RtasCall};
use crate::papr::xics::{Xics, XicsError};

/// Runs `f` on the model, then refreshes every vCPU's `xics_pending` and kicks
/// those whose interrupt just became due (the caller's own thread is not kicked:
/// it checks on its next entry).
pub fn with_xics<R>(p: &Partition, f: impl FnOnce(&mut Xics) -> R) -> R {
    publish(p, p.xics.lock(), f)
}

/// [`with_xics`] only if the lock is free now (`None` otherwise).
pub fn try_with_xics<R>(p: &Partition, f: impl FnOnce(&mut Xics) -> R) -> Option<R> {
    Some(publish(p, p.xics.try_lock()?, f))
}

fn publish<R>(
    p: &Partition,
    mut x: spin::MutexGuard<'_, Xics>,
    f: impl FnOnce(&mut Xics) -> R,
) -> R {
    let result = f(&mut x);
    for v in &p.vcpus {
        let now = x.pending(v.id);
        if v.xics_pending.swap(now, Ordering::AcqRel) != now && now {
            v.kick();
        }
    }
    result
}

/// Source `nr` fires (device input); harmless when it is masked or the guest
/// uses XIVE (the source then only stays pending, masked).
pub fn trigger(p: &Partition, nr: u32) {
    let _ = with_xics(p, |x| x.trigger(nr));
}

fn hcall_error(_: XicsError) -> HcallError {
    HcallError::Parameter
}

pub fn xirr(p: &Partition, v: &Vcpu, with_tb: bool) -> HcallResult {
    let xirr = with_xics(p, |x| x.accept(v.id)).map_err(hcall_error)?;
    Ok([
        u64::from(xirr),
        if with_tb { instr::mftb() } else { 0 },
        0,
        0,
    ])
}

pub fn ipoll(p: &Partition, server: u64) -> HcallResult {
    let server = u32::try_from(server).map_err(|_| HcallError::Parameter)?;
    let (xirr, mfrr) = p.xics.lock().poll(server).map_err(hcall_error)?;
    Ok([u64::from(xirr), u64::from(mfrr), 0, 0])
}

pub fn cppr(p: &Partition, v: &Vcpu, cppr: u64) -> HcallResult {
    with_xics(p, |x| x.set_cppr(v.id, cppr)).map_err(hcall_error)?;
    Ok([0; 4])
}

pub fn eoi(p: &Partition, v: &Vcpu, xirr: u64) -> HcallResult {
    with_xics(p, |x| x.eoi(v.id, xirr)).map_err(hcall_error)?;
    Ok([0; 4])
}

pub fn ipi(p: &Partition, server: u64, mfrr: u64) -> HcallResult {
    let t = vcpu_by_id(p, server).ok_or(HcallError::Parameter)?;
    with_xics(p, |x| x.set_mfrr(t.id, mfrr)).map_err(hcall_error)?;
    Ok([0; 4])
}

/// ibm,set-xive (source, server, priority), ibm,get-xive (source -> server,
/// priority), ibm,int-off and ibm,int-on (source). Argument counts, and bad
/// sources, servers or priorities, get -3, as in QEMU's xics_spapr.c.
pub fn rtas(p: &Partition, c: RtasCall, a: &mut RtasArgs) {
    let arg = |i| a.arg(i).unwrap_or(0);
    let (nargs, nret) = match c {
        RtasCall::SetXive => (3, 1),
        RtasCall::GetXive => (1, 3),
        _ => (1, 1),
    };
    if a.nargs != nargs || a.nret != nret {
        a.set_status(r::RTAS_PARAMETER_ERROR);
        return;
    }
    let (nr, server, priority) = (arg(0), arg(1), arg(2));
    let done = match c {
        RtasCall::SetXive => with_xics(p, |x| x.set_xive(nr, server, priority)),
        RtasCall::IntOff => with_xics(p, |x| x.int_off(nr)),
        RtasCall::IntOn => with_xics(p, |x| x.int_on(nr)),
        RtasCall::GetXive => p.xics.lock().get_xive(nr).map(|(server, priority)| {
            a.set_ret(1, server);
            a.set_ret(2, u32::from(priority));
        }),
        _ => Err(XicsError::Source),
    };
    if c == RtasCall::SetXive && done.is_ok() {
        // A pass-through vector's host route follows the guest's server.
        super::passthrough::retarget(p, nr);
    }
    a.set_status(match done {
        Ok(()) => r::RTAS_SUCCESS,
        Err(_) => r::RTAS_PARAMETER_ERROR,
    });
}
