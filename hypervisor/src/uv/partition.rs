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
