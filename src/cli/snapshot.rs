//! `passthru snapshot OUT_DIR`: copy what passthru reads from the host under
//! `--root` into OUT_DIR, replayable with `--root OUT_DIR`; the root's `pci.ids`
//! goes along so names replay too.

use super::Global;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `passthru snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Directory to create (must not exist, or be empty).
    #[arg(value_name = "OUT_DIR")]
    pub out_dir: PathBuf,
}

/// Run `passthru snapshot`.
pub fn run(g: &Global, a: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    let (host, st) = passthru_iommu_groups::snapshot(&g.root, &a.out_dir).with_context(|| {
        format!(
            "snapshot of {} into {}",
            g.root.display(),
            a.out_dir.display()
        )
    })?;
    // The names `list`/`check` print come from the root's pci.ids: carry it along.
    if let Some((src, sys)) = super::list::list_names::root_db_path(&g.root) {
        let dst = a.out_dir.join(sys.trim_start_matches('/'));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(&src, &dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    }
    let as_root = st.as_root;
    let notes: Vec<String> = host
        .notes
        .iter()
        .map(|n| {
            format!(
                "{}: {}",
                passthru_iommu_groups::system_path(&n.path),
                n.message
            )
        })
        .collect();
    if g.json {
        let out = passthru::report::SnapshotReport::new(&a.out_dir, &host, &st, notes);
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        for n in &notes {
            eprintln!("passthru: note: {n}");
        }
        outln!(
            "wrote {} files ({} bytes), {} links and {} directories/markers to {}: {} devices, {} IOMMU groups",
            st.files,
            st.bytes,
            st.links,
            st.others,
            a.out_dir.display(),
            host.devices.len(),
            host.groups.len()
        )?;
        if !as_root {
            outln!(
                "taken without root privileges: config spaces past 64 bytes (FLR, PM, ACS) and \
                 other users' open files were not visible, so the facts are partial (the \
                 snapshot's {} file says so); take it again as root for a whole picture",
                passthru_iommu_groups::snapshot::MARKER
            )?;
        }
        outln!("replay with: passthru --root {} check", a.out_dir.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
