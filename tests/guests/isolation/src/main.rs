//! Isolation: run as two partitions (bootargs role=a / role=b). Each fills part of
//! its memory with its own pattern, then tries to read, write and execute guest
//! real addresses beyond its memory. Each attempt must raise a machine check
//! (0x200) in the guest, as PowerVM and KVM give for an access to a real address
//! with nothing behind it, with QEMU's bits (SRR0 = the instruction; a load:
//! SRR1[42], DAR, DSISR[57]; a store: SRR1[36,42,43,45], DAR; a fetch:
//! SRR1[36,44,45]); the hypervisor never maps anything else, and the pattern must
//! be intact afterwards.
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
