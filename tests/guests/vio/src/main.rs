//! VIO guest (tests/manifests/vio.toml): three ibmveth adapters (units
//! 0x71000001 and 0x71000002 on VLAN 1, 0x71000003 on VLAN 2). It checks the
//! device tree, the TCE hcalls (H_PUT_TCE, H_GET_TCE, H_STUFF_TCE,
//! H_PUT_TCE_INDIRECT), H_VIO_SIGNAL and the LAN hcalls with good and bad
//! arguments against the PAPR codes docs/vio.md lists; sends frames between
//! its own two VLAN-1 adapters (a unicast, a broadcast the VLAN-2 adapter must
//! not see, a jumbo frame, a frame to a full receiver that is dropped and
//! counted); then throws random arguments at the same calls, which must only
//! ever answer PAPR codes.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod guest {
    use paprika_guest_rt::*;

    const H_GET_TCE: u64 = 0x1c;
    const H_PUT_TCE: u64 = 0x20;
    const H_STUFF_TCE: u64 = 0x138;
    const H_PUT_TCE_INDIRECT: u64 = 0x13c;
    const H_VIO_SIGNAL: u64 = 0x104;
    const H_REGISTER_LOGICAL_LAN: u64 = 0x114;
    const H_FREE_LOGICAL_LAN: u64 = 0x118;
    const H_ADD_LOGICAL_LAN_BUFFER: u64 = 0x11c;
    const H_SEND_LOGICAL_LAN: u64 = 0x120;
    const H_MULTICAST_CTRL: u64 = 0x130;
    const H_CHANGE_LOGICAL_LAN_MAC: u64 = 0x14c;
    const H_ILLAN_ATTRIBUTES: u64 = 0x244;

    const H_HARDWARE: i64 = -1;
    const H_DROPPED: i64 = -12;
    const H_RESOURCE: i64 = -16;

    const VTY: u64 = 0x7100_0000;
    /// The adapters' unit addresses (= their LIOBNs).
    const LAN: [u64; 3] = [0x7100_0001, 0x7100_0002, 0x7100_0003];
    const WINDOW: u64 = 256 << 20;
    const TCE_R: u64 = 1;
    const TCE_RW: u64 = 3;

    const BD_VALID: u64 = 1 << 63;
    const RXQ_TOGGLE: u32 = 0x8000_0000;
    const RXQ_VALID: u32 = 0x4000_0000;

    /// Pages per adapter: buffer list, filter, rx queue, 3 rx buffers, tx, spare.
    const PER: usize = 8;
    const BUF_LIST: u64 = 0;
    const FILTER: u64 = 1;
    const RXQ: u64 = 2;
    const RX0: u64 = 3;
    const TX: u64 = 6;
    const SPARE: u64 = 7;
    /// Jumbo pages (4 contiguous) for adapter 1's 16K buffer: IOBA 0x10000.
    const JUMBO_IOBA: u64 = 0x1_0000;

    #[repr(C, align(4096))]
    struct Pages([[u8; 4096]; 3 * PER + 4 + 1]);
    static mut PAGES: Pages = Pages([[0; 4096]; 3 * PER + 4 + 1]);

    /// Guest real address of page `n`.
    fn page(n: usize) -> u64 {
        (&raw mut PAGES) as u64 + (n as u64) * 4096
    }

    /// Guest real address of adapter `a`'s page `p`.
    fn apage(a: usize, p: u64) -> u64 {
        page(a * PER + p as usize)
    }

    fn jumbo() -> u64 {
        page(3 * PER)
    }

    /// The TCE-list page of H_PUT_TCE_INDIRECT.
    fn list_page() -> u64 {
        page(3 * PER + 4)
    }

    fn write(addr: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `addr` lies in PAGES (the callers' offsets stay inside).
            unsafe { core::ptr::write_volatile((addr + i as u64) as *mut u8, *b) };
        }
    }

    fn read(addr: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as for `write`.
            *b = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
        }
    }

    fn be32(addr: u64) -> u32 {
        let mut b = [0u8; 4];
        read(addr, &mut b);
        u32::from_be_bytes(b)
    }

    fn be64(addr: u64) -> u64 {
        let mut b = [0u8; 8];
        read(addr, &mut b);
        u64::from_be_bytes(b)
    }

    fn bd(ioba: u64, len: u64) -> u64 {
        BD_VALID | (len << 32) | ioba
    }

    fn mac(a: usize) -> [u8; 6] {
        [2, 0, 0, 0, 0x0a, a as u8 + 1]
    }

    fn mac_reg(m: [u8; 6]) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&m);
        u64::from_be_bytes(b)
    }

    fn expect(name: &str, got: i64, want: i64) {
        check(
            name,
            got == want,
            format_args!("returned {} (expected {})", got, want),
        );
    }

    fn call(op: u64, args: &[u64]) -> i64 {
        hcall(op, args).0
    }

    fn fdt_checks(fdt: &'static [u8]) {
        check(
            "fdt-l-lan-reg",
            fdt_u32(fdt, "/vdevice/l-lan", "reg") == Some(LAN[0] as u32),
            format_args!("no l-lan@71000001"),
        );
        let want: [u32; 5] = [LAN[0] as u32, 0, 0, 0, WINDOW as u32];
        let win = fdt_prop(fdt, "/vdevice/l-lan", "ibm,my-dma-window").unwrap_or(&[]);
        let ok = win.len() == 20
            && win
                .chunks_exact(4)
                .zip(want)
                .all(|(c, w)| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) == w);
        check("fdt-l-lan-dma-window", ok, format_args!("{:x?}", win));
        let irq = fdt_prop(fdt, "/vdevice/l-lan", "interrupts").unwrap_or(&[]);
        check(
            "fdt-l-lan-interrupts",
            irq == [0, 0, 0x10, 0x01, 0, 0, 0, 0],
            format_args!("{:x?}", irq),
        );
        check(
            "fdt-l-lan-mac",
            fdt_prop(fdt, "/vdevice/l-lan", "local-mac-address") == Some(&mac(0)[..]),
            format_args!(
                "{:x?}",
                fdt_prop(fdt, "/vdevice/l-lan", "local-mac-address")
            ),
        );
        check(
            "fdt-l-lan-filters",
            fdt_u32(fdt, "/vdevice/l-lan", "ibm,mac-address-filters").is_some(),
            format_args!("no ibm,mac-address-filters"),
        );
        let ht = fdt_prop(fdt, "/rtas", "ibm,hypertas-functions").unwrap_or(&[]);
        check(
            "fdt-hypertas-multi-tce",
            ht.windows(15).any(|w| w == b"hcall-multi-tce"),
            format_args!("no hcall-multi-tce"),
        );
    }

    fn tce_checks() {
        let l = LAN[0];
        let p = apage(0, SPARE);
        expect(
            "tce-put",
            call(H_PUT_TCE, &[l, 0x7000, p | TCE_RW]),
            H_SUCCESS,
        );
        let (rc, out) = hcall(H_GET_TCE, &[l, 0x7000]);
        check(
            "tce-get",
            rc == H_SUCCESS && out[0] == p | TCE_RW,
            format_args!("rc {} tce {:#x}", rc, out[0]),
        );
        expect(
            "tce-put-unknown-liobn",
            call(H_PUT_TCE, &[0x1234, 0, p | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-vty-liobn",
            call(H_PUT_TCE, &[VTY, 0, p | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-unaligned-ioba",
            call(H_PUT_TCE, &[l, 0x7008, p | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-beyond-window",
            call(H_PUT_TCE, &[l, WINDOW, p | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-huge-ioba",
            call(H_PUT_TCE, &[l, !0xfff, p | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-stray-bits",
            call(H_PUT_TCE, &[l, 0x7000, p | 0x804 | 1]),
            H_PARAMETER,
        );
        expect(
            "tce-put-beyond-memory",
            call(H_PUT_TCE, &[l, 0x7000, (64 << 20) | TCE_RW]),
            H_PARAMETER,
        );
        expect(
            "tce-put-host-address",
            call(H_PUT_TCE, &[l, 0x7000, 0x2000_0000 | TCE_RW]),
            H_PARAMETER,
        );
        // The failures changed nothing.
        check(
            "tce-unchanged",
            hcall(H_GET_TCE, &[l, 0x7000]).1[0] == p | TCE_RW,
            format_args!("entry changed"),
        );
        expect(
            "tce-get-beyond-window",
            call(H_GET_TCE, &[l, WINDOW]),
            H_PARAMETER,
        );
        expect(
            "tce-get-unknown-liobn",
            call(H_GET_TCE, &[0, 0]),
            H_PARAMETER,
        );
        // H_STUFF_TCE: no permission bits, inside the window.
        expect(
            "tce-stuff-rw",
            call(H_STUFF_TCE, &[l, 0x7000, TCE_R, 1]),
            H_PARAMETER,
        );
        expect(
            "tce-stuff-past-window",
            call(H_STUFF_TCE, &[l, WINDOW - 0x1000, 0, 2]),
            H_PARAMETER,
        );
        expect(
            "tce-stuff-wrap",
            call(H_STUFF_TCE, &[l, 0x7000, 0, u64::MAX]),
            H_PARAMETER,
        );
        expect(
            "tce-stuff",
            call(H_STUFF_TCE, &[l, 0x7000, 0, 1]),
            H_SUCCESS,
        );
        check(
            "tce-stuff-cleared",
            hcall(H_GET_TCE, &[l, 0x7000]).1[0] == 0,
            format_args!("entry not cleared"),
        );
        // H_PUT_TCE_INDIRECT: 512 at most, the list 4K-aligned and in memory, a
        // bad entry stores nothing.
        let list = list_page();
        let entries = [apage(0, SPARE) | TCE_RW, (64 << 20) | TCE_RW];
        for (i, e) in entries.iter().enumerate() {
            write(list + i as u64 * 8, &e.to_be_bytes());
        }
        expect(
            "tce-indirect-513",
            call(H_PUT_TCE_INDIRECT, &[l, 0x7000, list, 513]),
            H_PARAMETER,
        );
        expect(
            "tce-indirect-unaligned-list",
            call(H_PUT_TCE_INDIRECT, &[l, 0x7000, list + 8, 1]),
            H_PARAMETER,
        );
        expect(
            "tce-indirect-list-outside",
            call(H_PUT_TCE_INDIRECT, &[l, 0x7000, 64 << 20, 1]),
            H_PARAMETER,
        );
        expect(
            "tce-indirect-bad-entry",
            call(H_PUT_TCE_INDIRECT, &[l, 0x7000, list, 2]),
            H_PARAMETER,
        );
        check(
            "tce-indirect-atomic",
            hcall(H_GET_TCE, &[l, 0x7000]).1[0] == 0,
            format_args!("the good entry was stored"),
        );
        expect(
            "tce-indirect-past-window",
            call(H_PUT_TCE_INDIRECT, &[l, WINDOW - 0x1000, list, 2]),
            H_PARAMETER,
        );
        expect(
            "tce-indirect",
            call(H_PUT_TCE_INDIRECT, &[l, 0x7000, list, 1]),
            H_SUCCESS,
        );
        check(
            "tce-indirect-stored",
            hcall(H_GET_TCE, &[l, 0x7000]).1[0] == apage(0, SPARE) | TCE_RW,
            format_args!("entry not stored"),
        );
        expect(
            "vio-signal-unknown",
            call(H_VIO_SIGNAL, &[0x7100_0009, 1]),
            H_PARAMETER,
        );
        expect(
            "vio-signal-bad-mode",
            call(H_VIO_SIGNAL, &[l, 2]),
            H_PARAMETER,
        );
        expect("vio-signal-on", call(H_VIO_SIGNAL, &[l, 1]), H_SUCCESS);
        expect("vio-signal-off", call(H_VIO_SIGNAL, &[l, 0]), H_SUCCESS);
        expect("vio-signal-vty", call(H_VIO_SIGNAL, &[VTY, 1]), H_SUCCESS);
    }

    /// Maps adapter `a`'s pages at IOBA 0.. of its window (read+write), and
    /// adapter 1's jumbo pages at JUMBO_IOBA.
    fn map(a: usize) {
        let list = list_page();
        for i in 0..PER {
            write(
                list + i as u64 * 8,
                &(apage(a, i as u64) | TCE_RW).to_be_bytes(),
            );
        }
        expect(
            "map-window",
            call(H_PUT_TCE_INDIRECT, &[LAN[a], 0, list, PER as u64]),
            H_SUCCESS,
        );
        if a == 1 {
            for i in 0..4u64 {
                write(list + i * 8, &((jumbo() + i * 4096) | TCE_RW).to_be_bytes());
            }
            expect(
                "map-jumbo",
                call(H_PUT_TCE_INDIRECT, &[LAN[a], JUMBO_IOBA, list, 4]),
                H_SUCCESS,
            );
        }
    }

    const RXQ_LEN: u64 = 4096;

    fn register(a: usize) -> i64 {
        call(
            H_REGISTER_LOGICAL_LAN,
            &[
                LAN[a],
                BUF_LIST * 4096,
                bd(RXQ * 4096, RXQ_LEN),
                FILTER * 4096,
                mac_reg(mac(a)),
            ],
        )
    }

    /// Posts rx buffer `i` (page RX0 + i) of adapter `a`, its correlator `tag`.
    fn add(a: usize, i: u64, len: u64, tag: u64) -> i64 {
        write(apage(a, RX0 + i), &tag.to_be_bytes());
        call(
            H_ADD_LOGICAL_LAN_BUFFER,
            &[LAN[a], bd((RX0 + i) * 4096, len)],
        )
    }

    /// Adapter `a` sends an Ethernet frame to `dst` with `len` payload bytes of
    /// `fill` (from its TX page, two descriptors).
    fn send(a: usize, dst: [u8; 6], len: usize, fill: u8) -> i64 {
        let tx = apage(a, TX);
        write(tx, &dst);
        write(tx + 6, &mac(a));
        write(tx + 12, &[0x88, 0xb5]);
        for i in 0..len {
            write(tx + 14 + i as u64, &[fill]);
        }
        let total = 14 + len as u64;
        let bd0 = bd(TX * 4096, 14);
        let bd1 = bd(TX * 4096 + 14, total - 14);
        call(H_SEND_LOGICAL_LAN, &[LAN[a], bd0, bd1, 0, 0, 0, 0, 0])
    }

    /// Receive queue entry `n` of adapter `a`: (flags, length, correlator).
    fn entry(a: usize, n: u64) -> (u32, u32, u64) {
        let e = apage(a, RXQ) + n * 16;
        (be32(e), be32(e + 4), be64(e + 8))
    }

    fn lan_checks() {
        for a in 0..3 {
            map(a);
        }
        let l = LAN[0];
        // Closed adapter.
        expect("lan-send-closed", send(0, mac(1), 10, 1), H_DROPPED);
        expect(
            "lan-free-closed",
            call(H_FREE_LOGICAL_LAN, &[l]),
            H_RESOURCE,
        );
        expect("lan-add-closed", add(0, 0, 4096, 1), H_RESOURCE);
        // Bad registrations.
        let good_rxq = bd(RXQ * 4096, RXQ_LEN);
        let reg = |bl: u64, rxq: u64, fl: u64| call(H_REGISTER_LOGICAL_LAN, &[l, bl, rxq, fl, 0]);
        expect(
            "lan-register-unknown",
            call(H_REGISTER_LOGICAL_LAN, &[VTY, 0, good_rxq, 0x1000, 0]),
            H_PARAMETER,
        );
        expect(
            "lan-register-unaligned-list",
            reg(0x10, good_rxq, 0x1000),
            H_PARAMETER,
        );
        expect(
            "lan-register-unmapped-list",
            reg(0x80_0000, good_rxq, 0x1000),
            H_PARAMETER,
        );
        expect(
            "lan-register-unmapped-filter",
            reg(0, good_rxq, 0x80_0000),
            H_PARAMETER,
        );
        expect(
            "lan-register-invalid-rxq",
            reg(0, good_rxq & !BD_VALID, 0x1000),
            H_PARAMETER,
        );
        expect(
            "lan-register-unaligned-rxq",
            reg(0, good_rxq + 8, 0x1000),
            H_PARAMETER,
        );
        expect(
            "lan-register-unmapped-rxq",
            reg(0, bd(0x80_0000, 4096), 0x1000),
            H_PARAMETER,
        );
        expect(
            "lan-register-huge-rxq",
            reg(0, bd(RXQ * 4096, 0xff_fff0), 0x1000),
            H_PARAMETER,
        );
        // A read-only buffer list: the hypervisor must write it.
        expect(
            "tce-put-read-only",
            call(H_PUT_TCE, &[l, 0, apage(0, BUF_LIST) | TCE_R]),
            H_SUCCESS,
        );
        expect(
            "lan-register-read-only-list",
            reg(0, good_rxq, 0x1000),
            H_PARAMETER,
        );
        expect(
            "tce-put-rw-again",
            call(H_PUT_TCE, &[l, 0, apage(0, BUF_LIST) | TCE_RW]),
            H_SUCCESS,
        );
        for a in 0..3 {
            expect("lan-register", register(a), H_SUCCESS);
        }
        expect("lan-register-twice", register(0), H_RESOURCE);
        check(
            "lan-buffer-list-head",
            be64(apage(0, BUF_LIST)) == bd(RXQ * 4096, RXQ_LEN),
            format_args!("{:#x}", be64(apage(0, BUF_LIST))),
        );
        // Bad buffers.
        let addbd = |a: usize, b: u64| call(H_ADD_LOGICAL_LAN_BUFFER, &[LAN[a], b]);
        expect(
            "lan-add-invalid",
            addbd(0, bd(RX0 * 4096, 4096) & !BD_VALID),
            H_PARAMETER,
        );
        expect(
            "lan-add-unaligned",
            addbd(0, bd(RX0 * 4096 + 2, 64)),
            H_PARAMETER,
        );
        expect("lan-add-tiny", addbd(0, bd(RX0 * 4096, 8)), H_PARAMETER);
        expect(
            "lan-add-unmapped",
            addbd(0, bd(0x80_0000, 4096)),
            H_PARAMETER,
        );
        expect(
            "lan-add-past-mapping",
            addbd(0, bd(SPARE * 4096, 0x2000)),
            H_PARAMETER,
        );
        expect(
            "lan-add-past-window",
            addbd(0, bd(0xffff_f000, 0x2000)),
            H_PARAMETER,
        );
        // Bad sends.
        let sendbd = |b: &[u64]| {
            let mut args = [0u64; 8];
            args[0] = l;
            args[1..1 + b.len()].copy_from_slice(b);
            call(H_SEND_LOGICAL_LAN, &args)
        };
        expect(
            "lan-send-unmapped",
            sendbd(&[bd(0x80_0000, 60)]),
            H_PARAMETER,
        );
        expect("lan-send-short", sendbd(&[bd(TX * 4096, 6)]), H_PARAMETER);
        expect(
            "lan-send-huge-bd",
            sendbd(&[bd(TX * 4096, 0xff_ffff)]),
            H_RESOURCE,
        );
        let k40 = bd(0, 40 << 10);
        expect("lan-send-huge-total", sendbd(&[k40, k40]), H_RESOURCE);
        expect("lan-send-nothing", sendbd(&[0, 0]), H_SUCCESS);
        let mut args = [0u64; 8];
        args[0] = l;
        args[1] = bd(TX * 4096, 60);
        args[7] = 1;
        expect(
            "lan-send-token",
            call(H_SEND_LOGICAL_LAN, &args),
            H_HARDWARE,
        );
        // Other calls.
        expect(
            "lan-mcast-bad-flags",
            call(H_MULTICAST_CTRL, &[l, 0x100, 0]),
            H_PARAMETER,
        );
        expect(
            "lan-mcast-unicast-filter",
            call(H_MULTICAST_CTRL, &[l, 1, mac_reg(mac(0))]),
            H_PARAMETER,
        );
        expect(
            "lan-change-mac-multicast",
            call(H_CHANGE_LOGICAL_LAN_MAC, &[l, 0x0100_5e00_0001]),
            H_PARAMETER,
        );
        // Checksum offload offered (PADDED_PKT_CSUM), turned on and off;
        // large send is not offered (OFFER_LARGE_SEND, docs/vio.md).
        let (rc, out) = hcall(H_ILLAN_ATTRIBUTES, &[l, 0, 0]);
        check(
            "lan-illan-attributes",
            rc == H_SUCCESS && out[0] == 0x2000,
            format_args!("rc {} attrs {:#x}", rc, out[0]),
        );
        let (rc, out) = hcall(H_ILLAN_ATTRIBUTES, &[l, 0, 2]);
        check(
            "lan-illan-set-csum",
            rc == H_SUCCESS && out[0] == 0x2002,
            format_args!("rc {} attrs {:#x}", rc, out[0]),
        );
        expect(
            "lan-illan-large-send",
            call(H_ILLAN_ATTRIBUTES, &[l, 0, 0x1_0000]),
            H_PARAMETER,
        );
        // A large send (BD flags NO_CSUM|CSUM_GOOD|LRG_SND, MSS in r12) that
        // is no TCP segment, or names MSS 0: H_PARAMETER.
        let tx = apage(0, TX);
        write(tx, &mac(1));
        write(tx + 6, &mac(0));
        write(tx + 12, &[0x88, 0xb5]);
        let lso = bd(TX * 4096, 3000) | 7 << 56;
        expect(
            "lan-large-send-not-tcp",
            call(H_SEND_LOGICAL_LAN, &[l, lso, 0, 0, 0, 0, 0, 0, 1448]),
            H_PARAMETER,
        );
        expect(
            "lan-large-send-mss-0",
            call(H_SEND_LOGICAL_LAN, &[l, lso, 0, 0, 0, 0, 0, 0, 0]),
            H_PARAMETER,
        );
        expect(
            "lan-illan-clear-csum",
            call(H_ILLAN_ATTRIBUTES, &[l, 2, 0]),
            H_SUCCESS,
        );

        // Frames between adapters 0 and 1 (one partition, both on VLAN 1);
        // adapter 2 (VLAN 2) must see none of them.
        expect("lan-add", add(1, 0, 4096, 0xc0de_0001), H_SUCCESS);
        expect("lan-add-2", add(2, 0, 4096, 0xc0de_0002), H_SUCCESS);
        expect("lan-send-unicast", send(0, mac(1), 100, 0x5a), H_SUCCESS);
        let (flags, len, corr) = entry(1, 0);
        check(
            "lan-rx-entry",
            flags == RXQ_TOGGLE | RXQ_VALID | 8 && len == 114 && corr == 0xc0de_0001,
            format_args!("flags {:#x} len {} correlator {:#x}", flags, len, corr),
        );
        let mut got = [0u8; 114];
        read(apage(1, RX0) + 8, &mut got);
        check(
            "lan-rx-frame",
            got[..6] == mac(1) && got[6..12] == mac(0) && got[14..].iter().all(|&b| b == 0x5a),
            format_args!("{:x?}", &got[..16]),
        );
        // Adapter 1 has no buffer now: a broadcast is dropped there and
        // counted in its buffer list's last word; adapter 2 does not see it.
        expect("lan-send-broadcast", send(0, [0xff; 6], 20, 1), H_SUCCESS);
        check(
            "lan-rx-no-buffer-counted",
            be64(apage(1, BUF_LIST) + 4088) == 1,
            format_args!("{}", be64(apage(1, BUF_LIST) + 4088)),
        );
        check(
            "lan-vlan-isolated",
            entry(2, 0).0 == 0,
            format_args!("VLAN 2 got {:#x}", entry(2, 0).0),
        );
        // A jumbo frame into a 16K buffer.
        write(jumbo(), &0xc0de_0003u64.to_be_bytes());
        expect(
            "lan-add-jumbo",
            call(H_ADD_LOGICAL_LAN_BUFFER, &[LAN[1], bd(JUMBO_IOBA, 16384)]),
            H_SUCCESS,
        );
        let tx = apage(0, TX);
        write(tx, &mac(1));
        write(tx + 6, &mac(0));
        // 8000 bytes: adapter 0's IOBA 0x6000.. is its TX then SPARE page.
        let bd0 = bd(TX * 4096, 8000);
        expect(
            "lan-send-jumbo",
            call(H_SEND_LOGICAL_LAN, &[l, bd0, 0, 0, 0, 0, 0, 0]),
            H_SUCCESS,
        );
        let (flags, len, corr) = entry(1, 1);
        check(
            "lan-rx-jumbo",
            flags == RXQ_TOGGLE | RXQ_VALID | 8 && len == 8000 && corr == 0xc0de_0003,
            format_args!("flags {:#x} len {} correlator {:#x}", flags, len, corr),
        );
        // A receiver that unmapped its posted buffer: the frame is dropped,
        // the sender unaffected.
        expect(
            "lan-add-then-unmap",
            add(1, 1, 4096, 0xc0de_0004),
            H_SUCCESS,
        );
        expect(
            "tce-unmap-posted",
            call(H_STUFF_TCE, &[LAN[1], (RX0 + 1) * 4096, 0, 1]),
            H_SUCCESS,
        );
        expect("lan-send-to-unmapped", send(0, mac(1), 10, 2), H_SUCCESS);
        check(
            "lan-unmapped-not-delivered",
            entry(1, 2).0 == 0,
            format_args!("entry {:#x}", entry(1, 2).0),
        );
        // A forged source MAC is not delivered.
        expect("lan-add-3", add(1, 2, 4096, 0xc0de_0005), H_SUCCESS);
        write(tx, &mac(1));
        write(tx + 6, &[2, 0, 0, 0, 0x0b, 1]);
        expect(
            "lan-send-spoofed",
            call(
                H_SEND_LOGICAL_LAN,
                &[l, bd(TX * 4096, 60), 0, 0, 0, 0, 0, 0],
            ),
            H_SUCCESS,
        );
        check(
            "lan-spoofed-not-delivered",
            entry(1, 2).0 == 0,
            format_args!("entry {:#x}", entry(1, 2).0),
        );
        // After H_CHANGE_LOGICAL_LAN_MAC the new source is the port's own.
        expect(
            "lan-change-mac",
            call(
                H_CHANGE_LOGICAL_LAN_MAC,
                &[l, mac_reg([2, 0, 0, 0, 0x0b, 1])],
            ),
            H_SUCCESS,
        );
        expect(
            "lan-send-new-mac",
            call(
                H_SEND_LOGICAL_LAN,
                &[l, bd(TX * 4096, 60), 0, 0, 0, 0, 0, 0],
            ),
            H_SUCCESS,
        );
        check(
            "lan-new-mac-delivered",
            entry(1, 2).0 == RXQ_TOGGLE | RXQ_VALID | 8 && entry(1, 2).2 == 0xc0de_0005,
            format_args!("entry {:#x}", entry(1, 2).0),
        );
        expect("lan-free", call(H_FREE_LOGICAL_LAN, &[LAN[1]]), H_SUCCESS);
        expect(
            "lan-send-to-closed",
            send(0, [2, 0, 0, 0, 0x0a, 2], 10, 3),
            H_SUCCESS,
        );
        expect("lan-reregister", register(1), H_SUCCESS);
    }

    /// xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick(&mut self, v: &[u64]) -> u64 {
            v[(self.next() % v.len() as u64) as usize]
        }
    }

    /// Random arguments to the TCE and LAN calls: every answer must be a PAPR
    /// status (success or one of the documented errors), and the guest keeps
    /// running.
    fn fuzz(rounds: u32) {
        let mut rng = Rng(mftb() | 1);
        let ops = [
            H_GET_TCE,
            H_PUT_TCE,
            H_STUFF_TCE,
            H_PUT_TCE_INDIRECT,
            H_VIO_SIGNAL,
            H_REGISTER_LOGICAL_LAN,
            H_FREE_LOGICAL_LAN,
            H_ADD_LOGICAL_LAN_BUFFER,
            H_SEND_LOGICAL_LAN,
            H_MULTICAST_CTRL,
            H_CHANGE_LOGICAL_LAN_MAC,
            H_ILLAN_ATTRIBUTES,
        ];
        let ok = [H_SUCCESS, H_PARAMETER, H_RESOURCE, H_DROPPED, H_HARDWARE];
        let mut bad = 0u32;
        for _ in 0..rounds {
            let op = rng.pick(&ops);
            let r = rng.next();
            let unit = rng.pick(&[LAN[0], LAN[1], LAN[2], VTY, r, 0]);
            let mut args = [0u64; 8];
            args[0] = unit;
            for a in args.iter_mut().skip(1) {
                *a = match rng.next() % 6 {
                    0 => rng.next(),
                    1 => rng.next() & 0xffff_f000,
                    2 => BD_VALID | ((rng.next() % 0x2_0000) << 32) | (rng.next() % 0x1_0000),
                    // A TCE for one of this guest's DMA pages (never its code:
                    // a device may write what such a TCE names).
                    3 => page((rng.next() % (3 * PER as u64 + 5)) as usize) | (rng.next() & 3),
                    4 => list_page(),
                    _ => rng.next() % 0x1000,
                };
            }
            // The TCE list page holds random entries too: garbage (refused), or
            // this guest's DMA pages.
            let e = match rng.next() % 2 {
                0 => rng.next(),
                _ => page((rng.next() % (3 * PER as u64 + 5)) as usize) | (rng.next() & 3),
            };
            write(list_page() + (rng.next() % 512) * 8, &e.to_be_bytes());
            let rc = call(op, &args);
            if !ok.contains(&rc) {
                bad += 1;
                if bad < 5 {
                    println!(
                        "GUEST-FAIL fuzz: op {:#x} args {:x?} returned {}",
                        op, args, rc
                    );
                }
            }
        }
        check(
            "fuzz-only-papr-codes",
            bad == 0,
            format_args!("{} unexpected codes", bad),
        );
    }

    #[no_mangle]
    fn guest_main(fdt: &'static [u8]) -> ! {
        println!("hello from guest-vio");
        fdt_checks(fdt);
        tce_checks();
        lan_checks();
        fuzz(20_000);
        finish()
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
