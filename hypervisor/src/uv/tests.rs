//! The secure-VM protocol against the model ultravisor.
use super::fixtures::*;
use super::host::{self, PateRoute};
use super::model::{Call, ModelUv, Violation, ENCRYPT, SECURE_MEM_BIT};
use super::svm::{self, PageState, Phase, SecureVm, SvmConfig};
use super::*;
use crate::papr::hcall::{self as h, HcallError};

const LPID: u32 = 3;

fn vm(secure_allowed: bool) -> SecureVm {
    SecureVm::new(SvmConfig {
        lpid: LPID,
        secure_allowed,
        memory: memory(),
    })
}

fn call(vm: &mut SecureVm, uv: &mut ModelUv, secure: bool, op: u64, args: &[u64]) -> i64 {
    match vm.hcall(uv, secure, op, args).expect("an H_SVM call") {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}

#[test]
fn new_codes_match_hvcall_h() {
    assert_eq!(HcallError::Unsupported.code(), -67);
    assert_eq!(HcallError::Authority.code(), -10);
    assert_eq!(UvError::Permission.code(), -11);
    assert_eq!(UvError::State.code(), -75);
    assert_eq!(UvError::from_code(0), Some(Ok(())));
    assert_eq!(UvError::from_code(-58), Some(Err(UvError::P5)));
    assert_eq!(UvError::from_code(-3), None);
}

#[test]
fn esm_makes_every_page_secure_with_its_contents() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[0, 3 * P]), 0);
    assert_eq!(v.phase(), Phase::Secure);
    assert!(uv.is_svm(LPID));
    assert_eq!(uv.slots(LPID), [(0, 0, EXTENT), (1, EXTENT, EXTENT)]);
    for i in 0..MEM / P {
        assert_eq!(v.page(i * P), Some(PageState::Secure));
        assert_eq!(uv.guest_read(LPID, i * P), Some(0x100 + i), "page {i}");
    }
    // Registration first, the early pages in the UV's order, then the rest.
    assert_eq!(uv.calls[0], Call::RegisterMemSlot(LPID, 0, EXTENT, 0));
    assert_eq!(uv.calls[1], Call::RegisterMemSlot(LPID, EXTENT, EXTENT, 1));
    assert_eq!(uv.calls[2], Call::PageIn(LPID, BASE, 0));
    assert_eq!(uv.calls[3], Call::PageIn(LPID, BASE + 3 * P, 3 * P));
    assert_eq!(uv.calls.len(), 2 + (MEM / P) as usize);
    // A page of the second extent came from the second host run.
    assert!(uv
        .calls
        .contains(&Call::PageIn(LPID, BASE2 + P, EXTENT + P)));
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn esm_refused_when_the_manifest_does_not_allow_secure() {
    let (mut v, mut uv) = (vm(false), model());
    assert_eq!(uv.esm(&mut v, &[]), HcallError::Authority.code());
    assert_eq!(v.phase(), Phase::Normal);
    assert!(!uv.knows(LPID));
    assert!(uv.calls.is_empty(), "no ucall for a refused start");
}

#[test]
fn svm_hcalls_need_secure_caller() {
    let (mut v, mut uv) = (vm(true), model());
    for op in [
        h::H_SVM_INIT_START,
        h::H_SVM_INIT_DONE,
        h::H_SVM_PAGE_IN,
        h::H_SVM_PAGE_OUT,
    ] {
        assert_eq!(
            call(&mut v, &mut uv, false, op, &[0, 0, 16]),
            -67,
            "{op:#x}"
        );
    }
    // ABORT is checked by phase: nothing started.
    assert_eq!(call(&mut v, &mut uv, false, h::H_SVM_INIT_ABORT, &[]), -67);
    assert!(v.hcall(&mut uv, true, h::H_RANDOM, &[]).is_none());
    assert!(uv.calls.is_empty());
}

#[test]
fn out_of_order_calls_before_start() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[0, 0, 16]),
        -67
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_OUT, &[0, 0, 16]),
        -67
    );
    assert_eq!(call(&mut v, &mut uv, true, h::H_SVM_INIT_DONE, &[]), -67);
    assert_eq!(call(&mut v, &mut uv, false, h::H_SVM_INIT_ABORT, &[]), -67);
    assert!(uv.calls.is_empty());
}

#[test]
fn start_without_esm_is_refused_by_the_uv() {
    // The UV creates its SVM state at UV_ESM; an INIT_START it did not issue
    // (the model never saw UV_ESM for this LPID) fails registration.
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_INIT_START, &[]),
        HcallError::Parameter.code()
    );
    assert_eq!(
        uv.violations,
        [Violation::NotAnSvm {
            ucall: UV_REGISTER_MEM_SLOT,
            lpid: LPID
        }]
    );
    assert_eq!(v.phase(), Phase::Normal);
}

/// A partition in the middle of UV_ESM, right after H_SVM_INIT_START.
fn started() -> (SecureVm, ModelUv) {
    let (mut v, mut uv) = (vm(true), model());
    uv.begin_for_test(LPID);
    assert_eq!(call(&mut v, &mut uv, true, h::H_SVM_INIT_START, &[]), 0);
    assert_eq!(v.phase(), Phase::Initialising);
    (v, uv)
}

#[test]
fn page_in_and_out_codes() {
    let (mut v, mut uv) = started();
    let before = uv.calls.len();
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[0, 0, 12]),
        -56,
        "H_P3"
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[0, 2, 16]),
        -55,
        "H_P2"
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[MEM, 0, 16]),
        -4
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[P + 8, 0, 16]),
        -4
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[!0xffff, 0, 16]),
        -4
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_OUT, &[0, 1, 16]),
        -55
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_OUT, &[0, 0, 21]),
        -56
    );
    assert_eq!(uv.calls.len(), before, "refused calls make no ucall");
    // Page in, then again: double page-in is H_PARAMETER and never reaches the UV.
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[2 * P, 0, 16]),
        0
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[2 * P, 0, 16]),
        -4
    );
    assert_eq!(uv.calls.len(), before + 1);
    // Page out of a page the UV does not hold: a no-op success, no ucall.
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_OUT, &[5 * P, 0, 16]),
        0
    );
    assert_eq!(uv.calls.len(), before + 1);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn double_start_and_late_done_and_abort() {
    let (mut v, mut uv) = started();
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_INIT_START, &[]),
        HcallError::State.code()
    );
    assert_eq!(call(&mut v, &mut uv, true, h::H_SVM_INIT_DONE, &[]), 0);
    assert_eq!(v.phase(), Phase::Secure);
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_INIT_DONE, &[]),
        HcallError::State.code()
    );
    assert_eq!(
        call(&mut v, &mut uv, false, h::H_SVM_INIT_ABORT, &[]),
        HcallError::State.code()
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_INIT_START, &[]),
        HcallError::State.code()
    );
    assert_eq!(v.phase(), Phase::Secure);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn abort_gives_memory_back_and_terminates() {
    let (mut v, mut uv) = started();
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[P, 0, 16]),
        0
    );
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_PAGE_IN, &[4 * P, 0, 16]),
        0
    );
    // The hypervisor's copies are stale now; the SVM writes its secure copy.
    uv.guest_write(LPID, P, 0xabc);
    uv.calls.clear();
    assert_eq!(
        call(&mut v, &mut uv, false, h::H_SVM_INIT_ABORT, &[]),
        HcallError::Parameter.code()
    );
    assert_eq!(
        uv.calls,
        [
            Call::PageOut(LPID, BASE + P, P),
            Call::PageOut(LPID, BASE + 4 * P, 4 * P),
            Call::SvmTerminate(LPID)
        ]
    );
    assert_eq!(v.phase(), Phase::Normal);
    assert!(!uv.knows(LPID));
    // Not yet secure: the contents come back in clear for the normal partition.
    assert_eq!(uv.hv_mem[&(BASE + P)], 0xabc);
    assert_eq!(uv.hv_mem[&(BASE + 4 * P)], 0x104);
    assert!(v.hv_may_access(0, MEM));
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn esm_failure_after_start_aborts() {
    let (mut v, mut uv) = (vm(true), model());
    // An early page beyond memory: H_PARAMETER from PAGE_IN, then the UV aborts
    // and the guest's UV_ESM returns the abort's H_PARAMETER.
    assert_eq!(uv.esm(&mut v, &[0, MEM + P]), HcallError::Parameter.code());
    assert_eq!(v.phase(), Phase::Normal);
    assert!(!uv.knows(LPID));
    assert_eq!(uv.calls.last(), Some(&Call::SvmTerminate(LPID)));
    assert_eq!(uv.hv_mem[&BASE], 0x100, "page 0 came back");
    // And the partition may try again.
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert_eq!(v.phase(), Phase::Secure);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn share_and_unshare() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert!(!v.hv_may_access(6 * P, 8));
    assert_eq!(uv.share(&mut v, 6 * P), 0);
    assert_eq!(v.page(6 * P), Some(PageState::Shared));
    // The UV zeroes what it shares: secure contents do not leak.
    assert_eq!(uv.hv_mem[&(BASE + 6 * P)], 0);
    assert!(v.hv_may_access(6 * P, P));
    assert!(!v.hv_may_access(6 * P, P + 1), "crosses into a secure page");
    // Both sides see each other's writes in a shared page.
    uv.guest_write(LPID, 6 * P, 0x77);
    assert_eq!(uv.hv_mem[&(BASE + 6 * P)], 0x77);
    uv.hv_mem.insert(BASE + 6 * P, 0x78);
    assert_eq!(uv.guest_read(LPID, 6 * P), Some(0x78));
    uv.hv_touch(LPID, 6 * P + 0x10);
    // Sharing twice is idempotent.
    assert_eq!(uv.share(&mut v, 6 * P), 0);
    // Unshare: back to secure with the shared contents.
    assert_eq!(uv.unshare(&mut v, 6 * P), 0);
    assert_eq!(v.page(6 * P), Some(PageState::Secure));
    assert_eq!(uv.guest_read(LPID, 6 * P), Some(0x78));
    assert!(!v.hv_may_access(6 * P, 8));
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn unmap_shared_invalidates_in_the_uv() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert!(v.unmap_shared(&mut uv, 2 * P).is_err(), "not shared");
    assert_eq!(uv.share(&mut v, 2 * P), 0);
    uv.calls.clear();
    assert_eq!(v.unmap_shared(&mut uv, 2 * P), Ok(()));
    assert_eq!(uv.calls, [Call::PageInval(LPID, 2 * P)]);
    assert_eq!(
        uv.guest_read(LPID, 2 * P),
        None,
        "the UV dropped its mapping"
    );
    assert_eq!(v.page(2 * P), Some(PageState::Normal));
    // The SVM faults on it again: the UV pages it back in (secure).
    assert_eq!(uv.unshare(&mut v, 2 * P), 0);
    assert_eq!(v.page(2 * P), Some(PageState::Secure));
}

#[test]
fn evict_returns_encrypted_page() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert_eq!(uv.evict(&mut v, 7 * P), 0);
    assert_eq!(v.page(7 * P), Some(PageState::Normal));
    assert_eq!(uv.hv_mem[&(BASE + 7 * P)], 0x107 ^ ENCRYPT);
    // An evicted page of a secure VM is still not the hypervisor's to use.
    assert!(!v.hv_may_access(7 * P, 1));
    // The UV wants it back: page-in decrypts (the model: the tag round-trips).
    uv.hv_mem.insert(BASE + 7 * P, 0x107);
    assert_eq!(uv.unshare(&mut v, 7 * P), 0);
    assert_eq!(uv.guest_read(LPID, 7 * P), Some(0x107));
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn terminate_order_and_reboot() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[]), 0);
    uv.calls.clear();
    let mut table = Table::default();
    let r = host::partition_stopped(
        PateRoute::Ultravisor,
        &mut table,
        Some(&mut uv),
        Some(&mut v),
        LPID,
    );
    assert_eq!(r, Ok(()));
    assert_eq!(
        uv.calls,
        [
            Call::UnregisterMemSlot(LPID, 0),
            Call::UnregisterMemSlot(LPID, 1),
            Call::SvmTerminate(LPID),
            Call::WritePate(LPID, 0, 0)
        ]
    );
    assert_eq!(table.0, [(LPID, 0, 0)]);
    assert!(!uv.knows(LPID));
    assert_eq!(v.phase(), Phase::Normal);
    assert!(
        v.hv_may_access(0, MEM),
        "the rebooted partition is normal again"
    );
    // The next boot may go secure again.
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert!(uv.violations.is_empty(), "{:?}", uv.violations);
}

#[test]
fn terminate_of_normal_partition_is_only_the_pate() {
    let (mut v, mut uv) = (vm(true), model());
    let mut table = Table::default();
    host::partition_stopped(
        PateRoute::Ultravisor,
        &mut table,
        Some(&mut uv),
        Some(&mut v),
        LPID,
    )
    .unwrap();
    assert_eq!(uv.calls, [Call::WritePate(LPID, 0, 0)]);
}

#[test]
fn model_reports_hypervisor_touching_secure_page() {
    let (mut v, mut uv) = (vm(true), model());
    assert_eq!(uv.esm(&mut v, &[]), 0);
    assert!(!v.hv_may_access(5 * P + 8, 8));
    uv.hv_touch(LPID, 5 * P + 8);
    assert_eq!(
        uv.violations,
        [Violation::TouchedSecurePage {
            lpid: LPID,
            gpa: 5 * P
        }]
    );
}

#[test]
fn model_reports_secure_address_and_bad_ucalls() {
    let mut uv = model();
    uv.begin_for_test(LPID);
    assert_eq!(uv.register_mem_slot(LPID, 0, MEM, 0, 0), Ok(()));
    assert_eq!(uv.register_mem_slot(LPID, MEM, P, 0, 0), Err(UvError::P5));
    assert_eq!(
        uv.register_mem_slot(LPID, MEM - P, 2 * P, 0, 1),
        Err(UvError::P2)
    );
    assert_eq!(uv.register_mem_slot(LPID, 8, P, 0, 1), Err(UvError::P2));
    assert_eq!(
        uv.register_mem_slot(LPID, MEM, P + 8, 0, 1),
        Err(UvError::P3)
    );
    assert_eq!(uv.register_mem_slot(LPID, MEM, P, 2, 1), Err(UvError::P4));
    assert_eq!(
        uv.page_in(LPID, SECURE_MEM_BIT | 0x10000, 0, 0, 16),
        Err(UvError::P2)
    );
    assert_eq!(uv.page_in(LPID, BASE, MEM, 0, 16), Err(UvError::P3));
    assert_eq!(uv.page_in(LPID, BASE, 0, 1, 16), Err(UvError::P4));
    assert_eq!(uv.page_in(LPID, BASE, 0, 0, 12), Err(UvError::P5));
    assert_eq!(uv.page_in(LPID, BASE, 0, 0, 16), Ok(()));
    assert_eq!(uv.page_in(LPID, BASE, 0, 0, 16), Err(UvError::Parameter));
    assert_eq!(uv.page_out(LPID, BASE, P, 0, 16), Err(UvError::P3));
    assert_eq!(uv.page_inval(LPID, 0, 16), Err(UvError::P2));
    assert_eq!(uv.svm_terminate(LPID + 1), Err(UvError::Parameter));
    assert_eq!(
        uv.violations,
        [
            Violation::SecureAddress {
                ucall: UV_PAGE_IN,
                addr: SECURE_MEM_BIT | 0x10000
            },
            Violation::DoublePageIn { lpid: LPID, gpa: 0 },
            Violation::PageOutNotSecure { lpid: LPID, gpa: P },
            Violation::NotAnSvm {
                ucall: UV_SVM_TERMINATE,
                lpid: LPID + 1
            },
        ]
    );
}

/// Random sequences of UV-side requests (as a malicious or buggy SVM/UV could
/// issue them) never make the hypervisor break a rule, never panic, and keep the
/// hypervisor's page states equal to the UV's.
#[test]
fn random_sequences_keep_hypervisor_and_uv_in_agreement() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut seen, mut shared) = ([0usize; 3], 0usize);
    for _round in 0..200 {
        let (mut v, mut uv) = (vm(true), model());
        uv.begin_for_test(LPID);
        for _ in 0..60 {
            let gpa = (rnd() % (MEM / P + 2)) * P + if rnd() % 8 == 0 { 8 } else { 0 };
            let op = [
                h::H_SVM_INIT_START,
                h::H_SVM_INIT_DONE,
                h::H_SVM_INIT_ABORT,
                h::H_SVM_PAGE_IN,
                h::H_SVM_PAGE_OUT,
            ][(rnd() % 5) as usize];
            match rnd() % 6 {
                0 => {
                    uv.share(&mut v, gpa);
                }
                1 => {
                    let _ = v.unmap_shared(&mut uv, gpa);
                }
                _ => {
                    // H_PAGE_IN_SHARED comes from the UV only for a page the SVM
                    // shares (`share` above): the UV is trusted to mean it.
                    let flags = [0, 0, 0, 2, 4][(rnd() % 5) as usize];
                    let shift = if rnd() % 10 == 0 { 12 } else { 16 };
                    let secure = rnd() % 10 != 0;
                    let _ = v.hcall(&mut uv, secure, op, &[gpa, flags, shift]);
                }
            }
            if v.phase() == Phase::Normal && !uv.knows(LPID) {
                uv.begin_for_test(LPID);
            }
            // Whatever the hypervisor believes it may touch, the UV agrees.
            for i in 0..MEM / P {
                if v.hv_may_access(i * P, P) {
                    uv.hv_touch(LPID, i * P);
                }
            }
            assert!(
                uv.violations.is_empty(),
                "{:?} after {op:#x}",
                uv.violations
            );
            seen[match v.phase() {
                Phase::Normal => 0,
                Phase::Initialising => 1,
                Phase::Secure => 2,
            }] += 1;
            shared += (0..MEM / P)
                .filter(|&i| v.page(i * P) == Some(PageState::Shared))
                .count();
        }
    }
    // The sequences reach every phase and shared pages (the test is not vacuous).
    assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    assert!(shared > 100, "{shared}");
}

#[test]
fn no_uv_answers() {
    for op in [
        h::H_SVM_PAGE_IN,
        h::H_SVM_PAGE_OUT,
        h::H_SVM_INIT_START,
        h::H_SVM_INIT_DONE,
        h::H_SVM_INIT_ABORT,
    ] {
        assert_eq!(svm::hcall_without_uv(op), Some(HcallError::Unsupported));
        assert!(h::valid_opcode(op));
    }
    assert_eq!(
        svm::hcall_without_uv(h::H_TPM_COMM),
        Some(HcallError::Function)
    );
    assert_eq!(svm::hcall_without_uv(h::H_CEDE), None);
}

#[test]
fn uv_return_frame() {
    let f = UvReturn::for_hcall(-4, &[1, 2, 3], 0x8000_0000_0040_1001, 0xdead_beef);
    assert_eq!(f.r0, (-4i64) as u64);
    assert_eq!(f.r2, 0x8000_0000_0040_1001);
    assert_eq!(f.r3, UV_RETURN);
    assert_eq!(f.r4_r12, [1, 2, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(f.r31, 0xdead_beef, "the cookie goes back untouched");
    let long = UvReturn::for_hcall(0, &[7; 12], 0, 5);
    assert_eq!(long.r4_r12, [7; 9]);
}

#[test]
fn pate_route_with_and_without_uv() {
    assert!(PateRoute::for_host(false).writes_ptcr());
    assert!(!PateRoute::for_host(true).writes_ptcr());
    let mut t = Table::default();
    let mut uv = model();
    host::set_pate(PateRoute::Direct, &mut t, Some(&mut uv), 0, 0x8_0001, 0x2).unwrap();
    assert!(uv.calls.is_empty(), "no ucall without an ultravisor");
    host::set_pate(
        PateRoute::Ultravisor,
        &mut t,
        Some(&mut uv),
        0,
        0x8_0001,
        0x2,
    )
    .unwrap();
    host::set_pate(
        PateRoute::Ultravisor,
        &mut t,
        Some(&mut uv),
        5,
        0x9_0001,
        0x3,
    )
    .unwrap();
    assert_eq!(
        uv.calls,
        [
            Call::WritePate(0, 0x8_0001, 0x2),
            Call::WritePate(5, 0x9_0001, 0x3)
        ]
    );
    assert_eq!(uv.pate[&5], (0x9_0001, 0x3));
    assert_eq!(t.0.len(), 3, "the hypervisor keeps its own copy either way");
    let e = host::set_pate(PateRoute::Ultravisor, &mut t, None, 0, 1, 2).unwrap_err();
    assert_eq!(e.ucall, UV_WRITE_PATE);
    assert_eq!(
        host::set_pate(PateRoute::Ultravisor, &mut t, Some(&mut uv), 5000, 1, 2)
            .unwrap_err()
            .error,
        UvError::Parameter
    );
}

#[test]
fn svm_pate_keeps_the_uv_tree() {
    let (mut v, mut uv) = (vm(true), model());
    let mut t = Table::default();
    host::set_pate(
        PateRoute::Ultravisor,
        &mut t,
        Some(&mut uv),
        LPID,
        0xaaaa_0000,
        0x1,
    )
    .unwrap();
    assert_eq!(uv.esm(&mut v, &[]), 0);
    host::set_pate(
        PateRoute::Ultravisor,
        &mut t,
        Some(&mut uv),
        LPID,
        0xbbbb_0000,
        0x2,
    )
    .unwrap();
    assert_eq!(
        uv.pate[&LPID],
        (0xaaaa_0000, 0x2),
        "dw0 of an SVM is the UV's own"
    );
}

#[test]
fn secure_partitions_refused_with_a_reason() {
    assert_eq!(host::secure_refusal(false, false), None);
    assert_eq!(host::secure_refusal(false, true), None);
    assert!(host::secure_refusal(true, false)
        .unwrap()
        .contains("no ibm,ultravisor node"));
    assert_eq!(host::secure_refusal(true, true), None, "a UV hosts it");
}

/// the boot plan of the hypervisor's own entry. Without an ultravisor: the
/// table entry and a PTCR write, no ucall. With one (`ibm,ultravisor` in the
/// host tree): exactly UV_WRITE_PATE(0, dw0, dw1) and no PTCR write.
#[test]
fn hypervisor_pate_at_boot() {
    let (dw0, dw1) = (0x8000_0000_0123_4005, 0x0000_0000_0456_7000);
    let mut t = Table::default();
    let mut uv = model();
    let ptcr =
        host::install_hypervisor_pate(PateRoute::for_host(false), &mut t, Some(&mut uv), dw0, dw1);
    assert_eq!(ptcr, Ok(true));
    assert!(uv.calls.is_empty());
    assert_eq!(t.0, [(0, dw0, dw1)]);

    let mut t = Table::default();
    let ptcr =
        host::install_hypervisor_pate(PateRoute::for_host(true), &mut t, Some(&mut uv), dw0, dw1);
    assert_eq!(ptcr, Ok(false), "PTCR is the ultravisor's");
    assert_eq!(uv.calls, [Call::WritePate(0, dw0, dw1)]);
    assert_eq!(uv.pate[&0], (dw0, dw1));
    assert_eq!(t.0, [(0, dw0, dw1)], "and the hypervisor keeps its copy");
}

#[test]
fn refused_slot_undoes_the_others() {
    let (mut v, mut uv) = (vm(true), model());
    uv.begin_for_test(LPID);
    // Slot id 1 is taken already: the hypervisor's second registration fails.
    assert_eq!(uv.register_mem_slot(LPID, 1 << 40, P, 0, 1), Ok(()));
    uv.calls.clear();
    assert_eq!(
        call(&mut v, &mut uv, true, h::H_SVM_INIT_START, &[]),
        HcallError::Parameter.code()
    );
    assert_eq!(
        uv.calls,
        [
            Call::RegisterMemSlot(LPID, 0, EXTENT, 0),
            Call::RegisterMemSlot(LPID, EXTENT, EXTENT, 1),
            Call::UnregisterMemSlot(LPID, 0),
        ]
    );
    assert_eq!(v.phase(), Phase::Normal);
    assert_eq!(
        uv.slots(LPID),
        [(1, 1 << 40, P)],
        "only the UV's own slot is left"
    );
}
