//! The pass-through MSI figures of `cargo xtask bench`: `guest-pci`
//! (tests/guests/pci) owns a passed-through virtio-blk-pci on powernv9 and
//! times 4 KiB reads completed by their MSI-X interrupt (request to the
//! guest's 0x500 handler) against the same read polled. Each boot of the
//! partition (it reboots once) prints `GUEST-FIGURES msi_latency_us=N
//! msi_latency_max_us=N polled_read_us=N`; the bench reports their mean and
//! the worst. See docs/benchmarks.md and docs/passthrough.md ("MSI").

use std::path::Path;
use std::time::Duration;

use crate::bench::{bench_machine, bench_path};
use crate::error::{failed, Context, Result};
use crate::qemu::{self, PassDevice};

/// The manifest of the run (target/bench/msi-bench.toml).
const MANIFEST: &str = "\
# Written by `cargo xtask bench`: the pass-through MSI benchmark (docs/benchmarks.md).
[[partition]]
name = \"pci\"
memory = \"256M\"
vcpus = 1
cpus = [1]
kernel = \"@guest/guest-pci\"
devices = [\"0001:01:00.0\"]
expect = \"GUEST-DONE passed=\"
";

/// One boot's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub latency_us: u64,
    pub latency_max_us: u64,
    pub polled_us: u64,
}

/// Every boot's figures in a console log.
pub fn parse(log: &str) -> Vec<Figures> {
    log.lines()
        .filter_map(|l| {
            let at = l.find("GUEST-FIGURES msi_latency_us=")?;
            let rest = &l[at + "GUEST-FIGURES ".len()..];
            let value = |key: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key)?.parse::<u64>().ok())
            };
            Some(Figures {
                latency_us: value("msi_latency_us=")?,
                latency_max_us: value("msi_latency_max_us=")?,
                polled_us: value("polled_read_us=")?,
            })
        })
        .collect()
}

/// The result lines (`None` without figures).
pub fn report(f: &[Figures]) -> Option<Vec<String>> {
    let n = f.len() as u64;
    if n == 0 {
        return None;
    }
    let mean = |g: fn(&Figures) -> u64| f.iter().map(g).sum::<u64>() / n;
    Some(vec![
        format!("passthrough.msi_latency_us: {}", mean(|x| x.latency_us)),
        format!(
            "passthrough.msi_latency_max_us: {}",
            f.iter().map(|x| x.latency_max_us).max().unwrap_or(0)
        ),
        format!("passthrough.polled_read_us: {}", mean(|x| x.polled_us)),
    ])
}

/// Boots the release image with `guest-pci` (built already) on powernv9.
pub fn run(hypervisor: &Path, timeout: Duration) -> Result<Vec<String>> {
    let disk = bench_path("msi-bench.img");
    let cfg = bench_machine(
        hypervisor,
        "msi-bench.toml",
        MANIFEST,
        4,
        qemu::passthrough_args(&[PassDevice::VirtioBlk(disk.clone())]),
    )?;
    qemu::write_disk_pattern(&disk, crate::scenarios::PT_DISK_BYTES)?;
    let log_path = bench_path("msi.log");
    let outcome = qemu::run_captured(&cfg.command(), &log_path, timeout)?;
    let log = String::from_utf8_lossy(
        &std::fs::read(&log_path).context(|| format!("reading {}", log_path.display()))?,
    )
    .into_owned();
    match (outcome.code(), report(&parse(&log))) {
        (Some(0), Some(lines)) => Ok(lines),
        (_, found) => Err(failed!(
            "MSI benchmark: QEMU ended with {} (figures {}); console in {}:\n{}",
            outcome.describe(timeout),
            if found.is_some() { "found" } else { "missing" },
            log_path.display(),
            qemu::tail(&log, 30).trim_end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_the_console() {
        let log = "\
[pci] GUEST-PASS msix-interrupt-read
[pci] GUEST-FIGURES msi_latency_us=1113 msi_latency_max_us=2264 polled_read_us=1480
[pci] GUEST-FIGURES disk_checksum=0xbda78001 bytes=262144 read_kib_per_s=14969
[pci] GUEST-FIGURES msi_latency_us=1105 msi_latency_max_us=1493 polled_read_us=5846
";
        let f = parse(log);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0],
            Figures {
                latency_us: 1113,
                latency_max_us: 2264,
                polled_us: 1480
            }
        );
        assert_eq!(
            report(&f).unwrap(),
            [
                "passthrough.msi_latency_us: 1109",
                "passthrough.msi_latency_max_us: 2264",
                "passthrough.polled_read_us: 3663",
            ]
        );
        assert_eq!(
            report(&parse("[pci] GUEST-FIGURES msi_latency_us=5\n")),
            None
        );
    }

    #[test]
    fn manifest_is_valid() {
        let m = crate::manifest::parse(MANIFEST).unwrap();
        assert_eq!(m.partitions[0].devices.len(), 1);
    }
}
