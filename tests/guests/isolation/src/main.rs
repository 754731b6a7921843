//! Isolation: run as two partitions (bootargs role=a / role=b). Each fills part of
//! its memory with its own pattern, then tries to read and write guest real
//! addresses beyond its memory. Each attempt must raise a Data Storage interrupt
//! in the guest (the hypervisor never maps anything else), and the pattern must be
//! intact afterwards.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::sync::atomic::{AtomicU64, Ordering};
    use paprika_guest_rt::*;

    static FAULTS: AtomicU64 = AtomicU64::new(0);
    static LAST_DAR: AtomicU64 = AtomicU64::new(0);

    fn on_trap(vector: u64, srr0: &mut u64) -> bool {
        if vector != 0x300 {
            return false;
        }
        FAULTS.fetch_add(1, Ordering::AcqRel);
        LAST_DAR.store(mfspr_dar(), Ordering::Release);
        // Skip the faulting load or store.
        *srr0 += 4;
        true
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
            check(
                "read-outside-faults",
                after_read == before + 1 && LAST_DAR.load(Ordering::Acquire) == addr,
                format_args!(
                    "target {} {:#x}: faults {} -> {}, DAR {:#x}",
                    i,
                    addr,
                    before,
                    after_read,
                    LAST_DAR.load(Ordering::Acquire)
                ),
            );
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(addr as *mut u64, 0xdead_dead_dead_dead) };
            let after_write = FAULTS.load(Ordering::Acquire);
            check(
                "write-outside-faults",
                after_write == after_read + 1,
                format_args!(
                    "target {} {:#x}: faults {} -> {}",
                    i, addr, after_read, after_write
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
