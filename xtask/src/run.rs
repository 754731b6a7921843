//! `cargo xtask run`: build, then boot under QEMU in the foreground, with or
//! without partitions.

use std::io::IsTerminal;
use std::path::Path;

use crate::build::{self, BuildOpts, Profile};
use crate::cli::RunArgs;
use crate::error::{failed, usage, Result};
use crate::linux;
use crate::partitions;
use crate::qemu::{self, Console, QemuConfig};
use crate::{guests, setup};

/// The long description of `cargo xtask run --help` (the options are listed by
/// clap from `cli::RunArgs`).
pub const ABOUT: &str = "\
Builds the hypervisor, then boots it with skiboot under
`qemu-system-ppc64 -M powernv9|powernv10` in the foreground, console on this
terminal. Exits with QEMU's exit status: 0 when the hypervisor powered the
machine off after success, 1 when it stopped the machine on a failure.

Without --manifest, --kernel or --bare it boots the default bundle: Debian's
Linux with a busybox shell on hvc0 in one partition, `lpar1` (as --linux). If
that cannot be fetched it says why and boots the hypervisor alone. Without a
terminal on stdin the default bundle runs /init's checks and powers off
(`paprika.test=1`), so nothing waits for input.

With --manifest or --kernel the hypervisor runs partitions: xtask checks the
manifest (an invalid one: exit status 2, naming the partition and field),
builds the boot bundle target/bundle/<name>.cpio (the manifest compiled to a
device tree, manifest.dtb, and the images, at most 128 MiB) and gives it to QEMU
as -initrd. See docs/manifest.md.

On a terminal, what you type goes to one partition (the hypervisor's console
router, docs/linux.md \"Interactive console\"):
  Ctrl-A c       input to the next partition (a `PAPRIKA console: input ->`
                 line names it)
  Ctrl-A x       stop every partition and power off (exit status 0)
  Ctrl-A h       help;  Ctrl-A Ctrl-A sends Ctrl-A
QEMU's own console multiplexer uses Ctrl-] instead (-echr 0x1d): Ctrl-] x
kills QEMU, Ctrl-] c switches to its monitor and back. Without a terminal on
stdin the console goes to stdout only and stdin is not read.";

/// Added to the default bundle's command line when stdin is not a terminal: the
/// checks of /init, then power-off.
pub const NON_TTY_APPEND: &str = "paprika.test=1";

/// Added to the command line by `--debian-root`: the initramfs mounts the
/// first vscsi disk and switches to it.
pub const DEBIAN_ROOT_APPEND: &str = "root=/dev/sda";

/// QEMU's arguments for `--pnor FILE`, writing a fresh flash image
/// (`pnor::image`) first when FILE does not exist.
fn pnor_args(path: &Path) -> Result<Vec<String>> {
    let file = path.display().to_string();
    if file.contains(',') {
        return Err(usage!(
            "--pnor {file}: QEMU's -drive cannot take a file name with a comma"
        ));
    }
    if !path.exists() {
        std::fs::write(path, crate::pnor::image())
            .map_err(|e| failed!("creating the PNOR image {}: {e}", path.display()))?;
        println!(
            "{}: a fresh PNOR flash image (skiboot formats its NVRAM partition on this boot)",
            path.display()
        );
    } else if !path.is_file() {
        return Err(usage!("--pnor {}: not a file", path.display()));
    } else {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len != crate::pnor::IMAGE_BYTES as u64 {
            println!(
                "warning: --pnor {} is {len} bytes, not the {} of the images xtask makes",
                path.display(),
                crate::pnor::IMAGE_BYTES
            );
        }
    }
    Ok(vec![
        "-drive".into(),
        format!("file={file},format=raw,if=mtd"),
    ])
}

/// Whether `run` boots the default bundle (Linux) rather than what was asked.
fn default_bundle(bare: bool, manifest: bool, kernel: bool, initrd: bool, vcpus: bool) -> bool {
    !(bare || manifest || kernel || initrd || vcpus)
}

/// Partition memory of `run --kernel` without `--memory`.
const DEFAULT_PARTITION_MEMORY: u64 = 256 << 20;

pub fn main(args: RunArgs) -> Result<i32> {
    let RunArgs {
        machine,
        smp: smp_n,
        threads,
        memory,
        release,
        features,
        hypervisor,
        hv_append,
        gdb,
        virtio_console,
        passthrough,
        bare,
        manifest,
        mut kernel,
        mut initrd,
        mut append,
        vcpus,
        mut disk,
        mut linux,
        debian_root,
        pnor,
        qemu_args: mut extra,
    } = args;
    let features = build::split_features(&features);
    let pass: Vec<qemu::PassDevice> = passthrough
        .iter()
        .map(|d| qemu::PassDevice::parse(d))
        .collect::<Result<_>>()?;
    if !pass.is_empty() {
        let mut args = qemu::passthrough_args(&pass);
        args.append(&mut extra);
        extra = args;
    }
    if let Some(path) = &virtio_console {
        let mut args = qemu::virtio_console_args(path);
        args.append(&mut extra);
        extra = args;
    }
    if let Some(path) = &pnor {
        extra.splice(0..0, pnor_args(path)?);
    }
    qemu::refuse_unsafe_dma(&extra)?;
    let terminal = std::io::stdin().is_terminal();

    if bare
        && (linux || manifest.is_some() || kernel.is_some() || initrd.is_some() || !disk.is_empty())
    {
        return Err(usage!(
            "--bare boots the hypervisor alone; it excludes --linux, --manifest, --kernel, \
             --initrd and --disk"
        ));
    }
    if manifest.is_some() && !disk.is_empty() {
        return Err(usage!(
            "--manifest and --disk exclude each other (a manifest names its disks in \
             [[partition.disk]] tables)"
        ));
    }
    if debian_root {
        if manifest.is_some() || kernel.is_some() || initrd.is_some() || bare {
            return Err(usage!(
                "--debian-root boots Debian's kernel and initramfs; it excludes --manifest, \
                 --kernel, --initrd and --bare"
            ));
        }
        let image = crate::debian::build(false)?;
        disk.insert(0, image.display().to_string());
        // Without a terminal the image's bash shell would wait for input that
        // never comes: its checks run instead, then it powers off.
        let test = if terminal { "" } else { NON_TTY_APPEND };
        append = Some(
            format!("{DEBIAN_ROOT_APPEND} {test} {}", append.unwrap_or_default())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
        linux = true;
    }
    let disks = partitions::disk_options(&disk)?;
    let mut partition_memory = DEFAULT_PARTITION_MEMORY;
    if linux {
        if manifest.is_some() || kernel.is_some() || initrd.is_some() {
            return Err(usage!(
                "--linux boots Debian's kernel and its own initramfs; it excludes \
                 --manifest, --kernel and --initrd"
            ));
        }
        let l = linux::fetch(false)?;
        kernel = Some(l.vmlinux.display().to_string());
        initrd = Some(l.initramfs.display().to_string());
        append = Some(linux::cmdline(append.as_deref()));
        partition_memory = linux::DEFAULT_MEMORY;
        println!("booting Linux {} in lpar1", l.release);
    } else if default_bundle(
        bare,
        manifest.is_some(),
        kernel.is_some(),
        initrd.is_some(),
        vcpus.is_some(),
    ) {
        match linux::fetch(false) {
            Ok(l) => {
                kernel = Some(l.vmlinux.display().to_string());
                initrd = Some(l.initramfs.display().to_string());
                let mut extra_args = append.clone().unwrap_or_default();
                if !terminal {
                    extra_args = format!("{NON_TTY_APPEND} {extra_args}").trim().to_string();
                }
                append = Some(linux::cmdline(Some(&extra_args)).trim().to_string());
                partition_memory = linux::DEFAULT_MEMORY;
                if terminal {
                    println!(
                        "booting the default bundle: Linux {} in lpar1, a shell on its console \
                         (Ctrl-A h: keys, Ctrl-A x: power off)",
                        l.release
                    );
                } else {
                    println!(
                        "booting the default bundle: Linux {} in lpar1; stdin is not a terminal, \
                         so it runs its checks and powers off ({NON_TTY_APPEND})",
                        l.release
                    );
                }
            }
            Err(e) => {
                println!(
                    "cannot fetch the default bundle's Linux ({e}); booting the hypervisor alone \
                     (`cargo xtask linux fetch` retries, `--bare` skips this)"
                );
            }
        }
    }

    if hypervisor.is_some() && (release || !features.is_empty()) {
        return Err(usage!(
            "--hypervisor boots a given ELF; --release and --features only choose what to build"
        ));
    }
    if manifest.is_some() && kernel.is_some() {
        return Err(usage!(
            "--manifest and --kernel exclude each other (a manifest names its kernels)"
        ));
    }
    if kernel.is_none() {
        for (given, option) in [(initrd.is_some(), "--initrd"), (vcpus.is_some(), "--vcpus")] {
            if given {
                return Err(usage!("{option} goes with --kernel"));
            }
        }
    }

    for (path, option) in [(&kernel, "--kernel"), (&initrd, "--initrd")] {
        if let Some(path) = path.as_deref().filter(|p| !Path::new(p).is_file()) {
            return Err(usage!("{option} {path}: no such file"));
        }
    }

    // The partitions, checked before anything is built.
    let source = match (&manifest, &kernel) {
        (Some(path), _) => {
            let mut src = partitions::load(path)?;
            partitions::refuse_secure(&src.manifest, &src.origin)?;
            crate::scenarios::check_passthrough(&src.manifest, pass.len())
                .map_err(|e| usage!("{}: {e}", src.origin))?;
            src.append_cmdline(append.as_deref().unwrap_or(""))?;
            Some(src)
        }
        (None, Some(kernel)) => Some(
            partitions::from_kernel(
                kernel,
                initrd.as_deref(),
                append.as_deref().unwrap_or(""),
                vcpus.unwrap_or(1),
                memory.unwrap_or(partition_memory),
            )?
            .with_disks(&disks)?,
        ),
        (None, None) => None,
    };
    let hv_append = match (&source, hv_append) {
        (_, Some(a)) => a,
        (None, None) => append.unwrap_or_default(),
        (Some(_), None) => String::new(),
    };
    let min_cpus = smp_n.unwrap_or(4);
    let (cpus, memory_bytes) = match &source {
        None => (min_cpus, memory.unwrap_or(2 << 30)),
        Some(src) => {
            // --memory is the machine's with a manifest, the partition's with --kernel.
            let machine_memory = if manifest.is_some() { memory } else { None };
            let size = partitions::size_machine(&src.manifest, min_cpus, threads, machine_memory)?;
            // Writable disks are copied into hypervisor memory: a machine sized
            // here gets room for them too (a given --memory is taken as is).
            let disks = if machine_memory.is_none() {
                partitions::writable_disk_bytes(src)
            } else {
                0
            };
            (size.cpus, size.memory + disks)
        }
    };
    let smp = qemu::smp_arg(cpus, threads)?;
    // Images other than test guests can be looked for now; guests once built.
    let early_plan = match &source {
        Some(src) if !src.uses_guests() => Some(src.resolve()?),
        _ => None,
    };

    setup::ensure_tools()?;
    let profile = if release {
        Profile::Release
    } else {
        Profile::Debug
    };
    let kernel_elf = match hypervisor {
        Some(k) => {
            if !k.is_file() {
                return Err(failed!("--hypervisor {}: no such file", k.display()));
            }
            k
        }
        None => {
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            build::build(&BuildOpts::new(profile, &features))?
        }
    };

    let bundle = match &source {
        None => None,
        Some(src) => {
            let plan = match early_plan {
                Some(plan) => plan,
                None => {
                    if guests::build_all(profile)?.is_none() {
                        println!("{}", guests::NO_GUESTS);
                    }
                    src.resolve()?
                }
            };
            print!("{}", partitions::describe(&src.manifest));
            let path = partitions::bundle_path(&src.name);
            partitions::write_bundle(&plan, &path)?;
            Some(path)
        }
    };

    let console = if terminal {
        Console::Terminal
    } else {
        Console::Detached
    };
    let cfg = QemuConfig {
        machine,
        memory_bytes,
        smp,
        kernel: kernel_elf,
        initrd: bundle,
        append: hv_append,
        gdb,
        console,
        extra,
    };
    let cmd = cfg.command();
    if gdb {
        println!(
            "QEMU waits for a debugger: `target remote :1234` from a gdb that knows powerpc64 \
             (e.g. gdb-multiarch) with `file {}`",
            cfg.kernel.display()
        );
    }
    if console == Console::Terminal {
        if source.is_some() {
            println!("(Ctrl-A h: console keys; Ctrl-A x powers off; Ctrl-] x kills QEMU)");
        } else {
            println!("(Ctrl-] x quits QEMU)");
        }
    }
    cmd.echo();
    let mut command = cmd.command();
    if console == Console::Detached {
        command.stdin(std::process::Stdio::null());
    }
    let status = command
        .status()
        .map_err(|e| failed!("cannot start `{}`: {e}", cmd.program()))?;
    match status.code() {
        Some(code) => {
            println!("QEMU exited with status {code}");
            Ok(code)
        }
        None => Err(failed!(
            "QEMU ended with {}",
            crate::cmd::describe_status(status)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pnor_is_made_when_missing_and_kept_otherwise() {
        let dir = crate::repo_root().join("target").join("pnor-args-test");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flash.pnor");
        let args = pnor_args(&path).unwrap();
        assert_eq!(
            args,
            [
                "-drive".to_string(),
                format!("file={},format=raw,if=mtd", path.display())
            ]
        );
        assert_eq!(std::fs::read(&path).unwrap(), crate::pnor::image());
        // An existing image (with what skiboot and the partitions wrote) stays.
        std::fs::write(&path, b"kept").unwrap();
        pnor_args(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(pnor_args(&dir.join("a,b.pnor")).is_err());
        assert!(!dir.join("a,b.pnor").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_bundle_only_without_partitions_or_bare() {
        assert!(default_bundle(false, false, false, false, false));
        assert!(!default_bundle(true, false, false, false, false));
        assert!(!default_bundle(false, true, false, false, false));
        assert!(!default_bundle(false, false, true, false, false));
        assert!(!default_bundle(false, false, false, true, false));
        assert!(!default_bundle(false, false, false, false, true));
    }
}
