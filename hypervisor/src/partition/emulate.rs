//! Decoding and completing the guest load/store that caused a Hypervisor Data
//! Storage Interrupt, so the hypervisor can emulate MMIO to pages it deliberately
//! leaves out of the partition-scoped tree (XIVE TIMA and ESB pages).
//!
//! Portable: decides only. The caller fetches the instruction (see
//! [`crate::mm::guest_walk::fetch_instruction`]; HEIR is not reliable for an HDSI),
//! takes the effective address from HDAR, performs the device access itself, and
//! advances the guest PC by 4.
//!
//! # Endianness convention
//!
//! Device registers are big-endian (as XIVE's TIMA and ESB pages are): the byte
//! at the lowest address is the most significant. The
//! **device value** of an access of N bytes is the number a big-endian N-byte load
//! of those bytes produces, i.e. the bus-order value. It is what the device model
//! consumes on a store ([`store_value`]) and produces on a load
//! ([`complete_load`]); only its low N bytes are meaningful.
//!
//! The guest's view depends on two things (Power ISA v3.0B Book I, "Byte
//! Ordering" and the "Load and Store with Byte Reversal" instructions):
//!
//! * MSR\[LE\] = 1 makes every load/store of the guest little-endian, i.e. the
//!   register value is the byte reversal of the device value;
//! * the byte-reverse forms (`lhbrx`, `lwbrx`, `ldbrx`, `sthbrx`, `stwbrx`,
//!   `stdbrx`) reverse once more.
//!
//! So the register holds the byte-swapped device value exactly when
//! `guest_le != byte_reverse`:
//!
//! | guest | instruction | register value |
//! |-------|-------------|----------------|
//! | BE    | `lwz`       | device value |
//! | BE    | `lwbrx`     | swapped |
//! | LE    | `lwz`       | swapped |
//! | LE    | `lwbrx`     | device value |
//!
//! Single-byte accesses are never swapped. Sign extension (`lha`, `lwa`) applies to
//! the register value after any swap, as the hardware loads the bytes in register
//! order first and then extends.

/// Data of the access as the instruction names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A load into RT; `sign_extend` for the algebraic forms (`lha*`, `lwa*`).
    Load { sign_extend: bool },
    /// A store of RS.
    Store,
}

/// Width of the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Size {
    Byte = 1,
    Half = 2,
    Word = 4,
    Double = 8,
}

impl Size {
    /// Width in bytes.
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    /// All-ones in the low `bytes()` bytes.
    const fn mask(self) -> u64 {
        match self {
            Size::Double => u64::MAX,
            s => (1u64 << (8 * s as u32)) - 1,
        }
    }

    /// Reverses the order of the low `bytes()` bytes of `v` (the rest must be 0).
    const fn swap(self, v: u64) -> u64 {
        match self {
            Size::Byte => v,
            Size::Half => (v as u16).swap_bytes() as u64,
            Size::Word => (v as u32).swap_bytes() as u64,
            Size::Double => v.swap_bytes(),
        }
    }

    /// Sign-extends the low `bytes()` bytes of `v` to 64 bits.
    const fn sign_extend(self, v: u64) -> u64 {
        match self {
            Size::Byte => v as i8 as i64 as u64,
            Size::Half => v as u16 as i16 as i64 as u64,
            Size::Word => v as u32 as i32 as i64 as u64,
            Size::Double => v,
        }
    }
}

/// A decoded fixed-point load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub kind: Kind,
    pub size: Size,
    /// RT of a load, RS of a store (0..=31).
    pub reg: u8,
    /// A byte-reverse form (`l*brx`, `st*brx`).
    pub byte_reverse: bool,
    /// RA of an update form (`*u`, `*ux`): receives the effective address. Never 0,
    /// and never RT for a load (those are invalid forms, rejected by [`decode`]).
    pub update: Option<u8>,
    /// A caching-inhibited form (`l*cix`, `st*cix`; hypervisor-privileged, so a
    /// guest normally cannot execute them).
    pub cache_inhibited: bool,
}

impl Access {
    pub const fn is_store(&self) -> bool {
        matches!(self.kind, Kind::Store)
    }
}

/// Why an instruction word is not a load/store this module emulates. The caller
/// reflects a storage or program interrupt to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A prefixed instruction (ISA v3.1 primary opcode 1): its suffix is a
    /// separate word, and no prefixed form is emulated.
    Prefixed,
    /// An invalid form of a supported instruction: an update form with RA = 0 (or
    /// RA = RT for a load), or an X-form with the Rc bit set.
    InvalidForm,
    /// Anything else: other opcodes, and memory instructions that are not emulated
    /// (floating-point, vector and VSX loads, `lmw`/`stmw`, string instructions,
    /// `lq`/`stq`, `larx`/`stcx.`, cache-block instructions such as `dcbz`).
    Unsupported,
}

/// Decodes `insn` (the instruction word as a number, not its memory bytes; see
/// [`crate::mm::guest_walk::fetch_instruction`]).
///
/// Opcodes from the Power ISA v3.0B Book I, "Fixed-Point Load Instructions",
/// "Fixed-Point Store Instructions" and "Fixed-Point Load and Store with Byte
/// Reversal Instructions", and Book III, "Fixed-Point Load and Store Caching
/// Inhibited Instructions"; unchanged in v3.1.
pub fn decode(insn: u32) -> Result<Access, DecodeError> {
    let primary = insn >> 26;
    let rt = ((insn >> 21) & 0x1f) as u8;
    let ra = ((insn >> 16) & 0x1f) as u8;

    let (kind, size, update, byte_reverse, cache_inhibited) = match primary {
        1 => return Err(DecodeError::Prefixed),
        // D-form.
        32..=45 => {
            let (kind, size) = match primary & !1 {
                32 => (LOAD, Size::Word),   // lwz, lwzu
                34 => (LOAD, Size::Byte),   // lbz, lbzu
                36 => (STORE, Size::Word),  // stw, stwu
                38 => (STORE, Size::Byte),  // stb, stbu
                40 => (LOAD, Size::Half),   // lhz, lhzu
                42 => (LOAD_S, Size::Half), // lha, lhau
                _ => (STORE, Size::Half),   // 44: sth, sthu
            };
            (kind, size, primary & 1 != 0, false, false)
        }
        // DS-form: the extended opcode is in the low two bits.
        58 => match insn & 3 {
            0 => (LOAD, Size::Double, false, false, false), // ld
            1 => (LOAD, Size::Double, true, false, false),  // ldu
            2 => (LOAD_S, Size::Word, false, false, false), // lwa
            _ => return Err(DecodeError::Unsupported),
        },
        62 => match insn & 3 {
            0 => (STORE, Size::Double, false, false, false), // std
            1 => (STORE, Size::Double, true, false, false),  // stdu
            _ => return Err(DecodeError::Unsupported),       // stq, reserved
        },
        31 => {
            let (kind, size, update, br, ci) = match (insn >> 1) & 0x3ff {
                23 => (LOAD, Size::Word, false, false, false),  // lwzx
                55 => (LOAD, Size::Word, true, false, false),   // lwzux
                87 => (LOAD, Size::Byte, false, false, false),  // lbzx
                119 => (LOAD, Size::Byte, true, false, false),  // lbzux
                279 => (LOAD, Size::Half, false, false, false), // lhzx
                311 => (LOAD, Size::Half, true, false, false),  // lhzux
                343 => (LOAD_S, Size::Half, false, false, false), // lhax
                375 => (LOAD_S, Size::Half, true, false, false), // lhaux
                341 => (LOAD_S, Size::Word, false, false, false), // lwax
                373 => (LOAD_S, Size::Word, true, false, false), // lwaux
                21 => (LOAD, Size::Double, false, false, false), // ldx
                53 => (LOAD, Size::Double, true, false, false), // ldux
                215 => (STORE, Size::Byte, false, false, false), // stbx
                247 => (STORE, Size::Byte, true, false, false), // stbux
                407 => (STORE, Size::Half, false, false, false), // sthx
                439 => (STORE, Size::Half, true, false, false), // sthux
                151 => (STORE, Size::Word, false, false, false), // stwx
                183 => (STORE, Size::Word, true, false, false), // stwux
                149 => (STORE, Size::Double, false, false, false), // stdx
                181 => (STORE, Size::Double, true, false, false), // stdux
                790 => (LOAD, Size::Half, false, true, false),  // lhbrx
                534 => (LOAD, Size::Word, false, true, false),  // lwbrx
                532 => (LOAD, Size::Double, false, true, false), // ldbrx
                918 => (STORE, Size::Half, false, true, false), // sthbrx
                662 => (STORE, Size::Word, false, true, false), // stwbrx
                660 => (STORE, Size::Double, false, true, false), // stdbrx
                853 => (LOAD, Size::Byte, false, false, true),  // lbzcix
                821 => (LOAD, Size::Half, false, false, true),  // lhzcix
                789 => (LOAD, Size::Word, false, false, true),  // lwzcix
                885 => (LOAD, Size::Double, false, false, true), // ldcix
                981 => (STORE, Size::Byte, false, false, true), // stbcix
                949 => (STORE, Size::Half, false, false, true), // sthcix
                917 => (STORE, Size::Word, false, false, true), // stwcix
                1013 => (STORE, Size::Double, false, false, true), // stdcix
                _ => return Err(DecodeError::Unsupported),
            };
            // These X-forms define bit 31 as reserved (0); setting it is an
            // invalid form (Book I, "Reserved Fields, Reserved Values").
            if insn & 1 != 0 {
                return Err(DecodeError::InvalidForm);
            }
            (kind, size, update, br, ci)
        }
        _ => return Err(DecodeError::Unsupported),
    };

    let update = if update {
        // Update forms with RA = 0, and load updates with RA = RT, are invalid
        // forms (Book I, "Fixed-Point Load Instructions").
        if ra == 0 || (matches!(kind, Kind::Load { .. }) && ra == rt) {
            return Err(DecodeError::InvalidForm);
        }
        Some(ra)
    } else {
        None
    };
    Ok(Access {
        kind,
        size,
        reg: rt,
        byte_reverse,
        update,
        cache_inhibited,
    })
}

/// DSISR/HDSISR bit 38 (Book III 7.5.3): the access was a store.
pub const DSISR_ISSTORE: u64 = 0x0200_0000;
/// MSR bits the checks below look at (Book III 4.2.1): SF (bit 0), PR (bit 49).
const MSR_SF: u64 = 1 << 63;
const MSR_PR: u64 = 1 << 14;

/// Why a decoded access is not emulated although it decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The instruction fetched after the fault is a load where HDSISR says the
    /// faulting access stored, or the reverse: the word changed between the
    /// access and the fetch (another vCPU rewrote it). The guest gets the data
    /// storage interrupt the access would get on unbacked storage; it retries.
    DirectionMismatch,
    /// A caching-inhibited form (`l*cix`/`st*cix`) is hypervisor privileged: the
    /// guest cannot have executed it (it would have taken a hypervisor emulation
    /// assistance interrupt, or a privileged-instruction program interrupt in
    /// problem state, before any storage access), so the word changed as above.
    /// The guest gets the program interrupt hardware gives it for the
    /// instruction now there.
    HypervisorPrivileged,
}

/// Cross-checks a decoded `access` against the HDSI it is meant to explain:
/// HDSISR's store bit must agree with the instruction's direction, and the
/// instruction must be one the guest can execute (Power ISA v3.0B Book III 7.5.3;
/// the caching-inhibited forms are hypervisor privileged, Book III 4.4.1).
///
/// The instruction is re-read from guest memory after the fault (HEIR is not
/// set for HDSI on POWER9, nor by QEMU for HDSI on Power10), so another vCPU
/// can change it in between (KVM has the same window). With this check the
/// emulated access always has the faulting access's address (HDAR/ASDR) and
/// direction; what a rewrite can still change (width, register, update form,
/// byte order) is what the guest could have asked for itself at that address.
pub fn check_against_fault(access: &Access, hdsisr: u64) -> Result<(), Refusal> {
    if access.cache_inhibited {
        return Err(Refusal::HypervisorPrivileged);
    }
    if access.is_store() != (hdsisr & DSISR_ISSTORE != 0) {
        return Err(Refusal::DirectionMismatch);
    }
    Ok(())
}

/// SRR1 bits (Book III 7.5.9) of the program interrupt hardware gives a guest
/// for a hypervisor-privileged instruction: privileged instruction (bit 45) in
/// problem state, otherwise the illegal-instruction type KVM reflects a
/// hypervisor emulation assistance interrupt as (bit 44).
pub const fn privileged_program_srr1(msr: u64) -> u64 {
    if msr & MSR_PR != 0 {
        1 << (63 - 45)
    } else {
        1 << (63 - 44)
    }
}

/// The address of the next instruction: `pc + 4`, wrapping at 2^32 in 32-bit
/// mode (MSR[SF] = 0; Book I 1.9.1 "instruction address computation"), where
/// the high 32 bits of the address are then 0.
pub const fn next_pc(pc: u64, msr: u64) -> u64 {
    let next = pc.wrapping_add(4);
    if msr & MSR_SF == 0 {
        next & 0xffff_ffff
    } else {
        next
    }
}

/// The address an instruction is fetched from at `pc` (the same wrap).
pub const fn fetch_address(pc: u64, msr: u64) -> u64 {
    if msr & MSR_SF == 0 {
        pc & 0xffff_ffff
    } else {
        pc
    }
}

const LOAD: Kind = Kind::Load { sign_extend: false };
const LOAD_S: Kind = Kind::Load { sign_extend: true };
const STORE: Kind = Kind::Store;

/// True when the register value is the byte reversal of the device value (see the
/// module documentation).
const fn swapped(access: &Access, guest_le: bool) -> bool {
    guest_le != access.byte_reverse
}

/// The device value (big-endian bus order, in the low `size` bytes) that the store
/// `access` writes, and its width. Call before [`complete_store`], since an
/// update form may name RS as RA too.
///
/// `guest_le` is MSR\[LE\] of the guest at the time of the access (HSRR1).
pub fn store_value(access: &Access, gprs: &[u64; 32], guest_le: bool) -> (u64, Size) {
    let size = access.size;
    let v = gprs[usize::from(access.reg & 31)] & size.mask();
    let v = if swapped(access, guest_le) {
        size.swap(v)
    } else {
        v
    };
    (v, size)
}

/// Finishes a load: writes RT from `device_value_be` (the big-endian bus-order
/// value the device returned; bits above `size` are ignored) with zero or sign
/// extension, and for update forms writes `ea` (the effective address the
/// instruction computed, i.e. HDAR) to RA.
///
/// Does nothing for a store access.
pub fn complete_load(
    access: &Access,
    gprs: &mut [u64; 32],
    device_value_be: u64,
    guest_le: bool,
    ea: u64,
) {
    let Kind::Load { sign_extend } = access.kind else {
        return;
    };
    let size = access.size;
    let mut v = device_value_be & size.mask();
    if swapped(access, guest_le) {
        v = size.swap(v);
    }
    if sign_extend {
        v = size.sign_extend(v);
    }
    gprs[usize::from(access.reg & 31)] = v;
    write_update(access, gprs, ea);
}

/// Finishes a store: for update forms writes `ea` (HDAR) to RA. Does nothing for a
/// load access.
pub fn complete_store(access: &Access, gprs: &mut [u64; 32], ea: u64) {
    if access.is_store() {
        write_update(access, gprs, ea);
    }
}

fn write_update(access: &Access, gprs: &mut [u64; 32], ea: u64) {
    if let Some(ra) = access.update {
        gprs[usize::from(ra & 31)] = ea;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    /// Every supported instruction with RT/RS = 3, RA = 4 (offset 8 or RB = 5),
    /// encoded by GNU as 2.40 (`-mpower9 -mbig`), so the table checks the opcodes
    /// against an independent assembler.
    /// (word, mnemonic, kind, size, update, byte_reverse, cache_inhibited)
    #[allow(clippy::type_complexity)]
    const SUPPORTED: &[(u32, &str, Kind, Size, bool, bool, bool)] = &[
        (0x8864_0008, "lbz", LOAD, Size::Byte, false, false, false),
        (0x8c64_0008, "lbzu", LOAD, Size::Byte, true, false, false),
        (0xa064_0008, "lhz", LOAD, Size::Half, false, false, false),
        (0xa464_0008, "lhzu", LOAD, Size::Half, true, false, false),
        (0xa864_0008, "lha", LOAD_S, Size::Half, false, false, false),
        (0xac64_0008, "lhau", LOAD_S, Size::Half, true, false, false),
        (0x8064_0008, "lwz", LOAD, Size::Word, false, false, false),
        (0x8464_0008, "lwzu", LOAD, Size::Word, true, false, false),
        (0x9864_0008, "stb", STORE, Size::Byte, false, false, false),
        (0x9c64_0008, "stbu", STORE, Size::Byte, true, false, false),
        (0xb064_0008, "sth", STORE, Size::Half, false, false, false),
        (0xb464_0008, "sthu", STORE, Size::Half, true, false, false),
        (0x9064_0008, "stw", STORE, Size::Word, false, false, false),
        (0x9464_0008, "stwu", STORE, Size::Word, true, false, false),
        (0xe864_0008, "ld", LOAD, Size::Double, false, false, false),
        (0xe864_0009, "ldu", LOAD, Size::Double, true, false, false),
        (0xe864_000a, "lwa", LOAD_S, Size::Word, false, false, false),
        (0xf864_0008, "std", STORE, Size::Double, false, false, false),
        (0xf864_0009, "stdu", STORE, Size::Double, true, false, false),
        (0x7c64_28ae, "lbzx", LOAD, Size::Byte, false, false, false),
        (0x7c64_28ee, "lbzux", LOAD, Size::Byte, true, false, false),
        (0x7c64_2a2e, "lhzx", LOAD, Size::Half, false, false, false),
        (0x7c64_2a6e, "lhzux", LOAD, Size::Half, true, false, false),
        (0x7c64_2aae, "lhax", LOAD_S, Size::Half, false, false, false),
        (0x7c64_2aee, "lhaux", LOAD_S, Size::Half, true, false, false),
        (0x7c64_282e, "lwzx", LOAD, Size::Word, false, false, false),
        (0x7c64_286e, "lwzux", LOAD, Size::Word, true, false, false),
        (0x7c64_2aaa, "lwax", LOAD_S, Size::Word, false, false, false),
        (0x7c64_2aea, "lwaux", LOAD_S, Size::Word, true, false, false),
        (0x7c64_282a, "ldx", LOAD, Size::Double, false, false, false),
        (0x7c64_286a, "ldux", LOAD, Size::Double, true, false, false),
        (0x7c64_29ae, "stbx", STORE, Size::Byte, false, false, false),
        (0x7c64_29ee, "stbux", STORE, Size::Byte, true, false, false),
        (0x7c64_2b2e, "sthx", STORE, Size::Half, false, false, false),
        (0x7c64_2b6e, "sthux", STORE, Size::Half, true, false, false),
        (0x7c64_292e, "stwx", STORE, Size::Word, false, false, false),
        (0x7c64_296e, "stwux", STORE, Size::Word, true, false, false),
        (
            0x7c64_292a,
            "stdx",
            STORE,
            Size::Double,
            false,
            false,
            false,
        ),
        (
            0x7c64_296a,
            "stdux",
            STORE,
            Size::Double,
            true,
            false,
            false,
        ),
        (0x7c64_2e2c, "lhbrx", LOAD, Size::Half, false, true, false),
        (0x7c64_2c2c, "lwbrx", LOAD, Size::Word, false, true, false),
        (0x7c64_2c28, "ldbrx", LOAD, Size::Double, false, true, false),
        (0x7c64_2f2c, "sthbrx", STORE, Size::Half, false, true, false),
        (0x7c64_2d2c, "stwbrx", STORE, Size::Word, false, true, false),
        (
            0x7c64_2d28,
            "stdbrx",
            STORE,
            Size::Double,
            false,
            true,
            false,
        ),
        (0x7c64_2eaa, "lbzcix", LOAD, Size::Byte, false, false, true),
        (0x7c64_2e6a, "lhzcix", LOAD, Size::Half, false, false, true),
        (0x7c64_2e2a, "lwzcix", LOAD, Size::Word, false, false, true),
        (0x7c64_2eea, "ldcix", LOAD, Size::Double, false, false, true),
        (0x7c64_2faa, "stbcix", STORE, Size::Byte, false, false, true),
        (0x7c64_2f6a, "sthcix", STORE, Size::Half, false, false, true),
        (0x7c64_2f2a, "stwcix", STORE, Size::Word, false, false, true),
        (
            0x7c64_2fea,
            "stdcix",
            STORE,
            Size::Double,
            false,
            false,
            true,
        ),
    ];

    /// Memory instructions that must not be emulated, encoded by GNU as.
    const UNSUPPORTED: &[(u32, &str)] = &[
        (0xc864_0008, "lfd"),
        (0xc064_0008, "lfs"),
        (0xd864_0008, "stfd"),
        (0xbb84_0008, "lmw"),
        (0xbf84_0008, "stmw"),
        (0xe085_0010, "lq"),
        (0xf885_0012, "stq"),
        (0x7c64_2828, "lwarx"),
        (0x7c64_28a8, "ldarx"),
        (0x7c64_2868, "lbarx"),
        (0x7c64_292d, "stwcx."),
        (0x7c64_29ad, "stdcx."),
        (0x7c04_2fec, "dcbz"),
        (0x7c64_28ce, "lvx"),
        (0x7c64_29ce, "stvx"),
        (0x7c64_2e98, "lxvd2x"),
        (0x7ca4_44aa, "lswi"),
        (0xe864_000b, "DS-form 58 XO 3"),
        (0x6000_0000, "nop"),
        (0x4e80_0020, "blr"),
        (0x0000_0000, "illegal"),
        (0x4400_0022, "sc 1"),
    ];

    #[test]
    fn decodes_every_supported_form() {
        for &(word, name, kind, size, update, br, ci) in SUPPORTED {
            let a = decode(word).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let want = Access {
                kind,
                size,
                reg: 3,
                byte_reverse: br,
                update: update.then_some(4),
                cache_inhibited: ci,
            };
            assert_eq!(a, want, "{name}");
        }
    }

    #[test]
    fn rejects_unsupported_and_prefixed() {
        for &(word, name) in UNSUPPORTED {
            assert_eq!(decode(word), Err(DecodeError::Unsupported), "{name}");
        }
        // pld r3,8(r4) and pstd (ISA v3.1): both words start with the prefix.
        assert_eq!(decode(0x0400_0000), Err(DecodeError::Prefixed));
        assert_eq!(decode(0x0610_0000), Err(DecodeError::Prefixed));
        // The suffix of `pld` alone (primary opcode 57) is not a load we know.
        assert_eq!(decode(0xe464_0008), Err(DecodeError::Unsupported));
    }

    #[test]
    fn register_fields() {
        // ld r31,-8(r1): RT 31, RA 1, DS field ignored.
        let a = decode(0xebe1_fff8).unwrap();
        assert_eq!(a.reg, 31);
        assert_eq!(a.update, None);
        // stdu r1,-112(r1): RS = RA is a valid store update.
        let a = decode(0xf821_ff91).unwrap();
        assert_eq!((a.reg, a.update, a.kind), (1, Some(1), Kind::Store));
        // lwzx r0,0,r9: RA = 0 is fine without update.
        let a = decode(0x7c00_482e).unwrap();
        assert_eq!((a.reg, a.update), (0, None));
    }

    #[test]
    fn invalid_forms() {
        let with_ra = |word: u32, ra: u32| (word & !(0x1f << 16)) | (ra << 16);
        let with_rt = |word: u32, rt: u32| (word & !(0x1f << 21)) | (rt << 21);
        for &(word, name, kind, _, update, _, _) in SUPPORTED {
            // Rc = 1 on an X-form.
            if word >> 26 == 31 {
                assert_eq!(decode(word | 1), Err(DecodeError::InvalidForm), "{name}.");
            }
            if !update {
                assert!(decode(with_ra(word, 0)).is_ok(), "{name} ra=0");
                assert!(decode(with_rt(word, 4)).is_ok(), "{name} rt=ra");
                continue;
            }
            assert_eq!(
                decode(with_ra(word, 0)),
                Err(DecodeError::InvalidForm),
                "{name} ra=0"
            );
            let rt_is_ra = decode(with_rt(word, 4));
            match kind {
                Kind::Load { .. } => {
                    assert_eq!(rt_is_ra, Err(DecodeError::InvalidForm), "{name} rt=ra")
                }
                Kind::Store => assert_eq!(rt_is_ra.unwrap().update, Some(4), "{name}"),
            }
        }
    }

    /// No instruction word panics, and whatever decodes has consistent fields.
    #[test]
    fn exhaustive_sample_never_panics() {
        let mut rng = XorShift::new(0x1234_5678);
        for i in 0..2_000_000u32 {
            let x = rng.next_u32();
            // Alternate pure noise with every (primary, extended) opcode pair
            // under noisy register fields and Rc.
            let word = if i % 2 == 0 {
                x
            } else {
                let n = i / 2;
                ((n % 64) << 26) | (((n / 64) % 1024) << 1) | (x & 0x03ff_f801)
            };
            if let Ok(a) = decode(word) {
                assert!(a.reg < 32);
                assert!(a.update.is_none_or(|ra| ra != 0 && ra < 32));
                assert!(!(a.byte_reverse && a.cache_inhibited));
                assert!(matches!(word >> 26, 31..=45 | 58 | 62));
            }
        }
    }

    const SIZES: [Size; 4] = [Size::Byte, Size::Half, Size::Word, Size::Double];

    fn access(kind: Kind, size: Size, byte_reverse: bool, update: Option<u8>) -> Access {
        Access {
            kind,
            size,
            reg: 7,
            byte_reverse,
            update,
            cache_inhibited: false,
        }
    }

    /// The device register's bytes in memory order (big-endian), for a given size.
    fn device_bytes(size: Size) -> &'static [u8] {
        &[0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88][..size.bytes() as usize]
    }

    /// Reference model: what a load instruction of the guest puts in the register,
    /// computed from bytes rather than from swaps.
    fn reference_register(bytes: &[u8], le_order: bool) -> u64 {
        let mut v = 0u64;
        if le_order {
            for &b in bytes.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in bytes {
                v = (v << 8) | u64::from(b);
            }
        }
        v
    }

    fn be_value(bytes: &[u8]) -> u64 {
        reference_register(bytes, false)
    }

    #[test]
    fn loads_in_all_four_endianness_combinations() {
        for size in SIZES {
            let bytes = device_bytes(size);
            for guest_le in [false, true] {
                for br in [false, true] {
                    let a = access(LOAD, size, br, None);
                    let mut g = [0xdead_beef_dead_beef_u64; 32];
                    // Garbage above the access size must be ignored.
                    let dev = be_value(bytes) | !size.mask();
                    complete_load(&a, &mut g, dev, guest_le, 0);
                    // LE guest reads bytes LE-first; a byte-reverse form flips it.
                    let want = reference_register(bytes, guest_le != br);
                    assert_eq!(g[7], want, "{size:?} le={guest_le} br={br}");
                    assert_eq!(g[6], 0xdead_beef_dead_beef, "only RT written");
                }
            }
        }
        // The table in the module documentation, spelled out for a word.
        let dev = 0x1122_3344;
        let lwz = decode(0x8064_0008).unwrap();
        let lwbrx = decode(0x7c64_2c2c).unwrap();
        let mut g = [0; 32];
        complete_load(&lwz, &mut g, dev, false, 0);
        assert_eq!(g[3], 0x1122_3344);
        complete_load(&lwbrx, &mut g, dev, false, 0);
        assert_eq!(g[3], 0x4433_2211);
        complete_load(&lwz, &mut g, dev, true, 0);
        assert_eq!(g[3], 0x4433_2211);
        complete_load(&lwbrx, &mut g, dev, true, 0);
        assert_eq!(g[3], 0x1122_3344);
    }

    #[test]
    fn stores_in_all_four_endianness_combinations() {
        for size in SIZES {
            let bytes = device_bytes(size);
            for guest_le in [false, true] {
                for br in [false, true] {
                    let a = access(STORE, size, br, None);
                    // The register value that, stored by this guest, puts `bytes`
                    // into the device in memory order; garbage above the size.
                    let reg = reference_register(bytes, guest_le != br) | !size.mask();
                    let mut g = [0; 32];
                    g[7] = reg;
                    let (v, s) = store_value(&a, &g, guest_le);
                    assert_eq!(s, size);
                    assert_eq!(v, be_value(bytes), "{size:?} le={guest_le} br={br}");
                }
            }
        }
        let stw = decode(0x9064_0008).unwrap();
        let stwbrx = decode(0x7c64_2d2c).unwrap();
        let mut g = [0; 32];
        g[3] = 0xffff_ffff_1122_3344;
        assert_eq!(store_value(&stw, &g, false), (0x1122_3344, Size::Word));
        assert_eq!(store_value(&stwbrx, &g, false), (0x4433_2211, Size::Word));
        assert_eq!(store_value(&stw, &g, true), (0x4433_2211, Size::Word));
        assert_eq!(store_value(&stwbrx, &g, true), (0x1122_3344, Size::Word));
    }

    #[test]
    fn store_then_load_round_trips() {
        for size in SIZES {
            for guest_le in [false, true] {
                for br in [false, true] {
                    let mut g = [0; 32];
                    g[7] = 0x0123_4567_89ab_cdef & size.mask();
                    let (dev, _) = store_value(&access(STORE, size, br, None), &g, guest_le);
                    let mut h = [0; 32];
                    complete_load(&access(LOAD, size, br, None), &mut h, dev, guest_le, 0);
                    assert_eq!(h[7], g[7], "{size:?} le={guest_le} br={br}");
                }
            }
        }
    }

    #[test]
    fn sign_extension_after_swap() {
        // lha from a BE device register 0x8001: BE guest sees 0x8001 -> negative.
        let lha = access(LOAD_S, Size::Half, false, None);
        let mut g = [0; 32];
        complete_load(&lha, &mut g, 0x8001, false, 0);
        assert_eq!(g[7], 0xffff_ffff_ffff_8001);
        // LE guest sees 0x0180 -> positive.
        complete_load(&lha, &mut g, 0x8001, true, 0);
        assert_eq!(g[7], 0x0180);
        // LE guest, device 0x0180 -> register 0x8001, extended.
        complete_load(&lha, &mut g, 0x0180, true, 0);
        assert_eq!(g[7], 0xffff_ffff_ffff_8001);
        // lwa.
        let lwa = decode(0xe864_000a).unwrap();
        complete_load(&lwa, &mut g, 0xffff_fffe, false, 0);
        assert_eq!(g[3], u64::MAX - 1);
        complete_load(&lwa, &mut g, 0x0000_0080, true, 0);
        assert_eq!(g[3], 0xffff_ffff_8000_0000);
        // Zero-extending loads clear the upper bits.
        let lhz = access(LOAD, Size::Half, false, None);
        g[7] = u64::MAX;
        complete_load(&lhz, &mut g, 0x8001, false, 0);
        assert_eq!(g[7], 0x8001);
        let lbz = access(LOAD, Size::Byte, false, None);
        complete_load(&lbz, &mut g, 0xff, true, 0);
        assert_eq!(g[7], 0xff);
    }

    #[test]
    fn update_forms_write_ra() {
        let ea = 0xc000_0000_0600_0010;
        // lwzu r3,8(r4)
        let a = decode(0x8464_0008).unwrap();
        let mut g = [0; 32];
        g[4] = ea - 8;
        complete_load(&a, &mut g, 0x1234_5678, false, ea);
        assert_eq!((g[3], g[4]), (0x1234_5678, ea));
        // stdu r1,-112(r1): the value stored is the old r1.
        let a = decode(0xf821_ff91).unwrap();
        let mut g = [0; 32];
        g[1] = ea + 112;
        let (v, _) = store_value(&a, &g, false);
        complete_store(&a, &mut g, ea);
        assert_eq!((v, g[1]), (ea + 112, ea));
        // Non-update forms leave RA alone; completing the wrong kind is a no-op.
        let a = decode(0x8064_0008).unwrap();
        let mut g = [0; 32];
        g[4] = 5;
        complete_load(&a, &mut g, 1, false, ea);
        complete_store(&a, &mut g, ea);
        assert_eq!((g[3], g[4]), (1, 5));
        let st = decode(0x9464_0008).unwrap();
        complete_load(&st, &mut g, 99, false, ea);
        assert_eq!((g[3], g[4]), (1, 5));
    }

    #[test]
    fn out_of_range_register_fields_do_not_panic() {
        let a = Access {
            kind: LOAD,
            size: Size::Word,
            reg: 200,
            byte_reverse: false,
            update: Some(255),
            cache_inhibited: false,
        };
        let mut g = [0; 32];
        complete_load(&a, &mut g, 1, false, 2);
        let _ = store_value(&a, &g, false);
    }

    #[test]
    fn fault_cross_checks() {
        let lbz = decode(0x8864_0008).unwrap();
        let stb = decode(0x9864_0008).unwrap();
        let lbzcix = decode(0x7c64_2eaa).unwrap();
        let stbcix = decode(0x7c64_2faa).unwrap();
        assert!(lbzcix.cache_inhibited && stbcix.cache_inhibited);
        assert_eq!(check_against_fault(&lbz, 0), Ok(()));
        assert_eq!(check_against_fault(&stb, DSISR_ISSTORE), Ok(()));
        // The word changed between the access and the fetch.
        assert_eq!(
            check_against_fault(&stb, 0),
            Err(Refusal::DirectionMismatch)
        );
        assert_eq!(
            check_against_fault(&lbz, DSISR_ISSTORE),
            Err(Refusal::DirectionMismatch)
        );
        // Other HDSISR bits do not matter.
        assert_eq!(check_against_fault(&lbz, 0x4000_0000), Ok(()));
        // Hypervisor-privileged forms are never emulated, whatever the direction.
        assert_eq!(
            check_against_fault(&lbzcix, 0),
            Err(Refusal::HypervisorPrivileged)
        );
        assert_eq!(
            check_against_fault(&stbcix, DSISR_ISSTORE),
            Err(Refusal::HypervisorPrivileged)
        );
        assert_eq!(privileged_program_srr1(MSR_PR), 0x4_0000);
        assert_eq!(privileged_program_srr1(MSR_SF), 0x8_0000);
    }

    #[test]
    fn pc_wraps_in_32_bit_mode() {
        assert_eq!(next_pc(0x1000, MSR_SF), 0x1004);
        assert_eq!(next_pc(0xffff_fffc, MSR_SF), 0x1_0000_0000);
        assert_eq!(next_pc(0xffff_fffc, 0), 0);
        assert_eq!(next_pc(0xffff_fffc, MSR_PR), 0);
        assert_eq!(next_pc(u64::MAX - 3, MSR_SF), 0);
        assert_eq!(fetch_address(0xc000_0000_0000_1000, 0), 0x1000);
        assert_eq!(
            fetch_address(0xc000_0000_0000_1000, MSR_SF),
            0xc000_0000_0000_1000
        );
    }
}
