//! Hash-MMU partitions (`mmu = "hash"` or `"any"` in the manifest): the hashed
//! page table (HPT) in hypervisor memory, the page-frame-table hcalls on it
//! (checks in `mm::hpt`), and the exits a hash guest causes.
//!
//! - The HPT is sized as QEMU's pseries sizes it (1/128 of memory,
//!   `mm::hpt::hpt_shift_for_ram`), naturally aligned, zeroed, never mapped to
//!   the guest; the PATE's first doubleword names it (HR = 0) with the VRMA page
//!   size (64 KiB), and the VRMA entries for guest real mode are inserted at
//!   creation and after each reboot. All of a hash partition's memory is zeroed
//!   at creation (an HPTE holds a host address: no fault tells the hypervisor of
//!   a first touch, so `partition::demand` cannot apply).
//! - The vCPU runs with LPCR[HR, UPRT, GTSE, VPM1] clear: hashed translation,
//!   SLB mode, and translation misses in virtual mode go straight to the guest
//!   (every valid HPTE is present, so the hypervisor has nothing to fill in);
//!   only real-mode (VRMA) misses come to the hypervisor as HDSI/HISI. The LPCR is
//!   switched in real mode on entry and exit (`arch::ppc64::guest`).
//! - H_RESIZE_HPT_PREPARE/COMMIT ("hcall-hpt-resize"): a new table of the
//!   size asked, every valid entry rehashed into it at the commit.
//! - Lock order: `Hpt::state` alone (no other partition lock is taken under it;
//!   the frame allocator and `mmu::set_pate` are).
use core::sync::atomic::Ordering;

use super::lpar::Partition;
use super::vcpu::{self, Next, Vcpu, VcpuContext};
use crate::arch::ppc64::instr;
use crate::arch::ppc64::mmu;
use crate::mm::extent::ExtentMap;
use crate::mm::hpt::{self, HpteStore};
use crate::mm::{self, LINEAR_BASE};
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::hcall_misc as m;

/// H_CLEAR_MOD and H_CLEAR_REF (Linux `hvcall.h`), part of "hcall-pft".
pub const H_CLEAR_MOD: u64 = 0x10;
pub const H_CLEAR_REF: u64 = 0x14;

/// One partition's hashed page table.
pub struct Hpt {
    /// The table made at creation: the guest's device tree names its size
    /// (`ibm,pft-size`), so a reboot goes back to it after a resize.
    original: Region,
    /// Serialises every edit (H_ENTER's slot search with another vCPU's
    /// insert) and holds the table in use and a prepared one.
    state: spin::Mutex<HptState>,
}

/// A naturally aligned table in hypervisor memory.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Region {
    /// Host real address.
    pa: u64,
    /// log2 of its size in bytes.
    shift: u32,
}

impl Region {
    fn alloc(shift: u32) -> Result<Self, mm::frame::FrameError> {
        let bytes = 1u64 << shift;
        let pa = mm::alloc_frames(bytes, bytes)?;
        mm::zero_phys(pa, bytes);
        Ok(Region { pa, shift })
    }

    fn free(self) {
        mm::free_frames(self.pa, 1 << self.shift);
    }

    fn table(self) -> Table {
        Table {
            base: LINEAR_BASE | self.pa,
            entries: (1u64 << self.shift) / hpt::HPTE_BYTES,
        }
    }
}

struct HptState {
    current: Region,
    /// H_RESIZE_HPT_PREPARE's table, zeroed, waiting for the commit.
    pending: Option<Region>,
}

/// The table through the linear map: big-endian doublewords, read and written
/// with single accesses (hardware sets R and C bytes concurrently).
struct Table {
    base: u64,
    entries: u64,
}

impl HpteStore for Table {
    fn entries(&self) -> u64 {
        self.entries
    }
    fn load(&self, ptex: u64) -> (u64, u64) {
        let at = (self.base + ptex * hpt::HPTE_BYTES) as *const u64;
        // SAFETY: `ptex` < entries (checked by `mm::hpt` before every access), so
        // both doublewords lie in the table, which the hypervisor owns.
        unsafe {
            (
                u64::from_be(core::ptr::read_volatile(at)),
                u64::from_be(core::ptr::read_volatile(at.add(1))),
            )
        }
    }
    fn store_v(&mut self, ptex: u64, v: u64) {
        let at = (self.base + ptex * hpt::HPTE_BYTES) as *mut u64;
        // The second doubleword before the valid bit (KVM-HV: eieio, then
        // unlock/validate).
        instr::eieio();
        // SAFETY: as in `load`.
        unsafe { core::ptr::write_volatile(at, v.to_be()) };
    }
    fn store_r(&mut self, ptex: u64, r: u64) {
        let at = (self.base + ptex * hpt::HPTE_BYTES) as *mut u64;
        // SAFETY: as in `load`.
        unsafe { core::ptr::write_volatile(at.add(1), r.to_be()) };
    }
}

impl Hpt {
    /// Allocates and zeroes the HPT for `mem_size` bytes of guest memory.
    pub fn new(mem_size: u64) -> Result<Self, mm::frame::FrameError> {
        let original = Region::alloc(hpt::hpt_shift_for_ram(mem_size))?;
        Ok(Self {
            original,
            state: spin::Mutex::new(HptState {
                current: original,
                pending: None,
            }),
        })
    }

    /// The table in use: host real address and log2 of its size.
    pub fn current(&self) -> (u64, u32) {
        let c = self.state.lock().current;
        (c.pa, c.shift)
    }

    /// First doubleword of the partition's PATE: the table in use, VRMA
    /// pages 64 KiB.
    pub fn pate_dw0(&self) -> u64 {
        let (pa, shift) = self.current();
        hpt::pate_dw0(pa, shift, hpt::VRMA_PS)
    }

    /// Empties the table and inserts the VRMA entries for `mem` (creation and
    /// reboot, while no vCPU of the partition runs); after a resize, the table
    /// made at creation is used again and the others are freed. Returns the
    /// bytes of guest memory real mode reaches.
    pub fn reset(&self, mem: &ExtentMap) -> Result<u64, HcallError> {
        let mut s = self.state.lock();
        if let Some(p) = s.pending.take() {
            p.free();
        }
        if s.current != self.original {
            s.current.free();
            s.current = self.original;
        }
        mm::zero_phys(self.original.pa, 1 << self.original.shift);
        let reach = hpt::insert_vrma(&mut self.original.table(), mem, mem.size());
        instr::ptesync();
        reach
    }
}

/// Whether `op` is one of the calls of "hcall-pft" / "hcall-bulk".
pub fn is_hash_hcall(op: u64) -> bool {
    matches!(
        op,
        m::H_ENTER
            | m::H_RESIZE_HPT_PREPARE
            | m::H_RESIZE_HPT_COMMIT
            | m::H_REMOVE
            | m::H_READ
            | m::H_PROTECT
            | m::H_BULK_REMOVE
            | H_CLEAR_MOD
            | H_CLEAR_REF
    )
}

/// H_ENTER, H_REMOVE, H_READ, H_PROTECT, H_BULK_REMOVE, H_CLEAR_MOD, H_CLEAR_REF
/// of partition `p`: r4.. as PAPR, outputs in r4..r11 (the first four returned,
/// H_READ with H_READ_4 and H_BULK_REMOVE write r8-r11 here). A radix partition
/// gets H_FUNCTION, as KVM-HV answers a radix guest.
pub fn hcall(p: &Partition, ctx: &mut VcpuContext, op: u64) -> HcallResult {
    let resize = matches!(op, m::H_RESIZE_HPT_PREPARE | m::H_RESIZE_HPT_COMMIT);
    let Some(h) = p.hpt.as_ref().filter(|_| p.hash_active()) else {
        // No HPT (radix, or an `mmu = "any"` guest that chose radix): QEMU's
        // answers.
        return Err(if resize {
            HcallError::NotAvailable
        } else {
            HcallError::Function
        });
    };
    if resize {
        let r = resize_hcall(p, h, op, ctx.regs.gpr[4], ctx.regs.gpr[5]);
        if let Err(e) = r {
            vcpu::rate_limited_warn(p, "HPT resize refused (opcode)", op);
            vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
        }
        return r.map(|()| [0; 4]);
    }
    let g = &mut ctx.regs.gpr;
    let lpid = p.lpid;
    // Every invalidation names the partition's own LPID; a whole-LPID tlbie
    // (R = 0) stands in for KVM's per-entry one.
    let mut flush = |_: u64, _: u64, _: u64| instr::tlbie_lpid_hpt(lpid);
    let s = h.state.lock();
    let mut t = s.current.table();
    let mut out = [0u64; 4];
    let result = match op {
        m::H_ENTER => hpt::enter(&mut t, &p.mem, g[4], g[5], g[6], g[7]).map(|slot| {
            out[0] = slot;
        }),
        m::H_REMOVE => hpt::remove(&mut t, &p.mem, g[4], g[5], g[6], &mut flush).map(|r| {
            out[0] = r.v;
            out[1] = r.r;
        }),
        m::H_READ => hpt::read(&t, &p.mem, g[4], g[5]).map(|(v, n)| {
            out.copy_from_slice(&v[..4]);
            if n > 4 {
                g[8..12].copy_from_slice(&v[4..8]);
            }
        }),
        m::H_PROTECT => hpt::protect(&mut t, g[4], g[5], g[6], &mut flush),
        m::H_BULK_REMOVE => {
            let mut a = [0u64; 8];
            a.copy_from_slice(&g[4..12]);
            let r = hpt::bulk_remove(&mut t, &p.mem, &mut a, &mut flush);
            // The responses so far go back even on an error (QEMU).
            g[4..12].copy_from_slice(&a);
            out.copy_from_slice(&a[..4]);
            r
        }
        H_CLEAR_MOD | H_CLEAR_REF => {
            hpt::clear_rc(&mut t, &p.mem, g[5], op == H_CLEAR_MOD, &mut flush).map(|r| {
                out[0] = r;
            })
        }
        _ => Err(HcallError::Function),
    };
    // New entries visible to the table walk before the guest continues.
    instr::ptesync();
    if let Err(HcallError::Parameter) = result {
        vcpu::rate_limited_warn(
            p,
            "page-frame-table hcall refused (H_PARAMETER), opcode",
            op,
        );
        vcpu::rate_limited_warn(p, "  second argument (ptex)", g[5]);
    }
    result.map(|()| out)
}

/// H_RESIZE_HPT_PREPARE(flags, shift) and H_RESIZE_HPT_COMMIT(flags, shift)
/// of a partition running with its HPT (checks in `mm::hpt`). PREPARE
/// allocates and zeroes the new table at once (QEMU does it in a thread and
/// answers H_LONG_BUSY_ORDER_100_MSEC meanwhile; the guest's retry loop takes
/// either): H_SUCCESS, or H_NO_MEM. COMMIT (which Linux makes from
/// `stop_machine`, the other vCPUs spinning in the guest) rehashes every valid
/// entry into it, points the partition-table entry at it, flushes the LPID's
/// translations and frees the old table (unless it is the one made at
/// creation, which a reboot goes back to).
fn resize_hcall(p: &Partition, h: &Hpt, op: u64, flags: u64, shift: u64) -> Result<(), HcallError> {
    let mut s = h.state.lock();
    let pending = s.pending.map(|r| r.shift);
    let free = |r: Region| {
        if r != h.original {
            r.free();
        }
    };
    if op == m::H_RESIZE_HPT_PREPARE {
        match hpt::resize_prepare(flags, shift, p.mem_size, pending)? {
            hpt::ResizePrepare::Prepared => return Ok(()),
            hpt::ResizePrepare::Cancel => {
                if let Some(r) = s.pending.take() {
                    free(r);
                }
                return Ok(());
            }
            hpt::ResizePrepare::Allocate(new) => {
                if let Some(r) = s.pending.take() {
                    free(r);
                }
                // The creation table is never handed out twice: a resize back
                // to its size gets a fresh one.
                s.pending = Some(Region::alloc(new).map_err(|_| HcallError::NoMem)?);
                return Ok(());
            }
        }
    }
    hpt::resize_commit(flags, shift, pending)?;
    let Some(new) = s.pending.take() else {
        return Err(HcallError::Closed);
    };
    if let Err(e) = hpt::rehash(&s.current.table(), &mut new.table()) {
        free(new);
        return Err(e);
    }
    let old = core::mem::replace(&mut s.current, new);
    instr::ptesync();
    mmu::set_pate(p.lpid, hpt::pate_dw0(new.pa, new.shift, hpt::VRMA_PS), 0);
    instr::tlbie_lpid_hpt(p.lpid);
    free(old);
    crate::info!(
        "PAPRIKA lpar-hpt: {} HPT resized {} -> {} KiB",
        p.name,
        (1u64 << old.shift) >> 10,
        (1u64 << new.shift) >> 10
    );
    Ok(())
}

/// HDSI (0xe00) or HISI (0xe20) of a hash partition: only guest real mode
/// comes here (LPCR[VPM1] is clear), translated through the VRMA entries, which
/// cover all of the partition's memory. An address beyond it gets the machine
/// check any partition gets for unassigned memory; one inside means the guest
/// removed its own VRMA entry (H_REMOVE allows it, as KVM-HV's does), which
/// it cannot recover from: the partition stops.
pub fn storage_exit(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, vector: u64) -> Next {
    let ea = if vector == 0xe00 {
        ctx.regs.hdar
    } else {
        ctx.regs.pc
    };
    let gra = ea & 0x0fff_ffff_ffff_ffff;
    if gra < p.mem_size {
        p.stop(super::lpar::StopReason::Fault(alloc::format!(
            "real-mode access to guest real {gra:#x} found no VRMA entry (vector {vector:#x})"
        )));
        return Next::Leave;
    }
    let kind = if vector == 0xe20 {
        super::facility::Unassigned::Fetch
    } else if ctx.regs.hdsisr & super::facility::HDSISR_STORE != 0 {
        super::facility::Unassigned::Store
    } else {
        super::facility::Unassigned::Load
    };
    vcpu::machine_check(p, v, ctx, kind)
}

/// LPCR of a vCPU of a hash partition, from the one a radix partition's vCPU
/// would get: hashed translation (HR = 0), SLB mode (UPRT = 0), no guest tlbie
/// (GTSE = 0), virtual-mode misses to the guest (VPM1 = 0).
pub fn lpcr(radix: crate::arch::ppc64::regs::Lpcr) -> crate::arch::ppc64::regs::Lpcr {
    use crate::arch::ppc64::regs::Lpcr;
    let mut l = radix;
    l.remove(Lpcr::HR | Lpcr::UPRT | Lpcr::GTSE | Lpcr::VPM1);
    l
}

/// Whether the partition currently runs with its HPT (a hash partition, or an
/// `mmu = "any"` one that has not registered a radix process table).
pub fn active(p: &Partition) -> bool {
    p.hpt.is_some() && !p.radix_chosen.load(Ordering::Acquire)
}
