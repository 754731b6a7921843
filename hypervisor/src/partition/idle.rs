//! The H_CEDE nap's timer arithmetic (`vcpu::cede`), portable so the host
//! tests it: how long a nap lasts, and whether the guest's time slice (HDEC)
//! must be moved out of its way first.
//!
//! An expired HDEC is a wake-up event for `stop`. The slice `vcpu::switch_in`
//! arms (10 ms) runs out while a vCPU is ceded; left as it is, every later
//! `stop` of the nap returns at once and the idle thread spins (measured under
//! QEMU: 19 million such returns in one veth benchmark run, docs/benchmarks.md).

/// The largest positive 32-bit decrementer value: "no interrupt soon".
pub const TIMER_QUIET: u64 = 0x7fff_ffff;

/// Ticks to nap for: until the guest's decrementer fires (`dec_left` ticks
/// from now), at most `cap` (so the hypervisor's own polling keeps running),
/// and never more than a 32-bit decrementer holds. `None`: no nap, the
/// decrementer is due.
pub fn nap_ticks(dec_left: i64, cap: u64) -> Option<u64> {
    (dec_left > 0).then(|| (dec_left as u64).min(cap).min(TIMER_QUIET))
}

/// Whether HDEC, whose register reads `hdec`, would end a nap of `nap` ticks
/// early (expired, or due first): then it is set to [`TIMER_QUIET`] for the
/// nap (and re-armed on the next guest entry). The value is read both as the
/// 64-bit register (sign-extended) and as a 32-bit decrementer, so an expired
/// HDEC counts as expired whichever width the processor gives it.
pub fn hdec_in_the_way(hdec: u64, nap: u64) -> bool {
    let nap = nap.min(TIMER_QUIET) as i64;
    hdec as i64 <= nap || i64::from(hdec as u32 as i32) <= nap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nap_length() {
        assert_eq!(nap_ticks(0, 100), None);
        assert_eq!(nap_ticks(-5, 100), None);
        assert_eq!(nap_ticks(50, 100), Some(50));
        assert_eq!(nap_ticks(500, 100), Some(100));
        assert_eq!(nap_ticks(i64::MAX, u64::MAX), Some(TIMER_QUIET));
    }

    #[test]
    fn expired_slice_is_in_the_way() {
        let neg = |v: i64| v as u64;
        // The slice ran out while the vCPU was ceded: it would wake `stop` at once.
        assert!(hdec_in_the_way(0, 1000));
        assert!(hdec_in_the_way(neg(-1), 1000));
        // ... read as a zero-extended 32-bit value.
        assert!(hdec_in_the_way(0xffff_fff0, 1000));
        assert!(hdec_in_the_way(0x8000_0000, 1000));
        // Due before the nap's end: also in the way.
        assert!(hdec_in_the_way(999, 1000));
        assert!(hdec_in_the_way(1000, 1000));
        // Further out than the nap (a quieted HDEC included): left alone, no
        // timer update per nap.
        assert!(!hdec_in_the_way(1001, 1000));
        assert!(!hdec_in_the_way(TIMER_QUIET, 51_200_000));
    }
}
