//! The QEMU boot scenarios of `cargo xtask test` and the checks on their consoles.
//!
//! Three kinds: a plain boot of the hypervisor; a boot with partitions from a
//! manifest in tests/manifests/ (a row made by [`lpars`]): the manifest is
//! bundled as QEMU's -initrd and each partition's `expect` marker must appear on
//! the console behind the partition's `[<name>] ` prefix (adding such a scenario
//! takes tests/manifests/<file>.toml and one table row); and stock Linux in one or
//! more partitions (a row made by [`linux`]): Debian's kernel and the initramfs of
//! `cargo xtask linux fetch`, whose /init reports on the console what
//! [`check_linux`] reads (docs/linux.md).

use std::path::PathBuf;
use std::time::Duration;

use paprika::partition::manifest::{self, Manifest};

use crate::linux;
use crate::qemu::{self, parse_size, Input, Machine, Outcome};
use crate::repo_root;

/// Found in every passing boot of the hypervisor.
pub const BANNER: &str = "PAPRIKA banner:";
pub const SMP: &str = "PAPRIKA smp:";
pub const DOORBELL_OK: &str = "PAPRIKA doorbell: ping-pong ok";
pub const TIMER: &str = "PAPRIKA timer:";
pub const POWER_OFF_OK: &str = "PAPRIKA power-off: success";
pub const POWER_OFF_FAIL: &str = "PAPRIKA power-off: failure";
pub const BOOT_TIME: &str = "PAPRIKA boot-time:";
/// `PAPRIKA lpar <name>: stopped (<reason>)`, once per partition.
pub const LPAR: &str = "PAPRIKA lpar ";
/// `PAPRIKA partitions: <n> passed, <m> failed`, once all partitions stopped.
pub const PARTITIONS: &str = "PAPRIKA partitions:";
/// What a test guest prints when a check fails.
pub const GUEST_FAIL: &str = "GUEST-FAIL";

/// Strings that fail any scenario that expects a clean boot.
const CLEAN: &[&str] = &["PAPRIKA FAULT", "panicked", POWER_OFF_FAIL];
/// Strings that fail a scenario with partitions.
const CLEAN_LPARS: &[&str] = &["PAPRIKA FAULT", "panicked", POWER_OFF_FAIL, GUEST_FAIL];

/// Strings that fail a Linux scenario (besides `PAPRIKA-LINUX check <x>: FAILED`
/// lines, see [`check_linux`]).
const CLEAN_LINUX: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "Kernel panic",
    "Oops",
    "PAPRIKA-LINUX test: FAILED",
];

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Scenarios with partitions boot guests too.
pub const LPARS_TIMEOUT: Duration = Duration::from_secs(120);
/// Linux scenarios: a few seconds per vCPU-less boot, more with SMP guests.
pub const LINUX_TIMEOUT: Duration = Duration::from_secs(180);
/// How far the guest's `date` may be from the host's clock during the run.
pub const CLOCK_SLACK_SECS: u64 = 120;

/// One QEMU boot and what its console and exit status must show.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub machine: Machine,
    /// QEMU `-m`, e.g. "2G".
    pub memory: &'static str,
    /// QEMU `-smp`, e.g. "8,cores=2,threads=4".
    pub smp: &'static str,
    /// Total hardware threads (CPUs) the `-smp` gives.
    pub cpus: u32,
    pub threads_per_core: u32,
    /// Cargo features of the build to boot (a non-empty set gets its own target dir).
    pub features: &'static [&'static str],
    /// Check the standard boot markers: banner (memory, threads), smp, timer,
    /// doorbell (when threads_per_core > 1) and, for a successful run, power-off.
    pub boot_markers: bool,
    /// Literal strings that must appear in the console.
    pub expected: &'static [&'static str],
    /// Literal strings that must not appear.
    pub forbidden: &'static [&'static str],
    /// Exit status 0 expected; otherwise a non-zero exit (not a timeout).
    pub expect_success: bool,
    pub timeout: Duration,
    /// Partitions from tests/manifests/<manifest>.toml, bundled as the initrd;
    /// `None` boots the bare hypervisor.
    pub manifest: Option<&'static str>,
    /// Linux partitions (their manifest is written at run time, as
    /// target/scenarios/<name>.toml, since the kernel lives in target/linux/).
    pub linux: Option<LinuxBoot>,
    /// What is typed on the console, and when (QEMU's stdin is then a pipe,
    /// otherwise /dev/null).
    pub input: &'static [Input],
    /// QEMU also gets a virtio console (`qemu::virtio_console_args`, output in
    /// target/scenarios/<name>.vcon.log): the hypervisor must move the console's
    /// output there ([`check_virtio_console`]); the checks run on the UART's and
    /// the virtio console's output together.
    pub virtio_console: bool,
    /// Partitions that must stop before another one, as (first, second): their
    /// runs overlapped (the second partition watched the first one's whole run).
    pub stops_before: &'static [(&'static str, &'static str)],
    /// Partitions of the manifest that must fail (os-term, a fault): the
    /// summary must count exactly these as failed ([`Scenario::failing`]).
    pub failing: &'static [&'static str],
    /// The manifest's `secure = true` partitions are bundled although QEMU has
    /// no ultravisor (`partitions::refuse_secure` is skipped), and the
    /// hypervisor must refuse each with `PAPRIKA lpar-refused: <name>: ...`
    /// while the others run ([`Scenario::refusing_secure`]).
    pub secure_refused: bool,
    /// Non-zero: the machine has a PNOR flash (`pnor::image`, fresh for the
    /// scenario) and QEMU runs this many times on it, one after the other; the
    /// checks see the runs' consoles in order (NVRAM across power-off).
    pub pnor_runs: u8,
    /// PCI functions QEMU gets behind their own PHBs for the manifest's
    /// `devices` (`qemu::passthrough_args`; the i-th is `000<i+1>:01:00.0`).
    pub passthrough: &'static [PtDevice],
}

/// A pass-through device of a scenario; disks are written with
/// `qemu::disk_pattern` as target/scenarios/<name>.pt<i>.img ([`PT_DISK_BYTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtDevice {
    VirtioBlk,
    Nvme,
    /// An e1000e on QEMU hub n.
    E1000e(u32),
}

/// Size of a scenario's pass-through disk.
pub const PT_DISK_BYTES: u64 = 8 << 20;

/// Every `devices` entry of `m` must be one the scenario gives QEMU.
pub fn check_passthrough(m: &Manifest, given: usize) -> Result<(), String> {
    manifest::check_devices(m, |d| {
        if (0..given).any(|i| qemu::passthrough_address(i) == d.to_string()) {
            manifest::HostFunction::Free
        } else {
            manifest::HostFunction::Absent
        }
    })
    .map_err(|e| format!("{e} (the scenario gives QEMU {given} pass-through device(s))"))
}

/// A partition of a Linux scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxLpar {
    pub name: &'static str,
    /// e.g. "512M"
    pub memory: &'static str,
    /// The hardware thread of each vCPU.
    pub cpus: &'static [u32],
    /// The partition's `mmu` (manifest).
    pub mmu: manifest::MmuMode,
    /// Linux boots with `disable_radix`: with `mmu = "hash"` (hash only) and
    /// `"any"` (the guest's choice, ibm,architecture-vec-5 byte 24 = 0x80) it
    /// runs hash; /init checks /proc/cpuinfo's MMU line against
    /// [`LinuxLpar::runs_hash`] (`paprika.mmu=` on the command line).
    pub disable_radix: bool,
    /// A virtual Ethernet adapter on this VLAN (`[[partition.net]]`, its MAC
    /// generated); 0: none.
    pub vlan: u16,
    /// More kernel command line for this partition only (`paprika.ip=...`).
    pub extra: &'static str,
    /// PCI functions passed through (the manifest's `devices`,
    /// docs/passthrough.md); the scenario's `passthrough` gives QEMU them.
    pub devices: &'static [&'static str],
}

impl LinuxLpar {
    /// Whether Linux must come up with the hashed page table.
    pub const fn runs_hash(&self) -> bool {
        match self.mmu {
            manifest::MmuMode::Radix => false,
            manifest::MmuMode::Hash => true,
            manifest::MmuMode::Any => self.disable_radix,
        }
    }
}

pub const fn lpar(name: &'static str, memory: &'static str, cpus: &'static [u32]) -> LinuxLpar {
    LinuxLpar {
        name,
        memory,
        cpus,
        mmu: manifest::MmuMode::Radix,
        disable_radix: false,
        vlan: 0,
        extra: "",
        devices: &[],
    }
}

/// A Linux partition with an ibmveth adapter on `vlan` and `extra` on its
/// command line (docs/vio.md).
pub const fn veth_lpar(
    name: &'static str,
    memory: &'static str,
    cpus: &'static [u32],
    vlan: u16,
    extra: &'static str,
) -> LinuxLpar {
    LinuxLpar {
        vlan,
        extra,
        ..lpar(name, memory, cpus)
    }
}

/// A Linux partition with a hashed page table (`mmu = "hash"`), booted with
/// `disable_radix`.
pub const fn hash_lpar(
    name: &'static str,
    memory: &'static str,
    cpus: &'static [u32],
) -> LinuxLpar {
    LinuxLpar {
        mmu: manifest::MmuMode::Hash,
        disable_radix: true,
        ..lpar(name, memory, cpus)
    }
}

/// A Linux partition offering both translations (`mmu = "any"`); Linux picks
/// hash with `disable_radix`, radix without.
pub const fn any_lpar(
    name: &'static str,
    memory: &'static str,
    cpus: &'static [u32],
    disable_radix: bool,
) -> LinuxLpar {
    LinuxLpar {
        mmu: manifest::MmuMode::Any,
        disable_radix,
        ..lpar(name, memory, cpus)
    }
}

/// What the L2 scenarios want on the console: the L2's (guest-timer's) four
/// checks and summary through the VMM, its power-off, /init's check.
pub const L2_EXPECTED: &[&str] = &[
    "[linux] [l2] GUEST-PASS timebase-frequency",
    "[linux] [l2] GUEST-PASS decrementer-interrupts",
    "[linux] [l2] GUEST-PASS decrementer-period",
    "[linux] [l2] GUEST-PASS cede-woken-by-decrementer",
    "[linux] [l2] GUEST-DONE passed=4 failed=0",
    "[linux] paprika-vmm: L2 power-off after ",
    "[linux] PAPRIKA-LINUX check kvm-l2-guest: ok",
];

/// The same on a 2-vCPU L1, where the VMM moves its vCPU thread between the
/// L1's CPUs before every `KVM_RUN`.
pub const L2_EXPECTED_2CPU: &[&str] = &[
    "[linux] [l2] GUEST-PASS timebase-frequency",
    "[linux] [l2] GUEST-PASS decrementer-interrupts",
    "[linux] [l2] GUEST-PASS decrementer-period",
    "[linux] [l2] GUEST-PASS cede-woken-by-decrementer",
    "[linux] [l2] GUEST-DONE passed=4 failed=0",
    "[linux] paprika-vmm: the L2's vCPU ran on 2 of 2 L1 CPUs",
    "[linux] paprika-vmm: L2 power-off after ",
    "[linux] PAPRIKA-LINUX check kvm-l2-guest: ok",
];

/// What /init does after its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxMode {
    /// `paprika.test=1 paprika.cpus=<vcpus>`: checks, `PAPRIKA-LINUX test:
    /// passed`, power-off.
    Test,
    /// `paprika.echo=1`: a shell on hvc0, which the scenario's `input` types into
    /// (it must end with `poweroff -f`); its output must show `typed-42`.
    Echo,
    /// Both: the checks of `Test`, then the shell of `Echo`.
    TestEcho,
}

/// Debian's kernel and the xtask initramfs in each of `partitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxBoot {
    pub partitions: &'static [LinuxLpar],
    pub mode: LinuxMode,
    /// More kernel command line, e.g. "xive=off".
    pub append: &'static str,
    /// The typed input ran `grep -w hvc_console /proc/interrupts` after the
    /// echo: the vty's interrupt must have fired (a count above 0) on the
    /// expected controller (`XIVE-IRQ`, or `XICS` with `xive=off`), proving
    /// typed input arrived by interrupt, not by polling.
    pub vty_irq: bool,
    /// vscsi disks of the first partition (0, 1 or 2): an ext4 image and a
    /// read-only raw image that xtask makes and checksums at run time
    /// (`paprika.disk=`/`paprika.disk2=` added to its command line; docs/vscsi.md).
    pub disks: u8,
    /// The first partition's root file system is a vscsi disk: an ext4 image
    /// xtask makes with busybox and an /sbin/init that checks `/` and prints
    /// the test marker (`paprika.root=1` added to its command line).
    pub root_disk: bool,
    /// The first partition's root file system is the Debian image of
    /// `cargo xtask linux debian-root` on /dev/sda (`root=/dev/sda` added to
    /// its command line); its bash /sbin/init does the checks (xtask/src/debian.rs).
    pub debian_root: bool,
}

/// What the echo scenario's shell must print for the command it is given.
pub const ECHO_OUTPUT: &str = "typed-42";

/// The echo scenario's typing: a command whose output is not its own echo
/// (`typed-$((6*7))` comes back as `typed-42` only if the shell ran it), the
/// vty interrupt's line of /proc/interrupts, then power-off - one line, typed
/// at once: anything typed while the shell prints is echoed by the terminal
/// into the middle of that output.
pub const ECHO_INPUT: &[Input] = &[Input {
    after: linux::ECHO_MARKER,
    send: "echo typed-$((6*7)); grep -w hvc_console /proc/interrupts; poweroff -f\n",
}];

/// The reboot scenario's typing: `reboot -f` in the first boot's shell; after
/// the partition restarted (its shell announced again), the echo check, then
/// power-off.
pub const REBOOT_INPUT: &[Input] = &[
    Input {
        after: linux::ECHO_MARKER,
        send: "reboot -f\n",
    },
    // Nothing to type; it moves the search past the first boot's marker.
    Input {
        after: "PAPRIKA lpar linux: rebooting (boot 2)",
        send: "",
    },
    Input {
        after: linux::ECHO_MARKER,
        send: "echo typed-$((6*7))\n",
    },
    Input {
        after: ECHO_OUTPUT,
        send: "poweroff -f\n",
    },
];

/// Typing into two partitions: a command into `linux-a` (which takes input
/// first), Ctrl-A c to switch to `linux-b` once its shell is up, the same command
/// there (so each partition's own console lines must show `typed-42`), then
/// power-off of `linux-b`, Ctrl-A c back to `linux-a` (the only one left) and its
/// power-off.
pub const SWITCH_INPUT: &[Input] = &[
    Input {
        after: "PAPRIKA-LINUX echo: shell on hvc0 name=linux-a",
        send: "echo typed-$((6*7))\n",
    },
    Input {
        after: "PAPRIKA-LINUX echo: shell on hvc0 name=linux-b",
        send: "\x01c",
    },
    Input {
        after: "PAPRIKA console: input -> linux-b",
        send: "echo typed-$((6*7))\n",
    },
    Input {
        after: "[linux-b] typed-42",
        send: "poweroff -f\n",
    },
    Input {
        after: "PAPRIKA lpar linux-b: stopped",
        send: "\x01cpoweroff -f\n",
    },
];

/// Typing a command, Ctrl-A d (the vCPU dump), then Ctrl-A x: the hypervisor
/// stops the partition and powers the machine off (exit status 0).
pub const QUIT_INPUT: &[Input] = &[
    Input {
        after: linux::ECHO_MARKER,
        send: "echo typed-$((6*7))\n",
    },
    // Ctrl-A d first: the dump of Linux's vCPU (docs/debugging.md).
    Input {
        after: ECHO_OUTPUT,
        send: "\x01d",
    },
    Input {
        after: "PAPRIKA dump: linux vCPU 0 ",
        send: "\x01x",
    },
];

impl LinuxBoot {
    /// The interrupt controller Linux must use: XIVE exploitation mode, or the
    /// XICS emulation for a kernel booted with `xive=off`.
    pub fn irqchip(&self) -> &'static str {
        if self.append.split_whitespace().any(|w| w == "xive=off") {
            "XICS"
        } else {
            "XIVE"
        }
    }

    /// The interrupt controller partition `p` must use: a partition offering
    /// hash translation gets the XICS only (docs/partitions.md, "Hash-MMU
    /// partitions"), the others as [`LinuxBoot::irqchip`].
    pub fn irqchip_of(&self, p: &LinuxLpar) -> &'static str {
        if p.mmu.offers_hash() {
            "XICS"
        } else {
            self.irqchip()
        }
    }

    /// The kernel command line of partition `p`.
    pub fn cmdline(&self, p: &LinuxLpar) -> String {
        let mode = match self.mode {
            LinuxMode::Test => format!("paprika.test=1 paprika.cpus={}", p.cpus.len()),
            LinuxMode::Echo => "paprika.echo=1".to_string(),
            LinuxMode::TestEcho => format!(
                "paprika.test=1 paprika.cpus={} paprika.echo=1",
                p.cpus.len()
            ),
        };
        let mut line = format!("{} paprika.name={} {mode}", linux::BASE_CMDLINE, p.name);
        if p.disable_radix {
            // Hash-only (vec5 byte 24 = 0) already makes Linux run hash;
            // disable_radix says so too, as on QEMU's pseries. With both
            // offered (0x80) it is what makes Linux choose hash.
            line.push_str(" disable_radix");
        }
        if p.runs_hash() {
            line.push_str(" paprika.mmu=hash");
        }
        if !p.extra.is_empty() {
            line.push(' ');
            line.push_str(p.extra);
        }
        if !self.append.trim().is_empty() {
            line.push(' ');
            line.push_str(self.append.trim());
        }
        line
    }

    /// The partitions' manifest, naming `vmlinux` and `initramfs` as the images;
    /// each partition's `expect` is its userspace marker.
    pub fn manifest(&self, vmlinux: &str, initramfs: &str) -> Result<Manifest, String> {
        let mut partitions = Vec::new();
        for p in self.partitions {
            partitions.push(manifest::PartitionSpec {
                name: p.name.to_string(),
                memory: parse_size(p.memory).map_err(|e| format!("{}: {e}", p.name))?,
                vcpus: p.cpus.len() as u32,
                cpus: p.cpus.to_vec(),
                kernel: vmlinux.to_string(),
                initrd: Some(initramfs.to_string()),
                cmdline: self.cmdline(p),
                console: true,
                expect: Some(userspace_marker(p.name)),
                secure: false,
                // Nested virtualization where the scenario loads KVM-HV.
                nested: self.append.contains("paprika.kvm=1"),
                tpm: false,
                mmu: p.mmu,
                net: if p.vlan == 0 {
                    Vec::new()
                } else {
                    vec![manifest::NetSpec {
                        mac: manifest::generated_mac(p.name, 0),
                        vlan: p.vlan,
                        trunk: false,
                    }]
                },
                disks: Vec::new(),
                devices: p
                    .devices
                    .iter()
                    .map(|d| {
                        paprika::pci::PciAddress::parse(d)
                            .ok_or_else(|| format!("{}: bad PCI address {d}", p.name))
                    })
                    .collect::<Result<_, _>>()?,
            });
        }
        let m = Manifest {
            machine: manifest::MachineSpec::default(),
            partitions,
        };
        // The manifest's checks judge what is valid.
        m.validated().map_err(|e| e.to_string())
    }
}

/// `PAPRIKA-LINUX userspace reached name=<partition>`
pub fn userspace_marker(name: &str) -> String {
    format!("{} name={name}", linux::USERSPACE_MARKER)
}

impl Scenario {
    /// tests/manifests/<manifest>.toml
    pub fn manifest_path(&self) -> Option<PathBuf> {
        self.manifest.map(manifest_path)
    }
}

/// tests/manifests/<name>.toml
pub fn manifest_path(name: &str) -> PathBuf {
    repo_root()
        .join("tests")
        .join("manifests")
        .join(format!("{name}.toml"))
}

const fn boot(
    name: &'static str,
    machine: Machine,
    memory: &'static str,
    smp: &'static str,
    cpus: u32,
    threads_per_core: u32,
) -> Scenario {
    Scenario {
        name,
        machine,
        memory,
        smp,
        cpus,
        threads_per_core,
        features: &[],
        boot_markers: true,
        expected: &[],
        forbidden: CLEAN,
        expect_success: true,
        timeout: DEFAULT_TIMEOUT,
        manifest: None,
        linux: None,
        input: &[],
        virtio_console: false,
        stops_before: &[],
        failing: &[],
        secure_refused: false,
        pnor_runs: 0,
        passthrough: &[],
    }
}

/// A boot with the partitions of tests/manifests/<manifest>.toml on a machine of
/// `memory` and `smp` (which must hold them: partitions' memory + 512M, every
/// `cpus` entry). Passes when, besides the boot markers and a clean power-off,
/// every partition with an `expect` printed it behind its `[<name>] ` prefix,
/// every partition stopped (`PAPRIKA lpar <name>: stopped`), the summary says
/// `PAPRIKA partitions: <all> passed, 0 failed`, and nothing printed
/// `PAPRIKA FAULT` or `GUEST-FAIL`.
pub const fn lpars(
    name: &'static str,
    machine: Machine,
    manifest: &'static str,
    memory: &'static str,
    smp: &'static str,
    cpus: u32,
    threads_per_core: u32,
) -> Scenario {
    Scenario {
        forbidden: CLEAN_LPARS,
        timeout: LPARS_TIMEOUT,
        manifest: Some(manifest),
        ..boot(name, machine, memory, smp, cpus, threads_per_core)
    }
}

/// Stock Linux (`cargo xtask linux fetch`) in `partitions` on a machine of
/// `memory` and `smp` (which must hold them), in test mode (`paprika.test=1`,
/// `paprika.cpus=<vcpus>`). Passes when, besides the boot markers, the
/// partition checks of [`lpars`] (with `PAPRIKA-LINUX userspace reached
/// name=<partition>` as each one's `expect`) and a clean power-off, every
/// partition's /init reported what [`check_linux`] wants, and no `Kernel
/// panic`, `Oops` or failed /init check showed. [`Scenario::typing`],
/// [`Scenario::vty_irq`] and [`Scenario::append`] change the boot.
pub const fn linux(
    name: &'static str,
    machine: Machine,
    memory: &'static str,
    smp: &'static str,
    cpus: u32,
    partitions: &'static [LinuxLpar],
) -> Scenario {
    Scenario {
        forbidden: CLEAN_LINUX,
        timeout: LINUX_TIMEOUT,
        linux: Some(LinuxBoot {
            partitions,
            mode: LinuxMode::Test,
            append: "",
            vty_irq: false,
            disks: 0,
            root_disk: false,
            debian_root: false,
        }),
        ..boot(name, machine, memory, smp, cpus, 1)
    }
}

/// A Linux scenario in `TestEcho` mode: /init's checks, then a shell the
/// scenario types `ECHO_INPUT` into; the vty's interrupt must have fired.
pub const fn linux_typed(
    name: &'static str,
    machine: Machine,
    memory: &'static str,
    smp: &'static str,
    cpus: u32,
    partitions: &'static [LinuxLpar],
) -> Scenario {
    linux(name, machine, memory, smp, cpus, partitions)
        .typing(LinuxMode::TestEcho, ECHO_INPUT)
        .vty_irq()
}

/// Changes to a row of [`SCENARIOS`], each taking and giving the whole row
/// (the table is a `const`, hence `const fn`s).
impl Scenario {
    /// Fails on any of `forbidden` (instead of the default list).
    pub const fn forbidding(mut self, forbidden: &'static [&'static str]) -> Self {
        self.forbidden = forbidden;
        self
    }

    /// A hard timeout of `secs` instead of the kind's default.
    pub const fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Also wants `expected` on the console.
    pub const fn expecting(mut self, expected: &'static [&'static str]) -> Self {
        self.expected = expected;
        self
    }

    /// Partition `first` must stop before `second` ([`Scenario::stops_before`]).
    pub const fn stopping_before(mut self, order: &'static [(&'static str, &'static str)]) -> Self {
        self.stops_before = order;
        self
    }

    /// Bundles the manifest's secure partitions anyway (a test-only bypass of
    /// xtask's check), for the hypervisor's own refusal to be seen.
    pub const fn refusing_secure(mut self) -> Self {
        self.secure_refused = true;
        self
    }

    /// Partitions `names` must fail (the summary counts them as failed), so
    /// the machine powers off with a failure (QEMU exits non-zero); `expected`
    /// must show on the console and `forbidden` must not, besides the
    /// hypervisor's fault report, a panic and `GUEST-FAIL`.
    pub const fn failing(
        mut self,
        names: &'static [&'static str],
        expected: &'static [&'static str],
        forbidden: &'static [&'static str],
    ) -> Self {
        self.failing = names;
        self.expect_success = false;
        self.expected = expected;
        self.forbidden = forbidden;
        self
    }

    /// Types `input` on the console (each after its marker showed).
    pub const fn typing_keys(mut self, input: &'static [Input]) -> Self {
        self.input = input;
        self
    }

    /// QEMU also gets a virtio console, which must take the console's output
    /// ([`check_virtio_console`]).
    pub const fn with_virtio_console(mut self) -> Self {
        self.virtio_console = true;
        self
    }

    /// QEMU also gets these pass-through devices ([`PtDevice`]).
    pub const fn with_passthrough(mut self, devs: &'static [PtDevice]) -> Self {
        self.passthrough = devs;
        self
    }

    /// The Linux partitions run /init in `mode` (`Echo` or `TestEcho`: a shell)
    /// and the scenario types `input` into the console.
    pub const fn typing(mut self, mode: LinuxMode, input: &'static [Input]) -> Self {
        assert!(
            !matches!(mode, LinuxMode::Test),
            "test mode has no shell to type into"
        );
        self.linux = Some(LinuxBoot {
            mode,
            ..self.linux_boot()
        });
        self.input = input;
        self
    }

    /// The typing ran `grep -w hvc_console /proc/interrupts` (as
    /// [`ECHO_INPUT`] does): the vty's interrupt must have fired (see
    /// [`LinuxBoot::vty_irq`]).
    pub const fn vty_irq(mut self) -> Self {
        self.linux = Some(LinuxBoot {
            vty_irq: true,
            ..self.linux_boot()
        });
        self
    }

    /// `n` QEMU runs on one PNOR flash (see [`Scenario::pnor_runs`]).
    pub const fn pnor_runs(mut self, n: u8) -> Self {
        self.pnor_runs = n;
        self
    }

    /// The first partition gets `n` vscsi disks (see [`LinuxBoot::disks`]).
    pub const fn with_disks(mut self, n: u8) -> Self {
        self.linux = Some(LinuxBoot {
            disks: n,
            ..self.linux_boot()
        });
        self
    }

    /// The first partition boots its root file system from a vscsi disk (see
    /// [`LinuxBoot::root_disk`]).
    pub const fn with_root_disk(mut self) -> Self {
        self.linux = Some(LinuxBoot {
            root_disk: true,
            ..self.linux_boot()
        });
        self
    }

    /// The first partition boots the Debian root (see
    /// [`LinuxBoot::debian_root`]).
    pub const fn with_debian_root(mut self) -> Self {
        self.linux = Some(LinuxBoot {
            debian_root: true,
            ..self.linux_boot()
        });
        self
    }

    /// `append` goes on every Linux partition's kernel command line.
    pub const fn append(mut self, append: &'static str) -> Self {
        self.linux = Some(LinuxBoot {
            append,
            ..self.linux_boot()
        });
        self
    }

    const fn linux_boot(&self) -> LinuxBoot {
        match self.linux {
            Some(l) => l,
            None => panic!("not a Linux scenario"),
        }
    }
}

/// The veth scenario's partitions: a server and a client on VLAN 1 (MTU
/// 9000), an isolated one on VLAN 2 with an address in the same subnet.
const LINUX_VETH: &[LinuxLpar] = &[
    veth_lpar(
        "veth-a",
        "512M",
        &[0],
        1,
        "paprika.ip=10.9.0.1/24 paprika.mtu=9000 paprika.veth=server paprika.peer=10.9.0.2",
    ),
    veth_lpar(
        "veth-b",
        "512M",
        &[1],
        1,
        "paprika.ip=10.9.0.2/24 paprika.mtu=9000 paprika.veth=client paprika.peer=10.9.0.1",
    ),
    veth_lpar(
        "veth-c",
        "512M",
        &[2],
        2,
        "paprika.ip=10.9.0.3/24 paprika.veth=isolated paprika.peer=10.9.0.1",
    ),
];
/// The veth reboot scenario: veth-ra sends, veth-rb reboots mid-transfer.
const LINUX_VETH_REBOOT: &[LinuxLpar] = &[
    veth_lpar(
        "veth-ra",
        "512M",
        &[0],
        1,
        "paprika.ip=10.9.1.1/24 paprika.veth=rsender paprika.peer=10.9.1.2",
    ),
    veth_lpar(
        "veth-rb",
        "512M",
        &[1],
        1,
        "paprika.ip=10.9.1.2/24 paprika.veth=rreceiver paprika.peer=10.9.1.1",
    ),
];
/// One Linux partition on thread 0.
const LINUX_1CPU: &[LinuxLpar] = &[lpar("linux", "512M", &[0])];
/// One Linux partition with 2 vCPUs on threads 0-1.
const LINUX_2CPU: &[LinuxLpar] = &[lpar("linux", "512M", &[0, 1])];
/// One Linux partition with 4 vCPUs on threads 0-3.
const LINUX_4CPU: &[LinuxLpar] = &[lpar("linux", "512M", &[0, 1, 2, 3])];
/// One Linux partition of 1 GiB, for the machine `xtask run --kernel X
/// --memory 1G` sizes for it ([`LINUX_1G_MACHINE`]).
const LINUX_1G: &[LinuxLpar] = &[lpar("linux", "1G", &[0])];
/// The partition's 1 GiB plus `partitions::MACHINE_OVERHEAD`: no 1 GiB of host
/// memory is contiguous there (the hypervisor, the boot bundle at 640 MiB and
/// skiboot at 768 MiB are in the way), so the partition's memory spans host
/// extents (`mm::extent`).
const LINUX_1G_MACHINE: &str = "1536M";
/// A hash-MMU Linux partition next to a radix one (issue 15: both translation
/// types on one machine at once).
const LINUX_HASH_1CPU: &[LinuxLpar] = &[
    hash_lpar("linux-hash", "384M", &[1]),
    lpar("linux-radix", "384M", &[2]),
];
/// The same with the hash partition on four vCPUs.
const LINUX_HASH_4CPU: &[LinuxLpar] = &[
    hash_lpar("linux-hash", "512M", &[0, 1, 2, 3]),
    lpar("linux-radix", "384M", &[4]),
];
/// `mmu = "any"` twice: Linux with `disable_radix` must come up hash, Linux
/// without it radix (issue 15), next to each other.
const LINUX_ANY: &[LinuxLpar] = &[
    any_lpar("linux-any-hash", "384M", &[1], true),
    any_lpar("linux-any-radix", "384M", &[2], false),
];
/// guest-hash's partition (64 MiB: a 512 KiB HPT) and its resize there and back.
const LPAR_HASH_EXPECTED: &[&str] = &[
    "PAPRIKA lpar-hpt: hash mmu=hash HPT 512 KiB",
    "PAPRIKA lpar-hpt: hash HPT resized 512 -> 1024 KiB",
    "PAPRIKA lpar-hpt: hash HPT resized 1024 -> 512 KiB",
];
/// The hash partition's kernel resized its HPT when /init asked it through
/// debugfs (`hpt_order`, one order up): the hypervisor served it.
const LINUX_HASH_EXPECTED: &[&str] = &["PAPRIKA lpar-hpt: linux-hash HPT resized"];
/// [`CLEAN_LINUX`], and the hash-choosing partition must never switch to radix.
const ANY_FORBIDDEN: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "Kernel panic",
    "Oops",
    "PAPRIKA-LINUX test: FAILED",
    "PAPRIKA lpar-hpt: linux-any-hash mmu=any: the guest chose radix",
];
/// Two Linux partitions side by side, sharing kernel and initramfs.
/// [`PT_DISK_MD5`] as a literal, for `concat!`.
macro_rules! pt_disk_md5 {
    () => {
        "a996cbe40ba2cc22872736cbb97a8721"
    };
}

/// The MD5 of a pass-through test disk ([`PT_DISK_BYTES`] of
/// `qemu::disk_pattern`), which /init checks the whole device against.
/// (The scenario's command line takes it from the macro; the test checks it.)
#[cfg(test)]
pub const PT_DISK_MD5: &str = pt_disk_md5!();

/// Linux on a passed-through virtio-blk-pci (0001:01:00.0) and nvme
/// (0002:01:00.0) function, each read whole and checked, then the partition
/// reboots once and checks both again (docs/passthrough.md).
const LINUX_PT: &[LinuxLpar] = &[LinuxLpar {
    devices: &["0001:01:00.0", "0002:01:00.0"],
    extra: concat!(
        "paprika.ptblk=",
        pt_disk_md5!(),
        " paprika.ptnvme=",
        pt_disk_md5!(),
        " paprika.ptreboot=1"
    ),
    ..lpar("linux-pt", "384M", &[1])
}];

/// What the pass-through Linux scenario wants besides /init's checks: both
/// functions' MSI-X programmed through ibm,change-msi, and the 64-bit window;
/// the reboot resetting both functions and both disks read again, with
/// their interrupts, by the second boot.
const LINUX_PT_EXPECTED: &[&str] = &[
    "PAPRIKA passthrough-msi: linux-pt 0001:01:00.0 MsiX ",
    "PAPRIKA passthrough-msi: linux-pt 0002:01:00.0 MsiX ",
    "PAPRIKA passthrough-ddw: linux-pt 0001:01:00.0",
    "ibm,create-pe-dma-window(",
    "[linux-pt] PAPRIKA-LINUX check pt-virtio-blk-md5: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-virtio-blk-msix: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-nvme-md5: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-nvme-msix: ok",
    "[linux-pt] PAPRIKA-LINUX pci: checked, rebooting name=linux-pt",
    "PAPRIKA passthrough-reset: linux-pt 0001:01:00.0 ",
    "PAPRIKA passthrough-reset: linux-pt 0002:01:00.0 ",
    "PAPRIKA lpar linux-pt: rebooting (boot 2)",
    "[linux-pt] PAPRIKA-LINUX pci: second boot, checking again name=linux-pt",
    "[linux-pt] PAPRIKA-LINUX check pt-virtio-blk-md5-after-reboot: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-virtio-blk-msix-after-reboot: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-nvme-md5-after-reboot: ok",
    "[linux-pt] PAPRIKA-LINUX check pt-nvme-msix-after-reboot: ok",
];
/// [`CLEAN_LINUX`], and one reboot only.
const LINUX_PT_FORBIDDEN: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "Kernel panic",
    "Oops",
    "PAPRIKA-LINUX test: FAILED",
    "PAPRIKA lpar linux-pt: rebooting (boot 3)",
];

/// Two partitions, each owning an e1000e (0001:01:00.0, 0002:01:00.0) on QEMU
/// hub 0 (nothing else on it), pinging each other. e1000e-b boots with
/// `disable_ddw` (its driver maps through the 32-bit TCE window), e1000e-a
/// takes the 64-bit window; e1000e-b reboots once and both ping again, while
/// e1000e-a keeps running (docs/passthrough.md).
const LINUX_PT_NET: &[LinuxLpar] = &[
    LinuxLpar {
        devices: &["0001:01:00.0"],
        extra: "paprika.ip=10.9.3.1/24 paprika.ptnet=server paprika.peer=10.9.3.2",
        ..lpar("e1000e-a", "384M", &[0])
    },
    LinuxLpar {
        devices: &["0002:01:00.0"],
        extra: "paprika.ip=10.9.3.2/24 paprika.ptnet=client paprika.peer=10.9.3.1 \
                paprika.ptreboot=1 disable_ddw",
        ..lpar("e1000e-b", "384M", &[1])
    },
];
const LINUX_PT_NET_EXPECTED: &[&str] = &[
    "PAPRIKA passthrough: e1000e-a 0001:01:00.0 (8086:10d3)",
    "PAPRIKA passthrough: e1000e-b 0002:01:00.0 (8086:10d3)",
    "PAPRIKA passthrough-msi: e1000e-a 0001:01:00.0 MsiX ",
    "PAPRIKA passthrough-msi: e1000e-b 0002:01:00.0 MsiX ",
    // Which window each driver maps through.
    "PAPRIKA passthrough-ddw: e1000e-a 0001:01:00.0",
    "PAPRIKA passthrough-tce32: e1000e-b 0002:01:00.0",
    "[e1000e-a] PAPRIKA-LINUX check pt-e1000e-ping: ok",
    "[e1000e-a] PAPRIKA-LINUX check pt-e1000e-msix: ok",
    "[e1000e-b] PAPRIKA-LINUX check pt-e1000e-ping: ok",
    "[e1000e-b] PAPRIKA-LINUX check pt-e1000e-msix: ok",
    "[e1000e-b] PAPRIKA-LINUX pci: checked, rebooting name=e1000e-b",
    "PAPRIKA passthrough-reset: e1000e-b 0002:01:00.0 ",
    "PAPRIKA lpar e1000e-b: rebooting (boot 2)",
    "[e1000e-b] PAPRIKA-LINUX check pt-e1000e-ping-after-reboot: ok",
    "[e1000e-b] PAPRIKA-LINUX check pt-e1000e-msix-after-reboot: ok",
    "[e1000e-a] PAPRIKA-LINUX check pt-e1000e-ping-peer-rebooted: ok",
    "[e1000e-a] PAPRIKA-LINUX net: peer said done name=e1000e-a",
];
/// [`CLEAN_LINUX`]; e1000e-a never reboots, e1000e-b once; e1000e-a never
/// maps a 32-bit TCE, e1000e-b never opens the 64-bit window.
const LINUX_PT_NET_FORBIDDEN: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "Kernel panic",
    "Oops",
    "PAPRIKA-LINUX test: FAILED",
    "PAPRIKA lpar e1000e-a: rebooting",
    "PAPRIKA lpar e1000e-b: rebooting (boot 3)",
    "PAPRIKA passthrough-tce32: e1000e-a ",
    "PAPRIKA passthrough-ddw: e1000e-b ",
];

const LINUX_TWO: &[LinuxLpar] = &[lpar("linux-a", "384M", &[1]), lpar("linux-b", "384M", &[2])];

/// What the big-endian guest scenarios want besides the partition checks: the
/// guest's own report of MSR[LE] and a memory byte-order probe (tests/guests/prt,
/// `report_endianness`) and the hypervisor's partition creation line.
const BIG_ENDIAN_GUEST: &[&str] = &[
    "[conformance-be] GUEST-ENDIAN big (MSR[LE]=0, memory big-endian, built big-endian)",
    "[conformance-be] GUEST-PASS endianness",
    "(big-endian), fdt at",
];

/// guest-smp's reboot rounds (tests/guests/smp/src/reboot.rs): the fourth reboot
/// happened, no fifth (two vCPUs asking at once load the image once).
const SMP_REBOOTS: &[&str] = &["PAPRIKA lpar smp: rebooting (boot 5)"];
/// The hypervisor set the function up and opened the 64-bit window; the
/// guest's disk words all matched, and the function was reset at power-off.
const PASSTHROUGH_MARKERS: &[&str] = &[
    "PAPRIKA passthrough: pci 0001:01:00.0 (1af4:1042) PE 1",
    "PAPRIKA passthrough-ddw: pci 0001:01:00.0",
    "[pci] GUEST-PASS virtio-blk-read-pattern",
    // MSI-X: host MSIs reserved, ibm,change-msi programmed two vectors, and
    // reads completed by their interrupt (docs/passthrough.md "MSI").
    "PAPRIKA passthrough-msi: PHB 1 MSIs",
    "PAPRIKA passthrough-msi: pci 0001:01:00.0 MsiX 2 vector(s)",
    "[pci] GUEST-PASS msix-interrupt-read",
    "[pci] GUEST-PASS msix-table-mask",
    "PAPRIKA passthrough-reset: pci 0001:01:00.0 Flr",
    // The device works again after the partition rebooted (its second boot
    // reads the disk again and is the one that passes).
    "PAPRIKA lpar pci: rebooting (boot 2)",
    "[pci] pci: boot 2",
    "PAPRIKA passthrough: nvme 0002:01:00.0",
    "[nvme] GUEST-PASS nvme-read-pattern",
];
const PASSTHROUGH_FORBIDDEN: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "PAPRIKA lpar pci: rebooting (boot 3)",
];
const SMP_REBOOTS_FORBIDDEN: &[&str] = &[
    "PAPRIKA FAULT",
    "panicked",
    POWER_OFF_FAIL,
    GUEST_FAIL,
    "PAPRIKA lpar smp: rebooting (boot 6)",
];
/// The hostile guest stops before its neighbour (their runs overlap).
const HOSTILE_ORDER: &[(&str, &str)] = &[("hostile", "neighbour")];
/// The hostile guest ends its attack with a system-reboot, and its second boot
/// finds its memory scrubbed.
/// And the neighbour's one load beyond its memory is still logged after the
/// hostile guest's thousands of warnings (audit finding 6).
const HOSTILE_EXPECT: &[&str] = &[
    "PAPRIKA lpar hostile: rebooting (boot 2)",
    "[hostile] GUEST-PASS reboot-scrubbed",
    "lpar neighbour: data access outside partition memory",
];

/// What lpar-console-p9 must show: the injected sequences inert behind the
/// hostile prefix, the os-term message quoted on its one line, the hostile
/// partition throttled, the neighbour's warning, the power-off failure (the
/// hostile partition fails on purpose).
const CONSOLE_ABUSE_EXPECTED: &[&str] = &[
    "[hostile] ^[[1A^[[2K[neighbour] GUEST-DONE passed=9 failed=0",
    "[hostile] ^[[6n^[]0;title^G",
    "PAPRIKA lpar hostile: stopped (os-term: \"x\\nPAPRIKA partitions: 2 passed, 0 failed\")",
    "[neighbour] GUEST-PASS console-latency",
    "lpar neighbour: hcall not offered (H_FUNCTION) at 0x7fc",
    "PAPRIKA lpar-console: hostile bytes=",
    POWER_OFF_FAIL,
];
/// An ESC byte anywhere means a guest reached the terminal.
const CONSOLE_ABUSE_FORBIDDEN: &[&str] = &["PAPRIKA FAULT", "panicked", GUEST_FAIL, "\x1b"];

/// Ctrl-A d once the partition waits for it.
const DUMP_INPUT: &[Input] = &[Input {
    after: "[dump] GUEST-WAIT dump",
    send: "\x01d",
}];
/// Each vCPU's line of the dump (docs/debugging.md).
const DUMP_EXPECTED: &[&str] = &[
    "PAPRIKA console: Ctrl-A d: vCPU dump",
    "PAPRIKA dump: dump vCPU 0 running pc=0x",
    "PAPRIKA dump: dump vCPU 1 running pc=0x",
    // The test guests run with SF|ME|LE once their entry switched to
    // little-endian (they are entered big-endian, as pSeries firmware does).
    " msr=0x8000000000001001 (SF|ME|LE) lr=0x",
    " last-exit=0x",
];

const HOOKS_EXPECTED: &[&str] = &[
    "[rtc-neighbour] GUEST-PASS rtc-latency",
    "PAPRIKA lpar rtc-neighbour: stopped (fault: test hook",
    "PAPRIKA dump: rtc-neighbour vCPU 0 stopped pc=0x",
    "PAPRIKA dump: rtc-neighbour vCPU 1 ",
    " last-exit=0xc00 (System Call) hcall=0xf3fc",
    POWER_OFF_FAIL,
];
const HOOKS_FORBIDDEN: &[&str] = &["PAPRIKA FAULT", "panicked", GUEST_FAIL];

pub const SCENARIOS: &[Scenario] = &[
    boot("boot-p9-1t", Machine::Powernv9, "1G", "1", 1, 1),
    boot("boot-p9-4t", Machine::Powernv9, "2G", "4", 4, 1),
    boot(
        "boot-p9-smt4",
        Machine::Powernv9,
        "3G",
        "8,cores=2,threads=4",
        8,
        4,
    ),
    boot("boot-p10-1t", Machine::Powernv10, "1G", "1", 1, 1),
    boot(
        "boot-p10-smt",
        Machine::Powernv10,
        "4G",
        "8,cores=2,threads=4",
        8,
        4,
    ),
    Scenario {
        name: "fault-p9",
        machine: Machine::Powernv9,
        memory: "1G",
        smp: "2",
        cpus: 2,
        threads_per_core: 1,
        features: &["fault-test"],
        boot_markers: false,
        // A DSI (vector 0x300) from the hypervisor's own null dereference, reported
        // with registers and a backtrace, then a failing power-off (QEMU exit 1).
        expected: &[
            "PAPRIKA FAULT",
            "vector 0x300",
            "GPR00",
            "backtrace",
            POWER_OFF_FAIL,
        ],
        forbidden: &["panicked", POWER_OFF_OK],
        expect_success: false,
        timeout: DEFAULT_TIMEOUT,
        manifest: None,
        linux: None,
        input: &[],
        virtio_console: false,
        stops_before: &[],
        failing: &[],
        secure_refused: false,
        pnor_runs: 0,
        passthrough: &[],
    },
    // Scenarios with partitions: tests/manifests/<file>.toml plus a row.
    lpars(
        "lpar-conformance-p9",
        Machine::Powernv9,
        "conformance",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-conformance-p10",
        Machine::Powernv10,
        "conformance",
        "1G",
        "4",
        4,
        1,
    ),
    // The conformance guest built big-endian: passes only if it ran big-endian
    // (its run-time probe of MSR[LE] and memory) and Paprika created the
    // partition as such.
    lpars(
        "lpar-be-p9",
        Machine::Powernv9,
        "conformance-be",
        "1G",
        "4",
        4,
        1,
    )
    .expecting(BIG_ENDIAN_GUEST),
    lpars(
        "lpar-be-p10",
        Machine::Powernv10,
        "conformance-be",
        "1G",
        "4",
        4,
        1,
    )
    .expecting(BIG_ENDIAN_GUEST),
    // The machine console's output on a virtio console behind a PHB
    // (docs/console.md): the conformance guest's lines must arrive there.
    lpars(
        "lpar-vcon-p9",
        Machine::Powernv9,
        "conformance",
        "1G",
        "4",
        4,
        1,
    )
    .with_virtio_console(),
    lpars(
        "lpar-vcon-p10",
        Machine::Powernv10,
        "conformance",
        "1G",
        "4",
        4,
        1,
    )
    .with_virtio_console(),
    // guest-smp ends with 4 reboot rounds (start-cpu racing system-reboot,
    // two concurrent system-reboots): exactly 4 reboots.
    lpars("lpar-smp-p9", Machine::Powernv9, "smp", "1G", "4", 4, 1)
        .expecting(SMP_REBOOTS)
        .forbidding(SMP_REBOOTS_FORBIDDEN),
    lpars("lpar-smp-p10", Machine::Powernv10, "smp", "1G", "4", 4, 1)
        .expecting(SMP_REBOOTS)
        .forbidding(SMP_REBOOTS_FORBIDDEN),
    lpars("lpar-timer-p9", Machine::Powernv9, "timer", "1G", "4", 4, 1),
    // A virtio-blk-pci function passed through (tests/guests/pci,
    // docs/passthrough.md), beside a timer partition.
    lpars(
        "lpar-passthrough-p9",
        Machine::Powernv9,
        "passthrough",
        "1G",
        "4",
        4,
        1,
    )
    .with_passthrough(&[PtDevice::VirtioBlk, PtDevice::Nvme])
    .expecting(PASSTHROUGH_MARKERS)
    .forbidding(PASSTHROUGH_FORBIDDEN),
    lpars(
        "lpar-passthrough-p10",
        Machine::Powernv10,
        "passthrough",
        "1G",
        "4",
        4,
        1,
    )
    .with_passthrough(&[PtDevice::VirtioBlk, PtDevice::Nvme])
    .expecting(PASSTHROUGH_MARKERS)
    .forbidding(PASSTHROUGH_FORBIDDEN),
    // A hash-MMU partition beside a radix one (tests/guests/hash).
    lpars("lpar-hash-p9", Machine::Powernv9, "hash", "1G", "4", 4, 1).expecting(LPAR_HASH_EXPECTED),
    lpars("lpar-hash-p10", Machine::Powernv10, "hash", "1G", "4", 4, 1)
        .expecting(LPAR_HASH_EXPECTED),
    lpars(
        "lpar-timer-p10",
        Machine::Powernv10,
        "timer",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-isolation-p9",
        Machine::Powernv9,
        "isolation",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-isolation-p10",
        Machine::Powernv10,
        "isolation",
        "1G",
        "4",
        4,
        1,
    ),
    // Entered as pSeries firmware enters a client (big-endian, at kernel-addr),
    // with 1 GiB of memory that spans host extents on a 1.5 GiB machine.
    lpars(
        "lpar-entry-p9",
        Machine::Powernv9,
        "entry",
        LINUX_1G_MACHINE,
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-entry-p10",
        Machine::Powernv10,
        "entry",
        LINUX_1G_MACHINE,
        "4",
        4,
        1,
    ),
    // The VIO guest (tests/guests/vio): TCE and ibmveth hcalls with bad
    // buffers, bad TCEs and huge sends get PAPR codes only; frames between its
    // own two adapters, none across VLANs.
    lpars("lpar-vio-p9", Machine::Powernv9, "vio", "1G", "2", 2, 1).expecting(&[
        "[vio] GUEST-PASS lan-rx-frame",
        "[vio] GUEST-PASS lan-vlan-isolated",
        "[vio] GUEST-PASS fuzz-only-papr-codes",
    ]),
    // The hostile guest's attack, watched by its neighbour (tests/guests/README.md):
    // the neighbour must outlive it, so their runs overlapped. SMT4: both
    // partitions and the hypervisor's idle boot thread share core 0, so what
    // reaches sibling threads (doorbells, audit finding 3) reaches them.
    lpars(
        "lpar-hostile-p9",
        Machine::Powernv9,
        "hostile",
        "1G",
        "8,cores=2,threads=4",
        8,
        4,
    )
    .stopping_before(HOSTILE_ORDER)
    .expecting(HOSTILE_EXPECT),
    // The hostile guest's attack, watched by its neighbour (tests/guests/README.md):
    // the neighbour must outlive it, so their runs overlapped.
    lpars(
        "lpar-hostile-p10",
        Machine::Powernv10,
        "hostile",
        "1G",
        "8,cores=2,threads=4",
        8,
        4,
    )
    .stopping_before(HOSTILE_ORDER)
    .expecting(HOSTILE_EXPECT),
    // Facilities and exits a guest can cause (tests/guests/facilities): every
    // A secure-VM request where there is no ultravisor (docs/pef.md): UV_ESM by
    // sc 2 and sc 1, H_SVM_*, H_TPM_COMM refused; a neighbour runs meanwhile;
    // a `tpm = true` partition gets H_TPM_COMM's argument checks (no TPM:
    // H_RESOURCE).
    lpars("lpar-pef-p9", Machine::Powernv9, "pef", "1G", "4", 4, 1),
    // A hostile v-scsi client (tests/guests/vscsi, docs/vscsi.md): bad CRQ
    // calls, bad descriptors, LBAs past the end, queue overflow and random IUs
    // get SCSI/SRP errors and PAPR codes while the neighbour keeps running.
    lpars("lpar-vscsi-p9", Machine::Powernv9, "vscsi", "1G", "4", 4, 1)
        .stopping_before(&[("vscsi", "neighbour")])
        .expecting(&[
            "[vscsi] GUEST-PASS overflow-dropped",
            "[vscsi] GUEST-PASS random-ius",
            "[vscsi] GUEST-PASS lba-past-end",
        ]),
    lpars("lpar-pef-p10", Machine::Powernv10, "pef", "1G", "4", 4, 1),
    // Nested virtualization (tests/guests/nested): an L1 test hypervisor runs
    // an L2 with H_ENTER_NESTED, handles its exits, and is refused bad tables
    // and guest-state buffers.
    lpars(
        "lpar-nested-p9",
        Machine::Powernv9,
        "nested",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-nested-p10",
        Machine::Powernv10,
        "nested",
        "1G",
        "4",
        4,
        1,
    ),
    // The same L1 built big-endian: its structures travel big-endian.
    lpars(
        "lpar-nested-be-p9",
        Machine::Powernv9,
        "nested-be",
        "1G",
        "4",
        4,
        1,
    ),
    // A manifest with a `secure = true` partition, past xtask's refusal: the
    // hypervisor refuses that partition at boot and runs the other one.
    lpars(
        "lpar-pef-refused-p9",
        Machine::Powernv9,
        "pef-secure",
        "1G",
        "4",
        4,
        1,
    )
    .refusing_secure(),
    // SPR read and written back, msgsndp/DPDES refused with a program
    // interrupt, DAWR per the POWER9 erratum.
    lpars(
        "lpar-facilities-p9",
        Machine::Powernv9,
        "facilities",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-facilities-p10",
        Machine::Powernv10,
        "facilities",
        "1G",
        "4",
        4,
        1,
    ),
    // msgsndp/DPDES towards SMT siblings running another partition and an
    // idle hypervisor thread (one SMT4 core).
    lpars(
        "lpar-facilities-smt-p9",
        Machine::Powernv9,
        "facilities-smt",
        "1G",
        "4,cores=1,threads=4",
        4,
        4,
    ),
    lpars(
        "lpar-facilities-smt-p10",
        Machine::Powernv10,
        "facilities-smt",
        "1G",
        "4,cores=1,threads=4",
        4,
        4,
    ),
    // A performance monitor alert left pending by a vCPU that stops itself
    // (audit finding 1), and FP/VMX/VSX zeroed when it starts again.
    lpars(
        "lpar-hostile-pmu-p9",
        Machine::Powernv9,
        "hostile-pmu",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-hostile-pmu-p10",
        Machine::Powernv10,
        "hostile-pmu",
        "1G",
        "4",
        4,
        1,
    ),
    // The same alert pending while its partition reboots.
    lpars(
        "lpar-hostile-pmu-reboot-p9",
        Machine::Powernv9,
        "hostile-pmu-reboot",
        "1G",
        "4",
        4,
        1,
    )
    .expecting(&["PAPRIKA lpar hostile-pmu: rebooting (boot 2)"]),
    // Console and log abuse (audit findings 4-6, tests/manifests/console.toml):
    // the hostile partition's escape sequences show inert, its forged lines
    // fool neither the log nor these checks, it is throttled while its
    // neighbour's H_PUT_TERM_CHAR stays fast, and the neighbour's warning is
    // logged although the hostile one used up its own. A test-hooks build,
    // whose OPAL console drains at 115200 baud as a real BMC UART does (the
    // emulated one is much faster).
    Scenario {
        features: &["test-hooks"],
        ..lpars(
            "lpar-console-p9",
            Machine::Powernv9,
            "console",
            "1G",
            "4",
            4,
            1,
        )
        .failing(
            &["hostile"],
            CONSOLE_ABUSE_EXPECTED,
            CONSOLE_ABUSE_FORBIDDEN,
        )
    },
    // Ctrl-A d dumps each vCPU of each partition (tests/manifests/dump.toml).
    lpars("lpar-dump-p9", Machine::Powernv9, "dump", "1G", "3", 3, 1)
        .typing_keys(DUMP_INPUT)
        .expecting(DUMP_EXPECTED),
    // A test-hooks build: the RTC fails (OPAL busy) under a partition looping
    // get-time-of-day while its neighbour times one call; then the neighbour
    // stops with a fault, whose report dumps its vCPUs (tests/manifests/hooks.toml).
    Scenario {
        features: &["test-hooks"],
        ..lpars("lpar-hooks-p9", Machine::Powernv9, "hooks", "1G", "4", 4, 1).failing(
            &["rtc-neighbour"],
            HOOKS_EXPECTED,
            HOOKS_FORBIDDEN,
        )
    },
    // Stock Linux (skipped when `cargo xtask linux fetch` cannot fetch it). The
    // 4-vCPU boots take longest: they go first.
    linux_typed("linux-p9-4cpu", Machine::Powernv9, "1G", "4", 4, LINUX_4CPU),
    linux_typed(
        "linux-p10-4cpu",
        Machine::Powernv10,
        "1G",
        "4",
        4,
        LINUX_4CPU,
    ),
    linux_typed("linux-p9-1cpu", Machine::Powernv9, "1G", "1", 1, LINUX_1CPU),
    // A partition larger than any contiguous free host memory: backed by
    // several host extents, all of it usable by the guest.
    linux(
        "linux-1g-p9",
        Machine::Powernv9,
        LINUX_1G_MACHINE,
        "1",
        1,
        LINUX_1G,
    )
    .expecting(&[
        "PAPRIKA lpar-memory: linux 1024 MiB in non-contiguous host extents",
        "K/1048576K available",
    ]),
    linux_typed(
        "linux-p10-1cpu",
        Machine::Powernv10,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    ),
    // A hash-MMU partition (mmu = "hash", disable_radix) beside a radix one.
    linux(
        "linux-hash-p9-1cpu",
        Machine::Powernv9,
        "1280M",
        "3",
        3,
        LINUX_HASH_1CPU,
    )
    .expecting(LINUX_HASH_EXPECTED),
    linux(
        "linux-hash-p10-1cpu",
        Machine::Powernv10,
        "1280M",
        "3",
        3,
        LINUX_HASH_1CPU,
    )
    .expecting(LINUX_HASH_EXPECTED),
    linux(
        "linux-hash-p9-4cpu",
        Machine::Powernv9,
        "1536M",
        "5",
        5,
        LINUX_HASH_4CPU,
    )
    .expecting(LINUX_HASH_EXPECTED),
    linux(
        "linux-hash-p10-4cpu",
        Machine::Powernv10,
        "1536M",
        "5",
        5,
        LINUX_HASH_4CPU,
    )
    .expecting(LINUX_HASH_EXPECTED),
    // `mmu = "any"`: the guest's choice, by `disable_radix` (checked in
    // /proc/cpuinfo), and the hypervisor following it.
    linux(
        "linux-any-p9",
        Machine::Powernv9,
        "1280M",
        "3",
        3,
        LINUX_ANY,
    )
    .expecting(&[
        "PAPRIKA lpar-hpt: linux-any-hash mmu=any HPT",
        "PAPRIKA lpar-hpt: linux-any-radix mmu=any: the guest chose radix",
    ])
    .forbidding(ANY_FORBIDDEN),
    // Debian's Linux on passed-through virtio-blk-pci and nvme functions
    // (docs/passthrough.md "Linux in a partition").
    linux(
        "linux-passthrough-p9",
        Machine::Powernv9,
        "1G",
        "2",
        2,
        LINUX_PT,
    )
    .with_passthrough(&[PtDevice::VirtioBlk, PtDevice::Nvme])
    .expecting(LINUX_PT_EXPECTED)
    .forbidding(LINUX_PT_FORBIDDEN),
    // Two partitions' e1000e on one QEMU hub pinging each other, one through
    // the 32-bit TCE window, the other the 64-bit one; one reboots
    // (docs/passthrough.md "Linux in a partition").
    linux(
        "linux-passthrough-net-p9",
        Machine::Powernv9,
        "1536M",
        "2",
        2,
        LINUX_PT_NET,
    )
    .with_passthrough(&[PtDevice::E1000e(0), PtDevice::E1000e(0)])
    .expecting(LINUX_PT_NET_EXPECTED)
    .forbidding(LINUX_PT_NET_FORBIDDEN),
    linux(
        "linux-two-lpars-p9",
        Machine::Powernv9,
        "1280M",
        "3",
        3,
        LINUX_TWO,
    ),
    // XICS instead of XIVE: the checks, then typing, whose vty interrupt must
    // fire on the XICS source controller.
    linux_typed(
        "linux-xive-off-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .append("xive=off"),
    // Nested virtualization: Debian's kvm-hv loads in a `nested = true`
    // partition (without nesting it fails: "Parent hypervisor does not support
    // nesting").
    linux("linux-kvm-p9", Machine::Powernv9, "1G", "1", 1, LINUX_1CPU)
        .append("paprika.kvm=1")
        .expecting(&["PAPRIKA-LINUX check kvm-hv-loads: ok"]),
    // Then the mini VMM (tests/guests/vmm) runs guest-timer as an L2 under
    // that kvm-hv: its checks and GUEST-DONE come out through the VMM, which
    // exits 0 when the L2 powers off.
    linux(
        "linux-kvm-l2-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .append("paprika.kvm=1 paprika.l2=1")
    .expecting(L2_EXPECTED),
    linux(
        "linux-kvm-l2-p10",
        Machine::Powernv10,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .append("paprika.kvm=1 paprika.l2=1")
    .expecting(L2_EXPECTED),
    // Two L1 vCPUs: the L2's one vCPU runs on each in turn.
    linux(
        "linux-kvm-l2-p9-2cpu",
        Machine::Powernv9,
        "1G",
        "2",
        2,
        LINUX_2CPU,
    )
    .append("paprika.kvm=1 paprika.l2=1")
    .expecting(L2_EXPECTED_2CPU),
    // Virtual Ethernet between partitions (docs/vio.md): veth-a and veth-b on
    // VLAN 1 with MTU 9000 ping each other (also with 8000-byte packets) and
    // move 64 MiB over TCP with busybox nc, md5 compared; veth-c on VLAN 2
    // gets no reply and receives nothing.
    linux("linux-veth-p9", Machine::Powernv9, "2G", "3", 3, LINUX_VETH)
        .expecting(&[
            "PAPRIKA-LINUX check veth-ping-no-loss: ok",
            "PAPRIKA-LINUX check veth-ping-jumbo: ok",
            "PAPRIKA-LINUX check veth-tcp-md5: ok",
            "[veth-a] PAPRIKA-LINUX check veth-irq: ok",
            "[veth-b] PAPRIKA-LINUX check veth-relink: ok",
            "PAPRIKA veth veth-b: l-lan@71000001 link down",
            "PAPRIKA-LINUX check veth-isolated-no-reply: ok",
            "PAPRIKA-LINUX check veth-isolated-rx-zero: ok",
            "PAPRIKA veth veth-a: l-lan@71000001 link up (vlan 1)",
        ])
        .timeout_secs(420),
    // One partition reboots mid-transfer (told to over the network) while the
    // other keeps running; once back, the whole 64 MiB arrive intact.
    linux(
        "linux-veth-reboot-p9",
        Machine::Powernv9,
        "1536M",
        "2",
        2,
        LINUX_VETH_REBOOT,
    )
    .expecting(&[
        "PAPRIKA lpar veth-rb: rebooting (boot 2)",
        "[veth-rb] PAPRIKA-LINUX check veth-tcp-md5: ok",
        "[veth-ra] PAPRIKA-LINUX check veth-peer-back: ok",
        "[veth-ra] PAPRIKA-LINUX check veth-resent: ok",
    ])
    .timeout_secs(420),
    // A shell on the console: what is typed on QEMU's stdin reaches it.
    linux("linux-echo-p9", Machine::Powernv9, "1G", "1", 1, LINUX_1CPU)
        .typing(LinuxMode::Echo, ECHO_INPUT)
        .vty_irq(),
    // vscsi (docs/vscsi.md): the first partition mounts an ext4 image, checks a
    // file's checksum, writes a file and a word into NVRAM, reboots, and reads
    // both back; a second, read-only disk is checksummed whole.
    linux(
        "linux-vscsi-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .with_disks(2)
    .append("paprika.nvram=1")
    .expecting(&[
        "PAPRIKA-LINUX disk: written, rebooting name=linux",
        "PAPRIKA lpar linux: rebooting (boot 2)",
        "PAPRIKA-LINUX check vscsi-file-md5: ok",
        "PAPRIKA-LINUX check vscsi-write-survives-reboot: ok",
        "PAPRIKA-LINUX check vscsi-disk1-md5: ok",
        "PAPRIKA-LINUX check vscsi-disk1-read-only: ok",
        "PAPRIKA-LINUX check nvram-survives-reboot: ok",
    ]),
    // Partition NVRAM across a machine power-off (docs/vscsi.md): two QEMU runs
    // on one PNOR flash; the first writes a word into /dev/nvram and powers
    // off, the second finds it (restored from OPAL's NVRAM).
    linux(
        "linux-nvram-poweroff-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .append("paprika.nvpoweroff=1")
    .pnor_runs(2)
    .expecting(&[
        "PAPRIKA-LINUX nvram: written, powering off name=linux",
        "PAPRIKA nvram: linux in host NVRAM at",
        "(restored)",
        "PAPRIKA-LINUX check nvram-survives-poweroff: ok",
    ]),
    // The initramfs hands over to /sbin/init of an ext4 root on a vscsi disk
    // (what `cargo xtask run --linux --disk root.ext4 --append paprika.root=1`
    // does with a Debian root).
    linux(
        "linux-vscsi-root-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .with_root_disk()
    .expecting(&["PAPRIKA-LINUX root: init from the vscsi disk, / is ext4"]),
    // A Debian 12 root file system on /dev/sda (`cargo xtask run
    // --debian-root`): the initramfs switches to its bash /sbin/init, which
    // reports the release and drives powerpc-utils' nvram: a variable set in
    // the `common` partition is read back after a partition reboot, and (two
    // QEMU runs on one PNOR flash) after the machine's power-off.
    linux(
        "linux-debian-root-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .with_debian_root()
    .pnor_runs(2)
    .expecting(&[
        "PAPRIKA-LINUX debian: paprika-debian not in common yet name=linux",
        "PAPRIKA-LINUX root: /dev/sda, switching to its /sbin/init name=linux",
        crate::debian::INIT_MARKER,
        "PAPRIKA-LINUX debian_version: 12.",
        "PAPRIKA-LINUX os-release: Debian GNU/Linux 12 (bookworm) name=linux",
        "PAPRIKA-LINUX check debian-dynamic: ok",
        "PAPRIKA-LINUX check debian-root-ext4: ok",
        "\"common\" Partition",
        "PAPRIKA-LINUX check nvram-print-config: ok",
        "PAPRIKA-LINUX check nvram-update-config: ok",
        "PAPRIKA-LINUX check nvram-read-back: ok",
        "PAPRIKA-LINUX debian: nvram set, rebooting name=linux",
        "PAPRIKA lpar linux: rebooting (boot 2)",
        "PAPRIKA-LINUX check nvram-config-survives-reboot: ok",
        "PAPRIKA nvram: linux in host NVRAM at",
        "(restored)",
        "PAPRIKA-LINUX check nvram-config-survives-poweroff: ok name=linux",
    ]),
    // `reboot` in the guest restarts only that partition, with fresh memory and
    // the same images: its second boot reaches the shell again.
    linux(
        "linux-reboot-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .typing(LinuxMode::Echo, REBOOT_INPUT)
    .expecting(&["PAPRIKA lpar linux: rebooting (boot 2)"]),
    // The console router: Ctrl-A c moves typing from one partition to the next.
    linux(
        "linux-console-switch-p9",
        Machine::Powernv9,
        "1280M",
        "3",
        3,
        LINUX_TWO,
    )
    .typing(LinuxMode::Echo, SWITCH_INPUT)
    .expecting(&[
        "PAPRIKA console: input -> linux-a",
        "PAPRIKA console: input -> linux-b",
    ]),
    // Ctrl-A x powers the machine off cleanly.
    linux(
        "linux-console-quit-p9",
        Machine::Powernv9,
        "1G",
        "1",
        1,
        LINUX_1CPU,
    )
    .typing(LinuxMode::Echo, QUIT_INPUT)
    .expecting(&[
        "PAPRIKA console: Ctrl-A x: stopping every partition",
        "PAPRIKA console: Ctrl-A d: vCPU dump",
        // Linux's vCPU, in its kernel (translated, little-endian).
        "PAPRIKA dump: linux vCPU 0 ",
        " pc=0xc000",
    ]),
];

/// Checks the `grep -w hvc_console /proc/interrupts` output typed after the
/// echo (the first such line after `typed-42`): the count of the vty's
/// interrupt must be above 0 on `chip` (`XIVE-IRQ` for XIVE, `XICS` for the
/// XICS source controller: `17:  3  XICS 4096 Edge  hvc_console`). `None` when
/// so.
fn vty_irq_problem(lines: &[(usize, &str)], chip: &str) -> Option<String> {
    let after = lines.iter().position(|(_, l)| *l == ECHO_OUTPUT)?;
    let Some((_, line)) = lines[after..]
        .iter()
        .find(|(_, l)| l.contains("hvc_console") && !l.contains("grep"))
    else {
        return Some("no `hvc_console` line from /proc/interrupts after the echo".into());
    };
    // `<irq>:` then one count per CPU (summed); stray bytes before it (e.g. the
    // tail of a terminal query the shell sent) are skipped.
    let count: u64 = line
        .split_whitespace()
        .skip_while(|w| {
            !w.strip_suffix(':')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .skip(1)
        .map_while(|w| w.parse::<u64>().ok())
        .sum();
    if count == 0 {
        return Some(format!(
            "the vty interrupt never fired (typed input was not delivered by interrupt): `{line}`"
        ));
    }
    if !line.contains(chip) {
        return Some(format!("the vty interrupt is not on {chip}: `{line}`"));
    }
    None
}

/// `key=value` from the words after `marker` on the first line containing it.
fn marker_field(log: &str, marker: &str, key: &str) -> Option<String> {
    let line = find_line(log, marker)?;
    let after = &line[line.find(marker)? + marker.len()..];
    after.split_whitespace().find_map(|w| {
        w.strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .map(|v| v.trim_end_matches(',').to_string())
    })
}

/// The message of a hypervisor log line (`[    1.234567] cpu 3/lpar1 INFO  <message>`):
/// what follows the timestamp, the `cpu` field and the level, each optional as
/// long as what is there has that form; `None` for any other line (a partition's
/// `[<name>] ...` line, whose name cannot hold the timestamp's `.` or space).
pub fn log_message(line: &str) -> Option<&str> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if let Some(r) = rest.strip_prefix('[') {
        let (stamp, after) = r.split_once(']')?;
        let (secs, frac) = stamp.trim_start().split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(secs) || !digits(frac) {
            return None;
        }
        rest = after.strip_prefix(' ')?;
    }
    if let Some(r) = rest.strip_prefix("cpu ") {
        let (_, after) = r.split_once(' ')?;
        rest = after;
    }
    for level in ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] {
        if let Some(r) = rest.strip_prefix(level) {
            if r.starts_with(' ') {
                return Some(r.trim_start_matches(' '));
            }
        }
    }
    None
}

/// The last hypervisor log line whose message starts with `marker` (a guest
/// cannot forge one: its text is behind its prefix, and a message quoting guest
/// text never starts with it).
fn find_line<'a>(log: &'a str, marker: &str) -> Option<&'a str> {
    log.lines()
        .rfind(|l| log_message(l).is_some_and(|m| m.starts_with(marker)))
}

/// `A/B` right after `marker` (e.g. `PAPRIKA smp: 4/4 threads online`).
fn fraction_after(line: &str, marker: &str) -> Option<(u64, u64)> {
    let after = &line[line.find(marker)? + marker.len()..];
    after.split_whitespace().find_map(|w| {
        let (a, b) = w.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    })
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses `PAPRIKA boot-time: ticks=<N> us=<N>`.
pub fn boot_time(log: &str) -> Option<(u64, u64)> {
    let ticks = parse_number(&marker_field(log, BOOT_TIME, "ticks")?)?;
    let us = parse_number(&marker_field(log, BOOT_TIME, "us")?)?;
    Some((ticks, us))
}

/// Checks a finished scenario; returns every reason it failed (empty: passed).
/// On the UART when the hypervisor moves its output to the virtio console.
pub const VIRTIO_SWITCH: &str = "console output continues on the virtio console";
/// First line on the virtio console.
pub const VIRTIO_CONSOLE: &str = "PAPRIKA console: virtio at PHB";

/// A scenario with a virtio console: the UART shows the switch, the virtio
/// console shows the rest (down to the partitions' summary), and the summary is
/// not on the UART (output moved, not copied).
pub fn check_virtio_console(serial: &str, vcon: &str) -> Vec<String> {
    let mut why = Vec::new();
    if !serial.contains(VIRTIO_SWITCH) {
        why.push(format!("the UART never showed `{VIRTIO_SWITCH}`"));
    }
    for want in [VIRTIO_CONSOLE, PARTITIONS] {
        if !vcon.contains(want) {
            why.push(format!("the virtio console never showed `{want}`"));
        }
    }
    if serial.contains(PARTITIONS) {
        why.push(format!(
            "`{PARTITIONS}` showed on the UART: output did not stay on the virtio console"
        ));
    }
    why
}

pub fn check(s: &Scenario, log: &str, outcome: &Outcome) -> Vec<String> {
    let mut why = Vec::new();

    match (outcome.status, s.expect_success) {
        (None, _) => why.push(outcome.describe(s.timeout)),
        (Some(st), true) if !st.success() => why.push(format!(
            "QEMU ended with {}, expected exit status 0",
            crate::cmd::describe_status(st)
        )),
        (Some(st), false) if st.success() => why.push(
            "QEMU exited with status 0, expected a failure (non-zero, e.g. 1 from \
             -action panic=exit-failure)"
                .to_string(),
        ),
        _ => {}
    }

    if s.boot_markers {
        check_boot_markers(s, log, &mut why);
    }
    for want in s.expected {
        if !log.contains(want) {
            why.push(format!("missing `{want}`"));
        }
    }
    for bad in s.forbidden {
        if let Some((n, line)) = log.lines().enumerate().find(|(_, l)| l.contains(bad)) {
            why.push(format!(
                "forbidden `{bad}` on console line {}: {}",
                n + 1,
                line.trim_end()
            ));
        }
    }
    why
}

/// Whether a manifest can be a scenario's on a machine of `memory` bytes and
/// `cpus` threads: it fits, it ends (power_off_when_idle), and every `expect`
/// can show (console on).
pub fn check_scenario_manifest(m: &Manifest, memory: u64, cpus: u32) -> Result<(), String> {
    if !m.machine.power_off_when_idle {
        return Err("power_off_when_idle = false: the machine would never power off".into());
    }
    for p in &m.partitions {
        if p.expect.is_some() && !p.console {
            return Err(format!(
                "partition \"{}\" has an `expect` but console = false, so it cannot show",
                p.name
            ));
        }
    }
    let total = m.total_memory().unwrap_or(u64::MAX);
    let needed = total.saturating_add(crate::partitions::MACHINE_OVERHEAD);
    if memory < needed {
        return Err(format!(
            "the partitions need {} MiB + {} MiB, the scenario's machine has {} MiB",
            total >> 20,
            crate::partitions::MACHINE_OVERHEAD >> 20,
            memory >> 20
        ));
    }
    if let Some(cpu) = m.max_cpu().filter(|&c| c >= cpus) {
        return Err(format!(
            "hardware thread {cpu} is used, the scenario's machine has {cpus}"
        ));
    }
    Ok(())
}

/// Whether a console line shows `marker` in partition `name`'s output: right
/// after the `[<name>] ` prefix the hypervisor puts at the start of the
/// partition's console lines (anywhere else it could be another partition's
/// text quoting it).
fn partition_line_has(line: &str, name: &str, marker: &str) -> bool {
    line.strip_prefix(&format!("[{name}] "))
        .is_some_and(|rest| rest.starts_with(marker))
}

/// The partition checks of a manifest scenario; returns every reason it failed.
#[cfg(test)]
pub fn check_partitions(m: &Manifest, log: &str) -> Vec<String> {
    check_partitions_failing(m, log, &[])
}

/// [`check_partitions`] of a scenario whose partitions `failing` must fail:
/// the summary must say so.
pub fn check_partitions_failing(m: &Manifest, log: &str, failing: &[&str]) -> Vec<String> {
    let mut why = Vec::new();
    let mut refused = 0;
    for p in &m.partitions {
        if p.secure {
            // Only bundled by a scenario that bypassed xtask's refusal: the
            // hypervisor must refuse it (QEMU has no ultravisor).
            refused += 1;
            let line = format!(
                "PAPRIKA lpar-refused: {}: secure = true needs a PEF ultravisor",
                p.name
            );
            if find_line(log, &line).is_none() {
                why.push(format!("missing `{line} ...`"));
            }
            continue;
        }
        if let Some(marker) = &p.expect {
            if !log.lines().any(|l| partition_line_has(l, &p.name, marker)) {
                why.push(format!(
                    "partition {}: missing `[{}] ...{marker}` on the console",
                    p.name, p.name
                ));
            }
        }
        let stopped = format!("{LPAR}{}: stopped", p.name);
        if find_line(log, &stopped).is_none() {
            why.push(format!("missing `{stopped} (...)`"));
        }
    }
    let failed = failing.len();
    check_summary(m.partitions.len() - failed - refused, failed, log, &mut why);
    why
}

/// [`Scenario::stops_before`]: each first partition's stop line comes before
/// the second's.
pub fn check_order(s: &Scenario, log: &str) -> Vec<String> {
    let line_of = |name: &str| {
        let stopped = format!("{LPAR}{name}: stopped");
        log.lines().position(|l| l.contains(&stopped))
    };
    let mut why = Vec::new();
    for (first, second) in s.stops_before {
        if let (Some(a), Some(b)) = (line_of(first), line_of(second)) {
            if a > b {
                why.push(format!(
                    "partition {second} stopped before {first}: their runs did not overlap \
                     (raise {second}'s run time)"
                ));
            }
        }
    }
    why
}

/// `GUEST-SEED <n>` of a test guest (the hostile guest's): how to replay a run.
pub fn guest_seed(log: &str) -> Option<u64> {
    log.lines().find_map(|l| {
        let rest = &l[l.find("] GUEST-SEED ")? + "] GUEST-SEED ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The figures test guests print (`[<name>] GUEST-FIGURES k=v ...`), as
/// `<name>: k=v ...` for the summary.
pub fn guest_figures(log: &str) -> String {
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(at) = l.find("] GUEST-FIGURES ") else {
            continue;
        };
        let Some(open) = l[..at].rfind('[') else {
            continue;
        };
        let name = &l[open + 1..at];
        out.push(format!(
            "{name}: {}",
            l[at + "] GUEST-FIGURES ".len()..].trim()
        ));
    }
    out.join("; ")
}

/// `PAPRIKA partitions: <n> passed, 0 failed`.
fn check_all_passed(n: usize, log: &str, why: &mut Vec<String>) {
    check_summary(n, 0, log, why)
}

/// `PAPRIKA partitions: <passed> passed, <failed> failed`, the last summary.
fn check_summary(passed: usize, failed: usize, log: &str, why: &mut Vec<String>) {
    let want = format!("{PARTITIONS} {passed} passed, {failed} failed");
    match find_line(log, PARTITIONS) {
        None => why.push(format!("missing `{want}`")),
        Some(line) if line.contains(&want) => {}
        Some(line) => why.push(format!("expected `{want}`, got: {}", line.trim_end())),
    }
}

/// Whether `want` is in one of a partition's `lines`, or across one line and
/// that partition's next one: the hypervisor shows the input partition's
/// unfinished line once it has been silent for a while (a prompt), and a guest
/// whose vCPU thread the host deschedules mid-line looks silent too. Another
/// partition's line then ends it, and the rest follows on a fresh prefixed line
/// (docs/console.md), so one kernel line can be two physical lines.
fn has_text(lines: &[(usize, &str)], want: &str) -> bool {
    any_line_or_split(lines, want.len(), |l| l.contains(want))
}

/// Whether `want` is one of a partition's `lines` exactly, or one line and the
/// next joined (as [`has_text`] explains).
fn has_line(lines: &[(usize, &str)], want: &str) -> bool {
    any_line_or_split(lines, want.len(), |l| l == want)
}

/// Whether `matches` holds for one of `lines`, or for one line joined to the
/// next, directly or with a space (the lines were trimmed at the end: the cut
/// may have been a space). `min_len`: no shorter join can match.
fn any_line_or_split(
    lines: &[(usize, &str)],
    min_len: usize,
    matches: impl Fn(&str) -> bool,
) -> bool {
    lines.iter().any(|(_, l)| matches(l))
        || lines.windows(2).any(|w| {
            let (a, b) = (w[0].1, w[1].1);
            a.len() + b.len() + 1 >= min_len
                && (matches(&format!("{a}{b}")) || matches(&format!("{a} {b}")))
        })
}

/// The console lines of partition `name` (those starting with its `[<name>] `
/// prefix): 1-based line number and the text after the prefix, trimmed at the end.
fn partition_lines<'a>(log: &'a str, name: &str) -> Vec<(usize, &'a str)> {
    let prefix = format!("[{name}] ");
    log.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            l.strip_prefix(prefix.as_str())
                .map(|r| (i + 1, r.trim_end()))
        })
        .collect()
}

/// `key : value` of a /proc/cpuinfo line.
fn cpuinfo_field(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    Some((k.trim(), v.trim()))
}

/// The first word after `marker` at the start of one of `lines`.
fn marker_word<'a>(lines: &[(usize, &'a str)], marker: &str) -> Option<&'a str> {
    lines.iter().find_map(|(_, l)| {
        l.strip_prefix(marker)
            .and_then(|rest| rest.split_whitespace().next())
    })
}

/// Host time (seconds since 1970) when QEMU started and when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostClock {
    pub start: u64,
    pub end: u64,
}

/// The checks of a Linux scenario on its console, per partition: /init reached
/// userspace (`PAPRIKA-LINUX userspace reached name=<partition>`), the kernel saw
/// the command line xtask gave it, /proc/cpuinfo says `MMU : Radix` and lists one
/// `processor` per vCPU, /proc/interrupts was printed (its `CPU0` header), the
/// guest's `date` is within [`CLOCK_SLACK_SECS`] of the host clock during the
/// run, the test passed (test mode) or the shell printed `typed-42` (echo mode),
/// and the partition stopped by powering off. Across partitions: every
/// `PAPRIKA-LINUX` line is behind the prefix of the partition it names, no
/// `PAPRIKA-LINUX check <x>: FAILED` line anywhere, and `PAPRIKA partitions:
/// <n> passed, 0 failed` (so it replaces [`check_partitions`], which would
/// report the same things a second time). Returns every reason it
/// failed and a note for the summary (interrupt controller and clock offset
/// per partition).
pub fn check_linux(boot: &LinuxBoot, log: &str, host: HostClock) -> (Vec<String>, String) {
    let mut why = Vec::new();
    let mut notes = Vec::new();
    for p in boot.partitions {
        let lines = partition_lines(log, p.name);
        let who = format!("partition {}", p.name);
        let reached = userspace_marker(p.name);
        if !has_text(&lines, &reached) {
            why.push(format!("{who}: missing `[{}] {reached}`", p.name));
            // Nothing /init prints can be there either.
            continue;
        }
        let cmdline = format!("Kernel command line: {}", boot.cmdline(p));
        if !has_text(&lines, &cmdline) {
            why.push(format!("{who}: missing `[{}] ...{cmdline}`", p.name));
        }
        match boot.mode {
            LinuxMode::Test | LinuxMode::TestEcho => {
                let passed = format!("{} name={}", linux::TEST_PASSED, p.name);
                if !has_line(&lines, &passed) {
                    why.push(format!("{who}: missing `[{}] {passed}`", p.name));
                }
            }
            LinuxMode::Echo => {}
        }
        match boot.mode {
            LinuxMode::Test => {}
            LinuxMode::Echo | LinuxMode::TestEcho => {
                if !has_line(&lines, ECHO_OUTPUT) {
                    why.push(format!(
                        "{who}: the shell did not print `{ECHO_OUTPUT}` for the typed \
                         `echo typed-$((6*7))`"
                    ));
                }
                if boot.vty_irq {
                    if let Some(e) = vty_irq_problem(&lines, boot.irqchip_of(p)) {
                        why.push(format!("{who}: {e}"));
                    }
                }
            }
        }
        // The last boot's report (a rebooted partition printed one per boot).
        let last_boot = lines
            .iter()
            .rposition(|(_, l)| l.contains(&reached))
            .unwrap_or(0);
        let cpuinfo: Vec<(&str, &str)> = lines[last_boot..]
            .iter()
            .filter_map(|(_, l)| cpuinfo_field(l))
            .collect();
        let mmu = if p.runs_hash() { "Hash" } else { "Radix" };
        if !cpuinfo.contains(&("MMU", mmu)) {
            why.push(format!("{who}: /proc/cpuinfo has no `MMU\t\t: {mmu}` line"));
        }
        let processors = cpuinfo.iter().filter(|(k, _)| *k == "processor").count();
        if processors != p.cpus.len() {
            why.push(format!(
                "{who}: /proc/cpuinfo lists {processors} processor(s), the partition has {} vCPU(s)",
                p.cpus.len()
            ));
        }
        let interrupts = lines
            .iter()
            .skip_while(|(_, l)| *l != "--- /proc/interrupts")
            .skip(1)
            .take_while(|(_, l)| !l.starts_with("--- "))
            .any(|(_, l)| l.contains("CPU0"));
        if !interrupts {
            why.push(format!(
                "{who}: no /proc/interrupts (`--- /proc/interrupts`, then its CPU0 header)"
            ));
        }
        let irqchip = marker_word(&lines, linux::IRQCHIP_MARKER).unwrap_or("?");
        let want_chip = boot.irqchip_of(p);
        if irqchip != want_chip {
            why.push(format!(
                "{who}: /proc/interrupts names {irqchip}, expected {want_chip} \
                 (`{}{want_chip}`)",
                linux::IRQCHIP_MARKER
            ));
        }
        let clock = match marker_word(&lines, linux::DATE_MARKER).map(str::parse::<u64>) {
            Some(Ok(guest)) => {
                // How far outside the run's wall-clock window the guest's clock is.
                let off = guest as i64 - (guest.clamp(host.start, host.end.max(host.start))) as i64;
                if off.unsigned_abs() > CLOCK_SLACK_SECS {
                    why.push(format!(
                        "{who}: the guest's date is {guest} (epoch), the host's was {}..{} \
                         during the run: {off:+} s off, more than {CLOCK_SLACK_SECS} s",
                        host.start, host.end
                    ));
                }
                format!("clock {off:+} s")
            }
            Some(Err(_)) | None => {
                why.push(format!(
                    "{who}: missing `[{}] {}<seconds>`",
                    p.name,
                    linux::DATE_MARKER
                ));
                "clock ?".to_string()
            }
        };
        let stopped = format!("{LPAR}{}: stopped (power-off)", p.name);
        if find_line(log, &stopped).is_none() {
            why.push(format!("missing `{stopped}`"));
        }
        if boot.partitions.len() > 1 {
            notes.push(format!("{} {irqchip}, {clock}", p.name));
        } else {
            notes.push(format!("{irqchip}, {clock}"));
        }
    }

    // /init's lines: no failed check, and each behind its own partition's prefix.
    let mut mixed = 0;
    for (i, line) in log.lines().enumerate() {
        let Some(at) = line.find(linux::MARKER_PREFIX) else {
            continue;
        };
        let text = line.trim_end();
        if text[at..].starts_with("PAPRIKA-LINUX check ") && text.ends_with(": FAILED") {
            why.push(format!(
                "failed /init check on console line {}: {text}",
                i + 1
            ));
        }
        let owner = boot
            .partitions
            .iter()
            .find(|p| line.starts_with(&format!("[{}] ", p.name)));
        let named = text[at..]
            .split_whitespace()
            .find_map(|w| w.strip_prefix("name="));
        let problem = match (owner, named) {
            (None, _) => Some("not behind a partition's `[<name>] ` prefix".to_string()),
            // A tag cut short at the end of the line is the partition's own
            // line split by the console (a vCPU thread descheduled mid-line:
            // the rest follows on a fresh `[<name>] ` line), not a mix-up.
            (Some(p), Some(n)) if n != p.name && !(text.ends_with(n) && p.name.starts_with(n)) => {
                Some(format!("partition {} shows {n}'s line", p.name))
            }
            (Some(p), _) => boot
                .partitions
                .iter()
                .find(|q| q.name != p.name && line.contains(&format!("[{}] ", q.name)))
                .map(|q| format!("partitions {} and {} on one line", p.name, q.name)),
        };
        if let Some(problem) = problem {
            mixed += 1;
            if mixed <= 3 {
                why.push(format!(
                    "consoles mixed up on line {}: {problem}: {text}",
                    i + 1
                ));
            }
        }
    }
    if mixed > 3 {
        why.push(format!("... {} more mixed-up console lines", mixed - 3));
    }
    check_all_passed(boot.partitions.len(), log, &mut why);
    (why, notes.join("; "))
}

fn check_boot_markers(s: &Scenario, log: &str, why: &mut Vec<String>) {
    let cpus = u64::from(s.cpus);
    match find_line(log, BANNER) {
        None => why.push(format!("missing `{BANNER} ...`")),
        Some(_) => {
            let memory = parse_size(s.memory)
                .map(|b| b.to_string())
                .unwrap_or_default();
            let field = |key| marker_field(log, BANNER, key).and_then(|v| parse_number(&v));
            match field("memory") {
                Some(m) if m.to_string() == memory => {}
                Some(m) => why.push(format!(
                    "banner says memory={m}, expected {memory} (-m {})",
                    s.memory
                )),
                None => why.push("banner has no memory=<bytes>".to_string()),
            }
            match field("threads") {
                Some(t) if t == cpus => {}
                Some(t) => why.push(format!(
                    "banner says threads={t}, expected {cpus} (-smp {})",
                    s.smp
                )),
                None => why.push("banner has no threads=<n>".to_string()),
            }
        }
    }

    for (marker, what) in [(SMP, "threads online"), (TIMER, "dec and hdec ticks on")] {
        match find_line(log, marker).map(|l| (l, fraction_after(l, marker))) {
            None => why.push(format!("missing `{marker} ...`")),
            Some((_, Some((a, b)))) if a == cpus && b == cpus => {}
            Some((line, _)) => why.push(format!(
                "expected `{marker} ...{what}... {cpus}/{cpus}`, got: {}",
                line.trim_end()
            )),
        }
    }

    if s.threads_per_core > 1 && !log.contains(DOORBELL_OK) {
        why.push(format!(
            "missing `{DOORBELL_OK}` (cores have {} threads)",
            s.threads_per_core
        ));
    }
    if s.expect_success && !log.contains(POWER_OFF_OK) {
        why.push(format!("missing `{POWER_OFF_OK}`"));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn text_split_by_a_shown_line_is_found() {
        let log = "[a] [    0.0] Kernel command line: console=hvc0 \n\
                   [b] something else\n\
                   [a] paprika.name=a\n\
                   [a] Kernel command line: x\n";
        let lines = partition_lines(log, "a");
        assert!(has_text(
            &lines,
            "Kernel command line: console=hvc0 paprika.name=a"
        ));
        assert!(has_text(&lines, "line: console=hvc0"));
        // Two lines at most, and only the partition's own.
        assert!(!has_text(&lines, "console=hvc0 paprika.name=a Kernel"));
        assert!(!has_text(&lines, "hvc0 something"));
    }

    #[test]
    fn exact_line_split_by_a_shown_line_is_found() {
        let log = "[a] PAPRIKA-LINUX test: \n\
                   [b] other\n\
                   [a] passed name=a\n\
                   [a] typed-42\n";
        let lines = partition_lines(log, "a");
        assert!(has_line(&lines, "PAPRIKA-LINUX test: passed name=a"));
        assert!(has_line(&lines, "typed-42"));
        // Exact: a line that only contains it does not count.
        assert!(!has_line(&lines, "typed-4"));
        assert!(!has_line(&lines, "test: passed name=a"));
    }

    #[test]
    fn virtio_console_output_must_move_there() {
        let serial = format!("skiboot\n{VIRTIO_SWITCH}\n");
        let vcon = format!("{VIRTIO_CONSOLE} 0 01:00.0\n{PARTITIONS} 1 passed, 0 failed\n");
        assert!(check_virtio_console(&serial, &vcon).is_empty());
        // Nothing arrived on the virtio console.
        assert_eq!(check_virtio_console(&serial, "").len(), 2);
        // Never switched, and the summary stayed on the UART.
        let stayed = format!("{PARTITIONS} 1 passed, 0 failed\n");
        assert_eq!(check_virtio_console(&stayed, &vcon).len(), 2);
        // Every scenario with a virtio console has partitions whose summary
        // proves the output moved.
        for s in SCENARIOS.iter().filter(|s| s.virtio_console) {
            assert!(s.manifest.is_some() || s.linux.is_some(), "{}", s.name);
        }
    }

    /// linux-1g-p9 boots its 1 GiB partition on the machine `xtask run
    /// --kernel X --memory 1G` makes.
    #[test]
    fn linux_1g_machine_is_what_run_sizes() {
        let src = crate::partitions::from_kernel("k", None, "", 1, 1 << 30).unwrap();
        let size = crate::partitions::size_machine(&src.manifest, 1, 1, None).unwrap();
        assert_eq!(size.memory, 1536 << 20);
        let s = scenario("linux-1g-p9");
        assert_eq!(s.memory, LINUX_1G_MACHINE);
        assert_eq!(s.linux.unwrap().partitions, LINUX_1G);
    }

    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    /// linux-any-p9: one `mmu = "any"` partition booted with `disable_radix`
    /// (must come up hash), one without (radix); both get the XICS.
    #[test]
    fn mmu_any_partitions() {
        let s = scenario("linux-any-p9");
        let boot = s.linux.unwrap();
        let m = boot.manifest("v", "i").unwrap();
        for (p, spec) in boot.partitions.iter().zip(&m.partitions) {
            assert_eq!(spec.mmu, manifest::MmuMode::Any);
            let hash = p.name == "linux-any-hash";
            assert_eq!(p.runs_hash(), hash);
            let words: Vec<&str> = spec.cmdline.split_whitespace().collect();
            assert_eq!(words.contains(&"disable_radix"), hash, "{}", spec.cmdline);
            assert_eq!(words.contains(&"paprika.mmu=hash"), hash);
            assert_eq!(boot.irqchip_of(p), "XICS");
        }
        assert_eq!(&s.forbidden[..CLEAN_LINUX.len()], CLEAN_LINUX);
        // A hash-only partition says disable_radix too; a radix one neither.
        let h = hash_lpar("h", "1G", &[0]);
        assert!(h.runs_hash() && boot.cmdline(&h).contains(" disable_radix paprika.mmu=hash"));
        let r = lpar("r", "1G", &[0]);
        assert!(!r.runs_hash() && !boot.cmdline(&r).contains("disable_radix"));
        assert_eq!(
            scenario("linux-hash-p10-4cpu").linux.unwrap().partitions,
            LINUX_HASH_4CPU
        );
    }

    #[test]
    fn seed_figures_and_order() {
        let log = "[hostile] GUEST-SEED 1234 (replay: --append paprika.seed=1234)\n\
                   [hostile] GUEST-FIGURES calls=1000000 mismatches=0\n\
                   PAPRIKA lpar hostile: stopped (power-off)\n\
                   [neighbour] GUEST-FIGURES corrupt_words=0 worst_console_us=80\n\
                   PAPRIKA lpar neighbour: stopped (power-off)\n";
        assert_eq!(guest_seed(log), Some(1234));
        assert_eq!(guest_seed("no seed"), None);
        assert_eq!(
            guest_figures(log),
            "hostile: calls=1000000 mismatches=0; neighbour: corrupt_words=0 worst_console_us=80"
        );
        let s = SCENARIOS
            .iter()
            .find(|s| s.name == "lpar-hostile-p9")
            .unwrap();
        assert!(check_order(s, log).is_empty());
        let swapped = log.replace("lpar hostile: stopped", "lpar X").replace(
            "lpar neighbour: stopped (power-off)\n",
            "lpar neighbour: stopped (power-off)\nPAPRIKA lpar hostile: stopped\n",
        );
        assert_eq!(check_order(s, &swapped).len(), 1);
    }

    fn exited(code: i32) -> Outcome {
        Outcome {
            status: Some(ExitStatus::from_raw(code << 8)),
            wall: Duration::from_secs(1),
        }
    }

    fn scenario(name: &str) -> &'static Scenario {
        SCENARIOS.iter().find(|s| s.name == name).unwrap()
    }

    const SMT_LOG: &str = "\
[    0.034214598,5] OPAL v7.1-106-g785a5e30 starting...
[    0.001234] cpu 0 INFO PAPRIKA banner: memory=3221225472 threads=8 cores=2 chips=1 version=0.1.0\r
[    0.002000] cpu 0 INFO PAPRIKA smp: 8/8 threads online\r
[    0.002100] cpu 1 INFO PAPRIKA doorbell: ping-pong ok\r
[    0.003000] cpu 0 INFO PAPRIKA timer: dec and hdec ticks on 8/8 threads\r
[    0.003100] cpu 0 INFO PAPRIKA boot-time: ticks=1234567 us=2411\r
[    0.004000] cpu 0 INFO PAPRIKA power-off: success\r
";

    #[test]
    fn good_smt_boot_passes() {
        let why = check(scenario("boot-p9-smt4"), SMT_LOG, &exited(0));
        assert!(why.is_empty(), "{why:?}");
        assert_eq!(boot_time(SMT_LOG), Some((1234567, 2411)));
    }

    #[test]
    fn wrong_numbers_are_reported() {
        // Same log, but the 4G / 8-CPU p10 scenario: memory differs.
        let why = check(scenario("boot-p10-smt"), SMT_LOG, &exited(0));
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("memory=3221225472, expected 4294967296"));

        let log = SMT_LOG
            .replace("smp: 8/8", "smp: 7/8")
            .replace("threads=8", "threads=7");
        let why = check(scenario("boot-p9-smt4"), &log, &exited(0));
        assert_eq!(why.len(), 2, "{why:?}");
    }

    #[test]
    fn doorbell_only_needed_with_smt() {
        let log = "\
INFO PAPRIKA banner: memory=2147483648 threads=4 cores=4 chips=1
INFO PAPRIKA smp: 4/4 threads online
INFO PAPRIKA timer: dec and hdec ticks on 4/4 threads
INFO PAPRIKA power-off: success
";
        assert!(check(scenario("boot-p9-4t"), log, &exited(0)).is_empty());
        let smt = SMT_LOG.replace(DOORBELL_OK, "PAPRIKA doorbell: ping-pong timeout");
        let why = check(scenario("boot-p9-smt4"), &smt, &exited(0));
        assert!(why.iter().any(|w| w.contains("doorbell")), "{why:?}");
    }

    #[test]
    fn exit_status_timeout_and_forbidden() {
        let s = scenario("boot-p9-smt4");
        let why = check(s, SMT_LOG, &exited(1));
        assert!(why[0].contains("exit status 1"), "{why:?}");

        let timed_out = Outcome {
            status: None,
            wall: s.timeout,
        };
        assert!(check(s, SMT_LOG, &timed_out)[0].contains("timed out after 60 s"));

        let log = format!("{SMT_LOG}[    0.005] cpu 3 ERROR panicked at src/x.rs:1:1\n");
        let why = check(s, &log, &exited(0));
        assert_eq!(why.len(), 1);
        assert!(why[0].contains("line 8"), "{why:?}");
        assert!(check(s, "", &exited(0)).len() >= 5);
    }

    #[test]
    fn fault_scenario() {
        let s = scenario("fault-p9");
        let log = "\
INFO PAPRIKA banner: memory=1073741824 threads=2 cores=2 chips=1
ERROR PAPRIKA FAULT: vector 0x300 (data storage) on cpu 0 DAR=0x0 DSISR=0x40000000
ERROR GPR00 0000000000000000 GPR01 ...
ERROR backtrace:
ERROR   #0 0x20012345
ERROR PAPRIKA power-off: failure
";
        assert!(check(s, log, &exited(1)).is_empty());
        let why = check(s, log, &exited(0));
        assert_eq!(why.len(), 1, "{why:?}");
        let why = check(s, &log.replace("0x300", "0x400"), &exited(1));
        assert_eq!(why, vec!["missing `vector 0x300`"]);
        let why = check(s, "INFO PAPRIKA power-off: success\n", &exited(0));
        assert_eq!(why.len(), 7, "{why:?}");
    }

    #[test]
    fn table_is_consistent() {
        let mut names = std::collections::HashSet::new();
        for s in SCENARIOS {
            assert!(names.insert(s.name), "duplicate scenario {}", s.name);
            parse_size(s.memory).unwrap();
            let mut parts = s.smp.split(',');
            let cpus: u32 = parts.next().unwrap().parse().unwrap();
            assert_eq!(cpus, s.cpus, "{}", s.name);
            let mut cores = cpus;
            let mut threads = 1;
            for p in parts {
                let (k, v) = p.split_once('=').unwrap();
                match k {
                    "cores" => cores = v.parse().unwrap(),
                    "threads" => threads = v.parse().unwrap(),
                    _ => panic!("unexpected -smp key {k}"),
                }
            }
            assert_eq!(threads, s.threads_per_core, "{}", s.name);
            assert_eq!(cores * threads, cpus, "{}", s.name);
            // A Linux scenario's partitions make a valid manifest that fits.
            if let Some(boot) = &s.linux {
                assert!(s.manifest.is_none(), "{}", s.name);
                assert_eq!(s.threads_per_core, 1, "{}", s.name);
                let m = boot
                    .manifest("/t/vmlinux", "/t/initramfs.cpio")
                    .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                let memory = parse_size(s.memory).unwrap();
                check_scenario_manifest(&m, memory, s.cpus)
                    .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                // The veth scenario moves 64 MiB between partitions.
                if !s.name.starts_with("linux-veth") {
                    assert_eq!(s.timeout, LINUX_TIMEOUT);
                }
                assert_eq!(
                    boot.mode != LinuxMode::Test,
                    !s.input.is_empty(),
                    "{}: an echo scenario types, others do not",
                    s.name
                );
            } else {
                assert!(s.input.is_empty() || s.manifest.is_some(), "{}", s.name);
            }
            if s.manifest.is_some() {
                assert_eq!(s.failing.is_empty(), s.expect_success, "{}", s.name);
            }
            // A manifest scenario's file exists, is valid and fits its machine.
            if let Some(path) = s.manifest_path() {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", s.name, path.display()));
                let m = crate::manifest::parse(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let memory = parse_size(s.memory).unwrap();
                check_scenario_manifest(&m, memory, s.cpus)
                    .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            }
        }
    }

    const TWO_LPARS: &str = r#"
[[partition]]
name = "hcall"
memory = "64M"
vcpus = 1
cpus = [1]
kernel = "@guest/guest-hcall"
expect = "GUEST-PASS hcall"

[[partition]]
name = "quiet"
memory = "64M"
vcpus = 2
cpus = [2, 3]
kernel = "@guest/guest-idle"
"#;

    const TWO_LPARS_LOG: &str = "\
[    0.100000] cpu 0/hv INFO  PAPRIKA banner: memory=2147483648 threads=4 cores=4 chips=1
[    0.200000] cpu 0/hv INFO  PAPRIKA smp: 4/4 threads online
[    0.210000] cpu 0/hv INFO  PAPRIKA timer: dec and hdec ticks on 4/4 threads
[hcall] rt: hello
[hcall] GUEST-PASS hcall
[    0.500000] cpu 1/lpar1 INFO  PAPRIKA lpar hcall: stopped (power-off)
[    0.600000] cpu 2/lpar2 INFO  PAPRIKA lpar quiet: stopped (power-off)
[    0.700000] cpu 0/hv INFO  PAPRIKA partitions: 2 passed, 0 failed
[    0.800000] cpu 0/hv INFO  PAPRIKA power-off: success
";

    #[test]
    fn manifest_scenarios() {
        let m = crate::manifest::parse(TWO_LPARS).unwrap();
        let s = lpars("lpar-two", Machine::Powernv9, "two", "2G", "4", 4, 1);
        assert_eq!(s.manifest_path(), Some(manifest_path("two")));
        assert!(s.forbidden.contains(&GUEST_FAIL));
        assert!(check(&s, TWO_LPARS_LOG, &exited(0)).is_empty());
        assert!(check_partitions(&m, TWO_LPARS_LOG).is_empty());

        // The marker must be behind the partition's own prefix.
        let log = TWO_LPARS_LOG.replace("[hcall] GUEST-PASS", "[quiet] GUEST-PASS");
        let why = check_partitions(&m, &log);
        assert_eq!(
            why,
            vec!["partition hcall: missing `[hcall] ...GUEST-PASS hcall` on the console"]
        );
        let log = TWO_LPARS_LOG
            .replace(
                "[    0.600000] cpu 2/lpar2 INFO  PAPRIKA lpar quiet: stopped (power-off)\n",
                "",
            )
            .replace("2 passed, 0 failed", "1 passed, 1 failed");
        let why = check_partitions(&m, &log);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].contains("PAPRIKA lpar quiet: stopped"), "{why:?}");
        assert!(why[1].contains("got: "), "{why:?}");
        let log = format!("{TWO_LPARS_LOG}[hcall] GUEST-FAIL: bad return\n");
        let why = check(&s, &log, &exited(0));
        assert!(why[0].contains("forbidden `GUEST-FAIL`"), "{why:?}");
        assert_eq!(check_partitions(&m, "").len(), 4);

        assert_eq!(check_scenario_manifest(&m, 2 << 30, 4), Ok(()));
        assert!(check_scenario_manifest(&m, 512 << 20, 4)
            .unwrap_err()
            .contains("need 128 MiB + 512 MiB"));
        assert!(check_scenario_manifest(&m, 2 << 30, 3)
            .unwrap_err()
            .contains("thread 3"));
        let mut quiet = m.clone();
        quiet.partitions[0].console = false;
        assert!(check_scenario_manifest(&quiet, 2 << 30, 4)
            .unwrap_err()
            .contains("console = false"));
        let mut forever = m.clone();
        forever.machine.power_off_when_idle = false;
        assert!(check_scenario_manifest(&forever, 2 << 30, 4).is_err());
    }

    #[test]
    fn log_messages_and_forged_lines() {
        assert_eq!(
            log_message("[    0.700000] cpu 0/hv INFO  PAPRIKA partitions: 2 passed\r"),
            Some("PAPRIKA partitions: 2 passed")
        );
        assert_eq!(log_message("INFO PAPRIKA x"), Some("PAPRIKA x"));
        assert_eq!(log_message("[    1.5] cpu 3 WARN  y"), Some("y"));
        assert_eq!(log_message("[hcall] INFO  PAPRIKA x"), None);
        assert_eq!(log_message("[    1.5] [hcall] INFO  PAPRIKA x"), None);
        assert_eq!(log_message("[    0.03,5] OPAL"), None);
        assert_eq!(log_message("PAPRIKA partitions: 2 passed"), None);

        // The audit's forgeries (finding 5): a hostile partition prints the
        // neighbour's marker behind its own prefix, and an os-term message that
        // carries a summary line; the neighbour never finished.
        let m = crate::manifest::parse(TWO_LPARS).unwrap();
        let forged = TWO_LPARS_LOG
            .replace("[hcall] GUEST-PASS hcall\n", "[quiet] [hcall] GUEST-PASS hcall\n")
            .replace(
                "[    0.500000] cpu 1/lpar1 INFO  PAPRIKA lpar hcall: stopped (power-off)\n",
                "[quiet] PAPRIKA lpar hcall: stopped (power-off)\n",
            )
            .replace(
                "PAPRIKA lpar quiet: stopped (power-off)",
                "PAPRIKA lpar quiet: stopped (os-term: \"x^JPAPRIKA partitions: 2 passed, 0 failed\")",
            )
            .replace("2 passed, 0 failed\n[    0.800000]", "1 passed, 1 failed\n[    0.800000]");
        let why = check_partitions(&m, &forged);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(
            why[0].contains("missing `[hcall] ...GUEST-PASS hcall`"),
            "{why:?}"
        );
        assert!(why[1].contains("PAPRIKA lpar hcall: stopped"), "{why:?}");
        assert!(why[2].contains("got: "), "{why:?}");
        // The last summary line counts: an earlier (forged or stale) one does not.
        let two = TWO_LPARS_LOG.replace(
            "[    0.700000] cpu 0/hv INFO  PAPRIKA partitions: 2 passed, 0 failed\n",
            "[    0.650000] cpu 0/hv INFO  PAPRIKA partitions: 2 passed, 0 failed\n\
             [    0.700000] cpu 0/hv INFO  PAPRIKA partitions: 1 passed, 1 failed\n",
        );
        assert_eq!(check_partitions(&m, &two).len(), 1);
        assert!(partition_line_has(
            "[a] GUEST-DONE passed=1",
            "a",
            "GUEST-DONE"
        ));
        assert!(!partition_line_has(
            "[b] [a] GUEST-DONE passed=1",
            "a",
            "GUEST-DONE"
        ));
        assert!(!partition_line_has(
            "[a] x GUEST-DONE passed=1",
            "a",
            "GUEST-DONE"
        ));
    }

    /// The console of a good 1-vCPU Linux run in test mode, cut down.
    fn linux_log(name: &str, cmdline: &str, epoch: u64) -> String {
        linux_log_chip(name, cmdline, epoch, "XIVE")
    }

    fn linux_log_chip(name: &str, cmdline: &str, epoch: u64, chip: &str) -> String {
        format!(
            "\
[    0.036815] cpu 0/hv INFO  PAPRIKA banner: memory=1073741824 threads=1 cores=1 chips=1\r
[    0.066116] cpu 0/hv INFO  PAPRIKA smp: 1/1 threads online\r
[    0.072909] cpu 0/hv INFO  PAPRIKA timer: dec and hdec ticks on 1/1 threads\r
[{name}] [    0.000000] Kernel command line: {cmdline}\r
[{name}] PAPRIKA-LINUX userspace reached name={name}\r
[{name}] --- /proc/cpuinfo\r
[{name}] processor\t: 0\r
[{name}] cpu\t\t: POWER9 (raw), altivec supported\r
[{name}] \r
[{name}] MMU\t\t: Radix\r
[{name}] --- /proc/interrupts\r
[{name}]            CPU0       \r
[{name}]  16:          0      {chip}   2 Edge      IPI\r
[{name}] PAPRIKA-LINUX interrupt-controller: {chip} name={name}\r
[{name}] --- date\r
[{name}] PAPRIKA-LINUX date epoch={epoch} name={name}\r
[{name}] PAPRIKA-LINUX check radix-mmu: ok\r
[{name}] PAPRIKA-LINUX test: passed name={name}\r
[    4.080802] cpu 0/lpar1 INFO  PAPRIKA lpar {name}: stopped (power-off)\r
[    4.081143] cpu 0/lpar1 INFO  PAPRIKA partitions: 1 passed, 0 failed\r
[    4.081243] cpu 0/lpar1 INFO  PAPRIKA power-off: success\r
"
        )
    }

    const NOW: HostClock = HostClock {
        start: 1_795_881_000,
        end: 1_795_881_010,
    };

    #[test]
    fn linux_scenario_passes_and_notes() {
        let s = scenario("linux-p9-1cpu");
        // The scenario also types into a shell (TestEcho, below); the test-mode
        // checks alone first.
        let typed = s.linux.unwrap();
        assert_eq!(typed.mode, LinuxMode::TestEcho);
        assert_eq!(
            typed.cmdline(&typed.partitions[0]),
            "console=hvc0 paprika.name=linux paprika.test=1 paprika.cpus=1 paprika.echo=1"
        );
        let boot = LinuxBoot {
            mode: LinuxMode::Test,
            vty_irq: false,
            ..typed
        };
        let cmdline = boot.cmdline(&boot.partitions[0]);
        assert_eq!(
            cmdline,
            "console=hvc0 paprika.name=linux paprika.test=1 paprika.cpus=1"
        );
        let log = linux_log("linux", &cmdline, NOW.start + 3);
        assert!(check(s, &log, &exited(0)).is_empty());
        let m = boot.manifest("/k", "/i").unwrap();
        assert!(check_partitions(&m, &log).is_empty());
        let (why, note) = check_linux(&boot, &log, NOW);
        assert!(why.is_empty(), "{why:?}");
        assert_eq!(note, "XIVE, clock +0 s");

        // The guest clock: 120 s past the run is fine, 121 s is not.
        let (why, note) = check_linux(&boot, &linux_log("linux", &cmdline, NOW.end + 120), NOW);
        assert!(why.is_empty(), "{why:?}");
        assert_eq!(note, "XIVE, clock +120 s");
        let (why, _) = check_linux(&boot, &linux_log("linux", &cmdline, NOW.start - 121), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("-121 s off"), "{why:?}");

        // xive=off reaches the command line.
        let x = scenario("linux-xive-off-p9").linux.unwrap();
        let xcmd = x.cmdline(&x.partitions[0]);
        assert!(xcmd.ends_with(" xive=off"));

        // The interrupt controller: XIVE unless xive=off, which needs XICS.
        assert_eq!(boot.irqchip(), "XIVE");
        assert_eq!(x.irqchip(), "XICS");
        let xics = linux_log_chip("linux", &cmdline, NOW.start, "XICS");
        let (why, _) = check_linux(&boot, &xics, NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("names XICS, expected XIVE"), "{why:?}");
        // It types too, and the vty interrupt must fire on XICS.
        assert_eq!(x.mode, LinuxMode::TestEcho);
        assert!(x.vty_irq);
        let xt = LinuxBoot {
            mode: LinuxMode::Test,
            vty_irq: false,
            ..x
        };
        let xtcmd = xt.cmdline(&xt.partitions[0]);
        assert!(xtcmd.ends_with(" xive=off"));
        let (why, note) = check_linux(
            &xt,
            &linux_log_chip("linux", &xtcmd, NOW.start, "XICS"),
            NOW,
        );
        assert!(why.is_empty(), "{why:?}");
        assert_eq!(note, "XICS, clock +0 s");
        let typed = linux_log_chip("linux", &xcmd, NOW.start, "XICS").replace(
            "[linux] PAPRIKA-LINUX test: passed name=linux\r\n",
            "[linux] PAPRIKA-LINUX test: passed name=linux\r\n\
             [linux] PAPRIKA-LINUX echo: shell on hvc0 name=linux\r\n\
             [linux] typed-42\r\n\
             [linux]  17:          3      XICS 4096 Edge      hvc_console\r\n",
        );
        let (why, _) = check_linux(&x, &typed, NOW);
        assert!(why.is_empty(), "{why:?}");
        let (why, _) = check_linux(&x, &typed.replace("3      XICS", "0      XICS"), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("never fired"), "{why:?}");
        let (why, _) = check_linux(&x, &typed.replace("XICS 4096", "XIVE-IRQ 4096"), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("not on XICS"), "{why:?}");
    }

    #[test]
    fn linux_scenario_failures() {
        let s = scenario("linux-p9-1cpu");
        let boot = LinuxBoot {
            mode: LinuxMode::Test,
            vty_irq: false,
            ..s.linux.unwrap()
        };
        let cmdline = boot.cmdline(&boot.partitions[0]);
        let good = linux_log("linux", &cmdline, NOW.start);
        let why_of = |log: &str| check_linux(&boot, log, NOW).0;

        let log = good.replace("MMU\t\t: Radix", "MMU\t\t: Hash");
        assert_eq!(
            why_of(&log),
            ["partition linux: /proc/cpuinfo has no `MMU\t\t: Radix` line"]
        );
        let log = good.replace(
            "processor\t: 0\r\n",
            "processor\t: 0\r\n[linux] processor\t: 1\r\n",
        );
        assert!(why_of(&log)[0].contains("lists 2 processor(s), the partition has 1"));
        let log = good.replace("CPU0", "");
        assert!(why_of(&log)[0].contains("no /proc/interrupts"));
        let log = good.replace("test: passed", "test: FAILED");
        assert!(why_of(&log)[0].contains("missing `[linux] PAPRIKA-LINUX test: passed"));
        assert!(check(s, &log, &exited(0))[0].contains("forbidden `PAPRIKA-LINUX test: FAILED`"));
        let log = good.replace("radix-mmu: ok", "radix-mmu: FAILED");
        assert!(why_of(&log)[0].starts_with("failed /init check on console line"));
        let log = good.replace("stopped (power-off)", "stopped (fault)");
        assert_eq!(
            why_of(&log),
            ["missing `PAPRIKA lpar linux: stopped (power-off)`"]
        );
        let log = good.replace("paprika.cpus=1", "paprika.cpus=2");
        assert!(why_of(&log)[0].contains("Kernel command line: console=hvc0"));
        let log = good.replace("date epoch=", "date epoch=x");
        assert!(why_of(&log)[0].contains("missing `[linux] PAPRIKA-LINUX date epoch=<seconds>`"));
        let log = good.replace("1 passed, 0 failed", "0 passed, 1 failed");
        assert_eq!(
            why_of(&log),
            ["expected `PAPRIKA partitions: 1 passed, 0 failed`, got: \
              [    4.081143] cpu 0/lpar1 INFO  PAPRIKA partitions: 0 passed, 1 failed"]
        );
        // Without userspace, only that is reported for the partition.
        let log = good.replace("userspace reached", "userspace not reached");
        assert_eq!(why_of(&log).len(), 1, "{:?}", why_of(&log));
        // A kernel oops fails the scenario.
        let log = format!("{good}[linux] [    9.1] Oops: Kernel access of bad area\r\n");
        assert!(check(s, &log, &exited(0))[0].contains("forbidden `Oops`"));
    }

    #[test]
    fn linux_two_partitions_keep_their_consoles() {
        let s = scenario("linux-two-lpars-p9");
        let boot = s.linux.unwrap();
        assert_eq!(boot.partitions.len(), 2);
        let [a, b] = [&boot.partitions[0], &boot.partitions[1]];
        let log_a = linux_log(a.name, &boot.cmdline(a), NOW.start);
        let log_b = linux_log(b.name, &boot.cmdline(b), NOW.start);
        // Interleave the two consoles line by line, as the hypervisor may.
        let mut log = String::new();
        for (x, y) in log_a.lines().zip(log_b.lines()) {
            log.push_str(x);
            log.push('\n');
            if y != x {
                log.push_str(y);
                log.push('\n');
            }
        }
        // Its machine: 1280M, 3 threads.
        let log = log
            .replace(
                "PAPRIKA partitions: 1 passed, 0 failed",
                "PAPRIKA partitions: 2 passed, 0 failed",
            )
            .replace("memory=1073741824 threads=1", "memory=1342177280 threads=3")
            .replace(" 1/1 threads", " 3/3 threads");
        let (why, note) = check_linux(&boot, &log, NOW);
        assert!(why.is_empty(), "{why:?}");
        assert_eq!(note, "linux-a XIVE, clock +0 s; linux-b XIVE, clock +0 s");
        let m = boot.manifest("/k", "/i").unwrap();
        assert!(check_partitions(&m, &log).is_empty());
        assert!(check(s, &log, &exited(0)).is_empty());

        // b's marker behind a's prefix, and a line with no prefix at all.
        let mixed = log.replacen(
            "[linux-b] PAPRIKA-LINUX date epoch",
            "[linux-a] PAPRIKA-LINUX date epoch",
            1,
        );
        let (why, _) = check_linux(&boot, &mixed, NOW);
        assert!(
            why.iter()
                .any(|w| w.contains("partition linux-a shows linux-b's line")),
            "{why:?}"
        );
        // a's line split mid-tag by the console (seen under host load): not
        // a mix-up; b's full tag at the end of a's line still is.
        let at = log.find("[linux-a] PAPRIKA-LINUX date epoch=").unwrap();
        let tag = at + log[at..].find(" name=linux-a").unwrap();
        let end = tag + " name=linux-a".len();
        let split = format!("{} name=linux\r\n[linux-a] -a{}", &log[..tag], &log[end..]);
        let (why, _) = check_linux(&boot, &split, NOW);
        assert!(why.is_empty(), "{why:?}");
        let (why, _) = check_linux(
            &boot,
            &format!("{} name=linux-b{}", &log[..tag], &log[end..]),
            NOW,
        );
        assert!(
            why.iter()
                .any(|w| w.contains("partition linux-a shows linux-b's line")),
            "{why:?}"
        );
        let bare = log.replacen("[linux-a] PAPRIKA-LINUX check", "PAPRIKA-LINUX check", 1);
        let (why, _) = check_linux(&boot, &bare, NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("not behind a partition's"), "{why:?}");
    }

    #[test]
    fn linux_echo_scenario() {
        let s = scenario("linux-echo-p9");
        let boot = s.linux.unwrap();
        assert_eq!(boot.mode, LinuxMode::Echo);
        let cmdline = boot.cmdline(&boot.partitions[0]);
        assert_eq!(cmdline, "console=hvc0 paprika.name=linux paprika.echo=1");
        assert_eq!(s.input[0].after, linux::ECHO_MARKER);
        assert!(s.input.last().unwrap().send.ends_with("poweroff -f\n"));
        let log = linux_log("linux", &cmdline, NOW.start)
            .replace("[linux] PAPRIKA-LINUX check radix-mmu: ok\r\n", "")
            .replace(
                "[linux] PAPRIKA-LINUX test: passed name=linux",
                "[linux] PAPRIKA-LINUX echo: shell on hvc0 name=linux\r\n\
                 [linux] / # echo typed-$((6*7)); grep -w hvc_console /proc/interrupts\r\n\
                 [linux] typed-42\r\n\
                 [linux]  17:          3  XIVE-IRQ 4096 Edge      hvc_console\r",
            );
        // Several CPUs' counts add up; stray bytes before the irq number are skipped.
        let smp = log.replace(
            "[linux]  17:          3  XIVE-IRQ",
            "[linux] p 17:   0   2   0   0  XIVE-IRQ",
        );
        let (why, _) = check_linux(&boot, &smp, NOW);
        assert!(why.is_empty(), "{why:?}");
        let (why, _) = check_linux(&boot, &log, NOW);
        assert!(why.is_empty(), "{why:?}");
        let (why, _) = check_linux(&boot, &log.replace("typed-42", "typed-41"), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("did not print `typed-42`"), "{why:?}");
        // The vty interrupt: it must have fired, on XIVE.
        let never = log.replace("          3  XIVE-IRQ", "          0  XIVE-IRQ");
        let (why, _) = check_linux(&boot, &never, NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("never fired"), "{why:?}");
        // TestEcho (linux-p9-1cpu): the test checks and the echo both count.
        let te = scenario("linux-p9-1cpu").linux.unwrap();
        let te_cmd = te.cmdline(&te.partitions[0]);
        let both = linux_log("linux", &te_cmd, NOW.start).replace(
            "[linux] PAPRIKA-LINUX test: passed name=linux\r\n",
            "[linux] PAPRIKA-LINUX test: passed name=linux\r\n\
             [linux] PAPRIKA-LINUX echo: shell on hvc0 name=linux\r\n\
             [linux] typed-42\r\n\
             [linux]  17:          3  XIVE-IRQ 4096 Edge      hvc_console\r\n",
        );
        let (why, _) = check_linux(&te, &both, NOW);
        assert!(why.is_empty(), "{why:?}");
        let (why, _) = check_linux(&te, &both.replace("test: passed", "test: FAILED"), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        let (why, _) = check_linux(&te, &both.replace("typed-42", "typed-0"), NOW);
        assert_eq!(why.len(), 1, "{why:?}");
        let none = log.replace("[linux]  17:", "[linux] x");
        let (why, _) = check_linux(&boot, &none.replace("hvc_console\r", "\r"), NOW);
        assert!(
            why.iter().any(|w| w.contains("no `hvc_console` line")),
            "{why:?}"
        );
    }
}
