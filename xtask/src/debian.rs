//! `cargo xtask linux debian-root` and `run --debian-root`: a small Debian 12
//! (bookworm) ppc64el root file system image booted from a vscsi disk
//! (docs/vscsi.md "A Debian root").
//!
//! - target/debian/debs/       the .deb files (`apt-get download`), kept
//! - target/debian/root/       them unpacked together (`dpkg-deb -x`), rebuilt
//! - target/debian/root.ext4   the image (`mke2fs -d`, no root needed)
//! - target/debian/root.stamp  what the image was made from (debs, init)
//!
//! The package set is fixed ([`PACKAGES`]): base-files, libc6, bash,
//! coreutils, powerpc-utils (the `nvram` tool) and their library
//! dependencies. When packages are downloaded, every `Depends`/`Pre-Depends`
//! of the set (as `apt-cache show` gives them) must be in the set or in
//! [`SKIPPED`] (what the image does without, and why), so a Debian update that
//! adds a library fails loudly here instead of in the guest. No maintainer
//! script runs: /sbin/init is ours ([`INIT`]), bash running it.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::linux::{self, rel, ARCH};
use crate::progress::println;
use crate::repo_root;

/// The packages of the image (all ppc64el; each `apt-get download`ed).
pub const PACKAGES: &[&str] = &[
    "base-files",
    "libc6",
    "libgcc-s1",
    "gcc-12-base",
    "bash",
    "libtinfo6",
    "debianutils",
    "coreutils",
    "libacl1",
    "libattr1",
    "libgmp10",
    "libselinux1",
    "libpcre2-8-0",
    "mawk",
    "powerpc-utils",
    "powerpc-ibm-utils",
    "libnuma1",
    "librtas2",
    "librtasevent2",
    "zlib1g",
];

/// Dependencies of [`PACKAGES`] the image leaves out, and why.
pub const SKIPPED: &[(&str, &str)] = &[(
    "bc",
    "powerpc-ibm-utils' shell scripts (e.g. lparstat's helpers) use it; nvram does not",
)];

/// Trees of the unpacked packages the image leaves out (translations,
/// documentation, iconv modules): they would double its size.
const PRUNED: &[&str] = &[
    "usr/share/locale",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/lib/powerpc64le-linux-gnu/gconv",
];

/// The line the image's /sbin/init prints first.
pub const INIT_MARKER: &str = "PAPRIKA-LINUX debian: /sbin/init (bash) from the vscsi root";

/// The image's /sbin/init: a bash script (bash and everything it runs are
/// Debian's dynamically linked binaries). The initramfs moved /dev, /proc and
/// /sys here already (no `mount` in the image). It reports the release, shows
/// that bash runs through Debian's dynamic linker, and drives powerpc-utils'
/// `nvram`; with `paprika.test=1` it checks, round-trips an NVRAM variable of
/// the `common` partition across a partition reboot (and says whether an
/// earlier run left it there: across a power-off with a PNOR), and powers off (sysrq:
/// no reboot/poweroff tools in the image), otherwise it starts a bash shell.
pub const INIT: &str = r#"#!/bin/bash
# /sbin/init of the Debian root `cargo xtask linux debian-root` builds
# (xtask/src/debian.rs).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
cmdline=" $(</proc/cmdline) "
tag=
test=
for word in $cmdline; do
    case "$word" in
    paprika.name=*) tag=" name=${word#paprika.name=}" ;;
    paprika.test=1) test=1 ;;
    esac
done
say() { echo "PAPRIKA-LINUX $*$tag"; }
failed=
check() {
    local what=$1
    shift
    if "$@"; then
        say "check $what: ok"
    else
        say "check $what: FAILED"
        failed=1
    fi
}
say "debian: /sbin/init (bash) from the vscsi root"
say "debian_version: $(cat /etc/debian_version)"
. /etc/os-release
say "os-release: $PRETTY_NAME"
say "uname: $(uname -srm)"
# bash itself: which dynamic linker and libc it runs with.
maps=$(</proc/$$/maps)
ld=no
libc=no
[[ $maps == *ld64.so.2* ]] && ld=yes
[[ $maps == *libc.so.6* ]] && libc=yes
say "dynamic: bash maps ld64.so.2=$ld libc.so.6=$libc"
root=$(while read -r dev dir type rest; do [ "$dir" = / ] && echo "$type"; done </proc/mounts | tail -n 1)
say "root fs: $root"

if [ -z "$test" ]; then
    echo "Debian $(cat /etc/debian_version) on a vscsi root; nvram is powerpc-utils'."
    echo "No reboot tool: 'echo b >/proc/sysrq-trigger' reboots, 'echo o >...' powers off."
    exec bash -l </dev/console >/dev/console 2>&1
fi

check debian-dynamic [ "$ld$libc" = yesyes ]
check debian-root-ext4 [ "$root" = ext4 ]
mark=/var/lib/paprika-nvram-set
word=paprika-debian
value=round-trip-42
if [ ! -e $mark ]; then
    echo "--- nvram --partitions"
    nvram --partitions
    echo "--- nvram --print-config"
    nvram --print-config
    check nvram-print-config [ $? = 0 ]
    # Set by an earlier run of the machine (`run --pnor FILE`, a PNOR
    # scenario's second run): kept in OPAL's NVRAM across the power-off.
    # The partition reboot is then not done again.
    again=
    if [ "$(nvram --print-config=$word -p common)" = "$value" ]; then
        check nvram-config-survives-poweroff true
        again=1
    else
        say "debian: $word not in common yet"
    fi
    nvram --update-config "$word=$value" -p common
    check nvram-update-config [ $? = 0 ]
    check nvram-read-back [ "$(nvram --print-config=$word -p common)" = "$value" ]
    if [ -z "$failed" ] && [ -z "$again" ]; then
        : >$mark
        sync
        say "debian: nvram set, rebooting"
        echo b >/proc/sysrq-trigger
        sleep 10
    fi
else
    echo "--- nvram --print-config (after the reboot)"
    nvram --print-config
    check nvram-config-survives-reboot [ "$(nvram --print-config=$word -p common)" = "$value" ]
fi
if [ -z "$failed" ]; then
    say "test: passed"
else
    say "test: FAILED"
fi
sync
echo o >/proc/sysrq-trigger
sleep 10
"#;

/// target/debian
pub fn dir() -> PathBuf {
    repo_root().join("target").join("debian")
}

/// target/debian/root.ext4
pub fn image_path() -> PathBuf {
    dir().join("root.ext4")
}

/// Downloads (when not cached) and builds the image unless an identical one
/// is there; returns its path.
pub fn build(refresh: bool) -> Result<PathBuf> {
    let start = std::time::Instant::now();
    let top = dir();
    let debs_dir = top.join("debs");
    std::fs::create_dir_all(&debs_dir).context(|| format!("creating {}", debs_dir.display()))?;
    let mut debs = cached(&debs_dir)?;
    if refresh || debs.iter().any(Option::is_none) {
        download(&debs_dir, refresh)?;
        debs = cached(&debs_dir)?;
    }
    let debs: Vec<PathBuf> = debs
        .into_iter()
        .zip(PACKAGES)
        .map(|(d, p)| d.ok_or_else(|| failed!("no {p}_*_{ARCH}.deb in {}", rel(&debs_dir))))
        .collect::<Result<_>>()?;

    let image = image_path();
    let stamp_path = top.join("root.stamp");
    let stamp = stamp_text(&debs);
    if image.is_file() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        println!(
            "cached: {} ({:.1} MiB)",
            rel(&image),
            linux::mib(file_len(&image))
        );
        return Ok(image);
    }

    let root = top.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root).context(|| format!("removing {}", root.display()))?;
    }
    std::fs::create_dir_all(&root).context(|| format!("creating {}", root.display()))?;
    for deb in &debs {
        Cmd::new("dpkg-deb").arg("-x").arg(deb).arg(&root).run()?;
    }
    for p in PRUNED {
        let path = root.join(p);
        if path.exists() {
            std::fs::remove_dir_all(&path).context(|| format!("removing {}", path.display()))?;
        }
    }
    for d in ["dev", "proc", "sys", "tmp", "run", "root", "var/lib"] {
        std::fs::create_dir_all(root.join(d)).context(|| format!("creating {d}"))?;
    }
    write_file(&root.join("sbin/init"), INIT, 0o755)?;
    write_file(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
        0o644,
    )?;
    write_file(&root.join("etc/group"), "root:x:0:\n", 0o644)?;
    write_file(&root.join("etc/hostname"), "paprika-debian\n", 0o644)?;

    // Room for the files plus a quarter, and 8 MiB for ext4's own metadata
    // and what the guest writes.
    let used = tree_bytes(&root)?;
    let size_mib = (used + used / 4) / (1 << 20) + 8;
    if image.exists() {
        std::fs::remove_file(&image).context(|| format!("removing {}", image.display()))?;
    }
    Cmd::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "debian-root", "-d"])
        .arg(&root)
        .arg(&image)
        .arg(format!("{size_mib}M"))
        .run()?;
    std::fs::write(&stamp_path, &stamp).context(|| format!("writing {}", stamp_path.display()))?;
    let version = std::fs::read_to_string(root.join("etc/debian_version")).unwrap_or_default();
    println!(
        "Debian {} root: {} ({size_mib} MiB, {:.1} MiB of files from {} packages) in {:.1} s; \
         boot it with `cargo xtask run --debian-root`",
        version.trim(),
        rel(&image),
        linux::mib(used),
        debs.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(image)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).context(|| format!("creating {}", d.display()))?;
    }
    // A package's file of that name may be a symlink: replace it.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text).context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(|| format!("chmod {}", path.display()))
}

/// Bytes of the regular files under `dir` (symlinks not followed).
fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).context(|| format!("reading {}", dir.display()))? {
        let entry = entry.context(|| format!("reading {}", dir.display()))?;
        let meta = entry
            .path()
            .symlink_metadata()
            .context(|| format!("reading {}", entry.path().display()))?;
        if meta.is_dir() {
            total += tree_bytes(&entry.path())?;
        } else if meta.is_file() {
            // Whole 4 KiB blocks, as ext4 stores them.
            total += meta.len().div_ceil(4096) * 4096;
        }
    }
    Ok(total)
}

/// What the image is made of: the .deb file names, then /sbin/init.
fn stamp_text(debs: &[PathBuf]) -> String {
    let mut s = String::new();
    for d in debs {
        s.push_str(&d.file_name().unwrap_or_default().to_string_lossy());
        s.push('\n');
    }
    s.push_str(&PRUNED.join(" "));
    s.push('\n');
    s.push_str(INIT);
    s
}

/// Whether every package of [`PACKAGES`] is in target/debian/debs/ (building
/// the image then needs no network).
pub fn packages_cached() -> bool {
    cached(&dir().join("debs")).is_ok_and(|d| d.iter().all(Option::is_some))
}

/// The newest cached .deb of each of [`PACKAGES`] (None where there is none).
fn cached(debs: &Path) -> Result<Vec<Option<PathBuf>>> {
    PACKAGES
        .iter()
        .map(|p| linux::newest_deb(debs, |n| n == *p))
        .collect()
}

/// Checks the set's dependencies, then `apt-get download`s the packages
/// (only the missing ones unless `refresh`).
fn download(debs: &Path, refresh: bool) -> Result<()> {
    linux::ensure_foreign_arch()?;
    let names: Vec<String> = PACKAGES.iter().map(|p| format!("{p}:{ARCH}")).collect();
    let show = Cmd::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(&names)
        .capture()?;
    let text = match show {
        Some((status, text)) if status.success() => text,
        Some((_, text)) => {
            return Err(failed!(
                "`apt-cache show` of the Debian root's packages failed (run `apt-get update` \
                 as root?): {}",
                text.trim()
            ))
        }
        None => return Err(failed!("no `apt-cache`: the Debian root needs apt")),
    };
    let skipped: Vec<&str> = SKIPPED.iter().map(|(n, _)| *n).collect();
    let unmet = unmet_depends(&text, PACKAGES, &skipped);
    if !unmet.is_empty() {
        return Err(failed!(
            "the Debian root's package set (xtask/src/debian.rs PACKAGES) misses \
             dependencies: {}; add them to PACKAGES (or to SKIPPED, saying why)",
            unmet.join(", ")
        ));
    }
    let mut want = Vec::new();
    for (p, name) in PACKAGES.iter().zip(&names) {
        if refresh || linux::newest_deb(debs, |n| n == *p)?.is_none() {
            want.push(name.as_str());
        }
    }
    let mut cmd = linux::apt_get(&[]);
    if linux::is_root() {
        // As root, apt's download sandbox user cannot write target/.
        cmd = cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    let status = cmd.arg("download").args(&want).current_dir(debs).status()?;
    if !status.success() {
        return Err(failed!(
            "`apt-get download` of the Debian root's packages failed ({}): no network?",
            crate::cmd::describe_status(status)
        ));
    }
    Ok(())
}

/// The `Depends`/`Pre-Depends` of the `apt-cache show` stanzas in `text` that
/// no package of `set` (by name or `Provides`) and no name in `skipped`
/// satisfies, as `package -> dependency`. An alternative (`a | b`) is met by
/// any of its names; versions and architecture qualifiers are not checked
/// (apt's candidates are what gets downloaded).
pub fn unmet_depends(text: &str, set: &[&str], skipped: &[&str]) -> Vec<String> {
    let stanzas: Vec<Vec<(&str, &str)>> = text
        .split("\n\n")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect::<Vec<_>>()
        })
        .filter(|f| f.iter().any(|(k, _)| *k == "Package"))
        .collect();
    let field = |f: &[(&str, &str)], key: &str| -> Vec<String> {
        f.iter()
            .filter(|(k, _)| *k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect()
    };
    let dep_name = |d: &str| -> String {
        let d = d.split_whitespace().next().unwrap_or("");
        d.split_once(':').map_or(d, |(n, _)| n).to_string()
    };
    let mut provided: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    for f in &stanzas {
        provided.extend(field(f, "Provides").iter().map(|p| dep_name(p)));
    }
    let mut unmet = Vec::new();
    for f in &stanzas {
        let package = f
            .iter()
            .find(|(k, _)| *k == "Package")
            .map_or("", |(_, v)| *v);
        let mut deps = field(f, "Pre-Depends");
        deps.extend(field(f, "Depends"));
        for dep in deps {
            let met = dep
                .split('|')
                .map(dep_name)
                .any(|n| provided.contains(&n) || skipped.contains(&n.as_str()));
            if !met {
                unmet.push(format!("{package} -> {dep}"));
            }
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Package: base-files\nVersion: 12.4\nPre-Depends: awk\n\n\
        Package: mawk\nProvides: awk\nDepends: libc6 (>= 2.29)\n\n\
        Package: bash\nPre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)\n\
        Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)\n\n\
        Package: powerpc-ibm-utils\nDepends: bash (>= 3), bc, libc6 (>= 2.34), \
        librtas2 (>= 1.3.6) | libfoo:any\n";

    #[test]
    fn debian_root_dependencies_are_checked() {
        let set = [
            "base-files",
            "mawk",
            "bash",
            "libc6",
            "libtinfo6",
            "debianutils",
            "powerpc-ibm-utils",
            "librtas2",
        ];
        // awk is provided by mawk, bc skipped, an alternative is enough.
        assert!(unmet_depends(SHOW, &set, &["bc"]).is_empty());
        assert_eq!(
            unmet_depends(SHOW, &set[..7], &[]),
            [
                "powerpc-ibm-utils -> bc",
                "powerpc-ibm-utils -> librtas2 (>= 1.3.6) | libfoo:any"
            ]
        );
        let no_mawk: Vec<&str> = set.iter().copied().filter(|p| *p != "mawk").collect();
        let text = SHOW.replace("Package: mawk\nProvides: awk\n", "Package: mawk\n");
        assert_eq!(
            unmet_depends(&text, &no_mawk, &["bc"]),
            ["base-files -> awk"]
        );
    }

    #[test]
    fn debian_root_package_set_is_closed() {
        // Every skipped dependency is not also in the set, and the set has no
        // duplicates.
        for (s, why) in SKIPPED {
            assert!(!PACKAGES.contains(s), "{s} is both in PACKAGES and SKIPPED");
            assert!(!why.is_empty());
        }
        let mut sorted = PACKAGES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), PACKAGES.len());
    }
}
