//! The partition's `v-scsi` adapter (`papr::vio::vscsi`, `papr::vio::crq`)
//! applied: the CRQ hcalls, the client queue in guest memory through the
//! adapter's TCE window, the SRP target serving the partition's
//! `[[partition.disk]]` images, and the adapter's interrupt through the guest
//! XIVE or XICS (`vio::notify`).
//!
//! Every command runs to completion inside the H_SEND_CRQ that carries it: the
//! IU and the data go through `tce::dma_read`/`dma_write` (never outside the
//! partition), the response goes on the client queue, then the interrupt
//! fires.
//!
//! Lock order: the adapter lock, then the adapter's TCE table (a leaf); both are
//! released before `vio::notify` takes the interrupt controller's.
//!
//! Disks: a read-only image is used where it lies in the boot bundle (mapped
//! read-only for the hypervisor's lifetime); a writable one is copied once into
//! frames of its own when the partition is created and kept across partition
//! reboots (the bundle file never changes, so a machine power-off forgets the
//! writes).
use alloc::vec::Vec;

use super::super::lpar::{CreateError, Partition};
use super::super::manifest::DiskSpec;
use super::GuestDma;
use crate::mm::{self, LINEAR_BASE};
use crate::papr::hcall::{HcallError, HcallResult};
use crate::papr::vio::crq::{CrqEntry, CrqLink, Delivery, DmaError, DmaWindow};
use crate::papr::vio::tce::{self, TceTable};
use crate::papr::vio::vscsi::scsi::BlockBackend;
use crate::papr::vio::vscsi::{SrpTarget, TargetInfo};
use crate::papr::vio::VioKind;

pub const H_REG_CRQ: u64 = 0xfc;
pub const H_FREE_CRQ: u64 = 0x100;
pub const H_SEND_CRQ: u64 = 0x108;
pub const H_ENABLE_CRQ: u64 = 0x2b0;

/// A disk image in hypervisor memory.
pub enum RamDisk {
    /// Where it lies in the boot bundle.
    ReadOnly(&'static [u8]),
    /// A copy in frames owned by this disk: linear address and length.
    Writable { base: u64, len: usize },
}

impl RamDisk {
    /// The image `data` as disk `spec` wants it.
    fn new(spec: &DiskSpec, data: &'static [u8]) -> Result<RamDisk, CreateError> {
        if spec.readonly {
            return Ok(RamDisk::ReadOnly(data));
        }
        let len = data.len();
        let bytes = (len as u64)
            .next_multiple_of(mm::frame::PAGE_SIZE)
            .max(mm::frame::PAGE_SIZE);
        let pa = mm::alloc_frames(bytes, mm::frame::PAGE_SIZE).map_err(CreateError::Memory)?;
        let base = LINEAR_BASE | pa;
        // SAFETY: the frames were just allocated for this disk alone and the
        // linear map reaches all RAM read-write; `data` is the bundle, elsewhere.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), base as *mut u8, len) };
        Ok(RamDisk::Writable { base, len })
    }
}

impl BlockBackend for RamDisk {
    fn size(&self) -> u64 {
        let len = match self {
            RamDisk::ReadOnly(d) => d.len(),
            RamDisk::Writable { len, .. } => *len,
        };
        len as u64 & !511
    }

    fn read_only(&self) -> bool {
        matches!(self, RamDisk::ReadOnly(_))
    }

    fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        if end > self.size() {
            return None;
        }
        match self {
            RamDisk::ReadOnly(d) => d.get(offset as usize..end as usize),
            RamDisk::Writable { base, .. } => {
                let p = (base + offset) as *const u8;
                // SAFETY: inside the disk's own frames (checked above); shared
                // borrows of the disk only read.
                Some(unsafe { core::slice::from_raw_parts(p, len) })
            }
        }
    }

    fn bytes_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len as u64)?;
        if end > self.size() {
            return None;
        }
        match self {
            RamDisk::ReadOnly(_) => None,
            RamDisk::Writable { base, .. } => {
                let p = (*base + offset) as *mut u8;
                // SAFETY: inside the disk's own frames (checked above), and
                // `&mut self` makes this the only borrow.
                Some(unsafe { core::slice::from_raw_parts_mut(p, len) })
            }
        }
    }
}

struct State {
    link: CrqLink,
    target: SrpTarget,
    disks: Vec<RamDisk>,
}

/// A partition's v-scsi adapter.
pub struct Vscsi {
    /// Its index on the partition's VIO bus.
    index: usize,
    state: spin::Mutex<State>,
}

impl Vscsi {
    /// The adapter for `disks` (images found in `bundle`), on bus device
    /// `index`.
    pub fn new(
        index: usize,
        disks: &[DiskSpec],
        bundle: &'static [u8],
    ) -> Result<Vscsi, CreateError> {
        let mut ram = Vec::new();
        for d in disks {
            let data = crate::bundle::find(bundle, &d.image)
                .ok()
                .flatten()
                .ok_or_else(|| CreateError::MissingFile(d.image.clone()))?;
            ram.push(RamDisk::new(d, data)?);
        }
        Ok(Vscsi {
            index,
            state: spin::Mutex::new(State {
                // The target is in the hypervisor: always ready.
                link: CrqLink::new(true),
                target: SrpTarget::new(),
                disks: ram,
            }),
        })
    }

    /// Bus index of the adapter.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Partition reboot: no queue, no login; the disks keep their contents.
    pub fn reset(&self) {
        let mut s = self.state.lock();
        s.link.free();
        s.target.reset();
    }
}

/// The bus index of the v-scsi adapter of `spec`'s bus, if any.
pub fn bus_index(bus: &crate::papr::vio::VioBus) -> Option<usize> {
    bus.devices()
        .iter()
        .position(|d| d.spec.kind == VioKind::Vscsi)
}

/// The adapter's window over the partition's memory.
struct Window<'a> {
    table: &'a TceTable,
    mem: GuestDma<'a>,
}

impl DmaWindow for Window<'_> {
    fn read(&mut self, ioba: u64, out: &mut [u8]) -> Result<(), DmaError> {
        tce::dma_read(self.table, &self.mem, ioba, out)
    }

    fn write(&mut self, ioba: u64, data: &[u8]) -> Result<(), DmaError> {
        tce::dma_write(self.table, &self.mem, ioba, data)
    }
}

/// Whether `op` is a CRQ call.
pub fn handles(op: u64) -> bool {
    matches!(op, H_REG_CRQ | H_FREE_CRQ | H_SEND_CRQ | H_ENABLE_CRQ)
}

/// H_REG_CRQ, H_FREE_CRQ, H_SEND_CRQ, H_ENABLE_CRQ (arguments r4..).
pub fn hcall(p: &Partition, op: u64, a: &[u64]) -> HcallResult {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let result = crq_call(p, op, arg(0), arg(1), arg(2));
    if let Err(e) = result {
        // H_CLOSED is how the transport says "not yet": not worth a warning.
        if e != HcallError::Closed {
            super::super::vcpu::rate_limited_warn(p, "CRQ hcall refused (opcode, then code)", op);
            super::super::vcpu::rate_limited_warn(p, "  PAPR code", e.code() as u64);
        }
    }
    result
}

fn crq_call(p: &Partition, op: u64, unit: u64, a1: u64, a2: u64) -> HcallResult {
    if op == H_REG_CRQ {
        // QEMU's order: the queue's length and alignment before the unit.
        if !(crate::papr::vio::crq::CRQ_MIN_LEN..=crate::papr::vio::crq::CRQ_MAX_LEN).contains(&a2)
            || a1 & 0xfff != 0
        {
            return Err(HcallError::Parameter);
        }
    }
    let index = p.vio.bus.index_of(unit).ok_or(HcallError::Parameter)?;
    let Some(v) = p.vscsi.as_ref().filter(|v| v.index == index) else {
        // A device without a CRQ (the vty, an l-lan).
        return Err(HcallError::NotFound);
    };
    let table = p.vio.table(index).ok_or(HcallError::NotFound)?;
    let mut notify = false;
    let result = {
        let mut s = v.state.lock();
        let s = &mut *s;
        match op {
            H_REG_CRQ => s.link.register(a1, a2).map(|()| {
                s.target.reset();
            }),
            H_FREE_CRQ => {
                s.link.free();
                s.target.reset();
                Ok(())
            }
            H_ENABLE_CRQ => Ok(()),
            H_SEND_CRQ => {
                let entry = CrqEntry::from_words(a1, a2);
                let t = table.lock();
                let mut w = Window {
                    table: &t,
                    mem: GuestDma(p),
                };
                match s.link.send(&mut w, &entry) {
                    Err(e) => Err(e),
                    Ok(Delivery::Handled) => {
                        notify = true;
                        Ok(())
                    }
                    Ok(Delivery::Ignored) => Ok(()),
                    Ok(Delivery::Command) => {
                        // No room for the answer: refuse the request unrun, so
                        // nothing happens that the client cannot learn of.
                        if let Err(e) = s.link.client.has_room(&mut w) {
                            Err(e.hcall_error())
                        } else {
                            let info = TargetInfo {
                                partition_name: &p.name,
                                partition_number: p.lpid,
                            };
                            match s.target.handle(&entry, &mut w, &mut s.disks, &info) {
                                Some(rsp) => {
                                    notify = true;
                                    s.link
                                        .client
                                        .enqueue(&mut w, &rsp)
                                        .map_err(|e| e.hcall_error())
                                }
                                None => Ok(()),
                            }
                        }
                    }
                }
            }
            _ => Err(HcallError::Function),
        }
    };
    if notify {
        super::notify(p, index);
    }
    result.map(|()| [0; 4])
}
