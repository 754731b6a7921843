//! `cargo xtask bench`, disk part (docs/vscsi.md): the stock Debian kernel reads
//! a 32 MiB vscsi disk inside the guest, sequentially (1 MiB `dd`) and at 4 KiB
//! random offsets (one `dd` each), in a Paprika partition (`[[partition.disk]]`,
//! the in-hypervisor SRP target) and under `qemu-system-ppc64 -M pseries` with
//! QEMU's own `spapr-vscsi` on the same image, in the same run. /init's
//! `paprika.diskbench=1` mode times both with /proc/uptime (10 ms steps).
//!
//! [`run_passthrough`]: the same kernel reads a passed-through virtio-blk-pci
//! and nvme function (docs/passthrough.md) in a Paprika partition on powernv9,
//! next to the same devices emulated by `-M pseries`, same images, same /init
//! mode (`paprika.diskbench=vda,nvme0n1`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::{bench_machine, bench_path, pseries_guest};
use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::linux;
use crate::qemu::{self};

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
        let cmd = pseries_guest("512M")
            .args(["-device", "spapr-vscsi,id=scsi0", "-drive"])
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

// ---------------------------------------------------------------------------
// Pass-through disks: virtio-blk-pci and nvme owned by a Paprika partition vs
// the same devices emulated by -M pseries.

/// The two disks, in the order /init reads them: the Linux device, the prefix
/// of the figures and the QEMU device of each.
const PT_DISKS: [(&str, &str); 2] = [("vda", "virtio_blk"), ("nvme0n1", "nvme")];
/// Each image: 128 MiB of `qemu::disk_pattern`.
pub const PT_IMAGE_BYTES: u64 = 128 << 20;
/// Whole-disk reads per device (the figure is their median).
pub const PT_PASSES: usize = 8;
const PT_CMDLINE: &str = "console=hvc0 paprika.diskbench=vda,nvme0n1 paprika.diskpasses=8";
const PT_DEV: &str = "PAPRIKA-LINUX diskbench dev=";
const PT_MARK: &str = "PAPRIKA-LINUX diskbench mark ";
const PT_DUMP: &str = "PAPRIKA dump: ";

/// What /init types after each mark on Paprika: Ctrl-A d (the hypervisor
/// dumps the vCPUs with their exit counts), then the line /init waits for.
/// The hypervisor runs the dump right after handing the newline over, long
/// before the woken shell starts the next `dd`.
const PT_PAPRIKA_INPUT: &[qemu::Input] = &[
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark vda-start",
        send: "\x01d\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark vda-end",
        send: "\x01d\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark nvme0n1-start",
        send: "\x01d\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark nvme0n1-end",
        send: "\x01d\n",
    },
];
/// The same on pseries: only the newline.
const PT_PSERIES_INPUT: &[qemu::Input] = &[
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark vda-start",
        send: "\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark vda-end",
        send: "\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark nvme0n1-start",
        send: "\n",
    },
    qemu::Input {
        after: "PAPRIKA-LINUX diskbench mark nvme0n1-end",
        send: "\n",
    },
];

/// One disk's passes, from `PAPRIKA-LINUX diskbench dev=D bytes=B mode=M
/// us=T1,T2,.. reads=R sectors=S irqs=I irq=NAME md5=H`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPasses {
    pub dev: String,
    pub bytes: u64,
    /// O_DIRECT reads (else buffered, caches dropped before each pass).
    pub direct: bool,
    /// Each pass, in microseconds (each `dd` from its start to its exit).
    pub us: Vec<u64>,
    /// Block-layer read requests and 512-byte sectors over all passes.
    pub reads: u64,
    pub sectors: u64,
    /// The device's interrupts over all passes.
    pub irqs: u64,
    pub md5: String,
}

impl DiskPasses {
    /// MiB/s of each pass.
    fn rates(&self) -> Vec<f64> {
        let mib = self.bytes as f64 / (1u64 << 20) as f64;
        self.us
            .iter()
            .map(|&us| mib / (us.max(1) as f64 / 1e6))
            .collect()
    }

    /// The median pass (the mean of the middle two for an even count).
    pub fn median_mib_s(&self) -> f64 {
        let mut r = self.rates();
        r.sort_by(f64::total_cmp);
        match r.len() {
            0 => 0.0,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }

    /// The fastest pass.
    pub fn best_mib_s(&self) -> f64 {
        self.rates().into_iter().fold(0.0, f64::max)
    }

    /// `total / passes`, rounded.
    fn per_pass(&self, total: u64) -> u64 {
        let n = self.us.len().max(1) as u64;
        (total + n / 2) / n
    }
}

/// Every disk line of a console log (Paprika's carry a `[linux] ` prefix).
pub fn parse_passes(log: &str) -> Vec<DiskPasses> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(PT_DEV)? + PT_DEV.len() - "dev=".len()..];
            let field = |k: &str| {
                rest.split_whitespace()
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
            };
            let num = |k: &str| field(k)?.parse::<u64>().ok();
            let us = field("us")?
                .split(',')
                .map(|t| t.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some(DiskPasses {
                dev: field("dev")?.to_string(),
                bytes: num("bytes")?,
                direct: field("mode")? == "direct",
                us,
                reads: num("reads")?,
                sectors: num("sectors")?,
                irqs: num("irqs")?,
                md5: field("md5")?.to_string(),
            })
        })
        .collect()
}

/// The hypervisor's exit count (all vCPUs) at each mark: the `PAPRIKA dump:`
/// lines between a mark and the next, the first line of each vCPU.
pub fn mark_exits(log: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut current: Option<usize> = None;
    for l in log.lines() {
        if let Some(at) = l.find(PT_MARK) {
            let name = l[at + PT_MARK.len()..].trim().to_string();
            out.push((name, 0));
            current = Some(out.len() - 1);
            seen.clear();
            continue;
        }
        let (Some(i), Some(at)) = (current, l.find(PT_DUMP)) else {
            continue;
        };
        let line = &l[at + PT_DUMP.len()..];
        // `<partition> vCPU <n> <state> ... exits=<n>`
        let vcpu = line
            .split(" vCPU ")
            .nth(1)
            .and_then(|r| r.split(' ').next());
        let exits = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("exits=")?.parse::<u64>().ok());
        if let (Some(vcpu), Some(exits)) = (vcpu, exits) {
            if !seen.iter().any(|v| v == vcpu) {
                seen.push(vcpu.to_string());
                out[i].1 += exits;
            }
        }
    }
    out
}

/// Exits between `<dev>-start` and `<dev>-end` (`None` without both dumps).
pub fn exits_during(marks: &[(String, u64)], dev: &str) -> Option<u64> {
    // A mark without a dump after it counts 0: only a dumped mark is usable.
    let at = |m: String| marks.iter().find(|(n, e)| *n == m && *e > 0).map(|x| x.1);
    let (a, b) = (at(format!("{dev}-start"))?, at(format!("{dev}-end"))?);
    b.checked_sub(a)
}

/// One side's figures: each disk's passes, and (Paprika) the exits during them.
#[derive(Debug, Clone, PartialEq)]
pub struct PtSide {
    pub disks: Vec<DiskPasses>,
    pub exits: Vec<(String, u64)>,
}

/// Checks a side: every disk read `PT_PASSES` times, whole, with the image's
/// MD5.
pub fn check_side(side: &PtSide, what: &str, md5: &str) -> std::result::Result<(), String> {
    for (dev, _) in PT_DISKS {
        let Some(d) = side.disks.iter().find(|d| d.dev == dev) else {
            return Err(format!("{what}: no figures for /dev/{dev}"));
        };
        if d.us.len() != PT_PASSES {
            return Err(format!(
                "{what}: /dev/{dev}: {} passes, want {PT_PASSES}",
                d.us.len()
            ));
        }
        if d.bytes != PT_IMAGE_BYTES {
            return Err(format!(
                "{what}: /dev/{dev} is {} bytes, want {PT_IMAGE_BYTES}",
                d.bytes
            ));
        }
        if d.md5 != md5 {
            return Err(format!(
                "{what}: /dev/{dev} has md5 {}, the image {md5}",
                d.md5
            ));
        }
    }
    Ok(())
}

/// The result lines. Throughput: the median pass (and the best) in MiB/s,
/// ratio Paprika / pseries; then, per pass, the block layer's read requests,
/// the device's interrupts and (Paprika) the partition's full exits.
pub fn report_passthrough(paprika: &PtSide, pseries: Option<&PtSide>) -> Vec<String> {
    let mut l = Vec::new();
    let pair = |name: String, p: f64, q: Option<f64>, prec: usize| match q {
        Some(q) => format!(
            "{name}: paprika={p:.prec$} pseries={q:.prec$} ratio={:.2}",
            p / q.max(f64::MIN_POSITIVE)
        ),
        None => format!("{name}: paprika={p:.prec$}"),
    };
    for (dev, key) in PT_DISKS {
        let find = |s: &PtSide| s.disks.iter().find(|d| d.dev == dev).cloned();
        let Some(p) = find(paprika) else { continue };
        let q = pseries.and_then(find);
        l.push(pair(
            format!("passthrough.{key}_seq_read_mib_s"),
            p.median_mib_s(),
            q.as_ref().map(|q| q.median_mib_s()),
            1,
        ));
        l.push(pair(
            format!("passthrough.{key}_seq_read_best_mib_s"),
            p.best_mib_s(),
            q.as_ref().map(|q| q.best_mib_s()),
            1,
        ));
        for (what, get) in [
            (
                "reads",
                (|d: &DiskPasses| d.reads) as fn(&DiskPasses) -> u64,
            ),
            ("irqs", |d: &DiskPasses| d.irqs),
        ] {
            let v = |d: &DiskPasses| d.per_pass(get(d)) as f64;
            l.push(pair(
                format!("passthrough.{key}_{what}_per_pass"),
                v(&p),
                q.as_ref().map(v),
                0,
            ));
        }
        // Every pass, for the spread.
        let passes = |d: &DiskPasses| {
            let ms: Vec<String> =
                d.us.iter()
                    .map(|u| format!("{}", (u + 500) / 1000))
                    .collect();
            ms.join(",")
        };
        l.push(match &q {
            Some(q) => format!(
                "passthrough.{key}_pass_ms: paprika={} pseries={}",
                passes(&p),
                passes(q)
            ),
            None => format!("passthrough.{key}_pass_ms: paprika={}", passes(&p)),
        });
        if let Some(e) = exits_during(&paprika.exits, dev) {
            l.push(format!(
                "passthrough.{key}_exits_per_pass: paprika={}",
                p.per_pass(e)
            ));
        }
    }
    let mode = |s: &PtSide| {
        if s.disks.iter().all(|d| d.direct) {
            "direct"
        } else {
            "cached"
        }
    };
    l.push(match pseries {
        Some(q) => format!(
            "passthrough.disk_read_mode: paprika={} pseries={}",
            mode(paprika),
            mode(q)
        ),
        None => format!("passthrough.disk_read_mode: paprika={}", mode(paprika)),
    });
    l
}

/// The Paprika run's manifest: one 512 MiB partition, one vCPU on thread 0
/// of a one-thread machine (as the other Linux benchmarks: an idle emulated
/// thread costs the guest time under TCG), owning the virtio-blk-pci
/// (0001:01:00.0) and the nvme (0002:01:00.0).
pub fn pt_manifest(vmlinux: &Path, initramfs: &Path) -> String {
    format!(
        "# Written by `cargo xtask bench` (docs/benchmarks.md).\n\
         [[partition]]\n\
         name = \"linux\"\n\
         memory = \"512M\"\n\
         vcpus = 1\n\
         cpus = [0]\n\
         kernel = \"{}\"\n\
         initrd = \"{}\"\n\
         cmdline = \"{PT_CMDLINE}\"\n\
         devices = [\"{}\", \"{}\"]\n",
        vmlinux.display(),
        initramfs.display(),
        qemu::passthrough_address(0),
        qemu::passthrough_address(1),
    )
}

/// The MD5 of `path` by the host's `md5sum`.
fn md5_file(path: &Path) -> Result<String> {
    let out = std::process::Command::new("md5sum")
        .arg(path)
        .output()
        .map_err(|e| failed!("md5sum {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if h.len() == 32 && out.status.success() => Ok(h.to_string()),
        _ => Err(failed!("md5sum {} printed {text:?}", path.display())),
    }
}

fn run_pt_side(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    what: &str,
    marker: &str,
    script: &[qemu::Input],
    md5: &str,
) -> Result<PtSide> {
    let (outcome, seen, _) = qemu::run_scripted_until(cmd, log, timeout, marker, script)?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let side = PtSide {
        disks: parse_passes(&text),
        exits: mark_exits(&text),
    };
    let problem = if !seen {
        Some(format!("no `{marker}`"))
    } else {
        check_side(&side, what, md5).err()
    };
    match problem {
        None => Ok(side),
        Some(p) => Err(failed!(
            "{what}: {p} ({}); last 40 lines of {}:\n{}",
            outcome.describe(timeout),
            log.display(),
            qemu::tail(&text, 40).trim_end()
        )),
    }
}

/// Runs both sides of the pass-through disk benchmark; `hypervisor` is the
/// release image.
pub fn run_passthrough(hypervisor: &Path, pseries: bool, timeout: Duration) -> Result<Vec<String>> {
    let linux = linux::fetch(false)?;
    let images = [
        bench_path("ptdisk-virtio-blk.img"),
        bench_path("ptdisk-nvme.img"),
    ];
    for img in &images {
        qemu::write_disk_pattern(img, PT_IMAGE_BYTES)?;
    }
    let md5 = md5_file(&images[0])?;
    let [blk, nvme] = images;
    let cfg = bench_machine(
        hypervisor,
        "ptdisk-bench.toml",
        &pt_manifest(&linux.vmlinux, &linux.initramfs),
        1,
        qemu::passthrough_args(&[
            qemu::PassDevice::VirtioBlk(blk.clone()),
            qemu::PassDevice::Nvme(nvme.clone()),
        ]),
    )?;
    qemu::refuse_unsafe_dma(&cfg.extra)?;
    let paprika = run_pt_side(
        &cfg.command(),
        &bench_path("ptdisk-paprika.log"),
        timeout,
        "Paprika",
        EXITS,
        PT_PAPRIKA_INPUT,
        &md5,
    )?;
    let reference = if pseries {
        // The same device models on the pseries machine's own PHB: the
        // virtio-blk modern-only behind the (emulated) IOMMU as on Paprika.
        let cmd = pseries_guest("512M")
            .arg("-drive")
            .arg(format!(
                "file={},if=none,id=ptdisk0,format=raw",
                blk.display()
            ))
            .args([
                "-device",
                "virtio-blk-pci,drive=ptdisk0,iommu_platform=on,disable-legacy=on",
                "-drive",
            ])
            .arg(format!(
                "file={},if=none,id=ptdisk1,format=raw",
                nvme.display()
            ))
            .args(["-device", "nvme,drive=ptdisk1,serial=paprika1"])
            .arg("-kernel")
            .arg(&linux.vmlinux)
            .arg("-initrd")
            .arg(&linux.initramfs)
            .args(["-append", PT_CMDLINE]);
        Some(run_pt_side(
            &cmd,
            &bench_path("ptdisk-pseries.log"),
            timeout,
            "-M pseries",
            DONE,
            PT_PSERIES_INPUT,
            &md5,
        )?)
    } else {
        None
    };
    let mut lines = report_passthrough(&paprika, reference.as_ref());
    let log = std::fs::read_to_string(bench_path("ptdisk-paprika.log")).unwrap_or_default();
    if let Some(exits) = log.lines().find_map(|l| l.split(EXITS).nth(1)) {
        lines.push(format!(
            "passthrough.disk_paprika_exits:{}",
            exits.trim_end()
        ));
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

    /// A Paprika console: the disk lines, the dumps after each mark, the exit
    /// profile.
    const PT_LOG: &str = "\
[linux] PAPRIKA-LINUX diskbench mark vda-start
[    9.1] cpu 0/hv INFO  PAPRIKA console: Ctrl-A d: vCPU dump
[    9.1] cpu 0/hv INFO  PAPRIKA dump: linux vCPU 0 ceded pc=0xc000000000001000 msr=0x8000000000009033 (SF|EE|ME|IR|DR|RI|LE) lr=0xc000000000001000 last-exit=0xc00 (System Call) hcall=0xe0 exits=1000
[    9.2] cpu 0/hv INFO  PAPRIKA dump: linux vCPU 0 ceded pc=0x0 msr=0x0 () lr=0x0 last-exit=0xc00 (System Call) hcall=0xe0 exits=1001
[linux] PAPRIKA-LINUX diskbench mark vda-end
[   19.1] cpu 0/hv INFO  PAPRIKA dump: linux vCPU 0 ceded pc=0x0 msr=0x0 () lr=0x0 last-exit=0xc00 (System Call) hcall=0xe0 exits=9000
[linux] PAPRIKA-LINUX diskbench dev=vda bytes=134217728 mode=direct us=1000000,500000,2000000,1000000,1000000,1000000,1000000,1000000 reads=1024 sectors=2097152 irqs=1030 irq=virtio0-req md5=0123456789abcdef0123456789abcdef
[linux] PAPRIKA-LINUX diskbench mark nvme0n1-start
[linux] PAPRIKA-LINUX diskbench mark nvme0n1-end
[linux] PAPRIKA-LINUX diskbench dev=nvme0n1 bytes=134217728 mode=direct us=2000000,2000000,2000000,2000000,4000000,4000000,4000000,4000000 reads=4096 sectors=2097152 irqs=4100 irq=nvme0q md5=0123456789abcdef0123456789abcdef
[linux] PAPRIKA-LINUX diskbench dev=sdz missing
[linux] PAPRIKA-LINUX diskbench done
";
    const PT_MD5: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn passthrough_figures_from_the_console() {
        let d = parse_passes(PT_LOG);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].dev, "vda");
        assert!(d[0].direct);
        assert_eq!(d[0].us[..3], [1_000_000, 500_000, 2_000_000]);
        assert_eq!((d[0].reads, d[0].sectors, d[0].irqs), (1024, 2097152, 1030));
        // 128 MiB: 128 MiB/s a second; median of 64, 128 x6, 256.
        assert!((d[0].median_mib_s() - 128.0).abs() < 1e-9);
        assert!((d[0].best_mib_s() - 256.0).abs() < 1e-9);
        // Even count: the middle two (64 and 32) averaged.
        assert!((d[1].median_mib_s() - 48.0).abs() < 1e-9);
        let marks = mark_exits(PT_LOG);
        assert_eq!(marks[0], ("vda-start".to_string(), 1000));
        assert_eq!(exits_during(&marks, "vda"), Some(8000));
        // No dump after the nvme marks: no figure rather than 0.
        assert_eq!(exits_during(&marks, "nvme0n1"), None);

        let paprika = PtSide {
            disks: d.clone(),
            exits: marks,
        };
        assert_eq!(check_side(&paprika, "Paprika", PT_MD5), Ok(()));
        let err = check_side(&paprika, "Paprika", "ffff").unwrap_err();
        assert!(err.contains("/dev/vda has md5"), "{err}");
        let mut short = paprika.clone();
        short.disks[1].us.pop();
        assert!(check_side(&short, "x", PT_MD5)
            .unwrap_err()
            .contains("7 passes"));
        short.disks.remove(1);
        assert!(check_side(&short, "x", PT_MD5)
            .unwrap_err()
            .contains("nvme0n1"));

        let mut q = d;
        q[0].us = vec![500_000; 8];
        q[0].direct = false;
        let pseries = PtSide {
            disks: q,
            exits: Vec::new(),
        };
        let l = report_passthrough(&paprika, Some(&pseries));
        assert_eq!(
            l[0],
            "passthrough.virtio_blk_seq_read_mib_s: paprika=128.0 pseries=256.0 ratio=0.50"
        );
        assert_eq!(
            l[1],
            "passthrough.virtio_blk_seq_read_best_mib_s: paprika=256.0 pseries=256.0 ratio=1.00"
        );
        assert_eq!(
            l[2],
            "passthrough.virtio_blk_reads_per_pass: paprika=128 pseries=128 ratio=1.00"
        );
        assert_eq!(
            l[3],
            "passthrough.virtio_blk_irqs_per_pass: paprika=129 pseries=129 ratio=1.00"
        );
        assert_eq!(
            l[4],
            "passthrough.virtio_blk_pass_ms: paprika=1000,500,2000,1000,1000,1000,1000,1000 \
             pseries=500,500,500,500,500,500,500,500"
        );
        assert_eq!(l[5], "passthrough.virtio_blk_exits_per_pass: paprika=1000");
        assert_eq!(
            l[6],
            "passthrough.nvme_seq_read_mib_s: paprika=48.0 pseries=48.0 ratio=1.00"
        );
        assert_eq!(
            l.last().unwrap(),
            "passthrough.disk_read_mode: paprika=direct pseries=cached"
        );
        let alone = report_passthrough(&paprika, None);
        assert_eq!(
            alone[0],
            "passthrough.virtio_blk_seq_read_mib_s: paprika=128.0"
        );
    }

    #[test]
    fn passthrough_manifest_and_scripts() {
        let m = pt_manifest(Path::new("/k"), Path::new("/i"));
        let parsed = crate::manifest::parse(&m).unwrap();
        assert_eq!(parsed.partitions[0].devices.len(), 2);
        assert!(m.contains("paprika.diskbench=vda,nvme0n1"));
        assert!(PT_CMDLINE.contains(&format!("paprika.diskpasses={PT_PASSES}")));
        // Each mark /init prints is typed after, on both sides, in order.
        for script in [PT_PAPRIKA_INPUT, PT_PSERIES_INPUT] {
            let marks: Vec<String> = PT_DISKS
                .iter()
                .flat_map(|(d, _)| [format!("{PT_MARK}{d}-start"), format!("{PT_MARK}{d}-end")])
                .collect();
            let after: Vec<&str> = script.iter().map(|i| i.after).collect();
            assert_eq!(after, marks);
            assert!(script.iter().all(|i| i.send.ends_with('\n')));
        }
        assert!(PT_PAPRIKA_INPUT.iter().all(|i| i.send.starts_with("\x01d")));
        // The /init arm: after the vscsi one (`=1` must not reach it), with
        // the marks and the line format parsed here.
        let init = crate::linux::INIT;
        let vscsi = init.find("*\" paprika.diskbench=1 \"*)").unwrap();
        let pt = init.find("*\" paprika.diskbench=\"*)").unwrap();
        assert!(vscsi < pt);
        assert!(init[pt..].contains("echo \"PAPRIKA-LINUX diskbench mark $1\""));
        assert!(init[pt..].contains("echo \"PAPRIKA-LINUX diskbench dev=$dev bytes="));
        assert!(init[pt..].contains(" us=$times reads=$((r1 - r0)) sectors="));
    }
}
