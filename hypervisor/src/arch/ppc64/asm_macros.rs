//! Assembly snippets shared by the entry stub (`boot/`) and the OPAL trampoline.

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
