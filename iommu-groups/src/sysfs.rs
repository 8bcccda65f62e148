//! The one confined file-system layer: every read of the host (sysfs, procfs,
//! `/etc`, `/boot`, `/dev`) and every place a writer resolves a path goes through a
//! [`Root`].
//!
//! Symbolic links are resolved inside the root (an absolute target means "from the
//! root", as in a chroot) and never followed out of it; `..` never climbs above it;
//! every read is bounded; only regular files are opened (a FIFO or device node is
//! refused unopened); and a root can record what was read so a snapshot copies
//! exactly that.
//!
//! Two roads lead to a file, chosen inside [`Root`]: a directory the kernel can
//! open beneath the root in one call (`openat2` with `RESOLVE_BENEATH`) is read one
//! name at a time relative to its descriptor; anything else (an absolute or escaping
//! link, a kernel without `openat2`, a recording root) is resolved component by
//! component. Both give the same answers and name the same paths in errors.
//!
//! ```
//! use passthru_iommu_groups::sysfs::Root;
//! use std::path::Path;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(dir.path().join("etc")).unwrap();
//! std::fs::write(dir.path().join("etc/hostname"), "box\n").unwrap();
//! // An absolute link counts from the root, never from the real `/`.
//! std::os::unix::fs::symlink("/etc/hostname", dir.path().join("name")).unwrap();
//! let root = Root::new(dir.path()).unwrap();
//! assert_eq!(root.read_text(Path::new("name"), 4096).unwrap().as_deref(), Some("box\n"));
//! assert_eq!(root.read_text(Path::new("etc/absent"), 4096).unwrap(), None);
//! ```

use crate::error::{Error, Result};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// At most this many symbolic links are followed while resolving one path (as Linux' 40).
pub(crate) const MAX_LINKS: usize = 40;
/// At most this many path components after resolution.
const MAX_DEPTH: usize = 255;
/// At most this many entries are read from one directory.
pub(crate) const MAX_DIR_ENTRIES: usize = 65_536;
/// Bound for small text attributes (sysfs attributes are at most a page).
pub(crate) const TEXT_LIMIT: usize = 64 * 1024;
/// Bound for larger text files (`/proc/cpuinfo`, `/proc/modules`, `/etc` files).
pub(crate) const BIG_TEXT_LIMIT: usize = 4 * 1024 * 1024;
/// The read buffer starts this large (a page-sized attribute, a 4 KiB config space fits).
const SCRATCH_HINT: usize = 8 * 1024;
/// A one-call read ([`Root::read_text_fast`]) asks for this much (one page).
const SMALL_READ: usize = 4096;
/// The read buffer is dropped after a file that made it grow past this.
const SCRATCH_KEEP: usize = 64 * 1024;

/// What a path names once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only seen in listings; resolution follows links).
    Link,
    /// A FIFO, socket or device node: never opened.
    Other,
}

fn kind_of(ft: &fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Link
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// What the model read, keyed by paths relative to the root.
#[derive(Debug, Default, Clone)]
pub(crate) struct Trace {
    /// Symbolic links met while resolving or listing: path -> raw target.
    pub links: BTreeMap<PathBuf, PathBuf>,
    /// Regular files read: path -> the bytes read.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Paths whose existence (and kind) was looked at, including listed entries.
    pub seen: BTreeMap<PathBuf, Kind>,
}

/// How a path is in a [`Trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traced {
    /// Listed or looked at, not read.
    Seen,
    /// A symbolic link (read, or met in a listing).
    Link,
    /// A regular file read.
    File,
}

/// A root directory (`/` live, a snapshot or a fixture tree) read confined, with
/// an optional recorder.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    trace: Option<RefCell<Trace>>,
    /// Link-free directories already checked (saves re-walking shared prefixes).
    known_dirs: RefCell<HashSet<PathBuf>>,
    /// Reused read buffer: a file is read into it, then copied out at its exact size.
    scratch: RefCell<Vec<u8>>,
    /// The root directory as an `O_PATH` descriptor, for the one-call reads
    /// ([`Root::open_dir_fast`]); `None` inside when it cannot be opened.
    root_fd: OnceCell<Option<OwnedFd>>,
    /// File-system operations done so far (tests pin the loader's work per device).
    #[cfg(test)]
    pub(crate) ops: std::cell::Cell<Ops>,
}

/// File-system operations counted in test builds: each is one system call or
/// a short fixed sequence of them (an open is open + reads + close).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ops {
    /// `lstat` of a path component.
    pub stats: usize,
    /// `readlink`.
    pub readlinks: usize,
    /// Files opened and read.
    pub opens: usize,
    /// Directories listed.
    pub listings: usize,
}

#[cfg(test)]
impl Ops {
    /// Every operation.
    pub fn total(&self) -> usize {
        self.stats + self.readlinks + self.opens + self.listings
    }
}

/// Count one operation (test builds only).
macro_rules! tally {
    ($fs:expr, $field:ident) => {
        #[cfg(test)]
        {
            let mut o = $fs.ops.get();
            o.$field += 1;
            $fs.ops.set(o);
        }
    };
}

/// A link-free directory, resolved once, with its entries listed once (one
/// `getdents` instead of one `lstat` per attribute). Reads through it give the
/// same results, errors and recording as the path-based reads of `dir/name`:
/// an entry the listing lacks is absent, a regular file is opened directly, and
/// a symbolic link (or any name when the directory could not be listed) falls
/// back to resolving the path.
#[derive(Debug)]
struct Listed {
    path: PathBuf,
    /// `path` under the root directory: what is opened.
    real: PathBuf,
    /// Sorted entry names and kinds; `None` when listing failed (then every read resolves).
    entries: Option<Vec<(String, Kind)>>,
    /// The directory, open (when the kernel could open it beneath the root without
    /// following a link): files in it are opened relative to it.
    fd: Option<OwnedFd>,
}

/// What a [`Listed`]'s listing says about one name.
enum Entry {
    /// Not in the listing: absent.
    Absent,
    /// Present and not a link: its kind.
    Plain(Kind),
    /// A symbolic link: resolve the path.
    Link,
    /// The directory could not be listed: resolve the path.
    Unlisted,
}

impl Listed {
    fn entry(&self, name: &str) -> Entry {
        let Some(v) = &self.entries else {
            return Entry::Unlisted;
        };
        match v.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Err(_) => Entry::Absent,
            Ok(i) if v[i].1 == Kind::Link => Entry::Link,
            Ok(i) => Entry::Plain(v[i].1),
        }
    }
}

/// The answer of a read through a [`Beneath`].
#[derive(Debug)]
enum Fast<T> {
    /// Read.
    Got(T),
    /// Not there (for a link: not there, or not a link).
    Absent,
    /// Not answerable in one call (the name is a symbolic link): read it by path,
    /// which resolves links inside the root and gives the precise answer.
    Slow,
}

/// A directory the kernel resolved beneath the root in one call (`openat2` with
/// `RESOLVE_BENEATH`: relative links followed, none leaving the root, no
/// absolute or magic links). Reads through it open one name each, relative to
/// its descriptor, so the kernel walks one path component, not the whole path.
#[derive(Debug)]
struct Beneath {
    fd: OwnedFd,
    /// The path as asked (it may run through links), relative to the root: for notes.
    rel: PathBuf,
}

/// A directory opened for reading several names in it ([`Root::open_dir`]): the
/// reads through it ([`Root::read_text_in`], ...) give what reads of `dir/name`
/// by path give, with fewer system calls.
#[derive(Debug)]
pub struct Dir {
    road: Road,
}

/// How a [`Dir`] was opened.
#[derive(Debug)]
enum Road {
    /// Resolved by path and listed once.
    Listed(Listed),
    /// Opened beneath the root in one call.
    Beneath(Beneath),
}

impl Dir {
    /// Its path relative to the root: link-free when it was resolved component by
    /// component, as asked when the kernel opened it beneath the root.
    pub fn path(&self) -> &Path {
        match &self.road {
            Road::Listed(d) => &d.path,
            Road::Beneath(d) => &d.rel,
        }
    }

    /// Its path, owned (see [`Dir::path`]).
    pub fn into_path(self) -> PathBuf {
        match self.road {
            Road::Listed(d) => d.path,
            Road::Beneath(d) => d.rel,
        }
    }
}

impl Root {
    /// Read under `dir`. Errors when `dir` is not a usable directory.
    ///
    /// # Errors
    ///
    /// [`Error::Root`] when `dir` cannot be opened as a directory.
    pub fn new(dir: impl AsRef<Path>) -> Result<Root> {
        Root::with_recorder(dir.as_ref(), false)
    }

    /// The root directory as given.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A root that, with `record`, remembers every path it resolved, listed or read
    /// (for [`crate::snapshot()`]).
    pub(crate) fn with_recorder(dir: &Path, record: bool) -> Result<Root> {
        let md = fs::metadata(dir).map_err(|source| Error::Root {
            path: dir.to_path_buf(),
            source,
        })?;
        if !md.is_dir() {
            return Err(Error::Root {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        Ok(Root {
            dir: dir.to_path_buf(),
            trace: record.then(|| RefCell::new(Trace::default())),
            known_dirs: RefCell::new(HashSet::new()),
            scratch: RefCell::new(Vec::new()),
            root_fd: OnceCell::new(),
            #[cfg(test)]
            ops: std::cell::Cell::new(Ops::default()),
        })
    }

    /// Record `bytes` as what was read of the file `rel` (whose link-free path the
    /// trace already holds): a snapshot then copies only what the model kept.
    pub(crate) fn record_as(&self, rel: &Path, bytes: &[u8]) {
        let Some(t) = &self.trace else { return };
        let Ok(Some((p, Kind::File))) = self.resolve(rel) else {
            return;
        };
        t.borrow_mut().files.insert(p, bytes.to_vec());
    }

    /// Drop from the trace every path `keep` refuses (a scan whose entries the
    /// model does not keep: a snapshot then copies only what it kept). `keep` is
    /// told how the path is in the trace.
    pub(crate) fn retain_trace(&self, keep: impl Fn(&Path, Traced) -> bool) {
        let Some(t) = &self.trace else { return };
        let mut t = t.borrow_mut();
        t.links.retain(|p, _| keep(p, Traced::Link));
        t.files.retain(|p, _| keep(p, Traced::File));
        t.seen.retain(|p, _| keep(p, Traced::Seen));
    }

    pub(crate) fn take_trace(&self) -> Option<Trace> {
        self.trace.as_ref().map(|t| t.take())
    }

    fn real(&self, rel: &Path) -> PathBuf {
        join(&self.dir, rel)
    }

    fn note_link(&self, rel: &Path, target: &Path) {
        if let Some(t) = &self.trace {
            t.borrow_mut()
                .links
                .insert(rel.to_path_buf(), target.to_path_buf());
        }
    }

    fn note_seen(&self, rel: &Path, kind: Kind) {
        if let Some(t) = &self.trace {
            t.borrow_mut().seen.insert(rel.to_path_buf(), kind);
        }
    }

    /// Resolve `rel` (relative to the root) to a link-free path under the root.
    /// `Ok(None)` when some component does not exist.
    ///
    /// # Errors
    /// A link that leads out of the root, a loop, or an I/O error other than absence.
    pub fn resolve(&self, rel: &Path) -> Result<Option<(PathBuf, Kind)>> {
        self.resolve_hinted(rel, false)
    }

    /// [`Root::resolve`] of `rel` whose last component a listing just showed
    /// to be a symbolic link: its `lstat` is skipped (should reading the link
    /// fail, `rel` is resolved afresh).
    pub(crate) fn resolve_listed_link(&self, rel: &Path) -> Result<Option<(PathBuf, Kind)>> {
        self.resolve_hinted(rel, true)
    }

    fn resolve_hinted(&self, rel: &Path, last_is_link: bool) -> Result<Option<(PathBuf, Kind)>> {
        let mut pending: VecDeque<OsString> = VecDeque::new();
        push_components(&mut pending, rel);
        // Link targets go to the front: `rel`'s last component is the one popped
        // when nothing is left, until it has been expanded.
        let mut hint = last_is_link;
        let mut cur = PathBuf::new();
        let mut depth = 0usize;
        let mut links = 0usize;
        let mut kind = Kind::Dir;
        while let Some(c) = pending.pop_front() {
            if c == "." || c == ".." {
                if kind != Kind::Dir {
                    // `file/..`: not a directory (ENOTDIR), as the kernel's walk.
                    return Ok(None);
                }
                if c == "." {
                    continue;
                }
                if !cur.pop() {
                    return Err(Error::Escape {
                        path: rel.to_path_buf(),
                    });
                }
                depth = depth.saturating_sub(1);
                kind = Kind::Dir;
                continue;
            }
            if kind != Kind::Dir {
                // A file in the middle of a path: nothing below it.
                return Ok(None);
            }
            // `cur` becomes the next path; a link puts it back to its parent.
            cur.push(&c);
            if self.known_dirs.borrow().contains(&cur) {
                depth += 1;
                kind = Kind::Dir;
                continue;
            }
            let listed_link = hint && pending.is_empty();
            let k = if listed_link {
                Kind::Link
            } else {
                tally!(self, stats);
                match fs::symlink_metadata(self.real(&cur)) {
                    Ok(md) => kind_of(&md.file_type()),
                    Err(e) if is_absent(&e) => return Ok(None),
                    Err(source) => {
                        return Err(Error::Io { path: cur, source });
                    }
                }
            };
            if k == Kind::Link {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::SymlinkLoop {
                        path: rel.to_path_buf(),
                    });
                }
                tally!(self, readlinks);
                let target = match fs::read_link(self.real(&cur)) {
                    Ok(t) => t,
                    // Changed since it was listed: walk it as if unlisted.
                    Err(_) if listed_link => return self.resolve_hinted(rel, false),
                    Err(source) => {
                        return Err(Error::Io {
                            path: cur.clone(),
                            source,
                        })
                    }
                };
                hint &= !listed_link;
                self.note_link(&cur, &target);
                cur.pop();
                if target.is_absolute() {
                    cur = PathBuf::new();
                    depth = 0;
                }
                let mut front = VecDeque::new();
                push_components(&mut front, &target);
                while let Some(x) = front.pop_back() {
                    pending.push_front(x);
                }
                kind = Kind::Dir;
                continue;
            }
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(Error::SymlinkLoop {
                    path: rel.to_path_buf(),
                });
            }
            if k == Kind::Dir {
                self.known_dirs.borrow_mut().insert(cur.clone());
            }
            kind = k;
        }
        Ok(Some((cur, kind)))
    }

    /// Whether `rel` exists (after resolution) and what it is; records it.
    ///
    /// # Errors
    /// As [`Root::resolve`].
    pub fn kind(&self, rel: &Path) -> Result<Option<Kind>> {
        Ok(self.resolve(rel)?.map(|(p, k)| {
            self.note_seen(&p, k);
            k
        }))
    }

    /// The final link target of `rel` when `rel` itself is a symbolic link (not resolved).
    /// `Ok(None)` when absent or not a link. Its parent is resolved inside the root.
    ///
    /// # Errors
    /// As [`Root::resolve`] for the parent, or reading the link failed.
    pub fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>> {
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => return Ok(None),
        };
        let Some((pdir, Kind::Dir)) = self.resolve(parent)? else {
            return Ok(None);
        };
        let at = pdir.join(name);
        tally!(self, stats);
        match fs::symlink_metadata(self.real(&at)) {
            Ok(md) if md.file_type().is_symlink() => {}
            Ok(_) => return Ok(None),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(source) => return Err(Error::Io { path: at, source }),
        }
        self.link_target(at).map(Some)
    }

    /// The raw target of the link-free path `at`, known to be a symbolic link; recorded.
    fn link_target(&self, at: PathBuf) -> Result<PathBuf> {
        tally!(self, readlinks);
        let target = fs::read_link(self.real(&at)).map_err(|source| Error::Io {
            path: at.clone(),
            source,
        })?;
        self.note_link(&at, &target);
        Ok(target)
    }

    /// Read the regular file `rel`, at most `limit` bytes. `Ok(None)` when absent.
    ///
    /// # Errors
    /// As [`Root::resolve`]; not a regular file (never opened); longer than `limit`; I/O.
    pub fn read_bytes(&self, rel: &Path, limit: usize) -> Result<Option<Vec<u8>>> {
        self.read_bytes_bounded(rel, limit, true)
    }

    /// Read at most `limit` bytes of the regular file `rel`. `Ok(None)` when absent.
    /// With `strict`, a longer file is an error; otherwise it is cut at `limit`.
    pub(crate) fn read_bytes_bounded(
        &self,
        rel: &Path,
        limit: usize,
        strict: bool,
    ) -> Result<Option<Vec<u8>>> {
        let Some((p, k)) = self.resolve(rel)? else {
            return Ok(None);
        };
        self.read_file(&|| p.clone(), &self.real(&p), None, k, limit, strict)
            .map(Some)
    }

    /// Read a file of kind `k` (only a regular file is opened) at `real` (the
    /// root joined), or as `name` in the open directory `at` (one path component
    /// for the kernel to walk; a link swapped in since the listing is refused);
    /// `rel` builds its link-free path under the root, for errors and the trace only.
    ///
    /// Bounded: at most `limit + 1` bytes are read (the extra byte tells a longer
    /// file). Outside `proc/` a read that returns less than asked is the end of the
    /// file: a regular file reads short only at its end and a sysfs attribute
    /// hands over its whole value in one read, so most files take one `read`.
    /// procfs' seq files hand out a page at a time, so under `proc/` the reading
    /// goes on until a read returns nothing.
    fn read_file(
        &self,
        rel: &dyn Fn() -> PathBuf,
        real: &Path,
        at: Option<(&OwnedFd, &str)>,
        k: Kind,
        limit: usize,
        strict: bool,
    ) -> Result<Vec<u8>> {
        let io = |source: std::io::Error| Error::Io {
            path: rel(),
            source,
        };
        if k != Kind::File {
            let what = match k {
                Kind::Dir => "a directory",
                _ => fs::symlink_metadata(real).map_or("not a file", |m| {
                    use std::os::unix::fs::FileTypeExt;
                    let ft = m.file_type();
                    if ft.is_fifo() {
                        "a FIFO"
                    } else if ft.is_socket() {
                        "a socket"
                    } else if ft.is_char_device() || ft.is_block_device() {
                        "a device node"
                    } else {
                        "not a file"
                    }
                }),
            };
            return Err(io(not_regular(what)));
        }
        tally!(self, opens);
        let mut f = match at {
            Some((dir, name)) => rustix::fs::openat(dir, name, READ_FLAGS, Mode::empty())
                .map(fs::File::from)
                .map_err(|e| io(e.into()))?,
            None => fs::File::open(real).map_err(io)?,
        };
        // Under `proc/`, from `real` (the root joined): no path is built per file.
        let to_eof = real
            .strip_prefix(&self.dir)
            .is_ok_and(|r| r.starts_with("proc"));
        let mut scratch = self.scratch.borrow_mut();
        let read = bounded_read(&mut f, &mut scratch, limit + 1, to_eof);
        let buf = match read {
            Err(source) => Err(io(source)),
            Ok(()) if scratch.len() > limit && strict => {
                Err(Error::TooLarge { path: rel(), limit })
            }
            Ok(()) => Ok(scratch[..scratch.len().min(limit)].to_vec()),
        };
        if scratch.capacity() > SCRATCH_KEEP {
            // A big file (cpuinfo, an /etc file): do not hold its size for the whole load.
            *scratch = Vec::new();
        }
        drop(scratch);
        let buf = buf?;
        if let Some(t) = &self.trace {
            t.borrow_mut().files.insert(rel(), buf.clone());
        }
        Ok(buf)
    }

    /// Read a UTF-8 text file of at most `limit` bytes. `Ok(None)` when absent.
    ///
    /// # Errors
    /// As [`Root::read_bytes`], or the file is not UTF-8.
    pub fn read_text(&self, rel: &Path, limit: usize) -> Result<Option<String>> {
        text_of(self.read_bytes(rel, limit)?, rel)
    }

    /// The entries of directory `rel` (names that are not UTF-8 are skipped), sorted.
    /// `Ok(None)` when absent. Symbolic links among them are recorded.
    ///
    /// # Errors
    /// As [`Root::resolve`]; more than 65,536 entries; I/O.
    pub fn list(&self, rel: &Path) -> Result<Option<Vec<(String, Kind)>>> {
        let Some((p, k)) = self.resolve(rel)? else {
            return Ok(None);
        };
        if k != Kind::Dir {
            return Ok(None);
        }
        self.note_seen(&p, Kind::Dir);
        self.entries(&p, true).map(Some)
    }

    /// The sorted entries of the link-free directory `p` (names that are not UTF-8
    /// skipped); with `record` (and a recorder), each entry (and a link's target) is recorded.
    fn entries(&self, p: &Path, record: bool) -> Result<Vec<(String, Kind)>> {
        tally!(self, listings);
        let rd = fs::read_dir(self.real(p)).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })?;
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(Error::TooLarge {
                    path: p.to_path_buf(),
                    limit: MAX_DIR_ENTRIES,
                });
            }
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let ft = e.file_type().map_err(|source| Error::Io {
                path: p.join(&name),
                source,
            })?;
            let kind = kind_of(&ft);
            if record && self.trace.is_some() {
                let at = p.join(&name);
                if kind == Kind::Link {
                    if let Ok(t) = fs::read_link(self.real(&at)) {
                        self.note_link(&at, &t);
                    }
                } else {
                    self.note_seen(&at, kind);
                }
            }
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// A [`Dir`] for the link-free directory `path` (as [`Root::resolve`] gave it):
    /// listed once, nothing recorded. When listing fails, reads through it resolve
    /// each path as the path-based reads do.
    pub(crate) fn listed_dir(&self, path: PathBuf) -> Dir {
        Dir {
            road: Road::Listed(self.listed(path)),
        }
    }

    /// Open directory `rel` for reads of several names in it: beneath the root in
    /// one call where the kernel can, else resolved by path and listed.
    /// `Ok(None)` when absent or not a directory.
    ///
    /// # Errors
    /// As [`Root::resolve`].
    pub fn open_dir(&self, rel: &Path) -> Result<Option<Dir>> {
        if let Some(b) = self.open_dir_fast(rel) {
            return Ok(Some(Dir {
                road: Road::Beneath(b),
            }));
        }
        Ok(match self.resolve(rel)? {
            Some((p, Kind::Dir)) => Some(self.listed_dir(p)),
            _ => None,
        })
    }

    /// Whether the kernel's confined lookup of `rel` (`openat2` with `RESOLVE_BENEATH`,
    /// one call) says it does not exist. `false` whenever that lookup cannot answer for
    /// certain (present, a link leaving the root, no `openat2`, a recording root, any
    /// other error): the caller then reads `rel` the usual way, which gives the precise
    /// answer and note.
    pub(crate) fn absent_beneath(&self, rel: &Path) -> bool {
        if self.trace.is_some() {
            return false;
        }
        let Some(root) = self.root_fd() else {
            return false;
        };
        tally!(self, stats);
        matches!(
            rustix::fs::openat2(
                root,
                rel,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ),
            Err(rustix::io::Errno::NOENT)
        )
    }

    /// `rel` opened beneath the root in one call, or `None` when that does not
    /// simply work (the caller then resolves it by path, for the precise note).
    pub(crate) fn open_dir_beneath(&self, rel: &Path) -> Option<Dir> {
        self.open_dir_fast(rel).map(|b| Dir {
            road: Road::Beneath(b),
        })
    }

    /// Where writing the system path `rel` lands on the real file system: its
    /// existing part resolved inside the root (links followed as if the root were
    /// `/`, never out of it), the part that does not exist yet appended as given.
    ///
    /// # Errors
    /// A `.` or `..` component in `rel`; as [`Root::resolve`]; an existing
    /// component that is not a directory where the path goes on below it.
    pub fn host_path(&self, rel: &Path) -> Result<PathBuf> {
        use std::path::Component;
        if rel
            .components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        {
            return Err(Error::Escape {
                path: rel.to_path_buf(),
            });
        }
        let mut tail: Vec<&std::ffi::OsStr> = Vec::new();
        let mut head = rel;
        loop {
            match self.resolve(head)? {
                Some((p, k)) => {
                    if !tail.is_empty() && k != Kind::Dir {
                        return Err(Error::Io {
                            path: p,
                            source: std::io::Error::new(
                                std::io::ErrorKind::NotADirectory,
                                "not a directory",
                            ),
                        });
                    }
                    let mut out = self.real(&p);
                    out.extend(tail.iter().rev());
                    return Ok(out);
                }
                None => match (head.parent(), head.file_name()) {
                    (Some(parent), Some(name)) => {
                        tail.push(name);
                        head = parent;
                    }
                    _ => {
                        let mut out = self.dir.clone();
                        out.extend(tail.iter().rev());
                        return Ok(out);
                    }
                },
            }
        }
    }

    fn listed(&self, path: PathBuf) -> Listed {
        let real = self.real(&path);
        // `path` is link-free: open it beneath the root following no link at all,
        // and list it through that descriptor.
        if let Some(fd) = self.open_beneath(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::NO_SYMLINKS,
        ) {
            if let Ok(entries) = self.entries_of(&fd, &path) {
                return Listed {
                    path,
                    real,
                    entries: Some(entries),
                    fd: Some(fd),
                };
            }
        }
        let entries = self.entries(&path, false).ok();
        Listed {
            path,
            real,
            entries,
            fd: None,
        }
    }

    /// The sorted entries of the open directory `fd` (at `p`, for errors), with
    /// [`Root::entries`]' rules: `.` and `..` and names that are not UTF-8 left
    /// out, at most [`MAX_DIR_ENTRIES`].
    fn entries_of(&self, fd: &OwnedFd, p: &Path) -> Result<Vec<(String, Kind)>> {
        tally!(self, listings);
        let io = |e: rustix::io::Errno| Error::Io {
            path: p.to_path_buf(),
            source: e.into(),
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let mut it = rustix::fs::RawDir::new(fd, &mut buf);
        let mut out = Vec::new();
        while let Some(e) = it.next() {
            let e = e.map_err(io)?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(Error::TooLarge {
                    path: p.to_path_buf(),
                    limit: MAX_DIR_ENTRIES,
                });
            }
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let ft = match e.file_type() {
                // A file system that does not fill in the type: ask.
                FileType::Unknown => {
                    rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode))
                        .map_err(io)?
                }
                t => t,
            };
            let kind = match ft {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Link,
                _ => Kind::Other,
            };
            out.push((name.to_string(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// [`Root::read_bytes`] of `dir/name`.
    ///
    /// # Errors
    /// As [`Root::read_bytes`].
    pub fn read_bytes_in(&self, dir: &Dir, name: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        self.read_bytes_in_bounded(dir, name, limit, true)
    }

    /// [`Root::read_bytes_bounded`] of `dir/name`.
    pub(crate) fn read_bytes_in_bounded(
        &self,
        dir: &Dir,
        name: &str,
        limit: usize,
        strict: bool,
    ) -> Result<Option<Vec<u8>>> {
        let dir = match &dir.road {
            Road::Listed(d) => d,
            Road::Beneath(d) => return self.read_bytes_bounded(&d.rel.join(name), limit, strict),
        };
        match dir.entry(name) {
            Entry::Absent => Ok(None),
            Entry::Plain(k) => self
                .read_file(
                    &|| dir.path.join(name),
                    &join(&dir.real, Path::new(name)),
                    dir.fd.as_ref().map(|fd| (fd, name)),
                    k,
                    limit,
                    strict,
                )
                .map(Some),
            Entry::Link | Entry::Unlisted => {
                self.read_bytes_bounded(&dir.path.join(name), limit, strict)
            }
        }
    }

    /// [`Root::read_text`] of `dir/name`.
    ///
    /// # Errors
    /// As [`Root::read_text`].
    pub fn read_text_in(&self, dir: &Dir, name: &str, limit: usize) -> Result<Option<String>> {
        let dir = match &dir.road {
            Road::Listed(d) => d,
            Road::Beneath(d) => {
                return match self.read_text_fast(d, name, limit)? {
                    Fast::Got(t) => Ok(Some(t)),
                    Fast::Absent => Ok(None),
                    Fast::Slow => self.read_text(&d.rel.join(name), limit),
                }
            }
        };
        match dir.entry(name) {
            Entry::Absent => Ok(None),
            Entry::Plain(k) => {
                let rel = || dir.path.join(name);
                let at = dir.fd.as_ref().map(|fd| (fd, name));
                let b =
                    self.read_file(&rel, &join(&dir.real, Path::new(name)), at, k, limit, true)?;
                String::from_utf8(b)
                    .map(Some)
                    .map_err(|_| Error::NotUtf8 { path: rel() })
            }
            Entry::Link | Entry::Unlisted => self.read_text(&dir.path.join(name), limit),
        }
    }

    /// [`Root::kind`] of `dir/name`.
    ///
    /// # Errors
    /// As [`Root::kind`].
    pub fn kind_in(&self, dir: &Dir, name: &str) -> Result<Option<Kind>> {
        let dir = match &dir.road {
            Road::Listed(d) => d,
            Road::Beneath(d) => return self.kind(&d.rel.join(name)),
        };
        match dir.entry(name) {
            Entry::Absent => Ok(None),
            Entry::Plain(k) => {
                if self.trace.is_some() {
                    self.note_seen(&dir.path.join(name), k);
                }
                Ok(Some(k))
            }
            Entry::Link | Entry::Unlisted => self.kind(&dir.path.join(name)),
        }
    }

    /// [`Root::read_link`] of `dir/name`.
    ///
    /// # Errors
    /// As [`Root::read_link`].
    pub fn read_link_in(&self, dir: &Dir, name: &str) -> Result<Option<PathBuf>> {
        let dir = match &dir.road {
            Road::Listed(d) => d,
            Road::Beneath(d) => {
                return match self.link_target_fast(d, name)? {
                    Fast::Got(t) => Ok(Some(t)),
                    Fast::Absent => Ok(None),
                    Fast::Slow => self.read_link(&d.rel.join(name)),
                }
            }
        };
        match dir.entry(name) {
            Entry::Absent | Entry::Plain(_) => Ok(None),
            Entry::Link => self.link_target(dir.path.join(name)).map(Some),
            Entry::Unlisted => self.read_link(&dir.path.join(name)),
        }
    }
    /// The root as an `O_PATH` directory descriptor, opened on first use.
    fn root_fd(&self) -> Option<&OwnedFd> {
        self.root_fd
            .get_or_init(|| {
                rustix::fs::openat(
                    rustix::fs::CWD,
                    &self.dir,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            })
            .as_ref()
    }

    /// Open directory `rel` (relative to the root) with the kernel resolving it
    /// beneath the root, in one call. `None` whenever that does not simply work
    /// (absent, an absolute or escaping link, not a directory, a kernel without
    /// `openat2`, or while recording a snapshot, which must see every link): the
    /// caller then resolves `rel` by path, which gives the precise answer or note.
    fn open_dir_fast(&self, rel: &Path) -> Option<Beneath> {
        if self.trace.is_some() {
            return None;
        }
        tally!(self, stats);
        let fd = self.open_beneath(
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::NO_MAGICLINKS,
        )?;
        Some(Beneath {
            fd,
            rel: rel.to_path_buf(),
        })
    }

    /// `openat2(root, rel, flags, RESOLVE_BENEATH | resolve)`: `None` on any error
    /// (the caller takes the path road, which gives the precise answer).
    fn open_beneath(&self, rel: &Path, flags: OFlags, resolve: ResolveFlags) -> Option<OwnedFd> {
        let root = self.root_fd()?;
        rustix::fs::openat2(
            root,
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | resolve,
        )
        .ok()
    }

    /// Read the UTF-8 text file `name` of `dir` (at most `limit` bytes; longer is an
    /// error), without following a link (a link answers [`Fast::Slow`]): anything
    /// but a regular file is refused unopened, with the same error as a path read
    /// gives, and the open is `O_NONBLOCK` besides.
    ///
    /// One `read`: a regular file returns less than asked only at its end, and a
    /// sysfs attribute hands over its whole value in the first read, so a short
    /// read is the whole file, without a second read to see the end. A file
    /// that fills the page-sized buffer answers [`Fast::Slow`] (read it by path).
    fn read_text_fast(&self, dir: &Beneath, name: &str, limit: usize) -> Result<Fast<String>> {
        let rel = || dir.rel.join(name);
        let io = |e: rustix::io::Errno| Error::Io {
            path: rel(),
            source: e.into(),
        };
        // The kind first, so a FIFO or device node is never opened (opening one
        // can have effects); then the open refuses a link swapped in meanwhile.
        tally!(self, stats);
        match rustix::fs::statat(&dir.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => return Ok(Fast::Slow),
                t => {
                    let what = match t {
                        FileType::Directory => "a directory",
                        FileType::Fifo => "a FIFO",
                        FileType::Socket => "a socket",
                        FileType::CharacterDevice | FileType::BlockDevice => "a device node",
                        _ => "not a file",
                    };
                    return Err(Error::Io {
                        path: rel(),
                        source: not_regular(what),
                    });
                }
            },
            Err(rustix::io::Errno::NOENT) => return Ok(Fast::Absent),
            Err(e) => return Err(io(e)),
        }
        tally!(self, opens);
        let fd = match rustix::fs::openat(
            &dir.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(Fast::Absent),
            Err(rustix::io::Errno::LOOP) => return Ok(Fast::Slow),
            Err(e) => return Err(io(e)),
        };
        let mut buf = vec![0u8; limit.min(SMALL_READ) + 1];
        let n = loop {
            match rustix::io::read(fd.as_fd(), &mut buf[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io(e)),
            }
        };
        if n == buf.len() && n <= limit {
            // A full page: the file may go on. Read it by path, the bounded way
            // (rare: attributes are short).
            return Ok(Fast::Slow);
        }
        if n > limit {
            return Err(Error::TooLarge { path: rel(), limit });
        }
        buf.truncate(n);
        String::from_utf8(buf)
            .map(Fast::Got)
            .map_err(|_| Error::NotUtf8 { path: rel() })
    }

    /// The target of the symbolic link `name` in `dir` ([`Fast::Absent`] when
    /// absent or not a link), in one `readlinkat`.
    fn link_target_fast(&self, dir: &Beneath, name: &str) -> Result<Fast<PathBuf>> {
        tally!(self, readlinks);
        match rustix::fs::readlinkat(&dir.fd, name, Vec::new()) {
            Ok(t) => Ok(Fast::Got(PathBuf::from(
                <OsString as std::os::unix::ffi::OsStringExt>::from_vec(t.into_bytes()),
            ))),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::INVAL) => Ok(Fast::Absent),
            Err(e) => Err(Error::Io {
                path: dir.rel.join(name),
                source: e.into(),
            }),
        }
    }
}

/// How a file is opened relative to a directory: never through a link, never
/// blocking, never becoming the controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

/// Read at most `cap` bytes of `f` into `buf` (cleared first). Stops at a read
/// that returns nothing, at `cap`, or (unless `to_eof`) at a read that returns
/// less than it was asked for (see [`Root::read_file`]).
fn bounded_read(
    f: &mut impl Read,
    buf: &mut Vec<u8>,
    cap: usize,
    to_eof: bool,
) -> std::io::Result<()> {
    buf.clear();
    let mut total = 0;
    loop {
        if total == buf.len() {
            let grown = cap.min((2 * total).max(SCRATCH_HINT + 1));
            if grown == total {
                break;
            }
            buf.resize(grown, 0);
        }
        let asked = buf.len() - total;
        let n = match f.read(&mut buf[total..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(total);
                return Err(e);
            }
        };
        total += n;
        if n == 0 || (n < asked && !to_eof) {
            break;
        }
    }
    buf.truncate(total);
    Ok(())
}

/// The error for a path that is no regular file: what it is instead.
fn not_regular(what: &str) -> std::io::Error {
    std::io::Error::other(format!("not a regular file ({what})"))
}

/// Bytes as UTF-8 text; the error names `rel`.
fn text_of(b: Option<Vec<u8>>, rel: &Path) -> Result<Option<String>> {
    match b {
        None => Ok(None),
        Some(b) => String::from_utf8(b).map(Some).map_err(|_| Error::NotUtf8 {
            path: rel.to_path_buf(),
        }),
    }
}

/// `a.join(b)` for a relative `b` in one allocation (`Path::join` copies, then grows).
fn join(a: &Path, b: &Path) -> PathBuf {
    let mut p = PathBuf::with_capacity(a.as_os_str().len() + 1 + b.as_os_str().len());
    p.push(a);
    p.push(b);
    p
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Split `p` into its raw `/`-separated components (keeping `.` and `..`, which
/// `Path::components` would normalize away), dropping empty ones and the root.
fn push_components(out: &mut VecDeque<OsString>, p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    for c in p.as_os_str().as_bytes().split(|b| *b == b'/') {
        if !c.is_empty() {
            out.push_back(std::ffi::OsStr::from_bytes(c).to_os_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A reader that hands out at most `chunk` bytes per read (as procfs' seq
    /// files hand out a page), once interrupted.
    struct Chunky {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
        interrupted: bool,
    }

    impl Read for Chunky {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = out.len().min(self.chunk).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn bounded_read_stops_at_a_short_read_except_under_proc() {
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let chunky = |chunk| Chunky {
            data: data.clone(),
            at: 0,
            chunk,
            interrupted: false,
        };
        let mut buf = Vec::new();
        // A seq file handing out 4 KiB a time: read to the end when told to.
        bounded_read(&mut chunky(4096), &mut buf, 64 * 1024, true).unwrap();
        assert_eq!(buf, data);
        // Otherwise the first short read is the whole file (sysfs, regular files).
        bounded_read(&mut chunky(4096), &mut buf, 64 * 1024, false).unwrap();
        assert_eq!(buf, data[..4096]);
        // Whole in one read: one read, the whole file.
        bounded_read(&mut chunky(usize::MAX), &mut buf, 64 * 1024, false).unwrap();
        assert_eq!(buf, data);
        // Never more than the cap, either way.
        for to_eof in [false, true] {
            for chunk in [1, 7, 4096, usize::MAX] {
                bounded_read(&mut chunky(chunk), &mut buf, 10_001, to_eof).unwrap();
                let want = if to_eof || chunk == usize::MAX {
                    10_001
                } else {
                    chunk
                };
                assert_eq!(buf, data[..want], "chunk {chunk} to_eof {to_eof}");
            }
        }
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::write(t.path().join("a/b/f"), b"hello\n").unwrap();
        symlink("../a/b", t.path().join("a/rel")).unwrap();
        symlink("/a/b", t.path().join("abs")).unwrap();
        symlink("../../../../../../etc", t.path().join("a/escape")).unwrap();
        symlink("loop2", t.path().join("loop1")).unwrap();
        symlink("loop1", t.path().join("loop2")).unwrap();
        symlink("nowhere", t.path().join("dangling")).unwrap();
        t
    }

    #[test]
    fn relative_and_absolute_links_stay_inside() {
        let t = tree();
        let r = Root::with_recorder(t.path(), false).unwrap();
        let (p, k) = r.resolve(Path::new("a/rel/f")).unwrap().unwrap();
        assert_eq!(p, Path::new("a/b/f"));
        assert_eq!(k, Kind::File);
        // An absolute target is taken from the root, as in a chroot.
        let (p, _) = r.resolve(Path::new("abs/f")).unwrap().unwrap();
        assert_eq!(p, Path::new("a/b/f"));
    }

    #[test]
    fn escaping_link_is_an_error_naming_the_path() {
        let t = tree();
        let r = Root::with_recorder(t.path(), false).unwrap();
        let e = r.resolve(Path::new("a/escape/passwd")).unwrap_err();
        assert!(matches!(e, Error::Escape { ref path } if path == Path::new("a/escape/passwd")));
    }

    #[test]
    fn link_loop_ends_with_an_error() {
        let t = tree();
        let r = Root::with_recorder(t.path(), false).unwrap();
        assert!(matches!(
            r.resolve(Path::new("loop1/x")),
            Err(Error::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn dangling_link_is_absent() {
        let t = tree();
        let r = Root::with_recorder(t.path(), false).unwrap();
        assert!(r.resolve(Path::new("dangling")).unwrap().is_none());
        assert!(r.read_text(Path::new("dangling"), 10).unwrap().is_none());
    }

    #[test]
    fn reads_are_bounded() {
        let t = tree();
        fs::write(t.path().join("big"), vec![b'x'; 100]).unwrap();
        let r = Root::with_recorder(t.path(), false).unwrap();
        assert!(matches!(
            r.read_text(Path::new("big"), 10),
            Err(Error::TooLarge { limit: 10, .. })
        ));
        assert_eq!(
            r.read_bytes_bounded(Path::new("big"), 10, false)
                .unwrap()
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn fifo_is_never_opened() {
        let t = tree();
        let p = t.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mkfifo (coreutils) is needed for this test");
        let r = Root::with_recorder(t.path(), false).unwrap();
        assert!(matches!(
            r.read_text(Path::new("fifo"), 10),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn recording_keeps_links_and_bytes() {
        let t = tree();
        let r = Root::with_recorder(t.path(), true).unwrap();
        r.read_text(Path::new("a/rel/f"), 100).unwrap();
        let tr = r.take_trace().unwrap();
        assert_eq!(tr.links[Path::new("a/rel")], Path::new("../a/b"));
        assert_eq!(tr.files[Path::new("a/b/f")], b"hello\n");
    }

    /// Reads through a listed [`Listed`] give what reads of `dir/name` give (values,
    /// errors, and what is recorded) for every kind of entry, listed or not.
    #[test]
    fn reads_through_a_listing_are_path_reads() {
        let t = tree();
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("f"), b" 0x10de\n").unwrap();
        fs::write(d.join("bad"), [0xff, 0xfe]).unwrap();
        fs::write(d.join("big"), vec![b'x'; 100]).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        symlink("f", d.join("to_f")).unwrap();
        symlink("../a/b", d.join("to_dir")).unwrap();
        symlink("../a/b/f", d.join("to_file")).unwrap();
        symlink("nowhere", d.join("dangling")).unwrap();
        symlink("../../../../etc", d.join("escape")).unwrap();
        symlink("../loop1", d.join("loop")).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(d.join("fifo"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mkfifo (coreutils) is needed for this test");
        let names = [
            "f", "bad", "big", "sub", "to_f", "to_dir", "to_file", "dangling", "escape", "loop",
            "fifo", "absent",
        ];
        let dbg = |r: &dyn std::fmt::Debug| format!("{r:?}");
        // Three roads: listed, unlisted (listing failed), and opened beneath the
        // root in one call (which a recording root never takes).
        for road in ["listed", "unlisted", "beneath"] {
            let record = road != "beneath";
            let by_path = Root::with_recorder(t.path(), record).unwrap();
            let by_dir = Root::with_recorder(t.path(), record).unwrap();
            by_path.resolve(Path::new("d")).unwrap();
            let dir = if road == "beneath" {
                let d = by_dir.open_dir(Path::new("d")).unwrap().unwrap();
                assert!(matches!(d.road, Road::Beneath(_)), "openat2 road taken");
                d
            } else {
                let (p, _) = by_dir.resolve(Path::new("d")).unwrap().unwrap();
                let mut l = by_dir.listed(p);
                if road == "unlisted" {
                    l.entries = None;
                }
                Dir {
                    road: Road::Listed(l),
                }
            };
            for n in names {
                let rel = Path::new("d").join(n);
                assert_eq!(
                    dbg(&by_dir.read_bytes_in(&dir, n, 10)),
                    dbg(&by_path.read_bytes(&rel, 10)),
                    "{road} {n}"
                );
                assert_eq!(
                    dbg(&by_dir.read_bytes_in_bounded(&dir, n, 10, false)),
                    dbg(&by_path.read_bytes_bounded(&rel, 10, false)),
                    "{road} {n}"
                );
                assert_eq!(
                    dbg(&by_dir.read_text_in(&dir, n, 64)),
                    dbg(&by_path.read_text(&rel, 64)),
                    "{road} {n}"
                );
                assert_eq!(
                    dbg(&by_dir.kind_in(&dir, n)),
                    dbg(&by_path.kind(&rel)),
                    "{road} {n}"
                );
                assert_eq!(
                    dbg(&by_dir.read_link_in(&dir, n)),
                    dbg(&by_path.read_link(&rel)),
                    "{road} {n}"
                );
            }
            if record {
                let (a, b) = (by_dir.take_trace().unwrap(), by_path.take_trace().unwrap());
                assert_eq!(a.links, b.links, "{road}");
                assert_eq!(a.files, b.files, "{road}");
                assert_eq!(a.seen, b.seen, "{road}");
            }
        }
    }

    /// Resolving a path whose last component was listed as a link gives what
    /// plain resolution gives (escapes, loops, dangling links included), one
    /// `lstat` fewer; a "link" that is not one falls back to plain resolution.
    #[test]
    fn listed_link_resolution_is_resolution() {
        let t = tree();
        fs::write(t.path().join("plain"), b"x").unwrap();
        let dbg = |r: &dyn std::fmt::Debug| format!("{r:?}");
        for rel in [
            "a/rel", "abs", "a/escape", "loop1", "dangling", "a/rel/f", "plain",
        ] {
            let (a, b) = (
                Root::with_recorder(t.path(), true).unwrap(),
                Root::with_recorder(t.path(), true).unwrap(),
            );
            let rel = Path::new(rel);
            assert_eq!(
                dbg(&a.resolve_listed_link(rel)),
                dbg(&b.resolve(rel)),
                "{}",
                rel.display()
            );
            let (ta, tb) = (a.take_trace().unwrap(), b.take_trace().unwrap());
            assert_eq!(ta.links, tb.links, "{}", rel.display());
            assert_eq!(ta.seen, tb.seen, "{}", rel.display());
        }
        let r = Root::with_recorder(t.path(), false).unwrap();
        r.resolve_listed_link(Path::new("a/rel")).unwrap();
        let listed = r.ops.get();
        let r = Root::with_recorder(t.path(), false).unwrap();
        r.resolve(Path::new("a/rel")).unwrap();
        assert_eq!(listed.stats + 1, r.ops.get().stats);
    }

    /// A listed directory costs no system call for an absent name and no lstat
    /// for a regular file.
    #[test]
    fn listed_reads_skip_lstat() {
        let t = tree();
        let r = Root::with_recorder(t.path(), false).unwrap();
        let (p, _) = r.resolve(Path::new("a/b")).unwrap().unwrap();
        let dir = r.listed_dir(p);
        let before = r.ops.get();
        assert!(r.read_text_in(&dir, "nothing", 10).unwrap().is_none());
        assert!(r.kind_in(&dir, "nothing").unwrap().is_none());
        assert_eq!(r.read_text_in(&dir, "f", 10).unwrap().unwrap(), "hello\n");
        let after = r.ops.get();
        assert_eq!(after.stats, before.stats);
        assert_eq!(after.opens, before.opens + 1);
        assert_eq!(after.total(), before.total() + 1);
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;
        use std::path::Component;

        /// A random tree entry: directory, file, or relative symlink.
        #[derive(Debug, Clone)]
        enum Node {
            Dir,
            File,
            Link(Vec<&'static str>),
        }

        fn comp() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["a", "b", "c", "..", "."])
        }

        fn node() -> impl Strategy<Value = Node> {
            prop_oneof![
                Just(Node::Dir),
                Just(Node::File),
                prop::collection::vec(comp(), 1..5).prop_map(Node::Link),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Resolution never leaves the root and agrees with the kernel's own
            /// path walk (`canonicalize`) whenever that walk stays inside the root.
            #[test]
            fn resolve_stays_inside_and_agrees_with_the_kernel(
                nodes in prop::collection::vec((prop::collection::vec(
                    prop::sample::select(vec!["a", "b", "c"]), 1..4), node()), 1..12),
                query in prop::collection::vec(comp(), 1..6),
            ) {
                let t = tempfile::tempdir().unwrap();
                let root = t.path().join("root");
                fs::create_dir(&root).unwrap();
                for (path, n) in &nodes {
                    let p = root.join(path.join("/"));
                    if fs::symlink_metadata(&p).is_ok() {
                        continue;
                    }
                    // Parents must be real directories; skip if something else is there.
                    if p.parent().unwrap().exists() && !p.parent().unwrap().is_dir() {
                        continue;
                    }
                    if fs::create_dir_all(p.parent().unwrap()).is_err() {
                        continue;
                    }
                    match n {
                        Node::Dir => { fs::create_dir(&p).ok(); }
                        Node::File => { fs::write(&p, b"x").ok(); }
                        Node::Link(target) => { symlink(target.join("/"), &p).ok(); }
                    }
                }
                let r = Root::with_recorder(&root, false).unwrap();
                let q: PathBuf = query.iter().collect();
                let ours = r.resolve(&q);
                let real_root = fs::canonicalize(&root).unwrap();
                let kernel = fs::canonicalize(root.join(&q));
                if let Ok(Some((p, _))) = &ours {
                    prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                    // Named first so the comparison borrows no temporary: Rust 1.87 with
                    // proptest 1.11 (the newest proptest for it) rejects that.
                    let want = real_root.join(p);
                    prop_assert_eq!(kernel.as_ref().ok(), Some(&want));
                }
                if let Ok(k) = &kernel {
                    if let Ok(rel) = k.strip_prefix(&real_root) {
                        // Inside the root: we must find the same place, unless the walk
                        // stepped outside on the way (then we refuse: escape).
                        match &ours {
                            Ok(Some((p, _))) => prop_assert_eq!(p.as_path(), rel),
                            Err(Error::Escape { .. }) => {}
                            other => prop_assert!(false, "kernel {:?}, ours {:?}", k, other),
                        }
                    } else {
                        prop_assert!(matches!(ours, Err(Error::Escape { .. })), "{:?}", ours);
                    }
                }
            }
        }
    }
}
