//! Entry: what a pSeries client program finds when it starts (docs/partitions.md,
//! "Guest entry"), checked from inside.
//!
//! - Its first instructions switch to little-endian unconditionally, assuming
//!   they run big-endian, as a client of pSeries firmware may: entered
//!   little-endian, they are not even instructions, and the guest never reports.
//!   They record the MSR at entry (check `entry-msr`: LE clear, SF and ME set).
//! - It is linked at 0, loaded at kernel-addr 0x400000 plus its physical address
//!   0 and entered at its entry point there (`entry-address`); the runtime
//!   (prt) copies the image, vectors included, down to 0 where it is linked, so
//!   the vectors at 0x100.. take a `trap` (`vectors-at-0x100`).
//! - Its initrd (the manifest gives it one: another guest's ELF) follows the
//!   image, 64 KiB aligned at least 64 KiB after its end as QEMU places it
//!   (`initrd-after-kernel`: /chosen/linux,initrd-start and the bytes there).
//! - A secondary vCPU started by RTAS start-cpu at an entry of the same kind
//!   finds MSR = SF|ME, LE clear (`secondary-msr`), whatever the guest set
//!   with H_SET_MODE.
//! - All of its memory (the manifest gives it more than the machine has
//!   contiguous, so it spans host extents) holds what the guest stores
//!   (`memory-pattern`), and the hypervisor's own accesses cross the 2 MiB
//!   boundaries (where extents meet) correctly (`hypervisor-copy-across-chunks`,
//!   with KVMPPC_H_LOGICAL_MEMOP).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::global_asm;
    use core::sync::atomic::{AtomicU64, Ordering};
    use paprika_guest_rt::*;

    // Each entry: the instruction words below are stored big-endian (the
    // assembler stores `.long` little-endian, so each is written byte-swapped):
    //   mfmsr r12; bcl 20,31,$+4; mflr r10; ori r11,r12,1 (MSR | LE);
    //   addi r10,r10,24; mtsrr0 r10; mtsrr1 r11; rfid
    // and continue little-endian 32 bytes in, r12 = MSR at entry, r10 = that
    // address. Entered little-endian, the words decode as garbage.
    macro_rules! switch_to_le_from_be {
        () => {
            "
            .long 0xa600807d
            .long 0x05009f42
            .long 0xa602487d
            .long 0x01008b61
            .long 0x18004a39
            .long 0xa6035a7d
            .long 0xa6037b7d
            .long 0x2400004c
            "
        };
    }

    global_asm!(
        r#"
        .section .text.entry, "ax"
        .globl _start
    _start:
        "#,
        switch_to_le_from_be!(),
        r#"
        mr 4, 12
        addi 5, 10, -32
        b guest_rt_entry

        .text
        .globl entry_secondary
    entry_secondary:
        "#,
        switch_to_le_from_be!(),
        r#"
        mr 4, 12
        b guest_secondary_common
        "#
    );

    extern "C" {
        fn entry_secondary();
        fn _start();
        /// The end of the image in memory (BSS and stack included; guest.ld).
        static __stack_top: u8;
    }

    /// QEMU pseries' default kernel-addr.
    const KERNEL_ADDR: u64 = 0x40_0000;
    const MSR_SF: u64 = 1 << 63;
    const MSR_ME: u64 = 1 << 12;
    const KVMPPC_H_LOGICAL_MEMOP: u64 = 0xf001;
    const CHUNK: u64 = 2 << 20;
    const MAGIC: u64 = 0x5a17_c0de_0000_0000;

    #[repr(C, align(16))]
    struct Stack([u8; 16 * 1024]);
    static mut STACK: Stack = Stack([0; 16 * 1024]);
    static SECONDARY_MSR: AtomicU64 = AtomicU64::new(0);

    fn secondary() -> ! {
        SECONDARY_MSR.store(secondary_entry_msr() | 2, Ordering::Release);
        stop_self()
    }

    fn trap_handler(vector: u64, srr0: &mut u64) -> bool {
        if vector == 0x700 {
            TRAPS.fetch_add(1, Ordering::Relaxed);
            *srr0 += 4;
            return true;
        }
        false
    }
    static TRAPS: AtomicU64 = AtomicU64::new(0);

    fn be64(v: Option<&[u8]>) -> Option<u64> {
        let b = v?.get(..8)?;
        Some(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn memory_size(fdt: &'static [u8]) -> u64 {
        fdt_prop(fdt, "/memory", "reg")
            .and_then(|r| r.get(8..16))
            .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .unwrap_or(0)
    }

    fn pattern(gra: u64) -> u64 {
        MAGIC ^ gra
    }

    /// Stores a word in every 4 KiB page of [lo, hi), then reads them all back.
    fn memory_pattern(lo: u64, hi: u64) -> Option<u64> {
        let mut gra = lo;
        while gra < hi {
            // SAFETY: guest real memory of this partition, above the image and
            // below the device tree and RTAS (real mode: addresses are real).
            unsafe { core::ptr::write_volatile(gra as *mut u64, pattern(gra)) };
            gra += 4096;
        }
        let mut gra = lo;
        while gra < hi {
            // SAFETY: as above.
            let v = unsafe { core::ptr::read_volatile(gra as *const u64) };
            if v != pattern(gra) {
                return Some(gra);
            }
            gra += 4096;
        }
        None
    }

    static mut SCRATCH: [u64; 8] = [0; 8];

    /// Around every 2 MiB boundary in [lo, hi): the hypervisor copies 64 bytes
    /// that straddle it into a buffer and back out, and both copies match what
    /// the guest sees.
    fn copies_across_chunks(lo: u64, hi: u64) -> Result<u32, u64> {
        let buf = (&raw mut SCRATCH) as u64;
        let mut n = 0;
        let mut b = lo.next_multiple_of(CHUNK);
        while b < hi {
            let at = b - 32;
            // Guest stores, hypervisor reads (across the boundary).
            for i in 0..8 {
                let gra = at + 8 * i;
                // SAFETY: partition memory in [lo, hi) (see memory_pattern).
                unsafe { core::ptr::write_volatile(gra as *mut u64, pattern(gra) ^ 1) };
            }
            let (rc, _) = hcall(KVMPPC_H_LOGICAL_MEMOP, &[buf, at, 3, 8, 0]);
            // SAFETY: the guest's own buffer, written by the hypervisor above.
            let got = unsafe { core::ptr::read_volatile(&raw const SCRATCH) };
            if rc != H_SUCCESS || (0..8).any(|i| got[i] != pattern(at + 8 * i as u64) ^ 1) {
                return Err(b);
            }
            // Hypervisor writes (across the boundary), guest reads: inverted.
            let (rc, _) = hcall(KVMPPC_H_LOGICAL_MEMOP, &[at, buf, 3, 8, 1]);
            for i in 0..8u64 {
                let gra = at + 8 * i;
                // SAFETY: as above.
                let v = unsafe { core::ptr::read_volatile(gra as *const u64) };
                if rc != H_SUCCESS || v != !(pattern(gra) ^ 1) {
                    return Err(b);
                }
            }
            n += 1;
            b += CHUNK;
        }
        Ok(n)
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let e = entry_state();
        println!(
            "GUEST-ENTRY msr={:#x} address={:#x} (_start linked at {:#x})",
            e.msr, e.address, _start as *const () as usize
        );
        check(
            "entry-msr",
            e.msr & MSR_LE == 0 && e.msr & (MSR_SF | MSR_ME) == MSR_SF | MSR_ME,
            format_args!("MSR at entry {:#x}, want SF|ME and LE clear", e.msr),
        );
        let want = KERNEL_ADDR + (_start as *const () as usize as u64 & 0x0fff_ffff);
        check(
            "entry-address",
            e.address == want,
            format_args!("entered at {:#x}, want {:#x}", e.address, want),
        );
        set_trap_handler(trap_handler);
        // SAFETY: a trap instruction; the handler steps over it.
        unsafe { core::arch::asm!("trap") };
        check(
            "vectors-at-0x100",
            TRAPS.load(Ordering::Relaxed) == 1,
            format_args!("{} program interrupts taken", TRAPS.load(Ordering::Relaxed)),
        );

        // The initrd: where QEMU's pseries puts it, (kernel end + 0x1ffff) &
        // ~0xffff, with the image's end at KERNEL_ADDR + its memory size.
        let image_end = KERNEL_ADDR + (&raw const __stack_top) as u64;
        let want = (image_end + 0x1_ffff) & !0xffff;
        let start = be64(fdt_prop(fdt, "/chosen", "linux,initrd-start"));
        let end = be64(fdt_prop(fdt, "/chosen", "linux,initrd-end"));
        let elf = start.map(|s| {
            // SAFETY: the initrd the hypervisor loaded into this partition.
            unsafe { core::ptr::read_volatile(s as *const [u8; 4]) }
        });
        check(
            "initrd-after-kernel",
            start == Some(want) && end.is_some_and(|e| e > want) && elf == Some(*b"\x7fELF"),
            format_args!(
                "initrd {:#x?}..{:#x?} starting {:x?}, want it at {:#x} (image ends at {:#x})",
                start, end, elf, want, image_end
            ),
        );

        // A secondary, after the guest asked for little-endian interrupts.
        let stack_top = (&raw mut STACK) as u32 + 16 * 1024 - 64;
        set_secondary(secondary);
        let r = rtas_call(
            "start-cpu",
            &[1, entry_secondary as *const () as usize as u32, stack_top],
            1,
        )
        .unwrap_or([-99; 8]);
        let ran = r[0] == 0 && wait_for(10_000_000, || SECONDARY_MSR.load(Ordering::Acquire) != 0);
        let msr = SECONDARY_MSR.load(Ordering::Acquire) & !2;
        check(
            "secondary-msr",
            ran && msr & MSR_LE == 0 && msr & (MSR_SF | MSR_ME) == MSR_SF | MSR_ME,
            format_args!("start-cpu status {}, MSR at entry {:#x}", r[0], msr),
        );

        let size = memory_size(fdt);
        // Above the image (linked at 0, under 1 MiB) and its copy at 4 MiB;
        // below the device tree and RTAS at the top.
        let (lo, hi) = (8 << 20, size.saturating_sub(4 << 20));
        println!("memory {} MiB, checking [{:#x}, {:#x})", size >> 20, lo, hi);
        let bad = memory_pattern(lo, hi);
        check(
            "memory-pattern",
            size > 0 && bad.is_none(),
            format_args!("size {:#x}, first bad page {:#x?}", size, bad),
        );
        let copies = copies_across_chunks(lo, hi);
        check(
            "hypervisor-copy-across-chunks",
            copies.is_ok(),
            format_args!("wrong around {:#x?}", copies),
        );
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
