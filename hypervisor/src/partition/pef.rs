//! A partition's PEF glue: `uv::partition::PartitionUv` (portable, tested
//! against the model ultravisor) called with this machine's ultravisor
//! (`arch::ppc64::ucall`, present only with `ibm,ultravisor`) and partition
//! table (`arch::ppc64::mmu`). Without an ultravisor every path here is the
//! no-UV one (docs/pef.md).

use super::demand::CHUNK;
use super::lpar::Partition;
use super::vcpu::{self, Vcpu, VcpuContext};
use crate::arch::ppc64::{mmu, ucall::Ucall};
use crate::error;
use crate::papr::hcall::{HcallError, HcallResult};
use crate::uv::partition::Resume;
use crate::uv::Ultravisor;

/// H_SVM_* and H_TPM_COMM of vCPU `v` (`None` for any other opcode): H_SVM_*
/// to the secure-VM state machine with an ultravisor, KVM-HV's no-UV answers
/// without; H_TPM_COMM to the host TPM proxy (`partition::tpm`), UV or not.
pub fn hcall(p: &Partition, v: &Vcpu, ctx: &VcpuContext, op: u64) -> Option<HcallResult> {
    let g = &ctx.regs.gpr;
    if op == crate::papr::hcall::H_TPM_COMM {
        return Some(super::tpm::hcall(p, &g[4..9]));
    }
    let mut uc = Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn Ultravisor);
    // Memory handed to the UV holds the partition's own bytes: chunks not used
    // yet are zeroed (and mapped) first, as on a first touch.
    let mut prepare = |gpa: u64, len: u64| {
        let first = gpa & !(CHUNK - 1);
        (first..gpa.saturating_add(len))
            .step_by(CHUNK as usize)
            .all(|c| p.demand_fault(c))
    };
    let r =
        p.uv.hcall(uv, v.id, ctx.regs.msr, op, &g[4..7], &mut prepare)?;
    if let Err(e) = r {
        if e != HcallError::Function {
            vcpu::rate_limited_warn(p, "secure-VM hcall refused (opcode)", op);
            vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
        }
    }
    Some(r)
}

/// Whether vCPU `v` goes back through UV_RETURN after the exit in `ctx` (at
/// `vector`, before it is handled): only with an ultravisor, for exits it
/// reflected.
pub fn resume_via_uv(p: &Partition, v: &Vcpu, ctx: &VcpuContext, vector: u64) -> bool {
    p.uv.resume(v.id, vector, ctx.regs.msr, ctx.regs.gpr[3]) == Resume::UvReturn
}

/// Tears the partition's PEF state down and clears its partition-table entry
/// (every UV_UNREGISTER_MEM_SLOT, UV_SVM_TERMINATE, then UV_WRITE_PATE(lpid,
/// 0, 0) with an ultravisor; the entry alone without), then flushes the LPID.
/// Called with none of its vCPUs in the guest; runs once per stop.
pub fn release(p: &Partition) {
    super::tpm::release(p);
    let mut uc = Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn Ultravisor);
    if let Err(e) = p.uv.release(&mut mmu::HvPartitionTable, uv) {
        error!(
            "lpar {}: ultravisor refused ucall {:#x} at teardown: {:?}",
            p.name, e.ucall, e.error
        );
    }
    super::lpar::flush_lpid(p.lpid);
}
