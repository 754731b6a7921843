//! Parsing the host device tree skiboot passes in r3.
//!
//! Everything the hypervisor needs to know about the machine comes from here: memory,
//! every range it must never hand out (the FDT reserve map, `/reserved-memory`, the FDT
//! itself, the initrd), hardware threads and their PIR/server numbers, chips, the XIVE
//! controller, PHBs, OPAL's entry points and whether an ultravisor runs. Nothing
//! allocates: results go into fixed-capacity vectors, so this runs before the heap
//! exists.

use super::reader::{be32_at, Fdt, ReadError, Token, MAX_DEPTH};
use crate::mm::frame::PhysRange;
use heapless::{String, Vec};

pub const MAX_MEMORY_RANGES: usize = 32;
pub const MAX_RESERVED: usize = 64;
pub const MAX_THREADS: usize = 512;
pub const MAX_CHIPS: usize = 16;
pub const MAX_PCI_FUNCTIONS: usize = 32;

/// Why the host tree could not be used. The hypervisor cannot run without it, so
/// these end the boot with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    Read(ReadError),
    NoMemory,
    NoCpus,
    NoOpal,
    TooMany(&'static str),
    BadProperty(&'static str),
}

impl From<ReadError> for FdtError {
    fn from(e: ReadError) -> Self {
        FdtError::Read(e)
    }
}

impl core::fmt::Display for FdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdtError::Read(e) => write!(f, "malformed FDT: {e:?}"),
            FdtError::NoMemory => write!(f, "no /memory node"),
            FdtError::NoCpus => write!(f, "no CPU nodes under /cpus"),
            FdtError::NoOpal => write!(f, "no /ibm,opal node with entry points"),
            FdtError::TooMany(what) => write!(f, "too many {what}"),
            FdtError::BadProperty(p) => write!(f, "malformed property {p}"),
        }
    }
}

/// One hardware thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwThread {
    /// Interrupt server number; equals the PIR on POWER9/Power10 (skiboot).
    pub pir: u32,
    pub chip_id: u32,
    /// Index of the core (CPU node) in device-tree order.
    pub core: u32,
    /// Thread number within the core.
    pub thread: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpalInfo {
    pub base: u64,
    pub entry: u64,
    pub size: u64,
    pub heartbeat_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XiveInfo {
    pub compatible: String<32>,
    /// TIMA pages (HW, HV, OS, user), as `reg` lists them.
    pub tima: Vec<PhysRange, 4>,
}

/// A PCI function skiboot found (a node with `vendor-id` under a PHB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// The PHB's `ibm,opal-phbid`, for OPAL's PCI calls.
    pub phb_id: u64,
    /// The PHB's 32-bit MMIO window (`ranges`), if it has one.
    pub m32: Option<crate::pci::MmioWindow>,
    pub bdf: crate::pci::Bdf,
    /// The bridge above it (its parent node), when that is a PCI function too.
    pub bridge: Option<crate::pci::Bdf>,
    pub vendor: u16,
    pub device: u16,
    /// The PHB's `ibm,opal-num-pes` (its M32 window has one segment per PE).
    pub num_pes: u32,
    /// The PHB's `ibm,opal-msi-ranges`: first global interrupt number, count.
    pub msi_ranges: Option<(u32, u32)>,
}

/// Where a TPM sits: OPAL I2C bus id and 7-bit address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpmI2c {
    pub bus_id: u32,
    pub addr: u16,
}

/// TCG I2C interface TPMs (Linux `tpm_tis_i2c`'s match table, the Power10 part).
const TPM_TIS_I2C: [&str; 2] = ["tcg,tpm-tis-i2c", "nuvoton,npct75x"];

/// What the hypervisor knows about the machine.
#[derive(Clone, Debug)]
pub struct HostInfo {
    pub model: String<64>,
    pub compatible: String<64>,
    pub memory: Vec<PhysRange, MAX_MEMORY_RANGES>,
    /// Every range that must never be allocated, sorted and merged.
    pub reserved: Vec<PhysRange, MAX_RESERVED>,
    pub threads: Vec<HwThread, MAX_THREADS>,
    pub cores: u32,
    pub chips: Vec<u32, MAX_CHIPS>,
    pub boot_pir: u32,
    pub timebase_hz: u64,
    pub opal: OpalInfo,
    pub xive: Option<XiveInfo>,
    pub phbs: u32,
    /// PCI functions under the PHBs, in device-tree order (the first
    /// `MAX_PCI_FUNCTIONS`; `pci_functions_dropped` counts the rest).
    pub pci_functions: Vec<PciFunction, MAX_PCI_FUNCTIONS>,
    pub pci_functions_dropped: u32,
    pub ultravisor: bool,
    /// A TPM speaking the TCG I2C interface on an OPAL I2C bus (H_TPM_COMM's
    /// host TPM, docs/pef.md): the first node compatible with
    /// `tcg,tpm-tis-i2c` or `nuvoton,npct75x` below a bus with `ibm,opal-id`.
    pub tpm: Option<TpmI2c>,
    pub initrd: Option<PhysRange>,
    pub bootargs: String<256>,
    pub fdt: PhysRange,
    pub tlb_sets: Option<u32>,
}

impl HostInfo {
    pub fn memory_bytes(&self) -> u64 {
        self.memory.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether the kernel command line (`/chosen/bootargs`) has `word` as a token.
    pub fn has_bootarg(&self, word: &str) -> bool {
        self.bootargs.split_ascii_whitespace().any(|w| w == word)
    }

    /// H_TPM_COMM's host TPM: `paprika.tpm=<OPAL I2C bus id>,<7-bit address>`
    /// (decimal or 0x-hex) on the command line, else the device tree's.
    pub fn host_tpm(&self) -> Option<TpmI2c> {
        let num = |t: &str| match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        };
        let arg = self
            .bootargs
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("paprika.tpm="))
            .and_then(|v| {
                let (b, a) = v.split_once(',')?;
                let addr = num(a).filter(|&a| a < 0x80)?;
                Some(TpmI2c {
                    bus_id: num(b)?,
                    addr: addr as u16,
                })
            });
        arg.or(self.tpm)
    }
}

/// Total size claimed by a header, after checking it.
pub fn total_size(header: &[u8]) -> Result<usize, FdtError> {
    if header.len() < 40 || be32_at(header, 0) != Some(0xd00d_feed) {
        return Err(ReadError::BadHeader.into());
    }
    be32_at(header, 4)
        .map(|v| v as usize)
        .ok_or(ReadError::BadHeader.into())
}

/// Reads `cells` (1 or 2) 32-bit cells at byte offset `at`.
fn cells(b: &[u8], at: usize, cells: u32) -> Option<u64> {
    match cells {
        1 => be32_at(b, at).map(u64::from),
        2 => Some((u64::from(be32_at(b, at)?) << 32) | u64::from(be32_at(b, at + 4)?)),
        _ => None,
    }
}

fn push_range<const N: usize>(
    v: &mut Vec<PhysRange, N>,
    start: u64,
    size: u64,
) -> Result<(), FdtError> {
    if size == 0 {
        return Ok(());
    }
    let end = start
        .checked_add(size)
        .ok_or(FdtError::BadProperty("reg"))?;
    v.push(PhysRange { start, end })
        .map_err(|_| FdtError::TooMany("ranges"))
}

/// Sorts and merges overlapping or touching ranges.
pub fn normalise<const N: usize>(v: &mut Vec<PhysRange, N>) {
    v.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<PhysRange, N> = Vec::new();
    for r in v.iter() {
        if let Some(last) = out.last_mut() {
            if r.start <= last.end {
                last.end = last.end.max(r.end);
                continue;
            }
        }
        // Cannot overflow: `out` never holds more than `v`.
        let _ = out.push(*r);
    }
    *v = out;
}

fn copy_str<const N: usize>(s: &str) -> String<N> {
    let mut out = String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// The properties of one node that the parser looks at.
const WANTED: &[&str] = &[
    "#address-cells",
    "#size-cells",
    "device_type",
    "compatible",
    "reg",
    "status",
    "model",
    "ibm,chip-id",
    "ibm,ppc-interrupt-server#s",
    "timebase-frequency",
    "ibm,tlb-congruence-classes",
    "opal-base-address",
    "opal-entry-address",
    "opal-runtime-size",
    "ibm,heartbeat-ms",
    "linux,initrd-start",
    "linux,initrd-end",
    "bootargs",
    "ibm,opal-phbid",
    "ibm,opal-num-pes",
    "ibm,opal-msi-ranges",
    "ranges",
    "vendor-id",
    "device-id",
    "ibm,opal-id",
];

#[derive(Default)]
struct Node<'a> {
    name: &'a str,
    props: Vec<(&'a str, &'a [u8]), 24>,
}

impl<'a> Node<'a> {
    fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.props.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn u32(&self, name: &str) -> Option<u32> {
        self.get(name).and_then(|b| be32_at(b, 0))
    }

    /// One number stored as one or two cells (skiboot writes either).
    fn num(&self, name: &str) -> Option<u64> {
        let b = self.get(name)?;
        match b.len() {
            4 => cells(b, 0, 1),
            8 => cells(b, 0, 2),
            _ => None,
        }
    }

    fn str(&self, name: &str) -> Option<&'a str> {
        let b = self.get(name)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        core::str::from_utf8(&b[..end]).ok()
    }

    fn compatible(&self) -> impl Iterator<Item = &'a [u8]> {
        self.get("compatible")
            .unwrap_or(&[])
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
    }

    fn is_compatible(&self, want: &str) -> bool {
        self.compatible().any(|s| s == want.as_bytes())
    }

    /// `#address-cells` / `#size-cells` this node's children use.
    fn child_cells(&self) -> (u32, u32) {
        (
            self.u32("#address-cells").unwrap_or(2),
            self.u32("#size-cells").unwrap_or(1),
        )
    }

    /// Decodes `reg` with the parent's cell sizes.
    fn regs<const N: usize>(
        &self,
        cells_of_parent: (u32, u32),
        out: &mut Vec<PhysRange, N>,
    ) -> Result<(), FdtError> {
        let Some(b) = self.get("reg") else {
            return Ok(());
        };
        let (ac, sc) = cells_of_parent;
        if !(1..=2).contains(&ac) || sc > 2 {
            return Err(FdtError::BadProperty("#address-cells"));
        }
        let stride = ((ac + sc) * 4) as usize;
        if b.len() % stride != 0 {
            return Err(FdtError::BadProperty("reg"));
        }
        for at in (0..b.len()).step_by(stride) {
            let addr = cells(b, at, ac).ok_or(FdtError::BadProperty("reg"))?;
            let size = if sc == 0 {
                0
            } else {
                cells(b, at + 4 * ac as usize, sc).ok_or(FdtError::BadProperty("reg"))?
            };
            push_range(out, addr, size)?;
        }
        Ok(())
    }
}

/// Parses the host tree at physical address `fdt_pa` (used to reserve the blob itself).
pub fn parse(blob: &[u8], fdt_pa: u64) -> Result<HostInfo, FdtError> {
    let fdt = Fdt::new(blob)?;
    let size = fdt.total_size() as u64;
    let mut info = HostInfo {
        model: String::new(),
        compatible: String::new(),
        memory: Vec::new(),
        reserved: Vec::new(),
        threads: Vec::new(),
        cores: 0,
        chips: Vec::new(),
        boot_pir: fdt.boot_cpuid_phys(),
        timebase_hz: 0,
        opal: OpalInfo {
            base: 0,
            entry: 0,
            size: 0,
            heartbeat_ms: 0,
        },
        xive: None,
        phbs: 0,
        pci_functions: Vec::new(),
        pci_functions_dropped: 0,
        ultravisor: false,
        tpm: None,
        initrd: None,
        bootargs: String::new(),
        fdt: PhysRange {
            start: fdt_pa,
            end: fdt_pa + size,
        },
        tlb_sets: None,
    };
    for r in fdt.reservations() {
        let (a, s) = r?;
        push_range(&mut info.reserved, a, s)?;
    }
    push_range(&mut info.reserved, fdt_pa, size)?;
    let mut have_opal = false;

    // Open nodes, root first. A node is evaluated when it closes: by then its own
    // properties are known, and its parent's (for cell sizes) were read earlier.
    let mut stack: Vec<Node, MAX_DEPTH> = Vec::new();
    for tok in fdt.tokens() {
        match tok? {
            Token::Begin { name, .. } => {
                stack
                    .push(Node {
                        name,
                        props: Vec::new(),
                    })
                    .map_err(|_| ReadError::Unbalanced)?;
            }
            Token::Prop { name, value } => {
                if let Some(n) = stack.last_mut() {
                    if WANTED.contains(&name) {
                        n.props
                            .push((name, value))
                            .map_err(|_| FdtError::TooMany("properties"))?;
                    }
                }
            }
            Token::End => {
                let node = stack.pop().ok_or(ReadError::Unbalanced)?;
                let depth = stack.len();
                let parent = stack.last();
                let parent_cells = parent.map(|p| p.child_cells()).unwrap_or((2, 1));
                let parent_name = parent.map(|p| p.name).unwrap_or("");
                pci_function(&node, &stack, &mut info)?;
                tpm_node(&node, &stack, &mut info);
                evaluate(
                    &node,
                    depth,
                    parent_name,
                    parent_cells,
                    &mut info,
                    &mut have_opal,
                )?;
            }
        }
    }

    if info.memory.is_empty() {
        return Err(FdtError::NoMemory);
    }
    if info.threads.is_empty() {
        return Err(FdtError::NoCpus);
    }
    if !have_opal {
        return Err(FdtError::NoOpal);
    }
    // Threads in device-tree order of their cores; cores were numbered as they closed.
    info.chips.sort_unstable();
    info.memory.sort_unstable_by_key(|r| r.start);
    normalise(&mut info.reserved);
    Ok(info)
}

/// Whether a node is a PHB skiboot set up.
fn is_phb(node: &Node) -> bool {
    node.str("device_type") == Some("pciex") && node.compatible().any(|c| c.ends_with(b"-pciex"))
}

/// PCI `reg`/`ranges` phys.hi: bus, device, function in bits 23:8, space code in
/// bits 25:24 (2: 32-bit memory).
fn pci_phys_hi_bdf(hi: u32) -> crate::pci::Bdf {
    crate::pci::Bdf((hi >> 8) as u16)
}

/// The first 32-bit memory entry of a PHB's `ranges` (3 PCI address cells, 2
/// CPU address cells, 2 size cells).
fn phb_m32(phb: &Node) -> Option<crate::pci::MmioWindow> {
    let r = phb.get("ranges")?;
    (0..r.len() / 28).map(|i| i * 28).find_map(|at| {
        let hi = be32_at(r, at)?;
        ((hi >> 24) & 3 == 2).then_some(())?;
        Some(crate::pci::MmioWindow {
            pci: cells(r, at + 4, 2)?,
            cpu: cells(r, at + 12, 2)?,
            size: cells(r, at + 20, 2)?,
        })
    })
}

/// Records the first TCG I2C TPM below an OPAL I2C bus.
fn tpm_node(node: &Node, ancestors: &[Node], info: &mut HostInfo) {
    if info.tpm.is_some() || !TPM_TIS_I2C.iter().any(|c| node.is_compatible(c)) {
        return;
    }
    if node.str("status").is_some_and(|s| s != "okay") {
        return;
    }
    let bus = ancestors.last().and_then(|p| p.u32("ibm,opal-id"));
    if let (Some(bus_id), Some(addr)) = (bus, node.u32("reg")) {
        info.tpm = Some(TpmI2c {
            bus_id,
            addr: addr as u16,
        });
    }
}

/// Records a PCI function node (one with `vendor-id`) below a PHB.
fn pci_function(node: &Node, ancestors: &[Node], info: &mut HostInfo) -> Result<(), FdtError> {
    let (Some(vendor), Some(device)) = (node.u32("vendor-id"), node.u32("device-id")) else {
        return Ok(());
    };
    let Some(phb) = ancestors.iter().find(|n| is_phb(n)) else {
        return Ok(());
    };
    let reg = node.get("reg").ok_or(FdtError::BadProperty("reg"))?;
    let bdf = pci_phys_hi_bdf(be32_at(reg, 0).ok_or(FdtError::BadProperty("reg"))?);
    let parent = ancestors.last();
    let bridge = parent
        .filter(|p| p.get("vendor-id").is_some())
        .and_then(|p| p.get("reg"))
        .and_then(|r| be32_at(r, 0))
        .map(pci_phys_hi_bdf);
    let f = PciFunction {
        phb_id: phb
            .num("ibm,opal-phbid")
            .ok_or(FdtError::BadProperty("ibm,opal-phbid"))?,
        m32: phb_m32(phb),
        bdf,
        bridge,
        vendor: vendor as u16,
        device: device as u16,
        num_pes: phb.u32("ibm,opal-num-pes").unwrap_or(1).max(1),
        msi_ranges: phb
            .get("ibm,opal-msi-ranges")
            .and_then(|r| Some((be32_at(r, 0)?, be32_at(r, 4)?))),
    };
    if info.pci_functions.push(f).is_err() {
        info.pci_functions_dropped += 1;
    }
    Ok(())
}

fn evaluate(
    node: &Node,
    depth: usize,
    parent_name: &str,
    parent_cells: (u32, u32),
    info: &mut HostInfo,
    have_opal: &mut bool,
) -> Result<(), FdtError> {
    let device_type = node.str("device_type").unwrap_or("");
    if depth == 0 {
        info.model = copy_str(node.str("model").unwrap_or(""));
        info.compatible = copy_str(node.str("compatible").unwrap_or(""));
    } else if depth == 1 && device_type == "memory" {
        node.regs(parent_cells, &mut info.memory)?;
    } else if depth == 1 && node.name == "ibm,opal" {
        if let (Some(base), Some(entry)) = (
            node.num("opal-base-address"),
            node.num("opal-entry-address"),
        ) {
            info.opal = OpalInfo {
                base,
                entry,
                size: node.num("opal-runtime-size").unwrap_or(0),
                heartbeat_ms: node.u32("ibm,heartbeat-ms").unwrap_or(2000),
            };
            *have_opal = true;
        }
    } else if depth == 1 && node.name == "chosen" {
        if let (Some(s), Some(e)) = (node.num("linux,initrd-start"), node.num("linux,initrd-end")) {
            if e > s {
                info.initrd = Some(PhysRange { start: s, end: e });
                push_range(&mut info.reserved, s, e - s)?;
            }
        }
        info.bootargs = copy_str(node.str("bootargs").unwrap_or(""));
    } else if depth == 2 && parent_name == "reserved-memory" {
        node.regs(parent_cells, &mut info.reserved)?;
    } else if depth == 2 && parent_name == "cpus" && device_type == "cpu" {
        if node.str("status").is_some_and(|s| s != "okay") {
            return Ok(());
        }
        let chip_id = node.u32("ibm,chip-id").unwrap_or(0);
        let core = info.cores;
        info.cores += 1;
        if info.timebase_hz == 0 {
            info.timebase_hz = node.num("timebase-frequency").unwrap_or(0);
        }
        if info.tlb_sets.is_none() {
            info.tlb_sets = node.u32("ibm,tlb-congruence-classes");
        }
        let servers = node
            .get("ibm,ppc-interrupt-server#s")
            .or_else(|| node.get("reg"))
            .ok_or(FdtError::BadProperty("ibm,ppc-interrupt-server#s"))?;
        if servers.is_empty() || servers.len() % 4 != 0 {
            return Err(FdtError::BadProperty("ibm,ppc-interrupt-server#s"));
        }
        for (t, at) in (0..servers.len()).step_by(4).enumerate() {
            let pir =
                be32_at(servers, at).ok_or(FdtError::BadProperty("ibm,ppc-interrupt-server#s"))?;
            let th = HwThread {
                pir,
                chip_id,
                core,
                thread: t as u32,
            };
            info.threads
                .push(th)
                .map_err(|_| FdtError::TooMany("threads"))?;
        }
        if !info.chips.contains(&chip_id) {
            info.chips
                .push(chip_id)
                .map_err(|_| FdtError::TooMany("chips"))?;
        }
    } else if node.is_compatible("ibm,ultravisor") {
        info.ultravisor = true;
    } else if is_phb(node) {
        info.phbs += 1;
    } else if info.xive.is_none() && node.is_compatible("ibm,opal-xive-pe") {
        let mut tima = Vec::new();
        node.regs(parent_cells, &mut tima)?;
        info.xive = Some(XiveInfo {
            compatible: copy_str(node.str("compatible").unwrap_or("")),
            tima,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Parses the device trees skiboot really handed to its payload on emulated
    //! POWER9 and Power10 machines (captured as described in
    //! `hypervisor/tests/fixtures/README.md`) and checks every fact against
    //! `expected.txt`, which was produced by an independent parser.
    use super::*;
    use std::collections::HashMap;
    use std::string::{String, ToString};
    use std::vec::Vec;

    const FIXTURES: &[(&str, &[u8])] = &[
        (
            "powernv9-1g-1t.dtb",
            include_bytes!("../../tests/fixtures/powernv9-1g-1t.dtb"),
        ),
        (
            "powernv9-1g-1t-initrd.dtb",
            include_bytes!("../../tests/fixtures/powernv9-1g-1t-initrd.dtb"),
        ),
        (
            "powernv9-2g-4t.dtb",
            include_bytes!("../../tests/fixtures/powernv9-2g-4t.dtb"),
        ),
        (
            "powernv9-3g-2c4t.dtb",
            include_bytes!("../../tests/fixtures/powernv9-3g-2c4t.dtb"),
        ),
        (
            "powernv9-2g-2s.dtb",
            include_bytes!("../../tests/fixtures/powernv9-2g-2s.dtb"),
        ),
        (
            "powernv10-1g-1t.dtb",
            include_bytes!("../../tests/fixtures/powernv10-1g-1t.dtb"),
        ),
        (
            "powernv10-4g-8t.dtb",
            include_bytes!("../../tests/fixtures/powernv10-4g-8t.dtb"),
        ),
    ];
    const EXPECTED: &str = include_str!("../../tests/fixtures/expected.txt");

    fn expected() -> HashMap<String, HashMap<String, String>> {
        let mut all = HashMap::new();
        let mut cur: Option<(String, HashMap<String, String>)> = None;
        for line in EXPECTED.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if let Some((n, m)) = cur.take() {
                    all.insert(n, m);
                }
                cur = Some((name.to_string(), HashMap::new()));
            } else if let (Some((_, m)), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                m.insert(k.to_string(), v.to_string());
            }
        }
        if let Some((n, m)) = cur {
            all.insert(n, m);
        }
        all
    }

    fn hex(s: &str) -> u64 {
        u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
    }

    fn ranges(s: &str) -> Vec<PhysRange> {
        s.split(',')
            .filter(|p| !p.is_empty() && *p != "none")
            .map(|p| {
                let (a, b) = p.split_once('-').unwrap();
                PhysRange {
                    start: hex(a),
                    end: hex(b),
                }
            })
            .collect()
    }

    fn parse_fixture(bytes: &[u8], fdt_pa: u64) -> HostInfo {
        parse(bytes, fdt_pa).unwrap()
    }

    #[test]
    fn pci_functions_under_phbs_with_their_m32_window() {
        let (_, blob) = FIXTURES
            .iter()
            .find(|(n, _)| *n == "powernv9-1g-1t.dtb")
            .unwrap();
        let info = parse(blob, 0x3000_0000).unwrap();
        // skiboot's six PHB4s of chip 0, each with its root port at 00:00.0.
        assert_eq!(info.pci_functions.len(), 6);
        assert_eq!(info.pci_functions_dropped, 0);
        let rp = info.pci_functions[0];
        assert_eq!(rp.phb_id, 0);
        assert_eq!((rp.vendor, rp.device), (0x1014, 0x04c1));
        assert_eq!(rp.bdf, crate::pci::Bdf::new(0, 0, 0));
        assert_eq!(rp.bridge, None);
        assert_eq!(rp.num_pes, 512);
        // PHB 0's 4088 MSIs from 0xfe000, PHB 1's 2040 from 0xfd800.
        assert_eq!(rp.msi_ranges, Some((0xfe000, 0xff8)));
        assert_eq!(info.pci_functions[1].msi_ranges, Some((0xfd800, 0x7f8)));
        assert_eq!(
            rp.m32,
            Some(crate::pci::MmioWindow {
                cpu: 0x0006_00c0_0000_0000,
                pci: 0x8000_0000,
                size: 0x7fff_0000
            })
        );
        let ids: std::vec::Vec<u64> = info.pci_functions.iter().map(|f| f.phb_id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn every_fixture_matches_expected_facts() {
        let exp = expected();
        for (name, bytes) in FIXTURES {
            let e = &exp[*name];
            let fdt = ranges(&e["fdt"])[0];
            let info = parse_fixture(bytes, fdt.start);
            assert_eq!(info.fdt, fdt, "{name}: fdt range");
            assert_eq!(
                info.memory_bytes(),
                e["memory_total"].parse::<u64>().unwrap(),
                "{name}: memory"
            );
            let mut mem = ranges(&e["memory"]);
            mem.sort_by_key(|r| r.start);
            assert_eq!(
                info.memory.as_slice(),
                mem.as_slice(),
                "{name}: memory ranges"
            );

            // Reserved = reserve map + /reserved-memory + the FDT + the initrd, merged.
            let mut want: heapless::Vec<PhysRange, MAX_RESERVED> = heapless::Vec::new();
            for r in ranges(&e["reserved_merged"])
                .into_iter()
                .chain([fdt])
                .chain(ranges(&e["initrd"]))
            {
                want.push(r).unwrap();
            }
            normalise(&mut want);
            assert_eq!(info.reserved, want, "{name}: reserved");

            let pirs: Vec<u32> = e["pirs"].split(',').map(|p| hex(p) as u32).collect();
            let got: Vec<u32> = info.threads.iter().map(|t| t.pir).collect();
            assert_eq!(got, pirs, "{name}: PIRs");
            assert_eq!(
                info.threads.len(),
                e["threads"].parse::<usize>().unwrap(),
                "{name}: threads"
            );
            assert_eq!(
                info.cores,
                e["cores"].parse::<u32>().unwrap(),
                "{name}: cores"
            );
            let chips: Vec<u32> = e["chips"].split(',').map(|c| c.parse().unwrap()).collect();
            assert_eq!(info.chips.as_slice(), chips.as_slice(), "{name}: chips");
            assert_eq!(
                info.boot_pir as u64,
                hex(&e["boot_cpuid_phys"]),
                "{name}: boot cpu"
            );
            assert_eq!(
                info.timebase_hz,
                e["timebase_frequency"].parse::<u64>().unwrap(),
                "{name}: timebase"
            );
            assert_eq!(info.opal.base, hex(&e["opal_base"]), "{name}: OPAL base");
            assert_eq!(info.opal.entry, hex(&e["opal_entry"]), "{name}: OPAL entry");
            assert_eq!(
                info.opal.size,
                hex(&e["opal_runtime_size"]),
                "{name}: OPAL size"
            );
            assert_eq!(
                info.opal.heartbeat_ms.to_string(),
                e["heartbeat_ms"],
                "{name}: heartbeat"
            );
            assert_eq!(info.xive.is_some(), e["xive"] == "yes", "{name}: xive");
            let xive = info.xive.as_ref().unwrap();
            assert_eq!(
                xive.tima.as_slice(),
                ranges(&e["xive_reg"]).as_slice(),
                "{name}: TIMA"
            );
            assert!(
                e["xive_compatible"].starts_with(xive.compatible.as_str()),
                "{name}: xive compatible"
            );
            assert_eq!(info.phbs.to_string(), e["phbs"], "{name}: PHBs");
            assert_eq!(
                info.ultravisor,
                e["ultravisor"] == "yes",
                "{name}: ultravisor"
            );
            assert_eq!(
                info.initrd,
                ranges(&e["initrd"]).first().copied(),
                "{name}: initrd"
            );
            assert_eq!(info.bootargs.as_str(), e["bootargs"], "{name}: bootargs");
            assert_eq!(info.model.as_str(), e["model"], "{name}: model");
            assert_eq!(
                info.tlb_sets
                    .map(|t| t.to_string())
                    .unwrap_or("none".into()),
                e["tlb_sets"]
            );
            // Threads of one core share the core index and count up.
            for w in info.threads.windows(2) {
                assert!(
                    w[1].core > w[0].core
                        || (w[1].core == w[0].core && w[1].thread == w[0].thread + 1)
                );
            }
        }
    }

    #[test]
    fn bootarg_tokens() {
        let exp = expected();
        let e = &exp["powernv9-1g-1t-initrd.dtb"];
        let info = parse_fixture(FIXTURES[1].1, ranges(&e["fdt"])[0].start);
        assert!(info.has_bootarg("paprika.test=1"));
        assert!(!info.has_bootarg("paprika.test"));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let bytes = FIXTURES[0].1;
        assert_eq!(
            parse(&bytes[..100], 0).unwrap_err(),
            FdtError::Read(ReadError::Truncated)
        );
        assert_eq!(
            parse(&[0u8; 256], 0).unwrap_err(),
            FdtError::Read(ReadError::BadHeader)
        );
        // Corrupting any word of the structure block gives an error or a tree that
        // still parses, never a panic.
        let off_struct = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        for at in (off_struct..off_struct + 2048).step_by(4) {
            let mut bad = bytes.to_vec();
            bad[at..at + 4].copy_from_slice(&[0xff; 4]);
            let _ = parse(&bad, 0);
        }
    }

    #[test]
    fn tcg_i2c_tpm_below_an_opal_i2c_bus() {
        // QEMU's machines have OPAL I2C buses but no TPM.
        for (name, blob) in FIXTURES {
            assert_eq!(parse(blob, 0x3000_0000).unwrap().tpm, None, "{name}");
        }
        let tree = |compatible: &[&str], opal_id: bool| {
            let mut w = crate::fdt::writer::FdtWriter::new();
            w.begin_node("");
            w.prop_u32("#address-cells", 2);
            w.prop_u32("#size-cells", 2);
            w.prop_str("compatible", "ibm,powernv");
            w.begin_node("memory@0");
            w.prop_str("device_type", "memory");
            w.prop_u64_cells("reg", &[0, 1 << 30]);
            w.end_node();
            w.begin_node("cpus");
            w.prop_u32("#address-cells", 1);
            w.prop_u32("#size-cells", 0);
            w.begin_node("cpu@0");
            w.prop_str("device_type", "cpu");
            w.prop_u32("reg", 0);
            w.end_node();
            w.end_node();
            w.begin_node("ibm,opal");
            w.prop_u64("opal-base-address", 0x3000_0000);
            w.prop_u64("opal-entry-address", 0x3000_1000);
            w.end_node();
            w.begin_node("xscom@603fc00000000");
            w.begin_node("i2cm@a1000");
            w.begin_node("i2c-bus@2");
            w.prop_strs("compatible", &["ibm,opal-i2c", "ibm,power9-i2c-port"]);
            if opal_id {
                w.prop_u32("ibm,opal-id", 7);
            }
            w.prop_u32("#address-cells", 1);
            w.prop_u32("#size-cells", 0);
            w.begin_node("tpm@2e");
            w.prop_strs("compatible", compatible);
            w.prop_u32("reg", 0x2e);
            w.end_node();
            w.end_node();
            w.end_node();
            w.end_node();
            w.end_node();
            w.finish(0).unwrap()
        };
        let found = Some(TpmI2c {
            bus_id: 7,
            addr: 0x2e,
        });
        let t = tree(&["nuvoton,npct75x", "tcg,tpm-tis-i2c"], true);
        assert_eq!(parse(&t, 0).unwrap().tpm, found);
        assert_eq!(
            parse(&tree(&["tcg,tpm-tis-i2c"], true), 0).unwrap().tpm,
            found
        );
        // POWER9's NPCT650 speaks another protocol; a bus OPAL does not drive
        // cannot be used.
        assert_eq!(
            parse(&tree(&["nuvoton,npct650"], true), 0).unwrap().tpm,
            None
        );
        assert_eq!(
            parse(&tree(&["tcg,tpm-tis-i2c"], false), 0).unwrap().tpm,
            None
        );
    }

    #[test]
    fn normalise_merges() {
        let mut v: heapless::Vec<PhysRange, 8> = heapless::Vec::new();
        for (s, e) in [(30, 40), (0, 10), (10, 20), (35, 50)] {
            v.push(PhysRange { start: s, end: e }).unwrap();
        }
        normalise(&mut v);
        assert_eq!(
            v.as_slice(),
            &[
                PhysRange { start: 0, end: 20 },
                PhysRange { start: 30, end: 50 }
            ]
        );
    }
}
