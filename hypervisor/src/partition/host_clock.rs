//! The host's wall clock as partitions see it (RTAS get/set-time-of-day): one
//! RTC reading (Unix seconds) and the timebase when it was taken; afterwards the
//! time is that reading plus the timebase ticks since. Under QEMU the RTC sits
//! behind the emulated BMC, and each OPAL_RTC_READ is an IPMI round trip of a
//! few hundred milliseconds (and up to two seconds of retries when OPAL stays
//! busy).
//!
//! The read happens outside any lock: one caller at a time is told to read
//! ([`Query::Read`]), everyone else meanwhile gets [`Query::Unavailable`] at
//! once (RTAS hardware error) instead of waiting. A failed read is remembered
//! with a back-off (1 s, doubling to 64 s), so a guest looping
//! get-time-of-day cannot keep a thread in OPAL retries, let alone hold up
//! other partitions' calls (audit finding 7). Portable: time is the caller's
//! timebase.

/// What a caller of [`HostClock::query`] does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// The time now, Unix seconds.
    Known(i64),
    /// Read the RTC (outside the lock), then [`HostClock::record`].
    Read,
    /// No time now: another caller is reading, or the last read failed
    /// recently.
    Unavailable,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostClock {
    /// Unix seconds at timebase `.1`.
    known: Option<(i64, u64)>,
    reading: bool,
    /// After a failure: no new read before this timebase.
    retry_at: u64,
    /// Failures in a row.
    failures: u32,
}

/// First back-off after a failed read, and the longest.
pub const BACKOFF_FIRST_S: u64 = 1;
pub const BACKOFF_MAX_S: u64 = 64;

impl HostClock {
    pub const fn new() -> Self {
        HostClock {
            known: None,
            reading: false,
            retry_at: 0,
            failures: 0,
        }
    }

    /// What to do at timebase `now` (`hz` ticks a second).
    pub fn query(&mut self, now: u64, hz: u64) -> Query {
        if let Some((unix, tb)) = self.known {
            return Query::Known(unix + (now.wrapping_sub(tb) / hz.max(1)) as i64);
        }
        if self.reading || now < self.retry_at {
            return Query::Unavailable;
        }
        self.reading = true;
        Query::Read
    }

    /// The outcome of the read [`Query::Read`] asked for: Unix seconds at
    /// timebase `tb`, or `None` (then no read for the back-off).
    pub fn record(&mut self, reading: Option<(i64, u64)>, now: u64, hz: u64) {
        self.reading = false;
        match reading {
            Some(r) => {
                self.known = Some(r);
                self.failures = 0;
            }
            None => {
                let secs = (BACKOFF_FIRST_S << self.failures.min(16)).min(BACKOFF_MAX_S);
                self.failures = self.failures.saturating_add(1);
                self.retry_at = now.saturating_add(secs.saturating_mul(hz));
            }
        }
    }

    /// Whether a reading is known (no read will be asked for).
    pub fn is_known(&self) -> bool {
        self.known.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1000;

    #[test]
    fn one_reader_at_a_time_then_the_time_is_known() {
        let mut c = HostClock::new();
        assert_eq!(c.query(10, HZ), Query::Read);
        // Others do not wait for the reader.
        assert_eq!(c.query(11, HZ), Query::Unavailable);
        c.record(Some((1_000_000, 10)), 500, HZ);
        assert_eq!(c.query(10, HZ), Query::Known(1_000_000));
        assert_eq!(c.query(3_010, HZ), Query::Known(1_000_003));
        assert!(c.is_known());
    }

    #[test]
    fn failures_back_off_and_double() {
        let mut c = HostClock::new();
        assert_eq!(c.query(0, HZ), Query::Read);
        c.record(None, 2_000, HZ);
        // A guest looping get-time-of-day: answered at once, no read for 1 s.
        for t in 2_000..3_000 {
            assert_eq!(c.query(t, HZ), Query::Unavailable);
        }
        assert_eq!(c.query(3_000, HZ), Query::Read);
        c.record(None, 3_000, HZ);
        assert_eq!(c.query(4_999, HZ), Query::Unavailable);
        assert_eq!(c.query(5_000, HZ), Query::Read);
        for k in 0..20 {
            c.record(None, 5_000, HZ);
            let secs = (4u64 << k).min(BACKOFF_MAX_S);
            assert_eq!(c.query(5_000 + secs * HZ - 1, HZ), Query::Unavailable);
            assert_eq!(c.query(5_000 + secs * HZ, HZ), Query::Read);
        }
        // A success ends it.
        c.record(Some((7, 6_000)), 70_000, HZ);
        assert_eq!(c.query(8_000, HZ), Query::Known(9));
    }
}
