//! Its own translation pointed at garbage: the guest registers a process table
//! (H_REGISTER_PROC_TBL) whose entries and radix trees it fills with random or
//! half-valid values (entries pointing outside its memory, at themselves, with
//! random sizes), turns data relocation on (instruction fetch stays in real
//! mode) and loads from random effective addresses. Each load either completes
//! or raises a Data Storage interrupt in the guest (caught and skipped); one
//! well-formed mapping is checked to read the right bytes, so the attack also
//! shows the translation it corrupts is real. Loads only: a garbage mapping of
//! its own memory must not let it overwrite its canary.
use core::arch::asm;

use crate::env::Region;
use crate::fuzz::{Fuzz, Want};
use crate::rng::pattern;
use crate::trap;

const PTE_V: u64 = 1 << 63;
const PTE_L: u64 = 1 << 62;
/// R, C, privileged, read/write.
const PTE_BITS: u64 = 0x100 | 0x80 | 0x8 | 0x4 | 0x2;
/// 52-bit radix tree size (RTS = 52 - 31 = 21, split 2 | 5).
const RTS52: u64 = (2 << 61) | (5 << 5);

/// A load with data relocation on for just that instruction.
fn load_translated(ea: u64) -> u64 {
    let v: u64;
    // SAFETY: MSR[DR] is set around one load and restored; a fault on the load
    // is skipped by the trap handler (the interrupt clears DR, the return to
    // the next instruction with SRR1's DR is then undone by the restore).
    unsafe {
        asm!(
            "mfmsr {m}",
            "ori {t}, {m}, 0x10",
            "mtmsrd {t}, 0",
            "isync",
            "ld {v}, 0({a})",
            "mtmsrd {m}, 0",
            "isync",
            m = out(reg) _,
            t = out(reg) _,
            v = out(reg) v,
            a = in(reg_nonzero) ea,
            options(nostack)
        )
    };
    v
}

fn put(a: u64, v: u64) {
    // SAFETY: inside this vCPU's tables region. Radix tables are big-endian.
    unsafe { core::ptr::write_volatile(a as *mut u64, v.to_be()) }
}

fn set_pidr(v: u64) {
    crate::spr::mtspr(48, v);
}

impl Fuzz<'_> {
    /// `rounds` rounds of garbage tables and translated loads; returns (loads,
    /// faults).
    pub fn mmu(&mut self, rounds: u32) -> (u64, u64) {
        let t: Region = self.env.halves[self.cpu].tables;
        let prtb = t.start; // 4 KiB process table (PRTS 0: 256 entries)
        let root = t.start + 0x1_0000; // 64 KiB root (NLS 13)
        let l2 = t.start + 0x2_0000; // 4 KiB (NLS 9)
        let l3 = t.start + 0x2_1000; // 4 KiB (NLS 9), 2 MiB leaves
        let garbage = Region {
            start: t.start + 0x4_0000,
            end: t.end,
        };
        // No key protection in the way of the checked mapping.
        crate::spr::mtspr(13, 0);
        crate::spr::mtspr(61, 0);
        // Interrupts at their real-mode vectors (AIL 0).
        self.call(0x31c, &[0, 3, 0, 0], Want::Is(0));
        let (mut loads, mut faults) = (0u64, 0u64);
        let canary = self.env.canary;
        for round in 0..rounds {
            // A well-formed tree for PID 0: EA 0xc000... + i * 2 MiB -> a 2 MiB
            // chunk of the canary.
            let mut a = t.start;
            while a < t.start + 0x2_2000 {
                put(a, 0);
                a += 8;
            }
            put(prtb, RTS52 | root | 13);
            put(prtb + 8, 0);
            put(root, PTE_V | l2 | 9);
            put(l2, PTE_V | l3 | 9);
            let chunk = (canary.start + 0x1f_ffff) & !0x1f_ffff;
            put(l3, PTE_V | PTE_L | chunk | PTE_BITS);
            // Garbage: random words in random places, entries pointing outside
            // memory, back into the tables, or at random pages; random PIDs.
            let kind = round % 4;
            let n = 1 + self.rng.below(32);
            for _ in 0..n {
                let target = match self.rng.below(5) {
                    0 => prtb + 16 * self.rng.below(256),
                    1 => root + 8 * (1 + self.rng.below(8191)),
                    2 => l2 + 8 * (1 + self.rng.below(511)),
                    3 => l3 + 8 * (1 + self.rng.below(511)),
                    _ => garbage.start + 8 * self.rng.below((garbage.len() - 8) / 8),
                };
                let next = match self.rng.below(6) {
                    0 => self.rng.next(),
                    1 => {
                        PTE_V
                            | (self.env.mem + (self.rng.below(1 << 20) << 12))
                            | self.rng.below(32)
                    }
                    2 => PTE_V | ((1u64 << 52) - 0x1000) | 5,
                    3 => PTE_V | root | 13,
                    4 => PTE_V | PTE_L | ((self.rng.below(self.env.mem) & !0xfff) | PTE_BITS),
                    _ => {
                        PTE_V
                            | (garbage.start + (self.rng.below(garbage.len() >> 12) << 12))
                            | (5 + self.rng.below(12))
                    }
                };
                put(target, next);
                if kind == 1 {
                    // Entries for other PIDs with random roots.
                    let pid = 1 + self.rng.below(255);
                    put(
                        prtb + 16 * pid,
                        RTS52 | (self.rng.next() & 0x0fff_ffff_ffff_f000) | self.rng.below(32),
                    );
                }
            }
            if kind == 2 {
                // The PID 0 entry itself garbage.
                put(prtb, self.rng.next());
            }
            // Register (the hypervisor flushes the partition's translations).
            let size_field = 0;
            self.call(0x37c, &[0x18 | 0x4 | 0x1, prtb, 0, size_field], Want::Is(0));
            set_pidr(self.rng.below(256));
            for _ in 0..16 {
                let ea = match self.rng.below(4) {
                    0 => 0xc000_0000_0000_0000 | (self.rng.below(1 << 21) & !7),
                    1 => self.rng.next() & !7,
                    2 => self.rng.below(1 << 40) & !7,
                    _ => 0xc000_0000_0000_0000 | (self.rng.below(1 << 52) & !7),
                };
                loads += 1;
                if trap::may_fault(|| {
                    load_translated(ea);
                }) {
                    faults += 1;
                }
            }
            // The checked mapping, when the garbage left it intact.
            if kind == 0 || kind == 3 {
                set_pidr(0);
                let off = self.rng.below(0x20_0000) & !7;
                if chunk + off + 8 <= canary.end && self.intact(prtb, root, l2, l3, chunk) {
                    self.call(0x37c, &[0x18 | 0x4 | 0x1, prtb, 0, 0], Want::Is(0));
                    let mut got = 0;
                    let faulted =
                        trap::may_fault(|| got = load_translated(0xc000_0000_0000_0000 + off));
                    loads += 1;
                    let want = pattern(self.env.seed, chunk + off);
                    if faulted || got != want {
                        self.report(
                            0x37c,
                            &[prtb, chunk + off],
                            format_args!(
                                "translated load: {} {:#x}, want {:#x}",
                                if faulted { "fault," } else { "read" },
                                got,
                                want
                            ),
                        );
                    }
                }
            }
        }
        set_pidr(0);
        self.call(0x37c, &[0x10, 0, 0, 0], Want::Is(0));
        (loads, faults)
    }

    /// Whether the garbage left the checked path of PID 0 as built.
    fn intact(&self, prtb: u64, root: u64, l2: u64, l3: u64, chunk: u64) -> bool {
        let get = |a: u64| u64::from_be(crate::fuzz::peek(a));
        get(prtb) == RTS52 | root | 13
            && get(root) == PTE_V | l2 | 9
            && get(l2) == PTE_V | l3 | 9
            && get(l3) == PTE_V | PTE_L | chunk | PTE_BITS
    }
}
