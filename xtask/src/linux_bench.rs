//! `cargo xtask bench`, Linux part: wall time from QEMU's start to the stock Debian
//! kernel's userspace marker in a Paprika partition (powernv9: skiboot, the
//! hypervisor's own boot, partition creation and Linux), next to the same kernel and
//! initramfs under `qemu-system-ppc64 -M pseries` with its default firmware (SLOF).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::linux::{self, USERSPACE_MARKER};
use crate::qemu::{self, Console, Machine, QemuConfig};
use crate::setup::QEMU;
use crate::{partitions, repo_root};

/// The kernel command line in both runs (test mode: /init checks, then powers off).
const CMDLINE: &str = "console=hvc0 paprika.test=1";

fn bench_path(file: &str) -> PathBuf {
    repo_root().join("target").join("bench").join(file)
}

/// The manifest of the Paprika run: one partition, 512 MiB, one vCPU on thread 0.
///
/// The machine has one hardware thread (`-smp 1`), like the reference's one
/// vCPU: the hypervisor's boot thread then runs the vCPU. Every extra emulated
/// thread makes the guest slower under TCG even when it idles in `stop`: each
/// global `tlbie` the guest issues (Linux's code patching does tens of thousands
/// at boot) makes QEMU flush the TLBs of all its vCPUs, waking the idle ones.
pub fn manifest(vmlinux: &Path, initramfs: &Path) -> String {
    format!(
        "# Written by `cargo xtask bench` (docs/benchmarks.md).\n\
         [[partition]]\n\
         name = \"linux\"\n\
         memory = \"512M\"\n\
         vcpus = 1\n\
         cpus = [0]\n\
         kernel = \"{}\"\n\
         initrd = \"{}\"\n\
         cmdline = \"{CMDLINE}\"\n",
        vmlinux.display(),
        initramfs.display()
    )
}

/// Formats the side-by-side lines.
pub fn report(paprika: Duration, pseries: Option<Duration>) -> Vec<String> {
    let p = paprika.as_millis();
    match pseries {
        Some(r) => {
            let q = r.as_millis();
            let ratio = p as f64 / (q.max(1)) as f64;
            vec![
                format!("linux.qemu_to_userspace_ms: paprika={p} pseries={q} ratio={ratio:.2}"),
                format!(
                    "linux.qemu_to_userspace_target_met: {}   (target: Paprika < pseries)",
                    if p < q { "yes" } else { "no" }
                ),
            ]
        }
        None => vec![format!("linux.qemu_to_userspace_ms: paprika={p}")],
    }
}

fn until_marker(cmd: &Cmd, log: &Path, timeout: Duration, what: &str) -> Result<Duration> {
    let (outcome, seen) = qemu::run_until(cmd, log, timeout, USERSPACE_MARKER)?;
    if !seen {
        return Err(failed!(
            "{what}: no `{USERSPACE_MARKER}` ({}); last 40 lines of {}:\n{}",
            outcome.describe(timeout),
            log.display(),
            qemu::tail(&std::fs::read_to_string(log).unwrap_or_default(), 40).trim_end()
        ));
    }
    Ok(outcome.wall)
}

/// Runs both boots; `hypervisor` is the release image.
pub fn run(hypervisor: &Path, pseries: bool, timeout: Duration) -> Result<Vec<String>> {
    let linux = linux::fetch(false)?;
    let manifest_path = bench_path("linux-bench.toml");
    if let Some(dir) = manifest_path.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&manifest_path, manifest(&linux.vmlinux, &linux.initramfs))
        .context(|| format!("writing {}", manifest_path.display()))?;
    let src = partitions::load(&manifest_path)?;
    let size = partitions::size_machine(&src.manifest, 1, 1, None)?;
    let plan = src.resolve()?;
    let bundle = partitions::bundle_path(&src.name);
    partitions::write_bundle(&plan, &bundle)?;
    let cfg = QemuConfig {
        machine: Machine::Powernv9,
        memory_bytes: size.memory,
        smp: qemu::smp_arg(size.cpus, 1)?,
        kernel: hypervisor.to_path_buf(),
        initrd: Some(bundle),
        append: String::new(),
        gdb: false,
        console: Console::Detached,
        extra: Vec::new(),
    };
    let paprika = until_marker(
        &cfg.command(),
        &bench_path("linux-paprika.log"),
        timeout,
        "Paprika",
    )?;
    let reference = if pseries {
        let cmd = Cmd::new(QEMU)
            .args([
                "-M",
                "pseries",
                "-m",
                "512M",
                "-nographic",
                "-nodefaults",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(&linux.vmlinux)
            .arg("-initrd")
            .arg(&linux.initramfs)
            .args(["-append", CMDLINE]);
        Some(until_marker(
            &cmd,
            &bench_path("linux-pseries.log"),
            timeout,
            "-M pseries",
        )?)
    } else {
        None
    };
    Ok(report(paprika, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_side_by_side() {
        let l = report(
            Duration::from_millis(4200),
            Some(Duration::from_millis(4460)),
        );
        assert_eq!(
            l[0],
            "linux.qemu_to_userspace_ms: paprika=4200 pseries=4460 ratio=0.94"
        );
        assert!(l[1].starts_with("linux.qemu_to_userspace_target_met: yes"));
        let l = report(
            Duration::from_millis(5000),
            Some(Duration::from_millis(4000)),
        );
        assert!(l[1].contains(": no"));
        assert_eq!(
            report(Duration::from_millis(7), None),
            vec!["linux.qemu_to_userspace_ms: paprika=7"]
        );
    }

    #[test]
    fn manifest_parses() {
        let m = manifest(Path::new("/k/vmlinux"), Path::new("/k/initramfs.cpio"));
        let parsed = paprika::partition::manifest::parse(&m).unwrap();
        assert_eq!(parsed.partitions[0].kernel, "/k/vmlinux");
        assert_eq!(parsed.partitions[0].cmdline, CMDLINE);
    }
}
