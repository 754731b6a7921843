//! ELF64 guest kernels for POWER (System V gABI, ELF-64 Object File Format 1.5;
//! machine `EM_PPC64`), little- or big-endian.
//!
//! A kernel is loaded at its physical addresses and entered at its entry point,
//! both as guest real addresses:
//! - each `PT_LOAD` segment goes to guest real `p_paddr`;
//! - except when every loadable `p_paddr` is 0 and some `p_vaddr` is not: then the
//!   linker left the physical addresses unset, and the segment goes to `p_vaddr`
//!   with the top four bits cleared (`0xc000_0000_0000_0000`, where ppc64 Linux
//!   links itself, is real address 0);
//! - the entry point is `e_entry` moved by the same offset as the segment that
//!   contains it (`e_entry - p_vaddr + guest address`), and must land inside the
//!   loaded image.
//!
//! A Linux `vmlinux` fits the second rule: its first segment has `p_vaddr`
//! `0xc000000000000000`, `p_paddr` 0, and `e_entry` points into it.
//!
//! [`ElfImage::placed_at`] then moves the image where pSeries firmware loads a
//! kernel (QEMU's `kernel-addr`, 0x400000), and [`load`] writes it through a
//! [`GuestSink`] (guest memory need not be one slice: `mm::extent`).
//!
//! Everything read from the file is bounds-checked; any malformed input is an
//! [`ElfError`], never a panic.

use alloc::vec::Vec;

/// `e_machine` for 64-bit PowerPC.
pub const EM_PPC64: u16 = 21;
/// Bits kept from a `p_vaddr` when it stands in for an unset `p_paddr`.
pub const REAL_ADDR_MASK: u64 = 0x0fff_ffff_ffff_ffff;

const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
/// Relocatable ppc64 kernels are linked `-pie` and come out as `ET_DYN`.
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    NotElf,
    /// An ELF32 file.
    Not64Bit,
    /// `e_machine` is not `EM_PPC64`.
    NotPowerPc,
    /// A malformed ELF header or program-header table, or an entry point outside
    /// the loaded image.
    BadHeader,
    /// Program header `index` (in file order) describes an impossible segment:
    /// file bytes beyond the end of the file, `p_filesz > p_memsz`, or an address
    /// range that wraps.
    BadSegment { index: usize },
    /// Two loadable segments share guest memory.
    Overlap,
    /// The image needs guest memory up to `need`; the partition has `have` bytes.
    TooBig { need: u64, have: u64 },
    /// No `PT_LOAD` segment with a non-zero size.
    NoLoadableSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::Not64Bit => write!(f, "not a 64-bit ELF file"),
            ElfError::NotPowerPc => write!(f, "not a PowerPC64 ELF file"),
            ElfError::BadHeader => write!(f, "malformed ELF header"),
            ElfError::BadSegment { index } => write!(f, "malformed program header {index}"),
            ElfError::Overlap => write!(f, "overlapping ELF segments"),
            ElfError::TooBig { need, have } => {
                write!(
                    f,
                    "image needs {need:#x} bytes of guest memory, have {have:#x}"
                )
            }
            ElfError::NoLoadableSegments => write!(f, "no loadable segments"),
        }
    }
}

/// One loadable segment, placed in guest real memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub guest_addr: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

/// A parsed kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    /// `ELFDATA2MSB`: the kernel expects to start big-endian (it may switch itself).
    pub big_endian: bool,
    /// Guest real address of the first instruction.
    pub entry: u64,
    /// Loadable segments in file order.
    pub segments: Vec<Segment>,
    /// Lowest guest real address the image occupies.
    pub low: u64,
    /// One past the highest guest real address the image occupies.
    pub high: u64,
}

/// Endian-aware bounds-checked field reads.
#[derive(Clone, Copy)]
struct Rd<'a> {
    b: &'a [u8],
    be: bool,
}

impl Rd<'_> {
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let s = self.b.get(off..off.checked_add(N)?)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        if !self.be {
            a.reverse();
        }
        Some(a)
    }
    fn u16(&self, off: usize) -> Option<u16> {
        self.bytes(off).map(u16::from_be_bytes)
    }
    fn u32(&self, off: usize) -> Option<u32> {
        self.bytes(off).map(u32::from_be_bytes)
    }
    fn u64(&self, off: usize) -> Option<u64> {
        self.bytes(off).map(u64::from_be_bytes)
    }
}

fn hdr<T>(v: Option<T>) -> Result<T, ElfError> {
    v.ok_or(ElfError::BadHeader)
}

/// A `PT_LOAD` entry as the file states it.
struct RawLoad {
    index: usize,
    offset: u64,
    filesz: u64,
    memsz: u64,
    vaddr: u64,
    paddr: u64,
}

/// Parses and validates the headers of an ELF64 PowerPC image.
pub fn parse(bytes: &[u8]) -> Result<ElfImage, ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    match bytes.get(4) {
        Some(&ELFCLASS64) => {}
        Some(&ELFCLASS32) => return Err(ElfError::Not64Bit),
        _ => return Err(ElfError::BadHeader),
    }
    let be = match bytes.get(5) {
        Some(&ELFDATA2LSB) => false,
        Some(&ELFDATA2MSB) => true,
        _ => return Err(ElfError::BadHeader),
    };
    if bytes.len() < EHDR_SIZE || bytes.get(6) != Some(&EV_CURRENT) {
        return Err(ElfError::BadHeader);
    }
    let r = Rd { b: bytes, be };
    if hdr(r.u16(18))? != EM_PPC64 {
        return Err(ElfError::NotPowerPc);
    }
    let e_type = hdr(r.u16(16))?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::BadHeader);
    }
    let e_entry = hdr(r.u64(24))?;
    let phoff = hdr(r.u64(32))?;
    let phentsize = usize::from(hdr(r.u16(54))?);
    let phnum = usize::from(hdr(r.u16(56))?);
    if phnum == 0 {
        return Err(ElfError::NoLoadableSegments);
    }
    if phentsize < PHDR_SIZE {
        return Err(ElfError::BadHeader);
    }
    let phoff = usize::try_from(phoff).map_err(|_| ElfError::BadHeader)?;
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .ok_or(ElfError::BadHeader)?;
    if table_end > bytes.len() {
        return Err(ElfError::BadHeader);
    }

    let mut loads = Vec::new();
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let bad = ElfError::BadSegment { index };
        let field = |off: usize| r.u64(at + off).ok_or(bad);
        if r.u32(at).ok_or(bad)? != PT_LOAD {
            continue;
        }
        let l = RawLoad {
            index,
            offset: field(8)?,
            vaddr: field(16)?,
            paddr: field(24)?,
            filesz: field(32)?,
            memsz: field(40)?,
        };
        if l.memsz == 0 {
            continue;
        }
        let file_end = l.offset.checked_add(l.filesz).ok_or(bad)?;
        if l.filesz > l.memsz
            || file_end > bytes.len() as u64
            || l.vaddr.checked_add(l.memsz).is_none()
            || l.paddr.checked_add(l.memsz).is_none()
        {
            return Err(bad);
        }
        loads.push(l);
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadableSegments);
    }

    let use_vaddr = loads.iter().all(|l| l.paddr == 0) && loads.iter().any(|l| l.vaddr != 0);
    let place = |l: &RawLoad| {
        if use_vaddr {
            l.vaddr & REAL_ADDR_MASK
        } else {
            l.paddr
        }
    };
    let mut segments = Vec::with_capacity(loads.len());
    for l in &loads {
        let guest_addr = place(l);
        guest_addr
            .checked_add(l.memsz)
            .ok_or(ElfError::BadSegment { index: l.index })?;
        segments.push(Segment {
            guest_addr,
            file_offset: l.offset,
            file_size: l.filesz,
            mem_size: l.memsz,
        });
    }
    let (low, high) = extent(&segments)?;

    // The segment holding e_entry decides its translation; failing that, the
    // first one (an entry outside every segment is then caught below).
    let home = loads
        .iter()
        .find(|l| e_entry >= l.vaddr && e_entry - l.vaddr < l.memsz)
        .or(loads.first())
        .ok_or(ElfError::NoLoadableSegments)?;
    let entry = e_entry.wrapping_sub(home.vaddr).wrapping_add(place(home));
    if entry < low || entry >= high {
        return Err(ElfError::BadHeader);
    }

    Ok(ElfImage {
        big_endian: be,
        entry,
        segments,
        low,
        high,
    })
}

/// Bits of a physical address QEMU's pseries keeps when it moves a kernel to
/// `kernel-addr` (`translate_kernel_address` in hw/ppc/spapr.c).
pub const KERNEL_ADDR_MASK: u64 = 0x0fff_ffff;

impl ElfImage {
    /// The image moved where pSeries firmware loads a kernel: each segment at
    /// `kernel_addr + (physical address & 0x0fffffff)`, as QEMU's `-M pseries`
    /// loads `-kernel` (default `kernel-addr` 0x400000), and the entry point
    /// moved with the segment that holds it. A Linux `vmlinux` (physical 0)
    /// lands at `kernel_addr` and copies itself down to 0; an image linked at 0
    /// finds its vectors missing at 0x100 and must copy them there.
    pub fn placed_at(&self, kernel_addr: u64) -> Result<ElfImage, ElfError> {
        let mut segments = Vec::with_capacity(self.segments.len());
        for (index, s) in self.segments.iter().enumerate() {
            let guest_addr = kernel_addr
                .checked_add(s.guest_addr & KERNEL_ADDR_MASK)
                .ok_or(ElfError::BadSegment { index })?;
            segments.push(Segment { guest_addr, ..*s });
        }
        let (low, high) = extent(&segments)?;
        let entry = self
            .segments
            .iter()
            .zip(&segments)
            .find(|(old, _)| {
                self.entry >= old.guest_addr && self.entry - old.guest_addr < old.mem_size
            })
            .map(|(old, new)| new.guest_addr + (self.entry - old.guest_addr))
            .ok_or(ElfError::BadHeader)?;
        Ok(ElfImage {
            big_endian: self.big_endian,
            entry,
            segments,
            low,
            high,
        })
    }
}

/// Guest memory the loader writes into.
pub trait GuestSink {
    /// Bytes of guest memory: guest real `[0, size)`.
    fn size(&self) -> u64;
    /// Writes `bytes` at guest real `gra`; the caller has checked that they lie
    /// inside `[0, size)`.
    fn write(&mut self, gra: u64, bytes: &[u8]);
    /// Zeroes `[gra, gra + len)`, checked likewise.
    fn zero(&mut self, gra: u64, len: u64);
}

/// Guest memory as one slice (guest real 0 is its first byte).
impl GuestSink for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn write(&mut self, gra: u64, bytes: &[u8]) {
        let at = gra as usize;
        if let Some(d) = self.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
    }
    fn zero(&mut self, gra: u64, len: u64) {
        let at = gra as usize;
        if let Some(d) = self.get_mut(at..at + len as usize) {
            d.fill(0);
        }
    }
}

/// The guest extent `[low, high)` of `segs`, which must not overlap and must not
/// wrap.
fn extent(segs: &[Segment]) -> Result<(u64, u64), ElfError> {
    let mut ranges = Vec::with_capacity(segs.len());
    for (index, s) in segs.iter().enumerate() {
        let end = s
            .guest_addr
            .checked_add(s.mem_size)
            .ok_or(ElfError::BadSegment { index })?;
        ranges.push((s.guest_addr, end));
    }
    ranges.sort_unstable();
    let mut low = u64::MAX;
    let mut high = 0;
    let mut prev_end = None;
    for &(start, end) in &ranges {
        if prev_end.is_some_and(|p| p > start) {
            return Err(ElfError::Overlap);
        }
        prev_end = Some(end);
        low = low.min(start);
        high = high.max(end);
    }
    if ranges.is_empty() {
        return Err(ElfError::NoLoadableSegments);
    }
    Ok((low, high))
}

/// Copies `img`'s segments from `bytes` into `guest_mem` (guest real memory
/// `[0, guest_mem.size())`), and zeroes each segment's tail beyond its file
/// bytes (`.bss`). Nothing outside the segments is touched. `img` is re-checked
/// against `bytes` and `guest_mem`, so a hand-made or stale image cannot write out
/// of bounds; on error nothing has been written.
pub fn load(
    img: &ElfImage,
    bytes: &[u8],
    guest_mem: &mut (impl GuestSink + ?Sized),
) -> Result<(), ElfError> {
    let (_, high) = extent(&img.segments)?;
    let have = guest_mem.size();
    if high > have {
        return Err(ElfError::TooBig { need: high, have });
    }
    // Validate everything before writing anything.
    let mut plan = Vec::with_capacity(img.segments.len());
    for (index, s) in img.segments.iter().enumerate() {
        let bad = ElfError::BadSegment { index };
        if s.file_size > s.mem_size {
            return Err(bad);
        }
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad);
        let off = to_usize(s.file_offset)?;
        let fsz = to_usize(s.file_size)?;
        let src = off
            .checked_add(fsz)
            .and_then(|end| bytes.get(off..end))
            .ok_or(bad)?;
        plan.push((src, s.guest_addr, s.mem_size));
    }
    for (src, start, mem_size) in plan {
        // `start + mem_size <= high <= size` (extent checked it does not wrap), and
        // file_size <= mem_size was checked, so `src` fits.
        guest_mem.write(start, src);
        let n = src.len() as u64;
        guest_mem.zero(start + n, mem_size - n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;
    use std::vec;

    /// (p_type, vaddr, paddr, file bytes, memsz)
    type Ph<'a> = (u32, u64, u64, &'a [u8], u64);

    /// Builds an ELF64 image: header, program headers, then each segment's bytes.
    fn build(be: bool, machine: u16, entry: u64, phs: &[Ph]) -> Vec<u8> {
        let mut out = vec![0u8; EHDR_SIZE + PHDR_SIZE * phs.len()];
        let put = |out: &mut Vec<u8>, off: usize, v: u64, n: usize| {
            let b = v.to_be_bytes();
            let field: Vec<u8> = if be {
                b[8 - n..].to_vec()
            } else {
                b[8 - n..].iter().rev().copied().collect()
            };
            out[off..off + n].copy_from_slice(&field);
        };
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = ELFCLASS64;
        out[5] = if be { ELFDATA2MSB } else { ELFDATA2LSB };
        out[6] = EV_CURRENT;
        put(&mut out, 16, u64::from(ET_EXEC), 2);
        put(&mut out, 18, u64::from(machine), 2);
        put(&mut out, 20, 1, 4);
        put(&mut out, 24, entry, 8);
        put(&mut out, 32, EHDR_SIZE as u64, 8);
        put(&mut out, 52, EHDR_SIZE as u64, 2);
        put(&mut out, 54, PHDR_SIZE as u64, 2);
        put(&mut out, 56, phs.len() as u64, 2);
        for (i, &(ty, vaddr, paddr, data, memsz)) in phs.iter().enumerate() {
            let at = EHDR_SIZE + i * PHDR_SIZE;
            let offset = out.len() as u64;
            out.extend_from_slice(data);
            put(&mut out, at, u64::from(ty), 4);
            put(&mut out, at + 4, 7, 4);
            put(&mut out, at + 8, offset, 8);
            put(&mut out, at + 16, vaddr, 8);
            put(&mut out, at + 24, paddr, 8);
            put(&mut out, at + 32, data.len() as u64, 8);
            put(&mut out, at + 40, memsz, 8);
            put(&mut out, at + 48, 0x10000, 8);
        }
        out
    }

    const KBASE: u64 = 0xc000_0000_0000_0000;

    #[test]
    fn linux_style_vmlinux_both_endians() {
        for be in [false, true] {
            let text = [0x11u8; 0x40];
            let data = [0x22u8; 0x20];
            let f = build(
                be,
                EM_PPC64,
                KBASE + 0x10,
                &[
                    (PT_LOAD, KBASE, 0, &text, 0x100),
                    (4, 0, 0, &[9; 8], 8), // PT_NOTE: ignored
                    (PT_LOAD, KBASE + 0x1000, 0x1000, &data, 0x80),
                ],
            );
            let img = parse(&f).unwrap();
            assert_eq!(img.big_endian, be);
            assert_eq!(img.entry, 0x10);
            assert_eq!((img.low, img.high), (0, 0x1080));
            assert_eq!(img.segments.len(), 2);
            assert_eq!(img.segments[0].guest_addr, 0);
            assert_eq!(img.segments[0].file_size, 0x40);
            assert_eq!(img.segments[0].mem_size, 0x100);
            assert_eq!(img.segments[1].guest_addr, 0x1000);

            let mut mem = vec![0xeeu8; 0x2000];
            load(&img, &f, &mut mem[..]).unwrap();
            assert!(mem[..0x40].iter().all(|&b| b == 0x11));
            assert!(mem[0x40..0x100].iter().all(|&b| b == 0), "bss zeroed");
            assert!(
                mem[0x100..0x1000].iter().all(|&b| b == 0xee),
                "gap untouched"
            );
            assert!(mem[0x1000..0x1020].iter().all(|&b| b == 0x22));
            assert!(mem[0x1020..0x1080].iter().all(|&b| b == 0));
            assert!(mem[0x1080..].iter().all(|&b| b == 0xee), "tail untouched");
        }
    }

    /// QEMU pseries placement: kernel-addr + (physical & 0x0fffffff).
    #[test]
    fn placed_at_kernel_addr_as_pseries_does() {
        const KA: u64 = 0x40_0000;
        // vmlinux: physical 0 (from p_vaddr), entry at its first byte.
        let f = build(
            false,
            EM_PPC64,
            KBASE,
            &[(PT_LOAD, KBASE, 0, &[1; 0x40], 0x100)],
        );
        let img = parse(&f).unwrap().placed_at(KA).unwrap();
        assert_eq!((img.entry, img.low, img.high), (KA, KA, KA + 0x100));
        // A program linked at 0 with its entry at 0x10000 (the test guests).
        let f = build(
            false,
            EM_PPC64,
            0x1_0000,
            &[(PT_LOAD, 0, 0, &[2; 0x20], 0x2_0000)],
        );
        let img = parse(&f).unwrap().placed_at(KA).unwrap();
        assert_eq!(img.segments[0].guest_addr, KA);
        assert_eq!(img.entry, KA + 0x1_0000);
        // Physical addresses keep only their low 28 bits; segments keep their
        // distance; the entry moves with its own segment.
        let f = build(
            true,
            EM_PPC64,
            KBASE + 0x2000_1010,
            &[
                (
                    PT_LOAD,
                    KBASE + 0x2000_0000,
                    0x2000_0000,
                    &[3; 0x10],
                    0x1000,
                ),
                (
                    PT_LOAD,
                    KBASE + 0x2000_1000,
                    0x2000_1000,
                    &[4; 0x10],
                    0x1000,
                ),
            ],
        );
        let img = parse(&f).unwrap().placed_at(KA).unwrap();
        assert_eq!(img.segments[0].guest_addr, KA);
        assert_eq!(img.segments[1].guest_addr, KA + 0x1000);
        assert_eq!(img.entry, KA + 0x1010);
        let mut mem = vec![0xeeu8; 0x40_3000];
        load(&img, &f, &mut mem[..]).unwrap();
        assert!(
            mem[..KA as usize].iter().all(|&b| b == 0xee),
            "below kernel-addr untouched"
        );
        assert_eq!(mem[KA as usize], 3);
        assert_eq!(mem[KA as usize + 0x1000], 4);
        // Overflow of the target address is an error, not a wrap.
        let f = build(false, EM_PPC64, 0, &[(PT_LOAD, 0, 0, &[2; 0x20], 0x100)]);
        assert!(parse(&f).unwrap().placed_at(u64::MAX - 0x10).is_err());
    }

    #[test]
    fn physical_addresses_win_when_set() {
        let f = build(
            false,
            EM_PPC64,
            KBASE + 0x2000_0004,
            &[(
                PT_LOAD,
                KBASE + 0x2000_0000,
                0x40_0000,
                &[1, 2, 3, 4, 5, 6, 7, 8],
                8,
            )],
        );
        let img = parse(&f).unwrap();
        assert_eq!(img.segments[0].guest_addr, 0x40_0000);
        assert_eq!(img.entry, 0x40_0004);
    }

    #[test]
    fn unset_physical_addresses_fall_back_to_masked_virtual() {
        let f = build(
            true,
            EM_PPC64,
            KBASE + 0x1_0008,
            &[
                (PT_LOAD, KBASE + 0x1_0000, 0, &[0xaa; 16], 16),
                (PT_LOAD, KBASE + 0x2_0000, 0, &[0xbb; 16], 32),
            ],
        );
        let img = parse(&f).unwrap();
        assert_eq!(img.segments[0].guest_addr, 0x1_0000);
        assert_eq!(img.segments[1].guest_addr, 0x2_0000);
        assert_eq!(img.entry, 0x1_0008);
        assert_eq!((img.low, img.high), (0x1_0000, 0x2_0020));

        // A low-linked image with unset physical addresses loads where linked.
        let f = build(
            false,
            EM_PPC64,
            0x40_0000,
            &[(PT_LOAD, 0x40_0000, 0, &[1; 4], 4)],
        );
        let img = parse(&f).unwrap();
        assert_eq!(
            (img.segments[0].guest_addr, img.entry),
            (0x40_0000, 0x40_0000)
        );
    }

    #[test]
    fn entry_outside_the_image_is_rejected() {
        let f = build(
            false,
            EM_PPC64,
            KBASE + 0x100,
            &[(PT_LOAD, KBASE, 0, &[0; 16], 16)],
        );
        assert_eq!(parse(&f), Err(ElfError::BadHeader));
    }

    #[test]
    fn header_errors() {
        let good = build(false, EM_PPC64, KBASE, &[(PT_LOAD, KBASE, 0, &[0; 4], 4)]);
        assert!(parse(&good).is_ok());
        assert_eq!(parse(b""), Err(ElfError::NotElf));
        assert_eq!(parse(b"\x7fELG"), Err(ElfError::NotElf));
        assert_eq!(parse(b"\x7fELF"), Err(ElfError::BadHeader));

        let mut f = good.clone();
        f[4] = ELFCLASS32;
        assert_eq!(parse(&f), Err(ElfError::Not64Bit));
        f[4] = 9;
        assert_eq!(parse(&f), Err(ElfError::BadHeader));

        let mut f = good.clone();
        f[5] = 3;
        assert_eq!(parse(&f), Err(ElfError::BadHeader));

        let ppc32 = build(false, 20, KBASE, &[(PT_LOAD, KBASE, 0, &[0; 4], 4)]);
        assert_eq!(parse(&ppc32), Err(ElfError::NotPowerPc));

        let mut f = good.clone();
        f[16] = 1; // ET_REL
        assert_eq!(parse(&f), Err(ElfError::BadHeader));
        f[16] = 3; // ET_DYN, as a -pie kernel
        assert!(parse(&f).is_ok());

        let mut f = good.clone();
        f[54] = 40; // phentsize too small
        assert_eq!(parse(&f), Err(ElfError::BadHeader));

        let mut f = good.clone();
        f[56] = 0; // no program headers
        assert_eq!(parse(&f), Err(ElfError::NoLoadableSegments));

        let mut f = good.clone();
        f[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff wraps
        assert_eq!(parse(&f), Err(ElfError::BadHeader));

        let notes_only = build(false, EM_PPC64, KBASE, &[(4, KBASE, 0, &[0; 4], 4)]);
        assert_eq!(parse(&notes_only), Err(ElfError::NoLoadableSegments));
        let empty_load = build(false, EM_PPC64, KBASE, &[(PT_LOAD, KBASE, 0, &[], 0)]);
        assert_eq!(parse(&empty_load), Err(ElfError::NoLoadableSegments));
    }

    #[test]
    fn segment_errors() {
        // File bytes beyond the end of the file.
        let mut f = build(false, EM_PPC64, KBASE, &[(PT_LOAD, KBASE, 0, &[0; 8], 8)]);
        let ph = EHDR_SIZE;
        f.truncate(f.len() - 1);
        assert_eq!(parse(&f), Err(ElfError::BadSegment { index: 0 }));

        // filesz > memsz.
        let f = build(false, EM_PPC64, KBASE, &[(PT_LOAD, KBASE, 0, &[0; 8], 4)]);
        assert_eq!(parse(&f), Err(ElfError::BadSegment { index: 0 }));

        // Offset + size wraps.
        let mut f = build(false, EM_PPC64, KBASE, &[(PT_LOAD, KBASE, 0, &[0; 8], 8)]);
        f[ph + 8..ph + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&f), Err(ElfError::BadSegment { index: 0 }));

        // Address range wraps.
        let f = build(
            false,
            EM_PPC64,
            u64::MAX - 4,
            &[(PT_LOAD, u64::MAX - 7, 0x1000, &[0; 8], 16)],
        );
        assert_eq!(parse(&f), Err(ElfError::BadSegment { index: 0 }));

        // The index names the offending header in file order.
        let f = build(
            true,
            EM_PPC64,
            KBASE,
            &[
                (PT_LOAD, KBASE, 0, &[0; 8], 8),
                (4, 0, 0, &[], 0),
                (PT_LOAD, KBASE + 0x100, 0x100, &[0; 8], 4),
            ],
        );
        assert_eq!(parse(&f), Err(ElfError::BadSegment { index: 2 }));
    }

    #[test]
    fn overlapping_segments_are_rejected() {
        let f = build(
            false,
            EM_PPC64,
            KBASE,
            &[
                (PT_LOAD, KBASE, 0, &[0; 8], 0x100),
                (PT_LOAD, KBASE + 0x80, 0x80, &[0; 8], 0x100),
            ],
        );
        assert_eq!(parse(&f), Err(ElfError::Overlap));
        // Touching is fine, in either table order.
        let f = build(
            false,
            EM_PPC64,
            KBASE,
            &[
                (PT_LOAD, KBASE + 0x100, 0x100, &[0; 8], 0x100),
                (PT_LOAD, KBASE, 0, &[0; 8], 0x100),
            ],
        );
        let img = parse(&f).unwrap();
        assert_eq!((img.low, img.high, img.entry), (0, 0x200, 0));
    }

    #[test]
    fn too_big_and_hand_made_images() {
        let f = build(
            false,
            EM_PPC64,
            KBASE,
            &[(PT_LOAD, KBASE, 0x1000, &[7; 8], 0x1000)],
        );
        let img = parse(&f).unwrap();
        let mut mem = vec![0u8; 0x1fff];
        assert_eq!(
            load(&img, &f, &mut mem[..]),
            Err(ElfError::TooBig {
                need: 0x2000,
                have: 0x1fff
            })
        );
        assert!(mem.iter().all(|&b| b == 0), "nothing written on error");
        let mut mem = vec![0u8; 0x2000];
        load(&img, &f, &mut mem[..]).unwrap();
        assert_eq!(&mem[0x1000..0x1008], &[7; 8]);

        // An image that does not match the bytes it is loaded from.
        let mut wrong = img.clone();
        wrong.segments[0].file_offset = f.len() as u64;
        assert_eq!(
            load(&wrong, &f, &mut mem[..]),
            Err(ElfError::BadSegment { index: 0 })
        );
        let mut wrong = img.clone();
        wrong.segments[0].file_size = 0x2000;
        assert_eq!(
            load(&wrong, &f, &mut mem[..]),
            Err(ElfError::BadSegment { index: 0 })
        );
        let mut wrong = img.clone();
        wrong.segments.push(wrong.segments[0]);
        assert_eq!(load(&wrong, &f, &mut mem[..]), Err(ElfError::Overlap));
        let mut wrong = img.clone();
        wrong.segments[0].guest_addr = u64::MAX;
        assert_eq!(
            load(&wrong, &f, &mut mem[..]),
            Err(ElfError::BadSegment { index: 0 })
        );
        let mut wrong = img;
        wrong.segments.clear();
        assert_eq!(
            load(&wrong, &f, &mut mem[..]),
            Err(ElfError::NoLoadableSegments)
        );
    }

    /// Parses and loads `bytes`; true if it parsed.
    fn try_everything(bytes: &[u8], mem: &mut [u8]) -> bool {
        let Ok(img) = parse(bytes) else {
            return false;
        };
        assert!(img.low < img.high);
        assert!(img.entry >= img.low && img.entry < img.high);
        match load(&img, bytes, mem) {
            Ok(()) => assert!(img.high <= mem.len() as u64),
            Err(ElfError::TooBig { need, .. }) => assert!(need > mem.len() as u64),
            Err(e) => panic!("parse accepted what load refused: {e:?}"),
        }
        true
    }

    #[test]
    fn truncations_and_corruptions_never_panic() {
        let seed = build(
            true,
            EM_PPC64,
            KBASE + 4,
            &[
                (PT_LOAD, KBASE, 0, &[0x5a; 24], 0x40),
                (PT_LOAD, KBASE + 0x40, 0x40, &[0xa5; 8], 0x20),
            ],
        );
        let mut mem = vec![0u8; 0x80];
        for cut in 0..seed.len() {
            try_everything(&seed[..cut], &mut mem);
        }
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut f = seed.clone();
            for _ in 0..1 + rng.index(6) {
                let i = rng.index(f.len());
                f[i] = match rng.index(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next_u64() as u8,
                };
            }
            if rng.index(8) == 0 {
                f.truncate(rng.index(f.len() + 1));
            }
            parsed += usize::from(try_everything(&f, &mut mem));
        }
        // Enough mutants stay valid that load() gets exercised too.
        assert!(parsed > 1000, "only {parsed} mutants parsed");
        // Pure noise behind a valid identification.
        for _ in 0..5_000 {
            let len = rng.index(300);
            let mut f: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if len >= 7 {
                f[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
            }
            if len >= 20 {
                f[18] = 21;
                f[19] = 0;
            }
            try_everything(&f, &mut mem);
        }
    }
}
