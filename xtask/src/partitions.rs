//! Partitions for `run` and the manifest scenarios of `test`: a manifest (from a
//! file, or made up from `run --kernel`), its images found on the host, a machine
//! sized for it, and the boot bundle written (docs/manifest.md).
//!
//! The manifest a user writes names host files: paths relative to the manifest's
//! directory, or `@guest/<package>` for a test guest (target/guests/<package>.elf).
//! The bundle holds the manifest compiled to a device tree, `manifest.dtb`,
//! naming the same images by their paths inside the bundle, so the hypervisor
//! never sees a host path (nor parses TOML).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use paprika::bundle;
use paprika::partition::manifest::{self, ErrorKind, Manifest, ManifestError};

use crate::error::{failed, invalid, usage, Context, Result};
use crate::{guests, repo_root};

/// Kernel and initrd paths starting with this name a test guest.
pub const GUEST_PREFIX: &str = "@guest/";
/// QEMU powernv loads `-initrd` at 0x28000000 and refuses one that reaches
/// skiboot at 0x30000000.
pub const MAX_BUNDLE_BYTES: u64 = 0x3000_0000 - 0x2800_0000;
/// Machine memory beyond the partitions': the hypervisor's reserve
/// (manifest::HYPERVISOR_RESERVE) plus room for skiboot, the image and the bundle.
pub const MACHINE_OVERHEAD: u64 = 512 << 20;
/// QEMU powernv refuses less.
pub const MIN_MACHINE_MEMORY: u64 = 1 << 30;
/// The partition `run --kernel` makes.
pub const GENERATED_NAME: &str = "lpar1";

/// A manifest and where its relative paths start.
#[derive(Debug, Clone)]
pub struct Source {
    pub manifest: Manifest,
    /// Directory that relative kernel/initrd paths are relative to.
    pub base: PathBuf,
    /// For messages: the manifest file, or the options it was made from.
    pub origin: String,
    /// A short name for the bundle file (target/bundle/<name>.cpio).
    pub name: String,
}

/// Reads and validates a manifest file (exit status 2 when it is invalid).
pub fn load(path: &Path) -> Result<Source> {
    if !path.is_file() {
        return Err(usage!("--manifest {}: no such file", path.display()));
    }
    let text = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    let manifest =
        crate::manifest::parse(&text).map_err(|e| invalid!("{}: {e}", path.display()))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("manifest")
        .to_string();
    Ok(Source {
        manifest,
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        origin: path.display().to_string(),
        name,
    })
}

/// Refuses a manifest with a `secure = true` partition: PEF secure VMs need an
/// ultravisor, and QEMU's powernv machines (the only machines xtask runs) have
/// none (docs/pef.md). Exit status 2, naming the partition.
pub fn refuse_secure(m: &Manifest, origin: &str) -> Result<()> {
    match m.partitions.iter().find(|p| p.secure) {
        None => Ok(()),
        Some(p) => Err(invalid!(
            "{origin}: partition {}: secure = true needs a PEF ultravisor, and QEMU's \
             powernv machines have none (docs/pef.md); remove it to run here",
            p.name
        )),
    }
}

/// The one-partition manifest of `run --kernel`: partition `lpar1` with `vcpus`
/// vCPUs on hardware threads 0..vcpus, `memory` bytes, console on.
pub fn from_kernel(
    kernel: &str,
    initrd: Option<&str>,
    cmdline: &str,
    vcpus: u32,
    memory: u64,
) -> Result<Source> {
    let manifest = Manifest {
        machine: manifest::MachineSpec::default(),
        partitions: vec![manifest::PartitionSpec {
            name: GENERATED_NAME.to_string(),
            memory,
            vcpus,
            cpus: (0..vcpus).collect(),
            kernel: kernel.to_string(),
            initrd: initrd.map(str::to_string),
            cmdline: cmdline.to_string(),
            console: true,
            expect: None,
            secure: false,
            nested: false,
            tpm: false,
            mmu: manifest::MmuMode::Radix,
            net: Vec::new(),
            disks: Vec::new(),
            devices: Vec::new(),
        }],
    };
    // The manifest's checks are the one judge of what is valid.
    let manifest = manifest.validated().map_err(|e| {
        let option = match e.field.as_deref() {
            Some("memory") => "--memory",
            Some("vcpus" | "cpus") => "--vcpus",
            Some("kernel") => "--kernel",
            Some("initrd") => "--initrd",
            Some("cmdline") => "--append",
            _ => "run --kernel",
        };
        usage!("{option}: {}", e.kind)
    })?;
    let base = std::env::current_dir().context(|| "finding the current directory".to_string())?;
    Ok(Source {
        manifest,
        base,
        origin: "run --kernel".to_string(),
        name: GENERATED_NAME.to_string(),
    })
}

/// The `--disk FILE[,ro]` options: (path, read-only), each file there and a
/// whole number of 512-byte blocks.
pub fn disk_options(options: &[String]) -> Result<Vec<(String, bool)>> {
    let mut disks = Vec::new();
    for o in options {
        let (path, readonly) = match o.strip_suffix(",ro") {
            Some(p) => (p, true),
            None => (o.as_str(), false),
        };
        if !Path::new(path).is_file() {
            return Err(usage!("--disk {path}: no such file"));
        }
        check_disk_image(Path::new(path)).map_err(|why| usage!("--disk {path}: {why}"))?;
        disks.push((path.to_string(), readonly));
    }
    if disks.len() > manifest::MAX_DISKS {
        return Err(usage!(
            "--disk given {} times; a partition has at most {}",
            disks.len(),
            manifest::MAX_DISKS
        ));
    }
    Ok(disks)
}

impl Source {
    /// Gives the first partition these disks (`run --disk`), validated again.
    pub fn with_disks(mut self, disks: &[(String, bool)]) -> Result<Self> {
        if disks.is_empty() {
            return Ok(self);
        }
        let mut m = self.manifest.clone();
        if let Some(p) = m.partitions.first_mut() {
            p.disks
                .extend(disks.iter().map(|(image, readonly)| manifest::DiskSpec {
                    image: image.clone(),
                    readonly: *readonly,
                }));
        }
        self.manifest = m.validated().map_err(|e| usage!("--disk: {e}"))?;
        Ok(self)
    }

    /// Adds `extra` to every partition's command line (`run --manifest ...
    /// --append`, `test --append`: e.g. `paprika.seed=N` to replay a test
    /// guest's run); the result is validated as a manifest again.
    pub fn append_cmdline(&mut self, extra: &str) -> Result<()> {
        let extra = extra.trim();
        if extra.is_empty() {
            return Ok(());
        }
        let mut m = self.manifest.clone();
        for p in &mut m.partitions {
            p.cmdline = format!("{} {extra}", p.cmdline).trim().to_string();
        }
        self.manifest = m
            .validated()
            .map_err(|e| usage!("--append {extra:?}: {}: {e}", self.origin))?;
        Ok(())
    }

    /// Whether some image is a test guest.
    pub fn uses_guests(&self) -> bool {
        images(&self.manifest).any(|(_, _, path)| path.starts_with(GUEST_PREFIX))
    }

    /// Where an image of the manifest is on the host.
    fn host_path(&self, path: &str) -> std::result::Result<PathBuf, String> {
        match path.strip_prefix(GUEST_PREFIX) {
            Some(package) => {
                let ok = !package.is_empty()
                    && package
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(format!(
                        "`{path}` is not `{GUEST_PREFIX}<package>` (a guest crate's package name)"
                    ));
                }
                Ok(guests::elf(package))
            }
            None => Ok(self.base.join(path)),
        }
    }

    /// Finds every image on the host and names it inside the bundle.
    pub fn resolve(&self) -> Result<Plan> {
        let mut bundled = self.manifest.clone();
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut by_host: HashMap<PathBuf, String> = HashMap::new();
        for (index, p) in self.manifest.partitions.iter().enumerate() {
            // (field, path, disk number, shared): a writable disk gets a file
            // of its own even when another disk names the same image, since
            // the partition writes it in place.
            let refs = [("kernel", Some(&p.kernel)), ("initrd", p.initrd.as_ref())]
                .into_iter()
                .filter_map(|(f, path)| path.map(|path| (f, path, None, true)))
                .chain(
                    p.disks
                        .iter()
                        .enumerate()
                        .map(|(i, d)| ("image", &d.image, Some(i), d.readonly)),
                );
            for (field, path, disk, shared) in refs {
                let error = |why: String| {
                    let e = ManifestError::new(ErrorKind::NoSuchFile(path.clone()))
                        .in_partition(Some(&p.name))
                        .field(field);
                    invalid!("{}: {e} ({why})", self.origin)
                };
                let host = self.host_path(path).map_err(error)?;
                if !host.is_file() {
                    return Err(error(missing_hint(path, &host)));
                }
                if disk.is_some() {
                    check_disk_image(&host).map_err(|why| {
                        invalid!(
                            "{}: partition {}, disk image {path}: {why}",
                            self.origin,
                            p.name
                        )
                    })?;
                }
                let key = host.canonicalize().unwrap_or_else(|_| host.clone());
                let name = match by_host.get(&key).filter(|_| shared) {
                    Some(name) => name.clone(),
                    None => {
                        let name = bundle_name(&host, &p.name, &files);
                        if shared {
                            by_host.insert(key, name.clone());
                        }
                        files.push((name.clone(), host));
                        name
                    }
                };
                let spec = &mut bundled.partitions[index];
                match (field, disk) {
                    (_, Some(i)) => spec.disks[i].image = name,
                    ("kernel", _) => spec.kernel = name,
                    _ => spec.initrd = Some(name),
                }
            }
        }
        Ok(Plan {
            manifest: bundled,
            files,
        })
    }
}

/// A disk image must be a non-empty whole number of 512-byte blocks.
fn check_disk_image(host: &Path) -> std::result::Result<(), String> {
    let len = std::fs::metadata(host)
        .map_err(|e| format!("{}: {e}", host.display()))?
        .len();
    if len == 0 || !len.is_multiple_of(512) {
        return Err(format!(
            "{} is {len} bytes, not a whole number of 512-byte blocks",
            host.display()
        ));
    }
    Ok(())
}

/// Why `path` (found at `host`) is missing, and what to do.
fn missing_hint(path: &str, host: &Path) -> String {
    let Some(package) = path.strip_prefix(GUEST_PREFIX) else {
        return format!("looked for {}", host.display());
    };
    let built = guests::built();
    let mut hint = format!("{} has not been built", host.display());
    if !package.starts_with(guests::PACKAGE_PREFIX) {
        hint.push_str(&format!(
            "; guest packages are named {}*",
            guests::PACKAGE_PREFIX
        ));
    }
    if built.is_empty() {
        hint.push_str("; `cargo xtask build --guests` builds the guests");
    } else {
        hint.push_str(&format!("; built guests: {}", built.join(", ")));
    }
    hint
}

/// A name inside the bundle for `host`, unique among `taken`: its file name,
/// else `<partition>-<file name>`, else `<partition>-<n>-<file name>`.
fn bundle_name(host: &Path, partition: &str, taken: &[(String, PathBuf)]) -> String {
    let file = host
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("image");
    let free = |name: &str| {
        name != bundle::MANIFEST && name != bundle::TRAILER && !taken.iter().any(|(n, _)| n == name)
    };
    let mut candidates = [file.to_string(), format!("{partition}-{file}")]
        .into_iter()
        .chain((2u32..).map(|n| format!("{partition}-{n}-{file}")));
    candidates.find(|c| free(c)).unwrap_or_default()
}

/// Every (partition, field, path) of the images a manifest names.
fn images(m: &Manifest) -> impl Iterator<Item = (&str, &'static str, &str)> {
    m.partitions.iter().flat_map(|p| {
        std::iter::once((p.name.as_str(), "kernel", p.kernel.as_str()))
            .chain(p.initrd.as_deref().map(|i| (p.name.as_str(), "initrd", i)))
            .chain(
                p.disks
                    .iter()
                    .map(|d| (p.name.as_str(), "image", d.image.as_str())),
            )
    })
}

/// Bytes of hypervisor memory the writable disks of `m` take (each copied
/// once at partition creation, docs/vscsi.md), rounded up to 2 MiB; images
/// that cannot be read count 0 (`resolve` reports them).
pub fn writable_disk_bytes(src: &Source) -> u64 {
    let total: u64 = src
        .manifest
        .partitions
        .iter()
        .flat_map(|p| p.disks.iter())
        .filter(|d| !d.readonly)
        .filter_map(|d| src.host_path(&d.image).ok())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    total.next_multiple_of(2 << 20)
}

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The manifest with images named by their paths in the bundle.
    pub manifest: Manifest,
    /// (path in the bundle, file on the host), each image once.
    pub files: Vec<(String, PathBuf)>,
}

/// The machine QEMU emulates for a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSize {
    /// Hardware threads (`-smp`).
    pub cpus: u32,
    /// Bytes of RAM (`-m`).
    pub memory: u64,
}

/// Sizes the machine: threads up to the highest `cpus` entry, at least
/// `min_cpus`, a whole number of cores of `threads_per_core`; memory the
/// partitions' plus [`MACHINE_OVERHEAD`] (at least 1 GiB), or `memory` when it is
/// given and enough.
pub fn size_machine(
    m: &Manifest,
    min_cpus: u32,
    threads_per_core: u32,
    memory: Option<u64>,
) -> Result<MachineSize> {
    let tpc = threads_per_core.max(1);
    let highest = m.max_cpu().unwrap_or(0);
    let cpus = highest
        .checked_add(1)
        .map(|n| n.max(min_cpus))
        .and_then(|n| n.checked_next_multiple_of(tpc))
        .ok_or_else(|| usage!("hardware thread {highest} is beyond any machine"))?;
    let total = m.total_memory().unwrap_or(u64::MAX);
    let needed = total.saturating_add(MACHINE_OVERHEAD);
    let memory = match memory {
        Some(given) if given < needed => {
            return Err(usage!(
                "--memory {}: too small; the partitions need {} MiB plus {} MiB for the \
                 hypervisor and firmware: at least {}",
                crate::qemu::format_size(given),
                total >> 20,
                MACHINE_OVERHEAD >> 20,
                crate::qemu::format_size(needed.max(MIN_MACHINE_MEMORY)),
            ))
        }
        Some(given) => given,
        None => needed.max(MIN_MACHINE_MEMORY),
    };
    manifest::check_against_machine(m, memory, cpus, |_| true).map_err(|e| invalid!("{e}"))?;
    Ok(MachineSize { cpus, memory })
}

/// target/bundle/<name>.cpio
pub fn bundle_path(name: &str) -> PathBuf {
    repo_root()
        .join("target")
        .join("bundle")
        .join(format!("{name}.cpio"))
}

/// The bundle's bytes: `manifest.dtb` then the images. Fails when it would not
/// fit QEMU's initrd window.
pub fn bundle_bytes(plan: &Plan) -> Result<Vec<u8>> {
    let manifest = plan
        .manifest
        .to_dtb()
        .map_err(|e| failed!("compiling the manifest to a device tree: {e}"))?;
    // Sizes first, so a huge file is refused before it is read.
    let mut sizes = vec![(bundle::MANIFEST.to_string(), manifest.len() as u64)];
    for (name, host) in &plan.files {
        let meta = std::fs::metadata(host).context(|| format!("reading {}", host.display()))?;
        sizes.push((name.clone(), meta.len()));
    }
    // Header, name and padding per file, then the trailer.
    let estimate: u64 = sizes
        .iter()
        .map(|(n, len)| (bundle::HEADER_LEN + n.len() + 4) as u64 + len + 3)
        .sum::<u64>()
        + 128;
    if estimate > MAX_BUNDLE_BYTES {
        let mib = |n: u64| n as f64 / (1 << 20) as f64;
        let files: Vec<String> = sizes
            .iter()
            .map(|(n, len)| format!("{n} {:.1} MiB", mib(*len)))
            .collect();
        return Err(failed!(
            "the boot bundle would be {:.1} MiB, more than the {} MiB QEMU powernv loads as \
             -initrd (0x28000000-0x30000000); its files: {}. Strip the images \
             (powerpc64le-linux-gnu-strip) or let partitions share one image.",
            mib(estimate),
            MAX_BUNDLE_BYTES >> 20,
            files.join(", ")
        ));
    }
    let mut contents: Vec<(String, Vec<u8>)> = vec![(bundle::MANIFEST.to_string(), manifest)];
    for (name, host) in &plan.files {
        let data = std::fs::read(host).context(|| format!("reading {}", host.display()))?;
        contents.push((name.clone(), data));
    }
    let files: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bytes = bundle::write_newc(&files);
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(failed!(
            "the boot bundle is {} bytes, more than QEMU powernv loads as -initrd",
            bytes.len()
        ));
    }
    verify(&bytes, &plan.manifest)?;
    Ok(bytes)
}

/// Reads the bundle back the way the hypervisor will.
fn verify(bytes: &[u8], expected: &Manifest) -> Result<()> {
    let bad = |why: String| failed!("the bundle just written does not read back: {why}");
    let blob = bundle::find(bytes, bundle::MANIFEST)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad(format!("no {}", bundle::MANIFEST)))?;
    let m = manifest::from_dtb(blob).map_err(|e| bad(e.to_string()))?;
    if &m != expected {
        return Err(bad(format!("{} differs", bundle::MANIFEST)));
    }
    manifest::check_against_machine(&m, u64::MAX, u32::MAX, |p| {
        matches!(bundle::find(bytes, p), Ok(Some(_)))
    })
    .map_err(|e| bad(e.to_string()))
}

/// Writes the bundle to `out`; returns its size.
pub fn write_bundle(plan: &Plan, out: &Path) -> Result<u64> {
    let bytes = bundle_bytes(plan)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, &bytes).context(|| format!("writing {}", out.display()))?;
    let names: Vec<&str> = std::iter::once(bundle::MANIFEST)
        .chain(plan.files.iter().map(|(n, _)| n.as_str()))
        .collect();
    println!(
        "bundle {} ({} bytes): {}",
        out.display(),
        bytes.len(),
        names.join(", ")
    );
    Ok(bytes.len() as u64)
}

/// One line per partition, for the person at the terminal.
pub fn describe(m: &Manifest) -> String {
    let mut s = String::new();
    for p in &m.partitions {
        let cpus: Vec<String> = p.cpus.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "partition {}: {} MiB, {} vCPU(s) on thread(s) {}, kernel {}{}{}\n",
            p.name,
            p.memory >> 20,
            p.vcpus,
            cpus.join(","),
            p.kernel,
            p.initrd
                .as_deref()
                .map(|i| format!(", initrd {i}"))
                .unwrap_or_default(),
            if p.console { "" } else { ", console off" },
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_partition_is_refused() {
        let mut src = from_kernel("k", None, "", 1, 256 << 20).unwrap();
        assert!(refuse_secure(&src.manifest, "m.toml").is_ok());
        src.manifest.partitions.push(manifest::PartitionSpec {
            name: "pef".into(),
            cpus: vec![1],
            secure: true,
            nested: false,
            tpm: false,
            mmu: manifest::MmuMode::Radix,
            net: Vec::new(),
            ..src.manifest.partitions[0].clone()
        });
        let e = refuse_secure(&src.manifest, "m.toml").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("m.toml: partition pef: secure = true needs a PEF ultravisor"),
            "{text}"
        );
    }

    #[test]
    fn append_goes_on_every_command_line() {
        let mut src = from_kernel("k", None, "a=1", 1, 256 << 20).unwrap();
        src.manifest.partitions.push(manifest::PartitionSpec {
            name: "two".into(),
            cmdline: String::new(),
            cpus: vec![1],
            ..src.manifest.partitions[0].clone()
        });
        src.append_cmdline(" paprika.seed=7 ").unwrap();
        let lines: Vec<&str> = src
            .manifest
            .partitions
            .iter()
            .map(|p| p.cmdline.as_str())
            .collect();
        assert_eq!(lines, ["a=1 paprika.seed=7", "paprika.seed=7"]);
        src.append_cmdline("").unwrap();
        assert_eq!(src.manifest.partitions[1].cmdline, "paprika.seed=7");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const TWO: &str = r#"
[machine]
console_input = "b"

[[partition]]
name = "a"
memory = "256M"
vcpus = 2
cpus = [0, 3]
kernel = "images/vmlinux"
initrd = "rd.cpio"
expect = "A-OK"

[[partition]]
name = "b"
memory = "64M"
vcpus = 1
cpus = [1]
kernel = "other/vmlinux"
initrd = "./rd.cpio"
"#;

    #[test]
    fn manifest_file_to_bundle() {
        let dir = temp_dir("bundle");
        std::fs::create_dir_all(dir.join("images")).unwrap();
        std::fs::create_dir_all(dir.join("other")).unwrap();
        std::fs::write(dir.join("images/vmlinux"), b"kernel a").unwrap();
        std::fs::write(dir.join("other/vmlinux"), b"kernel b").unwrap();
        std::fs::write(dir.join("rd.cpio"), b"shared initrd").unwrap();
        let path = dir.join("two.toml");
        std::fs::write(&path, TWO).unwrap();

        let src = load(&path).unwrap();
        assert_eq!(src.name, "two");
        assert!(!src.uses_guests());
        let plan = src.resolve().unwrap();
        // Same file once; same file name from different files made unique.
        let names: Vec<&str> = plan.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["vmlinux", "rd.cpio", "b-vmlinux"]);
        let a = &plan.manifest.partitions[0];
        let b = &plan.manifest.partitions[1];
        assert_eq!(
            (a.kernel.as_str(), a.initrd.as_deref()),
            ("vmlinux", Some("rd.cpio"))
        );
        assert_eq!(
            (b.kernel.as_str(), b.initrd.as_deref()),
            ("b-vmlinux", Some("rd.cpio"))
        );

        let bytes = bundle_bytes(&plan).unwrap();
        assert_eq!(
            bundle::find(&bytes, "b-vmlinux"),
            Ok(Some(&b"kernel b"[..]))
        );
        assert_eq!(
            bundle::find(&bytes, "rd.cpio"),
            Ok(Some(&b"shared initrd"[..]))
        );
        let blob = bundle::find(&bytes, bundle::MANIFEST).unwrap().unwrap();
        let m = manifest::from_dtb(blob).unwrap();
        assert_eq!(m, plan.manifest);
        assert_eq!(m.machine.console_input.as_deref(), Some("b"));

        let out = dir.join("out/two.cpio");
        assert_eq!(write_bundle(&plan, &out).unwrap(), bytes.len() as u64);
        assert_eq!(std::fs::read(&out).unwrap(), bytes);

        // A missing image names partition and field, exit status 2.
        std::fs::remove_file(dir.join("other/vmlinux")).unwrap();
        let e = load(&path).unwrap().resolve().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("partition \"b\", field \"kernel\": no file \"other/vmlinux\""),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn disks_are_packed_writable_ones_each_in_a_file_of_their_own() {
        let dir = temp_dir("disks");
        std::fs::write(dir.join("k"), b"kernel").unwrap();
        std::fs::write(dir.join("root.img"), vec![7u8; 1024]).unwrap();
        std::fs::write(dir.join("odd.img"), vec![7u8; 1000]).unwrap();
        let text = "[[partition]]\nname = \"a\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [0]\n\
                    kernel = \"k\"\n[[partition.disk]]\nimage = \"root.img\"\nreadonly = true\n\
                    [[partition.disk]]\nimage = \"root.img\"\nreadonly = true\n\
                    [[partition.disk]]\nimage = \"root.img\"\n\n\
                    [[partition]]\nname = \"b\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [1]\n\
                    kernel = \"k\"\n[[partition.disk]]\nimage = \"root.img\"\n";
        let path = dir.join("d.toml");
        std::fs::write(&path, text).unwrap();
        let plan = load(&path).unwrap().resolve().unwrap();
        let names: Vec<&str> = plan.files.iter().map(|(n, _)| n.as_str()).collect();
        // Read-only disks share one file, each writable one has its own.
        assert_eq!(names, ["k", "root.img", "a-root.img", "b-root.img"]);
        let a = &plan.manifest.partitions[0].disks;
        assert_eq!(a[0].image, "root.img");
        assert_eq!(a[1].image, "root.img");
        assert_eq!(a[2].image, "a-root.img");
        assert!(!a[2].readonly);
        assert_eq!(plan.manifest.partitions[1].disks[0].image, "b-root.img");
        let bytes = bundle_bytes(&plan).unwrap();
        assert_eq!(
            bundle::find(&bytes, "b-root.img"),
            Ok(Some(&[7u8; 1024][..]))
        );

        // Not a whole number of blocks: exit status 2 naming the image.
        std::fs::write(
            &path,
            text.replace(
                "[1]\nkernel = \"k\"\n[[partition.disk]]\nimage = \"root.img\"",
                "[1]\nkernel = \"k\"\n[[partition.disk]]\nimage = \"odd.img\"",
            ),
        )
        .unwrap();
        let e = load(&path).unwrap().resolve().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("partition b, disk image odd.img"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("not a whole number of 512-byte blocks"),
            "{e}"
        );
        // Missing: named like a kernel.
        std::fs::remove_file(dir.join("odd.img")).unwrap();
        let e = load(&path).unwrap().resolve().unwrap_err();
        assert!(
            e.to_string()
                .contains("partition \"b\", field \"image\": no file \"odd.img\""),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writable_disks_need_machine_memory() {
        let dir = temp_dir("diskmem");
        std::fs::write(dir.join("k"), b"kernel").unwrap();
        std::fs::write(dir.join("rw.img"), vec![0u8; 3 << 20]).unwrap();
        std::fs::write(dir.join("ro.img"), vec![0u8; 8 << 20]).unwrap();
        let text = "[[partition]]\nname = \"a\"\nmemory = \"64M\"\nvcpus = 1\ncpus = [0]\n\
                    kernel = \"k\"\n[[partition.disk]]\nimage = \"rw.img\"\n\
                    [[partition.disk]]\nimage = \"ro.img\"\nreadonly = true\n";
        let path = dir.join("m.toml");
        std::fs::write(&path, text).unwrap();
        let src = load(&path).unwrap();
        // 3 MiB writable -> 4 MiB (2 MiB steps); the read-only image stays in
        // the bundle.
        assert_eq!(writable_disk_bytes(&src), 4 << 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn invalid_manifest_exits_2_naming_the_field() {
        let dir = temp_dir("invalid");
        let path = dir.join("bad.toml");
        std::fs::write(&path, TWO.replace("\"64M\"", "\"65M\"")).unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().ends_with(
                "bad.toml: manifest line 16, column 10, partition \"b\", field \"memory\": not a multiple of 2 MiB"
            ),
            "{e}"
        );
        assert_eq!(load(&dir.join("none.toml")).unwrap_err().exit_code(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn generated_manifest() {
        let src = from_kernel("vmlinux", Some("rd"), "console=hvc0", 3, 256 << 20).unwrap();
        let p = &src.manifest.partitions[0];
        assert_eq!(p.name, GENERATED_NAME);
        assert_eq!(p.cpus, vec![0, 1, 2]);
        assert_eq!(p.cmdline, "console=hvc0");
        assert!(p.console);
        let e = from_kernel("k", None, "", 0, 256 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--vcpus: must be 1 to 64 (see `cargo xtask help`)"
        );
        let e = from_kernel("k", None, "", 1, 3 << 20).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--memory: not a multiple of 2 MiB"),
            "{e}"
        );
        let e = from_kernel("k", None, "a\u{1}", 1, 2 << 20).unwrap_err();
        assert!(e.to_string().starts_with("--append: "), "{e}");
    }

    #[test]
    fn guest_references() {
        let src = Source {
            manifest: crate::manifest::parse(
                "[[partition]]\nname = \"g\"\nmemory = \"32M\"\nvcpus = 1\ncpus = [0]\nkernel = \"@guest/guest-nonexistent-xyz\"\n",
            )
            .unwrap(),
            base: PathBuf::from("/nowhere"),
            origin: "t.toml".into(),
            name: "t".into(),
        };
        assert!(src.uses_guests());
        assert_eq!(
            src.host_path("@guest/guest-hcall").unwrap(),
            guests::elf("guest-hcall")
        );
        assert!(src.host_path("@guest/").is_err());
        assert!(src.host_path("@guest/../x").is_err());
        assert_eq!(src.host_path("k").unwrap(), PathBuf::from("/nowhere/k"));
        assert_eq!(src.host_path("/abs/k").unwrap(), PathBuf::from("/abs/k"));
        let e = src.resolve().unwrap_err().to_string();
        assert!(
            e.contains("target/guests/guest-nonexistent-xyz.elf has not been built"),
            "{e}"
        );
    }

    #[test]
    fn machine_sizes() {
        let m = crate::manifest::parse(TWO).unwrap(); // 320M, threads 0, 1, 3
        let size = |min, tpc, mem| size_machine(&m, min, tpc, mem);
        assert_eq!(
            size(1, 1, None).unwrap(),
            MachineSize {
                cpus: 4,
                memory: 1 << 30
            }
        );
        assert_eq!(size(6, 4, None).unwrap().cpus, 8);
        assert_eq!(size(4, 4, None).unwrap().cpus, 4);
        assert_eq!(size(1, 1, Some(2 << 30)).unwrap().memory, 2 << 30);
        let e = size(1, 1, Some(512 << 20)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("at least 1G"), "{e}");

        let mut big = m.clone();
        big.partitions[0].memory = 3 << 30;
        assert_eq!(
            size_machine(&big, 1, 1, None).unwrap().memory,
            (3 << 30) + (576 << 20)
        );
        let e = size_machine(&big, 1, 1, Some(3 << 30)).unwrap_err();
        assert!(e.to_string().contains("at least 3648M"), "{e}");
    }

    #[test]
    fn oversized_bundle_is_refused() {
        let dir = temp_dir("big");
        let big = dir.join("huge.img");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_BUNDLE_BYTES).unwrap();
        let plan = Plan {
            manifest: crate::manifest::parse(
                "[[partition]]\nname = \"g\"\nmemory = \"32M\"\nvcpus = 1\ncpus = [0]\nkernel = \"huge.img\"\n",
            )
            .unwrap(),
            files: vec![("huge.img".into(), big)],
        };
        let e = bundle_bytes(&plan).unwrap_err().to_string();
        assert!(
            e.contains("more than the 128 MiB QEMU powernv loads"),
            "{e}"
        );
        assert!(e.contains("huge.img 128.0 MiB"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unique_bundle_names() {
        let taken = vec![
            ("vmlinux".to_string(), PathBuf::new()),
            ("a-vmlinux".to_string(), PathBuf::new()),
        ];
        assert_eq!(
            bundle_name(Path::new("/x/vmlinux"), "a", &taken),
            "a-2-vmlinux"
        );
        assert_eq!(
            bundle_name(Path::new("/x/vmlinux"), "b", &taken),
            "b-vmlinux"
        );
        assert_eq!(
            bundle_name(Path::new("/x/manifest.dtb"), "b", &[]),
            "b-manifest.dtb"
        );
        assert_eq!(bundle_name(Path::new("/"), "b", &[]), "image");
    }
}
