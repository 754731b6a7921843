//! The register state saved on every interrupt, and the fault report.
//!
//! The layout of [`InterruptFrame`] is shared with the assembly entry path in
//! `arch::ppc64::exception`, which takes every offset from `offset_of!` here. The
//! report formatting and the stack walk are portable so they can be tested on the
//! host against synthetic stacks.

use core::fmt::{self, Write};
use core::mem::offset_of;

/// Everything the entry path saves. Field order is ABI with the assembly.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct InterruptFrame {
    pub gpr: [u64; 32],
    pub cr: u64,
    pub lr: u64,
    pub ctr: u64,
    pub xer: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub hsrr0: u64,
    pub hsrr1: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub hdar: u64,
    pub hdsisr: u64,
    pub asdr: u64,
    pub heir: u64,
    /// The vector offset (0x100 ... 0x1700).
    pub vector: u64,
    /// MSR while the handler runs (before it switches translation on).
    pub msr: u64,
}

pub const FRAME_SIZE: usize = core::mem::size_of::<InterruptFrame>();
static_assertions::const_assert!(FRAME_SIZE.is_multiple_of(16));

pub const OFF_GPR: usize = offset_of!(InterruptFrame, gpr);
pub const OFF_CR: usize = offset_of!(InterruptFrame, cr);
pub const OFF_LR: usize = offset_of!(InterruptFrame, lr);
pub const OFF_CTR: usize = offset_of!(InterruptFrame, ctr);
pub const OFF_XER: usize = offset_of!(InterruptFrame, xer);
pub const OFF_SRR0: usize = offset_of!(InterruptFrame, srr0);
pub const OFF_SRR1: usize = offset_of!(InterruptFrame, srr1);
pub const OFF_HSRR0: usize = offset_of!(InterruptFrame, hsrr0);
pub const OFF_HSRR1: usize = offset_of!(InterruptFrame, hsrr1);
pub const OFF_DAR: usize = offset_of!(InterruptFrame, dar);
pub const OFF_DSISR: usize = offset_of!(InterruptFrame, dsisr);
pub const OFF_HDAR: usize = offset_of!(InterruptFrame, hdar);
pub const OFF_HDSISR: usize = offset_of!(InterruptFrame, hdsisr);
pub const OFF_ASDR: usize = offset_of!(InterruptFrame, asdr);
pub const OFF_HEIR: usize = offset_of!(InterruptFrame, heir);
pub const OFF_VECTOR: usize = offset_of!(InterruptFrame, vector);
pub const OFF_MSR: usize = offset_of!(InterruptFrame, msr);

/// Whether an interrupt at `vector` saves its state in HSRR0/1 (and returns with
/// `hrfid`) rather than SRR0/1. Power ISA v3.0B Book III 7.5, figure "Interrupt
/// vectors": the hypervisor-class interrupts, and the external interrupt (0x500),
/// which goes to the hypervisor with HSRRs because Paprika runs with LPCR[LPES] = 0.
pub const fn uses_hsrr(vector: u64) -> bool {
    matches!(
        vector,
        0x500 | 0x980 | 0xe00 | 0xe20 | 0xe40 | 0xe60 | 0xe80 | 0xea0 | 0xf80
    )
}

/// Human name of an interrupt vector (Power ISA v3.0B/v3.1 Book III 7.5).
pub const fn vector_name(vector: u64) -> &'static str {
    match vector {
        0x100 => "System Reset",
        0x200 => "Machine Check",
        0x300 => "Data Storage",
        0x380 => "Data Segment",
        0x400 => "Instruction Storage",
        0x480 => "Instruction Segment",
        0x500 => "External",
        0x600 => "Alignment",
        0x700 => "Program",
        0x800 => "Floating-Point Unavailable",
        0x900 => "Decrementer",
        0x980 => "Hypervisor Decrementer",
        0xa00 => "Directed Privileged Doorbell",
        0xb00 => "Reserved",
        0xc00 => "System Call",
        0xd00 => "Trace",
        0xe00 => "Hypervisor Data Storage",
        0xe20 => "Hypervisor Instruction Storage",
        0xe40 => "Hypervisor Emulation Assistance",
        0xe60 => "Hypervisor Maintenance",
        0xe80 => "Directed Hypervisor Doorbell",
        0xea0 => "Hypervisor Virtualization",
        0xf00 => "Performance Monitor",
        0xf20 => "Vector Unavailable",
        0xf40 => "VSX Unavailable",
        0xf60 => "Facility Unavailable",
        0xf80 => "Hypervisor Facility Unavailable",
        0x1500 => "Soft Patch",
        // Not an interrupt: `arch::ppc64::guest::enter_uv`'s UV_RETURN came back.
        0xf11c => "UV_RETURN refused by the ultravisor",
        0x1600 => "Reserved 0x1600",
        0x1700 => "Reserved 0x1700",
        _ => "Unknown",
    }
}

/// A readable stack range, `[lo, hi)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRange {
    pub lo: u64,
    pub hi: u64,
}

/// How the stack walker reads memory. It only reads 8-byte words inside the stack
/// ranges it was given, so a corrupt back chain cannot make the fault path fault.
pub trait StackMemory {
    fn read_u64(&self, addr: u64) -> u64;
}

/// Most frames shown in a backtrace.
pub const MAX_FRAMES: usize = 32;

/// Walks the ELFv2 back chain from `sp`. Each frame's word 0 is the caller's stack
/// pointer; the return address into the caller lives at offset 16 of the caller's
/// frame (the LR save doubleword). Stops at a null chain, a pointer outside `stacks`,
/// a chain that does not grow upwards, or after [`MAX_FRAMES`].
pub fn walk_stack(
    sp: u64,
    stacks: &[StackRange],
    mem: &impl StackMemory,
    mut visit: impl FnMut(usize, u64, u64),
) -> usize {
    let inside = |a: u64| {
        a.is_multiple_of(8)
            && stacks
                .iter()
                .any(|r| a >= r.lo && a.saturating_add(24) <= r.hi)
    };
    let mut cur = sp;
    let mut n = 0;
    while n < MAX_FRAMES && inside(cur) {
        let next = mem.read_u64(cur);
        if next == 0 || next <= cur || !inside(next) {
            break;
        }
        let lr = mem.read_u64(next + 16);
        if lr == 0 {
            break;
        }
        visit(n, next, lr);
        n += 1;
        cur = next;
    }
    n
}

/// Writes the full fault report: vector, every GPR, the special registers that tell
/// why, and the backtrace.
pub fn write_report(
    w: &mut impl Write,
    cpu: u32,
    frame: &InterruptFrame,
    stacks: &[StackRange],
    mem: &impl StackMemory,
) -> fmt::Result {
    writeln!(
        w,
        "PAPRIKA FAULT: vector {:#x} ({}) on cpu {}",
        frame.vector,
        vector_name(frame.vector),
        cpu
    )?;
    let (pc, msr) = if uses_hsrr(frame.vector) {
        (frame.hsrr0, frame.hsrr1)
    } else {
        (frame.srr0, frame.srr1)
    };
    writeln!(w, "  pc {pc:#018x} msr {msr:#018x} lr {:#018x}", frame.lr)?;
    for row in 0..8 {
        let i = row * 4;
        writeln!(
            w,
            "  GPR{:02} {:016x} {:016x} {:016x} {:016x}",
            i,
            frame.gpr[i],
            frame.gpr[i + 1],
            frame.gpr[i + 2],
            frame.gpr[i + 3]
        )?;
    }
    writeln!(
        w,
        "  CR {:08x} CTR {:016x} XER {:016x}",
        frame.cr as u32, frame.ctr, frame.xer
    )?;
    writeln!(w, "  SRR0 {:016x} SRR1 {:016x}", frame.srr0, frame.srr1)?;
    writeln!(w, "  HSRR0 {:016x} HSRR1 {:016x}", frame.hsrr0, frame.hsrr1)?;
    writeln!(
        w,
        "  DAR {:016x} DSISR {:08x}",
        frame.dar, frame.dsisr as u32
    )?;
    writeln!(
        w,
        "  HDAR {:016x} HDSISR {:08x}",
        frame.hdar, frame.hdsisr as u32
    )?;
    writeln!(
        w,
        "  ASDR {:016x} HEIR {:08x}",
        frame.asdr, frame.heir as u32
    )?;
    writeln!(w, "  backtrace:")?;
    writeln!(w, "    #0  pc {pc:#018x}")?;
    let mut result = Ok(());
    walk_stack(frame.gpr[1], stacks, mem, |i, sp, lr| {
        if result.is_ok() {
            result = writeln!(w, "    #{:<2} lr {lr:#018x} sp {sp:#018x}", i + 1);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeMem(HashMap<u64, u64>);
    impl StackMemory for FakeMem {
        fn read_u64(&self, addr: u64) -> u64 {
            *self.0.get(&addr).unwrap_or(&0)
        }
    }

    #[test]
    fn frame_layout_matches_assembly_expectations() {
        assert_eq!(OFF_GPR, 0);
        assert_eq!(OFF_CR, 256);
        assert_eq!(OFF_MSR, FRAME_SIZE - 8);
        assert_eq!(FRAME_SIZE, 256 + 16 * 8);
    }

    #[test]
    fn hsrr_vectors() {
        assert!(uses_hsrr(0x980));
        assert!(uses_hsrr(0xe00));
        assert!(uses_hsrr(0xe80));
        assert!(uses_hsrr(0x500));
        assert!(!uses_hsrr(0x300));
        assert!(!uses_hsrr(0x900));
        assert!(!uses_hsrr(0xc00));
        assert_eq!(vector_name(0x300), "Data Storage");
        assert_eq!(vector_name(0x12345), "Unknown");
    }

    #[test]
    fn walks_a_chain_and_stops_at_bad_pointers() {
        let stack = StackRange {
            lo: 0xc000_0000_0100_0000,
            hi: 0xc000_0000_0101_0000,
        };
        let s0 = stack.lo + 0x100;
        let s1 = stack.lo + 0x200;
        let s2 = stack.lo + 0x300;
        let mut m = HashMap::new();
        m.insert(s0, s1);
        m.insert(s1 + 16, 0x1111);
        m.insert(s1, s2);
        m.insert(s2 + 16, 0x2222);
        m.insert(s2, 0xdead_0000); // outside every stack: the walk ends
        let mem = FakeMem(m);
        let mut seen = vec![];
        let n = walk_stack(s0, &[stack], &mem, |_, sp, lr| seen.push((sp, lr)));
        assert_eq!(n, 2);
        assert_eq!(seen, vec![(s1, 0x1111), (s2, 0x2222)]);
        // A loop in the chain terminates.
        let mut m = HashMap::new();
        m.insert(s0, s0);
        assert_eq!(walk_stack(s0, &[stack], &FakeMem(m), |_, _, _| {}), 0);
        // A start pointer outside the stacks reads nothing.
        assert_eq!(
            walk_stack(0x10, &[stack], &FakeMem(HashMap::new()), |_, _, _| {}),
            0
        );
    }

    #[test]
    fn report_names_vector_registers_and_backtrace() {
        let mut f = InterruptFrame {
            vector: 0x300,
            srr0: 0xc000_0000_0000_1234,
            dar: 0,
            ..Default::default()
        };
        f.gpr[1] = 0xc000_0000_0100_0100;
        f.gpr[31] = 0xabcdef;
        let stack = StackRange {
            lo: 0xc000_0000_0100_0000,
            hi: 0xc000_0000_0101_0000,
        };
        let mut m = HashMap::new();
        m.insert(f.gpr[1], f.gpr[1] + 0x80);
        m.insert(f.gpr[1] + 0x80 + 16, 0xc000_0000_0000_4444);
        let mut s = String::new();
        write_report(&mut s, 2, &f, &[stack], &FakeMem(m)).unwrap();
        assert!(s.contains("PAPRIKA FAULT: vector 0x300 (Data Storage) on cpu 2"));
        assert!(s.contains("GPR00 "));
        assert!(
            s.contains("GPR28 0000000000000000 0000000000000000 0000000000000000 0000000000abcdef")
        );
        assert!(s.contains("DAR 0000000000000000"));
        assert!(s.contains("backtrace:"));
        assert!(s.contains("#0  pc 0xc000000000001234"));
        assert!(s.contains("lr 0xc000000000004444"));
    }
}
