//! The QEMU boot scenarios of `cargo xtask test` and the checks on their consoles.
//!
//! Two kinds: a plain boot of the hypervisor, and a boot with partitions from a
//! manifest in tests/manifests/ (a row made by [`lpars`]): the manifest is
//! bundled as QEMU's -initrd and each partition's `expect` marker must appear on
//! the console behind the partition's `[<name>] ` prefix. Adding such a scenario
//! takes tests/manifests/<file>.toml and one table row.

use std::path::PathBuf;
use std::time::Duration;

use paprika::partition::manifest::Manifest;

use crate::qemu::{parse_size, Machine, Outcome};
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

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Scenarios with partitions boot guests too.
pub const LPARS_TIMEOUT: Duration = Duration::from_secs(120);

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
    lpars("lpar-smp-p9", Machine::Powernv9, "smp", "1G", "4", 4, 1),
    lpars("lpar-smp-p10", Machine::Powernv10, "smp", "1G", "4", 4, 1),
    lpars("lpar-timer-p9", Machine::Powernv9, "timer", "1G", "4", 4, 1),
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
    lpars(
        "lpar-hostile-p9",
        Machine::Powernv9,
        "hostile",
        "1G",
        "4",
        4,
        1,
    ),
    lpars(
        "lpar-hostile-p10",
        Machine::Powernv10,
        "hostile",
        "1G",
        "4",
        4,
        1,
    ),
];

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

/// The first console line containing `marker`.
fn find_line<'a>(log: &'a str, marker: &str) -> Option<&'a str> {
    log.lines().find(|l| l.contains(marker))
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

/// Whether a console line shows `marker` in partition `name`'s output: after the
/// `[<name>] ` prefix the hypervisor puts on the partition's console lines.
fn partition_line_has(line: &str, name: &str, marker: &str) -> bool {
    let prefix = format!("[{name}] ");
    line.find(&prefix)
        .is_some_and(|at| line[at + prefix.len()..].contains(marker))
}

/// The partition checks of a manifest scenario; returns every reason it failed.
pub fn check_partitions(m: &Manifest, log: &str) -> Vec<String> {
    let mut why = Vec::new();
    for p in &m.partitions {
        if let Some(marker) = &p.expect {
            if !log.lines().any(|l| partition_line_has(l, &p.name, marker)) {
                why.push(format!(
                    "partition {}: missing `[{}] ...{marker}` on the console",
                    p.name, p.name
                ));
            }
        }
        let stopped = format!("{LPAR}{}: stopped", p.name);
        if !log.contains(&stopped) {
            why.push(format!("missing `{stopped} (...)`"));
        }
    }
    let n = m.partitions.len();
    let want = format!("{PARTITIONS} {n} passed, 0 failed");
    match find_line(log, PARTITIONS) {
        None => why.push(format!("missing `{want}`")),
        Some(line) if line.contains(&want) => {}
        Some(line) => why.push(format!("expected `{want}`, got: {}", line.trim_end())),
    }
    why
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
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

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
            // A manifest scenario's file exists, is valid and fits its machine.
            if let Some(path) = s.manifest_path() {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", s.name, path.display()));
                let m = paprika::partition::manifest::parse(&text)
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
        let m = paprika::partition::manifest::parse(TWO_LPARS).unwrap();
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
            .replace("PAPRIKA lpar quiet: stopped (power-off)\n", "")
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
}
