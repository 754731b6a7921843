//! External commands: every one is printed (`$ ...`) before it runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::error::{failed, Result};

/// Environment variables that a parent cargo or rustup may have set and that would
/// steer the child cargo away from Debian's toolchain or our flags.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO",
    "CARGO_BUILD_TARGET",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    // `cargo run` points this at rustup's toolchain libraries.
    "LD_LIBRARY_PATH",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTUP_TOOLCHAIN",
    "RUSTDOC",
];

/// A command line plus the environment changes it runs with.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    /// (name, value, how to show it; `None` shows the value).
    envs: Vec<(String, String, Option<String>)>,
    scrub: bool,
    cwd: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_string_lossy().into_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            scrub: false,
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.envs.retain(|(n, _, _)| n != name);
        self.envs.push((name.to_string(), value, None));
        self
    }

    /// Sets `name` but prints it as `shown` (e.g. `PATH=/usr/bin:$PATH`).
    pub fn env_shown_as(mut self, name: &str, value: impl AsRef<OsStr>, shown: &str) -> Self {
        self = self.env(name, value);
        if let Some(last) = self.envs.last_mut() {
            last.2 = Some(shown.to_string());
        }
        self
    }

    /// Removes the variables in `SCRUBBED_ENV` (those not set explicitly).
    pub fn scrub_cargo_env(mut self) -> Self {
        self.scrub = true;
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// The command as a shell line.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dir) = &self.cwd {
            parts.push(format!("(cd {} &&", quote(&dir.to_string_lossy())));
        }
        for (name, value, shown) in &self.envs {
            match shown {
                Some(s) => parts.push(format!("{name}={s}")),
                None => parts.push(format!("{name}={}", quote(value))),
            }
        }
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        let mut line = parts.join(" ");
        if self.cwd.is_some() {
            line.push(')');
        }
        line
    }

    /// The program and its first argument, e.g. `/usr/bin/cargo build`.
    pub fn short_name(&self) -> String {
        match self.args.first() {
            Some(a) => format!("{} {}", self.program, quote(a)),
            None => self.program.clone(),
        }
    }

    /// Prints `$ <command>` on stdout.
    pub fn echo(&self) {
        crate::progress::println_line(format!("$ {}", self.display()));
    }

    /// The std command, without printing anything.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        if self.scrub {
            for name in SCRUBBED_ENV {
                c.env_remove(name);
            }
        }
        for (name, value, _) in &self.envs {
            c.env(name, value);
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        c
    }

    /// Prints and runs with inherited stdio; returns the exit status.
    pub fn status(&self) -> Result<ExitStatus> {
        self.echo();
        // It writes to the terminal: no progress bar meanwhile.
        crate::progress::suspend(|| self.command().status())
            .map_err(|e| failed!("cannot start `{}`: {e}", self.program))
    }

    /// Prints and runs; fails unless it exits with status 0.
    pub fn run(&self) -> Result<()> {
        let status = self.status()?;
        if status.success() {
            Ok(())
        } else {
            Err(failed!(
                "`{}` failed ({})",
                self.short_name(),
                describe_status(status)
            ))
        }
    }

    /// Prints and runs with stdin closed, capturing stdout and stderr (joined).
    /// Returns `None` when the program does not exist.
    pub fn capture(&self) -> Result<Option<(ExitStatus, String)>> {
        self.echo();
        let out = match self.command().stdin(Stdio::null()).output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed!("cannot start `{}`: {e}", self.program)),
        };
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Some((out.status, text)))
    }
}

/// "exit status 3", "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "unknown exit status".to_string(),
    }
}

/// Quotes `s` for a POSIX shell when needed.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("-smp"), "-smp");
        assert_eq!(quote("8,cores=2,threads=4"), "8,cores=2,threads=4");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn display_shows_env_and_args() {
        let c = Cmd::new("/usr/bin/cargo")
            .env("RUSTC", "/usr/bin/rustc")
            .env_shown_as("PATH", "/usr/bin:/bin", "/usr/bin:$PATH")
            .env("RUSTFLAGS", "-C a -C b")
            .args(["build", "--release"]);
        assert_eq!(
            c.display(),
            "RUSTC=/usr/bin/rustc PATH=/usr/bin:$PATH RUSTFLAGS='-C a -C b' /usr/bin/cargo build --release"
        );
    }
}
