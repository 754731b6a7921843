//! One device on an I2C bus skiboot drives (`i2c-bus` nodes with
//! `ibm,opal-id`), through OPAL_I2C_REQUEST: a register read is an SMBus-style
//! read with a one-byte sub-address (register address written, repeated start,
//! read), a register write the same as a write. Requests complete
//! asynchronously; Paprika polls OPAL_CHECK_ASYNC_COMPLETION for its token.
//!
//! The request, its data and the completion message live in the [`OpalI2c`]
//! itself, which stays put (it sits in a static), so a request OPAL finishes
//! after Paprika stopped waiting writes nowhere harmful; the device is then
//! taken as broken.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{call, poll_events, real, OpalError};
use crate::arch::ppc64::{instr, timer};
use crate::uv::tis_i2c::{BusError, I2cBus};

pub const OPAL_I2C_REQUEST: u64 = 109;
pub const OPAL_CHECK_ASYNC_COMPLETION: u64 = 86;

const OPAL_I2C_SM_READ: u8 = 2;
const OPAL_I2C_SM_WRITE: u8 = 3;
/// Longest transfer through [`OpalI2c`].
pub const MAX_TRANSFER: usize = 64;
/// How long one request may take (the master's own timeouts are shorter).
const REQUEST_TIMEOUT_US: u64 = 1_000_000;

/// Async tokens for I2C requests (a range of their own).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(0x7470_6d00_0000_0000);

/// `struct opal_i2c_request` (skiboot `opal-api.h`), big-endian fields.
#[repr(C, align(8))]
struct Request([u8; 24]);

/// `struct opal_msg`: type, reserved, 8 big-endian parameters.
#[repr(C, align(8))]
struct Message([u8; 72]);

#[repr(C, align(8))]
struct Data([u8; MAX_TRANSFER]);

/// A device at 7-bit address `addr` on OPAL I2C bus `bus_id`.
pub struct OpalI2c {
    bus_id: u32,
    addr: u16,
    broken: bool,
    last_rc: i64,
    req: Request,
    data: Data,
    msg: Message,
}

impl OpalI2c {
    pub const fn new(bus_id: u32, addr: u16) -> Self {
        Self {
            bus_id,
            addr,
            broken: false,
            last_rc: 0,
            req: Request([0; 24]),
            data: Data([0; MAX_TRANSFER]),
            msg: Message([0; 72]),
        }
    }

    /// The OPAL code of the last request that failed (0: none; -15 with
    /// `broken`: it never completed), for diagnostics.
    pub fn last_error(&self) -> (i64, bool) {
        (self.last_rc, self.broken)
    }

    /// One OPAL_I2C_REQUEST of `len` bytes of `self.data` at register `reg`,
    /// waited for.
    fn request(&mut self, kind: u8, reg: u8, len: usize) -> Result<(), BusError> {
        if self.broken || len > MAX_TRANSFER {
            return Err(BusError);
        }
        let r = &mut self.req.0;
        r.fill(0);
        r[0] = kind;
        r[2] = 1; // subaddr_sz
        r[4..6].copy_from_slice(&self.addr.to_be_bytes());
        r[8..12].copy_from_slice(&u32::from(reg).to_be_bytes());
        r[12..16].copy_from_slice(&(len as u32).to_be_bytes());
        r[16..24].copy_from_slice(&real(self.data.0.as_ptr()).to_be_bytes());
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        match call(
            OPAL_I2C_REQUEST,
            &[token, u64::from(self.bus_id), real(&self.req)],
        ) {
            Err(OpalError::AsyncCompletion) => {}
            Ok(_) => return Ok(()),
            Err(e) => {
                self.last_rc = e.code();
                return Err(BusError);
            }
        }
        let start = timer::uptime_us();
        loop {
            match call(
                OPAL_CHECK_ASYNC_COMPLETION,
                &[real(&self.msg), self.msg.0.len() as u64, token],
            ) {
                Ok(_) => {
                    let rc = i64::from_be_bytes(self.msg.0[16..24].try_into().unwrap_or([0xff; 8]));
                    if rc == 0 {
                        return Ok(());
                    }
                    self.last_rc = rc;
                    return Err(BusError);
                }
                Err(OpalError::Busy) if timer::uptime_us() - start < REQUEST_TIMEOUT_US => {
                    poll_events();
                }
                Err(e) => {
                    self.last_rc = e.code();
                    // OPAL may still complete it into our buffers: use the
                    // device no more.
                    self.broken = true;
                    return Err(BusError);
                }
            }
        }
    }
}

impl I2cBus for OpalI2c {
    fn write_reg(&mut self, reg: u8, data: &[u8]) -> Result<(), BusError> {
        let n = data.len().min(MAX_TRANSFER);
        self.data.0[..n].copy_from_slice(&data[..n]);
        if n < data.len() {
            return Err(BusError);
        }
        self.request(OPAL_I2C_SM_WRITE, reg, n)
    }

    fn read_reg(&mut self, reg: u8, out: &mut [u8]) -> Result<(), BusError> {
        if out.len() > MAX_TRANSFER {
            return Err(BusError);
        }
        self.request(OPAL_I2C_SM_READ, reg, out.len())?;
        out.copy_from_slice(&self.data.0[..out.len()]);
        Ok(())
    }

    fn now_us(&mut self) -> u64 {
        timer::uptime_us()
    }

    fn pause(&mut self) {
        super::heartbeat();
        let until = instr::mftb().wrapping_add(timer::us_to_ticks(50));
        while instr::mftb() < until {
            core::hint::spin_loop();
        }
    }
}
