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
            ports.push(Port {
                port: RefCell::new(LlanPort::new(mac(i as u8 + 1), vlan, trunk)),
                tce: RefCell::new(tce),
                mem,
            });
        }
        Machine {
            mems: (0..nmem).map(|_| Mem::new()).collect(),
            ports,
            notified: RefCell::new(Vec::new()),
            locked: Cell::new(0),
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
        let frame = gather(&p.tce.borrow(), self.mem(from), bds, 0)?;
        let Some(frame) = frame else {
            return Ok(SendReport::default());
        };
        if !p.port.borrow_mut().may_send(&frame)? {
            return Ok(SendReport::default());
        }
        let mut bounce = [0u8; 256];
        let r = send(self, from, &frame, self.mem(from), &mut bounce);
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
    let g = |bds: [u64; 6], token: u64| gather(&tce, mem, &bds, token).map(|f| f.map(|f| f.len));
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
    // Checksum offload offered, turned on and off as Linux does.
    assert_eq!(p.h_illan_attributes(0, 0), Ok(ILLAN_PADDED_PKT_CSUM));
    assert!(!p.csum_offload());
    assert_eq!(
        p.h_illan_attributes(0, ILLAN_IPV4_TCP_CSUM),
        Ok(ILLAN_PADDED_PKT_CSUM | ILLAN_IPV4_TCP_CSUM)
    );
    assert!(p.csum_offload());
    assert_eq!(
        p.h_illan_attributes(ILLAN_IPV4_TCP_CSUM, ILLAN_IPV6_TCP_CSUM),
        Ok(ILLAN_PADDED_PKT_CSUM | ILLAN_IPV6_TCP_CSUM)
    );
    // Large send, the trunk bit, unknown bits: refused, nothing changed.
    for bad in [ILLAN_LRG_SR_ENABLED, ILLAN_ACTIVE_TRUNK, 1 << 40] {
        assert_eq!(p.h_illan_attributes(0, bad), Err(HcallError::Parameter));
    }
    assert_eq!(
        p.h_illan_attributes(0, 0),
        Ok(ILLAN_PADDED_PKT_CSUM | ILLAN_IPV6_TCP_CSUM)
    );
    p.reset();
    assert_eq!(p.mac, mac(1));
    assert!(!p.is_open());
    assert!(!p.csum_offload());
    let mut t = LlanPort::new(mac(2), 1, true);
    assert_eq!(t.h_illan_attributes(0, 0), Ok(ILLAN_ACTIVE_TRUNK));
    assert_eq!(
        t.h_illan_attributes(0, ILLAN_ACTIVE_TRUNK),
        Ok(ILLAN_ACTIVE_TRUNK)
    );
    assert_eq!(
        t.h_illan_attributes(0, ILLAN_IPV4_TCP_CSUM),
        Err(HcallError::Parameter)
    );
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
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(w[0]) << 8 | u32::from(w[1]);
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
    bytes.push(0);
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(w[0]) << 8 | u32::from(w[1]);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
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
