//! Assembly snippets shared by the entry stub (`boot/`), the OPAL trampoline and
//! the interrupt and guest exit paths.
//!
//! A snippet that a file uses more than once is an assembler `.macro`; the Rust
//! macro that defines it takes the `.macro`'s name, so that each `global_asm!`
//! block (several may end up in one assembly file) defines its own.

/// Switches a thread that runs big-endian to little-endian; a no-op when it already
/// runs little-endian. Clobbers r10, r11, SRR0 and SRR1.
///
/// The first word is `tdi 0,0,0x48`, which never traps, but read big-endian is
/// `b .+8`. A big-endian thread therefore runs the following words, which are
/// stored byte-swapped so that it decodes: `mfmsr r11; xori r11,r11,1 (flip LE);
/// li r10,0; mtmsrd r10,1 (EE=RI=0); bcl 20,31,$+4; mflr r10; addi r10,r10,20;
/// mtsrr0 r10; mtsrr1 r11; rfid`, landing after the sequence in little-endian mode.
#[macro_export]
macro_rules! fixup_endian_asm {
    () => {
        "
        tdi 0, 0, 0x48
        b 191f
        .long 0xa600607d
        .long 0x01006b69
        .long 0x00004039
        .long 0x6401417d
        .long 0x05009f42
        .long 0xa602487d
        .long 0x14004a39
        .long 0xa6035a7d
        .long 0xa6037b7d
        .long 0x2400004c
191:
        "
    };
}

/// Defines `LOAD_IMM64 reg, expr`, a 64-bit absolute load in five instructions.
#[macro_export]
macro_rules! load_imm64_macro_asm {
    ($name:literal) => {
        concat!(
            ".macro ",
            $name,
            " reg, expr\n",
            "lis \\reg, (\\expr)@highest\n",
            "ori \\reg, \\reg, (\\expr)@higher\n",
            "rldicr \\reg, \\reg, 32, 31\n",
            "oris \\reg, \\reg, (\\expr)@high\n",
            "ori \\reg, \\reg, (\\expr)@l\n",
            ".endm\n"
        )
    };
}

/// Defines `NAME base, f, pc`, which stores an interrupted context's volatile
/// state (r0-r12, CR, LR, CTR, XER; what the ELFv2 ABI lets a callee clobber)
/// into the structure at register `base`: the interrupt and guest exit paths
/// (`exception`, `guest`) all open with it.
///
/// The structure's offsets are the assembler symbols `<f>GPR`, `<f>CR`, `<f>LR`,
/// `<f>CTR` and `<f>XER` (`.set` from `offset_of!`); the vector entry has already
/// spilled r11, r12 and CR into `PerCpu` (r13), at `<pc>R11`, `<pc>R12` and
/// `<pc>CR`. `base` must not be r0 (the scratch register); clobbers r0.
#[macro_export]
macro_rules! save_volatile_macro_asm {
    ($name:literal) => {
        concat!(
            ".macro ",
            $name,
            " base, f, pc\n",
            "std 0, \\f\\()GPR+0*8(\\base)\n",
            "std 1, \\f\\()GPR+1*8(\\base)\n",
            "std 2, \\f\\()GPR+2*8(\\base)\n",
            "std 3, \\f\\()GPR+3*8(\\base)\n",
            "std 4, \\f\\()GPR+4*8(\\base)\n",
            "std 5, \\f\\()GPR+5*8(\\base)\n",
            "std 6, \\f\\()GPR+6*8(\\base)\n",
            "std 7, \\f\\()GPR+7*8(\\base)\n",
            "std 8, \\f\\()GPR+8*8(\\base)\n",
            "std 9, \\f\\()GPR+9*8(\\base)\n",
            "std 10, \\f\\()GPR+10*8(\\base)\n",
            "ld 0, \\pc\\()R11(13)\n",
            "std 0, \\f\\()GPR+11*8(\\base)\n",
            "ld 0, \\pc\\()R12(13)\n",
            "std 0, \\f\\()GPR+12*8(\\base)\n",
            "ld 0, \\pc\\()CR(13)\n",
            "std 0, \\f\\()CR(\\base)\n",
            "mflr 0\n",
            "std 0, \\f\\()LR(\\base)\n",
            "mfctr 0\n",
            "std 0, \\f\\()CTR(\\base)\n",
            "mfxer 0\n",
            "std 0, \\f\\()XER(\\base)\n",
            ".endm\n"
        )
    };
}

/// Defines `NAME base, f`, the inverse of [`save_volatile_macro_asm`]: reloads CR,
/// LR, CTR and XER (through r0), then r0-r10 and r12 from the structure at
/// register `base` (offsets `<f>GPR`, `<f>CR`, ...). `base` itself (r11 in every
/// user) and r13 are left for the caller, which reloads them last.
#[macro_export]
macro_rules! restore_volatile_macro_asm {
    ($name:literal) => {
        concat!(
            ".macro ",
            $name,
            " base, f\n",
            "ld 0, \\f\\()CR(\\base)\n",
            "mtcr 0\n",
            "ld 0, \\f\\()LR(\\base)\n",
            "mtlr 0\n",
            "ld 0, \\f\\()CTR(\\base)\n",
            "mtctr 0\n",
            "ld 0, \\f\\()XER(\\base)\n",
            "mtxer 0\n",
            "ld 0, \\f\\()GPR+0*8(\\base)\n",
            "ld 1, \\f\\()GPR+1*8(\\base)\n",
            "ld 2, \\f\\()GPR+2*8(\\base)\n",
            "ld 3, \\f\\()GPR+3*8(\\base)\n",
            "ld 4, \\f\\()GPR+4*8(\\base)\n",
            "ld 5, \\f\\()GPR+5*8(\\base)\n",
            "ld 6, \\f\\()GPR+6*8(\\base)\n",
            "ld 7, \\f\\()GPR+7*8(\\base)\n",
            "ld 8, \\f\\()GPR+8*8(\\base)\n",
            "ld 9, \\f\\()GPR+9*8(\\base)\n",
            "ld 10, \\f\\()GPR+10*8(\\base)\n",
            "ld 12, \\f\\()GPR+12*8(\\base)\n",
            ".endm\n"
        )
    };
}

/// Defines `NAME base, f`, the rest of an exit's save after the volatile state
/// ([`save_volatile_macro_asm`]): r13 (which the vector entry parked in HSPRG1),
/// r14-r31, SRR0/1, HSRR0/1, DAR, DSISR, HDAR, HDSISR, ASDR, HEIR, and the vector
/// number from r12, at the offsets `<f>GPR`, `<f>SRR0`, ..., `<f>HEIR`,
/// `<f>VECTOR` of the structure at register `base`. `base` must not be r0;
/// clobbers r0.
#[macro_export]
macro_rules! save_exit_state_macro_asm {
    ($name:literal) => {
        concat!(
            ".macro ",
            $name,
            " base, f\n",
            "mfspr 0, 305\n",
            "std 0, \\f\\()GPR+13*8(\\base)\n",
            "std 14, \\f\\()GPR+14*8(\\base)\n",
            "std 15, \\f\\()GPR+15*8(\\base)\n",
            "std 16, \\f\\()GPR+16*8(\\base)\n",
            "std 17, \\f\\()GPR+17*8(\\base)\n",
            "std 18, \\f\\()GPR+18*8(\\base)\n",
            "std 19, \\f\\()GPR+19*8(\\base)\n",
            "std 20, \\f\\()GPR+20*8(\\base)\n",
            "std 21, \\f\\()GPR+21*8(\\base)\n",
            "std 22, \\f\\()GPR+22*8(\\base)\n",
            "std 23, \\f\\()GPR+23*8(\\base)\n",
            "std 24, \\f\\()GPR+24*8(\\base)\n",
            "std 25, \\f\\()GPR+25*8(\\base)\n",
            "std 26, \\f\\()GPR+26*8(\\base)\n",
            "std 27, \\f\\()GPR+27*8(\\base)\n",
            "std 28, \\f\\()GPR+28*8(\\base)\n",
            "std 29, \\f\\()GPR+29*8(\\base)\n",
            "std 30, \\f\\()GPR+30*8(\\base)\n",
            "std 31, \\f\\()GPR+31*8(\\base)\n",
            "mfspr 0, 26\n",
            "std 0, \\f\\()SRR0(\\base)\n",
            "mfspr 0, 27\n",
            "std 0, \\f\\()SRR1(\\base)\n",
            "mfspr 0, 314\n",
            "std 0, \\f\\()HSRR0(\\base)\n",
            "mfspr 0, 315\n",
            "std 0, \\f\\()HSRR1(\\base)\n",
            "mfspr 0, 19\n",
            "std 0, \\f\\()DAR(\\base)\n",
            "mfspr 0, 18\n",
            "std 0, \\f\\()DSISR(\\base)\n",
            "mfspr 0, 307\n",
            "std 0, \\f\\()HDAR(\\base)\n",
            "mfspr 0, 306\n",
            "std 0, \\f\\()HDSISR(\\base)\n",
            "mfspr 0, 816\n",
            "std 0, \\f\\()ASDR(\\base)\n",
            "mfspr 0, 339\n",
            "std 0, \\f\\()HEIR(\\base)\n",
            "std 12, \\f\\()VECTOR(\\base)\n",
            ".endm\n"
        )
    };
}
