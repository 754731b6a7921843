//! Per-hardware-thread data, reached through HSPRG0.
//!
//! The first fields are read by the assembly interrupt entry before any stack is set
//! up, so their offsets are exported as constants (`offset_of!`) and the struct is
//! `repr(C)`. A `PerCpu` is allocated once per thread at boot and never freed.
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::fault::StackRange;

#[repr(C)]
pub struct PerCpu {
    // --- read and written by the assembly entry path ---
    /// Spill slots for r11, r12 and CR while the entry path finds a stack.
    pub save_r11: u64,
    pub save_r12: u64,
    pub save_cr: u64,
    /// Top of the stack used for asynchronous interrupts (DEC, HDEC, doorbells).
    pub irq_stack_top: AtomicU64,
    /// Top of the stack used for faults, so a fault from an overflowed stack can
    /// still be reported.
    pub fault_stack_top: AtomicU64,
    /// The hypervisor's TOC pointer (r2).
    pub toc: u64,
    /// MSR the interrupt handler runs with (translation on once the MMU is up).
    pub kernel_msr: AtomicU64,
    /// Address of the translated half of the interrupt entry.
    pub exc_entry: u64,
    /// Initial stack of a secondary thread.
    pub stack_top: u64,
    /// Guest entry/exit: host stack pointer, the running vCPU's registers, whether
    /// the thread is in a guest, and where the exit path resumes the host.
    pub host_sp: u64,
    pub vcpu: u64,
    pub in_guest: u64,
    pub guest_ret: u64,
    // --- Rust only ---
    /// Logical CPU index; 0 is the boot thread.
    pub index: u32,
    /// Processor identification (PIR), also its interrupt server number.
    pub pir: u32,
    /// Core index in device-tree order and thread within the core.
    pub core: u32,
    pub thread: u32,
    pub online: AtomicBool,
    /// Nesting depth of the fault path, to stop recursive faults.
    pub fault_depth: AtomicU32,
    pub dec_ticks: AtomicU64,
    pub hdec_ticks: AtomicU64,
    pub doorbells: AtomicU64,
    /// Stacks owned by this thread, for the backtrace walker.
    pub stacks: [StackRange; 3],
    /// Shadow LPID of the nested (L2) guest this thread is about to run or
    /// runs, 0 when none (`partition::nested`). Here rather than in a table
    /// of its own so the hcall fast path tests it with one load from the
    /// `PerCpu` it already holds.
    pub l2_lpid: AtomicU32,
}

pub const PC_SAVE_R11: usize = offset_of!(PerCpu, save_r11);
pub const PC_SAVE_R12: usize = offset_of!(PerCpu, save_r12);
pub const PC_SAVE_CR: usize = offset_of!(PerCpu, save_cr);
pub const PC_IRQ_STACK: usize = offset_of!(PerCpu, irq_stack_top);
pub const PC_FAULT_STACK: usize = offset_of!(PerCpu, fault_stack_top);
pub const PC_TOC: usize = offset_of!(PerCpu, toc);
pub const PC_KERNEL_MSR: usize = offset_of!(PerCpu, kernel_msr);
pub const PC_EXC_ENTRY: usize = offset_of!(PerCpu, exc_entry);
pub const PC_STACK_TOP: usize = offset_of!(PerCpu, stack_top);
pub const PC_HOST_SP: usize = offset_of!(PerCpu, host_sp);
pub const PC_VCPU: usize = offset_of!(PerCpu, vcpu);
pub const PC_IN_GUEST: usize = offset_of!(PerCpu, in_guest);
pub const PC_GUEST_RET: usize = offset_of!(PerCpu, guest_ret);

impl PerCpu {
    pub const fn new(index: u32, pir: u32) -> Self {
        const EMPTY: StackRange = StackRange { lo: 0, hi: 0 };
        PerCpu {
            save_r11: 0,
            save_r12: 0,
            save_cr: 0,
            irq_stack_top: AtomicU64::new(0),
            fault_stack_top: AtomicU64::new(0),
            toc: 0,
            kernel_msr: AtomicU64::new(0),
            exc_entry: 0,
            stack_top: 0,
            host_sp: 0,
            vcpu: 0,
            in_guest: 0,
            guest_ret: 0,
            index,
            pir,
            core: 0,
            thread: 0,
            online: AtomicBool::new(false),
            fault_depth: AtomicU32::new(0),
            dec_ticks: AtomicU64::new(0),
            hdec_ticks: AtomicU64::new(0),
            doorbells: AtomicU64::new(0),
            stacks: [EMPTY; 3],
            l2_lpid: AtomicU32::new(0),
        }
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }
}

/// This thread's `PerCpu`, or `None` before boot installed one.
pub fn current() -> Option<&'static PerCpu> {
    let p = super::spr::hsprg0::read() as *const PerCpu;
    // SAFETY: HSPRG0 holds either 0 (skiboot leaves it clear; boot zeroes it first)
    // or a pointer to a `PerCpu` that lives forever (installed by `install`).
    unsafe { p.as_ref() }
}

/// Installs `pc` as this thread's per-CPU data.
///
/// # Safety
/// `pc` must stay valid for the life of the hypervisor and belong to this thread.
pub unsafe fn install(pc: &'static PerCpu) {
    // SAFETY: HSPRG0 is reserved for this pointer; see `current`.
    unsafe { super::spr::hsprg0::write(pc as *const PerCpu as u64) };
}

/// Logical index of the running thread (`u32::MAX` before per-CPU data).
pub fn cpu_index() -> u32 {
    current().map(|p| p.index).unwrap_or(u32::MAX)
}
