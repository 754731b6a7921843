//! `cargo xtask bench`, virtual network part (docs/vio.md): TCP throughput (64
//! MiB with busybox `nc`, md5 checked) and ping round trip between two Debian
//! partitions on Paprika's virtual switch (powernv9 -smp 2, one vCPU each),
//! next to two `qemu-system-ppc64 -M pseries` guests with `spapr-vlan` joined
//! by a QEMU socket netdev on 127.0.0.1 (`listen=` / `connect=`; never user
//! networking). Same kernel, initramfs and /init roles (`paprika.veth=server`
//! / `client`, MTU 9000) in both.

use std::path::Path;
use std::time::Duration;

use crate::bench::{bench_machine, bench_path};
use crate::cmd::Cmd;
use crate::error::{failed, Result};
use crate::linux;
use crate::qemu::{self};

/// The payload the client sends.
pub const BYTES: u64 = 64 << 20;
const SENT: &str = "PAPRIKA-LINUX veth: sent 67108864 bytes in ";
const PING: &str = "PAPRIKA-LINUX veth: ping round-trip min/avg/max = ";
const MD5_OK: &str = "PAPRIKA-LINUX check veth-tcp-md5: ok";

/// The kernel command line of `role` ("server" at .1 or "client" at .2).
pub fn cmdline(role: &str) -> String {
    let (me, peer) = if role == "server" { (1, 2) } else { (2, 1) };
    format!(
        "console=hvc0 paprika.test=1 paprika.name=bench-{role} paprika.ip=10.9.2.{me}/24 \
         paprika.mtu=9000 paprika.veth={role} paprika.peer=10.9.2.{peer}"
    )
}

/// The Paprika run's manifest: the two partitions on VLAN 1.
pub fn manifest(vmlinux: &Path, initramfs: &Path) -> String {
    let mut s = String::from("# Written by `cargo xtask bench` (docs/benchmarks.md).\n");
    for (i, role) in ["server", "client"].iter().enumerate() {
        s.push_str(&format!(
            "\n[[partition]]\nname = \"bench-{role}\"\nmemory = \"512M\"\nvcpus = 1\n\
             cpus = [{i}]\nkernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\n\
             \n[[partition.net]]\n",
            vmlinux.display(),
            initramfs.display(),
            cmdline(role)
        ));
    }
    s
}

/// What one run measured: transfer time and average ping round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub tcp_ms: u64,
    pub rtt_min_ms: f64,
    pub rtt_avg_ms: f64,
}

/// Reads the client's figures off a console log (Paprika's lines carry a
/// `[bench-client] ` prefix, pseries' none). The server's md5 check is on its
/// own console: see [`figures_of`].
pub fn parse(log: &str) -> Option<Figures> {
    let after = |marker: &str| {
        log.lines()
            .find_map(|l| l.find(marker).map(|i| l[i + marker.len()..].to_string()))
    };
    let tcp_ms = after(SENT)?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    let rtt = after(PING)?;
    let field = |i: usize| rtt.split('/').nth(i)?.trim().parse::<f64>().ok();
    Some(Figures {
        tcp_ms,
        rtt_min_ms: field(0)?,
        rtt_avg_ms: field(1)?,
    })
}

fn mib_per_s(ms: u64) -> f64 {
    (BYTES as f64 / (1 << 20) as f64) / (ms.max(1) as f64 / 1000.0)
}

/// The side-by-side lines.
pub fn report(paprika: Figures, pseries: Option<Figures>) -> Vec<String> {
    let (p_tp, p_rtt) = (mib_per_s(paprika.tcp_ms), paprika.rtt_avg_ms * 1000.0);
    match pseries {
        None => vec![
            format!("veth.tcp_64mib_ms: paprika={}", paprika.tcp_ms),
            format!("veth.tcp_mib_per_s: paprika={p_tp:.2}"),
            format!("veth.ping_rtt_avg_us: paprika={p_rtt:.0}"),
            format!(
                "veth.ping_rtt_min_us: paprika={:.0}",
                paprika.rtt_min_ms * 1000.0
            ),
        ],
        Some(q) => {
            let (q_tp, q_rtt) = (mib_per_s(q.tcp_ms), q.rtt_avg_ms * 1000.0);
            vec![
                format!(
                    "veth.tcp_64mib_ms: paprika={} pseries={} ratio={:.2}",
                    paprika.tcp_ms,
                    q.tcp_ms,
                    paprika.tcp_ms as f64 / q.tcp_ms.max(1) as f64
                ),
                format!(
                    "veth.tcp_mib_per_s: paprika={p_tp:.2} pseries={q_tp:.2} ratio={:.2}",
                    p_tp / q_tp
                ),
                format!(
                    "veth.ping_rtt_avg_us: paprika={p_rtt:.0} pseries={q_rtt:.0} ratio={:.2}",
                    p_rtt / q_rtt.max(1.0)
                ),
                format!(
                    "veth.ping_rtt_min_us: paprika={:.0} pseries={:.0} ratio={:.2}",
                    paprika.rtt_min_ms * 1000.0,
                    q.rtt_min_ms * 1000.0,
                    paprika.rtt_min_ms / q.rtt_min_ms.max(0.001)
                ),
                format!(
                    "veth.throughput_target_met: {}   (target: Paprika >= pseries)",
                    if p_tp >= q_tp { "yes" } else { "no" }
                ),
                format!(
                    "veth.rtt_target_met: {}   (target: Paprika <= pseries)",
                    if p_rtt <= q_rtt { "yes" } else { "no" }
                ),
            ]
        }
    }
}

/// The client's figures from `client_log`, once `server_log` shows the md5
/// matched (one file for Paprika, whose partitions share the console).
fn figures_of(client_log: &Path, server_log: &Path, what: &str) -> Result<Figures> {
    for path in [server_log, client_log] {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let ok = if path == server_log {
            log.contains(MD5_OK)
        } else {
            parse(&log).is_some()
        };
        if !ok {
            return Err(failed!(
                "{what}: no veth figures or md5 mismatch (`{SENT}`, `{PING}`, `{MD5_OK}`); \
                 last 40 lines of {}:\n{}",
                path.display(),
                qemu::tail(&log, 40).trim_end()
            ));
        }
    }
    let log = std::fs::read_to_string(client_log).unwrap_or_default();
    parse(&log).ok_or_else(|| failed!("{what}: no veth figures"))
}

fn run_paprika(hypervisor: &Path, linux: &linux::Linux, timeout: Duration) -> Result<Figures> {
    let cfg = bench_machine(
        hypervisor,
        "veth-bench.toml",
        &manifest(&linux.vmlinux, &linux.initramfs),
        2,
        Vec::new(),
    )?;
    let log = bench_path("veth-paprika.log");
    qemu::run_captured(&cfg.command(), &log, timeout)?;
    figures_of(&log, &log, "Paprika")
}

/// A free TCP port on 127.0.0.1 for the socket netdev.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| failed!("no free port on 127.0.0.1: {e}"))?;
    Ok(l.local_addr()
        .map_err(|e| failed!("no free port on 127.0.0.1: {e}"))?
        .port())
}

/// One pseries guest: `netdev` is `listen=...` or `connect=...`.
fn pseries_cmd(linux: &linux::Linux, role: &str, netdev: &str, mac: &str) -> Cmd {
    crate::bench::pseries_guest("512M")
        .args(["-smp", "1"])
        .arg("-kernel")
        .arg(&linux.vmlinux)
        .arg("-initrd")
        .arg(&linux.initramfs)
        .args(["-append", &cmdline(role)])
        .args(["-netdev", &format!("socket,id=n0,{netdev}")])
        .args(["-device", &format!("spapr-vlan,netdev=n0,mac={mac}")])
}

fn run_pseries(linux: &linux::Linux, timeout: Duration) -> Result<Figures> {
    let port = free_port()?;
    let server = pseries_cmd(
        linux,
        "server",
        &format!("listen=127.0.0.1:{port}"),
        "02:00:00:00:b0:01",
    );
    let client = pseries_cmd(
        linux,
        "client",
        &format!("connect=127.0.0.1:{port}"),
        "02:00:00:00:b0:02",
    );
    let server_log = bench_path("veth-pseries-server.log");
    let client_log = bench_path("veth-pseries-client.log");
    let s = {
        let log = server_log.clone();
        std::thread::spawn(move || qemu::run_captured(&server, &log, timeout))
    };
    // The listener first: `connect=` fails if nobody listens yet.
    std::thread::sleep(Duration::from_secs(2));
    let c = qemu::run_captured(&client, &client_log, timeout);
    let s = s
        .join()
        .map_err(|_| failed!("the pseries server's thread panicked"))?;
    s?;
    c?;
    figures_of(&client_log, &server_log, "pseries")
}

/// Runs both; `hypervisor` is the release image.
pub fn run(hypervisor: &Path, pseries: bool, timeout: Duration) -> Result<Vec<String>> {
    let linux = linux::fetch(false)?;
    let paprika = run_paprika(hypervisor, &linux, timeout)?;
    let reference = if pseries {
        Some(run_pseries(&linux, timeout)?)
    } else {
        None
    };
    Ok(report(paprika, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[bench-client] PAPRIKA-LINUX veth: ping round-trip min/avg/max = 1.120/2.500/4.000 ms\r
[bench-client] PAPRIKA-LINUX veth: sent 67108864 bytes in 16000 ms name=bench-client\r
[bench-server] PAPRIKA-LINUX check veth-tcp-md5: ok\r
";

    #[test]
    fn parses_figures() {
        let f = parse(LOG).unwrap();
        assert_eq!(f.tcp_ms, 16000);
        assert!((f.rtt_avg_ms - 2.5).abs() < 1e-9);
        assert!((f.rtt_min_ms - 1.12).abs() < 1e-9);
        assert_eq!(parse(""), None);
        assert_eq!(parse(&LOG.replace("sent 67108864", "sent 1")), None);
    }

    #[test]
    fn report_lines() {
        let p = Figures {
            tcp_ms: 16000,
            rtt_min_ms: 1.0,
            rtt_avg_ms: 2.5,
        };
        let q = Figures {
            tcp_ms: 32000,
            rtt_min_ms: 2.0,
            rtt_avg_ms: 5.0,
        };
        let l = report(p, Some(q));
        assert_eq!(
            l[0],
            "veth.tcp_64mib_ms: paprika=16000 pseries=32000 ratio=0.50"
        );
        assert_eq!(
            l[1],
            "veth.tcp_mib_per_s: paprika=4.00 pseries=2.00 ratio=2.00"
        );
        assert_eq!(
            l[2],
            "veth.ping_rtt_avg_us: paprika=2500 pseries=5000 ratio=0.50"
        );
        assert_eq!(
            l[3],
            "veth.ping_rtt_min_us: paprika=1000 pseries=2000 ratio=0.50"
        );
        assert!(l[4].starts_with("veth.throughput_target_met: yes"));
        assert!(l[5].starts_with("veth.rtt_target_met: yes"));
        let l = report(q, Some(p));
        assert!(l[4].contains(": no"));
        assert_eq!(report(p, None).len(), 4);
    }

    #[test]
    fn manifest_parses() {
        let m = manifest(Path::new("/k/vmlinux"), Path::new("/k/initramfs.cpio"));
        let parsed = crate::manifest::parse(&m).unwrap();
        assert_eq!(parsed.partitions.len(), 2);
        assert_eq!(parsed.partitions[0].net.len(), 1);
        assert_eq!(parsed.partitions[1].net[0].vlan, 1);
        assert!(parsed.partitions[1].cmdline.contains("paprika.veth=client"));
        assert!(parsed.partitions[1]
            .cmdline
            .contains("paprika.peer=10.9.2.1"));
    }
}
