//! Runtime for Paprika's test guests: small `no_std` pSeries programs that the
//! hypervisor loads into an LPAR and enters directly at `_start` as pSeries
//! firmware enters a client (guest real mode, MSR = SF|ME, big-endian in either
//! build; r3 = device tree), loaded at kernel-addr 0x400000. Linked at guest
//! real 0 by `tests/guests/guest.ld`: interrupt vectors at 0x100..0x1000,
//! `_start` at 0x10000; the entry copies the image down to 0 and runs there.
//!
//! Builds for either byte order (xtask builds some guests big-endian too): what
//! the hypervisor and firmware define as big-endian is handled as such whatever
//! the build's order (device tree cells, RTAS argument buffers, the VPA size
//! field), register-passed data has no byte order (H_PUT_TERM_CHAR packs the
//! first character in the most significant byte of r6), and the entry code
//! switches to the build's order if entered in the other one. Interrupts must
//! arrive in the build's order too: a guest that uses H_SET_MODE to change the
//! interrupt endianness sets it back to its own before enabling interrupts.
//!
//! A guest provides `#[no_mangle] extern "Rust" fn guest_main(fdt: &'static [u8]) -> !`
//! and may install a trap handler with [`set_trap_handler`]. Conventions for
//! results: `GUEST-PASS <name>`, `GUEST-FAIL <name>: <why>`, `GUEST-DONE
//! passed=<n> failed=<m>`, then RTAS power-off (all passed) or ibm,os-term.
#![cfg_attr(target_arch = "powerpc64", no_std)]

#[cfg(target_arch = "powerpc64")]
mod rt {
    use core::arch::{asm, global_asm};
    use core::fmt::{self, Write};
    use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    macro_rules! vector {
        ($v:literal) => {
            concat!(
                ".org ",
                stringify!($v),
                "\n",
                "stdu 1, -400(1)\n",
                "std 0, 32(1)\n",
                "std 3, 40(1)\n",
                "li 3, ",
                stringify!($v),
                "\n",
                "b guest_trap_common\n"
            )
        };
    }

    /// Makes the code after it run in the build's byte order whichever order it
    /// is entered in. Entered in the build's order, `tdi 0,0,0x48` never traps
    /// and the branch skips the words; entered in the other order, the same
    /// word reads as `b .+8` and the `.long` words, which the assembler stores
    /// in the build's order and so read in the other one as
    /// `mfmsr r11; xori r11,r11,1; bcl 20,31,$+4; mflr r10; addi r10,r10,20;
    /// mtsrr0 r10; mtsrr1 r11; rfid`, flip MSR[LE] and continue at label 190.
    /// The same bytes serve both builds, as the sequence is symmetric. Clobbers
    /// r10, r11 and LR only when it switches. Paprika enters a guest in its
    /// ELF's order, but RTAS start-cpu elsewhere (QEMU's pseries, for one)
    /// starts a secondary with MSR = SF|ME, i.e. big-endian, which Linux's
    /// little-endian secondary entry also copes with.
    macro_rules! fixup_endian {
        () => {
            "tdi 0, 0, 0x48
        b 190f
        .long 0xa600607d
        .long 0x01006b69
        .long 0x05009f42
        .long 0xa602487d
        .long 0x14004a39
        .long 0xa6035a7d
        .long 0xa6037b7d
        .long 0x2400004c
    190:
"
        };
    }

    global_asm!(
        ".section .vectors, \"ax\"",
        // Offset 0, the lowest address of the image: QEMU's pseries firmware
        // (SLOF, VOF) enters a `-kernel` there (its kernel-addr), whatever
        // `e_entry` says; Paprika enters at `e_entry`. Either way, and in
        // either byte order, the guest gets to `_start`.
        fixup_endian!(),
        "b _start",
        vector!(0x100),
        vector!(0x200),
        vector!(0x300),
        vector!(0x380),
        vector!(0x400),
        vector!(0x480),
        vector!(0x500),
        vector!(0x600),
        vector!(0x700),
        vector!(0x800),
        vector!(0x900),
        vector!(0xa00),
        vector!(0xb00),
        vector!(0xc00),
        vector!(0xd00),
        vector!(0xe00),
        vector!(0xf00),
        vector!(0xf20),
        vector!(0xf40),
        vector!(0xf60),
        r#"
        .org 0x1000
        "#
    );

    // The entry point (ELF `e_entry`), unless the guest brings its own
    // (feature `own-start`, for a guest that tests how it is entered).
    #[cfg(not(feature = "own-start"))]
    global_asm!(
        r#"
        .section .text.entry, "ax"
        .globl _start
    _start:
        "#,
        fixup_endian!(),
        r#"
        /* Entry state for the guest: r4 = MSR at entry unknown (all ones; the
           fix-up may have changed it), r5 = the address _start was entered at. */
        bcl 20, 31, 180f
    180: mflr 5
        addi 5, 5, _start - 180b
        li 4, -1
        b guest_rt_entry
        "#
    );

    global_asm!(
        r#"
        .text
        .globl guest_rt_entry
        /* Common entry (also for a guest's own _start, `own-start` feature):
           r3 = device tree, r4 = MSR at entry, r5 = entry address; in the
           build's byte order. pSeries firmware loads the image at kernel-addr
           (0x400000) + its physical address, not where it is linked (0): copy
           it there (vectors included) and continue at the link address, as
           Linux copies itself down to 0. The image must be smaller than the
           distance, so the copy never overlaps itself. */
    guest_rt_entry:
        bcl 20, 31, 181f
    181: mflr 11
        ld 12, 7f - 181b(11)
        subf. 9, 12, 11
        beq 185f
        ld 6, 7f + 8 - 181b(11)
        ld 7, 7f + 16 - 181b(11)
        add 8, 6, 9
        mr 10, 6
    182: cmpld 6, 7
        bge 183f
        ld 0, 0(8)
        std 0, 0(6)
        addi 6, 6, 8
        addi 8, 8, 8
        b 182b
        /* Make the copied instructions visible to instruction fetch (Book II
           1.9, "instruction storage"): dcbst, sync, icbi, isync. */
    183: mr 6, 10
    184: dcbst 0, 6
        sync
        icbi 0, 6
        addi 6, 6, 128
        cmpld 6, 7
        blt 184b
        sync
        isync
        ld 12, 7f + 24 - 181b(11)
        mtctr 12
        bctr
        .balign 8
    7:  .quad 181b
        .quad __image_start
        .quad __image_copy_end
        .quad 185f
    185:
        /* At the link address from here on: TOC, stack, BSS, then
           guest_rt_start(r3, r4, r5). */
        bcl 20, 31, 1f
    1:  mflr 11
        ld 2, 8f - 1b(11)
        ld 1, 8f + 8 - 1b(11)
        ld 7, 8f + 16 - 1b(11)
        ld 8, 8f + 24 - 1b(11)
        li 0, 0
    2:  cmpld 7, 8
        bge 3f
        std 0, 0(7)
        addi 7, 7, 8
        b 2b
    3:  li 0, 0
        stdu 0, -64(1)
        bl guest_rt_start
        nop
    4:  b 4b
        .balign 8
    8:  .quad .TOC.
        .quad __stack_top
        .quad __bss_start
        .quad __bss_end

        /* Secondary vCPUs (RTAS start-cpu): r3 = their stack top. */
        .globl guest_secondary_entry
    guest_secondary_entry:
        "#,
        fixup_endian!(),
        r#"
        li 4, -1
        b guest_secondary_common
        /* Common secondary entry: r3 = stack top, r4 = MSR at entry. */
        .globl guest_secondary_common
    guest_secondary_common:
        mr 1, 3
        mr 3, 4
        bcl 20, 31, 5f
    5:  mflr 11
        ld 2, 9f - 5b(11)
        li 0, 0
        stdu 0, -64(1)
        bl guest_secondary_start
        nop
    6:  b 6b
        .balign 8
    9:  .quad .TOC.

        .text
        .globl guest_trap_common
    guest_trap_common:
        std 2, 48(1)
        std 4, 56(1)
        std 5, 64(1)
        std 6, 72(1)
        std 7, 80(1)
        std 8, 88(1)
        std 9, 96(1)
        std 10, 104(1)
        std 11, 112(1)
        std 12, 120(1)
        std 13, 128(1)
        mflr 0
        std 0, 136(1)
        mfctr 0
        std 0, 144(1)
        mfcr 0
        std 0, 152(1)
        mfxer 0
        std 0, 160(1)
        /* SRR0/1: the handler may make hcalls, and `sc` overwrites them. */
        mfspr 0, 26
        std 0, 168(1)
        mfspr 0, 27
        std 0, 176(1)
        addi 4, 1, 168
        bl guest_trap
        nop
        ld 0, 168(1)
        mtspr 26, 0
        ld 0, 176(1)
        mtspr 27, 0
        ld 0, 160(1)
        mtxer 0
        ld 0, 152(1)
        mtcr 0
        ld 0, 144(1)
        mtctr 0
        ld 0, 136(1)
        mtlr 0
        ld 2, 48(1)
        ld 4, 56(1)
        ld 5, 64(1)
        ld 6, 72(1)
        ld 7, 80(1)
        ld 8, 88(1)
        ld 9, 96(1)
        ld 10, 104(1)
        ld 11, 112(1)
        ld 12, 120(1)
        ld 13, 128(1)
        ld 0, 32(1)
        ld 3, 40(1)
        addi 1, 1, 400
        rfid
    "#
    );

    pub const H_SUCCESS: i64 = 0;
    pub const H_BUSY: i64 = 1;
    pub const H_FUNCTION: i64 = -2;
    pub const H_PARAMETER: i64 = -4;
    pub const H_P2: i64 = -55;
    pub const H_P3: i64 = -56;
    pub const H_UNSUPPORTED_FLAG: i64 = -256;
    // hcall opcodes and return codes as Linux's hvcall.h numbers them, for
    // every guest (each had its own copies).
    pub const H_REMOVE: u64 = 0x04;
    pub const H_ENTER: u64 = 0x08;
    pub const H_READ: u64 = 0x0c;
    pub const H_PROTECT: u64 = 0x18;
    pub const H_SET_DABR: u64 = 0x28;
    pub const H_PAGE_INIT: u64 = 0x2c;
    pub const H_LOGICAL_CI_LOAD: u64 = 0x3c;
    pub const H_LOGICAL_CI_STORE: u64 = 0x40;
    pub const H_GET_TERM_CHAR: u64 = 0x54;
    pub const H_PUT_TERM_CHAR: u64 = 0x58;
    pub const H_EOI: u64 = 0x64;
    pub const H_IPOLL: u64 = 0x70;
    pub const H_REGISTER_VPA: u64 = 0xdc;
    pub const H_CEDE: u64 = 0xe0;
    pub const H_CONFER: u64 = 0xe4;
    pub const H_PROD: u64 = 0xe8;
    pub const H_BULK_REMOVE: u64 = 0x124;
    pub const H_GET_CPU_CHARACTERISTICS: u64 = 0x1c8;
    pub const H_RANDOM: u64 = 0x300;
    pub const H_SET_MODE: u64 = 0x31c;
    pub const H_RESIZE_HPT_PREPARE: u64 = 0x36c;
    pub const H_RESIZE_HPT_COMMIT: u64 = 0x370;
    pub const H_REGISTER_PROC_TBL: u64 = 0x37c;
    pub const H_INT_GET_SOURCE_INFO: u64 = 0x3a8;
    pub const H_INT_SET_SOURCE_CONFIG: u64 = 0x3ac;
    pub const H_INT_GET_SOURCE_CONFIG: u64 = 0x3b0;
    pub const H_INT_GET_QUEUE_INFO: u64 = 0x3b4;
    pub const H_INT_SET_QUEUE_CONFIG: u64 = 0x3b8;
    pub const H_INT_GET_QUEUE_CONFIG: u64 = 0x3bc;
    pub const H_INT_SET_OS_REPORTING_LINE: u64 = 0x3c0;
    pub const H_INT_GET_OS_REPORTING_LINE: u64 = 0x3c4;
    pub const H_INT_ESB: u64 = 0x3c8;
    pub const H_INT_SYNC: u64 = 0x3cc;
    pub const H_INT_RESET: u64 = 0x3d0;
    pub const H_RPT_INVALIDATE: u64 = 0x448;
    pub const H_RTAS: u64 = 0xf000;
    pub const H_SET_PARTITION_TABLE: u64 = 0xf800;
    pub const H_ENTER_NESTED: u64 = 0xf804;
    pub const H_TLB_INVALIDATE: u64 = 0xf808;
    pub const H_COPY_TOFROM_GUEST: u64 = 0xf80c;
    pub const H_HARDWARE: i64 = -1;
    pub const H_CLOSED: i64 = 2;
    pub const H_NOT_AVAILABLE: i64 = 3;
    pub const H_PTEG_FULL: i64 = -6;
    pub const H_NOT_FOUND: i64 = -7;
    pub const H_RESOURCE: i64 = -16;
    pub const H_P4: i64 = -57;
    pub const H_P5: i64 = -58;
    pub const H_UNSUPPORTED: i64 = -67;

    /// A hypervisor call: r3 = opcode, r4.. = args; returns (r3, r4..r7).
    pub fn hcall(op: u64, args: &[u64]) -> (i64, [u64; 4]) {
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        let (r3, r4, r5, r6, r7): (u64, u64, u64, u64, u64);
        // SAFETY: `sc 1`; every volatile register is declared clobbered.
        unsafe {
            asm!("sc 1",
                inlateout("r3") op => r3,
                inlateout("r4") a(0) => r4, inlateout("r5") a(1) => r5,
                inlateout("r6") a(2) => r6, inlateout("r7") a(3) => r7,
                inlateout("r8") a(4) => _, inlateout("r9") a(5) => _,
                inlateout("r10") a(6) => _, inlateout("r11") a(7) => _, inlateout("r12") a(8) => _,
                out("r0") _, out("ctr") _, out("xer") _, out("cr0") _, out("cr1") _,
                out("cr5") _, out("cr6") _, out("cr7") _,
                options(nostack));
        }
        (r3 as i64, [r4, r5, r6, r7])
    }

    pub fn mfmsr() -> u64 {
        let v: u64;
        // SAFETY: reads the MSR.
        unsafe { asm!("mfmsr {0}", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// MSR[LE] (Power ISA 3.1 Book III 4.2.1: MSR bit 63).
    pub const MSR_LE: u64 = 1;

    /// The byte order this vCPU runs in, found at run time.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Endianness {
        /// MSR[LE], read with mfmsr.
        pub msr_le: bool,
        /// A word stored and its first byte loaded back says little-endian.
        pub memory_le: bool,
    }

    impl Endianness {
        /// What this vCPU does now.
        pub fn probe() -> Self {
            let mut word: u32 = 0;
            // SAFETY: a local; volatile, so the compiler cannot fold the probe
            // into the byte order it compiles for.
            let first = unsafe {
                core::ptr::write_volatile(&mut word, 0x0102_0304);
                core::ptr::read_volatile((&raw const word).cast::<u8>())
            };
            Endianness {
                msr_le: mfmsr() & MSR_LE != 0,
                memory_le: first == 0x04,
            }
        }

        /// Whether both findings agree with the byte order of this build.
        pub fn matches_build(self) -> bool {
            let le = cfg!(target_endian = "little");
            self.msr_le == le && self.memory_le == le
        }
    }

    fn order_name(little: bool) -> &'static str {
        if little {
            "little"
        } else {
            "big"
        }
    }

    /// Prints `GUEST-ENDIAN <big|little> (MSR[LE]=<0|1>, memory <..>-endian,
    /// built <..>-endian)` from what [`Endianness::probe`] finds, the first
    /// word being MSR[LE]'s, and records check `endianness`: both findings
    /// agree with the build.
    pub fn report_endianness() {
        let e = Endianness::probe();
        crate::println!(
            "GUEST-ENDIAN {} (MSR[LE]={}, memory {}-endian, built {}-endian)",
            order_name(e.msr_le),
            u8::from(e.msr_le),
            order_name(e.memory_le),
            order_name(cfg!(target_endian = "little"))
        );
        check(
            "endianness",
            e.matches_build(),
            format_args!(
                "running {:?} in a {}-endian build",
                e,
                order_name(cfg!(target_endian = "little"))
            ),
        );
    }

    pub fn mftb() -> u64 {
        let v: u64;
        // SAFETY: reads the time base.
        unsafe { asm!("mftb {0}", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// Spins until `cond` holds (true) or `us` microseconds of time base
    /// (512 MHz, as on POWER9/Power10) passed (false).
    pub fn wait_for(us: u64, mut cond: impl FnMut() -> bool) -> bool {
        let start = mftb();
        while !cond() {
            if mftb().wrapping_sub(start) > us * 512 {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    pub fn mfspr_srr0() -> u64 {
        let v: u64;
        // SAFETY: reads SRR0.
        unsafe { asm!("mfspr {0}, 26", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub fn mtspr_srr0(v: u64) {
        // SAFETY: SRR0 only matters for the rfid that ends this interrupt.
        unsafe { asm!("mtspr 26, {0}", in(reg) v, options(nomem, nostack)) };
    }

    pub fn mfspr_srr1() -> u64 {
        let v: u64;
        // SAFETY: reads SRR1.
        unsafe { asm!("mfspr {0}, 27", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub fn mfspr_dsisr() -> u64 {
        let v: u64;
        // SAFETY: reads DSISR.
        unsafe { asm!("mfspr {0}, 18", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub fn mfspr_dar() -> u64 {
        let v: u64;
        // SAFETY: reads DAR.
        unsafe { asm!("mfspr {0}, 19", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub fn set_dec(v: u32) {
        // SAFETY: the guest's own decrementer.
        unsafe { asm!("mtspr 22, {0}", in(reg) u64::from(v), options(nomem, nostack)) };
    }

    pub fn set_ee(on: bool) {
        let v: u64 = if on { 0x8002 } else { 0x2 };
        // SAFETY: EE and RI only.
        unsafe { asm!("mtmsrd {0}, 1", in(reg) v, options(nostack)) };
    }

    // ---- console ----

    static VTY: AtomicUsize = AtomicUsize::new(0x7100_0000);

    pub fn put_bytes(bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            let hi = u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]));
            let lo = u64::from_be_bytes(b[8..].try_into().unwrap_or([0; 8]));
            let vty = VTY.load(Ordering::Relaxed) as u64;
            while hcall(0x58, &[vty, chunk.len() as u64, hi, lo]).0 == H_BUSY {}
        }
    }

    pub struct Console;

    impl Write for Console {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            put_bytes(s.as_bytes());
            Ok(())
        }
    }

    /// Formats a line into a buffer first so one line goes out in few hcalls and
    /// lines from several vCPUs don't interleave mid-line (each 16-byte call is
    /// atomic, the hypervisor assembles lines).
    pub fn print_fmt(args: fmt::Arguments) {
        struct Buf {
            b: [u8; 256],
            n: usize,
        }
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for &c in s.as_bytes() {
                    if self.n == self.b.len() {
                        put_bytes(&self.b);
                        self.n = 0;
                    }
                    self.b[self.n] = c;
                    self.n += 1;
                }
                Ok(())
            }
        }
        let mut b = Buf { b: [0; 256], n: 0 };
        let _ = b.write_fmt(args);
        put_bytes(&b.b[..b.n]);
    }

    #[macro_export]
    macro_rules! println {
        ($($arg:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
    }

    // ---- device tree ----

    fn be32(b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// The value of property `prop` of the first node whose path matches `path`
    /// (components compared up to the `@`; "*" matches any), e.g. `/rtas` +
    /// `power-off`, `/cpus/*` + `timebase-frequency`.
    pub fn fdt_prop(fdt: &'static [u8], path: &str, prop: &str) -> Option<&'static [u8]> {
        let off_struct = be32(fdt, 8)? as usize;
        let off_strings = be32(fdt, 12)? as usize;
        let want: heapless_path::Path = heapless_path::Path::parse(path);
        let mut stack = heapless_path::Path::new();
        let mut at = off_struct;
        loop {
            let tok = be32(fdt, at)?;
            at += 4;
            match tok {
                1 => {
                    let rest = fdt.get(at..)?;
                    let len = rest.iter().position(|&c| c == 0)?;
                    let name = core::str::from_utf8(&rest[..len]).ok()?;
                    stack.push(name);
                    at = (at + len + 4) & !3;
                }
                2 => stack.pop(),
                3 => {
                    let len = be32(fdt, at)? as usize;
                    let nameoff = be32(fdt, at + 4)? as usize;
                    let value = fdt.get(at + 8..at + 8 + len)?;
                    let nrest = fdt.get(off_strings + nameoff..)?;
                    let nlen = nrest.iter().position(|&c| c == 0)?;
                    if &nrest[..nlen] == prop.as_bytes() && stack.matches(&want) {
                        return Some(value);
                    }
                    at = (at + 8 + len + 3) & !3;
                }
                4 => {}
                _ => return None,
            }
        }
    }

    pub fn fdt_u32(fdt: &'static [u8], path: &str, prop: &str) -> Option<u32> {
        fdt_prop(fdt, path, prop).and_then(|v| be32(v, 0))
    }

    /// Number of nodes directly under `/cpus`.
    pub fn fdt_count_cpus(fdt: &'static [u8]) -> u32 {
        let Some(off_struct) = be32(fdt, 8) else {
            return 0;
        };
        let mut at = off_struct as usize;
        let (mut depth, mut in_cpus, mut n) = (0u32, false, 0u32);
        while let Some(tok) = be32(fdt, at) {
            at += 4;
            match tok {
                1 => {
                    let Some(rest) = fdt.get(at..) else { break };
                    let len = rest.iter().position(|&c| c == 0).unwrap_or(0);
                    if depth == 1 && &rest[..len] == b"cpus" {
                        in_cpus = true;
                    } else if in_cpus && depth == 2 {
                        n += 1;
                    }
                    depth += 1;
                    at = (at + len + 4) & !3;
                }
                2 => {
                    depth = depth.saturating_sub(1);
                    if depth == 1 {
                        in_cpus = false;
                    }
                }
                3 => {
                    let len = be32(fdt, at).unwrap_or(0) as usize;
                    at = (at + 8 + len + 3) & !3;
                }
                4 => {}
                _ => break,
            }
        }
        n
    }

    mod heapless_path {
        /// A path of at most 8 components, names truncated at '@'.
        pub struct Path {
            parts: [(usize, [u8; 32]); 8],
            n: usize,
        }

        impl Path {
            pub fn new() -> Self {
                Path {
                    parts: [(0, [0; 32]); 8],
                    n: 0,
                }
            }
            pub fn parse(p: &str) -> Self {
                let mut me = Path::new();
                for c in p.split('/').filter(|c| !c.is_empty()) {
                    me.push(c);
                }
                me
            }
            pub fn push(&mut self, name: &str) {
                let base = name.split('@').next().unwrap_or("");
                if self.n < 8 {
                    let mut b = [0u8; 32];
                    let l = base.len().min(32);
                    b[..l].copy_from_slice(&base.as_bytes()[..l]);
                    self.parts[self.n] = (l, b);
                }
                self.n += 1;
            }
            pub fn pop(&mut self) {
                self.n = self.n.saturating_sub(1);
            }
            /// `self` is the current node stack including the root ("").
            pub fn matches(&self, want: &Path) -> bool {
                if self.n != want.n + 1 || self.n > 8 {
                    return false;
                }
                (0..want.n).all(|i| {
                    let (wl, wb) = &want.parts[i];
                    let (l, b) = &self.parts[i + 1];
                    &wb[..*wl] == b"*" || (wl == l && wb[..*wl] == b[..*l])
                })
            }
        }
    }

    // ---- RTAS ----

    static mut RTAS_BUF: [u32; 32] = [0; 32];
    static FDT: AtomicUsize = AtomicUsize::new(0);
    static FDT_LEN: AtomicUsize = AtomicUsize::new(0);

    pub fn fdt() -> &'static [u8] {
        let (p, n) = (FDT.load(Ordering::Relaxed), FDT_LEN.load(Ordering::Relaxed));
        if p == 0 {
            return &[];
        }
        // SAFETY: set once at entry from the hypervisor's tree, which stays in memory.
        unsafe { core::slice::from_raw_parts(p as *const u8, n) }
    }

    pub fn rtas_token(name: &str) -> Option<u32> {
        fdt_u32(fdt(), "/rtas", name)
    }

    /// Makes an RTAS call through H_RTAS; returns the return words (status first).
    /// Not reentrant: one vCPU at a time (the buffer is shared).
    pub fn rtas_call_token(token: u32, args: &[u32], nret: usize) -> [i32; 8] {
        let nret = nret.min(8);
        let nargs = args.len().min(16);
        let buf = &raw mut RTAS_BUF;
        // SAFETY: callers serialise RTAS use; the buffer lives in guest memory.
        unsafe {
            let b = &mut *buf;
            b[0] = token.to_be();
            b[1] = (nargs as u32).to_be();
            b[2] = (nret as u32).to_be();
            for i in 0..nargs {
                b[3 + i] = args[i].to_be();
            }
            for i in 0..nret {
                b[3 + nargs + i] = 0xdead_beef;
            }
        }
        hcall(0xf000, &[buf as u64]);
        let mut out = [0i32; 8];
        // SAFETY: as above.
        unsafe {
            let b = &*buf;
            for i in 0..nret {
                out[i] = u32::from_be(b[3 + nargs + i]) as i32;
            }
        }
        out
    }

    static RTAS_LOCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    pub fn rtas_call(name: &str, args: &[u32], nret: usize) -> Option<[i32; 8]> {
        let t = rtas_token(name)?;
        while RTAS_LOCK.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let r = rtas_call_token(t, args, nret);
        RTAS_LOCK.store(false, Ordering::Release);
        Some(r)
    }

    /// RTAS stop-self (never returns), with its own buffer: the shared one may be
    /// in use by another vCPU.
    pub fn stop_self() -> ! {
        static mut STOP_BUF: [u32; 4] = [0; 4];
        let token = rtas_token("stop-self").unwrap_or(0);
        let buf = &raw mut STOP_BUF;
        // SAFETY: used only by the one vCPU stopping itself.
        unsafe {
            (*buf)[0] = token.to_be();
            (*buf)[1] = 0;
            (*buf)[2] = 1u32.to_be();
        }
        loop {
            hcall(0xf000, &[buf as u64]);
        }
    }

    extern "C" {
        fn guest_secondary_entry();
    }

    /// Guest real address where RTAS start-cpu should start secondaries (r3 =
    /// their stack top); they run the function given to [`set_secondary`].
    pub fn secondary_entry() -> u32 {
        guest_secondary_entry as *const () as usize as u32
    }

    static SECONDARY: AtomicUsize = AtomicUsize::new(0);

    pub fn set_secondary(f: fn() -> !) {
        SECONDARY.store(f as usize, Ordering::Release);
    }

    /// MSR a secondary vCPU was started with, as its entry recorded it (all
    /// ones when the entry could not tell: prt's own entry fixes up the byte
    /// order first). Read it in the function given to [`set_secondary`].
    pub fn secondary_entry_msr() -> u64 {
        SECONDARY_MSR.load(Ordering::Acquire) as u64
    }

    static SECONDARY_MSR: AtomicUsize = AtomicUsize::new(usize::MAX);

    #[no_mangle]
    extern "C" fn guest_secondary_start(entry_msr: u64) -> ! {
        SECONDARY_MSR.store(entry_msr as usize, Ordering::Release);
        let f = SECONDARY.load(Ordering::Acquire);
        if f != 0 {
            // SAFETY: only `set_secondary` stores here, with a `fn() -> !`.
            let f: fn() -> ! = unsafe { core::mem::transmute::<usize, fn() -> !>(f) };
            f()
        }
        stop_self()
    }

    // ---- results ----

    static PASSED: AtomicU32 = AtomicU32::new(0);
    static FAILED: AtomicU32 = AtomicU32::new(0);

    /// Records one check.
    pub fn check(name: &str, ok: bool, detail: fmt::Arguments) {
        if ok {
            PASSED.fetch_add(1, Ordering::Relaxed);
            println!("GUEST-PASS {}", name);
        } else {
            FAILED.fetch_add(1, Ordering::Relaxed);
            println!("GUEST-FAIL {}: {}", name, detail);
        }
    }

    /// Prints the summary and ends the partition: power-off when everything
    /// passed, ibm,os-term otherwise.
    pub fn finish() -> ! {
        let (p, f) = (
            PASSED.load(Ordering::Relaxed),
            FAILED.load(Ordering::Relaxed),
        );
        println!("GUEST-DONE passed={} failed={}", p, f);
        if f == 0 {
            rtas_call("power-off", &[0, 0], 1);
        } else {
            static MSG: &[u8] = b"guest checks failed\0";
            rtas_call("ibm,os-term", &[MSG.as_ptr() as u32], 1);
        }
        loop {
            hcall(0xe0, &[]);
        }
    }

    // ---- traps ----

    /// A trap handler gets the vector and the interrupted PC (SRR0, saved by the
    /// entry code; changing it changes where the guest resumes).
    pub type TrapHandler = fn(vector: u64, srr0: &mut u64) -> bool;
    static TRAP: AtomicUsize = AtomicUsize::new(0);

    /// Installs a handler for interrupts; it returns whether it handled one.
    pub fn set_trap_handler(f: TrapHandler) {
        TRAP.store(f as usize, Ordering::Release);
    }

    #[no_mangle]
    extern "C" fn guest_trap(vector: u64, srr0: &mut u64) {
        // For the report below: read before a handler's hcalls can change them.
        let (srr1, dar, dsisr) = (mfspr_srr1(), mfspr_dar(), mfspr_dsisr());
        let h = TRAP.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: only `set_trap_handler` stores here, with a `TrapHandler`.
            let f: TrapHandler = unsafe { core::mem::transmute::<usize, TrapHandler>(h) };
            if f(vector, srr0) {
                return;
            }
        }
        if vector == 0x900 {
            // A decrementer nobody asked for: H_CEDE returns with MSR[EE] set
            // (PAPR) and a vCPU's initial decrementer eventually expires. Push it
            // as far away as it goes and carry on.
            set_dec(0x7fff_ffff);
            return;
        }
        println!(
            "GUEST-FAIL trap: unexpected interrupt {:#x} at {:#x}, SRR1 {:#x}, DAR {:#x}, DSISR {:#x}",
            vector, *srr0, srr1, dar, dsisr
        );
        FAILED.fetch_add(1, Ordering::Relaxed);
        finish();
    }

    extern "Rust" {
        fn guest_main(fdt: &'static [u8]) -> !;
    }

    /// How the boot vCPU was entered: its MSR (all ones when the entry could
    /// not tell) and the address of the first instruction it ran.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EntryState {
        pub msr: u64,
        pub address: u64,
    }

    static ENTRY_MSR: AtomicUsize = AtomicUsize::new(usize::MAX);
    static ENTRY_ADDR: AtomicUsize = AtomicUsize::new(0);

    pub fn entry_state() -> EntryState {
        EntryState {
            msr: ENTRY_MSR.load(Ordering::Relaxed) as u64,
            address: ENTRY_ADDR.load(Ordering::Relaxed) as u64,
        }
    }

    /// H_SET_MODE resource 4: interrupts in this build's byte order. pSeries
    /// firmware leaves LPCR[ILE] clear (big-endian interrupts) until the
    /// client asks, as Linux does early in boot.
    pub fn set_interrupt_endianness_to_build() {
        let le = u64::from(cfg!(target_endian = "little"));
        hcall(0x31c, &[le, 4, 0, 0]);
    }

    #[no_mangle]
    extern "C" fn guest_rt_start(fdt: u64, entry_msr: u64, entry_addr: u64) -> ! {
        ENTRY_MSR.store(entry_msr as usize, Ordering::Relaxed);
        ENTRY_ADDR.store(entry_addr as usize, Ordering::Relaxed);
        set_interrupt_endianness_to_build();
        if fdt != 0 {
            // SAFETY: the hypervisor passes a device tree; its header bounds it.
            let total =
                u32::from_be(unsafe { core::ptr::read_volatile((fdt + 4) as *const u32) }) as usize;
            FDT.store(fdt as usize, Ordering::Relaxed);
            FDT_LEN.store(total.min(1 << 20), Ordering::Relaxed);
        }
        if let Some(reg) = fdt_u32(fdt_slice(), "/vdevice/vty", "reg") {
            VTY.store(reg as usize, Ordering::Relaxed);
        }
        // SAFETY: provided by the guest crate.
        unsafe { guest_main(fdt_slice()) }
    }

    fn fdt_slice() -> &'static [u8] {
        fdt()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!("GUEST-FAIL panic: {}", info.message());
        FAILED.fetch_add(1, Ordering::Relaxed);
        finish()
    }
}

#[cfg(target_arch = "powerpc64")]
pub use rt::*;

#[cfg(target_arch = "powerpc64")]
pub mod mmio;
