//! An L1 hypervisor without Linux (docs/partitions.md, "Nested
//! virtualization"; `tests/manifests/nested.toml`): in a partition with
//! `nested = true` it registers a partition table (H_SET_PARTITION_TABLE),
//! builds a partition-scoped radix tree for an L2 whose code is a few
//! instructions it writes itself, and runs it with H_ENTER_NESTED: hcalls,
//! loads and stores, faults on unmapped and read-only pages (reflected as HDSI
//! with KVM's cause bits), reference/change bits in its own tree, remapping
//! with H_TLB_INVALIDATE and H_RPT_INVALIDATE, its HDEC deadline. Then the
//! hostile part: bad partition tables, bad guest-state buffers, bad
//! invalidations and copies, trees pointing outside its memory; each must get
//! the PAPR error (or the reflected fault) and the partition carries on.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::asm;
    use paprika_guest_rt::*;

    // HDSISR bits the L0 reports (KVM's).
    const DSISR_NOHPTE: u64 = 0x4000_0000;
    const DSISR_PROTFAULT: u64 = 0x0800_0000;
    const DSISR_ISSTORE: u64 = 0x0200_0000;
    const DSISR_BADACCESS: u64 = 0x0000_4000;
    const DSISR_PRTABLE_FAULT: u64 = 0x0002_0000;

    // Radix entry bits (Power ISA Book III, "Radix Tree Translation").
    const V: u64 = 1 << 63;
    const L: u64 = 1 << 62;
    const R: u64 = 0x100;
    const C: u64 = 0x80;
    const EAA_RWX: u64 = 0x7;
    const EAA_RX: u64 = 0x5;
    const NLS9: u64 = 9;
    /// PATE dw0: HR | RTS = 52 bits | RPDS 13.
    const PATE_HR: u64 = 1 << 63;
    const RTS_52: u64 = (2 << 61) | (5 << 5);

    // The L1's memory layout (guest real; the partition has 128 MiB).
    const MEM: u64 = 128 << 20;
    const PTBL: u64 = 0x0100_0000; // 64 KiB, 4096 entries (PATS 4)
    const ROOT: u64 = 0x0110_0000; // 64 KiB root (13 bits)
    const DIR1: u64 = 0x0112_0000;
    const DIR2: u64 = 0x0112_1000;
    const LEAVES: u64 = 0x0112_2000; // 4 KiB pages of L2 0..2 MiB
    const L2_BASE: u64 = 0x0200_0000; // L2 guest real 0 in the L1
    const OTHER_PAGE: u64 = 0x0300_0000;
    const HV_AT: u64 = 0x0180_0000;
    const REGS_AT: u64 = 0x0180_1000;

    // The L2: code at L2 0x1000.
    const CODE: u64 = 0x1000;
    const LOAD_R4: u64 = 0x1000; // ld r3,0(r4); sc 1
    const STORE_R5_AT_R4: u64 = 0x1008; // std r5,0(r4); sc 1
    const SPIN: u64 = 0x1010; // b .
    const HCALL: u64 = 0x1014; // li r3,0x1234; sc 1
    const DATA: u64 = 0x2000;
    const RO: u64 = 0x3000;
    const LATE: u64 = 0x4000;
    const OUTSIDE: u64 = 0x5000;

    const MSR_SF: u64 = 1 << 63;
    const MSR_ME: u64 = 1 << 12;
    const MSR_LE: u64 = if cfg!(target_endian = "little") { 1 } else { 0 };

    /// `struct hv_guest_state` version 2, in this guest's own byte order (which
    /// is the byte order of its MSR when it makes the hcall).
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Hv {
        version: u64,
        lpid: u32,
        vcpu_token: u32,
        lpcr: u64,
        pcr: u64,
        amor: u64,
        dpdes: u64,
        hfscr: u64,
        tb_offset: u64,
        dawr0: u64,
        dawrx0: u64,
        ciabr: u64,
        hdec_expiry: u64,
        purr: u64,
        spurr: u64,
        ic: u64,
        vtb: u64,
        hdar: u64,
        hdsisr: u64,
        heir: u64,
        asdr: u64,
        srr0: u64,
        srr1: u64,
        sprg: [u64; 4],
        pidr: u64,
        cfar: u64,
        ppr: u64,
        dawr1: u64,
        dawrx1: u64,
    }

    /// `pt_regs` as the API carries it (352 bytes).
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Regs {
        gpr: [u64; 32],
        nip: u64,
        msr: u64,
        orig_gpr3: u64,
        ctr: u64,
        link: u64,
        xer: u64,
        ccr: u64,
        softe: u64,
        trap: u64,
        dar: u64,
        dsisr: u64,
        result: u64,
    }

    const _: () = assert!(core::mem::size_of::<Hv>() == 248);
    const _: () = assert!(core::mem::size_of::<Regs>() == 352);

    fn put_be(addr: u64, v: u64) {
        // SAFETY: real mode; `addr` is inside this partition's memory (the
        // layout above) and 8-byte aligned.
        unsafe { core::ptr::write_volatile(addr as *mut u64, v.to_be()) }
    }

    fn get_be(addr: u64) -> u64 {
        // SAFETY: as for `put_be`.
        u64::from_be(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }

    fn put(addr: u64, v: u64) {
        // SAFETY: as for `put_be`.
        unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
    }

    fn get(addr: u64) -> u64 {
        // SAFETY: as for `put_be`.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    }

    fn sync() {
        // SAFETY: a barrier, so the L0 sees the tables before the hcall.
        unsafe { asm!("ptesync", options(nostack)) }
    }

    fn leaf(l1: u64, eaa: u64) -> u64 {
        V | L | (l1 & 0x00ff_ffff_ffff_f000) | eaa
    }

    /// Maps L2 page `l2` to L1 page `l1` (R and C clear).
    fn map(l2: u64, l1: u64, eaa: u64) {
        put_be(LEAVES + 8 * (l2 >> 12), leaf(l1, eaa));
        sync();
    }

    fn pte(l2: u64) -> u64 {
        get_be(LEAVES + 8 * (l2 >> 12))
    }

    /// The L2's code, in its (and this guest's) byte order, made visible to
    /// instruction fetch.
    fn write_code() {
        let words: [u32; 8] = [
            0xe864_0000, // ld r3,0(r4)
            0x4400_0022, // sc 1
            0xf8a4_0000, // std r5,0(r4)
            0x4400_0022, // sc 1
            0x4800_0000, // b .
            0x3860_1234, // li r3,0x1234
            0x4400_0022, // sc 1
            0x4bff_fff8, // b .-8 (the hcall again: the benchmark's loop)
        ];
        for (i, w) in words.iter().enumerate() {
            let at = L2_BASE + CODE + 4 * i as u64;
            // SAFETY: inside the L2's code page in this partition's memory.
            unsafe { core::ptr::write_volatile(at as *mut u32, *w) };
        }
        let line = L2_BASE + CODE;
        // SAFETY: cache maintenance of this partition's own memory.
        unsafe { asm!("dcbst 0,{0}", "sync", "icbi 0,{0}", "isync", in(reg) line) };
    }

    /// The tree for L2 1: L2 0..2 MiB in 4 KiB pages at L2_BASE.., code and
    /// data mapped RWX, a read-only page, a page mapped late, one outside.
    fn build_tree() {
        put_be(ROOT, V | DIR1 | NLS9);
        put_be(DIR1, V | DIR2 | NLS9);
        put_be(DIR2, V | LEAVES | NLS9);
        map(CODE, L2_BASE + CODE, EAA_RWX);
        map(DATA, L2_BASE + DATA, EAA_RWX);
        map(RO, L2_BASE + RO, EAA_RX);
        map(OUTSIDE, 0x4000_0000, EAA_RWX);
        write_code();
        set_pate(1, ROOT);
    }

    fn set_pate(lpid: u64, root: u64) {
        put_be(PTBL + 16 * lpid, PATE_HR | RTS_52 | root | 13);
        put_be(PTBL + 16 * lpid + 8, 0);
        sync();
    }

    fn mftb() -> u64 {
        paprika_guest_rt::mftb()
    }

    /// One H_ENTER_NESTED of L2 `lpid` at `nip` with r4/r5; re-enters while the
    /// L0 returns 0 ("look again"). Returns the trap, the state and registers.
    fn run_at(lpid: u32, nip: u64, r4: u64, r5: u64, ticks: u64) -> (i64, Hv, Regs) {
        let hv = Hv {
            version: 2,
            lpid,
            hfscr: u64::MAX,
            hdec_expiry: mftb() + ticks,
            ..Default::default()
        };
        let mut regs = Regs {
            gpr: [0; 32],
            nip,
            msr: MSR_SF | MSR_ME | MSR_LE,
            orig_gpr3: 0,
            ctr: 0,
            link: 0,
            xer: 0,
            ccr: 0,
            softe: 0,
            trap: 0,
            dar: 0,
            dsisr: 0,
            result: 0,
        };
        regs.gpr[4] = r4;
        regs.gpr[5] = r5;
        // SAFETY: the buffers are inside this partition's memory.
        unsafe {
            core::ptr::write_volatile(HV_AT as *mut Hv, hv);
            core::ptr::write_volatile(REGS_AT as *mut Regs, regs);
        }
        let mut rc = 0;
        for _ in 0..1000 {
            rc = hcall(H_ENTER_NESTED, &[HV_AT, REGS_AT]).0;
            if rc != 0 {
                break;
            }
        }
        // SAFETY: as above; the L0 wrote them back.
        let (hv, regs) = unsafe {
            (
                core::ptr::read_volatile(HV_AT as *const Hv),
                core::ptr::read_volatile(REGS_AT as *const Regs),
            )
        };
        (rc, hv, regs)
    }

    fn run(nip: u64, r4: u64, r5: u64) -> (i64, Hv, Regs) {
        run_at(1, nip, r4, r5, 512_000_000)
    }

    /// H_ENTER_NESTED with a state buffer changed by `f` (hostile forms).
    fn enter_with(f: impl FnOnce(&mut Hv), hv_at: u64, regs_at: u64) -> i64 {
        let mut hv = Hv {
            version: 2,
            lpid: 1,
            hdec_expiry: mftb() + 512_000_000,
            ..Default::default()
        };
        f(&mut hv);
        // SAFETY: inside this partition's memory.
        unsafe { core::ptr::write_volatile(HV_AT as *mut Hv, hv) };
        put(REGS_AT + 256, HCALL); // nip
        put(REGS_AT + 264, MSR_SF | MSR_ME | MSR_LE);
        hcall(H_ENTER_NESTED, &[hv_at, regs_at]).0
    }

    /// `H_TLBIE_P1_ENC(ric, prs, r)`.
    fn p1(ric: u64, prs: u64, r: u64) -> u64 {
        (ric << 18) | (prs << 17) | (r << 16)
    }

    fn rb(addr: u64, is: u64, ap: u64) -> u64 {
        (addr & !0xfff) | (is << 10) | (ap << 5)
    }

    fn functional() {
        // Before any partition table: H_NOT_AVAILABLE (KVM).
        let (rc, _, _) = run(HCALL, 0, 0);
        check(
            "enter-before-table-not-available",
            rc == H_NOT_AVAILABLE,
            format_args!("rc {}", rc),
        );
        build_tree();
        let rc = hcall(H_SET_PARTITION_TABLE, &[PTBL | 4]).0;
        check("set-partition-table", rc == 0, format_args!("rc {}", rc));

        // An hcall of the L2 comes back as trap 0xc00 with its registers.
        let (t, _, r) = run(HCALL, 0, 0);
        check(
            "l2-hcall-0xc00",
            t == 0xc00 && r.gpr[3] == 0x1234 && r.nip == HCALL + 8 && r.msr & 1 == MSR_LE,
            format_args!(
                "trap {:#x} r3 {:#x} nip {:#x} msr {:#x}",
                t, r.gpr[3], r.nip, r.msr
            ),
        );

        // A load: the L2 reads what the L1 wrote; R set in the L1's leaf, C not.
        put(L2_BASE + DATA, 0x5eed_0001);
        let (t, _, r) = run(LOAD_R4, DATA, 0);
        check(
            "l2-load",
            t == 0xc00 && r.gpr[3] == 0x5eed_0001,
            format_args!("trap {:#x} r3 {:#x}", t, r.gpr[3]),
        );
        let p = pte(DATA);
        check(
            "load-sets-r-not-c",
            p & (R | C) == R,
            format_args!("pte {:#x}", p),
        );
        // A store: the L1 sees it; C set.
        let (t, _, _) = run(STORE_R5_AT_R4, DATA + 8, 0xfeed);
        let p = pte(DATA);
        check(
            "l2-store-sets-c",
            t == 0xc00 && get(L2_BASE + DATA + 8) == 0xfeed && p & (R | C) == R | C,
            format_args!(
                "trap {:#x} word {:#x} pte {:#x}",
                t,
                get(L2_BASE + DATA + 8),
                p
            ),
        );

        // An unmapped page: HDSI reflected with NOHPTE, ASDR and HDAR; mapped,
        // the same instruction then succeeds.
        let (t, hv, r) = run(LOAD_R4, LATE + 0x18, 0);
        check(
            "unmapped-hdsi-nohpte",
            t == 0xe00
                && hv.hdsisr & DSISR_NOHPTE != 0
                && hv.asdr & !0xfff == LATE
                && hv.hdar == LATE + 0x18
                && r.nip == LOAD_R4,
            format_args!(
                "trap {:#x} hdsisr {:#x} asdr {:#x} hdar {:#x} nip {:#x}",
                t, hv.hdsisr, hv.asdr, hv.hdar, r.nip
            ),
        );
        put(L2_BASE + LATE + 0x18, 0x1a7e);
        map(LATE, L2_BASE + LATE, EAA_RWX);
        let (t, _, r) = run(r.nip, LATE + 0x18, 0);
        check(
            "mapped-then-load",
            t == 0xc00 && r.gpr[3] == 0x1a7e,
            format_args!("trap {:#x} r3 {:#x}", t, r.gpr[3]),
        );

        // A store to a read-only page: PROTFAULT | ISSTORE; a load is fine.
        let (t, hv, _) = run(STORE_R5_AT_R4, RO, 1);
        check(
            "read-only-store-protfault",
            t == 0xe00
                && hv.hdsisr & (DSISR_PROTFAULT | DSISR_ISSTORE) == DSISR_PROTFAULT | DSISR_ISSTORE,
            format_args!("trap {:#x} hdsisr {:#x}", t, hv.hdsisr),
        );
        let (t, _, _) = run(LOAD_R4, RO, 0);
        check("read-only-load", t == 0xc00, format_args!("trap {:#x}", t));

        // Remapping DATA to another L1 page, then H_TLB_INVALIDATE of the page:
        // the L2 reads the new page.
        put(OTHER_PAGE, 0x0e1e_0002);
        map(DATA, OTHER_PAGE, EAA_RWX);
        let rc = hcall(H_TLB_INVALIDATE, &[p1(0, 0, 1), 1, rb(DATA, 0, 0)]).0;
        let (t, _, r) = run(LOAD_R4, DATA, 0);
        check(
            "remap-tlb-invalidate",
            rc == 0 && t == 0xc00 && r.gpr[3] == 0x0e1e_0002,
            format_args!("rc {} trap {:#x} r3 {:#x}", rc, t, r.gpr[3]),
        );
        // And back with H_RPT_INVALIDATE(NESTED | TLB, 4 KiB, the page).
        map(DATA, L2_BASE + DATA, EAA_RWX);
        let rc = hcall(H_RPT_INVALIDATE, &[1, 1, 0x3, 0x1, DATA, DATA + 0x1000]).0;
        let (t, _, r) = run(LOAD_R4, DATA, 0);
        check(
            "remap-rpt-invalidate-nested",
            rc == 0 && t == 0xc00 && r.gpr[3] == 0x5eed_0001,
            format_args!("rc {} trap {:#x} r3 {:#x}", rc, t, r.gpr[3]),
        );
        // Whole-LPID forms (IS = 2, RIC 2; IS = 3).
        let rc2 = hcall(H_TLB_INVALIDATE, &[p1(2, 0, 1), 1, rb(0, 2, 0)]).0;
        let rc3 = hcall(H_TLB_INVALIDATE, &[p1(0, 0, 1), 0, rb(0, 3, 0)]).0;
        let (t, _, r) = run(LOAD_R4, DATA, 0);
        check(
            "tlb-invalidate-lpid-and-all",
            rc2 == 0 && rc3 == 0 && t == 0xc00 && r.gpr[3] == 0x5eed_0001,
            format_args!("rc {} {} trap {:#x}", rc2, rc3, t),
        );

        // The L1's deadline: an L2 spinning comes back with 0x980 after it.
        let start = mftb();
        let (t, _, r) = run_at(1, SPIN, 0, 0, 512_000); // ~1 ms at 512 MHz
        let took = mftb() - start;
        check(
            "hdec-expiry-0x980",
            t == 0x980 && r.nip == SPIN && took >= 512_000,
            format_args!("trap {:#x} nip {:#x} ticks {}", t, r.nip, took),
        );
        // A deadline already past: 0x980 without running.
        let (t, _, _) = run_at(1, HCALL, 0, 0, 0);
        check("hdec-past-0x980", t == 0x980, format_args!("trap {:#x}", t));
    }

    fn hostile() {
        let bad = H_PARAMETER;
        // Bad partition tables: too large, misaligned, outside memory, reserved
        // bits, all ones. The registered one stays.
        for (name, ptcr) in [
            ("ptcr-too-many-entries", PTBL | 5),
            ("ptcr-misaligned", (PTBL + 0x1000) | 4),
            ("ptcr-outside-memory", MEM | 4),
            ("ptcr-straddles-end", (MEM - 0x8000) | 4),
            ("ptcr-reserved-bits", PTBL | 0x20),
            ("ptcr-high-bits", (1 << 63) | PTBL | 4),
            ("ptcr-all-ones", u64::MAX),
        ] {
            let rc = hcall(H_SET_PARTITION_TABLE, &[ptcr]).0;
            check(name, rc == bad, format_args!("rc {}", rc));
        }
        let (t, _, _) = run(HCALL, 0, 0);
        check("table-kept", t == 0xc00, format_args!("trap {:#x}", t));

        // Bad guest-state buffers.
        for (name, rc) in [
            (
                "hv-version-0",
                enter_with(|h| h.version = 0, HV_AT, REGS_AT),
            ),
            (
                "hv-version-3",
                enter_with(|h| h.version = 3, HV_AT, REGS_AT),
            ),
            (
                "hv-wrong-byte-order",
                enter_with(|h| h.version = 2u64.swap_bytes(), HV_AT, REGS_AT),
            ),
            ("hv-lpid-0", enter_with(|h| h.lpid = 0, HV_AT, REGS_AT)),
            (
                "hv-lpid-4096",
                enter_with(|h| h.lpid = 4096, HV_AT, REGS_AT),
            ),
            (
                "hv-lpid-max",
                enter_with(|h| h.lpid = u32::MAX, HV_AT, REGS_AT),
            ),
            (
                "hv-vcpu-token-huge",
                enter_with(|h| h.vcpu_token = 1 << 20, HV_AT, REGS_AT),
            ),
            ("hv-outside-memory", enter_with(|_| {}, MEM, REGS_AT)),
            ("hv-straddles-end", enter_with(|_| {}, MEM - 100, REGS_AT)),
            ("hv-at-all-ones", enter_with(|_| {}, u64::MAX - 7, REGS_AT)),
            ("regs-outside-memory", enter_with(|_| {}, HV_AT, MEM - 8)),
            ("regs-at-2-pow-52", enter_with(|_| {}, HV_AT, 1 << 52)),
        ] {
            check(name, rc == bad, format_args!("rc {}", rc));
        }

        // Bad invalidations (KVM's H_PARAMETER cases) and copies.
        for (name, args) in [
            ("tlbie-hash", [p1(0, 0, 0), 1, rb(0, 2, 0)]),
            ("tlbie-process-scoped", [p1(0, 1, 1), 1, rb(0, 2, 0)]),
            ("tlbie-ric-3", [p1(3, 0, 1), 1, rb(0, 2, 0)]),
            ("tlbie-is-1", [p1(0, 0, 1), 1, rb(0, 1, 0)]),
            ("tlbie-is-0-ric-2", [p1(2, 0, 1), 1, rb(DATA, 0, 0)]),
            ("tlbie-bad-ap", [p1(0, 0, 1), 1, rb(DATA, 0, 3)]),
        ] {
            let rc = hcall(H_TLB_INVALIDATE, &args).0;
            check(name, rc == bad, format_args!("rc {}", rc));
        }
        let rc = hcall(H_RPT_INVALIDATE, &[1, 2, 0x3, 0x1, 0, 0x1000]).0;
        check(
            "rpt-nested-target-p2",
            rc == H_P2,
            format_args!("rc {}", rc),
        );
        let rc = hcall(H_RPT_INVALIDATE, &[1, 1, 0x3, 0x1, 0x2000, 0x1000]).0;
        check(
            "rpt-nested-end-before-start-p5",
            rc == H_P5,
            format_args!("rc {}", rc),
        );
        let rc = hcall(H_COPY_TOFROM_GUEST, &[1, 0, 0x1000, HV_AT, REGS_AT, 8]).0;
        check("copy-both-directions", rc == bad, format_args!("rc {}", rc));
        let rc = hcall(H_COPY_TOFROM_GUEST, &[1, 0, 0x1000, 0, 0, 8]).0;
        check("copy-no-direction", rc == bad, format_args!("rc {}", rc));
        let rc = hcall(H_COPY_TOFROM_GUEST, &[1, 0, 0x1000, MEM - 4, 0, 8]).0;
        check("copy-buffer-outside", rc == bad, format_args!("rc {}", rc));
        let rc = hcall(H_COPY_TOFROM_GUEST, &[7, 0, 0x1000, HV_AT, 0, 8]).0;
        check("copy-unknown-l2", rc == bad, format_args!("rc {}", rc));
        // The L2 has no process table: nothing to translate.
        let rc = hcall(H_COPY_TOFROM_GUEST, &[1, 0, 0x1000, HV_AT, 0, 8]).0;
        check(
            "copy-no-translation",
            rc == H_NOT_FOUND,
            format_args!("rc {}", rc),
        );

        // A tree leaf pointing outside the L1's memory: HDSI with BADACCESS.
        let (t, hv, _) = run(LOAD_R4, OUTSIDE, 0);
        check(
            "leaf-outside-l1-memory",
            t == 0xe00 && hv.hdsisr & DSISR_BADACCESS != 0,
            format_args!("trap {:#x} hdsisr {:#x}", t, hv.hdsisr),
        );
        // An L2 whose tree root is outside the L1's memory: its first fetch
        // comes back as an HISI with the table fault and the table's address.
        set_pate(2, 0x4000_0000);
        let (t, hv, r) = run_at(2, HCALL, 0, 0, 512_000_000);
        check(
            "root-outside-l1-memory",
            t == 0xe20 && hv.hdsisr & DSISR_PRTABLE_FAULT != 0 && hv.asdr & !0xfff == 0x4000_0000,
            format_args!(
                "trap {:#x} hdsisr {:#x} asdr {:#x} msr {:#x}",
                t, hv.hdsisr, hv.asdr, r.msr
            ),
        );
        // Garbage in the L1's tree: every entry of the leaf table all ones.
        for i in 0..8 {
            put_be(LEAVES + 8 * (0x100 + i), u64::MAX);
        }
        sync();
        let (t, _, _) = run(LOAD_R4, 0x10_0000, 0);
        check(
            "garbage-leaf",
            t == 0xe00 || t == 0xc00,
            format_args!("trap {:#x}", t),
        );

        // Many L2s (the same tree under other LPIDs): at most 64 per
        // partition, then H_RESOURCE (-16); the first ones run.
        let (mut ran, mut refused, mut other) = (0, 0, 0);
        for lpid in 3..80u64 {
            set_pate(lpid, ROOT);
            match run_at(lpid as u32, HCALL, 0, 0, 512_000_000).0 {
                0xc00 => ran += 1,
                -16 => refused += 1,
                _ => other += 1,
            }
        }
        // L2s 1 and 2 exist already: 62 more fit.
        check(
            "l2-count-limit",
            ran == 62 && refused == 77 - 62 && other == 0,
            format_args!("ran {} refused {} other {}", ran, refused, other),
        );

        // Deregistering: H_ENTER_NESTED is not available any more.
        let rc = hcall(H_SET_PARTITION_TABLE, &[0]).0;
        let (t, _, _) = run(HCALL, 0, 0);
        check(
            "deregistered-not-available",
            rc == 0 && t == H_NOT_AVAILABLE,
            format_args!("rc {} trap {}", rc, t),
        );
        // And back: the L2 runs again (its shadow state rebuilt).
        let rc = hcall(H_SET_PARTITION_TABLE, &[PTBL | 4]).0;
        let (t, _, r) = run(HCALL, 0, 0);
        check(
            "reregistered-runs",
            rc == 0 && t == 0xc00 && r.gpr[3] == 0x1234,
            format_args!("rc {} trap {:#x}", rc, t),
        );
    }

    /// Rounds of [`BENCH_CALLS`] calls; each figure is the fastest round.
    const BENCH_ROUNDS: u32 = 3;
    const BENCH_CALLS: u64 = 1000;

    /// `cargo xtask bench` (docs/benchmarks.md): the round trip of an hcall of
    /// this L1 (H_PROD of itself, the cheapest call) and of an hcall of its L2
    /// as the L1 handles it (the L2's `sc 1` comes back from H_ENTER_NESTED as
    /// trap 0xc00 and the L1 enters it again, where it loops to the next one).
    fn bench() {
        let mut l1 = u64::MAX;
        let mut l2 = u64::MAX;
        let (t, _, _) = run_at(1, HCALL, 0, 0, 1 << 60);
        // Enter once and leave the buffers as they come back: the L2 resumes
        // after its `sc 1` and loops to the next one.
        let mut ok = t == 0xc00;
        for _ in 0..BENCH_ROUNDS {
            let start = mftb();
            for _ in 0..BENCH_CALLS {
                hcall(0xe8, &[0]);
            }
            l1 = l1.min((mftb() - start) / BENCH_CALLS);
            let start = mftb();
            for _ in 0..BENCH_CALLS {
                // 0: an interrupt of the L1's was pending; entering again
                // resumes the L2 where it was.
                let rc = hcall(H_ENTER_NESTED, &[HV_AT, REGS_AT]).0;
                if rc != 0xc00 && rc != 0 && ok {
                    println!("bench: trap {:#x}", rc);
                    ok = false;
                }
            }
            l2 = l2.min((mftb() - start) / BENCH_CALLS);
        }
        check(
            "bench-l2-loop",
            ok,
            format_args!("an entry did not end in 0xc00"),
        );
        println!("BENCH iterations={}", BENCH_CALLS);
        println!("BENCH l1_hcall_ticks={}", l1);
        println!("BENCH l2_hcall_ticks={}", l2);
    }

    #[no_mangle]
    fn guest_main(_fdt: &'static [u8]) -> ! {
        println!("nested: L1 test hypervisor, L2 code at L2 {:#x}", CODE);
        functional();
        hostile();
        bench();
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
