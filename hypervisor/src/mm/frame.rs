//! Physical frame allocator.
//!
//! Hands out physically contiguous runs of 4 KiB frames from the RAM described by
//! the device tree. Radix page tables, partition and process tables, and guest
//! memory come from here, so they must be real addresses: Power ISA v3.0B Book III
//! 5.7.10 ("Radix Tree Translation") requires every page-directory and page table
//! to be aligned to its own size, and the partition table (PTCR) and process tables
//! to be aligned to theirs. That is why [`FrameAllocator::alloc`] takes an
//! alignment and not just a size.
//!
//! Free memory is kept as a sorted list of disjoint, merged half-open ranges in
//! fixed-capacity storage, so the allocator works before any heap exists and never
//! allocates itself.
//!
//! The property the rest of the hypervisor relies on: once a range has been passed
//! to [`FrameAllocator::reserve`] (the hypervisor image, OPAL/skiboot, the FDT, the
//! initrd, ...), no later allocation returns any byte of it, whatever the order of
//! `add_free`/`reserve` calls. The allocator therefore remembers reserved ranges
//! and subtracts them from everything added later.
//!
//! Every mutating operation either succeeds completely or leaves the allocator
//! unchanged (it builds the new lists first and commits them at the end).

use heapless::Vec;

/// Size of a frame: the 4 KiB base page of the radix MMU.
pub const PAGE_SIZE: u64 = 4096;

/// Capacity of the free-range list.
pub const MAX_FREE_RANGES: usize = 128;

/// Capacity of the reserved-range list (merged ranges; adjacent ones share a slot).
pub const MAX_RESERVED_RANGES: usize = 64;

const PAGE_MASK: u64 = PAGE_SIZE - 1;

/// The highest page-aligned address. No free range ends above it, because a free
/// range is page-aligned and its exclusive end must fit in a `u64`.
const MAX_PAGE_END: u64 = !PAGE_MASK;

/// A half-open range of physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhysRange {
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
}

impl PhysRange {
    /// Creates `[start, end)`. No check is made; see [`Self::is_valid`].
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Creates `[start, start + size)`, or `None` if that overflows.
    pub const fn from_base_size(start: u64, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// `start <= end`.
    pub const fn is_valid(&self) -> bool {
        self.start <= self.end
    }

    /// Number of bytes in the range (0 for an empty or inverted range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if the range contains no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True if `addr` lies in the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// True if the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Why a frame-allocator operation failed. A failed operation changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free range can satisfy the request.
    Exhausted,
    /// The alignment is not a power of two of at least [`PAGE_SIZE`], or an address
    /// that must be page-aligned is not.
    BadAlignment,
    /// The range is inverted, empty where a size is required, overflows, or
    /// (for `free`) overlaps a reserved range.
    BadRange,
    /// The fixed-capacity free or reserved list would overflow.
    TooManyRanges,
    /// `free` was given memory that is (partly) free already.
    DoubleFree,
}

/// Physical frame allocator over a sorted list of free ranges. See the module
/// documentation.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    /// Sorted, disjoint, non-adjacent, non-empty, page-aligned free ranges.
    free: Vec<PhysRange, MAX_FREE_RANGES>,
    /// Sorted, disjoint, non-adjacent, page-aligned reserved ranges (rounded
    /// outward when recorded).
    reserved: Vec<PhysRange, MAX_RESERVED_RANGES>,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAllocator {
    /// An allocator with no memory. `const` so it can live in a `static`.
    pub const fn new() -> Self {
        Self {
            free: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// Adds RAM to the free pool.
    ///
    /// The range is rounded inward to whole pages (a partial page is not usable
    /// as a frame), every reserved range is subtracted, and the rest is merged with
    /// overlapping or adjacent free ranges (the device tree may describe the same
    /// memory twice). An empty range, or one that holds no whole page, is accepted
    /// and adds nothing. The caller must not add memory that is currently
    /// allocated: the allocator does not track allocations.
    pub fn add_free(&mut self, r: PhysRange) -> Result<(), FrameError> {
        if !r.is_valid() {
            return Err(FrameError::BadRange);
        }
        let Some(start) = align_up(r.start, PAGE_SIZE) else {
            return Ok(());
        };
        let end = align_down(r.end, PAGE_SIZE);
        if start >= end {
            return Ok(());
        }

        let mut free = self.free.clone();
        // Walk the parts of [start, end) that fall between reserved ranges.
        let mut cur = start;
        for res in &self.reserved {
            if res.end <= cur {
                continue;
            }
            if res.start >= end {
                break;
            }
            if res.start > cur {
                union_in_place(&mut free, PhysRange::new(cur, res.start))?;
            }
            cur = res.end;
            if cur >= end {
                break;
            }
        }
        if cur < end {
            union_in_place(&mut free, PhysRange::new(cur, end))?;
        }
        self.free = free;
        Ok(())
    }

    /// Permanently withdraws a range from allocation.
    ///
    /// The range is rounded outward to whole pages (a frame that holds any
    /// reserved byte is unusable), recorded, and removed from the free pool; this
    /// may split a free range. Memory added later with [`Self::add_free`] has it
    /// subtracted too, and [`Self::free`] refuses it. An empty range reserves
    /// nothing.
    pub fn reserve(&mut self, r: PhysRange) -> Result<(), FrameError> {
        if !r.is_valid() {
            return Err(FrameError::BadRange);
        }
        if r.is_empty() {
            return Ok(());
        }
        let start = align_down(r.start, PAGE_SIZE);
        // The last page [MAX_PAGE_END, 2^64) can never be free, so clamping the
        // rounded end there still covers every byte that could be handed out.
        let end = align_up(r.end, PAGE_SIZE).unwrap_or(MAX_PAGE_END);
        if start >= end {
            return Ok(());
        }
        let range = PhysRange::new(start, end);

        let mut reserved = self.reserved.clone();
        union_in_place(&mut reserved, range)?;
        let mut free = self.free.clone();
        subtract_in_place(&mut free, range)?;
        self.reserved = reserved;
        self.free = free;
        Ok(())
    }

    /// Allocates `size` bytes (rounded up to whole pages) of physically contiguous
    /// memory aligned to `align`.
    ///
    /// `align` must be a power of two no smaller than [`PAGE_SIZE`]
    /// ([`FrameError::BadAlignment`] otherwise); `size` must not be zero
    /// ([`FrameError::BadRange`]). The lowest suitable address is returned (first
    /// fit over the sorted free list). The memory is not zeroed.
    ///
    /// If the only fitting ranges would have to be split in two while the free
    /// list is full, the result is [`FrameError::TooManyRanges`].
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, FrameError> {
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(FrameError::BadAlignment);
        }
        if size == 0 {
            return Err(FrameError::BadRange);
        }
        let size = align_up(size, PAGE_SIZE).ok_or(FrameError::Exhausted)?;

        let mut result = Err(FrameError::Exhausted);
        for e in &self.free {
            let Some(base) = align_up(e.start, align) else {
                // Every later range starts higher, so none can be aligned either.
                break;
            };
            let Some(end) = base.checked_add(size) else {
                continue;
            };
            if end > e.end {
                continue;
            }
            let mut free = self.free.clone();
            match subtract_in_place(&mut free, PhysRange::new(base, end)) {
                Ok(()) => {
                    self.free = free;
                    return Ok(base);
                }
                // Splitting this range needs a slot we do not have; a later range
                // may still fit without a split.
                Err(err) => result = Err(err),
            }
        }
        result
    }

    /// Allocates the largest `align`-aligned run of whole `align` units that one
    /// free range holds, at most `max` bytes: `(base, len)`. With several
    /// equally large runs the lowest is taken; a range that holds all of `max`
    /// is taken first-fit. For guest memory that need not be contiguous
    /// (`mm::extent`): fewer, larger pieces.
    ///
    /// `align` as for [`Self::alloc`]; `max` must hold at least one `align`
    /// unit ([`FrameError::BadRange`]). [`FrameError::Exhausted`] when no free
    /// range holds an aligned unit.
    pub fn alloc_largest(&mut self, max: u64, align: u64) -> Result<(u64, u64), FrameError> {
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(FrameError::BadAlignment);
        }
        let max = align_down(max, align);
        if max == 0 {
            return Err(FrameError::BadRange);
        }
        let mut best: Option<(u64, u64)> = None;
        for e in &self.free {
            let Some(base) = align_up(e.start, align) else {
                break;
            };
            let end = align_down(e.end, align);
            if end <= base {
                continue;
            }
            let len = (end - base).min(max);
            if best.is_none_or(|(_, l)| len > l) {
                best = Some((base, len));
                if len == max {
                    break;
                }
            }
        }
        let (base, len) = best.ok_or(FrameError::Exhausted)?;
        let mut free = self.free.clone();
        subtract_in_place(&mut free, PhysRange::new(base, base + len))?;
        self.free = free;
        Ok((base, len))
    }

    /// Allocates `n` contiguous pages aligned to [`PAGE_SIZE`].
    pub fn alloc_pages(&mut self, n: u64) -> Result<u64, FrameError> {
        let size = n.checked_mul(PAGE_SIZE).ok_or(FrameError::Exhausted)?;
        self.alloc(size, PAGE_SIZE)
    }

    /// Returns `[start, start + size)` (size rounded up to whole pages) to the free
    /// pool, merging it with its neighbours.
    ///
    /// `start` must be page-aligned ([`FrameError::BadAlignment`]); `size` must not
    /// be zero and the range must not overflow ([`FrameError::BadRange`]). Memory
    /// that is already (partly) free gives [`FrameError::DoubleFree`]; memory that
    /// overlaps a reserved range gives [`FrameError::BadRange`], since reserved
    /// memory must never become allocatable. Allocations are not tracked, so
    /// freeing memory that was never handed out is not detected (it simply
    /// becomes free, like `add_free`).
    pub fn free(&mut self, start: u64, size: u64) -> Result<(), FrameError> {
        if start & PAGE_MASK != 0 {
            return Err(FrameError::BadAlignment);
        }
        if size == 0 {
            return Err(FrameError::BadRange);
        }
        let size = align_up(size, PAGE_SIZE).ok_or(FrameError::BadRange)?;
        let r = PhysRange::from_base_size(start, size).ok_or(FrameError::BadRange)?;
        if self.free.iter().any(|e| e.overlaps(&r)) {
            return Err(FrameError::DoubleFree);
        }
        if self.reserved.iter().any(|e| e.overlaps(&r)) {
            return Err(FrameError::BadRange);
        }
        union_in_place(&mut self.free, r)
    }

    /// Total number of free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free
            .iter()
            .fold(0u64, |acc, r| acc.saturating_add(r.len()))
    }

    /// The free ranges: sorted, disjoint, non-adjacent and page-aligned.
    pub fn ranges(&self) -> &[PhysRange] {
        &self.free
    }

    /// The reserved ranges (page-rounded, sorted, merged).
    pub fn reserved(&self) -> &[PhysRange] {
        &self.reserved
    }

    /// True if the byte at `addr` is free.
    pub fn contains_free(&self, addr: u64) -> bool {
        let i = self.free.partition_point(|r| r.end <= addr);
        self.free.get(i).is_some_and(|r| r.contains(addr))
    }
}

/// Rounds `v` up to a multiple of the power of two `align`; `None` on overflow.
const fn align_up(v: u64, align: u64) -> Option<u64> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// Rounds `v` down to a multiple of the power of two `align`.
const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

fn push<const N: usize>(v: &mut Vec<PhysRange, N>, r: PhysRange) -> Result<(), FrameError> {
    v.push(r).map_err(|_| FrameError::TooManyRanges)
}

/// Adds the non-empty range `r` to a sorted, merged list, merging it with every
/// overlapping or adjacent entry. The list is only replaced on success.
fn union_in_place<const N: usize>(
    list: &mut Vec<PhysRange, N>,
    r: PhysRange,
) -> Result<(), FrameError> {
    let mut out: Vec<PhysRange, N> = Vec::new();
    let mut merged = r;
    let mut placed = false;
    for &e in list.iter() {
        if e.end < merged.start {
            push(&mut out, e)?;
        } else if e.start > merged.end {
            if !placed {
                push(&mut out, merged)?;
                placed = true;
            }
            push(&mut out, e)?;
        } else {
            merged.start = merged.start.min(e.start);
            merged.end = merged.end.max(e.end);
        }
    }
    if !placed {
        push(&mut out, merged)?;
    }
    *list = out;
    Ok(())
}

/// Removes every byte of `r` from a sorted, merged list, splitting an entry that
/// strictly contains it. The list is only replaced on success.
fn subtract_in_place<const N: usize>(
    list: &mut Vec<PhysRange, N>,
    r: PhysRange,
) -> Result<(), FrameError> {
    let mut out: Vec<PhysRange, N> = Vec::new();
    for &e in list.iter() {
        if !e.overlaps(&r) {
            push(&mut out, e)?;
            continue;
        }
        if e.start < r.start {
            push(&mut out, PhysRange::new(e.start, r.start))?;
        }
        if r.end < e.end {
            push(&mut out, PhysRange::new(r.end, e.end))?;
        }
    }
    *list = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    const K4: u64 = 4 << 10;
    const K64: u64 = 64 << 10;
    const M2: u64 = 2 << 20;
    const G1: u64 = 1 << 30;

    fn pr(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    /// Checks the structural invariants of the free list and that no free byte
    /// is reserved.
    fn check_invariants(a: &FrameAllocator) {
        let free = a.ranges();
        for r in free {
            assert!(r.start < r.end, "empty range {r:?}");
            assert_eq!(r.start % PAGE_SIZE, 0, "{r:?}");
            assert_eq!(r.end % PAGE_SIZE, 0, "{r:?}");
            for res in a.reserved() {
                assert!(!r.overlaps(res), "free {r:?} overlaps reserved {res:?}");
            }
        }
        for w in free.windows(2) {
            assert!(w[0].end < w[1].start, "unsorted or unmerged {w:?}");
        }
        for w in a.reserved().windows(2) {
            assert!(w[0].end < w[1].start, "unsorted or unmerged {w:?}");
        }
    }

    #[test]
    fn phys_range_helpers() {
        let r = pr(0x1000, 0x3000);
        assert_eq!(r.len(), 0x2000);
        assert!(!r.is_empty());
        assert!(r.contains(0x1000) && r.contains(0x2fff) && !r.contains(0x3000));
        assert!(r.overlaps(&pr(0x2fff, 0x4000)));
        assert!(!r.overlaps(&pr(0x3000, 0x4000)));
        assert!(pr(5, 5).is_empty());
        assert_eq!(pr(6, 5).len(), 0);
        assert!(!pr(6, 5).is_valid());
        assert_eq!(PhysRange::from_base_size(u64::MAX, 1), None);
        assert_eq!(
            PhysRange::from_base_size(0x1000, 0x1000),
            Some(pr(0x1000, 0x2000))
        );
    }

    #[test]
    fn empty_allocator() {
        let mut a = FrameAllocator::new();
        assert_eq!(a.free_bytes(), 0);
        assert!(a.ranges().is_empty());
        assert_eq!(a.alloc_pages(1), Err(FrameError::Exhausted));
        assert!(!a.contains_free(0));
        let d = FrameAllocator::default();
        assert!(d.ranges().is_empty());
    }

    #[test]
    fn add_free_rounds_inward() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0x1001, 0x5fff)).unwrap();
        assert_eq!(a.ranges(), &[pr(0x2000, 0x5000)]);
        assert_eq!(a.free_bytes(), 0x3000);
        // Less than one whole page: nothing.
        a.add_free(pr(0x8001, 0x8fff)).unwrap();
        a.add_free(pr(0x9001, 0xa001)).unwrap();
        assert_eq!(a.ranges(), &[pr(0x2000, 0x5000)]);
        // Empty and inverted.
        a.add_free(pr(0x10000, 0x10000)).unwrap();
        assert_eq!(a.add_free(pr(0x2000, 0x1000)), Err(FrameError::BadRange));
        assert_eq!(a.ranges(), &[pr(0x2000, 0x5000)]);
    }

    #[test]
    fn add_free_merges_and_sorts() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0x10000, 0x20000)).unwrap();
        a.add_free(pr(0x0, 0x4000)).unwrap();
        a.add_free(pr(0x40000, 0x50000)).unwrap();
        assert_eq!(
            a.ranges(),
            &[pr(0, 0x4000), pr(0x10000, 0x20000), pr(0x40000, 0x50000)]
        );
        // Adjacent on both sides: three become one.
        a.add_free(pr(0x20000, 0x40000)).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x4000), pr(0x10000, 0x50000)]);
        // Overlapping (described twice) is a union.
        a.add_free(pr(0x3000, 0x12000)).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x50000)]);
        a.add_free(pr(0x1000, 0x2000)).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x50000)]);
        check_invariants(&a);
    }

    #[test]
    fn reserve_splits_and_rounds_outward() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x10000)).unwrap();
        a.reserve(pr(0x3001, 0x4001)).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x3000), pr(0x5000, 0x10000)]);
        assert_eq!(a.reserved(), &[pr(0x3000, 0x5000)]);
        // Trim at both ends of the pool.
        a.reserve(pr(0, 1)).unwrap();
        a.reserve(pr(0xffff, 0x10000)).unwrap();
        assert_eq!(a.ranges(), &[pr(0x1000, 0x3000), pr(0x5000, 0xf000)]);
        // Swallow a whole range.
        a.reserve(pr(0x800, 0x3800)).unwrap();
        assert_eq!(a.ranges(), &[pr(0x5000, 0xf000)]);
        // Empty reserve is a no-op, inverted is an error.
        a.reserve(pr(0x6000, 0x6000)).unwrap();
        assert_eq!(a.reserve(pr(0x7000, 0x6000)), Err(FrameError::BadRange));
        assert_eq!(a.ranges(), &[pr(0x5000, 0xf000)]);
        check_invariants(&a);
    }

    #[test]
    fn reserve_before_add_free_is_honoured() {
        let mut a = FrameAllocator::new();
        a.reserve(pr(0x20_0000, 0x20_0800)).unwrap(); // e.g. the FDT
        a.reserve(pr(0x30_0000, 0x40_0000)).unwrap(); // e.g. the image
        a.add_free(pr(0, 0x100_0000)).unwrap();
        assert_eq!(
            a.ranges(),
            &[
                pr(0, 0x20_0000),
                pr(0x20_1000, 0x30_0000),
                pr(0x40_0000, 0x100_0000)
            ]
        );
        // Adding the same memory again does not resurrect reserved pages.
        a.add_free(pr(0x20_0000, 0x50_0000)).unwrap();
        assert!(!a.contains_free(0x20_0000));
        assert!(!a.contains_free(0x30_0000));
        assert!(!a.contains_free(0x3f_ffff));
        assert!(a.contains_free(0x40_0000));
        check_invariants(&a);
    }

    #[test]
    fn alloc_first_fit_lowest() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0x10000, 0x12000)).unwrap();
        a.add_free(pr(0x20000, 0x30000)).unwrap();
        assert_eq!(a.alloc_pages(1), Ok(0x10000));
        // Does not fit in the rest of the first range.
        assert_eq!(a.alloc_pages(2), Ok(0x20000));
        assert_eq!(a.alloc_pages(1), Ok(0x11000));
        assert_eq!(a.alloc(1, K4), Ok(0x22000)); // size rounded up
        assert_eq!(a.ranges(), &[pr(0x23000, 0x30000)]);
    }

    #[test]
    fn alloc_alignments() {
        for align in [K4, K64, M2, G1] {
            let mut a = FrameAllocator::new();
            // A range that starts one page past the alignment.
            let start = 3 * align + K4;
            let end = 6 * align;
            a.add_free(pr(start, end)).unwrap();
            let p = a.alloc(K4, align).unwrap();
            assert_eq!(p % align, 0);
            if align == K4 {
                assert_eq!(p, start);
                assert_eq!(a.ranges(), &[pr(start + K4, end)]);
            } else {
                assert_eq!(p, 4 * align);
                assert_eq!(a.ranges(), &[pr(start, 4 * align), pr(4 * align + K4, end)]);
            }
            check_invariants(&a);
            // A size-aligned block of the alignment size.
            let q = a.alloc(align, align).unwrap();
            assert_eq!(q % align, 0);
            assert_eq!(q, 5 * align);
            assert_eq!(a.alloc(align, align), Err(FrameError::Exhausted));
            check_invariants(&a);
        }
    }

    #[test]
    fn alloc_largest_takes_the_biggest_aligned_run() {
        let mut a = FrameAllocator::new();
        // [1M, 4M): one aligned 2 MiB unit; [20M + 4K, 27M): two units from
        // 22M; [40M, 44M): two units, higher.
        const M: u64 = 1 << 20;
        a.add_free(pr(M, 4 * M)).unwrap();
        a.add_free(pr(20 * M + K4, 27 * M)).unwrap();
        a.add_free(pr(40 * M, 44 * M)).unwrap();
        // Largest first; equal sizes: the lower one.
        assert_eq!(a.alloc_largest(100 * M, M2), Ok((22 * M, 4 * M)));
        assert_eq!(a.alloc_largest(100 * M, M2), Ok((40 * M, 4 * M)));
        assert_eq!(a.alloc_largest(100 * M, M2), Ok((2 * M, 2 * M)));
        assert_eq!(a.alloc_largest(100 * M2, M2), Err(FrameError::Exhausted));
        check_invariants(&a);
        // A range that holds all of `max` is taken first-fit, and only `max`.
        let mut b = FrameAllocator::new();
        b.add_free(pr(0, 4 * M2)).unwrap();
        b.add_free(pr(8 * M2, 16 * M2)).unwrap();
        assert_eq!(b.alloc_largest(3 * M2 + K4, M2), Ok((0, 3 * M2)));
        assert_eq!(b.ranges(), &[pr(3 * M2, 4 * M2), pr(8 * M2, 16 * M2)]);
        assert_eq!(b.alloc_largest(K4, M2), Err(FrameError::BadRange));
        assert_eq!(b.alloc_largest(M2, 3 * K4), Err(FrameError::BadAlignment));
        check_invariants(&b);
    }

    #[test]
    fn bad_alignment() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x100000)).unwrap();
        for align in [0, 1, 3, 2048, 0x3000, K4 + 1, 1 << 63 | 1] {
            assert_eq!(a.alloc(K4, align), Err(FrameError::BadAlignment), "{align}");
        }
        assert_eq!(a.free(0x800, K4), Err(FrameError::BadAlignment));
        assert_eq!(a.free_bytes(), 0x100000);
    }

    #[test]
    fn zero_size() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x10000)).unwrap();
        assert_eq!(a.alloc(0, K4), Err(FrameError::BadRange));
        assert_eq!(a.alloc_pages(0), Err(FrameError::BadRange));
        assert_eq!(a.free(0x20000, 0), Err(FrameError::BadRange));
        assert_eq!(a.ranges(), &[pr(0, 0x10000)]);
    }

    #[test]
    fn exhaustion_and_reuse() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0x4000, 0x8000)).unwrap();
        let pages: std::vec::Vec<u64> = (0..4).map(|_| a.alloc_pages(1).unwrap()).collect();
        assert_eq!(pages, [0x4000, 0x5000, 0x6000, 0x7000]);
        assert_eq!(a.alloc_pages(1), Err(FrameError::Exhausted));
        assert_eq!(a.free_bytes(), 0);
        a.free(0x6000, K4).unwrap();
        assert_eq!(a.alloc_pages(2), Err(FrameError::Exhausted));
        assert_eq!(a.alloc_pages(1), Ok(0x6000));
        assert_eq!(a.alloc_pages(u64::MAX), Err(FrameError::Exhausted));
        assert_eq!(a.alloc(u64::MAX, K4), Err(FrameError::Exhausted));
    }

    #[test]
    fn free_merges_neighbours() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x3000)).unwrap();
        let p0 = a.alloc_pages(1).unwrap();
        let p1 = a.alloc_pages(1).unwrap();
        let p2 = a.alloc_pages(1).unwrap();
        a.free(p1, K4).unwrap();
        assert_eq!(a.ranges(), &[pr(0x1000, 0x2000)]);
        a.free(p0, K4).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x2000)]);
        a.free(p2, 1).unwrap(); // size rounded up like alloc
        assert_eq!(a.ranges(), &[pr(0, 0x3000)]);
    }

    #[test]
    fn double_free_detected() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x10000)).unwrap();
        let p = a.alloc_pages(4).unwrap();
        a.free(p, 2 * K4).unwrap();
        let before = a.clone();
        assert_eq!(a.free(p, K4), Err(FrameError::DoubleFree));
        // Partial overlap with a free range.
        assert_eq!(a.free(p + K4, 2 * K4), Err(FrameError::DoubleFree));
        // Overlap with the never-allocated tail.
        assert_eq!(a.free(p + 3 * K4, 2 * K4), Err(FrameError::DoubleFree));
        assert_eq!(a.ranges(), before.ranges());
        a.free(p + 2 * K4, 2 * K4).unwrap();
        assert_eq!(a.ranges(), &[pr(0, 0x10000)]);
    }

    #[test]
    fn free_of_reserved_memory_is_refused() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(0, 0x10000)).unwrap();
        let p = a.alloc_pages(2).unwrap();
        // Reserving memory that is currently allocated: it must not come back.
        a.reserve(pr(p, p + K4)).unwrap();
        assert_eq!(a.free(p, 2 * K4), Err(FrameError::BadRange));
        a.free(p + K4, K4).unwrap();
        assert!(!a.contains_free(p));
        // Freeing outside all known memory is allowed (hot-add style) unless reserved.
        assert_eq!(a.free(0x100_0000, K4), Ok(()));
        check_invariants(&a);
    }

    #[test]
    fn overflow_near_top_of_address_space() {
        let mut a = FrameAllocator::new();
        a.add_free(pr(u64::MAX - 0x3005, u64::MAX)).unwrap();
        assert_eq!(
            a.ranges(),
            &[pr(0xFFFF_FFFF_FFFF_D000, 0xFFFF_FFFF_FFFF_F000)]
        );
        // Less than a page at the very top.
        a.add_free(pr(u64::MAX - 5, u64::MAX)).unwrap();
        assert_eq!(a.ranges().len(), 1);
        // Large alignments overflow while rounding up: not found, no panic.
        assert_eq!(a.alloc(K4, G1), Err(FrameError::Exhausted));
        assert_eq!(a.alloc(3 * K4, K4), Err(FrameError::Exhausted));
        assert_eq!(a.alloc(u64::MAX - 10, K4), Err(FrameError::Exhausted));
        // Reserve whose outward rounding would overflow is clamped.
        a.reserve(pr(0xFFFF_FFFF_FFFF_E800, u64::MAX)).unwrap();
        assert_eq!(
            a.ranges(),
            &[pr(0xFFFF_FFFF_FFFF_D000, 0xFFFF_FFFF_FFFF_E000)]
        );
        a.reserve(pr(u64::MAX - 1, u64::MAX)).unwrap();
        let p = a.alloc_pages(1).unwrap();
        assert_eq!(p, 0xFFFF_FFFF_FFFF_D000);
        assert_eq!(a.free(p, u64::MAX), Err(FrameError::BadRange));
        assert_eq!(a.free(p, 0x3000), Err(FrameError::BadRange)); // past 2^64
        assert_eq!(a.free(p, K4), Ok(()));
        assert!(a.contains_free(p));
        assert!(!a.contains_free(u64::MAX));
        check_invariants(&a);
    }

    #[test]
    fn too_many_free_ranges_is_atomic() {
        let mut a = FrameAllocator::new();
        for i in 0..MAX_FREE_RANGES as u64 {
            a.add_free(pr(i * 0x10000 + 0x1000, i * 0x10000 + 0x4000))
                .unwrap();
        }
        let before = a.clone();
        let top = MAX_FREE_RANGES as u64 * 0x10000;
        assert_eq!(
            a.add_free(pr(top, top + 0x1000)),
            Err(FrameError::TooManyRanges)
        );
        assert_eq!(a.ranges(), before.ranges());
        // Joining two ranges still works when full.
        a.add_free(pr(0x4000, 0x11000)).unwrap();
        assert_eq!(a.ranges().len(), MAX_FREE_RANGES - 1);

        // With an 8K-aligned single page on top, an 8K-aligned allocation skips the
        // lower ranges (each would need a split) and takes it.
        let mut b = a.clone();
        b.add_free(pr(top, top + 0x1000)).unwrap();
        assert_eq!(b.ranges().len(), MAX_FREE_RANGES);
        assert_eq!(b.alloc(K4, 2 * K4), Ok(top));
        check_invariants(&b);

        // With an odd page on top, every 8K-aligned fit needs a split.
        a.add_free(pr(top + 0x1000, top + 0x2000)).unwrap();
        assert_eq!(a.ranges().len(), MAX_FREE_RANGES);
        let before = a.clone();
        // A reserve that would split a range fails without touching either list.
        assert_eq!(
            a.reserve(pr(0x22000, 0x23000)),
            Err(FrameError::TooManyRanges)
        );
        assert_eq!(a.ranges(), before.ranges());
        assert!(a.reserved().is_empty());
        assert_eq!(a.alloc(K4, 2 * K4), Err(FrameError::TooManyRanges));
        assert_eq!(a.ranges(), before.ranges());
        assert_eq!(
            a.add_free(pr(top + 0x3000, top + 0x4000)),
            Err(FrameError::TooManyRanges)
        );
        assert_eq!(a.ranges(), before.ranges());
        // Allocation without a split still works when full.
        assert_eq!(a.alloc_pages(1), Ok(0x1000));
        check_invariants(&a);
    }

    #[test]
    fn too_many_reserved_ranges() {
        let mut a = FrameAllocator::new();
        for i in 0..MAX_RESERVED_RANGES as u64 {
            a.reserve(pr(i * 0x10000, i * 0x10000 + 1)).unwrap();
        }
        assert_eq!(
            a.reserve(pr(0x100_0000, 0x100_1000)),
            Err(FrameError::TooManyRanges)
        );
        assert_eq!(a.reserved().len(), MAX_RESERVED_RANGES);
        // Extending an existing reservation still works.
        a.reserve(pr(0x1000, 0x2000)).unwrap();
        assert_eq!(a.reserved()[0], pr(0, 0x2000));
    }

    /// Model-based random test: a page-granular model of added, reserved,
    /// allocated and leaked pages predicts exactly which pages are free and where
    /// first fit must allocate. Reserved pages must never be allocated.
    #[test]
    fn randomised_against_model() {
        const PAGES: usize = 1024;
        const BASE: u64 = 0x8000_0000;
        const SPAN: u64 = PAGES as u64 * PAGE_SIZE;

        for seed in 1..=24u64 {
            let mut rng = XorShift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut a = FrameAllocator::new();
            let mut added = [false; PAGES];
            let mut reserved = [false; PAGES];
            let mut owned = [false; PAGES]; // allocated or leaked
            let mut allocs: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();

            let page_of = |addr: u64| ((addr - BASE) / PAGE_SIZE) as usize;

            for _ in 0..1500 {
                match rng.below(10) {
                    // add_free of an unaligned byte range not overlapping allocations
                    0 | 1 => {
                        let s = BASE + rng.below(SPAN);
                        let e = (s + rng.below(SPAN / 4)).min(BASE + SPAN);
                        let ps = s.div_ceil(PAGE_SIZE) * PAGE_SIZE;
                        let pe = e / PAGE_SIZE * PAGE_SIZE;
                        let pages = if ps < pe {
                            page_of(ps)..page_of(pe)
                        } else {
                            0..0
                        };
                        if pages.clone().any(|p| owned[p]) {
                            continue;
                        }
                        match a.add_free(pr(s, e)) {
                            Ok(()) => pages.for_each(|p| added[p] = true),
                            Err(FrameError::TooManyRanges) => {}
                            Err(err) => panic!("add_free: {err:?}"),
                        }
                    }
                    // reserve of a small unaligned byte range
                    2 => {
                        let s = BASE + rng.below(SPAN);
                        let e = (s + rng.below(8 * PAGE_SIZE)).min(BASE + SPAN);
                        let res = a.reserve(pr(s, e));
                        if s < e {
                            match res {
                                Ok(()) => reserved[page_of(s)..=page_of(e - 1)].fill(true),
                                Err(FrameError::TooManyRanges) => {}
                                Err(err) => panic!("reserve: {err:?}"),
                            }
                        } else {
                            assert_eq!(res, Ok(()));
                        }
                    }
                    // alloc
                    3..=6 => {
                        let n = 1 + rng.below(16);
                        let align = [K4, 2 * K4, 4 * K4, K64][rng.index(4)];
                        let free_now = |p: usize| added[p] && !reserved[p] && !owned[p];
                        let expect = (0..PAGES).find(|&p| {
                            let addr = BASE + p as u64 * PAGE_SIZE;
                            addr.is_multiple_of(align)
                                && p + n as usize <= PAGES
                                && (p..p + n as usize).all(free_now)
                        });
                        let full = a.ranges().len() == MAX_FREE_RANGES;
                        match a.alloc(n * PAGE_SIZE, align) {
                            Ok(addr) => {
                                assert_eq!(addr % align, 0);
                                let p0 = page_of(addr);
                                let pages = p0..p0 + n as usize;
                                assert!(
                                    pages.clone().all(|p| !reserved[p]),
                                    "reserved page handed out"
                                );
                                assert!(pages.clone().all(free_now), "non-free page handed out");
                                owned[pages].fill(true);
                                if !full {
                                    assert_eq!(Some(p0), expect, "not first fit");
                                }
                                allocs.push((addr, n));
                            }
                            Err(FrameError::Exhausted) => assert_eq!(expect, None),
                            Err(FrameError::TooManyRanges) => assert!(full),
                            Err(err) => panic!("alloc: {err:?}"),
                        }
                    }
                    // free an allocation
                    7 | 8 => {
                        if allocs.is_empty() {
                            continue;
                        }
                        let i = rng.index(allocs.len());
                        let (addr, n) = allocs.swap_remove(i);
                        let p0 = page_of(addr);
                        let pages = p0..p0 + n as usize;
                        let hits_reserved = pages.clone().any(|p| reserved[p]);
                        match a.free(addr, n * PAGE_SIZE) {
                            Ok(()) => {
                                assert!(!hits_reserved);
                                pages.for_each(|p| owned[p] = false);
                            }
                            // Leaked for good: stays owned.
                            Err(FrameError::BadRange) => assert!(hits_reserved),
                            Err(FrameError::TooManyRanges) => allocs.push((addr, n)),
                            Err(err) => panic!("free: {err:?}"),
                        }
                    }
                    // double free of a currently free page
                    _ => {
                        let p = rng.index(PAGES);
                        if added[p] && !reserved[p] && !owned[p] {
                            let addr = BASE + p as u64 * PAGE_SIZE;
                            assert_eq!(a.free(addr, PAGE_SIZE), Err(FrameError::DoubleFree));
                        }
                    }
                }

                check_invariants(&a);
                let mut model_free = 0u64;
                for p in 0..PAGES {
                    let expect = added[p] && !reserved[p] && !owned[p];
                    let addr = BASE + p as u64 * PAGE_SIZE;
                    assert_eq!(a.contains_free(addr), expect, "page {p} seed {seed}");
                    assert_eq!(a.contains_free(addr + PAGE_SIZE - 1), expect);
                    model_free += u64::from(expect) * PAGE_SIZE;
                }
                assert_eq!(a.free_bytes(), model_free);
            }
        }
    }
}
