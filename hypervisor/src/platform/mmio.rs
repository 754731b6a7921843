//! Caching-inhibited device registers mapped in the hypervisor's address space
//! (see `arch::ppc64::mmu::MapPlan::io`), accessed little-endian as PCI devices
//! define them.

use core::ptr::NonNull;
use volatile::VolatilePtr;

/// A window of device registers at linear-map address `base`, `len` bytes long.
/// Accesses outside it, or misaligned ones, read all ones and write nothing: the
/// offsets come from a device's own capability list.
#[derive(Debug)]
pub struct MmioRegion {
    base: usize,
    len: usize,
}

impl MmioRegion {
    /// # Safety
    /// `base..base + len` must be mapped caching-inhibited and guarded for the
    /// hypervisor's lifetime and belong to one device that nothing else drives.
    pub unsafe fn new(base: usize, len: usize) -> Self {
        MmioRegion { base, len }
    }

    fn ptr<T>(&self, off: usize) -> Option<VolatilePtr<'_, T>> {
        let size = core::mem::size_of::<T>();
        if !off.is_multiple_of(size) || off.checked_add(size)? > self.len {
            return None;
        }
        let p = NonNull::new((self.base + off) as *mut T)?;
        // SAFETY: in bounds and aligned (checked above) inside a region the
        // constructor's caller vouched for; registers are plain integers.
        Some(unsafe { VolatilePtr::new(p) })
    }

    fn read<T: Copy>(&self, off: usize, ones: T) -> T {
        self.ptr::<T>(off).map(|p| p.read()).unwrap_or(ones)
    }

    fn write<T: Copy>(&self, off: usize, v: T) {
        if let Some(p) = self.ptr::<T>(off) {
            p.write(v);
        }
    }
}

impl crate::virtio::Regs for MmioRegion {
    fn read8(&self, off: usize) -> u8 {
        self.read(off, 0xff)
    }
    fn read16(&self, off: usize) -> u16 {
        u16::from_le(self.read(off, 0xffff))
    }
    fn read32(&self, off: usize) -> u32 {
        u32::from_le(self.read(off, !0))
    }
    fn write8(&self, off: usize, v: u8) {
        self.write(off, v)
    }
    fn write16(&self, off: usize, v: u16) {
        self.write(off, v.to_le())
    }
    fn write32(&self, off: usize, v: u32) {
        self.write(off, v.to_le())
    }
}
