//! Hypervisor calls (PAPR 14.5, "sc 1" with r3 = opcode, arguments in r4-r12,
//! results in r4 onwards): numbers, return codes and argument checking that does not
//! depend on the machine.
//!
//! Numbers from Linux's `arch/powerpc/include/asm/hvcall.h`; return codes from PAPR
//! (H_SUCCESS 0, errors negative).

/// PAPR hcall return codes other than success, one-to-one with their values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum HcallError {
    /// Busy, retry (a positive "long busy" code is not used).
    Busy = 1,
    /// H_NOT_AVAILABLE (3): the resource does not exist in this partition.
    NotAvailable = 3,
    Hardware = -1,
    Function = -2,
    Privilege = -3,
    Parameter = -4,
    BadMode = -5,
    PteNotFound = -6,
    NotFound = -9,
    Constrained = -13,
    State = -17,
    P2 = -55,
    P3 = -56,
    P4 = -57,
    P5 = -58,
    P6 = -59,
    P7 = -60,
    P8 = -61,
    P9 = -62,
    NoMem = -64,
    UnsupportedFlag = -256,
}

impl HcallError {
    /// The value returned to the guest in r3.
    pub const fn code(self) -> i64 {
        self as i64
    }
}

/// Result of an hcall handler: up to 9 output registers (r4...) on success.
pub type HcallResult = Result<[u64; 4], HcallError>;

pub const H_SUCCESS: i64 = 0;

pub const H_PAGE_INIT: u64 = 0x2c;
pub const H_LOGICAL_CI_LOAD: u64 = 0x3c;
pub const H_LOGICAL_CI_STORE: u64 = 0x40;
pub const H_GET_TERM_CHAR: u64 = 0x54;
pub const H_PUT_TERM_CHAR: u64 = 0x58;
pub const H_EOI: u64 = 0x64;
pub const H_CPPR: u64 = 0x68;
pub const H_IPI: u64 = 0x6c;
pub const H_IPOLL: u64 = 0x70;
pub const H_XIRR: u64 = 0x74;
pub const H_XIRR_X: u64 = 0x2fc;
pub const H_REGISTER_VPA: u64 = 0xdc;
pub const H_CEDE: u64 = 0xe0;
pub const H_CONFER: u64 = 0xe4;
pub const H_PROD: u64 = 0xe8;
pub const H_GET_CPU_CHARACTERISTICS: u64 = 0x1c8;
pub const H_RANDOM: u64 = 0x300;
pub const H_SET_MODE: u64 = 0x31c;
pub const H_REGISTER_PROC_TBL: u64 = 0x37c;
pub const H_RPT_INVALIDATE: u64 = 0x448;

/// XIVE exploitation-mode hcalls (PAPR 14.5.4.7 "Interrupt Support for XIVE";
/// Linux `hvcall.h`; served by [`crate::xive::Xive`]).
pub const H_INT_GET_SOURCE_INFO: u64 = 0x3a8;
pub const H_INT_SET_SOURCE_CONFIG: u64 = 0x3ac;
pub const H_INT_GET_SOURCE_CONFIG: u64 = 0x3b0;
pub const H_INT_GET_QUEUE_INFO: u64 = 0x3b4;
pub const H_INT_SET_QUEUE_CONFIG: u64 = 0x3b8;
pub const H_INT_GET_QUEUE_CONFIG: u64 = 0x3bc;
pub const H_INT_SET_OS_REPORTING_LINE: u64 = 0x3c0;
pub const H_INT_GET_OS_REPORTING_LINE: u64 = 0x3c4;
pub const H_INT_ESB: u64 = 0x3c8;
pub const H_INT_SYNC: u64 = 0x3cc;
pub const H_INT_RESET: u64 = 0x3d0;
pub const H_RTAS: u64 = 0xf000;

/// `ibm,hypertas-functions` strings for what Paprika implements (PAPR 14.5.1 table
/// of function sets), so a guest knows exactly which calls to use.
pub const HYPERTAS: &[&str] = &[
    "hcall-term",
    "hcall-splpar",
    "hcall-random",
    "hcall-set-mode",
    "hcall-rpt-invalidate",
    "hcall-sprg0",
    "hcall-dabr",
    "hcall-xdabr",
];

/// Opcodes are multiples of 4 in the architected ranges.
pub const fn valid_opcode(op: u64) -> bool {
    op.is_multiple_of(4)
        && (op <= 0x500 || (op >= 0xf000 && op <= 0xf810) || (op >= 0xef00 && op <= 0xef20))
}

/// H_PUT_TERM_CHAR: unpacks up to 16 bytes from r6/r7 (most significant byte first).
pub fn unpack_term_chars(len: u64, hi: u64, lo: u64) -> Result<([u8; 16], usize), HcallError> {
    if len > 16 {
        return Err(HcallError::Parameter);
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hi.to_be_bytes());
    out[8..].copy_from_slice(&lo.to_be_bytes());
    Ok((out, len as usize))
}

/// H_GET_TERM_CHAR: packs up to 16 bytes into two registers.
pub fn pack_term_chars(bytes: &[u8]) -> (u64, u64, u64) {
    let n = bytes.len().min(16);
    let mut buf = [0u8; 16];
    buf[..n].copy_from_slice(&bytes[..n]);
    let hi = u64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
    let lo = u64::from_be_bytes(buf[8..].try_into().unwrap_or([0; 8]));
    (n as u64, hi, lo)
}

/// H_SET_MODE resources and flags (PAPR 14.5.4.3.x; QEMU's spapr_hcall.c).
pub const H_SET_MODE_RESOURCE_SET_CIABR: u64 = 1;
pub const H_SET_MODE_RESOURCE_SET_DAWR0: u64 = 2;
pub const H_SET_MODE_RESOURCE_ADDR_TRANS_MODE: u64 = 3;
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;
pub const H_SET_MODE_RESOURCE_SET_DAWR1: u64 = 5;

/// What an H_SET_MODE call asks for, decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Interrupts in little- (`true`) or big-endian.
    InterruptEndian(bool),
    /// Alternate interrupt location: 0 or 3.
    Ail(u8),
    /// Completed instruction address breakpoint (CIABR value).
    Ciabr(u64),
    /// Data address watchpoint 0: DAWR0, DAWRX0.
    Dawr0(u64, u64),
}

pub fn decode_set_mode(
    mflags: u64,
    resource: u64,
    value1: u64,
    value2: u64,
) -> Result<SetMode, HcallError> {
    match resource {
        H_SET_MODE_RESOURCE_LE => {
            if value1 != 0 {
                return Err(HcallError::P3);
            }
            if value2 != 0 {
                return Err(HcallError::P4);
            }
            match mflags {
                0 => Ok(SetMode::InterruptEndian(false)),
                1 => Ok(SetMode::InterruptEndian(true)),
                _ => Err(HcallError::UnsupportedFlag),
            }
        }
        H_SET_MODE_RESOURCE_ADDR_TRANS_MODE => {
            if value1 != 0 {
                return Err(HcallError::P3);
            }
            if value2 != 0 {
                return Err(HcallError::P4);
            }
            match mflags {
                0 => Ok(SetMode::Ail(0)),
                3 => Ok(SetMode::Ail(3)),
                1 | 2 => Err(HcallError::UnsupportedFlag),
                _ => Err(HcallError::UnsupportedFlag),
            }
        }
        // CIABR and DAWR0 as KVM-HV checks them (its kvmppc_h_set_mode): no
        // flags, and the guest cannot name hypervisor state. DAWR1 (Power10) is
        // not offered: the guest is not told it exists (no ibm,pa-features bit).
        H_SET_MODE_RESOURCE_SET_CIABR => {
            if mflags != 0 {
                return Err(HcallError::UnsupportedFlag);
            }
            if value2 != 0 {
                return Err(HcallError::P4);
            }
            if value1 & super::hcall_misc::CIABR_PRIV_MASK == super::hcall_misc::CIABR_PRIV_HYPER {
                return Err(HcallError::P3);
            }
            Ok(SetMode::Ciabr(value1))
        }
        H_SET_MODE_RESOURCE_SET_DAWR0 => {
            if mflags != 0 {
                return Err(HcallError::UnsupportedFlag);
            }
            if value2 & super::hcall_misc::DABRX_HYP != 0 {
                return Err(HcallError::P4);
            }
            Ok(SetMode::Dawr0(value1, value2))
        }
        _ => Err(HcallError::P2),
    }
}

/// H_REGISTER_PROC_TBL flags (Linux hvcall.h PROC_TABLE_*).
pub const PROC_TABLE_OP_MASK: u64 = 0x18;
pub const PROC_TABLE_DEREG: u64 = 0x10;
pub const PROC_TABLE_NEW: u64 = 0x18;
pub const PROC_TABLE_TYPE_MASK: u64 = 0x06;
pub const PROC_TABLE_RADIX: u64 = 0x04;
pub const PROC_TABLE_GTSE: u64 = 0x01;

/// A checked H_REGISTER_PROC_TBL request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcTable {
    Deregister,
    Radix {
        base: u64,
        size_field: u64,
        gtse: bool,
    },
}

pub fn decode_register_proc_tbl(
    flags: u64,
    base: u64,
    page_size: u64,
    table_size: u64,
    guest_mem: u64,
) -> Result<ProcTable, HcallError> {
    if flags & !(PROC_TABLE_OP_MASK | PROC_TABLE_TYPE_MASK | PROC_TABLE_GTSE) != 0 {
        return Err(HcallError::Parameter);
    }
    match flags & PROC_TABLE_OP_MASK {
        PROC_TABLE_DEREG => return Ok(ProcTable::Deregister),
        PROC_TABLE_NEW => {}
        _ => return Err(HcallError::Parameter),
    }
    if flags & PROC_TABLE_TYPE_MASK != PROC_TABLE_RADIX {
        // Hash page tables are not offered (the device tree announces radix only).
        return Err(HcallError::Parameter);
    }
    if page_size != 0 || table_size > 24 {
        return Err(HcallError::Parameter);
    }
    let bytes = 1u64 << (12 + table_size);
    if !base.is_multiple_of(bytes) || base.checked_add(bytes).is_none_or(|end| end > guest_mem) {
        return Err(HcallError::Parameter);
    }
    Ok(ProcTable::Radix {
        base,
        size_field: table_size,
        gtse: flags & PROC_TABLE_GTSE != 0,
    })
}

/// H_PAGE_INIT flags (PAPR: H_ZERO_PAGE, H_COPY_PAGE, cache hints).
pub const H_ICACHE_INVALIDATE: u64 = 1 << (63 - 40);
pub const H_ICACHE_SYNCHRONIZE: u64 = 1 << (63 - 41);
pub const H_COPY_PAGE: u64 = 1 << (63 - 49);
pub const H_ZERO_PAGE: u64 = 1 << (63 - 48);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageInit {
    Zero { dst: u64 },
    Copy { dst: u64, src: u64 },
    Nothing,
}

pub fn decode_page_init(
    flags: u64,
    dst: u64,
    src: u64,
    guest_mem: u64,
) -> Result<PageInit, HcallError> {
    const PAGE: u64 = 4096;
    let known = H_ICACHE_INVALIDATE | H_ICACHE_SYNCHRONIZE | H_COPY_PAGE | H_ZERO_PAGE;
    if flags & !known != 0 {
        return Err(HcallError::Parameter);
    }
    let in_mem =
        |a: u64| a.is_multiple_of(PAGE) && a.checked_add(PAGE).is_some_and(|e| e <= guest_mem);
    if !in_mem(dst) {
        return Err(HcallError::Parameter);
    }
    if flags & H_COPY_PAGE != 0 {
        if !in_mem(src) {
            return Err(HcallError::Parameter);
        }
        Ok(PageInit::Copy { dst, src })
    } else if flags & H_ZERO_PAGE != 0 {
        Ok(PageInit::Zero { dst })
    } else {
        Ok(PageInit::Nothing)
    }
}

/// H_REGISTER_VPA subfunctions (flags bits 16:18) and the VPA itself: PAPR 14.11.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpaOp {
    RegisterVpa,
    DeregisterVpa,
    RegisterSlb,
    DeregisterSlb,
    RegisterDtl,
    DeregisterDtl,
}

pub fn decode_register_vpa(flags: u64, addr: u64, guest_mem: u64) -> Result<VpaOp, HcallError> {
    let op = match (flags >> (63 - 18)) & 7 {
        1 => VpaOp::RegisterVpa,
        2 => VpaOp::RegisterDtl,
        3 => VpaOp::RegisterSlb,
        5 => VpaOp::DeregisterVpa,
        6 => VpaOp::DeregisterDtl,
        7 => VpaOp::DeregisterSlb,
        _ => return Err(HcallError::Parameter),
    };
    if matches!(
        op,
        VpaOp::RegisterVpa | VpaOp::RegisterDtl | VpaOp::RegisterSlb
    ) {
        // The area must be cache-line aligned and inside guest memory; its size is
        // read from it by the caller.
        if !addr.is_multiple_of(128) || addr.checked_add(1024).is_none_or(|e| e > guest_mem) {
            return Err(HcallError::Parameter);
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_papr() {
        assert_eq!(HcallError::Function.code(), -2);
        assert_eq!(HcallError::Parameter.code(), -4);
        assert_eq!(HcallError::P2.code(), -55);
        assert_eq!(HcallError::UnsupportedFlag.code(), -256);
    }

    #[test]
    fn term_chars_round_trip() {
        let (n, hi, lo) = pack_term_chars(b"hello, world!!!!");
        assert_eq!(n, 16);
        let (buf, len) = unpack_term_chars(n, hi, lo).unwrap();
        assert_eq!(&buf[..len], b"hello, world!!!!");
        assert_eq!(hi >> 56, u64::from(b'h'));
        assert_eq!(unpack_term_chars(17, 0, 0), Err(HcallError::Parameter));
        let (n, hi, _) = pack_term_chars(b"ab");
        assert_eq!((n, hi), (2, 0x6162_0000_0000_0000));
    }

    #[test]
    fn set_mode_checks() {
        assert_eq!(
            decode_set_mode(1, 4, 0, 0),
            Ok(SetMode::InterruptEndian(true))
        );
        assert_eq!(
            decode_set_mode(0, 4, 0, 0),
            Ok(SetMode::InterruptEndian(false))
        );
        assert_eq!(
            decode_set_mode(2, 4, 0, 0),
            Err(HcallError::UnsupportedFlag)
        );
        assert_eq!(decode_set_mode(1, 4, 1, 0), Err(HcallError::P3));
        assert_eq!(decode_set_mode(3, 3, 0, 0), Ok(SetMode::Ail(3)));
        assert_eq!(decode_set_mode(0, 99, 0, 0), Err(HcallError::P2));
        assert_eq!(
            decode_set_mode(0, 1, 0x1000 | 2, 0),
            Ok(SetMode::Ciabr(0x1002))
        );
        assert_eq!(decode_set_mode(0, 1, 0x1000 | 3, 0), Err(HcallError::P3));
        assert_eq!(
            decode_set_mode(1, 1, 0x1000, 0),
            Err(HcallError::UnsupportedFlag)
        );
        assert_eq!(
            decode_set_mode(0, 2, 0x2000, 0x43),
            Ok(SetMode::Dawr0(0x2000, 0x43))
        );
        assert_eq!(decode_set_mode(0, 2, 0x2000, 0x4), Err(HcallError::P4));
        assert_eq!(
            decode_set_mode(0, H_SET_MODE_RESOURCE_SET_DAWR1, 0, 0),
            Err(HcallError::P2)
        );
    }

    #[test]
    fn proc_tbl_checks() {
        let mem = 256 << 20;
        assert_eq!(
            decode_register_proc_tbl(
                PROC_TABLE_NEW | PROC_TABLE_RADIX | PROC_TABLE_GTSE,
                0x10000,
                0,
                4,
                mem
            ),
            Ok(ProcTable::Radix {
                base: 0x10000,
                size_field: 4,
                gtse: true
            })
        );
        assert_eq!(
            decode_register_proc_tbl(PROC_TABLE_NEW | PROC_TABLE_RADIX, 0x1000, 0, 4, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_register_proc_tbl(PROC_TABLE_NEW | PROC_TABLE_RADIX, mem, 0, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_register_proc_tbl(PROC_TABLE_NEW, 0x10000, 0, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_register_proc_tbl(PROC_TABLE_DEREG, 0, 0, 0, mem),
            Ok(ProcTable::Deregister)
        );
        assert_eq!(
            decode_register_proc_tbl(1 << 40, 0, 0, 0, mem),
            Err(HcallError::Parameter)
        );
    }

    #[test]
    fn page_init_and_vpa_checks() {
        let mem = 1 << 20;
        assert_eq!(
            decode_page_init(H_ZERO_PAGE, 0x2000, 0, mem),
            Ok(PageInit::Zero { dst: 0x2000 })
        );
        assert_eq!(
            decode_page_init(H_ZERO_PAGE, 0x2001, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_page_init(H_ZERO_PAGE, mem, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_page_init(H_COPY_PAGE, 0x2000, mem, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_page_init(1, 0x2000, 0, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_register_vpa(1 << (63 - 18), 0x1000, mem),
            Ok(VpaOp::RegisterVpa)
        );
        assert_eq!(
            decode_register_vpa(1 << (63 - 18), 0x1001, mem),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_register_vpa(0, 0x1000, mem),
            Err(HcallError::Parameter)
        );
        assert!(valid_opcode(0x58));
        assert!(!valid_opcode(0x59));
        assert!(!valid_opcode(0x1_0000_0000));
    }
}
