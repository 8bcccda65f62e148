//! The `pci.ids` database: a zero-copy parser over `&str`, an index for fast
//! lookups (`alloc`), and a file loader (`std`).
//!
//! Format (pciutils): a vendor line `vvvv  Name`; a device line TAB `dddd  Name`; a
//! subsystem line TAB TAB `ssss dddd  Name`; a class section `C cc  Name`, TAB
//! `ss  Name` (subclass), TAB TAB `pp  Name` (programming interface); `#` comments
//! and blank lines. Every other line is a [`DbError`] naming its line and byte
//! offset. Names borrow from the text; nothing is copied.
//!
//! [`PciIds`] looks up by scanning (no allocation, fine for a handful of names);
//! [`PciIdsIndex`] (feature `alloc`) builds sorted arrays once and answers with
//! binary searches; [`Database`] (feature `std`) finds and reads the file: an
//! explicit path, else `$PASSTHRU_PCI_IDS`, else [`DEFAULT_PATHS`]. Never the network.
//!
//! ```
//! use passthru_pci_ids::db::PciIds;
//! use passthru_pci_ids::{DeviceId, VendorId};
//! let text = "1002  Advanced Micro Devices, Inc. [AMD/ATI]\n\t7300  Fiji [Radeon R9 FURY / NANO Series]\n";
//! let db = PciIds::parse(text).unwrap();
//! assert_eq!(db.device(VendorId(0x1002), DeviceId(0x7300)), Some("Fiji [Radeon R9 FURY / NANO Series]"));
//! ```

use crate::ids::{DeviceId, VendorId};
use core::fmt;

/// Where the database is usually installed: Debian's `pci.ids` package, then hwdata (Fedora, Arch, ...).
pub const DEFAULT_PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

/// Environment variable naming a `pci.ids` file to use instead of [`DEFAULT_PATHS`].
pub const ENV_VAR: &str = "PASSTHRU_PCI_IDS";

/// The loader reads at most this many bytes (64 MiB; the real file is about 1.4 MB),
/// so pointing it at `/dev/zero` is an error, not a hang.
pub const MAX_FILE_LEN: u64 = 64 << 20;

/// A malformed line in a `pci.ids` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbError {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start in the text.
    pub offset: usize,
    /// What is wrong with it.
    pub kind: DbErrorKind,
}

/// What is wrong with a `pci.ids` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// Not a vendor, device, subsystem, class, subclass or prog-if line.
    Syntax,
    /// An indented line with no parent (a device before any vendor, a prog-if outside a class).
    Orphan,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DbErrorKind::Syntax => "malformed pci.ids line",
            DbErrorKind::Orphan => "pci.ids line without a parent entry",
        };
        write!(f, "{what} at line {} (byte {})", self.line, self.offset)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DbError {}

/// One entry of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry<'a> {
    /// `vvvv  Name`.
    Vendor {
        /// Vendor id.
        id: VendorId,
        /// Name.
        name: &'a str,
    },
    /// TAB `dddd  Name` under a vendor.
    Device {
        /// Vendor id.
        vendor: VendorId,
        /// Device id.
        id: DeviceId,
        /// Name.
        name: &'a str,
    },
    /// TAB TAB `ssss dddd  Name` under a device.
    Subsystem {
        /// Vendor id.
        vendor: VendorId,
        /// Device id.
        device: DeviceId,
        /// Subsystem vendor id.
        subvendor: VendorId,
        /// Subsystem device id.
        subdevice: DeviceId,
        /// Name.
        name: &'a str,
    },
    /// `C cc  Name`.
    Class {
        /// Base class.
        class: u8,
        /// Name.
        name: &'a str,
    },
    /// TAB `ss  Name` in a class section.
    Subclass {
        /// Base class.
        class: u8,
        /// Subclass.
        subclass: u8,
        /// Name.
        name: &'a str,
    },
    /// TAB TAB `pp  Name` in a class section.
    ProgIf {
        /// Base class.
        class: u8,
        /// Subclass.
        subclass: u8,
        /// Programming interface.
        prog_if: u8,
        /// Name.
        name: &'a str,
    },
}

#[inline]
fn hexval(c: u8) -> u32 {
    // 0..=15 for a hex digit, >= 16 otherwise
    let d = c.wrapping_sub(b'0');
    if d < 10 {
        return u32::from(d);
    }
    let l = (c | 0x20).wrapping_sub(b'a');
    if l < 6 {
        u32::from(l) + 10
    } else {
        16
    }
}

#[inline]
fn hex4(b: &[u8]) -> Option<u16> {
    match b {
        [a, b, c, d, ..] => {
            let (a, b, c, d) = (hexval(*a), hexval(*b), hexval(*c), hexval(*d));
            if (a | b | c | d) >= 16 {
                None
            } else {
                Some(((a << 12) | (b << 8) | (c << 4) | d) as u16)
            }
        }
        _ => None,
    }
}

#[inline]
fn hex2(b: &[u8]) -> Option<u8> {
    match b {
        [a, b, ..] => {
            let (a, b) = (hexval(*a), hexval(*b));
            if (a | b) >= 16 {
                None
            } else {
                Some(((a << 4) | b) as u8)
            }
        }
        _ => None,
    }
}

/// After an id at byte `at`: at least one blank, then the name (ASCII blanks trimmed).
#[inline]
fn name_after(line: &str, at: usize) -> Option<&str> {
    let b = line.as_bytes();
    if !matches!(b.get(at), Some(b' ' | b'\t')) {
        return None;
    }
    let mut i = at + 1;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let mut j = b.len();
    while j > i && matches!(b[j - 1], b' ' | b'\t' | b'\r') {
        j -= 1;
    }
    line.get(i..j)
}

/// Position of the first `\n`, eight bytes at a time (lines are short, so this beats
/// `memchr`'s set-up cost; the lowest flagged byte of the zero-byte test is exact).
#[inline]
fn find_newline(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ (ONES * u64::from(b'\n'));
        let t = x.wrapping_sub(ONES) & !x & HIGHS;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

#[derive(Clone, Copy)]
enum Ctx {
    None,
    Vendor(VendorId),
    Device(VendorId, DeviceId),
    Class(u8),
    Subclass(u8, u8),
}

/// Iterator over the entries of a `pci.ids` text (see [`PciIds::entries`]).
#[derive(Clone)]
pub struct Entries<'a> {
    rest: &'a str,
    offset: usize,
    line: usize,
    ctx: Ctx,
    failed: bool,
}

impl<'a> Entries<'a> {
    fn new(text: &'a str) -> Entries<'a> {
        Entries {
            rest: text,
            offset: 0,
            line: 0,
            ctx: Ctx::None,
            failed: false,
        }
    }

    fn parse_line(&mut self, line: &'a str) -> Result<Option<Entry<'a>>, DbErrorKind> {
        match self.parse_entry(line) {
            Err(_) if line.trim().is_empty() => Ok(None),
            other => other,
        }
    }

    #[inline]
    fn parse_entry(&mut self, line: &'a str) -> Result<Option<Entry<'a>>, DbErrorKind> {
        let b = line.as_bytes();
        match b.first() {
            None | Some(b'#') => return Ok(None),
            _ => {}
        }
        if let Some(l2) = line.strip_prefix("\t\t") {
            let b2 = l2.as_bytes();
            return match self.ctx {
                Ctx::Device(vendor, device) => {
                    if b2.len() < 9 || b2[4] != b' ' {
                        return Err(DbErrorKind::Syntax);
                    }
                    let sv = hex4(b2).ok_or(DbErrorKind::Syntax)?;
                    let sd = hex4(&b2[5..]).ok_or(DbErrorKind::Syntax)?;
                    let name = name_after(l2, 9).ok_or(DbErrorKind::Syntax)?;
                    Ok(Some(Entry::Subsystem {
                        vendor,
                        device,
                        subvendor: VendorId(sv),
                        subdevice: DeviceId(sd),
                        name,
                    }))
                }
                Ctx::Subclass(class, subclass) => {
                    let p = hex2(b2).ok_or(DbErrorKind::Syntax)?;
                    let name = name_after(l2, 2).ok_or(DbErrorKind::Syntax)?;
                    Ok(Some(Entry::ProgIf {
                        class,
                        subclass,
                        prog_if: p,
                        name,
                    }))
                }
                Ctx::Vendor(_) | Ctx::Class(_) | Ctx::None => Err(DbErrorKind::Orphan),
            };
        }
        if let Some(l1) = line.strip_prefix('\t') {
            let b1 = l1.as_bytes();
            return match self.ctx {
                Ctx::Vendor(v) | Ctx::Device(v, _) => {
                    let d = hex4(b1).ok_or(DbErrorKind::Syntax)?;
                    let name = name_after(l1, 4).ok_or(DbErrorKind::Syntax)?;
                    self.ctx = Ctx::Device(v, DeviceId(d));
                    Ok(Some(Entry::Device {
                        vendor: v,
                        id: DeviceId(d),
                        name,
                    }))
                }
                Ctx::Class(c) | Ctx::Subclass(c, _) => {
                    let s = hex2(b1).ok_or(DbErrorKind::Syntax)?;
                    let name = name_after(l1, 2).ok_or(DbErrorKind::Syntax)?;
                    self.ctx = Ctx::Subclass(c, s);
                    Ok(Some(Entry::Subclass {
                        class: c,
                        subclass: s,
                        name,
                    }))
                }
                Ctx::None => Err(DbErrorKind::Orphan),
            };
        }
        if let Some(lc) = line.strip_prefix("C ") {
            let c = hex2(lc.as_bytes()).ok_or(DbErrorKind::Syntax)?;
            let name = name_after(lc, 2).ok_or(DbErrorKind::Syntax)?;
            self.ctx = Ctx::Class(c);
            return Ok(Some(Entry::Class { class: c, name }));
        }
        let v = hex4(b).ok_or(DbErrorKind::Syntax)?;
        let name = name_after(line, 4).ok_or(DbErrorKind::Syntax)?;
        self.ctx = Ctx::Vendor(VendorId(v));
        Ok(Some(Entry::Vendor {
            id: VendorId(v),
            name,
        }))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, DbError>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && !self.rest.is_empty() {
            let nl = find_newline(self.rest.as_bytes());
            let (raw, rest, adv) = match nl {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..], i + 1),
                None => (self.rest, "", self.rest.len()),
            };
            let start = self.offset;
            self.rest = rest;
            self.offset += adv;
            self.line += 1;
            match self.parse_line(raw) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => continue,
                Err(kind) => {
                    self.failed = true;
                    return Some(Err(DbError {
                        line: self.line,
                        offset: start,
                        kind,
                    }));
                }
            }
        }
        None
    }
}

/// A validated `pci.ids` text; lookups scan it (see [`PciIdsIndex`] for fast ones).
#[derive(Debug, Clone, Copy)]
pub struct PciIds<'a> {
    text: &'a str,
}

impl<'a> PciIds<'a> {
    /// Validate every line of `text`.
    ///
    /// # Errors
    ///
    /// The first malformed line as a [`DbError`] (its line number, byte offset and kind).
    pub fn parse(text: &'a str) -> Result<PciIds<'a>, DbError> {
        for e in Entries::new(text) {
            e?;
        }
        Ok(PciIds { text })
    }

    /// Every entry in file order.
    pub fn entries(&self) -> Entries<'a> {
        Entries::new(self.text)
    }

    /// The text this database reads.
    pub fn text(&self) -> &'a str {
        self.text
    }

    fn find<F: Fn(&Entry<'a>) -> Option<&'a str>>(&self, f: F) -> Option<&'a str> {
        self.entries().map_while(Result::ok).find_map(|e| f(&e))
    }

    /// Vendor name.
    pub fn vendor(&self, vendor: VendorId) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::Vendor { id, name } if id == vendor => Some(name),
            _ => None,
        })
    }

    /// Device name.
    pub fn device(&self, vendor: VendorId, device: DeviceId) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::Device {
                vendor: v,
                id,
                name,
            } if v == vendor && id == device => Some(name),
            _ => None,
        })
    }

    /// Subsystem name (listed under the chip's vendor and device).
    pub fn subsystem(
        &self,
        vendor: VendorId,
        device: DeviceId,
        subvendor: VendorId,
        subdevice: DeviceId,
    ) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::Subsystem {
                vendor: v,
                device: d,
                subvendor: sv,
                subdevice: sd,
                name,
            } if (v, d, sv, sd) == (vendor, device, subvendor, subdevice) => Some(name),
            _ => None,
        })
    }

    /// Base class name.
    pub fn class(&self, class: u8) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::Class { class: c, name } if c == class => Some(name),
            _ => None,
        })
    }

    /// Subclass name.
    pub fn subclass(&self, class: u8, subclass: u8) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::Subclass {
                class: c,
                subclass: s,
                name,
            } if (c, s) == (class, subclass) => Some(name),
            _ => None,
        })
    }

    /// Programming interface name.
    pub fn prog_if(&self, class: u8, subclass: u8, prog_if: u8) -> Option<&'a str> {
        self.find(|e| match *e {
            Entry::ProgIf {
                class: c,
                subclass: s,
                prog_if: p,
                name,
            } if (c, s, p) == (class, subclass, prog_if) => Some(name),
            _ => None,
        })
    }
}

#[cfg(feature = "alloc")]
pub use index::PciIdsIndex;

#[cfg(feature = "alloc")]
mod index {
    use super::{DbError, Entries, Entry};
    use crate::ids::{DeviceId, VendorId};
    use alloc::vec::Vec;

    #[derive(Debug, Clone, Copy)]
    struct Node<'a, K> {
        key: K,
        name: &'a str,
        start: u32,
        end: u32,
    }

    fn search<'s, 'a, K: Ord + Copy>(v: &'s [Node<'a, K>], key: K) -> Option<&'s Node<'a, K>> {
        v.binary_search_by(|n| n.key.cmp(&key)).ok().map(|i| &v[i])
    }

    fn children<'s, 'a, K>(
        v: &'s [Node<'a, K>],
        parent_start: u32,
        parent_end: u32,
    ) -> &'s [Node<'a, K>] {
        v.get(parent_start as usize..parent_end as usize)
            .unwrap_or(&[])
    }

    /// Sorted arrays over a `pci.ids` text: a vendor is one table read (a 65536-slot
    /// map from id to position), everything below it a binary search over its children.
    #[derive(Debug, Clone)]
    pub struct PciIdsIndex<'a> {
        vendor_slot: Vec<u32>,
        device_keys: Vec<u16>,
        vendors: Vec<Node<'a, u16>>,
        devices: Vec<Node<'a, u16>>,
        subsystems: Vec<Node<'a, u32>>,
        classes: Vec<Node<'a, u8>>,
        subclasses: Vec<Node<'a, u8>>,
        prog_ifs: Vec<Node<'a, u8>>,
    }

    fn close<K>(v: &mut [Node<'_, K>], end: usize) {
        if let Some(last) = v.last_mut() {
            last.end = end as u32;
        }
    }

    fn sort_children<K: Ord + Copy, C: Ord + Copy>(
        parents: &[Node<'_, K>],
        kids: &mut [Node<'_, C>],
    ) {
        for p in parents {
            if let Some(s) = kids.get_mut(p.start as usize..p.end as usize) {
                s.sort_by_key(|n| n.key);
            }
        }
    }

    impl<'a> PciIdsIndex<'a> {
        /// Parse `text` and build the index in one pass, then sort.
        ///
        /// # Errors
        ///
        /// The first malformed line as a [`DbError`] (its line number, byte offset and kind).
        pub fn build(text: &'a str) -> Result<PciIdsIndex<'a>, DbError> {
            let mut ix = PciIdsIndex {
                vendor_slot: Vec::new(),
                device_keys: Vec::new(),
                vendors: Vec::with_capacity(text.len() / 512),
                devices: Vec::with_capacity(text.len() / 64),
                subsystems: Vec::with_capacity(text.len() / 64),
                classes: Vec::new(),
                subclasses: Vec::new(),
                prog_ifs: Vec::new(),
            };
            for e in Entries::new(text) {
                match e? {
                    Entry::Vendor { id, name } => {
                        let at = ix.devices.len() as u32;
                        ix.vendors.push(Node {
                            key: id.0,
                            name,
                            start: at,
                            end: at,
                        });
                    }
                    Entry::Device { id, name, .. } => {
                        let at = ix.subsystems.len() as u32;
                        ix.devices.push(Node {
                            key: id.0,
                            name,
                            start: at,
                            end: at,
                        });
                        close(&mut ix.vendors, ix.devices.len());
                    }
                    Entry::Subsystem {
                        subvendor,
                        subdevice,
                        name,
                        ..
                    } => {
                        let key = (u32::from(subvendor.0) << 16) | u32::from(subdevice.0);
                        ix.subsystems.push(Node {
                            key,
                            name,
                            start: 0,
                            end: 0,
                        });
                        close(&mut ix.devices, ix.subsystems.len());
                    }
                    Entry::Class { class, name } => {
                        let at = ix.subclasses.len() as u32;
                        ix.classes.push(Node {
                            key: class,
                            name,
                            start: at,
                            end: at,
                        });
                    }
                    Entry::Subclass { subclass, name, .. } => {
                        let at = ix.prog_ifs.len() as u32;
                        ix.subclasses.push(Node {
                            key: subclass,
                            name,
                            start: at,
                            end: at,
                        });
                        close(&mut ix.classes, ix.subclasses.len());
                    }
                    Entry::ProgIf { prog_if, name, .. } => {
                        ix.prog_ifs.push(Node {
                            key: prog_if,
                            name,
                            start: 0,
                            end: 0,
                        });
                        close(&mut ix.subclasses, ix.prog_ifs.len());
                    }
                }
            }
            // pci.ids is sorted by convention, not by contract: sort children within
            // their parent's range (ranges stay valid), then the top level.
            sort_children(&ix.devices, &mut ix.subsystems);
            sort_children(&ix.vendors, &mut ix.devices);
            sort_children(&ix.subclasses, &mut ix.prog_ifs);
            sort_children(&ix.classes, &mut ix.subclasses);
            ix.vendors.sort_by_key(|n| n.key);
            ix.classes.sort_by_key(|n| n.key);
            ix.vendor_slot = alloc::vec![u32::MAX; 1 << 16];
            for (i, v) in ix.vendors.iter().enumerate() {
                ix.vendor_slot[usize::from(v.key)] = i as u32;
            }
            ix.device_keys = ix.devices.iter().map(|n| n.key).collect();
            Ok(ix)
        }

        /// Number of vendors.
        pub fn vendor_count(&self) -> usize {
            self.vendors.len()
        }

        /// Number of devices.
        pub fn device_count(&self) -> usize {
            self.devices.len()
        }

        /// Every `(vendor, device)` pair, in index order.
        pub fn device_ids(&self) -> impl Iterator<Item = (VendorId, DeviceId)> + '_ {
            self.vendors.iter().flat_map(move |v| {
                children(&self.devices, v.start, v.end)
                    .iter()
                    .map(move |d| (VendorId(v.key), DeviceId(d.key)))
            })
        }

        #[inline]
        fn vendor_node(&self, vendor: VendorId) -> Option<&Node<'a, u16>> {
            let i = *self.vendor_slot.get(usize::from(vendor.0))?;
            self.vendors.get(i as usize)
        }

        #[inline]
        fn device_node(&self, vendor: VendorId, device: DeviceId) -> Option<&Node<'a, u16>> {
            let v = self.vendor_node(vendor)?;
            let (s, e) = (v.start as usize, v.end as usize);
            let i = self.device_keys.get(s..e)?.binary_search(&device.0).ok()?;
            self.devices.get(s + i)
        }

        /// Vendor name.
        #[inline]
        pub fn vendor(&self, vendor: VendorId) -> Option<&'a str> {
            self.vendor_node(vendor).map(|n| n.name)
        }

        /// Device name.
        #[inline]
        pub fn device(&self, vendor: VendorId, device: DeviceId) -> Option<&'a str> {
            self.device_node(vendor, device).map(|n| n.name)
        }

        /// Subsystem name.
        #[inline]
        pub fn subsystem(
            &self,
            vendor: VendorId,
            device: DeviceId,
            subvendor: VendorId,
            subdevice: DeviceId,
        ) -> Option<&'a str> {
            let d = self.device_node(vendor, device)?;
            let key = (u32::from(subvendor.0) << 16) | u32::from(subdevice.0);
            search(children(&self.subsystems, d.start, d.end), key).map(|n| n.name)
        }

        /// Base class name.
        #[inline]
        pub fn class(&self, class: u8) -> Option<&'a str> {
            search(&self.classes, class).map(|n| n.name)
        }

        /// Subclass name.
        #[inline]
        pub fn subclass(&self, class: u8, subclass: u8) -> Option<&'a str> {
            let c = search(&self.classes, class)?;
            search(children(&self.subclasses, c.start, c.end), subclass).map(|n| n.name)
        }

        /// Programming interface name.
        #[inline]
        pub fn prog_if(&self, class: u8, subclass: u8, prog_if: u8) -> Option<&'a str> {
            let c = search(&self.classes, class)?;
            let s = search(children(&self.subclasses, c.start, c.end), subclass)?;
            search(children(&self.prog_ifs, s.start, s.end), prog_if).map(|n| n.name)
        }
    }
}

#[cfg(feature = "std")]
pub use load::{Database, LoadError};

#[cfg(feature = "std")]
mod load {
    use super::{DbError, PciIds, PciIdsIndex, DEFAULT_PATHS, ENV_VAR, MAX_FILE_LEN};
    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::string::String;
    use std::vec::Vec;

    /// Why the database could not be loaded.
    #[derive(Debug)]
    #[non_exhaustive]
    pub enum LoadError {
        /// Reading `path` failed.
        Io {
            /// The file.
            path: PathBuf,
            /// The OS error.
            source: std::io::Error,
        },
        /// `path` is not UTF-8 text (at byte `offset`).
        NotUtf8 {
            /// The file.
            path: PathBuf,
            /// First invalid byte.
            offset: usize,
        },
        /// No database at any of `tried`.
        NotFound {
            /// Paths that were tried, in order.
            tried: Vec<PathBuf>,
        },
        /// `path` is larger than [`MAX_FILE_LEN`] (the real file is about 1.4 MB).
        TooLarge {
            /// The file.
            path: PathBuf,
        },
        /// `path` has a malformed line.
        Parse {
            /// The file.
            path: PathBuf,
            /// Which line.
            source: DbError,
        },
    }

    impl fmt::Display for LoadError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                LoadError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
                LoadError::NotUtf8 { path, offset } => {
                    write!(f, "{} is not UTF-8 text (byte {offset})", path.display())
                }
                LoadError::NotFound { tried } => {
                    write!(f, "no pci.ids found (tried")?;
                    for p in tried {
                        write!(f, " {}", p.display())?;
                    }
                    write!(f, "; set {ENV_VAR} or install the `pci.ids` package)")
                }
                LoadError::TooLarge { path } => write!(
                    f,
                    "{} is larger than {MAX_FILE_LEN} bytes: not a pci.ids file",
                    path.display()
                ),
                LoadError::Parse { path, source } => write!(f, "{}: {source}", path.display()),
            }
        }
    }

    impl std::error::Error for LoadError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            match self {
                LoadError::Io { source, .. } => Some(source),
                LoadError::Parse { source, .. } => Some(source),
                _ => None,
            }
        }
    }

    /// A `pci.ids` file read into memory; parse or index it with [`Database::ids`]
    /// / [`Database::index`], which borrow from it.
    #[derive(Debug, Clone)]
    pub struct Database {
        path: PathBuf,
        text: String,
    }

    impl Database {
        /// Read the file at `path` (validated by [`Database::ids`], not here).
        ///
        /// # Errors
        ///
        /// [`LoadError::Io`] when the file cannot be opened or read, [`LoadError::TooLarge`]
        /// past [`MAX_FILE_LEN`], [`LoadError::NotUtf8`] when it is not UTF-8 text.
        pub fn load(path: impl AsRef<Path>) -> Result<Database, LoadError> {
            use std::io::Read;
            let path = path.as_ref().to_path_buf();
            let io = |source| LoadError::Io {
                path: path.clone(),
                source,
            };
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|f| f.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes))
                .map_err(io)?;
            if bytes.len() as u64 > MAX_FILE_LEN {
                return Err(LoadError::TooLarge { path });
            }
            let text = String::from_utf8(bytes).map_err(|e| LoadError::NotUtf8 {
                path: path.clone(),
                offset: e.utf8_error().valid_up_to(),
            })?;
            Ok(Database { path, text })
        }

        /// Find the database: `explicit` if given, else `$PASSTHRU_PCI_IDS` if set,
        /// else the first of [`DEFAULT_PATHS`] that exists. An explicit or
        /// environment path that cannot be read is an error, not a fallback.
        ///
        /// # Errors
        ///
        /// The errors of [`Database::load`] for the path chosen, or [`LoadError::NotFound`]
        /// (naming every path tried) when no explicit or environment path is given and none
        /// of [`DEFAULT_PATHS`] exists.
        pub fn find(explicit: Option<&Path>) -> Result<Database, LoadError> {
            if let Some(p) = explicit {
                return Database::load(p);
            }
            if let Some(p) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
                return Database::load(PathBuf::from(p));
            }
            let mut tried = Vec::new();
            for p in DEFAULT_PATHS {
                match Database::load(p) {
                    Err(LoadError::Io { path, source })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        tried.push(path)
                    }
                    other => return other,
                }
            }
            Err(LoadError::NotFound { tried })
        }

        /// Where it was read from.
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// The text.
        pub fn text(&self) -> &str {
            &self.text
        }

        /// Validate and scan-lookup.
        ///
        /// # Errors
        ///
        /// [`LoadError::Parse`] (the file and the first malformed line) when a line is malformed.
        pub fn ids(&self) -> Result<PciIds<'_>, LoadError> {
            PciIds::parse(&self.text).map_err(|source| LoadError::Parse {
                path: self.path.clone(),
                source,
            })
        }

        /// Build the index.
        ///
        /// # Errors
        ///
        /// [`LoadError::Parse`] (the file and the first malformed line) when a line is malformed.
        pub fn index(&self) -> Result<PciIdsIndex<'_>, LoadError> {
            PciIdsIndex::build(&self.text).map_err(|source| LoadError::Parse {
                path: self.path.clone(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "\
# comment
#\tsyntax line with a tab
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t7300  Fiji [Radeon R9 FURY / NANO Series]
\t\t1002 0b36  Radeon R9 FURY X / NANO
\t\t1043 049e  Radeon R9 FURY
\taae8  Fiji HDMI/DP Audio [Radeon R9 Nano / FURY/FURY X]
10de  NVIDIA Corporation
\t1187  GK104 [GeForce GTX 760]
\t0e0a  GK104 HDMI Audio Controller

C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
\t\t01  8514 controller
\t02  3D controller
C 04  Multimedia controller
\t03  Audio device
";

    #[test]
    fn scan_lookups_on_inline_text() {
        let db = PciIds::parse(SMALL).unwrap();
        assert_eq!(db.vendor(VendorId(0x10de)), Some("NVIDIA Corporation"));
        assert_eq!(
            db.device(VendorId(0x10de), DeviceId(0x0e0a)),
            Some("GK104 HDMI Audio Controller")
        );
        assert_eq!(
            db.subsystem(
                VendorId(0x1002),
                DeviceId(0x7300),
                VendorId(0x1043),
                DeviceId(0x049e)
            ),
            Some("Radeon R9 FURY")
        );
        assert_eq!(db.device(VendorId(0x10de), DeviceId(0x7300)), None);
        assert_eq!(db.class(0x03), Some("Display controller"));
        assert_eq!(db.subclass(0x03, 0x02), Some("3D controller"));
        assert_eq!(db.prog_if(0x03, 0x00, 0x01), Some("8514 controller"));
        assert_eq!(db.subclass(0x04, 0x03), Some("Audio device"));
        assert_eq!(db.prog_if(0x04, 0x03, 0x00), None);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn index_agrees_with_scan_and_sorts_unsorted_input() {
        // vendors and devices out of order on purpose
        let text = "10de  NVIDIA\n\t1187  GK104\n\t0e0a  GK104 HDMI\n1002  AMD\n\t7300  Fiji\n\t\t1043 049e  FURY\n\t\t1002 0b36  NANO\n";
        let ix = PciIdsIndex::build(text).unwrap();
        let db = PciIds::parse(text).unwrap();
        for (v, d) in [
            (0x10de, 0x1187),
            (0x10de, 0x0e0a),
            (0x1002, 0x7300),
            (0x1002, 0x1187),
        ] {
            assert_eq!(
                ix.device(VendorId(v), DeviceId(d)),
                db.device(VendorId(v), DeviceId(d))
            );
        }
        assert_eq!(ix.vendor(VendorId(0x1002)), Some("AMD"));
        assert_eq!(
            ix.subsystem(
                VendorId(0x1002),
                DeviceId(0x7300),
                VendorId(0x1002),
                DeviceId(0x0b36)
            ),
            Some("NANO")
        );
        assert_eq!(ix.device_count(), 3);
        let full = PciIdsIndex::build(SMALL).unwrap();
        assert_eq!(full.prog_if(0x03, 0x00, 0x00), Some("VGA controller"));
        assert_eq!(full.subclass(0x04, 0x03), Some("Audio device"));
        assert_eq!(full.class(0x05), None);
    }

    #[test]
    fn newline_search_matches_a_plain_scan() {
        let text = "a\nbb\n\n0123456789abcdef\nxyz\u{e9}\n\u{fffd}\u{fffd}\n\n";
        let b = text.as_bytes();
        for start in 0..b.len() {
            for end in start..=b.len() {
                let s = &b[start..end];
                assert_eq!(
                    find_newline(s),
                    s.iter().position(|&c| c == b'\n'),
                    "{start}..{end}"
                );
            }
        }
        // every bit pattern around the newline byte
        for v in 0..=255u8 {
            let mut s = [v; 16];
            assert_eq!(find_newline(&s), if v == b'\n' { Some(0) } else { None });
            s[11] = b'\n';
            let want = if v == b'\n' { 0 } else { 11 };
            assert_eq!(find_newline(&s), Some(want), "{v:#x}");
        }
    }

    #[test]
    fn malformed_lines_name_line_and_offset() {
        let bad = "1002  AMD\n\t73g0  Bad\n";
        assert_eq!(
            PciIds::parse(bad).unwrap_err(),
            DbError {
                line: 2,
                offset: 10,
                kind: DbErrorKind::Syntax
            }
        );
        assert_eq!(
            PciIds::parse("\t7300  orphan\n").unwrap_err().kind,
            DbErrorKind::Orphan
        );
        assert_eq!(
            PciIds::parse("C 03  Display\n\t\t00  orphan prog-if\n").unwrap_err(),
            DbError {
                line: 2,
                offset: 14,
                kind: DbErrorKind::Orphan
            }
        );
        assert_eq!(
            PciIds::parse("1002AMD\n").unwrap_err().kind,
            DbErrorKind::Syntax
        );
    }
}
