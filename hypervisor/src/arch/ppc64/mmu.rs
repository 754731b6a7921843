//! The hypervisor's own address space: a radix tree for quadrant 3 (0xc000...),
//! mapping all usable RAM at 0xc000_0000_0000_0000 + physical, with the image split
//! into text (read/execute), read-only data and data (read/write, no execute),
//! firmware (OPAL/skiboot) memory left unmapped, the device tree and initrd mapped
//! read-only, and a guard page under every stack left unmapped.
//!
//! Translation setup (Power ISA v3.0B Book III 5.7): PTCR points at a partition
//! table whose entry 0 (LPID 0, the hypervisor) has HR set and names both the radix
//! tree and a process table; process-table entry 0 (PID 0, used for quadrant 3 in
//! hypervisor state) names the same tree. PIDR is set to 1, whose process-table
//! entry is invalid, so quadrant-0 addresses, i.e. null and small wild pointers,
//! fault instead of aliasing low memory.
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::instr;
use super::percpu::PerCpu;
use super::regs::{Lpcr, Msr};
use super::spr;
use crate::be::Be64;
use crate::error;
use crate::mm::frame::{PhysRange, PAGE_SIZE};
use crate::mm::radix::{self, CacheAttr, MapError, PageSize, PteFlags, RadixTree, TableMemory};
use crate::mm::{self as mm, LINEAR_BASE};

/// PTCR value every thread loads, and the LPCR bits they share.
static PTCR_VALUE: AtomicU64 = AtomicU64::new(0);
static TLB_SETS: AtomicU64 = AtomicU64::new(128);
/// Physical address of the partition table (LPID-indexed, 16 bytes per entry).
static PARTITION_TABLE: AtomicU64 = AtomicU64::new(0);
/// Whether threads load PTCR themselves (no ultravisor; `build` decides).
static WRITE_PTCR: AtomicBool = AtomicBool::new(true);

/// Partition table size: 2^(12+PATS) bytes; PATS = 4 gives 4096 LPIDs (POWER9's
/// 12-bit LPID space).
pub const PATS: u8 = 4;
/// Process table size: 2^(12+PRTS); PRTS = 0 gives 256 PIDs, plenty for the
/// hypervisor (only PID 0 is valid).
pub const PRTS: u8 = 0;
/// PID the hypervisor runs with: an invalid process-table entry, so quadrant 0 faults.
pub const HV_PIDR: u64 = 1;

/// Table memory through the linear map, allocated from the frame allocator.
pub struct LinearTables;

impl TableMemory for LinearTables {
    fn alloc_table(&mut self, bytes: u64) -> Option<u64> {
        let pa = mm::alloc_frames(bytes, bytes.max(PAGE_SIZE)).ok()?;
        mm::zero_phys(pa, bytes);
        Some(pa)
    }

    fn free_table(&mut self, pa: u64, bytes: u64) {
        mm::free_frames(pa, bytes);
    }

    fn read(&self, pa: u64) -> Be64 {
        // SAFETY: `pa` lies in a table this allocator handed out (the radix builder
        // only follows its own directory entries), reachable in real mode and through
        // the linear map alike.
        unsafe { core::ptr::read_volatile((LINEAR_BASE | pa) as *const Be64) }
    }

    fn write(&mut self, pa: u64, v: Be64) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((LINEAR_BASE | pa) as *mut Be64, v) }
    }
}

extern "C" {
    static _etext: u8;
    static _erodata: u8;
    static _image_end: u8;
    static __boot_stack_guard: u8;
}

fn sym(s: &u8) -> u64 {
    (s as *const u8 as u64) & !LINEAR_BASE
}

/// Physical end of the text, read-only data and the whole image.
pub fn image_layout() -> (u64, u64, u64) {
    // SAFETY: linker-defined symbols; only their addresses are used.
    unsafe { (sym(&_etext), sym(&_erodata), sym(&_image_end)) }
}

/// Physical address of the boot stack's guard page.
pub fn boot_stack_guard() -> u64 {
    // SAFETY: a linker-defined symbol; only its address is used.
    unsafe { sym(&__boot_stack_guard) }
}

/// What the hypervisor's map must honour.
pub struct MapPlan<'a> {
    pub memory: &'a [PhysRange],
    /// Never mapped: firmware.
    pub firmware: &'a [PhysRange],
    /// Mapped read-only: the device tree, the initrd.
    pub read_only: &'a [PhysRange],
    /// 4 KiB guard pages to leave unmapped.
    pub guards: &'a [u64],
    /// Device registers the hypervisor drives itself, mapped caching-inhibited
    /// and guarded (page-aligned ranges outside RAM).
    pub io: &'a [PhysRange],
    pub tlb_sets: u32,
}

fn map(tree: &mut RadixTree, r: PhysRange, flags: PteFlags) -> Result<(), MapError> {
    if r.end <= r.start {
        return Ok(());
    }
    tree.map(
        &mut LinearTables,
        r.start,
        r.start,
        r.end - r.start,
        flags | PteFlags::PRIVILEGED,
        CacheAttr::Normal,
        PageSize::Size1G,
    )
}

/// Builds the hypervisor's page tables and the partition and process tables. Run
/// once, on the boot thread, before [`enable_this_thread`].
pub fn build(plan: &MapPlan) -> Result<(), MapError> {
    let (etext, erodata, image_end) = image_layout();
    let mut tree = RadixTree::new(&mut LinearTables)?;

    map(
        &mut tree,
        PhysRange {
            start: 0,
            end: etext,
        },
        PteFlags::READ | PteFlags::EXEC,
    )?;
    map(
        &mut tree,
        PhysRange {
            start: etext,
            end: erodata,
        },
        PteFlags::READ,
    )?;
    map(
        &mut tree,
        PhysRange {
            start: erodata,
            end: image_end,
        },
        PteFlags::READ | PteFlags::WRITE,
    )?;

    let mut holes: heapless::Vec<PhysRange, 80> = heapless::Vec::new();
    let _ = holes.push(PhysRange {
        start: 0,
        end: image_end,
    });
    for r in plan.firmware.iter().chain(plan.read_only) {
        holes
            .push(mm::round_out(*r))
            .map_err(|_| MapError::NoMemory)?;
    }
    for r in plan.memory {
        for piece in mm::subtract(*r, &holes).iter() {
            map(&mut tree, *piece, PteFlags::READ | PteFlags::WRITE)?;
        }
    }
    for r in plan.read_only {
        map(&mut tree, mm::round_out(*r), PteFlags::READ)?;
    }
    for &g in plan.guards {
        tree.unmap(&mut LinearTables, g, PAGE_SIZE)?;
    }
    for r in plan.io {
        tree.map(
            &mut LinearTables,
            r.start,
            r.start,
            r.end - r.start,
            PteFlags::READ | PteFlags::WRITE | PteFlags::PRIVILEGED,
            CacheAttr::NonIdempotentIo,
            PageSize::Size2M,
        )?;
    }

    let part = LinearTables
        .alloc_table(1 << (12 + PATS))
        .ok_or(MapError::NoMemory)?;
    let proc = LinearTables
        .alloc_table(1 << (12 + PRTS))
        .ok_or(MapError::NoMemory)?;
    let [p0, p1] = radix::process_table_entry(tree.root());
    LinearTables.write(proc, p0);
    LinearTables.write(proc + 8, p1);
    let [d0, d1] = radix::pate(tree.root(), proc, PRTS);
    PARTITION_TABLE.store(part, Ordering::Relaxed);
    PTCR_VALUE.store(radix::ptcr(part, PATS), Ordering::Release);
    // With an ultravisor the table above is only the hypervisor's copy: the UV
    // owns the one the hardware walks, and LPID 0's entry goes there too.
    let route = crate::uv::host::PateRoute::for_host(super::ucall::present());
    let mut uc = super::ucall::Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn crate::uv::Ultravisor);
    let writes_ptcr = crate::uv::host::install_hypervisor_pate(
        route,
        &mut HvPartitionTable,
        uv,
        d0.get(),
        d1.get(),
    )
    .map_err(|_| MapError::NoMemory)?;
    WRITE_PTCR.store(writes_ptcr, Ordering::Release);
    TLB_SETS.store(u64::from(plan.tlb_sets.max(1)), Ordering::Relaxed);
    // The tree lives as long as the hypervisor; its root is in the tables above.
    let _ = tree;
    Ok(())
}

/// LPCR for the hypervisor: host radix with a process table, no alternate interrupt
/// location (interrupts at physical 0, real mode), HDEC interrupts enabled, and
/// wake-up from `stop` on doorbells, decrementers, external and other events.
fn hypervisor_lpcr(old: Lpcr) -> Lpcr {
    let mut l = old;
    // No HVICE: the hypervisor never takes a host interrupt while it runs
    // (MSR[EE] windows in the idle loop); the physical ring's signal only
    // wakes `stop` (HVEE) and ends guest runs (the partition's LPCR, for
    // pass-through MSIs), and is acknowledged by polling code.
    l.remove(Lpcr::AIL | Lpcr::HAIL | Lpcr::LD | Lpcr::HVICE);
    l.insert(
        Lpcr::HR
            | Lpcr::UPRT
            | Lpcr::HDICE
            | Lpcr::HDEE
            | Lpcr::PDEE
            | Lpcr::DEE
            | Lpcr::EEE
            | Lpcr::OEE
            | Lpcr::HVEE,
    );
    l
}

/// Loads the tables on this thread and turns translation on. The caller runs at its
/// linked (0xc000...) address on a linear-map stack, so execution continues
/// seamlessly.
pub fn enable_this_thread(pc: &PerCpu) {
    let ptcr = PTCR_VALUE.load(Ordering::Acquire);
    let lpcr = hypervisor_lpcr(Lpcr::from_bits_retain(spr::lpcr::read()));
    // SAFETY: translation is still off; the tables were fully built and made
    // visible (ptesync) by `build`; LPID 0 and PID 1 are the hypervisor's.
    unsafe {
        instr::ptesync();
        // With an ultravisor PTCR is its register (a write traps, HEAI): it
        // loaded its own table, which has LPID 0's entry (`build`).
        if WRITE_PTCR.load(Ordering::Acquire) {
            spr::ptcr::write(ptcr);
        }
        spr::lpcr::write(lpcr.bits());
        instr::isync();
        spr::lpidr::write(0);
        spr::pidr::write(HV_PIDR);
        instr::isync();
    }
    instr::tlbiel_all(TLB_SETS.load(Ordering::Relaxed) as u32);
    // Machine checks on (skiboot enters with ME clear), translation on.
    let msr = instr::mfmsr() | Msr::IR | Msr::DR | Msr::ME | Msr::RI;
    pc.kernel_msr.store(msr.bits(), Ordering::Release);
    // SAFETY: the MSR switch keeps executing at the same (linear-map) addresses and
    // the interrupt entry now also runs translated (`kernel_msr`).
    unsafe { instr::set_msr_hrfid(msr) };
}

/// Congruence classes of this processor's radix TLB (what a by-PID or by-LPID
/// `tlbiel` walks; from the host device tree, 128 on POWER9).
pub fn tlb_sets() -> u32 {
    TLB_SETS.load(Ordering::Relaxed) as u32
}

/// Global TLB flush after the boot thread built the tables (other threads flush
/// locally when they enable translation).
pub fn flush_all() {
    instr::tlbie_all();
}

fn pate_addr(lpid: u32) -> Option<u64> {
    let base = PARTITION_TABLE.load(Ordering::Acquire);
    let max = (1u64 << (12 + PATS)) / 16;
    (base != 0 && u64::from(lpid) < max).then(|| base + 16 * u64::from(lpid))
}

/// The hypervisor's partition table, as `uv::host` stores into it.
pub struct HvPartitionTable;

impl crate::uv::host::PateStore for HvPartitionTable {
    fn store(&mut self, lpid: u32, dw0: u64, dw1: u64) {
        if let Some(at) = pate_addr(lpid) {
            LinearTables.write(at, Be64::new(dw0));
            LinearTables.write(at + 8, Be64::new(dw1));
        }
    }
}

/// Writes partition-table entry `lpid` (both doublewords) and flushes the LPID:
/// into the hypervisor's table, and with an ultravisor through UV_WRITE_PATE
/// (`uv::host::set_pate`).
pub fn set_pate(lpid: u32, dw0: u64, dw1: u64) {
    if pate_addr(lpid).is_none() {
        return;
    }
    let route = crate::uv::host::PateRoute::for_host(super::ucall::present());
    let mut uc = super::ucall::Ucall::get();
    let uv = uc.as_mut().map(|u| u as &mut dyn crate::uv::Ultravisor);
    if let Err(e) = crate::uv::host::set_pate(route, &mut HvPartitionTable, uv, lpid, dw0, dw1) {
        error!("UV_WRITE_PATE of LPID {} refused: {:?}", lpid, e.error);
    }
    instr::tlbie_lpid(lpid);
}

/// Rewrites only the process-table doubleword of `lpid`'s entry.
pub fn set_pate_dw1(lpid: u32, dw1: u64) {
    if let Some(at) = pate_addr(lpid) {
        let dw0 = LinearTables.read(at).get();
        set_pate(lpid, dw0, dw1);
    }
}
