//! Software walk of a guest's process-scoped radix tree (guest effective address ->
//! guest real address), so the hypervisor can read the instruction that caused a
//! Hypervisor Data Storage Interrupt from guest memory (HEIR is not reliable for
//! an HDSI).
//!
//! Power ISA v3.0B Book III, "Process Table" and 5.7.10 "Radix Tree
//! Translation"; unchanged in v3.1. The format is the one [`super::radix`] builds
//! for partition-scoped trees; the walk here accepts any geometry the ISA allows
//! (Linux uses 13/9/9/9 index bits with 4 KiB pages and 13/9/9/5 with 64 KiB
//! pages), with sanity bounds so a hostile guest cannot make it loop or overflow.
//!
//! The walk checks no access rights and sets no reference/change bits: it only
//! repeats a translation the hardware has just performed for the same access.
//! Every guest real address the walk produces is an allegation; the
//! [`GuestRealMemory`] implementation bounds-checks it against the partition's
//! memory.
//!
//! Portable: reaches guest memory only through [`GuestRealMemory`].

use super::radix::{PTE_L, PTE_V, SIZE_FIELD_MASK};

/// MSR\[IR\] (ISA bit 58): instruction relocation.
pub const MSR_IR: u64 = 1 << (63 - 58);
/// MSR\[DR\] (ISA bit 59): data relocation.
pub const MSR_DR: u64 = 1 << (63 - 59);
/// MSR\[LE\] (ISA bit 63): little-endian mode.
pub const MSR_LE: u64 = 1;

/// Next-level base of a directory entry: the full ISA field, bits 4:55.
/// (Wider than [`super::radix::PDE_NLB_MASK`], which the builder limits to the
/// 56 bits it writes: a guest may set the upper bits, and must then get an error
/// rather than a silently truncated pointer.)
pub const NLB_MASK: u64 = 0x0FFF_FFFF_FFFF_FF00;
/// Next-level size of a directory entry (log2 of its entry count), bits 59:63.
pub const NLS_MASK: u64 = SIZE_FIELD_MASK;
/// Real page number of a leaf: the full ISA field, bits 7:51.
pub const RPN_MASK: u64 = 0x01FF_FFFF_FFFF_F000;
/// Root page-directory base of a process-table entry dw0: ISA bits 4:55.
pub const RPDB_MASK: u64 = 0x0FFF_FFFF_FFFF_FF00;
/// Guest real addresses at or above this are outside any partition (POWER9 and
/// Power10 implement 56-bit real addresses; see [`super::radix::PA_BITS`]).
pub const GUEST_REAL_LIMIT: u64 = 1 << super::radix::PA_BITS;
/// Accepted range of RPDS and NLS (index bits per level). The ISA requires at
/// least 5; 16 (a 512 KiB table) is far beyond what any OS uses.
pub const INDEX_BITS_MIN: u64 = 5;
pub const INDEX_BITS_MAX: u64 = 16;
/// Most levels a walk follows (root included). Linux uses 4.
pub const MAX_LEVELS: usize = 5;
/// Smallest page: 4 KiB.
const MIN_PAGE_SHIFT: u64 = 12;
/// Real mode ignores EA bits 0:3 (Book III, "Real Addressing Mode").
const REAL_MODE_MASK: u64 = 0x0FFF_FFFF_FFFF_FFFF;
/// EA bits 2:63: the address within a quadrant.
const QUADRANT_OFFSET_MASK: u64 = (1 << 62) - 1;

/// Read access to a partition's memory by guest real address.
pub trait GuestRealMemory {
    /// The 8 bytes at `gra` (8-byte aligned), as the number a big-endian load
    /// gives (the byte at `gra` is the most significant), or `None` if they are
    /// not all inside the partition's memory.
    fn read_be64(&self, gra: u64) -> Option<u64>;
}

/// The process table a guest registered with H_REGISTER_PROC_TBL (PAPR; the
/// values also sit in the partition-table entry dw1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessTable {
    /// Guest real address of the table; aligned to its size.
    pub base: u64,
    /// PRTS: the table has 2^(12 + PRTS) bytes, 16 per entry.
    pub prts: u8,
}

impl ProcessTable {
    /// Number of entries (PIDs), or `None` if the size field is absurd (the hcall
    /// accepts at most 24).
    pub const fn entries(&self) -> Option<u64> {
        if self.prts as u64 > SIZE_FIELD_MASK {
            None
        } else {
            Some(1 << (8 + self.prts as u32))
        }
    }
}

/// Why a walk failed. The address that failed is included where one exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// Translation is on but the guest registered no process table, or the
    /// registered one is malformed (size field or alignment).
    NoProcessTable,
    /// EA bits 0:1 select quadrant 1 or 2, which only the hypervisor may use.
    BadQuadrant,
    /// PIDR indexes past the end of the process table.
    PidOutOfRange,
    /// The process-table entry for the PID is zero (no tree).
    EmptyProcessEntry,
    /// EA bits between the quadrant bits and the tree size are not zero.
    AddressTooLarge,
    /// RPDS (level 0) or a directory's NLS is outside
    /// [`INDEX_BITS_MIN`]..=[`INDEX_BITS_MAX`], or leaves too few address bits
    /// for a 4 KiB page.
    BadTableSize { level: u8 },
    /// The entry at this level (0 = root) is not valid.
    InvalidEntry { level: u8 },
    /// A table, entry or page lies at or beyond [`GUEST_REAL_LIMIT`].
    PointerOverflow,
    /// [`GuestRealMemory::read_be64`] refused this guest real address.
    MemoryRead(u64),
    /// No leaf within [`MAX_LEVELS`] levels.
    LevelLimit,
    /// An instruction address that is not a multiple of 4.
    Misaligned,
}

/// A successful radix walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Guest real address the EA translates to.
    pub gra: u64,
    /// log2 of the page size of the leaf.
    pub page_shift: u8,
    /// The leaf entry itself (native value), for attribute or permission checks.
    pub pte: u64,
    /// Guest real address of the leaf entry (to set its R/C bits).
    pub pte_addr: u64,
}

/// Translates the guest effective address `ea`.
///
/// `relocate` is MSR\[DR\] of a data access or MSR\[IR\] of an instruction fetch.
/// Off, the guest real address is `ea` with bits 0:3 cleared. On, EA bits 0:1
/// select the PID (quadrant 0: `pidr`; quadrant 3: PID 0, the guest kernel) and
/// the tree of that PID in `proc_table` is walked.
pub fn translate(
    mem: &impl GuestRealMemory,
    proc_table: Option<ProcessTable>,
    pidr: u32,
    ea: u64,
    relocate: bool,
) -> Result<u64, WalkError> {
    if !relocate {
        return Ok(ea & REAL_MODE_MASK);
    }
    walk(mem, proc_table, pidr, ea).map(|leaf| leaf.gra)
}

/// Walks the process-scoped tree for `ea` (translation on; see [`translate`]).
pub fn walk(
    mem: &impl GuestRealMemory,
    proc_table: Option<ProcessTable>,
    pidr: u32,
    ea: u64,
) -> Result<Leaf, WalkError> {
    let pt = proc_table.ok_or(WalkError::NoProcessTable)?;
    let entries = pt.entries().ok_or(WalkError::NoProcessTable)?;
    if pt.base % (entries * 16) != 0 {
        return Err(WalkError::NoProcessTable);
    }
    // Book III, the radix quadrant table, for MSR[HV] = 0: quadrant 0 uses
    // PIDR, quadrant 3 PID 0; 1 and 2 are for the hypervisor only.
    let pid = match ea >> 62 {
        0 => u64::from(pidr),
        3 => 0,
        _ => return Err(WalkError::BadQuadrant),
    };
    if pid >= entries {
        return Err(WalkError::PidOutOfRange);
    }
    // Cannot overflow: base is aligned to the table size, so base + size fits.
    let prte = pt.base + pid * 16;
    check_real(prte)?;
    let dw0 = read(mem, prte)?;
    if dw0 == 0 {
        return Err(WalkError::EmptyProcessEntry);
    }
    walk_tree(mem, dw0, ea & QUADRANT_OFFSET_MASK)
}

/// Walks one radix tree for the tree address `va`: `root` is a table-entry
/// doubleword holding RTS (bits 1:2 and 56:58), the root's base (RPDB, bits
/// 4:55) and its index bits (RPDS, bits 59:63), as in a process-table entry
/// dw0 or a partition-table entry dw0 (whose HR bit 0 is ignored here). Used for
/// the process-scoped walk above and for a nested hypervisor's partition-scoped
/// trees (`mm::nested`).
pub fn walk_tree(mem: &impl GuestRealMemory, root: u64, va: u64) -> Result<Leaf, WalkError> {
    let dw0 = root;
    // RTS = RTS1 (ISA bits 1:2) || RTS2 (bits 56:58); the tree translates
    // RTS + 31 bits (at most 62, so the shift below is in range).
    let rts = (((dw0 >> 61) & 3) << 3) | ((dw0 >> 5) & 7);
    let tree_bits = rts + 31;
    if va >> tree_bits != 0 {
        return Err(WalkError::AddressTooLarge);
    }

    let mut table = dw0 & RPDB_MASK;
    let mut index_bits = dw0 & SIZE_FIELD_MASK;
    // Address bits still to translate: the current level's index and everything
    // below it.
    let mut remaining = tree_bits;
    for level in 0..MAX_LEVELS {
        let lvl = level as u8;
        if !(INDEX_BITS_MIN..=INDEX_BITS_MAX).contains(&index_bits)
            || remaining < index_bits + MIN_PAGE_SHIFT
        {
            return Err(WalkError::BadTableSize { level: lvl });
        }
        let shift = remaining - index_bits;
        let index = (va >> shift) & ((1 << index_bits) - 1);
        // table < 2^60 and index * 8 < 2^19: no u64 overflow.
        let entry = table + index * 8;
        check_real(entry)?;
        let pte = read(mem, entry)?;
        if pte & PTE_V == 0 {
            return Err(WalkError::InvalidEntry { level: lvl });
        }
        if pte & PTE_L != 0 {
            let offset = (1u64 << shift) - 1;
            let gra = (pte & RPN_MASK & !offset) | (va & offset);
            check_real(gra)?;
            return Ok(Leaf {
                gra,
                page_shift: shift as u8,
                pte,
                pte_addr: entry,
            });
        }
        table = pte & NLB_MASK;
        index_bits = pte & NLS_MASK;
        remaining = shift;
    }
    Err(WalkError::LevelLimit)
}

/// Reads the instruction word at guest address `pc` (HSRR0) as the guest would
/// execute it, with `msr` the guest MSR (HSRR1): translated if MSR\[IR\], and
/// taken as little-endian in memory if MSR\[LE\] (Book I, "Byte Ordering":
/// instructions are stored in the byte order of the mode that runs them). The
/// result is the instruction as a number, ready for
/// [`crate::partition::emulate::decode`].
///
/// For a prefixed instruction this returns the prefix only.
pub fn fetch_instruction(
    mem: &impl GuestRealMemory,
    proc_table: Option<ProcessTable>,
    pidr: u32,
    pc: u64,
    msr: u64,
) -> Result<u32, WalkError> {
    if pc & 3 != 0 {
        return Err(WalkError::Misaligned);
    }
    let gra = translate(mem, proc_table, pidr, pc, msr & MSR_IR != 0)?;
    let dword = read(mem, gra & !7)?;
    // The word at the lower address is the high half of a big-endian dword.
    let bytes_be = if gra & 4 == 0 {
        (dword >> 32) as u32
    } else {
        dword as u32
    };
    Ok(if msr & MSR_LE != 0 {
        bytes_be.swap_bytes()
    } else {
        bytes_be
    })
}

fn read(mem: &impl GuestRealMemory, gra: u64) -> Result<u64, WalkError> {
    mem.read_be64(gra).ok_or(WalkError::MemoryRead(gra))
}

fn check_real(gra: u64) -> Result<(), WalkError> {
    if gra < GUEST_REAL_LIMIT {
        Ok(())
    } else {
        Err(WalkError::PointerOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::be::Be64;
    use crate::mm::radix::{self, CacheAttr, PageSize, PteFlags, RadixTree, TableMemory};
    use crate::testutil::XorShift;
    use std::cell::Cell;
    use std::collections::HashMap;

    const K4: u64 = 1 << 12;
    const K64: u64 = 1 << 16;
    const M2: u64 = 1 << 21;
    const G1: u64 = 1 << 30;
    /// Guest memory size: tables and pages live anywhere below it.
    const MEM: u64 = 16 * G1;

    /// Sparse guest memory: dwords stored big-endian by address. Reads of unset
    /// dwords below [`MEM`] return 0. Unaligned reads are a walker bug.
    #[derive(Default)]
    struct GuestMem {
        dwords: HashMap<u64, [u8; 8]>,
        next_table: u64,
        reads: Cell<usize>,
    }

    impl GuestRealMemory for GuestMem {
        fn read_be64(&self, gra: u64) -> Option<u64> {
            assert_eq!(gra % 8, 0, "unaligned read at {gra:#x}");
            self.reads.set(self.reads.get() + 1);
            if gra >= MEM {
                return None;
            }
            Some(u64::from_be_bytes(
                self.dwords.get(&gra).copied().unwrap_or([0; 8]),
            ))
        }
    }

    /// The radix builder writes into the same memory, so the walker can be
    /// checked against trees built by independent code.
    impl TableMemory for GuestMem {
        fn alloc_table(&mut self, bytes: u64) -> Option<u64> {
            Some(self.alloc(bytes))
        }
        fn free_table(&mut self, _pa: u64, _bytes: u64) {}
        fn read(&self, pa: u64) -> Be64 {
            Be64::from_bytes(self.dwords.get(&pa).copied().unwrap_or([0; 8]))
        }
        fn write(&mut self, pa: u64, v: Be64) {
            self.dwords.insert(pa, v.to_bytes());
        }
    }

    impl GuestMem {
        fn new() -> Self {
            Self {
                // Tables from 3 GiB + 64 KiB up: not identity, not zero.
                next_table: 3 * G1 + K64,
                ..Self::default()
            }
        }

        fn set(&mut self, gra: u64, v: u64) {
            self.dwords.insert(gra, v.to_be_bytes());
        }

        fn set_bytes(&mut self, gra: u64, bytes: &[u8]) {
            for (i, &b) in bytes.iter().enumerate() {
                let a = gra + i as u64;
                let d = self.dwords.entry(a & !7).or_insert([0; 8]);
                d[(a & 7) as usize] = b;
            }
        }

        /// A zeroed table, aligned to its size.
        fn alloc(&mut self, bytes: u64) -> u64 {
            let t = (self.next_table + bytes - 1) & !(bytes - 1);
            self.next_table = t + bytes;
            t
        }
    }

    /// A hand-built tree of any geometry: `bits[i]` index bits at level `i`.
    struct Tree {
        root: u64,
        bits: &'static [u64],
        tree_bits: u64,
    }

    impl Tree {
        fn new(mem: &mut GuestMem, bits: &'static [u64]) -> Self {
            let root = mem.alloc(8 << bits[0]);
            Self {
                root,
                bits,
                tree_bits: 52,
            }
        }

        /// Process-table dw0: RTS for 52 bits, root, RPDS.
        fn dw0(&self) -> u64 {
            radix::RTS_52 | self.root | self.bits[0]
        }

        /// Maps the page containing `va` at `leaf_level` to `pa`.
        fn map(&self, mem: &mut GuestMem, va: u64, pa: u64, leaf_level: usize) {
            let mut table = self.root;
            let mut remaining = self.tree_bits;
            for level in 0..=leaf_level {
                let shift = remaining - self.bits[level];
                let entry = table + 8 * ((va >> shift) & ((1 << self.bits[level]) - 1));
                if level == leaf_level {
                    let leaf = radix::leaf_pte(pa, PteFlags::all(), CacheAttr::Normal);
                    // leaf_pte keeps 4K granularity; large pages drop offset bits.
                    assert_eq!(pa & ((1 << shift) - 1), 0, "misaligned leaf");
                    mem.set(entry, leaf);
                    return;
                }
                let cur = mem.read_be64(entry).unwrap();
                table = if cur & PTE_V != 0 {
                    assert_eq!(cur & PTE_L, 0, "leaf in the way");
                    cur & NLB_MASK
                } else {
                    let next_bits = self.bits[level + 1];
                    let t = mem.alloc(8 << next_bits);
                    mem.set(entry, PTE_V | t | next_bits);
                    t
                };
                remaining = shift;
            }
        }
    }

    /// Process table at a non-identity base, PRTS = 0 (256 PIDs).
    const PT: ProcessTable = ProcessTable {
        base: 0x2_1000_0000,
        prts: 0,
    };

    fn install(mem: &mut GuestMem, pid: u64, tree: &Tree) {
        mem.set(PT.base + 16 * pid, tree.dw0());
    }

    fn tr(mem: &GuestMem, pidr: u32, ea: u64) -> Result<u64, WalkError> {
        translate(mem, Some(PT), pidr, ea, true)
    }

    #[test]
    fn kernel_and_user_4k_geometry() {
        let mut mem = GuestMem::new();
        let kernel = Tree::new(&mut mem, &[13, 9, 9, 9]);
        let user = Tree::new(&mut mem, &[13, 9, 9, 9]);
        install(&mut mem, 0, &kernel);
        install(&mut mem, 42, &user);

        // Kernel linear map: 0xc000_0000_0000_0000 -> GRA 0 by a 1 GiB leaf, plus
        // 2 MiB and 4 KiB leaves elsewhere.
        kernel.map(&mut mem, 0, 0x1_4000_0000, 1);
        kernel.map(&mut mem, 0x8_0020_0000, 0x0060_0000, 2);
        kernel.map(&mut mem, 0x9_0000_7000, 0x0123_4000, 3);
        let leaf = walk(&mem, Some(PT), 42, 0xc000_0000_0000_1234).unwrap();
        assert_eq!(leaf.gra, 0x1_4000_1234);
        assert_eq!(leaf.page_shift, 30);
        assert_eq!(tr(&mem, 42, 0xc000_0000_3fff_fff8), Ok(0x1_7fff_fff8));
        assert_eq!(tr(&mem, 0, 0xc000_0008_003f_fffc), Ok(0x007f_fffc));
        let leaf = walk(&mem, Some(PT), 7, 0xc000_0009_0000_7abc).unwrap();
        assert_eq!((leaf.gra, leaf.page_shift), (0x0123_4abc, 12));
        assert_eq!(
            leaf.pte,
            radix::leaf_pte(0x0123_4000, PteFlags::all(), CacheAttr::Normal)
        );
        // Neighbours are unmapped at the level where the tree ends.
        assert_eq!(
            tr(&mem, 0, 0xc000_0009_0000_8000),
            Err(WalkError::InvalidEntry { level: 3 })
        );
        assert_eq!(
            tr(&mem, 0, 0xc000_0000_4000_0000),
            Err(WalkError::InvalidEntry { level: 1 })
        );
        assert_eq!(
            tr(&mem, 0, 0xc00f_0000_0000_0000),
            Err(WalkError::InvalidEntry { level: 0 })
        );

        // User addresses: quadrant 0 through PIDR.
        user.map(&mut mem, 0x1000_0000, 0x0200_0000, 3);
        user.map(&mut mem, 0x7fff_ffe0_0000, 0x0040_0000, 2);
        assert_eq!(tr(&mem, 42, 0x1000_0ff8), Ok(0x0200_0ff8));
        assert_eq!(tr(&mem, 42, 0x7fff_fff0_0010), Ok(0x0050_0010));
        // With PIDR = 0, quadrant 0 uses the kernel's tree (its 1 GiB leaf);
        // PID 7 has no tree.
        assert_eq!(tr(&mem, 0, 0x1000_0ff8), Ok(0x1_5000_0ff8));
        assert_eq!(tr(&mem, 7, 0x1000_0ff8), Err(WalkError::EmptyProcessEntry));
        // Quadrant 3 ignores PIDR.
        assert_eq!(tr(&mem, 42, 0xc000_0000_1000_0ff8), Ok(0x1_5000_0ff8));
    }

    #[test]
    fn sixty_four_k_geometry() {
        let mut mem = GuestMem::new();
        let t = Tree::new(&mut mem, &[13, 9, 9, 5]);
        install(&mut mem, 0, &t);
        install(&mut mem, 3, &t);
        t.map(&mut mem, 0x0012_3450_0000, 0x0765_0000, 3);
        t.map(&mut mem, 0x0012_3460_0000, 0x0060_0000, 2);
        let leaf = walk(&mem, Some(PT), 3, 0x0012_3450_2345).unwrap();
        assert_eq!((leaf.gra, leaf.page_shift), (0x0765_2345, 16));
        assert_eq!(tr(&mem, 3, 0x0012_3450_fff8), Ok(0x0765_fff8));
        assert_eq!(tr(&mem, 0, 0xc000_0012_3450_2345), Ok(0x0765_2345));
        let leaf = walk(&mem, Some(PT), 0, 0xc000_0012_3461_2345).unwrap();
        assert_eq!((leaf.gra, leaf.page_shift), (0x0061_2345, 21));
        assert_eq!(
            tr(&mem, 3, 0x0012_3480_0000),
            Err(WalkError::InvalidEntry { level: 2 })
        );
        // Other 64K pages of the same leaf table are not mapped.
        assert_eq!(
            tr(&mem, 3, 0x0012_3452_0000),
            Err(WalkError::InvalidEntry { level: 3 })
        );
    }

    /// Trees built by `radix::RadixTree` translate the same way here.
    #[test]
    fn agrees_with_radix_builder() {
        let mut mem = GuestMem::new();
        let mut tree = RadixTree::new(&mut mem).unwrap();
        let rw = PteFlags::READ | PteFlags::WRITE;
        let maps = [
            (0, 0x4000_0000, G1 + M2 + 3 * K4),
            (5 * G1 + K4, 0x1000, 2 * M2),
            ((1 << 51) + 7 * M2, 0x2_0000_0000, M2),
        ];
        for (va, pa, size) in maps {
            tree.map(
                &mut mem,
                va,
                pa,
                size,
                rw,
                CacheAttr::Normal,
                PageSize::Size1G,
            )
            .unwrap();
        }
        let [d0, _] = radix::process_table_entry(tree.root());
        mem.set(PT.base, d0.get());
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let (va, _, size) = maps[i % maps.len()];
            // Mostly inside the mappings, sometimes just past them.
            let va = va + rng.below(size + 2 * M2);
            let want = tree.translate(&mem, va).map(|t| t.pa);
            let got = tr(&mem, 0, 0xc000_0000_0000_0000 | va).ok();
            assert_eq!(got, want, "{va:#x}");
        }
    }

    #[test]
    fn real_mode_ignores_top_four_bits() {
        let mem = GuestMem::new();
        for relocate_off in [None, Some(PT)] {
            assert_eq!(
                translate(&mem, relocate_off, 9, 0xc000_0000_0123_4567, false),
                Ok(0x0123_4567)
            );
            assert_eq!(
                translate(&mem, relocate_off, 9, 0xffff_ffff_ffff_fffc, false),
                Ok(0x0fff_ffff_ffff_fffc)
            );
        }
        assert_eq!(mem.reads.get(), 0);
    }

    #[test]
    fn error_paths() {
        let mut mem = GuestMem::new();
        let t = Tree::new(&mut mem, &[13, 9, 9, 9]);
        install(&mut mem, 0, &t);
        t.map(&mut mem, 0, 0x10_0000, 3);
        let ok = 0xc000_0000_0000_0010;
        assert_eq!(tr(&mem, 0, ok), Ok(0x10_0010));

        assert_eq!(
            translate(&mem, None, 0, ok, true),
            Err(WalkError::NoProcessTable)
        );
        let misaligned = ProcessTable {
            base: PT.base + 0x800,
            prts: 0,
        };
        assert_eq!(
            translate(&mem, Some(misaligned), 0, ok, true),
            Err(WalkError::NoProcessTable)
        );
        let huge = ProcessTable { base: 0, prts: 32 };
        assert_eq!(
            translate(&mem, Some(huge), 0, ok, true),
            Err(WalkError::NoProcessTable)
        );
        assert_eq!(
            tr(&mem, 0, 0x4000_0000_0000_0000),
            Err(WalkError::BadQuadrant)
        );
        assert_eq!(
            tr(&mem, 0, 0x8000_0000_0000_0000),
            Err(WalkError::BadQuadrant)
        );
        assert_eq!(tr(&mem, 256, 0), Err(WalkError::PidOutOfRange));
        assert_eq!(tr(&mem, u32::MAX, 0), Err(WalkError::PidOutOfRange));
        assert_eq!(tr(&mem, 255, 0), Err(WalkError::EmptyProcessEntry));
        // Bits 2:11 of the EA lie above a 52-bit tree.
        assert_eq!(
            tr(&mem, 0, 0xc010_0000_0000_0010),
            Err(WalkError::AddressTooLarge)
        );
        assert_eq!(
            tr(&mem, 0, 0xc000_0000_0000_0010 | 1 << 52),
            Err(WalkError::AddressTooLarge)
        );

        // Process table outside guest memory.
        let far = ProcessTable { base: MEM, prts: 0 };
        assert_eq!(
            translate(&mem, Some(far), 0, ok, true),
            Err(WalkError::MemoryRead(MEM))
        );
        let beyond = ProcessTable {
            base: GUEST_REAL_LIMIT,
            prts: 0,
        };
        assert_eq!(
            translate(&mem, Some(beyond), 0, ok, true),
            Err(WalkError::PointerOverflow)
        );

        // Walk faults, one level at a time. Find the entries on the path.
        let root_entry = t.root; // index 0
        let l1 = mem.read_be64(root_entry).unwrap() & NLB_MASK;
        let l2 = mem.read_be64(l1).unwrap() & NLB_MASK;
        let l3 = mem.read_be64(l2).unwrap() & NLB_MASK;
        let saved = [root_entry, l1, l2, l3].map(|a| (a, mem.read_be64(a).unwrap()));
        let restore = |mem: &mut GuestMem| {
            for (a, v) in saved {
                mem.set(a, v);
            }
        };

        // RPDS out of range.
        mem.set(PT.base, radix::RTS_52 | t.root | 4);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 0 }));
        mem.set(PT.base, radix::RTS_52 | t.root | 17);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 0 }));
        // RTS = 0, a 31-bit tree: the 13-bit root leaves 18 bits, and the
        // level-1 directory (NLS 9) would leave 9 < 12 for the page.
        mem.set(PT.base, t.root | 13);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 1 }));
        // ... and a 31-bit tree has no room for EA bit 31.
        assert_eq!(
            tr(&mem, 0, 0xc000_0000_8000_0000),
            Err(WalkError::AddressTooLarge)
        );
        mem.set(PT.base, t.dw0());

        // NLS out of range in a directory.
        mem.set(l1, (saved[1].1 & !NLS_MASK) | 4);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 2 }));
        mem.set(l1, (saved[1].1 & !NLS_MASK) | 31);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 2 }));
        restore(&mut mem);
        // NLS leaving less than a 4 KiB page below it.
        mem.set(l2, (saved[2].1 & !NLS_MASK) | 10);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::BadTableSize { level: 3 }));
        restore(&mut mem);

        // Invalid entries at each level.
        for (i, &(a, v)) in saved.iter().enumerate() {
            mem.set(a, v & !PTE_V);
            assert_eq!(
                tr(&mem, 0, ok),
                Err(WalkError::InvalidEntry { level: i as u8 })
            );
            restore(&mut mem);
        }

        // Directory pointer beyond guest memory, and beyond the real-address limit.
        mem.set(root_entry, PTE_V | MEM | 9);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::MemoryRead(MEM)));
        mem.set(root_entry, PTE_V | NLB_MASK | 9);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::PointerOverflow));
        mem.set(root_entry, PTE_V | GUEST_REAL_LIMIT | 9);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::PointerOverflow));
        restore(&mut mem);
        // Leaf whose RPN uses ISA bit 7 (2^56).
        mem.set(l3, PTE_V | PTE_L | GUEST_REAL_LIMIT | 0x10_0000);
        assert_eq!(tr(&mem, 0, ok), Err(WalkError::PointerOverflow));
        restore(&mut mem);
        // A leaf at any level is followed (here a 512 GiB root leaf).
        mem.set(root_entry, PTE_V | PTE_L | (1 << 39));
        assert_eq!(tr(&mem, 0, ok), Ok((1 << 39) | 0x10));
        restore(&mut mem);

        // Level limit: a 62-bit tree of 5-bit directories never reaches a leaf.
        let deep_root = mem.alloc(K4);
        let mut table = deep_root;
        for _ in 0..MAX_LEVELS {
            let next = mem.alloc(K4);
            mem.set(table, PTE_V | next | 5);
            table = next;
        }
        let rts_62 = (3 << 61) | (7 << 5); // RTS = 31: 62 bits
        mem.set(PT.base + 16, rts_62 | deep_root | 5);
        assert_eq!(tr(&mem, 1, 0), Err(WalkError::LevelLimit));
        // The same with a leaf at the fifth level works.
        let mut table = deep_root;
        for _ in 0..MAX_LEVELS - 1 {
            table = mem.read_be64(table).unwrap() & NLB_MASK;
        }
        mem.set(table, PTE_V | PTE_L | (1 << 40));
        let leaf = walk(&mem, Some(PT), 1, 0x1234).unwrap();
        assert_eq!(leaf.gra, (1 << 40) | 0x1234);
        assert_eq!(leaf.page_shift, 62 - 25);
    }

    #[test]
    fn fetch_instruction_both_endiannesses() {
        let mut mem = GuestMem::new();
        let t = Tree::new(&mut mem, &[13, 9, 9, 9]);
        install(&mut mem, 0, &t);
        t.map(&mut mem, 0x4000, 0x0055_0000, 3);
        // lwz r3,8(r4) = 0x80640008 at GRA 0x550010 (BE bytes) and 0x550014 (LE).
        mem.set_bytes(0x0055_0010, &[0x80, 0x64, 0x00, 0x08]);
        mem.set_bytes(0x0055_0014, &[0x08, 0x00, 0x64, 0x80]);
        let ir_be = MSR_IR | MSR_DR;
        let ir_le = MSR_IR | MSR_DR | MSR_LE;
        let pc = 0xc000_0000_0000_4010;
        assert_eq!(
            fetch_instruction(&mem, Some(PT), 0, pc, ir_be),
            Ok(0x8064_0008)
        );
        assert_eq!(
            fetch_instruction(&mem, Some(PT), 0, pc + 4, ir_le),
            Ok(0x8064_0008)
        );
        // The wrong endianness gives the byte-swapped word.
        assert_eq!(
            fetch_instruction(&mem, Some(PT), 0, pc, ir_le),
            Ok(0x0800_6480)
        );
        // Real mode: PC is the guest real address (top 4 bits ignored).
        assert_eq!(
            fetch_instruction(&mem, None, 0, 0xc000_0000_0055_0014, MSR_LE),
            Ok(0x8064_0008)
        );
        assert_eq!(
            fetch_instruction(&mem, None, 0, 0x0055_0010, 0),
            Ok(0x8064_0008)
        );
        // Errors propagate; misaligned PCs are refused before any read.
        assert_eq!(
            fetch_instruction(&mem, Some(PT), 0, pc + 2, ir_be),
            Err(WalkError::Misaligned)
        );
        assert_eq!(
            fetch_instruction(&mem, Some(PT), 0, pc + K4, ir_be),
            Err(WalkError::InvalidEntry { level: 3 })
        );
        assert_eq!(
            fetch_instruction(&mem, None, 0, MEM + 4, 0),
            Err(WalkError::MemoryRead(MEM))
        );
    }

    /// Memory whose every dword is pseudo-random, biased towards valid entries
    /// with plausible pointers, sizes and leaf bits: the walk must end (within
    /// [`MAX_LEVELS`] table reads) without panicking, whatever it finds.
    struct ChaosMem {
        seed: u64,
        /// Process-table range, whose entries are biased towards 52-bit trees.
        table: (u64, u64),
        reads: Cell<usize>,
    }

    fn mix(mut z: u64) -> u64 {
        // splitmix64 finaliser.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    impl GuestRealMemory for ChaosMem {
        fn read_be64(&self, gra: u64) -> Option<u64> {
            assert_eq!(gra % 8, 0, "unaligned read at {gra:#x}");
            self.reads.set(self.reads.get() + 1);
            let r = mix(gra ^ self.seed);
            if r.is_multiple_of(17) {
                return None;
            }
            let v = mix(r);
            if (self.table.0..self.table.1).contains(&gra) {
                return Some(match r % 4 {
                    0 => v,
                    1 => v & (RPDB_MASK | SIZE_FIELD_MASK),
                    _ => radix::RTS_52 | (v & 0xFFF_FF00) | (9 + (v >> 60) % 8),
                });
            }
            Some(match r % 5 {
                // Completely random.
                0 => v,
                // Valid directory with small pointer and any NLS.
                1 | 2 => PTE_V | (v & 0xFFF_FF00) | (v >> 59),
                // Valid directory with sane NLS.
                3 => PTE_V | (v & 0xFFF_FF00) | (5 + (v >> 60) % 12),
                // Leaf with random RPN bits.
                _ => PTE_V | PTE_L | (v & !(PTE_V | PTE_L)),
            })
        }
    }

    #[test]
    fn random_tables_never_panic() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
        for i in 0..200_000u64 {
            x = mix(x.wrapping_add(i));
            // Mostly well-formed tables; sometimes misaligned or absurd sizes.
            let prts = (mix(x ^ 2) % 6) as u8 + if i % 50 == 0 { 26 } else { 0 };
            let mut base = (mix(x ^ 1) & 0xFF_FFFF) << 12;
            if i % 50 != 1 {
                base &= !((1 << (12 + u32::from(prts).min(40))) - 1);
            }
            let pt = ProcessTable { base, prts };
            let mem = ChaosMem {
                seed: x,
                table: (
                    base,
                    base.saturating_add(16 << (8 + u32::from(prts).min(40))),
                ),
                reads: Cell::new(0),
            };
            let ea = mix(x ^ 3);
            let ea = match i % 8 {
                0 => ea,
                1 | 2 => ea & 0xC00F_FFFF_FFFF_FFFF,
                _ => ea & 0x000F_FFFF_FFFF_FFFF,
            };
            let pidr = (mix(x ^ 4) % 300) as u32;
            let msr = mix(x ^ 5) & (MSR_IR | MSR_LE);
            let r = walk(&mem, Some(pt), pidr, ea);
            // One process-table read plus at most MAX_LEVELS table reads.
            assert!(mem.reads.get() <= 1 + MAX_LEVELS);
            if let Ok(leaf) = r {
                assert!(leaf.gra < GUEST_REAL_LIMIT);
                assert!(leaf.page_shift >= 12);
                let offset = (1u64 << leaf.page_shift) - 1;
                assert_eq!(leaf.gra & offset, ea & offset);
            }
            let _ = fetch_instruction(&mem, Some(pt), pidr, ea & !3, msr);
            let key = match r {
                Ok(_) => "ok",
                Err(WalkError::InvalidEntry { .. }) => "invalid",
                Err(WalkError::BadTableSize { .. }) => "size",
                Err(WalkError::MemoryRead(_)) => "read",
                Err(WalkError::LevelLimit) => "limit",
                Err(_) => "other",
            };
            *outcomes.entry(key).or_default() += 1;
        }
        // The generator reaches the interesting outcomes, not just one error.
        for k in ["ok", "invalid", "size", "read", "other"] {
            assert!(outcomes.get(k).copied().unwrap_or(0) > 100, "{outcomes:?}");
        }
    }
}
