//! The partition benchmark of `cargo xtask bench`: the `guest-bench` guest
//! (tests/guests/bench) times hcall round trips once in a Paprika partition and
//! once under QEMU's `-M pseries` (the reference), and the figures are printed
//! side by side. See docs/benchmarks.md.
//!
//! The consoles are big (the guest prints 100,000 16-byte lines), so they go to
//! files and are read back a line at a time, keeping only the figures and the
//! last lines for error messages.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::Cmd;
use crate::error::{failed, Context, Result};
use crate::qemu::{self, Console, Machine, Outcome, QemuConfig};
use crate::setup::QEMU;
use crate::{guests, partitions, repo_root};

/// The guest's package (target/guests/guest-bench.elf).
pub const GUEST: &str = "guest-bench";
/// The partition's name; the hypervisor prefixes its console lines `[bench] `.
pub const PARTITION: &str = "bench";
/// The guest's last line.
pub const DONE: &str = "BENCH-DONE";
/// `PAPRIKA lpar-overhead: <partition> bytes=<n>`, from the hypervisor.
pub const OVERHEAD: &str = "PAPRIKA lpar-overhead:";
/// Issue 16's target for `lpar.memory_overhead_bytes`: under 64 KiB. Not
/// reachable on POWER9/Power10: the partition-scoped root table alone is 64 KiB
/// (docs/benchmarks.md).
pub const OVERHEAD_TARGET_BYTES: u64 = 64 << 10;
/// Default timeout of each run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of console shown when a run fails.
const TAIL_LINES: usize = 40;

/// The manifest of the Paprika run (target/bench/lpar-bench.toml).
const MANIFEST: &str = "\
# Written by `cargo xtask bench`: the partition benchmark (docs/benchmarks.md).
[[partition]]
name = \"bench\"
memory = \"64M\"
vcpus = 1
cpus = [1]
kernel = \"@guest/guest-bench\"
console = true
";
/// Threads of the Paprika run's machine.
const SMP: u32 = 4;

/// The manifest of the instruction-counting run (target/bench/lpar-icount.toml):
/// the partition on thread 0 of a one-thread machine, so that QEMU's
/// instruction counter counts this partition's thread only.
const ICOUNT_MANIFEST: &str = "\
# Written by `cargo xtask bench`: the null hcall's instruction count (docs/benchmarks.md).
[[partition]]
name = \"bench\"
memory = \"64M\"
vcpus = 1
cpus = [0]
kernel = \"@guest/guest-bench\"
console = true
";
/// QEMU's deterministic instruction counter: the virtual clock, and so the
/// timebase the guest reads, advances 2^0 ns per instruction executed.
const ICOUNT_ARGS: [&str; 2] = ["-icount", "shift=0"];
/// Issue 16's target for `lpar.hcall_null_instructions`.
pub const HCALL_INSTRUCTIONS_TARGET: f64 = 150.0;

/// Which of the two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Paprika,
    Pseries,
}

impl Env {
    /// As in `BENCH env=<name>` and the result lines.
    pub fn name(self) -> &'static str {
        match self {
            Env::Paprika => "paprika",
            Env::Pseries => "pseries",
        }
    }
}

/// One console line that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `BENCH env=<name>`
    Env(String),
    /// `BENCH <key>=<n>`
    Value(String, u64),
    /// `BENCH-DONE`
    Done,
    /// `PAPRIKA lpar-overhead: <partition> bytes=<n>`
    Overhead(String, u64),
}

/// Parses one console line: the guest's `BENCH` lines, bare (pseries) or with the
/// hypervisor's `[bench] ` prefix (Paprika), and the hypervisor's overhead line
/// (after its log prefix). Anything else is `None`.
pub fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim_end();
    if let Some(at) = line.find(OVERHEAD) {
        let mut words = line[at + OVERHEAD.len()..].split_whitespace();
        let name = words.next()?;
        let bytes = words.find_map(|w| w.strip_prefix("bytes="))?;
        return Some(Line::Overhead(name.to_string(), bytes.parse().ok()?));
    }
    let prefix = format!("[{PARTITION}] ");
    let line = line.strip_prefix(prefix.as_str()).unwrap_or(line);
    if line == DONE {
        return Some(Line::Done);
    }
    let (key, value) = line.strip_prefix("BENCH ")?.split_once('=')?;
    let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !key_ok || value.is_empty() {
        return None;
    }
    if key == "env" {
        return Some(Line::Env(value.to_string()));
    }
    Some(Line::Value(key.to_string(), value.parse().ok()?))
}

/// The figures one console holds (first occurrence of each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub env: Option<String>,
    pub tb_hz: Option<u64>,
    pub iterations: Option<u64>,
    pub hcall_null_ticks: Option<u64>,
    pub hcall_full_ticks: Option<u64>,
    pub put_term_char16_ticks: Option<u64>,
    pub done: bool,
    /// Paprika's per-LPAR overhead for partition [`PARTITION`].
    pub overhead_bytes: Option<u64>,
    /// Calls per round, and the fastest round's ticks of null hcalls, of
    /// full-exit hcalls and of the same loop around a `nop`.
    pub round_calls: Option<u64>,
    pub hcall_null_round_ticks: Option<u64>,
    pub hcall_full_round_ticks: Option<u64>,
    pub nop_round_ticks: Option<u64>,
}

impl Figures {
    /// Takes one console line.
    pub fn feed(&mut self, line: &str) {
        match parse_line(line) {
            Some(Line::Env(e)) => {
                self.env.get_or_insert(e);
            }
            Some(Line::Value(key, v)) => {
                let slot = match key.as_str() {
                    "tb_hz" => &mut self.tb_hz,
                    "iterations" => &mut self.iterations,
                    "hcall_null_ticks" => &mut self.hcall_null_ticks,
                    "hcall_full_ticks" => &mut self.hcall_full_ticks,
                    "put_term_char16_ticks" => &mut self.put_term_char16_ticks,
                    "round_calls" => &mut self.round_calls,
                    "hcall_null_round_ticks" => &mut self.hcall_null_round_ticks,
                    "hcall_full_round_ticks" => &mut self.hcall_full_round_ticks,
                    "nop_round_ticks" => &mut self.nop_round_ticks,
                    _ => return,
                };
                slot.get_or_insert(v);
            }
            Some(Line::Done) => self.done = true,
            Some(Line::Overhead(name, bytes)) if name == PARTITION => {
                self.overhead_bytes.get_or_insert(bytes);
            }
            Some(Line::Overhead(..)) | None => {}
        }
    }

    /// The figures of a complete `env` run, or what is missing or wrong.
    pub fn complete(&self, env: Env) -> std::result::Result<Measured, String> {
        let mut missing = Vec::new();
        match self.env.as_deref() {
            None => missing.push(format!("`BENCH env={}`", env.name())),
            Some(e) if e != env.name() => {
                return Err(format!(
                    "the guest says `BENCH env={e}`, expected env={}",
                    env.name()
                ))
            }
            Some(_) => {}
        }
        let mut need = |v: Option<u64>, what: &str| {
            if v.is_none() {
                missing.push(format!("`{what}`"));
            }
            v.unwrap_or(0)
        };
        let m = Measured {
            tb_hz: need(self.tb_hz, "BENCH tb_hz=<n>"),
            iterations: need(self.iterations, "BENCH iterations=<n>"),
            hcall_null_ticks: need(self.hcall_null_ticks, "BENCH hcall_null_ticks=<n>"),
            hcall_full_ticks: need(self.hcall_full_ticks, "BENCH hcall_full_ticks=<n>"),
            put_term_char16_ticks: need(
                self.put_term_char16_ticks,
                "BENCH put_term_char16_ticks=<n>",
            ),
            overhead_bytes: self.overhead_bytes,
        };
        if env == Env::Paprika && self.overhead_bytes.is_none() {
            missing.push(format!("`{OVERHEAD} {PARTITION} bytes=<n>`"));
        }
        if !self.done {
            missing.push(format!("`{DONE}`"));
        }
        if !missing.is_empty() {
            return Err(format!("no {} on the console", missing.join(", ")));
        }
        if m.tb_hz == 0 {
            return Err("the guest says `BENCH tb_hz=0`".to_string());
        }
        Ok(m)
    }
}

impl Figures {
    /// The instructions one null hcall costs beyond the guest's own loop, when
    /// the run was under `-icount shift=0` (one timebase tick is then
    /// 1e9 / tb_hz instructions): (fastest round of hcalls - fastest round of
    /// the same loop with `nop` for `sc 1`) / calls per round. The `sc 1` and
    /// the `nop` cancel, so this is the hypervisor's share: interrupt vector
    /// to `hrfid`.
    pub fn hcall_null_instructions(&self) -> Option<f64> {
        self.instructions(self.hcall_null_round_ticks?)
    }

    /// The same for one full-exit hcall (H_GET_CPU_CHARACTERISTICS, which the
    /// hcall fast path does not serve): the cost of Paprika's full exit, guest
    /// entry and hcall dispatch.
    pub fn hcall_full_instructions(&self) -> Option<f64> {
        self.instructions(self.hcall_full_round_ticks?)
    }

    /// Instructions per call of a round of `hcall` ticks beyond the `nop` round.
    fn instructions(&self, hcall: u64) -> Option<f64> {
        let (tb_hz, calls, nop) = (self.tb_hz?, self.round_calls?, self.nop_round_ticks?);
        if tb_hz == 0 || calls == 0 {
            return None;
        }
        let ticks = hcall.saturating_sub(nop) as f64;
        Some(ticks * 1e9 / tb_hz as f64 / calls as f64)
    }
}

/// The lines of the instruction counts: the null hcall's and, when the guest
/// printed its round, the full-exit hcall's.
pub fn instruction_lines(instructions: f64, full: Option<f64>) -> Vec<String> {
    let mut lines = vec![
        format!(
            "lpar.hcall_null_instructions: {instructions:.0}   (QEMU -icount, hypervisor's \
             share of one H_PROD)"
        ),
        format!(
            "lpar.hcall_null_instructions_target_met: {}   (target: < {HCALL_INSTRUCTIONS_TARGET})",
            if instructions < HCALL_INSTRUCTIONS_TARGET {
                "yes"
            } else {
                "no"
            }
        ),
    ];
    if let Some(full) = full {
        lines.push(format!(
            "lpar.hcall_full_instructions: {full:.0}   (QEMU -icount, hypervisor's share \
             of one H_GET_CPU_CHARACTERISTICS: full exit)"
        ));
    }
    lines
}

/// The figures of a complete run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub tb_hz: u64,
    pub iterations: u64,
    pub hcall_null_ticks: u64,
    pub hcall_full_ticks: u64,
    pub put_term_char16_ticks: u64,
    pub overhead_bytes: Option<u64>,
}

impl Measured {
    /// Timebase ticks in microseconds.
    fn us(&self, ticks: u64) -> f64 {
        ticks as f64 / (self.tb_hz as f64 / 1e6)
    }
}

/// A console read back: its figures and its last lines.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub figures: Figures,
    pub tail: String,
}

/// Reads a console a line at a time (bytes that are not UTF-8 are replaced),
/// keeping the figures and the last `tail_lines` lines, a run of equal lines
/// (the guest's 100,000 `paprika-bench..`) counting as one: `<line>  [x N]`.
pub fn scan(mut reader: impl BufRead, tail_lines: usize) -> std::io::Result<Scan> {
    let mut figures = Figures::default();
    let mut tail: VecDeque<(String, u64)> = VecDeque::with_capacity(tail_lines + 1);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        figures.feed(line);
        match tail.back_mut() {
            Some((last, n)) if last == line => *n += 1,
            _ if tail_lines > 0 => {
                if tail.len() == tail_lines {
                    tail.pop_front();
                }
                tail.push_back((line.to_string(), 1));
            }
            _ => {}
        }
    }
    let mut text = String::new();
    for (l, n) in &tail {
        text.push_str(l);
        if *n > 1 {
            text.push_str(&format!("  [x {n}]"));
        }
        text.push('\n');
    }
    Ok(Scan {
        figures,
        tail: text,
    })
}

/// `a / b` to one decimal, or `n/a`.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}", a / b)
    } else {
        "n/a".to_string()
    }
}

/// The result lines: each figure of the Paprika run, beside the pseries run's and
/// the ratio Paprika / pseries when there is one.
pub fn report(paprika: &Measured, pseries: Option<&Measured>) -> Vec<String> {
    let mut lines = Vec::new();
    type Pick = fn(&Measured) -> u64;
    let figures: [(&str, Pick); 3] = [
        ("hcall_null", |m| m.hcall_null_ticks),
        ("hcall_full", |m| m.hcall_full_ticks),
        ("put_term_char16", |m| m.put_term_char16_ticks),
    ];
    for (name, pick) in figures {
        let (pt, pu) = (pick(paprika), paprika.us(pick(paprika)));
        match pseries {
            Some(s) => {
                let (st, su) = (pick(s), s.us(pick(s)));
                lines.push(format!(
                    "lpar.{name}_ticks: paprika={pt} pseries={st} ratio={}",
                    ratio(pt as f64, st as f64)
                ));
                lines.push(format!(
                    "lpar.{name}_us: paprika={pu:.2} pseries={su:.2} ratio={}",
                    ratio(pu, su)
                ));
            }
            None => {
                lines.push(format!("lpar.{name}_ticks: paprika={pt}"));
                lines.push(format!("lpar.{name}_us: paprika={pu:.2}"));
            }
        }
    }
    match pseries {
        Some(s) if s.iterations != paprika.iterations => lines.push(format!(
            "lpar.iterations: paprika={} pseries={}",
            paprika.iterations, s.iterations
        )),
        _ => lines.push(format!("lpar.iterations: {}", paprika.iterations)),
    }
    if let Some(bytes) = paprika.overhead_bytes {
        lines.push(format!("lpar.memory_overhead_bytes: {bytes}"));
        lines.push(format!(
            "lpar.memory_overhead_target_met: {}   (target: < {OVERHEAD_TARGET_BYTES} bytes)",
            if bytes < OVERHEAD_TARGET_BYTES {
                "yes"
            } else {
                "no"
            }
        ));
    }
    if let Some(s) = pseries {
        let met = paprika.us(paprika.put_term_char16_ticks) <= s.us(s.put_term_char16_ticks);
        lines.push(format!(
            "lpar.put_term_char16_target_met: {}   (target: Paprika <= pseries)",
            if met { "yes" } else { "no" }
        ));
    }
    lines
}

/// What `bench` needs to run the partition benchmark.
pub struct Opts {
    /// The release hypervisor ELF.
    pub hypervisor: PathBuf,
    /// Run the pseries reference too.
    pub pseries: bool,
    pub timeout: Duration,
}

/// target/bench/<file>
fn bench_path(file: &str) -> PathBuf {
    repo_root().join("target").join("bench").join(file)
}

/// Runs the benchmark (guests already built); returns the result lines.
pub fn run(opts: &Opts) -> Result<Vec<String>> {
    let elf = guests::elf(GUEST);
    if !elf.is_file() {
        return Err(failed!(
            "{} has not been built (tests/guests/bench; `cargo xtask build --guests` builds it)",
            elf.display()
        ));
    }
    let paprika = run_paprika(opts)?;
    let pseries = if opts.pseries {
        Some(run_pseries(&elf, opts.timeout)?)
    } else {
        None
    };
    let (instructions, full) = run_icount(opts)?;
    let mut lines = report(&paprika, pseries.as_ref());
    lines.extend(instruction_lines(instructions, full));
    Ok(lines)
}

/// The guest once more, alone on a one-thread machine under QEMU `-icount
/// shift=0`: the null hcall's and the full-exit hcall's instruction counts.
fn run_icount(opts: &Opts) -> Result<(f64, Option<f64>)> {
    let runner = Runner {
        manifest_file: "lpar-icount.toml",
        manifest: ICOUNT_MANIFEST,
        smp: 1,
        extra: &ICOUNT_ARGS,
        log: "lpar-icount",
    };
    let (_, figures) = runner.run(opts)?;
    let null = figures.hcall_null_instructions().ok_or_else(|| {
        failed!(
            "lpar benchmark, icount run: no `BENCH round_calls`, `hcall_null_round_ticks` \
             or `nop_round_ticks` in target/bench/lpar-icount.vcon.log"
        )
    })?;
    Ok((null, figures.hcall_full_instructions()))
}

/// One boot of the guest in a Paprika partition.
struct Runner {
    manifest_file: &'static str,
    manifest: &'static str,
    smp: u32,
    extra: &'static [&'static str],
    /// target/bench/<log>.log (serial) and <log>.vcon.log (virtio console).
    log: &'static str,
}

/// Boots the guest in a partition, the way `run --manifest` does: a manifest
/// file, checked and sized, a boot bundle, QEMU powernv9 with `-initrd`.
fn run_paprika(opts: &Opts) -> Result<Measured> {
    let runner = Runner {
        manifest_file: "lpar-bench.toml",
        manifest: MANIFEST,
        smp: SMP,
        extra: &[],
        log: "lpar-paprika",
    };
    Ok(runner.run(opts)?.0)
}

impl Runner {
    /// The run's measured figures and all the figures its console held.
    fn run(&self, opts: &Opts) -> Result<(Measured, Figures)> {
        let manifest = bench_path(self.manifest_file);
        if let Some(dir) = manifest.parent() {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&manifest, self.manifest)
            .context(|| format!("writing {}", manifest.display()))?;
        let src = partitions::load(&manifest)?;
        let size = partitions::size_machine(&src.manifest, self.smp, 1, None)?;
        let plan = src.resolve()?;
        print!("{}", partitions::describe(&src.manifest));
        let bundle = partitions::bundle_path(&src.name);
        partitions::write_bundle(&plan, &bundle)?;
        // The hypervisor's console output (the guest's lines included) goes to a
        // virtio console, as pseries' vty goes to its chardev: one host write per
        // buffer instead of one UART access per byte (docs/benchmarks.md).
        let vcon = bench_path(&format!("{}.vcon.log", self.log));
        let _ = std::fs::remove_file(&vcon);
        let cfg = QemuConfig {
            machine: Machine::Powernv9,
            memory_bytes: size.memory,
            smp: qemu::smp_arg(size.cpus, 1)?,
            kernel: opts.hypervisor.clone(),
            initrd: Some(bundle),
            append: String::new(),
            gdb: false,
            console: Console::Detached,
            extra: qemu::virtio_console_args(&vcon)
                .into_iter()
                .chain(self.extra.iter().map(|a| a.to_string()))
                .collect(),
        };
        let serial = bench_path(&format!("{}.log", self.log));
        let outcome = qemu::run_captured(&cfg.command(), &serial, opts.timeout)?;
        let log = if vcon.is_file() { vcon } else { serial };
        let scan = read_log(&log)?;
        let problem = match outcome.status {
            None => Some(outcome.describe(opts.timeout)),
            Some(_) if outcome.code() != Some(0) => Some(format!(
                "QEMU ended with {}, expected exit status 0 (the guest powers off)",
                outcome.describe(opts.timeout)
            )),
            Some(_) => None,
        };
        let measured = check(Env::Paprika, &log, &scan, problem)?;
        Ok((measured, scan.figures))
    }
}

/// Boots the guest under `qemu-system-ppc64 -M pseries` (SLOF loads it) and stops
/// QEMU once the guest is done: it spins there.
fn run_pseries(elf: &Path, timeout: Duration) -> Result<Measured> {
    let cmd = Cmd::new(QEMU)
        .args(["-M", "pseries", "-m", "1G"])
        .args(["-nographic", "-nodefaults", "-serial", "stdio"])
        .arg("-kernel")
        .arg(elf);
    let log = bench_path("lpar-pseries.log");
    let (outcome, done) = qemu::run_until(&cmd, &log, timeout, DONE)?;
    let scan = read_log(&log)?;
    let problem = problem_until(&outcome, done, timeout);
    check(Env::Pseries, &log, &scan, problem)
}

/// What went wrong with a run that should have printed `BENCH-DONE`, then been
/// stopped.
fn problem_until(outcome: &Outcome, done: bool, timeout: Duration) -> Option<String> {
    match outcome.status {
        None => Some(format!("{} without `{DONE}`", outcome.describe(timeout))),
        Some(_) if !done => Some(format!(
            "QEMU ended with {} before `{DONE}`",
            outcome.describe(timeout)
        )),
        Some(_) => None,
    }
}

fn read_log(log: &Path) -> Result<Scan> {
    let file = std::fs::File::open(log).context(|| format!("reading {}", log.display()))?;
    scan(std::io::BufReader::new(file), TAIL_LINES).context(|| format!("reading {}", log.display()))
}

/// The run's figures, or an error naming the run, the problem, the console's
/// tail and QEMU's stderr.
fn check(env: Env, log: &Path, scan: &Scan, problem: Option<String>) -> Result<Measured> {
    let problem = match (problem, scan.figures.complete(env)) {
        (None, Ok(m)) => return Ok(m),
        (Some(p), _) | (None, Err(p)) => p,
    };
    let stderr = std::fs::read(qemu::stderr_log(log)).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\nQEMU's stderr:\n{}", qemu::tail(&stderr, 20).trim_end())
    };
    Err(failed!(
        "lpar benchmark, {} run: {problem}; last {TAIL_LINES} lines of {}:\n{}{stderr}",
        env.name(),
        log.display(),
        scan.tail.trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Paprika console, shortened (the real one has 100,000 `paprika-bench..`
    /// lines), with a firmware message cutting into one of them.
    const PAPRIKA_LOG: &str = "\
[    0.133065] cpu 0/hv INFO  PAPRIKA boot-time: ticks=68008909 us=132829
[    0.343403] cpu 0/hv INFO  lpar bench (LPID 1): 64 MiB at host 0x1200000, 1 vCPU(s)
[    0.344087] cpu 0/hv INFO  PAPRIKA lpar-overhead: bench bytes=74888
[bench] 
[bench] BENCH env=paprika
[bench] BENCH tb_hz=512000000
[bench] BENCH iterations=100000
[bench] BENCH hcall_null_ticks=1605
[bench] BENCH hcall_full_ticks=4810
[bench] paprika-bench..
[bench] paprika-[   11.191474741,4] WARNING: Lock has been spinning for over 5000ms
bench..
[bench] paprika-bench..
[bench] paprika-bench..
[bench] BENCH put_term_char16_ticks=3665
[bench] BENCH-DONE
[    1.378996] cpu 1/lpar1 INFO  PAPRIKA lpar bench: stopped (power-off)
[   11.505687255,5] OPAL: Shutdown request type 0x0...
";

    /// The pseries console, shortened, with SLOF's escape sequences and CRs.
    const PSERIES_LOG: &str = "\
\x1b[?25hC0000C0100C08FF     \r
  Welcome to Open Firmware\r
Booting from memory...\r
\n\
BENCH env=pseries
BENCH tb_hz=512000000
BENCH iterations=100000
BENCH hcall_null_ticks=71
BENCH hcall_full_ticks=73
paprika-bench..
paprika-bench..
BENCH put_term_char16_ticks=509
BENCH-DONE
";

    fn scan_str(s: &str) -> Scan {
        scan(s.as_bytes(), 3).unwrap()
    }

    #[test]
    fn lines() {
        assert_eq!(
            parse_line("[bench] BENCH env=paprika"),
            Some(Line::Env("paprika".into()))
        );
        assert_eq!(
            parse_line("BENCH env=pseries\r"),
            Some(Line::Env("pseries".into()))
        );
        assert_eq!(
            parse_line("[bench] BENCH hcall_null_ticks=1605"),
            Some(Line::Value("hcall_null_ticks".into(), 1605))
        );
        assert_eq!(
            parse_line("BENCH tb_hz=512000000"),
            Some(Line::Value("tb_hz".into(), 512_000_000))
        );
        assert_eq!(parse_line("[bench] BENCH-DONE"), Some(Line::Done));
        assert_eq!(parse_line("BENCH-DONE\r"), Some(Line::Done));
        assert_eq!(
            parse_line("[    0.34] cpu 0/hv INFO  PAPRIKA lpar-overhead: bench bytes=74888"),
            Some(Line::Overhead("bench".into(), 74888))
        );
        // With the breakdown the hypervisor logs after the total.
        assert_eq!(
            parse_line(
                "[ 0.34] cpu 0/hv INFO  PAPRIKA lpar-overhead: bench bytes=75520 root=65536 dirs=8192 structs=1792"
            ),
            Some(Line::Overhead("bench".into(), 75520))
        );
        for junk in [
            "",
            "[bench] ",
            "[bench] paprika-bench..",
            "BENCH",
            "BENCH x",
            "BENCH =1",
            "BENCH tb_hz=",
            "BENCH tb_hz=12x",
            "BENCH tb_hz=-1",
            "BENCH a b=1",
            "[other] BENCH tb_hz=1",
            "xBENCH tb_hz=1",
            "BENCH-DONE!",
            "PAPRIKA lpar-overhead: bench",
            "PAPRIKA lpar-overhead: bench bytes=x",
        ] {
            assert_eq!(parse_line(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn paprika_log() {
        let s = scan_str(PAPRIKA_LOG);
        assert_eq!(
            s.figures,
            Figures {
                env: Some("paprika".into()),
                tb_hz: Some(512_000_000),
                iterations: Some(100_000),
                hcall_null_ticks: Some(1605),
                hcall_full_ticks: Some(4810),
                put_term_char16_ticks: Some(3665),
                done: true,
                overhead_bytes: Some(74888),
                round_calls: None,
                hcall_null_round_ticks: None,
                hcall_full_round_ticks: None,
                nop_round_ticks: None,
            }
        );
        assert_eq!(s.figures.hcall_null_instructions(), None);
        assert_eq!(
            s.tail,
            "[bench] BENCH-DONE\n\
             [    1.378996] cpu 1/lpar1 INFO  PAPRIKA lpar bench: stopped (power-off)\n\
             [   11.505687255,5] OPAL: Shutdown request type 0x0...\n"
        );
        let m = s.figures.complete(Env::Paprika).unwrap();
        assert_eq!(m.overhead_bytes, Some(74888));
        let e = s.figures.complete(Env::Pseries).unwrap_err();
        assert_eq!(
            e,
            "the guest says `BENCH env=paprika`, expected env=pseries"
        );
    }

    #[test]
    fn pseries_log() {
        let s = scan_str(PSERIES_LOG);
        let m = s.figures.complete(Env::Pseries).unwrap();
        assert_eq!(
            m,
            Measured {
                tb_hz: 512_000_000,
                iterations: 100_000,
                hcall_null_ticks: 71,
                hcall_full_ticks: 73,
                put_term_char16_ticks: 509,
                overhead_bytes: None,
            }
        );
        assert_eq!(
            s.tail,
            "paprika-bench..  [x 2]\nBENCH put_term_char16_ticks=509\nBENCH-DONE\n"
        );
    }

    #[test]
    fn missing_lines_are_named() {
        // Cut off in the middle (a timeout): no second figure, no BENCH-DONE.
        let cut = &PAPRIKA_LOG[..PAPRIKA_LOG.find("[bench] paprika-bench").unwrap()];
        let e = scan_str(cut).figures.complete(Env::Paprika).unwrap_err();
        assert_eq!(
            e,
            "no `BENCH put_term_char16_ticks=<n>`, `BENCH-DONE` on the console"
        );
        // The pseries run has no overhead line and needs none; Paprika's does.
        let no_overhead = PAPRIKA_LOG.replace("PAPRIKA lpar-overhead", "x");
        let e = scan_str(&no_overhead)
            .figures
            .complete(Env::Paprika)
            .unwrap_err();
        assert!(
            e.contains("`PAPRIKA lpar-overhead: bench bytes=<n>`"),
            "{e}"
        );
        let e = scan_str("boot failed\n")
            .figures
            .complete(Env::Pseries)
            .unwrap_err();
        assert!(
            e.starts_with("no `BENCH env=pseries`, `BENCH tb_hz=<n>`"),
            "{e}"
        );
        assert_eq!(scan_str("").tail, "");
        // Runs of equal lines count once in the tail.
        let s = scan_str(&PAPRIKA_LOG[..PAPRIKA_LOG.find("[bench] BENCH put").unwrap()]);
        assert_eq!(
            s.tail,
            "[bench] paprika-[   11.191474741,4] WARNING: Lock has been spinning for over 5000ms\n\
             bench..\n\
             [bench] paprika-bench..  [x 2]\n"
        );
        assert_eq!(scan("a\na\n".as_bytes(), 0).unwrap().tail, "");
    }

    #[test]
    fn results_side_by_side() {
        let p = scan_str(PAPRIKA_LOG)
            .figures
            .complete(Env::Paprika)
            .unwrap();
        let s = scan_str(PSERIES_LOG)
            .figures
            .complete(Env::Pseries)
            .unwrap();
        assert_eq!(
            report(&p, Some(&s)),
            [
                "lpar.hcall_null_ticks: paprika=1605 pseries=71 ratio=22.6",
                "lpar.hcall_null_us: paprika=3.13 pseries=0.14 ratio=22.6",
                "lpar.hcall_full_ticks: paprika=4810 pseries=73 ratio=65.9",
                "lpar.hcall_full_us: paprika=9.39 pseries=0.14 ratio=65.9",
                "lpar.put_term_char16_ticks: paprika=3665 pseries=509 ratio=7.2",
                "lpar.put_term_char16_us: paprika=7.16 pseries=0.99 ratio=7.2",
                "lpar.iterations: 100000",
                "lpar.memory_overhead_bytes: 74888",
                "lpar.memory_overhead_target_met: no   (target: < 65536 bytes)",
                "lpar.put_term_char16_target_met: no   (target: Paprika <= pseries)",
            ]
        );
        assert_eq!(
            report(&p, None),
            [
                "lpar.hcall_null_ticks: paprika=1605",
                "lpar.hcall_null_us: paprika=3.13",
                "lpar.hcall_full_ticks: paprika=4810",
                "lpar.hcall_full_us: paprika=9.39",
                "lpar.put_term_char16_ticks: paprika=3665",
                "lpar.put_term_char16_us: paprika=7.16",
                "lpar.iterations: 100000",
                "lpar.memory_overhead_bytes: 74888",
                "lpar.memory_overhead_target_met: no   (target: < 65536 bytes)",
            ]
        );
        // Microseconds follow each run's own timebase; the target compares time.
        let fast = Measured {
            tb_hz: 1_000_000_000,
            put_term_char16_ticks: 7000,
            iterations: 10,
            ..s
        };
        let lines = report(&fast, Some(&s));
        assert_eq!(
            lines[5],
            "lpar.put_term_char16_us: paprika=7.00 pseries=0.99 ratio=7.0"
        );
        assert_eq!(lines[6], "lpar.iterations: paprika=10 pseries=100000");
        let mut quick = p;
        quick.put_term_char16_ticks = 509;
        assert!(report(&quick, Some(&s))[9].starts_with("lpar.put_term_char16_target_met: yes"));
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }

    #[test]
    fn memory_overhead_target() {
        let m = |bytes| Measured {
            tb_hz: 512_000_000,
            iterations: 1,
            hcall_null_ticks: 1,
            hcall_full_ticks: 1,
            put_term_char16_ticks: 1,
            overhead_bytes: Some(bytes),
        };
        let met = |bytes| {
            report(&m(bytes), None)
                .into_iter()
                .find_map(|l| {
                    l.strip_prefix("lpar.memory_overhead_target_met: ")
                        .map(|r| r.split_whitespace().next().unwrap().to_string())
                })
                .unwrap()
        };
        assert_eq!(met(65535), "yes");
        assert_eq!(met(65536), "no");
        assert_eq!(met(75520), "no");
    }

    #[test]
    fn run_problems() {
        let t = Duration::from_secs(300);
        let timed_out = Outcome {
            status: None,
            wall: t,
        };
        assert_eq!(
            problem_until(&timed_out, false, t).unwrap(),
            "timed out after 300 s (QEMU killed) without `BENCH-DONE`"
        );
        let exited = Outcome {
            status: Some(std::os::unix::process::ExitStatusExt::from_raw(1 << 8)),
            wall: t,
        };
        assert_eq!(
            problem_until(&exited, false, t).unwrap(),
            "QEMU ended with exit status 1 before `BENCH-DONE`"
        );
        assert_eq!(problem_until(&exited, true, t), None);
    }

    #[test]
    fn instruction_count() {
        let mut f = Figures::default();
        for l in [
            "[bench] BENCH tb_hz=512000000",
            "[bench] BENCH round_calls=20000",
            "[bench] BENCH hcall_null_round_ticks=1536000",
            "[bench] BENCH nop_round_ticks=102400",
        ] {
            f.feed(l);
        }
        // (1536000 - 102400) ticks of 1/0.512 instructions over 20000 calls.
        let n = f.hcall_null_instructions().unwrap();
        assert!((n - 140.0).abs() < 1e-9, "{n}");
        assert_eq!(
            instruction_lines(n, None),
            [
                "lpar.hcall_null_instructions: 140   (QEMU -icount, hypervisor's share of one \
                 H_PROD)",
                "lpar.hcall_null_instructions_target_met: yes   (target: < 150)"
            ]
        );
        assert!(instruction_lines(150.0, None)[1].contains(": no "));
        // The full-exit round, against the same `nop` round.
        assert_eq!(f.hcall_full_instructions(), None);
        f.feed("[bench] BENCH hcall_full_round_ticks=10342400");
        let full = f.hcall_full_instructions().unwrap();
        assert!((full - 1000.0).abs() < 1e-9, "{full}");
        assert_eq!(
            instruction_lines(n, Some(full))[2],
            "lpar.hcall_full_instructions: 1000   (QEMU -icount, hypervisor's share of one \
             H_GET_CPU_CHARACTERISTICS: full exit)"
        );
        f.round_calls = Some(0);
        assert_eq!(f.hcall_null_instructions(), None);
        assert_eq!(f.hcall_full_instructions(), None);
    }

    #[test]
    fn icount_manifest_is_valid() {
        let m = crate::manifest::parse(ICOUNT_MANIFEST).unwrap();
        assert_eq!(m.partitions[0].cpus, [0]);
        assert_eq!(m.partitions[0].name, PARTITION);
        let size = partitions::size_machine(&m, 1, 1, None).unwrap();
        assert_eq!(size.cpus, 1);
    }

    #[test]
    fn manifest_is_valid() {
        let m = crate::manifest::parse(MANIFEST).unwrap();
        let p = &m.partitions[0];
        assert_eq!(
            (p.name.as_str(), p.memory, p.vcpus),
            (PARTITION, 64 << 20, 1)
        );
        assert_eq!(p.cpus, [1]);
        assert_eq!(p.kernel, format!("{}{GUEST}", partitions::GUEST_PREFIX));
        assert!(p.console);
        let size = partitions::size_machine(&m, SMP, 1, None).unwrap();
        assert_eq!(size.cpus, 4);
    }
}
