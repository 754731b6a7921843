//! XIVE IPIs between the two vCPUs: each vCPU has a priority-6 event queue and
//! its own IPI (LISN n to vCPU n, as Linux sets them up); vCPU 0 wakes vCPU 1 from
//! H_CEDE with a store to LISN 1's ESB trigger page, then vCPU 1 wakes vCPU 0 the
//! same way through LISN 0. Each takes the interrupt at 0x500 and acknowledges,
//! reads its queue and EOIs as in the conformance guest.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use paprika_guest_rt::mmio::{in_be32, in_be64, out_8, out_be64, raw_be16};
use paprika_guest_rt::*;
const SRC_CFG_SET_EISN: u64 = 0x2;
const EQ_ALWAYS_NOTIFY: u64 = 0x1;
const PRIO: u64 = 6;
const EISN_BASE: u32 = 0x100;
const ESB_SET_PQ_00: u64 = 0xc00;
const TM_CPPR: u64 = 0x11;
const TM_QW1_W2: u64 = 0x18;
const TM_SPC_ACK_OS_REG: u64 = 0x810;
/// About 4 s of the 512 MHz timebase.
const TIMEOUT: u64 = 2_048_000_000;
/// About 1 s: an H_CEDE the IPI does not end returns this late.
const CEDE_DEC: u32 = 512_000_000;

#[repr(C, align(4096))]
struct Queue([u32; 1024]);
/// One 4K queue per vCPU (BSS: zero at entry).
static mut QUEUES: [Queue; 2] = [Queue([0; 1024]), Queue([0; 1024])];

static TIMA_OS: AtomicU64 = AtomicU64::new(0);
static TRIG: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static MGMT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Per vCPU: interrupts taken, the last ack, the last queue entry.
static IRQS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static ACK: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static ENTRY: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static CEDES: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static READY: AtomicU32 = AtomicU32::new(0);
static DONE: AtomicU32 = AtomicU32::new(0);

/// External interrupt on either vCPU: the TIMA's word 2 names the context (VO |
/// vCPU id), i.e. whose queue to read. Each queue gets one entry here, so no
/// cursor is kept.
fn on_trap(vector: u64, _srr0: &mut u64) -> bool {
    if vector != 0x500 {
        return false;
    }
    let tima = TIMA_OS.load(Ordering::Acquire);
    let me = (in_be32(tima + TM_QW1_W2) & 1) as usize;
    let ack = raw_be16(tima + TM_SPC_ACK_OS_REG);
    let q = queue(me) as *const u32;
    // SAFETY: entry 0 of our own queue, written by the hypervisor.
    let e = u32::from_be(unsafe { core::ptr::read_volatile(q) });
    ACK[me].store(u32::from(ack), Ordering::Release);
    ENTRY[me].store(e, Ordering::Release);
    out_8(tima + TM_CPPR, 0xff);
    if e >> 31 == 1 {
        in_be64(MGMT[me].load(Ordering::Acquire) + ESB_SET_PQ_00);
    }
    IRQS[me].fetch_add(1, Ordering::AcqRel);
    true
}

/// The queue of vCPU `v` (0 or 1).
fn queue(v: usize) -> *const Queue {
    ((&raw const QUEUES) as *const Queue).wrapping_add(v.min(1))
}

/// H_CEDE until vCPU `me` took an interrupt, at most [`TIMEOUT`].
fn cede_until_irq(me: usize) -> bool {
    let start = mftb();
    while IRQS[me].load(Ordering::Acquire) == 0 {
        if mftb().wrapping_sub(start) > TIMEOUT {
            return false;
        }
        // Bounded sleep: the decrementer ends H_CEDE if nothing else does.
        set_dec(CEDE_DEC);
        hcall(0xe0, &[]);
        CEDES[me].fetch_add(1, Ordering::AcqRel);
        set_ee(false);
    }
    true
}

fn secondary() -> ! {
    let tima = TIMA_OS.load(Ordering::Acquire);
    out_8(tima + TM_CPPR, 0xff);
    READY.store(1, Ordering::Release);
    // Woken by vCPU 0's IPI.
    cede_until_irq(1);
    // Wake vCPU 0 the same way (which may check DONE at once).
    DONE.store(1, Ordering::Release);
    out_be64(TRIG[0].load(Ordering::Acquire), 0);
    stop_self()
}

/// Runs on vCPU 0 after the other SMP checks, with vCPU 1 stopped; `start`
/// starts vCPU 1 at the given function.
pub fn checks(fdt: &'static [u8], start: impl FnOnce(fn() -> !) -> bool) {
    let reg = fdt_prop(fdt, "/interrupt-controller", "reg").unwrap_or(&[]);
    let tima = reg
        .get(16..24)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
    TIMA_OS.store(tima, Ordering::Release);
    let mut ok = tima != 0;
    for v in 0..2u64 {
        let (rc, info) = hcall(H_INT_GET_SOURCE_INFO, &[0, v]);
        TRIG[v as usize].store(info[2], Ordering::Release);
        MGMT[v as usize].store(info[1], Ordering::Release);
        let q = queue(v as usize) as u64;
        let rq = hcall(H_INT_SET_QUEUE_CONFIG, &[EQ_ALWAYS_NOTIFY, v, PRIO, q, 12]).0;
        let eisn = u64::from(EISN_BASE) + v;
        let rs = hcall(
            H_INT_SET_SOURCE_CONFIG,
            &[SRC_CFG_SET_EISN, v, v, PRIO, eisn],
        )
        .0;
        ok &= rc == H_SUCCESS && rq == H_SUCCESS && rs == H_SUCCESS;
        // Unmask (sources start at PQ 01).
        ok &= in_be64(info[1] + ESB_SET_PQ_00) == 1;
    }
    check(
        "xive-setup",
        ok,
        format_args!("TIMA {:#x}: an H_INT_* call or the unmask failed", tima),
    );
    set_trap_handler(on_trap);
    out_8(tima + TM_CPPR, 0xff);
    check(
        "xive-start-secondary",
        start(secondary),
        format_args!("start-cpu failed"),
    );
    let start_tb = mftb();
    while READY.load(Ordering::Acquire) == 0 && mftb().wrapping_sub(start_tb) < TIMEOUT {
        core::hint::spin_loop();
    }
    // Let vCPU 1 reach H_CEDE, then wake it through its ESB trigger page.
    let t = mftb();
    while mftb().wrapping_sub(t) < 5_120_000 {
        core::hint::spin_loop();
    }
    out_be64(TRIG[1].load(Ordering::Acquire), 0);
    let woke0 = cede_until_irq(0);
    let (ack1, e1) = (
        ACK[1].load(Ordering::Acquire),
        ENTRY[1].load(Ordering::Acquire),
    );
    check(
        "xive-ipi-to-vcpu1",
        IRQS[1].load(Ordering::Acquire) == 1
            && ack1 == 0x8006
            && e1 == 0x8000_0000 | (EISN_BASE + 1),
        format_args!(
            "{} interrupts, ack {:#06x}, entry {:#x}",
            IRQS[1].load(Ordering::Acquire),
            ack1,
            e1
        ),
    );
    let (ack0, e0) = (
        ACK[0].load(Ordering::Acquire),
        ENTRY[0].load(Ordering::Acquire),
    );
    check(
        "xive-ipi-to-vcpu0",
        woke0
            && DONE.load(Ordering::Acquire) == 1
            && ack0 == 0x8006
            && e0 == 0x8000_0000 | EISN_BASE,
        format_args!(
            "{} interrupts, ack {:#06x}, entry {:#x}, secondary done {}",
            IRQS[0].load(Ordering::Acquire),
            ack0,
            e0,
            DONE.load(Ordering::Acquire)
        ),
    );
    // One H_CEDE, ended by the IPI rather than the decrementer a second later.
    check(
        "xive-cede-woken",
        CEDES[1].load(Ordering::Acquire) == 1,
        format_args!("vCPU 1 ceded {} times", CEDES[1].load(Ordering::Acquire)),
    );
    expect_reset();
}

fn expect_reset() {
    let rc = hcall(H_INT_RESET, &[0]).0;
    check(
        "xive-reset",
        rc == H_SUCCESS,
        format_args!("returned {}", rc),
    );
}
