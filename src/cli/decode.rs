//! `passthru decode`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {}

/// Run `passthru decode`.
pub fn run(_g: &Global, _a: &DecodeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`decode` is not implemented yet")
}
