//! Interrupt entry and exit.
//!
//! The vectors at physical 0 (in `boot/`) save r13 in HSPRG1, load the per-CPU pointer
//! from HSPRG0, spill r12, put the vector number in r12 and branch here, still in
//! real mode. This code picks a stack (the IRQ stack for asynchronous interrupts, the
//! fault stack for everything else, so a fault on an overflowed stack can still be
//! reported), saves the full [`InterruptFrame`], and continues at the linked
//! (0xc000...) address with the hypervisor's MSR (translation on once the MMU is up)
//! through `hrfid`. After the Rust handler returns, the frame is restored and the
//! interrupted context resumed with `rfid` or `hrfid` as the vector requires.
use core::arch::global_asm;

use crate::fault::{self, InterruptFrame};

use super::percpu;

global_asm!(
    crate::save_volatile_macro_asm!("PAPRIKA_EXC_SAVE_VOLATILE"),
    crate::save_exit_state_macro_asm!("PAPRIKA_EXC_SAVE_EXIT_STATE"),
    crate::restore_volatile_macro_asm!("PAPRIKA_EXC_RESTORE_VOLATILE"),
    r#"
    .section .text.exception, "ax"
    .balign 64
    .set PC_R11, {pc_r11}
    .set PC_R12, {pc_r12}
    .set PC_CR, {pc_cr}
    .set PC_IRQ, {pc_irq}
    .set PC_FAULT, {pc_fault}
    .set PC_TOC, {pc_toc}
    .set PC_KMSR, {pc_kmsr}
    .set PC_EXC, {pc_exc}
    .set PC_IN_GUEST, {pc_in_guest}
    .set FR_SIZE, {fr_size}
    .set FR_GPR, {fr_gpr}
    .set FR_CR, {fr_cr}
    .set FR_LR, {fr_lr}
    .set FR_CTR, {fr_ctr}
    .set FR_XER, {fr_xer}
    .set FR_SRR0, {fr_srr0}
    .set FR_SRR1, {fr_srr1}
    .set FR_HSRR0, {fr_hsrr0}
    .set FR_HSRR1, {fr_hsrr1}
    .set FR_DAR, {fr_dar}
    .set FR_DSISR, {fr_dsisr}
    .set FR_HDAR, {fr_hdar}
    .set FR_HDSISR, {fr_hdsisr}
    .set FR_ASDR, {fr_asdr}
    .set FR_HEIR, {fr_heir}
    .set FR_VECTOR, {fr_vector}
    .set FR_MSR, {fr_msr}

    .globl paprika_exc_async
paprika_exc_async:
    std 11, PC_R11(13)
    mfcr 11
    std 11, PC_CR(13)
    ld 11, PC_IN_GUEST(13)
    cmpdi 11, 0
    bne paprika_guest_exit
    ld 11, PC_IRQ(13)
    b 1f

    .globl paprika_exc_fault
paprika_exc_fault:
    std 11, PC_R11(13)
    mfcr 11
    std 11, PC_CR(13)
    ld 11, PC_IN_GUEST(13)
    cmpdi 11, 0
    bne paprika_guest_exit
    ld 11, PC_FAULT(13)

1:  subi 11, 11, FR_SIZE
    PAPRIKA_EXC_SAVE_VOLATILE 11, FR_, PC_
    PAPRIKA_EXC_SAVE_EXIT_STATE 11, FR_
    mfmsr 0
    std 0, FR_MSR(11)
    /* A minimal ELFv2 frame below the saved state, back chain cleared. */
    subi 1, 11, 32
    li 0, 0
    std 0, 0(1)
    ld 2, PC_TOC(13)
    ld 0, PC_EXC(13)
    mtspr 314, 0
    ld 0, PC_KMSR(13)
    mtspr 315, 0
    hrfid

    /* Restores everything but r11, which points at the frame. */
    .macro PAPRIKA_RESTORE_REGS
    PAPRIKA_EXC_RESTORE_VOLATILE 11, FR_
    ld 13, FR_GPR+13*8(11)
    ld 14, FR_GPR+14*8(11)
    ld 15, FR_GPR+15*8(11)
    ld 16, FR_GPR+16*8(11)
    ld 17, FR_GPR+17*8(11)
    ld 18, FR_GPR+18*8(11)
    ld 19, FR_GPR+19*8(11)
    ld 20, FR_GPR+20*8(11)
    ld 21, FR_GPR+21*8(11)
    ld 22, FR_GPR+22*8(11)
    ld 23, FR_GPR+23*8(11)
    ld 24, FR_GPR+24*8(11)
    ld 25, FR_GPR+25*8(11)
    ld 26, FR_GPR+26*8(11)
    ld 27, FR_GPR+27*8(11)
    ld 28, FR_GPR+28*8(11)
    ld 29, FR_GPR+29*8(11)
    ld 30, FR_GPR+30*8(11)
    ld 31, FR_GPR+31*8(11)
    ld 11, FR_GPR+11*8(11)
    .endm

    .globl paprika_exc_translated
paprika_exc_translated:
    addi 3, 1, 32
    bl paprika_interrupt
    nop
    addi 11, 1, 32
    cmpdi 3, 0
    bne 2f
    ld 0, FR_SRR0(11)
    mtspr 26, 0
    ld 0, FR_SRR1(11)
    mtspr 27, 0
    PAPRIKA_RESTORE_REGS
    rfid
2:  ld 0, FR_HSRR0(11)
    mtspr 314, 0
    ld 0, FR_HSRR1(11)
    mtspr 315, 0
    PAPRIKA_RESTORE_REGS
    hrfid
"#,
    pc_r11 = const percpu::PC_SAVE_R11,
    pc_r12 = const percpu::PC_SAVE_R12,
    pc_cr = const percpu::PC_SAVE_CR,
    pc_irq = const percpu::PC_IRQ_STACK,
    pc_fault = const percpu::PC_FAULT_STACK,
    pc_toc = const percpu::PC_TOC,
    pc_kmsr = const percpu::PC_KERNEL_MSR,
    pc_exc = const percpu::PC_EXC_ENTRY,
    pc_in_guest = const percpu::PC_IN_GUEST,
    fr_size = const fault::FRAME_SIZE,
    fr_gpr = const fault::OFF_GPR,
    fr_cr = const fault::OFF_CR,
    fr_lr = const fault::OFF_LR,
    fr_ctr = const fault::OFF_CTR,
    fr_xer = const fault::OFF_XER,
    fr_srr0 = const fault::OFF_SRR0,
    fr_srr1 = const fault::OFF_SRR1,
    fr_hsrr0 = const fault::OFF_HSRR0,
    fr_hsrr1 = const fault::OFF_HSRR1,
    fr_dar = const fault::OFF_DAR,
    fr_dsisr = const fault::OFF_DSISR,
    fr_hdar = const fault::OFF_HDAR,
    fr_hdsisr = const fault::OFF_HDSISR,
    fr_asdr = const fault::OFF_ASDR,
    fr_heir = const fault::OFF_HEIR,
    fr_vector = const fault::OFF_VECTOR,
    fr_msr = const fault::OFF_MSR,
);

extern "C" {
    fn paprika_exc_translated();
}

/// Address of the translated half of the entry path, for `PerCpu::exc_entry`.
pub fn translated_entry() -> u64 {
    paprika_exc_translated as *const () as u64
}

/// The Rust side of every interrupt. Returns non-zero when the interrupted context
/// must be resumed with `hrfid` (HSRR0/1), zero for `rfid` (SRR0/1).
#[no_mangle]
extern "C" fn paprika_interrupt(frame: &mut InterruptFrame) -> u64 {
    let handled = match frame.vector {
        0x900 => {
            super::timer::on_decrementer();
            true
        }
        0x980 => {
            super::timer::on_hdecrementer();
            true
        }
        0xe80 => {
            super::smp::on_hyp_doorbell();
            true
        }
        // What a guest can leave pending on its thread, taken when the idle
        // loop opens its MSR[EE] window (smp::idle_loop): none of it is the
        // hypervisor's failure, so it is cleared and the thread carries on.
        0xf00 => {
            // A Performance Monitor alert (MMCR0[PMAO]) the vCPU left behind.
            freeze_pmu();
            true
        }
        0xa00 => {
            // A directed privileged doorbell (msgsndp) aimed at this thread.
            super::instr::msgclrp();
            true
        }
        0xe60 => {
            let _ = crate::platform::opal::handle_hmi();
            true
        }
        0x500 | 0xea0 => {
            // An external or virtualization interrupt nobody routed here.
            unexpected_async(frame.vector);
            true
        }
        _ => false,
    };
    if !handled {
        super::fatal::fault(frame);
    }
    u64::from(fault::uses_hsrr(frame.vector))
}

/// Freezes the performance monitor with no alert pending or enabled (what
/// `partition::facility::frozen_pmu` prescribes), ending a Performance Monitor
/// exception.
fn freeze_pmu() {
    let (mmcr0, mmcra) = crate::partition::facility::frozen_pmu(super::spr::is_isa_v31());
    // SAFETY: the hypervisor does not use the performance monitor; freezing it
    // only stops counting and alerts.
    unsafe {
        super::spr::mmcr0::write(mmcr0);
        super::spr::mmcra::write(mmcra);
    }
    super::instr::isync();
}

/// Notes an external-class interrupt the hypervisor has no handler for (at most
/// a few lines) and returns to the interrupted context.
fn unexpected_async(vector: u64) {
    use core::sync::atomic::{AtomicU32, Ordering};
    static SEEN: AtomicU32 = AtomicU32::new(0);
    if SEEN.fetch_add(1, Ordering::Relaxed) < 8 {
        crate::warn!(
            "unexpected {} interrupt ({:#x}) in the hypervisor, ignored",
            fault::vector_name(vector),
            vector
        );
    }
}
