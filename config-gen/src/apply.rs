//! Writing a plan to disk without losing a byte, and undoing it.
//!
//! Order of writes (each one durable before the next: data fsynced, then renamed,
//! then the directory fsynced):
//! 1. a copy of every file about to change, under
//!    `<root>/var/lib/passthru/backups/<UTC timestamp>/files/...`;
//! 2. that set's `manifest` (written last, so a set without one is incomplete and
//!    ignored: no target was touched yet);
//! 3. each target, through a temporary file in its own directory and `rename(2)`.
//!
//! A crash (even `kill -9`) between any two steps therefore leaves every target
//! either old or new, never truncated, and a complete backup set whenever any target
//! changed. A stray `.NAME.passthru-tmp` may remain next to a target; the next run
//! replaces it.
//!
//! Symlinked targets are refused: replacing the link with a file would change what
//! the user set up. A target whose content changed since the plan was made is refused
//! as well, and so is anything but a regular file at a target (a FIFO, socket, device
//! node or directory is named in the error and never opened for reading).
//!
//! Each set also keeps the bytes the apply wrote (`applied/...`, before the
//! manifest). A rollback compares every target with them first: a file changed since
//! (the user edited it after the apply) is not overwritten unless forced, and then the
//! user's version is kept in the set (`user/...`) before the saved bytes go back.

use crate::{Error, FileChange, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where backup sets live, relative to the root.
pub const BACKUP_DIR: &str = "var/lib/passthru/backups";
/// Suffix given to a backup set once it has been rolled back.
pub const ROLLED_BACK: &str = ".rolled-back";

/// One durable step, reported to the hook of [`apply_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A temporary file is written and synced, not yet renamed over its target.
    TempWritten(PathBuf),
    /// A backup copy is in place.
    BackupWritten(PathBuf),
    /// The backup set's manifest is in place.
    ManifestWritten(PathBuf),
    /// A target now has its new content.
    TargetReplaced(PathBuf),
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// System paths written, in order.
    pub changed: Vec<String>,
    /// The backup set created (None when nothing changed).
    pub backup: Option<PathBuf>,
}

/// What [`rollback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The backup set used.
    pub backup: PathBuf,
    /// System paths restored to their saved bytes.
    pub restored: Vec<String>,
    /// System paths removed (they did not exist before the apply).
    pub removed: Vec<String>,
    /// Files changed since the apply and overwritten on `force`: system path and where
    /// the changed version was kept.
    pub kept: Vec<(String, PathBuf)>,
}

/// Subdirectory of a backup set holding the bytes the apply wrote.
const APPLIED: &str = "applied";
/// Subdirectory of a backup set holding files a forced rollback overwrote.
const USER: &str = "user";

/// What a file type is, in words, for errors about non-regular files.
fn kind_of(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, ft: &fs::FileType) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!(
            "{} where a regular file belongs: passthru neither reads nor replaces it (remove it or put a regular file there)",
            kind_of(ft)
        )),
    }
}

/// Read the regular file at `path` (`None` when absent). Anything else there (a FIFO,
/// a socket, a device node, a directory, a symbolic link) is an error naming the path
/// and what it is; it is never opened for reading (the open is non-blocking and does not
/// follow links, and the opened file is checked again, so a FIFO swapped in meanwhile
/// cannot hang the read either).
///
/// # Errors
///
/// Error::Read naming `path` when it cannot be opened or read (a missing file is
/// `Ok(None)`), or when it is not a regular file (the message says what it is).
pub fn read_regular(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let rerr = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(m) => return Err(not_regular(path, &m.file_type())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rerr(e)),
    }
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rerr(e)),
    };
    let m = f.metadata().map_err(rerr)?;
    if !m.file_type().is_file() {
        return Err(not_regular(path, &m.file_type()));
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut buf).map_err(rerr)?;
    Ok(Some(buf))
}

/// `path` (a system path such as `/etc/default/grub`) under `root`, literally.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Where the system path `path` lands under `root`: resolved by the host model's
/// confined layer (symbolic links followed as if `root` were `/`, never out of it).
fn confined(root: &Path, path: &str) -> Result<PathBuf> {
    let werr = |e: passthru_iommu_groups::Error| Error::Write {
        path: under(root, path),
        source: std::io::Error::other(e.to_string()),
    };
    passthru_iommu_groups::sysfs::Root::new(root)
        .and_then(|r| r.host_path(Path::new(path.trim_start_matches('/'))))
        .map_err(werr)
}

/// The backup directory, resolved inside `root` like every target.
fn backup_base(root: &Path) -> Result<PathBuf> {
    confined(root, BACKUP_DIR)
}

/// Where writing the system path `path` lands: its directory resolved inside `root`
/// (symbolic links followed as if `root` were `/`, never out of it), then its name
/// (the file itself is replaced by a rename, never written through a link).
fn target_of(root: &Path, path: &str) -> Result<PathBuf> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    Ok(confined(root, dir)?.join(name))
}

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(werr(dir))
}

fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(werr(dir)(e)),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replace `path` with `bytes` atomically: temp file in the same directory, fsync,
/// rename, fsync the directory. `mode` defaults to the old file's, else 0644.
///
/// # Errors
///
/// Error::Write naming the directory, the temporary file or `path` at the step that failed
/// (create, write, fsync, chmod, rename); `path` is then unchanged.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    hook: &mut dyn FnMut(Step),
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.passthru-tmp"));
    let mode = mode
        .or_else(|| {
            fs::metadata(path)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777)
        })
        .unwrap_or(0o644);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(werr(&tmp)(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(werr(&tmp))?;
    f.write_all(bytes).map_err(werr(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(werr(&tmp))?;
    f.sync_all().map_err(werr(&tmp))?;
    drop(f);
    hook(Step::TempWritten(path.to_path_buf()));
    fs::rename(&tmp, path).map_err(werr(path))?;
    sync_dir(dir)
}

/// A UTC timestamp `YYYYMMDDTHHMMSSZ` for now.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    read_regular(path)
}

/// Write every changed file of `files` under `root`, keeping a backup set. Files whose
/// disk content already equals the new content are skipped; when none changes, nothing
/// is written at all (no backup set either).
///
/// # Errors
///
/// As apply_with: a file that cannot be read or written, or a backup set that cannot be
/// made (Error::Read or Error::Write, naming the path).
pub fn apply(root: &Path, files: &[FileChange]) -> Result<Applied> {
    apply_with(root, files, &timestamp(), &mut |_| {})
}

/// Write `plan`'s files ([`apply`]) unless it has refusals: then nothing is written and
/// the error lists each conflict with its fix ([`crate::Plan::check_applicable`]).
///
/// # Errors
///
/// Error::Request listing every refusal of the plan (nothing is written); otherwise as
/// apply.
pub fn apply_plan(root: &Path, plan: &crate::Plan) -> Result<Applied> {
    plan.check_applicable()?;
    apply(root, &plan.files)
}

/// [`apply`] with an explicit timestamp and a hook called after every durable step
/// (tests use it to crash at a chosen point).
///
/// # Errors
///
/// Error::Read or Error::Write naming the file or backup path that failed; files written
/// before the failure stay written and are in the backup set, so a rollback undoes them.
pub fn apply_with(
    root: &Path,
    files: &[FileChange],
    stamp: &str,
    hook: &mut dyn FnMut(Step),
) -> Result<Applied> {
    // Check everything before writing anything.
    let mut todo = Vec::new();
    for f in files {
        let target = target_of(root, &f.path)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Request(format!("{} is a symbolic link; passthru does not replace links (edit the file it points to by hand)", target.display())));
        }
        let disk = read_opt(&target)?;
        if disk.as_deref() != f.old.as_deref().map(str::as_bytes) {
            return Err(Error::Request(format!(
                "{} changed on disk since it was read; run passthru config again",
                target.display()
            )));
        }
        if disk.as_deref() == Some(f.new.as_bytes()) {
            continue;
        }
        let mode = fs::metadata(&target)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        todo.push((f, target, disk, mode));
    }
    if todo.is_empty() {
        return Ok(Applied {
            changed: Vec::new(),
            backup: None,
        });
    }
    // 1-2. Backup set, manifest last.
    let base = backup_base(root)?;
    let mut set = base.join(stamp);
    let mut n = 1;
    while set.exists()
        || base
            .join(format!(
                "{}{ROLLED_BACK}",
                set.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))
            .exists()
    {
        n += 1;
        set = base.join(format!("{stamp}-{n:03}"));
    }
    let mut manifest = String::from("# passthru backup set: <existed|absent> <mode> <path>\n");
    for (f, _, _, mode) in &todo {
        // What this apply writes, for the rollback to tell a later edit from it.
        let copy = set.join(APPLIED).join(f.path.trim_start_matches('/'));
        write_atomic(&copy, f.new.as_bytes(), Some(mode.unwrap_or(0o644)), hook)?;
        hook(Step::BackupWritten(copy));
    }
    for (f, _, disk, mode) in &todo {
        match disk {
            Some(bytes) => {
                let copy = set.join("files").join(f.path.trim_start_matches('/'));
                write_atomic(&copy, bytes, *mode, hook)?;
                hook(Step::BackupWritten(copy));
                manifest.push_str(&format!("existed {:o} {}\n", mode.unwrap_or(0o644), f.path));
            }
            None => manifest.push_str(&format!("absent - {}\n", f.path)),
        }
    }
    let mpath = set.join("manifest");
    write_atomic(&mpath, manifest.as_bytes(), Some(0o600), hook)?;
    hook(Step::ManifestWritten(mpath));
    // 3. Targets.
    let mut changed = Vec::new();
    for (f, target, _, mode) in &todo {
        write_atomic(target, f.new.as_bytes(), *mode, hook)?;
        hook(Step::TargetReplaced(target.clone()));
        changed.push(f.path.clone());
    }
    Ok(Applied {
        changed,
        backup: Some(set),
    })
}

/// Every complete backup set not yet rolled back, oldest first.
fn live_sets(root: &Path) -> Result<Vec<PathBuf>> {
    let base = backup_base(root)?;
    let entries = match fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Read { path: base, source }),
    };
    let mut sets: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.to_string_lossy().ends_with(ROLLED_BACK) && p.join("manifest").is_file())
        .collect();
    sets.sort();
    Ok(sets)
}

/// The newest complete backup set not yet rolled back.
///
/// # Errors
///
/// Error::Read naming the backup directory when it cannot be listed.
pub fn last_backup(root: &Path) -> Result<Option<PathBuf>> {
    Ok(live_sets(root)?.pop())
}

/// The bytes passthru last wrote to the system path `path`: its copy in the newest
/// complete backup set that has one and was not rolled back (`None`: no such set).
///
/// # Errors
///
/// Error::Read naming the backup directory or file that cannot be read.
pub fn last_written(root: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    for set in live_sets(root)?.iter().rev() {
        if let Some(b) = read_regular(&set.join(APPLIED).join(path.trim_start_matches('/')))? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Lines the user put inside passthru's managed block (see [`crate::block`]) of a file
/// about to be rewritten: compared with what passthru last wrote there
/// ([`last_written`]), each line that is new in the block would be lost by the rewrite.
/// One `block-edited` warning per such line, naming file and line; nothing when no
/// backup set holds the file.
///
/// # Errors
///
/// Error::Read naming a file, a backup copy or the backup directory that cannot be read.
pub fn block_edits(root: &Path, files: &[FileChange]) -> Result<Vec<crate::Warning>> {
    let mut out = Vec::new();
    for f in files {
        let Some(now) = f.old.as_deref() else {
            continue;
        };
        let Ok(Some((a, b))) = crate::block::find(now) else {
            continue;
        };
        let Some(last) = last_written(root, &f.path)? else {
            continue;
        };
        let last = String::from_utf8_lossy(&last);
        let mut theirs: Vec<&str> = match crate::block::find(&last) {
            Ok(Some((x, y))) => last[x..y].lines().collect(),
            _ => Vec::new(),
        };
        let first = now[..a].lines().count() + 1;
        for (i, line) in now[a..b].lines().enumerate() {
            if let Some(k) = theirs.iter().position(|l| *l == line) {
                theirs.remove(k);
                continue;
            }
            out.push(crate::model::warning(crate::ConfigCode::BlockEdited, format!("{}:{}: `{}` is inside passthru's block but passthru did not write it there; the block is rewritten on every run, so it would be lost: move it above the `# >>> passthru` line, then run passthru config again", f.path, first + i, line.trim())));
        }
    }
    Ok(out)
}

/// Restore the newest backup set byte for byte (files that did not exist are removed),
/// then mark the set rolled back so the next rollback goes one set further back.
///
/// A file whose content is neither what that apply wrote nor what it replaced was
/// changed since (by the user): the rollback refuses, naming it, and changes nothing.
/// With `force` it goes ahead, first keeping the changed version in the set
/// ([`RolledBack::kept`]).
///
/// # Errors
///
/// Error::Backup when there is no backup set to roll back; Error::Syntax naming the set's
/// manifest line when it is damaged; Error::Request naming a file changed since the apply
/// (without `force`) or now a symbolic link; Error::Read or Error::Write naming a file
/// that cannot be read or restored.
pub fn rollback(root: &Path, force: bool) -> Result<RolledBack> {
    rollback_with(root, force, &mut |_| {})
}

/// [`rollback`] with a hook called after every durable step. A rollback cut short is
/// completed by running it again: the set is only marked rolled back at the end, and
/// restoring a file twice gives the same bytes.
///
/// # Errors
///
/// As rollback.
pub fn rollback_with(root: &Path, force: bool, hook: &mut dyn FnMut(Step)) -> Result<RolledBack> {
    let Some(set) = last_backup(root)? else {
        return Err(Error::Backup {
            path: backup_base(root)?,
            message: "no backup set to roll back to".into(),
        });
    };
    let mpath = set.join("manifest");
    let text = fs::read_to_string(&mpath).map_err(|source| Error::Read {
        path: mpath.clone(),
        source,
    })?;
    let mut out = RolledBack {
        backup: set.clone(),
        restored: Vec::new(),
        removed: Vec::new(),
        kept: Vec::new(),
    };
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut it = line.splitn(3, ' ');
        let (Some(kind), Some(mode), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Syntax {
                path: mpath.clone(),
                line: n + 1,
                message: "expected `<existed|absent> <mode> <path>`".into(),
            });
        };
        let mode = if kind == "existed" {
            Some(u32::from_str_radix(mode, 8).map_err(|_| Error::Syntax {
                path: mpath.clone(),
                line: n + 1,
                message: format!("bad mode {mode:?}"),
            })?)
        } else if kind == "absent" {
            None
        } else {
            return Err(Error::Syntax {
                path: mpath.clone(),
                line: n + 1,
                message: format!("unknown entry kind {kind:?}"),
            });
        };
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(Error::Syntax {
                path: mpath.clone(),
                line: n + 1,
                message: format!("path {path:?} is not absolute or climbs with `..`"),
            });
        }
        entries.push((mode, path.to_string()));
    }
    // Read every saved copy before changing anything.
    let mut saved = Vec::new();
    for (mode, path) in &entries {
        let bytes = match mode {
            Some(_) => {
                let copy = set.join("files").join(path.trim_start_matches('/'));
                Some(fs::read(&copy).map_err(|source| Error::Read {
                    path: copy.clone(),
                    source,
                })?)
            }
            None => None,
        };
        saved.push(bytes);
    }
    // Compare every target with what the apply wrote before changing anything.
    let tracked = set.join(APPLIED).is_dir();
    let done = PathBuf::from(format!("{}{ROLLED_BACK}", set.display()));
    let mut edited = Vec::new();
    for ((_, path), old) in entries.iter().zip(&saved) {
        let target = target_of(root, path)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Request(format!("{} is now a symbolic link; passthru does not replace links: restore it by hand from {}", target.display(), set.join("files").display())));
        }
        let now = read_regular(&target)?;
        if now.as_deref() == old.as_deref() {
            continue; // already as before (a rollback cut short, or never written)
        }
        let applied = read_regular(&set.join(APPLIED).join(path.trim_start_matches('/')))?;
        if tracked && now.is_some() && now == applied {
            continue;
        }
        edited.push((path.clone(), now));
    }
    if !edited.is_empty() && !force {
        let names: Vec<&str> = edited.iter().map(|(p, _)| p.as_str()).collect();
        let why = if tracked {
            "changed since the apply this rollback undoes (edited after passthru wrote it)"
        } else {
            "differs from what it was before the apply, and this older backup set keeps no copy of what the apply wrote to tell an edit from it"
        };
        return Err(Error::Request(format!(
            "nothing rolled back: {} {why}; rolling back would discard that edit. Compare with {}, move the edit by hand, or pass --force to restore anyway (the current version is then kept under {})",
            names.join(", "),
            set.join(APPLIED).display(),
            done.join(USER).display()
        )));
    }
    // Forced: keep each changed version before it is overwritten.
    for (path, now) in &edited {
        if let Some(bytes) = now {
            let rel = path.trim_start_matches('/');
            let copy = set.join(USER).join(rel);
            write_atomic(&copy, bytes, Some(0o600), hook)?;
            hook(Step::BackupWritten(copy));
            out.kept.push((path.clone(), done.join(USER).join(rel)));
        }
    }
    for ((mode, path), bytes) in entries.iter().zip(saved) {
        let target = target_of(root, path)?;
        match bytes {
            Some(b) => {
                write_atomic(&target, &b, *mode, hook)?;
                hook(Step::TargetReplaced(target.clone()));
                out.restored.push(path.clone());
            }
            None => {
                match fs::remove_file(&target) {
                    Ok(()) => {
                        if let Some(dir) = target.parent() {
                            sync_dir(dir)?;
                        }
                    }
                    // Never created (the apply died first): nothing to undo.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(werr(&target)(e)),
                }
                out.removed.push(path.clone());
            }
        }
    }
    fs::rename(&set, &done).map_err(werr(&set))?;
    sync_dir(&backup_base(root)?)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its sources on one line.
    fn chain(e: &Error) -> String {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    }

    fn change(path: &str, old: Option<&str>, new: &str) -> FileChange {
        FileChange::new(path, old.map(String::from), new.to_string())
    }

    #[test]
    fn apply_backs_up_then_rollback_restores_bytes_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let t = under(d.path(), "/etc/default/grub");
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        fs::write(&t, "old\n").unwrap();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o600)).unwrap();
        let files = [
            change("/etc/default/grub", Some("old\n"), "new\n"),
            change("/etc/modprobe.d/vfio.conf", None, "x\n"),
        ];
        let a = apply_with(d.path(), &files, "20260101T000000Z", &mut |_| {}).unwrap();
        assert_eq!(
            a.changed,
            vec!["/etc/default/grub", "/etc/modprobe.d/vfio.conf"]
        );
        assert_eq!(fs::read_to_string(&t).unwrap(), "new\n");
        assert_eq!(
            fs::metadata(&t).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Second apply with the now-current content changes nothing.
        let again = [
            change("/etc/default/grub", Some("new\n"), "new\n"),
            change("/etc/modprobe.d/vfio.conf", Some("x\n"), "x\n"),
        ];
        assert_eq!(
            apply(d.path(), &again).unwrap(),
            Applied {
                changed: vec![],
                backup: None
            }
        );
        let r = rollback(d.path(), false).unwrap();
        assert_eq!(r.restored, vec!["/etc/default/grub"]);
        assert_eq!(r.removed, vec!["/etc/modprobe.d/vfio.conf"]);
        assert_eq!(fs::read(&t).unwrap(), b"old\n");
        assert_eq!(
            fs::metadata(&t).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!under(d.path(), "/etc/modprobe.d/vfio.conf").exists());
        // Nothing left to roll back.
        assert!(matches!(
            rollback(d.path(), false),
            Err(Error::Backup { .. })
        ));
    }

    #[test]
    fn stale_plan_and_symlinks_are_refused_before_any_write() {
        let d = tempfile::tempdir().unwrap();
        let t = under(d.path(), "/etc/a");
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        fs::write(&t, "edited meanwhile\n").unwrap();
        let e = apply(
            d.path(),
            &[
                change("/etc/b", None, "b\n"),
                change("/etc/a", Some("old\n"), "new\n"),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("changed on disk"), "{e}");
        assert!(!under(d.path(), "/etc/b").exists());
        std::os::unix::fs::symlink("a", under(d.path(), "/etc/link")).unwrap();
        let e = apply(
            d.path(),
            &[change("/etc/link", Some("edited meanwhile\n"), "x\n")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&t).unwrap(), "edited meanwhile\n");
    }

    #[test]
    fn a_symlinked_directory_pointing_out_of_the_root_stays_inside() {
        // A snapshot root whose etc/modprobe.d links to the absolute /etc/modprobe.d must
        // get the file under the root, never on the real host.
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("real/modprobe.d")).unwrap();
        std::os::unix::fs::symlink("/real/modprobe.d", r.join("etc/modprobe.d")).unwrap();
        let a = apply(
            r,
            &[change(
                "/etc/modprobe.d/passthru-test-never-outside.conf",
                None,
                "x\n",
            )],
        )
        .unwrap();
        assert_eq!(a.changed.len(), 1);
        assert_eq!(
            fs::read_to_string(r.join("real/modprobe.d/passthru-test-never-outside.conf")).unwrap(),
            "x\n"
        );
        assert!(!Path::new("/real/modprobe.d/passthru-test-never-outside.conf").exists());
        rollback(r, false).unwrap();
        assert!(!r
            .join("real/modprobe.d/passthru-test-never-outside.conf")
            .exists());
    }

    #[test]
    fn special_files_are_named_and_never_read() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc/default")).unwrap();
        fs::create_dir_all(r.join("etc/modprobe.d")).unwrap();
        let fifo = r.join("etc/default/grub");
        // A FIFO: reading it would block for ever without a writer.
        assert_eq!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .map(|s| s.success())
                .ok(),
            Some(true),
            "mkfifo (coreutils) is needed"
        );
        let e = read_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("etc/default/grub"), "{e}");
        assert!(chain(&e).contains("FIFO"), "{}", chain(&e));
        // apply refuses it before writing anything.
        let e = apply(r, &[change("/etc/default/grub", None, "x\n")]).unwrap_err();
        assert!(chain(&e).contains("FIFO"));
        assert!(!r.join(BACKUP_DIR).exists());
        assert!(read_regular(Path::new("/dev/null")).is_err());
        assert_eq!(read_regular(&r.join("etc/none")).unwrap(), None);
    }

    #[test]
    fn rollback_refuses_a_file_edited_after_the_apply_unless_forced() {
        let d = tempfile::tempdir().unwrap();
        let t = under(d.path(), "/etc/a");
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        fs::write(&t, "old\n").unwrap();
        apply(d.path(), &[change("/etc/a", Some("old\n"), "new\n")]).unwrap();
        fs::write(&t, "new\nmine\n").unwrap();
        let e = rollback(d.path(), false).unwrap_err();
        assert!(e.to_string().contains("/etc/a"), "{e}");
        assert_eq!(fs::read_to_string(&t).unwrap(), "new\nmine\n");
        let r = rollback(d.path(), true).unwrap();
        assert_eq!(fs::read_to_string(&t).unwrap(), "old\n");
        assert_eq!(r.kept.len(), 1);
        assert_eq!(fs::read_to_string(&r.kept[0].1).unwrap(), "new\nmine\n");
    }

    #[test]
    fn timestamp_shape() {
        let s = timestamp();
        assert_eq!(s.len(), 16);
        assert!(
            s.starts_with("20") && s.ends_with('Z') && &s[8..9] == "T",
            "{s}"
        );
    }
}
