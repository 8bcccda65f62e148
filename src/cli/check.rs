//! `passthru check`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru check`.
#[derive(Debug, Args)]
pub struct CheckArgs {}

/// Run `passthru check`.
pub fn run(_g: &Global, _a: &CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`check` is not implemented yet")
}
