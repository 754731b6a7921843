//! The partition's ibmveth adapters (`papr::vio::llan`) and the machine's
//! virtual switch: the LAN hcalls, and [`MachineSwitch`], the switch's view of
//! every adapter of every partition.
//!
//! Locks: an adapter's port lock, then its TCE table's (`partition::vio`); a
//! sender holds none of its own while the switch delivers (it reads its frame
//! from guest real pieces gathered before), and the switch holds one
//! receiver's pair at a time, so no order between partitions is needed.
//! Interrupts are raised after the receiver's locks are released.
use alloc::vec::Vec;

use super::super::lpar::{partitions, Partition};
use super::GuestDma;
use crate::info;
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::vio::llan::{self as ll, LlanPort, SwitchPorts};
use crate::papr::vio::tce::{DmaMemory, TceTable};

/// One adapter of a partition.
pub struct LlanDev {
    /// Its index on the partition's VIO bus.
    pub index: usize,
    /// Fixed by the manifest, read without the lock.
    pub vlan: u16,
    pub trunk: bool,
    pub port: spin::Mutex<LlanPort>,
}

/// Whether `op` is one of the LAN calls.
pub fn handles(op: u64) -> bool {
    matches!(
        op,
        ll::H_REGISTER_LOGICAL_LAN
            | ll::H_FREE_LOGICAL_LAN
            | ll::H_ADD_LOGICAL_LAN_BUFFER
            | ll::H_SEND_LOGICAL_LAN
            | ll::H_MULTICAST_CTRL
            | ll::H_CHANGE_LOGICAL_LAN_MAC
            | ll::H_ILLAN_ATTRIBUTES
    )
}

/// The adapter with unit address `unit` and its window (unknown: H_PARAMETER,
/// as QEMU answers for a unit that is not an l-lan).
fn adapter(p: &Partition, unit: u64) -> Result<(&LlanDev, &spin::Mutex<TceTable>), HcallError> {
    let i = p.vio.bus.index_of(unit).ok_or(HcallError::Parameter)?;
    let dev = p
        .vio
        .llan
        .iter()
        .find(|d| d.index == i)
        .ok_or(HcallError::Parameter)?;
    let tce = p.vio.table(i).ok_or(HcallError::Parameter)?;
    Ok((dev, tce))
}

/// The LAN hcalls (arguments r4..r12).
pub fn hcall(p: &Partition, op: u64, a: &[u64]) -> HcallResult {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let (dev, tce) = adapter(p, arg(0))?;
    let mem = GuestDma(p);
    match op {
        ll::H_REGISTER_LOGICAL_LAN => {
            let mut port = dev.port.lock();
            port.h_register(&tce.lock(), &mem, arg(1), arg(2), arg(3), arg(4))?;
            info!(
                "PAPRIKA veth {}: l-lan@{:x} link up (vlan {})",
                p.name,
                arg(0),
                dev.vlan
            );
            Ok([0; 4])
        }
        ll::H_FREE_LOGICAL_LAN => {
            dev.port.lock().h_free()?;
            info!("PAPRIKA veth {}: l-lan@{:x} link down", p.name, arg(0));
            Ok([0; 4])
        }
        ll::H_ADD_LOGICAL_LAN_BUFFER => {
            let mut port = dev.port.lock();
            port.h_add_buffer(&tce.lock(), arg(1))?;
            Ok([0; 4])
        }
        ll::H_SEND_LOGICAL_LAN => send(p, dev, tce, &a[1..]),
        ll::H_MULTICAST_CTRL => {
            dev.port.lock().h_multicast_ctrl(arg(1), arg(2))?;
            Ok([0; 4])
        }
        ll::H_CHANGE_LOGICAL_LAN_MAC => {
            dev.port.lock().h_change_mac(arg(1))?;
            Ok([0; 4])
        }
        ll::H_ILLAN_ATTRIBUTES => {
            let attrs = dev.port.lock().h_illan_attributes(arg(1), arg(2))?;
            Ok([attrs, 0, 0, 0])
        }
        _ => Err(HcallError::Function),
    }
}

/// H_SEND_LOGICAL_LAN(unit, bd0..bd5, token): see `papr::vio::llan::gather`
/// and `send`. Returns at once in every case (the frame is copied by then).
fn send(p: &Partition, dev: &LlanDev, tce: &spin::Mutex<TceTable>, a: &[u64]) -> HcallResult {
    if !dev.port.lock().is_open() {
        return Err(HcallError::Dropped);
    }
    let mut bds = [0u64; ll::SEND_BDS];
    for (b, v) in bds.iter_mut().zip(a.iter()) {
        *b = *v;
    }
    let token = a.get(ll::SEND_BDS).copied().unwrap_or(0);
    // r12: the MSS of a large send (ibmveth passes it when it turned
    // ILLAN_LRG_SR_ENABLED on; looked at only for a BD_LRG_SND frame).
    let mss = a.get(ll::SEND_BDS + 1).copied().unwrap_or(0);
    let mem = GuestDma(p);
    let frame = ll::gather(&tce.lock(), &mem, &bds, token, mss)?;
    let Some(frame) = frame else {
        return Ok([0; 4]);
    };
    if !dev.port.lock().may_send(&frame)? {
        super::super::vcpu::rate_limited_warn(
            p,
            "veth: frame with a foreign source MAC dropped",
            0,
        );
        return Ok([0; 4]);
    }
    let Some(from) = MachineSwitch::port_of(p, dev) else {
        return Ok([0; 4]);
    };
    let mut bounce = [0u8; 2048];
    let report = ll::send(
        &MachineSwitch,
        from,
        &frame,
        &mem,
        &mut bounce,
        LARGE_RECEIVE_WHOLE,
    );
    dev.port.lock().sent(report);
    Ok([0; 4])
}

/// Whether adapters offer large send (ILLAN_LRG_SND_SUPPORT: Linux then
/// sends TCP frames of up to 64 KiB, one H_SEND_LOGICAL_LAN each, docs/vio.md).
/// Off: `cargo xtask bench` moved 64 MiB no faster with it (Paprika 14.8-21.8
/// s in four runs with it, 11.6-22.7 s in four without, docs/benchmarks.md):
/// the transfer is bounded by TCP round trips, not by the number of frames,
/// and TSO only adds work in the sending guest.
const OFFER_LARGE_SEND: bool = false;

/// Whether a large send reaches a receiver with large receive on whole (as
/// PowerVM delivers it: the MSS at buffer + 8) rather than cut into MSS
/// segments by the switch. Both measured the same within the bench's noise.
const LARGE_RECEIVE_WHOLE: bool = true;

/// Every adapter of every partition, numbered in partition then adapter order.
pub struct MachineSwitch;

impl MachineSwitch {
    /// (partition, adapter) of global port `port`.
    fn locate(port: usize) -> Option<(&'static Partition, &'static LlanDev)> {
        let mut n = port;
        for p in partitions() {
            match p.vio.llan.get(n) {
                Some(d) => return Some((p, d)),
                None => n -= p.vio.llan.len(),
            }
        }
        None
    }

    /// Global number of adapter `dev` of partition `p`.
    fn port_of(p: &Partition, dev: &LlanDev) -> Option<usize> {
        let mut base = 0;
        for q in partitions() {
            if core::ptr::eq(q, p) {
                let i = q.vio.llan.iter().position(|d| core::ptr::eq(d, dev))?;
                return Some(base + i);
            }
            base += q.vio.llan.len();
        }
        None
    }
}

impl SwitchPorts for MachineSwitch {
    type Mem = GuestDma<'static>;

    fn count(&self) -> usize {
        partitions().iter().map(|p| p.vio.llan.len()).sum()
    }

    fn vlan(&self, port: usize) -> u16 {
        // No VLAN is 0: a port that cannot be found matches nobody.
        Self::locate(port).map_or(0, |(_, d)| d.vlan)
    }

    fn trunk(&self, port: usize) -> bool {
        Self::locate(port).is_some_and(|(_, d)| d.trunk)
    }

    fn with_port<R>(
        &self,
        port: usize,
        f: &mut dyn FnMut(&mut LlanPort, &TceTable, &dyn DmaMemory) -> R,
    ) -> Option<R> {
        let (p, d) = Self::locate(port)?;
        let tce = p.vio.table(d.index)?;
        let mut guard = d.port.lock();
        let t = tce.lock();
        Some(f(&mut guard, &t, &GuestDma(p)))
    }

    fn notify(&self, port: usize) {
        if let Some((p, d)) = Self::locate(port) {
            super::notify(p, d.index);
        }
    }
}

/// Reboot or stop: every adapter of `p` closed (no frame reaches it until its
/// driver registers again), the manifest's MAC back.
pub fn reset(p: &Partition) {
    for d in &p.vio.llan {
        d.port.lock().reset();
    }
}

/// One line per adapter with its counters (when the partition stops).
pub fn report(p: &Partition) {
    for d in &p.vio.llan {
        let port = d.port.lock();
        let s = port.stats;
        let reg = p.vio.bus.get(d.index).map_or(0, |b| b.reg);
        info!(
            "PAPRIKA lpar-veth: {} l-lan@{:x} vlan={} tx={} rx={} rx_bytes={} rx_no_buffer={} rx_bad_buffer={} tx_unrouted={} tx_spoofed={} tx_no_csum={} rx_csum_filled={} tx_large={} rx_large={} rx_segmented={}",
            p.name,
            reg,
            d.vlan,
            s.tx_frames,
            s.rx_frames,
            s.rx_bytes,
            s.rx_no_buffer,
            s.rx_bad_buffer,
            s.tx_unrouted,
            s.tx_spoofed,
            s.tx_no_csum,
            s.rx_csum_filled,
            s.tx_large,
            s.rx_large,
            s.rx_segmented
        );
    }
}

/// The adapters of a partition's bus (`Vio::new`).
pub fn devices(
    bus: &crate::papr::vio::VioBus,
    nets: &[super::super::manifest::NetSpec],
) -> Vec<LlanDev> {
    bus.devices()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.spec.kind == crate::papr::vio::VioKind::Llan)
        .zip(nets)
        .map(|((index, _), n)| LlanDev {
            index,
            vlan: n.vlan,
            trunk: n.trunk,
            port: spin::Mutex::new({
                let mut port = LlanPort::new(n.mac, n.vlan, n.trunk);
                if OFFER_LARGE_SEND {
                    port.offer_large_send();
                }
                port
            }),
        })
        .collect()
}
