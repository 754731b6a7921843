//! The partition manifest: which logical partitions the machine runs, with what
//! memory, hardware threads, images and console.
//!
//! The manifest is `manifest.toml` in the boot bundle (see [`crate::bundle`]) and is
//! written in a small subset of TOML, parsed here by hand (`no_std` + `alloc`, no
//! crates). `docs/manifest.md` describes the format for users.
//!
//! What the subset has: `#` comments, the tables `[machine]`, `[[partition]]`
//! and `[[partition.disk]]` (a disk of the partition table above it),
//! `key = value` lines with bare keys, and four kinds of value: double-quoted
//! strings with the escapes `\"` and `\\`, integers (decimal or `0x` hex,
//! unsigned), `true`/`false`, and one-line arrays of integers. Everything else
//! (other escapes, literal strings, floats, inline tables, dotted or quoted keys,
//! multi-line arrays) is refused with a syntax error rather than guessed at.
//!
//! Invariants of a [`Manifest`] returned by [`parse`]: at least one partition;
//! names unique and `[a-z0-9_-]{1,31}`; memory a non-zero multiple of 2 MiB;
//! `1 <= vcpus <= 64` and `cpus.len() == vcpus`; no hardware thread listed twice,
//! within or across partitions; `kernel`, `initrd` and `expect` non-empty when
//! present; no control characters in any string; `machine.console_input` names a
//! partition with `console = true`, and is `None` only when no partition has a
//! console. What depends on the machine (memory size, thread count, files in the
//! bundle) is checked separately by [`check_against_machine`].
//!
//! Nothing here panics, whatever the input: every error is a [`ManifestError`]
//! naming the line, the partition and the field.

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
    /// The MMU the partition offers its guest (default radix); docs/manifest.md.
    pub mmu: MmuMode,
    /// Virtual Ethernet adapters (`[[partition.net]]` tables after the
    /// partition's), in order: each an `l-lan` VIO device on the switch.
    pub net: Vec<NetSpec>,
    /// Its `[[partition.disk]]` tables in order: vscsi targets 0, 1, ...
    pub disks: Vec<DiskSpec>,
    /// PCI functions passed through to the partition (`devices =
    /// ["0001:01:00.0"]`, docs/passthrough.md): each belongs to this partition
    /// only; memory must then be a multiple of [`DMA_GRANULE`].
    pub devices: Vec<crate::pci::PciAddress>,
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

/// A partition with devices has memory in whole multiples of this: its 64-bit
/// DMA window is a PHB bypass window (TVE), which starts and ends on 16 MiB.
pub const DMA_GRANULE: u64 = 16 << 20;

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

    /// The manifest as text that [`parse`] reads back to an equal `Manifest`
    /// (for any manifest `parse` returned; control characters in strings, which
    /// `parse` never returns, would not read back).
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# Paprika partition manifest\n[machine]\n");
        s.push_str(&format!(
            "power_off_when_idle = {}\n",
            self.machine.power_off_when_idle
        ));
        if let Some(c) = &self.machine.console_input {
            s.push_str(&format!("console_input = {}\n", quote(c)));
        }
        for p in &self.partitions {
            s.push_str("\n[[partition]]\n");
            s.push_str(&format!("name = {}\n", quote(&p.name)));
            s.push_str(&format!("memory = {}\n", format_size(p.memory)));
            s.push_str(&format!("vcpus = {}\n", p.vcpus));
            let cpus: Vec<String> = p.cpus.iter().map(|c| c.to_string()).collect();
            s.push_str(&format!("cpus = [{}]\n", cpus.join(", ")));
            s.push_str(&format!("kernel = {}\n", quote(&p.kernel)));
            if let Some(i) = &p.initrd {
                s.push_str(&format!("initrd = {}\n", quote(i)));
            }
            s.push_str(&format!("cmdline = {}\n", quote(&p.cmdline)));
            s.push_str(&format!("console = {}\n", p.console));
            if let Some(e) = &p.expect {
                s.push_str(&format!("expect = {}\n", quote(e)));
            }
            if p.secure {
                s.push_str("secure = true\n");
            }
            if p.nested {
                s.push_str("nested = true\n");
            }
            if p.mmu != MmuMode::Radix {
                s.push_str(&format!("mmu = {}\n", quote(p.mmu.as_str())));
            }
            if !p.devices.is_empty() {
                let d: Vec<String> = p.devices.iter().map(|d| quote(&d.to_string())).collect();
                s.push_str(&format!("devices = [{}]\n", d.join(", ")));
            }
            for n in &p.net {
                s.push_str("\n[[partition.net]]\n");
                s.push_str(&format!("mac = {}\n", quote(&format_mac(&n.mac))));
                s.push_str(&format!("vlan = {}\n", n.vlan));
                if n.trunk {
                    s.push_str("trunk = true\n");
                }
            }
            for d in &p.disks {
                s.push_str("\n[[partition.disk]]\n");
                s.push_str(&format!("image = {}\n", quote(&d.image)));
                s.push_str(&format!("readonly = {}\n", d.readonly));
            }
        }
        s
    }
}

/// `"text"` with `"` and `\` escaped.
fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// A memory size as a manifest value: `"2G"`, `"512M"`, `"64K"` or plain bytes.
fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("\"{}{suffix}\"", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What is wrong, without the where (see [`ManifestError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line is not in the TOML subset; the text says what was expected.
    Syntax(&'static str),
    /// A table header other than `[machine]` and `[[partition]]` (the header).
    UnknownTable(String),
    /// `[machine]` given twice.
    DuplicateTable,
    /// A `key = value` line before the first table header.
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
    /// A `[[partition.disk]]` table not below a `[[partition]]`.
    DiskOutsidePartition,
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
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax(what) => f.write_str(what),
            ErrorKind::UnknownTable(header) => {
                write!(
                    f,
                    "unknown table {header} (want [machine], [[partition]] or [[partition.disk]])"
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
            ErrorKind::DiskOutsidePartition => {
                f.write_str("[[partition.disk]] must follow the [[partition]] it belongs to")
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
        }
    }
}

/// An error in a manifest: where (line, partition, field) and what.
///
/// Displays as `manifest line 12, partition "linux", field "memory": not a
/// multiple of 2 MiB`, leaving out whichever of the three is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line number, when the error belongs to one line.
    pub line: Option<usize>,
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
    fn new(kind: ErrorKind) -> Self {
        ManifestError {
            line: None,
            partition: None,
            field: None,
            kind,
        }
    }

    fn at(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    fn in_partition(mut self, name: Option<&str>) -> Self {
        self.partition = name.map(String::from);
        self
    }

    fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
    Ints(Vec<u64>),
    Strs(Vec<String>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Ints(_) => "an array",
            Value::Strs(_) => "an array of strings",
        }
    }
}

/// One `key = value` line.
#[derive(Debug)]
struct Entry {
    key: String,
    value: Value,
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    Machine,
    Partition,
    /// `[[partition.net]]`: belongs to the `[[partition]]` before it.
    Net,
    /// `[[partition.disk]]`: belongs to the partition table before it.
    Disk,
}

#[derive(Debug)]
struct Table {
    kind: TableKind,
    /// For a disk or net table: the name of its partition, if that has one.
    parent: Option<String>,
    /// Line of the header.
    line: usize,
    entries: Vec<Entry>,
}

impl Table {
    /// The `name` string of a partition table, if it has one.
    fn name(&self) -> Option<&str> {
        self.entries
            .iter()
            .find_map(|e| match (&e.key[..], &e.value) {
                ("name", Value::Str(s)) => Some(s.as_str()),
                _ => None,
            })
    }

    fn label(&self) -> Option<&str> {
        match self.kind {
            TableKind::Partition => self.name(),
            TableKind::Disk | TableKind::Net => self.parent.as_deref(),
            TableKind::Machine => None,
        }
    }
}

/// A position in one line (at char boundaries: only ASCII is ever skipped
/// byte-wise).
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the longest run of bytes matching `f` (ASCII only) and returns it.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii() && f(b)) {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// Only whitespace and maybe a comment left.
    fn at_line_end(&mut self) -> bool {
        self.skip_ws();
        matches!(self.peek(), None | Some(b'#'))
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Bytes that may follow a number or keyword.
fn is_delimiter(b: Option<u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b',' | b']' | b'#'))
}

fn parse_value(cur: &mut Cursor<'_>) -> Result<Value, &'static str> {
    match cur.peek() {
        None | Some(b'#') => Err("missing value after `=`"),
        Some(b'"') => parse_string(cur).map(Value::Str),
        Some(b'\'') => Err("literal strings are not supported; use \"double quotes\""),
        Some(b'[') => parse_array(cur),
        Some(b'+' | b'-') => Err("signed numbers are not supported"),
        Some(b) if b.is_ascii_digit() => parse_integer(cur).map(Value::Int),
        Some(_) => {
            let word = cur.take_while(|b| b.is_ascii_alphanumeric());
            let value =
                match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => return Err(
                        "not a value (want a \"string\", an integer, true, false or [integers])",
                    ),
                };
            if !is_delimiter(cur.peek()) {
                return Err("unexpected text after the value");
            }
            Ok(value)
        }
    }
}

fn parse_string(cur: &mut Cursor<'_>) -> Result<String, &'static str> {
    let rest = cur.rest();
    if rest.starts_with("\"\"\"") {
        return Err("multi-line strings are not supported");
    }
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                cur.pos += i + 1;
                return Ok(out);
            }
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some(_) => return Err("unsupported escape (only \\\" and \\\\)"),
                None => return Err("unterminated string"),
            },
            c if c.is_control() && c != '\t' => {
                return Err("control character in a string");
            }
            c => out.push(c),
        }
    }
    Err("unterminated string")
}

fn parse_integer(cur: &mut Cursor<'_>) -> Result<u64, &'static str> {
    let value = if cur.rest().starts_with("0x") {
        cur.pos += 2;
        let digits = cur.take_while(|b| b.is_ascii_hexdigit());
        if digits.is_empty() {
            return Err("`0x` needs hex digits");
        }
        u64::from_str_radix(digits, 16).map_err(|_| "integer too large")?
    } else {
        let digits = cur.take_while(|b| b.is_ascii_digit());
        if digits.len() > 1 && digits.starts_with('0') {
            return Err("leading zeros are not allowed");
        }
        digits.parse::<u64>().map_err(|_| "integer too large")?
    };
    match cur.peek() {
        b if is_delimiter(b) => Ok(value),
        None => Ok(value),
        Some(b) if b.is_ascii_alphabetic() => {
            Err("a number with a suffix must be a string, e.g. \"512M\"")
        }
        Some(b'_') => Err("underscores in numbers are not supported"),
        Some(_) => Err("unexpected text after the number"),
    }
}

/// A one-line array of integers or of strings (not mixed); `[]` is an empty
/// integer array.
fn parse_array(cur: &mut Cursor<'_>) -> Result<Value, &'static str> {
    cur.eat(b'[');
    let mut items = Vec::new();
    let mut strs: Vec<String> = Vec::new();
    let done = |items: Vec<u64>, strs: Vec<String>| {
        if strs.is_empty() {
            Value::Ints(items)
        } else {
            Value::Strs(strs)
        }
    };
    cur.skip_ws();
    if cur.eat(b']') {
        return Ok(Value::Ints(items));
    }
    loop {
        match cur.peek() {
            Some(b) if b.is_ascii_digit() && strs.is_empty() => items.push(parse_integer(cur)?),
            Some(b'"') if items.is_empty() => strs.push(parse_string(cur)?),
            Some(b'"' | b'0'..=b'9') => {
                return Err("an array holds either integers or strings, not both")
            }
            None | Some(b'#') => return Err("an array must end on the line it starts"),
            Some(b'+' | b'-') => return Err("signed numbers are not supported"),
            Some(_) => return Err("arrays may hold only integers or \"strings\""),
        }
        cur.skip_ws();
        match cur.peek() {
            Some(b',') => {
                cur.pos += 1;
                cur.skip_ws();
                if cur.eat(b']') {
                    return Ok(done(items, strs));
                }
            }
            Some(b']') => {
                cur.pos += 1;
                return Ok(done(items, strs));
            }
            None | Some(b'#') => return Err("an array must end on the line it starts"),
            Some(_) => return Err("expected `,` or `]` in the array"),
        }
    }
}

/// A table header line (starting with `[`): the table kind.
fn parse_header(line: &str) -> Result<TableKind, ErrorKind> {
    let mut cur = Cursor::new(line);
    let double = cur.rest().starts_with("[[");
    cur.pos += if double { 2 } else { 1 };
    cur.skip_ws();
    let start = cur.pos;
    while !cur.take_while(is_key_byte).is_empty() && cur.eat(b'.') {}
    let name = cur.text.get(start..cur.pos).unwrap_or("");
    cur.skip_ws();
    let close = if double { "]]" } else { "]" };
    if !cur.rest().starts_with(close) {
        return Err(ErrorKind::Syntax(if double {
            "expected `]]` to close the table header"
        } else {
            "expected `]` to close the table header"
        }));
    }
    cur.pos += close.len();
    if !cur.at_line_end() {
        return Err(ErrorKind::Syntax("unexpected text after the table header"));
    }
    match (double, name) {
        (false, "machine") => Ok(TableKind::Machine),
        (true, "partition") => Ok(TableKind::Partition),
        (true, "partition.net") => Ok(TableKind::Net),
        (true, "partition.disk") => Ok(TableKind::Disk),
        _ => {
            let open = if double { "[[" } else { "[" };
            Err(ErrorKind::UnknownTable(format!("{open}{name}{close}")))
        }
    }
}

/// A `key = value` line: the key and the value.
fn parse_key_value(line: &str) -> Result<(String, Value), ErrorKind> {
    let mut cur = Cursor::new(line);
    let key = cur.take_while(is_key_byte);
    if key.is_empty() {
        return Err(ErrorKind::Syntax(match cur.peek() {
            Some(b'"' | b'\'') => "quoted keys are not supported",
            _ => "expected `key = value`",
        }));
    }
    cur.skip_ws();
    if cur.peek() == Some(b'.') {
        return Err(ErrorKind::Syntax("dotted keys are not supported"));
    }
    if !cur.eat(b'=') {
        return Err(ErrorKind::Syntax("expected `=` after the key"));
    }
    cur.skip_ws();
    let value = parse_value(&mut cur).map_err(ErrorKind::Syntax)?;
    if !cur.at_line_end() {
        return Err(ErrorKind::Syntax("unexpected text after the value"));
    }
    Ok((key.to_string(), value))
}

/// Splits the text into tables of raw entries: the syntax pass.
fn parse_tables(text: &str) -> Result<Vec<Table>, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tables: Vec<Table> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start_matches([' ', '\t']);
        let current = tables.last();
        let label = current.and_then(Table::label);
        let err = |kind| ManifestError::new(kind).at(line).in_partition(label);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('[') {
            let kind = parse_header(trimmed).map_err(|k| ManifestError::new(k).at(line))?;
            if kind == TableKind::Machine && tables.iter().any(|t| t.kind == kind) {
                return Err(ManifestError::new(ErrorKind::DuplicateTable).at(line));
            }
            if kind == TableKind::Net
                && !tables.last().is_some_and(|t| {
                    matches!(
                        t.kind,
                        TableKind::Partition | TableKind::Net | TableKind::Disk
                    )
                })
            {
                return Err(ManifestError::new(ErrorKind::Syntax(
                    "[[partition.net]] must follow the [[partition]] it belongs to",
                ))
                .at(line));
            }
            let parent = match kind {
                TableKind::Disk | TableKind::Net => match tables.last() {
                    Some(t)
                        if matches!(
                            t.kind,
                            TableKind::Partition | TableKind::Disk | TableKind::Net
                        ) =>
                    {
                        t.label().map(String::from)
                    }
                    _ => return Err(ManifestError::new(ErrorKind::DiskOutsidePartition).at(line)),
                },
                _ => None,
            };
            tables.push(Table {
                kind,
                parent,
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let (key, value) = match parse_key_value(trimmed) {
            Ok(kv) => kv,
            Err(kind) => {
                // Name the key when the line got that far.
                let key = Cursor::new(trimmed).take_while(is_key_byte);
                let e = err(kind);
                return Err(if key.is_empty() { e } else { e.field(key) });
            }
        };
        if tables.is_empty() {
            return Err(err(ErrorKind::KeyOutsideTable).field(&key));
        }
        if let Some(table) = tables.last_mut() {
            if table.entries.iter().any(|e| e.key == key) {
                let label = table.label().map(String::from);
                return Err(ManifestError::new(ErrorKind::DuplicateKey)
                    .at(line)
                    .in_partition(label.as_deref())
                    .field(&key));
            }
            table.entries.push(Entry { key, value, line });
        }
    }
    Ok(tables)
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

fn want_str(v: &Value) -> Result<&str, ErrorKind> {
    match v {
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

/// A partition with the lines its fields came from.
struct Parsed {
    spec: PartitionSpec,
    name_line: usize,
    cpus_line: usize,
    devices_line: usize,
}

/// The fields of one `[[partition]]` table as they are read.
#[derive(Default)]
struct Builder {
    name: Option<(String, usize)>,
    memory: Option<u64>,
    vcpus: Option<u32>,
    cpus: Option<(Vec<u32>, usize)>,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: String,
    console: Option<bool>,
    expect: Option<String>,
    secure: bool,
    nested: bool,
    mmu: MmuMode,
    disks: Vec<DiskSpec>,
    devices: Option<(Vec<crate::pci::PciAddress>, usize)>,
}

impl Builder {
    /// Takes one `key = value` line of the table.
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
                self.name = Some((s.to_string(), e.line));
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
                self.cpus = Some((cpus, e.line));
            }
            "kernel" => self.kernel = Some(want_path(v)?),
            "initrd" => self.initrd = Some(want_path(v)?),
            "cmdline" => self.cmdline = want_str(v)?.to_string(),
            "console" => self.console = Some(want_bool(v)?),
            "expect" => self.expect = Some(want_path(v)?),
            "secure" => self.secure = want_bool(v)?,
            "nested" => self.nested = want_bool(v)?,
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
                self.devices = Some((devices, e.line));
            }
            _ => return Err(ErrorKind::UnknownKey),
        }
        Ok(())
    }
}

/// One `[[partition.disk]]` table.
fn disk_from(table: &Table) -> Result<DiskSpec, ManifestError> {
    let label = table.label();
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
                .at(e.line)
                .in_partition(label)
                .field(&e.key)
        })?;
    }
    let image = image.ok_or_else(|| {
        ManifestError::new(ErrorKind::Missing)
            .at(table.line)
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
                .at(d.line)
                .in_partition(label));
        }
        b.disks.push(disk_from(d)?);
    }
    for e in &table.entries {
        b.set(e).map_err(|kind| {
            ManifestError::new(kind)
                .at(e.line)
                .in_partition(label)
                .field(&e.key)
        })?;
    }
    let missing = |field: &str| {
        ManifestError::new(ErrorKind::Missing)
            .at(table.line)
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
            mmu: b.mmu,
            net: Vec::new(),
            disks: b.disks,
            devices,
        },
        name_line,
        cpus_line,
        devices_line,
    })
}

/// One `[[partition.net]]` table of partition `p` (its adapters so far in
/// `p.net`).
fn net_from(table: &Table, p: &PartitionSpec) -> Result<NetSpec, ManifestError> {
    let err = |kind, line: usize, field: &str| {
        ManifestError::new(kind)
            .at(line)
            .in_partition(Some(&p.name))
            .field(field)
    };
    if p.net.len() >= MAX_NETS {
        return Err(ManifestError::new(ErrorKind::Invalid(
            "at most 8 [[partition.net]] per partition",
        ))
        .at(table.line)
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
                let s = want_str(v).map_err(|k| err(k, e.line, "mac"))?;
                let mac = parse_mac(s).ok_or_else(|| {
                    err(
                        ErrorKind::Invalid("not a MAC address (want \"02:00:00:00:00:01\")"),
                        e.line,
                        "mac",
                    )
                })?;
                if mac[0] & 1 != 0 || mac == [0; 6] {
                    return Err(err(
                        ErrorKind::Invalid("must be a unicast address, not zero"),
                        e.line,
                        "mac",
                    ));
                }
                net.mac = mac;
            }
            "vlan" => {
                let Value::Int(n) = v else {
                    return Err(err(wrong_type("an integer", v), e.line, "vlan"));
                };
                match u16::try_from(*n) {
                    Ok(n) if (1..=VLAN_MAX).contains(&n) => net.vlan = n,
                    _ => return Err(err(ErrorKind::Invalid("must be 1 to 4094"), e.line, "vlan")),
                }
            }
            "trunk" => net.trunk = want_bool(v).map_err(|k| err(k, e.line, "trunk"))?,
            _ => return Err(err(ErrorKind::UnknownKey, e.line, &e.key)),
        }
    }
    Ok(net)
}

/// Parses and validates a manifest (everything that does not depend on the
/// machine; see [`check_against_machine`] for the rest).
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let tables = parse_tables(text)?;

    let mut machine = MachineSpec::default();
    let mut console_input_line = None;
    if let Some(table) = tables.iter().find(|t| t.kind == TableKind::Machine) {
        for e in &table.entries {
            let err = |kind| ManifestError::new(kind).at(e.line).field(&e.key);
            match e.key.as_str() {
                "power_off_when_idle" => {
                    machine.power_off_when_idle = want_bool(&e.value).map_err(err)?
                }
                "console_input" => {
                    machine.console_input = Some(want_str(&e.value).map_err(err)?.to_string());
                    console_input_line = Some(e.line);
                }
                _ => return Err(err(ErrorKind::UnknownKey)),
            }
        }
    }

    let mut partitions: Vec<PartitionSpec> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        if table.kind == TableKind::Net {
            // parse_tables put a partition before it.
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
            .take_while(|t| matches!(t.kind, TableKind::Disk | TableKind::Net))
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

/// Checks a parsed manifest against the machine it is to run on: every `cpus`
/// entry below `threads`, all partitions' memory plus [`HYPERVISOR_RESERVE`]
/// within `machine_memory`, and every `kernel`, `initrd` and disk `image` present according to
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
    use super::*;

    const EXAMPLE: &str = r#"# Paprika partition manifest
[machine]
power_off_when_idle = true     # power the machine off when every partition has stopped
console_input = "linux"         # partition receiving console input

[[partition]]
name = "linux"                  # [a-z0-9_-]{1,31}, unique
memory = "512M"                 # K/M/G suffix or plain bytes
vcpus = 2
cpus = [1, 2]
kernel = "vmlinux"
initrd = "initrd.cpio"
cmdline = "console=hvc0 msg=\"hi\" path=C:\\x # not a comment"
console = true
expect = "GUEST-PASS"

[[partition]]
name = "hcall-test"
memory = 0x4000000
vcpus = 1
cpus = [0]
kernel = "guest-hcall.elf"
"#;

    fn err(text: &str) -> ManifestError {
        match parse(text) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e,
        }
    }

    /// A valid one-partition manifest with `extra` lines appended to its table.
    fn one(extra: &str) -> String {
        format!(
            "[[partition]]\nname = \"a\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [0]\nkernel = \"k\"\n{extra}"
        )
    }

    #[test]
    fn example_parses() {
        let m = parse(EXAMPLE).unwrap();
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
                    cmdline: r#"console=hvc0 msg="hi" path=C:\x # not a comment"#.into(),
                    console: true,
                    expect: Some("GUEST-PASS".into()),
                    secure: false,
                    nested: false,
                    mmu: MmuMode::Radix,
                    net: Vec::new(),
                    disks: Vec::new(),
                    devices: Vec::new(),
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
                    mmu: MmuMode::Radix,
                    net: Vec::new(),
                    disks: Vec::new(),
                    devices: Vec::new(),
                },
            ]
        );
        assert_eq!(m.total_memory(), Some(576 << 20));
        assert_eq!(m.max_cpu(), Some(2));
        assert_eq!(m.partition("hcall-test").map(|p| p.vcpus), Some(1));
    }

    #[test]
    fn defaults() {
        let m = parse(&one("")).unwrap();
        assert!(m.machine.power_off_when_idle);
        assert_eq!(m.machine.console_input.as_deref(), Some("a"));
        let p = &m.partitions[0];
        assert!(p.console && p.cmdline.is_empty() && p.initrd.is_none() && p.expect.is_none());

        // Default console input: the first partition with a console.
        let text = format!(
            "{}\n[[partition]]\nname = \"b\"\nmemory = \"2M\"\nvcpus = 1\ncpus = [1]\nkernel = \"k\"\n",
            one("console = false")
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.machine.console_input.as_deref(), Some("b"));
        let m = parse(&one("console = false")).unwrap();
        assert_eq!(m.machine.console_input, None);
    }

    #[test]
    fn syntax_variants() {
        let text =
            "\u{feff}  # leading comment\r\n[ machine ] # c\r\n\tpower_off_when_idle=false\r\n\
                    [[ partition ]]\r\nname=\"x\"\r\nmemory=2097152\r\nvcpus=0x2\r\n\
                    cpus=[ 3 ,4, ]\r\nkernel=\"k\\\\\"#c\r\n";
        let m = parse(text).unwrap();
        assert!(!m.machine.power_off_when_idle);
        let p = &m.partitions[0];
        assert_eq!((p.memory, p.vcpus, &p.cpus[..]), (2 << 20, 2, &[3, 4][..]));
        assert_eq!(p.kernel, "k\\");
        for (size, bytes) in [
            ("\"1G\"", 1u64 << 30),
            ("\"4096k\"", 4 << 20),
            ("\"2m\"", 2 << 20),
        ] {
            let m = parse(&one("").replace("\"64M\"", size)).unwrap();
            assert_eq!(m.partitions[0].memory, bytes, "{size}");
        }
        let m = parse(&one("").replace("cpus = [0]", "cpus = [0x0]")).unwrap();
        assert_eq!(m.partitions[0].cpus, vec![0]);
    }

    #[test]
    fn display_names_line_partition_and_field() {
        let e = err(&EXAMPLE.replace("\"512M\"", "\"513M\""));
        assert_eq!(
            e.to_string(),
            "manifest line 8, partition \"linux\", field \"memory\": not a multiple of 2 MiB"
        );
        // The partition is named even when `name` comes after the bad field.
        let text = "[[partition]]\nmemory = \"3M\"\nname = \"late\"\n";
        assert_eq!(
            err(text).to_string(),
            "manifest line 2, partition \"late\", field \"memory\": not a multiple of 2 MiB"
        );
        assert_eq!(err("").to_string(), "manifest: no [[partition]] table");
        let e = ManifestError::new(ErrorKind::Missing).field("kernel");
        assert_eq!(
            e.to_string(),
            "manifest field \"kernel\": required but missing"
        );
    }

    fn assert_err(
        text: &str,
        line: Option<usize>,
        partition: Option<&str>,
        field: Option<&str>,
        kind: ErrorKind,
    ) {
        let e = err(text);
        assert_eq!(
            (e.line, e.partition.as_deref(), e.field.as_deref(), &e.kind),
            (line, partition, field, &kind),
            "{text}\n=> {e}"
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&str, &str)] = &[
            ("name = 'a'", "literal strings"),
            ("name = \"a", "unterminated string"),
            ("name = \"a\\nb\"", "unsupported escape"),
            ("name = \"a\tb\"", "must be 1 to 31"),
            ("name = \"a\u{7}b\"", "control character"),
            ("name = \"\"\"a\"\"\"", "multi-line strings"),
            ("name = \"a\" x", "unexpected text after the value"),
            ("memory = 512M", "must be a string"),
            ("memory = 1_000", "underscores"),
            ("memory = 1.5", "unexpected text after the number"),
            ("memory = 012", "leading zeros"),
            ("memory = -2", "signed"),
            ("memory = 0x", "hex digits"),
            ("memory = 99999999999999999999", "too large"),
            ("memory =", "missing value"),
            ("memory = # c", "missing value"),
            ("console = yes", "not a value"),
            ("console = truer", "not a value"),
            ("console = true1", "not a value"),
            ("cpus = [1, 2", "end on the line"),
            ("cpus = [1 2]", "expected `,` or `]`"),
            (
                "cpus = [\"a\"]",
                "must be an array of integers, not an array of strings",
            ),
            ("cpus = [1, \"a\"]", "either integers or strings"),
            ("cpus = [true]", "only integers or"),
            ("cpus = [,]", "only integers"),
            ("cpus = [1,,2]", "only integers"),
            ("cpus = [-1]", "signed"),
            ("a.b = 1", "dotted keys"),
            ("\"name\" = \"a\"", "quoted keys"),
            ("name \"a\"", "expected `=`"),
            ("= 1", "expected `key = value`"),
            ("x = {a = 1}", "not a value"),
        ];
        for (line, want) in cases {
            let text = format!("[[partition]]\n{line}\n");
            let e = err(&text);
            let shown = e.to_string();
            assert!(shown.contains(want), "{line:?} => {shown}");
            assert_eq!(e.line, Some(2), "{line:?} => {shown}");
        }
    }

    #[test]
    fn structure_errors() {
        assert_err(
            "x = 1\n",
            Some(1),
            None,
            Some("x"),
            ErrorKind::KeyOutsideTable,
        );
        assert_err(
            "[partition]\n",
            Some(1),
            None,
            None,
            ErrorKind::UnknownTable("[partition]".into()),
        );
        assert_err(
            "[[machine]]\n",
            Some(1),
            None,
            None,
            ErrorKind::UnknownTable("[[machine]]".into()),
        );
        assert_err(
            "[machine\n",
            Some(1),
            None,
            None,
            ErrorKind::Syntax("expected `]` to close the table header"),
        );
        assert_err(
            "[[partition]\n",
            Some(1),
            None,
            None,
            ErrorKind::Syntax("expected `]]` to close the table header"),
        );
        assert_err(
            "[machine] x\n",
            Some(1),
            None,
            None,
            ErrorKind::Syntax("unexpected text after the table header"),
        );
        assert_err(
            "[machine]\n[machine]\n",
            Some(2),
            None,
            None,
            ErrorKind::DuplicateTable,
        );
        assert_err(
            "[machine]\nfoo = 1\n",
            Some(2),
            None,
            Some("foo"),
            ErrorKind::UnknownKey,
        );
        assert_err(
            "[machine]\npower_off_when_idle = 1\n",
            Some(2),
            None,
            Some("power_off_when_idle"),
            ErrorKind::WrongType {
                expected: "true or false",
                found: "an integer",
            },
        );
        assert_err(
            &one("colour = 1"),
            Some(7),
            Some("a"),
            Some("colour"),
            ErrorKind::UnknownKey,
        );
        assert_err(
            &one("vcpus = 1"),
            Some(7),
            Some("a"),
            Some("vcpus"),
            ErrorKind::DuplicateKey,
        );
        assert_err("[machine]\n", None, None, None, ErrorKind::NoPartitions);
    }

    #[test]
    fn field_errors() {
        let replace = |from: &str, to: &str| one("").replace(from, to);
        let invalid = |s| ErrorKind::Invalid(s);
        let cases: Vec<(String, usize, &str, ErrorKind)> = vec![
            (
                replace("\"a\"", "\"A\""),
                2,
                "name",
                invalid("must be 1 to 31 characters from a-z, 0-9, `_` and `-`"),
            ),
            (
                replace("\"a\"", "\"\""),
                2,
                "name",
                invalid("must be 1 to 31 characters from a-z, 0-9, `_` and `-`"),
            ),
            (
                replace("\"a\"", &format!("\"{}\"", "x".repeat(32))),
                2,
                "name",
                invalid("must be 1 to 31 characters from a-z, 0-9, `_` and `-`"),
            ),
            (
                replace("\"a\"", "1"),
                2,
                "name",
                ErrorKind::WrongType {
                    expected: "a string",
                    found: "an integer",
                },
            ),
            (
                replace("\"64M\"", "\"0\""),
                3,
                "memory",
                invalid("must not be zero"),
            ),
            (
                replace("\"64M\"", "0"),
                3,
                "memory",
                invalid("must not be zero"),
            ),
            (
                replace("\"64M\"", "1048576"),
                3,
                "memory",
                invalid("not a multiple of 2 MiB"),
            ),
            (
                replace("\"64M\"", "\"64MB\""),
                3,
                "memory",
                invalid("not a size (want bytes or a number with K, M or G, e.g. \"512M\")"),
            ),
            (
                replace("\"64M\"", "\" 64M\""),
                3,
                "memory",
                invalid("not a size (want bytes or a number with K, M or G, e.g. \"512M\")"),
            ),
            (
                replace("\"64M\"", "\"99999999999G\""),
                3,
                "memory",
                invalid("size too large"),
            ),
            (
                replace("\"64M\"", "true"),
                3,
                "memory",
                ErrorKind::WrongType {
                    expected: "a size (\"512M\") or bytes",
                    found: "a boolean",
                },
            ),
            (
                replace("vcpus = 1", "vcpus = 0"),
                4,
                "vcpus",
                invalid("must be 1 to 64"),
            ),
            (
                replace("vcpus = 1", "vcpus = 65"),
                4,
                "vcpus",
                invalid("must be 1 to 64"),
            ),
            (
                replace("vcpus = 1", "vcpus = \"1\""),
                4,
                "vcpus",
                ErrorKind::WrongType {
                    expected: "an integer",
                    found: "a string",
                },
            ),
            (
                replace("cpus = [0]", "cpus = [0, 1]"),
                5,
                "cpus",
                ErrorKind::CpuCount { vcpus: 1, cpus: 2 },
            ),
            (
                replace("cpus = [0]", "cpus = []"),
                5,
                "cpus",
                ErrorKind::CpuCount { vcpus: 1, cpus: 0 },
            ),
            (
                replace("cpus = [0]", "cpus = 0"),
                5,
                "cpus",
                ErrorKind::WrongType {
                    expected: "an array of integers",
                    found: "an integer",
                },
            ),
            (
                replace("cpus = [0]", "cpus = [4294967296]"),
                5,
                "cpus",
                invalid("hardware thread number too large"),
            ),
            (
                replace("vcpus = 1\ncpus = [0]", "vcpus = 2\ncpus = [3, 3]"),
                5,
                "cpus",
                ErrorKind::CpuRepeated(3),
            ),
            (
                replace("\"k\"", "\"\""),
                6,
                "kernel",
                invalid("must not be empty"),
            ),
            (
                one("initrd = \"\""),
                7,
                "initrd",
                invalid("must not be empty"),
            ),
            (
                one("expect = \"\""),
                7,
                "expect",
                invalid("must not be empty"),
            ),
            (
                one("console = \"yes\""),
                7,
                "console",
                ErrorKind::WrongType {
                    expected: "true or false",
                    found: "a string",
                },
            ),
            (
                one("cmdline = [1]"),
                7,
                "cmdline",
                ErrorKind::WrongType {
                    expected: "a string",
                    found: "an array",
                },
            ),
        ];
        for (text, line, field, kind) in cases {
            // A bad name still labels the error when it is a string.
            let name = parse_tables(&text)
                .ok()
                .and_then(|t| t.first().and_then(|t| t.name().map(String::from)));
            assert_err(&text, Some(line), name.as_deref(), Some(field), kind);
        }
    }

    #[test]
    fn missing_fields() {
        for field in ["name", "memory", "vcpus", "cpus", "kernel"] {
            let text: String = one("")
                .lines()
                .filter(|l| !l.starts_with(field))
                .map(|l| format!("{l}\n"))
                .collect();
            let name = if field == "name" { None } else { Some("a") };
            assert_err(&text, Some(1), name, Some(field), ErrorKind::Missing);
        }
    }

    #[test]
    fn cross_partition_errors() {
        let second = |name: &str, cpus: &str| {
            format!("[[partition]]\nname = \"{name}\"\nmemory = \"2M\"\nvcpus = 1\ncpus = [{cpus}]\nkernel = \"k\"\n")
        };
        let text = format!("{}{}", one(""), second("a", "1"));
        assert_err(
            &text,
            Some(8),
            Some("a"),
            Some("name"),
            ErrorKind::DuplicateName,
        );
        let text = format!("{}{}", one(""), second("b", "0"));
        assert_err(
            &text,
            Some(11),
            Some("b"),
            Some("cpus"),
            ErrorKind::CpuShared {
                cpu: 0,
                other: "a".into(),
            },
        );
        let text = format!("[machine]\nconsole_input = \"zz\"\n{}", one(""));
        assert_err(
            &text,
            Some(2),
            None,
            Some("console_input"),
            ErrorKind::NoSuchPartition("zz".into()),
        );
        let text = format!(
            "[machine]\nconsole_input = \"a\"\n{}",
            one("console = false")
        );
        assert_err(
            &text,
            Some(2),
            None,
            Some("console_input"),
            ErrorKind::NoConsole("a".into()),
        );
    }

    #[test]
    fn nested_flag() {
        assert!(!parse(&one("")).unwrap().partitions[0].nested);
        assert!(parse(&one("nested = true")).unwrap().partitions[0].nested);
        let e = parse(&one("nested = 1")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("nested"));
    }

    #[test]
    fn mmu_mode() {
        assert_eq!(parse(&one("")).unwrap().partitions[0].mmu, MmuMode::Radix);
        for (text, want) in [
            ("mmu = \"radix\"", MmuMode::Radix),
            ("mmu = \"hash\"", MmuMode::Hash),
            ("mmu = \"any\"", MmuMode::Any),
        ] {
            let m = parse(&one(text)).unwrap();
            assert_eq!(m.partitions[0].mmu, want);
            assert_eq!(parse(&m.to_toml()).unwrap(), m, "round trip");
        }
        for bad in ["mmu = \"HPT\"", "mmu = true", "mmu = \"\""] {
            let e = parse(&one(bad)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("mmu"), "{bad}");
        }
        assert!(MmuMode::Hash.offers_hash() && MmuMode::Any.offers_hash());
        assert!(!MmuMode::Radix.offers_hash());
    }

    #[test]
    fn secure_flag() {
        assert!(!parse(&one("")).unwrap().partitions[0].secure);
        assert!(!parse(&one("secure = false")).unwrap().partitions[0].secure);
        assert!(parse(&one("secure = true")).unwrap().partitions[0].secure);
        let e = parse(&one("secure = \"yes\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("secure"));
        assert!(e.to_string().contains("true or false"), "{e}");
    }

    #[test]
    fn to_toml_round_trips() {
        for text in [
            EXAMPLE.to_string(),
            one("console = false\ninitrd = \"a \\\"b\\\"\""),
            one("secure = true"),
        ] {
            let m = parse(&text).unwrap();
            let again = parse(&m.to_toml()).unwrap();
            assert_eq!(m, again, "{}", m.to_toml());
        }
        let mut m = parse(&one("")).unwrap();
        for bytes in [2u64 << 20, 3 << 30, 6 << 20, 1 << 40] {
            m.partitions[0].memory = bytes;
            assert_eq!(parse(&m.to_toml()).unwrap(), m);
        }
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(3 << 20), "\"3M\"");
        assert_eq!(format_size(3 << 30), "\"3G\"");
        assert_eq!(format_size(2048), "\"2K\"");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn machine_checks() {
        let m = parse(EXAMPLE).unwrap();
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

    /// xorshift64*: a tiny deterministic PRNG for the fuzz tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn fuzz_never_panics() {
        // Every prefix.
        for end in 0..=EXAMPLE.len() {
            if let Some(prefix) = EXAMPLE.get(..end) {
                let _ = parse(prefix).map(|m| m.to_toml());
            }
        }
        // Random byte edits, biased towards the characters the parser cares about.
        const INTERESTING: &[u8] = b"[]\"\\#=,.0x9_-+ \t\n\r'{}aZ\x00\x7f\xc3\xa9";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                let b = if rng.next().is_multiple_of(2) {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                };
                match rng.below(3) {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(m) = parse(&text) {
                // Whatever parses keeps the invariants and round-trips.
                assert_eq!(parse(&m.to_toml()).as_ref(), Ok(&m));
                for p in &m.partitions {
                    assert_eq!(p.cpus.len(), p.vcpus as usize);
                    assert!(p.memory.is_multiple_of(MEMORY_GRANULE) && p.memory != 0);
                }
                let _ = check_against_machine(&m, rng.next(), rng.next() as u32, |_| true);
            } else if let Err(e) = parse(&text) {
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn net_tables() {
        let text = format!(
            "{}\n[[partition.net]]\n\n[[partition.net]]\nmac = \"02:AA:00:00:00:07\"\nvlan = 12\ntrunk = true\n\
             [[partition]]\nname = \"b\"\nmemory = \"2M\"\nvcpus = 1\ncpus = [1]\nkernel = \"k\"\n\
             [[ partition.net ]]\n",
            one("")
        );
        let m = parse(&text).unwrap();
        let a = &m.partitions[0];
        assert_eq!(a.net.len(), 2);
        assert_eq!(a.net[0].mac, generated_mac("a", 0));
        assert_eq!(a.net[0].mac[0], 0x02);
        assert_eq!((a.net[0].vlan, a.net[0].trunk), (1, false));
        assert_eq!(a.net[1].mac, [0x02, 0xaa, 0, 0, 0, 7]);
        assert_eq!((a.net[1].vlan, a.net[1].trunk), (12, true));
        let b = &m.partitions[1];
        assert_eq!(b.net[0].mac, generated_mac("b", 0));
        assert_ne!(b.net[0].mac, a.net[0].mac);
        // Stable: the same name and index give the same address.
        assert_eq!(generated_mac("a", 0), generated_mac("a", 0));
        assert_ne!(generated_mac("a", 0), generated_mac("a", 1));
        // Round trip.
        assert_eq!(parse(&m.to_toml()).unwrap(), m);
        assert_eq!(format_mac(&[2, 0xab, 0, 1, 2, 0xff]), "02:ab:00:01:02:ff");
        assert_eq!(
            parse_mac("02:ab:00:01:02:ff"),
            Some([2, 0xab, 0, 1, 2, 0xff])
        );
        for bad in [
            "02:ab:00:01:02",
            "02:ab:00:01:02:ff:00",
            "2:ab:00:01:02:ff",
            "zz:00:00:00:00:00",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn net_errors() {
        let field = |extra: &str| err(&one(extra)).field;
        for bad in [
            "[[partition.net]]\nmac = \"01:00:5e:00:00:01\"",
            "[[partition.net]]\nmac = \"00:00:00:00:00:00\"",
            "[[partition.net]]\nmac = \"02:00\"",
            "[[partition.net]]\nmac = 5",
        ] {
            assert_eq!(field(bad).as_deref(), Some("mac"), "{bad}");
        }
        for bad in ["0", "4095", "70000", "\"1\""] {
            assert_eq!(
                field(&format!("[[partition.net]]\nvlan = {bad}")).as_deref(),
                Some("vlan"),
                "{bad}"
            );
        }
        assert_eq!(
            field("[[partition.net]]\ntrunk = 1").as_deref(),
            Some("trunk")
        );
        assert_eq!(
            field("[[partition.net]]\nspeed = 1").as_deref(),
            Some("speed")
        );
        // Two adapters with one MAC, in one partition or across two.
        let twice = "[[partition.net]]\nmac = \"02:00:00:00:00:01\"\n[[partition.net]]\nmac = \"02:00:00:00:00:01\"\n";
        assert_eq!(field(twice).as_deref(), Some("mac"));
        // Too many.
        let nine = "[[partition.net]]\n".repeat(9);
        assert!(err(&one(&nine)).to_string().contains("at most 8"));
        // A net table before any partition.
        let e = err("[[partition.net]]\nvlan = 2\n");
        assert!(e.to_string().contains("must follow"), "{e}");
        let e = err("[machine]\n[[partition.net]]\n");
        assert!(e.to_string().contains("must follow"), "{e}");
        assert!(matches!(
            err("[[partition.foo]]\n").kind,
            ErrorKind::UnknownTable(_)
        ));
    }

    #[test]
    fn disks_belong_to_the_partition_above() {
        let text = format!(
            "{}\n[[partition.disk]]\nimage = \"root.ext4\"\n[[ partition.disk ]]\nimage = \"data.img\"\nreadonly = true\n\n[[partition]]\nname = \"b\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [1]\nkernel = \"k\"\n",
            one("")
        );
        let m = parse(&text).unwrap();
        assert_eq!(
            m.partitions[0].disks,
            vec![
                DiskSpec {
                    image: "root.ext4".into(),
                    readonly: false
                },
                DiskSpec {
                    image: "data.img".into(),
                    readonly: true
                }
            ]
        );
        assert!(m.partitions[1].disks.is_empty());
        assert_eq!(parse(&m.to_toml()).unwrap(), m, "round trip");
        // Images are checked against the bundle like kernels.
        let e = check_against_machine(&m, 8 << 30, 4, |f| f != "data.img").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoSuchFile("data.img".into()));
        assert_eq!(e.field.as_deref(), Some("image"));
        assert_eq!(e.partition.as_deref(), Some("a"));
    }

    #[test]
    fn net_and_disk_tables_in_any_order() {
        let text = format!(
            "{}\n[[partition.net]]\nvlan = 3\n[[partition.disk]]\nimage = \"d0\"\n\
             [[partition.net]]\n[[partition.disk]]\nimage = \"d1\"\n",
            one("")
        );
        let m = parse(&text).unwrap();
        let a = &m.partitions[0];
        assert_eq!(a.net.len(), 2);
        assert_eq!(a.net[0].vlan, 3);
        let images: Vec<&str> = a.disks.iter().map(|d| d.image.as_str()).collect();
        assert_eq!(images, ["d0", "d1"]);
        assert_eq!(parse(&m.to_toml()).unwrap(), m, "round trip");
    }

    #[test]
    fn disk_errors() {
        let e = err("[[partition.disk]]\nimage = \"x\"\n");
        assert_eq!(e.kind, ErrorKind::DiskOutsidePartition);
        assert_eq!(e.line, Some(1));
        let e = err(&format!(
            "[machine]\n{}",
            "[[partition.disk]]\nimage = \"x\"\n"
        ));
        assert_eq!(e.kind, ErrorKind::DiskOutsidePartition);
        let e = err(&one("[[partition.disk]]\nreadonly = true\n"));
        assert_eq!(e.kind, ErrorKind::Missing);
        assert_eq!(e.field.as_deref(), Some("image"));
        assert_eq!(e.partition.as_deref(), Some("a"));
        let e = err(&one("[[partition.disk]]\nimage = \"\"\n"));
        assert_eq!(e.kind, ErrorKind::Invalid("must not be empty"));
        let e = err(&one("[[partition.disk]]\nimage = \"x\"\nreadonly = 1\n"));
        assert!(matches!(e.kind, ErrorKind::WrongType { .. }));
        let e = err(&one("[[partition.disk]]\nimage = \"x\"\nsize = 1\n"));
        assert_eq!(e.kind, ErrorKind::UnknownKey);
        assert_eq!(e.line, Some(9));
        let e = err(&one("[[partition.disk]]\nimage = \"x\"\nimage = \"y\"\n"));
        assert_eq!(e.kind, ErrorKind::DuplicateKey);
        let e = err(&one(
            &"[[partition.disk]]\nimage = \"x\"\n".repeat(MAX_DISKS + 1)
        ));
        assert_eq!(e.kind, ErrorKind::TooManyDisks);
        let e = err(&one("[[partition.disks]]\n"));
        assert!(matches!(e.kind, ErrorKind::UnknownTable(_)));
        let e = err(&one("[partition.disk]\n"));
        assert!(matches!(e.kind, ErrorKind::UnknownTable(_)));
        let e = err(&one("[[partition.]]\n"));
        assert!(matches!(e.kind, ErrorKind::UnknownTable(_)));
    }

    #[test]
    fn devices_are_pci_addresses_owned_by_one_partition() {
        let m = parse(&one("devices = [\"0001:01:00.0\", \"0002:01:00.0\"]")).unwrap();
        let d = &m.partitions[0].devices;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].to_string(), "0001:01:00.0");
        assert_eq!(parse(&m.to_toml()).as_ref(), Ok(&m));
        assert!(parse(&one("devices = []")).unwrap().partitions[0]
            .devices
            .is_empty());
        let e = err(&one("devices = [\"01:00.0\"]"));
        assert!(matches!(e.kind, ErrorKind::BadDevice(_)), "{e}");
        let e = err(&one("devices = [\"0001:01:00.0\", \"0001:01:00.0\"]"));
        assert!(matches!(e.kind, ErrorKind::DeviceRepeated(_)), "{e}");
        let e = err(&one("devices = [1, 2]"));
        assert!(matches!(e.kind, ErrorKind::WrongType { .. }), "{e}");
        let e = err(&one("devices = [\"0001:01:00.0\", 3]"));
        assert!(matches!(e.kind, ErrorKind::Syntax(_)), "{e}");
        // 16 MiB DMA granule.
        let text = one("devices = [\"0001:01:00.0\"]").replace("64M", "18M");
        let e = err(&text);
        assert_eq!(e.field.as_deref(), Some("memory"), "{e}");
        // One owner per function.
        let two = format!(
            "{}\n[[partition]]\nname = \"b\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [1]\nkernel = \"k\"\ndevices = [\"0001:01:00.0\"]\n",
            one("devices = [\"0001:01:00.0\"]")
        );
        let e = err(&two);
        assert!(
            matches!(&e.kind, ErrorKind::DeviceShared { other, .. } if other == "a"),
            "{e}"
        );
        assert_eq!(e.partition.as_deref(), Some("b"));
    }

    #[test]
    fn devices_checked_against_the_machine() {
        let m = parse(&one("devices = [\"0001:01:00.0\"]")).unwrap();
        assert!(check_devices(&m, |_| HostFunction::Free).is_ok());
        for (h, want) in [
            (HostFunction::Absent, "no such function"),
            (HostFunction::Bridge, "bridge"),
            (HostFunction::Hypervisor, "hypervisor uses it"),
        ] {
            let e = check_devices(&m, |_| h).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.field.as_deref(), Some("devices"));
        }
    }
}
