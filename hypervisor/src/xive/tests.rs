//! Host tests: Linux's use of the controller, the ESB and presenter rules, every
//! hcall's argument checks, and a fuzz run.
#![allow(clippy::indexing_slicing)]

use super::*;
use alloc::vec;

/// Guest RAM at a non-identity guest address, so a test cannot pass by treating a
/// guest address as a host one.
struct FakeMem {
    base: u64,
    bytes: Vec<u8>,
    writes: usize,
}

impl FakeMem {
    const BASE: u64 = 0x4000_0000;

    fn new() -> FakeMem {
        FakeMem {
            base: Self::BASE,
            bytes: vec![0; 1 << 20],
            writes: 0,
        }
    }

    fn read_be32(&self, gpa: u64) -> u32 {
        let o = (gpa - self.base) as usize;
        u32::from_be_bytes(self.bytes[o..o + 4].try_into().unwrap())
    }
}

impl GuestMemory for FakeMem {
    fn write_be32(&mut self, gpa: u64, value: u32) -> bool {
        if !gpa.is_multiple_of(4) || !self.contains(gpa, 4) {
            return false;
        }
        let o = (gpa - self.base) as usize;
        self.bytes[o..o + 4].copy_from_slice(&value.to_be_bytes());
        self.writes += 1;
        true
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        match (gpa.checked_sub(self.base), gpa.checked_add(len)) {
            (Some(_), Some(end)) => end <= self.base + self.bytes.len() as u64,
            _ => false,
        }
    }
}

const VTY: u32 = 0x1000;
const LSI: u32 = 0x1001;
const Q0: u64 = FakeMem::BASE;
const Q1: u64 = FakeMem::BASE + 0x1_0000;

fn xive() -> Xive {
    Xive::new(2, 2, &[(VTY, false), (LSI, true)]).unwrap()
}

fn trig(lisn: u32) -> u64 {
    Xive::esb_pages(lisn).0
}

fn mgmt(lisn: u32) -> u64 {
    Xive::esb_pages(lisn).1
}

/// What Linux's xive_spapr_configure_queue + setup_cpu do for `vcpu`.
fn linux_setup_cpu(x: &mut Xive, mem: &mut FakeMem, vcpu: u32, qpage: u64) {
    assert_eq!(x.h_int_get_queue_info(0, vcpu.into(), 6), Ok([0, 16, 0, 0]));
    assert_eq!(
        x.h_int_set_queue_config(mem, EQ_ALWAYS_NOTIFY, vcpu.into(), 6, qpage, 16),
        Ok([0; 4])
    );
    assert_eq!(
        x.mmio_store(mem, vcpu, TIMA_OS_GPA + 0x11, 1, 0xff),
        Ok(None)
    );
}

/// Linux's queue scan: the entry at `idx` is valid when bit 31 != toggle.
fn queue_entry(mem: &FakeMem, qpage: u64, idx: u64, toggle: u32) -> Option<u32> {
    let e = mem.read_be32(qpage + idx * 4);
    ((e >> 31) != toggle).then_some(e & EISN_MASK)
}

#[test]
fn linux_boot_sequence_ipi() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    linux_setup_cpu(&mut x, &mut mem, 0, Q0);
    linux_setup_cpu(&mut x, &mut mem, 1, Q1);

    // xive_spapr_get_ipi / populate_irq_data for IPI 1.
    let info = x.h_int_get_source_info(0, 1).unwrap();
    assert_eq!(
        info,
        [
            0,
            ESB_BASE_GPA + 3 * 0x1_0000,
            ESB_BASE_GPA + 2 * 0x1_0000,
            16
        ]
    );
    // configure_irq: target 1, prio 6, EISN 1; then unmask with PQ=00.
    assert_eq!(
        x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 1, 6, 1),
        Ok([0; 4])
    );
    assert_eq!(x.h_int_get_source_config(0, 1), Ok([1, 6, 1, 0]));
    assert_eq!(
        x.mmio_load(&mut mem, 0, info[1] + ESB_SET_PQ_00, 8),
        Ok((0b01, None))
    );

    // vCPU 0 sends the IPI.
    assert_eq!(
        x.mmio_store(&mut mem, 0, info[2], 8, 0),
        Ok(Some(Kick { vcpu: 1 }))
    );
    assert!(x.pending(1));
    assert!(!x.pending(0));
    assert_eq!(mem.read_be32(Q1), 0x8000_0001);
    assert_eq!(queue_entry(&mem, Q1, 0, 0), Some(1));

    // vCPU 1 takes 0x500: ack, scan, EOI, restore CPPR.
    let ack = x
        .mmio_load(&mut mem, 1, TIMA_OS_GPA + TM_SPC_ACK_OS_REG, 2)
        .unwrap()
        .0;
    assert_eq!(ack, 0x8006);
    assert!(!x.pending(1));
    assert_eq!(queue_entry(&mem, Q1, 1, 0), None);
    assert_eq!(
        x.mmio_load(&mut mem, 1, info[1] + ESB_SET_PQ_00, 8),
        Ok((0b10, None))
    );
    assert_eq!(
        x.mmio_store(&mut mem, 1, TIMA_OS_GPA + 0x11, 1, 0xff),
        Ok(None)
    );
    assert!(!x.pending(1));
    let qw1 = x.qw1(1).unwrap();
    assert_eq!((qw1[0], qw1[1], qw1[2], qw1[7]), (0, 0xff, 0, 0xff));

    // The next IPI goes to the next slot.
    assert_eq!(x.trigger(&mut mem, 1), Some(Kick { vcpu: 1 }));
    assert_eq!(queue_entry(&mem, Q1, 1, 0), Some(1));
    assert_eq!(
        x.h_int_get_queue_config(EQ_DEBUG, 1, 6),
        Ok([EQ_ALWAYS_NOTIFY | EQ_GENERATION, Q1, 16, 2])
    );
    assert_eq!(mem.read_be32(Q0), 0, "nothing for vCPU 0");
}

#[test]
fn q_bit_coalesces_and_eoi_retriggers() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    linux_setup_cpu(&mut x, &mut mem, 0, Q0);
    x.h_int_set_source_config(SRC_CFG_SET_EISN, VTY.into(), 0, 6, 0x1000)
        .unwrap();
    x.mmio_load(&mut mem, 0, mgmt(VTY) + ESB_SET_PQ_00, 8)
        .unwrap();

    assert_eq!(x.trigger(&mut mem, VTY), Some(Kick { vcpu: 0 }));
    assert_eq!(x.trigger(&mut mem, VTY), None);
    assert_eq!(x.trigger(&mut mem, VTY), None);
    assert_eq!(x.source_pq(VTY), Some(0b11));
    assert_eq!(mem.writes, 1, "coalesced in Q");

    // Hardware EOI (load 0x000): 11 -> 10 and one more event.
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(VTY), 8),
        Ok((1, Some(Kick { vcpu: 0 })))
    );
    assert_eq!(x.source_pq(VTY), Some(0b10));
    assert_eq!(mem.writes, 2);
    assert_eq!(queue_entry(&mem, Q0, 1, 0), Some(0x1000));
    // 10 -> 00, nothing forwarded.
    assert_eq!(x.mmio_load(&mut mem, 0, mgmt(VTY), 8), Ok((0, None)));
    assert_eq!(x.source_pq(VTY), Some(0b00));

    // Linux's EOI: SET_PQ_00 returns Q set, then it re-triggers the trigger page.
    x.trigger(&mut mem, VTY);
    x.trigger(&mut mem, VTY);
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(VTY) + ESB_SET_PQ_00, 8),
        Ok((0b11, None))
    );
    assert_eq!(
        x.mmio_store(&mut mem, 0, trig(VTY), 8, 0),
        Ok(Some(Kick { vcpu: 0 }))
    );
    assert_eq!(mem.writes, 4);

    // StoreEOI behaves like the load EOI.
    x.trigger(&mut mem, VTY);
    assert_eq!(x.source_pq(VTY), Some(0b11));
    assert_eq!(
        x.mmio_store(&mut mem, 0, mgmt(VTY) + ESB_STORE_EOI, 8, 0),
        Ok(Some(Kick { vcpu: 0 }))
    );
    assert_eq!(x.source_pq(VTY), Some(0b10));

    // EOI never switches an off source on.
    x.mmio_load(&mut mem, 0, mgmt(VTY) + ESB_SET_PQ_01, 8)
        .unwrap();
    assert_eq!(x.mmio_load(&mut mem, 0, mgmt(VTY), 8), Ok((0, None)));
    assert_eq!(x.source_pq(VTY), Some(PQ_OFF));
    assert_eq!(x.trigger(&mut mem, VTY), None);
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(VTY) + ESB_GET, 8),
        Ok((1, None))
    );
}

#[test]
fn masked_sources_drop_events() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    linux_setup_cpu(&mut x, &mut mem, 0, Q0);

    // Reset state: PQ off and EAS masked.
    assert_eq!(x.source_pq(0), Some(PQ_OFF));
    assert_eq!(x.h_int_get_source_config(0, 0), Ok([0, 0xff, 0, 0]));
    assert_eq!(x.trigger(&mut mem, 0), None);

    // EAS masked with the flag: the ESB still latches P, nothing is queued.
    x.h_int_set_source_config(SRC_CFG_MASK | SRC_CFG_SET_EISN, 0, 0, 6, 7)
        .unwrap();
    assert_eq!(x.h_int_get_source_config(0, 0), Ok([0, 0xff, 7, 0]));
    x.mmio_load(&mut mem, 0, mgmt(0) + ESB_SET_PQ_00, 8)
        .unwrap();
    assert_eq!(x.trigger(&mut mem, 0), None);
    assert_eq!(x.source_pq(0), Some(0b10));
    assert_eq!(mem.writes, 0);
    assert!(!x.pending(0));

    // Priority 0xff resets the EAS (EISN too), as QEMU.
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 1, 6, 9)
        .unwrap();
    assert_eq!(x.h_int_get_source_config(0, 0), Ok([1, 6, 9, 0]));
    x.h_int_set_source_config(0, 0, 1, 0xff, 0).unwrap();
    assert_eq!(x.eas(0), Some(Eas::RESET));

    // Unmasked but its queue is disabled: dropped, P stays.
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 1, 5, 9)
        .unwrap();
    x.mmio_load(&mut mem, 0, mgmt(0) + ESB_SET_PQ_00, 8)
        .unwrap();
    assert_eq!(x.trigger(&mut mem, 0), None);
    assert_eq!(x.source_pq(0), Some(0b10));
    assert_eq!(mem.writes, 0);
    assert!(!x.pending(1));
}

#[test]
fn queue_wrap_flips_generation() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    x.h_int_set_queue_config(&mem, 0, 0, 3, Q0, 12).unwrap();
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 0, 3, 0x42)
        .unwrap();
    x.tima_store(0, TimaPage::Os, 0x11, 1, 0xff).unwrap();
    let entries = 1024;
    let (mut idx, mut toggle) = (0u64, 0u32);
    for n in 0..entries + 3 {
        x.esb_load(&mut mem, 0, EsbPage::Mgmt, ESB_SET_PQ_00)
            .unwrap();
        assert_eq!(x.trigger(&mut mem, 0), Some(Kick { vcpu: 0 }), "event {n}");
        assert_eq!(queue_entry(&mem, Q0, idx, toggle), Some(0x42), "event {n}");
        idx += 1;
        if idx == entries {
            idx = 0;
            toggle ^= 1;
        }
    }
    assert_eq!(mem.read_be32(Q0), 0x42, "second lap: generation 0");
    assert_eq!(
        mem.read_be32(Q0 + 3 * 4),
        0x8000_0042,
        "not yet overwritten"
    );
    assert_eq!(x.h_int_get_queue_config(EQ_DEBUG, 0, 3), Ok([0, Q0, 12, 3]));
    assert_eq!(x.h_int_get_queue_config(0, 0, 3), Ok([0, Q0, 12, 0]));
    // Reconfiguring restarts at index 0, generation 1.
    x.h_int_set_queue_config(&mem, 0, 0, 3, Q0, 12).unwrap();
    assert_eq!(
        x.h_int_get_queue_config(EQ_DEBUG, 0, 3),
        Ok([EQ_GENERATION, Q0, 12, 0])
    );
    // Disabling clears it all.
    x.h_int_set_queue_config(&mem, 0, 0, 3, 0, 0).unwrap();
    assert_eq!(x.h_int_get_queue_config(EQ_DEBUG, 0, 3), Ok([0; 4]));
}

#[test]
fn cppr_holds_interrupts_back() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    x.h_int_set_queue_config(&mem, 1, 0, 4, Q0, 16).unwrap();
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 0, 4, 1)
        .unwrap();
    x.esb_load(&mut mem, 1, EsbPage::Mgmt, ESB_SET_PQ_00)
        .unwrap();

    // CPPR 0 after reset: queued and in the IPB, but not presented.
    assert_eq!(x.trigger(&mut mem, 1), None);
    assert_eq!(mem.writes, 1);
    assert!(!x.pending(0));
    let qw1 = x.qw1(0).unwrap();
    assert_eq!((qw1[0], qw1[1], qw1[2], qw1[7]), (0, 0, 0x08, 4));
    // Ack with nothing presented changes nothing.
    assert_eq!(x.tima_load(0, TimaPage::Os, 0x810, 2), Ok(0x0000));

    // CPPR 4 (not less favoured than 4) still holds it; 5 releases it.
    assert_eq!(x.tima_store(0, TimaPage::Os, 0x11, 1, 4), Ok(None));
    assert!(!x.pending(0));
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x11, 1, 5),
        Ok(Some(Kick { vcpu: 0 }))
    );
    assert!(x.pending(0));
    // Raising CPPR again withdraws the exception.
    assert_eq!(x.tima_store(0, TimaPage::Os, 0x11, 1, 2), Ok(None));
    assert!(!x.pending(0));
    // Out-of-range CPPR means 0xff, as QEMU.
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x11, 1, 0x10),
        Ok(Some(Kick { vcpu: 0 }))
    );
    assert_eq!(x.qw1(0).unwrap()[1], 0xff);
    assert_eq!(x.tima_load(0, TimaPage::Os, 0x810, 2), Ok(0x8004));
    assert_eq!(x.qw1(0).unwrap()[2], 0);

    // SET_OS_PENDING (Linux's replay): IPB bit, presented under CPPR.
    x.tima_store(0, TimaPage::Os, 0x11, 1, 0xff).unwrap();
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x812, 1, 2),
        Ok(Some(Kick { vcpu: 0 }))
    );
    assert_eq!(x.tima_load(0, TimaPage::Os, 0x810, 2), Ok(0x8002));
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x812, 1, 9),
        Ok(None),
        "no such priority"
    );
    assert!(!x.pending(0));
}

#[test]
fn more_favoured_priority_presented_first() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    x.h_int_set_queue_config(&mem, 1, 0, 6, Q0, 16).unwrap();
    x.h_int_set_queue_config(&mem, 1, 0, 2, Q1, 16).unwrap();
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 0, 6, 10)
        .unwrap();
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 0, 2, 11)
        .unwrap();
    for l in 0..2 {
        x.esb_load(&mut mem, l, EsbPage::Mgmt, ESB_SET_PQ_00)
            .unwrap();
        x.trigger(&mut mem, l);
    }
    x.tima_store(0, TimaPage::Os, 0x11, 1, 0xff).unwrap();
    assert_eq!(x.tima_load(0, TimaPage::Os, 0x810, 2), Ok(0x8002));
    assert_eq!(queue_entry(&mem, Q1, 0, 0), Some(11));
    assert!(!x.pending(0), "6 is not more favoured than CPPR 2");
    x.tima_store(0, TimaPage::Os, 0x11, 1, 0xff).unwrap();
    assert_eq!(x.tima_load(0, TimaPage::Os, 0x810, 2), Ok(0x8006));
    assert_eq!(queue_entry(&mem, Q0, 0, 0), Some(10));
}

#[test]
fn lsi_level_and_h_int_esb() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    assert_eq!(
        x.h_int_get_source_info(0, LSI.into()),
        Ok([SRC_INFO_LSI | SRC_INFO_H_INT_ESB, u64::MAX, u64::MAX, 16])
    );
    assert_eq!(x.set_lsi_level(&mut mem, VTY, true), Err(XiveError::NotLsi));
    assert_eq!(
        x.set_lsi_level(&mut mem, 7, true),
        Err(XiveError::NoSuchSource)
    );
    // Asserted while off: latched as a level only.
    assert_eq!(x.set_lsi_level(&mut mem, LSI, true), Ok(None));
    assert_eq!(x.source_pq(LSI), Some(PQ_OFF));

    linux_setup_cpu(&mut x, &mut mem, 1, Q1);
    x.h_int_set_source_config(SRC_CFG_SET_EISN, LSI.into(), 1, 6, 0x77)
        .unwrap();
    // Unmask via H_INT_ESB: the asserted level fires at once.
    let r = x.h_int_esb(&mut mem, 0, LSI.into(), ESB_SET_PQ_00, 0);
    assert_eq!(r, Ok(([0b01, 0, 0, 0], Some(Kick { vcpu: 1 }))));
    assert_eq!(queue_entry(&mem, Q1, 0, 0), Some(0x77));
    // A trigger while P is set does nothing (no Q for LSIs).
    assert_eq!(x.trigger(&mut mem, LSI), None);
    assert_eq!(x.source_pq(LSI), Some(0b10));
    // EOI while still asserted: fires again.
    let r = x.h_int_esb(&mut mem, 0, LSI.into(), ESB_LOAD_EOI, 0);
    assert_eq!(r, Ok(([1, 0, 0, 0], Some(Kick { vcpu: 1 }))));
    assert_eq!(queue_entry(&mem, Q1, 1, 0), Some(0x77));
    // Deassert, EOI: quiet, PQ 00; assert again: fires.
    assert_eq!(x.set_lsi_level(&mut mem, LSI, false), Ok(None));
    let r = x.h_int_esb(&mut mem, 0, LSI.into(), ESB_LOAD_EOI, 0);
    assert_eq!(r, Ok(([0, 0, 0, 0], None)));
    assert_eq!(x.source_pq(LSI), Some(0));
    assert_eq!(
        x.set_lsi_level(&mut mem, LSI, true),
        Ok(Some(Kick { vcpu: 1 }))
    );
    // H_INT_ESB stores: r4 = -1, undefined offsets too.
    let r = x.h_int_esb(&mut mem, ESB_HCALL_STORE, LSI.into(), ESB_SET_PQ_01, 0);
    assert_eq!(r, Ok(([u64::MAX, 0, 0, 0], None)));
    assert_eq!(x.source_pq(LSI), Some(PQ_OFF));
    let r = x.h_int_esb(&mut mem, ESB_HCALL_STORE, LSI.into(), 0x800, 0);
    assert_eq!(r, Ok(([u64::MAX, 0, 0, 0], None)));
    // IPIs can use H_INT_ESB too; a store at 0 triggers.
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 1, 6, 3)
        .unwrap();
    x.h_int_esb(&mut mem, 0, 0, ESB_SET_PQ_00, 0).unwrap();
    let r = x.h_int_esb(&mut mem, ESB_HCALL_STORE, 0, 0, 0);
    assert_eq!(r, Ok(([u64::MAX, 0, 0, 0], Some(Kick { vcpu: 1 }))));
}

#[test]
fn classify_windows() {
    let x = xive();
    assert_eq!(
        x.classify(TIMA_OS_GPA + 0x810),
        Some(MmioTarget::TimaOs { offset: 0x810 })
    );
    assert_eq!(
        x.classify(TIMA_USER_GPA),
        Some(MmioTarget::TimaUser { offset: 0 })
    );
    assert_eq!(x.classify(TIMA_OS_GPA + 0x1_0000), None);
    assert_eq!(
        x.classify(ESB_BASE_GPA),
        Some(MmioTarget::EsbTrigger { lisn: 0, offset: 0 })
    );
    assert_eq!(
        x.classify(ESB_BASE_GPA + 0x3_0c00),
        Some(MmioTarget::EsbMgmt {
            lisn: 1,
            offset: 0xc00
        })
    );
    assert_eq!(
        x.classify(ESB_BASE_GPA + 0x4_0000),
        None,
        "LISN 2 not configured"
    );
    assert_eq!(
        x.classify(mgmt(VTY) + 0xffff),
        Some(MmioTarget::EsbMgmt {
            lisn: VTY,
            offset: 0xffff
        })
    );
    assert_eq!(x.classify(trig(VTY + 2)), None);
    assert_eq!(x.classify(ESB_BASE_GPA - 1), None);
    assert_eq!(x.classify(u64::MAX), None);
    assert_eq!(x.classify(0), None);
    assert_eq!(
        x.esb_window(),
        (ESB_BASE_GPA, ESB_BASE_GPA + 0x1002 * 0x2_0000)
    );
    assert_eq!(x.lisn_ranges(), [0, 2]);
    assert_eq!(
        Xive::esb_pages(TIMA_LISN as u32),
        (TIMA_USER_GPA, TIMA_OS_GPA)
    );
}

#[test]
fn configuration_errors() {
    assert_eq!(Xive::new(0, 0, &[]).err(), Some(ConfigError::NoVcpus));
    assert_eq!(
        Xive::new(MAX_VCPUS + 1, 0, &[]).err(),
        Some(ConfigError::TooManyVcpus)
    );
    assert_eq!(
        Xive::new(1, TIMA_LISN as u32 + 1, &[]).err(),
        Some(ConfigError::TooManyIpis)
    );
    assert!(Xive::new(1, TIMA_LISN as u32, &[]).is_ok());
    assert_eq!(
        Xive::new(1, 4, &[(3, false)]).err(),
        Some(ConfigError::DuplicateLisn(3))
    );
    assert_eq!(
        Xive::new(1, 4, &[(9, false), (9, true)]).err(),
        Some(ConfigError::DuplicateLisn(9))
    );
    let t = TIMA_LISN as u32;
    assert_eq!(
        Xive::new(1, 4, &[(t, false)]).err(),
        Some(ConfigError::LisnOverlapsTima(t))
    );
    // Devices given out of order are found.
    let x = Xive::new(1, 0, &[(0x3000, true), (0x1000, false), (u32::MAX, false)]).unwrap();
    assert_eq!(x.source_pq(0x1000), Some(PQ_OFF));
    assert_eq!(x.source_pq(u32::MAX), Some(PQ_OFF));
    assert_eq!(x.h_int_get_source_info(0, 0x3000).unwrap()[0], 0xc);
    assert_eq!(x.source_pq(0), None);
}

#[test]
fn tima_accesses() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x10, 8),
        Ok(0x0000_00ff_ff00_ffff)
    );
    assert_eq!(x.tima_load(1, TimaPage::Os, 0x18, 4), Ok(0x8000_0001));
    assert_eq!(
        x.tima_load(0, TimaPage::Os, 0x18, 8),
        Ok(0x8000_0000_0000_0000)
    );
    assert_eq!(x.tima_load(1, TimaPage::Os, 0x13, 1), Ok(0xff));
    assert_eq!(x.tima_load(1, TimaPage::Os, 0x16, 2), Ok(0xffff));
    assert_eq!(x.tima_load(1, TimaPage::Os, 0x0, 8), Ok(0));
    assert_eq!(x.tima_load(1, TimaPage::Os, 0x8, 8), Ok(0));
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x20, 8),
        Err(XiveError::TimaUnsupported)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x810, 4),
        Err(XiveError::TimaUnsupported)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x818, 4),
        Err(XiveError::TimaUnsupported)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x11, 2),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x10, 3),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0xfff8, 16),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, 0x1_0000, 1),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.tima_load(1, TimaPage::Os, u64::MAX, 1),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.tima_load(2, TimaPage::Os, 0x10, 8),
        Err(XiveError::NoSuchVcpu)
    );
    assert_eq!(
        x.tima_load(0, TimaPage::User, 0x10, 8),
        Err(XiveError::TimaUserPage)
    );
    assert_eq!(
        x.tima_store(0, TimaPage::User, 0x11, 1, 0xff),
        Err(XiveError::TimaUserPage)
    );
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x10, 8, 0xff),
        Err(XiveError::TimaUnsupported)
    );
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x12, 1, 0xff),
        Err(XiveError::TimaUnsupported)
    );
    assert_eq!(
        x.tima_store(0, TimaPage::Os, 0x11, 2, 0xff),
        Err(XiveError::BadAccess)
    );
    assert_eq!(x.qw1(0).unwrap()[1], 0, "nothing changed");
    // Through the MMIO entry points.
    assert_eq!(
        x.mmio_load(&mut mem, 0, TIMA_USER_GPA, 8),
        Err(XiveError::TimaUserPage)
    );
    assert_eq!(
        x.mmio_load(&mut mem, 0, trig(0), 8),
        Err(XiveError::EsbTriggerLoad)
    );
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(0) + 4, 8),
        Err(XiveError::BadAccess)
    );
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(0) + ESB_GET + 7, 1),
        Ok((1, None))
    );
    assert_eq!(
        x.mmio_store(&mut mem, 0, mgmt(0) + 0x900, 8, 0),
        Err(XiveError::EsbUnsupported)
    );
    assert_eq!(
        x.mmio_store(&mut mem, 0, 0x1234, 8, 0),
        Err(XiveError::Unmapped)
    );
    // SET_PQ ops alias through the 64K page every 4K, as QEMU decodes them.
    assert_eq!(
        x.mmio_load(&mut mem, 0, mgmt(0) + 0x5e40, 8),
        Ok((0b01, None))
    );
    assert_eq!(x.source_pq(0), Some(0b10));
}

/// Loads and stores share the TIMA access checks, in one order: the vCPU, the
/// access's size and alignment, then the page.
#[test]
fn tima_checks_are_shared_and_ordered() {
    let mut x = xive();
    let cases = [
        (2, TimaPage::User, 0x11, 3, XiveError::NoSuchVcpu),
        (0, TimaPage::User, 0x11, 3, XiveError::BadAccess),
        (0, TimaPage::User, 0x12, 2, XiveError::TimaUserPage),
        (0, TimaPage::Os, 0xfff8, 16, XiveError::BadAccess),
    ];
    for (vcpu, page, offset, size, err) in cases {
        assert_eq!(x.tima_load(vcpu, page, offset, size), Err(err));
        assert_eq!(x.tima_store(vcpu, page, offset, size, 0xff), Err(err));
    }
    assert_eq!(x.qw1(0).unwrap()[1], 0, "nothing changed");
}

#[test]
fn hcall_argument_checks() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    use HcallError::*;
    // GET_SOURCE_INFO
    assert_eq!(x.h_int_get_source_info(1, 0), Err(Parameter));
    assert_eq!(x.h_int_get_source_info(0, 2), Err(P2));
    assert_eq!(x.h_int_get_source_info(0, 1 << 32), Err(P2));
    assert_eq!(x.h_int_get_source_info(0, u64::MAX), Err(P2));
    // SET_SOURCE_CONFIG
    assert_eq!(x.h_int_set_source_config(4, 0, 0, 6, 0), Err(Parameter));
    assert_eq!(x.h_int_set_source_config(0, 5, 0, 6, 0), Err(P2));
    assert_eq!(x.h_int_set_source_config(0, 0, 0, 7, 0), Err(P4));
    assert_eq!(x.h_int_set_source_config(0, 0, 0, 0x100, 0), Err(P4));
    assert_eq!(x.h_int_set_source_config(0, 0, 0, u64::MAX, 0), Err(P4));
    assert_eq!(x.h_int_set_source_config(0, 0, 2, 6, 0), Err(P3));
    assert_eq!(x.h_int_set_source_config(0, 0, u64::MAX, 6, 0), Err(P3));
    assert_eq!(
        x.h_int_set_source_config(0, 0, 9, 0xff, 0),
        Ok([0; 4]),
        "0xff skips target"
    );
    assert_eq!(
        x.h_int_set_source_config(SRC_CFG_SET_EISN, 0, 1, 0, u64::MAX),
        Ok([0; 4])
    );
    assert_eq!(x.h_int_get_source_config(0, 0), Ok([1, 0, 0x7fff_ffff, 0]));
    // Without SET_EISN the EISN is kept.
    assert_eq!(x.h_int_set_source_config(0, 0, 0, 1, 5), Ok([0; 4]));
    assert_eq!(x.h_int_get_source_config(0, 0), Ok([0, 1, 0x7fff_ffff, 0]));
    // GET_SOURCE_CONFIG
    assert_eq!(x.h_int_get_source_config(1, 0), Err(Parameter));
    assert_eq!(x.h_int_get_source_config(0, 3), Err(P2));
    // GET_QUEUE_INFO
    assert_eq!(x.h_int_get_queue_info(1, 0, 6), Err(Parameter));
    assert_eq!(x.h_int_get_queue_info(0, 0, 7), Err(P3));
    assert_eq!(x.h_int_get_queue_info(0, 0, 0xff), Err(P3));
    assert_eq!(x.h_int_get_queue_info(0, 2, 6), Err(P2));
    // SET_QUEUE_CONFIG
    assert_eq!(
        x.h_int_set_queue_config(&mem, 2, 0, 6, Q0, 16),
        Err(Parameter)
    );
    assert_eq!(x.h_int_set_queue_config(&mem, 0, 0, 7, Q0, 16), Err(P3));
    assert_eq!(x.h_int_set_queue_config(&mem, 0, 2, 6, Q0, 16), Err(P2));
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, Q0 + 0x1000, 16),
        Err(P4)
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, Q0 + 0x800, 12),
        Err(P4)
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, 0, 16),
        Err(P4),
        "not RAM"
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, FakeMem::BASE + (1 << 20), 16),
        Err(P4),
        "past the end of RAM"
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, !0xffff, 16),
        Err(P4)
    );
    assert_eq!(x.h_int_set_queue_config(&mem, 0, 0, 6, Q0, 21), Err(P5));
    assert_eq!(x.h_int_set_queue_config(&mem, 0, 0, 6, Q0, 13), Err(P5));
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, Q0, u64::MAX),
        Err(P5)
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, 0x123, 0),
        Ok([0; 4])
    );
    assert_eq!(
        x.h_int_set_queue_config(&mem, 0, 0, 6, Q0 + 0x1000, 12),
        Ok([0; 4])
    );
    // GET_QUEUE_CONFIG
    assert_eq!(x.h_int_get_queue_config(2, 0, 6), Err(Parameter));
    assert_eq!(x.h_int_get_queue_config(0, 0, 7), Err(P3));
    assert_eq!(x.h_int_get_queue_config(0, 2, 6), Err(P2));
    assert_eq!(
        x.h_int_get_queue_config(0, 0, 6),
        Ok([0, Q0 + 0x1000, 12, 0])
    );
    // Reporting lines
    assert_eq!(x.h_int_set_os_reporting_line(0, 0), Err(Function));
    assert_eq!(x.h_int_get_os_reporting_line(0, 0, 0), Err(Function));
    // ESB
    assert_eq!(x.h_int_esb(&mut mem, 2, 0, 0x800, 0), Err(Parameter));
    assert_eq!(x.h_int_esb(&mut mem, 0, 4, 0x800, 0), Err(P2));
    assert_eq!(x.h_int_esb(&mut mem, 0, 0, 0x1_0000, 0), Err(P3));
    assert_eq!(x.h_int_esb(&mut mem, 0, 0, u64::MAX, 0), Err(P3));
    assert_eq!(
        x.h_int_esb(&mut mem, 0, 0, 0x800, 0),
        Ok(([1, 0, 0, 0], None))
    );
    // SYNC
    assert_eq!(x.h_int_sync(1, 0), Err(Parameter));
    assert_eq!(x.h_int_sync(0, 2), Err(P2));
    assert_eq!(x.h_int_sync(0, VTY.into()), Ok([0; 4]));
    // RESET
    assert_eq!(x.h_int_reset(1), Err(Parameter));
    // Dispatcher
    assert_eq!(x.hcall(&mut mem, hcall::H_CEDE, &[]), None);
    assert_eq!(
        x.hcall(&mut mem, hcall::H_INT_GET_SOURCE_INFO, &[0, 1]),
        Some((Ok([0, mgmt(1), trig(1), 16]), None))
    );
    assert_eq!(
        x.hcall(&mut mem, hcall::H_INT_SET_OS_REPORTING_LINE, &[]),
        Some((Err(Function), None))
    );
    assert_eq!(
        x.hcall(&mut mem, hcall::H_INT_ESB, &[]),
        Some((Ok([0, 0, 0, 0]), None))
    );
}

#[test]
fn h_int_reset_and_partition_reset() {
    let mut mem = FakeMem::new();
    let mut x = xive();
    linux_setup_cpu(&mut x, &mut mem, 0, Q0);
    x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 0, 6, 1)
        .unwrap();
    x.esb_load(&mut mem, 1, EsbPage::Mgmt, ESB_SET_PQ_00)
        .unwrap();
    x.set_lsi_level(&mut mem, LSI, true).unwrap();
    assert_eq!(x.trigger(&mut mem, 1), Some(Kick { vcpu: 0 }));
    assert!(x.pending(0));

    assert_eq!(
        x.hcall(&mut mem, hcall::H_INT_RESET, &[0]),
        Some((Ok([0; 4]), None))
    );
    assert!(!x.pending(0));
    for l in [0, 1, VTY, LSI] {
        assert_eq!(x.source_pq(l), Some(PQ_OFF));
        assert_eq!(x.eas(l), Some(Eas::RESET));
    }
    assert_eq!(x.h_int_get_queue_config(EQ_DEBUG, 0, 6), Ok([0; 4]));
    let qw1 = x.qw1(0).unwrap();
    assert_eq!(
        (qw1[0], qw1[1], qw1[2], qw1[7]),
        (0, 0xff, 0, 0xff),
        "CPPR kept"
    );
    // Triggers now go nowhere.
    assert_eq!(x.trigger(&mut mem, 1), None);
    assert_eq!(mem.writes, 1);

    // The LSI level survives: configure and unmask it and it fires.
    linux_setup_cpu(&mut x, &mut mem, 0, Q0);
    x.h_int_set_source_config(0, LSI.into(), 0, 6, 0).unwrap();
    assert_eq!(
        x.esb_load(&mut mem, LSI, EsbPage::Mgmt, ESB_SET_PQ_00),
        Ok((PQ_OFF.into(), Some(Kick { vcpu: 0 })))
    );

    x.reset();
    assert!(!x.pending(0));
    assert_eq!(x.qw1(0).unwrap()[1], 0, "CPPR reset");
    assert_eq!(x.source_pq(LSI), Some(PQ_OFF));
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly interesting small values, sometimes anything.
    fn arg(&mut self) -> u64 {
        match self.below(8) {
            0 => self.next(),
            1 => u64::MAX - self.below(4),
            2 => FakeMem::BASE + (self.below(32) << 12),
            3 => u64::from(VTY) + self.below(3),
            4 => 0xff,
            5 => 1 << self.below(64),
            _ => self.below(24),
        }
    }

    fn gpa(&mut self) -> u64 {
        let base = match self.below(6) {
            0 => TIMA_OS_GPA,
            1 => TIMA_USER_GPA,
            2 => ESB_BASE_GPA + (self.below(8) << 16),
            3 => trig(VTY) + (self.below(4) << 16),
            4 => ESB_BASE_GPA - 0x1_0000,
            _ => return self.next(),
        };
        base + match self.below(4) {
            0 => self.below(0x1_0000),
            1 => 0x800 + (self.below(0x100) & !7),
            2 => 0x10 + self.below(0x10),
            _ => self.below(0x10) << 8,
        }
    }
}

fn check_invariants(x: &Xive) {
    for v in 0..x.nr_vcpus() {
        let q = x.qw1(v).unwrap();
        let (nsr, cppr, ipb, pipr) = (q[0], q[1], q[2], q[7]);
        assert_eq!(pipr, ipb_to_pipr(ipb));
        assert_eq!(nsr & TM_QW1_NSR_EO != 0, pipr < cppr);
        assert_eq!(nsr & !TM_QW1_NSR_EO, 0);
        assert!(cppr <= 7 || cppr == 0xff);
        assert_eq!(x.pending(v), pipr < cppr);
        for prio in 0..=MAX_GUEST_PRIORITY {
            let qu = x.presenters[v as usize].queues[prio as usize];
            assert!(qu.index < qu.entries().max(1));
            assert!(matches!(qu.qshift, 0 | 12 | 16));
        }
    }
}

/// One random operation of the fuzz runs; None when it chose to do nothing.
fn random_op(x: &mut Xive, mem: &mut FakeMem, rng: &mut Rng) -> Option<Option<Kick>> {
    const OPCODES: [u64; 12] = [
        hcall::H_INT_GET_SOURCE_INFO,
        hcall::H_INT_SET_SOURCE_CONFIG,
        hcall::H_INT_GET_SOURCE_CONFIG,
        hcall::H_INT_GET_QUEUE_INFO,
        hcall::H_INT_SET_QUEUE_CONFIG,
        hcall::H_INT_GET_QUEUE_CONFIG,
        hcall::H_INT_SET_OS_REPORTING_LINE,
        hcall::H_INT_GET_OS_REPORTING_LINE,
        hcall::H_INT_ESB,
        hcall::H_INT_SYNC,
        hcall::H_INT_RESET,
        hcall::H_CEDE,
    ];
    let vcpu = rng.below(4) as u32;
    let size = [1, 2, 4, 8, 3, 16][rng.below(6) as usize];
    Some(match rng.below(9) {
        0 => {
            // Plausible configuration, so that events get delivered.
            let (t, p) = (rng.below(4), rng.below(8));
            let (op, args) = match rng.below(3) {
                0 => {
                    let qsize = [0, 12, 16, 12, 16, 13][rng.below(6) as usize];
                    let qpage = FakeMem::BASE + (rng.below(20) << 16);
                    (
                        hcall::H_INT_SET_QUEUE_CONFIG,
                        vec![rng.below(2), t, p, qpage, qsize],
                    )
                }
                1 => {
                    let lisn =
                        [0, 1, 3, 5, u64::from(VTY), u64::from(VTY) + 1][rng.below(6) as usize];
                    let prio = if rng.below(10) == 0 { 0xff } else { p };
                    (
                        hcall::H_INT_SET_SOURCE_CONFIG,
                        vec![rng.below(4), lisn, t, prio, rng.arg()],
                    )
                }
                _ => {
                    let lisn = [0, 1, 3, u64::from(VTY), u64::from(VTY) + 1][rng.below(5) as usize];
                    let off = [0, 0x400, 0x800, 0xc00, 0xd00, 0xe00, 0xf00][rng.below(7) as usize];
                    (hcall::H_INT_ESB, vec![rng.below(2), lisn, off, 0])
                }
            };
            x.hcall(mem, op, &args).unwrap().1
        }
        1..=2 => {
            let op = OPCODES[rng.below(OPCODES.len() as u64) as usize];
            let args: Vec<u64> = (0..rng.below(7)).map(|_| rng.arg()).collect();
            if op == hcall::H_INT_RESET && rng.below(50) != 0 {
                return None;
            }
            match x.hcall(mem, op, &args) {
                Some((_, k)) => k,
                None => {
                    assert_eq!(op, hcall::H_CEDE);
                    None
                }
            }
        }
        3 => {
            let gpa = rng.gpa();
            x.mmio_load(mem, vcpu, gpa, size).ok().and_then(|r| r.1)
        }
        4 => {
            let (gpa, v) = (rng.gpa(), rng.arg());
            x.mmio_store(mem, vcpu, gpa, size, v).ok().flatten()
        }
        5 => x.trigger(mem, rng.arg() as u32),
        6 => x
            .set_lsi_level(mem, rng.arg() as u32, rng.below(2) == 0)
            .ok()
            .flatten(),
        7 => {
            let page = if rng.below(8) == 0 {
                TimaPage::User
            } else {
                TimaPage::Os
            };
            let off = [0x11, 0x812, 0x810, 0x10, rng.arg()][rng.below(5) as usize];
            if rng.below(2) == 0 {
                x.tima_store(vcpu, page, off, size, rng.arg())
                    .ok()
                    .flatten()
            } else {
                let _ = x.tima_load(vcpu, page, off, size);
                None
            }
        }
        _ => {
            if rng.below(1000) == 0 {
                x.reset();
            }
            let l = rng.arg() as u32;
            let page = if rng.below(2) == 0 {
                EsbPage::Mgmt
            } else {
                EsbPage::Trigger
            };
            let off = rng.arg();
            x.esb_load(mem, l, page, off).ok().and_then(|r| r.1)
        }
    })
}

#[test]
fn fuzz_never_panics() {
    let mut mem = FakeMem::new();
    let mut x = Xive::new(3, 4, &[(VTY, false), (VTY + 1, true)]).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut kicks = 0usize;
    for _ in 0..300_000 {
        let Some(kick) = random_op(&mut x, &mut mem, &mut rng) else {
            continue;
        };
        if let Some(k) = kick {
            assert!(k.vcpu < x.nr_vcpus());
            assert!(x.pending(k.vcpu));
            kicks += 1;
        }
        check_invariants(&x);
    }
    assert!(kicks > 100, "the fuzz reached delivery ({kicks} kicks)");
    assert!(mem.writes > 100, "and queue writes ({})", mem.writes);
}

// ---- SharedXive: the lock-free NSR[EO] mirror ----

/// The mirror equals the model for every vCPU (and says no for one it lacks).
fn check_mirror(s: &SharedXive) {
    let n = s.read(Xive::nr_vcpus);
    for v in 0..n + 2 {
        assert_eq!(s.pending(v), s.read(|x| x.pending(v)), "vCPU {v}");
    }
}

#[test]
fn mirror_follows_every_presenter_change() {
    let mut mem = FakeMem::new();
    let s = SharedXive::new(xive());
    check_mirror(&s);
    s.with(|x| {
        linux_setup_cpu(x, &mut mem, 0, Q0);
        linux_setup_cpu(x, &mut mem, 1, Q1);
        x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 1, 6, 1)
            .unwrap();
        x.esb_load(&mut mem, 1, EsbPage::Mgmt, ESB_SET_PQ_00)
            .unwrap();
    });
    assert!(!s.pending(0) && !s.pending(1));

    // An IPI to vCPU 1 (from vCPU 0's trigger-page store): the flag is up once
    // `with` returns, before the caller acts on the kick.
    let kick = s.with(|x| x.mmio_store(&mut mem, 0, trig(1), 8, 0).unwrap());
    assert_eq!(kick, Some(Kick { vcpu: 1 }));
    assert!(s.pending(1) && !s.pending(0));
    check_mirror(&s);

    // vCPU 1 acknowledges it: down again.
    let ack = s.with(|x| x.tima_load(1, TimaPage::Os, TM_SPC_ACK_OS_REG, 2));
    assert_eq!(ack, Ok(0x8006));
    assert!(!s.pending(1));

    // A second event while CPPR 6 holds it back stays down; restoring CPPR 0xff
    // presents it (a change the model reports as a kick of the vCPU itself).
    s.with(|x| x.mmio_load(&mut mem, 1, mgmt(1) + ESB_SET_PQ_00, 8))
        .unwrap();
    assert_eq!(s.with(|x| x.trigger(&mut mem, 1)), None);
    assert!(!s.pending(1));
    let k = s.with(|x| x.tima_store(1, TimaPage::Os, TM_QW1_OS + TM_CPPR, 1, 0xff));
    assert_eq!(k, Ok(Some(Kick { vcpu: 1 })));
    assert!(s.pending(1));
    // Raising CPPR withdraws it.
    s.with(|x| x.tima_store(1, TimaPage::Os, TM_QW1_OS + TM_CPPR, 1, 2))
        .unwrap();
    assert!(!s.pending(1));
    s.with(|x| x.tima_store(1, TimaPage::Os, TM_QW1_OS + TM_CPPR, 1, 0xff))
        .unwrap();
    assert!(s.pending(1));

    // H_INT_RESET and a partition reset clear it.
    let r = s.with(|x| x.hcall(&mut mem, hcall::H_INT_RESET, &[0]));
    assert_eq!(r, Some((Ok([0; 4]), None)));
    assert!(!s.pending(1));
    s.with(|x| x.tima_store(0, TimaPage::Os, TM_SPC_SET_OS_PENDING, 1, 3))
        .unwrap();
    assert!(s.pending(0));
    s.with(Xive::reset);
    assert!(!s.pending(0));
    check_mirror(&s);
}

#[test]
fn mirror_fuzz_matches_the_model() {
    let mut mem = FakeMem::new();
    let s = SharedXive::new(Xive::new(3, 4, &[(VTY, false), (VTY + 1, true)]).unwrap());
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut ups, mut downs) = (0usize, 0usize);
    let mut before = [false; 3];
    for _ in 0..200_000 {
        let Some(kick) = s.with(|x| random_op(x, &mut mem, &mut rng)) else {
            continue;
        };
        if let Some(k) = kick {
            assert!(s.pending(k.vcpu), "kick of {} with its flag down", k.vcpu);
        }
        check_mirror(&s);
        for (v, was) in (0..).zip(before.iter_mut()) {
            let now = s.pending(v);
            ups += usize::from(now && !*was);
            downs += usize::from(!now && *was);
            *was = now;
        }
    }
    assert!(
        ups > 100 && downs > 100,
        "flags rose {ups} and fell {downs} times"
    );
}

/// Two threads as on the machine: a device raises IPIs for vCPU 0 and "kicks"
/// it (an atomic doorbell) after `with`; the vCPU, woken by the doorbell, must
/// then see its flag up without the lock, acknowledges, EOIs, and goes on.
#[test]
fn mirror_is_up_before_the_kick() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    const ROUNDS: u32 = 20_000;
    let s = Arc::new(SharedXive::new(xive()));
    let mem = Arc::new(spin::Mutex::new(FakeMem::new()));
    s.with(|x| {
        let m = &mut *mem.lock();
        x.h_int_set_queue_config(m, 1, 0, 6, Q0, 16).unwrap();
        x.h_int_set_source_config(SRC_CFG_SET_EISN, 1, 0, 6, 1)
            .unwrap();
        x.esb_load(m, 1, EsbPage::Mgmt, ESB_SET_PQ_00).unwrap();
        x.tima_store(0, TimaPage::Os, TM_QW1_OS + TM_CPPR, 1, 0xff)
            .unwrap();
    });
    let doorbell = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU32::new(0));

    let device = {
        let (s, mem, doorbell, taken) = (s.clone(), mem.clone(), doorbell.clone(), taken.clone());
        std::thread::spawn(move || {
            for i in 0..ROUNDS {
                // One interrupt in flight at a time, so that each is forwarded.
                while taken.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                let kick = s.with(|x| x.trigger(&mut *mem.lock(), 1));
                assert_eq!(kick, Some(Kick { vcpu: 0 }), "round {i}");
                doorbell.store(true, Ordering::Release);
            }
        })
    };
    for i in 0..ROUNDS {
        while !doorbell.swap(false, Ordering::AcqRel) {
            std::hint::spin_loop();
        }
        assert!(s.pending(0), "round {i}: doorbell before the flag");
        let ack = s.with(|x| x.tima_load(0, TimaPage::Os, TM_SPC_ACK_OS_REG, 2));
        assert_eq!(ack, Ok(0x8006));
        assert!(!s.pending(0));
        let eoi = s.with(|x| {
            x.esb_load(&mut *mem.lock(), 1, EsbPage::Mgmt, ESB_LOAD_EOI)
                .unwrap()
        });
        assert_eq!(eoi, (0, None));
        s.with(|x| x.tima_store(0, TimaPage::Os, TM_QW1_OS + TM_CPPR, 1, 0xff))
            .unwrap();
        taken.store(i + 1, Ordering::Release);
    }
    device.join().unwrap();
}
