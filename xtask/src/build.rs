//! `cargo xtask build`: cross-build the hypervisor ELF with Debian's toolchain.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cli::BuildArgs;
use crate::cmd::Cmd;
use crate::error::{failed, Result};
use crate::{guests, repo_root, setup};

/// The long description of `cargo xtask build --help` (the options are listed by
/// clap from `cli::BuildArgs`).
pub const ABOUT: &str = "\
Cross-builds the hypervisor image (crate paprika-boot, bin `paprika`) for
.cargo/powerpc64le-paprika.json with Debian's /usr/bin/cargo and /usr/bin/rustc,
building core and alloc from source (-Zbuild-std), linked with linker.ld.

Output: target/power/powerpc64le-paprika/{debug,release}/paprika

With --guests, then also builds the test guests: every crate directly under
tests/guests/ whose package is named `guest-*` and has a binary, for the same
target with the same flags but linked with tests/guests/guest.ld (cargo target
dir target/power-guests), copied to target/guests/<package>.elf. Manifests
name them `@guest/<package>` (docs/manifest.md). guest-conformance and
guest-nested are also built big-endian (.cargo/powerpc64-paprika-guest.json,
linked with -EB, cargo target dir target/power-guests-be) into
target/guests/<package>-be.elf. Last the mini VMM (tests/guests/vmm,
package paprika-vmm): a static ppc64el Linux program for the same target,
linked by ld's default script (cargo target dir target/power-vmm), copied to
target/vmm/paprika-vmm, with guest-timer stripped of debug information
beside it (target/vmm/guest-timer.elf): `linux fetch` packs both into the
initramfs.";

pub const TARGET_NAME: &str = "powerpc64le-paprika";
pub const BOOT_PACKAGE: &str = "paprika-boot";
pub const BIN: &str = "paprika";
pub const DEBIAN_CARGO: &str = "/usr/bin/cargo";
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The directory cargo writes this profile's output to.
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// What to build and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOpts {
    pub profile: Profile,
    pub features: Vec<String>,
    /// The cargo target directory; `power_target_dir()` for normal builds.
    pub target_dir: PathBuf,
}

impl BuildOpts {
    pub fn new(profile: Profile, features: &[&str]) -> Self {
        let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let target_dir = power_target_dir(&features);
        BuildOpts {
            profile,
            features,
            target_dir,
        }
    }

    /// Where the ELF ends up.
    pub fn elf(&self) -> PathBuf {
        self.target_dir
            .join(TARGET_NAME)
            .join(self.profile.dir())
            .join(BIN)
    }

    pub fn describe(&self) -> String {
        let mut s = self.profile.dir().to_string();
        if !self.features.is_empty() {
            s.push_str(&format!(" +{}", self.features.join(",")));
        }
        s
    }
}

/// `target/power` for the default features; `target/power-<name>` otherwise so a
/// test build (e.g. `fault-test` -> `target/power-fault`) never clobbers the normal one.
pub fn power_target_dir(features: &[String]) -> PathBuf {
    let target = repo_root().join("target");
    if features.is_empty() {
        return target.join("power");
    }
    let mut names: Vec<&str> = features
        .iter()
        .map(|f| f.strip_suffix("-test").unwrap_or(f))
        .collect();
    names.sort_unstable();
    target.join(format!("power-{}", names.join("-")))
}

pub fn host_target_dir() -> PathBuf {
    repo_root().join("target").join("host")
}

/// Splits `--features a,b c` the way cargo does.
pub fn split_features(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|l| l.split([',', ' ']))
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn main(args: BuildArgs) -> Result<i32> {
    let release = args.release;
    let features = split_features(&args.features);
    let with_guests = args.guests;
    setup::ensure_tools()?;
    let profile = if release {
        Profile::Release
    } else {
        Profile::Debug
    };
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    build(&BuildOpts::new(profile, &features))?;
    if with_guests {
        match guests::build_all(profile)? {
            None => println!("{}", guests::NO_GUESTS),
            Some(elfs) if elfs.is_empty() => println!("no guest crates (guest-*) in tests/guests/"),
            Some(_) => {}
        }
    }
    Ok(0)
}

/// The RUSTFLAGS of every POWER build, check and clippy run of the hypervisor.
pub fn power_rustflags(root: &Path) -> String {
    rustflags_with_script(&root.join("linker.ld"))
}

/// The POWER RUSTFLAGS with `script` as the linker script (the hypervisor's
/// linker.ld, or tests/guests/guest.ld for the guests).
pub fn rustflags_with_script(linker_script: &Path) -> String {
    [
        format!("-C link-arg=-T{}", linker_script.display()),
        "-C link-arg=--no-dynamic-linker".to_string(),
        "-C link-arg=-znoexecstack".to_string(),
        "-C force-frame-pointers=yes".to_string(),
    ]
    .join(" ")
}

/// `PATH` with /usr/bin first, so `cargo clippy` / `cargo fmt` find Debian's
/// cargo-clippy, clippy-driver, cargo-fmt and rustfmt, not rustup's.
fn debian_path() -> String {
    match std::env::var("PATH") {
        Ok(p) if !p.is_empty() => format!("/usr/bin:{p}"),
        _ => "/usr/bin:/bin".to_string(),
    }
}

/// Debian's cargo with Debian's rustc and toolchain first on PATH.
pub fn debian_cargo(target_dir: &Path) -> Cmd {
    Cmd::new(DEBIAN_CARGO)
        .scrub_cargo_env()
        .current_dir(repo_root())
        .env("RUSTC", DEBIAN_RUSTC)
        .env_shown_as("PATH", debian_path(), "/usr/bin:$PATH")
        .env("CARGO_TARGET_DIR", target_dir)
}

/// Debian's cargo for host builds and tests (target/host).
pub fn host_cargo() -> Cmd {
    debian_cargo(&host_target_dir())
}

/// `cargo <subcommand>` of the hypervisor for the POWER target: `build`, `check`
/// or `clippy`. Arguments for the tool itself (`-- -D warnings`) are the caller's
/// to add.
pub fn power_cargo(subcommand: &str, opts: &BuildOpts) -> Cmd {
    let root = repo_root();
    let mut cmd = power_cargo_with(
        subcommand,
        &opts.target_dir,
        &power_rustflags(&root),
        opts.profile,
    )
    .args(["-p", BOOT_PACKAGE, "--bin", BIN]);
    if !opts.features.is_empty() {
        cmd = cmd.args(["--features", &opts.features.join(",")]);
    }
    cmd
}

/// `cargo <subcommand>` for the POWER target with the given RUSTFLAGS, without
/// any package selection (the caller adds `-p`, `--manifest-path`, ...).
pub fn power_cargo_with(
    subcommand: &str,
    target_dir: &Path,
    rustflags: &str,
    profile: Profile,
) -> Cmd {
    cargo_for_target(subcommand, TARGET_NAME, target_dir, rustflags, profile)
}

/// `cargo <subcommand>` for the target spec .cargo/<target>.json (the
/// hypervisor's [`TARGET_NAME`], or the big-endian guests'
/// [`guests::BE_TARGET_NAME`]), building core and alloc from source.
pub fn cargo_for_target(
    subcommand: &str,
    target: &str,
    target_dir: &Path,
    rustflags: &str,
    profile: Profile,
) -> Cmd {
    let spec = repo_root().join(".cargo").join(format!("{target}.json"));
    let mut cmd = debian_cargo(target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTFLAGS", rustflags)
        .args([subcommand, "--target"])
        .arg(spec)
        .args([
            "-Zbuild-std=core,alloc",
            "-Zbuild-std-features=compiler-builtins-mem",
        ]);
    if json_target_spec_flag_supported() {
        cmd = cmd.arg("-Zjson-target-spec");
    }
    if profile == Profile::Release {
        cmd = cmd.arg("--release");
    }
    cmd
}

/// Newer cargo wants `-Zjson-target-spec` for a `.json` target; older ones reject
/// the flag. Asked once per run from `cargo -Z help`.
fn json_target_spec_flag_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let probe = Cmd::new(DEBIAN_CARGO)
            .scrub_cargo_env()
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["-Z", "help"]);
        match probe.capture() {
            Ok(Some((status, out))) if status.success() => out.contains("json-target-spec"),
            _ => false,
        }
    })
}

/// Builds; returns the ELF path after printing it with its size.
pub fn build(opts: &BuildOpts) -> Result<PathBuf> {
    power_cargo("build", opts).run()?;
    let elf = opts.elf();
    let meta = std::fs::metadata(&elf).map_err(|e| {
        failed!(
            "the build succeeded but {} is not there: {e}",
            elf.display()
        )
    })?;
    println!("built {} ({} bytes)", elf.display(), meta.len());
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_build_has_its_own_target_dir() {
        let normal = BuildOpts::new(Profile::Debug, &[]);
        let fault = BuildOpts::new(Profile::Debug, &["fault-test"]);
        assert!(normal.target_dir.ends_with("target/power"));
        assert!(fault.target_dir.ends_with("target/power-fault"));
        assert!(fault
            .elf()
            .ends_with("target/power-fault/powerpc64le-paprika/debug/paprika"));
        assert!(BuildOpts::new(Profile::Release, &[])
            .elf()
            .ends_with("target/power/powerpc64le-paprika/release/paprika"));
    }

    #[test]
    fn features_split_like_cargo() {
        let list = vec!["a,b".to_string(), "c d".to_string()];
        assert_eq!(split_features(&list), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn rustflags_use_the_linker_script() {
        let flags = power_rustflags(Path::new("/r"));
        assert_eq!(
            flags,
            "-C link-arg=-T/r/linker.ld -C link-arg=--no-dynamic-linker \
             -C link-arg=-znoexecstack -C force-frame-pointers=yes"
        );
    }
}
