//! Structured hcall fuzzing with an exact-code oracle.
//!
//! For each implemented hcall a generator builds a valid call (valid vCPU ids,
//! LISNs, priorities, guest addresses inside memory, sizes the call takes), then
//! mutates at most one field to a value near or past a limit (addresses 0,
//! mem-1, mem-8, mem, mem+4K, 2^52, u64::MAX-7, page-straddling; sizes
//! 0, 1, 3, 8, 16, 17, ...), so every check of the handler is reached, not just
//! its first. The expected status is exact where PAPR, QEMU's pseries or
//! docs/partitions.md fix it, otherwise a set of codes; outputs are checked
//! where they are defined (loads of memory whose content is known, the fixed
//! answers of H_HOME_NODE_ASSOCIATIVITY, H_INT_GET_SOURCE_INFO, ...).
//!
//! Memory the hypervisor writes for a successful call is always this vCPU's
//! half of the scratch region or the RTAS area at the top of memory (never used
//! by this guest), so the canary and the demand-zero region stay untouched by
//! any correct hypervisor.
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use paprika_guest_rt::*;

use crate::env::{Class, Env, Region};
use crate::rng::{pattern, Rng};
pub const H_FUNC: i64 = -2;
pub const H_PARAM: i64 = -4;
pub const H_UNSUP_FLAG: i64 = -256;

/// What an hcall must answer.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    /// Exactly this status.
    Is(i64),
    /// One of these (PAPR or QEMU leave a choice, or a fix is pending).
    OneOf(&'static [i64]),
    /// Any PAPR status (random arguments).
    Status,
}

impl Want {
    fn ok(self, rc: i64) -> bool {
        match self {
            Want::Is(c) => rc == c,
            Want::OneOf(cs) => cs.contains(&rc),
            Want::Status => (-512..=1).contains(&rc) || rc == 3 || (9900..=9905).contains(&rc),
        }
    }
}

/// Calls made by both vCPUs, oracle mismatches, output mismatches.
pub static CALLS: AtomicU64 = AtomicU64::new(0);
pub static EXACT: AtomicU64 = AtomicU64::new(0);
pub static MISMATCHES: AtomicU64 = AtomicU64::new(0);
/// Set while vCPU 1 is stopped: system resets may then target everyone.
pub static ALONE: AtomicBool = AtomicBool::new(true);
/// Console lines the fuzzer may still print (its output is bounded).
pub static CONSOLE_BUDGET: AtomicU64 = AtomicU64::new(400);

const MAX_REPORTS: u64 = 40;

/// Mismatches per opcode (opcode, count), for the summary.
pub static BY_OP: [(AtomicU64, AtomicU64); 24] =
    [const { (AtomicU64::new(u64::MAX), AtomicU64::new(0)) }; 24];

/// Counts one mismatch of `op`; returns how many there were before.
fn count_by_op(op: u64) -> u64 {
    for (o, n) in &BY_OP {
        let cur = o.load(Ordering::Acquire);
        if cur == op
            || (cur == u64::MAX
                && o.compare_exchange(u64::MAX, op, Ordering::AcqRel, Ordering::Acquire)
                    .map_or_else(|now| now == op, |_| true))
        {
            return n.fetch_add(1, Ordering::Relaxed);
        }
    }
    0
}

/// Prints the mismatches per opcode.
pub fn print_by_op() {
    for (o, n) in &BY_OP {
        let op = o.load(Ordering::Acquire);
        if op != u64::MAX {
            println!(
                "hostile: mismatches of op {:#x}: {}",
                op,
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// One vCPU's fuzzer.
pub struct Fuzz<'a> {
    pub env: &'a Env,
    pub cpu: usize,
    pub rng: Rng,
    pub calls: u64,
    /// ESB pages from H_INT_GET_SOURCE_INFO (trigger, management, ...).
    pub esb: [u64; 16],
    pub nesb: usize,
}

/// The hcalls this guest knows to be implemented (everything else must be
/// H_FUNCTION, H_NOT_AVAILABLE for the hash-table resize calls).
pub fn implemented(op: u64) -> bool {
    matches!(
        op,
        0x24 | 0x28
            | 0x2c
            | 0x3c
            | 0x40
            | 0x44
            | 0x48
            | 0x4c
            | 0x50
            | 0x54
            | 0x58
            | 0x64
            | 0x68
            | 0x6c
            | 0x70
            | 0x74
            | 0xdc
            | 0xe0
            | 0xe4
            | 0xe8
            | 0x104
            // H_REG_CRQ, H_FREE_CRQ, H_SEND_CRQ, H_ENABLE_CRQ: no v-scsi adapter
            // here, so H_PARAMETER or H_NOT_FOUND by unit (docs/vscsi.md).
            | 0xfc
            | 0x100
            | 0x108
            | 0x2b0
            // H_GET_TCE, H_PUT_TCE, H_STUFF_TCE, H_PUT_TCE_INDIRECT: no DMA
            // window here, so H_PARAMETER (unknown LIOBN) whatever the arguments.
            | 0x1c
            | 0x20
            | 0x138
            | 0x13c
            // The ibmveth calls: no l-lan here, so H_PARAMETER (unknown unit).
            | 0x114
            | 0x118
            | 0x11c
            | 0x120
            | 0x130
            | 0x14c
            | 0x244
            | 0x134
            | 0x1c8
            | 0x2ec
            | 0x2fc
            | 0x300
            | 0x31c
            | 0x37c
            | 0x380
            | 0x448
            | 0xf000
            | 0xf001
            | 0xf003
            | 0x36c
            | 0x370
            | 0xef00
            | 0xef04
            | 0xef08
            | 0xef0c
            | 0xef14
    ) || (0x3a8..=0x3d0).contains(&op)
}

impl<'a> Fuzz<'a> {
    pub fn new(env: &'a Env, cpu: usize) -> Fuzz<'a> {
        Fuzz {
            env,
            cpu,
            rng: Rng::new(env.seed ^ (cpu as u64).wrapping_mul(0x1234_5678_9abc_def1)),
            calls: 0,
            esb: [0; 16],
            nesb: 0,
        }
    }

    /// Makes the call and checks its status; the outputs on success.
    pub fn call(&mut self, op: u64, args: &[u64], want: Want) -> Option<[u64; 4]> {
        let (rc, out) = hcall(op, args);
        self.calls += 1;
        CALLS.fetch_add(1, Ordering::Relaxed);
        if matches!(want, Want::Is(_)) {
            EXACT.fetch_add(1, Ordering::Relaxed);
        }
        let want = if !self.env.on(Class::Strict) && matches!(op, 0xdc | 0x37c | 0x448) {
            Want::Status
        } else {
            want
        };
        if !want.ok(rc) {
            self.report(op, args, format_args!("status {} (want {:?})", rc, want));
            return None;
        }
        (rc == 0).then_some(out)
    }

    /// Records a mismatch, printing the first few with everything needed to
    /// replay them.
    pub fn report(&mut self, op: u64, args: &[u64], what: core::fmt::Arguments) {
        let n = MISMATCHES.fetch_add(1, Ordering::Relaxed);
        // Per opcode: the first few are printed, all are counted.
        let seen = count_by_op(op);
        if n < MAX_REPORTS && seen < 3 {
            let a = |i: usize| args.get(i).copied().unwrap_or(0);
            println!(
                "GUEST-FAIL oracle: vcpu {} call {} op {:#x} args {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}: {} (seed {})",
                self.cpu,
                self.calls,
                op,
                a(0),
                a(1),
                a(2),
                a(3),
                a(4),
                a(5),
                what,
                self.env.seed
            );
        }
    }

    // ---- argument generators ----

    /// Addresses that are never a valid guest real range.
    fn bad_addr(&mut self) -> u64 {
        let m = self.env.mem;
        self.rng.pick(&[
            m,
            m + 1,
            m + 8,
            m + 0x1000,
            1 << 52,
            u64::MAX - 7,
            u64::MAX,
            1 << 63,
            self.env.tima_os,
        ])
    }

    /// A guest address with `len` bytes readable, aligned to `align`: anywhere
    /// in memory, often at the edges.
    fn src_any(&mut self, len: u64, align: u64) -> u64 {
        let e = self.env;
        let a = match self.rng.below(8) {
            0 => 0,
            1 => e.mem - len,
            2 => e.mem - len.max(8),
            3 => e.canary.start + self.rng.below(e.canary.len() - len.max(8)),
            4 => e.zero.start + self.rng.below(e.zero.len() - len.max(8)),
            5 => e.fdt.start + self.rng.below((e.fdt.len() - len.min(e.fdt.len())).max(1)),
            6 => {
                // Straddling a page boundary.
                let q = e.halves[self.cpu].quiet;
                q.start + 0x1000 - self.rng.below(len.clamp(2, 0x1000))
            }
            _ => self.rng.below(e.mem - len.max(8)),
        };
        (a & !(align - 1)).min(e.mem - len) & !(align - 1)
    }

    /// A destination this vCPU may let the hypervisor write `len` bytes to.
    fn dst_ok(&mut self, len: u64, align: u64) -> u64 {
        let e = self.env;
        // The top area; vCPU 1 not its last page, whose end is vCPU 0's for
        // RTAS buffers straddling the end of memory.
        let top = Region {
            start: e.top.start,
            end: e.top.end - if self.cpu == 0 { 0 } else { 0x1000 },
        };
        let r = if self.rng.chance(3, 4) {
            e.halves[self.cpu].quiet
        } else {
            top
        };
        let room = r.len() - len;
        let a = r.start + self.rng.below(room + 1);
        (a & !(align - 1)).max(r.start)
    }

    /// Whether memory at `a..a+len` has content this vCPU can predict: the
    /// canary, the demand-zero region or the device tree.
    fn stable(&self, a: u64, len: u64) -> bool {
        let e = self.env;
        e.canary.contains(a, len) || e.zero.contains(a, len) || e.fdt.contains(a, len)
    }

    fn vcpu(&mut self) -> u64 {
        self.rng.below(u64::from(self.env.nvcpus))
    }

    fn bad_vcpu(&mut self) -> u64 {
        let n = u64::from(self.env.nvcpus);
        self.rng.pick(&[
            n,
            n + 1,
            64,
            4096,
            u64::from(u32::MAX) - 1,
            1 << 32,
            u64::MAX - 2,
        ])
    }

    fn lisn(&mut self) -> u64 {
        let n = u64::from(self.env.nvcpus);
        if self.rng.chance(1, 4) {
            0x1000
        } else {
            self.rng.below(n)
        }
    }

    fn bad_lisn(&mut self) -> u64 {
        let n = u64::from(self.env.nvcpus);
        self.rng.pick(&[
            n,
            n + 1,
            0xfff,
            0x1001,
            0x2000,
            1 << 32,
            u64::MAX,
            0x8000_0000,
        ])
    }

    fn prio(&mut self) -> u64 {
        self.rng.below(7)
    }

    fn bad_prio(&mut self) -> u64 {
        self.rng.pick(&[7, 8, 0xfe, 0x100, 0x106, 0x1ff, u64::MAX])
    }

    /// Field index to mutate (0 = none) among `n` fields; half the calls valid.
    fn mutate(&mut self, n: u64) -> u64 {
        if self.rng.chance(1, 2) {
            0
        } else {
            1 + self.rng.below(n)
        }
    }

    // ---- one structured call ----

    /// Makes one call of a random implemented hcall.
    pub fn one(&mut self) {
        match self.rng.below(40) {
            0 => self.put_term_char(),
            1 => self.get_term_char(),
            2 => {
                self.call(0x300, &[], Want::OneOf(&[0, H_HARDWARE]));
            }
            3 | 4 => self.set_mode(),
            5 => {
                let v = self.rng.next();
                self.call(0x24, &[v], Want::Is(0));
            }
            6 if self.env.on(Class::Dawr) => self.dabr(),
            7 => self.page_init(),
            8 | 9 => self.ci_load(),
            10 => self.ci_store(),
            11 => {
                let op = self.rng.pick(&[0x4c, 0x50]);
                let a = [self.rng.next(), self.rng.next()];
                self.call(op, &a, Want::Is(0));
            }
            12 | 13 => self.xics(),
            14 => self.vpa(),
            15 => self.cede(),
            16 => self.prod_confer(),
            17 => {
                self.call(0x1c8, &[], Want::Is(0));
            }
            18 => self.proc_tbl(),
            19 => self.sys_reset(),
            20 => self.home_node(),
            21 => self.vio_signal(),
            22 => self.rpt_invalidate(),
            23..=30 => self.xive(),
            31 | 32 => self.memop(),
            33 => self.update_dt(),
            34 => self.unimplemented_known(),
            _ => self.ci_load(),
        }
    }

    fn put_term_char(&mut self) {
        let vty = self.env.vty;
        let mut term = if self.rng.chance(1, 2) { 0 } else { vty };
        let mut len = 0;
        let (mut hi, mut lo) = (self.rng.next(), self.rng.next());
        let want = match self.mutate(2) {
            1 => {
                term = self.rng.pick(&[1, vty + 1, vty - 1, u64::MAX, 0x7100_0001]);
                Want::Is(H_PARAM)
            }
            2 => {
                len = self.rng.pick(&[17, 18, 255, 1 << 32, u64::MAX]);
                Want::Is(H_PARAM)
            }
            _ => {
                // Output only while the budget lasts, printable only.
                if self.env.on(Class::Console)
                    && self.rng.chance(1, 8)
                    && CONSOLE_BUDGET
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_ok()
                {
                    len = 16;
                    hi = u64::from_be_bytes(*b"hostile ");
                    lo = u64::from_be_bytes([
                        b'v',
                        b'0' + self.cpu as u8,
                        b' ',
                        b'a' + (self.rng.below(26) as u8),
                        b'a' + (self.rng.below(26) as u8),
                        b'.',
                        b'.',
                        b'\n',
                    ]);
                }
                // H_BUSY: a console that throttles a flooding partition.
                Want::OneOf(&[0, 1])
            }
        };
        self.call(0x58, &[term, len, hi, lo], want);
    }

    fn get_term_char(&mut self) {
        let term = if self.rng.chance(1, 3) {
            self.rng.pick(&[1, self.env.vty + 1, u64::MAX])
        } else {
            self.rng.pick(&[0, self.env.vty])
        };
        let want = if term == 0 || term == self.env.vty {
            Want::Is(0)
        } else {
            Want::Is(H_PARAM)
        };
        if let Some(out) = self.call(0x54, &[term], want) {
            if out[0] > 16 {
                self.report(0x54, &[term], format_args!("length {} > 16", out[0]));
            }
        }
    }

    fn set_mode(&mut self) {
        let res = self.rng.pick(&[1u64, 2, 3, 3, 4, 4, 5, 0, 6, 1 << 40]);
        let mut a = [0u64; 4];
        a[1] = res;
        let m = self.mutate(3);
        let want = match res {
            4 | 3 => {
                // Interrupt endianness (only little-endian, this guest's own) or AIL.
                a[0] = if res == 4 { 1 } else { self.rng.pick(&[0, 3]) };
                match m {
                    1 => {
                        a[0] = if res == 4 {
                            self.rng.pick(&[2, 3, 0x100, u64::MAX])
                        } else {
                            self.rng.pick(&[1, 2, 4, 0x103, u64::MAX])
                        };
                        Want::Is(H_UNSUP_FLAG)
                    }
                    2 => {
                        a[2] = 1 + self.rng.below(u64::MAX - 1);
                        Want::Is(crate::fuzz::H_P3)
                    }
                    3 => {
                        a[3] = 1 + self.rng.below(u64::MAX - 1);
                        Want::Is(H_P4)
                    }
                    _ => Want::Is(0),
                }
            }
            1 => {
                // CIABR: never matching this guest's code (addresses in the canary,
                // or problem state only); a hit is cleared by the trap handler.
                let ea = (self.env.canary.start + self.rng.below(0x10_0000)) & !3;
                a[2] = ea | self.rng.pick(&[0, 1, 2]);
                match m {
                    1 => {
                        a[0] = self.rng.pick(&[1, 2, 3, u64::MAX]);
                        Want::Is(H_UNSUP_FLAG)
                    }
                    2 => {
                        a[3] = 1 + self.rng.below(u64::MAX - 1);
                        Want::Is(H_P4)
                    }
                    3 => {
                        a[2] = ea | 3;
                        Want::Is(crate::fuzz::H_P3)
                    }
                    _ => Want::Is(0),
                }
            }
            2 if self.env.on(Class::Dawr) => {
                // DAWR0 (refused on POWER9 before DD2.3 as KVM does: H_P2).
                a[2] = (self.env.canary.start + self.rng.below(0x10_0000)) & !7;
                a[3] = self.rng.below(0x80) & !0x4;
                match m {
                    1 => {
                        a[0] = self.rng.pick(&[1, 2, u64::MAX]);
                        Want::OneOf(&[H_UNSUP_FLAG, crate::fuzz::H_P2])
                    }
                    2 => {
                        a[3] |= 0x4;
                        Want::OneOf(&[H_P4, crate::fuzz::H_P2])
                    }
                    _ => Want::OneOf(&[0, crate::fuzz::H_P2]),
                }
            }
            2 => return,
            _ => Want::Is(crate::fuzz::H_P2),
        };
        if res == 4 && m == 0 && ALONE.load(Ordering::Acquire) && self.rng.chance(1, 4) {
            // Big-endian interrupts and straight back, while the other vCPU is
            // stopped (the setting is the partition's): nothing can interrupt
            // between the two calls (MSR[EE] off, no system reset pending).
            self.call(0x31c, &[0, 4, 0, 0], Want::Is(0));
        }
        self.call(0x31c, &a, want);
    }

    fn dabr(&mut self) {
        let ea = (self.env.canary.start + self.rng.below(0x10_0000)) & !7;
        if self.rng.chance(1, 2) {
            let v = ea | self.rng.below(8);
            self.call(0x28, &[v], Want::OneOf(&[0, H_HARDWARE]));
        } else if self.rng.chance(1, 2) {
            let x = self.rng.pick(&[1, 2, 3, 9, 10, 11]);
            self.call(0x134, &[ea | 3, x], Want::OneOf(&[0, H_HARDWARE]));
        } else {
            let x = self.rng.pick(&[0, 4, 5, 6, 8, 0x10, 0x13, u64::MAX]);
            self.call(0x134, &[ea | 3, x], Want::OneOf(&[H_PARAM, H_HARDWARE]));
        }
    }

    fn page_init(&mut self) {
        const ICI: u64 = 1 << (63 - 40);
        const ICS: u64 = 1 << (63 - 41);
        const COPY: u64 = 1 << (63 - 49);
        const ZERO: u64 = 1 << (63 - 48);
        let mut flags = self.rng.pick(&[0, ZERO, COPY, ZERO, COPY]);
        if self.rng.chance(1, 3) {
            flags |= self.rng.pick(&[ICI, ICS, ICI | ICS]);
        }
        // A destination page: never page 0 (this guest's vectors).
        let mut dst = (self.dst_ok(0x1000, 0x1000) & !0xfff).max(0x1000);
        let mut src = self.src_any(0x1000, 0x1000);
        let want = match self.mutate(3) {
            1 => {
                flags |= 1 << self.rng.pick(&[0u64, 5, 20, 30, 40, 62]);
                if flags & (ICI | ICS | COPY | ZERO) == flags {
                    flags |= 1;
                }
                Want::Is(H_PARAM)
            }
            2 => {
                dst = if self.rng.chance(1, 2) {
                    dst + self.rng.pick(&[8, 0x800, 0xff8])
                } else {
                    self.bad_addr() & !0xfff
                };
                Want::Is(H_PARAM)
            }
            3 if flags & COPY != 0 => {
                src = if self.rng.chance(1, 2) {
                    src | 0x80
                } else {
                    self.bad_addr() & !0xfff
                };
                Want::Is(H_PARAM)
            }
            _ => Want::Is(0),
        };
        if self.call(0x2c, &[flags, dst, src], want).is_some() {
            let quiet = self.env.halves[self.cpu].quiet;
            if !quiet.contains(dst, 0x1000) {
                return;
            }
            let copy = flags & COPY != 0;
            if copy && !self.stable(src, 0x1000) && !quiet.contains(src, 0x1000) {
                return;
            }
            for off in (0..0x1000).step_by(8) {
                let got = peek(dst + off);
                let want = if copy {
                    if src == dst {
                        got
                    } else {
                        peek(src + off)
                    }
                } else if flags & ZERO != 0 {
                    0
                } else {
                    got
                };
                if got != want {
                    self.report(
                        0x2c,
                        &[flags, dst, src],
                        format_args!("word at +{:#x} is {:#x}, want {:#x}", off, got, want),
                    );
                    break;
                }
            }
        }
    }

    fn ci_size(&mut self) -> u64 {
        self.rng.pick(&[1, 2, 4, 8])
    }

    fn bad_ci_size(&mut self) -> u64 {
        self.rng.pick(&[0, 3, 5, 6, 7, 9, 16, 17, u64::MAX])
    }

    fn ci_load(&mut self) {
        let op = self.rng.pick(&[0x3c, 0x44]);
        let mut size = self.ci_size();
        let mut addr = self.src_any(size, size);
        let want = match self.mutate(2) {
            1 => {
                size = self.bad_ci_size();
                Want::Is(H_PARAM)
            }
            2 => {
                if size > 1 && self.rng.chance(1, 2) {
                    addr += self.rng.below(size - 1) + 1;
                } else {
                    addr = self.bad_addr() & !(size - 1);
                    if addr < self.env.mem {
                        addr = self.env.mem;
                    }
                }
                Want::Is(H_PARAM)
            }
            _ => Want::Is(0),
        };
        if let Some(out) = self.call(op, &[size, addr], want) {
            if self.stable(addr, size) {
                let mut v = 0u64;
                for i in 0..size {
                    v = (v << 8) | u64::from(peek_u8(addr + i));
                }
                if out[0] != v {
                    self.report(
                        op,
                        &[size, addr],
                        format_args!("loaded {:#x}, memory holds {:#x}", out[0], v),
                    );
                }
            }
        }
    }

    fn ci_store(&mut self) {
        let op = self.rng.pick(&[0x40, 0x48]);
        let mut size = self.ci_size();
        let mut addr = self.dst_ok(size, size);
        let val = self.rng.next();
        let want = match self.mutate(2) {
            1 => {
                size = self.bad_ci_size();
                Want::Is(H_PARAM)
            }
            2 => {
                if size > 1 && self.rng.chance(1, 2) {
                    addr += 1;
                } else {
                    addr = self.bad_addr() & !(size - 1);
                    if addr < self.env.mem {
                        addr = self.env.mem;
                    }
                }
                Want::Is(H_PARAM)
            }
            _ => Want::Is(0),
        };
        if self.call(op, &[size, addr, val], want).is_some()
            && self.env.halves[self.cpu].quiet.contains(addr, size)
        {
            for i in 0..size {
                let want = (val >> (8 * (size - 1 - i))) as u8;
                if peek_u8(addr + i) != want {
                    self.report(
                        op,
                        &[size, addr, val],
                        format_args!("byte {} not stored", i),
                    );
                    break;
                }
            }
        }
    }

    fn xics(&mut self) {
        match self.rng.below(6) {
            0 => {
                let bad = self.rng.chance(1, 3);
                let cppr = if bad {
                    self.rng.pick(&[0x100, 0x1ff, u64::MAX])
                } else {
                    self.rng.below(0x100)
                };
                self.call(0x68, &[cppr], Want::Is(if bad { H_PARAM } else { 0 }));
            }
            1 => {
                let (mut server, mut mfrr) = (self.vcpu(), self.rng.below(0x100));
                let want = match self.mutate(2) {
                    1 => {
                        server = self.bad_vcpu();
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        mfrr = self.rng.pick(&[0x100, 0x1ff, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    _ => Want::Is(0),
                };
                self.call(0x6c, &[server, mfrr], want);
            }
            2 => {
                let bad = self.rng.chance(1, 3);
                let server = if bad { self.bad_vcpu() } else { self.vcpu() };
                let want = Want::Is(if bad { H_PARAM } else { 0 });
                if let Some(out) = self.call(0x70, &[server], want) {
                    if out[1] > 0xff || !valid_xisr(out[0] & 0xff_ffff) {
                        self.report(0x70, &[server], format_args!("xirr/mfrr {:#x?}", out));
                    }
                }
            }
            3 => {
                let op = self.rng.pick(&[0x74, 0x2fc]);
                if let Some(out) = self.call(op, &[], Want::Is(0)) {
                    if !valid_xisr(out[0] & 0xff_ffff) || out[0] > u64::from(u32::MAX) {
                        self.report(op, &[], format_args!("xirr {:#x}", out[0]));
                    }
                }
            }
            _ => {
                let cppr = self.rng.below(0x100) << 24;
                let good = self.rng.pick(&[0u64, 2, 0x1000]);
                let (xirr, want) = if self.rng.chance(1, 2) {
                    (cppr | good, Want::Is(0))
                } else {
                    let bad = self.rng.pick(&[1u64, 3, 0xfff, 0x1001, 0xff_ffff]);
                    let xirr = if self.rng.chance(1, 4) {
                        (1 << 32) | good
                    } else {
                        cppr | bad
                    };
                    (xirr, Want::Is(H_PARAM))
                };
                self.call(0x64, &[xirr], want);
            }
        }
    }

    fn vpa(&mut self) {
        let misc = self.env.halves[self.cpu].misc;
        let sub = self.rng.pick(&[1u64, 1, 1, 2, 3, 5, 6, 7]);
        let mut flags = sub << (63 - 18);
        let mut proc = self.vcpu();
        // VPAs in the first half of the pages, DTLs and SLB shadows in the
        // second: the hypervisor writes a DTL entry at every dispatch of the
        // vCPU it belongs to (the other vCPU, racing), which must not land on
        // the size field of a VPA this call registers.
        let pages = (misc.len() / 0x1000).max(2);
        let page = if sub == 1 {
            misc.start + self.rng.below(pages / 2) * 0x1000
        } else {
            misc.start + (pages / 2 + self.rng.below(pages - pages / 2)) * 0x1000
        };
        let off = self.rng.below(28) * 128; // up to 3456: 640 bytes fit in the page
        let mut addr = page + off;
        let mut size: u64 = 640 + self.rng.below((0x1000 - off - 640) / 8 + 1) * 8;
        let m = self.mutate(4);
        let want = match (m, sub) {
            (1, _) => {
                if self.rng.chance(1, 2) {
                    flags = self.rng.pick(&[0u64, 4]) << (63 - 18);
                    Want::Is(H_PARAM)
                } else {
                    // A bit outside the subfunction: QEMU compares the whole
                    // value (H_PARAMETER), KVM decodes the subfunction only.
                    flags |= 1 << self.rng.pick(&[0u64, 8, 40, 47, 63]);
                    Want::OneOf(&[H_PARAM, 0, H_RESOURCE])
                }
            }
            (2, _) => {
                proc = self.bad_vcpu();
                Want::Is(H_PARAM)
            }
            (3, 1..=3) => {
                match self.rng.below(4) {
                    0 => addr += self.rng.pick(&[8, 64, 127]),
                    1 => addr = self.bad_addr() & !127,
                    2 => addr = self.env.mem - 128,
                    _ => {
                        // Crossing 4 KiB.
                        addr = page + 0xf80;
                    }
                }
                if sub == 1 {
                    Want::Is(H_PARAM)
                } else if addr >= self.env.mem {
                    Want::OneOf(&[H_PARAM, H_RESOURCE])
                } else {
                    // DTL and SLB shadow areas have no alignment or 4 KiB rule
                    // (QEMU checks their size and that a VPA is registered).
                    Want::OneOf(&[0, H_RESOURCE, H_PARAM])
                }
            }
            (4, 1) => {
                size = self.rng.pick(&[0, 1, 639]);
                Want::Is(H_PARAM)
            }
            (_, 1) => Want::Is(0),
            (_, 2 | 3) => Want::OneOf(&[0, H_RESOURCE, H_PARAM]),
            _ => Want::OneOf(&[0, H_RESOURCE]),
        };
        if misc.contains(addr, 8) {
            poke_u8(addr + 4, (size >> 8) as u8);
            poke_u8(addr + 5, size as u8);
        }
        self.call(0xdc, &[flags, proc, addr], want);
    }

    fn cede(&mut self) {
        set_dec(1000 + self.rng.below(20_000) as u32);
        self.call(0xe0, &[], Want::Is(0));
        set_ee(false);
    }

    fn prod_confer(&mut self) {
        let op = self.rng.pick(&[0xe8u64, 0xe4]);
        let bad = self.rng.chance(1, 3);
        let target = if bad {
            self.bad_vcpu()
        } else if op == 0xe4 && self.rng.chance(1, 3) {
            self.rng.pick(&[u64::MAX, u64::from(u32::MAX)])
        } else {
            self.vcpu()
        };
        let bad = bad && !(op == 0xe4 && (target == u64::MAX || target == u64::from(u32::MAX)));
        self.call(op, &[target], Want::Is(if bad { H_PARAM } else { 0 }));
    }

    fn proc_tbl(&mut self) {
        const NEW: u64 = 0x18;
        const RADIX: u64 = 0x04;
        const GTSE: u64 = 0x01;
        let tables = self.env.halves[self.cpu].tables;
        if self.rng.chance(1, 6) {
            self.call(0x37c, &[0x10, 0, 0, 0], Want::Is(0));
            return;
        }
        let mut flags = NEW | RADIX | if self.rng.chance(1, 2) { GTSE } else { 0 };
        let ts = self.rng.below(5);
        let mut base = tables.start;
        let mut psize = 0;
        let mut tsize = ts;
        let want = match self.mutate(4) {
            1 => {
                flags = self.rng.pick(&[
                    NEW,
                    0x08 | RADIX,
                    RADIX,
                    NEW | 0x02,
                    NEW | 0x06,
                    flags | 0x20,
                    flags | (1 << 40),
                ]);
                Want::Is(H_PARAM)
            }
            2 => {
                base = if self.rng.chance(1, 2) {
                    base + self.rng.pick(&[0x8, 0x800])
                } else {
                    self.bad_addr() & !0xffff
                };
                Want::Is(crate::fuzz::H_P2)
            }
            3 => {
                psize = self.rng.pick(&[1, 12, 16, u64::MAX]);
                Want::Is(crate::fuzz::H_P3)
            }
            4 => {
                tsize = self.rng.pick(&[25, 26, 63, u64::MAX]);
                Want::Is(H_P4)
            }
            _ => Want::Is(0),
        };
        self.call(0x37c, &[flags, base, psize, tsize], want);
    }

    fn sys_reset(&mut self) {
        let me = self.cpu as u64;
        let alone = ALONE.load(Ordering::Acquire);
        let (target, want) = if self.rng.chance(1, 2) {
            let t = if alone {
                self.rng.pick(&[me, u64::MAX, u64::MAX - 1])
            } else {
                me
            };
            (t, Want::Is(0))
        } else {
            let n = u64::from(self.env.nvcpus);
            let t = self.rng.pick(&[
                u64::MAX - 2,
                1 << 63,
                n,
                n + 7,
                1 << 40,
                u64::from(u32::MAX),
            ]);
            (t, Want::Is(H_PARAM))
        };
        self.call(0x380, &[target], want);
    }

    fn home_node(&mut self) {
        let (mut flags, mut id) = (1u64, self.vcpu());
        let want = match self.mutate(2) {
            1 => {
                flags = self.rng.pick(&[0, 2, 3, u64::MAX]);
                Want::Is(H_FUNC)
            }
            2 => {
                id = self.bad_vcpu();
                Want::Is(crate::fuzz::H_P2)
            }
            _ => Want::Is(0),
        };
        if let Some(out) = self.call(0x2ec, &[flags, id], want) {
            let expect = [0, 0, (id << 32) | 0xffff_ffff, u64::MAX];
            if out != expect {
                self.report(0x2ec, &[flags, id], format_args!("domains {:#x?}", out));
            }
        }
    }

    fn vio_signal(&mut self) {
        let (mut unit, mut mode) = (self.env.vty, self.rng.below(2));
        let want = match self.mutate(2) {
            1 => {
                unit = self.rng.pick(&[0, 1, self.env.vty + 1, u64::MAX]);
                Want::Is(H_PARAM)
            }
            2 => {
                mode = self.rng.pick(&[2, 3, 0x100, u64::MAX]);
                Want::Is(H_PARAM)
            }
            _ => Want::Is(0),
        };
        self.call(0x104, &[unit, mode], want);
    }

    fn rpt_invalidate(&mut self) {
        // Types (Linux hvcall.h): NESTED 1, TLB 2, PWC 4, PRT 8; target CMMU 1.
        // Codes as KVM-HV (docs/partitions.md): end < start H_P5 first, then
        // NESTED H_FUNCTION (no nesting offered); other bits and the target
        // are not checked there either, so they flush.
        let pid = self.rng.below(1 << 20);
        let (mut target, mut kind) = (1u64, self.rng.pick(&[2u64, 4, 8, 6, 0xa, 0xc, 0xe]));
        // Page sizes (4K 1, 64K 2, 2M 4, 1G 8, all -1) and a range.
        let sizes = self.rng.pick(&[1u64, 2, 4, 8, 0xf, u64::MAX]);
        let (mut start, mut end) = if self.rng.chance(1, 2) {
            (0, u64::MAX)
        } else {
            let s = self.rng.below(1 << 40) & !0xffff;
            (s, s + 0x1_0000)
        };
        match self.mutate(3) {
            1 => target = self.rng.pick(&[0, 0x100, 1 << 40, u64::MAX]),
            2 => {
                kind = self
                    .rng
                    .pick(&[0u64, 1, 0x10, 0x1e, 0xf, 1 << 40, u64::MAX])
            }
            3 => (start, end) = (end, start.wrapping_sub(1)),
            _ => {}
        }
        let want = if end < start {
            Want::Is(crate::fuzz::H_P5)
        } else if kind & 1 != 0 {
            Want::Is(H_FUNC)
        } else {
            Want::Is(0)
        };
        let a = [pid, target, kind, sizes, start, end];
        self.call(0x448, &a, want);
    }

    fn xive(&mut self) {
        let p2 = crate::fuzz::H_P2;
        let p3 = crate::fuzz::H_P3;
        match self.rng.below(12) {
            0 | 1 => {
                let (mut flags, mut lisn) = (0, self.lisn());
                let want = match self.mutate(2) {
                    1 => {
                        flags = self.rng.pick(&[1, 2, 0x10, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        lisn = self.bad_lisn();
                        Want::Is(p2)
                    }
                    _ => Want::Is(0),
                };
                if let Some(out) = self.call(0x3a8, &[flags, lisn], want) {
                    let lsi = out[0] & 0x4 != 0;
                    let ok = if lsi {
                        out[1] == u64::MAX && out[2] == u64::MAX
                    } else {
                        out[1] == out[2] + 0x1_0000 && out[3] == 16 && out[0] & !0xf == 0
                    };
                    if !ok {
                        self.report(0x3a8, &[flags, lisn], format_args!("info {:#x?}", out));
                    } else if !lsi && self.nesb + 2 <= self.esb.len() && !self.esb.contains(&out[2])
                    {
                        self.esb[self.nesb] = out[2];
                        self.esb[self.nesb + 1] = out[1];
                        self.nesb += 2;
                    }
                }
            }
            2 | 3 => {
                let mut a = [
                    self.rng.below(4),
                    self.lisn(),
                    self.vcpu(),
                    if self.rng.chance(1, 4) {
                        0xff
                    } else {
                        self.prio()
                    },
                    self.rng.next(),
                ];
                let want = match self.mutate(4) {
                    1 => {
                        a[0] = self.rng.pick(&[4, 7, 0x10, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        a[1] = self.bad_lisn();
                        Want::Is(p2)
                    }
                    3 if a[3] != 0xff => {
                        a[2] = self.bad_vcpu();
                        Want::Is(p3)
                    }
                    4 => {
                        a[3] = self.bad_prio();
                        Want::Is(H_P4)
                    }
                    _ => Want::Is(0),
                };
                self.call(0x3ac, &a, want);
            }
            4 => {
                let (mut flags, mut lisn) = (0, self.lisn());
                let want = match self.mutate(2) {
                    1 => {
                        flags = self.rng.pick(&[1, 2, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        lisn = self.bad_lisn();
                        Want::Is(p2)
                    }
                    _ => Want::Is(0),
                };
                if let Some(out) = self.call(0x3b0, &[flags, lisn], want) {
                    let n = u64::from(self.env.nvcpus);
                    if out[0] >= n || (out[1] > 6 && out[1] != 0xff) || out[2] > 0x7fff_ffff {
                        self.report(0x3b0, &[flags, lisn], format_args!("config {:#x?}", out));
                    }
                }
            }
            5 => {
                let mut a = [0, self.vcpu(), self.prio()];
                let want = match self.mutate(3) {
                    1 => {
                        a[0] = self.rng.pick(&[1, 2, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        a[1] = self.bad_vcpu();
                        Want::Is(p2)
                    }
                    3 => {
                        a[2] = self.bad_prio();
                        Want::Is(p3)
                    }
                    _ => Want::Is(0),
                };
                if let Some(out) = self.call(0x3b4, &a, want) {
                    if out[1] != 16 {
                        self.report(0x3b4, &a, format_args!("info {:#x?}", out));
                    }
                }
            }
            6 | 7 => {
                let queues = self.env.halves[self.cpu].queues;
                let qsize = self.rng.pick(&[0u64, 12, 16, 16]);
                let slot = self.rng.below(queues.len() >> 16);
                let mut a = [
                    self.rng.below(2),
                    self.vcpu(),
                    self.prio(),
                    queues.start + (slot << 16),
                    qsize,
                ];
                let want = match self.mutate(5) {
                    1 => {
                        a[0] = self.rng.pick(&[2, 3, 0x10, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        a[1] = self.bad_vcpu();
                        Want::Is(p2)
                    }
                    3 => {
                        a[2] = self.bad_prio();
                        Want::Is(p3)
                    }
                    4 if qsize != 0 => {
                        a[3] = match self.rng.below(3) {
                            0 => {
                                a[3] + self
                                    .rng
                                    .pick(&[4, 0x800, 0x1000 * (qsize == 16) as u64 + 8])
                            }
                            1 => self.bad_addr() & !0xffff,
                            _ => self.env.mem - (1 << qsize) / 2,
                        };
                        Want::Is(H_P4)
                    }
                    5 => {
                        a[4] = self.rng.pick(&[1, 11, 13, 15, 17, 21, 24, u64::MAX]);
                        Want::Is(H_P5)
                    }
                    _ => Want::Is(0),
                };
                self.call(0x3b8, &a, want);
            }
            8 => {
                let mut a = [self.rng.below(2), self.vcpu(), self.prio()];
                let want = match self.mutate(3) {
                    1 => {
                        a[0] = self.rng.pick(&[2, 3, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        a[1] = self.bad_vcpu();
                        Want::Is(p2)
                    }
                    3 => {
                        a[2] = self.bad_prio();
                        Want::Is(p3)
                    }
                    _ => Want::Is(0),
                };
                if let Some(out) = self.call(0x3bc, &a, want) {
                    if !matches!(out[2], 0 | 12 | 16) {
                        self.report(0x3bc, &a, format_args!("config {:#x?}", out));
                    }
                }
            }
            9 => {
                let op = self.rng.pick(&[0x3c0u64, 0x3c4]);
                let a = [self.rng.next(), self.rng.next(), self.rng.next()];
                self.call(op, &a, Want::Is(H_FUNC));
            }
            10 => {
                let mut a = [
                    self.rng.below(2),
                    self.lisn(),
                    self.rng
                        .pick(&[0x0, 0x400, 0x800, 0xc00, 0xd00, 0xe00, 0xf00])
                        + self.rng.below(2) * self.rng.below(0x1_0000),
                    self.rng.next(),
                ];
                a[2] &= 0xffff;
                let want = match self.mutate(3) {
                    1 => {
                        a[0] = self.rng.pick(&[2, 3, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 => {
                        a[1] = self.bad_lisn();
                        Want::Is(p2)
                    }
                    3 => {
                        a[2] = self.rng.pick(&[0x1_0000, 0x1_0c00, 1 << 32, u64::MAX]);
                        Want::Is(p3)
                    }
                    _ => Want::Is(0),
                };
                self.call(0x3c8, &a, want);
            }
            _ => {
                let op = self.rng.pick(&[0x3ccu64, 0x3d0, 0x3cc]);
                let mut a = [0, self.lisn()];
                let want = match self.mutate(2) {
                    1 => {
                        a[0] = self.rng.pick(&[1, 2, u64::MAX]);
                        Want::Is(H_PARAM)
                    }
                    2 if op == 0x3cc => {
                        a[1] = self.bad_lisn();
                        Want::Is(p2)
                    }
                    _ => Want::Is(0),
                };
                self.call(op, &a, want);
            }
        }
    }

    fn memop(&mut self) {
        let quiet = self.env.halves[self.cpu].quiet;
        let esize = self.rng.below(4);
        let count = self.rng.pick(&[0, 1, 2, 3, 8, 16, 17, 64, 512]) >> esize.min(1);
        let len = count << esize;
        let mut dst = self.dst_ok(len.max(8), 1 << esize);
        let mut src = self.src_any(len.max(8), 1 << esize);
        let mut op = self.rng.below(2);
        let mut a_count = count;
        let mut a_esize = esize;
        let want = match self.mutate(5) {
            1 => {
                a_esize = self.rng.pick(&[4, 5, 64, u64::MAX]);
                Want::Is(H_PARAM)
            }
            2 => {
                a_count = self
                    .rng
                    .pick(&[0x8000_0001, 1 << 40, u64::MAX, 0x8000_0000]);
                if a_count == 0x8000_0000 && esize == 0 && self.env.in_mem(dst, 0x8000_0000) {
                    a_count = u64::MAX;
                }
                Want::Is(H_PARAM)
            }
            3 => {
                op = self.rng.pick(&[2, 3, u64::MAX]);
                Want::Is(H_PARAM)
            }
            4 => {
                if esize > 0 && self.rng.chance(1, 2) {
                    dst += 1;
                } else {
                    dst = self.bad_addr() & !7;
                    if len == 0 && dst <= self.env.mem {
                        dst = self.env.mem + 0x1000;
                    }
                }
                Want::Is(H_PARAM)
            }
            5 => {
                if esize > 0 && self.rng.chance(1, 2) {
                    src += 1;
                } else if len > 8 {
                    // Straddling the end of memory.
                    src = (self.env.mem - (len / 2)) & !((1 << esize) - 1);
                } else {
                    src = self.bad_addr() & !7;
                    if src <= self.env.mem {
                        src = self.env.mem + 0x1000;
                    }
                }
                Want::Is(H_PARAM)
            }
            _ => Want::Is(0),
        };
        let args = [dst, src, a_esize, a_count, op];
        if self.call(0xf001, &args, want).is_some()
            && quiet.contains(dst, len)
            && self.stable(src, len)
        {
            for i in 0..len {
                let s = peek_u8(src + i);
                let want = if op == 1 { !s } else { s };
                if peek_u8(dst + i) != want {
                    self.report(0xf001, &args, format_args!("byte {} not copied", i));
                    break;
                }
            }
        }
    }

    fn update_dt(&mut self) {
        let misc = self.env.halves[self.cpu].misc;
        let fake = misc.start + 0x1000 * self.rng.below(misc.len() / 0x1000) + 0x40;
        let (mut addr, mut magic, mut size) = (fake, 0xd00d_feedu32, 40 + self.rng.below(0x1000));
        let want = match self.mutate(3) {
            1 => {
                addr = if self.rng.chance(1, 2) {
                    self.bad_addr()
                } else {
                    self.env.mem - self.rng.below(8)
                };
                Want::Is(H_PARAM)
            }
            2 => {
                magic = self.rng.pick(&[0, 0xedfe_0dd0, 0xd00d_feee]);
                Want::Is(H_PARAM)
            }
            3 => {
                size = self
                    .rng
                    .pick(&[0, 39, (1 << 20) + 1, 0xffff_ffff, self.env.mem]);
                Want::Is(H_PARAM)
            }
            _ => {
                if self.rng.chance(1, 4) {
                    addr = self.env.fdt.start;
                }
                Want::Is(0)
            }
        };
        if misc.contains(fake, 8) {
            for (i, b) in magic
                .to_be_bytes()
                .iter()
                .chain((size as u32).to_be_bytes().iter())
                .enumerate()
            {
                poke_u8(fake + i as u64, *b);
            }
        }
        self.call(0xf003, &[addr], want);
    }

    /// Calls QEMU registers that Paprika refuses, with their documented answers.
    fn unimplemented_known(&mut self) {
        let (op, want) = self.rng.pick(&[
            (0x04u64, H_FUNC),
            (0x08, H_FUNC),
            (0x0c, H_FUNC),
            (0x18, H_FUNC),
            (0x124, H_FUNC),
            (0x36c, H_NOT_AVAILABLE),
            (0x370, H_NOT_AVAILABLE),
            (0x374, H_FUNC),
            (0x378, H_FUNC),
            (0xf002, H_FUNC),
            (0xf005, H_FUNC),
            (0x298, H_FUNC),
            // H_REG_CRQ with a random length (outside 4 KiB..256 MiB but for
            // odds of 2^-36) and unit: H_PARAMETER (docs/vscsi.md).
            (0xfc, H_PARAM),
            // A LIOBN that names no DMA window (this partition has none).
            (0x1c, H_PARAM),
            (0x20, H_PARAM),
            (0x138, H_PARAM),
            (0x13c, H_PARAM),
            (0x45c, H_FUNC),
            (0xf804, H_FUNC),
            (0x460, H_FUNC),
            (0xef10, H_FUNC),
            // H_SVM_*: H_UNSUPPORTED from a caller not in secure state, as
            // KVM-HV (docs/pef.md), whatever the arguments.
            (0xef00, H_UNSUPPORTED),
            (0xef04, H_UNSUPPORTED),
            (0xef08, H_UNSUPPORTED),
            (0xef0c, H_UNSUPPORTED),
            (0xef14, H_UNSUPPORTED),
        ]);
        let a = [
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
        ];
        self.call(op, &a, Want::Is(want));
    }

    /// `lines` console lines of 16 bytes as fast as the hypervisor takes them
    /// (H_BUSY retried); returns the time base ticks it took.
    pub fn flood(&mut self, lines: u32) -> u64 {
        let t0 = mftb();
        let hi = u64::from_be_bytes(*b"hostile ");
        for i in 0..lines {
            let lo = u64::from_be_bytes([
                b'f',
                b'0' + self.cpu as u8,
                b' ',
                b'0' + (i / 1000 % 10) as u8,
                b'0' + (i / 100 % 10) as u8,
                b'0' + (i / 10 % 10) as u8,
                b'0' + (i % 10) as u8,
                b'\n',
            ]);
            while hcall(0x58, &[0, 16, hi, lo]).0 == H_BUSY {}
            self.calls += 1;
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        mftb().wrapping_sub(t0)
    }

    /// A random opcode with random arguments: unknown ones must be H_FUNCTION;
    /// the implemented ones that cannot hurt this guest whatever their arguments
    /// must answer some PAPR status.
    pub fn random(&mut self) {
        let r = self.rng.next();
        let op = match r % 5 {
            0 => (self.rng.below(0x140)) * 4,
            1 => 0xef00 + self.rng.below(0x10) * 4,
            2 => 0xf000 + self.rng.below(0x210),
            3 => self.rng.pick(&[
                0x3c, 0x44, 0x4c, 0x50, 0x54, 0x64, 0x68, 0x6c, 0x70, 0x74, 0xe4, 0xe8, 0x104,
                0x1c8, 0x2ec, 0x2fc, 0x300, 0x37c, 0x3a8, 0x3ac, 0x3b0, 0x3b4, 0x3bc, 0x3c0, 0x3c4,
                0x3c8, 0x3cc, 0x3d0, 0x448, 0xf003,
            ]),
            _ => self.rng.next(),
        };
        let a = [
            self.rng.next(),
            self.rng.below(0x1_0000),
            self.rng.next(),
            self.rng.next() & 0xffff_ffff,
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
        ];
        let want = if r % 5 == 3 {
            Want::Status
        } else if implemented(op) {
            return;
        } else {
            Want::Is(H_FUNC)
        };
        self.call(op, &a, want);
    }
}

pub const H_P2: i64 = -55;
pub const H_P3: i64 = -56;

fn valid_xisr(x: u64) -> bool {
    matches!(x, 0 | 2 | 0x1000)
}

pub fn peek(a: u64) -> u64 {
    // SAFETY: an 8-aligned address inside this partition's memory.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}

pub fn peek_u8(a: u64) -> u8 {
    // SAFETY: an address inside this partition's memory.
    unsafe { core::ptr::read_volatile(a as *const u8) }
}

pub fn poke_u8(a: u64, v: u8) {
    // SAFETY: an address in this vCPU's scratch half.
    unsafe { core::ptr::write_volatile(a as *mut u8, v) }
}

/// The canary over `r` (8-byte words of [`pattern`]).
pub fn fill(r: Region, seed: u64) {
    let mut a = r.start;
    while a < r.end {
        // SAFETY: inside this partition's memory, a region nothing else uses.
        unsafe { core::ptr::write_volatile(a as *mut u64, pattern(seed, a)) };
        a += 8;
    }
}

/// Words of `r` that differ from the canary (`zero`: from 0), and the first.
pub fn verify(r: Region, seed: u64, zero: bool) -> (u64, u64) {
    let (mut bad, mut first) = (0u64, 0u64);
    let mut a = r.start;
    while a < r.end {
        let want = if zero { 0 } else { pattern(seed, a) };
        if peek(a) != want {
            if bad == 0 {
                first = a;
            }
            bad += 1;
        }
        a += 8;
    }
    (bad, first)
}
