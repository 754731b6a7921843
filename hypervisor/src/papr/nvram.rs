//! A partition's NVRAM (sPAPR `/nvram`, QEMU `hw/nvram/spapr_nvram.c`): a byte
//! array the guest reads and writes with the RTAS calls `nvram-fetch` and
//! `nvram-store` (PAPR 7.3.6.2/7.3.6.3; Linux
//! `arch/powerpc/platforms/pseries/nvram.c`), kept across partition reboots.
//!
//! A fresh NVRAM holds one CHRP free partition over the whole space (signature
//! 0x7f, name `wwwwwwwwwwww`, as SLOF and skiboot format an empty one), so
//! Linux's partition scan finds a valid layout and carves its own partitions
//! (`ibm,rtas-log`, the oops log) out of it.

use alloc::vec;
use alloc::vec::Vec;

use super::rtas::{RTAS_HARDWARE_ERROR, RTAS_PARAMETER_ERROR};

/// Bytes of NVRAM every partition gets (QEMU's default, `DEFAULT_NVRAM_SIZE`).
pub const NVRAM_SIZE: usize = 64 * 1024;
/// CHRP partition header length and the free-space signature.
pub const CHRP_HEADER_LEN: usize = 16;
pub const CHRP_SIG_FREE: u8 = 0x7f;

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
    /// [`NVRAM_SIZE`] bytes formatted as one free partition.
    pub fn new() -> Nvram {
        let mut bytes = vec![0u8; NVRAM_SIZE];
        bytes[..CHRP_HEADER_LEN].copy_from_slice(&chrp_header(
            CHRP_SIG_FREE,
            "wwwwwwwwwwww",
            NVRAM_SIZE,
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
    fn fresh_nvram_is_one_free_partition() {
        let n = Nvram::new();
        assert_eq!(n.bytes().len(), NVRAM_SIZE);
        assert_eq!(n.bytes()[0], CHRP_SIG_FREE);
        assert_eq!(
            u16::from_be_bytes([n.bytes()[2], n.bytes()[3]]) as usize * 16,
            NVRAM_SIZE
        );
        assert!(n.bytes()[16..].iter().all(|&b| b == 0));
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
}
