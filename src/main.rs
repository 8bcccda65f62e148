//! The `passthru` command-line tool: parses flags, calls the layers, prints.
//!
//! Exit status: 0 when no checked device fails, 1 when one fails, 2 on usage or
//! input errors (clap's own usage errors exit 2 as well); 141 (as a SIGPIPE would
//! give) when standard output is closed before the output is written, quietly,
//! after every guard has been dropped (a device bound for `verify --bind` is
//! given back first).
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The `passthru trial` guest's /init (docs/trial.md); a container running passthru
    // as its pid 1 has no trial request and stays the CLI.
    if passthru::trial::guest::is_trial_init() {
        passthru::trial::guest::main();
    }
    // `--json` anywhere on the command line: errors are JSON too, even usage errors.
    let json = std::env::args_os().any(|a| a == "--json");
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) if json && e.use_stderr() => {
            cli::print_json_error("usage", &e.to_string(), None);
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) if json => {
            let (kind, path) = cli::error_kind_and_path(&e);
            cli::print_json_error(kind, &format!("{e:#}"), path);
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("passthru: {e:#}");
            ExitCode::from(2)
        }
    }
}
