//! `passthru snapshot`.

use super::Global;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `passthru snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {}

/// Run `passthru snapshot`.
pub fn run(_g: &Global, _a: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`snapshot` is not implemented yet")
}
