//! Typed access to special-purpose registers.
//!
//! One module per SPR with the number fixed in the instruction, so a typo cannot
//! address the wrong register. Reads are safe (no side effects on the SPRs we read);
//! writes are `unsafe` because they change how the machine translates, interrupts or
//! schedules. SPR numbers from Power ISA v3.0B Book III chapter 4 and Linux's
//! `asm/reg.h` naming.

macro_rules! spr {
    ($(#[$m:meta])* $name:ident = $num:literal) => {
        $(#[$m])*
        pub mod $name {
            /// The SPR number.
            pub const NUMBER: u16 = $num;

            /// Reads the register.
            #[inline(always)]
            pub fn read() -> u64 {
                let v: u64;
                // SAFETY: mfspr of this SPR has no side effects and touches no memory.
                unsafe {
                    core::arch::asm!(concat!("mfspr {0}, ", stringify!($num)), out(reg) v,
                        options(nomem, nostack, preserves_flags));
                }
                v
            }

            /// Writes the register.
            ///
            /// # Safety
            /// The caller must know what changing this register does to the running
            /// hypervisor (translation, interrupts, timers).
            #[inline(always)]
            pub unsafe fn write(v: u64) {
                // SAFETY: the caller vouches for the value (see above).
                unsafe {
                    core::arch::asm!(concat!("mtspr ", stringify!($num), ", {0}"), in(reg) v,
                        options(nostack, preserves_flags));
                }
            }
        }
    };
}

spr!(/// Fixed-point exception register.
    xer = 1);
spr!(/// Data stream control register.
    dscr = 17);
spr!(/// Data storage interrupt status.
    dsisr = 18);
spr!(/// Data address register.
    dar = 19);
spr!(/// Decrementer.
    dec = 22);
spr!(/// Save/restore registers.
    srr0 = 26);
spr!(srr1 = 27);
spr!(/// Come-from address register.
    cfar = 28);
spr!(/// Process ID (radix: selects the process-table entry for quadrant 0).
    pidr = 48);
spr!(/// Time base, read-only view.
    tbrl = 268);
spr!(/// Guest-owned scratch registers.
    sprg0 = 272);
spr!(sprg1 = 273);
spr!(sprg2 = 274);
spr!(sprg3 = 275);
spr!(/// Processor version register.
    pvr = 287);
spr!(/// Hypervisor scratch: the per-CPU data pointer.
    hsprg0 = 304);
spr!(/// Hypervisor scratch: the interrupt entry's spill slot for r13.
    hsprg1 = 305);
spr!(/// Hypervisor data storage interrupt status.
    hdsisr = 306);
spr!(/// Hypervisor data address.
    hdar = 307);
spr!(/// Hypervisor decrementer.
    hdec = 310);
spr!(/// Hypervisor save/restore registers.
    hsrr0 = 314);
spr!(hsrr1 = 315);
spr!(/// Logical partitioning control.
    lpcr = 318);
spr!(/// Logical partition ID.
    lpidr = 319);
spr!(/// Hypervisor maintenance exception register.
    hmer = 336);
spr!(/// Hypervisor emulation instruction register (the instruction behind an HEAI).
    heir = 339);
spr!(/// Thread identification register (thread number within the core).
    tir = 446);
spr!(/// Partition table control register.
    ptcr = 464);
spr!(/// Access segment descriptor register (guest real page of an HDSI).
    asdr = 816);
spr!(/// Processor stop status and control.
    psscr = 855);
spr!(/// Processor identification register.
    pir = 1023);
spr!(/// Authority mask register (guest-owned).
    amr = 29);
spr!(/// Instruction authority mask register.
    iamr = 61);
spr!(/// Thread identification register (guest-owned).
    tidr = 144);
spr!(/// Facility status and control register.
    fscr = 153);
spr!(/// User authority mask override register.
    uamor = 157);
spr!(/// Problem state priority boost.
    pspb = 159);
spr!(/// Data address watchpoint.
    dawr0 = 180);
spr!(/// Completed instruction address breakpoint.
    ciabr = 187);
spr!(dawrx0 = 188);
spr!(/// Hypervisor facility status and control: which facilities a guest may
    /// use; bits 0:7 (IC) say which one a Hypervisor Facility Unavailable
    /// interrupt was for.
    hfscr = 190);
spr!(/// Directed privileged doorbell exception state (one bit per thread of the
    /// core).
    dpdes = 176);
spr!(/// Vector save register.
    vrsave = 256);
spr!(/// Event-based branch registers.
    ebbhr = 804);
spr!(ebbrr = 805);
spr!(bescr = 806);
spr!(/// Target address register.
    tar = 815);
spr!(/// Performance monitor: sampled instruction event register.
    sier = 784);
spr!(/// Performance monitor mode control registers.
    mmcr2 = 785);
spr!(mmcra = 786);
spr!(/// Performance monitor counters.
    pmc1 = 787);
spr!(pmc2 = 788);
spr!(pmc3 = 789);
spr!(pmc4 = 790);
spr!(pmc5 = 791);
spr!(pmc6 = 792);
spr!(mmcr0 = 795);
spr!(/// Sampled instruction and data addresses.
    siar = 796);
spr!(sdar = 797);
spr!(mmcr1 = 798);
spr!(/// Power10 (ISA v3.1) performance monitor: second and third sampled
    /// instruction event registers and the third mode control register. Only
    /// touch them when [`is_isa_v31`] says the processor has them.
    sier2 = 752);
spr!(sier3 = 753);
spr!(mmcr3 = 754);

/// The processor implements ISA v3.1 (Power10: PVR version 0x0080), and with it
/// the v3.1-only SPRs.
pub fn is_isa_v31() -> bool {
    pvr::read() >> 16 == 0x0080
}
