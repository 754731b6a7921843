//! Building a flattened device tree (Devicetree Specification v0.4, chapter 5;
//! version 17 blobs, last compatible version 16).
//!
//! The writer is sequential, like libfdt's "sequential write" mode: open a node,
//! give its properties, open and close its children, close it. Every call records
//! the first mistake instead of returning it, so a tree is written as straight-line
//! code and checked once, by [`FdtWriter::finish`].
//!
//! Invariants the writer enforces (each breach is a [`FdtWriteError`]):
//! - exactly one root node, named `""`; every other node name is
//!   `node-name[@unit-address]` from the spec's character set (section 2.2.1);
//! - property names from the spec's character set (section 2.2.4);
//! - properties of a node come before its first child (section 5.4.1), and no node
//!   has two properties or two children of the same name;
//! - no deeper nesting than [`MAX_DEPTH`], so our own reader accepts the result.
//!
//! Property-name strings are deduplicated in the strings block.

use super::reader::MAX_DEPTH;
use alloc::vec::Vec;

/// Why a tree could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtWriteError {
    /// `end_node` with no node open, a second root, a node still open at `finish`,
    /// or no root node at all.
    Unbalanced,
    /// A property before the root node opened or after it closed.
    PropOutsideNode,
    /// A property after the first child node of the same node.
    PropAfterChild,
    /// A node or property name outside the spec's character set, or empty
    /// (only the root is named `""`).
    BadName,
    /// A string value with an embedded NUL byte.
    BadString,
    /// A node already has a property of this name.
    DuplicateProperty,
    /// A node already has a child of this name.
    DuplicateNode,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The blob would not fit the header's 32-bit sizes and offsets.
    TooLarge,
    /// A tree builder was given a value it cannot express (the text says which).
    Invalid(&'static str),
}

impl core::fmt::Display for FdtWriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdtWriteError::Unbalanced => write!(f, "unbalanced device-tree nodes"),
            FdtWriteError::PropOutsideNode => write!(f, "property outside any node"),
            FdtWriteError::PropAfterChild => write!(f, "property after a child node"),
            FdtWriteError::BadName => write!(f, "invalid node or property name"),
            FdtWriteError::BadString => write!(f, "string property with an embedded NUL"),
            FdtWriteError::DuplicateProperty => write!(f, "duplicate property"),
            FdtWriteError::DuplicateNode => write!(f, "duplicate child node"),
            FdtWriteError::TooDeep => write!(f, "device tree nested too deeply"),
            FdtWriteError::TooLarge => write!(f, "device tree larger than 4 GiB"),
            FdtWriteError::Invalid(what) => write!(f, "invalid device-tree input: {what}"),
        }
    }
}

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const VERSION: u32 = 17;
const LAST_COMP_VERSION: u32 = 16;
/// The v17 header: ten big-endian 32-bit fields.
const HEADER_SIZE: usize = 40;
/// One reserve-map entry: big-endian 64-bit address and size.
const RSV_ENTRY_SIZE: usize = 16;

/// Bookkeeping for one open node.
struct Open {
    /// String-block offsets of the properties given so far.
    props: Vec<u32>,
    /// (offset, length) in the structure block of each child's name.
    children: Vec<(usize, usize)>,
}

/// Sequential FDT builder; see the module documentation.
pub struct FdtWriter {
    rsv: Vec<(u64, u64)>,
    structs: Vec<u8>,
    strings: Vec<u8>,
    open: Vec<Open>,
    root_closed: bool,
    err: Option<FdtWriteError>,
}

impl Default for FdtWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FdtWriter {
    pub fn new() -> Self {
        FdtWriter {
            rsv: Vec::new(),
            structs: Vec::new(),
            strings: Vec::new(),
            open: Vec::new(),
            root_closed: false,
            err: None,
        }
    }

    /// Adds a memory reservation block entry. Entries keep the order given; a
    /// zero-sized entry is dropped, since (0, 0) would end the block early.
    pub fn add_reservation(&mut self, addr: u64, size: u64) {
        if size != 0 {
            self.rsv.push((addr, size));
        }
    }

    /// Opens a node: the root (`""`) first, then `name[@unit]` children.
    pub fn begin_node(&mut self, name: &str) {
        if self.err.is_some() {
            return;
        }
        if let Err(e) = self.try_begin_node(name) {
            self.err = Some(e);
        }
    }

    fn try_begin_node(&mut self, name: &str) -> Result<(), FdtWriteError> {
        if self.root_closed {
            return Err(FdtWriteError::Unbalanced);
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(FdtWriteError::TooDeep);
        }
        let at = self.structs.len() + 4;
        match self.open.last_mut() {
            None if !name.is_empty() => return Err(FdtWriteError::BadName),
            None => {}
            Some(parent) => {
                if !valid_node_name(name) {
                    return Err(FdtWriteError::BadName);
                }
                let structs = &self.structs;
                let dup = parent.children.iter().any(|&(off, len)| {
                    structs.get(off..off.saturating_add(len)) == Some(name.as_bytes())
                });
                if dup {
                    return Err(FdtWriteError::DuplicateNode);
                }
                parent.children.push((at, name.len()));
            }
        }
        push_u32(&mut self.structs, FDT_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        pad4(&mut self.structs);
        self.open.push(Open {
            props: Vec::new(),
            children: Vec::new(),
        });
        Ok(())
    }

    /// Closes the innermost open node.
    pub fn end_node(&mut self) {
        if self.err.is_some() {
            return;
        }
        if self.open.pop().is_none() {
            self.err = Some(FdtWriteError::Unbalanced);
            return;
        }
        push_u32(&mut self.structs, FDT_END_NODE);
        if self.open.is_empty() {
            self.root_closed = true;
        }
    }

    /// A property with raw bytes as its value.
    pub fn prop(&mut self, name: &str, value: &[u8]) {
        self.prop_with(name, value.len(), |s| s.extend_from_slice(value));
    }

    /// A property with no value (a flag such as `interrupt-controller`).
    pub fn prop_empty(&mut self, name: &str) {
        self.prop_with(name, 0, |_| {});
    }

    /// One big-endian cell.
    pub fn prop_u32(&mut self, name: &str, v: u32) {
        self.prop_with(name, 4, |s| push_u32(s, v));
    }

    /// One big-endian 64-bit value (two cells, high first).
    pub fn prop_u64(&mut self, name: &str, v: u64) {
        self.prop_with(name, 8, |s| s.extend_from_slice(&v.to_be_bytes()));
    }

    /// A list of cells.
    pub fn prop_cells(&mut self, name: &str, cells: &[u32]) {
        let len = cells.len().saturating_mul(4);
        self.prop_with(name, len, |s| cells.iter().for_each(|&c| push_u32(s, c)));
    }

    /// A list of 64-bit values, each as two cells (high first): `reg` with
    /// `#address-cells` = `#size-cells` = 2, `linux,initrd-start`, ...
    pub fn prop_u64_cells(&mut self, name: &str, vals: &[u64]) {
        let len = vals.len().saturating_mul(8);
        self.prop_with(name, len, |s| {
            vals.iter()
                .for_each(|v| s.extend_from_slice(&v.to_be_bytes()))
        });
    }

    /// A NUL-terminated string.
    pub fn prop_str(&mut self, name: &str, s: &str) {
        self.prop_strs(name, &[s]);
    }

    /// A string list: each string NUL-terminated, one after another.
    pub fn prop_strs(&mut self, name: &str, strs: &[&str]) {
        if strs.iter().any(|s| s.as_bytes().contains(&0)) {
            if self.err.is_none() {
                self.err = Some(FdtWriteError::BadString);
            }
            return;
        }
        let len = strs
            .iter()
            .fold(0usize, |n, s| n.saturating_add(s.len()).saturating_add(1));
        self.prop_with(name, len, |out| {
            for s in strs {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
        });
    }

    /// Writes a property header, then lets `fill` append exactly `len` bytes.
    fn prop_with(&mut self, name: &str, len: usize, fill: impl FnOnce(&mut Vec<u8>)) {
        if self.err.is_some() {
            return;
        }
        match self.prop_header(name, len) {
            Ok(()) => {
                fill(&mut self.structs);
                pad4(&mut self.structs);
            }
            Err(e) => self.err = Some(e),
        }
    }

    fn prop_header(&mut self, name: &str, len: usize) -> Result<(), FdtWriteError> {
        if !valid_prop_name(name) {
            return Err(FdtWriteError::BadName);
        }
        let len = u32::try_from(len).map_err(|_| FdtWriteError::TooLarge)?;
        let nameoff = self.intern(name)?;
        let node = self.open.last_mut().ok_or(FdtWriteError::PropOutsideNode)?;
        if !node.children.is_empty() {
            return Err(FdtWriteError::PropAfterChild);
        }
        if node.props.contains(&nameoff) {
            return Err(FdtWriteError::DuplicateProperty);
        }
        node.props.push(nameoff);
        push_u32(&mut self.structs, FDT_PROP);
        push_u32(&mut self.structs, len);
        push_u32(&mut self.structs, nameoff);
        Ok(())
    }

    /// The strings-block offset of `name`, adding it if it is new.
    fn intern(&mut self, name: &str) -> Result<u32, FdtWriteError> {
        let mut off = 0;
        for s in self.strings.split(|&c| c == 0) {
            if s == name.as_bytes() && off < self.strings.len() {
                return u32::try_from(off).map_err(|_| FdtWriteError::TooLarge);
            }
            off += s.len() + 1;
        }
        let at = u32::try_from(self.strings.len()).map_err(|_| FdtWriteError::TooLarge)?;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        Ok(at)
    }

    /// Assembles the blob. `boot_cpuid_phys` goes in the header: the interrupt
    /// server number of the CPU that enters the kernel.
    pub fn finish(self, boot_cpuid_phys: u32) -> Result<Vec<u8>, FdtWriteError> {
        self.assemble(boot_cpuid_phys, None)
    }

    /// Like [`finish`](Self::finish), and also reserves the blob itself, as loaded
    /// at guest address `load_addr`, in its own reserve map (the entry's size is
    /// the final total size).
    pub fn finish_reserving_self(
        self,
        boot_cpuid_phys: u32,
        load_addr: u64,
    ) -> Result<Vec<u8>, FdtWriteError> {
        self.assemble(boot_cpuid_phys, Some(load_addr))
    }

    fn assemble(mut self, boot: u32, self_at: Option<u64>) -> Result<Vec<u8>, FdtWriteError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        if !self.open.is_empty() || !self.root_closed {
            return Err(FdtWriteError::Unbalanced);
        }
        push_u32(&mut self.structs, FDT_END);
        let n_rsv = self.rsv.len() + usize::from(self_at.is_some()) + 1;
        // Header, then the reserve map (8-aligned: 40 is), the structure block
        // (4-aligned, as every piece of it is), and the strings.
        let off_rsv = HEADER_SIZE;
        let off_struct = off_rsv + n_rsv * RSV_ENTRY_SIZE;
        let off_strings = off_struct + self.structs.len();
        let total = off_strings + self.strings.len();
        let to32 = |v: usize| u32::try_from(v).map_err(|_| FdtWriteError::TooLarge);
        let header = [
            FDT_MAGIC,
            to32(total)?,
            to32(off_struct)?,
            to32(off_strings)?,
            to32(off_rsv)?,
            VERSION,
            LAST_COMP_VERSION,
            boot,
            to32(self.strings.len())?,
            to32(self.structs.len())?,
        ];
        let mut out = Vec::with_capacity(total);
        header.iter().for_each(|&w| push_u32(&mut out, w));
        if let Some(at) = self_at {
            self.rsv.push((at, total as u64));
        }
        for &(a, s) in self.rsv.iter().chain(core::iter::once(&(0, 0))) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&self.structs);
        out.extend_from_slice(&self.strings);
        Ok(out)
    }
}

fn push_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Devicetree Specification 2.2.1: `node-name@unit-address`, both parts from
/// `[0-9a-zA-Z,._+-]`, the name part non-empty and starting with a letter (we
/// accept digits too, as Linux does), at most one `@`.
fn valid_node_name(name: &str) -> bool {
    let node_char = |c: u8| c.is_ascii_alphanumeric() || b",._+-".contains(&c);
    let (base, unit) = match name.split_once('@') {
        Some((b, u)) => (b, Some(u)),
        None => (name, None),
    };
    !base.is_empty()
        && base.bytes().all(node_char)
        && unit.is_none_or(|u| !u.is_empty() && u.bytes().all(node_char))
}

/// Devicetree Specification 2.2.4: `[0-9a-zA-Z,._+?#-]`, non-empty.
fn valid_prop_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b",._+?#-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::reader::{Fdt, ReadError, Token};
    use std::vec;

    fn tokens(blob: &[u8]) -> Vec<Token<'_>> {
        Fdt::new(blob)
            .unwrap()
            .tokens()
            .collect::<Result<Vec<_>, ReadError>>()
            .unwrap()
    }

    #[test]
    fn writes_a_tree_the_reader_walks_token_by_token() {
        let mut w = FdtWriter::new();
        w.add_reservation(0x1000, 0x2000);
        w.add_reservation(0x8000_0000_0000, 0x10);
        w.begin_node("");
        w.prop_u32("#address-cells", 2);
        w.prop_u32("#size-cells", 2);
        w.prop_str("compatible", "qemu,pseries");
        w.begin_node("cpus");
        w.prop_u32("#address-cells", 1);
        w.prop_u32("#size-cells", 0);
        w.begin_node("PowerPC,POWER9@0");
        w.prop_cells("ibm,ppc-interrupt-server#s", &[0, 1]);
        w.prop_empty("64-bit");
        w.end_node();
        w.end_node();
        w.begin_node("memory@0");
        w.prop_u64_cells("reg", &[0, 0x4000_0000]);
        w.prop_u64("linux,initrd-start", 0x0123_4567_89ab_cdef);
        w.prop_strs("list", &["a", "", "bcd"]);
        w.prop("raw", &[1, 2, 3, 4, 5]);
        w.end_node();
        w.end_node();
        let blob = w.finish(7).unwrap();

        let f = Fdt::new(&blob).unwrap();
        assert_eq!(f.total_size(), blob.len());
        assert_eq!(f.boot_cpuid_phys(), 7);
        let rsv: Vec<_> = f.reservations().collect::<Result<_, _>>().unwrap();
        assert_eq!(rsv, vec![(0x1000, 0x2000), (0x8000_0000_0000, 0x10)]);
        let p = |name, value| Token::Prop { name, value };
        assert_eq!(
            tokens(&blob),
            vec![
                Token::Begin { name: "", depth: 0 },
                p("#address-cells", &[0, 0, 0, 2][..]),
                p("#size-cells", &[0, 0, 0, 2]),
                p("compatible", b"qemu,pseries\0"),
                Token::Begin {
                    name: "cpus",
                    depth: 1
                },
                p("#address-cells", &[0, 0, 0, 1]),
                p("#size-cells", &[0, 0, 0, 0]),
                Token::Begin {
                    name: "PowerPC,POWER9@0",
                    depth: 2
                },
                p("ibm,ppc-interrupt-server#s", &[0, 0, 0, 0, 0, 0, 0, 1]),
                p("64-bit", &[]),
                Token::End,
                Token::End,
                Token::Begin {
                    name: "memory@0",
                    depth: 1
                },
                p("reg", &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0]),
                p(
                    "linux,initrd-start",
                    &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
                ),
                p("list", b"a\0\0bcd\0"),
                p("raw", &[1, 2, 3, 4, 5]),
                Token::End,
                Token::End,
            ]
        );
    }

    #[test]
    fn header_layout_and_alignment() {
        let mut w = FdtWriter::new();
        w.add_reservation(1, 2);
        w.begin_node("");
        // Every value length 0..=9 exercises the padding.
        let names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"];
        for (len, name) in names.iter().enumerate() {
            w.prop(name, &vec![0xaa; len]);
        }
        w.end_node();
        let blob = w.finish(0).unwrap();
        let h = |i: usize| u32::from_be_bytes(blob[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(h(0), 0xd00d_feed);
        assert_eq!(h(1) as usize, blob.len());
        assert_eq!(h(4), 40, "reserve map right after the header");
        assert_eq!(h(4) % 8, 0);
        assert_eq!(h(2), 40 + 2 * 16, "one entry plus the terminator");
        assert_eq!(h(2) % 4, 0);
        assert_eq!(h(3), h(2) + h(9));
        assert_eq!(h(5), 17);
        assert_eq!(h(6), 16);
        assert_eq!(h(9) % 4, 0);
        let toks = tokens(&blob);
        for (len, name) in names.iter().enumerate() {
            assert!(toks.contains(&Token::Prop {
                name,
                value: &vec![0xaa; len]
            }));
        }
    }

    #[test]
    fn property_names_are_deduplicated() {
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.prop_u32("reg", 1);
        w.prop_u32("device_type", 1);
        for i in 0..5 {
            w.begin_node(&std::format!("n@{i}"));
            w.prop_u32("reg", i);
            w.prop_str("device_type", "cpu");
            w.end_node();
        }
        w.end_node();
        let blob = w.finish(0).unwrap();
        let size_strings = u32::from_be_bytes(blob[32..36].try_into().unwrap());
        assert_eq!(size_strings as usize, "reg\0device_type\0".len());
        let regs: Vec<_> = tokens(&blob)
            .into_iter()
            .filter_map(|t| match t {
                Token::Prop { name: "reg", value } => Some(value.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(regs.len(), 6);
        assert_eq!(regs[5], vec![0, 0, 0, 4]);
    }

    #[test]
    fn empty_reserve_map_and_zero_sized_entries() {
        let mut w = FdtWriter::new();
        w.add_reservation(0x1234, 0);
        w.begin_node("");
        w.end_node();
        let blob = w.finish(3).unwrap();
        let f = Fdt::new(&blob).unwrap();
        assert_eq!(f.reservations().count(), 0);
        assert_eq!(
            tokens(&blob),
            vec![Token::Begin { name: "", depth: 0 }, Token::End]
        );
    }

    #[test]
    fn reserving_self_records_the_final_size() {
        let mut w = FdtWriter::new();
        w.add_reservation(0x10_0000, 0x1000);
        w.begin_node("");
        w.prop_str("model", "x");
        w.end_node();
        let blob = w.finish_reserving_self(0, 0x200_0000).unwrap();
        let f = Fdt::new(&blob).unwrap();
        let rsv: Vec<_> = f.reservations().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            rsv,
            vec![(0x10_0000, 0x1000), (0x200_0000, blob.len() as u64)]
        );
    }

    fn err_of(f: impl FnOnce(&mut FdtWriter)) -> FdtWriteError {
        let mut w = FdtWriter::new();
        f(&mut w);
        w.finish(0).unwrap_err()
    }

    #[test]
    fn structural_mistakes_are_errors() {
        use FdtWriteError::*;
        assert_eq!(err_of(|_| {}), Unbalanced, "no root");
        assert_eq!(err_of(|w| w.begin_node("")), Unbalanced, "root left open");
        assert_eq!(err_of(|w| w.end_node()), Unbalanced, "end without begin");
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.begin_node("a");
                w.end_node();
            }),
            Unbalanced
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.end_node();
                w.end_node();
            }),
            Unbalanced
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.end_node();
                w.begin_node("");
                w.end_node();
            }),
            Unbalanced,
            "two roots"
        );
        assert_eq!(err_of(|w| w.prop_u32("a", 1)), PropOutsideNode);
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.end_node();
                w.prop_u32("a", 1);
            }),
            PropOutsideNode
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.begin_node("c");
                w.end_node();
                w.prop_u32("a", 1);
                w.end_node();
            }),
            PropAfterChild
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.prop_u32("a", 1);
                w.prop_u32("a", 2);
                w.end_node();
            }),
            DuplicateProperty
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.begin_node("c@1");
                w.end_node();
                w.begin_node("c@1");
                w.end_node();
                w.end_node();
            }),
            DuplicateNode
        );
        assert_eq!(
            err_of(|w| {
                w.begin_node("");
                w.prop_str("s", "a\0b");
                w.end_node();
            }),
            BadString
        );
        assert_eq!(
            err_of(|w| {
                for _ in 0..=MAX_DEPTH {
                    w.begin_node(if w.open.is_empty() { "" } else { "n" });
                }
            }),
            TooDeep
        );
        // The first error wins even if later calls would also fail.
        assert_eq!(
            err_of(|w| {
                w.prop_u32("a", 1);
                w.end_node();
            }),
            PropOutsideNode
        );
    }

    #[test]
    fn same_names_in_different_nodes_are_fine() {
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.prop_u32("a", 1);
        w.begin_node("x");
        w.prop_u32("a", 1);
        w.begin_node("x");
        w.end_node();
        w.end_node();
        w.begin_node("y");
        w.begin_node("x");
        w.end_node();
        w.end_node();
        w.end_node();
        assert!(w.finish(0).is_ok());
    }

    #[test]
    fn names_are_checked() {
        let bad_nodes = ["", "a/b", "a@", "@1", "a@1@2", "a b", "a\0", "é"];
        for name in bad_nodes {
            let e = err_of(|w| {
                w.begin_node("");
                w.begin_node(name);
                w.end_node();
                w.end_node();
            });
            assert_eq!(e, FdtWriteError::BadName, "{name:?}");
        }
        assert_eq!(err_of(|w| w.begin_node("root")), FdtWriteError::BadName);
        let good_nodes = [
            "cpus",
            "PowerPC,POWER9@0",
            "vty@71000000",
            "ibm,firmware-allocs-memory@31c18000",
            "a_b.c+d-e",
        ];
        for name in good_nodes {
            let mut w = FdtWriter::new();
            w.begin_node("");
            w.begin_node(name);
            w.end_node();
            w.end_node();
            assert!(w.finish(0).is_ok(), "{name}");
        }
        for name in ["", "a b", "a/b", "a@b", "a\0"] {
            let e = err_of(|w| {
                w.begin_node("");
                w.prop_empty(name);
                w.end_node();
            });
            assert_eq!(e, FdtWriteError::BadName, "{name:?}");
        }
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.prop_empty("ibm,ppc-interrupt-server#s");
        w.prop_empty("linux,stdout-path");
        w.prop_empty("what?");
        w.end_node();
        assert!(w.finish(0).is_ok());
    }
}
