//! What an ultravisor changes for the hypervisor itself (PEF-NESTED-HASH.md §A.3
//! "What changes for a hypervisor on a UV machine"; Linux `set_ptcr_when_no_uv`,
//! `mmu_partition_table_set_entry`).
//!
//! With an ultravisor, PTCR is ultravisor-privileged for writing (a write is a
//! Hypervisor Emulation Assistance interrupt) and the UV owns the partition table
//! the hardware uses: every partition-table entry, LPID 0's included, goes through
//! UV_WRITE_PATE. The hypervisor keeps its own normal-memory copy. Without one,
//! the hypervisor writes PTCR once and the entries directly.
use super::svm::{SecureVm, UcallFailed};
use super::{Ultravisor, UV_WRITE_PATE};

/// How partition-table entries reach the hardware on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PateRoute {
    /// No ultravisor: write PTCR, store entries into the table.
    Direct,
    /// `ibm,ultravisor` present: never write PTCR; UV_WRITE_PATE every entry.
    Ultravisor,
}

impl PateRoute {
    /// From the host device tree's `ibm,ultravisor` (fdt::host `ultravisor`).
    pub fn for_host(ultravisor: bool) -> PateRoute {
        if ultravisor {
            PateRoute::Ultravisor
        } else {
            PateRoute::Direct
        }
    }

    /// Whether the hypervisor may `mtspr PTCR`.
    pub fn writes_ptcr(self) -> bool {
        self == PateRoute::Direct
    }
}

/// Something that stores a partition-table entry in the hypervisor's own table
/// (memory the hardware walks when there is no ultravisor).
pub trait PateStore {
    fn store(&mut self, lpid: u32, dw0: u64, dw1: u64);
}

/// Sets the partition-table entry of `lpid`: into the hypervisor's table always
/// (its copy), and through UV_WRITE_PATE when an ultravisor owns the real one.
pub fn set_pate(
    route: PateRoute,
    table: &mut dyn PateStore,
    uv: Option<&mut dyn Ultravisor>,
    lpid: u32,
    dw0: u64,
    dw1: u64,
) -> Result<(), UcallFailed> {
    table.store(lpid, dw0, dw1);
    match (route, uv) {
        (PateRoute::Direct, _) => Ok(()),
        (PateRoute::Ultravisor, Some(uv)) => {
            uv.write_pate(lpid, dw0, dw1).map_err(|error| UcallFailed {
                ucall: UV_WRITE_PATE,
                error,
            })
        }
        (PateRoute::Ultravisor, None) => Err(UcallFailed {
            ucall: UV_WRITE_PATE,
            error: super::UvError::Function,
        }),
    }
}

/// The hypervisor's own entry (LPID 0) at MMU bring-up: stored in its table and,
/// with an ultravisor, handed to it. Returns whether the thread then loads PTCR
/// itself (only without an ultravisor; with one, PTCR is the UV's and a write
/// would trap).
pub fn install_hypervisor_pate(
    route: PateRoute,
    table: &mut dyn PateStore,
    uv: Option<&mut dyn Ultravisor>,
    dw0: u64,
    dw1: u64,
) -> Result<bool, UcallFailed> {
    set_pate(route, table, uv, 0, dw0, dw1)?;
    Ok(route.writes_ptcr())
}

/// A partition stops for good or reboots: its secure state (if any) is torn
/// down (UV_UNREGISTER_MEM_SLOT, UV_SVM_TERMINATE) and its partition-table entry
/// cleared (through the UV when there is one). Every step is attempted.
pub fn partition_stopped(
    route: PateRoute,
    table: &mut dyn PateStore,
    mut uv: Option<&mut dyn Ultravisor>,
    svm: Option<&mut SecureVm>,
    lpid: u32,
) -> Result<(), UcallFailed> {
    let r1 = match (svm, uv.as_deref_mut()) {
        (Some(s), Some(u)) => s.terminate(u),
        _ => Ok(()),
    };
    let r2 = set_pate(route, table, uv, lpid, 0, 0);
    r1.and(r2)
}

/// Why a partition whose manifest says `secure = true` is not started on this
/// machine, or `None` if it may start: it needs an ultravisor. With one, the
/// partition starts and may become a secure VM (`uv::partition`).
pub fn secure_refusal(secure: bool, ultravisor: bool) -> Option<&'static str> {
    match (secure, ultravisor) {
        (true, false) => Some(
            "secure = true needs a PEF ultravisor and this machine has none \
             (no ibm,ultravisor node in the host device tree)",
        ),
        _ => None,
    }
}

/// SPR numbers of the registers an ultravisor owns for writing (the open-power
/// UV's `uv_restricted_spr_write`; Linux `powernv/idle.c` for LDBAR/IMC).
pub const SPR_DAWR0: u32 = 180;
pub const SPR_CIABR: u32 = 187;
pub const SPR_DAWRX0: u32 = 188;
pub const SPR_IMC: u32 = 799;
pub const SPR_LDBAR: u32 = 850;

/// How the hypervisor reaches one of its registers on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SprAccess {
    /// `mtspr`/`mfspr` (no ultravisor, or a register it does not own).
    Direct,
    /// UV_RESTRICTED_SPR_WRITE / UV_RESTRICTED_SPR_READ: the debug registers
    /// (CIABR, DAWR0, DAWRX0), which the UV may keep for itself (SMFCTRL[D]).
    Ucall,
    /// Not touched at all: the trace and in-memory-collection registers (LDBAR,
    /// IMC), which Linux skips on a UV machine (a write would trap).
    Skip,
}

/// The route of SPR `spr` with or without an ultravisor.
pub fn spr_route(ultravisor: bool, spr: u32) -> SprAccess {
    match (ultravisor, spr) {
        (false, _) => SprAccess::Direct,
        (true, SPR_CIABR | SPR_DAWR0 | SPR_DAWRX0) => SprAccess::Ucall,
        (true, SPR_LDBAR | SPR_IMC) => SprAccess::Skip,
        (true, _) => SprAccess::Direct,
    }
}

/// Writes guest debug registers (CIABR, DAWR0, DAWRX0; `values` in order) when
/// a vCPU's lazy registers are loaded or H_SET_MODE sets them: `direct(spr, value)` without an
/// ultravisor, UV_RESTRICTED_SPR_WRITE with one. Every write is attempted; the
/// first refusal is returned.
pub fn write_debug_sprs(
    uv: Option<&mut dyn Ultravisor>,
    values: &[(u32, u64)],
    mut direct: impl FnMut(u32, u64),
) -> Result<(), UcallFailed> {
    let Some(uv) = uv else {
        for &(spr, v) in values {
            direct(spr, v);
        }
        return Ok(());
    };
    let mut r = Ok(());
    for &(spr, v) in values {
        match spr_route(true, spr) {
            SprAccess::Direct => direct(spr, v),
            SprAccess::Skip => {}
            SprAccess::Ucall => {
                let e = uv
                    .restricted_spr_write(spr, v)
                    .map_err(|error| UcallFailed {
                        ucall: super::UV_RESTRICTED_SPR_WRITE,
                        error,
                    });
                r = r.and(e);
            }
        }
    }
    r
}

/// Reads registers `sprs` back when the vCPU's lazy registers are saved:
/// `direct(spr)` without an ultravisor, UV_RESTRICTED_SPR_READ with one (0 for
/// a register the UV refuses to read).
pub fn read_debug_sprs<const N: usize>(
    uv: Option<&mut dyn Ultravisor>,
    sprs: [u32; N],
    mut direct: impl FnMut(u32) -> u64,
) -> [u64; N] {
    let mut out = [0; N];
    match uv {
        None => {
            for (o, spr) in out.iter_mut().zip(sprs) {
                *o = direct(spr);
            }
        }
        Some(uv) => {
            for (o, spr) in out.iter_mut().zip(sprs) {
                *o = match spr_route(true, spr) {
                    SprAccess::Direct => direct(spr),
                    SprAccess::Skip => 0,
                    SprAccess::Ucall => uv.restricted_spr_read(spr).unwrap_or(0),
                };
            }
        }
    }
    out
}
