//! A progress display for the long steps (Linux fetch, building the guests, the
//! scenario run), drawn with `indicatif` when stdout and stderr are both
//! terminals and nothing at all otherwise: CI logs (`.ci/run`) keep exactly the
//! plain lines xtask prints anyway.
//!
//! While a bar is shown, xtask's own lines go through [`println_line`] (above the
//! bar) and commands that write to the terminal run inside [`suspend`] (the bar
//! is hidden meanwhile); `Cmd` does both.

use std::cell::Cell;
use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar being shown, if any (one at a time).
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

thread_local! {
    /// This thread runs inside `suspend`: print plainly (the bar is locked).
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
}

/// True when a bar may be drawn: stdout and stderr are terminals and TERM is
/// not `dumb`.
pub fn interactive() -> bool {
    std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

fn active() -> Option<ProgressBar> {
    if SUSPENDED.with(Cell::get) {
        return None;
    }
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Prints a line on stdout, above the bar when one is shown.
pub fn println_line(line: impl Display) {
    match active() {
        Some(bar) => bar.println(line.to_string()),
        None => std::println!("{line}"),
    }
}

/// Runs `f` with the bar hidden (for commands that write to the terminal).
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match active() {
        Some(bar) => bar.suspend(|| {
            SUSPENDED.with(|s| s.set(true));
            let r = f();
            SUSPENDED.with(|s| s.set(false));
            r
        }),
        None => f(),
    }
}

/// `println!` through [`println_line`]: a module that prints while a bar may be
/// shown imports this one (`use crate::progress::println;`), which shadows
/// std's.
macro_rules! progress_println {
    ($($arg:tt)*) => { $crate::progress::println_line(format!($($arg)*)) };
}
pub(crate) use progress_println as println;

/// One long step counted in items (guests, scenarios, fetch stages). Inert when
/// output is not interactive; cleared when dropped.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(what: &str, total: usize) -> Self {
        if !interactive() || total == 0 {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total as u64),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// What is being done now (e.g. the scenarios running).
    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.into());
        }
    }

    /// One more item done.
    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under `cargo test` output is captured: no bar, and the helpers just run.
    #[test]
    fn inert_without_a_terminal() {
        let p = Progress::new("t", 3);
        assert!(p.bar.is_none() || interactive());
        p.set_message("x");
        p.inc();
        assert_eq!(suspend(|| 7), 7);
        println_line("a line");
    }
}
