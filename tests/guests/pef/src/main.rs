//! A partition that tries to become a secure VM where there is no ultravisor
//! (docs/pef.md): UV_ESM as Linux's prom_init issues it (`sc 2`), and again with
//! `sc 1` (what PEF-capable hardware without an enabled ultravisor turns `sc 2`
//! into), then the H_SVM_* hcalls, which only the ultravisor may make. Each must
//! be refused and the partition must carry on.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering};
    use paprika_guest_rt::*;

    const UV_ESM: u64 = 0xf110;
    /// MSR/SRR1 bit 3 (IBM numbering): hypervisor state.
    const MSR_HV: u64 = 1 << 60;

    /// The vector of the last interrupt the handler below took, and its SRR1.
    static TRAP_VECTOR: AtomicU64 = AtomicU64::new(0);
    static TRAP_SRR1: AtomicU64 = AtomicU64::new(0);

    fn on_trap(vector: u64, _srr0: &mut u64) -> bool {
        if vector != 0xc00 {
            return false;
        }
        // A system call interrupt in this partition: SRR0 already points past the
        // `sc`, so returning resumes after it with the registers as they were.
        TRAP_SRR1.store(mfspr_srr1(), Ordering::Relaxed);
        TRAP_VECTOR.store(vector, Ordering::Release);
        true
    }

    /// `sc 2` with r3 = UV_ESM, r4 = the kernel base, r5 = the device tree: the
    /// ucall of Linux's `enter_secure_mode`. Returns r3 afterwards.
    fn sc2_esm(kbase: u64, fdt: u64) -> u64 {
        let r3: u64;
        // SAFETY: `sc 2`: either an interrupt this guest's 0xc00 vector handles
        // (it restores every register it uses) or a ucall/hcall return; every
        // volatile register is declared clobbered.
        unsafe {
            asm!("sc 2",
                inlateout("r3") UV_ESM => r3,
                inlateout("r4") kbase => _, inlateout("r5") fdt => _,
                out("r6") _, out("r7") _, out("r8") _, out("r9") _, out("r10") _,
                out("r11") _, out("r12") _, out("r0") _, out("ctr") _, out("xer") _,
                out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
                options(nostack));
        }
        r3
    }

    const H_TPM_COMM: u64 = 0xef10;
    const H_PARAMETER: i64 = -4;
    const H_P3: i64 = -56;
    const H_P5: i64 = -58;
    const H_RESOURCE: i64 = -16;

    #[repr(align(4096))]
    struct Page([u8; 4096]);
    static mut CMD: Page = Page([0; 4096]);
    static mut RSP: Page = Page([0; 4096]);

    /// H_TPM_COMM in a partition allowed to use it (manifest `tpm = true`):
    /// bad arguments refused as QEMU's spapr-tpm-proxy refuses them, bad
    /// buffers with H_PARAMETER; TPM2_Startup and TPM2_GetRandom answered by
    /// the host TPM, or H_RESOURCE where the machine has none (QEMU's powernv).
    fn tpm_comm() {
        // SAFETY: this single-vCPU guest's only users of the two buffers.
        let (cmd, rsp) = unsafe {
            (
                &mut *core::ptr::addr_of_mut!(CMD),
                &mut *core::ptr::addr_of_mut!(RSP),
            )
        };
        let c = cmd.0.as_ptr() as u64;
        let r = rsp.0.as_ptr() as u64;
        // TPM2_GetRandom(16): tag NO_SESSIONS, size 12, code 0x17b.
        cmd.0[..12].copy_from_slice(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
        for (name, args, want) in [
            ("tpm-bad-op", [3, c, 12, r, 4096], H_PARAMETER),
            ("tpm-in-too-big", [1, c, 4097, r, 4096], H_P3),
            ("tpm-in-too-small", [1, c, 9, r, 4096], H_P3),
            ("tpm-out-too-small", [1, c, 12, r, 4095], H_P5),
            ("tpm-in-outside", [1, 1 << 40, 12, r, 4096], H_PARAMETER),
            (
                "tpm-out-outside",
                [1, c, 12, (64 << 20) - 2048, 4096],
                H_PARAMETER,
            ),
        ] {
            let (rc, _) = hcall(H_TPM_COMM, &args);
            check(name, rc == want, format_args!("rc {} want {}", rc, want));
        }
        // TPM2_Startup(SU_CLEAR), then GetRandom(16): the TPM's answer, or
        // H_RESOURCE (and the buffer untouched) without a TPM.
        let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
        let get_random = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16];
        for (name, bytes) in [("tpm-startup", startup), ("tpm-get-random", get_random)] {
            cmd.0[..12].copy_from_slice(&bytes);
            rsp.0[..10].fill(0xee);
            let (rc, out) = hcall(H_TPM_COMM, &[1, c, 12, r, 4096]);
            let code = u32::from_be_bytes([rsp.0[6], rsp.0[7], rsp.0[8], rsp.0[9]]);
            println!(
                "pef: {}: rc {} length {} TPM code {:#x}",
                name, rc, out[0], code
            );
            // Startup answers TPM_RC_INITIALIZE (0x100) if firmware started the TPM.
            let answered =
                rc == 0 && out[0] >= 10 && (code == 0 || (name == "tpm-startup" && code == 0x100));
            let no_tpm = rc == H_RESOURCE && rsp.0[0] == 0xee;
            check(
                name,
                answered || no_tpm,
                format_args!("rc {} code {:#x}", rc, code),
            );
        }
        let (rc, _) = hcall(H_TPM_COMM, &[2, 0, 0, 0, 0]);
        check("tpm-close-session", rc == 0, format_args!("rc {}", rc));
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        set_trap_handler(on_trap);
        let fdt_addr = fdt.as_ptr() as u64;

        // 1. `sc 2`. Under QEMU (TCG decodes one LEV bit: `sc 2` is `sc 0`) it is a
        // system call interrupt in this partition with MSR[HV] clear and r3
        // untouched; on hardware with PEF disabled the hypervisor gets it as an
        // hcall and answers H_FUNCTION (U_FUNCTION, -2), as KVM-HV and QEMU's
        // pseries do. Either is a refusal; anything else is not.
        let r3 = sc2_esm(0x10000, fdt_addr);
        let vector = TRAP_VECTOR.swap(0, Ordering::Acquire);
        let srr1 = TRAP_SRR1.load(Ordering::Relaxed);
        let (ok, how) = if vector == 0xc00 {
            (
                r3 == UV_ESM && srr1 & MSR_HV == 0,
                "own 0xc00 vector (sc 2 as sc 0)",
            )
        } else {
            (
                r3 as i64 == H_FUNCTION,
                "hypervisor answered (sc 2 as sc 1)",
            )
        };
        println!(
            "pef: UV_ESM by sc 2: {}, r3 {:#x}, SRR1 {:#x}",
            how, r3, srr1
        );
        check(
            "uv-esm-sc2-refused",
            ok,
            format_args!("vector {:#x} r3 {:#x} SRR1 {:#x}", vector, r3, srr1),
        );

        // 2. The same ucall as the hypervisor sees it on PEF-off hardware.
        let (rc, _) = hcall(UV_ESM, &[0x10000, fdt_addr]);
        check(
            "uv-esm-sc1-h-function",
            rc == H_FUNCTION,
            format_args!("rc {}", rc),
        );

        // 3. H_SVM_* from a caller not in secure state: H_UNSUPPORTED (KVM-HV),
        // whatever the arguments; H_TPM_COMM: no TPM proxy, H_FUNCTION.
        for (name, op, args) in [
            ("h-svm-init-start", 0xef08u64, [0u64, 0, 0]),
            ("h-svm-page-in", 0xef00, [0x10000, 0, 16]),
            ("h-svm-page-in-shared", 0xef00, [0x20000, 1, 16]),
            ("h-svm-page-out", 0xef04, [0x10000, 0, 16]),
            ("h-svm-init-done", 0xef0c, [0, 0, 0]),
            ("h-svm-init-abort", 0xef14, [0, 0, 0]),
        ] {
            let (rc, _) = hcall(op, &args);
            check(name, rc == H_UNSUPPORTED, format_args!("rc {}", rc));
        }
        // H_TPM_COMM: without the manifest's `tpm = true` (bootargs "tpm"
        // here) it is not offered; with it, the proxy's checks (docs/pef.md).
        let args = fdt_prop(fdt, "/chosen", "bootargs").unwrap_or(&[]);
        if args.windows(3).any(|w| w == b"tpm") {
            tpm_comm();
        } else {
            let (rc, _) = hcall(0xef10, &[1, 0, 0, 0, 0]);
            check("h-tpm-comm", rc == H_FUNCTION, format_args!("rc {}", rc));
        }

        // 4. Still a working partition: an hcall that needs the hypervisor's
        // attention (H_CEDE with the decrementer armed) returns, and memory it
        // wrote before is intact.
        let probe = [0x5eu8; 64];
        set_dec(51_200);
        hcall(0xe0, &[]);
        set_ee(false);
        check(
            "still-running",
            probe.iter().all(|&b| b == 0x5e),
            format_args!("memory changed"),
        );
        // Linux's prom_init would now call ibm,os-term ("Switch to secure mode
        // failed."); this guest reports instead.
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
