//! Where a partition's boot images go in its memory, as QEMU's pseries places
//! them (hw/ppc/spapr.c): the kernel at `kernel-addr` ([`KERNEL_ADDR`]) plus its
//! physical addresses (`elf::ElfImage::placed_at`), the initrd after it, and the
//! firmware's pieces - here the RTAS blob and below it the device tree - at the
//! top of memory but below 2 GiB (QEMU's `RTAS_MAX_ADDR` and `FDT_MAX_ADDR`), so
//! that 32-bit real-mode code reaches them and `linux,rtas-base` (one cell)
//! holds the RTAS address whatever the partition's size. Portable; tested on
//! the host.

/// QEMU pseries' default `kernel-addr` (`KERNEL_LOAD_ADDR`, the 4 MiB its
/// firmware may use).
pub const KERNEL_ADDR: u64 = 0x40_0000;
/// Bytes reserved for the RTAS blob.
pub const RTAS_SIZE: u64 = 0x1_0000;
/// The RTAS blob and the device tree end below this.
pub const FIRMWARE_TOP: u64 = 0x8000_0000;
/// Free space kept between the initrd and the RTAS area (room for the tree).
const INITRD_GAP: u64 = 0x10_0000;

/// Why the images do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The named piece does not fit in partition memory.
    TooBig(&'static str),
}

/// Guest real addresses of the RTAS blob and the initrd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub rtas_base: u64,
    /// `[start, end)` of the initrd.
    pub initrd: Option<(u64, u64)>,
}

/// Places the RTAS area and an initrd of `initrd_len` bytes in `size` bytes of
/// memory holding a kernel that ends at `kernel_high`: the initrd 64 KiB aligned
/// at least 64 KiB after the kernel (QEMU: `(kernel_addr + kernel_size +
/// 0x1ffff) & ~0xffff`), RTAS in the top [`RTAS_SIZE`] below `min(size,
/// FIRMWARE_TOP)`.
pub fn place(size: u64, kernel_high: u64, initrd_len: Option<u64>) -> Result<Layout, LayoutError> {
    let top = size.min(FIRMWARE_TOP);
    if top < 4 * RTAS_SIZE || kernel_high > top - RTAS_SIZE {
        return Err(LayoutError::TooBig("RTAS area"));
    }
    let rtas_base = top - RTAS_SIZE;
    let initrd = match initrd_len {
        Some(len) => {
            let start = kernel_high
                .checked_add(0x1_ffff)
                .ok_or(LayoutError::TooBig("initrd"))?
                & !0xffff;
            let end = start
                .checked_add(len)
                .ok_or(LayoutError::TooBig("initrd"))?;
            if end.saturating_add(INITRD_GAP) > rtas_base {
                return Err(LayoutError::TooBig("initrd"));
            }
            Some((start, end))
        }
        None => None,
    };
    Ok(Layout { rtas_base, initrd })
}

/// Where a device tree of `len` bytes goes: page aligned, 8 KiB or more below
/// the RTAS area and above `above` (the kernel's or the initrd's end).
pub fn place_fdt(l: &Layout, len: u64, above: u64) -> Result<u64, LayoutError> {
    let at = l
        .rtas_base
        .checked_sub(len)
        .and_then(|a| a.checked_sub(0x2000))
        .map(|a| a & !0xfff)
        .ok_or(LayoutError::TooBig("device tree"))?;
    if at <= above {
        return Err(LayoutError::TooBig("device tree"));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn small_partition_as_qemu() {
        // A vmlinux of 0x287ca18 bytes at 0x400000 and a 2.4 MiB initramfs.
        let high = KERNEL_ADDR + 0x287_ca18;
        let l = place(512 * M, high, Some(0x26_5194)).unwrap();
        assert_eq!(l.rtas_base, 512 * M - RTAS_SIZE);
        assert_eq!(l.initrd, Some((0x2c9_0000, 0x2c9_0000 + 0x26_5194)));
        let fdt = place_fdt(&l, 0x3000, l.initrd.unwrap().1).unwrap();
        assert_eq!(fdt, 512 * M - RTAS_SIZE - 0x5000);
        // Without an initrd; kernel end already 64 KiB aligned: one 64 KiB gap.
        let l = place(64 * M, 0x50_0000, Some(16)).unwrap();
        assert_eq!(l.initrd, Some((0x51_0000, 0x51_0010)));
        assert_eq!(place(64 * M, 0x50_0000, None).unwrap().initrd, None);
    }

    #[test]
    fn firmware_pieces_stay_below_2g() {
        for size in [2 * G, 3 * G, 8 * G, 64 * G] {
            let l = place(size, KERNEL_ADDR + 40 * M, Some(50 * M)).unwrap();
            assert_eq!(l.rtas_base, FIRMWARE_TOP - RTAS_SIZE, "{size:#x}");
            assert!(u32::try_from(l.rtas_base + RTAS_SIZE - 1).is_ok());
        }
        assert_eq!(place(G, 0, None).unwrap().rtas_base, G - RTAS_SIZE);
    }

    #[test]
    fn too_small() {
        assert_eq!(
            place(128 * 1024, 0, None),
            Err(LayoutError::TooBig("RTAS area"))
        );
        assert_eq!(
            place(8 * M, 8 * M, None),
            Err(LayoutError::TooBig("RTAS area"))
        );
        assert_eq!(
            place(8 * M, KERNEL_ADDR + M, Some(3 * M)),
            Err(LayoutError::TooBig("initrd"))
        );
        assert_eq!(
            place(8 * M, u64::MAX - 5, Some(1)),
            Err(LayoutError::TooBig("RTAS area"))
        );
        let l = place(8 * M, KERNEL_ADDR + M, None).unwrap();
        assert_eq!(
            place_fdt(&l, 8 * M, 0),
            Err(LayoutError::TooBig("device tree"))
        );
        assert_eq!(
            place_fdt(&l, 0x1000, 8 * M - RTAS_SIZE - 0x3000),
            Err(LayoutError::TooBig("device tree"))
        );
    }
}
