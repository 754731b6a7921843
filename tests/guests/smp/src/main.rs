//! SMP: RTAS start-cpu of a secondary vCPU, H_CEDE / H_PROD handshakes between the
//! two, stop-self, query-cpu-stopped-state; XIVE IPIs between them (`xive.rs`).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod xive;

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicU32, Ordering};
    use paprika_guest_rt::*;

    const ROUNDS: u32 = 10;
    static ALIVE: AtomicU32 = AtomicU32::new(0);
    static COUNTER: AtomicU32 = AtomicU32::new(0);

    #[repr(C, align(16))]
    struct Stack([u8; 32 * 1024]);
    static mut STACK: Stack = Stack([0; 32 * 1024]);

    fn secondary() -> ! {
        ALIVE.store(1, Ordering::Release);
        println!("secondary 1 alive");
        for _ in 0..ROUNDS {
            COUNTER.fetch_add(1, Ordering::AcqRel);
            // Sleeps until the primary prods us.
            hcall(0xe0, &[]);
        }
        stop_self()
    }

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let start = mftb();
        while !cond() {
            if mftb().wrapping_sub(start) > 512_000_000 * 10 {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let n = fdt_count_cpus(fdt);
        check(
            "two-vcpus",
            n >= 2,
            format_args!("only {} vCPU(s) in /cpus", n),
        );
        let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
        check(
            "secondary-initially-stopped",
            q[0] == 0 && q[1] == 0,
            format_args!("status {} state {}", q[0], q[1]),
        );
        set_secondary(secondary);
        let stack_top = (&raw mut STACK) as u32 + 32 * 1024 - 64;
        let r = rtas_call("start-cpu", &[1, secondary_entry(), stack_top], 1).unwrap_or([-99; 8]);
        check("start-cpu", r[0] == 0, format_args!("status {}", r[0]));
        check(
            "secondary-alive",
            wait_for(|| ALIVE.load(Ordering::Acquire) == 1),
            format_args!("secondary never ran"),
        );
        let again =
            rtas_call("start-cpu", &[1, secondary_entry(), stack_top], 1).unwrap_or([-99; 8]);
        check(
            "start-cpu-running",
            again[0] != 0,
            format_args!("status {}", again[0]),
        );
        let bad =
            rtas_call("start-cpu", &[77, secondary_entry(), stack_top], 1).unwrap_or([-99; 8]);
        check(
            "start-cpu-bad-id",
            bad[0] == -3,
            format_args!("status {}", bad[0]),
        );
        let mut rounds = 0;
        for i in 1..=ROUNDS {
            if !wait_for(|| COUNTER.load(Ordering::Acquire) >= i) {
                break;
            }
            let (rc, _) = hcall(0xe8, &[1]);
            if rc != H_SUCCESS {
                break;
            }
            rounds = i;
        }
        check(
            "cede-prod-handshake",
            rounds == ROUNDS,
            format_args!("{} of {} rounds", rounds, ROUNDS),
        );
        let stopped = wait_for(|| {
            let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
            q[0] == 0 && q[1] == 0
        });
        check(
            "stop-self",
            stopped,
            format_args!("secondary still running"),
        );
        crate::xive::checks(fdt, |f| {
            set_secondary(f);
            rtas_call("start-cpu", &[1, secondary_entry(), stack_top], 1).is_some_and(|r| r[0] == 0)
        });
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
