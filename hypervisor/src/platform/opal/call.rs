//! The OPAL call trampoline.
//!
//! OPAL runs big-endian in real mode with r2 = OPAL base and the token in r0; it
//! preserves r1 and r13-r31 and returns through LR, still big-endian and in real
//! mode. The trampoline switches MSR with `hrfid` (dropping IR, DR, EE and LE), and
//! the return path flips back to little-endian with the fixup sequence, restores the
//! TOC and the caller's MSR, and returns. Every pointer handed to OPAL must be a
//! real address ([`super::real`]).
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// OPAL base (r2 for OPAL) and entry point, from `/ibm,opal`; read by the trampoline.
#[no_mangle]
static PAPRIKA_OPAL: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Arguments of one call as the trampoline loads them.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct OpalArgs {
    pub token: u64,
    pub args: [u64; 8],
}

global_asm!(
    crate::load_imm64_macro_asm!("OPAL_LOAD_IMM64"),
    r#"
    .section .text.opal, "ax"
    .balign 16
    .globl paprika_opal_call
paprika_opal_call:
    mflr 0
    std 0, 16(1)
    stdu 1, -64(1)
    std 2, 24(1)
    mfmsr 12
    std 12, 32(1)
    mr 11, 3
    ld 0, 0(11)
    ld 3, 8(11)
    ld 4, 16(11)
    ld 5, 24(11)
    ld 6, 32(11)
    ld 7, 40(11)
    ld 8, 48(11)
    ld 9, 56(11)
    ld 10, 64(11)
    OPAL_LOAD_IMM64 11, PAPRIKA_OPAL
    ld 2, 0(11)
    ld 12, 8(11)
    mtspr 314, 12
    mfmsr 12
    li 11, 0x31
    ori 11, 11, 0x8000
    andc 12, 12, 11
    mtspr 315, 12
    OPAL_LOAD_IMM64 11, paprika_opal_return
    rldicl 11, 11, 0, 4
    mtlr 11
    hrfid

paprika_opal_return:
"#,
    crate::fixup_endian_asm!(),
    r#"
    ld 2, 24(1)
    ld 12, 32(1)
    OPAL_LOAD_IMM64 11, 1f
    mtspr 314, 11
    mtspr 315, 12
    hrfid
1:  addi 1, 1, 64
    ld 0, 16(1)
    mtlr 0
    blr
"#
);

extern "C" {
    fn paprika_opal_call(args: *const OpalArgs) -> i64;
}

/// Records OPAL's base and entry point.
pub fn set_entry(base: u64, entry: u64) {
    PAPRIKA_OPAL[0].store(base, Ordering::Relaxed);
    PAPRIKA_OPAL[1].store(entry, Ordering::Release);
}

pub fn is_ready() -> bool {
    PAPRIKA_OPAL[1].load(Ordering::Acquire) != 0
}

/// Makes one OPAL call. Returns OPAL's raw return code.
pub fn raw_call(token: u64, args: &[u64]) -> i64 {
    let mut a = OpalArgs {
        token,
        args: [0; 8],
    };
    let n = args.len().min(8);
    a.args[..n].copy_from_slice(&args[..n]);
    if !is_ready() {
        return -1;
    }
    // SAFETY: OPAL's entry point came from the device tree; the trampoline preserves
    // everything the ELFv2 ABI requires and returns in the caller's MSR. Pointer
    // arguments were converted to real addresses by the typed wrappers.
    unsafe { paprika_opal_call(&a) }
}
