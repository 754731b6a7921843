//! Isolation: run as two partitions (bootargs role=a / role=b). Each fills part of
//! its memory with its own pattern, then tries to read, write and execute guest
//! real addresses beyond its memory. Each attempt must raise a machine check
//! (0x200) in the guest, as PowerVM and KVM give for an access to a real address
//! with nothing behind it, with QEMU's bits (SRR0 = the instruction; a load:
//! SRR1[42], DAR, DSISR[57]; a store: SRR1[36,42,43,45], DAR; a fetch:
//! SRR1[36,44,45]); the hypervisor never maps anything else, and the pattern must
//! be intact afterwards. Role b registers FWNMI (ibm,nmi-register, its handler
//! being the 0x200 vector), so each of its machine checks must also arrive with
//! r3 pointing at the RTAS area's error-log buffer (RTAS base + 0x30: the saved
//! r3, then a version 6 RTAS error log with an "MC" section naming the address),
//! and it releases the buffer with ibm,nmi-interlock each time.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicU64, Ordering};
    use paprika_guest_rt::*;

    static FAULTS: AtomicU64 = AtomicU64::new(0);
    static LAST_DAR: AtomicU64 = AtomicU64::new(0);
    static LAST_DSISR: AtomicU64 = AtomicU64::new(0);
    static LAST_SRR0: AtomicU64 = AtomicU64::new(0);
    static LAST_SRR1: AtomicU64 = AtomicU64::new(0);
    /// Where a fetch that faulted resumes (set before the branch).
    static FETCH_LANDING: AtomicU64 = AtomicU64::new(0);
    /// FWNMI registered (role b): the RTAS base, else 0.
    static FWNMI_RTAS: AtomicU64 = AtomicU64::new(0);
    /// FWNMI deliveries whose r3 and error log were right, and those that were
    /// not (with the first problem).
    static FWNMI_OK: AtomicU64 = AtomicU64::new(0);
    static FWNMI_BAD: AtomicU64 = AtomicU64::new(0);
    static FWNMI_WHY: AtomicU64 = AtomicU64::new(0);

    fn be64(at: u64) -> u64 {
        // SAFETY: inside the RTAS area, guest memory.
        u64::from_be(unsafe { core::ptr::read_volatile(at as *const u64) })
    }
    fn be32(at: u64) -> u32 {
        // SAFETY: as above.
        u32::from_be(unsafe { core::ptr::read_volatile(at as *const u32) })
    }

    /// The FWNMI side of a machine check: r3 (saved by the vector at 40 bytes
    /// into the trap frame, which ends at `srr0`'s slot, 168 bytes in) must
    /// point at the buffer; puts the guest's r3 back from the buffer as Linux's
    /// fwnmi_get_savep does, checks the log and calls ibm,nmi-interlock.
    fn fwnmi_check(srr0: &mut u64, ea: u64, fetch: bool) {
        let rtas = FWNMI_RTAS.load(Ordering::Acquire);
        let frame = (srr0 as *mut u64 as u64) - 168;
        // SAFETY: the trap frame the vector built on this stack.
        let r3 = unsafe { core::ptr::read_volatile((frame + 40) as *const u64) };
        let log = r3 + 8;
        let why = if r3 != rtas + 0x30 {
            1
        } else if be32(log) >> 24 != 6 || be32(log + 4) != 56 {
            2
        } else if be32(log + 20) != 0x4942_4d00 || be32(log + 24) >> 16 != 0x4d43 {
            3
        } else if (be32(log + 40) >> 16) & 0xff47 != if fetch { 0x0041 } else { 0x0043 } {
            4
        } else if be64(log + 48) != ea {
            5
        } else {
            0
        };
        if why == 0 {
            FWNMI_OK.fetch_add(1, Ordering::AcqRel);
        } else {
            FWNMI_BAD.fetch_add(1, Ordering::AcqRel);
            let _ = FWNMI_WHY.compare_exchange(0, why, Ordering::AcqRel, Ordering::Acquire);
        }
        if r3 == rtas + 0x30 {
            // SAFETY: restores the interrupted r3 in the trap frame.
            unsafe { core::ptr::write_volatile((frame + 40) as *mut u64, be64(r3)) };
        }
        let _ = rtas_call("ibm,nmi-interlock", &[], 1);
    }

    /// SRR1 cause bits (IBM numbering) of QEMU's machine check for unassigned
    /// memory.
    const fn ibm(n: u32) -> u64 {
        1 << (63 - n)
    }
    const SRR1_CAUSE: u64 = 0x783f_0000;
    const MC_LOAD: u64 = ibm(42);
    const MC_STORE: u64 = ibm(36) | ibm(42) | ibm(43) | ibm(45);
    const MC_FETCH: u64 = ibm(36) | ibm(44) | ibm(45);

    fn on_trap(vector: u64, srr0: &mut u64) -> bool {
        if vector != 0x200 {
            return false;
        }
        FAULTS.fetch_add(1, Ordering::AcqRel);
        LAST_DAR.store(mfspr_dar(), Ordering::Release);
        LAST_DSISR.store(mfspr_dsisr(), Ordering::Release);
        LAST_SRR0.store(*srr0, Ordering::Release);
        let srr1 = mfspr_srr1();
        LAST_SRR1.store(srr1, Ordering::Release);
        if FWNMI_RTAS.load(Ordering::Acquire) != 0 {
            let fetch = srr1 & SRR1_CAUSE == MC_FETCH;
            fwnmi_check(srr0, if fetch { *srr0 } else { mfspr_dar() }, fetch);
        }
        if srr1 & SRR1_CAUSE == MC_FETCH {
            // The fetch: back to where the branch was made.
            *srr0 = FETCH_LANDING.load(Ordering::Acquire);
        } else {
            // Skip the faulting load or store.
            *srr0 += 4;
        }
        true
    }

    /// Branches to `target`; a machine check there comes back here.
    fn fetch_from(target: u64) {
        let slot = FETCH_LANDING.as_ptr();
        // SAFETY: the branch goes outside the partition, where the fetch must
        // fault; the trap handler resumes at label 2 (recorded first). LR and
        // CTR are clobbered.
        unsafe {
            core::arch::asm!(
                "bcl 20, 31, 1f",
                "1: mflr {t}",
                "addi {t}, {t}, 20",
                "std {t}, 0({slot})",
                "mtctr {target}",
                "bctr",
                "2:",
                t = out(reg_nonzero) _,
                slot = in(reg_nonzero) slot,
                target = in(reg) target,
                out("lr") _,
                out("ctr") _,
            );
        }
    }

    const PATTERN_AT: u64 = 0x20_0000;
    const PATTERN_LEN: u64 = 0x10_0000;

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let args = fdt_prop(fdt, "/chosen", "bootargs").unwrap_or(&[]);
        let role_b = args.windows(6).any(|w| w == b"role=b");
        let seed: u64 = if role_b {
            0xbbbb_0000_0000_0000
        } else {
            0xaaaa_0000_0000_0000
        };
        println!("isolation guest, role {}", if role_b { "b" } else { "a" });
        let mem = fdt_prop(fdt, "/memory", "reg")
            .and_then(|r| r.get(8..16))
            .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        for off in (0..PATTERN_LEN).step_by(8) {
            // SAFETY: inside this partition's memory, above the image.
            unsafe { core::ptr::write_volatile((PATTERN_AT + off) as *mut u64, seed | off) };
        }
        set_trap_handler(on_trap);
        if role_b {
            // FWNMI: both handlers at the runtime's own vectors.
            let r = rtas_call("ibm,nmi-register", &[0x100, 0x200], 1).unwrap_or([-99; 8]);
            check("nmi-register", r[0] == 0, format_args!("status {}", r[0]));
            let base = fdt_u32(fdt, "/rtas", "linux,rtas-base").unwrap_or(0);
            FWNMI_RTAS.store(u64::from(base), Ordering::Release);
        }
        let targets = [
            mem,
            mem + 0x1000,
            mem + (64 << 20),
            0x0000_0fff_0000_0000,
            0x0000_0400_0000_0000,
        ];
        for (i, &addr) in targets.iter().enumerate() {
            let before = FAULTS.load(Ordering::Acquire);
            // SAFETY: deliberately outside the partition: the access must fault.
            let _ = unsafe { core::ptr::read_volatile(addr as *const u64) };
            let after_read = FAULTS.load(Ordering::Acquire);
            let (dar, dsisr, srr1) = (
                LAST_DAR.load(Ordering::Acquire),
                LAST_DSISR.load(Ordering::Acquire),
                LAST_SRR1.load(Ordering::Acquire),
            );
            check(
                "read-outside-machine-check",
                after_read == before + 1
                    && dar == addr
                    && dsisr == 0x40
                    && srr1 & SRR1_CAUSE == MC_LOAD,
                format_args!(
                    "target {} {:#x}: faults {} -> {}, DAR {:#x}, DSISR {:#x}, SRR1 {:#x}",
                    i, addr, before, after_read, dar, dsisr, srr1
                ),
            );
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(addr as *mut u64, 0xdead_dead_dead_dead) };
            let after_write = FAULTS.load(Ordering::Acquire);
            let (dar, srr1) = (
                LAST_DAR.load(Ordering::Acquire),
                LAST_SRR1.load(Ordering::Acquire),
            );
            check(
                "write-outside-machine-check",
                after_write == after_read + 1 && dar == addr && srr1 & SRR1_CAUSE == MC_STORE,
                format_args!(
                    "target {} {:#x}: faults {} -> {}, DAR {:#x}, SRR1 {:#x}",
                    i, addr, after_read, after_write, dar, srr1
                ),
            );
        }
        for &addr in &[mem, mem + (64 << 20), 0x0000_0400_0000_0000] {
            let before = FAULTS.load(Ordering::Acquire);
            fetch_from(addr);
            let after = FAULTS.load(Ordering::Acquire);
            let (srr0, srr1) = (
                LAST_SRR0.load(Ordering::Acquire),
                LAST_SRR1.load(Ordering::Acquire),
            );
            check(
                "fetch-outside-machine-check",
                after == before + 1 && srr0 == addr && srr1 & SRR1_CAUSE == MC_FETCH,
                format_args!(
                    "target {:#x}: faults {} -> {}, SRR0 {:#x}, SRR1 {:#x}",
                    addr, before, after, srr0, srr1
                ),
            );
        }
        if role_b {
            check(
                "fwnmi-error-log",
                FWNMI_BAD.load(Ordering::Acquire) == 0 && FWNMI_OK.load(Ordering::Acquire) == 13,
                format_args!(
                    "{} right, {} wrong (first problem {}: 1 r3, 2 header, 3 v6/MC section, 4 type, 5 address)",
                    FWNMI_OK.load(Ordering::Acquire),
                    FWNMI_BAD.load(Ordering::Acquire),
                    FWNMI_WHY.load(Ordering::Acquire)
                ),
            );
        }
        let intact = (0..PATTERN_LEN).step_by(8).all(|off| {
            // SAFETY: our own memory.
            unsafe { core::ptr::read_volatile((PATTERN_AT + off) as *const u64) == seed | off }
        });
        check(
            "own-pattern-intact",
            intact,
            format_args!("pattern changed"),
        );
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
