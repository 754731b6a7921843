//! OPAL (skiboot) runtime services: console, events, power, CPU start.
//!
//! Token numbers from skiboot's `include/opal-api.h`.
pub mod call;
pub mod i2c;
pub mod pci;
pub mod xive;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::ppc64::instr;
use crate::be::Be64;

pub const OPAL_CONSOLE_WRITE: u64 = 1;
pub const OPAL_CONSOLE_READ: u64 = 2;
pub const OPAL_RTC_READ: u64 = 3;
pub const OPAL_CEC_POWER_DOWN: u64 = 5;
pub const OPAL_CEC_REBOOT: u64 = 6;
pub const OPAL_READ_NVRAM: u64 = 7;
pub const OPAL_WRITE_NVRAM: u64 = 8;
pub const OPAL_POLL_EVENTS: u64 = 10;
pub const OPAL_START_CPU: u64 = 41;
pub const OPAL_QUERY_CPU_STATUS: u64 = 42;
pub const OPAL_REINIT_CPUS: u64 = 70;
pub const OPAL_CHECK_TOKEN: u64 = 80;
pub const OPAL_CONSOLE_FLUSH: u64 = 117;
pub const OPAL_CEC_REBOOT2: u64 = 116;
pub const OPAL_HANDLE_HMI: u64 = 98;

/// `OPAL_REINIT_CPUS` flags: take interrupts little-endian; radix MMU.
pub const REINIT_HILE_LE: u64 = 1 << 1;
pub const REINIT_MMU_RADIX: u64 = 1 << 3;

/// `OPAL_CEC_REBOOT2` type for a fatal platform error.
pub const REBOOT_PLATFORM_ERROR: u64 = 2;

/// OPAL return codes (`opal-api.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpalError {
    Parameter,
    Busy,
    Partial,
    Constrained,
    Closed,
    Hardware,
    Unsupported,
    Permission,
    NoMem,
    Resource,
    Internal,
    BusyEvent,
    HardwareFrozen,
    WrongState,
    AsyncCompletion,
    Empty,
    Other(i64),
}

impl OpalError {
    /// The OPAL return code.
    pub fn code(self) -> i64 {
        match self {
            OpalError::Parameter => -1,
            OpalError::Busy => -2,
            OpalError::Partial => -3,
            OpalError::Constrained => -4,
            OpalError::Closed => -5,
            OpalError::Hardware => -6,
            OpalError::Unsupported => -7,
            OpalError::Permission => -8,
            OpalError::NoMem => -9,
            OpalError::Resource => -10,
            OpalError::Internal => -11,
            OpalError::BusyEvent => -12,
            OpalError::HardwareFrozen => -13,
            OpalError::WrongState => -14,
            OpalError::AsyncCompletion => -15,
            OpalError::Empty => -16,
            OpalError::Other(c) => c,
        }
    }

    pub fn from_code(rc: i64) -> Result<i64, OpalError> {
        Err(match rc {
            rc if rc >= 0 => return Ok(rc),
            -1 => OpalError::Parameter,
            -2 => OpalError::Busy,
            -3 => OpalError::Partial,
            -4 => OpalError::Constrained,
            -5 => OpalError::Closed,
            -6 => OpalError::Hardware,
            -7 => OpalError::Unsupported,
            -8 => OpalError::Permission,
            -9 => OpalError::NoMem,
            -10 => OpalError::Resource,
            -11 => OpalError::Internal,
            -12 => OpalError::BusyEvent,
            -13 => OpalError::HardwareFrozen,
            -14 => OpalError::WrongState,
            -15 => OpalError::AsyncCompletion,
            -16 => OpalError::Empty,
            other => OpalError::Other(other),
        })
    }
}

/// Real address of a hypervisor pointer: the linear map is 0xc000... + physical, and
/// OPAL runs with translation off.
pub fn real<T: ?Sized>(p: *const T) -> u64 {
    (p as *const u8 as u64) & 0x0fff_ffff_ffff_ffff
}

fn call(token: u64, args: &[u64]) -> Result<i64, OpalError> {
    OpalError::from_code(call::raw_call(token, args))
}

/// Timebase value at which the next `OPAL_POLL_EVENTS` is due.
static NEXT_POLL_TB: AtomicU64 = AtomicU64::new(0);
static HEARTBEAT_TB: AtomicU64 = AtomicU64::new(0);

/// Sets how often [`heartbeat`] must poll (`ibm,heartbeat-ms`).
pub fn set_heartbeat(ticks: u64) {
    HEARTBEAT_TB.store(ticks, Ordering::Relaxed);
}

pub fn poll_events() -> u64 {
    let mut ev = Be64::new(0);
    let _ = call(OPAL_POLL_EVENTS, &[real(&ev)]);
    let ev_now = core::mem::take(&mut ev);
    NEXT_POLL_TB.store(
        instr::mftb().wrapping_add(HEARTBEAT_TB.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
    ev_now.get()
}

/// Calls `OPAL_POLL_EVENTS` when the heartbeat is due; cheap otherwise. Loops that
/// wait call this so OPAL's housekeeping keeps running.
pub fn heartbeat() {
    if instr::mftb() >= NEXT_POLL_TB.load(Ordering::Relaxed) {
        poll_events();
    }
}

/// Writes bytes to OPAL console `term`, retrying while OPAL's buffer is full.
pub fn console_write(term: u64, mut bytes: &[u8]) {
    let mut stalls = 0;
    while !bytes.is_empty() && stalls < 10_000 {
        let mut len = Be64::new(bytes.len() as u64);
        let rc = call(
            OPAL_CONSOLE_WRITE,
            &[term, real(&len), real(bytes.as_ptr())],
        );
        let done = core::mem::take(&mut len).get() as usize;
        match rc {
            Ok(_) if done > 0 => {
                bytes = &bytes[done.min(bytes.len())..];
                stalls = 0;
            }
            Ok(_) | Err(OpalError::Busy) | Err(OpalError::BusyEvent) | Err(OpalError::Partial) => {
                stalls += 1;
                poll_events();
            }
            Err(_) => return,
        }
    }
}

/// Reads what is waiting on console `term` into `buf`; returns the byte count.
pub fn console_read(term: u64, buf: &mut [u8]) -> usize {
    let mut len = Be64::new(buf.len() as u64);
    match call(
        OPAL_CONSOLE_READ,
        &[term, real(&len), real(buf.as_mut_ptr())],
    ) {
        Ok(_) => (core::mem::take(&mut len).get() as usize).min(buf.len()),
        Err(_) => 0,
    }
}

/// Waits until OPAL has sent everything it buffered for console `term` (bounded
/// at ten seconds of timebase, so a stuck console cannot stop a power-off).
pub fn console_flush(term: u64) {
    let start = instr::mftb();
    let limit = crate::arch::ppc64::timer::us_to_ticks(10_000_000);
    while instr::mftb().wrapping_sub(start) < limit {
        match call(OPAL_CONSOLE_FLUSH, &[term]) {
            Err(OpalError::Partial) | Err(OpalError::Busy) => {
                poll_events();
            }
            _ => return,
        }
    }
}

/// Whether this OPAL implements `token` (`OPAL_CHECK_TOKEN`: 0 absent, 1 present
/// but not ready... skiboot returns OPAL_TOKEN_PRESENT = 1).
pub fn has_token(token: u64) -> bool {
    matches!(call(OPAL_CHECK_TOKEN, &[token]), Ok(v) if v > 0)
}

pub fn reinit_cpus(flags: u64) -> Result<(), OpalError> {
    call(OPAL_REINIT_CPUS, &[flags]).map(|_| ())
}

/// Starts the thread with this PIR at real address `entry` (big-endian, real mode,
/// r3 = PIR).
pub fn start_cpu(pir: u32, entry: u64) -> Result<(), OpalError> {
    call(OPAL_START_CPU, &[u64::from(pir), entry]).map(|_| ())
}

/// OPAL_RTC_READ into `ymd`/`hms`. A `test-hooks` build's RTC is always busy
/// (the back-off of `partition::host_clock` under test).
fn rtc_call(ymd: &crate::be::Be32, hms: &Be64) -> Result<i64, OpalError> {
    if cfg!(feature = "test-hooks") {
        return Err(OpalError::Busy);
    }
    call(OPAL_RTC_READ, &[real(ymd), real(hms)])
}

/// Reads the RTC: (`yyyymmdd` BCD, `hhmmss` BCD in the top half of the second word).
pub fn rtc_read() -> Result<(u32, u64), OpalError> {
    // The RTC sits behind the BMC: OPAL answers BUSY until the reply arrives, which
    // under emulation can take a while. Give it two seconds.
    let start = instr::mftb();
    let limit = crate::arch::ppc64::timer::us_to_ticks(2_000_000);
    loop {
        let mut ymd = crate::be::Be32::new(0);
        let mut hms = Be64::new(0);
        match rtc_call(&ymd, &hms) {
            Ok(_) => {
                return Ok((
                    core::mem::take(&mut ymd).get(),
                    core::mem::take(&mut hms).get(),
                ));
            }
            Err(OpalError::Busy) | Err(OpalError::BusyEvent)
                if instr::mftb().wrapping_sub(start) < limit =>
            {
                poll_events();
            }
            Err(e) => return Err(e),
        }
    }
}

/// One OPAL_RTC_READ without waiting: the time if OPAL has it at once, otherwise
/// the request is under way (BUSY) and a later [`rtc_read`] collects the reply.
pub fn rtc_read_start() -> Result<(u32, u64), OpalError> {
    let mut ymd = crate::be::Be32::new(0);
    let mut hms = Be64::new(0);
    rtc_call(&ymd, &hms)?;
    Ok((
        core::mem::take(&mut ymd).get(),
        core::mem::take(&mut hms).get(),
    ))
}

/// OPAL_READ_NVRAM / OPAL_WRITE_NVRAM of `len` bytes at `buf` (a real
/// address) and NVRAM offset `offset`, retrying while OPAL is busy (at most two
/// seconds: the flash sits behind the BMC).
fn nvram_call(token: u64, buf: u64, len: usize, offset: u64) -> Result<(), OpalError> {
    let start = instr::mftb();
    let limit = crate::arch::ppc64::timer::us_to_ticks(2_000_000);
    loop {
        match call(token, &[buf, len as u64, offset]) {
            Ok(_) => return Ok(()),
            Err(OpalError::Busy) | Err(OpalError::BusyEvent)
                if instr::mftb().wrapping_sub(start) < limit =>
            {
                poll_events();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the host NVRAM (skiboot's, in flash when the machine has some).
pub fn nvram_read(out: &mut [u8], offset: u64) -> Result<(), OpalError> {
    nvram_call(OPAL_READ_NVRAM, real(out.as_mut_ptr()), out.len(), offset)
}

/// Writes the host NVRAM (skiboot passes it on to the flash).
pub fn nvram_write(data: &[u8], offset: u64) -> Result<(), OpalError> {
    nvram_call(OPAL_WRITE_NVRAM, real(data.as_ptr()), data.len(), offset)
}

/// Powers the machine off. Never returns.
pub fn power_down() -> ! {
    crate::console::flush();
    console_flush(0);
    while let Err(OpalError::Busy | OpalError::BusyEvent) = call(OPAL_CEC_POWER_DOWN, &[0]) {
        poll_events();
    }
    loop {
        poll_events();
    }
}

/// Reboots the machine. Never returns.
pub fn reboot() -> ! {
    console_flush(0);
    let _ = call(OPAL_CEC_REBOOT, &[]);
    loop {
        poll_events();
    }
}

/// Lets OPAL handle a hypervisor maintenance interrupt (timer facility, core
/// errors) on this thread.
pub fn handle_hmi() -> Result<(), OpalError> {
    call(OPAL_HANDLE_HMI, &[]).map(|_| ())
}
