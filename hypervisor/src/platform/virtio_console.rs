//! Bringing up the virtio console behind a PHB as the machine console's output
//! (docs/console.md).
//!
//! Two steps, because its registers must be in the hypervisor's page tables:
//! [`prepare`] runs before the MMU is built (OPAL config cycles only: BAR
//! placement in the PHB's 32-bit window, the bridge window, a PE for the device
//! with an untranslated DMA window over all of memory), [`start`] after it
//! (MMIO: the virtio bring-up).

use core::sync::atomic::{AtomicU64, Ordering};

use super::mmio::MmioRegion;
use super::opal::pci as opal_pci;
use crate::fdt::host::HostInfo;
use crate::mm::frame::PhysRange;
use crate::pci::{self, BarAllocator, ConfigSpace, PciError};
use crate::virtio::{self, Layout, VirtioConsole, VirtioError};
use crate::{info, warn};

/// PCI address bit 59 selects the PE's second DMA window, which is opened
/// untranslated (as Linux's powernv code does for 64-bit capable devices).
const DMA_BYPASS_BASE: u64 = 1 << 59;

/// Bus address offset of real memory for the device (set by [`prepare`]).
static DMA_OFFSET: AtomicU64 = AtomicU64::new(0);

const LINEAR_BASE: u64 = crate::mm::LINEAR_BASE;

/// A device placed and routed, waiting for its registers to be mapped.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    pub phb_id: u64,
    pub bdf: pci::Bdf,
    /// CPU real address and size of the BAR with the virtio structures.
    pub regs: PhysRange,
    pub layout: Layout,
}

/// Finds a virtio console under a PHB and sets it up for the hypervisor. `None`
/// (after a log line saying why, when one exists but cannot be used) means the
/// OPAL console stays the only output.
pub fn prepare(info: &HostInfo) -> Option<Prepared> {
    let f = info
        .pci_functions
        .iter()
        .find(|f| f.vendor == virtio::VENDOR && f.device == virtio::DEVICE_CONSOLE)?;
    match place(info, f) {
        Ok(p) => {
            info!(
                "virtio console at PHB {} {}: registers at {:#x}, PE {}",
                f.phb_id, f.bdf, p.regs.start, PE
            );
            Some(p)
        }
        Err(e) => {
            warn!(
                "virtio console at PHB {} {} unusable ({e:?}); console output stays on OPAL",
                f.phb_id, f.bdf
            );
            None
        }
    }
}

/// The PE the device is put in. skiboot leaves every function in the reserved PE
/// (the last); any other number will do for one device.
const PE: u32 = 0;

fn place(info: &HostInfo, f: &crate::fdt::host::PciFunction) -> Result<Prepared, VirtioError> {
    let m32 = f
        .m32
        .ok_or(VirtioError::Layout("PHB has no 32-bit MMIO window"))?;
    let mut cfg = opal_pci::OpalConfig { phb_id: f.phb_id };
    if cfg.read16(f.bdf, pci::VENDOR_ID)? != virtio::VENDOR {
        return Err(PciError::NoDevice.into());
    }
    let bars = pci::size_bars(&mut cfg, f.bdf)?;
    let sizes: heapless::Vec<(u8, u64), 6> = bars.iter().map(|b| (b.index, b.size)).collect();
    let layout = virtio::layout(&mut cfg, f.bdf, &sizes)?;
    let bar = bars
        .iter()
        .find(|b| b.index == layout.bar)
        .ok_or(VirtioError::Layout("capability names a missing BAR"))?;
    // Page-sized at least, so the mapping covers nothing else.
    let size = bar.size.max(crate::mm::frame::PAGE_SIZE);
    let pci_addr = BarAllocator::new(&m32).alloc(size)?;
    let cpu = m32.cpu_addr(pci_addr).ok_or(PciError::WindowFull)?;
    pci::set_bar(&mut cfg, f.bdf, bar, pci_addr)?;
    if let Some(bridge) = f.bridge {
        pci::open_bridge_window(&mut cfg, bridge, pci_addr, size)?;
    }

    opal_pci::set_pe(f.phb_id, PE, f.bdf)?;
    // The M32 window is split into one segment per PE; route ours.
    let pes = u64::from(f.num_pes);
    let segment = (pci_addr - m32.pci) / (m32.size.div_ceil(pes)).max(1);
    if let Err(e) = opal_pci::map_m32_segment(f.phb_id, PE, segment) {
        warn!("virtio console: M32 segment {segment} not routed to PE {PE} ({e:?})");
    }
    let top = info.memory.iter().map(|r| r.end).max().unwrap_or(0);
    // Whole 256 MiB units, as the PHB's DMA window registers count.
    let window = top.next_multiple_of(256 << 20);
    opal_pci::map_dma_bypass(
        f.phb_id,
        PE,
        (u64::from(PE) << 1) + 1,
        DMA_BYPASS_BASE,
        window,
    )?;
    let _ = opal_pci::clear_freeze(f.phb_id, PE);
    DMA_OFFSET.store(DMA_BYPASS_BASE, Ordering::Relaxed);

    let cmd = cfg.read16(f.bdf, pci::COMMAND)?;
    cfg.write16(
        f.bdf,
        pci::COMMAND,
        cmd | pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER,
    )?;
    crate::debug!(
        "virtio console: bridge {:?}, command {:#x}, BAR{} at PCI {:#x}",
        f.bridge,
        cfg.read16(f.bdf, pci::COMMAND)?,
        bar.index,
        pci_addr
    );
    Ok(Prepared {
        phb_id: f.phb_id,
        bdf: f.bdf,
        regs: PhysRange {
            start: cpu,
            end: cpu + size,
        },
        layout,
    })
}

/// Physical address of a hypervisor (linear-map) address.
fn to_phys(virt: usize) -> u64 {
    virt as u64 & !LINEAR_BASE
}

/// Brings the device up once its registers are mapped.
pub fn start(p: &Prepared) -> Result<VirtioConsole<MmioRegion>, VirtioError> {
    // SAFETY: `p.regs` is the device's BAR, which `prepare` placed and the MMU
    // plan maps caching-inhibited for the hypervisor's lifetime; only the console
    // drives it.
    let regs = unsafe {
        MmioRegion::new(
            (LINEAR_BASE | p.regs.start) as usize,
            (p.regs.end - p.regs.start) as usize,
        )
    };
    VirtioConsole::init(regs, p.layout, to_phys, DMA_OFFSET.load(Ordering::Relaxed))
}
