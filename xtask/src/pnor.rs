//! A PNOR flash image for QEMU's powernv (`-drive file=...,format=raw,if=mtd`,
//! QEMU's `pnv-pnor`, which skiboot reaches over HIOMAP through the machine's
//! `ipmi-bmc-sim`): an FFS partition table (skiboot `libflash/ffs.h`) with the
//! table itself (`part`) and an `NVRAM` partition, which skiboot formats and
//! serves as OPAL's NVRAM. Paprika keeps partition NVRAM there across machine
//! power-off (docs/vscsi.md).

/// `PART`, FFS version 1, 128-byte entries, 4 KiB blocks.
const MAGIC: u32 = 0x5041_5254;
const BLOCK: usize = 0x1000;
const ENTRY_LEN: usize = 128;
/// Partition types: data, the partition table.
const TYPE_DATA: u32 = 1;
const TYPE_PARTITION: u32 = 3;
/// skiboot's usual NVRAM size, at block 0x10.
pub const NVRAM_BYTES: usize = 0x90000;
const NVRAM_BLOCK: usize = 0x10;
/// The image: 16 MiB (QEMU takes the drive's size as the flash's).
pub const IMAGE_BYTES: usize = 16 << 20;

fn words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// The XOR of the big-endian words of `body`, appended (FFS checksums).
fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let x = words(&body).fold(0, |a, w| a ^ w);
    body.extend_from_slice(&x.to_be_bytes());
    body
}

fn entry(name: &str, base: usize, blocks: usize, kind: u32, actual: usize, id: u32) -> Vec<u8> {
    let mut e = vec![0u8; 16];
    e[..name.len()].copy_from_slice(name.as_bytes());
    for w in [
        base as u32,
        blocks as u32,
        u32::MAX, // pid: top level
        id,
        kind,
        0, // flags
        actual as u32,
    ] {
        e.extend_from_slice(&w.to_be_bytes());
    }
    e.resize(ENTRY_LEN - 4, 0); // reserved words and user data
    seal(e)
}

/// A blank image (erased flash, 0xff) with the table and an `NVRAM` partition.
pub fn image() -> Vec<u8> {
    let entries = [
        entry("part", 0, 1, TYPE_PARTITION, BLOCK, 1),
        entry(
            "NVRAM",
            NVRAM_BLOCK,
            NVRAM_BYTES / BLOCK,
            TYPE_DATA,
            NVRAM_BYTES,
            2,
        ),
    ];
    let mut hdr = Vec::new();
    for w in [
        MAGIC,
        1,
        1,
        ENTRY_LEN as u32,
        entries.len() as u32,
        BLOCK as u32,
        (IMAGE_BYTES / BLOCK) as u32,
        0,
        0,
        0,
        0,
    ] {
        hdr.extend_from_slice(&w.to_be_bytes());
    }
    let mut table = seal(hdr);
    for e in &entries {
        table.extend_from_slice(e);
    }
    let mut img = vec![0xffu8; IMAGE_BYTES];
    img[..table.len()].copy_from_slice(&table);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffs_table() {
        let img = image();
        assert_eq!(img.len(), IMAGE_BYTES);
        let hdr = &img[..48];
        assert_eq!(&hdr[..4], b"PART");
        // Every checksum makes the XOR of its structure's words zero.
        assert_eq!(words(hdr).fold(0, |a, w| a ^ w), 0);
        let nvram = &img[48 + ENTRY_LEN..48 + 2 * ENTRY_LEN];
        assert_eq!(words(nvram).fold(0, |a, w| a ^ w), 0);
        assert_eq!(&nvram[..6], b"NVRAM\0");
        let w: Vec<u32> = words(&nvram[16..44]).collect();
        assert_eq!(w, [0x10, 0x90, u32::MAX, 2, TYPE_DATA, 0, 0x90000]);
        assert!(img[48 + 2 * ENTRY_LEN..].iter().all(|&b| b == 0xff));
    }
}
