//! xtask: Paprika's build, run, test and bench tool (`cargo xtask <command>`).
//!
//! Plain std Rust. Every external command is printed, prefixed with `$ `, before
//! it runs.

mod args;
mod bench;
mod build;
mod cmd;
mod elf;
mod error;
mod guests;
mod linux;
mod linux_bench;
mod lpar_bench;
mod nested_bench;
mod partitions;
mod qemu;
mod run;
mod scenarios;
mod setup;
mod test;

use std::path::PathBuf;
use std::sync::OnceLock;

use args::Args;
use error::{usage, Result};

const HELP: &str = "\
xtask: build, run, test and benchmark the Paprika hypervisor

Usage: cargo xtask <command> [options]

Commands:
  setup    check for the tools Paprika needs; install missing ones (Debian 12, root)
  build    cross-build the hypervisor ELF (and with --guests the test guests)
  run      build, then boot it under QEMU (powernv9/powernv10), console here;
           with --manifest FILE or --kernel PATH, with partitions
  linux    fetch Debian's ppc64el kernel and busybox, build an initramfs
           (target/linux/); `run --linux` boots them
  test     fmt, clippy, host unit tests, POWER builds and QEMU boot scenarios
  bench    boot a release build per machine and print timing and size figures;
           time hcalls in a partition against QEMU -M pseries
  help     this text; `cargo xtask help <command>` or `<command> --help` for more

Every external command is printed before it runs, prefixed with `$ `.
";

/// The repository root (the workspace directory above xtask/).
pub fn repo_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .filter(|d| d.join("Cargo.toml").is_file() && d.ends_with("xtask"))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        manifest_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or(manifest_dir)
    })
    .clone()
}

fn command_help(name: &str) -> Option<String> {
    Some(match name {
        "setup" => setup::HELP.to_string(),
        "build" => build::HELP.to_string(),
        "run" => run::HELP.to_string(),
        "linux" => linux::HELP.to_string(),
        "test" => test::help(),
        "bench" => bench::HELP.to_string(),
        "help" => HELP.to_string(),
        _ => return None,
    })
}

fn dispatch(argv: &[String]) -> Result<i32> {
    let Some((command, rest)) = argv.split_first() else {
        print!("{HELP}");
        return Ok(0);
    };
    match command.as_str() {
        "-h" | "--help" => {
            print!("{HELP}");
            return Ok(0);
        }
        "help" => {
            match rest.first() {
                None => print!("{HELP}"),
                Some(c) => print!(
                    "{}",
                    command_help(c).ok_or_else(|| usage!("unknown command `{c}`"))?
                ),
            }
            return Ok(0);
        }
        _ => {}
    }
    let Some(help) = command_help(command) else {
        return Err(usage!("unknown command `{command}`"));
    };
    let (name, main): (&'static str, fn(Args) -> Result<i32>) = match command.as_str() {
        "setup" => ("setup", setup::main),
        "build" => ("build", build::main),
        "run" => ("run", run::main),
        "linux" => ("linux", linux::main),
        "test" => ("test", test::main),
        "bench" => ("bench", bench::main),
        _ => return Err(usage!("unknown command `{command}`")),
    };
    let args = Args::new(name, rest);
    if args.wants_help() {
        print!("{help}");
        return Ok(0);
    }
    main(args)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match dispatch(&argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
