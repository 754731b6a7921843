//! The interpartition logical LAN (LoPAR 16.4 "Interpartition Logical LAN";
//! sPAPR `l-lan`, Linux's `ibmveth`, QEMU `hw/net/spapr_llan.c`) and the
//! hypervisor's virtual switch between adapters.
//!
//! An adapter ([`LlanPort`]) is a VIO device with a DMA window. Its driver
//! registers (H_REGISTER_LOGICAL_LAN) a buffer-list page, a receive queue and a
//! filter page, all by IOBA, then posts receive buffers
//! (H_ADD_LOGICAL_LAN_BUFFER) and sends frames (H_SEND_LOGICAL_LAN) as up to six
//! buffer descriptors:
//!
//! - a buffer descriptor (BD) is a u64: bit 63 valid, bit 62 toggle, length in
//!   bits 32-55, IOBA in the low 32 bits;
//! - a receive-queue entry is 16 bytes: BE32 flags|offset (TOGGLE 0x80000000,
//!   VALID 0x40000000, data offset in the low 16 bits), BE32 length, then the
//!   u64 correlator copied from the first 8 bytes of the receive buffer; the
//!   frame is at buffer + 8. The TOGGLE bit written starts set (registration
//!   clears the BD's toggle) and flips at each wrap of the queue, so the driver
//!   (starting at toggle 1) tells new entries from old ones;
//! - receive buffers are kept in hypervisor-side pools, one buffer size per
//!   pool, up to [`RX_POOLS`] pools of [`RX_POOL_MAX`] buffers (QEMU's
//!   `use-rx-buffer-pools`: Linux posts 1024+ buffers of several sizes, more
//!   than the buffer-list page holds); a frame takes a buffer from the pool of
//!   the smallest size that holds frame + 8. Without one the frame is dropped
//!   and counted (also in the last 8 bytes of the buffer-list page, where Linux
//!   reads `rx_no_buffer`).
//!
//! The switch ([`send`]): one H_SEND_LOGICAL_LAN is one frame, gathered from
//! the sender's descriptors (read permission in its window) and copied
//! straight into each receiver's buffer (write permission in the receiver's
//! window), with no queue in between. Destinations: only ports on the sender's
//! VLAN, never the sender's own port; unicast to the open ports with that MAC,
//! else to the VLAN's trunk ports; broadcast to every open port; multicast to
//! every open port whose multicast reception and filter take it. A receiver
//! without a buffer drops the frame and counts it; the sender is never held
//! up (H_SUCCESS), and never gets H_BUSY. Two adapters of one partition reach
//! each other like any two ports. A non-trunk port sends only its own source
//! MAC (PowerVM's rule), so a partition cannot pose as another.
//!
//! Large send (TSO, [`BD_LRG_SND`] with the MSS in r12, offered by
//! ILLAN_LRG_SND_SUPPORT on ports the binding offers it on; today none, see
//! `partition::vio::llan::OFFER_LARGE_SEND`): a TCP frame of up to 64 KiB goes whole to a
//! receiver whose driver turned ILLAN_LRG_SR_ENABLED on (flagged
//! [`RXQ_LRG_PKT`], the MSS at buffer + 8, as PowerVM does), and is cut into
//! MSS-sized segments by the hypervisor for any other ([`Lso`],
//! [`LlanPort::deliver_segments`]).
//!
//! Port state lives in the binding (`partition::vio::llan`); [`SwitchPorts`]
//! is how [`send`] reaches the ports, so the switch is tested here on the host.
use alloc::vec::Vec;

use super::tce::{self, DmaDir, DmaMemory, TceTable};
use crate::papr::hcall::HcallError;

pub const H_REGISTER_LOGICAL_LAN: u64 = 0x114;
pub const H_FREE_LOGICAL_LAN: u64 = 0x118;
pub const H_ADD_LOGICAL_LAN_BUFFER: u64 = 0x11c;
pub const H_SEND_LOGICAL_LAN: u64 = 0x120;
pub const H_MULTICAST_CTRL: u64 = 0x130;
pub const H_CHANGE_LOGICAL_LAN_MAC: u64 = 0x14c;
pub const H_ILLAN_ATTRIBUTES: u64 = 0x244;

/// Buffer descriptor fields.
pub const BD_VALID: u64 = 1 << 63;
pub const BD_TOGGLE: u64 = 1 << 62;
/// The sender left the TCP checksum out (zero) and vouches for the data
/// (Linux `IBMVETH_BUF_NO_CSUM`, `IBMVETH_BUF_CSUM_GOOD`).
pub const BD_NO_CSUM: u64 = 1 << 57;
pub const BD_CSUM_GOOD: u64 = 1 << 56;
/// Large send: the frame is a TCP segment of up to 64 KiB to be cut at the
/// MSS the driver passes in r12 (Linux `IBMVETH_BUF_LRG_SND`; set only with
/// NO_CSUM, by a driver that turned ILLAN_LRG_SR_ENABLED on).
pub const BD_LRG_SND: u64 = 1 << 58;
const BD_LEN_SHIFT: u32 = 32;
const BD_LEN_MASK: u64 = 0x00ff_ffff;

/// Receive-queue entry flags (the BE32 at offset 0).
pub const RXQ_TOGGLE: u32 = 0x8000_0000;
pub const RXQ_VALID: u32 = 0x4000_0000;
/// The frame's TCP checksum was left out by its sender / its data is good.
pub const RXQ_NO_CSUM: u32 = 0x0200_0000;
pub const RXQ_CSUM_GOOD: u32 = 0x0100_0000;
/// A large TCP frame (larger than its MSS); the MSS is the BE64 at buffer + 8
/// and the frame starts at buffer + 16 (Linux `IBMVETH_RXQ_LRG_PKT`).
pub const RXQ_LRG_PKT: u32 = 0x0400_0000;
/// The frame starts 8 bytes into the receive buffer (after the correlator).
pub const RX_OFFSET: u32 = 8;
/// ... 16 bytes for a large frame (correlator, then the MSS).
pub const RX_OFFSET_LARGE: u32 = 16;
/// Smallest MSS a large send may name (Linux `TCP_MIN_SND_MSS`); bounds the
/// segments the hypervisor cuts one frame into (64 KiB / 48 = 1366).
pub const MIN_MSS: u64 = 48;
pub const RXQ_ENTRY: u64 = 16;
/// Receive queue alignment (QEMU `VLAN_RQ_ALIGNMENT`).
const RXQ_ALIGN: u64 = 16;
/// Buffer-list page: 4K; its last 8 bytes count frames dropped for lack of a
/// buffer.
pub const BUF_LIST_SIZE: u64 = 4096;
const RX_NO_BUFFER_OFF: u64 = BUF_LIST_SIZE - 8;

/// Largest frame H_SEND_LOGICAL_LAN takes (QEMU's limit: larger is
/// H_RESOURCE); with MTU 9000 a frame is 9014 bytes.
pub const MAX_FRAME: u64 = 65536;
/// An Ethernet header: destination, source, type.
pub const ETH_HEADER: u64 = 14;
/// Descriptors per H_SEND_LOGICAL_LAN (r5-r10).
pub const SEND_BDS: usize = 6;

/// Receive buffer pools: Linux 6.1 uses 5 sizes (512 to 64K).
pub const RX_POOLS: usize = 5;
/// Buffers one pool holds (QEMU `RX_POOL_MAX_BDS`).
pub const RX_POOL_MAX: usize = 4096;

/// Multicast filter entries each adapter has (`ibm,mac-address-filters`).
pub const MCAST_FILTERS: usize = 16;

/// H_MULTICAST_CTRL flags (Linux `ibmveth.h`).
pub const MCAST_RECEPTION_MODIFY: u64 = 0x80000;
pub const MCAST_FILTER_MODIFY: u64 = 0x40000;
pub const MCAST_RECEPTION_ENABLE: u64 = 0x20000;
pub const MCAST_FILTER_ENABLE: u64 = 0x10000;
pub const MCAST_ADD: u64 = 1;
pub const MCAST_REMOVE: u64 = 2;
pub const MCAST_CLEAR: u64 = 3;
const MCAST_KNOWN: u64 =
    MCAST_RECEPTION_MODIFY | MCAST_FILTER_MODIFY | MCAST_RECEPTION_ENABLE | MCAST_FILTER_ENABLE | 3;

/// H_ILLAN_ATTRIBUTES bits (Linux `ibmveth.h`).
pub const ILLAN_ACTIVE_TRUNK: u64 = 0x1;
pub const ILLAN_IPV4_TCP_CSUM: u64 = 0x2;
pub const ILLAN_IPV6_TCP_CSUM: u64 = 0x4;
pub const ILLAN_PADDED_PKT_CSUM: u64 = 0x2000;
pub const ILLAN_LRG_SND_SUPPORT: u64 = 0x8000;
pub const ILLAN_LRG_SR_ENABLED: u64 = 0x10000;
pub const ILLAN_TRUNK_PRI_MASK: u64 = 0xf00;
/// TCP checksum offload, on: frames may reach the port with the checksum
/// left out (the hypervisor fills it in for any receiver without it).
const ILLAN_CSUM: u64 = ILLAN_IPV4_TCP_CSUM | ILLAN_IPV6_TCP_CSUM;
/// What an adapter's driver may turn on: checksum offload and large
/// send/receive (a large frame reaches a receiver without it cut into
/// MSS-sized segments by the hypervisor).
const ILLAN_SETTABLE: u64 = ILLAN_CSUM | ILLAN_LRG_SR_ENABLED;
/// What every non-trunk adapter reports: checksum offload is available
/// (Linux turns it on only when this bit is there), and large send
/// (LRG_SND_SUPPORT) on an adapter that offers it ([`LlanPort::offer_large_send`]:
/// Linux then enables TSO and turns LRG_SR_ENABLED on at probe).
const ILLAN_OFFERED: u64 = ILLAN_PADDED_PKT_CSUM;
/// Every bit a guest may name in H_ILLAN_ATTRIBUTES (others: H_PARAMETER).
const ILLAN_KNOWN: u64 = ILLAN_ACTIVE_TRUNK
    | ILLAN_IPV4_TCP_CSUM
    | ILLAN_IPV6_TCP_CSUM
    | ILLAN_PADDED_PKT_CSUM
    | ILLAN_LRG_SND_SUPPORT
    | ILLAN_LRG_SR_ENABLED
    | ILLAN_TRUNK_PRI_MASK;

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A buffer descriptor's IOBA.
pub const fn bd_addr(bd: u64) -> u64 {
    bd & 0xffff_ffff
}

/// A buffer descriptor's length.
pub const fn bd_len(bd: u64) -> u64 {
    (bd >> BD_LEN_SHIFT) & BD_LEN_MASK
}

/// A valid descriptor of `len` bytes at `ioba` (for tests and guests).
pub const fn make_bd(ioba: u32, len: u32) -> u64 {
    BD_VALID | ((len as u64 & BD_LEN_MASK) << BD_LEN_SHIFT) | ioba as u64
}

/// A MAC address from the low 48 bits of a register.
pub fn mac_from_reg(v: u64) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// QEMU `check_bd`: valid, address and length multiples of `align`, the
/// whole range writable by the device in `tce`.
fn check_bd(tce: &TceTable, bd: u64, align: u64) -> Result<(), HcallError> {
    if bd & BD_VALID == 0
        || !bd_addr(bd).is_multiple_of(align)
        || !bd_len(bd).is_multiple_of(align)
        || tce
            .translate(bd_addr(bd), bd_len(bd), DmaDir::ToGuest)
            .is_err()
    {
        return Err(HcallError::Parameter);
    }
    Ok(())
}

/// One receive buffer pool: buffers of one size.
#[derive(Clone, Debug, Default)]
struct Pool {
    size: u64,
    bds: Vec<u64>,
}

/// Traffic counters of a port (never reset by the guest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames this port sent onto the switch.
    pub tx_frames: u64,
    /// Frames delivered into this port's receive queue.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames for this port dropped: no receive buffer large enough.
    pub rx_no_buffer: u64,
    /// Frames for this port dropped: its buffers or queue could not be
    /// written (a bad TCE the guest installed after posting them).
    pub rx_bad_buffer: u64,
    /// Frames this port sent that reached nobody (unknown unicast, no trunk).
    pub tx_unrouted: u64,
    /// Frames refused because a non-trunk port used a foreign source MAC.
    pub tx_spoofed: u64,
    /// Frames this port sent with the TCP checksum left out (offload).
    pub tx_no_csum: u64,
    /// Frames for this port whose left-out TCP checksum the hypervisor
    /// computed (its driver had offload off).
    pub rx_csum_filled: u64,
    /// Large frames (TCP, more than one MSS) this port sent.
    pub tx_large: u64,
    /// Large frames delivered whole to this port (large receive on).
    pub rx_large: u64,
    /// Large frames cut into segments for this port (large receive off);
    /// each segment also counts in `rx_frames`.
    pub rx_segmented: u64,
}

/// One adapter's state as the switch sees it.
#[derive(Clone, Debug)]
pub struct LlanPort {
    /// The manifest's MAC, restored by reset; `mac` is the current one.
    base_mac: [u8; 6],
    pub mac: [u8; 6],
    pub vlan: u16,
    pub trunk: bool,
    open: bool,
    buf_list: u64,
    /// Receive queue: IOBA, length, next entry, and the queue BD's toggle bit
    /// (set after an odd number of wraps).
    rxq_addr: u64,
    rxq_len: u64,
    rxq_ptr: u64,
    rxq_toggle: bool,
    pools: Vec<Pool>,
    rx_bufs: usize,
    mcast_recv: bool,
    mcast_filtering: bool,
    filters: Vec<[u8; 6]>,
    attrs: u64,
    /// Large send offered (LRG_SND_SUPPORT reported, LRG_SR_ENABLED settable).
    large_send: bool,
    pub stats: PortStats,
}

/// What happened to a frame at one receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In the receive queue: the receiver's interrupt should be raised.
    Delivered,
    /// Dropped (closed, no buffer, filtered, bad buffer); counted.
    Dropped,
}

impl LlanPort {
    pub fn new(mac: [u8; 6], vlan: u16, trunk: bool) -> LlanPort {
        LlanPort {
            base_mac: mac,
            mac,
            vlan,
            trunk,
            open: false,
            buf_list: 0,
            rxq_addr: 0,
            rxq_len: 0,
            rxq_ptr: 0,
            rxq_toggle: false,
            pools: Vec::new(),
            rx_bufs: 0,
            mcast_recv: true,
            mcast_filtering: false,
            filters: Vec::new(),
            attrs: Self::reset_attrs(trunk, false),
            large_send: false,
            stats: PortStats::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// A trunk reports ACTIVE_TRUNK (and Linux then leaves checksum offload
    /// off); any other port offers checksum offload.
    fn reset_attrs(trunk: bool, large_send: bool) -> u64 {
        if trunk {
            ILLAN_ACTIVE_TRUNK
        } else if large_send {
            ILLAN_OFFERED | ILLAN_LRG_SND_SUPPORT
        } else {
            ILLAN_OFFERED
        }
    }

    /// Offers large send on this (non-trunk) adapter: LRG_SND_SUPPORT
    /// reported, LRG_SR_ENABLED settable. A trunk offers nothing.
    pub fn offer_large_send(&mut self) {
        if !self.trunk {
            self.large_send = true;
            self.attrs |= ILLAN_LRG_SND_SUPPORT;
        }
    }

    /// Whether the driver turned TCP checksum offload on: frames may then
    /// reach it with the checksum left out (flagged in the queue entry).
    pub fn csum_offload(&self) -> bool {
        self.attrs & ILLAN_CSUM != 0
    }

    /// Whether the driver turned large send/receive on (and checksum offload:
    /// a large frame's checksum is always left out): large frames may then
    /// reach it whole.
    pub fn large_receive(&self) -> bool {
        self.attrs & ILLAN_LRG_SR_ENABLED != 0 && self.csum_offload()
    }

    /// Receive buffers posted and not used yet.
    pub fn rx_buffers(&self) -> usize {
        self.rx_bufs
    }

    /// H_REGISTER_LOGICAL_LAN(unit, buf_list, rxq BD, filter_list, mac), checked
    /// in QEMU's order: open already: H_RESOURCE; the buffer-list and filter
    /// pages (4K, aligned, writable) and the queue (valid BD, 16-aligned,
    /// writable): H_PARAMETER. The buffer-list page gets the queue BD (toggle
    /// cleared) and the filter BD, the rest of it and the queue are zeroed.
    pub fn h_register(
        &mut self,
        tce: &TceTable,
        mem: &impl DmaMemory,
        buf_list: u64,
        rxq: u64,
        filter_list: u64,
        mac: u64,
    ) -> Result<(), HcallError> {
        if self.open {
            return Err(HcallError::Resource);
        }
        let page = |ioba: u64| {
            BD_VALID | ((BUF_LIST_SIZE & BD_LEN_MASK) << BD_LEN_SHIFT) | (ioba & 0xffff_ffff)
        };
        if buf_list > u64::from(u32::MAX) || filter_list > u64::from(u32::MAX) {
            return Err(HcallError::Parameter);
        }
        check_bd(tce, page(buf_list), BUF_LIST_SIZE)?;
        let filter_bd = page(filter_list);
        check_bd(tce, filter_bd, BUF_LIST_SIZE)?;
        check_bd(tce, rxq, RXQ_ALIGN)?;
        if bd_len(rxq) == 0 {
            return Err(HcallError::Parameter);
        }
        let rxq = rxq & !BD_TOGGLE;
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&rxq.to_be_bytes());
        head[8..].copy_from_slice(&filter_bd.to_be_bytes());
        let zero = [0u8; 512];
        let ok = tce::dma_write(tce, mem, buf_list, &head).is_ok()
            && zero_range(tce, mem, buf_list + 16, BUF_LIST_SIZE - 16, &zero)
            && zero_range(tce, mem, bd_addr(rxq), bd_len(rxq), &zero);
        if !ok {
            return Err(HcallError::Parameter);
        }
        let m = mac_from_reg(mac);
        if m != [0; 6] && m[0] & 1 == 0 {
            self.mac = m;
        }
        self.buf_list = buf_list;
        self.rxq_addr = bd_addr(rxq);
        self.rxq_len = bd_len(rxq) - bd_len(rxq) % RXQ_ENTRY;
        self.rxq_ptr = 0;
        self.rxq_toggle = false;
        self.pools.clear();
        self.rx_bufs = 0;
        self.mcast_recv = true;
        self.mcast_filtering = false;
        self.filters.clear();
        self.open = true;
        Ok(())
    }

    /// H_FREE_LOGICAL_LAN: not open is H_RESOURCE (QEMU); the buffers are
    /// forgotten.
    pub fn h_free(&mut self) -> Result<(), HcallError> {
        if !self.open {
            return Err(HcallError::Resource);
        }
        self.close();
        Ok(())
    }

    fn close(&mut self) {
        self.open = false;
        self.pools = Vec::new();
        self.rx_bufs = 0;
        self.filters.clear();
    }

    /// Reboot or stop: closed, the manifest's MAC again, counters kept.
    pub fn reset(&mut self) {
        self.close();
        self.mac = self.base_mac;
        self.attrs = Self::reset_attrs(self.trunk, self.large_send);
    }

    /// H_ADD_LOGICAL_LAN_BUFFER(unit, bd): the BD valid, 4-aligned, at least 16
    /// bytes, writable: else H_PARAMETER; not open, or no pool with room for
    /// its size: H_RESOURCE (QEMU `spapr_vlan_add_rxbuf_to_pool`).
    pub fn h_add_buffer(&mut self, tce: &TceTable, bd: u64) -> Result<(), HcallError> {
        check_bd(tce, bd, 4)?;
        if bd_len(bd) < 16 {
            return Err(HcallError::Parameter);
        }
        if !self.open {
            return Err(HcallError::Resource);
        }
        let size = bd_len(bd);
        let i = match self.pools.iter().position(|p| p.size == size) {
            Some(i) => i,
            None => {
                if self.pools.len() >= RX_POOLS {
                    return Err(HcallError::Resource);
                }
                self.pools.push(Pool {
                    size,
                    bds: Vec::new(),
                });
                // Smallest size first, so a frame takes the first that fits.
                self.pools.sort_unstable_by_key(|p| p.size);
                self.pools
                    .iter()
                    .position(|p| p.size == size)
                    .ok_or(HcallError::Hardware)?
            }
        };
        let pool = &mut self.pools[i];
        if pool.bds.len() >= RX_POOL_MAX || pool.bds.try_reserve(1).is_err() {
            return Err(HcallError::Resource);
        }
        pool.bds.push(bd & !BD_TOGGLE);
        self.rx_bufs += 1;
        Ok(())
    }

    /// H_MULTICAST_CTRL(unit, flags, mac): reception and filtering on/off, and
    /// the filter table (add, remove, clear). Unknown flag bits: H_PARAMETER;
    /// adding to a full table: H_RESOURCE; an address that is not multicast:
    /// H_PARAMETER. Not open: H_RESOURCE.
    pub fn h_multicast_ctrl(&mut self, flags: u64, mac: u64) -> Result<(), HcallError> {
        if flags & !MCAST_KNOWN != 0 {
            return Err(HcallError::Parameter);
        }
        if !self.open {
            return Err(HcallError::Resource);
        }
        let m = mac_from_reg(mac);
        match flags & 3 {
            MCAST_ADD | MCAST_REMOVE if m[0] & 1 == 0 => return Err(HcallError::Parameter),
            // Adding a filter already there changes nothing.
            MCAST_ADD if self.filters.contains(&m) => {}
            MCAST_ADD => {
                if self.filters.len() >= MCAST_FILTERS {
                    return Err(HcallError::Resource);
                }
                self.filters.push(m);
            }
            MCAST_REMOVE => self.filters.retain(|f| *f != m),
            MCAST_CLEAR => self.filters.clear(),
            _ => {}
        }
        if flags & MCAST_RECEPTION_MODIFY != 0 {
            self.mcast_recv = flags & MCAST_RECEPTION_ENABLE != 0;
        }
        if flags & MCAST_FILTER_MODIFY != 0 {
            self.mcast_filtering = flags & MCAST_FILTER_ENABLE != 0;
        }
        Ok(())
    }

    /// H_CHANGE_LOGICAL_LAN_MAC(unit, mac): a unicast, non-zero address
    /// (else H_PARAMETER).
    pub fn h_change_mac(&mut self, mac: u64) -> Result<(), HcallError> {
        let m = mac_from_reg(mac);
        if m[0] & 1 != 0 || m == [0; 6] || mac >> 48 != 0 {
            return Err(HcallError::Parameter);
        }
        self.mac = m;
        Ok(())
    }

    /// H_ILLAN_ATTRIBUTES(unit, reset, set) -> attributes. A non-trunk port
    /// offers TCP checksum offload (PADDED_PKT_CSUM) and, when offered, large
    /// send (LRG_SND_SUPPORT), and lets the driver turn IPV4_TCP_CSUM /
    /// IPV6_TCP_CSUM (/ LRG_SR_ENABLED) on and off; a trunk offers nothing
    /// (Linux does not ask). Unknown bits, or setting anything else (large
    /// send not offered, the trunk bits): H_PARAMETER. Bits are cleared, then
    /// set.
    pub fn h_illan_attributes(&mut self, reset: u64, set: u64) -> Result<u64, HcallError> {
        if (reset | set) & !ILLAN_KNOWN != 0 {
            return Err(HcallError::Parameter);
        }
        let settable = match (self.trunk, self.large_send) {
            (true, _) => 0,
            (false, true) => ILLAN_SETTABLE,
            (false, false) => ILLAN_CSUM,
        };
        if set & !settable & !(self.attrs & !ILLAN_SETTABLE) != 0 {
            return Err(HcallError::Parameter);
        }
        self.attrs = (self.attrs & !(reset & settable)) | (set & settable);
        Ok(self.attrs)
    }

    /// Device-tree properties of the adapter's node (QEMU `spapr_vlan_devnode`):
    /// `local-mac-address` (6 bytes; Linux 6.1 accepts 6 or 8),
    /// `ibm,mac-address-filters` (required by ibmveth) and
    /// `ibm,illan-options` (its presence makes Linux offer checksum offload).
    pub fn dt_props(mac: [u8; 6]) -> Vec<(&'static str, Vec<u8>)> {
        alloc::vec![
            ("local-mac-address", mac.to_vec()),
            (
                "ibm,mac-address-filters",
                (MCAST_FILTERS as u32).to_be_bytes().to_vec()
            ),
            ("ibm,illan-options", alloc::vec![0, 0, 0, 0]),
        ]
    }

    /// The sender's side of H_SEND_LOGICAL_LAN before the switch: closed is
    /// H_DROPPED (QEMU); a large send from a port whose driver did not turn
    /// large send on is H_PARAMETER; a non-trunk port's frame with a source
    /// MAC other than its own is refused (`Ok(false)`, counted; the guest gets
    /// H_SUCCESS as for any lost frame).
    pub fn may_send(&mut self, frame: &Frame) -> Result<bool, HcallError> {
        if !self.open {
            return Err(HcallError::Dropped);
        }
        if frame.large_send && !self.large_receive() {
            return Err(HcallError::Parameter);
        }
        if frame.lso.is_some() {
            self.stats.tx_large += 1;
        }
        if !self.trunk && frame.src != self.mac {
            self.stats.tx_spoofed += 1;
            return Ok(false);
        }
        if frame.no_csum {
            self.stats.tx_no_csum += 1;
        }
        Ok(true)
    }

    /// Counts a frame this port sent, with what the switch did with it.
    pub fn sent(&mut self, report: SendReport) {
        self.stats.tx_frames += 1;
        if report.delivered + report.dropped == 0 {
            self.stats.tx_unrouted += 1;
        }
    }

    /// Whether a frame for `dst` is for this port (unicast matches handled by
    /// the caller): broadcast always, multicast when reception is on and the
    /// filter (if on) lists it.
    fn takes_group(&self, dst: &[u8; 6]) -> bool {
        if *dst == BROADCAST {
            return true;
        }
        self.mcast_recv && (!self.mcast_filtering || self.filters.contains(dst))
    }

    /// A buffer for a frame of `len` bytes at `offset`: the smallest pool's
    /// that holds `len + offset`.
    fn take_buffer(&mut self, len: u64, offset: u32) -> Option<u64> {
        let pool = self
            .pools
            .iter_mut()
            .find(|p| p.size >= len + u64::from(offset) && !p.bds.is_empty())?;
        let bd = pool.bds.pop()?;
        self.rx_bufs -= 1;
        Some(bd)
    }

    fn drop_no_buffer(&mut self, tce: &TceTable, mem: &impl DmaMemory) {
        self.stats.rx_no_buffer += 1;
        // Linux reads this as rx_no_buffer (best effort: the page is the guest's).
        let _ = tce::dma_write(
            tce,
            mem,
            self.buf_list + RX_NO_BUFFER_OFF,
            &self.stats.rx_no_buffer.to_be_bytes(),
        );
    }

    /// Delivers a frame of `len` bytes, read by `fill(dst window, dst memory,
    /// ioba)` straight into a receive buffer of this port, then writes the
    /// queue entry (flags word last, after a release fence). `fill` returns
    /// false when the copy failed (the buffer is then lost to the guest, as a
    /// bad buffer is).
    ///
    /// `no_csum`: the sender left the TCP checksum out (checksum offload). A
    /// receiver with offload on gets the frame so, flagged NO_CSUM|CSUM_GOOD in
    /// its queue entry; for any other the checksum is computed and filled in
    /// here, so it never sees a frame with a wrong checksum.
    ///
    /// `large_mss`: a large frame for a receiver with large receive on (the
    /// caller checked): the MSS goes to buffer + 8 as a BE64, the frame to
    /// buffer + 16, and the entry is flagged LRG_PKT (and NO_CSUM|CSUM_GOOD).
    pub fn deliver<M: DmaMemory>(
        &mut self,
        tce: &TceTable,
        mem: &M,
        len: u64,
        no_csum: bool,
        large_mss: Option<u16>,
        fill: impl FnOnce(&TceTable, &M, u64) -> bool,
    ) -> Delivery {
        if !self.open {
            return Delivery::Dropped;
        }
        let offset = if large_mss.is_some() {
            RX_OFFSET_LARGE
        } else {
            RX_OFFSET
        };
        let Some(bd) = self.take_buffer(len, offset) else {
            self.drop_no_buffer(tce, mem);
            return Delivery::Dropped;
        };
        let buf = bd_addr(bd);
        let mut corr = [0u8; 8];
        if read_mapped(tce, mem, buf, &mut corr).is_none() {
            self.stats.rx_bad_buffer += 1;
            return Delivery::Dropped;
        }
        if let Some(mss) = large_mss {
            if tce::dma_write(tce, mem, buf + 8, &u64::from(mss).to_be_bytes()).is_err() {
                self.stats.rx_bad_buffer += 1;
                return Delivery::Dropped;
            }
        }
        if !fill(tce, mem, buf + u64::from(offset)) {
            self.stats.rx_bad_buffer += 1;
            return Delivery::Dropped;
        }
        let entry = self.rxq_addr + self.rxq_ptr;
        let mut control = RXQ_TOGGLE | RXQ_VALID;
        if self.rxq_toggle {
            control ^= RXQ_TOGGLE;
        }
        if large_mss.is_some() {
            control |= RXQ_LRG_PKT;
        }
        if no_csum {
            if self.csum_offload() {
                control |= RXQ_NO_CSUM | RXQ_CSUM_GOOD;
            } else {
                // Not TCP (nothing was left out then) or unreadable: as is.
                if fill_tcp_checksum(tce, mem, buf + u64::from(offset), len) {
                    self.stats.rx_csum_filled += 1;
                }
            }
        }
        let mut tail = [0u8; 12];
        tail[..4].copy_from_slice(&(len as u32).to_be_bytes());
        tail[4..].copy_from_slice(&corr);
        if tce::dma_write(tce, mem, entry + 4, &tail).is_err() {
            self.stats.rx_bad_buffer += 1;
            return Delivery::Dropped;
        }
        // The frame and the entry's body before its flags word: the driver
        // reads the flags, then (after its own barrier) the rest.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        if tce::dma_write(tce, mem, entry, &(control | offset).to_be_bytes()).is_err() {
            self.stats.rx_bad_buffer += 1;
            return Delivery::Dropped;
        }
        self.rxq_ptr += RXQ_ENTRY;
        if self.rxq_ptr >= self.rxq_len {
            self.rxq_ptr = 0;
            self.rxq_toggle = !self.rxq_toggle;
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len;
        if large_mss.is_some() {
            self.stats.rx_large += 1;
        }
        Delivery::Delivered
    }

    /// Delivers a large frame to this port cut into segments of at most
    /// `lso.mss` bytes of TCP payload each (as a NIC's TSO would put them on a
    /// wire: the headers copied, IPv4 total length, ID (+1 per segment) and
    /// header checksum, IPv6 payload length, TCP sequence number advanced,
    /// FIN/PSH only on the last segment and CWR only on the first, the TCP
    /// checksum left out and filled in or flagged by [`LlanPort::deliver`] as
    /// for any frame with NO_CSUM). Delivered when at least one segment was.
    /// (Whole, to a receiver with large receive on, is [`LlanPort::deliver`]
    /// with the MSS: see [`send`].)
    pub fn deliver_segments<M: DmaMemory>(
        &mut self,
        tce: &TceTable,
        mem: &M,
        frame: &Frame,
        lso: &Lso,
        src: &impl DmaMemory,
        bounce: &mut [u8],
    ) -> Delivery {
        if !self.open {
            return Delivery::Dropped;
        }
        let mut hdr = [0u8; MAX_LSO_HEADER];
        let hl = usize::from(lso.hdr_len);
        if read_pieces(src, &frame.pieces, 0, &mut hdr[..hl]).is_none() {
            self.stats.rx_bad_buffer += 1;
            return Delivery::Dropped;
        }
        let payload = frame.len - u64::from(lso.hdr_len);
        let mss = u64::from(lso.mss);
        let segments = payload.div_ceil(mss);
        let tcp = usize::from(lso.tcp_off);
        let seq = u32::from_be_bytes([hdr[tcp + 4], hdr[tcp + 5], hdr[tcp + 6], hdr[tcp + 7]]);
        let flags = hdr[tcp + 13];
        let mut delivered = false;
        self.stats.rx_segmented += 1;
        for i in 0..segments {
            let at = i * mss;
            let n = (payload - at).min(mss);
            let mut h = hdr;
            let h = &mut h[..hl];
            lso.segment_header(h, i, at as u32, n as u16, seq, flags, i + 1 == segments);
            let len = u64::from(lso.hdr_len) + n;
            let outcome = self.deliver(tce, mem, len, true, None, |t, m, ioba| {
                tce::dma_write(t, m, ioba, h).is_ok()
                    && copy_range(
                        frame,
                        src,
                        u64::from(lso.hdr_len) + at,
                        n,
                        t,
                        m,
                        ioba + u64::from(lso.hdr_len),
                        bounce,
                    )
            });
            delivered |= outcome == Delivery::Delivered;
        }
        if delivered {
            Delivery::Delivered
        } else {
            Delivery::Dropped
        }
    }
}

/// Largest header (Ethernet, IP, TCP) of a large frame: 14 + 60 + 60.
pub const MAX_LSO_HEADER: usize = 14 + 60 + 60;

/// What H_SEND_LOGICAL_LAN's large send found in a frame larger than one
/// segment: the MSS and where the headers end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lso {
    pub mss: u16,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// Offset of the TCP header (14 + IP header).
    pub tcp_off: u16,
    /// Ethernet, IP and TCP headers together.
    pub hdr_len: u16,
}

impl Lso {
    /// Parses the headers of a large send (`head`: the frame's first bytes,
    /// as many as there are up to [`MAX_LSO_HEADER`]) of `len` bytes: IPv4
    /// (no fragment) or IPv6 (no extension header) carrying TCP, the IP
    /// length matching the frame's. `None` for anything else.
    pub fn parse(head: &[u8], len: u64, mss: u16) -> Option<Lso> {
        let be16 = |i: usize| -> Option<u64> {
            Some(u64::from(u16::from_be_bytes([
                *head.get(i)?,
                *head.get(i + 1)?,
            ])))
        };
        let (ipv6, tcp_off) = match be16(12)? {
            0x0800 => {
                let v = *head.get(14)?;
                let ihl = u64::from(v & 0xf) * 4;
                // Version 4, protocol TCP, not a fragment (MF or offset).
                if v >> 4 != 4 || ihl < 20 || *head.get(23)? != 6 || be16(20)? & 0x3fff != 0 {
                    return None;
                }
                if be16(16)? != len - 14 {
                    return None;
                }
                (false, 14 + ihl)
            }
            0x86dd => {
                if *head.get(14)? >> 4 != 6 || *head.get(20)? != 6 || be16(18)? != len - 54 {
                    return None;
                }
                (true, 54)
            }
            _ => return None,
        };
        let doff = u64::from(*head.get(tcp_off as usize + 12)? >> 4) * 4;
        let hdr_len = tcp_off + doff;
        if doff < 20 || hdr_len > len || hdr_len as usize > head.len() {
            return None;
        }
        Some(Lso {
            mss,
            ipv6,
            tcp_off: tcp_off as u16,
            hdr_len: hdr_len as u16,
        })
    }

    /// Rewrites a copy of the large frame's headers `h` for segment `i`,
    /// whose payload starts `at` bytes into the large frame's and is `n`
    /// bytes long; `seq` and `flags` are the large frame's.
    #[allow(clippy::too_many_arguments)]
    fn segment_header(
        &self,
        h: &mut [u8],
        i: u64,
        at: u32,
        n: u16,
        seq: u32,
        flags: u8,
        last: bool,
    ) {
        let tcp = usize::from(self.tcp_off);
        let l4 = (usize::from(self.hdr_len) - tcp) as u16 + n;
        if self.ipv6 {
            h[18..20].copy_from_slice(&l4.to_be_bytes());
        } else {
            let total = (tcp - 14) as u16 + l4;
            h[16..18].copy_from_slice(&total.to_be_bytes());
            let id = u16::from_be_bytes([h[18], h[19]]).wrapping_add(i as u16);
            h[18..20].copy_from_slice(&id.to_be_bytes());
            h[24..26].copy_from_slice(&[0, 0]);
            let sum = csum_fold(csum_add(0, &h[14..tcp], false));
            h[24..26].copy_from_slice(&sum.to_be_bytes());
        }
        h[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(at).to_be_bytes());
        // FIN 0x01, PSH 0x08: the last segment's; CWR 0x80: the first's.
        let mut f = flags;
        if !last {
            f &= !(0x01 | 0x08);
        }
        if i != 0 {
            f &= !0x80;
        }
        h[tcp + 13] = f;
        // The checksum left out, as the sender did.
        h[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    }
}

/// Reads through a window whose pages grant either permission (the
/// correlator the driver keeps in its receive buffer: Linux maps those with
/// read and write, QEMU reads them without checking).
fn read_mapped(tce: &TceTable, mem: &impl DmaMemory, ioba: u64, out: &mut [u8]) -> Option<()> {
    let len = out.len() as u64;
    let pieces = tce
        .translate(ioba, len, DmaDir::FromGuest)
        .or_else(|_| tce.translate(ioba, len, DmaDir::ToGuest))
        .ok()?;
    let mut at = 0usize;
    for (gra, n) in pieces {
        let n = n as usize;
        mem.read(gra, &mut out[at..at + n])?;
        at += n;
    }
    Some(())
}

/// One's-complement sum of big-endian 16-bit words, `odd` when an odd number
/// of bytes came before `data` (its first byte is then a low byte).
fn csum_add(mut sum: u64, data: &[u8], odd: bool) -> u64 {
    let mut i = 0;
    if odd {
        if let Some(&b) = data.first() {
            sum += u64::from(b);
            i = 1;
        }
    }
    while i + 1 < data.len() {
        sum += u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
        i += 2;
    }
    if i < data.len() {
        sum += u64::from(data[i]) << 8;
    }
    sum
}

fn csum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Computes the TCP checksum of an Ethernet frame (IPv4 or IPv6 without
/// extension headers) of `len` bytes at `ioba` of a window and stores it
/// (RFC 793 pseudo header; the sender left the field zero). False when the
/// frame is not such a TCP segment or cannot be read or written.
pub fn fill_tcp_checksum(tce: &TceTable, mem: &impl DmaMemory, ioba: u64, len: u64) -> bool {
    let mut h = [0u8; 14 + 60];
    let n = (len as usize).min(h.len());
    if n < 14 + 20 || read_mapped(tce, mem, ioba, &mut h[..n]).is_none() {
        return false;
    }
    let be16 = |i: usize| u64::from(u16::from_be_bytes([h[i], h[i + 1]]));
    let (tcp, seg_len, pseudo) = match be16(12) {
        0x0800 => {
            let ihl = usize::from(h[14] & 0xf) * 4;
            if h[14] >> 4 != 4 || ihl < 20 || h[14 + 9] != 6 {
                return false;
            }
            let total = be16(16) as usize;
            let Some(seg) = total.checked_sub(ihl) else {
                return false;
            };
            let sum = csum_add(0, &h[26..34], false) + 6 + seg as u64;
            (14 + ihl, seg, sum)
        }
        0x86dd => {
            if n < 14 + 40 || h[14 + 6] != 6 {
                return false;
            }
            let seg = be16(18) as usize;
            let sum = csum_add(0, &h[22..54], false) + 6 + seg as u64;
            (14 + 40, seg, sum)
        }
        _ => return false,
    };
    if seg_len < 20 || (tcp + seg_len) as u64 > len {
        return false;
    }
    let mut sum = pseudo;
    let mut chunk = [0u8; 512];
    let mut done = 0usize;
    while done < seg_len {
        let k = (seg_len - done).min(chunk.len());
        if read_mapped(tce, mem, ioba + (tcp + done) as u64, &mut chunk[..k]).is_none() {
            return false;
        }
        // Chunks are even-sized, so every one starts on a word boundary.
        sum = csum_add(sum, &chunk[..k], false);
        done += k;
    }
    // The field itself was zero in the sum; write the folded complement.
    let check = csum_fold(sum);
    tce::dma_write(tce, mem, ioba + (tcp + 16) as u64, &check.to_be_bytes()).is_ok()
}

/// Writes zeroes over `[ioba, ioba + len)` of a window.
fn zero_range(tce: &TceTable, mem: &impl DmaMemory, ioba: u64, len: u64, zero: &[u8]) -> bool {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zero.len() as u64);
        if tce::dma_write(tce, mem, ioba + done, &zero[..n as usize]).is_err() {
            return false;
        }
        done += n;
    }
    true
}

/// A frame to send: its pieces in the sender's memory (guest real address,
/// length), gathered from the descriptors through the sender's window.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub pieces: Vec<(u64, u64)>,
    pub len: u64,
    /// The sender left the TCP checksum out ([`BD_NO_CSUM`] on its first BD).
    pub no_csum: bool,
    /// [`BD_LRG_SND`] on its first BD (checked against the sender's
    /// attributes by [`LlanPort::may_send`]).
    pub large_send: bool,
    /// A large send of more than one MSS of payload: cut for receivers
    /// without large receive ([`LlanPort::deliver_segments`]).
    pub lso: Option<Lso>,
    pub dst: [u8; 6],
    pub src: [u8; 6],
}

/// H_SEND_LOGICAL_LAN's checks and gather (QEMU `h_send_logical_lan`): a
/// continuation token is H_HARDWARE (Linux never sends one); descriptors are
/// taken up to the first invalid one, leading zero ones skipped; nothing to
/// send is success with no frame (`None`); more than [`MAX_FRAME`] bytes is
/// H_RESOURCE; a frame shorter than an Ethernet header, or a descriptor the
/// sender's window does not let the device read, is H_PARAMETER.
///
/// Large send ([`BD_LRG_SND`] on the first BD; `mss` is r12, looked at only
/// then): without NO_CSUM, an MSS below [`MIN_MSS`] or above 65535, or a
/// frame that is not one IPv4/IPv6 TCP segment whose IP length matches
/// ([`Lso::parse`]): H_PARAMETER. A large send of at most one MSS of payload
/// is an ordinary frame.
pub fn gather(
    tce: &TceTable,
    mem: &impl DmaMemory,
    bds: &[u64; SEND_BDS],
    token: u64,
    mss: u64,
) -> Result<Option<Frame>, HcallError> {
    if token != 0 {
        return Err(HcallError::Hardware);
    }
    let first = bds.iter().position(|&b| b != 0).unwrap_or(SEND_BDS);
    let n = bds[first..]
        .iter()
        .position(|&b| b & BD_VALID == 0)
        .unwrap_or(SEND_BDS - first);
    let bds = &bds[first..first + n];
    // The size first, as QEMU: a huge frame is H_RESOURCE whatever it names.
    if bds.iter().map(|&b| bd_len(b)).sum::<u64>() > MAX_FRAME {
        return Err(HcallError::Resource);
    }
    let mut frame = Frame {
        no_csum: bds.first().is_some_and(|&b| b & BD_NO_CSUM != 0),
        large_send: bds.first().is_some_and(|&b| b & BD_LRG_SND != 0),
        ..Frame::default()
    };
    for &bd in bds {
        let len = bd_len(bd);
        frame.len += len;
        let pieces = tce
            .translate(bd_addr(bd), len, DmaDir::FromGuest)
            .map_err(|_| HcallError::Parameter)?;
        for (gra, n) in pieces {
            match frame.pieces.last_mut() {
                Some((g, l)) if *g + *l == gra => *l += n,
                _ => frame.pieces.push((gra, n)),
            }
        }
    }
    if frame.len == 0 {
        return Ok(None);
    }
    if frame.len < ETH_HEADER {
        return Err(HcallError::Parameter);
    }
    let mut head = [0u8; ETH_HEADER as usize];
    read_pieces(mem, &frame.pieces, 0, &mut head).ok_or(HcallError::Parameter)?;
    frame.dst.copy_from_slice(&head[..6]);
    frame.src.copy_from_slice(&head[6..12]);
    if frame.large_send {
        if !frame.no_csum || !(MIN_MSS..=u64::from(u16::MAX)).contains(&mss) {
            return Err(HcallError::Parameter);
        }
        let mut h = [0u8; MAX_LSO_HEADER];
        let n = (frame.len as usize).min(MAX_LSO_HEADER);
        read_pieces(mem, &frame.pieces, 0, &mut h[..n]).ok_or(HcallError::Parameter)?;
        let lso = Lso::parse(&h[..n], frame.len, mss as u16).ok_or(HcallError::Parameter)?;
        if frame.len - u64::from(lso.hdr_len) > mss {
            frame.lso = Some(lso);
        }
    }
    Ok(Some(frame))
}

/// Reads `out.len()` bytes at offset `at` of a frame's pieces.
pub fn read_pieces(
    mem: &impl DmaMemory,
    pieces: &[(u64, u64)],
    at: u64,
    out: &mut [u8],
) -> Option<()> {
    let mut skip = at;
    let mut done = 0usize;
    for &(gra, len) in pieces {
        if done == out.len() {
            break;
        }
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = ((len - skip) as usize).min(out.len() - done);
        mem.read(gra + skip, &mut out[done..done + n])?;
        done += n;
        skip = 0;
    }
    (done == out.len()).then_some(())
}

/// Copies a frame from the sender's memory into `[ioba, ..)` of a receiver's
/// window through `bounce` (the receiver's window checked whole first).
pub fn copy_frame(
    frame: &Frame,
    src: &impl DmaMemory,
    dst_tce: &TceTable,
    dst: &impl DmaMemory,
    ioba: u64,
    bounce: &mut [u8],
) -> bool {
    copy_range(frame, src, 0, frame.len, dst_tce, dst, ioba, bounce)
}

/// Copies `len` bytes at offset `at` of a frame into `[ioba, ..)` of a
/// receiver's window (checked whole first) through `bounce`.
#[allow(clippy::too_many_arguments)]
pub fn copy_range(
    frame: &Frame,
    src: &impl DmaMemory,
    at: u64,
    len: u64,
    dst_tce: &TceTable,
    dst: &impl DmaMemory,
    ioba: u64,
    bounce: &mut [u8],
) -> bool {
    if dst_tce.translate(ioba, len, DmaDir::ToGuest).is_err() {
        return false;
    }
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(bounce.len() as u64) as usize;
        let b = &mut bounce[..n];
        if read_pieces(src, &frame.pieces, at + done, b).is_none()
            || tce::dma_write(dst_tce, dst, ioba + done, b).is_err()
        {
            return false;
        }
        done += n as u64;
    }
    true
}

/// The ports of the machine's switch, by global port number (the binding's
/// flattening of every partition's adapters; any order, but fixed).
pub trait SwitchPorts {
    /// The sender's memory.
    type Mem: DmaMemory;
    fn count(&self) -> usize;
    /// VLAN and trunk flag of a port (fixed by the manifest).
    fn vlan(&self, port: usize) -> u16;
    fn trunk(&self, port: usize) -> bool;
    /// Runs `f` with the port locked, its window and its partition's memory.
    /// `None` when the port cannot be reached now (its partition is gone).
    fn with_port<R>(
        &self,
        port: usize,
        f: &mut dyn FnMut(&mut LlanPort, &TceTable, &dyn DmaMemory) -> R,
    ) -> Option<R>;
    /// The port's interrupt (after every lock is released).
    fn notify(&self, port: usize);
}

impl DmaMemory for &dyn DmaMemory {
    fn read(&self, gra: u64, out: &mut [u8]) -> Option<()> {
        (**self).read(gra, out)
    }
    fn write(&self, gra: u64, data: &[u8]) -> Option<()> {
        (**self).write(gra, data)
    }
}

/// What a send did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub delivered: u32,
    pub dropped: u32,
}

/// Switches `frame` from port `from` (whose memory is `src`): see the module
/// comment for who receives it. Each receiver is locked alone (never two
/// ports at once, so no lock order between partitions is needed), and
/// notified after its lock is released.
///
/// `large_whole`: a large frame goes whole to receivers with large receive
/// on (PowerVM's way); when false it is cut into segments for every
/// receiver (the binding's choice, `partition::vio::llan`).
pub fn send<P: SwitchPorts>(
    ports: &P,
    from: usize,
    frame: &Frame,
    src: &impl DmaMemory,
    bounce: &mut [u8],
    large_whole: bool,
) -> SendReport {
    let vlan = ports.vlan(from);
    let mut report = SendReport::default();
    let group = frame.dst[0] & 1 != 0;
    let mut matched = false;
    // Pass 0: ports that take it by address; pass 1 (unknown unicast only):
    // the VLAN's trunks.
    for pass in 0..2 {
        if pass == 1 && (group || matched) {
            break;
        }
        for port in 0..ports.count() {
            if port == from || ports.vlan(port) != vlan {
                continue;
            }
            if pass == 1 && !ports.trunk(port) {
                continue;
            }
            let outcome = ports.with_port(port, &mut |p, tce, mem| {
                if !p.is_open() {
                    return None;
                }
                let wanted = match (pass, group) {
                    (1, _) => true,
                    (_, true) => p.takes_group(&frame.dst),
                    (_, false) => p.mac == frame.dst,
                };
                if !wanted {
                    return None;
                }
                Some(match &frame.lso {
                    Some(lso) if large_whole && p.large_receive() => {
                        p.deliver(tce, &mem, frame.len, true, Some(lso.mss), |t, m, ioba| {
                            copy_frame(frame, src, t, m, ioba, bounce)
                        })
                    }
                    Some(lso) => p.deliver_segments(tce, &mem, frame, lso, src, bounce),
                    None => p.deliver(tce, &mem, frame.len, frame.no_csum, None, |t, m, ioba| {
                        copy_frame(frame, src, t, m, ioba, bounce)
                    }),
                })
            });
            match outcome.flatten() {
                Some(Delivery::Delivered) => {
                    matched = true;
                    report.delivered += 1;
                    ports.notify(port);
                }
                Some(Delivery::Dropped) => {
                    matched = true;
                    report.dropped += 1;
                }
                None => {}
            }
        }
    }
    report
}

#[cfg(test)]
mod tests;
