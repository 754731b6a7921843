//! A small hand-rolled command-line parser: `--flag`, `--opt value`, `--opt=value`
//! and everything after a bare `--` kept verbatim.

use crate::error::{usage, Result};

#[derive(Debug)]
pub struct Args {
    command: &'static str,
    items: Vec<String>,
    rest: Vec<String>,
}

impl Args {
    /// `command` names the subcommand in error messages.
    pub fn new(command: &'static str, argv: &[String]) -> Self {
        let (items, rest) = match argv.iter().position(|a| a == "--") {
            Some(i) => (argv[..i].to_vec(), argv[i + 1..].to_vec()),
            None => (argv.to_vec(), Vec::new()),
        };
        Args {
            command,
            items,
            rest,
        }
    }

    /// True when `-h` or `--help` was given (before any `--`).
    pub fn wants_help(&self) -> bool {
        self.items.iter().any(|a| a == "-h" || a == "--help")
    }

    /// Removes and returns the first argument when it is a word, not an option
    /// (`linux fetch`).
    pub fn subcommand(&mut self) -> Option<String> {
        let first = self.items.first()?;
        if first.starts_with('-') {
            return None;
        }
        Some(self.items.remove(0))
    }

    /// Removes every `name` and says whether there was one.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|a| a != name);
        self.items.len() != before
    }

    /// Removes every `name VALUE` / `name=VALUE` and returns all values in order.
    pub fn values(&mut self, name: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < self.items.len() {
            let item = &self.items[i];
            if item == name {
                if i + 1 >= self.items.len() {
                    return Err(usage!("`{} {name}` needs a value", self.command));
                }
                found.push(self.items.remove(i + 1));
                self.items.remove(i);
            } else if let Some(v) = item
                .strip_prefix(name)
                .and_then(|tail| tail.strip_prefix('='))
            {
                found.push(v.to_string());
                self.items.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    /// The last `name VALUE` given, if any.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self.values(name)?.pop())
    }

    /// Like `value`, parsed as a number.
    pub fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| usage!("`{} {name}` wants a number, got `{v}`", self.command)),
        }
    }

    /// Fails on anything not consumed; returns the arguments after `--`.
    pub fn finish(self) -> Result<Vec<String>> {
        if let Some(extra) = self.items.first() {
            return Err(usage!("`{}` does not take `{extra}`", self.command));
        }
        Ok(self.rest)
    }

    /// Fails on anything not consumed, including arguments after `--`.
    pub fn finish_no_rest(self) -> Result<()> {
        let command = self.command;
        let rest = self.finish()?;
        if !rest.is_empty() {
            return Err(usage!("`{command}` takes no arguments after `--`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        Args::new("t", &v)
    }

    #[test]
    fn options_flags_and_rest() {
        let mut a = args(&[
            "--release",
            "--smp",
            "4",
            "--machine=powernv10",
            "--",
            "-d",
            "int",
        ]);
        assert!(a.flag("--release"));
        assert!(!a.flag("--gdb"));
        assert_eq!(a.number::<u32>("--smp").unwrap(), Some(4));
        assert_eq!(a.value("--machine").unwrap().as_deref(), Some("powernv10"));
        assert_eq!(a.finish().unwrap(), vec!["-d", "int"]);
    }

    #[test]
    fn errors() {
        let mut a = args(&["--smp"]);
        assert!(a.value("--smp").is_err());
        let mut a = args(&["--smp", "x"]);
        assert!(a.number::<u32>("--smp").is_err());
        assert!(args(&["--bogus"]).finish().is_err());
        assert!(args(&["--", "x"]).finish_no_rest().is_err());
        assert!(args(&["--help"]).wants_help());
        assert!(!args(&["--", "--help"]).wants_help());
    }

    #[test]
    fn subcommands() {
        let mut a = args(&["fetch", "--refresh"]);
        assert_eq!(a.subcommand().as_deref(), Some("fetch"));
        assert!(a.flag("--refresh"));
        assert_eq!(args(&["--refresh", "fetch"]).subcommand(), None);
        assert_eq!(args(&[]).subcommand(), None);
    }

    #[test]
    fn repeated_values_keep_order() {
        let mut a = args(&["--machine", "powernv9", "--machine=powernv10"]);
        assert_eq!(
            a.values("--machine").unwrap(),
            vec!["powernv9", "powernv10"]
        );
        a.finish_no_rest().unwrap();
    }
}
