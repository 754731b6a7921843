//! A partition with a hashed page table (`mmu = "hash"`): what the device tree
//! offers, H_REGISTER_PROC_TBL's hash forms, the page-frame-table hcalls and
//! their refusals (an H_ENTER naming memory outside the partition gets
//! H_PARAMETER, also under a burst of random arguments), and hashed translation
//! itself: an SLB entry and an HPTE of its own, a load and a store through
//! them, H_PROTECT to read-only and H_REMOVE, each seen as the guest's own data
//! storage interrupt.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering};
    use paprika_guest_rt::*;
    const H_BOLTED: u64 = 0x10;
    const H_EXACT: u64 = 1 << (63 - 24);
    const H_AVPN: u64 = 1 << (63 - 32);

    const V_VALID: u64 = 1;
    const R_M: u64 = 0x10;
    const R_I: u64 = 0x20;
    /// PP = 3 with key 0: read-only for the kernel.
    const R_PP_RO: u64 = 0x3;

    /// The mapping this guest makes: EA segment 1 (0x1000_0000), VSID 0x5a5,
    /// 4 KiB page 5 of it.
    const VSID: u64 = 0x5a5;
    const EA: u64 = 0x1000_5000;

    /// Data storage interrupts taken (0x300), and the DSISR of the last one.
    static DSI: AtomicU64 = AtomicU64::new(0);
    static DSISR: AtomicU64 = AtomicU64::new(0);

    fn on_trap(vector: u64, srr0: &mut u64) -> bool {
        if vector != 0x300 {
            return false;
        }
        DSI.fetch_add(1, Ordering::AcqRel);
        DSISR.store(mfspr_dsisr(), Ordering::Release);
        // Skip the access (the test's asm block continues after it).
        *srr0 += 4;
        true
    }

    /// Loads the doubleword at `ea` with data translation on: MSR[DR] is set
    /// only around the load, so nothing else (stack, statics) is translated.
    fn load_translated(ea: u64) -> u64 {
        let v: u64;
        // SAFETY: the block touches only `ea`; a data storage interrupt skips
        // the load (leaving `v` 0) and returns with DR still set.
        unsafe {
            asm!(
                "li {v}, 0",
                "mfmsr {m}",
                "ori {t}, {m}, 0x10",
                "mtmsrd {t}, 0",
                "isync",
                "ld {v}, 0({ea})",
                "mtmsrd {m}, 0",
                "isync",
                v = out(reg_nonzero) v, m = out(reg) _, t = out(reg) _, ea = in(reg_nonzero) ea,
                options(nostack)
            );
        }
        v
    }

    fn store_translated(ea: u64, val: u64) {
        // SAFETY: as for `load_translated`.
        unsafe {
            asm!(
                "mfmsr {m}",
                "ori {t}, {m}, 0x10",
                "mtmsrd {t}, 0",
                "isync",
                "std {val}, 0({ea})",
                "mtmsrd {m}, 0",
                "isync",
                m = out(reg) _, t = out(reg) _, ea = in(reg_nonzero) ea, val = in(reg) val,
                options(nostack)
            );
        }
    }

    fn slbmte(vsid_word: u64, esid_word: u64) {
        // SAFETY: the guest's own SLB; only segment 1 is used, by the blocks above.
        unsafe {
            asm!("slbmte {0}, {1}", "isync", in(reg) vsid_word, in(reg) esid_word, options(nostack))
        };
    }

    fn read_real(gra: u64) -> u64 {
        // SAFETY: real mode, inside the partition's memory.
        unsafe { core::ptr::read_volatile(gra as *const u64) }
    }

    fn write_real(gra: u64, v: u64) {
        // SAFETY: real mode, a page of the guest's own memory nothing else uses.
        unsafe { core::ptr::write_volatile(gra as *mut u64, v) }
    }

    /// xorshift64*, fixed seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// H_RESIZE_HPT_PREPARE until it is no longer "long busy" (9900-9905,
    /// Linux `pseries_lpar_resize_hpt`).
    fn prepare(shift: u64) -> i64 {
        loop {
            let (rc, _) = hcall(H_RESIZE_HPT_PREPARE, &[0, shift]);
            if !(9900..=9905).contains(&rc) {
                return rc;
            }
        }
    }

    /// The HPT resize calls ("hcall-hpt-resize"), as Linux makes them when
    /// memory is added (`resize_hpt_for_hotplug`): their refusals, then a
    /// table twice as big and back, with a bolted mapping of `page` at `EA`
    /// surviving both rehashes and real mode (VRMA) working throughout.
    fn resize(shift: u32, mem: u64, page: u64) {
        let shift = u64::from(shift);
        let (rc, _) = hcall(H_RESIZE_HPT_COMMIT, &[0, shift + 1]);
        check(
            "resize-commit-unprepared",
            rc == H_CLOSED,
            format_args!("rc {}", rc),
        );
        for (what, flags, s, want) in [
            ("flags", 1, shift + 1, H_PARAMETER),
            ("below-2^18", 0, 17, H_PARAMETER),
            ("above-2^46", 0, 47, H_PARAMETER),
            ("two-orders-up", 0, shift + 2, H_RESOURCE),
        ] {
            let (rc, _) = hcall(H_RESIZE_HPT_PREPARE, &[flags, s]);
            check(
                "resize-prepare-refused",
                rc == want,
                format_args!("{}: rc {} want {}", what, rc, want),
            );
        }
        let rc = prepare(shift + 1);
        check("resize-prepare", rc == 0, format_args!("rc {}", rc));
        let (rc, _) = hcall(H_RESIZE_HPT_PREPARE, &[0, 0]);
        check("resize-cancel", rc == 0, format_args!("rc {}", rc));
        let (rc, _) = hcall(H_RESIZE_HPT_COMMIT, &[0, shift + 1]);
        check(
            "resize-commit-cancelled",
            rc == H_CLOSED,
            format_args!("rc {}", rc),
        );

        // A bolted mapping of `page` at `EA` (the SLB entry is still there).
        write_real(page + 24, 0x600d_f00d);
        // The primary hash, before it is masked to a table size.
        let hash = VSID ^ ((EA & 0x0fff_ffff) >> 12);
        let pteh = ((VSID << 28 | (EA & 0x0fff_ffff)) >> 23 << 7) | H_BOLTED | V_VALID;
        let mask = (1u64 << (shift - 7)) - 1;
        let (rc, out) = hcall(H_ENTER, &[0, (hash & mask) * 8, pteh, page | R_M]);
        let slot = out[0];
        check("resize-bolted-enter", rc == 0, format_args!("rc {}", rc));
        let dsi = DSI.load(Ordering::Acquire);
        for (step, to) in [("grow", shift + 1), ("shrink", shift)] {
            let rc = prepare(to);
            let (crc, _) = if rc == 0 {
                let (bad, _) = hcall(H_RESIZE_HPT_COMMIT, &[1, to]);
                check(
                    "resize-commit-flags",
                    bad == H_PARAMETER,
                    format_args!("rc {}", bad),
                );
                let (other, _) = hcall(H_RESIZE_HPT_COMMIT, &[0, to + 5]);
                check(
                    "resize-commit-other-size",
                    other == H_CLOSED,
                    format_args!("rc {}", other),
                );
                hcall(H_RESIZE_HPT_COMMIT, &[0, to])
            } else {
                (rc, [0; 4])
            };
            check(
                "resize-commit",
                rc == 0 && crc == 0,
                format_args!("{}: prepare {} commit {}", step, rc, crc),
            );
            let groups = 1u64 << (to - 7);
            let got = load_translated(EA + 24);
            check(
                "resize-bolted-mapping-kept",
                got == 0x600d_f00d && DSI.load(Ordering::Acquire) == dsi,
                format_args!("{}: read {:#x}", step, got),
            );
            // The entry moved to the group of its hash in the new table, same slot.
            let new_slot = (hash & (groups - 1)) * 8 + slot % 8;
            let (rc, out) = hcall(H_READ, &[0, new_slot]);
            check(
                "resize-entry-rehashed",
                rc == 0 && out[0] == pteh && out[1] & 0x0fff_ffff_ffff_f000 == page,
                format_args!("{}: rc {} v {:#x} r {:#x}", step, rc, out[0], out[1]),
            );
            // The index range is the new table's.
            let (rc, out) = hcall(H_ENTER, &[0, groups * 8 - 8, pteh & !H_BOLTED, page | R_M]);
            let (past, _) = hcall(H_ENTER, &[0, groups * 8, pteh, page | R_M]);
            check(
                "resize-index-range",
                rc == 0 && past == H_PARAMETER,
                format_args!("{}: last group {} one past {}", step, rc, past),
            );
            hcall(H_REMOVE, &[0, out[0], 0]);
            // Real mode (the VRMA entries, bolted, rehashed too) reaches all memory.
            write_real(mem - 8, to);
            check(
                "resize-real-mode",
                read_real(mem - 8) == to,
                format_args!("{}: last doubleword", step),
            );
        }
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        set_interrupt_endianness_to_build();
        set_trap_handler(on_trap);

        // What the device tree offers a hash partition.
        let pft = fdt_prop(fdt, "/cpus/*", "ibm,pft-size").unwrap_or(&[]);
        let shift = if pft.len() == 8 {
            u32::from_be_bytes([pft[4], pft[5], pft[6], pft[7]])
        } else {
            0
        };
        check(
            "pft-size",
            (18..=46).contains(&shift),
            format_args!("ibm,pft-size {:?}", pft),
        );
        let vec5 = fdt_prop(fdt, "/chosen", "ibm,architecture-vec-5").unwrap_or(&[]);
        check(
            "vec5-hash-only",
            vec5.len() > 24 && vec5[24] & 0xc0 == 0,
            format_args!("byte 24 of {:?}", vec5),
        );
        let ht = fdt_prop(fdt, "/rtas", "ibm,hypertas-functions").unwrap_or(&[]);
        let has = |s: &[u8]| ht.split(|&b| b == 0).any(|w| w == s);
        check(
            "hypertas-pft-bulk",
            has(b"hcall-pft") && has(b"hcall-bulk") && has(b"hcall-hpt-resize"),
            format_args!("ibm,hypertas-functions lacks hcall-pft/bulk/hpt-resize"),
        );
        check(
            "vec5-hpt-resize",
            vec5.len() > 6 && vec5[6] & 0x01 != 0,
            format_args!("byte 6 of {:?}", vec5),
        );
        let reg = fdt_prop(fdt, "/memory@0", "reg").unwrap_or(&[0; 16]);
        let mem = u64::from_be_bytes([
            reg[8], reg[9], reg[10], reg[11], reg[12], reg[13], reg[14], reg[15],
        ]);
        let groups = 1u64 << shift.saturating_sub(7);

        // H_REGISTER_PROC_TBL: Linux's "keep the HPT" call, and radix refused.
        let (rc, _) = hcall(H_REGISTER_PROC_TBL, &[0, 0, 0, 0]);
        check("register-proc-tbl-keep", rc == 0, format_args!("rc {}", rc));
        let (rc, _) = hcall(H_REGISTER_PROC_TBL, &[0x18 | 0x04, 0x10000, 0, 0]);
        check(
            "register-proc-tbl-radix-refused",
            rc == H_PARAMETER,
            format_args!("rc {}", rc),
        );

        // A page of our own memory (well above the image) to map.
        let page = mem / 2;
        write_real(page, 0x1234_5678_9abc_def0);
        let hash = (VSID ^ ((EA & 0x0fff_ffff) >> 12)) & (groups - 1);
        let pteh = ((VSID << 28 | (EA & 0x0fff_ffff)) >> 23 << 7) | V_VALID;
        let ptel = page | R_M;
        let (rc, out) = hcall(H_ENTER, &[0, hash * 8, pteh, ptel]);
        let slot = out[0];
        check(
            "enter",
            rc == 0 && slot / 8 == hash,
            format_args!("rc {} slot {:#x} group {:#x}", rc, slot, hash),
        );
        let (rc, out) = hcall(H_READ, &[0, slot]);
        check(
            "read-returns-guest-rpn",
            rc == 0 && out[0] == pteh && out[1] & !0x180 == ptel,
            format_args!(
                "rc {} v {:#x} r {:#x}, entered {:#x} {:#x}",
                rc, out[0], out[1], pteh, ptel
            ),
        );
        let (rc, _) = hcall(H_ENTER, &[H_EXACT, slot, pteh, ptel]);
        check(
            "enter-exact-taken",
            rc == H_PTEG_FULL,
            format_args!("rc {}", rc),
        );

        // Outside the partition's memory, or not memory-coherent: H_PARAMETER.
        for (what, rpn) in [
            ("end", mem),
            ("last+1", mem + 0x1000),
            ("far", 0x0fff_ffff_ffff_f000),
            ("hv-at-0x1_0000_0000", 0x1_0000_0000u64.max(mem)),
        ] {
            let (rc, _) = hcall(H_ENTER, &[0, 0, pteh, rpn | R_M]);
            check(
                "enter-outside-memory",
                rc == H_PARAMETER,
                format_args!("{} rpn {:#x}: rc {}", what, rpn, rc),
            );
        }
        let (rc, _) = hcall(H_ENTER, &[0, 0, pteh, page | R_I]);
        check(
            "enter-cache-inhibited-ram",
            rc == H_PARAMETER,
            format_args!("rc {}", rc),
        );
        let (rc, _) = hcall(H_ENTER, &[0, groups * 8, pteh, page | R_M]);
        check(
            "enter-ptex-range",
            rc == H_PARAMETER,
            format_args!("rc {}", rc),
        );

        // Random H_ENTERs: whatever is accepted maps only our own memory.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut wrong) = (0u32, 0u32);
        for _ in 0..2000 {
            let flags = rng.next() & (H_EXACT | 0xff);
            let ptex = rng.next() % (groups * 8 + 16);
            let v = rng.next() | V_VALID;
            let mut r = rng.next();
            if rng.next() & 1 == 0 {
                // Half of them with a plausible RPN near the end of memory.
                r = ((mem - 0x10_0000 + (r & 0x1f_ffff)) & !0xfff) | (r & 0x1ff);
            }
            let (rc, out) = hcall(H_ENTER, &[flags, ptex, v, r]);
            if rc == 0 {
                accepted += 1;
                // Both the page asked for and the one H_READ reports must lie
                // inside the partition's memory.
                let size = if v & 4 != 0 { 0x1_0000 } else { 0x1000 };
                let asked = r & 0x0fff_ffff_ffff_f000 & !(size - 1);
                let (_, rd) = hcall(H_READ, &[0, out[0]]);
                let got = rd[1] & 0x0fff_ffff_ffff_f000 & !(size - 1);
                if asked + size > mem || got != asked {
                    wrong += 1;
                }
                hcall(H_REMOVE, &[0, out[0], 0]);
            }
        }
        check(
            "random-enter-stays-inside",
            wrong == 0,
            format_args!("{} of {} accepted entries outside memory", wrong, accepted),
        );

        // Hashed translation: segment 1 -> VSID, with Kp = 1, Ks = 0.
        slbmte((VSID << 12) | 0x400, (EA & !0x0fff_ffff) | 0x800_0000 | 1);
        let got = load_translated(EA);
        check(
            "load-through-hpte",
            got == 0x1234_5678_9abc_def0 && DSI.load(Ordering::Acquire) == 0,
            format_args!("read {:#x}, {} DSI", got, DSI.load(Ordering::Acquire)),
        );
        store_translated(EA + 8, 0x0bad_cafe);
        check(
            "store-through-hpte",
            read_real(page + 8) == 0x0bad_cafe,
            format_args!("real {:#x}", read_real(page + 8)),
        );
        // Read-only: the store faults in the guest itself (0x300, DSISR store +
        // protection).
        let avpn = pteh & !0x7f;
        let (rc, _) = hcall(H_PROTECT, &[H_AVPN | R_PP_RO, slot, avpn]);
        check("protect", rc == 0, format_args!("rc {}", rc));
        store_translated(EA + 16, 0x5555);
        let dsisr = DSISR.load(Ordering::Acquire);
        check(
            "store-read-only-faults",
            DSI.load(Ordering::Acquire) == 1
                && read_real(page + 16) == 0
                && dsisr & 0x0a00_0000 == 0x0a00_0000,
            format_args!("{} DSI, DSISR {:#x}", DSI.load(Ordering::Acquire), dsisr),
        );
        check(
            "load-read-only-works",
            load_translated(EA + 8) == 0x0bad_cafe,
            format_args!("read-only mapping unreadable"),
        );
        // Removed: the load faults (no HPTE: DSISR bit 33, 0x4000_0000).
        let (rc, out) = hcall(H_REMOVE, &[H_AVPN, slot, avpn]);
        check(
            "remove",
            rc == 0 && out[1] & 0x0fff_ffff_ffff_f000 == page,
            format_args!("rc {} r {:#x}", rc, out[1]),
        );
        let got = load_translated(EA);
        check(
            "load-after-remove-faults",
            got == 0
                && DSI.load(Ordering::Acquire) == 2
                && DSISR.load(Ordering::Acquire) & 0x4000_0000 != 0,
            format_args!("read {:#x}, {} DSI", got, DSI.load(Ordering::Acquire)),
        );
        let (rc, _) = hcall(H_REMOVE, &[0, slot, 0]);
        check(
            "remove-again-not-found",
            rc == H_NOT_FOUND,
            format_args!("rc {}", rc),
        );
        let (rc, _) = hcall(H_PROTECT, &[0, slot, 0]);
        check(
            "protect-removed-not-found",
            rc == H_NOT_FOUND,
            format_args!("rc {}", rc),
        );
        // H_BULK_REMOVE: one request on an entry made again, then the end marker.
        let (_, out) = hcall(H_ENTER, &[0, hash * 8, pteh, ptel]);
        let (rc, out) = hcall(
            H_BULK_REMOVE,
            &[0x4000_0000_0000_0000 | out[0], 0, 0xc000_0000_0000_0000, 0],
        );
        check(
            "bulk-remove",
            rc == 0 && out[0] >> 62 == 2 && (out[0] >> 60) & 3 == 0,
            format_args!("rc {} response {:#x}", rc, out[0]),
        );
        resize(shift, mem, page);
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
