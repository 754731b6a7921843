//! PCI pass-through (docs/passthrough.md): the manifest's `devices` of a
//! partition, each function its own PE on its host PHB, set up through OPAL;
//! its BARs mapped cache-inhibited into the partition-scoped tree behind a
//! logical PHB; config space through filtered RTAS calls (`papr::vphb`); DMA
//! through a 64-bit bypass window of exactly the partition's memory, opened by
//! ibm,create-pe-dma-window; a 32-bit window of TCEs the guest programs with
//! H_PUT_TCE / H_PUT_TCE_INDIRECT / H_STUFF_TCE (`papr::vio::tce::TceTable`
//! checks them, the hypervisor mirrors each into the PHB's table as a host real
//! address); a function-level reset whenever the partition reboots or stops.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::host_eq::{Reroute, Route, RouteTable};
use super::host_irq;

use crate::arch::ppc64::{instr, timer};
use crate::fdt::host::{HostInfo, PciFunction};
use crate::mm::extent::ExtentMap;
use crate::mm::frame::PhysRange;
use crate::mm::radix::{CacheAttr, PageSize, PteFlags, RadixTree};
use crate::papr::guest_fdt::{VphbFunction, VphbNode};
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::rtas::{self as r, RtasArgs, RtasCall};
use crate::papr::vio::tce::{self, TceTable};
use crate::papr::vphb::{self, ArgsError, DdwWindow, ReadAction, VBar, VFunction, WriteAction};
use crate::pci::{self, BarAllocator, ConfigSpace, MmioWindow, PciAddress, PciError};
use crate::platform::opal::pci::{self as opal_pci, OpalConfig};
use crate::platform::opal::xive as opal_xive;
use crate::{info, warn};

/// Guest real address of the first logical PHB's 32-bit MMIO window; the next
/// ones follow every [`MMIO_GPA_STRIDE`]. Far above any partition's memory and
/// below the XIVE pages (`xive::ESB_BASE_GPA`).
pub const MMIO_GPA_BASE: u64 = 0x0000_2000_0000_0000;
pub const MMIO_GPA_STRIDE: u64 = 1 << 32;
/// BARs are placed and mapped in whole 64 KiB pages (Linux's page size), so a
/// partition's mapping never covers another function's registers.
pub const BAR_ALIGN: u64 = 64 << 10;
/// Every function's 32-bit DMA window (`ibm,dma-window`, TVE#0 of its PE):
/// 256 MiB at bus address 0 in 4 KiB TCEs; its PHB table takes 512 KiB.
pub const TCE32_SIZE: u64 = 256 << 20;
pub const TCE32_SHIFT: u32 = 12;

/// Why a partition's devices could not be set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    Missing(PciAddress),
    Pci(PciAddress, PciError),
    Unusable(PciAddress, &'static str),
    Map(PciAddress),
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceError::Missing(a) => write!(f, "PCI function {a} is not in the device tree"),
            DeviceError::Pci(a, e) => write!(f, "PCI function {a}: {e:?}"),
            DeviceError::Unusable(a, why) => write!(f, "PCI function {a}: {why}"),
            DeviceError::Map(a) => write!(f, "PCI function {a}: BAR mapping failed"),
        }
    }
}

/// One passed-through function.
pub struct Passed {
    pub addr: PciAddress,
    pub pe: u32,
    pub vf: spin::Mutex<VFunction>,
    pub node: VphbFunction,
    /// The 64-bit window is open (TVE#1 of the PE).
    pub ddw_open: AtomicBool,
    /// Guest real pages of the MSI-X table, left unmapped (trapped).
    pub msix_table: Option<(u64, u64)>,
    /// The 32-bit window as the guest programs it (guest real pages) and the
    /// PHB's table (host real, big-endian) at `tce_hw`.
    pub tce32: spin::Mutex<TceTable>,
    pub tce_hw: u64,
    /// The guest has mapped a page in the 32-bit window since the function's
    /// last reset (logged once: `PAPRIKA passthrough-tce32:`).
    pub tce32_used: AtomicBool,
    /// Page shift of the 64-bit window the guest created (its TCE hcalls).
    pub ddw_shift: core::sync::atomic::AtomicU32,
    /// Its MSIs: host sources and the guest numbers they appear as.
    pub msi: FunctionMsi,
}

/// One host MSI given to a function: the PHB's hardware number and global
/// interrupt number, the message the device must write to raise it, the ESB
/// management page (real) the hypervisor EOIs (or polls).
#[derive(Clone, Copy, Debug)]
pub struct HostMsi {
    pub ive: u32,
    pub girq: u32,
    pub address: u64,
    pub data: u32,
    pub esb: u64,
}

/// A function's MSIs (docs/passthrough.md "MSI").
#[derive(Default)]
pub struct FunctionMsi {
    /// Guest interrupt number of vector 0 (`vphb::MSI_LISN_BASE` + ...).
    pub first_lisn: u32,
    /// The host MSIs reserved at creation, one per vector it may have.
    pub host: Vec<HostMsi>,
    /// Real address of the MSI-X table (inside a BAR), when the hypervisor
    /// can write it.
    pub msix_table: Option<u64>,
    /// The table's PCI address, and the guest's view of it (its pages trap).
    pub msix_table_pci: Option<u64>,
    pub shadow: spin::Mutex<Option<vphb::MsixShadow>>,
    /// The MSI capability's offset and whether it takes 64-bit addresses.
    pub msi_cap: Option<(u16, bool)>,
    /// Vectors programmed by ibm,change-msi (0: none).
    pub granted: AtomicU32,
    /// Per vector: routed through the host XIVE (else polled while granted).
    pub routed: Vec<AtomicBool>,
    /// Per vector: a routed source was found at P = 1 by the last backstop
    /// sweep ([`poll_msi`]).
    pub held: Vec<AtomicBool>,
    /// The kind programmed (`vphb::MsiKind` as u32, 0 none); under the lock
    /// so that change-msi calls do not interleave.
    pub kind: spin::Mutex<u32>,
}

/// A logical PHB: the partition's functions of one host PHB.
pub struct Vphb {
    pub phb_id: u64,
    pub m32: MmioWindow,
    pub mmio_gpa: u64,
    pub ddw: DdwWindow,
    pub functions: Vec<Passed>,
}

/// A partition's passed-through functions (none for most partitions).
#[derive(Default)]
pub struct Passthrough {
    pub vphbs: Vec<Vphb>,
    /// MSI delivery state, only for a partition with devices (the others pay
    /// one pointer).
    pub delivery: Option<alloc::boxed::Box<Delivery>>,
}

/// How a partition's MSIs reach it (docs/passthrough.md "MSI").
#[derive(Default)]
pub struct Delivery {
    /// Vectors taken through the host XIVE (`host_eq`). Lock order: taken
    /// alone (OPAL calls are made under it).
    pub routes: spin::Mutex<RouteTable>,
    /// Host interrupts taken from the queues, and MSIs found by polling.
    pub host_irqs: AtomicU64,
    pub polled_irqs: AtomicU64,
    /// Routed sources the backstop found held at P = 1 on two sweeps in a
    /// row and EOIed and fired itself (0 unless an event went astray).
    pub recovered: AtomicU64,
    /// Timebase of the next backstop sweep.
    pub next_sweep: AtomicU64,
}

/// Backstop sweep period (routed vectors' PQ read, `poll_msi`).
const SWEEP_US: u64 = 20_000;

impl Delivery {
    /// Whether this caller does the sweep that is due now (one caller per
    /// period, partition-wide).
    fn sweep_due(&self) -> bool {
        let now = instr::mftb();
        let next = self.next_sweep.load(Ordering::Relaxed);
        now >= next
            && self
                .next_sweep
                .compare_exchange(
                    next,
                    now + timer::us_to_ticks(SWEEP_US),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Per host PHB: the next free PE number and PCI address for pass-through
/// BARs (the upper half of the M32 window; the hypervisor's own console is
/// placed from the bottom).
struct PhbAlloc {
    phb_id: u64,
    next_pe: u32,
    next_pci: u64,
}

static PHB_ALLOC: spin::Mutex<Vec<PhbAlloc>> = spin::Mutex::new(Vec::new());

/// The first PE the hypervisor gives partitions (PE 0 is its console's).
const FIRST_PE: u32 = 1;

fn m32_segment(f: &PciFunction, m32: &MmioWindow) -> u64 {
    m32.size
        .div_ceil(u64::from(f.num_pes.max(1)))
        .next_power_of_two()
}

/// Whether `addr` may be given to a partition, from skiboot's device tree and
/// the function's header (for the manifest check at boot).
pub fn host_function(
    info: &HostInfo,
    addr: PciAddress,
) -> crate::partition::manifest::HostFunction {
    use crate::partition::manifest::HostFunction;
    let Some(f) = find(info, addr) else {
        return HostFunction::Absent;
    };
    if f.vendor == crate::virtio::VENDOR && f.device == crate::virtio::DEVICE_CONSOLE {
        return HostFunction::Hypervisor;
    }
    let is_bridge = info
        .pci_functions
        .iter()
        .any(|o| o.phb_id == f.phb_id && o.bridge == Some(f.bdf))
        || f.bridge.is_none();
    let mut cfg = OpalConfig { phb_id: f.phb_id };
    let header = cfg.read8(f.bdf, pci::HEADER_TYPE).unwrap_or(0xff);
    if is_bridge || header & 0x7f != 0 {
        return HostFunction::Bridge;
    }
    HostFunction::Free
}

fn find(info: &HostInfo, addr: PciAddress) -> Option<&PciFunction> {
    info.pci_functions
        .iter()
        .find(|f| f.phb_id == u64::from(addr.domain) && f.bdf == addr.bdf)
}

/// Sets up `devices` for a partition whose memory is `mem` (one host extent,
/// 16 MiB aligned) and maps their BARs into its `tree`.
pub fn attach(
    name: &str,
    devices: &[PciAddress],
    mem: &ExtentMap,
    tree: &mut RadixTree,
    info: &HostInfo,
) -> Result<Passthrough, DeviceError> {
    let mut pt = Passthrough::default();
    if devices.is_empty() {
        return Ok(pt);
    }
    pt.delivery = Some(alloc::boxed::Box::default());
    let first = devices[0];
    let ddw = match mem.extents() {
        [one] => vphb::ddw_for(one.pa, mem.size())
            .map_err(|_| DeviceError::Unusable(first, "partition memory not 16 MiB aligned"))?,
        _ => {
            return Err(DeviceError::Unusable(
                first,
                "partition memory is not one host extent",
            ))
        }
    };
    for &addr in devices {
        let f = *find(info, addr).ok_or(DeviceError::Missing(addr))?;
        let m32 = f
            .m32
            .ok_or(DeviceError::Unusable(addr, "its PHB has no 32-bit window"))?;
        let n = pt.vphbs.len() as u64;
        let slot = match pt.vphbs.iter().position(|v| v.phb_id == f.phb_id) {
            Some(i) => i,
            None => {
                pt.vphbs.push(Vphb {
                    phb_id: f.phb_id,
                    m32,
                    mmio_gpa: MMIO_GPA_BASE + n * MMIO_GPA_STRIDE,
                    ddw,
                    functions: Vec::new(),
                });
                pt.vphbs.len() - 1
            }
        };
        let mut passed = place(&f, addr, &m32, info)?;
        passed.tce32 = spin::Mutex::new(
            TceTable::new(
                vphb::liobn(f.phb_id, pt.vphbs[slot].functions.len(), 0),
                0,
                TCE32_SIZE,
                TCE32_SHIFT,
                mem.size(),
            )
            .map_err(|_| DeviceError::Unusable(addr, "32-bit TCE window"))?,
        );
        passed.msi.host = reserve_msis(&f, &passed);
        passed.msi.routed = passed
            .msi
            .host
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        passed.msi.held = passed
            .msi
            .host
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let v = &mut pt.vphbs[slot];
        map_bars(tree, v, &passed).map_err(|_| DeviceError::Map(addr))?;
        info!(
            "PAPRIKA passthrough: {} {} ({:04x}:{:04x}) PE {}, {} BAR(s), vPHB {:#x}",
            name,
            addr,
            passed.node.vendor,
            passed.node.device,
            passed.pe,
            passed.node.bars.len(),
            vphb::buid(f.phb_id)
        );
        v.functions.push(passed);
    }
    let reserved: Vec<u32> = pt
        .vphbs
        .iter()
        .flat_map(|v| v.functions.iter().map(|f| f.msi.host.len() as u32))
        .collect();
    let blocks =
        vphb::lisn_blocks(&reserved).ok_or(DeviceError::Unusable(first, "too many MSI vectors"))?;
    let mut blocks = blocks.into_iter();
    for f in pt.vphbs.iter_mut().flat_map(|v| v.functions.iter_mut()) {
        f.msi.first_lisn = blocks.next().unwrap_or(vphb::MSI_LISN_BASE);
        if !f.msi.host.is_empty() {
            info!(
                "PAPRIKA passthrough-msi: {} {} {} vector(s) as interrupts {:#x}.., host MSI {} on, MSI-X table {}",
                name,
                f.addr,
                f.msi.host.len(),
                f.msi.first_lisn,
                f.msi.host[0].ive,
                if f.msi.msix_table.is_some() { "writable" } else { "unreachable" }
            );
        }
    }
    Ok(pt)
}

/// Host MSI state of one PHB (set up at boot by [`prepare_msi`]).
struct PhbMsi {
    range: vphb::MsiRange,
    /// ESB management pages of the first and last MSI (real), mapped.
    esb_lo: u64,
    esb_hi: u64,
    /// Its 32-bit MMIO window is mapped for the hypervisor (MSI-X tables).
    m32_mapped: bool,
}

static PHB_MSI: spin::Mutex<Vec<PhbMsi>> = spin::Mutex::new(Vec::new());

fn m32_mapped(phb_id: u64) -> bool {
    PHB_MSI
        .lock()
        .iter()
        .any(|m| m.range.phb_id == phb_id && m.m32_mapped)
}

/// At boot, before the hypervisor's page tables are built, when some
/// partition owns a function (`devices`, from the boot bundle's manifest):
/// switches the host XIVE to exploitation mode (so OPAL tells where MSI ESBs
/// are), and returns what the hypervisor must map for pass-through MSIs: the
/// MSI ESB management pages of each PHB with such a function and its 32-bit
/// MMIO window (where MSI-X tables are), except a window overlapping `taken`
/// (the console's registers).
pub fn prepare_msi(info: &HostInfo, taken: &[PhysRange], devices: &[PciAddress]) -> Vec<PhysRange> {
    let mut out = Vec::new();
    let mut phbs: Vec<&PciFunction> = Vec::new();
    for f in &info.pci_functions {
        if f.msi_ranges.is_some()
            && devices.iter().any(|d| u64::from(d.domain) == f.phb_id)
            && !phbs.iter().any(|p| p.phb_id == f.phb_id)
        {
            phbs.push(f);
        }
    }
    if phbs.is_empty() {
        return out;
    }
    if let Err(e) = opal_xive::reset_exploitation() {
        warn!("passthrough: OPAL_XIVE_RESET failed ({e:?}): no MSIs for partitions");
        return out;
    }
    const TWO_MB: u64 = 2 << 20;
    // The TIMA's HV page: each thread acknowledges its physical ring there
    // (host-XIVE delivery, `host_irq`); without it MSIs are polled.
    match info.xive.as_ref().and_then(|x| x.tima.get(1)) {
        Some(hv) if hv.end > hv.start => {
            out.push(PhysRange {
                start: hv.start & !(TWO_MB - 1),
                end: hv.end.next_multiple_of(TWO_MB),
            });
            opal_xive::set_tima_hv(hv.start);
            host_irq::set_available();
            info!(
                "PAPRIKA passthrough-msi: host XIVE delivery, TIMA HV page {:#x}",
                hv.start
            );
        }
        _ => warn!("passthrough: no host TIMA in the device tree: MSIs are polled"),
    }
    let mut all = PHB_MSI.lock();
    for f in phbs {
        let Some((base, count)) = f.msi_ranges.filter(|r| r.1 > 0) else {
            continue;
        };
        let (lo, hi) = match (
            opal_xive::irq_info(base),
            opal_xive::irq_info(base + count - 1),
        ) {
            (Ok(a), Ok(b)) if a.eoi_page != 0 && b.eoi_page >= a.eoi_page => (a, b),
            other => {
                warn!(
                    "passthrough: PHB {} MSI ESBs unknown ({:?}): no MSIs there",
                    f.phb_id, other
                );
                continue;
            }
        };
        let page = 1u64 << hi.shift.min(24);
        out.push(PhysRange {
            start: lo.eoi_page & !(TWO_MB - 1),
            end: (hi.eoi_page + page).next_multiple_of(TWO_MB),
        });
        let mut m32_mapped = false;
        if let Some(m) = f.m32 {
            let r = PhysRange {
                start: m.cpu & !(TWO_MB - 1),
                end: (m.cpu + m.size).next_multiple_of(TWO_MB),
            };
            if taken.iter().any(|t| t.start < r.end && r.start < t.end) {
                warn!(
                    "passthrough: PHB {}'s 32-bit window holds the console: its functions get no MSI-X",
                    f.phb_id
                );
            } else {
                out.push(r);
                m32_mapped = true;
            }
        }
        info!(
            "PAPRIKA passthrough-msi: PHB {} MSIs {:#x}+{} ESB {:#x}..{:#x} (flags {:#x}, shift {})",
            f.phb_id, base, count, lo.eoi_page, hi.eoi_page, lo.flags, lo.shift
        );
        all.push(PhbMsi {
            range: vphb::MsiRange::new(f.phb_id, base, count),
            esb_lo: lo.eoi_page,
            esb_hi: hi.eoi_page,
            m32_mapped,
        });
    }
    // Overlapping ranges (two PHBs' ESBs in one 2 MiB page) are merged.
    out.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<PhysRange> = Vec::new();
    for r in out {
        match merged.last_mut() {
            Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Reserves the function's host MSIs: each given to its PE, its message
/// read from OPAL, its ESB held at PQ 10 (polled, never notifying).
fn reserve_msis(f: &PciFunction, p: &Passed) -> Vec<HostMsi> {
    let want = vphb::vectors_for(p.node.msi, p.node.msix);
    let mut out = Vec::new();
    if want == 0 {
        return out;
    }
    let mut all = PHB_MSI.lock();
    let Some(m) = all.iter_mut().find(|m| m.range.phb_id == f.phb_id) else {
        warn!("passthrough {}: its PHB has no MSIs set up", p.addr);
        return out;
    };
    let Some(first) = m.range.alloc(want) else {
        warn!("passthrough {}: the PHB's MSIs are all given", p.addr);
        return out;
    };
    for ive in first..first + want {
        let girq = m.range.base + ive;
        let msg = opal_pci::set_xive_pe(f.phb_id, p.pe, ive)
            .and_then(|()| opal_pci::get_msi_64(f.phb_id, p.pe, ive));
        let esb = opal_xive::irq_info(girq).map(|i| i.eoi_page);
        match (msg, esb) {
            (Ok((address, data)), Ok(esb)) if (m.esb_lo..=m.esb_hi).contains(&esb) => {
                opal_xive::esb_load(esb, vphb::ESB_SET_PQ_10);
                out.push(HostMsi {
                    ive,
                    girq,
                    address,
                    data,
                    esb,
                });
            }
            other => {
                warn!(
                    "passthrough {}: host MSI {ive} unusable ({other:?})",
                    p.addr
                );
                break;
            }
        }
    }
    out
}

/// Places the BARs of one function in its own M32 segments, routes them and
/// the function to a new PE, and reads what the guest's node needs.
fn place(
    f: &PciFunction,
    addr: PciAddress,
    m32: &MmioWindow,
    _info: &HostInfo,
) -> Result<Passed, DeviceError> {
    let err = |e| DeviceError::Pci(addr, e);
    let mut cfg = OpalConfig { phb_id: f.phb_id };
    let bdf = f.bdf;
    if cfg.read8(bdf, pci::HEADER_TYPE).map_err(err)? & 0x7f != 0 {
        return Err(DeviceError::Unusable(addr, "not an endpoint"));
    }
    let mut bars = pci::size_bars(&mut cfg, bdf).map_err(err)?;
    // Largest first: natural alignment packs them.
    bars.sort_unstable_by_key(|b| core::cmp::Reverse(b.size));
    let seg = m32_segment(f, m32);
    let (pe, start) = {
        let mut all = PHB_ALLOC.lock();
        let a = match all.iter().position(|a| a.phb_id == f.phb_id) {
            Some(i) => &mut all[i],
            None => {
                all.push(PhbAlloc {
                    phb_id: f.phb_id,
                    next_pe: FIRST_PE,
                    next_pci: (m32.pci + m32.size / 2).next_multiple_of(seg),
                });
                all.last_mut().unwrap_or_else(|| unreachable!())
            }
        };
        if a.next_pe + 1 >= f.num_pes {
            return Err(DeviceError::Unusable(addr, "the PHB has no free PE"));
        }
        let pe = a.next_pe;
        a.next_pe += 1;
        let total: u64 = bars.iter().map(|b| b.size.max(BAR_ALIGN)).sum();
        let start = a.next_pci;
        a.next_pci = (start + total.next_power_of_two()).next_multiple_of(seg);
        (pe, start)
    };
    let end = m32.pci + m32.size;
    let mut alloc = BarAllocator::new(&MmioWindow {
        cpu: 0,
        pci: start,
        size: end.saturating_sub(start),
    });
    let mut vbars: heapless::Vec<VBar, 6> = heapless::Vec::new();
    let mut top = start;
    for b in &bars {
        let at = alloc.alloc(b.size.max(BAR_ALIGN)).map_err(err)?;
        pci::set_bar(&mut cfg, bdf, b, at).map_err(err)?;
        top = top.max(at + b.size.max(BAR_ALIGN));
        let _ = vbars.push(VBar {
            index: b.index,
            size: b.size,
            is_64: b.is_64,
            prefetchable: b.prefetchable,
            pci: at,
        });
    }
    vbars.sort_unstable_by_key(|b| b.index);
    if let Some(bridge) = f.bridge {
        // The whole M32 window: the console (if on this PHB) sits below.
        pci::open_bridge_window(&mut cfg, bridge, m32.pci, m32.size).map_err(err)?;
    }
    opal_pci::set_pe(f.phb_id, pe, bdf).map_err(err)?;
    let mut s = start;
    while s < top {
        let segment = (s - m32.pci) / seg;
        if let Err(e) = opal_pci::map_m32_segment(f.phb_id, pe, segment) {
            warn!("passthrough {addr}: M32 segment {segment} not routed to PE {pe} ({e:?})");
        }
        s += seg;
    }
    // The 32-bit window: a TCE table of faults; no 64-bit window until the
    // guest creates one; no freeze left from before.
    let hw_bytes = (TCE32_SIZE >> TCE32_SHIFT) * 8;
    let tce_hw = crate::mm::alloc_frames(hw_bytes, hw_bytes)
        .map_err(|_| DeviceError::Unusable(addr, "no memory for its TCE table"))?;
    crate::mm::zero_phys(tce_hw, hw_bytes);
    opal_pci::map_dma_tce(
        f.phb_id,
        pe,
        u64::from(pe) << 1,
        tce_hw,
        hw_bytes,
        1 << TCE32_SHIFT,
    )
    .map_err(err)?;
    let _ = opal_pci::unmap_dma(f.phb_id, pe, (u64::from(pe) << 1) | 1);
    let _ = opal_pci::clear_freeze(f.phb_id, pe);
    let cmd = cfg.read16(bdf, pci::COMMAND).map_err(err)?;
    cfg.write16(
        bdf,
        pci::COMMAND,
        (cmd | pci::COMMAND_MEMORY) & !pci::COMMAND_BUS_MASTER,
    )
    .map_err(err)?;

    let class_rev = cfg.read32(bdf, 0x08).map_err(err)?;
    let sub = cfg.read32(bdf, 0x2c).map_err(err)?;
    let mut vf = VFunction::new(bdf, &vbars);
    // The PE always has a window (TVE#0, TCEs the hypervisor checked), so the
    // device may master: every address it uses is translated by the PHB.
    vf.dma_ready = true;
    let (mut msi, mut msix, mut msix_table) = (0, 0, None);
    let (mut msi_cap, mut msix_table_cpu) = (None, None);
    for (id, at) in pci::capabilities(&mut cfg, bdf).map_err(err)? {
        let at16 = u16::from(at);
        match id {
            0x05 => {
                let ctl = cfg.read16(bdf, at16 + 2).map_err(err)?;
                msi = 1 << ((ctl >> 1) & 7);
                let _ = vf.read_only.push((at16, 24));
                vf.msi_cap = Some(at16);
                msi_cap = Some((at16, ctl & 0x80 != 0));
            }
            pci::CAP_PCIE => vf.pcie_cap = Some(at16),
            0x11 => {
                let ctl = cfg.read16(bdf, at16 + 2).map_err(err)?;
                msix = u32::from(ctl & 0x7ff) + 1;
                let table = cfg.read32(bdf, at16 + 4).map_err(err)?;
                let bir = (table & 7) as u8;
                if let Some(b) = vbars.iter().find(|b| b.index == bir) {
                    let off = u64::from(table & !7);
                    let lo = (b.pci + off) & !0xfff;
                    let hi = (b.pci + off + 16 * u64::from(msix)).next_multiple_of(0x1000);
                    msix_table = Some((lo, hi - lo));
                    msix_table_cpu = Some(m32.cpu + (b.pci + off - m32.pci));
                }
                let _ = vf.read_only.push((at16, 12));
                vf.msix_cap = Some(at16);
            }
            _ => {}
        }
    }
    let node = VphbFunction {
        bdf: bdf.0,
        vendor: f.vendor,
        device: f.device,
        revision: class_rev as u8,
        class: class_rev >> 8,
        subsystem_vendor: sub as u16,
        subsystem: (sub >> 16) as u16,
        bars: vbars
            .iter()
            .map(|b| (b.index, b.is_64, b.prefetchable, b.pci, b.size))
            .collect(),
        msi,
        msix,
    };
    Ok(Passed {
        addr,
        pe,
        vf: spin::Mutex::new(vf),
        node,
        ddw_open: AtomicBool::new(false),
        msix_table,
        // Replaced by `attach` once the function's LIOBN is known.
        tce32: spin::Mutex::new(
            TceTable::new(0, 0, 1 << TCE32_SHIFT, TCE32_SHIFT, 0)
                .map_err(|_| DeviceError::Unusable(addr, "32-bit TCE window"))?,
        ),
        tce_hw,
        ddw_shift: core::sync::atomic::AtomicU32::new(TCE32_SHIFT),
        tce32_used: AtomicBool::new(false),
        msi: FunctionMsi {
            msix_table: msix_table_cpu.filter(|_| m32_mapped(f.phb_id)),
            msix_table_pci: msix_table_cpu.map(|c| c - m32.cpu + m32.pci),
            shadow: spin::Mutex::new((msix > 0).then(|| vphb::MsixShadow::new(msix))),
            msi_cap,
            ..FunctionMsi::default()
        },
    })
}

/// Maps a function's BARs (whole 64 KiB pages) cache-inhibited and guarded at
/// their guest real addresses, leaving out the MSI-X table's pages.
fn map_bars(tree: &mut RadixTree, v: &Vphb, p: &Passed) -> Result<(), crate::mm::radix::MapError> {
    for &(_, _, _, pci, size) in &p.node.bars {
        let len = size.max(BAR_ALIGN);
        let mut pieces: heapless::Vec<(u64, u64), 2> = heapless::Vec::new();
        match p.msix_table {
            Some((t, tl)) if t >= pci && t < pci + len => {
                let _ = pieces.push((pci, t - pci));
                let _ = pieces.push((t + tl, pci + len - (t + tl)));
            }
            _ => {
                let _ = pieces.push((pci, len));
            }
        }
        for (at, n) in pieces {
            if n == 0 {
                continue;
            }
            let gpa = v.mmio_gpa + (at - v.m32.pci);
            let hpa = v.m32.cpu + (at - v.m32.pci);
            tree.map(
                &mut crate::partition::lpar::Tables,
                gpa,
                hpa,
                n,
                PteFlags::READ | PteFlags::WRITE,
                CacheAttr::NonIdempotentIo,
                PageSize::Size4K,
            )?;
        }
    }
    Ok(())
}

impl Passthrough {
    pub fn is_empty(&self) -> bool {
        self.vphbs.is_empty()
    }

    /// MSI delivery state (`None` without devices).
    pub fn delivery(&self) -> Option<&Delivery> {
        self.delivery.as_deref()
    }

    /// Every MSI interrupt number of the partition's functions (edge sources
    /// in both of its interrupt controllers).
    pub fn msi_lisns(&self) -> Vec<u32> {
        self.functions()
            .flat_map(|f| (0..f.msi.host.len() as u32).map(move |i| f.msi.first_lisn + i))
            .collect()
    }

    fn functions(&self) -> impl Iterator<Item = &Passed> {
        self.vphbs.iter().flat_map(|v| v.functions.iter())
    }

    /// The function whose trapped MSI-X table pages hold guest real `gra`.
    pub fn msix_page(&self, gra: u64) -> Option<(&Vphb, &Passed)> {
        self.vphbs.iter().find_map(|v| {
            v.functions.iter().find_map(|f| {
                let (pci, len) = f.msix_table?;
                let gpa = v.mmio_gpa + (pci - v.m32.pci);
                (gra >= gpa && gra - gpa < len).then_some((v, f))
            })
        })
    }

    /// Some programmed MSI is polled (not routed through the host XIVE):
    /// H_CEDE then naps 1 ms at most.
    pub fn msi_polled(&self) -> bool {
        self.functions().any(|f| {
            let n = f.msi.granted.load(Ordering::Relaxed) as usize;
            f.msi
                .routed
                .iter()
                .take(n)
                .any(|r| !r.load(Ordering::Relaxed))
        })
    }

    /// The logical PHB nodes of the guest's device tree.
    pub fn nodes(&self) -> Vec<VphbNode> {
        let t = |c| r::token_of(c);
        self.vphbs
            .iter()
            .map(|v| VphbNode {
                buid: vphb::buid(v.phb_id),
                mmio_gpa: v.mmio_gpa,
                mmio_pci: v.m32.pci,
                mmio_size: v.m32.size,
                dma_window: v.functions.first().map(|f| {
                    let t = f.tce32.lock();
                    (t.liobn(), t.bus_offset(), t.window_size())
                }),
                ddw_tokens: [
                    t(RtasCall::QueryPeDmaWindow),
                    t(RtasCall::CreatePeDmaWindow),
                    t(RtasCall::RemovePeDmaWindow),
                    t(RtasCall::ResetPeDmaWindow),
                ],
                msi_total: v.functions.iter().map(|f| f.msi.host.len() as u32).sum(),
                functions: v.functions.iter().map(|f| f.node.clone()).collect(),
            })
            .collect()
    }

    /// The logical PHB, function index and config register a PCI RTAS call
    /// names (`vphb::function_args`: exactly `nargs` arguments, `nret` in
    /// `nret_ok`).
    fn called_function(
        &self,
        a: &RtasArgs,
        nargs: usize,
        nret_ok: core::ops::RangeInclusive<usize>,
    ) -> Result<(&Vphb, usize, u16), ArgsError> {
        let c = vphb::function_args(a, nargs, nret_ok)?;
        let v = self.vphbs.iter().find(|v| v.phb_id == c.phb_id);
        let i = v.and_then(|v| v.functions.iter().position(|f| f.addr.bdf == c.bdf));
        match (v, i) {
            (Some(v), Some(i)) => Ok((v, i, c.reg)),
            _ => Err(ArgsError::NotItsFunction),
        }
    }

    /// Closes every window and resets every function (partition reboot, stop).
    pub fn reset_all(&self, name: &str) {
        for v in &self.vphbs {
            for f in &v.functions {
                close_ddw(v, f);
                {
                    let mut t = f.tce32.lock();
                    t.clear();
                    crate::mm::zero_phys(f.tce_hw, (TCE32_SIZE >> TCE32_SHIFT) * 8);
                }
                f.tce32_used.store(false, Ordering::Release);
                let _ = opal_pci::tce_kill_pe(v.phb_id, f.pe);
                // The reset clears the device's MSI and MSI-X state; the
                // guest asks again with ibm,change-msi.
                {
                    let mut kind = f.msi.kind.lock();
                    unroute_vectors(self, f);
                    *kind = 0;
                    f.msi.granted.store(0, Ordering::Release);
                    if let Some(t) = f.msi.shadow.lock().as_mut() {
                        *t = vphb::MsixShadow::new(f.node.msix);
                    }
                }
                let mut cfg = OpalConfig { phb_id: v.phb_id };
                let mut wait = || {
                    let until = instr::mftb() + timer::us_to_ticks(100_000);
                    while instr::mftb() < until {
                        crate::platform::opal::heartbeat();
                        core::hint::spin_loop();
                    }
                };
                match pci::reset_function(&mut cfg, f.addr.bdf, &mut wait) {
                    Ok(how) => info!("PAPRIKA passthrough-reset: {} {} {:?}", name, f.addr, how),
                    Err(e) => warn!("passthrough: {} {}: reset failed ({e:?})", name, f.addr),
                }
                let _ = opal_pci::clear_freeze(v.phb_id, f.pe);
            }
        }
    }
}

/// ibm,change-msi (config address, BUID hi, BUID lo, function, number,
/// sequence) -> (status, number, sequence + 1[, type]).
fn change_msi(p: &super::lpar::Partition, a: &mut RtasArgs) {
    let arg = |i| a.arg(i).unwrap_or(0);
    let (v, i, _) = match p.pci.called_function(a, 6, 3..=4) {
        Ok(f) => f,
        Err(e) => {
            if e == ArgsError::NotItsFunction {
                let what = "ibm,change-msi: not its function";
                super::vcpu::rate_limited_warn(p, what, u64::from(arg(0)));
            }
            return a.set_status(r::RTAS_PARAMETER_ERROR);
        }
    };
    let f = &v.functions[i];
    let m = &f.msi;
    let mut kind = m.kind.lock();
    let decided = vphb::change_msi(arg(3), arg(4), f.node.msi, f.node.msix, m.host.len() as u32);
    let (n, ty) = match decided {
        Err(rc) => {
            super::vcpu::rate_limited_warn(
                p,
                "ibm,change-msi refused",
                u64::from(arg(3)) << 32 | u64::from(arg(4)),
            );
            return a.set_status(rc);
        }
        Ok(vphb::ChangeMsi::Fewer(k, n)) => (n, k as u32),
        Ok(vphb::ChangeMsi::Release) => {
            unroute_vectors(&p.pci, f);
            release_msis(v, f, *kind);
            *kind = 0;
            (0, 0)
        }
        Ok(vphb::ChangeMsi::Program(k, n)) => {
            unroute_vectors(&p.pci, f);
            release_msis(v, f, *kind);
            *kind = 0;
            if program_msis(v, f, k, n).is_err() {
                warn!(
                    "passthrough {}: programming {n} {k:?} vector(s) failed",
                    f.addr
                );
                return a.set_status(r::RTAS_HARDWARE_ERROR);
            }
            *kind = k as u32;
            m.granted.store(n, Ordering::Release);
            let routed = route_vectors(p, f, n);
            info!(
                "PAPRIKA passthrough-msi: {} {} {:?} {} vector(s) as {:#x}.., {} through the host XIVE",
                p.name, f.addr, k, n, m.first_lisn, routed
            );
            (n, k as u32)
        }
    };
    let seq = arg(5).wrapping_add(1);
    a.set_status(r::RTAS_SUCCESS);
    a.set_ret(1, n);
    a.set_ret(2, seq);
    if a.nret > 3 {
        a.set_ret(3, ty);
    }
}

/// Stops polling the function's vectors and clears the device's messages.
fn release_msis(v: &Vphb, f: &Passed, kind: u32) {
    let m = &f.msi;
    let had = m.granted.swap(0, Ordering::AcqRel);
    if kind == vphb::MsiKind::MsiX as u32 {
        if let Some(table) = m.msix_table {
            for i in 0..u64::from(had) {
                opal_pci::write_msix_entry(table + 16 * i, vphb::msix_entry(0, 0, true));
            }
        }
        if let Some(t) = m.shadow.lock().as_mut() {
            for i in 0..had {
                t.set(i, vphb::msix_entry(0, 0, true));
            }
        }
    } else if kind == vphb::MsiKind::Msi as u32 {
        if let Some((cap, _)) = m.msi_cap {
            let _ = msi_enable(v, f, false);
            let mut cfg = OpalConfig { phb_id: v.phb_id };
            let _ = cfg.write32(f.addr.bdf, cap + 4, 0);
            let _ = cfg.write32(f.addr.bdf, cap + 8, 0);
        }
    }
}

/// Writes the host messages of vectors 0..n into the device: the MSI-X
/// table entries (unmasked), or the MSI capability's address and data (one
/// vector; the guest sets MSI Enable).
fn program_msis(v: &Vphb, f: &Passed, kind: vphb::MsiKind, n: u32) -> Result<(), PciError> {
    let m = &f.msi;
    // A message left from before (the device's last use) is not the guest's:
    // re-arm every vector at PQ 10, dropping a pending Q.
    for h in m.host.iter().take(n as usize) {
        opal_xive::esb_load(h.esb, vphb::ESB_SET_PQ_10);
    }
    match kind {
        vphb::MsiKind::MsiX => {
            let table = m
                .msix_table
                .ok_or(PciError::Phb("MSI-X table not mapped", 0))?;
            let mut shadow = m.shadow.lock();
            for (i, h) in m.host.iter().take(n as usize).enumerate() {
                let e = vphb::msix_entry(h.address, h.data, false);
                opal_pci::write_msix_entry(table + 16 * i as u64, e);
                if let Some(t) = shadow.as_mut() {
                    t.set(i as u32, e);
                }
            }
        }
        vphb::MsiKind::Msi => write_msi_message(v, f)?,
    }
    Ok(())
}

/// The MSI capability's address and data: vector 0's host message, one
/// message (Multiple Message Enable 0); Enable is left as it is.
fn write_msi_message(v: &Vphb, f: &Passed) -> Result<(), PciError> {
    let m = &f.msi;
    let (cap, is64) = m.msi_cap.ok_or(PciError::Phb("no MSI capability", 0))?;
    let h = m.host.first().ok_or(PciError::Phb("no host MSI", 0))?;
    if !is64 {
        return Err(PciError::Phb("32-bit MSI only", 0));
    }
    let mut cfg = OpalConfig { phb_id: v.phb_id };
    let bdf = f.addr.bdf;
    let ctl = cfg.read16(bdf, cap + 2)?;
    cfg.write16(bdf, cap + 2, ctl & !0x70)?;
    cfg.write32(bdf, cap + 4, h.address as u32)?;
    cfg.write32(bdf, cap + 8, (h.address >> 32) as u32)?;
    cfg.write16(bdf, cap + 12, h.data as u16)
}

/// The guest sets or clears MSI Enable (the rest of Message Control stays).
fn msi_enable(v: &Vphb, f: &Passed, on: bool) -> Result<(), PciError> {
    let Some((cap, _)) = f.msi.msi_cap else {
        return Ok(());
    };
    let mut cfg = OpalConfig { phb_id: v.phb_id };
    let ctl = cfg.read16(f.addr.bdf, cap + 2)?;
    cfg.write16(f.addr.bdf, cap + 2, (ctl & !1) | u16::from(on))
}

/// A guest load (`store` None) or store of `size` bytes at `gra` in the
/// trapped pages of `f`'s MSI-X table: inside the table on the guest's view
/// (`vphb::MsixShadow`; a programmed vector's mask bit passed to the device),
/// elsewhere in those pages (the PBA...) on the device itself. The value is
/// big-endian bus order (`emulate`'s convention); `None`: not emulated.
pub fn msix_access(v: &Vphb, f: &Passed, gra: u64, size: u64, store: Option<u64>) -> Option<u64> {
    if !matches!(size, 1 | 2 | 4 | 8) || !gra.is_multiple_of(size) {
        return None;
    }
    let m = &f.msi;
    let table_pci = m.msix_table_pci?;
    let table_gpa = v.mmio_gpa + (table_pci - v.m32.pci);
    let mut shadow = m.shadow.lock();
    let t = shadow.as_mut()?;
    let off = gra.wrapping_sub(table_gpa);
    if gra >= table_gpa && t.covers(off, size) {
        return match store {
            None => t.read(off, size),
            Some(value) => {
                if let Some((first, last)) = t.write(off, size, value)? {
                    let granted = m.granted.load(Ordering::Acquire);
                    let table = m.msix_table?;
                    for i in first..=last.min(granted.saturating_sub(1)) {
                        if i < granted {
                            let ctl = t.vector_control(i).unwrap_or(1) & 1;
                            opal_pci::mmio_write(
                                table + 16 * u64::from(i) + 12,
                                4,
                                u64::from(ctl.swap_bytes()),
                            );
                        }
                    }
                }
                Some(0)
            }
        };
    }
    // Not the table: the device's own registers (only if the window is mapped).
    m.msix_table?;
    let pa = v.m32.cpu + (gra - v.mmio_gpa);
    match store {
        None => Some(opal_pci::mmio_read(pa, size)),
        Some(value) => {
            opal_pci::mmio_write(pa, size, value);
            Some(0)
        }
    }
}

/// Polls the partition's programmed MSIs (from its vCPUs' run loops): each
/// ESB whose Q bit a device's MSI set fires the guest's source, in both of
/// its interrupt controllers (as VIO devices do), and is re-armed at PQ 10.
#[inline(always)]
pub fn poll_msi(p: &super::lpar::Partition) {
    // Every full exit passes here: most partitions have no devices.
    if !p.pci.is_empty() {
        poll_msi_slow(p);
    }
}

#[inline(never)]
#[cold]
fn poll_msi_slow(p: &super::lpar::Partition) {
    if !host_irq::here() {
        // This thread's host queue, the first time it runs a vCPU of a
        // partition with devices (before any vector can be routed to it).
        host_irq::thread_init();
    } else if host_irq::pending_here() {
        take_host_irqs(p);
    }
    let sweep = p.pci.delivery().is_some_and(Delivery::sweep_due);
    for f in p.pci.functions() {
        let n = f.msi.granted.load(Ordering::Acquire) as usize;
        for (i, h) in f.msi.host.iter().take(n).enumerate() {
            // A routed source is at PQ 00: a load at 0xE00 would mask it.
            if f.msi
                .routed
                .get(i)
                .is_some_and(|r| r.load(Ordering::Acquire))
            {
                if sweep {
                    backstop(p, f, i, h);
                }
                continue;
            }
            if vphb::esb_fired(opal_xive::esb_load(h.esb, vphb::ESB_SET_PQ_10)) {
                if let Some(d) = p.pci.delivery() {
                    d.polled_irqs.fetch_add(1, Ordering::Relaxed);
                }
                fire(p, f.msi.first_lisn + i as u32);
            }
        }
    }
}

/// The backstop of a routed vector: its PQ read (load at 0x800, no change).
/// P = 1 means an event is queued and not taken yet; found so on two sweeps
/// in a row (at least [`SWEEP_US`] apart), the event is taken to be lost:
/// the source is EOIed and the guest's source fired here (at worst one
/// spurious guest interrupt), with a warning and the `recovered` count.
#[cold]
fn backstop(p: &super::lpar::Partition, f: &Passed, i: usize, h: &HostMsi) {
    let Some(held) = f.msi.held.get(i) else {
        return;
    };
    let pq = opal_xive::esb_load(h.esb, vphb::ESB_GET_PQ);
    if pq == u64::MAX || pq & 2 == 0 {
        held.store(false, Ordering::Relaxed);
        return;
    }
    if !held.swap(true, Ordering::AcqRel) {
        return;
    }
    held.store(false, Ordering::Relaxed);
    opal_xive::esb_load(h.esb, vphb::ESB_SET_PQ_00);
    if let Some(d) = p.pci.delivery() {
        d.recovered.fetch_add(1, Ordering::Relaxed);
    }
    super::vcpu::rate_limited_warn(
        p,
        "pass-through MSI held at P with no event taken (recovered), host interrupt",
        u64::from(h.girq),
    );
    fire(p, f.msi.first_lisn + i as u32);
}

/// The guest's source `lisn` fires, in both of its interrupt controllers (as a
/// VIO device's, `vio::notify`): its own EAS / server and priority decide
/// where and whether.
fn fire(p: &super::lpar::Partition, lisn: u32) {
    if let Some(k) = p
        .xive
        .with(|x| x.trigger(&mut super::lpar::GuestRam(p), lisn))
    {
        super::hcalls::kick_vcpu(p, k.vcpu);
    }
    super::xics::trigger(p, lisn);
}

/// On a thread with a host queue (`host_irq`): acknowledges, drains the
/// queue and, for each event of a route of `p`, EOIs the host source (PQ 00;
/// a Q set meanwhile is one more MSI, which the same guest trigger covers)
/// and fires the guest's source. An event of a vector released since (no
/// route) is dropped, its source left masked. Called on an HVI exit (0xEA0),
/// after an H_CEDE nap, before each entry when the queue has an event, and by
/// an idle thread. Kept out of line (and cold): the full-exit path that
/// calls it must not grow.
#[inline(never)]
#[cold]
pub fn take_host_irqs(p: &super::lpar::Partition) {
    let running = p.is_running();
    let Some(d) = p.pci.delivery() else {
        // No devices: nothing of this partition is routed here (drop the signal).
        host_irq::service(|_| {});
        return;
    };
    host_irq::service(|girq| {
        let route = d.routes.lock().by_girq(girq);
        let Some(r) = route else {
            crate::debug!(
                "host-irq: {}: event of unrouted host interrupt {girq:#x}",
                p.name
            );
            return;
        };
        opal_xive::esb_load(r.esb, vphb::ESB_SET_PQ_00);
        d.host_irqs.fetch_add(1, Ordering::Relaxed);
        if running {
            fire(p, r.lisn);
        }
    });
}

/// The vCPU guest source `lisn` targets (its XIVE EAS, else its XICS server,
/// whichever the guest configured) and the hardware thread running it.
fn target_of(p: &super::lpar::Partition, lisn: u32) -> Option<(u32, u32)> {
    let xive = p
        .xive
        .read(|x| x.eas(lisn))
        .filter(|e| !e.masked)
        .map(|e| e.target);
    let vcpu = match xive {
        Some(t) => t,
        None => p
            .xics
            .lock()
            .get_xive(lisn)
            .ok()
            .filter(|&(_, prio)| prio != 0xff)
            .map(|(server, _)| server)?,
    };
    let v = super::hcalls::vcpu_by_id(p, u64::from(vcpu))?;
    Some((vcpu, v.thread))
}

/// Routes the function's vectors 0..n through the host XIVE, each to the
/// queue of the thread running the vCPU its guest source targets (the
/// calling thread's when the guest has not aimed it yet), then enables the
/// source (PQ 00). A vector that cannot be routed (no host queue there, an
/// OPAL failure) stays at PQ 10 and is polled. How many were routed.
fn route_vectors(p: &super::lpar::Partition, f: &Passed, n: u32) -> u32 {
    let Some(d) = p.pci.delivery() else { return 0 };
    if !host_irq::thread_init() {
        return 0;
    }
    let me = crate::arch::ppc64::percpu::cpu_index();
    let my_vcpu = p.vcpus.iter().find(|v| v.thread == me).map_or(0, |v| v.id);
    let mut routed = 0;
    for (i, h) in f.msi.host.iter().take(n as usize).enumerate() {
        let lisn = f.msi.first_lisn + i as u32;
        let (vcpu, thread) = target_of(p, lisn)
            .filter(|&(_, t)| host_irq::thread_vp(t).is_some())
            .unwrap_or((my_vcpu, me));
        let Some(vp) = host_irq::thread_vp(thread) else {
            continue;
        };
        {
            let mut t = d.routes.lock();
            t.insert(Route {
                girq: h.girq,
                lisn,
                esb: h.esb,
                vcpu,
                thread,
            });
            let prio = u64::from(super::host_eq::HOST_PRIORITY);
            if let Err(e) = opal_xive::set_irq_config(h.girq, vp, prio, h.girq) {
                t.remove(h.girq);
                warn!(
                    "passthrough {}: host interrupt {:#x} not routed ({e:?}): polled",
                    f.addr, h.girq
                );
                continue;
            }
        }
        if let Some(r) = f.msi.routed.get(i) {
            r.store(true, Ordering::Release);
        }
        // Enabled; an MSI that came while it was held at 10 left Q set.
        if vphb::esb_fired(opal_xive::esb_load(h.esb, vphb::ESB_SET_PQ_00)) {
            fire(p, lisn);
        }
        routed += 1;
    }
    routed
}

/// Masks the function's routed vectors (PQ 10, EAS masked) and forgets their
/// routes; an event still queued somewhere is dropped when drained.
fn unroute_vectors(pt: &Passthrough, f: &Passed) {
    let Some(d) = pt.delivery() else { return };
    for (i, h) in f.msi.host.iter().enumerate() {
        let Some(r) = f.msi.routed.get(i) else { break };
        if !r.swap(false, Ordering::AcqRel) {
            continue;
        }
        opal_xive::esb_load(h.esb, vphb::ESB_SET_PQ_10);
        let mut t = d.routes.lock();
        if let Some(old) = t.remove(h.girq) {
            let vp = host_irq::thread_vp(old.thread).unwrap_or(0);
            if let Err(e) = opal_xive::set_irq_config(h.girq, vp, opal_xive::PRIO_MASKED, h.girq) {
                warn!(
                    "passthrough {}: host interrupt {:#x} not masked ({e:?})",
                    f.addr, h.girq
                );
            }
        }
    }
}

/// The guest aimed its source `lisn` somewhere (H_INT_SET_SOURCE_CONFIG,
/// ibm,set-xive): when it is a routed pass-through vector, its host route
/// follows to the thread running the new target vCPU. Events already queued
/// on the old thread are still taken there (the route is changed in place).
pub fn retarget(p: &super::lpar::Partition, lisn: u32) {
    let Some(d) = p.pci.delivery() else { return };
    if d.routes.lock().by_lisn(lisn).is_none() {
        return;
    }
    let Some((vcpu, thread)) = target_of(p, lisn) else {
        return;
    };
    let Some(vp) = host_irq::thread_vp(thread) else {
        // Its thread has no queue yet (the vCPU never ran): stay.
        return;
    };
    let mut t = d.routes.lock();
    if let Reroute::Move { girq, from, .. } = t.retarget(lisn, vcpu, thread) {
        let prio = u64::from(super::host_eq::HOST_PRIORITY);
        if let Err(e) = opal_xive::set_irq_config(girq, vp, prio, girq) {
            warn!("passthrough: host interrupt {girq:#x} not moved ({e:?})");
            let _ = t.retarget(lisn, vcpu, from);
        }
    }
}

/// Closes the function's 64-bit window (a device still using it hits a closed
/// TVE: a PE freeze, nothing else).
fn close_ddw(v: &Vphb, f: &Passed) {
    if f.ddw_open.swap(false, Ordering::AcqRel) {
        if let Err(e) = opal_pci::unmap_dma(v.phb_id, f.pe, (u64::from(f.pe) << 1) | 1) {
            warn!(
                "passthrough {}: closing the 64-bit window failed ({e:?})",
                f.addr
            );
        }
    }
}

/// The PCI RTAS calls of a partition (`partition::rtas_calls`).
pub fn rtas(p: &super::lpar::Partition, c: RtasCall, a: &mut RtasArgs) {
    let pt = &p.pci;
    let arg = |i| a.arg(i).unwrap_or(0);
    let warn_guest = |what: &str, detail: u64| {
        super::vcpu::rate_limited_warn(p, what, detail);
    };
    match c {
        RtasCall::ChangeMsi => change_msi(p, a),
        RtasCall::QueryInterruptSourceNumber => {
            let (v, i, _) = match pt.called_function(a, 4, 3..=3) {
                Ok(f) => f,
                Err(e) => {
                    if e == ArgsError::NotItsFunction {
                        warn_guest(
                            "ibm,query-interrupt-source-number: not its function",
                            u64::from(arg(0)),
                        );
                    }
                    return a.set_status(r::RTAS_PARAMETER_ERROR);
                }
            };
            let m = &v.functions[i].msi;
            match vphb::query_source(m.first_lisn, m.granted.load(Ordering::Acquire), arg(3)) {
                Ok(n) => {
                    a.set_status(r::RTAS_SUCCESS);
                    a.set_ret(1, n);
                    a.set_ret(2, 1); // edge
                }
                Err(rc) => {
                    warn_guest(
                        "ibm,query-interrupt-source-number: no such vector",
                        u64::from(arg(3)),
                    );
                    a.set_status(rc)
                }
            }
        }
        RtasCall::ReadPciConfig => {
            let (Ok((v, i, reg)), Some(width)) =
                (pt.called_function(a, 4, 2..=2), vphb::width_of(arg(3)))
            else {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            };
            let f = &v.functions[i];
            let value = match f.vf.lock().read(reg, width) {
                Err(_) => return a.set_status(r::RTAS_PARAMETER_ERROR),
                Ok(ReadAction::Value(x)) => Ok(x),
                Ok(ReadAction::Pass) => {
                    OpalConfig { phb_id: v.phb_id }.read(f.addr.bdf, reg, width)
                }
            };
            match value {
                Ok(x) => {
                    a.set_status(r::RTAS_SUCCESS);
                    a.set_ret(1, x);
                }
                Err(_) => a.set_status(r::RTAS_HARDWARE_ERROR),
            }
        }
        RtasCall::WritePciConfig => {
            let (Ok((v, i, reg)), Some(width)) =
                (pt.called_function(a, 5, 1..=1), vphb::width_of(arg(3)))
            else {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            };
            let f = &v.functions[i];
            let action = f.vf.lock().write(reg, width, arg(4));
            match action {
                Err(_) => a.set_status(r::RTAS_PARAMETER_ERROR),
                Ok(WriteAction::Absorb) => a.set_status(r::RTAS_SUCCESS),
                Ok(WriteAction::Refuse(why)) => {
                    warn_guest(why, u64::from(arg(0)));
                    a.set_status(r::RTAS_PARAMETER_ERROR)
                }
                Ok(WriteAction::MsiEnable(on)) => match msi_enable(v, f, on) {
                    Ok(()) => a.set_status(r::RTAS_SUCCESS),
                    Err(_) => a.set_status(r::RTAS_HARDWARE_ERROR),
                },
                Ok(WriteAction::Reset) => match flr(p, v, f, "guest FLR") {
                    true => a.set_status(r::RTAS_SUCCESS),
                    false => a.set_status(r::RTAS_HARDWARE_ERROR),
                },
                Ok(WriteAction::Pass(x)) => {
                    match (OpalConfig { phb_id: v.phb_id }).write(f.addr.bdf, reg, width, x) {
                        Ok(()) => a.set_status(r::RTAS_SUCCESS),
                        Err(_) => a.set_status(r::RTAS_HARDWARE_ERROR),
                    }
                }
            }
        }
        RtasCall::QueryPeDmaWindow => {
            let Ok((v, i, _)) = pt.called_function(a, 3, 5..=usize::MAX) else {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            };
            let open = v.functions[i].ddw_open.load(Ordering::Acquire);
            a.set_status(r::RTAS_SUCCESS);
            a.set_ret(1, u32::from(!open));
            // Largest block, in 4 KiB pages: the window covers all memory.
            a.set_ret(2, u32::try_from(v.ddw.size >> 12).unwrap_or(u32::MAX));
            a.set_ret(3, vphb::DDW_PAGE_SIZES);
            a.set_ret(4, 0);
            a.set_ret(5, 0);
        }
        RtasCall::CreatePeDmaWindow => {
            let Ok((v, i, _)) = pt.called_function(a, 5, 4..=4) else {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            };
            if !vphb::ddw_request_ok(arg(3), arg(4), p.mem_size) {
                warn_guest(
                    "ibm,create-pe-dma-window: page/window shift",
                    u64::from(arg(4)),
                );
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            }
            let f = &v.functions[i];
            if f.ddw_open.swap(true, Ordering::AcqRel) {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            }
            let window = (u64::from(f.pe) << 1) | 1;
            if let Err(e) = opal_pci::map_dma_bypass(v.phb_id, f.pe, window, v.ddw.base, v.ddw.size)
            {
                warn!("passthrough {}: 64-bit window: {e:?}", f.addr);
                f.ddw_open.store(false, Ordering::Release);
                return a.set_status(r::RTAS_HARDWARE_ERROR);
            }
            f.ddw_shift.store(arg(3), Ordering::Release);
            info!(
                "PAPRIKA passthrough-ddw: {} {} bus {:#x}+{:#x} (host {:#x})",
                p.name,
                f.addr,
                v.ddw.base,
                v.ddw.size,
                v.ddw.base & !vphb::BYPASS_BASE
            );
            a.set_status(r::RTAS_SUCCESS);
            a.set_ret(1, vphb::liobn(v.phb_id, i, 1));
            a.set_ret(2, (v.ddw.base >> 32) as u32);
            a.set_ret(3, v.ddw.base as u32);
        }
        RtasCall::RemovePeDmaWindow => {
            if a.nargs != 1 || a.nret != 1 {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            }
            let found = vphb::parse_liobn(arg(0)).and_then(|(phb, slot, w)| {
                let v = pt.vphbs.iter().find(|v| v.phb_id == phb)?;
                (w == 1).then_some(())?;
                Some((v, v.functions.get(slot)?))
            });
            match found {
                Some((v, f)) if f.ddw_open.load(Ordering::Acquire) => {
                    close_ddw(v, f);
                    a.set_status(r::RTAS_SUCCESS);
                }
                _ => a.set_status(r::RTAS_PARAMETER_ERROR),
            }
        }
        RtasCall::ResetPeDmaWindow => {
            let Ok((v, i, _)) = pt.called_function(a, 3, 1..=1) else {
                return a.set_status(r::RTAS_PARAMETER_ERROR);
            };
            close_ddw(v, &v.functions[i]);
            a.set_status(r::RTAS_SUCCESS);
        }
        RtasCall::SetEehOption
        | RtasCall::SetSlotReset
        | RtasCall::ReadSlotResetState2
        | RtasCall::GetConfigAddrInfo2
        | RtasCall::SlotErrorDetail
        | RtasCall::ConfigurePe => eeh(p, c, a),
        _ => a.set_status(r::RTAS_PARAMETER_ERROR),
    }
}

/// A function-level reset the guest asked for (`why`): BARs and memory
/// decoding put back, bus mastering off, the programmed vectors' host
/// messages back in the device ([`restore_msis`]); whether it worked.
fn flr(p: &super::lpar::Partition, v: &Vphb, f: &Passed, why: &str) -> bool {
    // Held across the reset, so that an ibm,change-msi cannot program the
    // device's vectors while the reset clears them.
    let kind = f.msi.kind.lock();
    let mut cfg = OpalConfig { phb_id: v.phb_id };
    let mut wait = || {
        let until = instr::mftb() + timer::us_to_ticks(100_000);
        while instr::mftb() < until {
            core::hint::spin_loop();
        }
    };
    match pci::reset_function(&mut cfg, f.addr.bdf, &mut wait) {
        Ok(how) => {
            let restored = restore_msis(v, f, *kind);
            info!(
                "PAPRIKA passthrough-reset: {} {} {:?} ({why}), {} vector(s) restored",
                p.name, f.addr, how, restored
            );
            true
        }
        Err(e) => {
            warn!("passthrough: {} {}: reset failed ({e:?})", p.name, f.addr);
            false
        }
    }
}

/// After a function reset the guest asked for, its vectors stay programmed
/// (a driver recovering from EEH restores its MSI-X state, which lands in the
/// trapped table's copy and never reaches the device): the device gets the
/// host messages back, masked as the reset left every entry, and the guest's
/// copy shows the same; the guest's unmask through the table then reaches the
/// device. Without this the device's entries stay at address 0, data 0, so
/// once unmasked and enabled its MSIs are DMA writes to bus address 0 and
/// never interrupts. MSI: address and data written again (Enable stays the
/// guest's). The host side (routes, PQ) is untouched. How many vectors.
fn restore_msis(v: &Vphb, f: &Passed, kind: u32) -> u32 {
    let m = &f.msi;
    let n = m.granted.load(Ordering::Acquire);
    if n == 0 {
        return 0;
    }
    if kind == vphb::MsiKind::MsiX as u32 {
        let messages: Vec<(u64, u32)> = m
            .host
            .iter()
            .take(n as usize)
            .map(|h| (h.address, h.data))
            .collect();
        // Under the copy's lock, so a guest unmask (`msix_access`) comes
        // after the masked entry, never before it.
        let mut shadow = m.shadow.lock();
        let entries = match shadow.as_mut() {
            Some(t) => t.reset_programmed(&messages),
            None => return 0,
        };
        let Some(table) = m.msix_table else { return 0 };
        for (i, e) in entries.iter().enumerate() {
            opal_pci::write_msix_entry(table + 16 * i as u64, *e);
        }
        entries.len() as u32
    } else if kind == vphb::MsiKind::Msi as u32 {
        match write_msi_message(v, f) {
            Ok(()) => 1,
            Err(e) => {
                warn!("passthrough {}: MSI message not restored ({e:?})", f.addr);
                0
            }
        }
    } else {
        0
    }
}

/// The EEH RTAS calls (PAPR 7.3.11) for a function: its PE's freeze state
/// comes from OPAL (`OPAL_PCI_EEH_FREEZE_STATUS`), thawing and resets go to
/// OPAL and the function. Each takes (config address, BUID hi, BUID lo, ...).
fn eeh(p: &super::lpar::Partition, c: RtasCall, a: &mut RtasArgs) {
    let arg = |i| a.arg(i).unwrap_or(0);
    let (nargs, nret_ok) = match c {
        RtasCall::SetEehOption | RtasCall::SetSlotReset | RtasCall::GetConfigAddrInfo2 => {
            (4, 1..=2)
        }
        RtasCall::ReadSlotResetState2 => (3, 4..=4),
        RtasCall::SlotErrorDetail => (8, 1..=1),
        _ => (3, 1..=1),
    };
    // The PE's config address: its register bits are ignored.
    let Ok((v, i, _)) = p.pci.called_function(a, nargs, nret_ok) else {
        return a.set_status(r::RTAS_PARAMETER_ERROR);
    };
    let f = &v.functions[i];
    match c {
        RtasCall::SetEehOption => match vphb::EehOption::from_arg(arg(3)) {
            Some(vphb::EehOption::Enable | vphb::EehOption::Disable) => {
                a.set_status(r::RTAS_SUCCESS)
            }
            Some(o) => {
                let dma = o == vphb::EehOption::ThawDma;
                match opal_pci::clear_freeze_of(v.phb_id, f.pe, dma) {
                    Ok(()) => a.set_status(r::RTAS_SUCCESS),
                    Err(_) => a.set_status(r::RTAS_HARDWARE_ERROR),
                }
            }
            None => a.set_status(r::RTAS_PARAMETER_ERROR),
        },
        RtasCall::SetSlotReset => match arg(3) {
            // Deactivate: the reset already completed when it was activated.
            0 => a.set_status(r::RTAS_SUCCESS),
            // Hot (1) or fundamental (3) reset: a function-level reset (the
            // guest enables mastering again itself).
            1 | 3 => match flr(p, v, f, "ibm,set-slot-reset") {
                true => a.set_status(r::RTAS_SUCCESS),
                false => a.set_status(r::RTAS_HARDWARE_ERROR),
            },
            _ => a.set_status(r::RTAS_PARAMETER_ERROR),
        },
        RtasCall::ReadSlotResetState2 => {
            let (state, known) = match opal_pci::freeze_status(v.phb_id, f.pe) {
                Ok(s) => (vphb::eeh_state(s), true),
                Err(_) => (5, false),
            };
            a.set_status(r::RTAS_SUCCESS);
            a.set_ret(1, state);
            // EEH supported; reason 0.
            a.set_ret(2, u32::from(known));
            a.set_ret(3, 0);
        }
        RtasCall::GetConfigAddrInfo2 => match arg(3) {
            // 0: the PE's config address (the function's own); 1: the PE exists.
            0 => {
                a.set_status(r::RTAS_SUCCESS);
                a.set_ret(1, vphb::config_addr(f.addr.bdf));
            }
            1 => {
                a.set_status(r::RTAS_SUCCESS);
                a.set_ret(1, 1);
            }
            _ => a.set_status(r::RTAS_PARAMETER_ERROR),
        },
        // No error log to give.
        RtasCall::SlotErrorDetail => a.set_status(r::RTAS_NO_ERRORS_FOUND),
        _ => a.set_status(r::RTAS_SUCCESS),
    }
}

/// Text for a refused partition.
pub fn describe(e: &DeviceError) -> String {
    alloc::format!("{e}")
}

/// The TCE hcalls on a pass-through LIOBN (`partition::vio::hcall` asks here
/// first); `None` when `liobn` is not one of this partition's functions.
///
/// The 32-bit window: the guest's TCEs are checked by the function's
/// [`TceTable`] (guest real pages inside the partition), then each changed
/// entry is written to the PHB's table as a host real page and the PE's TCE
/// cache is killed. The 64-bit window is a bypass, so only identity TCEs
/// (what Linux writes to map all its memory into a direct window) are
/// accepted, and change nothing.
pub fn tce_hcall(p: &super::lpar::Partition, op: u64, a: &[u64]) -> Option<HcallResult> {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let liobn = u32::try_from(arg(0)).ok()?;
    let (phb, slot, window) = vphb::parse_liobn(liobn)?;
    let v = p.pci.vphbs.iter().find(|v| v.phb_id == phb)?;
    let f = v.functions.get(slot)?;
    let (ioba, npages) = (arg(1), arg(3));
    let list = |n: u64| -> Result<([u64; tce::MAX_INDIRECT as usize], usize), HcallError> {
        tce::check_put_indirect(arg(2), n)?;
        let n = n as usize;
        let mut raw = [0u8; 4096];
        p.read_guest(arg(2), &mut raw[..n * 8])
            .ok_or(HcallError::Parameter)?;
        let mut tces = [0u64; tce::MAX_INDIRECT as usize];
        tce::decode_tce_list(&raw[..n * 8], &mut tces[..n]);
        Ok((tces, n))
    };
    if window == 1 {
        return Some(ddw_tce(v, f, op, ioba, arg(2), npages, &list));
    }
    let mut t = f.tce32.lock();
    let (result, first, count) = match op {
        tce::H_PUT_TCE => (t.h_put_tce(ioba, arg(2)).map(|()| [0; 4]), ioba, 1),
        tce::H_GET_TCE => return Some(t.h_get_tce(ioba).map(|x| [x, 0, 0, 0])),
        tce::H_STUFF_TCE => (
            t.h_stuff_tce(ioba, arg(2), npages).map(|()| [0; 4]),
            ioba,
            npages,
        ),
        tce::H_PUT_TCE_INDIRECT => match list(npages) {
            Ok((tces, n)) => (
                t.h_put_tce_list(ioba, &tces[..n]).map(|()| [0; 4]),
                ioba,
                n as u64,
            ),
            Err(e) => (Err(e), 0, 0),
        },
        _ => return None,
    };
    if result.is_ok() {
        let host_base = v.ddw.base & !vphb::BYPASS_BASE;
        let mut mapped = false;
        for k in 0..count {
            let io = first + (k << TCE32_SHIFT);
            let entry = t.h_get_tce(io).unwrap_or(0);
            mapped |= entry & (tce::TCE_READ | tce::TCE_WRITE) != 0;
            let hw = vphb::host_tce(entry, host_base);
            let at = f.tce_hw + ((io - t.bus_offset()) >> TCE32_SHIFT) * 8;
            crate::mm::radix::TableMemory::write(
                &mut crate::arch::ppc64::mmu::LinearTables,
                at,
                crate::be::Be64::new(hw),
            );
        }
        drop(t);
        instr::sync();
        if let Err(e) = opal_pci::tce_kill_pe(v.phb_id, f.pe) {
            crate::debug!("passthrough {}: TCE kill: {e:?}", f.addr);
        }
        // Which window a guest's driver uses (Linux with `disable_ddw`: this
        // one), once per reset.
        if mapped && !f.tce32_used.swap(true, Ordering::AcqRel) {
            info!(
                "PAPRIKA passthrough-tce32: {} {} first 32-bit TCE mapped (ioba {:#x}, hcall {:#x})",
                p.name, f.addr, first, op
            );
        }
    } else {
        drop(t);
        super::vcpu::rate_limited_warn(p, "pass-through TCE hcall refused (opcode)", op);
    }
    Some(result)
}

/// TCE hcalls on the 64-bit (bypass) window: identity entries only.
fn ddw_tce(
    v: &Vphb,
    f: &Passed,
    op: u64,
    ioba: u64,
    value: u64,
    npages: u64,
    list: &dyn Fn(u64) -> Result<([u64; tce::MAX_INDIRECT as usize], usize), HcallError>,
) -> HcallResult {
    if !f.ddw_open.load(Ordering::Acquire) {
        return Err(HcallError::Parameter);
    }
    let page = 1u64 << f.ddw_shift.load(Ordering::Acquire);
    let at = |k: u64| k.checked_mul(page).and_then(|o| ioba.checked_add(o));
    match op {
        tce::H_PUT_TCE => v
            .ddw
            .check_identity_tce(ioba, value, page)
            .then_some([0; 4])
            .ok_or(HcallError::Parameter),
        tce::H_GET_TCE => v
            .ddw
            .guest_addr(ioba, page)
            .filter(|_| ioba.is_multiple_of(page))
            .map(|g| [g | tce::TCE_READ | tce::TCE_WRITE, 0, 0, 0])
            .ok_or(HcallError::Parameter),
        tce::H_STUFF_TCE => {
            let ok = value & 3 == 0
                && npages > 0
                && at(npages - 1).is_some_and(|last| v.ddw.guest_addr(last, page).is_some());
            ok.then_some([0; 4]).ok_or(HcallError::Parameter)
        }
        tce::H_PUT_TCE_INDIRECT => {
            let (tces, n) = list(npages)?;
            let ok = tces[..n].iter().enumerate().all(|(k, &t)| {
                at(k as u64).is_some_and(|io| v.ddw.check_identity_tce(io, t, page))
            });
            ok.then_some([0; 4]).ok_or(HcallError::Parameter)
        }
        _ => Err(HcallError::Function),
    }
}
