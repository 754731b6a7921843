//! H_TPM_COMM (hcall 0xef10): the host TPM proxy a secure VM's ESM blob is
//! unwrapped through (the ultravisor sends TPM commands with it on the SVM's
//! behalf). Portable: the hcall's argument checks, one session per partition
//! and the proxy; a [`TpmTransport`] commits (on POWER the TCG I2C interface
//! over OPAL_I2C_REQUEST, [`super::tis_i2c`]).
//!
//! The ABI is QEMU pseries' (`hw/ppc/spapr_tpm_proxy.c`, the only other
//! implementation): r4 = op, then for TPM_COMM_OP_EXECUTE (1) r5/r6 = the
//! command's guest real address and size, r7/r8 = the response buffer and its
//! size; on success r4 = the response's length. TPM_COMM_OP_CLOSE_SESSION (2)
//! ends the caller's session. Codes as QEMU's:
//!
//! | condition | answer |
//! | --- | --- |
//! | no TPM proxy for this partition: neither `tpm = true` nor `secure = true` in its manifest | H_FUNCTION (QEMU: no `spapr-tpm-proxy` device) |
//! | op not 1 or 2 | H_PARAMETER |
//! | command size > 4096 | H_P3 |
//! | response buffer size < 4096 | H_P5 (so a response, at most 4096 bytes, is never truncated) |
//! | no TPM on the machine, or the TPM (or the bus to it) failed | H_RESOURCE (QEMU: open/write/read of the host TPM failed) |
//!
//! The permission is the partition's, as QEMU's device is the VMM's choice;
//! a permitted partition on a machine without a TPM gets what a QEMU guest
//! gets whose proxy cannot open the host TPM: H_RESOURCE at EXECUTE, success
//! at CLOSE_SESSION.
//!
//! Paprika is stricter than QEMU where QEMU does not look: a command shorter
//! than a TPM header (10 bytes) is H_P3; a command or the first 4096 bytes of
//! the response buffer (all a response can use) outside the partition's memory,
//! or in memory the hypervisor may not touch (a secure VM's unshared pages), is
//! H_PARAMETER, checked before the TPM sees anything. Addresses lose their top
//! four bits first (QEMU's `ppc64_phys_to_real`).
//!
//! Sessions: QEMU opens the host's `/dev/tpmrm0` per proxy, whose resource
//! manager flushes what the session created when it is closed. Here every
//! command runs to its response under the proxy's lock, so one partition never
//! reads another's response; each partition's [`TpmSession`] records the
//! transient objects and sessions its commands created (the handle in their
//! response) and TPM2_FlushContext's them at CLOSE_SESSION and when the
//! partition stops or reboots. A partition can still name another's transient
//! handle in a command (no handle virtualisation; docs/pef.md).

use crate::papr::hcall::{HcallError, HcallResult};

/// TPM_COMM_OP_EXECUTE: send one command, read its response.
pub const OP_EXECUTE: u64 = 1;
/// TPM_COMM_OP_CLOSE_SESSION: forget the caller's session.
pub const OP_CLOSE_SESSION: u64 = 2;
/// The largest command or response (QEMU's TPM_SPAPR_BUFSIZE, the TPM's
/// usual maximum).
pub const BUFSIZE: usize = 4096;
/// A TPM 2.0 command or response header: tag (2), size (4), code (4).
pub const HEADER: usize = 10;
/// Transient objects and sessions one partition may hold at once.
pub const MAX_HANDLES: usize = 16;

/// TPM2_FlushContext's command code.
pub const CC_FLUSH_CONTEXT: u32 = 0x165;
/// Commands whose response's first handle is a new transient object or
/// session (TPM 2.0 Part 3): CreatePrimary, Load, LoadExternal, ContextLoad,
/// StartAuthSession, HMAC_Start, HashSequenceStart, CreateLoaded.
const CREATES_HANDLE: [u32; 8] = [0x131, 0x157, 0x167, 0x161, 0x176, 0x15b, 0x186, 0x191];
const TAG_NO_SESSIONS: u16 = 0x8001;

/// Why a transport could not carry a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No TPM answers.
    Absent,
    /// The TPM did not become ready, take the command or answer in time.
    Timeout,
    /// The bus reported an error (OPAL I2C error, NACK).
    Bus,
    /// The TPM broke the interface's rules (a response larger than the
    /// buffer or than it said, an unexpected status).
    Protocol,
}

/// A way to one TPM.
pub trait TpmTransport {
    /// Whether a TPM was found (probed once).
    fn present(&self) -> bool;
    /// Sends `cmd` (a whole TPM command) and reads the response into `rsp`;
    /// its length.
    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError>;
    /// The last session ended: give the TPM back (relinquish the locality).
    fn release(&mut self) {}
}

/// The transport of a machine without a TPM.
pub struct NoTpm;

impl TpmTransport for NoTpm {
    fn present(&self) -> bool {
        false
    }
    fn execute(&mut self, _cmd: &[u8], _rsp: &mut [u8]) -> Result<usize, TransportError> {
        Err(TransportError::Absent)
    }
}

/// A partition's memory as the hcall sees it (`Partition::read_guest` etc.
/// on POWER, which also refuse a secure VM's unshared pages).
pub trait GuestBuffers {
    /// Whether `[gpa, gpa + len)` is memory the hypervisor may read and write.
    fn accessible(&self, gpa: u64, len: u64) -> bool;
    fn read(&self, gpa: u64, out: &mut [u8]) -> bool;
    fn write(&self, gpa: u64, data: &[u8]) -> bool;
}

/// One partition's TPM session: the transient handles its commands created.
#[derive(Debug, Default)]
pub struct TpmSession {
    handles: heapless::Vec<u32, MAX_HANDLES>,
    /// Commands sent (diagnostics).
    pub commands: u64,
}

impl TpmSession {
    pub const fn new() -> Self {
        Self {
            handles: heapless::Vec::new(),
            commands: 0,
        }
    }

    /// The transient objects and sessions this partition holds.
    pub fn handles(&self) -> &[u32] {
        &self.handles
    }
}

/// The proxy: the transport and the bounce buffers every command goes
/// through (guest memory is never handed to the transport).
pub struct TpmProxy<T> {
    transport: T,
    cmd: [u8; BUFSIZE],
    rsp: [u8; BUFSIZE],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// QEMU's `ppc64_phys_to_real`: the top four bits of a real address are
/// ignored (a caller may pass a 0xc000... linear address).
fn real(addr: u64) -> u64 {
    addr & 0x0fff_ffff_ffff_ffff
}

/// A TPM2_FlushContext command for `handle`.
pub fn flush_context_command(handle: u32) -> [u8; 14] {
    let mut c = [0u8; 14];
    c[0..2].copy_from_slice(&TAG_NO_SESSIONS.to_be_bytes());
    c[2..6].copy_from_slice(&14u32.to_be_bytes());
    c[6..10].copy_from_slice(&CC_FLUSH_CONTEXT.to_be_bytes());
    c[10..14].copy_from_slice(&handle.to_be_bytes());
    c
}

impl<T: TpmTransport> TpmProxy<T> {
    pub const fn new(transport: T) -> Self {
        Self {
            transport,
            cmd: [0; BUFSIZE],
            rsp: [0; BUFSIZE],
        }
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn present(&self) -> bool {
        self.transport.present()
    }

    /// H_TPM_COMM of a partition with session `s` (`allowed`: it has the
    /// `tpm` or `secure` permission); `args` are r4..r8.
    pub fn hcall(
        &mut self,
        allowed: bool,
        s: &mut TpmSession,
        args: &[u64],
        mem: &dyn GuestBuffers,
    ) -> HcallResult {
        if !allowed {
            return Err(HcallError::Function);
        }
        let arg = |i: usize| args.get(i).copied().unwrap_or(0);
        match arg(0) {
            OP_EXECUTE => self
                .execute(s, real(arg(1)), arg(2), real(arg(3)), arg(4), mem)
                .map(|n| [n as u64, 0, 0, 0]),
            OP_CLOSE_SESSION => {
                self.close(s);
                Ok([0; 4])
            }
            _ => Err(HcallError::Parameter),
        }
    }

    fn execute(
        &mut self,
        s: &mut TpmSession,
        data_in: u64,
        in_size: u64,
        data_out: u64,
        out_size: u64,
        mem: &dyn GuestBuffers,
    ) -> Result<usize, HcallError> {
        if in_size > BUFSIZE as u64 || in_size < HEADER as u64 {
            return Err(HcallError::P3);
        }
        if out_size < BUFSIZE as u64 {
            return Err(HcallError::P5);
        }
        if !mem.accessible(data_in, in_size) || !mem.accessible(data_out, BUFSIZE as u64) {
            return Err(HcallError::Parameter);
        }
        let n = in_size as usize;
        if !mem.read(data_in, &mut self.cmd[..n]) {
            return Err(HcallError::Parameter);
        }
        let code = be32(&self.cmd, 6);
        if CREATES_HANDLE.contains(&code) && s.handles.is_full() {
            // It could not be flushed at the session's end: refuse before the
            // TPM sees it (the partition may flush some and retry).
            return Err(HcallError::Resource);
        }
        let flushed = (code == CC_FLUSH_CONTEXT && n >= HEADER + 4).then(|| be32(&self.cmd, 10));
        s.commands += 1;
        let len = match self.transport.execute(&self.cmd[..n], &mut self.rsp) {
            Ok(len) if (HEADER..=BUFSIZE).contains(&len) => len,
            Ok(_) | Err(_) => return Err(HcallError::Resource),
        };
        if be32(&self.rsp, 6) == 0 {
            if CREATES_HANDLE.contains(&code) && len >= HEADER + 4 {
                let _ = s.handles.push(be32(&self.rsp, HEADER));
            }
            if let Some(h) = flushed {
                s.handles.retain(|&x| x != h);
            }
        }
        if !mem.write(data_out, &self.rsp[..len]) {
            return Err(HcallError::Parameter);
        }
        Ok(len)
    }

    /// Ends session `s`: flushes what it created, then gives the TPM back.
    /// CLOSE_SESSION, and the partition's stop or reboot.
    pub fn close(&mut self, s: &mut TpmSession) {
        if !self.transport.present() {
            s.handles.clear();
            return;
        }
        for h in core::mem::take(&mut s.handles) {
            let c = flush_context_command(h);
            // A handle the partition flushed itself (by ContextSave's
            // flush or a failed load) answers an error: nothing to do.
            let _ = self.transport.execute(&c, &mut self.rsp);
        }
        self.transport.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Guest memory at [base, base + len) (a non-zero base, so an offset
    /// taken for an address fails).
    struct Mem {
        base: u64,
        bytes: RefCell<Vec<u8>>,
        forbidden: Option<(u64, u64)>,
    }

    impl Mem {
        fn new() -> Self {
            Self {
                base: 0x10_0000,
                bytes: RefCell::new(std::vec![0; 0x10000]),
                forbidden: None,
            }
        }
        fn put(&self, gpa: u64, data: &[u8]) {
            let o = (gpa - self.base) as usize;
            self.bytes.borrow_mut()[o..o + data.len()].copy_from_slice(data);
        }
        fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
            let o = (gpa - self.base) as usize;
            self.bytes.borrow()[o..o + len].to_vec()
        }
    }

    impl GuestBuffers for Mem {
        fn accessible(&self, gpa: u64, len: u64) -> bool {
            let end = self.base + self.bytes.borrow().len() as u64;
            let inside = gpa >= self.base && gpa.checked_add(len).is_some_and(|e| e <= end);
            let clash = self
                .forbidden
                .is_some_and(|(a, l)| gpa < a + l && a < gpa + len);
            inside && !clash
        }
        fn read(&self, gpa: u64, out: &mut [u8]) -> bool {
            self.accessible(gpa, out.len() as u64) && {
                out.copy_from_slice(&self.get(gpa, out.len()));
                true
            }
        }
        fn write(&self, gpa: u64, data: &[u8]) -> bool {
            self.accessible(gpa, data.len() as u64) && {
                self.put(gpa, data);
                true
            }
        }
    }

    /// A TPM that answers GetRandom with a counter and creates handles.
    #[derive(Default)]
    struct FakeTpm {
        log: Vec<Vec<u8>>,
        next_handle: u32,
        fail: bool,
        released: u32,
    }

    fn response(rc: u32, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&TAG_NO_SESSIONS.to_be_bytes());
        r.extend_from_slice(&((HEADER + body.len()) as u32).to_be_bytes());
        r.extend_from_slice(&rc.to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    impl TpmTransport for FakeTpm {
        fn present(&self) -> bool {
            true
        }
        fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
            self.log.push(cmd.to_vec());
            if self.fail {
                return Err(TransportError::Timeout);
            }
            let r = match be32(cmd, 6) {
                0x17b => {
                    let n = be16(cmd, 10) as usize;
                    let mut body = (n as u16).to_be_bytes().to_vec();
                    body.extend((0..n).map(|i| i as u8 ^ 0xa5));
                    response(0, &body)
                }
                0x131 => {
                    self.next_handle += 1;
                    response(0, &(0x8000_0000 + self.next_handle).to_be_bytes())
                }
                0x165 => response(0, &[]),
                _ => response(0x143, &[]), // TPM_RC_COMMAND_CODE
            };
            rsp[..r.len()].copy_from_slice(&r);
            Ok(r.len())
        }
        fn release(&mut self) {
            self.released += 1;
        }
    }

    fn command(code: u32, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&TAG_NO_SESSIONS.to_be_bytes());
        c.extend_from_slice(&((HEADER + body.len()) as u32).to_be_bytes());
        c.extend_from_slice(&code.to_be_bytes());
        c.extend_from_slice(body);
        c
    }

    const IN: u64 = 0x10_1000;
    const OUT: u64 = 0x10_4000;

    fn exec(p: &mut TpmProxy<FakeTpm>, s: &mut TpmSession, m: &Mem, cmd: &[u8]) -> HcallResult {
        m.put(IN, cmd);
        p.hcall(
            true,
            s,
            &[OP_EXECUTE, IN, cmd.len() as u64, OUT, BUFSIZE as u64],
            m,
        )
    }

    #[test]
    fn get_random_round_trip() {
        let mut p = TpmProxy::new(FakeTpm::default());
        let mut s = TpmSession::new();
        let m = Mem::new();
        let r = exec(&mut p, &mut s, &m, &command(0x17b, &8u16.to_be_bytes())).unwrap();
        assert_eq!(r[0], 20);
        let out = m.get(OUT, 20);
        assert_eq!(be32(&out, 6), 0);
        assert_eq!(&out[10..12], &[0, 8]);
        assert_eq!(out[12 + 3], 3 ^ 0xa5);
        // Nothing past the response was written.
        assert_eq!(m.get(OUT + 20, 16), std::vec![0; 16]);
        // A 0xc000... linear address is taken as real, as QEMU does.
        m.put(OUT, &[0; 32]);
        let c = command(0x17b, &4u16.to_be_bytes());
        m.put(IN, &c);
        let args = [
            OP_EXECUTE,
            IN | 0xc000_0000_0000_0000,
            12,
            OUT | 0xc000_0000_0000_0000,
            8192,
        ];
        assert_eq!(p.hcall(true, &mut s, &args, &m).unwrap()[0], 16);
        assert_eq!(be32(&m.get(OUT, 16), 2), 16);
    }

    #[test]
    fn refusals_as_qemu() {
        let mut p = TpmProxy::new(FakeTpm::default());
        let mut s = TpmSession::new();
        let m = Mem::new();
        let c = command(0x17b, &8u16.to_be_bytes());
        m.put(IN, &c);
        let n = c.len() as u64;
        let call = |p: &mut TpmProxy<FakeTpm>, s: &mut TpmSession, allowed, a: [u64; 5]| {
            p.hcall(allowed, s, &a, &m)
        };
        let big = BUFSIZE as u64;
        // No permission: the call is not offered.
        assert_eq!(
            call(&mut p, &mut s, false, [OP_EXECUTE, IN, n, OUT, big]),
            Err(HcallError::Function)
        );
        assert_eq!(
            call(&mut p, &mut s, false, [OP_CLOSE_SESSION, 0, 0, 0, 0]),
            Err(HcallError::Function)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [3, IN, n, OUT, big]),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [0, IN, n, OUT, big]),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, big + 1, OUT, big]),
            Err(HcallError::P3)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, 9, OUT, big]),
            Err(HcallError::P3)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, n, OUT, big - 1]),
            Err(HcallError::P5)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, n, OUT, 0]),
            Err(HcallError::P5)
        );
        // Buffers outside the partition, straddling its end, or overflowing.
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, 0x1000, n, OUT, big]),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, 0x10_fff8, n, OUT, big]),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, n, 0x10_f800, 8192]),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            call(
                &mut p,
                &mut s,
                true,
                [OP_EXECUTE, IN, n, 0x0fff_ffff_ffff_f000, big]
            ),
            Err(HcallError::Parameter)
        );
        // None of these reached the TPM.
        assert!(p.transport().log.is_empty());
        // An output buffer larger than 4096 only needs its first 4096 bytes.
        assert_eq!(
            call(
                &mut p,
                &mut s,
                true,
                [OP_EXECUTE, IN, n, 0x10_f000, 1 << 40]
            )
            .unwrap()[0],
            20
        );
        // The TPM failing: H_RESOURCE, the buffer untouched.
        p.transport().fail = true;
        m.put(OUT, &[0xee; 4]);
        assert_eq!(
            call(&mut p, &mut s, true, [OP_EXECUTE, IN, n, OUT, big]),
            Err(HcallError::Resource)
        );
        assert_eq!(m.get(OUT, 4), std::vec![0xee; 4]);
        // No TPM on the machine: the checks as before, then H_RESOURCE (QEMU's
        // proxy failing to open the host TPM); CLOSE_SESSION succeeds.
        let mut none = TpmProxy::new(NoTpm);
        assert_eq!(
            none.hcall(true, &mut s, &[OP_EXECUTE, IN, n, OUT, big], &m),
            Err(HcallError::Resource)
        );
        assert_eq!(
            none.hcall(true, &mut s, &[OP_EXECUTE, IN, n, OUT, big - 1], &m),
            Err(HcallError::P5)
        );
        assert_eq!(
            none.hcall(true, &mut s, &[OP_CLOSE_SESSION], &m),
            Ok([0; 4])
        );
        assert_eq!(
            none.hcall(false, &mut s, &[OP_CLOSE_SESSION], &m),
            Err(HcallError::Function)
        );
    }

    #[test]
    fn secure_vm_buffers_must_be_shared() {
        let mut p = TpmProxy::new(FakeTpm::default());
        let mut s = TpmSession::new();
        let mut m = Mem::new();
        m.forbidden = Some((OUT + 0x800, 0x10));
        let c = command(0x17b, &8u16.to_be_bytes());
        assert_eq!(exec(&mut p, &mut s, &m, &c), Err(HcallError::Parameter));
        m.forbidden = Some((IN + 4, 1));
        assert_eq!(exec(&mut p, &mut s, &m, &c), Err(HcallError::Parameter));
        assert!(p.transport().log.is_empty());
    }

    #[test]
    fn sessions_flush_what_they_created_and_stay_apart() {
        let mut p = TpmProxy::new(FakeTpm::default());
        let (mut a, mut b) = (TpmSession::new(), TpmSession::new());
        let (ma, mb) = (Mem::new(), Mem::new());
        let create = command(0x131, &[0x40, 0, 0, 1]);
        exec(&mut p, &mut a, &ma, &create).unwrap();
        exec(&mut p, &mut b, &mb, &create).unwrap();
        exec(&mut p, &mut a, &ma, &create).unwrap();
        assert_eq!(a.handles(), &[0x8000_0001, 0x8000_0003]);
        assert_eq!(b.handles(), &[0x8000_0002]);
        // Each partition saw its own responses only.
        assert_eq!(be32(&ma.get(OUT, 14), 10), 0x8000_0003);
        assert_eq!(be32(&mb.get(OUT, 14), 10), 0x8000_0002);
        // A handle the partition flushed itself is forgotten.
        exec(
            &mut p,
            &mut a,
            &ma,
            &command(CC_FLUSH_CONTEXT, &0x8000_0001u32.to_be_bytes()),
        )
        .unwrap();
        assert_eq!(a.handles(), &[0x8000_0003]);
        // CLOSE_SESSION flushes a's and leaves b's.
        p.transport().log.clear();
        assert_eq!(p.hcall(true, &mut a, &[OP_CLOSE_SESSION], &ma), Ok([0; 4]));
        assert_eq!(
            p.transport().log,
            std::vec![flush_context_command(0x8000_0003).to_vec()]
        );
        assert_eq!(p.transport().released, 1);
        assert!(a.handles().is_empty());
        assert_eq!(b.handles(), &[0x8000_0002]);
        // A failed creation records nothing.
        exec(&mut p, &mut a, &ma, &command(0x176, &[])).unwrap();
        assert!(a.handles().is_empty());
        // A full session is refused before the TPM sees the command.
        for _ in 1..MAX_HANDLES {
            exec(&mut p, &mut b, &mb, &create).unwrap();
        }
        let before = p.transport().log.len();
        assert_eq!(
            exec(&mut p, &mut b, &mb, &create),
            Err(HcallError::Resource)
        );
        assert_eq!(p.transport().log.len(), before);
        p.close(&mut b);
        assert_eq!(p.transport().log.len(), before + MAX_HANDLES);
    }
}
