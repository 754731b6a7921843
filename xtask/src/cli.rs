//! The command line of xtask, declared with `clap` (derive): one struct of options
//! per subcommand. The long descriptions live beside each command's code
//! (`run::ABOUT`, ...); the option lists `--help` prints are generated from the
//! fields below, so they cannot drift from what is parsed.
//!
//! Help and errors are plain text (clap's `color` feature is off). A repeated
//! option takes its last value (`args_override_self`), except the ones that
//! collect every value (`--features`, `bench --machine`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::qemu::{self, Machine};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "xtask: build, run, test and benchmark the Paprika hypervisor",
    after_help = "`cargo xtask help <command>` or `cargo xtask <command> --help` says more.\n\
                  Every external command is printed before it runs, prefixed with `$ `.",
    disable_version_flag = true,
    args_override_self = true,
    help_template = "{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}{after-help}",
    subcommand_help_heading = "Commands"
)]
pub struct Cli {
    /// None: print the help (status 0).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check for the tools Paprika needs; install missing ones (Debian 12, root)
    #[command(long_about = crate::setup::ABOUT)]
    Setup(SetupArgs),
    /// Cross-build the hypervisor ELF (and with --guests the test guests)
    #[command(long_about = crate::build::ABOUT)]
    Build(BuildArgs),
    /// Build, then boot under QEMU (powernv9/10), console here; partitions too
    #[command(long_about = crate::run::ABOUT)]
    // Boxed: its many options make it far larger than the other commands.
    Run(Box<RunArgs>),
    /// Fetch Debian's ppc64el kernel and busybox, build an initramfs
    #[command(long_about = crate::linux::ABOUT)]
    Linux(LinuxArgs),
    /// fmt, clippy, host unit tests, POWER builds and QEMU boot scenarios
    #[command(long_about = crate::test::ABOUT)]
    Test(TestArgs),
    /// Time and size figures of a release build, against QEMU -M pseries
    #[command(long_about = crate::bench::ABOUT)]
    Bench(BenchArgs),
}

/// The message of an error, without the `(see cargo xtask help)` of usage
/// errors: clap adds its own pointer to `--help`.
fn message(e: Error) -> String {
    match e {
        Error::Usage(m) | Error::Failed(m) | Error::Invalid(m) => m,
    }
}

fn machine(s: &str) -> Result<Machine, String> {
    Machine::parse(s).map_err(message)
}

fn size(s: &str) -> Result<u64, String> {
    qemu::parse_size(s).map_err(message)
}

/// A count or a number of seconds: at least 1.
fn at_least_one(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("want a number, got `{s}`")),
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Only check; list what is missing and exit 1 if anything is
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Optimised build (the `release` profile; default: `dev`)
    #[arg(long)]
    pub release: bool,
    /// Cargo features of paprika-boot, comma separated (e.g. fault-test)
    #[arg(long, value_name = "LIST")]
    pub features: Vec<String>,
    /// Also build the test guests (with --release: release guests)
    #[arg(long)]
    pub guests: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// powernv9 or powernv10
    #[arg(long, value_name = "M", default_value = "powernv9", value_parser = machine)]
    pub machine: Machine,
    /// Hardware threads in total (default 4)
    ///
    /// With partitions at least the highest `cpus` entry + 1.
    #[arg(verbatim_doc_comment, long, value_name = "N")]
    pub smp: Option<u32>,
    /// Threads per core: -smp N,cores=N/T,threads=T
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: u32,
    /// RAM, e.g. 1G, 1536M (default 2G; see --help)
    ///
    /// With --manifest at least the partitions' memory + 512M (the default);
    /// with --kernel or --linux the partition's memory (default 256M; 512M with
    /// --linux) and the machine gets 512M more (at least 1G).
    #[arg(verbatim_doc_comment, long, value_name = "SIZE", value_parser = size)]
    pub memory: Option<u64>,
    /// Boot a release build
    #[arg(long)]
    pub release: bool,
    /// Cargo features of the build (e.g. fault-test)
    #[arg(long, value_name = "LIST")]
    pub features: Vec<String>,
    /// Boot this hypervisor ELF instead of building one
    #[arg(long, value_name = "ELF")]
    pub hypervisor: Option<PathBuf>,
    /// The hypervisor's command line (QEMU -append)
    #[arg(long, value_name = "STR")]
    pub hv_append: Option<String>,
    /// QEMU waits for a debugger on tcp::1234 (-s -S)
    #[arg(long)]
    pub gdb: bool,
    /// A virtio console whose output goes to FILE (docs/console.md)
    ///
    /// Gives the machine a virtio console behind a PHB whose output goes to
    /// FILE: the hypervisor moves the console's output there once it is up
    /// (bulk writes instead of the UART's byte at a time; input stays on the
    /// terminal).
    #[arg(verbatim_doc_comment, long, value_name = "FILE")]
    pub virtio_console: Option<PathBuf>,
    /// A PCI function for the manifest's `devices` (docs/passthrough.md)
    ///
    /// KIND:ARG, repeatable: virtio-blk:FILE (a raw image; always with
    /// iommu_platform=on), nvme:FILE or e1000e:HUB (a QEMU hub, never the host
    /// network). The i-th (from 0) sits behind its own PHB as 000<i+1>:01:00.0.
    /// A virtio device without iommu_platform=on among the QEMU arguments is
    /// refused: its DMA would bypass the PHB.
    #[arg(verbatim_doc_comment, long, value_name = "KIND:ARG")]
    pub passthrough: Vec<String>,
    /// The hypervisor alone, no partitions
    ///
    /// --append is then the hypervisor's command line.
    #[arg(verbatim_doc_comment, long)]
    pub bare: bool,
    /// Run the partitions FILE describes (docs/manifest.md)
    ///
    /// Kernel and initrd paths are relative to FILE's directory,
    /// `@guest/<package>` is a test guest (target/guests/<package>.elf, built
    /// first).
    #[arg(
        verbatim_doc_comment,
        long,
        value_name = "FILE",
        help_heading = "Partitions"
    )]
    pub manifest: Option<PathBuf>,
    /// Run one partition, `lpar1`, booting PATH (console on)
    #[arg(long, value_name = "PATH", help_heading = "Partitions")]
    pub kernel: Option<String>,
    /// ... with this initrd
    #[arg(long, value_name = "PATH", help_heading = "Partitions")]
    pub initrd: Option<String>,
    /// ... with this command line (Linux: added to it)
    ///
    /// With --manifest, added to every partition's command line (e.g.
    /// paprika.seed=N replays a test guest's run).
    #[arg(
        verbatim_doc_comment,
        long,
        value_name = "STR",
        help_heading = "Partitions"
    )]
    pub append: Option<String>,
    /// ... with disk image FILE as a vscsi disk (repeatable; docs/vscsi.md)
    ///
    /// Each --disk is the next SCSI target (/dev/sda, /dev/sdb, ...) of the
    /// partition's v-scsi adapter; the image goes into the boot bundle and the
    /// partition writes it in memory (the file is never changed). `FILE,ro`
    /// makes it read-only. Goes with --kernel, --linux or the default bundle.
    #[arg(
        verbatim_doc_comment,
        long,
        value_name = "FILE[,ro]",
        help_heading = "Partitions"
    )]
    pub disk: Vec<String>,
    /// ... with N vCPUs on hardware threads 0..N-1 (default 1)
    #[arg(long, value_name = "N", help_heading = "Partitions")]
    pub vcpus: Option<u32>,
    /// Boot Debian 12's ppc64el kernel and a busybox initramfs (docs/linux.md)
    ///
    /// Fetches them (`cargo xtask linux fetch`, cached in target/linux/) and
    /// boots them as --kernel and --initrd with the command line
    /// `console=hvc0 <--append>` (default memory 512M); `--append
    /// paprika.test=1` checks and powers off. The default without --manifest,
    /// --kernel or --bare, except that it then also fails softly.
    #[arg(verbatim_doc_comment, long, help_heading = "Partitions")]
    pub linux: bool,
    /// --linux with a Debian 12 root file system on /dev/sda (docs/vscsi.md)
    ///
    /// Builds target/debian/root.ext4 (`cargo xtask linux debian-root`,
    /// cached), gives it as the first --disk and adds `root=/dev/sda`: the
    /// initramfs loads the vscsi modules and switches to the image's bash
    /// /sbin/init, which prints the Debian release and starts a shell
    /// (`nvram --print-config` works there). Without a terminal on stdin
    /// it runs its checks (`paprika.test=1`) and powers off.
    #[arg(verbatim_doc_comment, long, help_heading = "Partitions")]
    pub debian_root: bool,
    /// A PNOR flash image keeping NVRAM across power-off (docs/vscsi.md)
    ///
    /// QEMU gets `-drive file=FILE,format=raw,if=mtd`; FILE is created when
    /// missing (16 MiB of erased flash with the FFS table and NVRAM partition
    /// skiboot expects). Partition NVRAM (`nvram-store`, /dev/nvram) is then
    /// written through to it, and a later run with the same FILE restores it.
    #[arg(verbatim_doc_comment, long, value_name = "FILE")]
    pub pnor: Option<PathBuf>,
    /// Passed to QEMU as they are (e.g. -- -d int,guest_errors)
    #[arg(last = true, value_name = "QEMU ARGS")]
    pub qemu_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LinuxArgs {
    #[command(subcommand)]
    pub command: Option<LinuxCommand>,
}

#[derive(Debug, Subcommand)]
pub enum LinuxCommand {
    /// Fetch (when not cached), extract, and build the initramfs
    Fetch {
        /// Ask apt again for the current packages even when some are cached
        ///
        /// Downloads the kernel and busybox packages again when they changed.
        #[arg(verbatim_doc_comment, long)]
        refresh: bool,
    },
    /// Build a small Debian 12 root file system image (target/debian/root.ext4)
    ///
    /// base-files, libc6, bash, coreutils and powerpc-utils (`nvram`) with
    /// their libraries, fetched with apt into target/debian/debs/, unpacked
    /// with dpkg-deb and made into ext4 with `mke2fs -d` (no root needed),
    /// with a bash /sbin/init; boot it with `cargo xtask run --debian-root`.
    #[command(verbatim_doc_comment)]
    DebianRoot {
        /// Ask apt again for the current packages even when all are cached
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Run only the scenarios whose name contains SUBSTR
    #[arg(long, value_name = "SUBSTR")]
    pub only: Option<String>,
    /// Skip the QEMU scenarios
    #[arg(long)]
    pub no_qemu: bool,
    /// Only fmt, host clippy and host unit tests
    #[arg(long, conflicts_with = "qemu_only")]
    pub host_only: bool,
    /// Only the builds the scenarios need and the scenarios
    #[arg(long)]
    pub qemu_only: bool,
    /// Skip the POWER builds; boot the images an earlier build left
    #[arg(long)]
    pub no_build: bool,
    /// Scenarios run in parallel (default: number of CPUs)
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub jobs: Option<u64>,
    /// Per-scenario timeout instead of each scenario's own
    ///
    /// Each scenario's own: 60 s; 120 s with partitions; 180 s for Linux.
    #[arg(verbatim_doc_comment, long, value_name = "SECS", value_parser = at_least_one)]
    pub timeout: Option<u64>,
    /// Added to every partition's command line of the manifest scenarios
    ///
    /// E.g. `--only lpar-hostile-p9 --append paprika.seed=N` replays the hostile
    /// guest's run N (a failing run prints the command).
    #[arg(verbatim_doc_comment, long, value_name = "STR")]
    pub append: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// powernv9 or powernv10; repeat for both (default: both)
    #[arg(long, value_name = "M", value_parser = machine)]
    pub machine: Vec<Machine>,
    /// Per-boot timeout
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = at_least_one)]
    pub timeout: u64,
    /// Use the release image and guests earlier builds left
    ///
    /// They are in target/power and target/guests.
    #[arg(verbatim_doc_comment, long)]
    pub no_build: bool,
    /// No partition benchmark
    #[arg(long)]
    pub skip_lpar: bool,
    /// No Linux boot benchmark nor vscsi disk benchmark
    ///
    /// The same as --skip-linux-boot --skip-vscsi-disk; the virtual network
    /// and pass-through disk benchmarks have their own options.
    #[arg(verbatim_doc_comment, long)]
    pub skip_linux: bool,
    /// No Linux boot benchmark, but the disk benchmarks still run
    #[arg(long)]
    pub skip_linux_boot: bool,
    /// No vscsi disk benchmark (Paprika's vscsi vs pseries' spapr-vscsi)
    #[arg(long)]
    pub skip_vscsi_disk: bool,
    /// No pass-through disk benchmark (virtio-blk-pci and nvme)
    #[arg(long)]
    pub skip_passthrough_disk: bool,
    /// No virtual network benchmark (TCP and ping between two partitions)
    #[arg(long)]
    pub skip_veth: bool,
    /// Partition and Linux benchmarks without the pseries reference
    #[arg(long)]
    pub skip_pseries: bool,
    /// Timeout of each partition benchmark run
    #[arg(long, value_name = "SECS",
          default_value_t = crate::lpar_bench::DEFAULT_TIMEOUT.as_secs(),
          value_parser = at_least_one)]
    pub lpar_timeout: u64,
}

/// Parses the command line; `--help`, `help <command>` and errors exit here
/// (help on stdout with status 0, errors on stderr with status 2).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// How a command's help is laid out: the usage line first, then what it does,
/// then its options.
const SUBCOMMAND_TEMPLATE: &str =
    "{usage-heading} {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// The clap command, with the parts of the help computed at run time (the
/// scenario table of `test`).
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command()
        .mut_subcommand("test", |c| c.after_long_help(crate::test::scenario_table()));
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |c| c.help_template(SUBCOMMAND_TEMPLATE));
    }
    cmd
}

/// Prints the help of `cargo xtask` (no command given).
pub fn print_help() -> crate::error::Result<()> {
    command().print_help()?;
    Ok(())
}

/// Prints the long help of `name` (`cargo xtask linux` without a subcommand).
pub fn print_help_of(name: &str) -> crate::error::Result<()> {
    let mut cmd = command();
    cmd.build();
    let sub = cmd
        .find_subcommand_mut(name)
        .ok_or_else(|| crate::error::usage!("unknown command `{name}`"))?;
    sub.print_long_help()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("xtask").chain(args.iter().copied());
        let matches = command().try_get_matches_from(argv)?;
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn run_options_and_qemu_args() {
        let cli = parse(&[
            "run",
            "--release",
            "--smp",
            "4",
            "--machine=powernv10",
            "--memory",
            "1G",
            "--features",
            "a,b",
            "--features=c",
            "--",
            "-d",
            "int",
        ])
        .unwrap();
        let Some(Command::Run(r)) = cli.command else {
            panic!("not run")
        };
        assert!(r.release);
        assert_eq!(r.smp, Some(4));
        assert_eq!(r.machine, Machine::Powernv10);
        assert_eq!(r.memory, Some(1 << 30));
        assert_eq!(r.features, vec!["a,b", "c"]);
        assert_eq!(r.qemu_args, vec!["-d", "int"]);
        assert_eq!(r.threads, 1);
    }

    #[test]
    fn last_value_wins_and_repeated_machines_collect() {
        let cli = parse(&["run", "--machine", "p10", "--machine", "powernv9"]).unwrap();
        let Some(Command::Run(r)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.machine, Machine::Powernv9);
        let cli = parse(&["bench", "--machine", "powernv9", "--machine=powernv10"]).unwrap();
        let Some(Command::Bench(b)) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(b.machine, vec![Machine::Powernv9, Machine::Powernv10]);
        assert_eq!(b.timeout, 120);
        assert!(!b.skip_vscsi_disk && !b.skip_passthrough_disk);
        let cli = parse(&["bench", "--skip-vscsi-disk", "--skip-passthrough-disk"]).unwrap();
        let Some(Command::Bench(b)) = cli.command else {
            panic!("not bench")
        };
        assert!(b.skip_vscsi_disk && b.skip_passthrough_disk);
    }

    #[test]
    fn errors() {
        use clap::error::ErrorKind;
        let kind = |a: &[&str]| parse(a).unwrap_err().kind();
        assert_eq!(kind(&["run", "--smp"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["run", "--smp", "x"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["run", "--machine", "x"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["run", "--memory", "1X"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["build", "--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["build", "--", "x"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["test", "--jobs", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["test", "--host-only", "--qemu-only"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(kind(&["frobnicate"]), ErrorKind::InvalidSubcommand);
        assert!(parse(&[]).unwrap().command.is_none());
        assert_eq!(kind(&["run", "--help"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["help", "test"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn linux_subcommand() {
        let cli = parse(&["linux", "fetch", "--refresh"]).unwrap();
        let Some(Command::Linux(LinuxArgs {
            command: Some(LinuxCommand::Fetch { refresh: true }),
        })) = cli.command
        else {
            panic!("not linux fetch --refresh")
        };
        let cli = parse(&["linux"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Linux(LinuxArgs { command: None }))
        ));
    }

    /// Every option `--help` lists is described, and `help test` lists the
    /// scenarios.
    #[test]
    fn help_is_complete() {
        let mut cmd = command();
        cmd.build();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                assert!(
                    arg.get_help().is_some() || arg.get_id() == "help",
                    "{} {:?} has no help",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
        let test = cmd.find_subcommand_mut("test").unwrap();
        let help = test.render_long_help().to_string();
        for s in crate::scenarios::SCENARIOS {
            assert!(help.contains(s.name), "`help test` misses {}", s.name);
        }
    }
}
