//! The in-hypervisor SRP target behind a `v-scsi` adapter: the server side of
//! the protocol Linux's `ibmvscsi` speaks over a CRQ (IBM's "VSCSI" use of the
//! SCSI RDMA Protocol, SRP r16a; formats from Linux `include/scsi/srp.h` and
//! `drivers/scsi/ibmvscsi/viosrp.h`, behaviour as QEMU's `hw/scsi/spapr_vscsi.c`).
//!
//! A client request is a CRQ entry (valid 0x80, format SRP or MAD) whose bytes
//! 8-15 give the I/O bus address of a 256-byte information unit (IU) in the
//! client's TCE window. The target reads the IU, acts, writes the response IU
//! over the request IU and answers with a CRQ entry that carries the request's
//! tag (bytes 8-15 of the IU, copied unread: Linux keeps a pointer there).
//!
//! Handled: MADs ADAPTER_INFO, CAPABILITIES, ENABLE_FAST_FAIL (others: MAD
//! status NOT_SUPPORTED); SRP_LOGIN_REQ (rejected for IUs over 256 bytes or no
//! descriptor format we know); SRP_CMD with direct and indirect descriptors
//! (partial table in the IU or the whole table fetched through the window,
//! at most [`MAX_DESCRIPTORS`]); SRP_TSK_MGMT; SRP_I_LOGOUT. Every command
//! runs to completion inside the H_SEND_CRQ that brought it, so nothing is
//! ever in flight: task management has nothing to abort and succeeds.
//!
//! Disks are LUN 0 of targets 0, 1, ... on channel 0 ([`lun_address`]);
//! anything else is an absent LUN ([`scsi::execute`] with no disk).
//!
//! Every length and count here comes from the guest: each is bounded before
//! use, and every access to guest memory goes through [`DmaWindow`].

pub mod scsi;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::crq::{CrqEntry, DmaError, DmaWindow, VALID_CMD_RSP};
use crate::be::{be16, be32, be64};
use scsi::{BlockBackend, Identity, Outcome, Sense};

/// Largest IU (`SRP_MAX_IU_LEN`, `sizeof(union viosrp_iu)`).
pub const SRP_MAX_IU_LEN: usize = 256;
/// CRQ format byte of SRP IUs and of MADs.
pub const FORMAT_SRP: u8 = 0x01;
pub const FORMAT_MAD: u8 = 0x02;
/// CRQ status byte (`enum viosrp_crq_status`).
pub const VIOSRP_OK: u8 = 0x00;
pub const VIOSRP_ADAPTER_FAIL: u8 = 0x10;

/// SRP IU types (`include/scsi/srp.h`).
pub const SRP_LOGIN_REQ: u8 = 0x00;
pub const SRP_TSK_MGMT: u8 = 0x01;
pub const SRP_CMD: u8 = 0x02;
pub const SRP_I_LOGOUT: u8 = 0x03;
pub const SRP_LOGIN_RSP: u8 = 0xc0;
pub const SRP_RSP: u8 = 0xc1;
pub const SRP_LOGIN_REJ: u8 = 0xc2;

/// Descriptor formats (`buf_fmt` nibbles) and the login's `req_buf_fmt` bits.
pub const SRP_NO_DATA_DESC: u8 = 0;
pub const SRP_DATA_DESC_DIRECT: u8 = 1;
pub const SRP_DATA_DESC_INDIRECT: u8 = 2;
pub const SRP_BUF_FORMAT_DIRECT: u16 = 1 << 1;
pub const SRP_BUF_FORMAT_INDIRECT: u16 = 1 << 2;

/// SRP_RSP flags.
pub const RSP_FLAG_RSPVALID: u8 = 1 << 0;
pub const RSP_FLAG_SNSVALID: u8 = 1 << 1;
pub const RSP_FLAG_DOOVER: u8 = 1 << 2;
pub const RSP_FLAG_DOUNDER: u8 = 1 << 3;
pub const RSP_FLAG_DIOVER: u8 = 1 << 4;
pub const RSP_FLAG_DIUNDER: u8 = 1 << 5;

/// Task management functions.
pub const TSK_ABORT_TASK: u8 = 0x01;
pub const TSK_ABORT_TASK_SET: u8 = 0x02;
pub const TSK_CLEAR_TASK_SET: u8 = 0x04;
pub const TSK_LUN_RESET: u8 = 0x08;
pub const TSK_CLEAR_ACA: u8 = 0x40;
/// SRP_RSP response codes (in the 4-byte response data).
pub const RSP_CODE_COMPLETE: u8 = 0x00;
pub const RSP_CODE_INVALID_IU: u8 = 0x02;
pub const RSP_CODE_NOT_SUPPORTED: u8 = 0x04;

/// Login rejection reasons.
pub const LOGIN_REJ_IU_TOO_LARGE: u32 = 0x0001_0002;
pub const LOGIN_REJ_UNSUPPORTED_FORMAT: u32 = 0x0001_0004;

/// MAD types and statuses (`viosrp.h`).
pub const MAD_ADAPTER_INFO: u32 = 0x03;
pub const MAD_CAPABILITIES: u32 = 0x05;
pub const MAD_ENABLE_FAST_FAIL: u32 = 0x08;
pub const MAD_SUCCESS: u16 = 0x00;
pub const MAD_NOT_SUPPORTED: u16 = 0xf1;
pub const MAD_FAILED: u16 = 0xf7;

/// Requests a client may have outstanding (the login's `req_lim_delta`): far
/// below the 256 entries of a one-page queue, so responses always find room in
/// a queue of a well-behaved client.
pub const REQUEST_LIMIT: u32 = 64;
/// Most descriptors one indirect table may hold (Linux sends at most
/// `SG_ALL` = 128).
pub const MAX_DESCRIPTORS: usize = 256;
/// Size of `struct mad_adapter_info_data`.
const ADAPTER_INFO_LEN: usize = 148;
/// Bytes of `struct capabilities` up to the two `server_support` fields.
const CAPS_MIGRATION_SUPPORT: usize = 74;
const CAPS_RESERVE_SUPPORT: usize = 86;

/// Who the target says it is in ADAPTER_INFO.
#[derive(Clone, Copy, Debug)]
pub struct TargetInfo<'a> {
    pub partition_name: &'a str,
    pub partition_number: u32,
}

/// Channel, target and LUN of an SRP LUN field (SAM-5 single-level addressing,
/// QEMU `vscsi_device_find`): method 0 (peripheral: bus, target) or 2 (logical
/// unit: target, bus, LUN, as Linux `ibmvscsi` `lun_from_dev` builds it).
/// `None` for other methods and multi-level LUNs.
pub fn lun_address(lun: &[u8; 8]) -> Option<(u8, u8, u8)> {
    if lun[2..].iter().any(|&b| b != 0) {
        return None;
    }
    match lun[0] >> 6 {
        0 => Some((lun[0] & 0x3f, lun[1], 0)),
        2 => Some((lun[1] >> 5, lun[0] & 0x3f, lun[1] & 0x1f)),
        _ => None,
    }
}

/// The disk index an SRP LUN field names, if any.
fn disk_index(lun: &[u8; 8]) -> Option<usize> {
    match lun_address(lun)? {
        (0, target, 0) => Some(usize::from(target)),
        _ => None,
    }
}

/// One data buffer segment (`struct srp_direct_buf`: va, key, len).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    ioba: u64,
    len: u32,
}

fn segment(b: &[u8]) -> Segment {
    Segment {
        ioba: be64(&b[0..8]),
        len: be32(&b[12..16]),
    }
}

/// Counters a test or a log line can show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub check_conditions: u64,
    pub bad_requests: u64,
}

/// The SRP target of one adapter.
#[derive(Clone, Debug, Default)]
pub struct SrpTarget {
    logged_in: bool,
    pub stats: Stats,
}

/// The response to a request, ready for the client's queue.
pub type Response = CrqEntry;

fn response_entry(format: u8, status: u8, len: usize, tag: &[u8]) -> Response {
    let mut e = [0u8; 16];
    e[0] = VALID_CMD_RSP;
    e[1] = format;
    e[3] = status;
    e[6..8].copy_from_slice(&(len as u16).to_be_bytes());
    e[8..16].copy_from_slice(&tag[..8]);
    CrqEntry(e)
}

/// Why an SRP_CMD's descriptors are unusable.
enum DescError {
    /// Malformed (a count or length out of bounds, an unknown format).
    Invalid,
    /// The external table could not be read through the window.
    Dma,
}

impl SrpTarget {
    pub const fn new() -> Self {
        SrpTarget {
            logged_in: false,
            stats: Stats {
                commands: 0,
                check_conditions: 0,
                bad_requests: 0,
            },
        }
    }

    /// The queue was freed or the partition reset: log in again.
    pub fn reset(&mut self) {
        self.logged_in = false;
    }

    pub fn logged_in(&self) -> bool {
        self.logged_in
    }

    /// Handles one command entry (valid 0x80) from the client. Returns the
    /// entry to put on the client's queue, or `None` when the request needs
    /// no answer (SRP_I_LOGOUT, an unknown CRQ format).
    pub fn handle<D: BlockBackend>(
        &mut self,
        entry: &CrqEntry,
        dma: &mut dyn DmaWindow,
        disks: &mut [D],
        info: &TargetInfo<'_>,
    ) -> Option<Response> {
        let format = entry.format();
        if format != FORMAT_SRP && format != FORMAT_MAD {
            self.stats.bad_requests += 1;
            return None;
        }
        let ioba = entry.iu_data_ptr();
        let len = usize::from(entry.iu_length());
        let mut iu = [0u8; SRP_MAX_IU_LEN];
        // An IU must hold at least the opcode and the tag; no IU is longer than
        // the union Linux sends.
        if !(16..=SRP_MAX_IU_LEN).contains(&len) || dma.read(ioba, &mut iu[..len]).is_err() {
            self.stats.bad_requests += 1;
            return Some(response_entry(format, VIOSRP_ADAPTER_FAIL, 0, &[0; 8]));
        }
        let tag: [u8; 8] = iu[8..16].try_into().unwrap_or([0; 8]);
        let out_len = if format == FORMAT_MAD {
            self.mad(&mut iu, dma, info)
        } else {
            match iu[0] {
                SRP_LOGIN_REQ => self.login(&mut iu),
                SRP_CMD => self.command(&mut iu, len, dma, disks, info),
                SRP_TSK_MGMT => task_management(&mut iu),
                SRP_I_LOGOUT => {
                    self.logged_in = false;
                    return None;
                }
                _ => {
                    self.stats.bad_requests += 1;
                    rsp_code(&mut iu, RSP_CODE_INVALID_IU)
                }
            }
        };
        let status = match dma.write(ioba, &iu[..out_len]) {
            Ok(()) => VIOSRP_OK,
            Err(_) => VIOSRP_ADAPTER_FAIL,
        };
        Some(response_entry(format, status, out_len, &tag))
    }

    /// A MAD: the status goes back in its common header.
    fn mad(
        &mut self,
        iu: &mut [u8; SRP_MAX_IU_LEN],
        dma: &mut dyn DmaWindow,
        info: &TargetInfo<'_>,
    ) -> usize {
        let kind = be32(&iu[0..4]);
        let length = usize::from(be16(&iu[6..8]));
        let buffer = be64(&iu[16..24]);
        let status = match kind {
            MAD_ADAPTER_INFO => {
                let mut d = [0u8; ADAPTER_INFO_LEN];
                d[..4].copy_from_slice(b"16.a");
                let name = info.partition_name.as_bytes();
                let n = name.len().min(95);
                d[8..8 + n].copy_from_slice(&name[..n]);
                d[104..108].copy_from_slice(&info.partition_number.to_be_bytes());
                d[108..112].copy_from_slice(&1u32.to_be_bytes()); // mad_version
                d[112..116].copy_from_slice(&2u32.to_be_bytes()); // os_type Linux
                let txu = (scsi::MAX_TRANSFER_BLOCKS * scsi::BLOCK_SIZE) as u32;
                d[116..120].copy_from_slice(&txu.to_be_bytes()); // port_max_txu[0]
                match dma.write(buffer, &d[..length.min(ADAPTER_INFO_LEN)]) {
                    Ok(()) => MAD_SUCCESS,
                    Err(_) => MAD_FAILED,
                }
            }
            MAD_CAPABILITIES => {
                // Read the client's list, answer "no migration, no
                // reservation" (QEMU) in the two server_support fields.
                let n = length.min(SRP_MAX_IU_LEN);
                let mut caps = [0u8; SRP_MAX_IU_LEN];
                let ok = dma.read(buffer, &mut caps[..n]).is_ok() && {
                    for at in [CAPS_MIGRATION_SUPPORT, CAPS_RESERVE_SUPPORT] {
                        if at + 2 <= n {
                            caps[at..at + 2].copy_from_slice(&0u16.to_be_bytes());
                        }
                    }
                    dma.write(buffer, &caps[..n]).is_ok()
                };
                if ok {
                    MAD_SUCCESS
                } else {
                    MAD_FAILED
                }
            }
            MAD_ENABLE_FAST_FAIL => MAD_SUCCESS,
            _ => MAD_NOT_SUPPORTED,
        };
        iu[4..6].copy_from_slice(&status.to_be_bytes());
        24
    }

    fn login(&mut self, iu: &mut [u8; SRP_MAX_IU_LEN]) -> usize {
        let it_iu_len = be32(&iu[16..20]);
        let fmt = be16(&iu[24..26]);
        let reject = if it_iu_len as usize > SRP_MAX_IU_LEN {
            Some(LOGIN_REJ_IU_TOO_LARGE)
        } else if fmt & (SRP_BUF_FORMAT_DIRECT | SRP_BUF_FORMAT_INDIRECT) == 0 {
            Some(LOGIN_REJ_UNSUPPORTED_FORMAT)
        } else {
            None
        };
        let tag: [u8; 8] = iu[8..16].try_into().unwrap_or([0; 8]);
        iu.fill(0);
        iu[8..16].copy_from_slice(&tag);
        let formats = SRP_BUF_FORMAT_DIRECT | SRP_BUF_FORMAT_INDIRECT;
        if let Some(reason) = reject {
            self.stats.bad_requests += 1;
            self.logged_in = false;
            iu[0] = SRP_LOGIN_REJ;
            iu[4..8].copy_from_slice(&reason.to_be_bytes());
            iu[24..26].copy_from_slice(&formats.to_be_bytes());
            return 32;
        }
        self.logged_in = true;
        iu[0] = SRP_LOGIN_RSP;
        iu[4..8].copy_from_slice(&REQUEST_LIMIT.to_be_bytes());
        iu[16..20].copy_from_slice(&(SRP_MAX_IU_LEN as u32).to_be_bytes());
        iu[20..24].copy_from_slice(&(SRP_MAX_IU_LEN as u32).to_be_bytes());
        iu[24..26].copy_from_slice(&formats.to_be_bytes());
        52
    }

    /// The descriptors of one direction, starting at `at` in the IU. Returns
    /// the segments and the offset after them.
    fn descriptors(
        iu: &[u8; SRP_MAX_IU_LEN],
        iu_len: usize,
        fmt: u8,
        count: u8,
        at: usize,
        dma: &mut dyn DmaWindow,
    ) -> Result<(Vec<Segment>, usize), DescError> {
        match fmt {
            SRP_NO_DATA_DESC => Ok((Vec::new(), at)),
            SRP_DATA_DESC_DIRECT => {
                let end = at + 16;
                if end > iu_len {
                    return Err(DescError::Invalid);
                }
                Ok((alloc::vec![segment(&iu[at..end])], end))
            }
            SRP_DATA_DESC_INDIRECT => {
                // table_desc (16), total len (4), then `count` descriptors.
                let list = at + 20;
                let local = usize::from(count);
                let end = list + local * 16;
                if end > iu_len {
                    return Err(DescError::Invalid);
                }
                let table = segment(&iu[at..at + 16]);
                let total = table.len as usize;
                if total == 0 || !total.is_multiple_of(16) || total / 16 > MAX_DESCRIPTORS {
                    return Err(DescError::Invalid);
                }
                let n = total / 16;
                let segs = if n <= local {
                    // The whole table is in the IU.
                    iu[list..list + n * 16].chunks(16).map(segment).collect()
                } else {
                    let mut raw = alloc::vec![0u8; total];
                    dma.read(table.ioba, &mut raw).map_err(|_| DescError::Dma)?;
                    raw.chunks(16).map(segment).collect()
                };
                Ok((segs, end))
            }
            _ => Err(DescError::Invalid),
        }
    }

    fn command<D: BlockBackend>(
        &mut self,
        iu: &mut [u8; SRP_MAX_IU_LEN],
        iu_len: usize,
        dma: &mut dyn DmaWindow,
        disks: &mut [D],
        info: &TargetInfo<'_>,
    ) -> usize {
        self.stats.commands += 1;
        let buf_fmt = iu[5];
        let (out_fmt, in_fmt) = (buf_fmt >> 4, buf_fmt & 0xf);
        let (out_cnt, in_cnt) = (iu[6], iu[7]);
        let lun: [u8; 8] = iu[20..28].try_into().unwrap_or([0xff; 8]);
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&iu[32..48]);
        // Additional CDB bytes (low two bits reserved) come before the
        // descriptors.
        let desc_at = 48 + usize::from(iu[31] & !3);
        let mut rsp = RspBuilder::default();

        let segs = (|| {
            if out_fmt != SRP_NO_DATA_DESC && in_fmt != SRP_NO_DATA_DESC {
                // Bidirectional commands are not in the disk subset.
                return Err(DescError::Invalid);
            }
            let (out, next) = Self::descriptors(iu, iu_len, out_fmt, out_cnt, desc_at, dma)?;
            let (inn, _) = Self::descriptors(iu, iu_len, in_fmt, in_cnt, next, dma)?;
            Ok((out, inn))
        })();
        let (out_segs, in_segs) = match segs {
            Ok(s) => s,
            Err(e) => {
                self.stats.bad_requests += 1;
                let sense = match e {
                    DescError::Invalid => Sense::INVALID_FIELD_IN_IU,
                    DescError::Dma => Sense::DATA_PHASE_ERROR,
                };
                rsp.check(sense);
                return rsp.write(iu, &mut self.stats);
            }
        };
        let disk_no = disk_index(&lun).filter(|&i| i < disks.len());
        let serial = serial(info.partition_number, disk_no.unwrap_or(0));
        let id = Identity { serial: &serial };
        let outcome = {
            let disk = disk_no.map(|i| &disks[i] as &dyn BlockBackend);
            scsi::execute(&cdb, disk, &id)
        };
        let in_total: u64 = in_segs.iter().map(|s| u64::from(s.len)).sum();
        let out_total: u64 = out_segs.iter().map(|s| u64::from(s.len)).sum();
        match outcome {
            Outcome::Good => {}
            Outcome::Check(s) => rsp.check(s),
            Outcome::DataIn(data) => {
                let source = |off: u64, n: usize| {
                    let rest = data.get(off as usize..)?;
                    Some(&rest[..rest.len().min(n)])
                };
                match to_initiator(dma, &in_segs, source) {
                    Ok(done) => rsp.data_in(data.len() as u64, in_total, done),
                    Err(_) => rsp.check(Sense::DATA_PHASE_ERROR),
                }
            }
            Outcome::Read { offset, len } => {
                let disk = disk_no.map(|i| &disks[i]);
                let r = match disk {
                    Some(d) => to_initiator(dma, &in_segs, |off, n| {
                        let want = (len - off).min(n as u64) as usize;
                        d.bytes(offset + off, want)
                    }),
                    None => Err(DmaError::OutOfWindow),
                };
                match r {
                    Ok(done) => rsp.data_in(len, in_total, done),
                    Err(_) => rsp.check(Sense::DATA_PHASE_ERROR),
                }
            }
            Outcome::Write { offset, len } => {
                if out_total < len {
                    rsp.check(Sense::INVALID_FIELD_IN_IU);
                } else if let Some(d) = disk_no.and_then(|i| disks.get_mut(i)) {
                    match from_initiator(dma, &out_segs, d, offset, len) {
                        Ok(()) => rsp.data_out(len, out_total),
                        Err(_) => rsp.check(Sense::DATA_PHASE_ERROR),
                    }
                } else {
                    rsp.check(Sense::LUN_NOT_SUPPORTED);
                }
            }
        }
        rsp.write(iu, &mut self.stats)
    }
}

/// Moves data to the initiator's data-in segments: `source(offset, max)` gives
/// the bytes from `offset` of the transfer on (at most `max`; shorter or `None`
/// at the end). Returns the bytes moved.
fn to_initiator<'a>(
    dma: &mut dyn DmaWindow,
    segs: &[Segment],
    mut source: impl FnMut(u64, usize) -> Option<&'a [u8]>,
) -> Result<u64, DmaError> {
    let mut done = 0u64;
    for s in segs {
        let mut seg_off = 0u64;
        while seg_off < u64::from(s.len) {
            let room = (u64::from(s.len) - seg_off).min(1 << 20) as usize;
            let Some(bytes) = source(done, room) else {
                return Ok(done);
            };
            let bytes = &bytes[..bytes.len().min(room)];
            if bytes.is_empty() {
                return Ok(done);
            }
            let ioba = s.ioba.checked_add(seg_off).ok_or(DmaError::OutOfWindow)?;
            dma.write(ioba, bytes)?;
            done += bytes.len() as u64;
            seg_off += bytes.len() as u64;
        }
    }
    Ok(done)
}

/// Moves `len` bytes from the initiator's data-out segments to the disk at
/// `offset`.
fn from_initiator(
    dma: &mut dyn DmaWindow,
    segs: &[Segment],
    disk: &mut dyn BlockBackend,
    offset: u64,
    len: u64,
) -> Result<(), DmaError> {
    let mut done = 0u64;
    for s in segs {
        let n = u64::from(s.len).min(len - done) as usize;
        if n == 0 {
            break;
        }
        let dst = disk
            .bytes_mut(offset + done, n)
            .ok_or(DmaError::OutOfWindow)?;
        dma.read(s.ioba, dst)?;
        done += n as u64;
    }
    Ok(())
}

/// An SRP_RSP being put together.
#[derive(Default)]
struct RspBuilder {
    status: u8,
    flags: u8,
    out_resid: u32,
    in_resid: u32,
    sense: Option<Sense>,
    rsp_code: Option<u8>,
}

impl RspBuilder {
    fn check(&mut self, s: Sense) {
        self.status = scsi::STATUS_CHECK_CONDITION;
        self.sense = Some(s);
    }

    /// `want` bytes to go in, `buffer` bytes of segments, `done` moved.
    fn data_in(&mut self, want: u64, buffer: u64, done: u64) {
        if want > buffer {
            self.flags |= RSP_FLAG_DIOVER;
            self.in_resid = (want - buffer).min(u64::from(u32::MAX)) as u32;
        } else if done < buffer {
            self.flags |= RSP_FLAG_DIUNDER;
            self.in_resid = (buffer - done).min(u64::from(u32::MAX)) as u32;
        }
    }

    fn data_out(&mut self, done: u64, buffer: u64) {
        if done < buffer {
            self.flags |= RSP_FLAG_DOUNDER;
            self.out_resid = (buffer - done).min(u64::from(u32::MAX)) as u32;
        }
    }

    /// Writes the SRP_RSP over the IU (keeping the tag); returns its length.
    fn write(&self, iu: &mut [u8; SRP_MAX_IU_LEN], stats: &mut Stats) -> usize {
        let tag: [u8; 8] = iu[8..16].try_into().unwrap_or([0; 8]);
        iu.fill(0);
        iu[0] = SRP_RSP;
        iu[4..8].copy_from_slice(&1u32.to_be_bytes());
        iu[8..16].copy_from_slice(&tag);
        let mut flags = self.flags;
        iu[19] = self.status;
        iu[20..24].copy_from_slice(&self.out_resid.to_be_bytes());
        iu[24..28].copy_from_slice(&self.in_resid.to_be_bytes());
        let mut len = 36;
        if let Some(code) = self.rsp_code {
            flags |= RSP_FLAG_RSPVALID;
            iu[32..36].copy_from_slice(&4u32.to_be_bytes());
            iu[39] = code;
            len += 4;
        } else if let Some(s) = self.sense {
            stats.check_conditions += 1;
            flags |= RSP_FLAG_SNSVALID;
            let fixed = s.fixed();
            iu[28..32].copy_from_slice(&(fixed.len() as u32).to_be_bytes());
            iu[36..36 + fixed.len()].copy_from_slice(&fixed);
            len += fixed.len();
        }
        iu[18] = flags;
        len
    }
}

/// An SRP_RSP carrying only a response code.
fn rsp_code(iu: &mut [u8; SRP_MAX_IU_LEN], code: u8) -> usize {
    let r = RspBuilder {
        rsp_code: Some(code),
        ..RspBuilder::default()
    };
    r.write(iu, &mut Stats::default())
}

/// SRP_TSK_MGMT: nothing is ever in flight (commands complete inside the
/// H_SEND_CRQ that carried them), so aborts and resets complete at once;
/// CLEAR ACA and unknown functions are not supported.
fn task_management(iu: &mut [u8; SRP_MAX_IU_LEN]) -> usize {
    let code = match iu[30] {
        TSK_ABORT_TASK | TSK_ABORT_TASK_SET | TSK_CLEAR_TASK_SET | TSK_LUN_RESET => {
            RSP_CODE_COMPLETE
        }
        TSK_CLEAR_ACA => RSP_CODE_NOT_SUPPORTED,
        _ => RSP_CODE_NOT_SUPPORTED,
    };
    rsp_code(iu, code)
}

/// The `v-scsi` adapter as it asks to be put on the VIO bus: a 256 MiB window,
/// H_VIO_SIGNAL bit 0, interrupts off until the driver enables them, and the
/// `#address-cells`/`#size-cells` of QEMU's node (`spapr_vscsi_devnode`).
pub fn device_spec() -> super::VioDeviceSpec {
    super::VioDeviceSpec {
        kind: super::VioKind::Vscsi,
        dma_window: Some(super::VIO_DMA_WINDOW),
        signal_mask: super::SIGNAL_IRQ,
        signal_reset: 0,
        props: alloc::vec![
            ("#address-cells", 2u32.to_be_bytes().to_vec()),
            ("#size-cells", 0u32.to_be_bytes().to_vec()),
        ],
    }
}

/// The serial number the disk `index` of partition `number` reports.
pub fn serial(number: u32, index: usize) -> String {
    format!("PVD{number:04}{index:02}")
}

#[cfg(test)]
mod tests;
