//! Hostile guest: thousands of hcalls with random opcodes and arguments. The
//! hypervisor must answer every one (a PAPR status) and keep running, and so must
//! the partition next to this one; afterwards this guest's own memory is intact.
//!
//! Left out on purpose, because they legitimately change this guest itself rather
//! than probe the hypervisor: H_RTAS (a random buffer may be a valid power-off),
//! H_CEDE (sleeps until a prod that never comes), H_PAGE_INIT and
//! H_LOGICAL_CI_STORE and H_LOGICAL_CACHE_STORE (may overwrite this guest's own
//! code), H_PUT_TERM_CHAR (random bytes on the console), H_SET_MODE (could switch
//! interrupt endianness), H_SET_SPRG0 and H_SET_DABR / H_SET_XDABR (set this
//! guest's own SPRG0 or a data watchpoint on it).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use paprika_guest_rt::*;

    const CALLS: u32 = 5000;
    static mut CANARY: [u64; 512] = [0; 512];

    fn excluded(op: u64) -> bool {
        matches!(
            op,
            0xf000 | 0xe0 | 0x2c | 0x40 | 0x48 | 0x58 | 0x31c | 0x24 | 0x28 | 0x134
        )
    }

    #[no_mangle]
    fn guest_main(_fdt: &'static [u8]) -> ! {
        let canary = &raw mut CANARY;
        // SAFETY: our own static.
        unsafe {
            for (i, w) in (&mut *canary).iter_mut().enumerate() {
                *w = 0x5a5a_0000_0000_0000 | i as u64;
            }
        }
        let mut x = mftb() | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut calls, mut codes_ok) = (0u32, true);
        while calls < CALLS {
            let r = next();
            let op = match r % 4 {
                0 => (next() % 0x140) * 4,
                1 => 0xef00 + (next() % 0x10) * 4,
                2 => 0xf000 + (next() % 0x200) * 4,
                _ => next(),
            };
            if excluded(op) {
                continue;
            }
            let args = [
                next(),
                next() % 0x1_0000,
                next(),
                next() & 0xffff_ffff,
                next(),
                next(),
                next(),
                next(),
                next(),
            ];
            let (rc, _) = hcall(op, &args);
            // Every answer is a PAPR status: success, busy, H_NOT_AVAILABLE (3, the
            // hash-table resize calls of a radix partition) or a negative error.
            codes_ok &= (-512..=1).contains(&rc) || rc == 3 || (9900..=9905).contains(&rc);
            calls += 1;
        }
        check(
            "random-hcalls-answered",
            codes_ok,
            format_args!("an hcall returned a non-PAPR status"),
        );
        // SAFETY: our own static.
        let intact = unsafe {
            (*canary)
                .iter()
                .enumerate()
                .all(|(i, &w)| w == 0x5a5a_0000_0000_0000 | i as u64)
        };
        check("canary-intact", intact, format_args!("own memory changed"));
        println!("made {} random hcalls", calls);
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
