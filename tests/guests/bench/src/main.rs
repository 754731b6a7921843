//! Benchmark guest: times hcall round trips from inside a partition.
//!
//! The same binary runs under Paprika (entered directly: r3 = device tree, r5 = 0)
//! and under QEMU's `-M pseries` (entered by SLOF: r5 = client interface), which
//! loads it 4 MiB higher than linked. So the code is position independent: the
//! entry computes the TOC, stack and BSS from its own address, and nothing uses
//! absolute pointers (no `core::fmt`, no trait objects).
//!
//! Output lines (`xtask bench` parses them):
//! `BENCH env=paprika|pseries`, `BENCH tb_hz=<n>`,
//! `BENCH hcall_null_ticks=<n>` (H_PROD of itself, the cheapest call both
//! implement), `BENCH hcall_full_ticks=<n>` (H_GET_CPU_CHARACTERISTICS: no side
//! effect, no lock, and not one of the hcall fast path's calls, so every call
//! takes Paprika's full exit), `BENCH put_term_char16_ticks=<n>` (H_PUT_TERM_CHAR
//! with 16 bytes), averages over `BENCH iterations=<n>` calls; for counting
//! instructions (xtask runs it once under QEMU `-icount shift=0`, where a tick is
//! a fixed number of instructions) `BENCH hcall_null_round_ticks=<n>`,
//! `BENCH hcall_full_round_ticks=<n>` and `BENCH nop_round_ticks=<n>`, the fastest
//! round of `BENCH round_calls=<n>` null hcalls, of full-exit hcalls and of the
//! same loop with a `nop` in place of `sc 1`; then `BENCH-DONE`. Under Paprika it
//! then powers off with RTAS; under pseries it spins (xtask stops QEMU).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::arch::{asm, global_asm};

    global_asm!(
        r#"
        .section .text.entry, "ax"
        .globl _start
    _start:
        /* SLOF enters big-endian: switch to little-endian first (a no-op when
           already LE; the same sequence as the hypervisor's entry). */
        tdi 0, 0, 0x48
        b 191f
        .long 0xa600607d
        .long 0x01006b69
        .long 0x00004039
        .long 0x6401417d
        .long 0x05009f42
        .long 0xa602487d
        .long 0x14004a39
        .long 0xa6035a7d
        .long 0xa6037b7d
        .long 0x2400004c
    191:
        bcl 20, 31, 1f
    1:  mflr 11
        mr 14, 3
        mr 15, 5
        ld 2, 8f - 1b(11)
        add 2, 2, 11
        ld 1, 8f + 8 - 1b(11)
        add 1, 1, 11
        ld 5, 8f + 16 - 1b(11)
        add 5, 5, 11
        ld 6, 8f + 24 - 1b(11)
        add 6, 6, 11
        li 0, 0
    2:  cmpld 5, 6
        bge 3f
        std 0, 0(5)
        addi 5, 5, 8
        b 2b
    3:  ld 7, 8f + 32 - 1b(11)
        subf 5, 7, 11
        mr 3, 14
        mr 4, 15
        li 0, 0
        stdu 0, -64(1)
        bl bench_main
        nop
    4:  b 4b
        .balign 8
    8:  .quad .TOC. - 1b
        .quad __stack_top - 1b
        .quad __bss_start - 1b
        .quad __bss_end - 1b
        .quad 1b
    "#
    );

    const H_PUT_TERM_CHAR: u64 = 0x58;
    const H_PROD: u64 = 0xe8;
    const H_GET_CPU_CHARACTERISTICS: u64 = 0x1c8;
    const H_RTAS: u64 = 0xf000;
    /// QEMU's and Paprika's vty unit address.
    const VTY: u64 = 0x7100_0000;
    const ITERATIONS: u64 = 100_000;
    /// The calls of each figure run in this many equal rounds and the fastest
    /// round's average is reported: a host that is busy for part of the run
    /// (the emulator's threads share a few host CPUs) then moves the figure
    /// much less than an average over all the calls.
    const ROUNDS: u64 = 5;
    const WARMUP: u64 = 1_000;

    /// The same instructions as `hcall` around a `nop` instead of `sc 1`: the
    /// guest's own share of a null hcall loop.
    #[inline(always)]
    fn no_call(op: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
        let ret: u64;
        // SAFETY: a `nop` with the operands and clobbers of `hcall`.
        unsafe {
            asm!("nop",
                inlateout("r3") op => ret,
                inlateout("r4") a => _, inlateout("r5") b => _,
                inlateout("r6") c => _, inlateout("r7") d => _,
                out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("ctr") _, out("xer") _, out("cr0") _,
                options(nostack));
        }
        ret as i64
    }

    #[inline(always)]
    fn hcall(op: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
        let ret: u64;
        // SAFETY: `sc 1` is the hypervisor call; the hypervisor may change the
        // volatile registers, which are all declared clobbered.
        unsafe {
            asm!("sc 1",
                inlateout("r3") op => ret,
                inlateout("r4") a => _, inlateout("r5") b => _,
                inlateout("r6") c => _, inlateout("r7") d => _,
                out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("ctr") _, out("xer") _, out("cr0") _,
                options(nostack));
        }
        ret as i64
    }

    fn mftb() -> u64 {
        let v: u64;
        // SAFETY: reads the time base.
        unsafe { asm!("mftb {0}", out(reg) v, options(nomem, nostack)) };
        v
    }

    fn put(bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
            while hcall(H_PUT_TERM_CHAR, VTY, chunk.len() as u64, hi, lo) == 1 {}
        }
    }

    fn put_num(mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        put(&buf[i..]);
    }

    fn line(key: &[u8], v: u64) {
        put(b"BENCH ");
        put(key);
        put(b"=");
        put_num(v);
        put(b"\n");
    }

    fn be32(b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Finds `/rtas/<prop>` (a u32) and `/cpus/*/timebase-frequency` in the tree.
    fn fdt_lookup(fdt: &[u8], prop: &[u8]) -> (Option<u32>, Option<u32>) {
        let (Some(off_struct), Some(off_strings)) = (be32(fdt, 8), be32(fdt, 12)) else {
            return (None, None);
        };
        let (mut at, strings) = (off_struct as usize, off_strings as usize);
        let (mut depth, mut in_rtas, mut rtas_depth) = (0usize, false, 0usize);
        let (mut token, mut tb) = (None, None);
        while let Some(tok) = be32(fdt, at) {
            at += 4;
            match tok {
                1 => {
                    let name_end = fdt[at..].iter().position(|&c| c == 0).unwrap_or(0);
                    if depth == 1 && &fdt[at..at + name_end] == b"rtas" {
                        in_rtas = true;
                        rtas_depth = depth + 1;
                    }
                    depth += 1;
                    at = (at + name_end + 1 + 3) & !3;
                }
                2 => {
                    if in_rtas && depth == rtas_depth {
                        in_rtas = false;
                    }
                    depth = depth.saturating_sub(1);
                }
                3 => {
                    let (Some(len), Some(nameoff)) = (be32(fdt, at), be32(fdt, at + 4)) else {
                        break;
                    };
                    let name_at = strings + nameoff as usize;
                    let name_end = fdt
                        .get(name_at..)
                        .and_then(|s| s.iter().position(|&c| c == 0))
                        .unwrap_or(0);
                    let name = fdt.get(name_at..name_at + name_end).unwrap_or(&[]);
                    if in_rtas && depth == rtas_depth && name == prop {
                        token = be32(fdt, at + 8);
                    }
                    if name == b"timebase-frequency" && tb.is_none() {
                        tb = be32(fdt, at + 8);
                    }
                    at = (at + 8 + len as usize + 3) & !3;
                }
                4 => {}
                _ => break,
            }
        }
        (token, tb)
    }

    fn power_off(token: u32, buf_addr: u64) {
        // RTAS argument buffer: token, nargs 2, nret 1, args 0 0, status.
        let buf = buf_addr as *mut u32;
        for (i, w) in [token, 2, 1, 0, 0, 0].iter().enumerate() {
            // SAFETY: `buf_addr` is a scratch area inside this guest's own BSS.
            unsafe { core::ptr::write_volatile(buf.add(i), w.to_be()) };
        }
        hcall(H_RTAS, buf_addr, 0, 0, 0);
    }

    static mut RTAS_BUF: [u32; 16] = [0; 16];

    /// Calls per round.
    const PER_ROUND: u64 = ITERATIONS / ROUNDS;

    /// Runs `call` ITERATIONS times in ROUNDS rounds; the fastest round's
    /// time-base ticks.
    fn best_round_total(mut call: impl FnMut()) -> u64 {
        let mut best = u64::MAX;
        for _ in 0..ROUNDS {
            let t0 = mftb();
            for _ in 0..PER_ROUND {
                call();
            }
            best = best.min(mftb() - t0);
        }
        best
    }

    /// The fastest round's average, in time-base ticks per call.
    fn best_round(call: impl FnMut()) -> u64 {
        best_round_total(call) / PER_ROUND
    }

    #[no_mangle]
    extern "C" fn bench_main(fdt: u64, client: u64, _load_offset: u64) -> ! {
        let under_paprika = client == 0;
        let tree: &[u8] = if under_paprika && fdt != 0 {
            // SAFETY: the hypervisor passes a device tree in guest memory; its
            // header's totalsize bounds it.
            let total =
                unsafe { core::ptr::read_volatile((fdt + 4) as *const u32) }.swap_bytes() as usize;
            // SAFETY: as above.
            unsafe { core::slice::from_raw_parts(fdt as *const u8, total.min(1 << 20)) }
        } else {
            &[]
        };
        let (power_off_token, tb_hz) = fdt_lookup(tree, b"power-off");
        put(b"\nBENCH env=");
        put(if under_paprika {
            b"paprika\n"
        } else {
            b"pseries\n"
        });
        line(b"tb_hz", u64::from(tb_hz.unwrap_or(512_000_000)));
        line(b"iterations", ITERATIONS);

        for _ in 0..WARMUP {
            hcall(H_PROD, 0, 0, 0, 0);
        }
        let hcall_null_round = best_round_total(|| {
            hcall(H_PROD, 0, 0, 0, 0);
        });
        line(b"hcall_null_ticks", hcall_null_round / PER_ROUND);
        let hcall_full_round = best_round_total(|| {
            hcall(H_GET_CPU_CHARACTERISTICS, 0, 0, 0, 0);
        });
        line(b"hcall_full_ticks", hcall_full_round / PER_ROUND);
        let nop_round = best_round_total(|| {
            no_call(H_PROD, 0, 0, 0, 0);
        });
        line(b"round_calls", PER_ROUND);
        line(b"hcall_null_round_ticks", hcall_null_round);
        line(b"hcall_full_round_ticks", hcall_full_round);
        line(b"nop_round_ticks", nop_round);

        // 15 visible characters and a newline per call, so the console shows lines.
        let msg = *b"paprika-bench.\n";
        let mut b = [0u8; 16];
        b[..15].copy_from_slice(&msg);
        b[15] = b'\n';
        b[14] = b'.';
        let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let put16 = best_round(|| while hcall(H_PUT_TERM_CHAR, VTY, 16, hi, lo) == 1 {});
        line(b"put_term_char16_ticks", put16);
        put(b"BENCH-DONE\n");
        if let Some(tok) = power_off_token {
            power_off(tok, (&raw mut RTAS_BUF) as u64);
        }
        loop {
            core::hint::spin_loop();
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        put(b"GUEST-FAIL bench: panic\n");
        loop {
            core::hint::spin_loop();
        }
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
