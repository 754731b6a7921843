//! The loadable bytes of an ELF64 image, read with the `object` crate (ELF
//! headers of either byte order, checked against the file's length).

use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::error::{failed, Result};

/// Sum of `p_filesz` over the PT_LOAD segments: the bytes a loader copies.
pub fn loadable_bytes(data: &[u8]) -> Result<u64> {
    let header = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| failed!("not a 64-bit ELF file: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| failed!("bad ELF byte order: {e}"))?;
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| failed!("bad ELF program headers: {e}"))?;
    Ok(segments
        .iter()
        .filter(|p| p.p_type(endian) == PT_LOAD)
        .map(|p| p.p_filesz(endian))
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PT_LOAD as the file stores it.
    const LOAD: u32 = 1;
    const EHDR_SIZE: usize = 64;
    const PHDR_SIZE: usize = 56;

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
            (LOAD, 0, 0x2000_0000, 0x1234, 0x1234),
            (LOAD, 0x2000, 0x2001_0000, 0x100, 0x8000), // .data + .bss
            (0x6474_e551, 0, 0, 0, 0),                  // PT_GNU_STACK
        ]);
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
        p[0..4].copy_from_slice(&LOAD.to_be_bytes());
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
        let mut elf = build_elf(&[(LOAD, 0, 0, 1, 1)]);
        elf.truncate(EHDR_SIZE + 10);
        assert!(loadable_bytes(&elf).is_err());
        let mut elf32 = build_elf(&[]);
        elf32[4] = 1;
        assert!(loadable_bytes(&elf32).is_err());
    }
}
