//! The hcalls of QEMU's `-M pseries` set beyond the core ones in `hcalls.rs`:
//! register resources (SPRG0, DABR -> DAWR0, CIABR), system reset, VIO signalling,
//! home node, the debugger/memop calls and the hash-MMU calls a radix partition
//! is refused. Argument checking lives in `papr::hcall_misc` (portable); this file
//! applies it. docs/partitions.md lists what each call does.
use core::sync::atomic::Ordering;

use super::lpar::Partition;
use super::vcpu::{self, Vcpu, VcpuContext, VcpuState};
use crate::arch::ppc64::regs::Msr;
use crate::arch::ppc64::spr;
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::hcall_misc::{self as m, SresetTarget};

/// Handles `op` if it is one of these calls; anything else is H_FUNCTION.
pub fn dispatch(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, op: u64) -> HcallResult {
    if let Some(e) = m::hash_mmu_answer(op) {
        return Err(e);
    }
    let g = ctx.regs.gpr;
    match op {
        m::H_SET_SPRG0 => {
            // Restored from here on the next entry (SPRG0-3 are switched on every
            // entry and exit).
            ctx.sprs.sprg[0] = g[4];
            Ok([0; 4])
        }
        m::H_SET_DABR => set_xdabr(g[4], m::DABRX_USER | m::DABRX_KERNEL),
        m::H_SET_XDABR => set_xdabr(g[4], g[5]),
        m::H_LOGICAL_CACHE_LOAD => super::hcalls::ci_load(p, g[4], g[5]),
        m::H_LOGICAL_CACHE_STORE => super::hcalls::ci_store(p, g[4], g[5], g[6]),
        // Partition memory is ordinary coherent memory: nothing to flush (QEMU and
        // KVM answer success too).
        m::H_LOGICAL_ICBI | m::H_LOGICAL_DCBF => Ok([0; 4]),
        m::KVMPPC_H_LOGICAL_MEMOP => memop(p, g[4], g[5], g[6], g[7], g[8]),
        m::KVMPPC_H_UPDATE_DT => update_dt(p, g[4]),
        op if super::vio::handles(op) => super::vio::hcall(p, op, &g[4..10]),
        m::H_HOME_NODE_ASSOCIATIVITY => home_node(p, ctx, g[4], g[5]),
        m::H_SIGNAL_SYS_RESET => signal_sys_reset(p, v, g[4]),
        // QEMU registers these and answers H_FUNCTION (segment tables and PID
        // invalidation by hcall are not part of its radix support either).
        m::H_CLEAN_SLB | m::H_INVALIDATE_PID => Err(HcallError::Function),
        _ => Err(HcallError::Function),
    }
}

/// H_SET_MODE CIABR: the register is guest-owned and lazily switched, so while the
/// vCPU's thread serves it (always, during its hcalls) the hardware holds the
/// guest's value; it is saved with the others when the thread stops serving it.
pub fn set_ciabr(ciabr: u64) {
    // CIABR with PRIV != hypervisor (checked by `decode_set_mode`) matches only
    // guest instructions; through the ultravisor when there is one.
    crate::arch::ppc64::ucall::write_debug(&[(crate::uv::host::SPR_CIABR, ciabr)]);
}

/// H_SET_MODE DAWR0 (and H_SET_DABR/XDABR): as `set_ciabr`.
pub fn set_dawr0(dawr: u64, dawrx: u64) {
    // DAWRX without the hypervisor privilege bit (checked by the callers'
    // decoders) matches only guest accesses; through the ultravisor when there
    // is one.
    use crate::uv::host::{SPR_DAWR0, SPR_DAWRX0};
    crate::arch::ppc64::ucall::write_debug(&[(SPR_DAWR0, dawr), (SPR_DAWRX0, dawrx)]);
}

fn set_xdabr(dabr: u64, dabrx: u64) -> HcallResult {
    let (dawr, dawrx) = m::dabr_to_dawr(dabr, dabrx)?;
    // The POWER9 DAWR erratum (see `set_mode`): after the argument checks, as
    // KVM-HV's kvmppc_h_set_xdabr answers it.
    if super::facility::dawr_erratum(spr::pvr::read()) {
        return Err(HcallError::Hardware);
    }
    set_dawr0(dawr, dawrx);
    Ok([0; 4])
}

fn memop(p: &Partition, dst: u64, src: u64, esize: u64, count: u64, op: u64) -> HcallResult {
    let mo = m::decode_memop(dst, src, esize, count, op, p.mem_size)?;
    const CHUNK: u64 = 4096;
    let mut buf = [0u8; CHUNK as usize];
    // Overlap as memmove: when dst lies above src inside it, go from the end.
    let backwards = mo.dst > mo.src && mo.dst < mo.src + mo.len;
    let mut done = 0;
    while done < mo.len {
        let n = (mo.len - done).min(CHUNK);
        let off = if backwards { mo.len - done - n } else { done };
        let b = &mut buf[..n as usize];
        p.read_guest(mo.src + off, b).ok_or(HcallError::Parameter)?;
        if mo.invert {
            b.iter_mut().for_each(|x| *x = !*x);
        }
        p.write_guest(mo.dst + off, b)
            .ok_or(HcallError::Parameter)?;
        done += n;
    }
    Ok([0; 4])
}

fn update_dt(p: &Partition, addr: u64) -> HcallResult {
    let mut hdr = [0u8; 8];
    p.read_guest(addr, &mut hdr).ok_or(HcallError::Parameter)?;
    m::check_update_dt(addr, hdr, p.mem_size, 1 << 20)?;
    Ok([0; 4])
}

fn vcpu_index(p: &Partition, id: u64) -> Option<usize> {
    p.vcpus.iter().position(|t| u64::from(t.id) == id)
}

fn home_node(p: &Partition, ctx: &mut VcpuContext, flags: u64, id: u64) -> HcallResult {
    // One NUMA node: every domain is 0, then the processor itself (QEMU's
    // associativity for a vCPU without -numa).
    let domains = [0, 0, 0, 0, id as u32];
    let regs = m::pack_associativity(flags, &domains)?;
    if vcpu_index(p, id).is_none() {
        return Err(HcallError::P2);
    }
    ctx.regs.gpr[8] = regs[4];
    ctx.regs.gpr[9] = regs[5];
    Ok([regs[0], regs[1], regs[2], regs[3]])
}

fn signal_sys_reset(p: &Partition, me: &Vcpu, target: u64) -> HcallResult {
    let all = if p.vcpus.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << p.vcpus.len()) - 1
    };
    let me_bit = 1u64 << vcpu_index(p, u64::from(me.id)).unwrap_or(0);
    let mask = match m::decode_sreset_target(target)? {
        SresetTarget::All => all,
        SresetTarget::AllButSelf => all & !me_bit,
        SresetTarget::One(id) => 1 << vcpu_index(p, id).ok_or(HcallError::Parameter)?,
    };
    for (i, t) in p.vcpus.iter().enumerate() {
        // A stopped vCPU (never started, or stop-self) has no context to
        // interrupt; QEMU's would run from 0x100 with a cleared MSR, which no
        // guest expects, so it is left stopped.
        if mask & (1 << i) == 0 || t.state() != VcpuState::Runnable {
            continue;
        }
        p.sreset_pending.fetch_or(1 << i, Ordering::AcqRel);
        // Ends an H_CEDE (a spurious prod is allowed: H_CEDE may return early).
        t.prodded.store(true, Ordering::Release);
        t.kick();
    }
    Ok([0; 4])
}

/// Called before every entry: delivers a pending system reset (0x100, Book III
/// 7.5.1: SRR0/1 saved, MSR as for any interrupt but relocation off: AIL does not
/// apply to it). With FWNMI registered (ibm,nmi-register) the guest's r3 is saved
/// in the RTAS area, r3 points at it and the handler runs at the registered address,
/// as PowerVM and QEMU do (Linux's fwnmi_get_savep expects exactly this).
pub fn deliver_sreset(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext) {
    let Some(i) = vcpu_index(p, u64::from(v.id)) else {
        return;
    };
    let bit = 1u64 << i;
    if p.sreset_pending.load(Ordering::Acquire) & bit == 0
        || p.sreset_pending.fetch_and(!bit, Ordering::AcqRel) & bit == 0
    {
        return;
    }
    vcpu::inject(p, ctx, 0x100, 0);
    ctx.regs.pc = 0x100;
    ctx.regs.msr &= !(Msr::IR | Msr::DR).bits();
    let handler = p.fwnmi_sreset.load(Ordering::Acquire);
    if handler != u64::MAX {
        let save = p.rtas.0
            + crate::papr::rtas::fwnmi_save_offset(i, crate::papr::guest_fdt::RTAS_ERROR_LOG_MAX);
        let mut area = [0u8; 16];
        area[..8].copy_from_slice(&ctx.regs.gpr[3].to_be_bytes());
        if save + 16 <= p.rtas.0 + p.rtas.1 && p.write_guest(save, &area).is_some() {
            ctx.regs.gpr[3] = save;
            ctx.regs.pc = handler;
        }
    }
}
