//! The test guests: small `no_std` POWER programs under tests/guests/ that run in
//! partitions.
//!
//! A guest is a crate directly under tests/guests/ whose package is named
//! `guest-*` and that has a binary (src/main.rs or a `[[bin]]`). Other crates
//! there (e.g. the runtime, tests/guests/rt) are libraries the guests use. Guests
//! are built for the hypervisor's target with the hypervisor's flags, but linked
//! with tests/guests/guest.ld, in their own cargo target directory
//! (target/power-guests, so the differing RUSTFLAGS never rebuild the
//! hypervisor's), and copied to target/guests/<package>.elf, which manifests name
//! `@guest/<package>`.
//!
//! The guests of [`BIG_ENDIAN_GUESTS`] are built a second time, big-endian, for
//! .cargo/powerpc64-paprika-guest.json (ELFv2, so no function descriptors, and
//! otherwise the flags of the little-endian spec) with the same linker script
//! and `-EB`, in target/power-guests-be (core is built once more there, and
//! neither build invalidates the other), into target/guests/<package>-be.elf
//! (`@guest/<package>-be`).

use std::path::{Path, PathBuf};

use crate::build::{self, Profile, BIN, TARGET_NAME};
use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::repo_root;

/// What `build --guests` and `test` say when there is nothing to build.
pub const NO_GUESTS: &str = "no guests yet: tests/guests/ does not exist";
/// Package names of guests start with this.
pub const PACKAGE_PREFIX: &str = "guest-";
/// Guests that are also built big-endian, as `<package>-be`.
pub const BIG_ENDIAN_GUESTS: &[&str] = &["guest-conformance", "guest-nested"];
/// The target spec (.cargo/<name>.json) of big-endian guests.
pub const BE_TARGET_NAME: &str = "powerpc64-paprika-guest";
/// The mini VMM (tests/guests/vmm): a static ppc64el Linux program, not a
/// guest, that runs a test guest as an L2 under KVM-HV inside a Linux
/// partition. `linux fetch` packs it into the initramfs as /bin/paprika-vmm.
pub const VMM_PACKAGE: &str = "paprika-vmm";
/// Debian's binutils for POWER (setup installs them with the linker).
const OBJCOPY: &str = "/usr/bin/powerpc64le-linux-gnu-objcopy";
/// The test guest the initramfs carries for the VMM to run as L2
/// (/lib/paprika/<name>.elf).
pub const VMM_L2_GUEST: &str = "guest-timer";

/// The byte order a guest is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// The hypervisor's target; every guest.
    Little,
    /// [`BE_TARGET_NAME`]; the guests of [`BIG_ENDIAN_GUESTS`].
    Big,
}

impl Endian {
    /// The target spec's name, also the directory cargo puts its output under.
    pub fn target_name(self) -> &'static str {
        match self {
            Endian::Little => TARGET_NAME,
            Endian::Big => BE_TARGET_NAME,
        }
    }

    /// The cargo target directory: one per endianness, so that each keeps its
    /// own core and neither rebuilds the other's.
    pub fn target_dir(self) -> PathBuf {
        let dir = repo_root().join("target");
        match self {
            Endian::Little => dir.join("power-guests"),
            Endian::Big => dir.join("power-guests-be"),
        }
    }

    /// The name of `package` built this way, as manifests say `@guest/<name>`.
    pub fn guest_name(self, package: &str) -> String {
        match self {
            Endian::Little => package.to_string(),
            Endian::Big => format!("{package}-be"),
        }
    }
}

/// One crate under tests/guests/.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub package: String,
    pub dir: PathBuf,
    /// The binary to build, when the crate has one.
    pub bin: Option<String>,
}

impl Crate {
    /// A guest: a `guest-*` package with a binary.
    pub fn is_guest(&self) -> bool {
        self.package.starts_with(PACKAGE_PREFIX) && self.bin.is_some()
    }
}

pub fn guests_dir() -> PathBuf {
    repo_root().join("tests").join("guests")
}

pub fn linker_script() -> PathBuf {
    guests_dir().join("guest.ld")
}

/// Where the guest ELFs are collected.
pub fn output_dir() -> PathBuf {
    repo_root().join("target").join("guests")
}

/// The ELF of guest `name` (a package, or `<package>-be`) once built.
pub fn elf(name: &str) -> PathBuf {
    output_dir().join(format!("{name}.elf"))
}

/// Whether tests/guests/ exists.
pub fn exist() -> bool {
    guests_dir().is_dir()
}

/// Every crate directly under tests/guests/, sorted by package name; `None` when
/// tests/guests/ does not exist.
pub fn discover() -> Result<Option<Vec<Crate>>> {
    let dir = guests_dir();
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut crates = Vec::new();
    let listing = std::fs::read_dir(&dir).context(|| format!("reading {}", dir.display()))?;
    for entry in listing {
        let path = entry
            .context(|| format!("reading {}", dir.display()))?
            .path();
        let manifest = path.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)
            .context(|| format!("reading {}", manifest.display()))?;
        let info = read_cargo_toml(&text);
        let Some(package) = info.package else {
            continue; // a virtual manifest (a workspace of its own), not a crate
        };
        let bin = info
            .bins
            .into_iter()
            .next()
            .or_else(|| path.join("src/main.rs").is_file().then(|| package.clone()));
        crates.push(Crate {
            package,
            dir: path,
            bin,
        });
    }
    crates.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(Some(crates))
}

/// The guests among `discover()`.
pub fn discover_guests() -> Result<Option<Vec<Crate>>> {
    Ok(discover()?.map(|c| c.into_iter().filter(Crate::is_guest).collect()))
}

/// Every build of `guests`: each little-endian, then those of
/// [`BIG_ENDIAN_GUESTS`] big-endian.
pub fn builds(guests: &[Crate]) -> Vec<(&Crate, Endian)> {
    let little = guests.iter().map(|g| (g, Endian::Little));
    let big = guests
        .iter()
        .filter(|g| BIG_ENDIAN_GUESTS.contains(&g.package.as_str()))
        .map(|g| (g, Endian::Big));
    little.chain(big).collect()
}

/// What `read_cargo_toml` finds.
#[derive(Debug, Default, PartialEq, Eq)]
struct CargoToml {
    package: Option<String>,
    bins: Vec<String>,
}

/// The package name and `[[bin]]` names of a Cargo.toml: just enough TOML for
/// the usual `name = "..."` lines.
fn read_cargo_toml(text: &str) -> CargoToml {
    let mut out = CargoToml::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.split('#').next().unwrap_or("").trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "name" {
            continue;
        }
        let value = value.split('#').next().unwrap_or("").trim();
        let Some(name) = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map(str::to_string)
        else {
            continue;
        };
        match section.as_str() {
            "[package]" if out.package.is_none() => out.package = Some(name),
            "[[bin]]" => out.bins.push(name),
            _ => {}
        }
    }
    out
}

/// The `members` patterns of the root workspace's Cargo.toml.
fn workspace_members(text: &str) -> Vec<String> {
    let mut in_workspace = false;
    let mut collecting = false;
    let mut members = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if !collecting && line.starts_with('[') {
            in_workspace = line == "[workspace]";
            continue;
        }
        let rest = if collecting {
            line
        } else if in_workspace {
            match line.split_once('=') {
                Some((key, value)) if key.trim() == "members" => {
                    collecting = true;
                    value.trim()
                }
                _ => continue,
            }
        } else {
            continue;
        };
        let mut parts = rest.split('"');
        parts.next(); // before the first quote
        while let (Some(quoted), Some(_)) = (parts.next(), parts.next()) {
            members.push(quoted.to_string());
        }
        if rest.contains(']') {
            collecting = false;
        }
    }
    members
}

/// Whether `path` (relative, `/`-separated) matches a workspace member pattern,
/// where `*` stands for any run of characters within one path segment.
fn member_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| segment_matches(p.as_bytes(), s.as_bytes()))
}

fn segment_matches(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| segment_matches(rest, &s[i..])),
        Some((c, rest)) => s
            .split_first()
            .is_some_and(|(d, tail)| c == d && segment_matches(rest, tail)),
    }
}

/// The crates under tests/guests/ that are members of the root workspace: host
/// builds (`--workspace`) must `--exclude` them, as they only build for POWER.
pub fn workspace_member_packages() -> Result<Vec<String>> {
    let Some(crates) = discover()? else {
        return Ok(Vec::new());
    };
    let root = repo_root();
    let cargo_toml = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml)
        .context(|| format!("reading {}", cargo_toml.display()))?;
    let patterns = workspace_members(&text);
    Ok(crates
        .into_iter()
        .filter(|c| {
            let rel = c.dir.strip_prefix(&root).unwrap_or(&c.dir);
            let rel = rel.to_string_lossy().replace('\\', "/");
            patterns.iter().any(|p| member_matches(p, &rel))
        })
        .map(|c| c.package)
        .collect())
}

/// The RUSTFLAGS of guest builds. guest.ld names both output formats; `-EB`
/// picks elf64-powerpc for the big-endian ones.
pub fn rustflags(endian: Endian) -> String {
    let flags = build::rustflags_with_script(&linker_script());
    match endian {
        Endian::Little => flags,
        Endian::Big => format!("{flags} -C link-arg=-EB"),
    }
}

/// `cargo <subcommand>` of one guest crate for POWER.
pub fn cargo(subcommand: &str, krate: &Crate, profile: Profile, endian: Endian) -> Cmd {
    build::cargo_for_target(
        subcommand,
        endian.target_name(),
        &endian.target_dir(),
        &rustflags(endian),
        profile,
    )
    .arg("--manifest-path")
    .arg(krate.dir.join("Cargo.toml"))
    .args(["-p", &krate.package])
}

/// Whether tests/guests/vmm exists.
pub fn vmm_exists() -> bool {
    guests_dir().join("vmm").join("Cargo.toml").is_file()
}

/// The cargo target directory of the VMM build.
pub fn vmm_target_dir() -> PathBuf {
    repo_root().join("target").join("power-vmm")
}

/// Where [`build_vmm`] leaves the VMM: target/vmm/paprika-vmm.
pub fn vmm_path() -> PathBuf {
    repo_root().join("target").join("vmm").join(VMM_PACKAGE)
}

/// The L2 guest for the initramfs, [`VMM_L2_GUEST`] without its debug
/// information: target/vmm/<guest>.elf.
pub fn vmm_l2_path() -> PathBuf {
    repo_root()
        .join("target")
        .join("vmm")
        .join(format!("{VMM_L2_GUEST}.elf"))
}

/// The RUSTFLAGS of the VMM: the little-endian target spec (ELFv2, soft
/// float, static relocation) linked by ld with its default script for a
/// static Linux executable (text at 0x10000000, `_start` the entry, e_flags
/// ABI v2 from the objects), without debug information.
pub fn vmm_rustflags() -> String {
    [
        "-C link-arg=-static",
        "-C link-arg=--no-dynamic-linker",
        "-C link-arg=-znoexecstack",
        "-C link-arg=--strip-debug",
        "-C force-frame-pointers=yes",
    ]
    .join(" ")
}

/// `cargo <subcommand>` of the VMM for POWER.
pub fn vmm_cargo(subcommand: &str, profile: Profile) -> Cmd {
    build::cargo_for_target(
        subcommand,
        TARGET_NAME,
        &vmm_target_dir(),
        &vmm_rustflags(),
        profile,
    )
    .arg("--manifest-path")
    .arg(guests_dir().join("vmm").join("Cargo.toml"))
    .args(["-p", VMM_PACKAGE])
}

/// Builds the VMM (when tests/guests/vmm exists) into [`vmm_path`], and
/// copies its L2 guest (built before) without debug information to
/// [`vmm_l2_path`] (`objcopy --strip-debug`: the initramfs carries it).
pub fn build_vmm(profile: Profile) -> Result<Option<PathBuf>> {
    if !vmm_exists() {
        return Ok(None);
    }
    vmm_cargo("build", profile)
        .args(["--bin", VMM_PACKAGE])
        .run()?;
    let built = vmm_target_dir()
        .join(TARGET_NAME)
        .join(profile.dir())
        .join(VMM_PACKAGE);
    let dest = vmm_path();
    install(&built, &dest, "built VMM")?;
    let l2 = vmm_l2_path();
    Cmd::new(OBJCOPY)
        .arg("--strip-debug")
        .arg(elf(VMM_L2_GUEST))
        .arg(&l2)
        .run()?;
    print_size("L2 guest", &l2);
    Ok(Some(dest))
}

/// Copies what cargo built to `dest` (creating its folder) and prints
/// `<what> <dest> (<size> bytes)`.
fn install(built: &Path, dest: &Path, what: &str) -> Result<()> {
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d).context(|| format!("creating {}", d.display()))?;
    }
    std::fs::copy(built, dest).context(|| {
        format!(
            "copying {} to {} (built by cargo?)",
            built.display(),
            dest.display()
        )
    })?;
    print_size(what, dest);
    Ok(())
}

/// Prints `<what> <path> (<size> bytes)`.
fn print_size(what: &str, path: &Path) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    crate::progress::println_line(format!("{what} {} ({size} bytes)", path.display()));
}

/// Builds every guest and copies it to target/guests/<package>.elf, then the
/// VMM ([`build_vmm`]). `None` when tests/guests/ does not exist.
pub fn build_all(profile: Profile) -> Result<Option<Vec<PathBuf>>> {
    let Some(guests) = discover_guests()? else {
        return Ok(None);
    };
    if !guests.is_empty() && !linker_script().is_file() {
        return Err(failed!(
            "{} is missing; the guests are linked with it",
            linker_script().display()
        ));
    }
    let out_dir = output_dir();
    std::fs::create_dir_all(&out_dir).context(|| format!("creating {}", out_dir.display()))?;
    let mut elfs = Vec::new();
    let all = builds(&guests);
    let progress = crate::progress::Progress::new("guests", all.len());
    for (g, endian) in all {
        progress.set_message(endian.guest_name(&g.package));
        let bin = g.bin.as_deref().unwrap_or(BIN);
        cargo("build", g, profile, endian)
            .args(["--bin", bin])
            .run()?;
        let built = endian
            .target_dir()
            .join(endian.target_name())
            .join(profile.dir())
            .join(bin);
        let dest = elf(&endian.guest_name(&g.package));
        install(&built, &dest, "built guest")?;
        progress.inc();
        elfs.push(dest);
    }
    build_vmm(profile)?;
    Ok(Some(elfs))
}

/// The names of the guests that have been built (in target/guests/).
pub fn built() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(output_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".elf"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_toml_names() {
        let text = r#"
[package]
name = "guest-hcall"   # the crate
version = "0.1.0"

[dependencies]
rt = { path = "../rt", package = "guest-rt" }

[[bin]]
name = "hcall"
path = "src/main.rs"
"#;
        assert_eq!(
            read_cargo_toml(text),
            CargoToml {
                package: Some("guest-hcall".into()),
                bins: vec!["hcall".into()],
            }
        );
        assert_eq!(
            read_cargo_toml("[workspace]\nmembers = [\"a\"]\n"),
            CargoToml::default()
        );
    }

    #[test]
    fn workspace_member_patterns() {
        let text = r#"
[workspace]
resolver = "2"
members = ["hypervisor", "boot", # comment
    "xtask",
    "tests/guests/*"]
default-members = ["hypervisor"]

[workspace.package]
name = "x"
"#;
        assert_eq!(
            workspace_members(text),
            vec!["hypervisor", "boot", "xtask", "tests/guests/*"]
        );
        assert_eq!(
            workspace_members("[workspace]\nmembers = [\"a\", \"b\"]\n"),
            vec!["a", "b"]
        );
        assert!(member_matches("tests/guests/*", "tests/guests/hcall"));
        assert!(member_matches(
            "tests/guests/guest-*",
            "tests/guests/guest-x"
        ));
        assert!(member_matches("tests/guests/rt/", "tests/guests/rt"));
        assert!(!member_matches("tests/guests/guest-*", "tests/guests/rt"));
        assert!(!member_matches("tests/*", "tests/guests/hcall"));
        assert!(!member_matches("hypervisor", "tests/guests/hcall"));
    }

    #[test]
    fn guests_are_guest_packages_with_a_binary() {
        let c = |package: &str, bin: Option<&str>| Crate {
            package: package.into(),
            dir: PathBuf::new(),
            bin: bin.map(String::from),
        };
        assert!(c("guest-hcall", Some("guest-hcall")).is_guest());
        assert!(!c("guest-rt", None).is_guest());
        assert!(!c("rt", Some("rt")).is_guest());
    }

    #[test]
    fn paths() {
        assert!(elf("guest-hcall").ends_with("target/guests/guest-hcall.elf"));
        for endian in [Endian::Little, Endian::Big] {
            assert!(rustflags(endian).contains("tests/guests/guest.ld"));
            assert!(!rustflags(endian).contains("linker.ld"));
        }
        assert!(!rustflags(Endian::Little).contains("-EB"));
        assert!(rustflags(Endian::Big).ends_with("-C link-arg=-EB"));
    }

    #[test]
    fn big_endian_builds() {
        assert_eq!(Endian::Big.guest_name("guest-x"), "guest-x-be");
        assert_eq!(Endian::Little.guest_name("guest-x"), "guest-x");
        assert!(Endian::Little.target_dir().ends_with("target/power-guests"));
        assert!(Endian::Big.target_dir().ends_with("target/power-guests-be"));
        assert!(repo_root()
            .join(".cargo")
            .join(format!("{BE_TARGET_NAME}.json"))
            .is_file());
        let c = |package: &str| Crate {
            package: package.into(),
            dir: PathBuf::new(),
            bin: Some(package.into()),
        };
        let guests = [c("guest-conformance"), c("guest-smp")];
        let names: Vec<String> = builds(&guests)
            .into_iter()
            .map(|(g, e)| e.guest_name(&g.package))
            .collect();
        assert_eq!(
            names,
            ["guest-conformance", "guest-smp", "guest-conformance-be"]
        );
    }
}
