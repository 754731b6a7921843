//! Memory management: physical frames, the heap and radix page tables.
//!
//! The hypervisor addresses all RAM through the linear map at
//! [`LINEAR_BASE`] + physical. In real mode (interrupt entry, OPAL calls) the top four
//! address bits are ignored, so linear addresses work with translation on and off.
pub mod extent;
pub mod frame;
pub mod guest_walk;
pub mod hpt;
pub mod nested;
pub mod radix;

#[cfg(target_arch = "powerpc64")]
pub mod heap;

use frame::{FrameAllocator, FrameError, PhysRange, PAGE_SIZE};
use heapless::Vec;

/// Base of the hypervisor's linear map (quadrant 3).
pub const LINEAR_BASE: u64 = 0xc000_0000_0000_0000;

/// The machine's frame allocator. Lock order: FRAMES before the heap lock.
pub static FRAMES: spin::Mutex<FrameAllocator> = spin::Mutex::new(FrameAllocator::new());

pub fn alloc_frames(size: u64, align: u64) -> Result<u64, FrameError> {
    FRAMES.lock().alloc(size, align)
}

/// Guest memory of `size` bytes, in host-contiguous extents (`extent::allocate`).
pub fn alloc_guest_memory(size: u64) -> Result<extent::ExtentMap, FrameError> {
    extent::allocate(&mut FRAMES.lock(), size)
}

/// Guest memory in one host extent aligned to `align` (a partition with
/// passed-through devices: its DMA window is one range).
pub fn alloc_guest_memory_contiguous(
    size: u64,
    align: u64,
) -> Result<extent::ExtentMap, FrameError> {
    let align = align.max(extent::block_align(size));
    let pa = FRAMES.lock().alloc(size, align)?;
    extent::ExtentMap::new(&[(pa, size)]).map_err(|_| {
        free_frames(pa, size);
        FrameError::BadRange
    })
}

pub fn free_frames(pa: u64, size: u64) {
    // A failed free means a hypervisor bug; keeping the frame is the safe outcome.
    let _ = FRAMES.lock().free(pa, size);
}

/// Rounds a range outwards to whole pages.
pub fn round_out(r: PhysRange) -> PhysRange {
    PhysRange {
        start: r.start & !(PAGE_SIZE - 1),
        end: r.end.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
    }
}

/// `r` minus every range in `holes` (which may overlap each other and be unsorted).
pub fn subtract(r: PhysRange, holes: &[PhysRange]) -> Vec<PhysRange, 64> {
    let mut out: Vec<PhysRange, 64> = Vec::new();
    let _ = out.push(r);
    for h in holes {
        let mut next: Vec<PhysRange, 64> = Vec::new();
        for p in out.iter() {
            if h.end <= p.start || h.start >= p.end {
                let _ = next.push(*p);
                continue;
            }
            if h.start > p.start {
                let _ = next.push(PhysRange {
                    start: p.start,
                    end: h.start,
                });
            }
            if h.end < p.end {
                let _ = next.push(PhysRange {
                    start: h.end,
                    end: p.end,
                });
            }
        }
        out = next;
    }
    out
}

/// Zeroes physical memory through the linear map: whole 128-byte cache blocks with
/// `dcbz` (one instruction per block, which matters for a partition's hundreds of
/// MiB), the ragged ends byte-wise.
#[cfg(target_arch = "powerpc64")]
pub fn zero_phys(pa: u64, bytes: u64) {
    const BLOCK: u64 = 128;
    let start = LINEAR_BASE | pa;
    let end = start + bytes;
    let first = (start + BLOCK - 1) & !(BLOCK - 1);
    let last = end & !(BLOCK - 1);
    if first >= last {
        // SAFETY: callers pass frames they own exclusively (just allocated, or a
        // stopped partition's); the linear map reaches all RAM.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, bytes as usize) };
        return;
    }
    // SAFETY: as above, for the head and tail outside whole blocks.
    unsafe {
        core::ptr::write_bytes(start as *mut u8, 0, (first - start) as usize);
        core::ptr::write_bytes(last as *mut u8, 0, (end - last) as usize);
    }
    let mut at = first;
    while at < last {
        // SAFETY: the 128-byte block at `at` lies inside the range the caller owns.
        unsafe { crate::arch::ppc64::instr::dcbz(at) };
        at += BLOCK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> PhysRange {
        PhysRange { start: s, end: e }
    }

    #[test]
    fn subtract_splits_and_drops() {
        let out = subtract(r(0, 100), &[r(10, 20), r(50, 60), r(90, 200)]);
        assert_eq!(out.as_slice(), &[r(0, 10), r(20, 50), r(60, 90)]);
        assert!(subtract(r(10, 20), &[r(0, 100)]).is_empty());
        assert_eq!(subtract(r(10, 20), &[]).as_slice(), &[r(10, 20)]);
        // Overlapping, unsorted holes.
        let out = subtract(r(0, 100), &[r(40, 70), r(30, 50)]);
        assert_eq!(out.as_slice(), &[r(0, 30), r(70, 100)]);
    }

    #[test]
    fn round_out_pages() {
        assert_eq!(round_out(r(0x1001, 0x2001)), r(0x1000, 0x3000));
        assert_eq!(round_out(r(0x1000, 0x2000)), r(0x1000, 0x2000));
    }
}
