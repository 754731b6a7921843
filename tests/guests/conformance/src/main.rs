//! Console, hcall and RTAS conformance: every implemented hcall with good and bad
//! arguments, checking the PAPR return codes, and the RTAS calls; XICS (its
//! source controller in `xics.rs`) and XIVE (`xive.rs`) interrupt delivery.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod calls;
#[cfg(target_arch = "powerpc64")]
mod xics;
#[cfg(target_arch = "powerpc64")]
mod xive;

#[cfg(target_arch = "powerpc64")]
mod guest {
    use paprika_guest_rt::*;
    const H_ZERO_PAGE: u64 = 1 << (63 - 48);
    const VTY: u64 = 0x7100_0000;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut PAGE: Page = Page([0xaa; 4096]);

    static EXTERNALS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    /// External interrupt (0x500): accept it from the XICS presentation
    /// controller, clear the IPI and end it, as Linux's XICS driver does.
    fn on_trap(vector: u64, _srr0: &mut u64) -> bool {
        if vector != 0x500 {
            return false;
        }
        let (rc, out) = hcall(0x74, &[]);
        if rc == H_SUCCESS && out[0] & 0xff_ffff == 2 {
            hcall(0x6c, &[0, 0xff]);
            hcall(0x64, &[out[0]]);
            EXTERNALS.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        }
        true
    }

    fn xics_checks() {
        use core::sync::atomic::Ordering;
        set_trap_handler(on_trap);
        expect("xics-cppr", hcall(0x68, &[0xff]).0, H_SUCCESS);
        let (rc, out) = hcall(0x74, &[]);
        check(
            "xics-xirr-idle",
            rc == H_SUCCESS && out[0] == 0xff00_0000,
            format_args!("rc {} xirr {:#x}", rc, out[0]),
        );
        // Self-IPI with interrupts enabled: presented at once.
        set_ee(true);
        expect("xics-ipi", hcall(0x6c, &[0, 5]).0, H_SUCCESS);
        let start = mftb();
        while EXTERNALS.load(Ordering::Acquire) < 1 && mftb().wrapping_sub(start) < 51_200_000 {
            core::hint::spin_loop();
        }
        set_ee(false);
        check(
            "xics-ipi-delivered",
            EXTERNALS.load(Ordering::Acquire) == 1,
            format_args!("{} interrupts", EXTERNALS.load(Ordering::Acquire)),
        );
        // IPI while interrupts are off: pending (H_IPOLL shows it), delivered when
        // the guest enables them (the hypervisor uses LPCR[MER]).
        expect("xics-ipi-masked", hcall(0x6c, &[0, 5]).0, H_SUCCESS);
        let (rc, out) = hcall(0x70, &[0]);
        check(
            "xics-ipoll",
            rc == H_SUCCESS && out[0] & 0xff_ffff == 2 && out[1] == 5,
            format_args!("rc {} xirr {:#x} mfrr {:#x}", rc, out[0], out[1]),
        );
        set_ee(true);
        let start = mftb();
        while EXTERNALS.load(Ordering::Acquire) < 2 && mftb().wrapping_sub(start) < 51_200_000 {
            core::hint::spin_loop();
        }
        set_ee(false);
        check(
            "xics-ipi-on-enable",
            EXTERNALS.load(Ordering::Acquire) == 2,
            format_args!("{} interrupts", EXTERNALS.load(Ordering::Acquire)),
        );
        expect("xics-ipi-bad-server", hcall(0x6c, &[99, 5]).0, H_PARAMETER);
        expect(
            "xics-eoi-bad-source",
            hcall(0x64, &[0xff00_1234]).0,
            H_PARAMETER,
        );
        crate::xics::checks();
    }

    fn expect(name: &str, got: i64, want: i64) {
        check(
            name,
            got == want,
            format_args!("returned {} (expected {})", got, want),
        );
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        println!("hello from guest-conformance");
        // Built little- and big-endian (guest-conformance-be): say which ran.
        report_endianness();
        let mem = fdt_prop(fdt, "/memory", "reg")
            .and_then(|r| r.get(8..16))
            .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        check(
            "fdt-memory",
            mem >= 16 << 20,
            format_args!("memory size {:#x}", mem),
        );
        check(
            "fdt-vty",
            fdt_u32(fdt, "/vdevice/vty", "reg") == Some(VTY as u32),
            format_args!("no vty@71000000"),
        );
        let hypertas = fdt_prop(fdt, "/rtas", "ibm,hypertas-functions").unwrap_or(&[]);
        check(
            "fdt-hypertas",
            hypertas.windows(12).any(|w| w == b"hcall-splpar"),
            format_args!("no hcall-splpar"),
        );

        // Console.
        expect(
            "put-term-char",
            hcall(
                H_PUT_TERM_CHAR,
                &[VTY, 3, u64::from_be_bytes(*b"ok!\0\0\0\0\0"), 0],
            )
            .0,
            H_SUCCESS,
        );
        println!("");
        expect(
            "put-term-char-len17",
            hcall(H_PUT_TERM_CHAR, &[VTY, 17, 0, 0]).0,
            H_PARAMETER,
        );
        expect(
            "put-term-char-bad-term",
            hcall(H_PUT_TERM_CHAR, &[0x1234, 1, 0, 0]).0,
            H_PARAMETER,
        );
        let (rc, out) = hcall(H_GET_TERM_CHAR, &[VTY]);
        check(
            "get-term-char",
            rc == H_SUCCESS && out[0] <= 16,
            format_args!("rc {} len {}", rc, out[0]),
        );
        expect(
            "get-term-char-bad-term",
            hcall(H_GET_TERM_CHAR, &[0x99]).0,
            H_PARAMETER,
        );

        // Unknown and malformed opcodes.
        for op in [0x4u64, 0x1234, 0x1235, 0xfffc, 0x1_0000_0000, u64::MAX] {
            expect("unimplemented-opcode", hcall(op, &[1, 2, 3]).0, H_FUNCTION);
        }

        // H_RANDOM: success and not constant.
        let mut vals = [0u64; 8];
        let mut ok = true;
        for v in vals.iter_mut() {
            let (rc, out) = hcall(H_RANDOM, &[]);
            ok &= rc == H_SUCCESS;
            *v = out[0];
        }
        check(
            "h-random",
            ok && vals.iter().any(|&v| v != vals[0]),
            format_args!("rc or values constant"),
        );

        // H_SET_MODE: interrupt endianness, both ways, then back to the
        // build's own, as the XICS checks below take interrupts (EE is off until
        // then, so none arrives in the wrong order meanwhile).
        expect("set-mode-le", hcall(H_SET_MODE, &[1, 4, 0, 0]).0, H_SUCCESS);
        expect("set-mode-be", hcall(H_SET_MODE, &[0, 4, 0, 0]).0, H_SUCCESS);
        let own = u64::from(cfg!(target_endian = "little"));
        expect(
            "set-mode-own-endian",
            hcall(H_SET_MODE, &[own, 4, 0, 0]).0,
            H_SUCCESS,
        );
        expect(
            "set-mode-bad-flags",
            hcall(H_SET_MODE, &[7, 4, 0, 0]).0,
            H_UNSUPPORTED_FLAG,
        );
        expect(
            "set-mode-bad-value1",
            hcall(H_SET_MODE, &[1, 4, 5, 0]).0,
            H_P3,
        );
        expect(
            "set-mode-bad-resource",
            hcall(H_SET_MODE, &[0, 99, 0, 0]).0,
            H_P2,
        );

        expect(
            "cpu-characteristics",
            hcall(H_GET_CPU_CHARACTERISTICS, &[]).0,
            H_SUCCESS,
        );
        // H_CEDE returns (the decrementer is far away; a prod wakes it at once).
        expect("prod-self", hcall(H_PROD, &[0]).0, H_SUCCESS);
        expect("cede", hcall(H_CEDE, &[]).0, H_SUCCESS);
        expect("prod-bad-vcpu", hcall(H_PROD, &[999]).0, H_PARAMETER);
        expect("confer-all", hcall(H_CONFER, &[u64::MAX, 0]).0, H_SUCCESS);
        expect("confer-bad-vcpu", hcall(H_CONFER, &[999, 0]).0, H_PARAMETER);

        // VPA, H_RPT_INVALIDATE, H_REGISTER_PROC_TBL, H_PAGE_INIT cache flags.
        crate::calls::checks(mem);

        // H_PAGE_INIT zeroes a page; outside memory is refused.
        let page = (&raw mut PAGE) as u64;
        expect(
            "page-init-zero",
            hcall(H_PAGE_INIT, &[H_ZERO_PAGE, page, 0]).0,
            H_SUCCESS,
        );
        // SAFETY: our own static, read after the hypervisor wrote it.
        let p = &raw const PAGE;
        // SAFETY: as above.
        let zeroed = (0..4096).all(|i| unsafe { (*p).0[i] } == 0);
        check("page-init-zeroed", zeroed, format_args!("page not zeroed"));
        expect(
            "page-init-outside",
            hcall(H_PAGE_INIT, &[H_ZERO_PAGE, mem, 0]).0,
            H_PARAMETER,
        );
        expect(
            "page-init-misaligned",
            hcall(H_PAGE_INIT, &[H_ZERO_PAGE, page + 8, 0]).0,
            H_PARAMETER,
        );
        expect(
            "page-init-huge",
            hcall(H_PAGE_INIT, &[H_ZERO_PAGE, !0xfffu64, 0]).0,
            H_PARAMETER,
        );

        // Logical CI load/store on guest memory; outside memory refused.
        expect(
            "ci-store",
            hcall(H_LOGICAL_CI_STORE, &[8, page, 0x1122_3344_5566_7788]).0,
            H_SUCCESS,
        );
        let (rc, out) = hcall(H_LOGICAL_CI_LOAD, &[8, page]);
        check(
            "ci-load",
            rc == H_SUCCESS && out[0] == 0x1122_3344_5566_7788,
            format_args!("rc {} value {:#x}", rc, out[0]),
        );
        expect(
            "ci-load-outside",
            hcall(H_LOGICAL_CI_LOAD, &[8, mem]).0,
            H_PARAMETER,
        );
        expect(
            "ci-load-bad-size",
            hcall(H_LOGICAL_CI_LOAD, &[9, page]).0,
            H_PARAMETER,
        );

        // H_RTAS with a buffer outside memory.
        expect(
            "rtas-buffer-outside",
            hcall(0xf000, &[mem + 64]).0,
            H_PARAMETER,
        );

        // RTAS calls.
        let tod = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
        check(
            "rtas-get-time-of-day",
            tod[0] == 0 && tod[1] >= 2024 && (1..=12).contains(&tod[2]),
            format_args!("status {} year {} month {}", tod[0], tod[1], tod[2]),
        );
        let set = rtas_call("set-time-of-day", &[2031, 5, 6, 7, 8, 9, 0], 1).unwrap_or([-99; 8]);
        let tod2 = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
        check(
            "rtas-set-time-of-day",
            set[0] == 0 && tod2[1] == 2031 && tod2[2] == 5 && tod2[3] == 6,
            format_args!("status {} got {}-{}-{}", set[0], tod2[1], tod2[2], tod2[3]),
        );
        let bad = rtas_call("set-time-of-day", &[2031, 13, 6, 7, 8, 9, 0], 1).unwrap_or([-99; 8]);
        check(
            "rtas-set-time-of-day-invalid",
            bad[0] == -3,
            format_args!("status {}", bad[0]),
        );
        let dc = rtas_call("display-character", &[u32::from(b'\n')], 1).unwrap_or([-99; 8]);
        check(
            "rtas-display-character",
            dc[0] == 0,
            format_args!("status {}", dc[0]),
        );
        let sp = rtas_call("ibm,get-system-parameter", &[9999, 0, 0], 1).unwrap_or([-99; 8]);
        check(
            "rtas-get-system-parameter-unknown",
            sp[0] == -3,
            format_args!("status {}", sp[0]),
        );
        let es = rtas_call("event-scan", &[0, 0, 0, 0], 1).unwrap_or([-99; 8]);
        check(
            "rtas-event-scan",
            es[0] == 1,
            format_args!("status {}", es[0]),
        );
        let ce = rtas_call("check-exception", &[0, 0, 0, 0, 0, 0], 1).unwrap_or([-99; 8]);
        check(
            "rtas-check-exception",
            ce[0] == 1,
            format_args!("status {}", ce[0]),
        );
        let q = rtas_call("query-cpu-stopped-state", &[0], 2).unwrap_or([-99; 8]);
        check(
            "rtas-query-cpu-running",
            q[0] == 0 && q[1] == 2,
            format_args!("status {} state {}", q[0], q[1]),
        );
        let q = rtas_call("query-cpu-stopped-state", &[42], 2).unwrap_or([-99; 8]);
        check(
            "rtas-query-cpu-bad",
            q[0] == -3,
            format_args!("status {}", q[0]),
        );
        let unknown = rtas_call_token(0x7777, &[], 1);
        check(
            "rtas-unknown-token",
            unknown[0] == -3,
            format_args!("status {}", unknown[0]),
        );
        xics_checks();
        crate::xive::checks(fdt);
        let nmi = rtas_call("ibm,nmi-register", &[0x100, 0x200], 1).unwrap_or([-99; 8]);
        check(
            "rtas-nmi-register",
            nmi[0] == 0,
            format_args!("status {}", nmi[0]),
        );
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
