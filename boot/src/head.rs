//! Entry stub, relocation and interrupt vectors (`.head.text`, linked first).
use core::arch::global_asm;

use paprika::arch::ppc64::percpu::PC_STACK_TOP;
use paprika::arch::ppc64::smp::MAX_CPUS;

/// One interrupt vector: save r13 in HSPRG1, load the per-CPU pointer from HSPRG0,
/// spill r12, pass the vector number in r12 and branch (relative, so it works in
/// real mode) to the common entry for its class.
/// A vector stub placed at `$at` that reports vector `$off`.
macro_rules! vector_at {
    ($at:literal, $off:literal, $kind:literal) => {
        concat!(
            ".org ",
            stringify!($at),
            "\n",
            "mtspr 305, 13\n",
            "mfspr 13, 304\n",
            "std 12, {pc_r12}(13)\n",
            "li 12, ",
            stringify!($off),
            "\n",
            "b paprika_exc_",
            $kind,
            "\n",
        )
    };
}

macro_rules! vector {
    ($off:literal, $kind:literal) => {
        concat!(
            ".org ",
            stringify!($off),
            "\n",
            "mtspr 305, 13\n",
            "mfspr 13, 304\n",
            "std 12, {pc_r12}(13)\n",
            "li 12, ",
            stringify!($off),
            "\n",
            "b paprika_exc_",
            $kind,
            "\n",
        )
    };
}

global_asm!(
    paprika::load_imm64_macro_asm!("LOAD_IMM64"),
    r#"
    .section .head.text, "ax"
    .globl _start
_start:
"#,
    paprika::fixup_endian_asm!(),
    r#"
    b paprika_boot_le
"#,
    vector!(0x100, "fault"),
    vector!(0x200, "fault"),
    vector!(0x300, "fault"),
    vector!(0x380, "fault"),
    vector!(0x400, "fault"),
    vector!(0x480, "fault"),
    vector!(0x500, "async"),
    vector!(0x600, "fault"),
    vector!(0x700, "fault"),
    vector!(0x800, "fault"),
    vector!(0x900, "async"),
    vector!(0x980, "async"),
    vector!(0xa00, "async"),
    vector!(0xb00, "fault"),
    vector!(0xc00, "fault"),
    vector!(0xd00, "fault"),
    vector!(0xe00, "fault"),
    vector!(0xe20, "fault"),
    vector!(0xe40, "fault"),
    vector!(0xe60, "fault"),
    vector!(0xe80, "async"),
    vector!(0xea0, "async"),
    vector!(0xf00, "fault"),
    vector!(0xf20, "fault"),
    vector!(0xf40, "fault"),
    vector!(0xf60, "fault"),
    vector!(0xf80, "fault"),
    vector!(0x1500, "fault"),
    vector!(0x1600, "fault"),
    vector!(0x1700, "fault"),
    r#"
    .org 0x1800
paprika_boot_le:
    bcl 20, 31, 1f
1:  mflr 20
    addi 20, 20, -(1b - _start)
    mr 21, 3
    mr 22, 8
    mr 23, 9
    cmpdi 20, 0
    beq 3f
    /* Copy the file image to physical 0. */
    LOAD_IMM64 5, __image_copy_size
    addi 5, 5, 7
    srdi 5, 5, 3
    mtctr 5
    li 6, 0
    mr 7, 20
2:  ld 8, 0(7)
    std 8, 0(6)
    addi 7, 7, 8
    addi 6, 6, 8
    bdnz 2b
    /* Make the copy visible to instruction fetch (Book II 1.8). */
    LOAD_IMM64 5, __image_copy_size
    srdi 5, 5, 7
    addi 5, 5, 1
    mtctr 5
    li 6, 0
4:  dcbst 0, 6
    addi 6, 6, 128
    bdnz 4b
    sync
    LOAD_IMM64 5, __image_copy_size
    srdi 5, 5, 7
    addi 5, 5, 1
    mtctr 5
    li 6, 0
5:  icbi 0, 6
    addi 6, 6, 128
    bdnz 5b
    sync
    isync
    /* Continue in the copy, at the linked address. */
3:  LOAD_IMM64 12, 6f
    mtctr 12
    bctr
6:  LOAD_IMM64 2, .TOC.
    LOAD_IMM64 1, __boot_stack_top
    LOAD_IMM64 5, __bss_start
    LOAD_IMM64 6, __bss_end
    li 0, 0
7:  cmpld 5, 6
    bge 8f
    std 0, 0(5)
    addi 5, 5, 8
    b 7b
8:  mtspr 304, 0
    stdu 0, -64(1)
    mr 3, 21
    mr 4, 22
    mr 5, 23
    mr 6, 20
    bl paprika_boot_main
    nop
9:  b 9b

    /* Secondary threads: OPAL_START_CPU enters here big-endian, real mode, r3=PIR. */
    .balign 16
    .globl paprika_secondary_entry
paprika_secondary_entry:
"#,
    paprika::fixup_endian_asm!(),
    r#"
    LOAD_IMM64 12, 1f
    mtctr 12
    bctr
1:  LOAD_IMM64 2, .TOC.
    LOAD_IMM64 4, PAPRIKA_CPU_BOOT_TABLE
    li 5, {max_cpus}
    mtctr 5
2:  ld 6, 0(4)
    cmpld 6, 3
    beq 3f
    addi 4, 4, 16
    bdnz 2b
    /* Not a thread we started: park. */
4:  b 4b
3:  ld 3, 8(4)
    mtspr 304, 3
    ld 1, {pc_stack_top}(3)
    li 0, 0
    stdu 0, -64(1)
    bl paprika_secondary_main
    nop
5:  b 5b

    /* The same vectors at 0x4000 + vector: where an interrupt lands, translated,
       when LPCR[AIL] = 3 applies to it. A partition may set AIL (H_SET_MODE),
       and while its LPCR is loaded QEMU's POWER9 also relocates interrupts taken
       to the hypervisor; the linear map makes the code here identical to the
       real-mode copies. */
"#,
    vector_at!(0x4100, 0x100, "fault"),
    vector_at!(0x4200, 0x200, "fault"),
    vector_at!(0x4300, 0x300, "fault"),
    vector_at!(0x4380, 0x380, "fault"),
    vector_at!(0x4400, 0x400, "fault"),
    vector_at!(0x4480, 0x480, "fault"),
    vector_at!(0x4500, 0x500, "async"),
    vector_at!(0x4600, 0x600, "fault"),
    vector_at!(0x4700, 0x700, "fault"),
    vector_at!(0x4800, 0x800, "fault"),
    vector_at!(0x4900, 0x900, "async"),
    vector_at!(0x4980, 0x980, "async"),
    vector_at!(0x4a00, 0xa00, "async"),
    vector_at!(0x4b00, 0xb00, "fault"),
    vector_at!(0x4c00, 0xc00, "fault"),
    vector_at!(0x4d00, 0xd00, "fault"),
    vector_at!(0x4e00, 0xe00, "fault"),
    vector_at!(0x4e20, 0xe20, "fault"),
    vector_at!(0x4e40, 0xe40, "fault"),
    vector_at!(0x4e60, 0xe60, "fault"),
    vector_at!(0x4e80, 0xe80, "async"),
    vector_at!(0x4ea0, 0xea0, "async"),
    vector_at!(0x4f00, 0xf00, "fault"),
    vector_at!(0x4f20, 0xf20, "fault"),
    vector_at!(0x4f40, 0xf40, "fault"),
    vector_at!(0x4f60, 0xf60, "fault"),
    vector_at!(0x4f80, 0xf80, "fault"),
    vector_at!(0x5500, 0x1500, "fault"),
    vector_at!(0x5600, 0x1600, "fault"),
    vector_at!(0x5700, 0x1700, "fault"),

    pc_r12 = const paprika::arch::ppc64::percpu::PC_SAVE_R12,
    pc_stack_top = const PC_STACK_TOP,
    max_cpus = const MAX_CPUS,
);
