//! hcall dispatch for a vCPU (`sc 1`): r3 = opcode, arguments r4-r12, status back
//! in r3 and results from r4. Argument checking lives in `papr::hcall` (portable);
//! this file applies the decisions to the partition.
use core::sync::atomic::Ordering;

use super::lpar::Partition;
use super::vcpu::{self, Next, Vcpu, VcpuContext};
use crate::arch::ppc64::instr;
use crate::papr::hcall::{self as h, HcallError, HcallResult};

/// Handles the hcall in `ctx` and sets the guest's r3 (and r4...).
pub fn dispatch(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext) -> Next {
    let g = ctx.regs.gpr;
    let op = g[3];
    let result: HcallResult = match op {
        h::H_PUT_TERM_CHAR => put_term_char(p, g[4], g[5], g[6], g[7]),
        h::H_GET_TERM_CHAR => get_term_char(p, g[4]),
        h::H_RANDOM => random(),
        h::H_SET_MODE => set_mode(p, g[4], g[5], g[6], g[7]),
        h::H_REGISTER_PROC_TBL => register_proc_tbl(p, g[4], g[5], g[6], g[7]),
        h::H_CEDE => {
            // H_CEDE enables external interrupts in the caller (PAPR 14.11.3.3).
            ctx.regs.msr |= crate::arch::ppc64::regs::Msr::EE.bits();
            vcpu::cede(p, v, ctx);
            Ok([0; 4])
        }
        h::H_PROD => prod(p, g[4]),
        h::H_XIRR => super::xics::xirr(p, v, false),
        h::H_XIRR_X => super::xics::xirr(p, v, true),
        h::H_IPOLL => super::xics::ipoll(p, g[4]),
        h::H_CPPR => super::xics::cppr(p, v, g[4]),
        h::H_EOI => super::xics::eoi(p, v, g[4]),
        h::H_IPI => super::xics::ipi(p, g[4], g[5]),
        h::H_CONFER => confer(p, g[4]),
        h::H_GET_CPU_CHARACTERISTICS => cpu_characteristics(),
        h::H_PAGE_INIT => page_init(p, g[4], g[5], g[6]),
        h::H_REGISTER_VPA => register_vpa(p, g[4], g[5], g[6]),
        h::H_RPT_INVALIDATE => rpt_invalidate(p, v, &g[4..10]),
        h::H_LOGICAL_CI_LOAD => ci_load(p, g[4], g[5]),
        h::H_LOGICAL_CI_STORE => ci_store(p, g[4], g[5], g[6]),
        op if (h::H_INT_GET_SOURCE_INFO..=h::H_INT_RESET).contains(&op) => {
            xive_hcall(p, op, &g[4..10])
        }
        // The test-hooks build's hcall that stops the caller's partition with a
        // fault, for the partition-fault report's scenario (lpar-hooks-p9).
        #[cfg(feature = "test-hooks")]
        0xf3fc => {
            p.stop(super::lpar::StopReason::Fault(alloc::string::String::from(
                "test hook (hcall 0xf3fc)",
            )));
            return Next::Leave;
        }
        // H_SVM_*, H_TPM_COMM: the secure-VM state machine with an ultravisor,
        // KVM-HV's no-UV answers without (docs/pef.md).
        op if crate::uv::svm::hcall_without_uv(op).is_some() => {
            super::pef::hcall(p, v, ctx, op).unwrap_or(Err(HcallError::Function))
        }
        // Nested virtualization (partitions with `nested = true` only).
        op if super::nested::handles(p, op) => match super::nested::dispatch(p, v, ctx, op) {
            super::nested::Outcome::Status(r) => r,
            super::nested::Outcome::Trap(trap) => {
                ctx.regs.gpr[3] = trap;
                if !p.is_running() || v.state() != vcpu::VcpuState::Runnable {
                    return Next::Leave;
                }
                return Next::Resume;
            }
        },
        op if super::hash::is_hash_hcall(op) => super::hash::hcall(p, ctx, op),
        h::H_RTAS => match super::rtas_calls::call(p, v, ctx, g[4]) {
            Ok(Next::Leave) => return Next::Leave,
            Ok(Next::Resume) => Ok([0; 4]),
            Err(e) => Err(e),
        },
        _ => super::hcalls_misc::dispatch(p, v, ctx, op),
    };
    match result {
        Ok(out) => {
            ctx.regs.gpr[3] = h::H_SUCCESS as u64;
            ctx.regs.gpr[4..8].copy_from_slice(&out);
        }
        Err(e) => {
            ctx.regs.gpr[3] = e.code() as u64;
            if e == HcallError::Function {
                vcpu::rate_limited_warn(p, "hcall not offered (H_FUNCTION)", op);
            }
        }
    }
    if !p.is_running() || v.state() != vcpu::VcpuState::Runnable {
        return Next::Leave;
    }
    Next::Resume
}

/// H_INT_*: the partition's emulated XIVE (`crate::xive`).
fn xive_hcall(p: &Partition, op: u64, args: &[u64]) -> HcallResult {
    let (result, kick) = p
        .xive
        .with(|x| x.hcall(&mut super::lpar::GuestRam(p), op, args))
        .unwrap_or((Err(HcallError::Function), None));
    if let Some(k) = kick {
        kick_vcpu(p, k.vcpu);
    }
    if op == h::H_INT_SET_SOURCE_CONFIG && result.is_ok() {
        source_configured(p, args);
    }
    if let Err(e) = result {
        vcpu::rate_limited_warn(p, "XIVE hcall refused (opcode, then code)", op);
        vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
    }
    result
}

/// The guest aimed a source (H_INT_SET_SOURCE_CONFIG): a pass-through
/// vector's host route follows its target. Out of line so that `dispatch`
/// (every hcall's full exit) does not grow.
#[inline(never)]
#[cold]
fn source_configured(p: &Partition, args: &[u64]) {
    super::passthrough::retarget(p, args.get(1).copied().unwrap_or(0) as u32);
}

/// Makes vCPU `id` notice an interrupt now pending for it: a doorbell to its
/// thread (out of the guest, or out of H_CEDE's nap); nothing for the caller.
pub fn kick_vcpu(p: &Partition, id: u32) {
    if let Some(v) = vcpu_by_id(p, u64::from(id)) {
        v.kick();
    }
}

pub(super) fn check_term(term: u64) -> Result<(), HcallError> {
    if crate::papr::vio::vty::is_vty_term(term) {
        Ok(())
    } else {
        Err(HcallError::Parameter)
    }
}

fn put_term_char(p: &Partition, term: u64, len: u64, hi: u64, lo: u64) -> HcallResult {
    check_term(term)?;
    let (buf, n) = h::unpack_term_chars(len, hi, lo)?;
    p.console_put(&buf[..n]);
    Ok([0; 4])
}

/// Up to 16 bytes of the partition's own console input (`console::input` routes
/// the machine console's input; Ctrl-A c switches partitions).
fn get_term_char(p: &Partition, term: u64) -> HcallResult {
    check_term(term)?;
    let mut buf = [0u8; 16];
    let n =
        crate::console::input::index_of(p).map_or(0, |i| crate::console::input::read(i, &mut buf));
    let (len, hi, lo) = h::pack_term_chars(&buf[..n]);
    Ok([len, hi, lo, 0])
}

fn random() -> HcallResult {
    for _ in 0..16 {
        if let Some(v) = instr::darn() {
            return Ok([v, 0, 0, 0]);
        }
    }
    Err(HcallError::Hardware)
}

fn set_mode(p: &Partition, mflags: u64, resource: u64, v1: u64, v2: u64) -> HcallResult {
    // POWER9 before DD2.3 checkstops on a DAWR match of a cache-inhibited access:
    // no DAWR there, answered before any other check as KVM-HV does.
    if resource == h::H_SET_MODE_RESOURCE_SET_DAWR0
        && super::facility::dawr_erratum(crate::arch::ppc64::spr::pvr::read())
    {
        return Err(HcallError::P2);
    }
    match h::decode_set_mode(mflags, resource, v1, v2)? {
        h::SetMode::InterruptEndian(le) => p.interrupt_le.store(le, Ordering::Relaxed),
        h::SetMode::Ail(a) => p.ail.store(a, Ordering::Relaxed),
        h::SetMode::Ciabr(c) => super::hcalls_misc::set_ciabr(c),
        h::SetMode::Dawr0(d, x) => super::hcalls_misc::set_dawr0(d, x),
    }
    Ok([0; 4])
}

fn register_proc_tbl(
    p: &Partition,
    flags: u64,
    base: u64,
    page_size: u64,
    table_size: u64,
) -> HcallResult {
    if p.hash_active() {
        let hash = h::decode_register_proc_tbl_hash(flags, base, page_size, table_size);
        match (hash, p.mmu) {
            // The HPT and SLB stay as they are (LPCR[UPRT] = 0: no process table).
            (Ok(_), _) => return Ok([0; 4]),
            // An `mmu = "any"` guest choosing radix: checked as in a radix
            // partition below, then the partition runs radix.
            (Err(_), super::manifest::MmuMode::Any) if flags & h::PROC_TABLE_RADIX != 0 => {}
            (Err(e), _) => return Err(e),
        }
    }
    let (dw1, gtse) =
        match h::decode_register_proc_tbl(flags, base, page_size, table_size, p.mem_size)? {
            // Back to the state before any registration (GTSE as offered).
            h::ProcTable::Deregister => (0, true),
            // dw1: guest radix (GR), process table base, PRTS (Book III 5.7.6.2).
            h::ProcTable::Radix {
                base,
                size_field,
                gtse,
            } => ((1 << 63) | base | size_field, gtse),
        };
    // LPCR[GTSE] follows the guest's choice (as QEMU sets it from the flag): without
    // it, the guest's tlbie/tlbiel of process-scoped entries trap to the
    // hypervisor (emulation assist, reflected as a program interrupt) and it must
    // use H_RPT_INVALIDATE. Each vCPU loads it on its next entry.
    p.gtse.store(gtse, Ordering::Release);
    if p.hpt.is_some() && !p.radix_chosen.swap(true, Ordering::AcqRel) {
        // `mmu = "any"`: from the HPT to the partition-scoped radix tree (every
        // chunk of its memory is zeroed and mapped there since creation). Each
        // vCPU loads the radix LPCR on its next entry.
        super::lpar::switch_to_radix(p, dw1);
        return Ok([0; 4]);
    }
    crate::arch::ppc64::mmu::set_pate_dw1(p.lpid, dw1);
    p.proc_tbl.store(dw1, Ordering::Release);
    super::lpar::flush_lpid(p.lpid);
    Ok([0; 4])
}

pub(super) fn vcpu_by_id(p: &Partition, id: u64) -> Option<&Vcpu> {
    p.vcpus.iter().find(|v| u64::from(v.id) == id).map(|b| &**b)
}

pub(super) fn prod(p: &Partition, target: u64) -> HcallResult {
    let v = vcpu_by_id(p, target).ok_or(HcallError::Parameter)?;
    v.prodded.store(true, Ordering::Release);
    v.kick();
    Ok([0; 4])
}

fn confer(p: &Partition, target: u64) -> HcallResult {
    // Dedicated processors: nothing to give the time to. -1 means "all".
    if target != u64::MAX && target != u64::from(u32::MAX) && vcpu_by_id(p, target).is_none() {
        return Err(HcallError::Parameter);
    }
    Ok([0; 4])
}

fn cpu_characteristics() -> HcallResult {
    // Behaviour: favour security, flush L1D on privilege changes, bounds-check
    // speculation barrier (what QEMU's pseries reports as "safe" defaults).
    const FAVOUR_SECURITY: u64 = 1 << 63;
    const L1D_FLUSH_PR: u64 = 1 << 62;
    const BNDS_CHK_SPEC_BAR: u64 = 1 << 61;
    Ok([0, FAVOUR_SECURITY | L1D_FLUSH_PR | BNDS_CHK_SPEC_BAR, 0, 0])
}

fn page_init(p: &Partition, flags: u64, dst: u64, src: u64) -> HcallResult {
    match h::decode_page_init(flags, dst, src, p.mem_size)? {
        h::PageInit::Zero { dst } => {
            p.fill_guest(dst, 4096, 0).ok_or(HcallError::Parameter)?;
        }
        h::PageInit::Copy { dst, src } => {
            let mut page = [0u8; 4096];
            p.read_guest(src, &mut page).ok_or(HcallError::Parameter)?;
            p.write_guest(dst, &page).ok_or(HcallError::Parameter)?;
        }
        h::PageInit::Nothing => {}
    }
    // The page may now hold instructions the guest will run (PAPR H_PAGE_INIT
    // H_ICACHE_*): write it back and/or drop stale instruction cache lines, as
    // KVM's QEMU does with dcbst/icbi over the page.
    let page = || p.host_addr(dst, 4096).ok_or(HcallError::Parameter);
    match h::page_init_cache(flags) {
        h::PageCache::Synchronize => instr::sync_icache_range(page()?, 4096),
        h::PageCache::Invalidate => instr::invalidate_icache_range(page()?, 4096),
        h::PageCache::Nothing => {}
    }
    Ok([0; 4])
}

/// H_REGISTER_VPA(flags, proc, addr) for the vCPU `proc` names (any vCPU of the
/// partition may register areas for another, PAPR 14.11.3.2); checks and codes in
/// `papr::hcall::apply_register_vpa`.
fn register_vpa(p: &Partition, flags: u64, proc: u64, addr: u64) -> HcallResult {
    let target = vcpu_by_id(p, proc).ok_or(HcallError::Parameter)?;
    let op = h::decode_vpa_flags(flags)?;
    let mut s = target.vpa.lock();
    let next = h::apply_register_vpa(&s.areas, op, addr, p.mem_size, |gra, width| {
        let mut b = [0u8; 4];
        let n = width as usize;
        p.read_guest(gra, b.get_mut(..n)?)?;
        Some(
            b.get(..n)?
                .iter()
                .fold(0u64, |v, &x| (v << 8) | u64::from(x)),
        )
    })?;
    let newly = op == h::VpaOp::RegisterVpa;
    if op == h::VpaOp::RegisterDtl {
        // A new DTL starts at its first entry (KVM resets dtl_index too).
        s.dtl_restart = true;
    }
    s.areas = next;
    // The target takes them at its next dispatch or exit (`vcpu::set_dispatched`).
    target.vpa_changed.store(true, Ordering::Relaxed);
    if newly {
        // What KVM (init_vpa) and QEMU set on registration: the shared-processor
        // bit of the status byte; then the current dispatch count.
        let at = addr + h::VPA_STATUS_OFFSET;
        let mut b = [0u8; 1];
        p.read_guest(at, &mut b).ok_or(HcallError::Parameter)?;
        p.write_guest(at, &[b[0] | h::VPA_STATUS_SHARED_PROC])
            .ok_or(HcallError::Parameter)?;
        let count = h::YieldCount(target.yield_count.load(Ordering::Relaxed));
        vcpu::write_yield_count(p, &next, count);
    }
    Ok([0; 4])
}

/// H_RPT_INVALIDATE of the partition's own (process-scoped) translations:
/// exactly what `papr::hcall::decode_rpt_invalidate` says (`serve_rpt`). A
/// hash partition has no radix process-scoped translations; it keeps the
/// whole-LPID flush. (A radix partition's call is normally served on the
/// hcall fast path, `hcall_fast`; this is the same for what it declines.)
fn rpt_invalidate(p: &Partition, v: &Vcpu, a: &[u64]) -> HcallResult {
    if let Some(r) = super::nested::rpt_invalidate_nested(p, a) {
        return r;
    }
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let what = h::decode_rpt_invalidate(arg(0), arg(1), arg(2), arg(3), arg(4), arg(5))?;
    if p.hash_active() {
        super::lpar::flush_lpid(p.lpid);
        return Ok([0; 4]);
    }
    serve_rpt(p, v, what);
    Ok([0; 4])
}

/// Invalidates what `what` names in a radix partition: with `tlbiel` on this
/// thread when no other vCPU of the partition is in the guest, else with a
/// broadcast `tlbie` (`partition::tlb`). Runs during an exit of `v` (LPIDR
/// holds the partition's LPID), in real mode on the fast path.
pub(super) fn serve_rpt(p: &Partition, v: &Vcpu, what: h::RptInvalidate) {
    use crate::arch::ppc64::{instr::ProcInval, mmu, spr};
    let (pid_op, range) = match what {
        h::RptInvalidate::Nothing => return,
        h::RptInvalidate::Pid { pid, ric } => (
            Some(ProcInval::Pid {
                pid,
                ric: ric as u8,
            }),
            None,
        ),
        h::RptInvalidate::Range {
            pid,
            pwc,
            sizes,
            start,
            end,
        } => (
            pwc.then_some(ProcInval::Pid {
                pid,
                ric: h::Ric::Pwc as u8,
            }),
            Some((pid, sizes, start, end)),
        ),
    };
    let ops = pid_op
        .into_iter()
        .chain(range.into_iter().flat_map(|(pid, sizes, start, end)| {
            h::rpt_pages(sizes, start, end).map(move |(va, ap)| ProcInval::Page { pid, va, ap })
        }));
    match p.tlb.invalidate(v.id as usize, p.vcpus.len()) {
        super::tlb::Reach::Local => instr::tlbiel_proc(ops, mmu::tlb_sets()),
        super::tlb::Reach::Broadcast => {
            let (erat, stq) = super::tlb::p9_tlbie_fixups(spr::pvr::read() as u32);
            instr::tlbie_proc(p.lpid, ops, erat, stq);
        }
    }
}

/// Access size in bytes, as QEMU's and KVM's pseries take it (1, 2, 4 or 8).
fn ci_size(size: u64) -> Result<usize, HcallError> {
    match size {
        1 | 2 | 4 | 8 => Ok(size as usize),
        _ => Err(HcallError::Parameter),
    }
}

pub(super) fn ci_load(p: &Partition, size: u64, addr: u64) -> HcallResult {
    let n = ci_size(size)?;
    if !addr.is_multiple_of(n as u64) {
        return Err(HcallError::Parameter);
    }
    // One access of the given size (single-copy atomic, as the guest's own
    // cache-inhibited load would be), big-endian as QEMU's ld*_phys.
    let v = p.load_guest_be(addr, n).ok_or(HcallError::Parameter)?;
    Ok([v, 0, 0, 0])
}

pub(super) fn ci_store(p: &Partition, size: u64, addr: u64, val: u64) -> HcallResult {
    let n = ci_size(size)?;
    if !addr.is_multiple_of(n as u64) {
        return Err(HcallError::Parameter);
    }
    p.store_guest_be(addr, n, val)
        .ok_or(HcallError::Parameter)?;
    Ok([0; 4])
}
