//! The manifest as a flattened device tree: `manifest.dtb` in the boot bundle.
//!
//! xtask compiles the user's TOML into this form ([`encode`]); the hypervisor
//! reads it ([`decode`]) with the bounds-checked FDT reader it already trusts
//! for skiboot's tree, so the trusted code has one parser. The decoder checks
//! every byte and refuses whatever it does not know, and [`super::from_tables`]
//! then runs the same checks as for TOML.
//!
//! The tree (keys are the TOML keys, unchanged):
//!
//! ```text
//! / {
//!     compatible = "paprika,manifest-v1";
//!     machine { power_off_when_idle = <0x0 0x1>; console_input = "linux"; };
//!     partition@0 {
//!         name = "linux"; memory = <0x0 0x20000000>; cpus = <0x0 0x1 0x0 0x2>; ...
//!         <sub-table>@0 { ... };     // e.g. [[partition.net]], in order
//!     };
//!     partition@1 { ... };
//! };
//! ```
//!
//! A table that may appear many times ([`TableKind::many`]) is a node with its
//! index as unit address (hex, `@0`, `@1`, ..., `@a`), in order; a sub-table is a
//! child node of its table's node, named by the last part of its TOML name. A
//! property's encoding is its key's [`ValueType`] ([`super::key_type`]):
//!
//! | type | bytes |
//! | --- | --- |
//! | string | UTF-8, NUL-terminated, no other NUL |
//! | integer | one 64-bit big-endian value (two cells) |
//! | boolean | one cell, 0 or 1 |
//! | array of integers | 64-bit big-endian values, 8 bytes each |
//! | array of strings | NUL-terminated strings one after another (empty: no bytes) |

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{key_type, Entry, ErrorKind, Loc, ManifestError, Table, TableKind, Value, ValueType};
use crate::fdt::reader::{Fdt, ReadError, Token};
use crate::fdt::writer::{FdtWriteError, FdtWriter};

/// The root's `compatible`: a blob of another format or version is refused.
pub const COMPATIBLE: &str = "paprika,manifest-v1";

/// Writes `tables` (in the order [`super::from_tables`] takes them) as a
/// device tree. Fails on a value the tree cannot hold (a string with a NUL, a
/// sub-table without its table) or a key [`key_type`] does not know or types
/// otherwise: [`super::Manifest::to_tables`] never gives one.
pub fn encode(tables: &[Table]) -> Result<Vec<u8>, ManifestError> {
    let mut w = FdtWriter::new();
    w.begin_node("");
    w.prop_str("compatible", COMPATIBLE);
    // The sub-table nodes open under the last top-level node.
    let mut open_parent: Option<TableKind> = None;
    let mut top_counts: Vec<(TableKind, usize)> = Vec::new();
    let mut sub_counts: Vec<(TableKind, usize)> = Vec::new();
    for t in tables {
        let err = |kind| ManifestError::new(kind).at(t.at).in_partition(t.label());
        let counts = match t.kind.parent() {
            None => {
                if open_parent.take().is_some() {
                    w.end_node();
                }
                sub_counts.clear();
                &mut top_counts
            }
            Some(parent) if open_parent == Some(parent) => &mut sub_counts,
            Some(_) => return Err(err(ErrorKind::UnknownTable(t.kind.header()))),
        };
        let n = bump(counts, t.kind);
        let leaf = t.kind.leaf();
        let node = if t.kind.many() {
            format!("{leaf}@{n:x}")
        } else {
            leaf.to_string()
        };
        w.begin_node(&node);
        for e in &t.entries {
            put(&mut w, t.kind, e).map_err(|k| err(k).field(&e.key))?;
        }
        if t.kind.parent().is_none() {
            // Closed by the next top-level table or at the end, after its
            // sub-tables.
            open_parent = Some(t.kind);
        } else {
            w.end_node();
        }
    }
    if open_parent.is_some() {
        w.end_node();
    }
    w.end_node();
    w.finish(0).map_err(|e| {
        ManifestError::new(ErrorKind::Dtb(match e {
            FdtWriteError::BadString => "a string holds a NUL",
            FdtWriteError::TooLarge => "larger than 4 GiB",
            _ => "cannot be written (a key or table name outside the device-tree character set)",
        }))
    })
}

/// The next index of `kind` in `counts`, counted.
fn bump(counts: &mut Vec<(TableKind, usize)>, kind: TableKind) -> usize {
    if let Some((_, n)) = counts.iter_mut().find(|(k, _)| *k == kind) {
        *n += 1;
        *n - 1
    } else {
        counts.push((kind, 1));
        0
    }
}

/// One entry as a property of its canonical type.
fn put(w: &mut FdtWriter, kind: TableKind, e: &Entry) -> Result<(), ErrorKind> {
    let want = key_type(kind, &e.key).ok_or(ErrorKind::UnknownKey)?;
    match (want, &e.value) {
        (ValueType::Str, Value::Str(s)) => w.prop_str(&e.key, s),
        (ValueType::Int, Value::Int(n)) => w.prop_u64(&e.key, *n),
        (ValueType::Bool, Value::Bool(b)) => w.prop_u32(&e.key, u32::from(*b)),
        (ValueType::Ints, Value::Ints(v)) => w.prop_u64_cells(&e.key, v),
        (ValueType::Strs, Value::Strs(v)) => {
            let strs: Vec<&str> = v.iter().map(String::as_str).collect();
            w.prop_strs(&e.key, &strs);
        }
        (ValueType::Strs, Value::Ints(v)) if v.is_empty() => w.prop_strs(&e.key, &[]),
        (_, v) => {
            return Err(ErrorKind::WrongType {
                expected: type_words(want),
                found: v.type_name(),
            })
        }
    }
    Ok(())
}

fn type_words(t: ValueType) -> &'static str {
    match t {
        ValueType::Str => "a string",
        ValueType::Int => "an integer",
        ValueType::Bool => "a boolean",
        ValueType::Ints => "an array of integers",
        ValueType::Strs => "an array of strings",
    }
}

fn read_error(e: ReadError) -> ErrorKind {
    ErrorKind::Dtb(match e {
        ReadError::BadHeader => "bad header (not a flattened device tree, or an unknown version)",
        ReadError::Truncated => "truncated",
        ReadError::BadToken(_) => "bad structure token",
        ReadError::BadString => "a node or property name is not a string",
        ReadError::Unbalanced => "unbalanced nodes",
    })
}

/// Where the decoder is in the tree.
enum Place {
    /// Before the root opened.
    Start,
    Root,
    /// Inside the node of the last table read (a table or a sub-table).
    Table,
    /// After the root closed.
    Done,
}

/// Reads a manifest device tree back into tables, checking everything: the
/// header and structure (through the FDT reader), the root's `compatible`, every
/// node's name and unit address (in order), every property's name
/// ([`key_type`]) and bytes. Never panics, whatever the blob.
pub fn decode(blob: &[u8]) -> Result<Vec<Table>, ManifestError> {
    let fdt = Fdt::new(blob).map_err(|e| ManifestError::new(read_error(e)))?;
    let dtb = |what| ManifestError::new(ErrorKind::Dtb(what));
    let mut tables: Vec<Table> = Vec::new();
    let mut place = Place::Start;
    let mut compatible = false;
    // Counts of tables of each kind (top level) and of sub-tables of the
    // current table.
    let mut top_counts: Vec<(TableKind, usize)> = Vec::new();
    let mut sub_counts: Vec<(TableKind, usize)> = Vec::new();
    // The kind of the open top-level table, while one is open; whether the
    // current node has had a child (properties must come first).
    let mut parent: Option<TableKind> = None;
    let mut had_child = [false; 3];
    let mut depth = 0usize;
    for token in fdt.tokens() {
        let token = token.map_err(|e| ManifestError::new(read_error(e)))?;
        match token {
            Token::Begin { name, depth: d } => {
                depth = d + 1;
                match (&place, d) {
                    (Place::Start, 0) if name.is_empty() => place = Place::Root,
                    (Place::Start, _) => return Err(dtb("the root node must be named \"\"")),
                    (Place::Done, _) => return Err(dtb("a second root node")),
                    (_, 1 | 2) => {
                        had_child[d - 1] = true;
                        let want_parent = if d == 1 { None } else { parent };
                        let counts = if d == 1 {
                            sub_counts.clear();
                            &mut top_counts
                        } else {
                            &mut sub_counts
                        };
                        let kind = node_kind(name, want_parent, counts)?;
                        if d == 1 {
                            parent = Some(kind);
                        }
                        had_child[d] = false;
                        tables.push(Table::new(kind));
                        place = Place::Table;
                    }
                    _ => return Err(dtb("nodes nested deeper than a sub-table")),
                }
            }
            Token::Prop { name, value } => {
                let node = depth.checked_sub(1).and_then(|i| had_child.get(i));
                if node.copied().unwrap_or(true) {
                    return Err(dtb("a property after a child node"));
                }
                match place {
                    Place::Root => {
                        if name != "compatible" {
                            return Err(ManifestError::new(ErrorKind::KeyOutsideTable).field(name));
                        }
                        if compatible || value != cstr(COMPATIBLE).as_slice() {
                            return Err(
                                dtb("not a Paprika manifest (root compatible is not \"paprika,manifest-v1\")")
                                    .field("compatible"),
                            );
                        }
                        compatible = true;
                    }
                    Place::Table => {
                        let Some(t) = tables.last_mut() else {
                            return Err(dtb("a property outside any table"));
                        };
                        let err =
                            |kind| ManifestError::new(kind).in_partition(t.label()).field(name);
                        if t.entries.iter().any(|e| e.key == name) {
                            return Err(err(ErrorKind::DuplicateKey));
                        }
                        let ty =
                            key_type(t.kind, name).ok_or_else(|| err(ErrorKind::UnknownKey))?;
                        let value = get(ty, value).map_err(|what| err(ErrorKind::Dtb(what)))?;
                        t.entries.push(Entry {
                            key: name.to_string(),
                            value,
                            at: Loc::NONE,
                        });
                    }
                    Place::Start | Place::Done => return Err(dtb("a property outside the root")),
                }
            }
            Token::End => {
                depth = depth.saturating_sub(1);
                match depth {
                    0 => place = Place::Done,
                    1 => {
                        // Back in the root: the table's node closed.
                        parent = None;
                        place = Place::Root;
                    }
                    _ => place = Place::Table,
                }
            }
        }
    }
    if !matches!(place, Place::Done) {
        return Err(dtb("no root node"));
    }
    if !compatible {
        return Err(dtb("not a Paprika manifest (no root compatible)"));
    }
    Ok(tables)
}

/// The kind of table a node named `name` holds, checking its unit address
/// against the count so far (which it advances).
fn node_kind(
    name: &str,
    parent: Option<TableKind>,
    counts: &mut Vec<(TableKind, usize)>,
) -> Result<TableKind, ManifestError> {
    let (leaf, unit) = match name.split_once('@') {
        Some((l, u)) => (l, Some(u)),
        None => (name, None),
    };
    let kind = TableKind::ALL
        .into_iter()
        .find(|k| k.parent() == parent && k.leaf() == leaf)
        .ok_or_else(|| ManifestError::new(ErrorKind::UnknownTable(format!("node {name}"))))?;
    let expected = bump(counts, kind);
    let ok = match unit {
        None => !kind.many() && expected == 0,
        Some(u) => kind.many() && u == format!("{expected:x}"),
    };
    if !ok {
        let why = if kind.many() {
            "a table node's unit address must be its index (@0, @1, ... in hex, in order)"
        } else {
            "a table that appears once has no unit address, and appears once"
        };
        return Err(ManifestError::new(ErrorKind::Dtb(why)).field(name));
    }
    Ok(kind)
}

/// `s` and its NUL.
fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A property's bytes as a value of type `ty`.
fn get(ty: ValueType, b: &[u8]) -> Result<Value, &'static str> {
    let u64s = |b: &[u8]| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    };
    Ok(match ty {
        ValueType::Str => {
            let strs = strings(b)?;
            match <[String; 1]>::try_from(strs) {
                Ok([s]) => Value::Str(s),
                Err(_) => return Err("a string property must hold exactly one string"),
            }
        }
        ValueType::Int => {
            if b.len() != 8 {
                return Err("an integer property must be 8 bytes");
            }
            Value::Int(u64s(b)[0])
        }
        ValueType::Bool => match b {
            [0, 0, 0, 0] => Value::Bool(false),
            [0, 0, 0, 1] => Value::Bool(true),
            _ => return Err("a boolean property must be one cell, 0 or 1"),
        },
        ValueType::Ints => {
            if !b.len().is_multiple_of(8) {
                return Err("an integer-array property must be a multiple of 8 bytes");
            }
            Value::Ints(u64s(b))
        }
        ValueType::Strs => Value::Strs(strings(b)?),
    })
}

/// NUL-terminated UTF-8 strings one after another.
fn strings(b: &[u8]) -> Result<Vec<String>, &'static str> {
    let Some(body) = b.strip_suffix(&[0]) else {
        return if b.is_empty() {
            Ok(Vec::new())
        } else {
            Err("a string property must end with a NUL")
        };
    };
    body.split(|&c| c == 0)
        .map(|s| {
            core::str::from_utf8(s)
                .map(String::from)
                .map_err(|_| "a string property is not UTF-8")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{
        from_dtb, from_tables, generated_mac, DiskSpec, Manifest, MmuMode, NetSpec, PartitionSpec,
    };
    use super::*;
    use crate::testutil::XorShift;

    fn manifest() -> Manifest {
        let p = PartitionSpec {
            name: "linux".into(),
            memory: 512 << 20,
            vcpus: 2,
            cpus: vec![1, 2],
            kernel: "vmlinux".into(),
            initrd: Some("initrd.cpio".into()),
            cmdline: "console=hvc0 msg=\"hi\"\tpath=C:\\x é".into(),
            console: true,
            expect: Some("GUEST-PASS".into()),
            secure: true,
            nested: true,
            tpm: false,
            mmu: MmuMode::Any,
            devices: vec![
                crate::pci::PciAddress::parse("0001:01:00.0").unwrap(),
                crate::pci::PciAddress::parse("0002:03:1f.7").unwrap(),
            ],
            net: vec![
                NetSpec {
                    mac: generated_mac("linux", 0),
                    vlan: 1,
                    trunk: false,
                },
                NetSpec {
                    mac: [2, 0xaa, 0, 0, 0, 7],
                    vlan: 12,
                    trunk: true,
                },
            ],
            disks: vec![
                DiskSpec {
                    image: "root.img".into(),
                    readonly: false,
                },
                DiskSpec {
                    image: "ro.img".into(),
                    readonly: true,
                },
            ],
        };
        let mut m = Manifest {
            machine: Default::default(),
            partitions: vec![p.clone()],
        };
        for i in 1..12u32 {
            m.partitions.push(PartitionSpec {
                name: format!("p{i}"),
                memory: 2 << 20,
                vcpus: 1,
                cpus: vec![10 + i],
                kernel: "k".into(),
                initrd: None,
                cmdline: String::new(),
                console: i % 2 == 0,
                expect: None,
                secure: false,
                nested: false,
                tpm: false,
                mmu: MmuMode::Hash,
                devices: Vec::new(),
                net: Vec::new(),
                disks: Vec::new(),
            });
        }
        m.machine.power_off_when_idle = false;
        m.validated().unwrap()
    }

    /// Tables without their places (a device tree has none).
    fn unplaced(mut tables: Vec<Table>) -> Vec<Table> {
        for t in &mut tables {
            t.at = Loc::NONE;
            for e in &mut t.entries {
                e.at = Loc::NONE;
            }
        }
        tables
    }

    #[test]
    fn round_trip() {
        let m = manifest();
        let blob = m.to_dtb().unwrap();
        assert_eq!(decode(&blob).unwrap(), unplaced(m.to_tables()));
        assert_eq!(from_dtb(&blob).as_ref(), Ok(&m));
        // Compact: under 256 bytes a partition here.
        assert!(blob.len() < 256 * m.partitions.len(), "{}", blob.len());
        // Unit addresses in hex, in order.
        let fdt = Fdt::new(&blob).unwrap();
        let names: Vec<&str> = fdt
            .tokens()
            .filter_map(|t| match t.unwrap() {
                Token::Begin { name, depth: 1 } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(names[..2], ["machine", "partition@0"]);
        assert_eq!(names[11..], ["partition@a", "partition@b"]);
        // Sub-tables are child nodes of their partition's, in order.
        let subs: Vec<&str> = fdt
            .tokens()
            .filter_map(|t| match t.unwrap() {
                Token::Begin { name, depth: 2 } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(subs, ["net@0", "net@1", "disk@0", "disk@1"]);
    }

    #[test]
    fn every_value_type_round_trips() {
        let cases = [
            (ValueType::Str, Value::Str("a b".into())),
            (ValueType::Str, Value::Str(String::new())),
            (ValueType::Int, Value::Int(u64::MAX - 5)),
            (ValueType::Bool, Value::Bool(false)),
            (ValueType::Bool, Value::Bool(true)),
            (ValueType::Ints, Value::Ints(vec![])),
            (ValueType::Ints, Value::Ints(vec![0, 1 << 40, 7])),
            (ValueType::Strs, Value::Strs(vec![])),
            (
                ValueType::Strs,
                Value::Strs(vec!["0001:01:00.0".into(), String::new(), "x".into()]),
            ),
        ];
        for (ty, value) in cases {
            let mut w = FdtWriter::new();
            w.begin_node("");
            match &value {
                Value::Str(s) => w.prop_str("v", s),
                Value::Int(n) => w.prop_u64("v", *n),
                Value::Bool(b) => w.prop_u32("v", u32::from(*b)),
                Value::Ints(v) => w.prop_u64_cells("v", v),
                Value::Strs(v) => {
                    let v: Vec<&str> = v.iter().map(String::as_str).collect();
                    w.prop_strs("v", &v)
                }
                Value::Other(_) => unreachable!(),
            }
            w.end_node();
            let blob = w.finish(0).unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            let bytes = fdt
                .tokens()
                .find_map(|t| match t.unwrap() {
                    Token::Prop { value, .. } => Some(value),
                    _ => None,
                })
                .unwrap();
            assert_eq!(get(ty, bytes), Ok(value.clone()), "{ty:?}");
        }
        // An empty integer array stands for an empty string list.
        let mut w = FdtWriter::new();
        w.begin_node("");
        let e = Entry {
            key: "x".into(),
            value: Value::Ints(vec![]),
            at: Loc::NONE,
        };
        assert_eq!(
            put(&mut w, TableKind::Partition, &e),
            Err(ErrorKind::UnknownKey)
        );
    }

    #[test]
    fn bad_bytes_are_refused() {
        let cases: &[(ValueType, &[u8])] = &[
            (ValueType::Str, b""),
            (ValueType::Str, b"abc"),
            (ValueType::Str, b"a\0b\0"),
            (ValueType::Str, b"\xff\0"),
            (ValueType::Int, b"\0\0\0\x01"),
            (ValueType::Int, &[0; 9]),
            (ValueType::Bool, b""),
            (ValueType::Bool, &[0, 0, 0, 2]),
            (ValueType::Bool, &[0, 0, 0, 0, 0, 0, 0, 1]),
            (ValueType::Bool, &[1]),
            (ValueType::Ints, &[0; 12]),
            (ValueType::Ints, &[0; 1]),
            (ValueType::Strs, b"a\0b"),
            (ValueType::Strs, b"a\0\xc3\0"),
        ];
        for (ty, bytes) in cases {
            assert!(get(*ty, bytes).is_err(), "{ty:?} {bytes:?}");
        }
    }

    /// One structure-block event of a hand-made tree.
    enum T<'a> {
        Begin(&'a str),
        Prop(&'a str, &'a [u8]),
        End,
    }

    /// A tree written token by token, without the writer's checks: what a
    /// hostile bundle could hold.
    fn raw(tokens: &[T<'_>]) -> Vec<u8> {
        let mut structs: Vec<u8> = Vec::new();
        let mut strings: Vec<u8> = Vec::new();
        let w = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        let pad = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
        for t in tokens {
            match t {
                T::Begin(name) => {
                    w(&mut structs, 1);
                    structs.extend_from_slice(name.as_bytes());
                    structs.push(0);
                    pad(&mut structs);
                }
                T::Prop(name, value) => {
                    w(&mut structs, 3);
                    w(&mut structs, value.len() as u32);
                    w(&mut structs, strings.len() as u32);
                    strings.extend_from_slice(name.as_bytes());
                    strings.push(0);
                    structs.extend_from_slice(value);
                    pad(&mut structs);
                }
                T::End => w(&mut structs, 2),
            }
        }
        w(&mut structs, 9);
        let off_struct = 40 + 16;
        let off_strings = off_struct + structs.len();
        let total = off_strings + strings.len();
        let mut blob = Vec::new();
        for v in [
            0xd00d_feed,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            40,
            17,
            16,
            0,
            strings.len() as u32,
            structs.len() as u32,
        ] {
            w(&mut blob, v);
        }
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&structs);
        blob.extend_from_slice(&strings);
        blob
    }

    const COMPAT: T<'static> = T::Prop("compatible", b"paprika,manifest-v1\0");

    /// A valid partition node's properties (name `a`, thread `cpu`).
    fn partition(node: &'static str, cpu: u8) -> Vec<T<'static>> {
        let cpus: &'static [u8] = match cpu {
            0 => &[0, 0, 0, 0, 0, 0, 0, 0],
            _ => &[0, 0, 0, 0, 0, 0, 0, 1],
        };
        vec![
            T::Begin(node),
            T::Prop("name", if cpu == 0 { b"a\0" } else { b"b\0" }),
            T::Prop("memory", &[0, 0, 0, 0, 0, 0x20, 0, 0]),
            T::Prop("vcpus", &[0, 0, 0, 0, 0, 0, 0, 1]),
            T::Prop("cpus", cpus),
            T::Prop("kernel", b"k\0"),
            T::End,
        ]
    }

    /// `/ { compatible; <body> }`.
    fn tree(body: Vec<T<'static>>) -> Vec<u8> {
        let mut t = vec![T::Begin(""), COMPAT];
        t.extend(body);
        t.push(T::End);
        raw(&t)
    }

    #[test]
    fn hand_made_tree_is_read() {
        let mut body = partition("partition@0", 0);
        body.extend(partition("partition@1", 1));
        let m = from_dtb(&tree(body)).unwrap();
        assert_eq!(m.partitions.len(), 2);
        assert_eq!(m.partitions[1].cpus, vec![1]);
    }

    #[test]
    fn hostile_trees_are_refused() {
        fn dtb(what: &'static str) -> Box<dyn Fn(&ManifestError) -> bool> {
            Box::new(move |e| matches!(e.kind, ErrorKind::Dtb(w) if w.contains(what)))
        }
        let with_prop = |p: T<'static>| {
            let mut b = partition("partition@0", 0);
            b.insert(2, p);
            tree(b)
        };
        type Check = Box<dyn Fn(&ManifestError) -> bool>;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("empty", Vec::new(), (dtb("bad header"))),
            (
                "no compatible",
                raw(&[T::Begin(""), T::End]),
                (dtb("no root compatible")),
            ),
            (
                "wrong compatible",
                raw(&[
                    T::Begin(""),
                    T::Prop("compatible", b"paprika,manifest-v2\0"),
                    T::End,
                ]),
                (dtb("not a Paprika manifest")),
            ),
            (
                "compatible twice",
                raw(&[T::Begin(""), COMPAT, COMPAT, T::End]),
                (dtb("not a Paprika manifest")),
            ),
            (
                "root property",
                raw(&[T::Begin(""), COMPAT, T::Prop("model", b"x\0"), T::End]),
                Box::new(|e| e.kind == ErrorKind::KeyOutsideTable),
            ),
            (
                "named root",
                raw(&[T::Begin("x"), COMPAT, T::End]),
                (dtb("root node")),
            ),
            (
                "second root",
                raw(&[T::Begin(""), COMPAT, T::End, T::Begin(""), T::End]),
                Box::new(|_| true),
            ),
            (
                "unknown node",
                tree(vec![T::Begin("chosen"), T::End]),
                Box::new(|e| matches!(e.kind, ErrorKind::UnknownTable(_))),
            ),
            (
                "partition without index",
                tree(partition("partition", 0)),
                (dtb("unit address")),
            ),
            (
                "partition@1 first",
                tree(partition("partition@1", 0)),
                (dtb("unit address")),
            ),
            (
                "partition@00",
                tree(partition("partition@00", 0)),
                (dtb("unit address")),
            ),
            (
                "machine@0",
                tree(vec![T::Begin("machine@0"), T::End]),
                (dtb("appears once")),
            ),
            (
                "machine twice",
                tree(vec![
                    T::Begin("machine"),
                    T::End,
                    T::Begin("machine"),
                    T::End,
                ]),
                (dtb("appears once")),
            ),
            (
                "sub-node in a partition",
                {
                    let mut b = partition("partition@0", 0);
                    b.insert(6, T::Begin("usb@0"));
                    b.insert(7, T::End);
                    tree(b)
                },
                Box::new(|e| matches!(e.kind, ErrorKind::UnknownTable(_))),
            ),
            (
                "too deep",
                tree(vec![
                    T::Begin("machine"),
                    T::Begin("a"),
                    T::Begin("b"),
                    T::End,
                    T::End,
                    T::End,
                ]),
                Box::new(|e| matches!(e.kind, ErrorKind::UnknownTable(_) | ErrorKind::Dtb(_))),
            ),
            (
                "deeper than a sub-table",
                {
                    let mut b = partition("partition@0", 0);
                    b.insert(6, T::Begin("net@0"));
                    b.insert(7, T::Begin("x"));
                    b.insert(8, T::End);
                    b.insert(9, T::End);
                    tree(b)
                },
                dtb("deeper than a sub-table"),
            ),
            (
                "sub-tables out of order",
                {
                    let mut b = partition("partition@0", 0);
                    b.insert(6, T::Begin("net@1"));
                    b.insert(7, T::End);
                    tree(b)
                },
                dtb("unit address"),
            ),
            (
                "bad sub-table property",
                {
                    let mut b = partition("partition@0", 0);
                    b.insert(6, T::Begin("disk@0"));
                    b.insert(7, T::Prop("readonly", b"\0\0\0\x02"));
                    b.insert(8, T::End);
                    tree(b)
                },
                dtb("boolean"),
            ),
            (
                "property after a child",
                tree(vec![T::Begin("machine"), T::End, T::Prop("x", b"")]),
                (dtb("after a child")),
            ),
            (
                "unknown property",
                with_prop(T::Prop("colour", b"red\0")),
                Box::new(|e| {
                    e.kind == ErrorKind::UnknownKey && e.field.as_deref() == Some("colour")
                }),
            ),
            (
                "property twice",
                with_prop(T::Prop("name", b"b\0")),
                Box::new(|e| e.kind == ErrorKind::DuplicateKey),
            ),
            (
                "short integer",
                with_prop(T::Prop("console", &[0, 0, 0, 0, 0, 0, 0, 1])),
                (dtb("boolean")),
            ),
            (
                "string without NUL",
                with_prop(T::Prop("cmdline", b"quiet")),
                (dtb("NUL")),
            ),
            (
                "string with a NUL inside",
                with_prop(T::Prop("cmdline", b"quiet\0x\0")),
                (dtb("exactly one string")),
            ),
            (
                "not UTF-8",
                with_prop(T::Prop("cmdline", b"\xff\0")),
                (dtb("UTF-8")),
            ),
            (
                "semantics still checked",
                with_prop(T::Prop("mmu", b"HPT\0")),
                Box::new(|e| e.field.as_deref() == Some("mmu") && e.line.is_none()),
            ),
        ];
        for (what, blob, check) in cases {
            match from_dtb(&blob) {
                Ok(m) => panic!("{what}: accepted {m:?}"),
                Err(e) => assert!(check(&e), "{what}: {e}"),
            }
        }
    }

    #[test]
    fn encode_refuses_what_a_tree_cannot_hold() {
        let mut t = Table::new(TableKind::Partition);
        t.push("name", Value::Str("a\0b".into()));
        assert!(matches!(encode(&[t]).unwrap_err().kind, ErrorKind::Dtb(_)));
        let mut t = Table::new(TableKind::Partition);
        t.push("colour", Value::Str("red".into()));
        assert_eq!(encode(&[t]).unwrap_err().kind, ErrorKind::UnknownKey);
        let mut t = Table::new(TableKind::Partition);
        t.push("memory", Value::Str("2M".into()));
        assert!(matches!(
            encode(&[t]).unwrap_err().kind,
            ErrorKind::WrongType { .. }
        ));
    }

    #[test]
    fn truncations_and_corruptions_never_panic() {
        let m = manifest();
        let blob = m.to_dtb().unwrap();
        for end in 0..blob.len() {
            assert!(from_dtb(&blob[..end]).is_err(), "prefix {end} accepted");
        }
        // A shorter totalsize in the header.
        let mut short = blob.clone();
        short[4..8].copy_from_slice(&((blob.len() - 8) as u32).to_be_bytes());
        assert!(from_dtb(&short).is_err());

        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut bytes = blob.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.index(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next_u32() as u8,
                    1 => bytes[at] ^= 1 << rng.below(8),
                    2 => bytes[at] = [0, 1, 2, 3, 4, 9, 0xff][rng.index(7)],
                    _ => {
                        let cut = rng.index(bytes.len());
                        bytes.truncate(cut.max(1));
                    }
                }
            }
            if let Ok(m) = from_dtb(&bytes) {
                accepted += 1;
                // Whatever is accepted keeps the invariants and round-trips.
                assert_eq!(from_dtb(&m.to_dtb().unwrap()).as_ref(), Ok(&m));
                assert_eq!(from_tables(&m.to_tables()).as_ref(), Ok(&m));
                for p in &m.partitions {
                    assert_eq!(p.cpus.len(), p.vcpus as usize);
                    assert!(p.memory.is_multiple_of(super::super::MEMORY_GRANULE) && p.memory != 0);
                }
            }
        }
        // Some edits (inside a string, a cell) leave a valid manifest.
        assert!(accepted > 0);
    }
}
