//! Facilities and exits a guest can cause (docs/partitions.md, "Facilities"),
//! one role per partition (bootargs `role=...`):
//! - `sprs`: mfspr/mtspr of every SPR number 0-1023 (the value read is written
//!   back, through a rewritten two-instruction stub), catching whatever
//!   interrupt each gets; the facilities the hypervisor refuses (msgsndp,
//!   msgclrp, DPDES: HFSCR[MSGP] clear) must come back as program interrupts
//!   (illegal instruction), never stop the partition; FP/VMX/VSX are zero at
//!   entry; H_SET_MODE(DAWR0) / H_SET_DABR answer H_P2 / H_HARDWARE on POWER9
//!   before DD2.3 (the DAWR erratum) and succeed elsewhere.
//! - `smt`: on an SMT4 core shared with another partition: msgsndp to every
//!   thread of the core, mtspr/mfspr DPDES, msgclrp: each refused.
//! - `pmu`: vCPU 1 dirties FP/VMX/VSX, leaves a Performance Monitor alert
//!   pending (MMCR0[PMAO], MSR[EE] off) and stops itself; vCPU 0 waits until its
//!   thread is idle and starts it again: the restarted vCPU must find its
//!   FP/VMX/VSX state zeroed, and the hypervisor must survive.
//! - `pmu-reboot`: vCPU 1 leaves the alert pending and spins while vCPU 0 asks
//!   for system-reboot; the second boot (found by a time of day set in the
//!   first) finishes.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use paprika_guest_rt::*;

    /// Interrupts the trap handler skipped over: the last vector and its SRR1.
    static TRAPS: AtomicU64 = AtomicU64::new(0);
    static LAST_VECTOR: AtomicU64 = AtomicU64::new(0);
    static LAST_SRR1: AtomicU64 = AtomicU64::new(0);
    /// Counts by kind over the sweep.
    static PROGRAM: AtomicU64 = AtomicU64::new(0);
    static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);

    /// SRR1 bit 44: program interrupt, illegal instruction.
    const SRR1_ILLEGAL: u64 = 1 << (63 - 44);
    /// SRR1 bit 45: program interrupt, privileged instruction.
    const SRR1_PRIVILEGED: u64 = 1 << (63 - 45);

    fn on_trap(vector: u64, srr0: &mut u64) -> bool {
        match vector {
            // Program, FP/vector/VSX unavailable, facility unavailable.
            0x700 | 0x800 | 0xf20 | 0xf40 | 0xf60 => {
                LAST_VECTOR.store(vector, Ordering::Release);
                LAST_SRR1.store(mfspr_srr1(), Ordering::Release);
                TRAPS.fetch_add(1, Ordering::AcqRel);
                if vector == 0x700 {
                    PROGRAM.fetch_add(1, Ordering::Relaxed);
                } else {
                    UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
                }
                // Skip the instruction.
                *srr0 += 4;
                true
            }
            _ => false,
        }
    }

    // ---- a rewritable stub: one instruction, then blr ----

    #[repr(C, align(128))]
    struct Stub([u32; 32]);
    static mut STUB: Stub = Stub([0; 32]);

    /// Runs `insn` (which may use r3 as input and output) with r3 = `arg`.
    /// Returns r3 afterwards and whether an interrupt skipped the instruction.
    fn run(insn: u32, arg: u64) -> (u64, Option<(u64, u64)>) {
        let p = (&raw mut STUB).cast::<u32>();
        let before = TRAPS.load(Ordering::Acquire);
        let r: u64;
        // SAFETY: the stub lives in guest memory (real mode, no protection); it
        // is written, flushed to the instruction cache and called as a leaf
        // function that touches only r3.
        unsafe {
            core::ptr::write_volatile(p, insn);
            core::ptr::write_volatile(p.add(1), 0x4e80_0020); // blr
            asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", "sync", "isync", in(reg_nonzero) p);
            asm!(
                "mtctr {f}",
                "bctrl",
                f = in(reg) p,
                inlateout("r3") arg => r,
                out("r0") _, out("r4") _, out("r5") _, out("r6") _, out("r7") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("ctr") _, out("lr") _, out("xer") _, out("cr0") _, out("cr1") _,
                out("cr5") _, out("cr6") _, out("cr7") _,
            );
        }
        let trapped = (TRAPS.load(Ordering::Acquire) != before).then(|| {
            (
                LAST_VECTOR.load(Ordering::Acquire),
                LAST_SRR1.load(Ordering::Acquire),
            )
        });
        (r, trapped)
    }

    /// The SPR field of mfspr/mtspr: the number's halves swapped.
    const fn spr_field(n: u32) -> u32 {
        ((n & 0x1f) << 16) | ((n >> 5) << 11)
    }
    const fn mfspr_r3(n: u32) -> u32 {
        0x7c00_0000 | (3 << 21) | spr_field(n) | (339 << 1)
    }
    const fn mtspr_r3(n: u32) -> u32 {
        0x7c00_0000 | (3 << 21) | spr_field(n) | (467 << 1)
    }
    /// msgsndp r3 (XO 142), msgclrp r3 (XO 174).
    const MSGSNDP_R3: u32 = 0x7c00_0000 | (3 << 11) | (142 << 1);
    const MSGCLRP_R3: u32 = 0x7c00_0000 | (3 << 11) | (174 << 1);
    const SPR_DPDES: u32 = 176;
    /// Directed privileged doorbell message type (RB bits 32:36 = 5).
    const DBELL_SERVER: u64 = 5 << 27;

    /// `insn` must be refused with a program interrupt: illegal instruction
    /// (what KVM-HV gives for a facility HFSCR does not grant), or privileged
    /// instruction where the ISA makes it hypervisor-only regardless of HFSCR
    /// (mtspr DPDES).
    fn expect_refused(name: &str, insn: u32, arg: u64) {
        let (_, t) = run(insn, arg);
        check(
            name,
            matches!(t, Some((0x700, srr1)) if srr1 & (SRR1_ILLEGAL | SRR1_PRIVILEGED) != 0),
            format_args!("got {:x?} (vector, SRR1), want a program interrupt", t),
        );
    }

    // ---- FP / VMX / VSX ----

    /// MSR bits 38 (VEC), 40 (VSX) and 50 (FP).
    const MSR_FP_VEC_VSX: u64 = (1 << (63 - 38)) | (1 << (63 - 40)) | (1 << (63 - 50));

    fn enable_fp() {
        let m = mfmsr() | MSR_FP_VEC_VSX;
        // SAFETY: enables the FP/vector facilities for this vCPU only.
        unsafe { asm!("mtmsrd {0}", "isync", in(reg) m, options(nostack)) };
    }

    /// OR of both doublewords of VSR 0-63 (FPR 0-31 and VR 0-31 included).
    /// `mfvsrd`/`mfvsrld` encoded by hand (the guest target is soft-float).
    fn fp_state_or() -> u64 {
        enable_fp();
        let acc: u64;
        // SAFETY: reads vector registers into r3/r4 only.
        unsafe {
            asm!(
                "li 3, 0",
                ".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63",
                ".long (31 << 26) | ((\\i & 31) << 21) | (4 << 16) | (51 << 1) | (\\i >> 5)",
                "or 3, 3, 4",
                ".long (31 << 26) | ((\\i & 31) << 21) | (4 << 16) | (307 << 1) | (\\i >> 5)",
                "or 3, 3, 4",
                ".endr",
                out("r3") acc,
                out("r4") _,
                options(nomem, nostack)
            );
        }
        acc
    }

    /// Fills VSR 0-63 with `pattern` (`mtvsrdd vsN, r5, r5`).
    fn fp_fill(pattern: u64) {
        enable_fp();
        // SAFETY: writes vector registers, which nothing else in this soft-float
        // guest uses.
        unsafe {
            asm!(
                ".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63",
                ".long (31 << 26) | ((\\i & 31) << 21) | (5 << 16) | (5 << 11) | (435 << 1) | (\\i >> 5)",
                ".endr",
                in("r5") pattern,
                options(nomem, nostack)
            );
        }
    }

    fn spin_us(us: u64) {
        let _ = wait_for(us, || false);
    }

    fn pvr() -> u64 {
        run(mfspr_r3(287), 0).0
    }

    // ---- role sprs ----

    fn sprs() -> ! {
        check(
            "fp-vector-zero-at-entry",
            fp_state_or() == 0,
            format_args!("VSR 0-63 hold {:#x} (OR)", fp_state_or()),
        );
        expect_refused("mfspr-dpdes-refused", mfspr_r3(SPR_DPDES), 0);
        expect_refused("mtspr-dpdes-refused", mtspr_r3(SPR_DPDES), 1);
        expect_refused("msgsndp-self-refused", MSGSNDP_R3, DBELL_SERVER);
        expect_refused("msgclrp-refused", MSGCLRP_R3, DBELL_SERVER);

        // Every SPR number: read, write the value back, read again. LR and CTR
        // carry the stub's call and return.
        PROGRAM.store(0, Ordering::Relaxed);
        UNAVAILABLE.store(0, Ordering::Relaxed);
        let mut readable = 0u32;
        let mut writable = 0u32;
        for n in 0..1024u32 {
            if n == 8 || n == 9 {
                continue;
            }
            let (v, t) = run(mfspr_r3(n), 0);
            if t.is_none() {
                readable += 1;
            }
            let (_, t) = run(mtspr_r3(n), v);
            if t.is_none() {
                writable += 1;
            }
            let _ = run(mfspr_r3(n), 0);
        }
        println!(
            "spr sweep: 1022 numbers, {} read and {} written without an interrupt; {} program, {} unavailable interrupts",
            readable,
            writable,
            PROGRAM.load(Ordering::Relaxed),
            UNAVAILABLE.load(Ordering::Relaxed)
        );
        // ISA v3.0 gives a supervisor dozens of SPRs; the sweep must have run
        // to the end (the partition was never stopped) and found them.
        check(
            "spr-sweep",
            readable >= 40 && writable >= 30,
            format_args!("only {} readable, {} writable", readable, writable),
        );
        dawr();
        finish()
    }

    /// H_SET_MODE(DAWR0) and H_SET_DABR: refused on POWER9 before DD2.3 (the
    /// DAWR erratum checkstops on a match of a cache-inhibited access).
    fn dawr() {
        let pvr = pvr();
        let erratum = (pvr >> 16) & 0xffff == 0x004e
            && ((pvr >> 8) & 0xf < 2 || ((pvr >> 8) & 0xf == 2 && pvr & 0xff < 3));
        println!("PVR {:#x}: DAWR erratum {}", pvr, erratum);
        // Watch a doubleword the guest never touches: kernel, read and write.
        let (rc, _) = hcall(H_SET_MODE, &[0, 2, 0x3f_0000, 0x62]);
        let want = if erratum { H_P2 } else { H_SUCCESS };
        check(
            "set-mode-dawr0",
            rc == want,
            format_args!("rc {} want {}", rc, want),
        );
        let (rc, _) = hcall(H_SET_MODE, &[0, 2, 0, 0]);
        check(
            "set-mode-dawr0-clear",
            rc == want,
            format_args!("rc {} want {}", rc, want),
        );
        let want = if erratum { H_HARDWARE } else { H_SUCCESS };
        let (rc, _) = hcall(H_SET_DABR, &[0x3f_0000 | 1]);
        check(
            "set-dabr",
            rc == want,
            format_args!("rc {} want {}", rc, want),
        );
        let (rc, _) = hcall(H_SET_DABR, &[0]);
        check(
            "set-dabr-clear",
            rc == want,
            format_args!("rc {} want {}", rc, want),
        );
    }

    // ---- role smt ----

    fn smt() -> ! {
        let tir = run(mfspr_r3(446), 0);
        println!("TIR {:?}", tir);
        for t in 0..4u64 {
            expect_refused("msgsndp-sibling-refused", MSGSNDP_R3, DBELL_SERVER | t);
        }
        expect_refused("mtspr-dpdes-all-threads-refused", mtspr_r3(SPR_DPDES), 0xf);
        expect_refused("mfspr-dpdes-refused", mfspr_r3(SPR_DPDES), 0);
        expect_refused("msgclrp-refused", MSGCLRP_R3, DBELL_SERVER);
        // Stay a while, so the neighbour runs while this partition lives.
        spin_us(300_000);
        finish()
    }

    // ---- roles pmu, pmu-reboot ----

    #[repr(C, align(16))]
    struct Stack([u8; 32 * 1024]);
    static mut STACK: Stack = Stack([0; 32 * 1024]);

    static ROUND: AtomicU32 = AtomicU32::new(0);
    static SECONDARY_DONE: AtomicU32 = AtomicU32::new(0);
    static ARMED: AtomicU32 = AtomicU32::new(0);

    /// MMCR0 = PMAO: a Performance Monitor alert occurred (counters running,
    /// alerts not enabled); with MSR[EE] off it stays pending.
    fn leave_pmu_alert() {
        set_ee(false);
        // SAFETY: the guest's own performance monitor.
        unsafe { asm!("mtspr 795, {0}", "isync", in(reg) 0x80u64, options(nostack)) };
    }

    fn stack_top() -> u32 {
        (&raw mut STACK) as u32 + 32 * 1024 - 64
    }

    fn pmu_secondary() -> ! {
        let round = ROUND.load(Ordering::Acquire);
        let v = fp_state_or();
        check(
            if round == 0 {
                "fp-vector-zero-at-start"
            } else {
                "fp-vector-zero-at-restart"
            },
            v == 0,
            format_args!("VSR 0-63 hold {:#x} (OR) at start {}", v, round),
        );
        fp_fill(0x5a5a_5a5a_5a5a_5a5a);
        if round == 0 {
            leave_pmu_alert();
        }
        SECONDARY_DONE.store(round + 1, Ordering::Release);
        stop_self()
    }

    fn pmu() -> ! {
        set_secondary(pmu_secondary);
        for round in 0..2u32 {
            ROUND.store(round, Ordering::Release);
            let r =
                rtas_call("start-cpu", &[1, secondary_entry(), stack_top()], 1).unwrap_or([-99; 8]);
            check("start-cpu", r[0] == 0, format_args!("status {}", r[0]));
            let ran = wait_for(10_000_000, || {
                SECONDARY_DONE.load(Ordering::Acquire) > round
            });
            let stopped = wait_for(10_000_000, || {
                rtas_call("query-cpu-stopped-state", &[1], 2)
                    .is_some_and(|q| q[0] == 0 && q[1] == 0)
            });
            check(
                "secondary-stopped",
                ran && stopped,
                format_args!("round {}: ran {} stopped {}", round, ran, stopped),
            );
            // Let its thread go idle (where a pending alert would be taken).
            spin_us(200_000);
        }
        println!("the hypervisor survived a performance monitor alert left pending");
        finish()
    }

    fn reboot_secondary() -> ! {
        fp_fill(0x6b6b_6b6b_6b6b_6b6b);
        leave_pmu_alert();
        ARMED.store(1, Ordering::Release);
        loop {
            core::hint::spin_loop();
        }
    }

    /// The year the first boot sets, by which the second recognises itself (the
    /// partition's time of day survives system-reboot, as on PowerVM).
    const MARK_YEAR: i32 = 1999;

    fn pmu_reboot() -> ! {
        let tod = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
        if tod[0] == 0 && tod[1] == MARK_YEAR {
            println!("second boot");
            check("rebooted-after-pmu-alert", true, format_args!(""));
            finish()
        }
        let r = rtas_call(
            "set-time-of-day",
            &[MARK_YEAR as u32, 6, 15, 12, 0, 0, 0],
            1,
        )
        .unwrap_or([-99; 8]);
        check(
            "set-time-of-day",
            r[0] == 0,
            format_args!("status {}", r[0]),
        );
        set_secondary(reboot_secondary);
        let r = rtas_call("start-cpu", &[1, secondary_entry(), stack_top()], 1).unwrap_or([-99; 8]);
        check("start-cpu", r[0] == 0, format_args!("status {}", r[0]));
        let armed = wait_for(10_000_000, || ARMED.load(Ordering::Acquire) == 1);
        check("secondary-armed", armed, format_args!("vCPU 1 never ran"));
        println!("first boot: system-reboot with vCPU 1's alert pending");
        let _ = rtas_call("system-reboot", &[], 1);
        check("system-reboot", false, format_args!("returned"));
        finish()
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        set_trap_handler(on_trap);
        let args = fdt_prop(fdt, "/chosen", "bootargs").unwrap_or(&[]);
        let has = |w: &[u8]| args.windows(w.len()).any(|x| x == w);
        if has(b"role=pmu-reboot") {
            pmu_reboot()
        } else if has(b"role=pmu") {
            pmu()
        } else if has(b"role=smt") {
            smt()
        } else {
            sprs()
        }
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
