//! Loads and stores of every width and form the hypervisor's MMIO emulation
//! decodes (D-form `lbz/lhz/lwz/ld`, `stb/sth/stw/std`; byte-reversed indexed
//! `lhbrx/lwbrx/ldbrx`, `sthbrx/stwbrx/stdbrx`) plus forms it must refuse
//! (`lwarx`, `dcbz`), at random offsets of the TIMA and ESB pages; each access
//! either completes or raises a Data Storage interrupt, which the trap handler
//! skips (`trap::may_fault`).
use core::arch::asm;

use crate::rng::Rng;
use crate::trap;

/// A load of `width` bytes (1, 2, 4, 8), byte-reversed if `rev` (1 byte: plain).
pub fn load(addr: u64, width: u32, rev: bool) -> u64 {
    let v: u64;
    // SAFETY: the caller chose the address: a device page, a guest address
    // whose fault the trap handler skips, or its own memory.
    unsafe {
        match (width, rev) {
            (1, _) => asm!("lbz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack)),
            (2, false) => {
                asm!("lhz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (2, true) => {
                asm!("lhbrx {0}, 0, {1}", out(reg) v, in(reg) addr, options(nostack))
            }
            (4, false) => {
                asm!("lwz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (4, true) => {
                asm!("lwbrx {0}, 0, {1}", out(reg) v, in(reg) addr, options(nostack))
            }
            (_, false) => {
                asm!("ld {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (_, true) => {
                asm!("ldbrx {0}, 0, {1}", out(reg) v, in(reg) addr, options(nostack))
            }
        }
    }
    v
}

/// A store of `width` bytes of `v`, byte-reversed if `rev`.
pub fn store(addr: u64, width: u32, v: u64, rev: bool) {
    // SAFETY: as `load`.
    unsafe {
        match (width, rev) {
            (1, _) => asm!("stb {0}, 0({1})", in(reg) v, in(reg_nonzero) addr, options(nostack)),
            (2, false) => {
                asm!("sth {0}, 0({1})", in(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (2, true) => asm!("sthbrx {0}, 0, {1}", in(reg) v, in(reg) addr, options(nostack)),
            (4, false) => {
                asm!("stw {0}, 0({1})", in(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (4, true) => asm!("stwbrx {0}, 0, {1}", in(reg) v, in(reg) addr, options(nostack)),
            (_, false) => {
                asm!("std {0}, 0({1})", in(reg) v, in(reg_nonzero) addr, options(nostack))
            }
            (_, true) => asm!("stdbrx {0}, 0, {1}", in(reg) v, in(reg) addr, options(nostack)),
        }
    }
}

/// Offsets the models give a meaning (TIMA QW1 bytes and special operations, ESB
/// EOI/trigger/PQ pages) or that are just past them.
const INTERESTING: &[u64] = &[
    0x0, 0x8, 0x10, 0x11, 0x12, 0x13, 0x14, 0x18, 0x1f, 0x20, 0x30, 0x38, 0x400, 0x800, 0x810,
    0x818, 0x820, 0x830, 0x838, 0xc00, 0xc08, 0xd00, 0xe00, 0xf00, 0xfff, 0x1000, 0xfff8, 0xffff,
];

/// One random access to one of `pages` (each 64 KiB); returns whether it faulted.
pub fn one(rng: &mut Rng, pages: &[u64]) -> bool {
    let page = rng.pick(pages);
    let off = if rng.chance(1, 2) {
        rng.pick(INTERESTING) + rng.below(4) * (rng.below(2) * 8)
    } else {
        rng.below(0x1_0000)
    } & 0xffff;
    let addr = page + off;
    let width = rng.pick(&[1u32, 2, 4, 8]);
    let rev = rng.chance(1, 2);
    let value = rng.next();
    match rng.below(16) {
        0..=6 => trap::may_fault(|| {
            load(addr, width, rev);
        }),
        7..=13 => trap::may_fault(|| store(addr, width, value, rev)),
        14 => trap::may_fault(|| {
            // SAFETY: an instruction the emulation must refuse (DSI).
            unsafe { asm!("lwarx {0}, 0, {1}", out(reg) _, in(reg) addr, options(nostack)) };
        }),
        _ => trap::may_fault(|| {
            // SAFETY: as above; dcbz of a device page.
            unsafe { asm!("dcbz 0, {0}", in(reg) addr, options(nostack)) };
        }),
    }
}
