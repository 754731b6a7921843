//! The device tree a directly booted pSeries guest receives (no SLOF, no
//! client-interface calls): what QEMU `-M pseries` gives a radix, XIVE-capable
//! guest after client-architecture-support, built from a [`GuestFdtConfig`].
//!
//! Shape (property names from LoPAR and the Linux pSeries boot code):
//! ```text
//! / { device_type "chrp"; compatible "qemu,pseries"; #address-cells 2; #size-cells 2;
//!     ibm,plat-res-int-priorities; ibm,partition-name; ibm,partition-no; interrupt-parent
//!   cpus { PowerPC,POWER9@N ... }      one core node per vCPU, one thread each
//!   memory@0 { reg <0 size> }
//!   chosen { bootargs, initrd, stdout-path, ibm,architecture-vec-5 }
//!   rtas { linux,rtas-base/entry, rtas-size, ibm,hypertas-functions, tokens }
//!   vdevice { vty@71000000 }
//!   interrupt-controller[@tima] { XIVE exploitation or XICS } }
//! ```
//!
//! Reserve map: every `cfg.reserved` entry, then the RTAS region and the initrd,
//! which Linux would otherwise treat as free memory (prom_init adds them on a
//! SLOF boot; a direct boot has no prom_init). The kernel reserves its own image.
//! [`build`] does not reserve the blob itself, as it does not know where it will
//! go: the caller adds it to `cfg.reserved`, or uses [`build_at`], which appends
//! an entry for the blob with its final size.
//!
//! The FDT header's boot_cpuid_phys is 0: vCPU 0 enters the kernel.

use crate::fdt::writer::{FdtWriteError, FdtWriter};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// QEMU's reg for the first VIO device, the console.
pub const VTY_REG: u32 = 0x7100_0000;
/// Each XIVE TIMA page a guest maps (user, OS) is 64K.
pub const TIMA_PAGE_SIZE: u64 = 0x1_0000;
/// phandle of the interrupt-controller node (QEMU's value).
pub const INTC_PHANDLE: u32 = 0x1111;
/// XIVE priority reserved for the hypervisor (escalations); the guest gets 0-6.
/// `ibm,plat-res-int-priorities` is <start count> = <7 0xf8>: 7 through 0xfe.
pub const XIVE_HV_PRIORITY: u32 = 7;
/// Option vector 5 byte offsets within `ibm,architecture-vec-5`. Byte 0 is the
/// length byte, so property index N is OV5 byte N (LoPAR numbers OV bytes from
/// 1): Linux `early_check_vec5` reads `vec5[OV5_INDX(...)]` directly, and QEMU's
/// `spapr_dt_ovec` writes OV byte N at index N.
pub const OV5_INTC_BYTE: usize = 23;
pub const OV5_MMU_BYTE: usize = 24;
/// OV5 byte 6, bit 7 (mask 0x01): HPT resizing (Linux `OV5_RESIZE_HPT` 0x0601,
/// QEMU `OV5_HPT_RESIZE`), set when the partition offers a hashed page table.
pub const OV5_HPT_RESIZE_BYTE: usize = 6;
pub const OV5_HPT_RESIZE: u8 = 0x01;
pub const OV5_GTSE_BYTE: usize = 26;
/// Index of the radix attribute byte in `ibm,pa-features` (after the header);
/// its MSB says "radix MMU" (Linux ibm_pa_features: pabyte 40, pabit 0).
pub const PA_RADIX_BYTE: usize = 40;

/// L1 cache geometry, as QEMU's POWER9 and Power10 models give it: 32 KB L1 I
/// and D, 128-byte lines (Linux takes dcbz/icbi strides from the block sizes).
const CACHE_LINE: u32 = 128;
const L1_DCACHE_SIZE: u32 = 0x8000;
const L1_ICACHE_SIZE: u32 = 0x8000;
/// Informational only (Linux prints it in /proc/cpuinfo); QEMU's TCG value.
const CLOCK_FREQUENCY_HZ: u32 = 1_000_000_000;
/// RTAS error log size (LoPAR `rtas-error-log-max`; QEMU's value).
pub const RTAS_ERROR_LOG_MAX: u32 = 2048;
/// event-scan calls per minute the OS should make (QEMU's value).
const RTAS_EVENT_SCAN_RATE: u32 = 1;

/// Radix page sizes and their AP encodings, `AP << 29 | log2(size)`: 4K (AP 0),
/// 64K (AP 5), 2M (AP 1), 1G (AP 2): the AP values tlbie takes (Power ISA
/// v3.0B Book III, radix translation), as QEMU lists them for both models.
const RADIX_AP_ENCODINGS: [u32; 4] = [0x0000_000c, 0xa000_0010, 0x2000_0015, 0x4000_001e];

/// The processor a partition sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuModel {
    Power9,
    Power10,
}

impl CpuModel {
    /// Processor Version Register: POWER9 DD2.2, Power10 DD2.0.
    pub const fn pvr(self) -> u32 {
        match self {
            CpuModel::Power9 => 0x004e_1202,
            CpuModel::Power10 => 0x0080_0200,
        }
    }

    /// The `name` part of a core's node, before `@id`.
    pub const fn node_name(self) -> &'static str {
        match self {
            CpuModel::Power9 => "PowerPC,POWER9",
            CpuModel::Power10 => "PowerPC,POWER10",
        }
    }

    /// Number of `ibm,pa-features` attribute bytes: 66 for ISA 3.0, 74 for ISA
    /// 3.1 (which adds the DAWR1, DEXCR and hashst bytes), as QEMU sizes them.
    const fn pa_len(self) -> usize {
        match self {
            CpuModel::Power9 => 66,
            CpuModel::Power10 => 74,
        }
    }
}

/// `ibm,pa-features` bits set for both models: (attribute byte, bits), MSB =
/// bit 0, labelled as in QEMU's spapr table. This is the ISA 3.0 set QEMU gives
/// a radix guest: no SAO, no HTM (byte 22), no copy-paste, no CI large pages.
/// Linux (prom.c `scan_features`) clears any feature in its table whose bit is
/// clear here, so leaving a bit out also switches the feature off. ISA 3.1 bits
/// left clear: DAWR1 (byte 64; DAWR1 is not switched) and the DEXCR aspects
/// (byte 68) and hashst/hashchk (byte 72), as Paprika does not switch
/// DEXCR/HASHKEYR.
const PA_FEATURES: &[(usize, u8)] = &[
    (0, 0xf6),             // MMU, FPU, SLB, RUN, DABR, NX
    (1, 0x1f),             // fri[nzpm], DABRX, SPRG3, SLB0, PP110
    (2, 0xc7),             // VPM, DS205, PPR, DS202, DS206
    (3, 0xc0),             // LSD, URG
    (5, 0xf0),             // LE, CFAR, EB, LSQ
    (6, 0x80),             // DS207
    (16, 0x80),            // vector
    (18, 0x80),            // vector-scalar
    (20, 0x80),            // vector XOR
    (24, 0x80),            // extended decrementer
    (26, 0x80),            // 64-bit facilities
    (28, 0x80),            // performance monitor
    (32, 0x80),            // LE atomics
    (34, 0xc0),            // EBB, extended EBB
    (PA_RADIX_BYTE, 0x80), // radix MMU (Linux: MMU_FTR_TYPE_RADIX; GTSE per vec5)
    (42, 0x80),            // PM facilities (ISA 3.0)
    (44, 0x80),            // PC-relative addressing
    (46, 0x80),            // system-call vectored (scv)
    (48, 0x80),            // SIMD
    (50, 0x80),            // quad-precision BFP
    (52, 0x80),            // string instructions
    (54, 0x80),            // decimal floating point
    (56, 0x80),            // decimal integer
    (58, 0x80),            // SHA
    (60, 0x80),            // non-memory atomics
    (62, 0x80),            // random number (darn)
];

/// `ibm,pa-features` for `model`: byte 0 = attribute byte count, byte 1 = type 0.
pub fn pa_features(model: CpuModel) -> Vec<u8> {
    let n = model.pa_len();
    let mut v = vec![0u8; n + 2];
    v[0] = n as u8;
    for &(byte, bits) in PA_FEATURES {
        if let Some(b) = v.get_mut(2 + byte) {
            *b |= bits;
        }
    }
    v
}

/// The XIVE exploitation-mode interrupt controller a guest uses through the
/// H_INT_* hcalls (LoPAR "ibm,power-ivpe").
#[derive(Clone, Copy, Debug)]
pub struct XiveGuestConfig<'a> {
    /// Guest real addresses of the user-ring and OS-ring TIMA pages (64K each).
    pub tima_user: u64,
    pub tima_os: u64,
    /// Supported event-queue sizes as log2 bytes (12 = 4K, 16 = 64K, ...).
    pub eq_sizes: &'a [u32],
    /// LISN ranges the guest may use, as (first LISN, count) — how Linux reads
    /// `ibm,xive-lisn-ranges`.
    pub lisn_ranges: &'a [(u32, u32)],
    /// The vty's interrupt source (LISN), written as its `interrupts`
    /// property; `None` leaves the console polled.
    pub vty_lisn: Option<u32>,
}

/// Everything [`build`] needs to describe one partition.
#[derive(Clone, Copy, Debug)]
pub struct GuestFdtConfig<'a> {
    pub partition_name: &'a str,
    pub lpid: u32,
    /// Guest real memory is `[0, memory_bytes)`.
    pub memory_bytes: u64,
    /// vCPU ids `0..vcpus`, which are also their interrupt server numbers; one
    /// core node with one thread per vCPU.
    pub vcpus: u32,
    pub cpu: CpuModel,
    pub timebase_hz: u64,
    pub bootargs: &'a str,
    /// Guest real `(start, end)` of the initrd.
    pub initrd: Option<(u64, u64)>,
    /// The RTAS blob's guest real address and size; below 4 GiB, since Linux reads
    /// them as 32-bit cells and calls RTAS in 32-bit mode.
    pub rtas_base: u64,
    pub rtas_size: u64,
    /// (name, token) pairs, each a cell property of `/rtas`.
    pub rtas_tokens: &'a [(&'a str, u32)],
    /// `ibm,hypertas-functions` strings.
    pub hypertas: &'a [&'a str],
    /// reg of the console VIO device, `/vdevice/vty@<vty_reg>` ([`VTY_REG`]).
    pub vty_reg: u32,
    /// The other VIO devices under `/vdevice` (`papr::vio::VioBus::dt_nodes`,
    /// the vty's entry skipped: it is written from `vty_reg`), by unit address.
    pub vio: &'a [crate::papr::vio::VioDtNode<'a>],
    /// Extra reserve-map entries (address, size), e.g. the FDT itself.
    pub reserved: &'a [(u64, u64)],
    /// XIVE exploitation node when set (the XICS presentation node is written
    /// too, for kernels booted with `xive=off`); XICS alone otherwise.
    pub xive: Option<XiveGuestConfig<'a>>,
    /// `/chosen/ibm,architecture-vec-5` (see [`vec5_radix_xive`]); omitted when
    /// empty, which makes Linux fall back to hash.
    pub chosen_vec5: &'a [u8],
    /// A hash-MMU partition: log2 of its HPT's size. Each cpu then gets
    /// `ibm,pft-size`, `ibm,slb-size`, `ibm,segment-page-sizes` and
    /// `ibm,processor-segment-sizes` (what Linux's hash MMU reads).
    pub hpt_shift: Option<u32>,
    /// Logical PHBs of passed-through PCI functions (docs/passthrough.md);
    /// with any, `/chosen/linux,pci-probe-only` is 1.
    pub vphbs: &'a [VphbNode],
}

/// A logical PHB ("IBM,Logical_PHB") as pSeries Linux reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VphbNode {
    pub buid: u64,
    /// The 32-bit MMIO window: PCI `pci..pci+size` at guest real `gpa`.
    pub mmio_gpa: u64,
    pub mmio_pci: u64,
    pub mmio_size: u64,
    /// The default (32-bit TCE) DMA window `ibm,dma-window`: (LIOBN, bus
    /// address, size); `None` when there is none.
    pub dma_window: Option<(u32, u64, u64)>,
    /// Tokens of ibm,query-pe-dma-window, ibm,create-pe-dma-window,
    /// ibm,remove-pe-dma-window (`ibm,ddw-applicable`) and
    /// ibm,reset-pe-dma-window (`ibm,ddw-extensions`).
    pub ddw_tokens: [u32; 4],
    /// `ibm,pe-total-#msi`: the MSIs of all its functions. pSeries Linux
    /// gives a PHB without it no MSI domain at all (pseries
    /// `pseries_msi_allocate_domains`) and divides it among the functions
    /// (its quota); QEMU writes 1024 here.
    pub msi_total: u32,
    pub functions: Vec<VphbFunction>,
}

/// One function below a logical PHB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VphbFunction {
    /// Bus, device, function (`reg` phys.hi bits 23:8).
    pub bdf: u16,
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// Class code (24 bits).
    pub class: u32,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    /// (BAR index, 64-bit, prefetchable, PCI address, size).
    pub bars: Vec<(u8, bool, bool, u64, u64)>,
    /// `ibm,req#msi` and `ibm,req#msi-x`: vectors the function may get.
    pub msi: u32,
    pub msix: u32,
}

/// `ibm,architecture-vec-5` for a radix guest that must use XIVE exploitation
/// mode: OV5 byte 23 = 0x40 (XIVE only), 24 = 0x40 (radix only), 26 = 0 (no
/// GTSE: the guest invalidates its translations with H_RPT_INVALIDATE, which
/// `ibm,hypertas-functions` lists as "hcall-rpt-invalidate", and the
/// hypervisor decides whether an invalidation must be broadcast;
/// `partition::tlb`). Byte 0 is the OV5 length minus one.
pub fn vec5_radix_xive() -> Vec<u8> {
    vec5(0x40)
}

/// As [`vec5_radix_xive`] but with OV5 byte 23 = 0x80: XIVE exploitation or
/// legacy XICS, the guest's choice. What a partition that offers both gets:
/// Linux then honours `xive=off` (with 0x40 it ignores it, since the platform
/// would have nothing else).
pub fn vec5_radix_xive_or_xics() -> Vec<u8> {
    vec5(0x80)
}

/// As [`vec5_radix_xive`] but with OV5 byte 23 = 0 (legacy XICS).
pub fn vec5_radix_xics() -> Vec<u8> {
    vec5(0x00)
}

/// `ibm,architecture-vec-5` with OV5 byte 23 (interrupt controller) = `intc`
/// and byte 24 (MMU) = `mmu`: 0x40 radix only, 0x00 hash only, 0x80 either
/// (Linux `early_check_vec5`: with 0x00 it runs hash; with 0x80 it honours
/// `disable_radix`). Offering hash (anything but 0x40) also sets the HPT
/// resizing bit, as QEMU's pseries negotiates it ("hcall-hpt-resize").
pub fn vec5_with(intc: u8, mmu: u8) -> Vec<u8> {
    let mut v = vec5(intc);
    v[OV5_MMU_BYTE] = mmu;
    if mmu != 0x40 {
        v[OV5_HPT_RESIZE_BYTE] |= OV5_HPT_RESIZE;
    }
    v
}

/// SLB entries a POWER9/Power10 thread has (`ibm,slb-size`, as QEMU's models).
pub const SLB_SIZE: u32 = 32;

/// `ibm,segment-page-sizes` of a hash partition: per segment base page size
/// <shift, SLB L||LP encoding (SLB_VSID format), count, then (shift, LP) per
/// page size>: 4 KiB segments with 4 KiB and 64 KiB pages, 64 KiB segments with
/// 64 KiB pages (QEMU's POWER7+ table without 16 MiB and 16 GiB, which need
/// host-aligned contiguous backing a partition's 2 MiB extents do not promise;
/// `mm::hpt::page_shift` accepts exactly these).
const SEGMENT_PAGE_SIZES: [u32; 12] = [12, 0x0, 2, 12, 0x0, 16, 0x7, 16, 0x110, 1, 16, 0x1];
/// `ibm,processor-segment-sizes`: 256 MiB and 1 TiB (QEMU's list).
const SEGMENT_SIZES: [u32; 4] = [28, 40, 0xffff_ffff, 0xffff_ffff];

fn vec5(intc: u8) -> Vec<u8> {
    let mut v = vec![0u8; OV5_GTSE_BYTE + 1];
    // OV5 bytes 1..=26 follow the length byte, which holds their count - 1.
    v[0] = (OV5_GTSE_BYTE - 1) as u8;
    v[OV5_INTC_BYTE] = intc;
    v[OV5_MMU_BYTE] = 0x40;
    // Byte 26 stays 0: GTSE not offered (see `vec5_radix_xive`).
    v
}

/// Builds the guest's device tree (see the module documentation for what it
/// reserves).
pub fn build(cfg: &GuestFdtConfig) -> Result<Vec<u8>, FdtWriteError> {
    write(cfg)?.finish(0)
}

/// Like [`build`], and also reserves the blob itself at guest real `fdt_addr`.
pub fn build_at(cfg: &GuestFdtConfig, fdt_addr: u64) -> Result<Vec<u8>, FdtWriteError> {
    write(cfg)?.finish_reserving_self(0, fdt_addr)
}

fn check(cfg: &GuestFdtConfig) -> Result<(), FdtWriteError> {
    use FdtWriteError::Invalid;
    if cfg.vcpus == 0 {
        return Err(Invalid("no vCPUs"));
    }
    if cfg.memory_bytes == 0 {
        return Err(Invalid("no memory"));
    }
    if cfg.timebase_hz == 0 {
        return Err(Invalid("timebase frequency 0"));
    }
    if let Some((start, end)) = cfg.initrd {
        if start >= end || end > cfg.memory_bytes {
            return Err(Invalid("initrd range"));
        }
    }
    let rtas_end = cfg.rtas_base.checked_add(cfg.rtas_size);
    if cfg.rtas_size == 0
        || rtas_end.is_none_or(|e| e > u64::from(u32::MAX) + 1 || e > cfg.memory_bytes)
    {
        return Err(Invalid("RTAS range"));
    }
    if let Some(x) = &cfg.xive {
        if x.eq_sizes.is_empty() || x.lisn_ranges.is_empty() {
            return Err(Invalid("XIVE EQ sizes or LISN ranges"));
        }
    }
    Ok(())
}

fn write(cfg: &GuestFdtConfig) -> Result<FdtWriter, FdtWriteError> {
    check(cfg)?;
    let mut w = FdtWriter::new();
    for &(addr, size) in cfg.reserved {
        w.add_reservation(addr, size);
    }
    w.add_reservation(cfg.rtas_base, cfg.rtas_size);
    if let Some((start, end)) = cfg.initrd {
        w.add_reservation(start, end - start);
    }

    w.begin_node("");
    w.prop_str("device_type", "chrp");
    w.prop_str("model", "Paprika LPAR");
    w.prop_str("compatible", "qemu,pseries");
    w.prop_u32("#address-cells", 2);
    w.prop_u32("#size-cells", 2);
    w.prop_str("ibm,partition-name", cfg.partition_name);
    w.prop_u32("ibm,partition-no", cfg.lpid);
    // Priorities the guest must not use (Linux xive_get_max_prio); XICS
    // ignores it.
    w.prop_cells(
        "ibm,plat-res-int-priorities",
        &[XIVE_HV_PRIORITY, 0xff - XIVE_HV_PRIORITY],
    );
    w.prop_u32("interrupt-parent", INTC_PHANDLE);

    write_cpus(&mut w, cfg);

    w.begin_node("memory@0");
    w.prop_str("device_type", "memory");
    w.prop_u64_cells("reg", &[0, cfg.memory_bytes]);
    w.end_node();

    let stdout = format!("/vdevice/vty@{:x}", cfg.vty_reg);
    w.begin_node("chosen");
    w.prop_str("bootargs", cfg.bootargs);
    if let Some((start, end)) = cfg.initrd {
        w.prop_u64("linux,initrd-start", start);
        w.prop_u64("linux,initrd-end", end);
    }
    w.prop_str("linux,stdout-path", &stdout);
    w.prop_str("stdout-path", &stdout);
    if !cfg.chosen_vec5.is_empty() {
        w.prop("ibm,architecture-vec-5", cfg.chosen_vec5);
    }
    if !cfg.vphbs.is_empty() {
        // BARs are the hypervisor's (assigned-addresses); Linux must not move
        // them (pci_add_flags(PCI_PROBE_ONLY)).
        w.prop_u32("linux,pci-probe-only", 1);
    }
    w.end_node();

    // check() put the RTAS range below 4 GiB.
    let rtas_base =
        u32::try_from(cfg.rtas_base).map_err(|_| FdtWriteError::Invalid("RTAS range"))?;
    let rtas_size =
        u32::try_from(cfg.rtas_size).map_err(|_| FdtWriteError::Invalid("RTAS range"))?;
    w.begin_node("rtas");
    w.prop_u32("rtas-version", 1);
    w.prop_u32("rtas-size", rtas_size);
    w.prop_u32("linux,rtas-base", rtas_base);
    w.prop_u32("linux,rtas-entry", rtas_base);
    w.prop_u32("rtas-error-log-max", RTAS_ERROR_LOG_MAX);
    w.prop_u32("rtas-event-scan-rate", RTAS_EVENT_SCAN_RATE);
    // Our ibm,os-term always returns, so Linux may call it on panic.
    w.prop_empty("ibm,extended-os-term");
    // Its presence is what makes Linux run as an LPAR (FW_FEATURE_LPAR).
    w.prop_strs("ibm,hypertas-functions", cfg.hypertas);
    for &(name, token) in cfg.rtas_tokens {
        w.prop_u32(name, token);
    }
    w.end_node();

    w.begin_node("vdevice");
    w.prop_str("device_type", "vdevice");
    w.prop_str("compatible", "IBM,vdevice");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    w.prop_u32("#interrupt-cells", 2);
    w.prop_empty("interrupt-controller");
    w.begin_node(&format!("vty@{:x}", cfg.vty_reg));
    w.prop_str("name", "vty");
    w.prop_u32("reg", cfg.vty_reg);
    w.prop_str("device_type", "serial");
    w.prop_str("compatible", "hvterm1");
    if let Some(lisn) = cfg.xive.and_then(|x| x.vty_lisn) {
        // <source, sense>: 0 = edge (an MSI-like source, as QEMU's vty).
        w.prop_cells("interrupts", &[lisn, 0]);
    }
    w.end_node();
    for d in cfg.vio.iter().filter(|d| d.reg != cfg.vty_reg) {
        write_vio_node(&mut w, d);
    }
    w.end_node();

    write_intc(&mut w, cfg);
    for v in cfg.vphbs {
        write_vphb(&mut w, v);
    }

    // The partition's NVRAM (papr::nvram), found by Linux through its
    // device_type and sized by #bytes (pseries_nvram_init).
    w.begin_node("nvram");
    w.prop_str("device_type", "nvram");
    w.prop_str("compatible", "qemu,spapr-nvram");
    w.prop_u32("#bytes", crate::papr::nvram::NVRAM_SIZE as u32);
    w.end_node();

    w.end_node();
    Ok(w)
}

/// PCI `phys.hi` of a function's config space, or of BAR register `reg` with
/// space code 2 (32-bit memory) or 3 (64-bit), prefetchable bit 30.
fn phys_hi(bdf: u16, space: u32, prefetch: bool, reg: u8) -> u32 {
    (space << 24) | (u32::from(prefetch) << 30) | (u32::from(bdf) << 8) | u32::from(reg)
}

fn write_vphb(w: &mut FdtWriter, v: &VphbNode) {
    w.begin_node(&format!("pci@{:x}", v.buid));
    w.prop_str("device_type", "pci");
    w.prop_str("compatible", "IBM,Logical_PHB");
    w.prop_u64_cells("reg", &[v.buid, 0x1000_0000]);
    w.prop_u32("#address-cells", 3);
    w.prop_u32("#size-cells", 2);
    w.prop_u32("#interrupt-cells", 1);
    // The root bus is the functions' bus (the host's, 1 behind a root port):
    // pSeries Linux finds a function's pci_dn by the bus number in its `reg`
    // and the number of the bus it scans, and before the pci_dev is on that
    // bus (its whole capability walk at boot) only a matching number works;
    // with the root bus at 0 every config read then failed and MSI-X was
    // never found.
    let first_bus = v.functions.iter().map(|f| f.bdf >> 8).min().unwrap_or(0);
    w.prop_cells("bus-range", &[u32::from(first_bus), 0xff]);
    // <phys.hi phys.mid phys.lo, cpu address (2), size (2)>: 32-bit memory.
    w.prop_cells(
        "ranges",
        &[
            0x0200_0000,
            (v.mmio_pci >> 32) as u32,
            v.mmio_pci as u32,
            (v.mmio_gpa >> 32) as u32,
            v.mmio_gpa as u32,
            (v.mmio_size >> 32) as u32,
            v.mmio_size as u32,
        ],
    );
    w.prop_u32("ibm,pci-config-space-type", 1);
    w.prop_u32("ibm,pe-total-#msi", v.msi_total);
    w.prop_u32("ibm,#dma-address-cells", 2);
    w.prop_u32("ibm,#dma-size-cells", 2);
    if let Some((liobn, bus, size)) = v.dma_window {
        w.prop_cells(
            "ibm,dma-window",
            &[
                liobn,
                (bus >> 32) as u32,
                bus as u32,
                (size >> 32) as u32,
                size as u32,
            ],
        );
    }
    w.prop_cells("ibm,ddw-applicable", &v.ddw_tokens[..3]);
    // Extension 1: the reset-pe-dma-window token.
    w.prop_cells("ibm,ddw-extensions", &[1, v.ddw_tokens[3]]);
    for f in &v.functions {
        let dev = (f.bdf >> 3) & 0x1f;
        let func = f.bdf & 7;
        let name = if func == 0 {
            format!("pci@{dev:x}")
        } else {
            format!("pci@{dev:x},{func:x}")
        };
        w.begin_node(&name);
        w.prop_cells("reg", &[phys_hi(f.bdf, 0, false, 0), 0, 0, 0, 0]);
        let mut assigned: Vec<u32> = Vec::new();
        for &(index, is_64, prefetch, pci, size) in &f.bars {
            let space = if is_64 { 3 } else { 2 };
            assigned.extend_from_slice(&[
                phys_hi(f.bdf, space, prefetch, 0x10 + 4 * index),
                (pci >> 32) as u32,
                pci as u32,
                (size >> 32) as u32,
                size as u32,
            ]);
        }
        w.prop_cells("assigned-addresses", &assigned);
        w.prop_u32("vendor-id", u32::from(f.vendor));
        w.prop_u32("device-id", u32::from(f.device));
        w.prop_u32("revision-id", u32::from(f.revision));
        w.prop_u32("class-code", f.class);
        w.prop_u32("subsystem-vendor-id", u32::from(f.subsystem_vendor));
        w.prop_u32("subsystem-id", u32::from(f.subsystem));
        w.prop_u32("ibm,req#msi", f.msi);
        w.prop_u32("ibm,req#msi-x", f.msix);
        w.end_node();
    }
    w.end_node();
}

/// One `/vdevice` child (QEMU `vio_make_devnode`, `spapr_dma_dt`): what Linux's
/// `vio_register_device_node` needs (device_type, reg), its edge interrupt, its
/// DMA window with two address and two size cells, then the device's own
/// properties.
fn write_vio_node(w: &mut FdtWriter, d: &crate::papr::vio::VioDtNode) {
    w.begin_node(&d.name);
    w.prop_u32("reg", d.reg);
    w.prop_str("device_type", d.device_type);
    w.prop_str("compatible", d.compatible);
    w.prop_cells("interrupts", &[d.lisn, 0]);
    if let Some((liobn, size)) = d.dma_window {
        w.prop_u32("ibm,#dma-address-cells", 2);
        w.prop_u32("ibm,#dma-size-cells", 2);
        w.prop_cells(
            "ibm,my-dma-window",
            &[liobn, 0, 0, (size >> 32) as u32, size as u32],
        );
    }
    for (name, value) in d.props {
        w.prop(name, value);
    }
    w.end_node();
}

fn write_cpus(w: &mut FdtWriter, cfg: &GuestFdtConfig) {
    let pa = pa_features(cfg.cpu);
    w.begin_node("cpus");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    for id in 0..cfg.vcpus {
        w.begin_node(&format!("{}@{:x}", cfg.cpu.node_name(), id));
        w.prop_str("device_type", "cpu");
        w.prop_u32("reg", id);
        w.prop_u32("cpu-version", cfg.cpu.pvr());
        w.prop_u32("d-cache-block-size", CACHE_LINE);
        w.prop_u32("d-cache-line-size", CACHE_LINE);
        w.prop_u32("i-cache-block-size", CACHE_LINE);
        w.prop_u32("i-cache-line-size", CACHE_LINE);
        w.prop_u32("d-cache-size", L1_DCACHE_SIZE);
        w.prop_u32("i-cache-size", L1_ICACHE_SIZE);
        // Linux reads timebase-frequency as one cell and prefers the
        // two-cell extended form when present.
        match u32::try_from(cfg.timebase_hz) {
            Ok(tb) => w.prop_u32("timebase-frequency", tb),
            Err(_) => {
                w.prop_u32("timebase-frequency", u32::MAX);
                w.prop_u64("ibm,extended-timebase-frequency", cfg.timebase_hz);
            }
        }
        w.prop_u32("clock-frequency", CLOCK_FREQUENCY_HZ);
        w.prop_str("status", "okay");
        w.prop_empty("64-bit");
        w.prop_u32("ibm,purr", 1);
        w.prop_u32("ibm,spurr", 1);
        // 2 = VMX and VSX.
        w.prop_u32("ibm,vmx", 2);
        w.prop_u32("ibm,dfp", 1);
        w.prop("ibm,pa-features", &pa);
        // pi-features byte 0 bit 4: no msgsndp. Each vCPU is alone in its core,
        // so doorbells cannot reach a sibling; Linux must IPI through the
        // interrupt controller (KVM-HV says the same).
        w.prop("ibm,pi-features", &[1, 0, 0x08]);
        w.prop_u32("ibm,chip-id", 0);
        w.prop_cells("ibm,ppc-interrupt-server#s", &[id]);
        w.prop_cells("ibm,ppc-interrupt-gserver#s", &[id, 0]);
        w.prop_cells("ibm,processor-radix-AP-encodings", &RADIX_AP_ENCODINGS);
        if let Some(shift) = cfg.hpt_shift {
            w.prop_cells("ibm,pft-size", &[0, shift]);
            w.prop_u32("ibm,slb-size", SLB_SIZE);
            w.prop_cells("ibm,segment-page-sizes", &SEGMENT_PAGE_SIZES);
            w.prop_cells("ibm,processor-segment-sizes", &SEGMENT_SIZES);
        }
        w.end_node();
    }
    w.end_node();
}

fn write_intc(w: &mut FdtWriter, cfg: &GuestFdtConfig) {
    if let Some(x) = &cfg.xive {
        w.begin_node(&format!("interrupt-controller@{:x}", x.tima_user));
        w.prop_str("device_type", "power-ivpe");
        w.prop_str("compatible", "ibm,power-ivpe");
        // Linux maps reg entry 1, the OS ring.
        w.prop_u64_cells(
            "reg",
            &[x.tima_user, TIMA_PAGE_SIZE, x.tima_os, TIMA_PAGE_SIZE],
        );
        w.prop_cells("ibm,xive-eq-sizes", x.eq_sizes);
        let ranges: Vec<u32> = x.lisn_ranges.iter().flat_map(|&(b, n)| [b, n]).collect();
        w.prop_cells("ibm,xive-lisn-ranges", &ranges);
        w.prop_empty("interrupt-controller");
        w.prop_u32("#interrupt-cells", 2);
        w.prop_u32("linux,phandle", INTC_PHANDLE);
        w.prop_u32("phandle", INTC_PHANDLE);
        w.end_node();
    }
    // XICS presentation: the only controller without XIVE; with it, what a
    // kernel booted with `xive=off` (xics_init) looks for. Either driver's irq
    // domain serves every interrupt specifier, so the phandle stays on XIVE.
    w.begin_node("interrupt-controller");
    w.prop_str("device_type", "PowerPC-External-Interrupt-Presentation");
    w.prop_str("compatible", "IBM,ppc-xicp");
    w.prop_cells("ibm,interrupt-server-ranges", &[0, cfg.vcpus]);
    w.prop_empty("interrupt-controller");
    w.prop_u32("#interrupt-cells", 2);
    if cfg.xive.is_none() {
        w.prop_u32("linux,phandle", INTC_PHANDLE);
        w.prop_u32("phandle", INTC_PHANDLE);
    }
    w.end_node();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::reader::{Fdt, Token};
    use std::collections::BTreeMap;
    use std::string::{String, ToString};

    /// path -> properties, in order.
    type Tree = BTreeMap<String, Vec<(String, Vec<u8>)>>;

    fn parse(blob: &[u8]) -> Tree {
        let f = Fdt::new(blob).unwrap();
        let mut tree = Tree::new();
        let mut path: Vec<String> = Vec::new();
        let join = |p: &[String]| {
            if p.len() <= 1 {
                "/".to_string()
            } else {
                p.join("/")
            }
        };
        for t in f.tokens() {
            match t.unwrap() {
                Token::Begin { name, .. } => {
                    path.push(name.to_string());
                    let prev = tree.insert(join(&path), Vec::new());
                    assert!(prev.is_none(), "duplicate node {}", join(&path));
                }
                Token::Prop { name, value } => tree
                    .get_mut(&join(&path))
                    .unwrap()
                    .push((name.to_string(), value.to_vec())),
                Token::End => {
                    path.pop();
                }
            }
        }
        tree
    }

    fn get<'t>(t: &'t Tree, node: &str, prop: &str) -> &'t [u8] {
        let props = t.get(node).unwrap_or_else(|| panic!("no node {node}"));
        props
            .iter()
            .find(|(n, _)| n == prop)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_else(|| panic!("no {node}:{prop}"))
    }

    fn has(t: &Tree, node: &str, prop: &str) -> bool {
        t.get(node)
            .is_some_and(|p| p.iter().any(|(n, _)| n == prop))
    }

    fn u32_of(v: &[u8]) -> u32 {
        assert_eq!(v.len(), 4, "not one cell");
        u32::from_be_bytes(v.try_into().unwrap())
    }

    fn cells(v: &[u8]) -> Vec<u32> {
        assert_eq!(v.len() % 4, 0);
        v.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64s(v: &[u8]) -> Vec<u64> {
        assert_eq!(v.len() % 8, 0);
        v.chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn string(v: &[u8]) -> &str {
        assert_eq!(v.last(), Some(&0), "not NUL-terminated");
        std::str::from_utf8(&v[..v.len() - 1]).unwrap()
    }

    const TOKENS: &[(&str, u32)] = &[
        ("get-time-of-day", 0x2000),
        ("power-off", 0x2002),
        ("start-cpu", 0x2005),
        ("ibm,os-term", 0x200b),
    ];
    const HYPERTAS: &[&str] = &["hcall-term", "hcall-splpar", "hcall-set-mode"];
    const EQ_SIZES: &[u32] = &[12, 16];
    const LISNS: &[(u32, u32)] = &[(0, 4), (0x1000, 0x100)];

    fn config(vcpus: u32, cpu: CpuModel, xive: bool, initrd: bool) -> GuestFdtConfig<'static> {
        GuestFdtConfig {
            partition_name: "lpar-1",
            lpid: 1,
            memory_bytes: 0x4000_0000,
            vcpus,
            cpu,
            timebase_hz: 512_000_000,
            bootargs: "console=hvc0 root=/dev/ram0",
            initrd: initrd.then_some((0x0400_0000, 0x0480_0000)),
            rtas_base: 0x0500_0000,
            rtas_size: 0x1000,
            rtas_tokens: TOKENS,
            hypertas: HYPERTAS,
            vty_reg: VTY_REG,
            vio: &[],
            reserved: &[(0, 0x0200_0000)],
            xive: xive.then_some(XiveGuestConfig {
                tima_user: 0x0006_0300_0000_0000,
                tima_os: 0x0006_0300_0001_0000,
                eq_sizes: EQ_SIZES,
                lisn_ranges: LISNS,
                vty_lisn: Some(0x1000),
            }),
            chosen_vec5: &[],
            hpt_shift: None,
            vphbs: &[],
        }
    }

    /// Checks every property Linux (arch/powerpc/kernel/prom.c, rtas.c,
    /// platforms/pseries, sysdev/xive/spapr.c, drivers/tty/hvc/hvc_vio.c) reads
    /// on a direct boot.
    fn check_linux_view(blob: &[u8], cfg: &GuestFdtConfig) {
        let f = Fdt::new(blob).unwrap();
        assert_eq!(f.total_size(), blob.len());
        assert_eq!(f.boot_cpuid_phys(), 0);
        let t = parse(blob);

        // Root: pSeries_probe wants device_type "chrp"; kvm-unit-tests the
        // compatible; everything below uses 2/2 cells.
        assert_eq!(string(get(&t, "/", "device_type")), "chrp");
        assert_eq!(string(get(&t, "/", "compatible")), "qemu,pseries");
        assert_eq!(u32_of(get(&t, "/", "#address-cells")), 2);
        assert_eq!(u32_of(get(&t, "/", "#size-cells")), 2);
        assert_eq!(
            string(get(&t, "/", "ibm,partition-name")),
            cfg.partition_name
        );
        assert_eq!(u32_of(get(&t, "/", "ibm,partition-no")), cfg.lpid);
        assert_eq!(
            cells(get(&t, "/", "ibm,plat-res-int-priorities")),
            [7, 0xf8]
        );
        assert_eq!(u32_of(get(&t, "/", "interrupt-parent")), INTC_PHANDLE);

        // CPUs: one node per vCPU; the boot CPU's server number must appear.
        assert_eq!(u32_of(get(&t, "/cpus", "#address-cells")), 1);
        assert_eq!(u32_of(get(&t, "/cpus", "#size-cells")), 0);
        let cpu_nodes: Vec<_> = t
            .keys()
            .filter(|k| k.starts_with("/cpus/") && k.matches('/').count() == 2)
            .collect();
        assert_eq!(cpu_nodes.len(), cfg.vcpus as usize);
        let mut servers = Vec::new();
        for id in 0..cfg.vcpus {
            let n = format!("/cpus/{}@{:x}", cfg.cpu.node_name(), id);
            assert_eq!(string(get(&t, &n, "device_type")), "cpu");
            assert_eq!(u32_of(get(&t, &n, "reg")), id);
            assert_eq!(u32_of(get(&t, &n, "cpu-version")), cfg.cpu.pvr());
            assert_eq!(cells(get(&t, &n, "ibm,ppc-interrupt-server#s")), [id]);
            assert_eq!(cells(get(&t, &n, "ibm,ppc-interrupt-gserver#s")), [id, 0]);
            servers.push(id);
            for p in [
                "d-cache-block-size",
                "d-cache-line-size",
                "i-cache-block-size",
                "i-cache-line-size",
            ] {
                assert_eq!(u32_of(get(&t, &n, p)), 128, "{p}");
            }
            assert_eq!(u32_of(get(&t, &n, "d-cache-size")), 0x8000);
            assert_eq!(u32_of(get(&t, &n, "i-cache-size")), 0x8000);
            assert_eq!(
                u64::from(u32_of(get(&t, &n, "timebase-frequency"))),
                cfg.timebase_hz
            );
            assert!(u32_of(get(&t, &n, "clock-frequency")) > 0);
            assert_eq!(string(get(&t, &n, "status")), "okay");
            assert!(get(&t, &n, "64-bit").is_empty());
            assert_eq!(u32_of(get(&t, &n, "ibm,chip-id")), 0);
            assert_eq!(u32_of(get(&t, &n, "ibm,vmx")), 2);
            // pa-features: header, then the radix bit (Linux scan_features).
            let pa = get(&t, &n, "ibm,pa-features");
            assert_eq!(pa[0] as usize, pa.len() - 2);
            assert_eq!(pa[1], 0);
            assert_ne!(pa[2 + PA_RADIX_BYTE] & 0x80, 0, "radix");
            assert_eq!(pa[2] & 0x80, 0x80, "MMU");
            assert_eq!(
                cells(get(&t, &n, "ibm,processor-radix-AP-encodings")),
                [0x0000_000c, 0xa000_0010, 0x2000_0015, 0x4000_001e]
            );
            match cfg.hpt_shift {
                None => {
                    assert!(!has(&t, &n, "ibm,pft-size"), "radix: no HPT");
                    assert!(!has(&t, &n, "ibm,segment-page-sizes"));
                }
                Some(shift) => {
                    // Linux htab_dt_scan_pftsize reads the second cell.
                    assert_eq!(cells(get(&t, &n, "ibm,pft-size")), [0, shift]);
                    assert_eq!(u32_of(get(&t, &n, "ibm,slb-size")), 32);
                    // 4K segment: 4K and 64K (LP 7); 64K segment (SLB L|LP
                    // 0x110): 64K (LP 1) - what mm::hpt::page_shift accepts.
                    assert_eq!(
                        cells(get(&t, &n, "ibm,segment-page-sizes")),
                        [12, 0, 2, 12, 0, 16, 7, 16, 0x110, 1, 16, 1]
                    );
                    assert_eq!(
                        cells(get(&t, &n, "ibm,processor-segment-sizes")),
                        [28, 40, u32::MAX, u32::MAX]
                    );
                }
            }
        }
        assert!(servers.contains(&f.boot_cpuid_phys()));

        // Memory.
        assert_eq!(string(get(&t, "/memory@0", "device_type")), "memory");
        assert_eq!(u64s(get(&t, "/memory@0", "reg")), [0, cfg.memory_bytes]);

        // Chosen.
        assert_eq!(string(get(&t, "/chosen", "bootargs")), cfg.bootargs);
        let vty = format!("/vdevice/vty@{:x}", cfg.vty_reg);
        assert_eq!(string(get(&t, "/chosen", "linux,stdout-path")), vty);
        assert_eq!(string(get(&t, "/chosen", "stdout-path")), vty);
        match cfg.initrd {
            Some((s, e)) => {
                assert_eq!(u64s(get(&t, "/chosen", "linux,initrd-start")), [s]);
                assert_eq!(u64s(get(&t, "/chosen", "linux,initrd-end")), [e]);
            }
            None => {
                assert!(!has(&t, "/chosen", "linux,initrd-start"));
                assert!(!has(&t, "/chosen", "linux,initrd-end"));
            }
        }
        if cfg.chosen_vec5.is_empty() {
            assert!(!has(&t, "/chosen", "ibm,architecture-vec-5"));
        } else {
            assert_eq!(
                get(&t, "/chosen", "ibm,architecture-vec-5"),
                cfg.chosen_vec5
            );
        }

        // RTAS: early_init_dt_scan_rtas reads three cells from a depth-1 "rtas".
        assert_eq!(
            u32_of(get(&t, "/rtas", "linux,rtas-base")) as u64,
            cfg.rtas_base
        );
        assert_eq!(
            u32_of(get(&t, "/rtas", "linux,rtas-entry")) as u64,
            cfg.rtas_base
        );
        assert_eq!(u32_of(get(&t, "/rtas", "rtas-size")) as u64, cfg.rtas_size);
        assert_eq!(u32_of(get(&t, "/rtas", "rtas-version")), 1);
        assert_eq!(u32_of(get(&t, "/rtas", "rtas-error-log-max")), 2048);
        assert_eq!(u32_of(get(&t, "/rtas", "rtas-event-scan-rate")), 1);
        assert!(has(&t, "/rtas", "ibm,extended-os-term"));
        let ht: Vec<&str> = get(&t, "/rtas", "ibm,hypertas-functions")
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| std::str::from_utf8(s).unwrap())
            .collect();
        assert_eq!(ht, cfg.hypertas);
        for &(name, token) in cfg.rtas_tokens {
            assert_eq!(u32_of(get(&t, "/rtas", name)), token, "{name}");
        }

        // VIO: the console is found through stdout-path, then by name "vty" and
        // compatible "hvterm1".
        assert_eq!(string(get(&t, "/vdevice", "device_type")), "vdevice");
        assert_eq!(string(get(&t, "/vdevice", "compatible")), "IBM,vdevice");
        assert_eq!(u32_of(get(&t, "/vdevice", "#address-cells")), 1);
        assert_eq!(u32_of(get(&t, "/vdevice", "#size-cells")), 0);
        assert_eq!(u32_of(get(&t, "/vdevice", "#interrupt-cells")), 2);
        assert!(has(&t, "/vdevice", "interrupt-controller"));
        assert_eq!(u32_of(get(&t, &vty, "reg")), cfg.vty_reg);
        assert_eq!(string(get(&t, &vty, "device_type")), "serial");
        assert_eq!(string(get(&t, &vty, "compatible")), "hvterm1");
        assert_eq!(string(get(&t, &vty, "name")), "vty");

        // Interrupt controller.
        match &cfg.xive {
            Some(x) => {
                let n = format!("/interrupt-controller@{:x}", x.tima_user);
                assert_eq!(string(get(&t, &n, "compatible")), "ibm,power-ivpe");
                assert_eq!(string(get(&t, &n, "device_type")), "power-ivpe");
                assert_eq!(
                    u64s(get(&t, &n, "reg")),
                    [x.tima_user, 0x10000, x.tima_os, 0x10000]
                );
                assert_eq!(cells(get(&t, &n, "ibm,xive-eq-sizes")), x.eq_sizes);
                let r: Vec<u32> = x.lisn_ranges.iter().flat_map(|&(a, b)| [a, b]).collect();
                assert_eq!(cells(get(&t, &n, "ibm,xive-lisn-ranges")), r);
                assert!(has(&t, &n, "interrupt-controller"));
                assert_eq!(u32_of(get(&t, &n, "phandle")), INTC_PHANDLE);
                assert!(!has(&t, "/interrupt-controller", "phandle"));
                match x.vty_lisn {
                    Some(l) => assert_eq!(cells(get(&t, &vty, "interrupts")), [l, 0]),
                    None => assert!(!has(&t, &vty, "interrupts")),
                }
            }
            None => {
                assert_eq!(
                    u32_of(get(&t, "/interrupt-controller", "phandle")),
                    INTC_PHANDLE
                );
                assert!(!has(&t, &vty, "interrupts"));
            }
        }
        // XICS presentation is always there (xive=off kernels).
        let n = "/interrupt-controller";
        assert_eq!(string(get(&t, n, "compatible")), "IBM,ppc-xicp");
        assert_eq!(
            cells(get(&t, n, "ibm,interrupt-server-ranges")),
            [0, cfg.vcpus]
        );
        assert!(has(&t, n, "interrupt-controller"));
        assert_eq!(u32_of(get(&t, n, "#interrupt-cells")), 2);

        // Reserve map: the extras, RTAS, the initrd.
        let rsv: Vec<(u64, u64)> = f.reservations().collect::<Result<_, _>>().unwrap();
        for r in cfg.reserved {
            assert!(rsv.contains(r));
        }
        assert!(rsv.contains(&(cfg.rtas_base, cfg.rtas_size)));
        if let Some((s, e)) = cfg.initrd {
            assert!(rsv.contains(&(s, e - s)));
        }
    }

    #[test]
    fn every_combination_reads_back_as_linux_expects() {
        for vcpus in [1, 4] {
            for cpu in [CpuModel::Power9, CpuModel::Power10] {
                for xive in [false, true] {
                    for initrd in [false, true] {
                        let mut cfg = config(vcpus, cpu, xive, initrd);
                        let v5 = if xive {
                            vec5_radix_xive()
                        } else {
                            vec5_radix_xics()
                        };
                        cfg.chosen_vec5 = &v5;
                        let blob = build(&cfg).unwrap();
                        check_linux_view(&blob, &cfg);
                    }
                }
            }
        }
        // And with no vec5 at all.
        let cfg = config(2, CpuModel::Power9, true, true);
        check_linux_view(&build(&cfg).unwrap(), &cfg);
    }

    #[test]
    fn vio_devices_under_vdevice() {
        use crate::papr::vio::{self, VioBus, VioDeviceSpec, VioKind};
        let mut bus = VioBus::new();
        bus.add(vio::vty::spec()).unwrap();
        bus.add(VioDeviceSpec {
            kind: VioKind::Llan,
            dma_window: Some(vio::VIO_DMA_WINDOW),
            signal_mask: 1,
            signal_reset: 0,
            props: alloc::vec![("ibm,mac-address-filters", alloc::vec![0, 0, 0, 0])],
        })
        .unwrap();
        let nodes = bus.dt_nodes();
        let mut cfg = config(1, CpuModel::Power9, true, false);
        cfg.vio = &nodes;
        let t = parse(&build(&cfg).unwrap());
        // The vty is written once, from vty_reg.
        assert!(t.contains_key("/vdevice/vty@71000000"));
        let n = "/vdevice/l-lan@71000001";
        assert_eq!(u32_of(get(&t, n, "reg")), 0x7100_0001);
        assert_eq!(string(get(&t, n, "device_type")), "network");
        assert_eq!(string(get(&t, n, "compatible")), "IBM,l-lan");
        assert_eq!(cells(get(&t, n, "interrupts")), [0x1001, 0]);
        assert_eq!(u32_of(get(&t, n, "ibm,#dma-address-cells")), 2);
        assert_eq!(u32_of(get(&t, n, "ibm,#dma-size-cells")), 2);
        assert_eq!(
            cells(get(&t, n, "ibm,my-dma-window")),
            [0x7100_0001, 0, 0, 0, 0x1000_0000]
        );
        assert_eq!(u32_of(get(&t, n, "ibm,mac-address-filters")), 0);
    }

    #[test]
    fn vphb_node_as_pseries_linux_reads_it() {
        let vphbs = [VphbNode {
            buid: 0x0800_0000_2000_0001,
            mmio_gpa: 0x2000_0000_0000,
            mmio_pci: 0x8000_0000,
            mmio_size: 0x7fff_0000,
            dma_window: Some((0x7000_0100, 0, 256 << 20)),
            ddw_tokens: [0x2015, 0x2016, 0x2017, 0x2018],
            msi_total: 2,
            functions: vec![VphbFunction {
                bdf: 0x0100,
                vendor: 0x1af4,
                device: 0x1042,
                revision: 1,
                class: 0x01_0000,
                subsystem_vendor: 0x1af4,
                subsystem: 2,
                bars: vec![
                    (1, false, false, 0xc000_0000, 0x1000),
                    (4, true, true, 0xc001_0000, 0x4000),
                ],
                msi: 0,
                msix: 2,
            }],
        }];
        let mut c = config(1, CpuModel::Power9, true, false);
        c.vphbs = &vphbs;
        let t = parse(&build(&c).unwrap());
        let n = "/pci@800000020000001";
        assert_eq!(get(&t, n, "compatible"), b"IBM,Logical_PHB\0");
        assert_eq!(get(&t, n, "ranges").len(), 28);
        assert_eq!(
            get(&t, n, "ibm,dma-window"),
            &[0x70, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
        );
        assert_eq!(get(&t, n, "ibm,ddw-applicable").len(), 12);
        // The root bus is the function's bus (1 in its reg).
        assert_eq!(cells(get(&t, n, "bus-range")), [1, 0xff]);
        // Without it Linux makes no MSI domain for the PHB.
        assert_eq!(u32_of(get(&t, n, "ibm,pe-total-#msi")), 2);
        assert_eq!(get(&t, "/chosen", "linux,pci-probe-only"), &[0, 0, 0, 1]);
        let f = "/pci@800000020000001/pci@0";
        let aa = get(&t, f, "assigned-addresses");
        assert_eq!(aa.len(), 40);
        // BAR1: 32-bit memory, register 0x14; BAR4: 64-bit prefetchable, 0x20.
        assert_eq!(&aa[0..4], &[0x02, 0x01, 0x00, 0x14]);
        assert_eq!(&aa[20..24], &[0x43, 0x01, 0x00, 0x20]);
        assert_eq!(get(&t, f, "ibm,req#msi-x"), &[0, 0, 0, 2]);
        assert_eq!(
            get(&t, f, "reg"),
            &[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // Without devices: no node, no probe-only.
        let t = parse(&build(&config(1, CpuModel::Power9, true, false)).unwrap());
        assert!(!has(&t, "/chosen", "linux,pci-probe-only"));
    }

    #[test]
    fn cpu_node_names_are_hex_ids() {
        let cfg = config(17, CpuModel::Power10, true, false);
        let t = parse(&build(&cfg).unwrap());
        assert!(t.contains_key("/cpus/PowerPC,POWER10@0"));
        assert!(t.contains_key("/cpus/PowerPC,POWER10@a"));
        assert!(t.contains_key("/cpus/PowerPC,POWER10@10"));
        assert_eq!(u32_of(get(&t, "/cpus/PowerPC,POWER10@10", "reg")), 16);
        assert_eq!(
            u32_of(get(&t, "/cpus/PowerPC,POWER10@10", "cpu-version")),
            0x0080_0200
        );
        let cfg = config(1, CpuModel::Power9, true, false);
        let t = parse(&build(&cfg).unwrap());
        assert_eq!(
            u32_of(get(&t, "/cpus/PowerPC,POWER9@0", "cpu-version")),
            0x004e_1202
        );
    }

    #[test]
    fn rtas_tokens_round_trip() {
        let tokens: Vec<(String, u32)> = crate::papr::rtas::CALLS
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.to_string(), 0x2000 + i as u32))
            .collect();
        let refs: Vec<(&str, u32)> = tokens.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let mut cfg = config(1, CpuModel::Power9, true, false);
        cfg.rtas_tokens = &refs;
        let t = parse(&build(&cfg).unwrap());
        let props = &t["/rtas"];
        for (name, token) in &refs {
            let found: Vec<_> = props.iter().filter(|(n, _)| n == name).collect();
            assert_eq!(found.len(), 1, "{name}");
            assert_eq!(u32_of(&found[0].1), *token);
        }
        // A token named like a fixed /rtas property is a duplicate, not a
        // silent override.
        let clash = [("rtas-size", 5)];
        cfg.rtas_tokens = &clash;
        assert_eq!(build(&cfg), Err(FdtWriteError::DuplicateProperty));
    }

    #[test]
    fn vec5_encodings_as_linux_reads_them() {
        for (v, intc) in [
            (vec5_radix_xive(), 0x40),
            (vec5_radix_xive_or_xics(), 0x80),
            (vec5_radix_xics(), 0),
        ] {
            // Length byte: OV5 bytes present minus one.
            assert_eq!(v[0] as usize, v.len() - 2);
            assert_eq!(v.len(), 27);
            // early_check_vec5: longer than index 24, radix-only, no GTSE
            // (Linux then clears MMU_FTR_GTSE and uses H_RPT_INVALIDATE).
            assert!(v.len() > OV5_MMU_BYTE);
            assert_eq!(v[OV5_MMU_BYTE] & 0xc0, 0x40);
            assert_eq!(v[OV5_GTSE_BYTE] & 0x40, 0);
            assert_eq!(v[OV5_INTC_BYTE], intc);
            let others = v
                .iter()
                .enumerate()
                .filter(|&(i, _)| ![0, OV5_INTC_BYTE, OV5_MMU_BYTE, OV5_GTSE_BYTE].contains(&i));
            assert!(others.into_iter().all(|(_, &b)| b == 0));
        }
    }

    #[test]
    fn hash_partition_view() {
        // A hash-only, XICS partition: vec5 byte 24 = 0 (Linux runs hash even
        // without disable_radix), the HPT properties on every cpu.
        let v = vec5_with(0, 0);
        assert_eq!(v[OV5_MMU_BYTE] & 0xc0, 0);
        assert_eq!(v[OV5_INTC_BYTE], 0);
        assert_eq!(vec5_with(0x80, 0x80)[OV5_MMU_BYTE], 0x80);
        // HPT resizing offered with hash (Linux OV5_RESIZE_HPT 0x0601), not
        // with radix only.
        assert_eq!(v[6], OV5_HPT_RESIZE);
        assert_eq!(vec5_with(0x80, 0x80)[6], OV5_HPT_RESIZE);
        assert_eq!(vec5_with(0x80, 0x40)[6], 0);
        assert_eq!(vec5_radix_xive()[6], 0);
        for cpu in [CpuModel::Power9, CpuModel::Power10] {
            let mut cfg = config(4, cpu, false, false);
            cfg.hpt_shift = Some(22);
            cfg.chosen_vec5 = &v;
            check_linux_view(&build(&cfg).unwrap(), &cfg);
        }
    }

    #[test]
    fn pa_features_layout() {
        let p9 = pa_features(CpuModel::Power9);
        assert_eq!(p9.len(), 68);
        assert_eq!(&p9[..8], &[66, 0, 0xf6, 0x1f, 0xc7, 0xc0, 0x00, 0xf0]);
        assert_eq!(p9[2 + 40], 0x80);
        assert_eq!(p9[2 + 4], 0, "no SAO");
        assert_eq!(p9[2 + 22], 0, "no HTM");
        let p10 = pa_features(CpuModel::Power10);
        assert_eq!(p10.len(), 76);
        assert_eq!(p10[0], 74);
        assert_eq!(&p10[1..68], &p9[1..68], "same ISA 3.0 bits");
        assert_eq!(p10[2 + 68], 0, "no DEXCR aspects");
        assert_eq!(p10[2 + 72], 0, "no hashst/hashchk");
    }

    #[test]
    fn build_at_reserves_the_blob_itself() {
        let cfg = config(2, CpuModel::Power9, true, true);
        let blob = build_at(&cfg, 0x0600_0000).unwrap();
        let f = Fdt::new(&blob).unwrap();
        let rsv: Vec<(u64, u64)> = f.reservations().collect::<Result<_, _>>().unwrap();
        assert_eq!(rsv.last(), Some(&(0x0600_0000, blob.len() as u64)));
        check_linux_view(&blob, &cfg);
        // build() does not.
        let plain = build(&cfg).unwrap();
        let f = Fdt::new(&plain).unwrap();
        assert_eq!(f.reservations().count(), rsv.len() - 1);
    }

    #[test]
    fn large_timebase_uses_the_extended_property() {
        let mut cfg = config(1, CpuModel::Power9, true, false);
        cfg.timebase_hz = 0x1_0000_0000;
        let t = parse(&build(&cfg).unwrap());
        let n = "/cpus/PowerPC,POWER9@0";
        assert_eq!(
            u64s(get(&t, n, "ibm,extended-timebase-frequency")),
            [0x1_0000_0000]
        );
        assert_eq!(u32_of(get(&t, n, "timebase-frequency")), u32::MAX);
    }

    #[test]
    fn bad_configs_are_errors() {
        let inv = |f: &dyn Fn(&mut GuestFdtConfig)| {
            let mut cfg = config(2, CpuModel::Power9, true, true);
            f(&mut cfg);
            build(&cfg)
        };
        let is_invalid =
            |r: Result<Vec<u8>, FdtWriteError>| matches!(r, Err(FdtWriteError::Invalid(_)));
        assert!(is_invalid(inv(&|c| c.vcpus = 0)));
        assert!(is_invalid(inv(&|c| c.memory_bytes = 0)));
        assert!(is_invalid(inv(&|c| c.timebase_hz = 0)));
        assert!(is_invalid(inv(&|c| c.initrd = Some((0x100, 0x100)))));
        assert!(is_invalid(inv(&|c| c.initrd = Some((0x200, 0x100)))));
        assert!(is_invalid(inv(&|c| c.initrd = Some((0x100, 0x8000_0000)))));
        assert!(is_invalid(inv(&|c| c.rtas_size = 0)));
        assert!(is_invalid(inv(&|c| c.rtas_base = u64::MAX)));
        assert!(is_invalid(inv(&|c| {
            c.memory_bytes = 0x2_0000_0000;
            c.rtas_base = 0xffff_f000;
            c.rtas_size = 0x2000;
        })));
        assert!(is_invalid(inv(&|c| c.rtas_base = 0x3fff_ffff)));
        assert!(is_invalid(inv(&|c| {
            c.xive = Some(XiveGuestConfig {
                tima_user: 0,
                tima_os: 0x10000,
                eq_sizes: &[],
                lisn_ranges: LISNS,
                vty_lisn: None,
            })
        })));
        assert_eq!(inv(&|c| c.bootargs = "a\0b"), Err(FdtWriteError::BadString));
        assert_eq!(
            inv(&|c| c.rtas_tokens = &[("bad name", 1)]),
            Err(FdtWriteError::BadName)
        );
        // RTAS ending exactly at 4 GiB is fine.
        let ok = inv(&|c| {
            c.memory_bytes = 0x2_0000_0000;
            c.rtas_base = 0xffff_f000;
            c.rtas_size = 0x1000;
        });
        assert!(ok.is_ok());
    }
}
