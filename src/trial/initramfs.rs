//! The trial guest's initramfs, written by passthru itself: a cpio "newc" archive
//! (the format the kernel unpacks at boot), optionally gzip-compressed.
//!
//! Contents: `/init` (passthru's own binary, which runs its guest mode as pid 1),
//! the ELF interpreter and shared libraries it needs, the kernel modules the
//! device's driver needs (decompressed to plain `.ko`), and `/trial/request.json`
//! saying what to load and which devices to wait for.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`, `S_IFCHR` (include/uapi/linux/stat.h).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A cpio "newc" archive being built in memory. Parent directories are added
/// before anything inside them (the kernel's unpacker creates no missing parents).
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
    paths: BTreeSet<String>,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio::default()
    }

    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) -> Result<()> {
        let size = u32::try_from(size).with_context(|| format!("{name}: larger than 4 GiB"))?;
        self.ino += 1;
        let namesize = name.len() + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check: 13 fields of 8 hex digits.
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn check_name(name: &str) -> Result<String> {
        let n = name.trim_start_matches('/');
        if n.is_empty() || n.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            bail!("{name:?}: not a plain absolute path for the archive");
        }
        Ok(n.to_string())
    }

    fn parents(&mut self, name: &str) -> Result<()> {
        let comps: Vec<&str> = name.split('/').collect();
        for i in 1..comps.len() {
            let dir = comps[..i].join("/");
            if !self.paths.contains(&dir) {
                self.paths.insert(dir.clone());
                self.header(&dir, S_IFDIR | 0o755, 0, (0, 0))?;
            }
        }
        Ok(())
    }

    fn claim(&mut self, name: &str) -> Result<String> {
        let n = Self::check_name(name)?;
        self.parents(&n)?;
        if !self.paths.insert(n.clone()) {
            bail!("{name}: already in the archive");
        }
        Ok(n)
    }

    /// A directory (and its parents).
    ///
    /// # Errors
    /// A name that is empty or has an empty, `.` or `..` component.
    pub fn dir(&mut self, name: &str) -> Result<()> {
        let n = Self::check_name(name)?;
        self.parents(&n)?;
        if self.paths.insert(n.clone()) {
            self.header(&n, S_IFDIR | 0o755, 0, (0, 0))?;
        }
        Ok(())
    }

    /// A regular file with permission bits `perm`.
    ///
    /// # Errors
    /// A name that is empty, has an empty, `.` or `..` component, or is in the archive
    /// already; data of 4 GiB or more (newc sizes are 32-bit).
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        let n = self.claim(name)?;
        self.header(&n, S_IFREG | (perm & 0o7777), data.len(), (0, 0))?;
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    /// A symbolic link to `target`.
    ///
    /// # Errors
    /// A name that is empty, has an empty, `.` or `..` component, or is in the archive
    /// already.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let n = self.claim(name)?;
        self.header(&n, S_IFLNK | 0o777, target.len(), (0, 0))?;
        self.out.extend_from_slice(target.as_bytes());
        self.pad();
        Ok(())
    }

    /// A character device node.
    ///
    /// # Errors
    /// A name that is empty, has an empty, `.` or `..` component, or is in the archive
    /// already.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        let n = self.claim(name)?;
        self.header(&n, S_IFCHR | (perm & 0o7777), 0, (major, minor))
    }

    /// Whether `name` is in the archive already.
    pub fn contains(&self, name: &str) -> bool {
        self.paths.contains(name.trim_start_matches('/'))
    }

    /// The archive with its `TRAILER!!!` entry.
    ///
    /// # Errors
    /// Writing the trailer entry fails (it cannot on a well-formed archive).
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        Ok(self.out)
    }
}

/// Gzip `data` (the kernel's initramfs unpacker reads gzip with the usual
/// `CONFIG_RD_GZIP`).
///
/// # Errors
/// The compressor fails (an I/O error of the in-memory writer).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// What an ELF executable or library asks the dynamic loader for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`: the loader's path (none for a static binary).
    pub interpreter: Option<String>,
    /// `DT_NEEDED` library names.
    pub needed: Vec<String>,
}

/// Read `PT_INTERP` and `DT_NEEDED` of the 64-bit ELF at `path`.
///
/// # Errors
/// The file cannot be read or is not a 64-bit ELF file; the error names the path.
pub fn elf_needs(path: &Path) -> Result<ElfNeeds> {
    use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let elf = ElfFile64::<object::Endianness>::parse(&*data)
        .with_context(|| format!("{}: not a 64-bit ELF file", path.display()))?;
    let e = elf.endian();
    let mut out = ElfNeeds::default();
    for ph in elf.elf_program_headers() {
        if let Some(i) = ph
            .interpreter(e, &*data)
            .with_context(|| format!("{}: bad PT_INTERP", path.display()))?
        {
            out.interpreter = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let table = elf
        .elf_section_table()
        .dynamic_table(e, &*data)
        .with_context(|| format!("{}: bad dynamic section", path.display()))?;
    for d in table.dynamics() {
        let tag = d.d_tag(e);
        if tag == object::elf::DT_NULL {
            break;
        }
        if tag == object::elf::DT_NEEDED {
            let v: u64 = d.d_val(e);
            let name = u32::try_from(v)
                .ok()
                .and_then(|v| table.strings().get(v).ok())
                .with_context(|| format!("{}: DT_NEEDED names no string", path.display()))?;
            out.needed.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(out)
}

/// Where Debian's dynamic loader looks for libraries (multiarch first).
pub const LIB_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
];

/// The files `/init` needs besides itself, as (path in the archive, host file):
/// the interpreter and every `DT_NEEDED` library, transitively, found under
/// `root` in [`LIB_DIRS`]. Empty for a statically linked binary.
///
/// # Errors
/// `exe` or a library cannot be read or parsed, or a `DT_NEEDED` library is not found
/// in [`LIB_DIRS`] under `root`; the error names it.
pub fn runtime_files(exe: &Path, root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut todo = vec![exe.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        let needs = elf_needs(&f)?;
        if let Some(i) = needs.interpreter {
            let host = root.join(i.trim_start_matches('/'));
            if !host.is_file() {
                bail!(
                    "{}: its ELF interpreter {} is missing",
                    f.display(),
                    host.display()
                );
            }
            out.insert(i, host.clone());
            todo.push(host);
        }
        for lib in needs.needed {
            let found = LIB_DIRS
                .iter()
                .map(|d| (format!("/{d}/{lib}"), root.join(d).join(&lib)))
                .find(|(_, p)| p.is_file())
                .with_context(|| {
                    format!(
                        "{}: library {lib} not found under {} in {}",
                        f.display(),
                        root.display(),
                        LIB_DIRS.join(", ")
                    )
                })?;
            todo.push(found.1.clone());
            out.insert(found.0, found.1);
        }
    }
    Ok(out.into_iter().collect())
}

/// A kernel module tree (`lib/modules/RELEASE`) with `modules.alias`,
/// `modules.dep` and, when present, `modules.builtin` as depmod writes them.
#[derive(Debug, Clone)]
pub struct ModTree {
    /// The tree's directory.
    pub dir: PathBuf,
    aliases: Vec<(String, String)>,
    deps: BTreeMap<String, (String, Vec<String>)>,
    builtin: BTreeSet<String>,
}

/// A module to load: its name and its file in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModFile {
    /// The module name with `_` (as the kernel spells it).
    pub name: String,
    /// Its file, relative to the tree (`kernel/drivers/.../nvme.ko.xz`).
    pub path: String,
}

/// A module name as the kernel compares them: `-` and `_` are the same.
pub fn mod_name(s: &str) -> String {
    s.replace('-', "_")
}

/// The module name of a path in `modules.dep` (`kernel/.../nvme-core.ko.xz` -> `nvme_core`).
fn name_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    mod_name(base.split(".ko").next().unwrap_or(base))
}

impl ModTree {
    /// Read the tree's index files (`modules.alias`, `modules.dep`; `modules.builtin` if any).
    ///
    /// # Errors
    /// `modules.dep` or `modules.alias` cannot be read under `dir`, or a line does not
    /// parse; the error names the file and line.
    pub fn open(dir: &Path) -> Result<ModTree> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).with_context(|| {
                format!(
                    "reading {} (the module tree needs depmod's index files)",
                    p.display()
                )
            })
        };
        let mut aliases = Vec::new();
        for (i, line) in read("modules.alias")?.lines().enumerate() {
            let mut w = line.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(pat), Some(m)) => aliases.push((pat.into(), mod_name(m))),
                (None, ..) | (Some(_), ..) if line.trim().is_empty() || line.starts_with('#') => {}
                _ => bail!(
                    "{}: line {}: not `alias PATTERN MODULE`: {line:?}",
                    dir.join("modules.alias").display(),
                    i + 1
                ),
            }
        }
        let mut deps = BTreeMap::new();
        for (i, line) in read("modules.dep")?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((m, rest)) = line.split_once(':') else {
                bail!(
                    "{}: line {}: no `:`: {line:?}",
                    dir.join("modules.dep").display(),
                    i + 1
                );
            };
            let d: Vec<String> = rest.split_whitespace().map(String::from).collect();
            deps.insert(name_of(m), (m.to_string(), d));
        }
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .map(|s| s.lines().map(name_of).collect())
            .unwrap_or_default();
        Ok(ModTree {
            dir: dir.to_path_buf(),
            aliases,
            deps,
            builtin,
        })
    }

    /// Modules whose alias pattern matches `modalias` (every match, as modprobe
    /// loads them all), sorted and without duplicates; built-in ones left out.
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .aliases
            .iter()
            .filter(|(p, _)| glob(p.as_bytes(), modalias.as_bytes()))
            .map(|(_, m)| m.clone())
            .filter(|m| !self.builtin.contains(m))
            .collect();
        set.into_iter().collect()
    }

    /// `names` with their dependencies, in load order (each dependency before
    /// its users, each module once). modules.dep lists every module's whole
    /// dependency closure, the ones loaded last first, so a module's own line
    /// read backwards is its load order.
    ///
    /// # Errors
    /// A name that the tree's `modules.dep` does not list (and is not built in).
    pub fn load_order(&self, names: &[String]) -> Result<Vec<ModFile>> {
        let mut out: Vec<ModFile> = Vec::new();
        for n in names {
            let n = mod_name(n);
            if self.builtin.contains(&n) {
                continue;
            }
            let (path, deps) = self.deps.get(&n).with_context(|| {
                format!(
                    "module {n} is not in {}",
                    self.dir.join("modules.dep").display()
                )
            })?;
            for p in deps.iter().rev().chain(std::iter::once(path)) {
                let name = name_of(p);
                if !out.iter().any(|m| m.name == name) {
                    out.push(ModFile {
                        name,
                        path: p.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The module's contents, decompressed (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
    ///
    /// # Errors
    /// The module file cannot be read, or does not decompress.
    pub fn module_bytes(&self, m: &ModFile) -> Result<Vec<u8>> {
        let p = self.dir.join(&m.path);
        let raw = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        decompress(&raw, &m.path).with_context(|| format!("decompressing {}", p.display()))
    }
}

/// The values of `key` in a module's `.modinfo` section (NUL-separated
/// `key=value` strings, as `modinfo -F KEY` prints them), e.g. `firmware`.
///
/// # Errors
/// `ko` is not a 64-bit ELF file, or its `.modinfo` section cannot be read (a module
/// without one gives an empty list).
pub fn modinfo(ko: &[u8], key: &str) -> Result<Vec<String>> {
    use object::{Object, ObjectSection};
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(ko)
        .context("a module that is not a 64-bit ELF file")?;
    let Some(sec) = elf.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let data = sec.data().context("unreadable .modinfo section")?;
    let prefix = format!("{key}=");
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .filter_map(|e| e.strip_prefix(&prefix))
        .map(String::from)
        .collect())
}

/// Firmware files found for `names` under `fw_root` (`lib/firmware`): each as
/// itself or compressed (`.xz`, `.zst`, which the kernel's loader decompresses
/// with CONFIG_FW_LOADER_COMPRESS), as (path in the archive, host file); and the
/// names found in no form (drivers declare firmware for every chip they drive).
pub fn firmware_files(names: &[String], fw_root: &Path) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        if n.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            missing.push(n.clone());
            continue;
        }
        let hit = ["", ".xz", ".zst"]
            .iter()
            .map(|ext| (format!("{n}{ext}"), fw_root.join(format!("{n}{ext}"))))
            .find(|(_, p)| p.is_file());
        match hit {
            Some((name, p)) => found.push((format!("lib/firmware/{name}"), p)),
            None => missing.push(n.clone()),
        }
    }
    (found, missing)
}

/// Decompress a module file by its name's ending.
///
/// # Errors
/// A name that ends in none of `.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`, data that does not
/// decompress, or contents that are not an ELF module; the error names it.
pub fn decompress(raw: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if name.ends_with(".ko") {
        out.extend_from_slice(raw);
    } else if name.ends_with(".ko.xz") {
        lzma_rs::xz_decompress(&mut std::io::Cursor::new(raw), &mut out)
            .map_err(|e| anyhow::anyhow!("xz: {e}"))?;
    } else if name.ends_with(".ko.zst") {
        ruzstd::decoding::StreamingDecoder::new(raw)
            .map_err(|e| anyhow::anyhow!("zstd: {e}"))?
            .read_to_end(&mut out)?;
    } else if name.ends_with(".ko.gz") {
        flate2::read::GzDecoder::new(raw).read_to_end(&mut out)?;
    } else {
        bail!("{name}: not a .ko, .ko.xz, .ko.zst or .ko.gz file");
    }
    if !out.starts_with(b"\x7fELF") {
        bail!("{name}: decompressed contents are not an ELF module");
    }
    Ok(out)
}

/// fnmatch(3) without flags, as kmod matches `modules.alias` patterns: `*`, `?`
/// and bracket sets (`[abc]`, `[a-z]`, `[!x]`), `\` escaping the next byte.
pub fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pat, p, s[i]),
            Some(b'\\') if p + 1 < pat.len() => (pat[p + 1] == s[i]).then_some(p + 2),
            Some(&c) => (c == s[i]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(np) => {
                p = np;
                i += 1;
            }
            None => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Match `c` against the bracket set at `pat[p] == b'['`: the index after the
/// set when it matches, `None` when not. An unclosed `[` matches itself.
fn class(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    let mut j = p + 1;
    let negate = matches!(pat.get(j), Some(b'!') | Some(b'^'));
    if negate {
        j += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *pat.get(j)?;
        if lo == b']' && !first {
            break;
        }
        first = false;
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&h| h != b']') {
            let hi = pat[j + 2];
            hit |= lo <= c && c <= hi;
            j += 3;
        } else {
            hit |= lo == c;
            j += 1;
        }
    }
    (hit != negate).then_some(j + 1)
}

/// The `modalias` the kernel gives a PCI device (drivers/pci/pci-sysfs.c,
/// `modalias_show`): `pci:vVVVVVVVVdDDDDDDDDsvSSSSSSSSsdSSSSSSSSbcBBscSSiII`,
/// upper-case hex.
pub fn pci_modalias(d: &passthru_iommu_groups::Device) -> String {
    format!(
        "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
        d.vendor.0,
        d.device.0,
        d.subsystem_vendor.map_or(0, |v| v.0),
        d.subsystem_device.map_or(0, |v| v.0),
        d.class.class,
        d.class.subclass,
        d.class.prog_if
    )
}

/// What the guest's init reads from `/trial/request.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestRequest {
    /// Modules to load, in order (files `/lib/modules/NAME.ko`).
    pub modules: Vec<String>,
    /// Devices to wait for.
    pub devices: Vec<GuestDevice>,
    /// Seconds to wait for the devices and their drivers.
    pub wait_secs: u64,
}

/// A device the guest waits for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestDevice {
    /// Vendor id, 4 lower-case hex digits.
    pub vendor: String,
    /// Device id, 4 lower-case hex digits.
    pub device: String,
    /// Whether a driver should bind (the guest waits for one until its time is up).
    pub expect_driver: bool,
}

/// The path of the request in the archive.
pub const REQUEST_PATH: &str = "/trial/request.json";

/// What [`build`] put in besides `/init`.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The archive (uncompressed cpio).
    pub cpio: Vec<u8>,
    /// Firmware files included.
    pub firmware: Vec<String>,
    /// Firmware the modules declare that `fw_root` lacks.
    pub firmware_missing: Vec<String>,
}

/// Build the initramfs: `exe` as `/init` with its runtime files from `lib_root`,
/// `modules` from `tree` with the firmware they declare found under `fw_root`,
/// and `request`.
///
/// # Errors
/// The binary, a library, a module or a firmware file a module declares cannot be read
/// (absent firmware is listed in the result instead), modules are asked for without a
/// tree, or two files claim one name in the archive; each error names the file.
pub fn build(
    exe: &Path,
    lib_root: &Path,
    tree: Option<&ModTree>,
    modules: &[ModFile],
    fw_root: Option<&Path>,
    request: &GuestRequest,
) -> Result<Built> {
    let mut built = Built::default();
    let mut c = Cpio::new();
    for d in ["dev", "proc", "sys", "trial", "lib/modules"] {
        c.dir(d)?;
    }
    // The kernel opens /dev/console for init's standard streams before devtmpfs is
    // mounted (init/main.c): the node must be in the archive. 5:1 per
    // Documentation/admin-guide/devices.txt.
    c.char_dev("dev/console", 0o600, 5, 1)?;
    let bin = std::fs::read(exe).with_context(|| format!("reading {}", exe.display()))?;
    c.file("init", 0o755, &bin)?;
    for (at, host) in runtime_files(exe, lib_root)? {
        let data = std::fs::read(&host).with_context(|| format!("reading {}", host.display()))?;
        c.file(&at, 0o755, &data)?;
    }
    if !modules.is_empty() {
        let tree = tree.context("modules requested without a module tree")?;
        for m in modules {
            let ko = tree.module_bytes(m)?;
            if let Some(fw) = fw_root {
                let names = modinfo(&ko, "firmware")
                    .with_context(|| format!("reading {}", tree.dir.join(&m.path).display()))?;
                let (found, missing) = firmware_files(&names, fw);
                for (at, host) in found {
                    if c.contains(&at) {
                        continue;
                    }
                    let data = std::fs::read(&host)
                        .with_context(|| format!("reading {}", host.display()))?;
                    c.file(&at, 0o644, &data)?;
                    built.firmware.push(at);
                }
                built.firmware_missing.extend(missing);
            }
            c.file(&format!("lib/modules/{}.ko", m.name), 0o644, &ko)?;
        }
    }
    c.file(
        REQUEST_PATH,
        0o644,
        serde_json::to_string_pretty(request)?.as_bytes(),
    )?;
    built.cpio = c.finish()?;
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_follows_fnmatch() {
        // Patterns of the shapes modules.alias holds (file2alias.c writes `*` for
        // any-id fields and bracket sets for some nibble ranges).
        let ma = b"pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";
        assert!(glob(b"pci:v00008086d000010D3sv*sd*bc*sc*i*", ma));
        assert!(!glob(b"pci:v00008086d000010D4sv*sd*bc*sc*i*", ma));
        assert!(glob(b"pci:v*d*sv*sd*bc02sc00i*", ma));
        assert!(glob(b"pci:v00008086d000010D[0-9]sv*", &ma[..26]));
        assert!(!glob(b"pci:v00008086d000010D[!3]sv*", &ma[..26]));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"[", b"x"));
        assert!(glob(b"a\\*", b"a*"));
        assert!(!glob(b"a\\*", b"ab"));
    }

    #[test]
    fn names_and_decompress_errors() {
        assert_eq!(
            name_of("kernel/drivers/nvme/host/nvme-core.ko.xz"),
            "nvme_core"
        );
        assert!(decompress(b"junk", "x.ko.xz").is_err());
        assert!(decompress(b"junk", "x.ko").is_err());
        assert!(decompress(b"\x7fELF", "x.bin").is_err());
        let gz = gzip(b"\x7fELF rest").unwrap();
        assert_eq!(decompress(&gz, "m.ko.gz").unwrap(), b"\x7fELF rest");
    }

    #[test]
    fn cpio_rejects_bad_names_and_duplicates() {
        let mut c = Cpio::new();
        assert!(c.file("../x", 0o644, b"").is_err());
        assert!(c.file("/a//b", 0o644, b"").is_err());
        c.file("/a/b", 0o644, b"1").unwrap();
        assert!(c.contains("a"));
        assert!(c.file("a/b", 0o644, b"2").is_err());
    }
}
