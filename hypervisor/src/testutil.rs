//! Helpers shared by the host unit tests (compiled only under `cfg(test)`).

/// xorshift64 (Marsaglia's 13/7/17 triple): a tiny deterministic PRNG for the
/// randomised and fuzz tests, so a failing run repeats exactly. Its state runs
/// through every non-zero 64-bit value, so a loop never repeats a number.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// `seed` must not be 0: zero is xorshift's one fixed point.
    pub const fn new(seed: u64) -> Self {
        assert!(seed != 0, "xorshift seed 0 only ever yields 0");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The high half of [`Self::next_u64`] (the better mixed one).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index into something of `len` elements; `len` must not be 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    /// The first outputs from seed 1 (the first worked by hand: 1 ^ 1 << 13 =
    /// 0x2001; ^ >> 7 = 0x2041; ^ << 17 = 0x4082_2041).
    #[test]
    fn known_sequence() {
        let mut r = XorShift::new(1);
        assert_eq!(r.next_u64(), 0x4082_2041);
        assert_eq!(r.next_u64(), 0x1000_4106_0c01_1441);
        let mut r = XorShift::new(1);
        r.next_u64();
        assert_eq!(r.next_u32(), 0x1000_4106);
    }

    #[test]
    fn below_and_index_stay_in_range() {
        let mut r = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[r.index(7)] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    #[should_panic(expected = "seed 0")]
    fn zero_seed_is_refused() {
        let _ = XorShift::new(0);
    }
}
