//! A partition's NVRAM (sPAPR `/nvram`, QEMU `hw/nvram/spapr_nvram.c`): a byte
//! array the guest reads and writes with the RTAS calls `nvram-fetch` and
//! `nvram-store` (PAPR 7.3.6.2/7.3.6.3; Linux
//! `arch/powerpc/platforms/pseries/nvram.c`), kept across partition reboots.
//!
//! A fresh NVRAM holds, as SLOF formats one for `-M pseries`, a 4 KiB
//! `common` partition (signature 0x70, Open Firmware's name=value variables,
//! empty) then one CHRP free partition over the rest (signature 0x7f, name
//! `wwwwwwwwwwww`), so Linux's partition scan finds a valid layout and carves
//! its own partitions (`ibm,rtas-log`, the oops log) out of the free space,
//! and powerpc-utils' `nvram --print-config` / `--update-config name=value`
//! (whose default partition is `common`) find theirs.

use alloc::vec;
use alloc::vec::Vec;

use super::rtas::{RTAS_HARDWARE_ERROR, RTAS_PARAMETER_ERROR};

/// Bytes of NVRAM every partition gets (QEMU's default, `DEFAULT_NVRAM_SIZE`).
pub const NVRAM_SIZE: usize = 64 * 1024;
/// CHRP partition header length and the free-space signature.
pub const CHRP_HEADER_LEN: usize = 16;
pub const CHRP_SIG_FREE: u8 = 0x7f;
/// The system (Open Firmware name=value) partition's signature and name, and
/// the size SLOF gives it.
pub const CHRP_SIG_SYSTEM: u8 = 0x70;
pub const COMMON_NAME: &str = "common";
pub const COMMON_LEN: usize = 4096;

/// The CHRP header checksum (Sparc/CHRP NVRAM spec; skiboot `chrp_nv_cksum`,
/// Linux `nvram_checksum`): the bytes other than the checksum summed with an
/// end-around carry.
pub fn chrp_checksum(header: &[u8; CHRP_HEADER_LEN]) -> u8 {
    let mut sum: u8 = 0;
    for (i, &b) in header.iter().enumerate() {
        if i == 1 {
            continue;
        }
        let (s, carry) = sum.overflowing_add(b);
        sum = s.wrapping_add(carry as u8);
    }
    sum
}

/// A CHRP partition header: signature, name (at most 12 bytes, NUL-padded) and
/// total length in bytes (a multiple of 16, header included).
pub fn chrp_header(sig: u8, name: &str, len: usize) -> [u8; CHRP_HEADER_LEN] {
    let mut h = [0u8; CHRP_HEADER_LEN];
    h[0] = sig;
    let blocks = (len / 16).min(0xffff) as u16;
    h[2..4].copy_from_slice(&blocks.to_be_bytes());
    let n = name.len().min(12);
    h[4..4 + n].copy_from_slice(&name.as_bytes()[..n]);
    h[1] = chrp_checksum(&h);
    h
}

/// One partition's NVRAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nvram {
    bytes: Vec<u8>,
}

impl Default for Nvram {
    fn default() -> Self {
        Self::new()
    }
}

impl Nvram {
    /// [`NVRAM_SIZE`] bytes formatted as an empty `common` partition
    /// ([`COMMON_LEN`] bytes: its header, then zeros, i.e. no variables) and
    /// one free partition over the rest.
    pub fn new() -> Nvram {
        let mut bytes = vec![0u8; NVRAM_SIZE];
        bytes[..CHRP_HEADER_LEN].copy_from_slice(&chrp_header(
            CHRP_SIG_SYSTEM,
            COMMON_NAME,
            COMMON_LEN,
        ));
        bytes[COMMON_LEN..COMMON_LEN + CHRP_HEADER_LEN].copy_from_slice(&chrp_header(
            CHRP_SIG_FREE,
            "wwwwwwwwwwww",
            NVRAM_SIZE - COMMON_LEN,
        ));
        Nvram { bytes }
    }

    /// The contents as they are (for saving them elsewhere).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Replaces the contents with `data` if it is exactly [`NVRAM_SIZE`] bytes
    /// (restoring a saved copy); false otherwise.
    pub fn restore(&mut self, data: &[u8]) -> bool {
        if data.len() != self.bytes.len() {
            return false;
        }
        self.bytes.copy_from_slice(data);
        true
    }

    /// The range `[offset, offset + len)` if it lies inside (QEMU's check:
    /// `offset >= size || len > size - offset` is a parameter error).
    pub fn range(&self, offset: u32, len: u32) -> Result<core::ops::Range<usize>, i32> {
        let size = self.bytes.len();
        let (offset, len) = (offset as usize, len as usize);
        if offset >= size || len > size - offset {
            return Err(RTAS_PARAMETER_ERROR);
        }
        Ok(offset..offset + len)
    }

    pub fn get(&self, r: core::ops::Range<usize>) -> &[u8] {
        &self.bytes[r]
    }

    pub fn get_mut(&mut self, r: core::ops::Range<usize>) -> &mut [u8] {
        &mut self.bytes[r]
    }
}

/// nvram-fetch / nvram-store take (index, buffer, length) and return (status,
/// bytes done): anything else is a parameter error (QEMU checks `nargs == 3 &&
/// nret == 2`).
pub fn check_arity(nargs: usize, nret: usize) -> Result<(), i32> {
    if nargs == 3 && nret == 2 {
        Ok(())
    } else {
        Err(RTAS_PARAMETER_ERROR)
    }
}

/// What a buffer outside the partition gets (QEMU: hardware error).
pub const BAD_BUFFER: i32 = RTAS_HARDWARE_ERROR;

/// Paprika's partition in the host's NVRAM (OPAL's, kept in flash): CHRP
/// signature 0xA0 ("OS") and this name, holding one slot per partition name.
pub const HOST_SIG: u8 = 0xa0;
pub const HOST_NAME: &str = "paprika";
/// A slot: the partition's name (NUL-padded) then its NVRAM.
pub const SLOT_NAME_LEN: usize = 32;
pub const SLOT_LEN: usize = SLOT_NAME_LEN + NVRAM_SIZE;

/// Where Paprika's partition lies in a host NVRAM image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostArea {
    /// Its data (after the header), in bytes from the start of the NVRAM.
    pub data: core::ops::Range<usize>,
    /// The bytes of the image that changed (headers written, data zeroed) and
    /// must be written back; empty when the partition was already there.
    pub dirty: core::ops::Range<usize>,
}

/// Finds Paprika's partition in the host NVRAM `nv` (a CHRP layout, as skiboot
/// keeps it), or makes one of `slots` slots from the first free partition big
/// enough, splitting it. `None` if the layout is not valid CHRP (a bad
/// checksum, a zero or overlong length) or there is no room.
pub fn host_area(nv: &mut [u8], slots: usize) -> Option<HostArea> {
    let want = (CHRP_HEADER_LEN + slots * SLOT_LEN).next_multiple_of(16);
    if want / 16 > 0xffff {
        return None;
    }
    let mut off = 0usize;
    let mut free = None;
    while off + CHRP_HEADER_LEN <= nv.len() {
        let h: [u8; CHRP_HEADER_LEN] = nv[off..off + CHRP_HEADER_LEN].try_into().ok()?;
        if chrp_checksum(&h) != h[1] {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([h[2], h[3]])) * 16;
        if len < CHRP_HEADER_LEN || off + len > nv.len() {
            return None;
        }
        let name = &h[4..16];
        let is_ours = h[0] == HOST_SIG
            && name.starts_with(HOST_NAME.as_bytes())
            && name[HOST_NAME.len()..].iter().all(|&b| b == 0);
        if is_ours {
            return Some(HostArea {
                data: off + CHRP_HEADER_LEN..off + len,
                dirty: 0..0,
            });
        }
        if h[0] == CHRP_SIG_FREE && free.is_none() && len >= want {
            free = Some((off, len));
        }
        off += len;
    }
    let (at, len) = free?;
    // Ours at the start of the free space, the rest stays free (if a header
    // fits; otherwise ours takes all of it).
    let ours = if len - want >= CHRP_HEADER_LEN {
        want
    } else {
        len
    };
    nv[at..at + CHRP_HEADER_LEN].copy_from_slice(&chrp_header(HOST_SIG, HOST_NAME, ours));
    nv[at + CHRP_HEADER_LEN..at + ours].fill(0);
    if ours < len {
        let rest = chrp_header(CHRP_SIG_FREE, "wwwwwwwwwwww", len - ours);
        nv[at + ours..at + ours + CHRP_HEADER_LEN].copy_from_slice(&rest);
    }
    let end = if ours < len {
        at + ours + CHRP_HEADER_LEN
    } else {
        at + ours
    };
    Some(HostArea {
        data: at + CHRP_HEADER_LEN..at + ours,
        dirty: at..end,
    })
}

/// The slot of partition `name` in Paprika's area `area`: its offset in the
/// area and whether it was just claimed (its name written, its NVRAM to be
/// formatted); `None` when every slot belongs to another name (or the name
/// does not fit).
pub fn host_slot(area: &mut [u8], name: &str) -> Option<(usize, bool)> {
    if name.is_empty() || name.len() >= SLOT_NAME_LEN {
        return None;
    }
    let slots = area.len() / SLOT_LEN;
    let mut empty = None;
    for i in 0..slots {
        let at = i * SLOT_LEN;
        let n = &area[at..at + SLOT_NAME_LEN];
        let len = n.iter().position(|&b| b == 0).unwrap_or(SLOT_NAME_LEN);
        if len == 0 {
            empty = empty.or(Some(at));
        } else if &n[..len] == name.as_bytes() {
            return Some((at, false));
        }
    }
    let at = empty?;
    area[at..at + SLOT_NAME_LEN].fill(0);
    area[at..at + name.len()].copy_from_slice(name.as_bytes());
    Some((at, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_skiboot_free_partition() {
        // skiboot formats a free partition exactly so: sig 0x7f, name
        // "wwwwwwwwwwww"; the checksum is the end-around-carry byte sum.
        let h = chrp_header(CHRP_SIG_FREE, "wwwwwwwwwwww", 0x10000);
        assert_eq!(&h[2..4], &[0x10, 0x00]);
        assert_eq!(&h[4..16], b"wwwwwwwwwwww");
        let mut sum: u32 = 0x7f + 0x10 + 12 * 0x77;
        while sum > 0xff {
            sum = (sum & 0xff) + (sum >> 8);
        }
        assert_eq!(h[1] as u32, sum);
        assert_eq!(chrp_checksum(&h), h[1], "the checksum byte is not summed");
    }

    #[test]
    fn fresh_nvram_is_common_then_free() {
        let n = Nvram::new();
        let b = n.bytes();
        assert_eq!(b.len(), NVRAM_SIZE);
        // Walk the CHRP partitions as Linux's nvram_scan_partitions does.
        let mut parts = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let h: [u8; CHRP_HEADER_LEN] = b[at..at + 16].try_into().unwrap();
            assert_eq!(chrp_checksum(&h), h[1], "bad checksum at {at:#x}");
            let len = u16::from_be_bytes([h[2], h[3]]) as usize * 16;
            assert!(len >= 16);
            let name = core::str::from_utf8(&h[4..16])
                .unwrap()
                .trim_end_matches('\0');
            parts.push((h[0], name.to_string(), at, len));
            at += len;
        }
        assert_eq!(at, NVRAM_SIZE, "the partitions cover the NVRAM exactly");
        assert_eq!(
            parts,
            [
                (0x70, "common".to_string(), 0, 4096),
                (0x7f, "wwwwwwwwwwww".to_string(), 4096, NVRAM_SIZE - 4096),
            ]
        );
        // `common` holds no variables: its data starts with the final NUL
        // pair powerpc-utils' nvram looks for.
        assert!(b[16..4096].iter().all(|&x| x == 0));
        assert!(b[4096 + 16..].iter().all(|&x| x == 0));
    }

    #[test]
    fn ranges_are_checked_as_qemu_does() {
        let mut n = Nvram::new();
        assert_eq!(n.range(0, 16), Ok(0..16));
        assert_eq!(n.range(0xfff0, 16), Ok(0xfff0..0x10000));
        assert_eq!(n.range(0xfff0, 17), Err(RTAS_PARAMETER_ERROR));
        assert_eq!(n.range(0x10000, 0), Err(RTAS_PARAMETER_ERROR));
        assert_eq!(n.range(u32::MAX, u32::MAX), Err(RTAS_PARAMETER_ERROR));
        assert_eq!(n.range(1, u32::MAX), Err(RTAS_PARAMETER_ERROR));
        let r = n.range(0xf000, 4).unwrap();
        n.get_mut(r.clone()).copy_from_slice(b"word");
        assert_eq!(n.get(r), b"word");
        assert_eq!(check_arity(3, 2), Ok(()));
        assert_eq!(check_arity(3, 1), Err(RTAS_PARAMETER_ERROR));
        assert_eq!(check_arity(2, 2), Err(RTAS_PARAMETER_ERROR));
        let saved = n.bytes().to_vec();
        let mut m = Nvram::new();
        assert!(m.restore(&saved));
        assert_eq!(m, n);
        assert!(!m.restore(&saved[1..]));
    }

    /// A host NVRAM as skiboot formats one: its own partition, then free space.
    fn skiboot_like(size: usize) -> Vec<u8> {
        let mut nv = vec![0u8; size];
        nv[..16].copy_from_slice(&chrp_header(0x51, "ibm,skiboot", 0x1000));
        nv[0x1000..0x1010].copy_from_slice(&chrp_header(
            CHRP_SIG_FREE,
            "wwwwwwwwwwww",
            size - 0x1000,
        ));
        nv
    }

    #[test]
    fn host_area_is_made_once_then_found() {
        let mut nv = skiboot_like(0x90000);
        let a = host_area(&mut nv, 2).unwrap();
        assert_eq!(a.data.start, 0x1010);
        assert_eq!(a.data.len(), (2 * SLOT_LEN).next_multiple_of(16));
        assert_eq!(a.dirty.start, 0x1000);
        // Our header, then a free header after it, both with good checksums.
        let h: [u8; 16] = nv[0x1000..0x1010].try_into().unwrap();
        assert_eq!((h[0], chrp_checksum(&h)), (HOST_SIG, h[1]));
        assert_eq!(&h[4..11], b"paprika");
        let f: [u8; 16] = nv[a.data.end..a.data.end + 16].try_into().unwrap();
        assert_eq!((f[0], chrp_checksum(&f)), (CHRP_SIG_FREE, f[1]));
        let total: usize = [0usize, 0x1000, a.data.end]
            .iter()
            .map(|&o| usize::from(u16::from_be_bytes([nv[o + 2], nv[o + 3]])) * 16)
            .sum();
        assert_eq!(total, 0x90000, "the partitions still cover the NVRAM");
        // Found again, nothing to write; a slot claimed, then found.
        let b = host_area(&mut nv, 2).unwrap();
        assert_eq!((b.data.clone(), b.dirty.len()), (a.data.clone(), 0));
        let area = &mut nv[b.data.clone()];
        assert_eq!(host_slot(area, "linux"), Some((0, true)));
        assert_eq!(host_slot(area, "other"), Some((SLOT_LEN, true)));
        assert_eq!(host_slot(area, "linux"), Some((0, false)));
        assert_eq!(host_slot(area, "third"), None, "two slots only");
        assert_eq!(host_slot(area, ""), None);
    }

    #[test]
    fn host_area_refuses_bad_layouts() {
        let mut nv = vec![0u8; 0x10000];
        assert_eq!(host_area(&mut nv, 1), None, "zero-length partition");
        let mut nv = skiboot_like(0x10000);
        assert_eq!(host_area(&mut nv, 1), None, "no room for a 64 KiB slot");
        let mut nv = skiboot_like(0x90000);
        nv[1] ^= 1;
        assert_eq!(host_area(&mut nv, 1), None, "bad checksum");
        let mut nv = skiboot_like(0x90000);
        nv[0x1000..0x1010].copy_from_slice(&chrp_header(CHRP_SIG_FREE, "w", 0xa0000));
        assert_eq!(host_area(&mut nv, 1), None, "past the end");
    }
}
