//! The partition manifest: which logical partitions the machine runs, with what
//! memory, hardware threads, images and console.
//!
//! A manifest reaches this module in one of two syntaxes, each a front end that
//! produces the same intermediate form, a list of [`Table`]s of [`Entry`]s
//! (`key`, [`Value`], where it was written):
//!
//! - TOML, the file a user writes: parsed by xtask with the `toml` crate
//!   (`xtask/src/manifest.rs`), with line and column in every error;
//! - a flattened device tree, `manifest.dtb` in the boot bundle (see
//!   [`crate::bundle`]), which xtask compiles from the TOML and the hypervisor
//!   reads ([`dtb`]), so the trusted code parses device trees only.
//!
//! [`from_tables`] is the one place that knows the fields: their types, ranges,
//! defaults and the checks across partitions. [`Manifest::to_tables`] is its
//! inverse (for the device tree and for writing TOML). `docs/manifest.md`
//! describes the format for users.
//!
//! Invariants of a [`Manifest`] returned by [`from_tables`]: at least one
//! partition; names unique and `[a-z0-9_-]{1,31}`; memory a non-zero multiple of
//! 2 MiB; `1 <= vcpus <= 64` and `cpus.len() == vcpus`; no hardware thread listed
//! twice, within or across partitions; `kernel`, `initrd` and `expect` non-empty
//! when present; no control characters other than tab in any string;
//! `machine.console_input` names a partition with `console = true`, and is
//! `None` only when no partition has a console. What depends on the machine
//! (memory size, thread count, files in the bundle) is checked separately by
//! [`check_against_machine`].
//!
//! Nothing here panics, whatever the input: every error is a [`ManifestError`]
//! naming the place (line and column when the input was text), the partition and
//! the field.

pub mod dtb;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Partition memory comes in whole multiples of this (the partition-scoped radix
/// tree maps it with 2 MiB pages).
pub const MEMORY_GRANULE: u64 = 2 << 20;
/// Memory that must stay free for the hypervisor itself beyond all partitions.
pub const HYPERVISOR_RESERVE: u64 = 256 << 20;
/// Most vCPUs one partition may have.
pub const MAX_VCPUS: u32 = 64;
/// Longest partition name.
pub const MAX_NAME_LEN: usize = 31;
/// A partition with devices has memory in whole multiples of this: its 64-bit
/// DMA window is a PHB bypass window (TVE), which starts and ends on 16 MiB.
pub const DMA_GRANULE: u64 = 16 << 20;

/// Most `[[partition.disk]]` tables one partition may have (vscsi targets 0
/// to 7 of its adapter).
pub const MAX_DISKS: usize = 8;

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub machine: MachineSpec,
    pub partitions: Vec<PartitionSpec>,
}

/// The `[machine]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// Power the machine off once every partition has stopped (default true).
    pub power_off_when_idle: bool,
    /// The partition that receives console input. After [`parse`] this is always
    /// set when some partition has `console = true` (default: the first such).
    pub console_input: Option<String>,
}

impl Default for MachineSpec {
    fn default() -> Self {
        MachineSpec {
            power_off_when_idle: true,
            console_input: None,
        }
    }
}

/// One `[[partition]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub name: String,
    /// Bytes; a non-zero multiple of [`MEMORY_GRANULE`].
    pub memory: u64,
    pub vcpus: u32,
    /// The hardware thread (logical CPU index, 0 = boot thread) of each vCPU, in
    /// vCPU order.
    pub cpus: Vec<u32>,
    /// Path of the kernel image inside the bundle.
    pub kernel: String,
    /// Path of the initrd inside the bundle, if any.
    pub initrd: Option<String>,
    /// Kernel command line (default empty).
    pub cmdline: String,
    /// Multiplex this partition's vty onto the machine console, lines prefixed
    /// `[name] ` (default true).
    pub console: bool,
    /// Test-harness hint: a marker the guest prints on success. The hypervisor
    /// ignores it.
    pub expect: Option<String>,
    /// The partition may become a PEF secure VM (UV_ESM), as QEMU's
    /// `confidential-guest-support=pef` (default false). Needs an ultravisor:
    /// refused by xtask and at boot on a machine without one (docs/pef.md).
    pub secure: bool,
    /// The partition may run its own guests with KVM-HV's nested API v1
    /// (H_SET_PARTITION_TABLE, H_ENTER_NESTED, ...; docs/partitions.md,
    /// "Nested virtualization"). Default false: the calls answer H_FUNCTION,
    /// so a kernel sees no nesting (Linux's kvm-hv does not load).
    pub nested: bool,
    /// The partition may use H_TPM_COMM, the host TPM proxy (docs/pef.md);
    /// `secure = true` implies it (a secure VM's ESM needs it). Default false:
    /// H_FUNCTION, as a QEMU guest without `spapr-tpm-proxy`.
    pub tpm: bool,
    /// The MMU the partition offers its guest (default radix); docs/manifest.md.
    pub mmu: MmuMode,
    /// PCI functions passed through to the partition (`devices =
    /// ["0001:01:00.0"]`, docs/passthrough.md): each belongs to this partition
    /// only; memory must then be a multiple of [`DMA_GRANULE`].
    pub devices: Vec<crate::pci::PciAddress>,
    /// Virtual Ethernet adapters (`[[partition.net]]` tables after the
    /// partition's), in order: each an `l-lan` VIO device on the switch.
    pub net: Vec<NetSpec>,
    /// Its `[[partition.disk]]` tables in order: vscsi targets 0, 1, ...
    pub disks: Vec<DiskSpec>,
}

/// At most this many `[[partition.net]]` per partition.
pub const MAX_NETS: usize = 8;
/// VLAN ids a port may have (IEEE 802.1Q: 0 and 4095 are reserved).
pub const VLAN_MAX: u16 = 4094;

/// One `[[partition.net]]` table: a virtual Ethernet adapter (ibmveth) on the
/// hypervisor's switch (docs/vio.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetSpec {
    /// Unicast, non-zero. When the manifest gives none: `02:` (locally
    /// administered) then three bytes of a hash of the partition's name, 0, and
    /// the adapter's index ([`generated_mac`]), the same on every run.
    pub mac: [u8; 6],
    /// The port's VLAN (default 1): frames reach only ports on the same VLAN.
    pub vlan: u16,
    /// A trunk port (default false): it also receives unicast frames for MACs
    /// no port on its VLAN has, may send any source MAC, and H_ILLAN_ATTRIBUTES
    /// reports ACTIVE_TRUNK. For a later bridge to a physical adapter.
    pub trunk: bool,
}

/// The MAC of adapter `index` of partition `name` when the manifest gives none.
pub fn generated_mac(name: &str, index: usize) -> [u8; 6] {
    // FNV-1a, 32-bit.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [a, b, c, _] = h.to_be_bytes();
    [0x02, a, b, c, 0, index as u8]
}

/// Reads `"xx:xx:xx:xx:xx:xx"` (hex, either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for m in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `xx:xx:xx:xx:xx:xx`, lower case.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// One `[[partition.disk]]` table: a disk image in the bundle that the
/// partition sees as a SCSI disk on its `v-scsi` adapter (docs/vscsi.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Path of the image inside the bundle (a whole number of 512-byte blocks).
    pub image: String,
    /// The partition may not write it (default false: it writes a copy in
    /// memory, kept across partition reboots).
    pub readonly: bool,
}

/// `mmu = "radix" | "hash" | "any"`: which translation the partition offers
/// (`ibm,architecture-vec-5` byte 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MmuMode {
    /// Radix only (vec5 byte 24 = 0x40): what every partition had before.
    #[default]
    Radix,
    /// Hashed page table only (vec5 byte 24 = 0x00), for kernels that need one.
    Hash,
    /// Either (vec5 byte 24 = 0x80): the guest picks with its first
    /// H_REGISTER_PROC_TBL (Linux: hash with `disable_radix`).
    Any,
}

impl MmuMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            MmuMode::Radix => "radix",
            MmuMode::Hash => "hash",
            MmuMode::Any => "any",
        }
    }

    /// Whether the guest may run with a hashed page table.
    pub const fn offers_hash(self) -> bool {
        !matches!(self, MmuMode::Radix)
    }
}

impl Manifest {
    /// Total memory of all partitions, `None` on overflow.
    pub fn total_memory(&self) -> Option<u64> {
        self.partitions
            .iter()
            .try_fold(0u64, |sum, p| sum.checked_add(p.memory))
    }

    /// The highest hardware thread any partition uses.
    pub fn max_cpu(&self) -> Option<u32> {
        self.partitions
            .iter()
            .flat_map(|p| p.cpus.iter().copied())
            .max()
    }

    /// The partition called `name`.
    pub fn partition(&self, name: &str) -> Option<&PartitionSpec> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// The manifest as tables that [`from_tables`] reads back to an equal
    /// `Manifest` (for any manifest `from_tables` returned), each value in its
    /// canonical type ([`key_type`]): what the device tree holds and what xtask
    /// writes as TOML. Defaults are written out, except `secure`, `nested`, `tpm`
    /// and `mmu`, which appear only when they differ from theirs.
    pub fn to_tables(&self) -> Vec<Table> {
        let mut machine = Table::new(TableKind::Machine);
        machine.push(
            "power_off_when_idle",
            Value::Bool(self.machine.power_off_when_idle),
        );
        if let Some(c) = &self.machine.console_input {
            machine.push("console_input", Value::Str(c.clone()));
        }
        let mut tables = alloc::vec![machine];
        for p in &self.partitions {
            let mut t = Table::new(TableKind::Partition);
            t.push("name", Value::Str(p.name.clone()));
            t.push("memory", Value::Int(p.memory));
            t.push("vcpus", Value::Int(u64::from(p.vcpus)));
            let cpus = p.cpus.iter().map(|&c| u64::from(c)).collect();
            t.push("cpus", Value::Ints(cpus));
            t.push("kernel", Value::Str(p.kernel.clone()));
            if let Some(i) = &p.initrd {
                t.push("initrd", Value::Str(i.clone()));
            }
            t.push("cmdline", Value::Str(p.cmdline.clone()));
            t.push("console", Value::Bool(p.console));
            if let Some(e) = &p.expect {
                t.push("expect", Value::Str(e.clone()));
            }
            if p.secure {
                t.push("secure", Value::Bool(true));
            }
            if p.nested {
                t.push("nested", Value::Bool(true));
            }
            if p.tpm {
                t.push("tpm", Value::Bool(true));
            }
            if p.mmu != MmuMode::Radix {
                t.push("mmu", Value::Str(p.mmu.as_str().to_string()));
            }
            if !p.devices.is_empty() {
                let d = p.devices.iter().map(|d| d.to_string()).collect();
                t.push("devices", Value::Strs(d));
            }
            tables.push(t);
            for n in &p.net {
                let mut t = Table::new(TableKind::Net);
                t.push("mac", Value::Str(format_mac(&n.mac)));
                t.push("vlan", Value::Int(u64::from(n.vlan)));
                t.push("trunk", Value::Bool(n.trunk));
                tables.push(t);
            }
            for d in &p.disks {
                let mut t = Table::new(TableKind::Disk);
                t.push("image", Value::Str(d.image.clone()));
                t.push("readonly", Value::Bool(d.readonly));
                tables.push(t);
            }
        }
        tables
    }

    /// The manifest as a device tree ([`dtb`]), which [`from_dtb`] reads back
    /// to an equal `Manifest`.
    pub fn to_dtb(&self) -> Result<Vec<u8>, ManifestError> {
        dtb::encode(&self.to_tables())
    }

    /// Checks a manifest built in code (xtask's `run --kernel`, the Linux
    /// scenarios) as if it had been read: the same checks, the same errors.
    pub fn validated(&self) -> Result<Manifest, ManifestError> {
        from_tables(&self.to_tables())
    }
}

/// What is wrong, without the where (see [`ManifestError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not TOML; the text says why (the `toml` crate's words).
    Syntax(String),
    /// The device tree is malformed, or a property's bytes are not of its
    /// key's type; the text says how.
    Dtb(&'static str),
    /// A table other than `[machine]` and `[[partition]]` (as a TOML header, or
    /// the device-tree node's name).
    UnknownTable(String),
    /// `[machine]` given twice.
    DuplicateTable,
    /// A `key = value` line before the first table header (or a property of
    /// the device tree's root other than `compatible`).
    KeyOutsideTable,
    UnknownKey,
    DuplicateKey,
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A required field is absent.
    Missing,
    /// The value has the right type but is not allowed; the text says why.
    Invalid(&'static str),
    /// `cpus` does not have one entry per vCPU.
    CpuCount {
        vcpus: u32,
        cpus: usize,
    },
    /// A hardware thread listed twice in one partition's `cpus`.
    CpuRepeated(u32),
    /// A hardware thread already given to another partition.
    CpuShared {
        cpu: u32,
        other: String,
    },
    /// Another partition already has this name.
    DuplicateName,
    /// No `[[partition]]` table at all.
    NoPartitions,
    /// A `devices` entry is not a PCI address `DDDD:BB:DD.F`.
    BadDevice(String),
    /// A PCI function listed twice in one partition's `devices`.
    DeviceRepeated(String),
    /// A PCI function already given to another partition.
    DeviceShared {
        device: String,
        other: String,
    },
    /// A PCI function the machine's device tree does not have, or cannot be
    /// given away (a bridge, the hypervisor's own console); the text says why.
    DeviceUnusable {
        device: String,
        why: &'static str,
    },
    /// A sub-table (`[[partition.disk]]`, `[[partition.net]]`, the header) not
    /// below a `[[partition]]`.
    SubTableOutsidePartition(String),
    /// More than [`MAX_DISKS`] disks in one partition.
    TooManyDisks,
    /// `console_input` names no partition.
    NoSuchPartition(String),
    /// `console_input` names a partition whose console is off.
    NoConsole(String),
    /// A `cpus` entry beyond the machine's hardware threads.
    CpuMissing {
        cpu: u32,
        threads: u32,
    },
    /// Partitions plus [`HYPERVISOR_RESERVE`] exceed the machine's memory.
    OutOfMemory {
        needed: u64,
        machine: u64,
    },
    /// An image the partition names is not there.
    NoSuchFile(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax(what) => f.write_str(what),
            ErrorKind::Dtb(what) => write!(f, "device tree: {what}"),
            ErrorKind::UnknownTable(header) => {
                write!(
                    f,
                    "unknown table {header} (want [machine], [[partition]], [[partition.net]] or [[partition.disk]])"
                )
            }
            ErrorKind::DuplicateTable => f.write_str("[machine] appears twice"),
            ErrorKind::KeyOutsideTable => {
                f.write_str("key before any table (put it under [machine] or [[partition]])")
            }
            ErrorKind::UnknownKey => f.write_str("unknown key"),
            ErrorKind::DuplicateKey => f.write_str("key given twice in this table"),
            ErrorKind::WrongType { expected, found } => {
                write!(f, "must be {expected}, not {found}")
            }
            ErrorKind::Missing => f.write_str("required but missing"),
            ErrorKind::Invalid(why) => f.write_str(why),
            ErrorKind::CpuCount { vcpus, cpus } => write!(
                f,
                "lists {cpus} hardware thread(s) but vcpus = {vcpus} (one thread per vCPU)"
            ),
            ErrorKind::CpuRepeated(cpu) => write!(f, "hardware thread {cpu} is listed twice"),
            ErrorKind::CpuShared { cpu, other } => write!(
                f,
                "hardware thread {cpu} is already used by partition \"{other}\""
            ),
            ErrorKind::DuplicateName => f.write_str("another partition has the same name"),
            ErrorKind::NoPartitions => f.write_str("no [[partition]] table"),
            ErrorKind::BadDevice(d) => write!(
                f,
                "\"{d}\" is not a PCI address (want \"DDDD:BB:DD.F\", e.g. \"0001:01:00.0\")"
            ),
            ErrorKind::DeviceRepeated(d) => write!(f, "PCI function {d} is listed twice"),
            ErrorKind::DeviceShared { device, other } => write!(
                f,
                "PCI function {device} is already given to partition \"{other}\""
            ),
            ErrorKind::DeviceUnusable { device, why } => {
                write!(f, "PCI function {device} cannot be passed through: {why}")
            }
            ErrorKind::SubTableOutsidePartition(header) => {
                write!(f, "{header} must follow the [[partition]] it belongs to")
            }
            ErrorKind::TooManyDisks => write!(f, "more than {MAX_DISKS} disks in one partition"),
            ErrorKind::NoSuchPartition(name) => write!(f, "no partition is called \"{name}\""),
            ErrorKind::NoConsole(name) => {
                write!(f, "partition \"{name}\" has console = false")
            }
            ErrorKind::CpuMissing { cpu, threads } => write!(
                f,
                "hardware thread {cpu} does not exist (the machine has {threads}: 0 to {})",
                threads.saturating_sub(1)
            ),
            ErrorKind::OutOfMemory { needed, machine } => write!(
                f,
                "partitions need {} MiB plus {} MiB for the hypervisor, the machine has {} MiB",
                needed >> 20,
                HYPERVISOR_RESERVE >> 20,
                machine >> 20
            ),
            ErrorKind::NoSuchFile(path) => write!(f, "no file \"{path}\""),
        }
    }
}

/// An error in a manifest: where (line and column, partition, field) and what.
///
/// Displays as `manifest line 12, column 10, partition "linux", field "memory":
/// not a multiple of 2 MiB`, leaving out whichever is unknown (a manifest read
/// from a device tree has no lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line number, when the error belongs to one place in the text.
    pub line: Option<u32>,
    /// 1-based column (in characters) on that line, when known.
    pub column: Option<u32>,
    /// The `name` of the `[[partition]]` table the error is in, when known.
    pub partition: Option<String>,
    /// The key the error is about.
    pub field: Option<String>,
    pub kind: ErrorKind,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("manifest")?;
        let mut sep = " ";
        if let Some(line) = self.line {
            write!(f, "{sep}line {line}")?;
            sep = ", ";
        }
        if let Some(column) = self.column {
            write!(f, "{sep}column {column}")?;
            sep = ", ";
        }
        if let Some(p) = &self.partition {
            write!(f, "{sep}partition \"{p}\"")?;
            sep = ", ";
        }
        if let Some(field) = &self.field {
            write!(f, "{sep}field \"{field}\"")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl core::error::Error for ManifestError {}

impl ManifestError {
    pub fn new(kind: ErrorKind) -> Self {
        ManifestError {
            line: None,
            column: None,
            partition: None,
            field: None,
            kind,
        }
    }

    /// The error is at `loc` (a no-op for [`Loc::NONE`]).
    pub fn at(mut self, loc: Loc) -> Self {
        self.line = loc.line;
        self.column = loc.column;
        self
    }

    pub fn in_partition(mut self, name: Option<&str>) -> Self {
        self.partition = name.map(String::from);
        self
    }

    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

/// Where a table or value was written: 1-based line and column (in
/// characters), both `None` for a manifest read from a device tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loc {
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl Loc {
    /// Nowhere in particular.
    pub const NONE: Loc = Loc {
        line: None,
        column: None,
    };

    /// Line and column, each saturating at `u32::MAX`.
    pub fn at(line: usize, column: usize) -> Loc {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Loc {
            line: Some(clamp(line)),
            column: Some(clamp(column)),
        }
    }
}

/// A value as a front end read it, before [`from_tables`] gives it a meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    /// An unsigned integer (a front end refuses or reports negative ones as
    /// [`Value::Other`]).
    Int(u64),
    Bool(bool),
    /// An array of unsigned integers; an empty array is this unless its key's
    /// type ([`key_type`]) is a string list.
    Ints(Vec<u64>),
    /// An array of strings.
    Strs(Vec<String>),
    /// A value of a kind no field takes (a float, a date, a mixed array...):
    /// the words for it, for the error.
    Other(&'static str),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Ints(_) => "an array of integers",
            Value::Strs(_) => "an array of strings",
            Value::Other(what) => what,
        }
    }
}

/// The canonical type of a key: the one [`Manifest::to_tables`] writes and the
/// device tree stores (see [`dtb`] for the encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Bool,
    Ints,
    Strs,
}

/// One `key = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// Where the value was written.
    pub at: Loc,
}

/// The kinds of table. A front end gives the tables in order: `[machine]` (at
/// most one) and the `[[partition]]` tables; a sub-table (one whose
/// [`parent`](TableKind::parent) is set) follows the table it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Machine,
    Partition,
    /// `[[partition.net]]`: a virtual Ethernet adapter of the partition before it.
    Net,
    /// `[[partition.disk]]`: a disk of the partition before it.
    Disk,
}

impl TableKind {
    pub const ALL: [TableKind; 4] = [
        TableKind::Machine,
        TableKind::Partition,
        TableKind::Net,
        TableKind::Disk,
    ];

    /// The TOML header's dotted name (`[machine]`, `[[partition]]`); the last
    /// part is also the device-tree node's name.
    pub const fn path(self) -> &'static str {
        match self {
            TableKind::Machine => "machine",
            TableKind::Partition => "partition",
            TableKind::Net => "partition.net",
            TableKind::Disk => "partition.disk",
        }
    }

    /// The last part of [`path`](Self::path): a sub-table's key in its table,
    /// the device-tree node's name.
    pub fn leaf(self) -> &'static str {
        let path = self.path();
        path.rsplit('.').next().unwrap_or(path)
    }

    /// `[[...]]`: the table may appear any number of times (a device-tree node
    /// with a unit address, its index).
    pub const fn many(self) -> bool {
        match self {
            TableKind::Machine => false,
            TableKind::Partition | TableKind::Net | TableKind::Disk => true,
        }
    }

    /// The table a sub-table belongs to.
    pub const fn parent(self) -> Option<TableKind> {
        match self {
            TableKind::Machine | TableKind::Partition => None,
            TableKind::Net | TableKind::Disk => Some(TableKind::Partition),
        }
    }

    /// The kind whose [`path`](Self::path) is `path`.
    pub fn from_path(path: &str) -> Option<TableKind> {
        Self::ALL.into_iter().find(|k| k.path() == path)
    }

    /// The TOML header: `[machine]`, `[[partition]]`.
    pub fn header(self) -> String {
        if self.many() {
            format!("[[{}]]", self.path())
        } else {
            format!("[{}]", self.path())
        }
    }
}

/// One table and its entries in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    /// Where its header was written.
    pub at: Loc,
    pub entries: Vec<Entry>,
}

impl Table {
    /// An empty table of `kind`, written nowhere.
    pub fn new(kind: TableKind) -> Self {
        Table {
            kind,
            at: Loc::NONE,
            entries: Vec::new(),
        }
    }

    /// Appends `key = value`, written nowhere.
    pub fn push(&mut self, key: &str, value: Value) {
        self.entries.push(Entry {
            key: key.to_string(),
            value,
            at: Loc::NONE,
        });
    }

    /// The `name` string of a partition table, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.entries
            .iter()
            .find_map(|e| match (&e.key[..], &e.value) {
                ("name", Value::Str(s)) => Some(s.as_str()),
                _ => None,
            })
    }

    /// The partition name errors in this table are labelled with (a
    /// sub-table's is its partition's, which [`from_tables`] knows).
    pub fn label(&self) -> Option<&str> {
        match self.kind {
            TableKind::Partition => self.name(),
            TableKind::Machine | TableKind::Net | TableKind::Disk => None,
        }
    }
}

/// Reads a memory size: bytes, or a decimal number with a K, M, G or T suffix.
fn parse_size(text: &str) -> Result<u64, &'static str> {
    const BAD: &str = "not a size (want bytes or a number with K, M or G, e.g. \"512M\")";
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(end);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(BAD);
    }
    let shift = match suffix {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(BAD),
    };
    let n: u64 = digits.parse().map_err(|_| "size too large")?;
    if n.leading_zeros() < shift {
        return Err("size too large");
    }
    Ok(n << shift)
}

fn check_memory(bytes: u64) -> Result<u64, &'static str> {
    if bytes == 0 {
        Err("must not be zero")
    } else if !bytes.is_multiple_of(MEMORY_GRANULE) {
        Err("not a multiple of 2 MiB")
    } else {
        Ok(bytes)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn wrong_type(expected: &'static str, v: &Value) -> ErrorKind {
    ErrorKind::WrongType {
        expected,
        found: v.type_name(),
    }
}

/// A string without control characters other than tab (the device tree
/// cannot hold a NUL, and a console line should not hold an escape).
fn want_str(v: &Value) -> Result<&str, ErrorKind> {
    match v {
        Value::Str(s) if s.chars().any(|c| c.is_control() && c != '\t') => Err(ErrorKind::Invalid(
            "control characters (other than tab) are not allowed",
        )),
        Value::Str(s) => Ok(s),
        _ => Err(wrong_type("a string", v)),
    }
}

fn want_path(v: &Value) -> Result<String, ErrorKind> {
    let s = want_str(v)?;
    if s.is_empty() {
        return Err(ErrorKind::Invalid("must not be empty"));
    }
    Ok(s.to_string())
}

fn want_bool(v: &Value) -> Result<bool, ErrorKind> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type("true or false", v)),
    }
}

/// A partition with where its fields came from.
struct Parsed {
    spec: PartitionSpec,
    name_line: Loc,
    cpus_line: Loc,
    devices_line: Loc,
}

/// The fields of one `[[partition]]` table as they are read.
#[derive(Default)]
struct Builder {
    name: Option<(String, Loc)>,
    memory: Option<u64>,
    vcpus: Option<u32>,
    cpus: Option<(Vec<u32>, Loc)>,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: String,
    console: Option<bool>,
    expect: Option<String>,
    secure: bool,
    nested: bool,
    tpm: bool,
    mmu: MmuMode,
    disks: Vec<DiskSpec>,
    devices: Option<(Vec<crate::pci::PciAddress>, Loc)>,
}

impl Builder {
    /// Takes one `key = value` of the table (a key [`key_type`] must know).
    fn set(&mut self, e: &Entry) -> Result<(), ErrorKind> {
        let v = &e.value;
        match e.key.as_str() {
            "name" => {
                let s = want_str(v)?;
                if !valid_name(s) {
                    return Err(ErrorKind::Invalid(
                        "must be 1 to 31 characters from a-z, 0-9, `_` and `-`",
                    ));
                }
                self.name = Some((s.to_string(), e.at));
            }
            "memory" => {
                let bytes = match v {
                    Value::Int(n) => *n,
                    Value::Str(s) => parse_size(s).map_err(ErrorKind::Invalid)?,
                    _ => return Err(wrong_type("a size (\"512M\") or bytes", v)),
                };
                self.memory = Some(check_memory(bytes).map_err(ErrorKind::Invalid)?);
            }
            "vcpus" => {
                let Value::Int(n) = v else {
                    return Err(wrong_type("an integer", v));
                };
                match u32::try_from(*n) {
                    Ok(n) if (1..=MAX_VCPUS).contains(&n) => self.vcpus = Some(n),
                    _ => return Err(ErrorKind::Invalid("must be 1 to 64")),
                }
            }
            "cpus" => {
                let Value::Ints(list) = v else {
                    return Err(wrong_type("an array of integers", v));
                };
                let mut cpus: Vec<u32> = Vec::with_capacity(list.len());
                for &c in list {
                    let c = u32::try_from(c)
                        .map_err(|_| ErrorKind::Invalid("hardware thread number too large"))?;
                    if cpus.contains(&c) {
                        return Err(ErrorKind::CpuRepeated(c));
                    }
                    cpus.push(c);
                }
                self.cpus = Some((cpus, e.at));
            }
            "kernel" => self.kernel = Some(want_path(v)?),
            "initrd" => self.initrd = Some(want_path(v)?),
            "cmdline" => self.cmdline = want_str(v)?.to_string(),
            "console" => self.console = Some(want_bool(v)?),
            "expect" => self.expect = Some(want_path(v)?),
            "secure" => self.secure = want_bool(v)?,
            "nested" => self.nested = want_bool(v)?,
            "tpm" => self.tpm = want_bool(v)?,
            "mmu" => {
                self.mmu = match want_str(v)? {
                    "radix" => MmuMode::Radix,
                    "hash" => MmuMode::Hash,
                    "any" => MmuMode::Any,
                    _ => return Err(ErrorKind::Invalid("must be \"radix\", \"hash\" or \"any\"")),
                }
            }
            "devices" => {
                let list: &[String] = match v {
                    Value::Strs(l) => l,
                    Value::Ints(l) if l.is_empty() => &[],
                    _ => return Err(wrong_type("an array of \"DDDD:BB:DD.F\" strings", v)),
                };
                let mut devices: Vec<crate::pci::PciAddress> = Vec::with_capacity(list.len());
                for d in list {
                    let a = crate::pci::PciAddress::parse(d)
                        .ok_or_else(|| ErrorKind::BadDevice(d.clone()))?;
                    if devices.contains(&a) {
                        return Err(ErrorKind::DeviceRepeated(a.to_string()));
                    }
                    devices.push(a);
                }
                self.devices = Some((devices, e.at));
            }
            _ => return Err(ErrorKind::UnknownKey),
        }
        Ok(())
    }
}

/// The canonical type of `key` in a table of `kind` ([`ValueType`]), `None`
/// for a key the table does not have. Every key [`from_tables`] takes is here:
/// the device-tree decoder reads a property by it and refuses one it has not.
pub fn key_type(kind: TableKind, key: &str) -> Option<ValueType> {
    use ValueType::{Bool, Int, Ints, Str, Strs};
    Some(match (kind, key) {
        (TableKind::Machine, "power_off_when_idle") => Bool,
        (TableKind::Machine, "console_input") => Str,
        (TableKind::Partition, "name" | "kernel" | "initrd" | "cmdline" | "expect" | "mmu") => Str,
        (TableKind::Partition, "memory" | "vcpus") => Int,
        (TableKind::Partition, "cpus") => Ints,
        (TableKind::Partition, "console" | "secure" | "nested" | "tpm") => Bool,
        (TableKind::Partition, "devices") => Strs,
        (TableKind::Net, "mac") => Str,
        (TableKind::Net, "vlan") => Int,
        (TableKind::Net, "trunk") => Bool,
        (TableKind::Disk, "image") => Str,
        (TableKind::Disk, "readonly") => Bool,
        _ => return None,
    })
}

/// One `[[partition.disk]]` table.
fn disk_from(table: &Table, label: Option<&str>) -> Result<DiskSpec, ManifestError> {
    let mut image = None;
    let mut readonly = false;
    for e in &table.entries {
        let r = match e.key.as_str() {
            "image" => want_path(&e.value).map(|p| image = Some(p)),
            "readonly" => want_bool(&e.value).map(|b| readonly = b),
            _ => Err(ErrorKind::UnknownKey),
        };
        r.map_err(|kind| {
            ManifestError::new(kind)
                .at(e.at)
                .in_partition(label)
                .field(&e.key)
        })?;
    }
    let image = image.ok_or_else(|| {
        ManifestError::new(ErrorKind::Missing)
            .at(table.at)
            .in_partition(label)
            .field("image")
    })?;
    Ok(DiskSpec { image, readonly })
}

fn partition_from(table: &Table, disks: &[&Table]) -> Result<Parsed, ManifestError> {
    let label = table.name();
    let mut b = Builder::default();
    for d in disks {
        if b.disks.len() == MAX_DISKS {
            return Err(ManifestError::new(ErrorKind::TooManyDisks)
                .at(d.at)
                .in_partition(label));
        }
        b.disks.push(disk_from(d, label)?);
    }
    for e in &table.entries {
        b.set(e).map_err(|kind| {
            ManifestError::new(kind)
                .at(e.at)
                .in_partition(label)
                .field(&e.key)
        })?;
    }
    let missing = |field: &str| {
        ManifestError::new(ErrorKind::Missing)
            .at(table.at)
            .in_partition(label)
            .field(field)
    };
    let (name, name_line) = b.name.ok_or_else(|| missing("name"))?;
    let memory = b.memory.ok_or_else(|| missing("memory"))?;
    let vcpus = b.vcpus.ok_or_else(|| missing("vcpus"))?;
    let (cpus, cpus_line) = b.cpus.ok_or_else(|| missing("cpus"))?;
    let kernel = b.kernel.ok_or_else(|| missing("kernel"))?;
    let (devices, devices_line) = b.devices.unwrap_or_default();
    if !devices.is_empty() && !memory.is_multiple_of(DMA_GRANULE) {
        return Err(ManifestError::new(ErrorKind::Invalid(
            "a partition with devices needs memory in whole 16 MiB (its DMA window)",
        ))
        .at(devices_line)
        .in_partition(Some(&name))
        .field("memory"));
    }
    if cpus.len() != vcpus as usize {
        return Err(ManifestError::new(ErrorKind::CpuCount {
            vcpus,
            cpus: cpus.len(),
        })
        .at(cpus_line)
        .in_partition(Some(&name))
        .field("cpus"));
    }
    Ok(Parsed {
        spec: PartitionSpec {
            name,
            memory,
            vcpus,
            cpus,
            kernel,
            initrd: b.initrd,
            cmdline: b.cmdline,
            console: b.console.unwrap_or(true),
            expect: b.expect,
            secure: b.secure,
            nested: b.nested,
            tpm: b.tpm,
            mmu: b.mmu,
            devices,
            net: Vec::new(),
            disks: b.disks,
        },
        name_line,
        cpus_line,
        devices_line,
    })
}

/// One `[[partition.net]]` table of partition `p` (its adapters so far in
/// `p.net`).
fn net_from(table: &Table, p: &PartitionSpec) -> Result<NetSpec, ManifestError> {
    let err = |kind, line: Loc, field: &str| {
        ManifestError::new(kind)
            .at(line)
            .in_partition(Some(&p.name))
            .field(field)
    };
    if p.net.len() >= MAX_NETS {
        return Err(ManifestError::new(ErrorKind::Invalid(
            "at most 8 [[partition.net]] per partition",
        ))
        .at(table.at)
        .in_partition(Some(&p.name)));
    }
    let mut net = NetSpec {
        mac: generated_mac(&p.name, p.net.len()),
        vlan: 1,
        trunk: false,
    };
    for e in &table.entries {
        let v = &e.value;
        match e.key.as_str() {
            "mac" => {
                let s = want_str(v).map_err(|k| err(k, e.at, "mac"))?;
                let mac = parse_mac(s).ok_or_else(|| {
                    err(
                        ErrorKind::Invalid("not a MAC address (want \"02:00:00:00:00:01\")"),
                        e.at,
                        "mac",
                    )
                })?;
                if mac[0] & 1 != 0 || mac == [0; 6] {
                    return Err(err(
                        ErrorKind::Invalid("must be a unicast address, not zero"),
                        e.at,
                        "mac",
                    ));
                }
                net.mac = mac;
            }
            "vlan" => {
                let Value::Int(n) = v else {
                    return Err(err(wrong_type("an integer", v), e.at, "vlan"));
                };
                match u16::try_from(*n) {
                    Ok(n) if (1..=VLAN_MAX).contains(&n) => net.vlan = n,
                    _ => return Err(err(ErrorKind::Invalid("must be 1 to 4094"), e.at, "vlan")),
                }
            }
            "trunk" => net.trunk = want_bool(v).map_err(|k| err(k, e.at, "trunk"))?,
            _ => return Err(err(ErrorKind::UnknownKey, e.at, &e.key)),
        }
    }
    Ok(net)
}

/// Checks what a front end must guarantee but a hostile one might not: at most
/// one table of a kind that is not [`many`](TableKind::many), each sub-table
/// after its parent (or a sibling), no key twice in a table.
fn check_structure(tables: &[Table]) -> Result<(), ManifestError> {
    for (i, t) in tables.iter().enumerate() {
        let err = |kind| ManifestError::new(kind).at(t.at);
        if !t.kind.many() && tables[..i].iter().any(|u| u.kind == t.kind) {
            return Err(err(ErrorKind::DuplicateTable));
        }
        if let Some(parent) = t.kind.parent() {
            let placed = i
                .checked_sub(1)
                .and_then(|j| tables.get(j))
                .is_some_and(|u| u.kind == parent || u.kind.parent() == Some(parent));
            if !placed {
                return Err(err(ErrorKind::SubTableOutsidePartition(t.kind.header())));
            }
        }
        for (j, e) in t.entries.iter().enumerate() {
            if t.entries[..j].iter().any(|f| f.key == e.key) {
                return Err(ManifestError::new(ErrorKind::DuplicateKey)
                    .at(e.at)
                    .in_partition(t.label())
                    .field(&e.key));
            }
        }
    }
    Ok(())
}

/// Validates a manifest given as tables (everything that does not depend on the
/// machine; see [`check_against_machine`] for the rest).
pub fn from_tables(tables: &[Table]) -> Result<Manifest, ManifestError> {
    check_structure(tables)?;

    let mut machine = MachineSpec::default();
    let mut console_input_line = None;
    if let Some(table) = tables.iter().find(|t| t.kind == TableKind::Machine) {
        for e in &table.entries {
            let err = |kind| ManifestError::new(kind).at(e.at).field(&e.key);
            match e.key.as_str() {
                "power_off_when_idle" => {
                    machine.power_off_when_idle = want_bool(&e.value).map_err(err)?
                }
                "console_input" => {
                    machine.console_input = Some(want_str(&e.value).map_err(err)?.to_string());
                    console_input_line = Some(e.at);
                }
                _ => return Err(err(ErrorKind::UnknownKey)),
            }
        }
    }

    let mut partitions: Vec<PartitionSpec> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        if table.kind == TableKind::Net {
            // check_structure put a partition before it.
            if let Some(p) = partitions.last_mut() {
                let net = net_from(table, p)?;
                p.net.push(net);
            }
            continue;
        }
        if table.kind != TableKind::Partition {
            continue;
        }
        // Its [[partition.disk]]s: among the sub-tables right after it (its
        // [[partition.net]]s are taken above).
        let disks: Vec<&Table> = tables[i + 1..]
            .iter()
            .take_while(|t| t.kind.parent() == Some(TableKind::Partition))
            .filter(|t| t.kind == TableKind::Disk)
            .collect();
        let parsed = partition_from(table, &disks)?;
        let p = &parsed.spec;
        let err = |kind, line, field| {
            ManifestError::new(kind)
                .at(line)
                .in_partition(Some(&p.name))
                .field(field)
        };
        if partitions.iter().any(|q| q.name == p.name) {
            return Err(err(ErrorKind::DuplicateName, parsed.name_line, "name"));
        }
        for &cpu in &p.cpus {
            if let Some(other) = partitions.iter().find(|q| q.cpus.contains(&cpu)) {
                let kind = ErrorKind::CpuShared {
                    cpu,
                    other: other.name.clone(),
                };
                return Err(err(kind, parsed.cpus_line, "cpus"));
            }
        }
        for d in &p.devices {
            if let Some(other) = partitions.iter().find(|q| q.devices.contains(d)) {
                let kind = ErrorKind::DeviceShared {
                    device: d.to_string(),
                    other: other.name.clone(),
                };
                return Err(err(kind, parsed.devices_line, "devices"));
            }
        }
        partitions.push(parsed.spec);
    }
    if partitions.is_empty() {
        return Err(ManifestError::new(ErrorKind::NoPartitions));
    }
    // Every adapter's MAC is unique on the machine (given or generated).
    for (i, p) in partitions.iter().enumerate() {
        for (j, n) in p.net.iter().enumerate() {
            let twice = partitions.iter().enumerate().any(|(k, q)| {
                q.net
                    .iter()
                    .enumerate()
                    .any(|(l, m)| (k, l) != (i, j) && m.mac == n.mac)
            });
            if twice {
                return Err(ManifestError::new(ErrorKind::Invalid(
                    "MAC address used by another [[partition.net]]",
                ))
                .in_partition(Some(&p.name))
                .field("mac"));
            }
        }
    }

    match (&machine.console_input, console_input_line) {
        (Some(name), Some(line)) => {
            let err = |kind| ManifestError::new(kind).at(line).field("console_input");
            match partitions.iter().find(|p| &p.name == name) {
                None => return Err(err(ErrorKind::NoSuchPartition(name.clone()))),
                Some(p) if !p.console => return Err(err(ErrorKind::NoConsole(name.clone()))),
                Some(_) => {}
            }
        }
        _ => {
            machine.console_input = partitions
                .iter()
                .find(|p| p.console)
                .map(|p| p.name.clone());
        }
    }

    Ok(Manifest {
        machine,
        partitions,
    })
}

/// Decodes and validates a manifest in a device tree ([`dtb`]): what the
/// hypervisor reads from the boot bundle.
pub fn from_dtb(blob: &[u8]) -> Result<Manifest, ManifestError> {
    from_tables(&dtb::decode(blob)?)
}

/// Checks a valid manifest against the machine it is to run on: every `cpus`
/// entry below `threads`, all partitions' memory plus [`HYPERVISOR_RESERVE`]
/// within `machine_memory`, and every `kernel` and `initrd` present according to
/// `has_file` (given the path as written in the manifest).
pub fn check_against_machine(
    manifest: &Manifest,
    machine_memory: u64,
    threads: u32,
    has_file: impl Fn(&str) -> bool,
) -> Result<(), ManifestError> {
    let mut total: u64 = 0;
    for p in &manifest.partitions {
        let err = |kind, field| {
            ManifestError::new(kind)
                .in_partition(Some(&p.name))
                .field(field)
        };
        if let Some(&cpu) = p.cpus.iter().find(|&&c| c >= threads) {
            return Err(err(ErrorKind::CpuMissing { cpu, threads }, "cpus"));
        }
        let images = core::iter::once(("kernel", &p.kernel))
            .chain(p.initrd.as_ref().map(|i| ("initrd", i)))
            .chain(p.disks.iter().map(|d| ("image", &d.image)));
        for (field, path) in images {
            if !has_file(path) {
                return Err(err(ErrorKind::NoSuchFile(path.clone()), field));
            }
        }
        total = total.saturating_add(p.memory);
        let fits = total
            .checked_add(HYPERVISOR_RESERVE)
            .is_some_and(|n| n <= machine_memory);
        if !fits {
            let needed = manifest.total_memory().unwrap_or(u64::MAX);
            let kind = ErrorKind::OutOfMemory {
                needed,
                machine: machine_memory,
            };
            return Err(err(kind, "memory"));
        }
    }
    Ok(())
}

/// What the machine's device tree says about a function a partition names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFunction {
    /// An endpoint (type 0 header) nobody else uses.
    Free,
    /// Not in skiboot's device tree.
    Absent,
    /// A bridge or root port: it stays with the hypervisor.
    Bridge,
    /// The hypervisor drives it itself (the virtio console).
    Hypervisor,
}

/// Checks every `devices` entry against the machine (`host` answers from
/// skiboot's device tree at boot, from the QEMU command line in xtask).
pub fn check_devices(
    manifest: &Manifest,
    host: impl Fn(crate::pci::PciAddress) -> HostFunction,
) -> Result<(), ManifestError> {
    for p in &manifest.partitions {
        for d in &p.devices {
            let why = match host(*d) {
                HostFunction::Free => continue,
                HostFunction::Absent => "the machine has no such function",
                HostFunction::Bridge => "it is a bridge (only endpoints are passed through)",
                HostFunction::Hypervisor => "the hypervisor uses it",
            };
            return Err(ManifestError::new(ErrorKind::DeviceUnusable {
                device: d.to_string(),
                why,
            })
            .in_partition(Some(&p.name))
            .field("devices"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Value::{Bool, Int, Ints, Strs};
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    /// A table whose header is at line `line` and whose entries follow it one a
    /// line, each value at column 10 (as a TOML front end would report them).
    fn table(kind: TableKind, line: usize, entries: Vec<(&str, Value)>) -> Table {
        Table {
            kind,
            at: Loc::at(line, 1),
            entries: entries
                .into_iter()
                .enumerate()
                .map(|(i, (key, value))| Entry {
                    key: key.into(),
                    value,
                    at: Loc::at(line + 1 + i, 10),
                })
                .collect(),
        }
    }

    /// The example of docs/manifest.md: `[machine]` at line 2, partitions at
    /// lines 6 and 17.
    fn example() -> Vec<Table> {
        vec![
            table(
                TableKind::Machine,
                2,
                vec![
                    ("power_off_when_idle", Bool(true)),
                    ("console_input", s("linux")),
                ],
            ),
            table(
                TableKind::Partition,
                6,
                vec![
                    ("name", s("linux")),
                    ("memory", s("512M")),
                    ("vcpus", Int(2)),
                    ("cpus", Ints(vec![1, 2])),
                    ("kernel", s("vmlinux")),
                    ("initrd", s("initrd.cpio")),
                    (
                        "cmdline",
                        s("console=hvc0 msg=\"hi\" path=C:\\x\t# not a comment"),
                    ),
                    ("console", Bool(true)),
                    ("expect", s("GUEST-PASS")),
                ],
            ),
            table(
                TableKind::Partition,
                17,
                vec![
                    ("name", s("hcall-test")),
                    ("memory", Int(0x400_0000)),
                    ("vcpus", Int(1)),
                    ("cpus", Ints(vec![0])),
                    ("kernel", s("guest-hcall.elf")),
                ],
            ),
        ]
    }

    /// A valid one-partition manifest, its table at line 1 (`name` at line 2,
    /// `memory` 3, `vcpus` 4, `cpus` 5, `kernel` 6), `extra` entries from line 7.
    fn one(extra: Vec<(&str, Value)>) -> Vec<Table> {
        let mut entries = vec![
            ("name", s("a")),
            ("memory", s("64M")),
            ("vcpus", Int(1)),
            ("cpus", Ints(vec![0])),
            ("kernel", s("k")),
        ];
        entries.extend(extra);
        vec![table(TableKind::Partition, 1, entries)]
    }

    /// [`one`] with `key`'s value replaced.
    fn with(key: &str, value: Value) -> Vec<Table> {
        let mut t = one(vec![]);
        for e in &mut t[0].entries {
            if e.key == key {
                e.value = value.clone();
            }
        }
        t
    }

    /// A second partition `name` on thread `cpu`, its table at line `line`.
    fn second(name: &str, cpu: u64, line: usize) -> Table {
        table(
            TableKind::Partition,
            line,
            vec![
                ("name", s(name)),
                ("memory", s("2M")),
                ("vcpus", Int(1)),
                ("cpus", Ints(vec![cpu])),
                ("kernel", s("k")),
            ],
        )
    }

    fn err(tables: &[Table]) -> ManifestError {
        match from_tables(tables) {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => e,
        }
    }

    fn assert_err(
        tables: &[Table],
        line: Option<u32>,
        partition: Option<&str>,
        field: Option<&str>,
        kind: ErrorKind,
    ) {
        let e = err(tables);
        assert_eq!(
            (e.line, e.partition.as_deref(), e.field.as_deref(), &e.kind),
            (line, partition, field, &kind),
            "{tables:?}\n=> {e}"
        );
    }

    #[test]
    fn example_validates() {
        let m = from_tables(&example()).unwrap();
        assert_eq!(
            m.machine,
            MachineSpec {
                power_off_when_idle: true,
                console_input: Some("linux".into()),
            }
        );
        assert_eq!(
            m.partitions,
            vec![
                PartitionSpec {
                    name: "linux".into(),
                    memory: 512 << 20,
                    vcpus: 2,
                    cpus: vec![1, 2],
                    kernel: "vmlinux".into(),
                    initrd: Some("initrd.cpio".into()),
                    cmdline: "console=hvc0 msg=\"hi\" path=C:\\x\t# not a comment".into(),
                    console: true,
                    expect: Some("GUEST-PASS".into()),
                    secure: false,
                    nested: false,
                    tpm: false,
                    mmu: MmuMode::Radix,
                    devices: Vec::new(),
                    net: Vec::new(),
                    disks: Vec::new(),
                },
                PartitionSpec {
                    name: "hcall-test".into(),
                    memory: 64 << 20,
                    vcpus: 1,
                    cpus: vec![0],
                    kernel: "guest-hcall.elf".into(),
                    initrd: None,
                    cmdline: String::new(),
                    console: true,
                    expect: None,
                    secure: false,
                    nested: false,
                    tpm: false,
                    mmu: MmuMode::Radix,
                    devices: Vec::new(),
                    net: Vec::new(),
                    disks: Vec::new(),
                },
            ]
        );
        assert_eq!(m.total_memory(), Some(576 << 20));
        assert_eq!(m.max_cpu(), Some(2));
        assert_eq!(m.partition("hcall-test").map(|p| p.vcpus), Some(1));
    }

    #[test]
    fn defaults() {
        let m = from_tables(&one(vec![])).unwrap();
        assert!(m.machine.power_off_when_idle);
        assert_eq!(m.machine.console_input.as_deref(), Some("a"));
        let p = &m.partitions[0];
        assert!(p.console && p.cmdline.is_empty() && p.initrd.is_none() && p.expect.is_none());
        assert!(!p.secure && !p.nested && p.mmu == MmuMode::Radix);

        // Default console input: the first partition with a console.
        let mut t = one(vec![("console", Bool(false))]);
        t.push(second("b", 1, 8));
        let m = from_tables(&t).unwrap();
        assert_eq!(m.machine.console_input.as_deref(), Some("b"));
        let m = from_tables(&one(vec![("console", Bool(false))])).unwrap();
        assert_eq!(m.machine.console_input, None);
    }

    #[test]
    fn sizes() {
        for (size, bytes) in [
            (s("1G"), 1u64 << 30),
            (s("4096k"), 4 << 20),
            (s("2m"), 2 << 20),
            (s("2097152"), 2 << 20),
            (s("1T"), 1 << 40),
            (Int(2 << 20), 2 << 20),
        ] {
            let m = from_tables(&with("memory", size.clone())).unwrap();
            assert_eq!(m.partitions[0].memory, bytes, "{size:?}");
        }
    }

    #[test]
    fn display_names_place_partition_and_field() {
        let mut t = example();
        t[1].entries[1].value = s("513M");
        assert_eq!(
            err(&t).to_string(),
            "manifest line 8, column 10, partition \"linux\", field \"memory\": not a multiple of 2 MiB"
        );
        // The partition is named even when `name` comes after the bad field.
        let t = vec![table(
            TableKind::Partition,
            1,
            vec![("memory", s("3M")), ("name", s("late"))],
        )];
        assert_eq!(
            err(&t).to_string(),
            "manifest line 2, column 10, partition \"late\", field \"memory\": not a multiple of 2 MiB"
        );
        assert_eq!(err(&[]).to_string(), "manifest: no [[partition]] table");
        let e = ManifestError::new(ErrorKind::Missing).field("kernel");
        assert_eq!(
            e.to_string(),
            "manifest field \"kernel\": required but missing"
        );
        let e = ManifestError::new(ErrorKind::Dtb("truncated"));
        assert_eq!(e.to_string(), "manifest: device tree: truncated");
    }

    #[test]
    fn structure_errors() {
        let machine = |line, entries| table(TableKind::Machine, line, entries);
        let mut t = one(vec![]);
        t.insert(0, machine(1, vec![]));
        t.insert(1, machine(2, vec![]));
        assert_err(&t, Some(2), None, None, ErrorKind::DuplicateTable);
        assert_err(
            &[machine(1, vec![("foo", Int(1))])],
            Some(2),
            None,
            Some("foo"),
            ErrorKind::UnknownKey,
        );
        assert_err(
            &[machine(1, vec![("power_off_when_idle", Int(1))])],
            Some(2),
            None,
            Some("power_off_when_idle"),
            ErrorKind::WrongType {
                expected: "true or false",
                found: "an integer",
            },
        );
        assert_err(
            &one(vec![("colour", Int(1))]),
            Some(7),
            Some("a"),
            Some("colour"),
            ErrorKind::UnknownKey,
        );
        assert_err(
            &one(vec![("vcpus", Int(1))]),
            Some(7),
            Some("a"),
            Some("vcpus"),
            ErrorKind::DuplicateKey,
        );
        assert_err(
            &[machine(1, vec![])],
            None,
            None,
            None,
            ErrorKind::NoPartitions,
        );
        // A value no field takes is named in the error.
        assert_err(
            &with("vcpus", Value::Other("a float")),
            Some(4),
            Some("a"),
            Some("vcpus"),
            ErrorKind::WrongType {
                expected: "an integer",
                found: "a float",
            },
        );
    }

    #[test]
    fn field_errors() {
        let invalid = ErrorKind::Invalid;
        let name_rule = "must be 1 to 31 characters from a-z, 0-9, `_` and `-`";
        let bad_size = "not a size (want bytes or a number with K, M or G, e.g. \"512M\")";
        let cases: Vec<(Vec<Table>, u32, &str, ErrorKind)> = vec![
            (with("name", s("A")), 2, "name", invalid(name_rule)),
            (with("name", s("")), 2, "name", invalid(name_rule)),
            (with("name", s("a\tb")), 2, "name", invalid(name_rule)),
            (
                with("name", s(&"x".repeat(32))),
                2,
                "name",
                invalid(name_rule),
            ),
            (
                with("name", Int(1)),
                2,
                "name",
                ErrorKind::WrongType {
                    expected: "a string",
                    found: "an integer",
                },
            ),
            (
                with("memory", s("0")),
                3,
                "memory",
                invalid("must not be zero"),
            ),
            (
                with("memory", Int(0)),
                3,
                "memory",
                invalid("must not be zero"),
            ),
            (
                with("memory", Int(1 << 20)),
                3,
                "memory",
                invalid("not a multiple of 2 MiB"),
            ),
            (with("memory", s("64MB")), 3, "memory", invalid(bad_size)),
            (with("memory", s(" 64M")), 3, "memory", invalid(bad_size)),
            (with("memory", s("064M")), 3, "memory", invalid(bad_size)),
            (with("memory", s("")), 3, "memory", invalid(bad_size)),
            (
                with("memory", s("99999999999G")),
                3,
                "memory",
                invalid("size too large"),
            ),
            (
                with("memory", s("99999999999999999999")),
                3,
                "memory",
                invalid("size too large"),
            ),
            (
                with("memory", Bool(true)),
                3,
                "memory",
                ErrorKind::WrongType {
                    expected: "a size (\"512M\") or bytes",
                    found: "a boolean",
                },
            ),
            (
                with("vcpus", Int(0)),
                4,
                "vcpus",
                invalid("must be 1 to 64"),
            ),
            (
                with("vcpus", Int(65)),
                4,
                "vcpus",
                invalid("must be 1 to 64"),
            ),
            (
                with("vcpus", Int(1 << 32)),
                4,
                "vcpus",
                invalid("must be 1 to 64"),
            ),
            (
                with("vcpus", s("1")),
                4,
                "vcpus",
                ErrorKind::WrongType {
                    expected: "an integer",
                    found: "a string",
                },
            ),
            (
                with("cpus", Ints(vec![0, 1])),
                5,
                "cpus",
                ErrorKind::CpuCount { vcpus: 1, cpus: 2 },
            ),
            (
                with("cpus", Ints(vec![])),
                5,
                "cpus",
                ErrorKind::CpuCount { vcpus: 1, cpus: 0 },
            ),
            (
                with("cpus", Int(0)),
                5,
                "cpus",
                ErrorKind::WrongType {
                    expected: "an array of integers",
                    found: "an integer",
                },
            ),
            (
                with("cpus", Strs(vec!["0".into()])),
                5,
                "cpus",
                ErrorKind::WrongType {
                    expected: "an array of integers",
                    found: "an array of strings",
                },
            ),
            (
                with("cpus", Ints(vec![1 << 32])),
                5,
                "cpus",
                invalid("hardware thread number too large"),
            ),
            (
                with("cpus", Ints(vec![3, 3])),
                5,
                "cpus",
                ErrorKind::CpuRepeated(3),
            ),
            (
                with("kernel", s("")),
                6,
                "kernel",
                invalid("must not be empty"),
            ),
            (
                with("kernel", s("a\u{1b}[2J")),
                6,
                "kernel",
                invalid("control characters (other than tab) are not allowed"),
            ),
            (
                one(vec![("initrd", s(""))]),
                7,
                "initrd",
                invalid("must not be empty"),
            ),
            (
                one(vec![("expect", s(""))]),
                7,
                "expect",
                invalid("must not be empty"),
            ),
            (
                one(vec![("cmdline", s("a\0b"))]),
                7,
                "cmdline",
                invalid("control characters (other than tab) are not allowed"),
            ),
            (
                one(vec![("cmdline", s("a\nb"))]),
                7,
                "cmdline",
                invalid("control characters (other than tab) are not allowed"),
            ),
            (
                one(vec![("console", s("yes"))]),
                7,
                "console",
                ErrorKind::WrongType {
                    expected: "true or false",
                    found: "a string",
                },
            ),
            (
                one(vec![("cmdline", Ints(vec![1]))]),
                7,
                "cmdline",
                ErrorKind::WrongType {
                    expected: "a string",
                    found: "an array of integers",
                },
            ),
        ];
        for (tables, line, field, kind) in cases {
            // A bad name still labels the error when it is a string.
            let name = tables[0].name().map(String::from);
            assert_err(&tables, Some(line), name.as_deref(), Some(field), kind);
        }
        // Errors carry the value's column.
        let e = err(&with("cpus", Ints(vec![0, 1])));
        assert_eq!(e.column, Some(10));
    }

    #[test]
    fn missing_fields() {
        for field in ["name", "memory", "vcpus", "cpus", "kernel"] {
            let mut t = one(vec![]);
            t[0].entries.retain(|e| e.key != field);
            let name = if field == "name" { None } else { Some("a") };
            assert_err(&t, Some(1), name, Some(field), ErrorKind::Missing);
        }
    }

    #[test]
    fn cross_partition_errors() {
        let mut t = one(vec![]);
        t.push(second("a", 1, 7));
        assert_err(
            &t,
            Some(8),
            Some("a"),
            Some("name"),
            ErrorKind::DuplicateName,
        );
        let mut t = one(vec![]);
        t.push(second("b", 0, 7));
        assert_err(
            &t,
            Some(11),
            Some("b"),
            Some("cpus"),
            ErrorKind::CpuShared {
                cpu: 0,
                other: "a".into(),
            },
        );
        let mut t = one(vec![]);
        t.insert(
            0,
            table(TableKind::Machine, 20, vec![("console_input", s("zz"))]),
        );
        assert_err(
            &t,
            Some(21),
            None,
            Some("console_input"),
            ErrorKind::NoSuchPartition("zz".into()),
        );
        let mut t = one(vec![("console", Bool(false))]);
        t.insert(
            0,
            table(TableKind::Machine, 20, vec![("console_input", s("a"))]),
        );
        assert_err(
            &t,
            Some(21),
            None,
            Some("console_input"),
            ErrorKind::NoConsole("a".into()),
        );
    }

    #[test]
    fn flags_and_mmu() {
        let p = |extra| from_tables(&one(extra)).map(|m| m.partitions[0].clone());
        assert!(p(vec![("nested", Bool(true))]).unwrap().nested);
        assert!(p(vec![("tpm", Bool(true))]).unwrap().tpm);
        assert!(p(vec![("secure", Bool(true))]).unwrap().secure);
        assert!(!p(vec![("secure", Bool(false))]).unwrap().secure);
        for key in ["nested", "secure", "tpm"] {
            let e = p(vec![(key, s("yes"))]).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(key));
            assert!(e.to_string().contains("true or false"), "{e}");
        }
        for (text, want) in [
            ("radix", MmuMode::Radix),
            ("hash", MmuMode::Hash),
            ("any", MmuMode::Any),
        ] {
            assert_eq!(p(vec![("mmu", s(text))]).unwrap().mmu, want);
            assert_eq!(want.as_str(), text);
        }
        for bad in [s("HPT"), Bool(true), s("")] {
            let e = p(vec![("mmu", bad.clone())]).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("mmu"), "{bad:?}");
        }
        assert!(MmuMode::Hash.offers_hash() && MmuMode::Any.offers_hash());
        assert!(!MmuMode::Radix.offers_hash());
    }

    /// Manifests that between them set every field to a non-default value.
    fn full() -> Vec<Manifest> {
        let mut t = example();
        t[1].entries.extend(
            [
                ("secure", Bool(true)),
                ("nested", Bool(true)),
                ("tpm", Bool(true)),
                ("mmu", s("any")),
            ]
            .into_iter()
            .map(|(k, v)| Entry {
                key: k.into(),
                value: v,
                at: Loc::NONE,
            }),
        );
        t[0].entries[0].value = Bool(false);
        let mut hash = one(vec![("mmu", s("hash")), ("console", Bool(false))]);
        hash[0].entries[1].value = Int(1 << 40);
        vec![
            from_tables(&t).unwrap(),
            from_tables(&hash).unwrap(),
            from_tables(&one(vec![])).unwrap(),
        ]
    }

    #[test]
    fn to_tables_round_trips_and_uses_canonical_types() {
        for m in full() {
            let tables = m.to_tables();
            assert_eq!(from_tables(&tables).as_ref(), Ok(&m));
            assert_eq!(m.validated().as_ref(), Ok(&m));
            for t in &tables {
                for e in &t.entries {
                    let ty = key_type(t.kind, &e.key);
                    let found = match &e.value {
                        Value::Str(_) => ValueType::Str,
                        Int(_) => ValueType::Int,
                        Bool(_) => ValueType::Bool,
                        Ints(_) => ValueType::Ints,
                        Strs(_) => ValueType::Strs,
                        Value::Other(_) => panic!("{e:?}"),
                    };
                    assert_eq!(ty, Some(found), "{:?} {}", t.kind, e.key);
                }
            }
        }
    }

    /// A value of each canonical type that the field accepts.
    fn sample(kind: TableKind, key: &str) -> Value {
        match (key_type(kind, key).unwrap(), key) {
            (_, "memory") => Int(2 << 20),
            (_, "vcpus") => Int(1),
            (_, "mmu") => s("hash"),
            (_, "console_input") => s("a"),
            (ValueType::Str, _) => s("x"),
            (ValueType::Int, _) => Int(1),
            (ValueType::Bool, _) => Bool(true),
            (ValueType::Ints, _) => Ints(vec![0]),
            (ValueType::Strs, _) => Strs(vec![]),
        }
    }

    #[test]
    fn every_typed_key_is_taken() {
        // Every key key_type knows is one from_tables takes, in its type.
        let keys = [
            "power_off_when_idle",
            "console_input",
            "name",
            "memory",
            "vcpus",
            "cpus",
            "kernel",
            "initrd",
            "cmdline",
            "console",
            "expect",
            "secure",
            "nested",
            "tpm",
            "mmu",
            "devices",
            "colour",
        ];
        let mut known = 0;
        for kind in TableKind::ALL {
            for key in keys {
                if key_type(kind, key).is_none() {
                    continue;
                }
                known += 1;
                let mut t = one(vec![]);
                let mut extra = Table::new(kind);
                extra.push(key, sample(kind, key));
                match kind {
                    TableKind::Partition => {
                        t[0].entries.retain(|e| e.key != key);
                        t[0].entries.extend(extra.entries);
                    }
                    _ => t.insert(0, extra),
                }
                assert!(
                    from_tables(&t).is_ok(),
                    "{kind:?} {key}: {:?}",
                    from_tables(&t)
                );
            }
        }
        assert_eq!(known, keys.len() - 1);
    }

    #[test]
    fn machine_checks() {
        let m = from_tables(&example()).unwrap();
        let all = |_: &str| true;
        let need = (576 << 20) + HYPERVISOR_RESERVE;
        assert_eq!(check_against_machine(&m, need, 3, all), Ok(()));

        let e = check_against_machine(&m, need - 1, 3, all).unwrap_err();
        assert_eq!(
            (e.partition.as_deref(), e.field.as_deref()),
            (Some("hcall-test"), Some("memory"))
        );
        assert_eq!(
            e.to_string(),
            "manifest partition \"hcall-test\", field \"memory\": partitions need 576 MiB \
             plus 256 MiB for the hypervisor, the machine has 831 MiB"
        );
        let e = check_against_machine(&m, 1 << 30, 2, all).unwrap_err();
        assert_eq!(e.kind, ErrorKind::CpuMissing { cpu: 2, threads: 2 });
        assert_eq!(
            e.to_string(),
            "manifest partition \"linux\", field \"cpus\": hardware thread 2 does not exist \
             (the machine has 2: 0 to 1)"
        );
        let e = check_against_machine(&m, 1 << 30, 3, |p| p != "initrd.cpio").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("initrd"));
        assert_eq!(e.kind, ErrorKind::NoSuchFile("initrd.cpio".into()));
        let e = check_against_machine(&m, 1 << 30, 3, |p| p != "guest-hcall.elf").unwrap_err();
        assert_eq!(e.partition.as_deref(), Some("hcall-test"));
        assert_eq!(e.field.as_deref(), Some("kernel"));

        // Overflowing totals are refused, not wrapped.
        let mut big = m.clone();
        big.partitions[0].memory = u64::MAX - (MEMORY_GRANULE - 1);
        big.partitions[1].memory = u64::MAX - (MEMORY_GRANULE - 1);
        assert_eq!(big.total_memory(), None);
        assert!(check_against_machine(&big, u64::MAX, 3, all).is_err());
    }
}
