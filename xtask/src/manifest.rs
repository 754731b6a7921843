//! The manifest's TOML front end: a user's `manifest.toml` read with the `toml`
//! crate into the tables `paprika::partition::manifest` validates, with the line
//! and column of every table and value, and a manifest written back as TOML.
//!
//! This module knows TOML, not the fields: which tables exist comes from
//! [`TableKind`], the meaning of every key from [`manifest::from_tables`]. The
//! same tables, compiled to a device tree ([`Manifest::to_dtb`]), are what the
//! hypervisor reads from the boot bundle (docs/manifest.md).

use paprika::partition::manifest::{
    self, key_type, Entry, ErrorKind, Loc, Manifest, ManifestError, Table, TableKind, Value,
    ValueType,
};
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

/// Parses and validates a manifest (everything that does not depend on the
/// machine; `manifest::check_against_machine` does the rest).
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    manifest::from_tables(&tables(text)?)
}

/// Line starts of a text, for turning byte offsets into places.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.trim_end_matches('\r').chars().count() + 1);
        Loc::at(line, column)
    }
}

/// The TOML text as tables in the order `manifest::from_tables` takes them: the
/// top-level tables in the order of [`TableKind::ALL`], each followed by its
/// sub-tables. TOML syntax errors, and TOML that is not tables of key = value,
/// are errors with the line and column.
pub fn tables(text: &str) -> Result<Vec<Table>, ManifestError> {
    let lines = Lines::new(text);
    let doc = DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(Loc::NONE, |s| lines.loc(s.start));
        ManifestError::new(ErrorKind::Syntax(e.message().to_string())).at(at)
    })?;
    let doc = doc.get_ref();
    let mut out = Vec::new();
    // Anything at the top level that is not a known table.
    for (key, value) in doc.iter() {
        let name = key.get_ref().as_ref();
        let known = TableKind::from_path(name).filter(|k| k.parent().is_none());
        let shape_ok = known.is_some_and(|k| shape_of(value.get_ref()) == Some(k.many()));
        if shape_ok {
            continue;
        }
        let at = lines.loc(value.span().start);
        let kind = match (known, shape_of(value.get_ref())) {
            (_, None) => {
                return Err(ManifestError::new(ErrorKind::KeyOutsideTable)
                    .at(lines.loc(key.span().start))
                    .field(name))
            }
            // `[[partition.net]]` before any `[[partition]]` makes `partition`
            // a plain table holding only the sub-table.
            (Some(k), Some(false)) if k.many() && holds_only_sub_tables(value.get_ref(), k) => {
                let first = value
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.iter().next())
                    .and_then(|(key, _)| sub_kind(k, key.get_ref()));
                ErrorKind::SubTableOutsidePartition(
                    first.map_or_else(|| k.header(), TableKind::header),
                )
            }
            (_, Some(many)) => ErrorKind::UnknownTable(if many {
                format!("[[{name}]]")
            } else {
                format!("[{name}]")
            }),
        };
        return Err(ManifestError::new(kind).at(at));
    }
    for kind in TableKind::ALL.into_iter().filter(|k| k.parent().is_none()) {
        let Some(value) = doc.get(kind.path()) else {
            continue;
        };
        for table in instances(value) {
            read_table(&lines, kind, table, &mut out)?;
        }
    }
    Ok(out)
}

/// `Some(false)` for a table, `Some(true)` for a non-empty array of tables,
/// `None` for anything else.
fn shape_of(v: &DeValue<'_>) -> Option<bool> {
    match v {
        DeValue::Table(_) => Some(false),
        DeValue::Array(a) if !a.is_empty() && a.iter().all(|i| i.get_ref().is_table()) => {
            Some(true)
        }
        _ => None,
    }
}

/// Whether every entry of table `v` is a sub-table of `kind`.
fn holds_only_sub_tables(v: &DeValue<'_>, kind: TableKind) -> bool {
    let DeValue::Table(t) = v else { return false };
    !t.is_empty() && t.iter().all(|(k, _)| sub_kind(kind, k.get_ref()).is_some())
}

/// The sub-table kind of `parent` called `key` (`[[partition.<key>]]`).
fn sub_kind(parent: TableKind, key: &str) -> Option<TableKind> {
    TableKind::from_path(&format!("{}.{key}", parent.path())).filter(|k| k.parent() == Some(parent))
}

/// The tables of a table value or an array of tables, each with its span.
fn instances<'v, 'i>(v: &'v Spanned<DeValue<'i>>) -> Vec<(&'v DeTable<'i>, usize)> {
    match v.get_ref() {
        DeValue::Table(t) => vec![(t, v.span().start)],
        DeValue::Array(a) => a
            .iter()
            .filter_map(|i| i.get_ref().as_table().map(|t| (t, i.span().start)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Appends table `t` of `kind` to `out`, then its sub-tables.
fn read_table(
    lines: &Lines<'_>,
    kind: TableKind,
    (t, start): (&DeTable<'_>, usize),
    out: &mut Vec<Table>,
) -> Result<(), ManifestError> {
    let mut table = Table {
        kind,
        at: lines.loc(start),
        entries: Vec::new(),
    };
    let mut subs: Vec<(TableKind, &Spanned<DeValue<'_>>)> = Vec::new();
    for (key, value) in t.iter() {
        let name = key.get_ref().as_ref();
        let at = lines.loc(value.span().start);
        if let Some(many) = shape_of(value.get_ref()) {
            match sub_kind(kind, name) {
                Some(sub) if sub.many() == many => subs.push((sub, value)),
                _ => {
                    let path = format!("{}.{name}", kind.path());
                    let header = if many {
                        format!("[[{path}]]")
                    } else {
                        format!("[{path}]")
                    };
                    return Err(ManifestError::new(ErrorKind::UnknownTable(header))
                        .at(at)
                        .in_partition(table.label()));
                }
            }
            continue;
        }
        let value = convert(value.get_ref(), key_type(kind, name));
        table.entries.push(Entry {
            key: name.to_string(),
            value,
            at,
        });
    }
    out.push(table);
    for (sub, value) in subs {
        for inner in instances(value) {
            read_table(lines, sub, inner, out)?;
        }
    }
    Ok(())
}

/// A TOML value as a manifest value; `ty` (the key's canonical type) decides
/// what an empty array is.
fn convert(v: &DeValue<'_>, ty: Option<ValueType>) -> Value {
    match v {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Int(n),
            Err(_) if i.as_str().starts_with('-') => Value::Other("a negative integer"),
            Err(_) => Value::Other("an integer too large"),
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Float(_) => Value::Other("a float"),
        DeValue::Datetime(_) => Value::Other("a date-time"),
        DeValue::Array(a) => convert_array(a, ty),
        DeValue::Table(_) => Value::Other("a table"),
    }
}

fn convert_array(a: &DeArray<'_>, ty: Option<ValueType>) -> Value {
    if a.is_empty() {
        return match ty {
            Some(ValueType::Strs) => Value::Strs(Vec::new()),
            _ => Value::Ints(Vec::new()),
        };
    }
    let items: Vec<Value> = a.iter().map(|i| convert(i.get_ref(), None)).collect();
    if let Some(ints) = items
        .iter()
        .map(|v| match v {
            Value::Int(n) => Some(*n),
            _ => None,
        })
        .collect::<Option<Vec<u64>>>()
    {
        return Value::Ints(ints);
    }
    if let Some(strs) = items
        .iter()
        .map(|v| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()
    {
        return Value::Strs(strs);
    }
    if items
        .iter()
        .any(|v| matches!(v, Value::Other("a negative integer")))
    {
        return Value::Other("an array with a negative integer");
    }
    Value::Other("an array that is neither all integers nor all strings")
}

/// The manifest as TOML that [`parse`] reads back to an equal `Manifest`: the
/// tables of [`Manifest::to_tables`], memory as a size (`"512M"`).
pub fn to_toml(m: &Manifest) -> String {
    let mut doc = toml::Table::new();
    // The last top-level table, where sub-tables go.
    let mut last: Option<(String, usize)> = None;
    for t in m.to_tables() {
        let mut out = toml::Table::new();
        for e in &t.entries {
            out.insert(e.key.clone(), to_value(&e.key, &e.value));
        }
        let key = t.kind.leaf().to_string();
        let home = match (t.kind.parent(), &last) {
            (Some(_), Some((parent, index))) => doc
                .get_mut(parent)
                .and_then(|v| match v {
                    toml::Value::Array(a) => a.get_mut(*index),
                    other => Some(other),
                })
                .and_then(toml::Value::as_table_mut),
            _ => Some(&mut doc),
        };
        let Some(home) = home else { continue };
        if t.kind.many() {
            let slot = home
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let toml::Value::Array(a) = slot {
                a.push(toml::Value::Table(out));
                if t.kind.parent().is_none() {
                    last = Some((key, a.len() - 1));
                }
            }
        } else {
            home.insert(key.clone(), toml::Value::Table(out));
            if t.kind.parent().is_none() {
                last = Some((key, 0));
            }
        }
    }
    let body = toml::to_string(&doc).unwrap_or_default();
    format!("# Paprika partition manifest\n{body}")
}

fn to_value(key: &str, v: &Value) -> toml::Value {
    let int = |n: u64| {
        i64::try_from(n)
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(n.to_string()))
    };
    match v {
        Value::Int(n) if key == "memory" => toml::Value::String(format_size(*n)),
        Value::Int(n) => int(*n),
        Value::Str(s) => toml::Value::String(s.clone()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Ints(list) => toml::Value::Array(list.iter().map(|&n| int(n)).collect()),
        Value::Strs(list) => {
            toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
        }
        Value::Other(what) => toml::Value::String((*what).to_string()),
    }
}

/// A memory size as the manifest writes it: `2G`, `512M`, `64K` or plain bytes.
fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use paprika::partition::manifest::{
        check_against_machine, check_devices, format_mac, generated_mac, parse_mac, DiskSpec,
        HostFunction, MmuMode, HYPERVISOR_RESERVE, MAX_DISKS, MEMORY_GRANULE,
    };

    /// The example of docs/manifest.md.
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

    /// A valid one-partition manifest with `extra` lines appended to its table
    /// (from line 7).
    fn one(extra: &str) -> String {
        format!(
            "[[partition]]\nname = \"a\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [0]\nkernel = \"k\"\n{extra}"
        )
    }

    fn err(text: &str) -> ManifestError {
        match parse(text) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn example_parses() {
        let m = parse(EXAMPLE).unwrap();
        assert_eq!(m.machine.console_input.as_deref(), Some("linux"));
        let p = &m.partitions[0];
        assert_eq!(
            (p.memory, p.vcpus, &p.cpus[..]),
            (512 << 20, 2, &[1, 2][..])
        );
        assert_eq!(
            p.cmdline,
            r#"console=hvc0 msg="hi" path=C:\x # not a comment"#
        );
        assert_eq!(p.expect.as_deref(), Some("GUEST-PASS"));
        let q = &m.partitions[1];
        assert_eq!((q.name.as_str(), q.memory), ("hcall-test", 64 << 20));
        assert_eq!(m.total_memory(), Some(576 << 20));
    }

    #[test]
    fn toml_forms() {
        // CRLF, inline tables, literal and multi-line strings, escapes, other
        // radixes and underscores: all TOML.
        let text = "  # leading comment\r\nmachine = { power_off_when_idle = false }\r\n\
                    [[ partition ]]\r\nname='x'\r\nmemory=2_097_152\r\nvcpus=0b10\r\n\
                    cpus=[\r\n  3, # first\r\n  0o4,\r\n]\r\nkernel=\"k\\\\\\u00e9\"#c\r\n\
                    cmdline = \"\"\"\r\na\tb\"\"\"\r\n";
        let m = parse(text).unwrap();
        assert!(!m.machine.power_off_when_idle);
        let p = &m.partitions[0];
        assert_eq!((p.memory, p.vcpus, &p.cpus[..]), (2 << 20, 2, &[3, 4][..]));
        assert_eq!(p.kernel, "k\\é");
        assert_eq!(p.cmdline, "a\tb");
        let m = parse(&one("mmu = 'hash'")).unwrap();
        assert_eq!(m.partitions[0].mmu, MmuMode::Hash);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = err(&EXAMPLE.replace("\"512M\"", "\"513M\""));
        assert_eq!(
            e.to_string(),
            "manifest line 8, column 10, partition \"linux\", field \"memory\": not a multiple of 2 MiB"
        );
        // Columns count characters, not bytes.
        let e = err(&one("cmdline = \"é\"\nconsole = 1"));
        assert_eq!((e.line, e.column), (Some(8), Some(11)), "{e}");
        let e = err(&one("cmdline = \"é\"; x = 1"));
        assert_eq!((e.line, e.column), (Some(7), Some(14)), "{e}");
        // A missing field points at the table's header.
        let e = err("\n\n[[partition]]\nname = \"a\"\n");
        assert_eq!(
            (e.line, e.column, e.kind),
            (Some(3), Some(1), ErrorKind::Missing)
        );
        // The partition is named even when `name` comes after the bad field.
        let e = err("[[partition]]\nmemory = \"3M\"\nname = \"late\"\n");
        assert_eq!(
            e.to_string(),
            "manifest line 2, column 10, partition \"late\", field \"memory\": not a multiple of 2 MiB"
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&str, u32, u32)] = &[
            ("name = \"a\\qb\"", 7, 11),
            ("name = \"a", 7, 10),
            ("memory = 512M", 7, 10),
            ("memory = 1__0", 7, 11),
            ("memory = 012", 7, 10),
            ("memory =", 7, 9),
            ("console = yes", 7, 11),
            ("cpus = [1, 2", 7, 13),
            ("cpus = [1 2]", 7, 9),
            ("name \"a\"", 7, 6),
            ("= 1", 7, 1),
            ("vcpus = 2", 7, 1),
            ("x = 1 y = 2", 7, 9),
        ];
        for &(line, l, c) in cases {
            let e = err(&one(line));
            assert!(matches!(e.kind, ErrorKind::Syntax(_)), "{line:?} => {e}");
            assert_eq!((e.line, e.column), (Some(l), Some(c)), "{line:?} => {e}");
        }
        let e = err("[machine]\n[machine]\n");
        assert_eq!(e.to_string(), "manifest line 2, column 2: duplicate key");
        let e = err("[machine\n");
        assert!(
            matches!(e.kind, ErrorKind::Syntax(_)) && e.line == Some(1),
            "{e}"
        );
    }

    #[test]
    fn structure_errors() {
        let cases: &[(&str, ErrorKind, Option<&str>)] = &[
            ("x = 1\n", ErrorKind::KeyOutsideTable, Some("x")),
            (
                "[partition]\n",
                ErrorKind::UnknownTable("[partition]".into()),
                None,
            ),
            (
                "[[machine]]\n",
                ErrorKind::UnknownTable("[[machine]]".into()),
                None,
            ),
            ("[lpar]\n", ErrorKind::UnknownTable("[lpar]".into()), None),
            (
                "[[lpar]]\n",
                ErrorKind::UnknownTable("[[lpar]]".into()),
                None,
            ),
            (
                "[[partition]]\n[[partition.foo]]\n",
                ErrorKind::UnknownTable("[[partition.foo]]".into()),
                None,
            ),
            (
                "[[partition]]\nx = {a = 1}\n",
                ErrorKind::UnknownTable("[partition.x]".into()),
                None,
            ),
            (
                "[machine.x]\n",
                ErrorKind::UnknownTable("[machine.x]".into()),
                None,
            ),
            ("[machine]\nfoo = 1\n", ErrorKind::UnknownKey, Some("foo")),
        ];
        for (text, kind, field) in cases {
            let e = err(text);
            assert_eq!(
                (&e.kind, e.field.as_deref()),
                (kind, *field),
                "{text:?} => {e}"
            );
            assert!(e.line.is_some(), "{text:?} => {e}");
        }
        // A sub-table before its partition.
        let e = err("[[partition.net]]\nvlan = 2\n");
        assert_eq!(
            e.to_string(),
            "manifest line 1, column 3: [[partition.net]] must follow the [[partition]] it belongs to"
        );
        assert_eq!(err("[machine]\n").kind, ErrorKind::NoPartitions);
        assert_eq!(err("").kind, ErrorKind::NoPartitions);
    }

    #[test]
    fn value_types() {
        let found = |extra: &str| match err(&one(extra)).kind {
            ErrorKind::WrongType { found, .. } => found,
            other => panic!("{extra}: {other:?}"),
        };
        assert_eq!(found("console = 1.5"), "a float");
        assert_eq!(found("console = 1979-05-27"), "a date-time");
        assert_eq!(found("console = -1"), "a negative integer");
        assert_eq!(
            found("console = [1, \"a\"]"),
            "an array that is neither all integers nor all strings"
        );
        assert_eq!(found("console = [-1]"), "an array with a negative integer");
        assert_eq!(found("console = [\"a\"]"), "an array of strings");
        assert_eq!(found("console = []"), "an array of integers");
        let e = err(&one("").replace("\"64M\"", "99999999999999999999"));
        assert!(e.to_string().contains("must be a size"), "{e}");
        let e = err(&one("").replace("cpus = [0]", "cpus = []"));
        assert_eq!(e.kind, ErrorKind::CpuCount { vcpus: 1, cpus: 0 });
        let e = err(&one("").replace("\"a\"", "\"a\\u0000\""));
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = err(&one("").replace("\"k\"", "\"k\\u001b[2J\""));
        assert!(e.to_string().contains("control characters"), "{e}");
    }

    #[test]
    fn to_toml_round_trips() {
        let mut texts = vec![
            EXAMPLE.to_string(),
            one("console = false\ninitrd = \"a \\\"b\\\" 'c' \\\\ é\\t\""),
            one("secure = true\nnested = true\nmmu = \"any\""),
        ];
        texts.push(format!(
            "[machine]\npower_off_when_idle = false\n{}",
            one("")
        ));
        for text in texts {
            let m = parse(&text).unwrap();
            let again = parse(&to_toml(&m)).unwrap();
            assert_eq!(m, again, "{}", to_toml(&m));
        }
        let mut m = parse(&one("")).unwrap();
        for bytes in [
            2u64 << 20,
            3 << 30,
            6 << 20,
            1 << 40,
            u64::MAX - (MEMORY_GRANULE - 1),
        ] {
            m.partitions[0].memory = bytes;
            assert_eq!(parse(&to_toml(&m)).unwrap(), m, "{}", to_toml(&m));
        }
        assert!(to_toml(&m).starts_with("# Paprika partition manifest\n[machine]\n"));
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(3 << 20), "3M");
        assert_eq!(format_size(3 << 30), "3G");
        assert_eq!(format_size(2048), "2K");
        assert_eq!(format_size(1000), "1000");
    }

    /// xorshift64*: a tiny deterministic PRNG for the fuzz test.
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
    fn fuzz_never_panics_and_what_parses_compiles() {
        for end in 0..=EXAMPLE.len() {
            if let Some(prefix) = EXAMPLE.get(..end) {
                let _ = parse(prefix).map(|m| to_toml(&m));
            }
        }
        const INTERESTING: &[u8] = b"[]\"\\#=,.0x9_-+ \t\n\r'{}aZ\x00\x7f\xc3\xa9";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..5_000 {
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
            match parse(&text) {
                Ok(m) => {
                    parsed += 1;
                    // Whatever parses keeps the invariants, round-trips, and
                    // reads back from its device tree.
                    assert_eq!(parse(&to_toml(&m)).as_ref(), Ok(&m));
                    let blob = m.to_dtb().unwrap();
                    assert_eq!(manifest::from_dtb(&blob).as_ref(), Ok(&m));
                    for p in &m.partitions {
                        assert_eq!(p.cpus.len(), p.vcpus as usize);
                        assert!(p.memory.is_multiple_of(MEMORY_GRANULE) && p.memory != 0);
                    }
                    let need = m
                        .total_memory()
                        .unwrap_or(0)
                        .saturating_add(HYPERVISOR_RESERVE);
                    let _ = manifest::check_against_machine(&m, need, 64, |_| true);
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        assert!(parsed > 100, "{parsed}");
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
        assert_eq!(parse(&to_toml(&m)).unwrap(), m);
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
        assert_eq!(parse(&to_toml(&m)).unwrap(), m, "round trip");
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
        assert_eq!(parse(&to_toml(&m)).unwrap(), m, "round trip");
    }

    #[test]
    fn disk_errors() {
        let outside = ErrorKind::SubTableOutsidePartition("[[partition.disk]]".into());
        let e = err("[[partition.disk]]\nimage = \"x\"\n");
        assert_eq!(e.kind, outside);
        assert_eq!(e.line, Some(1));
        let e = err(&format!(
            "[machine]\n{}",
            "[[partition.disk]]\nimage = \"x\"\n"
        ));
        assert_eq!(e.kind, outside);
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
        assert_eq!(e.kind, ErrorKind::Syntax("duplicate key".into()));
        assert_eq!((e.line, e.column), (Some(9), Some(1)));
        let e = err(&one(
            &"[[partition.disk]]\nimage = \"x\"\n".repeat(MAX_DISKS + 1)
        ));
        assert_eq!(e.kind, ErrorKind::TooManyDisks);
        let e = err(&one("[[partition.disks]]\n"));
        assert!(matches!(e.kind, ErrorKind::UnknownTable(_)));
        let e = err(&one("[partition.disk]\n"));
        assert!(matches!(e.kind, ErrorKind::UnknownTable(_)));
        let e = err(&one("[[partition.]]\n"));
        assert!(matches!(e.kind, ErrorKind::Syntax(_)), "{e}");
    }

    #[test]
    fn devices_are_pci_addresses_owned_by_one_partition() {
        let m = parse(&one("devices = [\"0001:01:00.0\", \"0002:01:00.0\"]")).unwrap();
        let d = &m.partitions[0].devices;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].to_string(), "0001:01:00.0");
        assert_eq!(parse(&to_toml(&m)).as_ref(), Ok(&m));
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
        assert!(matches!(e.kind, ErrorKind::WrongType { .. }), "{e}");
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
