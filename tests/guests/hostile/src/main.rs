//! Hostile guest: attacks the hypervisor from inside its partition while
//! another partition (`guest-neighbour`) measures whether it is affected.
//!
//! At least a million hcalls (`paprika.calls=N`), from two vCPUs racing:
//! structured fuzzing of every implemented hcall with an exact-code oracle
//! (`fuzz.rs`), random opcodes, H_RTAS with random buffers (`rtas.rs`), XIVE
//! TIMA/ESB accesses of every width (`mmio.rs`), random SPR writes including
//! the performance monitor and doorbells left pending when a vCPU stops
//! (`spr.rs`), its own process table pointed at garbage with MMU-on loads
//! (`mmu.rs`). Its own memory is checked too: a canary over most of it, a
//! region nothing writes that must read zero, and the vectors and device tree.
//!
//! The seed is printed (`GUEST-SEED`) and replayed with `paprika.seed=N` on the
//! command line (`cargo xtask test --only lpar-hostile --append paprika.seed=N`);
//! `paprika.off=pmu,dpdes,...` switches attack classes off (`env.rs`). The
//! figures line `GUEST-FIGURES` goes into the scenario's summary.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod env;
#[cfg(target_arch = "powerpc64")]
mod fuzz;
#[cfg(target_arch = "powerpc64")]
mod mmio;
#[cfg(target_arch = "powerpc64")]
mod mmu;
#[cfg(target_arch = "powerpc64")]
mod rng;
#[cfg(target_arch = "powerpc64")]
mod rtas;
#[cfg(target_arch = "powerpc64")]
mod spr;
#[cfg(target_arch = "powerpc64")]
mod trap;

#[cfg(target_arch = "powerpc64")]
pub use guest::secondary_stack;

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

    use paprika_guest_rt::*;

    use crate::env::{Class, Env, CLASSES};
    use crate::fuzz::{self, Fuzz};
    use crate::trap;

    #[repr(C, align(16))]
    struct Stack([u8; 64 * 1024]);
    static mut STACK: Stack = Stack([0; 64 * 1024]);

    /// vCPU 1's stack: `trap::cpu` tells the vCPUs apart by it.
    pub fn secondary_stack() -> (u64, u64) {
        let lo = (&raw const STACK) as u64;
        (lo, lo + 64 * 1024)
    }

    static ENV: AtomicPtr<Env> = AtomicPtr::new(core::ptr::null_mut());
    /// Calls vCPU 1 makes per start.
    static V1_BUDGET: AtomicU64 = AtomicU64::new(0);
    /// Rounds vCPU 1 finished.
    static V1_ROUNDS: AtomicU32 = AtomicU32::new(0);
    static V1_MMIO: AtomicU64 = AtomicU64::new(0);
    /// Lines each vCPU floods the console with (16 bytes each: 96 KiB in all,
    /// beyond the hypervisor's 64 KiB console high-water mark).
    const FLOOD_LINES: u32 = 3000;

    fn env() -> &'static Env {
        // SAFETY: set once by vCPU 0 before vCPU 1 is started, never freed.
        unsafe { &*ENV.load(Ordering::Acquire) }
    }

    /// The mix of one step: mostly structured hcalls.
    fn step(f: &mut Fuzz, pages: &[u64], mmio: &mut u64) {
        let e = f.env;
        match f.rng.below(100) {
            0..=69 if e.on(Class::Hcalls) => f.one(),
            70..=77 if e.on(Class::Random) => f.random(),
            78..=87 if e.on(Class::Rtas) => f.rtas(),
            88..=94 if e.on(Class::Mmio) && !pages.is_empty() => {
                *mmio += 1;
                crate::mmio::one(&mut f.rng, pages);
            }
            95..=99 => f.spr(),
            _ => {
                if e.on(Class::Hcalls) {
                    f.one()
                }
            }
        }
    }

    /// Pages the MMIO class attacks: both TIMA pages, the ESB pages
    /// H_INT_GET_SOURCE_INFO gave, and the pages just past them.
    fn pages(f: &Fuzz, out: &mut [u64; 24]) -> usize {
        let e = f.env;
        let mut n = 0;
        let mut add = |p: u64| {
            if p != 0 && n < out.len() {
                out[n] = p;
                n += 1;
            }
        };
        add(e.tima_os);
        add(e.tima_user);
        add(e.tima_os + 0x1_0000);
        for &p in &f.esb[..f.nesb] {
            add(p);
        }
        if f.nesb > 0 {
            // The pages after the last source's: no source there (DSI).
            add(f.esb[f.nesb - 1] + 0x1_0000);
            add(f.esb[f.nesb - 1] + 0x2_0000);
        }
        n
    }

    /// vCPU 1: hammers in parallel with vCPU 0, then stops itself leaving a
    /// performance monitor alert and a doorbell pending.
    fn secondary() -> ! {
        let e = env();
        let round = V1_ROUNDS.load(Ordering::Acquire);
        let mut f = Fuzz::new(e, 1);
        f.rng = crate::rng::Rng::new(e.seed ^ (0x5eed_0000 + u64::from(round)));
        learn_esb(&mut f);
        let mut p = [0u64; 24];
        let np = pages(&f, &mut p);
        let budget = V1_BUDGET.load(Ordering::Acquire);
        let mut mmio = 0;
        let mut flooded = round != 0 || !e.on(Class::Flood);
        while f.calls < budget {
            step(&mut f, &p[..np], &mut mmio);
            if !flooded && f.calls >= budget / 4 {
                flooded = true;
                f.flood(FLOOD_LINES);
            }
        }
        V1_MMIO.fetch_add(mmio, Ordering::Relaxed);
        set_ee(false);
        f.leave_pending();
        V1_ROUNDS.fetch_add(1, Ordering::AcqRel);
        stop_self()
    }

    /// Asks for every source's ESB pages (H_INT_GET_SOURCE_INFO, checked).
    fn learn_esb(f: &mut Fuzz) {
        let n = u64::from(f.env.nvcpus);
        for lisn in (0..n).chain(core::iter::once(0x1000)) {
            if let Some(out) = f.call(0x3a8, &[0, lisn], fuzz::Want::Is(0)) {
                if out[0] & 0x4 == 0 && f.nesb + 2 <= f.esb.len() {
                    f.esb[f.nesb] = out[2];
                    f.esb[f.nesb + 1] = out[1];
                    f.nesb += 2;
                }
            }
        }
    }

    fn wait_stopped(e: &Env, id: u32) -> bool {
        let start = mftb();
        loop {
            let r = rtas_call_token(e.token("query-cpu-stopped-state"), &[id], 2);
            if r[0] == 0 && r[1] == 0 {
                return true;
            }
            if mftb().wrapping_sub(start) > 512_000_000 * 120 {
                return false;
            }
            // Sleep a little (the decrementer ends H_CEDE).
            set_dec(512_000);
            hcall(0xe0, &[]);
            set_ee(false);
        }
    }

    fn checksum(start: u64, end: u64) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut a = start & !7;
        while a < end {
            h = (h ^ fuzz::peek(a)).wrapping_mul(0x100_0000_01b3);
            a += 8;
        }
        h
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        static mut ENV_STORE: Option<Env> = None;
        let store = &raw mut ENV_STORE;
        // SAFETY: written once here, before vCPU 1 exists.
        let e: &'static Env = unsafe {
            *store = Some(Env::new(fdt));
            (*store).as_ref().expect("stored above")
        };
        ENV.store(e as *const Env as *mut Env, Ordering::Release);
        trap::TIMA_OS.store(e.tima_os, Ordering::Relaxed);
        trap::install();
        if rtas_call_token(e.token("get-time-of-day"), &[], 8)[1] < 2100 {
            println!(
                "GUEST-SEED {} (replay: --append paprika.seed={})",
                e.seed, e.seed
            );
        }
        let mut off = [0u8; 128];
        let mut n = 0;
        for (i, (name, _)) in CLASSES.iter().enumerate() {
            if e.off & (1 << i) != 0 {
                for &b in name.as_bytes().iter().chain(b" ") {
                    if n < off.len() {
                        off[n] = b;
                        n += 1;
                    }
                }
            }
        }
        println!(
            "hostile: {} MiB, {} vCPU(s), {} calls, canary {:#x}-{:#x}, zero {:#x}-{:#x}, classes off: {}",
            e.mem >> 20,
            e.nvcpus,
            e.calls,
            e.canary.start,
            e.canary.end,
            e.zero.start,
            e.zero.end,
            core::str::from_utf8(&off[..n]).unwrap_or("?")
        );
        // The second boot (after the system-reboot at the end of the first):
        // its time of day was moved 80 years ahead before the reboot.
        let tod = rtas_call_token(e.token("get-time-of-day"), &[], 8);
        if tod[0] == 0 && tod[1] >= 2100 {
            second_boot(e, tod)
        }
        let t0 = mftb();
        let vectors = checksum(0x100, 0x1000);
        let tree = checksum(e.fdt.start, e.fdt.end);
        fuzz::fill(e.canary, e.seed);

        let mut f = Fuzz::new(e, 0);
        learn_esb(&mut f);
        let mut p = [0u64; 24];
        let np = pages(&f, &mut p);
        let smp = e.on(Class::Smp) && e.nvcpus >= 2;
        // vCPU 1 runs twice (each run ends with stop-self and its leftovers),
        // each time for a fifth of the calls; vCPU 0 makes the rest.
        let share = if smp { e.calls / 5 } else { 0 };
        V1_BUDGET.store(share, Ordering::Release);
        set_secondary(secondary);
        let stack_top = secondary_stack().1 as u32 - 256;
        let mut mmio = 0u64;
        let mut started = 0;
        let own = e.calls - 2 * share;
        let mut rounds_ok = true;
        let mut next_report = 100_000;
        // Flood while vCPU 1 runs its first round (it floods at a quarter of it).
        let mut flood_at = if e.on(Class::Flood) { own / 8 } else { 0 };
        while f.calls < own {
            // Start vCPU 1 at the start and halfway through.
            if smp && started < 2 && f.calls >= own / 2 * started {
                if started == 1 && !wait_stopped(e, 1) {
                    rounds_ok = false;
                }
                fuzz::ALONE.store(false, Ordering::Release);
                let r = crate::rtas::call(e, "start-cpu", &[1, secondary_entry(), stack_top], 1);
                if r != 0 {
                    println!("GUEST-FAIL start-cpu: status {}", r);
                    rounds_ok = false;
                }
                started += 1;
            }
            step(&mut f, &p[..np], &mut mmio);
            if flood_at != 0 && f.calls >= flood_at {
                flood_at = 0;
                let t = f.flood(FLOOD_LINES);
                println!(
                    "hostile: flooded the console with {} lines in {} ms",
                    FLOOD_LINES,
                    t / 512_000
                );
            }
            if f.calls >= next_report {
                next_report += 100_000;
                println!(
                    "hostile: {} calls ({} both vCPUs), {} mismatches",
                    f.calls,
                    fuzz::CALLS.load(Ordering::Relaxed),
                    fuzz::MISMATCHES.load(Ordering::Relaxed)
                );
            }
        }
        set_ee(false);
        if smp {
            rounds_ok &= wait_stopped(e, 1);
            rounds_ok &= V1_ROUNDS.load(Ordering::Acquire) == 2;
        }
        fuzz::ALONE.store(true, Ordering::Release);
        let mut all_ok = rounds_ok;
        check(
            "second-vcpu-rounds",
            rounds_ok,
            format_args!(
                "vCPU 1 finished {} of 2 rounds",
                V1_ROUNDS.load(Ordering::Acquire)
            ),
        );
        // Alone now: system resets of everyone, then its own translation.
        for _ in 0..200 {
            f.one();
        }
        let (loads, faults) = if e.on(Class::Mmu) { f.mmu(300) } else { (0, 0) };
        let elapsed = mftb().wrapping_sub(t0) / 512_000;
        let calls = fuzz::CALLS.load(Ordering::Relaxed);
        let mism = fuzz::MISMATCHES.load(Ordering::Relaxed);

        // Its own memory.
        let (bad, first) = fuzz::verify(e.canary, e.seed, false);
        check(
            "canary-intact",
            bad == 0,
            format_args!("{} words changed, first at {:#x}", bad, first),
        );
        let (bad0, first0) = fuzz::verify(e.zero, 0, true);
        let intact = checksum(0x100, 0x1000) == vectors && checksum(e.fdt.start, e.fdt.end) == tree;
        all_ok &= bad == 0 && bad0 == 0 && intact && calls >= e.calls && mism == 0;
        check(
            "demand-zero",
            bad0 == 0,
            format_args!("{} words not zero, first at {:#x}", bad0, first0),
        );
        check(
            "vectors-and-tree-intact",
            intact,
            format_args!("its interrupt vectors or device tree changed"),
        );
        check(
            "calls-made",
            calls >= e.calls,
            format_args!("{} of {} calls", calls, e.calls),
        );
        fuzz::print_by_op();
        check(
            "hcall-oracle",
            mism == 0,
            format_args!(
                "{} calls answered or acted wrongly (see GUEST-FAIL oracle lines)",
                mism
            ),
        );
        let mut traps = [0u64; 12];
        for (k, t) in traps.iter_mut().enumerate() {
            *t = trap::taken(0, k) + trap::taken(1, k);
        }
        println!(
            "hostile: interrupts taken: sreset {} dsi {} dabr {} program {} facility {} external {} dec {} trace {} pmi {} doorbell {} align {}",
            traps[0], traps[1], traps[2], traps[3], traps[4], traps[5], traps[6], traps[7], traps[8], traps[9], traps[10]
        );
        println!(
            "GUEST-FIGURES calls={} exact={} mismatches={} mmio={} mmu_loads={} mmu_faults={} seconds={} seed={}",
            calls,
            fuzz::EXACT.load(Ordering::Relaxed),
            mism,
            mmio + V1_MMIO.load(Ordering::Relaxed),
            loads,
            faults,
            elapsed / 1000,
            e.seed
        );
        if all_ok && e.on(Class::Reboot) {
            // Move the partition's clock 80 years ahead (the one thing a reboot
            // keeps), so the second boot knows it is one.
            let t = rtas_call_token(e.token("get-time-of-day"), &[], 8);
            let ahead = [t[1] + 80, t[2], t[3], t[4], t[5], t[6], 0].map(|v| v as u32);
            let r = crate::rtas::call(e, "set-time-of-day", &ahead, 1);
            if t[0] == 0 && r == 0 {
                println!("hostile: system-reboot; the second boot must find its memory scrubbed");
                crate::rtas::call(e, "system-reboot", &[], 1);
            }
            check(
                "system-reboot",
                false,
                format_args!(
                    "get-time-of-day {}, set-time-of-day {}, or reboot returned",
                    t[0], r
                ),
            );
        }
        finish()
    }

    /// The second boot: every byte the first one dirtied (scratch, demand-zero
    /// region, canary, the RTAS area past its blob) reads zero, the XIVE and
    /// XICS are back in their reset state, vCPU 1 is stopped; then its clock is
    /// put back.
    /// Where the hypervisor loads the image (QEMU pseries' kernel-addr).
    const KERNEL_ADDR: u64 = 0x40_0000;

    fn second_boot(e: &'static Env, tod: [i32; 8]) -> ! {
        println!("hostile: second boot (after system-reboot)");
        let back = [tod[1] - 80, tod[2], tod[3], tod[4], tod[5], tod[6], 0].map(|v| v as u32);
        let r = crate::rtas::call(e, "set-time-of-day", &back, 1);
        check(
            "clock-restored",
            r == 0,
            format_args!("set-time-of-day: {}", r),
        );
        // The loader put the image back at kernel-addr (0x400000, where
        // pSeries firmware loads a client) before the copy down to 0: those
        // bytes are the image, not leftovers.
        let (load_start, load_end) = (KERNEL_ADDR, KERNEL_ADDR + e.image_end);
        let (mut bad, mut first) = (0u64, 0u64);
        for (start, end) in [
            (e.halves[0].rtas.start, load_start.min(e.canary.end)),
            (load_end.max(e.halves[0].rtas.start), e.canary.end),
        ] {
            if start >= end {
                continue;
            }
            let (b, f) = fuzz::verify(crate::env::Region { start, end }, 0, true);
            if bad == 0 {
                first = f;
            }
            bad += b;
        }
        let top = crate::env::Region {
            start: e.top.start + 0x1000,
            end: e.top.end,
        };
        let (bad_top, first_top) = fuzz::verify(top, 0, true);
        check(
            "reboot-scrubbed",
            bad == 0 && bad_top == 0,
            format_args!(
                "{} words not zero, first at {:#x}; {} in the RTAS area, first at {:#x}",
                bad, first, bad_top, first_top
            ),
        );
        let mut f = Fuzz::new(e, 0);
        let n = u64::from(e.nvcpus);
        let mut xive_reset = true;
        for lisn in (0..n).chain(core::iter::once(0x1000)) {
            let cfg = f.call(0x3b0, &[0, lisn], fuzz::Want::Is(0));
            xive_reset &= cfg.is_some_and(|c| c[1] == 0xff);
        }
        for target in 0..n {
            for prio in 0..7 {
                let q = f.call(0x3bc, &[0, target, prio], fuzz::Want::Is(0));
                xive_reset &= q.is_some_and(|q| q[2] == 0);
            }
        }
        check(
            "reboot-xive-reset",
            xive_reset,
            format_args!("a source unmasked or a queue enabled after the reboot"),
        );
        let mut xics_reset = true;
        for server in 0..n {
            let p = f.call(0x70, &[server], fuzz::Want::Is(0));
            xics_reset &= p.is_some_and(|p| p[0] == 0 && p[1] == 0xff);
        }
        check(
            "reboot-xics-reset",
            xics_reset,
            format_args!("an ICP not at CPPR 0 / MFRR 0xff after the reboot"),
        );
        let q = rtas_call_token(e.token("query-cpu-stopped-state"), &[1], 2);
        check(
            "reboot-secondary-stopped",
            e.nvcpus < 2 || (q[0] == 0 && q[1] == 0),
            format_args!("vCPU 1: status {} state {}", q[0], q[1]),
        );
        check(
            "reboot-oracle",
            fuzz::MISMATCHES.load(Ordering::Relaxed) == 0,
            format_args!("XIVE/XICS queries answered wrongly"),
        );
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
