//! vCPUs: state, the run loop on their pinned hardware thread, guest SPR switching
//! and exit handling.
//!
//! A vCPU's registers belong to its hardware thread; other threads change its state
//! only through atomics (start request, prod, stop) followed by a doorbell to that
//! thread.
use crate::sync::LoadAcquire;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};

use super::facility::{self, HfacAction};
use super::idle;
use super::lpar::{self, Partition, StopReason};
use crate::arch::ppc64::guest::{self, GuestRegs};
use crate::arch::ppc64::regs::{Lpcr, Msr};
use crate::arch::ppc64::{instr, mmu, percpu, smp, spr, timer};
use crate::papr::rtas;
use crate::platform::opal;
use crate::warn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuState {
    /// Not started, or stopped itself (stop-self).
    Stopped = 0,
    /// Has work; its thread runs it.
    Runnable = 1,
}

/// Guest-owned SPRs saved on every exit (an exit or OPAL call may clobber them).
#[derive(Clone, Debug, Default)]
pub struct GuestSprs {
    pub srr0: u64,
    pub srr1: u64,
    pub sprg: [u64; 4],
    pub dar: u64,
    pub dsisr: u64,
    /// Decrementer as of `dec_tb`; `dec_dirty` when the hardware register no longer
    /// holds the guest's value (the hypervisor used it, or a fresh start).
    pub dec: i64,
    pub dec_tb: u64,
    pub dec_dirty: bool,
    pub pidr: u64,
    pub lazy: LazySprs,
}

/// Guest-owned SPRs switched lazily (see `load_lazy`).
#[derive(Clone, Debug, Default)]
pub struct LazySprs {
    pub amr: u64,
    pub iamr: u64,
    pub uamor: u64,
    pub dscr: u64,
    pub fscr: u64,
    pub pspb: u64,
    pub ciabr: u64,
    pub dawr0: u64,
    pub dawrx0: u64,
    pub tar: u64,
    pub ebbhr: u64,
    pub ebbrr: u64,
    pub bescr: u64,
    pub tidr: u64,
    pub vrsave: u64,
    /// Performance monitor (ISA v3.0 set, plus Power10's MMCR3/SIER2/SIER3,
    /// switched only on ISA v3.1 processors).
    pub mmcr0: u64,
    pub mmcr1: u64,
    pub mmcr2: u64,
    pub mmcra: u64,
    pub pmc: [u64; 6],
    pub siar: u64,
    pub sdar: u64,
    pub sier: u64,
    pub mmcr3: u64,
    pub sier2: u64,
    pub sier3: u64,
}

/// The registers a thread owns while it runs the vCPU.
pub struct VcpuContext {
    pub regs: GuestRegs,
    pub sprs: GuestSprs,
    /// The lazily switched SPRs are in the hardware.
    pub lazy_loaded: bool,
    /// The partition's boot epoch this vCPU was started in
    /// (`Partition::epoch`); it leaves the guest once the partition's differs.
    pub epoch: u32,
    /// PEF: the next entry goes through the ultravisor (UV_RETURN), which
    /// alone resumes a vCPU after an exit it reflected or starts a secure one
    /// (`uv::partition::Resume`); interrupts the hypervisor injects meanwhile
    /// are delivered by the UV (`uv::partition::interrupt_entry`).
    pub via_uv: bool,
    /// The emulated device the current full exit's handling touched, for the
    /// exit profile (`partition::mmio::Target::device`); cleared each exit.
    pub exit_device: Option<super::exit_stats::Device>,
    /// The areas this vCPU writes, its dispatch count and DTL index, taken
    /// from `Vcpu::vpa` when `Vcpu::vpa_changed` says so (`set_dispatched`).
    pub vpa: crate::papr::hcall::VpaCopy,
}

/// A start request: where, with which MSR and r3, in which boot epoch, and
/// whether the first entry goes through the ultravisor (a secure VM's RTAS
/// start-cpu, `uv::partition::PartitionUv::start_cpu_entry`).
#[derive(Clone, Copy, Debug)]
struct StartRequest {
    pc: u64,
    msr: u64,
    r3: u64,
    epoch: u32,
    via_uv: bool,
}

pub struct Vcpu {
    pub id: u32,
    /// Logical index of the hardware thread it is pinned to.
    pub thread: u32,
    state: AtomicU8,
    /// Pending start (RTAS start-cpu, boot, reboot), taken by the vCPU's thread.
    start: spin::Mutex<Option<StartRequest>>,
    /// H_PROD arrived (consumed by H_CEDE).
    pub prodded: AtomicBool,
    /// Its XICS presentation controller has an interrupt to present: kept by
    /// `partition::xics::with_xics` under the partition's XICS lock, read
    /// without it on every entry.
    pub xics_pending: AtomicBool,
    pub ceded: AtomicBool,
    /// Inside `run` (possibly in the guest); cleared when it returns.
    active: AtomicBool,
    /// This vCPU asked for system-reboot and performs it once out of the guest.
    pub reboot_owner: AtomicBool,
    /// VPA, DTL and SLB shadow registration (H_REGISTER_VPA, which any vCPU
    /// of the partition may call for this one; a reboot's teardown); the vCPU
    /// takes it into its context's copy at its next dispatch or exit, so the
    /// exit path takes no lock (`set_dispatched`).
    pub vpa: spin::Mutex<crate::papr::hcall::VpaRegistration>,
    /// `vpa` changed since the vCPU last took it (set under `vpa`'s lock).
    pub vpa_changed: AtomicBool,
    /// The dispatch count as the vCPU last set it (only its thread writes):
    /// what a new registration writes into the VPA at once.
    pub yield_count: AtomicU32,
    /// Its registers as of its last full exit, for the debug dumps.
    pub snapshot: super::snapshot::Snapshot,
    /// Full exits by kind and the time spent on them (`PAPRIKA lpar-exits:`).
    pub exits: super::exit_stats::ExitStats,
    ctx: UnsafeCell<VcpuContext>,
}

// SAFETY: `ctx` is only accessed by the hardware thread the vCPU is pinned to (see
// `context`); everything shared is atomic.
unsafe impl Sync for Vcpu {}

impl Vcpu {
    pub fn new(id: u32, thread: u32) -> Self {
        Vcpu {
            id,
            thread,
            state: AtomicU8::new(VcpuState::Stopped as u8),
            start: spin::Mutex::new(None),
            prodded: AtomicBool::new(false),
            xics_pending: AtomicBool::new(false),
            ceded: AtomicBool::new(false),
            active: AtomicBool::new(false),
            reboot_owner: AtomicBool::new(false),
            exits: super::exit_stats::ExitStats::new(),
            vpa: spin::Mutex::new(crate::papr::hcall::VpaRegistration {
                areas: crate::papr::hcall::VpaCopy::INITIAL.areas,
                dtl_restart: false,
            }),
            vpa_changed: AtomicBool::new(false),
            yield_count: AtomicU32::new(crate::papr::hcall::YieldCount::INITIAL.0),
            snapshot: super::snapshot::Snapshot::new(),
            ctx: UnsafeCell::new(VcpuContext {
                regs: GuestRegs::default(),
                sprs: GuestSprs::default(),
                lazy_loaded: false,
                epoch: 0,
                via_uv: false,
                exit_device: None,
                vpa: crate::papr::hcall::VpaCopy::INITIAL,
            }),
        }
    }

    /// Whether the state is Runnable, with a relaxed load (the hcall fast path
    /// fences once after all its checks).
    #[inline(always)]
    pub(crate) fn runnable_relaxed(&self) -> bool {
        self.state.load(Ordering::Relaxed) == VcpuState::Runnable as u8
    }

    pub fn state(&self) -> VcpuState {
        if self.state.load_acquire() == VcpuState::Runnable as u8 {
            VcpuState::Runnable
        } else {
            VcpuState::Stopped
        }
    }

    /// Asks the vCPU to start at `pc` with `msr` and r3 (RTAS start-cpu, or boot),
    /// in the partition's boot `epoch` as the caller read it (`Partition::epoch`):
    /// the vCPU's thread drops the request if the partition rebooted, or began
    /// to, since. Returns false if it is already running or asked to start.
    /// `via_uv`: the first entry is UV_RETURN with r3 in r0 and the vCPU's r31
    /// kept (a secure VM's start-cpu); else `hrfid` with fresh registers.
    pub fn request_start(&self, pc: u64, msr: u64, r3: u64, epoch: u32, via_uv: bool) -> bool {
        {
            let mut start = self.start.lock();
            if self.state() == VcpuState::Runnable || start.is_some() {
                return false;
            }
            *start = Some(StartRequest {
                pc,
                msr,
                r3,
                epoch,
                via_uv,
            });
        }
        self.kick();
        true
    }

    /// Stops the vCPU from another thread (partition reboot) and kicks it out of
    /// the guest.
    pub fn force_stop(&self) {
        *self.start.lock() = None;
        self.state
            .store(VcpuState::Stopped as u8, Ordering::Release);
        self.kick();
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Wakes the vCPU's hardware thread (out of `stop`, or out of the guest).
    pub fn kick(&self) {
        if let Some(pc) = smp::cpus().get(self.thread as usize) {
            if percpu::current().map(|me| me.index) != Some(pc.index) {
                instr::msgsnd_hyp(pc.pir);
            }
        }
    }

    /// The context; only the vCPU's own hardware thread may call this.
    #[allow(clippy::mut_from_ref)]
    fn context(&self) -> &mut VcpuContext {
        // SAFETY: only `run` (on the pinned thread) and the hcall/RTAS handlers it
        // calls reach here, one at a time; other threads use the atomics.
        unsafe { &mut *self.ctx.get() }
    }
}

/// Which vCPU each hardware thread runs (logical index -> vCPU), and its partition.
static ASSIGNED: [AtomicPtr<Vcpu>; smp::MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; smp::MAX_CPUS];
static ASSIGNED_LPAR: [AtomicPtr<Partition>; smp::MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; smp::MAX_CPUS];

pub fn assign(p: &'static Partition, v: &'static Vcpu) {
    if let (Some(a), Some(b)) = (
        ASSIGNED.get(v.thread as usize),
        ASSIGNED_LPAR.get(v.thread as usize),
    ) {
        b.store(p as *const Partition as *mut Partition, Ordering::Release);
        if let Some(l) = ASSIGNED_LPID.get(v.thread as usize) {
            l.store(p.lpid, Ordering::Relaxed);
        }
        a.store(v as *const Vcpu as *mut Vcpu, Ordering::Release);
    }
}

/// The partition and vCPU thread `index` serves, if any (for the hcall fast path).
pub fn assigned_to(index: u32) -> Option<(&'static Partition, &'static Vcpu)> {
    // Two relaxed loads and one acquire fence: the ordering of two acquire
    // loads, one `lwsync` fewer on the fast path.
    let v = ASSIGNED.get(index as usize)?.load(Ordering::Relaxed);
    let p = ASSIGNED_LPAR.get(index as usize)?.load(Ordering::Relaxed);
    core::sync::atomic::fence(Ordering::Acquire);
    // SAFETY: non-null values come from `assign`, which takes 'static references.
    unsafe { Some((p.as_ref()?, v.as_ref()?)) }
}

/// Called by every hardware thread's idle loop: runs this thread's vCPU when it has
/// something to do.
pub fn thread_work() {
    let Some(me) = percpu::current() else { return };
    let i = me.index as usize;
    let (Some(v), Some(p)) = (ASSIGNED.get(i), ASSIGNED_LPAR.get(i)) else {
        return;
    };
    let v = v.load(Ordering::Acquire);
    let p = p.load(Ordering::Acquire);
    if v.is_null() || p.is_null() {
        return;
    }
    // SAFETY: assigned pointers come from `assign`, which takes 'static references.
    let (v, p) = unsafe { (&*v, &*p) };
    // A host interrupt queued here while the vCPU was not running (or a
    // signal left after its route moved away) must not keep `stop` from
    // stopping: take it now (docs/passthrough.md "MSI").
    if super::host_irq::here() {
        super::passthrough::take_host_irqs(p);
    }
    // Loops so that work this thread creates for itself (a reboot restarting vCPU 0
    // here) runs without waiting for a wake-up.
    while p.is_running() {
        let start = v.start.lock().take();
        if let Some(StartRequest {
            pc,
            msr,
            r3,
            epoch,
            via_uv,
        }) = start
        {
            // A start asked for before a reboot began (or while it runs) is void:
            // the image it names is being replaced (audit finding 10).
            if epoch == p.epoch() && epoch.is_multiple_of(2) {
                let ctx = v.context();
                // Through the ultravisor, r31 stays: the cookie of the vCPU's
                // reflected stop-self, which UV_RETURN hands back (the UV
                // releases it; the open-power UV's `rtas_start_cpu_end`).
                let r31 = if via_uv { ctx.regs.gpr[31] } else { 0 };
                ctx.regs = GuestRegs::default();
                ctx.regs.gpr[31] = r31;
                ctx.via_uv = via_uv;
                ctx.sprs = GuestSprs {
                    dec: 0x7fff_ffff,
                    dec_tb: instr::mftb(),
                    dec_dirty: true,
                    ..Default::default()
                };
                // The performance monitor starts frozen, as KVM-HV starts a vCPU.
                (ctx.sprs.lazy.mmcr0, ctx.sprs.lazy.mmcra) =
                    facility::frozen_pmu(spr::is_isa_v31());
                ctx.lazy_loaded = false;
                // FP/VMX/VSX live in the thread (the hypervisor never uses them):
                // a fresh vCPU must not see what the thread ran before.
                instr::zero_fp_vector_state();
                // Nor the segments a hash guest left in the SLB (the radix
                // hypervisor never uses it; a thread serves one vCPU, so the
                // guest's entries stay resident across its exits).
                instr::slb_clear();
                ctx.epoch = epoch;
                ctx.regs.pc = pc;
                ctx.regs.msr = msr;
                ctx.regs.gpr[3] = r3;
                v.state.store(VcpuState::Runnable as u8, Ordering::Release);
            }
        }
        if v.state() != VcpuState::Runnable {
            return;
        }
        // Announce, then check the epoch (both sequentially consistent; the
        // reboot bumps the epoch, then waits for `active` to clear): either this
        // thread sees the reboot and does not enter, or the reboot waits for it,
        // and `run` leaves at the next exit since the epoch differs.
        v.active.store(true, Ordering::SeqCst);
        let epoch = v.context().epoch;
        if p.epoch.load(Ordering::SeqCst) != epoch {
            v.state.store(VcpuState::Stopped as u8, Ordering::Release);
            v.active.store(false, Ordering::Release);
            continue;
        }
        run(p, v, epoch);
        set_dispatched(p, v, false, v.context());
        let ctx = v.context();
        if ctx.lazy_loaded {
            save_lazy(&mut ctx.sprs.lazy);
            ctx.lazy_loaded = false;
        }
        release();
        v.active.store(false, Ordering::Release);
        p.release_if_idle();
        if p.is_running()
            && p.reboot_requested.load(Ordering::Acquire)
            && v.reboot_owner.swap(false, Ordering::AcqRel)
        {
            p.reboot(v);
        }
    }
}

/// What an exit handler wants next.
pub enum Next {
    Resume,
    /// The vCPU stopped (stop-self) or its partition did.
    Leave,
}

/// Guest time slice before HDEC forces an exit (lets the hypervisor poll OPAL).
const SLICE_US: u64 = 10_000;
const DEC_QUIET: u64 = 0x7fff_ffff;

/// Every entry: the registers an exit or an OPAL call may clobber (SRR0/1, SPRG0-3,
/// DAR, DSISR), the partition's LPIDR/LPCR/PIDR when this thread holds others, the
/// decrementer when the hypervisor used it (H_CEDE) and the HDEC time slice.
/// `hfscr`: `facility::guest_hfscr` for this processor, computed once by `run`
/// (the PVR it depends on does not change) rather than on every entry.
fn switch_in(p: &Partition, ctx: &mut VcpuContext, mer: bool, hfscr: u64) {
    let s = &mut ctx.sprs;
    // `Partition::lpcr`, with the hash step done in the hash branch below only
    // (hash_active read once; the radix entry pays no hash work: issue 15's
    // check that the radix exit path is not slower, docs/benchmarks.md).
    let hash = p.hash_active();
    let host = lpar::host_lpcr();
    let mut lpcr = p.radix_lpcr(host);
    if mer {
        lpcr.insert(Lpcr::MER);
    }
    // SAFETY: these SPRs belong to the guest from here until the exit; the
    // hypervisor's own translation (quadrant 3) uses LPID 0 / PID 0 regardless of
    // LPIDR/PIDR, and interrupts are off.
    unsafe {
        // Writing LPIDR, LPCR or PIDR makes the MMU (and QEMU's TLB) start over, so
        // they are only written when they differ from what this thread has loaded:
        // with pinned vCPUs that is once, on the first entry.
        if spr::lpidr::read() != u64::from(p.lpid) {
            spr::lpidr::write(u64::from(p.lpid));
        }
        if hash {
            // Hashed translation: the thread keeps the host LPCR while it handles
            // exits; the entry loads this one with translation off
            // (`partition::hash`, `arch::ppc64::guest`).
            ctx.regs.hash_lpcr = super::hash::lpcr(lpcr).bits();
            ctx.regs.host_lpcr = host.bits();
        } else {
            ctx.regs.hash_lpcr = 0;
            if spr::lpcr::read() != lpcr.bits() {
                spr::lpcr::write(lpcr.bits());
            }
        }
        if spr::pidr::read() != s.pidr {
            spr::pidr::write(s.pidr);
        }
        instr::isync();
        // The facilities the partition may use (facility::guest_hfscr). Compared
        // rather than written blindly: a Hypervisor Facility Unavailable
        // interrupt leaves its cause in HFSCR[IC] (and the firmware's value
        // must never apply), both of which differ and get rewritten, while
        // the common entry pays a read, not a move to an SPR.
        if spr::hfscr::read() != hfscr {
            spr::hfscr::write(hfscr);
        }
        if !ctx.lazy_loaded {
            load_lazy(&s.lazy);
            ctx.lazy_loaded = true;
        } else {
            thaw_pmu(&s.lazy);
        }
        spr::srr0::write(s.srr0);
        spr::srr1::write(s.srr1);
        spr::sprg0::write(s.sprg[0]);
        spr::sprg1::write(s.sprg[1]);
        spr::sprg2::write(s.sprg[2]);
        spr::sprg3::write(s.sprg[3]);
        spr::dar::write(s.dar);
        spr::dsisr::write(s.dsisr);
        if s.dec_dirty {
            let left = s
                .dec
                .saturating_sub(instr::mftb().wrapping_sub(s.dec_tb) as i64);
            spr::dec::write(left as u64 & 0xffff_ffff);
            s.dec_dirty = false;
        }
        // Re-arm the slice only once it has run out (or was never armed): writing
        // HDEC costs an emulator timer update, and keeping the deadline is as good.
        let slice = timer::us_to_ticks(SLICE_US).min(DEC_QUIET);
        let left = spr::hdec::read() as i64;
        if left <= 0 || left > slice as i64 {
            spr::hdec::write(slice);
        }
    }
}

/// Every exit: what the hypervisor or OPAL may overwrite before the next entry.
/// The decrementer keeps counting for the guest in hardware; only its value is
/// noted for H_CEDE.
fn switch_out(ctx: &mut VcpuContext) {
    let s = &mut ctx.sprs;
    s.dec_tb = instr::mftb();
    s.dec = spr::dec::read() as u32 as i32 as i64;
    s.srr0 = spr::srr0::read();
    s.srr1 = spr::srr1::read();
    s.sprg = [
        spr::sprg0::read(),
        spr::sprg1::read(),
        spr::sprg2::read(),
        spr::sprg3::read(),
    ];
    s.dar = spr::dar::read();
    s.dsisr = spr::dsisr::read();
    s.pidr = spr::pidr::read();
    if ctx.lazy_loaded {
        freeze_pmu(&mut s.lazy);
    }
}

/// Every exit: saves the guest's MMCR0 and MMCRA and freezes the performance
/// monitor while the hypervisor holds the thread (KVM-HV's `freeze_pmu`): the
/// guest's counters do not count hypervisor work, SIAR/SDAR do not sample
/// hypervisor addresses, and no alert (MMCR0[PMAO]) stays pending into the
/// hypervisor, where a Performance Monitor interrupt would be taken at 0xf00
/// the moment it enables interrupts. Written only when different.
fn freeze_pmu(l: &mut LazySprs) {
    let (mmcr0, mmcra) = facility::frozen_pmu(spr::is_isa_v31());
    l.mmcr0 = spr::mmcr0::read();
    l.mmcra = spr::mmcra::read();
    // SAFETY: the performance monitor is the guest's; freezing it only stops its
    // counting and alerts.
    unsafe {
        if l.mmcr0 != mmcr0 {
            spr::mmcr0::write(mmcr0);
        }
        if l.mmcra != mmcra {
            spr::mmcra::write(mmcra);
        }
    }
    instr::isync();
}

/// Every entry after the first: gives the guest its MMCRA and MMCR0 back (MMCR0,
/// which may unfreeze the counters, last).
fn thaw_pmu(l: &LazySprs) {
    let (mmcr0, mmcra) = facility::frozen_pmu(spr::is_isa_v31());
    // SAFETY: the guest's own performance monitor values, as `load_lazy` writes.
    unsafe {
        if l.mmcra != mmcra {
            spr::mmcra::write(l.mmcra);
        }
        if l.mmcr0 != mmcr0 {
            spr::mmcr0::write(l.mmcr0);
        }
    }
}

/// Guest-owned registers that neither the hypervisor nor OPAL touch: they stay live
/// in the pinned thread across exits and are switched only when the thread starts
/// or stops serving the vCPU (lazy switching).
fn load_lazy(l: &LazySprs) {
    // SAFETY: guest-owned registers with no effect on the hypervisor (quadrant-3
    // accesses ignore AMR/IAMR; the watchpoints match guest addresses only).
    unsafe {
        spr::amr::write(l.amr);
        spr::iamr::write(l.iamr);
        spr::uamor::write(l.uamor);
        spr::dscr::write(l.dscr);
        spr::fscr::write(l.fscr);
        spr::pspb::write(l.pspb);
        crate::arch::ppc64::ucall::write_debug_sprs(l.ciabr, l.dawr0, l.dawrx0);
        spr::tar::write(l.tar);
        spr::ebbhr::write(l.ebbhr);
        spr::ebbrr::write(l.ebbrr);
        spr::bescr::write(l.bescr);
        spr::tidr::write(l.tidr);
        spr::vrsave::write(l.vrsave);
        // Counters first, MMCR0 (which may unfreeze them) last.
        spr::pmc1::write(l.pmc[0]);
        spr::pmc2::write(l.pmc[1]);
        spr::pmc3::write(l.pmc[2]);
        spr::pmc4::write(l.pmc[3]);
        spr::pmc5::write(l.pmc[4]);
        spr::pmc6::write(l.pmc[5]);
        spr::siar::write(l.siar);
        spr::sdar::write(l.sdar);
        spr::sier::write(l.sier);
        if spr::is_isa_v31() {
            spr::sier2::write(l.sier2);
            spr::sier3::write(l.sier3);
            spr::mmcr3::write(l.mmcr3);
        }
        spr::mmcra::write(l.mmcra);
        spr::mmcr2::write(l.mmcr2);
        spr::mmcr1::write(l.mmcr1);
        spr::mmcr0::write(l.mmcr0);
    }
}

fn save_lazy(l: &mut LazySprs) {
    l.amr = spr::amr::read();
    l.iamr = spr::iamr::read();
    l.uamor = spr::uamor::read();
    l.dscr = spr::dscr::read();
    l.fscr = spr::fscr::read();
    l.pspb = spr::pspb::read();
    (l.ciabr, l.dawr0, l.dawrx0) = crate::arch::ppc64::ucall::read_debug_sprs();
    l.tar = spr::tar::read();
    l.ebbhr = spr::ebbhr::read();
    l.ebbrr = spr::ebbrr::read();
    l.bescr = spr::bescr::read();
    l.tidr = spr::tidr::read();
    l.vrsave = spr::vrsave::read();
    // MMCR0 and MMCRA were saved, and the counters frozen, by the exit's
    // `freeze_pmu`; the performance monitor stays frozen with no alert pending
    // while the thread is the hypervisor's.
    l.mmcr1 = spr::mmcr1::read();
    l.mmcr2 = spr::mmcr2::read();
    l.pmc = [
        spr::pmc1::read(),
        spr::pmc2::read(),
        spr::pmc3::read(),
        spr::pmc4::read(),
        spr::pmc5::read(),
        spr::pmc6::read(),
    ];
    l.siar = spr::siar::read();
    l.sdar = spr::sdar::read();
    l.sier = spr::sier::read();
    if spr::is_isa_v31() {
        l.mmcr3 = spr::mmcr3::read();
        l.sier2 = spr::sier2::read();
        l.sier3 = spr::sier3::read();
    }
}

/// Gives the thread back to the hypervisor: LPID 0, the hypervisor's PID (whose
/// process-table entry is invalid, so quadrant-0 pointers fault again) and LPCR.
fn release() {
    // SAFETY: no guest runs on this thread any more.
    unsafe {
        spr::lpcr::write(lpar::host_lpcr().bits());
        spr::lpidr::write(0);
        instr::isync();
        spr::pidr::write(mmu::HV_PIDR);
        instr::isync();
        spr::amr::write(0);
        spr::iamr::write(0);
    }
    // A hash guest's segments leave with it.
    instr::slb_clear();
    // A directed privileged doorbell the guest left pending on this thread (it
    // cannot send one: HFSCR[MSGP] is clear) would be taken at 0xa00 in the
    // hypervisor's idle loop.
    instr::msgclrp();
}

/// An external interrupt waits for the vCPU: from its XICS presentation
/// controller, or from its XIVE OS ring (exception bit set). Lock-free: both are
/// atomics the controllers keep under their locks (`Vcpu::xics_pending`,
/// `xive::SharedXive::pending`), set before the vCPU is kicked; this runs on
/// every entry, in H_CEDE's loop and in the hcall fast path.
#[inline]
pub fn external_pending(p: &Partition, v: &Vcpu) -> bool {
    v.xics_pending.load_acquire() || p.xive.pending(v.id)
}

/// Presents a pending XICS or XIVE interrupt: injects an external interrupt (0x500) when
/// the guest has MSR[EE] set; otherwise returns true so the entry sets LPCR[MER],
/// which makes the guest exit as soon as it enables interrupts.
fn deliver_external(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext) -> bool {
    if !external_pending(p, v) {
        return false;
    }
    if ctx.regs.msr & Msr::EE.bits() != 0 {
        inject(p, ctx, 0x500, 0);
        false
    } else {
        true
    }
}

/// The guest's exit SRR pair for `vector`: where it was and with which MSR.
fn exit_pc_msr(r: &GuestRegs) -> (u64, u64) {
    if crate::fault::uses_hsrr(r.exit_vector) {
        (r.hsrr0, r.hsrr1)
    } else {
        (r.srr0, r.srr1)
    }
}

/// Delivers interrupt `vector` to the guest at its current PC, with `srr1_bits`
/// describing the cause (and DAR/DSISR set by the caller for storage interrupts):
/// at the AIL = 3 location when the partition asked for it, or, for a vCPU the
/// ultravisor resumes, at the bare vector the UV accepts
/// (`uv::partition::interrupt_entry`).
pub fn inject(p: &Partition, ctx: &mut VcpuContext, vector: u64, srr1_bits: u64) {
    let resume = if ctx.via_uv {
        crate::uv::partition::Resume::UvReturn
    } else {
        crate::uv::partition::Resume::Hrfid
    };
    let e = crate::uv::partition::interrupt_entry(
        resume,
        p.ail.load(Ordering::Relaxed),
        p.interrupt_le.load(Ordering::Relaxed),
        ctx.regs.pc,
        ctx.regs.msr,
        vector,
        srr1_bits,
    );
    ctx.sprs.srr0 = e.srr0;
    ctx.sprs.srr1 = e.srr1;
    ctx.regs.pc = e.pc;
    ctx.regs.msr = e.msr;
}

fn run(p: &Partition, v: &Vcpu, epoch: u32) {
    let ctx = v.context();
    let hfscr = facility::guest_hfscr(spr::is_isa_v31());
    loop {
        if !p.is_running() || v.state() != VcpuState::Runnable || p.epoch.load_acquire() != epoch {
            return;
        }
        opal::heartbeat();
        super::hcalls_misc::deliver_sreset(p, v, ctx);
        crate::console::input::poll_due();
        super::lpar::console_tick();
        super::passthrough::poll_msi(p);
        let mer = deliver_external(p, v, ctx);
        // Dispatched again (the VPA's count goes even; a DTL entry with where it
        // resumes), as KVM-HV counts every entry.
        set_dispatched(p, v, true, ctx);
        switch_in(p, ctx, mer, hfscr);
        // Another vCPU invalidated translations locally while this one was out
        // of the guest: drop this thread's (LPIDR is loaded; `partition::tlb`).
        if p.tlb.enter(v.id as usize, p.vcpus.len()) {
            instr::tlbiel_lpid_proc(p.lpid, crate::arch::ppc64::mmu::tlb_sets());
        }
        // SAFETY: the PATE for this LPID maps only the partition's memory, HV is
        // clear in the MSR we enter with, and `switch_in` loaded the guest SPRs.
        let vector = unsafe {
            ctx.regs.msr &= !(Msr::HV | Msr::S).bits();
            if ctx.via_uv {
                guest::enter_uv(&mut ctx.regs)
            } else {
                guest::enter(&mut ctx.regs)
            }
        };
        p.tlb.exit(v.id as usize, p.vcpus.len());
        switch_out(ctx);
        let (pc, msr) = exit_pc_msr(&ctx.regs);
        ctx.regs.pc = pc;
        ctx.regs.msr = msr;
        // Every full exit takes the thread away from the vCPU for as long as the
        // hypervisor needs (demand-zeroing a chunk, a console wait, an RTAS
        // call, H_CEDE): the VPA's count goes odd until the next entry, as KVM-HV
        // counts every exit. (The hcall fast path, which never leaves real mode
        // on the exit vector, does not count.)
        set_dispatched(p, v, false, ctx);
        let r = &ctx.regs;
        let detail = match vector {
            0xe00 | 0xe20 => r.asdr,
            0xe40 => r.heir,
            _ => 0,
        };
        v.snapshot.publish(pc, msr, r.lr, vector, r.gpr[3], detail);
        // PEF: an exit the ultravisor reflected is resumed by it alone.
        ctx.via_uv = super::pef::resume_via_uv(p, v, ctx, vector);
        let kind = super::exit_stats::kind(vector, r.gpr[3]);
        ctx.exit_device = None;
        let t0 = instr::mftb();
        let next = handle_exit(p, v, ctx, vector);
        let kind = super::exit_stats::refine_storage(kind, ctx.exit_device);
        v.exits.record(kind, instr::mftb().wrapping_sub(t0));
        match next {
            Next::Resume => {}
            Next::Leave => return,
        }
    }
}

fn handle_exit(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, vector: u64) -> Next {
    match vector {
        0xc00 => super::hcalls::dispatch(p, v, ctx),
        // HDEC: end of the time slice. Doorbells: a kick (start, prod, stop).
        0x980 => Next::Resume,
        0xe80 => {
            instr::msgclr_hyp();
            Next::Resume
        }
        0xe00 | 0xe20 if p.hash_active() => super::hash::storage_exit(p, v, ctx, vector),
        0xe00 => {
            // HDSI: the guest touched a guest real address not mapped yet: memory
            // it uses for the first time (zeroed and mapped now), an emulated
            // device, or nothing at all.
            let gra = ctx.regs.asdr & !0xfff;
            if gra < p.mem_size {
                // Only "no translation" is a first touch; anything else on its
                // own memory would fault again at once, forever.
                if ctx.regs.hdsisr & facility::FAULT_NO_TRANSLATION != 0 && p.demand_fault(gra) {
                    return Next::Resume; // first use: zeroed and mapped (partition::demand)
                }
                return fatal(
                    p,
                    alloc::format!(
                        "unexpected HDSI at guest real {gra:#x}, HDSISR {:#x}",
                        ctx.regs.hdsisr
                    ),
                );
            }
            // An access to an emulated device (XIVE TIMA/ESB pages, MSI-X
            // table pages of passed-through functions), unless the
            // fault came from walking the guest's own tables (HDSISR bit 46).
            if ctx.regs.hdsisr & HDSISR_PRTABLE == 0 {
                let addr = (ctx.regs.asdr & 0x0fff_ffff_ffff_f000) | (ctx.regs.hdar & 0xfff);
                if let Some(target) = super::mmio::target(p, addr) {
                    ctx.exit_device = Some(target.device());
                    if let Some(next) = super::mmio::emulate(p, v, ctx, addr, &target) {
                        return next;
                    }
                    // A device page, but an access the hypervisor does not
                    // emulate: a data storage interrupt (partition::mmio).
                    ctx.sprs.dar = ctx.regs.hdar;
                    ctx.sprs.dsisr = ctx.regs.hdsisr;
                    inject(p, ctx, 0x300, 0);
                    return Next::Resume;
                }
            }
            let kind = if ctx.regs.hdsisr & facility::HDSISR_STORE != 0 {
                facility::Unassigned::Store
            } else {
                facility::Unassigned::Load
            };
            machine_check(p, v, ctx, kind)
        }
        0xe20 => {
            let gra = ctx.regs.asdr & !0xfff;
            if gra < p.mem_size
                && ctx.regs.hsrr1 & facility::FAULT_NO_TRANSLATION != 0
                && p.demand_fault(gra)
            {
                return Next::Resume; // first use: zeroed and mapped (partition::demand)
            }
            if gra < p.mem_size {
                return fatal(
                    p,
                    alloc::format!(
                        "unexpected HISI at guest real {gra:#x}, HSRR1 {:#x}",
                        ctx.regs.hsrr1
                    ),
                );
            }
            machine_check(p, v, ctx, facility::Unassigned::Fetch)
        }
        0xe40 => {
            // An instruction the guest may not execute: program interrupt, illegal
            // instruction (SRR1 bit 44).
            rate_limited_warn(
                p,
                "emulation assist (illegal instruction) at pc",
                ctx.regs.pc,
            );
            rate_limited_warn(p, "  instruction word (HEIR)", ctx.regs.heir);
            inject(p, ctx, 0x700, SRR1_PROGRAM_ILLEGAL);
            Next::Resume
        }
        0xe60 => {
            let _ = opal::handle_hmi();
            Next::Resume
        }
        // A host interrupt on this thread's physical ring (pass-through
        // MSIs; every partition's LPCR has HVICE, only threads serving one
        // with devices open their ring).
        0xea0 => {
            super::passthrough::take_host_irqs(p);
            Next::Resume
        }
        0x500 | 0xa00 => Next::Resume,
        0xf80 => facility_unavailable(p, ctx),
        0x200 => {
            // A machine check while the guest ran: reflect it to the guest.
            inject(p, ctx, 0x200, ctx.regs.srr1);
            Next::Resume
        }
        other => fatal(
            p,
            alloc::format!(
                "unexpected exit {:#x} ({}) at pc {:#x}",
                other,
                crate::fault::vector_name(other),
                ctx.regs.pc
            ),
        ),
    }
}

/// Hypervisor Facility Unavailable (0xf80): the guest used a facility its HFSCR
/// does not grant (HFSCR[IC] says which). As KVM-HV: a program interrupt
/// (illegal instruction) for what is not granted, a retry for what is.
fn facility_unavailable(p: &Partition, ctx: &mut VcpuContext) -> Next {
    let hfscr = spr::hfscr::read();
    let granted = facility::guest_hfscr(spr::is_isa_v31());
    match facility::hfac_action(hfscr, granted) {
        HfacAction::Retry => Next::Resume,
        HfacAction::ProgramIllegal => {
            rate_limited_warn(
                p,
                facility::facility_name(facility::hfac_cause(hfscr)),
                ctx.regs.pc,
            );
            inject(p, ctx, 0x700, SRR1_PROGRAM_ILLEGAL);
            Next::Resume
        }
    }
}

/// A machine check (0x200) for an access to a real address with nothing behind
/// it, as PowerVM and KVM give (QEMU's bits, `facility::unassigned_access`):
/// SRR0 = the instruction, relocation and MSR[ME] off, AIL does not apply.
///
/// With FWNMI registered (ibm,nmi-register), as QEMU/KVM deliver a machine
/// check then (`spapr_mce_dispatch_elog`): the guest's r3 and an RTAS error log
/// (`papr::rtas::mce_error_log`) go to the partition's buffer in the RTAS area,
/// r3 points at it, and the registered handler runs with MSR = ME | SF | LE
/// (the interrupt endianness); SRR0/1, DAR and DSISR are as above. The buffer is
/// the vCPU's until it calls ibm,nmi-interlock: another vCPU's machine check
/// meanwhile is not delivered yet (its access is retried), a second one on the
/// same vCPU stops the partition (QEMU: "nested machine check").
pub(super) fn machine_check(
    p: &Partition,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    kind: facility::Unassigned,
) -> Next {
    let handler = p.fwnmi_mce.load(Ordering::Acquire);
    let me = p
        .vcpus
        .iter()
        .position(|t| core::ptr::eq(&**t, v))
        .unwrap_or(0) as u64;
    let fwnmi = handler != u64::MAX;
    if fwnmi {
        match p
            .fwnmi_interlock
            .compare_exchange(u64::MAX, me, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(holder) if holder == me => {
                return fatal(
                    p,
                    alloc::string::String::from("nested machine check before ibm,nmi-interlock"),
                );
            }
            // Another vCPU's log is in the buffer: retry the access later.
            Err(_) => return Next::Resume,
        }
    }
    match kind {
        facility::Unassigned::Fetch => {
            rate_limited_warn(p, "instruction fetch outside partition memory", ctx.regs.pc)
        }
        _ => rate_limited_warn(p, "data access outside partition memory", ctx.regs.hdar),
    }
    let mc = facility::unassigned_access(kind);
    if mc.sets_dar {
        ctx.sprs.dar = ctx.regs.hdar;
    }
    if let Some(d) = mc.dsisr {
        ctx.sprs.dsisr = d;
    }
    inject(p, ctx, 0x200, mc.srr1);
    ctx.regs.pc = 0x200;
    ctx.regs.msr &= !(Msr::IR | Msr::DR | Msr::ME).bits();
    if !fwnmi {
        return Next::Resume;
    }
    let (cause, ea) = match kind {
        facility::Unassigned::Fetch => (rtas::MceCause::Fetch, ctx.sprs.srr0),
        _ => (rtas::MceCause::LoadStore, ctx.regs.hdar),
    };
    let area = p.rtas.0 + rtas::FWNMI_MCE_OFFSET;
    let mut buf = [0u8; 8 + rtas::MCE_LOG_LEN];
    buf[..8].copy_from_slice(&ctx.regs.gpr[3].to_be_bytes());
    buf[8..].copy_from_slice(&rtas::mce_error_log(cause, ea));
    let fits = area + buf.len() as u64 <= p.rtas.0 + p.rtas.1;
    if !fits || p.write_guest(area, &buf).is_none() {
        // No buffer: the plain 0x200 delivery above stands.
        p.fwnmi_interlock.store(u64::MAX, Ordering::Release);
        return Next::Resume;
    }
    ctx.regs.gpr[3] = area;
    ctx.regs.pc = handler;
    let mut msr = Msr::ME | (Msr::from_bits_retain(ctx.sprs.srr1) & Msr::SF);
    if p.interrupt_le.load(Ordering::Relaxed) {
        msr |= Msr::LE;
    }
    ctx.regs.msr = msr.bits();
    Next::Resume
}

/// SRR1 bit 44: program interrupt for an illegal instruction.
const SRR1_PROGRAM_ILLEGAL: u64 = 1 << (63 - 44);

/// HDSISR bit 46: the fault happened while translating the guest's process
/// table or page tables, not the access itself.
const HDSISR_PRTABLE: u64 = 0x0002_0000;

fn fatal(p: &Partition, why: alloc::string::String) -> Next {
    p.stop(StopReason::Fault(why));
    Next::Leave
}

/// Guests misbehaving is not a hypervisor error: a warning, at most
/// [`WARN_BURST`] per partition every [`WARN_PERIOD_US`] (each partition has its
/// own budget, `Partition::warn_budget`, so one guest cannot silence the
/// warnings about another); the first warning of a new period says how many
/// were suppressed.
pub fn rate_limited_warn(p: &Partition, what: &str, addr: u64) {
    use crate::log::Allow;
    let now = instr::mftb();
    match p
        .warn_budget
        .allow(now, WARN_BURST, timer::us_to_ticks(WARN_PERIOD_US))
    {
        Allow::No => return,
        Allow::AfterSuppressed(n) => warn!("lpar {}: {} warning(s) suppressed", p.name, n),
        Allow::Yes => {}
    }
    warn!("lpar {}: {} at {:#x}", p.name, what, addr);
}

/// Warnings per partition per period (see [`rate_limited_warn`]).
pub const WARN_BURST: u32 = 32;
pub const WARN_PERIOD_US: u64 = 10_000_000;

/// Waits (H_CEDE) until the vCPU is prodded, its decrementer expires, or the
/// partition stops. Returns at once if any of these already happened.
pub fn cede(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext) {
    v.ceded.store(true, Ordering::Release);
    loop {
        if v.prodded.swap(false, Ordering::AcqRel)
            || external_pending(p, v)
            || !p.is_running()
            || v.state() != VcpuState::Runnable
        {
            break;
        }
        let left = ctx
            .sprs
            .dec
            .saturating_sub(instr::mftb().wrapping_sub(ctx.sprs.dec_tb) as i64);
        // Sleep until the guest's decrementer would fire or a doorbell arrives; cap
        // the nap so OPAL's heartbeat keeps running.
        // With MSIs to poll (docs/passthrough.md "MSI"), nap 1 ms at most;
        // routed ones wake the nap themselves (LPCR[HVEE]).
        let cap_us = if p.pci.msi_polled() { 1_000 } else { 100_000 };
        let Some(nap) = idle::nap_ticks(left, timer::us_to_ticks(cap_us)) else {
            break;
        };
        // The guest's time slice (HDEC, armed by `switch_in`) runs out while the
        // vCPU is ceded, and an expired HDEC wakes `stop` at once: without this
        // the nap is a spin (`partition::idle`). `switch_in` re-arms the slice
        // on entry (it rewrites any HDEC above one slice).
        if idle::hdec_in_the_way(spr::hdec::read(), nap) {
            // SAFETY: HDEC only bounds guest execution; no guest runs on this
            // thread until `switch_in` arms it again.
            unsafe { spr::hdec::write(idle::TIMER_QUIET) };
        }
        // SAFETY: the host DEC is unused while this thread serves a vCPU; the
        // guest's value is restored on entry (`dec_dirty`).
        unsafe { spr::dec::write(nap) };
        ctx.sprs.dec_dirty = true;
        instr::stop_lite();
        instr::msgclr_hyp();
        // SAFETY: as above.
        unsafe { spr::dec::write(DEC_QUIET) };
        opal::heartbeat();
        crate::console::input::poll_due();
        super::lpar::console_tick();
        if super::host_irq::here() {
            super::passthrough::take_host_irqs(p);
        }
        super::passthrough::poll_msi(p);
    }
    v.ceded.store(false, Ordering::Release);
}

/// Notes that the vCPU was dispatched on its thread (`true`: entering the guest)
/// or left it (`false`: any full exit - an hcall such as H_CEDE, a fault, the
/// time slice - and when it stops): the VPA dispatch count changes parity and,
/// with a VPA registered, is written there (big-endian, one aligned store). On
/// a dispatch with a DTL registered, a DTL entry records it (as KVM-HV's
/// `kvmppc_create_dtl_entry`), with `ctx`'s PC and MSR.
///
/// Lock-free: the vCPU writes the areas of its own copy (`ctx.vpa`), taking a
/// new registration under `v.vpa`'s lock only when `v.vpa_changed` says one
/// came. Every write goes through `Partition::write_guest*`, which
/// bounds-checks the address each time.
pub fn set_dispatched(p: &Partition, v: &Vcpu, on: bool, ctx: &mut VcpuContext) {
    use crate::papr::hcall as h;
    // Relaxed: the lock orders what the registration wrote.
    if v.vpa_changed.load(Ordering::Relaxed) {
        let mut r = v.vpa.lock();
        v.vpa_changed.store(false, Ordering::Relaxed);
        ctx.vpa.take(&mut r);
    }
    let s = &mut ctx.vpa;
    let next = s.yield_count.with_dispatched(on);
    if next == s.yield_count {
        return;
    }
    s.yield_count = next;
    v.yield_count.store(next.0, Ordering::Relaxed);
    write_yield_count(p, &s.areas, next);
    if !on {
        return;
    }
    if let Some(at) = h::dtl_slot(&s.areas, s.dtl_index) {
        // Dedicated processors: no time is stolen (0), as KVM reports for a
        // vCPU that was not preempted.
        // Processor id: the hardware thread's PIR, as KVM reports the physical
        // thread.
        let pir = smp::cpus().get(v.thread as usize).map_or(0, |c| c.pir);
        let e = h::dtl_entry(pir as u16, 0, instr::mftb(), ctx.regs.pc, ctx.regs.msr);
        if p.write_guest(at, &e).is_none() {
            rate_limited_warn(p, "DTL no longer inside partition memory", at);
            return;
        }
        s.dtl_index += 1;
        // The entry before the index that publishes it.
        core::sync::atomic::fence(Ordering::Release);
        let idx = s.areas.vpa + h::VPA_DTL_IDX_OFFSET;
        if p.store_guest_be(idx, 8, s.dtl_index).is_none() {
            rate_limited_warn(p, "VPA no longer inside partition memory", idx);
        }
    }
}

/// Writes dispatch count `count` to the VPA of `areas`, if one is registered.
pub fn write_yield_count(
    p: &Partition,
    areas: &crate::papr::hcall::VpaAreas,
    count: crate::papr::hcall::YieldCount,
) {
    if areas.vpa != 0 {
        let at = areas.vpa + crate::papr::hcall::VPA_YIELD_COUNT_OFFSET;
        if p.write_guest_be32(at, count.0).is_none() {
            rate_limited_warn(p, "VPA no longer inside partition memory", at);
        }
    }
}

/// Logs one `PAPRIKA dump:` line per vCPU of `p` (Ctrl-A d, a partition
/// fault): state, PC, MSR, LR and last exit, from each vCPU's snapshot (lock-free,
/// from any thread; docs/debugging.md).
pub fn dump(p: &Partition) {
    use super::snapshot::{self, State};
    for v in &p.vcpus {
        let state = if !p.is_running() || v.state() != VcpuState::Runnable {
            State::Stopped
        } else if v.ceded.load(Ordering::Acquire) {
            State::Ceded
        } else {
            State::Running
        };
        let r = v.snapshot.read();
        let mut line = heapless::String::<320>::new();
        let _ = snapshot::format_line(
            &mut line,
            &p.name,
            v.id,
            state,
            &r,
            crate::fault::vector_name,
        );
        crate::info!("PAPRIKA dump: {}", line);
    }
}

/// Stops this vCPU (stop-self).
pub fn stop_self(v: &Vcpu) {
    v.state.store(VcpuState::Stopped as u8, Ordering::Release);
}

pub fn context_of(v: &Vcpu) -> &mut VcpuContext {
    v.context()
}

/// Which partition runs on thread `index`, for the log context.
pub fn lpid_on(index: u32) -> Option<u32> {
    let l = ASSIGNED_LPID.get(index as usize)?.load(Ordering::Relaxed);
    (l != 0).then_some(l)
}

/// LPID served by each thread (0 = none), for log lines; kept apart from the
/// partition pointers so the log path never dereferences anything.
static ASSIGNED_LPID: [AtomicU32; smp::MAX_CPUS] = [const { AtomicU32::new(0) }; smp::MAX_CPUS];

pub fn ensure_lpcr_bits() -> Lpcr {
    lpar::host_lpcr()
}
