//! Snapshots: copy exactly what [`Host::load`] reads from a root into a new
//! directory that works as a root itself (same relative symlinks, file contents,
//! binary `config`), so a machine can be attached to a bug report and replayed.
//!
//! Files whose presence is all the model looks at (`rom`, ACPI tables, device
//! nodes such as `dev/vfio/vfio`) become empty regular files; directories the
//! model lists keep every entry name (unread entries become empty files or
//! directories). Files the loader could not read are not copied.

use crate::error::{Error, Result};
use crate::load::load_inner;
use crate::model::Host;
use crate::sysfs::{Kind, Trace};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// What a snapshot wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Regular files with content.
    pub files: usize,
    /// Symbolic links.
    pub links: usize,
    /// Directories and presence-only entries.
    pub others: usize,
    /// Bytes of file content.
    pub bytes: u64,
    /// Taken with root privileges (as the source snapshot says, for a snapshot of
    /// a snapshot); without them the facts are partial.
    pub as_root: bool,
}

/// The file a snapshot writes at its top, saying how it was taken (`key=value` lines).
pub const MARKER: &str = "passthru-snapshot";

/// How a snapshot was taken, as its [`MARKER`] file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// Taken with root privileges. Without them the kernel shows only the first 64
    /// bytes of each config space (no capabilities: FLR, PM, ACS unknown), hides
    /// other users' open files, and some `/etc` files may be unreadable.
    pub as_root: bool,
    /// The passthru version that took it.
    pub version: String,
}

impl SnapshotInfo {
    /// The marker's text.
    fn to_text(&self) -> String {
        format!(
            "# written by passthru snapshot: how this snapshot was taken\nas_root={}\nversion={}\n",
            if self.as_root { "yes" } else { "no" },
            self.version
        )
    }

    /// Parse a marker's text; `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<SnapshotInfo> {
        let mut as_root = None;
        let mut version = String::new();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("as_root", "yes")) => as_root = Some(true),
                Some(("as_root", "no")) => as_root = Some(false),
                Some(("version", v)) => version = v.to_string(),
                _ => {}
            }
        }
        Some(SnapshotInfo {
            as_root: as_root?,
            version,
        })
    }
}

/// Load the host under `root` and copy what was read into `out` (which must not
/// exist or be an empty directory), with a [`MARKER`] saying whether it was taken
/// as root. Returns the model as the snapshot holds it (as loaded, with
/// [`Host::snapshot`] saying how it was taken) and what was written.
///
/// # Errors
///
/// The errors of [`Host::load`] for `root`; [`Error::Write`] naming the path when `out`
/// exists and is not an empty directory, or when a file of the snapshot cannot be written.
pub fn snapshot(root: &Path, out: &Path) -> Result<(Host, SnapshotStats)> {
    match fs::read_dir(out) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::Write {
                    path: out.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "directory is not empty",
                    ),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Write {
                path: out.to_path_buf(),
                source,
            })
        }
    }
    let (mut host, trace) = load_inner(root, true)?;
    let mut trace = trace.unwrap_or_default();
    // A snapshot of a snapshot: its own marker replaces the old one.
    trace.files.remove(Path::new(MARKER));
    let mut stats = write_trace(&trace, out)?;
    // Whether the facts are whole: as the source snapshot says, else who we are.
    let as_root = host
        .snapshot
        .as_ref()
        .map_or(rustix::process::geteuid().is_root(), |s| s.as_root);
    let info = SnapshotInfo {
        as_root,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let marker = out.join(MARKER);
    fs::write(&marker, info.to_text()).map_err(werr(&marker))?;
    stats.as_root = as_root;
    host.snapshot = Some(info);
    Ok((host, stats))
}

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn parent_dirs(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(werr(parent))?;
    }
    Ok(())
}

fn write_trace(t: &Trace, out: &Path) -> Result<SnapshotStats> {
    let mut st = SnapshotStats::default();
    fs::create_dir_all(out).map_err(werr(out))?;
    for (rel, kind) in &t.seen {
        if t.files.contains_key(rel) || t.links.contains_key(rel) {
            continue;
        }
        let p = out.join(rel);
        match kind {
            Kind::Dir => fs::create_dir_all(&p).map_err(werr(&p))?,
            _ => {
                parent_dirs(&p)?;
                if fs::symlink_metadata(&p).is_err() {
                    fs::write(&p, b"").map_err(werr(&p))?;
                }
            }
        }
        st.others += 1;
    }
    for (rel, bytes) in &t.files {
        let p = out.join(rel);
        parent_dirs(&p)?;
        fs::write(&p, bytes).map_err(werr(&p))?;
        st.files += 1;
        st.bytes += bytes.len() as u64;
    }
    for (rel, target) in &t.links {
        let p = out.join(rel);
        parent_dirs(&p)?;
        if let Ok(md) = fs::symlink_metadata(&p) {
            if md.is_dir() {
                // A listing saw a directory where resolution saw a link: keep the link.
                fs::remove_dir_all(&p).map_err(werr(&p))?;
            } else {
                fs::remove_file(&p).map_err(werr(&p))?;
            }
        }
        symlink(target, &p).map_err(werr(&p))?;
        st.links += 1;
    }
    Ok(st)
}
