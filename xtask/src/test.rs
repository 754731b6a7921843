//! `cargo xtask test`: every check, in order, stopping at the first failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use paprika::partition::manifest::{self, Manifest};

use crate::build::{self, BuildOpts, Profile};
use crate::cli::TestArgs;
use crate::error::{failed, usage, Context, Result};
use crate::linux::{self, Linux};
use crate::progress::{println, Progress};
use crate::qemu::{self, Console, Outcome, QemuConfig};
use crate::scenarios::{self, HostClock, Scenario, SCENARIOS};
use crate::{guests, partitions, repo_root, setup};

/// The long description of `cargo xtask test --help` (the options are listed by
/// clap from `cli::TestArgs`).
pub const ABOUT: &str = "\
Runs, in order, stopping at the first failure, then prints a summary table:
  fmt             cargo fmt --all -- --check
  clippy-host     cargo clippy --workspace --exclude paprika-boot --all-targets -- -D warnings
  clippy-power    cargo clippy of paprika-boot (and paprika) for POWER, and of
                  each test guest (tests/guests/guest-*), the big-endian
                  builds too, and of the mini VMM (tests/guests/vmm)
                  -- -D warnings
  unit-host       cargo test --workspace --exclude paprika-boot
                  (host steps also exclude the crates under tests/guests/
                  but the mini VMM, whose portable half is host-tested)
  build-*         POWER builds: debug, release, and debug with each scenario's
                  features (e.g. fault-test, into target/power-fault)
  build-guests    the test guests (cargo xtask build --guests), into
                  target/guests/, and guest-conformance-be and guest-nested-be
                  (big-endian), and the mini VMM (target/vmm/paprika-vmm,
                  which linux-fetch packs into the initramfs); skipped
                  while tests/guests/ does not exist
  linux-fetch     cargo xtask linux fetch: Debian's kernel and busybox, cached
                  in target/linux/ (the first run downloads ~40 MB with apt).
                  When it cannot (no network, not root, apt failing), it and the
                  linux-* scenarios are skipped, the reason in the summary
  scenario-*      QEMU boots, each a fresh QEMU with a hard timeout; console in
                  target/scenarios/<name>.log (QEMU's own stderr beside it in
                  <name>.stderr.log), checked for the PAPRIKA marker lines,
                  forbidden strings and the exit status. Scenarios with a
                  manifest (tests/manifests/<file>.toml) boot its partitions from
                  a bundle (target/bundle/scenario-<name>.cpio) and check each
                  partition's `expect` marker right after its `[<name>] `
                  prefix at the start of a line, `PAPRIKA lpar <name>:
                  stopped` as a log line's message, the last `PAPRIKA
                  partitions: <n> passed, 0 failed` (or as many failed as the
                  scenario wants: lpar-console, lpar-hooks), and no
                  GUEST-FAIL; lpar-dump types Ctrl-A d. Linux scenarios boot
                  the fetched kernel in partitions (manifest written to
                  target/scenarios/<name>.toml) and check what its /init
                  reports: userspace, radix MMU, every vCPU online,
                  /proc/interrupts, the guest's date against the host's, the
                  tests passed, power-off; linux-echo types a command into the
                  console's shell and reads its output, linux-console-switch
                  does so in two partitions with Ctrl-A c between them,
                  linux-console-quit ends with Ctrl-A x, linux-kvm-l2 runs
                  a test guest as an L2 with the mini VMM (docs/linux.md)

Host steps use target/host, POWER builds target/power (Debian's toolchain).";

/// The scenario table that ends `cargo xtask test --help`.
pub fn scenario_table() -> String {
    let mut table = String::from("Scenarios:\n");
    for s in SCENARIOS {
        let features = if s.features.is_empty() {
            String::new()
        } else {
            format!(" +{}", s.features.join(","))
        };
        let exit = if s.expect_success {
            "exit 0"
        } else {
            "exit != 0"
        };
        let manifest = s
            .manifest
            .map(|m| format!(" tests/manifests/{m}.toml"))
            .unwrap_or_default();
        let linux = s.linux.map(|l| describe_linux(&l)).unwrap_or_default();
        table.push_str(&format!(
            "  {:<20}  {:<9}  -m {:<5}  -smp {:<20} {exit}{features}{manifest}{linux}\n",
            s.name,
            s.machine.name(),
            s.memory,
            s.smp
        ));
    }
    table
}

/// ` linux: <partition>@<threads> ... [echo] [+append]` for the scenario table.
fn describe_linux(l: &scenarios::LinuxBoot) -> String {
    let mut parts: Vec<String> = l
        .partitions
        .iter()
        .map(|p| {
            let cpus: Vec<String> = p.cpus.iter().map(u32::to_string).collect();
            format!("{}@{}", p.name, cpus.join(","))
        })
        .collect();
    if l.mode != scenarios::LinuxMode::Test {
        parts.push("(types into a shell)".into());
    }
    if !l.append.is_empty() {
        parts.push(format!("+{}", l.append));
    }
    format!(" linux: {}", parts.join(" "))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Passed,
    Failed,
    Skipped(String),
}

#[derive(Debug)]
struct Row {
    name: String,
    status: Status,
    time: Duration,
    note: String,
}

enum Step {
    Fmt,
    ClippyHost,
    ClippyPower,
    UnitHost,
    Build(BuildOpts),
    BuildGuests,
    LinuxFetch,
    Scenarios,
}

impl Step {
    fn name(&self) -> String {
        match self {
            Step::Fmt => "fmt".into(),
            Step::ClippyHost => "clippy-host".into(),
            Step::ClippyPower => "clippy-power".into(),
            Step::UnitHost => "unit-host".into(),
            Step::Build(o) => format!("build-{}", o.describe().replace(' ', "")),
            Step::BuildGuests => "build-guests".into(),
            Step::LinuxFetch => "linux-fetch".into(),
            Step::Scenarios => "scenarios".into(),
        }
    }

    fn is_host(&self) -> bool {
        matches!(self, Step::Fmt | Step::ClippyHost | Step::UnitHost)
    }
}

struct Options {
    only: Option<String>,
    no_qemu: bool,
    host_only: bool,
    qemu_only: bool,
    no_build: bool,
    jobs: usize,
    timeout: Option<Duration>,
    append: Option<String>,
}

pub fn main(args: TestArgs) -> Result<i32> {
    let TestArgs {
        only,
        no_qemu,
        host_only,
        qemu_only,
        no_build,
        jobs,
        timeout,
        append,
    } = args;
    let jobs = jobs.map(|j| usize::try_from(j).unwrap_or(usize::MAX));
    if host_only && qemu_only {
        return Err(usage!("--host-only and --qemu-only exclude each other"));
    }
    if jobs == Some(0) || timeout == Some(0) {
        return Err(usage!("--jobs and --timeout must be at least 1"));
    }
    let opts = Options {
        only,
        no_qemu,
        host_only,
        qemu_only,
        no_build,
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        timeout: timeout.map(Duration::from_secs),
        append,
    };

    let selected: Vec<Scenario> = SCENARIOS
        .iter()
        .filter(|s| opts.only.as_deref().is_none_or(|o| s.name.contains(o)))
        .cloned()
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        return Err(usage!(
            "no scenario matches --only {}; scenarios: {}",
            opts.only.as_deref().unwrap_or(""),
            names.join(", ")
        ));
    }

    setup::ensure_tools()?;

    let mut steps = vec![
        Step::Fmt,
        Step::ClippyHost,
        Step::ClippyPower,
        Step::UnitHost,
    ];
    steps.push(Step::Build(BuildOpts::new(Profile::Debug, &[])));
    steps.push(Step::Build(BuildOpts::new(Profile::Release, &[])));
    let mut feature_sets: Vec<&[&str]> = Vec::new();
    for s in SCENARIOS {
        if !s.features.is_empty() && !feature_sets.contains(&s.features) {
            feature_sets.push(s.features);
        }
    }
    for f in feature_sets {
        steps.push(Step::Build(BuildOpts::new(Profile::Debug, f)));
    }
    steps.push(Step::BuildGuests);
    steps.push(Step::LinuxFetch);
    steps.push(Step::Scenarios);

    let mut rows = Vec::new();
    let mut failed_at: Option<String> = None;
    // What linux-fetch left: the files, or why the Linux scenarios are skipped.
    let mut linux_files: std::result::Result<Linux, String> =
        Err("linux-fetch did not run".to_string());
    for step in &steps {
        let skip = if step.is_host() && opts.qemu_only {
            Some("--qemu-only")
        } else if !step.is_host() && opts.host_only {
            Some("--host-only")
        } else if matches!(step, Step::Scenarios | Step::LinuxFetch) && opts.no_qemu {
            Some("--no-qemu")
        } else if matches!(step, Step::LinuxFetch) && !selected.iter().any(|s| s.linux.is_some()) {
            Some("no Linux scenario selected")
        } else if matches!(step, Step::Build(_) | Step::BuildGuests) && opts.no_build {
            Some("--no-build")
        } else if matches!(step, Step::ClippyPower | Step::Build(_) | Step::BuildGuests)
            && opts.qemu_only
            && !needed_by_scenarios(step, &selected)
        {
            Some("--qemu-only")
        } else if matches!(step, Step::BuildGuests) && !guests::exist() {
            Some(guests::NO_GUESTS)
        } else {
            None
        };
        let scenario_names = || selected.iter().map(|s| format!("scenario-{}", s.name));
        if let Some(reason) = skip
            .map(|r| format!("skipped ({r})"))
            .or_else(|| failed_at.as_ref().map(|f| format!("not run ({f} failed)")))
        {
            let names: Vec<String> = match step {
                Step::Scenarios => scenario_names().collect(),
                _ => vec![step.name()],
            };
            rows.extend(names.into_iter().map(|name| Row {
                name,
                status: Status::Skipped(reason.clone()),
                time: Duration::ZERO,
                note: String::new(),
            }));
            continue;
        }

        println!("\n==> {}", step.name());
        let start = Instant::now();
        if let Step::LinuxFetch = step {
            // Not a failure when it cannot fetch: the Linux scenarios are skipped.
            let (status, note) = match linux::fetch(false) {
                Ok(l) => {
                    let note = format!("Linux {}", l.release);
                    linux_files = Ok(l);
                    (Status::Passed, note)
                }
                Err(e) => {
                    println!("xtask: linux-fetch: {e}");
                    println!("xtask: the Linux scenarios will be skipped");
                    let first = e.to_string().lines().next().unwrap_or("").to_string();
                    let why = format!(
                        "cannot fetch: {}",
                        first.chars().take(160).collect::<String>()
                    );
                    linux_files = Err(format!("linux-fetch {why}"));
                    (Status::Skipped(why), String::new())
                }
            };
            rows.push(Row {
                name: step.name(),
                status,
                time: start.elapsed(),
                note,
            });
            continue;
        }
        if let Step::Scenarios = step {
            match run_scenarios(&selected, &opts, linux_files.as_ref()) {
                Ok(results) => {
                    if results.iter().any(|r| r.status == Status::Failed) {
                        failed_at = Some("a scenario".into());
                    }
                    rows.extend(results);
                }
                Err(e) => {
                    eprintln!("xtask: scenarios failed: {e}");
                    failed_at = Some(step.name());
                    rows.push(Row {
                        name: step.name(),
                        status: Status::Failed,
                        time: start.elapsed(),
                        note: first_line(&e.to_string()),
                    });
                }
            }
            continue;
        }
        let result = run_step(step);
        let (status, note) = match result {
            Ok(()) => (Status::Passed, String::new()),
            Err(e) => {
                eprintln!("xtask: {} failed: {e}", step.name());
                failed_at = Some(step.name());
                (Status::Failed, first_line(&e.to_string()))
            }
        };
        rows.push(Row {
            name: step.name(),
            status,
            time: start.elapsed(),
            note,
        });
    }

    print_summary(&rows);
    Ok(if rows.iter().any(|r| r.status == Status::Failed) {
        1
    } else {
        0
    })
}

fn needed_by_scenarios(step: &Step, selected: &[Scenario]) -> bool {
    match step {
        Step::Build(o) => {
            o.profile == Profile::Debug
                && selected
                    .iter()
                    .any(|s| BuildOpts::new(Profile::Debug, s.features) == *o)
        }
        Step::BuildGuests => selected.iter().any(|s| {
            s.manifest.is_some() || s.linux.is_some_and(|l| l.append.contains(linux::L2_ARG))
        }),
        _ => false,
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(100).collect()
}

/// `--exclude` arguments for host builds of the workspace: the boot image and
/// any crate under tests/guests/ in the workspace (they build for POWER only),
/// except the VMM, whose portable half (device tree, ELF loader, RTAS buffer,
/// ioctl numbers) has host unit tests.
fn host_excludes() -> Result<Vec<String>> {
    let mut packages = vec![build::BOOT_PACKAGE.to_string()];
    packages.extend(
        guests::workspace_member_packages()?
            .into_iter()
            .filter(|p| p != guests::VMM_PACKAGE),
    );
    Ok(packages
        .into_iter()
        .flat_map(|p| ["--exclude".to_string(), p])
        .collect())
}

fn run_step(step: &Step) -> Result<()> {
    match step {
        Step::Fmt => build::host_cargo()
            .args(["fmt", "--all", "--", "--check"])
            .run(),
        Step::ClippyHost => build::host_cargo()
            .args(["clippy", "--workspace"])
            .args(host_excludes()?)
            .args(["--all-targets", "--", "-D", "warnings"])
            .run(),
        Step::ClippyPower => {
            build::power_cargo("clippy", &BuildOpts::new(Profile::Debug, &[]))
                .args(["--", "-D", "warnings"])
                .run()?;
            let guests = guests::discover_guests()?.unwrap_or_default();
            for (g, endian) in guests::builds(&guests) {
                guests::cargo("clippy", g, Profile::Debug, endian)
                    .args(["--", "-D", "warnings"])
                    .run()?;
            }
            if guests::vmm_exists() {
                guests::vmm_cargo("clippy", Profile::Debug)
                    .args(["--", "-D", "warnings"])
                    .run()?;
            }
            Ok(())
        }
        Step::UnitHost => build::host_cargo()
            .args(["test", "--workspace"])
            .args(host_excludes()?)
            .run(),
        Step::Build(opts) => build::build(opts).map(|_| ()),
        Step::BuildGuests => match guests::build_all(Profile::Debug)? {
            Some(elfs) if elfs.is_empty() => {
                println!("no guest crates (guest-*) in tests/guests/ yet");
                Ok(())
            }
            _ => Ok(()),
        },
        Step::LinuxFetch | Step::Scenarios => unreachable!("run separately"),
    }
}

fn scenario_log(name: &str) -> PathBuf {
    repo_root()
        .join("target")
        .join("scenarios")
        .join(format!("{name}.log"))
}

/// Runs the scenarios on `opts.jobs` threads; one row each, in table order.
/// `linux` is what linux-fetch left, or why the Linux scenarios are skipped.
fn run_scenarios(
    selected: &[Scenario],
    opts: &Options,
    linux: std::result::Result<&Linux, &String>,
) -> Result<Vec<Row>> {
    for s in selected {
        let elf = BuildOpts::new(Profile::Debug, s.features).elf();
        if !elf.is_file() {
            return Err(failed!(
                "scenario {} needs {}, which has not been built",
                s.name,
                elf.display()
            ));
        }
    }
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new((0..selected.len()).map(|_| None).collect());
    // Linux scenarios without Linux are skipped; the rest run.
    let mut queue = Vec::new();
    for (i, s) in selected.iter().enumerate() {
        match (s.linux.is_some(), linux) {
            (true, Err(why)) => {
                rows.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(Row {
                    name: format!("scenario-{}", s.name),
                    status: Status::Skipped(why.clone()),
                    time: Duration::ZERO,
                    note: String::new(),
                });
            }
            _ => queue.push(i),
        }
    }
    let linux = linux.ok();
    let next = AtomicUsize::new(0);
    let print = Mutex::new(());
    let jobs = opts.jobs.min(queue.len()).max(1);
    println!("running {} scenario(s), {jobs} at a time", queue.len());
    if queue.len() < selected.len() {
        println!(
            "skipping {} Linux scenario(s): linux-fetch could not fetch Linux",
            selected.len() - queue.len()
        );
    }
    let progress = Progress::new("scenarios", queue.len());
    // The scenarios running now, for the progress display.
    let running: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    let show = |change: &dyn Fn(&mut Vec<&'static str>)| {
        let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut r);
        progress.set_message(r.join(" "));
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = queue.get(n) else { break };
                let name = selected[i].name;
                show(&|r| r.push(name));
                let row = run_scenario(&selected[i], opts, linux, &print);
                show(&|r| r.retain(|&x| x != name));
                progress.inc();
                rows.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(row);
            });
        }
    });
    drop(progress);
    Ok(rows
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

/// Seconds since 1970 on the host's clock.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether QEMU was killed by a signal (its own abort) before the hypervisor
/// printed its first `PAPRIKA` line: a crash in QEMU or skiboot alone.
fn died_before_paprika(outcome: &Outcome, log_path: &std::path::Path) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let signalled = outcome.status.is_some_and(|st| st.signal().is_some());
    signalled && !console_reached_paprika(&std::fs::read(log_path).unwrap_or_default())
}

/// Whether a console log holds anything the hypervisor printed.
fn console_reached_paprika(log: &[u8]) -> bool {
    log.windows(b"PAPRIKA".len()).any(|w| w == b"PAPRIKA")
}

fn run_scenario(s: &Scenario, opts: &Options, linux: Option<&Linux>, print: &Mutex<()>) -> Row {
    let mut s = s.clone();
    if let Some(t) = opts.timeout {
        s.timeout = t;
    }
    let name = format!("scenario-{}", s.name);
    let log_path = scenario_log(s.name);
    let vcon_path = log_path.with_extension("vcon.log");
    let fail = |why: Vec<String>, log: &str, time: Duration| {
        let _guard = print.lock().unwrap_or_else(|e| e.into_inner());
        println!("\nFAILED: scenario {} ({})", s.name, log_path.display());
        for w in &why {
            println!("  - {w}");
        }
        if let Some(seed) = scenarios::guest_seed(log) {
            println!(
                "  replay this run: cargo xtask test --only {} --append paprika.seed={seed}",
                s.name
            );
        }
        println!("--- last 60 lines of the console ---");
        println!("{}", qemu::tail(log, 60).trim_end_matches('\n'));
        let stderr = std::fs::read(qemu::stderr_log(&log_path)).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        if !stderr.trim().is_empty() {
            println!("--- QEMU's stderr (last 20 lines) ---");
            println!("{}", qemu::tail(&stderr, 20).trim_end_matches('\n'));
        }
        println!("--- end of {} ---", s.name);
        Row {
            name: name.clone(),
            status: Status::Failed,
            time,
            note: why.first().cloned().unwrap_or_default(),
        }
    };

    // The Debian root needs its packages: as with Linux itself, not being able
    // to download them (no network, no apt) skips the scenario.
    if s.linux.is_some_and(|b| b.debian_root) && !crate::debian::packages_cached() {
        if let Err(e) = crate::debian::build(false) {
            println!("xtask: {}: no Debian root ({e}); skipped", s.name);
            return Row {
                name,
                status: Status::Skipped(format!("no Debian root packages: {e}")),
                time: Duration::ZERO,
                note: String::new(),
            };
        }
    }
    let memory_bytes = match qemu::parse_size(s.memory) {
        Ok(b) => b,
        Err(e) => return fail(vec![e.to_string()], "", Duration::ZERO),
    };
    let manifest_path = match (&s.linux, linux) {
        (Some(boot), Some(l)) => match write_linux_manifest(&s, boot, l) {
            Ok(path) => Some(path),
            Err(e) => return fail(vec![e], "", Duration::ZERO),
        },
        (Some(_), None) => {
            return fail(
                vec!["a Linux scenario without Linux".into()],
                "",
                Duration::ZERO,
            )
        }
        (None, _) => s.manifest_path(),
    };
    let append = if s.linux.is_none() {
        opts.append.as_deref()
    } else {
        None
    };
    let lpars = match prepare_partitions(&s, manifest_path, memory_bytes, append, print) {
        Ok(lpars) => lpars,
        Err(e) => return fail(vec![e], "", Duration::ZERO),
    };
    let cfg = QemuConfig {
        machine: s.machine,
        memory_bytes,
        smp: s.smp.to_string(),
        kernel: BuildOpts::new(Profile::Debug, s.features).elf(),
        initrd: lpars.as_ref().map(|(_, bundle)| bundle.clone()),
        append: String::new(),
        gdb: false,
        console: Console::Detached,
        extra: if s.virtio_console {
            let _ = std::fs::remove_file(&vcon_path);
            qemu::virtio_console_args(&vcon_path)
        } else {
            Vec::new()
        },
    };
    let mut cfg = cfg;
    // Earlier runs of a PNOR scenario: their consoles go before the last one's.
    let mut earlier = String::new();
    // The guest's first `date` line may be an earlier run's: the host clock
    // window starts with the first run.
    let first_start = unix_now();
    if s.pnor_runs > 0 {
        let pnor = scenario_log(s.name).with_extension("pnor");
        if let Err(e) = std::fs::write(&pnor, crate::pnor::image()) {
            return fail(
                vec![format!("writing {}: {e}", pnor.display())],
                "",
                Duration::ZERO,
            );
        }
        cfg.extra.push("-drive".into());
        cfg.extra
            .push(format!("file={},format=raw,if=mtd", pnor.display()));
        for run in 1..s.pnor_runs {
            let run_log = scenario_log(s.name).with_extension(format!("run{run}.log"));
            match qemu::run_scripted(&cfg.command(), &run_log, s.timeout, &[]) {
                Ok((o, _)) if o.status.is_some_and(|st| st.success()) => {
                    earlier.push_str(&String::from_utf8_lossy(
                        &std::fs::read(&run_log).unwrap_or_default(),
                    ));
                }
                Ok((o, _)) => {
                    let log = String::from_utf8_lossy(&std::fs::read(&run_log).unwrap_or_default())
                        .into_owned();
                    return fail(
                        vec![format!(
                            "run {run} of {}: {}",
                            s.pnor_runs,
                            o.describe(s.timeout)
                        )],
                        &log,
                        o.wall,
                    );
                }
                Err(e) => return fail(vec![e.to_string()], "", Duration::ZERO),
            }
        }
    }
    match passthrough_args(&s, lpars.as_ref().map(|(m, _)| m)) {
        Ok(mut a) => cfg.extra.append(&mut a),
        Err(e) => return fail(vec![e], "", Duration::ZERO),
    }
    let mut host_start = unix_now();
    let (mut outcome, mut typed): (Outcome, usize) =
        match qemu::run_scripted(&cfg.command(), &log_path, s.timeout, s.input) {
            Ok(o) => o,
            Err(e) => return fail(vec![e.to_string()], "", Duration::ZERO),
        };
    // QEMU itself can abort inside skiboot, before the hypervisor printed
    // anything (seen once: QEMU 10.0's XIVE asserting during skiboot's PHB4
    // probe). That run says nothing about Paprika: run it once more, and say so.
    let mut firmware_crash = None;
    if s.pnor_runs == 0 && died_before_paprika(&outcome, &log_path) {
        firmware_crash = Some(outcome.describe(s.timeout));
        let _ = std::fs::remove_file(&vcon_path);
        host_start = unix_now();
        (outcome, typed) = match qemu::run_scripted(&cfg.command(), &log_path, s.timeout, s.input) {
            Ok(o) => o,
            Err(e) => return fail(vec![e.to_string()], "", Duration::ZERO),
        };
    }
    let host = HostClock {
        start: host_start.min(first_start),
        end: unix_now(),
    };
    let log = match std::fs::read(&log_path).context(|| format!("reading {}", log_path.display())) {
        Ok(bytes) => format!("{earlier}{}", String::from_utf8_lossy(&bytes)),
        Err(e) => return fail(vec![e.to_string()], "", outcome.wall),
    };
    let mut vcon_why = Vec::new();
    let log = if s.virtio_console {
        let vcon = std::fs::read(&vcon_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        vcon_why = scenarios::check_virtio_console(&log, &vcon);
        format!("{log}{vcon}")
    } else {
        log
    };
    let mut why = scenarios::check(&s, &log, &outcome);
    why.extend(vcon_why);
    if let Some(step) = s.input.get(typed) {
        why.push(format!(
            "typed {typed} of {} console inputs: `{}` never appeared, so {:?} was not typed",
            s.input.len(),
            step.after,
            step.send
        ));
    }
    if let Some(crash) = &firmware_crash {
        println!(
            "xtask: {}: QEMU {crash} in the firmware, before Paprika ran; ran again",
            s.name
        );
    }
    let mut note = String::new();
    match (&s.linux, &lpars) {
        (Some(boot), _) => {
            let (linux_why, linux_note) = scenarios::check_linux(boot, &log, host);
            why.extend(linux_why);
            note = linux_note;
        }
        (None, Some((manifest, _))) => {
            why.extend(scenarios::check_partitions_failing(
                manifest, &log, s.failing,
            ));
            why.extend(scenarios::check_order(&s, &log));
            note = scenarios::guest_figures(&log);
        }
        (None, None) => {}
    }
    if !why.is_empty() {
        return fail(why, &log, outcome.wall);
    }
    let _guard = print.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "ok: scenario {} ({}, {:.1} s){}",
        s.name,
        outcome.describe(s.timeout),
        outcome.wall.as_secs_f64(),
        if note.is_empty() {
            String::new()
        } else {
            format!(": {note}")
        }
    );
    Row {
        name,
        status: Status::Passed,
        time: outcome.wall,
        note,
    }
}

/// Writes a Linux scenario's manifest, target/scenarios/<name>.toml (also usable
/// with `cargo xtask run --manifest`); returns its path.
fn write_linux_manifest(
    s: &Scenario,
    boot: &scenarios::LinuxBoot,
    l: &Linux,
) -> std::result::Result<PathBuf, String> {
    let mut m = boot.manifest(
        &l.vmlinux.display().to_string(),
        &l.initramfs.display().to_string(),
    )?;
    let path = scenario_log(s.name).with_extension("toml");
    if boot.disks > 0 {
        let (disks, words) = disk_images(s.name, boot.disks)?;
        if let Some(p) = m.partitions.first_mut() {
            p.disks = disks;
            p.cmdline.push_str(&words);
        }
    }
    if boot.root_disk {
        let image = root_image(s.name)?;
        if let Some(p) = m.partitions.first_mut() {
            p.disks = vec![manifest::DiskSpec {
                image,
                readonly: false,
            }];
            p.cmdline.push_str(" paprika.root=1");
        }
    }
    if boot.debian_root {
        let image = crate::debian::build(false).map_err(|e| e.to_string())?;
        if let Some(p) = m.partitions.first_mut() {
            p.disks = vec![manifest::DiskSpec {
                image: image.display().to_string(),
                readonly: false,
            }];
            p.cmdline.push(' ');
            p.cmdline.push_str(crate::run::DEBIAN_ROOT_APPEND);
        }
    }
    let text = format!(
        "# Written by `cargo xtask test` for scenario {} (Linux {}).\n{}",
        s.name,
        l.release,
        crate::manifest::to_toml(&m)
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// The disk images of a vscsi scenario, target/scenarios/<name>-sd{a,b}.img:
/// an ext4 image (`mke2fs -d`) holding `hello.txt` (writable), then a raw
/// read-only pattern; returns their manifest tables and the command-line words
/// carrying their checksums (`paprika.disk=`, `paprika.disk2=`).
fn disk_images(
    name: &str,
    n: u8,
) -> std::result::Result<(Vec<manifest::DiskSpec>, String), String> {
    let base = scenario_log(name);
    let dir = base.with_extension("disk");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // 300 KiB of varied bytes: many blocks, several extents' worth of I/O.
    let mut x: u32 = 0x1234_5678;
    let hello: Vec<u8> = (0..300 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("hello.txt"), &hello).map_err(|e| format!("writing hello.txt: {e}"))?;
    let sda = base.with_extension("sda.img");
    let _ = std::fs::remove_file(&sda);
    let out = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-d"])
        .arg(&dir)
        .arg(&sda)
        .arg("16M")
        .output()
        .map_err(|e| format!("mke2fs (cargo xtask setup installs e2fsprogs): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mke2fs -d {} {}: {}",
            dir.display(),
            sda.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut disks = vec![manifest::DiskSpec {
        image: sda.display().to_string(),
        readonly: false,
    }];
    let mut words = format!(" paprika.disk={}", md5_hex(&hello)?);
    if n > 1 {
        let sdb = base.with_extension("sdb.img");
        let raw: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&sdb, &raw).map_err(|e| format!("writing {}: {e}", sdb.display()))?;
        disks.push(manifest::DiskSpec {
            image: sdb.display().to_string(),
            readonly: true,
        });
        words.push_str(&format!(" paprika.disk2={}", md5_hex(&raw)?));
    }
    Ok((disks, words))
}

/// The root file system of `linux-vscsi-root-p9`: busybox (from the package
/// `linux fetch` unpacked) and an /sbin/init that mounts /proc, checks that `/`
/// is the ext4 disk, prints its markers and powers off.
fn root_image(name: &str) -> std::result::Result<String, String> {
    let extract = linux::dir().join("extract");
    let busybox = std::fs::read_dir(&extract)
        .map_err(|e| format!("reading {}: {e}", extract.display()))?
        .flatten()
        .map(|d| d.path().join("bin/busybox"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no bin/busybox under {}", extract.display()))?;
    let base = scenario_log(name);
    let dir = base.with_extension("root");
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "sbin", "dev", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("creating {d}: {e}"))?;
    }
    std::fs::copy(&busybox, dir.join("bin/busybox"))
        .map_err(|e| format!("copying {}: {e}", busybox.display()))?;
    let init = "#!/bin/busybox sh
        /bin/busybox --install -s /bin
        export PATH=/bin
        mount -t proc proc /proc 2>/dev/null
        if [ \"$(awk '$2 == \"/\" { print $3 }' /proc/mounts | tail -n 1)\" = ext4 ]; then
            echo \"PAPRIKA-LINUX root: init from the vscsi disk, / is ext4\"
            echo \"PAPRIKA-LINUX test: passed name=linux\"
        else
            echo \"PAPRIKA-LINUX root: / is not the ext4 disk\"
            cat /proc/mounts
        fi
        poweroff -f
";
    let init_path = dir.join("sbin/init");
    std::fs::write(&init_path, init).map_err(|e| format!("writing sbin/init: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [init_path, dir.join("bin/busybox")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("chmod {}: {e}", p.display()))?;
        }
    }
    let img = base.with_extension("root.img");
    let _ = std::fs::remove_file(&img);
    let out = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-d"])
        .arg(&dir)
        .arg(&img)
        .arg("16M")
        .output()
        .map_err(|e| format!("mke2fs (cargo xtask setup installs e2fsprogs): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mke2fs -d {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(img.display().to_string())
}

/// MD5 of `data` in hex, by the host's `md5sum` (what busybox's prints).
fn md5_hex(data: &[u8]) -> std::result::Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("md5sum: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(data).map_err(|e| format!("md5sum: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("md5sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if h.len() == 32 => Ok(h.to_string()),
        _ => Err(format!("md5sum printed {text:?}")),
    }
}

/// For a scenario with partitions (a manifest at `path`): the manifest (as
/// written, for the checks) and the bundle built from it,
/// target/bundle/scenario-<name>.cpio.
/// QEMU arguments for the scenario's pass-through devices, their disks
/// written first; the manifest's `devices` must all be among them and no
/// virtio device may lack iommu_platform=on.
fn passthrough_args(s: &Scenario, manifest: Option<&Manifest>) -> Result<Vec<String>, String> {
    if let Some(m) = manifest {
        scenarios::check_passthrough(m, s.passthrough.len())?;
    }
    let mut devs = Vec::new();
    for (i, d) in s.passthrough.iter().enumerate() {
        devs.push(match d {
            scenarios::PtDevice::VirtioBlk | scenarios::PtDevice::Nvme => {
                let path = repo_root()
                    .join("target/scenarios")
                    .join(format!("{}.pt{i}.img", s.name));
                qemu::write_disk_pattern(&path, scenarios::PT_DISK_BYTES)
                    .map_err(|e| e.to_string())?;
                if matches!(d, scenarios::PtDevice::Nvme) {
                    qemu::PassDevice::Nvme(path)
                } else {
                    qemu::PassDevice::VirtioBlk(path)
                }
            }
            scenarios::PtDevice::E1000e(hub) => qemu::PassDevice::E1000e(*hub),
        });
    }
    let args = qemu::passthrough_args(&devs);
    qemu::refuse_unsafe_dma(&args).map_err(|e| e.to_string())?;
    Ok(args)
}

fn prepare_partitions(
    s: &Scenario,
    path: Option<PathBuf>,
    memory: u64,
    append: Option<&str>,
    print: &Mutex<()>,
) -> Result<Option<(Manifest, PathBuf)>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let mut source = partitions::load(&path).map_err(|e| e.to_string())?;
    if let Some(extra) = append {
        source.append_cmdline(extra).map_err(|e| e.to_string())?;
    }
    if !s.secure_refused {
        partitions::refuse_secure(&source.manifest, &source.origin).map_err(|e| e.to_string())?;
    }
    scenarios::check_scenario_manifest(&source.manifest, memory, s.cpus)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let plan = source.resolve().map_err(|e| e.to_string())?;
    let bundle = partitions::bundle_path(&format!("scenario-{}", s.name));
    {
        let _guard = print.lock().unwrap_or_else(|e| e.into_inner());
        partitions::write_bundle(&plan, &bundle).map_err(|e| e.to_string())?;
    }
    Ok(Some((source.manifest, bundle)))
}

fn print_summary(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!("\nsummary:");
    println!("  {:<width$}  {:<6}  {:>7}  note", "step", "result", "time");
    for r in rows {
        let (result, note) = match &r.status {
            Status::Passed => ("ok", r.note.clone()),
            Status::Failed => ("FAILED", r.note.clone()),
            Status::Skipped(why) => ("-", why.clone()),
        };
        let time = if r.time.is_zero() {
            String::new()
        } else {
            format!("{:.1}s", r.time.as_secs_f64())
        };
        let line = format!("  {:<width$}  {result:<6}  {time:>7}  {note}", r.name);
        println!("{}", line.trim_end());
    }
    let count = |f: fn(&Status) -> bool| rows.iter().filter(|r| f(&r.status)).count();
    println!(
        "test: {} passed, {} failed, {} skipped",
        count(|s| *s == Status::Passed),
        count(|s| *s == Status::Failed),
        count(|s| matches!(s, Status::Skipped(_)))
    );
}

#[cfg(test)]
mod tests {

    #[test]
    fn firmware_only_console_is_not_paprika() {
        assert!(!console_reached_paprika(
            b"[    1.0,5] INIT: Starting kernel at 0x20010000\n[    1.1,7] HWPROBE: Probing phb4...\n"
        ));
        assert!(console_reached_paprika(
            b"[    1.0,5] INIT: Starting kernel\n[    0.07] cpu 0/hv INFO  PAPRIKA banner: memory=1\n"
        ));
    }
    use super::*;

    #[test]
    fn help_lists_every_scenario() {
        let h = scenario_table();
        for s in SCENARIOS {
            assert!(h.contains(s.name));
        }
    }

    #[test]
    fn qemu_only_builds_just_what_scenarios_boot() {
        let fault: Vec<Scenario> = SCENARIOS
            .iter()
            .filter(|s| s.name.contains("fault"))
            .cloned()
            .collect();
        let debug = Step::Build(BuildOpts::new(Profile::Debug, &[]));
        let release = Step::Build(BuildOpts::new(Profile::Release, &[]));
        let fault_build = Step::Build(BuildOpts::new(Profile::Debug, &["fault-test"]));
        assert!(!needed_by_scenarios(&debug, &fault));
        assert!(!needed_by_scenarios(&release, &fault));
        assert!(needed_by_scenarios(&fault_build, &fault));
        assert!(needed_by_scenarios(&debug, SCENARIOS));
        assert_eq!(fault_build.name(), "build-debug+fault-test");
    }
}
