//! The rest of the hcall set QEMU's `-M pseries` offers a radix guest (register
//! resources, system reset, VIO signalling, home node, the QEMU/KVM private calls):
//! numbers and the argument checking that does not depend on the machine.
//!
//! Numbers from Linux's `arch/powerpc/include/asm/hvcall.h` (the KVMPPC_H_* ones
//! from QEMU's `include/hw/ppc/spapr.h`); behaviour follows PAPR (LoPAR 14.5) and,
//! where PAPR leaves room, what QEMU and KVM answer. See docs/partitions.md for the
//! full table.
use super::hcall::HcallError;

// Hash page table calls (hcall-pft, hcall-bulk, hcall-hpt-resize): the guest is
// radix-only, see `hash_mmu_answer`.
pub const H_REMOVE: u64 = 0x04;
pub const H_ENTER: u64 = 0x08;
pub const H_READ: u64 = 0x0c;
pub const H_PROTECT: u64 = 0x18;
pub const H_BULK_REMOVE: u64 = 0x124;
pub const H_RESIZE_HPT_PREPARE: u64 = 0x36c;
pub const H_RESIZE_HPT_COMMIT: u64 = 0x370;
pub const H_CLEAN_SLB: u64 = 0x374;
pub const H_INVALIDATE_PID: u64 = 0x378;

pub const H_SET_SPRG0: u64 = 0x24;
pub const H_SET_DABR: u64 = 0x28;
pub const H_LOGICAL_CACHE_LOAD: u64 = 0x44;
pub const H_LOGICAL_CACHE_STORE: u64 = 0x48;
pub const H_LOGICAL_ICBI: u64 = 0x4c;
pub const H_LOGICAL_DCBF: u64 = 0x50;
/// H_VIO_SIGNAL: `papr::vio` (the VIO bus).
pub const H_VIO_SIGNAL: u64 = crate::papr::vio::H_VIO_SIGNAL;
pub const H_SET_XDABR: u64 = 0x134;
pub const H_HOME_NODE_ASSOCIATIVITY: u64 = 0x2ec;
pub const H_SIGNAL_SYS_RESET: u64 = 0x380;

/// QEMU/KVM private calls (KVMPPC_HCALL_BASE 0xf000; not multiples of 4).
pub const KVMPPC_H_LOGICAL_MEMOP: u64 = 0xf001;
pub const KVMPPC_H_CAS: u64 = 0xf002;
pub const KVMPPC_H_UPDATE_DT: u64 = 0xf003;

/// What a radix-only partition gets for the hash MMU calls. QEMU registers the
/// hcall-pft/bulk handlers for TCG without a radix check (they would act on a hash
/// table the guest does not have); the resize calls answer H_NOT_AVAILABLE when
/// there is no HPT. Paprika offers no hash MMU (no `hcall-pft` in
/// `ibm,hypertas-functions`, radix in `ibm,architecture-vec-5`), so the table calls
/// are H_FUNCTION and the resize calls H_NOT_AVAILABLE, as QEMU's for radix.
pub fn hash_mmu_answer(op: u64) -> Option<HcallError> {
    match op {
        H_ENTER | H_REMOVE | H_READ | H_PROTECT | H_BULK_REMOVE => Some(HcallError::Function),
        H_RESIZE_HPT_PREPARE | H_RESIZE_HPT_COMMIT => Some(HcallError::NotAvailable),
        _ => None,
    }
}

/// DABR bits (Book III-S, as PAPR's H_SET_DABR takes them): bit 61 translation,
/// 62 write, 63 read.
const DABR_TRANSLATION: u64 = 0x4;
const DABR_DATA_WRITE: u64 = 0x2;
const DABR_DATA_READ: u64 = 0x1;
/// DABRX (H_SET_XDABR's second argument): user, kernel, hypervisor, BTI.
pub const DABRX_USER: u64 = 0x1;
pub const DABRX_KERNEL: u64 = 0x2;
pub const DABRX_HYP: u64 = 0x4;
pub const DABRX_BTI: u64 = 0x8;
/// DAWRX fields (ISA v3.0 Book III 9.4): PRIVM (user 0x1, kernel 0x2, hyp 0x4),
/// WTI 0x8, WT 0x10, DR 0x20, DW 0x40; MRD (length) 0 = one doubleword.
const DAWRX_WT: u64 = 0x10;
const DAWRX_DR: u64 = 0x20;
const DAWRX_DW: u64 = 0x40;

/// H_SET_DABR / H_SET_XDABR on a processor without DABR (ISA v3.0 has only the
/// DAWR): the breakpoint becomes DAWR0/DAWRX0, a doubleword match, as KVM-HV
/// emulates it for POWER8 and later. (QEMU's TCG answers H_HARDWARE there because
/// its POWER9 has no DABR; a guest that falls back to the DABR calls loses its
/// watchpoint with that, so Paprika does what KVM does.) Returns (DAWR0, DAWRX0).
pub fn dabr_to_dawr(dabr: u64, dabrx: u64) -> Result<(u64, u64), HcallError> {
    // Either privilege must be named, and nothing beyond user/kernel/BTI (a guest
    // cannot watch the hypervisor).
    if dabrx & (DABRX_USER | DABRX_KERNEL) == 0
        || dabrx & !(DABRX_USER | DABRX_KERNEL | DABRX_BTI) != 0
    {
        return Err(HcallError::Parameter);
    }
    let mut dawrx = dabrx;
    if dabr & DABR_DATA_READ != 0 {
        dawrx |= DAWRX_DR;
    }
    if dabr & DABR_DATA_WRITE != 0 {
        dawrx |= DAWRX_DW;
    }
    if dabr & DABR_TRANSLATION != 0 {
        dawrx |= DAWRX_WT;
    }
    Ok((dabr & !7, dawrx))
}

/// H_SIGNAL_SYS_RESET targets (PAPR 14.5.4.10: -1 all, -2 all but the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SresetTarget {
    All,
    AllButSelf,
    One(u64),
}

pub fn decode_sreset_target(target: u64) -> Result<SresetTarget, HcallError> {
    match target as i64 {
        -1 => Ok(SresetTarget::All),
        -2 => Ok(SresetTarget::AllButSelf),
        t if t < 0 => Err(HcallError::Parameter),
        _ => Ok(SresetTarget::One(target)),
    }
}

/// H_HOME_NODE_ASSOCIATIVITY (PAPR 14.11.6.2): flags 1 = `id` is a processor
/// index (the only form QEMU accepts; anything else H_FUNCTION, as QEMU). The
/// domains are packed two 32-bit values per register into r4-r9, -1 filling the
/// rest.
pub fn pack_associativity(flags: u64, domains: &[u32]) -> Result<[u64; 6], HcallError> {
    if flags != 1 {
        return Err(HcallError::Function);
    }
    if domains.len() > 12 {
        return Err(HcallError::Hardware);
    }
    let mut it = domains.iter().copied();
    let mut out = [0u64; 6];
    for r in &mut out {
        let a = it.next().unwrap_or(u32::MAX);
        let b = it.next().unwrap_or(u32::MAX);
        *r = (u64::from(a) << 32) | u64::from(b);
    }
    Ok(out)
}

/// A checked KVMPPC_H_LOGICAL_MEMOP: copy (or copy inverted) `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memop {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub invert: bool,
}

/// KVMPPC_H_LOGICAL_MEMOP(dst, src, esize, count, op): elements of 1 << esize bytes
/// (esize 0-3), at most 2^31 of them, both addresses aligned to the element and
/// both ranges inside guest memory; op 0 copies, 1 copies inverted. Overlapping
/// ranges behave as memmove (QEMU copies backwards when dst is inside src).
pub fn decode_memop(
    dst: u64,
    src: u64,
    esize: u64,
    count: u64,
    op: u64,
    guest_mem: u64,
) -> Result<Memop, HcallError> {
    if esize > 3 || count > 0x8000_0000 || op > 1 {
        return Err(HcallError::Parameter);
    }
    let mask = (1u64 << esize) - 1;
    if dst & mask != 0 || src & mask != 0 {
        return Err(HcallError::Parameter);
    }
    let len = count << esize;
    let inside = |a: u64| a.checked_add(len).is_some_and(|e| e <= guest_mem);
    if !inside(dst) || !inside(src) {
        return Err(HcallError::Parameter);
    }
    Ok(Memop {
        dst,
        src,
        len,
        invert: op == 1,
    })
}

/// KVMPPC_H_UPDATE_DT(fdt): firmware (SLOF) hands QEMU its final device tree.
/// Checked (magic, total size inside guest memory and no more than `limit`) and
/// otherwise ignored: Paprika rebuilds the tree itself on reboot.
pub fn check_update_dt(addr: u64, header: [u8; 8], guest_mem: u64, limit: u64) -> HcallResult0 {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u64::from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    if magic != 0xd00d_feed || size < 40 || size > limit {
        return Err(HcallError::Parameter);
    }
    if addr.checked_add(size).is_none_or(|e| e > guest_mem) {
        return Err(HcallError::Parameter);
    }
    Ok(())
}

pub type HcallResult0 = Result<(), HcallError>;

/// H_SET_MODE resource 2 (DAWR0) and 5 (DAWR1) value2, and H_SET_MODE resource 1
/// (CIABR) value1 checks, as KVM-HV makes them: a guest cannot watch the
/// hypervisor (DAWRX HYP, CIABR PRIV = 3).
pub const CIABR_PRIV_MASK: u64 = 0x3;
pub const CIABR_PRIV_HYPER: u64 = 0x3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_calls_answer_as_qemu_for_radix() {
        assert_eq!(hash_mmu_answer(H_ENTER), Some(HcallError::Function));
        assert_eq!(hash_mmu_answer(H_BULK_REMOVE), Some(HcallError::Function));
        assert_eq!(
            hash_mmu_answer(H_RESIZE_HPT_COMMIT),
            Some(HcallError::NotAvailable)
        );
        assert_eq!(HcallError::NotAvailable.code(), 3);
        assert_eq!(hash_mmu_answer(H_SET_SPRG0), None);
    }

    #[test]
    fn dabr_maps_to_dawr() {
        // Write watch, translated, kernel only.
        assert_eq!(
            dabr_to_dawr(
                0x1234_5678 | DABR_DATA_WRITE | DABR_TRANSLATION,
                DABRX_KERNEL
            ),
            Ok((0x1234_5678, DABRX_KERNEL | DAWRX_DW | DAWRX_WT))
        );
        // Read, both privileges, BTI kept (DAWRX WTI is the same bit).
        assert_eq!(
            dabr_to_dawr(
                0x1000 | DABR_DATA_READ,
                DABRX_USER | DABRX_KERNEL | DABRX_BTI
            ),
            Ok((0x1000, 0x3 | DABRX_BTI | DAWRX_DR))
        );
        assert_eq!(dabr_to_dawr(0x1000, 0), Err(HcallError::Parameter));
        assert_eq!(
            dabr_to_dawr(0x1000, DABRX_KERNEL | DABRX_HYP),
            Err(HcallError::Parameter)
        );
        assert_eq!(dabr_to_dawr(0x1000, 0x10 | 1), Err(HcallError::Parameter));
    }

    #[test]
    fn sreset_targets() {
        assert_eq!(decode_sreset_target(u64::MAX), Ok(SresetTarget::All));
        assert_eq!(
            decode_sreset_target(-2i64 as u64),
            Ok(SresetTarget::AllButSelf)
        );
        assert_eq!(
            decode_sreset_target(-3i64 as u64),
            Err(HcallError::Parameter)
        );
        assert_eq!(decode_sreset_target(3), Ok(SresetTarget::One(3)));
    }

    #[test]
    fn associativity_packing() {
        let r = pack_associativity(1, &[0, 0, 0, 0, 7]).unwrap();
        assert_eq!(r[0], 0);
        assert_eq!(r[1], 0);
        assert_eq!(r[2], 0x0000_0007_ffff_ffff);
        assert_eq!(r[3], u64::MAX);
        assert_eq!(r[5], u64::MAX);
        assert_eq!(pack_associativity(0, &[0]), Err(HcallError::Function));
        assert_eq!(pack_associativity(1, &[0; 13]), Err(HcallError::Hardware));
    }

    #[test]
    fn memop_checks() {
        let mem = 1 << 20;
        assert_eq!(
            decode_memop(0x100, 0x200, 3, 4, 1, mem),
            Ok(Memop {
                dst: 0x100,
                src: 0x200,
                len: 32,
                invert: true
            })
        );
        assert_eq!(
            decode_memop(0x101, 0x200, 1, 4, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_memop(0x100, 0x200, 4, 4, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_memop(0x100, 0x200, 0, 4, 2, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_memop(mem - 4, 0, 0, 8, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_memop(0, 0, 0, 0x8000_0001, 0, u64::MAX),
            Err(HcallError::Parameter)
        );
        assert_eq!(decode_memop(0, 0, 0, 0, 0, mem).map(|m| m.len), Ok(0));
    }

    #[test]
    fn update_dt_checks() {
        let hdr = |magic: u32, size: u32| {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&magic.to_be_bytes());
            h[4..].copy_from_slice(&size.to_be_bytes());
            h
        };
        let mem = 1 << 20;
        assert_eq!(
            check_update_dt(0x1000, hdr(0xd00d_feed, 0x800), mem, 0x10000),
            Ok(())
        );
        assert_eq!(
            check_update_dt(0x1000, hdr(0xdead_beef, 0x800), mem, 0x10000),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            check_update_dt(0x1000, hdr(0xd00d_feed, 0x2_0000), mem, 0x10000),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            check_update_dt(mem - 0x100, hdr(0xd00d_feed, 0x800), mem, 0x10000),
            Err(HcallError::Parameter)
        );
    }
}
