//! The partition's view of a passed-through PCI function (docs/passthrough.md):
//! a logical PHB ("IBM,Logical_PHB") whose config space the guest reaches with
//! RTAS ibm,read-pci-config / ibm,write-pci-config, filtered here, and whose
//! 64-bit DMA window (DDW, ibm,create-pe-dma-window) maps exactly the
//! partition's memory.
//!
//! Portable: what the filter decides and the window arithmetic are pure; the
//! hypervisor (`partition::passthrough`) does the OPAL config cycles and PHB
//! settings they ask for.
//!
//! The filter's rules:
//! - BARs read back the address the hypervisor gave them (the one in
//!   `assigned-addresses`); the all-ones sizing write is emulated (the next read
//!   answers the size mask), any other value is refused (no BAR moves);
//! - the expansion ROM BAR reads 0 and ignores writes (no ROM is offered);
//! - the command register passes through, but bus mastering only once the
//!   function's PE has a DMA window (so the device can only reach what the
//!   PHB's windows translate, which is the partition's memory);
//! - the MSI and MSI-X capabilities (and anything else the hypervisor must own
//!   for interrupts) are read-only to the guest until interrupts are routed
//!   (ibm,change-msi programs them);
//! - extended config space (0x100 on) is readable, not writable;
//! - everything else in the type 0 header and the standard capabilities passes.

use core::ops::RangeInclusive;

use crate::papr::rtas::RtasArgs;
use crate::pci::{Bdf, Width};

/// BUID (`reg` of the vPHB node) of the logical PHB standing for host PHB `phb_id`;
/// QEMU's pseries numbers them from the same base.
pub const BUID_BASE: u64 = 0x0800_0000_2000_0000;
/// The 64-bit DMA window is a PHB bypass window: PCI address bit 59 selects
/// TVE#1 of the PE (skiboot `phb4_map_pe_dma_window_real`).
pub const BYPASS_BASE: u64 = 1 << 59;
/// The bypass window's start and size are counted in 16 MiB.
pub const BYPASS_GRANULE: u64 = 16 << 20;
/// LIOBNs: `0x7000_0000 | phb_id << 8 | slot << 1 | window`: `slot` the
/// function's place under its logical PHB (each function is its own PE),
/// `window` 0 the 32-bit TCE window, 1 the 64-bit one (DDW).
pub const LIOBN_BASE: u32 = 0x7000_0000;

pub fn buid(phb_id: u64) -> u64 {
    BUID_BASE + phb_id
}

/// The host PHB id of a BUID, if it is one of ours.
pub fn phb_of_buid(buid: u64) -> Option<u64> {
    buid.checked_sub(BUID_BASE).filter(|&p| p < 0x100)
}

pub fn liobn(phb_id: u64, slot: usize, window: u32) -> u32 {
    LIOBN_BASE | ((phb_id as u32 & 0xff) << 8) | ((slot as u32 & 0x7f) << 1) | (window & 1)
}

/// (host PHB id, slot, window) of a LIOBN.
pub fn parse_liobn(liobn: u32) -> Option<(u64, usize, u32)> {
    (liobn & 0xffff_0000 == LIOBN_BASE).then(|| {
        (
            u64::from((liobn >> 8) & 0xff),
            ((liobn >> 1) & 0x7f) as usize,
            liobn & 1,
        )
    })
}

/// RTAS config address (PAPR 7.3.4): register bits 7:0, function 10:8, device
/// 15:11, bus 23:16, extended register bits 11:8 in bits 31:28 (Linux's
/// `rtas_config_addr`, QEMU's `rtas_pci_cfgaddr`); bits 27:24 are reserved.
pub fn decode_config_addr(addr: u32) -> (Bdf, u16) {
    let reg = (addr & 0xff) as u16 | (((addr >> 28) & 0xf) as u16) << 8;
    (Bdf(((addr >> 8) & 0xffff) as u16), reg)
}

pub fn config_addr(bdf: Bdf) -> u32 {
    u32::from(bdf.0) << 8
}

/// The function a PCI RTAS call names by its first three arguments (config
/// address, BUID hi, BUID lo: PAPR 7.3.4 for config space, 7.3.10-11 for
/// MSIs, DDW and EEH): the host PHB behind the BUID, the function and the
/// config register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalledFunction {
    pub phb_id: u64,
    pub bdf: Bdf,
    pub reg: u16,
}

/// Why a PCI RTAS call's arguments name no function; both are
/// RTAS_PARAMETER_ERROR to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// Not exactly the call's number of arguments, or a number of returns
    /// outside its range.
    Counts,
    /// The BUID is not one of a logical PHB, or no function has that address.
    NotItsFunction,
}

/// Checks a PCI RTAS call's shape (exactly `nargs` arguments, `nret` returns
/// in `nret_ok`), then decodes the function its first three arguments name.
pub fn function_args(
    a: &RtasArgs,
    nargs: usize,
    nret_ok: RangeInclusive<usize>,
) -> Result<CalledFunction, ArgsError> {
    if a.nargs != nargs || !nret_ok.contains(&a.nret) || nargs < 3 {
        return Err(ArgsError::Counts);
    }
    let arg = |i| a.arg(i).unwrap_or(0);
    let buid = (u64::from(arg(1)) << 32) | u64::from(arg(2));
    let phb_id = phb_of_buid(buid).ok_or(ArgsError::NotItsFunction)?;
    let (bdf, reg) = decode_config_addr(arg(0));
    Ok(CalledFunction { phb_id, bdf, reg })
}

/// A config access size in bytes as RTAS gives it.
pub fn width_of(size: u32) -> Option<Width> {
    match size {
        1 => Some(Width::Byte),
        2 => Some(Width::Half),
        4 => Some(Width::Word),
        _ => None,
    }
}

fn width_bytes(w: Width) -> u16 {
    match w {
        Width::Byte => 1,
        Width::Half => 2,
        Width::Word => 4,
    }
}

/// One BAR as the partition sees it: fixed at `pci` (a host PCI address in the
/// PHB's M32 window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VBar {
    pub index: u8,
    pub size: u64,
    pub is_64: bool,
    pub prefetchable: bool,
    pub pci: u64,
}

impl VBar {
    fn flags(&self) -> u32 {
        (if self.is_64 { 0b100 } else { 0 }) | (if self.prefetchable { 0b1000 } else { 0 })
    }
}

/// What the guest is allowed to see and change of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VFunction {
    pub bdf: Bdf,
    pub bars: heapless::Vec<VBar, 6>,
    /// Config ranges (offset, length) the guest may read but not write: the
    /// MSI / MSI-X capabilities.
    pub read_only: heapless::Vec<(u16, u16), 4>,
    /// A DMA window is open for the function's PE: bus mastering may be set.
    pub dma_ready: bool,
    /// Offset of the PCI Express capability: its Device Control's "initiate
    /// function-level reset" is done by the hypervisor (BARs put back after).
    pub pcie_cap: Option<u16>,
    /// Offset of the MSI-X capability: its Message Control's Enable and
    /// Function Mask bits are the guest's (the rest of the capability and the
    /// table are programmed by ibm,change-msi).
    pub msix_cap: Option<u16>,
    /// Offset of the MSI capability: its Message Control's Enable bit is the
    /// guest's (address and data are programmed by ibm,change-msi).
    pub msi_cap: Option<u16>,
    /// BARs whose all-ones sizing write is pending (bit per BAR register).
    sizing: u8,
}

/// What a filtered config read does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAction {
    /// Read the device.
    Pass,
    /// Answer this value instead.
    Value(u32),
}

/// What a filtered config write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteAction {
    /// Write this value to the device (maybe changed from the guest's).
    Pass(u32),
    /// Nothing reaches the device, the guest is told it worked (emulated).
    Absorb,
    /// Refused: the guest gets a parameter error; the reason goes to the log.
    Refuse(&'static str),
    /// A function-level reset the hypervisor performs (then puts the BARs
    /// back); the rest of the written value is dropped.
    Reset,
    /// The MSI capability's Enable bit set or cleared: the hypervisor
    /// read-modify-writes Message Control, keeping the rest.
    MsiEnable(bool),
}

const COMMAND: u16 = crate::pci::COMMAND;
const BAR0: u16 = crate::pci::BAR0;
const ROM: u16 = 0x30;
const BUS_MASTER: u32 = crate::pci::COMMAND_BUS_MASTER as u32;

impl VFunction {
    pub fn new(bdf: Bdf, bars: &[VBar]) -> Self {
        VFunction {
            bdf,
            bars: bars.iter().copied().collect(),
            read_only: heapless::Vec::new(),
            dma_ready: false,
            pcie_cap: None,
            msix_cap: None,
            msi_cap: None,
            sizing: 0,
        }
    }

    /// The BAR register at dword `reg` (0..6) and whether it is a 64-bit BAR's
    /// upper half.
    fn bar_at(&self, reg: u8) -> Option<(&VBar, bool)> {
        self.bars.iter().find_map(|b| {
            if b.index == reg {
                Some((b, false))
            } else if b.is_64 && b.index + 1 == reg {
                Some((b, true))
            } else {
                None
            }
        })
    }

    /// The 32-bit value the guest sees in BAR register `reg`.
    fn bar_value(&self, reg: u8) -> u32 {
        let sizing = self.sizing & (1 << reg) != 0;
        match self.bar_at(reg) {
            None => 0,
            Some((b, upper)) => {
                let v = if sizing { !(b.size - 1) } else { b.pci };
                if upper {
                    (v >> 32) as u32
                } else {
                    (v as u32 & !0xf) | b.flags()
                }
            }
        }
    }

    /// The guest reads `width` at `off`.
    pub fn read(&self, off: u16, width: Width) -> Result<ReadAction, &'static str> {
        check_access(off, width)?;
        let end = off + width_bytes(width);
        if off < BAR0 + 24 && end > BAR0 {
            // Whole dwords of BARs from the emulated values.
            let dword = off & !3;
            let reg = ((dword - BAR0) / 4) as u8;
            let v = self.bar_value(reg) >> (8 * (off - dword));
            return Ok(ReadAction::Value(mask(v, width)));
        }
        if (ROM..ROM + 4).contains(&off) {
            return Ok(ReadAction::Value(0));
        }
        Ok(ReadAction::Pass)
    }

    /// The guest writes `value` (`width`) at `off`.
    pub fn write(
        &mut self,
        off: u16,
        width: Width,
        value: u32,
    ) -> Result<WriteAction, &'static str> {
        check_access(off, width)?;
        let end = off + width_bytes(width);
        if off < BAR0 + 24 && end > BAR0 {
            if width != Width::Word {
                return Ok(WriteAction::Refuse("partial BAR write"));
            }
            let reg = ((off - BAR0) / 4) as u8;
            let Some((b, upper)) = self.bar_at(reg) else {
                return Ok(WriteAction::Absorb);
            };
            let now = if upper {
                (b.pci >> 32) as u32
            } else {
                b.pci as u32 & !0xf
            };
            if value == u32::MAX {
                self.sizing |= 1 << reg;
                return Ok(WriteAction::Absorb);
            }
            if (if upper { value } else { value & !0xf }) == now {
                self.sizing &= !(1 << reg);
                return Ok(WriteAction::Absorb);
            }
            return Ok(WriteAction::Refuse("BAR move"));
        }
        if (ROM..ROM + 4).contains(&off) {
            return Ok(WriteAction::Absorb);
        }
        if off >= 0x100 {
            return Ok(WriteAction::Refuse("extended config space is read-only"));
        }
        if let Some(cap) = self.msix_cap {
            // Message Control (cap + 2): bit 15 MSI-X Enable, bit 14 Function
            // Mask; the table size is read-only in the device anyway.
            if (off == cap + 2 && width == Width::Half) || (off == cap + 3 && width == Width::Byte)
            {
                return Ok(WriteAction::Pass(value));
            }
        }
        if let Some(cap) = self.msi_cap {
            // Message Control (cap + 2): only MSI Enable (bit 0) may change;
            // Multiple Message Enable stays as ibm,change-msi set it.
            if off == cap + 2 && width != Width::Word {
                return Ok(WriteAction::MsiEnable(value & 1 != 0));
            }
        }
        if self
            .read_only
            .iter()
            .any(|&(at, len)| off < at + len && end > at)
        {
            return Ok(WriteAction::Refuse(
                "interrupt capability (use ibm,change-msi)",
            ));
        }
        if let Some(cap) = self.pcie_cap {
            // Device Control is the 16 bits at cap + 8; FLR is its bit 15.
            let ctl = cap + 8;
            if off <= ctl + 1 && end > ctl + 1 {
                let shift = 8 * (ctl + 1 - off);
                if (value >> shift) & 0x80 != 0 {
                    return Ok(WriteAction::Reset);
                }
            }
        }
        if off <= COMMAND && end > COMMAND && !self.dma_ready {
            // Bus master bit is bit 2 of the command register.
            let shift = 8 * (COMMAND - off);
            if (value >> shift) & BUS_MASTER != 0 {
                return Ok(WriteAction::Pass(value & !(BUS_MASTER << shift)));
            }
        }
        Ok(WriteAction::Pass(value))
    }
}

fn check_access(off: u16, width: Width) -> Result<(), &'static str> {
    let n = width_bytes(width);
    if !off.is_multiple_of(n) {
        return Err("misaligned config access");
    }
    if off + n > 0x1000 {
        return Err("config offset beyond 4 KiB");
    }
    Ok(())
}

fn mask(v: u32, width: Width) -> u32 {
    match width {
        Width::Byte => v & 0xff,
        Width::Half => v & 0xffff,
        Width::Word => v,
    }
}

/// A partition's 64-bit DMA window: PCI addresses `base..base + size` reach the
/// partition's memory `0..size`, which is one host extent at `host_pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwWindow {
    pub base: u64,
    pub size: u64,
}

/// Why a 64-bit window cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DdwError {
    /// The memory is not 16 MiB aligned or sized.
    Misaligned,
    /// The window would reach past what the PHB's TVE can describe (2^50).
    TooHigh,
}

/// The bypass window for a partition whose memory is host `host_pa..host_pa +
/// size` (one extent): TVE#1 translates PCI `BYPASS_BASE + a` to real `a` for
/// `a` in the window's range only, so the window is exactly that memory.
pub fn ddw_for(host_pa: u64, size: u64) -> Result<DdwWindow, DdwError> {
    if !host_pa.is_multiple_of(BYPASS_GRANULE) || !size.is_multiple_of(BYPASS_GRANULE) || size == 0
    {
        return Err(DdwError::Misaligned);
    }
    let end = host_pa.checked_add(size).ok_or(DdwError::TooHigh)?;
    if end > 1 << 50 {
        return Err(DdwError::TooHigh);
    }
    Ok(DdwWindow {
        base: BYPASS_BASE | host_pa,
        size,
    })
}

impl DdwWindow {
    /// Guest real address of bus address `bus`, when `len` bytes from it fall
    /// in the window.
    pub fn guest_addr(&self, bus: u64, len: u64) -> Option<u64> {
        let off = bus.checked_sub(self.base)?;
        (off.checked_add(len)? <= self.size).then_some(off)
    }

    /// H_PUT_TCE on the DDW LIOBN (Linux maps all its memory into a direct
    /// window this way): accepted only when it maps bus `ioba` to the guest
    /// page the window already translates it to (identity), with `page` size.
    pub fn check_identity_tce(&self, ioba: u64, tce: u64, page: u64) -> bool {
        let rpn = tce & !(page - 1) & ((1 << 52) - 1);
        let perms = tce & 3;
        match self.guest_addr(ioba, page) {
            Some(g) => perms == 0 || g == rpn,
            None => false,
        }
    }
}

/// The PHB's entry for a guest TCE `tce` (guest real page | R | W) of a
/// partition whose memory starts at host real `host_base`: the host page with
/// the same permissions, or 0 (a fault) when it grants nothing.
pub fn host_tce(tce: u64, host_base: u64) -> u64 {
    let perms = tce & 3;
    if perms == 0 {
        return 0;
    }
    (host_base + (tce & !0xfff)) | perms
}

/// ibm,read-slot-reset-state2's state (PAPR 7.3.11.3: 0 normal, 1 reset
/// held, 2 MMIO and DMA stopped, 4 MMIO allowed but DMA stopped, 5
/// unavailable) of a PE whose OPAL freeze state (`OPAL_EEH_STOPPED_*`) is
/// `opal`.
pub fn eeh_state(opal: u8) -> u32 {
    match opal {
        0 => 0,
        // MMIO frozen (alone or with DMA): stopped.
        1 | 3 => 2,
        2 => 4,
        4 => 1,
        _ => 5,
    }
}

/// ibm,set-eeh-option options (PAPR 7.3.11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EehOption {
    Disable,
    Enable,
    ThawMmio,
    ThawDma,
}

impl EehOption {
    pub fn from_arg(v: u32) -> Option<Self> {
        match v {
            0 => Some(EehOption::Disable),
            1 => Some(EehOption::Enable),
            2 => Some(EehOption::ThawMmio),
            3 => Some(EehOption::ThawDma),
            _ => None,
        }
    }
}

/// ibm,query-pe-dma-window answers: (windows available, largest block in
/// pages of `page_shift`, page-size mask).
/// Page sizes (PAPR DDW): bit 0 4K, 1 64K, 2 16M, 3 32M, 4 64M, 5 128M, 6 256M, 7 16G.
pub const DDW_PAGE_SIZES: u32 = 0x7f;

pub fn ddw_page_shift_ok(shift: u32) -> bool {
    matches!(shift, 12 | 16 | 24 | 25 | 26 | 27 | 28)
}

/// ibm,create-pe-dma-window(page_shift, window_shift) for memory `mem_size`:
/// the window must cover the memory (Linux asks for 2^ceil(log2(max RAM))).
pub fn ddw_request_ok(page_shift: u32, window_shift: u32, mem_size: u64) -> bool {
    ddw_page_shift_ok(page_shift)
        && (page_shift..=59).contains(&window_shift)
        && (1u64 << window_shift) >= mem_size
}

/// Interrupt numbers (guest XIVE LISNs and XICS sources) of passed-through
/// functions' MSIs start here (VIO devices' start at 0x1000, IPIs at 0).
pub const MSI_LISN_BASE: u32 = 0x2000;
/// Most MSI vectors one function is given (a block of host MSIs and guest
/// LISNs reserved when the partition is created).
pub const MAX_VECTORS: u32 = 32;

/// The vectors reserved for a function whose MSI capability offers `msi`
/// messages and whose MSI-X table has `msix` entries. MSI is given one vector
/// (multiple-message MSI would need an aligned block of host MSIs whose low
/// data bits the device ORs in).
pub fn vectors_for(msi: u32, msix: u32) -> u32 {
    msix.max(msi.min(1)).min(MAX_VECTORS)
}

/// The first LISN of each function's block, given each function's reserved
/// vectors in order, or `None` when they would not fit below 2^31 (EISNs and
/// XICS source numbers are 31-bit at most).
pub fn lisn_blocks(reserved: &[u32]) -> Option<alloc::vec::Vec<u32>> {
    let mut next = MSI_LISN_BASE;
    let mut out = alloc::vec::Vec::with_capacity(reserved.len());
    for &n in reserved {
        out.push(next);
        next = next.checked_add(n).filter(|&e| e < 1 << 31)?;
    }
    Some(out)
}

/// The host MSIs of one PHB (`ibm,opal-msi-ranges`: the first global interrupt
/// number and how many), handed out in blocks for the hypervisor's life:
/// block numbers are the PHB's hardware MSI numbers (IVE indices, from 0),
/// the interrupt number is `base + index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsiRange {
    pub phb_id: u64,
    pub base: u32,
    pub count: u32,
    next: u32,
}

impl MsiRange {
    pub fn new(phb_id: u64, base: u32, count: u32) -> Self {
        MsiRange {
            phb_id,
            base,
            count,
            next: 0,
        }
    }

    /// `n` consecutive hardware MSI numbers, the first returned.
    pub fn alloc(&mut self, n: u32) -> Option<u32> {
        let end = self.next.checked_add(n).filter(|&e| e <= self.count)?;
        let first = self.next;
        self.next = end;
        Some(first)
    }
}

/// PAPR interrupt types ibm,change-msi reports in its fourth return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiKind {
    Msi = 1,
    MsiX = 2,
}

/// What ibm,change-msi does (decided by [`change_msi`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeMsi {
    /// Number 0: every vector released (the device's messages cleared).
    Release,
    /// `n` vectors of `kind` programmed into the device, numbered from the
    /// function's first LISN.
    Program(MsiKind, u32),
    /// More were asked than the function has: nothing changes, the answer is
    /// how many it may ask for (QEMU's answer; Linux asks again with it).
    Fewer(MsiKind, u32),
}

/// ibm,change-msi function codes (Linux `pseries/msi.c`).
pub const CHANGE_MSI_ANY: u32 = 1;
pub const CHANGE_MSI_MSI: u32 = 3;
pub const CHANGE_MSI_MSIX: u32 = 4;

/// ibm,change-msi(function `func`, number `req`) for a function with `msi`
/// MSI messages, `msix` MSI-X entries and `reserved` vectors: function 1
/// picks MSI when present, else MSI-X (QEMU); 3 and 4 ask for one of them;
/// anything else, or a kind the function lacks, is a parameter error (-3);
/// a kind present but given no vector a hardware error (-1).
pub fn change_msi(
    func: u32,
    req: u32,
    msi: u32,
    msix: u32,
    reserved: u32,
) -> Result<ChangeMsi, i32> {
    use crate::papr::rtas::{RTAS_HARDWARE_ERROR, RTAS_PARAMETER_ERROR};
    let kind = match func {
        CHANGE_MSI_ANY if msi > 0 => MsiKind::Msi,
        CHANGE_MSI_ANY if msix > 0 => MsiKind::MsiX,
        CHANGE_MSI_MSI if msi > 0 => MsiKind::Msi,
        CHANGE_MSI_MSIX if msix > 0 => MsiKind::MsiX,
        _ => return Err(RTAS_PARAMETER_ERROR),
    };
    if req == 0 {
        return Ok(ChangeMsi::Release);
    }
    let max = match kind {
        MsiKind::Msi => msi.min(1),
        MsiKind::MsiX => msix,
    }
    .min(reserved);
    if max == 0 {
        return Err(RTAS_HARDWARE_ERROR);
    }
    if req > max {
        return Ok(ChangeMsi::Fewer(kind, max));
    }
    Ok(ChangeMsi::Program(kind, req))
}

/// ibm,query-interrupt-source-number(index): the interrupt number of vector
/// `index` of a function given `granted` vectors from `first_lisn`; a vector
/// it does not have is a hardware error (-1), as QEMU answers.
pub fn query_source(first_lisn: u32, granted: u32, index: u32) -> Result<u32, i32> {
    if index >= granted {
        return Err(crate::papr::rtas::RTAS_HARDWARE_ERROR);
    }
    Ok(first_lisn + index)
}

/// An MSI-X table entry (16 bytes, little-endian words): message address low,
/// high, data, vector control (bit 0 masks).
pub fn msix_entry(address: u64, data: u32, masked: bool) -> [u32; 4] {
    [
        address as u32,
        (address >> 32) as u32,
        data,
        u32::from(masked),
    ]
}

/// ESB offsets of the host source the hypervisor polls: a load at 0xE00 sets
/// PQ to 10 and returns the old PQ; with PQ held at 10 a trigger only sets Q
/// (11) and never notifies the interrupt controller.
pub const ESB_SET_PQ_10: u64 = 0xe00;
pub const ESB_SET_PQ_01: u64 = 0xd00;
/// A load at 0xC00 sets PQ to 00: the EOI of a routed source (it notifies
/// again on the next trigger), returning the old PQ.
pub const ESB_SET_PQ_00: u64 = 0xc00;
/// A load at 0x800 reads PQ without changing it.
pub const ESB_GET_PQ: u64 = 0x800;

/// Whether an ESB's old PQ (from the set-PQ-10 load) says the source fired
/// since the last poll (Q set). All ones is an invalid source.
pub fn esb_fired(old_pq: u64) -> bool {
    old_pq != u64::MAX && old_pq & 1 != 0
}

/// The guest's view of a function's MSI-X table (its pages are not mapped
/// into the partition): the little-endian bytes the guest reads and writes.
/// Messages it writes stay here (the device keeps the host messages
/// ibm,change-msi gave it); the mask bit of a vector's control word is passed
/// on for programmed vectors by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsixShadow {
    bytes: alloc::vec::Vec<u8>,
}

impl MsixShadow {
    /// `entries` entries, each masked with no message (the reset state).
    pub fn new(entries: u32) -> Self {
        let mut s = MsixShadow {
            bytes: alloc::vec![0; 16 * entries as usize],
        };
        for i in 0..entries {
            s.set(i, [0, 0, 0, 1]);
        }
        s
    }

    /// Entry `i` as four words (address low, high, data, vector control).
    pub fn set(&mut self, i: u32, words: [u32; 4]) {
        for (k, w) in words.iter().enumerate() {
            let at = 16 * i as usize + 4 * k;
            if let Some(b) = self.bytes.get_mut(at..at + 4) {
                b.copy_from_slice(&w.to_le_bytes());
            }
        }
    }

    pub fn vector_control(&self, i: u32) -> Option<u32> {
        let at = 16 * i as usize + 12;
        let b = self.bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The guest's view after a function reset that left vectors programmed
    /// (a guest FLR, ibm,set-slot-reset): every entry masked, as the reset
    /// left the device's, the programmed ones (`messages`, vector 0 first)
    /// showing their host message. Returns what the device's entries must
    /// get back (the reset cleared them to address 0, data 0): the
    /// programmed vectors' host messages, masked, at most one per entry.
    pub fn reset_programmed(&mut self, messages: &[(u64, u32)]) -> alloc::vec::Vec<[u32; 4]> {
        let entries = self.bytes.len() / 16;
        for i in 0..entries {
            self.set(i as u32, [0, 0, 0, 1]);
        }
        messages
            .iter()
            .take(entries)
            .enumerate()
            .map(|(i, &(address, data))| {
                let e = msix_entry(address, data, true);
                self.set(i as u32, e);
                e
            })
            .collect()
    }

    /// Whether `size` bytes at table offset `off` are inside the table and
    /// naturally aligned (1, 2, 4 or 8 bytes).
    pub fn covers(&self, off: u64, size: u64) -> bool {
        matches!(size, 1 | 2 | 4 | 8)
            && off.is_multiple_of(size)
            && off
                .checked_add(size)
                .is_some_and(|e| e <= self.bytes.len() as u64)
    }

    /// The bytes at `off` as a big-endian bus-order value (what a load
    /// returns before the guest's byte order is applied).
    pub fn read(&self, off: u64, size: u64) -> Option<u64> {
        if !self.covers(off, size) {
            return None;
        }
        let at = off as usize;
        Some(
            self.bytes[at..at + size as usize]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }

    /// Stores big-endian bus-order `value`; the entries whose vector control
    /// word it touched (first, last), or `None` when outside the table.
    pub fn write(&mut self, off: u64, size: u64, value: u64) -> Option<Option<(u32, u32)>> {
        if !self.covers(off, size) {
            return None;
        }
        let at = off as usize;
        for i in 0..size as usize {
            self.bytes[at + i] = (value >> (8 * (size as usize - 1 - i))) as u8;
        }
        let (first, last) = ((off / 16) as u32, ((off + size - 1) / 16) as u32);
        let touches_ctl = (first..=last).any(|e| {
            let ctl = 16 * u64::from(e) + 12;
            off < ctl + 4 && off + size > ctl
        });
        Some(touches_ctl.then_some((first, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> VFunction {
        VFunction::new(
            Bdf::new(1, 0, 0),
            &[
                VBar {
                    index: 1,
                    size: 0x1000,
                    is_64: false,
                    prefetchable: false,
                    pci: 0xc000_1000,
                },
                VBar {
                    index: 4,
                    size: 0x4000,
                    is_64: true,
                    prefetchable: true,
                    pci: 0x1_c001_0000,
                },
            ],
        )
    }

    #[test]
    fn bars_read_back_fixed_and_sizing_is_emulated() {
        let mut v = f();
        assert_eq!(
            v.read(0x14, Width::Word),
            Ok(ReadAction::Value(0xc000_1000))
        );
        assert_eq!(
            v.read(0x20, Width::Word),
            Ok(ReadAction::Value(0xc001_000c))
        );
        assert_eq!(v.read(0x24, Width::Word), Ok(ReadAction::Value(1)));
        assert_eq!(v.read(0x10, Width::Word), Ok(ReadAction::Value(0)));
        assert_eq!(v.read(0x21, Width::Byte), Ok(ReadAction::Value(0x00)));
        assert_eq!(v.read(0x22, Width::Half), Ok(ReadAction::Value(0xc001)));
        // Sizing: all ones, read the mask, write the old value back.
        assert_eq!(v.write(0x14, Width::Word, !0), Ok(WriteAction::Absorb));
        assert_eq!(
            v.read(0x14, Width::Word),
            Ok(ReadAction::Value(0xffff_f000))
        );
        assert_eq!(v.write(0x20, Width::Word, !0), Ok(WriteAction::Absorb));
        assert_eq!(v.write(0x24, Width::Word, !0), Ok(WriteAction::Absorb));
        assert_eq!(
            v.read(0x20, Width::Word),
            Ok(ReadAction::Value(0xffff_c00c))
        );
        assert_eq!(
            v.read(0x24, Width::Word),
            Ok(ReadAction::Value(0xffff_ffff))
        );
        assert_eq!(
            v.write(0x14, Width::Word, 0xc000_1000),
            Ok(WriteAction::Absorb)
        );
        assert_eq!(
            v.write(0x20, Width::Word, 0xc001_000c),
            Ok(WriteAction::Absorb)
        );
        assert_eq!(v.write(0x24, Width::Word, 1), Ok(WriteAction::Absorb));
        assert_eq!(
            v.read(0x14, Width::Word),
            Ok(ReadAction::Value(0xc000_1000))
        );
        assert_eq!(v.read(0x24, Width::Word), Ok(ReadAction::Value(1)));
        // An unimplemented BAR takes anything and stays 0.
        assert_eq!(
            v.write(0x10, Width::Word, 0x1234_0000),
            Ok(WriteAction::Absorb)
        );
    }

    #[test]
    fn bar_moves_and_partial_writes_are_refused() {
        let mut v = f();
        assert_eq!(
            v.write(0x14, Width::Word, 0xd000_0000),
            Ok(WriteAction::Refuse("BAR move"))
        );
        assert_eq!(
            v.write(0x24, Width::Word, 2),
            Ok(WriteAction::Refuse("BAR move"))
        );
        assert!(matches!(
            v.write(0x16, Width::Half, 0),
            Ok(WriteAction::Refuse(_))
        ));
        assert_eq!(
            v.read(0x14, Width::Word),
            Ok(ReadAction::Value(0xc000_1000))
        );
    }

    #[test]
    fn bus_master_only_with_a_dma_window() {
        let mut v = f();
        assert_eq!(
            v.write(COMMAND, Width::Half, 0x6),
            Ok(WriteAction::Pass(0x2))
        );
        assert_eq!(
            v.write(COMMAND, Width::Word, 0x6),
            Ok(WriteAction::Pass(0x2))
        );
        assert_eq!(v.write(COMMAND, Width::Byte, 0x4), Ok(WriteAction::Pass(0)));
        v.dma_ready = true;
        assert_eq!(
            v.write(COMMAND, Width::Half, 0x6),
            Ok(WriteAction::Pass(0x6))
        );
    }

    #[test]
    fn rom_msi_and_extended_space() {
        let mut v = f();
        v.read_only.push((0x50, 12)).unwrap();
        assert_eq!(v.read(ROM, Width::Word), Ok(ReadAction::Value(0)));
        assert_eq!(v.write(ROM, Width::Word, !0), Ok(WriteAction::Absorb));
        assert!(matches!(
            v.write(0x52, Width::Half, 0x8000),
            Ok(WriteAction::Refuse(_))
        ));
        assert_eq!(v.read(0x52, Width::Half), Ok(ReadAction::Pass));
        assert!(matches!(
            v.write(0x100, Width::Word, 1),
            Ok(WriteAction::Refuse(_))
        ));
        assert_eq!(v.read(0x100, Width::Word), Ok(ReadAction::Pass));
        assert_eq!(v.write(0x60, Width::Word, 5), Ok(WriteAction::Pass(5)));
        assert!(v.read(0x13, Width::Half).is_err());
        assert!(v.write(0xffe, Width::Word, 0).is_err());
        assert!(v.read(0x1000, Width::Byte).is_err());
    }

    #[test]
    fn a_guest_flr_is_the_hypervisors() {
        let mut v = f();
        v.pcie_cap = Some(0x40);
        assert_eq!(v.write(0x48, Width::Half, 0x8000), Ok(WriteAction::Reset));
        assert_eq!(v.write(0x49, Width::Byte, 0x80), Ok(WriteAction::Reset));
        assert_eq!(v.write(0x48, Width::Word, 0x8000), Ok(WriteAction::Reset));
        assert_eq!(
            v.write(0x48, Width::Half, 0x0010),
            Ok(WriteAction::Pass(0x10))
        );
        assert_eq!(
            v.write(0x4a, Width::Half, 0x8000),
            Ok(WriteAction::Pass(0x8000))
        );
        v.pcie_cap = None;
        assert_eq!(
            v.write(0x48, Width::Half, 0x8000),
            Ok(WriteAction::Pass(0x8000))
        );
    }

    #[test]
    fn config_addresses_and_liobns() {
        let (bdf, reg) = decode_config_addr(0x3001_0804);
        assert_eq!(bdf, Bdf::new(1, 1, 0));
        assert_eq!(reg, 0x304);
        // As Linux's rtas_config_addr(bus 0, devfn 0, 0x100) encodes it: the
        // extended register's bits 11:8 in the top nibble, not bits 27:24.
        assert_eq!(decode_config_addr(0x1000_0000), (Bdf::new(0, 0, 0), 0x100));
        assert_eq!(decode_config_addr(0x0f00_0010).1, 0x10);
        assert_eq!(config_addr(Bdf::new(1, 0, 0)), 0x1_0000);
        assert_eq!(phb_of_buid(buid(3)), Some(3));
        assert_eq!(phb_of_buid(1), None);
        assert_eq!(phb_of_buid(BUID_BASE + 0x100), None);
        assert_eq!(parse_liobn(liobn(1, 0, 1)), Some((1, 0, 1)));
        assert_eq!(parse_liobn(liobn(2, 3, 0)), Some((2, 3, 0)));
        assert_eq!(liobn(2, 3, 0), 0x7000_0206);
        assert_eq!(parse_liobn(0x1000_0001), None);
    }

    fn call(args: &[u32], nret: usize) -> RtasArgs {
        let mut a = RtasArgs {
            token: 0,
            nargs: args.len(),
            nret,
            args: [0; crate::papr::rtas::MAX_WORDS],
            rets: [0; crate::papr::rtas::MAX_WORDS],
        };
        a.args[..args.len()].copy_from_slice(args);
        a
    }

    #[test]
    fn function_arguments_of_pci_rtas_calls() {
        let b = buid(3);
        let (hi, lo) = ((b >> 32) as u32, b as u32);
        // Bus 1, device 2, function 3, register 0x104 (extended bits 31:28).
        let addr = 0x1000_0000 | (1 << 16) | (2 << 11) | (3 << 8) | 0x04;
        let want = CalledFunction {
            phb_id: 3,
            bdf: Bdf((1 << 8) | (2 << 3) | 3),
            reg: 0x104,
        };
        assert_eq!(
            function_args(&call(&[addr, hi, lo, 4], 2), 4, 2..=2),
            Ok(want)
        );
        // Counts: one argument short or over, returns outside the range.
        let counts = Err(ArgsError::Counts);
        assert_eq!(function_args(&call(&[addr, hi, lo], 2), 4, 2..=2), counts);
        assert_eq!(
            function_args(&call(&[addr, hi, lo, 4, 0], 2), 4, 2..=2),
            counts
        );
        assert_eq!(
            function_args(&call(&[addr, hi, lo, 4], 1), 4, 2..=2),
            counts
        );
        assert_eq!(
            function_args(&call(&[addr, hi, lo, 4], 5), 4, 3..=4),
            counts
        );
        assert!(function_args(&call(&[addr, hi, lo, 4], 4), 4, 3..=4).is_ok());
        assert!(function_args(&call(&[addr, hi, lo], 9), 3, 5..=usize::MAX).is_ok());
        // A BUID that is not a logical PHB's (hi and lo swapped, or past the last).
        let not = Err(ArgsError::NotItsFunction);
        assert_eq!(function_args(&call(&[addr, lo, hi], 1), 3, 1..=1), not);
        let past = buid(0x100);
        let far = [addr, (past >> 32) as u32, past as u32];
        assert_eq!(function_args(&call(&far, 1), 3, 1..=1), not);
        // The EEH calls pass the PE's config address with register bits set
        // or not: the same function.
        let pe = function_args(&call(&[addr & 0x00ff_ff00, hi, lo], 1), 3, 1..=1);
        assert_eq!(pe.map(|f| (f.phb_id, f.bdf)), Ok((want.phb_id, want.bdf)));
    }

    #[test]
    fn eeh_states_from_opal_freeze_states() {
        assert_eq!(eeh_state(0), 0);
        assert_eq!(eeh_state(1), 2);
        assert_eq!(eeh_state(2), 4);
        assert_eq!(eeh_state(3), 2);
        assert_eq!(eeh_state(4), 1);
        assert_eq!(eeh_state(5), 5);
        assert_eq!(eeh_state(6), 5);
        assert_eq!(EehOption::from_arg(3), Some(EehOption::ThawDma));
        assert_eq!(EehOption::from_arg(4), None);
    }

    #[test]
    fn host_tces_keep_permissions_and_faults() {
        assert_eq!(host_tce(0x5000 | 3, 0x2000_0000), 0x2000_5003);
        assert_eq!(host_tce(0x5000 | 1, 0x2000_0000), 0x2000_5001);
        assert_eq!(host_tce(0x5000, 0x2000_0000), 0);
        assert_eq!(host_tce(0, 0x2000_0000), 0);
    }

    #[test]
    fn ddw_maps_exactly_the_partition() {
        let w = ddw_for(0x1_0000_0000, 256 << 20).unwrap();
        assert_eq!(w.base, (1 << 59) | 0x1_0000_0000);
        assert_eq!(w.guest_addr(w.base, 8), Some(0));
        assert_eq!(
            w.guest_addr(w.base + (256 << 20) - 8, 8),
            Some((256 << 20) - 8)
        );
        assert_eq!(w.guest_addr(w.base + (256 << 20) - 4, 8), None);
        assert_eq!(w.guest_addr(w.base - 1, 1), None);
        assert_eq!(w.guest_addr(u64::MAX, 2), None);
        assert_eq!(ddw_for(0x1_0010_0000, 256 << 20), Err(DdwError::Misaligned));
        assert_eq!(ddw_for(0x1_0000_0000, 17 << 20), Err(DdwError::Misaligned));
        assert_eq!(ddw_for(1 << 50, 16 << 20), Err(DdwError::TooHigh));
        // Identity TCEs only.
        assert!(w.check_identity_tce(w.base + 0x10000, 0x10003, 0x10000));
        assert!(!w.check_identity_tce(w.base + 0x10000, 0x20003, 0x10000));
        assert!(!w.check_identity_tce(w.base + (256 << 20), (256 << 20) | 3, 0x10000));
        assert!(w.check_identity_tce(w.base, 0, 0x10000));
        assert!(ddw_request_ok(16, 28, 256 << 20));
        assert!(!ddw_request_ok(16, 27, 256 << 20));
        assert!(!ddw_request_ok(13, 28, 256 << 20));
        assert!(!ddw_request_ok(16, 60, 256 << 20));
    }

    #[test]
    fn msi_vectors_lisns_and_host_blocks() {
        assert_eq!(vectors_for(0, 2), 2);
        assert_eq!(vectors_for(8, 0), 1);
        assert_eq!(vectors_for(1, 65), MAX_VECTORS);
        assert_eq!(vectors_for(0, 0), 0);
        assert_eq!(
            lisn_blocks(&[2, 0, 32]),
            Some(alloc::vec![0x2000, 0x2002, 0x2002])
        );
        assert_eq!(lisn_blocks(&[u32::MAX]), None);
        let mut r = MsiRange::new(1, 0x1000, 40);
        assert_eq!(r.alloc(32), Some(0));
        assert_eq!(r.alloc(8), Some(32));
        assert_eq!(r.alloc(1), None);
        assert_eq!(r.alloc(u32::MAX), None);
    }

    #[test]
    fn change_msi_arguments() {
        use crate::papr::rtas::{RTAS_HARDWARE_ERROR, RTAS_PARAMETER_ERROR};
        // virtio-blk: MSI-X only, 2 entries.
        assert_eq!(
            change_msi(1, 2, 0, 2, 2),
            Ok(ChangeMsi::Program(MsiKind::MsiX, 2))
        );
        assert_eq!(
            change_msi(4, 1, 0, 2, 2),
            Ok(ChangeMsi::Program(MsiKind::MsiX, 1))
        );
        assert_eq!(
            change_msi(4, 3, 0, 2, 2),
            Ok(ChangeMsi::Fewer(MsiKind::MsiX, 2))
        );
        assert_eq!(change_msi(4, 0, 0, 2, 2), Ok(ChangeMsi::Release));
        assert_eq!(change_msi(3, 1, 0, 2, 2), Err(RTAS_PARAMETER_ERROR));
        // Unknown functions (0 query, 2 reset, 5 32-bit MSI, garbage).
        for func in [0, 2, 5, 6, u32::MAX] {
            assert_eq!(change_msi(func, 1, 1, 2, 2), Err(RTAS_PARAMETER_ERROR));
        }
        // MSI preferred by function 1, one vector at most.
        assert_eq!(
            change_msi(1, 1, 4, 8, 8),
            Ok(ChangeMsi::Program(MsiKind::Msi, 1))
        );
        assert_eq!(
            change_msi(3, 4, 4, 8, 8),
            Ok(ChangeMsi::Fewer(MsiKind::Msi, 1))
        );
        // More entries than reserved: the reservation caps it.
        assert_eq!(
            change_msi(4, 64, 0, 65, 32),
            Ok(ChangeMsi::Fewer(MsiKind::MsiX, 32))
        );
        assert_eq!(change_msi(4, 1, 0, 2, 0), Err(RTAS_HARDWARE_ERROR));
        assert_eq!(
            change_msi(4, u32::MAX, 0, 2, 2),
            Ok(ChangeMsi::Fewer(MsiKind::MsiX, 2))
        );
    }

    #[test]
    fn query_source_numbers() {
        assert_eq!(query_source(0x2000, 2, 0), Ok(0x2000));
        assert_eq!(query_source(0x2000, 2, 1), Ok(0x2001));
        assert_eq!(
            query_source(0x2000, 2, 2),
            Err(crate::papr::rtas::RTAS_HARDWARE_ERROR)
        );
        assert_eq!(
            query_source(0x2000, 0, 0),
            Err(crate::papr::rtas::RTAS_HARDWARE_ERROR)
        );
        assert_eq!(
            query_source(0x2000, 2, u32::MAX),
            Err(crate::papr::rtas::RTAS_HARDWARE_ERROR)
        );
    }

    #[test]
    fn msix_entries_and_esb_polling() {
        assert_eq!(
            msix_entry((1 << 60) | 0x1230, 0x1f, false),
            [0x1230, 0x1000_0000, 0x1f, 0]
        );
        assert_eq!(msix_entry(0, 0, true)[3], 1);
        assert!(esb_fired(0b11));
        assert!(!esb_fired(0b10));
        assert!(!esb_fired(0b00));
        assert!(!esb_fired(u64::MAX));
    }

    #[test]
    fn msi_control_bits_are_the_guests() {
        let mut v = f();
        v.msix_cap = Some(0x40);
        v.msi_cap = Some(0x50);
        let _ = v.read_only.push((0x40, 12));
        let _ = v.read_only.push((0x50, 24));
        assert_eq!(
            v.write(0x42, Width::Half, 0xc000),
            Ok(WriteAction::Pass(0xc000))
        );
        assert_eq!(
            v.write(0x43, Width::Byte, 0x80),
            Ok(WriteAction::Pass(0x80))
        );
        assert!(matches!(
            v.write(0x40, Width::Word, 0x8000_0000),
            Ok(WriteAction::Refuse(_))
        ));
        assert!(matches!(
            v.write(0x44, Width::Word, 0),
            Ok(WriteAction::Refuse(_))
        ));
        assert_eq!(
            v.write(0x52, Width::Half, 0x71),
            Ok(WriteAction::MsiEnable(true))
        );
        assert_eq!(
            v.write(0x52, Width::Byte, 0),
            Ok(WriteAction::MsiEnable(false))
        );
        assert!(matches!(
            v.write(0x54, Width::Word, 0x1234),
            Ok(WriteAction::Refuse(_))
        ));
    }

    #[test]
    fn msix_shadow_after_a_reset_keeps_programmed_messages_masked() {
        let mut t = MsixShadow::new(4);
        // Vector 1 programmed and unmasked; the guest wrote its own message
        // into entry 3.
        t.set(0, msix_entry(0x1000_0000_0000_0000, 0, false));
        t.set(1, msix_entry(0x1000_0000_0000_0010, 1, false));
        t.set(3, msix_entry(0xfee0_0000, 0x55, false));
        let hw = t.reset_programmed(&[(0x1000_0000_0000_0000, 0), (0x1000_0000_0000_0010, 1)]);
        assert_eq!(
            hw,
            [
                msix_entry(0x1000_0000_0000_0000, 0, true),
                msix_entry(0x1000_0000_0000_0010, 1, true),
            ]
        );
        for i in 0..4 {
            assert_eq!(t.vector_control(i), Some(1), "entry {i} masked");
        }
        // The programmed ones read back their host message, the others none.
        assert_eq!(t.read(16, 4), Some(u64::from(0x10u32.swap_bytes())));
        assert_eq!(t.read(16 + 8, 4), Some(u64::from(1u32.swap_bytes())));
        assert_eq!(t.read(3 * 16, 8), Some(0));
        assert_eq!(t.read(3 * 16 + 8, 4), Some(0));
        // A guest unmask after the reset is seen as a control change.
        assert_eq!(t.write(16 + 12, 4, 0), Some(Some((1, 1))));
        assert_eq!(t.vector_control(1), Some(0));
        // Never more device entries than the table has.
        let mut small = MsixShadow::new(1);
        assert_eq!(small.reset_programmed(&[(1, 1), (2, 2)]).len(), 1);
        assert_eq!(MsixShadow::new(2).reset_programmed(&[]).len(), 0);
    }

    #[test]
    fn msix_shadow_reads_writes_and_mask_changes() {
        let mut t = MsixShadow::new(2);
        assert_eq!(t.vector_control(1), Some(1));
        assert_eq!(t.vector_control(2), None);
        // A 4-byte load of vector control: bytes 01 00 00 00 on the bus.
        assert_eq!(t.read(12, 4), Some(0x0100_0000));
        t.set(0, msix_entry((1 << 60) | 0x10, 3, false));
        assert_eq!(t.read(0, 8), Some(0x1000_0000_0000_0010u64.swap_bytes()));
        assert_eq!(t.read(8, 4), Some(0x0300_0000));
        // Address writes stay in the shadow and name no vector control.
        assert_eq!(t.write(16, 4, 0x1122_3344), Some(None));
        assert_eq!(t.read(16, 4), Some(0x1122_3344));
        // Masking entry 1 (little-endian 1 = bus 0x01000000).
        assert_eq!(t.write(28, 4, 0x0100_0000), Some(Some((1, 1))));
        assert_eq!(t.vector_control(1), Some(1));
        assert_eq!(t.write(24, 8, 0), Some(Some((1, 1))));
        assert_eq!(t.vector_control(1), Some(0));
        assert_eq!(t.write(31, 1, 1), Some(Some((1, 1))));
        assert_eq!(t.vector_control(1), Some(0x0100_0000));
        // Outside, misaligned, odd sizes.
        assert_eq!(t.read(32, 4), None);
        assert_eq!(t.read(2, 4), None);
        assert_eq!(t.read(0, 3), None);
        assert_eq!(t.write(u64::MAX - 3, 4, 0), None);
        assert_eq!(t.write(30, 4, 0), None);
    }
}
