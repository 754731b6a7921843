//! A TPM 2.0 behind the TCG I2C interface (TCG PC Client Platform TPM Profile,
//! "TPM I2C interface": the FIFO/TIS register set at one-byte register
//! addresses), as Linux's `tpm_tis_i2c` and QEMU's `tpm-tis-i2c` speak it.
//! Power10 systems carry one (Nuvoton NPCT75x, `tcg,tpm-tis-i2c`); POWER9's
//! NPCT650 speaks Nuvoton's own I2C protocol instead (Linux `tpm_i2c_nuvoton`),
//! which this module does not.
//!
//! Portable: [`I2cBus`] commits (on POWER OPAL_I2C_REQUEST,
//! `platform::opal::i2c`), [`TisI2c`] decides. Locality 0 only; one command at a
//! time (the proxy's lock). The sequence is TIS's: request the locality
//! (ACCESS.requestUse, wait activeLocality), STS.commandReady, the command in
//! bursts of at most STS.burstCount bytes into the FIFO, check STS.Expect is
//! clear, STS.tpmGo, wait STS.dataAvail, read the 10-byte header, then the
//! rest as its size says, check dataAvail went clear, STS.commandReady again.
//! Any failure aborts the command with commandReady.

use super::tpm::{TpmTransport, TransportError, HEADER};

/// TPM_LOC_SEL: the locality the following accesses use.
pub const REG_LOC_SEL: u8 = 0x00;
/// TPM_ACCESS.
pub const REG_ACCESS: u8 = 0x04;
/// TPM_STS (4 bytes, little-endian: status, burstCount 15:0, family).
pub const REG_STS: u8 = 0x18;
/// TPM_DATA_FIFO.
pub const REG_FIFO: u8 = 0x24;
/// TPM_DID_VID (4 bytes).
pub const REG_DID_VID: u8 = 0x48;

pub const ACCESS_VALID: u8 = 0x80;
pub const ACCESS_ACTIVE: u8 = 0x20;
pub const ACCESS_REQUEST_USE: u8 = 0x02;

pub const STS_VALID: u32 = 0x80;
pub const STS_COMMAND_READY: u32 = 0x40;
pub const STS_GO: u32 = 0x20;
pub const STS_DATA_AVAIL: u32 = 0x10;
pub const STS_EXPECT: u32 = 0x08;

/// TIS timeouts (TCG PC Client PTP, table "Interface timeouts"), in µs.
const TIMEOUT_A: u64 = 750_000;
const TIMEOUT_B: u64 = 2_000_000;
const TIMEOUT_C: u64 = 200_000;
/// The longest a command may run (TPM2 key generation takes tens of seconds).
const TIMEOUT_COMMAND: u64 = 120_000_000;
/// Bytes per FIFO transfer at most (whatever burstCount allows).
const MAX_CHUNK: usize = 32;
/// A TPM may NACK while busy (Linux retries too).
const RETRIES: u32 = 3;

/// An I2C bus error (a NACK, an OPAL I2C error code, a timeout of the master).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusError;

/// One I2C device: register reads and writes, and a clock for timeouts.
pub trait I2cBus {
    /// One I2C write: the register address, then `data`.
    fn write_reg(&mut self, reg: u8, data: &[u8]) -> Result<(), BusError>;
    /// Reads `out.len()` bytes from register `reg` (register address written,
    /// then a read).
    fn read_reg(&mut self, reg: u8, out: &mut [u8]) -> Result<(), BusError>;
    /// Microseconds from an arbitrary start.
    fn now_us(&mut self) -> u64;
    /// Waits a little between polls (and lets firmware run).
    fn pause(&mut self);
}

/// A TPM on an I2C bus.
pub struct TisI2c<B> {
    bus: B,
    present: bool,
    did_vid: u32,
    locality: bool,
}

impl<B: I2cBus> TisI2c<B> {
    /// Looks for a TPM on `bus`: TPM_DID_VID must read and be neither 0 nor
    /// all ones; locality 0 is selected.
    pub fn probe(bus: B) -> Self {
        let mut t = Self {
            bus,
            present: false,
            did_vid: 0,
            locality: false,
        };
        let mut id = [0u8; 4];
        if t.read(REG_DID_VID, &mut id).is_ok() {
            let v = u32::from_le_bytes(id);
            t.did_vid = v;
            t.present = v != 0 && v != u32::MAX && t.write(REG_LOC_SEL, &[0]).is_ok();
        }
        t
    }

    /// TPM_DID_VID as read at the probe.
    pub fn did_vid(&self) -> u32 {
        self.did_vid
    }

    pub fn bus(&mut self) -> &mut B {
        &mut self.bus
    }

    fn read(&mut self, reg: u8, out: &mut [u8]) -> Result<(), TransportError> {
        for _ in 0..RETRIES {
            if self.bus.read_reg(reg, out).is_ok() {
                return Ok(());
            }
            self.bus.pause();
        }
        Err(TransportError::Bus)
    }

    fn write(&mut self, reg: u8, data: &[u8]) -> Result<(), TransportError> {
        for _ in 0..RETRIES {
            if self.bus.write_reg(reg, data).is_ok() {
                return Ok(());
            }
            self.bus.pause();
        }
        Err(TransportError::Bus)
    }

    fn sts(&mut self) -> Result<u32, TransportError> {
        let mut b = [0u8; 4];
        self.read(REG_STS, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn set_sts(&mut self, bits: u32) -> Result<(), TransportError> {
        self.write(REG_STS, &[bits as u8])
    }

    /// Polls TPM_STS until `done(sts)`, for at most `timeout` µs.
    fn wait(&mut self, timeout: u64, done: impl Fn(u32) -> bool) -> Result<u32, TransportError> {
        let start = self.bus.now_us();
        loop {
            let s = self.sts()?;
            if done(s) {
                return Ok(s);
            }
            if self.bus.now_us().wrapping_sub(start) > timeout {
                return Err(TransportError::Timeout);
            }
            self.bus.pause();
        }
    }

    fn burst(sts: u32) -> usize {
        ((sts >> 8) & 0xffff) as usize
    }

    fn request_locality(&mut self) -> Result<(), TransportError> {
        if self.locality {
            return Ok(());
        }
        self.write(REG_ACCESS, &[ACCESS_REQUEST_USE])?;
        let start = self.bus.now_us();
        loop {
            let mut a = [0u8];
            self.read(REG_ACCESS, &mut a)?;
            if a[0] & (ACCESS_VALID | ACCESS_ACTIVE) == ACCESS_VALID | ACCESS_ACTIVE {
                self.locality = true;
                return Ok(());
            }
            if self.bus.now_us().wrapping_sub(start) > TIMEOUT_A {
                return Err(TransportError::Timeout);
            }
            self.bus.pause();
        }
    }

    /// Reads `out.len()` response bytes from the FIFO in bursts.
    fn read_fifo(&mut self, out: &mut [u8]) -> Result<(), TransportError> {
        let mut done = 0;
        while done < out.len() {
            let s = self.wait(TIMEOUT_C, |s| {
                s & STS_VALID != 0 && s & STS_DATA_AVAIL != 0 && Self::burst(s) > 0
            })?;
            let n = Self::burst(s).min(out.len() - done).min(MAX_CHUNK);
            self.read(REG_FIFO, &mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn run(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        self.request_locality()?;
        if self.sts()? & STS_COMMAND_READY == 0 {
            self.set_sts(STS_COMMAND_READY)?;
            self.wait(TIMEOUT_B, |s| s & STS_COMMAND_READY != 0)?;
        }
        let mut sent = 0;
        while sent < cmd.len() {
            let s = self.wait(TIMEOUT_C, |s| s & STS_VALID != 0 && Self::burst(s) > 0)?;
            if sent > 0 && s & STS_EXPECT == 0 {
                // The TPM thinks the command is complete before it is.
                return Err(TransportError::Protocol);
            }
            let n = Self::burst(s).min(cmd.len() - sent).min(MAX_CHUNK);
            self.write(REG_FIFO, &cmd[sent..sent + n])?;
            sent += n;
        }
        let s = self.wait(TIMEOUT_C, |s| s & STS_VALID != 0)?;
        if s & STS_EXPECT != 0 {
            return Err(TransportError::Protocol);
        }
        self.set_sts(STS_GO)?;
        self.wait(TIMEOUT_COMMAND, |s| {
            s & (STS_VALID | STS_DATA_AVAIL) == STS_VALID | STS_DATA_AVAIL
        })?;
        self.read_fifo(&mut rsp[..HEADER])?;
        let size = u32::from_be_bytes([rsp[2], rsp[3], rsp[4], rsp[5]]) as usize;
        if size < HEADER || size > rsp.len() {
            return Err(TransportError::Protocol);
        }
        self.read_fifo(&mut rsp[HEADER..size])?;
        let s = self.wait(TIMEOUT_C, |s| s & STS_VALID != 0)?;
        if s & STS_DATA_AVAIL != 0 {
            // More bytes than the header said.
            return Err(TransportError::Protocol);
        }
        self.set_sts(STS_COMMAND_READY)?;
        Ok(size)
    }
}

impl<B: I2cBus> TpmTransport for TisI2c<B> {
    fn present(&self) -> bool {
        self.present
    }

    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        if !self.present {
            return Err(TransportError::Absent);
        }
        let r = self.run(cmd, rsp);
        if r.is_err() {
            // Abort whatever the TPM is doing; the next command starts over.
            let _ = self.set_sts(STS_COMMAND_READY);
        }
        r
    }

    fn release(&mut self) {
        if self.present && self.locality {
            let _ = self.write(REG_ACCESS, &[ACCESS_ACTIVE]);
            self.locality = false;
        }
    }
}

#[cfg(test)]
pub mod model {
    //! A TPM behind the TCG I2C interface, as the interface specification
    //! describes its state machine (idle, ready, reception, execution,
    //! completion): what the host tests drive [`super::TisI2c`] against.
    use super::*;
    use std::vec::Vec;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum State {
        Idle,
        Ready,
        Reception,
        Execution,
        Completion,
    }

    pub struct ModelTpm {
        pub state: State,
        pub active: bool,
        pub burst: usize,
        /// Polls a command takes before its response is available.
        pub exec_polls: u32,
        /// No device at the address: every transfer fails.
        pub absent: bool,
        /// Never becomes ready.
        pub stuck: bool,
        /// Bytes appended to each response beyond its header's size.
        pub extra: usize,
        pub now: u64,
        pub respond: fn(&[u8]) -> Vec<u8>,
        rx: Vec<u8>,
        tx: Vec<u8>,
        pos: usize,
        polls: u32,
        pub commands: Vec<Vec<u8>>,
        /// Accesses to FIFO/STS without the locality (TIS ignores them).
        pub without_locality: u32,
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    impl ModelTpm {
        pub fn new(respond: fn(&[u8]) -> Vec<u8>) -> Self {
            Self {
                state: State::Idle,
                active: false,
                burst: 8,
                exec_polls: 3,
                absent: false,
                stuck: false,
                extra: 0,
                now: 0,
                respond,
                rx: Vec::new(),
                tx: Vec::new(),
                pos: 0,
                polls: 0,
                commands: Vec::new(),
                without_locality: 0,
            }
        }

        fn expected(&self) -> usize {
            if self.rx.len() < 6 {
                HEADER
            } else {
                be32(&self.rx, 2) as usize
            }
        }

        fn sts(&mut self) -> u32 {
            if self.state == State::Execution {
                self.polls += 1;
                if self.polls >= self.exec_polls {
                    self.state = State::Completion;
                }
            }
            let mut s = STS_VALID;
            let mut burst = 0;
            match self.state {
                State::Ready if !self.stuck => {
                    s |= STS_COMMAND_READY;
                    burst = self.burst;
                }
                State::Reception => {
                    let left = self.expected().saturating_sub(self.rx.len());
                    if left > 0 {
                        s |= STS_EXPECT;
                    }
                    burst = self.burst.min(left.max(1));
                }
                State::Completion if self.pos < self.tx.len() => {
                    s |= STS_DATA_AVAIL;
                    burst = self.burst.min(self.tx.len() - self.pos);
                }
                _ => {}
            }
            s | (burst as u32) << 8 | 1 << 26
        }
    }

    impl I2cBus for ModelTpm {
        fn write_reg(&mut self, reg: u8, data: &[u8]) -> Result<(), BusError> {
            if self.absent {
                return Err(BusError);
            }
            match reg {
                REG_LOC_SEL => {}
                REG_ACCESS => match data[0] {
                    ACCESS_REQUEST_USE => self.active = true,
                    ACCESS_ACTIVE => self.active = false,
                    _ => {}
                },
                _ if !self.active => self.without_locality += 1,
                REG_STS => {
                    let v = data[0] as u32;
                    if v & STS_COMMAND_READY != 0 {
                        self.state = if self.stuck {
                            State::Idle
                        } else {
                            State::Ready
                        };
                        self.rx.clear();
                        self.tx.clear();
                        self.pos = 0;
                    } else if v & STS_GO != 0 && self.state == State::Reception {
                        self.commands.push(self.rx.clone());
                        let mut r = (self.respond)(&self.rx);
                        r.extend(std::iter::repeat_n(0x5a, self.extra));
                        self.tx = r;
                        self.pos = 0;
                        self.polls = 0;
                        self.state = State::Execution;
                    }
                }
                REG_FIFO => {
                    if matches!(self.state, State::Ready | State::Reception) {
                        self.state = State::Reception;
                        self.rx.extend_from_slice(data);
                    }
                }
                _ => {}
            }
            Ok(())
        }

        fn read_reg(&mut self, reg: u8, out: &mut [u8]) -> Result<(), BusError> {
            if self.absent {
                return Err(BusError);
            }
            out.fill(0xff);
            match reg {
                REG_ACCESS => out[0] = ACCESS_VALID | if self.active { ACCESS_ACTIVE } else { 0 },
                REG_DID_VID => out.copy_from_slice(&0x00fc_1050u32.to_le_bytes()[..out.len()]),
                _ if !self.active => self.without_locality += 1,
                REG_STS => {
                    let s = self.sts().to_le_bytes();
                    out.copy_from_slice(&s[..out.len()]);
                }
                REG_FIFO => {
                    for b in out.iter_mut() {
                        if self.pos < self.tx.len() {
                            *b = self.tx[self.pos];
                            self.pos += 1;
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        }

        fn now_us(&mut self) -> u64 {
            self.now
        }

        fn pause(&mut self) {
            self.now += 1000;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::{ModelTpm, State};
    use super::*;
    use std::vec::Vec;

    /// GetRandom(n) answers n bytes; everything else TPM_RC_COMMAND_CODE.
    fn respond(cmd: &[u8]) -> Vec<u8> {
        let code = u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]);
        let mut body = Vec::new();
        let rc: u32 = if code == 0x17b {
            let n = u16::from_be_bytes([cmd[10], cmd[11]]) as usize;
            body.extend_from_slice(&(n as u16).to_be_bytes());
            body.extend((0..n).map(|i| i as u8));
            0
        } else if code == 0x144 {
            0 // Startup
        } else {
            0x143
        };
        let mut r = 0x8001u16.to_be_bytes().to_vec();
        r.extend_from_slice(&((HEADER + body.len()) as u32).to_be_bytes());
        r.extend_from_slice(&rc.to_be_bytes());
        r.extend(body);
        r
    }

    fn get_random(n: u16) -> Vec<u8> {
        let mut c = std::vec![0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b];
        c.extend_from_slice(&n.to_be_bytes());
        c
    }

    #[test]
    fn get_random_in_bursts() {
        for burst in [1, 3, 8, 64] {
            let mut m = ModelTpm::new(respond);
            m.burst = burst;
            let mut t = TisI2c::probe(m);
            assert!(t.present());
            assert_eq!(t.did_vid(), 0x00fc_1050);
            let mut rsp = [0u8; 4096];
            let n = t.execute(&get_random(40), &mut rsp).unwrap();
            assert_eq!(n, 52);
            assert_eq!(&rsp[6..10], &[0; 4]);
            assert_eq!(rsp[12 + 39], 39);
            // Twice: the second command starts from commandReady again.
            let n = t.execute(&get_random(2), &mut rsp).unwrap();
            assert_eq!(n, 14);
            assert_eq!(t.bus().commands, std::vec![get_random(40), get_random(2)]);
            assert_eq!(t.bus().state, State::Ready);
            assert_eq!(t.bus().without_locality, 0);
            t.release();
            assert!(!t.bus().active);
        }
    }

    #[test]
    fn absent_stuck_and_lying_tpms() {
        let mut m = ModelTpm::new(respond);
        m.absent = true;
        let mut t = TisI2c::probe(m);
        assert!(!t.present());
        let mut rsp = [0u8; 4096];
        assert_eq!(
            t.execute(&get_random(4), &mut rsp),
            Err(TransportError::Absent)
        );

        let mut m = ModelTpm::new(respond);
        m.stuck = true;
        let mut t = TisI2c::probe(m);
        assert_eq!(
            t.execute(&get_random(4), &mut rsp),
            Err(TransportError::Timeout)
        );

        // A response with bytes beyond its size: refused, and the TPM is
        // told to abort (commandReady), ready for the next command.
        let mut m = ModelTpm::new(respond);
        m.extra = 3;
        let mut t = TisI2c::probe(m);
        assert_eq!(
            t.execute(&get_random(4), &mut rsp),
            Err(TransportError::Protocol)
        );
        assert_eq!(t.bus().state, State::Ready);
        t.bus().extra = 0;
        assert_eq!(t.execute(&get_random(4), &mut rsp), Ok(16));

        // A response larger than the buffer.
        let mut small = [0u8; 12];
        assert_eq!(
            t.execute(&get_random(4), &mut small),
            Err(TransportError::Protocol)
        );
        // A command the TPM finds complete early (its size field says 10).
        let mut c = get_random(4);
        c[5] = 10;
        assert_eq!(t.execute(&c, &mut rsp), Err(TransportError::Protocol));
        // A command that never answers.
        t.bus().exec_polls = u32::MAX;
        assert_eq!(
            t.execute(&get_random(4), &mut rsp),
            Err(TransportError::Timeout)
        );
    }

    #[test]
    fn through_the_proxy() {
        use super::super::tpm::{GuestBuffers, TpmProxy, TpmSession, BUFSIZE, OP_EXECUTE};
        use core::cell::RefCell;
        struct Flat(RefCell<Vec<u8>>);
        impl GuestBuffers for Flat {
            fn accessible(&self, gpa: u64, len: u64) -> bool {
                gpa + len <= self.0.borrow().len() as u64
            }
            fn read(&self, gpa: u64, out: &mut [u8]) -> bool {
                out.copy_from_slice(&self.0.borrow()[gpa as usize..gpa as usize + out.len()]);
                true
            }
            fn write(&self, gpa: u64, data: &[u8]) -> bool {
                self.0.borrow_mut()[gpa as usize..gpa as usize + data.len()].copy_from_slice(data);
                true
            }
        }
        let mem = Flat(RefCell::new(std::vec![0; 0x4000]));
        let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
        mem.write(0x100, &startup);
        let mut p = TpmProxy::new(TisI2c::probe(ModelTpm::new(respond)));
        let mut s = TpmSession::new();
        let r = p.hcall(
            true,
            &mut s,
            &[OP_EXECUTE, 0x100, 12, 0x1000, BUFSIZE as u64],
            &mem,
        );
        assert_eq!(r, Ok([10, 0, 0, 0]));
        assert_eq!(
            &mem.0.borrow()[0x1000..0x100a],
            &[0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]
        );
    }
}
