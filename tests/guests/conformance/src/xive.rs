//! XIVE exploitation mode as a pSeries guest sees it (docs/xive.md): the
//! `ibm,power-ivpe` node, every `H_INT_*` hcall with good and bad arguments
//! (return codes as the model documents them, following QEMU's spapr_xive.c),
//! and IPIs delivered end to end through an event queue, the TIMA OS page and
//! the ESB pages, which the hypervisor emulates on HDSI.
//!
//! The device registers are big-endian; the accessors use the instruction forms
//! Linux uses (`in_be64`/`out_be64`: `ldbrx`/`stdbrx` little-endian, `ld`/`std`
//! big-endian; the ack is a plain `lhz` swapped in software; CPPR a `stb`). The
//! guest runs in real mode, so every access also exercises the hypervisor's
//! real-mode instruction fetch.
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use paprika_guest_rt::mmio::{in_8, in_be32, in_be64, out_8, out_be64, raw_be16};
use paprika_guest_rt::*;

/// H_INT_SET_SOURCE_CONFIG flags (PAPR bit 63 = 0x1).
const SRC_CFG_MASK: u64 = 0x1;
const SRC_CFG_SET_EISN: u64 = 0x2;
/// H_INT_SET/GET_QUEUE_CONFIG flags.
const EQ_ALWAYS_NOTIFY: u64 = 0x1;
const EQ_DEBUG: u64 = 0x1;
const EQ_GENERATION: u64 = 0x2;
/// H_INT_ESB flag: a store rather than a load.
const ESB_HCALL_STORE: u64 = 0x1;

/// Management-page offsets (Linux asm/xive-regs.h).
const ESB_STORE_EOI: u64 = 0x400;
const ESB_GET: u64 = 0x800;
const ESB_SET_PQ_00: u64 = 0xc00;
const ESB_SET_PQ_01: u64 = 0xd00;
const ESB_SET_PQ_10: u64 = 0xe00;
const ESB_SET_PQ_11: u64 = 0xf00;
/// TIMA OS page: QW1 (NSR CPPR IPB LSMFB ACK_CNT INC AGE PIPR, word 2), the
/// CPPR byte and the acknowledge register.
const TM_QW1_OS: u64 = 0x10;
const TM_QW1_W2: u64 = 0x18;
const TM_CPPR: u64 = 0x11;
const TM_SPC_ACK_OS_REG: u64 = 0x810;
const NSR_EO: u64 = 0x80;

/// The priority Linux uses, and the largest the guest may use.
const PRIO: u64 = 6;
/// The EISN LISN 0 is routed with (any 31-bit value).
const EISN: u32 = 0x1234_5678 & 0x7fff_ffff;
/// About 20 ms of the 512 MHz timebase: more than a trigger needs to arrive.
const SETTLE: u64 = 10_240_000;
/// About 1 s: the longest a check waits for interrupts it expects (it stops
/// waiting when they are in). Under a host load of 13 on 2 cores, QEMU's vCPU
/// thread was seen to take more than 100 ms of timebase to run the handler of
/// an interrupt already pending, and every later count in the run was off by
/// one; a lost interrupt still fails.
const DELIVERY: u64 = 512_000_000;

#[repr(C, align(65536))]
struct Queue64k([u8; 65536]);
/// The event queue of priority 6 (BSS: zero at entry, as Linux's is).
static mut QUEUE: Queue64k = Queue64k([0; 65536]);
#[repr(C, align(4096))]
struct Queue4k([u8; 4096]);
static mut QUEUE_4K: Queue4k = Queue4k([0; 4096]);

// Shared with the interrupt handler.
static TIMA_OS: AtomicU64 = AtomicU64::new(0);
static TRIG: AtomicU64 = AtomicU64::new(0);
static MGMT: AtomicU64 = AtomicU64::new(0);
/// EOI (and re-trigger) through H_INT_ESB rather than the ESB pages.
static VIA_HCALL: AtomicBool = AtomicBool::new(false);
static IRQS: AtomicU32 = AtomicU32::new(0);
static LAST_ACK: AtomicU64 = AtomicU64::new(0);
/// Queue entries consumed, and how many were not `EISN`.
static ENTRIES: AtomicU32 = AtomicU32::new(0);
static BAD_ENTRIES: AtomicU32 = AtomicU32::new(0);
static LAST_ENTRY: AtomicU64 = AtomicU64::new(0);
/// The guest's queue cursor, as Linux keeps it: index and toggle (an entry is
/// valid when its generation bit differs from the toggle).
static Q_INDEX: AtomicU32 = AtomicU32::new(0);
static Q_TOGGLE: AtomicU32 = AtomicU32::new(0);
/// The values the last EOIs returned (old PQ), most recent in the low byte.
static EOI_LOG: AtomicU64 = AtomicU64::new(0);
static DSI_DAR: AtomicU64 = AtomicU64::new(0);
static DSIS: AtomicU32 = AtomicU32::new(0);

/// `lwarx`, which the hypervisor does not emulate: the guest gets a DSI.
fn lwarx(addr: u64) {
    // SAFETY: the access faults; the handler steps past it.
    unsafe { asm!("lwarx {0}, 0, {1}", out(reg) _, in(reg) addr, options(nostack)) };
}

fn queue_entry(i: u32) -> u32 {
    let q = (&raw const QUEUE) as *const u32;
    // SAFETY: `i` is below the queue's entry count; the hypervisor writes the
    // entries, hence the volatile read.
    u32::from_be(unsafe { core::ptr::read_volatile(q.add(i as usize)) })
}

// ---- interrupt handling (Linux's xive_get_irq + xive_irq_eoi, reduced) ----

fn esb_load(off: u64) -> u64 {
    if VIA_HCALL.load(Ordering::Acquire) {
        hcall(H_INT_ESB, &[0, 0, off, 0]).1[0]
    } else {
        in_be64(MGMT.load(Ordering::Acquire) + off)
    }
}

fn trigger() {
    if VIA_HCALL.load(Ordering::Acquire) {
        // A management-page store below 0x400 triggers.
        hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, 0, 0]);
    } else {
        out_be64(TRIG.load(Ordering::Acquire), 0);
    }
}

fn on_trap(vector: u64, srr0: &mut u64) -> bool {
    match vector {
        0x500 => {
            let tima = TIMA_OS.load(Ordering::Acquire);
            let ack = raw_be16(tima + TM_SPC_ACK_OS_REG);
            LAST_ACK.store(u64::from(ack), Ordering::Release);
            IRQS.fetch_add(1, Ordering::AcqRel);
            // Scan the queue from the cursor.
            let mut found = 0;
            loop {
                let idx = Q_INDEX.load(Ordering::Acquire);
                let e = queue_entry(idx);
                if e >> 31 == Q_TOGGLE.load(Ordering::Acquire) {
                    break;
                }
                found += 1;
                LAST_ENTRY.store(u64::from(e), Ordering::Release);
                ENTRIES.fetch_add(1, Ordering::AcqRel);
                if e & 0x7fff_ffff != EISN {
                    BAD_ENTRIES.fetch_add(1, Ordering::AcqRel);
                }
                let next = (idx + 1) % (65536 / 4);
                if next == 0 {
                    Q_TOGGLE.fetch_xor(1, Ordering::AcqRel);
                }
                Q_INDEX.store(next, Ordering::Release);
            }
            out_8(tima + TM_CPPR, 0xff);
            // MSI EOI of each event (all from LISN 0): set PQ 00; if Q was set,
            // an event was coalesced: trigger again.
            for _ in 0..found {
                let old = esb_load(ESB_SET_PQ_00);
                EOI_LOG.store(
                    (EOI_LOG.load(Ordering::Acquire) << 8) | (old & 0xff),
                    Ordering::Release,
                );
                if old & 1 != 0 {
                    trigger();
                }
            }
            true
        }
        0x300 => {
            DSI_DAR.store(mfspr_dar(), Ordering::Release);
            DSIS.fetch_add(1, Ordering::AcqRel);
            *srr0 += 4;
            true
        }
        _ => false,
    }
}

// ---- helpers ----

fn expect(name: &str, got: i64, want: i64) {
    check(
        name,
        got == want,
        format_args!("returned {} (expected {})", got, want),
    );
}

fn cell(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(4 * i..4 * i + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn cells64(b: &[u8], i: usize) -> Option<u64> {
    Some((u64::from(cell(b, 2 * i)?) << 32) | u64::from(cell(b, 2 * i + 1)?))
}

/// Spins until `n` interrupts were taken or `ticks` passed; the count.
fn wait_irqs(n: u32, ticks: u64) -> u32 {
    let start = mftb();
    while IRQS.load(Ordering::Acquire) < n && mftb().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
    IRQS.load(Ordering::Acquire)
}

fn irqs() -> u32 {
    IRQS.load(Ordering::Acquire)
}

/// (NSR, CPPR, IPB, PIPR) from an 8-byte load of QW1 words 0-1.
fn qw1(tima: u64) -> (u64, u64, u64, u64) {
    let w = in_be64(tima + TM_QW1_OS);
    (w >> 56, (w >> 48) & 0xff, (w >> 40) & 0xff, w & 0xff)
}

/// Runs the XIVE checks; called once by vCPU 0 with interrupts off.
pub fn checks(fdt: &'static [u8]) {
    // ---- device tree ----
    let compat = fdt_prop(fdt, "/interrupt-controller", "compatible").unwrap_or(&[]);
    let is_xive = compat.starts_with(b"ibm,power-ivpe\0");
    check(
        "xive-fdt-node",
        is_xive,
        format_args!("first interrupt-controller is not ibm,power-ivpe"),
    );
    if !is_xive {
        return;
    }
    let reg = fdt_prop(fdt, "/interrupt-controller", "reg").unwrap_or(&[]);
    let (tima_user, tima_os) = (cells64(reg, 0).unwrap_or(0), cells64(reg, 2).unwrap_or(0));
    check(
        "xive-fdt-tima",
        reg.len() == 32
            && tima_user != 0
            && tima_os == tima_user + 0x10000
            && cells64(reg, 1) == Some(0x10000)
            && cells64(reg, 3) == Some(0x10000),
        format_args!("reg {:x?}", reg),
    );
    let ranges = fdt_prop(fdt, "/interrupt-controller", "ibm,xive-lisn-ranges").unwrap_or(&[]);
    let (ipi_base, nr_ipis) = (cell(ranges, 0).unwrap_or(0), cell(ranges, 1).unwrap_or(0));
    let ncpus = fdt_count_cpus(fdt);
    check(
        "xive-fdt-lisn-ranges",
        ranges.len() == 8 && ipi_base == 0 && nr_ipis == ncpus,
        format_args!("{:x?} with {} vCPUs", ranges, ncpus),
    );
    let eqs = fdt_prop(fdt, "/interrupt-controller", "ibm,xive-eq-sizes").unwrap_or(&[]);
    let eq_sizes: [Option<u32>; 3] = [cell(eqs, 0), cell(eqs, 1), cell(eqs, 2)];
    check(
        "xive-fdt-eq-sizes",
        eq_sizes == [Some(12), Some(16), None],
        format_args!("{:x?}", eqs),
    );
    let res = fdt_prop(fdt, "/", "ibm,plat-res-int-priorities").unwrap_or(&[]);
    // Linux (xive_get_max_prio): the guest may use the priorities below the
    // reserved range that starts at 7.
    check(
        "xive-fdt-reserved-priorities",
        cell(res, 0) == Some(PRIO as u32 + 1) && cell(res, 1) == Some(0xf8),
        format_args!("{:x?}", res),
    );
    TIMA_OS.store(tima_os, Ordering::Release);
    let mem = fdt_prop(fdt, "/memory", "reg")
        .and_then(|r| cells64(r, 1))
        .unwrap_or(0);
    let bad_lisn = u64::from(ipi_base + nr_ipis);

    hcall_checks(bad_lisn, mem);
    delivery_checks(tima_os);
    hcall_esb_checks(tima_os);
    misc_checks(tima_os, tima_user);
    reset_checks();
}

fn hcall_checks(bad_lisn: u64, mem: u64) {
    // ---- H_INT_GET_SOURCE_INFO ----
    let (rc, info) = hcall(H_INT_GET_SOURCE_INFO, &[0, 0]);
    let (trig, mgmt) = (info[2], info[1]);
    check(
        "h-int-get-source-info",
        rc == H_SUCCESS
            && info[0] == 0
            && trig & 0xffff == 0
            && trig != 0
            && mgmt == trig + 0x10000
            && info[3] == 16,
        format_args!(
            "rc {} flags {:#x} eoi {:#x} trigger {:#x} shift {}",
            rc, info[0], info[1], info[2], info[3]
        ),
    );
    TRIG.store(trig, Ordering::Release);
    MGMT.store(mgmt, Ordering::Release);
    // The vty's source: pages further up in the same layout (2 pages a LISN).
    let (rc, vty) = hcall(H_INT_GET_SOURCE_INFO, &[0, 0x1000]);
    check(
        "h-int-get-source-info-vty",
        rc == H_SUCCESS && vty[2] == trig + 0x1000 * 0x20000 && vty[1] == vty[2] + 0x10000,
        format_args!("rc {} eoi {:#x} trigger {:#x}", rc, vty[1], vty[2]),
    );
    expect(
        "h-int-get-source-info-bad-flags",
        hcall(H_INT_GET_SOURCE_INFO, &[1, 0]).0,
        H_PARAMETER,
    );
    expect(
        "h-int-get-source-info-bad-lisn",
        hcall(H_INT_GET_SOURCE_INFO, &[0, bad_lisn]).0,
        H_P2,
    );
    expect(
        "h-int-get-source-info-huge-lisn",
        hcall(H_INT_GET_SOURCE_INFO, &[0, u64::MAX]).0,
        H_P2,
    );

    // ---- H_INT_SET/GET_SOURCE_CONFIG ----
    let get = |lisn: u64| hcall(H_INT_GET_SOURCE_CONFIG, &[0, lisn]);
    expect(
        "h-int-set-source-config",
        hcall(
            H_INT_SET_SOURCE_CONFIG,
            &[SRC_CFG_SET_EISN, 0, 0, PRIO, 0x55],
        )
        .0,
        H_SUCCESS,
    );
    let (rc, c) = get(0);
    check(
        "h-int-get-source-config",
        rc == H_SUCCESS && c[0] == 0 && c[1] == PRIO && c[2] == 0x55,
        format_args!(
            "rc {} target {} prio {:#x} eisn {:#x}",
            rc, c[0], c[1], c[2]
        ),
    );
    // Without SET_EISN the EISN is kept; EISNs are 31 bits.
    hcall(H_INT_SET_SOURCE_CONFIG, &[0, 0, 0, 3, 0x99]);
    let (rc, c) = get(0);
    check(
        "h-int-source-config-keeps-eisn",
        rc == H_SUCCESS && c[1] == 3 && c[2] == 0x55,
        format_args!("rc {} prio {:#x} eisn {:#x}", rc, c[1], c[2]),
    );
    hcall(
        H_INT_SET_SOURCE_CONFIG,
        &[SRC_CFG_SET_EISN, 0, 0, 3, 0xffff_ffff],
    );
    let (_, c) = get(0);
    check(
        "h-int-source-config-eisn-31-bits",
        c[2] == 0x7fff_ffff,
        format_args!("eisn {:#x}", c[2]),
    );
    // The mask flag and priority 0xff both read back as 0xff.
    hcall(
        H_INT_SET_SOURCE_CONFIG,
        &[SRC_CFG_MASK | SRC_CFG_SET_EISN, 0, 0, PRIO, 7],
    );
    let (rc, c) = get(0);
    check(
        "h-int-source-config-masked",
        rc == H_SUCCESS && c[1] == 0xff && c[2] == 7,
        format_args!("rc {} prio {:#x} eisn {:#x}", rc, c[1], c[2]),
    );
    expect(
        "h-int-set-source-config-prio-ff",
        hcall(H_INT_SET_SOURCE_CONFIG, &[0, 0, 0, 0xff, 0]).0,
        H_SUCCESS,
    );
    let (rc, c) = get(0);
    check(
        "h-int-source-config-prio-ff",
        rc == H_SUCCESS && c[1] == 0xff && c[2] == 0,
        format_args!("rc {} prio {:#x} eisn {:#x}", rc, c[1], c[2]),
    );
    let set = |args: &[u64]| hcall(H_INT_SET_SOURCE_CONFIG, args).0;
    expect(
        "h-int-set-source-config-bad-flags",
        set(&[4, 0, 0, PRIO, 0]),
        H_PARAMETER,
    );
    expect(
        "h-int-set-source-config-bad-lisn",
        set(&[0, bad_lisn, 0, PRIO, 0]),
        H_P2,
    );
    expect(
        "h-int-set-source-config-bad-target",
        set(&[0, 0, 99, PRIO, 0]),
        H_P3,
    );
    expect(
        "h-int-set-source-config-reserved-prio",
        set(&[0, 0, 0, 7, 0]),
        H_P4,
    );
    expect(
        "h-int-set-source-config-prio-100",
        set(&[0, 0, 0, 0x100 + PRIO, 0]),
        H_P4,
    );
    expect(
        "h-int-get-source-config-bad-flags",
        hcall(H_INT_GET_SOURCE_CONFIG, &[1, 0]).0,
        H_PARAMETER,
    );
    expect("h-int-get-source-config-bad-lisn", get(bad_lisn).0, H_P2);

    // ---- H_INT_GET_QUEUE_INFO ----
    let (rc, qi) = hcall(H_INT_GET_QUEUE_INFO, &[0, 0, PRIO]);
    check(
        "h-int-get-queue-info",
        rc == H_SUCCESS && qi[0] == 0 && qi[1] == 16,
        format_args!("rc {} page {:#x} shift {}", rc, qi[0], qi[1]),
    );
    expect(
        "h-int-get-queue-info-bad-flags",
        hcall(H_INT_GET_QUEUE_INFO, &[1, 0, PRIO]).0,
        H_PARAMETER,
    );
    expect(
        "h-int-get-queue-info-bad-target",
        hcall(H_INT_GET_QUEUE_INFO, &[0, 99, PRIO]).0,
        H_P2,
    );
    expect(
        "h-int-get-queue-info-reserved-prio",
        hcall(H_INT_GET_QUEUE_INFO, &[0, 0, 7]).0,
        H_P3,
    );

    // ---- H_INT_SET/GET_QUEUE_CONFIG ----
    let q64 = (&raw const QUEUE) as u64;
    let q4 = (&raw const QUEUE_4K) as u64;
    let setq = |args: &[u64]| hcall(H_INT_SET_QUEUE_CONFIG, args).0;
    let getq = |flags: u64, prio: u64| hcall(H_INT_GET_QUEUE_CONFIG, &[flags, 0, prio]);
    expect(
        "h-int-set-queue-config-64k",
        setq(&[EQ_ALWAYS_NOTIFY, 0, PRIO, q64, 16]),
        H_SUCCESS,
    );
    let (rc, q) = getq(0, PRIO);
    check(
        "h-int-get-queue-config",
        rc == H_SUCCESS && q[0] == EQ_ALWAYS_NOTIFY && q[1] == q64 && q[2] == 16 && q[3] == 0,
        format_args!(
            "rc {} flags {:#x} page {:#x} size {} idx {}",
            rc, q[0], q[1], q[2], q[3]
        ),
    );
    let (rc, q) = getq(EQ_DEBUG, PRIO);
    check(
        "h-int-get-queue-config-debug",
        rc == H_SUCCESS && q[0] == EQ_ALWAYS_NOTIFY | EQ_GENERATION && q[3] == 0,
        format_args!("rc {} flags {:#x} idx {}", rc, q[0], q[3]),
    );
    expect(
        "h-int-set-queue-config-4k",
        setq(&[0, 0, 5, q4, 12]),
        H_SUCCESS,
    );
    let (rc, q) = getq(0, 5);
    check(
        "h-int-get-queue-config-4k",
        rc == H_SUCCESS && q[0] == 0 && q[1] == q4 && q[2] == 12,
        format_args!("rc {} flags {:#x} page {:#x} size {}", rc, q[0], q[1], q[2]),
    );
    expect(
        "h-int-set-queue-config-disable",
        setq(&[0, 0, 5, 0, 0]),
        H_SUCCESS,
    );
    let (rc, q) = getq(0, 5);
    check(
        "h-int-get-queue-config-disabled",
        rc == H_SUCCESS && q[1] == 0 && q[2] == 0,
        format_args!("rc {} page {:#x} size {}", rc, q[1], q[2]),
    );
    expect(
        "h-int-set-queue-config-bad-flags",
        setq(&[2, 0, 5, q4, 12]),
        H_PARAMETER,
    );
    expect(
        "h-int-set-queue-config-bad-target",
        setq(&[0, 99, 5, q4, 12]),
        H_P2,
    );
    expect(
        "h-int-set-queue-config-reserved-prio",
        setq(&[0, 0, 7, q4, 12]),
        H_P3,
    );
    expect(
        "h-int-set-queue-config-misaligned",
        setq(&[0, 0, 5, q4 + 0x800, 12]),
        H_P4,
    );
    // 4K-aligned is not enough for a 64K queue.
    expect(
        "h-int-set-queue-config-misaligned-64k",
        setq(&[0, 0, 5, q64 + 0x1000, 16]),
        H_P4,
    );
    expect(
        "h-int-set-queue-config-outside",
        setq(&[0, 0, 5, mem, 12]),
        H_P4,
    );
    expect(
        "h-int-set-queue-config-straddles-end",
        setq(&[0, 0, 5, mem - 0x1000, 16]),
        H_P4,
    );
    expect(
        "h-int-set-queue-config-bad-qsize",
        setq(&[0, 0, 5, q64, 13]),
        H_P5,
    );
    expect(
        "h-int-set-queue-config-qsize-21",
        setq(&[0, 0, 5, q64, 21]),
        H_P5,
    );
    let (_, q) = getq(0, 5);
    check(
        "h-int-queue-config-unchanged-by-errors",
        q[2] == 0,
        format_args!("size {}", q[2]),
    );
    expect(
        "h-int-get-queue-config-bad-flags",
        getq(2, PRIO).0,
        H_PARAMETER,
    );
    expect(
        "h-int-get-queue-config-bad-target",
        hcall(H_INT_GET_QUEUE_CONFIG, &[0, 99, PRIO]).0,
        H_P2,
    );
    expect("h-int-get-queue-config-reserved-prio", getq(0, 7).0, H_P3);

    // ---- H_INT_ESB, H_INT_SYNC, reporting line ----
    let (rc, v) = hcall(H_INT_ESB, &[0, 0, ESB_GET, 0]);
    check(
        "h-int-esb-get-reset-pq",
        rc == H_SUCCESS && v[0] == 1,
        format_args!("rc {} PQ {:#x}", rc, v[0]),
    );
    expect(
        "h-int-esb-bad-flags",
        hcall(H_INT_ESB, &[2, 0, ESB_GET, 0]).0,
        H_PARAMETER,
    );
    expect(
        "h-int-esb-bad-lisn",
        hcall(H_INT_ESB, &[0, bad_lisn, ESB_GET, 0]).0,
        H_P2,
    );
    expect(
        "h-int-esb-bad-offset",
        hcall(H_INT_ESB, &[0, 0, 0x10000, 0]).0,
        H_P3,
    );
    expect("h-int-sync", hcall(H_INT_SYNC, &[0, 0]).0, H_SUCCESS);
    expect(
        "h-int-sync-bad-flags",
        hcall(H_INT_SYNC, &[1, 0]).0,
        H_PARAMETER,
    );
    expect(
        "h-int-sync-bad-lisn",
        hcall(H_INT_SYNC, &[0, bad_lisn]).0,
        H_P2,
    );
    expect(
        "h-int-set-os-reporting-line",
        hcall(H_INT_SET_OS_REPORTING_LINE, &[0, 0]).0,
        H_FUNCTION,
    );
    expect(
        "h-int-get-os-reporting-line",
        hcall(H_INT_GET_OS_REPORTING_LINE, &[0, 0, 0]).0,
        H_FUNCTION,
    );
    expect(
        "h-int-reset-bad-flags",
        hcall(H_INT_RESET, &[1]).0,
        H_PARAMETER,
    );
}

/// IPI LISN 0 to vCPU 0 at priority 6 through the ESB and TIMA pages.
fn delivery_checks(tima: u64) {
    let (trig, mgmt) = (TRIG.load(Ordering::Acquire), MGMT.load(Ordering::Acquire));
    set_trap_handler(on_trap);
    expect(
        "xive-route-ipi",
        hcall(
            H_INT_SET_SOURCE_CONFIG,
            &[SRC_CFG_SET_EISN, 0, 0, PRIO, u64::from(EISN)],
        )
        .0,
        H_SUCCESS,
    );
    // Linux: CPPR 0xff opens the OS ring to every priority.
    out_8(tima + TM_CPPR, 0xff);
    let (nsr, cppr, ipb, pipr) = qw1(tima);
    check(
        "xive-tima-qw1-idle",
        nsr == 0 && cppr == 0xff && ipb == 0 && pipr == 0xff,
        format_args!(
            "NSR {:#x} CPPR {:#x} IPB {:#x} PIPR {:#x}",
            nsr, cppr, ipb, pipr
        ),
    );
    check(
        "xive-tima-cppr-byte",
        in_8(tima + TM_CPPR) == 0xff,
        format_args!("CPPR byte {:#x}", in_8(tima + TM_CPPR)),
    );
    let w2 = in_be32(tima + TM_QW1_W2);
    check(
        "xive-tima-qw1-word2",
        w2 == 0x8000_0000,
        format_args!("word 2 {:#x} (VO | vCPU 0)", w2),
    );
    let ack = raw_be16(tima + TM_SPC_ACK_OS_REG);
    check(
        "xive-tima-ack-idle",
        ack == 0x00ff,
        format_args!("ack {:#06x}", ack),
    );
    // Sources start off (PQ 01): unmask with the SET_PQ_00 load, as Linux does.
    let old = in_be64(mgmt + ESB_SET_PQ_00);
    check(
        "xive-esb-unmask",
        old == 1 && in_be64(mgmt + ESB_GET) == 0,
        format_args!("old PQ {:#x}", old),
    );

    // One trigger with interrupts enabled: taken at once.
    set_ee(true);
    out_be64(trig, 0);
    let n = wait_irqs(1, DELIVERY);
    set_ee(false);
    let ack = LAST_ACK.load(Ordering::Acquire);
    let entry = LAST_ENTRY.load(Ordering::Acquire);
    check(
        "xive-ipi-delivered",
        n == 1,
        format_args!("{} interrupts", n),
    );
    check(
        "xive-ipi-ack",
        ack >> 8 == NSR_EO && ack & 0xff == PRIO,
        format_args!("ack {:#06x} (expected NSR EO, CPPR 6)", ack),
    );
    check(
        "xive-ipi-queue-entry",
        ENTRIES.load(Ordering::Acquire) == 1 && entry == 0x8000_0000 | u64::from(EISN),
        format_args!(
            "{} entries, last {:#x}",
            ENTRIES.load(Ordering::Acquire),
            entry
        ),
    );
    let eoi = EOI_LOG.load(Ordering::Acquire) & 0xff;
    check(
        "xive-ipi-eoi",
        eoi == 2 && in_be64(mgmt + ESB_GET) == 0,
        format_args!("EOI returned {:#x} (expected PQ 10)", eoi),
    );
    let (rc, q) = hcall(H_INT_GET_QUEUE_CONFIG, &[EQ_DEBUG, 0, PRIO]);
    check(
        "xive-queue-index",
        rc == H_SUCCESS && q[3] == 1 && q[0] & EQ_GENERATION != 0,
        format_args!("rc {} flags {:#x} index {}", rc, q[0], q[3]),
    );

    // With interrupts off the event waits in the OS ring; enabling delivers it
    // (the hypervisor sets LPCR[MER]).
    out_be64(trig, 0);
    let (nsr, cppr, ipb, pipr) = qw1(tima);
    check(
        "xive-pending-while-ee-off",
        irqs() == 1 && nsr == NSR_EO && cppr == 0xff && ipb == 0x02 && pipr == PRIO,
        format_args!(
            "{} interrupts, NSR {:#x} CPPR {:#x} IPB {:#x} PIPR {:#x}",
            irqs(),
            nsr,
            cppr,
            ipb,
            pipr
        ),
    );
    set_ee(true);
    let n = wait_irqs(2, DELIVERY);
    set_ee(false);
    check(
        "xive-delivered-on-enable",
        n == 2 && EOI_LOG.load(Ordering::Acquire) & 0xff == 2,
        format_args!("{} interrupts", n),
    );

    // Q coalescing: a second trigger before the EOI sets Q; the EOI returns 11 and
    // the handler triggers again, so a second interrupt follows.
    out_be64(trig, 0);
    out_be64(trig, 0);
    let pq = in_be64(mgmt + ESB_GET);
    check(
        "xive-esb-coalesced-pq",
        pq == 3,
        format_args!("PQ {:#x}", pq),
    );
    EOI_LOG.store(0, Ordering::Release);
    set_ee(true);
    let n = wait_irqs(4, DELIVERY);
    set_ee(false);
    let log = EOI_LOG.load(Ordering::Acquire);
    check(
        "xive-esb-coalesced",
        n == 4 && log == 0x0302 && ENTRIES.load(Ordering::Acquire) == 4,
        format_args!(
            "{} interrupts, EOI values {:#x}, {} entries",
            n,
            log,
            ENTRIES.load(Ordering::Acquire)
        ),
    );

    // Masked source (PQ 01): a trigger is dropped, unmasking does not replay it.
    let old = in_be64(mgmt + ESB_SET_PQ_01);
    set_ee(true);
    out_be64(trig, 0);
    let n = wait_irqs(5, SETTLE);
    set_ee(false);
    let (_, _, ipb, _) = qw1(tima);
    let pq = in_be64(mgmt + ESB_GET);
    check(
        "xive-esb-masked",
        old == 0 && n == 4 && pq == 1 && ipb == 0,
        format_args!(
            "old PQ {:#x}, {} interrupts, PQ {:#x}, IPB {:#x}",
            old, n, pq, ipb
        ),
    );
    let old = in_be64(mgmt + ESB_SET_PQ_00);
    set_ee(true);
    let n = wait_irqs(5, SETTLE);
    set_ee(false);
    check(
        "xive-esb-unmask-no-replay",
        old == 1 && n == 4,
        format_args!("old PQ {:#x}, {} interrupts", old, n),
    );

    // CPPR 5 holds back priority 6 until it is opened again.
    out_8(tima + TM_CPPR, 5);
    set_ee(true);
    out_be64(trig, 0);
    let n = wait_irqs(5, SETTLE);
    let (nsr, cppr, ipb, pipr) = qw1(tima);
    check(
        "xive-cppr-holds-back",
        n == 4 && nsr == 0 && cppr == 5 && ipb == 0x02 && pipr == PRIO,
        format_args!(
            "{} interrupts, NSR {:#x} CPPR {:#x} IPB {:#x} PIPR {:#x}",
            n, nsr, cppr, ipb, pipr
        ),
    );
    out_8(tima + TM_CPPR, 0xff);
    let n = wait_irqs(5, DELIVERY);
    set_ee(false);
    let ack = LAST_ACK.load(Ordering::Acquire);
    check(
        "xive-cppr-opened",
        n == 5 && ack == (NSR_EO << 8) | PRIO,
        format_args!("{} interrupts, ack {:#06x}", n, ack),
    );
    check(
        "xive-queue-entries",
        ENTRIES.load(Ordering::Acquire) == 5 && BAD_ENTRIES.load(Ordering::Acquire) == 0,
        format_args!(
            "{} entries, {} with a wrong EISN",
            ENTRIES.load(Ordering::Acquire),
            BAD_ENTRIES.load(Ordering::Acquire)
        ),
    );
}

/// The same management operations through H_INT_ESB (Linux uses it when a
/// source has the H_INT_ESB flag).
fn hcall_esb_checks(tima: u64) {
    let esb = |off: u64| hcall(H_INT_ESB, &[0, 0, off, 0]);
    VIA_HCALL.store(true, Ordering::Release);
    EOI_LOG.store(0, Ordering::Release);
    // A management-page store below 0x400 triggers; delivered at once.
    set_ee(true);
    let (rc, v) = hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, 0, 0]);
    let n = wait_irqs(6, DELIVERY);
    set_ee(false);
    check(
        "h-int-esb-trigger",
        rc == H_SUCCESS && v[0] == u64::MAX && n == 6 && EOI_LOG.load(Ordering::Acquire) == 2,
        format_args!(
            "rc {} r4 {:#x}, {} interrupts, EOI {:#x}",
            rc,
            v[0],
            n,
            EOI_LOG.load(Ordering::Acquire)
        ),
    );
    // Coalescing through the hcall.
    hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, 0, 0]);
    hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, 0, 0]);
    let (rc, pq) = esb(ESB_GET);
    check(
        "h-int-esb-coalesced-pq",
        rc == H_SUCCESS && pq[0] == 3,
        format_args!("rc {} PQ {:#x}", rc, pq[0]),
    );
    EOI_LOG.store(0, Ordering::Release);
    set_ee(true);
    let n = wait_irqs(8, DELIVERY);
    set_ee(false);
    check(
        "h-int-esb-coalesced",
        n == 8 && EOI_LOG.load(Ordering::Acquire) == 0x0302,
        format_args!(
            "{} interrupts, EOI values {:#x}",
            n,
            EOI_LOG.load(Ordering::Acquire)
        ),
    );
    // SET_PQ loads return the old PQ.
    let a = esb(ESB_SET_PQ_10).1[0];
    let b = esb(ESB_SET_PQ_11).1[0];
    let c = esb(ESB_SET_PQ_01).1[0];
    let d = esb(ESB_GET).1[0];
    check(
        "h-int-esb-set-pq",
        a == 0 && b == 2 && c == 3 && d == 1,
        format_args!("old PQs {:#x} {:#x} {:#x}, now {:#x}", a, b, c, d),
    );
    // StoreEOI (implemented, not advertised): 11 forwards the coalesced event.
    esb(ESB_SET_PQ_11);
    set_ee(true);
    let (rc, _) = hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, ESB_STORE_EOI, 0]);
    let n = wait_irqs(9, DELIVERY);
    set_ee(false);
    check(
        "h-int-esb-store-eoi",
        rc == H_SUCCESS && n == 9,
        format_args!("rc {}, {} interrupts", rc, n),
    );
    let (_, pq) = esb(ESB_GET);
    check(
        "h-int-esb-after-eoi",
        pq[0] == 0,
        format_args!("PQ {:#x}", pq[0]),
    );
    // Undefined management offsets read as all ones.
    let (rc, v) = hcall(H_INT_ESB, &[ESB_HCALL_STORE, 0, 0x800, 0]);
    check(
        "h-int-esb-undefined-store",
        rc == H_SUCCESS && v[0] == u64::MAX,
        format_args!("rc {} r4 {:#x}", rc, v[0]),
    );
    VIA_HCALL.store(false, Ordering::Release);
    let (nsr, _, ipb, _) = qw1(tima);
    check(
        "h-int-esb-quiet",
        nsr == 0 && ipb == 0 && ENTRIES.load(Ordering::Acquire) == 9,
        format_args!(
            "NSR {:#x} IPB {:#x}, {} entries",
            nsr,
            ipb,
            ENTRIES.load(Ordering::Acquire)
        ),
    );
}

/// Accesses the hypervisor refuses: documented results, no harm.
fn misc_checks(tima: u64, tima_user: u64) {
    let trig = TRIG.load(Ordering::Acquire);
    // A load from a trigger page, or anything on the user TIMA page, reads all ones.
    let v = in_be64(trig);
    check(
        "xive-trigger-page-load",
        v == u64::MAX,
        format_args!("read {:#x}", v),
    );
    let v = in_be64(tima_user + TM_QW1_OS);
    check(
        "xive-tima-user-page",
        v == u64::MAX,
        format_args!("read {:#x}", v),
    );
    // An instruction it does not emulate gets the guest a DSI at that address.
    let addr = tima + TM_QW1_OS;
    lwarx(addr);
    check(
        "xive-unemulated-insn-dsi",
        DSIS.load(Ordering::Acquire) == 1 && DSI_DAR.load(Ordering::Acquire) == addr,
        format_args!(
            "{} DSIs, DAR {:#x}",
            DSIS.load(Ordering::Acquire),
            DSI_DAR.load(Ordering::Acquire)
        ),
    );
    let (_, cppr, _, _) = qw1(tima);
    check(
        "xive-tima-after-refusals",
        cppr == 0xff,
        format_args!("CPPR {:#x}", cppr),
    );
}

/// H_INT_RESET: every source masked and off, every queue disabled.
fn reset_checks() {
    expect("h-int-reset", hcall(H_INT_RESET, &[0]).0, H_SUCCESS);
    let (rc, c) = hcall(H_INT_GET_SOURCE_CONFIG, &[0, 0]);
    let (_, q) = hcall(H_INT_GET_QUEUE_CONFIG, &[0, 0, PRIO]);
    let pq = in_be64(MGMT.load(Ordering::Acquire) + ESB_GET);
    check(
        "h-int-reset-state",
        rc == H_SUCCESS && c[1] == 0xff && c[2] == 0 && q[1] == 0 && q[2] == 0 && pq == 1,
        format_args!(
            "prio {:#x} eisn {:#x} queue {:#x}/{} PQ {:#x}",
            c[1], c[2], q[1], q[2], pq
        ),
    );
    // Nothing is delivered from a reset source.
    let before = irqs();
    set_ee(true);
    out_be64(TRIG.load(Ordering::Acquire), 0);
    let n = wait_irqs(before + 1, SETTLE);
    set_ee(false);
    check(
        "h-int-reset-quiet",
        n == before,
        format_args!("{} interrupts after reset", n - before),
    );
}
