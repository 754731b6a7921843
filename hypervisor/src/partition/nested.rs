//! Nested virtualization (KVM-HV's API v1) for a partition whose manifest says
//! `nested = true`: the hcalls of `papr::nested` applied, and the run loop of
//! an L2 on the L1's vCPU thread (H_ENTER_NESTED).
//!
//! Each L2 the L1 enters gets a shadow LPID of the L0's (`papr::nested::
//! ShadowLpids`) and a shadow partition-scoped tree (L2 guest real -> host
//! real, `mm::nested`), filled on the L2's faults from the L1's tree and the
//! L1's own memory. The L1's partition-table entry for the L2 is read again at
//! every H_ENTER_NESTED; when its dw0 (the L1's tree) changes, the shadow tree
//! is dropped, when dw1 (the L2's process table) changes, the shadow PATE is
//! rewritten. H_TLB_INVALIDATE and NESTED H_RPT_INVALIDATE drop shadow leaves
//! (a page's, a range's or all) and flush the shadow LPID.
//!
//! While the L2 runs, the thread's LPIDR is the shadow LPID and LPCR, PIDR,
//! SRR0/1, SPRG0-3, HFSCR, DAWR0/DAWRX0, CIABR and HDEC are the L2's; the L1's
//! are restored before the hcall returns (LPIDR, LPCR, PIDR, SRR0/1, SPRG0-3
//! and HFSCR by the next `vcpu::switch_in`, which compares them with the L1's).
//! Everything else (GPRs aside: FP/VMX/VSX, DEC, DAR/DSISR, AMR, the PMU...) is
//! live in the thread, as the L1 loaded it for the L2, and is left for the L1 to
//! read back, as KVM does.
//!
//! Lock order: a partition's `nested` lock is taken alone (never while holding
//! another partition lock), and never across the L2's run.
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::lpar::{self, Partition};
use super::vcpu::{self, Vcpu, VcpuContext};
use crate::arch::ppc64::guest::{self, GuestRegs};
use crate::arch::ppc64::mmu::{self, LinearTables};
use crate::arch::ppc64::percpu::PerCpu;
use crate::arch::ppc64::{instr, smp, spr, timer};
use crate::mm::guest_walk::GuestRealMemory;
use crate::mm::nested::{self as mn, Access, NestedFault};
use crate::mm::radix::{self, CacheAttr, RadixTree};
use crate::papr::hcall::{self as h, HcallError, HcallResult};
use crate::papr::nested::{self as n, ByteOrder, HvGuestState, L1PartitionTable, PtRegs};
use crate::sync::LoadAcquire;

/// vCPU tokens an L1 may use (KVM: `NR_CPUS`, 2048 in Debian's ppc64el build).
const MAX_VCPU_TOKEN: u32 = 2048;
/// Largest slice an L2 runs before the L0 looks at its own work (as for a
/// partition, `vcpu::SLICE_US`).
const L2_SLICE_US: u64 = 10_000;

/// Shadow LPIDs of every partition.
static SHADOW_LPIDS: spin::Mutex<n::ShadowLpids> = spin::Mutex::new(n::ShadowLpids::new());

/// Each hardware thread's `PerCpu::l2_lpid` holds the shadow LPID of the L2 it
/// is about to run or runs, 0 when none. The hcall fast path declines then (the
/// `sc 1` is the L2's, for its L1), and a shadow LPID is given back to the
/// shared pool only once no thread holds it: a thread still running a dropped
/// L2 keeps that LPID in LPIDR until its next exit, and must never find another
/// partition's tree behind it ([`NestedState::reap`]).
///
/// True while this thread (`me`) runs an L2.
#[inline(always)]
pub fn in_l2(me: &PerCpu) -> bool {
    me.l2_lpid.load(Ordering::Relaxed) != 0
}

/// At most this many L2s per partition (each holds a shadow LPID and a 64 KiB
/// root table): beyond, H_ENTER_NESTED of a new one answers H_RESOURCE.
pub const MAX_L2_PER_PARTITION: usize = 64;

/// One L2 of a partition.
struct L2Guest {
    /// The L1's number for it.
    l1_lpid: u32,
    shadow_lpid: u32,
    tree: RadixTree,
    /// The L1's partition-table entry as last installed.
    dw0: u64,
    dw1: u64,
}

impl L2Guest {
    /// Drops the shadow tree (no thread can walk it once its PATE is cleared
    /// and the LPID flushed) and returns the shadow LPID, which the caller
    /// retires until no thread holds it.
    fn drop_tables(self) -> u32 {
        mmu::set_pate(self.shadow_lpid, 0, 0);
        self.tree.destroy(&mut LinearTables);
        self.shadow_lpid
    }

    /// Drops every shadow leaf (a fresh, empty tree) and flushes the LPID.
    fn flush_all(&mut self) -> Result<(), HcallError> {
        let fresh = RadixTree::new(&mut LinearTables).map_err(|_| HcallError::NoMem)?;
        let old = core::mem::replace(&mut self.tree, fresh);
        mmu::set_pate(
            self.shadow_lpid,
            radix::radix_root_dw0(self.tree.root()) | radix::PATE_HR,
            self.dw1,
        );
        old.destroy(&mut LinearTables);
        Ok(())
    }

    /// Drops the shadow leaves overlapping `[start, end)` and flushes the LPID.
    fn flush_range(&mut self, start: u64, end: u64) {
        unmap_overlapping(&mut self.tree, start, end);
        instr::tlbie_lpid(self.shadow_lpid);
    }
}

/// Removes every shadow leaf that overlaps `[start, end)`.
fn unmap_overlapping(tree: &mut RadixTree, start: u64, end: u64) {
    let mut va = start & !0xfff;
    while va < end && va < 1 << radix::VA_BITS {
        match tree.translate(&LinearTables, va) {
            Some(t) => {
                let size = t.size.bytes();
                let base = va & !(size - 1);
                let _ = tree.unmap(&mut LinearTables, base, size);
                va = base + size;
            }
            None => va += 0x1000,
        }
    }
}

#[derive(Default)]
struct NestedState {
    table: Option<L1PartitionTable>,
    guests: Vec<L2Guest>,
    /// Shadow LPIDs of dropped L2s that a thread may still hold.
    retired: Vec<u32>,
}

impl NestedState {
    fn drop_all(&mut self) {
        for g in self.guests.drain(..) {
            let lpid = g.drop_tables();
            self.retired.push(lpid);
        }
        self.reap();
    }

    /// Gives back the retired shadow LPIDs no thread holds any more. Pairs
    /// with `run_l2`, which publishes its shadow LPID in `PerCpu::l2_lpid` and then
    /// checks under this lock that the L2 still exists (both sequentially
    /// consistent): either it sees the L2 gone, or this sees its LPID held.
    fn reap(&mut self) {
        core::sync::atomic::fence(Ordering::SeqCst);
        self.retired.retain(|&lpid| {
            let held = smp::cpus()
                .iter()
                .any(|c| c.l2_lpid.load(Ordering::SeqCst) == lpid);
            if !held {
                SHADOW_LPIDS.lock().free(lpid);
            }
            held
        });
    }

    fn guest(&mut self, l1_lpid: u32) -> Option<&mut L2Guest> {
        self.guests.iter_mut().find(|g| g.l1_lpid == l1_lpid)
    }
}

/// A partition's nesting: off unless its manifest enables it.
pub struct Nested {
    enabled: bool,
    state: spin::Mutex<NestedState>,
}

impl Nested {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: spin::Mutex::new(NestedState::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Forgets the L1's partition table and every L2 (reboot, stop).
    pub fn reset(&self) {
        let mut s = self.state.lock();
        s.table = None;
        s.drop_all();
    }
}

/// What a nested hcall gives back.
pub enum Outcome {
    /// A status (and outputs), as any hcall.
    Status(HcallResult),
    /// H_ENTER_NESTED: the L2's exit vector, returned in r3.
    Trap(u64),
}

/// True when `op` is a nested hcall this partition is offered (otherwise it is
/// answered H_FUNCTION as an unknown hcall).
pub fn handles(p: &Partition, op: u64) -> bool {
    p.nested.enabled()
        && matches!(
            op,
            n::H_SET_PARTITION_TABLE
                | n::H_ENTER_NESTED
                | n::H_TLB_INVALIDATE
                | n::H_COPY_TOFROM_GUEST
        )
}

/// Serves nested hcall `op` (one [`handles`] accepts).
pub fn dispatch(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, op: u64) -> Outcome {
    let g = ctx.regs.gpr;
    let r = match op {
        n::H_SET_PARTITION_TABLE => set_partition_table(p, g[4]),
        n::H_TLB_INVALIDATE => tlb_invalidate(p, g[4], g[5], g[6]),
        n::H_COPY_TOFROM_GUEST => copy_tofrom_guest(p, &g[4..10]),
        _ => match enter_nested(p, v, ctx, g[4], g[5]) {
            Ok(trap) => return Outcome::Trap(trap),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = r {
        vcpu::rate_limited_warn(p, "nested hcall refused (opcode)", op);
        vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
    }
    Outcome::Status(r)
}

fn set_partition_table(p: &Partition, ptcr: u64) -> HcallResult {
    let t = n::decode_ptcr(ptcr, p.mem_size)?;
    let mut s = p.nested.state.lock();
    if s.table != t {
        s.drop_all();
        s.table = t;
    }
    Ok([0; 4])
}

fn tlb_invalidate(p: &Partition, instr_: u64, rs: u64, rb: u64) -> HcallResult {
    let what = n::decode_tlb_invalidate(instr_, rs, rb)?;
    let mut s = p.nested.state.lock();
    match what {
        n::TlbInvalidate::Page { lpid, addr, shift } => {
            if let Some(g) = s.guest(lpid) {
                if 1u64 << shift > n::RPT_RANGE_CEILING {
                    g.flush_all()?;
                } else {
                    g.flush_range(addr, addr + (1u64 << shift));
                }
            }
        }
        n::TlbInvalidate::Lpid { lpid, .. } => {
            if let Some(g) = s.guest(lpid) {
                g.flush_all()?;
            }
        }
        n::TlbInvalidate::All { .. } => {
            for g in s.guests.iter_mut() {
                g.flush_all()?;
            }
        }
    }
    Ok([0; 4])
}

/// H_RPT_INVALIDATE with type NESTED (`a` = r4..r9); `None` when nesting is off
/// (the caller answers as without nesting).
pub fn rpt_invalidate_nested(p: &Partition, a: &[u64]) -> Option<HcallResult> {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    if !p.nested.enabled() || arg(2) & h::H_RPTI_TYPE_NESTED == 0 {
        return None;
    }
    if arg(5) < arg(4) {
        return Some(Err(HcallError::P5));
    }
    let r = (|| {
        let what = n::decode_rpt_nested(arg(1), arg(2), arg(3), arg(4), arg(5))?;
        let mut s = p.nested.state.lock();
        // An L2 the L0 has not run yet has nothing to flush (KVM: success).
        let Some(g) = s.guest(arg(0) as u32) else {
            return Ok([0; 4]);
        };
        match what {
            n::RptNested::All => g.flush_all()?,
            n::RptNested::Range { start, end } => g.flush_range(start, end),
            n::RptNested::Nothing => {}
        }
        Ok([0; 4])
    })();
    Some(r)
}

fn copy_tofrom_guest(p: &Partition, a: &[u64]) -> HcallResult {
    let c = n::decode_copy(a[0], a[1], a[2], a[3], a[4], a[5], p.mem_size)?;
    let (dw0, dw1) = {
        let mut s = p.nested.state.lock();
        let g = s.guest(c.lpid).ok_or(HcallError::Parameter)?;
        (g.dw0, g.dw1)
    };
    let access = if c.from_l2 {
        Access::Load
    } else {
        Access::Store
    };
    // Page by page through the L2's process-scoped and the L1's
    // partition-scoped tables.
    let mut done = 0u64;
    let mut buf = [0u8; 256];
    while done < c.len {
        let ea = c.eaddr + done;
        let in_page = 0x1000 - (ea & 0xfff);
        let n = (c.len - done).min(in_page).min(buf.len() as u64);
        let src = mn::l2_ea_to_l1(p, dw0, dw1, c.pid, ea, access).ok_or(HcallError::NotFound)?;
        let chunk = &mut buf[..n as usize];
        let ok = if c.from_l2 {
            p.read_guest(src, chunk)
                .and_then(|_| p.write_guest(c.l1_gra + done, chunk))
        } else {
            p.read_guest(c.l1_gra + done, chunk)
                .and_then(|_| p.write_guest(src, chunk))
        };
        ok.ok_or(HcallError::NotFound)?;
        done += n;
    }
    Ok([0; 4])
}

/// Reads the L1's partition-table entry for `l1_lpid` (big-endian, as the
/// hardware reads partition tables).
fn l1_pate(p: &Partition, t: &L1PartitionTable, l1_lpid: u32) -> Result<(u64, u64), HcallError> {
    let at = t.entry_addr(l1_lpid)?;
    let dw0 = p.read_be64(at).ok_or(HcallError::Parameter)?;
    let dw1 = p.read_be64(at + 8).ok_or(HcallError::Parameter)?;
    Ok((dw0, dw1))
}

/// Finds or creates the L2 and brings its shadow PATE up to date with the
/// L1's entry; returns the shadow LPID and the L1's dw0.
fn prepare_l2(p: &Partition, l1_lpid: u32) -> Result<(u32, u64), HcallError> {
    let mut s = p.nested.state.lock();
    s.reap();
    let t = s.table.ok_or(HcallError::NotAvailable)?;
    let (dw0, dw1) = l1_pate(p, &t, l1_lpid)?;
    if let Some(g) = s.guest(l1_lpid) {
        if g.dw0 != dw0 {
            g.dw0 = dw0;
            g.dw1 = dw1;
            g.flush_all()?;
        } else if g.dw1 != dw1 {
            g.dw1 = dw1;
            mmu::set_pate_dw1(g.shadow_lpid, dw1);
        }
        return Ok((g.shadow_lpid, dw0));
    }
    if s.guests.len() >= MAX_L2_PER_PARTITION {
        return Err(HcallError::Resource);
    }
    let shadow_lpid = SHADOW_LPIDS.lock().alloc().ok_or(HcallError::Resource)?;
    let tree = match RadixTree::new(&mut LinearTables) {
        Ok(t) => t,
        Err(_) => {
            SHADOW_LPIDS.lock().free(shadow_lpid);
            return Err(HcallError::NoMem);
        }
    };
    mmu::set_pate(
        shadow_lpid,
        radix::radix_root_dw0(tree.root()) | radix::PATE_HR,
        dw1,
    );
    s.guests.push(L2Guest {
        l1_lpid,
        shadow_lpid,
        tree,
        dw0,
        dw1,
    });
    Ok((shadow_lpid, dw0))
}

/// The L1's saved registers the L2 borrows.
struct L1Borrowed {
    dawr0: u64,
    dawrx0: u64,
    ciabr: u64,
}

fn enter_nested(
    p: &Partition,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    hv_gra: u64,
    regs_gra: u64,
) -> Result<u64, HcallError> {
    // The L1's byte order: the MSR it made the hcall with.
    let order = ByteOrder::of_msr(ctx.regs.msr);
    if p.nested.state.lock().table.is_none() {
        return Err(HcallError::NotAvailable);
    }
    let mut first = [0u8; 8];
    p.read_guest(hv_gra, &mut first)
        .ok_or(HcallError::Parameter)?;
    let size = n::hv_guest_state_size(HvGuestState::version_of(&first, order))
        .ok_or(HcallError::Parameter)?;
    let mut hv_buf = [0u8; n::HV_GUEST_STATE_V2_SIZE];
    p.read_guest(hv_gra, &mut hv_buf[..size])
        .ok_or(HcallError::Parameter)?;
    let mut hv = HvGuestState::decode(&hv_buf[..size], order)?;
    let mut regs_buf = [0u8; n::PT_REGS_SIZE];
    p.read_guest(regs_gra, &mut regs_buf)
        .ok_or(HcallError::Parameter)?;
    let mut regs = PtRegs::decode(&regs_buf, order)?;
    if hv.vcpu_token >= MAX_VCPU_TOKEN {
        return Err(HcallError::Parameter);
    }
    let (shadow_lpid, dw0) = prepare_l2(p, hv.lpid)?;

    let trap = run_l2(p, v, ctx, shadow_lpid, dw0, &mut hv, &mut regs);

    regs.trap = trap;
    hv.encode(&mut hv_buf[..size], order);
    regs.encode(&mut regs_buf, order);
    p.write_guest(hv_gra, &hv_buf[..size])
        .ok_or(HcallError::Parameter)?;
    p.write_guest(regs_gra, &regs_buf)
        .ok_or(HcallError::Parameter)?;
    Ok(trap)
}

/// Something the L1 must see before the L2 runs on: an interrupt of its own,
/// a stop, a reboot, a system reset.
fn l1_needs_thread(p: &Partition, v: &Vcpu, ctx: &VcpuContext) -> bool {
    !p.is_running()
        || v.state() != vcpu::VcpuState::Runnable
        || p.epoch.load_acquire() != ctx.epoch
        || vcpu::external_pending(p, v)
        || p.sreset_pending.load_acquire() != 0
}

fn run_l2(
    p: &Partition,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    shadow_lpid: u32,
    dw0: u64,
    hv: &mut HvGuestState,
    regs: &mut PtRegs,
) -> u64 {
    let mut g = GuestRegs {
        gpr: regs.gpr,
        cr: regs.ccr,
        lr: regs.link,
        ctr: regs.ctr,
        xer: regs.xer,
        pc: regs.nip,
        msr: n::l2_msr(regs.msr),
        ..Default::default()
    };
    let l1_lpcr = p.lpcr(lpar::host_lpcr()).bits();
    let lpcr = n::l2_lpcr(l1_lpcr, hv.lpcr);
    let hfscr = n::l2_hfscr(hv.hfscr, super::facility::guest_hfscr(spr::is_isa_v31()));
    let slice = timer::us_to_ticks(L2_SLICE_US);
    let me = crate::arch::ppc64::percpu::current();
    let borrowed = L1Borrowed {
        dawr0: spr::dawr0::read(),
        dawrx0: spr::dawrx0::read(),
        ciabr: spr::ciabr::read(),
    };
    // The L2's DAR/DSISR are what the L1 left in them (saved at its exit).
    let (mut dar, mut dsisr) = (ctx.sprs.dar, ctx.sprs.dsisr);
    let trap = loop {
        if l1_needs_thread(p, v, ctx) {
            break n::TRAP_NONE;
        }
        let Some(hdec) = n::l2_hdec(instr::mftb(), hv.hdec_expiry, slice) else {
            break n::TRAP_HDEC;
        };
        if let Some(c) = me {
            c.l2_lpid.store(shadow_lpid, Ordering::SeqCst);
        }
        // The L2 must still exist now that this thread holds its LPID (see
        // `NestedState::reap`): another vCPU of the L1 may have dropped it.
        let alive = p
            .nested
            .state
            .lock()
            .guests
            .iter()
            .any(|x| x.shadow_lpid == shadow_lpid);
        if !alive {
            if let Some(c) = me {
                c.l2_lpid.store(0, Ordering::SeqCst);
            }
            break n::TRAP_NONE;
        }
        // SAFETY: the shadow PATE maps only memory of this partition (every
        // shadow leaf points into the L1's memory, `fault`); the L2 runs with
        // HV and S clear; every SPR written here is restored for the L1 below
        // or by `vcpu::switch_in` before the L1 runs again; interrupts are off.
        let vector = unsafe {
            spr::lpidr::write(u64::from(shadow_lpid));
            spr::lpcr::write(lpcr);
            spr::pidr::write(hv.pidr);
            instr::isync();
            spr::hfscr::write(hfscr);
            spr::srr0::write(hv.srr0);
            spr::srr1::write(hv.srr1);
            spr::sprg0::write(hv.sprg[0]);
            spr::sprg1::write(hv.sprg[1]);
            spr::sprg2::write(hv.sprg[2]);
            spr::sprg3::write(hv.sprg[3]);
            spr::dar::write(dar);
            spr::dsisr::write(dsisr);
            spr::dawr0::write(hv.dawr0);
            spr::dawrx0::write(n::l2_dawrx(hv.dawrx0));
            spr::ciabr::write(n::l2_ciabr(hv.ciabr));
            spr::hdec::write(hdec);
            g.msr = n::l2_msr(g.msr);
            guest::enter(&mut g)
        };
        if let Some(c) = me {
            c.l2_lpid.store(0, Ordering::SeqCst);
        }
        hv.srr0 = spr::srr0::read();
        hv.srr1 = spr::srr1::read();
        hv.sprg = [
            spr::sprg0::read(),
            spr::sprg1::read(),
            spr::sprg2::read(),
            spr::sprg3::read(),
        ];
        hv.pidr = spr::pidr::read();
        dar = spr::dar::read();
        dsisr = spr::dsisr::read();
        let hw_hfscr = spr::hfscr::read();
        let (pc, msr) = if crate::fault::uses_hsrr(vector) {
            (g.hsrr0, g.hsrr1)
        } else {
            (g.srr0, g.srr1)
        };
        g.pc = pc;
        g.msr = msr;
        match n::classify_exit(vector) {
            n::L2Exit::L0 => {
                if vector == 0xe80 {
                    instr::msgclr_hyp();
                } else if vector == 0xe60 {
                    let _ = crate::platform::opal::handle_hmi();
                }
                crate::platform::opal::heartbeat();
                crate::console::input::poll_due();
                lpar::console_tick();
            }
            n::L2Exit::PageFault => {
                if let Some(t) = fault(p, shadow_lpid, dw0, vector, &g, hv) {
                    if vector == 0xe20 {
                        // An ISI's cause is in SRR1 (the L1 reads it from
                        // the returned MSR).
                        g.msr = (g.msr & !n::SRR1_ISI_BITS) | (hv.hdsisr & n::SRR1_ISI_BITS);
                    }
                    break t;
                }
            }
            n::L2Exit::ToL1(t) => {
                match t {
                    0xe40 => hv.heir = g.heir,
                    0xf80 => hv.hfscr = (hv.hfscr & !n::HFSCR_IC) | (hw_hfscr & n::HFSCR_IC),
                    _ => {}
                }
                break t;
            }
        }
    };
    // SAFETY: the L1's own values, read before the L2 ran.
    unsafe {
        spr::dawr0::write(borrowed.dawr0);
        spr::dawrx0::write(borrowed.dawrx0);
        spr::ciabr::write(borrowed.ciabr);
    }
    // The L2's DAR/DSISR stay live for the L1 to read (restored by switch_in).
    ctx.sprs.dar = dar;
    ctx.sprs.dsisr = dsisr;
    regs.gpr = g.gpr;
    regs.ccr = g.cr;
    regs.link = g.lr;
    regs.ctr = g.ctr;
    regs.xer = g.xer;
    regs.nip = g.pc;
    regs.msr = g.msr;
    trap
}

/// An HDSI/HISI of the L2: fills the shadow tree from the L1's (`None`: the L2
/// retries) or returns the trap to reflect, with HDAR/HDSISR/ASDR set in `hv`.
fn fault(
    p: &Partition,
    shadow_lpid: u32,
    dw0: u64,
    vector: u64,
    g: &GuestRegs,
    hv: &mut HvGuestState,
) -> Option<u64> {
    let (access, ea) = if vector == 0xe20 {
        (Access::Fetch, g.pc)
    } else if g.hdsisr & n::DSISR_ISSTORE != 0 {
        (Access::Store, g.hdar)
    } else {
        (Access::Load, g.hdar)
    };
    let mut l2_gra = g.asdr & !0xF000_0000_0000_0FFF;
    if g.hdsisr & n::DSISR_PRTABLE_FAULT == 0 || vector == 0xe20 {
        l2_gra |= ea & 0xfff;
    }
    let reflect = |hv: &mut HvGuestState, f: NestedFault| {
        hv.hdar = g.hdar;
        hv.hdsisr = f.dsisr(access);
        hv.asdr = match f {
            NestedFault::TableOutside(a) => a,
            _ => g.asdr,
        };
        Some(vector)
    };
    let leaf = match mn::translate_l2(p, dw0, l2_gra, access) {
        Ok(l) => l,
        Err(f) => return reflect(hv, f),
    };
    // The reference/change bits in the L1's leaf, as the hardware would set
    // them (a compare-and-swap: the L1 may be changing the entry).
    let mut pte = leaf.pte;
    if let Some(want) = mn::rc_update(&leaf, access) {
        match cas_be64(p, leaf.pte_addr, leaf.pte, want) {
            Some(true) => pte = want,
            // The L1 changed it meanwhile: let the L2 retry and walk again.
            Some(false) => return None,
            None => return reflect(hv, NestedFault::TableOutside(leaf.pte_addr)),
        }
    }
    let s = mn::shadow_leaf(l2_gra, &leaf, pte);
    // The L1's page must be its memory (zeroed on first use like any other).
    let Some(host) = p.host_addr(s.l1_gra, s.size) else {
        vcpu::rate_limited_warn(p, "nested: L2 page outside the L1's memory", s.l1_gra);
        hv.hdar = g.hdar;
        hv.hdsisr = n::DSISR_BADACCESS | (g.hdsisr & n::DSISR_ISSTORE);
        hv.asdr = g.asdr;
        return Some(vector);
    };
    let host_pa = host & !crate::mm::LINEAR_BASE;
    let mut st = p.nested.state.lock();
    let Some(l2) = st.guests.iter_mut().find(|x| x.shadow_lpid == shadow_lpid) else {
        return Some(n::TRAP_NONE);
    };
    // Replace what is there (a read-only leaf before the first store).
    unmap_overlapping(&mut l2.tree, s.l2_gra, s.l2_gra + s.size);
    let mapped = l2.tree.map(
        &mut LinearTables,
        s.l2_gra,
        host_pa,
        s.size,
        s.flags,
        CacheAttr::Normal,
        mn::SHADOW_MAX,
    );
    instr::tlbie_lpid(shadow_lpid);
    if mapped.is_err() {
        // Out of table memory: start the L2's shadow tree afresh.
        let _ = l2.flush_all();
    }
    None
}

/// Compare-and-swap of the big-endian doubleword at L1 guest real `gra`.
fn cas_be64(p: &Partition, gra: u64, old: u64, new: u64) -> Option<bool> {
    if !gra.is_multiple_of(8) {
        return None;
    }
    let at = p.host_addr(gra, 8)?;
    // SAFETY: 8 aligned bytes inside the partition's memory, which the
    // hypervisor maps for the partition's whole life; an atomic access, as the
    // L1 may update the entry concurrently.
    let cell = unsafe { &*(at as *const core::sync::atomic::AtomicU64) };
    Some(
        cell.compare_exchange(
            old.to_be(),
            new.to_be(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok(),
    )
}
