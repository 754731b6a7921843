//! Just enough ELF64 to add up the loadable bytes of an image.

use crate::error::{failed, Result};

const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// One program header, the fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

struct Reader<'a> {
    data: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N]> {
        self.data
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| failed!("ELF is truncated (wanted {N} bytes at {at:#x})"))
    }

    fn u16(&self, at: usize) -> Result<u16> {
        let b = self.bytes(at)?;
        Ok(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Result<u32> {
        let b = self.bytes(at)?;
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn u64(&self, at: usize) -> Result<u64> {
        let b = self.bytes(at)?;
        Ok(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

/// The program headers of an ELF64 file (little- or big-endian).
pub fn program_headers(data: &[u8]) -> Result<Vec<ProgramHeader>> {
    if data.len() < EHDR_SIZE || &data[..4] != b"\x7fELF" {
        return Err(failed!("not an ELF file"));
    }
    if data[4] != 2 {
        return Err(failed!("not a 64-bit ELF file (EI_CLASS {})", data[4]));
    }
    let little = match data[5] {
        1 => true,
        2 => false,
        other => return Err(failed!("bad ELF byte order (EI_DATA {other})")),
    };
    let r = Reader { data, little };
    let phoff = usize::try_from(r.u64(0x20)?).map_err(|_| failed!("bad e_phoff"))?;
    let phentsize = usize::from(r.u16(0x36)?);
    let phnum = usize::from(r.u16(0x38)?);
    if phnum == 0xffff {
        return Err(failed!("ELF with PN_XNUM program headers is not supported"));
    }
    if phnum > 0 && phentsize < PHDR_SIZE {
        return Err(failed!("bad e_phentsize {phentsize}"));
    }
    (0..phnum)
        .map(|i| {
            let at = phoff
                .checked_add(i * phentsize)
                .ok_or_else(|| failed!("bad e_phoff"))?;
            Ok(ProgramHeader {
                p_type: r.u32(at)?,
                offset: r.u64(at + 8)?,
                vaddr: r.u64(at + 16)?,
                paddr: r.u64(at + 24)?,
                filesz: r.u64(at + 32)?,
                memsz: r.u64(at + 40)?,
            })
        })
        .collect()
}

/// Sum of `p_filesz` over the PT_LOAD segments: the bytes a loader copies.
pub fn loadable_bytes(data: &[u8]) -> Result<u64> {
    Ok(program_headers(data)?
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.filesz)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 LE header with the given program headers
    /// (type, offset, vaddr, filesz, memsz) placed right after it.
    fn build_elf(phdrs: &[(u32, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut e = vec![0u8; EHDR_SIZE];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // ELFCLASS64
        e[5] = 1; // ELFDATA2LSB
        e[6] = 1; // EV_CURRENT
        e[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[0x12..0x14].copy_from_slice(&21u16.to_le_bytes()); // EM_PPC64
        e[0x18..0x20].copy_from_slice(&0x2000_0000u64.to_le_bytes()); // e_entry
        e[0x20..0x28].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
        e[0x34..0x36].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        e[0x36..0x38].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(ty, off, vaddr, filesz, memsz) in phdrs {
            let mut p = vec![0u8; PHDR_SIZE];
            p[0..4].copy_from_slice(&ty.to_le_bytes());
            p[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[24..32].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p[48..56].copy_from_slice(&0x10000u64.to_le_bytes());
            e.extend(p);
        }
        e
    }

    #[test]
    fn sums_pt_load_filesz_only() {
        let elf = build_elf(&[
            (6, 0x40, 0x2000_0040, 0x70, 0x70), // PT_PHDR
            (PT_LOAD, 0, 0x2000_0000, 0x1234, 0x1234),
            (PT_LOAD, 0x2000, 0x2001_0000, 0x100, 0x8000), // .data + .bss
            (0x6474_e551, 0, 0, 0, 0),                     // PT_GNU_STACK
        ]);
        let ph = program_headers(&elf).unwrap();
        assert_eq!(ph.len(), 4);
        assert_eq!(ph[2].memsz, 0x8000);
        assert_eq!(ph[1].vaddr, 0x2000_0000);
        assert_eq!(loadable_bytes(&elf).unwrap(), 0x1234 + 0x100);
    }

    #[test]
    fn big_endian_too() {
        let mut elf = build_elf(&[]);
        elf[5] = 2;
        elf[0x20..0x28].copy_from_slice(&64u64.to_be_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_be_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_be_bytes());
        let mut p = vec![0u8; PHDR_SIZE];
        p[0..4].copy_from_slice(&PT_LOAD.to_be_bytes());
        p[32..40].copy_from_slice(&0x42u64.to_be_bytes());
        elf.extend(p);
        assert_eq!(loadable_bytes(&elf).unwrap(), 0x42);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(
            loadable_bytes(b"not an elf at all, not an elf at all, not an elf at all, ......")
                .is_err()
        );
        let mut elf = build_elf(&[(PT_LOAD, 0, 0, 1, 1)]);
        elf.truncate(EHDR_SIZE + 10);
        assert!(loadable_bytes(&elf).is_err());
        let mut elf32 = build_elf(&[]);
        elf32[4] = 1;
        assert!(loadable_bytes(&elf32).is_err());
    }
}
