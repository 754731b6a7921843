//! `cargo xtask run`: build, then boot under QEMU in the foreground.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::args::Args;
use crate::build::{self, BuildOpts, Profile};
use crate::error::{failed, Result};
use crate::qemu::{self, Console, Machine, QemuConfig};
use crate::setup;

pub const HELP: &str = "\
cargo xtask run [options] [-- QEMU ARGS...]

Builds the hypervisor, then boots it with skiboot under
`qemu-system-ppc64 -M powernv9|powernv10` in the foreground, console on this
terminal. Exits with QEMU's exit status: 0 when the hypervisor powered the
machine off after success, 1 when it stopped the machine on a failure.

On a terminal the console and QEMU's monitor share stdio: Ctrl-A X quits QEMU,
Ctrl-A C switches to the monitor and back. Without a terminal on stdin the
console goes to stdout only and stdin is not read.

Options:
  --machine M        powernv9 (default) or powernv10
  --smp N            hardware threads in total (default 4)
  --threads T        threads per core (default 1): -smp N,cores=N/T,threads=T
  --memory SIZE      RAM, e.g. 1G, 1536M (default 2G)
  --release          boot a release build
  --features LIST    cargo features of the build (e.g. fault-test)
  --append STR       kernel command line (QEMU -append)
  --gdb              QEMU waits for a debugger on tcp::1234 (-s -S)
  --kernel ELF       boot this ELF instead of building
  -- ARGS...         passed to QEMU as they are (e.g. -- -d int,guest_errors)
";

pub fn main(mut args: Args) -> Result<i32> {
    let machine = Machine::parse(&args.value("--machine")?.unwrap_or("powernv9".into()))?;
    let smp_n = args.number::<u32>("--smp")?.unwrap_or(4);
    let threads = args.number::<u32>("--threads")?.unwrap_or(1);
    let memory = qemu::parse_size(&args.value("--memory")?.unwrap_or("2G".into()))?;
    let release = args.flag("--release");
    let features = build::split_features(&args.values("--features")?);
    let append = args.value("--append")?.unwrap_or_default();
    let gdb = args.flag("--gdb");
    let kernel = args.value("--kernel")?.map(PathBuf::from);
    let extra = args.finish()?;
    let smp = qemu::smp_arg(smp_n, threads)?;

    if kernel.is_some() && (release || !features.is_empty()) {
        return Err(crate::error::usage!(
            "--kernel boots a given ELF; --release and --features only choose what to build"
        ));
    }
    let kernel = match kernel {
        Some(k) => {
            if !k.is_file() {
                return Err(failed!("--kernel {}: no such file", k.display()));
            }
            setup::ensure_tools()?;
            k
        }
        None => {
            setup::ensure_tools()?;
            let profile = if release {
                Profile::Release
            } else {
                Profile::Debug
            };
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            build::build(&BuildOpts::new(profile, &features))?
        }
    };

    let console = if std::io::stdin().is_terminal() {
        Console::Terminal
    } else {
        Console::Detached
    };
    let cfg = QemuConfig {
        machine,
        memory_bytes: memory,
        smp,
        kernel,
        append,
        gdb,
        console,
        extra,
    };
    let cmd = cfg.command();
    if gdb {
        println!(
            "QEMU waits for a debugger: `target remote :1234` from a gdb that knows powerpc64 \
             (e.g. gdb-multiarch) with `file {}`",
            cfg.kernel.display()
        );
    }
    if console == Console::Terminal {
        println!("(Ctrl-A X quits QEMU)");
    }
    cmd.echo();
    let mut command = cmd.command();
    if console == Console::Detached {
        command.stdin(std::process::Stdio::null());
    }
    let status = command
        .status()
        .map_err(|e| failed!("cannot start `{}`: {e}", cmd.program()))?;
    match status.code() {
        Some(code) => {
            println!("QEMU exited with status {code}");
            Ok(code)
        }
        None => Err(failed!(
            "QEMU ended with {}",
            crate::cmd::describe_status(status)
        )),
    }
}
