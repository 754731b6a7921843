//! Radix page-table builder (Power ISA v3.0B Book III 5.7.10, "Radix Tree
//! Translation"; unchanged in v3.1).
//!
//! One tree format serves both uses in Paprika:
//!
//! * the hypervisor's own process-scoped tree (effective address -> real address),
//!   installed through the process table for quadrant 3 (EA bits 0:1 = 0b11);
//! * partition-scoped trees (guest real address -> host real address), installed
//!   through a partition-table entry.
//!
//! # Layout
//!
//! The tree covers a 52-bit address space (RTS = 52 - 31 = 21) with four levels,
//! the same shape Linux uses for 4 KiB base pages:
//!
//! | level | index bits (of the address) | entries | table size | a leaf maps |
//! |-------|-----------------------------|---------|------------|-------------|
//! | 0 (root, RPDS = 13) | 51..39 | 8192 | 64 KiB | (no leaves) |
//! | 1 | 38..30 | 512 | 4 KiB | 1 GiB |
//! | 2 | 29..21 | 512 | 4 KiB | 2 MiB |
//! | 3 | 20..12 | 512 | 4 KiB | 4 KiB |
//!
//! (In 1-based level numbering, with the root as level 1: a leaf at level 2 maps
//! 1 GiB, at level 3 maps 2 MiB.) Every table is aligned to its own size, which the
//! ISA requires because the next-level base field drops the low-order bits.
//!
//! Entries are 64-bit big-endian words ([`Be64`]) whatever the endianness of the
//! code that writes them.
//!
//! # Table memory
//!
//! The builder reaches table memory only through [`TableMemory`], so the same code
//! runs on POWER (linear map) and in host unit tests (a `Vec` placed at a fake,
//! non-identity physical base, which catches physical/virtual mix-ups).
//!
//! # What the caller still has to do
//!
//! This module is portable: it issues no barriers and no TLB invalidations. After
//! changing a live tree the caller must order the stores (`ptesync`) and, after
//! [`RadixTree::unmap`], invalidate the TLB and page-walk cache for the range
//! (`tlbie`/`tlbiel`). Table memory is only ever returned to the allocator by
//! [`RadixTree::destroy`]; tables emptied by `unmap` stay linked (and are reused by
//! later `map` calls) so that hardware never walks freed memory through a stale
//! page-walk-cache entry.

use crate::be::Be64;
use bitflags::bitflags;

/// Bits of address translated by the tree.
pub const VA_BITS: u32 = 52;
/// Highest real address the builder accepts in a leaf or directory entry: 2^56.
///
/// POWER9 and Power10 implement 56-bit real addresses; the ISA's RPN field is one
/// bit wider than this, so every accepted address is encodable.
pub const PA_BITS: u32 = 56;

/// Size of the root table: 2^13 entries of 8 bytes (RPDS = 13).
pub const ROOT_TABLE_BYTES: u64 = 8 << ROOT_INDEX_BITS;
/// Size of a lower-level table: 2^9 entries of 8 bytes (NLS = 9).
pub const DIR_TABLE_BYTES: u64 = 8 << DIR_INDEX_BITS;

/// Index bits of the root level (RPDS).
pub const ROOT_INDEX_BITS: u32 = 13;
/// Index bits of every lower level (NLS).
pub const DIR_INDEX_BITS: u32 = 9;

/// Entry valid (both directory and leaf entries), ISA bit 0.
pub const PTE_V: u64 = 1 << 63;
/// Leaf entry, ISA bit 1.
pub const PTE_L: u64 = 1 << 62;
/// Real page number: the real address of the page, ISA bits 7:51 (limited here to
/// [`PA_BITS`]).
pub const PTE_RPN_MASK: u64 = 0x00FF_FFFF_FFFF_F000;
/// Reference bit, ISA bit 55.
pub const PTE_R: u64 = 0x100;
/// Change bit, ISA bit 56.
pub const PTE_C: u64 = 0x80;
/// Storage attributes (ATT), ISA bits 58:59.
pub const PTE_ATT_MASK: u64 = 0x30;
/// Encoded access authority (EAA), ISA bits 60:63; see [`PteFlags`].
pub const PTE_EAA_MASK: u64 = 0xF;
/// Next-level base of a directory entry, ISA bits 4:55 (limited to [`PA_BITS`]).
pub const PDE_NLB_MASK: u64 = 0x00FF_FFFF_FFFF_FF00;
/// Next-level size (log2 of the entry count) of a directory entry, ISA bits 59:63.
pub const PDE_NLS_MASK: u64 = 0x1F;

/// Radix tree size field for a 52-bit tree, as it sits in a partition- or
/// process-table entry: RTS = 21 = 0b10_101, split into RTS1 (ISA bits 1:2) and
/// RTS2 (ISA bits 56:58).
pub const RTS_52: u64 = (2 << 61) | (5 << 5);
/// Host Radix: partition-table entry dw0 bit 0, selects radix translation.
pub const PATE_HR: u64 = 1 << 63;
/// Root page-directory base field of dw0 (ISA bits 4:55, limited to [`PA_BITS`]).
pub const RPDB_MASK: u64 = 0x00FF_FFFF_FFFF_FF00;
/// Process-table base field of a PATE dw1, and partition-table base field of the
/// PTCR (ISA bits 4:51, limited to [`PA_BITS`]).
pub const TABLE_BASE_MASK: u64 = 0x00FF_FFFF_FFFF_F000;
/// Table size fields (RPDS, PRTS, PATS): ISA bits 59:63.
pub const SIZE_FIELD_MASK: u64 = 0x1F;

const LEVELS: usize = 4;
/// Position of the lowest address bit indexed at each level; an entry at level `i`
/// spans `1 << LEVEL_SHIFT[i]` bytes.
const LEVEL_SHIFT: [u32; LEVELS] = [39, 30, 21, 12];
const LEVEL_BITS: [u32; LEVELS] = [
    ROOT_INDEX_BITS,
    DIR_INDEX_BITS,
    DIR_INDEX_BITS,
    DIR_INDEX_BITS,
];
const VA_LIMIT: u64 = 1 << VA_BITS;
const PA_LIMIT: u64 = 1 << PA_BITS;
const PAGE_MASK: u64 = 0xFFF;

/// Storage-access hooks the builder uses to reach table memory.
///
/// Addresses are real (physical) addresses, because that is what directory entries
/// hold. On POWER the implementation goes through the hypervisor's linear map; the
/// host tests use a buffer at a fake base.
pub trait TableMemory {
    /// Allocates a zeroed table of `bytes` bytes aligned to `bytes` and returns its
    /// real address, or `None` if memory is exhausted.
    fn alloc_table(&mut self, bytes: u64) -> Option<u64>;
    /// Returns a table obtained from [`Self::alloc_table`] with the same size.
    fn free_table(&mut self, pa: u64, bytes: u64);
    /// Reads the 8-byte-aligned entry at `pa`, inside a table this trait allocated.
    fn read(&self, pa: u64) -> Be64;
    /// Writes the 8-byte-aligned entry at `pa`, inside a table this trait
    /// allocated. Must be a single 64-bit store, since the hardware may walk the
    /// tree concurrently.
    fn write(&mut self, pa: u64, v: Be64);
}

bitflags! {
    /// Access rights of a leaf: the EAA field (Power ISA v3.0B Book III 5.7.10,
    /// "Radix Tree Translation", leaf format; "Storage Protection").
    ///
    /// The values are the EAA bit positions, so `bits()` can be or-ed into a PTE.
    /// In the ISA, the "read/write" bit grants stores (and loads).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// Instruction fetch allowed (EAA bit 3).
        const EXEC = 0x1;
        /// Read/write: stores allowed (EAA bit 2).
        const WRITE = 0x2;
        /// Loads allowed (EAA bit 1).
        const READ = 0x4;
        /// Only privileged (MSR\[PR\] = 0) accesses allowed (EAA bit 0).
        const PRIVILEGED = 0x8;
    }
}

/// Storage attributes of a leaf (ATT field, ISA bits 58:59).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheAttr {
    /// 0b00: normal, cacheable, idempotent memory.
    Normal,
    /// 0b10: non-idempotent I/O (caching inhibited and guarded), for MMIO with side
    /// effects.
    NonIdempotentIo,
    /// 0b11: tolerant I/O (caching inhibited, not guarded).
    TolerantIo,
}

impl CacheAttr {
    /// The ATT bits of this attribute, in PTE position.
    pub const fn bits(self) -> u64 {
        match self {
            CacheAttr::Normal => 0x00,
            CacheAttr::NonIdempotentIo => 0x20,
            CacheAttr::TolerantIo => 0x30,
        }
    }

    /// Decodes the ATT field of a PTE; `None` for 0b01 (SAO in v3.0, reserved in
    /// v3.1), which this builder never writes.
    pub const fn from_pte(pte: u64) -> Option<Self> {
        match pte & PTE_ATT_MASK {
            0x00 => Some(CacheAttr::Normal),
            0x20 => Some(CacheAttr::NonIdempotentIo),
            0x30 => Some(CacheAttr::TolerantIo),
            _ => None,
        }
    }
}

/// Page sizes the builder creates; ordered smallest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB: a leaf in a level-3 table.
    Size4K,
    /// 2 MiB: a leaf in a level-2 table.
    Size2M,
    /// 1 GiB: a leaf in a level-1 table.
    Size1G,
}

impl PageSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// log2 of the size.
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// The page size of a leaf at `level` (0 = root), if leaves are built there.
    const fn at_level(level: usize) -> Option<Self> {
        match level {
            1 => Some(PageSize::Size1G),
            2 => Some(PageSize::Size2M),
            3 => Some(PageSize::Size4K),
            _ => None,
        }
    }
}

/// Why a mapping operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or size is not a multiple of 4 KiB.
    Misaligned,
    /// The range reaches past 2^52 (virtual) or 2^56 (real), or overflows.
    OutOfRange,
    /// Part of the range is already mapped (nothing was changed).
    AlreadyMapped,
    /// Part of the range is not mapped (nothing was changed).
    NotMapped,
    /// [`TableMemory::alloc_table`] failed or returned an unusable address.
    NoMemory,
}

/// Result of [`RadixTree::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Real address that the queried address translates to (page base + offset).
    pub pa: u64,
    /// Size of the leaf that maps it.
    pub size: PageSize,
    /// Access rights of the leaf.
    pub flags: PteFlags,
    /// Storage attributes of the leaf.
    pub attr: CacheAttr,
}

/// Encodes a leaf PTE mapping the page at `pa` (Power ISA v3.0B Book III 5.7.10).
///
/// R and C are always set: the builder's leaves are never paged out, and setting
/// them up front avoids a reference/change update (QEMU and some implementations
/// raise a storage interrupt instead of updating them).
pub const fn leaf_pte(pa: u64, flags: PteFlags, attr: CacheAttr) -> u64 {
    PTE_V
        | PTE_L
        | (pa & PTE_RPN_MASK)
        | PTE_R
        | PTE_C
        | attr.bits()
        | (flags.bits() & PTE_EAA_MASK)
}

/// Encodes a directory entry pointing at a 512-entry table at `next_table`
/// (NLS = 9; Power ISA v3.0B Book III 5.7.10).
pub const fn dir_pte(next_table: u64) -> u64 {
    PTE_V | (next_table & PDE_NLB_MASK) | DIR_INDEX_BITS as u64
}

/// The per-level table indices of `va` (element 0 is the root index).
pub const fn level_indices(va: u64) -> [usize; 4] {
    [
        level_index(va, 0),
        level_index(va, 1),
        level_index(va, 2),
        level_index(va, 3),
    ]
}

/// Converts an effective address in quadrant 3 or quadrant 0 (EA bits 0:1 equal
/// to 0b11 or 0b00) to the 52-bit address the tree translates; `None` if any of
/// EA bits 2:11 is set, which the hardware reports as a segment interrupt for a
/// 52-bit tree.
pub const fn tree_address(ea: u64) -> Option<u64> {
    let va = ea & !(0b11 << 62);
    if va < VA_LIMIT {
        Some(va)
    } else {
        None
    }
}

/// Partition- or process-table dw0 for a 52-bit radix tree rooted at `root`:
/// RTS | RPDB | RPDS (without HR). `root` must be 64 KiB aligned, as
/// [`RadixTree::new`] guarantees; bits outside the field are dropped.
pub const fn radix_root_dw0(root: u64) -> u64 {
    RTS_52 | (root & RPDB_MASK) | ROOT_INDEX_BITS as u64
}

/// A partition-table entry (Power ISA v3.0B Book III, "Partition Table")
/// for a radix partition: dw0 = HR | RTS | root | RPDS of the partition-scoped
/// tree (for the host, LPID 0, the tree is unused but HR selects radix), dw1 =
/// process-table base | PRTS (table size 2^(12 + PRTS) bytes, base aligned to
/// it). Bits outside the fields are dropped.
pub const fn pate(root: u64, process_table: u64, prts: u8) -> [Be64; 2] {
    [
        Be64::new(PATE_HR | radix_root_dw0(root)),
        Be64::new((process_table & TABLE_BASE_MASK) | (prts as u64 & SIZE_FIELD_MASK)),
    ]
}

/// A process-table entry for a radix tree (Power ISA v3.0B Book III,
/// "Process Table"): dw0 = RTS | root | RPDS, dw1 = 0 (reserved for radix).
pub const fn process_table_entry(root: u64) -> [Be64; 2] {
    [Be64::new(radix_root_dw0(root)), Be64::ZERO]
}

/// The Partition Table Control Register value (Power ISA v3.0B Book III,
/// "Partition Table Control Register"):
/// partition-table base | PATS, the table being 2^(12 + PATS) bytes and aligned to
/// that size. Bits outside the fields are dropped.
pub const fn ptcr(partition_table: u64, pats: u8) -> u64 {
    (partition_table & TABLE_BASE_MASK) | (pats as u64 & SIZE_FIELD_MASK)
}

const fn level_index(va: u64, level: usize) -> usize {
    ((va >> LEVEL_SHIFT[level]) & ((1 << LEVEL_BITS[level]) - 1)) as usize
}

const fn table_bytes_at(level: usize) -> u64 {
    8 << LEVEL_BITS[level]
}

const fn entry_pa(table: u64, level: usize, va: u64) -> u64 {
    table + 8 * level_index(va, level) as u64
}

/// A decoded table entry.
#[derive(Clone, Copy)]
enum Entry {
    Empty,
    Leaf(u64),
    Dir(u64),
    /// Valid but not something this builder writes at this level (a root leaf, a
    /// directory below level 2 or with another NLS): treated as occupied and
    /// never followed.
    Foreign,
}

fn decode(raw: u64, level: usize) -> Entry {
    if raw & PTE_V == 0 {
        Entry::Empty
    } else if raw & PTE_L != 0 {
        if PageSize::at_level(level).is_some() {
            Entry::Leaf(raw)
        } else {
            Entry::Foreign
        }
    } else if level + 1 < LEVELS && raw & PDE_NLS_MASK == LEVEL_BITS[level + 1] as u64 {
        Entry::Dir(raw & PDE_NLB_MASK)
    } else {
        Entry::Foreign
    }
}

fn read_entry(mem: &impl TableMemory, table: u64, level: usize, va: u64) -> Entry {
    decode(mem.read(entry_pa(table, level, va)).get(), level)
}

/// End of the level-`level` entry containing `va`, clipped to `end`.
fn entry_end(va: u64, level: usize, end: u64) -> u64 {
    let span = 1u64 << LEVEL_SHIFT[level];
    ((va | (span - 1)) + 1).min(end)
}

fn alloc_table(mem: &mut impl TableMemory, bytes: u64) -> Result<u64, MapError> {
    let pa = mem.alloc_table(bytes).ok_or(MapError::NoMemory)?;
    let fits = pa.checked_add(bytes).is_some_and(|end| end <= PA_LIMIT);
    if pa & (bytes - 1) != 0 || !fits {
        mem.free_table(pa, bytes);
        return Err(MapError::NoMemory);
    }
    Ok(pa)
}

/// True if any leaf (or foreign entry) lies in `[start, end)` below `table`.
fn any_present(mem: &impl TableMemory, table: u64, level: usize, start: u64, end: u64) -> bool {
    let mut va = start;
    while va < end {
        let next = entry_end(va, level, end);
        match read_entry(mem, table, level, va) {
            Entry::Empty => {}
            Entry::Leaf(_) | Entry::Foreign => return true,
            Entry::Dir(t) => {
                if any_present(mem, t, level + 1, va, next) {
                    return true;
                }
            }
        }
        va = next;
    }
    false
}

/// True if every page of `[start, end)` below `table` is mapped by a leaf.
fn all_mapped(mem: &impl TableMemory, table: u64, level: usize, start: u64, end: u64) -> bool {
    let mut va = start;
    while va < end {
        let next = entry_end(va, level, end);
        match read_entry(mem, table, level, va) {
            Entry::Leaf(_) => {}
            Entry::Empty | Entry::Foreign => return false,
            Entry::Dir(t) => {
                if !all_mapped(mem, t, level + 1, va, next) {
                    return false;
                }
            }
        }
        va = next;
    }
    true
}

/// Clears every leaf lying entirely inside `[start, end)` below `table`. Leaves
/// crossing the boundary are left alone (callers split them first). Never
/// allocates, so it cannot fail.
fn clear_leaves(mem: &mut impl TableMemory, table: u64, level: usize, start: u64, end: u64) {
    let span = 1u64 << LEVEL_SHIFT[level];
    let mut va = start;
    while va < end {
        let next = entry_end(va, level, end);
        match read_entry(mem, table, level, va) {
            Entry::Leaf(_) if next - va == span => {
                mem.write(entry_pa(table, level, va), Be64::ZERO);
            }
            Entry::Dir(t) => clear_leaves(mem, t, level + 1, va, next),
            _ => {}
        }
        va = next;
    }
}

fn free_subtree(mem: &mut impl TableMemory, table: u64, level: usize) {
    if level + 1 < LEVELS {
        for i in 0..(1u64 << LEVEL_BITS[level]) {
            if let Entry::Dir(t) = decode(mem.read(table + 8 * i).get(), level) {
                free_subtree(mem, t, level + 1);
            }
        }
    }
    mem.free_table(table, table_bytes_at(level));
}

fn subtree_bytes(mem: &impl TableMemory, table: u64, level: usize) -> u64 {
    let mut total = table_bytes_at(level);
    if level + 1 < LEVELS {
        for i in 0..(1u64 << LEVEL_BITS[level]) {
            if let Entry::Dir(t) = decode(mem.read(table + 8 * i).get(), level) {
                total += subtree_bytes(mem, t, level + 1);
            }
        }
    }
    total
}

/// Checks the common arguments of map/unmap and returns the exclusive end.
fn check_range(va: u64, size: u64) -> Result<u64, MapError> {
    if (va | size) & PAGE_MASK != 0 {
        return Err(MapError::Misaligned);
    }
    va.checked_add(size)
        .filter(|&end| end <= VA_LIMIT)
        .ok_or(MapError::OutOfRange)
}

/// A 52-bit radix tree. Owns its tables; release them with [`Self::destroy`].
#[derive(Debug, PartialEq, Eq)]
pub struct RadixTree {
    root: u64,
}

impl RadixTree {
    /// Allocates an empty tree (a zeroed, 64 KiB-aligned root table).
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, MapError> {
        let root = alloc_table(mem, ROOT_TABLE_BYTES)?;
        Ok(Self { root })
    }

    /// Real address of the root table, for [`radix_root_dw0`], [`pate`] and
    /// [`process_table_entry`].
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)`.
    ///
    /// Each step uses the largest page (1 GiB, 2 MiB, 4 KiB) no larger than `max`
    /// to which both the current `va` and `pa` are aligned and which fits in the
    /// rest of the range. Where an earlier `unmap` left an (empty) lower-level
    /// table, smaller pages are used inside it rather than freeing it.
    ///
    /// `va`, `pa` and `size` must be 4 KiB aligned ([`MapError::Misaligned`]);
    /// the range must end at or below 2^52 (virtual) and 2^56 (real)
    /// ([`MapError::OutOfRange`]). A zero size does nothing. If any page of the
    /// range is already mapped, nothing is changed ([`MapError::AlreadyMapped`]).
    /// If table memory runs out, the leaves written so far are removed again
    /// ([`MapError::NoMemory`]); tables allocated on the way stay linked (empty)
    /// until [`Self::destroy`].
    // The argument list mirrors a PTE's contents; bundling it would only move the
    // same fields into a struct at every call site.
    #[allow(clippy::too_many_arguments)]
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        flags: PteFlags,
        attr: CacheAttr,
        max: PageSize,
    ) -> Result<(), MapError> {
        let end = check_range(va, size)?;
        if pa & PAGE_MASK != 0 {
            return Err(MapError::Misaligned);
        }
        pa.checked_add(size)
            .filter(|&pa_end| pa_end <= PA_LIMIT)
            .ok_or(MapError::OutOfRange)?;
        if size == 0 {
            return Ok(());
        }
        if any_present(mem, self.root, 0, va, end) {
            return Err(MapError::AlreadyMapped);
        }

        let template = leaf_pte(0, flags, attr);
        let mut cur = va;
        while cur < end {
            let cur_pa = pa + (cur - va);
            let want = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K]
                .into_iter()
                .find(|&s| {
                    let mask = s.bytes() - 1;
                    s <= max && (cur | cur_pa) & mask == 0 && end - cur >= s.bytes()
                })
                .unwrap_or(PageSize::Size4K);
            match self.map_one(mem, cur, cur_pa, want, template) {
                Ok(mapped) => cur += mapped,
                Err(err) => {
                    clear_leaves(mem, self.root, 0, va, cur);
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Writes one leaf of at most `want` for `va` (known to be unmapped) and
    /// returns the number of bytes it maps.
    fn map_one(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        want: PageSize,
        template: u64,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        for level in 0..LEVELS {
            let epa = entry_pa(table, level, va);
            match decode(mem.read(epa).get(), level) {
                Entry::Empty => {
                    if let Some(s) = PageSize::at_level(level) {
                        if s <= want {
                            mem.write(epa, Be64::new(template | (pa & PTE_RPN_MASK)));
                            return Ok(s.bytes());
                        }
                    }
                    // The new table is zeroed before it becomes reachable.
                    let t = alloc_table(mem, DIR_TABLE_BYTES)?;
                    mem.write(epa, Be64::new(dir_pte(t)));
                    table = t;
                }
                Entry::Dir(t) => table = t,
                Entry::Leaf(_) | Entry::Foreign => return Err(MapError::AlreadyMapped),
            }
        }
        // Level 3 always takes a 4 KiB leaf or reports the entry occupied.
        Err(MapError::AlreadyMapped)
    }

    /// Unmaps `[va, va + size)`.
    ///
    /// A 1 GiB or 2 MiB leaf that is only partly inside the range is first split
    /// into 512 smaller leaves with the same attributes (so the rest keeps its
    /// translation), e.g. to carve a 4 KiB guard page out of a large-page linear
    /// map. Splitting replaces the leaf with a directory entry in one store, so the
    /// surviving translations never disappear, even transiently.
    ///
    /// Every page of the range must be mapped ([`MapError::NotMapped`], nothing
    /// changed). If a split runs out of table memory, [`MapError::NoMemory`] is
    /// returned with no translation changed (some leaves may have been split).
    /// Tables are not freed; see the module documentation. The caller must
    /// invalidate the TLB and page-walk cache for the range afterwards.
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
    ) -> Result<(), MapError> {
        let end = check_range(va, size)?;
        if size == 0 {
            return Ok(());
        }
        if !all_mapped(mem, self.root, 0, va, end) {
            return Err(MapError::NotMapped);
        }
        self.split_at(mem, va)?;
        if end < VA_LIMIT {
            self.split_at(mem, end)?;
        }
        clear_leaves(mem, self.root, 0, va, end);
        Ok(())
    }

    /// Splits leaves until `addr` is a boundary between leaves (or unmapped).
    fn split_at(&mut self, mem: &mut impl TableMemory, addr: u64) -> Result<(), MapError> {
        let mut table = self.root;
        for level in 0..LEVELS {
            let epa = entry_pa(table, level, addr);
            match decode(mem.read(epa).get(), level) {
                Entry::Empty | Entry::Foreign => return Ok(()),
                Entry::Dir(t) => table = t,
                Entry::Leaf(raw) => {
                    let span = 1u64 << LEVEL_SHIFT[level];
                    if addr & (span - 1) == 0 || level + 1 >= LEVELS {
                        return Ok(());
                    }
                    let t = alloc_table(mem, DIR_TABLE_BYTES)?;
                    let child_span = 1u64 << LEVEL_SHIFT[level + 1];
                    let base = raw & PTE_RPN_MASK & !(span - 1);
                    let attrs = raw & !PTE_RPN_MASK;
                    for i in 0..(1u64 << LEVEL_BITS[level + 1]) {
                        let child = attrs | ((base + i * child_span) & PTE_RPN_MASK);
                        mem.write(t + 8 * i, Be64::new(child));
                    }
                    // Fully populated before it becomes reachable.
                    mem.write(epa, Be64::new(dir_pte(t)));
                    table = t;
                }
            }
        }
        Ok(())
    }

    /// Looks up `va` (a tree address below 2^52) the way the hardware would.
    pub fn translate(&self, mem: &impl TableMemory, va: u64) -> Option<Translation> {
        if va >= VA_LIMIT {
            return None;
        }
        let mut table = self.root;
        for level in 0..LEVELS {
            match read_entry(mem, table, level, va) {
                Entry::Dir(t) => table = t,
                Entry::Leaf(raw) => {
                    let size = PageSize::at_level(level)?;
                    let offset_mask = size.bytes() - 1;
                    return Some(Translation {
                        pa: (raw & PTE_RPN_MASK & !offset_mask) | (va & offset_mask),
                        size,
                        flags: PteFlags::from_bits_truncate(raw & PTE_EAA_MASK),
                        attr: CacheAttr::from_pte(raw)?,
                    });
                }
                Entry::Empty | Entry::Foreign => return None,
            }
        }
        None
    }

    /// Bytes of table memory the tree uses (root included).
    pub fn table_bytes(&self, mem: &impl TableMemory) -> u64 {
        subtree_bytes(mem, self.root, 0)
    }

    /// Frees every table of the tree. The tree must no longer be installed (or the
    /// caller must have switched away from it and invalidated the TLB and
    /// page-walk cache).
    pub fn destroy(self, mem: &mut impl TableMemory) {
        free_subtree(mem, self.root, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const K4: u64 = 1 << 12;
    const M2: u64 = 1 << 21;
    const G1: u64 = 1 << 30;
    /// Fake physical base of the table memory: deliberately not identity-mapped
    /// and not the address of the backing buffer.
    const FAKE_BASE: u64 = 0x1_2340_0000;
    const RW: PteFlags = PteFlags::READ.union(PteFlags::WRITE);

    /// Table memory backed by a `Vec`, at a fake physical base. Freed memory is
    /// never reused and every access is checked against the live tables.
    struct FakeMem {
        words: Vec<u64>, // raw (big-endian) patterns
        next: u64,
        live: BTreeMap<u64, u64>,
        allocs: usize,
        frees: usize,
        /// Remaining successful allocations, if limited.
        budget: Option<usize>,
    }

    impl FakeMem {
        fn new() -> Self {
            Self {
                words: Vec::new(),
                next: FAKE_BASE,
                live: BTreeMap::new(),
                allocs: 0,
                frees: 0,
                budget: None,
            }
        }

        fn index(&self, pa: u64) -> usize {
            assert_eq!(pa % 8, 0, "unaligned entry access {pa:#x}");
            let (&start, &bytes) = self
                .live
                .range(..=pa)
                .next_back()
                .unwrap_or_else(|| panic!("access outside tables {pa:#x}"));
            assert!(pa < start + bytes, "access outside tables {pa:#x}");
            ((pa - FAKE_BASE) / 8) as usize
        }

        fn raw_at(&self, pa: u64) -> u64 {
            u64::from_be(self.read(pa).raw())
        }

        fn live_bytes(&self) -> u64 {
            self.live.values().sum()
        }
    }

    impl TableMemory for FakeMem {
        fn alloc_table(&mut self, bytes: u64) -> Option<u64> {
            if let Some(b) = self.budget.as_mut() {
                if *b == 0 {
                    return None;
                }
                *b -= 1;
            }
            let pa = self.next.div_ceil(bytes) * bytes;
            self.next = pa + bytes;
            let words = ((self.next - FAKE_BASE) / 8) as usize;
            if self.words.len() < words {
                self.words.resize(words, 0);
            }
            let first = ((pa - FAKE_BASE) / 8) as usize;
            self.words[first..words].fill(0);
            self.live.insert(pa, bytes);
            self.allocs += 1;
            Some(pa)
        }

        fn free_table(&mut self, pa: u64, bytes: u64) {
            assert_eq!(self.live.remove(&pa), Some(bytes), "bad free {pa:#x}");
            let first = ((pa - FAKE_BASE) / 8) as usize;
            self.words[first..first + (bytes / 8) as usize].fill(0xDEAD_BEEF_DEAD_BEEF);
            self.frees += 1;
        }

        fn read(&self, pa: u64) -> Be64 {
            Be64::from_raw(self.words[self.index(pa)])
        }

        fn write(&mut self, pa: u64, v: Be64) {
            let i = self.index(pa);
            self.words[i] = v.raw();
        }
    }

    fn setup() -> (FakeMem, RadixTree) {
        let mut mem = FakeMem::new();
        let tree = RadixTree::new(&mut mem).unwrap();
        (mem, tree)
    }

    /// Reads the entry for `va` at `level` by walking directory entries by hand.
    fn raw_entry(mem: &FakeMem, tree: &RadixTree, va: u64, level: usize) -> u64 {
        let mut table = tree.root();
        for l in 0..level {
            let e = mem.raw_at(table + 8 * level_indices(va)[l] as u64);
            assert_eq!(e & (PTE_V | PTE_L), PTE_V, "not a directory at level {l}");
            table = e & PDE_NLB_MASK;
        }
        mem.raw_at(table + 8 * level_indices(va)[level] as u64)
    }

    fn check(mem: &FakeMem, tree: &RadixTree, va: u64, pa: u64, size: PageSize, flags: PteFlags) {
        let t = tree
            .translate(mem, va)
            .unwrap_or_else(|| panic!("{va:#x} not mapped"));
        assert_eq!(
            t,
            Translation {
                pa,
                size,
                flags,
                attr: CacheAttr::Normal
            },
            "va {va:#x}"
        );
    }

    #[test]
    fn leaf_encodings() {
        assert_eq!(
            leaf_pte(0x1234_5000, RW, CacheAttr::Normal),
            0xC000_0000_1234_5186
        );
        assert_eq!(
            leaf_pte(
                0x00AB_CDEF_0123_4000,
                PteFlags::all(),
                CacheAttr::NonIdempotentIo
            ),
            0xC0AB_CDEF_0123_41AF
        );
        assert_eq!(
            leaf_pte(
                0x4000_0000,
                PteFlags::READ | PteFlags::EXEC,
                CacheAttr::TolerantIo
            ),
            0xC000_0000_4000_01B5
        );
        assert_eq!(
            leaf_pte(
                0x2000,
                PteFlags::PRIVILEGED | PteFlags::READ,
                CacheAttr::Normal
            ),
            0xC000_0000_0000_218C
        );
        // Offset bits and bits above 2^56 never leak into other fields.
        assert_eq!(
            leaf_pte(0xFF00_0000_0000_0FFF, PteFlags::empty(), CacheAttr::Normal),
            0xC000_0000_0000_0180
        );
        assert_eq!(PteFlags::EXEC.bits(), 0x1);
        assert_eq!(PteFlags::WRITE.bits(), 0x2);
        assert_eq!(PteFlags::READ.bits(), 0x4);
        assert_eq!(PteFlags::PRIVILEGED.bits(), 0x8);
        assert_eq!(CacheAttr::from_pte(0x10), None);
        for a in [
            CacheAttr::Normal,
            CacheAttr::NonIdempotentIo,
            CacheAttr::TolerantIo,
        ] {
            assert_eq!(CacheAttr::from_pte(leaf_pte(0, RW, a)), Some(a));
        }
    }

    #[test]
    fn directory_encoding() {
        assert_eq!(dir_pte(0x1_2341_0000), 0x8000_0001_2341_0009);
        assert_eq!(dir_pte(0x00FF_FFFF_FFFF_F000), 0x80FF_FFFF_FFFF_F009);
    }

    #[test]
    fn walk_indices() {
        let va = (5 << 39) | (7 << 30) | (9 << 21) | (11 << 12) | 0x123;
        assert_eq!(level_indices(va), [5, 7, 9, 11]);
        assert_eq!(level_indices(VA_LIMIT - 1), [8191, 511, 511, 511]);
        assert_eq!(level_indices(0), [0; 4]);
        assert_eq!(level_indices(0x000F_FFC0_0000_0000), [0x1FFF, 0x100, 0, 0]);
    }

    #[test]
    fn tree_address_strips_quadrant() {
        assert_eq!(tree_address(0xC000_0000_1234_5000), Some(0x1234_5000));
        assert_eq!(tree_address(0xC00F_FFFF_FFFF_FFFF), Some(VA_LIMIT - 1));
        assert_eq!(tree_address(0x0000_0000_0000_1000), Some(0x1000));
        assert_eq!(tree_address(0xC010_0000_0000_0000), None);
        assert_eq!(tree_address(1 << 52), None);
    }

    #[test]
    fn new_tree_root_is_aligned_and_empty() {
        let (mem, tree) = setup();
        assert_eq!(tree.root(), FAKE_BASE);
        assert_eq!(tree.root() % ROOT_TABLE_BYTES, 0);
        assert_eq!(tree.table_bytes(&mem), 64 * 1024);
        assert_eq!(tree.translate(&mem, 0), None);
    }

    #[test]
    fn exact_entries_in_memory() {
        let (mut mem, mut tree) = setup();
        let va = (3 << 39) | (4 << 30) | (5 << 21) | (6 << 12);
        tree.map(
            &mut mem,
            va,
            0x7654_3000,
            K4,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        // Root entry 3 points at the first 4K table after the 64K root.
        let l1 = FAKE_BASE + 0x1_0000;
        let l2 = l1 + 0x1000;
        let l3 = l2 + 0x1000;
        assert_eq!(mem.raw_at(FAKE_BASE + 8 * 3), 0x8000_0001_2341_0009);
        assert_eq!(mem.raw_at(l1 + 8 * 4), 0x8000_0001_2341_1009);
        assert_eq!(mem.raw_at(l2 + 8 * 5), 0x8000_0001_2341_2009);
        assert_eq!(mem.raw_at(l3 + 8 * 6), 0xC000_0000_7654_3186);
        // Stored big-endian: the first byte in memory holds V|L.
        assert_eq!(mem.read(l3 + 8 * 6).to_bytes()[0], 0xC0);
        assert_eq!(mem.read(l3 + 8 * 6).get(), 0xC000_0000_7654_3186);
        assert_eq!(raw_entry(&mem, &tree, va, 3), 0xC000_0000_7654_3186);
        // Neighbouring entries untouched.
        assert_eq!(mem.raw_at(l3 + 8 * 5), 0);
        assert_eq!(mem.raw_at(l3 + 8 * 7), 0);
        check(&mem, &tree, va + 0x10, 0x7654_3010, PageSize::Size4K, RW);
    }

    #[test]
    fn page_size_selection() {
        // Both 1G aligned: a single 1G leaf at level 1, no lower tables.
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            G1,
            2 * G1,
            G1,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        assert_eq!(
            raw_entry(&mem, &tree, G1, 1),
            leaf_pte(2 * G1, RW, CacheAttr::Normal)
        );
        assert_eq!(tree.table_bytes(&mem), 0x1_0000 + 0x1000);
        check(
            &mem,
            &tree,
            (G1 + 0x1234_5678) & !0xFFF,
            2 * G1 + 0x1234_5000,
            PageSize::Size1G,
            RW,
        );

        // va 1G aligned but pa only 2M aligned: 2M pages.
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            G1,
            3 * M2,
            G1,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        assert_eq!(tree.table_bytes(&mem), 0x1_0000 + 2 * 0x1000);
        check(&mem, &tree, G1, 3 * M2, PageSize::Size2M, RW);
        check(
            &mem,
            &tree,
            2 * G1 - K4,
            3 * M2 + G1 - K4,
            PageSize::Size2M,
            RW,
        );

        // max = 2M on 1G-aligned addresses: 2M pages.
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            G1,
            G1,
            G1,
            RW,
            CacheAttr::Normal,
            PageSize::Size2M,
        )
        .unwrap();
        check(&mem, &tree, G1 + 5 * M2, G1 + 5 * M2, PageSize::Size2M, RW);

        // Only 4K aligned relative to each other: 4K pages.
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            M2,
            M2 + K4,
            M2,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        assert_eq!(tree.table_bytes(&mem), 0x1_0000 + 3 * 0x1000);
        check(&mem, &tree, M2, M2 + K4, PageSize::Size4K, RW);
        check(&mem, &tree, 2 * M2 - K4, 2 * M2, PageSize::Size4K, RW);
        assert_eq!(tree.translate(&mem, 2 * M2), None);

        // max = 4K.
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            0,
            0,
            2 * M2,
            RW,
            CacheAttr::Normal,
            PageSize::Size4K,
        )
        .unwrap();
        check(&mem, &tree, M2, M2, PageSize::Size4K, RW);
    }

    #[test]
    fn large_misaligned_range() {
        let (mut mem, mut tree) = setup();
        // Starts 4K below a 1G boundary with va and pa congruent modulo 1G.
        let va = G1 - K4;
        let pa = 0x2_0000_0000 - K4;
        let size = 3 * G1 + 2 * K4;
        let fl = PteFlags::READ | PteFlags::EXEC;
        tree.map(
            &mut mem,
            va,
            pa,
            size,
            fl,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        check(&mem, &tree, va, pa, PageSize::Size4K, fl);
        for g in 1..4 {
            check(
                &mem,
                &tree,
                g * G1,
                pa + K4 + (g - 1) * G1,
                PageSize::Size1G,
                fl,
            );
            check(
                &mem,
                &tree,
                g * G1 + G1 - K4,
                pa + g * G1,
                PageSize::Size1G,
                fl,
            );
        }
        check(&mem, &tree, 4 * G1, pa + 3 * G1 + K4, PageSize::Size4K, fl);
        assert_eq!(tree.translate(&mem, va - K4), None);
        assert_eq!(tree.translate(&mem, 4 * G1 + K4), None);
        // Tables: root, one level-1 table, and for each 4K end a level-2 and a
        // level-3 table.
        assert_eq!(tree.table_bytes(&mem), 0x1_0000 + 5 * 0x1000);
    }

    #[test]
    fn already_mapped_changes_nothing() {
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            G1,
            G1,
            G1,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        tree.map(
            &mut mem,
            4 * M2,
            0,
            2 * M2,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        let bytes = tree.table_bytes(&mem);
        let allocs = mem.allocs;
        // Range whose start is free but which runs into the 1G page.
        assert_eq!(
            tree.map(
                &mut mem,
                G1 - M2,
                0x1000_0000,
                2 * M2,
                RW,
                CacheAttr::Normal,
                PageSize::Size1G
            ),
            Err(MapError::AlreadyMapped)
        );
        // A single 4K page inside the 1G page.
        assert_eq!(
            tree.map(
                &mut mem,
                G1 + 0x5000,
                0,
                K4,
                RW,
                CacheAttr::Normal,
                PageSize::Size4K
            ),
            Err(MapError::AlreadyMapped)
        );
        // Overlapping a 2M page by its last 4K.
        assert_eq!(
            tree.map(
                &mut mem,
                6 * M2 - K4,
                0,
                2 * K4,
                RW,
                CacheAttr::Normal,
                PageSize::Size4K
            ),
            Err(MapError::AlreadyMapped)
        );
        assert_eq!(mem.allocs, allocs);
        assert_eq!(tree.table_bytes(&mem), bytes);
        assert_eq!(tree.translate(&mem, G1 - M2), None);
        assert_eq!(tree.translate(&mem, 6 * M2), None);
        check(&mem, &tree, G1, G1, PageSize::Size1G, RW);
        // The free gap right before the 2M pages is still mappable.
        tree.map(
            &mut mem,
            4 * M2 - K4,
            0x9000,
            K4,
            RW,
            CacheAttr::Normal,
            PageSize::Size4K,
        )
        .unwrap();
    }

    #[test]
    fn unmap_carves_guard_page_out_of_1g_page() {
        let (mut mem, mut tree) = setup();
        let va = 5 * G1;
        let pa = 0x40_0000_0000;
        let fl = PteFlags::READ | PteFlags::WRITE | PteFlags::PRIVILEGED;
        tree.map(
            &mut mem,
            va,
            pa,
            G1,
            fl,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        let before = tree.table_bytes(&mem);
        let hole = va + 0x1234_5000;
        tree.unmap(&mut mem, hole, K4).unwrap();
        // Split 1G -> 512 x 2M, then the 2M holding the hole -> 512 x 4K.
        assert_eq!(tree.table_bytes(&mem), before + 2 * 0x1000);
        let hole_2m = hole & !(M2 - 1);
        for page in (va..va + G1).step_by(K4 as usize) {
            if page == hole {
                assert_eq!(tree.translate(&mem, page), None);
                continue;
            }
            let size = if page & !(M2 - 1) == hole_2m {
                PageSize::Size4K
            } else {
                PageSize::Size2M
            };
            let t = tree.translate(&mem, page + 0x18).unwrap();
            assert_eq!(t.pa, pa + (page - va) + 0x18);
            assert_eq!(t.size, size);
            assert_eq!(t.flags, fl);
            assert_eq!(t.attr, CacheAttr::Normal);
        }
        // Split leaves keep R and C and the attributes.
        let e = raw_entry(&mem, &tree, hole + K4, 3);
        assert_eq!(e, leaf_pte(pa + (hole - va) + K4, fl, CacheAttr::Normal));
        let e = raw_entry(&mem, &tree, va, 2);
        assert_eq!(e, leaf_pte(pa, fl, CacheAttr::Normal));
        // The guard page can be mapped again, reusing the existing table.
        let allocs = mem.allocs;
        tree.map(
            &mut mem,
            hole,
            0x1000,
            K4,
            fl,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        assert_eq!(mem.allocs, allocs);
        check(&mem, &tree, hole, 0x1000, PageSize::Size4K, fl);
    }

    #[test]
    fn unmap_across_large_page_boundary() {
        let (mut mem, mut tree) = setup();
        let fl = PteFlags::READ;
        tree.map(
            &mut mem,
            0,
            0x8000_0000,
            4 * M2,
            fl,
            CacheAttr::Normal,
            PageSize::Size2M,
        )
        .unwrap();
        tree.unmap(&mut mem, 2 * M2 - K4, 2 * K4).unwrap();
        assert_eq!(tree.translate(&mem, 2 * M2 - K4), None);
        assert_eq!(tree.translate(&mem, 2 * M2), None);
        check(
            &mem,
            &tree,
            2 * M2 - 2 * K4,
            0x8000_0000 + 2 * M2 - 2 * K4,
            PageSize::Size4K,
            fl,
        );
        check(
            &mem,
            &tree,
            2 * M2 + K4,
            0x8000_0000 + 2 * M2 + K4,
            PageSize::Size4K,
            fl,
        );
        check(&mem, &tree, 0, 0x8000_0000, PageSize::Size2M, fl);
        check(
            &mem,
            &tree,
            3 * M2,
            0x8000_0000 + 3 * M2,
            PageSize::Size2M,
            fl,
        );
    }

    #[test]
    fn unmap_whole_pages_does_not_split() {
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            0,
            0,
            2 * G1,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        let allocs = mem.allocs;
        tree.unmap(&mut mem, G1, G1).unwrap();
        assert_eq!(mem.allocs, allocs);
        assert_eq!(tree.translate(&mem, G1), None);
        check(&mem, &tree, G1 - K4, G1 - K4, PageSize::Size1G, RW);
        // Unmapping again: not mapped, nothing changes.
        assert_eq!(tree.unmap(&mut mem, G1, K4), Err(MapError::NotMapped));
        // Partly mapped range: refused as a whole.
        assert_eq!(
            tree.unmap(&mut mem, G1 - K4, 2 * K4),
            Err(MapError::NotMapped)
        );
        check(&mem, &tree, G1 - K4, G1 - K4, PageSize::Size1G, RW);
        assert_eq!(mem.allocs, allocs);
    }

    #[test]
    fn remap_over_split_area_uses_existing_tables() {
        let (mut mem, mut tree) = setup();
        tree.map(&mut mem, 0, 0, G1, RW, CacheAttr::Normal, PageSize::Size1G)
            .unwrap();
        tree.unmap(&mut mem, 0x3000, K4).unwrap();
        // The rest of the range, now split into 2M and 4K pages.
        tree.unmap(&mut mem, 0, 0x3000).unwrap();
        tree.unmap(&mut mem, 0x4000, G1 - 0x4000).unwrap();
        assert_eq!(tree.unmap(&mut mem, 0, K4), Err(MapError::NotMapped));
        let bytes = tree.table_bytes(&mem);
        assert_eq!(tree.translate(&mem, 0), None);
        tree.map(&mut mem, 0, G1, G1, RW, CacheAttr::Normal, PageSize::Size1G)
            .unwrap();
        // The empty level-2 table is reused: 2M pages, no new tables.
        assert_eq!(tree.table_bytes(&mem), bytes);
        check(&mem, &tree, M2, G1 + M2, PageSize::Size2M, RW);
        check(&mem, &tree, 0x3000, G1 + 0x3000, PageSize::Size4K, RW);
    }

    #[test]
    fn out_of_range_and_misaligned() {
        let (mut mem, mut tree) = setup();
        let n = CacheAttr::Normal;
        let m = PageSize::Size1G;
        assert_eq!(
            tree.map(&mut mem, VA_LIMIT, 0, K4, RW, n, m),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            tree.map(&mut mem, VA_LIMIT - K4, 0, 2 * K4, RW, n, m),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            tree.map(&mut mem, 0xFFFF_FFFF_FFFF_F000, 0, K4, RW, n, m),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            tree.map(&mut mem, 0, 0xFFFF_FFFF_FFFF_F000, K4, RW, n, m),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            tree.map(&mut mem, 0, PA_LIMIT - K4, 2 * K4, RW, n, m),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            tree.map(&mut mem, 0x800, 0, K4, RW, n, m),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            tree.map(&mut mem, 0, 0x800, K4, RW, n, m),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            tree.map(&mut mem, 0, 0, 0x800, RW, n, m),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            tree.unmap(&mut mem, VA_LIMIT, K4),
            Err(MapError::OutOfRange)
        );
        assert_eq!(tree.unmap(&mut mem, 0x10, K4), Err(MapError::Misaligned));
        assert_eq!(tree.translate(&mem, VA_LIMIT), None);
        assert_eq!(tree.translate(&mem, u64::MAX), None);
        // Zero size is a no-op.
        tree.map(&mut mem, 0, 0, 0, RW, n, m).unwrap();
        tree.unmap(&mut mem, 0, 0).unwrap();
        assert_eq!(mem.allocs, 1);
        // The very top of the space works, including the last page.
        tree.map(&mut mem, VA_LIMIT - G1, PA_LIMIT - G1, G1, RW, n, m)
            .unwrap();
        check(
            &mem,
            &tree,
            VA_LIMIT - K4,
            PA_LIMIT - K4,
            PageSize::Size1G,
            RW,
        );
        tree.unmap(&mut mem, VA_LIMIT - K4, K4).unwrap();
        assert_eq!(tree.translate(&mem, VA_LIMIT - K4), None);
        check(
            &mem,
            &tree,
            VA_LIMIT - 2 * K4,
            PA_LIMIT - 2 * K4,
            PageSize::Size4K,
            RW,
        );
    }

    #[test]
    fn destroy_frees_every_table() {
        let (mut mem, mut tree) = setup();
        tree.map(
            &mut mem,
            G1 - K4,
            G1 - K4,
            3 * G1 + 2 * K4,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        tree.map(
            &mut mem,
            7 << 39,
            0,
            4 * M2,
            RW,
            CacheAttr::TolerantIo,
            PageSize::Size2M,
        )
        .unwrap();
        tree.unmap(&mut mem, G1 + 0x5000, K4).unwrap();
        let bytes = tree.table_bytes(&mem);
        assert_eq!(bytes, mem.live_bytes());
        assert!(mem.allocs > 5);
        tree.destroy(&mut mem);
        assert_eq!(mem.frees, mem.allocs);
        assert!(mem.live.is_empty());
    }

    #[test]
    fn no_memory_rolls_back() {
        let (mut mem, mut tree) = setup();
        // Needs a level-1 table plus level-2/3 tables for both 4K ends (five); with
        // four, the first 4K page and the 1G pages are written before it fails.
        mem.budget = Some(4);
        let va = G1 - K4;
        assert_eq!(
            tree.map(
                &mut mem,
                va,
                va,
                2 * G1 + 2 * K4,
                RW,
                CacheAttr::Normal,
                PageSize::Size1G
            ),
            Err(MapError::NoMemory)
        );
        assert_eq!(mem.allocs, 1 + 4);
        for probe in [va, G1, 2 * G1, 3 * G1] {
            assert_eq!(tree.translate(&mem, probe), None, "{probe:#x}");
        }
        // With memory available the same map succeeds.
        mem.budget = None;
        tree.map(
            &mut mem,
            va,
            va,
            2 * G1 + 2 * K4,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        check(&mem, &tree, 3 * G1, 3 * G1, PageSize::Size4K, RW);

        // A split that runs out of memory changes no translation.
        mem.budget = Some(0);
        assert_eq!(tree.unmap(&mut mem, G1 + K4, K4), Err(MapError::NoMemory));
        check(&mem, &tree, G1 + K4, G1 + K4, PageSize::Size1G, RW);
        // Memory for the 2M split only: still nothing unmapped.
        mem.budget = Some(1);
        assert_eq!(tree.unmap(&mut mem, G1 + K4, K4), Err(MapError::NoMemory));
        check(&mem, &tree, G1 + K4, G1 + K4, PageSize::Size2M, RW);
        mem.budget = None;
        tree.unmap(&mut mem, G1 + K4, K4).unwrap();
        assert_eq!(tree.translate(&mem, G1 + K4), None);
        tree.destroy(&mut mem);
        assert!(mem.live.is_empty());
    }

    #[test]
    fn new_fails_without_memory() {
        let mut mem = FakeMem::new();
        mem.budget = Some(0);
        assert_eq!(RadixTree::new(&mut mem), Err(MapError::NoMemory));
    }

    #[test]
    fn table_encodings() {
        let root = 0x1_2340_0000;
        assert_eq!(RTS_52, 0x4000_0000_0000_00A0);
        assert_eq!(radix_root_dw0(root), 0x4000_0001_2340_00AD);
        let [dw0, dw1] = pate(root, 0x2_0000_0000, 4);
        assert_eq!(dw0.get(), 0xC000_0001_2340_00AD);
        assert_eq!(dw1.get(), 0x0000_0002_0000_0004);
        assert_eq!(dw0.to_bytes()[0], 0xC0);
        let [p0, p1] = process_table_entry(root);
        assert_eq!(p0.get(), 0x4000_0001_2340_00AD);
        assert_eq!(p1.get(), 0);
        assert_eq!(ptcr(0x2000_0000, 4), 0x2000_0004);
        // Out-of-field bits are dropped rather than corrupting other fields.
        assert_eq!(ptcr(0x2000_0FFF, 0xFF), 0x2000_001F);
        assert_eq!(pate(0, 0, 0xFF)[1].get(), 0x1F);
        assert_eq!(radix_root_dw0(0xFFFF_FFFF_FFFF_FFFF), 0x40FF_FFFF_FFFF_FFAD);
    }

    /// A partition as Paprika creates one: 512 MiB of guest real memory backed by
    /// host memory that is only 2 MiB aligned. Every 4 KiB page must translate to
    /// exactly its own host page (a wrong large-page choice would let the guest
    /// write into hypervisor memory).
    #[test]
    fn partition_sized_mapping_translates_every_page() {
        for (pa, size) in [
            (0x120_0000u64, 512u64 << 20),
            (0x4000_0000, 1 << 30),
            (0x4020_0000, (1 << 30) + (2 << 20)),
        ] {
            let mut mem = FakeMem::new();
            let mut t = RadixTree::new(&mut mem).unwrap();
            t.map(
                &mut mem,
                0,
                pa,
                size,
                RW | PteFlags::EXEC,
                CacheAttr::Normal,
                PageSize::Size1G,
            )
            .unwrap();
            for gra in (0..size).step_by(4096) {
                let tr = t
                    .translate(&mem, gra + 0x123)
                    .unwrap_or_else(|| panic!("{gra:#x} unmapped"));
                assert_eq!(
                    tr.pa,
                    pa + gra + 0x123,
                    "guest {gra:#x} of a mapping at {pa:#x}"
                );
            }
            assert!(t.translate(&mem, size).is_none());
        }
    }
}
