//! `cargo xtask setup`: find (and on Debian 12, as root, install) the tools Paprika needs.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::SetupArgs;
use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};

/// The long description of `cargo xtask setup --help` (the options are listed by
/// clap from `cli::SetupArgs`).
pub const ABOUT: &str = "\
Checks that the tools Paprika needs are installed and, when some are missing,
installs them with apt-get (Debian 12 'bookworm', as root):

  /usr/bin/rustc, /usr/bin/cargo (Rust >= 1.96)     rustc-web, cargo-web
  /usr/lib/rustlib/src/rust/library                  rust-web-src
  /usr/bin/cargo-clippy, /usr/bin/clippy-driver      rust-web-clippy
  /usr/bin/rustfmt, /usr/bin/cargo-fmt               rustfmt-web
  /usr/bin/powerpc64le-linux-gnu-ld                  binutils-powerpc64le-linux-gnu
  /usr/sbin/mke2fs (ext4 test disk images)           e2fsprogs
  qemu-system-ppc64 >= 10.0                          qemu-system-ppc (bookworm-backports)

To get QEMU from bookworm-backports it writes
/etc/apt/sources.list.d/paprika-backports.sources, using the mirror that the
machine's apt sources already use for 'bookworm', unless backports is already
enabled. Does nothing (and says \"all tools present\") when everything is there.
`build`, `run`, `test` and `bench` run this check first.";

/// Where the backports source is written.
const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/paprika-backports.sources";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const SUITE: &str = "bookworm";
const BACKPORTS_SUITE: &str = "bookworm-backports";
const MIN_RUST: (u32, u32) = (1, 96);
const MIN_QEMU: (u32, u32) = (10, 0);
pub const QEMU: &str = "qemu-system-ppc64";

/// One missing tool: the Debian package that brings it and why we think it's missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub package: &'static str,
    pub from_backports: bool,
    pub reason: String,
}

pub fn main(args: SetupArgs) -> Result<i32> {
    let check_only = args.check;
    let missing = find_missing()?;
    if missing.is_empty() {
        println!("all tools present");
        return Ok(0);
    }
    if check_only {
        print!("{}", describe_missing(&missing));
        return Ok(1);
    }
    install(&missing)?;
    Ok(0)
}

/// Checks the tools and installs whatever is missing (or fails saying how to).
pub fn ensure_tools() -> Result<()> {
    let missing = find_missing()?;
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)
}

fn find_missing() -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    let mut need = |package: &'static str, from_backports: bool, reason: String| {
        if !missing.iter().any(|m: &Missing| m.package == package) {
            missing.push(Missing {
                package,
                from_backports,
                reason,
            });
        }
    };

    for (path, package) in [
        ("/usr/bin/rustc", "rustc-web"),
        ("/usr/bin/cargo", "cargo-web"),
    ] {
        if let Some(reason) = check_version(path, MIN_RUST)? {
            need(package, false, reason);
        }
    }
    let files: [(&str, &'static str); 7] = [
        (
            "/usr/lib/rustlib/src/rust/library/core/src/lib.rs",
            "rust-web-src",
        ),
        ("/usr/bin/cargo-clippy", "rust-web-clippy"),
        ("/usr/bin/clippy-driver", "rust-web-clippy"),
        ("/usr/bin/rustfmt", "rustfmt-web"),
        ("/usr/bin/cargo-fmt", "rustfmt-web"),
        (
            "/usr/bin/powerpc64le-linux-gnu-ld",
            "binutils-powerpc64le-linux-gnu",
        ),
        // The vscsi scenarios' ext4 images (`mke2fs -d`).
        ("/usr/sbin/mke2fs", "e2fsprogs"),
    ];
    for (path, package) in files {
        if !Path::new(path).exists() {
            need(package, false, format!("{path} is missing"));
        }
    }
    if let Some(reason) = check_version(QEMU, MIN_QEMU)? {
        need("qemu-system-ppc", true, reason);
    }
    Ok(missing)
}

/// Runs `<program> --version`; `Some(reason)` when it is absent or too old.
fn check_version(program: &str, min: (u32, u32)) -> Result<Option<String>> {
    let Some((status, out)) = Cmd::new(program).arg("--version").capture()? else {
        return Ok(Some(format!("{program} is not installed")));
    };
    if !status.success() {
        return Ok(Some(format!("`{program} --version` failed")));
    }
    match parse_version(&out) {
        Some(v) if v >= min => Ok(None),
        Some(v) => Ok(Some(format!(
            "{program} is version {}.{}, need >= {}.{}",
            v.0, v.1, min.0, min.1
        ))),
        None => Ok(Some(format!(
            "cannot read a version from `{program} --version`: {}",
            out.lines().next().unwrap_or("")
        ))),
    }
}

/// The first `X.Y[.Z]` word of a `--version` output, as (X, Y).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    text.split_whitespace().find_map(|word| {
        let mut parts = word.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((major, minor.parse().ok()?))
    })
}

fn apt_install_lines(missing: &[Missing]) -> Vec<String> {
    let plain: Vec<&str> = missing
        .iter()
        .filter(|m| !m.from_backports)
        .map(|m| m.package)
        .collect();
    let backports: Vec<&str> = missing
        .iter()
        .filter(|m| m.from_backports)
        .map(|m| m.package)
        .collect();
    let mut lines = vec!["apt-get update".to_string()];
    if !plain.is_empty() {
        lines.push(format!("apt-get install -y {}", plain.join(" ")));
    }
    if !backports.is_empty() {
        lines.push(format!(
            "apt-get install -y -t {BACKPORTS_SUITE} {}",
            backports.join(" ")
        ));
    }
    lines
}

fn describe_missing(missing: &[Missing]) -> String {
    let mut s = String::from("missing tools:\n");
    for m in missing {
        let from = if m.from_backports {
            format!(" from {BACKPORTS_SUITE}")
        } else {
            String::new()
        };
        let _ = writeln!(s, "  - {} (package {}{from})", m.reason, m.package);
    }
    s
}

/// Why this machine can't install by itself, if it can't.
fn cannot_install_reason() -> Option<String> {
    let debian = std::fs::read_to_string("/etc/debian_version").ok();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    match debian {
        None => return Some("this is not a Debian machine (no /etc/debian_version)".into()),
        Some(v) => {
            let bookworm = v.trim().starts_with("12")
                || os_release
                    .lines()
                    .any(|l| l.trim() == "VERSION_CODENAME=bookworm");
            if !bookworm {
                return Some(format!(
                    "this is Debian {}, not Debian 12 (bookworm)",
                    v.trim()
                ));
            }
        }
    }
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => None,
        Ok(_) => Some("installing needs root".into()),
        Err(_) => Some("cannot tell whether we are root (no /proc/self)".into()),
    }
}

fn install(missing: &[Missing]) -> Result<()> {
    print!("{}", describe_missing(missing));
    if let Some(reason) = cannot_install_reason() {
        let mut msg = format!("cannot install them: {reason}.\n");
        msg.push_str("Install them as root on Debian 12 with `cargo xtask setup`, or by hand:\n");
        let sources = read_apt_sources().unwrap_or_default();
        if missing.iter().any(|m| m.from_backports) && !backports_enabled(&sources) {
            let uri = find_suite_uri(&sources, SUITE)
                .unwrap_or_else(|| "<the Debian mirror you use for bookworm>".into());
            let _ = writeln!(msg, "  # enable {BACKPORTS_SUITE}: write {BACKPORTS_FILE}:");
            for line in backports_stanza(&uri)
                .lines()
                .filter(|l| !l.starts_with('#'))
            {
                let _ = writeln!(msg, "  #   {line}");
            }
        }
        for line in apt_install_lines(missing) {
            let _ = writeln!(msg, "  {line}");
        }
        return Err(failed!("{}", msg.trim_end()));
    }

    if missing.iter().any(|m| m.from_backports) {
        enable_backports()?;
    }
    let apt = |args: &[&str]| {
        Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args)
            .run()
    };
    apt(&["update"])?;
    let plain: Vec<&str> = missing
        .iter()
        .filter(|m| !m.from_backports)
        .map(|m| m.package)
        .collect();
    if !plain.is_empty() {
        let mut a = vec!["install", "-y"];
        a.extend(&plain);
        apt(&a)?;
    }
    let backports: Vec<&str> = missing
        .iter()
        .filter(|m| m.from_backports)
        .map(|m| m.package)
        .collect();
    if !backports.is_empty() {
        let mut a = vec!["install", "-y", "-t", BACKPORTS_SUITE];
        a.extend(&backports);
        apt(&a)?;
    }

    let still = find_missing()?;
    if !still.is_empty() {
        return Err(failed!(
            "still missing after apt-get install:\n{}",
            describe_missing(&still).trim_end()
        ));
    }
    println!("all tools present");
    Ok(())
}

/// Writes the backports source unless some enabled source already has the suite.
fn enable_backports() -> Result<()> {
    let sources = read_apt_sources()?;
    if backports_enabled(&sources) {
        println!("{BACKPORTS_SUITE} is already enabled in the apt sources");
        return Ok(());
    }
    let uri = find_suite_uri(&sources, SUITE).ok_or_else(|| {
        failed!(
            "no enabled apt source for suite `{SUITE}` in /etc/apt/sources.list or \
             /etc/apt/sources.list.d/; cannot tell which mirror to use for {BACKPORTS_SUITE}"
        )
    })?;
    let text = backports_stanza(&uri);
    println!("writing {BACKPORTS_FILE}:\n{text}");
    std::fs::write(BACKPORTS_FILE, text).context(|| format!("writing {BACKPORTS_FILE}"))
}

fn backports_enabled(sources: &[AptSource]) -> bool {
    sources
        .iter()
        .any(|s| s.enabled && s.is_deb() && s.suites.iter().any(|x| x == BACKPORTS_SUITE))
}

pub fn backports_stanza(uri: &str) -> String {
    format!(
        "# Written by `cargo xtask setup` (Paprika) for qemu-system-ppc >= 10.0.\n\
         Types: deb\nURIs: {uri}\nSuites: {BACKPORTS_SUITE}\nComponents: main\nSigned-By: {KEYRING}\n"
    )
}

/// One apt source entry (a one-line `deb ...` line or a deb822 stanza).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AptSource {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub enabled: bool,
}

impl AptSource {
    fn is_deb(&self) -> bool {
        self.types.iter().any(|t| t == "deb")
    }
}

/// Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}.
fn read_apt_sources() -> Result<Vec<AptSource>> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut names: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        files.extend(names);
    }
    let mut sources = Vec::new();
    for path in files {
        let name = path.to_string_lossy().into_owned();
        if !(name.ends_with(".list") || name.ends_with(".sources")) || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).context(|| format!("reading {name}"))?;
        sources.extend(parse_sources_file(&name, &text));
    }
    Ok(sources)
}

/// Parses one apt sources file by its name: `*.sources` is deb822, `*.list` one-line,
/// anything else (e.g. `*.list.disabled`) is ignored as apt ignores it.
pub fn parse_sources_file(name: &str, text: &str) -> Vec<AptSource> {
    if name.ends_with(".sources") {
        parse_deb822(text)
    } else if name.ends_with(".list") {
        parse_one_line(text)
    } else {
        Vec::new()
    }
}

/// `deb [opts] uri suite component...` lines.
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = match line.find('#') {
            Some(i) => &line[..i],
            None => line,
        };
        let mut words = line.split_whitespace();
        let Some(kind) = words.next() else { continue };
        let mut rest: Vec<&str> = words.collect();
        // Options: `[arch=amd64 signed-by=/x]`, possibly spread over several words.
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            match rest.iter().position(|w| w.ends_with(']')) {
                Some(end) => {
                    rest.drain(..=end);
                }
                None => continue,
            }
        }
        if rest.len() < 2 {
            continue;
        }
        out.push(AptSource {
            types: vec![kind.to_string()],
            uris: vec![rest[0].to_string()],
            suites: vec![rest[1].to_string()],
            components: rest[2..].iter().map(|s| s.to_string()).collect(),
            enabled: true,
        });
    }
    out
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Enabled:`).
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(String, String)>| {
        if fields.is_empty() {
            return;
        }
        let get = |key: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
                .collect()
        };
        let enabled = get("Enabled")
            .first()
            .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "no" | "false" | "0"));
        out.push(AptSource {
            types: get("Types"),
            uris: get("URIs"),
            suites: get("Suites"),
            components: get("Components"),
            enabled,
        });
        fields.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields);
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            // Continuation of the previous field (e.g. a multi-line Signed-By key).
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    flush(&mut fields);
    out
}

/// The first URI of an enabled `deb` source that carries `suite`.
pub fn find_suite_uri(sources: &[AptSource], suite: &str) -> Option<String> {
    sources
        .iter()
        .filter(|s| s.enabled && s.is_deb() && s.suites.iter().any(|x| x == suite))
        .flat_map(|s| s.uris.iter())
        .find(|u| !u.starts_with("cdrom:"))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
";

    #[test]
    fn deb822_with_comments_inside_a_stanza() {
        let s = parse_sources_file("/etc/apt/sources.list.d/debian.sources", DEB822);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert!(s[0].enabled);
        assert_eq!(
            find_suite_uri(&s, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(find_suite_uri(&s, "bookworm-backports"), None);
    }

    #[test]
    fn deb822_disabled_and_deb_src_and_continuations() {
        let text = "\
Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main

types: deb deb-src
uris: http://on.example/debian
  http://second.example/debian
suites: bookworm
components: main contrib
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 3);
        assert!(!s[1].enabled);
        assert_eq!(s[2].uris.len(), 2);
        assert_eq!(
            find_suite_uri(&s, "bookworm").as_deref(),
            Some("http://on.example/debian")
        );
    }

    #[test]
    fn one_line_format() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main contrib # trailing
deb [ trusted=yes ] http://two.example/debian bookworm main
deb http://sec.example/debian-security bookworm-security main
";
        let s = parse_sources_file("/etc/apt/sources.list", text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].components, vec!["main", "contrib"]);
        assert_eq!(s[2].uris, vec!["http://two.example/debian"]);
        assert_eq!(
            find_suite_uri(&s, "bookworm").as_deref(),
            Some("http://one.example/debian")
        );
    }

    #[test]
    fn disabled_files_are_ignored() {
        let line = "deb https://cloud.example/apt cloud-sdk-bookworm main\n";
        assert!(parse_sources_file("google.list.disabled-by-farm", line).is_empty());
        assert!(parse_sources_file("x.sources.save", DEB822).is_empty());
        assert_eq!(parse_sources_file("google.list", line).len(), 1);
    }

    #[test]
    fn stanza_names_the_found_mirror() {
        let s = backports_stanza("http://mirror.example/debian");
        let parsed = parse_deb822(&s);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].suites, vec!["bookworm-backports"]);
        assert_eq!(parsed[0].uris, vec!["http://mirror.example/debian"]);
        assert!(s.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("rustc 1.96.0 (ac68faa20 2026-05-25)"),
            Some((1, 96))
        );
        assert_eq!(
            parse_version("cargo 1.96.0 (30a34c682 2026-05-25) (built from a source tarball)"),
            Some((1, 96))
        );
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright"),
            Some((10, 0))
        );
        assert_eq!(parse_version("QEMU emulator version 7.2.0"), Some((7, 2)));
        assert!(parse_version("QEMU emulator version 7.2.0").unwrap() < MIN_QEMU);
        assert_eq!(parse_version("nothing here"), None);
    }

    #[test]
    fn install_instructions() {
        let missing = vec![
            Missing {
                package: "rust-web-clippy",
                from_backports: false,
                reason: "x".into(),
            },
            Missing {
                package: "qemu-system-ppc",
                from_backports: true,
                reason: "y".into(),
            },
        ];
        assert_eq!(
            apt_install_lines(&missing),
            vec![
                "apt-get update",
                "apt-get install -y rust-web-clippy",
                "apt-get install -y -t bookworm-backports qemu-system-ppc"
            ]
        );
    }
}
