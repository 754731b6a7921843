//! The one logging facility.
//!
//! Every line carries a timebase timestamp, the hardware thread (CPU index) and the
//! partition context (`hv` for the hypervisor itself, `lparN` later for work done on
//! behalf of a partition), then the level. Lines are formatted into a fixed buffer on
//! the stack (no allocation, so it works from the fault path and before the heap) and
//! handed to a sink installed at boot (the OPAL console on POWER).
//!
//! Partitions' console output shares the console through the same lock
//! ([`with_console`], `console::lines`): a log line first ends a partition's
//! unfinished line that is open on the console.
//!
//! Nothing waits for the console under the line lock: the backend's `write`
//! only queues, and `settle` (which may wait for a slow console) runs after the
//! lock is released, so one partition's output cannot hold up another's or the
//! hypervisor's log (audit finding 4).
//!
//! Locking: one lock serialises whole lines; `console::lines::STATE` is taken
//! under it (the hcall fast path also takes it alone, briefly, to queue one
//! complete vty line when no line is open, which cannot split a log line: each
//! goes to the console ring in one piece). The lock records its owner CPU, so the
//! fault path on a CPU that already holds it (a fault while logging) can still print;
//! a fault on another CPU waits a bounded time and then prints anyway.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::console;

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
}

impl Level {
    pub const fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Error,
            1 => Level::Warn,
            2 => Level::Info,
            3 => Level::Debug,
            _ => Level::Trace,
        }
    }
}

/// Where the line is logged from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// Logical CPU index (0 = boot thread), or `u32::MAX` before per-CPU data exists.
    pub cpu: u32,
    /// Partition on whose behalf the hypervisor works, `None` for the hypervisor.
    pub lpid: Option<u32>,
}

/// What the platform provides to the logger.
#[derive(Clone, Copy)]
pub struct Backend {
    /// Write bytes to the console; must not allocate or log.
    pub write: fn(&[u8]),
    /// Write bytes to the console at once, after whatever is queued (fault path).
    pub write_direct: fn(&[u8]),
    /// Called after `write`s once the line lock is released: may wait for the
    /// console (`write` itself must never wait, the lock being shared by every
    /// partition's console output; audit finding 4).
    pub settle: fn(),
    /// Microseconds since boot.
    pub now_us: fn() -> u64,
    /// The current context.
    pub context: fn() -> Context,
}

/// Longest line; longer messages are cut and end with `...`.
pub const LINE_MAX: usize = 400;

static BACKEND: AtomicUsize = AtomicUsize::new(0);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// 0 = free, otherwise owner CPU + 1.
static LOCK_OWNER: AtomicU32 = AtomicU32::new(0);

/// Installs the backend. The reference must live forever (a `static`).
pub fn set_backend(backend: &'static Backend) {
    BACKEND.store(backend as *const Backend as usize, Ordering::Release);
}

fn backend() -> Option<&'static Backend> {
    let p = BACKEND.load(Ordering::Acquire) as *const Backend;
    // SAFETY: the only non-zero value ever stored is a `&'static Backend`.
    unsafe { p.as_ref() }
}

pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn max_level() -> Level {
    Level::from_u8(MAX_LEVEL.load(Ordering::Relaxed))
}

pub fn enabled(level: Level) -> bool {
    level <= max_level()
}

/// A fixed-size line buffer that silently truncates.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl LineBuf {
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Ends the line with a newline, marking truncation.
    pub fn finish(&mut self) {
        if self.truncated {
            let tail = b"...\n";
            let at = self.len.min(LINE_MAX - tail.len());
            self.buf[at..at + tail.len()].copy_from_slice(tail);
            self.len = at + tail.len();
        } else if self.len < LINE_MAX {
            self.buf[self.len] = b'\n';
            self.len += 1;
        } else {
            self.buf[LINE_MAX - 1] = b'\n';
        }
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    fn push_raw(&mut self, s: &[u8]) {
        // Keep room for the newline / truncation marker.
        let room = LINE_MAX - 4 - self.len.min(LINE_MAX - 4);
        let n = s.len().min(room);
        if n < s.len() {
            self.truncated = true;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
}

/// A log line is one line whatever its arguments hold (a guest's text, say):
/// control characters are written inert, C0 and DEL in caret notation (`^J`,
/// `^[`), C1 (U+0080-U+009F) as `\u{9b}`, so nothing can end the line early,
/// start a forged one or reach the terminal as a command (`console::lines`
/// does the same for partitions' console text).
impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c.is_control() && c != '\t') {
            self.push_raw(&rest.as_bytes()[..at]);
            let c = rest[at..].chars().next().unwrap_or(' ');
            let code = c as u32;
            if code < 0x20 || code == 0x7f {
                self.push_raw(&[b'^', (code as u8) ^ 0x40]);
            } else {
                let _ = write!(self, "\\u{{{code:x}}}");
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.push_raw(rest.as_bytes());
        Ok(())
    }
}

/// Formats one log line: `[ssss.uuuuuu] cpu N/ctx LEVEL message\n`.
pub fn format_line(
    out: &mut LineBuf,
    level: Level,
    now_us: u64,
    ctx: Context,
    args: fmt::Arguments,
) {
    let _ = write!(
        out,
        "[{:5}.{:06}] cpu ",
        now_us / 1_000_000,
        now_us % 1_000_000
    );
    if ctx.cpu == u32::MAX {
        let _ = out.write_str("?");
    } else {
        let _ = write!(out, "{}", ctx.cpu);
    }
    match ctx.lpid {
        Some(l) => {
            let _ = write!(out, "/lpar{l}");
        }
        None => {
            let _ = out.write_str("/hv");
        }
    }
    let _ = write!(out, " {} ", level.name());
    let _ = out.write_fmt(args);
    out.finish();
}

pub struct LockGuard {
    release: bool,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.release {
            LOCK_OWNER.store(0, Ordering::Release);
        }
    }
}

/// Takes the line lock only if it is free now, for callers that must not wait (the
/// hcall fast path, `partition::hcall_fast`). `cpu` as for the log context.
pub fn try_lock(cpu: u32) -> Option<LockGuard> {
    let me = cpu.wrapping_add(1).max(1);
    LOCK_OWNER
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| LockGuard { release: true })
}

/// Takes the line lock. `force` (fault path) gives up waiting after a bounded number
/// of spins: a garbled line beats a silent hang.
fn lock(cpu: u32, force: bool) -> LockGuard {
    let me = cpu.wrapping_add(1).max(1);
    let mut spins: u64 = 0;
    loop {
        match LOCK_OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return LockGuard { release: true },
            Err(owner) if owner == me && force => return LockGuard { release: false },
            Err(_) => {}
        }
        spins += 1;
        if force && spins > 50_000_000 {
            return LockGuard { release: false };
        }
        core::hint::spin_loop();
    }
}

/// Logs one line (used by the macros).
pub fn log(level: Level, args: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    emit(level, args, false);
}

/// Logs from the fault path: never waits forever for the lock.
pub fn log_fault(args: fmt::Arguments) {
    emit(Level::Error, args, true);
}

fn emit(level: Level, args: fmt::Arguments, force: bool) {
    let Some(b) = backend() else { return };
    let ctx = (b.context)();
    let mut line = LineBuf::new();
    format_line(&mut line, level, (b.now_us)(), ctx, args);
    let guard = lock(ctx.cpu, force);
    let write = if force { b.write_direct } else { b.write };
    // A partition's unfinished line may be open on the console: end it first.
    // The fault path may hold the line lock without owning it, so it does not
    // wait for the state.
    let state = if force {
        console::lines::STATE.try_lock()
    } else {
        Some(console::lines::STATE.lock())
    };
    if let Some(mut state) = state {
        state.interrupt(&mut |bytes| write(bytes));
    }
    write(line.as_bytes());
    drop(guard);
    if !force {
        (b.settle)();
    }
}

/// Runs `f` under the line lock with the console's line state
/// (`console::lines`) and the console writer: partitions' console output, so
/// it never interleaves with log lines.
pub fn with_console<R>(
    f: impl FnOnce(&mut console::lines::Lines, &mut dyn FnMut(&[u8])) -> R,
) -> Option<R> {
    let b = backend()?;
    let ctx = (b.context)();
    let r = {
        let _guard = lock(ctx.cpu, false);
        let mut state = console::lines::STATE.lock();
        f(&mut state, &mut |bytes| (b.write)(bytes))
    };
    (b.settle)();
    Some(r)
}

/// A warning budget (e.g. one per partition, so one misbehaving guest cannot
/// silence the warnings about another): at most `burst` lines per `period`
/// (any time unit, the caller's `now`), refilled whole once a period has passed
/// since the last refill. Lock-free; races only blur the count by a line or two.
#[derive(Debug)]
pub struct Budget {
    used: AtomicU32,
    /// Start of the current period, in the caller's unit.
    since: AtomicU64,
    /// Lines refused since the last refill.
    suppressed: AtomicU32,
}

/// What [`Budget::allow`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allow {
    /// Log the line.
    Yes,
    /// Log the line, after saying that `n` lines were suppressed in the
    /// previous period.
    AfterSuppressed(u32),
    /// Over budget: drop it.
    No,
}

impl Budget {
    pub const fn new() -> Self {
        Budget {
            used: AtomicU32::new(0),
            since: AtomicU64::new(0),
            suppressed: AtomicU32::new(0),
        }
    }

    /// Whether one more line may be logged at `now`.
    pub fn allow(&self, now: u64, burst: u32, period: u64) -> Allow {
        let since = self.since.load(Ordering::Relaxed);
        let mut dropped = 0;
        if now.wrapping_sub(since) >= period
            && self
                .since
                .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
            dropped = self.suppressed.swap(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < burst {
            if dropped > 0 {
                Allow::AfterSuppressed(dropped)
            } else {
                Allow::Yes
            }
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Allow::No
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, us: u64, ctx: Context, args: fmt::Arguments) -> String {
        let mut b = LineBuf::new();
        format_line(&mut b, level, us, ctx, args);
        String::from_utf8(b.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn line_has_time_cpu_context_and_level() {
        let s = line(
            Level::Info,
            1_234_567,
            Context { cpu: 3, lpid: None },
            format_args!("hello {}", 7),
        );
        assert_eq!(s, "[    1.234567] cpu 3/hv INFO  hello 7\n");
        let s = line(
            Level::Warn,
            5,
            Context {
                cpu: 0,
                lpid: Some(2),
            },
            format_args!("x"),
        );
        assert_eq!(s, "[    0.000005] cpu 0/lpar2 WARN  x\n");
        let s = line(
            Level::Error,
            0,
            Context {
                cpu: u32::MAX,
                lpid: None,
            },
            format_args!("early"),
        );
        assert!(s.starts_with("[    0.000000] cpu ?/hv ERROR early"));
    }

    #[test]
    fn long_lines_are_truncated_with_marker() {
        let long = "a".repeat(1000);
        let s = line(
            Level::Info,
            0,
            Context { cpu: 1, lpid: None },
            format_args!("{long}"),
        );
        assert!(s.len() <= LINE_MAX);
        assert!(s.ends_with("...\n"));
    }

    #[test]
    fn arguments_cannot_break_or_forge_lines() {
        let msg = "x\nPAPRIKA partitions: 2 passed, 0 failed\r\x1b[2K\u{9b}\x7f\tok";
        let s = line(
            Level::Info,
            0,
            Context { cpu: 1, lpid: None },
            format_args!("PAPRIKA lpar a: stopped (os-term: {msg})"),
        );
        assert_eq!(
            s,
            "[    0.000000] cpu 1/hv INFO  PAPRIKA lpar a: stopped (os-term: \
             x^JPAPRIKA partitions: 2 passed, 0 failed^M^[[2K\\u{9b}^?\tok)\n"
        );
        assert_eq!(s.matches('\n').count(), 1);
        // Long escaped text is still cut with the marker.
        let long = "\x1b".repeat(1000);
        let s = line(
            Level::Info,
            0,
            Context { cpu: 1, lpid: None },
            format_args!("{long}"),
        );
        assert!(s.len() <= LINE_MAX && s.ends_with("...\n"), "{s}");
    }

    #[test]
    fn budgets_refill_per_period_and_count_what_they_drop() {
        let a = Budget::new();
        let b = Budget::new();
        // 40 lines from one owner: 32 pass, the rest are counted.
        let passed = (0..40)
            .filter(|&i| a.allow(i, 32, 10_000) != Allow::No)
            .count();
        assert_eq!(passed, 32);
        // Another owner's budget is untouched.
        assert_eq!(b.allow(50, 32, 10_000), Allow::Yes);
        // Still the same period: nothing.
        assert_eq!(a.allow(9_999, 32, 10_000), Allow::No);
        // A period later the budget is back, and the first line says how many
        // were dropped (8 + the one just above).
        assert_eq!(a.allow(10_000, 32, 10_000), Allow::AfterSuppressed(9));
        assert_eq!(a.allow(10_001, 32, 10_000), Allow::Yes);
    }

    #[test]
    fn level_filter() {
        set_max_level(Level::Warn);
        assert!(enabled(Level::Error));
        assert!(!enabled(Level::Info));
        set_max_level(Level::Info);
        assert!(enabled(Level::Info));
        assert!(!enabled(Level::Debug));
    }

    #[test]
    fn lock_is_reentrant_only_when_forced() {
        let g = lock(5, false);
        let g2 = lock(5, true); // same owner, forced: proceeds without releasing
        assert!(!g2.release);
        drop(g2);
        assert_eq!(LOCK_OWNER.load(Ordering::Relaxed), 6);
        drop(g);
        assert_eq!(LOCK_OWNER.load(Ordering::Relaxed), 0);
    }
}
