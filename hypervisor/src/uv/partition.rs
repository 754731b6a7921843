//! A partition's side of PEF, as the partition code drives it: the secure-VM
//! state attached to every partition when an ultravisor is present, the H_SVM_*
//! hcall routing, how a vCPU is resumed (UV_RETURN or `hrfid`), whether the
//! hypervisor may touch guest memory, and the teardown at stop and reboot.
//!
//! `partition::lpar` holds one [`PartitionUv`] per partition and calls it with
//! the real ultravisor (`arch::ppc64::ucall`, `sc 2`) and partition table
//! (`arch::ppc64::mmu`); the host tests call the same methods with the model
//! ultravisor (`uv::model`), so what they check is the code the hypervisor runs.
//!
//! Without an ultravisor (every QEMU machine) nothing is allocated: H_SVM_* get
//! KVM-HV's no-UV answers ([`super::svm::hcall_without_uv`]), every vCPU resumes
//! with `hrfid`, the hypervisor may touch all of the partition's memory, and the
//! teardown only clears the partition-table entry.
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::host::{self, PateRoute, PateStore};
use super::svm::{self, Phase, SecureVm, SvmConfig, UcallFailed};
use super::{Ultravisor, SVM_PAGE_SIZE};
use crate::mm::extent::ExtentMap;
use crate::papr::hcall::{self as h, HcallError, HcallResult};

/// MSR[S] (IBM bit 41): the interrupted context was secure. The ultravisor
/// sets it in SRR1/HSRR1 of every interrupt it reflects from a secure VM.
pub const MSR_S: u64 = 1 << (63 - 41);

/// No vCPU is in UV_ESM.
const NO_VCPU: u32 = u32::MAX;

/// How a vCPU goes back after the hypervisor handled an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// `hrfid` to the guest: a normal partition, or no ultravisor.
    Hrfid,
    /// `sc 2` UV_RETURN: the exit was reflected by the ultravisor (a secure VM's
    /// interrupt, or an H_SVM_* call the UV made during UV_ESM) and only the UV
    /// may resume the vCPU (`hrfid` cannot set MSR[S]; the UV checks its cookie
    /// in r31). Frame: [`super::UvReturn`].
    UvReturn,
}

/// SRR1 bits an interrupt sets rather than copies from the MSR (Book III
/// 7.5): 33:36 and 42:47. The ultravisor takes exactly these from the r2 of
/// UV_RETURN (`SRR1_INTR_STATUS` 0x783f0000).
pub const SRR1_INT_BITS: u64 = 0x0000_0000_783f_0000;

/// MSR bits of an interrupt's new MSR (Book III 7.5).
const MSR_SF: u64 = 1 << 63;
const MSR_IR: u64 = 0x20;
const MSR_DR: u64 = 0x10;
const MSR_ME: u64 = 0x1000;
const MSR_LE: u64 = 0x1;

/// The alternate interrupt location of AIL = 3 (LPCR[AIL], which a partition
/// sets with H_SET_MODE): vectors at 0xc000_0000_0000_4000 + offset,
/// relocation on, when the interrupted context had IR and DR set.
pub const AIL3_BASE: u64 = 0xc000_0000_0000_4000;

/// Where an interrupt the hypervisor injects into a vCPU starts: the PC and
/// MSR the vCPU is entered with (HSRR0/HSRR1 of `hrfid`, or of UV_RETURN), and
/// its SRR0/SRR1 (SRR1 also goes to the UV as r2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptEntry {
    pub pc: u64,
    pub msr: u64,
    pub srr0: u64,
    pub srr1: u64,
}

/// An interrupt at `vector` (with `srr1_bits` giving its cause) delivered by
/// the hypervisor to a vCPU interrupted at `pc` with `msr`, which will be
/// resumed by `resume`; `ail` and `interrupt_le` are what the partition set
/// with H_SET_MODE.
///
/// - `hrfid` (a normal partition): the architected delivery (Book III 7.5,
///   as KVM-HV's `inject_interrupt`): SRR0/1 = where it was, new MSR = SF, ME
///   kept, LE from H_SET_MODE; with AIL = 3 and IR|DR set, the vector is
///   relocated to [`AIL3_BASE`] with IR|DR on.
/// - UV_RETURN (a secure VM): the ultravisor delivers it, and only if HSRR0 is
///   the bare vector, below its exception area and 32-byte aligned (the
///   open-power UV's `valid_vector`; anything else, 0xc000_0000_0000_4500
///   included, is taken for "no interrupt" and the SVM resumes where it was,
///   the interrupt lost). It enters the SVM there in real mode with
///   SF|S|ME|LE-from-HSRR1, SRR0 = the SVM's real PC (which the hypervisor
///   never sees: `pc` is the UV's cookie) and SRR1 = the SVM's MSR with the
///   status bits of r2 (`exception_svm_reflect_prep`). The UV applies no AIL, so
///   neither does the hypervisor: the vector is the bare offset whatever AIL
///   is. `pc` and `msr` are the exit's as reflected (cookie, SVM MSR | S).
pub fn interrupt_entry(
    resume: Resume,
    ail: u8,
    interrupt_le: bool,
    pc: u64,
    msr: u64,
    vector: u64,
    srr1_bits: u64,
) -> InterruptEntry {
    let srr1 = (msr & !SRR1_INT_BITS) | (srr1_bits & SRR1_INT_BITS);
    let mut new = MSR_SF | (msr & MSR_ME);
    if interrupt_le {
        new |= MSR_LE;
    }
    let relocated =
        resume == Resume::Hrfid && ail == 3 && msr & (MSR_IR | MSR_DR) == MSR_IR | MSR_DR;
    let target = if relocated {
        new |= MSR_IR | MSR_DR;
        AIL3_BASE + vector
    } else {
        vector
    };
    InterruptEntry {
        pc: target,
        msr: new,
        srr0: pc,
        srr1,
    }
}

/// One partition's PEF state.
#[derive(Debug)]
pub struct PartitionUv {
    lpid: u32,
    route: PateRoute,
    /// The secure-VM state; only when an ultravisor is present.
    svm: Option<spin::Mutex<SecureVm>>,
    /// The phase is not Normal: the hypervisor must ask `svm` before touching
    /// guest memory (read lock-free on every access).
    guarded: AtomicBool,
    /// The vCPU whose UV_ESM started the initialisation (the one the UV
    /// reflects H_SVM_INIT_START/PAGE_IN/DONE/ABORT from); `NO_VCPU` if none.
    esm_vcpu: AtomicU32,
    /// The teardown ran for this stop (stop and the last vCPU leaving may both
    /// ask; it runs once). Cleared when a reboot starts the partition again.
    released: AtomicBool,
}

impl PartitionUv {
    /// The state of partition `lpid` whose memory is `memory`; `secure_allowed`
    /// is its manifest's `secure = true`; `ultravisor` the host tree's
    /// `ibm,ultravisor`.
    pub fn new(lpid: u32, secure_allowed: bool, memory: &ExtentMap, ultravisor: bool) -> Self {
        let svm = ultravisor.then(|| {
            spin::Mutex::new(SecureVm::new(SvmConfig {
                lpid,
                secure_allowed,
                memory: memory.clone(),
            }))
        });
        PartitionUv {
            lpid,
            route: PateRoute::for_host(ultravisor),
            svm,
            guarded: AtomicBool::new(false),
            esm_vcpu: AtomicU32::new(NO_VCPU),
            released: AtomicBool::new(false),
        }
    }

    /// Whether an ultravisor is present for this partition.
    pub fn with_ultravisor(&self) -> bool {
        self.svm.is_some()
    }

    /// The secure-VM phase (Normal without an ultravisor).
    pub fn phase(&self) -> Phase {
        self.svm
            .as_ref()
            .map_or(Phase::Normal, |s| s.lock().phase())
    }

    /// Runs `f` on the secure-VM state (tests and diagnostics).
    pub fn with_svm<R>(&self, f: impl FnOnce(&SecureVm) -> R) -> Option<R> {
        self.svm.as_ref().map(|s| f(&s.lock()))
    }

    /// Serves an H_SVM_* or H_TPM_COMM hcall of vCPU `vcpu` (r4.. in `args`);
    /// `exit_msr` is the SRR1 of the `sc 1` exit. `None` if `op` is not one of
    /// them. With an ultravisor the call goes to the secure-VM state machine;
    /// the caller must be in secure state (SRR1[S], as KVM-HV checks), except
    /// INIT_ABORT, which the UV reflects with the guest's pre-ESM SRR1 (S clear)
    /// and which Paprika accepts only from the vCPU that started the
    /// initialisation. Without one: KVM-HV's no-UV answers.
    ///
    /// `prepare(gpa, len)` makes the hypervisor's pages of a guest range hold
    /// the partition's own contents (zeroing memory not used yet, `demand`)
    /// before they are handed to the UV by UV_PAGE_IN: the one page of a
    /// PAGE_IN, the whole partition at INIT_DONE. Without it the UV would copy
    /// stale host memory into the secure VM. It failing is H_NO_MEM.
    pub fn hcall(
        &self,
        uv: Option<&mut dyn Ultravisor>,
        vcpu: u32,
        exit_msr: u64,
        op: u64,
        args: &[u64],
        prepare: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Option<HcallResult> {
        let fallback = svm::hcall_without_uv(op)?;
        let (Some(state), Some(uv)) = (self.svm.as_ref(), uv) else {
            return Some(Err(fallback));
        };
        if op == h::H_TPM_COMM {
            return Some(Err(HcallError::Function));
        }
        let secure = exit_msr & MSR_S != 0;
        let mut s = state.lock();
        if op == h::H_SVM_INIT_ABORT && self.esm_vcpu.load(Ordering::Acquire) != vcpu {
            // Another vCPU (or nobody) is in UV_ESM: a partition cannot abort
            // for the UV (KVM cannot tell; Paprika can).
            return Some(Err(HcallError::Unsupported));
        }
        let before = s.phase();
        let size = s.config().memory.size();
        let range = match op {
            h::H_SVM_PAGE_IN => args
                .first()
                .map(|&gpa| gpa & !(SVM_PAGE_SIZE - 1))
                .filter(|&gpa| gpa < size)
                .map(|gpa| (gpa, SVM_PAGE_SIZE)),
            h::H_SVM_INIT_DONE => Some((0, size)),
            _ => None,
        };
        // Only for a call the state machine will act on (secure caller, past
        // INIT_START); the others are refused without touching memory.
        if let Some((gpa, len)) = range {
            if secure && before != Phase::Normal && !prepare(gpa, len) {
                return Some(Err(HcallError::NoMem));
            }
        }
        let r = s.hcall(uv, secure, op, args)?;
        let after = s.phase();
        if before == Phase::Normal && after == Phase::Initialising {
            self.esm_vcpu.store(vcpu, Ordering::Release);
        }
        if after == Phase::Normal {
            self.esm_vcpu.store(NO_VCPU, Ordering::Release);
        }
        self.guarded
            .store(after != Phase::Normal, Ordering::Release);
        Some(r)
    }

    /// How vCPU `vcpu` must be resumed after the exit at `vector`, decided
    /// before the exit is handled (handling may rewrite the MSR, e.g. to inject
    /// an interrupt, and an INIT_ABORT returns the phase to Normal): through
    /// UV_RETURN when the ultravisor reflected the exit, i.e. the exit's SRR1 or
    /// HSRR1 (`exit_msr`) has MSR[S], or it is the INIT_ABORT the UV issues for
    /// the vCPU in UV_ESM (S clear; KVM's KVMPPC_SECURE_INIT_ABORT: one last
    /// UV_RETURN). `r3` is the guest's r3 at the exit (the hcall opcode).
    pub fn resume(&self, vcpu: u32, vector: u64, exit_msr: u64, r3: u64) -> Resume {
        if self.svm.is_none() {
            return Resume::Hrfid;
        }
        let abort_for_uv = vector == 0xc00
            && r3 == h::H_SVM_INIT_ABORT
            && self.esm_vcpu.load(Ordering::Acquire) == vcpu
            && self.phase() == Phase::Initialising;
        if exit_msr & MSR_S != 0 || abort_for_uv {
            Resume::UvReturn
        } else {
            Resume::Hrfid
        }
    }

    /// How a vCPU started by RTAS start-cpu enters for the first time.
    /// `caller_exit_msr` is the SRR1 of the H_RTAS exit of the vCPU that
    /// called start-cpu. With an ultravisor, a start-cpu from a secure VM
    /// arrives reflected (S set), the UV having replaced its r3 argument by a
    /// start-cpu cookie (the open-power UV's `rtas_start_cpu_begin`); the new
    /// vCPU must then enter through UV_RETURN with that cookie in r0 (the
    /// guest's r3, [`super::UvReturn::from_vcpu`]) and its r31 as it was (a
    /// cookie of an earlier stop-self, which the UV releases): the UV enters
    /// it in secure mode at the start address (`rtas_start_cpu_end`). `hrfid`
    /// cannot set MSR[S]. Any other start (no UV, a normal partition, the boot
    /// vCPU) is `hrfid`.
    pub fn start_cpu_entry(&self, caller_exit_msr: u64) -> Resume {
        if self.svm.is_some() && caller_exit_msr & MSR_S != 0 {
            Resume::UvReturn
        } else {
            Resume::Hrfid
        }
    }

    /// Whether the hypervisor may read or write `[gpa, gpa + len)` of the
    /// partition (hcall buffers, the VPA, console text, RTAS arguments): always
    /// for a normal partition; once secure, only pages the SVM shared
    /// ([`SecureVm::hv_may_access`]).
    pub fn hv_may_access(&self, gpa: u64, len: u64) -> bool {
        if !self.guarded.load(Ordering::Acquire) {
            return true;
        }
        self.svm
            .as_ref()
            .is_none_or(|s| s.lock().hv_may_access(gpa, len))
    }

    /// The partition stopped for good (once none of its vCPUs runs) or is
    /// rebooting (its vCPUs stopped, before its memory is scrubbed): its secure
    /// state is torn down (every UV_UNREGISTER_MEM_SLOT, UV_SVM_TERMINATE) and
    /// its partition-table entry cleared, in the table and through UV_WRITE_PATE
    /// when there is an ultravisor. Runs once per stop; a reboot starts it
    /// again ([`Self::restarted`]). The caller flushes the LPID's translations.
    /// Every step is attempted; the first failure is returned.
    pub fn release(
        &self,
        table: &mut dyn PateStore,
        uv: Option<&mut dyn Ultravisor>,
    ) -> Result<(), UcallFailed> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut guard = self.svm.as_ref().map(|s| s.lock());
        let r = host::partition_stopped(self.route, table, uv, guard.as_deref_mut(), self.lpid);
        self.esm_vcpu.store(NO_VCPU, Ordering::Release);
        self.guarded.store(false, Ordering::Release);
        r
    }

    /// A reboot loaded the partition again: the next stop tears down again.
    pub fn restarted(&self) {
        self.released.store(false, Ordering::Release);
    }
}
