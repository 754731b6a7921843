//! `cargo xtask linux fetch` and `run --linux`: Debian 12's stock ppc64el kernel
//! and a busybox initramfs, fetched with apt and cached under target/linux/
//! (docs/linux.md).
//!
//! - target/linux/debs/      the .deb files (`apt-get download`), kept
//! - target/linux/extract/   each .deb unpacked (`dpkg-deb -x`), one directory each
//! - target/linux/vmlinux    the kernel ELF, copied out of the kernel package
//! - target/linux/version    what it is (`uname -r`, package, banner)
//! - target/linux/config     the kernel's build configuration
//! - target/linux/initramfs.cpio  newc cpio (uncompressed): busybox and /init

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{LinuxArgs, LinuxCommand};
use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::progress::println;
use crate::{guests, partitions, repo_root};

/// The long description of `cargo xtask linux --help` (the options are listed by
/// clap from `cli::LinuxArgs`).
pub const ABOUT: &str = "\
Fetches Debian 12's stock ppc64el kernel and busybox and builds an initramfs
from them, all cached under target/linux/ (see docs/linux.md):

  1. adds ppc64el to dpkg's foreign architectures when it is not there
     (`dpkg --add-architecture ppc64el`, `apt-get update`; needs root);
  2. `apt-get download` the kernel (the package linux-image-powerpc64le:ppc64el
     depends on, e.g. linux-image-6.1.0-<abi>-powerpc64le) and busybox-static
     into target/linux/debs/, unless they are there already;
  3. `dpkg-deb -x` them into target/linux/extract/, copies the kernel ELF to
     target/linux/vmlinux and records its version in target/linux/version;
  4. writes target/linux/initramfs.cpio: /bin/busybox, its applet links,
     /dev/console, /dev/hvc0 and an /init that prints
     `PAPRIKA-LINUX userspace reached`, uname, cpuinfo, interrupts and the date,
     then runs a shell on the console; with `paprika.test=1` on the kernel
     command line it checks a few things and powers off instead, with
     `paprika.echo=1` it says so before the shell (for `cargo xtask test`,
     which types into it); `paprika.name=NAME` tags its marker lines.
     With KVM's modules (`paprika.kvm=1` loads them) and, when built by
     `cargo xtask build --guests`, the mini VMM /bin/paprika-vmm and
     /lib/paprika/guest-timer.elf (`paprika.l2=1`: run it as an L2).

`cargo xtask run --linux` does this first, then boots the kernel in one LPAR.

`cargo xtask linux debian-root` builds target/debian/root.ext4, a small Debian
12 root file system (base-files, libc6, bash, coreutils, powerpc-utils and
their libraries, fetched the same way into target/debian/debs/), for
`cargo xtask run --debian-root` (docs/vscsi.md, \"A Debian root\").";

/// The kernel's metapackage: it depends on the current ABI's image package.
const KERNEL_META: &str = "linux-image-powerpc64le";
const BUSYBOX: &str = "busybox-static";
pub(crate) const ARCH: &str = "ppc64el";
/// The command line `run --linux` starts with; `--append` adds to it.
pub const BASE_CMDLINE: &str = "console=hvc0";
/// Partition memory of `run --linux` without `--memory`.
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// The line /init prints first.
pub const USERSPACE_MARKER: &str = "PAPRIKA-LINUX userspace reached";

/// What `fetch` leaves behind.
#[derive(Debug, Clone)]
pub struct Linux {
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// `uname -r`, e.g. 6.1.0-35-powerpc64le.
    pub release: String,
}

pub fn main(args: LinuxArgs) -> Result<i32> {
    match args.command {
        Some(LinuxCommand::Fetch { refresh }) => {
            let l = fetch(refresh)?;
            println!(
                "Linux {}: {} and {}; boot it with `cargo xtask run --linux`",
                l.release,
                rel(&l.vmlinux),
                rel(&l.initramfs)
            );
            Ok(0)
        }
        Some(LinuxCommand::DebianRoot { refresh }) => {
            crate::debian::build(refresh)?;
            Ok(0)
        }
        None => {
            crate::cli::print_help_of("linux")?;
            Ok(0)
        }
    }
}

/// target/linux
pub fn dir() -> PathBuf {
    repo_root().join("target").join("linux")
}

/// `path` relative to the repository when it is inside it.
pub(crate) fn rel(path: &Path) -> String {
    let root = repo_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The command line of `run --linux`: `console=hvc0` then `append`.
pub fn cmdline(append: Option<&str>) -> String {
    match append.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => format!("{BASE_CMDLINE} {a}"),
        None => BASE_CMDLINE.to_string(),
    }
}

/// Fetches (when not cached), extracts and builds everything; see ABOUT.
pub fn fetch(refresh: bool) -> Result<Linux> {
    let top = dir();
    let debs = top.join("debs");
    std::fs::create_dir_all(&debs).context(|| format!("creating {}", debs.display()))?;

    // Stages: the packages, unpacking them, the kernel, the initramfs.
    let progress = crate::progress::Progress::new("linux fetch", 4);
    progress.set_message("packages (apt)");
    let cached_kernel = newest_deb(&debs, is_kernel_package)?;
    let cached_busybox = newest_deb(&debs, |n| n == BUSYBOX)?;
    let (kernel_deb, busybox_deb) = match (cached_kernel, cached_busybox) {
        (Some(k), Some(b)) if !refresh => {
            println!(
                "cached: {} and {} (`cargo xtask linux fetch --refresh` looks for newer ones)",
                rel(&k),
                rel(&b)
            );
            (k, b)
        }
        _ => download(&debs)?,
    };

    progress.inc();
    progress.set_message("unpacking (dpkg-deb)");
    let extract = top.join("extract");
    let kernel_root = extract_deb(&kernel_deb, &extract)?;
    let busybox_root = extract_deb(&busybox_deb, &extract)?;

    progress.inc();
    progress.set_message("the kernel");
    // The kernel.
    let (image, release) = find_kernel_image(&kernel_root)?;
    let data = std::fs::read(&image).context(|| format!("reading {}", image.display()))?;
    match classify(&data) {
        Image::Elf64(Endian::Little) => {}
        other => {
            return Err(failed!(
                "{} is {}, not the ppc64le vmlinux ELF the hypervisor loads",
                rel(&image),
                other.describe()
            ))
        }
    }
    let vmlinux = top.join("vmlinux");
    write_if_changed(&vmlinux, &data)?;
    let banner = linux_banner(&data).unwrap_or_default();
    let config_src = kernel_root.join("boot").join(format!("config-{release}"));
    let config = std::fs::read_to_string(&config_src).unwrap_or_default();
    if !config.is_empty() {
        write_if_changed(&top.join("config"), config.as_bytes())?;
    }
    let mut version = format!("release: {release}\npackage: {}\n", deb_label(&kernel_deb));
    if !banner.is_empty() {
        let _ = writeln!(version, "banner: {banner}");
    }
    write_if_changed(&top.join("version"), version.as_bytes())?;
    println!(
        "kernel {release}: {} ({:.1} MiB) from {}",
        rel(&vmlinux),
        mib(data.len() as u64),
        rel(&image)
    );
    if !banner.is_empty() {
        println!("  {banner}");
    }
    if !config.is_empty() {
        println!("  {}", describe_config(&config));
        if config_value(&config, "CONFIG_BLK_DEV_INITRD") != Some("y") {
            return Err(failed!(
                "{release} is built without CONFIG_BLK_DEV_INITRD: it cannot use an initramfs"
            ));
        }
    }

    progress.inc();
    progress.set_message("the initramfs");
    // busybox and the initramfs.
    let busybox_path = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| busybox_root.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| failed!("no bin/busybox in {}", rel(&busybox_root)))?;
    let busybox =
        std::fs::read(&busybox_path).context(|| format!("reading {}", busybox_path.display()))?;
    if classify(&busybox) != Image::Elf64(Endian::Little) {
        return Err(failed!(
            "{} is {}, not a ppc64le ELF",
            rel(&busybox_path),
            classify(&busybox).describe()
        ));
    }
    let mut entries = initramfs_entries(busybox);
    push_optional_modules(&mut entries, &kernel_root, &release);
    push_modules(&mut entries, &kernel_root, &release, "disk", DISK_MODULES)?;
    push_modules(&mut entries, &kernel_root, &release, "pci", PCI_MODULES)?;
    entries.extend(vmm_entries(&entries));
    let archive = write_newc(&entries);
    let initramfs = top.join("initramfs.cpio");
    write_if_changed(&initramfs, &archive)?;
    println!(
        "initramfs {} ({:.1} MiB): busybox from {}, /dev/console, /dev/hvc0, /init \
         (prints `{USERSPACE_MARKER}`)",
        rel(&initramfs),
        mib(archive.len() as u64),
        deb_label(&busybox_deb)
    );

    check_bundle_fits(data.len() as u64, archive.len() as u64)?;
    Ok(Linux {
        vmlinux,
        initramfs,
        release,
    })
}

pub(crate) fn mib(n: u64) -> f64 {
    n as f64 / (1 << 20) as f64
}

/// Fails when kernel and initramfs cannot fit one boot bundle.
fn check_bundle_fits(kernel: u64, initramfs: u64) -> Result<()> {
    // Headers, names, the manifest: a few KiB at most.
    let total = kernel + initramfs + 16 * 1024;
    if total > partitions::MAX_BUNDLE_BYTES {
        return Err(failed!(
            "kernel ({:.1} MiB) plus initramfs ({:.1} MiB) do not fit the {} MiB boot \
             bundle QEMU powernv loads as -initrd",
            mib(kernel),
            mib(initramfs),
            partitions::MAX_BUNDLE_BYTES >> 20
        ));
    }
    println!(
        "boot bundle: about {:.1} of {} MiB",
        mib(total),
        partitions::MAX_BUNDLE_BYTES >> 20
    );
    Ok(())
}

fn write_if_changed(path: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(());
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, data).context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------
// apt

pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub(crate) fn apt_get(args: &[&str]) -> Cmd {
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args)
}

/// Makes dpkg/apt know ppc64el packages: adds the architecture (nothing else)
/// and updates the package lists. Returns whether it did.
pub(crate) fn ensure_foreign_arch() -> Result<bool> {
    let out = Cmd::new("dpkg")
        .arg("--print-foreign-architectures")
        .capture()?;
    let Some((status, text)) = out else {
        return Err(failed!(
            "no `dpkg`: fetching Debian's kernel needs a Debian machine with apt"
        ));
    };
    if !status.success() {
        return Err(failed!(
            "`dpkg --print-foreign-architectures` failed: {text}"
        ));
    }
    if has_arch(&text, ARCH) {
        return Ok(false);
    }
    if !is_root() {
        return Err(failed!(
            "apt does not know {ARCH} packages yet, and adding the architecture needs \
             root. As root run:\n  dpkg --add-architecture {ARCH}\n  apt-get update\n\
             then `cargo xtask linux fetch` again (it needs no root after that)"
        ));
    }
    println!("adding {ARCH} to dpkg's foreign architectures (no package is installed)");
    Cmd::new("dpkg").args(["--add-architecture", ARCH]).run()?;
    apt_update()?;
    Ok(true)
}

/// `apt-get update`. A failure is only a warning: a mirror mid-sync may fail one
/// index (say, the security suite's) while the rest are fine; whether apt knows
/// the packages is checked next.
fn apt_update() -> Result<()> {
    let status = apt_get(&["update"]).status()?;
    if !status.success() {
        println!(
            "warning: `apt-get update` failed ({}); going on with the package lists apt has",
            crate::cmd::describe_status(status)
        );
    }
    Ok(())
}

/// Whether `dpkg --print-foreign-architectures` output lists `arch`.
pub fn has_arch(text: &str, arch: &str) -> bool {
    text.split_whitespace().any(|a| a == arch)
}

/// `apt-cache depends linux-image-powerpc64le:ppc64el`, else `apt-cache search`.
fn resolve_kernel_package() -> Result<Option<String>> {
    let depends = Cmd::new("apt-cache")
        .args(["depends", &format!("{KERNEL_META}:{ARCH}")])
        .capture()?;
    if let Some((status, text)) = &depends {
        if status.success() {
            if let Some(name) = kernel_from_depends(text) {
                return Ok(Some(name));
            }
        }
    }
    let search = Cmd::new("apt-cache")
        .args([
            "search",
            "--names-only",
            r"^linux-image-[0-9.]+-[0-9]+-powerpc64le$",
        ])
        .capture()?;
    Ok(match search {
        Some((status, text)) if status.success() => kernel_from_search(&text),
        _ => None,
    })
}

/// Resolves and downloads both packages into `debs`; returns their files.
fn download(debs: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut updated = ensure_foreign_arch()?;
    let kernel = loop {
        match resolve_kernel_package()? {
            Some(k) => break k,
            None if !updated && is_root() => {
                println!("apt knows no {ARCH} kernel package; updating the package lists");
                apt_update()?;
                updated = true;
            }
            None => {
                return Err(failed!(
                    "apt knows no {ARCH} kernel package ({KERNEL_META}:{ARCH} depends on \
                     none, `apt-cache search` finds none): run `apt-get update` as root{}",
                    if is_root() {
                        " and check the apt sources list Debian's main component"
                    } else {
                        ""
                    }
                ))
            }
        }
    };
    println!("kernel package: {kernel}:{ARCH}");
    let mut paths = Vec::new();
    for package in [kernel.as_str(), BUSYBOX] {
        let found = |debs: &Path| -> Result<Option<PathBuf>> { newest_deb(debs, |n| n == package) };
        // Only what apt calls the candidate counts as cached.
        let want = candidate_file(package)?;
        let cached = match &want {
            Some(file) => Some(debs.join(file)).filter(|p| p.is_file()),
            None => found(debs)?,
        };
        let path = match cached {
            Some(p) => {
                println!("cached: {}", rel(&p));
                p
            }
            None => {
                // As root, apt's download sandbox user cannot write target/.
                let mut download = apt_get(&[]);
                if is_root() {
                    download = download.args(["-o", "APT::Sandbox::User=root"]);
                }
                let status = download
                    .args(["download", &format!("{package}:{ARCH}")])
                    .current_dir(debs)
                    .status()?;
                if !status.success() {
                    return Err(failed!(
                        "`apt-get download {package}:{ARCH}` failed ({}): no network?",
                        crate::cmd::describe_status(status)
                    ));
                }
                match &want {
                    Some(file) if debs.join(file).is_file() => debs.join(file),
                    _ => found(debs)?.ok_or_else(|| {
                        failed!(
                            "`apt-get download {package}:{ARCH}` left no {package}_*_{ARCH}.deb \
                             in {}",
                            rel(debs)
                        )
                    })?,
                }
            }
        };
        paths.push(path);
    }
    let busybox = paths.pop().unwrap_or_default();
    let kernel = paths.pop().unwrap_or_default();
    Ok((kernel, busybox))
}

/// The file name `apt-get download` gives the candidate of `package`, from
/// `apt-cache policy` (None when apt does not say).
pub(crate) fn candidate_file(package: &str) -> Result<Option<String>> {
    let out = Cmd::new("apt-cache")
        .args(["policy", &format!("{package}:{ARCH}")])
        .capture()?;
    Ok(match out {
        Some((status, text)) if status.success() => {
            policy_candidate(&text).map(|v| deb_file_name(package, &v, ARCH))
        }
        _ => None,
    })
}

/// The `Candidate:` version of `apt-cache policy` output.
pub fn policy_candidate(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .find(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string)
}

/// apt's file name for a package version: `name_version_arch.deb`, with the
/// epoch's colon written `%3a`.
pub fn deb_file_name(package: &str, version: &str, arch: &str) -> String {
    format!("{package}_{}_{arch}.deb", version.replace(':', "%3a"))
}

/// linux-image-<x.y.z>-<abi>-powerpc64le (not the -dbg or -unsigned variants).
pub fn is_kernel_package(name: &str) -> bool {
    kernel_abi(name).is_some()
}

/// The (kernel version, ABI) of a kernel image package name, to pick the newest.
fn kernel_abi(name: &str) -> Option<(Vec<u32>, u32)> {
    let rest = name.strip_prefix("linux-image-")?;
    let rest = rest.strip_suffix("-powerpc64le")?;
    let (version, abi) = rest.rsplit_once('-')?;
    let abi: u32 = abi.parse().ok()?;
    let version: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (version.len() >= 2).then_some((version, abi))
}

/// The kernel image package among the `Depends:` of `apt-cache depends
/// linux-image-powerpc64le:ppc64el` (the newest if it names several).
pub fn kernel_from_depends(text: &str) -> Option<String> {
    let names = text.lines().filter_map(|line| {
        let line = line.trim().trim_start_matches('|');
        let dep = line.strip_prefix("Depends:")?.trim();
        let name = dep.split_once(':').map_or(dep, |(n, _)| n);
        let name = name.trim_matches(|c| c == '<' || c == '>');
        Some(name.to_string())
    });
    newest_kernel(names)
}

/// The newest kernel image package in `apt-cache search` output
/// (`name - description` lines).
pub fn kernel_from_search(text: &str) -> Option<String> {
    newest_kernel(
        text.lines()
            .filter_map(|l| l.split_once(" - ").map(|(n, _)| n.trim().to_string())),
    )
}

fn newest_kernel(names: impl Iterator<Item = String>) -> Option<String> {
    names
        .filter_map(|n| kernel_abi(&n).map(|k| (k, n)))
        .max()
        .map(|(_, n)| n)
}

/// The package name and version of a `.deb` file name.
pub fn parse_deb_name(file: &str) -> Option<(&str, &str, &str)> {
    let stem = file.strip_suffix(".deb")?;
    let mut parts = stem.splitn(3, '_');
    let (name, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    (!name.is_empty() && !version.is_empty() && !arch.is_empty()).then_some((name, version, arch))
}

/// The newest ppc64el `.deb` in `dir` whose package name satisfies `want`.
pub(crate) fn newest_deb(dir: &Path, want: impl Fn(&str) -> bool) -> Result<Option<PathBuf>> {
    let mut found: Vec<(PathBuf, std::time::SystemTime)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed!("reading {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((package, _, arch)) = parse_deb_name(name) else {
            continue;
        };
        if arch == ARCH && want(package) {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            found.push((entry.path(), modified));
        }
    }
    // The kernel's ABI first, then the most recently downloaded.
    found.sort_by_key(|(path, modified)| {
        let abi = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_deb_name)
            .and_then(|(n, _, _)| kernel_abi(n));
        (abi, *modified)
    });
    Ok(found.pop().map(|(p, _)| p))
}

/// `name version` of a .deb file, for messages.
pub(crate) fn deb_label(deb: &Path) -> String {
    let file = deb.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match parse_deb_name(file) {
        Some((n, v, a)) => format!("{n}:{a} {}", v.replace("%3a", ":")),
        None => file.to_string(),
    }
}

/// Unpacks `deb` into `<extract>/<file stem>/` unless that was done before.
fn extract_deb(deb: &Path, extract: &Path) -> Result<PathBuf> {
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| failed!("odd file name {}", deb.display()))?;
    let out = extract.join(stem);
    let done = out.join(".xtask-extracted");
    if done.is_file() {
        return Ok(out);
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).context(|| format!("removing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).context(|| format!("creating {}", out.display()))?;
    Cmd::new("dpkg-deb").arg("-x").arg(deb).arg(&out).run()?;
    std::fs::write(&done, b"").context(|| format!("writing {}", done.display()))?;
    Ok(out)
}

/// boot/vmlinux-<release> (else boot/vmlinuz-<release>, to say what it is).
fn find_kernel_image(root: &Path) -> Result<(PathBuf, String)> {
    let boot = root.join("boot");
    let mut images: Vec<(u8, PathBuf, String)> = Vec::new();
    for entry in std::fs::read_dir(&boot).context(|| format!("reading {}", boot.display()))? {
        let entry = entry.context(|| format!("reading {}", boot.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        for (rank, prefix) in [(0u8, "vmlinux-"), (1, "vmlinuz-")] {
            if let Some(release) = name.strip_prefix(prefix) {
                images.push((rank, entry.path(), release.to_string()));
            }
        }
    }
    images.sort();
    images
        .into_iter()
        .next()
        .map(|(_, p, r)| (p, r))
        .ok_or_else(|| failed!("no boot/vmlinux-* or boot/vmlinuz-* in {}", rel(root)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// What a kernel image file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// A 64-bit PowerPC ELF (vmlinux).
    Elf64(Endian),
    /// The powerpc boot wrapper (zImage*): an ELF that carries the kernel inside.
    BootWrapper,
    /// Another ELF (machine, class).
    OtherElf(u16, u8),
    Gzip,
    Xz,
    Zstd,
    Unknown,
}

impl Image {
    pub fn describe(self) -> String {
        match self {
            Image::Elf64(Endian::Little) => "a ppc64le ELF".into(),
            Image::Elf64(Endian::Big) => "a big-endian ppc64 ELF".into(),
            Image::BootWrapper => {
                "a zImage (the boot wrapper, with the kernel compressed inside)".into()
            }
            Image::OtherElf(machine, class) => {
                format!("an ELF for machine {machine} (class {class}), not PowerPC64")
            }
            Image::Gzip => "gzip-compressed".into(),
            Image::Xz => "xz-compressed".into(),
            Image::Zstd => "zstd-compressed".into(),
            Image::Unknown => "not an ELF file".into(),
        }
    }
}

/// Looks at the magic numbers (and for the boot wrapper, its section names).
pub fn classify(data: &[u8]) -> Image {
    const EM_PPC64: u16 = 21;
    if data.starts_with(b"\x1f\x8b") {
        return Image::Gzip;
    }
    if data.starts_with(b"\xfd7zXZ\0") {
        return Image::Xz;
    }
    if data.starts_with(b"\x28\xb5\x2f\xfd") {
        return Image::Zstd;
    }
    if data.len() < 64 || !data.starts_with(b"\x7fELF") {
        return Image::Unknown;
    }
    let class = data[4];
    let (endian, machine) = match data[5] {
        1 => (Endian::Little, u16::from_le_bytes([data[0x12], data[0x13]])),
        2 => (Endian::Big, u16::from_be_bytes([data[0x12], data[0x13]])),
        _ => return Image::Unknown,
    };
    if class != 2 || machine != EM_PPC64 {
        return Image::OtherElf(machine, class);
    }
    // arch/powerpc/boot's wrapper keeps the kernel in `.kernel:vmlinux.strip`.
    if contains(data, b".kernel:vmlinux") {
        return Image::BootWrapper;
    }
    Image::Elf64(endian)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kernel's `Linux version ...` banner, when the image holds it in clear.
pub fn linux_banner(data: &[u8]) -> Option<String> {
    let needle = b"Linux version ";
    let at = data.windows(needle.len()).position(|w| w == needle)?;
    let end = data[at..]
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .map_or(data.len(), |n| at + n);
    Some(String::from_utf8_lossy(&data[at..end]).trim().to_string())
}

/// `CONFIG_X=value` in a kernel .config, `None` when unset.
pub fn config_value<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .map(|v| v.trim_matches('"'))
    })
}

/// One line on the options that matter here.
fn describe_config(config: &str) -> String {
    let keys = [
        "CONFIG_BLK_DEV_INITRD",
        "CONFIG_RD_GZIP",
        "CONFIG_DEVTMPFS",
        "CONFIG_HVC_CONSOLE",
        "CONFIG_PPC_RADIX_MMU",
        "CONFIG_PPC_XICS",
        "CONFIG_PPC_XIVE_SPAPR",
    ];
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{}={}",
                k.trim_start_matches("CONFIG_"),
                config_value(config, k).unwrap_or("n")
            )
        })
        .collect();
    format!("config: {}", parts.join(" "))
}

// ---------------------------------------------------------------------------
// The initramfs

/// PID 1. `#!/bin/sh` is the busybox link in the archive.
pub const INIT: &str = r#"#!/bin/sh
# /init of the initramfs `cargo xtask linux fetch` builds (xtask/src/linux.rs).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev || echo "PAPRIKA-LINUX no devtmpfs; the archive's /dev stays"

cmdline=" $(cat /proc/cmdline) "
# paprika.name=NAME: the partition's name, carried by the marker lines (and the
# hostname) so that partitions sharing a console can be told apart.
name=
for word in $cmdline; do
    case "$word" in
    paprika.name=*) name=${word#paprika.name=} ;;
    esac
done
tag=
if [ -n "$name" ]; then
    tag=" name=$name"
    hostname "$name"
fi

echo "PAPRIKA-LINUX userspace reached$tag"
echo "--- uname -a"
uname -a
echo "--- /proc/cpuinfo"
cat /proc/cpuinfo
echo "--- /proc/interrupts"
cat /proc/interrupts
irqchip=unknown
for chip in XIVE XICS; do
    if grep -qw "$chip" /proc/interrupts; then
        irqchip=$chip
        break
    fi
done
echo "PAPRIKA-LINUX interrupt-controller: $irqchip$tag"
echo "--- date"
date
echo "PAPRIKA-LINUX date epoch=$(date +%s)$tag"
echo "---"

# Virtual Ethernet (docs/vio.md): with an l-lan in the device tree, ibmveth.ko
# loads; paprika.ip=ADDR/PREFIX configures eth0 (paprika.mtu=N first).
# paprika.veth=server|client|isolated with paprika.peer=IP: the checks of the
# veth scenario (below, test mode).
ip_addr=
mtu=
veth=
peer=
for word in $cmdline; do
    case "$word" in
    paprika.ip=*) ip_addr=${word#paprika.ip=} ;;
    paprika.mtu=*) mtu=${word#paprika.mtu=} ;;
    paprika.veth=*) veth=${word#paprika.veth=} ;;
    paprika.peer=*) peer=${word#paprika.peer=} ;;
    esac
done
if ls -d /proc/device-tree/vdevice/l-lan@* >/dev/null 2>&1; then
    if insmod /lib/modules/ibmveth.ko; then
        echo "PAPRIKA-LINUX net: ibmveth loaded$tag"
    else
        echo "PAPRIKA-LINUX net: ibmveth did not load$tag"
    fi
    if [ -n "$ip_addr" ]; then
        [ -n "$mtu" ] && ip link set eth0 mtu "$mtu"
        ip link set eth0 up
        ip addr add "$ip_addr" dev eth0
        echo "PAPRIKA-LINUX net: eth0 $ip_addr mtu $(cat /sys/class/net/eth0/mtu)$tag"
    fi
fi

case "$cmdline" in
*" paprika.root=1 "* | *" root=/dev/sd"*)
    # docs/vscsi.md: the root file system is a vscsi disk (an ext4 image given
    # with `cargo xtask run --disk FILE`, or the Debian root of `cargo xtask
    # run --debian-root`): load the vscsi and ext4 modules, mount it and hand
    # over to its init (`init=PATH`, else /sbin/init). `root=/dev/sdX` names the
    # disk; `paprika.root=1` alone takes SCSI target 0.
    rootdev=
    newinit=/sbin/init
    for word in $cmdline; do
        case "$word" in
        root=/dev/sd*) rootdev=${word#root=} ;;
        init=/*) newinit=${word#init=} ;;
        esac
    done
    for m in $(cat /lib/modules/disk.order); do
        insmod /lib/modules/disk/$m
    done
    n=0
    if [ -n "$rootdev" ]; then
        while [ ! -b "$rootdev" ] && [ $n -lt 60 ]; do
            sleep 1
            n=$((n + 1))
        done
        root=$rootdev
    else
        while ! ls /sys/bus/scsi/devices/0:0:0:0/block >/dev/null 2>&1 && [ $n -lt 60 ]; do
            sleep 1
            n=$((n + 1))
        done
        sleep 1
        root=/dev/$(ls /sys/bus/scsi/devices/0:0:0:0/block 2>/dev/null)
    fi
    mkdir -p /newroot
    if mount -t ext4 $root /newroot && [ -x "/newroot$newinit" ]; then
        echo "PAPRIKA-LINUX root: $root, switching to its $newinit$tag"
        for d in dev proc sys; do
            if [ -d /newroot/$d ]; then
                mount --move /$d /newroot/$d
            else
                umount /$d
            fi
        done
        exec switch_root /newroot "$newinit"
    fi
    echo "PAPRIKA-LINUX root: no ext4 with $newinit on $root; a shell instead$tag"
    setsid cttyhack sh -l
    poweroff -f
    ;;
*" paprika.diskbench=1 "*)
    # cargo xtask bench (docs/benchmarks.md, docs/vscsi.md): the vscsi modules,
    # then the first SCSI disk read sequentially (1 MiB blocks) and at 4 KiB
    # random offsets (one dd each, readahead off, caches dropped), timed with
    # /proc/uptime; the same /init runs under -M pseries with spapr-vscsi.
    for m in $(cat /lib/modules/disk.order); do
        insmod /lib/modules/disk/$m
    done
    n=0
    while ! ls /sys/bus/scsi/devices/0:0:0:0/block >/dev/null 2>&1 && [ $n -lt 60 ]; do
        sleep 1
        n=$((n + 1))
    done
    sleep 1
    dev=/dev/$(ls /sys/bus/scsi/devices/0:0:0:0/block)
    blockdev --setra 0 $dev
    ms() {
        read up _ < /proc/uptime
        c=${up#*.}
        c=${c#0}
        echo $(( ${up%.*} * 1000 + 10 * c ))
    }
    sync
    echo 3 > /proc/sys/vm/drop_caches
    mib=$(( $(blockdev --getsize64 $dev) >> 20 ))
    t0=$(ms)
    dd if=$dev of=/dev/null bs=1M count=$mib 2>/dev/null
    t1=$(ms)
    echo 3 > /proc/sys/vm/drop_caches
    reads=400
    blocks=$(( mib * 256 ))
    i=0
    t2=$(ms)
    while [ $i -lt $reads ]; do
        dd if=$dev of=/dev/null bs=4k count=1 skip=$(( (i * 7919 + 13) % blocks )) 2>/dev/null
        i=$((i + 1))
    done
    t3=$(ms)
    # The process cost alone: the same dd processes on /dev/zero.
    i=0
    t4=$(ms)
    while [ $i -lt $reads ]; do
        dd if=/dev/zero of=/dev/null bs=4k count=1 skip=$(( (i * 7919 + 13) % blocks )) 2>/dev/null
        i=$((i + 1))
    done
    t5=$(ms)
    echo "PAPRIKA-LINUX diskbench seq_bytes=$((mib << 20)) seq_ms=$((t1 - t0)) rand_reads=$reads rand_ms=$((t3 - t2)) proc_ms=$((t5 - t4))"
    echo "PAPRIKA-LINUX diskbench done"
    poweroff -f
    ;;
*" paprika.diskbench="*)
    # cargo xtask bench, pass-through disks (docs/benchmarks.md):
    # paprika.diskbench=vda,nvme0n1 loads the PCI drivers, then reads each
    # named disk whole paprika.diskpasses=N times (default 8) with 1 MiB dd,
    # O_DIRECT when dd can (else caches dropped before each pass), timed in
    # microseconds (/proc/timer_list's `now at`, else /proc/uptime),
    # counting the block layer's reads (an nvme head's on its path disk) and
    # the device's interrupts; then its md5. Around each disk's passes a
    # `mark` line, after which /init waits (at most 60 s) for a line on the
    # console: the bench types Ctrl-A d first on Paprika, whose vCPU dump
    # counts exits.
    devs=
    passes=8
    for word in $cmdline; do
        case "$word" in
        paprika.diskbench=*) devs=${word#paprika.diskbench=} ;;
        paprika.diskpasses=*) passes=${word#paprika.diskpasses=} ;;
        esac
    done
    for m in $(cat /lib/modules/pci.order); do
        insmod /lib/modules/pci/$m || echo "PAPRIKA-LINUX insmod $m: failed"
    done
    us() {
        if [ -r /proc/timer_list ]; then
            while read -r a b c _; do
                if [ "$a $b" = "now at" ]; then
                    echo $((c / 1000))
                    return
                fi
            done < /proc/timer_list
        fi
        read up _ < /proc/uptime
        c=${up#*.}
        c=${c#0}
        echo $(( ${up%.*} * 1000000 + c * 10000 ))
    }
    irqs() {
        awk -v n="$1" 'NR == 1 { c = NF } NR > 1 && index($0, n) { for (i = 2; i <= c + 1; i++) s += $i } END { print s + 0 }' /proc/interrupts
    }
    mark() {
        echo "PAPRIKA-LINUX diskbench mark $1"
        read -t 60 -r _ || true
    }
    for dev in $(echo "$devs" | tr , ' '); do
        n=0
        while [ ! -b /dev/$dev ] && [ $n -lt 60 ]; do
            sleep 1
            n=$((n + 1))
        done
        if [ ! -b /dev/$dev ]; then
            echo "PAPRIKA-LINUX diskbench dev=$dev missing"
            continue
        fi
        case "$dev" in
        nvme*) irq=${dev%n*}q ;;
        *) irq=$(basename "$(readlink -f /sys/block/$dev/device)")-req ;;
        esac
        mib=$(( $(blockdev --getsize64 /dev/$dev) >> 20 ))
        flag=iflag=direct
        dd if=/dev/$dev of=/dev/null bs=1M count=1 $flag 2>/dev/null || flag=
        mode=${flag:+direct}
        st=/sys/block/$dev/stat
        for f in /sys/class/nvme/${dev%n*}/${dev%n*}c*n${dev##*n}/stat; do
            [ -f "$f" ] && st=$f
        done
        set -- $(cat $st)
        r0=$1 s0=$3 i0=$(irqs "$irq")
        mark $dev-start
        times=
        p=0
        while [ $p -lt $passes ]; do
            [ -z "$flag" ] && sync && echo 3 > /proc/sys/vm/drop_caches
            t0=$(us)
            dd if=/dev/$dev of=/dev/null bs=1M count=$mib $flag 2>/dev/null
            t1=$(us)
            times="$times${times:+,}$((t1 - t0))"
            p=$((p + 1))
        done
        mark $dev-end
        set -- $(cat $st)
        r1=$1 s1=$3 i1=$(irqs "$irq")
        sum=$(md5sum < /dev/$dev | cut -d' ' -f1)
        echo "PAPRIKA-LINUX diskbench dev=$dev bytes=$((mib << 20)) mode=${mode:-cached} us=$times reads=$((r1 - r0)) sectors=$((s1 - s0)) irqs=$((i1 - i0)) irq=$irq md5=$sum"
    done
    echo "PAPRIKA-LINUX diskbench done"
    poweroff -f
    ;;
*" paprika.test=1 "*)
    failed=0
    check() {
        what=$1
        shift
        if "$@" >/dev/null 2>&1; then
            echo "PAPRIKA-LINUX check $what: ok"
        else
            echo "PAPRIKA-LINUX check $what: FAILED"
            failed=1
        fi
    }
    # paprika.mmu=hash: a hash-MMU partition (manifest mmu = "hash").
    mmu=Radix
    case "$cmdline" in
    *" paprika.mmu=hash "*) mmu=Hash ;;
    esac
    if [ "$mmu" = Radix ]; then
        check radix-mmu grep -q '^MMU[[:space:]]*:[[:space:]]*Radix' /proc/cpuinfo
    else
        check hash-mmu grep -q '^MMU[[:space:]]*:[[:space:]]*Hash' /proc/cpuinfo
        # The kernel resizes its hashed page table when asked through debugfs
        # (as it does on memory hot-add): H_RESIZE_HPT_PREPARE, then
        # H_RESIZE_HPT_COMMIT under stop_machine. One order up; the checks
        # below run on the new table.
        mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
        hpt=/sys/kernel/debug/powerpc/hpt_order
        order=$(cat $hpt 2>/dev/null)
        if [ -n "$order" ]; then
            up=$((order + 1))
            check hpt-resize sh -c "echo $up > $hpt && [ \"\$(cat $hpt)\" = $up ]"
            echo "PAPRIKA-LINUX hpt-order: $order -> $(cat $hpt)$tag"
        else
            check hpt-resize false
        fi
    fi
    check ppc64le [ "$(uname -m)" = ppc64le ]
    check processors grep -q '^processor' /proc/cpuinfo
    check interrupts grep -q CPU0 /proc/interrupts
    check console-hvc0 grep -qw hvc0 /proc/consoles
    check date date
    # After 2020-09-13: the clock was set (from RTAS get-time-of-day), not 1970.
    check clock-set [ "$(date +%s)" -gt 1600000000 ]
    # paprika.kvm=1: KVM-HV loads (the partition offers nested virtualization).
    case "$cmdline" in
    *" paprika.kvm=1 "*)
        check kvm-hv-loads sh -c 'insmod /lib/modules/kvm.ko && insmod /lib/modules/kvm-hv.ko'
        check dev-kvm [ -c /dev/kvm ]
        dmesg | grep -i 'kvm'
        # paprika.l2=1 as well: the mini VMM runs a test guest as L2 (its
        # console lines come out as `[l2] ...`) to its power-off.
        case "$cmdline" in
        *" paprika.l2=1 "*)
            echo "--- paprika-vmm /lib/paprika/guest-timer.elf"
            if /bin/paprika-vmm /lib/paprika/guest-timer.elf; then
                echo "PAPRIKA-LINUX check kvm-l2-guest: ok"
            else
                echo "PAPRIKA-LINUX check kvm-l2-guest: FAILED (paprika-vmm exit status $?)"
                failed=1
            fi
            ;;
        esac
        ;;
    esac
    # The veth scenario (paprika.veth=...): ping, MTU 9000, 64 MiB over TCP
    # with busybox nc, md5 compared; the isolated partition hears nothing.
    uptime_cs() {
        read -r up _ </proc/uptime
        echo "${up%.*}${up#*.}"
    }
    wait_ping() {
        n=0
        until ping -c 1 -W 2 "$peer" >/dev/null 2>&1; do
            n=$((n + 1))
            [ "$n" -lt 90 ] || return 1
        done
    }
    no_loss() {
        ping "$@" "$peer" | tee /tmp/ping.out
        grep -q ' 0% packet loss' /tmp/ping.out
    }
    # ibmveth's interrupt (named after the interface) fired.
    veth_irq() {
        line=$(grep -w eth0 /proc/interrupts)
        echo "PAPRIKA-LINUX veth: /proc/interrupts: $line$tag"
        set -- $line
        [ "${2:-0}" -gt 0 ]
    }
    # After a transfer: the TCP counters that are not zero (/proc/net/snmp
    # Tcp, /proc/net/netstat TcpExt: retransmits, timeouts, delayed ACKs) and
    # the interface's own, to tell a lossy or stalling stream from a slow one.
    net_stats() {
        for f in /proc/net/snmp /proc/net/netstat; do
            awk -v tag="$tag" '$1 == p && ($1 == "Tcp:" || $1 == "TcpExt:") {
                s = ""
                for (i = 2; i <= NF; i++) if ($i != 0) s = s " " h[i] "=" $i
                print "PAPRIKA-LINUX veth-stats: " $1 s tag
            }
            { p = $1; for (i = 2; i <= NF; i++) h[i] = $i }' "$f"
        done
        s=
        for c in rx_packets tx_packets rx_dropped tx_dropped rx_errors; do
            s="$s $c=$(cat /sys/class/net/eth0/statistics/$c)"
        done
        echo "PAPRIKA-LINUX veth-stats: eth0$s$tag"
        echo "PAPRIKA-LINUX veth-stats: irq $(grep -w eth0 /proc/interrupts)$tag"
    }
    # Down and up again (H_FREE_LOGICAL_LAN, H_REGISTER_LOGICAL_LAN), then
    # the peer answers again.
    relink() {
        ip link set eth0 down && ip link set eth0 up && wait_ping
    }
    case "$veth" in
    server)
        check veth-ping-reachable wait_ping
        check veth-ping-no-loss no_loss -c 5 -W 2
        [ -n "$mtu" ] && check veth-ping-jumbo no_loss -c 3 -s 8000 -W 2
        cpu0=$(head -1 /proc/stat)
        got=$(nc -l -p 5001 | md5sum)
        echo "PAPRIKA-LINUX veth-stats: before $cpu0, after $(head -1 /proc/stat)$tag"
        want=$(nc -l -p 5002)
        echo "PAPRIKA-LINUX veth: received md5 ${got%% *}, sent md5 $want$tag"
        check veth-tcp-md5 test -n "$want" -a "${got%% *}" = "$want"
        check veth-irq veth_irq
        net_stats
        ;;
    client)
        check veth-ping-reachable wait_ping
        check veth-ping-no-loss no_loss -c 5 -W 2
        [ -n "$mtu" ] && check veth-ping-jumbo no_loss -c 3 -s 8000 -W 2
        rtt=$(ping -A -c 30 -W 2 "$peer" | tail -1)
        echo "PAPRIKA-LINUX veth: ping $rtt$tag"
        check veth-relink relink
        head -c 67108864 /dev/urandom >/tmp/data
        sum=$(md5sum </tmp/data)
        cpu0=$(head -1 /proc/stat)
        t0=$(uptime_cs)
        n=0
        until nc "$peer" 5001 </tmp/data; do
            n=$((n + 1))
            [ "$n" -lt 60 ] || break
            sleep 1
        done
        t1=$(uptime_cs)
        echo "PAPRIKA-LINUX veth: sent 67108864 bytes in $((t1 - t0))0 ms$tag"
        echo "PAPRIKA-LINUX veth-stats: before $cpu0, after $(head -1 /proc/stat)$tag"
        net_stats
        rm -f /tmp/data
        n=0
        until echo "${sum%% *}" | nc "$peer" 5002; do
            n=$((n + 1))
            [ "$n" -lt 60 ] || break
            sleep 1
        done
        ;;
    rsender)
        # The reboot scenario's survivor: starts a transfer, has the receiver
        # reboot mid-way (a word on port 5003), then sends it all again once
        # the receiver is back.
        check veth-ping-reachable wait_ping
        head -c 67108864 /dev/urandom >/tmp/data
        sum=$(md5sum </tmp/data)
        nc "$peer" 5001 </tmp/data &
        first=$!
        sleep 3
        n=0
        until echo reboot | nc "$peer" 5003; do
            n=$((n + 1))
            [ "$n" -lt 60 ] || break
            sleep 1
        done
        echo "PAPRIKA-LINUX veth: asked $peer to reboot mid-transfer$tag"
        kill "$first" 2>/dev/null
        wait "$first" 2>/dev/null
        check veth-peer-back wait_ping
        n=0
        until nc "$peer" 5001 </tmp/data; do
            n=$((n + 1))
            [ "$n" -lt 120 ] || break
            sleep 1
        done
        n=0
        until echo "${sum%% *}" | nc "$peer" 5002; do
            n=$((n + 1))
            [ "$n" -lt 60 ] || break
            sleep 1
        done
        check veth-resent [ "$n" -lt 60 ]
        ;;
    rreceiver)
        # Reboots (reboot -f) when told on port 5003; every boot receives the
        # transfer and compares its md5.
        (nc -l -p 5003 >/dev/null && echo "PAPRIKA-LINUX veth: rebooting mid-transfer$tag" && reboot -f) &
        got=$(nc -l -p 5001 | md5sum)
        want=$(nc -l -p 5002)
        echo "PAPRIKA-LINUX veth: received md5 ${got%% *}, sent md5 $want$tag"
        check veth-tcp-md5 test -n "$want" -a "${got%% *}" = "$want"
        ;;
    isolated)
        # Another VLAN: its peer's address is never answered, and nothing
        # arrives while the others talk (ARP broadcasts, IPv6 multicast, ...).
        check veth-isolated-no-reply sh -c "! ping -c 5 -W 1 $peer"
        sleep 20
        rx=$(cat /sys/class/net/eth0/statistics/rx_packets)
        echo "PAPRIKA-LINUX veth: isolated rx_packets=$rx$tag"
        check veth-isolated-rx-zero [ "$rx" = 0 ]
        ;;
    esac
    # paprika.cpus=N: N processors online.
    for word in $cmdline; do
        case "$word" in
        paprika.cpus=*)
            check cpus-online [ "$(grep -c '^processor' /proc/cpuinfo)" = "${word#paprika.cpus=}" ]
            ;;
        esac
    done
    # paprika.disk=MD5 (docs/vscsi.md): vscsi disks. Target 0 is an ext4
    # image whose /hello.txt has checksum MD5 (xtask computed it). The first
    # boot writes /written.txt there (and, with paprika.nvram=1, a word into
    # /dev/nvram) and reboots the partition; the second boot reads both back.
    # paprika.disk2=MD5: the second disk, read-only, has checksum MD5 as a whole.
    disk=
    disk2=
    nvram=
    for word in $cmdline; do
        case "$word" in
        paprika.disk=*) disk=${word#paprika.disk=} ;;
        paprika.disk2=*) disk2=${word#paprika.disk2=} ;;
        paprika.nvram=1) nvram=1 ;;
        esac
    done
    if [ -n "$disk" ]; then
        for m in $(cat /lib/modules/disk.order); do
            insmod /lib/modules/disk/$m || echo "PAPRIKA-LINUX insmod $m: failed"
        done
        # sd probes asynchronously: find each target's disk by its SCSI
        # address (host 0, channel 0, target N, LUN 0), not by sdX order.
        last=0
        [ -n "$disk2" ] && last=1
        n=0
        while ! ls /sys/bus/scsi/devices/0:0:$last:0/block >/dev/null 2>&1 && [ $n -lt 60 ]; do
            sleep 1
            n=$((n + 1))
        done
        sleep 1
        sda=/dev/$(ls /sys/bus/scsi/devices/0:0:0:0/block 2>/dev/null)
        sdb=/dev/$(ls /sys/bus/scsi/devices/0:0:1:0/block 2>/dev/null)
        check vscsi-disk0 [ -b $sda ]
        mkdir -p /mnt
        check vscsi-mount-ext4 mount -t ext4 $sda /mnt
        check vscsi-file-md5 [ "$(md5sum < /mnt/hello.txt | cut -d' ' -f1)" = "$disk" ]
        word="paprika-nvram-$disk"
        if [ -f /mnt/written.txt ]; then
            check vscsi-write-survives-reboot [ "$(cat /mnt/written.txt)" = "written-$disk" ]
            if [ -n "$nvram" ]; then
                check nvram-survives-reboot [ "$(dd if=/dev/nvram bs=1 skip=61440 count=${#word} 2>/dev/null)" = "$word" ]
            fi
        elif [ "$failed" = 0 ]; then
            echo "written-$disk" > /mnt/written.txt
            sync
            umount /mnt
            if [ -n "$nvram" ]; then
                printf %s "$word" | dd of=/dev/nvram bs=1 seek=61440 conv=notrunc 2>/dev/null
            fi
            echo "PAPRIKA-LINUX disk: written, rebooting$tag"
            reboot -f
            sleep 60
        fi
        if [ -n "$disk2" ]; then
            check vscsi-disk1-md5 [ "$(md5sum < $sdb | cut -d' ' -f1)" = "$disk2" ]
            check vscsi-disk1-read-only sh -c "! dd if=/dev/zero of=$sdb count=1 2>/dev/null"
        fi
        umount /mnt
    fi
    # Passed-through PCI functions (docs/passthrough.md): the logical PHB in
    # the device tree, pseries PCI (RTAS config space, EEH, ibm,change-msi,
    # DDW or the 32-bit TCE window), then the drivers of
    # /lib/modules/pci.order. paprika.ptblk=MD5 / paprika.ptnvme=MD5: the
    # virtio-blk-pci / nvme disk has checksum MD5 as a whole (xtask wrote its
    # pattern); paprika.ptnet=server|client with paprika.ip= and
    # paprika.peer=: an e1000e on a QEMU hub, pinging its peer.
    # paprika.ptreboot=1: the first boot runs the checks, leaves a word in
    # /dev/nvram and reboots (a client first tells its server); the second
    # boot finds the word and runs them again as `<check>-after-reboot`.
    ptblk=
    ptnvme=
    ptnet=
    ptreboot=
    for word in $cmdline; do
        case "$word" in
        paprika.ptblk=*) ptblk=${word#paprika.ptblk=} ;;
        paprika.ptnvme=*) ptnvme=${word#paprika.ptnvme=} ;;
        paprika.ptnet=*) ptnet=${word#paprika.ptnet=} ;;
        paprika.ptreboot=1) ptreboot=1 ;;
        esac
    done
    ptword=paprika-ptreboot
    ptround=
    if [ -n "$ptreboot" ] && [ "$(dd if=/dev/nvram bs=1 skip=62464 count=${#ptword} 2>/dev/null)" = "$ptword" ]; then
        ptround=-after-reboot
        echo "PAPRIKA-LINUX pci: second boot, checking again$tag"
    fi
    # Whether this boot ends in the reboot (only a first boot with no failure).
    pt_rebooting() {
        [ -n "$ptreboot" ] && [ -z "$ptround" ] && [ "$failed" = 0 ]
    }
    # A line of /proc/interrupts naming $1 has a count above 0 on some CPU.
    irq_fired() {
        grep "$1" /proc/interrupts | sed "s/^/PAPRIKA-LINUX pci: irq /;s/\$/$tag/"
        awk -v n="$1" 'NR == 1 { cpus = NF } NR > 1 && index($0, n) { for (i = 2; i <= cpus + 1; i++) if ($i + 0 > 0) f = 1 } END { exit !f }' /proc/interrupts
    }
    wait_block() {
        n=0
        while [ ! -b "$1" ] && [ $n -lt 60 ]; do
            sleep 1
            n=$((n + 1))
        done
        [ -b "$1" ]
    }
    md5_of() {
        md5sum <"$1" | cut -d' ' -f1
    }
    if [ -n "$ptblk$ptnvme$ptnet" ]; then
        for f in /sys/bus/pci/devices/*; do
            [ -e "$f" ] && echo "PAPRIKA-LINUX pci: ${f##*/} $(cat $f/vendor):$(cat $f/device) class $(cat $f/class)$tag"
        done
        check pci-function-found ls -d /sys/bus/pci/devices/*
        for m in $(cat /lib/modules/pci.order); do
            insmod /lib/modules/pci/$m || echo "PAPRIKA-LINUX insmod $m: failed$tag"
        done
        if [ -n "$ptblk" ]; then
            check pt-virtio-blk$ptround wait_block /dev/vda
            sum=$(md5_of /dev/vda)
            echo "PAPRIKA-LINUX pci: /dev/vda md5 $sum$tag"
            check pt-virtio-blk-md5$ptround [ "$sum" = "$ptblk" ]
            check pt-virtio-blk-msix$ptround irq_fired virtio0-req
        fi
        if [ -n "$ptnvme" ]; then
            check pt-nvme$ptround wait_block /dev/nvme0n1
            sum=$(md5_of /dev/nvme0n1)
            echo "PAPRIKA-LINUX pci: /dev/nvme0n1 md5 $sum$tag"
            check pt-nvme-md5$ptround [ "$sum" = "$ptnvme" ]
            check pt-nvme-msix$ptround irq_fired nvme0q1
        fi
        if [ -n "$ptnet" ]; then
            n=0
            while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 60 ]; do
                sleep 1
                n=$((n + 1))
            done
            check pt-e1000e$ptround [ -e /sys/class/net/eth0 ]
            ip link set eth0 up
            ip addr add "$ip_addr" dev eth0
            echo "PAPRIKA-LINUX net: eth0 $ip_addr (e1000e)$tag"
            # Waits up to $1 tries (2 s each) for a first reply, then 5 of 5.
            pt_ping() {
                n=0
                until ping -c 1 -W 2 "$peer" >/dev/null 2>&1; do
                    n=$((n + 1))
                    [ "$n" -lt "$1" ] || return 1
                done
                ping -c 5 -W 2 "$peer" >/tmp/ping.out 2>&1
                grep -q '5 packets received' /tmp/ping.out
            }
            ping_report() {
                grep -E 'transmitted|round-trip' /tmp/ping.out 2>/dev/null | sed "s/^/PAPRIKA-LINUX ping $peer: /;s/\$/$tag/"
            }
            check pt-e1000e-ping$ptround pt_ping 60
            ping_report
            check pt-e1000e-msix$ptround irq_fired eth0
            # The server stays until the client says it is done (port 5001),
            # so neither powers off while the other still pings. A client
            # about to reboot says `reboot`: the server then waits for it to
            # come back and pings it again.
            case "$ptnet" in
            server)
                while :; do
                    said=$(nc -l -p 5001)
                    echo "PAPRIKA-LINUX net: peer said $said$tag"
                    [ "$said" = reboot ] || break
                    # Its first boot may still answer for a moment.
                    n=0
                    while ping -c 1 -W 1 "$peer" >/dev/null 2>&1 && [ $n -lt 60 ]; do
                        sleep 1
                        n=$((n + 1))
                    done
                    check pt-e1000e-ping-peer-rebooted pt_ping 300
                    ping_report
                done
                ;;
            client)
                said=done
                pt_rebooting && said=reboot
                n=0
                until echo $said | nc "$peer" 5001; do
                    n=$((n + 1))
                    [ "$n" -lt 60 ] || break
                    sleep 1
                done
                ;;
            esac
        fi
        dmesg | grep -iE 'pci|iommu|dma|eeh|msi|nvme|virtio|vda|e1000e' | sed "s/^/PAPRIKA-LINUX dmesg: /;s/\$/$tag/"
        if pt_rebooting; then
            printf %s "$ptword" | dd of=/dev/nvram bs=1 seek=62464 conv=notrunc 2>/dev/null
            echo "PAPRIKA-LINUX pci: checked, rebooting$tag"
            reboot -f
            sleep 60
        fi
    fi
    # paprika.nvpoweroff=1 (docs/vscsi.md; two QEMU runs on one PNOR flash):
    # the first run writes a word into /dev/nvram and powers the machine off,
    # the second must find it there.
    case "$cmdline" in
    *" paprika.nvpoweroff=1 "*)
        word=paprika-nvram-across-poweroff
        if [ "$(dd if=/dev/nvram bs=1 skip=61440 count=${#word} 2>/dev/null)" = "$word" ]; then
            check nvram-survives-poweroff true
        elif [ "$failed" = 0 ]; then
            printf %s "$word" | dd of=/dev/nvram bs=1 seek=61440 conv=notrunc 2>/dev/null
            echo "PAPRIKA-LINUX nvram: written, powering off$tag"
            poweroff -f
            sleep 60
        fi
        ;;
    esac
    if [ "$failed" = 0 ]; then
        echo "PAPRIKA-LINUX test: passed$tag"
    else
        echo "PAPRIKA-LINUX test: FAILED$tag"
    fi
    # paprika.echo=1 as well: then the shell of the echo mode below.
    case "$cmdline" in
    *" paprika.echo=1 "*)
        echo "PAPRIKA-LINUX echo: shell on hvc0$tag"
        setsid cttyhack sh
        ;;
    esac
    poweroff -f
    ;;
*" paprika.echo=1 "*)
    # For a harness that types on the console (cargo xtask test): a plain shell
    # on hvc0; the harness types a command, then `poweroff -f`.
    echo "PAPRIKA-LINUX echo: shell on hvc0$tag"
    setsid cttyhack sh
    poweroff -f
    ;;
esac

echo "PAPRIKA-LINUX shell on the console; leave it (exit, Ctrl-D) to power off"
setsid cttyhack sh -l
poweroff -f
"#;

/// With `paprika.kvm=1`, the kernel argument by which /init also runs the mini
/// VMM (/bin/paprika-vmm) with /lib/paprika/guest-timer.elf as an L2.
pub const L2_ARG: &str = "paprika.l2=1";

/// The line /init prints before it starts the shell of `paprika.echo=1`.
pub const ECHO_MARKER: &str = "PAPRIKA-LINUX echo: shell on hvc0";
/// `PAPRIKA-LINUX date epoch=<seconds since 1970, the guest's clock>`.
pub const DATE_MARKER: &str = "PAPRIKA-LINUX date epoch=";
/// `PAPRIKA-LINUX interrupt-controller: XICS|XIVE|unknown`, from /proc/interrupts.
pub const IRQCHIP_MARKER: &str = "PAPRIKA-LINUX interrupt-controller: ";
/// The last line of `paprika.test=1` when every check passed.
pub const TEST_PASSED: &str = "PAPRIKA-LINUX test: passed";
/// Every line /init prints for the harness starts with this.
pub const MARKER_PREFIX: &str = "PAPRIKA-LINUX ";

/// Applets linked in the archive, so /init and a shell work before
/// `busybox --install -s` (which adds the rest).
pub const APPLETS: &[&str] = &[
    "sh", "ash", "mount", "umount", "echo", "cat", "ls", "mkdir", "grep", "setsid", "cttyhack",
    "poweroff", "reboot", "halt", "date", "uname", "dmesg", "sleep", "ps", "true", "false", "test",
    "[", "ln", "rm", "cp", "mv", "free", "top", "vi", "head", "tail", "wc", "insmod", "ip", "ping",
    "nc", "md5sum", "tee", "kill",
];

/// /dev/console: char 5:1, /dev/hvc0 (hvc_vio): char 229:0.
pub const CONSOLE_DEV: (u32, u32) = (5, 1);
pub const HVC0_DEV: (u32, u32) = (229, 0);

/// One entry of a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    CharDev {
        path: String,
        mode: u32,
        major: u32,
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// The mini VMM and its L2 guest, when built (`cargo xtask build --guests`):
/// `bin/paprika-vmm` and `lib/paprika/<guest>.elf` from target/vmm, for `paprika.kvm=1 paprika.l2=1`; none when either is
/// missing (then /init's kvm-l2-guest check fails: no /bin/paprika-vmm).
fn vmm_entries(have: &[Entry]) -> Vec<Entry> {
    let vmm = std::fs::read(guests::vmm_path());
    let l2 = std::fs::read(guests::vmm_l2_path());
    let (Ok(vmm), Ok(l2)) = (vmm, l2) else {
        println!(
            "initramfs: no mini VMM ({} and {} are built by `cargo xtask build --guests`)",
            rel(&guests::vmm_path()),
            rel(&guests::vmm_l2_path())
        );
        return Vec::new();
    };
    println!(
        "initramfs: /bin/paprika-vmm ({} bytes) and /lib/paprika/{}.elf ({} bytes)",
        vmm.len(),
        guests::VMM_L2_GUEST,
        l2.len()
    );
    let mut e = Vec::new();
    for d in ["lib", "lib/paprika"] {
        if !have
            .iter()
            .any(|x| matches!(x, Entry::Dir { path, .. } if path == d))
        {
            e.push(Entry::Dir {
                path: d.into(),
                mode: 0o755,
            });
        }
    }
    e.push(Entry::File {
        path: "bin/paprika-vmm".into(),
        mode: 0o755,
        data: vmm,
    });
    e.push(Entry::File {
        path: format!("lib/paprika/{}.elf", guests::VMM_L2_GUEST),
        mode: 0o644,
        data: l2,
    });
    e
}

/// Modules /init may load, from the kernel package, as
/// `lib/modules/<name>`: KVM-HV's (`kvm.ko`, `kvm-hv.ko`, loaded with
/// `paprika.kvm=1`, nested virtualization, docs/partitions.md) and ibmveth
/// (`ibmveth.ko`, loaded when the device tree has an `l-lan`, docs/vio.md);
/// those the package lacks are left out.
fn push_optional_modules(e: &mut Vec<Entry>, kernel_root: &Path, release: &str) {
    let dir = kernel_root.join("lib/modules").join(release).join("kernel");
    for (path, name) in MODULES {
        if let Ok(data) = std::fs::read(dir.join(path).join(name)) {
            push_modules_dir(e);
            e.push(Entry::File {
                path: format!("lib/modules/{name}"),
                mode: 0o644,
                data,
            });
        }
    }
}

/// Adds `lib` and `lib/modules` to `e`, parents before children, unless
/// they are there.
fn push_modules_dir(e: &mut Vec<Entry>) {
    if e.iter()
        .any(|x| matches!(x, Entry::Dir { path, .. } if path == "lib/modules"))
    {
        return;
    }
    for d in ["lib", "lib/modules"] {
        e.push(Entry::Dir {
            path: d.into(),
            mode: 0o755,
        });
    }
}

/// (directory under `lib/modules/<release>/kernel`, file) of each module the
/// initramfs carries.
pub const MODULES: &[(&str, &str)] = &[
    ("arch/powerpc/kvm", "kvm.ko"),
    ("arch/powerpc/kvm", "kvm-hv.ko"),
    ("drivers/net/ethernet/ibm", "ibmveth.ko"),
];

/// The vscsi disk and ext4 modules, in the order /init loads them (IO.md §5,
/// from `modules.dep` and the modinfo softdeps: busybox insmod follows
/// neither): the SCSI transport and ibmvscsi, sd's CRC/T10-PI chain, then
/// crc32c (ext4's and jbd2's softdep) and ext4's chain.
pub const DISK_MODULES: &[&str] = &[
    "drivers/scsi/scsi_transport_srp.ko",
    "drivers/scsi/ibmvscsi/ibmvscsi.ko",
    "lib/crc64.ko",
    "lib/crc64-rocksoft.ko",
    "crypto/crct10dif_common.ko",
    "lib/crc-t10dif.ko",
    "block/t10-pi.ko",
    "drivers/scsi/sd_mod.ko",
    "crypto/crc32c_generic.ko",
    "lib/crc16.ko",
    "fs/mbcache.ko",
    "fs/jbd2/jbd2.ko",
    "fs/ext4/ext4.ko",
];

/// The modules of passed-through PCI functions (docs/passthrough.md), in the
/// order /init loads them with `paprika.ptblk=`, `paprika.ptnvme=` or
/// `paprika.ptnet=` (IO.md §5, from each module's `depends=`: busybox insmod
/// follows no dependencies): virtio-pci and virtio-blk, nvme's CRC/T10-PI
/// chain and nvme, e1000e. Debian builds all of them as modules.
pub const PCI_MODULES: &[&str] = &[
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "lib/crc64.ko",
    "lib/crc64-rocksoft.ko",
    "crypto/crct10dif_common.ko",
    "lib/crc-t10dif.ko",
    "block/t10-pi.ko",
    "drivers/nvme/host/nvme-core.ko",
    "drivers/nvme/host/nvme.ko",
    "drivers/net/ethernet/intel/e1000e/e1000e.ko",
];

/// Adds `modules` to `e` as `lib/modules/<set>/<name>.ko` and their load
/// order as `lib/modules/<set>.order` (one file name a line), which /init
/// reads (`disk`: [`DISK_MODULES`] for `paprika.disk=`; `pci`:
/// [`PCI_MODULES`]). A missing module is an error: the kernel package is not
/// the one IO.md lists.
fn push_modules(
    e: &mut Vec<Entry>,
    kernel_root: &Path,
    release: &str,
    set: &str,
    modules: &[&str],
) -> Result<()> {
    let dir = kernel_root.join("lib/modules").join(release).join("kernel");
    push_modules_dir(e);
    e.push(Entry::Dir {
        path: format!("lib/modules/{set}"),
        mode: 0o755,
    });
    let mut order = String::new();
    for m in modules {
        let path = dir.join(m);
        let data = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
        let name = m.rsplit('/').next().unwrap_or(m);
        order.push_str(name);
        order.push('\n');
        e.push(Entry::File {
            path: format!("lib/modules/{set}/{name}"),
            mode: 0o644,
            data,
        });
    }
    e.push(Entry::File {
        path: format!("lib/modules/{set}.order"),
        mode: 0o644,
        data: order.into_bytes(),
    });
    Ok(())
}

/// What goes into initramfs.cpio, parents before children.
pub fn initramfs_entries(busybox: Vec<u8>) -> Vec<Entry> {
    let dir = |p: &str| Entry::Dir {
        path: p.to_string(),
        mode: 0o755,
    };
    let mut e = vec![
        dir("bin"),
        dir("sbin"),
        dir("usr"),
        dir("usr/bin"),
        dir("usr/sbin"),
        dir("dev"),
        dir("proc"),
        dir("sys"),
        dir("etc"),
        dir("root"),
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        Entry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: CONSOLE_DEV.0,
            minor: CONSOLE_DEV.1,
        },
        Entry::CharDev {
            path: "dev/hvc0".into(),
            mode: 0o600,
            major: HVC0_DEV.0,
            minor: HVC0_DEV.1,
        },
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: busybox,
        },
    ];
    e.extend(APPLETS.iter().map(|a| Entry::Symlink {
        path: format!("bin/{a}"),
        target: "busybox".into(),
    }));
    e.push(Entry::File {
        path: "etc/profile".into(),
        mode: 0o644,
        data: b"export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1='lpar# '\n".to_vec(),
    });
    e.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: INIT.as_bytes().to_vec(),
    });
    e
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// A newc (`070701`) archive of `entries`: owner root, mtime 0, inodes from 1,
/// ended by `TRAILER!!!`. Symlinks keep their target as data; device nodes carry
/// it in rdevmajor/rdevminor.
///
/// # Panics
/// On an empty name or a file of 4 GiB or more.
pub fn write_newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), name: &str, data: &[u8]| {
        assert!(
            !name.is_empty() && !name.contains('\0'),
            "cpio: bad name {name:?}"
        );
        let filesize = u32::try_from(data.len()).expect("cpio: file of 4 GiB or more");
        let namesize = u32::try_from(name.len() + 1).expect("cpio: name too long");
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(data);
        pad4(&mut out);
    };
    for (i, entry) in entries.iter().enumerate() {
        let ino = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match entry {
            Entry::Dir { path, mode } => push(ino, S_IFDIR | mode, 2, (0, 0), path, &[]),
            Entry::File { path, mode, data } => push(ino, S_IFREG | mode, 1, (0, 0), path, data),
            Entry::Symlink { path, target } => {
                push(ino, S_IFLNK | 0o777, 1, (0, 0), path, target.as_bytes())
            }
            Entry::CharDev {
                path,
                mode,
                major,
                minor,
            } => push(ino, S_IFCHR | mode, 1, (*major, *minor), path, &[]),
        }
    }
    push(0, 0, 1, (0, 0), "TRAILER!!!", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_runs_the_mini_vmm_with_its_l2_guest() {
        // Within the paprika.kvm=1 branch, after kvm-hv loaded.
        let kvm = INIT.find("*\" paprika.kvm=1 \"*)").unwrap();
        let l2 = INIT.find(&format!("*\" {L2_ARG} \"*)")).unwrap();
        assert!(l2 > kvm);
        let run = format!(
            "if /bin/paprika-vmm /lib/paprika/{}.elf; then",
            guests::VMM_L2_GUEST
        );
        assert!(INIT[l2..].contains(&run));
        assert!(INIT[l2..].contains("PAPRIKA-LINUX check kvm-l2-guest: ok"));
        assert!(INIT[l2..].contains("failed=1"));
    }

    /// (mode, nlink, rdevmajor, rdevminor, name, data) of each entry.
    fn read_newc(mut a: &[u8]) -> Vec<(u32, u32, u32, u32, String, Vec<u8>)> {
        let mut out = Vec::new();
        let total = a.len();
        loop {
            assert_eq!(&a[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, nlink, filesize, rmaj, rmin, namesize) =
                (field(1), field(4), field(6), field(9), field(10), field(11));
            let name_end = 110 + namesize as usize;
            assert_eq!(a[name_end - 1], 0, "name NUL-terminated");
            let name = String::from_utf8(a[110..name_end - 1].to_vec()).unwrap();
            let data_at = name_end.next_multiple_of(4);
            assert_eq!((total - a.len() + data_at) % 4, 0);
            let data = a[data_at..data_at + filesize as usize].to_vec();
            let next = (data_at + filesize as usize).next_multiple_of(4);
            a = &a[next..];
            if name == "TRAILER!!!" {
                assert!(a.is_empty());
                return out;
            }
            out.push((mode, nlink, rmaj, rmin, name, data));
        }
    }

    #[test]
    fn newc_entries() {
        let a = write_newc(&[
            Entry::Dir {
                path: "dev".into(),
                mode: 0o755,
            },
            Entry::CharDev {
                path: "dev/hvc0".into(),
                mode: 0o600,
                major: 229,
                minor: 0,
            },
            Entry::CharDev {
                path: "dev/console".into(),
                mode: 0o600,
                major: 5,
                minor: 1,
            },
            Entry::Symlink {
                path: "bin/sh".into(),
                target: "busybox".into(),
            },
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"#!/bin/sh\n".to_vec(),
            },
        ]);
        assert_eq!(a.len() % 4, 0);
        let e = read_newc(&a);
        assert_eq!(e[0], (0o040755, 2, 0, 0, "dev".into(), vec![]));
        assert_eq!(e[1], (0o020600, 1, 229, 0, "dev/hvc0".into(), vec![]));
        assert_eq!(e[2], (0o020600, 1, 5, 1, "dev/console".into(), vec![]));
        assert_eq!(
            e[3],
            (0o120777, 1, 0, 0, "bin/sh".into(), b"busybox".to_vec())
        );
        assert_eq!(
            e[4],
            (0o100755, 1, 0, 0, "init".into(), b"#!/bin/sh\n".to_vec())
        );
        // The first header, field by field.
        let h = std::str::from_utf8(&a[..110]).unwrap();
        assert_eq!(
            h,
            "070701\
             00000001000041ed00000000000000000000000200000000\
             00000000000000000000000000000000000000000000000400000000"
        );
    }

    #[test]
    fn initramfs_has_what_init_needs() {
        let a = write_newc(&initramfs_entries(b"\x7fELF busybox".to_vec()));
        let e = read_newc(&a);
        let get = |n: &str| e.iter().find(|x| x.4 == n).unwrap_or_else(|| panic!("{n}"));
        assert_eq!(get("init").0, 0o100755);
        assert!(get("init").5.starts_with(b"#!/bin/sh\n"));
        assert_eq!(get("bin/sh").5, b"busybox");
        assert_eq!(get("bin/busybox").5, b"\x7fELF busybox");
        assert_eq!((get("dev/console").2, get("dev/console").3), (5, 1));
        assert_eq!((get("dev/hvc0").2, get("dev/hvc0").3), (229, 0));
        for d in ["proc", "sys", "dev", "bin", "sbin", "usr/bin", "usr/sbin"] {
            assert_eq!(get(d).0 & 0o170000, S_IFDIR, "{d}");
        }
        // Parents come before what is in them.
        for (i, x) in e.iter().enumerate() {
            if let Some((parent, _)) = x.4.rsplit_once('/') {
                let p = e.iter().position(|y| y.4 == parent).unwrap();
                assert!(p < i, "{} before {parent}", x.4);
            }
        }
        for applet in [
            "sh", "mount", "echo", "cat", "poweroff", "date", "uname", "cttyhack",
        ] {
            assert_eq!(get(&format!("bin/{applet}")).0, 0o120777);
        }
        let init = String::from_utf8(get("init").5.clone()).unwrap();
        for marker in [
            USERSPACE_MARKER,
            ECHO_MARKER,
            DATE_MARKER,
            IRQCHIP_MARKER,
            TEST_PASSED,
        ] {
            assert!(init.contains(marker), "{marker}");
            assert!(marker.starts_with(MARKER_PREFIX), "{marker}");
        }
        assert!(init.contains("paprika.test=1"));
        assert!(init.contains("paprika.echo=1"));
        assert!(init.contains("paprika.name=*"));
        assert!(init.contains("poweroff -f"));
    }

    #[test]
    fn kernel_from_apt_cache_depends() {
        let text = "linux-image-powerpc64le:ppc64el\n  Depends: linux-image-6.1.0-35-powerpc64le:ppc64el\n";
        assert_eq!(
            kernel_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-35-powerpc64le")
        );
        let text = "linux-image-powerpc64le:ppc64el\n |Depends: linux-image-6.1.0-9-powerpc64le\n  Depends: linux-image-6.1.0-10-powerpc64le\n  Recommends: firmware-linux-free\n";
        assert_eq!(
            kernel_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-10-powerpc64le")
        );
        assert_eq!(
            kernel_from_depends("linux-image-powerpc64le:ppc64el\n"),
            None
        );
        assert_eq!(
            kernel_from_depends("x\n  Depends: linux-image-6.1.0-35-powerpc64le-dbg\n"),
            None
        );
    }

    #[test]
    fn kernel_from_apt_cache_search() {
        let text = "\
linux-image-6.1.0-9-powerpc64le - Linux 6.1 for Little-endian 64-bit PowerPC
linux-image-6.1.0-35-powerpc64le - Linux 6.1 for Little-endian 64-bit PowerPC
linux-image-6.1.0-35-powerpc64le-dbg - Debug symbols for linux-image-6.1.0-35-powerpc64le
linux-image-6.1.0-10-powerpc64le - Linux 6.1 for Little-endian 64-bit PowerPC
";
        assert_eq!(
            kernel_from_search(text).as_deref(),
            Some("linux-image-6.1.0-35-powerpc64le")
        );
        assert_eq!(kernel_from_search(""), None);
        assert!(is_kernel_package("linux-image-6.12.0-1-powerpc64le"));
        assert!(!is_kernel_package("linux-image-powerpc64le"));
        assert!(!is_kernel_package("linux-image-6.1.0-35-amd64"));
    }

    #[test]
    fn apt_details() {
        assert!(has_arch("i386\nppc64el\n", "ppc64el"));
        assert!(!has_arch("", "ppc64el"));
        let policy = "busybox-static:ppc64el:\n  Installed: (none)\n  Candidate: 1:1.35.0-4+b3\n  Version table:\n";
        assert_eq!(policy_candidate(policy).as_deref(), Some("1:1.35.0-4+b3"));
        assert_eq!(policy_candidate("x:\n  Candidate: (none)\n"), None);
        assert_eq!(
            deb_file_name("busybox-static", "1:1.35.0-4+b3", "ppc64el"),
            "busybox-static_1%3a1.35.0-4+b3_ppc64el.deb"
        );
        assert_eq!(
            parse_deb_name("linux-image-6.1.0-35-powerpc64le_6.1.137-1_ppc64el.deb"),
            Some(("linux-image-6.1.0-35-powerpc64le", "6.1.137-1", "ppc64el"))
        );
        assert_eq!(parse_deb_name("x.deb"), None);
        assert_eq!(cmdline(None), "console=hvc0");
        assert_eq!(
            cmdline(Some(" paprika.test=1 ")),
            "console=hvc0 paprika.test=1"
        );
    }

    #[test]
    fn image_kinds() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x12] = 21;
        assert_eq!(classify(&elf), Image::Elf64(Endian::Little));
        let mut wrapper = elf.clone();
        wrapper.extend_from_slice(b"\0.kernel:vmlinux.strip\0");
        assert_eq!(classify(&wrapper), Image::BootWrapper);
        elf[0x12] = 62;
        assert_eq!(classify(&elf), Image::OtherElf(62, 2));
        assert_eq!(classify(b"\x1f\x8b\x08\0"), Image::Gzip);
        assert_eq!(classify(b"MZ"), Image::Unknown);
        let data = b"junk\0Linux version 6.1.0-35-powerpc64le (x@y) #1 SMP\n\0";
        assert_eq!(
            linux_banner(data).as_deref(),
            Some("Linux version 6.1.0-35-powerpc64le (x@y) #1 SMP")
        );
        let config = "# CONFIG_RD_XZ is not set\nCONFIG_RD_GZIP=y\nCONFIG_LOCALVERSION=\"\"\n";
        assert_eq!(config_value(config, "CONFIG_RD_GZIP"), Some("y"));
        assert_eq!(config_value(config, "CONFIG_RD_XZ"), None);
        assert_eq!(config_value(config, "CONFIG_RD"), None);
    }
}
