//! SMP: RTAS start-cpu of a secondary vCPU, H_CEDE / H_PROD handshakes between the
//! two, stop-self, query-cpu-stopped-state; XIVE IPIs between them (`xive.rs`).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod ci;
#[cfg(target_arch = "powerpc64")]
mod reboot;
#[cfg(target_arch = "powerpc64")]
mod toctou;
#[cfg(target_arch = "powerpc64")]
mod xive;

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicU32, Ordering};
    use paprika_guest_rt::*;

    const ROUNDS: u32 = 10;
    static ALIVE: AtomicU32 = AtomicU32::new(0);
    static COUNTER: AtomicU32 = AtomicU32::new(0);

    /// vCPU 1's VPA, registered by vCPU 0 (H_REGISTER_VPA names the processor).
    #[repr(C, align(4096))]
    struct Vpa([u8; 1024]);
    static mut VPA1: Vpa = Vpa([0; 1024]);

    fn yield_count(vpa: u64) -> u32 {
        // SAFETY: our own static, 4-aligned; the hypervisor writes the field.
        u32::from_be(unsafe { core::ptr::read_volatile((vpa + 0x100) as *const u32) })
    }

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

    fn start_vcpu1(f: fn() -> !) -> bool {
        let stack_top = (&raw mut STACK) as u32 + 32 * 1024 - 64;
        set_secondary(f);
        rtas_call("start-cpu", &[1, secondary_entry(), stack_top], 1).is_some_and(|r| r[0] == 0)
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        // After a reboot round (crate::reboot): its checks, then the next round
        // or the end.
        let done = crate::reboot::reboots_done();
        if done > 0 {
            crate::reboot::after(done);
            if done < crate::reboot::ROUNDS {
                let stack_top = (&raw mut STACK) as u32 + 32 * 1024 - 64;
                crate::reboot::race(done + 1, stack_top, start_vcpu1);
            }
            finish()
        }
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
            wait_for(10_000_000, || ALIVE.load(Ordering::Acquire) == 1),
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
        // Register a VPA for vCPU 1 from vCPU 0: it is vCPU 1's (a DTL for vCPU 0
        // still finds no VPA there), and vCPU 1's dispatch count moves with its
        // H_CEDEs below.
        let vpa1 = (&raw mut VPA1) as u64;
        // SAFETY: our own static; size 1024 (big-endian u16 at offset 4).
        unsafe { core::ptr::write_volatile((vpa1 + 4) as *mut u16, 1024u16.to_be()) };
        // SAFETY: as above; a DTL of two entries at +0x200 (size: u32 at +4).
        unsafe { core::ptr::write_volatile((vpa1 + 0x204) as *mut u32, 96u32.to_be()) };
        let (rc, _) = hcall(H_REGISTER_VPA, &[1 << (63 - 18), 1, vpa1]);
        check(
            "vpa-register-other-vcpu",
            rc == H_SUCCESS,
            format_args!("returned {}", rc),
        );
        let (rc, _) = hcall(H_REGISTER_VPA, &[2 << (63 - 18), 0, vpa1 + 0x200]);
        check(
            "vpa-not-on-caller",
            rc == H_RESOURCE,
            format_args!("DTL for vCPU 0 returned {} (expected {})", rc, H_RESOURCE),
        );
        let count_before = yield_count(vpa1);
        let mut rounds = 0;
        for i in 1..=ROUNDS {
            if !wait_for(10_000_000, || COUNTER.load(Ordering::Acquire) >= i) {
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
        let stopped = wait_for(10_000_000, || {
            let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
            q[0] == 0 && q[1] == 0
        });
        check(
            "stop-self",
            stopped,
            format_args!("secondary still running"),
        );
        // Odd once stopped; each of its H_CEDEs added 2.
        let count_after = yield_count(vpa1);
        check(
            "vpa-other-vcpu-dispatch-count",
            count_after % 2 == 1 && count_after.wrapping_sub(count_before) >= 2 * (ROUNDS - 1),
            format_args!(
                "vCPU 1's count {} before its H_CEDEs, {} after it stopped",
                count_before, count_after
            ),
        );
        let (rc, _) = hcall(H_REGISTER_VPA, &[5 << (63 - 18), 1, 0]);
        check(
            "vpa-deregister-other-vcpu",
            rc == H_SUCCESS,
            format_args!("returned {}", rc),
        );
        crate::xive::checks(fdt, |f| {
            set_secondary(f);
            rtas_call("start-cpu", &[1, secondary_entry(), stack_top], 1).is_some_and(|r| r[0] == 0)
        });
        // vCPU 1 stops itself at the end of the XIVE checks.
        wait_for(10_000_000, || {
            let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
            q[0] == 0 && q[1] == 0
        });
        crate::toctou::checks(start_vcpu1);
        let vcpu1_stopped = || {
            wait_for(10_000_000, || {
                let q = rtas_call("query-cpu-stopped-state", &[1], 2).unwrap_or([-99; 8]);
                q[0] == 0 && q[1] == 0
            })
        };
        vcpu1_stopped();
        crate::ci::checks(start_vcpu1);
        // Wait for the writer to stop, then the reboot rounds (they end in
        // `finish` on the last boot).
        vcpu1_stopped();
        crate::reboot::race(1, stack_top, start_vcpu1)
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
