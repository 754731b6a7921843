//! The SCSI direct-access device (SBC-3/SPC-4 subset) a vscsi LUN presents:
//! the commands Linux's `sd` and the SCSI scan issue, CHECK CONDITION with
//! fixed-format sense data for everything else.
//!
//! Decides only: [`execute`] turns a CDB into an [`Outcome`] (data to return,
//! a block range to move, or sense); the SRP layer moves the data through the
//! TCE window.

use alloc::vec;
use alloc::vec::Vec;

use crate::be::{be16, be32, be64};

/// Logical block size of every disk.
pub const BLOCK_SIZE: u64 = 512;
/// Largest transfer one command may ask for, in blocks (2 MiB, QEMU's
/// `VSCSI_MAX_SECTORS`; reported in the ADAPTER_INFO MAD and VPD page 0xB0).
pub const MAX_TRANSFER_BLOCKS: u64 = 4096;

/// SCSI status byte values (SAM-5).
pub const STATUS_GOOD: u8 = 0x00;
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
pub const STATUS_BUSY: u8 = 0x08;

/// Sense keys (SPC-4 4.5.6).
pub const KEY_NO_SENSE: u8 = 0x0;
pub const KEY_NOT_READY: u8 = 0x2;
pub const KEY_HARDWARE_ERROR: u8 = 0x4;
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
pub const KEY_DATA_PROTECT: u8 = 0x7;
pub const KEY_ABORTED_COMMAND: u8 = 0xB;

/// Operation codes.
pub const TEST_UNIT_READY: u8 = 0x00;
pub const REQUEST_SENSE: u8 = 0x03;
pub const READ_6: u8 = 0x08;
pub const WRITE_6: u8 = 0x0a;
pub const INQUIRY: u8 = 0x12;
pub const MODE_SENSE_6: u8 = 0x1a;
pub const START_STOP_UNIT: u8 = 0x1b;
pub const PREVENT_ALLOW: u8 = 0x1e;
pub const READ_CAPACITY_10: u8 = 0x25;
pub const READ_10: u8 = 0x28;
pub const WRITE_10: u8 = 0x2a;
pub const VERIFY_10: u8 = 0x2f;
pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
pub const MODE_SENSE_10: u8 = 0x5a;
pub const READ_16: u8 = 0x88;
pub const WRITE_16: u8 = 0x8a;
pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
pub const REPORT_LUNS: u8 = 0xa0;
/// SERVICE ACTION IN (16) service action READ CAPACITY (16).
pub const SA_READ_CAPACITY_16: u8 = 0x10;

/// Sense data: key, additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub const INVALID_OPCODE: Sense = Sense::illegal(0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::illegal(0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::illegal(0x24, 0x00);
    pub const LUN_NOT_SUPPORTED: Sense = Sense::illegal(0x25, 0x00);
    /// INVALID FIELD IN COMMAND INFORMATION UNIT: a bad SRP descriptor.
    pub const INVALID_FIELD_IN_IU: Sense = Sense::illegal(0x0e, 0x03);
    pub const WRITE_PROTECTED: Sense = Sense {
        key: KEY_DATA_PROTECT,
        asc: 0x27,
        ascq: 0x00,
    };
    /// The data could not be moved through the TCE window.
    pub const DATA_PHASE_ERROR: Sense = Sense {
        key: KEY_ABORTED_COMMAND,
        asc: 0x4b,
        ascq: 0x00,
    };

    const fn illegal(asc: u8, ascq: u8) -> Sense {
        Sense {
            key: KEY_ILLEGAL_REQUEST,
            asc,
            ascq,
        }
    }

    /// Fixed-format sense data (SPC-4 4.5.3), 18 bytes, current error.
    pub fn fixed(&self) -> [u8; 18] {
        let mut s = [0u8; 18];
        s[0] = 0x70;
        s[2] = self.key;
        s[7] = 10;
        s[12] = self.asc;
        s[13] = self.ascq;
        s
    }
}

/// The disk behind a LUN. Memory-backed today (an image from the boot bundle);
/// a passed-through device or a server partition would stage blocks in memory
/// behind the same two calls.
pub trait BlockBackend {
    /// Size in bytes (a multiple of [`BLOCK_SIZE`]).
    fn size(&self) -> u64;
    fn read_only(&self) -> bool;
    /// The stored bytes `[offset, offset + len)` (within `size`).
    fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]>;
    /// The same, writable (`None` if read-only).
    fn bytes_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]>;
}

/// A disk in a `Vec` (tests, and small images).
#[derive(Clone, Debug)]
pub struct MemDisk {
    pub data: Vec<u8>,
    pub read_only: bool,
}

impl BlockBackend for MemDisk {
    fn size(&self) -> u64 {
        self.data.len() as u64 & !(BLOCK_SIZE - 1)
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    fn bytes_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        if self.read_only {
            return None;
        }
        let start = usize::try_from(offset).ok()?;
        self.data.get_mut(start..start.checked_add(len)?)
    }
}

/// What a command does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// GOOD, no data.
    Good,
    /// GOOD, these bytes go to the initiator (already cut to the allocation
    /// length).
    DataIn(Vec<u8>),
    /// GOOD once the bytes `[offset, offset + len)` of the disk went to the
    /// initiator.
    Read { offset: u64, len: u64 },
    /// GOOD once `len` bytes from the initiator were stored at `offset`.
    Write { offset: u64, len: u64 },
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

/// Identity strings of a LUN.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// Unit serial number (VPD 0x80), printable ASCII.
    pub serial: &'a str,
}

/// Cuts `data` to the allocation length.
fn alloc_cut(mut data: Vec<u8>, alloc: usize) -> Outcome {
    data.truncate(alloc);
    Outcome::DataIn(data)
}

/// Standard INQUIRY data; `present` false gives peripheral qualifier 3 (no
/// device at this LUN), which the Linux scan skips quietly.
pub fn inquiry_standard(present: bool) -> Vec<u8> {
    let mut d = vec![0u8; 36];
    d[0] = if present { 0x00 } else { 0x7f };
    d[2] = 0x06; // SPC-4
    d[3] = 0x02; // response data format 2
    d[4] = 31; // additional length
    d[7] = 0x02; // CMDQUE
    d[8..16].copy_from_slice(b"PAPRIKA ");
    d[16..32].copy_from_slice(b"VSCSI DISK      ");
    d[32..36].copy_from_slice(b"0001");
    d
}

/// VPD pages the disk has (page 0x00 lists them).
const VPD_PAGES: [u8; 4] = [0x00, 0x80, 0x83, 0xb0];

fn inquiry(cdb: &[u8], id: &Identity<'_>) -> Outcome {
    let alloc = usize::from(be16(&cdb[3..5]));
    let evpd = cdb[1] & 1 != 0;
    let page = cdb[2];
    if !evpd {
        if page != 0 {
            return Outcome::Check(Sense::INVALID_FIELD_IN_CDB);
        }
        return alloc_cut(inquiry_standard(true), alloc);
    }
    let mut d = vec![0u8, page, 0, 0];
    match page {
        0x00 => d.extend_from_slice(&VPD_PAGES),
        0x80 => d.extend_from_slice(id.serial.as_bytes()),
        0x83 => {
            // One T10 vendor ID designator, ASCII: "PAPRIKA " + serial.
            let len = 8 + id.serial.len();
            d.extend_from_slice(&[0x02, 0x01, 0x00, len as u8]);
            d.extend_from_slice(b"PAPRIKA ");
            d.extend_from_slice(id.serial.as_bytes());
        }
        0xb0 => {
            // Block limits (SBC-3 6.5.3), 0x3c bytes of payload.
            let mut p = [0u8; 0x3c];
            p[4..8].copy_from_slice(&(MAX_TRANSFER_BLOCKS as u32).to_be_bytes());
            p[8..12].copy_from_slice(&(MAX_TRANSFER_BLOCKS as u32).to_be_bytes());
            d.extend_from_slice(&p);
        }
        _ => return Outcome::Check(Sense::INVALID_FIELD_IN_CDB),
    }
    let len = (d.len() - 4) as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
    alloc_cut(d, alloc)
}

/// REPORT LUNS for a target with one LUN (0): the HBA answers it also for a
/// target without a disk (then the list is empty).
pub fn report_luns(cdb: &[u8], present: bool) -> Outcome {
    let alloc = be32(&cdb[6..10]) as usize;
    if alloc < 16 {
        return Outcome::Check(Sense::INVALID_FIELD_IN_CDB);
    }
    let mut d = vec![0u8; 8];
    if present {
        d[3] = 8;
        d.extend_from_slice(&[0u8; 8]);
    }
    alloc_cut(d, alloc)
}

/// MODE SENSE (6) and (10): the caching page (write cache off: every write is
/// in the image when it completes) and the control page; the header's WP bit
/// for a read-only disk; one short block descriptor unless DBD.
fn mode_sense(cdb: &[u8], disk: &dyn BlockBackend) -> Outcome {
    let ten = cdb[0] == MODE_SENSE_10;
    let dbd = cdb[1] & 0x08 != 0;
    let pc = cdb[2] >> 6;
    let page = cdb[2] & 0x3f;
    let subpage = cdb[3];
    let alloc = if ten {
        usize::from(be16(&cdb[7..9]))
    } else {
        usize::from(cdb[4])
    };
    if subpage != 0 && subpage != 0xff {
        return Outcome::Check(Sense::INVALID_FIELD_IN_CDB);
    }
    // Saved values are not supported (SPC-4: SAVING PARAMETERS NOT SUPPORTED).
    if pc == 3 {
        return Outcome::Check(Sense::illegal(0x39, 0x00));
    }
    let changeable = pc == 1;
    let mut caching = [0u8; 20];
    caching[0] = 0x08;
    caching[1] = 0x12;
    let mut control = [0u8; 12];
    control[0] = 0x0a;
    control[1] = 0x0a;
    if !changeable {
        control[3] = 0x10; // unrestricted reordering not allowed: QERR 0
    }
    let mut pages: Vec<u8> = Vec::new();
    match page {
        0x08 => pages.extend_from_slice(&caching),
        0x0a => pages.extend_from_slice(&control),
        0x3f => {
            pages.extend_from_slice(&caching);
            pages.extend_from_slice(&control);
        }
        _ => return Outcome::Check(Sense::INVALID_FIELD_IN_CDB),
    }
    let wp = if disk.read_only() { 0x80 } else { 0 };
    let mut bd = Vec::new();
    if !dbd {
        let blocks = disk.size() / BLOCK_SIZE;
        let n = u32::try_from(blocks).unwrap_or(u32::MAX).min(0x00ff_ffff);
        bd.push(0);
        bd.extend_from_slice(&n.to_be_bytes()[1..]);
        bd.push(0);
        bd.extend_from_slice(&(BLOCK_SIZE as u32).to_be_bytes()[1..]);
    }
    let mut d = Vec::new();
    if ten {
        let len = (6 + bd.len() + pages.len()) as u16;
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, wp, 0, 0]);
        d.extend_from_slice(&(bd.len() as u16).to_be_bytes());
    } else {
        d.push((3 + bd.len() + pages.len()) as u8);
        d.extend_from_slice(&[0, wp, bd.len() as u8]);
    }
    d.extend_from_slice(&bd);
    d.extend_from_slice(&pages);
    alloc_cut(d, alloc)
}

/// A block range from a READ/WRITE CDB, checked against the disk.
fn range(lba: u64, blocks: u64, disk: &dyn BlockBackend, write: bool) -> Outcome {
    if blocks > MAX_TRANSFER_BLOCKS {
        return Outcome::Check(Sense::INVALID_FIELD_IN_CDB);
    }
    let end = lba.checked_add(blocks);
    if end.is_none_or(|e| e > disk.size() / BLOCK_SIZE) {
        return Outcome::Check(Sense::LBA_OUT_OF_RANGE);
    }
    if write && disk.read_only() {
        return Outcome::Check(Sense::WRITE_PROTECTED);
    }
    if blocks == 0 {
        return Outcome::Good;
    }
    let (offset, len) = (lba * BLOCK_SIZE, blocks * BLOCK_SIZE);
    if write {
        Outcome::Write { offset, len }
    } else {
        Outcome::Read { offset, len }
    }
}

/// The CDB length of an operation code (SPC-4 4.2.5.1: the group code).
pub fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 16,
    }
}

/// Runs one command on a LUN. `disk` is `None` for a LUN without a device:
/// INQUIRY then reports peripheral qualifier 3, REPORT LUNS an empty list,
/// anything else LOGICAL UNIT NOT SUPPORTED. `cdb` is 16 bytes (the SRP_CMD
/// field; shorter CDBs are zero-padded).
pub fn execute(cdb: &[u8; 16], disk: Option<&dyn BlockBackend>, id: &Identity<'_>) -> Outcome {
    let op = cdb[0];
    let Some(disk) = disk else {
        return match op {
            INQUIRY if cdb[1] & 1 == 0 && cdb[2] == 0 => {
                alloc_cut(inquiry_standard(false), usize::from(be16(&cdb[3..5])))
            }
            REPORT_LUNS => report_luns(cdb, false),
            REQUEST_SENSE => alloc_cut(
                Sense::LUN_NOT_SUPPORTED.fixed().to_vec(),
                usize::from(cdb[4]),
            ),
            _ => Outcome::Check(Sense::LUN_NOT_SUPPORTED),
        };
    };
    let blocks = disk.size() / BLOCK_SIZE;
    match op {
        TEST_UNIT_READY | START_STOP_UNIT | PREVENT_ALLOW => Outcome::Good,
        // Sense is returned with each CHECK CONDITION (autosense), so nothing is
        // pending here.
        REQUEST_SENSE => alloc_cut(
            Sense {
                key: KEY_NO_SENSE,
                asc: 0,
                ascq: 0,
            }
            .fixed()
            .to_vec(),
            usize::from(cdb[4]),
        ),
        INQUIRY => inquiry(cdb, id),
        REPORT_LUNS => report_luns(cdb, true),
        MODE_SENSE_6 | MODE_SENSE_10 => mode_sense(cdb, disk),
        READ_CAPACITY_10 => {
            let last = u32::try_from(blocks.saturating_sub(1)).unwrap_or(u32::MAX);
            let mut d = Vec::with_capacity(8);
            d.extend_from_slice(&last.to_be_bytes());
            d.extend_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
            Outcome::DataIn(d)
        }
        SERVICE_ACTION_IN_16 if cdb[1] & 0x1f == SA_READ_CAPACITY_16 => {
            let alloc = be32(&cdb[10..14]) as usize;
            let mut d = vec![0u8; 32];
            d[..8].copy_from_slice(&blocks.saturating_sub(1).to_be_bytes());
            d[8..12].copy_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
            alloc_cut(d, alloc)
        }
        READ_6 | WRITE_6 => {
            let lba = u64::from(be32(&cdb[0..4]) & 0x1f_ffff);
            // A transfer length of 0 means 256 blocks (SBC-3 5.7).
            let n = match cdb[4] {
                0 => 256,
                n => u64::from(n),
            };
            range(lba, n, disk, op == WRITE_6)
        }
        READ_10 | WRITE_10 => {
            let lba = u64::from(be32(&cdb[2..6]));
            range(lba, u64::from(be16(&cdb[7..9])), disk, op == WRITE_10)
        }
        READ_16 | WRITE_16 => {
            let lba = be64(&cdb[2..10]);
            range(lba, u64::from(be32(&cdb[10..14])), disk, op == WRITE_16)
        }
        VERIFY_10 => {
            let lba = u64::from(be32(&cdb[2..6]));
            // BYTCHK 0: a medium check, which memory always passes.
            if cdb[1] & 0x06 != 0 {
                return Outcome::Check(Sense::INVALID_FIELD_IN_CDB);
            }
            match range(lba, u64::from(be16(&cdb[7..9])), disk, false) {
                Outcome::Read { .. } => Outcome::Good,
                other => other,
            }
        }
        SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => {
            // Memory-backed and write-through: nothing is cached. The range is
            // still checked (SBC-3 5.26).
            let (lba, n) = if op == SYNCHRONIZE_CACHE_10 {
                (u64::from(be32(&cdb[2..6])), u64::from(be16(&cdb[7..9])))
            } else {
                (be64(&cdb[2..10]), u64::from(be32(&cdb[10..14])))
            };
            if lba.checked_add(n).is_none_or(|e| e > blocks) {
                return Outcome::Check(Sense::LBA_OUT_OF_RANGE);
            }
            Outcome::Good
        }
        _ => Outcome::Check(Sense::INVALID_OPCODE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(blocks: usize, ro: bool) -> MemDisk {
        MemDisk {
            data: vec![0; blocks * 512],
            read_only: ro,
        }
    }

    const ID: Identity<'static> = Identity { serial: "PVD-0001" };

    fn run(cdb: &[u8], d: &MemDisk) -> Outcome {
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        execute(&c, Some(d), &ID)
    }

    fn data(o: Outcome) -> Vec<u8> {
        match o {
            Outcome::DataIn(d) => d,
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn sense_is_fixed_format() {
        let s = Sense::LBA_OUT_OF_RANGE.fixed();
        assert_eq!(s[0], 0x70);
        assert_eq!(s[2], 5);
        assert_eq!(s[7], 10);
        assert_eq!((s[12], s[13]), (0x21, 0));
    }

    #[test]
    fn inquiry_standard_and_vpd() {
        let d = disk(8, false);
        let std = data(run(&[INQUIRY, 0, 0, 0, 36], &d));
        assert_eq!(std.len(), 36);
        assert_eq!(std[0], 0);
        assert_eq!(&std[8..16], b"PAPRIKA ");
        // Allocation length cuts.
        assert_eq!(data(run(&[INQUIRY, 0, 0, 0, 5], &d)).len(), 5);
        let p0 = data(run(&[INQUIRY, 1, 0, 0, 255], &d));
        assert_eq!(&p0[..4], &[0, 0, 0, 4]);
        assert_eq!(&p0[4..], &VPD_PAGES);
        let p80 = data(run(&[INQUIRY, 1, 0x80, 0, 255], &d));
        assert_eq!(&p80[4..], b"PVD-0001");
        let p83 = data(run(&[INQUIRY, 1, 0x83, 0, 255], &d));
        assert_eq!(p83[3] as usize, p83.len() - 4);
        assert_eq!(&p83[8..16], b"PAPRIKA ");
        let pb0 = data(run(&[INQUIRY, 1, 0xb0, 0, 255], &d));
        assert_eq!(&pb0[2..4], &[0, 0x3c]);
        assert_eq!(be32(&pb0[8..12]), 4096);
        assert_eq!(
            run(&[INQUIRY, 1, 0x99, 0, 255], &d),
            Outcome::Check(Sense::INVALID_FIELD_IN_CDB)
        );
        assert_eq!(
            run(&[INQUIRY, 0, 0x80, 0, 255], &d),
            Outcome::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn absent_lun() {
        let mut c = [0u8; 16];
        c[0] = INQUIRY;
        c[4] = 36;
        let d = data(execute(&c, None, &ID));
        assert_eq!(d[0], 0x7f);
        c[0] = READ_10;
        assert_eq!(
            execute(&c, None, &ID),
            Outcome::Check(Sense::LUN_NOT_SUPPORTED)
        );
        c = [0; 16];
        c[0] = REPORT_LUNS;
        c[9] = 64;
        assert_eq!(data(execute(&c, None, &ID)), vec![0u8; 8]);
    }

    #[test]
    fn capacity_and_luns() {
        let d = disk(2048, false);
        let c10 = data(run(&[READ_CAPACITY_10], &d));
        assert_eq!(be32(&c10[..4]), 2047);
        assert_eq!(be32(&c10[4..]), 512);
        let c16 = data(run(
            &[
                SERVICE_ACTION_IN_16,
                0x10,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                32,
            ],
            &d,
        ));
        assert_eq!(c16.len(), 32);
        assert_eq!(be64(&c16[..8]), 2047);
        assert_eq!(be32(&c16[8..12]), 512);
        let l = data(run(&[REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 1, 0], &d));
        assert_eq!(l.len(), 16);
        assert_eq!(be32(&l[..4]), 8);
        assert_eq!(
            run(&[REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0, 4], &d),
            Outcome::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn reads_and_writes_checked_against_the_end() {
        let d = disk(100, false);
        assert_eq!(
            run(&[READ_10, 0, 0, 0, 0, 98, 0, 0, 2], &d),
            Outcome::Read {
                offset: 98 * 512,
                len: 1024
            }
        );
        assert_eq!(
            run(&[READ_10, 0, 0, 0, 0, 99, 0, 0, 2], &d),
            Outcome::Check(Sense::LBA_OUT_OF_RANGE)
        );
        assert_eq!(
            run(&[WRITE_10, 0, 0, 0, 0, 1, 0, 0, 1], &d),
            Outcome::Write {
                offset: 512,
                len: 512
            }
        );
        let mut c16 = [0u8; 16];
        c16[0] = READ_16;
        c16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        c16[13] = 1;
        assert_eq!(run(&c16, &d), Outcome::Check(Sense::LBA_OUT_OF_RANGE));
        c16[2..10].copy_from_slice(&5u64.to_be_bytes());
        c16[0] = WRITE_16;
        assert_eq!(
            run(&c16, &d),
            Outcome::Write {
                offset: 5 * 512,
                len: 512
            }
        );
        // READ(6): length 0 is 256 blocks, beyond this disk.
        assert_eq!(
            run(&[READ_6, 0, 0, 0, 0], &d),
            Outcome::Check(Sense::LBA_OUT_OF_RANGE)
        );
        assert_eq!(run(&[READ_10, 0, 0, 0, 0, 5, 0, 0, 0], &d), Outcome::Good);
        // More than the advertised maximum transfer.
        let big = disk(8192, false);
        assert_eq!(
            run(&[READ_10, 0, 0, 0, 0, 0, 0, 0x10, 0x01], &big),
            Outcome::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn read_only_disk() {
        let d = disk(10, true);
        assert_eq!(
            run(&[WRITE_10, 0, 0, 0, 0, 1, 0, 0, 1], &d),
            Outcome::Check(Sense::WRITE_PROTECTED)
        );
        let ms = data(run(&[MODE_SENSE_6, 0, 0x3f, 0, 255], &d));
        assert_eq!(ms[2] & 0x80, 0x80);
        assert_eq!(ms[0] as usize, ms.len() - 1);
        assert_eq!(ms[3], 8);
        let rw = disk(10, false);
        let ms = data(run(&[MODE_SENSE_6, 0x08, 0x08, 0, 255], &rw));
        assert_eq!(ms[2], 0);
        assert_eq!(ms[3], 0);
        assert_eq!(&ms[4..6], &[0x08, 0x12]);
        let ms10 = data(run(&[MODE_SENSE_10, 0, 0x3f, 0, 0, 0, 0, 1, 0], &rw));
        assert_eq!(be16(&ms10[..2]) as usize, ms10.len() - 2);
        assert_eq!(be16(&ms10[6..8]), 8);
        assert_eq!(
            run(&[MODE_SENSE_6, 0, 0x1c, 0, 255], &rw),
            Outcome::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn misc_commands() {
        let d = disk(10, false);
        assert_eq!(run(&[TEST_UNIT_READY], &d), Outcome::Good);
        assert_eq!(run(&[SYNCHRONIZE_CACHE_10], &d), Outcome::Good);
        assert_eq!(
            run(&[SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 9, 0, 0, 2], &d),
            Outcome::Check(Sense::LBA_OUT_OF_RANGE)
        );
        assert_eq!(run(&[SYNCHRONIZE_CACHE_16], &d), Outcome::Good);
        let rs = data(run(&[REQUEST_SENSE, 0, 0, 0, 18], &d));
        assert_eq!((rs[0], rs[2]), (0x70, 0));
        assert_eq!(run(&[0xc7], &d), Outcome::Check(Sense::INVALID_OPCODE));
        assert_eq!(
            run(&[SERVICE_ACTION_IN_16, 0x11], &d),
            Outcome::Check(Sense::INVALID_OPCODE)
        );
    }
}
