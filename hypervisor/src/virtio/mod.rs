//! virtio over PCI (virtio 1.x "modern" transport, 4.1) and the one device the
//! hypervisor drives itself: a virtio console used as a bulk sink for the machine
//! console (see docs/console.md).
//!
//! Why: the emulated machine's only console is an LPC UART that QEMU writes to
//! its host one byte at a time; a virtio console takes a 16 KiB buffer per
//! notify. The hypervisor uses it for output when QEMU is given one
//! (`-device virtio-serial-pci` + `-device virtconsole`); input stays on the
//! OPAL console.
//!
//! Portable: registers are reached through [`Regs`] (MMIO on the machine, a fake
//! in the tests) and config space through [`crate::pci::ConfigSpace`].

pub mod queue;

use crate::pci::{self, Bdf, ConfigSpace, PciError};
use queue::{ToPhys, TxQueue};

pub const VENDOR: u16 = 0x1af4;
/// Modern (non-transitional) virtio console: 0x1040 + device type 3.
pub const DEVICE_CONSOLE: u16 = 0x1043;

/// `cfg_type` of the virtio PCI capabilities.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;

/// Common configuration registers (4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    pub const DEVICE_FEATURE: usize = 0x04;
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    pub const DRIVER_FEATURE: usize = 0x0c;
    pub const NUM_QUEUES: usize = 0x12;
    pub const DEVICE_STATUS: usize = 0x14;
    pub const QUEUE_SELECT: usize = 0x16;
    pub const QUEUE_SIZE: usize = 0x18;
    pub const QUEUE_MSIX_VECTOR: usize = 0x1a;
    pub const QUEUE_ENABLE: usize = 0x1c;
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    pub const QUEUE_DESC: usize = 0x20;
    pub const QUEUE_DRIVER: usize = 0x28;
    pub const QUEUE_DEVICE: usize = 0x30;
    /// The bytes the driver needs.
    pub const LEN: u32 = 0x38;
}

/// Device status bits (2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const NEEDS_RESET: u8 = 0x40;
    pub const FAILED: u8 = 0x80;
}

/// VIRTIO_F_VERSION_1, bit 32: required.
const F_VERSION_1_HI: u32 = 1;
/// VIRTIO_F_ACCESS_PLATFORM, bit 33: the device's DMA goes through the
/// platform's IOMMU (the PHB's DMA windows). Accepted when offered; without it
/// the device uses physical addresses (QEMU's default).
const F_ACCESS_PLATFORM_HI: u32 = 2;
const NO_VECTOR: u16 = 0xffff;
/// The console's port 0 transmit queue (receiveq 0, transmitq 1; no multiport).
pub const CONSOLE_TX_QUEUE: u16 = 1;

/// Why the virtio console could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    Pci(PciError),
    /// A required capability is missing or outside the BAR.
    Layout(&'static str),
    /// The device did not clear its status after the reset.
    ResetTimeout,
    /// The device does not offer VIRTIO_F_VERSION_1 (a legacy device).
    NotModern,
    /// The device refused the features (FEATURES_OK did not stick).
    FeaturesRefused,
    /// The transmit queue does not exist or has size 0.
    NoQueue,
    /// The device asked for a reset or failed.
    DeviceError(u8),
}

impl From<PciError> for VirtioError {
    fn from(e: PciError) -> Self {
        VirtioError::Pci(e)
    }
}

/// Registers of the device, by offset in the BAR that holds its capabilities.
pub trait Regs {
    fn read8(&self, off: usize) -> u8;
    fn read16(&self, off: usize) -> u16;
    fn read32(&self, off: usize) -> u32;
    fn write8(&self, off: usize, v: u8);
    fn write16(&self, off: usize, v: u16);
    fn write32(&self, off: usize, v: u32);
}

/// Where the transport's structures are: all in one BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub bar: u8,
    pub common: usize,
    pub notify: usize,
    pub notify_len: usize,
    pub notify_multiplier: u32,
}

/// Reads the virtio capabilities of a function. The first of each kind counts
/// (4.1.4); the common and notify structures must share a BAR and fit in it.
pub fn layout(
    cfg: &mut dyn ConfigSpace,
    bdf: Bdf,
    bar_sizes: &[(u8, u64)],
) -> Result<Layout, VirtioError> {
    let mut common: Option<(u8, u32, u32)> = None;
    let mut notify: Option<(u8, u32, u32, u32)> = None;
    for (id, at) in pci::capabilities(cfg, bdf)? {
        if id != pci::CAP_VENDOR {
            continue;
        }
        let at = u16::from(at);
        let cfg_type = cfg.read8(bdf, at + 3)?;
        let bar = cfg.read8(bdf, at + 4)?;
        let offset = cfg.read32(bdf, at + 8)?;
        let length = cfg.read32(bdf, at + 12)?;
        match cfg_type {
            CAP_COMMON if common.is_none() => common = Some((bar, offset, length)),
            CAP_NOTIFY if notify.is_none() => {
                notify = Some((bar, offset, length, cfg.read32(bdf, at + 16)?))
            }
            _ => {}
        }
    }
    let (cbar, coff, clen) = common.ok_or(VirtioError::Layout("no common configuration"))?;
    let (nbar, noff, nlen, mult) = notify.ok_or(VirtioError::Layout("no notify structure"))?;
    if cbar != nbar {
        return Err(VirtioError::Layout("common and notify in different BARs"));
    }
    let size = bar_sizes
        .iter()
        .find(|(i, _)| *i == cbar)
        .map(|(_, s)| *s)
        .ok_or(VirtioError::Layout("capability names a missing BAR"))?;
    let fits = |off: u32, len: u32| u64::from(off) + u64::from(len) <= size;
    if clen < common::LEN || !fits(coff, clen) || nlen < 2 || !fits(noff, nlen) {
        return Err(VirtioError::Layout("structure outside its BAR"));
    }
    Ok(Layout {
        bar: cbar,
        common: coff as usize,
        notify: noff as usize,
        notify_len: nlen as usize,
        notify_multiplier: mult,
    })
}

/// A virtio console that is only written to.
pub struct VirtioConsole<R: Regs> {
    regs: R,
    layout: Layout,
    tx: TxQueue,
    notify_at: usize,
}

impl<R: Regs> VirtioConsole<R> {
    /// Resets and initialises the device (3.1.1) with VERSION_1 (and
    /// ACCESS_PLATFORM when offered: then bus addresses are physical plus
    /// `dma_offset`) and the transmit queue of port 0.
    pub fn init(
        regs: R,
        layout: Layout,
        to_phys: ToPhys,
        dma_offset: u64,
    ) -> Result<Self, VirtioError> {
        let c = layout.common;
        let set_status = |s: u8| regs.write8(c + common::DEVICE_STATUS, s);
        set_status(0);
        let mut spins = 0u32;
        while regs.read8(c + common::DEVICE_STATUS) != 0 {
            spins += 1;
            if spins > 1_000_000 {
                return Err(VirtioError::ResetTimeout);
            }
            core::hint::spin_loop();
        }
        let mut st = status::ACKNOWLEDGE;
        set_status(st);
        st |= status::DRIVER;
        set_status(st);

        regs.write32(c + common::DEVICE_FEATURE_SELECT, 1);
        let offered = regs.read32(c + common::DEVICE_FEATURE);
        if offered & F_VERSION_1_HI == 0 {
            set_status(st | status::FAILED);
            return Err(VirtioError::NotModern);
        }
        let accepted = offered & (F_VERSION_1_HI | F_ACCESS_PLATFORM_HI);
        let bus_offset = if accepted & F_ACCESS_PLATFORM_HI != 0 {
            dma_offset
        } else {
            0
        };
        regs.write32(c + common::DRIVER_FEATURE_SELECT, 0);
        regs.write32(c + common::DRIVER_FEATURE, 0);
        regs.write32(c + common::DRIVER_FEATURE_SELECT, 1);
        regs.write32(c + common::DRIVER_FEATURE, accepted);
        st |= status::FEATURES_OK;
        set_status(st);
        if regs.read8(c + common::DEVICE_STATUS) & status::FEATURES_OK == 0 {
            set_status(st | status::FAILED);
            return Err(VirtioError::FeaturesRefused);
        }

        if regs.read16(c + common::NUM_QUEUES) <= CONSOLE_TX_QUEUE {
            set_status(st | status::FAILED);
            return Err(VirtioError::NoQueue);
        }
        regs.write16(c + common::QUEUE_SELECT, CONSOLE_TX_QUEUE);
        let max = regs.read16(c + common::QUEUE_SIZE);
        if max == 0 {
            set_status(st | status::FAILED);
            return Err(VirtioError::NoQueue);
        }
        // The largest power of two both sides accept.
        let want = max.min(queue::QUEUE_SIZE as u16);
        let size = 1u16 << (15 - want.leading_zeros());
        let tx = TxQueue::new(size, to_phys, bus_offset);
        let a = tx.addrs();
        regs.write16(c + common::QUEUE_SIZE, size);
        regs.write16(c + common::QUEUE_MSIX_VECTOR, NO_VECTOR);
        for (off, v) in [
            (common::QUEUE_DESC, a.desc),
            (common::QUEUE_DRIVER, a.driver),
            (common::QUEUE_DEVICE, a.device),
        ] {
            regs.write32(c + off, v as u32);
            regs.write32(c + off + 4, (v >> 32) as u32);
        }
        regs.write16(c + common::QUEUE_ENABLE, 1);
        let notify_off = usize::from(regs.read16(c + common::QUEUE_NOTIFY_OFF));
        let notify_at = notify_off * layout.notify_multiplier as usize;
        if notify_at + 2 > layout.notify_len {
            set_status(st | status::FAILED);
            return Err(VirtioError::Layout(
                "queue notify address outside the notify structure",
            ));
        }
        set_status(st | status::DRIVER_OK);
        Ok(VirtioConsole {
            notify_at: layout.notify + notify_at,
            regs,
            layout,
            tx,
        })
    }

    /// Sends up to one buffer of `data`; returns the bytes taken (0 when every
    /// buffer is still with the device: call again after [`Self::reclaim`]).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = self.tx.push(data);
        if n > 0 {
            self.regs.write16(self.notify_at, CONSOLE_TX_QUEUE);
        }
        n
    }

    /// Takes back buffers the device has sent.
    pub fn reclaim(&mut self) -> usize {
        self.tx.reclaim()
    }

    pub fn in_flight(&self) -> u16 {
        self.tx.in_flight()
    }

    /// The device status when it reports trouble (NEEDS_RESET or FAILED).
    pub fn check(&self) -> Result<(), VirtioError> {
        let s = self.regs.read8(self.layout.common + common::DEVICE_STATUS);
        if s & (status::NEEDS_RESET | status::FAILED) != 0 || s & status::DRIVER_OK == 0 {
            return Err(VirtioError::DeviceError(s));
        }
        Ok(())
    }

    /// Writes all of `data`, reclaiming buffers while the device is behind;
    /// `wait` is called between attempts and gives up by returning false.
    /// Returns the bytes written.
    pub fn write_all(&mut self, mut data: &[u8], wait: &mut dyn FnMut() -> bool) -> usize {
        let mut done = 0;
        while !data.is_empty() {
            let n = self.write(data);
            if n == 0 {
                if self.reclaim() == 0 && !wait() {
                    break;
                }
                continue;
            }
            done += n;
            data = &data[n..];
        }
        done
    }

    /// Resets the device (it stops using the rings), e.g. before the machine
    /// powers off or the sink is abandoned.
    pub fn reset(&self) {
        self.regs
            .write8(self.layout.common + common::DEVICE_STATUS, 0);
    }

    #[cfg(test)]
    pub fn queue(&self) -> &TxQueue {
        &self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::queue::fake::FakeTxDevice;
    use super::*;
    use crate::pci::fake::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    const BAR_SIZE: u64 = 0x4000;
    const COMMON_AT: usize = 0x0;
    const NOTIFY_AT: usize = 0x3000;
    const MULT: u32 = 4;

    /// QEMU's virtio-pci common configuration and notify area, enough for the
    /// console's bring-up.
    #[derive(Default)]
    struct FakeRegs {
        space: RefCell<Vec<u8>>,
        features_hi: u32,
        queue_max: u16,
        refuse_features: bool,
        notifies: RefCell<Vec<u16>>,
        status_log: RefCell<Vec<u8>>,
    }

    impl FakeRegs {
        fn new() -> Self {
            FakeRegs {
                space: RefCell::new(std::vec![0; BAR_SIZE as usize]),
                features_hi: 1,
                queue_max: 128,
                ..Default::default()
            }
        }
        fn get(&self, off: usize, n: usize) -> u64 {
            let s = self.space.borrow();
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&s[off..off + n]);
            u64::from_le_bytes(b)
        }
        fn put(&self, off: usize, n: usize, v: u64) {
            self.space.borrow_mut()[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
    }

    impl Regs for FakeRegs {
        fn read8(&self, off: usize) -> u8 {
            self.get(off, 1) as u8
        }
        fn read16(&self, off: usize) -> u16 {
            let c = COMMON_AT;
            if off == c + common::QUEUE_SIZE && self.get(c + common::QUEUE_ENABLE, 2) == 0 {
                let cur = self.get(off, 2) as u16;
                return if cur == 0 { self.queue_max } else { cur };
            }
            if off == c + common::NUM_QUEUES {
                return 2;
            }
            if off == c + common::QUEUE_NOTIFY_OFF {
                return self.get(c + common::QUEUE_SELECT, 2) as u16;
            }
            self.get(off, 2) as u16
        }
        fn read32(&self, off: usize) -> u32 {
            if off == COMMON_AT + common::DEVICE_FEATURE {
                return if self.get(COMMON_AT + common::DEVICE_FEATURE_SELECT, 4) == 1 {
                    self.features_hi
                } else {
                    0
                };
            }
            self.get(off, 4) as u32
        }
        fn write8(&self, off: usize, v: u8) {
            if off == COMMON_AT + common::DEVICE_STATUS {
                self.status_log.borrow_mut().push(v);
                let v = if self.refuse_features {
                    v & !status::FEATURES_OK
                } else {
                    v
                };
                if v == 0 {
                    self.space.borrow_mut()[..common::LEN as usize].fill(0);
                }
                self.put(off, 1, u64::from(v));
                return;
            }
            self.put(off, 1, u64::from(v));
        }
        fn write16(&self, off: usize, v: u16) {
            if off >= NOTIFY_AT {
                self.notifies.borrow_mut().push(v);
                return;
            }
            self.put(off, 2, u64::from(v));
        }
        fn write32(&self, off: usize, v: u32) {
            self.put(off, 4, u64::from(v));
        }
    }

    fn identity(a: usize) -> u64 {
        a as u64
    }

    fn fake_layout() -> Layout {
        Layout {
            bar: 4,
            common: COMMON_AT,
            notify: NOTIFY_AT,
            notify_len: 0x1000,
            notify_multiplier: MULT,
        }
    }

    /// A config space with QEMU's capability layout for virtio-serial-pci.
    fn qemu_like_function() -> FakeFunction {
        let mut f = FakeFunction::new(VENDOR, DEVICE_CONSOLE);
        f.bar32(1, 0x1000);
        f.bar64(4, BAR_SIZE);
        let cap = |ty: u8, bar: u8, off: u32, len: u32, extra: Option<u32>| {
            let mut b = std::vec![if extra.is_some() { 20 } else { 16 }, ty, bar, 0, 0, 0];
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            if let Some(e) = extra {
                b.extend_from_slice(&e.to_le_bytes());
            }
            b
        };
        f.add_cap(0x40, 0x11, &[]); // MSI-X, ignored
        f.add_cap(0x50, pci::CAP_VENDOR, &cap(5, 0, 0, 4, None)); // PCI cfg access
        f.add_cap(
            0x64,
            pci::CAP_VENDOR,
            &cap(CAP_NOTIFY, 4, NOTIFY_AT as u32, 0x1000, Some(MULT)),
        );
        f.add_cap(0x7c, pci::CAP_VENDOR, &cap(4, 4, 0x2000, 0x1000, None)); // device cfg
        f.add_cap(0x8c, pci::CAP_VENDOR, &cap(3, 4, 0x1000, 0x1000, None)); // ISR
        f.add_cap(0x9c, pci::CAP_VENDOR, &cap(CAP_COMMON, 4, 0, 0x1000, None));
        f
    }

    #[test]
    fn layout_from_qemu_like_capabilities() {
        let mut cfg = FakeConfig::default();
        let bdf = Bdf::new(1, 0, 0);
        cfg.functions.insert(bdf, qemu_like_function());
        let l = layout(&mut cfg, bdf, &[(1, 0x1000), (4, BAR_SIZE)]).unwrap();
        assert_eq!(l, fake_layout());
        // The capability names a BAR that is not there.
        assert_eq!(
            layout(&mut cfg, bdf, &[(1, 0x1000)]),
            Err(VirtioError::Layout("capability names a missing BAR"))
        );
        // A BAR too small for the structures it should hold.
        assert_eq!(
            layout(&mut cfg, bdf, &[(4, 0x2000)]),
            Err(VirtioError::Layout("structure outside its BAR"))
        );
    }

    #[test]
    fn bring_up_follows_the_spec_order_and_programs_the_queue() {
        let regs = FakeRegs::new();
        let con = VirtioConsole::init(regs, fake_layout(), identity, 0).unwrap();
        let r = &con.regs;
        use status::*;
        assert_eq!(
            *r.status_log.borrow(),
            std::vec![
                0,
                ACKNOWLEDGE,
                ACKNOWLEDGE | DRIVER,
                ACKNOWLEDGE | DRIVER | FEATURES_OK,
                ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
            ]
        );
        assert_eq!(
            r.get(COMMON_AT + common::DRIVER_FEATURE, 4),
            1,
            "VERSION_1 only"
        );
        assert_eq!(r.get(COMMON_AT + common::QUEUE_SELECT, 2), 1);
        assert_eq!(
            r.get(COMMON_AT + common::QUEUE_SIZE, 2),
            queue::QUEUE_SIZE as u64
        );
        assert_eq!(r.get(COMMON_AT + common::QUEUE_ENABLE, 2), 1);
        let a = con.queue().addrs();
        assert_eq!(r.get(COMMON_AT + common::QUEUE_DESC, 8), a.desc);
        assert_eq!(r.get(COMMON_AT + common::QUEUE_DRIVER, 8), a.driver);
        assert_eq!(r.get(COMMON_AT + common::QUEUE_DEVICE, 8), a.device);
        assert!(con.check().is_ok());
    }

    #[test]
    fn writes_reach_the_device_with_one_notify_per_buffer() {
        let mut con = VirtioConsole::init(FakeRegs::new(), fake_layout(), identity, 0).unwrap();
        let mut dev = FakeTxDevice::default();
        let text: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut waits = 0;
        let n = con.write_all(&text, &mut || {
            waits += 1;
            true
        });
        // The buffers hold 20,000 bytes without waiting, one notify per buffer.
        assert_eq!(n, text.len());
        assert_eq!(waits, 0);
        assert_eq!(
            con.regs.notifies.borrow().len(),
            text.len().div_ceil(queue::SLOT)
        );
        assert!(con
            .regs
            .notifies
            .borrow()
            .iter()
            .all(|&q| q == CONSOLE_TX_QUEUE));
        dev.consume(con.queue(), queue::QUEUE_SIZE, false);
        assert_eq!(dev.received, text);
    }

    #[test]
    fn a_stuck_device_makes_write_all_give_up_through_wait() {
        let mut con = VirtioConsole::init(FakeRegs::new(), fake_layout(), identity, 0).unwrap();
        let big = std::vec![b'x'; (queue::QUEUE_SIZE + 1) * queue::SLOT];
        let mut waits = 0;
        let n = con.write_all(&big, &mut || {
            waits += 1;
            waits < 10
        });
        assert_eq!(n, queue::QUEUE_SIZE * queue::SLOT);
        assert_eq!(waits, 10);
    }

    #[test]
    fn access_platform_is_accepted_when_offered_and_moves_bus_addresses() {
        let mut regs = FakeRegs::new();
        regs.features_hi = F_VERSION_1_HI | F_ACCESS_PLATFORM_HI;
        let con = VirtioConsole::init(regs, fake_layout(), identity, 1 << 59).unwrap();
        assert_eq!(con.regs.get(COMMON_AT + common::DRIVER_FEATURE, 4), 3);
        let a = con.queue().addrs();
        assert_eq!(con.regs.get(COMMON_AT + common::QUEUE_DESC, 8), a.desc);
        assert_eq!(a.desc >> 59, 1, "through the DMA window");
        // Without it the device reaches memory directly: physical addresses.
        let con = VirtioConsole::init(FakeRegs::new(), fake_layout(), identity, 1 << 59).unwrap();
        assert_eq!(con.queue().addrs().desc >> 59, 0);
    }

    #[test]
    fn legacy_or_refusing_devices_are_rejected() {
        let mut regs = FakeRegs::new();
        regs.features_hi = 0;
        assert_eq!(
            VirtioConsole::init(regs, fake_layout(), identity, 0).err(),
            Some(VirtioError::NotModern)
        );
        let mut regs = FakeRegs::new();
        regs.refuse_features = true;
        assert_eq!(
            VirtioConsole::init(regs, fake_layout(), identity, 0).err(),
            Some(VirtioError::FeaturesRefused)
        );
        let mut regs = FakeRegs::new();
        regs.queue_max = 0;
        assert_eq!(
            VirtioConsole::init(regs, fake_layout(), identity, 0).err(),
            Some(VirtioError::NoQueue)
        );
        let mut regs = FakeRegs::new();
        regs.queue_max = 6;
        let con = VirtioConsole::init(regs, fake_layout(), identity, 0).unwrap();
        assert_eq!(
            con.queue().size(),
            4,
            "largest power of two the device allows"
        );
    }
}
