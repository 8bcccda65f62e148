//! `passthru verify`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Run `passthru verify`.
pub fn run(_g: &Global, _a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`verify` is not implemented yet")
}
