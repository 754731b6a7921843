//! Big-endian device register accessors in the instruction forms Linux uses
//! (arch/powerpc/include/asm/io.h): `in_be64`/`out_be64` are `ldbrx`/`stdbrx` in
//! a little-endian kernel and `ld`/`std` in a big-endian one; `__raw_readw` is a
//! plain `lhz` (the XIVE ack is read that way and swapped in software); `in_8`
//! and `out_8` are `lbz` and `stb`. Paprika emulates such accesses to the XIVE
//! TIMA and ESB pages by decoding the faulting instruction, so the forms matter.
//!
//! These are safe functions for the test guests' convenience, which is sound only
//! for addresses that are device registers or otherwise unused by Rust code: any
//! other address is the caller's responsibility (at worst the access faults into
//! the guest's trap handler).
use core::arch::asm;

/// `in_be64`.
pub fn in_be64(addr: u64) -> u64 {
    let v: u64;
    #[cfg(target_endian = "little")]
    // SAFETY: a device register (see the module docs).
    unsafe {
        asm!("ldbrx {0}, 0, {1}", out(reg) v, in(reg) addr, options(nostack))
    };
    #[cfg(target_endian = "big")]
    // SAFETY: as above.
    unsafe {
        asm!("ld {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack))
    };
    v
}

/// `out_be64`.
pub fn out_be64(addr: u64, v: u64) {
    #[cfg(target_endian = "little")]
    // SAFETY: a device register (see the module docs).
    unsafe {
        asm!("stdbrx {0}, 0, {1}", in(reg) v, in(reg) addr, options(nostack))
    };
    #[cfg(target_endian = "big")]
    // SAFETY: as above.
    unsafe {
        asm!("std {0}, 0({1})", in(reg) v, in(reg_nonzero) addr, options(nostack))
    };
}

/// `in_be32`.
pub fn in_be32(addr: u64) -> u32 {
    let v: u64;
    #[cfg(target_endian = "little")]
    // SAFETY: a device register (see the module docs).
    unsafe {
        asm!("lwbrx {0}, 0, {1}", out(reg) v, in(reg) addr, options(nostack))
    };
    #[cfg(target_endian = "big")]
    // SAFETY: as above.
    unsafe {
        asm!("lwz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack))
    };
    v as u32
}

/// `be16_to_cpu(__raw_readw())`: a plain `lhz`, swapped in software.
pub fn raw_be16(addr: u64) -> u16 {
    let v: u64;
    // SAFETY: a device register (see the module docs).
    unsafe { asm!("lhz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack)) };
    u16::from_be(v as u16)
}

/// `in_8`.
pub fn in_8(addr: u64) -> u8 {
    let v: u64;
    // SAFETY: a device register (see the module docs).
    unsafe { asm!("lbz {0}, 0({1})", out(reg) v, in(reg_nonzero) addr, options(nostack)) };
    v as u8
}

/// `out_8`.
pub fn out_8(addr: u64, v: u8) {
    // SAFETY: a device register (see the module docs).
    unsafe {
        asm!("stb {0}, 0({1})", in(reg) u64::from(v), in(reg_nonzero) addr, options(nostack))
    };
}
