//! `passthru labels`: write the Node Feature Discovery feature file (docs/labels.md).
//!
//! The file goes to `--root` + `/etc/kubernetes/node-feature-discovery/features.d/passthru`
//! (NFD's local source reads that directory), or to `--output PATH`; `--stdout`
//! prints it instead. It is written atomically: a hidden temporary file in the same
//! directory (NFD skips names that start with a dot, so it never reads half a file),
//! flushed to disk, then renamed over the old one. The same host gives the same bytes,
//! except for the `# +expiry-time=` line that `--expiry` adds.

use super::Global;
use anyhow::Context;
use clap::Args;
use passthru::labels;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `passthru labels`.
#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// Write here instead of NFD's features.d under --root.
    #[arg(long, value_name = "PATH", conflicts_with = "stdout")]
    pub output: Option<PathBuf>,
    /// Print the file to standard output; write nothing.
    #[arg(long)]
    pub stdout: bool,
    /// Add `# +expiry-time=` this long from now (90s, 30m, 2h, 1d): NFD drops the
    /// labels when it passes without a newer run (an agent that died).
    #[arg(long, value_name = "DURATION", value_parser = labels::parse_duration)]
    pub expiry: Option<u64>,
}

/// The feature file's text for the host under `g.root`.
pub fn feature_file(g: &Global, expiry: Option<u64>) -> anyhow::Result<String> {
    let host = super::list::load_host(g)?;
    let reports = labels::slot_reports(&host)?;
    let ls = labels::labels(&host, &reports);
    let at = match expiry {
        Some(secs) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_secs();
            Some(labels::rfc3339(now.saturating_add(secs)))
        }
        None => None,
    };
    Ok(labels::render(&ls, at.as_deref()))
}

/// Where the file goes: `--output`, else NFD's features.d under `--root`.
pub fn target(g: &Global, a: &LabelsArgs) -> PathBuf {
    a.output.clone().unwrap_or_else(|| {
        g.root
            .join(labels::FEATURES_DIR.trim_start_matches('/'))
            .join(labels::FEATURE_FILE)
    })
}

/// Run `passthru labels`. Exit 0 whatever the verdicts (the labels carry them); 2 when
/// the host cannot be read or the file cannot be written.
pub fn run(g: &Global, a: &LabelsArgs) -> anyhow::Result<ExitCode> {
    let text = feature_file(g, a.expiry)?;
    if a.stdout {
        out!("{text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = target(g, a);
    // A hidden temporary file beside it (`.passthru.passthru-tmp`: NFD skips dot
    // files), flushed, renamed over it, the directory flushed.
    passthru::config_gen::apply::write_atomic(&path, text.as_bytes(), None, &mut |_| {})?;
    if g.json {
        // Through a `Value`: keys in name order, as this output has always had them.
        let v = serde_json::to_value(passthru::report::LabelsReport::new(&path, text.len()))?;
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        eprintln!("passthru: wrote {} ({} bytes)", path.display(), text.len());
    }
    Ok(ExitCode::SUCCESS)
}
