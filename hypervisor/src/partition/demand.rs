//! Guest memory zeroed on first use, in 2 MiB chunks.
//!
//! A partition's memory must never show what an earlier owner of its frames left.
//! Zeroing all of it before the guest
//! starts is simple but costs time in proportion to its size, most of it for
//! memory a booting kernel never touches (and under QEMU, first-touching host
//! memory is slow). Instead:
//!
//! - at creation, only the chunks the loader writes into (kernel, initrd, device
//!   tree, RTAS) are zeroed (around what is written) and mapped in the
//!   partition-scoped tree;
//! - every other chunk stays unmapped; the guest's first access to it is a
//!   hypervisor storage interrupt (HDSI/HISI), and the hypervisor zeroes the chunk,
//!   maps it and lets the guest retry;
//! - the hypervisor's own accesses to guest memory (hcall and RTAS buffers) go
//!   through the same step first (`Partition::host_addr`).
//!
//! Invariant: a chunk is mapped for the guest, or handed to the hypervisor's
//! accessors, only after every byte of it was zeroed or written by the loader;
//! its bit in [`ChunkMap`] is set only then (under the partition's lock, with
//! Release ordering; readers use Acquire). Bits are never cleared: a reboot zeroes
//! every chunk eagerly and maps them all.
//!
//! This module decides (which chunks, which byte ranges to zero); `lpar` commits
//! (zeroes, maps). It builds and is tested on the host.
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::mm::frame::PhysRange;

/// Bytes per chunk: one 2 MiB page of the partition-scoped tree.
pub const CHUNK: u64 = 2 << 20;

/// Which chunks of a partition's memory are ready (zeroed and mapped).
pub struct ChunkMap {
    size: u64,
    bits: Vec<AtomicU64>,
}

impl ChunkMap {
    /// Every chunk of `size` bytes of memory not ready.
    pub fn new(size: u64) -> Self {
        let n = Self::count_for(size);
        let words = n.div_ceil(64) as usize;
        let mut bits = Vec::with_capacity(words);
        bits.resize_with(words, || AtomicU64::new(0));
        Self { size, bits }
    }

    fn count_for(size: u64) -> u64 {
        size.div_ceil(CHUNK)
    }

    pub fn count(&self) -> u64 {
        Self::count_for(self.size)
    }

    /// The chunk holding guest real `gra`, if it lies in memory.
    pub fn chunk_of(&self, gra: u64) -> Option<u64> {
        (gra < self.size).then_some(gra / CHUNK)
    }

    /// The guest real range of chunk `c` (the last one may be short).
    pub fn range(&self, c: u64) -> PhysRange {
        let start = c * CHUNK;
        PhysRange {
            start,
            end: (start + CHUNK).min(self.size),
        }
    }

    /// Chunks overlapping `[gra, gra + len)` (clipped to memory).
    pub fn chunks_in(&self, gra: u64, len: u64) -> core::ops::Range<u64> {
        let end = gra.saturating_add(len).min(self.size);
        if len == 0 || gra >= end {
            return 0..0;
        }
        gra / CHUNK..end.div_ceil(CHUNK)
    }

    pub fn is_ready(&self, c: u64) -> bool {
        self.bits
            .get((c / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (c % 64)) != 0)
    }

    /// Marks chunk `c` ready; call only once it is zeroed (or loaded) and mapped.
    pub fn set_ready(&self, c: u64) {
        if let Some(w) = self.bits.get((c / 64) as usize) {
            w.fetch_or(1 << (c % 64), Ordering::Release);
        }
    }

    pub fn all_ready(&self) -> bool {
        (0..self.count()).all(|c| self.is_ready(c))
    }
}

/// What to do before loading an image: zero `zero` (guest real ranges), then
/// treat `eager` chunks as ready once the loader has written `written`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ZeroPlan {
    pub zero: Vec<PhysRange>,
    pub eager: Vec<u64>,
}

/// Plans the zeroing of `map`'s memory around the ranges the loader writes.
/// With `lazy`, chunks the loader does not touch are left for first use;
/// otherwise every chunk is eager (a reboot scrubs them all).
pub fn plan(map: &ChunkMap, written: &[PhysRange], lazy: bool) -> ZeroPlan {
    let mut out = ZeroPlan::default();
    for c in 0..map.count() {
        let r = map.range(c);
        let touched = written.iter().any(|w| w.start < r.end && w.end > r.start);
        if lazy && !touched {
            continue;
        }
        out.eager.push(c);
        let mut rest = alloc::vec![r];
        for w in written {
            let mut next = Vec::new();
            for p in rest {
                if w.end <= p.start || w.start >= p.end {
                    next.push(p);
                    continue;
                }
                if w.start > p.start {
                    next.push(PhysRange {
                        start: p.start,
                        end: w.start,
                    });
                }
                if w.end < p.end {
                    next.push(PhysRange {
                        start: w.end,
                        end: p.end,
                    });
                }
            }
            rest = next;
        }
        // Merge with the previous range where they meet, so whole runs of chunks
        // are zeroed in one call.
        for p in rest {
            match out.zero.last_mut() {
                Some(last) if last.end == p.start => last.end = p.end,
                _ => out.zero.push(p),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    #[test]
    fn chunks_and_ranges() {
        let m = ChunkMap::new(9 * M);
        assert_eq!(m.count(), 5);
        assert_eq!(m.range(4), r(8 * M, 9 * M));
        assert_eq!(m.chunk_of(9 * M - 1), Some(4));
        assert_eq!(m.chunk_of(9 * M), None);
        assert_eq!(m.chunks_in(3 * M, 2 * M), 1..3);
        assert_eq!(m.chunks_in(8 * M, 100 * M), 4..5);
        assert_eq!(m.chunks_in(20 * M, 1), 0..0);
        assert_eq!(m.chunks_in(0, 0), 0..0);
        assert!(!m.is_ready(2));
        m.set_ready(2);
        assert!(m.is_ready(2) && !m.is_ready(1) && !m.all_ready());
        for c in 0..5 {
            m.set_ready(c);
        }
        assert!(m.all_ready());
        // Many chunks span several words.
        let big = ChunkMap::new(1 << 30);
        big.set_ready(300);
        assert!(big.is_ready(300) && !big.is_ready(299));
    }

    #[test]
    fn lazy_plan_zeroes_around_writes_in_touched_chunks_only() {
        let m = ChunkMap::new(16 * M);
        // A kernel over chunks 0-1 (and a bit of 2), a blob at the top.
        let written = [r(0, 4 * M + 100), r(16 * M - 64 * 1024, 16 * M - 60 * 1024)];
        let p = plan(&m, &written, true);
        assert_eq!(p.eager, [0, 1, 2, 7]);
        assert_eq!(
            p.zero,
            [
                r(4 * M + 100, 6 * M),
                r(14 * M, 16 * M - 64 * 1024),
                r(16 * M - 60 * 1024, 16 * M)
            ]
        );
    }

    #[test]
    fn eager_plan_covers_every_unwritten_byte() {
        let m = ChunkMap::new(7 * M);
        let written = [r(M, 3 * M), r(5 * M, 5 * M + 1)];
        let p = plan(&m, &written, false);
        assert_eq!(p.eager, [0, 1, 2, 3]);
        assert_eq!(p.zero, [r(0, M), r(3 * M, 5 * M), r(5 * M + 1, 7 * M)]);
        // Nothing written: one range, the whole memory.
        assert_eq!(plan(&m, &[], false).zero, [r(0, 7 * M)]);
        assert!(plan(&m, &[], true).eager.is_empty());
    }
}
