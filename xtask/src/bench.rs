//! `cargo xtask bench`: boot a release build once per machine and report figures,
//! then run the partition benchmark (`lpar_bench`).

use std::time::Duration;

use crate::build::{self, BuildOpts, Profile};
use crate::cli::BenchArgs;
use crate::error::{failed, Context, Result};
use crate::lpar_bench;
use crate::qemu::{self, Console, Machine, QemuConfig};
use crate::scenarios::{self, BOOT_TIME};
use crate::{elf, guests, repo_root, setup};

/// The long description of `cargo xtask bench --help` (the options are listed by
/// clap from `cli::BenchArgs`).
pub const ABOUT: &str = "\
Builds the release image and boots it once per machine (-smp 4, -m 2G),
console in target/bench/<machine>.log. Then the partition benchmark: the
guest-bench guest (tests/guests/bench) times hcalls in a Paprika partition
(manifest target/bench/lpar-bench.toml, powernv9 -smp 4, console in
target/bench/lpar-paprika.log) and, as the reference, under
`qemu-system-ppc64 -M pseries` (console in target/bench/lpar-pseries.log).
Prints `name: value` lines:

  image_size_bytes: N                       size of the ELF file
  image_loadable_bytes: N                   sum of p_filesz of its PT_LOAD segments
  <machine>.boot_to_all_online_ticks: N     from `PAPRIKA boot-time: ticks=N us=N`
  <machine>.boot_to_all_online_us: N        (the hypervisor's own timebase count)
  <machine>.boot_to_all_online_target_met: yes|no (target: < 50000 us)
  <machine>.qemu_to_poweroff_wall_ms: N     QEMU start to exit, wall clock
  lpar.hcall_null_ticks: paprika=N pseries=N ratio=R
                                            H_PROD round trip, timebase ticks
  lpar.hcall_null_us: paprika=F pseries=F ratio=R
                                            ... in microseconds
  lpar.hcall_full_ticks: ...                H_GET_CPU_CHARACTERISTICS round trip:
                                            Paprika's full exit path (no fast path)
  lpar.hcall_full_us: ...                   ... in microseconds
  lpar.put_term_char16_ticks: ...           H_PUT_TERM_CHAR of 16 bytes, ticks
  lpar.put_term_char16_us: ...              ... in microseconds
  lpar.iterations: N                        calls averaged per figure
  lpar.memory_overhead_bytes: N             hypervisor memory for the partition
  lpar.memory_overhead_target_met: yes|no   (target: < 65536 bytes; not reachable:
                                            the 64 KiB partition-scoped root table
                                            POWER9/Power10 require counts)
  lpar.put_term_char16_target_met: yes|no   (target: Paprika <= pseries)
  lpar.hcall_null_instructions: N           hypervisor instructions of one H_PROD:
                                            guest-bench alone on powernv9 -smp 1
                                            under QEMU -icount shift=0
                                            (target/bench/lpar-icount.vcon.log)
  lpar.hcall_null_instructions_target_met: yes|no (target: < 150)
  lpar.hcall_full_instructions: N           the same for H_GET_CPU_CHARACTERISTICS:
                                            the full exit, guest entry and dispatch
  nested.hcall_ticks: l1=N l2=N ratio=R     nested virtualization (guest-nested in a
  nested.hcall_us: l1=F l2=F ratio=R        `nested = true` partition, powernv9,
                                            console target/bench/nested.log): an
                                            hcall of the L1 (H_PROD of itself) vs
                                            an hcall of its L2 as the L1 handles
                                            it (back from H_ENTER_NESTED as trap
                                            0xc00, entered again); skipped with
                                            --skip-lpar
  passthrough.msi_latency_us: N            a passed-through virtio-blk-pci's
                                            MSI-X: a 4 KiB read's request to the
                                            guest's interrupt handler, mean of 8
                                            reads per boot over 2 boots (guest-pci
                                            on powernv9, ESB polling at most every
                                            1 ms while the vCPU cedes; console
                                            target/bench/msi.log); skipped with
                                            --skip-lpar
  passthrough.msi_latency_max_us: N         ... the worst read
  passthrough.polled_read_us: N             the same read polled, for comparison
  linux.qemu_to_userspace_ms: paprika=N pseries=N ratio=R
                                            Debian's kernel (`linux fetch`) from
                                            QEMU start to its userspace marker:
                                            powernv9 -smp 1 with skiboot and Paprika
                                            (512M, 1 vCPU) vs -M pseries -m 512M
                                            with SLOF (target/bench/linux-*.log)
  linux.qemu_to_userspace_target_met: yes|no (target: Paprika < pseries)
  linux.smp4_qemu_to_userspace_ms: N        the same partition with 4 vCPUs on
                                            powernv9 -smp 4
                                            (target/bench/linux-paprika-smp4.log)
  linux.smp4_vs_smp1_ratio: R               4-vCPU time / 1-vCPU time
  linux.smp4_vs_smp1_target_met: yes|no     (target: <= 1.3)
  linux.smp4_vs_smp1_ratio_pseries: R       the same ratio of -M pseries -smp 4 / -smp 1
                                            on this host (under TCG each vCPU is a
                                            host thread: the host's cores bound it)
  linux.hash_qemu_to_userspace_ms: paprika=N pseries=N ratio=R
                                            the same with the hashed page table:
                                            a `mmu = \"hash\"` partition (512M, 1
                                            vCPU, powernv9 -smp 1) vs -M pseries
                                            -m 512M, both with `disable_radix`
                                            (target/bench/linux-*-hash.log)
  veth.tcp_64mib_ms: paprika=N pseries=N ratio=R
                                            64 MiB over TCP (busybox nc, MTU 9000,
                                            md5 checked) between two Debian
                                            partitions on Paprika's switch
                                            (powernv9 -smp 2, target/bench/
                                            veth-paprika.log) vs two -M pseries
                                            guests with spapr-vlan joined by
                                            -netdev socket on 127.0.0.1
                                            (target/bench/veth-pseries-*.log)
  veth.tcp_mib_per_s: paprika=F pseries=F ratio=R
  veth.ping_rtt_avg_us: paprika=F pseries=F ratio=R
                                            ping -A -c 30 (each ping once the
                                            last reply came): average round trip
  veth.ping_rtt_min_us: paprika=F pseries=F ratio=R
                                            ... and the fastest
  veth.throughput_target_met: yes|no        (target: Paprika >= pseries)
  veth.rtt_target_met: yes|no               (target: Paprika <= pseries)
  disk.seq_read_mib_s: paprika=F pseries=F ratio=R
                                            the same kernel reading a 32 MiB vscsi
                                            disk inside the guest (dd bs=1M after
                                            drop_caches): a [[partition.disk]] on
                                            Paprika vs spapr-vscsi + scsi-hd on
                                            -M pseries, same image
                                            (target/bench/disk-*.log)
  disk.seq_read_mib_s_target_met: yes|no    (target: Paprika >= pseries)
  disk.rand4k_read_iops: paprika=F pseries=F ratio=R
                                            400 dd bs=4k count=1 at spread offsets,
                                            readahead off (one process each, so
                                            process start-up weighs in)
  disk.rand4k_read_iops_target_met: yes|no  (target: Paprika >= pseries)
                                            (the disk.* lines: skipped with
                                            --skip-vscsi-disk or --skip-linux)
  passthrough.virtio_blk_seq_read_mib_s: paprika=F pseries=F ratio=R
                                            the same kernel reading a 128 MiB
                                            virtio-blk-pci disk whole, 8 times
                                            (dd bs=1M iflag=direct), median pass:
                                            the function passed through to a
                                            Paprika partition (512M, 1 vCPU,
                                            powernv9) vs emulated by -M pseries
                                            -m 512M, same image
                                            (target/bench/ptdisk-*.log);
                                            skipped with --skip-passthrough-disk
  passthrough.virtio_blk_seq_read_best_mib_s: ...  the fastest pass
  passthrough.virtio_blk_reads_per_pass: ...  block-layer read requests a pass
  passthrough.virtio_blk_irqs_per_pass: ...   the device's interrupts a pass
  passthrough.virtio_blk_pass_ms: paprika=T,.. pseries=T,..  each pass
  passthrough.virtio_blk_exits_per_pass: paprika=N
                                            the partition's full exits a pass
                                            (Ctrl-A d's vCPU dump before and after)
  passthrough.nvme_*: ...                   the same for an nvme function
  passthrough.disk_read_mode: paprika=direct|cached pseries=...
                                            O_DIRECT, or buffered with caches
                                            dropped before each pass
  passthrough.disk_paprika_exits: ...       the Paprika run's whole exit profile

The ratio is Paprika / pseries. Under emulation pseries serves hcalls inside
QEMU, in C: see docs/benchmarks.md before reading much into it.";

const SMP: &str = "4";
const MEMORY: u64 = 2 << 30;

pub fn main(args: BenchArgs) -> Result<i32> {
    let BenchArgs {
        machine: machines,
        timeout,
        no_build,
        skip_lpar,
        skip_linux,
        skip_linux_boot,
        skip_veth,
        skip_vscsi_disk,
        skip_passthrough_disk,
        skip_pseries,
        lpar_timeout,
    } = args;
    let timeout = Duration::from_secs(timeout);
    let lpar_timeout = Duration::from_secs(lpar_timeout);
    let machines = if machines.is_empty() {
        Machine::ALL.to_vec()
    } else {
        machines
    };

    setup::ensure_tools()?;
    let release = BuildOpts::new(Profile::Release, &[]);
    let elf_path = if no_build {
        release.elf()
    } else {
        build::build(&release)?
    };
    if !skip_lpar && !no_build && guests::build_all(Profile::Release)?.is_none() {
        return Err(failed!(
            "the partition benchmark needs tests/guests/bench ({}); --skip-lpar skips it",
            guests::NO_GUESTS
        ));
    }
    let image = std::fs::read(&elf_path).context(|| format!("reading {}", elf_path.display()))?;
    let mut results = vec![
        format!("image_size_bytes: {}", image.len()),
        format!("image_loadable_bytes: {}", elf::loadable_bytes(&image)?),
    ];

    for machine in machines {
        let cfg = QemuConfig {
            machine,
            memory_bytes: MEMORY,
            smp: SMP.to_string(),
            kernel: elf_path.clone(),
            initrd: None,
            append: String::new(),
            gdb: false,
            console: Console::Detached,
            extra: Vec::new(),
        };
        let log_path = repo_root()
            .join("target")
            .join("bench")
            .join(format!("{}.log", machine.name()));
        let outcome = qemu::run_captured(&cfg.command(), &log_path, timeout)?;
        let log = String::from_utf8_lossy(
            &std::fs::read(&log_path).context(|| format!("reading {}", log_path.display()))?,
        )
        .into_owned();
        let boot_time = scenarios::boot_time(&log);
        let problem = if outcome.code() != Some(0) {
            Some(format!("QEMU ended with {}", outcome.describe(timeout)))
        } else if boot_time.is_none() {
            Some(format!(
                "no `{BOOT_TIME} ticks=<N> us=<N>` line on the console"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            print_results(&results);
            let stderr = std::fs::read(qemu::stderr_log(&log_path)).unwrap_or_default();
            let stderr = String::from_utf8_lossy(&stderr);
            let stderr = if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\nQEMU's stderr:\n{}", qemu::tail(&stderr, 20).trim_end())
            };
            return Err(failed!(
                "{}: {problem}; last 60 lines of {}:\n{}{stderr}",
                machine.name(),
                log_path.display(),
                qemu::tail(&log, 60).trim_end()
            ));
        }
        let (ticks, us) = boot_time.unwrap_or_default();
        let m = machine.name();
        results.push(format!("{m}.boot_to_all_online_ticks: {ticks}"));
        results.push(format!("{m}.boot_to_all_online_us: {us}"));
        results.push(boot_target_line(m, us));
        results.push(format!(
            "{m}.qemu_to_poweroff_wall_ms: {}",
            outcome.wall.as_millis()
        ));
    }
    let opts = lpar_bench::Opts {
        hypervisor: elf_path.clone(),
        pseries: !skip_pseries,
        timeout: lpar_timeout,
    };
    // The benchmarks in their order, each with whether it runs; the first that
    // fails ends the run after printing what the others measured.
    type Bench<'a> = Box<dyn Fn() -> Result<Vec<String>> + 'a>;
    let benches: [(bool, Bench); 7] = [
        (!skip_lpar, Box::new(|| lpar_bench::run(&opts))),
        (
            !skip_lpar,
            Box::new(|| crate::nested_bench::run(&elf_path, lpar_timeout)),
        ),
        (
            !skip_lpar,
            Box::new(|| crate::msi_bench::run(&elf_path, lpar_timeout)),
        ),
        (
            !skip_linux && !skip_linux_boot,
            Box::new(|| crate::linux_bench::run(&elf_path, !skip_pseries, lpar_timeout)),
        ),
        (
            !skip_veth,
            Box::new(|| crate::veth_bench::run(&elf_path, !skip_pseries, lpar_timeout)),
        ),
        (
            !skip_linux && !skip_vscsi_disk,
            Box::new(|| crate::disk_bench::run(&elf_path, !skip_pseries, lpar_timeout)),
        ),
        (
            !skip_passthrough_disk,
            Box::new(|| crate::disk_bench::run_passthrough(&elf_path, !skip_pseries, lpar_timeout)),
        ),
    ];
    for (_, bench) in benches.iter().filter(|(on, _)| *on) {
        match bench() {
            Ok(lines) => results.extend(lines),
            Err(e) => {
                print_results(&results);
                return Err(e);
            }
        }
    }
    print_results(&results);
    Ok(0)
}

/// A file of the benchmarks: target/bench/<file>.
/// The pseries reference guest every Linux benchmark starts from: `-M pseries`
/// with `memory`, no default devices, the console on standard I/O.
pub fn pseries_guest(memory: &str) -> crate::cmd::Cmd {
    crate::cmd::Cmd::new(crate::setup::QEMU).args([
        "-M",
        "pseries",
        "-m",
        memory,
        "-nographic",
        "-nodefaults",
        "-serial",
        "stdio",
    ])
}

pub fn bench_path(file: &str) -> std::path::PathBuf {
    repo_root().join("target").join("bench").join(file)
}

/// The Paprika side of a benchmark: writes `manifest` to target/bench/<name>,
/// builds its boot bundle and returns the powernv9 machine that boots
/// `hypervisor` with it (at least `min_cpus` threads, console detached, `extra`
/// QEMU arguments).
pub fn bench_machine(
    hypervisor: &std::path::Path,
    name: &str,
    manifest: &str,
    min_cpus: u32,
    extra: Vec<String>,
) -> Result<QemuConfig> {
    let path = bench_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, manifest).context(|| format!("writing {}", path.display()))?;
    let src = crate::partitions::load(&path)?;
    let size = crate::partitions::size_machine(&src.manifest, min_cpus, 1, None)?;
    let plan = src.resolve()?;
    let bundle = crate::partitions::bundle_path(&src.name);
    crate::partitions::write_bundle(&plan, &bundle)?;
    Ok(QemuConfig {
        machine: Machine::Powernv9,
        memory_bytes: size.memory,
        smp: qemu::smp_arg(size.cpus, 1)?,
        kernel: hypervisor.to_path_buf(),
        initrd: Some(bundle),
        append: String::new(),
        gdb: false,
        console: Console::Detached,
        extra,
    })
}

fn print_results(results: &[String]) {
    println!();
    for line in results {
        println!("{line}");
    }
}

/// Issue 16's target for `<machine>.boot_to_all_online_us`: hypervisor entry to
/// every thread online in under 50 ms.
pub const BOOT_TARGET_US: u64 = 50_000;

/// `<machine>.boot_to_all_online_target_met: yes|no   (target: < 50000 us)`.
fn boot_target_line(machine: &str, us: u64) -> String {
    format!(
        "{machine}.boot_to_all_online_target_met: {}   (target: < {BOOT_TARGET_US} us)",
        if us < BOOT_TARGET_US { "yes" } else { "no" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_target() {
        assert_eq!(
            boot_target_line("powernv9", 49_999),
            "powernv9.boot_to_all_online_target_met: yes   (target: < 50000 us)"
        );
        assert!(boot_target_line("powernv10", 50_000).contains(": no "));
    }
}
