//! What each vCPU last did, for the debug dumps (Ctrl-A d on the console, and
//! the report of a partition fault; docs/debugging.md): its PC, MSR and LR and
//! the exit that brought it back to the hypervisor, published by the vCPU's own
//! thread on every full exit and read from any thread without a lock.
//!
//! A seqlock of atomics: the writer (the only one: the vCPU's pinned thread)
//! makes the sequence odd, stores the fields, makes it even again; a reader
//! retries while the sequence is odd or changed under it. The cost on the exit
//! path is a handful of relaxed stores and two release increments; the hcall
//! fast path (`hcall_fast`) does not publish (a dump shows the last full exit).

use core::fmt::{self, Write};
use core::sync::atomic::{fence, AtomicU64, Ordering};

/// One vCPU's registers as of its last exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub pc: u64,
    pub msr: u64,
    pub lr: u64,
    /// Interrupt vector of the exit (0: never entered the guest).
    pub exit: u64,
    /// r3 at the exit: the hcall opcode of a `sc 1` (vector 0xc00).
    pub r3: u64,
    /// Guest-real address involved (ASDR/HDAR of an HDSI, HEIR of an HEAI), 0
    /// otherwise.
    pub detail: u64,
    /// Exits published so far.
    pub exits: u64,
}

/// The published copy.
#[derive(Debug, Default)]
pub struct Snapshot {
    seq: AtomicU64,
    pc: AtomicU64,
    msr: AtomicU64,
    lr: AtomicU64,
    exit: AtomicU64,
    r3: AtomicU64,
    detail: AtomicU64,
}

impl Snapshot {
    pub const fn new() -> Self {
        Snapshot {
            seq: AtomicU64::new(0),
            pc: AtomicU64::new(0),
            msr: AtomicU64::new(0),
            lr: AtomicU64::new(0),
            exit: AtomicU64::new(0),
            r3: AtomicU64::new(0),
            detail: AtomicU64::new(0),
        }
    }

    /// Publishes `r` (`r.exits` is ignored: counted here). Only the vCPU's own
    /// thread calls this.
    #[inline]
    pub fn publish(&self, pc: u64, msr: u64, lr: u64, exit: u64, r3: u64, detail: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.pc.store(pc, Ordering::Relaxed);
        self.msr.store(msr, Ordering::Relaxed);
        self.lr.store(lr, Ordering::Relaxed);
        self.exit.store(exit, Ordering::Relaxed);
        self.r3.store(r3, Ordering::Relaxed);
        self.detail.store(detail, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy, or the last one tried after a few attempts (a vCPU
    /// exiting at a furious rate; the dump is best effort).
    pub fn read(&self) -> Regs {
        let mut r = Regs::default();
        for _ in 0..100 {
            let s1 = self.seq.load(Ordering::Acquire);
            r = Regs {
                pc: self.pc.load(Ordering::Relaxed),
                msr: self.msr.load(Ordering::Relaxed),
                lr: self.lr.load(Ordering::Relaxed),
                exit: self.exit.load(Ordering::Relaxed),
                r3: self.r3.load(Ordering::Relaxed),
                detail: self.detail.load(Ordering::Relaxed),
                exits: s1 / 2,
            };
            fence(Ordering::Acquire);
            if s1.is_multiple_of(2) && self.seq.load(Ordering::Relaxed) == s1 {
                break;
            }
            core::hint::spin_loop();
        }
        r
    }
}

/// A vCPU's state for the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Runnable and in the guest (or in an exit handler).
    Running,
    /// Runnable, napping in H_CEDE.
    Ceded,
    /// Not started, stopped itself, or its partition stopped.
    Stopped,
}

impl State {
    pub const fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Ceded => "ceded",
            State::Stopped => "stopped",
        }
    }
}

/// The MSR bits a reader of the dump wants spelled out (Power ISA Book III
/// 4.2.1): SF, HV, EE, PR, ME, IR, DR, RI, LE.
fn msr_flags(msr: u64, out: &mut dyn Write) -> fmt::Result {
    const BITS: [(u64, &str); 9] = [
        (1 << 63, "SF"),
        (1 << 60, "HV"),
        (1 << 15, "EE"),
        (1 << 14, "PR"),
        (1 << 12, "ME"),
        (1 << 5, "IR"),
        (1 << 4, "DR"),
        (1 << 1, "RI"),
        (1 << 0, "LE"),
    ];
    let mut first = true;
    for (bit, name) in BITS {
        if msr & bit != 0 {
            out.write_str(if first { "" } else { "|" })?;
            out.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

/// One dump line (without the log prefix): `<partition> vCPU <n> <state>
/// pc=.. msr=.. (flags) lr=.. last-exit=<vector> (<name>)[ hcall=..|
/// addr=..] exits=<n>`. `vector_name` names interrupt vectors
/// (`fault::vector_name`).
pub fn format_line(
    out: &mut dyn Write,
    partition: &str,
    vcpu: u32,
    state: State,
    r: &Regs,
    vector_name: fn(u64) -> &'static str,
) -> fmt::Result {
    write!(
        out,
        "{partition} vCPU {vcpu} {} pc={:#018x} msr={:#018x} (",
        state.name(),
        r.pc,
        r.msr
    )?;
    msr_flags(r.msr, out)?;
    write!(out, ") lr={:#018x} ", r.lr)?;
    if r.exits == 0 {
        out.write_str("last-exit=none (never entered)")?;
    } else {
        write!(out, "last-exit={:#x} ({})", r.exit, vector_name(r.exit))?;
        match r.exit {
            0xc00 => write!(out, " hcall={:#x}", r.r3)?,
            0xe00 | 0xe20 => write!(out, " addr={:#x}", r.detail)?,
            0xe40 => write!(out, " instr={:#010x}", r.detail)?,
            _ => {}
        }
    }
    write!(out, " exits={}", r.exits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn name(v: u64) -> &'static str {
        if v == 0xc00 {
            "System Call"
        } else {
            "Other"
        }
    }

    #[test]
    fn publish_and_read() {
        let s = Snapshot::new();
        assert_eq!(s.read(), Regs::default());
        s.publish(0x10040, 0x8000_0000_0000_1033, 0x10010, 0xc00, 0xe0, 0);
        s.publish(0x10044, 0x8000_0000_0000_1033, 0x10010, 0xc00, 0x58, 0);
        let r = s.read();
        assert_eq!(r.pc, 0x10044);
        assert_eq!(r.r3, 0x58);
        assert_eq!(r.exits, 2);
    }

    #[test]
    fn lines_read_like_info_registers() {
        let r = Regs {
            pc: 0x10040,
            msr: 0x8000_0000_0000_1033,
            lr: 0x10010,
            exit: 0xc00,
            r3: 0xf3fc,
            detail: 0,
            exits: 7,
        };
        let mut s = String::new();
        format_line(&mut s, "a", 1, State::Running, &r, name).unwrap();
        assert_eq!(
            s,
            "a vCPU 1 running pc=0x0000000000010040 msr=0x8000000000001033 \
             (SF|ME|IR|DR|RI|LE) lr=0x0000000000010010 last-exit=0xc00 (System Call) \
             hcall=0xf3fc exits=7"
        );
        let mut s = String::new();
        format_line(&mut s, "a", 0, State::Stopped, &Regs::default(), name).unwrap();
        assert!(s.ends_with("last-exit=none (never entered) exits=0"), "{s}");
        let hdsi = Regs {
            exit: 0xe00,
            detail: 0x4000_0000,
            exits: 1,
            ..r
        };
        let mut s = String::new();
        format_line(&mut s, "a", 0, State::Ceded, &hdsi, name).unwrap();
        assert!(
            s.contains(" ceded ") && s.contains("addr=0x40000000"),
            "{s}"
        );
    }

    #[test]
    fn concurrent_readers_see_whole_snapshots() {
        extern crate std;
        use std::sync::Arc;
        let s = Arc::new(Snapshot::new());
        let w = Arc::clone(&s);
        let writer = std::thread::spawn(move || {
            for i in 1..200_000u64 {
                w.publish(i, i, i, i, i, i);
            }
        });
        for _ in 0..50_000 {
            let r = s.read();
            // Torn reads would mix values of two publishes.
            if r.exits > 0 && r.pc == r.msr && r.msr == r.lr && r.lr == r.r3 {
                assert_eq!(r.detail, r.pc);
            }
        }
        writer.join().unwrap();
        assert_eq!(s.read().pc, 199_999);
    }
}
