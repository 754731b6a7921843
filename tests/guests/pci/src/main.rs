//! A partition with a passed-through virtio-blk-pci function (docs/passthrough.md;
//! `tests/manifests/passthrough.toml`, scenarios `lpar-passthrough-p9`/`-p10`),
//! without Linux: the logical PHB node ("IBM,Logical_PHB", ranges,
//! ibm,ddw-applicable, assigned-addresses, /chosen/linux,pci-probe-only); config
//! space through RTAS ibm,read-pci-config / ibm,write-pci-config and what the
//! hypervisor's filter refuses (a BAR move, bus mastering before a DMA window);
//! the 64-bit window from ibm,query-pe-dma-window / ibm,create-pe-dma-window;
//! then a virtio-blk driver (modern transport, VIRTIO_F_ACCESS_PLATFORM, one
//! polled queue) reading the disk through that window, checked against the
//! pattern xtask wrote (`xtask::qemu::disk_pattern`), and the window removed
//! again (bus mastering off).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use core::ptr::{read_volatile, write_volatile};
    use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    use paprika_guest_rt::mmio::{in_be64, out_8, raw_be16};
    use paprika_guest_rt::*;

    const RTAS_PARAMETER_ERROR: i32 = -3;
    const H_PARAMETER: i64 = -4;
    const H_GET_TCE: u64 = 0x1c;
    const H_PUT_TCE: u64 = 0x20;
    const H_STUFF_TCE: u64 = 0x138;
    const H_PUT_TCE_INDIRECT: u64 = 0x13c;
    const VIRTIO_VENDOR: u32 = 0x1af4;
    const VIRTIO_BLK_MODERN: u32 = 0x1042;

    fn be32(b: &[u8], at: usize) -> u32 {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .unwrap_or(0)
    }
    fn be64(b: &[u8], at: usize) -> u64 {
        (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
    }

    /// The logical PHB and its first function, as the device tree gives them.
    struct Phb {
        buid: u64,
        /// ranges: PCI address, guest real address, size.
        pci: u64,
        gpa: u64,
        config: u32,
        /// (BAR register, PCI address, size) from assigned-addresses.
        bars: [(u32, u64, u64); 6],
        nbars: usize,
        ddw: [u32; 3],
    }

    impl Phb {
        fn read(&self, reg: u32, size: u32) -> (i32, u32) {
            let r = rtas_call(
                "ibm,read-pci-config",
                &[
                    self.config | (reg & 0xff) | ((reg >> 8) << 28),
                    (self.buid >> 32) as u32,
                    self.buid as u32,
                    size,
                ],
                2,
            )
            .unwrap_or([-99; 8]);
            (r[0], r[1] as u32)
        }
        fn read32(&self, reg: u32) -> u32 {
            self.read(reg, 4).1
        }
        fn write(&self, reg: u32, size: u32, v: u32) -> i32 {
            rtas_call(
                "ibm,write-pci-config",
                &[
                    self.config | (reg & 0xff) | ((reg >> 8) << 28),
                    (self.buid >> 32) as u32,
                    self.buid as u32,
                    size,
                    v,
                ],
                1,
            )
            .unwrap_or([-99; 8])[0]
        }
        /// Guest real address of a BAR's offset.
        fn bar_gpa(&self, bar: u8, off: u64) -> Option<u64> {
            self.bars[..self.nbars]
                .iter()
                .find(|b| b.0 == 0x10 + 4 * u32::from(bar))
                .map(|b| self.gpa + (b.1 - self.pci) + off)
        }
    }

    fn find_phb(fdt: &'static [u8]) -> Option<Phb> {
        let reg = fdt_prop(fdt, "/pci", "reg")?;
        let ranges = fdt_prop(fdt, "/pci", "ranges")?;
        let ddw = fdt_prop(fdt, "/pci", "ibm,ddw-applicable")?;
        let freg = fdt_prop(fdt, "/pci/pci", "reg")?;
        let assigned = fdt_prop(fdt, "/pci/pci", "assigned-addresses")?;
        let mut p = Phb {
            buid: be64(reg, 0),
            pci: be64(ranges, 4),
            gpa: be64(ranges, 12),
            config: be32(freg, 0) & 0x00ff_ff00,
            bars: [(0, 0, 0); 6],
            nbars: 0,
            ddw: [be32(ddw, 0), be32(ddw, 4), be32(ddw, 8)],
        };
        for e in assigned.chunks_exact(20).take(6) {
            p.bars[p.nbars] = (be32(e, 0) & 0xff, be64(e, 4), be64(e, 12));
            p.nbars += 1;
        }
        Some(p)
    }

    /// The disk's bytes as xtask wrote them: little-endian words.
    fn pattern(offset: u64) -> u32 {
        (offset as u32).wrapping_mul(0x9e37_79b1) ^ 0x5a5a_5a5a
    }

    // ---- virtio ----

    #[repr(C, align(4096))]
    struct Ring {
        desc: [[u64; 2]; 8],
        avail: [u16; 12],
        _pad: [u8; 2048 - 128 - 24],
        used: [u32; 18],
    }
    #[repr(C, align(4096))]
    struct Buf([u8; 65536]);
    #[repr(C, align(16))]
    struct Req {
        kind: u32,
        _reserved: u32,
        sector: u64,
        status: u8,
    }

    static mut RING: Ring = Ring {
        desc: [[0; 2]; 8],
        avail: [0; 12],
        _pad: [0; 2048 - 128 - 24],
        used: [0; 18],
    };
    static mut BUF: Buf = Buf([0; 65536]);
    static mut REQ: Req = Req {
        kind: 0,
        _reserved: 0,
        sector: 0,
        status: 0xff,
    };

    struct Virtio {
        common: u64,
        notify: u64,
        bus: u64,
        avail_idx: u16,
    }

    fn r8(a: u64) -> u8 {
        // SAFETY: a device register in the partition's BAR mapping.
        unsafe { read_volatile(a as *const u8) }
    }
    fn w8(a: u64, v: u8) {
        // SAFETY: as above.
        unsafe { write_volatile(a as *mut u8, v) }
    }
    fn r16(a: u64) -> u16 {
        // SAFETY: as above.
        u16::from_le(unsafe { read_volatile(a as *const u16) })
    }
    fn w16(a: u64, v: u16) {
        // SAFETY: as above.
        unsafe { write_volatile(a as *mut u16, v.to_le()) }
    }
    fn r32(a: u64) -> u32 {
        // SAFETY: as above.
        u32::from_le(unsafe { read_volatile(a as *const u32) })
    }
    fn w32(a: u64, v: u32) {
        // SAFETY: as above.
        unsafe { write_volatile(a as *mut u32, v.to_le()) }
    }
    fn w64(a: u64, v: u64) {
        w32(a, v as u32);
        w32(a + 4, (v >> 32) as u32);
    }

    /// Finds the common and notify structures, negotiates VERSION_1 and
    /// ACCESS_PLATFORM and sets up queue 0 (8 entries, polled).
    fn virtio_init(p: &Phb, bus: u64) -> Result<Virtio, &'static str> {
        let mut at = p.read32(0x34) & 0xfc;
        let (mut common, mut notify, mut mult) = (None, None, 0);
        let mut guard = 0;
        while at != 0 && guard < 48 {
            guard += 1;
            let head = p.read32(at);
            if head & 0xff == 0x09 {
                let cfg_type = (head >> 24) as u8;
                let bar = p.read32(at + 4) as u8;
                let off = u64::from(p.read32(at + 8));
                match cfg_type {
                    1 if common.is_none() => common = p.bar_gpa(bar, off),
                    2 if notify.is_none() => {
                        notify = p.bar_gpa(bar, off);
                        mult = p.read32(at + 16);
                    }
                    _ => {}
                }
            }
            at = (head >> 8) & 0xfc;
        }
        let common = common.ok_or("no common configuration")?;
        let notify = notify.ok_or("no notify structure")?;
        w8(common + 0x14, 0);
        if !wait_for(1_000_000, || r8(common + 0x14) == 0) {
            return Err("reset");
        }
        w8(common + 0x14, 1 | 2);
        // device_feature_select 1, device_feature: bits 32 and up.
        w32(common, 1);
        let hi = r32(common + 0x04);
        if hi & 3 != 3 {
            return Err("device lacks VERSION_1 or ACCESS_PLATFORM");
        }
        w32(common + 0x08, 0);
        w32(common + 0x0c, 0);
        w32(common + 0x08, 1);
        w32(common + 0x0c, 3);
        w8(common + 0x14, 1 | 2 | 8);
        if r8(common + 0x14) & 8 == 0 {
            return Err("FEATURES_OK refused");
        }
        w16(common + 0x16, 0);
        if r16(common + 0x18) < 8 {
            return Err("queue 0 too small");
        }
        w16(common + 0x18, 8);
        w16(common + 0x1a, 0xffff);
        let ring = &raw mut RING;
        // SAFETY: the ring is ours; the device does not run yet (reset above).
        unsafe {
            (*ring).avail = [0; 12];
            (*ring).used = [0; 18];
        }
        // SAFETY: as above.
        let (desc, avail, used) = unsafe {
            (
                (&raw mut (*ring).desc) as u64,
                (&raw mut (*ring).avail) as u64,
                (&raw mut (*ring).used) as u64,
            )
        };
        w64(common + 0x20, bus + desc);
        w64(common + 0x28, bus + avail);
        w64(common + 0x30, bus + used);
        let noff = u64::from(r16(common + 0x1e));
        w16(common + 0x1c, 1);
        w8(common + 0x14, 1 | 2 | 4 | 8);
        Ok(Virtio {
            common,
            notify: notify + noff * u64::from(mult),
            bus,
            avail_idx: 0,
        })
    }

    /// Reads `len` bytes from `sector` into BUF; the request's status.
    fn blk_read(v: &mut Virtio, sector: u64, len: u32) -> Result<u8, &'static str> {
        // SAFETY: the device is idle between requests.
        unsafe { core::ptr::write_bytes((&raw mut BUF) as *mut u8, 0, len as usize) };
        blk_read_keep(v, sector, len)
    }

    /// As [`blk_read`] without clearing the buffer first.
    fn blk_read_keep(v: &mut Virtio, sector: u64, len: u32) -> Result<u8, &'static str> {
        let want = blk_post(v, sector, len, false);
        let ring = &raw mut RING;
        // SAFETY: only the address is taken.
        let used_idx = unsafe { (&raw const (*ring).used) as *const u16 };
        let done = wait_for(1_000_000, || {
            // SAFETY: the used index (second u16 of the used ring) is written by
            // the device; read it volatile.
            u16::from_le(unsafe { read_volatile(used_idx.add(1)) }) == want
        });
        if !done {
            return Err("no used entry within 1 s");
        }
        fence(Ordering::SeqCst);
        let req = &raw mut REQ;
        // SAFETY: the device has finished with the request.
        Ok(unsafe { read_volatile(&raw const (*req).status) })
    }

    /// The device's used index (after its completion).
    fn used_idx() -> u16 {
        let ring = &raw const RING;
        // SAFETY: the used index (second u16 of the used ring), device-written.
        u16::from_le(unsafe { read_volatile(((&raw const (*ring).used) as *const u16).add(1)) })
    }

    /// Posts a read of `len` bytes at `sector` into BUF and notifies the
    /// device, asking for an interrupt when `interrupt`; the used index that
    /// marks its completion.
    fn blk_post(v: &mut Virtio, sector: u64, len: u32, interrupt: bool) -> u16 {
        let ring = &raw mut RING;
        let req = &raw mut REQ;
        let buf = &raw mut BUF;
        // SAFETY: the device only touches these after the notify below, and we
        // read them only after it posted the used entry.
        unsafe {
            (*req).kind = 0u32.to_le();
            (*req).sector = sector.to_le();
            (*req).status = 0xff;
            let d = &mut (*ring).desc;
            // addr, (len | flags << 32 | next << 48) in little-endian fields.
            let desc = |addr: u64, len: u32, flags: u16, next: u16| {
                [
                    addr.to_le(),
                    (u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48).to_le(),
                ]
            };
            d[0] = desc(v.bus + req as u64, 16, 1, 1);
            d[1] = desc(v.bus + buf as u64, len, 1 | 2, 2);
            d[2] = desc(v.bus + (&raw mut (*req).status) as u64, 1, 2, 0);
            let a = &mut (*ring).avail;
            // VIRTQ_AVAIL_F_NO_INTERRUPT unless an interrupt is wanted.
            a[0] = u16::from(!interrupt).to_le();
            a[2 + (v.avail_idx % 8) as usize] = 0;
            fence(Ordering::SeqCst);
            v.avail_idx = v.avail_idx.wrapping_add(1);
            write_volatile(&raw mut a[1], v.avail_idx.to_le());
        }
        fence(Ordering::SeqCst);
        REQ_TB.store(mftb(), Ordering::Release);
        w16(v.notify, 0);
        v.avail_idx
    }

    static REQ_TB: AtomicU64 = AtomicU64::new(0);

    // ---- MSI-X (docs/passthrough.md "MSI") ----

    const H_CEDE: u64 = 0xe0;
    const SRC_CFG_SET_EISN: u64 = 0x2;
    const EQ_ALWAYS_NOTIFY: u64 = 0x1;
    const PRIO: u64 = 6;
    const EISN: u32 = 0x4d5;
    const ESB_EOI: u64 = 0x000;
    const ESB_SET_PQ_00: u64 = 0xc00;
    const TM_CPPR: u64 = 0x11;
    const TM_SPC_ACK_OS_REG: u64 = 0x810;
    const RTAS_HARDWARE_ERROR: i32 = -1;
    /// About 4 s of the 512 MHz timebase.
    const IRQ_TIMEOUT: u64 = 2_048_000_000;

    #[repr(C, align(4096))]
    struct EventQueue([u32; 1024]);
    static mut QUEUE: EventQueue = EventQueue([0; 1024]);
    static TIMA: AtomicU64 = AtomicU64::new(0);
    static MGMT: AtomicU64 = AtomicU64::new(0);
    static IRQS: AtomicU32 = AtomicU32::new(0);
    static IRQ_TB: AtomicU64 = AtomicU64::new(0);
    static LAST_EISN: AtomicU32 = AtomicU32::new(0);
    static QIDX: AtomicU32 = AtomicU32::new(0);

    /// 0x500: acknowledge through the OS TIMA, take the queue entry, EOI.
    fn on_external(vector: u64, _srr0: &mut u64) -> bool {
        if vector != 0x500 {
            return false;
        }
        let tb = mftb();
        let tima = TIMA.load(Ordering::Acquire);
        let _ack = raw_be16(tima + TM_SPC_ACK_OS_REG);
        let i = QIDX.load(Ordering::Acquire) as usize % 1024;
        let q = (&raw const QUEUE) as *const u32;
        // SAFETY: entry i of our own queue, written by the hypervisor.
        let e = u32::from_be(unsafe { read_volatile(q.add(i)) });
        if e >> 31 == 1 {
            QIDX.fetch_add(1, Ordering::AcqRel);
            LAST_EISN.store(e & 0x7fff_ffff, Ordering::Release);
            IRQ_TB.store(tb, Ordering::Release);
            IRQS.fetch_add(1, Ordering::AcqRel);
        }
        out_8(tima + TM_CPPR, 0xff);
        in_be64(MGMT.load(Ordering::Acquire) + ESB_EOI);
        true
    }

    /// H_CEDE until an interrupt beyond `seen` was taken, at most 4 s.
    fn cede_until_irq(seen: u32) -> bool {
        let start = mftb();
        while IRQS.load(Ordering::Acquire) == seen {
            if mftb().wrapping_sub(start) > IRQ_TIMEOUT {
                return false;
            }
            // Bounded sleep: the decrementer ends H_CEDE if nothing else does.
            set_dec(512_000_000);
            hcall(H_CEDE, &[]);
            set_ee(false);
        }
        true
    }

    /// MSI-X on the virtio-blk function: ibm,change-msi and its refusals,
    /// ibm,query-interrupt-source-number, the source routed with
    /// H_INT_SET_SOURCE_CONFIG to a queue of vCPU 0, queue 0's vector set,
    /// reads completed by the interrupt (H_CEDE until it comes), the
    /// request-to-interrupt time as a figure; then the vectors released.
    fn msix_checks(p: &Phb, fdt: &'static [u8], v: &mut Virtio) {
        let (ca, hi, lo) = (p.config, (p.buid >> 32) as u32, p.buid as u32);
        let mut cap = p.read32(0x34) & 0xfc;
        let mut guard = 0;
        while cap != 0 && p.read32(cap) & 0xff != 0x11 && guard < 48 {
            cap = (p.read32(cap) >> 8) & 0xfc;
            guard += 1;
        }
        let entries = (p.read32(cap) >> 16 & 0x7ff) + 1;
        let req = fdt_u32(fdt, "/pci/pci", "ibm,req#msi-x").unwrap_or(0);
        check(
            "msix-capability",
            cap != 0 && req == entries && entries >= 2,
            format_args!("cap {:#x}, {} entries, ibm,req#msi-x {}", cap, entries, req),
        );
        let change = |func: u32, n: u32| {
            rtas_call("ibm,change-msi", &[ca, hi, lo, func, n, 7], 4).unwrap_or([-99; 8])
        };
        let other =
            rtas_call("ibm,change-msi", &[ca + 0x800, hi, lo, 4, 1, 0], 4).unwrap_or([-99; 8]);
        let bad_fn = change(9, 1);
        let msi_only = change(3, 1);
        let short = rtas_call("ibm,change-msi", &[ca, hi, lo, 4, 1], 4).unwrap_or([-99; 8]);
        check(
            "change-msi-refused",
            other[0] == RTAS_PARAMETER_ERROR
                && bad_fn[0] == RTAS_PARAMETER_ERROR
                && msi_only[0] == RTAS_PARAMETER_ERROR
                && short[0] == RTAS_PARAMETER_ERROR,
            format_args!(
                "other function {}, function 9 {}, MSI on an MSI-X device {}, 5 arguments {}",
                other[0], bad_fn[0], msi_only[0], short[0]
            ),
        );
        let many = change(4, 4096);
        check(
            "change-msi-too-many",
            many[0] == 0 && many[1] as u32 == entries.min(32) && many[3] == 2,
            format_args!("status {} granted {} type {}", many[0], many[1], many[3]),
        );
        let c = change(4, 2);
        let q0 =
            rtas_call("ibm,query-interrupt-source-number", &[ca, hi, lo, 0], 3).unwrap_or([-99; 8]);
        let q1 =
            rtas_call("ibm,query-interrupt-source-number", &[ca, hi, lo, 1], 3).unwrap_or([-99; 8]);
        let q2 =
            rtas_call("ibm,query-interrupt-source-number", &[ca, hi, lo, 2], 3).unwrap_or([-99; 8]);
        check(
            "change-msi",
            c[0] == 0 && c[1] == 2 && c[2] == 8 && c[3] == 2,
            format_args!(
                "status {} granted {} seq {} type {}",
                c[0], c[1], c[2], c[3]
            ),
        );
        check(
            "query-interrupt-source-number",
            q0[0] == 0
                && q1[0] == 0
                && q1[1] == q0[1] + 1
                && q0[2] == 1
                && q2[0] == RTAS_HARDWARE_ERROR,
            format_args!(
                "vector 0: {} {:#x} edge {}, vector 1: {} {:#x}, vector 2: {}",
                q0[0], q0[1], q0[2], q1[0], q1[1], q2[0]
            ),
        );
        // The queue's vector 1's source to vCPU 0, priority 6.
        let lisn = u64::from(q1[1] as u32);
        let reg = fdt_prop(fdt, "/interrupt-controller", "reg").unwrap_or(&[]);
        let tima = be64(reg, 16);
        TIMA.store(tima, Ordering::Release);
        let (rs, info) = hcall(H_INT_GET_SOURCE_INFO, &[0, lisn]);
        MGMT.store(info[1], Ordering::Release);
        let qa = (&raw mut QUEUE) as u64;
        // SAFETY: our queue, not yet given to the hypervisor (a reboot's
        // stale entries are cleared).
        unsafe { core::ptr::write_bytes(qa as *mut u8, 0, 4096) };
        QIDX.store(0, Ordering::Release);
        let rq = hcall(H_INT_SET_QUEUE_CONFIG, &[EQ_ALWAYS_NOTIFY, 0, PRIO, qa, 12]).0;
        let rc = hcall(
            H_INT_SET_SOURCE_CONFIG,
            &[SRC_CFG_SET_EISN, lisn, 0, PRIO, u64::from(EISN)],
        )
        .0;
        let unmask = in_be64(info[1] + ESB_SET_PQ_00);
        set_trap_handler(on_external);
        out_8(tima + TM_CPPR, 0xff);
        // MSI-X Enable (Message Control bit 15), then queue 0 on vector 1.
        let ctl = p.read(cap + 2, 2).1;
        let en = p.write(cap + 2, 2, ctl | 0x8000);
        w16(v.common + 0x16, 0);
        w16(v.common + 0x1a, 1);
        let vec = r16(v.common + 0x1a);
        check(
            "msix-setup",
            rs == 0 && rq == 0 && rc == 0 && unmask == 1 && en == 0 && vec == 1,
            format_args!(
                "source info {} queue {} source {} unmask {} enable {} vector {}",
                rs, rq, rc, unmask, en, vec
            ),
        );
        // Polled first, for comparison: request to completion.
        let mut polled = 0u64;
        for i in 0..4u64 {
            let t0 = mftb();
            let want = blk_post(v, i * 8, 4096, false);
            wait_for(1_000_000, || used_idx() == want);
            polled += mftb().wrapping_sub(t0);
        }
        const N: u64 = 8;
        let (mut total, mut worst, mut ok, mut bad) = (0u64, 0u64, 0u64, 0usize);
        for i in 0..N {
            let seen = IRQS.load(Ordering::Acquire);
            let want = blk_post(v, 64 + i * 8, 4096, true);
            let t0 = REQ_TB.load(Ordering::Acquire);
            if !cede_until_irq(seen) {
                println!(
                    "msix: read {} got no interrupt (used {} want {})",
                    i,
                    used_idx(),
                    want
                );
                continue;
            }
            let dt = IRQ_TB.load(Ordering::Acquire).wrapping_sub(t0);
            if used_idx() == want && LAST_EISN.load(Ordering::Acquire) == EISN {
                ok += 1;
                total += dt;
                worst = worst.max(dt);
                bad += check_buf((64 + i * 8) * 512, 4096).0;
            }
        }
        check(
            "msix-interrupt-read",
            ok == N && bad == 0,
            format_args!(
                "{} of {} reads completed by their interrupt (EISN {:#x}), {} bad words",
                ok,
                N,
                LAST_EISN.load(Ordering::Acquire),
                bad
            ),
        );
        // Timebase 512 MHz: 512 ticks per microsecond.
        println!(
            "GUEST-FIGURES msi_latency_us={} msi_latency_max_us={} polled_read_us={}",
            total / ok.max(1) / 512,
            worst / 512,
            polled / 4 / 512
        );
        // The table as the guest sees it (its page traps to the hypervisor):
        // vector 1 unmasked, vector 4 masked; a message written stays the
        // guest's; masking vector 1 holds its MSI pending (PBA bit 1) until
        // it is unmasked, when the interrupt comes.
        let tinfo = p.read32(cap + 4);
        let pinfo = p.read32(cap + 8);
        let table = p
            .bar_gpa((tinfo & 7) as u8, u64::from(tinfo & !7))
            .unwrap_or(0);
        let pba = p
            .bar_gpa((pinfo & 7) as u8, u64::from(pinfo & !7))
            .unwrap_or(0);
        let (ctl1, ctl4) = (r32(table + 16 + 12), r32(table + 4 * 16 + 12));
        let data1 = r32(table + 16 + 8);
        w32(table + 4 * 16 + 8, 0x1234);
        let kept = r32(table + 4 * 16 + 8);
        check(
            "msix-table-read",
            table != 0 && ctl1 == 0 && ctl4 == 1 && kept == 0x1234,
            format_args!(
                "table {:#x}: vector 1 control {} data {:#x}, vector 4 control {}, data written back {:#x}",
                table, ctl1, data1, ctl4, kept
            ),
        );
        w32(table + 16 + 12, 1);
        let seen = IRQS.load(Ordering::Acquire);
        let want = blk_post(v, 512, 4096, true);
        let done = wait_for(1_000_000, || used_idx() == want);
        for _ in 0..4 {
            set_dec(1_024_000);
            hcall(H_CEDE, &[]);
            set_ee(false);
        }
        let held = IRQS.load(Ordering::Acquire) == seen;
        let pending = r32(pba) & 2 != 0;
        w32(table + 16 + 12, 0);
        let came = cede_until_irq(seen);
        check(
            "msix-table-mask",
            done && held && pending && came,
            format_args!(
                "read done {} no interrupt while masked {} PBA pending {} interrupt after unmask {}",
                done, held, pending, came
            ),
        );
        w16(v.common + 0x1a, 0xffff);
        p.write(cap + 2, 2, ctl & !0x8000);
        let rel = change(4, 0);
        let gone =
            rtas_call("ibm,query-interrupt-source-number", &[ca, hi, lo, 0], 3).unwrap_or([-99; 8]);
        check(
            "change-msi-release",
            rel[0] == 0 && rel[1] == 0 && gone[0] == RTAS_HARDWARE_ERROR,
            format_args!(
                "status {} granted {}, query afterwards {}",
                rel[0], rel[1], gone[0]
            ),
        );
    }

    fn check_buf(disk_off: u64, len: usize) -> (usize, u32) {
        let buf = &raw const BUF;
        let (mut bad, mut sum) = (0usize, 0u32);
        for i in (0..len).step_by(4) {
            // SAFETY: the device has finished writing the buffer.
            let w = unsafe {
                let b = &(*buf).0;
                u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
            };
            sum = sum.wrapping_mul(31).wrapping_add(w);
            if w != pattern(disk_off + i as u64) {
                bad += 1;
            }
        }
        (bad, sum)
    }

    /// Maps `pages` 4 KiB pages from guest real `gra` at the same bus address
    /// in the 32-bit window, with H_PUT_TCE_INDIRECT (read and write).
    fn map_identity(liobn: u64, gra: u64, pages: u64) -> i64 {
        #[repr(C, align(4096))]
        struct List([u64; 512]);
        static mut LIST: List = List([0; 512]);
        let list = &raw mut LIST;
        for k in 0..pages {
            // SAFETY: only this vCPU uses the list, and only here.
            unsafe { (*list).0[k as usize] = ((gra + k * 0x1000) | 3).to_be() };
        }
        hcall(H_PUT_TCE_INDIRECT, &[liobn, gra, list as u64, pages]).0
    }

    /// The disk again, through the 32-bit TCE window (bus address = guest
    /// real address of each mapped page); then the buffer unmapped with
    /// H_STUFF_TCE, after which the device's writes must not arrive.
    fn tce_window_read(p: &Phb, liobn: u64, dma_fault: bool) {
        let ring = &raw mut RING as u64;
        let buf = &raw mut BUF as u64;
        let req = (&raw mut REQ as u64) & !0xfff;
        let rc = [
            map_identity(liobn, ring, 1),
            map_identity(liobn, buf, 16),
            hcall(H_PUT_TCE, &[liobn, req, req | 3]).0,
        ];
        let mut v = match virtio_init(p, 0) {
            Ok(v) => v,
            Err(e) => {
                check(
                    "virtio-blk-read-tce-window",
                    false,
                    format_args!("init: {} (TCE rc {:?})", e, rc),
                );
                return;
            }
        };
        let r = blk_read(&mut v, 256, 65536);
        let (bad, _) = check_buf(256 * 512, 65536);
        check(
            "virtio-blk-read-tce-window",
            rc == [0, 0, 0] && r == Ok(0) && bad == 0,
            format_args!("TCE rc {:?}, read {:?}, {} bad words", rc, r, bad),
        );
        if !dma_fault {
            // Unmap the buffer all the same (what a driver does when done).
            let st = hcall(H_STUFF_TCE, &[liobn, buf, 0, 16]).0;
            check("tce-unmap", st == 0, format_args!("stuff {}", st));
            w8(v.common + 0x14, 0);
            return;
        }
        // Unmap the buffer: the device may no longer write it. Off by default:
        // QEMU then sometimes keeps its one bounce buffer busy and hangs in
        // the device's next reset (docs/passthrough.md).
        let st = hcall(H_STUFF_TCE, &[liobn, buf, 0, 16]).0;
        // SAFETY: the device cannot reach the buffer any more.
        unsafe { core::ptr::write_bytes((&raw mut BUF) as *mut u8, 0xee, 65536) };
        let r = blk_read_keep(&mut v, 512, 4096);
        // SAFETY: as above.
        let intact = unsafe { core::slice::from_raw_parts((&raw const BUF) as *const u8, 4096) }
            .iter()
            .all(|&b| b == 0xee);
        // QEMU completes the request (its status page is still mapped) but
        // the data has nowhere to go.
        check(
            "dma-after-unmap-refused",
            st == 0 && intact,
            format_args!("stuff {}, read {:?}, buffer intact {}", st, r, intact),
        );
        w8(v.common + 0x14, 0);
    }

    /// The EEH RTAS calls: the PE's state from OPAL (not frozen), its
    /// config address, thawing, a slot reset after which the function still
    /// answers with its BARs where they were.
    fn eeh_checks(p: &Phb) {
        let (ca, hi, lo) = (p.config, (p.buid >> 32) as u32, p.buid as u32);
        let st = rtas_call("ibm,read-slot-reset-state2", &[ca, hi, lo], 4).unwrap_or([-99; 8]);
        check(
            "eeh-state-normal",
            st[0] == 0 && st[1] == 0 && st[2] == 1,
            format_args!("status {} state {} supported {}", st[0], st[1], st[2]),
        );
        let i1 = rtas_call("ibm,get-config-addr-info2", &[ca, hi, lo, 1], 2).unwrap_or([-99; 8]);
        let i0 = rtas_call("ibm,get-config-addr-info2", &[ca, hi, lo, 0], 2).unwrap_or([-99; 8]);
        check(
            "eeh-config-addr",
            i1[0] == 0 && i1[1] != 0 && i0[0] == 0 && i0[1] as u32 == ca,
            format_args!(
                "info 1: {} {}, info 0: {} {:#x}",
                i1[0], i1[1], i0[0], i0[1]
            ),
        );
        let opts = [
            rtas_call("ibm,set-eeh-option", &[ca, hi, lo, 1], 1).unwrap_or([-99; 8])[0],
            rtas_call("ibm,set-eeh-option", &[ca, hi, lo, 2], 1).unwrap_or([-99; 8])[0],
            rtas_call("ibm,set-eeh-option", &[ca, hi, lo, 3], 1).unwrap_or([-99; 8])[0],
            rtas_call("ibm,set-eeh-option", &[ca, hi, lo, 9], 1).unwrap_or([-99; 8])[0],
        ];
        check(
            "eeh-options",
            opts == [0, 0, 0, RTAS_PARAMETER_ERROR],
            format_args!("{:?}", opts),
        );
        let bar = p.read32(p.bars[0].0);
        let r1 = rtas_call("ibm,set-slot-reset", &[ca, hi, lo, 1], 1).unwrap_or([-99; 8])[0];
        let r0 = rtas_call("ibm,set-slot-reset", &[ca, hi, lo, 0], 1).unwrap_or([-99; 8])[0];
        let ids = p.read(0, 4);
        check(
            "eeh-slot-reset",
            r1 == 0
                && r0 == 0
                && ids.0 == 0
                && ids.1 & 0xffff == VIRTIO_VENDOR
                && p.read32(p.bars[0].0) == bar,
            format_args!(
                "reset {} {}, ids {:#x}, BAR {:#x} was {:#x}",
                r1,
                r0,
                ids.1,
                p.read32(p.bars[0].0),
                bar
            ),
        );
        // An FLR through the PCI Express capability's Device Control is done
        // by the hypervisor, which puts the BARs back.
        let mut at = p.read32(0x34) & 0xfc;
        let mut guard = 0;
        while at != 0 && p.read32(at) & 0xff != 0x10 && guard < 48 {
            at = (p.read32(at) >> 8) & 0xfc;
            guard += 1;
        }
        let rc = if at != 0 && guard < 48 {
            p.write(at + 8, 2, 0x8000)
        } else {
            -99
        };
        check(
            "guest-flr-bars-kept",
            // Memory decoding is back on (a plain FLR leaves the command 0).
            rc == 0 && p.read(4, 2).1 & 2 != 0 && p.read(0, 4).1 & 0xffff == VIRTIO_VENDOR,
            format_args!(
                "status {}, BAR {:#x} was {:#x}",
                rc,
                p.read32(p.bars[0].0),
                bar
            ),
        );
        let other =
            rtas_call("ibm,read-slot-reset-state2", &[ca + 0x800, hi, lo], 4).unwrap_or([-99; 8]);
        let detail =
            rtas_call("ibm,slot-error-detail", &[ca, hi, lo, 0, 0, 0, 0, 1], 1).unwrap_or([-99; 8]);
        check(
            "eeh-other-function-and-detail",
            other[0] == RTAS_PARAMETER_ERROR && detail[0] == 1,
            format_args!("other {} detail {}", other[0], detail[0]),
        );
    }

    const REBOOT_YEAR: u32 = 2091;

    // ---- NVMe (role=nvme) ----

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut ASQ: Page = Page([0; 4096]);
    static mut ACQ: Page = Page([0; 4096]);
    static mut IOSQ: Page = Page([0; 4096]);
    static mut IOCQ: Page = Page([0; 4096]);
    const QSIZE: u32 = 8;

    fn r64(a: u64) -> u64 {
        u64::from(r32(a)) | (u64::from(r32(a + 4)) << 32)
    }

    /// One queue pair of an NVMe controller, polled.
    struct Queue {
        sq: *mut Page,
        cq: *mut Page,
        sq_db: u64,
        cq_db: u64,
        tail: u32,
        head: u32,
        phase: u32,
        cid: u16,
    }

    impl Queue {
        /// Submits a command (opcode, nsid, PRP1, PRP2, cdw10..cdw12) and waits
        /// for its completion: the status field (0 = success).
        fn run(
            &mut self,
            op: u8,
            nsid: u32,
            prp1: u64,
            prp2: u64,
            cdw: [u32; 3],
        ) -> Result<u16, &'static str> {
            self.cid = self.cid.wrapping_add(1);
            let mut e = [0u32; 16];
            e[0] = u32::from(op) | (u32::from(self.cid) << 16);
            e[1] = nsid;
            e[6] = prp1 as u32;
            e[7] = (prp1 >> 32) as u32;
            e[8] = prp2 as u32;
            e[9] = (prp2 >> 32) as u32;
            e[10] = cdw[0];
            e[11] = cdw[1];
            e[12] = cdw[2];
            // SAFETY: the slot at the tail belongs to the driver.
            unsafe {
                let at = (self.sq as *mut u32).add(self.tail as usize * 16);
                for (i, w) in e.iter().enumerate() {
                    write_volatile(at.add(i), w.to_le());
                }
            }
            fence(Ordering::SeqCst);
            self.tail = (self.tail + 1) % QSIZE;
            w32(self.sq_db, self.tail);
            let cq = self.cq as *const u32;
            let (head, phase) = (self.head, self.phase);
            // SAFETY: the completion entry is written by the device; read volatile.
            let dw3 = || u32::from_le(unsafe { read_volatile(cq.add(head as usize * 4 + 3)) });
            if !wait_for(1_000_000, || (dw3() >> 16) & 1 == phase) {
                return Err("no completion within 1 s");
            }
            let status = (dw3() >> 17) as u16;
            self.head = (self.head + 1) % QSIZE;
            if self.head == 0 {
                self.phase ^= 1;
            }
            w32(self.cq_db, self.head);
            Ok(status)
        }
    }

    /// An NVMe controller behind the logical PHB: admin queue, one I/O queue
    /// pair, reads of namespace 1 through the 64-bit window checked against the
    /// disk pattern.
    fn nvme_main(p: &Phb) -> ! {
        let ids = p.read(0, 4);
        let class = p.read32(8) >> 8;
        check(
            "nvme-config",
            ids.0 == 0 && class == 0x01_0802,
            format_args!("ids {:#x} class {:#x}", ids.1, class),
        );
        let (ca, hi, lo) = (p.config, (p.buid >> 32) as u32, p.buid as u32);
        let c = rtas_call_token(p.ddw[1], &[ca, hi, lo, 16, 40], 4);
        let base = (u64::from(c[2] as u32) << 32) | u64::from(c[3] as u32);
        check(
            "nvme-ddw-create",
            c[0] == 0,
            format_args!("status {}", c[0]),
        );
        p.write(4, 2, 0x6);
        let Some(regs) = p.bar_gpa(0, 0) else {
            check(
                "nvme-bar0",
                false,
                format_args!("no BAR0 in assigned-addresses"),
            );
            finish()
        };
        match nvme_read(regs, base) {
            Ok((bad, sum)) => {
                check(
                    "nvme-read-pattern",
                    bad == 0,
                    format_args!("{} bad words", bad),
                );
                println!("GUEST-FIGURES nvme_checksum={:#010x} bytes=16384", sum);
            }
            Err(e) => check("nvme-read-pattern", false, format_args!("{}", e)),
        }
        let rm = rtas_call_token(p.ddw[2], &[c[1] as u32], 1);
        check(
            "nvme-ddw-remove",
            rm[0] == 0,
            format_args!("status {}", rm[0]),
        );
        finish()
    }

    fn nvme_read(regs: u64, bus: u64) -> Result<(usize, u32), &'static str> {
        let cap = r64(regs);
        let stride = 4u64 << ((cap >> 32) & 0xf);
        // Disable, then wait for not ready.
        w32(regs + 0x14, 0);
        if !wait_for(2_000_000, || r32(regs + 0x1c) & 1 == 0) {
            return Err("controller did not stop");
        }
        let (asq, acq, iosq, iocq) = (&raw mut ASQ, &raw mut ACQ, &raw mut IOSQ, &raw mut IOCQ);
        for q in [asq, acq, iosq, iocq] {
            // SAFETY: the controller is disabled; nothing else uses the queues.
            unsafe { core::ptr::write_bytes(q as *mut u8, 0, 4096) };
        }
        w32(regs + 0x24, ((QSIZE - 1) << 16) | (QSIZE - 1));
        w64(regs + 0x28, bus + asq as u64);
        w64(regs + 0x30, bus + acq as u64);
        // IOCQES 16 bytes (4), IOSQES 64 bytes (6), 4 KiB pages, enable.
        w32(regs + 0x14, (4 << 20) | (6 << 16) | 1);
        if !wait_for(2_000_000, || r32(regs + 0x1c) & 1 == 1) {
            return Err("controller did not become ready");
        }
        let mut admin = Queue {
            sq: asq,
            cq: acq,
            sq_db: regs + 0x1000,
            cq_db: regs + 0x1000 + stride,
            tail: 0,
            head: 0,
            phase: 1,
            cid: 0,
        };
        let qs = (QSIZE - 1) << 16;
        // Create I/O completion queue 1 (contiguous), then submission queue 1.
        if admin.run(0x05, 0, bus + iocq as u64, 0, [qs | 1, 1, 0])? != 0 {
            return Err("create I/O CQ refused");
        }
        if admin.run(0x01, 0, bus + iosq as u64, 0, [qs | 1, (1 << 16) | 1, 0])? != 0 {
            return Err("create I/O SQ refused");
        }
        let mut io = Queue {
            sq: iosq,
            cq: iocq,
            sq_db: regs + 0x1000 + 2 * stride,
            cq_db: regs + 0x1000 + 3 * stride,
            tail: 0,
            head: 0,
            phase: 1,
            cid: 0,
        };
        let buf = (&raw mut BUF) as u64;
        let (mut bad, mut sum) = (0, 0u32);
        // 8 KiB (two pages: PRP1 and PRP2) at LBA 0 and at 1 MiB, 512-byte LBAs.
        for lba in [0u64, 2048] {
            // SAFETY: the device is idle between commands.
            unsafe { core::ptr::write_bytes(buf as *mut u8, 0, 8192) };
            let st = io.run(
                0x02,
                1,
                bus + buf,
                bus + buf + 4096,
                [lba as u32, (lba >> 32) as u32, 15],
            )?;
            if st != 0 {
                return Err("read failed");
            }
            let (b, s) = check_buf(lba * 512, 8192);
            bad += b;
            sum = sum.wrapping_add(s);
        }
        w32(regs + 0x14, 0);
        Ok((bad, sum))
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let tod = rtas_call("get-time-of-day", &[], 8).unwrap_or([-99; 8]);
        let second_boot = tod[0] == 0 && tod[1] as u32 == REBOOT_YEAR;
        println!("pci: boot {}", if second_boot { 2 } else { 1 });
        let Some(p) = find_phb(fdt) else {
            check(
                "vphb-node",
                false,
                format_args!("no /pci node with ranges, reg, ibm,ddw-applicable and a function"),
            );
            finish()
        };
        let bootargs = fdt_prop(fdt, "/chosen", "bootargs").unwrap_or(&[]);
        if bootargs.windows(9).any(|w| w == b"role=nvme") {
            nvme_main(&p)
        }
        let compat = fdt_prop(fdt, "/pci", "compatible").unwrap_or(&[]);
        check(
            "vphb-node",
            compat.starts_with(b"IBM,Logical_PHB") && p.buid >> 32 == 0x0800_0000 && p.nbars > 0,
            format_args!("buid {:#x}, {} BARs", p.buid, p.nbars),
        );
        check(
            "pci-probe-only",
            fdt_u32(fdt, "/chosen", "linux,pci-probe-only") == Some(1),
            format_args!("{:?}", fdt_u32(fdt, "/chosen", "linux,pci-probe-only")),
        );
        let ids = p.read(0, 4);
        let vendor = fdt_u32(fdt, "/pci/pci", "vendor-id").unwrap_or(0);
        let device = fdt_u32(fdt, "/pci/pci", "device-id").unwrap_or(0);
        check(
            "config-read",
            ids.0 == 0
                && ids.1 == (device << 16 | vendor)
                && vendor == VIRTIO_VENDOR
                && device == VIRTIO_BLK_MODERN,
            format_args!(
                "status {} ids {:#x}, node {:#x}:{:#x}",
                ids.0, ids.1, vendor, device
            ),
        );
        // Another function on the bus is not the partition's.
        let other = rtas_call(
            "ibm,read-pci-config",
            &[p.config + 0x800, (p.buid >> 32) as u32, p.buid as u32, 4],
            2,
        )
        .unwrap_or([0; 8]);
        check(
            "config-other-function-refused",
            other[0] == RTAS_PARAMETER_ERROR,
            format_args!("status {}", other[0]),
        );
        let (reg, pci, size) = p.bars[0];
        let bar = p.read32(reg);
        check(
            "bar-as-assigned",
            u64::from(bar & !0xf) == pci & 0xffff_fff0,
            format_args!("BAR {:#x} reads {:#x}, assigned {:#x}", reg, bar, pci),
        );
        let rc = p.write(reg, 4, (bar & !0xf).wrapping_add(0x10_0000));
        check(
            "bar-move-refused",
            rc == RTAS_PARAMETER_ERROR && p.read32(reg) == bar,
            format_args!("status {}, BAR now {:#x}", rc, p.read32(reg)),
        );
        let rc = p.write(reg, 4, !0);
        let mask = p.read32(reg);
        let rc2 = p.write(reg, 4, bar);
        check(
            "bar-sizing",
            rc == 0
                && rc2 == 0
                && mask & !0xf == (!(size - 1)) as u32 & !0xf
                && p.read32(reg) == bar,
            format_args!("mask {:#x} for size {:#x}", mask, size),
        );
        // The 32-bit TCE window is there from the start (ibm,dma-window), so
        // bus mastering is allowed: every address goes through the PHB.
        let dw = fdt_prop(fdt, "/pci", "ibm,dma-window").unwrap_or(&[]);
        let liobn32 = be32(dw, 0);
        check(
            "dma-window-node",
            dw.len() == 20
                && liobn32 >> 16 == 0x7000
                && be64(dw, 4) == 0
                && be64(dw, 12) == 256 << 20,
            format_args!("{} bytes, liobn {:#x}", dw.len(), liobn32),
        );
        let rc = p.write(4, 2, 0x6);
        let cmd = p.read(4, 2).1;
        check(
            "bus-master-with-tce-window",
            rc == 0 && cmd & 6 == 6,
            format_args!("status {} command {:#x}", rc, cmd),
        );
        // TCE hcalls on the 32-bit window: outside memory, outside the window,
        // misaligned are refused; a good one reads back.
        let lb = u64::from(liobn32);
        let mem = 256u64 << 20;
        let bad = [
            hcall(H_PUT_TCE, &[lb, 0, mem | 3]).0,
            hcall(H_PUT_TCE, &[lb, 0, ((mem - 0x1000) + 0x1000 * 1024) | 3]).0,
            hcall(H_PUT_TCE, &[lb, 256 << 20, 0x1000 | 3]).0,
            hcall(H_PUT_TCE, &[lb, 0x800, 0x1000 | 3]).0,
            hcall(H_STUFF_TCE, &[lb, 0, 0x1003, 1]).0,
        ];
        check(
            "tce-outside-refused",
            bad.iter().all(|&r| r == H_PARAMETER),
            format_args!("{:?}", bad),
        );
        let put = hcall(H_PUT_TCE, &[lb, 0x5000, 0x7000 | 1]).0;
        let (get, out) = hcall(H_GET_TCE, &[lb, 0x5000]);
        let clr = hcall(H_STUFF_TCE, &[lb, 0x5000, 0, 1]).0;
        check(
            "tce-put-get",
            put == 0 && get == 0 && out[0] == 0x7001 && clr == 0,
            format_args!("put {} get {} {:#x} stuff {}", put, get, out[0], clr),
        );
        let ca = p.config;
        let (hi, lo) = ((p.buid >> 32) as u32, p.buid as u32);
        let q = rtas_call_token(p.ddw[0], &[ca, hi, lo], 5);
        check(
            "ddw-query",
            q[0] == 0 && q[1] == 1 && q[3] & 2 != 0,
            format_args!(
                "status {} windows {} largest {} sizes {:#x}",
                q[0], q[1], q[2], q[3]
            ),
        );
        let bad = rtas_call_token(p.ddw[1], &[ca, hi, lo, 16, 20], 4);
        check(
            "ddw-too-small-refused",
            bad[0] == RTAS_PARAMETER_ERROR,
            format_args!("status {}", bad[0]),
        );
        let c = rtas_call_token(p.ddw[1], &[ca, hi, lo, 16, 40], 4);
        let base = (u64::from(c[2] as u32) << 32) | u64::from(c[3] as u32);
        check(
            "ddw-create",
            c[0] == 0 && base >> 59 == 1,
            format_args!("status {} liobn {:#x} base {:#x}", c[0], c[1], base),
        );
        let again = rtas_call_token(p.ddw[0], &[ca, hi, lo], 5);
        check(
            "ddw-query-after-create",
            again[0] == 0 && again[1] == 0,
            format_args!("status {} windows {}", again[0], again[1]),
        );
        eeh_checks(&p);
        // The reset left bus mastering off; the driver turns it on again.
        p.write(4, 2, 0x6);
        let ddw_liobn = u64::from(c[1] as u32);
        let id = hcall(H_PUT_TCE, &[ddw_liobn, base + 0x10000, 0x10000 | 3]).0;
        let other = hcall(H_PUT_TCE, &[ddw_liobn, base + 0x10000, 0x20000 | 3]).0;
        check(
            "ddw-identity-tce-only",
            id == 0 && other == H_PARAMETER,
            format_args!("identity {} other {}", id, other),
        );
        match virtio_init(&p, base) {
            Err(e) => check("virtio-blk-init", false, format_args!("{}", e)),
            Ok(mut v) => {
                check("virtio-blk-init", true, format_args!(""));
                let mut all_bad = 0;
                let mut sum = 0u32;
                let mut statuses_ok = true;
                let mut ticks = 0u64;
                for (i, sector) in [0u64, 128, 4096, 16384 - 128].iter().enumerate() {
                    let t0 = mftb();
                    let r = blk_read(&mut v, *sector, 65536);
                    ticks += mftb().wrapping_sub(t0);
                    match r {
                        Ok(0) => {
                            let (bad, s) = check_buf(sector * 512, 65536);
                            all_bad += bad;
                            sum = sum.wrapping_add(s.rotate_left(i as u32));
                        }
                        Ok(st) => {
                            statuses_ok = false;
                            println!("virtio-blk: sector {} status {}", sector, st);
                        }
                        Err(e) => {
                            statuses_ok = false;
                            println!("virtio-blk: sector {}: {}", sector, e);
                        }
                    }
                }
                check(
                    "virtio-blk-read-pattern",
                    statuses_ok && all_bad == 0,
                    format_args!("{} bad words", all_bad),
                );
                // Timebase 512 MHz: KiB/s = 256 KiB * 512e6 / ticks.
                let kib_s = 256 * 512_000_000 / ticks.max(1);
                println!(
                    "GUEST-FIGURES disk_checksum={:#010x} bytes=262144 read_kib_per_s={}",
                    sum, kib_s
                );
                msix_checks(&p, fdt, &mut v);
                // Reset the device before the window goes.
                w8(v.common + 0x14, 0);
                let fault = bootargs.windows(9).any(|w| w == b"dma-fault");
                tce_window_read(&p, lb, fault);
            }
        }
        let rm = rtas_call_token(p.ddw[2], &[c[1] as u32], 1);
        let closed = hcall(H_PUT_TCE, &[ddw_liobn, base + 0x10000, 0x10000 | 3]).0;
        check(
            "ddw-remove",
            rm[0] == 0 && closed == H_PARAMETER,
            format_args!("status {}, identity TCE afterwards {}", rm[0], closed),
        );
        let rm = rtas_call_token(p.ddw[2], &[c[1] as u32], 1);
        check(
            "ddw-remove-twice-refused",
            rm[0] == RTAS_PARAMETER_ERROR,
            format_args!("status {}", rm[0]),
        );
        if !second_boot {
            // Everything again after a reboot (the function is reset by the
            // hypervisor in between): the year 2091 marks the second boot (the
            // partition's clock survives system-reboot).
            let set = rtas_call("set-time-of-day", &[REBOOT_YEAR, 1, 1, 0, 0, 0, 0], 1)
                .unwrap_or([-99; 8]);
            println!(
                "pci: first boot done (set-time-of-day {}), rebooting",
                set[0]
            );
            rtas_call("system-reboot", &[], 1);
            check("system-reboot", false, format_args!("returned"));
        }
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
