//! Command-line definitions and dispatch. Each command lives in its own module
//! with a `run(&Global, &Args) -> anyhow::Result<ExitCode>` entry point.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `print!` to standard output that returns the write error instead of
/// panicking (a closed pipe, `passthru list | head`): `out!(...)?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// `println!` to standard output that returns the write error: `outln!(...)?`.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Write to standard output; the error (with its kind) goes to the caller.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(args)
}

/// Whether `e` is a write to a closed pipe: the reader went away (`| head`),
/// which ends the command quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub mod check;
pub mod config;
pub mod decode;
pub mod list;
pub mod snapshot;
pub mod verify;

/// Will this PCI device pass through cleanly, and what must I configure?
#[derive(Debug, Parser)]
#[command(name = "passthru", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Read the host under this directory instead of `/` (a snapshot or a fixture tree).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Print machine-readable JSON instead of the human report.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a config space (raw sysfs `config` file or an lspci -x/-xxx/-xxxx dump).
    Decode(decode::DecodeArgs),
    /// List IOMMU groups and their devices, with names and drivers.
    List(list::ListArgs),
    /// Preflight verdict for devices (BDF, slot `0b:00`, or `vendor:device`); default: every display device.
    Check(check::CheckArgs),
    /// Copy what passthru reads from this host into OUT_DIR, usable later as `--root`.
    Snapshot(snapshot::SnapshotArgs),
    /// Open the device through VFIO as a VMM would: group, DMA map, config read, reset.
    Verify(verify::VerifyArgs),
    /// Generate host and guest configuration; dry run (diff) unless `--apply`.
    Config(config::ConfigArgs),
}

/// Dispatch a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Decode(a) => decode::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Snapshot(a) => snapshot::run(g, a),
        Command::Verify(a) => verify::run(g, a),
        Command::Config(a) => config::run(g, a),
    }
}
