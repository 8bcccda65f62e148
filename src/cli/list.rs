//! `passthru list`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// Run `passthru list`.
pub fn run(_g: &Global, _a: &ListArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`list` is not implemented yet")
}
