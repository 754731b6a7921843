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
    /// H_CLOSED (2): the resource the call continues is gone or not ready:
    /// H_RESIZE_HPT_COMMIT without a matching H_RESIZE_HPT_PREPARE; the CRQ
    /// partner is not ready (H_REG_CRQ: the queue is registered all the same;
    /// H_SEND_CRQ: nothing was sent; ibmvscsi waits for the partner's INIT).
    Closed = 2,
    /// H_NOT_AVAILABLE (3): the resource does not exist in this partition.
    NotAvailable = 3,
    Hardware = -1,
    Function = -2,
    Privilege = -3,
    Parameter = -4,
    BadMode = -5,
    /// H_PTEG_FULL (-6): no free slot in the HPTE group (H_ENTER).
    PtegFull = -6,
    /// H_NOT_FOUND (-7): no such HPTE (H_REMOVE, H_PROTECT, H_CLEAR_*).
    NotFound = -7,
    /// H_AUTHORITY (-10): the caller is not allowed this (KVM: H_SVM_INIT_START in
    /// a partition whose VMM did not allow secure execution).
    Authority = -10,
    /// H_DROPPED (-12): not delivered: the frame was not sent
    /// (H_SEND_LOGICAL_LAN on a closed adapter, as QEMU), or the receiving CRQ
    /// is full (H_SEND_CRQ).
    Dropped = -12,
    /// H_RESOURCE (-16): a prerequisite resource is missing (a DTL or SLB shadow
    /// without a VPA; a VPA still carrying one).
    Resource = -16,
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
    /// H_UNSUPPORTED (-67): the call exists but not in this state or context (KVM:
    /// H_SVM_* from a caller with SRR1[S] = 0, or before H_SVM_INIT_START).
    Unsupported = -67,
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

/// Secure-VM hcalls (Linux `hvcall.h`): issued by the ultravisor on behalf of a
/// secure guest (reflected, SRR1[S] = 1); `crate::uv::svm` handles them.
pub const H_SVM_PAGE_IN: u64 = 0xef00;
pub const H_SVM_PAGE_OUT: u64 = 0xef04;
pub const H_SVM_INIT_START: u64 = 0xef08;
pub const H_SVM_INIT_DONE: u64 = 0xef0c;
/// H_TPM_COMM: the TPM proxy a secure guest's ESM uses (QEMU `spapr_tpm_proxy`).
pub const H_TPM_COMM: u64 = 0xef10;
pub const H_SVM_INIT_ABORT: u64 = 0xef14;
/// H_SVM_PAGE_IN flag: share the page (the guest's UV_SHARE_PAGE).
pub const H_PAGE_IN_SHARED: u64 = 0x1;

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
    // VIO: H_VIO_SIGNAL and the CRQ calls; the TCE calls, H_PUT_TCE_INDIRECT
    // and H_STUFF_TCE (Linux maps and unmaps up to 512 pages a call with them).
    "hcall-vio",
    "hcall-tce",
    "hcall-multi-tce",
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
    // Flag and operation errors are H_PARAMETER; argument errors name the
    // argument (H_P2 base, H_P3 page size, H_P4 table size), in that order, as
    // QEMU's h_register_process_table answers.
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
    // QEMU: a 4 KiB-aligned base below 2^60. Paprika also wants the table
    // aligned to its own size (the PATE's PRTB field) and inside the
    // partition's memory; both are the base's fault, so H_P2 too.
    if !base.is_multiple_of(4096) || base >> 60 != 0 {
        return Err(HcallError::P2);
    }
    if page_size != 0 {
        return Err(HcallError::P3);
    }
    if table_size > 24 {
        return Err(HcallError::P4);
    }
    let bytes = 1u64 << (12 + table_size);
    if !base.is_multiple_of(bytes) || base.checked_add(bytes).is_none_or(|end| end > guest_mem) {
        return Err(HcallError::P2);
    }
    Ok(ProcTable::Radix {
        base,
        size_field: table_size,
        gtse: flags & PROC_TABLE_GTSE != 0,
    })
}

/// H_REGISTER_PROC_TBL type "hash with segment tables" (HPT_PT) and the
/// operation "keep the current registration" (no op bits).
pub const PROC_TABLE_HPT_PT: u64 = 0x02;
pub const PROC_TABLE_KEEP: u64 = 0x00;

/// A checked H_REGISTER_PROC_TBL request of a hash-MMU partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashProcTable {
    /// Keep the hashed page table with the SLB (Linux `hpte_init_pseries`
    /// asks this with all arguments 0 on ISA v3.0).
    Keep,
    /// A new HPT/SLB registration or a deregistration: nothing to change, the
    /// partition has no process table in SLB mode (LPCR[UPRT] = 0).
    Slb,
}

/// Checks H_REGISTER_PROC_TBL in a partition whose MMU is a hashed page table,
/// with QEMU's codes (`h_register_process_table`): reserved flag bits and a
/// "keep" with the radix flag set are H_PARAMETER; a new hash/SLB registration
/// checks base (H_P2, below 2^38), page size (H_P3) and table size (H_P4). Radix
/// and segment-table registrations are H_PARAMETER: the partition offers
/// neither (QEMU cannot run segment tables either).
pub fn decode_register_proc_tbl_hash(
    flags: u64,
    base: u64,
    page_size: u64,
    table_size: u64,
) -> Result<HashProcTable, HcallError> {
    if flags & !(PROC_TABLE_OP_MASK | PROC_TABLE_TYPE_MASK | PROC_TABLE_GTSE) != 0 {
        return Err(HcallError::Parameter);
    }
    if flags & PROC_TABLE_TYPE_MASK != 0 {
        return Err(HcallError::Parameter);
    }
    match flags & PROC_TABLE_OP_MASK {
        PROC_TABLE_KEEP => Ok(HashProcTable::Keep),
        PROC_TABLE_DEREG => Ok(HashProcTable::Slb),
        PROC_TABLE_NEW => {
            if base >> 38 != 0 {
                Err(HcallError::P2)
            } else if page_size & !0x7 != 0 {
                Err(HcallError::P3)
            } else if table_size > 24 {
                Err(HcallError::P4)
            } else {
                Ok(HashProcTable::Slb)
            }
        }
        _ => Err(HcallError::Parameter),
    }
}

/// `ibm,hypertas-functions` a hash-MMU partition has besides [`HYPERTAS`]:
/// H_ENTER, H_REMOVE, H_READ, H_PROTECT, H_CLEAR_MOD, H_CLEAR_REF
/// ("hcall-pft"), H_BULK_REMOVE ("hcall-bulk") and H_RESIZE_HPT_PREPARE/COMMIT
/// ("hcall-hpt-resize", as QEMU's pseries with resize-hpt enabled).
pub const HYPERTAS_HASH: &[&str] = &["hcall-pft", "hcall-bulk", "hcall-hpt-resize"];

/// H_RPT_INVALIDATE type bits (Linux `hvcall.h` H_RPTI_TYPE_*).
pub const H_RPTI_TYPE_NESTED: u64 = 0x1;
pub const H_RPTI_TYPE_TLB: u64 = 0x2;
pub const H_RPTI_TYPE_PWC: u64 = 0x4;
/// Process table entries (PRT; "PAT" in older headers).
pub const H_RPTI_TYPE_PRT: u64 = 0x8;
pub const H_RPTI_TYPE_ALL: u64 = H_RPTI_TYPE_TLB | H_RPTI_TYPE_PWC | H_RPTI_TYPE_PRT;

/// H_RPT_INVALIDATE page-size bits (Linux `hvcall.h` H_RPTI_PAGE_*): the radix
/// page sizes a partition's process-scoped tables may map, each with its shift
/// and the AP (actual page size) code `tlbie` takes in RB 56:58 (Power ISA
/// v3.0B Book III 6.7.5.3, the values of `ibm,processor-radix-AP-encodings`).
pub const RPT_PAGE_SIZES: [(u64, u32, u8); 4] = [
    (0x1, 12, 0), // 4 KiB
    (0x2, 16, 5), // 64 KiB
    (0x4, 21, 1), // 2 MiB
    (0x8, 30, 2), // 1 GiB
];

/// At most this many page invalidations serve one ranged H_RPT_INVALIDATE; a
/// range that needs more is served as one invalidation of the whole PID (as
/// Linux's `tlb_single_page_flush_ceiling`, 33 pages, and KVM's ceiling).
pub const RPT_PAGE_CEILING: u64 = 33;

/// Radix invalidation control (`tlbie` RIC, Book III 6.7.5.3): what of a PID's
/// cached translation state goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ric {
    /// RIC = 0: TLB entries.
    Tlb = 0,
    /// RIC = 1: the page-walk cache.
    Pwc = 1,
    /// RIC = 2: TLB, page-walk cache and cached process-table entries.
    All = 2,
}

/// What one H_RPT_INVALIDATE of the partition's own (process-scoped)
/// translations asks the hypervisor to invalidate, in the caller's LPID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RptInvalidate {
    /// Nothing names a translation that can exist: no TLB, PWC or PRT type
    /// bit, an empty range, no page size the partition can map, or a PID no
    /// PIDR can hold.
    Nothing,
    /// All of one PID's translations of the kind `ric` says.
    Pid { pid: u32, ric: Ric },
    /// The TLB entries of `[start, end)` for each page size in `sizes` (an
    /// H_RPTI_PAGE_* mask, only sizes in [`RPT_PAGE_SIZES`]), with the PID's
    /// page-walk cache first when `pwc`. [`rpt_pages`] lists them; there are
    /// at most [`RPT_PAGE_CEILING`].
    Range {
        pid: u32,
        pwc: bool,
        sizes: u64,
        start: u64,
        end: u64,
    },
}

/// The page invalidations of a [`RptInvalidate::Range`]: (effective address
/// of the page, AP code) for every page of each named size that overlaps
/// `[start, end)`, the first one aligned down to its size.
pub fn rpt_pages(sizes: u64, start: u64, end: u64) -> impl Iterator<Item = (u64, u8)> {
    RPT_PAGE_SIZES
        .iter()
        .filter(move |&&(bit, _, _)| sizes & bit != 0)
        .flat_map(move |&(_, shift, ap)| {
            let first = start >> shift;
            let count = pages_spanned(start, end, shift);
            (0..count).map(move |i| ((first + i) << shift, ap))
        })
}

/// Pages of `1 << shift` bytes that overlap `[start, end)` (`end` exclusive;
/// `end == u64::MAX` counts the last byte too).
fn pages_spanned(start: u64, end: u64, shift: u32) -> u64 {
    if end <= start {
        return 0;
    }
    let last = if end == u64::MAX { end } else { end - 1 };
    (last >> shift) - (start >> shift) + 1
}

/// Checks H_RPT_INVALIDATE(pid, target, type, page_sizes, start, end) as
/// KVM-HV (`kvmppc_h_rpt_invalidate`) does for a radix guest that is not a
/// nested hypervisor: a range ending before it starts is H_P5 (checked first),
/// a NESTED (partition-scoped) request is H_FUNCTION (the caller serves it for
/// a nested partition before asking here). Everything else succeeds, and says
/// precisely what to invalidate (Linux `hvcall.h` semantics; the target bits
/// need nothing beyond the caller's MMU: no partition has a nest-MMU user):
///
/// - PRT (process-table entries) can only go with RIC = 2, which takes the
///   PID's TLB and page-walk cache with it: the whole PID, RIC = 2.
/// - TLB over everything (`start = 0, end = u64::MAX`), or a range needing
///   more than [`RPT_PAGE_CEILING`] page invalidations over all its page
///   sizes: the whole PID, RIC = 0 (RIC = 2 if PWC is asked too).
/// - TLB over a smaller range: those pages, page by page, after RIC = 1 for
///   the PID if PWC is asked (a page-walk cache cannot be invalidated by
///   address).
/// - PWC alone: RIC = 1 for the PID.
pub fn decode_rpt_invalidate(
    pid: u64,
    _target: u64,
    kind: u64,
    page_sizes: u64,
    start: u64,
    end: u64,
) -> Result<RptInvalidate, HcallError> {
    if end < start {
        return Err(HcallError::P5);
    }
    if kind & H_RPTI_TYPE_NESTED != 0 {
        return Err(HcallError::Function);
    }
    // PIDR holds 32 bits (Book III 5.7.6.1; POWER9 and Power10 implement 20,
    // `ibm,mmu-pid-bits`): a larger PID has no translations.
    let Ok(pid) = u32::try_from(pid) else {
        return Ok(RptInvalidate::Nothing);
    };
    let (tlb, pwc) = (kind & H_RPTI_TYPE_TLB != 0, kind & H_RPTI_TYPE_PWC != 0);
    if kind & H_RPTI_TYPE_PRT != 0 {
        return Ok(RptInvalidate::Pid { pid, ric: Ric::All });
    }
    let whole = |pwc: bool| RptInvalidate::Pid {
        pid,
        ric: if pwc { Ric::All } else { Ric::Tlb },
    };
    if !tlb {
        return Ok(if pwc {
            RptInvalidate::Pid { pid, ric: Ric::Pwc }
        } else {
            RptInvalidate::Nothing
        });
    }
    if start == 0 && end == u64::MAX {
        return Ok(whole(pwc));
    }
    let sizes = RPT_PAGE_SIZES
        .iter()
        .filter(|&&(bit, _, _)| page_sizes & bit != 0)
        .fold(0, |m, &(bit, _, _)| m | bit);
    let pages: u64 = RPT_PAGE_SIZES
        .iter()
        .filter(|&&(bit, _, _)| sizes & bit != 0)
        .map(|&(_, shift, _)| pages_spanned(start, end, shift))
        .fold(0u64, u64::saturating_add);
    Ok(match pages {
        0 if pwc => RptInvalidate::Pid { pid, ric: Ric::Pwc },
        0 => RptInvalidate::Nothing,
        n if n > RPT_PAGE_CEILING => whole(pwc),
        _ => RptInvalidate::Range {
            pid,
            pwc,
            sizes,
            start,
            end,
        },
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

/// What H_PAGE_INIT does to the instruction cache after initialising the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCache {
    Nothing,
    /// H_ICACHE_INVALIDATE: drop the page's instruction cache lines (icbi).
    Invalidate,
    /// H_ICACHE_SYNCHRONIZE: write the data cache back, then invalidate the
    /// instruction cache (dcbst; sync; icbi; isync), so stores to the page are
    /// seen by instruction fetch (Book II 1.6, "instruction storage").
    Synchronize,
}

/// The cache work H_PAGE_INIT `flags` ask for (SYNCHRONIZE includes INVALIDATE).
pub const fn page_init_cache(flags: u64) -> PageCache {
    if flags & H_ICACHE_SYNCHRONIZE != 0 {
        PageCache::Synchronize
    } else if flags & H_ICACHE_INVALIDATE != 0 {
        PageCache::Invalidate
    } else {
        PageCache::Nothing
    }
}

/// H_REGISTER_VPA subfunctions: flags bits 16:18 (PAPR 14.11.3.2), the rest of
/// `flags` zero. QEMU compares the whole value, so does Paprika.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpaOp {
    RegisterVpa,
    DeregisterVpa,
    RegisterSlb,
    DeregisterSlb,
    RegisterDtl,
    DeregisterDtl,
}

pub const H_VPA_REG_VPA: u64 = 1 << (63 - 18);
pub const H_VPA_REG_DTL: u64 = 2 << (63 - 18);
pub const H_VPA_REG_SLB: u64 = 3 << (63 - 18);
pub const H_VPA_DEREG_VPA: u64 = 5 << (63 - 18);
pub const H_VPA_DEREG_DTL: u64 = 6 << (63 - 18);
pub const H_VPA_DEREG_SLB: u64 = 7 << (63 - 18);

/// The VPA (Linux `struct lppaca`): its size (big-endian u16) at offset 4, the
/// status byte whose 0x02 bit says "shared processor" at 9, and the dispatch
/// (yield) count (big-endian u32) at 0x100.
pub const VPA_SIZE_OFFSET: u64 = 4;
pub const VPA_STATUS_OFFSET: u64 = 9;
pub const VPA_STATUS_SHARED_PROC: u8 = 0x02;
pub const VPA_YIELD_COUNT_OFFSET: u64 = 0x100;
/// Smallest VPA a guest may register (KVM's and QEMU's `sizeof(lppaca)`).
pub const VPA_MIN_SIZE: u64 = 640;
/// A DTL entry (`struct dtl_entry`): the smallest DTL, and its size unit.
pub const DTL_ENTRY_SIZE: u64 = 48;
/// Smallest SLB shadow buffer (QEMU: its two header words).
pub const SLB_SHADOW_MIN_SIZE: u64 = 8;

pub fn decode_vpa_flags(flags: u64) -> Result<VpaOp, HcallError> {
    Ok(match flags {
        H_VPA_REG_VPA => VpaOp::RegisterVpa,
        H_VPA_REG_DTL => VpaOp::RegisterDtl,
        H_VPA_REG_SLB => VpaOp::RegisterSlb,
        H_VPA_DEREG_VPA => VpaOp::DeregisterVpa,
        H_VPA_DEREG_DTL => VpaOp::DeregisterDtl,
        H_VPA_DEREG_SLB => VpaOp::DeregisterSlb,
        _ => return Err(HcallError::Parameter),
    })
}

/// The per-processor areas a vCPU has registered (guest real addresses, 0 =
/// none; sizes as the guest gave them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VpaAreas {
    pub vpa: u64,
    pub dtl: u64,
    pub dtl_size: u64,
    pub slb: u64,
    pub slb_size: u64,
}

/// Applies H_REGISTER_VPA `op` with area `addr` to `areas`, reading an area's
/// size field through `read_size(gra, bytes)` (a big-endian 2-byte VPA size or a
/// 4-byte DTL/SLB size; `None` outside guest memory). The checks, in order:
/// - address 0: H_HARDWARE (QEMU "can't cope with ... at logical 0");
/// - not 128-byte (cache line) aligned: H_PARAMETER (KVM, QEMU for the VPA);
/// - the size field outside memory, or the area `[addr, addr + size)` not inside
///   the partition's memory: H_PARAMETER;
/// - VPA smaller than 640 bytes or crossing a 4 KiB boundary: H_PARAMETER;
/// - DTL smaller than one 48-byte entry: H_PARAMETER (its size is rounded down
///   to whole entries, as KVM does); SLB shadow smaller than 8 bytes or crossing
///   4 KiB: H_PARAMETER (QEMU);
/// - DTL or SLB shadow without a registered VPA: H_RESOURCE;
/// - deregistering the VPA while a DTL or SLB shadow is registered: H_RESOURCE.
pub fn apply_register_vpa(
    areas: &VpaAreas,
    op: VpaOp,
    addr: u64,
    guest_mem: u64,
    read_size: impl Fn(u64, u64) -> Option<u64>,
) -> Result<VpaAreas, HcallError> {
    let mut next = *areas;
    let size_of = |width: u64| -> Result<u64, HcallError> {
        if addr == 0 {
            return Err(HcallError::Hardware);
        }
        if !addr.is_multiple_of(128) {
            return Err(HcallError::Parameter);
        }
        let size = read_size(addr + VPA_SIZE_OFFSET, width).ok_or(HcallError::Parameter)?;
        if addr.checked_add(size).is_none_or(|e| e > guest_mem) {
            return Err(HcallError::Parameter);
        }
        Ok(size)
    };
    let crosses_4k = |size: u64| addr / 4096 != (addr + size.max(1) - 1) / 4096;
    match op {
        VpaOp::RegisterVpa => {
            let size = size_of(2)?;
            if size < VPA_MIN_SIZE || crosses_4k(size) {
                return Err(HcallError::Parameter);
            }
            next.vpa = addr;
        }
        VpaOp::RegisterDtl => {
            let size = size_of(4)?;
            if size < DTL_ENTRY_SIZE {
                return Err(HcallError::Parameter);
            }
            if areas.vpa == 0 {
                return Err(HcallError::Resource);
            }
            next.dtl = addr;
            next.dtl_size = size - size % DTL_ENTRY_SIZE;
        }
        VpaOp::RegisterSlb => {
            let size = size_of(4)?;
            if size < SLB_SHADOW_MIN_SIZE || crosses_4k(size) {
                return Err(HcallError::Parameter);
            }
            if areas.vpa == 0 {
                return Err(HcallError::Resource);
            }
            next.slb = addr;
            next.slb_size = size;
        }
        VpaOp::DeregisterVpa => {
            if areas.dtl != 0 || areas.slb != 0 {
                return Err(HcallError::Resource);
            }
            next.vpa = 0;
        }
        VpaOp::DeregisterDtl => {
            next.dtl = 0;
            next.dtl_size = 0;
        }
        VpaOp::DeregisterSlb => {
            next.slb = 0;
            next.slb_size = 0;
        }
    }
    Ok(next)
}

/// VPA offset of the DTL index (Linux `lppaca.dtl_idx`, big-endian u64): how
/// many DTL entries the hypervisor has written so far.
pub const VPA_DTL_IDX_OFFSET: u64 = 0x218;
/// DTL entry `dispatch_reason` KVM-HV writes (7: dispatched after a preemption
/// or cede, "the virtual processor was dispatched").
pub const DTL_DISPATCH_REASON: u8 = 7;

/// One dispatch trace log entry (Linux `struct dtl_entry`, 48 bytes,
/// big-endian): dispatch reason, preempt reason, processor id, the
/// enqueue-to-dispatch (stolen) time, two more times left 0, the timebase, a
/// fault address (0) and the guest's SRR0/SRR1 (where it resumes, with which
/// MSR), as KVM-HV's `__kvmppc_create_dtl_entry` fills it.
pub fn dtl_entry(processor_id: u16, stolen: u32, timebase: u64, srr0: u64, srr1: u64) -> [u8; 48] {
    let mut e = [0u8; 48];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(d) = e.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
    };
    put(0, &[DTL_DISPATCH_REASON, 0]);
    put(2, &processor_id.to_be_bytes());
    put(4, &stolen.to_be_bytes());
    put(16, &timebase.to_be_bytes());
    put(32, &srr0.to_be_bytes());
    put(40, &srr1.to_be_bytes());
    e
}

/// Where DTL entry number `index` (counting from the registration) goes: the
/// DTL is a ring of `dtl_size / 48` entries.
pub fn dtl_slot(areas: &VpaAreas, index: u64) -> Option<u64> {
    let n = areas.dtl_size / DTL_ENTRY_SIZE;
    (areas.dtl != 0 && areas.vpa != 0 && n != 0).then(|| areas.dtl + (index % n) * DTL_ENTRY_SIZE)
}

/// A vCPU's registrations as H_REGISTER_VPA (from any vCPU of the partition,
/// under the target's lock) last left them, for the vCPU to take into its own
/// [`VpaCopy`] at its next dispatch or exit, as KVM-HV applies a pending VPA
/// update at the next entry (`update_pending`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VpaRegistration {
    pub areas: VpaAreas,
    /// A DTL was registered since the vCPU last took these: it starts at its
    /// first entry (KVM resets `dtl_index` too).
    pub dtl_restart: bool,
}

/// The vCPU's own view of its areas, with its dispatch count and DTL index:
/// only its hardware thread reads or changes it, so guest entry and exit write
/// the VPA and DTL without a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpaCopy {
    pub areas: VpaAreas,
    pub yield_count: YieldCount,
    /// DTL entries written since the DTL was registered (the VPA's `dtl_idx`).
    pub dtl_index: u64,
}

impl VpaCopy {
    /// No areas, a vCPU that never ran.
    pub const INITIAL: VpaCopy = VpaCopy {
        areas: VpaAreas {
            vpa: 0,
            dtl: 0,
            dtl_size: 0,
            slb: 0,
            slb_size: 0,
        },
        yield_count: YieldCount::INITIAL,
        dtl_index: 0,
    };

    /// Takes the registrations `r` holds (the count carries on).
    pub fn take(&mut self, r: &mut VpaRegistration) {
        self.areas = r.areas;
        if core::mem::take(&mut r.dtl_restart) {
            self.dtl_index = 0;
        }
    }
}

/// The VPA dispatch (yield) count (PAPR 14.11.3.2; what Linux's paravirt
/// spinlocks and `vcpu_is_preempted` read): incremented each time the
/// processor is dispatched and each time it is not, so it is **even while the
/// vCPU runs** and odd while it is ceded, stopped or preempted (Linux
/// `lib/locks.c`: "(yield_count & 1) == 0: virtual cpu is currently running";
/// KVM-HV increments it on every guest entry and exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YieldCount(pub u32);

impl YieldCount {
    /// A vCPU that never ran: not dispatched.
    pub const INITIAL: YieldCount = YieldCount(1);

    pub const fn dispatched(self) -> bool {
        self.0 & 1 == 0
    }

    /// The count after the vCPU is dispatched (`true`) or leaves its processor
    /// (`false`); unchanged when it already is in that state.
    pub const fn with_dispatched(self, on: bool) -> YieldCount {
        if self.dispatched() == on {
            self
        } else {
            YieldCount(self.0.wrapping_add(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpa_copy_takes_registrations() {
        let mut c = VpaCopy::INITIAL;
        c.yield_count = YieldCount(7);
        c.dtl_index = 5;
        let areas = VpaAreas {
            vpa: 0x1000,
            dtl: 0x2000,
            dtl_size: 480,
            slb: 0,
            slb_size: 0,
        };
        // A VPA alone: the DTL index and the count carry on.
        let mut r = VpaRegistration {
            areas,
            dtl_restart: false,
        };
        c.take(&mut r);
        assert_eq!(
            (c.areas, c.dtl_index, c.yield_count),
            (areas, 5, YieldCount(7))
        );
        // A new DTL restarts the index, once.
        r.dtl_restart = true;
        c.take(&mut r);
        assert_eq!(c.dtl_index, 0);
        assert!(!r.dtl_restart);
        c.dtl_index = 3;
        c.take(&mut r);
        assert_eq!(c.dtl_index, 3);
        // Everything deregistered (a reboot's teardown): nothing to write.
        c.take(&mut VpaRegistration::default());
        assert_eq!(c.areas, VpaAreas::default());
        assert_eq!(dtl_slot(&c.areas, c.dtl_index), None);
        assert_eq!(c.yield_count, YieldCount(7));
    }

    #[test]
    fn register_proc_tbl_in_a_hash_partition() {
        use HashProcTable::*;
        // Linux hpte_init_pseries: (0, 0, 0, 0).
        assert_eq!(decode_register_proc_tbl_hash(0, 0, 0, 0), Ok(Keep));
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW, 0, 0, 0),
            Ok(Slb)
        );
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_DEREG, 0, 0, 0),
            Ok(Slb)
        );
        let p = Err(HcallError::Parameter);
        // Radix (keep or new), segment tables, reserved bits, a bad op.
        assert_eq!(decode_register_proc_tbl_hash(PROC_TABLE_RADIX, 0, 0, 0), p);
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW | PROC_TABLE_RADIX, 0x10000, 0, 4),
            p
        );
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW | PROC_TABLE_HPT_PT, 0, 0, 0),
            p
        );
        assert_eq!(decode_register_proc_tbl_hash(0x20, 0, 0, 0), p);
        assert_eq!(decode_register_proc_tbl_hash(0x08, 0, 0, 0), p);
        // QEMU's argument codes for a new hash/SLB registration.
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW, 1 << 38, 0, 0),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW, 0, 8, 0),
            Err(HcallError::P3)
        );
        assert_eq!(
            decode_register_proc_tbl_hash(PROC_TABLE_NEW, 0, 0, 25),
            Err(HcallError::P4)
        );
    }

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
        let new = PROC_TABLE_NEW | PROC_TABLE_RADIX;
        assert_eq!(
            decode_register_proc_tbl(new | PROC_TABLE_GTSE, 0x10000, 0, 4, mem),
            Ok(ProcTable::Radix {
                base: 0x10000,
                size_field: 4,
                gtse: true
            })
        );
        assert_eq!(
            decode_register_proc_tbl(new, 0x10000, 0, 4, mem),
            Ok(ProcTable::Radix {
                base: 0x10000,
                size_field: 4,
                gtse: false
            })
        );
        // QEMU's codes: H_P2 for the base, H_P3 page size, H_P4 table size.
        assert_eq!(
            decode_register_proc_tbl(new, 0x1000, 0, 4, mem),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl(new, 0x10800, 0, 0, mem),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl(new, 1 << 60, 0, 0, mem),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl(new, mem, 0, 0, mem),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl(new, 0x10000, 1, 0, mem),
            Err(HcallError::P3)
        );
        assert_eq!(
            decode_register_proc_tbl(new, 0x10000, 0, 25, mem),
            Err(HcallError::P4)
        );
        // Base checked before page size, page size before table size.
        assert_eq!(
            decode_register_proc_tbl(new, 0x800, 1, 25, mem),
            Err(HcallError::P2)
        );
        assert_eq!(
            decode_register_proc_tbl(new, 0x1000, 1, 25, mem),
            Err(HcallError::P3)
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
    fn rpt_invalidate_types_as_linux() {
        // Linux's full flush (H_RPTI_TYPE_ALL = TLB|PWC|PRT = 0xe) and each bit,
        // over everything: the whole PID, RIC as the bits need.
        assert_eq!(H_RPTI_TYPE_ALL, 0xe);
        let pid = |ric| Ok(RptInvalidate::Pid { pid: 1, ric });
        for (t, ric) in [
            (H_RPTI_TYPE_ALL, Ric::All),
            (H_RPTI_TYPE_TLB, Ric::Tlb),
            (H_RPTI_TYPE_PWC, Ric::Pwc),
            (H_RPTI_TYPE_PRT, Ric::All),
            (H_RPTI_TYPE_TLB | H_RPTI_TYPE_PWC, Ric::All),
        ] {
            assert_eq!(
                decode_rpt_invalidate(1, 1, t, u64::MAX, 0, u64::MAX),
                pid(ric)
            );
        }
        // NESTED (partition-scoped, for a nested hypervisor): KVM without nesting.
        assert_eq!(
            decode_rpt_invalidate(1, 1, H_RPTI_TYPE_NESTED, u64::MAX, 0, u64::MAX),
            Err(HcallError::Function)
        );
        assert_eq!(
            decode_rpt_invalidate(1, 1, H_RPTI_TYPE_NESTED | H_RPTI_TYPE_TLB, 1, 0, 0),
            Err(HcallError::Function)
        );
        // A range ending before its start: H_P5, checked first (KVM).
        assert_eq!(
            decode_rpt_invalidate(1, 1, H_RPTI_TYPE_NESTED, 1, 0x2000, 0x1000),
            Err(HcallError::P5)
        );
        // Target bits are not checked (KVM); an empty range, no known type or
        // page size, or a PID beyond PIDR's 32 bits names nothing.
        assert_eq!(
            decode_rpt_invalidate(1, 7, 0x2, 0x1, 5, 5),
            Ok(RptInvalidate::Nothing)
        );
        assert_eq!(
            decode_rpt_invalidate(1, 1, 0x10, u64::MAX, 0, u64::MAX),
            Ok(RptInvalidate::Nothing)
        );
        assert_eq!(
            decode_rpt_invalidate(1, 1, H_RPTI_TYPE_TLB, 0x30, 0x1000, 0x2000),
            Ok(RptInvalidate::Nothing)
        );
        assert_eq!(
            decode_rpt_invalidate(1 << 32, 1, H_RPTI_TYPE_ALL, u64::MAX, 0, u64::MAX),
            Ok(RptInvalidate::Nothing)
        );
        // PWC with a range that has no page of a known size: still the PID's
        // walk cache.
        assert_eq!(
            decode_rpt_invalidate(3, 1, H_RPTI_TYPE_TLB | H_RPTI_TYPE_PWC, 0, 0x1000, 0x2000),
            Ok(RptInvalidate::Pid {
                pid: 3,
                ric: Ric::Pwc
            })
        );
    }

    #[test]
    fn rpt_invalidate_ranges_are_precise() {
        // Linux's user flush of one 64 KiB page (radix__flush_tlb_page without
        // GTSE): that page, nothing else.
        let one = decode_rpt_invalidate(
            7,
            1,
            H_RPTI_TYPE_TLB,
            0x2,
            0x7fff_0000,
            0x7fff_0000 + 0x1_0000,
        );
        let r = RptInvalidate::Range {
            pid: 7,
            pwc: false,
            sizes: 0x2,
            start: 0x7fff_0000,
            end: 0x8000_0000,
        };
        assert_eq!(one, Ok(r));
        assert_eq!(
            rpt_pages(0x2, 0x7fff_0000, 0x8000_0000).collect::<Vec<_>>(),
            [(0x7fff_0000, 5)]
        );
        // All page sizes over 64 KiB of a 2 MiB block: 16 4K, one 64K, the 2M
        // and the 1G page that contain it (aligned down), AP codes as the ISA.
        let start = 0xc000_0000_0123_0000u64;
        let v: Vec<_> = rpt_pages(u64::MAX, start, start + 0x1_0000).collect();
        assert_eq!(v.len(), 19);
        assert_eq!(v[0], (start, 0));
        assert_eq!(v[15], (start + 0xf000, 0));
        assert_eq!(v[16], (start, 5));
        assert_eq!(v[17], (start & !0x1f_ffff, 1));
        assert_eq!(v[18], (start & !0x3fff_ffff, 2));
        assert_eq!(
            decode_rpt_invalidate(
                0,
                1,
                H_RPTI_TYPE_TLB | H_RPTI_TYPE_PWC,
                u64::MAX,
                start,
                start + 0x1_0000
            ),
            Ok(RptInvalidate::Range {
                pid: 0,
                pwc: true,
                sizes: 0xf,
                start,
                end: start + 0x1_0000
            })
        );
        // Linux's kernel range (TLB|PWC|PRT): process-table entries need RIC 2.
        assert_eq!(
            decode_rpt_invalidate(0, 3, H_RPTI_TYPE_ALL, u64::MAX, start, start + 0x1_0000),
            Ok(RptInvalidate::Pid {
                pid: 0,
                ric: Ric::All
            })
        );
        // At the ceiling page by page; one page more is the whole PID.
        let ceil = RPT_PAGE_CEILING << 12;
        assert!(matches!(
            decode_rpt_invalidate(2, 1, H_RPTI_TYPE_TLB, 0x1, 0x10_0000, 0x10_0000 + ceil),
            Ok(RptInvalidate::Range { .. })
        ));
        assert_eq!(
            rpt_pages(0x1, 0x10_0000, 0x10_0000 + ceil).count() as u64,
            RPT_PAGE_CEILING
        );
        assert_eq!(
            decode_rpt_invalidate(2, 1, H_RPTI_TYPE_TLB, 0x1, 0x10_0000, 0x10_0000 + ceil + 1),
            Ok(RptInvalidate::Pid {
                pid: 2,
                ric: Ric::Tlb
            })
        );
        // A range to the top of the address space counts its last page and
        // does not overflow.
        assert_eq!(pages_spanned(u64::MAX - 0xfff, u64::MAX, 12), 1);
        assert_eq!(
            decode_rpt_invalidate(2, 1, H_RPTI_TYPE_TLB, u64::MAX, 1 << 40, u64::MAX),
            Ok(RptInvalidate::Pid {
                pid: 2,
                ric: Ric::Tlb
            })
        );
        // An unaligned range covers the pages it touches.
        assert_eq!(
            rpt_pages(0x1, 0x1fff, 0x2001).collect::<Vec<_>>(),
            [(0x1000, 0), (0x2000, 0)]
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
        assert!(valid_opcode(0x58));
        assert!(!valid_opcode(0x59));
        assert!(!valid_opcode(0x1_0000_0000));
    }

    #[test]
    fn page_init_cache_work() {
        assert_eq!(page_init_cache(H_ZERO_PAGE), PageCache::Nothing);
        assert_eq!(
            page_init_cache(H_COPY_PAGE | H_ICACHE_INVALIDATE),
            PageCache::Invalidate
        );
        assert_eq!(
            page_init_cache(H_COPY_PAGE | H_ICACHE_SYNCHRONIZE),
            PageCache::Synchronize
        );
        assert_eq!(
            page_init_cache(H_ICACHE_SYNCHRONIZE | H_ICACHE_INVALIDATE),
            PageCache::Synchronize
        );
        // PAPR bit numbers: INVALIDATE bit 40, SYNCHRONIZE bit 41.
        assert_eq!(H_ICACHE_INVALIDATE, 0x0000_0000_0080_0000);
        assert_eq!(H_ICACHE_SYNCHRONIZE, 0x0000_0000_0040_0000);
    }

    /// Guest memory for the VPA tests: a VPA size (u16) at 0x1004, DTL and SLB
    /// sizes (u32) at 0x2004 / 0x3004, as big-endian fields.
    fn sizes(gra: u64, width: u64) -> Option<u64> {
        match (gra, width) {
            (0x1004, 2) | (0x1f04, 2) => Some(640),
            (0x1084, 2) => Some(639),
            (0x2004, 4) => Some(48 * 3 + 7),
            (0x2084, 4) => Some(47),
            (0x3004, 4) => Some(0x100),
            (0x3f84, 4) => Some(0x100),
            (0x3084, 4) => Some(4),
            (0xff004, 2) => Some(0x2000),
            _ => Some(1024),
        }
    }

    #[test]
    fn vpa_flags_compared_whole() {
        assert_eq!(decode_vpa_flags(H_VPA_REG_VPA), Ok(VpaOp::RegisterVpa));
        assert_eq!(decode_vpa_flags(H_VPA_DEREG_SLB), Ok(VpaOp::DeregisterSlb));
        assert_eq!(H_VPA_REG_VPA, 0x0000_2000_0000_0000);
        assert_eq!(H_VPA_DEREG_DTL, 0x0000_c000_0000_0000);
        // Bits outside 16:18, and the unused values 0 and 4.
        assert_eq!(
            decode_vpa_flags(H_VPA_REG_VPA | 1),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            decode_vpa_flags(H_VPA_REG_VPA | 1 << 63),
            Err(HcallError::Parameter)
        );
        assert_eq!(decode_vpa_flags(0), Err(HcallError::Parameter));
        assert_eq!(decode_vpa_flags(4 << (63 - 18)), Err(HcallError::Parameter));
    }

    #[test]
    fn vpa_registration_rules() {
        let mem = 1 << 20;
        let none = VpaAreas::default();
        let reg = |a: &VpaAreas, op, addr| apply_register_vpa(a, op, addr, mem, sizes);
        let with_vpa = reg(&none, VpaOp::RegisterVpa, 0x1000).unwrap();
        assert_eq!(with_vpa.vpa, 0x1000);
        // At 0 (QEMU H_HARDWARE), misaligned, too small, crossing 4 KiB, outside.
        assert_eq!(reg(&none, VpaOp::RegisterVpa, 0), Err(HcallError::Hardware));
        assert_eq!(
            reg(&none, VpaOp::RegisterVpa, 0x1008),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            reg(&none, VpaOp::RegisterVpa, 0x1080),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            reg(&none, VpaOp::RegisterVpa, 0x1f00),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            reg(&none, VpaOp::RegisterVpa, 0xff000),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            apply_register_vpa(&none, VpaOp::RegisterVpa, 0x1000, 0x1100, sizes),
            Err(HcallError::Parameter)
        );
        // DTL / SLB shadow need a VPA (H_RESOURCE), after the size checks.
        assert_eq!(
            reg(&none, VpaOp::RegisterDtl, 0x2000),
            Err(HcallError::Resource)
        );
        assert_eq!(
            reg(&none, VpaOp::RegisterSlb, 0x3000),
            Err(HcallError::Resource)
        );
        assert_eq!(
            reg(&none, VpaOp::RegisterDtl, 0x2080),
            Err(HcallError::Parameter)
        );
        assert_eq!(reg(&none, VpaOp::RegisterDtl, 0), Err(HcallError::Hardware));
        let with_dtl = reg(&with_vpa, VpaOp::RegisterDtl, 0x2000).unwrap();
        assert_eq!((with_dtl.dtl, with_dtl.dtl_size), (0x2000, 48 * 3));
        assert_eq!(
            reg(&with_vpa, VpaOp::RegisterSlb, 0x3080),
            Err(HcallError::Parameter)
        );
        assert_eq!(
            reg(&with_vpa, VpaOp::RegisterSlb, 0x3f80),
            Err(HcallError::Parameter)
        );
        let with_slb = reg(&with_vpa, VpaOp::RegisterSlb, 0x3000).unwrap();
        assert_eq!((with_slb.slb, with_slb.slb_size), (0x3000, 0x100));
        // The VPA stays while a DTL or SLB shadow needs it.
        assert_eq!(
            reg(&with_dtl, VpaOp::DeregisterVpa, 0),
            Err(HcallError::Resource)
        );
        assert_eq!(
            reg(&with_slb, VpaOp::DeregisterVpa, 0),
            Err(HcallError::Resource)
        );
        let no_dtl = reg(&with_dtl, VpaOp::DeregisterDtl, 0).unwrap();
        assert_eq!(no_dtl, with_vpa);
        assert_eq!(reg(&no_dtl, VpaOp::DeregisterVpa, 0), Ok(none));
    }

    #[test]
    fn yield_count_even_while_dispatched() {
        let c = YieldCount::INITIAL;
        assert!(!c.dispatched());
        let run = c.with_dispatched(true);
        assert!(run.dispatched());
        assert_eq!(run.0 % 2, 0);
        assert_eq!(run.with_dispatched(true), run);
        let ceded = run.with_dispatched(false);
        assert_eq!(ceded.0, run.0 + 1);
        assert_eq!(ceded.with_dispatched(true).0, run.0 + 2);
        assert!(YieldCount(u32::MAX).with_dispatched(true).dispatched());
    }

    #[test]
    fn dtl_entries_as_kvm() {
        let e = dtl_entry(
            3,
            0,
            0x1122_3344_5566_7788,
            0xc000_0000_0000_1234,
            0x8000_0000_0000_1033,
        );
        assert_eq!(&e[..4], &[7, 0, 0, 3]);
        assert_eq!(&e[4..16], &[0; 12]);
        assert_eq!(&e[16..24], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(&e[24..32], &[0; 8]);
        assert_eq!(&e[32..40], &0xc000_0000_0000_1234u64.to_be_bytes());
        assert_eq!(&e[40..48], &0x8000_0000_0000_1033u64.to_be_bytes());
        let mut a = VpaAreas {
            vpa: 0x1000,
            dtl: 0x2000,
            dtl_size: 3 * 48,
            ..VpaAreas::default()
        };
        assert_eq!(dtl_slot(&a, 0), Some(0x2000));
        assert_eq!(dtl_slot(&a, 2), Some(0x2000 + 96));
        assert_eq!(dtl_slot(&a, 3), Some(0x2000));
        a.dtl = 0;
        assert_eq!(dtl_slot(&a, 0), None);
    }
}
