//! The fatal-error path: unexpected interrupts, faults in the hypervisor and panics.
//!
//! Prints the fault report (vector, every GPR, the SRRs/HSRRs, DAR/DSISR,
//! HDAR/HDSISR, ASDR, HEIR and a backtrace) through the log facility without waiting
//! forever for its lock, then stops the machine with a failure status.
use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use super::percpu;
use super::{instr, regs::Msr};
use crate::fault::{self, InterruptFrame, StackMemory, StackRange};
use crate::log;

/// Splits formatted text into log lines on the fault path.
struct FaultWriter {
    line: heapless::String<200>,
}

impl FaultWriter {
    fn flush(&mut self) {
        if !self.line.is_empty() {
            log::log_fault(format_args!("{}", self.line));
            self.line.clear();
        }
    }
}

impl Write for FaultWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c == '\n' {
                self.flush();
            } else if self.line.push(c).is_err() {
                self.flush();
                let _ = self.line.push(c);
            }
        }
        Ok(())
    }
}

/// Reads stack words; the walker only asks for addresses inside known stacks.
struct LinearStacks;

impl StackMemory for LinearStacks {
    fn read_u64(&self, addr: u64) -> u64 {
        // SAFETY: `fault::walk_stack` only reads 8-byte aligned words inside the
        // stack ranges we pass, which are mapped RW for the hypervisor's lifetime.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    }
}

fn known_stacks() -> heapless::Vec<StackRange, 4> {
    let mut v = heapless::Vec::new();
    if let Some(pc) = percpu::current() {
        for s in pc.stacks.iter().filter(|s| s.hi > s.lo) {
            let _ = v.push(*s);
        }
    }
    let _ = v.push(crate::init::boot_stack_range());
    v
}

/// Reports a fatal interrupt and stops. Never returns.
pub fn fault(frame: &InterruptFrame) -> ! {
    let cpu = percpu::cpu_index();
    let depth = percpu::current()
        .map(|pc| pc.fault_depth.fetch_add(1, Ordering::AcqRel))
        .unwrap_or(0);
    if depth > 0 {
        // A fault while reporting a fault: say so briefly and stop.
        log::log_fault(format_args!(
            "PAPRIKA FAULT: recursive fault, vector {:#x} srr0 {:#x} hsrr0 {:#x} dar {:#x} dsisr {:#x}",
            frame.vector, frame.srr0, frame.hsrr0, frame.dar, frame.dsisr
        ));
        fail_stop();
    }
    let mut w = FaultWriter {
        line: heapless::String::new(),
    };
    let _ = fault::write_report(&mut w, cpu, frame, &known_stacks(), &LinearStacks);
    w.flush();
    fail_stop()
}

/// The panic handler's body.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut w = FaultWriter {
        line: heapless::String::new(),
    };
    let _ = match info.location() {
        Some(l) => write!(
            w,
            "PAPRIKA FAULT: panic at {}:{}: {}",
            l.file(),
            l.line(),
            info.message()
        ),
        None => write!(w, "PAPRIKA FAULT: panic: {}", info.message()),
    };
    w.flush();
    let _ = writeln!(w, "  backtrace:");
    fault::walk_stack(
        super::stack_pointer(),
        &known_stacks(),
        &LinearStacks,
        |i, sp, lr| {
            let _ = writeln!(w, "    #{:<2} lr {lr:#018x} sp {sp:#018x}", i + 1);
        },
    );
    w.flush();
    fail_stop()
}

/// Ends the run with a failure status: logs the marker, then checkstops the machine
/// (a machine check with MSR[ME] clear). On QEMU that is a guest panic, which
/// `-action panic=exit-failure` turns into a failing exit status; on hardware a
/// checkstop is how a fatal hypervisor error is surfaced to the service processor.
pub fn fail_stop() -> ! {
    log::log_fault(format_args!("PAPRIKA power-off: failure"));
    crate::console::flush();
    crate::platform::opal::console_flush(0);
    checkstop()
}

/// Physical address with nothing behind it on POWER9/Power10 (QEMU raises a machine
/// check for an access to unassigned physical space).
const UNASSIGNED_PHYS: u64 = 0x0000_1000_0000_0000;

fn checkstop() -> ! {
    let msr = (instr::mfmsr() - Msr::ME - Msr::EE - Msr::IR - Msr::DR) | Msr::RI;
    // SAFETY: we are stopping the machine on purpose: with translation off and MSR[ME]
    // clear, the load below raises a machine check that checkstops the machine.
    unsafe {
        instr::set_msr_hrfid(msr);
        let _ = core::ptr::read_volatile(UNASSIGNED_PHYS as *const u64);
    }
    // If the machine check did not checkstop (firmware recovered it), power off.
    crate::platform::opal::power_down()
}
