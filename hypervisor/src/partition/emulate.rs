//! Decoding of the guest load/store instructions the hypervisor emulates on an
//! HDSI (MMIO to emulated devices), and their effect on the guest's registers.
//!
//! Conventions: emulated device registers are big-endian (XIVE), and a "device
//! value" is the number a big-endian load of the access size reads from the
//! device. A guest in little-endian mode (MSR[LE] = 1) sees the bytes of a plain
//! load reversed relative to that, and a byte-reversed load (`lwbrx`) undoes it;
//! so the data is swapped exactly when the guest's LE bit and the instruction's
//! byte reversal differ. Power ISA v3.0B Book I 3.3 (fixed-point loads and
//! stores) and Book III 4.4.1 (cache-inhibited loads and stores).

/// Load (with sign extension for `lha`/`lwa`) or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Load { sign_extend: bool },
    Store,
}

/// A decoded load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub kind: Kind,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// RT (load) or RS (store).
    pub reg: u8,
    /// RA of an update form, which receives the effective address.
    pub update: Option<u8>,
    pub byte_reverse: bool,
}

/// Why an instruction is not emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a fixed-point load or store of 1-8 bytes (floating point, vector,
    /// multiple, atomic, prefixed, cache management...).
    NotEmulated,
    /// An invalid form (update with RA = 0, or a load updating RA = RT).
    InvalidForm,
}

const fn load(size: u8, sign_extend: bool) -> (Kind, u8, bool) {
    (Kind::Load { sign_extend }, size, false)
}

const fn store(size: u8) -> (Kind, u8, bool) {
    (Kind::Store, size, false)
}

const fn reversed(k: (Kind, u8, bool)) -> (Kind, u8, bool) {
    (k.0, k.1, true)
}

/// Decodes `insn` (the instruction word, in host order).
pub fn decode(insn: u32) -> Result<Access, DecodeError> {
    let primary = insn >> 26;
    let rt = ((insn >> 21) & 31) as u8;
    let ra = ((insn >> 16) & 31) as u8;
    // (kind, size, byte-reversed), update form
    let (op, update) = match primary {
        32 => (load(4, false), false), // lwz
        33 => (load(4, false), true),  // lwzu
        34 => (load(1, false), false), // lbz
        35 => (load(1, false), true),  // lbzu
        36 => (store(4), false),       // stw
        37 => (store(4), true),        // stwu
        38 => (store(1), false),       // stb
        39 => (store(1), true),        // stbu
        40 => (load(2, false), false), // lhz
        41 => (load(2, false), true),  // lhzu
        42 => (load(2, true), false),  // lha
        43 => (load(2, true), true),   // lhau
        44 => (store(2), false),       // sth
        45 => (store(2), true),        // sthu
        58 => match insn & 3 {
            0 => (load(8, false), false), // ld
            1 => (load(8, false), true),  // ldu
            2 => (load(4, true), false),  // lwa
            _ => return Err(DecodeError::NotEmulated),
        },
        62 => match insn & 3 {
            0 => (store(8), false), // std
            1 => (store(8), true),  // stdu
            _ => return Err(DecodeError::NotEmulated),
        },
        31 => match (insn >> 1) & 0x3ff {
            21 => (load(8, false), false),            // ldx
            53 => (load(8, false), true),             // ldux
            23 => (load(4, false), false),            // lwzx
            55 => (load(4, false), true),             // lwzux
            87 => (load(1, false), false),            // lbzx
            119 => (load(1, false), true),            // lbzux
            149 => (store(8), false),                 // stdx
            181 => (store(8), true),                  // stdux
            151 => (store(4), false),                 // stwx
            183 => (store(4), true),                  // stwux
            215 => (store(1), false),                 // stbx
            247 => (store(1), true),                  // stbux
            279 => (load(2, false), false),           // lhzx
            311 => (load(2, false), true),            // lhzux
            341 => (load(4, true), false),            // lwax
            373 => (load(4, true), true),             // lwaux
            343 => (load(2, true), false),            // lhax
            375 => (load(2, true), true),             // lhaux
            407 => (store(2), false),                 // sthx
            439 => (store(2), true),                  // sthux
            532 => (reversed(load(8, false)), false), // ldbrx
            534 => (reversed(load(4, false)), false), // lwbrx
            790 => (reversed(load(2, false)), false), // lhbrx
            660 => (reversed(store(8)), false),       // stdbrx
            662 => (reversed(store(4)), false),       // stwbrx
            918 => (reversed(store(2)), false),       // sthbrx
            789 => (load(4, false), false),           // lwzcix
            821 => (load(2, false), false),           // lhzcix
            853 => (load(1, false), false),           // lbzcix
            885 => (load(8, false), false),           // ldcix
            917 => (store(4), false),                 // stwcix
            949 => (store(2), false),                 // sthcix
            981 => (store(1), false),                 // stbcix
            1013 => (store(8), false),                // stdcix
            _ => return Err(DecodeError::NotEmulated),
        },
        _ => return Err(DecodeError::NotEmulated),
    };
    let (kind, size, byte_reverse) = op;
    if update && (ra == 0 || (matches!(kind, Kind::Load { .. }) && ra == rt)) {
        return Err(DecodeError::InvalidForm);
    }
    Ok(Access {
        kind,
        size,
        reg: rt,
        update: update.then_some(ra),
        byte_reverse,
    })
}

/// Reverses the low `size` bytes of `v` (the rest must be zero).
fn swap(v: u64, size: u8) -> u64 {
    match size {
        1 => v & 0xff,
        2 => u64::from((v as u16).swap_bytes()),
        4 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

fn mask(size: u8) -> u64 {
    match size {
        8 => u64::MAX,
        s => (1u64 << (u32::from(s) * 8)) - 1,
    }
}

fn swaps(a: &Access, guest_le: bool) -> bool {
    guest_le != a.byte_reverse
}

/// The device value of a store (see the module documentation).
pub fn store_value(a: &Access, gpr: &[u64; 32], guest_le: bool) -> u64 {
    let rs = gpr.get(usize::from(a.reg)).copied().unwrap_or(0) & mask(a.size);
    if swaps(a, guest_le) {
        swap(rs, a.size)
    } else {
        rs
    }
}

/// Completes a load: RT gets `device_value` (zero- or sign-extended) as the
/// guest sees it. RA of an update form is the caller's (it knows the EA).
pub fn complete_load(a: &Access, gpr: &mut [u64; 32], device_value: u64, guest_le: bool) {
    let v = device_value & mask(a.size);
    let mut v = if swaps(a, guest_le) {
        swap(v, a.size)
    } else {
        v
    };
    if let Kind::Load { sign_extend: true } = a.kind {
        v = match a.size {
            2 => v as u16 as i16 as i64 as u64,
            4 => v as u32 as i32 as i64 as u64,
            _ => v,
        };
    }
    if let Some(r) = gpr.get_mut(usize::from(a.reg)) {
        *r = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D-form: primary, RT, RA, D.
    fn d(primary: u32, rt: u32, ra: u32, disp: u32) -> u32 {
        primary << 26 | rt << 21 | ra << 16 | (disp & 0xffff)
    }

    /// X-form: 31, RT, RA, RB, XO.
    fn x(xo: u32, rt: u32, ra: u32, rb: u32) -> u32 {
        31 << 26 | rt << 21 | ra << 16 | rb << 11 | xo << 1
    }

    #[test]
    fn decodes_what_linux_uses_for_mmio() {
        // __raw_readw (lhz), out_8 (stb), in_be32/64 on LE (lwbrx, ldbrx), out_be64
        // on LE (stdbrx), plus the indexed and cache-inhibited forms.
        let lhz = decode(d(40, 9, 3, 0x810)).unwrap();
        assert_eq!(
            lhz,
            Access {
                kind: Kind::Load { sign_extend: false },
                size: 2,
                reg: 9,
                update: None,
                byte_reverse: false
            }
        );
        let stb = decode(d(38, 4, 5, 0x11)).unwrap();
        assert_eq!((stb.kind, stb.size, stb.reg), (Kind::Store, 1, 4));
        let lwbrx = decode(x(534, 7, 0, 8)).unwrap();
        assert!(lwbrx.byte_reverse && lwbrx.size == 4);
        let ldbrx = decode(x(532, 7, 3, 8)).unwrap();
        assert!(ldbrx.byte_reverse && ldbrx.size == 8);
        let stdbrx = decode(x(660, 7, 3, 8)).unwrap();
        assert!(stdbrx.byte_reverse && stdbrx.kind == Kind::Store);
        assert_eq!(decode(x(885, 1, 2, 3)).unwrap().size, 8); // ldcix
        assert_eq!(decode(x(981, 1, 2, 3)).unwrap().kind, Kind::Store); // stbcix
        let ld = decode(d(58, 3, 4, 8)).unwrap();
        assert_eq!((ld.size, ld.kind), (8, Kind::Load { sign_extend: false }));
        let lwa = decode(d(58, 3, 4, 8 | 2)).unwrap();
        assert_eq!((lwa.size, lwa.kind), (4, Kind::Load { sign_extend: true }));
        let stdu = decode(d(62, 3, 1, 0xfff8 | 1)).unwrap();
        assert_eq!((stdu.kind, stdu.update), (Kind::Store, Some(1)));
        let lwzux = decode(x(55, 3, 4, 5)).unwrap();
        assert_eq!(lwzux.update, Some(4));
    }

    #[test]
    fn rejects_everything_else() {
        for insn in [
            d(48, 1, 2, 0),   // lfs
            d(50, 1, 2, 0),   // lfd
            d(46, 1, 2, 0),   // lmw
            d(58, 1, 2, 3),   // DS-form XO 3
            d(62, 1, 2, 2),   // stq
            x(20, 1, 2, 3),   // lwarx
            x(150, 1, 2, 3),  // stwcx.
            x(1014, 0, 2, 3), // dcbz
            x(103, 1, 2, 3),  // lvx
            0x0400_0000,      // prefix
            0,
            0x4400_0022, // sc 1
        ] {
            assert_eq!(decode(insn), Err(DecodeError::NotEmulated), "{insn:#x}");
        }
        assert_eq!(decode(d(33, 1, 0, 0)), Err(DecodeError::InvalidForm)); // lwzu ra=0
        assert_eq!(decode(d(33, 4, 4, 0)), Err(DecodeError::InvalidForm)); // lwzu ra=rt
        assert!(decode(d(37, 4, 4, 0)).is_ok()); // stwu ra=rs is fine
        assert_eq!(decode(x(247, 1, 0, 2)), Err(DecodeError::InvalidForm)); // stbux ra=0
    }

    #[test]
    fn endianness_of_loads_in_all_four_combinations() {
        // The device register holds bytes 11 22 33 44 55 66 77 88 (big-endian).
        let dev: u64 = 0x1122_3344_5566_7788;
        for (size, be_value) in [
            (1u8, 0x11u64),
            (2, 0x1122),
            (4, 0x1122_3344),
            (8, 0x1122_3344_5566_7788),
        ] {
            let device_value = dev >> (64 - u32::from(size) * 8);
            assert_eq!(device_value, be_value);
            for (le, brev, want) in [
                (false, false, be_value),
                (true, false, swap(be_value, size)),
                (false, true, swap(be_value, size)),
                (true, true, be_value),
            ] {
                let a = Access {
                    kind: Kind::Load { sign_extend: false },
                    size,
                    reg: 5,
                    update: None,
                    byte_reverse: brev,
                };
                let mut gpr = [0xdead_u64; 32];
                complete_load(&a, &mut gpr, device_value, le);
                assert_eq!(gpr[5], want, "size {size} le {le} brev {brev}");
                assert_eq!(gpr[4], 0xdead);
                // A store of what was loaded puts the same device value back.
                let s = Access {
                    kind: Kind::Store,
                    ..a
                };
                assert_eq!(store_value(&s, &gpr, le), device_value);
            }
        }
    }

    #[test]
    fn sign_extension_and_store_truncation() {
        let lha = decode(d(42, 3, 4, 0)).unwrap();
        let mut gpr = [0u64; 32];
        complete_load(&lha, &mut gpr, 0x8001, false);
        assert_eq!(gpr[3], 0xffff_ffff_ffff_8001);
        complete_load(&lha, &mut gpr, 0x0180, true); // LE: bytes 01 80 -> 0x8001
        assert_eq!(gpr[3], 0xffff_ffff_ffff_8001);
        let lwa = decode(d(58, 3, 4, 2)).unwrap();
        complete_load(&lwa, &mut gpr, 0x8000_0000, false);
        assert_eq!(gpr[3], 0xffff_ffff_8000_0000);
        // Stores only take the low bytes of RS.
        let stb = decode(d(38, 6, 4, 0)).unwrap();
        gpr[6] = 0x1234_5678_9abc_def0;
        assert_eq!(store_value(&stb, &gpr, true), 0xf0);
        assert_eq!(store_value(&stb, &gpr, false), 0xf0);
        let sth = decode(d(44, 6, 4, 0)).unwrap();
        assert_eq!(store_value(&sth, &gpr, false), 0xdef0);
        assert_eq!(store_value(&sth, &gpr, true), 0xf0de);
    }

    #[test]
    fn every_word_decodes_or_errs_without_panicking() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if let Ok(a) = decode(x) {
                assert!(matches!(a.size, 1 | 2 | 4 | 8));
                assert!(a.reg < 32 && a.update.is_none_or(|r| r != 0 && r < 32));
                let mut gpr = [x as u64; 32];
                complete_load(&a, &mut gpr, u64::from(x), x & 1 == 0);
                let _ = store_value(&a, &gpr, x & 2 == 0);
            }
        }
    }
}
