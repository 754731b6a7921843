//! `cargo xtask bench`, Linux part: wall time from QEMU's start to the stock Debian
//! kernel's userspace marker in a Paprika partition (powernv9: skiboot, the
//! hypervisor's own boot, partition creation and Linux), next to the same kernel and
//! initramfs under `qemu-system-ppc64 -M pseries` with its default firmware (SLOF).
//! The same twice more for the hashed page table (issue 15): a `mmu = "hash"`
//! partition and `-M pseries`, both booted with `disable_radix`.

use std::path::Path;
use std::time::Duration;

use crate::bench::{bench_machine, bench_path, pseries_guest};
use crate::cmd::Cmd;
use crate::error::{failed, Result};
use crate::linux::{self, USERSPACE_MARKER};
use crate::qemu::{self};

/// The kernel command line in both runs (test mode: /init checks, then powers off).
const CMDLINE: &str = "console=hvc0 paprika.test=1";
/// What the hash runs add: Linux takes the hashed page table (on pseries, which
/// offers both; a `mmu = "hash"` partition offers only it), and /init checks
/// /proc/cpuinfo says so.
const HASH_CMDLINE: &str = "disable_radix paprika.mmu=hash";

/// Which translation a benchmark boot runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mmu {
    Radix,
    Hash,
}

impl Mmu {
    /// The kernel command line of a boot with this MMU.
    pub fn cmdline(self) -> String {
        match self {
            Mmu::Radix => CMDLINE.to_string(),
            Mmu::Hash => format!("{CMDLINE} {HASH_CMDLINE}"),
        }
    }
}

/// The manifest of the Paprika run: one partition, 512 MiB, one vCPU on thread 0.
///
/// The machine has one hardware thread (`-smp 1`), like the reference's one
/// vCPU: the hypervisor's boot thread then runs the vCPU. Every extra emulated
/// thread makes the guest slower under TCG even when it idles in `stop`: each
/// global `tlbie` the guest issues (Linux's code patching does tens of thousands
/// at boot) makes QEMU flush the TLBs of all its vCPUs, waking the idle ones.
///
/// With `vcpus` > 1 the same partition with vCPUs on threads 0..vcpus-1
/// (`-smp vcpus`): the SMP run of the 4-vCPU / 1-vCPU ratio. With
/// [`Mmu::Hash`] the partition is `mmu = "hash"` and Linux boots with
/// `disable_radix`.
pub fn manifest_smp(vmlinux: &Path, initramfs: &Path, vcpus: u32, mmu: Mmu) -> String {
    let cpus: Vec<String> = (0..vcpus).map(|c| c.to_string()).collect();
    let mmu_line = match mmu {
        Mmu::Radix => "",
        Mmu::Hash => "mmu = \"hash\"\n",
    };
    format!(
        "# Written by `cargo xtask bench` (docs/benchmarks.md).\n\
         [[partition]]\n\
         name = \"linux\"\n\
         memory = \"512M\"\n\
         vcpus = {vcpus}\n\
         cpus = [{}]\n\
         kernel = \"{}\"\n\
         initrd = \"{}\"\n\
         cmdline = \"{}\"\n\
         {mmu_line}",
        cpus.join(", "),
        vmlinux.display(),
        initramfs.display(),
        mmu.cmdline()
    )
}

/// vCPUs of the SMP run.
pub const SMP_VCPUS: u32 = 4;
/// Issue 16's target: a 4-vCPU boot at most 1.3 times a 1-vCPU boot.
pub const SMP_RATIO_TARGET: f64 = 1.3;

/// The lines of the SMP run: its time and its ratio to the 1-vCPU run, and
/// with `pseries` (its 1-vCPU and 4-vCPU boots) the same ratio of QEMU's
/// `-M pseries`: under TCG every vCPU is a host thread, so on a host with fewer
/// cores than vCPUs the ratio measures the host as much as the hypervisor, and
/// the reference on the same host says how much.
pub fn smp_report(
    one: Duration,
    four: Duration,
    pseries: Option<(Duration, Duration)>,
) -> Vec<String> {
    let (a, b) = (one.as_millis(), four.as_millis());
    let ratio = b as f64 / (a.max(1)) as f64;
    let mut l = vec![
        format!("linux.smp{SMP_VCPUS}_qemu_to_userspace_ms: {b}"),
        format!(
            "linux.smp{SMP_VCPUS}_vs_smp1_ratio: {ratio:.2}   ({SMP_VCPUS} vCPUs on -smp \
             {SMP_VCPUS} / 1 vCPU on -smp 1)"
        ),
        format!(
            "linux.smp{SMP_VCPUS}_vs_smp1_target_met: {}   (target: <= {SMP_RATIO_TARGET})",
            if ratio <= SMP_RATIO_TARGET {
                "yes"
            } else {
                "no"
            }
        ),
    ];
    if let Some((p1, p4)) = pseries {
        let (c, d) = (p1.as_millis(), p4.as_millis());
        let reference = d as f64 / (c.max(1)) as f64;
        l.push(format!(
            "linux.smp{SMP_VCPUS}_vs_smp1_ratio_pseries: {reference:.2}   (-M pseries -smp \
             {SMP_VCPUS}: {d} ms / -smp 1: {c} ms, {} host cores)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
    }
    l
}

/// Formats the side-by-side lines.
pub fn report(paprika: Duration, pseries: Option<Duration>) -> Vec<String> {
    let mut l = side_by_side("linux.qemu_to_userspace_ms", paprika, pseries);
    if let Some(r) = pseries {
        let (p, q) = (paprika.as_millis(), r.as_millis());
        l.push(format!(
            "linux.qemu_to_userspace_target_met: {}   (target: Paprika < pseries)",
            if p < q { "yes" } else { "no" }
        ));
    }
    l
}

/// The lines of the hash runs (no target: issue 15 asks for the figures).
pub fn hash_report(paprika: Duration, pseries: Option<Duration>) -> Vec<String> {
    side_by_side("linux.hash_qemu_to_userspace_ms", paprika, pseries)
}

/// `name: paprika=N pseries=N ratio=R`, or `name: paprika=N` alone.
fn side_by_side(name: &str, paprika: Duration, pseries: Option<Duration>) -> Vec<String> {
    let p = paprika.as_millis();
    match pseries {
        Some(r) => {
            let q = r.as_millis();
            let ratio = p as f64 / (q.max(1)) as f64;
            vec![format!("{name}: paprika={p} pseries={q} ratio={ratio:.2}")]
        }
        None => vec![format!("{name}: paprika={p}")],
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

/// Boots Linux in a Paprika partition of `vcpus` vCPUs (manifest
/// target/bench/<files.0>.toml, console target/bench/<files.1>.log); QEMU start
/// to the userspace marker.
fn boot_paprika(
    hypervisor: &Path,
    linux: &linux::Linux,
    (vcpus, mmu): (u32, Mmu),
    files: (&str, &str),
    timeout: Duration,
) -> Result<Duration> {
    let cfg = bench_machine(
        hypervisor,
        &format!("{}.toml", files.0),
        &manifest_smp(&linux.vmlinux, &linux.initramfs, vcpus, mmu),
        vcpus,
        Vec::new(),
    )?;
    until_marker(
        &cfg.command(),
        &bench_path(&format!("{}.log", files.1)),
        timeout,
        &format!("Paprika, {vcpus} vCPU(s), {mmu:?}"),
    )
}

/// Boots the same kernel and initramfs under `-M pseries -m 512M` (SLOF);
/// QEMU start to the userspace marker, console in target/bench/<log>.
fn boot_pseries(
    linux: &linux::Linux,
    (vcpus, mmu): (u32, Mmu),
    log: &str,
    timeout: Duration,
) -> Result<Duration> {
    let cmd = pseries_guest("512M")
        .arg("-smp")
        .arg(vcpus.to_string())
        .arg("-kernel")
        .arg(&linux.vmlinux)
        .arg("-initrd")
        .arg(&linux.initramfs)
        .arg("-append")
        .arg(mmu.cmdline());
    until_marker(
        &cmd,
        &bench_path(log),
        timeout,
        &format!("-M pseries, {vcpus} vCPU(s), {mmu:?}"),
    )
}

/// Runs the boots; `hypervisor` is the release image.
pub fn run(hypervisor: &Path, pseries: bool, timeout: Duration) -> Result<Vec<String>> {
    let linux = linux::fetch(false)?;
    let paprika = boot_paprika(
        hypervisor,
        &linux,
        (1, Mmu::Radix),
        ("linux-bench", "linux-paprika"),
        timeout,
    )?;
    let smp = boot_paprika(
        hypervisor,
        &linux,
        (SMP_VCPUS, Mmu::Radix),
        ("linux-bench-smp4", "linux-paprika-smp4"),
        timeout,
    )?;
    let hash = boot_paprika(
        hypervisor,
        &linux,
        (1, Mmu::Hash),
        ("linux-bench-hash", "linux-paprika-hash"),
        timeout,
    )?;
    let (reference, smp_reference, hash_reference) = if pseries {
        let one = boot_pseries(&linux, (1, Mmu::Radix), "linux-pseries.log", timeout)?;
        let four = boot_pseries(
            &linux,
            (SMP_VCPUS, Mmu::Radix),
            "linux-pseries-smp4.log",
            timeout,
        )?;
        let hash = boot_pseries(&linux, (1, Mmu::Hash), "linux-pseries-hash.log", timeout)?;
        (Some(one), Some((one, four)), Some(hash))
    } else {
        (None, None, None)
    };
    let mut lines = report(paprika, reference);
    lines.extend(smp_report(paprika, smp, smp_reference));
    lines.extend(hash_report(hash, hash_reference));
    Ok(lines)
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
    fn smp_ratio() {
        let l = smp_report(
            Duration::from_millis(3000),
            Duration::from_millis(8700),
            None,
        );
        assert_eq!(l.len(), 3);
        assert_eq!(l[0], "linux.smp4_qemu_to_userspace_ms: 8700");
        assert!(
            l[1].starts_with("linux.smp4_vs_smp1_ratio: 2.90 "),
            "{}",
            l[1]
        );
        assert!(l[2].starts_with("linux.smp4_vs_smp1_target_met: no "));
        let l = smp_report(
            Duration::from_millis(3000),
            Duration::from_millis(3900),
            Some((Duration::from_millis(4000), Duration::from_millis(7000))),
        );
        assert!(l[2].starts_with("linux.smp4_vs_smp1_target_met: yes "));
        assert!(
            l[3].starts_with(
                "linux.smp4_vs_smp1_ratio_pseries: 1.75   (-M pseries -smp 4: 7000 ms / -smp 1: 4000 ms"
            ),
            "{}",
            l[3]
        );
        let m = manifest_smp(Path::new("/k/v"), Path::new("/k/i"), 4, Mmu::Radix);
        let parsed = crate::manifest::parse(&m).unwrap();
        assert_eq!(parsed.partitions[0].cpus, [0, 1, 2, 3]);
        assert_eq!(parsed.partitions[0].vcpus, 4);
    }

    #[test]
    fn manifest_parses() {
        let m = manifest_smp(
            Path::new("/k/vmlinux"),
            Path::new("/k/initramfs.cpio"),
            1,
            Mmu::Radix,
        );
        let parsed = crate::manifest::parse(&m).unwrap();
        assert_eq!(parsed.partitions[0].kernel, "/k/vmlinux");
        assert_eq!(parsed.partitions[0].cmdline, CMDLINE);
        assert_eq!(
            parsed.partitions[0].mmu,
            paprika::partition::manifest::MmuMode::Radix
        );
    }

    #[test]
    fn hash_run() {
        let m = manifest_smp(Path::new("/k/v"), Path::new("/k/i"), 1, Mmu::Hash);
        let p = &crate::manifest::parse(&m).unwrap().partitions[0];
        assert_eq!(p.mmu, paprika::partition::manifest::MmuMode::Hash);
        // The kernel takes hash and /init checks it; pseries gets the same line.
        assert_eq!(
            p.cmdline,
            "console=hvc0 paprika.test=1 disable_radix paprika.mmu=hash"
        );
        assert_eq!(Mmu::Hash.cmdline(), p.cmdline);
        assert_eq!(
            hash_report(
                Duration::from_millis(9000),
                Some(Duration::from_millis(6000))
            ),
            vec!["linux.hash_qemu_to_userspace_ms: paprika=9000 pseries=6000 ratio=1.50"]
        );
        assert_eq!(
            hash_report(Duration::from_millis(9000), None),
            vec!["linux.hash_qemu_to_userspace_ms: paprika=9000"]
        );
    }
}
