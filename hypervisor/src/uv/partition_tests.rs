//! A partition's whole PEF life against the model ultravisor, through
//! `PartitionUv`: the object `partition::lpar` holds and calls from its hcall
//! dispatch, vCPU entry, guest-memory accessors, reboot and stop.
use super::fixtures::*;
use super::host::{self, SprAccess};
use super::model::{self, code, Call, Hv, ModelUv, Violation};
use super::partition::{PartitionUv, Resume, MSR_S};
use super::svm::{PageState, Phase};
use super::*;
use crate::papr::hcall::{self as h, HcallError};

const LPID: u32 = 5;
/// SRR1 of a reflected hcall: 64-bit, kernel, relocation on, S as given.
const MSR: u64 = 0x8000_0000_0000_1033;

/// vCPU `vcpu` of the partition as the UV reaches it: each reflected hcall
/// makes the exit the hypervisor sees (SRR1 with S as the UV sets it), asks how
/// the vCPU will be resumed, as `vcpu::run` does before handling, then
/// dispatches it as `hcalls::dispatch` does.
struct Vcpu<'a> {
    p: &'a PartitionUv,
    vcpu: u32,
    resumes: Vec<Resume>,
    /// How many ranges the hypervisor prepared for the UV.
    prepared: usize,
}

impl<'a> Vcpu<'a> {
    fn new(p: &'a PartitionUv, vcpu: u32) -> Self {
        Vcpu {
            p,
            vcpu,
            resumes: Vec::new(),
            prepared: 0,
        }
    }
}

impl Hv for Vcpu<'_> {
    fn lpid(&self) -> u32 {
        LPID
    }

    fn reflect(&mut self, uv: &mut ModelUv, secure: bool, op: u64, args: &[u64]) -> i64 {
        let msr = if secure { MSR | MSR_S } else { MSR };
        self.resumes.push(self.p.resume(self.vcpu, 0xc00, msr, op));
        let start = uv.calls.len();
        let mut prepared = Vec::new();
        let r = self
            .p
            .hcall(Some(&mut *uv), self.vcpu, msr, op, args, &mut |g, n| {
                prepared.push((g, n));
                true
            });
        // Every page the UV took in this call was prepared (holds the
        // partition's own contents) by it.
        for c in &uv.calls[start..] {
            if let Call::PageIn(_, _, gpa) = *c {
                assert!(
                    prepared.iter().any(|&(g, n)| gpa >= g && gpa - g < n),
                    "UV_PAGE_IN of unprepared {gpa:#x}"
                );
            }
        }
        self.prepared += prepared.len();
        code(r)
    }
}

/// The partition's own `sc 1` (not reflected: S clear) of `op`.
fn direct(p: &PartitionUv, uv: &mut ModelUv, vcpu: u32, op: u64, args: &[u64]) -> (i64, Resume) {
    let resume = p.resume(vcpu, 0xc00, MSR, op);
    let r = p.hcall(Some(uv), vcpu, MSR, op, args, &mut |_, _| {
        panic!("memory prepared for a refused call")
    });
    (code(r), resume)
}

/// create → UV_ESM → page-in/out/share → reboot → UV_ESM again → stop, with
/// every ucall in order and no rule of the UV broken.
#[test]
fn whole_partition_lifecycle() {
    let mut uv = model();
    let mut table = Table::default();
    // Creation with an ultravisor present: state attached, no ucall yet (the UV
    // has no SVM state for the LPID before the guest's UV_ESM; slots are
    // registered at H_SVM_INIT_START, as KVM-HV does).
    let p = PartitionUv::new(LPID, true, &memory(), true);
    assert!(p.with_ultravisor());
    assert_eq!(p.phase(), Phase::Normal);
    assert!(uv.calls.is_empty());
    assert!(
        p.hv_may_access(0, MEM),
        "a normal partition is all the hypervisor's"
    );
    // A normal exit of the still-normal partition: hrfid.
    assert_eq!(p.resume(0, 0x980, MSR, 0), Resume::Hrfid);

    // UV_ESM on vCPU 0: every reflected call returns through UV_RETURN.
    let mut v0 = Vcpu::new(&p, 0);
    assert_eq!(uv.esm(&mut v0, &[0, 3 * P, EXTENT + P]), 0);
    assert!(
        v0.resumes.iter().all(|&r| r == Resume::UvReturn),
        "{:?}",
        v0.resumes
    );
    assert_eq!(v0.resumes.len(), 5, "START, 3 PAGE_IN, DONE");
    assert_eq!(v0.prepared, 4, "3 PAGE_IN, DONE");
    assert_eq!(p.phase(), Phase::Secure);
    assert_eq!(uv.slots(LPID), [(0, 0, EXTENT), (1, EXTENT, EXTENT)]);
    assert_eq!(uv.calls[0], Call::RegisterMemSlot(LPID, 0, EXTENT, 0));
    assert_eq!(uv.calls[1], Call::RegisterMemSlot(LPID, EXTENT, EXTENT, 1));
    assert_eq!(uv.calls[4], Call::PageIn(LPID, BASE2 + P, EXTENT + P));
    // The hypervisor keeps out of secure memory (hcall buffers, console...).
    assert!(!p.hv_may_access(0x4000, 8));
    // Every exit of the secure VM arrives reflected (S set) and goes back
    // through UV_RETURN: HDEC, an external interrupt, an hcall.
    for vector in [0x980, 0x500, 0xc00] {
        assert_eq!(
            p.resume(1, vector, MSR | MSR_S, h::H_CEDE),
            Resume::UvReturn
        );
    }

    // The SVM shares a page for its hcall buffers (swiotlb), the UV evicts one,
    // pages it back, and the SVM unshares its buffer.
    let mut v1 = Vcpu::new(&p, 1);
    assert_eq!(uv.share(&mut v1, 6 * P), 0);
    assert!(p.hv_may_access(6 * P + 0x10, 0x100));
    uv.hv_touch(LPID, 6 * P + 0x10);
    assert_eq!(uv.evict(&mut v1, 7 * P), 0);
    assert_eq!(p.with_svm(|s| s.page(7 * P)), Some(Some(PageState::Normal)));
    assert!(
        !p.hv_may_access(7 * P, 1),
        "an evicted page is still the SVM's"
    );
    assert_eq!(uv.unshare(&mut v1, 7 * P), 0);
    assert_eq!(uv.unshare(&mut v1, 6 * P), 0);
    assert!(!p.hv_may_access(6 * P, 1));
    assert!(v1.resumes.iter().all(|&r| r == Resume::UvReturn));

    // system-reboot: after the vCPUs stopped and before memory is scrubbed.
    uv.calls.clear();
    assert_eq!(p.release(&mut table, Some(&mut uv)), Ok(()));
    assert_eq!(
        uv.calls,
        [
            Call::UnregisterMemSlot(LPID, 0),
            Call::UnregisterMemSlot(LPID, 1),
            Call::SvmTerminate(LPID),
            Call::WritePate(LPID, 0, 0),
        ]
    );
    assert_eq!(table.0, [(LPID, 0, 0)]);
    assert!(!uv.knows(LPID));
    assert_eq!(p.phase(), Phase::Normal);
    assert!(
        p.hv_may_access(0, MEM),
        "the scrub may touch everything again"
    );
    assert_eq!(p.resume(0, 0xc00, MSR, h::H_CEDE), Resume::Hrfid);
    p.restarted();

    // The new boot goes secure again, then the partition stops (power-off):
    // the stop path and the last vCPU leaving both ask; the teardown runs once.
    let mut v0 = Vcpu::new(&p, 0);
    assert_eq!(uv.esm(&mut v0, &[]), 0);
    uv.calls.clear();
    assert_eq!(p.release(&mut table, Some(&mut uv)), Ok(()));
    assert_eq!(p.release(&mut table, Some(&mut uv)), Ok(()));
    assert_eq!(
        uv.calls,
        [
            Call::UnregisterMemSlot(LPID, 0),
            Call::UnregisterMemSlot(LPID, 1),
            Call::SvmTerminate(LPID),
            Call::WritePate(LPID, 0, 0),
        ]
    );
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

/// Registering the partition's memory when it is created (before UV_ESM) is
/// what the UV cannot take: it has no SVM state for the LPID yet (the
/// open-power UV dereferences its NULL `get_svm`; the model refuses it). This
/// is why `PartitionUv` registers at H_SVM_INIT_START.
#[test]
fn registration_before_esm_is_refused_by_the_uv() {
    let mut uv = model();
    assert_eq!(
        uv.register_mem_slot(LPID, 0, EXTENT, 0, 0),
        Err(UvError::Parameter)
    );
    assert_eq!(
        uv.violations,
        [Violation::NotAnSvm {
            ucall: UV_REGISTER_MEM_SLOT,
            lpid: LPID
        }]
    );
}

#[test]
fn without_ultravisor_nothing_changes() {
    let p = PartitionUv::new(LPID, false, &memory(), false);
    let mut uv = model();
    assert!(!p.with_ultravisor());
    for op in [
        h::H_SVM_INIT_START,
        h::H_SVM_INIT_DONE,
        h::H_SVM_INIT_ABORT,
        h::H_SVM_PAGE_IN,
        h::H_SVM_PAGE_OUT,
    ] {
        // Even a (forged) S bit: there is no ultravisor to have reflected it.
        let r = p.hcall(None, 0, MSR | MSR_S, op, &[0, 0, 16], &mut |_, _| true);
        assert_eq!(r, Some(Err(HcallError::Unsupported)), "{op:#x}");
        assert_eq!(p.resume(0, 0xc00, MSR | MSR_S, op), Resume::Hrfid);
    }
    assert_eq!(
        p.hcall(None, 0, MSR, h::H_TPM_COMM, &[], &mut |_, _| true),
        Some(Err(HcallError::Function))
    );
    assert_eq!(
        p.hcall(None, 0, MSR, h::H_CEDE, &[], &mut |_, _| true),
        None
    );
    assert!(p.hv_may_access(0, MEM));
    // Stop: only the hypervisor's own table entry is cleared, no ucall.
    let mut table = Table::default();
    assert_eq!(p.release(&mut table, Some(&mut uv)), Ok(()));
    assert_eq!(table.0, [(LPID, 0, 0)]);
    assert!(uv.calls.is_empty());
}

/// A partition (not the UV) making the UV's calls with `sc 1`: refused, no
/// ucall, resumed with hrfid.
#[test]
fn partition_cannot_pretend_to_be_the_uv() {
    let p = PartitionUv::new(LPID, true, &memory(), true);
    let mut uv = model();
    uv.begin_for_test(LPID);
    for op in [
        h::H_SVM_INIT_START,
        h::H_SVM_PAGE_IN,
        h::H_SVM_PAGE_OUT,
        h::H_SVM_INIT_DONE,
        h::H_SVM_INIT_ABORT,
    ] {
        assert_eq!(
            direct(&p, &mut uv, 0, op, &[0, 0, 16]),
            (-67, Resume::Hrfid)
        );
    }
    assert!(uv.calls.is_empty());
    assert_eq!(p.phase(), Phase::Normal);
}

/// While vCPU 0 is in UV_ESM, vCPU 1 calls H_SVM_INIT_ABORT itself (S clear,
/// as the UV's own abort): refused and resumed with hrfid; the UV's abort on
/// vCPU 0 still works and goes back through UV_RETURN, once.
#[test]
fn abort_only_from_the_vcpu_in_esm() {
    let p = PartitionUv::new(LPID, true, &memory(), true);
    let mut uv = model();
    let mut v0 = Vcpu::new(&p, 0);
    uv.begin_for_test(LPID);
    assert_eq!(v0.reflect(&mut uv, true, h::H_SVM_INIT_START, &[]), 0);
    assert_eq!(v0.reflect(&mut uv, true, h::H_SVM_PAGE_IN, &[P, 0, 16]), 0);
    let before = uv.calls.len();
    assert_eq!(
        direct(&p, &mut uv, 1, h::H_SVM_INIT_ABORT, &[]),
        (-67, Resume::Hrfid)
    );
    assert_eq!(uv.calls.len(), before);
    assert_eq!(p.phase(), Phase::Initialising);
    // The UV's abort (S clear, from vCPU 0).
    assert_eq!(
        v0.reflect(&mut uv, false, h::H_SVM_INIT_ABORT, &[]),
        HcallError::Parameter.code()
    );
    assert_eq!(v0.resumes.last(), Some(&Resume::UvReturn));
    assert_eq!(p.phase(), Phase::Normal);
    assert!(p.hv_may_access(0, MEM));
    // After it, vCPU 0's plain exits are hrfid again, and another abort is
    // refused.
    assert_eq!(
        direct(&p, &mut uv, 0, h::H_SVM_INIT_ABORT, &[]),
        (-67, Resume::Hrfid)
    );
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

/// A partition without `secure = true` (allowed to run on a UV machine) tries
/// UV_ESM: H_AUTHORITY, returned through UV_RETURN (the UV made the call),
/// no ucall.
#[test]
fn esm_of_a_partition_not_allowed_secure() {
    let p = PartitionUv::new(LPID, false, &memory(), true);
    let mut uv = model();
    let mut v0 = Vcpu::new(&p, 0);
    assert_eq!(uv.esm(&mut v0, &[]), HcallError::Authority.code());
    assert_eq!(v0.resumes, [Resume::UvReturn]);
    assert!(uv.calls.is_empty());
    assert_eq!(p.phase(), Phase::Normal);
}

/// The partition stops (a fault on another vCPU) while vCPU 0 is half-way
/// through UV_ESM: everything registered is unregistered, the UV forgets the
/// SVM, the entry is cleared; late reflected calls then find a normal
/// partition.
#[test]
fn stop_during_initialisation() {
    let p = PartitionUv::new(LPID, true, &memory(), true);
    let mut uv = model();
    let mut v0 = Vcpu::new(&p, 0);
    uv.begin_for_test(LPID);
    assert_eq!(v0.reflect(&mut uv, true, h::H_SVM_INIT_START, &[]), 0);
    assert_eq!(v0.reflect(&mut uv, true, h::H_SVM_PAGE_IN, &[0, 0, 16]), 0);
    uv.calls.clear();
    let mut table = Table::default();
    assert_eq!(p.release(&mut table, Some(&mut uv)), Ok(()));
    assert_eq!(
        uv.calls,
        [
            Call::UnregisterMemSlot(LPID, 0),
            Call::UnregisterMemSlot(LPID, 1),
            Call::SvmTerminate(LPID),
            Call::WritePate(LPID, 0, 0),
        ]
    );
    assert!(p.hv_may_access(0, MEM));
    assert_eq!(
        v0.reflect(&mut uv, true, h::H_SVM_PAGE_IN, &[P, 0, 16]),
        -67,
        "nothing started any more"
    );
    assert_eq!(v0.reflect(&mut uv, false, h::H_SVM_INIT_ABORT, &[]), -67);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

/// Random reflected and direct calls from three vCPUs, with reboots: the
/// hypervisor never touches what the UV holds secure, never breaks a UV rule,
/// answers every reflected call through UV_RETURN and every direct one with
/// hrfid.
#[test]
fn random_partition_sequences() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ops = [
        h::H_SVM_INIT_START,
        h::H_SVM_INIT_DONE,
        h::H_SVM_INIT_ABORT,
        h::H_SVM_PAGE_IN,
        h::H_SVM_PAGE_OUT,
    ];
    let mut secure_seen = 0;
    for _round in 0..100 {
        let p = PartitionUv::new(LPID, true, &memory(), true);
        let mut uv = model();
        let mut table = Table::default();
        for _ in 0..80 {
            let vcpu = (rnd() % 3) as u32;
            let gpa = (rnd() % (MEM / P + 1)) * P;
            let op = ops[(rnd() % 5) as usize];
            match rnd() % 10 {
                0 => {
                    let mut v = Vcpu::new(&p, vcpu);
                    uv.esm(&mut v, &[gpa]);
                    assert!(v.resumes.iter().all(|&r| r == Resume::UvReturn));
                }
                1 if uv.knows(LPID) => {
                    uv.share(&mut Vcpu::new(&p, vcpu), gpa);
                }
                2 => {
                    let (_, r) = direct(&p, &mut uv, vcpu, op, &[gpa, 0, 16]);
                    assert_eq!(r, Resume::Hrfid, "a direct call never UV_RETURNs");
                }
                3 => {
                    let _ = p.release(&mut table, Some(&mut uv));
                    p.restarted();
                }
                _ if uv.knows(LPID) => {
                    let mut v = Vcpu::new(&p, vcpu);
                    // H_PAGE_IN_SHARED only through `share` (the UV means it).
                    let flags = [0, 0, 2, 4][(rnd() % 4) as usize];
                    v.reflect(&mut uv, op != h::H_SVM_INIT_ABORT, op, &[gpa, flags, 16]);
                }
                _ => {}
            }
            if p.phase() == Phase::Secure {
                secure_seen += 1;
            }
            for i in 0..MEM / P {
                if p.hv_may_access(i * P, P) {
                    uv.hv_touch(LPID, i * P);
                }
            }
            assert!(uv.violations.is_empty(), "{:?}", uv.violations);
        }
    }
    assert!(secure_seen > 100, "{secure_seen}");
}

#[test]
fn debug_registers_go_through_the_uv() {
    let vals = [
        (host::SPR_CIABR, 0x1000 | 2),
        (host::SPR_DAWR0, 0x2000),
        (host::SPR_DAWRX0, 0x46),
    ];
    // Without an ultravisor: mtspr, in order.
    let mut direct_writes = Vec::new();
    host::write_debug_sprs(None, &vals, |s, v| direct_writes.push((s, v))).unwrap();
    assert_eq!(direct_writes, vals);
    // With one: UV_RESTRICTED_SPR_WRITE each, never mtspr.
    let mut uv = model();
    let mut direct_writes = Vec::new();
    host::write_debug_sprs(Some(&mut uv), &vals, |s, v| direct_writes.push((s, v))).unwrap();
    assert!(direct_writes.is_empty());
    assert_eq!(uv.calls, vals.map(|(s, v)| Call::RestrictedSprWrite(s, v)));
    let sprs = vals.map(|(s, _)| s);
    let back = host::read_debug_sprs(Some(&mut uv), sprs, |_| panic!("mfspr with a UV"));
    assert_eq!(back, vals.map(|(_, v)| v));
    assert_eq!(
        host::read_debug_sprs(None, sprs, u64::from),
        sprs.map(u64::from)
    );
    // Trace and IMC registers are skipped with a UV, ordinary ones are direct.
    assert_eq!(host::spr_route(true, host::SPR_LDBAR), SprAccess::Skip);
    assert_eq!(host::spr_route(true, host::SPR_IMC), SprAccess::Skip);
    assert_eq!(host::spr_route(false, host::SPR_LDBAR), SprAccess::Direct);
    assert_eq!(host::spr_route(true, 0x1f), SprAccess::Direct);
    assert_eq!(host::spr_route(true, host::SPR_CIABR), SprAccess::Ucall);
    assert_eq!(
        uv.restricted_spr_write(host::SPR_LDBAR, 1),
        Err(UvError::Parameter)
    );
}

/// The hypervisor cannot prepare a page (no memory for a table): H_NO_MEM and
/// nothing handed to the UV.
#[test]
fn unprepared_memory_is_never_paged_in() {
    let p = PartitionUv::new(LPID, true, &memory(), true);
    let mut uv = model();
    let mut v0 = Vcpu::new(&p, 0);
    uv.begin_for_test(LPID);
    assert_eq!(v0.reflect(&mut uv, true, h::H_SVM_INIT_START, &[]), 0);
    let n = uv.calls.len();
    let mut fail = |_, _| false;
    for op in [h::H_SVM_PAGE_IN, h::H_SVM_INIT_DONE] {
        let r = p.hcall(Some(&mut uv), 0, MSR | MSR_S, op, &[P, 0, 16], &mut fail);
        assert_eq!(r, Some(Err(HcallError::NoMem)), "{op:#x}");
    }
    assert_eq!(uv.calls.len(), n);
    assert_eq!(p.phase(), Phase::Initialising);
    // INIT_DONE prepares the whole partition, once.
    let mut asked = Vec::new();
    let r = p.hcall(
        Some(&mut uv),
        0,
        MSR | MSR_S,
        h::H_SVM_INIT_DONE,
        &[],
        &mut |g, n| {
            asked.push((g, n));
            true
        },
    );
    assert_eq!(r, Some(Ok([0; 4])));
    assert_eq!(asked, [(0, MEM)]);
}

/// The registers `guest::enter_uv` hands the UV after `hcalls::dispatch`
/// answered a reflected hcall (status in r3, outputs in r4-r7, r8-r12 as the
/// UV left them) are the UV_RETURN frame of that hcall, with the cookie
/// untouched in r31.
#[test]
fn uv_return_frame_from_vcpu_registers() {
    let cookie = 0x1234_5678_9abc_def0;
    let srr1 = MSR | MSR_S;
    let mut gpr = [0u64; 32];
    for (i, g) in gpr.iter_mut().enumerate() {
        *g = 0x1000 + i as u64;
    }
    gpr[31] = cookie;
    // What dispatch writes for a result of H_PARAMETER / outputs [1, 2, 3, 4].
    gpr[3] = HcallError::Parameter.code() as u64;
    gpr[4..8].copy_from_slice(&[1, 2, 3, 4]);
    let outputs = [1, 2, 3, 4, 0x1008, 0x1009, 0x100a, 0x100b, 0x100c];
    assert_eq!(
        UvReturn::from_vcpu(&gpr, srr1),
        UvReturn::for_hcall(HcallError::Parameter.code(), &outputs, srr1, cookie)
    );
}

/// A secure VM after UV_ESM through vCPU 0.
fn secure_partition(uv: &mut ModelUv) -> PartitionUv {
    let p = PartitionUv::new(LPID, true, &memory(), true);
    let mut v0 = Vcpu::new(&p, 0);
    assert_eq!(uv.esm(&mut v0, &[0]), 0);
    assert_eq!(p.phase(), Phase::Secure);
    p
}

/// The UV_RETURN `guest::enter_uv` makes for a vCPU whose registers are
/// `gpr` after `vcpu::inject` (or an hcall) left it `entry`.
fn enter_uv(
    uv: &mut ModelUv,
    gpr: &[u64; 32],
    entry: &super::partition::InterruptEntry,
) -> model::SvmVcpu {
    let frame = UvReturn::from_vcpu(gpr, entry.srr1);
    uv.uv_return(LPID, &frame, entry.pc, entry.msr)
        .expect("the UV accepts the frame")
}

/// An interrupt the hypervisor injects into a secure VM whose partition set
/// AIL = 3 (Linux does, with H_SET_MODE) reaches it: the hypervisor hands the
/// UV the bare vector, which the UV delivers in real mode, as it U-turns
/// external interrupts itself. The AIL-relocated vector a normal partition
/// gets would be taken by the UV for "no interrupt" and lost.
#[test]
fn injected_interrupt_reaches_a_secure_vm_with_ail3() {
    use super::partition::{interrupt_entry, InterruptEntry, AIL3_BASE};
    let mut uv = model();
    let p = secure_partition(&mut uv);
    // The SVM runs its kernel: 64-bit, relocation on, EE, ME, LE, secure.
    let svm_pc = 0xc000_0000_0123_4560;
    let svm_msr = 0x8000_0000_0000_9033 | MSR_S;
    for (vector, cause) in [(0x500u64, 0u64), (0x900, 0), (0x700, 0x0002_0000)] {
        // An HDEC exit, reflected: the hypervisor sees the cookie as the PC.
        let (pc, msr, r31) = uv.reflect_interrupt(LPID, svm_pc, svm_msr);
        let resume = p.resume(1, 0x980, msr, 0);
        assert_eq!(resume, Resume::UvReturn);
        let e = interrupt_entry(resume, 3, true, pc, msr, vector, cause);
        assert_eq!(e.pc, vector, "the bare vector, whatever AIL is");
        assert_eq!(e.msr & 0x30, 0, "no IR/DR");
        let mut gpr = [0u64; 32];
        gpr[31] = r31;
        let svm = enter_uv(&mut uv, &gpr, &e);
        assert_eq!(svm.pc, vector, "delivered at {vector:#x}");
        assert_eq!(
            svm.msr,
            (1 << 63) | MSR_S | 0x1000 | 1,
            "real mode, secure, LE"
        );
        assert_eq!(svm.srr0, svm_pc, "SRR0: where the SVM was (not the cookie)");
        assert_eq!(svm.srr1 & 0x783f_0000, cause, "the cause from r2");
        assert_eq!(svm.srr1 & !0x783f_0000, svm_msr & !0x783f_0000);
    }
    assert_eq!(uv.outstanding_cookies(LPID), 0);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);

    // What a normal partition gets for the same interrupt: the alternate
    // location with relocation on, as before.
    let e = interrupt_entry(
        Resume::Hrfid,
        3,
        true,
        svm_pc,
        0x8000_0000_0000_9033,
        0x500,
        0,
    );
    assert_eq!(
        e,
        InterruptEntry {
            pc: AIL3_BASE + 0x500,
            msr: 0x8000_0000_0000_1031,
            srr0: svm_pc,
            srr1: 0x8000_0000_0000_9033,
        }
    );
    // ... and in real mode, or with AIL = 0, the bare vector.
    assert_eq!(
        interrupt_entry(
            Resume::Hrfid,
            3,
            false,
            0x1000,
            0x8000_0000_0000_1000,
            0x500,
            0
        )
        .pc,
        0x500
    );
    assert_eq!(
        interrupt_entry(
            Resume::Hrfid,
            0,
            false,
            svm_pc,
            0x8000_0000_0000_9033,
            0x500,
            0
        )
        .pc,
        0x500
    );
    // Handing the UV that relocated vector loses the interrupt: the SVM
    // resumes where it was.
    let (pc, msr, r31) = uv.reflect_interrupt(LPID, svm_pc, svm_msr);
    let e = interrupt_entry(Resume::Hrfid, 3, true, pc, msr, 0x500, 0);
    let mut gpr = [0u64; 32];
    gpr[31] = r31;
    let svm = enter_uv(&mut uv, &gpr, &e);
    assert_eq!((svm.pc, svm.msr), (svm_pc, svm_msr), "interrupt lost");
}

/// RTAS start-cpu from a secure VM: the UV replaced its r3 argument by a
/// start-cpu cookie; the started vCPU enters through UV_RETURN with it in r0,
/// and the UV starts it secure at the start address with the SVM's r3. A
/// vCPU that had stopped itself (stop-self, reflected: its r31 holds that
/// reflection's cookie) starts the same way, and the UV releases both cookies.
/// A normal partition's start stays `hrfid`.
#[test]
fn secure_vcpu_started_by_rtas_enters_through_the_uv() {
    let mut uv = model();
    let p = secure_partition(&mut uv);
    // vCPU 0's H_RTAS(start-cpu 1, 0x6000, 0x1234), reflected (S set).
    let args = uv.start_cpu(LPID, 1, 0x6000, 0x1234);
    assert!(args[2] >= model::MAX_EXCEPTION && args[2] <= u64::from(u32::MAX));
    let start = |p: &PartitionUv, uv: &mut ModelUv, caller_msr: u64, r3: u64, r31: u64| {
        // What `vcpu::thread_work` does with the start request: fresh
        // registers, r3 from start-cpu, r31 kept for a UV entry.
        let mut gpr = [0u64; 32];
        gpr[3] = r3;
        gpr[31] = r31;
        match p.start_cpu_entry(caller_msr) {
            Resume::UvReturn => Some(
                uv.uv_return(
                    LPID,
                    &UvReturn::from_vcpu(&gpr, 0),
                    args[1],
                    0x8000_0000_0000_1000,
                )
                .expect("UV_RETURN accepted"),
            ),
            Resume::Hrfid => {
                uv.hrfid(LPID);
                None
            }
        }
    };
    let svm = start(&p, &mut uv, MSR | MSR_S, args[2], 0).expect("entered through the UV");
    assert_eq!(svm.pc, 0x6000);
    assert_eq!(
        svm.msr,
        (1 << 63) | 0x1000 | MSR_S,
        "secure from its first instruction"
    );
    assert_eq!(svm.r3, 0x1234, "start-cpu's r3, not the cookie");
    // vCPU 1 stops itself (reflected H_RTAS stop-self: its r31 is the cookie)
    // and is started again.
    let (_, _, stop_cookie) = uv.reflect_interrupt(LPID, 0xc000_0000_0000_7000, MSR | MSR_S);
    let args = uv.start_cpu(LPID, 1, 0x6000, 0x5678);
    let svm = start(&p, &mut uv, MSR | MSR_S, args[2], stop_cookie).expect("through the UV");
    assert_eq!((svm.pc, svm.r3), (0x6000, 0x5678));
    assert_eq!(uv.outstanding_cookies(LPID), 0, "stop-self cookie released");
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
    // Entering a secure vCPU with hrfid is what the model forbids.
    uv.hrfid(LPID);
    assert_eq!(uv.violations, [Violation::HrfidIntoSvm { lpid: LPID }]);

    // A normal partition (or one without an ultravisor): hrfid.
    let normal = PartitionUv::new(LPID + 1, false, &memory(), true);
    assert_eq!(normal.start_cpu_entry(MSR), Resume::Hrfid);
    let no_uv = PartitionUv::new(LPID + 2, true, &memory(), false);
    assert_eq!(no_uv.start_cpu_entry(MSR | MSR_S), Resume::Hrfid);
    // A cookie the UV never gave is refused (the real UV asserts).
    let mut gpr = [0u64; 32];
    gpr[3] = 0x7777_0000;
    gpr[31] = 0x1234_5000;
    assert!(uv
        .uv_return(LPID, &UvReturn::from_vcpu(&gpr, 0), 0x6000, 0)
        .is_err());
}
