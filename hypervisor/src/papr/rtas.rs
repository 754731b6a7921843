//! RTAS (PAPR chapter 7): the call table, argument buffers and the pure parts of the
//! calls (time conversion). Partitions call RTAS through a tiny blob in their memory
//! that makes the H_RTAS hcall with the buffer address; the buffer is big-endian:
//! token, nargs, nret, args..., rets...

/// RTAS return statuses (PAPR 7.2.8).
pub const RTAS_SUCCESS: i32 = 0;
pub const RTAS_HARDWARE_ERROR: i32 = -1;
pub const RTAS_BUSY: i32 = -2;
pub const RTAS_PARAMETER_ERROR: i32 = -3;
/// event-scan / check-exception: no error log found.
pub const RTAS_NO_ERRORS_FOUND: i32 = 1;
/// ibm,get-system-parameter: parameter not supported (PAPR 7.3.16.1: -3).
pub const RTAS_PARAM_NOT_SUPPORTED: i32 = -3;

/// The five instructions of the RTAS blob: `mr r4,r3; lis r3,0; ori r3,r3,0xf000;
/// sc 1; blr` (H_RTAS = 0xf000); stored big-endian, as RTAS is entered.
pub const RTAS_BLOB: [u32; 5] = [
    0x7c64_1b78,
    0x3c60_0000,
    0x6063_f000,
    0x4400_0022,
    0x4e80_0020,
];

/// The calls Paprika implements. Tokens are 0x2000 + index, as QEMU numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtasCall {
    GetTimeOfDay,
    SetTimeOfDay,
    PowerOff,
    SystemReboot,
    DisplayCharacter,
    StartCpu,
    StopSelf,
    QueryCpuStoppedState,
    GetSystemParameter,
    EventScan,
    CheckException,
    OsTerm,
    NmiRegister,
    NmiInterlock,
    IntOn,
    IntOff,
    SetXive,
    GetXive,
    SetSystemParameter,
    SetPowerLevel,
    GetPowerLevel,
    /// nvram-fetch / nvram-store (`papr::nvram`).
    NvramFetch,
    NvramStore,
    /// PCI pass-through (docs/passthrough.md, `papr::vphb`).
    ReadPciConfig,
    WritePciConfig,
    QueryPeDmaWindow,
    CreatePeDmaWindow,
    RemovePeDmaWindow,
    ResetPeDmaWindow,
    /// EEH on passed-through functions.
    SetEehOption,
    SetSlotReset,
    ReadSlotResetState2,
    GetConfigAddrInfo2,
    SlotErrorDetail,
    ConfigurePe,
    /// MSIs of passed-through functions.
    ChangeMsi,
    QueryInterruptSourceNumber,
}

pub const TOKEN_BASE: u32 = 0x2000;

/// (name in /rtas, call), in token order.
pub const CALLS: &[(&str, RtasCall)] = &[
    ("get-time-of-day", RtasCall::GetTimeOfDay),
    ("set-time-of-day", RtasCall::SetTimeOfDay),
    ("power-off", RtasCall::PowerOff),
    ("system-reboot", RtasCall::SystemReboot),
    ("display-character", RtasCall::DisplayCharacter),
    ("start-cpu", RtasCall::StartCpu),
    ("stop-self", RtasCall::StopSelf),
    ("query-cpu-stopped-state", RtasCall::QueryCpuStoppedState),
    ("ibm,get-system-parameter", RtasCall::GetSystemParameter),
    ("event-scan", RtasCall::EventScan),
    ("check-exception", RtasCall::CheckException),
    ("ibm,os-term", RtasCall::OsTerm),
    ("ibm,nmi-register", RtasCall::NmiRegister),
    ("ibm,nmi-interlock", RtasCall::NmiInterlock),
    ("ibm,int-on", RtasCall::IntOn),
    ("ibm,int-off", RtasCall::IntOff),
    ("ibm,set-xive", RtasCall::SetXive),
    ("ibm,get-xive", RtasCall::GetXive),
    ("ibm,set-system-parameter", RtasCall::SetSystemParameter),
    ("set-power-level", RtasCall::SetPowerLevel),
    ("get-power-level", RtasCall::GetPowerLevel),
    ("nvram-fetch", RtasCall::NvramFetch),
    ("nvram-store", RtasCall::NvramStore),
    ("ibm,read-pci-config", RtasCall::ReadPciConfig),
    ("ibm,write-pci-config", RtasCall::WritePciConfig),
    ("ibm,query-pe-dma-window", RtasCall::QueryPeDmaWindow),
    ("ibm,create-pe-dma-window", RtasCall::CreatePeDmaWindow),
    ("ibm,remove-pe-dma-window", RtasCall::RemovePeDmaWindow),
    ("ibm,reset-pe-dma-window", RtasCall::ResetPeDmaWindow),
    ("ibm,set-eeh-option", RtasCall::SetEehOption),
    ("ibm,set-slot-reset", RtasCall::SetSlotReset),
    ("ibm,read-slot-reset-state2", RtasCall::ReadSlotResetState2),
    ("ibm,get-config-addr-info2", RtasCall::GetConfigAddrInfo2),
    ("ibm,slot-error-detail", RtasCall::SlotErrorDetail),
    ("ibm,configure-pe", RtasCall::ConfigurePe),
    ("ibm,change-msi", RtasCall::ChangeMsi),
    (
        "ibm,query-interrupt-source-number",
        RtasCall::QueryInterruptSourceNumber,
    ),
];

/// The token of `call` (what the guest finds in /rtas).
pub fn token_of(call: RtasCall) -> u32 {
    let i = CALLS.iter().position(|(_, c)| *c == call).unwrap_or(0);
    TOKEN_BASE + i as u32
}

/// set-power-level / get-power-level (PAPR 7.3.7): there is one power domain, the
/// "live insertion" domain -1, always at full power (100), as QEMU answers.
/// `set` takes (domain, level) and returns (status, level); `get` takes (domain)
/// and returns (status, level). Anything else is -3.
pub fn power_level(set: bool, nargs: usize, nret: usize, domain: u32) -> Result<u32, i32> {
    let want_args = if set { 2 } else { 1 };
    if nargs != want_args || nret != 2 {
        return Err(RTAS_PARAMETER_ERROR);
    }
    if domain != u32::MAX {
        return Err(RTAS_PARAM_NOT_SUPPORTED);
    }
    Ok(100)
}

/// ibm,nmi-register (PAPR 7.3.14): the system-reset and machine-check handlers must
/// lie in the first 32 MiB of the partition's memory (QEMU also requires the RMA).
pub fn nmi_addresses_valid(sreset: u32, mce: u32, guest_mem: u64) -> bool {
    let limit = guest_mem.min(32 << 20);
    u64::from(sreset) < limit && u64::from(mce) < limit
}

/// Offset in the RTAS area of vCPU `index`'s FWNMI save area: after the error log
/// (rtas-error-log-max bytes), 16 bytes per vCPU, as QEMU places it. A system reset
/// delivered through FWNMI saves the guest's r3 there and passes its address in r3.
pub fn fwnmi_save_offset(index: usize, error_log_max: u32) -> u64 {
    u64::from(error_log_max) + 16 * index as u64
}

/// Token table for the device tree.
pub fn tokens() -> impl Iterator<Item = (&'static str, u32)> {
    CALLS
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, TOKEN_BASE + i as u32))
}

pub fn call_for_token(token: u32) -> Option<RtasCall> {
    token
        .checked_sub(TOKEN_BASE)
        .and_then(|i| CALLS.get(i as usize))
        .map(|(_, c)| *c)
}

/// Most arguments plus returns a call may declare (the buffer is copied in whole).
pub const MAX_WORDS: usize = 16;

/// A copied-in RTAS argument buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtasArgs {
    pub token: u32,
    pub nargs: usize,
    pub nret: usize,
    pub args: [u32; MAX_WORDS],
    pub rets: [u32; MAX_WORDS],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtasError {
    /// nargs + nret too large or the buffer is short.
    BadBuffer,
}

impl RtasArgs {
    /// Bytes the buffer occupies in guest memory.
    pub fn size(&self) -> usize {
        12 + 4 * (self.nargs + self.nret)
    }

    /// Parses the header and arguments from `buf` (as many bytes as are readable at
    /// the guest address, at most `12 + 4*MAX_WORDS*2`).
    pub fn parse(buf: &[u8]) -> Result<RtasArgs, RtasError> {
        let word = |i: usize| -> Result<u32, RtasError> {
            let b = buf.get(i * 4..i * 4 + 4).ok_or(RtasError::BadBuffer)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let token = word(0)?;
        let nargs = word(1)? as usize;
        let nret = word(2)? as usize;
        if nargs > MAX_WORDS || nret > MAX_WORDS {
            return Err(RtasError::BadBuffer);
        }
        let mut a = RtasArgs {
            token,
            nargs,
            nret,
            args: [0; MAX_WORDS],
            rets: [0; MAX_WORDS],
        };
        for i in 0..nargs {
            a.args[i] = word(3 + i)?;
        }
        if buf.len() < a.size() {
            return Err(RtasError::BadBuffer);
        }
        Ok(a)
    }

    /// The return words as they go back to the guest, at byte offset `12 + 4*nargs`.
    pub fn encode_rets(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for (i, r) in self.rets.iter().take(self.nret).enumerate() {
            if let Some(dst) = out.get_mut(i * 4..i * 4 + 4) {
                dst.copy_from_slice(&r.to_be_bytes());
                n += 4;
            }
        }
        n
    }

    pub fn arg(&self, i: usize) -> Option<u32> {
        (i < self.nargs).then(|| self.args[i])
    }

    /// Sets return word `i` (ignored when the caller gave fewer).
    pub fn set_ret(&mut self, i: usize, v: u32) {
        if i < self.nret {
            self.rets[i] = v;
        }
    }

    pub fn set_status(&mut self, status: i32) {
        self.set_ret(0, status as u32);
    }
}

/// A calendar time as RTAS passes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

fn bcd(v: u64) -> u32 {
    let mut out = 0u32;
    let mut mul = 1u32;
    let mut v = v;
    while v != 0 {
        out = out.saturating_add(((v & 0xf) as u32).saturating_mul(mul));
        mul = mul.saturating_mul(10);
        v >>= 4;
    }
    out
}

/// Decodes OPAL_RTC_READ's BCD words: `y_m_d` = YYYYMMDD, `h_m_s_m` top 32 bits
/// = HHMMSSmm (skiboot's format).
pub fn from_opal_bcd(ymd: u32, hmsm: u64) -> DateTime {
    let ymd = u64::from(ymd);
    let hms = hmsm >> 32;
    DateTime {
        year: bcd(ymd >> 16),
        month: bcd((ymd >> 8) & 0xff),
        day: bcd(ymd & 0xff),
        hour: bcd((hms >> 24) & 0xff),
        minute: bcd((hms >> 16) & 0xff),
        second: bcd((hms >> 8) & 0xff),
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// algorithm, in integer arithmetic).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl DateTime {
    /// Validates fields a guest passed to set-time-of-day.
    pub fn is_valid(&self) -> bool {
        (1970..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    pub fn to_unix(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    pub fn from_unix(t: i64) -> DateTime {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        DateTime {
            year: y.clamp(0, 9999) as u32,
            month: m,
            day: d,
            hour: (secs / 3600) as u32,
            minute: ((secs / 60) % 60) as u32,
            second: (secs % 60) as u32,
        }
    }
}

/// Offset in the RTAS area of the FWNMI machine-check buffer (QEMU's
/// RTAS_ERROR_LOG_OFFSET): the guest's r3 (8 bytes, big-endian), then the RTAS
/// error log. One buffer for the partition, guarded by the ibm,nmi-interlock
/// protocol. r3 points at it when the ibm,nmi-register handler is entered
/// (Linux's `fwnmi_get_savep` restores r3 from its first doubleword).
pub const FWNMI_MCE_OFFSET: u64 = 0x30;

/// What a machine check reported through FWNMI was caused by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MceCause {
    /// A load or store: effective address = the data address (DAR).
    LoadStore,
    /// An instruction fetch: effective address = the instruction's.
    Fetch,
}

/// Bytes of [`mce_error_log`]: the RTAS error log header (8), the version 6
/// extended header (16) and one machine-check ("MC") section (40).
pub const MCE_LOG_LEN: usize = 64;

/// The RTAS error log (PAPR/LoPAR 10.3.2, version 6 with an "MC" section) for an
/// uncorrectable error at a real address with nothing behind it, the layout
/// QEMU's `spapr_mce_dispatch_elog` writes and Linux's
/// `pseries_machine_check_realmode` parses: summary = version 6, severity
/// error-sync, not recovered, extended part present, initiator CPU; extended
/// header valid, new log, big-endian, PowerPC format, platform event log,
/// company "IBM"; MC section: error type UE, subtype load/store (3) or
/// instruction fetch (1) with "effective address provided" (0x40).
pub fn mce_error_log(cause: MceCause, ea: u64) -> [u8; MCE_LOG_LEN] {
    const SUMMARY: u32 = 0x0600_0000 // version 6
        | 0x0060_0000 // severity: error, synchronous
        | 0x0010_0000 // disposition: not recovered
        | 0x0004_0000 // optional (extended) part present
        | 0x0000_1000; // initiator: CPU
    let mut log = [0u8; MCE_LOG_LEN];
    log[0..4].copy_from_slice(&SUMMARY.to_be_bytes());
    log[4..8].copy_from_slice(&((MCE_LOG_LEN - 8) as u32).to_be_bytes());
    // Version 6 extended header.
    log[8] = 0x80 | 0x04 | 0x02; // valid, new log, big-endian
    log[10] = 0x80 | 0x0e; // PowerPC format, platform event log
    log[20..24].copy_from_slice(&0x4942_4d00u32.to_be_bytes()); // "IBM\0"
                                                                // "MC" section: id, length, version 1, subtype 0, creator 0.
    log[24..26].copy_from_slice(&0x4d43u16.to_be_bytes());
    log[26..28].copy_from_slice(&40u16.to_be_bytes());
    log[28] = 1;
    // fru_id, proc_id 0; error type 0 = UE.
    log[41] = 0x40
        | match cause {
            MceCause::LoadStore => 3,
            MceCause::Fetch => 1,
        };
    log[48..56].copy_from_slice(&ea.to_be_bytes());
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mce_error_log_layout() {
        let l = mce_error_log(MceCause::LoadStore, 0x0000_0400_0000_0008);
        assert_eq!(l.len(), 64);
        assert_eq!(&l[0..8], &[0x06, 0x74, 0x10, 0x00, 0, 0, 0, 56]);
        assert_eq!(&l[8..12], &[0x86, 0, 0x8e, 0]);
        assert_eq!(&l[20..24], b"IBM\0");
        assert_eq!(&l[24..30], &[0x4d, 0x43, 0, 40, 1, 0]);
        assert_eq!((l[40], l[41]), (0, 0x43));
        assert_eq!(&l[48..56], &[0, 0, 4, 0, 0, 0, 0, 8]);
        assert!(l[56..].iter().all(|&b| b == 0));
        let f = mce_error_log(MceCause::Fetch, 0x1234);
        assert_eq!(f[41], 0x41);
        assert_eq!(&f[48..56], &0x1234u64.to_be_bytes());
        // The buffer (r3 + log) fits before the first FWNMI save area.
        assert!(FWNMI_MCE_OFFSET + 8 + MCE_LOG_LEN as u64 <= fwnmi_save_offset(0, 2048));
    }

    #[test]
    fn tokens_are_stable_and_reversible() {
        for (i, (name, tok)) in tokens().enumerate() {
            assert_eq!(tok, TOKEN_BASE + i as u32);
            assert_eq!(call_for_token(tok), Some(CALLS[i].1), "{name}");
        }
        assert_eq!(call_for_token(0), None);
        assert_eq!(call_for_token(TOKEN_BASE + CALLS.len() as u32), None);
    }

    #[test]
    fn parses_and_encodes_buffers() {
        let mut buf = vec![];
        for w in [0x2002u32, 2, 1, 0, 0, 0xdead] {
            buf.extend_from_slice(&w.to_be_bytes());
        }
        let mut a = RtasArgs::parse(&buf).unwrap();
        assert_eq!((a.token, a.nargs, a.nret), (0x2002, 2, 1));
        assert_eq!(a.arg(1), Some(0));
        assert_eq!(a.arg(2), None);
        a.set_status(RTAS_PARAMETER_ERROR);
        a.set_ret(5, 1); // beyond nret: ignored
        let mut out = [0u8; 4];
        assert_eq!(a.encode_rets(&mut out), 4);
        assert_eq!(out, (-3i32 as u32).to_be_bytes());
        // Too many words, or a short buffer.
        let mut bad = buf.clone();
        bad[4..8].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(RtasArgs::parse(&bad), Err(RtasError::BadBuffer));
        assert_eq!(RtasArgs::parse(&buf[..16]), Err(RtasError::BadBuffer));
        assert_eq!(RtasArgs::parse(&[]), Err(RtasError::BadBuffer));
    }

    #[test]
    fn time_conversions() {
        let t = from_opal_bcd(0x2026_1128, 0x1345_3000_0000_0000);
        assert_eq!(
            t,
            DateTime {
                year: 2026,
                month: 11,
                day: 28,
                hour: 13,
                minute: 45,
                second: 30
            }
        );
        assert!(t.is_valid());
        let u = t.to_unix();
        assert_eq!(DateTime::from_unix(u), t);
        assert_eq!(
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
            .to_unix(),
            0
        );
        assert_eq!(
            DateTime {
                year: 2000,
                month: 3,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
            .to_unix(),
            951_868_800
        );
        for t in [0i64, 86_399, 951_868_800, 1_700_000_000, 4_102_444_800] {
            assert_eq!(DateTime::from_unix(t).to_unix(), t);
        }
        assert!(!DateTime {
            year: 2024,
            month: 13,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0
        }
        .is_valid());
    }

    #[test]
    fn power_level_and_nmi_checks() {
        assert_eq!(power_level(false, 1, 2, u32::MAX), Ok(100));
        assert_eq!(power_level(true, 2, 2, u32::MAX), Ok(100));
        assert_eq!(power_level(true, 1, 2, u32::MAX), Err(RTAS_PARAMETER_ERROR));
        assert_eq!(
            power_level(false, 1, 1, u32::MAX),
            Err(RTAS_PARAMETER_ERROR)
        );
        assert_eq!(power_level(false, 1, 2, 0), Err(RTAS_PARAM_NOT_SUPPORTED));
        assert!(nmi_addresses_valid(0x7000, 0x7100, 512 << 20));
        assert!(!nmi_addresses_valid(32 << 20, 0x7100, 512 << 20));
        assert!(!nmi_addresses_valid(0x7000, 0x20_0000, 0x10_0000));
        assert_eq!(fwnmi_save_offset(2, 2048), 2048 + 32);
    }

    #[test]
    fn blob_is_the_h_rtas_trampoline() {
        // sc 1 is 0x44000022; H_RTAS = 0xf000 in the ori.
        assert_eq!(RTAS_BLOB[3], 0x4400_0022);
        assert_eq!(RTAS_BLOB[2] & 0xffff, 0xf000);
    }
}
