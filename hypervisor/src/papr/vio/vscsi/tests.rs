//! The SRP target driven as Linux `ibmvscsi` drives it, and as a hostile
//! client would, through a test TCE window at a non-zero bus address.

use super::scsi::{self, MemDisk, Sense};
use super::*;
use crate::papr::vio::crq::tests::TestWindow;
use crate::papr::vio::crq::CrqEntry;
use alloc::vec;

const BASE: u64 = 0x4000_0000;
/// IU slot, data buffers and an external table inside the window.
const IU: u64 = BASE + 0x1000;
const BUF: u64 = BASE + 0x2000;
const TABLE: u64 = BASE + 0x9000;

const INFO: TargetInfo<'static> = TargetInfo {
    partition_name: "lpar1",
    partition_number: 1,
};

struct Rig {
    t: SrpTarget,
    w: TestWindow,
    disks: Vec<MemDisk>,
}

fn pattern(blocks: usize) -> Vec<u8> {
    (0..blocks * 512).map(|i| (i * 7 + i / 512) as u8).collect()
}

fn rig() -> Rig {
    Rig {
        t: SrpTarget::new(),
        w: TestWindow::new(BASE, 16),
        disks: vec![
            MemDisk {
                data: pattern(64),
                read_only: false,
            },
            MemDisk {
                data: pattern(16),
                read_only: true,
            },
        ],
    }
}

fn request(format: u8, len: u16, ioba: u64) -> CrqEntry {
    let mut e = [0u8; 16];
    e[0] = 0x80;
    e[1] = format;
    e[6..8].copy_from_slice(&len.to_be_bytes());
    e[8..16].copy_from_slice(&ioba.to_be_bytes());
    CrqEntry(e)
}

const TAG: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];

/// An SRP_CMD IU for target `target` (method-2 LUN, as ibmvscsi builds it).
fn cmd(target: u8, cdb: &[u8]) -> [u8; 256] {
    let mut iu = [0u8; 256];
    iu[0] = SRP_CMD;
    iu[8..16].copy_from_slice(&TAG);
    iu[20] = 0x80 | target;
    iu[32..32 + cdb.len()].copy_from_slice(cdb);
    iu
}

fn direct(iu: &mut [u8; 256], data_in: bool, ioba: u64, len: u32) {
    iu[5] = if data_in { 1 } else { 1 << 4 };
    iu[48..56].copy_from_slice(&ioba.to_be_bytes());
    iu[60..64].copy_from_slice(&len.to_be_bytes());
}

fn desc(ioba: u64, len: u32) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&ioba.to_be_bytes());
    d[12..].copy_from_slice(&len.to_be_bytes());
    d
}

impl Rig {
    fn send(&mut self, iu: &[u8; 256]) -> CrqEntry {
        self.w.put(IU, iu);
        self.t
            .handle(
                &request(FORMAT_SRP, 256, IU),
                &mut self.w,
                &mut self.disks,
                &INFO,
            )
            .expect("a response")
    }

    fn rsp(&self) -> &[u8] {
        self.w.at(IU, 256)
    }

    fn status(&self) -> u8 {
        self.rsp()[19]
    }

    fn sense(&self) -> Option<Sense> {
        let r = self.rsp();
        (r[18] & RSP_FLAG_SNSVALID != 0).then(|| Sense {
            key: r[36 + 2],
            asc: r[36 + 12],
            ascq: r[36 + 13],
        })
    }

    fn login(&mut self) {
        let mut iu = [0u8; 256];
        iu[0] = SRP_LOGIN_REQ;
        iu[8..16].copy_from_slice(&TAG);
        iu[16..20].copy_from_slice(&256u32.to_be_bytes());
        iu[24..26].copy_from_slice(&6u16.to_be_bytes());
        let e = self.send(&iu);
        assert_eq!(e.status(), VIOSRP_OK);
        assert_eq!(self.rsp()[0], SRP_LOGIN_RSP);
    }
}

#[test]
fn login_grants_the_request_limit() {
    let mut r = rig();
    assert!(!r.t.logged_in());
    r.login();
    assert!(r.t.logged_in());
    let rsp = r.rsp();
    assert_eq!(be32(&rsp[4..8]), REQUEST_LIMIT);
    assert_eq!(&rsp[8..16], &TAG);
    assert_eq!(be32(&rsp[16..20]), 256);
    assert_eq!(be16(&rsp[24..26]), 6);
    r.t.reset();
    assert!(!r.t.logged_in());
}

#[test]
fn login_rejects_large_iu_and_unknown_formats() {
    let mut r = rig();
    let mut iu = [0u8; 256];
    iu[0] = SRP_LOGIN_REQ;
    iu[16..20].copy_from_slice(&4096u32.to_be_bytes());
    iu[24..26].copy_from_slice(&6u16.to_be_bytes());
    r.send(&iu);
    assert_eq!(r.rsp()[0], SRP_LOGIN_REJ);
    assert_eq!(be32(&r.rsp()[4..8]), LOGIN_REJ_IU_TOO_LARGE);
    iu[16..20].copy_from_slice(&256u32.to_be_bytes());
    iu[24..26].copy_from_slice(&0u16.to_be_bytes());
    r.send(&iu);
    assert_eq!(be32(&r.rsp()[4..8]), LOGIN_REJ_UNSUPPORTED_FORMAT);
    assert!(!r.t.logged_in());
}

#[test]
fn response_entry_carries_the_tag() {
    let mut r = rig();
    r.login();
    let e = r.send(&cmd(0, &[scsi::TEST_UNIT_READY]));
    assert_eq!(e.valid(), 0x80);
    assert_eq!(e.format(), FORMAT_SRP);
    assert_eq!(e.status(), VIOSRP_OK);
    assert_eq!(&e.0[8..16], &TAG);
    assert_eq!(e.iu_length(), 36);
    assert_eq!(r.rsp()[0], SRP_RSP);
    assert_eq!(be32(&r.rsp()[4..8]), 1, "one credit back per response");
    assert_eq!(r.status(), scsi::STATUS_GOOD);
}

#[test]
fn read_with_a_direct_descriptor() {
    let mut r = rig();
    r.login();
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 3, 0, 0, 2]);
    direct(&mut iu, true, BUF, 1024);
    r.send(&iu);
    assert_eq!(r.status(), 0);
    assert_eq!(r.rsp()[18], 0, "no residual");
    assert_eq!(r.w.at(BUF, 1024), &r.disks[0].data[3 * 512..5 * 512]);
}

#[test]
fn write_with_an_in_iu_indirect_list_then_read_back() {
    let mut r = rig();
    r.login();
    let data: Vec<u8> = (0..1536u32).map(|i| (i % 251) as u8).collect();
    // Three segments, scattered and out of order in the window.
    let segs = [(BUF + 0x2000, 512u32), (BUF, 1024), (BUF + 0x5000, 0)];
    r.w.put(BUF + 0x2000, &data[..512]);
    r.w.put(BUF, &data[512..]);
    let mut iu = cmd(0, &[scsi::WRITE_10, 0, 0, 0, 0, 10, 0, 0, 3]);
    iu[5] = SRP_DATA_DESC_INDIRECT << 4;
    iu[6] = 3;
    iu[48..64].copy_from_slice(&desc(0, 48));
    iu[64..68].copy_from_slice(&1536u32.to_be_bytes());
    for (i, (a, l)) in segs.iter().enumerate() {
        iu[68 + i * 16..84 + i * 16].copy_from_slice(&desc(*a, *l));
    }
    r.send(&iu);
    assert_eq!(r.status(), 0, "sense {:?}", r.sense());
    assert_eq!(&r.disks[0].data[10 * 512..13 * 512], &data[..]);
}

#[test]
fn read_with_an_external_descriptor_table() {
    let mut r = rig();
    r.login();
    // 12 segments of 256 bytes: more than the 10 ibmvscsi keeps in the IU.
    let mut table = Vec::new();
    for i in 0..12u64 {
        table.extend_from_slice(&desc(BUF + i * 0x200, 256));
    }
    r.w.put(TABLE, &table);
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 6]);
    iu[5] = SRP_DATA_DESC_INDIRECT;
    iu[7] = 10;
    iu[48..64].copy_from_slice(&desc(TABLE, 12 * 16));
    iu[64..68].copy_from_slice(&3072u32.to_be_bytes());
    iu[68..68 + 160].copy_from_slice(&table[..160]);
    r.send(&iu);
    assert_eq!(r.status(), 0, "sense {:?}", r.sense());
    for i in 0..12usize {
        assert_eq!(
            r.w.at(BUF + i as u64 * 0x200, 256),
            &r.disks[0].data[i * 256..(i + 1) * 256]
        );
    }
}

#[test]
fn lba_past_the_end_is_a_check_condition() {
    let mut r = rig();
    r.login();
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 63, 0, 0, 2]);
    direct(&mut iu, true, BUF, 1024);
    let e = r.send(&iu);
    assert_eq!(e.status(), VIOSRP_OK);
    assert_eq!(e.iu_length(), 36 + 18);
    assert_eq!(r.status(), scsi::STATUS_CHECK_CONDITION);
    assert_eq!(r.sense(), Some(Sense::LBA_OUT_OF_RANGE));
    assert_eq!(be32(&r.rsp()[28..32]), 18);
    assert_eq!(r.w.at(BUF, 1024), &[0u8; 1024][..], "nothing moved");
    assert_eq!(r.t.stats.check_conditions, 1);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut r = rig();
    r.login();
    let before = r.disks[1].data.clone();
    let mut iu = cmd(1, &[scsi::WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1]);
    direct(&mut iu, false, BUF, 512);
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::WRITE_PROTECTED));
    assert_eq!(r.disks[1].data, before);
}

#[test]
fn bad_descriptors_are_srp_errors_not_faults() {
    let mut r = rig();
    r.login();
    // Direct descriptor outside the window.
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 1]);
    direct(&mut iu, true, BASE + 0x100_0000, 512);
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::DATA_PHASE_ERROR));
    // A page the device may not write (TCE read-only): data-in fails.
    r.w.perm[2] = (true, false);
    direct(&mut iu, true, BUF, 512);
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::DATA_PHASE_ERROR));
    r.w.perm[2] = (true, true);
    // Indirect table longer than MAX_DESCRIPTORS.
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 1]);
    iu[5] = SRP_DATA_DESC_INDIRECT;
    iu[48..64].copy_from_slice(&desc(TABLE, 16 * 4096));
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    // Table length not a multiple of 16.
    iu[48..64].copy_from_slice(&desc(TABLE, 17));
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    // External table in an unmapped page.
    r.w.perm[9] = (false, false);
    iu[48..64].copy_from_slice(&desc(TABLE, 32));
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::DATA_PHASE_ERROR));
    // In-IU count running past the IU.
    iu[7] = 255;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    // Unknown descriptor format, and both directions at once.
    let mut iu = cmd(0, &[scsi::TEST_UNIT_READY]);
    iu[5] = 3;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    iu[5] = 0x11;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    // Additional CDB length pushing the descriptor past the IU.
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 1]);
    direct(&mut iu, true, BUF, 512);
    iu[31] = 200;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    assert_eq!(r.t.stats.bad_requests, 7);
}

#[test]
fn short_write_buffer_is_refused_and_short_read_buffer_overflows() {
    let mut r = rig();
    r.login();
    let before = r.disks[0].data.clone();
    let mut iu = cmd(0, &[scsi::WRITE_10, 0, 0, 0, 0, 0, 0, 0, 2]);
    direct(&mut iu, false, BUF, 512);
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::INVALID_FIELD_IN_IU));
    assert_eq!(r.disks[0].data, before);
    let mut iu = cmd(0, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 2]);
    direct(&mut iu, true, BUF, 512);
    r.send(&iu);
    assert_eq!(r.status(), 0);
    assert_eq!(r.rsp()[18] & RSP_FLAG_DIOVER, RSP_FLAG_DIOVER);
    assert_eq!(be32(&r.rsp()[24..28]), 512);
    assert_eq!(r.w.at(BUF, 512), &r.disks[0].data[..512]);
}

#[test]
fn inquiry_underflow_and_absent_luns() {
    let mut r = rig();
    r.login();
    let mut iu = cmd(0, &[scsi::INQUIRY, 0, 0, 0, 96]);
    direct(&mut iu, true, BUF, 96);
    r.send(&iu);
    assert_eq!(r.rsp()[18] & RSP_FLAG_DIUNDER, RSP_FLAG_DIUNDER);
    assert_eq!(be32(&r.rsp()[24..28]), 96 - 36);
    assert_eq!(r.w.at(BUF, 1), &[0]);
    // Target 5 has no disk: PQ 3; READ gets LUN NOT SUPPORTED.
    let mut iu = cmd(5, &[scsi::INQUIRY, 0, 0, 0, 36]);
    direct(&mut iu, true, BUF, 36);
    r.send(&iu);
    assert_eq!(r.status(), 0);
    assert_eq!(r.w.at(BUF, 1), &[0x7f]);
    let mut iu = cmd(5, &[scsi::READ_10, 0, 0, 0, 0, 0, 0, 0, 1]);
    direct(&mut iu, true, BUF, 512);
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::LUN_NOT_SUPPORTED));
    // LUN 1 of target 0, and a multi-level LUN: absent too.
    let mut iu = cmd(0, &[scsi::TEST_UNIT_READY]);
    iu[21] = 1;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::LUN_NOT_SUPPORTED));
    iu[21] = 0;
    iu[23] = 1;
    r.send(&iu);
    assert_eq!(r.sense(), Some(Sense::LUN_NOT_SUPPORTED));
}

#[test]
fn lun_addressing() {
    assert_eq!(
        lun_address(&[0x80 | 3, 0, 0, 0, 0, 0, 0, 0]),
        Some((0, 3, 0))
    );
    assert_eq!(
        lun_address(&[0x80 | 3, (2 << 5) | 7, 0, 0, 0, 0, 0, 0]),
        Some((2, 3, 7))
    );
    assert_eq!(lun_address(&[0, 4, 0, 0, 0, 0, 0, 0]), Some((0, 4, 0)));
    assert_eq!(lun_address(&[0x40, 0, 0, 0, 0, 0, 0, 0]), None);
    assert_eq!(lun_address(&[0xc1, 0x01, 0, 0, 0, 0, 0, 0]), None);
}

#[test]
fn task_management_completes() {
    let mut r = rig();
    r.login();
    let mut iu = [0u8; 256];
    iu[0] = SRP_TSK_MGMT;
    iu[8..16].copy_from_slice(&TAG);
    iu[20] = 0x80;
    for (func, code) in [
        (TSK_ABORT_TASK, RSP_CODE_COMPLETE),
        (TSK_LUN_RESET, RSP_CODE_COMPLETE),
        (TSK_ABORT_TASK_SET, RSP_CODE_COMPLETE),
        (TSK_CLEAR_TASK_SET, RSP_CODE_COMPLETE),
        (TSK_CLEAR_ACA, RSP_CODE_NOT_SUPPORTED),
        (0x77, RSP_CODE_NOT_SUPPORTED),
    ] {
        iu[30] = func;
        let e = r.send(&iu);
        assert_eq!(e.iu_length(), 40);
        let rsp = r.rsp();
        assert_eq!(rsp[0], SRP_RSP);
        assert_eq!(rsp[18] & RSP_FLAG_RSPVALID, RSP_FLAG_RSPVALID);
        assert_eq!(be32(&rsp[32..36]), 4);
        assert_eq!(rsp[39], code, "function {func:#x}");
    }
}

#[test]
fn mads() {
    let mut r = rig();
    let mut iu = [0u8; 256];
    iu[0..4].copy_from_slice(&MAD_ADAPTER_INFO.to_be_bytes());
    iu[6..8].copy_from_slice(&148u16.to_be_bytes());
    iu[8..16].copy_from_slice(&TAG);
    iu[16..24].copy_from_slice(&BUF.to_be_bytes());
    r.w.put(IU, &iu);
    let e =
        r.t.handle(&request(FORMAT_MAD, 256, IU), &mut r.w, &mut r.disks, &INFO)
            .unwrap();
    assert_eq!(e.format(), FORMAT_MAD);
    assert_eq!(&e.0[8..16], &TAG);
    assert_eq!(be16(&r.w.at(IU, 6)[4..6]), MAD_SUCCESS);
    let info = r.w.at(BUF, 148);
    assert_eq!(&info[..4], b"16.a");
    assert_eq!(&info[8..13], b"lpar1");
    assert_eq!(be32(&info[104..108]), 1);
    assert_eq!(be32(&info[112..116]), 2);
    assert_eq!(be32(&info[116..120]), 2 << 20);

    // Capabilities: both server_support fields cleared.
    r.w.put(BUF, &[0xff; 92]);
    iu[0..4].copy_from_slice(&MAD_CAPABILITIES.to_be_bytes());
    iu[6..8].copy_from_slice(&92u16.to_be_bytes());
    r.w.put(IU, &iu);
    r.t.handle(&request(FORMAT_MAD, 256, IU), &mut r.w, &mut r.disks, &INFO)
        .unwrap();
    assert_eq!(be16(&r.w.at(IU, 6)[4..6]), MAD_SUCCESS);
    assert_eq!(r.w.at(BUF + 74, 2), &[0, 0]);
    assert_eq!(r.w.at(BUF + 86, 2), &[0, 0]);
    assert_eq!(r.w.at(BUF + 72, 2), &[0xff, 0xff]);

    // Buffer outside the window: MAD FAILED; unknown MAD: NOT SUPPORTED.
    iu[16..24].copy_from_slice(&0u64.to_be_bytes());
    r.w.put(IU, &iu);
    r.t.handle(&request(FORMAT_MAD, 256, IU), &mut r.w, &mut r.disks, &INFO)
        .unwrap();
    assert_eq!(be16(&r.w.at(IU, 6)[4..6]), MAD_FAILED);
    iu[0..4].copy_from_slice(&0x99u32.to_be_bytes());
    r.w.put(IU, &iu);
    r.t.handle(&request(FORMAT_MAD, 256, IU), &mut r.w, &mut r.disks, &INFO)
        .unwrap();
    assert_eq!(be16(&r.w.at(IU, 6)[4..6]), MAD_NOT_SUPPORTED);
}

#[test]
fn bad_ius() {
    let mut r = rig();
    // IU longer than 256 bytes, shorter than a header, or unmapped: adapter
    // failure in the CRQ status, nothing written.
    for (len, ioba) in [(257u16, IU), (8, IU), (256, BASE + 0x10_0000)] {
        let e =
            r.t.handle(
                &request(FORMAT_SRP, len, ioba),
                &mut r.w,
                &mut r.disks,
                &INFO,
            )
            .unwrap();
        assert_eq!(e.status(), VIOSRP_ADAPTER_FAIL);
    }
    // Unknown CRQ format: ignored.
    assert!(r
        .t
        .handle(&request(0x07, 256, IU), &mut r.w, &mut r.disks, &INFO)
        .is_none());
    // Unknown SRP opcode: SRP_RSP with response code "invalid IU".
    let mut iu = [0u8; 256];
    iu[0] = 0x55;
    r.send(&iu);
    assert_eq!(r.rsp()[0], SRP_RSP);
    assert_eq!(r.rsp()[39], RSP_CODE_INVALID_IU);
    // Logout: no answer, login needed again.
    r.login();
    iu[0] = SRP_I_LOGOUT;
    r.w.put(IU, &iu);
    assert!(r
        .t
        .handle(&request(FORMAT_SRP, 256, IU), &mut r.w, &mut r.disks, &INFO)
        .is_none());
    assert!(!r.t.logged_in());
}
