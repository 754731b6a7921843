//! The boot bundle: the initrd skiboot hands over, a cpio "newc" archive holding
//! `manifest.dtb` (the manifest as a device tree, see
//! [`crate::partition::manifest::dtb`]) and the partitions' images.
//!
//! The newc format (as the Linux initramfs uses it): a sequence of entries, each a
//! 110-byte ASCII header, the NUL-terminated name, padding to a multiple of 4
//! bytes, the file data, padding to a multiple of 4 again; the archive ends with an
//! entry named `TRAILER!!!`. Header fields, after the 6-byte magic `070701` (or
//! `070702`, whose `check` field is the sum of the data bytes), are 13 fields of 8
//! hex digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
//! rdevmajor, rdevminor, namesize (including the NUL) and check. Offsets (and so
//! the padding) count from the start of the archive.
//!
//! The reader trusts nothing: every offset is computed with checked arithmetic and
//! every slice is bounds-checked, so a truncated or corrupt archive gives a
//! [`BundleError`], never a panic or a read outside the archive. Hard links (newc
//! stores the data once, with the last link) are not supported: the other links
//! read as empty files.

use alloc::vec::Vec;
use core::fmt;

/// Magic of a newc header without checksums.
pub const MAGIC: &[u8; 6] = b"070701";
/// Magic of a newc header whose `check` field is the sum of the data bytes.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Length of a newc header.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Name of the manifest inside a bundle.
pub const MANIFEST: &str = "manifest.dtb";

const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const MODE: usize = 1;
const FILESIZE: usize = 6;
const NAMESIZE: usize = 11;
const CHECK: usize = 12;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// What is wrong with an archive; `offset` is that of the entry's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// The archive ends inside an entry.
    Truncated { offset: usize },
    /// An entry does not start with `070701` or `070702`.
    BadMagic { offset: usize },
    /// A header field is not 8 hex digits.
    BadHeader { offset: usize, field: &'static str },
    /// A name that is empty, not NUL-terminated, holds a NUL, or is not UTF-8.
    BadName { offset: usize },
    /// A `070702` entry whose data does not add up to its `check` field.
    BadChecksum { offset: usize },
    /// The archive ends, at an entry boundary, without a `TRAILER!!!` entry.
    MissingTrailer { offset: usize },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BundleError::Truncated { offset } => {
                write!(
                    f,
                    "cpio archive truncated in the entry at offset {offset:#x}"
                )
            }
            BundleError::BadMagic { offset } => {
                write!(f, "no cpio newc header (070701) at offset {offset:#x}")
            }
            BundleError::BadHeader { offset, field } => write!(
                f,
                "cpio header at offset {offset:#x}: field {field} is not 8 hex digits"
            ),
            BundleError::BadName { offset } => {
                write!(f, "cpio entry at offset {offset:#x} has a malformed name")
            }
            BundleError::BadChecksum { offset } => {
                write!(f, "cpio entry at offset {offset:#x} fails its checksum")
            }
            BundleError::MissingTrailer { offset } => write!(
                f,
                "cpio archive ends at offset {offset:#x} without a {TRAILER} entry"
            ),
        }
    }
}

impl core::error::Error for BundleError {}

/// `n` rounded up to a multiple of 4, `None` on overflow.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// The value of 8 ASCII hex digits.
fn hex8(digits: &[u8]) -> Option<u32> {
    if digits.len() != 8 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some((acc << 4) | v)
    })
}

/// `path` without leading `./` and `/` (archives made with `find . | cpio` name
/// their files `./x`).
fn normalize(mut path: &str) -> &str {
    loop {
        if let Some(rest) = path.strip_prefix("./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix('/') {
            path = rest;
        } else {
            return path;
        }
    }
}

/// One entry as stored.
struct Raw<'a> {
    name: &'a str,
    mode: u32,
    data: &'a [u8],
    /// Offset of the next header.
    next: usize,
}

/// Reads the entry whose header starts at `offset`.
fn read_entry(archive: &[u8], offset: usize) -> Result<Raw<'_>, BundleError> {
    let truncated = BundleError::Truncated { offset };
    let header_end = offset.checked_add(HEADER_LEN).ok_or(truncated)?;
    let header = archive.get(offset..header_end).ok_or(truncated)?;
    let (magic, rest) = header.split_at(6);
    let crc = match magic {
        m if m == MAGIC => false,
        m if m == MAGIC_CRC => true,
        _ => return Err(BundleError::BadMagic { offset }),
    };
    let mut fields = [0u32; FIELDS.len()];
    for (i, (value, digits)) in fields.iter_mut().zip(rest.chunks(8)).enumerate() {
        *value = hex8(digits).ok_or(BundleError::BadHeader {
            offset,
            field: FIELDS[i],
        })?;
    }
    let bad_name = BundleError::BadName { offset };
    let namesize = usize::try_from(fields[NAMESIZE]).map_err(|_| bad_name)?;
    let name_end = header_end.checked_add(namesize).ok_or(truncated)?;
    let name = archive.get(header_end..name_end).ok_or(truncated)?;
    let name = match name.split_last() {
        Some((0, name)) if !name.contains(&0) => core::str::from_utf8(name).ok(),
        _ => None,
    }
    .ok_or(bad_name)?;
    if name == TRAILER {
        // The end: its padding (and any data) may be cut off.
        return Ok(Raw {
            name,
            mode: fields[MODE],
            data: &[],
            next: name_end,
        });
    }
    let filesize = usize::try_from(fields[FILESIZE]).map_err(|_| truncated)?;
    let data_start = align4(name_end).ok_or(truncated)?;
    let data_end = data_start.checked_add(filesize).ok_or(truncated)?;
    let data = archive.get(data_start..data_end).ok_or(truncated)?;
    if crc {
        let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
        if sum != fields[CHECK] {
            return Err(BundleError::BadChecksum { offset });
        }
    }
    Ok(Raw {
        name,
        mode: fields[MODE],
        data,
        next: align4(data_end).ok_or(truncated)?,
    })
}

/// The regular files of an archive, in archive order: `(name, data)` with any
/// leading `./` or `/` taken off the name. Directories, links and device nodes
/// are skipped. Yields one error and then ends when the archive is malformed;
/// ends after the `TRAILER!!!` entry (anything after it is ignored).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<(&'a str, &'a [u8]), BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if self.offset >= self.archive.len() {
                self.done = true;
                let offset = self.offset;
                return Some(Err(if offset == self.archive.len() {
                    BundleError::MissingTrailer { offset }
                } else {
                    BundleError::Truncated { offset }
                }));
            }
            let raw = match read_entry(self.archive, self.offset) {
                Ok(raw) => raw,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if raw.name == TRAILER {
                self.done = true;
                return None;
            }
            self.offset = raw.next;
            let kind = raw.mode & S_IFMT;
            if kind == S_IFREG || kind == 0 {
                return Some(Ok((normalize(raw.name), raw.data)));
            }
        }
        None
    }
}

/// Iterates over the regular files of `archive` (see [`Entries`]).
pub fn entries(archive: &[u8]) -> Entries<'_> {
    Entries {
        archive,
        offset: 0,
        done: false,
    }
}

/// The data of the first regular file called `path` (leading `./` and `/` do
/// not matter, on either side). `Ok(None)` when the archive, read up to its
/// trailer, has no such file; an error when it is malformed before the file.
pub fn find<'a>(archive: &'a [u8], path: &str) -> Result<Option<&'a [u8]>, BundleError> {
    let path = normalize(path);
    for entry in entries(archive) {
        let (name, data) = entry?;
        if name == path {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Appends one newc header and the padded name.
fn push_header(out: &mut Vec<u8>, fields: &[u32; FIELDS.len()], name: &str) {
    out.extend_from_slice(MAGIC);
    for f in fields {
        for shift in (0..8).rev() {
            let digit = (f >> (shift * 4)) & 0xf;
            out.push(b"0123456789abcdef"[digit as usize]);
        }
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Writes a newc archive (magic `070701`) of regular files, mode 0644, owner 0,
/// mtime 0 (so the same files give the same bytes), inode numbers from 1, ended
/// by `TRAILER!!!`.
///
/// # Panics
/// If a name is empty, contains a NUL or is `TRAILER!!!`, or a file is 4 GiB or
/// larger: newc cannot store those. (Names are the caller's to keep unique.)
pub fn write_newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let size: usize = files
        .iter()
        .map(|(name, data)| HEADER_LEN + name.len() + data.len() + 8)
        .sum();
    let mut out = Vec::with_capacity(size + HEADER_LEN + TRAILER.len() + 4);
    for (index, (name, data)) in files.iter().enumerate() {
        assert!(
            !name.is_empty() && !name.contains('\0') && *name != TRAILER,
            "cpio: bad file name {name:?}"
        );
        let filesize = u32::try_from(data.len()).expect("cpio: file of 4 GiB or more");
        let namesize = u32::try_from(name.len() + 1).expect("cpio: name too long");
        let ino = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let mut fields = [0u32; FIELDS.len()];
        fields[0] = ino;
        fields[MODE] = S_IFREG | 0o644;
        fields[4] = 1; // nlink
        fields[FILESIZE] = filesize;
        fields[NAMESIZE] = namesize;
        push_header(&mut out, &fields, name);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    let mut trailer = [0u32; FIELDS.len()];
    trailer[4] = 1;
    trailer[NAMESIZE] = TRAILER.len() as u32 + 1;
    push_header(&mut out, &trailer, TRAILER);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn all(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
        entries(archive)
            .map(|e| e.map(|(n, d)| (String::from(n), d.to_vec())))
            .collect()
    }

    /// One raw entry, for archives the writer would not make.
    fn entry(magic: &[u8; 6], mode: u32, name: &str, data: &[u8], check: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut fields = [0u32; 13];
        fields[MODE] = mode;
        fields[FILESIZE] = data.len() as u32;
        fields[NAMESIZE] = name.len() as u32 + 1;
        fields[CHECK] = check;
        push_header(&mut out, &fields, name);
        out[..6].copy_from_slice(magic);
        out.extend_from_slice(data);
        pad4(&mut out);
        out
    }

    fn trailer() -> Vec<u8> {
        entry(MAGIC, 0, TRAILER, b"", 0)
    }

    #[test]
    fn write_then_read() {
        let big: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let files: [(&str, &[u8]); 4] = [
            (MANIFEST, b"[machine]\n"),
            ("vmlinux", &big),
            ("a", b""),
            ("dir/b.img", b"xyz"),
        ];
        let archive = write_newc(&files);
        assert_eq!(archive.len() % 4, 0);
        assert_eq!(&archive[..6], MAGIC);
        let read = all(&archive).unwrap();
        assert_eq!(read.len(), 4);
        for ((name, data), (n, d)) in files.iter().zip(&read) {
            assert_eq!((*name, *data), (n.as_str(), d.as_slice()));
        }
        assert_eq!(find(&archive, "vmlinux"), Ok(Some(&big[..])));
        assert_eq!(find(&archive, "./dir/b.img"), Ok(Some(&b"xyz"[..])));
        assert_eq!(find(&archive, "a"), Ok(Some(&b""[..])));
        assert_eq!(find(&archive, "missing"), Ok(None));
        assert_eq!(find(&archive, TRAILER), Ok(None));
        // Same input, same bytes.
        assert_eq!(write_newc(&files), archive);
        assert_eq!(all(&write_newc(&[])).unwrap(), vec![]);
    }

    #[test]
    fn header_layout() {
        let archive = write_newc(&[("ab", b"12345")]);
        let header = core::str::from_utf8(&archive[..HEADER_LEN]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001000081a4000000000000000000000001000000000000000500000000\
             0000000000000000000000000000000300000000"
        );
        // Header 110 + name 3 = 113 -> data at 116, 5 bytes + 3 padding -> 124.
        assert_eq!(&archive[113..116], &[0, 0, 0]);
        assert_eq!(&archive[116..121], b"12345");
        assert_eq!(&archive[124..130], MAGIC);
        assert_eq!(archive.len(), 124 + 124);
        assert_eq!(
            &archive[124 + HEADER_LEN..124 + HEADER_LEN + 10],
            b"TRAILER!!!"
        );
    }

    #[test]
    fn gnu_style_archives() {
        // `find . | cpio -o -H newc`: a "." directory, "./" names, uppercase hex,
        // a checksummed entry and padding after the trailer.
        let mut archive = entry(MAGIC, 0o040_755, ".", b"", 0);
        archive.extend(entry(MAGIC, 0o040_755, "./d", b"", 0));
        archive.extend(entry(MAGIC, 0o100_644, "./d/f", b"hello", 0));
        archive.extend(entry(MAGIC, 0o120_777, "./link", b"d/f", 0));
        archive.extend(entry(MAGIC_CRC, 0o100_644, "/crc", b"\x01\x02\xff", 0x102));
        archive.extend(trailer());
        archive.extend([0u8; 512]);
        let upper = String::from_utf8(archive[..HEADER_LEN].to_vec())
            .unwrap()
            .to_uppercase();
        archive[..HEADER_LEN].copy_from_slice(upper.as_bytes());
        let read = all(&archive).unwrap();
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["d/f", "crc"]);
        assert_eq!(find(&archive, "d/f"), Ok(Some(&b"hello"[..])));
        assert_eq!(find(&archive, "/crc"), Ok(Some(&b"\x01\x02\xff"[..])));
        assert_eq!(find(&archive, "d"), Ok(None));
        assert_eq!(find(&archive, "link"), Ok(None));
    }

    #[test]
    fn malformed_archives() {
        let good = write_newc(&[("f", b"data")]);
        assert_eq!(all(&[]), Err(BundleError::MissingTrailer { offset: 0 }));
        let no_trailer = &good[..good.len() - 124];
        assert_eq!(
            all(no_trailer),
            Err(BundleError::MissingTrailer { offset: 116 })
        );
        let mut bad = good.clone();
        bad[0] = b'1';
        assert_eq!(all(&bad), Err(BundleError::BadMagic { offset: 0 }));
        let mut bad = good.clone();
        bad[6 + 6 * 8] = b'g'; // filesize
        assert_eq!(
            all(&bad),
            Err(BundleError::BadHeader {
                offset: 0,
                field: "filesize"
            })
        );
        let mut bad = good.clone();
        bad[HEADER_LEN + 1] = b'x'; // the name's NUL
        assert_eq!(all(&bad), Err(BundleError::BadName { offset: 0 }));
        let mut bad = good.clone();
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000"); // namesize 0
        assert_eq!(all(&bad), Err(BundleError::BadName { offset: 0 }));
        let mut bad = good.clone();
        bad[HEADER_LEN] = 0xff; // not UTF-8
        assert_eq!(all(&bad), Err(BundleError::BadName { offset: 0 }));
        let mut bad = good.clone();
        bad[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff"); // huge filesize
        assert_eq!(all(&bad), Err(BundleError::Truncated { offset: 0 }));
        let mut crc = entry(MAGIC_CRC, 0o100_644, "c", b"ab", 0x63);
        crc.extend(trailer());
        assert_eq!(all(&crc), Err(BundleError::BadChecksum { offset: 0 }));
        // The error ends the iteration.
        let mut it = entries(&bad);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        // `find` reports errors before the file, not after it.
        let mut tail_bad = entry(MAGIC, 0o100_644, "first", b"1", 0);
        tail_bad.extend_from_slice(&[b'x'; 200]);
        assert_eq!(find(&tail_bad, "first"), Ok(Some(&b"1"[..])));
        assert_eq!(
            find(&tail_bad, "second"),
            Err(BundleError::BadMagic { offset: 120 })
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let archive = write_newc(&[("manifest.dtb", b"\xd0\x0d\xfe\xed"), ("k", &[7u8; 37])]);
        // The trailer's header and name must be there; its final padding need not.
        let trailer_complete = archive.len() - 124 + HEADER_LEN + TRAILER.len() + 1;
        for end in 0..archive.len() {
            let result = all(&archive[..end]);
            if end < trailer_complete {
                assert!(result.is_err(), "prefix of {end} bytes read as {result:?}");
            } else {
                assert_eq!(result.map(|v| v.len()), Ok(2), "{end}");
            }
            let _ = find(&archive[..end], "k");
        }
    }

    /// xorshift64*: a tiny deterministic PRNG.
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
    fn fuzz_corruption_never_panics() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let archive = write_newc(&[("manifest.dtb", b"\xd0\x0d\xfe\xed"), ("img", &payload)]);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let mut bytes = archive.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] = match rng.below(4) {
                    // Hex digits keep headers parseable but change sizes.
                    0 => b"0123456789abcdefF"[rng.below(17)],
                    1 => 0,
                    _ => rng.next() as u8,
                };
            }
            let cut = if rng.below(4) == 0 {
                rng.below(bytes.len() + 1)
            } else {
                bytes.len()
            };
            let bytes = &bytes[..cut];
            // Every slice handed out lies inside the archive.
            let range = bytes.as_ptr_range();
            for (name, data) in entries(bytes).flatten() {
                assert!(name.is_empty() || range.contains(&name.as_ptr()));
                assert!(data.is_empty() || range.contains(&data.as_ptr()));
                assert!(data.as_ptr_range().end <= range.end);
            }
            let _ = find(bytes, "img");
            let _ = find(bytes, MANIFEST);
        }
    }
}
