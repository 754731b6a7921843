//! The ibmveth model and the switch on the host: ports in "partitions" whose
//! memory is a host buffer, each with its own TCE window.
use super::*;
use alloc::vec;
use core::cell::{Cell, RefCell};

const MEM: u64 = 16 << 20;
const WIN: u64 = 256 << 20;

struct Mem(RefCell<Vec<u8>>);

impl Mem {
    fn new() -> Mem {
        Mem(RefCell::new(vec![0u8; MEM as usize]))
    }
    fn bytes(&self, gra: u64, len: usize) -> Vec<u8> {
        self.0.borrow()[gra as usize..gra as usize + len].to_vec()
    }
    fn be32(&self, gra: u64) -> u32 {
        u32::from_be_bytes(self.bytes(gra, 4).try_into().unwrap())
    }
    fn be64(&self, gra: u64) -> u64 {
        u64::from_be_bytes(self.bytes(gra, 8).try_into().unwrap())
    }
}

impl DmaMemory for Mem {
    fn read(&self, gra: u64, out: &mut [u8]) -> Option<()> {
        let end = gra.checked_add(out.len() as u64)?;
        out.copy_from_slice(self.0.borrow().get(gra as usize..end as usize)?);
        Some(())
    }
    fn write(&self, gra: u64, data: &[u8]) -> Option<()> {
        let end = gra.checked_add(data.len() as u64)?;
        self.0
            .borrow_mut()
            .get_mut(gra as usize..end as usize)?
            .copy_from_slice(data);
        Some(())
    }
}

/// Guest layout of every test adapter (IOBA = guest real + 0x10_0000, so a
/// confusion of the two shows): buffer list, filter page, rx queue of 4
/// entries, rx buffers of 2K and 64 bytes, a transmit area.
const IOBA_OFF: u64 = 0x10_0000;
const BUF_LIST: u64 = 0x1000;
const FILTER: u64 = 0x2000;
const RXQ: u64 = 0x3000;
const RXQ_LEN: u32 = 4 * 16;
const BUFS: u64 = 0x4000;
const TX: u64 = 0x8_0000;

struct Port {
    port: RefCell<LlanPort>,
    tce: RefCell<TceTable>,
    /// Which memory (partition) the port is in.
    mem: usize,
}

struct Machine {
    mems: Vec<Mem>,
    ports: Vec<Port>,
    notified: RefCell<Vec<usize>>,
    locked: Cell<u32>,
    /// r12 of the next sends (the MSS of a large send).
    mss: Cell<u64>,
    /// The switch's policy for large frames (`send`'s `large_whole`).
    whole: Cell<bool>,
}

impl SwitchPorts for Machine {
    type Mem = Mem;
    fn count(&self) -> usize {
        self.ports.len()
    }
    fn vlan(&self, port: usize) -> u16 {
        self.ports[port].port.borrow().vlan
    }
    fn trunk(&self, port: usize) -> bool {
        self.ports[port].port.borrow().trunk
    }
    fn with_port<R>(
        &self,
        port: usize,
        f: &mut dyn FnMut(&mut LlanPort, &TceTable, &dyn DmaMemory) -> R,
    ) -> Option<R> {
        // Never two ports at once.
        assert_eq!(self.locked.get(), 0);
        self.locked.set(1);
        let p = &self.ports[port];
        let r = f(
            &mut p.port.borrow_mut(),
            &p.tce.borrow(),
            &self.mems[p.mem] as &dyn DmaMemory,
        );
        self.locked.set(0);
        Some(r)
    }
    fn notify(&self, port: usize) {
        assert_eq!(self.locked.get(), 0, "notified under a port lock");
        self.notified.borrow_mut().push(port);
    }
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

fn mac_reg(m: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&m);
    u64::from_be_bytes(b)
}

impl Machine {
    /// `spec`: (memory index, vlan, trunk) per port; memories as many as named.
    fn new(spec: &[(usize, u16, bool)]) -> Machine {
        let nmem = spec.iter().map(|s| s.0).max().unwrap_or(0) + 1;
        let mut ports = Vec::new();
        for (i, &(mem, vlan, trunk)) in spec.iter().enumerate() {
            let mut tce = TceTable::new(0x7100_0001, 0, WIN, 12, MEM).unwrap();
            // Each port of a shared memory gets its own 1 MiB region.
            let base = (i as u64) << 20;
            for pg in 0..(0x10_0000 >> 12) {
                tce.h_put_tce(IOBA_OFF + (pg << 12), (base + (pg << 12)) | 3)
                    .unwrap();
            }
            let mut port = LlanPort::new(mac(i as u8 + 1), vlan, trunk);
            port.offer_large_send();
            ports.push(Port {
                port: RefCell::new(port),
                tce: RefCell::new(tce),
                mem,
            });
        }
        Machine {
            mems: (0..nmem).map(|_| Mem::new()).collect(),
            ports,
            notified: RefCell::new(Vec::new()),
            locked: Cell::new(0),
            mss: Cell::new(0),
            whole: Cell::new(true),
        }
    }

    fn base(&self, port: usize) -> u64 {
        (port as u64) << 20
    }

    fn mem(&self, port: usize) -> &Mem {
        &self.mems[self.ports[port].mem]
    }

    fn register(&self, port: usize) -> Result<(), HcallError> {
        let p = &self.ports[port];
        let r = p.port.borrow_mut().h_register(
            &p.tce.borrow(),
            self.mem(port),
            IOBA_OFF + BUF_LIST,
            make_bd((IOBA_OFF + RXQ) as u32, RXQ_LEN) | BD_TOGGLE,
            IOBA_OFF + FILTER,
            0,
        );
        r
    }

    /// Posts buffer `i` of `size` bytes, its correlator 0xc0de0000 + i.
    fn add(&self, port: usize, i: u64, size: u32) -> Result<(), HcallError> {
        let gra = self.base(port) + BUFS + i * 0x1000;
        self.mem(port)
            .write(gra, &(0xc0de_0000 + i).to_be_bytes())
            .unwrap();
        let p = &self.ports[port];
        let r = p.port.borrow_mut().h_add_buffer(
            &p.tce.borrow(),
            make_bd((IOBA_OFF + BUFS + i * 0x1000) as u32, size),
        );
        r
    }

    fn open(&self, port: usize, bufs: u64) {
        self.register(port).unwrap();
        for i in 0..bufs {
            self.add(port, i, 2048).unwrap();
        }
    }

    /// Port `from` sends `payload` to `dst` (from its own MAC) in two BDs.
    fn send(&self, from: usize, dst: [u8; 6], payload: &[u8]) -> Result<SendReport, HcallError> {
        let src = self.ports[from].port.borrow().mac;
        let mut frame = Vec::new();
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(payload);
        self.send_raw(from, &frame)
    }

    fn send_raw(&self, from: usize, frame: &[u8]) -> Result<SendReport, HcallError> {
        let gra = self.base(from) + TX;
        self.mem(from).write(gra, frame).unwrap();
        let split = frame.len().min(20) as u32;
        let rest = frame.len() as u32 - split;
        let mut bds = [0u64; SEND_BDS];
        bds[1] = make_bd((IOBA_OFF + TX) as u32, split);
        if rest > 0 {
            bds[2] = make_bd((IOBA_OFF + TX) as u32 + split, rest);
        }
        self.send_bds(from, &bds)
    }

    fn send_bds(&self, from: usize, bds: &[u64; SEND_BDS]) -> Result<SendReport, HcallError> {
        let p = &self.ports[from];
        if !p.port.borrow().is_open() {
            return Err(HcallError::Dropped);
        }
        let frame = gather(&p.tce.borrow(), self.mem(from), bds, 0, self.mss.get())?;
        let Some(frame) = frame else {
            return Ok(SendReport::default());
        };
        if !p.port.borrow_mut().may_send(&frame)? {
            return Ok(SendReport::default());
        }
        let mut bounce = [0u8; 256];
        let r = send(
            self,
            from,
            &frame,
            self.mem(from),
            &mut bounce,
            self.whole.get(),
        );
        p.port.borrow_mut().sent(r);
        Ok(r)
    }

    /// Queue entry `n` of `port`: (flags, length, correlator).
    fn entry(&self, port: usize, n: u64) -> (u32, u32, u64) {
        let a = self.base(port) + RXQ + n * 16;
        let m = self.mem(port);
        (m.be32(a), m.be32(a + 4), m.be64(a + 8))
    }

    fn rx(&self, port: usize) -> PortStats {
        self.ports[port].port.borrow().stats
    }
}

#[test]
fn register_checks_and_layout() {
    let m = Machine::new(&[(0, 1, false)]);
    let p = &m.ports[0];
    let tce = p.tce.borrow();
    let mem = m.mem(0);
    let reg = |bl: u64, rxq: u64, fl: u64| {
        let mut port = LlanPort::new(mac(9), 1, false);
        port.h_register(&tce, mem, bl, rxq, fl, 0)
    };
    let rxq = make_bd((IOBA_OFF + RXQ) as u32, RXQ_LEN);
    // Unaligned or unmapped buffer list and filter pages.
    assert_eq!(
        reg(IOBA_OFF + 0x1008, rxq, IOBA_OFF + FILTER),
        Err(HcallError::Parameter)
    );
    assert_eq!(
        reg(0x1000, rxq, IOBA_OFF + FILTER),
        Err(HcallError::Parameter)
    );
    assert_eq!(
        reg(IOBA_OFF + BUF_LIST, rxq, 0x2000),
        Err(HcallError::Parameter)
    );
    assert_eq!(
        reg(1 << 40, rxq, IOBA_OFF + FILTER),
        Err(HcallError::Parameter)
    );
    // Queue: not valid, unaligned, unmapped, empty.
    let (bl, fl) = (IOBA_OFF + BUF_LIST, IOBA_OFF + FILTER);
    assert_eq!(reg(bl, rxq & !BD_VALID, fl), Err(HcallError::Parameter));
    assert_eq!(reg(bl, rxq + 8, fl), Err(HcallError::Parameter));
    assert_eq!(reg(bl, make_bd(0x3000, 64), fl), Err(HcallError::Parameter));
    assert_eq!(
        reg(bl, make_bd((IOBA_OFF + RXQ) as u32, 0), fl),
        Err(HcallError::Parameter)
    );
    drop(tce);
    // A good registration, then a second one.
    mem.write(RXQ, &[0xaa; 64]).unwrap();
    assert_eq!(m.register(0), Ok(()));
    assert_eq!(m.register(0), Err(HcallError::Resource));
    assert_eq!(
        mem.be64(BUF_LIST),
        make_bd((IOBA_OFF + RXQ) as u32, RXQ_LEN)
    );
    assert_eq!(
        mem.be64(BUF_LIST + 8),
        make_bd((IOBA_OFF + FILTER) as u32, 4096)
    );
    assert_eq!(mem.bytes(RXQ, 64), [0u8; 64]);
    // Free, free again, register again.
    assert_eq!(p.port.borrow_mut().h_free(), Ok(()));
    assert_eq!(p.port.borrow_mut().h_free(), Err(HcallError::Resource));
    assert_eq!(m.register(0), Ok(()));
}

#[test]
fn add_buffer_checks_and_pools() {
    let m = Machine::new(&[(0, 1, false)]);
    let p = &m.ports[0];
    let add = |bd: u64| p.port.borrow_mut().h_add_buffer(&p.tce.borrow(), bd);
    let good = make_bd((IOBA_OFF + BUFS) as u32, 512);
    // Closed.
    assert_eq!(add(good), Err(HcallError::Resource));
    m.register(0).unwrap();
    assert_eq!(add(good & !BD_VALID), Err(HcallError::Parameter));
    assert_eq!(add(good + 2), Err(HcallError::Parameter));
    assert_eq!(
        add(make_bd((IOBA_OFF + BUFS) as u32, 12)),
        Err(HcallError::Parameter)
    );
    assert_eq!(
        add(make_bd((IOBA_OFF + BUFS) as u32, 514)),
        Err(HcallError::Parameter)
    );
    assert_eq!(add(make_bd(0x4000, 512)), Err(HcallError::Parameter));
    assert_eq!(
        add(make_bd((IOBA_OFF + 0xf_f000) as u32, 0x2000)),
        Err(HcallError::Parameter)
    );
    // Five sizes, then a sixth is refused.
    for size in [512u32, 2048, 16, 64, 1024] {
        assert_eq!(add(make_bd((IOBA_OFF + BUFS) as u32, size)), Ok(()));
    }
    assert_eq!(
        add(make_bd((IOBA_OFF + BUFS) as u32, 128)),
        Err(HcallError::Resource)
    );
    assert_eq!(p.port.borrow().rx_buffers(), 5);
    // A pool holds RX_POOL_MAX.
    for _ in 1..RX_POOL_MAX {
        add(good).unwrap();
    }
    assert_eq!(add(good), Err(HcallError::Resource));
}

#[test]
fn unicast_between_partitions() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 2);
    m.open(1, 2);
    let r = m.send(0, mac(2), b"hello, partition 2").unwrap();
    assert_eq!(
        r,
        SendReport {
            delivered: 1,
            dropped: 0
        }
    );
    assert_eq!(*m.notified.borrow(), [1]);
    // The last posted buffer (1) was used: the frame at +8, the entry.
    let (flags, len, corr) = m.entry(1, 0);
    assert_eq!(flags, RXQ_TOGGLE | RXQ_VALID | 8);
    assert_eq!(len, 14 + 18);
    let buf = m.base(1) + BUFS + (corr - 0xc0de_0000) * 0x1000;
    let got = m.mem(1).bytes(buf + 8, 32);
    assert_eq!(&got[..6], &mac(2));
    assert_eq!(&got[6..12], &mac(1));
    assert_eq!(&got[14..], b"hello, partition 2");
    // Nothing reached the sender.
    assert_eq!(m.entry(0, 0).0, 0);
    assert_eq!(m.rx(1).rx_frames, 1);
    assert_eq!(m.rx(0).tx_frames, 1);
    // Unknown unicast: nobody (no trunk), counted.
    let r = m.send(0, mac(7), b"x").unwrap();
    assert_eq!(r, SendReport::default());
    assert_eq!(m.rx(0).tx_unrouted, 1);
}

#[test]
fn two_adapters_of_one_partition_reach_each_other() {
    // Ports 0 and 1 share memory 0 (one partition with two adapters); port 2
    // is another partition.
    let m = Machine::new(&[(0, 1, false), (0, 1, false), (1, 1, false)]);
    for p in 0..3 {
        m.open(p, 2);
    }
    assert_eq!(m.send(0, mac(2), b"to my twin").unwrap().delivered, 1);
    assert_eq!(m.rx(1).rx_frames, 1);
    assert_eq!(m.send(1, mac(1), b"and back").unwrap().delivered, 1);
    assert_eq!(m.rx(0).rx_frames, 1);
    let (_, len, _) = m.entry(0, 0);
    assert_eq!(len, 14 + 8);
    assert_eq!(m.rx(2).rx_frames, 0);
    // Broadcast from one reaches the twin and the other partition.
    assert_eq!(m.send(0, BROADCAST, b"arp").unwrap().delivered, 2);
    assert_eq!(*m.notified.borrow(), [1, 0, 1, 2]);
}

#[test]
fn vlans_isolate() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false), (2, 2, false), (3, 2, true)]);
    for p in 0..4 {
        m.open(p, 2);
    }
    // Broadcast, multicast and unicast to a MAC on the other VLAN, and
    // unknown unicast (the trunk is on VLAN 2): nothing crosses.
    m.send(0, BROADCAST, b"b").unwrap();
    m.send(0, [0x33, 0x33, 0, 0, 0, 1], b"m").unwrap();
    m.send(0, mac(3), b"u").unwrap();
    m.send(0, mac(99), b"?").unwrap();
    assert_eq!(m.rx(1).rx_frames, 2);
    assert_eq!(m.rx(2).rx_frames, 0);
    assert_eq!(m.rx(3).rx_frames, 0);
    assert_eq!(m.entry(2, 0).0, 0);
    // On VLAN 2 unknown unicast goes to the trunk only.
    assert_eq!(m.send(2, mac(99), b"?").unwrap().delivered, 1);
    assert_eq!(m.rx(3).rx_frames, 1);
    assert_eq!(m.rx(0).rx_frames + m.rx(1).rx_frames, 2);
    // A known unicast does not also go to the trunk.
    m.send(3, mac(3), b"x").unwrap();
    assert_eq!(m.rx(2).rx_frames, 1);
    assert_eq!(m.send(2, mac(4), b"y").unwrap().delivered, 1);
    assert_eq!(m.rx(3).rx_frames, 2);
}

#[test]
fn multicast_filters() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.open(1, 8);
    let group = [0x01, 0x00, 0x5e, 0, 0, 0xfb];
    let ctrl = |flags: u64, mac: u64| m.ports[1].port.borrow_mut().h_multicast_ctrl(flags, mac);
    // Default after registration: all multicast.
    assert_eq!(m.send(0, group, b"1").unwrap().delivered, 1);
    // Filtering on with an empty table: not taken; broadcast still is.
    ctrl(MCAST_FILTER_MODIFY | MCAST_FILTER_ENABLE, 0).unwrap();
    assert_eq!(m.send(0, group, b"2").unwrap().delivered, 0);
    assert_eq!(m.send(0, BROADCAST, b"3").unwrap().delivered, 1);
    ctrl(MCAST_ADD, mac_reg(group)).unwrap();
    assert_eq!(m.send(0, group, b"4").unwrap().delivered, 1);
    ctrl(MCAST_REMOVE, mac_reg(group)).unwrap();
    assert_eq!(m.send(0, group, b"5").unwrap().delivered, 0);
    // Reception off: no multicast at all, even unfiltered.
    ctrl(MCAST_FILTER_MODIFY | MCAST_RECEPTION_MODIFY, 0).unwrap();
    assert_eq!(m.send(0, group, b"6").unwrap().delivered, 0);
    ctrl(MCAST_RECEPTION_MODIFY | MCAST_RECEPTION_ENABLE, 0).unwrap();
    assert_eq!(m.send(0, group, b"7").unwrap().delivered, 1);
    // Bad flags, unicast filter, a full table.
    assert_eq!(ctrl(0x100, 0), Err(HcallError::Parameter));
    assert_eq!(ctrl(MCAST_ADD, mac_reg(mac(1))), Err(HcallError::Parameter));
    for i in 0..MCAST_FILTERS as u64 {
        ctrl(MCAST_ADD, 0x0100_5e00_0000 + i).unwrap();
    }
    assert_eq!(ctrl(MCAST_ADD, 0x0100_5e00_1000), Err(HcallError::Resource));
    ctrl(MCAST_CLEAR, 0).unwrap();
    ctrl(MCAST_ADD, 0x0100_5e00_1000).unwrap();
}

#[test]
fn full_receiver_drops_and_counts() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.open(1, 1);
    assert_eq!(m.send(0, mac(2), b"first").unwrap().delivered, 1);
    // No buffer left: dropped, counted, the sender still succeeds.
    let r = m.send(0, mac(2), b"second").unwrap();
    assert_eq!(
        r,
        SendReport {
            delivered: 0,
            dropped: 1
        }
    );
    assert_eq!(m.rx(1).rx_no_buffer, 1);
    assert_eq!(m.mem(1).be64(m.base(1) + BUF_LIST + 4088), 1);
    assert_eq!(*m.notified.borrow(), [1]);
    // A frame larger than every buffer: dropped too.
    m.add(1, 5, 64).unwrap();
    assert_eq!(m.send(0, mac(2), &[7u8; 100]).unwrap().dropped, 1);
    assert_eq!(m.rx(1).rx_no_buffer, 2);
    // The smallest buffer that fits is taken.
    m.add(1, 6, 2048).unwrap();
    assert_eq!(m.send(0, mac(2), &[7u8; 20]).unwrap().delivered, 1);
    assert_eq!(m.entry(1, 1).2, 0xc0de_0005);
    // A closed receiver: nothing, not even a drop count.
    m.ports[1].port.borrow_mut().h_free().unwrap();
    assert_eq!(m.send(0, mac(2), b"x").unwrap(), SendReport::default());
}

#[test]
fn queue_wraps_and_toggles() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.open(1, 6);
    for _ in 0..4 {
        m.send(0, mac(2), b"fill").unwrap();
    }
    for n in 0..4 {
        assert_eq!(m.entry(1, n).0, RXQ_TOGGLE | RXQ_VALID | 8);
    }
    m.send(0, mac(2), b"wrap").unwrap();
    // Second pass: the toggle bit clear.
    assert_eq!(m.entry(1, 0).0, RXQ_VALID | 8);
    assert_eq!(m.entry(1, 1).0, RXQ_TOGGLE | RXQ_VALID | 8);
}

#[test]
fn send_checks() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    // Closed sender: H_DROPPED.
    assert_eq!(m.send(0, mac(2), b"x"), Err(HcallError::Dropped));
    m.open(0, 1);
    m.open(1, 4);
    let p = &m.ports[0];
    let tce = p.tce.borrow();
    let mem = m.mem(0);
    let tx = (IOBA_OFF + TX) as u32;
    let g = |bds: [u64; 6], token: u64| gather(&tce, mem, &bds, token, 0).map(|f| f.map(|f| f.len));
    assert_eq!(
        g([make_bd(tx, 60), 0, 0, 0, 0, 0], 1),
        Err(HcallError::Hardware)
    );
    assert_eq!(g([0; 6], 0), Ok(None));
    assert_eq!(
        g([0, 0, make_bd(tx, 60), make_bd(tx, 4), 0, 0], 0),
        Ok(Some(64))
    );
    // Stops at the first invalid descriptor.
    assert_eq!(
        g(
            [
                make_bd(tx, 60),
                make_bd(tx, 4) & !BD_VALID,
                make_bd(tx, 4),
                0,
                0,
                0
            ],
            0
        ),
        Ok(Some(60))
    );
    assert_eq!(
        g([make_bd(tx, 10), 0, 0, 0, 0, 0], 0),
        Err(HcallError::Parameter)
    );
    // Unmapped, or beyond the window.
    assert_eq!(
        g([make_bd(0x8_0000, 60), 0, 0, 0, 0, 0], 0),
        Err(HcallError::Parameter)
    );
    assert_eq!(
        g([make_bd(u32::MAX - 8, 60), 0, 0, 0, 0, 0], 0),
        Err(HcallError::Parameter)
    );
    // Huge: over 64 KiB in total.
    let big = make_bd(tx, 0xff_ffff);
    assert_eq!(g([big, 0, 0, 0, 0, 0], 0), Err(HcallError::Resource));
    let k40 = make_bd(tx, 40 << 10);
    assert_eq!(g([k40, k40, 0, 0, 0, 0], 0), Err(HcallError::Resource));
    // The size is checked before the mapping (QEMU's order).
    let far = make_bd(0x8_0000, 40 << 10);
    assert_eq!(g([far, far, 0, 0, 0, 0], 0), Err(HcallError::Resource));
    drop(tce);
    // A forged source MAC from a non-trunk port: refused, counted.
    let mut frame = Vec::new();
    frame.extend_from_slice(&mac(2));
    frame.extend_from_slice(&mac(2));
    frame.extend_from_slice(&[0; 50]);
    assert_eq!(m.send_raw(0, &frame), Ok(SendReport::default()));
    assert_eq!(m.rx(0).tx_spoofed, 1);
    assert_eq!(m.rx(1).rx_frames, 0);
}

#[test]
fn mtu_9000_frame() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.register(1).ok();
    m.add(1, 0, 2048).unwrap();
    // A 16K buffer at 0x10000 for jumbo frames.
    let p = &m.ports[1];
    p.port
        .borrow_mut()
        .h_add_buffer(
            &p.tce.borrow(),
            make_bd((IOBA_OFF + 0x1_0000) as u32, 16384),
        )
        .unwrap();
    let payload: Vec<u8> = (0..9000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(m.send(0, mac(2), &payload).unwrap().delivered, 1);
    let (_, len, _) = m.entry(1, 0);
    assert_eq!(len, 9014);
    let got = m.mem(1).bytes(m.base(1) + 0x1_0000 + 8 + 14, 9000);
    assert_eq!(got, payload);
}

#[test]
fn mac_attributes_reset() {
    let mut p = LlanPort::new(mac(1), 1, false);
    assert_eq!(p.h_change_mac(mac_reg(mac(5))), Ok(()));
    assert_eq!(p.mac, mac(5));
    assert_eq!(
        p.h_change_mac(mac_reg([1, 0, 0, 0, 0, 1])),
        Err(HcallError::Parameter)
    );
    assert_eq!(p.h_change_mac(0), Err(HcallError::Parameter));
    assert_eq!(p.h_change_mac(1 << 60), Err(HcallError::Parameter));
    // Checksum offload offered, large send only once offered; turned on and
    // off as Linux does.
    assert_eq!(p.h_illan_attributes(0, 0), Ok(ILLAN_PADDED_PKT_CSUM));
    assert_eq!(
        p.h_illan_attributes(0, ILLAN_LRG_SR_ENABLED),
        Err(HcallError::Parameter)
    );
    p.offer_large_send();
    const OFFERED: u64 = ILLAN_PADDED_PKT_CSUM | ILLAN_LRG_SND_SUPPORT;
    assert_eq!(p.h_illan_attributes(0, 0), Ok(OFFERED));
    assert!(!p.csum_offload());
    assert_eq!(
        p.h_illan_attributes(0, ILLAN_IPV4_TCP_CSUM),
        Ok(OFFERED | ILLAN_IPV4_TCP_CSUM)
    );
    assert!(p.csum_offload());
    assert_eq!(
        p.h_illan_attributes(ILLAN_IPV4_TCP_CSUM, ILLAN_IPV6_TCP_CSUM),
        Ok(OFFERED | ILLAN_IPV6_TCP_CSUM)
    );
    assert!(!p.large_receive());
    assert_eq!(
        p.h_illan_attributes(0, ILLAN_LRG_SR_ENABLED),
        Ok(OFFERED | ILLAN_IPV6_TCP_CSUM | ILLAN_LRG_SR_ENABLED)
    );
    assert!(p.large_receive());
    // The trunk bit, unknown bits: refused, nothing changed.
    for bad in [ILLAN_ACTIVE_TRUNK, 1 << 40, ILLAN_LRG_SR_ENABLED | 1 << 40] {
        assert_eq!(p.h_illan_attributes(0, bad), Err(HcallError::Parameter));
    }
    assert_eq!(
        p.h_illan_attributes(0, 0),
        Ok(OFFERED | ILLAN_IPV6_TCP_CSUM | ILLAN_LRG_SR_ENABLED)
    );
    // Large receive without checksum offload: frames are cut for it.
    assert_eq!(
        p.h_illan_attributes(ILLAN_IPV6_TCP_CSUM, 0),
        Ok(OFFERED | ILLAN_LRG_SR_ENABLED)
    );
    assert!(!p.large_receive());
    p.reset();
    assert_eq!(p.mac, mac(1));
    assert!(!p.is_open());
    assert!(!p.csum_offload());
    assert_eq!(p.h_illan_attributes(0, 0), Ok(OFFERED));
    let mut t = LlanPort::new(mac(2), 1, true);
    t.offer_large_send();
    assert_eq!(t.h_illan_attributes(0, 0), Ok(ILLAN_ACTIVE_TRUNK));
    assert_eq!(
        t.h_illan_attributes(0, ILLAN_ACTIVE_TRUNK),
        Ok(ILLAN_ACTIVE_TRUNK)
    );
    for bad in [ILLAN_IPV4_TCP_CSUM, ILLAN_LRG_SR_ENABLED] {
        assert_eq!(t.h_illan_attributes(0, bad), Err(HcallError::Parameter));
    }
    // The trunk may send a foreign source MAC.
    let props = LlanPort::dt_props(mac(3));
    assert_eq!(props[0], ("local-mac-address", mac(3).to_vec()));
    assert_eq!(props[1].1, (MCAST_FILTERS as u32).to_be_bytes().to_vec());
    assert_eq!(props[2].0, "ibm,illan-options");
}

#[test]
fn bad_buffer_after_posting_is_a_counted_drop() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.open(1, 1);
    // The receiver unmaps its buffer's page after posting it.
    m.ports[1]
        .tce
        .borrow_mut()
        .h_stuff_tce(IOBA_OFF + BUFS, 0, 1)
        .unwrap();
    let r = m.send(0, mac(2), b"x").unwrap();
    assert_eq!(r.dropped, 1);
    assert_eq!(m.rx(1).rx_bad_buffer, 1);
    assert!(m.notified.borrow().is_empty());
}

/// An IPv4 TCP frame from `src` to `dst` with `payload`, its TCP checksum
/// zero (left out, as ibmveth sends with checksum offload).
fn tcp_frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 9, 0, 1, 10, 9, 0, 2]);
    // Ports 5001 -> 40000, seq, ack, offset 5, flags ACK|PSH, window,
    // checksum 0, urgent 0.
    f.extend_from_slice(&[
        0x13, 0x89, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// RFC 1071 verification, written out separately from the model's code: the
/// pseudo header and the segment with its checksum sum to 0xffff.
fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let seg = &frame[34..];
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&frame[26..34]);
    bytes.extend_from_slice(&[0, 6]);
    bytes.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    bytes.extend_from_slice(seg);
    sums_to_ffff(&bytes)
}

/// The RFC 1071 one's-complement sum of `bytes` (a zero byte padding an odd
/// length) is 0xffff: what a correct checksum inside them gives.
fn sums_to_ffff(bytes: &[u8]) -> bool {
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn checksum_offload_delivery() {
    // Port 1 turned offload on, port 2 did not.
    let m = Machine::new(&[(0, 1, false), (1, 1, false), (2, 1, false)]);
    m.open(0, 1);
    m.open(1, 2);
    m.open(2, 2);
    m.ports[1]
        .port
        .borrow_mut()
        .h_illan_attributes(0, ILLAN_IPV4_TCP_CSUM)
        .unwrap();
    let payload: Vec<u8> = (0..1001u32).map(|i| (i * 13 + 7) as u8).collect();
    for to in [1usize, 2] {
        let frame = tcp_frame(mac(to as u8 + 1), mac(1), &payload);
        assert!(!tcp_checksum_ok(&frame));
        let gra = m.base(0) + TX;
        m.mem(0).write(gra, &frame).unwrap();
        let mut bds = [0u64; SEND_BDS];
        bds[0] = make_bd((IOBA_OFF + TX) as u32, frame.len() as u32) | BD_NO_CSUM | BD_CSUM_GOOD;
        assert_eq!(m.send_bds(0, &bds).unwrap().delivered, 1);
        let (flags, len, corr) = m.entry(to, 0);
        assert_eq!(len as usize, frame.len());
        let buf = m.base(to) + BUFS + (corr - 0xc0de_0000) * 0x1000 + 8;
        let got = m.mem(to).bytes(buf, frame.len());
        if to == 1 {
            // Offload on: the frame as sent, flagged.
            assert_eq!(
                flags,
                RXQ_TOGGLE | RXQ_VALID | RXQ_NO_CSUM | RXQ_CSUM_GOOD | 8
            );
            assert_eq!(got, frame);
        } else {
            // Offload off: the checksum filled in, nothing else changed.
            assert_eq!(flags, RXQ_TOGGLE | RXQ_VALID | 8);
            assert!(tcp_checksum_ok(&got));
            assert_eq!(got[..50], frame[..50]);
            assert_eq!(got[52..], frame[52..]);
        }
    }
    assert_eq!(m.rx(0).tx_no_csum, 2);
    assert_eq!((m.rx(1).rx_csum_filled, m.rx(2).rx_csum_filled), (0, 1));
    // A frame with its checksum in (no NO_CSUM): untouched for both.
    let mut frame = tcp_frame(mac(3), mac(1), b"x");
    frame[50] = 0x12;
    frame[51] = 0x34;
    m.send_raw(0, &frame).unwrap();
    let (flags, _, corr) = m.entry(2, 1);
    assert_eq!(flags, RXQ_TOGGLE | RXQ_VALID | 8);
    let buf = m.base(2) + BUFS + (corr - 0xc0de_0000) * 0x1000 + 8;
    assert_eq!(m.mem(2).bytes(buf, frame.len()), frame);
}

#[test]
fn checksum_of_ipv6_and_non_tcp() {
    let mut t = TceTable::new(1, 0, WIN, 12, MEM).unwrap();
    t.h_put_tce(0, 0x3000 | 3).unwrap();
    let mem = Mem::new();
    // IPv6 TCP: checked with the IPv6 pseudo header.
    let mut f = vec![0u8; 14 + 40 + 20 + 5];
    f[12] = 0x86;
    f[13] = 0xdd;
    f[14] = 0x60;
    f[18..20].copy_from_slice(&25u16.to_be_bytes());
    f[20] = 6;
    for (i, b) in f[22..54].iter_mut().enumerate() {
        *b = i as u8 * 3;
    }
    f[54 + 12] = 0x50;
    f[74..].copy_from_slice(b"hello");
    mem.write(0x3000, &f).unwrap();
    assert!(fill_tcp_checksum(&t, &mem, 0, f.len() as u64));
    let got = mem.bytes(0x3000, f.len());
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&got[22..54]);
    bytes.extend_from_slice(&[0, 0, 0, 25, 0, 0, 0, 6]);
    bytes.extend_from_slice(&got[54..]);
    assert!(sums_to_ffff(&bytes));
    // UDP, ARP, truncated: left alone.
    let mut udp = tcp_frame(mac(1), mac(2), b"abc");
    udp[23] = 17;
    mem.write(0x3000, &udp).unwrap();
    assert!(!fill_tcp_checksum(&t, &mem, 0, udp.len() as u64));
    let mut arp = udp.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    mem.write(0x3000, &arp).unwrap();
    assert!(!fill_tcp_checksum(&t, &mem, 0, arp.len() as u64));
    let tcp = tcp_frame(mac(1), mac(2), b"abc");
    mem.write(0x3000, &tcp).unwrap();
    assert!(!fill_tcp_checksum(&t, &mem, 0, 40));
    // An IPv4 length past the frame: left alone.
    assert!(!fill_tcp_checksum(&t, &mem, 0, tcp.len() as u64 - 1));
}

/// Turns on what Linux's ibmveth turns on at probe: checksum offload, and
/// large send/receive when `large`.
fn offload(m: &Machine, port: usize, large: bool) {
    let set =
        ILLAN_IPV4_TCP_CSUM | ILLAN_IPV6_TCP_CSUM | if large { ILLAN_LRG_SR_ENABLED } else { 0 };
    m.ports[port]
        .port
        .borrow_mut()
        .h_illan_attributes(0, set)
        .unwrap();
}

/// Sends `frame` from `from` in one BD flagged as ibmveth flags a TSO frame,
/// with `mss` in r12.
fn send_large(
    m: &Machine,
    from: usize,
    frame: &[u8],
    flags: u64,
    mss: u64,
) -> Result<SendReport, HcallError> {
    let gra = m.base(from) + TX;
    m.mem(from).write(gra, frame).unwrap();
    let mut bds = [0u64; SEND_BDS];
    bds[0] = make_bd((IOBA_OFF + TX) as u32, frame.len() as u32) | flags;
    m.mss.set(mss);
    let r = m.send_bds(from, &bds);
    m.mss.set(0);
    r
}

const LSO: u64 = BD_NO_CSUM | BD_CSUM_GOOD | BD_LRG_SND;

/// The IPv4 header checksum of a frame's header sums to 0xffff.
fn ip_checksum_ok(frame: &[u8]) -> bool {
    sums_to_ffff(&frame[14..34])
}

#[test]
fn large_send_delivery_rules() {
    // 0 sends; 1 has large receive on; 2 checksum offload only; 3 neither.
    let m = Machine::new(&[(0, 1, false), (1, 1, false), (2, 1, false), (3, 1, false)]);
    for port in 0..4 {
        m.open(port, 3);
    }
    offload(&m, 0, true);
    offload(&m, 1, true);
    offload(&m, 2, false);
    m.add(1, 8, 4096).unwrap();
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut frame = tcp_frame(BROADCAST, mac(1), &payload);
    // IP ID 0x1234, header checksum of the large frame left stale; FIN and
    // CWR on besides ACK|PSH.
    frame[18..20].copy_from_slice(&[0x12, 0x34]);
    frame[47] |= 0x01 | 0x80;
    let r = send_large(&m, 0, &frame, LSO, 1000).unwrap();
    assert_eq!(
        r,
        SendReport {
            delivered: 3,
            dropped: 0
        }
    );
    assert_eq!(m.rx(0).tx_large, 1);
    // Large receive: the frame whole, its MSS at buffer + 8, data at + 16.
    let (flags, len, corr) = m.entry(1, 0);
    assert_eq!(
        flags,
        RXQ_TOGGLE | RXQ_VALID | RXQ_LRG_PKT | RXQ_NO_CSUM | RXQ_CSUM_GOOD | 16
    );
    assert_eq!(len as usize, frame.len());
    let buf = m.base(1) + BUFS + (corr - 0xc0de_0000) * 0x1000;
    assert_eq!(corr, 0xc0de_0008);
    assert_eq!(m.mem(1).be64(buf + 8), 1000);
    assert_eq!(m.mem(1).bytes(buf + 16, frame.len()), frame);
    assert_eq!((m.rx(1).rx_large, m.rx(1).rx_frames), (1, 1));
    // Ports 2 and 3: three segments of 1000, 1000 and 500 bytes.
    for to in [2usize, 3] {
        let mut data = Vec::new();
        for i in 0..3u64 {
            let (flags, len, corr) = m.entry(to, i);
            let n = if i < 2 { 1000 } else { 500 };
            assert_eq!(len as usize, 54 + n);
            let csum = if to == 2 {
                RXQ_NO_CSUM | RXQ_CSUM_GOOD
            } else {
                0
            };
            assert_eq!(flags, RXQ_TOGGLE | RXQ_VALID | csum | 8);
            let buf = m.base(to) + BUFS + (corr - 0xc0de_0000) * 0x1000 + 8;
            let seg = m.mem(to).bytes(buf, len as usize);
            // Addresses and ports as sent.
            assert_eq!(seg[..14], frame[..14]);
            assert_eq!(seg[26..38], frame[26..38]);
            assert_eq!(u16::from_be_bytes([seg[16], seg[17]]) as usize, 40 + n);
            assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 0x1234 + i as u16);
            assert!(ip_checksum_ok(&seg));
            let seq = u32::from_be_bytes(seg[38..42].try_into().unwrap());
            assert_eq!(seq, 1 + 1000 * i as u32);
            let tcp_flags = match i {
                0 => 0x10 | 0x80,
                1 => 0x10,
                _ => 0x10 | 0x08 | 0x01,
            };
            assert_eq!(seg[47], tcp_flags, "segment {i}");
            if to == 2 {
                assert_eq!(seg[50..52], [0, 0]);
            } else {
                assert!(tcp_checksum_ok(&seg), "segment {i}");
            }
            data.extend_from_slice(&seg[54..]);
        }
        assert_eq!(data, payload);
        let s = m.rx(to);
        assert_eq!((s.rx_segmented, s.rx_frames, s.rx_large), (1, 3, 0));
    }
    assert_eq!(m.rx(3).rx_csum_filled, 3);
    assert_eq!(m.rx(2).rx_csum_filled, 0);
}

#[test]
fn large_send_checks() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false), (2, 1, false)]);
    m.open(0, 1);
    m.open(1, 4);
    m.open(2, 1);
    let payload = vec![0x5a; 3000];
    let frame = tcp_frame(mac(2), mac(1), &payload);
    // Large send before the driver turned it on: H_PARAMETER.
    offload(&m, 0, false);
    assert_eq!(
        send_large(&m, 0, &frame, LSO, 1448),
        Err(HcallError::Parameter)
    );
    offload(&m, 0, true);
    // Without NO_CSUM, or an MSS out of range: H_PARAMETER.
    assert_eq!(
        send_large(&m, 0, &frame, BD_LRG_SND, 1448),
        Err(HcallError::Parameter)
    );
    for mss in [0, 1, MIN_MSS - 1, 65536, 1 << 40] {
        assert_eq!(
            send_large(&m, 0, &frame, LSO, mss),
            Err(HcallError::Parameter),
            "mss {mss}"
        );
    }
    // Not one TCP segment over IPv4/IPv6 with matching lengths: H_PARAMETER.
    let mut bad = Vec::new();
    let mut udp = frame.clone();
    udp[23] = 17;
    bad.push(udp);
    let mut arp = frame.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    bad.push(arp);
    let mut short_ip = frame.clone();
    short_ip[16..18].copy_from_slice(&100u16.to_be_bytes());
    bad.push(short_ip);
    let mut fragment = frame.clone();
    fragment[20] |= 0x20;
    bad.push(fragment);
    let mut doff = frame.clone();
    doff[46] = 0x40;
    bad.push(doff);
    let mut ihl = frame.clone();
    ihl[14] = 0x44;
    bad.push(ihl);
    bad.push(frame[..14 + 20 + 10].to_vec());
    let mut v6 = frame.clone();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    bad.push(v6);
    for (i, f) in bad.iter().enumerate() {
        assert_eq!(
            send_large(&m, 0, f, LSO, 1000),
            Err(HcallError::Parameter),
            "frame {i}"
        );
    }
    assert_eq!(m.rx(1).rx_frames, 0);
    assert_eq!(m.rx(0).tx_large, 0);
    // A large send of at most one MSS is an ordinary frame.
    let small = tcp_frame(mac(2), mac(1), &payload[..1000]);
    assert_eq!(send_large(&m, 0, &small, LSO, 1000).unwrap().delivered, 1);
    let (flags, len, _) = m.entry(1, 0);
    assert_eq!(
        (flags, len as usize),
        (RXQ_TOGGLE | RXQ_VALID | 8, small.len())
    );
    assert_eq!(m.rx(0).tx_large, 0);
    // Large receive on but no buffer that holds the frame + 16: dropped and
    // counted, never cut.
    offload(&m, 1, true);
    assert_eq!(
        send_large(&m, 0, &frame, LSO, 1000).unwrap(),
        SendReport {
            delivered: 0,
            dropped: 1
        }
    );
    assert_eq!((m.rx(1).rx_no_buffer, m.rx(1).rx_frames), (1, 1));
    // Segments that do not fit the receiver's buffers: dropped, counted.
    m.add(2, 1, 512).unwrap();
    m.ports[2]
        .port
        .borrow_mut()
        .h_illan_attributes(0, ILLAN_IPV4_TCP_CSUM)
        .unwrap();
    let to2 = tcp_frame(mac(3), mac(1), &payload);
    assert_eq!(
        send_large(&m, 0, &to2, LSO, 1000).unwrap(),
        SendReport {
            delivered: 1,
            dropped: 0
        }
    );
    let s = m.rx(2);
    assert_eq!((s.rx_frames, s.rx_no_buffer, s.rx_segmented), (1, 2, 1));
}

#[test]
fn large_send_ipv6_segments() {
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.open(0, 1);
    m.open(1, 3);
    offload(&m, 0, true);
    // IPv6 TCP, 20-byte TCP header, 2100 bytes of payload, MSS 1000.
    let payload: Vec<u8> = (0..2100u32).map(|i| (i * 11) as u8).collect();
    let mut f = vec![0u8; 14 + 40 + 20];
    f[..6].copy_from_slice(&mac(2));
    f[6..12].copy_from_slice(&mac(1));
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    f[20] = 6;
    f[21] = 64;
    for (i, b) in f[22..54].iter_mut().enumerate() {
        *b = i as u8 * 5 + 1;
    }
    f[54 + 4..54 + 8].copy_from_slice(&0xffff_fc00u32.to_be_bytes());
    f[54 + 12] = 0x50;
    f[54 + 13] = 0x18;
    f.extend_from_slice(&payload);
    assert_eq!(send_large(&m, 0, &f, LSO, 1000).unwrap().delivered, 1);
    let mut data = Vec::new();
    for i in 0..3u64 {
        let (_, len, corr) = m.entry(1, i);
        let n = [1000, 1000, 100][i as usize];
        assert_eq!(len as usize, 74 + n);
        let buf = m.base(1) + BUFS + (corr - 0xc0de_0000) * 0x1000 + 8;
        let seg = m.mem(1).bytes(buf, len as usize);
        assert_eq!(u16::from_be_bytes([seg[18], seg[19]]) as usize, 20 + n);
        // Sequence numbers wrap.
        let seq = u32::from_be_bytes(seg[58..62].try_into().unwrap());
        assert_eq!(seq, 0xffff_fc00u32.wrapping_add(1000 * i as u32));
        // The filled-in checksum verifies with the IPv6 pseudo header.
        let mut bytes = seg[22..54].to_vec();
        bytes.extend_from_slice(&((20 + n) as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 6]);
        bytes.extend_from_slice(&seg[54..]);
        assert!(sums_to_ffff(&bytes), "segment {i}");
        data.extend_from_slice(&seg[74..]);
    }
    assert_eq!(data, payload);
    assert_eq!(m.rx(1).rx_csum_filled, 3);
}

#[test]
fn large_send_cut_for_every_receiver_when_not_whole() {
    // The binding's policy: even a receiver with large receive on gets MSS
    // segments (in its small buffers, not its 64 KiB one).
    let m = Machine::new(&[(0, 1, false), (1, 1, false)]);
    m.whole.set(false);
    m.open(0, 1);
    m.open(1, 3);
    offload(&m, 0, true);
    offload(&m, 1, true);
    m.add(1, 8, 4096).unwrap();
    let payload = vec![0xa5; 2000];
    let frame = tcp_frame(mac(2), mac(1), &payload);
    assert_eq!(send_large(&m, 0, &frame, LSO, 1000).unwrap().delivered, 1);
    for i in 0..2 {
        let (flags, len, corr) = m.entry(1, i);
        assert_eq!(
            flags,
            RXQ_TOGGLE | RXQ_VALID | RXQ_NO_CSUM | RXQ_CSUM_GOOD | 8
        );
        assert_eq!(len, 1054);
        assert!(corr < 0xc0de_0003);
    }
    let s = m.rx(1);
    assert_eq!((s.rx_large, s.rx_segmented, s.rx_frames), (0, 1, 2));
    assert_eq!(m.ports[1].port.borrow().rx_buffers(), 2);
}
