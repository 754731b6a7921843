//! Decrementer interrupts delivered inside the guest, and H_CEDE woken by the
//! decrementer.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicU32, Ordering};
    use paprika_guest_rt::*;

    static TICKS: AtomicU32 = AtomicU32::new(0);
    const WANT: u32 = 5;
    /// 100 microseconds at the 512 MHz timebase.
    const PERIOD: u32 = 51_200;

    fn on_trap(vector: u64, _srr0: &mut u64) -> bool {
        if vector != 0x900 {
            return false;
        }
        let n = TICKS.fetch_add(1, Ordering::AcqRel) + 1;
        set_dec(if n < WANT { PERIOD } else { 0x7fff_ffff });
        true
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let tb_hz = fdt_u32(fdt, "/cpus/*", "timebase-frequency").unwrap_or(0);
        check(
            "timebase-frequency",
            tb_hz == 512_000_000,
            format_args!("{} Hz", tb_hz),
        );
        set_trap_handler(on_trap);
        let start = mftb();
        set_dec(PERIOD);
        set_ee(true);
        while TICKS.load(Ordering::Acquire) < WANT && mftb().wrapping_sub(start) < 512_000_000 * 5 {
            core::hint::spin_loop();
        }
        set_ee(false);
        let elapsed = mftb().wrapping_sub(start);
        let n = TICKS.load(Ordering::Acquire);
        check(
            "decrementer-interrupts",
            n == WANT,
            format_args!("{} of {} ticks", n, WANT),
        );
        check(
            "decrementer-period",
            elapsed >= u64::from(PERIOD) * u64::from(WANT),
            format_args!("{} ticks elapsed for {} periods", elapsed, WANT),
        );
        // H_CEDE with a decrementer armed: it must return once it fires (and the
        // interrupt is taken, since H_CEDE enables MSR[EE]).
        TICKS.store(WANT - 1, Ordering::Release);
        set_dec(PERIOD);
        let t0 = mftb();
        hcall(0xe0, &[]);
        let waited = mftb().wrapping_sub(t0);
        // H_CEDE returns once the interrupt is pending and leaves MSR[EE] set; allow
        // the emulator a moment to deliver it.
        let t1 = mftb();
        while TICKS.load(Ordering::Acquire) < WANT && mftb().wrapping_sub(t1) < 5_120_000 {
            core::hint::spin_loop();
        }
        set_ee(false);
        check(
            "cede-woken-by-decrementer",
            TICKS.load(Ordering::Acquire) == WANT,
            format_args!("no tick after cede (waited {} ticks)", waited),
        );
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
