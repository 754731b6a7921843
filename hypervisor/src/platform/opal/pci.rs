//! OPAL's PCI services: config space and the PHB's PE, MMIO and DMA tables
//! (skiboot `core/pci-opal.c`; token numbers from `include/opal-api.h`).
//!
//! The hypervisor uses them for its own devices (the virtio console) and for
//! the functions it passes through to partitions (`partition::passthrough`).

use super::{call, real};
use crate::be::Be32;
use crate::pci::{Bdf, ConfigSpace, PciError, Width};

const OPAL_PCI_CONFIG_READ_BYTE: u64 = 13;
const OPAL_PCI_CONFIG_READ_HALF_WORD: u64 = 14;
const OPAL_PCI_CONFIG_READ_WORD: u64 = 15;
const OPAL_PCI_CONFIG_WRITE_BYTE: u64 = 16;
const OPAL_PCI_CONFIG_WRITE_HALF_WORD: u64 = 17;
const OPAL_PCI_CONFIG_WRITE_WORD: u64 = 18;
const OPAL_PCI_EEH_FREEZE_STATUS: u64 = 23;
const OPAL_PCI_EEH_FREEZE_CLEAR: u64 = 26;
const OPAL_PCI_MAP_PE_MMIO_WINDOW: u64 = 29;
const OPAL_PCI_SET_PE: u64 = 31;
const OPAL_PCI_MAP_PE_DMA_WINDOW: u64 = 44;
const OPAL_PCI_MAP_PE_DMA_WINDOW_REAL: u64 = 45;
const OPAL_PCI_TCE_KILL: u64 = 146;
const OPAL_PCI_SET_XIVE_PE: u64 = 37;
const OPAL_GET_MSI_64: u64 = 40;
/// `OPAL_PCI_TCE_KILL` kill type: every cached TCE of one PE.
const OPAL_PCI_TCE_KILL_PE: u64 = 1;

/// `OPAL_PCI_SET_PE` comparisons: the whole bus number, device and function.
const OPAL_COMPARE_RID_BUS_ALL: u64 = 7;
const OPAL_COMPARE_RID_DEVICE: u64 = 1;
const OPAL_COMPARE_RID_FUNCTION: u64 = 1;
const OPAL_MAP_PE: u64 = 1;
const OPAL_M32_WINDOW_TYPE: u64 = 1;
const OPAL_EEH_ACTION_CLEAR_FREEZE_MMIO: u64 = 1;
const OPAL_EEH_ACTION_CLEAR_FREEZE_DMA: u64 = 2;
const OPAL_EEH_ACTION_CLEAR_FREEZE_ALL: u64 = 3;

fn phb_call(name: &'static str, token: u64, args: &[u64]) -> Result<(), PciError> {
    call(token, args)
        .map(|_| ())
        .map_err(|e| PciError::Phb(name, e.code()))
}

/// Config space of one PHB through OPAL.
pub struct OpalConfig {
    pub phb_id: u64,
}

impl ConfigSpace for OpalConfig {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, PciError> {
        let (b, o) = (u64::from(bdf.0), u64::from(offset));
        let r = match width {
            Width::Byte => {
                let mut v = 0u8;
                call(OPAL_PCI_CONFIG_READ_BYTE, &[self.phb_id, b, o, real(&v)])
                    .map(|_| u32::from(core::mem::take(&mut v)))
            }
            Width::Half => {
                // OPAL stores a big-endian 16-bit value.
                let mut v = [0u8; 2];
                call(
                    OPAL_PCI_CONFIG_READ_HALF_WORD,
                    &[self.phb_id, b, o, real(&v)],
                )
                .map(|_| u32::from(u16::from_be_bytes(core::mem::take(&mut v))))
            }
            Width::Word => {
                let mut v = Be32::new(0);
                call(OPAL_PCI_CONFIG_READ_WORD, &[self.phb_id, b, o, real(&v)])
                    .map(|_| core::mem::take(&mut v).get())
            }
        };
        r.map_err(|e| PciError::Config(e.code()))
    }

    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), PciError> {
        let token = match width {
            Width::Byte => OPAL_PCI_CONFIG_WRITE_BYTE,
            Width::Half => OPAL_PCI_CONFIG_WRITE_HALF_WORD,
            Width::Word => OPAL_PCI_CONFIG_WRITE_WORD,
        };
        call(
            token,
            &[
                self.phb_id,
                u64::from(bdf.0),
                u64::from(offset),
                u64::from(value),
            ],
        )
        .map(|_| ())
        .map_err(|e| PciError::Config(e.code()))
    }
}

/// Puts one function (matched on bus, device and function) in PE `pe`.
pub fn set_pe(phb_id: u64, pe: u32, bdf: Bdf) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_SET_PE",
        OPAL_PCI_SET_PE,
        &[
            phb_id,
            u64::from(pe),
            u64::from(bdf.0),
            OPAL_COMPARE_RID_BUS_ALL,
            OPAL_COMPARE_RID_DEVICE,
            OPAL_COMPARE_RID_FUNCTION,
            OPAL_MAP_PE,
        ],
    )
}

/// Routes M32 segment `segment` of the PHB to PE `pe`.
pub fn map_m32_segment(phb_id: u64, pe: u32, segment: u64) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_MAP_PE_MMIO_WINDOW",
        OPAL_PCI_MAP_PE_MMIO_WINDOW,
        &[phb_id, u64::from(pe), OPAL_M32_WINDOW_TYPE, 0, segment],
    )
}

/// Opens an untranslated (bypass) DMA window for PE `pe`: PCI addresses
/// `pci_start..pci_start+size` reach real memory at the same offset.
pub fn map_dma_bypass(
    phb_id: u64,
    pe: u32,
    window: u64,
    pci_start: u64,
    size: u64,
) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_MAP_PE_DMA_WINDOW_REAL",
        OPAL_PCI_MAP_PE_DMA_WINDOW_REAL,
        &[phb_id, u64::from(pe), window, pci_start, size],
    )
}

/// Clears any MMIO/DMA freeze of PE `pe`.
pub fn clear_freeze(phb_id: u64, pe: u32) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_EEH_FREEZE_CLEAR",
        OPAL_PCI_EEH_FREEZE_CLEAR,
        &[phb_id, u64::from(pe), OPAL_EEH_ACTION_CLEAR_FREEZE_ALL],
    )
}

/// Closes DMA window `window` of PE `pe` (size 0 disables the TVE).
pub fn unmap_dma(phb_id: u64, pe: u32, window: u64) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_MAP_PE_DMA_WINDOW_REAL",
        OPAL_PCI_MAP_PE_DMA_WINDOW_REAL,
        &[phb_id, u64::from(pe), window, 0, 0],
    )
}

/// A PE's freeze state (`OPAL_EEH_STOPPED_*`: 0 not frozen, 1 MMIO, 2 DMA,
/// 3 both); the deprecated PHB status pointer is passed as 0 (skiboot warns
/// otherwise).
pub fn freeze_status(phb_id: u64, pe: u32) -> Result<u8, PciError> {
    let mut state = 0u8;
    let mut pci_error = [0u8; 2];
    call(
        OPAL_PCI_EEH_FREEZE_STATUS,
        &[phb_id, u64::from(pe), real(&state), real(&pci_error), 0],
    )
    .map_err(|e| PciError::Phb("OPAL_PCI_EEH_FREEZE_STATUS", e.code()))?;
    let _ = core::mem::take(&mut pci_error);
    Ok(core::mem::take(&mut state))
}

/// Points DMA window `window` of PE `pe` at a one-level TCE table of `size`
/// bytes at real `table` (big-endian entries, pages of `page_size`).
pub fn map_dma_tce(
    phb_id: u64,
    pe: u32,
    window: u64,
    table: u64,
    size: u64,
    page_size: u64,
) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_MAP_PE_DMA_WINDOW",
        OPAL_PCI_MAP_PE_DMA_WINDOW,
        &[phb_id, u64::from(pe), window, 1, table, size, page_size],
    )
}

/// Drops the PHB's cached TCEs of PE `pe` (after its table changed).
pub fn tce_kill_pe(phb_id: u64, pe: u32) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_TCE_KILL",
        OPAL_PCI_TCE_KILL,
        &[phb_id, OPAL_PCI_TCE_KILL_PE, u64::from(pe), 0, 0, 0],
    )
}

/// Clears PE `pe`'s MMIO (`dma` false) or DMA freeze only.
pub fn clear_freeze_of(phb_id: u64, pe: u32, dma: bool) -> Result<(), PciError> {
    let action = if dma {
        OPAL_EEH_ACTION_CLEAR_FREEZE_DMA
    } else {
        OPAL_EEH_ACTION_CLEAR_FREEZE_MMIO
    };
    phb_call(
        "OPAL_PCI_EEH_FREEZE_CLEAR",
        OPAL_PCI_EEH_FREEZE_CLEAR,
        &[phb_id, u64::from(pe), action],
    )
}

/// Gives hardware MSI `ive` (an index in the PHB's `ibm,opal-msi-ranges`) to
/// PE `pe`: the PHB drops an MSI from another PE (skiboot `phb4_set_ive_pe`
/// writes the MIST; QEMU does not check it).
pub fn set_xive_pe(phb_id: u64, pe: u32, ive: u32) -> Result<(), PciError> {
    phb_call(
        "OPAL_PCI_SET_XIVE_PE",
        OPAL_PCI_SET_XIVE_PE,
        &[phb_id, u64::from(pe), u64::from(ive)],
    )
}

/// The 64-bit MSI message (address, data) that raises hardware MSI `ive` for
/// PE `pe` (PHB4/PHB5: address `1 << 60 | ive << 4` without bits 4-8, data
/// its low 5 bits).
pub fn get_msi_64(phb_id: u64, pe: u32, ive: u32) -> Result<(u64, u32), PciError> {
    let addr = crate::be::Be64::ZERO;
    let data = Be32::new(0);
    call(
        OPAL_GET_MSI_64,
        &[
            phb_id,
            u64::from(pe),
            u64::from(ive),
            1,
            real(&addr),
            real(&data),
        ],
    )
    .map_err(|e| PciError::Phb("OPAL_GET_MSI_64", e.code()))?;
    // SAFETY: OPAL wrote both through their real addresses.
    let (a, d) = unsafe {
        (
            core::ptr::read_volatile(&addr),
            core::ptr::read_volatile(&data),
        )
    };
    Ok((a.get(), d.get()))
}

/// Writes one MSI-X table entry (16 bytes, little-endian words; vector control
/// last so the entry is unmasked only once complete) at real `table_entry`
/// inside a BAR of a pass-through function.
///
/// The address must lie in a PHB 32-bit MMIO window that `init` mapped for the
/// hypervisor (caching-inhibited, guarded, `mm::LINEAR_BASE` + real).
pub fn write_msix_entry(table_entry: u64, words: [u32; 4]) {
    let va = crate::mm::LINEAR_BASE | table_entry;
    for (i, w) in words.iter().enumerate() {
        // SAFETY: a device register in a mapped PHB window (above), 4-byte
        // aligned (table entries are 16-byte aligned); the function belongs to
        // the partition whose RTAS call asked for it.
        unsafe { core::ptr::write_volatile((va + 4 * i as u64) as *mut u32, w.to_le()) };
    }
    crate::arch::ppc64::instr::eieio();
}

/// A load of `size` (1, 2, 4 or 8) bytes at real `pa` in a mapped PHB 32-bit
/// window (see [`write_msix_entry`]), as a big-endian bus-order value; all
/// ones for another size.
pub fn mmio_read(pa: u64, size: u64) -> u64 {
    let va = crate::mm::LINEAR_BASE | pa;
    // SAFETY: a device register of a pass-through function in a window
    // `init` mapped caching-inhibited; the caller checked alignment (a
    // partition's access to its own function, which the MSI-X table's page
    // traps).
    unsafe {
        match size {
            1 => u64::from(core::ptr::read_volatile(va as *const u8)),
            2 => u64::from(u16::from_be_bytes(
                core::ptr::read_volatile(va as *const u16).to_ne_bytes(),
            )),
            4 => u64::from(u32::from_be_bytes(
                core::ptr::read_volatile(va as *const u32).to_ne_bytes(),
            )),
            8 => u64::from_be_bytes(core::ptr::read_volatile(va as *const u64).to_ne_bytes()),
            _ => u64::MAX,
        }
    }
}

/// A store of `size` bytes of big-endian bus-order `value` at real `pa` (as
/// [`mmio_read`]).
pub fn mmio_write(pa: u64, size: u64, value: u64) {
    let va = crate::mm::LINEAR_BASE | pa;
    // SAFETY: as in `mmio_read`.
    unsafe {
        match size {
            1 => core::ptr::write_volatile(va as *mut u8, value as u8),
            2 => core::ptr::write_volatile(
                va as *mut u16,
                u16::from_ne_bytes((value as u16).to_be_bytes()),
            ),
            4 => core::ptr::write_volatile(
                va as *mut u32,
                u32::from_ne_bytes((value as u32).to_be_bytes()),
            ),
            8 => core::ptr::write_volatile(va as *mut u64, u64::from_ne_bytes(value.to_be_bytes())),
            _ => {}
        }
    }
    crate::arch::ppc64::instr::eieio();
}
