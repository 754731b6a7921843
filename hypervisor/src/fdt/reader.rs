//! A bounds-checked walker over a flattened device tree's structure block
//! (Devicetree Specification v0.4, chapter 5).
//!
//! Written here rather than using `fdt-rs` because fdt-rs 0.4 rejects node names of
//! 31 bytes or more, and skiboot's trees have longer ones
//! (`ibm,firmware-allocs-memory@31c18000`). Every read is checked against the
//! buffer, so a corrupt tree yields an error, never a panic or an out-of-bounds
//! access.

/// Why a blob is not a usable tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    BadHeader,
    Truncated,
    BadToken(u32),
    BadString,
    Unbalanced,
}

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deepest nesting accepted (real trees use fewer than 10 levels).
pub const MAX_DEPTH: usize = 32;

/// One structure-block event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// A node opens; `depth` is 0 for the root.
    Begin {
        name: &'a str,
        depth: usize,
    },
    Prop {
        name: &'a str,
        value: &'a [u8],
    },
    End,
}

pub(crate) fn be32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn be64_at(b: &[u8], off: usize) -> Option<u64> {
    Some((u64::from(be32_at(b, off)?) << 32) | u64::from(be32_at(b, off + 4)?))
}

/// A validated tree: header checked, blocks inside the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    blob: &'a [u8],
    structs: &'a [u8],
    strings: &'a [u8],
}

impl<'a> Fdt<'a> {
    pub fn new(blob: &'a [u8]) -> Result<Self, ReadError> {
        if be32_at(blob, 0) != Some(FDT_MAGIC) {
            return Err(ReadError::BadHeader);
        }
        let h = |i: usize| {
            be32_at(blob, i * 4)
                .ok_or(ReadError::BadHeader)
                .map(|v| v as usize)
        };
        let total = h(1)?;
        if total > blob.len() {
            return Err(ReadError::Truncated);
        }
        if h(5)? < 16 || h(6)? > 17 {
            return Err(ReadError::BadHeader);
        }
        let blob = &blob[..total];
        let block = |off: usize, len: usize| {
            blob.get(off..off.checked_add(len).ok_or(ReadError::Truncated)?)
                .ok_or(ReadError::Truncated)
        };
        let structs = block(h(2)?, h(9)?)?;
        let strings = block(h(3)?, h(8)?)?;
        if h(2)? % 4 != 0 || h(4)? % 8 != 0 {
            return Err(ReadError::BadHeader);
        }
        Ok(Fdt {
            blob,
            structs,
            strings,
        })
    }

    pub fn total_size(&self) -> usize {
        self.blob.len()
    }

    pub fn boot_cpuid_phys(&self) -> u32 {
        be32_at(self.blob, 28).unwrap_or(0)
    }

    /// The memory reservation block's (address, size) pairs.
    pub fn reservations(&self) -> impl Iterator<Item = Result<(u64, u64), ReadError>> + 'a {
        let blob = self.blob;
        let mut off = be32_at(blob, 16).map(|v| v as usize);
        core::iter::from_fn(move || {
            let at = off?;
            let (Some(a), Some(s)) = (be64_at(blob, at), be64_at(blob, at + 8)) else {
                off = None;
                return Some(Err(ReadError::Truncated));
            };
            if a == 0 && s == 0 {
                off = None;
                return None;
            }
            off = Some(at + 16);
            Some(Ok((a, s)))
        })
    }

    /// Walks the structure block.
    pub fn tokens(&self) -> Tokens<'a> {
        Tokens {
            fdt: *self,
            off: 0,
            depth: 0,
            done: false,
        }
    }

    fn string(&self, off: usize) -> Result<&'a str, ReadError> {
        let s = self.strings.get(off..).ok_or(ReadError::BadString)?;
        let end = s.iter().position(|&c| c == 0).ok_or(ReadError::BadString)?;
        core::str::from_utf8(&s[..end]).map_err(|_| ReadError::BadString)
    }
}

/// Iterator over [`Token`]s; yields an error once and then stops.
pub struct Tokens<'a> {
    fdt: Fdt<'a>,
    off: usize,
    depth: usize,
    done: bool,
}

impl<'a> Tokens<'a> {
    fn step(&mut self) -> Result<Option<Token<'a>>, ReadError> {
        let s = self.fdt.structs;
        loop {
            let tok = be32_at(s, self.off).ok_or(ReadError::Truncated)?;
            self.off += 4;
            match tok {
                FDT_BEGIN_NODE => {
                    let rest = s.get(self.off..).ok_or(ReadError::Truncated)?;
                    let len = rest
                        .iter()
                        .position(|&c| c == 0)
                        .ok_or(ReadError::Truncated)?;
                    let name =
                        core::str::from_utf8(&rest[..len]).map_err(|_| ReadError::BadString)?;
                    self.off = (self.off + len + 1 + 3) & !3;
                    if self.depth >= MAX_DEPTH {
                        return Err(ReadError::Unbalanced);
                    }
                    let depth = self.depth;
                    self.depth += 1;
                    return Ok(Some(Token::Begin { name, depth }));
                }
                FDT_PROP => {
                    if self.depth == 0 {
                        return Err(ReadError::Unbalanced);
                    }
                    let len = be32_at(s, self.off).ok_or(ReadError::Truncated)? as usize;
                    let nameoff = be32_at(s, self.off + 4).ok_or(ReadError::Truncated)? as usize;
                    let start = self.off + 8;
                    let value = s
                        .get(start..start.checked_add(len).ok_or(ReadError::Truncated)?)
                        .ok_or(ReadError::Truncated)?;
                    self.off = (start + len + 3) & !3;
                    let name = self.fdt.string(nameoff)?;
                    return Ok(Some(Token::Prop { name, value }));
                }
                FDT_END_NODE => {
                    self.depth = self.depth.checked_sub(1).ok_or(ReadError::Unbalanced)?;
                    return Ok(Some(Token::End));
                }
                FDT_NOP => continue,
                FDT_END => {
                    return if self.depth == 0 {
                        Ok(None)
                    } else {
                        Err(ReadError::Unbalanced)
                    };
                }
                other => return Err(ReadError::BadToken(other)),
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Builds a tiny tree by hand: / { a = <1>; child@1 { } }.
    fn tiny() -> Vec<u8> {
        let mut structs: Vec<u8> = Vec::new();
        let w = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        w(&mut structs, FDT_BEGIN_NODE);
        structs.extend_from_slice(&[0, 0, 0, 0]);
        w(&mut structs, FDT_PROP);
        w(&mut structs, 4);
        w(&mut structs, 0);
        w(&mut structs, 1);
        w(&mut structs, FDT_NOP);
        w(&mut structs, FDT_BEGIN_NODE);
        structs.extend_from_slice(b"child@1\0");
        w(&mut structs, FDT_END_NODE);
        w(&mut structs, FDT_END_NODE);
        w(&mut structs, FDT_END);
        let strings = b"a\0";
        let off_rsv = 40;
        let off_struct = off_rsv + 16;
        let off_strings = off_struct + structs.len();
        let total = off_strings + strings.len();
        let mut b = Vec::new();
        for v in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            7,
            strings.len() as u32,
            structs.len() as u32,
        ] {
            w(&mut b, v);
        }
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&structs);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn walks_tokens() {
        let b = tiny();
        let f = Fdt::new(&b).unwrap();
        assert_eq!(f.boot_cpuid_phys(), 7);
        let toks: Vec<_> = f.tokens().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            toks,
            vec![
                Token::Begin { name: "", depth: 0 },
                Token::Prop {
                    name: "a",
                    value: &[0, 0, 0, 1]
                },
                Token::Begin {
                    name: "child@1",
                    depth: 1
                },
                Token::End,
                Token::End,
            ]
        );
        assert_eq!(f.reservations().count(), 0);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let b = tiny();
        for cut in 0..b.len() {
            if let Ok(f) = Fdt::new(&b[..cut]) {
                let _ = f.tokens().count();
            }
        }
        // Flip every byte of the structure block in turn.
        for i in 40..b.len() {
            let mut c = b.clone();
            c[i] ^= 0xff;
            if let Ok(f) = Fdt::new(&c) {
                let _: Vec<_> = f.tokens().collect();
                let _: Vec<_> = f.reservations().collect();
            }
        }
        assert_eq!(Fdt::new(&[0u8; 8]).unwrap_err(), ReadError::BadHeader);
    }
}
