//! A hostile client of the partition's v-scsi adapter (docs/vscsi.md): CRQ
//! hcalls with bad arguments, the INIT handshake, SRP login, a write read back
//! through direct and indirect descriptors, then requests a correct client
//! never sends (LBAs past the end, descriptors outside the TCE window or
//! unmapped, oversized indirect tables, oversized and unmapped IUs, unknown
//! opcodes, an absent target), a queue it lets overflow, and random IUs. Each
//! must get its SCSI status, SRP response or PAPR code; the neighbour
//! partition meanwhile keeps running (tests/manifests/vscsi.toml).
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use paprika_guest_rt::*;

    const H_REG_CRQ: u64 = 0xfc;
    const H_FREE_CRQ: u64 = 0x100;
    const H_SEND_CRQ: u64 = 0x108;
    const H_ENABLE_CRQ: u64 = 0x2b0;
    const H_PUT_TCE: u64 = 0x20;
    const H_CLOSED: i64 = 2;
    const H_PARAMETER: i64 = -4;
    const H_NOT_FOUND: i64 = -7;
    const H_DROPPED: i64 = -12;
    const H_RESOURCE: i64 = -16;

    /// Guest real = bus address of everything below (mapped 1:1 in the window).
    const QUEUE: u64 = 0x0200_0000;
    const IU: u64 = QUEUE + 0x1000;
    const DATA: u64 = QUEUE + 0x4000;
    const TABLE: u64 = QUEUE + 0x1_0000;
    /// Pages mapped read/write through the TCE window.
    const MAPPED_PAGES: u64 = 0x20;
    /// A bus address inside the window that is never mapped.
    const UNMAPPED: u64 = 0x0400_0000;
    /// Beyond the 256 MiB window.
    const OUTSIDE: u64 = 0x1000_0000;
    /// The disk of tests/manifests/vscsi.toml: 64 KiB.
    const DISK_BLOCKS: u32 = 128;

    fn wr(a: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: the buffers above lie in this partition's 64 MiB, away from
            // the image and the stack.
            unsafe { core::ptr::write_volatile((a + i as u64) as *mut u8, *b) };
        }
    }

    fn rd(a: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as for `wr`.
            *b = unsafe { core::ptr::read_volatile((a + i as u64) as *const u8) };
        }
    }

    fn rd8(a: u64) -> u8 {
        let mut b = [0u8];
        rd(a, &mut b);
        b[0]
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    struct Client {
        unit: u64,
        /// Next queue slot to read.
        next: u64,
        entries: u64,
    }

    impl Client {
        fn send(&self, hi: u64, lo: u64) -> i64 {
            hcall(H_SEND_CRQ, &[self.unit, hi, lo]).0
        }

        /// The next response entry (zeroed after reading), if one is there.
        fn take(&mut self) -> Option<[u8; 16]> {
            let slot = QUEUE + self.next * 16;
            if rd8(slot) & 0x80 == 0 {
                return None;
            }
            let mut e = [0u8; 16];
            rd(slot, &mut e);
            wr(slot, &[0]);
            self.next = (self.next + 1) % self.entries;
            Some(e)
        }

        /// Sends the IU at `IU` (`len` bytes, `format` 1 SRP / 2 MAD) and
        /// returns the response entry.
        fn request(&mut self, format: u8, len: u16, iu: u64) -> (i64, Option<[u8; 16]>) {
            let hi = 0x8000_0000_0000_0000 | (u64::from(format) << 48) | u64::from(len);
            let rc = self.send(hi, iu);
            (rc, self.take())
        }

        fn register(&mut self) -> i64 {
            self.next = 0;
            hcall(H_REG_CRQ, &[self.unit, QUEUE, 0x1000]).0
        }
    }

    /// An SRP_CMD IU for target `target` with `cdb`.
    fn cmd(target: u8, cdb: &[u8]) -> [u8; 256] {
        let mut iu = [0u8; 256];
        iu[0] = 0x02;
        iu[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        iu[20] = 0x80 | target;
        iu[32..32 + cdb.len()].copy_from_slice(cdb);
        iu
    }

    fn desc(iu: &mut [u8], at: usize, va: u64, len: u32) {
        iu[at..at + 8].copy_from_slice(&va.to_be_bytes());
        iu[at + 12..at + 16].copy_from_slice(&len.to_be_bytes());
    }

    fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
        let l = lba.to_be_bytes();
        let b = blocks.to_be_bytes();
        [op, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
    }

    /// Status byte and (key, asc) of the SRP_RSP now at `IU`.
    fn rsp_status() -> (u8, u8, u8, u8) {
        let mut r = [0u8; 64];
        rd(IU, &mut r);
        let sense = r[18] & 2 != 0;
        (
            r[0],
            r[19],
            if sense { r[36 + 2] } else { 0xff },
            if sense { r[36 + 12] } else { 0xff },
        )
    }

    fn srp(c: &mut Client, iu: &[u8; 256]) -> (i64, Option<[u8; 16]>) {
        wr(IU, iu);
        c.request(1, 256, IU)
    }

    /// A small xorshift for the random IUs (seeded from the time base).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        let reg = fdt_u32(fdt, "/vdevice/v-scsi", "reg");
        check(
            "vscsi-node",
            reg.is_some(),
            format_args!("no /vdevice/v-scsi"),
        );
        let Some(unit) = reg.map(u64::from) else {
            finish();
        };
        let mut c = Client {
            unit,
            next: 0,
            entries: 256,
        };

        // -- CRQ hcalls with bad arguments --
        let rc = |args: &[u64]| hcall(H_REG_CRQ, args).0;
        check(
            "reg-crq-short",
            rc(&[unit, QUEUE, 0x800]) == H_PARAMETER,
            format_args!(""),
        );
        check(
            "reg-crq-huge",
            rc(&[unit, QUEUE, 0x2000_0000]) == H_PARAMETER,
            format_args!(""),
        );
        check(
            "reg-crq-misaligned",
            rc(&[unit, QUEUE + 8, 0x1000]) == H_PARAMETER,
            format_args!(""),
        );
        let vty = u64::from(fdt_u32(fdt, "/vdevice/vty", "reg").unwrap_or(0x7100_0000));
        let r = rc(&[vty, QUEUE, 0x1000]);
        check("reg-crq-on-vty", r == H_NOT_FOUND, format_args!("{}", r));
        check(
            "reg-crq-no-unit",
            rc(&[0x7fff_ffff, QUEUE, 0x1000]) == H_PARAMETER,
            format_args!(""),
        );
        let r = c.send(0xc001_0000_0000_0000, 0);
        check("send-before-register", r == H_CLOSED, format_args!("{}", r));
        check(
            "enable-crq",
            hcall(H_ENABLE_CRQ, &[unit]).0 == 0,
            format_args!(""),
        );

        // -- map the buffers, register, INIT --
        let mut mapped = true;
        for i in 0..MAPPED_PAGES {
            let a = QUEUE + i * 0x1000;
            mapped &= hcall(H_PUT_TCE, &[unit, a, a | 3]).0 == 0;
        }
        wr(QUEUE, &[0u8; 4096]);
        check("tces", mapped, format_args!(""));
        let r = c.register();
        check("reg-crq", r == 0, format_args!("{}", r));
        let r = rc(&[unit, QUEUE, 0x1000]);
        check("reg-crq-twice", r == H_RESOURCE, format_args!("{}", r));
        let r = c.send(0xc001_0000_0000_0000, 0);
        let e = c.take();
        check(
            "init-complete",
            r == 0 && e.is_some_and(|e| e[0] == 0xc0 && e[1] == 0x02),
            format_args!("{} {:?}", r, e),
        );

        // -- ADAPTER_INFO MAD, login --
        let mut mad = [0u8; 256];
        mad[0..4].copy_from_slice(&3u32.to_be_bytes());
        mad[6..8].copy_from_slice(&148u16.to_be_bytes());
        mad[16..24].copy_from_slice(&DATA.to_be_bytes());
        wr(IU, &mad);
        let (r, e) = c.request(2, 256, IU);
        let mut info = [0u8; 8];
        rd(DATA, &mut info);
        check(
            "adapter-info",
            r == 0 && e.is_some_and(|e| e[1] == 2 && e[3] == 0) && &info[..4] == b"16.a",
            format_args!("{} {:?}", r, e),
        );
        let mut login = [0u8; 256];
        login[16..20].copy_from_slice(&256u32.to_be_bytes());
        login[24..26].copy_from_slice(&6u16.to_be_bytes());
        let (r, _) = srp(&mut c, &login);
        let mut lr = [0u8; 8];
        rd(IU, &mut lr);
        check(
            "login",
            r == 0 && lr[0] == 0xc0 && be32(&lr[4..8]) > 0,
            format_args!("{} {:?}", r, lr),
        );

        // -- a write, read back through an in-IU indirect list --
        let pattern: [u8; 1024] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        wr(DATA, &pattern);
        let mut iu = cmd(0, &rw10(0x2a, 1, 2));
        iu[5] = 0x10;
        desc(&mut iu, 48, DATA, 1024);
        srp(&mut c, &iu);
        let (op, st, _, _) = rsp_status();
        check(
            "write",
            op == 0xc1 && st == 0,
            format_args!("{:#x} {}", op, st),
        );
        wr(DATA + 0x2000, &[0u8; 1024]);
        let mut iu = cmd(0, &rw10(0x28, 1, 2));
        iu[5] = 0x02;
        iu[7] = 2;
        desc(&mut iu, 48, 0, 32);
        iu[64..68].copy_from_slice(&1024u32.to_be_bytes());
        desc(&mut iu, 68, DATA + 0x2000 + 512, 512);
        desc(&mut iu, 84, DATA + 0x2000, 512);
        srp(&mut c, &iu);
        let mut back = [0u8; 1024];
        rd(DATA + 0x2000, &mut back);
        let ok = back[512..] == pattern[..512] && back[..512] == pattern[512..];
        check("read-indirect", ok && rsp_status().1 == 0, format_args!(""));

        // -- bad requests: each an SRP/SCSI error --
        let mut iu = cmd(0, &rw10(0x28, DISK_BLOCKS - 1, 2));
        iu[5] = 0x01;
        desc(&mut iu, 48, DATA, 1024);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "lba-past-end",
            s.1 == 2 && s.2 == 5 && s.3 == 0x21,
            format_args!("{:?}", s),
        );
        let mut iu = cmd(0, &rw10(0x28, 0xffff_fff0, 0x20));
        iu[5] = 0x01;
        desc(&mut iu, 48, DATA, 0x4000);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "lba-wraps",
            s.1 == 2 && s.2 == 5 && s.3 == 0x21,
            format_args!("{:?}", s),
        );
        for (name, va) in [
            ("desc-unmapped", UNMAPPED),
            ("desc-outside-window", OUTSIDE),
            ("desc-wraps", u64::MAX - 100),
        ] {
            let mut iu = cmd(0, &rw10(0x28, 0, 1));
            iu[5] = 0x01;
            desc(&mut iu, 48, va, 512);
            srp(&mut c, &iu);
            let s = rsp_status();
            check(
                name,
                s.1 == 2 && s.2 == 0xb && s.3 == 0x4b,
                format_args!("{:?}", s),
            );
        }
        let mut iu = cmd(0, &rw10(0x2a, 0, 1));
        iu[5] = 0x10;
        desc(&mut iu, 48, UNMAPPED, 512);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "write-from-unmapped",
            s.1 == 2 && s.2 == 0xb,
            format_args!("{:?}", s),
        );
        let mut iu = cmd(0, &rw10(0x28, 0, 1));
        iu[5] = 0x02;
        desc(&mut iu, 48, TABLE, 16 * 4096);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "indirect-table-too-long",
            s.1 == 2 && s.2 == 5 && s.3 == 0x0e,
            format_args!("{:?}", s),
        );
        desc(&mut iu, 48, OUTSIDE, 32);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "indirect-table-outside",
            s.1 == 2 && s.2 == 0xb,
            format_args!("{:?}", s),
        );
        iu[7] = 250;
        desc(&mut iu, 48, TABLE, 32);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "indirect-count-past-iu",
            s.1 == 2 && s.2 == 5 && s.3 == 0x0e,
            format_args!("{:?}", s),
        );
        // Table whose segments point outside the window.
        let mut table = [0u8; 32];
        desc(&mut table, 0, OUTSIDE, 256);
        desc(&mut table, 16, DATA, 256);
        wr(TABLE, &table);
        let mut iu = cmd(0, &rw10(0x28, 0, 1));
        iu[5] = 0x02;
        desc(&mut iu, 48, TABLE, 32);
        srp(&mut c, &iu);
        let s = rsp_status();
        check(
            "indirect-segment-outside",
            s.1 == 2 && s.2 == 0xb,
            format_args!("{:?}", s),
        );
        srp(&mut c, &cmd(0, &[0xc7]));
        let s = rsp_status();
        check(
            "unknown-opcode",
            s.1 == 2 && s.2 == 5 && s.3 == 0x20,
            format_args!("{:?}", s),
        );
        let mut iu = cmd(7, &[0x12, 0, 0, 0, 36]);
        iu[5] = 0x01;
        desc(&mut iu, 48, DATA, 36);
        srp(&mut c, &iu);
        check(
            "absent-target-pq3",
            rd8(DATA) == 0x7f,
            format_args!("{:#x}", rd8(DATA)),
        );
        let mut tm = [0u8; 256];
        tm[0] = 0x01;
        tm[20] = 0x80;
        tm[30] = 0x08;
        srp(&mut c, &tm);
        let mut t = [0u8; 40];
        rd(IU, &mut t);
        check(
            "lun-reset",
            t[0] == 0xc1 && t[18] & 1 == 1 && t[39] == 0,
            format_args!("{:?}", &t[16..40]),
        );
        let (r, e) = c.request(1, 1000, IU);
        check(
            "iu-too-long",
            r == 0 && e.is_some_and(|e| e[3] == 0x10),
            format_args!("{} {:?}", r, e),
        );
        let (r, e) = c.request(1, 256, OUTSIDE);
        check(
            "iu-outside-window",
            r == 0 && e.is_some_and(|e| e[3] == 0x10),
            format_args!("{} {:?}", r, e),
        );
        let (r, e) = c.request(1, 256, UNMAPPED);
        check(
            "iu-unmapped",
            r == 0 && e.is_some_and(|e| e[3] == 0x10),
            format_args!("{} {:?}", r, e),
        );

        // -- random IUs: each answered or refused, never anything else --
        let mut rng = Rng(mftb() | 1);
        println!("GUEST-SEED {}", rng.0);
        let mut odd = 0u32;
        let rounds = 3000u32;
        for _ in 0..rounds {
            let mut iu = [0u8; 256];
            for w in iu.chunks_mut(8) {
                w.copy_from_slice(&rng.next().to_le_bytes());
            }
            iu[0] = [0x00, 0x01, 0x02, 0x02, 0x02, 0x03, 0x55][(rng.next() % 7) as usize];
            iu[5] &= 0x33;
            iu[6] %= 16;
            iu[7] %= 16;
            iu[31] &= 0x7c;
            // Descriptor addresses: mostly inside the mapped buffers.
            let va = match rng.next() % 4 {
                0 => DATA + rng.next() % 0x8000,
                1 => rng.next() % (OUTSIDE * 2),
                2 => TABLE,
                _ => rng.next(),
            };
            iu[48..56].copy_from_slice(&va.to_be_bytes());
            iu[32] = [
                0x28, 0x2a, 0x88, 0x8a, 0x12, 0xa0, 0x1a, 0x25, 0x9e, 0x00, 0x35,
            ][(rng.next() % 11) as usize];
            let format = if rng.next().is_multiple_of(5) { 2 } else { 1 };
            let len = [256u16, 64, 16, 300][(rng.next() % 4) as usize];
            wr(IU, &iu);
            let (r, e) = c.request(format, len, IU);
            // The IU may be an I_LOGOUT (no answer); anything answered is a
            // response entry.
            if r != 0 || e.is_some_and(|e| e[0] != 0x80) {
                odd += 1;
            }
        }
        check(
            "random-ius",
            odd == 0,
            format_args!("{} odd of {}", odd, rounds),
        );
        // Log in again after whatever the random IUs did.
        srp(&mut c, &login);

        // -- overflow: responses nobody takes --
        wr(QUEUE, &[0u8; 4096]);
        hcall(H_FREE_CRQ, &[unit]);
        let r = c.register();
        c.send(0xc001_0000_0000_0000, 0);
        let mut sent = 0u32;
        let mut last = 0;
        for _ in 0..400 {
            wr(IU, &cmd(0, &[0x00]));
            last = c.send(0x8001_0000_0000_0100, IU);
            if last != 0 {
                break;
            }
            sent += 1;
        }
        // INIT COMPLETE took one of the 256 slots.
        check(
            "overflow-dropped",
            r == 0 && sent == 255 && last == H_DROPPED,
            format_args!("{} sent, then {}", sent, last),
        );
        wr(QUEUE, &[0u8; 4096]);
        c.next = (c.next + 256) % 256;
        let r = c.send(0x8001_0000_0000_0100, IU);
        check("after-overflow", r == 0, format_args!("{}", r));

        // -- free: closed again --
        check(
            "free-crq",
            hcall(H_FREE_CRQ, &[unit]).0 == 0,
            format_args!(""),
        );
        let r = c.send(0x8001_0000_0000_0100, IU);
        check("send-after-free", r == H_CLOSED, format_args!("{}", r));
        finish();
    }
}
