//! Translation of a guest effective address to a guest real address through the
//! guest's own process-scoped radix tree (Power ISA v3.0B Book III 5.7.6-5.7.10),
//! so the hypervisor can read the instruction a guest faulted on: HEIR is only
//! architected for the emulation-assist interrupt, not for an HDSI on POWER9.
//!
//! Everything the walk reads is guest memory, so every value is checked: a
//! table outside the partition, a malformed entry or a too-deep tree is an
//! error, never a panic or an access outside the partition.

/// Reads guest real memory.
pub trait GuestRealMemory {
    /// The big-endian doubleword at 8-byte aligned guest real `gra`; `None`
    /// outside the partition's memory.
    fn read_be64(&self, gra: u64) -> Option<u64>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// Translation is on but the guest registered no (radix) process table.
    NoProcessTable,
    /// Quadrants 1 and 2 are for hypervisor use.
    BadQuadrant,
    /// The PID has no entry in the process table.
    PidOutOfRange,
    /// The process table entry is empty or its tree size is malformed.
    BadProcessTableEntry,
    /// An address bit above the tree's size is set.
    AddressTooLarge,
    /// A directory or leaf entry without its valid bit.
    Invalid,
    /// A directory entry with a bad next-level size, or a leaf smaller than 4K.
    BadTree,
    /// A table lies outside the partition's memory.
    Unreadable,
}

/// PATE doubleword 1: guest radix.
const PATE_GR: u64 = 1 << 63;
const PRTB_MASK: u64 = 0x0FFF_FFFF_FFFF_F000;
const PRTS_MASK: u64 = 0x1F;
const RPDB_MASK: u64 = 0x0FFF_FFFF_FFFF_FF00;
const SIZE_MASK: u64 = 0x1F;
const PTE_V: u64 = 1 << 63;
const PTE_L: u64 = 1 << 62;
const NLB_MASK: u64 = 0x0FFF_FFFF_FFFF_FF00;
const RPN_MASK: u64 = 0x01FF_FFFF_FFFF_F000;
/// At most this many levels (Linux uses 4).
const MAX_LEVELS: usize = 5;

/// Translates `ea` for a guest whose PATE doubleword 1 is `prtb_dw1` (as
/// H_REGISTER_PROC_TBL set it), with PIDR `pidr`; `relocate` is MSR[IR] (for a
/// fetch) or MSR[DR]. Without relocation the top 4 address bits are ignored.
pub fn translate(
    mem: &impl GuestRealMemory,
    prtb_dw1: u64,
    pidr: u64,
    ea: u64,
    relocate: bool,
) -> Result<u64, WalkError> {
    if !relocate {
        return Ok(ea & 0x0FFF_FFFF_FFFF_FFFF);
    }
    if prtb_dw1 & PATE_GR == 0 {
        return Err(WalkError::NoProcessTable);
    }
    let pid = match ea >> 62 {
        0 => pidr & 0xFFFF_FFFF,
        3 => 0,
        _ => return Err(WalkError::BadQuadrant),
    };
    let entries = 1u64 << ((prtb_dw1 & PRTS_MASK) + 12 - 4);
    if pid >= entries {
        return Err(WalkError::PidOutOfRange);
    }
    let prte = mem
        .read_be64((prtb_dw1 & PRTB_MASK) + pid * 16)
        .ok_or(WalkError::Unreadable)?;
    let rts = ((prte >> 61) & 3) << 3 | ((prte >> 5) & 7);
    let bits = rts + 31;
    let root = prte & RPDB_MASK;
    let root_size = prte & SIZE_MASK;
    if root == 0 || root_size == 0 || bits > 62 {
        return Err(WalkError::BadProcessTableEntry);
    }
    let addr = ea & ((1 << 62) - 1);
    if addr >> bits != 0 {
        return Err(WalkError::AddressTooLarge);
    }
    walk(mem, root, root_size, bits, addr)
}

fn walk(
    mem: &impl GuestRealMemory,
    root: u64,
    root_size: u64,
    bits: u64,
    addr: u64,
) -> Result<u64, WalkError> {
    let (mut base, mut size, mut shift) = (root, root_size, bits);
    for _ in 0..MAX_LEVELS {
        if !(5..=16).contains(&size) || size > shift || base & ((8 << size) - 1) != 0 {
            return Err(WalkError::BadTree);
        }
        shift -= size;
        let index = (addr >> shift) & ((1 << size) - 1);
        let entry = mem
            .read_be64(base.checked_add(index * 8).ok_or(WalkError::Unreadable)?)
            .ok_or(WalkError::Unreadable)?;
        if entry & PTE_V == 0 {
            return Err(WalkError::Invalid);
        }
        if entry & PTE_L != 0 {
            if shift < 12 {
                return Err(WalkError::BadTree);
            }
            let page_mask = (1u64 << shift) - 1;
            return Ok((entry & RPN_MASK & !page_mask) | (addr & page_mask));
        }
        base = entry & NLB_MASK;
        size = entry & SIZE_MASK;
    }
    Err(WalkError::BadTree)
}

/// MSR bits the fetch needs.
const MSR_IR: u64 = 1 << 5;
const MSR_LE: u64 = 1;

/// Reads the instruction at guest `pc`, executed with `msr` (MSR[IR] decides
/// translation, MSR[LE] the byte order of instructions in memory).
pub fn fetch_instruction(
    mem: &impl GuestRealMemory,
    prtb_dw1: u64,
    pidr: u64,
    pc: u64,
    msr: u64,
) -> Result<u32, WalkError> {
    let gra = translate(mem, prtb_dw1, pidr, pc & !3, msr & MSR_IR != 0)?;
    let dw = mem.read_be64(gra & !7).ok_or(WalkError::Unreadable)?;
    // The first word in memory is the high half of a big-endian doubleword.
    let word = if gra & 4 == 0 {
        (dw >> 32) as u32
    } else {
        dw as u32
    };
    Ok(if msr & MSR_LE != 0 {
        word.swap_bytes()
    } else {
        word
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sparse guest memory of big-endian doublewords below `limit`.
    struct Mem {
        words: BTreeMap<u64, u64>,
        limit: u64,
    }

    impl Mem {
        fn new() -> Self {
            Mem {
                words: BTreeMap::new(),
                limit: 1 << 30,
            }
        }
        fn set(&mut self, gra: u64, v: u64) {
            assert_eq!(gra % 8, 0);
            self.words.insert(gra, v);
        }
    }

    impl GuestRealMemory for Mem {
        fn read_be64(&self, gra: u64) -> Option<u64> {
            (gra.is_multiple_of(8) && gra < self.limit)
                .then(|| self.words.get(&gra).copied().unwrap_or(0))
        }
    }

    const PRTB: u64 = 0x10_0000;
    /// RTS for a 52-bit tree: RTS = 21 -> RTS1 = 0b10 (bits 61-62), RTS2 = 0b101.
    const RTS_52: u64 = (2 << 61) | (5 << 5);

    /// Linux's radix layout with 64K pages: 13, 9, 9, 5 index bits. Builds the
    /// tree for PID `pid` mapping `ea` -> `ra` with a leaf at `leaf_level`
    /// (1 = 1G, 2 = 2M, 3 = 64K) and returns the dw1.
    fn linux_tree(mem: &mut Mem, pid: u64, ea: u64, ra: u64, leaf_level: usize) -> u64 {
        let sizes = [13u64, 9, 9, 5];
        let base = 0x20_0000 + pid * 0x10_0000;
        let mut tables = [base, base + 0x1_0000, base + 0x2_0000, base + 0x3_0000];
        tables[0] = base;
        mem.set(PRTB + pid * 16, RTS_52 | tables[0] | sizes[0]);
        let addr = ea & ((1 << 62) - 1);
        let mut shift = 52;
        for level in 0..4 {
            shift -= sizes[level];
            let idx = (addr >> shift) & ((1 << sizes[level]) - 1);
            let at = tables[level] + idx * 8;
            if level == leaf_level {
                mem.set(at, PTE_V | PTE_L | (ra & !((1 << shift) - 1)) | 0x18e);
                break;
            }
            mem.set(at, PTE_V | tables[level + 1] | sizes[level + 1]);
        }
        PATE_GR | PRTB | 4 // PRTS 4: 64K table, 4096 PIDs
    }

    #[test]
    fn kernel_and_user_addresses() {
        let mut m = Mem::new();
        let dw1 = linux_tree(&mut m, 0, 0xc000_0000_0123_4567, 0x0123_0000, 3);
        assert_eq!(
            translate(&m, dw1, 7, 0xc000_0000_0123_4567, true),
            Ok(0x0123_4567)
        );
        // A user address goes through PIDR's entry.
        linux_tree(&mut m, 7, 0x0000_7fff_1234_5678, 0x0555_0000, 3);
        assert_eq!(
            translate(&m, dw1, 7, 0x0000_7fff_1234_5678, true),
            Ok(0x0555_5678)
        );
        // PID 8 has no tree.
        assert_eq!(
            translate(&m, dw1, 8, 0x0000_7fff_1234_5678, true),
            Err(WalkError::BadProcessTableEntry)
        );
    }

    #[test]
    fn large_leaves() {
        let mut m = Mem::new();
        let dw1 = linux_tree(&mut m, 0, 0xc000_0000_4012_3456, 0x4000_0000, 1);
        assert_eq!(
            translate(&m, dw1, 0, 0xc000_0000_4012_3456, true),
            Ok(0x4012_3456)
        );
        let mut m = Mem::new();
        let dw1 = linux_tree(&mut m, 0, 0xc000_0000_0032_1000, 0x0060_0000, 2);
        assert_eq!(
            translate(&m, dw1, 0, 0xc000_0000_0032_1000, true),
            Ok(0x0072_1000)
        );
    }

    #[test]
    fn real_mode_and_instruction_fetch() {
        let mut m = Mem::new();
        assert_eq!(
            translate(&m, 0, 0, 0xc000_0000_0000_1234, false),
            Ok(0x1234)
        );
        // Two instructions in one doubleword: 0x11223344 at 0x1000, 0x55667788 at 0x1004.
        m.set(0x1000, 0x1122_3344_5566_7788);
        assert_eq!(fetch_instruction(&m, 0, 0, 0x1000, 0), Ok(0x1122_3344));
        assert_eq!(fetch_instruction(&m, 0, 0, 0x1004, 0), Ok(0x5566_7788));
        // Little-endian guest: the bytes 11 22 33 44 are the word 0x44332211.
        assert_eq!(fetch_instruction(&m, 0, 0, 0x1000, MSR_LE), Ok(0x4433_2211));
        // With IR through the tree.
        let dw1 = linux_tree(&mut m, 0, 0xc000_0000_0000_0000, 0, 3);
        assert_eq!(
            fetch_instruction(&m, dw1, 0, 0xc000_0000_0000_1004, MSR_IR | MSR_LE),
            Ok(0x8877_6655)
        );
    }

    #[test]
    fn errors() {
        let mut m = Mem::new();
        let ea = 0xc000_0000_0000_0000;
        assert_eq!(
            translate(&m, 0, 0, ea, true),
            Err(WalkError::NoProcessTable)
        );
        let dw1 = linux_tree(&mut m, 0, ea, 0, 3);
        assert_eq!(
            translate(&m, dw1, 0, 0x4000_0000_0000_0000, true),
            Err(WalkError::BadQuadrant)
        );
        assert_eq!(
            translate(&m, dw1, 0, 0x8000_0000_0000_0000, true),
            Err(WalkError::BadQuadrant)
        );
        assert_eq!(
            translate(&m, dw1, 4096, 0x10, true),
            Err(WalkError::PidOutOfRange)
        );
        assert_eq!(
            translate(&m, dw1, 0, 0xc010_0000_0000_0000, true),
            Err(WalkError::AddressTooLarge)
        );
        // Unmapped page in a populated tree.
        assert_eq!(
            translate(&m, dw1, 0, ea + 0x10_0000, true),
            Err(WalkError::Invalid)
        );
        // Process table outside memory.
        assert_eq!(
            translate(&m, PATE_GR | 0x8000_0000 | 4, 0, ea, true),
            Err(WalkError::Unreadable)
        );
        // A directory entry with NLS 0 or a misaligned base.
        let root = 0x20_0000;
        m.set(root, PTE_V | 0x30_0000);
        assert_eq!(translate(&m, dw1, 0, ea, true), Err(WalkError::BadTree));
        m.set(root, PTE_V | 0x30_0100 | 9);
        assert_eq!(translate(&m, dw1, 0, ea, true), Err(WalkError::BadTree));
        // A loop: the root points at itself until the level limit.
        m.set(root, PTE_V | root | 13);
        assert_eq!(translate(&m, dw1, 0, ea, true), Err(WalkError::BadTree));
    }

    #[test]
    fn random_trees_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut m = Mem::new();
            m.limit = 1 << 24;
            for _ in 0..64 {
                let a = (next() % (1 << 24)) & !7;
                let v = next();
                m.set(a, v);
            }
            let dw1 = next();
            for _ in 0..16 {
                let ea = next();
                let _ = translate(&m, dw1, next(), ea, true);
                let _ = fetch_instruction(&m, dw1, next(), ea, next());
            }
        }
    }
}
