//! PCI configuration space: what the hypervisor needs to bring up one of its own
//! devices behind a PHB (today the virtio console, see [`crate::virtio`]).
//!
//! Portable: config space is reached through [`ConfigSpace`], which OPAL
//! implements on the machine (`platform::opal::pci`) and a fake implements in the
//! tests. skiboot has already trained links and numbered buses; memory BARs and
//! bridge windows are left for the OS (Linux assigns them on PowerNV), so this
//! module sizes BARs, places them in the PHB's 32-bit MMIO window and opens the
//! bridge windows on the way.

use heapless::Vec;

/// Bus, device and function: the PCI requester ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf(pub u16);

impl Bdf {
    pub const fn new(bus: u8, dev: u8, func: u8) -> Self {
        Bdf(((bus as u16) << 8) | (((dev & 0x1f) as u16) << 3) | (func & 7) as u16)
    }
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }
    pub const fn dev(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }
    pub const fn func(self) -> u8 {
        (self.0 & 7) as u8
    }
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus(), self.dev(), self.func())
    }
}

/// A function as Linux names it, `DDDD:BB:DD.F`: the domain is the PHB's
/// `ibm,opal-phbid` (skiboot numbers PHBs so; Linux on PowerNV uses it as the
/// PCI domain), then bus, device and function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bdf: Bdf,
}

impl PciAddress {
    /// Parses `DDDD:BB:DD.F` (hex; the domain 1 to 8 digits, bus 2, device 2
    /// below 0x20, function one digit below 8).
    pub fn parse(text: &str) -> Option<Self> {
        let (domain, rest) = text.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let hex = |s: &str, min: usize, max: usize| {
            (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(s, 16).ok())
                .flatten()
        };
        let domain = hex(domain, 1, 8)?;
        let bus = hex(bus, 2, 2)?;
        let dev = hex(dev, 2, 2).filter(|&d| d < 0x20)?;
        let func = hex(func, 1, 1).filter(|&f| f < 8)?;
        Some(PciAddress {
            domain,
            bdf: Bdf::new(bus as u8, dev as u8, func as u8),
        })
    }
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04x}:{}", self.domain, self.bdf)
    }
}

/// Why a PCI step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// The firmware refused a config access (its return code).
    Config(i64),
    /// Nothing answers at this address (vendor ID all ones).
    NoDevice,
    /// The capability list loops or points outside the header.
    BadCapabilities,
    /// A BAR reports an impossible size.
    BadBar(u8),
    /// The PHB's window has no room left for a BAR.
    WindowFull,
    /// The firmware refused a PHB setting (call name, return code).
    Phb(&'static str, i64),
}

/// Access width of a config cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    Byte,
    Half,
    Word,
}

/// Config-space access for one PHB.
pub trait ConfigSpace {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, PciError>;
    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), PciError>;

    fn read32(&mut self, bdf: Bdf, offset: u16) -> Result<u32, PciError> {
        self.read(bdf, offset, Width::Word)
    }
    fn read16(&mut self, bdf: Bdf, offset: u16) -> Result<u16, PciError> {
        self.read(bdf, offset, Width::Half).map(|v| v as u16)
    }
    fn read8(&mut self, bdf: Bdf, offset: u16) -> Result<u8, PciError> {
        self.read(bdf, offset, Width::Byte).map(|v| v as u8)
    }
    fn write32(&mut self, bdf: Bdf, offset: u16, v: u32) -> Result<(), PciError> {
        self.write(bdf, offset, Width::Word, v)
    }
    fn write16(&mut self, bdf: Bdf, offset: u16, v: u16) -> Result<(), PciError> {
        self.write(bdf, offset, Width::Half, u32::from(v))
    }
}

pub const VENDOR_ID: u16 = 0x00;
pub const DEVICE_ID: u16 = 0x02;
pub const COMMAND: u16 = 0x04;
pub const STATUS: u16 = 0x06;
pub const HEADER_TYPE: u16 = 0x0e;
pub const BAR0: u16 = 0x10;
pub const CAP_PTR: u16 = 0x34;
/// Type 1 (bridge) header: memory base / limit (bits 31:20 of the window).
pub const BRIDGE_MEM_BASE: u16 = 0x20;
pub const BRIDGE_MEM_LIMIT: u16 = 0x22;
pub const BRIDGE_PREF_BASE: u16 = 0x24;
pub const BRIDGE_PREF_LIMIT: u16 = 0x26;
pub const BRIDGE_PREF_BASE_UPPER: u16 = 0x28;
pub const BRIDGE_PREF_LIMIT_UPPER: u16 = 0x2c;

pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// Capability ID of vendor-specific capabilities (virtio uses them).
pub const CAP_VENDOR: u8 = 0x09;

/// One memory BAR, sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub index: u8,
    pub size: u64,
    pub is_64: bool,
    pub prefetchable: bool,
}

/// Sizes the memory BARs of a type 0 function (memory decoding is turned off
/// while the BARs hold all ones, then the old values and command come back). I/O
/// BARs are skipped: PHB4/PHB5 have no I/O space.
pub fn size_bars(cfg: &mut dyn ConfigSpace, bdf: Bdf) -> Result<Vec<Bar, 6>, PciError> {
    let command = cfg.read16(bdf, COMMAND)?;
    cfg.write16(bdf, COMMAND, command & !COMMAND_MEMORY)?;
    let result = size_bars_decoding_off(cfg, bdf);
    cfg.write16(bdf, COMMAND, command)?;
    result
}

fn size_bars_decoding_off(cfg: &mut dyn ConfigSpace, bdf: Bdf) -> Result<Vec<Bar, 6>, PciError> {
    let mut bars = Vec::new();
    let mut i = 0u8;
    while i < 6 {
        let off = BAR0 + 4 * u16::from(i);
        let old = cfg.read32(bdf, off)?;
        if old & 1 != 0 {
            i += 1;
            continue;
        }
        let is_64 = (old >> 1) & 3 == 2;
        if is_64 && i == 5 {
            return Err(PciError::BadBar(i));
        }
        cfg.write32(bdf, off, !0)?;
        let lo = cfg.read32(bdf, off)?;
        cfg.write32(bdf, off, old)?;
        let mut mask = u64::from(lo & !0xf);
        if is_64 {
            let old_hi = cfg.read32(bdf, off + 4)?;
            cfg.write32(bdf, off + 4, !0)?;
            let hi = cfg.read32(bdf, off + 4)?;
            cfg.write32(bdf, off + 4, old_hi)?;
            mask |= u64::from(hi) << 32;
        } else if mask != 0 {
            mask |= 0xffff_ffff_0000_0000;
        }
        if mask != 0 {
            let size = (!mask).wrapping_add(1);
            if !size.is_power_of_two() || size < 16 {
                return Err(PciError::BadBar(i));
            }
            // Cannot overflow: at most six BARs.
            let _ = bars.push(Bar {
                index: i,
                size,
                is_64,
                prefetchable: old & 8 != 0,
            });
        }
        i += if is_64 { 2 } else { 1 };
    }
    Ok(bars)
}

/// Programs a memory BAR with a PCI bus address.
pub fn set_bar(
    cfg: &mut dyn ConfigSpace,
    bdf: Bdf,
    bar: &Bar,
    pci_addr: u64,
) -> Result<(), PciError> {
    let off = BAR0 + 4 * u16::from(bar.index);
    cfg.write32(bdf, off, pci_addr as u32)?;
    if bar.is_64 {
        cfg.write32(bdf, off + 4, (pci_addr >> 32) as u32)?;
    }
    Ok(())
}

/// The capabilities of a function: (ID, offset), in list order.
pub fn capabilities(cfg: &mut dyn ConfigSpace, bdf: Bdf) -> Result<Vec<(u8, u8), 48>, PciError> {
    let mut caps = Vec::new();
    if cfg.read16(bdf, STATUS)? & STATUS_CAP_LIST == 0 {
        return Ok(caps);
    }
    let mut at = cfg.read8(bdf, CAP_PTR)? & !3;
    while at != 0 {
        if at < 0x40 {
            return Err(PciError::BadCapabilities);
        }
        let id = cfg.read8(bdf, u16::from(at))?;
        // A list longer than the header can hold loops.
        caps.push((id, at)).map_err(|_| PciError::BadCapabilities)?;
        at = cfg.read8(bdf, u16::from(at) + 1)? & !3;
    }
    Ok(caps)
}

/// A PHB's 32-bit MMIO window: PCI addresses `pci..pci+size` appear at CPU real
/// addresses `cpu..cpu+size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioWindow {
    pub cpu: u64,
    pub pci: u64,
    pub size: u64,
}

impl MmioWindow {
    /// CPU real address of a PCI address inside the window.
    pub fn cpu_addr(&self, pci: u64) -> Option<u64> {
        (pci >= self.pci && pci - self.pci < self.size).then(|| self.cpu + (pci - self.pci))
    }
}

/// Hands out naturally aligned PCI addresses from a window, lowest first.
#[derive(Debug)]
pub struct BarAllocator {
    next: u64,
    end: u64,
}

impl BarAllocator {
    pub fn new(w: &MmioWindow) -> Self {
        BarAllocator {
            next: w.pci,
            end: w.pci + w.size,
        }
    }

    pub fn alloc(&mut self, size: u64) -> Result<u64, PciError> {
        if !size.is_power_of_two() {
            return Err(PciError::WindowFull);
        }
        let at = self
            .next
            .checked_add(size - 1)
            .ok_or(PciError::WindowFull)?
            & !(size - 1);
        let end = at.checked_add(size).ok_or(PciError::WindowFull)?;
        if end > self.end {
            return Err(PciError::WindowFull);
        }
        self.next = end;
        Ok(at)
    }
}

/// Opens a bridge's non-prefetchable memory window over `pci..pci+size` (1 MiB
/// granules) and closes its prefetchable one; enables memory decoding and bus
/// mastering through it. A prefetchable BAR inside the plain window is forwarded
/// too, which is all one device needs.
pub fn open_bridge_window(
    cfg: &mut dyn ConfigSpace,
    bridge: Bdf,
    pci: u64,
    size: u64,
) -> Result<(), PciError> {
    const MB: u64 = 1 << 20;
    let base = pci & !(MB - 1);
    let limit = (pci + size.max(1) - 1) | (MB - 1);
    if limit > 0xffff_ffff {
        return Err(PciError::WindowFull);
    }
    cfg.write16(bridge, BRIDGE_MEM_BASE, ((base >> 16) as u16) & 0xfff0)?;
    cfg.write16(bridge, BRIDGE_MEM_LIMIT, ((limit >> 16) as u16) & 0xfff0)?;
    // Prefetchable window: base above limit disables it.
    cfg.write16(bridge, BRIDGE_PREF_BASE, 0xfff0)?;
    cfg.write16(bridge, BRIDGE_PREF_LIMIT, 0)?;
    cfg.write32(bridge, BRIDGE_PREF_BASE_UPPER, 0)?;
    cfg.write32(bridge, BRIDGE_PREF_LIMIT_UPPER, 0)?;
    let cmd = cfg.read16(bridge, COMMAND)?;
    cfg.write16(bridge, COMMAND, cmd | COMMAND_MEMORY | COMMAND_BUS_MASTER)
}

/// Capability ID of PCI Express.
pub const CAP_PCIE: u8 = 0x10;
/// PCI Express Device Capabilities (cap + 4) bit 28: function-level reset.
pub const PCIE_DEVCAP: u16 = 4;
pub const DEVCAP_FLR: u32 = 1 << 28;
/// PCI Express Device Control (cap + 8) bit 15: initiate function-level reset.
pub const PCIE_DEVCTL: u16 = 8;
pub const DEVCTL_INITIATE_FLR: u16 = 1 << 15;

/// Capability IDs of MSI and MSI-X, and their Enable bits in the Message
/// Control register (cap + 2).
pub const CAP_MSI: u8 = 0x05;
pub const CAP_MSIX: u8 = 0x11;
pub const MSI_CTL: u16 = 2;
pub const MSI_ENABLE: u16 = 1 << 0;
pub const MSIX_ENABLE: u16 = 1 << 15;
pub const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// How a function was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Function-level reset (PCIe), then the BARs and command written back.
    Flr,
    /// No FLR: only bus mastering and decoding switched off.
    Quiesced,
}

/// Resets a function between two owners: FLR when it has one (`wait` must
/// then let 100 ms pass, PCIe base spec 6.6.2), its BARs and command register
/// (without bus mastering) written back afterwards; without FLR bus mastering
/// is switched off. Either way the MSI and MSI-X Enable bits (and MSI-X's
/// Function Mask) end up clear, as after a reset, so the next owner inherits
/// no live vector.
pub fn reset_function(
    cfg: &mut dyn ConfigSpace,
    bdf: Bdf,
    wait: &mut dyn FnMut(),
) -> Result<Reset, PciError> {
    let command = cfg.read16(bdf, COMMAND)?;
    let caps = capabilities(cfg, bdf)?;
    let cap = |want: u8| {
        caps.iter()
            .find(|(id, _)| *id == want)
            .map(|&(_, at)| u16::from(at))
    };
    let pcie = cap(CAP_PCIE);
    let flr = match pcie {
        Some(at) => cfg.read32(bdf, at + PCIE_DEVCAP)? & DEVCAP_FLR != 0,
        None => false,
    };
    let msi_off = |cfg: &mut dyn ConfigSpace| -> Result<(), PciError> {
        if let Some(at) = cap(CAP_MSI) {
            let ctl = cfg.read16(bdf, at + MSI_CTL)?;
            if ctl & MSI_ENABLE != 0 {
                cfg.write16(bdf, at + MSI_CTL, ctl & !MSI_ENABLE)?;
            }
        }
        if let Some(at) = cap(CAP_MSIX) {
            let ctl = cfg.read16(bdf, at + MSI_CTL)?;
            if ctl & (MSIX_ENABLE | MSIX_FUNCTION_MASK) != 0 {
                cfg.write16(bdf, at + MSI_CTL, ctl & !(MSIX_ENABLE | MSIX_FUNCTION_MASK))?;
            }
        }
        Ok(())
    };
    let Some(at) = pcie.filter(|_| flr) else {
        cfg.write16(bdf, COMMAND, command & !COMMAND_BUS_MASTER)?;
        msi_off(cfg)?;
        return Ok(Reset::Quiesced);
    };
    let mut bars = [0u32; 6];
    for (i, b) in bars.iter_mut().enumerate() {
        *b = cfg.read32(bdf, BAR0 + 4 * i as u16)?;
    }
    cfg.write16(bdf, COMMAND, command & !COMMAND_BUS_MASTER)?;
    let ctl = cfg.read16(bdf, at + PCIE_DEVCTL)?;
    cfg.write16(bdf, at + PCIE_DEVCTL, ctl | DEVCTL_INITIATE_FLR)?;
    wait();
    for (i, b) in bars.iter().enumerate() {
        cfg.write32(bdf, BAR0 + 4 * i as u16, *b)?;
    }
    cfg.write16(bdf, COMMAND, command & COMMAND_MEMORY)?;
    // FLR already cleared them on a compliant function; a function that
    // ignored it must not keep sending.
    msi_off(cfg)?;
    Ok(Reset::Flr)
}

#[cfg(test)]
pub mod fake {
    //! A config space with real BAR sizing semantics, for tests here and in
    //! [`crate::virtio`].
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct FakeFunction {
        pub space: std::vec::Vec<u8>,
        /// Size of each BAR (0: none); 64-bit BARs use the even index.
        pub bar_sizes: [u64; 6],
    }

    impl FakeFunction {
        pub fn new(vendor: u16, device: u16) -> Self {
            let mut f = FakeFunction {
                space: std::vec![0; 4096],
                bar_sizes: [0; 6],
            };
            f.put16(VENDOR_ID, vendor);
            f.put16(DEVICE_ID, device);
            f
        }
        pub fn put8(&mut self, off: u16, v: u8) {
            self.space[off as usize] = v;
        }
        pub fn put16(&mut self, off: u16, v: u16) {
            self.space[off as usize..off as usize + 2].copy_from_slice(&v.to_le_bytes());
        }
        pub fn put32(&mut self, off: u16, v: u32) {
            self.space[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
        }
        pub fn get32(&self, off: u16) -> u32 {
            u32::from_le_bytes(
                self.space[off as usize..off as usize + 4]
                    .try_into()
                    .unwrap(),
            )
        }
        pub fn get16(&self, off: u16) -> u16 {
            u16::from_le_bytes(
                self.space[off as usize..off as usize + 2]
                    .try_into()
                    .unwrap(),
            )
        }
        /// A 64-bit prefetchable memory BAR at `index` (and `index + 1`).
        pub fn bar64(&mut self, index: usize, size: u64) {
            self.bar_sizes[index] = size;
            self.put32(BAR0 + 4 * index as u16, 0b1100);
        }
        /// A 32-bit memory BAR.
        pub fn bar32(&mut self, index: usize, size: u64) {
            self.bar_sizes[index] = size;
            self.put32(BAR0 + 4 * index as u16, 0);
        }
        /// Adds a capability with `body` (after ID and next) and links it first.
        pub fn add_cap(&mut self, at: u8, id: u8, body: &[u8]) {
            let next = if self.get16(STATUS) & STATUS_CAP_LIST != 0 {
                self.space[CAP_PTR as usize]
            } else {
                0
            };
            self.put8(u16::from(at), id);
            self.put8(u16::from(at) + 1, next);
            for (i, b) in body.iter().enumerate() {
                self.put8(u16::from(at) + 2 + i as u16, *b);
            }
            self.put8(CAP_PTR, at);
            let st = self.get16(STATUS);
            self.put16(STATUS, st | STATUS_CAP_LIST);
        }
        pub fn bar_value(&self, index: usize) -> u64 {
            let lo = u64::from(self.get32(BAR0 + 4 * index as u16) & !0xf);
            if self.get32(BAR0 + 4 * index as u16) & 0b110 == 0b100 {
                lo | (u64::from(self.get32(BAR0 + 4 * index as u16 + 4)) << 32)
            } else {
                lo
            }
        }
    }

    #[derive(Default)]
    pub struct FakeConfig {
        pub functions: HashMap<Bdf, FakeFunction>,
        pub writes: usize,
    }

    impl FakeConfig {
        fn bar_of(&self, bdf: Bdf, offset: u16) -> Option<(usize, bool)> {
            if !(BAR0..BAR0 + 24).contains(&offset) {
                return None;
            }
            let f = self.functions.get(&bdf)?;
            let i = ((offset - BAR0) / 4) as usize;
            if f.bar_sizes[i] != 0 {
                return Some((i, false));
            }
            if i > 0
                && f.bar_sizes[i - 1] != 0
                && f.get32(BAR0 + 4 * (i as u16 - 1)) & 0b110 == 0b100
            {
                return Some((i - 1, true));
            }
            None
        }
    }

    impl ConfigSpace for FakeConfig {
        fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, PciError> {
            let Some(f) = self.functions.get(&bdf) else {
                return Ok(match width {
                    Width::Byte => 0xff,
                    Width::Half => 0xffff,
                    Width::Word => !0,
                });
            };
            let o = offset as usize;
            Ok(match width {
                Width::Byte => u32::from(f.space[o]),
                Width::Half => u32::from(f.get16(offset)),
                Width::Word => f.get32(offset),
            })
        }

        fn write(
            &mut self,
            bdf: Bdf,
            offset: u16,
            width: Width,
            value: u32,
        ) -> Result<(), PciError> {
            self.writes += 1;
            let bar = self.bar_of(bdf, offset);
            let Some(f) = self.functions.get_mut(&bdf) else {
                return Ok(());
            };
            match (bar, width) {
                (Some((i, upper)), Width::Word) => {
                    let mask = !(f.bar_sizes[i] - 1);
                    if upper {
                        f.put32(offset, value & (mask >> 32) as u32);
                    } else {
                        let flags = f.get32(offset) & 0xf;
                        f.put32(offset, (value & mask as u32 & !0xf) | flags);
                    }
                }
                // Unimplemented BARs are hardwired to zero (type 0 headers; a
                // bridge has its windows from 0x18 on).
                _ if f.space[HEADER_TYPE as usize] & 0x7f == 0
                    && (BAR0..BAR0 + 24).contains(&offset) => {}
                (_, Width::Byte) => f.put8(offset, value as u8),
                (_, Width::Half) => f.put16(offset, value as u16),
                (_, Width::Word) => f.put32(offset, value),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    fn dev() -> Bdf {
        Bdf::new(1, 0, 0)
    }

    #[test]
    fn bdf_packs_like_a_requester_id() {
        let b = Bdf::new(0x12, 0x1f, 7);
        assert_eq!(b.0, 0x12ff);
        assert_eq!((b.bus(), b.dev(), b.func()), (0x12, 0x1f, 7));
        assert_eq!(std::format!("{b}"), "12:1f.7");
    }

    #[test]
    fn pci_address_parses_linux_names_only() {
        let a = PciAddress::parse("0001:01:00.0").unwrap();
        assert_eq!(a.domain, 1);
        assert_eq!(a.bdf, Bdf::new(1, 0, 0));
        assert_eq!(std::format!("{a}"), "0001:01:00.0");
        assert_eq!(
            PciAddress::parse("0000:ff:1f.7").unwrap().bdf,
            Bdf::new(0xff, 0x1f, 7)
        );
        for bad in [
            "",
            "01:00.0",
            "0000:1:00.0",
            "0000:01:20.0",
            "0000:01:00.8",
            "0000:01:00",
            "g000:01:00.0",
            "0000:01:00.0 ",
            "000000000:01:00.0",
            "0000:01:00.00",
        ] {
            assert_eq!(PciAddress::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_32_and_64_bit_bars_and_restores_them() {
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x1af4, 0x1043);
        f.bar32(1, 0x1000);
        f.bar64(4, 0x4000);
        f.put16(COMMAND, COMMAND_MEMORY);
        cfg.functions.insert(dev(), f);
        let bars = size_bars(&mut cfg, dev()).unwrap();
        assert_eq!(
            bars.as_slice(),
            &[
                Bar {
                    index: 1,
                    size: 0x1000,
                    is_64: false,
                    prefetchable: false
                },
                Bar {
                    index: 4,
                    size: 0x4000,
                    is_64: true,
                    prefetchable: true
                },
            ]
        );
        let f = &cfg.functions[&dev()];
        assert_eq!(f.bar_value(4), 0, "old value restored");
        assert_eq!(f.get16(COMMAND), COMMAND_MEMORY, "command restored");
    }

    #[test]
    fn function_reset_uses_flr_and_restores_the_bars() {
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x1af4, 0x1042);
        f.bar64(4, 0x4000);
        f.put32(BAR0 + 16, 0x8010_000c);
        f.put16(COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER);
        f.add_cap(0x40, CAP_PCIE, &[0; 10]);
        f.put32(0x40 + PCIE_DEVCAP, DEVCAP_FLR);
        cfg.functions.insert(dev(), f);
        let mut waited = 0;
        let r = reset_function(&mut cfg, dev(), &mut || waited += 1).unwrap();
        assert_eq!(r, Reset::Flr);
        assert_eq!(waited, 1);
        let f = &cfg.functions[&dev()];
        assert_ne!(f.get16(0x40 + PCIE_DEVCTL) & DEVCTL_INITIATE_FLR, 0);
        assert_eq!(f.bar_value(4), 0x8010_0000);
        assert_eq!(f.get16(COMMAND), COMMAND_MEMORY);

        // Without FLR: bus mastering off, nothing else.
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x8086, 0x10d3);
        f.put16(COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER);
        cfg.functions.insert(dev(), f);
        let r = reset_function(&mut cfg, dev(), &mut || panic!("no wait")).unwrap();
        assert_eq!(r, Reset::Quiesced);
        assert_eq!(cfg.functions[&dev()].get16(COMMAND), COMMAND_MEMORY);
    }

    #[test]
    fn reset_without_flr_turns_msi_and_msix_off() {
        // A function without FLR (PCIe capability, no FLR bit) whose previous
        // owner left MSI and MSI-X enabled, MSI-X function-masked, and bus
        // mastering on: the next owner must inherit none of it.
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x8086, 0x10d3);
        f.put16(COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER);
        f.add_cap(0x40, CAP_PCIE, &[0; 10]);
        // MSI: Message Control with Enable, 64-bit, 4 messages asked/enabled.
        f.add_cap(0x60, CAP_MSI, &[0; 12]);
        f.put16(0x60 + MSI_CTL, 0x00a5);
        // MSI-X: table size 5 (field 4), Enable and Function Mask.
        f.add_cap(0x70, CAP_MSIX, &[0; 10]);
        f.put16(0x70 + MSI_CTL, MSIX_ENABLE | MSIX_FUNCTION_MASK | 4);
        cfg.functions.insert(dev(), f);
        let r = reset_function(&mut cfg, dev(), &mut || panic!("no wait")).unwrap();
        assert_eq!(r, Reset::Quiesced);
        let f = &cfg.functions[&dev()];
        assert_eq!(f.get16(COMMAND), COMMAND_MEMORY, "bus mastering off");
        assert_eq!(f.get16(0x60 + MSI_CTL), 0x00a4, "MSI Enable off, rest kept");
        assert_eq!(f.get16(0x70 + MSI_CTL), 4, "MSI-X Enable and mask off");

        // With FLR, a function that ignored the reset's effect on MSI-X
        // (the fake keeps every register) ends with it off as well.
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x1af4, 0x1042);
        f.put16(COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER);
        f.add_cap(0x40, CAP_PCIE, &[0; 10]);
        f.put32(0x40 + PCIE_DEVCAP, DEVCAP_FLR);
        f.add_cap(0x70, CAP_MSIX, &[0; 10]);
        f.put16(0x70 + MSI_CTL, MSIX_ENABLE | 4);
        cfg.functions.insert(dev(), f);
        let r = reset_function(&mut cfg, dev(), &mut || {}).unwrap();
        assert_eq!(r, Reset::Flr);
        assert_eq!(cfg.functions[&dev()].get16(0x70 + MSI_CTL), 4);

        // Already off: not written at all (no needless config cycles).
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x8086, 0x10d3);
        f.add_cap(0x70, CAP_MSIX, &[0; 10]);
        f.put16(0x70 + MSI_CTL, 4);
        cfg.functions.insert(dev(), f);
        reset_function(&mut cfg, dev(), &mut || panic!("no wait")).unwrap();
        assert_eq!(cfg.writes, 1, "only the command register");
    }

    #[test]
    fn set_bar_writes_both_halves() {
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x1af4, 0x1043);
        f.bar64(4, 0x4000);
        cfg.functions.insert(dev(), f);
        let bars = size_bars(&mut cfg, dev()).unwrap();
        set_bar(&mut cfg, dev(), &bars[0], 0x1_8000_4000).unwrap();
        assert_eq!(cfg.functions[&dev()].bar_value(4), 0x1_8000_4000);
    }

    #[test]
    fn absent_function_has_no_bars_and_no_caps() {
        let mut cfg = FakeConfig::default();
        assert!(
            size_bars(&mut cfg, dev()).is_err() || size_bars(&mut cfg, dev()).unwrap().is_empty()
        );
        assert_eq!(cfg.read16(dev(), VENDOR_ID).unwrap(), 0xffff);
    }

    #[test]
    fn capability_walk_in_order_and_loops_refused() {
        let mut cfg = FakeConfig::default();
        let mut f = FakeFunction::new(0x1af4, 0x1043);
        f.add_cap(0x40, 0x05, &[]);
        f.add_cap(0x50, CAP_VENDOR, &[16, 1]);
        cfg.functions.insert(dev(), f);
        assert_eq!(
            capabilities(&mut cfg, dev()).unwrap().as_slice(),
            &[(CAP_VENDOR, 0x50), (0x05, 0x40)]
        );
        // Point the last capability back at the first: a loop.
        cfg.functions.get_mut(&dev()).unwrap().put8(0x41, 0x50);
        assert_eq!(
            capabilities(&mut cfg, dev()),
            Err(PciError::BadCapabilities)
        );
        // A pointer into the header is refused too.
        cfg.functions.get_mut(&dev()).unwrap().put8(0x41, 0x10);
        assert_eq!(
            capabilities(&mut cfg, dev()),
            Err(PciError::BadCapabilities)
        );
    }

    #[test]
    fn allocator_aligns_naturally_and_stays_in_the_window() {
        let w = MmioWindow {
            cpu: 0x0006_00c0_0000_0000,
            pci: 0x8000_0000,
            size: 0x7fff_0000,
        };
        let mut a = BarAllocator::new(&w);
        assert_eq!(a.alloc(0x1000).unwrap(), 0x8000_0000);
        assert_eq!(a.alloc(0x4000).unwrap(), 0x8000_4000);
        assert_eq!(a.alloc(0x100_0000).unwrap(), 0x8100_0000);
        assert_eq!(a.alloc(0x8000_0000), Err(PciError::WindowFull));
        assert_eq!(a.alloc(3), Err(PciError::WindowFull));
        assert_eq!(w.cpu_addr(0x8000_4000), Some(0x0006_00c0_0000_4000));
        assert_eq!(w.cpu_addr(0x7fff_ffff), None);
        assert_eq!(w.cpu_addr(0xffff_0000), None);
    }

    #[test]
    fn bridge_window_covers_the_range_in_megabytes() {
        let mut cfg = FakeConfig::default();
        let rp = Bdf::new(0, 0, 0);
        let mut f = FakeFunction::new(0x1014, 0x04c1);
        f.put8(HEADER_TYPE, 1);
        cfg.functions.insert(rp, f);
        open_bridge_window(&mut cfg, rp, 0x8000_4000, 0x4000).unwrap();
        let f = &cfg.functions[&rp];
        assert_eq!(f.get16(BRIDGE_MEM_BASE), 0x8000);
        assert_eq!(f.get16(BRIDGE_MEM_LIMIT), 0x8000);
        assert!(f.get16(BRIDGE_PREF_BASE) > f.get16(BRIDGE_PREF_LIMIT));
        assert_eq!(f.get16(COMMAND) & 6, 6);
        assert_eq!(
            open_bridge_window(&mut cfg, rp, 0xffff_0000, 0x20_0000),
            Err(PciError::WindowFull)
        );
    }
}
