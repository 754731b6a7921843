//! Partition-scoped translation for nested guests (L2s of a partition that runs
//! a hypervisor, `papr::nested`).
//!
//! The L1 describes each L2's memory with a partition-scoped radix tree in its
//! own memory (L2 guest real -> L1 guest real). The hardware cannot walk that
//! tree and then the L0's tree for the L1, so the L0 runs the L2 on a *shadow*
//! tree (L2 guest real -> host real) that it fills on demand: an L2 access with
//! no shadow translation exits to the L0 (HDSI/HISI), which walks the L1's tree
//! here ([`translate_l2`]), checks the access against the L1's permissions, sets
//! the L1's reference/change bits as the hardware would, and inserts a shadow
//! leaf ([`shadow_leaf`]), writable only once the L1's leaf has C. What the L1's tree refuses is reflected to the L1 as
//! the HDSI/HISI it would have taken itself, with the cause bits KVM gives
//! ([`NestedFault::dsisr`]). As in KVM (`book3s_hv_nested.c`
//! `__kvmhv_nested_page_fault`): permissions are the L1's (the L1's own memory is
//! fully accessible to it); R is set in the L1's leaf on the first access, C on
//! the first store, which a read-only shadow leaf makes fault to the L0 (KVM
//! leaves C clear in its shadow leaf to the same effect).
//!
//! Portable: the L1's memory is reached through [`GuestRealMemory`].
use super::guest_walk::{self, GuestRealMemory, Leaf, ProcessTable, WalkError};
use super::radix::{PageSize, PteFlags, PATE_HR, PTE_C, PTE_R};
use crate::papr::nested as n;

/// EAA bits of a radix leaf (ISA bits 60:63): privileged, read, read/write,
/// execute.
const EAA_READ: u64 = 0x4;
const EAA_RW: u64 = 0x2;
const EAA_EXEC: u64 = 0x1;

/// The kind of access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Load,
    Store,
    Fetch,
}

/// Why the L1's tree gives no translation for an L2 access, as the L1 is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestedFault {
    /// No valid leaf.
    NoPte,
    /// The L1's table entry or tree is not a radix format this L0 walks.
    Unsupported,
    /// A table of the L1's tree lies outside the L1's memory (at this L1 guest
    /// real address).
    TableOutside(u64),
    /// The leaf does not allow the access.
    Protection,
}

impl NestedFault {
    /// HDSISR (or, for an instruction fetch, the SRR1 cause bits) the L1 gets,
    /// as KVM's `kvmhv_translate_addr_nested`.
    pub const fn dsisr(self, access: Access) -> u64 {
        let store = if matches!(access, Access::Store) {
            n::DSISR_ISSTORE
        } else {
            0
        };
        store
            | match self {
                NestedFault::NoPte => n::DSISR_NOHPTE,
                NestedFault::Unsupported => n::DSISR_UNSUPP_MMU,
                NestedFault::TableOutside(_) => n::DSISR_PRTABLE_FAULT,
                NestedFault::Protection => {
                    if matches!(access, Access::Fetch) {
                        n::SRR1_ISI_N_G_OR_CIP
                    } else {
                        n::DSISR_PROTFAULT
                    }
                }
            }
    }
}

/// A translation found in the L1's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1Leaf {
    /// L1 guest real address of the L2 address.
    pub l1_gra: u64,
    pub page_shift: u8,
    pub pte: u64,
    /// L1 guest real address of the leaf (to set R/C).
    pub pte_addr: u64,
}

impl L1Leaf {
    pub const fn may_read(&self) -> bool {
        self.pte & (EAA_READ | EAA_RW) != 0
    }
    pub const fn may_write(&self) -> bool {
        self.pte & EAA_RW != 0
    }
    pub const fn may_execute(&self) -> bool {
        self.pte & EAA_EXEC != 0
    }
}

/// Walks the L1's partition-scoped tree of an L2 (`dw0` = the L1's partition
/// table entry dw0 for it: HR, RTS, root, RPDS) for L2 guest real `gra` and
/// checks `access` against the leaf.
pub fn translate_l2(
    l1: &impl GuestRealMemory,
    dw0: u64,
    gra: u64,
    access: Access,
) -> Result<L1Leaf, NestedFault> {
    if dw0 & PATE_HR == 0 {
        return Err(NestedFault::Unsupported);
    }
    let leaf: Leaf = guest_walk::walk_tree(l1, dw0, gra).map_err(|e| match e {
        WalkError::InvalidEntry { .. } => NestedFault::NoPte,
        WalkError::MemoryRead(a) => NestedFault::TableOutside(a),
        _ => NestedFault::Unsupported,
    })?;
    let l = L1Leaf {
        l1_gra: leaf.gra,
        page_shift: leaf.page_shift,
        pte: leaf.pte,
        pte_addr: leaf.pte_addr,
    };
    let allowed = match access {
        Access::Store => l.may_write(),
        Access::Fetch => l.may_execute(),
        Access::Load => l.may_read(),
    };
    if !allowed {
        return Err(NestedFault::Protection);
    }
    Ok(l)
}

/// The L1 leaf with R (and C for a store) set, if that changes it: the L0 stores
/// it back into the L1's tree (compare-and-swap against `leaf.pte`), as the
/// hardware does for a translation it uses.
pub const fn rc_update(leaf: &L1Leaf, access: Access) -> Option<u64> {
    let want = leaf.pte
        | PTE_R
        | if matches!(access, Access::Store) {
            PTE_C
        } else {
            0
        };
    if want == leaf.pte {
        None
    } else {
        Some(want)
    }
}

/// A leaf to insert into an L2's shadow tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowLeaf {
    /// L2 guest real address and L1 guest real address of the leaf, aligned to
    /// its size.
    pub l2_gra: u64,
    pub l1_gra: u64,
    pub size: u64,
    /// Permissions: the L1's (read, write, execute), write only once the L1's
    /// leaf has C.
    pub flags: PteFlags,
}

/// Largest shadow leaf: the L0 maps the L1's memory in 2 MiB chunks, each in
/// one host extent (`partition::demand`), so a shadow leaf never crosses one.
pub const SHADOW_MAX: PageSize = PageSize::Size2M;

/// The shadow leaf for L2 address `l2_gra` translated by `leaf` (after
/// [`rc_update`]: `pte` is what the L1's tree holds now).
pub fn shadow_leaf(l2_gra: u64, leaf: &L1Leaf, pte: u64) -> ShadowLeaf {
    let shift = u32::from(leaf.page_shift).min(SHADOW_MAX.shift());
    let size = 1u64 << shift;
    let mut flags = PteFlags::empty();
    if leaf.may_read() {
        flags |= PteFlags::READ;
    }
    // Stores only once the L1's leaf records a change: until then the shadow
    // leaf is read-only, and the first store faults to the L0, which sets C in
    // the L1's leaf ([`rc_update`]) and maps the page writable. (The shadow
    // leaves themselves always carry R and C, so the hardware never has to
    // update them.)
    if leaf.may_write() && pte & PTE_C != 0 {
        flags |= PteFlags::WRITE;
    }
    if leaf.may_execute() {
        flags |= PteFlags::EXEC;
    }
    ShadowLeaf {
        l2_gra: l2_gra & !(size - 1),
        l1_gra: leaf.l1_gra & !(size - 1),
        size,
        flags,
    }
}

/// An L2's memory as the L1's tree presents it: reads of L2 guest real
/// addresses through the L1's partition-scoped tree, for walking the L2's own
/// process-scoped tables (H_COPY_TOFROM_GUEST).
pub struct L2Memory<'a, M: GuestRealMemory> {
    pub l1: &'a M,
    pub dw0: u64,
}

impl<M: GuestRealMemory> GuestRealMemory for L2Memory<'_, M> {
    fn read_be64(&self, gra: u64) -> Option<u64> {
        let leaf = translate_l2(self.l1, self.dw0, gra, Access::Load).ok()?;
        self.l1.read_be64(leaf.l1_gra)
    }
}

/// L1 guest real address of L2 effective address `ea` (without quadrant bits,
/// as H_COPY_TOFROM_GUEST passes it) as seen with PID `pid`:
/// the L2's process table (`dw1` of the L1's entry for it) and tree walked in
/// L2 guest real space, then the L1's tree. `None` if any step fails
/// (H_COPY_TOFROM_GUEST answers H_NOT_FOUND).
pub fn l2_ea_to_l1(
    l1: &impl GuestRealMemory,
    dw0: u64,
    dw1: u64,
    pid: u32,
    ea: u64,
    access: Access,
) -> Option<u64> {
    // dw1: PRTB (bits 4:51), PRTS (59:63).
    let pt = ProcessTable {
        base: dw1 & 0x0FFF_FFFF_FFFF_F000,
        prts: (dw1 & 0x1F) as u8,
    };
    let l2 = L2Memory { l1, dw0 };
    // As KVM's `__kvmhv_copy_tofrom_guest_radix`: the address carries no
    // quadrant; PID 0 is the L2's kernel (quadrant 3), another PID a process
    // (quadrant 0 with that PIDR).
    let ea = if pid == 0 { ea | (3 << 62) } else { ea };
    let leaf = guest_walk::walk(&l2, Some(pt), pid, ea).ok()?;
    let ok = match access {
        Access::Store => leaf.pte & EAA_RW != 0,
        Access::Load => leaf.pte & (EAA_RW | EAA_READ) != 0,
        Access::Fetch => leaf.pte & EAA_EXEC != 0,
    };
    if !ok {
        return None;
    }
    translate_l2(l1, dw0, leaf.gra, access)
        .ok()
        .map(|l| l.l1_gra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::be::Be64;
    use crate::mm::radix::{self, CacheAttr, RadixTree, TableMemory};
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An L1's memory: a sparse map of big-endian words at L1 guest real
    /// addresses below `size`, which also serves as table memory for building
    /// trees with the radix builder (tables allocated downwards from the top).
    struct L1Mem {
        words: RefCell<BTreeMap<u64, u64>>,
        size: u64,
        next: u64,
    }

    impl L1Mem {
        fn new(size: u64) -> Self {
            Self {
                words: RefCell::new(BTreeMap::new()),
                size,
                next: size,
            }
        }
        fn get(&self, a: u64) -> u64 {
            *self.words.borrow().get(&a).unwrap_or(&0)
        }
    }

    impl GuestRealMemory for L1Mem {
        fn read_be64(&self, gra: u64) -> Option<u64> {
            (gra + 8 <= self.size).then(|| self.get(gra))
        }
    }

    impl TableMemory for L1Mem {
        fn alloc_table(&mut self, bytes: u64) -> Option<u64> {
            self.next = (self.next - bytes) & !(bytes - 1);
            Some(self.next)
        }
        fn free_table(&mut self, _: u64, _: u64) {}
        fn read(&self, pa: u64) -> Be64 {
            Be64::new(self.get(pa))
        }
        fn write(&mut self, pa: u64, v: Be64) {
            self.words.borrow_mut().insert(pa, v.get());
        }
    }

    const MB: u64 = 1 << 20;
    const RW: PteFlags = PteFlags::READ.union(PteFlags::WRITE);

    /// An L1 with 64 MiB and a tree for its L2: L2 0..2 MiB -> L1 16 MiB (RW,
    /// 4 KiB pages), L2 4 MiB (one 4 KiB page, read-only) -> L1 20 MiB, L2
    /// 8..10 MiB -> L1 32 MiB (one 2 MiB page, RWX).
    fn setup() -> (L1Mem, u64) {
        let mut m = L1Mem::new(64 * MB);
        let mut t = RadixTree::new(&mut m).unwrap();
        let k4 = PageSize::Size4K;
        t.map(&mut m, 0, 16 * MB, 2 * MB, RW, CacheAttr::Normal, k4)
            .unwrap();
        t.map(
            &mut m,
            4 * MB,
            20 * MB,
            0x1000,
            PteFlags::READ,
            CacheAttr::Normal,
            k4,
        )
        .unwrap();
        t.map(
            &mut m,
            8 * MB,
            32 * MB,
            2 * MB,
            RW | PteFlags::EXEC,
            CacheAttr::Normal,
            PageSize::Size2M,
        )
        .unwrap();
        let dw0 = radix::radix_root_dw0(t.root()) | PATE_HR;
        // The builder sets R and C; clear them so the L0's updates show.
        let keys: std::vec::Vec<u64> = m.words.borrow().keys().copied().collect();
        for k in keys {
            let v = m.get(k);
            if v & radix::PTE_L != 0 {
                m.words.borrow_mut().insert(k, v & !(PTE_R | PTE_C));
            }
        }
        (m, dw0)
    }

    #[test]
    fn translation_and_permissions() {
        let (m, dw0) = setup();
        let l = translate_l2(&m, dw0, 0x1234, Access::Store).unwrap();
        assert_eq!(l.l1_gra, 16 * MB + 0x1234);
        assert_eq!(l.page_shift, 12);
        let l = translate_l2(&m, dw0, 8 * MB + 0x1_2345, Access::Fetch).unwrap();
        assert_eq!(l.l1_gra, 32 * MB + 0x1_2345);
        assert_eq!(l.page_shift, 21);
        // Unmapped: NOHPTE; read-only: a store is a protection fault, a load
        // is fine; no execute on the 4 KiB pages.
        assert_eq!(
            translate_l2(&m, dw0, 3 * MB, Access::Load),
            Err(NestedFault::NoPte)
        );
        assert_eq!(
            translate_l2(&m, dw0, 4 * MB, Access::Store),
            Err(NestedFault::Protection)
        );
        assert!(translate_l2(&m, dw0, 4 * MB + 8, Access::Load).is_ok());
        assert_eq!(
            translate_l2(&m, dw0, 0, Access::Fetch),
            Err(NestedFault::Protection)
        );
        // A hash (HR = 0) entry, or an empty one.
        assert_eq!(
            translate_l2(&m, dw0 & !PATE_HR, 0, Access::Load),
            Err(NestedFault::Unsupported)
        );
        assert_eq!(
            translate_l2(&m, 0, 0, Access::Load),
            Err(NestedFault::Unsupported)
        );
        // A root outside the L1's memory.
        let outside = (dw0 & !radix::RPDB_MASK) | (128 * MB);
        assert_eq!(
            translate_l2(&m, outside, 0, Access::Load),
            Err(NestedFault::TableOutside(128 * MB))
        );
        // Cause bits as KVM.
        assert_eq!(NestedFault::NoPte.dsisr(Access::Store), 0x4200_0000);
        assert_eq!(NestedFault::Protection.dsisr(Access::Load), 0x0800_0000);
        assert_eq!(NestedFault::Protection.dsisr(Access::Fetch), 0x1000_0000);
        assert_eq!(
            NestedFault::TableOutside(0).dsisr(Access::Load),
            0x0002_0000
        );
        assert_eq!(NestedFault::Unsupported.dsisr(Access::Load), 0x0008_0000);
    }

    #[test]
    fn reference_and_change() {
        let (m, dw0) = setup();
        let l = translate_l2(&m, dw0, 0x5000, Access::Load).unwrap();
        assert_eq!(l.pte & (PTE_R | PTE_C), 0);
        let after_load = rc_update(&l, Access::Load).unwrap();
        assert_eq!(after_load & (PTE_R | PTE_C), PTE_R);
        let s = shadow_leaf(0x5000, &l, after_load);
        assert_eq!(s.flags, PteFlags::READ, "no store before C is set");
        // First store: C set in the L1's leaf, and the shadow leaf may have it.
        m.words.borrow_mut().insert(l.pte_addr, after_load);
        let l = translate_l2(&m, dw0, 0x5008, Access::Store).unwrap();
        let after_store = rc_update(&l, Access::Store).unwrap();
        assert_eq!(after_store & (PTE_R | PTE_C), PTE_R | PTE_C);
        m.words.borrow_mut().insert(l.pte_addr, after_store);
        let l = translate_l2(&m, dw0, 0x5008, Access::Store).unwrap();
        assert_eq!(rc_update(&l, Access::Store), None);
        assert_eq!(shadow_leaf(0x5008, &l, l.pte).flags, RW);
    }

    #[test]
    fn shadow_leaf_sizes() {
        let (m, dw0) = setup();
        let l = translate_l2(&m, dw0, 0x1234, Access::Load).unwrap();
        let s = shadow_leaf(0x1234, &l, l.pte | PTE_C);
        assert_eq!(
            (s.l2_gra, s.l1_gra, s.size),
            (0x1000, 16 * MB + 0x1000, 0x1000)
        );
        assert_eq!(s.flags, RW);
        let l = translate_l2(&m, dw0, 9 * MB, Access::Load).unwrap();
        let s = shadow_leaf(9 * MB, &l, l.pte | PTE_C);
        assert_eq!((s.l2_gra, s.l1_gra, s.size), (8 * MB, 32 * MB, 2 * MB));
        assert_eq!(s.flags, RW | PteFlags::EXEC);
    }

    #[test]
    fn shadow_never_exceeds_2m_for_a_1g_l1_page() {
        let mut m = L1Mem::new(4 << 30);
        let mut t = RadixTree::new(&mut m).unwrap();
        t.map(
            &mut m,
            1 << 30,
            2 << 30,
            1 << 30,
            RW,
            CacheAttr::Normal,
            PageSize::Size1G,
        )
        .unwrap();
        let dw0 = radix::radix_root_dw0(t.root()) | PATE_HR;
        let a = (1 << 30) + 5 * MB + 0x123;
        let l = translate_l2(&m, dw0, a, Access::Load).unwrap();
        assert_eq!(l.page_shift, 30);
        let s = shadow_leaf(a, &l, l.pte);
        assert_eq!(s.size, 2 * MB);
        assert_eq!(s.l2_gra, (1 << 30) + 4 * MB);
        assert_eq!(s.l1_gra, (2 << 30) + 4 * MB);
    }

    #[test]
    fn hostile_l1_trees_never_panic() {
        // Random words everywhere: every walk ends in a result or a fault.
        let m = L1Mem::new(1 << 20);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for a in (0..(1 << 20)).step_by(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.words.borrow_mut().insert(a, x);
        }
        for i in 0..2000u64 {
            let dw0 = (i.wrapping_mul(0x1_0001_0001) & 0x000f_ff00) | PATE_HR | (i % 32);
            let _ = translate_l2(&m, dw0, i << 14, Access::Store);
            let _ = l2_ea_to_l1(&m, dw0, i << 12, i as u32, i << 20, Access::Load);
        }
    }

    #[test]
    fn copy_walks_both_levels() {
        // The L2's process table at L2 0x10000 (-> L1 16 MiB + 0x10000) with one
        // entry (PID 0) whose tree maps EA 0xc000_0000_0000_0000 + 0x3000 to L2
        // real 0x7000 (-> L1 16 MiB + 0x7000).
        let (mut m, dw0) = setup();
        // Build the L2's process-scoped tree in L2 memory: easiest as a tree of
        // L1 addresses built in the region that L2 0..2 MiB maps to.
        let l2_base = 16 * MB;
        let mut sub = L1Mem::new(2 * MB);
        let mut t = RadixTree::new(&mut sub).unwrap();
        t.map(
            &mut sub,
            0x3000,
            0x7000,
            0x1000,
            RW,
            CacheAttr::Normal,
            PageSize::Size4K,
        )
        .unwrap();
        for (&a, &v) in sub.words.borrow().iter() {
            m.write(l2_base + a, Be64::new(v));
        }
        // Process table entry 0: the tree's root (an L2 address) and RTS.
        let prtb = 0x10000u64;
        m.write(l2_base + prtb, Be64::new(radix::radix_root_dw0(t.root())));
        let dw1 = prtb; // PRTS 0: 256 entries
                        // PID 0: the kernel's tree (quadrant 3).
        assert_eq!(
            l2_ea_to_l1(&m, dw0, dw1, 0, 0x3010, Access::Load),
            Some(l2_base + 0x7010)
        );
        // A PID that has no entry; an unmapped EA.
        assert_eq!(l2_ea_to_l1(&m, dw0, dw1, 5, 0x3000, Access::Load), None);
        assert_eq!(l2_ea_to_l1(&m, dw0, dw1, 0, 0x9000, Access::Load), None);
    }
}
