//! xtask: Paprika's build, run, test and bench tool (`cargo xtask <command>`).
//!
//! The command line is parsed by `clap` (module `cli`). Every external command is printed, prefixed with `$ `, before
//! it runs.

mod bench;
mod build;
mod cli;
mod cmd;
mod debian;
mod disk_bench;
mod elf;
mod error;
mod guests;
mod linux;
mod linux_bench;
mod lpar_bench;
mod manifest;
mod msi_bench;
mod nested_bench;
mod partitions;
mod pnor;
mod progress;
mod qemu;
mod run;
mod scenarios;
mod setup;
mod test;
mod veth_bench;

use std::path::PathBuf;
use std::sync::OnceLock;

use cli::Command;

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

fn dispatch(command: Command) -> error::Result<i32> {
    match command {
        Command::Setup(args) => setup::main(args),
        Command::Build(args) => build::main(args),
        Command::Run(args) => run::main(*args),
        Command::Linux(args) => linux::main(args),
        Command::Test(args) => test::main(args),
        Command::Bench(args) => bench::main(args),
    }
}

fn main() {
    let result = match cli::parse().command {
        Some(command) => dispatch(command),
        None => cli::print_help().map(|()| 0),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
