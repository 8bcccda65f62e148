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

/// An error as JSON on standard output: `{"error": {"kind", "message", "path"}}`.
pub fn print_json_error(kind: &str, message: &str, path: Option<String>) {
    let v = passthru::report::ErrorReport::new(kind, message.trim_end(), path);
    // Standard output may be gone too; nothing more to say then.
    let _ = write_out(format_args!(
        "{}\n",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    ));
}

/// What failed (`unknown-device`: a requested device the host lacks; `host`: reading the
/// host; `config`: configuration files; `vfio`: the VFIO device; `input`: anything else
/// the user gave), and the path it names if any.
pub fn error_kind_and_path(e: &anyhow::Error) -> (&'static str, Option<String>) {
    use passthru_config_gen::Error as C;
    use passthru_iommu_groups::Error as H;
    use passthru_vfio_core::Error as V;
    let show = |p: &std::path::Path| Some(p.display().to_string());
    for c in e.chain() {
        if c.downcast_ref::<fleet::UsageError>().is_some() {
            return ("usage", None);
        }
        if let Some(h) = c.downcast_ref::<H>() {
            let path = match h {
                // The root itself (or its missing PCI bus): the real directory.
                H::Root { path, .. } | H::NoPciBus { path } => show(path),
                // A file the root shows, by its system path, as the message names it.
                H::Io { path, .. }
                | H::Escape { path }
                | H::SymlinkLoop { path }
                | H::TooLarge { path, .. }
                | H::NotUtf8 { path }
                | H::Garbage { path, .. } => Some(passthru_iommu_groups::system_path(path)),
                _ => None,
            };
            // A finding-like code where the error has one (`unknown-device`).
            return (h.code().unwrap_or("host"), path);
        }
        if let Some(x) = c.downcast_ref::<C>() {
            let path = match x {
                C::Read { path, .. }
                | C::Write { path, .. }
                | C::Syntax { path, .. }
                | C::NotText { path, .. }
                | C::Unreadable { path, .. }
                | C::Backup { path, .. } => show(path),
                _ => None,
            };
            return ("config", path);
        }
        if let Some(v) = c.downcast_ref::<V>() {
            // The system path (`/dev/vfio/16`), as verify's messages name it.
            return ("vfio", v.path().map(|p| p.to_string()));
        }
    }
    ("input", None)
}

pub mod check;
pub mod config;
pub mod decode;
pub mod fleet;
pub mod labels;
pub mod list;
pub mod mapping;
pub mod snapshot;
pub mod trial;
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
    /// Repeat it once per node for `check` and `config --guest proxmox-mapping`.
    #[arg(long = "root", global = true, value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// A directory of snapshots, one node per subdirectory (each holds the
    /// `passthru-snapshot` marker): for `check` and `config --guest proxmox-mapping`.
    #[arg(long, global = true, value_name = "DIR")]
    pub roots_dir: Option<PathBuf>,
    /// The one host the command reads: the only `--root`, else `/` (set by [`run`]).
    #[arg(skip = PathBuf::from("/"))]
    pub root: PathBuf,
    /// Print machine-readable JSON instead of the human report (errors too, as
    /// `{"error": {...}}` on standard output).
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour the human report (NO_COLOR counts under `auto`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: check::report_style::ColorChoice,
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
    /// Write the verdicts as Node Feature Discovery labels (NFD's features.d file).
    Labels(labels::LabelsArgs),
    /// Pass the device through to a throwaway guest N times and judge each boot.
    Trial(trial::TrialArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff) generated from these definitions.
    Man,
}

/// Arguments of `passthru completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Dispatch a parsed command line.
pub fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    fleet::settle_roots(&mut cli.global, &cli.command)?;
    let g = &cli.global;
    check::report_style::set_color(g.color);
    match &cli.command {
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "passthru", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
            out!("{}", String::from_utf8_lossy(&buf))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Decode(a) => decode::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Snapshot(a) => snapshot::run(g, a),
        Command::Verify(a) => verify::run(g, a),
        Command::Config(a) => config::run(g, a),
        Command::Labels(a) => labels::run(g, a),
        Command::Trial(a) => trial::run(g, a),
    }
}
