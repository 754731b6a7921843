//! The error type of xtask: a message plus the exit status it maps to.

use std::fmt;

/// What went wrong, in words meant for the person at the terminal.
#[derive(Debug)]
pub enum Error {
    /// The command line was wrong; exit status 2.
    Usage(String),
    /// Something failed while doing the work; exit status 1.
    Failed(String),
    /// An input file (e.g. a partition manifest) is invalid; exit status 2. The
    /// message says where (file, partition, field).
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Invalid(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see `cargo xtask help`)"),
            Error::Failed(msg) | Error::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Failed(e.to_string())
    }
}

/// Builds an `Error::Failed` from a format string.
macro_rules! failed {
    ($($arg:tt)*) => { $crate::error::Error::Failed(format!($($arg)*)) };
}

/// Builds an `Error::Usage` from a format string.
macro_rules! usage {
    ($($arg:tt)*) => { $crate::error::Error::Usage(format!($($arg)*)) };
}

/// Builds an `Error::Invalid` from a format string.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::Invalid(format!($($arg)*)) };
}

pub(crate) use failed;
pub(crate) use invalid;
pub(crate) use usage;

/// Adds context to I/O errors: "reading /x: No such file or directory".
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Failed(format!("{}: {e}", what())))
    }
}
