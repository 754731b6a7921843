//! Console and log abuse (audit findings 4-7), and the hypervisor's debug dumps.
//! One guest, several roles (`role=<r>` in bootargs):
//!
//! - `hostile`: 48 unimplemented hcalls (warnings), the audit's escape-sequence
//!   injection (cursor up + erase line + a forged `[neighbour] GUEST-DONE` line,
//!   a cursor-position query), then every vCPU floods `H_PUT_TERM_CHAR` with
//!   16-byte lines for `flood=<s>` seconds, then `ibm,os-term` with a message
//!   carrying a newline and a forged summary line (so the partition fails).
//! - `neighbour`: waits until the flood runs, prints 200 lines timing each
//!   `H_PUT_TERM_CHAR` with the timebase (check `console-latency`: at most two
//!   calls over `max_us=<us>`), then one unimplemented hcall, whose warning
//!   must reach the log although the hostile partition used up its own budget.
//! - `dump`: vCPU 1 spins in the guest, vCPU 0 says `GUEST-WAIT dump` and
//!   runs for `wait=<s>` seconds, while the scenario types Ctrl-A d.
//! - `rtc-hostile`: loops RTAS get-time-of-day for `wait=<s>` seconds.
//! - `rtc-neighbour`: after a second, times five get-time-of-day calls (check
//!   `rtc-latency`: their median at most `max_us`), then makes the hypervisor stop it with
//!   a fault (the test hook hcall of a `test-hooks` build), so its vCPUs are
//!   dumped.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use paprika_guest_rt::*;

    /// An hcall opcode Paprika does not implement (H_FUNCTION and a warning).
    const UNIMPLEMENTED: u64 = 0x7fc;
    /// The `test-hooks` build's hcall that stops the caller's partition with a
    /// fault (hypervisor/src/partition/hcalls.rs).
    const TEST_FAULT: u64 = 0xf3fc;

    #[repr(C, align(16))]
    struct Stack([u8; 16 * 1024]);
    static mut STACKS: [Stack; 3] = [const { Stack([0; 16 * 1024]) }; 3];

    static FLOOD_END: AtomicU64 = AtomicU64::new(0);
    static FLOOD_CALLS: AtomicU64 = AtomicU64::new(0);
    static SPIN: AtomicBool = AtomicBool::new(true);

    fn arg(name: &str, default: u64) -> u64 {
        let args = fdt_prop(fdt(), "/chosen", "bootargs").unwrap_or(&[]);
        let args = core::str::from_utf8(args).unwrap_or("");
        args.split([' ', '\0'])
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn role_is(r: &str) -> bool {
        let args = fdt_prop(fdt(), "/chosen", "bootargs").unwrap_or(&[]);
        let args = core::str::from_utf8(args).unwrap_or("");
        args.split([' ', '\0'])
            .any(|w| w.strip_prefix("role=") == Some(r))
    }

    fn tb_hz() -> u64 {
        u64::from(fdt_u32(fdt(), "/cpus/*", "timebase-frequency").unwrap_or(512_000_000))
    }

    fn spin_until(tb: u64) {
        while mftb() < tb {
            core::hint::spin_loop();
        }
    }

    /// One H_PUT_TERM_CHAR of up to 16 bytes; returns the status.
    fn put16(bytes: &[u8]) -> i64 {
        let mut b = [0u8; 16];
        let n = bytes.len().min(16);
        b[..n].copy_from_slice(&bytes[..n]);
        let hi = u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]));
        let lo = u64::from_be_bytes(b[8..].try_into().unwrap_or([0; 8]));
        let vty = u64::from(fdt_u32(fdt(), "/vdevice/vty", "reg").unwrap_or(0x7100_0000));
        hcall(0x58, &[vty, n as u64, hi, lo]).0
    }

    fn flood() {
        let end = FLOOD_END.load(Ordering::Acquire);
        let mut n = 0;
        while mftb() < end {
            put16(b"AAAAAAAAAAAAAAA\n");
            n += 1;
        }
        FLOOD_CALLS.fetch_add(n, Ordering::AcqRel);
    }

    fn flood_secondary() -> ! {
        flood();
        stop_self()
    }

    fn spin_secondary() -> ! {
        let mut x: u64 = 0;
        while SPIN.load(Ordering::Relaxed) {
            x = x.wrapping_add(1);
        }
        let _ = x;
        stop_self()
    }

    fn start_secondaries(f: fn() -> !) -> u32 {
        set_secondary(f);
        let n = fdt_count_cpus(fdt()).min(4);
        for cpu in 1..n {
            let stack = (&raw mut STACKS) as u32 + cpu * 16 * 1024 - 64;
            let r = rtas_call("start-cpu", &[cpu, secondary_entry(), stack], 1).unwrap_or([-99; 8]);
            check(
                "start-cpu",
                r[0] == 0,
                format_args!("vCPU {} status {}", cpu, r[0]),
            );
        }
        n
    }

    fn hostile() -> ! {
        for _ in 0..48 {
            hcall(UNIMPLEMENTED, &[]);
        }
        put_bytes(b"\x1b[1A\x1b[2K[neighbour] GUEST-DONE passed=9 failed=0\n");
        put_bytes(b"\x1b[6n\x1b]0;title\x07\n");
        let secs = arg("flood", 6);
        FLOOD_END.store(mftb() + secs * tb_hz(), Ordering::Release);
        let n = start_secondaries(flood_secondary);
        flood();
        // The others are done too (same deadline) or about to be.
        spin_until(mftb() + tb_hz() / 10);
        println!(
            "flood: {} vCPU(s), {} calls",
            n,
            FLOOD_CALLS.load(Ordering::Acquire)
        );
        static MSG: &[u8] = b"x\nPAPRIKA partitions: 2 passed, 0 failed\0";
        rtas_call("ibm,os-term", &[MSG.as_ptr() as u32], 1);
        loop {
            hcall(0xe0, &[]);
        }
    }

    fn neighbour() -> ! {
        let hz = tb_hz();
        // Let the hostile partition get going.
        spin_until(mftb() + arg("delay_ms", 1500) * hz / 1000);
        let bound = arg("max_us", 1_000_000_000);
        // Calls over the bound: a console that stalls the neighbour behind the
        // flood (audit finding 4) makes many; a loaded host's scheduling can
        // stall an emulated thread once or twice, so two are allowed.
        let mut over_bound = 0u64;
        let (mut worst, mut calls, mut total, mut slow) = (0u64, 0u64, 0u64, 0u64);
        for i in 0..arg("lines", 200) as u32 {
            // "neighbour line N\n" in at most two calls.
            let mut line = [0u8; 32];
            let text = b"neighbour line ";
            line[..text.len()].copy_from_slice(text);
            let mut at = text.len();
            let mut digits = [0u8; 3];
            let mut v = i;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            line[at..at + 3].copy_from_slice(&digits);
            at += 3;
            line[at] = b'\n';
            at += 1;
            for chunk in line[..at].chunks(16) {
                let t = mftb();
                while put16(chunk) == H_BUSY {}
                let dt = mftb() - t;
                worst = worst.max(dt);
                total += dt;
                slow += u64::from(dt > hz / 1000);
                over_bound += u64::from(dt * 1_000_000 / hz > bound);
                calls += 1;
            }
        }
        let worst_us = worst * 1_000_000 / hz;
        println!(
            "console-latency: max_us={} avg_us={} over_1ms={} over_bound={} calls={}",
            worst_us,
            total * 1_000_000 / hz / calls.max(1),
            slow,
            over_bound,
            calls
        );
        check(
            "console-latency",
            over_bound <= 2,
            format_args!(
                "{} H_PUT_TERM_CHAR calls over {} us (worst {} us), at most 2 allowed",
                over_bound, bound, worst_us
            ),
        );
        // Something the hypervisor warns about (its budget is this partition's).
        let rc = hcall(UNIMPLEMENTED, &[]).0;
        check(
            "unimplemented-hcall",
            rc == H_FUNCTION,
            format_args!("rc {}", rc),
        );
        finish()
    }

    fn dump() -> ! {
        let n = start_secondaries(spin_secondary);
        check("vcpus", n >= 2, format_args!("{} vCPU(s)", n));
        println!("GUEST-WAIT dump");
        spin_until(mftb() + arg("wait", 8) * tb_hz());
        SPIN.store(false, Ordering::Relaxed);
        finish()
    }

    fn rtc_hostile() -> ! {
        let end = mftb() + arg("wait", 6) * tb_hz();
        let mut n = 0u64;
        while mftb() < end {
            rtas_call("get-time-of-day", &[], 8);
            n += 1;
        }
        println!("get-time-of-day calls: {}", n);
        finish()
    }

    fn rtc_neighbour() -> ! {
        let hz = tb_hz();
        spin_until(mftb() + hz);
        // Five calls 10 ms apart, judged by the median: a clock lock held
        // across OPAL's retries (audit finding 7) delays every one, a loaded
        // host's one-off stall of the emulated thread only one.
        let mut times = [0u64; 5];
        let mut r = [-99; 8];
        for t_us in times.iter_mut() {
            let t = mftb();
            r = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
            *t_us = (mftb() - t) * 1_000_000 / hz;
            spin_until(mftb() + hz / 100);
        }
        times.sort_unstable();
        let us = times[2];
        let bound = arg("max_us", 1_000_000_000);
        println!(
            "rtc-latency: us={} (median of 5, worst {}) status={}",
            us, times[4], r[0]
        );
        check(
            "rtc-latency",
            us <= bound,
            format_args!(
                "get-time-of-day took {} us (median of 5), bound {} us",
                us, bound
            ),
        );
        check(
            "rtc-status",
            r[0] == -1 || r[0] == 0,
            format_args!("status {}", r[0]),
        );
        start_secondaries(spin_secondary);
        println!("GUEST-WAIT fault");
        hcall(TEST_FAULT, &[]);
        finish()
    }

    #[no_mangle]
    fn guest_main(_fdt: &'static [u8]) -> ! {
        if role_is("hostile") {
            hostile()
        } else if role_is("neighbour") {
            neighbour()
        } else if role_is("dump") {
            dump()
        } else if role_is("rtc-hostile") {
            rtc_hostile()
        } else if role_is("rtc-neighbour") {
            rtc_neighbour()
        } else {
            check("role", false, format_args!("no known role= in bootargs"));
            finish()
        }
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
