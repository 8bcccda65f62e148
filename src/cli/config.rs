//! `passthru config`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {}

/// Run `passthru config`.
pub fn run(_g: &Global, _a: &ConfigArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`config` is not implemented yet")
}
