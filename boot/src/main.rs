//! The Paprika image: the entry stub skiboot jumps to, the interrupt vectors at
//! physical 0, and the secondary-thread entry. Everything else is the `paprika`
//! library.
//!
//! Boot flow (docs/boot.md): skiboot enters `_start` big-endian in real mode wherever
//! it placed the file (0x20000000 under QEMU), r3 = device tree, r8 = OPAL base,
//! r9 = OPAL entry. The stub switches to little-endian, copies the image to physical
//! 0 (where the vectors must be), continues at the linked 0xc000... address (real mode
//! ignores the top address bits), sets TOC and the boot stack, clears BSS and calls
//! `paprika_boot_main`.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod head;

#[cfg(target_arch = "powerpc64")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    paprika::arch::ppc64::fatal::panic(info)
}

/// The image is only meaningful on POWER; on the host this crate builds to nothing so
/// workspace-wide commands work.
#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
