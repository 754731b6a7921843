//! A partition's VIO bus (`papr::vio`) applied to the partition: the TCE tables
//! of its devices and the four TCE hcalls, H_VIO_SIGNAL, device interrupts
//! through the guest XIVE and XICS, and DMA into the partition's memory.
//!
//! - [`Vio`] lives in `Partition::vio`: the bus (unit addresses, LISNs, signal
//!   states) and one `spin::Mutex<TceTable>` per device with a DMA window, by
//!   device index.
//! - [`hcall`] serves H_PUT_TCE, H_GET_TCE, H_STUFF_TCE, H_PUT_TCE_INDIRECT and
//!   H_VIO_SIGNAL (an unknown LIOBN or unit is H_PARAMETER, as QEMU).
//! - [`notify`] raises a device's interrupt if its signal state allows it.
//! - [`GuestDma`] is the partition's memory as a device sees it
//!   (`papr::vio::tce::DmaMemory`): bounds-checked copies, nothing outside.
//! - [`reset`]: reboot clears every table and signal state.
//!
//! Lock order: a TCE table lock is a leaf, except that the virtual switch holds
//! two (sender's, receiver's, see `llan`); no XIVE/XICS lock is taken while one
//! is held ([`notify`] runs after they are released).
use alloc::vec::Vec;

use super::lpar::{GuestRam, Partition};
use super::manifest::PartitionSpec;
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::vio::tce::{self, DmaMemory, TceTable};
use crate::papr::vio::{self as pv, VioBus, VIO_PAGE_SHIFT};

pub mod llan;
pub mod vscsi;
pub mod vty;

/// The VIO state of one partition.
pub struct Vio {
    pub bus: VioBus,
    /// By device index: the device's DMA window, if it has one.
    tables: Vec<Option<spin::Mutex<TceTable>>>,
    /// The ibmveth adapters (`[[partition.net]]`), in bus order.
    pub llan: Vec<llan::LlanDev>,
}

/// Why the VIO bus of a partition could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VioCreateError {
    Bus(pv::VioError),
    Tce(tce::TceConfigError),
}

impl Vio {
    /// The bus of partition `spec` (vty first, then its devices) with a TCE table
    /// per DMA window, for `mem_size` bytes of partition memory.
    pub fn new(spec: &PartitionSpec, mem_size: u64) -> Result<Vio, VioCreateError> {
        let bus = bus_for(spec).map_err(VioCreateError::Bus)?;
        let mut tables = Vec::new();
        for d in bus.devices() {
            tables.push(match (d.liobn(), d.spec.dma_window) {
                (Some(liobn), Some(size)) => Some(spin::Mutex::new(
                    TceTable::new(liobn, 0, size, VIO_PAGE_SHIFT, mem_size)
                        .map_err(VioCreateError::Tce)?,
                )),
                _ => None,
            });
        }
        let llan = llan::devices(&bus, &spec.net);
        Ok(Vio { bus, tables, llan })
    }

    /// The DMA window of device `index`.
    pub fn table(&self, index: usize) -> Option<&spin::Mutex<TceTable>> {
        self.tables.get(index)?.as_ref()
    }

    /// The DMA window whose LIOBN is `liobn` (guest-supplied).
    pub fn table_by_liobn(&self, liobn: u64) -> Option<&spin::Mutex<TceTable>> {
        self.table(self.bus.index_of_liobn(liobn)?)
    }

    /// Bytes of hypervisor memory the tables take.
    pub fn table_bytes(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|t| {
                let t = t.lock();
                (t.window_size() >> t.page_shift()) * 8
            })
            .sum()
    }
}

/// The devices of partition `spec`: the vty (unit 0x71000000, LISN 0x1000),
/// then one l-lan per `[[partition.net]]`, then a v-scsi adapter if it has
/// `[[partition.disk]]`s.
pub fn bus_for(spec: &PartitionSpec) -> Result<VioBus, pv::VioError> {
    let mut bus = VioBus::new();
    bus.add(pv::vty::spec())?;
    for n in &spec.net {
        bus.add(pv::VioDeviceSpec {
            kind: pv::VioKind::Llan,
            dma_window: Some(pv::VIO_DMA_WINDOW),
            signal_mask: pv::SIGNAL_IRQ,
            signal_reset: 0,
            props: pv::llan::LlanPort::dt_props(n.mac),
        })?;
    }
    if !spec.disks.is_empty() {
        bus.add(pv::vscsi::device_spec())?;
    }
    Ok(bus)
}

/// Whether `op` is one of the calls [`hcall`] serves.
pub fn handles(op: u64) -> bool {
    matches!(
        op,
        tce::H_PUT_TCE | tce::H_GET_TCE | tce::H_STUFF_TCE | tce::H_PUT_TCE_INDIRECT
    ) || op == pv::H_VIO_SIGNAL
        || llan::handles(op)
        || vscsi::handles(op)
}

/// The TCE hcalls, H_VIO_SIGNAL and the LAN calls (arguments r4..r12).
pub fn hcall(p: &Partition, op: u64, a: &[u64]) -> HcallResult {
    // A passed-through PCI function's LIOBN (docs/passthrough.md).
    if let Some(r) = super::passthrough::tce_hcall(p, op, a) {
        return r;
    }
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let result = match op {
        pv::H_VIO_SIGNAL => p.vio.bus.h_vio_signal(arg(0), arg(1)).map(|()| [0; 4]),
        tce::H_PUT_TCE => table(p, arg(0))
            .and_then(|t| t.lock().h_put_tce(arg(1), arg(2)))
            .map(|()| [0; 4]),
        tce::H_GET_TCE => {
            table(p, arg(0)).and_then(|t| t.lock().h_get_tce(arg(1)).map(|v| [v, 0, 0, 0]))
        }
        tce::H_STUFF_TCE => table(p, arg(0))
            .and_then(|t| t.lock().h_stuff_tce(arg(1), arg(2), arg(3)))
            .map(|()| [0; 4]),
        tce::H_PUT_TCE_INDIRECT => put_indirect(p, arg(0), arg(1), arg(2), arg(3)),
        op if llan::handles(op) => llan::hcall(p, op, a),
        op if vscsi::handles(op) => return vscsi::hcall(p, op, a),
        _ => Err(HcallError::Function),
    };
    if let Err(e) = result {
        super::vcpu::rate_limited_warn(p, "VIO/TCE hcall refused (opcode, then code)", op);
        super::vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
    }
    result
}

fn table(p: &Partition, liobn: u64) -> Result<&spin::Mutex<TceTable>, HcallError> {
    p.vio.table_by_liobn(liobn).ok_or(HcallError::Parameter)
}

/// H_PUT_TCE_INDIRECT(liobn, ioba, tce_list, npages): the list (guest real,
/// 4K-aligned, at most 512 BE64 entries) is read whole, then validated and
/// stored as one (`TceTable::h_put_tce_list`).
fn put_indirect(p: &Partition, liobn: u64, ioba: u64, list: u64, npages: u64) -> HcallResult {
    let t = table(p, liobn)?;
    tce::check_put_indirect(list, npages)?;
    let n = npages as usize;
    let mut raw = [0u8; 4096];
    p.read_guest(list, &mut raw[..n * 8])
        .ok_or(HcallError::Parameter)?;
    let mut tces = [0u64; tce::MAX_INDIRECT as usize];
    tce::decode_tce_list(&raw[..n * 8], &mut tces[..n]);
    t.lock().h_put_tce_list(ioba, &tces[..n])?;
    Ok([0; 4])
}

/// Device `index` of `p` raises its interrupt, if its signal state allows:
/// the source fires in both controllers (the guest configured only the one it
/// uses; the other keeps it masked), and the vCPU it targets is kicked. Takes
/// the partition's XIVE and XICS locks: call it with no VIO lock held.
pub fn notify(p: &Partition, index: usize) {
    if !p.vio.bus.irq_enabled(index) {
        return;
    }
    let Some(lisn) = p.vio.bus.get(index).map(|d| d.lisn) else {
        return;
    };
    if let Some(k) = p.xive.with(|x| x.trigger(&mut GuestRam(p), lisn)) {
        super::hcalls::kick_vcpu(p, k.vcpu);
    }
    super::xics::trigger(p, lisn);
}

/// Reboot: every adapter closed, every window back to faults, every signal
/// state to its reset value.
pub fn reset(p: &Partition) {
    llan::reset(p);
    for t in p.vio.tables.iter().flatten() {
        t.lock().clear();
    }
    p.vio.bus.reset();
    if let Some(v) = &p.vscsi {
        v.reset();
    }
}

/// A partition's memory as its devices reach it (each copy bounds-checked by
/// `Partition::read_guest` / `write_guest`; `None` outside the partition).
pub struct GuestDma<'a>(pub &'a Partition);

impl DmaMemory for GuestDma<'_> {
    fn read(&self, gra: u64, out: &mut [u8]) -> Option<()> {
        self.0.read_guest(gra, out)
    }

    fn write(&self, gra: u64, data: &[u8]) -> Option<()> {
        self.0.write_guest(gra, data)
    }
}
