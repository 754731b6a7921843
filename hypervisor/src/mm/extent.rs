//! A partition's memory as a list of physically contiguous host extents.
//!
//! Guest real memory `[0, size)` need not be one contiguous block of host
//! frames: OPAL, the boot bundle and the hypervisor itself leave holes in host
//! memory, and a partition as large as the free memory around them must still be
//! created. So guest memory is backed by extents, laid out one after another
//! from guest real 0: extent `i` holds guest real `[gra_i, gra_i + len_i)` at
//! host physical `[pa_i, pa_i + len_i)`.
//!
//! Invariants (checked by [`ExtentMap::new`]): extents are sorted by guest
//! address and leave no gap; each starts and ends on an [`EXTENT_ALIGN`]
//! boundary in both address spaces, so every 2 MiB page of the partition-scoped
//! tree (and every 2 MiB chunk of `partition::demand`) lies in one extent;
//! physically adjacent neighbours are merged. A guest range may cross extents:
//! [`ExtentMap::pieces`] splits it into host-contiguous pieces, and every
//! accessor of guest memory goes through it.
//!
//! [`allocate`] takes the frames from the frame allocator: one block when the
//! allocator has one (1 GiB aligned for a multiple of 1 GiB, 2 MiB otherwise),
//! else 1 GiB blocks while at least 1 GiB is left, then the largest 2 MiB-aligned
//! runs. Portable; tested on the host.
use alloc::vec::Vec;

use super::frame::{FrameAllocator, FrameError};

/// Extents start and end on this boundary, guest and host side: a 2 MiB page.
pub const EXTENT_ALIGN: u64 = 2 << 20;
/// Preferred block size for large partitions (a 1 GiB page).
pub const LARGE_BLOCK: u64 = 1 << 30;

/// Guest real `[gra, gra + len)` is host physical `[pa, pa + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub gra: u64,
    pub pa: u64,
    pub len: u64,
}

/// A host-contiguous part of a guest range: guest real `gra`, host `pa`, `len`
/// bytes, `offset` bytes from the start of the range asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub gra: u64,
    pub pa: u64,
    pub len: u64,
    pub offset: u64,
}

/// Why host runs cannot back guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentError {
    /// No runs, or one of length 0.
    Empty,
    /// A run's start or length is not a multiple of [`EXTENT_ALIGN`].
    Misaligned,
    /// The guest size overflows.
    Overflow,
}

/// Guest memory `[0, size)` and the host extents behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentMap {
    extents: Vec<Extent>,
    size: u64,
}

impl ExtentMap {
    /// Guest memory made of host runs `(pa, len)`, in guest address order.
    pub fn new(runs: &[(u64, u64)]) -> Result<Self, ExtentError> {
        if runs.is_empty() {
            return Err(ExtentError::Empty);
        }
        let mut extents: Vec<Extent> = Vec::with_capacity(runs.len());
        let mut gra = 0u64;
        for &(pa, len) in runs {
            if len == 0 {
                return Err(ExtentError::Empty);
            }
            if !pa.is_multiple_of(EXTENT_ALIGN) || !len.is_multiple_of(EXTENT_ALIGN) {
                return Err(ExtentError::Misaligned);
            }
            pa.checked_add(len).ok_or(ExtentError::Overflow)?;
            match extents.last_mut() {
                Some(last) if last.pa + last.len == pa => last.len += len,
                _ => extents.push(Extent { gra, pa, len }),
            }
            gra = gra.checked_add(len).ok_or(ExtentError::Overflow)?;
        }
        Ok(Self { extents, size: gra })
    }

    /// Bytes of guest memory.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Index of the extent holding guest real `gra`.
    fn index_of(&self, gra: u64) -> Option<usize> {
        if gra >= self.size {
            return None;
        }
        // The last extent starting at or below `gra`.
        let i = self.extents.partition_point(|e| e.gra <= gra);
        i.checked_sub(1)
    }

    /// Host physical address of guest real `gra`.
    pub fn translate(&self, gra: u64) -> Option<u64> {
        let e = self.extents.get(self.index_of(gra)?)?;
        Some(e.pa + (gra - e.gra))
    }

    /// Host physical address of `[gra, gra + len)` if it lies in guest memory
    /// and in one extent (`len` 0 counts as 1 byte).
    pub fn contiguous(&self, gra: u64, len: u64) -> Option<u64> {
        let e = self.extents.get(self.index_of(gra)?)?;
        let end = gra.checked_add(len.max(1))?;
        (end <= e.gra + e.len).then(|| e.pa + (gra - e.gra))
    }

    /// `[gra, gra + len)` split at extent boundaries, in guest address order;
    /// `None` if any byte lies outside guest memory. Empty for `len` 0.
    pub fn pieces(&self, gra: u64, len: u64) -> Option<Pieces<'_>> {
        let end = gra.checked_add(len)?;
        if end > self.size {
            return None;
        }
        let index = if len == 0 {
            self.extents.len()
        } else {
            self.index_of(gra)?
        };
        Some(Pieces {
            map: self,
            index,
            gra,
            end,
            start: gra,
        })
    }
}

/// Iterator of [`ExtentMap::pieces`].
pub struct Pieces<'a> {
    map: &'a ExtentMap,
    index: usize,
    gra: u64,
    end: u64,
    start: u64,
}

impl Iterator for Pieces<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.gra >= self.end {
            return None;
        }
        let e = self.map.extents.get(self.index)?;
        let stop = self.end.min(e.gra + e.len);
        let p = Piece {
            gra: self.gra,
            pa: e.pa + (self.gra - e.gra),
            len: stop - self.gra,
            offset: self.gra - self.start,
        };
        self.gra = stop;
        self.index += 1;
        Some(p)
    }
}

/// Alignment of a single block of `size` bytes: 1 GiB for multiples of 1 GiB
/// (so the partition-scoped tree could use 1 GiB pages), else 2 MiB.
pub fn block_align(size: u64) -> u64 {
    if size >= LARGE_BLOCK && size.is_multiple_of(LARGE_BLOCK) {
        LARGE_BLOCK
    } else {
        EXTENT_ALIGN
    }
}

/// Takes `size` bytes (a non-zero multiple of [`EXTENT_ALIGN`]) of guest
/// memory from `frames` (see the module documentation for the order). On
/// failure every frame taken is given back and the allocator's error returned.
/// The memory is not zeroed.
pub fn allocate(frames: &mut FrameAllocator, size: u64) -> Result<ExtentMap, FrameError> {
    if size == 0 || !size.is_multiple_of(EXTENT_ALIGN) {
        return Err(FrameError::BadRange);
    }
    if let Ok(pa) = frames.alloc(size, block_align(size)) {
        return ExtentMap::new(&[(pa, size)]).map_err(|_| FrameError::BadRange);
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut left = size;
    let result = loop {
        if left == 0 {
            break Ok(());
        }
        let run = if left >= LARGE_BLOCK {
            frames
                .alloc(LARGE_BLOCK, LARGE_BLOCK)
                .map(|pa| (pa, LARGE_BLOCK))
                .or_else(|_| frames.alloc_largest(left, EXTENT_ALIGN))
        } else {
            frames.alloc_largest(left, EXTENT_ALIGN)
        };
        match run {
            Ok(r) => {
                runs.push(r);
                left -= r.1;
            }
            Err(e) => break Err(e),
        }
    };
    match result.and_then(|()| ExtentMap::new(&runs).map_err(|_| FrameError::BadRange)) {
        Ok(map) => Ok(map),
        Err(e) => {
            for &(pa, len) in runs.iter().rev() {
                // Frames just taken from this allocator go back where they were.
                let _ = frames.free(pa, len);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::frame::PhysRange;
    use std::vec;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    /// Three extents at deliberately non-identity, non-monotonic host
    /// addresses: guest [0, 4M) at 100M, [4M, 6M) at 10M, [6M, 14M) at 1G.
    fn three() -> ExtentMap {
        ExtentMap::new(&[(100 * M, 4 * M), (10 * M, 2 * M), (G, 8 * M)]).unwrap()
    }

    #[test]
    fn layout_and_merging() {
        let m = three();
        assert_eq!(m.size(), 14 * M);
        assert_eq!(
            m.extents(),
            &[
                Extent {
                    gra: 0,
                    pa: 100 * M,
                    len: 4 * M
                },
                Extent {
                    gra: 4 * M,
                    pa: 10 * M,
                    len: 2 * M
                },
                Extent {
                    gra: 6 * M,
                    pa: G,
                    len: 8 * M
                },
            ]
        );
        // Physically adjacent runs become one extent.
        let m = ExtentMap::new(&[(10 * M, 2 * M), (12 * M, 4 * M), (2 * M, 2 * M)]).unwrap();
        assert_eq!(m.extents().len(), 2);
        assert_eq!(
            m.extents()[0],
            Extent {
                gra: 0,
                pa: 10 * M,
                len: 6 * M
            }
        );
        assert_eq!(
            m.extents()[1],
            Extent {
                gra: 6 * M,
                pa: 2 * M,
                len: 2 * M
            }
        );
        assert_eq!(ExtentMap::new(&[]), Err(ExtentError::Empty));
        assert_eq!(ExtentMap::new(&[(0, 0)]), Err(ExtentError::Empty));
        assert_eq!(ExtentMap::new(&[(M, 2 * M)]), Err(ExtentError::Misaligned));
        assert_eq!(ExtentMap::new(&[(0, 3 * M)]), Err(ExtentError::Misaligned));
        assert_eq!(
            ExtentMap::new(&[(!(EXTENT_ALIGN - 1), 4 * M)]),
            Err(ExtentError::Overflow)
        );
    }

    #[test]
    fn translate_every_boundary() {
        let m = three();
        assert_eq!(m.translate(0), Some(100 * M));
        assert_eq!(m.translate(4 * M - 1), Some(104 * M - 1));
        assert_eq!(m.translate(4 * M), Some(10 * M));
        assert_eq!(m.translate(6 * M - 1), Some(12 * M - 1));
        assert_eq!(m.translate(6 * M), Some(G));
        assert_eq!(m.translate(14 * M - 1), Some(G + 8 * M - 1));
        assert_eq!(m.translate(14 * M), None);
        assert_eq!(m.translate(u64::MAX), None);
        // Within one extent only.
        assert_eq!(m.contiguous(4 * M - 8, 8), Some(104 * M - 8));
        assert_eq!(m.contiguous(4 * M - 8, 9), None);
        assert_eq!(m.contiguous(5 * M, 0), Some(11 * M));
        assert_eq!(m.contiguous(14 * M - 4, 4), Some(G + 8 * M - 4));
        assert_eq!(m.contiguous(14 * M - 4, 5), None);
        assert_eq!(m.contiguous(u64::MAX, 2), None);
    }

    #[test]
    fn pieces_split_at_extent_boundaries() {
        let m = three();
        let all: Vec<Piece> = m.pieces(3 * M, 4 * M).unwrap().collect();
        assert_eq!(
            all,
            vec![
                Piece {
                    gra: 3 * M,
                    pa: 103 * M,
                    len: M,
                    offset: 0
                },
                Piece {
                    gra: 4 * M,
                    pa: 10 * M,
                    len: 2 * M,
                    offset: M
                },
                Piece {
                    gra: 6 * M,
                    pa: G,
                    len: M,
                    offset: 3 * M
                },
            ]
        );
        // One piece inside an extent; the whole memory; nothing for len 0.
        let one: Vec<Piece> = m.pieces(6 * M + 5, 10).unwrap().collect();
        assert_eq!(
            one,
            vec![Piece {
                gra: 6 * M + 5,
                pa: G + 5,
                len: 10,
                offset: 0
            }]
        );
        let whole: Vec<Piece> = m.pieces(0, 14 * M).unwrap().collect();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole.iter().map(|p| p.len).sum::<u64>(), 14 * M);
        assert_eq!(m.pieces(14 * M, 0).unwrap().count(), 0);
        // Outside memory, partly or by overflow: refused as a whole.
        assert!(m.pieces(13 * M, 2 * M).is_none());
        assert!(m.pieces(14 * M, 1).is_none());
        assert!(m.pieces(u64::MAX, 2).is_none());
    }

    /// Pieces of random ranges agree with a byte-by-byte translation.
    #[test]
    fn pieces_agree_with_translate() {
        let m = three();
        let mut rng = crate::testutil::XorShift::new(7);
        for _ in 0..2000 {
            let gra = rng.below(15 * M);
            let len = rng.below(6 * M);
            match m.pieces(gra, len) {
                None => assert!(gra + len > m.size()),
                Some(ps) => {
                    let mut at = gra;
                    for p in ps {
                        assert_eq!(p.gra, at);
                        assert_eq!(p.offset, at - gra);
                        assert!(p.len > 0);
                        assert_eq!(m.translate(p.gra), Some(p.pa));
                        assert_eq!(m.translate(p.gra + p.len - 1), Some(p.pa + p.len - 1));
                        assert_eq!(m.contiguous(p.gra, p.len), Some(p.pa));
                        at += p.len;
                    }
                    assert_eq!(at, gra + len);
                }
            }
        }
    }

    fn machine(free: &[(u64, u64)]) -> FrameAllocator {
        let mut a = FrameAllocator::new();
        for &(s, e) in free {
            a.add_free(PhysRange::new(s, e)).unwrap();
        }
        a
    }

    #[test]
    fn allocate_one_block_when_possible() {
        let mut a = machine(&[(0, 4 * G)]);
        let m = allocate(&mut a, G).unwrap();
        assert_eq!(
            m.extents(),
            &[Extent {
                gra: 0,
                pa: 0,
                len: G
            }]
        );
        let m = allocate(&mut a, 64 * M).unwrap();
        assert_eq!(
            m.extents(),
            &[Extent {
                gra: 0,
                pa: G,
                len: 64 * M
            }]
        );
        assert_eq!(allocate(&mut a, 3 * M), Err(FrameError::BadRange));
        assert_eq!(allocate(&mut a, 0), Err(FrameError::BadRange));
    }

    /// The machine `xtask run --kernel X --memory 1G` makes: 1.5 GiB with the
    /// hypervisor at the bottom, the bundle at 640 MiB, skiboot at 768 MiB.
    /// No 1 GiB block is free, yet a 1 GiB partition fits in pieces.
    #[test]
    fn allocate_around_holes() {
        let holes_machine = [(32 * M, 640 * M), (700 * M, 768 * M), (800 * M, 1536 * M)];
        let mut a = machine(&holes_machine);
        let free_before = a.free_bytes();
        assert_eq!(a.alloc(G, 2 * M), Err(FrameError::Exhausted));
        let m = allocate(&mut a, G).unwrap();
        assert_eq!(m.size(), G);
        // Largest runs first: 736 MiB above skiboot, then the rest below the bundle.
        assert_eq!(
            m.extents(),
            &[
                Extent {
                    gra: 0,
                    pa: 800 * M,
                    len: 736 * M
                },
                Extent {
                    gra: 736 * M,
                    pa: 32 * M,
                    len: 288 * M
                },
            ]
        );
        for e in m.extents() {
            assert!(e.pa.is_multiple_of(EXTENT_ALIGN) && e.len.is_multiple_of(EXTENT_ALIGN));
            assert!(!a.contains_free(e.pa) && !a.contains_free(e.pa + e.len - 1));
        }
        assert_eq!(a.free_bytes(), free_before - G);
        // A second partition gets what is left, disjoint from the first.
        let n = allocate(&mut a, 300 * M).unwrap();
        for e in n.extents() {
            for f in m.extents() {
                assert!(e.pa + e.len <= f.pa || f.pa + f.len <= e.pa);
            }
        }
        // Too much: nothing is kept.
        let before = a.clone();
        assert_eq!(allocate(&mut a, 512 * M), Err(FrameError::Exhausted));
        assert_eq!(a.ranges(), before.ranges());
    }

    #[test]
    fn allocate_prefers_gigabyte_blocks() {
        // No single block of 2 GiB + 128 MiB: a 1 GiB block first, then the
        // largest 2 MiB-aligned runs.
        let mut a = machine(&[(G / 2, 5 * G / 2), (4 * G, 4 * G + 256 * M)]);
        let m = allocate(&mut a, 2 * G + 128 * M).unwrap();
        assert_eq!(m.size(), 2 * G + 128 * M);
        assert_eq!(
            m.extents(),
            &[
                Extent {
                    gra: 0,
                    pa: G,
                    len: G
                },
                Extent {
                    gra: G,
                    pa: G / 2,
                    len: G / 2
                },
                Extent {
                    gra: 3 * G / 2,
                    pa: 2 * G,
                    len: G / 2
                },
                Extent {
                    gra: 2 * G,
                    pa: 4 * G,
                    len: 128 * M
                },
            ]
        );
    }
}
