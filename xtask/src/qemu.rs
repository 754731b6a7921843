//! QEMU command lines and running QEMU, in the foreground or captured with a timeout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{describe_status, Cmd};
use crate::error::{failed, usage, Context, Result};
use crate::setup::QEMU;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Powernv9,
    Powernv10,
}

impl Machine {
    pub const ALL: [Machine; 2] = [Machine::Powernv9, Machine::Powernv10];

    pub fn name(self) -> &'static str {
        match self {
            Machine::Powernv9 => "powernv9",
            Machine::Powernv10 => "powernv10",
        }
    }

    pub fn parse(s: &str) -> Result<Machine> {
        match s {
            "powernv9" | "p9" => Ok(Machine::Powernv9),
            "powernv10" | "p10" => Ok(Machine::Powernv10),
            _ => Err(usage!("unknown machine `{s}` (want powernv9 or powernv10)")),
        }
    }
}

/// Parses a memory size the way QEMU's `-m` does: a number with an optional
/// binary suffix K, M, G or T (`KiB`, `MB`, `g`... are accepted too); a bare
/// number means MiB, as in QEMU.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    let bad = || usage!("bad memory size `{s}` (want e.g. 512M, 2G)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit = match suffix.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 1 << 20,
        "K" | "KB" | "KIB" => 1 << 10,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        "B" => 1,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(unit).ok_or_else(bad)?;
    if bytes == 0 || !bytes.is_multiple_of(1 << 20) {
        return Err(usage!(
            "memory size `{s}` must be a non-zero whole number of MiB"
        ));
    }
    Ok(bytes)
}

/// The `-m` argument for a byte count: "2G", "1536M".
pub fn format_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// `-smp N` or `-smp N,cores=N/T,threads=T`.
pub fn smp_arg(cpus: u32, threads: u32) -> Result<String> {
    if cpus == 0 || threads == 0 {
        return Err(usage!("--smp and --threads must be at least 1"));
    }
    if threads == 1 {
        return Ok(cpus.to_string());
    }
    if !cpus.is_multiple_of(threads) {
        return Err(usage!(
            "--smp {cpus} is not a whole number of cores of {threads} threads"
        ));
    }
    Ok(format!("{cpus},cores={},threads={threads}", cpus / threads))
}

/// How QEMU's console is wired up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// A terminal on stdin: console and QEMU monitor multiplexed, with QEMU's
    /// escape moved to Ctrl-] ([`QEMU_ESCAPE`]: Ctrl-] x quits, Ctrl-] c
    /// switches to the monitor) so that Ctrl-A reaches the hypervisor's console
    /// router.
    Terminal,
    /// No terminal: console on stdout only, stdin is /dev/null so nothing waits for it.
    Detached,
}

/// QEMU's `-echr` on a terminal: Ctrl-] (0x1d), so QEMU's multiplexer leaves
/// Ctrl-A (the hypervisor's escape) alone.
pub const QEMU_ESCAPE: &str = "0x1d";

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub machine: Machine,
    pub memory_bytes: u64,
    pub smp: String,
    pub kernel: PathBuf,
    /// The boot bundle (`-initrd`), when there are partitions.
    pub initrd: Option<PathBuf>,
    pub append: String,
    pub gdb: bool,
    pub console: Console,
    pub extra: Vec<String>,
}

impl QemuConfig {
    pub fn command(&self) -> Cmd {
        let serial = match self.console {
            Console::Terminal => "mon:stdio",
            Console::Detached => "stdio",
        };
        let mut cmd = Cmd::new(QEMU)
            .args(["-M", self.machine.name()])
            .args(["-m", &format_size(self.memory_bytes)])
            .args(["-smp", &self.smp])
            // -nodefaults keeps the machine to what is listed here. The console (the
            // LPC UART) comes from -serial; the BMC must be added by hand, without it
            // skiboot cannot power the machine off (QEMU would hang, not exit).
            .args(["-nographic", "-nodefaults", "-serial", serial]);
        if self.console == Console::Terminal {
            cmd = cmd.args(["-echr", QEMU_ESCAPE]);
        }
        cmd = cmd
            .args(["-device", "ipmi-bmc-sim,id=bmc0"])
            .args(["-device", "isa-ipmi-bt,bmc=bmc0,irq=10"])
            .arg("-kernel")
            .arg(&self.kernel);
        if let Some(initrd) = &self.initrd {
            cmd = cmd.arg("-initrd").arg(initrd);
        }
        cmd = cmd.args(["-append", &self.append]).args([
            "-action",
            "panic=exit-failure",
            "-no-reboot",
        ]);
        if self.gdb {
            cmd = cmd.args(["-s", "-S"]);
        }
        cmd.args(&self.extra)
    }
}

/// QEMU arguments for a virtio console behind a PHB whose output goes to the
/// file `path`: a PHB (`-nodefaults` leaves none) with its root port, a
/// virtio-serial controller and a console port. The hypervisor finds it at boot
/// and moves the machine console's output there (docs/console.md); skiboot's
/// messages and the hypervisor's first lines stay on the UART.
pub fn virtio_console_args(path: &Path) -> Vec<String> {
    [
        "-device",
        "pnv-phb,chip-id=0,index=0,id=pcie.0",
        "-device",
        "pnv-phb-root-port,bus=pcie.0,id=rp0",
        "-device",
        "virtio-serial-pci,bus=rp0,id=vserial0,iommu_platform=on",
        "-chardev",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("file,id=vcon0,path={}", path.display()),
        "-device".to_string(),
        "virtconsole,chardev=vcon0".to_string(),
    ])
    .collect()
}

/// A PCI function passed through to a partition (docs/passthrough.md): QEMU
/// gets it behind its own PHB (chip 0, index `i + 1` for the i-th device, so
/// index 0 stays free for the virtio console) and its root port, which puts it
/// at `000<i+1>:01:00.0` (skiboot's `ibm,opal-phbid` is the PHB index on chip
/// 0; Linux and the manifest use it as the PCI domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassDevice {
    /// `virtio-blk-pci` over a raw image, modern only and behind the PHB's
    /// IOMMU (`iommu_platform=on,disable-legacy=on`).
    VirtioBlk(PathBuf),
    /// `nvme` over a raw image.
    Nvme(PathBuf),
    /// `e1000e` on QEMU hub `n` (hubs join the partitions' NICs to each other
    /// only, never to the host network).
    E1000e(u32),
}

impl PassDevice {
    /// `virtio-blk:FILE`, `nvme:FILE` or `e1000e:HUB`.
    pub fn parse(s: &str) -> Result<PassDevice> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let bad = || usage!("--passthrough `{s}`: want virtio-blk:FILE, nvme:FILE or e1000e:HUB");
        match kind {
            "virtio-blk" if !arg.is_empty() => Ok(PassDevice::VirtioBlk(arg.into())),
            "nvme" if !arg.is_empty() => Ok(PassDevice::Nvme(arg.into())),
            "e1000e" => Ok(PassDevice::E1000e(if arg.is_empty() {
                0
            } else {
                arg.parse().map_err(|_| bad())?
            })),
            _ => Err(bad()),
        }
    }
}

/// The manifest name (`DDDD:BB:DD.F`) of the `i`-th passed-through device.
pub fn passthrough_address(i: usize) -> String {
    format!("{:04x}:01:00.0", i + 1)
}

/// QEMU arguments for `devs` (see [`PassDevice`]).
pub fn passthrough_args(devs: &[PassDevice]) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut hubs: Vec<u32> = Vec::new();
    for (i, d) in devs.iter().enumerate() {
        let (phb, rp) = (format!("ptphb{i}"), format!("ptrp{i}"));
        a.push("-device".into());
        a.push(format!("pnv-phb,chip-id=0,index={},id={phb}", i + 1));
        a.push("-device".into());
        a.push(format!("pnv-phb-root-port,bus={phb},id={rp}"));
        match d {
            PassDevice::VirtioBlk(path) | PassDevice::Nvme(path) => {
                a.push("-drive".into());
                a.push(format!(
                    "file={},if=none,id=ptdisk{i},format=raw",
                    path.display()
                ));
                a.push("-device".into());
                a.push(match d {
                    PassDevice::VirtioBlk(_) => format!(
                        "virtio-blk-pci,bus={rp},drive=ptdisk{i},iommu_platform=on,disable-legacy=on"
                    ),
                    _ => format!("nvme,bus={rp},drive=ptdisk{i},serial=paprika{i}"),
                });
            }
            PassDevice::E1000e(hub) => {
                if !hubs.contains(hub) {
                    hubs.push(*hub);
                }
                a.push("-netdev".into());
                a.push(format!("hubport,id=ptnet{i},hubid={hub}"));
                a.push("-device".into());
                a.push(format!(
                    "e1000e,bus={rp},netdev=ptnet{i},mac=52:54:00:00:01:{:02x}",
                    i + 1
                ));
            }
        }
    }
    a
}

/// Refuses a virtio PCI device without `iommu_platform=on` among QEMU's
/// arguments: its DMA would bypass the PHB (QEMU uses addresses as host
/// physical), so a partition given it could write anywhere.
pub fn refuse_unsafe_dma(args: &[String]) -> Result<()> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let spec = if a == "-device" {
            match it.next() {
                Some(s) => s.as_str(),
                None => break,
            }
        } else if let Some(s) = a.strip_prefix("-device=") {
            s
        } else {
            continue;
        };
        let mut parts = spec.split(',');
        let driver = parts.next().unwrap_or("");
        let is_virtio_pci = driver.starts_with("virtio-")
            && (driver.ends_with("-pci")
                || driver.ends_with("-pci-non-transitional")
                || driver.ends_with("-pci-transitional"));
        if is_virtio_pci && !parts.any(|p| p == "iommu_platform=on" || p == "iommu_platform=true") {
            return Err(usage!(
                "`-device {spec}`: a virtio PCI device needs iommu_platform=on (without \
                 it QEMU DMAs to host physical addresses, past the PHB's windows; \
                 docs/passthrough.md)"
            ));
        }
    }
    Ok(())
}

/// The word at byte `offset` of a pass-through test disk (little-endian
/// words; `tests/guests/pci` checks the same function).
pub fn disk_pattern(offset: u64) -> u32 {
    (offset as u32).wrapping_mul(0x9e37_79b1) ^ 0x5a5a_5a5a
}

/// Writes a raw disk image of `size` bytes filled with [`disk_pattern`].
pub fn write_disk_pattern(path: &Path, size: u64) -> Result<()> {
    let mut bytes = Vec::with_capacity(size as usize);
    for off in (0..size).step_by(4) {
        bytes.extend_from_slice(&disk_pattern(off).to_le_bytes());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).context(|| format!("writing {}", path.display()))
}

/// How a captured QEMU run ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// `None` when it was killed for running past the timeout.
    pub status: Option<ExitStatus>,
    pub wall: Duration,
}

impl Outcome {
    pub fn describe(&self, timeout: Duration) -> String {
        match self.status {
            Some(s) => describe_status(s),
            None => format!("timed out after {} s (QEMU killed)", timeout.as_secs()),
        }
    }

    /// The exit code, if QEMU exited by itself.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Kills a whole process group.
fn kill_group(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) only takes integers and touches no memory of ours; the
    // negative pid names the process group we created for the child.
    unsafe { kill(-pgid, SIGKILL) == 0 }
}

/// Where `run_captured` puts QEMU's own stderr for console log `log`:
/// `x.log` -> `x.stderr.log`. Kept apart so QEMU's messages (e.g. its register dump
/// on a checkstop) can't satisfy or spoil the checks on the console.
pub fn stderr_log(log: &Path) -> PathBuf {
    log.with_extension("stderr.log")
}

/// Runs `cmd` with stdin on /dev/null, stdout (the console) into `log` and stderr
/// into `stderr_log(log)`, in its own process group, killing the group after
/// `timeout`.
pub fn run_captured(cmd: &Cmd, log: &Path, timeout: Duration) -> Result<Outcome> {
    Ok(run_inner(cmd, log, timeout, None, &[])?.0)
}

/// Like [`run_captured`], but also kills QEMU's process group as soon as `marker`
/// appears on the console (for guests that spin instead of powering off). The
/// console is read from `log` as it grows, a chunk at a time, never all at once.
/// Returns how QEMU ended and whether `marker` was seen.
pub fn run_until(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    marker: &str,
) -> Result<(Outcome, bool)> {
    let (outcome, seen, _) = run_inner(cmd, log, timeout, Some(marker.as_bytes()), &[])?;
    Ok((outcome, seen))
}

/// One step of a console script: once `after` has appeared on the console
/// (anywhere in it since QEMU started, but only after the previous step was
/// typed), `send` is written to QEMU's stdin, which `-serial stdio` makes the
/// machine console's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    pub after: &'static str,
    pub send: &'static str,
}

/// Like [`run_captured`], but with stdin a pipe that `script` types into, step by
/// step, as the console (read from `log` as it grows) shows each step's marker.
/// Once the script is done stdin stays open (not at end of file) until QEMU
/// exits or the timeout kills it. Returns how QEMU ended and how many steps were
/// sent.
pub fn run_scripted(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    script: &[Input],
) -> Result<(Outcome, usize)> {
    let (outcome, _, sent) = run_inner(cmd, log, timeout, None, script)?;
    Ok((outcome, sent))
}

/// [`run_scripted`] and [`run_until`] at once: types `script`, and kills QEMU's
/// process group once `marker` appears. Returns how QEMU ended, whether
/// `marker` was seen and how many steps were sent.
pub fn run_scripted_until(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    marker: &str,
    script: &[Input],
) -> Result<(Outcome, bool, usize)> {
    run_inner(cmd, log, timeout, Some(marker.as_bytes()), script)
}

/// Writes each step's text once its marker shows up in the console.
struct Typist<'a> {
    script: &'a [Input],
    /// The next step.
    step: usize,
    /// The console so far, and where the next step's search resumes.
    history: Vec<u8>,
    from: usize,
    stdin: Option<std::process::ChildStdin>,
}

impl<'a> Typist<'a> {
    fn new(script: &'a [Input], stdin: Option<std::process::ChildStdin>) -> Self {
        Typist {
            script,
            step: 0,
            history: Vec::new(),
            from: 0,
            stdin,
        }
    }

    /// Takes the next chunk of console output; sends what became due.
    fn feed(&mut self, chunk: &[u8]) {
        use std::io::Write;
        if self.step >= self.script.len() || self.stdin.is_none() {
            return;
        }
        self.history.extend_from_slice(chunk);
        while let Some(input) = self.script.get(self.step) {
            let marker = input.after.as_bytes();
            let start = self.from.saturating_sub(marker.len());
            let found = marker.is_empty()
                || self.history[start..]
                    .windows(marker.len())
                    .any(|w| w == marker);
            if !found {
                self.from = self.history.len();
                return;
            }
            let sent = self.stdin.as_mut().is_some_and(|s| {
                s.write_all(input.send.as_bytes())
                    .and_then(|()| s.flush())
                    .is_ok()
            });
            if !sent {
                // QEMU is gone or closed its input: nothing more can be typed.
                self.stdin = None;
                return;
            }
            self.step += 1;
            // The next marker may already be anywhere on the console.
            self.from = 0;
        }
    }
}

fn run_inner(
    cmd: &Cmd,
    log: &Path,
    timeout: Duration,
    marker: Option<&[u8]>,
    script: &[Input],
) -> Result<(Outcome, bool, usize)> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;

    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let err_path = stderr_log(log);
    let out = File::create(log).context(|| format!("creating {}", log.display()))?;
    let err = File::create(&err_path).context(|| format!("creating {}", err_path.display()))?;
    let mut reader = if marker.is_some() || !script.is_empty() {
        Some(File::open(log).context(|| format!("reading {}", log.display()))?)
    } else {
        None
    };
    let mut stop = marker.map(MarkerScan::new);
    let typing = if script.is_empty() {
        String::new()
    } else {
        let steps: Vec<String> = script
            .iter()
            .map(|i| format!("after {:?} type {:?}", i.after, i.send))
            .collect();
        format!("\n  stdin: {}", steps.join("; "))
    };
    crate::progress::println_line(format!(
        "$ {} >{} 2>{}{typing}",
        cmd.display(),
        log.display(),
        err_path.display()
    ));
    let start = Instant::now();
    let stdin = if script.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut child = cmd
        .command()
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| failed!("cannot start `{}`: {e}", cmd.program()))?;
    let mut typist = Typist::new(script, child.stdin.take());
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let exited = child.try_wait()?;
        // Read what the console has grown by (after an exit too: the end of it).
        let mut seen = false;
        if let Some(reader) = reader.as_mut() {
            loop {
                let n = reader
                    .read(&mut chunk)
                    .context(|| format!("reading {}", log.display()))?;
                if n == 0 {
                    break;
                }
                typist.feed(&chunk[..n]);
                if stop.as_mut().is_some_and(|s| s.feed(&chunk[..n])) {
                    seen = true;
                    break;
                }
            }
        }
        if let Some(status) = exited {
            let outcome = Outcome {
                status: Some(status),
                wall: start.elapsed(),
            };
            return Ok((outcome, seen, typist.step));
        }
        let timed_out = start.elapsed() >= timeout;
        if seen || timed_out {
            if !kill_group(child.id()) {
                let _ = child.kill();
            }
            let status = child.wait().ok().filter(|_| seen);
            let outcome = Outcome {
                status,
                wall: start.elapsed(),
            };
            return Ok((outcome, seen, typist.step));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Looks for a byte string in a stream that arrives in chunks (it may straddle
/// two of them).
#[derive(Debug)]
struct MarkerScan {
    marker: Vec<u8>,
    /// The last `marker.len() - 1` bytes seen, then the new chunk.
    window: Vec<u8>,
    found: bool,
}

impl MarkerScan {
    fn new(marker: &[u8]) -> Self {
        MarkerScan {
            marker: marker.to_vec(),
            window: Vec::new(),
            found: false,
        }
    }

    /// Takes the next chunk; true once the marker has been seen.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        if !self.found {
            self.find_end(chunk);
        }
        self.found
    }

    /// Takes the next chunk; when the marker ends in it, the offset in `chunk`
    /// just past the marker (None before and, once found, after: each scan
    /// finds its marker once).
    fn find_end(&mut self, chunk: &[u8]) -> Option<usize> {
        if self.found {
            return None;
        }
        let m = self.marker.len();
        if m == 0 {
            self.found = true;
            return Some(0);
        }
        let carried = self.window.len();
        self.window.extend_from_slice(chunk);
        let at = self
            .window
            .windows(m)
            .position(|w| w == self.marker.as_slice());
        if let Some(at) = at {
            self.found = true;
            self.window.clear();
            // The window holds at most m - 1 carried bytes, so the match ends in `chunk`.
            return Some(at + m - carried);
        }
        let keep = m - 1;
        if self.window.len() > keep {
            self.window.drain(..self.window.len() - keep);
        }
        None
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut s = lines[start..].join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_devices_and_their_qemu_args() {
        assert_eq!(
            PassDevice::parse("virtio-blk:d.img").unwrap(),
            PassDevice::VirtioBlk("d.img".into())
        );
        assert_eq!(
            PassDevice::parse("e1000e:3").unwrap(),
            PassDevice::E1000e(3)
        );
        assert_eq!(PassDevice::parse("e1000e").unwrap(), PassDevice::E1000e(0));
        assert!(PassDevice::parse("virtio-blk").is_err());
        assert!(PassDevice::parse("ide:x").is_err());
        let a = passthrough_args(&[PassDevice::VirtioBlk("d.img".into()), PassDevice::E1000e(0)]);
        let text = a.join(" ");
        assert!(
            text.contains("pnv-phb,chip-id=0,index=1,id=ptphb0"),
            "{text}"
        );
        assert!(
            text.contains(
                "virtio-blk-pci,bus=ptrp0,drive=ptdisk0,iommu_platform=on,disable-legacy=on"
            ),
            "{text}"
        );
        assert!(
            text.contains("pnv-phb,chip-id=0,index=2,id=ptphb1"),
            "{text}"
        );
        assert!(text.contains("-netdev hubport,id=ptnet1,hubid=0"), "{text}");
        assert!(!text.contains("user"), "never slirp: {text}");
        assert!(refuse_unsafe_dma(&a).is_ok());
        assert_eq!(passthrough_address(0), "0001:01:00.0");
    }

    #[test]
    fn virtio_without_iommu_platform_is_refused() {
        let args = |s: &str| vec!["-device".to_string(), s.to_string()];
        assert!(refuse_unsafe_dma(&args("virtio-blk-pci,drive=d")).is_err());
        assert!(refuse_unsafe_dma(&args("virtio-net-pci-non-transitional,netdev=n")).is_err());
        assert!(refuse_unsafe_dma(&args("virtio-blk-pci,drive=d,iommu_platform=off")).is_err());
        assert!(refuse_unsafe_dma(&args("virtio-blk-pci,drive=d,iommu_platform=on")).is_ok());
        assert!(refuse_unsafe_dma(&args("nvme,drive=d")).is_ok());
        assert!(refuse_unsafe_dma(&virtio_console_args(Path::new("x"))).is_ok());
        assert!(refuse_unsafe_dma(&["-device=virtio-scsi-pci".to_string()]).is_err());
    }

    #[test]
    fn disk_pattern_is_what_the_guest_checks() {
        // tests/guests/pci computes the same words.
        assert_eq!(disk_pattern(0), 0x5a5a_5a5a);
        assert_eq!(
            disk_pattern(4),
            4u32.wrapping_mul(0x9e37_79b1) ^ 0x5a5a_5a5a
        );
        let dir = std::env::temp_dir().join(format!("paprika-disk-{}", std::process::id()));
        let p = dir.join("d.img");
        write_disk_pattern(&p, 4096).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[8..12], &disk_pattern(8).to_le_bytes());
        // The whole scenario disk's MD5, which Linux checks
        // (scenarios::PT_DISK_MD5), when md5sum is there to say.
        let p = dir.join("full.img");
        write_disk_pattern(&p, crate::scenarios::PT_DISK_BYTES).unwrap();
        if let Ok(o) = std::process::Command::new("md5sum").arg(&p).output() {
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.starts_with(crate::scenarios::PT_DISK_MD5), "{out}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("1536M").unwrap(), 1536 << 20);
        assert_eq!(parse_size("512").unwrap(), 512 << 20);
        assert_eq!(parse_size("1048576K").unwrap(), 1 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        for bad in ["", "G", "2X", "0", "1.5G", "-1G", "100K", "99999999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(1536 << 20), "1536M");
    }

    #[test]
    fn smp() {
        assert_eq!(smp_arg(4, 1).unwrap(), "4");
        assert_eq!(smp_arg(8, 4).unwrap(), "8,cores=2,threads=4");
        assert!(smp_arg(6, 4).is_err());
        assert!(smp_arg(0, 1).is_err());
    }

    #[test]
    fn command_line() {
        let cfg = QemuConfig {
            machine: Machine::Powernv10,
            memory_bytes: 2 << 30,
            smp: "4".into(),
            kernel: "/k".into(),
            initrd: Some("/b.cpio".into()),
            append: String::new(),
            gdb: true,
            console: Console::Detached,
            extra: vec!["-d".into(), "int".into()],
        };
        assert_eq!(
            cfg.command().display(),
            "qemu-system-ppc64 -M powernv10 -m 2G -smp 4 -nographic -nodefaults -serial stdio \
             -device ipmi-bmc-sim,id=bmc0 -device isa-ipmi-bt,bmc=bmc0,irq=10 -kernel /k \
             -initrd /b.cpio -append '' -action panic=exit-failure -no-reboot -s -S -d int"
        );
    }

    #[test]
    fn timeout_kills_the_process_group() {
        // A shell whose child would outlive a plain kill of the shell.
        let cmd = Cmd::new("sh").args(["-c", "sleep 30 & echo started; wait"]);
        let log = std::env::temp_dir().join(format!("xtask-timeout-{}.log", std::process::id()));
        let out = run_captured(&cmd, &log, Duration::from_millis(300)).unwrap();
        assert!(out.status.is_none());
        assert!(out.wall < Duration::from_secs(10));
        assert!(std::fs::read_to_string(&log).unwrap().contains("started"));

        let cmd = Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_captured(&cmd, &log, Duration::from_secs(10)).unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\n");
        assert_eq!(std::fs::read_to_string(stderr_log(&log)).unwrap(), "err\n");
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(stderr_log(&log));
    }

    #[test]
    fn run_until_stops_at_the_marker() {
        let log = std::env::temp_dir().join(format!("xtask-until-{}.log", std::process::id()));
        // The marker split across two writes, then a process that would spin on.
        let cmd = Cmd::new("sh").args([
            "-c",
            "printf 'a\\nBENCH-'; sleep 0.2; printf 'DONE\\n'; sleep 30 & wait",
        ]);
        let (out, seen) = run_until(&cmd, &log, Duration::from_secs(20), "BENCH-DONE").unwrap();
        assert!(seen);
        assert!(out.wall < Duration::from_secs(10), "{:?}", out.wall);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nBENCH-DONE\n");

        let cmd = Cmd::new("sh").args(["-c", "echo nothing; sleep 30"]);
        let (out, seen) = run_until(&cmd, &log, Duration::from_millis(300), "DONE").unwrap();
        assert!(!seen);
        assert!(out.status.is_none());

        let cmd = Cmd::new("sh").args(["-c", "echo DONE; exit 4"]);
        let (out, _) = run_until(&cmd, &log, Duration::from_secs(10), "NEVER").unwrap();
        assert_eq!(out.code(), Some(4));
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(stderr_log(&log));
    }

    #[test]
    fn script_types_after_each_marker() {
        let log = std::env::temp_dir().join(format!("xtask-script-{}.log", std::process::id()));
        // A "console" that prints a prompt, reads a line, evaluates it like a
        // shell would, then waits for a second line before exiting with its length.
        let cmd = Cmd::new("sh").args([
            "-c",
            "printf 'boot\\nREA'; sleep 0.2; printf 'DY\\n'; read a; eval \"$a\"; \
             read b; echo \"got $b\"; exit ${#b}",
        ]);
        let script = [
            Input {
                after: "READY",
                send: "echo typed-$((6*7))\n",
            },
            Input {
                after: "typed-42",
                send: "bye\n",
            },
        ];
        let (out, sent) = run_scripted(&cmd, &log, Duration::from_secs(20), &script).unwrap();
        assert_eq!(sent, 2);
        assert_eq!(out.code(), Some(3));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "boot\nREADY\ntyped-42\ngot bye\n"
        );

        // A marker that never shows: nothing typed, stdin stays open (no EOF),
        // the timeout ends it.
        let cmd = Cmd::new("sh").args(["-c", "echo waiting; read a; echo \"read $a\""]);
        let script = [Input {
            after: "NEVER",
            send: "x\n",
        }];
        let (out, sent) = run_scripted(&cmd, &log, Duration::from_millis(500), &script).unwrap();
        assert_eq!(sent, 0);
        assert!(out.status.is_none());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "waiting\n");

        // Typed, then killed at the marker its input produced.
        let cmd = Cmd::new("sh").args(["-c", "echo go; read a; echo \"DONE $a\"; sleep 30"]);
        let script = [Input {
            after: "go",
            send: "x\n",
        }];
        let (out, seen, sent) =
            run_scripted_until(&cmd, &log, Duration::from_secs(20), "DONE x", &script).unwrap();
        assert!(seen);
        assert_eq!(sent, 1);
        assert!(out.wall < Duration::from_secs(20));
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(stderr_log(&log));
    }

    #[test]
    fn marker_scan_finds_where_the_marker_ends() {
        let mut s = MarkerScan::new(b"ABC");
        assert_eq!(s.find_end(b"xxA"), None);
        assert_eq!(s.find_end(b"BCyy"), Some(2));
        // Found once.
        assert_eq!(s.find_end(b"ABC"), None);
        let mut s = MarkerScan::new(b"ABC");
        assert_eq!(s.find_end(b"zABCABC"), Some(4));
        let mut s = MarkerScan::new(b"");
        assert_eq!(s.find_end(b"q"), Some(0));
    }

    #[test]
    fn marker_scan_across_chunks() {
        let mut s = MarkerScan::new(b"BENCH-DONE");
        assert!(!s.feed(b"xxBENCH"));
        assert!(!s.feed(b"-DO"));
        assert!(s.feed(b"NE\n"));
        assert!(s.feed(b"more"));
        let mut s = MarkerScan::new(b"AB");
        assert!(!s.feed(b"A"));
        assert!(!s.feed(b"xA"));
        assert!(s.feed(b"B"));
        let mut s = MarkerScan::new(b"DONE");
        assert!(!s.feed(b""));
        assert!(!s.feed(b"DON"));
        assert!(!s.feed(b"e"));
    }

    #[test]
    fn stderr_log_sits_beside_the_console_log() {
        assert_eq!(
            stderr_log(Path::new("/t/scenarios/boot-p9-1t.log")),
            Path::new("/t/scenarios/boot-p9-1t.stderr.log")
        );
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\n", 5), "a\n");
    }
}
