//! Emulated MMIO: guest loads and stores to the XIVE TIMA and ESB pages and to
//! passed-through functions' MSI-X table pages (`passthrough::msix_access`), which
//! the partition-scoped tree leaves unmapped so that every access ends in a
//! Hypervisor Data Storage Interrupt.
//!
//! On such an HDSI the hypervisor fetches the faulting instruction from guest
//! memory (translating HSRR0 through the guest's own radix tree, since HEIR is
//! not architected for HDSI on POWER9 and QEMU does not set it for HDSI on
//! Power10), decodes it (`emulate`), checks it against the fault (HDSISR's
//! store bit must match its direction, and no hypervisor-privileged `l*cix`/
//! `st*cix`: `emulate::check_against_fault`, which also says what the re-fetch
//! window still allows), performs the access on the partition's XIVE model at
//! the faulting address and steps the guest past it (wrapping at 2^32 when
//! MSR[SF] = 0). Anything it cannot emulate gets the guest a data storage
//! interrupt, as an access to unbacked storage does on PowerVM, plus a
//! rate-limited warning; a `l*cix`/`st*cix` gets the program interrupt hardware
//! would give.
use super::emulate::{self, Kind, Refusal};
use super::exit_stats::Device;
use super::hcalls::kick_vcpu;
use super::lpar::{GuestRam, Partition};
use super::passthrough::{Passed, Vphb};
use super::vcpu::{self, Next, Vcpu, VcpuContext};
use crate::arch::ppc64::regs::Msr;
use crate::mm::guest_walk::{self, GuestRealMemory, ProcessTable};
use crate::xive::MmioTarget;

impl GuestRealMemory for Partition {
    fn read_be64(&self, gra: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        if !gra.is_multiple_of(8) {
            return None;
        }
        self.read_guest(gra, &mut b)?;
        Some(u64::from_be_bytes(b))
    }
}

/// The emulated device page a guest real address belongs to, classified once
/// per HDSI: the XIVE's pages, or a passed-through function's MSI-X table pages.
pub enum Target<'a> {
    Xive(MmioTarget),
    Msix(&'a Vphb, &'a Passed),
}

impl Target<'_> {
    /// What the exit profile counts the access as.
    pub fn device(&self) -> Device {
        match self {
            Target::Xive(t) => Device::of_xive(t),
            Target::Msix(..) => Device::Other,
        }
    }
}

/// The emulated device page holding guest real address `gra`, if any.
pub fn target(p: &Partition, gra: u64) -> Option<Target<'_>> {
    match p.xive.read(|x| x.classify(gra)) {
        Some(t) => Some(Target::Xive(t)),
        None => p.pci.msix_page(gra).map(|(v, f)| Target::Msix(v, f)),
    }
}

/// Emulates the access that faulted at guest real address `gra` on `target`
/// (`target(p, gra)`); `None` when it cannot (the caller reflects it).
pub fn emulate(
    p: &Partition,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    gra: u64,
    target: &Target<'_>,
) -> Option<Next> {
    let msix = match *target {
        Target::Xive(_) => None,
        Target::Msix(vphb, f) => Some((vphb, f)),
    };
    let msr = ctx.regs.msr;
    let le = msr & Msr::LE.bits() != 0;
    // PATE dw1 as H_REGISTER_PROC_TBL set it: GR, base, PRTS.
    let dw1 = p.proc_tbl.load(core::sync::atomic::Ordering::Acquire);
    let table = (dw1 >> 63 == 1).then_some(ProcessTable {
        base: dw1 & 0x0fff_ffff_ffff_f000,
        prts: (dw1 & 0x1f) as u8,
    });
    let pc = emulate::fetch_address(ctx.regs.pc, msr);
    let insn = match guest_walk::fetch_instruction(p, table, ctx.sprs.pidr as u32, pc, msr) {
        Ok(i) => i,
        Err(_) => {
            vcpu::rate_limited_warn(p, "MMIO: cannot fetch the instruction at", ctx.regs.pc);
            return None;
        }
    };
    let access = match emulate::decode(insn) {
        Ok(a) => a,
        Err(_) => {
            vcpu::rate_limited_warn(
                p,
                "MMIO: not an emulated load/store, instruction",
                u64::from(insn),
            );
            return None;
        }
    };
    match emulate::check_against_fault(&access, ctx.regs.hdsisr) {
        Ok(()) => {}
        Err(Refusal::DirectionMismatch) => {
            vcpu::rate_limited_warn(
                p,
                "MMIO: instruction changed under the access (HDSISR direction), pc",
                ctx.regs.pc,
            );
            return None;
        }
        Err(Refusal::HypervisorPrivileged) => {
            vcpu::rate_limited_warn(
                p,
                "MMIO: hypervisor-privileged l*cix/st*cix at",
                ctx.regs.pc,
            );
            vcpu::inject(p, ctx, 0x700, emulate::privileged_program_srr1(msr));
            return Some(Next::Resume);
        }
    }
    let size = u64::from(access.size.bytes());
    if let Some((vphb, f)) = msix {
        let store = access
            .is_store()
            .then(|| emulate::store_value(&access, &ctx.regs.gpr, le).0);
        let Some(value) = super::passthrough::msix_access(vphb, f, gra, size, store) else {
            vcpu::rate_limited_warn(p, "MSI-X table page: access not emulated at", gra);
            return None;
        };
        if access.is_store() {
            emulate::complete_store(&access, &mut ctx.regs.gpr, ctx.regs.hdar);
        } else {
            emulate::complete_load(&access, &mut ctx.regs.gpr, value, le, ctx.regs.hdar);
        }
        ctx.regs.pc = emulate::next_pc(ctx.regs.pc, msr);
        return Some(Next::Resume);
    }
    let kick = p.xive.with(|x| match access.kind {
        Kind::Store => {
            let (value, _) = emulate::store_value(&access, &ctx.regs.gpr, le);
            match x.mmio_store(&mut GuestRam(p), v.id, gra, size, value) {
                Ok(k) => k,
                Err(_) => {
                    vcpu::rate_limited_warn(p, "XIVE: store not emulated at", gra);
                    None
                }
            }
        }
        Kind::Load { .. } => {
            let (value, k) = match x.mmio_load(&mut GuestRam(p), v.id, gra, size) {
                Ok(r) => r,
                Err(_) => {
                    vcpu::rate_limited_warn(p, "XIVE: load not emulated at", gra);
                    (u64::MAX, None)
                }
            };
            emulate::complete_load(&access, &mut ctx.regs.gpr, value, le, ctx.regs.hdar);
            k
        }
    });
    if access.is_store() {
        emulate::complete_store(&access, &mut ctx.regs.gpr, ctx.regs.hdar);
    }
    if let Some(k) = kick {
        if k.vcpu != v.id {
            kick_vcpu(p, k.vcpu);
        }
    }
    ctx.regs.pc = emulate::next_pc(ctx.regs.pc, msr);
    Some(Next::Resume)
}
