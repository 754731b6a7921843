//! The nested-virtualization figures of `cargo xtask bench`: `guest-nested`
//! (tests/guests/nested) in a `nested = true` partition times an hcall of its
//! own (H_PROD of itself) and an hcall of its L2 as it handles it (the L2's
//! `sc 1` returned by H_ENTER_NESTED, then entered again). See
//! docs/benchmarks.md.

use std::path::Path;
use std::time::Duration;

use crate::bench::{bench_machine, bench_path};
use crate::error::{failed, Context, Result};
use crate::qemu::{self};

/// The manifest of the run (target/bench/nested-bench.toml).
const MANIFEST: &str = "\
# Written by `cargo xtask bench`: the nested benchmark (docs/benchmarks.md).
[[partition]]
name = \"nested\"
memory = \"128M\"
vcpus = 1
cpus = [1]
kernel = \"@guest/guest-nested\"
console = true
nested = true
";

/// The timebase frequency of QEMU's powernv machines.
const TB_HZ: f64 = 512_000_000.0;

/// The figures `guest-nested` prints: `BENCH l1_hcall_ticks=N`,
/// `BENCH l2_hcall_ticks=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub l1: u64,
    pub l2: u64,
}

/// Finds the figures in a console log.
pub fn parse(log: &str) -> Option<Figures> {
    let value = |key: &str| {
        log.lines().find_map(|l| {
            let at = l.find(key)?;
            l[at + key.len()..].trim().parse::<u64>().ok()
        })
    };
    Some(Figures {
        l1: value("BENCH l1_hcall_ticks=")?,
        l2: value("BENCH l2_hcall_ticks=")?,
    })
}

/// The result lines.
pub fn report(f: &Figures) -> Vec<String> {
    let us = |t: u64| t as f64 * 1e6 / TB_HZ;
    let ratio = f.l2 as f64 / f.l1.max(1) as f64;
    vec![
        format!(
            "nested.hcall_ticks: l1={} l2={} ratio={ratio:.1}",
            f.l1, f.l2
        ),
        format!(
            "nested.hcall_us: l1={:.2} l2={:.2} ratio={ratio:.1}",
            us(f.l1),
            us(f.l2)
        ),
    ]
}

/// Boots the release image with `guest-nested` (built already) on powernv9.
pub fn run(hypervisor: &Path, timeout: Duration) -> Result<Vec<String>> {
    let cfg = bench_machine(hypervisor, "nested-bench.toml", MANIFEST, 4, Vec::new())?;
    let log_path = bench_path("nested.log");
    let outcome = qemu::run_captured(&cfg.command(), &log_path, timeout)?;
    let log = String::from_utf8_lossy(
        &std::fs::read(&log_path).context(|| format!("reading {}", log_path.display()))?,
    )
    .into_owned();
    match (outcome.code(), parse(&log)) {
        (Some(0), Some(f)) => Ok(report(&f)),
        _ => Err(failed!(
            "nested benchmark: QEMU ended with {} (figures {}); console in {}:\n{}",
            outcome.describe(timeout),
            if parse(&log).is_some() {
                "found"
            } else {
                "missing"
            },
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
[    0.1] cpu 0/hv INFO  lpar nested (LPID 1): 128 MiB
[nested] BENCH iterations=1000
[nested] BENCH l1_hcall_ticks=191
[nested] BENCH l2_hcall_ticks=28414
[nested] GUEST-DONE passed=54 failed=0
";
        let f = parse(log).unwrap();
        assert_eq!(f, Figures { l1: 191, l2: 28414 });
        let r = report(&f);
        assert_eq!(r[0], "nested.hcall_ticks: l1=191 l2=28414 ratio=148.8");
        assert_eq!(r[1], "nested.hcall_us: l1=0.37 l2=55.50 ratio=148.8");
        assert_eq!(parse("[nested] BENCH l1_hcall_ticks=5\n"), None);
    }

    #[test]
    fn manifest_is_valid() {
        let m = crate::manifest::parse(MANIFEST).unwrap();
        assert!(m.partitions[0].nested);
    }
}
