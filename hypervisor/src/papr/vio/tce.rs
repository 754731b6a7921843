//! TCE (translation control entry) tables: the DMA windows of sPAPR devices, and
//! the four hcalls a guest maps them with (LoPAR 14.5.4.2 "Translation Control
//! Entry support"; numbers from Linux `hvcall.h`).
//!
//! One [`TceTable`] per LIOBN (logical I/O bus number). A window covers bus
//! addresses (IOBAs) `[bus_offset, bus_offset + size)` in pages of
//! `1 << page_shift` bytes; entry `i` maps the page at `bus_offset + i << shift`.
//! A TCE is the guest real page address with bit 0 "device may read" (the device
//! reads guest memory: a DMA to the device) and bit 1 "device may write". Zero
//! (or any value without those bits) is a fault.
//!
//! The same table serves VIO devices (one window of 256 MiB at bus address 0, 4K
//! pages, LIOBN = unit address, as QEMU's `SPAPR_VIO_LIOBN`) and the 32-bit
//! window of a virtual PHB (any offset, size and page shift). The API:
//!
//! - hcalls: [`TceTable::h_put_tce`], [`TceTable::h_get_tce`],
//!   [`TceTable::h_stuff_tce`], and H_PUT_TCE_INDIRECT as
//!   [`check_put_indirect`] (argument checks before the list is read) then
//!   [`TceTable::h_put_tce_list`] (the entries, each validated before any is
//!   stored). Errors are the codes KVM's `book3s_64_vio.c` returns (QEMU's
//!   `spapr_iommu.c` answers the same for these cases); the binding finds the
//!   table by LIOBN and answers H_PARAMETER for an unknown one, as QEMU.
//! - DMA by the hypervisor on behalf of a device: [`TceTable::translate`] splits
//!   `[ioba, ioba + len)` into guest-real pieces after checking every page's
//!   permission; [`dma_read`] / [`dma_write`] copy through a [`DmaMemory`], which
//!   itself refuses anything outside the partition. Every TCE was checked against
//!   the partition's memory size when it was stored, and the binding's memory
//!   access checks it again, so a device access never leaves the partition.
//! - [`TceTable::clear`]: reboot (QEMU `spapr_tce_reset`).
//!
//! Invariant: every stored entry either has no R/W bit, or names a page that lay
//! inside `[0, mem_size)` of the partition and has no bits outside
//! page-mask|R|W.
use alloc::vec::Vec;

use crate::papr::hcall::HcallError;

pub const H_GET_TCE: u64 = 0x1c;
pub const H_PUT_TCE: u64 = 0x20;
pub const H_STUFF_TCE: u64 = 0x138;
pub const H_PUT_TCE_INDIRECT: u64 = 0x13c;

/// The device may read the page (DMA from memory), `TCE_PCI_READ`.
pub const TCE_READ: u64 = 0x1;
/// The device may write the page (DMA to memory), `TCE_PCI_WRITE`.
pub const TCE_WRITE: u64 = 0x2;
/// At most this many TCEs per H_PUT_TCE_INDIRECT (one 4K page of BE64 entries).
pub const MAX_INDIRECT: u64 = 512;
/// The TCE list of H_PUT_TCE_INDIRECT is a 4K-aligned guest real address.
pub const INDIRECT_LIST_ALIGN: u64 = 4096;

/// Direction of a device access, as the TCE permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaDir {
    /// The device reads guest memory (needs [`TCE_READ`]).
    FromGuest,
    /// The device writes guest memory (needs [`TCE_WRITE`]).
    ToGuest,
}

impl DmaDir {
    const fn bit(self) -> u64 {
        match self {
            DmaDir::FromGuest => TCE_READ,
            DmaDir::ToGuest => TCE_WRITE,
        }
    }
}

/// Why a device access through a window failed (the device model decides what
/// the guest sees, usually H_PARAMETER or a dropped frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The range leaves the window (or wraps).
    OutOfWindow,
    /// A page of the range has no TCE with the needed permission.
    NoPermission,
    /// The guest real range is not the partition's memory (the binding refused).
    BadGuestReal,
}

/// Why a table could not be created (a hypervisor configuration bug or no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TceConfigError {
    /// Page shift outside 12..=30, or a window not a whole number of pages.
    BadGeometry,
    /// The hypervisor heap has no room for the entries.
    NoMemory,
}

/// A device's view of guest memory for DMA (the binding implements it with the
/// partition's bounds-checked copies). Each returns `None` when any byte of the
/// range lies outside the partition.
pub trait DmaMemory {
    fn read(&self, gra: u64, out: &mut [u8]) -> Option<()>;
    fn write(&self, gra: u64, data: &[u8]) -> Option<()>;
}

/// One DMA window and its entries (kept in hypervisor memory, never in the guest).
#[derive(Clone, Debug)]
pub struct TceTable {
    liobn: u32,
    bus_offset: u64,
    page_shift: u32,
    /// Size of the partition's memory: every TCE with R or W names a page below.
    mem_size: u64,
    entries: Vec<u64>,
}

impl TceTable {
    /// A window of `window_size` bytes at bus address `bus_offset`, pages of
    /// `1 << page_shift` bytes, for a partition with `mem_size` bytes of memory;
    /// every entry starts as a fault.
    pub fn new(
        liobn: u32,
        bus_offset: u64,
        window_size: u64,
        page_shift: u32,
        mem_size: u64,
    ) -> Result<TceTable, TceConfigError> {
        if !(12..=30).contains(&page_shift)
            || window_size == 0
            || !window_size.is_multiple_of(1 << page_shift)
            || !bus_offset.is_multiple_of(1 << page_shift)
            || bus_offset.checked_add(window_size).is_none()
        {
            return Err(TceConfigError::BadGeometry);
        }
        let n = (window_size >> page_shift) as usize;
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(n)
            .map_err(|_| TceConfigError::NoMemory)?;
        entries.resize(n, 0);
        Ok(TceTable {
            liobn,
            bus_offset,
            page_shift,
            mem_size,
            entries,
        })
    }

    pub fn liobn(&self) -> u32 {
        self.liobn
    }

    pub fn bus_offset(&self) -> u64 {
        self.bus_offset
    }

    /// Window size in bytes (what `ibm,my-dma-window` states).
    pub fn window_size(&self) -> u64 {
        (self.entries.len() as u64) << self.page_shift
    }

    pub fn page_shift(&self) -> u32 {
        self.page_shift
    }

    fn page_mask(&self) -> u64 {
        (1u64 << self.page_shift) - 1
    }

    /// Index of the first of `npages` entries from `ioba` (KVM
    /// `kvmppc_ioba_validate`): page-aligned, inside the window, no wrap.
    fn index(&self, ioba: u64, npages: u64) -> Result<usize, HcallError> {
        if ioba & self.page_mask() != 0 {
            return Err(HcallError::Parameter);
        }
        let rel = ioba
            .checked_sub(self.bus_offset)
            .ok_or(HcallError::Parameter)?
            >> self.page_shift;
        let end = rel.checked_add(npages).ok_or(HcallError::Parameter)?;
        if end > self.entries.len() as u64 {
            return Err(HcallError::Parameter);
        }
        Ok(rel as usize)
    }

    /// A TCE the guest may store (KVM `kvmppc_tce_validate`): without R/W it is a
    /// fault and anything goes; with them no bits outside page-mask|R|W, and the
    /// page inside the partition's memory.
    fn validate(&self, tce: u64) -> Result<(), HcallError> {
        if tce & (TCE_READ | TCE_WRITE) == 0 {
            return Ok(());
        }
        let gra = tce & !(TCE_READ | TCE_WRITE);
        if gra & self.page_mask() != 0 {
            return Err(HcallError::Parameter);
        }
        match gra.checked_add(1 << self.page_shift) {
            Some(end) if end <= self.mem_size => Ok(()),
            _ => Err(HcallError::Parameter),
        }
    }

    /// H_PUT_TCE(liobn, ioba, tce).
    pub fn h_put_tce(&mut self, ioba: u64, tce: u64) -> Result<(), HcallError> {
        let i = self.index(ioba, 1)?;
        self.validate(tce)?;
        self.entries[i] = tce;
        Ok(())
    }

    /// H_GET_TCE(liobn, ioba) -> the entry.
    pub fn h_get_tce(&self, ioba: u64) -> Result<u64, HcallError> {
        Ok(self.entries[self.index(ioba, 1)?])
    }

    /// H_STUFF_TCE(liobn, ioba, value, npages): `value` must grant nothing
    /// (KVM: R or W set is H_PARAMETER); Linux unmaps with 0.
    pub fn h_stuff_tce(&mut self, ioba: u64, value: u64, npages: u64) -> Result<(), HcallError> {
        let i = self.index(ioba, npages)?;
        if value & (TCE_READ | TCE_WRITE) != 0 {
            return Err(HcallError::Parameter);
        }
        self.entries[i..i + npages as usize].fill(value);
        Ok(())
    }

    /// H_PUT_TCE_INDIRECT's entries (already read, host order) at `ioba`: all are
    /// validated before any is stored, so a bad list changes nothing (KVM).
    pub fn h_put_tce_list(&mut self, ioba: u64, tces: &[u64]) -> Result<(), HcallError> {
        let i = self.index(ioba, tces.len() as u64)?;
        for &t in tces {
            self.validate(t)?;
        }
        self.entries[i..i + tces.len()].copy_from_slice(tces);
        Ok(())
    }

    /// Every entry back to a fault (partition reboot; QEMU `spapr_tce_reset`).
    pub fn clear(&mut self) {
        self.entries.fill(0);
    }

    /// Splits `[ioba, ioba + len)` into guest real pieces `(gra, len)`, after
    /// checking every page grants `dir`. Nothing is returned unless all of it
    /// does.
    pub fn translate(&self, ioba: u64, len: u64, dir: DmaDir) -> Result<DmaPieces<'_>, DmaError> {
        let end = ioba.checked_add(len).ok_or(DmaError::OutOfWindow)?;
        if ioba < self.bus_offset || end > self.bus_offset + self.window_size() {
            return Err(DmaError::OutOfWindow);
        }
        if len > 0 {
            let first = (ioba - self.bus_offset) >> self.page_shift;
            let last = (end - 1 - self.bus_offset) >> self.page_shift;
            for i in first..=last {
                if self.entries[i as usize] & dir.bit() == 0 {
                    return Err(DmaError::NoPermission);
                }
            }
        }
        Ok(DmaPieces {
            table: self,
            ioba,
            left: len,
        })
    }
}

/// Guest real pieces of a checked range, each inside one TCE page.
pub struct DmaPieces<'a> {
    table: &'a TceTable,
    ioba: u64,
    left: u64,
}

impl Iterator for DmaPieces<'_> {
    /// (guest real address, length)
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.left == 0 {
            return None;
        }
        let t = self.table;
        let mask = t.page_mask();
        let idx = ((self.ioba - t.bus_offset) >> t.page_shift) as usize;
        let tce = *t.entries.get(idx)?;
        let in_page = self.ioba & mask;
        let n = (mask + 1 - in_page).min(self.left);
        let gra = (tce & !mask) | in_page;
        self.ioba += n;
        self.left -= n;
        Some((gra, n))
    }
}

/// Argument checks of H_PUT_TCE_INDIRECT before its list is read (KVM and
/// QEMU): at most 512 entries, the list 4K-aligned.
pub fn check_put_indirect(tce_list: u64, npages: u64) -> Result<(), HcallError> {
    if npages > MAX_INDIRECT || !tce_list.is_multiple_of(INDIRECT_LIST_ALIGN) {
        return Err(HcallError::Parameter);
    }
    Ok(())
}

/// Decodes an H_PUT_TCE_INDIRECT list page (big-endian entries) into `out`.
pub fn decode_tce_list(raw: &[u8], out: &mut [u64]) {
    for (o, c) in out.iter_mut().zip(raw.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *o = u64::from_be_bytes(b);
    }
}

/// Device read of `out.len()` bytes at `ioba` of `table`'s window.
pub fn dma_read(
    table: &TceTable,
    mem: &impl DmaMemory,
    ioba: u64,
    out: &mut [u8],
) -> Result<(), DmaError> {
    let mut at = 0usize;
    for (gra, n) in table.translate(ioba, out.len() as u64, DmaDir::FromGuest)? {
        let n = n as usize;
        mem.read(gra, &mut out[at..at + n])
            .ok_or(DmaError::BadGuestReal)?;
        at += n;
    }
    Ok(())
}

/// Device write of `data` at `ioba` of `table`'s window.
pub fn dma_write(
    table: &TceTable,
    mem: &impl DmaMemory,
    ioba: u64,
    data: &[u8],
) -> Result<(), DmaError> {
    let mut at = 0usize;
    for (gra, n) in table.translate(ioba, data.len() as u64, DmaDir::ToGuest)? {
        let n = n as usize;
        mem.write(gra, &data[at..at + n])
            .ok_or(DmaError::BadGuestReal)?;
        at += n;
    }
    Ok(())
}

/// Device copy from one window to another (the virtual switch's single copy:
/// sender's pages straight into the receiver's), through a bounce of at most
/// `bounce.len()` bytes at a time since the two may belong to different
/// partitions. `src` needs read permission, `dst` write, over the whole range,
/// checked before any byte moves.
#[allow(clippy::too_many_arguments)] // two (table, memory, address) triples and a length
pub fn dma_copy(
    src: &TceTable,
    src_mem: &impl DmaMemory,
    src_ioba: u64,
    dst: &TceTable,
    dst_mem: &impl DmaMemory,
    dst_ioba: u64,
    len: u64,
    bounce: &mut [u8],
) -> Result<(), DmaError> {
    src.translate(src_ioba, len, DmaDir::FromGuest)?;
    dst.translate(dst_ioba, len, DmaDir::ToGuest)?;
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(bounce.len() as u64);
        if n == 0 {
            return Err(DmaError::OutOfWindow);
        }
        let b = &mut bounce[..n as usize];
        dma_read(src, src_mem, src_ioba + done, b)?;
        dma_write(dst, dst_mem, dst_ioba + done, b)?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    const MEM: u64 = 64 << 20;
    const WIN: u64 = 256 << 20;

    /// Guest memory at a host buffer offset by an odd amount (never identity).
    struct Mem(RefCell<Vec<u8>>);

    impl Mem {
        fn new() -> Mem {
            Mem(RefCell::new(alloc::vec![0u8; MEM as usize]))
        }
    }

    impl DmaMemory for Mem {
        fn read(&self, gra: u64, out: &mut [u8]) -> Option<()> {
            let end = gra.checked_add(out.len() as u64)?;
            let m = self.0.borrow();
            out.copy_from_slice(m.get(gra as usize..end as usize)?);
            Some(())
        }
        fn write(&self, gra: u64, data: &[u8]) -> Option<()> {
            let end = gra.checked_add(data.len() as u64)?;
            let mut m = self.0.borrow_mut();
            m.get_mut(gra as usize..end as usize)?.copy_from_slice(data);
            Some(())
        }
    }

    fn vio() -> TceTable {
        TceTable::new(0x7100_0001, 0, WIN, 12, MEM).unwrap()
    }

    #[test]
    fn geometry() {
        assert_eq!(
            TceTable::new(1, 0, WIN, 11, MEM).err(),
            Some(TceConfigError::BadGeometry)
        );
        assert_eq!(
            TceTable::new(1, 0, 4096 + 1, 12, MEM).err(),
            Some(TceConfigError::BadGeometry)
        );
        assert_eq!(
            TceTable::new(1, 0x800, 4096, 12, MEM).err(),
            Some(TceConfigError::BadGeometry)
        );
        let t = TceTable::new(0x8000_0001, 0x8000_0000, 1 << 30, 16, MEM).unwrap();
        assert_eq!(t.window_size(), 1 << 30);
        assert_eq!(t.liobn(), 0x8000_0001);
        assert_eq!(vio().window_size(), WIN);
    }

    #[test]
    fn put_get_checks() {
        let mut t = vio();
        assert_eq!(t.h_put_tce(0x3000, 0x5000 | TCE_READ | TCE_WRITE), Ok(()));
        assert_eq!(t.h_get_tce(0x3000), Ok(0x5003));
        // Unaligned IOBA, outside the window, wrap.
        assert_eq!(t.h_put_tce(0x3008, 0x5003), Err(HcallError::Parameter));
        assert_eq!(t.h_put_tce(WIN, 0x5003), Err(HcallError::Parameter));
        assert_eq!(t.h_get_tce(WIN), Err(HcallError::Parameter));
        assert_eq!(t.h_put_tce(!0xfff, 3), Err(HcallError::Parameter));
        // Bits outside page|R|W, a page beyond the partition.
        assert_eq!(t.h_put_tce(0, 0x5803), Err(HcallError::Parameter));
        assert_eq!(t.h_put_tce(0, MEM | 1), Err(HcallError::Parameter));
        assert_eq!(t.h_put_tce(0, (MEM - 4096) | 1), Ok(()));
        assert_eq!(t.h_put_tce(0, u64::MAX), Err(HcallError::Parameter));
        // Without permission anything may be stored (a poisoned entry).
        assert_eq!(t.h_put_tce(0x1000, 0xdead_0000), Ok(()));
        assert_eq!(t.h_get_tce(0x1000), Ok(0xdead_0000));
        // The failures stored nothing.
        assert_eq!(t.h_get_tce(0x3000), Ok(0x5003));
    }

    #[test]
    fn offset_window() {
        let mut t = TceTable::new(9, 0x1000_0000, 0x10_0000, 16, MEM).unwrap();
        assert_eq!(t.h_put_tce(0x0, 0x1_0001), Err(HcallError::Parameter));
        assert_eq!(t.h_put_tce(0x1000_0000, 0x1_0001), Ok(()));
        assert_eq!(
            t.h_put_tce(0x1000_1000, 0x1_0001),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            t.h_put_tce(0x1000_0000, 0x1_1001),
            Err(HcallError::Parameter)
        );
        assert_eq!(t.h_put_tce(0x100f_0000, 0x2_0001), Ok(()));
        assert_eq!(
            t.h_put_tce(0x1010_0000, 0x2_0001),
            Err(HcallError::Parameter)
        );
        let p: Vec<_> = t
            .translate(0x1000_fff0, 0x10, DmaDir::FromGuest)
            .unwrap()
            .collect();
        assert_eq!(p, [(0x1_fff0, 0x10)]);
        assert_eq!(
            t.translate(0x1000_fff0, 0x20, DmaDir::FromGuest).err(),
            Some(DmaError::NoPermission)
        );
    }

    #[test]
    fn stuff_checks() {
        let mut t = vio();
        t.h_put_tce_list(0, &[0x1003, 0x2003, 0x3003]).unwrap();
        assert_eq!(t.h_stuff_tce(0, 1, 3), Err(HcallError::Parameter));
        assert_eq!(t.h_stuff_tce(0, 2, 3), Err(HcallError::Parameter));
        assert_eq!(t.h_stuff_tce(WIN - 4096, 0, 2), Err(HcallError::Parameter));
        assert_eq!(t.h_stuff_tce(0, 0, u64::MAX), Err(HcallError::Parameter));
        assert_eq!(t.h_stuff_tce(0x1000, 0, 2), Ok(()));
        assert_eq!(t.h_get_tce(0), Ok(0x1003));
        assert_eq!(t.h_get_tce(0x1000), Ok(0));
        assert_eq!(t.h_get_tce(0x2000), Ok(0));
        assert_eq!(t.h_stuff_tce(0, 0, 0), Ok(()));
    }

    #[test]
    fn indirect_checks() {
        assert_eq!(check_put_indirect(0x1000, 512), Ok(()));
        assert_eq!(check_put_indirect(0x1000, 513), Err(HcallError::Parameter));
        assert_eq!(check_put_indirect(0x1008, 1), Err(HcallError::Parameter));
        let mut t = vio();
        // One bad entry: nothing stored.
        assert_eq!(
            t.h_put_tce_list(0, &[0x1003, MEM | 3]),
            Err(HcallError::Parameter)
        );
        assert_eq!(t.h_get_tce(0), Ok(0));
        assert_eq!(
            t.h_put_tce_list(WIN - 4096, &[0x1003, 0x2003]),
            Err(HcallError::Parameter)
        );
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&0x1003u64.to_be_bytes());
        raw[8..].copy_from_slice(&0x2001u64.to_be_bytes());
        let mut l = [0u64; 2];
        decode_tce_list(&raw, &mut l);
        assert_eq!(l, [0x1003, 0x2001]);
        assert_eq!(t.h_put_tce_list(0x4000, &l), Ok(()));
        assert_eq!(t.h_get_tce(0x5000), Ok(0x2001));
    }

    #[test]
    fn translate_and_permissions() {
        let mut t = vio();
        // IOBA 0x1000.. maps guest pages 0x9000 (RW) then 0x3000 (read only).
        t.h_put_tce_list(0x1000, &[0x9003, 0x3001]).unwrap();
        let pieces: Vec<_> = t
            .translate(0x1ff0, 0x20, DmaDir::FromGuest)
            .unwrap()
            .collect();
        assert_eq!(pieces, [(0x9ff0, 0x10), (0x3000, 0x10)]);
        assert_eq!(
            t.translate(0x1ff0, 0x20, DmaDir::ToGuest).err(),
            Some(DmaError::NoPermission)
        );
        assert_eq!(
            t.translate(0x2ff0, 0x20, DmaDir::FromGuest).err(),
            Some(DmaError::NoPermission)
        );
        assert_eq!(
            t.translate(WIN - 8, 16, DmaDir::FromGuest).err(),
            Some(DmaError::OutOfWindow)
        );
        assert_eq!(
            t.translate(u64::MAX, 2, DmaDir::FromGuest).err(),
            Some(DmaError::OutOfWindow)
        );
        assert_eq!(t.translate(0, 0, DmaDir::ToGuest).unwrap().count(), 0);
        t.clear();
        assert_eq!(
            t.translate(0x1ff0, 0x20, DmaDir::FromGuest).err(),
            Some(DmaError::NoPermission)
        );
    }

    #[test]
    fn dma_through_tables() {
        let a = Mem::new();
        let b = Mem::new();
        let mut ta = vio();
        let mut tb = vio();
        ta.h_put_tce_list(0, &[0x7000 | 1, 0x2000 | 1]).unwrap();
        tb.h_put_tce_list(0x10000, &[0x5000 | 2, 0x4000 | 2])
            .unwrap();
        let msg: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        a.write(0x7000 + 100, &msg[..3996]).unwrap();
        a.write(0x2000, &msg[3996..]).unwrap();
        let mut bounce = [0u8; 512];
        dma_copy(&ta, &a, 100, &tb, &b, 0x10000 + 50, 6000, &mut bounce).unwrap();
        let mut got = alloc::vec![0u8; 6000];
        b.read(0x5000 + 50, &mut got[..4046]).unwrap();
        b.read(0x4000, &mut got[4046..]).unwrap();
        assert_eq!(got, msg);
        // The receiver's read-only mapping refuses a write; nothing moved.
        let mut tc = vio();
        tc.h_put_tce(0, 0x8001).unwrap();
        let c = Mem::new();
        assert_eq!(
            dma_copy(&ta, &a, 0, &tc, &c, 0, 16, &mut bounce),
            Err(DmaError::NoPermission)
        );
        assert_eq!(c.0.borrow()[0x8000..0x8010], [0u8; 16]);
        // dma_write / dma_read round trip.
        dma_write(&tb, &b, 0x10000, b"hello").unwrap();
        let mut h = [0u8; 5];
        assert_eq!(
            dma_read(&tb, &b, 0x10000, &mut h),
            Err(DmaError::NoPermission)
        );
        b.read(0x5000, &mut h).unwrap();
        assert_eq!(&h, b"hello");
    }

    #[test]
    fn memory_refusal_is_an_error() {
        // A table built for a bigger partition than the memory behind it: the
        // DMA memory's own bounds check still refuses.
        let mut t = TceTable::new(1, 0, WIN, 12, 2 * MEM).unwrap();
        t.h_put_tce(0, (MEM + 4096) | 3).unwrap();
        let m = Mem::new();
        assert_eq!(dma_write(&t, &m, 0, b"x"), Err(DmaError::BadGuestReal));
    }
}
