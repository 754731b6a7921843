//! LPAR creation: LPID, guest memory, the partition-scoped radix tree and PATE, the
//! guest image, its device tree and RTAS blob; and partition stop/outcome.
use crate::sync::LoadAcquire;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::demand::{self, ChunkMap};
use super::manifest::{Manifest, MmuMode, PartitionSpec};
use super::teardown::Step;
use super::vcpu::Vcpu;
use crate::arch::ppc64::regs::{Lpcr, Msr};
use crate::arch::ppc64::{instr, mmu, smp, spr, timer};
use crate::be::Be64;
use crate::console::lines::{self, VtyLine, Who};
use crate::loader::elf::{self, GuestSink};
use crate::loader::layout::{self, KERNEL_ADDR, RTAS_SIZE};
use crate::mm::extent::ExtentMap;
use crate::mm::frame::PhysRange;
use crate::mm::radix::{self, CacheAttr, MapError, PageSize, PteFlags, RadixTree, TableMemory};
use crate::mm::{self, LINEAR_BASE};
use crate::papr::xics::Xics;
use crate::papr::{guest_fdt, hcall, rtas};
use crate::xive::{self, SharedXive, Xive};
use crate::{error, info, warn};

/// The vty's unit address, as QEMU's pseries gives it.
pub const VTY_REG: u32 = 0x7100_0000;
/// The vty's interrupt source number (`vio::vty::VTY_LISN`): device sources
/// start at 0x1000 as on QEMU's pseries, above the IPIs (one per vCPU).
pub const VTY_LISN: u32 = super::vio::vty::VTY_LISN;
/// Whether the vty's interrupt is advertised (`interrupts` in its node): Linux's
/// hvc driver then stops polling and waits for it.
pub const VTY_IRQ: bool = true;

/// Why a partition stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    PowerOff,
    OsTerm(String),
    Fault(String),
}

impl StopReason {
    pub fn passed(&self) -> bool {
        matches!(self, StopReason::PowerOff)
    }
}

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;

/// One logical partition.
pub struct Partition {
    pub name: String,
    /// `[<name>] `: the prefix of its console lines.
    pub console_prefix: String,
    pub lpid: u32,
    /// Guest real memory [0, mem_size), backed by host-contiguous extents
    /// (`mm::extent`): not one block, so a partition fits around the holes in
    /// host memory.
    pub mem: ExtentMap,
    pub mem_size: u64,
    pub vcpus: Vec<Box<Vcpu>>,
    pub console: bool,
    pub console_input: bool,
    /// Partition-wide register bits set by H_SET_MODE.
    pub interrupt_le: AtomicBool,
    pub ail: AtomicU8,
    /// Offset of this partition's clock from the host RTC (set-time-of-day).
    pub tod_offset: AtomicI64,
    /// Console text not yet on the console (`console::lines`).
    pub console_line: spin::Mutex<VtyLine>,
    /// Timebase of the last console output that left text waiting in
    /// `console_line`; 0 when none waits (see `console_tick`).
    pub console_waiting_since: AtomicU64,
    state: AtomicU8,
    reason: spin::Mutex<Option<StopReason>>,
    /// Where the guest was entered, for restarts.
    pub entry: u64,
    pub fdt_gra: u64,
    pub big_endian: bool,
    /// Guest real address and size of the RTAS blob.
    pub rtas: (u64, u64),
    /// What it boots, for system-reboot.
    pub boot: BootImage,
    /// A vCPU called system-reboot; the first to set it (compare-and-swap) owns
    /// the reboot, later callers only stop.
    pub reboot_requested: AtomicBool,
    /// The teardown (`release`: PEF state, partition-table entry and the
    /// ordered `partition::teardown`) ran since the image last started: a
    /// stop's last vCPU out runs it once (`release_if_idle`), a reboot always.
    torn_down: AtomicBool,
    /// Its stop was counted off `RUNNING_COUNT` (after its teardown, so the
    /// last partition's devices are reset before the machine powers off).
    stop_counted: AtomicBool,
    /// Passed-through PCI functions (docs/passthrough.md); empty for most.
    pub pci: super::passthrough::Passthrough,
    pub boots: AtomicU32,
    /// Boot epoch: even while the partition runs an image, odd while a reboot
    /// replaces it (`reboot` bumps it before stopping the vCPUs and after
    /// loading). vCPU start requests and running vCPUs carry the epoch they
    /// belong to (`Vcpu::request_start`, `vcpu::thread_work`).
    pub epoch: AtomicU32,
    /// The process-table doubleword of the PATE (H_REGISTER_PROC_TBL), 0 when
    /// none; read to translate guest effective addresses (MMIO emulation).
    pub proc_tbl: AtomicU64,
    /// LPCR[GTSE]: the guest may tlbie its process-scoped entries (offered before
    /// any registration; then as H_REGISTER_PROC_TBL's GTSE flag says).
    pub gtse: AtomicBool,
    /// Which vCPUs are in the guest and which must drop their thread's
    /// process-scoped translations before entering (H_RPT_INVALIDATE,
    /// `partition::tlb`).
    pub tlb: super::tlb::Shootdown,
    /// The emulated XIVE (exploitation mode) the guest drives through H_INT_*
    /// and its TIMA/ESB pages (`xive`), with each vCPU's pending state mirrored
    /// for the lock-free entry check (`xive::SharedXive`); lock order: taken last.
    pub xive: SharedXive,
    /// The emulated XICS (`papr::xics`: ICPs and the vty's source) for kernels
    /// that do not use XIVE, driven through `partition::xics`; never held with
    /// another partition lock.
    pub xics: spin::Mutex<Xics>,
    /// The VIO bus: devices, DMA windows, signal states (`partition::vio`).
    pub vio: super::vio::Vio,
    /// The v-scsi adapter and its disks, if the manifest gives it disks
    /// (`partition::vio::vscsi`).
    pub vscsi: Option<super::vio::vscsi::Vscsi>,
    /// Its NVRAM (RTAS nvram-fetch/store), kept across reboots.
    pub nvram: spin::Mutex<crate::papr::nvram::Nvram>,
    /// Where its NVRAM lives in the host NVRAM (`nvram_host`), `NO_SLOT` if
    /// nowhere.
    pub nvram_host: AtomicU64,
    /// Guest real address of the FWNMI system-reset handler (ibm,nmi-register);
    /// `u64::MAX` when none is registered (system resets go to 0x100).
    pub fwnmi_sreset: AtomicU64,
    /// Guest real address of the FWNMI machine-check handler (ibm,nmi-register);
    /// `u64::MAX` when none is registered (machine checks go to 0x200).
    pub fwnmi_mce: AtomicU64,
    /// The vCPU (index in `vcpus`) whose FWNMI machine check holds the
    /// partition's error-log buffer until it calls ibm,nmi-interlock;
    /// `u64::MAX` when free.
    pub fwnmi_interlock: AtomicU64,
    /// vCPUs (bit = index in `vcpus`; at most 64) with a system reset to take
    /// (H_SIGNAL_SYS_RESET), delivered on their next entry.
    pub sreset_pending: AtomicU64,
    /// Memory zeroed on first use (`demand`).
    demand: Demand,
    /// This partition's warnings (`vcpu::rate_limited_warn`).
    pub warn_budget: crate::log::Budget,
    /// Its share of the console's output (`console::Share`) and what it did
    /// with it.
    console_share: spin::Mutex<crate::console::Share>,
    pub console_stats: ConsoleStats,
    /// PEF: its secure-VM state when an ultravisor is present (`partition::pef`).
    pub uv: crate::uv::partition::PartitionUv,
    /// H_TPM_COMM: may it (manifest `tpm` or `secure`), and its session
    /// (`partition::tpm`).
    pub tpm_allowed: bool,
    pub tpm: spin::Mutex<crate::uv::tpm::TpmSession>,
    /// Nested virtualization (manifest `nested`): the L1's partition table and
    /// its L2s' shadow state (`partition::nested`).
    pub nested: super::nested::Nested,
    /// What the manifest's `mmu` offers the guest.
    pub mmu: MmuMode,
    /// The hashed page table of a partition that offers hash translation
    /// (`partition::hash`); `None` for radix-only ones.
    pub hpt: Option<super::hash::Hpt>,
    /// An `mmu = "any"` partition whose guest registered a radix process table:
    /// it runs radix from then on (until a reboot).
    pub radix_chosen: AtomicBool,
}

/// A partition's console output, for the summary line at its stop (the bytes
/// it sent are counted in its `VtyLine`).
#[derive(Debug, Default)]
pub struct ConsoleStats {
    /// Times it was beyond its share and waited for the console.
    pub throttled: AtomicU64,
    /// Timebase ticks spent waiting so.
    pub throttled_ticks: AtomicU64,
    /// Bytes dropped: the console took nothing for two seconds while it waited,
    /// or it stopped meanwhile.
    pub dropped: AtomicU64,
}

/// A partition's console share (`console::Share`): bytes a second, and at once.
/// The emulated UART drains some tens of KiB a second; a guest within these
/// never waits for it, one beyond waits while more than `CONSOLE_SHARE_LOW` are
/// queued: 16 KiB below the 64 KiB high-water mark at which everyone waits
/// (`console::settle`), so others' lines and the hypervisor's log always find
/// room, while a busy guest on a fast sink (a virtio console, drained in 16 KiB
/// batches) hardly ever waits.
///
/// Shares are only consulted while more than `CONSOLE_SHARE_MID` bytes are
/// queued: below that the console keeps up and nobody needs protecting, and
/// the hcall fast path pays one atomic load. (A partition's credit refills
/// meanwhile, so one that pushes the queue past the mark gets at most a burst
/// beyond it before it waits at `CONSOLE_SHARE_LOW`.)
const CONSOLE_SHARE_RATE: u64 = 4 << 10;
const CONSOLE_SHARE_BURST: u64 = 16 << 10;
const CONSOLE_SHARE_MID: usize = 32 << 10;
const CONSOLE_SHARE_LOW: usize = 48 << 10;

/// A partition's memory as the XIVE model sees it (event queues).
pub struct GuestRam<'a>(pub &'a Partition);

impl xive::GuestMemory for GuestRam<'_> {
    fn write_be32(&mut self, gpa: u64, value: u32) -> bool {
        self.0.write_guest_be32(gpa, value).is_some()
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.0.contains(gpa, len)
    }
}

/// A partition's memory zeroed on first use: which 2 MiB chunks are ready, and
/// its partition-scoped tree, where a chunk is mapped once it is (the lock also
/// serialises zeroing a chunk).
struct Demand {
    map: ChunkMap,
    tree: spin::Mutex<RadixTree>,
}

/// Maps guest real `r` of a partition with memory `mem` (a chunk lies in one
/// extent, but any range works); a range mapped already is fine.
fn map_chunk(tree: &mut RadixTree, mem: &ExtentMap, r: PhysRange) -> Result<(), MapError> {
    let pieces = mem
        .pieces(r.start, r.end - r.start)
        .ok_or(MapError::OutOfRange)?;
    for piece in pieces {
        match tree.map(
            &mut Tables,
            piece.gra,
            piece.pa,
            piece.len,
            PteFlags::READ | PteFlags::WRITE | PteFlags::EXEC,
            CacheAttr::Normal,
            PageSize::Size2M,
        ) {
            Ok(()) | Err(MapError::AlreadyMapped) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Zeroes guest real `[gra, gra + len)` of memory `mem` (inside it).
fn zero_guest(mem: &ExtentMap, gra: u64, len: u64) {
    for piece in mem.pieces(gra, len).into_iter().flatten() {
        mm::zero_phys(piece.pa, piece.len);
    }
}

/// The loader's view of a partition's memory (`elf::GuestSink`), written
/// piece by piece across extents. Used only while no vCPU of the partition
/// runs (creation, reboot).
struct LoaderSink<'a>(&'a ExtentMap);

impl GuestSink for LoaderSink<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn write(&mut self, gra: u64, bytes: &[u8]) {
        for piece in self.0.pieces(gra, bytes.len() as u64).into_iter().flatten() {
            let from = piece.offset as usize;
            let src = &bytes[from..from + piece.len as usize];
            // SAFETY: the piece lies in this partition's frames, reached through
            // the linear map; no vCPU runs while the loader writes (see above).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    (LINEAR_BASE | piece.pa) as *mut u8,
                    src.len(),
                )
            };
        }
    }

    fn zero(&mut self, gra: u64, len: u64) {
        zero_guest(self.0, gra, len);
    }
}

/// Every partition, by index; written once at boot.
static PARTITIONS: spin::Once<Vec<Partition>> = spin::Once::new();
static RUNNING_COUNT: AtomicU32 = AtomicU32::new(0);
static POWER_OFF_WHEN_IDLE: AtomicBool = AtomicBool::new(true);

/// Ctrl-A x: the machine powers off once the partitions it stopped are torn
/// down, whatever the manifest's `power_off_when_idle` says.
pub fn request_power_off() {
    POWER_OFF_WHEN_IDLE.store(true, Ordering::Relaxed);
}

pub fn partitions() -> &'static [Partition] {
    PARTITIONS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Partition-scoped tables live in frames reached through the linear map.
pub(crate) struct Tables;

impl TableMemory for Tables {
    fn alloc_table(&mut self, bytes: u64) -> Option<u64> {
        mmu::LinearTables.alloc_table(bytes)
    }
    fn free_table(&mut self, pa: u64, bytes: u64) {
        mmu::LinearTables.free_table(pa, bytes)
    }
    fn read(&self, pa: u64) -> Be64 {
        mmu::LinearTables.read(pa)
    }
    fn write(&mut self, pa: u64, v: Be64) {
        mmu::LinearTables.write(pa, v)
    }
}

/// Why a partition could not be created.
#[derive(Debug)]
pub enum CreateError {
    Memory(mm::frame::FrameError),
    Map(MapError),
    MissingFile(String),
    Elf(elf::ElfError),
    Fdt,
    TooBig(&'static str),
    BadCpu(u32),
    Device(super::passthrough::DeviceError),
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CreateError::Memory(e) => write!(f, "guest memory: {e:?}"),
            CreateError::Map(e) => write!(f, "partition-scoped table: {e:?}"),
            CreateError::MissingFile(p) => write!(f, "file {p:?} is not in the boot bundle"),
            CreateError::Elf(e) => write!(f, "kernel image: {e:?}"),
            CreateError::Fdt => write!(f, "building the device tree failed"),
            CreateError::TooBig(what) => write!(f, "{what} does not fit in partition memory"),
            CreateError::BadCpu(c) => write!(f, "hardware thread {c} does not exist or is offline"),
            CreateError::Device(e) => write!(f, "pass-through: {e}"),
        }
    }
}

impl Partition {
    pub fn is_running(&self) -> bool {
        self.state.load_acquire() == RUNNING
    }

    /// `is_running` with a relaxed load (the hcall fast path fences once after
    /// all its checks).
    #[inline(always)]
    pub(crate) fn is_running_relaxed(&self) -> bool {
        self.state.load(Ordering::Relaxed) == RUNNING
    }

    /// The boot epoch now (see the field).
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().clone()
    }

    /// Host linear address of guest real `gra` if `[gra, gra+len)` lies in the
    /// partition's memory and in one host extent (as any naturally aligned
    /// access up to 2 MiB does). Chunks of it not used yet are zeroed (and mapped
    /// for the guest) first, so the hypervisor never shows the guest stale bytes.
    pub fn host_addr(&self, gra: u64, len: u64) -> Option<u64> {
        let end = gra.checked_add(len)?;
        if end > self.mem_size || !self.uv.hv_may_access(gra, len) || !self.prepare(gra, len) {
            return None;
        }
        self.mem.contiguous(gra, len).map(|pa| LINEAR_BASE | pa)
    }

    /// Calls `f(host linear address, offset in the range, length)` for each
    /// host-contiguous piece of `[gra, gra + len)`, after preparing it as
    /// `host_addr` does; `None` (and no call) if any byte lies outside the
    /// partition's memory.
    fn for_pieces(&self, gra: u64, len: u64, mut f: impl FnMut(u64, usize, usize)) -> Option<()> {
        let end = gra.checked_add(len)?;
        if end > self.mem_size || !self.uv.hv_may_access(gra, len) || !self.prepare(gra, len) {
            return None;
        }
        for piece in self.mem.pieces(gra, len)? {
            f(
                LINEAR_BASE | piece.pa,
                piece.offset as usize,
                piece.len as usize,
            );
        }
        Some(())
    }

    /// Whether `[gra, gra + len)` is the partition's memory (prepared for use).
    pub fn contains(&self, gra: u64, len: u64) -> bool {
        self.for_pieces(gra, len, |_, _, _| {}).is_some()
    }

    /// Zeroes and maps every chunk of `[gra, gra + len)` that is not ready; false
    /// if one could not be mapped (no memory for a table).
    fn prepare(&self, gra: u64, len: u64) -> bool {
        let d = &self.demand;
        d.map
            .chunks_in(gra, len)
            .all(|c| d.map.is_ready(c) || self.make_ready(c))
    }

    fn make_ready(&self, c: u64) -> bool {
        let d = &self.demand;
        let mut tree = d.tree.lock();
        if d.map.is_ready(c) {
            return true;
        }
        let r = d.map.range(c);
        zero_guest(&self.mem, r.start, r.end - r.start);
        if map_chunk(&mut tree, &self.mem, r).is_err() {
            return false;
        }
        // Invalid to valid: no invalidation needed, only ordering before the
        // guest's retry.
        instr::ptesync();
        d.map.set_ready(c);
        true
    }

    /// The guest's access to guest real `gra` found no partition-scoped
    /// translation (HDSI or HISI). True when `gra` is memory of the partition,
    /// now zeroed and mapped on first use: the guest retries the access.
    pub fn demand_fault(&self, gra: u64) -> bool {
        gra < self.mem_size && self.prepare(gra, 1)
    }

    /// Copies guest memory out; `None` if any byte lies outside the partition.
    pub fn read_guest(&self, gra: u64, out: &mut [u8]) -> Option<()> {
        let dst = out.as_mut_ptr();
        self.for_pieces(gra, out.len() as u64, |src, off, n| {
            // SAFETY: each piece was checked to lie inside this partition's
            // memory, which the hypervisor maps for its whole life, and `off + n`
            // inside `out`; guests may race with us, which is harmless for byte
            // copies.
            unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst.add(off), n) };
        })
    }

    /// Stores a big-endian word as one aligned 32-bit store, so a vCPU polling
    /// the word (an event queue) never sees it half written.
    pub fn write_guest_be32(&self, gra: u64, value: u32) -> Option<()> {
        if !gra.is_multiple_of(4) {
            return None;
        }
        let dst = self.host_addr(gra, 4)?;
        // SAFETY: inside this partition's memory (checked) and 4-byte aligned.
        unsafe { core::ptr::write_volatile(dst as *mut u32, value.to_be()) };
        Some(())
    }

    /// Loads the big-endian value of `size` (1, 2, 4 or 8) bytes at naturally
    /// aligned `gra` with one access of that size, so it is single-copy atomic
    /// against the guest's own stores (H_LOGICAL_CI_LOAD).
    pub fn load_guest_be(&self, gra: u64, size: usize) -> Option<u64> {
        if !gra.is_multiple_of(size as u64) {
            return None;
        }
        let src = self.host_addr(gra, size as u64)?;
        // SAFETY: inside this partition's memory (checked) and naturally aligned.
        unsafe {
            Some(match size {
                1 => u64::from(core::ptr::read_volatile(src as *const u8)),
                2 => u64::from(u16::from_be(core::ptr::read_volatile(src as *const u16))),
                4 => u64::from(u32::from_be(core::ptr::read_volatile(src as *const u32))),
                8 => u64::from_be(core::ptr::read_volatile(src as *const u64)),
                _ => return None,
            })
        }
    }

    /// Stores the low `size` (1, 2, 4 or 8) bytes of `value` big-endian at
    /// naturally aligned `gra` with one access of that size (H_LOGICAL_CI_STORE).
    pub fn store_guest_be(&self, gra: u64, size: usize, value: u64) -> Option<()> {
        if !gra.is_multiple_of(size as u64) {
            return None;
        }
        let dst = self.host_addr(gra, size as u64)?;
        // SAFETY: inside this partition's memory (checked) and naturally aligned.
        unsafe {
            match size {
                1 => core::ptr::write_volatile(dst as *mut u8, value as u8),
                2 => core::ptr::write_volatile(dst as *mut u16, (value as u16).to_be()),
                4 => core::ptr::write_volatile(dst as *mut u32, (value as u32).to_be()),
                8 => core::ptr::write_volatile(dst as *mut u64, value.to_be()),
                _ => return None,
            }
        }
        Some(())
    }

    pub fn write_guest(&self, gra: u64, data: &[u8]) -> Option<()> {
        let src = data.as_ptr();
        self.for_pieces(gra, data.len() as u64, |dst, off, n| {
            // SAFETY: as for `read_guest`.
            unsafe { core::ptr::copy_nonoverlapping(src.add(off), dst as *mut u8, n) };
        })
    }

    pub fn fill_guest(&self, gra: u64, len: u64, byte: u8) -> Option<()> {
        self.for_pieces(gra, len, |dst, _, n| {
            // SAFETY: as for `read_guest`.
            unsafe { core::ptr::write_bytes(dst as *mut u8, byte, n) };
        })
    }

    /// LPCR for this partition's vCPUs: radix guest with a process table (HR, UPRT,
    /// GTSE), hypervisor decrementer and emulation-assist exits (HDICE, HEIC),
    /// external interrupts to the hypervisor (LPES = 0), interrupt endianness and
    /// AIL from H_SET_MODE.
    pub fn lpcr(&self, host: Lpcr) -> Lpcr {
        let l = self.radix_lpcr(host);
        if self.hash_active() {
            super::hash::lpcr(l)
        } else {
            l
        }
    }

    /// Whether the guest translates through the hashed page table now.
    pub fn hash_active(&self) -> bool {
        super::hash::active(self)
    }

    /// The LPCR of a vCPU of this partition running radix (`vcpu::switch_in`
    /// turns it into the hash one only on a hash partition's entry).
    pub fn radix_lpcr(&self, host: Lpcr) -> Lpcr {
        let mut l = host;
        l.remove(Lpcr::ILE | Lpcr::AIL | Lpcr::HAIL | Lpcr::LPES | Lpcr::MER | Lpcr::LD);
        // HVICE: a host interrupt on the thread's physical ring (pass-through
        // MSIs, docs/passthrough.md "MSI") ends the guest's run (HVI, 0xEA0).
        // Only threads running a partition with devices open their ring, so
        // for the others it never fires; set for all, it costs no entry a
        // test (the full-exit path, docs/benchmarks.md).
        l.insert(Lpcr::HR | Lpcr::UPRT | Lpcr::HDICE | Lpcr::HEIC | Lpcr::ONL | Lpcr::HVICE);
        l.set(Lpcr::GTSE, self.gtse.load(Ordering::Relaxed));
        if self.interrupt_le.load(Ordering::Relaxed) {
            l.insert(Lpcr::ILE);
        }
        if self.ail.load(Ordering::Relaxed) == 3 {
            l.insert(Lpcr::AIL);
        }
        l
    }

    /// Stops the partition with `reason` (first reason wins) and kicks its vCPUs.
    pub fn stop(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock();
            if r.is_some() {
                return;
            }
            *r = Some(reason.clone());
        }
        self.state.store(STOPPED, Ordering::Release);
        self.flush_console();
        let how = match &reason {
            StopReason::PowerOff => String::from("power-off"),
            // The guest's text, quoted and escaped: one line, nothing it can forge.
            StopReason::OsTerm(m) => alloc::format!("os-term: \"{}\"", m.escape_debug()),
            StopReason::Fault(m) => alloc::format!("fault: {m}"),
        };
        info!("PAPRIKA lpar {}: stopped ({})", self.name, how);
        // No frame reaches a stopped partition (its teardown resets the rest
        // of its devices once its vCPUs are out: `release_if_idle`).
        super::vio::llan::report(self);
        super::vio::llan::reset(self);
        for v in self.vcpus.iter() {
            info!(
                "PAPRIKA lpar-exits: {} vcpu={} {}",
                self.name,
                v.id,
                v.exits.line(crate::arch::ppc64::timer::ticks_per_us())
            );
        }
        info!(
            "PAPRIKA lpar-tlb: {} local={} broadcast={} entry_flushes={}",
            self.name,
            self.tlb.local.load(Ordering::Relaxed),
            self.tlb.broadcast.load(Ordering::Relaxed),
            self.tlb.entry_flushes.load(Ordering::Relaxed)
        );
        if let Some(d) = self.pci.delivery() {
            info!(
                "PAPRIKA lpar-hostirq: {} n={} polled={} recovered={}",
                self.name,
                d.host_irqs.load(Ordering::Relaxed),
                d.polled_irqs.load(Ordering::Relaxed),
                d.recovered.load(Ordering::Relaxed)
            );
        }
        if matches!(reason, StopReason::Fault(_)) {
            super::vcpu::dump(self);
        }
        let c = &self.console_stats;
        let sent = self.console_line.lock().sent();
        info!(
            "PAPRIKA lpar-console: {} bytes={} throttled={} throttled_ms={} dropped={}",
            self.name,
            sent,
            c.throttled.load(Ordering::Relaxed),
            c.throttled_ticks.load(Ordering::Relaxed) / timer::us_to_ticks(1000).max(1),
            c.dropped.load(Ordering::Relaxed)
        );
        let m = &self.demand.map;
        info!(
            "lpar {}: {} of {} memory chunks (2 MiB) were used and zeroed",
            self.name,
            (0..m.count()).filter(|&c| m.is_ready(c)).count(),
            m.count()
        );
        for v in &self.vcpus {
            v.kick();
        }
        // No vCPU in the guest (else the last to leave does it): PEF state,
        // the partition-table entry and the devices, then the count of
        // running partitions.
        self.release_if_idle();
    }

    /// A stopped partition's last vCPU left its run loop (or none was in it
    /// when it stopped): `release` (unless a failed reboot already did), then
    /// the partition counts as stopped (the last one powers the machine off:
    /// `all_stopped`), each once. Safe to call from every vCPU thread that
    /// leaves and from `stop`; only the first caller that finds all vCPUs out
    /// does the work.
    pub fn release_if_idle(&self) {
        if self.is_running() {
            return;
        }
        // Order this thread's `active = false` before reading the others' (two
        // leaving at once must not both see the other still active).
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.vcpus.iter().any(|v| v.is_active()) {
            return;
        }
        if !self.torn_down.swap(true, Ordering::AcqRel) {
            self.release();
        }
        if !self.stop_counted.swap(true, Ordering::AcqRel)
            && RUNNING_COUNT.fetch_sub(1, Ordering::AcqRel) == 1
        {
            all_stopped();
        }
    }

    /// With none of its vCPUs in the run loop: the ultravisor gives up the
    /// secure VM (if it became one) and the partition-table entry is cleared
    /// (`pef::release`), then its devices and per-boot state are torn down in
    /// `partition::teardown`'s order.
    fn release(&self) {
        super::pef::release(self);
        super::teardown::run(|step| match step {
            Step::Pci => self.pci.reset_all(&self.name),
            Step::Vio => super::vio::reset(self),
            Step::Interrupts => {
                self.xive.with(Xive::reset);
                super::xics::with_xics(self, Xics::reset);
            }
            Step::Nested => self.nested.reset(),
            // Registrations name memory a reboot scrubs; each vCPU takes the
            // empty ones at its next dispatch (`vcpu::set_dispatched`).
            Step::Vpa => {
                for v in &self.vcpus {
                    let mut r = v.vpa.lock();
                    *r = hcall::VpaRegistration::default();
                    v.vpa_changed.store(true, Ordering::Relaxed);
                }
            }
        });
    }

    /// Ends the partition's console line: its unfinished text (waiting or shown)
    /// goes out with a newline.
    pub fn flush_console(&self) {
        let mut line = self.console_line.lock();
        crate::log::with_console(|state, out| state.finish(self.who(), &mut line, out));
        self.console_waiting_since.store(0, Ordering::Relaxed);
    }

    /// Console output from H_PUT_TERM_CHAR: whole lines behind the partition's
    /// `[name] ` prefix, so partitions' output never shares a physical line. An
    /// unfinished line waits, unless the partition's shown line is open on the
    /// console (`console::lines`); `console_tick` shows a waiting line.
    pub fn console_put(&self, bytes: &[u8]) {
        if !self.console {
            return;
        }
        if !self.console_admit(bytes.len()) {
            self.console_stats
                .dropped
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return;
        }
        let mut line = self.console_line.lock();
        line.count(bytes.len());
        crate::log::with_console(|state, out| state.put(self.who(), &mut line, bytes, out));
        self.note_waiting(&line);
    }

    /// `console_put` for the hcall fast path (`hcall_fast`): the same logic, but
    /// only if that needs no waiting - the partition's line, the log lock and the
    /// console state are free and the console ring has room for everything
    /// `bytes` can write. `None`: nothing was done (take the full path).
    pub fn console_put_nowait(&self, bytes: &[u8], cpu: u32) -> Option<()> {
        if !self.console {
            return Some(());
        }
        let queued = crate::console::queued();
        if queued > CONSOLE_SHARE_MID
            && !self.within_share(bytes.len())?
            && queued > CONSOLE_SHARE_LOW
        {
            return None;
        }
        let mut line = self.console_line.try_lock()?;
        let who = self.who();
        let queued = {
            // A whole line with nothing open goes out as one physical line: it
            // cannot split a log line (each is one ring push), so the log's line
            // lock is not needed, only the line state (see `console::lines`).
            let state = lines::STATE.try_lock()?;
            state.is_whole_line(&line, bytes).then(|| {
                let q = crate::console::try_queue_parts(&[who.prefix.as_bytes(), bytes]);
                if q {
                    lines::Lines::whole_line_sent(&mut line);
                }
                q
            })
        };
        let queued = match queued {
            Some(q) => q,
            None => {
                let _log = crate::log::try_lock(cpu)?;
                let mut state = lines::STATE.try_lock()?;
                let need = lines::put_bound(&self.name, bytes);
                crate::console::try_queue(need, |push| {
                    state.put(who, &mut line, bytes, push);
                })
            }
        };
        if queued {
            line.count(bytes.len());
            self.note_waiting(&line);
        }
        queued.then_some(())
    }

    /// Takes `n` bytes of the partition's console share; `None` if its lock is
    /// busy.
    fn within_share(&self, n: usize) -> Option<bool> {
        let hz = timer::ticks_per_us() * 1_000_000;
        let mut share = self.console_share.try_lock()?;
        Some(share.take(
            instr::mftb(),
            n,
            hz,
            CONSOLE_SHARE_RATE,
            CONSOLE_SHARE_BURST,
        ))
    }

    /// Whether `n` more bytes of console output may be queued now: within the
    /// partition's share, or the console's ring is down to
    /// `CONSOLE_SHARE_LOW`. Otherwise waits for that, on this vCPU's thread with
    /// no lock held, so only this partition waits (audit finding 4). False when
    /// the console took nothing for two seconds or the partition stopped
    /// meanwhile: the caller drops the bytes.
    fn console_admit(&self, n: usize) -> bool {
        if crate::console::queued() <= CONSOLE_SHARE_MID {
            return true;
        }
        let within = loop {
            if let Some(w) = self.within_share(n) {
                break w;
            }
            core::hint::spin_loop();
        };
        if within || crate::console::queued() <= CONSOLE_SHARE_LOW {
            return true;
        }
        let t = instr::mftb();
        let s = &self.console_stats;
        s.throttled.fetch_add(1, Ordering::Relaxed);
        let ok = crate::console::wait_below(CONSOLE_SHARE_LOW, &|| self.is_running());
        s.throttled_ticks
            .fetch_add(instr::mftb().wrapping_sub(t), Ordering::Relaxed);
        ok
    }

    fn who(&self) -> Who<'_> {
        Who {
            id: self.lpid,
            name: &self.name,
            prefix: &self.console_prefix,
        }
    }

    /// Records when text started or went on waiting (under the line lock).
    fn note_waiting(&self, line: &VtyLine) {
        let since = if line.is_empty() {
            0
        } else {
            instr::mftb().max(1)
        };
        self.console_waiting_since.store(since, Ordering::Relaxed);
    }

    /// Shows the partition's unfinished console line if it has waited at least
    /// `quiet_ticks` (timebase) since the partition last wrote, and `idle` says
    /// the partition is idle then. Never waits for the line lock.
    fn show_waiting(&self, now: u64, quiet_ticks: u64, idle: impl FnOnce(&Partition) -> bool) {
        let since = self.console_waiting_since.load(Ordering::Relaxed);
        if since == 0 || now.wrapping_sub(since) < quiet_ticks || !idle(self) {
            return;
        }
        let Some(mut line) = self.console_line.try_lock() else {
            return;
        };
        crate::log::with_console(|state, out| state.show(self.who(), &mut line, out));
        self.note_waiting(&line);
    }

    /// Whether every vCPU naps in H_CEDE or is stopped: the guest waits for
    /// something (typed input, say) rather than being in the middle of a write.
    fn all_vcpus_idle(&self) -> bool {
        self.vcpus.iter().all(|v| {
            v.ceded.load(Ordering::Acquire) || v.state() != super::vcpu::VcpuState::Runnable
        })
    }
}

/// How long the input partition must have been silent, with all its vCPUs in
/// H_CEDE, before its unfinished console line (a shell prompt, echoed keys) is
/// shown.
const SHOW_QUIET_US: u64 = 20_000;
/// How long it must have been silent for that line to be shown even though a
/// vCPU still runs (a busy guest that prompts).
const SHOW_SILENT_US: u64 = 200_000;

/// Shows the unfinished console line of the partition that takes console input
/// once it has been quiet (`SHOW_QUIET_US` / `SHOW_SILENT_US`), so what is typed
/// is not typed blind. Only that partition's: a line shown early can be cut by
/// another partition's output, and line-oriented readers of the console (the
/// tests' markers) prefer whole lines. Cheap when nothing waits (two atomic
/// loads); called by the idle threads and by vCPU threads, both at least every
/// `console::input::POLL_US`.
pub fn console_tick() {
    super::vio::vty::vty_input_retry();
    let Some(p) = crate::console::input::target().and_then(|i| partitions().get(i)) else {
        return;
    };
    if p.console_waiting_since.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = instr::mftb();
    p.show_waiting(
        now,
        timer::us_to_ticks(SHOW_QUIET_US),
        Partition::all_vcpus_idle,
    );
    p.show_waiting(now, timer::us_to_ticks(SHOW_SILENT_US), |_| true);
}

fn all_stopped() {
    let parts = partitions();
    let passed = parts
        .iter()
        .filter(|p| p.reason().is_some_and(|r| r.passed()))
        .count();
    let failed = parts.len() - passed;
    info!("PAPRIKA partitions: {} passed, {} failed", passed, failed);
    if !POWER_OFF_WHEN_IDLE.load(Ordering::Relaxed) {
        info!("every partition has stopped; staying up (power_off_when_idle = false)");
        return;
    }
    smp::begin_shutdown();
    if failed == 0 {
        info!("PAPRIKA power-off: success");
        crate::platform::opal::power_down()
    } else {
        crate::arch::ppc64::fatal::fail_stop()
    }
}

/// Displays a partition's host extents: `0xPA+SIZE, ...`.
struct HostExtents<'a>(&'a ExtentMap);

impl core::fmt::Display for HostExtents<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, e) in self.0.extents().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{:#x}+{}M", e.pa, e.len >> 20)?;
        }
        Ok(())
    }
}

/// What a partition boots, kept so system-reboot can load it again.
pub struct BootImage {
    pub kernel: &'static [u8],
    pub initrd: Option<&'static [u8]>,
    pub cmdline: String,
    pub vcpus: u32,
    pub cpu: guest_fdt::CpuModel,
    pub timebase_hz: u64,
    /// The manifest's `mmu`, and log2 of the HPT's size when there is one.
    pub mmu: MmuMode,
    pub hpt_shift: Option<u32>,
    /// Logical PHBs of its passed-through functions (docs/passthrough.md).
    pub vphbs: Vec<guest_fdt::VphbNode>,
}

/// Where the image landed in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    pub entry: u64,
    pub big_endian: bool,
    pub fdt_gra: u64,
    pub rtas_base: u64,
    pub initrd: Option<(u64, u64)>,
    pub kernel_high: u64,
}

/// How long each step of loading a boot image took, in timebase ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadTimes {
    pub zero: u64,
    pub kernel: u64,
    pub initrd: u64,
    pub fdt: u64,
}

/// What [`load_boot_image`] did: where the image is, the chunks it zeroed or
/// loaded (to be mapped), how long it took.
struct Loaded {
    placed: Placed,
    eager: Vec<u64>,
    times: LoadTimes,
}

/// At most this many ranges are left out of the zeroing because the loader writes
/// them; an image with more loadable segments gets all of its memory zeroed first.
const MAX_WRITTEN_RANGES: usize = 16;

/// Loads kernel, initrd, RTAS blob and device tree into the memory `mem` of
/// partition `name`/`lpid`, and zeroes every other byte of it: nothing a
/// previous owner of the frames left is visible to the guest.
///
/// The layout is computed first, so the zeroing can skip what is written next
/// (each loadable segment's whole `p_memsz`, the initrd, the device tree and the
/// RTAS blob): those bytes would otherwise be written twice, and the kernel alone
/// is tens of MiB.
fn load_boot_image(
    name: &str,
    lpid: u32,
    mem: &ExtentMap,
    b: &BootImage,
    chunks: &ChunkMap,
    lazy: bool,
    vio: &[crate::papr::vio::VioDtNode],
) -> Result<Loaded, CreateError> {
    let mut times = LoadTimes::default();
    let size = mem.size();
    let image = elf::parse(b.kernel)
        .and_then(|i| i.placed_at(KERNEL_ADDR))
        .map_err(CreateError::Elf)?;

    // Layout as QEMU's pseries (`loader::layout`): kernel at KERNEL_ADDR + its
    // physical addresses; initrd after it; RTAS blob in the top 64 KiB below
    // 2 GiB and the device tree below it.
    let l = layout::place(size, image.high, b.initrd.map(|d| d.len() as u64))
        .map_err(|layout::LayoutError::TooBig(what)| CreateError::TooBig(what))?;
    let (rtas_base, initrd_range) = (l.rtas_base, l.initrd);
    let rtas_bytes = (rtas::RTAS_BLOB.len() * 4) as u64;

    let t = instr::mftb();
    let tokens: Vec<(&str, u32)> = rtas::tokens().collect();
    // A partition that offers hash translation gets the XICS only: a hash guest
    // would map the XIVE TIMA/ESB pages with H_ENTER, and an HPTE can only name
    // partition memory.
    let vec5 = match b.mmu {
        MmuMode::Radix => guest_fdt::vec5_radix_xive_or_xics(),
        MmuMode::Hash => guest_fdt::vec5_with(0x00, 0x00),
        MmuMode::Any => guest_fdt::vec5_with(0x00, 0x80),
    };
    let mut hypertas: Vec<&str> = hcall::HYPERTAS.to_vec();
    if b.mmu.offers_hash() {
        hypertas.extend_from_slice(hcall::HYPERTAS_HASH);
    }
    let lisn_ranges = [(0, b.vcpus)];
    let reserved = [(rtas_base, RTAS_SIZE)];
    let cfg = guest_fdt::GuestFdtConfig {
        partition_name: name,
        lpid,
        memory_bytes: size,
        vcpus: b.vcpus,
        cpu: b.cpu,
        timebase_hz: b.timebase_hz,
        bootargs: &b.cmdline,
        initrd: initrd_range,
        rtas_base,
        rtas_size: RTAS_SIZE,
        rtas_tokens: &tokens,
        hypertas: &hypertas,
        vty_reg: VTY_REG,
        vio,
        reserved: &reserved,
        xive: (!b.mmu.offers_hash()).then_some(guest_fdt::XiveGuestConfig {
            tima_user: xive::TIMA_USER_GPA,
            tima_os: xive::TIMA_OS_GPA,
            eq_sizes: &xive::EQ_SIZES,
            lisn_ranges: &lisn_ranges,
            vty_lisn: VTY_IRQ.then_some(VTY_LISN),
        }),
        chosen_vec5: &vec5,
        hpt_shift: b.hpt_shift,
        vphbs: &b.vphbs,
    };
    // The tree reserves its own range, so learn its size first, then build it for
    // its place.
    let probe = guest_fdt::build(&cfg).map_err(|_| CreateError::Fdt)?;
    let above = initrd_range.map(|r| r.1).unwrap_or(image.high);
    let fdt_gra = layout::place_fdt(&l, probe.len() as u64, above)
        .map_err(|layout::LayoutError::TooBig(what)| CreateError::TooBig(what))?;
    let fdt = guest_fdt::build_at(&cfg, fdt_gra).map_err(|_| CreateError::Fdt)?;
    let fdt_end = fdt_gra + fdt.len() as u64;
    if fdt_end > rtas_base {
        return Err(CreateError::TooBig("device tree"));
    }
    times.fdt = instr::mftb().wrapping_sub(t);

    // Zero what the writes below leave alone: everywhere (`lazy` false), or only
    // in the chunks they touch, the rest being zeroed on first use. A range counts
    // as written only if it lies inside guest memory (elf::load checks the
    // segments again).
    let t = instr::mftb();
    let mut written: Vec<PhysRange> = Vec::new();
    let mut add = |start: u64, end: u64| {
        if start < end && end <= size {
            written.push(PhysRange { start, end });
        }
    };
    for s in &image.segments {
        add(s.guest_addr, s.guest_addr.saturating_add(s.mem_size));
    }
    if let Some((start, end)) = initrd_range {
        add(start, end);
    }
    add(fdt_gra, fdt_end);
    add(rtas_base, rtas_base + rtas_bytes);
    let lazy = lazy && written.len() <= MAX_WRITTEN_RANGES;
    if written.len() > MAX_WRITTEN_RANGES {
        written.clear();
    }
    let plan = demand::plan(chunks, &written, lazy);
    for r in &plan.zero {
        zero_guest(mem, r.start, r.end - r.start);
    }
    times.zero = instr::mftb().wrapping_sub(t);

    // No vCPU of this partition runs while its image is (re)loaded (at creation,
    // or on reboot after every vCPU left the guest).
    let mut sink = LoaderSink(mem);
    let t = instr::mftb();
    // Every segment's whole [p_vaddr, + p_memsz) is written: file bytes, then zeroes.
    elf::load(&image, b.kernel, &mut sink).map_err(CreateError::Elf)?;
    times.kernel = instr::mftb().wrapping_sub(t);
    for (i, w) in rtas::RTAS_BLOB.iter().enumerate() {
        // RTAS is entered big-endian (PAPR 7.2.1; Linux clears MSR[LE] to
        // call it), whatever the kernel's endianness.
        sink.write(rtas_base + i as u64 * 4, &w.to_be_bytes());
    }
    let t = instr::mftb();
    if let (Some(data), Some((start, _))) = (b.initrd, initrd_range) {
        sink.write(start, data);
    }
    times.initrd = instr::mftb().wrapping_sub(t);
    sink.write(fdt_gra, &fdt);
    let placed = Placed {
        entry: image.entry,
        big_endian: image.big_endian,
        fdt_gra,
        rtas_base,
        initrd: initrd_range,
        kernel_high: image.high,
    };
    Ok(Loaded {
        placed,
        eager: plan.eager,
        times,
    })
}

/// Logs how long creating (or rebooting) partition `name` took, step by step.
fn log_load_times(name: &str, alloc_map: u64, t: &LoadTimes) {
    let us = |ticks: u64| ticks / crate::arch::ppc64::timer::ticks_per_us().max(1);
    info!(
        "PAPRIKA lpar-load: {} alloc+map={}us fdt={}us zero={}us kernel={}us initrd={}us",
        name,
        us(alloc_map),
        us(t.fdt),
        us(t.zero),
        us(t.kernel),
        us(t.initrd)
    );
}

fn build_partition(
    index: usize,
    spec: &PartitionSpec,
    console_input: bool,
    bundle: &'static [u8],
    info: &crate::fdt::host::HostInfo,
) -> Result<Partition, CreateError> {
    let lpid = index as u32 + 1;
    let size = spec.memory;
    for &c in &spec.cpus {
        if smp::cpus().get(c as usize).is_none_or(|pc| !pc.is_online()) {
            return Err(CreateError::BadCpu(c));
        }
    }
    let find = |path: &str| {
        crate::bundle::find(bundle, path)
            .ok()
            .flatten()
            .ok_or_else(|| CreateError::MissingFile(String::from(path)))
    };
    let kernel = find(&spec.kernel)?;
    let initrd = match &spec.initrd {
        Some(p) => Some(find(p)?),
        None => None,
    };
    let mut boot = BootImage {
        kernel,
        initrd,
        cmdline: spec.cmdline.clone(),
        vcpus: spec.vcpus,
        cpu: if info.compatible.contains("powernv10") {
            guest_fdt::CpuModel::Power10
        } else {
            guest_fdt::CpuModel::Power9
        },
        timebase_hz: info.timebase_hz,
        mmu: spec.mmu,
        hpt_shift: spec
            .mmu
            .offers_hash()
            .then(|| crate::mm::hpt::hpt_shift_for_ram(size)),
        vphbs: Vec::new(),
    };

    // Memory; load_boot_image zeroes what it does not fill before the guest runs.
    let t = instr::mftb();
    // A partition with devices gets one host extent on 16 MiB: its 64-bit DMA
    // window is one PHB bypass window (docs/passthrough.md).
    let mem = if spec.devices.is_empty() {
        mm::alloc_guest_memory(size)
    } else {
        mm::alloc_guest_memory_contiguous(size, crate::papr::vphb::BYPASS_GRANULE)
    }
    .map_err(CreateError::Memory)?;

    // Partition-scoped tree: guest real 0.. -> the host extents, 2 MiB pages,
    // each mapped once its chunk is zeroed or loaded (`demand`).
    let mut tree = RadixTree::new(&mut Tables).map_err(CreateError::Map)?;
    let chunks = ChunkMap::new(size);
    let pci = super::passthrough::attach(&spec.name, &spec.devices, &mem, &mut tree, info)
        .map_err(CreateError::Device)?;
    boot.vphbs = pci.nodes();
    let alloc_map = instr::mftb().wrapping_sub(t);
    let vio = super::vio::Vio::new(spec, size).map_err(|_| CreateError::TooBig("VIO bus"))?;
    let vscsi = match super::vio::vscsi::bus_index(&vio.bus) {
        Some(i) => Some(super::vio::vscsi::Vscsi::new(i, &spec.disks, bundle)?),
        None => None,
    };
    let Loaded {
        placed,
        eager,
        times,
    } = load_boot_image(
        &spec.name,
        lpid,
        &mem,
        &boot,
        &chunks,
        // Devices may DMA anywhere in it once the guest opens a window: all
        // of it is zeroed before the guest runs.
        !spec.mmu.offers_hash() && pci.is_empty(),
        &vio.bus.dt_nodes(),
    )?;
    for c in eager {
        map_chunk(&mut tree, &mem, chunks.range(c)).map_err(CreateError::Map)?;
        chunks.set_ready(c);
    }
    log_load_times(&spec.name, alloc_map, &times);
    let n = mem.extents().len();
    info!(
        "PAPRIKA lpar-memory: {} {} MiB in {}",
        spec.name,
        size >> 20,
        if n > 1 {
            alloc::format!("non-contiguous host extents ({n})")
        } else {
            String::from("one host extent")
        }
    );
    let root = tree.root();
    let table_bytes = tree.table_bytes(&Tables);

    // PATE: host radix tree for guest real addresses; no process table until the
    // guest registers one. A partition offering hash translation starts with
    // its HPT instead (all of its memory is zeroed and in the tree too, for an
    // `mmu = "any"` guest that chooses radix).
    let hpt = match spec.mmu.offers_hash() {
        false => None,
        true => {
            let h = super::hash::Hpt::new(size).map_err(CreateError::Memory)?;
            let reach = h.reset(&mem).map_err(|_| CreateError::TooBig("VRMA"))?;
            mmu::set_pate(lpid, h.pate_dw0(), 0);
            let (hpt_pa, hpt_shift) = h.current();
            info!(
                "PAPRIKA lpar-hpt: {} mmu={} HPT {} KiB at host {:#x}, VRMA {} MiB",
                spec.name,
                spec.mmu.as_str(),
                (1u64 << hpt_shift) >> 10,
                hpt_pa,
                reach >> 20
            );
            Some(h)
        }
    };
    if hpt.is_none() {
        mmu::set_pate(lpid, radix::radix_root_dw0(root) | radix::PATE_HR, 0);
    }

    let mut vcpus = Vec::new();
    for (i, &cpu) in spec.cpus.iter().enumerate() {
        vcpus.push(Box::new(Vcpu::new(i as u32, cpu)));
    }
    info!(
        "lpar {} (LPID {}): {} MiB at host {}, {} vCPU(s) on threads {:?}, kernel {} entry {:#x} ({}-endian), fdt at {:#x}{}",
        spec.name,
        lpid,
        size >> 20,
        HostExtents(&mem),
        spec.vcpus,
        spec.cpus.as_slice(),
        spec.kernel,
        placed.entry,
        if placed.big_endian { "big" } else { "little" },
        placed.fdt_gra,
        match placed.initrd {
            Some((s, e)) => alloc::format!(", initrd {s:#x}-{e:#x}"),
            None => String::new(),
        }
    );
    // Every VIO device's source and every passed-through function's MSI
    // (edge), in both controllers.
    let mut lisns: Vec<u32> = vio.bus.lisns().collect();
    lisns.extend(pci.msi_lisns());
    let sources: Vec<(u32, bool)> = lisns.iter().map(|&l| (l, false)).collect();
    let xive = Xive::new(spec.vcpus, spec.vcpus, &sources)
        .map_err(|_| CreateError::TooBig("XIVE sources"))?;
    let uv = crate::uv::partition::PartitionUv::new(lpid, spec.secure, &mem, info.ultravisor);
    if spec.secure {
        warn!("PAPRIKA lpar-pef: {}: may become a secure VM (UV_ESM); this path has never run on a PEF machine (docs/pef.md)", spec.name);
    }
    // The root table is 64 KiB whatever the partition's size: POWER9 and Power10
    // walk only 52-bit partition-scoped trees with a 13-bit root (their user
    // manuals' supported radix configurations; QEMU checks the same), and a guest
    // can reach every root entry (any guest real address below 2^52), so the
    // unused entries must stay invalid and cannot hold anything else.
    let structs = core::mem::size_of::<Partition>() as u64
        + spec.vcpus as u64 * core::mem::size_of::<Vcpu>() as u64
        + vio.table_bytes();
    let overhead = table_bytes + structs;
    info!(
        "PAPRIKA lpar-overhead: {} bytes={} root={} dirs={} structs={}",
        spec.name,
        overhead,
        radix::ROOT_TABLE_BYTES,
        table_bytes - radix::ROOT_TABLE_BYTES,
        structs
    );
    Ok(Partition {
        name: spec.name.clone(),
        console_prefix: alloc::format!("[{}] ", spec.name),
        lpid,
        mem,
        mem_size: size,
        vcpus,
        console: spec.console,
        console_input,
        // Interrupts arrive big-endian until the guest asks otherwise with
        // H_SET_MODE, as on QEMU's pseries (LPCR[ILE] clear at reset).
        interrupt_le: AtomicBool::new(false),
        ail: AtomicU8::new(0),
        tod_offset: AtomicI64::new(0),
        console_line: spin::Mutex::new(VtyLine::new()),
        console_waiting_since: AtomicU64::new(0),
        state: AtomicU8::new(RUNNING),
        reason: spin::Mutex::new(None),
        entry: placed.entry,
        fdt_gra: placed.fdt_gra,
        big_endian: placed.big_endian,
        rtas: (placed.rtas_base, RTAS_SIZE),
        boot,
        reboot_requested: AtomicBool::new(false),
        torn_down: AtomicBool::new(false),
        stop_counted: AtomicBool::new(false),
        boots: AtomicU32::new(1),
        epoch: AtomicU32::new(0),
        proc_tbl: AtomicU64::new(0),
        gtse: AtomicBool::new(true),
        tlb: super::tlb::Shootdown::new(),
        xive: SharedXive::new(xive),
        xics: spin::Mutex::new(Xics::new(spec.vcpus, &lisns)),
        vio,
        vscsi,
        nvram: spin::Mutex::new(crate::papr::nvram::Nvram::new()),
        nvram_host: AtomicU64::new(super::nvram_host::NO_SLOT),
        fwnmi_sreset: AtomicU64::new(u64::MAX),
        fwnmi_mce: AtomicU64::new(u64::MAX),
        fwnmi_interlock: AtomicU64::new(u64::MAX),
        sreset_pending: AtomicU64::new(0),
        demand: Demand {
            map: chunks,
            tree: spin::Mutex::new(tree),
        },
        warn_budget: crate::log::Budget::new(),
        console_share: spin::Mutex::new(crate::console::Share::new()),
        console_stats: ConsoleStats::default(),
        uv,
        tpm_allowed: spec.tpm || spec.secure,
        tpm: spin::Mutex::new(crate::uv::tpm::TpmSession::new()),
        nested: super::nested::Nested::new(spec.nested),
        mmu: spec.mmu,
        hpt,
        radix_chosen: AtomicBool::new(false),
        pci,
    })
}

impl Partition {
    /// system-reboot: every vCPU leaves the guest, memory is scrubbed, the same
    /// images are loaded again and vCPU 0 starts afresh. Only this partition is
    /// affected. Called on the thread of the vCPU that asked, after it left the
    /// guest.
    pub fn reboot(&self, me: &Vcpu) {
        // Odd: every start request and running vCPU of the old image is void from
        // here (sequentially consistent against `vcpu::thread_work`'s `active`).
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for v in &self.vcpus {
            v.force_stop();
        }
        // Wait until no vCPU of this partition is inside its run loop.
        while self
            .vcpus
            .iter()
            .any(|v| !core::ptr::eq(&**v, me) && v.is_active())
        {
            crate::platform::opal::heartbeat();
            core::hint::spin_loop();
        }
        // No vCPU is in the guest or an hcall any more, so nothing asks for a start
        // now; drop what was asked while they left (void anyway: old epoch).
        for v in &self.vcpus {
            v.force_stop();
        }
        // Before the scrub touches its memory: the PEF state and partition-table
        // entry, then devices stop DMA into it and the per-boot state goes
        // (the same teardown as a stop's).
        self.torn_down.store(true, Ordering::Release);
        self.release();
        // load_boot_image scrubs everything it does not load again.
        let loaded = load_boot_image(
            &self.name,
            self.lpid,
            &self.mem,
            &self.boot,
            &self.demand.map,
            false,
            &self.vio.bus.dt_nodes(),
        )
        .and_then(|l| {
            // Every chunk is zeroed or loaded now; map those still unmapped.
            let mut tree = self.demand.tree.lock();
            for &c in &l.eager {
                map_chunk(&mut tree, &self.mem, self.demand.map.range(c))
                    .map_err(CreateError::Map)?;
                self.demand.map.set_ready(c);
            }
            instr::ptesync();
            Ok(l)
        });
        match loaded {
            Ok(Loaded { placed, times, .. }) => {
                log_load_times(&self.name, 0, &times);
                // Forget the guest's process table and every cached translation:
                // the entry again, as at creation (`pef::release` cleared it).
                let root = self.demand.tree.lock().root();
                mmu::set_pate(self.lpid, radix::radix_root_dw0(root) | radix::PATE_HR, 0);
                self.uv.restarted();
                // Forget the guest's process table and every cached translation.
                mmu::set_pate_dw1(self.lpid, 0);
                if let Some(h) = &self.hpt {
                    // A fresh HPT (only the VRMA entries) and hash translation
                    // again, whatever an `mmu = "any"` guest chose.
                    if h.reset(&self.mem).is_err() {
                        self.stop(StopReason::Fault(String::from("reboot: VRMA")));
                        return;
                    }
                    self.radix_chosen.store(false, Ordering::Release);
                    mmu::set_pate(self.lpid, h.pate_dw0(), 0);
                    instr::tlbie_lpid_hpt(self.lpid);
                }
                self.proc_tbl.store(0, Ordering::Release);
                self.gtse.store(true, Ordering::Release);
                self.interrupt_le.store(false, Ordering::Relaxed);
                self.ail.store(0, Ordering::Relaxed);
                self.fwnmi_sreset.store(u64::MAX, Ordering::Relaxed);
                self.fwnmi_mce.store(u64::MAX, Ordering::Relaxed);
                self.fwnmi_interlock.store(u64::MAX, Ordering::Relaxed);
                self.sreset_pending.store(0, Ordering::Relaxed);
                let n = self.boots.fetch_add(1, Ordering::Relaxed) + 1;
                info!("PAPRIKA lpar {}: rebooting (boot {})", self.name, n);
                self.reboot_requested.store(false, Ordering::Release);
                self.torn_down.store(false, Ordering::Release);
                // Stopped meanwhile (Ctrl-A x): its teardown was skipped.
                self.release_if_idle();
                let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(v0) = self.vcpus.first() {
                    // vCPU 0's thread may still be dropping a void start (it shows
                    // Runnable for a moment before it sees the epoch): retry.
                    while !v0.request_start(
                        placed.entry,
                        initial_msr(),
                        placed.fdt_gra,
                        epoch,
                        false,
                    ) {
                        crate::platform::opal::heartbeat();
                        core::hint::spin_loop();
                    }
                }
            }
            Err(e) => self.stop(StopReason::Fault(alloc::format!("reboot failed: {e}"))),
        }
    }
}

/// Creates every partition the bundle's manifest describes and starts their boot
/// vCPUs. Returns how many were started; a partition that cannot be created is
/// reported (naming it and why) and counted as failed.
pub fn create_all(
    manifest: &Manifest,
    bundle: &'static [u8],
    info: &crate::fdt::host::HostInfo,
) -> usize {
    POWER_OFF_WHEN_IDLE.store(manifest.machine.power_off_when_idle, Ordering::Relaxed);
    let input = manifest.machine.console_input.clone().or_else(|| {
        manifest
            .partitions
            .iter()
            .find(|p| p.console)
            .map(|p| p.name.clone())
    });
    let mut parts = Vec::new();
    let mut failed = 0;
    for (i, spec) in manifest.partitions.iter().enumerate() {
        if let Some(why) = crate::uv::host::secure_refusal(spec.secure, info.ultravisor) {
            // A configuration the machine cannot honour: that partition only.
            error!("PAPRIKA lpar-refused: {}: {}", spec.name, why);
            failed += 1;
            continue;
        }
        let is_input = input.as_deref() == Some(spec.name.as_str());
        match build_partition(i, spec, is_input, bundle, info) {
            Ok(p) => parts.push(p),
            Err(e) => {
                error!("lpar {}: cannot create: {}", spec.name, e);
                failed += 1;
            }
        }
    }
    let n = parts.len();
    RUNNING_COUNT.store(n as u32, Ordering::Release);
    PARTITIONS.call_once(|| parts);
    super::nvram_host::load(partitions());
    if VTY_IRQ {
        crate::console::input::set_notify(super::vio::vty::vty_input);
    }
    if failed > 0 {
        warn!("{failed} partition(s) could not be created");
    }
    for p in partitions() {
        for v in &p.vcpus {
            super::vcpu::assign(p, v);
        }
        if let Some(v0) = p.vcpus.first() {
            let msr = initial_msr();
            info!("PAPRIKA lpar-start: {} vCPU 0 at {:#x}", p.name, p.entry);
            v0.request_start(p.entry, msr, p.fdt_gra, p.epoch(), false);
        }
    }
    if n == 0 {
        return 0;
    }
    n
}

/// MSR a vCPU starts with, the boot vCPU and those RTAS start-cpu starts alike:
/// 64-bit, machine checks on, real mode, big-endian whatever the kernel's byte
/// order, as pSeries firmware enters a client program and as QEMU's pseries
/// starts a CPU (MSR = SF|ME, `rtas_start_cpu` in hw/ppc/spapr_rtas.c). A
/// little-endian kernel switches itself (Linux's FIXUP_ENDIAN); the interrupt
/// byte order is LPCR[ILE], which the guest sets with H_SET_MODE.
pub fn initial_msr() -> u64 {
    (Msr::SF | Msr::ME).bits()
}

/// Host register values to restore after a guest exit.
pub fn host_lpcr() -> Lpcr {
    Lpcr::from_bits_retain(HOST_LPCR.load(Ordering::Relaxed))
}

static HOST_LPCR: AtomicU64 = AtomicU64::new(0);

pub fn record_host_lpcr() {
    HOST_LPCR.store(spr::lpcr::read(), Ordering::Relaxed);
}

/// An `mmu = "any"` partition whose guest registered the radix process table
/// `dw1`: its PATE names the partition-scoped radix tree from now on.
pub fn switch_to_radix(p: &Partition, dw1: u64) {
    let root = p.demand.tree.lock().root();
    mmu::set_pate(p.lpid, radix::radix_root_dw0(root) | radix::PATE_HR, dw1);
    p.proc_tbl.store(dw1, Ordering::Release);
    instr::tlbie_lpid_hpt(p.lpid);
    flush_lpid(p.lpid);
    info!(
        "PAPRIKA lpar-hpt: {} mmu=any: the guest chose radix (H_REGISTER_PROC_TBL)",
        p.name
    );
}

/// Invalidates every translation of `lpid` (after its PATE or tables changed).
pub fn flush_lpid(lpid: u32) {
    instr::tlbie_lpid(lpid);
}

/// Marks a whole range of guest memory as used by RTAS so the guest FDT reserves it.
pub fn rtas_range(p: &Partition) -> PhysRange {
    PhysRange {
        start: p.rtas.0,
        end: p.rtas.0 + p.rtas.1,
    }
}
