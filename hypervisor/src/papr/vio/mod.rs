//! The VIO bus a partition sees under `/vdevice` (LoPAR 16 "Virtual I/O";
//! QEMU `hw/ppc/spapr_vio.c`): its devices, their unit addresses, interrupt
//! sources, DMA windows and H_VIO_SIGNAL.
//!
//! Numbering, as QEMU's pseries:
//! - unit addresses (`reg`) from [`VIO_REG_BASE`] 0x71000000 up, in the order
//!   devices are added (the vty first, so it keeps QEMU's 0x71000000);
//! - one interrupt source per device, LISN [`VIO_LISN_BASE`] + index (the vty's is
//!   0x1000), above the IPIs, in both the XIVE and the XICS model;
//! - a device with DMA gets one TCE window ([`tce::TceTable`]) of
//!   [`VIO_DMA_WINDOW`] (256 MiB) at bus address 0 in 4K pages, its LIOBN equal
//!   to its unit address (`SPAPR_VIO_LIOBN(reg) = reg`). ibmveth descriptors hold
//!   32-bit IOBAs, so VIO windows stay below 4 GiB.
//!
//! The device interface: a device is described by a [`VioDeviceSpec`] (device
//! tree name, type, compatible, whether it has a window, its H_VIO_SIGNAL mask,
//! extra properties); the [`VioBus`] gives it a unit address and LISN, keeps its
//! signal state, and writes its node ([`VioBus::dt_nodes`]). The partition
//! binding (`partition::vio`) owns the TCE tables and the device models' state,
//! and delivers interrupts only while the device's signal state enables them
//! ([`VioBus::irq_enabled`]).
//!
//! Models: [`tce`] (DMA windows and the TCE hcalls), [`vty`] (the console),
//! [`llan`] (ibmveth adapters and the virtual switch).
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::papr::hcall::HcallError;

pub mod llan;
pub mod tce;
pub mod vty;

/// Unit address of the first VIO device (QEMU `SPAPR_VIO_REG_BASE`).
pub const VIO_REG_BASE: u32 = 0x7100_0000;
/// Interrupt source of the first VIO device (the vty's, 0x1000 as before).
pub const VIO_LISN_BASE: u32 = 0x1000;
/// At most this many VIO devices per partition (LISNs 0x1000..0x1100).
pub const MAX_VIO_DEVICES: usize = 256;
/// A VIO device's DMA window: 256 MiB at bus address 0 (QEMU's l-lan, v-scsi).
pub const VIO_DMA_WINDOW: u64 = 256 << 20;
/// VIO TCE pages are 4K (Linux `of_parse_dma_window` for vio: page shift 12).
pub const VIO_PAGE_SHIFT: u32 = 12;
/// H_VIO_SIGNAL mode bit 0: the device may raise its interrupt.
pub const SIGNAL_IRQ: u64 = 1;
/// H_VIO_SIGNAL (LoPAR 14.5.5.2.1).
pub const H_VIO_SIGNAL: u64 = 0x104;

/// What kind of VIO device (its node name, `device_type`, `compatible`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VioKind {
    /// hvterm1 console (`vty@`, "serial").
    Vty,
    /// Interpartition logical LAN (`l-lan@`, "network", "IBM,l-lan").
    Llan,
    /// Virtual SCSI client adapter (`v-scsi@`, "vscsi", "IBM,v-scsi").
    Vscsi,
}

impl VioKind {
    pub const fn dt_name(self) -> &'static str {
        match self {
            VioKind::Vty => "vty",
            VioKind::Llan => "l-lan",
            VioKind::Vscsi => "v-scsi",
        }
    }

    pub const fn device_type(self) -> &'static str {
        match self {
            VioKind::Vty => "serial",
            VioKind::Llan => "network",
            VioKind::Vscsi => "vscsi",
        }
    }

    pub const fn compatible(self) -> &'static str {
        match self {
            VioKind::Vty => "hvterm1",
            VioKind::Llan => "IBM,l-lan",
            VioKind::Vscsi => "IBM,v-scsi",
        }
    }
}

/// A device as it asks to be put on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VioDeviceSpec {
    pub kind: VioKind,
    /// DMA window size in bytes (`None`: the device does no DMA, as the vty).
    pub dma_window: Option<u64>,
    /// H_VIO_SIGNAL mode bits the device accepts (others are H_PARAMETER).
    pub signal_mask: u64,
    /// Signal state at creation and after reboot.
    pub signal_reset: u64,
    /// Device-specific properties written after the generic ones.
    pub props: Vec<(&'static str, Vec<u8>)>,
}

/// A device on the bus.
#[derive(Debug)]
pub struct VioDevice {
    pub spec: VioDeviceSpec,
    /// Unit address (`reg`), also its LIOBN when it has a window.
    pub reg: u32,
    /// Interrupt source number (XIVE LISN and XICS source).
    pub lisn: u32,
    signal: AtomicU64,
}

impl VioDevice {
    /// LIOBN of its DMA window, if it has one.
    pub fn liobn(&self) -> Option<u32> {
        self.spec.dma_window.map(|_| self.reg)
    }

    pub fn signal_state(&self) -> u64 {
        self.signal.load(Ordering::Acquire)
    }
}

/// Why a device could not be added (a configuration bug: the manifest checks
/// ask for fewer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VioError {
    TooManyDevices,
    /// A window larger than 4 GiB (VIO descriptors carry 32-bit IOBAs).
    WindowTooBig,
}

/// A device node for the guest device tree (see `papr::guest_fdt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VioDtNode<'a> {
    /// `<dt_name>@<reg hex>`.
    pub name: String,
    pub reg: u32,
    pub device_type: &'static str,
    pub compatible: &'static str,
    /// `interrupts = <lisn 0>` (edge).
    pub lisn: u32,
    /// `ibm,my-dma-window = <liobn 0 0 0 size>` (two address and size cells).
    pub dma_window: Option<(u32, u64)>,
    pub props: &'a [(&'static str, Vec<u8>)],
}

/// One partition's VIO bus.
#[derive(Debug, Default)]
pub struct VioBus {
    devices: Vec<VioDevice>,
}

impl VioBus {
    pub fn new() -> VioBus {
        VioBus::default()
    }

    /// Adds a device; returns its index (its unit address is
    /// `VIO_REG_BASE + index`).
    pub fn add(&mut self, spec: VioDeviceSpec) -> Result<usize, VioError> {
        let i = self.devices.len();
        if i >= MAX_VIO_DEVICES {
            return Err(VioError::TooManyDevices);
        }
        if spec.dma_window.is_some_and(|w| w > 1 << 32) {
            return Err(VioError::WindowTooBig);
        }
        let signal = AtomicU64::new(spec.signal_reset);
        self.devices.push(VioDevice {
            spec,
            reg: VIO_REG_BASE + i as u32,
            lisn: VIO_LISN_BASE + i as u32,
            signal,
        });
        Ok(i)
    }

    pub fn devices(&self) -> &[VioDevice] {
        &self.devices
    }

    pub fn get(&self, index: usize) -> Option<&VioDevice> {
        self.devices.get(index)
    }

    /// Index of the device with unit address `unit` (a guest-supplied value).
    pub fn index_of(&self, unit: u64) -> Option<usize> {
        let i = unit.checked_sub(u64::from(VIO_REG_BASE))?;
        (i < self.devices.len() as u64).then_some(i as usize)
    }

    /// Index of the device whose window has LIOBN `liobn` (guest-supplied).
    pub fn index_of_liobn(&self, liobn: u64) -> Option<usize> {
        self.index_of(liobn)
            .filter(|&i| self.devices[i].spec.dma_window.is_some())
    }

    /// Every device's interrupt source, for the XIVE and XICS models (all edge).
    pub fn lisns(&self) -> impl Iterator<Item = u32> + '_ {
        self.devices.iter().map(|d| d.lisn)
    }

    /// H_VIO_SIGNAL(unit, mode): unknown unit or a mode bit the device does not
    /// have is H_PARAMETER (QEMU `h_vio_signal`).
    pub fn h_vio_signal(&self, unit: u64, mode: u64) -> Result<(), HcallError> {
        let d = self
            .index_of(unit)
            .and_then(|i| self.devices.get(i))
            .ok_or(HcallError::Parameter)?;
        if mode & !d.spec.signal_mask != 0 {
            return Err(HcallError::Parameter);
        }
        d.signal.store(mode, Ordering::Release);
        Ok(())
    }

    /// Whether device `index` may raise its interrupt now.
    pub fn irq_enabled(&self, index: usize) -> bool {
        self.devices
            .get(index)
            .is_some_and(|d| d.signal_state() & SIGNAL_IRQ != 0)
    }

    /// Partition reboot: every signal state back to its reset value.
    pub fn reset(&self) {
        for d in &self.devices {
            d.signal.store(d.spec.signal_reset, Ordering::Release);
        }
    }

    /// The device nodes under `/vdevice`, sorted by unit address.
    pub fn dt_nodes(&self) -> Vec<VioDtNode<'_>> {
        self.devices
            .iter()
            .map(|d| VioDtNode {
                name: alloc::format!("{}@{:x}", d.spec.kind.dt_name(), d.reg),
                reg: d.reg,
                device_type: d.spec.kind.device_type(),
                compatible: d.spec.kind.compatible(),
                lisn: d.lisn,
                dma_window: d.spec.dma_window.map(|w| (d.reg, w)),
                props: &d.spec.props,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llan() -> VioDeviceSpec {
        VioDeviceSpec {
            kind: VioKind::Llan,
            dma_window: Some(VIO_DMA_WINDOW),
            signal_mask: SIGNAL_IRQ,
            signal_reset: 0,
            props: Vec::new(),
        }
    }

    #[test]
    fn numbering() {
        let mut b = VioBus::new();
        assert_eq!(b.add(vty::spec()), Ok(0));
        assert_eq!(b.add(llan()), Ok(1));
        let d = b.get(1).unwrap();
        assert_eq!(
            (d.reg, d.lisn, d.liobn()),
            (0x7100_0001, 0x1001, Some(0x7100_0001))
        );
        assert_eq!(b.get(0).unwrap().liobn(), None);
        assert_eq!(b.index_of(0x7100_0001), Some(1));
        assert_eq!(b.index_of(0x7100_0002), None);
        assert_eq!(b.index_of(0x7000_0000), None);
        assert_eq!(b.index_of(u64::MAX), None);
        assert_eq!(b.index_of_liobn(0x7100_0000), None);
        assert_eq!(b.index_of_liobn(0x7100_0001), Some(1));
        assert_eq!(b.lisns().collect::<Vec<_>>(), [0x1000, 0x1001]);
        let mut big = llan();
        big.dma_window = Some(8 << 30);
        assert_eq!(b.add(big), Err(VioError::WindowTooBig));
        for _ in 2..MAX_VIO_DEVICES {
            b.add(llan()).unwrap();
        }
        assert_eq!(b.add(llan()), Err(VioError::TooManyDevices));
    }

    #[test]
    fn vio_signal() {
        let mut b = VioBus::new();
        b.add(vty::spec()).unwrap();
        b.add(llan()).unwrap();
        // The vty starts enabled (QEMU's vty pulses whatever the state); the
        // l-lan waits for the driver.
        assert!(b.irq_enabled(0));
        assert!(!b.irq_enabled(1));
        assert_eq!(b.h_vio_signal(0x7100_0001, 1), Ok(()));
        assert!(b.irq_enabled(1));
        assert_eq!(b.h_vio_signal(0x7100_0001, 2), Err(HcallError::Parameter));
        assert!(b.irq_enabled(1));
        assert_eq!(b.h_vio_signal(0x7100_0002, 1), Err(HcallError::Parameter));
        assert_eq!(b.h_vio_signal(0x7100_0000, 0), Ok(()));
        assert!(!b.irq_enabled(0));
        assert!(!b.irq_enabled(7));
        b.reset();
        assert!(b.irq_enabled(0));
        assert!(!b.irq_enabled(1));
    }

    #[test]
    fn dt_nodes() {
        let mut b = VioBus::new();
        b.add(vty::spec()).unwrap();
        let mut l = llan();
        l.props
            .push(("ibm,mac-address-filters", alloc::vec![0, 0, 0, 0]));
        b.add(l).unwrap();
        let n = b.dt_nodes();
        assert_eq!(n[0].name, "vty@71000000");
        assert_eq!(n[0].dma_window, None);
        assert_eq!(n[1].name, "l-lan@71000001");
        assert_eq!(n[1].device_type, "network");
        assert_eq!(n[1].compatible, "IBM,l-lan");
        assert_eq!(n[1].dma_window, Some((0x7100_0001, 256 << 20)));
        assert_eq!(n[1].props.len(), 1);
    }
}
