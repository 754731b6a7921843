//! Entering a partition's vCPU and coming back.
//!
//! `paprika_guest_enter` saves the host's non-volatile state on the host stack,
//! records the stack and the vCPU in `PerCpu`, marks the thread as "in guest", loads
//! every guest GPR, CR, LR, CTR and XER and `hrfid`s to the guest PC/MSR. Any
//! interrupt that reaches the hypervisor while the flag is set is a guest exit: the
//! common interrupt entry branches to `paprika_guest_exit`, which stores the guest's
//! registers and the exit's SRRs, HSRRs, DAR/DSISR, HDAR/HDSISR, ASDR and HEIR into
//! the vCPU, switches back to the host stack and MSR, and returns from
//! `paprika_guest_enter` with the vector number. The other guest-owned SPRs are
//! switched in Rust around this call (`partition::vcpu`).
use core::arch::global_asm;
use core::mem::offset_of;

use super::percpu;

/// Register state of one vCPU that the assembly moves. `repr(C)`: offsets are ABI.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct GuestRegs {
    pub gpr: [u64; 32],
    pub cr: u64,
    pub lr: u64,
    pub ctr: u64,
    pub xer: u64,
    /// Where the guest resumes, and with which MSR.
    pub pc: u64,
    pub msr: u64,
    // Filled on exit:
    pub exit_vector: u64,
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
    /// Hash-MMU partitions only (0 for radix ones): the guest LPCR, loaded by the
    /// entry with translation off, and the host LPCR the exit restores before it
    /// turns translation back on. LPCR[HR] selects radix or hashed translation for
    /// the hypervisor as well, so it may only change in real mode (Book III 5.7.2;
    /// KVM-HV's P9 entry does the same).
    pub hash_lpcr: u64,
    pub host_lpcr: u64,
}

pub const G_GPR: usize = offset_of!(GuestRegs, gpr);
pub const G_CR: usize = offset_of!(GuestRegs, cr);
pub const G_LR: usize = offset_of!(GuestRegs, lr);
pub const G_CTR: usize = offset_of!(GuestRegs, ctr);
pub const G_XER: usize = offset_of!(GuestRegs, xer);
pub const G_PC: usize = offset_of!(GuestRegs, pc);
pub const G_MSR: usize = offset_of!(GuestRegs, msr);
pub const G_VECTOR: usize = offset_of!(GuestRegs, exit_vector);
pub const G_SRR0: usize = offset_of!(GuestRegs, srr0);
pub const G_SRR1: usize = offset_of!(GuestRegs, srr1);
pub const G_HSRR0: usize = offset_of!(GuestRegs, hsrr0);
pub const G_HSRR1: usize = offset_of!(GuestRegs, hsrr1);
pub const G_DAR: usize = offset_of!(GuestRegs, dar);
pub const G_DSISR: usize = offset_of!(GuestRegs, dsisr);
pub const G_HDAR: usize = offset_of!(GuestRegs, hdar);
pub const G_HDSISR: usize = offset_of!(GuestRegs, hdsisr);
pub const G_ASDR: usize = offset_of!(GuestRegs, asdr);
pub const G_HEIR: usize = offset_of!(GuestRegs, heir);
pub const G_HASH_LPCR: usize = offset_of!(GuestRegs, hash_lpcr);
pub const G_HOST_LPCR: usize = offset_of!(GuestRegs, host_lpcr);

/// Host frame: back chain etc. (32), r2, r13-r31 (20 words), CR.
const HOST_FRAME: usize = 32 + 8 * 22;

global_asm!(
    crate::save_volatile_macro_asm!("PAPRIKA_GX_SAVE_VOLATILE"),
    crate::save_exit_state_macro_asm!("PAPRIKA_GX_SAVE_EXIT_STATE"),
    r#"
    .section .text.exception, "ax"
    .set GX_GPR, {g_gpr}
    .set GX_CR, {g_cr}
    .set GX_LR, {g_lr}
    .set GX_CTR, {g_ctr}
    .set GX_XER, {g_xer}
    .set GX_PC, {g_pc}
    .set GX_MSR, {g_msr}
    .set GX_VECTOR, {g_vector}
    .set GX_SRR0, {g_srr0}
    .set GX_SRR1, {g_srr1}
    .set GX_HSRR0, {g_hsrr0}
    .set GX_HSRR1, {g_hsrr1}
    .set GX_DAR, {g_dar}
    .set GX_DSISR, {g_dsisr}
    .set GX_HDAR, {g_hdar}
    .set GX_HDSISR, {g_hdsisr}
    .set GX_ASDR, {g_asdr}
    .set GX_HEIR, {g_heir}
    .set GX_HASH_LPCR, {g_hash_lpcr}
    .set GX_HOST_LPCR, {g_host_lpcr}
    .set PCX_HOST_SP, {pc_host_sp}
    .set PCX_VCPU, {pc_vcpu}
    .set PCX_IN_GUEST, {pc_in_guest}
    .set PCX_GUEST_RET, {pc_guest_ret}
    .set PCX_KMSR, {pc_kmsr}
    .set PCX_R11, {pc_r11}
    .set PCX_R12, {pc_r12}
    .set PCX_CR, {pc_cr}
    .set PCX_TOC, {pc_toc}
    .set HF, {host_frame}

    /* Opens both entries (`paprika_guest_enter`, `paprika_guest_enter_uv`):
       saves the host's non-volatile state in a new frame on the host stack and
       records the stack and the vCPU's GuestRegs (r3) in PerCpu; r4 = PerCpu. */
    .macro PAPRIKA_GX_HOST_FRAME
    mflr 0
    std 0, 16(1)
    stdu 1, -HF(1)
    std 2, 32+0*8(1)
    .irp n, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    std \n, 32+(\n-12)*8(1)
    .endr
    mfcr 0
    std 0, 32+20*8(1)
    mfspr 4, 304
    std 1, PCX_HOST_SP(4)
    std 3, PCX_VCPU(4)
    .endm

    /* What both entries load from the GuestRegs at r3 (r4 = PerCpu): HSRR0/1 =
       the guest's PC and MSR, the in-guest flag, CR, LR, CTR, XER, r1 and
       r4-r31. Interrupts stay off until the guest's MSR is loaded. r0, r2 and
       r3 are the caller's to load. */
    .macro PAPRIKA_GX_LOAD_GUEST
    ld 5, GX_PC(3)
    mtspr 314, 5
    ld 5, GX_MSR(3)
    mtspr 315, 5
    li 5, 1
    std 5, PCX_IN_GUEST(4)
    ld 5, GX_CR(3)
    mtcr 5
    ld 5, GX_LR(3)
    mtlr 5
    ld 5, GX_CTR(3)
    mtctr 5
    ld 5, GX_XER(3)
    mtxer 5
    ld 1, GX_GPR+1*8(3)
    .irp n, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    ld \n, GX_GPR+\n*8(3)
    .endr
    .endm

    /* u64 paprika_guest_enter(GuestRegs *r3) */
    .globl paprika_guest_enter
paprika_guest_enter:
    PAPRIKA_GX_HOST_FRAME
    /* A hash-MMU partition: its LPCR (HR = 0) is loaded with translation off
       (the code, stack and GuestRegs are linear-map addresses, which real mode
       reaches by ignoring the top bits). */
    ld 5, GX_HASH_LPCR(3)
    cmpdi 5, 0
    beq 1f
    mfmsr 6
    li 7, 0x30
    andc 6, 6, 7
    mtmsrd 6
    isync
    mtspr 318, 5
    isync
1:
    PAPRIKA_GX_LOAD_GUEST
    ld 0, GX_GPR+0*8(3)
    ld 2, GX_GPR+2*8(3)
    ld 3, GX_GPR+3*8(3)
    hrfid

    /* u64 paprika_guest_enter_uv(GuestRegs *r3): `paprika_guest_enter` for a
       vCPU whose last exit the ultravisor reflected (a secure VM, or its UV_ESM).
       Same host frame and PerCpu records, HSRR0/1 = the guest PC (the UV's
       cookie) and MSR, every guest GPR but r0, r2 and r3 loaded, then the
       ultracall UV_RETURN (Linux book3s_hv_rmhandlers.S `ret_to_ultra`):
       r0 = the guest's r3 (the hcall's return value), r2 = SRR1 (the UV detects
       an interrupt the hypervisor synthesized), r3 = UV_RETURN, r31 = the
       guest's r31 (the cookie, untouched). The UV resumes the vCPU; its next
       exit arrives through `paprika_guest_exit` as any other. Secure VMs are
       radix, so there is no hash-LPCR step. */
    .globl paprika_guest_enter_uv
paprika_guest_enter_uv:
    PAPRIKA_GX_HOST_FRAME
    PAPRIKA_GX_LOAD_GUEST
    ld 0, GX_GPR+3*8(3)
    mfspr 2, 27
    li 3, 0
    ori 3, 3, {uv_return}
    sc 2
    /* The UV came back instead of resuming the vCPU (a refused UV_RETURN): the
       thread is the hypervisor's again; return the pseudo-vector UV_RETURN
       through the common host return (r12 = what `paprika_guest_enter` returns). */
    mfspr 13, 304
    li 0, 0
    std 0, PCX_IN_GUEST(13)
    ld 1, PCX_HOST_SP(13)
    ld 2, 32+0*8(1)
    li 12, 0
    ori 12, 12, {uv_return}
    b paprika_guest_return

    /* Reached from the interrupt entry in real mode when the thread was in a guest:
       r13 = PerCpu, r12 = vector, guest r11/r12/CR in PerCpu, guest r13 in HSPRG1. */
    .globl paprika_guest_exit
paprika_guest_exit:
    ld 11, PCX_VCPU(13)
    /* hcall fast path: `sc 1` (0xc00) with a hot opcode in r3 (see hcall_fast). */
    cmpdi 12, 0xc00
    bne 2f
    cmpldi 3, {h_prod}
    beq paprika_hcall_fast_entry
    cmpldi 3, {h_put_term_char}
    beq paprika_hcall_fast_entry
    cmpldi 3, {h_rpt_invalidate}
    beq paprika_hcall_fast_entry
2:  PAPRIKA_GX_SAVE_VOLATILE 11, GX_, PCX_
    /* The fast path joins here when it declines: r0-r12, CR, LR, CTR and XER are
       saved, r11 = GuestRegs, r12 = vector, r14-r31 still the guest's. */
paprika_guest_exit_rest:
    PAPRIKA_GX_SAVE_EXIT_STATE 11, GX_
    /* A hash-MMU partition: the host LPCR (radix) back before translation is.
       A radix one branches with r0 = hash_lpcr = 0, the value stored next. */
    ld 0, GX_HASH_LPCR(11)
    cmpdi 0, 0
    beq 3f
    ld 0, GX_HOST_LPCR(11)
    mtspr 318, 0
    isync
    li 0, 0
3:  std 0, PCX_IN_GUEST(13)
    /* Back to the host stack and MSR, continuing at paprika_guest_return. */
    ld 1, PCX_HOST_SP(13)
    ld 2, 32+0*8(1)
    ld 0, PCX_GUEST_RET(13)
    mtspr 314, 0
    ld 0, PCX_KMSR(13)
    mtspr 315, 0
    hrfid

    /* hcall fast path, still in real mode with the guest's LPIDR, LPCR and PIDR
       loaded (real-mode accesses do not use them). Saves what the ELFv2 ABI lets
       the callee clobber (r0-r10, LR, CTR, XER; r1/r2 are replaced; the guest's
       r11, r12 and CR stay in PerCpu's spill slots, which only a fatal
       hypervisor fault could overwrite meanwhile), calls `paprika_hcall_fast`
       on the host stack below the frame `paprika_guest_enter` left, and either
       resumes the guest at once with H_SUCCESS and r4-r7 = 0 (r3 = 1) or copies
       r11, r12 and CR to GuestRegs and joins the full exit (r3 = 0; nothing was
       changed). r14-r31 are the guest's throughout (callee saved); no SPR but
       HSRR0/1 is written. Kept short: `cargo xtask bench` counts this path's
       instructions (lpar.hcall_null_instructions). r11 = GuestRegs. */
paprika_hcall_fast_entry:
    std 0, GX_GPR+0*8(11)
    std 1, GX_GPR+1*8(11)
    std 2, GX_GPR+2*8(11)
    std 3, GX_GPR+3*8(11)
    std 4, GX_GPR+4*8(11)
    std 5, GX_GPR+5*8(11)
    std 6, GX_GPR+6*8(11)
    std 7, GX_GPR+7*8(11)
    std 8, GX_GPR+8*8(11)
    std 9, GX_GPR+9*8(11)
    std 10, GX_GPR+10*8(11)
    mflr 0
    std 0, GX_LR(11)
    mfctr 0
    std 0, GX_CTR(11)
    mfxer 0
    std 0, GX_XER(11)
    /* From here an interrupt (a hypervisor bug) is the hypervisor's, not an exit. */
    li 0, 0
    std 0, PCX_IN_GUEST(13)
    ld 1, PCX_HOST_SP(13)
    stdu 0, -64(1)
    ld 2, PCX_TOC(13)
    mr 3, 11
    mr 4, 13
    bl paprika_hcall_fast
    nop
    ld 11, PCX_VCPU(13)
    cmpdi 3, 0
    beq 3f
    /* Handled: back to the guest where `sc` left it (SRR0/1). */
    li 0, 1
    std 0, PCX_IN_GUEST(13)
    mfspr 0, 26
    mtspr 314, 0
    mfspr 0, 27
    mtspr 315, 0
    ld 0, GX_LR(11)
    mtlr 0
    ld 0, GX_CTR(11)
    mtctr 0
    ld 0, GX_XER(11)
    mtxer 0
    ld 0, PCX_CR(13)
    mtcr 0
    ld 0, GX_GPR+0*8(11)
    ld 1, GX_GPR+1*8(11)
    ld 2, GX_GPR+2*8(11)
    li 3, 0
    li 4, 0
    li 5, 0
    li 6, 0
    li 7, 0
    ld 8, GX_GPR+8*8(11)
    ld 9, GX_GPR+9*8(11)
    ld 10, GX_GPR+10*8(11)
    ld 12, PCX_R12(13)
    ld 11, PCX_R11(13)
    mfspr 13, 305
    hrfid
    /* Declined: complete the volatile save as PAPRIKA_GX_SAVE_VOLATILE would
       have, then the full exit. */
3:  ld 0, PCX_R11(13)
    std 0, GX_GPR+11*8(11)
    ld 0, PCX_R12(13)
    std 0, GX_GPR+12*8(11)
    ld 0, PCX_CR(13)
    std 0, GX_CR(11)
    li 12, 0xc00
    b paprika_guest_exit_rest

    .globl paprika_guest_return
paprika_guest_return:
    mr 3, 12
    ld 13, 32+1*8(1)
    ld 14, 32+2*8(1)
    ld 15, 32+3*8(1)
    ld 16, 32+4*8(1)
    ld 17, 32+5*8(1)
    ld 18, 32+6*8(1)
    ld 19, 32+7*8(1)
    ld 20, 32+8*8(1)
    ld 21, 32+9*8(1)
    ld 22, 32+10*8(1)
    ld 23, 32+11*8(1)
    ld 24, 32+12*8(1)
    ld 25, 32+13*8(1)
    ld 26, 32+14*8(1)
    ld 27, 32+15*8(1)
    ld 28, 32+16*8(1)
    ld 29, 32+17*8(1)
    ld 30, 32+18*8(1)
    ld 31, 32+19*8(1)
    ld 0, 32+20*8(1)
    mtcr 0
    addi 1, 1, HF
    ld 0, 16(1)
    mtlr 0
    blr
"#,
    g_gpr = const G_GPR,
    g_cr = const G_CR,
    g_lr = const G_LR,
    g_ctr = const G_CTR,
    g_xer = const G_XER,
    g_pc = const G_PC,
    g_msr = const G_MSR,
    g_vector = const G_VECTOR,
    g_srr0 = const G_SRR0,
    g_srr1 = const G_SRR1,
    g_hsrr0 = const G_HSRR0,
    g_hsrr1 = const G_HSRR1,
    g_dar = const G_DAR,
    g_dsisr = const G_DSISR,
    g_hdar = const G_HDAR,
    g_hdsisr = const G_HDSISR,
    g_asdr = const G_ASDR,
    g_heir = const G_HEIR,
    g_hash_lpcr = const G_HASH_LPCR,
    g_host_lpcr = const G_HOST_LPCR,
    pc_host_sp = const percpu::PC_HOST_SP,
    pc_vcpu = const percpu::PC_VCPU,
    pc_in_guest = const percpu::PC_IN_GUEST,
    pc_guest_ret = const percpu::PC_GUEST_RET,
    pc_kmsr = const percpu::PC_KERNEL_MSR,
    pc_r11 = const percpu::PC_SAVE_R11,
    pc_r12 = const percpu::PC_SAVE_R12,
    pc_cr = const percpu::PC_SAVE_CR,
    pc_toc = const percpu::PC_TOC,
    h_put_term_char = const crate::papr::hcall::H_PUT_TERM_CHAR,
    h_prod = const crate::papr::hcall::H_PROD,
    h_rpt_invalidate = const crate::papr::hcall::H_RPT_INVALIDATE,
    host_frame = const HOST_FRAME,
    uv_return = const crate::uv::UV_RETURN,
);

extern "C" {
    fn paprika_guest_enter(regs: *mut GuestRegs) -> u64;
    fn paprika_guest_return();
}

/// Address the exit path resumes the host at, for `PerCpu::guest_ret`.
pub fn return_address() -> u64 {
    paprika_guest_return as *const () as u64
}

/// Runs the guest described by `regs` until it exits; returns the exit vector. The
/// caller has loaded every other guest SPR (LPIDR, LPCR, PIDR, DEC, HDEC, ...).
///
/// # Safety
/// The partition's PATE and the guest SPRs must confine the guest to its own memory;
/// `regs.msr` must not have HV set.
pub unsafe fn enter(regs: &mut GuestRegs) -> u64 {
    // SAFETY: the assembly saves and restores every non-volatile register and returns
    // here on the host stack; the caller vouches for the guest context.
    unsafe { paprika_guest_enter(regs) }
}

/// What `enter_uv` returns when the ultravisor did not take the UV_RETURN (it
/// came back to the hypervisor with a status): not an interrupt vector; the
/// partition is stopped with a fault (`fault::vector_name`).
pub const EXIT_UV_RETURN_REFUSED: u64 = crate::uv::UV_RETURN;

extern "C" {
    fn paprika_guest_enter_uv(regs: *mut GuestRegs) -> u64;
}

/// [`enter`] for a vCPU whose last exit the ultravisor reflected: resumed by
/// the ultracall UV_RETURN instead of `hrfid` (`uv::partition::Resume`).
/// Returns the next exit's vector, or [`EXIT_UV_RETURN_REFUSED`].
///
/// # Safety
/// As [`enter`]; and an ultravisor must be present (`ucall::present`): on a
/// machine without one, `sc 2` is not an ultracall.
pub unsafe fn enter_uv(regs: &mut GuestRegs) -> u64 {
    debug_assert!(super::ucall::present());
    // SAFETY: as `enter`; UV_RETURN either resumes the vCPU (whose next exit
    // returns here through `paprika_guest_return`) or comes back, and the
    // assembly then returns through the same host frame.
    unsafe { paprika_guest_enter_uv(regs) }
}
