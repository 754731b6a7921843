//! `cargo xtask bench`, disk part (docs/vscsi.md): the stock Debian kernel reads
//! a 32 MiB vscsi disk inside the guest, sequentially (1 MiB `dd`) and at 4 KiB
//! random offsets (one `dd` each), in a Paprika partition (`[[partition.disk]]`,
//! the in-hypervisor SRP target) and under `qemu-system-ppc64 -M pseries` with
//! QEMU's own `spapr-vscsi` on the same image, in the same run. /init's
//! `paprika.diskbench=1` mode times both with /proc/uptime (10 ms steps).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::{bench_machine, bench_path};
use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::linux;
use crate::qemu::{self};
use crate::setup::QEMU;

const CMDLINE: &str = "console=hvc0 paprika.diskbench=1";
const DONE: &str = "PAPRIKA-LINUX diskbench done";
const FIGURES: &str = "PAPRIKA-LINUX diskbench ";
/// The image: 32 MiB.
const IMAGE_BYTES: usize = 32 << 20;

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFigures {
    pub seq_mbps: f64,
    pub rand_iops: f64,
    /// The same number of `dd bs=4k count=1` processes on /dev/zero, in ms
    /// (the process start-up part of the random-read figure).
    pub proc_ms: Option<f64>,
    /// The random-read loop, in ms.
    pub rand_ms: f64,
}

/// Parses `PAPRIKA-LINUX diskbench seq_bytes=B seq_ms=S rand_reads=N rand_ms=R
/// [proc_ms=P]`.
pub fn parse(log: &str) -> Option<DiskFigures> {
    let line = log
        .lines()
        .filter_map(|l| l.split(FIGURES).nth(1))
        .find(|l| l.starts_with("seq_bytes="))?;
    let field = |k: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))?
            .trim()
            .parse()
            .ok()
    };
    let (bytes, seq_ms) = (field("seq_bytes")?, field("seq_ms")?.max(1.0));
    let (reads, rand_ms) = (field("rand_reads")?, field("rand_ms")?.max(1.0));
    Some(DiskFigures {
        seq_mbps: bytes / (1 << 20) as f64 / (seq_ms / 1000.0),
        rand_iops: reads / (rand_ms / 1000.0),
        proc_ms: field("proc_ms"),
        rand_ms,
    })
}

/// The side-by-side lines (ratio Paprika / pseries; the target is at least
/// pseries').
pub fn report(paprika: DiskFigures, pseries: Option<DiskFigures>) -> Vec<String> {
    let mut l = Vec::new();
    for (name, p, q) in [
        (
            "disk.seq_read_mib_s",
            paprika.seq_mbps,
            pseries.map(|r| r.seq_mbps),
        ),
        (
            "disk.rand4k_read_iops",
            paprika.rand_iops,
            pseries.map(|r| r.rand_iops),
        ),
    ] {
        match q {
            Some(q) => {
                l.push(format!(
                    "{name}: paprika={p:.1} pseries={q:.1} ratio={:.2}",
                    p / q.max(f64::MIN_POSITIVE)
                ));
                l.push(format!(
                    "{name}_target_met: {}   (target: Paprika >= pseries)",
                    if p >= q { "yes" } else { "no" }
                ));
            }
            None => l.push(format!("{name}: paprika={p:.1}")),
        }
    }
    // Where the random-read loop's time goes: the same processes on /dev/zero,
    // and the rest (the reads themselves).
    if let Some(pp) = paprika.proc_ms {
        let io = paprika.rand_ms - pp;
        match pseries.and_then(|q| Some((q.proc_ms?, q.rand_ms - q.proc_ms?))) {
            Some((qp, qio)) => {
                l.push(format!(
                    "disk.rand4k_proc_ms: paprika={pp:.0} pseries={qp:.0} ratio={:.2}",
                    pp / qp.max(f64::MIN_POSITIVE)
                ));
                l.push(format!(
                    "disk.rand4k_io_ms: paprika={io:.0} pseries={qio:.0} ratio={:.2}",
                    io / qio.max(f64::MIN_POSITIVE)
                ));
            }
            None => {
                l.push(format!("disk.rand4k_proc_ms: paprika={pp:.0}"));
                l.push(format!("disk.rand4k_io_ms: paprika={io:.0}"));
            }
        }
    }
    l
}

fn image() -> Result<PathBuf> {
    let path = bench_path("disk-bench.img");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == IMAGE_BYTES as u64) {
        return Ok(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let mut x: u32 = 0x9e37_79b9;
    let data: Vec<u8> = (0..IMAGE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&path, data).context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Paprika's exit profile, printed when the partition powers off after
/// [`DONE`]: the Paprika run waits for it.
const EXITS: &str = "PAPRIKA lpar-exits:";

fn run_one(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    what: &str,
    marker: &str,
) -> Result<DiskFigures> {
    let (outcome, seen) = qemu::run_until(cmd, log, timeout, marker)?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match parse(&text) {
        Some(f) if seen => Ok(f),
        _ => Err(failed!(
            "{what}: no `{DONE}` with figures ({}); last 40 lines of {}:\n{}",
            outcome.describe(timeout),
            log.display(),
            qemu::tail(&text, 40).trim_end()
        )),
    }
}

/// The disk manifest of the Paprika run: one partition of 512 MiB, one vCPU,
/// the image read-only.
pub fn manifest(vmlinux: &Path, initramfs: &Path, disk: &Path) -> String {
    format!(
        "# Written by `cargo xtask bench` (docs/benchmarks.md).\n\
         [[partition]]\n\
         name = \"linux\"\n\
         memory = \"512M\"\n\
         vcpus = 1\n\
         cpus = [0]\n\
         kernel = \"{}\"\n\
         initrd = \"{}\"\n\
         cmdline = \"{CMDLINE}\"\n\
         \n\
         [[partition.disk]]\n\
         image = \"{}\"\n\
         readonly = true\n",
        vmlinux.display(),
        initramfs.display(),
        disk.display()
    )
}

/// Runs both; `hypervisor` is the release image.
pub fn run(hypervisor: &Path, pseries: bool, timeout: Duration) -> Result<Vec<String>> {
    let linux = linux::fetch(false)?;
    let disk = image()?;
    let cfg = bench_machine(
        hypervisor,
        "disk-bench.toml",
        &manifest(&linux.vmlinux, &linux.initramfs, &disk),
        1,
        Vec::new(),
    )?;
    let paprika = run_one(
        &cfg.command(),
        &bench_path("disk-paprika.log"),
        timeout,
        "Paprika",
        EXITS,
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
                "-device",
                "spapr-vscsi,id=scsi0",
                "-drive",
            ])
            .arg(format!(
                "file={},if=none,format=raw,readonly=on,id=d0",
                disk.display()
            ))
            .args(["-device", "scsi-hd,drive=d0,bus=scsi0.0,scsi-id=0,lun=0"])
            .arg("-kernel")
            .arg(&linux.vmlinux)
            .arg("-initrd")
            .arg(&linux.initramfs)
            .args(["-append", CMDLINE]);
        Some(run_one(
            &cmd,
            &bench_path("disk-pseries.log"),
            timeout,
            "-M pseries",
            DONE,
        )?)
    } else {
        None
    };
    let mut lines = report(paprika, reference);
    // The exit profile of the Paprika run, where its time went.
    let log = std::fs::read_to_string(bench_path("disk-paprika.log")).unwrap_or_default();
    if let Some(exits) = log.lines().find_map(|l| l.split(EXITS).nth(1)) {
        lines.push(format!("disk.paprika_exits:{}", exits.trim_end()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports() {
        let log = "[linux] PAPRIKA-LINUX diskbench seq_bytes=33554432 seq_ms=2000 \
                   rand_reads=400 rand_ms=4000\r\n[linux] PAPRIKA-LINUX diskbench done\r\n";
        let f = parse(log).unwrap();
        assert!((f.seq_mbps - 16.0).abs() < 1e-9);
        assert!((f.rand_iops - 100.0).abs() < 1e-9);
        assert_eq!(f.proc_ms, None);
        let q = DiskFigures {
            seq_mbps: 8.0,
            rand_iops: 200.0,
            proc_ms: None,
            rand_ms: 2000.0,
        };
        let l = report(f, Some(q));
        assert_eq!(
            l[0],
            "disk.seq_read_mib_s: paprika=16.0 pseries=8.0 ratio=2.00"
        );
        assert!(l[1].contains(": yes"));
        assert_eq!(
            l[2],
            "disk.rand4k_read_iops: paprika=100.0 pseries=200.0 ratio=0.50"
        );
        assert!(l[3].contains(": no"));
        assert_eq!(report(f, None).len(), 2);
        let log = "PAPRIKA-LINUX diskbench seq_bytes=33554432 seq_ms=2000 \
                   rand_reads=400 rand_ms=4000 proc_ms=3000\r\n";
        let f = parse(log).unwrap();
        assert_eq!(f.proc_ms, Some(3000.0));
        let q = DiskFigures {
            proc_ms: Some(1000.0),
            ..q
        };
        let l = report(f, Some(q));
        assert_eq!(
            l[4],
            "disk.rand4k_proc_ms: paprika=3000 pseries=1000 ratio=3.00"
        );
        assert_eq!(
            l[5],
            "disk.rand4k_io_ms: paprika=1000 pseries=1000 ratio=1.00"
        );
        assert!(parse("PAPRIKA-LINUX diskbench done").is_none());
        let m = manifest(Path::new("/k"), Path::new("/i"), Path::new("/d.img"));
        let parsed = crate::manifest::parse(&m).unwrap();
        assert!(parsed.partitions[0].disks[0].readonly);
    }
}
