//! Big-endian storage types for in-memory structures that POWER hardware and
//! firmware read.
//!
//! The hypervisor runs little-endian (`powerpc64le`), but several structures are
//! defined as big-endian regardless of the MSR\[LE\] setting of the code that builds
//! them:
//!
//! * radix page-directory and page-table entries, and partition- and process-table
//!   entries, are always accessed big-endian by the translation hardware (Power ISA
//!   v3.0B Book III 5.7.10, "Radix Tree Translation"; v3.1 keeps the same rule);
//! * OPAL (skiboot) call parameters passed through memory are big-endian;
//! * flattened device tree cells are big-endian (Devicetree Specification 5.2).
//!
//! [`Be64`] and [`Be32`] store the value in that byte order so a `#[repr(C)]` struct
//! made of them has exactly the memory image the hardware expects, and the type
//! system stops a native-endian value from being written by mistake. Conversions
//! use `to_be`/`from_be`, so the types are also correct on a big-endian host
//! (where they are no-ops).

use core::fmt;

/// A 64-bit value stored big-endian in memory.
///
/// `new`/`get` convert from/to the native value; `from_raw`/`raw` move the stored
/// bit pattern unchanged (for copying an entry that was read from memory).
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Be64(u64);

/// A 32-bit value stored big-endian in memory (e.g. a device-tree cell).
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Be32(u32);

static_assertions::assert_eq_size!(Be64, u64);
static_assertions::assert_eq_align!(Be64, u64);
static_assertions::assert_eq_size!(Be32, u32);
static_assertions::assert_eq_align!(Be32, u32);

impl Be64 {
    /// The all-zero value (the same in either byte order).
    pub const ZERO: Self = Self(0);

    /// Stores the native value `v` in big-endian byte order.
    #[inline]
    pub const fn new(v: u64) -> Self {
        Self(v.to_be())
    }

    /// Returns the native value.
    #[inline]
    pub const fn get(self) -> u64 {
        u64::from_be(self.0)
    }

    /// Wraps a bit pattern that is already big-endian (e.g. a raw memory load).
    #[inline]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// Returns the stored (big-endian) bit pattern, as it sits in memory.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Builds the value from its in-memory bytes (most significant byte first).
    #[inline]
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self::new(u64::from_be_bytes(bytes))
    }

    /// Returns the in-memory bytes (most significant byte first).
    #[inline]
    pub const fn to_bytes(self) -> [u8; 8] {
        self.get().to_be_bytes()
    }
}

impl Be32 {
    /// The all-zero value (the same in either byte order).
    pub const ZERO: Self = Self(0);

    /// Stores the native value `v` in big-endian byte order.
    #[inline]
    pub const fn new(v: u32) -> Self {
        Self(v.to_be())
    }

    /// Returns the native value.
    #[inline]
    pub const fn get(self) -> u32 {
        u32::from_be(self.0)
    }

    /// Wraps a bit pattern that is already big-endian (e.g. a raw memory load).
    #[inline]
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// Returns the stored (big-endian) bit pattern, as it sits in memory.
    #[inline]
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Builds the value from its in-memory bytes (most significant byte first).
    #[inline]
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self::new(u32::from_be_bytes(bytes))
    }

    /// Returns the in-memory bytes (most significant byte first).
    #[inline]
    pub const fn to_bytes(self) -> [u8; 4] {
        self.get().to_be_bytes()
    }
}

impl From<u64> for Be64 {
    #[inline]
    fn from(v: u64) -> Self {
        Self::new(v)
    }
}

impl From<Be64> for u64 {
    #[inline]
    fn from(v: Be64) -> Self {
        v.get()
    }
}

impl From<u32> for Be32 {
    #[inline]
    fn from(v: u32) -> Self {
        Self::new(v)
    }
}

impl From<Be32> for u32 {
    #[inline]
    fn from(v: Be32) -> Self {
        v.get()
    }
}

/// Prints the native value, since that is what a reader of a log wants to see.
impl fmt::Debug for Be64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Be64({:#018x})", self.get())
    }
}

/// Prints the native value, since that is what a reader of a log wants to see.
impl fmt::Debug for Be32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Be32({:#010x})", self.get())
    }
}

/// The big-endian `u16` at the start of `b` (wire formats: SRP, SCSI CDBs);
/// the caller checked that `b` is long enough (a shorter slice panics).
pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The big-endian `u32` at the start of `b` (see [`be16`]).
pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The big-endian `u64` at the start of `b` (see [`be16`]).
pub fn be64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_be_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_readers_take_the_leading_bytes() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0xff];
        assert_eq!(be16(&b), 0x1234);
        assert_eq!(be32(&b), 0x1234_5678);
        assert_eq!(be64(&b), 0x1234_5678_9abc_def0);
        assert_eq!(be32(&b[1..]), 0x3456_789a);
    }

    #[test]
    #[should_panic]
    fn slice_readers_need_the_bytes() {
        be32(&[1, 2, 3]);
    }

    #[test]
    fn be64_round_trip() {
        for v in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            assert_eq!(Be64::new(v).get(), v);
            assert_eq!(Be64::from_raw(Be64::new(v).raw()).get(), v);
            assert_eq!(u64::from(Be64::from(v)), v);
        }
    }

    #[test]
    fn be64_memory_image_is_big_endian() {
        let v = Be64::new(0x0102_0304_0506_0708);
        // The in-memory bytes of the stored pattern, independent of host order.
        assert_eq!(v.raw().to_ne_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(v.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Be64::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]), v);
    }

    #[test]
    fn be32_round_trip_and_image() {
        for v in [0, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(Be32::new(v).get(), v);
            assert_eq!(Be32::from_raw(Be32::new(v).raw()).get(), v);
            assert_eq!(u32::from(Be32::from(v)), v);
        }
        let v = Be32::new(0x0a0b_0c0d);
        assert_eq!(v.raw().to_ne_bytes(), [0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(v.to_bytes(), [0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(Be32::from_bytes([0x0a, 0x0b, 0x0c, 0x0d]), v);
    }

    #[test]
    fn defaults_and_equality() {
        assert_eq!(Be64::default().get(), 0);
        assert_eq!(Be64::default(), Be64::ZERO);
        assert_eq!(Be32::default().get(), 0);
        assert_eq!(Be32::default(), Be32::ZERO);
        assert_ne!(Be64::new(1), Be64::new(2));
        assert_eq!(Be32::new(7), Be32::new(7));
    }

    #[test]
    fn debug_prints_native_value() {
        assert_eq!(
            format!("{:?}", Be64::new(0x1234)),
            "Be64(0x0000000000001234)"
        );
        assert_eq!(format!("{:?}", Be32::new(0xabcd)), "Be32(0x0000abcd)");
    }

    #[test]
    fn repr_transparent_layout() {
        assert_eq!(core::mem::size_of::<[Be64; 2]>(), 16);
        assert_eq!(core::mem::align_of::<Be64>(), core::mem::align_of::<u64>());
    }
}
