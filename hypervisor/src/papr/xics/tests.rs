use super::*;
use crate::testutil::XorShift;

const VTY: u32 = 0x1000;

fn xics(servers: u32) -> Xics {
    Xics::new(servers, &[VTY])
}

#[test]
fn ipi_is_presented_accepted_and_eoid() {
    let mut x = xics(1);
    assert!(!x.pending(0));
    x.set_cppr(0, 0xff).unwrap(); // accept everything
    x.set_mfrr(0, 5).unwrap(); // H_IPI(self, 5)
    assert!(x.pending(0));
    assert_eq!(x.poll(0), Ok((0xff00_0002, 5)));
    assert_eq!(x.accept(0), Ok(0xff00_0002));
    assert_eq!(x.icp(0).unwrap().cppr, 5);
    assert!(!x.pending(0));
    x.set_mfrr(0, 0xff).unwrap(); // H_IPI(self, 0xff)
    x.eoi(0, 0xff00_0002).unwrap();
    assert_eq!(
        x.icp(0),
        Some(Icp {
            cppr: 0xff,
            mfrr: 0xff
        })
    );
    assert!(!x.pending(0));
}

#[test]
fn masked_cppr_holds_interrupts_back() {
    let mut x = xics(1);
    x.set_cppr(0, 4).unwrap();
    x.set_mfrr(0, 5).unwrap();
    assert!(!x.pending(0));
    // Nothing to accept: the CPPR stays, the XIRR names no source.
    assert_eq!(x.accept(0), Ok(0x0400_0000));
    assert_eq!(x.icp(0).unwrap().cppr, 4);
    x.set_cppr(0, 6).unwrap();
    assert!(x.pending(0));
}

#[test]
fn reset_state() {
    let x = xics(2);
    assert_eq!(x.servers(), 2);
    assert_eq!(x.icp(1), Some(Icp::RESET));
    assert_eq!(x.get_xive(VTY), Ok((0, MASKED)));
    assert!(x.valid_xisr(0) && x.valid_xisr(XICS_IPI) && x.valid_xisr(VTY));
    assert!(!x.valid_xisr(0x1001) && !x.valid_xisr(1));
    // The IPI number, 0 and repeats never become sources.
    let y = Xics::new(1, &[0, XICS_IPI, VTY, VTY, 0x100_0000]);
    assert_eq!(y.sources.len(), 1);
}

/// The vty configured as Linux's ics-rtas does: set-xive then int-on.
fn routed(servers: u32, server: u32, priority: u32) -> Xics {
    let mut x = xics(servers);
    for s in 0..servers {
        x.set_cppr(s, 0xff).unwrap();
    }
    x.set_xive(VTY, server, priority).unwrap();
    x.int_on(VTY).unwrap();
    x
}

#[test]
fn edge_trigger_presented_accepted_eoid() {
    let mut x = routed(2, 1, 5);
    assert!(!x.pending(1));
    x.trigger(VTY).unwrap();
    assert!(x.pending(1));
    assert!(!x.pending(0), "routed to server 1 only");
    assert_eq!(x.poll(1), Ok((0xff00_1000, 0xff)));
    assert_eq!(x.accept(1), Ok(0xff00_1000));
    assert_eq!(x.icp(1).unwrap().cppr, 5);
    assert!(x.source(VTY).unwrap().in_service);
    assert!(!x.pending(1));
    // Accepted once per trigger: nothing more to take.
    assert_eq!(x.accept(1), Ok(0x0500_0000));
    x.eoi(1, 0xff00_1000).unwrap();
    assert_eq!(x.icp(1).unwrap().cppr, 0xff);
    assert!(!x.source(VTY).unwrap().in_service);
    assert!(!x.pending(1));
}

#[test]
fn trigger_in_service_is_presented_again_after_eoi() {
    let mut x = routed(1, 0, 5);
    x.trigger(VTY).unwrap();
    let xirr = x.accept(0).unwrap();
    // Two more triggers while in service: one more presentation, after EOI.
    x.trigger(VTY).unwrap();
    x.trigger(VTY).unwrap();
    assert!(!x.pending(0), "CPPR 5 holds back priority 5");
    x.eoi(0, u64::from(xirr)).unwrap();
    assert!(x.pending(0));
    assert_eq!(x.accept(0), Ok(0xff00_1000));
    x.eoi(0, 0xff00_1000).unwrap();
    assert!(!x.pending(0));
}

#[test]
fn masked_by_priority_and_int_off() {
    // Never configured: masked; a trigger is kept for later.
    let mut x = xics(1);
    x.set_cppr(0, 0xff).unwrap();
    x.trigger(VTY).unwrap();
    assert!(!x.pending(0));
    assert_eq!(x.accept(0), Ok(0xff00_0000));
    x.set_xive(VTY, 0, 5).unwrap();
    assert!(x.pending(0), "unmasking presents the trigger kept");
    assert_eq!(x.accept(0), Ok(0xff00_1000));
    x.eoi(0, 0xff00_1000).unwrap();

    // int-off masks, remembering 5; int-on restores it.
    x.int_off(VTY).unwrap();
    assert_eq!(x.get_xive(VTY), Ok((0, MASKED)));
    x.trigger(VTY).unwrap();
    assert!(!x.pending(0));
    x.int_on(VTY).unwrap();
    assert_eq!(x.get_xive(VTY), Ok((0, 5)));
    assert!(x.pending(0));
    assert_eq!(x.accept(0), Ok(0xff00_1000));
    x.eoi(0, 0xff00_1000).unwrap();

    // set-xive with priority 0xff masks too, and int-on keeps it masked.
    x.set_xive(VTY, 0, 0xff).unwrap();
    x.trigger(VTY).unwrap();
    x.int_on(VTY).unwrap();
    assert!(!x.pending(0));
    // Linux's mask (int-off, set-xive 0xff) then unmask (set-xive 5, int-on).
    x.int_off(VTY).unwrap();
    x.set_xive(VTY, 0, 0xff).unwrap();
    x.set_xive(VTY, 0, 5).unwrap();
    x.int_on(VTY).unwrap();
    assert!(x.pending(0));
    // QEMU's quirk kept: a second int-off saves the mask.
    x.int_off(VTY).unwrap();
    x.int_off(VTY).unwrap();
    x.int_on(VTY).unwrap();
    assert_eq!(x.get_xive(VTY), Ok((0, MASKED)));
}

#[test]
fn more_favoured_ipi_rejects_source_which_is_resent() {
    let mut x = routed(1, 0, 5);
    x.trigger(VTY).unwrap();
    assert_eq!(x.poll(0), Ok((0xff00_1000, 0xff)));
    // A more favoured IPI displaces the presented source.
    x.set_mfrr(0, 3).unwrap();
    assert_eq!(x.poll(0), Ok((0xff00_0002, 3)));
    assert_eq!(x.accept(0), Ok(0xff00_0002));
    assert!(!x.pending(0), "CPPR 3 holds the source back");
    assert!(x.source(VTY).unwrap().pending);
    x.set_mfrr(0, 0xff).unwrap();
    x.eoi(0, 0xff00_0002).unwrap();
    // Resent once the IPI ended.
    assert_eq!(x.accept(0), Ok(0xff00_1000));
    assert_eq!(x.icp(0).unwrap().cppr, 5);
}

#[test]
fn less_favoured_or_equal_ipi_waits() {
    let mut x = routed(1, 0, 5);
    x.trigger(VTY).unwrap();
    x.set_mfrr(0, 7).unwrap();
    assert_eq!(x.accept(0), Ok(0xff00_1000));
    // CPPR 5 holds back the IPI at 7 until EOI.
    assert!(!x.pending(0));
    x.eoi(0, 0xff00_1000).unwrap();
    assert_eq!(x.accept(0), Ok(0xff00_0002));
    x.set_mfrr(0, 0xff).unwrap();
    x.eoi(0, 0xff00_0002).unwrap();
    // Equal priorities: the IPI first.
    x.trigger(VTY).unwrap();
    x.set_mfrr(0, 5).unwrap();
    assert_eq!(x.accept(0), Ok(0xff00_0002));
    x.set_mfrr(0, 0xff).unwrap();
    x.eoi(0, 0xff00_0002).unwrap();
    assert_eq!(x.accept(0), Ok(0xff00_1000));
}

#[test]
fn cppr_changes() {
    let mut x = routed(1, 0, 5);
    x.trigger(VTY).unwrap();
    // More favoured than the source: held back (rejected), still pending.
    x.set_cppr(0, 5).unwrap();
    assert!(!x.pending(0));
    assert_eq!(x.poll(0), Ok((0x0500_0000, 0xff)));
    x.set_cppr(0, 0).unwrap();
    assert!(!x.pending(0));
    // Less favoured again: presented.
    x.set_cppr(0, 6).unwrap();
    assert_eq!(x.poll(0), Ok((0x0600_1000, 0xff)));
    assert_eq!(x.accept(0), Ok(0x0600_1000));
    assert_eq!(x.set_cppr(0, 0x100), Err(XicsError::Value));
}

#[test]
fn rerouting_moves_the_pending_source() {
    let mut x = routed(2, 0, 5);
    x.set_cppr(0, 0).unwrap();
    x.trigger(VTY).unwrap();
    assert!(!x.pending(0) && !x.pending(1));
    x.set_xive(VTY, 1, 5).unwrap();
    assert!(x.pending(1));
    assert_eq!(x.accept(1), Ok(0xff00_1000));
}

#[test]
fn bad_arguments() {
    let mut x = routed(2, 0, 5);
    let before = x.clone();
    for nr in [0, 1, XICS_IPI, 0xfff, 0x1001, u32::MAX] {
        assert_eq!(x.set_xive(nr, 0, 5), Err(XicsError::Source));
        assert_eq!(x.get_xive(nr), Err(XicsError::Source));
        assert_eq!(x.int_off(nr), Err(XicsError::Source));
        assert_eq!(x.int_on(nr), Err(XicsError::Source));
        assert_eq!(x.trigger(nr), Err(XicsError::Source));
    }
    assert_eq!(x.set_xive(VTY, 2, 5), Err(XicsError::Server));
    assert_eq!(x.set_xive(VTY, u32::MAX, 5), Err(XicsError::Server));
    assert_eq!(x.set_xive(VTY, 0, 0x100), Err(XicsError::Value));
    assert_eq!(x.eoi(0, 0xff00_1234), Err(XicsError::Value));
    assert_eq!(x.eoi(0, 1 << 32), Err(XicsError::Value));
    assert_eq!(x.eoi(2, 0xff00_0000), Err(XicsError::Server));
    assert_eq!(x.set_mfrr(2, 5), Err(XicsError::Server));
    assert_eq!(x.set_mfrr(0, 0x100), Err(XicsError::Value));
    assert_eq!(x.set_cppr(9, 5), Err(XicsError::Server));
    assert_eq!(x.accept(9), Err(XicsError::Server));
    assert_eq!(x.poll(9), Err(XicsError::Server));
    assert!(!x.pending(9));
    assert_eq!(x.icps, before.icps);
    assert_eq!(x.sources, before.sources);
}

#[test]
fn reset_forgets_everything() {
    let mut x = routed(2, 1, 5);
    x.trigger(VTY).unwrap();
    x.set_mfrr(0, 1).unwrap();
    x.reset();
    assert_eq!(x.icp(0), Some(Icp::RESET));
    assert_eq!(x.source(VTY), Some(Source::reset(VTY)));
    x.set_cppr(1, 0xff).unwrap();
    assert!(!x.pending(1));
}

/// Random operations on random values: no panic, and the invariants hold.
#[test]
fn fuzz_never_panics() {
    let mut rng = XorShift::new(0x2545_f491_4f6c_dd1d);
    let pick = |r: u64| -> u64 {
        match r % 8 {
            0 => 0,
            1 => 2,
            2 => 0x1000,
            3 => r >> 56,
            4 => 0xff,
            5 => r >> 32,
            6 => r,
            _ => r % 4,
        }
    };
    let mut x = Xics::new(3, &[VTY, 0x1001]);
    for _ in 0..200_000 {
        let op = rng.below(11);
        let (a, b, c) = (
            pick(rng.next_u64()),
            pick(rng.next_u64()),
            pick(rng.next_u64()),
        );
        let server = (a % 5) as u32;
        match op {
            0 => {
                if let Ok(xirr) = x.accept(server) {
                    let xisr = xirr & XISR_MASK;
                    assert!(x.valid_xisr(xisr));
                    if xisr != 0 {
                        assert_eq!(u32::from(x.icp(server).unwrap().cppr), {
                            let s = x.source(xisr);
                            s.map_or(u32::from(x.icp(server).unwrap().mfrr), |s| {
                                u32::from(s.priority)
                            })
                        });
                    }
                }
            }
            1 => {
                let _ = x.poll(server);
            }
            2 => {
                let _ = x.eoi(server, b);
            }
            3 => {
                let _ = x.set_cppr(server, b);
            }
            4 => {
                let _ = x.set_mfrr(server, b);
            }
            5 | 6 => {
                let _ = x.trigger(b as u32);
            }
            7 => {
                let _ = x.set_xive(b as u32, c as u32, a as u32);
            }
            8 => {
                let _ = x.get_xive(b as u32);
            }
            9 => {
                let _ = x.int_off(b as u32);
            }
            _ => {
                let _ = x.int_on(b as u32);
            }
        }
        for s in 0..4 {
            match (x.presented(s), x.poll(s)) {
                (Some((xisr, prio)), Ok((xirr, _))) => {
                    assert_eq!(xirr & XISR_MASK, xisr);
                    assert!(prio < x.icp(s).unwrap().cppr);
                }
                (None, Ok((xirr, _))) => assert_eq!(xirr & XISR_MASK, 0),
                (None, Err(_)) => assert!(s >= 3),
                (Some(_), Err(_)) => panic!("presented on a missing server"),
            }
        }
    }
}
