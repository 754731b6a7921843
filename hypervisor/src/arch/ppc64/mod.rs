//! POWER9 / Power10 (ISA v3.0B / v3.1) specifics: SPRs, instructions, interrupt
//! entry, the hypervisor's MMU, SMP bring-up, timers and the fatal-error path.
pub mod asm_macros;
pub mod exception;
pub mod fatal;
pub mod guest;
pub mod instr;
pub mod mmu;
pub mod percpu;
pub mod regs;
pub mod smp;
pub mod spr;
pub mod timer;
pub mod ucall;

/// Current stack pointer (r1).
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let v: u64;
    // SAFETY: copies r1.
    unsafe { core::arch::asm!("mr {0}, 1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Current TOC pointer (r2).
#[inline(always)]
pub fn toc_pointer() -> u64 {
    let v: u64;
    // SAFETY: copies r2.
    unsafe { core::arch::asm!("mr {0}, 2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
